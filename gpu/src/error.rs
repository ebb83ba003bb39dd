//! Why a pool's model could not be set up or run. Every message names the pool and says
//! what to do.

use std::path::PathBuf;

/// A model that cannot serve: found at start-up (or when a parked pool unparks).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The `[executor.pools.model]` table is wrong.
    #[error("pool {pool:?}: invalid model configuration: {reason}")]
    InvalidConfig {
        /// The pool.
        pool: String,
        /// What is wrong, and what to write instead.
        reason: String,
    },
    /// No file at the configured path.
    #[error(
        "pool {pool:?}: model file {} not found (looked at {}); fix executor.pools.model.path \
         or run gpu/fixtures/make_fixture.py --venv for the bundled classifier",
        path.display(),
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// The pool.
        pool: String,
        /// The configured path.
        path: PathBuf,
        /// Every place it was looked for.
        searched: Vec<PathBuf>,
    },
    /// libtorch could not load the file.
    #[error(
        "pool {pool:?}: cannot load the model {}: {reason}; it must be a TorchScript file \
         (torch.jit.trace or torch.jit.script, then .save)",
        path.display()
    )]
    Unreadable {
        /// The pool.
        pool: String,
        /// The file.
        path: PathBuf,
        /// What libtorch said.
        reason: String,
    },
    /// A trial forward pass on a zero input failed or gave the wrong shape.
    #[error("pool {pool:?}: the model does not fit its configuration: {reason}")]
    DoesNotFit {
        /// The pool.
        pool: String,
        /// What was expected and what came out.
        reason: String,
    },
    /// The configured device is not there.
    #[error("pool {pool:?}: device {device} is not available: {reason}")]
    DeviceUnavailable {
        /// The pool.
        pool: String,
        /// The configured device.
        device: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// The model thread could not be started or died while loading.
    #[error("pool {pool:?}: the model thread failed: {reason}")]
    Thread {
        /// The pool.
        pool: String,
        /// What happened.
        reason: String,
    },
}
