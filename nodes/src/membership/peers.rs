//! Who is in the cluster, as one node sees it: the pure bookkeeping behind the
//! membership actor, with time passed in.
//!
//! A peer is **up** while its greetings arrive; **unreachable** when it is still
//! connected but has said nothing for `down_after_ms` (hung, or cut off); **gone** when
//! its connection closed (it died or stopped) and no other session to it stayed open.
//!
//! Each pair of nodes shares one session, so it is dialled from one side only. Seeds
//! are dialled until their node greets us; a peer learnt from a greeting (or gone) is
//! dialled by the node whose session name sorts last, the one whose connection
//! ractor_cluster keeps when both dial at once (the other waits `down_after_ms` before
//! dialling itself). An address is dialled again only once its last dial failed (with
//! exponential backoff) or brought no greeting within `down_after_ms`: a second session
//! to a node would make ractor_cluster close one of the two, and with it that node's
//! actors in every process group.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use marie_protocol::membership::{Hello, NodeInfo};

use crate::identity::advertised_host;

/// First wait before dialling an address again.
const FIRST_BACKOFF_MS: u64 = 200;
/// Longest wait between two dials of one address.
const MAX_BACKOFF_MS: u64 = 5_000;

/// Where a peer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerStatus {
    /// Greeting us in time.
    Up,
    /// Connected but silent past the deadline.
    Unreachable,
    /// Its connection closed.
    Gone,
    /// Heard of from another node, not connected yet.
    Known,
    /// Connected, not greeted yet: the connection is its first sign of life.
    Connected,
}

impl fmt::Display for PeerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerStatus::Up => "up",
            PeerStatus::Unreachable => "unreachable",
            PeerStatus::Gone => "gone",
            PeerStatus::Known => "known",
            PeerStatus::Connected => "connected",
        })
    }
}

/// A change worth telling the operator (and acting on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// A node greeted us for the first time, or again after being unreachable or gone.
    Up(NodeInfo),
    /// A connected node stayed silent for this many milliseconds: cut its session.
    Unreachable(NodeInfo, u64),
    /// A node's connection closed.
    Gone(NodeInfo),
    /// Another node uses our name: one of the two is misconfigured; its session is cut.
    DuplicateName(NodeInfo),
}

#[derive(Clone, Debug)]
struct Peer {
    info: NodeInfo,
    status: PeerStatus,
    /// Its last greeting, or when it was connected, learnt of or found gone.
    last_seen_ms: u64,
}

/// When an address may be dialled next, and the wait after its next failure.
#[derive(Clone, Copy, Debug)]
struct Redial {
    next_ms: u64,
    delay_ms: u64,
}

/// An open session with another node, as its handshake announced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The node's name.
    pub node: String,
    /// Its cluster address, `host:port`.
    pub addr: String,
}

/// The name ractor_cluster gives `node`'s sessions: `name@host`.
fn session_name(node: &NodeInfo) -> String {
    format!("{}@{}", node.name, advertised_host(&node.addr))
}

/// The peers of one node.
#[derive(Debug)]
pub struct PeerTable {
    me: NodeInfo,
    seeds: Vec<String>,
    down_after_ms: u64,
    peers: BTreeMap<String, Peer>,
    redials: HashMap<String, Redial>,
    /// The sessions open at the last look: their nodes and addresses are not dialled.
    sessions: Vec<Session>,
}

