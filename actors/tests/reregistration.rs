//! An executor the CapacityManager forgot (declared lost on a network blip: it left its
//! pool's group) learns it from its next heartbeat once back, registers again and gets
//! work again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    POOL, registered_slots, scheduler, sleep_job, start_executor, start_node, submit, wait_for,
    wait_for_slots,
};
use marie_protocol::JobState;
use marie_protocol::names::executor_group;
use marie_store::memory::MemoryStore;
use ractor::pg;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn an_executor_the_manager_forgot_registers_again_at_its_next_heartbeat() {
    let config = scheduler();
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), config.clone()).await;
    let (executor, _) = start_executor("exec-1", 2, Some(&node.root)).await;
    wait_for_slots(2).await;

    // The blip: the executor leaves its pool's group as when its node's session is cut,
    // so the CapacityManager declares it lost; then the session is back.
    let group = executor_group(POOL);
    pg::leave(group.clone(), vec![executor.get_cell()]);
    wait_for_slots(0).await;
    pg::join(group, vec![executor.get_cell()]);
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
