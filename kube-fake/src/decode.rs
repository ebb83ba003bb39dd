//! Request bodies read as the API server reads them with `fieldValidation=Strict`: every
//! field must be known to the Kubernetes type, and patches are RFC 7386 merge patches only.

use axum::http::HeaderMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::status::ApiError;

/// The one patch type the fake accepts.
pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";

/// Decodes `value` into `T`, refusing any field `T` does not know.
pub(crate) fn strict<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    let mut unknown = Vec::new();
    let decoded: Result<T, _> =
        serde_ignored::deserialize(value, |path| unknown.push(field_path(&path)));
    let decoded =
        decoded.map_err(|e| ApiError::bad_request(format!("strict decoding error: {e}")))?;
    if unknown.is_empty() {
        Ok(decoded)
    } else {
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            fields.join(", ")
        )))
    }
}

/// A field's path as the API server writes it: `spec.containers[0].name`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Parses a JSON request body.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// Serialises a Kubernetes object to JSON (cannot fail for k8s-openapi types).
pub(crate) fn to_value<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// Checks the PATCH content type and applies the body to `current` as a merge patch.
pub(crate) fn merge_patch(
    headers: &HeaderMap,
    body: &[u8],
    current: &mut Value,
) -> Result<(), ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case(MERGE_PATCH) {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    let patch = json_body(body)?;
    if !patch.is_object() {
        return Err(ApiError::bad_request("a merge patch must be a JSON object"));
    }
    json_patch::merge(current, &patch);
    Ok(())
}

/// Whether a written object's `metadata.resourceVersion` precondition fails: it names a
/// version, and not the current one (none or "" means an unconditional write).
pub(crate) fn stale(wanted: &ObjectMeta, current: &ObjectMeta) -> bool {
    wanted
        .resource_version
        .as_deref()
        .is_some_and(|rv| !rv.is_empty() && Some(rv) != current.resource_version.as_deref())
}
