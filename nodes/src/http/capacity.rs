//! `GET /api/capacity`: the seed's capacity document, the same one `marie capacity`
//! prints over the cluster port.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::ApiState;
use super::error::ApiError;
use super::views::{CapacityView, Envelope, ErrorBody, ok};

/// Slots per pool (capacity, target, used, available, holders) and their totals.
#[utoipa::path(
    get,
    path = "/api/capacity",
    tag = "capacity",
    responses(
        (status = 200, description = "Slots per pool", body = Envelope<CapacityView>),
        (status = 503, description = "The cluster is not ready", body = ErrorBody),
    )
)]
pub async fn capacity(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let report = state.client.capacity().await?;
    Ok(ok(StatusCode::OK, CapacityView::from(report)))
}
