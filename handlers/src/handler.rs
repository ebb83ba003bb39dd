//! The `Handler` trait that executors call, and the registry of handlers per pool.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use marie_protocol::{HandlerError, JobMetadata};

/// What a handler gets for one run.
#[derive(Clone, Debug)]
pub struct JobInput {
    /// The document or input bytes.
    pub payload: Vec<u8>,
    /// The job's metadata.
    pub metadata: JobMetadata,
}

/// A unit of work an executor can run: document in, output bytes out.
///
/// A run is cancelled by dropping its future, so a handler holds no state that a drop
/// would leave broken. CPU-heavy work belongs in `tokio::task::spawn_blocking`.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs the job. An input that can never succeed (an undecodable document) is a
    /// [`HandlerError::invalid_input`]; anything a retry may fix is
    /// [`HandlerError::transient`].
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, HandlerError>;

    /// Releases what the handler holds while its pool has no running executor here (a
    /// model and its device memory). The default holds nothing.
    async fn park(&self) {}

    /// Loads again what [`Handler::park`] released, before the pool runs jobs again.
    /// The default has nothing to load.
    async fn unpark(&self) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// The handlers one pool offers, by name.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
}

impl HandlerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a handler under `name`.
    pub fn register(&mut self, name: impl Into<String>, handler: Arc<dyn Handler>) {
        self.handlers.insert(name.into(), handler);
    }

    /// The handler called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(name).cloned()
    }

    /// Parks every handler (see [`Handler::park`]).
    pub async fn park(&self) {
        for handler in self.handlers.values() {
            handler.park().await;
        }
    }

    /// Unparks every handler; the first failure is returned.
    pub async fn unpark(&self) -> Result<(), HandlerError> {
        for handler in self.handlers.values() {
            handler.unpark().await?;
        }
        Ok(())
    }

    /// Names of every handler, sorted.
    pub fn names(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }
}

impl std::fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}
