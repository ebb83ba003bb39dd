//! On Postgres, a job written without an announcement (here, by `psql`, as a node
//! whose notification was lost would leave it) is queued by the reconcile sweep.

mod common;

use std::sync::Arc;

use common::fake_executor::FakeExecutor;
use common::{scheduler, start_node, wait_for};
use marie_decide::scheduling::SchedulerConfig;
use marie_protocol::{JobId, JobState, Outcome};
use marie_store::postgres::{PostgresOptions, PostgresStore};
use marie_test_postgres::TestPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_inserted_without_a_notification_is_queued_by_the_sweep() {
    let server = TestPostgres::start().expect("a throwaway Postgres server");
    let store = Arc::new(
        PostgresStore::open(PostgresOptions::new(server.url()))
            .await
            .expect("open the store"),
    );
    let config = SchedulerConfig {
        sweep_ms: 500,
        ..scheduler()
    };
    let _node = start_node(store.clone(), config).await;
    let mut executor = FakeExecutor::start("exec-1", 2).await;

    let id = JobId::generate();
    server
        .psql(&format!(
            "INSERT INTO jobs (id, pool, handler, payload, project_id, ref_type, ref_id, \
             priority, max_attempts, timeout_ms, dedup, trace, state, attempt, \
             created_at_ms, updated_at_ms) VALUES ('{id}', 'extract', 'sleep', '\\x3130', \
             '', '', '', 0, 3, 60000, 'off', '{{}}', 'queued', 0, 1, 1)"
        ))
        .expect("psql");

    let lease = executor.next_lease().await;
    assert_eq!(lease.grant.run.job, id);
    assert_eq!(lease.grant.payload, b"10");
    executor.finish(lease.grant.run, Outcome::Succeeded(b"done".to_vec()));
    wait_for(&*store, id, "succeeded", |s| s.state == JobState::Succeeded).await;
}
