//! `marie up`: the whole cluster in one process, served on the cluster port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use ractor::Actor;
use ractor_cluster::NodeServer;

use crate::cluster::{EmbeddedCluster, open_store};
use crate::config::Config;
use crate::cookie;
use crate::http::HttpServer;
use crate::telemetry::Telemetry;

/// Runs until SIGINT or SIGTERM, then shuts down cleanly.
pub async fn run(config: Config, telemetry: Arc<Telemetry>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.node.data_dir).with_context(|| {
        format!(
            "cannot create the data dir {}",
            config.node.data_dir.display()
        )
    })?;
    let cookie = cookie::for_node(&config)?;
    let store = open_store(&config)?;
    let cluster = EmbeddedCluster::start(&config, store).await?;

    let addr = SocketAddr::new(config.cluster.host, config.cluster.port);
    // Check the port first: the NodeServer's listener would only log a bind failure.
    drop(std::net::TcpListener::bind(addr).with_context(|| {
        format!("cannot listen on the cluster port {addr}: is another node running? (set MARIE_CLUSTER__PORT)")
    })?);
    let server = NodeServer::new(
        config.cluster.port,
        cookie,
        config.node.name.clone(),
        config.cluster.host.to_string(),
        None,
        None,
    )
    .with_listen_addr(config.cluster.host);
    let (node, node_done) = Actor::spawn(Some("marie-node-server".into()), server, ())
        .await
        .context("the cluster port did not start")?;
    let http = HttpServer::start(&config, metrics_route(telemetry)).await?;

    let pools: Vec<String> = config
        .executor
        .pools
        .iter()
        .map(|p| format!("{} ({}×{} slots)", p.name, p.replicas, p.slots))
        .collect();
    tracing::info!(
        cluster = %addr,
        http = %http.addr(),
        data_dir = %config.node.data_dir.display(),
        pools = %pools.join(", "),
        "marie is up"
    );
    eprintln!(
        "marie is up on {addr} (HTTP API on http://{}) — pools: {}. Ctrl-C stops it.",
        http.addr(),
        pools.join(", ")
    );

    shutdown_signal().await;
    http.stop(Duration::from_secs(5)).await;
    eprintln!("shutting down: draining running jobs…");
    cluster
        .shutdown(Duration::from_secs(config.node.drain_timeout_secs))
        .await;
    node.stop(None);
    let _ = node_done.await;
    tracing::info!("marie stopped");
    Ok(())
}

/// `GET /metrics`: the Prometheus text of every metric.
fn metrics_route(telemetry: Arc<Telemetry>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || async move {
            let content_type = [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )];
            (content_type, telemetry.metrics_text())
        }),
    )
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the node");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
