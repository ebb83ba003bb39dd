//! An executor whose node leaves the cluster: its job runs again elsewhere with the next
//! attempt, and what the lost executor reports afterwards changes nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_executor::FakeExecutor;
use common::{scheduler, sleep_job, start_node, submit, wait_for};
use marie_actors::lookup;
use marie_protocol::messages::{CapacityMsg, Completion};
use marie_protocol::{JobState, Outcome};
use marie_store::GatewayStore;
use marie_store::memory::MemoryStore;

#[tokio::test(start_paused = true)]
async fn lost_executor_requeues_its_job_with_the_next_attempt_and_its_late_completion_is_ignored() {
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    let mut lost = FakeExecutor::start("exec-lost", 1).await;
    let id = submit(&node.gateway, sleep_job(1000)).await;
    let first = lost.next_lease().await.grant.run;
    assert_eq!((first.job, first.attempt), (id, 1));
    wait_for(&*store, id, "ran", |s| s.state == JobState::Running).await;

    let mut other = FakeExecutor::start("exec-other", 1).await;
    // Its node leaves the cluster: the executor leaves its pool's group unannounced.
    lost.actor.kill();
    let second = other.next_lease().await.grant.run;
    assert_eq!(
        (second.job, second.attempt),
        (id, 2),
        "the same job, one attempt on"
    );
    let running = wait_for(&*store, id, "ran again", |s| s.attempt == 2).await;
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.executor.as_deref(), Some("exec-other"));

    // The lost executor's answer arrives late, as it would after a partition heals.
    let late = Completion {
        run: first,
        executor: lost.name.clone(),
        outcome: Outcome::Succeeded(b"late".to_vec()),
        took_ms: 1000,
    };
    let manager = lookup::capacity_manager().expect("the CapacityManager runs");
    manager.cast(CapacityMsg::Completed(late)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (status.state, status.attempt),
        (JobState::Running, 2),
        "a completion of a lost run must not end the job"
    );

    other.finish(second, Outcome::Succeeded(b"fresh".to_vec()));
    let done = wait_for(&*store, id, "succeeded", |s| s.state.is_terminal()).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(
        store.output(id).await.unwrap().as_deref(),
        Some(&b"fresh"[..])
    );
}
