//! One conformance suite for every `JobStore` backend (memory, SQLite, and Postgres on a
//! throwaway server of its own per check), then what only SQLite promises: durability
//! across a reopen and group commit. What only Postgres promises is in `postgres.rs`.

use std::collections::HashSet;
use std::sync::Arc;

use marie_protocol::messages::{ListQuery, RunRef};
use marie_protocol::{DedupPolicy, JobId, JobMetadata, JobSpec, JobState, TraceContext};
use marie_store::memory::MemoryStore;
use marie_store::postgres::{PostgresOptions, PostgresStore};
use marie_store::sqlite::{SqliteOptions, SqliteStore};
use marie_store::{
    GatewayStore, Inserted, JobStore, JobUpdate, NewJob, StoreError, StoreErrorKind,
};
use marie_test_postgres::TestPostgres;
use tempfile::TempDir;

fn spec(pool: &str, payload: &[u8]) -> JobSpec {
    JobSpec::new(pool, "pdf-text", payload.to_vec())
}

/// A spec with a deduplication key and policy.
fn keyed(ref_id: &str, dedup: DedupPolicy) -> JobSpec {
    let mut spec = spec("extract", b"doc");
    spec.metadata = JobMetadata {
        project_id: "acme".into(),
        ref_type: "invoice".into(),
        ref_id: ref_id.into(),
    };
    spec.dedup = dedup;
    spec
}

fn new_job(spec: JobSpec) -> NewJob {
    NewJob {
        id: JobId::generate(),
        spec,
        max_attempts: 3,
        timeout_ms: 60_000,
        created_at_ms: 1_000,
    }
}

async fn insert(store: &dyn JobStore, job: &NewJob) -> Inserted {
    let mut inserted = store.insert(vec![job.clone()]).await.expect("insert");
    assert_eq!(inserted.len(), 1);
    inserted.remove(0)
}

async fn update(store: &dyn JobStore, change: JobUpdate) {
    store.update(vec![change]).await.expect("update");
}

fn started(id: JobId, attempt: u32, executor: &str, at_ms: u64) -> JobUpdate {
    JobUpdate::Started {
        run: RunRef { job: id, attempt },
        executor: executor.into(),
        at_ms,
    }
}

fn finished(id: JobId, state: JobState, output: Option<&[u8]>, at_ms: u64) -> JobUpdate {
    JobUpdate::Finished {
        id,
        state,
        error: (state != JobState::Succeeded).then(|| format!("ended {state}")),
        output: output.map(<[u8]>::to_vec),
        at_ms,
    }
}

async fn state(store: &dyn JobStore, id: JobId) -> JobState {
    store
        .get(id)
        .await
        .expect("get")
        .expect("the job exists")
        .state
}

// ---- The conformance suite: each check takes a fresh, empty store. ----

async fn insert_then_get(store: Arc<dyn JobStore>) {
    let mut spec = keyed("1", DedupPolicy::ReturnExisting);
    spec.priority = 7;
    let job = new_job(spec);
    assert_eq!(insert(&*store, &job).await, Inserted::New(job.id));

    let status = store.get(job.id).await.expect("get").expect("stored");
    assert_eq!(status.id, job.id);
    assert_eq!(status.pool, "extract");
    assert_eq!(status.handler, "pdf-text");
    assert_eq!(status.metadata, job.spec.metadata);
    assert_eq!(status.priority, 7);
    assert_eq!(status.state, JobState::Queued);
    assert_eq!(status.attempt, 0);
    assert_eq!(status.max_attempts, 3);
    assert_eq!((status.last_error, status.executor), (None, None));
    assert_eq!((status.created_at_ms, status.updated_at_ms), (1_000, 1_000));
    assert_eq!(status.output_len, None);
    assert_eq!(store.output(job.id).await.expect("output"), None);
    assert_eq!(store.get(JobId::generate()).await.expect("get"), None);

    update(&*store, started(job.id, 1, "exec-1", 2_000)).await;
    let status = store.get(job.id).await.expect("get").expect("stored");
    assert_eq!(status.state, JobState::Running);
    assert_eq!(
        (status.attempt, status.executor.as_deref()),
        (1, Some("exec-1"))
    );
    assert_eq!(status.updated_at_ms, 2_000);

    update(
        &*store,
        finished(job.id, JobState::Succeeded, Some(b"text"), 3_000),
    )
    .await;
    let status = store.get(job.id).await.expect("get").expect("stored");
    assert_eq!(status.state, JobState::Succeeded);
    assert_eq!((status.output_len, status.updated_at_ms), (Some(4), 3_000));
    assert_eq!(
        store.output(job.id).await.expect("output"),
        Some(b"text".to_vec())
    );
}

