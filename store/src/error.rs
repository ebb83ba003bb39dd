//! Why the store failed, and whether trying again can help.
//!
//! In process a [`StoreError`] keeps its cause (the SQLite, Postgres or I/O error, the
//! failed call to another node's store service); it becomes words only where it crosses
//! the wire, as a [`StoreFailure`] that carries its [`StoreErrorKind`] along. A Postgres
//! URL appears in an error only with its password masked
//! ([`crate::postgres::redact`]).

use std::error::Error;
use std::sync::Arc;

use rusqlite::ErrorCode;
use tokio_postgres::error::{DbError, SqlState};

use crate::postgres::SslMode;

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
        "the job store at {path} has schema version {found}, not {known} that this build knows: run the Marie release that wrote it, or one that knows schema version {found}"
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
    /// Postgres could not be reached or refused this node at start.
    #[error(
        "cannot connect to the Postgres job store at {url} (store.url, MARIE_STORE__URL) with sslmode={sslmode}: {}",
        connect_hint(*sslmode, source)
    )]
    Connect {
        /// `store.url`, its password masked.
        url: String,
        /// How the connection used TLS.
        sslmode: SslMode,
        /// Why.
        #[source]
        source: OpenError,
    },
    /// The TLS settings of `store.url` cannot be used: an unknown `sslmode`, a CA file
    /// that cannot be read.
    #[error(
        "cannot set up TLS to the Postgres job store at {url} (store.url, MARIE_STORE__URL) with sslmode={sslmode}: {reason}"
    )]
    Tls {
        /// `store.url`, its password masked.
        url: String,
        /// `sslmode` as the URL gives it.
        sslmode: String,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// Postgres failed a read or write (shared: one failed commit answers every write of
    /// its batch).
    #[error("the Postgres job store failed a read or write")]
    Postgres(#[source] Arc<tokio_postgres::Error>),
    /// No connection to Postgres could be had while the node runs.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// This node's lease ended: another node leads (or may), and the write of the
    /// deposed leader was refused so that it changes nothing behind its successor.
    #[error(
        "this node no longer leads the cluster: its writes carry epoch {epoch}{}, so the job store refused this one and it changed nothing; the node stops leading and a standby takes over",
        match current { Some(current) => format!(" and the lease is at epoch {current}"), None => " and its lease could not be renewed in time".to_owned() }
    )]
    Deposed {
        /// The epoch of this node's lease.
        epoch: u64,
        /// The epoch the lease row carries, when the database said.
        current: Option<u64>,
    },
    /// A value does not fit its column, or a stored one does not fit Marie's type.
    #[error("the job store cannot hold or read a value: {0}")]
    Value(String),
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

/// No connection to Postgres could be had while the node runs: the server is down or out
/// of reach. The pool tries again, waiting longer after each failure.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "the Postgres job store at {url} is out of reach (next connection attempt in {retry_in_ms} ms): check that the server is up"
)]
pub struct Unavailable {
    /// `store.url`, its password masked.
    pub url: Arc<str>,
    /// How long until the pool tries to connect again.
    pub retry_in_ms: u64,
    /// The last failed attempt.
    #[source]
    pub source: Arc<deadpool_postgres::PoolError>,
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
    /// Postgres refused the URL, the login or the schema change.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// The connection pool could not connect.
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl StoreError {
    /// Whether the same operation may pass if tried again.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Open { .. }
            | StoreError::SchemaVersion { .. }
            | StoreError::InUse { .. }
            | StoreError::Connect { .. }
            | StoreError::Tls { .. }
            | StoreError::Deposed { .. }
            | StoreError::Value(_) => StoreErrorKind::Permanent,
            StoreError::Database(e) => sqlite_kind(e),
            StoreError::Postgres(e) => postgres_kind(e),
            StoreError::Interrupted(_)
            | StoreError::Closed
            | StoreError::Unreachable(_)
            | StoreError::Unavailable(_) => StoreErrorKind::Retryable,
            StoreError::Remote(failure) => failure.kind,
        }
    }

    /// The error as it crosses the wire: its kind, and its causes in words.
    pub fn failure(&self) -> StoreFailure {
        if let StoreError::Remote(failure) = self {
            return failure.clone();
        }
        let kind = self.kind();
        let mut message = match kind {
            StoreErrorKind::Full => format!(
                "the job store is full (no space left on its disk): free space where it keeps its data, or give it a larger disk; new jobs are refused until then, and the ends of accepted jobs are written once there is room: {self}"
            ),
            _ => self.to_string(),
        };
        let mut cause = self.source();
        while let Some(e) = cause {
            message.push_str(": ");
            message.push_str(&e.to_string());
            cause = e.source();
        }
        StoreFailure { kind, message }
    }
}

