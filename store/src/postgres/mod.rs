//! The shared Postgres backend: the store of a cluster whose server may run on more
//! than one machine (one at a time, for now).
//!
//! A pool of connections ([`connect`]) serves reads directly. Inserts, updates and
//! recovery go to one writer task that commits every call waiting in one transaction
//! (group commit, [`writer`]), with one multi-row statement per kind of call
//! ([`write`]). The schema is versioned, compiled in and applied at start under an
//! advisory lock ([`migrate`]). Every insert announces its new jobs with `NOTIFY`, which
//! the CapacityManager's node hears ([`listen`]). A lost connection, a server restarting or a conflict
//! answers a retryable error, and the pool reconnects with backoff; a constraint
//! violation or a value out of range is permanent.
//!
//! Several server nodes share one database; one of them leads ([`lease`]), and the
//! writes of its CapacityManager go through a handle [`PostgresStore::fenced`] by its
//! lease's epoch ([`fence`]). Gateways insert through the store itself, unfenced: any
//! node may accept work, whoever leads.
//!
//! The URL carries the password; it is only ever shown through [`redact`]. Its
//! `sslmode` and `sslrootcert` say how the connections use TLS, as libpq reads them
//! ([`SslMode`]).

mod connect;
pub mod fence;
pub mod lease;
mod listen;
mod migrate;
mod rows;
mod tls;
mod url;
mod verify;
mod write;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use marie_protocol::messages::{JobPage, ListQuery, QueuedJob};
use marie_protocol::{JobId, JobState, JobStatus};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use self::connect::Connections;
use self::fence::Fence;
use self::lease::LeaderLease;
use self::rows::{QUEUED_COLUMNS, STATUS_COLUMNS};
use self::writer::{Command, Reply};
use crate::{
    GatewayStore, Inserted, JobStore, JobUpdate, NewJob, Notice, Recovered, StoreError, page_limit,
};

pub use self::migrate::SCHEMA_VERSION;
pub use self::tls::SslMode;
pub use self::url::redact;

