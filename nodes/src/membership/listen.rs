//! The node's cluster port: a ractor_cluster `NodeServer`, and with TLS an accept loop
//! of our own in front of it. ractor_cluster's TLS listener does the handshake inline
//! with no timeout, so one idle connection would block every later one; here each
//! handshake runs in its own task with a deadline, and only finished handshakes are
//! handed to the NodeServer. Refused peers are logged with their address; a peer that
//! has this node's name is refused by ractor_cluster's handshake, and said so here.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{
    BoxRead, BoxWrite, ClusterBidiStream, IncomingEncryptionMode, NodeEventSubscription,
    NodeServer, NodeServerMessage,
};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The running cluster port.
pub struct ClusterPort {
    /// The NodeServer (dial peers through it).
    pub node_server: ActorRef<NodeServerMessage>,
    done: JoinHandle<()>,
    accept: Option<JoinHandle<()>>,
}

impl ClusterPort {
    /// Closes the port and every session.
    pub async fn close(self) {
        if let Some(accept) = self.accept {
            accept.abort();
        }
        self.node_server.stop(None);
        let _ = self.done.await;
    }
}

/// Opens the cluster port on `addr` for node `name`, reached by others at
/// `advertised_host`, authenticating peers with `cookie`, over mutual TLS when `tls` is
/// given.
///
/// ractor_cluster refuses a peer whose `name@host` or `host:port` equals this node's as
/// a connection to itself, so the advertised host (unique per node), not the bind
/// address (`0.0.0.0` in every pod), goes into both.
pub async fn open_cluster_port(
    addr: SocketAddr,
    name: &str,
    advertised_host: &str,
    cookie: String,
    tls: Option<(Arc<ServerConfig>, Duration)>,
) -> anyhow::Result<ClusterPort> {
    let bind_error = || {
        format!(
            "cannot listen on the cluster port {addr}: is another node running? (set MARIE_CLUSTER__PORT)"
        )
    };
    let host = advertised_host.to_owned();
    let refusals = Refusals {
        name: name.to_owned(),
        here: format!("{host}:{}", addr.port()),
        authenticated: Mutex::default(),
    };
    let (node_server, done, accept) = match tls {
        None => {
            // Check the port first: the NodeServer's listener would only log a failure.
            drop(std::net::TcpListener::bind(addr).with_context(bind_error)?);
            let server = NodeServer::new(
                addr.port(),
                cookie,
                name.to_owned(),
                host,
                None,
                Some(NodeConnectionMode::Isolated),
            )
            .with_listen_addr(addr.ip());
            let (node, done) = Actor::spawn(Some("marie-node-server".into()), server, ()).await?;
            (node, done, None)
        }
        Some((config, handshake_timeout)) => {
            let listener = TcpListener::bind(addr).await.with_context(bind_error)?;
            let acceptor = TlsAcceptor::from(config);
            // The NodeServer's own listener stays on an ephemeral loopback port, TLS too;
            // peers reach the node through the accept loop below.
            let server = NodeServer::new(
                0,
                cookie,
                name.to_owned(),
                host,
                Some(IncomingEncryptionMode::Tls(acceptor.clone())),
                Some(NodeConnectionMode::Isolated),
            )
            .with_listen_addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
            let (node, done) = Actor::spawn(Some("marie-node-server".into()), server, ()).await?;
            let accept = tokio::spawn(accept_loop(
                listener,
                acceptor,
                handshake_timeout,
                node.clone(),
            ));
            (node, done, Some(accept))
        }
    };
    node_server.cast(NodeServerMessage::SubscribeToEvents {
        id: "marie-refusals".into(),
        subscription: Box::new(refusals),
    })?;
    Ok(ClusterPort {
        node_server,
        done,
        accept,
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    timeout: Duration,
    node: ActorRef<NodeServerMessage>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "cluster port: accept failed");
                continue;
            }
        };
        let (acceptor, node) = (acceptor.clone(), node.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let local = tcp.local_addr().ok();
            match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let stream = Box::new(Accepted {
                        stream,
                        peer,
                        local,
                    });
                    let _ = node.cast(NodeServerMessage::ConnectionOpenedExternal {
                        stream,
                        is_server: true,
                    });
                }
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "refused a connection: TLS handshake failed (no or untrusted client certificate?)")
                }
                Err(_) => {
                    tracing::warn!(%peer, ?timeout, "refused a connection: no TLS handshake in time")
                }
            }
        });
    }
}

/// A connection whose TLS handshake finished, handed to the NodeServer.
struct Accepted {
    stream: TlsStream<TcpStream>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
}

impl ClusterBidiStream for Accepted {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        let (read, write) = tokio::io::split(self.stream);
        (Box::new(read), Box::new(write))
    }

    fn peer_label(&self) -> Option<String> {
        Some(self.peer.to_string())
    }

    fn local_label(&self) -> Option<String> {
        self.local.map(|a| a.to_string())
    }
}

/// Logs sessions that closed before they authenticated: a peer with this node's name
/// (refused by the handshake), or a wrong cookie.
struct Refusals {
    /// This node's name.
    name: String,
    /// This node's `host:port` as its handshake announces it.
    here: String,
    authenticated: Mutex<HashSet<u64>>,
}

impl NodeEventSubscription for Refusals {
    fn node_session_opened(&self, _: NodeServerSessionInformation) {}

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.authenticated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ses.node_id);
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let was_authenticated = self
            .authenticated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ses.node_id);
        if was_authenticated {
            return;
        }
        let peer = ses
            .peer_name
            .as_ref()
            .map(|p| (super::node_of(&p.name), p.connection_string.as_str()));
        match peer {
            Some((name, there)) if name == self.name => {
                tracing::error!("{}", super::same_name(name, &self.here, there))
            }
            Some((name, there)) if there == self.here => tracing::error!(
                "refused node {name}: it announces this node's address {there}; give every node its own cluster.advertise (\"auto\", or its own host:port)"
            ),
            _ if ses.is_server => {
                tracing::warn!(peer = %ses.peer_addr, "a connection closed before it authenticated: a wrong cookie (or a bare port probe)")
            }
            _ => {}
        }
    }
}
