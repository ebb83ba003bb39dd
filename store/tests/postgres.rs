//! What only the Postgres store promises, each on a throwaway server of its own: the
//! schema migrated once by nodes starting together, a newer schema refused, a refused
//! login shown without its password, a server restarted under a running store, group
//! commit, a failing call that fails alone, and the announcement of committed jobs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use marie_protocol::messages::RunRef;
use marie_protocol::{JobId, JobSpec, JobState};
use marie_store::postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};
use marie_store::{
    GatewayStore, Inserted, JobStore, JobUpdate, NewJob, Notice, StoreError, StoreErrorKind,
};
use marie_test_postgres::{PASSWORD, TestPostgres};
use tokio::sync::mpsc;

fn new_job() -> NewJob {
    NewJob {
        id: JobId::generate(),
        spec: JobSpec::new("extract", "pdf-text", b"doc".to_vec()),
        max_attempts: 3,
        timeout_ms: 60_000,
        created_at_ms: 1_000,
    }
}

fn server() -> TestPostgres {
    TestPostgres::start().expect("a throwaway Postgres server")
}

async fn open(url: &str) -> Result<PostgresStore, StoreError> {
    PostgresStore::open(PostgresOptions::new(url)).await
}

/// The error with every cause, as it reaches a log or the wire.
fn words(error: &StoreError) -> String {
    error.failure().message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_opening_together_on_an_empty_database_migrate_it_once() {
    let server = server();
    let url = server.url();
    let opening: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for task in opening {
        let store = task.await.expect("the task ends");
        stores.push(store.unwrap_or_else(|e| panic!("open: {}", words(&e))));
    }
    let versions = server
        .psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM marie_schema")
        .expect("psql");
    let expected: Vec<String> = (1..=SCHEMA_VERSION).map(|v| v.to_string()).collect();
    assert_eq!(versions, expected.join(","));
    // One schema, shared: a job written through one store is read through another.
    let job = new_job();
    stores[0].insert(vec![job.clone()]).await.expect("insert");
    let status = stores[3].get(job.id).await.expect("get");
    assert_eq!(status.map(|s| s.state), Some(JobState::Queued));
}

#[tokio::test]
async fn a_pools_jobs_page_from_an_index_without_a_sort() {
    let server = server();
    let _store = open(&server.url())
        .await
        .unwrap_or_else(|e| panic!("open: {}", words(&e)));
    // The listing `marie jobs --pool` and the console run, planned without sequential scans
    // (a table this small would otherwise be scanned).
    let plan = server
        .psql(
            "SET enable_seqscan = off; EXPLAIN SELECT id FROM jobs WHERE pool = 'ocr' \
             AND id < '01900000-0000-7000-8000-000000000000' ORDER BY id DESC LIMIT 50",
        )
        .expect("psql");
    assert!(plan.contains("jobs_by_pool "), "{plan}");
    assert!(!plan.contains("Sort"), "{plan}");
}

#[tokio::test]
async fn a_database_with_a_newer_schema_is_refused_naming_the_version_it_needs() {
    let server = server();
    drop(open(&server.url()).await.expect("open"));
    let newer = SCHEMA_VERSION + 1;
    server
        .psql(&format!(
            "INSERT INTO marie_schema (version) VALUES ({newer})"
        ))
        .expect("psql");
    let err = open(&server.url())
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(err, StoreError::SchemaVersion { found, known, .. } if found == newer && known == SCHEMA_VERSION),
        "{err:?}"
    );
    assert_eq!(err.kind(), StoreErrorKind::Permanent);
    let message = words(&err);
    assert!(
        message.contains(&format!("knows schema version {newer}")),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "postgres://marie:***@127.0.0.1:{}/marie",
            server.port()
        )),
        "{message}"
    );
    assert!(!message.contains(PASSWORD), "{message}");
    // Nothing was changed: the newer version is still the newest.
    assert_eq!(
        server
            .psql("SELECT max(version) FROM marie_schema")
            .expect("psql"),
        newer.to_string()
    );
}

