//! Finding actors by process-group name, never by references sent over the wire.

use marie_protocol::messages::{CapacityMsg, ExecutorMsg, GatewayMsg, SupervisorMsg};
use marie_protocol::names::{CAPACITY_GROUP, GATEWAY_GROUP, SUPERVISOR_GROUP, executor_group};
use ractor::{ActorRef, pg};

/// The CapacityManager, wherever it runs.
pub fn capacity_manager() -> Option<ActorRef<CapacityMsg>> {
    pg::get_members(&CAPACITY_GROUP.to_string())
        .into_iter()
        .next()
        .map(ActorRef::from)
}

/// Every Gateway of the cluster.
pub fn gateways() -> Vec<ActorRef<GatewayMsg>> {
    pg::get_members(&GATEWAY_GROUP.to_string())
        .into_iter()
        .map(ActorRef::from)
        .collect()
}

/// The Supervisor, if one runs.
pub fn supervisors() -> Vec<ActorRef<SupervisorMsg>> {
    pg::get_members(&SUPERVISOR_GROUP.to_string())
        .into_iter()
        .map(ActorRef::from)
        .collect()
}

/// The executor called `name` in `pool`.
pub fn executor(pool: &str, name: &str) -> Option<ActorRef<ExecutorMsg>> {
    pg::get_members(&executor_group(pool))
        .into_iter()
        .find(|cell| cell.get_name().as_deref() == Some(name))
        .map(ActorRef::from)
}
