//! A store that refuses writes for good (a corrupt file) stops the retrying: the
//! CapacityManager fails and the node's root starts it again from the store; when that
//! keeps failing, the root ends so that the node exits. Nothing that was not written is
//! reported: no waiter hears of the end, no client of the cancel.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::controlled_store::ControlledStore;
use common::fake_executor::FakeExecutor;
use common::{PATIENCE, ask, scheduler, sleep_job, start_node, submit, wait_for, wait_until};
use marie_actors::lookup;
use marie_actors::root::MAX_RESTARTS;
use marie_protocol::messages::{GatewayMsg, Reply, WaitFor};
use marie_protocol::{GatewayError, JobState, Outcome};
use marie_store::{GatewayStore, StoreErrorKind};
use ractor::rpc::CallResult;

#[tokio::test(start_paused = true)]
async fn a_refused_write_fails_the_capacity_manager_and_nothing_unwritten_is_reported() {
    let store = Arc::new(ControlledStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    let mut executor = FakeExecutor::start("exec-1", 1).await;
    let ended = submit(&node.gateway, sleep_job(1000)).await;
    let queued = submit(&node.gateway, sleep_job(1000)).await;
    let run = executor.next_lease().await.grant.run;
    wait_for(&*store, ended, "running", |s| s.state == JobState::Running).await;
    let failed = lookup::capacity_manager().expect("the CapacityManager runs");

    // Both writes are in flight when the store refuses them: the cancel at the gate,
    // the end queued behind it.
    store.set_open(false);
    store.fail_writes(Some(StoreErrorKind::Permanent));
    let gateway = node.gateway.clone();
    let cancel =
        tokio::spawn(async move { ask(&gateway, |reply| GatewayMsg::Cancel(queued, reply)).await });
    wait_until("the cancellation reaches the store", || {
        store.saw_cancel_of(queued)
    })
    .await;
    let gateway = node.gateway.clone();
    let waiter = tokio::spawn(async move {
        let wait = WaitFor {
            id: ended,
            timeout_ms: 10 * 60 * 1000,
        };
        gateway
            .call(|reply| GatewayMsg::Wait(wait, reply), Some(PATIENCE))
            .await
    });
    executor.finish(run, Outcome::Succeeded(b"done".to_vec()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    store.set_open(true);

    wait_until("the root starts a new CapacityManager", || {
        lookup::capacity_manager().is_some_and(|m| m.get_id() != failed.get_id())
    })
    .await;
    let refused_at = store.failed_writes();
    assert!(refused_at >= 1, "a refused write is not tried again");
    match cancel.await.unwrap() {
        Err(GatewayError::Unavailable(_)) => {}
        other => panic!("a cancel that was not stored was answered {other:?}"),
    }

    // The store still refuses: each new CapacityManager leases the recovered jobs, its
    // first write is refused, and after MAX_RESTARTS restarts the root ends.
    tokio::time::timeout(PATIENCE, node.root_done)
        .await
        .expect("a store that keeps refusing writes ends the node")
        .unwrap();
    assert!(
        store.failed_writes() > MAX_RESTARTS,
        "every CapacityManager failed on a refused write ({} refused)",
        store.failed_writes()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    if waiter.is_finished()
        && let Ok(CallResult::Success(Reply(Ok(status)))) = waiter.await.unwrap()
    {
        assert_ne!(
            status.state,
            JobState::Succeeded,
            "a waiter heard of an end that was not stored"
        );
    }
    let stored = store.get(ended).await.unwrap().unwrap();
    assert_ne!(stored.state, JobState::Succeeded);
    let stored = store.get(queued).await.unwrap().unwrap();
    assert_ne!(stored.state, JobState::Cancelled);
}
