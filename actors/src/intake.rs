//! The CapacityManager's reads of the store for jobs it was not told of: the reconcile
//! sweep, the loading of jobs it lacks, and the store's announcements of jobs committed
//! by any node. Each read runs in a task of its own and answers the CapacityManager
//! with a message; which jobs to load and queue is decided there, by
//! [`marie_decide::scheduling::Intake`].

use std::sync::Arc;
use std::time::Duration;

use marie_protocol::JobId;
use marie_protocol::messages::{CapacityMsg, LoadedJobs, QueuedIds};
use marie_store::{JobStore, Notice};
use ractor::ActorRef;
use tokio::task::JoinHandle;

/// Reads the ids of every queued job and answers them as [`CapacityMsg::StoreQueued`],
/// marked as the sweep's answer when `swept` (none when the read fails: the next sweep
/// tries again).
pub fn sweep(store: Arc<dyn JobStore>, manager: ActorRef<CapacityMsg>, swept: bool) {
    tokio::spawn(async move {
        let ids = store.queued_ids().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e.failure(), "reconcile sweep: cannot read the queued jobs; the next sweep tries again");
            Vec::new()
        });
        let _ = manager.cast(CapacityMsg::StoreQueued(QueuedIds { ids, swept }));
    });
}

/// Loads the jobs of `ids` that are still queued, a read started at `read_at_ms`, and
/// answers them as [`CapacityMsg::Loaded`].
pub fn load(
    store: Arc<dyn JobStore>,
    ids: Vec<JobId>,
    read_at_ms: u64,
    manager: ActorRef<CapacityMsg>,
) {
    tokio::spawn(async move {
        match store.queued(ids).await {
            Ok(jobs) => {
                let _ = manager.cast(CapacityMsg::Loaded(LoadedJobs { read_at_ms, jobs }));
            }
            Err(e) => {
                tracing::warn!(error = %e.failure(), "cannot load queued jobs from the store; the reconcile sweep tries again");
            }
        }
    });
}

/// How long after an announcement comes it is forwarded: a Gateway's cast of the same
/// jobs (committed on this node, or reaching it over the cluster) usually arrives
/// within it, and jobs the CapacityManager holds by then need no read of the store.
const ANNOUNCE_GRACE: Duration = Duration::from_millis(20);

/// Forwards the store's announcements to the CapacityManager, if the store makes any:
/// announced jobs as [`CapacityMsg::StoreQueued`] (those that arrive within
/// [`ANNOUNCE_GRACE`] of the first in one message), and after a lost connection, a
/// sweep of its own at once (the timer's sweeps keep their pace). Abort the task when
/// the CapacityManager stops.
pub fn listen(store: Arc<dyn JobStore>, manager: ActorRef<CapacityMsg>) -> Option<JoinHandle<()>> {
    let mut notices = store.notices()?;
    Some(tokio::spawn(async move {
        while let Some(first) = notices.recv().await {
            tokio::time::sleep(ANNOUNCE_GRACE).await;
            let mut ids = Vec::new();
            let mut resumed = false;
            let mut notice = Some(first);
            while let Some(next) = notice {
                match next {
                    Notice::Queued(more) => ids.extend(more),
                    Notice::Resumed => resumed = true,
                }
                notice = notices.try_recv().ok();
            }
            if resumed {
                sweep(store.clone(), manager.clone(), false);
            }
            if !ids.is_empty() {
                let queued = QueuedIds { ids, swept: false };
                if manager.cast(CapacityMsg::StoreQueued(queued)).is_err() {
                    return;
                }
            }
        }
    }))
}