impl PeerTable {
    /// A table for node `me`, which joins through `seeds` and declares a peer
    /// unreachable after `down_after_ms` of silence.
    pub fn new(me: NodeInfo, seeds: Vec<String>, down_after_ms: u64) -> Self {
        PeerTable {
            me,
            seeds,
            down_after_ms,
            peers: BTreeMap::new(),
            redials: HashMap::new(),
            sessions: Vec::new(),
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    /// A greeting arrived.
    pub fn hello(&mut self, hello: Hello, now_ms: u64) -> Vec<PeerEvent> {
        let mut events = Vec::new();
        let from = hello.from;
        if from.name == self.me.name {
            if from.addr != self.me.addr {
                events.push(PeerEvent::DuplicateName(from));
            }
            return events;
        }
        self.redials.remove(&from.addr);
        let peer = self.peers.entry(from.name.clone()).or_insert_with(|| Peer {
            info: from.clone(),
            status: PeerStatus::Known,
            last_seen_ms: now_ms,
        });
        peer.info = from.clone();
        peer.last_seen_ms = now_ms;
        if peer.status != PeerStatus::Up {
            peer.status = PeerStatus::Up;
            events.push(PeerEvent::Up(from));
        }
        for other in hello.peers {
            if other.name != self.me.name {
                self.peers.entry(other.name.clone()).or_insert(Peer {
                    info: other,
                    status: PeerStatus::Known,
                    last_seen_ms: now_ms,
                });
            }
        }
        events
    }

    /// `connected` are the peers whose membership actor is reachable now, `sessions`
    /// the open sessions (not dialled again). A peer connected but not greeted yet is watched
    /// from now on (a node hung right after it joined is still declared unreachable).
    /// A live peer among neither is gone; one with a session left is not: when two
    /// sessions to a node open at once, ractor_cluster closes one, and the node's actors
    /// are announced again over the other.
    pub fn connected(
        &mut self,
        connected: &[String],
        sessions: &[Session],
        now_ms: u64,
    ) -> Vec<PeerEvent> {
        self.sessions = sessions.to_vec();
        for name in connected.iter().filter(|n| **n != self.me.name) {
            let peer = self.peers.entry(name.clone()).or_insert_with(|| Peer {
                info: NodeInfo {
                    name: name.clone(),
                    addr: String::new(),
                    role: String::new(),
                },
                status: PeerStatus::Known,
                last_seen_ms: now_ms,
            });
            if matches!(peer.status, PeerStatus::Known | PeerStatus::Gone) {
                peer.status = PeerStatus::Connected;
                peer.last_seen_ms = now_ms;
            }
        }
        let mut events = Vec::new();
        for (name, peer) in &mut self.peers {
            let live = matches!(
                peer.status,
                PeerStatus::Up | PeerStatus::Unreachable | PeerStatus::Connected
            );
            let session = sessions.iter().any(|s| s.node == *name);
            if live && !connected.contains(name) && !session {
                peer.status = PeerStatus::Gone;
                peer.last_seen_ms = now_ms;
                events.push(PeerEvent::Gone(peer.info.clone()));
            }
        }
        events
    }

    /// Up peers silent for longer than the deadline become unreachable.
    pub fn overdue(&mut self, now_ms: u64) -> Vec<PeerEvent> {
        let mut events = Vec::new();
        for peer in self.peers.values_mut() {
            let silent = now_ms.saturating_sub(peer.last_seen_ms);
            let watched = matches!(peer.status, PeerStatus::Up | PeerStatus::Connected);
            if watched && silent > self.down_after_ms {
                peer.status = PeerStatus::Unreachable;
                events.push(PeerEvent::Unreachable(peer.info.clone(), silent));
            }
        }
        events
    }

    /// Addresses to dial now: seeds and the peers this node dials (see the module
    /// documentation) that are not up and have no open session. An address is dialled again once its dial failed
    /// (after a wait doubling from 200 ms to 5 s while it keeps failing, see
    /// [`PeerTable::dial_failed`]) or brought no greeting within `down_after_ms`.
    pub fn due_dials(&mut self, now_ms: u64) -> Vec<String> {
        let up: Vec<&str> = self
            .peers
            .values()
            .filter(|p| p.status == PeerStatus::Up)
            .map(|p| p.info.addr.as_str())
            .collect();
        let mut wanted: Vec<String> = self
            .seeds
            .iter()
            .cloned()
            .chain(
                self.peers
                    .values()
                    .filter(|p| matches!(p.status, PeerStatus::Known | PeerStatus::Gone))
                    .filter(|p| self.dials(p, now_ms))
                    .filter(|p| !self.sessions.iter().any(|s| s.node == p.info.name))
                    .map(|p| p.info.addr.clone()),
            )
            .filter(|addr| {
                !addr.is_empty()
                    && *addr != self.me.addr
                    && !up.contains(&addr.as_str())
                    && !self.sessions.iter().any(|s| s.addr == *addr)
            })
            .collect();
        wanted.sort();
        wanted.dedup();
        wanted
            .into_iter()
            .filter(|addr| {
                let redial = self.redials.entry(addr.clone()).or_insert(Redial {
                    next_ms: now_ms,
                    delay_ms: FIRST_BACKOFF_MS,
                });
                if redial.next_ms > now_ms {
                    return false;
                }
                redial.next_ms = now_ms + self.down_after_ms;
                true
            })
            .collect()
    }

    /// The dial of `addr` failed (refused, or no connection in time): it is dialled
    /// again after the backoff, which doubles.
    pub fn dial_failed(&mut self, addr: &str, now_ms: u64) {
        if let Some(redial) = self.redials.get_mut(addr) {
            redial.next_ms = now_ms + redial.delay_ms;
            redial.delay_ms = (redial.delay_ms * 2).min(MAX_BACKOFF_MS);
        }
    }

    /// Whether this node dials `peer` (not a seed) now: when its session name sorts
    /// after the peer's, or once the peer has waited `down_after_ms` for the other side
    /// to dial.
    fn dials(&self, peer: &Peer, now_ms: u64) -> bool {
        session_name(&self.me) > session_name(&peer.info)
            || now_ms.saturating_sub(peer.last_seen_ms) > self.down_after_ms
    }

    /// Peers that are up, for greetings.
    pub fn up(&self) -> Vec<NodeInfo> {
        self.peers
            .values()
            .filter(|p| p.status == PeerStatus::Up)
            .map(|p| p.info.clone())
            .collect()
    }

    /// Every peer with its status.
    pub fn all(&self) -> Vec<(NodeInfo, PeerStatus)> {
        self.peers
            .values()
            .map(|p| (p.info.clone(), p.status))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, port: u16) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            addr: format!("127.0.0.1:{port}"),
            role: "executor".into(),
        }
    }

