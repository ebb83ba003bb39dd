//! `GET /healthz` (the process answers) and `GET /readyz` of a node with a Gateway (the
//! Gateway answers, the node is not shutting down and, with
//! `http.ready_requires_executors`, every pool's executors have registered, so a job
//! submitted now can run).
//!
//! Readiness latches: once every pool has had executors, `/readyz` only asks that the
//! Gateway answers, so executors coming and going later (a lost node, a pool scaled to
//! zero) do not take the front door out of a load balancer: jobs still queue. From
//! SIGTERM on it answers 503 ([`Draining`]), while the node still serves for
//! `node.shutdown_delay_secs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::ApiState;
use super::error::ApiError;
use super::views::{Envelope, ErrorBody, HealthView, ok};

/// How long `/readyz` waits for the actor it asks.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the node is shutting down, shared by the node and its `/readyz`.
#[derive(Clone, Debug, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// From now on `/readyz` answers 503.
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Fails readiness once the node is shutting down.
    pub fn check(&self) -> Result<(), ApiError> {
        match self.0.load(Ordering::Relaxed) {
            true => Err(ApiError::NotReady(
                "the node is shutting down (draining)".into(),
            )),
            false => Ok(()),
        }
    }
}

/// The process is alive.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    security(()),
    responses((status = 200, description = "Alive", body = Envelope<HealthView>))
)]
pub async fn healthz() -> Response {
    ok(StatusCode::OK, HealthView { state: "alive" })
}

/// Ready to take jobs: the node is not shutting down, the Gateway answers a capacity
/// call and (unless `http.ready_requires_executors = false`) every pool has had live
/// executors.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Envelope<HealthView>),
        (status = 503, description = "Not ready yet, or shutting down", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<ApiState>) -> Result<Response, ApiError> {
    state.draining.check()?;
    let client = state.client.clone().with_timeout(READY_TIMEOUT);
    let report = client
        .capacity()
        .await
        .map_err(|e| ApiError::NotReady(format!("the Gateway does not answer ({e})")))?;
    if !state.ready_requires_executors || state.ready.load(Ordering::Relaxed) {
        return Ok(ready());
    }
    let waiting: Vec<String> = report
        .slots
        .iter()
        .filter(|p| p.target > 0 && p.capacity == 0)
        .map(|p| p.name.clone())
        .collect();
    if !waiting.is_empty() {
        return Err(ApiError::NotReady(format!(
            "no executor has registered yet in pool(s) {}",
            waiting.join(", ")
        )));
    }
    state.ready.store(true, Ordering::Relaxed);
    Ok(ready())
}

/// `{"state":"ready"}`.
pub fn ready() -> Response {
    ok(StatusCode::OK, HealthView { state: "ready" })
}
