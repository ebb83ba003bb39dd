//! A platform that fails every read and write with one kind of error: the Supervisor
//! keeps running and trying again with backoff (a conflict by reading the count before
//! it writes again), the job waits queued, and once the platform heals the pool scales
//! and the job runs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::platform::{Call, Platform};
use common::{
    autoscale, scheduler, sleep_job, start_node, start_supervisor, submit, wait_for, wait_until,
};
use marie_actors::supervisor::ReplicaFailure;
use marie_protocol::JobState;
use marie_store::GatewayStore;
use marie_store::memory::MemoryStore;

#[tokio::test(start_paused = true)]
async fn every_kind_of_failure_is_survived_and_retried() {
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    let platform = Platform::start(0);
    // No resync read in this test: every read is one a write waited for.
    start_supervisor(&platform, autoscale(0, 2), Duration::from_secs(600)).await;
    wait_until("the Supervisor read the count", || {
        platform.calls().contains(&Call::Read)
    })
    .await;

    for kind in [
        ReplicaFailure::Unreachable,
        ReplicaFailure::Forbidden,
        ReplicaFailure::Missing,
        ReplicaFailure::Conflict,
        ReplicaFailure::Refused,
    ] {
        platform.fail_with(Some(kind));
        let marked = platform.calls().len();
        let id = submit(&node.gateway, sleep_job(100)).await;
        wait_until("the Supervisor tried again and again", || {
            let calls = platform.calls();
            calls[marked..]
                .iter()
                .position(|c| matches!(c, Call::Write { ok: false, .. }))
                .is_some_and(|first| calls.len() - marked - first >= 4)
        })
        .await;
        let queued = store.get(id).await.expect("the store answers");
        assert_eq!(
            queued.map(|s| s.state),
            Some(JobState::Queued),
            "{kind:?}: the job waits"
        );
        platform.fail_with(None);
        let done = wait_for(&*store, id, "ended", |s| s.state.is_terminal()).await;
        assert_eq!(done.state, JobState::Succeeded, "{kind:?}");
        let calls = platform.calls()[marked..].to_vec();
        let healed = calls
            .iter()
            .position(|c| matches!(c, Call::Write { ok: true, .. }))
            .expect("a write went through");
        if kind == ReplicaFailure::Conflict {
            assert_eq!(
                calls[healed - 1],
                Call::Read,
                "a conflict is read again before the next write: {calls:?}"
            );
        }
        wait_until("the pool parks at zero", || {
            platform.replicas() == 0 && platform.pods() == 0
        })
        .await;
    }
}
