//! `POST /api/pools/{pool}/scaling/resume`: the Supervisor scales a pool again after it
//! stopped because someone else changed the pool's replicas (an HPA or KEDA pointed at
//! the same Deployment, a person with `kubectl scale`). It re-reads the count, adopts
//! it, and decides from there.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use marie_actors::lookup;
use marie_protocol::messages::{PoolName, SupervisorMsg};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::views::{Envelope, ErrorBody, ok};

/// The answer to a resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResumeView {
    /// The pool.
    pub pool: String,
    /// What happens next.
    pub message: String,
}

/// Asks the Supervisor to scale `pool` again.
#[utoipa::path(
    post,
    path = "/api/pools/{pool}/scaling/resume",
    tag = "capacity",
    params(("pool" = String, Path, description = "The pool the Supervisor paused")),
    responses(
        (status = 202, description = "The Supervisor was told; its log says when it adopted the count", body = Envelope<ResumeView>),
        (status = 404, description = "No such pool", body = ErrorBody),
        (status = 409, description = "The pool has no autoscale table: no Supervisor scales it", body = ErrorBody),
        (status = 503, description = "No Supervisor runs in the cluster", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<ApiState>,
    Path(pool): Path<String>,
) -> Result<Response, ApiError> {
    let report = state.client.capacity().await?;
    if !report.slots.iter().any(|p| p.name == pool) {
        let known: Vec<&str> = report.slots.iter().map(|p| p.name.as_str()).collect();
        return Err(ApiError::NotFound(format!(
            "no pool {pool:?}; the pools are {}",
            known.join(", ")
        )));
    }
    if !state.autoscaled.contains(&pool) {
        return Err(ApiError::NotAutoscaled(pool));
    }
    let supervisor = lookup::supervisors().into_iter().next().ok_or_else(|| {
        ApiError::NotReady(
            "no Supervisor runs: it runs on the server node when some pool has an [executor.pools.autoscale] table".into(),
        )
    })?;
    supervisor
        .cast(SupervisorMsg::Resume(PoolName(pool.clone())))
        .map_err(|_| ApiError::NotReady("the Supervisor is stopping".into()))?;
    let message = format!(
        "the Supervisor re-reads pool {pool:?}'s replicas, adopts them and scales the pool again; if it was not paused, nothing changes"
    );
    Ok(ok(StatusCode::ACCEPTED, ResumeView { pool, message }))
}
