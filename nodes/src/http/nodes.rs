//! `GET /api/nodes`: the nodes this node knows and where each stands — `up`,
//! `unreachable` (connected but silent past `cluster.down_after_ms`: hung or cut off),
//! `gone` (its connection closed: stopped or crashed) or `known` (heard of, not yet
//! connected) — and, through a server node on the Postgres store, which node leads.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::views::{Envelope, ErrorBody, ok};
use crate::membership;

/// One node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    /// Its unique name.
    pub name: String,
    /// Its cluster address.
    pub addr: String,
    /// Its role.
    pub role: String,
    /// `up`, `unreachable`, `gone` or `known`.
    pub status: String,
    /// Since when this node has seen it with this status, Unix milliseconds (absent
    /// until this node's first look after its start).
    pub since_ms: Option<u64>,
}

/// The nodes of the cluster, this one first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodesView {
    /// The nodes.
    pub nodes: Vec<NodeView>,
    /// The server node that holds the leader's lease and runs the CapacityManager and
    /// the Supervisor, as this node last saw it. Only server nodes on the Postgres store
    /// elect a leader and know it; absent elsewhere, and while nobody holds the lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderOfView>,
}

/// The leader.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderOfView {
    /// Its node name.
    pub name: String,
    /// The epoch of its lease: raised by every change of leader.
    pub epoch: u64,
}

/// The nodes this node knows and their status.
#[utoipa::path(
    get,
    path = "/api/nodes",
    tag = "capacity",
    responses(
        (status = 200, description = "The nodes and their status", body = Envelope<NodesView>),
        (status = 503, description = "Membership is not running yet", body = ErrorBody),
    )
)]
pub async fn nodes(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let list = membership::members()
        .await
        .ok_or_else(|| ApiError::NotReady("cluster membership has not started".into()))?;
    let nodes = list
        .0
        .into_iter()
        .map(|n| NodeView {
            since_ms: state.history.since(&n.node.name, &n.status),
            name: n.node.name,
            addr: n.node.addr,
            role: n.node.role,
            status: n.status,
        })
        .collect();
    let leader = state
        .leader
        .as_ref()
        .and_then(|view| view.leader())
        .map(|leader| LeaderOfView {
            name: leader.node,
            epoch: leader.epoch,
        });
    Ok(ok(StatusCode::OK, NodesView { nodes, leader }))
}
