//! Clients waiting for a job are answered when it ends — also a client that starts
//! waiting after the end was announced, who would otherwise wait out its whole timeout.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_executor::FakeExecutor;
use common::{ask, scheduler, sleep_job, start_node, submit, wait_for};
use marie_protocol::messages::{GatewayMsg, WaitFor};
use marie_protocol::{JobState, Outcome};
use marie_store::memory::MemoryStore;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn waiters_are_answered_when_the_job_ends_even_if_it_ended_before_they_registered() {
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    let mut executor = FakeExecutor::start("exec-1", 1).await;
    let id = submit(&node.gateway, sleep_job(1000)).await;
    let run = executor.next_lease().await.grant.run;

    let gateway = node.gateway.clone();
    let early = tokio::spawn(async move {
        let wait = WaitFor {
            id,
            timeout_ms: WAIT.as_millis() as u64,
        };
        let status = ask(&gateway, |reply| GatewayMsg::Wait(wait, reply)).await;
        (status, Instant::now())
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ended_at = Instant::now();
    executor.finish(run, Outcome::Succeeded(b"done".to_vec()));
    let (status, answered_at) = early.await.unwrap();
    assert_eq!(status.unwrap().state, JobState::Succeeded);
    assert!(
        answered_at - ended_at < Duration::from_secs(1),
        "a waiter registered before the end is answered at the end, not at its timeout \
         (answered {:?} after the end)",
        answered_at - ended_at
    );

    // Every Gateway has been told the job ended; now a client starts waiting.
    wait_for(&*store, id, "succeeded", |s| s.state == JobState::Succeeded).await;
    let late_from = Instant::now();
    let wait = WaitFor {
        id,
        timeout_ms: WAIT.as_millis() as u64,
    };
    let status = ask(&node.gateway, |reply| GatewayMsg::Wait(wait, reply)).await;
    assert_eq!(status.unwrap().state, JobState::Succeeded);
    assert!(
        late_from.elapsed() < Duration::from_secs(1),
        "a waiter registered after the end is answered at once, not at its timeout \
         (answered after {:?})",
        late_from.elapsed()
    );
}
