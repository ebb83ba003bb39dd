//! The embedded SQLite backend.
//!
//! One writer thread owns the write connection. Inserts, updates and recovery are sent
//! to it as commands; it takes every command waiting (up to [`SqliteOptions::max_batch`]),
//! applies them in one transaction and answers each caller after the commit, so
//! concurrent callers share one fsync (group commit). Each command runs in its own
//! savepoint: one that fails is undone and answered with its error without failing the
//! others. Reads use a second connection, which WAL lets run beside the writer. One
//! process at a time: the store holds an exclusive lock on the database ([`super::lock`]).
//!
//! Ids are stored as hyphenated lowercase UUIDv7 strings, all 36 characters long, so
//! their text order is their byte order and `ORDER BY id` is creation order.

use std::error::Error;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use marie_protocol::messages::{JobPage, ListQuery, QueuedJob, RunningJob};
use marie_protocol::{DedupPolicy, JobId, JobMetadata, JobSpec, JobState, JobStatus, TraceContext};
use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::lock::StoreLock;
use crate::{
    GatewayStore, Inserted, JobStore, JobUpdate, NewJob, OpenError, Recovered, StoreError,
    dedup_name,
};

/// The schema this build writes, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i32 = 2;

const SCHEMA: &str = "
CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    pool TEXT NOT NULL,
    handler TEXT NOT NULL,
    payload BLOB NOT NULL,
    project_id TEXT NOT NULL,
    ref_type TEXT NOT NULL,
    ref_id TEXT NOT NULL,
    priority INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    expire_after_ms INTEGER,
    dedup TEXT NOT NULL,
    trace TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    last_error TEXT,
    executor TEXT,
    output BLOB,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX jobs_by_ref ON jobs (ref_type, ref_id);
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_pool_state ON jobs (pool, state, id);
CREATE INDEX jobs_by_pool ON jobs (pool, id);
";

/// What version 2 adds to a version-1 file: the index that pages the jobs of one pool
/// (any state) newest first without sorting them all.
const TO_VERSION_2: &str = "CREATE INDEX IF NOT EXISTS jobs_by_pool ON jobs (pool, id);";

/// Columns read into a [`JobStatus`] by [`status_from_row`].
const STATUS_COLUMNS: &str = "id, pool, handler, project_id, ref_type, ref_id, priority, state, \
     attempt, max_attempts, last_error, executor, created_at_ms, updated_at_ms, length(output), \
     trace";

/// Columns read into a [`QueuedJob`] by [`queued_from_row`].
const QUEUED_COLUMNS: &str = "id, pool, handler, payload, project_id, ref_type, ref_id, \
     priority, max_attempts, timeout_ms, expire_after_ms, dedup, trace, attempt, created_at_ms";

/// The condition every update carries: a terminal job never changes again.
const LIVE: &str = "state IN ('queued', 'running')";

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// `PRAGMA synchronous = FULL` (each commit survives a power loss) rather than
    /// `NORMAL` (survives a process crash; the last commits may be lost with the OS).
    pub synchronous_full: bool,
    /// The most commands applied in one transaction.
    pub max_batch: usize,
}

impl Default for SqliteOptions {
    /// Fully durable commits, at most 1024 commands per transaction.
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: true,
            max_batch: 1024,
        }
    }
}

/// Where the writer sends a command's result.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write for the writer thread.
enum Command {
    Insert(Vec<NewJob>, Reply<Vec<Inserted>>),
    Update(Vec<JobUpdate>, Reply<Vec<(JobId, JobState)>>),
    Recover(Reply<Recovered>),
}

/// How a batch's transaction ended: one error shared by every command of the batch.
type Committed = Result<(), Arc<rusqlite::Error>>;

/// A command applied but not yet answered: it is called with the commit's outcome.
type Answer = Box<dyn FnOnce(&Committed) + Send>;

