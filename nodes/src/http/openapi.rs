//! `GET /api/openapi.json`: the OpenAPI document of this API, generated from the
//! handlers and response types by `utoipa`.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{capacity, health, history, jobs, nodes, scaling};

/// The API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Marie HTTP API",
        description = "Submit document-AI jobs to a Marie cluster, follow them, fetch their output, and watch capacity. Errors are always {\"status\":\"error\",\"error\":{\"code\",\"message\"}}.",
    ),
    paths(
        jobs::submit,
        jobs::list,
        jobs::status,
        jobs::result,
        jobs::cancel,
        capacity::capacity,
        nodes::nodes,
        history::history,
        scaling::resume,
        health::healthz,
        health::readyz,
        openapi_json,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "jobs", description = "Submit, follow, fetch and cancel jobs"),
        (name = "capacity", description = "Slots per pool"),
        (name = "health", description = "Liveness and readiness (never need a token)"),
    )
)]
pub struct ApiDoc;

/// Declares the optional bearer token (`http.auth_token`).
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // No token, or the node's token when it sets http.auth_token.
        openapi.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
    }
}

static DOCUMENT: LazyLock<Result<String, String>> =
    LazyLock::new(|| ApiDoc::openapi().to_json().map_err(|e| e.to_string()));

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_json() -> Response {
    match &*DOCUMENT {
        Ok(json) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json.clone(),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the OpenAPI document");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(DOCUMENT.as_ref().expect("renders")).expect("JSON");
        for path in [
            "/api/jobs",
            "/api/jobs/{id}",
            "/api/jobs/{id}/result",
            "/api/capacity",
            "/api/history",
            "/healthz",
            "/readyz",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        assert!(doc["paths"]["/api/jobs"]["post"].is_object());
        assert!(doc["paths"]["/api/jobs/{id}"]["delete"].is_object());
    }
}
