//! Process-group names under which Marie's actors are found across the cluster.
//!
//! Actors are never addressed by references sent over the wire: every node looks them up
//! by these names in `ractor::pg`.

/// Group of every Gateway actor.
pub const GATEWAY_GROUP: &str = "marie.gateway";

/// Group of the one CapacityManager.
pub const CAPACITY_GROUP: &str = "marie.capacity";

/// Group of the store service (beside the one job store, on the server node).
pub const STORE_GROUP: &str = "marie.store";

/// Group of the Supervisor (beside the CapacityManager).
pub const SUPERVISOR_GROUP: &str = "marie.supervisor";

/// Group of every node's membership actor.
pub const MEMBERSHIP_GROUP: &str = "marie.node";

/// Group of the executors of `pool`.
pub fn executor_group(pool: &str) -> String {
    format!("marie.executor.{pool}")
}