/// The job store in one SQLite file, with group commit.
pub struct SqliteStore {
    /// Commands to the writer; `None` only while dropping.
    writer: Option<mpsc::Sender<Command>>,
    /// The writer thread, joined on drop.
    thread: Option<JoinHandle<()>>,
    /// The read connection.
    reader: Arc<Mutex<Connection>>,
    /// Transactions committed by the writer.
    commits: Arc<AtomicU64>,
    /// Keeps other processes out of the database; released last, after the writer.
    _lock: StoreLock,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file, its directory and the schema if
    /// needed, and starts the writer thread.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let open_error = |source: OpenError| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(e.into()))?;
        }
        let lock = StoreLock::acquire(path)?;
        let mut conn = connect(path, options.synchronous_full).map_err(|e| open_error(e.into()))?;
        match migrate(&mut conn).map_err(|e| open_error(e.into()))? {
            Schema::Known => {}
            Schema::Newer(found) => {
                return Err(StoreError::SchemaVersion {
                    path: path.display().to_string(),
                    found,
                    known: SCHEMA_VERSION,
                });
            }
        }
        let reader = connect(path, options.synchronous_full)
            .and_then(|c| c.pragma_update(None, "query_only", true).map(|()| c))
            .map_err(|e| open_error(e.into()))?;

        let (writer, commands) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        let max_batch = options.max_batch.max(1);
        let thread = std::thread::Builder::new()
            .name("marie-store-writer".into())
            .spawn(move || write_loop(conn, &commands, max_batch, &counter))
            .map_err(|e| open_error(e.into()))?;
        Ok(SqliteStore {
            writer: Some(writer),
            thread: Some(thread),
            reader: Arc::new(Mutex::new(reader)),
            commits,
            _lock: lock,
        })
    }

    /// Transactions committed since the store was opened (each holds one or more
    /// inserts, updates or recoveries).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Sends a command to the writer and waits for its answer, given after the commit.
    async fn write<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let writer = self.writer.as_ref().ok_or(StoreError::Closed)?;
        writer
            .send(command(reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `read` on the read connection in the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection itself usable.
            let conn = reader.lock().unwrap_or_else(PoisonError::into_inner);
            read(&conn).map_err(StoreError::from)
        })
        .await
        .map_err(StoreError::Interrupted)?
    }
}

impl Drop for SqliteStore {
    /// Closes the channel, then waits for the writer to finish its last batch.
    fn drop(&mut self) {
        self.writer = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[async_trait]
impl GatewayStore for SqliteStore {
    async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<Inserted>, StoreError> {
        self.write(|reply| Command::Insert(jobs, reply)).await
    }

    async fn get(&self, id: JobId) -> Result<Option<JobStatus>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {STATUS_COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([id.to_string()], status_from_row)
                .optional()
        })
        .await
    }

    async fn output(&self, id: JobId) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |conn| {
            let sql = "SELECT output FROM jobs WHERE id = ?1 AND state = 'succeeded'";
            let output = conn
                .prepare_cached(sql)?
                .query_row([id.to_string()], |row| row.get(0));
            Ok(output.optional()?.flatten())
        })
        .await
    }

    async fn list(&self, query: ListQuery) -> Result<JobPage, StoreError> {
        self.read(move |conn| list(conn, &query)).await
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn update(&self, updates: Vec<JobUpdate>) -> Result<Vec<(JobId, JobState)>, StoreError> {
        self.write(|reply| Command::Update(updates, reply)).await
    }

    async fn recover(&self) -> Result<Recovered, StoreError> {
        self.write(Command::Recover).await
    }

    async fn queued_ids(&self) -> Result<Vec<JobId>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id FROM jobs WHERE state = 'queued' ORDER BY id")?
                .query_map([], |row| parse::<JobId>(row, 0))?
                .collect()
        })
        .await
    }

    async fn queued(&self, mut ids: Vec<JobId>) -> Result<Vec<QueuedJob>, StoreError> {
        ids.sort_unstable();
        ids.dedup();
        self.read(move |conn| {
            let mut select = conn.prepare_cached(&format!(
                "SELECT {QUEUED_COLUMNS} FROM jobs WHERE id = ?1 AND state = 'queued'"
            ))?;
            let mut jobs = Vec::with_capacity(ids.len());
            for id in ids {
                jobs.extend(
                    select
                        .query_row([id.to_string()], queued_from_row)
                        .optional()?,
                );
            }
            Ok(jobs)
        })
        .await
    }
}

