//! The one error shape of the HTTP API, `{"status":"error","error":{"code","message"}}`,
//! and the HTTP status each failure maps to.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use marie_client::ClientError;
use marie_protocol::GatewayError;
use marie_protocol::store::StoreErrorKind;

use super::views::{ErrorBody, ErrorDetail};

/// Why an HTTP request failed. Every message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field (query, header, multipart part or path) is missing or malformed.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field's name as the request spells it.
        field: String,
        /// What is wrong with it and what is accepted.
        reason: String,
    },
    /// The request could not be read (a broken multipart body, a bad query string).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body is over the HTTP body limit.
    #[error(
        "request body is over the limit of {limit} bytes: split the document or raise gateway.max_payload_bytes"
    )]
    BodyTooLarge {
        /// Bytes the HTTP layer accepts.
        limit: usize,
    },
    /// No or a wrong bearer token.
    #[error(
        "missing or wrong bearer token: send `Authorization: Bearer <token>` with the node's http.auth_token"
    )]
    Unauthorized,
    /// The node is starting (or its executors are not registered yet).
    #[error("the node is not ready: {0}; retry in a moment")]
    NotReady(String),
    /// The path names something that does not exist (a pool), said with what does.
    #[error("{0}")]
    NotFound(String),
    /// A scaling request for a pool no Supervisor scales.
    #[error(
        "pool {0:?} has no [executor.pools.autoscale] table, so no Supervisor scales it and there is nothing to resume"
    )]
    NotAutoscaled(String),
    /// No route has that path.
    #[error("no route {0}: see GET /api/openapi.json for the routes")]
    NoRoute(String),
    /// The path exists, but not for that method.
    #[error("method {0} is not allowed here: see GET /api/openapi.json for the routes")]
    MethodNotAllowed(String),
    /// The cluster answered with an error, or did not answer.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        ApiError::Client(ClientError::Gateway(e))
    }
}

impl ApiError {
    /// A malformed or missing field.
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidField { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NoRoute(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotAutoscaled(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Client(ClientError::Gateway(e)) => gateway_status(e),
            ApiError::Client(ClientError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Client(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BodyTooLarge { .. } => "payload_too_large",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotReady(_) => "not_ready",
            ApiError::NoRoute(_) => "no_route",
            ApiError::NotFound(_) => "not_found",
            ApiError::NotAutoscaled(_) => "not_autoscaled",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Client(ClientError::Gateway(e)) => gateway_code(e),
            ApiError::Client(ClientError::Timeout(_)) => "timeout",
            ApiError::Client(_) => "unavailable",
        }
    }

    /// The request field at fault, when one is.
    fn field_name(&self) -> Option<String> {
        match self {
            ApiError::InvalidField { field, .. } => Some(field.clone()),
            ApiError::Client(ClientError::Gateway(e)) => match e {
                GatewayError::InvalidField { field, .. } => Some(field.clone()),
                GatewayError::UnknownPool { .. } => Some("pool".into()),
                GatewayError::UnknownHandler { .. } => Some("handler".into()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Seconds a client should wait before retrying, for a full queue or a job that is
    /// being queued.
    fn retry_after_secs(&self) -> Option<u32> {
        match self {
            ApiError::Client(ClientError::Gateway(GatewayError::QueueFull {
                retry_after_secs,
                ..
            })) => Some(*retry_after_secs),
            ApiError::Client(ClientError::Gateway(GatewayError::BeingQueued(_))) => Some(1),
            _ => None,
        }
    }
}

fn gateway_status(e: &GatewayError) -> StatusCode {
    match e {
        GatewayError::UnknownPool { .. }
        | GatewayError::UnknownHandler { .. }
        | GatewayError::InvalidField { .. } => StatusCode::BAD_REQUEST,
        GatewayError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        GatewayError::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
        GatewayError::Duplicate { .. }
        | GatewayError::NoResult { .. }
        | GatewayError::AlreadyFinished { .. } => StatusCode::CONFLICT,
        GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
        GatewayError::Unavailable(_) | GatewayError::BeingQueued(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        GatewayError::Store(failure) => match failure.kind {
            StoreErrorKind::Retryable => StatusCode::SERVICE_UNAVAILABLE,
            StoreErrorKind::Permanent => StatusCode::INTERNAL_SERVER_ERROR,
            StoreErrorKind::Full => StatusCode::INSUFFICIENT_STORAGE,
        },
        GatewayError::Undecodable(_) => StatusCode::BAD_GATEWAY,
    }
}

fn gateway_code(e: &GatewayError) -> &'static str {
    match e {
        GatewayError::UnknownPool { .. } => "unknown_pool",
        GatewayError::UnknownHandler { .. } => "unknown_handler",
        GatewayError::PayloadTooLarge { .. } => "payload_too_large",
        GatewayError::InvalidField { .. } => "invalid_field",
        GatewayError::QueueFull { .. } => "queue_full",
        GatewayError::Duplicate { .. } => "duplicate",
        GatewayError::NotFound(_) => "not_found",
        GatewayError::NoResult { .. } => "no_result",
        GatewayError::AlreadyFinished { .. } => "already_finished",
        GatewayError::Unavailable(_) => "unavailable",
        GatewayError::BeingQueued(_) => "being_queued",
        GatewayError::Store(failure) => match failure.kind {
            StoreErrorKind::Retryable => "store_unavailable",
            StoreErrorKind::Permanent => "store_error",
            StoreErrorKind::Full => "store_full",
        },
        GatewayError::Undecodable(_) => "undecodable_reply",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), error = %self, "HTTP request failed");
        }
        let body = ErrorBody {
            status: "error",
            error: ErrorDetail {
                code: self.code().into(),
                message: self.to_string(),
                field: self.field_name(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, ApiError::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marie_protocol::JobId;
    use marie_protocol::store::StoreFailure;

    #[test]
    fn each_gateway_error_gets_its_status() {
        let cases = [
            (
                GatewayError::QueueFull {
                    pool: "p".into(),
                    pending: 3,
                    retry_after_secs: 7,
                },
                429,
                "queue_full",
            ),
            (GatewayError::NotFound(JobId::generate()), 404, "not_found"),
            (
                GatewayError::PayloadTooLarge { size: 2, limit: 1 },
                413,
                "payload_too_large",
            ),
            (GatewayError::Unavailable("x".into()), 503, "unavailable"),
            (
                GatewayError::BeingQueued(JobId::generate()),
                503,
                "being_queued",
            ),
            (
                GatewayError::Store(StoreFailure {
                    kind: StoreErrorKind::Retryable,
                    message: "database is locked".into(),
                }),
                503,
                "store_unavailable",
            ),
            (
                GatewayError::Store(StoreFailure {
                    kind: StoreErrorKind::Permanent,
                    message: "database disk image is malformed".into(),
                }),
                500,
                "store_error",
            ),
            (
                GatewayError::Store(StoreFailure {
                    kind: StoreErrorKind::Full,
                    message: "the job store is full".into(),
                }),
                507,
                "store_full",
            ),
            (
                GatewayError::Undecodable("wire version 3 is not 2".into()),
                502,
                "undecodable_reply",
            ),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!(api.status().as_u16(), status, "{api}");
            assert_eq!(api.code(), code);
        }
    }

    #[test]
    fn a_full_queue_says_when_to_retry() {
        let response = ApiError::from(GatewayError::QueueFull {
            pool: "p".into(),
            pending: 3,
            retry_after_secs: 7,
        })
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
