//! An executor the CapacityManager forgot (declared lost on a network blip) learns it
//! from its next heartbeat, registers again and gets work again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    registered_slots, scheduler, sleep_job, start_executor, start_node, submit, wait_for,
    wait_for_slots,
};
use marie_actors::lookup;
use marie_protocol::JobState;
use marie_protocol::messages::{CapacityMsg, ExecutorName};
use marie_store::memory::MemoryStore;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn an_executor_the_manager_forgot_registers_again_at_its_next_heartbeat() {
    let config = scheduler();
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), config.clone()).await;
    let _executor = start_executor("exec-1", 2, Some(&node.root)).await;
    wait_for_slots(2).await;

    let manager = lookup::capacity_manager().expect("the CapacityManager runs");
    manager
        .cast(CapacityMsg::Lost(ExecutorName("exec-1".into())))
        .unwrap();
    wait_for_slots(0).await;
    let forgotten = Instant::now();
    while registered_slots().await != 2 {
        assert!(
            forgotten.elapsed() <= Duration::from_millis(config.heartbeat_ms + 10),
            "the executor must register again at its next heartbeat"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let id = submit(&node.gateway, sleep_job(100)).await;
    wait_for(&*store, id, "succeeded", |s| s.state == JobState::Succeeded).await;
}