/// Opens one connection in WAL mode.
fn connect(path: &Path, synchronous_full: bool) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let synchronous = if synchronous_full { "FULL" } else { "NORMAL" };
    conn.pragma_update(None, "synchronous", synchronous)?;
    Ok(conn)
}

/// The schema a file holds after [`migrate`].
enum Schema {
    /// This build's schema (created now in a new file).
    Known,
    /// Another version, written by another build: left untouched.
    Newer(i32),
}

/// Creates the schema in a new file, brings a version-1 file to this build's version;
/// leaves a file written by a newer build untouched.
fn migrate(conn: &mut Connection) -> rusqlite::Result<Schema> {
    let version: i32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let step = match version {
        0 => SCHEMA,
        1 => TO_VERSION_2,
        SCHEMA_VERSION => return Ok(Schema::Known),
        other => return Ok(Schema::Newer(other)),
    };
    let tx = conn.transaction()?;
    tx.execute_batch(step)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(Schema::Known)
}

/// The writer thread: one transaction per batch of waiting commands, until the store
/// is dropped.
fn write_loop(
    mut conn: Connection,
    commands: &mpsc::Receiver<Command>,
    max_batch: usize,
    commits: &AtomicU64,
) {
    while let Ok(first) = commands.recv() {
        let batch: Vec<Command> = std::iter::once(first)
            .chain(commands.try_iter().take(max_batch - 1))
            .collect();
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!("job store: cannot begin a transaction: {e}");
                let e = Arc::new(e);
                batch.into_iter().for_each(|command| command.reject(&e));
                continue;
            }
        };
        let (answers, committed) = apply_batch(tx, batch);
        match &committed {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::error!("job store: commit failed: {e}"),
        }
        answers.into_iter().for_each(|answer| answer(&committed));
    }
}

/// Applies every command in `tx`, each in its own savepoint, then commits.
fn apply_batch(mut tx: Transaction<'_>, batch: Vec<Command>) -> (Vec<Answer>, Committed) {
    let answers = batch
        .into_iter()
        .map(|command| match command {
            Command::Insert(jobs, reply) => answer(reply, savepoint(&mut tx, |c| insert(c, jobs))),
            Command::Update(updates, reply) => {
                answer(reply, savepoint(&mut tx, |c| update(c, updates)))
            }
            Command::Recover(reply) => answer(reply, savepoint(&mut tx, recover)),
        })
        .collect();
    (answers, tx.commit().map_err(Arc::new))
}

impl Command {
    /// Answers the caller with `error` without applying the command.
    fn reject(self, error: &Arc<rusqlite::Error>) {
        let error = || StoreError::Database(Arc::clone(error));
        // A caller that stopped waiting does not mind: the send results are ignored.
        match self {
            Command::Insert(_, reply) => {
                let _ = reply.send(Err(error()));
            }
            Command::Update(_, reply) => {
                let _ = reply.send(Err(error()));
            }
            Command::Recover(reply) => {
                let _ = reply.send(Err(error()));
            }
        }
    }
}

/// Holds a command's result until the commit: the caller gets it if the commit
/// succeeded, the commit's error otherwise.
fn answer<T: Send + 'static>(reply: Reply<T>, result: rusqlite::Result<T>) -> Answer {
    Box::new(move |committed| {
        let result = match committed {
            Ok(()) => result.map_err(StoreError::from),
            Err(e) => Err(StoreError::Database(Arc::clone(e))),
        };
        // A caller that stopped waiting does not mind.
        let _ = reply.send(result);
    })
}

/// Runs `apply` in a savepoint, undone if it fails.
fn savepoint<T>(
    tx: &mut Transaction<'_>,
    apply: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let sp = tx.savepoint()?;
    let out = apply(&sp)?;
    sp.commit()?;
    Ok(out)
}

