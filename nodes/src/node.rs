//! Running a node: `marie up` (everything in one process) and `marie node --role …`.
//! The node finds its name and advertised address, opens its cluster port, joins the
//! cluster through its seeds, starts the actors of its role and its HTTP port (the API
//! with a Gateway, probes and metrics on executor nodes). Ctrl-C or SIGTERM turns
//! `/readyz` to 503, keeps serving for `node.shutdown_delay_secs`, then drains it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use marie_protocol::membership::NodeInfo;
use ractor::Actor;

use crate::cluster::{NodeActors, NodeContext, Role};
use crate::config::Config;
use crate::cookie;
use crate::http::{self, Draining, HttpServer};
use crate::identity;
use crate::membership::{self, Membership, MembershipArgs};
use crate::telemetry::Telemetry;

/// Runs a node of `role` until SIGINT or SIGTERM, then shuts it down cleanly.
pub async fn run(
    mut config: Config,
    role: Role,
    telemetry: Arc<Telemetry>,
    config_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    identity::resolve(&mut config)?;
    std::fs::create_dir_all(&config.node.data_dir).with_context(|| {
        format!(
            "cannot create the data dir {}",
            config.node.data_dir.display()
        )
    })?;
    let cookie = cookie::for_node(&config)?;
    let cluster = &config.cluster;
    let tls = match &cluster.tls {
        Some(files) => {
            let server = marie_client::tls::server_config(files)?;
            let client = marie_client::tls::client_config(files)?;
            Some((server, client))
        }
        None => None,
    };
    let addr = SocketAddr::new(cluster.host, cluster.port);
    let handshake = Duration::from_millis(cluster.tls_handshake_timeout_ms);
    let advertised = cluster.advertised();
    let port = membership::open_cluster_port(
        addr,
        &config.node.name,
        identity::advertised_host(&advertised),
        cookie.clone(),
        tls.as_ref().map(|(server, _)| (server.clone(), handshake)),
    )
    .await?;

    let context = NodeContext {
        cookie: Some(cookie),
        config_path,
    };
    let mut actors = NodeActors::start(&config, &role, &context).await?;
    let me = NodeInfo {
        name: config.node.name.clone(),
        addr: advertised.clone(),
        role: role.to_string(),
    };
    let membership_args = MembershipArgs {
        me,
        seeds: cluster.seeds.clone(),
        heartbeat: Duration::from_millis(cluster.heartbeat_ms),
        down_after: Duration::from_millis(cluster.down_after_ms),
        node_server: port.node_server.clone(),
        tls: tls.map(|(_, client)| client),
    };
    let (membership, membership_done) = Actor::spawn(
        Some(membership::actor_name(&config.node.name)),
        Membership,
        membership_args,
    )
    .await
    .context("the membership actor did not start")?;
    let draining = Draining::default();
    let metrics = metrics_route(telemetry);
    let app = match role.runs_gateway() {
        true => http::api(&config, draining.clone(), metrics)?,
        false => http::executor_probes(draining.clone(), actors.executor_names(), metrics),
    };
    let http = HttpServer::start(&config, app).await?;

    let pools: Vec<String> = role
        .pools(&config)?
        .iter()
        .map(|p| format!("{} ({}×{} slots)", p.name, p.replicas, p.slots))
        .collect();
    let http_addr = format!("http://{}", http.addr());
    let name = &config.node.name;
    tracing::info!(%role, node = %name, cluster = %addr, %advertised, http = %http_addr, pools = %pools.join(", "), "marie is up");
    eprintln!(
        "marie ({role}) {name} is up on {addr}, HTTP {} {http_addr}{}{}. Ctrl-C stops it.",
        if role.runs_gateway() { "API" } else { "probes" },
        if pools.is_empty() { "" } else { " — pools: " },
        pools.join(", ")
    );

    tokio::select! {
        () = shutdown_signal() => {}
        () = actors.failed() => anyhow::bail!(
            "the node's actors failed (see the log above); exiting so that the node is restarted"
        ),
    }
    draining.start();
    let delay = Duration::from_secs(config.node.shutdown_delay_secs);
    if !delay.is_zero() {
        tracing::info!(
            ?delay,
            "shutting down: /readyz answers 503; still serving for node.shutdown_delay_secs"
        );
        tokio::time::sleep(delay).await;
    }
    // A Gateway's API closes before the drain (no new jobs); an executor node's probes
    // answer 503 through it.
    let http_grace = Duration::from_secs(5);
    let http = match role.runs_gateway() {
        true => {
            http.stop(http_grace).await;
            None
        }
        false => Some(http),
    };
    eprintln!("shutting down: draining running jobs…");
    actors
        .shutdown(Duration::from_secs(config.node.drain_timeout_secs))
        .await;
    if let Some(http) = http {
        http.stop(http_grace).await;
    }
    membership.stop(None);
    let _ = membership_done.await;
    port.close().await;
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
