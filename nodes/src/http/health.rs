//! `GET /healthz` (the process answers) and `GET /readyz` (the Gateway answers and every
//! pool's executors have registered, so a job submitted now can run).
//!
//! Readiness latches: once every pool has had executors, `/readyz` only asks that the
//! Gateway answers, so executors coming and going later (a lost node, a pool scaled to
//! zero) do not take the front door out of a load balancer: jobs still queue.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::ApiState;
use super::error::ApiError;
use super::views::{ErrorBody, HealthView, ok};

/// How long `/readyz` waits for the Gateway.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is alive.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    security(()),
    responses((status = 200, description = "Alive", body = inline(HealthView)))
)]
pub async fn healthz() -> Response {
    ok(StatusCode::OK, HealthView { state: "alive" })
}

/// Ready to take jobs: the Gateway answers a capacity call and every pool has had live
/// executors.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Ready", body = inline(HealthView)),
        (status = 503, description = "Not ready yet", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let client = state.client.clone().with_timeout(READY_TIMEOUT);
    let report = client
        .capacity()
        .await
        .map_err(|e| ApiError::NotReady(format!("the Gateway does not answer ({e})")))?;
    if state.ready.load(Ordering::Relaxed) {
        return Ok(ok(StatusCode::OK, HealthView { state: "ready" }));
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
    Ok(ok(StatusCode::OK, HealthView { state: "ready" }))
}
