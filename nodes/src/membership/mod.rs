//! Cluster membership: every node runs one membership actor that greets its peers,
//! learns the nodes they know and connects to them (process groups are not transitive,
//! so the cluster is a full mesh), redials lost peers with backoff, and cuts the
//! session of a peer that stays silent past the deadline — ractor_cluster itself never
//! notices a hung peer. Cutting the session removes the peer's actors from every
//! process group, which is how the CapacityManager learns that its executors are lost.
//! Each pair of nodes is dialled from one side only (see [`PeerTable`]), and a peer
//! with a session left open is never taken for gone.

mod listen;
mod peers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use marie_protocol::membership::{
    DialFailure, Hello, MembersQuery, MembershipMsg, NodeInfo, NodeList, NodeStatus,
};
use marie_protocol::messages::Tick;
use marie_protocol::names::MEMBERSHIP_GROUP;
use ractor::{Actor, ActorProcessingErr, ActorRef, pg};
use ractor_cluster::NodeServerMessage;
use ractor_cluster::node::NodeServerSessionInformation;
use rustls::ClientConfig;

pub use listen::{ClusterPort, open_cluster_port};
pub use peers::{PeerEvent, PeerTable, Session};

/// Name of a node's membership actor.
pub fn actor_name(node: &str) -> String {
    format!("membership@{node}")
}

/// The membership actor.
pub struct Membership;

/// What the membership actor starts with.
pub struct MembershipArgs {
    /// This node.
    pub me: NodeInfo,
    /// Addresses to join through.
    pub seeds: Vec<String>,
    /// How often to greet peers.
    pub heartbeat: Duration,
    /// Silence after which a peer is unreachable.
    pub down_after: Duration,
    /// This node's NodeServer, to dial peers and cut sessions.
    pub node_server: ActorRef<NodeServerMessage>,
    /// TLS for dialling, when the cluster uses it.
    pub tls: Option<Arc<ClientConfig>>,
}

/// The membership actor's state.
pub struct MembershipState {
    table: PeerTable,
    started: Instant,
    node_server: ActorRef<NodeServerMessage>,
    tls: Option<Arc<ClientConfig>>,
    dial_timeout: Duration,
}