fn insert(conn: &Connection, jobs: Vec<NewJob>) -> rusqlite::Result<Vec<Inserted>> {
    let mut existing = conn.prepare_cached(
        "SELECT id FROM jobs WHERE ref_type = ?1 AND ref_id = ?2 \
         AND state IN ('queued', 'running', 'succeeded') ORDER BY id DESC LIMIT 1",
    )?;
    let mut write = conn.prepare_cached(
        "INSERT INTO jobs (id, pool, handler, payload, project_id, ref_type, ref_id, priority, \
         max_attempts, timeout_ms, expire_after_ms, dedup, trace, state, attempt, \
         created_at_ms, updated_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'queued', 0, ?14, ?14)",
    )?;
    let mut inserted = Vec::with_capacity(jobs.len());
    for job in jobs {
        let spec = &job.spec;
        let key = spec
            .metadata
            .dedup_key()
            .filter(|_| spec.dedup != DedupPolicy::Off);
        let found = match key {
            Some((ref_type, ref_id)) => existing
                .query_row([ref_type, ref_id], |row| parse::<JobId>(row, 0))
                .optional()?,
            None => None,
        };
        if let Some(id) = found {
            inserted.push(match spec.dedup {
                DedupPolicy::Reject => Inserted::Duplicate(id),
                _ => Inserted::Existing(id),
            });
            continue;
        }
        let trace = serde_json::to_string(&spec.trace.0)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        write.execute(params![
            job.id.to_string(),
            spec.pool,
            spec.handler,
            spec.payload,
            spec.metadata.project_id,
            spec.metadata.ref_type,
            spec.metadata.ref_id,
            spec.priority,
            job.max_attempts,
            job.timeout_ms,
            spec.expire_after_ms,
            dedup_name(spec.dedup),
            trace,
            job.created_at_ms,
        ])?;
        inserted.push(Inserted::New(job.id));
    }
    Ok(inserted)
}

fn update(conn: &Connection, updates: Vec<JobUpdate>) -> rusqlite::Result<Vec<(JobId, JobState)>> {
    let mut ended = Vec::new();
    for change in updates {
        match change {
            JobUpdate::Started {
                run,
                executor,
                at_ms,
            } => conn
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = 'running', attempt = ?2, executor = ?3, \
                     updated_at_ms = ?4 WHERE id = ?1 AND {LIVE}"
                ))?
                .execute(params![run.job.to_string(), run.attempt, executor, at_ms])?,
            JobUpdate::Requeued {
                id,
                attempts_done,
                error,
                at_ms,
            } => conn
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = 'queued', attempt = ?2, last_error = ?3, \
                     updated_at_ms = ?4 WHERE id = ?1 AND {LIVE}"
                ))?
                .execute(params![id.to_string(), attempts_done, error, at_ms])?,
            JobUpdate::Finished {
                id,
                state,
                error,
                output,
                at_ms,
            } => {
                let changed = conn
                    .prepare_cached(&format!(
                        "UPDATE jobs SET state = ?2, last_error = ?3, output = ?4, \
                         updated_at_ms = ?5 WHERE id = ?1 AND {LIVE}"
                    ))?
                    .execute(params![
                        id.to_string(),
                        state.as_str(),
                        error,
                        output,
                        at_ms
                    ])?;
                if changed == 1 {
                    ended.push((id, state));
                }
                changed
            }
        };
    }
    Ok(ended)
}

