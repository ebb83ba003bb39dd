//! Joining a cluster as a light node and finding a Gateway.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use marie_protocol::messages::GatewayMsg;
use marie_protocol::names::GATEWAY_GROUP;
use ractor::{Actor, ActorRef, pg};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage};
use rustls::ClientConfig;
use tokio::sync::mpsc;

use crate::ClientError;

/// How often the client looks for a Gateway while joining.
const POLL: Duration = Duration::from_millis(5);

/// A Gateway known in this process: one running here if there is one, else one
/// announced by a peer node.
pub(crate) fn any_gateway() -> Option<ActorRef<GatewayMsg>> {
    let mut members = pg::get_members(&GATEWAY_GROUP.to_string());
    members.sort_by_key(|cell| !cell.get_id().is_local());
    members.into_iter().next().map(ActorRef::from)
}

/// Opens a cluster connection from `node` to `addr`, over TLS when `tls` is given; the
/// handshake with the peer goes on after this returns.
pub async fn dial(
    node: &ActorRef<NodeServerMessage>,
    addr: &str,
    tls: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<(), String> {
    let connecting = async {
        match tls {
            None => ractor_cluster::client_connect(node, addr).await,
            Some(config) => {
                let name = crate::tls::server_name(addr).map_err(|e| e.to_string())?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                ractor_cluster::client_connect_enc(node, addr, connector, name).await
            }
        }
        .map_err(|e| format!("{e:?}"))
    };
    match tokio::time::timeout(timeout, connecting).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

#[derive(Debug)]
enum SessionEvent {
    Ready,
    Closed,
}

struct Events(mpsc::UnboundedSender<SessionEvent>);

impl NodeEventSubscription for Events {
    fn node_session_opened(&self, _: NodeServerSessionInformation) {}
    fn node_session_disconnected(&self, _: NodeServerSessionInformation) {
        let _ = self.0.send(SessionEvent::Closed);
    }
    fn node_session_authenticated(&self, _: NodeServerSessionInformation) {}
    fn node_session_ready(&self, _: NodeServerSessionInformation) {
        let _ = self.0.send(SessionEvent::Ready);
    }
}

/// Starts the client's node, connects to `addr`, waits for the handshake and for a
/// Gateway to be announced.
pub(crate) async fn join(
    addr: &str,
    cookie: &str,
    tls: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<(ActorRef<NodeServerMessage>, ActorRef<GatewayMsg>), ClientError> {
    let name = format!(
        "marie-client-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let server = NodeServer::new(0, cookie.to_owned(), name, "127.0.0.1".into(), None, None)
        .with_listen_addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (node, _) = Actor::spawn(None, server, ())
        .await
        .map_err(ClientError::LocalNode)?;
    let (tx, mut events) = mpsc::unbounded_channel();
    node.cast(NodeServerMessage::SubscribeToEvents {
        id: "marie-client".into(),
        subscription: Box::new(Events(tx)),
    })
    .map_err(|e| ClientError::LocalNodeStopped(Box::new(e)))?;

    if let Err(reason) = dial(&node, addr, tls, timeout).await {
        node.stop(None);
        return Err(ClientError::Unreachable {
            addr: addr.into(),
            reason,
        });
    }
    let refused = || ClientError::Refused {
        addr: addr.into(),
        tls: tls.is_some(),
    };

    let deadline = Instant::now() + timeout;
    let mut ready = false;
    loop {
        if ready && let Some(gateway) = any_gateway() {
            return Ok((node, gateway));
        }
        if Instant::now() >= deadline {
            node.stop(None);
            return Err(if ready {
                ClientError::NoGateway { addr: addr.into() }
            } else {
                refused()
            });
        }
        match tokio::time::timeout(POLL, events.recv()).await {
            Ok(Some(SessionEvent::Ready)) => ready = true,
            Ok(Some(SessionEvent::Closed)) if !ready => {
                node.stop(None);
                return Err(refused());
            }
            Ok(Some(SessionEvent::Closed)) => {
                node.stop(None);
                return Err(ClientError::SessionClosed { addr: addr.into() });
            }
            Ok(None) | Err(_) => {}
        }
    }
}
