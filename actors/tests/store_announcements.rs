//! On the shared Postgres store, the CapacityManager hears of jobs that another node
//! committed through the store's announcements (`LISTEN`/`NOTIFY`), long before its
//! reconcile sweep; jobs it hears of both ways (its own Gateway's cast and the
//! announcement) run once.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::fake_executor::FakeExecutor;
use common::{scheduler, sleep_job, start_node, submit, wait_for};
use marie_decide::scheduling::SchedulerConfig;
use marie_protocol::{JobId, JobState, Outcome};
use marie_store::postgres::{PostgresOptions, PostgresStore};
use marie_store::{GatewayStore, NewJob};
use marie_test_postgres::TestPostgres;

const JOBS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_committed_by_another_node_reach_the_capacity_manager_by_notification_and_run_once() {
    let server = TestPostgres::start().expect("a throwaway Postgres server");
    let open = || async {
        PostgresStore::open(PostgresOptions::new(server.url()))
            .await
            .expect("open the store")
    };
    let store = Arc::new(open().await);
    // The sweep would come in an hour: whatever is queued sooner was announced.
    let config = SchedulerConfig {
        sweep_ms: 3_600_000,
        ..scheduler()
    };
    let node = start_node(store.clone(), config).await;
    let mut executor = FakeExecutor::start("exec-1", 8).await;
    // Another node's Gateway: its own connections to the same database, and no
    // CapacityManager to cast to.
    let other_node = open().await;

    let mut from_other = HashSet::new();
    let mut from_own = HashSet::new();
    for i in 0..JOBS {
        if i % 2 == 0 {
            let job = NewJob {
                id: JobId::generate(),
                spec: sleep_job(10),
                max_attempts: 3,
                timeout_ms: 60_000,
                created_at_ms: 1,
            };
            other_node.insert(vec![job.clone()]).await.expect("insert");
            from_other.insert(job.id);
        } else {
            from_own.insert(submit(&node.gateway, sleep_job(10)).await);
        }
    }

    let mut leased = Vec::new();
    while leased.len() < JOBS {
        let lease = executor.next_lease().await;
        leased.push(lease.grant.run.job);
        executor.finish(lease.grant.run, Outcome::Succeeded(b"done".to_vec()));
    }
    let all: HashSet<JobId> = from_other.union(&from_own).copied().collect();
    assert_eq!(leased.iter().copied().collect::<HashSet<_>>(), all);
    for id in &all {
        wait_for(&*store, *id, "succeeded", |s| {
            s.state == JobState::Succeeded
        })
        .await;
    }
    // Announcements and casts of the same jobs keep coming for a while: none is leased
    // again.
    assert!(
        executor
            .lease_within(Duration::from_secs(3))
            .await
            .is_none(),
        "a job was leased twice"
    );
    assert_eq!(leased.len(), JOBS);
}
