//! How the Supervisor's decisions are carried out. The interface assumes nothing about
//! where executors run: in this process (`local`), as processes on this machine
//! (`process`, in the node crate), or somewhere an external autoscaler manages
//! (`external`: decide and export only).

use std::error::Error;

use async_trait::async_trait;
use marie_protocol::HandlerError;

/// Why a backend could not start an executor. The Supervisor logs it and tries again
/// at its next tick.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend has no pool of that name.
    #[error("no pool {0:?} here: the backend starts executors of its configured pools only")]
    UnknownPool(String),
    /// The pool's handlers could not be loaded (a model that does not load).
    #[error("pool {pool}: cannot load its handlers")]
    Handlers {
        /// The pool.
        pool: String,
        /// The handler's failure.
        #[source]
        source: HandlerError,
    },
    /// A step of starting the executor failed.
    #[error("executor {executor} did not start: {step} failed")]
    Start {
        /// The executor's name.
        executor: String,
        /// The step that failed, in words.
        step: String,
        /// Why.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
}

impl BackendError {
    /// The `step` of starting `executor` failed with `source`.
    pub fn start(
        executor: &str,
        step: impl Into<String>,
        source: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> Self {
        BackendError::Start {
            executor: executor.to_owned(),
            step: step.into(),
            source: source.into(),
        }
    }
}

/// Starts and releases executors of a pool.
#[async_trait]
pub trait ScaleBackend: Send + Sync + 'static {
    /// What the backend is called in logs (`local`, `process`, `external`).
    fn name(&self) -> &'static str;

    /// Asks for one more executor of `pool`. Returns its name (it registers with the
    /// CapacityManager once ready), or `None` when the backend does not act itself.
    async fn start(&self, pool: &str) -> Result<Option<String>, BackendError>;

    /// Lets go of an executor that has drained, or whose start is cancelled.
    async fn release(&self, pool: &str, executor: &str);

    /// The node is stopping: let every executor this backend started finish its running
    /// jobs and stop. The default has nothing to stop.
    async fn shutdown(&self) {}
}

/// Decides nothing itself: the Supervisor only exports the desired counts (target,
/// `marie_supervisor_desired_executors`) for an HPA or KEDA to act on.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExternalBackend;

#[async_trait]
impl ScaleBackend for ExternalBackend {
    fn name(&self) -> &'static str {
        "external"
    }

    async fn start(&self, _pool: &str) -> Result<Option<String>, BackendError> {
        Ok(None)
    }

    async fn release(&self, _pool: &str, _executor: &str) {}
}