async fn dedup_return_existing(store: Arc<dyn JobStore>) {
    let first = new_job(keyed("1", DedupPolicy::ReturnExisting));
    let second = new_job(keyed("1", DedupPolicy::ReturnExisting));
    assert_eq!(insert(&*store, &first).await, Inserted::New(first.id));
    assert_eq!(insert(&*store, &second).await, Inserted::Existing(first.id));
    assert_eq!(store.get(second.id).await.expect("get"), None);
    // A running or succeeded job still answers for its key.
    update(&*store, started(first.id, 1, "e", 2)).await;
    assert_eq!(insert(&*store, &second).await, Inserted::Existing(first.id));
    update(
        &*store,
        finished(first.id, JobState::Succeeded, Some(b""), 3),
    )
    .await;
    assert_eq!(insert(&*store, &second).await, Inserted::Existing(first.id));
    // Another key, or no key, is a new job.
    let other = new_job(keyed("2", DedupPolicy::ReturnExisting));
    assert_eq!(insert(&*store, &other).await, Inserted::New(other.id));
    let unkeyed = [new_job(spec("extract", b"")), new_job(spec("extract", b""))];
    for job in &unkeyed {
        assert_eq!(insert(&*store, job).await, Inserted::New(job.id));
    }
}

async fn dedup_reject(store: Arc<dyn JobStore>) {
    let first = new_job(keyed("1", DedupPolicy::Reject));
    let second = new_job(keyed("1", DedupPolicy::Reject));
    assert_eq!(insert(&*store, &first).await, Inserted::New(first.id));
    assert_eq!(
        insert(&*store, &second).await,
        Inserted::Duplicate(first.id)
    );
    assert_eq!(store.get(second.id).await.expect("get"), None);
}

async fn dedup_off(store: Arc<dyn JobStore>) {
    let first = new_job(keyed("1", DedupPolicy::Off));
    let second = new_job(keyed("1", DedupPolicy::Off));
    assert_eq!(insert(&*store, &first).await, Inserted::New(first.id));
    assert_eq!(insert(&*store, &second).await, Inserted::New(second.id));
    // With two live jobs under the key, the newest answers.
    let third = new_job(keyed("1", DedupPolicy::ReturnExisting));
    assert_eq!(insert(&*store, &third).await, Inserted::Existing(second.id));
}

async fn dedup_within_one_batch(store: Arc<dyn JobStore>) {
    let jobs = vec![
        new_job(keyed("1", DedupPolicy::ReturnExisting)),
        new_job(keyed("1", DedupPolicy::ReturnExisting)),
        new_job(keyed("1", DedupPolicy::Reject)),
    ];
    let first = jobs[0].id;
    let inserted = store.insert(jobs).await.expect("insert");
    let expected = vec![
        Inserted::New(first),
        Inserted::Existing(first),
        Inserted::Duplicate(first),
    ];
    assert_eq!(inserted, expected);
}

async fn dedup_after_failure(store: Arc<dyn JobStore>) {
    for end in [JobState::Failed, JobState::Cancelled, JobState::Expired] {
        let key = end.as_str();
        let first = new_job(keyed(key, DedupPolicy::Reject));
        assert_eq!(insert(&*store, &first).await, Inserted::New(first.id));
        update(&*store, finished(first.id, end, None, 5)).await;
        let second = new_job(keyed(key, DedupPolicy::Reject));
        assert_eq!(
            insert(&*store, &second).await,
            Inserted::New(second.id),
            "after {end}"
        );
        let third = new_job(keyed(key, DedupPolicy::ReturnExisting));
        assert_eq!(insert(&*store, &third).await, Inserted::Existing(second.id));
    }
}

