//! A cancel is answered only once the cancellation is in the store: a client told
//! "cancelled" never sees the job run on after a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::controlled_store::ControlledStore;
use common::{ask, scheduler, sleep_job, start_node, submit, wait_for, wait_until};
use marie_protocol::JobState;
use marie_protocol::messages::GatewayMsg;
use marie_store::GatewayStore;

#[tokio::test(start_paused = true)]
async fn cancel_is_answered_only_once_the_cancellation_is_durable() {
    let store = Arc::new(ControlledStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    // No executor: the job stays queued.
    let id = submit(&node.gateway, sleep_job(1000)).await;

    store.set_open(false);
    let gateway = node.gateway.clone();
    let cancel =
        tokio::spawn(async move { ask(&gateway, |reply| GatewayMsg::Cancel(id, reply)).await });
    wait_until("the cancellation reaches the store", || {
        store.saw_cancel_of(id)
    })
    .await;
    // Paused time moves only when every task waits: after this, all that could run has
    // run, and the held write is all the answer can be waiting for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !cancel.is_finished(),
        "the cancel was answered before the cancellation was stored: {:?}",
        cancel.await
    );
    let stored = store.get(id).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Queued, "the write is still held");

    store.set_open(true);
    let answer = cancel.await.unwrap();
    assert_eq!(answer, Ok(JobState::Cancelled));
    wait_for(&*store, id, "was cancelled", |s| {
        s.state == JobState::Cancelled
    })
    .await;
}
