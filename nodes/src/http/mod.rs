//! The HTTP API of a node (axum): jobs, capacity, health and the OpenAPI document,
//! served on `http.port` next to the cluster port. Every handler is a thin translation
//! to a [`marie_client::Client`] call on the Gateway of this process; every error has
//! one JSON shape ([`error::ApiError`]).
//!
//! Routes under `/api` need the bearer token when `http.auth_token` is set; `/healthz`,
//! `/readyz`, the web console's page and assets (`/`, `/ui/…`: the page asks for the
//! token and sends it on its API calls) and the routes passed in as `public` (e.g.
//! `/metrics`) never do. Executor
//! nodes serve only `/healthz`, `/readyz` and `/metrics` ([`probes`]).

mod auth;
mod capacity;
mod console;
mod error;
mod fields;
mod health;
mod history;
mod jobs;
mod nodes;
mod openapi;
mod probes;
mod scaling;
mod serve;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use marie_client::Client;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::leader::LeaderView;
use error::ApiError;
pub use health::Draining;
use history::History;
pub(crate) use jobs::MAX_WAIT_SECS;
pub use probes::executor_probes;

/// Room in a request body for multipart boundaries and field parts, on top of
/// `gateway.max_payload_bytes`.
pub const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The Gateway of this process.
    client: Client,
    /// The bearer token `/api` routes want, if any.
    auth_token: Option<Arc<str>>,
    /// Largest request body, in bytes.
    body_limit: usize,
    /// Whether `/readyz` has seen every pool with executors once.
    ready: Arc<AtomicBool>,
    /// Whether `/readyz` waits for every pool's executors (`http.ready_requires_executors`).
    ready_requires_executors: bool,
    /// Set when the node starts shutting down.
    draining: Draining,
    /// The leader's lease as this node sees it (server nodes with the Postgres store).
    leader: Option<LeaderView>,
    /// The last 15 minutes of the pools and the members, for the console.
    history: Arc<History>,
    /// This node's OpenAPI document ([`openapi::node_document`]).
    openapi: Arc<Result<String, String>>,
    /// The pools with an `autoscale` table: the only ones a Supervisor scales.
    autoscaled: Arc<[String]>,
}

impl ApiState {
    /// The state of a node with `config`, calling the Gateway through `client`.
    pub fn new(client: Client, config: &Config, draining: Draining) -> Self {
        let payload = usize::try_from(config.gateway.max_payload_bytes).unwrap_or(usize::MAX);
        ApiState {
            client,
            auth_token: config.http.auth_token.as_deref().map(Arc::from),
            body_limit: payload.saturating_add(MULTIPART_OVERHEAD),
            ready: Arc::new(AtomicBool::new(false)),
            ready_requires_executors: config.http.ready_requires_executors,
            draining,
            leader: None,
            history: Arc::new(History::new(
                config
                    .executor
                    .pools
                    .iter()
                    .map(|p| (p.name.clone(), p.slots))
                    .collect(),
            )),
            openapi: openapi::node_document(config),
            autoscaled: config
                .executor
                .pools
                .iter()
                .filter(|p| p.autoscale.is_some())
                .map(|p| p.name.clone())
                .collect(),
        }
    }
}

/// The API of a node with a Gateway in this process, `draining` when it shuts down.
/// `public` routes (such as `/metrics`) are merged in without the token check.
/// `/api/nodes` names the leader from `leader` (server nodes with the Postgres store).
pub fn api(
    config: &Config,
    draining: Draining,
    leader: Option<LeaderView>,
    public: Router,
) -> anyhow::Result<Router> {
    if !config.http.host.is_loopback() && config.http.auth_token.is_none() {
        tracing::warn!(host = %config.http.host, "the HTTP API listens beyond loopback without http.auth_token: anyone who reaches it can submit and cancel jobs");
    }
    let client = Client::local().context("the HTTP API found no Gateway in this process")?;
    let state = ApiState {
        leader,
        ..ApiState::new(client, config, draining)
    };
    history::spawn_sampler(&state.history, state.client.clone());
    Ok(router(state, public))
}

/// The whole API. `public` routes (such as `/metrics`) are merged in without the token
/// check.
fn router(state: ApiState, public: Router) -> Router {
    let body_limit = state.body_limit;
    let mut api = Router::new()
        .route("/api/jobs", post(jobs::submit).get(jobs::list))
        .route("/api/jobs/{id}", get(jobs::status).delete(jobs::cancel))
        .route("/api/jobs/{id}/result", get(jobs::result))
        .route("/api/capacity", get(capacity::capacity))
        .route("/api/nodes", get(nodes::nodes))
        .route("/api/history", get(history::history))
        .route("/api/pools/{pool}/scaling/resume", post(scaling::resume))
        .route("/api/openapi.json", get(openapi::openapi_json));
    if state.auth_token.is_some() {
        api = api.route_layer(from_fn_with_state(state.clone(), auth::require_token));
    }
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(console::routes());
    api.merge(open)
        .with_state(state)
        .merge(public)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute(format!("{method} {}", uri.path()))
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// A running HTTP server.
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Binds `http.host:http.port` and serves `app` ([`api`] or [`executor_probes`]).
    /// Fails with a clear message when the port is taken.
    pub async fn start(config: &Config, app: Router) -> anyhow::Result<HttpServer> {
        let addr = SocketAddr::new(config.http.host, config.http.port);
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on the HTTP port {addr}: is another node running? (set MARIE_HTTP__PORT or http.port)"
            )
        })?;
        let addr = listener
            .local_addr()
            .context("the HTTP listener has no address")?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve::serve(listener, app, stopped));
        tracing::info!(%addr, "HTTP API listening");
        Ok(HttpServer {
            addr,
            shutdown,
            task,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking connections and lets requests in progress finish for at most
    /// `grace` (a long-poll `?wait=` is cut then).
    pub async fn stop(self, grace: Duration) {
        let _ = self.shutdown.send(());
        let mut task = self.task;
        match tokio::time::timeout(grace, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the HTTP server task failed"),
            Err(_) => {
                tracing::info!(?grace, "HTTP requests still open at shutdown; closing them");
                task.abort();
            }
        }
    }
}