fn recover(conn: &Connection) -> rusqlite::Result<Recovered> {
    let mut queued = conn.prepare_cached(&format!(
        "SELECT {QUEUED_COLUMNS} FROM jobs WHERE state = 'queued' ORDER BY id"
    ))?;
    let queued = queued
        .query_map([], queued_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut running = conn.prepare_cached(&format!(
        "SELECT {QUEUED_COLUMNS}, COALESCE(executor, '') FROM jobs WHERE state = 'running' \
         ORDER BY id"
    ))?;
    let running = running
        .query_map([], |row| {
            Ok(RunningJob {
                job: queued_from_row(row)?,
                executor: row.get(15)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Recovered { queued, running })
}

fn list(conn: &Connection, query: &ListQuery) -> rusqlite::Result<JobPage> {
    let limit = crate::page_limit(query.limit);
    let mut sql = format!("SELECT {STATUS_COLUMNS} FROM jobs WHERE 1 = 1");
    let mut args = Vec::new();
    if let Some(state) = query.state {
        sql.push_str(" AND state = ?");
        args.push(Value::Text(state.as_str().to_owned()));
    }
    if let Some(pool) = &query.pool {
        sql.push_str(" AND pool = ?");
        args.push(Value::Text(pool.clone()));
    }
    if let Some(after) = query.after {
        sql.push_str(" AND id < ?");
        args.push(Value::Text(after.to_string()));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(Value::Integer(
        i64::try_from(limit).expect("a page limit is at most 1000"),
    ));
    let jobs: Vec<JobStatus> = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(args), status_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    let next = (jobs.len() == limit)
        .then(|| jobs.last().map(|job| job.id))
        .flatten();
    Ok(JobPage { jobs, next })
}

/// Reads the columns of [`STATUS_COLUMNS`].
fn status_from_row(row: &Row<'_>) -> rusqlite::Result<JobStatus> {
    Ok(JobStatus {
        id: parse(row, 0)?,
        pool: row.get(1)?,
        handler: row.get(2)?,
        metadata: JobMetadata {
            project_id: row.get(3)?,
            ref_type: row.get(4)?,
            ref_id: row.get(5)?,
        },
        priority: row.get(6)?,
        state: parse(row, 7)?,
        attempt: row.get(8)?,
        max_attempts: row.get(9)?,
        last_error: row.get(10)?,
        executor: row.get(11)?,
        created_at_ms: row.get(12)?,
        updated_at_ms: row.get(13)?,
        output_len: row.get(14)?,
        trace_id: trace_context(row, 15)?.trace_id(),
    })
}

/// Reads the trace context (JSON text) in column `idx`.
fn trace_context(row: &Row<'_>, idx: usize) -> rusqlite::Result<TraceContext> {
    let trace: String = row.get(idx)?;
    serde_json::from_str(&trace)
        .map(TraceContext)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

/// Reads a row of the recovery query. The spec's `max_attempts` and `timeout_ms` come
/// back as the values resolved at submit.
fn queued_from_row(row: &Row<'_>) -> rusqlite::Result<QueuedJob> {
    let trace = trace_context(row, 12)?;
    let max_attempts = row.get(8)?;
    let timeout_ms = row.get(9)?;
    Ok(QueuedJob {
        id: parse(row, 0)?,
        spec: JobSpec {
            pool: row.get(1)?,
            handler: row.get(2)?,
            payload: row.get(3)?,
            metadata: JobMetadata {
                project_id: row.get(4)?,
                ref_type: row.get(5)?,
                ref_id: row.get(6)?,
            },
            priority: row.get(7)?,
            max_attempts: Some(max_attempts),
            timeout_ms: Some(timeout_ms),
            expire_after_ms: row.get(10)?,
            dedup: parse_dedup(row, 11)?,
            trace,
        },
        attempts_done: row.get(13)?,
        max_attempts,
        timeout_ms,
        created_at_ms: row.get(14)?,
    })
}

/// Reads a text column through `FromStr`.
fn parse<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: Into<Box<dyn Error + Send + Sync>>,
{
    let text: String = row.get(idx)?;
    text.parse()
        .map_err(|e: T::Err| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, e.into()))
}

fn parse_dedup(row: &Row<'_>, idx: usize) -> rusqlite::Result<DedupPolicy> {
    let name: String = row.get(idx)?;
    crate::dedup_policy(&name).ok_or_else(|| {
        let why = format!("unknown dedup policy {name:?}");
        rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, why.into())
    })
}
