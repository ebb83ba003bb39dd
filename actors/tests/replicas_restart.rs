//! A Supervisor starting over a declarative pool that already runs (a restarted server)
//! adopts the platform's replica count: it writes nothing for it, and its next change
//! starts from it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::platform::{Call, Platform};
use common::{
    autoscale, scheduler, sleep_job, start_node, start_supervisor, submit, wait_for,
    wait_for_slots, wait_until,
};
use marie_protocol::JobState;
use marie_store::memory::MemoryStore;

#[tokio::test(start_paused = true)]
async fn a_restarted_supervisor_adopts_the_count_without_writing() {
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    let platform = Platform::start(2);
    wait_for_slots(4).await;
    start_supervisor(&platform, autoscale(2, 6), Duration::from_millis(200)).await;
    wait_until("the Supervisor read the count three times", || {
        platform
            .calls()
            .iter()
            .filter(|c| **c == Call::Read)
            .count()
            >= 3
    })
    .await;
    assert!(
        platform.writes().is_empty(),
        "the count found is adopted, not written: {:?}",
        platform.calls()
    );
    assert_eq!(platform.replicas(), 2);

    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(submit(&node.gateway, sleep_job(1_000)).await);
    }
    for id in &ids {
        let done = wait_for(&*store, *id, "ended", |s| s.state.is_terminal()).await;
        assert_eq!(done.state, JobState::Succeeded);
    }
    let writes = platform.writes();
    let Some(Call::Write { from, to, .. }) = writes.first() else {
        panic!("the burst raised no count: {:?}", platform.calls());
    };
    assert_eq!(
        (*from, *to > 2),
        (2, true),
        "up from the adopted count: {writes:?}"
    );
}
