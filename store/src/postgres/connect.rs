//! The connection pool, and the pause between attempts to reconnect while Postgres is
//! out of reach.
//!
//! deadpool hands out a pooled connection, opening a new one when none is idle; a
//! connection whose server went away is closed and not handed out again. While the
//! server cannot be reached, each failed attempt doubles the pause before the next one
//! (from [`FIRST_PAUSE`] up to [`MAX_PAUSE`]); calls made during the pause fail at once
//! with a retryable [`Unavailable`] instead of each waiting for a connect
//! timeout. The first connection that opens ends the pause.
//!
//! Every connection, the lease's included, uses TLS as the URL's `sslmode` and
//! `sslrootcert` say ([`super::tls`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};

use super::tls::{SslMode, TlsSettings, TlsSetupError};
use crate::{OpenError, StoreError, Unavailable};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The pause after the first failed attempt to connect.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// The pause after a failed attempt to connect, given the pause before it (none after
/// the first failure).
pub fn next_pause(previous: Option<Duration>) -> Duration {
    previous.map_or(FIRST_PAUSE, |p| (p * 2).min(MAX_PAUSE))
}
/// How long opening one connection may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for a connection when all are busy.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The pool of connections to one database.
pub struct Connections {
    pool: Pool,
    /// Where and how to connect, for connections outside the pool.
    config: tokio_postgres::Config,
    /// TLS for connections outside the pool, as for the pool's.
    connector: MakeRustlsConnect,
    /// The URL, its password masked.
    url: Arc<str>,
    /// How the connections use TLS.
    sslmode: SslMode,
    reconnect: Mutex<Reconnect>,
}

/// Failed attempts in a row, and when the next one may be made.
#[derive(Default)]
struct Reconnect {
    pause: Option<Duration>,
    next_at: Option<Instant>,
    last_error: Option<Arc<PoolError>>,
}

impl Connections {
    /// A pool of at most `size` connections to `url` (shown as `shown`, its password
    /// masked), each statement cancelled by the server after `statement_timeout` when
    /// given, and TLS as the URL's `sslmode` and `sslrootcert` say (the CA file is read
    /// now). Connects nothing yet.
    pub fn new(
        url: &str,
        shown: &str,
        size: usize,
        statement_timeout: Option<Duration>,
    ) -> Result<Connections, StoreError> {
        let tls_error = |e: TlsSetupError| StoreError::Tls {
            url: shown.to_owned(),
            sslmode: e.sslmode,
            reason: e.reason,
        };
        let (url, tls) = TlsSettings::take_from(url).map_err(tls_error)?;
        let connect_error = |source: OpenError| StoreError::Connect {
            url: shown.to_owned(),
            sslmode: tls.mode,
            source,
        };
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| connect_error(e.into()))?;
        tls.apply(&mut config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if let Some(timeout) = statement_timeout {
            let mut options = config.get_options().unwrap_or_default().to_owned();
            options.push_str(&format!(" -c statement_timeout={}", timeout.as_millis()));
            config.options(options.trim_start());
        }
        if config.get_application_name().is_none() {
            config.application_name("marie");
        }
        let connector = tls.connector().map_err(tls_error)?;
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(1)))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| connect_error(OpenError::Io(std::io::Error::other(e))))?;
        Ok(Connections {
            pool,
            config,
            connector,
            url: shown.into(),
            sslmode: tls.mode,
            reconnect: Mutex::default(),
        })
    }

    /// Where and how to connect, for a connection outside the pool.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// TLS for a connection outside the pool: the pool's own settings.
    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }

    /// The URL, its password masked.
    pub fn url(&self) -> Arc<str> {
        Arc::clone(&self.url)
    }

    /// The first connection, at start: a failure is the node's refusal to start.
    pub async fn first(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Connect {
            url: self.url.to_string(),
            sslmode: self.sslmode,
            source: match e {
                PoolError::Backend(e) => e.into(),
                other => other.into(),
            },
        })
    }

    /// A connection; fails at once, retryably, while the pause after failed attempts
    /// to connect lasts.
    pub async fn get(&self) -> Result<Object, Unavailable> {
        if let Some(waiting) = self.paused() {
            return Err(waiting);
        }
        match self.pool.get().await {
            Ok(client) => {
                self.connected();
                Ok(client)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// The error to answer while paused, if a pause lasts.
    fn paused(&self) -> Option<Unavailable> {
        let state = self.lock();
        let left = state.next_at?.checked_duration_since(Instant::now())?;
        Some(Unavailable {
            url: Arc::clone(&self.url),
            retry_in_ms: left.as_millis() as u64,
            source: Arc::clone(state.last_error.as_ref()?),
        })
    }

    /// Ends the pause after a connection opened or was reused.
    fn connected(&self) {
        let mut state = self.lock();
        if state.pause.take().is_some() {
            tracing::info!(url = %self.url, "job store: Postgres is reachable again");
        }
        *state = Reconnect::default();
    }

    /// Records a failed attempt: one that could not connect starts or lengthens the
    /// pause; a pool that is only busy does not.
    fn failed(&self, error: PoolError) -> Unavailable {
        let connect_failed = matches!(
            error,
            PoolError::Backend(_) | PoolError::Timeout(TimeoutType::Create)
        );
        let error = Arc::new(error);
        if !connect_failed {
            return Unavailable {
                url: Arc::clone(&self.url),
                retry_in_ms: 0,
                source: error,
            };
        }
        let mut state = self.lock();
        let pause = next_pause(state.pause);
        if state.pause.is_none() {
            tracing::warn!(url = %self.url, error = %error, "job store: cannot connect to Postgres; retrying with backoff");
        }
        state.pause = Some(pause);
        state.next_at = Some(Instant::now() + pause);
        state.last_error = Some(Arc::clone(&error));
        Unavailable {
            url: Arc::clone(&self.url),
            retry_in_ms: pause.as_millis() as u64,
            source: error,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reconnect> {
        // Each change is whole under the lock.
        self.reconnect
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
