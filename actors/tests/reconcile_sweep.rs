//! The reconcile sweep: a job committed to the store whose cast to the CapacityManager
//! was lost is queued by the next sweep, not only by a restart; and a job that already
//! ended is never queued again, however late a cast or a read of the store about it
//! arrives.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_executor::FakeExecutor;
use common::{scheduler, sleep_job, start_node, wait_for};
use marie_actors::lookup;
use marie_protocol::messages::{CapacityMsg, JobBatch, LoadedJobs, QueuedIds, QueuedJob};
use marie_protocol::{JobId, JobState, Outcome};
use marie_store::memory::MemoryStore;
use marie_store::{GatewayStore, JobStore, NewJob};

/// A job written straight to the store, as a Gateway whose cast was lost leaves it.
async fn commit_without_cast(store: &MemoryStore) -> QueuedJob {
    let job = NewJob {
        id: JobId::generate(),
        spec: sleep_job(10),
        max_attempts: 3,
        timeout_ms: 60_000,
        created_at_ms: 1,
    };
    store.insert(vec![job.clone()]).await.expect("insert");
    let mut queued = store.queued(vec![job.id]).await.expect("read");
    assert_eq!(queued.len(), 1);
    queued.remove(0)
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_cast_was_lost_is_queued_by_the_sweep_and_an_ended_job_never_again() {
    let store = Arc::new(MemoryStore::new());
    let config = scheduler();
    let sweep = Duration::from_millis(config.sweep_ms);
    let _node = start_node(store.clone(), config).await;
    let mut executor = FakeExecutor::start("exec-1", 4).await;

    // Committed, never cast: nothing happens until the sweep, which queues it.
    let lost = commit_without_cast(&store).await;
    let started = tokio::time::Instant::now();
    let lease = executor.next_lease().await;
    assert_eq!(lease.grant.run.job, lost.id);
    assert!(
        lease.at - started <= sweep + Duration::from_secs(1),
        "queued by the first sweep, not later"
    );
    executor.finish(lease.grant.run, Outcome::Succeeded(b"done".to_vec()));
    wait_for(&*store, lost.id, "succeeded", |s| {
        s.state == JobState::Succeeded
    })
    .await;

    // Everything that could bring the ended job back arrives late: the Gateway's cast,
    // a notification's ids, a load read before its end was written, and the sweeps
    // go on. None queues it again.
    let manager = lookup::capacity_manager().expect("the CapacityManager runs");
    manager
        .cast(CapacityMsg::Enqueue(JobBatch(vec![lost.clone()])))
        .expect("cast");
    manager
        .cast(CapacityMsg::StoreQueued(QueuedIds {
            ids: vec![lost.id],
            swept: false,
        }))
        .expect("cast");
    manager
        .cast(CapacityMsg::Loaded(LoadedJobs {
            read_at_ms: 0,
            jobs: vec![lost.clone()],
        }))
        .expect("cast");
    assert!(
        executor.lease_within(sweep * 3).await.is_none(),
        "an ended job was leased again"
    );
}
