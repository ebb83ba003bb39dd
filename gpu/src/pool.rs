//! A pool's model handlers, as the node builds them at start: `classify` and `infer`,
//! sharing one [`ModelRunner`] with its model loaded (the first cold start).

use std::sync::Arc;

use async_trait::async_trait;
use marie_handlers::{Handler, JobInput};
use marie_protocol::HandlerError;

use crate::classify::Classify;
use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::forward::Loader;
use crate::infer::Infer;
use crate::metrics::InferenceMetrics;
use crate::runner::ModelRunner;

/// Names of the handlers a pool with a model offers.
pub const MODEL_HANDLERS: [&str; 2] = ["classify", "infer"];

/// The handlers of one executor's model.
#[derive(Clone, Debug)]
pub struct ModelHandlers {
    /// The runner both handlers share.
    pub runner: Arc<ModelRunner>,
    /// `classify`.
    pub classify: Arc<Classify>,
    /// `infer`.
    pub infer: Arc<Infer>,
}

impl ModelHandlers {
    /// Checks `config`, builds the runner over `loader` and loads the model.
    pub async fn start(
        pool: &str,
        config: &ModelConfig,
        loader: Loader,
        metrics: InferenceMetrics,
    ) -> Result<Self, ModelError> {
        let shape = config.validate(pool)?;
        let runner = Arc::new(ModelRunner::new(pool, loader, config.policy(), metrics));
        runner.load().await?;
        let labels: Arc<[String]> = config.labels.clone().into();
        Ok(ModelHandlers {
            classify: Arc::new(Classify::new(runner.clone(), shape, labels)),
            infer: Arc::new(Infer::new(runner.clone(), shape)),
            runner,
        })
    }

    /// The handlers by name, for a pool's registry.
    pub fn named(&self) -> Vec<(&'static str, Arc<dyn Handler>)> {
        vec![
            (MODEL_HANDLERS[0], self.classify.clone() as Arc<dyn Handler>),
            (MODEL_HANDLERS[1], self.infer.clone() as Arc<dyn Handler>),
        ]
    }
}

/// The model handlers of one executor of `pool`, with the model loaded: the node calls
/// this for each executor of a pool that has `[executor.pools.model]`. A missing or
/// unreadable file, a model that does not fit the labels or input shape, or a missing
/// device is an error naming the pool.
///
/// Without the `torch` feature the file is still looked for, and the handlers fail
/// every job with a message saying how to build with libtorch.
pub async fn model_handlers(
    pool: &str,
    config: &ModelConfig,
) -> Result<Vec<(&'static str, Arc<dyn Handler>)>, ModelError> {
    let shape = config.validate(pool)?;
    let path = config.locate(pool)?;
    #[cfg(feature = "torch")]
    {
        let loader =
            crate::torch::torch_loader(pool, path, config.device, shape, config.labels.len());
        let handlers =
            ModelHandlers::start(pool, config, loader, InferenceMetrics::register(pool)).await?;
        Ok(handlers.named())
    }
    #[cfg(not(feature = "torch"))]
    {
        let _ = shape;
        tracing::warn!(
            pool,
            path = %path.display(),
            "this marie was built without the torch feature: the pool's classify and infer jobs will fail"
        );
        let unavailable: Arc<dyn Handler> = Arc::new(TorchMissing {
            pool: pool.to_owned(),
        });
        Ok(MODEL_HANDLERS
            .iter()
            .map(|name| (*name, unavailable.clone()))
            .collect())
    }
}

/// Stands in for the model handlers in a build without libtorch.
#[derive(Debug)]
pub struct TorchMissing {
    /// The pool.
    pub pool: String,
}

#[async_trait]
impl Handler for TorchMissing {
    async fn run(&self, _input: JobInput) -> Result<Vec<u8>, HandlerError> {
        Err(HandlerError::invalid_input(format!(
            "pool {:?} has a model, but this marie was built without libtorch: run \
             scripts/setup-libtorch and build with --features marie-node/torch (scripts/up does both)",
            self.pool
        )))
    }
}
