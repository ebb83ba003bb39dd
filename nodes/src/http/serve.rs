//! The HTTP server loop: HTTP/1.1 connections served by hyper with a deadline for each
//! request head, so a client that sends its headers a byte at a time (slowloris) is
//! closed instead of holding its connection for ever. `axum::serve` sets no such
//! deadline. On shutdown the loop stops accepting, asks every connection to finish its
//! request in progress, and waits for them.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

/// Longest a client may take to send a request's head (line and headers).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `stopped` fires, then lets the requests in progress
/// finish.
pub async fn serve(listener: TcpListener, app: Router, mut stopped: oneshot::Receiver<()>) {
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        // Out of file descriptors, most often: pause rather than spin.
                        tracing::warn!(error = %e, "the HTTP API cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY on an HTTP connection");
                }
                connections.spawn(connection(tcp, app.clone(), closed.clone()));
            }
        }
    }
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

/// One connection, until the client closes it, its head is late, or the server closes.
async fn connection(tcp: tokio::net::TcpStream, app: Router, mut closing: watch::Receiver<bool>) {
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app))
        .with_upgrades();
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = closing.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "an HTTP connection ended with an error");
    }
}