impl Actor for Membership {
    type Msg = MembershipMsg;
    type State = MembershipState;
    type Arguments = MembershipArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MembershipMsg>,
        args: MembershipArgs,
    ) -> Result<MembershipState, ActorProcessingErr> {
        pg::join(MEMBERSHIP_GROUP.to_string(), vec![myself.get_cell()]);
        myself.send_interval(args.heartbeat, || MembershipMsg::Tick(Tick));
        myself.cast(MembershipMsg::Tick(Tick))?;
        Ok(MembershipState {
            table: PeerTable::new(args.me, args.seeds, args.down_after.as_millis() as u64),
            started: Instant::now(),
            node_server: args.node_server,
            tls: args.tls,
            dial_timeout: args.down_after,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<MembershipMsg>,
        msg: MembershipMsg,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        let now = state.started.elapsed().as_millis() as u64;
        match msg {
            MembershipMsg::Hello(hello) => {
                let events = state.table.hello(hello, now);
                state.report(events).await;
            }
            MembershipMsg::DialFailed(failure) => state.table.dial_failed(&failure.addr, now),
            MembershipMsg::Tick(_) => {
                let peers = remote_members();
                let names: Vec<String> =
                    peers.iter().filter_map(|(name, _)| name.clone()).collect();
                let sessions: Vec<Session> = state
                    .sessions()
                    .await
                    .into_iter()
                    .filter_map(|s| s.peer_name)
                    .map(|p| Session {
                        node: node_of(&p.name).to_owned(),
                        addr: p.connection_string,
                    })
                    .collect();
                let mut events = state.table.connected(&names, &sessions, now);
                events.extend(state.table.overdue(now));
                state.report(events).await;
                for addr in state.table.due_dials(now) {
                    let (node, tls, timeout, me) = (
                        state.node_server.clone(),
                        state.tls.clone(),
                        state.dial_timeout,
                        myself.clone(),
                    );
                    tokio::spawn(async move {
                        if let Err(reason) =
                            marie_client::dial(&node, &addr, tls.as_ref(), timeout).await
                        {
                            tracing::debug!(%addr, %reason, "cannot reach a peer yet");
                            let _ = me.cast(MembershipMsg::DialFailed(DialFailure { addr }));
                        }
                    });
                }
                let hello = Hello {
                    from: state.table.me().clone(),
                    peers: state.table.up(),
                };
                for (_, peer) in peers {
                    let _ = peer.cast(MembershipMsg::Hello(hello.clone()));
                }
            }
            MembershipMsg::Members(_, reply) => {
                let me = NodeStatus {
                    node: state.table.me().clone(),
                    status: "up".into(),
                };
                let others = state
                    .table
                    .all()
                    .into_iter()
                    .map(|(node, status)| NodeStatus {
                        node,
                        status: status.to_string(),
                    });
                let _ = reply.send(NodeList(std::iter::once(me).chain(others).collect()));
            }
        }
        Ok(())
    }
}

impl MembershipState {
    async fn report(&self, events: Vec<PeerEvent>) {
        for event in events {
            match event {
                PeerEvent::Up(node) => {
                    tracing::info!(node = %node.name, addr = %node.addr, role = %node.role, "node up")
                }
                PeerEvent::Gone(node) => tracing::warn!(
                    node = %node.name, addr = %node.addr,
                    "node gone: its connection closed (stopped, crashed or restarted); its executors' jobs re-queue"
                ),
                PeerEvent::Unreachable(node, silent_ms) => {
                    tracing::warn!(
                        node = %node.name, addr = %node.addr, silent_ms,
                        "node unreachable: connected but silent past the deadline (hung or cut off); cutting its session"
                    );
                    self.cut_session(&node.name).await;
                }
                PeerEvent::DuplicateName(node) => {
                    let here = &self.table.me().addr;
                    tracing::error!("{}", same_name(&node.name, here, &node.addr));
                    self.cut_session(&node.name).await;
                }
            }
        }
    }

    /// The authenticated sessions of this node (none when the NodeServer does not
    /// answer within a second).
    async fn sessions(&self) -> Vec<NodeServerSessionInformation> {
        let sessions = self
            .node_server
            .call(NodeServerMessage::GetSessions, Some(Duration::from_secs(1)))
            .await;
        match sessions {
            Ok(ractor::rpc::CallResult::Success(sessions)) => sessions.into_values().collect(),
            _ => Vec::new(),
        }
    }

    /// Stops the session with `node`, so its actors leave every process group.
    async fn cut_session(&self, node: &str) {
        for session in self.sessions().await {
            if session
                .peer_name
                .as_ref()
                .is_some_and(|p| node_of(&p.name) == node)
            {
                session.actor.stop(Some("peer unreachable".into()));
            }
        }
    }
}

/// The node name in a session's peer name: ractor_cluster announces a node as
/// `name@host`.
fn node_of(session_name: &str) -> &str {
    session_name
        .split_once('@')
        .map_or(session_name, |(name, _)| name)
}

/// The refusal of a peer at `there` that has the name of this node (at `here`), with the
/// fix.
fn same_name(name: &str, here: &str, there: &str) -> String {
    format!(
        "refused node {name} at {there}: this node at {here} has the same name. Every node needs its own node.name: leave it \"auto\" (<hostname>-<cluster port>), or give each node its own name (MARIE_NODE__NAME)"
    )
}

/// The nodes this node knows, from its membership actor.
pub async fn members() -> Option<NodeList> {
    let local = pg::get_members(&MEMBERSHIP_GROUP.to_string())
        .into_iter()
        .find(|cell| cell.get_id().is_local())?;
    let actor: ActorRef<MembershipMsg> = local.into();
    let answer = actor
        .call(
            |reply| MembershipMsg::Members(MembersQuery, reply),
            Some(Duration::from_secs(2)),
        )
        .await
        .ok()?;
    answer.success_or(()).ok()
}

/// Membership actors of other nodes reachable now, with their node names.
fn remote_members() -> Vec<(Option<String>, ActorRef<MembershipMsg>)> {
    pg::get_members(&MEMBERSHIP_GROUP.to_string())
        .into_iter()
        .filter(|cell| !cell.get_id().is_local())
        .map(|cell| {
            let node = cell
                .get_name()
                .and_then(|n| n.strip_prefix("membership@").map(str::to_owned));
            (node, ActorRef::from(cell))
        })
        .collect()
}
