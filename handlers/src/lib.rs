//! What an executor runs: the [`Handler`] trait, the [`HandlerRegistry`] of a pool, and
//! the built-in handlers `echo`, `sleep`, `pdf-text` and `image-normalize`.
//!
//! Each built-in is a unit (or small config) struct implementing [`Handler`]. A pool's
//! [`HandlerRegistry`] is built from its configured handler names with [`registry`].
//! Other crates plug their own handlers in through the same trait (`marie-gpu`'s model
//! handlers, which also reuse [`normalize_image`]).
//!
//! CPU-heavy handlers run in `tokio::task::spawn_blocking` and catch panics of the
//! parsing libraries they call, so a malformed document fails its job with
//! [`HandlerError::invalid_input`] instead of taking the executor down.
//!
//! May depend on: `marie-protocol` (job metadata, handler errors), the decoders the
//! built-ins need (`pdf-extract`, `image`) and tokio's blocking pool and timers. Never on
//! the actors, the store or ractor: a handler knows nothing of leases or pools, so a
//! handler crate pulls in no SQLite and no cluster.

#![warn(missing_docs)]

mod echo;
mod handler;
mod image_normalize;
mod pdf_text;
mod sleep;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Once};

use marie_protocol::HandlerError;

pub use echo::Echo;
pub use handler::{Handler, HandlerRegistry, JobInput};
pub use image_normalize::{DEFAULT_MAX_SIDE, ImageNormalize, normalize_image};
pub use pdf_text::{PageText, PdfText, PdfTextOutput, extract_pdf_pages};
pub use sleep::Sleep;

/// Names of the built-in handlers, as used in a pool's configuration.
pub const BUILTIN: [&str; 4] = ["echo", "sleep", "pdf-text", "image-normalize"];

/// The built-in handler called `name` (one of [`BUILTIN`]), with its default settings.
pub fn builtin(name: &str) -> Option<Arc<dyn Handler>> {
    let handler: Arc<dyn Handler> = match name {
        "echo" => Arc::new(Echo),
        "sleep" => Arc::new(Sleep),
        "pdf-text" => Arc::new(PdfText),
        "image-normalize" => Arc::new(ImageNormalize::default()),
        _ => return None,
    };
    Some(handler)
}

/// A pool's configuration names a handler that is not built in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown handler {name:?}: the built-in handlers are {}; fix the pool's handler list",
    BUILTIN.join(", ")
)]
pub struct UnknownHandler {
    /// The name that was configured.
    pub name: String,
}

/// Builds a pool's registry from its configured handler names, each one of [`BUILTIN`].
///
/// Fails on the first name that is not built in. A name listed twice is registered once.
pub fn registry(names: &[String]) -> Result<HandlerRegistry, UnknownHandler> {
    let mut registry = HandlerRegistry::new();
    for name in names {
        let handler = builtin(name).ok_or_else(|| UnknownHandler { name: name.clone() })?;
        registry.register(name.clone(), handler);
    }
    Ok(registry)
}

/// Runs `work` on tokio's blocking pool. A worker that could not run or finish (the
/// runtime is shutting down) is a transient failure.
async fn run_blocking<T, F>(work: F) -> Result<T, HandlerError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, HandlerError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        HandlerError::transient(format!("the handler's worker thread did not finish: {e}"))
    })?
}

thread_local! {
    /// Set while [`catch_panic`] runs on this thread: the panic hook stays quiet.
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
    /// Where the last quiet panic on this thread happened.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static QUIET_HOOK: Once = Once::new();

/// Wraps the process's panic hook (once) so that panics inside [`catch_panic`] are not
/// printed; every other panic goes to the previous hook as before.
fn install_quiet_hook() {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET_PANICS.try_with(Cell::get).unwrap_or(false) {
                let location = info.location().map(|l| {
                    // The path's last three parts, as in `pdf-extract-0.12.1/src/lib.rs`.
                    let mut parts: Vec<&str> = l.file().rsplit(['/', '\\']).take(3).collect();
                    parts.reverse();
                    format!("{}:{}", parts.join("/"), l.line())
                });
                let _ = PANIC_LOCATION.try_with(|cell| *cell.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into `Err` with the panic's message and location. The
/// default hook does not print such a panic.
fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_quiet_hook();
    let was_quiet = QUIET_PANICS.replace(true);
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET_PANICS.set(was_quiet);
    result.map_err(|payload| {
        let mut message = panic_message(payload.as_ref());
        if let Some(location) = PANIC_LOCATION.take() {
            message = format!("{message} (at {location})");
        }
        tracing::warn!(panic = %message, "a decoder panicked; failing the job as invalid input");
        message
    })
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

/// A short, printable excerpt of a payload for error messages.
fn excerpt(payload: &[u8]) -> String {
    const MAX: usize = 40;
    let text = String::from_utf8_lossy(&payload[..payload.len().min(MAX)]);
    let ellipsis = if payload.len() > MAX { "…" } else { "" };
    format!("{text:?}{ellipsis}")
}
