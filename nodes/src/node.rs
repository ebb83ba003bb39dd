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
use marie_protocol::membership::{MembershipMsg, NodeInfo};
use ractor::{Actor, ActorRef};
use rustls::{ClientConfig, ServerConfig};
use tokio::task::JoinHandle;

use crate::cluster::{NodeActors, NodeContext, Role};
use crate::config::Config;
use crate::cookie;
use crate::http::{self, Draining, HttpServer};
use crate::identity;
use crate::membership::{self, ClusterPort, Membership, MembershipArgs};
use crate::telemetry::Telemetry;

/// Runs a node of `role` until SIGINT or SIGTERM, then shuts it down cleanly.
pub async fn run(
    mut config: Config,
    role: Role,
    telemetry: Arc<Telemetry>,
    config_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    identity::resolve(&mut config)?;
    create_data_dir(&config)?;
    let cookie = cookie::for_node(&config)?;
    let tls = ClusterTls::load(&config)?;
    let port = open_cluster_port(&config, &cookie, tls.as_ref()).await?;
    let context = NodeContext {
        cookie: Some(cookie),
        config_path,
    };
    let mut actors = NodeActors::start(&config, &role, &context).await?;
    let (membership, membership_done) =
        start_membership(&config, &role, &port, tls.map(|tls| tls.client)).await?;
    let draining = Draining::default();
    let http = start_http(&config, &role, &actors, &draining, telemetry).await?;
    announce(&config, &role, &http)?;

    until_stopped(&mut actors, &role).await?;
    draining.start();
    shutdown_delay(&config).await;
    drain(&config, &role, actors, http).await;
    membership.stop(None);
    let _ = membership_done.await;
    port.close().await;
    tracing::info!("marie stopped");
    Ok(())
}

fn create_data_dir(config: &Config) -> anyhow::Result<()> {
    let dir = &config.node.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))
}

/// The TLS of the cluster port, when `cluster.tls` is set: the server side for the
/// sessions peers open, the client side for those this node dials.
struct ClusterTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl ClusterTls {
    fn load(config: &Config) -> anyhow::Result<Option<ClusterTls>> {
        let Some(files) = &config.cluster.tls else {
            return Ok(None);
        };
        Ok(Some(ClusterTls {
            server: marie_client::tls::server_config(files)?,
            client: marie_client::tls::client_config(files)?,
        }))
    }
}

/// The address the cluster port listens on.
fn cluster_addr(config: &Config) -> SocketAddr {
    SocketAddr::new(config.cluster.host, config.cluster.port)
}

/// Opens the cluster port, where peers open their sessions with this node.
async fn open_cluster_port(
    config: &Config,
    cookie: &str,
    tls: Option<&ClusterTls>,
) -> anyhow::Result<ClusterPort> {
    let handshake = Duration::from_millis(config.cluster.tls_handshake_timeout_ms);
    membership::open_cluster_port(
        cluster_addr(config),
        &config.node.name,
        identity::advertised_host(&config.cluster.advertised()),
        cookie.to_owned(),
        tls.map(|tls| (tls.server.clone(), handshake)),
    )
    .await
}

/// Starts the membership actor, which joins the cluster through its seeds.
async fn start_membership(
    config: &Config,
    role: &Role,
    port: &ClusterPort,
    tls: Option<Arc<ClientConfig>>,
) -> anyhow::Result<(ActorRef<MembershipMsg>, JoinHandle<()>)> {
    let cluster = &config.cluster;
    let me = NodeInfo {
        name: config.node.name.clone(),
        addr: cluster.advertised(),
        role: role.to_string(),
    };
    let args = MembershipArgs {
        me,
        seeds: cluster.seeds.clone(),
        heartbeat: Duration::from_millis(cluster.heartbeat_ms),
        down_after: Duration::from_millis(cluster.down_after_ms),
        node_server: port.node_server.clone(),
        tls,
    };
    Actor::spawn(
        Some(membership::actor_name(&config.node.name)),
        Membership,
        args,
    )
    .await
    .context("the membership actor did not start")
}

