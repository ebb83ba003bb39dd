//! The `local` backend: executors are actors in this process. When a pool's last local
//! executor is released its handlers park (a model frees its memory); the first start
//! after that unparks them again, and that load is part of the pool's cold start.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use ractor::Actor;

use super::backend::{BackendError, ScaleBackend};
use crate::executor::{Executor, ExecutorArgs};
use marie_handlers::HandlerRegistry;

/// One pool this backend can start executors of.
#[derive(Clone, Debug)]
pub struct LocalPool {
    /// Slots of each executor.
    pub slots: u32,
    /// The pool's handlers (shared by its executors here).
    pub handlers: HandlerRegistry,
}

/// Spawns executor actors in this process.
pub struct LocalBackend {
    node: String,
    pools: BTreeMap<String, LocalPool>,
    state: Mutex<LocalState>,
}

#[derive(Default)]
struct LocalState {
    next: u64,
    live: BTreeMap<String, BTreeSet<String>>,
}

impl LocalBackend {
    /// A backend naming executors `<node>-<pool>-a<n>`.
    pub fn new(node: impl Into<String>, pools: BTreeMap<String, LocalPool>) -> Self {
        LocalBackend {
            node: node.into(),
            pools,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ScaleBackend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn start(&self, pool: &str) -> Result<Option<String>, BackendError> {
        let config = self
            .pools
            .get(pool)
            .ok_or_else(|| BackendError::UnknownPool(pool.to_owned()))?;
        let (name, first) = {
            let mut state = self.lock();
            state.next += 1;
            let name = format!("{}-{pool}-a{}", self.node, state.next);
            let live = state.live.entry(pool.to_owned()).or_default();
            let first = live.is_empty();
            live.insert(name.clone());
            (name, first)
        };
        if first && let Err(e) = config.handlers.unpark().await {
            self.lock()
                .live
                .entry(pool.to_owned())
                .or_default()
                .remove(&name);
            return Err(BackendError::Handlers {
                pool: pool.to_owned(),
                source: e,
            });
        }
        let args = ExecutorArgs {
            name: name.clone(),
            pool: pool.to_owned(),
            slots: config.slots,
            handlers: config.handlers.clone(),
        };
        Actor::spawn(Some(name.clone()), Executor, args)
            .await
            .map_err(|e| BackendError::start(&name, "spawning its actor", e))?;
        Ok(Some(name))
    }

    async fn release(&self, pool: &str, executor: &str) {
        if let Some(cell) = ractor::registry::where_is(executor) {
            cell.stop(Some("released by the Supervisor".into()));
        }
        let now_empty = {
            let mut state = self.lock();
            let live = state.live.entry(pool.to_owned()).or_default();
            live.remove(executor) && live.is_empty()
        };
        if now_empty && let Some(config) = self.pools.get(pool) {
            tracing::info!(pool, "no executor left here: parking the pool's handlers");
            config.handlers.park().await;
        }
    }
}