async fn terminal_jobs_never_change(store: Arc<dyn JobStore>) {
    let job = new_job(spec("extract", b"doc"));
    insert(&*store, &job).await;
    update(&*store, started(job.id, 1, "exec-1", 2)).await;
    update(
        &*store,
        finished(job.id, JobState::Succeeded, Some(b"one"), 3),
    )
    .await;
    let before = store.get(job.id).await.expect("get");

    store
        .update(vec![
            finished(job.id, JobState::Failed, Some(b"two"), 4),
            started(job.id, 2, "exec-2", 5),
            JobUpdate::Requeued {
                id: job.id,
                attempts_done: 2,
                error: "lost".into(),
                at_ms: 6,
            },
            finished(job.id, JobState::Cancelled, None, 7),
        ])
        .await
        .expect("update");
    assert_eq!(store.get(job.id).await.expect("get"), before);
    assert_eq!(
        store.output(job.id).await.expect("output"),
        Some(b"one".to_vec())
    );

    // A cancelled queued job stays cancelled too.
    let other = new_job(spec("extract", b"doc"));
    insert(&*store, &other).await;
    update(&*store, finished(other.id, JobState::Cancelled, None, 2)).await;
    update(&*store, started(other.id, 1, "exec-1", 3)).await;
    assert_eq!(state(&*store, other.id).await, JobState::Cancelled);
}

async fn updates_apply_in_order(store: Arc<dyn JobStore>) {
    let job = new_job(spec("extract", b"doc"));
    insert(&*store, &job).await;
    store
        .update(vec![
            started(job.id, 1, "exec-1", 2),
            JobUpdate::Requeued {
                id: job.id,
                attempts_done: 1,
                error: "lost".into(),
                at_ms: 3,
            },
            started(job.id, 2, "exec-2", 4),
        ])
        .await
        .expect("update");
    let status = store.get(job.id).await.expect("get").expect("stored");
    assert_eq!(status.state, JobState::Running);
    assert_eq!(
        (status.attempt, status.executor.as_deref()),
        (2, Some("exec-2"))
    );
    assert_eq!(
        (status.last_error.as_deref(), status.updated_at_ms),
        (Some("lost"), 4)
    );

    update(
        &*store,
        JobUpdate::Requeued {
            id: job.id,
            attempts_done: 2,
            error: "x".into(),
            at_ms: 5,
        },
    )
    .await;
    let status = store.get(job.id).await.expect("get").expect("stored");
    assert_eq!((status.state, status.attempt), (JobState::Queued, 2));
}

async fn list_pages_cover_every_job_once(store: Arc<dyn JobStore>) {
    let jobs: Vec<NewJob> = (0..23)
        .map(|i| new_job(spec(if i % 3 == 0 { "ocr" } else { "extract" }, b"x")))
        .collect();
    store.insert(jobs.clone()).await.expect("insert");
    for job in jobs.iter().step_by(2) {
        update(&*store, finished(job.id, JobState::Failed, None, 9)).await;
    }
    let state_of = |i: usize| {
        if i.is_multiple_of(2) {
            JobState::Failed
        } else {
            JobState::Queued
        }
    };

    let queries = [
        (None, None),
        (Some(JobState::Queued), None),
        (Some(JobState::Failed), None),
        (None, Some("ocr")),
        (Some(JobState::Queued), Some("extract")),
        (Some(JobState::Running), None),
    ];
    for (wanted_state, wanted_pool) in queries {
        // Newest first: UUIDv7 ids order by creation.
        let mut expected: Vec<JobId> = (0..jobs.len())
            .filter(|&i| wanted_state.is_none_or(|s| s == state_of(i)))
            .filter(|&i| wanted_pool.is_none_or(|p| p == jobs[i].spec.pool))
            .map(|i| jobs[i].id)
            .collect();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        for limit in [1, 4, 5, 0] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let query = ListQuery {
                    state: wanted_state,
                    pool: wanted_pool.map(str::to_owned),
                    limit,
                    after,
                };
                let page = store.list(query).await.expect("list");
                assert!(page.jobs.len() <= if limit == 0 { 100 } else { limit as usize });
                seen.extend(page.jobs.iter().map(|status| status.id));
                match page.next {
                    Some(next) => {
                        assert_eq!(Some(next), page.jobs.last().map(|s| s.id));
                        after = Some(next);
                    }
                    None => break,
                }
            }
            let query = format!("{wanted_state:?} {wanted_pool:?} limit {limit}");
            assert_eq!(seen, expected, "{query}");
        }
    }
}

