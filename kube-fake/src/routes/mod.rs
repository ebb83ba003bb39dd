//! The HTTP surface: the API server's paths, bearer-token authentication, and a journal
//! entry for every request.

mod apps;
mod pods;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::cluster::Cluster;
use crate::journal::JournalEvent;
use crate::rbac::{self, User};
use crate::status::{ApiError, Target};

/// The router of every served path.
pub(crate) fn router(cluster: Arc<Cluster>) -> Router {
    Router::new()
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
            get(apps::get_deployment),
        )
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
            get(apps::get_scale)
                .patch(apps::patch_scale)
                .put(apps::put_scale),
        )
        .route("/api/v1/namespaces/{ns}/pods", get(pods::list_or_watch))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(pods::get_pod)
                .patch(pods::patch_pod)
                .delete(pods::delete_pod),
        )
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(
            cluster.clone(),
            authenticate,
        ))
        .with_state(cluster)
}

/// Finds the user of the bearer token (401 without one), and journals the request.
async fn authenticate(
    State(cluster): State<Arc<Cluster>>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |p| p.to_string());
    let user = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| cluster.tokens.get(token.trim()))
        .cloned();
    let name = user.as_ref().map(|u| u.name.clone());
    let response = match user {
        Some(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        None => ApiError::unauthorized().into_response(),
    };
    cluster.journal.record(JournalEvent::Request {
        method,
        path,
        user: name,
        status: response.status().as_u16(),
    });
    response
}

/// Asks RBAC whether `user` may `verb` the target.
fn authorize(
    cluster: &Cluster,
    user: &User,
    verb: &str,
    namespace: &str,
    target: Target<'_>,
    subresource: Option<&str>,
) -> Result<(), ApiError> {
    let request = rbac::Request {
        verb,
        namespace,
        target,
        subresource,
    };
    cluster.store().rbac.authorize(user, &request)
}