/// Starts the HTTP port: the API on a node with a Gateway, the probes of its executors
/// otherwise; metrics on both.
async fn start_http(
    config: &Config,
    role: &Role,
    actors: &NodeActors,
    draining: &Draining,
    telemetry: Arc<Telemetry>,
) -> anyhow::Result<HttpServer> {
    let metrics = metrics_route(telemetry);
    let app = match role.runs_gateway() {
        true => http::api(config, draining.clone(), metrics)?,
        false => http::executor_probes(draining.clone(), actors.executor_names(), metrics),
    };
    HttpServer::start(config, app).await
}

/// Says in the log and on the terminal that the node is up, and where.
fn announce(config: &Config, role: &Role, http: &HttpServer) -> anyhow::Result<()> {
    let pools: Vec<String> = role
        .pools(config)?
        .iter()
        .map(|p| format!("{} ({}×{} slots)", p.name, p.replicas, p.slots))
        .collect();
    let addr = cluster_addr(config);
    let advertised = config.cluster.advertised();
    let http_addr = format!("http://{}", http.addr());
    let name = &config.node.name;
    tracing::info!(%role, node = %name, cluster = %addr, %advertised, http = %http_addr, pools = %pools.join(", "), "marie is up");
    eprintln!(
        "marie ({role}) {name} is up on {addr}, HTTP {} {http_addr}{}{}. Ctrl-C stops it.",
        if role.runs_gateway() { "API" } else { "probes" },
        if pools.is_empty() { "" } else { " — pools: " },
        pools.join(", ")
    );
    Ok(())
}

/// How long an executor node whose executors were all drained waits to be stopped (its
/// pod removed by the scale-down that drained it) before it stops by itself.
const DRAINED_NODE_STOPS_AFTER: Duration = Duration::from_secs(30);

/// Waits for SIGINT or SIGTERM; fails when the node's actors fail first, so that the
/// node exits with an error and is restarted.
///
/// An executor node whose executors were all drained (the Supervisor scaling its pool
/// down) expects to be stopped next: its pod is the one the scale-down removes. Should
/// the platform remove another pod instead (a ReplicaSet ranks pods by readiness it
/// probes every few seconds), this node would stay up serving nothing and hold a replica
/// for good; after [`DRAINED_NODE_STOPS_AFTER`] it stops by itself, so that its
/// container starts again as a fresh executor.
async fn until_stopped(actors: &mut NodeActors, role: &Role) -> anyhow::Result<()> {
    let executors = actors.executor_cells();
    let kept_after_drain = async {
        if role.runs_gateway() || role.runs_manager() || executors.is_empty() {
            return std::future::pending().await;
        }
        crate::cluster::all_stopped(&executors).await;
        tracing::info!(
            wait = ?DRAINED_NODE_STOPS_AFTER,
            "every executor of this node drained; waiting to be stopped"
        );
        tokio::time::sleep(DRAINED_NODE_STOPS_AFTER).await;
        tracing::warn!(
            "every executor of this node drained and nobody stopped the node: stopping, to start again as a fresh executor"
        );
    };
    tokio::select! {
        () = shutdown_signal() => Ok(()),
        () = kept_after_drain => Ok(()),
        () = actors.failed() => anyhow::bail!(
            "the node's actors failed (see the log above); exiting so that the node is restarted"
        ),
    }
}

/// Keeps serving for `node.shutdown_delay_secs` while `/readyz` answers 503, so that
/// load balancers stop sending requests before the drain.
async fn shutdown_delay(config: &Config) {
    let delay = Duration::from_secs(config.node.shutdown_delay_secs);
    if !delay.is_zero() {
        tracing::info!(
            ?delay,
            "shutting down: /readyz answers 503; still serving for node.shutdown_delay_secs"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Drains the node's actors for at most `node.drain_timeout_secs` and stops its HTTP
/// port: a Gateway's API closes before the drain (no new jobs); an executor node's
/// probes answer 503 through it.
async fn drain(config: &Config, role: &Role, actors: NodeActors, http: HttpServer) {
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
