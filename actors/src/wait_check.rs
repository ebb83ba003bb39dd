//! The Gateway's look at the store for jobs that may have ended before their waiter was
//! registered: one task per Gateway reads the statuses of every waiter registered
//! meanwhile at once (as group commit does for writes), and tells the Gateway which of
//! them ended, as a finish notice would. A job the store does not have, or a read that
//! fails, is told as failed: the Gateway's answer then reads it again and says why.

use std::collections::HashMap;
use std::sync::Arc;

use marie_protocol::messages::{FinishedJobs, GatewayMsg};
use marie_protocol::{JobId, JobState};
use marie_store::GatewayStore;
use ractor::ActorRef;
use tokio::sync::mpsc;

/// Most jobs looked at in one read.
const MAX_IDS: usize = 4096;

/// Handle to the task; dropping it ends the task.
pub struct WaitCheck {
    ids: mpsc::UnboundedSender<JobId>,
}

impl WaitCheck {
    /// Starts the task reading `store` for `gateway`.
    pub fn spawn(store: Arc<dyn GatewayStore>, gateway: ActorRef<GatewayMsg>) -> WaitCheck {
        let (ids, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(store, gateway, waiting));
        WaitCheck { ids }
    }

    /// Looks whether the job `id` ended already.
    pub fn look(&self, id: JobId) {
        // The task ends only with the Gateway, whose state holds this handle.
        let _ = self.ids.send(id);
    }
}

async fn run(
    store: Arc<dyn GatewayStore>,
    gateway: ActorRef<GatewayMsg>,
    mut waiting: mpsc::UnboundedReceiver<JobId>,
) {
    while let Some(first) = waiting.recv().await {
        let mut ids = vec![first];
        while ids.len() < MAX_IDS {
            match waiting.try_recv() {
                Ok(id) => ids.push(id),
                Err(_) => break,
            }
        }
        let ended = ended(&*store, ids).await;
        if !ended.is_empty()
            && gateway
                .cast(GatewayMsg::JobsFinished(FinishedJobs(ended)))
                .is_err()
        {
            return;
        }
    }
}

/// Those of `ids` that ended, with their states; unknown ones (or all, when the read
/// fails) as failed.
async fn ended(store: &dyn GatewayStore, ids: Vec<JobId>) -> Vec<(JobId, JobState)> {
    let states: HashMap<JobId, JobState> = match store.statuses(ids.clone()).await {
        Ok(found) => found.into_iter().map(|s| (s.id, s.state)).collect(),
        Err(_) => HashMap::new(),
    };
    ids.into_iter()
        .filter_map(|id| match states.get(&id) {
            Some(state) => state.is_terminal().then_some((id, *state)),
            None => Some((id, JobState::Failed)),
        })
        .collect()
}