async fn recover_returns_queued_and_running_jobs_and_changes_nothing(store: Arc<dyn JobStore>) {
    let mut with_trace = spec("extract", &[1, 2, 3, 0, 255]);
    with_trace.trace = TraceContext([("traceparent".to_owned(), "00-ab-cd-01".to_owned())].into());
    with_trace.expire_after_ms = Some(30_000);
    with_trace.metadata = JobMetadata {
        project_id: "acme".into(),
        ref_type: "invoice".into(),
        ref_id: "9".into(),
    };
    with_trace.dedup = DedupPolicy::Reject;
    with_trace.priority = -4;
    let queued = new_job(with_trace);
    let running = new_job(spec("ocr", &[9; 70_000]));
    let requeued = new_job(spec("extract", b"again"));
    let done = new_job(spec("extract", b"done"));
    let inserted = store
        .insert(vec![
            queued.clone(),
            running.clone(),
            requeued.clone(),
            done.clone(),
        ])
        .await
        .expect("insert");
    assert!(inserted.iter().all(|i| matches!(i, Inserted::New(_))));
    store
        .update(vec![
            started(running.id, 1, "exec-1", 2),
            started(requeued.id, 1, "exec-1", 2),
            JobUpdate::Requeued {
                id: requeued.id,
                attempts_done: 1,
                error: "lost".into(),
                at_ms: 3,
            },
            started(done.id, 1, "exec-1", 2),
            finished(done.id, JobState::Succeeded, Some(b"out"), 4),
        ])
        .await
        .expect("update");

    let recovered = store.recover().await.expect("recover");
    let ids: Vec<JobId> = recovered.queued.iter().map(|q| q.id).collect();
    assert_eq!(ids, vec![queued.id, requeued.id]);
    let runs: Vec<(JobId, u32, &str)> = recovered
        .running
        .iter()
        .map(|r| (r.job.id, r.job.attempts_done, r.executor.as_str()))
        .collect();
    assert_eq!(runs, vec![(running.id, 1, "exec-1")]);
    let all = recovered
        .queued
        .iter()
        .chain(recovered.running.iter().map(|r| &r.job));
    let mut all: Vec<_> = all.collect();
    all.sort_by_key(|job| job.id);
    for (got, (sent, attempts_done)) in
        all.iter()
            .zip([(&queued, 0), (&running, 1), (&requeued, 1)])
    {
        let mut spec = sent.spec.clone();
        spec.max_attempts = Some(sent.max_attempts);
        spec.timeout_ms = Some(sent.timeout_ms);
        assert_eq!(got.spec, spec);
        assert_eq!(got.attempts_done, attempts_done);
        assert_eq!((got.max_attempts, got.timeout_ms), (3, 60_000));
        assert_eq!(got.created_at_ms, 1_000);
    }

    // The running job is left running: its executor may still report it.
    let status = store.get(running.id).await.expect("get").expect("stored");
    assert_eq!(
        (status.state, status.attempt, status.updated_at_ms),
        (JobState::Running, 1, 2)
    );
    let status = store.get(requeued.id).await.expect("get").expect("stored");
    assert_eq!(
        (status.last_error.as_deref(), status.updated_at_ms),
        (Some("lost"), 3)
    );
    assert_eq!(state(&*store, done.id).await, JobState::Succeeded);
    // A recovery changes nothing: a second one reads the same.
    assert_eq!(store.recover().await.expect("recover"), recovered);
}

