//! A pool's handler registry: the built-in handlers it lists, and when it has an
//! `[executor.pools.model]` table, `classify` and `infer` on that model (marie-gpu), with
//! the model loaded. A model that cannot serve is a start-up error naming the pool.

use anyhow::Context;
use marie_gpu::MODEL_HANDLERS;
use marie_handlers::HandlerRegistry;

use crate::config::PoolConfig;

/// Builds `pool`'s registry, loading its model if it has one.
pub async fn registry(pool: &PoolConfig) -> anyhow::Result<HandlerRegistry> {
    let builtin: Vec<String> = pool
        .handlers
        .iter()
        .filter(|name| !MODEL_HANDLERS.contains(&name.as_str()))
        .cloned()
        .collect();
    let mut registry =
        marie_handlers::registry(&builtin).with_context(|| format!("pool {:?}", pool.name))?;
    if let Some(model) = &pool.model {
        for (name, handler) in marie_gpu::model_handlers(&pool.name, model).await? {
            registry.register(name, handler);
        }
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pool_with_a_missing_model_file_does_not_start() {
        let pool = PoolConfig {
            name: "gpu-ocr".into(),
            handlers: vec!["classify".into()],
            model: Some(marie_gpu::ModelConfig::new(
                "no/such/model.pt",
                [1, 64, 64],
                &["a", "b"],
            )),
            ..PoolConfig::default()
        };
        let err = registry(&pool).await.expect_err("no model file");
        let message = format!("{err:#}");
        assert!(
            message.contains("pool \"gpu-ocr\"") && message.contains("not found"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn the_default_gpu_pool_offers_classify_and_infer() {
        let config = crate::config::Config::default();
        let pool = config
            .executor
            .pools
            .iter()
            .find(|p| p.model.is_some())
            .expect("a default pool with a model");
        let registry = registry(pool).await.expect("the bundled model is found");
        for name in MODEL_HANDLERS {
            assert!(registry.get(name).is_some(), "{name} missing: {registry:?}");
        }
    }
}
