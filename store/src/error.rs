//! Why the store failed, and whether trying again can help.
//!
//! In process a [`StoreError`] keeps its cause (the SQLite or I/O error, the failed
//! call to another node's store service); it becomes words only where it crosses the
//! wire, as a [`StoreFailure`] that carries its [`StoreErrorKind`] along.

use std::error::Error;
use std::sync::Arc;

use rusqlite::ErrorCode;

pub use marie_protocol::store::{StoreErrorKind, StoreFailure};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database, its directory or its lock file could not be opened or created.
    #[error("cannot open the job store at {path}")]
    Open {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: OpenError,
    },
    /// The database was written by a Marie release with another schema.
    #[error(
        "the job store at {path} has schema version {found}, not {known} that this build knows: run the Marie release that wrote it"
    )]
    SchemaVersion {
        /// Where.
        path: String,
        /// The version in the file.
        found: i32,
        /// The version this build writes.
        known: i32,
    },
    /// Another process holds the store of this data dir.
    #[error(
        "the job store in {dir} is in use by {holder}: stop that node first, or give this one its own data dir (--data-dir, node.data_dir or MARIE_NODE__DATA_DIR)"
    )]
    InUse {
        /// The data dir.
        dir: String,
        /// Who holds it (`marie pid N`), as far as it can be told.
        holder: String,
    },
    /// SQLite failed a read or write (shared: one failed commit answers every write of
    /// its batch).
    #[error("the job store failed a read or write")]
    Database(#[source] Arc<rusqlite::Error>),
    /// A read was cut short: its task panicked or the runtime is shutting down.
    #[error("a read of the job store was interrupted")]
    Interrupted(#[source] tokio::task::JoinError),
    /// The store's writer is gone (the node is shutting down).
    #[error("the job store is closed: the node is shutting down")]
    Closed,
    /// The store service on the server node could not be reached or did not answer.
    #[error(
        "the job store on the server node did not answer: check that the server node is up and joined to this one"
    )]
    Unreachable(#[source] Box<dyn Error + Send + Sync>),
    /// The store on the server node failed; its failure came over the wire.
    #[error("the job store on the server node failed")]
    Remote(#[source] StoreFailure),
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file system refused (the directory, the lock file, the writer thread).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// SQLite refused the file.
    #[error(transparent)]
    Database(#[from] rusqlite::Error),
}

impl StoreError {
    /// Whether the same operation may pass if tried again.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Open { .. }
            | StoreError::SchemaVersion { .. }
            | StoreError::InUse { .. } => StoreErrorKind::Permanent,
            StoreError::Database(e) => sqlite_kind(e),
            StoreError::Interrupted(_) | StoreError::Closed | StoreError::Unreachable(_) => {
                StoreErrorKind::Retryable
            }
            StoreError::Remote(failure) => failure.kind,
        }
    }

    /// The error as it crosses the wire: its kind, and its causes in words.
    pub fn failure(&self) -> StoreFailure {
        if let StoreError::Remote(failure) = self {
            return failure.clone();
        }
        let mut message = self.to_string();
        let mut cause = self.source();
        while let Some(e) = cause {
            message.push_str(": ");
            message.push_str(&e.to_string());
            cause = e.source();
        }
        StoreFailure {
            kind: self.kind(),
            message,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Database(Arc::new(error))
    }
}

/// SQLite's contention and resource errors may pass on a later try; every other error
/// (a constraint, a corrupt file, a value that does not convert) repeats.
fn sqlite_kind(error: &rusqlite::Error) -> StoreErrorKind {
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::OutOfMemory,
        ) => StoreErrorKind::Retryable,
        _ => StoreErrorKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::ffi;

    use super::*;

    fn sqlite(code: i32) -> StoreError {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None).into()
    }

    #[test]
    fn contention_and_resources_are_retryable() {
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR,
        ] {
            assert_eq!(
                sqlite(code).kind(),
                StoreErrorKind::Retryable,
                "code {code}"
            );
        }
        assert_eq!(StoreError::Closed.kind(), StoreErrorKind::Retryable);
        let unreachable = StoreError::Unreachable("no store service is connected".into());
        assert_eq!(unreachable.kind(), StoreErrorKind::Retryable);
    }

    #[test]
    fn a_broken_file_or_schema_is_permanent() {
        for code in [
            ffi::SQLITE_CORRUPT,
            ffi::SQLITE_CONSTRAINT,
            ffi::SQLITE_NOTADB,
        ] {
            assert_eq!(
                sqlite(code).kind(),
                StoreErrorKind::Permanent,
                "code {code}"
            );
        }
        let conversion = StoreError::from(rusqlite::Error::InvalidColumnType(
            0,
            "state".into(),
            rusqlite::types::Type::Integer,
        ));
        assert_eq!(conversion.kind(), StoreErrorKind::Permanent);
        let newer = StoreError::SchemaVersion {
            path: "marie.db".into(),
            found: 9,
            known: 1,
        };
        assert_eq!(newer.kind(), StoreErrorKind::Permanent);
    }

    #[test]
    fn the_wire_form_keeps_the_kind_and_every_cause() {
        let failure = sqlite(ffi::SQLITE_BUSY).failure();
        assert_eq!(failure.kind, StoreErrorKind::Retryable);
        assert!(
            failure
                .message
                .starts_with("the job store failed a read or write: "),
            "{failure}"
        );
        assert!(failure.message.contains("locked"), "{failure}");
    }

    #[test]
    fn a_remote_failure_keeps_its_kind() {
        let remote = StoreError::Remote(StoreFailure {
            kind: StoreErrorKind::Retryable,
            message: "database is locked".into(),
        });
        assert_eq!(remote.kind(), StoreErrorKind::Retryable);
        assert_eq!(remote.failure().message, "database is locked");
    }
}