#[tokio::test]
async fn a_refused_login_names_store_url_with_the_password_masked() {
    let server = server();
    let wrong = "wr0ng-s3cret";
    let err = open(&server.url_with_password(wrong))
        .await
        .err()
        .expect("a wrong password is refused");
    assert_eq!(err.kind(), StoreErrorKind::Permanent);
    let message = words(&err);
    for part in [
        "store.url",
        "MARIE_STORE__URL",
        &format!("postgres://marie:***@127.0.0.1:{}/marie", server.port()),
        "the user and its password",
        "password authentication failed",
    ] {
        assert!(message.contains(part), "{part:?} is not in: {message}");
    }
    assert!(!message.contains(wrong), "{message}");

    // Nothing listening, and a URL that does not parse: refused the same way.
    drop(server);
    for url in [
        format!("postgres://marie:{wrong}@127.0.0.1:1/marie"),
        format!("postgres://marie:{wrong}@127.0.0.1:port/marie"),
    ] {
        let err = open(&url).await.err().expect("refused");
        let message = words(&err);
        assert!(matches!(err, StoreError::Connect { .. }), "{message}");
        assert!(message.contains("store.url"), "{message}");
        assert!(!message.contains(wrong), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_under_a_running_store_gives_retryable_errors_then_works() {
    let server = server();
    let store = open(&server.url()).await.expect("open");
    let before = new_job();
    store.insert(vec![before.clone()]).await.expect("insert");

    server.stop().expect("stop the server");
    let after = new_job();
    let err = store
        .insert(vec![after.clone()])
        .await
        .expect_err("an insert with the server down");
    assert_eq!(err.kind(), StoreErrorKind::Retryable, "{}", words(&err));
    let err = store
        .get(before.id)
        .await
        .expect_err("a read with the server down");
    assert_eq!(err.kind(), StoreErrorKind::Retryable, "{}", words(&err));
    assert!(!words(&err).contains(PASSWORD), "{}", words(&err));

    server.start_again().expect("start the server again");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match store.insert(vec![after.clone()]).await {
            Ok(inserted) => {
                assert_eq!(inserted, vec![Inserted::New(after.id)]);
                break;
            }
            Err(e) => {
                assert_eq!(e.kind(), StoreErrorKind::Retryable, "{}", words(&e));
                assert!(
                    Instant::now() < deadline,
                    "still failing 60 s after the restart: {}",
                    words(&e)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let ended = store
        .update(vec![JobUpdate::Finished {
            id: before.id,
            state: JobState::Cancelled,
            error: None,
            output: None,
            at_ms: 2_000,
        }])
        .await
        .expect("update");
    assert_eq!(ended, vec![(before.id, JobState::Cancelled)]);
    let recovered: Vec<JobId> = store
        .recover()
        .await
        .expect("recover")
        .queued
        .iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(recovered, vec![after.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_share_commits() {
    const TASKS: usize = 50;
    const PER_TASK: usize = 40;
    let server = server();
    let store = Arc::new(open(&server.url()).await.expect("open"));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(PER_TASK);
                for _ in 0..PER_TASK {
                    let job = new_job();
                    let inserted = store.insert(vec![job.clone()]).await.expect("insert");
                    assert_eq!(inserted, vec![Inserted::New(job.id)]);
                    let run = RunRef {
                        job: job.id,
                        attempt: 1,
                    };
                    let started = JobUpdate::Started {
                        run,
                        executor: "exec-1".into(),
                        at_ms: 2_000,
                    };
                    store.update(vec![started]).await.expect("update");
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
    let calls = (TASKS * PER_TASK * 2) as u64;
    let elapsed = started.elapsed();
    let recovered = store.recover().await.expect("recover").running;
    let stored: HashSet<JobId> = recovered.iter().map(|r| r.job.id).collect();
    assert_eq!(stored, ids);
    assert!(
        recovered
            .iter()
            .all(|r| r.job.attempts_done == 1 && r.executor == "exec-1")
    );
    let commits = store.commits();
    println!("{calls} inserts and updates in {commits} commits, {elapsed:.2?}");
    assert!(commits * 4 <= calls, "{calls} calls took {commits} commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_that_breaks_a_constraint_fails_alone_and_for_good() {
    let server = server();
    let store = Arc::new(open(&server.url()).await.expect("open"));
    let taken = new_job();
    store.insert(vec![taken.clone()]).await.expect("insert");
    let mut too_large = new_job();
    too_large.timeout_ms = u64::MAX;
    // Many calls at once, so that the bad ones share batches with good ones.
    let calls: Vec<Vec<NewJob>> = (0..40)
        .map(|i| match i % 10 {
            3 => vec![new_job(), taken.clone()],
            7 => vec![too_large.clone()],
            _ => vec![new_job(), new_job()],
        })
        .collect();
    let tasks: Vec<_> = calls
        .iter()
        .cloned()
        .map(|jobs| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.insert(jobs).await })
        })
        .collect();
    for (i, (task, jobs)) in tasks.into_iter().zip(&calls).enumerate() {
        let result = task.await.expect("the task ends");
        match i % 10 {
            3 | 7 => {
                let err = result.expect_err("a bad call fails");
                assert_eq!(err.kind(), StoreErrorKind::Permanent, "{}", words(&err));
                // Nothing of the failed call was written.
                assert_eq!(store.get(jobs[0].id).await.expect("get"), None);
            }
            _ => {
                let inserted = result.unwrap_or_else(|e| panic!("call {i}: {}", words(&e)));
                assert_eq!(inserted.len(), 2);
                for job in jobs {
                    assert!(store.get(job.id).await.expect("get").is_some());
                }
            }
        }
    }
}

#[tokio::test]
async fn jobs_survive_a_reopen_and_running_ones_are_recovered() {
    let server = server();
    let done = new_job();
    let running = new_job();
    {
        let store = open(&server.url()).await.expect("open");
        store
            .insert(vec![done.clone(), running.clone()])
            .await
            .expect("insert");
        let run = |job: &NewJob| JobUpdate::Started {
            run: RunRef {
                job: job.id,
                attempt: 1,
            },
            executor: "exec-1".into(),
            at_ms: 2,
        };
        store
            .update(vec![
                run(&done),
                JobUpdate::Finished {
                    id: done.id,
                    state: JobState::Succeeded,
                    error: None,
                    output: Some(b"result".to_vec()),
                    at_ms: 3,
                },
                run(&running),
            ])
            .await
            .expect("update");
    }
    let store = open(&server.url()).await.expect("reopen");
    assert_eq!(
        store.output(done.id).await.expect("output"),
        Some(b"result".to_vec())
    );
    let recovered = store.recover().await.expect("recover").running;
    assert_eq!(recovered.len(), 1);
    assert_eq!(
        (recovered[0].job.id, recovered[0].job.attempts_done),
        (running.id, 1)
    );
}

/// Inserts through `store` until `notices` announces them (the listener may not listen
/// yet when the first inserts commit); returns the ids of the insert it heard.
async fn insert_until_heard(
    store: &PostgresStore,
    notices: &mut mpsc::UnboundedReceiver<Notice>,
) -> HashSet<JobId> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = new_job();
        if store.insert(vec![job.clone()]).await.is_ok() {
            match tokio::time::timeout(Duration::from_secs(2), notices.recv()).await {
                Ok(Some(Notice::Queued(ids))) => return ids.into_iter().collect(),
                Ok(Some(Notice::Resumed)) | Err(_) => {}
                Ok(None) => panic!("the listener ended"),
            }
        }
        assert!(Instant::now() < deadline, "no insert was announced in 60 s");
    }
}

/// The ids announced until `expected` are all heard, within 60 s.
async fn hear_all(notices: &mut mpsc::UnboundedReceiver<Notice>, expected: &HashSet<JobId>) {
    let mut heard = HashSet::new();
    while !expected.is_subset(&heard) {
        match tokio::time::timeout(Duration::from_secs(60), notices.recv()).await {
            Ok(Some(Notice::Queued(ids))) => heard.extend(ids),
            Ok(Some(Notice::Resumed)) => {}
            Ok(None) => panic!("the listener ended"),
            Err(_) => panic!("{} of {} ids heard", heard.len(), expected.len()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_of_other_stores_are_announced_and_a_lost_listener_resumes() {
    let server = server();
    let listening = open(&server.url()).await.expect("open");
    let writer = open(&server.url()).await.expect("open");
    let mut notices = listening.notices().expect("Postgres announces new jobs");

    let first = insert_until_heard(&writer, &mut notices).await;
    assert_eq!(first.len(), 1);
    // One insert of more ids than one notification holds: every id is announced.
    let many: Vec<NewJob> = (0..450).map(|_| new_job()).collect();
    let expected: HashSet<JobId> = many.iter().map(|job| job.id).collect();
    writer.insert(many).await.expect("insert");
    hear_all(&mut notices, &expected).await;
    // A rolled-back insert is not announced: the next notice is the next commit's.
    let duplicate = new_job();
    writer
        .insert(vec![duplicate.clone()])
        .await
        .expect("insert");
    hear_all(&mut notices, &HashSet::from([duplicate.id])).await;
    let err = writer
        .insert(vec![duplicate.clone()])
        .await
        .expect_err("the same id twice");
    assert_eq!(err.kind(), StoreErrorKind::Permanent, "{}", words(&err));
    let next = new_job();
    writer.insert(vec![next.clone()]).await.expect("insert");
    match tokio::time::timeout(Duration::from_secs(60), notices.recv()).await {
        Ok(Some(Notice::Queued(ids))) => assert_eq!(ids, vec![next.id]),
        other => panic!("the next commit was not announced next: {other:?}"),
    }

    // The server restarts: the listener says it may have missed some, and hears again.
    server.stop().expect("stop the server");
    server.start_again().expect("start the server again");
    match tokio::time::timeout(Duration::from_secs(60), notices.recv()).await {
        Ok(Some(Notice::Resumed)) => {}
        other => panic!("no resumption within 60 s of the restart: {other:?}"),
    }
    insert_until_heard(&writer, &mut notices).await;
}