/// What to check when a connection at start failed: the server's certificate, the
/// server's refusal of a connection in the clear, or the address and login.
fn connect_hint(sslmode: SslMode, source: &OpenError) -> &'static str {
    let causes = || {
        std::iter::successors(Some(source as &(dyn Error + 'static)), |e| {
            let e: &(dyn Error + 'static) = *e;
            e.source()
        })
    };
    let tls = causes().find_map(|e| {
        e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        })
    });
    let refused = causes()
        .filter_map(|e| e.downcast_ref::<DbError>())
        .any(|e| e.code() == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
    match tls {
        Some(rustls::Error::InvalidCertificate(_)) => {
            "the server's certificate did not pass the check: give the CA that signed it as sslrootcert=PATH in the URL (else the system's CAs are used), and with verify-full connect by a host name the certificate names"
        }
        Some(_) => {
            "the TLS handshake with the server failed: check the server's TLS setup (ssl_cert_file, ssl_key_file, ssl_min_protocol_version)"
        }
        None if refused && sslmode == SslMode::Disable => {
            "the server refused a connection without TLS (no pg_hba.conf entry): if it takes TLS connections only, as managed Postgres services do, set sslmode=require, or verify-full with sslrootcert=PATH, in the URL; else allow this host, user and database in its pg_hba.conf"
        }
        None if sslmode.requires_tls() => {
            "check the host, port and database name in the URL, the user and its password, and that the server is up, accepts connections from this host and has TLS on (ssl = on)"
        }
        None => {
            "check the host, port and database name in the URL, the user and its password, and that the server is up and accepts connections from this host"
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
            | ErrorCode::OutOfMemory,
        ) => StoreErrorKind::Retryable,
        Some(ErrorCode::DiskFull) => StoreErrorKind::Full,
        _ => StoreErrorKind::Permanent,
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        StoreError::Postgres(Arc::new(error))
    }
}

/// A lost connection, a server shutting down or short of resources, and a transaction
/// that lost a conflict may pass on a later try; a constraint violation, a value that
/// does not convert or a statement Postgres rejects repeats.
fn postgres_kind(error: &tokio_postgres::Error) -> StoreErrorKind {
    if error.is_closed() {
        return StoreErrorKind::Retryable;
    }
    match error.code() {
        Some(code) => postgres_code_kind(code),
        // No answer from the server: the connection failed under the statement.
        None if error
            .source()
            .is_some_and(|cause| cause.is::<std::io::Error>()) =>
        {
            StoreErrorKind::Retryable
        }
        None => StoreErrorKind::Permanent,
    }
}

/// The kind of a Postgres error code: connection exceptions (class 08), transaction
/// rollbacks (40: serialization failures, deadlocks), insufficient resources (53),
/// operator interventions (57: shutdowns, cancels), system errors (58) and a lock not
/// available (55P03) are retryable.
fn postgres_code_kind(code: &SqlState) -> StoreErrorKind {
    if code == &SqlState::DISK_FULL {
        return StoreErrorKind::Full;
    }
    let code = code.code();
    let retryable = ["08", "40", "53", "57", "58"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == SqlState::LOCK_NOT_AVAILABLE.code();
    if retryable {
        StoreErrorKind::Retryable
    } else {
        StoreErrorKind::Permanent
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
        for code in [ffi::SQLITE_BUSY, ffi::SQLITE_LOCKED, ffi::SQLITE_IOERR] {
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
    fn a_full_disk_is_its_own_kind_and_says_so() {
        let full = sqlite(ffi::SQLITE_FULL);
        assert_eq!(full.kind(), StoreErrorKind::Full);
        let failure = full.failure();
        assert_eq!(failure.kind, StoreErrorKind::Full);
        assert!(
            failure.message.contains("the job store is full"),
            "{failure}"
        );
        assert_eq!(
            postgres_code_kind(&SqlState::DISK_FULL),
            StoreErrorKind::Full
        );
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
    fn postgres_conflicts_and_lost_connections_are_retryable_and_constraints_are_not() {
        for code in [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::CONNECTION_FAILURE,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::LOCK_NOT_AVAILABLE,
        ] {
            assert_eq!(
                postgres_code_kind(&code),
                StoreErrorKind::Retryable,
                "{code:?}"
            );
        }
        for code in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::CHECK_VIOLATION,
            SqlState::NOT_NULL_VIOLATION,
            SqlState::UNDEFINED_TABLE,
            SqlState::INVALID_PASSWORD,
        ] {
            assert_eq!(
                postgres_code_kind(&code),
                StoreErrorKind::Permanent,
                "{code:?}"
            );
        }
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
