//! Somebody else sets a declarative pool's replica count: the Supervisor stops writing
//! to it, and once told to resume it adopts the count found and scales again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::platform::{Call, Platform};
use common::{
    POOL, autoscale, scheduler, start_node, start_supervisor, wait_for_slots, wait_until,
};
use marie_protocol::messages::{PoolName, SupervisorMsg};
use marie_store::memory::MemoryStore;

#[tokio::test(start_paused = true)]
async fn a_second_writer_pauses_the_pool_and_resume_adopts_its_count() {
    let store = Arc::new(MemoryStore::new());
    let _node = start_node(store, scheduler()).await;
    let platform = Platform::start(1);
    wait_for_slots(2).await;
    let supervisor = start_supervisor(&platform, autoscale(1, 4), Duration::from_millis(200)).await;
    wait_until("the Supervisor read the count", || {
        platform.calls().contains(&Call::Read)
    })
    .await;

    platform.scale_elsewhere(3);
    let marked = platform.calls().len();
    wait_until("the Supervisor read the count again", || {
        platform.calls()[marked..].contains(&Call::Read)
    })
    .await;
    wait_for_slots(6).await;
    // Idle, the pool wants 1 executor; paused, it leaves the 3 someone else set.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        platform.writes().is_empty(),
        "a paused pool is not written: {:?}",
        platform.calls()
    );
    assert_eq!(platform.replicas(), 3);

    supervisor
        .cast(SupervisorMsg::Resume(PoolName(POOL.into())))
        .expect("the Supervisor runs");
    wait_until("the resumed pool is back at its minimum", || {
        platform.replicas() == 1
    })
    .await;
    let writes = platform.writes();
    let Some(Call::Write { from, .. }) = writes.first() else {
        panic!("no write after resume: {:?}", platform.calls());
    };
    assert_eq!(*from, 3, "the count found was adopted: {writes:?}");
}
