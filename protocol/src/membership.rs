//! Messages between nodes about the cluster itself: who is in it, where to reach them,
//! and that they are alive.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::messages::Tick;
use crate::wire_type;

/// A node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its unique name.
    pub name: String,
    /// Its cluster address, `host:port`.
    pub addr: String,
    /// Its role: `server`, `gateway`, `executor` or `up` (all in one).
    pub role: String,
}

/// A node's periodic word to its peers: it is alive, and these are the nodes it knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender.
    pub from: NodeInfo,
    /// The nodes the sender is connected to, so the receiver can connect to them too.
    pub peers: Vec<NodeInfo>,
}

/// A node and where it stands, as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node.
    pub node: NodeInfo,
    /// `up`, `unreachable` (connected but silent past the deadline), `gone` (its
    /// connection closed) or `known` (heard of, not connected yet).
    pub status: String,
}

/// The nodes one node knows, itself first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeList(pub Vec<NodeStatus>);

/// Ask a node for the nodes it knows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersQuery;

/// A dial of a cluster address that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialFailure {
    /// The address, `host:port`.
    pub addr: String,
}

/// Messages of a node's membership actor.
#[derive(RactorClusterMessage)]
pub enum MembershipMsg {
    /// A peer is alive and knows these nodes.
    Hello(Hello),
    /// Timer: greet peers, connect to unknown ones, declare silent ones unreachable.
    Tick(Tick),
    /// A dial this node made failed: the address is dialled again after a backoff.
    DialFailed(DialFailure),
    /// The nodes this node knows and their status.
    #[rpc]
    Members(MembersQuery, RpcReplyPort<NodeList>),
}

wire_type!(Hello, NodeList, MembersQuery, DialFailure);
