//! The root of a node's actors: every actor the node starts is linked under it, and it
//! decides what a failure costs.
//!
//! - **The CapacityManager is restarted from the store.** When it fails (a panic, an
//!   error in a handler, a write the store refused for good — see `store_writer.rs`)
//!   or is killed, the root starts a new one after
//!   [`RESTART_DELAY`]. The new one recovers the live jobs as a restarted node would
//!   (a run in progress keeps its lease when its executor reports it on registering,
//!   and re-queues with its attempt counted when none does within the executor
//!   timeout) and joins the
//!   CapacityManager's process group, where the Gateways, the executors and the
//!   Supervisor look it up for every call: nothing holds a reference to the old one.
//!   Executors learn from their next heartbeat that it does not know them
//!   ([`HeartbeatAck::known`](marie_protocol::messages::HeartbeatAck)) and register
//!   again. Restarting in-process keeps the Gateway, the HTTP port and the cluster
//!   connections up, and loses nothing a process restart would keep: the store is the
//!   truth, the CapacityManager only a view of it. Writes the failed one had queued may
//!   land after the new one recovered; the store ignores changes to an ended job, so a
//!   job never ends twice — at worst a run is repeated, as after a process restart.
//! - **Anything else ends the node.** When the CapacityManager fails more than
//!   [`MAX_RESTARTS`] times within [`RESTART_WINDOW`], or any other actor linked here
//!   fails (a Gateway, the store service, the Supervisor, an executor), the root stops,
//!   and the node exits with an error so that its orchestrator (systemd, Kubernetes)
//!   restarts the process. A node that keeps serving `/healthz` without the actor that
//!   failed would never recover.
//!
//! A normal stop of a child (an executor that drained, the node shutting down) is not
//! a failure. Stopping the root drains the CapacityManager last, so that the state
//! changes still in its mailbox reach the store.

use std::collections::VecDeque;
use std::time::Duration;

use marie_protocol::messages::CapacityMsg;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::capacity_manager::{CapacityManager, CapacityManagerArgs};

/// The CapacityManager's actor name.
pub const MANAGER_NAME: &str = "marie-capacity";

/// Pause before a failed CapacityManager is started again.
pub const RESTART_DELAY: Duration = Duration::from_millis(200);

/// Most restarts of the CapacityManager within [`RESTART_WINDOW`]; one more ends the
/// node.
pub const MAX_RESTARTS: usize = 5;

/// The window over which [`MAX_RESTARTS`] is counted.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The root actor of a node.
pub struct NodeRoot;

/// What the root starts with.
pub struct NodeRootArgs {
    /// The CapacityManager to run and keep running, on nodes that hold it.
    pub manager: Option<CapacityManagerArgs>,
}

/// Messages of the root.
#[derive(Debug)]
pub enum RootMsg {
    /// Timer: start the CapacityManager again.
    RestartManager,
}

impl ractor::Message for RootMsg {}

/// The root's state.
pub struct NodeRootState {
    manager_args: Option<CapacityManagerArgs>,
    manager: Option<(ActorRef<CapacityMsg>, JoinHandle<()>)>,
    /// When the CapacityManager was restarted, within the last [`RESTART_WINDOW`].
    restarts: VecDeque<Instant>,
}

impl Actor for NodeRoot {
    type Msg = RootMsg;
    type State = NodeRootState;
    type Arguments = NodeRootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RootMsg>,
        args: NodeRootArgs,
    ) -> Result<NodeRootState, ActorProcessingErr> {
        let mut state = NodeRootState {
            manager_args: args.manager,
            manager: None,
            restarts: VecDeque::new(),
        };
        if let Some(args) = &state.manager_args {
            state.manager = Some(spawn_manager(&myself, args.clone()).await?);
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<RootMsg>,
        msg: RootMsg,
        state: &mut NodeRootState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::RestartManager => state.restart_manager(&myself).await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        event: SupervisionEvent,
        state: &mut NodeRootState,
    ) -> Result<(), ActorProcessingErr> {
        let manager_id = state.manager.as_ref().map(|(m, _)| m.get_id());
        match &event {
            SupervisionEvent::ActorFailed(cell, _)
            | SupervisionEvent::ActorTerminated(cell, ..)
                if Some(cell.get_id()) == manager_id =>
            {
                tracing::error!(%event, "the CapacityManager ended; starting it again from the store");
                state.manager = None;
                myself.send_after(RESTART_DELAY, || RootMsg::RestartManager);
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                let name = cell.get_name().unwrap_or_else(|| cell.get_id().to_string());
                tracing::error!(actor = %name, %error, "an actor of the node failed; stopping the node so that it is restarted");
                myself.stop(Some(format!("actor {name} failed: {error}")));
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RootMsg>,
        state: &mut NodeRootState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((manager, done)) = state.manager.take() {
            // Drain, not stop: what is still in its mailbox must reach the store.
            let _ = manager.drain();
            let _ = done.await;
        }
        Ok(())
    }
}

impl NodeRootState {
    async fn restart_manager(&mut self, myself: &ActorRef<RootMsg>) {
        let Some(args) = self.manager_args.clone() else {
            return;
        };
        let now = Instant::now();
        while self
            .restarts
            .front()
            .is_some_and(|at| now.duration_since(*at) > RESTART_WINDOW)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= MAX_RESTARTS {
            tracing::error!(
                restarts = MAX_RESTARTS,
                window_secs = RESTART_WINDOW.as_secs(),
                "the CapacityManager keeps failing; stopping the node so that it is restarted"
            );
            myself.stop(Some(format!(
                "the CapacityManager failed {} times within {} s",
                MAX_RESTARTS + 1,
                RESTART_WINDOW.as_secs()
            )));
            return;
        }
        self.restarts.push_back(now);
        match spawn_manager(myself, args).await {
            Ok(manager) => {
                tracing::info!("the CapacityManager is running again");
                self.manager = Some(manager);
            }
            Err(e) => {
                tracing::error!(error = %e, "the CapacityManager did not start again; trying once more");
                myself.send_after(RESTART_DELAY, || RootMsg::RestartManager);
            }
        }
    }
}

async fn spawn_manager(
    root: &ActorRef<RootMsg>,
    args: CapacityManagerArgs,
) -> Result<(ActorRef<CapacityMsg>, JoinHandle<()>), ActorProcessingErr> {
    let spawned = Actor::spawn_linked(
        Some(MANAGER_NAME.into()),
        CapacityManager,
        args,
        root.get_cell(),
    )
    .await?;
    Ok(spawned)
}