/// How to open a [`PostgresStore`].
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database?options`, or the `key=value` form;
    /// `sslmode` and `sslrootcert` among the options say how it uses TLS ([`SslMode`]).
    pub url: String,
    /// Most connections the store holds open (the writer uses one at a time; reads the
    /// others).
    pub pool_size: usize,
    /// Most calls applied in one transaction.
    pub max_batch: usize,
}

impl std::fmt::Debug for PostgresOptions {
    /// The URL with its password masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact(&self.url))
            .field("pool_size", &self.pool_size)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

impl PostgresOptions {
    /// `url`, with a pool of 8 connections and at most 1024 calls per transaction.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresOptions {
            url: url.into(),
            pool_size: 8,
            max_batch: 1024,
        }
    }
}

/// The job store in a Postgres database, with group commit.
pub struct PostgresStore {
    options: PostgresOptions,
    connections: Arc<Connections>,
    /// Calls to the writer task; it ends when the store is dropped.
    writer: mpsc::UnboundedSender<Command>,
    /// Transactions committed by the writer.
    commits: Arc<AtomicU64>,
}

impl PostgresStore {
    /// Connects, brings the schema up to date (or refuses a newer one) and starts the
    /// writer task. Fails, naming the URL with its password masked, when Postgres
    /// cannot be reached or refuses the login.
    pub async fn open(options: PostgresOptions) -> Result<Self, StoreError> {
        let shown = redact(&options.url);
        let connections = Arc::new(Connections::new(
            &options.url,
            &shown,
            options.pool_size,
            None,
        )?);
        let mut client = connections.first().await?;
        migrate::migrate(&mut client, &shown).await?;
        drop(client);
        tracing::info!(url = %shown, schema = SCHEMA_VERSION, "job store: Postgres");
        Ok(PostgresStore::with_writer(options, connections, None))
    }

    /// A store over `connections` with a writer task of its own, under `fence` if given.
    fn with_writer(
        options: PostgresOptions,
        connections: Arc<Connections>,
        fence: Option<Arc<Fence>>,
    ) -> PostgresStore {
        let (writer, commands) = mpsc::unbounded_channel();
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer::write_loop(
            Arc::clone(&connections),
            commands,
            options.max_batch.max(1),
            Arc::clone(&commits),
            fence,
        ));
        PostgresStore {
            options,
            connections,
            writer,
            commits,
        }
    }

    /// A handle on the same database, sharing the connections, whose writes commit only
    /// while the leader's lease is at `fence`'s epoch: the store of a leader's
    /// CapacityManager. It has a writer of its own, so a refused write never takes
    /// other nodes' inserts down with it; it stops when the handle is dropped.
    pub fn fenced(&self, fence: Arc<Fence>) -> PostgresStore {
        PostgresStore::with_writer(
            self.options.clone(),
            Arc::clone(&self.connections),
            Some(fence),
        )
    }

    /// The leader's lease as the node `node` takes it, on a connection of its own whose
    /// statements the server cancels after `statement_timeout`.
    pub fn leader_lease(
        &self,
        node: &str,
        statement_timeout: Duration,
    ) -> Result<LeaderLease, StoreError> {
        let shown = redact(&self.options.url);
        LeaderLease::new(&self.options.url, &shown, node, statement_timeout)
    }

    /// Transactions committed since the store was opened (each holds one or more
    /// inserts, updates or recoveries).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Sends a call to the writer and waits for its answer, given after the commit.
    async fn write<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(command(reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `sql` with `params` on a pooled connection.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.connections.get().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }
}

#[async_trait]
impl GatewayStore for PostgresStore {
    async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<Inserted>, StoreError> {
        self.write(|reply| Command::Insert(jobs, reply)).await
    }

    async fn get(&self, id: JobId) -> Result<Option<JobStatus>, StoreError> {
        let sql = format!("SELECT {STATUS_COLUMNS} FROM jobs WHERE id = $1");
        let rows = self.query(&sql, &[&id.0]).await?;
        rows.first().map(rows::status).transpose()
    }

    async fn statuses(&self, ids: Vec<JobId>) -> Result<Vec<JobStatus>, StoreError> {
        let ids: Vec<uuid::Uuid> = ids.into_iter().map(|id| id.0).collect();
        let sql = format!("SELECT {STATUS_COLUMNS} FROM jobs WHERE id = ANY($1::uuid[])");
        self.query(&sql, &[&ids])
            .await?
            .iter()
            .map(rows::status)
            .collect()
    }

    async fn output(&self, id: JobId) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = "SELECT output FROM jobs WHERE id = $1 AND state = 'succeeded'";
        let rows = self.query(sql, &[&id.0]).await?;
        match rows.first() {
            Some(row) => Ok(row.try_get(0)?),
            None => Ok(None),
        }
    }

    async fn list(&self, query: ListQuery) -> Result<JobPage, StoreError> {
        let limit = page_limit(query.limit);
        let state = query.state.map(JobState::as_str);
        let after = query.after.map(|id| id.0);
        let limit_param = i64::try_from(limit).map_err(|e| StoreError::Value(e.to_string()))?;
        let mut sql = format!("SELECT {STATUS_COLUMNS} FROM jobs WHERE true");
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(state) = &state {
            params.push(state);
            sql.push_str(&format!(" AND state = ${}", params.len()));
        }
        if let Some(pool) = &query.pool {
            params.push(pool);
            sql.push_str(&format!(" AND pool = ${}", params.len()));
        }
        if let Some(after) = &after {
            params.push(after);
            sql.push_str(&format!(" AND id < ${}", params.len()));
        }
        params.push(&limit_param);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
        let jobs = self
            .query(&sql, &params)
            .await?
            .iter()
            .map(rows::status)
            .collect::<Result<Vec<_>, _>>()?;
        let next = (jobs.len() == limit)
            .then(|| jobs.last().map(|job| job.id))
            .flatten();
        Ok(JobPage { jobs, next })
    }
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn update(&self, updates: Vec<JobUpdate>) -> Result<Vec<(JobId, JobState)>, StoreError> {
        self.write(|reply| Command::Update(updates, reply)).await
    }

    async fn recover(&self) -> Result<Recovered, StoreError> {
        self.write(Command::Recover).await
    }

    async fn queued_ids(&self) -> Result<Vec<JobId>, StoreError> {
        let sql = "SELECT id FROM jobs WHERE state = 'queued' ORDER BY id";
        self.query(sql, &[])
            .await?
            .iter()
            .map(|row| rows::job_id(row, 0))
            .collect()
    }

    async fn queued(&self, ids: Vec<JobId>) -> Result<Vec<QueuedJob>, StoreError> {
        let ids: Vec<uuid::Uuid> = ids.into_iter().map(|id| id.0).collect();
        let sql = format!(
            "SELECT {QUEUED_COLUMNS} FROM jobs WHERE id = ANY($1::uuid[]) AND state = 'queued' \
             ORDER BY id"
        );
        self.query(&sql, &[&ids])
            .await?
            .iter()
            .map(rows::queued)
            .collect()
    }

    fn notices(&self) -> Option<mpsc::UnboundedReceiver<Notice>> {
        Some(listen::spawn(
            self.connections.config(),
            self.connections.connector(),
            self.connections.url(),
        ))
    }
}
