//! What can go wrong between a client and the cluster, each with what to do about it.

use std::time::Duration;

use marie_protocol::GatewayError;
use marie_protocol::messages::GatewayMsg;
use ractor::{MessagingErr, SpawnErr};
use ractor_cluster::NodeServerMessage;

use crate::tls::TlsError;

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing accepted the TCP connection.
    #[error(
        "no Marie cluster answers at {addr} ({reason}): start one with `marie up`, or pass --connect HOST:PORT"
    )]
    Unreachable {
        /// The address tried.
        addr: String,
        /// The socket error.
        reason: String,
    },
    /// The peer closed the session during the handshake.
    #[error("the cluster at {addr} refused the handshake: {}", refusal_hint(*tls))]
    Refused {
        /// The address tried.
        addr: String,
        /// Whether TLS was in use.
        tls: bool,
    },
    /// Joined, but no Gateway showed up.
    #[error(
        "joined the cluster at {addr}, but it has no Gateway: is the node starting or stopping?"
    )]
    NoGateway {
        /// The address joined.
        addr: String,
    },
    /// The cluster did not answer in time.
    #[error("the cluster did not answer within {0:?}: it may be overloaded or gone")]
    Timeout(Duration),
    /// The session closed after the handshake, before a Gateway was found.
    #[error(
        "the cluster at {addr} closed the session while this client was joining: retry, and read that node's log if it repeats"
    )]
    SessionClosed {
        /// The address joined.
        addr: String,
    },
    /// The Gateway went away without answering (it stopped, or its node left).
    #[error("the Gateway dropped the request: it stopped or its node left the cluster; retry")]
    Dropped,
    /// The request could not be sent to the Gateway.
    #[error("cannot send to the Gateway: the connection to the cluster is gone; reconnect")]
    Send(#[source] Box<MessagingErr<GatewayMsg>>),
    /// The Gateway answered with an error (an answer that could not be decoded
    /// included: [`GatewayError::Undecodable`]).
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The TLS files do not make a client configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The client's own node could not start.
    #[error("could not start the client's node")]
    LocalNode(#[source] SpawnErr),
    /// The client's own node stopped before it could watch its session.
    #[error("the client's node stopped while joining")]
    LocalNodeStopped(#[source] Box<MessagingErr<NodeServerMessage>>),
}

fn refusal_hint(tls: bool) -> &'static str {
    if tls {
        "the cookie does not match, or the node refused this client's TLS certificate; check --cookie-file / MARIE_CLUSTER__COOKIE and the cluster.tls files"
    } else {
        "the cookie does not match; pass the cluster's cookie with --cookie-file or MARIE_CLUSTER__COOKIE"
    }
}
