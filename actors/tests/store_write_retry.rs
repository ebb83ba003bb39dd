//! A store that fails writes for a while (the database locked, the disk full) is tried
//! again until it passes: nothing is lost, the CapacityManager keeps running, and
//! nobody is told a job ended before its end is durable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::controlled_store::ControlledStore;
use common::fake_executor::FakeExecutor;
use common::{ask, scheduler, sleep_job, start_node, submit, wait_for, wait_until};
use marie_actors::lookup;
use marie_protocol::messages::{GatewayMsg, WaitFor};
use marie_protocol::{JobState, Outcome};
use marie_store::{GatewayStore, StoreErrorKind};

#[tokio::test(start_paused = true)]
async fn a_streak_of_retryable_write_failures_is_retried_and_the_writes_land_once_it_clears() {
    let store = Arc::new(ControlledStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    let mut executor = FakeExecutor::start("exec-1", 1).await;
    let first = submit(&node.gateway, sleep_job(1000)).await;
    let run = executor.next_lease().await.grant.run;
    wait_for(&*store, first, "running", |s| s.state == JobState::Running).await;
    let manager = lookup::capacity_manager().expect("the CapacityManager runs");

    store.fail_writes(Some(StoreErrorKind::Retryable));
    let gateway = node.gateway.clone();
    let waiter = tokio::spawn(async move {
        let wait = WaitFor {
            id: first,
            timeout_ms: 10 * 60 * 1000,
        };
        ask(&gateway, |reply| GatewayMsg::Wait(wait, reply)).await
    });
    executor.finish(run, Outcome::Succeeded(b"done".to_vec()));
    // Accepted while the store fails writes: its insert passes, its start waits.
    let second = submit(&node.gateway, sleep_job(1000)).await;
    wait_until("the failed write is tried again and again", || {
        store.failed_writes() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        !waiter.is_finished(),
        "a waiter was answered before the end was stored: {:?}",
        waiter.await
    );
    let stored = store.get(first).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Running, "the end is not stored yet");
    let still = lookup::capacity_manager().expect("the CapacityManager runs");
    assert_eq!(
        still.get_id(),
        manager.get_id(),
        "a retryable failure does not restart the CapacityManager"
    );

    store.fail_writes(None);
    let answered = waiter.await.unwrap().expect("the waiter is answered");
    assert_eq!(answered.state, JobState::Succeeded);
    wait_for(&*store, first, "succeeded", |s| {
        s.state == JobState::Succeeded
    })
    .await;
    wait_for(&*store, second, "running", |s| s.state == JobState::Running).await;
    assert!(!node.root_done.is_finished(), "the node keeps running");
}