async fn queued_reads_find_queued_jobs_and_change_nothing(store: Arc<dyn JobStore>) {
    let jobs: Vec<NewJob> = (0..4).map(|i| new_job(spec("extract", &[i]))).collect();
    let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    store.insert(jobs.clone()).await.expect("insert");
    update(&*store, started(ids[1], 1, "exec-1", 2)).await;
    update(&*store, finished(ids[2], JobState::Failed, None, 3)).await;

    assert_eq!(store.queued_ids().await.expect("ids"), vec![ids[0], ids[3]]);
    let unknown = JobId::generate();
    let asked = vec![ids[3], ids[2], ids[1], unknown, ids[0], ids[3]];
    let queued = store.queued(asked).await.expect("read");
    let got: Vec<(JobId, Vec<u8>, u32)> = queued
        .iter()
        .map(|q| (q.id, q.spec.payload.clone(), q.attempts_done))
        .collect();
    assert_eq!(got, vec![(ids[0], vec![0], 0), (ids[3], vec![3], 0)]);
    assert!(store.queued(Vec::new()).await.expect("read").is_empty());
    // Reading changed nothing: the running job still runs.
    assert_eq!(state(&*store, ids[1]).await, JobState::Running);
}

fn memory_store() -> (Arc<dyn JobStore>, Option<TempDir>) {
    (Arc::new(MemoryStore::new()), None)
}

fn sqlite_store() -> (Arc<dyn JobStore>, Option<TempDir>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("jobs.db"), SqliteOptions::default())
        .expect("open the store");
    (Arc::new(store), Some(dir))
}

/// A store in a fresh database, and its server (stopped and deleted when dropped).
async fn postgres_store() -> (Arc<dyn JobStore>, TestPostgres) {
    let server = TestPostgres::start().expect("a throwaway Postgres server");
    let store = PostgresStore::open(PostgresOptions::new(server.url()))
        .await
        .expect("open the store");
    (Arc::new(store), server)
}

/// Many statuses read at once are those read one by one; unknown ids are left out.
async fn statuses_read_at_once_match_each_get(store: Arc<dyn JobStore>) {
    let jobs: Vec<NewJob> = (0..3).map(|_| new_job(spec("extract", b"doc"))).collect();
    store.insert(jobs.clone()).await.expect("insert");
    update(&*store, started(jobs[1].id, 1, "exec-1", 2_000)).await;
    let unknown = JobId::generate();
    let mut ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    ids.push(unknown);
    let mut read = store.statuses(ids).await.expect("statuses");
    read.sort_by_key(|s| s.id);
    let mut each = Vec::new();
    for job in &jobs {
        each.push(store.get(job.id).await.expect("get").expect("stored"));
    }
    each.sort_by_key(|s| s.id);
    assert_eq!(read, each);
    assert!(store.statuses(Vec::new()).await.expect("none").is_empty());
}

/// Runs every named check against every backend.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $check() {
                let (store, _dir) = super::memory_store();
                super::$check(store).await;
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $check() {
                let (store, _dir) = super::sqlite_store();
                super::$check(store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $check() {
                let (store, _server) = super::postgres_store().await;
                super::$check(store).await;
            })*
        }
    };
}

conformance!(
    insert_then_get,
    dedup_return_existing,
    dedup_reject,
    dedup_off,
    dedup_within_one_batch,
    dedup_after_failure,
    terminal_jobs_never_change,
    updates_apply_in_order,
    list_pages_cover_every_job_once,
    recover_returns_queued_and_running_jobs_and_changes_nothing,
    queued_reads_find_queued_jobs_and_change_nothing,
    statuses_read_at_once_match_each_get,
);

// ---- SQLite only. ----

