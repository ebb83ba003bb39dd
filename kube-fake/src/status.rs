//! Errors as the API server writes them: a `metav1.Status` body with the matching HTTP code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One failed request, answered as a `metav1.Status` object (kube reads it into
/// `kube::Error::Api`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` (name, group, kind), absent for errors about no one object.
    pub details: Option<Value>,
}

/// The object a request was about, for messages and `details`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// API group, "" for the core group.
    pub group: &'a str,
    /// Plural resource name, e.g. "deployments".
    pub resource: &'a str,
    pub name: &'a str,
}

impl Target<'_> {
    /// "deployments.apps" or "pods", as the API server qualifies a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        let mut details = json!({"name": self.name, "kind": self.resource});
        if !self.group.is_empty() {
            details["group"] = json!(self.group);
        }
        details
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into())
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into())
    }

    pub fn forbidden(message: String, target: Option<Target<'_>>) -> Self {
        ApiError {
            details: target.map(|t| t.details()),
            ..Self::new(403, "Forbidden", message)
        }
    }

    pub fn not_found(target: Target<'_>) -> Self {
        ApiError {
            details: Some(target.details()),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", target.qualified(), target.name),
            )
        }
    }

    /// The answer to a path or method the server does not serve.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
        )
    }

    /// A write whose resourceVersion (or uid) precondition no longer holds.
    pub fn conflict(target: Target<'_>) -> Self {
        ApiError {
            details: Some(target.details()),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    target.qualified(),
                    target.name
                ),
            )
        }
    }

    /// A resourceVersion too old for the watch history.
    pub fn expired(message: String) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (got \"{got}\")"
            ),
        )
    }

    /// A well-formed object that fails validation (422).
    pub fn invalid(target: Target<'_>, problem: &str) -> Self {
        ApiError {
            details: Some(target.details()),
            ..Self::new(
                422,
                "Invalid",
                format!(
                    "{} \"{}\" is invalid: {problem}",
                    target.qualified(),
                    target.name
                ),
            )
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.to_status())).into_response()
    }
}
