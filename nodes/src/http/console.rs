//! The web console: a page and its modules (plain HTML, CSS and JavaScript in
//! `nodes/console/`, embedded in the binary, no build step), served at `/` and `/ui/…`
//! without a token. The page calls the JSON API like any client; when the node sets
//! `http.auth_token` it asks for the token once, keeps it in the tab's
//! `sessionStorage` and sends it as the bearer token, never in a URL.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::ApiError;

/// One embedded file.
struct Asset {
    /// Its path under `/ui/`.
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Embeds `nodes/console/<path>`.
macro_rules! asset {
    ($path:literal, $content_type:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_str!(concat!("../../console/", $path)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("js/app.js", "text/javascript; charset=utf-8"),
    asset!("js/api.js", "text/javascript; charset=utf-8"),
    asset!("js/dom.js", "text/javascript; charset=utf-8"),
    asset!("js/plot.js", "text/javascript; charset=utf-8"),
    asset!("js/overview.js", "text/javascript; charset=utf-8"),
    asset!("js/nodes.js", "text/javascript; charset=utf-8"),
    asset!("js/jobs.js", "text/javascript; charset=utf-8"),
    asset!("js/job.js", "text/javascript; charset=utf-8"),
    asset!("js/submit.js", "text/javascript; charset=utf-8"),
];

/// Only this origin's scripts, styles and API; no frames.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// The console's routes: the page at `/`, `/ui` and `/ui/`, its files under `/ui/`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/{*path}", get(file))
}

async fn page() -> Response {
    serve("index.html").unwrap_or_else(|e| e.into_response())
}

async fn file(Path(path): Path<String>) -> Response {
    serve(&path).unwrap_or_else(|e| e.into_response())
}

fn serve(path: &str) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.path == path)
        .ok_or_else(|| ApiError::NoRoute(format!("GET /ui/{path}")))?;
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    Ok((StatusCode::OK, headers, asset.body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        let embedded: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            for line in asset.body.lines() {
                if let Some(rest) = line.split(" from \"./").nth(1) {
                    let name = rest.split('"').next().unwrap_or_default();
                    let path = format!("js/{name}");
                    assert!(
                        embedded.contains(&path.as_str()),
                        "{} imports {path}, which is not embedded",
                        asset.path
                    );
                }
            }
        }
        let index = serve("index.html").expect("the page");
        assert_eq!(index.status(), StatusCode::OK);
        assert!(serve("js/missing.js").is_err());
    }
}
