//! Leases over time: heartbeats that list a run keep its lease however long it runs;
//! once they stop listing it, the lease expires after `lease_ttl_ms` and the job runs
//! again after its backoff — to the millisecond, on paused time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_executor::FakeExecutor;
use common::{scheduler, sleep_job, start_node, submit, wait_for};
use marie_protocol::JobState;
use marie_store::GatewayStore;
use marie_store::memory::MemoryStore;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_lease_no_heartbeat_renews_expires_after_its_ttl_and_the_job_runs_again() {
    let config = scheduler();
    let ttl = Duration::from_millis(config.lease_ttl_ms);
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), config.clone()).await;
    let mut executor = FakeExecutor::start("exec-1", 1).await;
    let id = submit(&node.gateway, sleep_job(60_000)).await;
    let first = executor.next_lease().await.grant.run;
    assert_eq!(first.attempt, 1);

    // Renewed by every heartbeat, the lease outlives its TTL many times over.
    tokio::time::sleep(ttl * 5).await;
    let status = store.get(id).await.unwrap().unwrap();
    assert_eq!((status.state, status.attempt), (JobState::Running, 1));

    // The executor stops listing the run: the last renewal was at most one heartbeat
    // ago, so the lease ends between `ttl - heartbeat` and `ttl + tick` from now.
    let stopped = Instant::now();
    executor.set_renewing(false);
    let requeued = wait_for(&*store, id, "re-queued", |s| s.state == JobState::Queued).await;
    let expired_after = stopped.elapsed();
    assert!(
        requeued
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("lease expired"),
        "{requeued:?}"
    );
    let heartbeat = Duration::from_millis(config.heartbeat_ms);
    let tick = Duration::from_millis(config.tick_ms);
    assert!(
        expired_after >= ttl - heartbeat && expired_after <= ttl + tick,
        "the lease expired {expired_after:?} after its last possible renewal window began"
    );

    // It runs again, one attempt on, once the first retry's backoff is over.
    let again = executor.next_lease().await;
    assert_eq!((again.grant.run.job, again.grant.run.attempt), (id, 2));
    let backoff = Duration::from_millis(config.backoff_base_ms);
    let waited = again.at - stopped - expired_after;
    assert!(
        waited >= backoff - tick && waited <= backoff + tick,
        "re-leased {waited:?} after the expiry; the backoff is {backoff:?}"
    );
}