    fn hello(from: NodeInfo, peers: Vec<NodeInfo>) -> Hello {
        Hello { from, peers }
    }

    fn session(name: &str, port: u16) -> Session {
        Session {
            node: name.into(),
            addr: format!("127.0.0.1:{port}"),
        }
    }

    #[test]
    fn a_greeting_brings_a_peer_up_and_teaches_its_peers() {
        let mut table = PeerTable::new(node("d", 1), vec!["127.0.0.1:2".into()], 3000);
        let events = table.hello(hello(node("b", 2), vec![node("c", 3), node("d", 1)]), 10);
        assert_eq!(events, vec![PeerEvent::Up(node("b", 2))]);
        // b is up: only c (learnt from b) is dialled, not the seed b nor ourselves.
        assert_eq!(table.due_dials(10), vec!["127.0.0.1:3".to_string()]);
    }

    #[test]
    fn silence_past_the_deadline_makes_a_peer_unreachable_then_a_greeting_brings_it_back() {
        let mut table = PeerTable::new(node("a", 1), vec![], 3000);
        table.hello(hello(node("b", 2), vec![]), 0);
        assert!(table.overdue(3000).is_empty());
        assert_eq!(
            table.overdue(3001),
            vec![PeerEvent::Unreachable(node("b", 2), 3001)]
        );
        assert!(table.overdue(9000).is_empty(), "reported once");
        assert_eq!(
            table.hello(hello(node("b", 2), vec![]), 9000),
            vec![PeerEvent::Up(node("b", 2))]
        );
    }

    #[test]
    fn a_peer_connected_but_silent_from_the_start_is_unreachable_too() {
        let mut table = PeerTable::new(node("a", 1), vec![], 3000);
        assert!(
            table
                .connected(&["b".into()], &[session("b", 2)], 100)
                .is_empty()
        );
        assert!(table.overdue(3000).is_empty());
        let events = table.overdue(3101);
        assert!(
            matches!(events.as_slice(), [PeerEvent::Unreachable(n, 3001)] if n.name == "b"),
            "{events:?}"
        );
    }

    #[test]
    fn a_closed_connection_is_gone_not_unreachable() {
        let mut table = PeerTable::new(node("a", 1), vec![], 3000);
        table.hello(hello(node("b", 2), vec![]), 0);
        assert_eq!(
            table.connected(&["b".into()], &[session("b", 2)], 0),
            vec![]
        );
        assert_eq!(
            table.connected(&[], &[], 0),
            vec![PeerEvent::Gone(node("b", 2))]
        );
        assert_eq!(table.all(), vec![(node("b", 2), PeerStatus::Gone)]);
    }

