//! A declarative pool on a platform that keeps its replica count: a job for the pool at
//! zero brings one replica at once and the pool parks again; a burst raises the count,
//! every job succeeds exactly once, and on the way down the pods removed are those of
//! the executors the Supervisor drained.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::platform::{Call, Platform};
use common::{
    autoscale, scheduler, sleep_job, start_node, start_supervisor, submit, wait_for, wait_until,
};
use marie_protocol::JobState;
use marie_store::memory::MemoryStore;

#[tokio::test(start_paused = true)]
async fn a_pool_at_zero_takes_a_job_and_a_burst_and_parks_again_draining_what_it_removes() {
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    let platform = Platform::start(0);
    start_supervisor(&platform, autoscale(0, 6), Duration::from_millis(200)).await;

    let first = submit(&node.gateway, sleep_job(200)).await;
    let done = wait_for(&*store, first, "succeeded", |s| s.state.is_terminal()).await;
    assert_eq!((done.state, done.attempt), (JobState::Succeeded, 1));
    assert_eq!(
        platform.writes().first(),
        Some(&Call::Write {
            from: 0,
            to: 1,
            leaving: vec![],
            ok: true
        }),
        "the first job brings exactly one replica"
    );
    wait_until("the pool parks at zero", || {
        platform.replicas() == 0 && platform.pods() == 0
    })
    .await;

    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(submit(&node.gateway, sleep_job(1_000)).await);
    }
    for id in &ids {
        let done = wait_for(&*store, *id, "ended", |s| s.state.is_terminal()).await;
        assert_eq!(
            (done.state, done.attempt),
            (JobState::Succeeded, 1),
            "job {id} ran once and succeeded"
        );
    }
    let most = platform
        .writes()
        .iter()
        .map(|w| match w {
            Call::Write { to, .. } => *to,
            Call::Read => 0,
        })
        .max();
    assert!(
        most >= Some(2),
        "the burst raised the count: {:?}",
        platform.calls()
    );
    wait_until("the pool parks at zero again", || {
        platform.replicas() == 0 && platform.pods() == 0
    })
    .await;

    let removed = platform.removed();
    let started: Vec<_> = removed.iter().filter(|r| r.started).collect();
    assert!(!started.is_empty(), "executors were removed: {removed:?}");
    for pod in started {
        assert!(
            pod.leaving,
            "{} was removed while the Supervisor had not drained it: {removed:?}",
            pod.executor
        );
    }
}
