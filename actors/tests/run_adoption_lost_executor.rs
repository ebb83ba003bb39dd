//! A CapacityManager restarted while an executor died: the runs of the survivor are
//! adopted by the new CapacityManager; those of the dead executor, which nobody
//! reports, re-queue with the next attempt once the executor timeout has passed.

mod common;

use std::sync::Arc;

use common::{
    restart_capacity_manager, running_on, scheduler, sleep_job, start_executor, start_node, submit,
    wait_for,
};
use marie_protocol::JobState;
use marie_store::memory::MemoryStore;

#[tokio::test(start_paused = true)]
async fn runs_of_an_executor_that_died_meanwhile_requeue_on_the_next_attempt() {
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    let (_, _) = start_executor("exec-1", 2, None).await;
    let (doomed, _) = start_executor("exec-2", 2, None).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(submit(&node.gateway, sleep_job(20_000)).await);
    }
    let before = running_on(&*store, &ids).await;

    // The executor dies with the CapacityManager: the new one never hears of it.
    doomed.kill();
    restart_capacity_manager().await;

    for id in ids.iter().filter(|id| before[*id] == "exec-2") {
        let again = wait_for(&*store, *id, "ran again", |s| s.attempt == 2).await;
        let error = again.last_error.unwrap_or_default();
        assert!(
            error.contains("executor exec-2 did not report its run"),
            "{error}"
        );
    }
    for id in &ids {
        let done = wait_for(&*store, *id, "ended", |s| s.state.is_terminal()).await;
        assert_eq!(done.state, JobState::Succeeded, "{done:?}");
        if before[id] == "exec-1" {
            assert_eq!(done.attempt, 1, "the survivor's run was adopted: {done:?}");
        } else {
            assert_eq!(
                done.attempt, 2,
                "the dead executor's run ran again: {done:?}"
            );
            assert_eq!(done.executor.as_deref(), Some("exec-1"), "{done:?}");
        }
    }
}
