//! What can go wrong between a client and the cluster, each with what to do about it.

use std::time::Duration;

use marie_protocol::GatewayError;

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
    /// The connection broke.
    #[error("lost the connection to the cluster: {0}")]
    Disconnected(String),
    /// The Gateway answered with an error.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The client's own node could not start.
    #[error("could not start the client node: {0}")]
    Local(String),
}

fn refusal_hint(tls: bool) -> &'static str {
    if tls {
        "the cookie does not match, or the node refused this client's TLS certificate; check --cookie-file / MARIE_CLUSTER__COOKIE and the cluster.tls files"
    } else {
        "the cookie does not match; pass the cluster's cookie with --cookie-file or MARIE_CLUSTER__COOKIE"
    }
}