    #[test]
    fn dials_back_off_while_an_address_keeps_failing() {
        let mut table = PeerTable::new(node("a", 1), vec!["127.0.0.1:9".into()], 3000);
        let mut dials = Vec::new();
        for t in (0..=3000).step_by(50) {
            for addr in table.due_dials(t) {
                dials.push(t);
                table.dial_failed(&addr, t);
            }
        }
        assert_eq!(dials, vec![0, 200, 600, 1400, 3000]);
    }

    #[test]
    fn an_address_is_not_dialled_again_while_its_dial_awaits_a_greeting() {
        let mut table = PeerTable::new(node("a", 1), vec!["127.0.0.1:2".into()], 3000);
        assert_eq!(table.due_dials(0), vec!["127.0.0.1:2".to_string()]);
        // The connection opened; its handshake and the seed's first greeting are slow.
        assert!(table.connected(&[], &[], 10).is_empty());
        for t in (500..3000).step_by(500) {
            assert!(table.due_dials(t).is_empty(), "dialled again at {t} ms");
        }
        // No greeting within the deadline: the dial is taken for lost.
        assert_eq!(table.due_dials(3000), vec!["127.0.0.1:2".to_string()]);
        table.hello(hello(node("b", 2), vec![]), 3100);
        assert!(table.due_dials(9000).is_empty(), "b is up");
    }

    #[test]
    fn of_two_nodes_that_learn_of_each_other_only_the_one_whose_name_sorts_last_dials() {
        let (a, b, seed) = (node("a", 1), node("b", 2), node("s", 3));
        let mut table_a = PeerTable::new(a.clone(), vec![seed.addr.clone()], 3000);
        let mut table_b = PeerTable::new(b.clone(), vec![seed.addr.clone()], 3000);
        table_a.hello(hello(seed.clone(), vec![b.clone()]), 0);
        table_b.hello(hello(seed.clone(), vec![a.clone()]), 0);
        assert_eq!(table_b.due_dials(0), vec![a.addr.clone()], "b@… sorts last");
        assert!(table_a.due_dials(0).is_empty(), "a waits for b");
        // b never dialled: a does, once it has waited the deadline.
        assert!(table_a.due_dials(3000).is_empty());
        assert_eq!(table_a.due_dials(3001), vec![b.addr.clone()]);
    }

    #[test]
    fn a_peer_whose_session_stays_open_is_not_gone_while_its_actors_are_announced_again() {
        let mut table = PeerTable::new(node("a", 1), vec![], 3000);
        table.hello(hello(node("b", 2), vec![]), 0);
        // One of two sessions to b closed; b's actors come back over the other.
        assert_eq!(table.connected(&[], &[session("b", 2)], 100), vec![]);
        assert_eq!(table.all(), vec![(node("b", 2), PeerStatus::Up)]);
        assert!(
            table.due_dials(100).is_empty(),
            "no session to b is dialled"
        );
    }

    #[test]
    fn a_seed_or_a_gone_peer_that_dialled_us_is_not_dialled_back() {
        let (b, c) = (node("b", 2), node("c", 3));
        let mut table = PeerTable::new(node("s", 1), vec![b.addr.clone()], 3000);
        table.hello(hello(c.clone(), vec![]), 0);
        assert_eq!(
            table.connected(&[], &[], 10),
            vec![PeerEvent::Gone(c.clone())]
        );
        // Both restarted and dialled this node before it dialled them.
        table.connected(&[], &[session("b", 2), session("c", 3)], 20);
        assert!(table.due_dials(20).is_empty());
        // Their sessions closed again: both are dialled.
        table.connected(&[], &[], 30);
        assert_eq!(table.due_dials(30), vec![b.addr, c.addr]);
    }

    #[test]
    fn another_node_with_our_name_is_reported() {
        let mut table = PeerTable::new(node("a", 1), vec![], 3000);
        assert_eq!(
            table.hello(hello(node("a", 7), vec![]), 0),
            vec![PeerEvent::DuplicateName(node("a", 7))]
        );
        assert!(table.hello(hello(node("a", 1), vec![]), 0).is_empty());
    }
}
