//! A new CapacityManager (a new leader's, or one restarted) does not know the executors:
//! they see it join its process group and register with it at once, rather than at
//! their next heartbeat, so that it leases work without waiting out a heartbeat period.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    registered_slots, restart_capacity_manager, scheduler, sleep_job, start_executor, start_node,
    submit, wait_for, wait_for_slots,
};
use marie_decide::scheduling::SchedulerConfig;
use marie_protocol::JobState;
use marie_store::memory::MemoryStore;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn executors_register_with_a_new_capacity_manager_as_soon_as_it_joins() {
    // A heartbeat a minute: registering at the next one would take up to that long.
    let config = SchedulerConfig {
        heartbeat_ms: 60_000,
        lease_ttl_ms: 600_000,
        executor_timeout_ms: 600_000,
        ..scheduler()
    };
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), config.clone()).await;
    for name in ["exec-1", "exec-2"] {
        start_executor(name, 2, Some(&node.root)).await;
    }
    wait_for_slots(4).await;

    restart_capacity_manager().await;
    let joined = Instant::now();
    while registered_slots().await != 4 {
        assert!(
            joined.elapsed() < Duration::from_millis(config.heartbeat_ms / 10),
            "the executors waited for their next heartbeat to register with the new CapacityManager"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let id = submit(&node.gateway, sleep_job(100)).await;
    wait_for(&*store, id, "succeeded", |s| s.state == JobState::Succeeded).await;
}
