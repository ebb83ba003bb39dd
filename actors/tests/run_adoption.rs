//! A CapacityManager restarted while executors run long jobs: the executors report
//! their runs to the new one, which keeps their leases, so each job finishes on its
//! first attempt with its result accepted.

mod common;

use std::sync::Arc;

use common::{
    restart_capacity_manager, running_on, scheduler, sleep_job, start_executor, start_node, submit,
    wait_for,
};
use marie_protocol::JobState;
use marie_store::GatewayStore;
use marie_store::memory::MemoryStore;

#[tokio::test(start_paused = true)]
async fn runs_in_flight_keep_their_leases_across_a_restart_and_finish_on_their_first_attempt() {
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    for name in ["exec-1", "exec-2"] {
        start_executor(name, 2, None).await;
    }
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(submit(&node.gateway, sleep_job(20_000)).await);
    }
    let before = running_on(&*store, &ids).await;

    restart_capacity_manager().await;

    for id in &ids {
        let done = wait_for(&*store, *id, "ended", |s| s.state.is_terminal()).await;
        assert_eq!(done.state, JobState::Succeeded, "{done:?}");
        assert_eq!(
            done.attempt, 1,
            "the run was adopted, not run again: {done:?}"
        );
        assert_eq!(done.executor.as_ref(), before.get(id), "{done:?}");
        assert_eq!(store.output(*id).await.unwrap(), Some(b"20000".to_vec()));
    }
}
