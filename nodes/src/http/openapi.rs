//! `GET /api/openapi.json`: the OpenAPI document of this API, generated from the
//! handlers and response types by `utoipa`, with this node's pools, their handlers and
//! its `max_attempts` cap written in as the values a submit may take.

use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{ApiState, capacity, health, history, jobs, nodes, scaling};
use crate::config::Config;

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

/// The document of a node with `config`: a submit's `pool` is one of its pools, its
/// `handler` one of their handlers, its `max_attempts` at most `gateway.max_attempts`.
pub fn node_document(config: &Config) -> Arc<Result<String, String>> {
    let document = DOCUMENT.as_ref().map_err(Clone::clone).and_then(|json| {
        let mut doc: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let pools: Vec<&str> = config
            .executor
            .pools
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let mut handlers: Vec<&str> = config
            .executor
            .pools
            .iter()
            .flat_map(|p| p.handlers.iter().map(String::as_str))
            .collect();
        handlers.sort_unstable();
        handlers.dedup();
        // An empty document is a document: the body may be left out.
        doc["paths"]["/api/jobs"]["post"]["requestBody"]["required"] = false.into();
        let submit = &mut doc["paths"]["/api/jobs"]["post"]["parameters"];
        for param in submit.as_array_mut().into_iter().flatten() {
            let name = param["name"].as_str().map(str::to_owned);
            let schema = &mut param["schema"];
            match name.as_deref() {
                Some("pool") => schema["enum"] = pools.clone().into(),
                Some("handler") => schema["enum"] = handlers.clone().into(),
                Some("max_attempts") => schema["maximum"] = config.gateway.max_attempts.into(),
                _ => {}
            }
        }
        let form = &mut doc["components"]["schemas"]["SubmitForm"]["properties"];
        form["pool"]["enum"] = pools.clone().into();
        form["handler"]["enum"] = handlers.clone().into();
        form["max_attempts"]["maximum"] = config.gateway.max_attempts.into();
        serde_json::to_string(&doc).map_err(|e| e.to_string())
    });
    Arc::new(document)
}

/// This node's document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_json(State(state): State<ApiState>) -> Response {
    match &*state.openapi {
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

    #[test]
    fn a_nodes_document_lists_its_pools_and_handlers_for_a_submit() {
        let config = Config::default();
        let json = node_document(&config);
        let doc: serde_json::Value =
            serde_json::from_str(json.as_ref().as_ref().expect("renders")).expect("JSON");
        let params = doc["paths"]["/api/jobs"]["post"]["parameters"]
            .as_array()
            .expect("parameters");
        let schema = |name: &str| {
            params
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["schema"].clone())
                .expect(name)
        };
        let pools: Vec<&str> = config
            .executor
            .pools
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(schema("pool")["enum"], serde_json::json!(pools));
        let handlers = schema("handler")["enum"].clone();
        for pool in &config.executor.pools {
            for handler in &pool.handlers {
                assert!(
                    handlers
                        .as_array()
                        .expect("enum")
                        .contains(&handler.as_str().into())
                );
            }
        }
        assert_eq!(
            schema("max_attempts")["maximum"],
            config.gateway.max_attempts
        );
    }
}