#[tokio::test]
async fn sqlite_data_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("nested/dir/jobs.db");
    let done = new_job(keyed("1", DedupPolicy::Reject));
    let running = new_job(spec("ocr", b"page"));
    {
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
        store
            .insert(vec![done.clone(), running.clone()])
            .await
            .expect("insert");
        store
            .update(vec![
                started(done.id, 1, "exec-1", 2),
                finished(done.id, JobState::Succeeded, Some(b"result"), 3),
                started(running.id, 1, "exec-1", 4),
            ])
            .await
            .expect("update");
    }
    let options = SqliteOptions {
        synchronous_full: false,
        max_batch: 8,
    };
    let store = SqliteStore::open(&path, options).expect("reopen");
    assert_eq!(state(&store, done.id).await, JobState::Succeeded);
    assert_eq!(
        store.output(done.id).await.expect("output"),
        Some(b"result".to_vec())
    );
    assert_eq!(state(&store, running.id).await, JobState::Running);
    let again = new_job(keyed("1", DedupPolicy::Reject));
    assert_eq!(insert(&store, &again).await, Inserted::Duplicate(done.id));
    let recovered = store.recover().await.expect("recover");
    assert!(recovered.queued.is_empty());
    assert_eq!(recovered.running.len(), 1);
    let run = &recovered.running[0];
    assert_eq!((run.job.id, run.job.attempts_done), (running.id, 1));
    assert_eq!(run.job.spec.payload, b"page");
}

#[test]
fn sqlite_refuses_a_file_from_another_schema_as_a_permanent_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("jobs.db");
    let conn = rusqlite::Connection::open(&path).expect("a database");
    conn.pragma_update(None, "user_version", 99)
        .expect("a schema version");
    drop(conn);
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(err, StoreError::SchemaVersion { found: 99, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), StoreErrorKind::Permanent);
    assert!(err.to_string().contains("run the Marie release"), "{err}");
}

#[test]
fn sqlite_brings_a_version_1_file_up_to_the_index_that_pages_one_pool() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("jobs.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).expect("a new store"));
    let conn = rusqlite::Connection::open(&path).expect("the database");
    conn.execute_batch("DROP INDEX jobs_by_pool; PRAGMA user_version = 1;")
        .expect("a version-1 file");
    drop(conn);
    drop(SqliteStore::open(&path, SqliteOptions::default()).expect("a version-1 file opens"));
    let conn = rusqlite::Connection::open(&path).expect("the database");
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("the version");
    assert_eq!(version, 2);
    // The list's query for one pool, any state: read by the index, never sorted whole.
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE pool = ?1 AND id < ?2 ORDER BY id DESC LIMIT 50")
        .expect("a plan")
        .query_map(rusqlite::params!["extract", "z"], |row| row.get(3))
        .expect("the plan's steps")
        .collect::<Result<_, _>>()
        .expect("the plan's steps");
    assert!(
        plan.iter().any(|step| step.contains("jobs_by_pool "))
            && !plan.iter().any(|step| step.contains("TEMP B-TREE")),
        "{plan:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_inserts_share_commits() {
    const TASKS: usize = 50;
    const PER_TASK: usize = 40;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("jobs.db"), SqliteOptions::default()).expect("open"),
    );
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(PER_TASK);
                for _ in 0..PER_TASK {
                    let job = new_job(spec("extract", b"doc"));
                    assert_eq!(insert(&*store, &job).await, Inserted::New(job.id));
                    ids.push(job.id);
                }
                ids
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.extend(task.await.expect("the task ends"));
    }
    let calls = (TASKS * PER_TASK) as u64;
    assert_eq!(ids.len() as u64, calls);

    let recovered = store.recover().await.expect("recover");
    let stored: HashSet<JobId> = recovered.queued.iter().map(|q| q.id).collect();
    assert_eq!(stored, ids);
    let commits = store.commits();
    println!("{calls} inserts in {commits} commits");
    assert!(
        commits * 4 <= calls,
        "{calls} inserts took {commits} commits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_max_batch_bounds_a_transaction() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = SqliteOptions {
        synchronous_full: false,
        max_batch: 1,
    };
    let store = Arc::new(SqliteStore::open(&dir.path().join("jobs.db"), options).expect("open"));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.insert(vec![new_job(spec("extract", b""))]).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("the task ends").expect("insert");
    }
    assert_eq!(store.commits(), 20);
}
