//! `/api/jobs`: submit a job (raw body or multipart), read its status (optionally
//! waiting for its end), fetch its output, cancel it, and list jobs page by page.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use marie_protocol::messages::ListQuery;
use marie_protocol::{JobId, JobState};

use super::ApiState;
use super::error::ApiError;
use super::fields::SubmitFields;
use super::views::{
    CancelledView, Envelope, ErrorBody, JobPageView, JobView, StateView, SubmitForm, SubmittedView,
    ok,
};

/// Longest `?wait=` in seconds (the Gateway holds a waiter at most 10 minutes).
pub(crate) const MAX_WAIT_SECS: u64 = 600;

/// Jobs per page when `limit` is not given, and the most a page may hold.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

/// Submit one job. The document is the raw body (fields in the query string or in
/// `X-Marie-<Field>` headers) or the `file` part of a `multipart/form-data` body (fields
/// as parts). Answers 202 once the job is durable.
#[utoipa::path(
    post,
    path = "/api/jobs",
    tag = "jobs",
    params(
        ("pool" = String, Query, min_length = 1, description = "The executor pool that runs the job (this node's document lists its pools)"),
        ("handler" = String, Query, min_length = 1, description = "The handler within the pool (echo, sleep, pdf-text, image-normalize, …)"),
        ("priority" = Option<i32>, Query, description = "Higher runs first (default 0)"),
        ("project_id" = Option<String>, Query, max_length = 256, description = "The tenant or project"),
        ("ref_type" = Option<String>, Query, max_length = 256, description = "Kind of the referenced document; with ref_id, the deduplication key"),
        ("ref_id" = Option<String>, Query, max_length = 256, description = "Id of the referenced document"),
        ("max_attempts" = Option<u32>, Query, minimum = 1, description = "Runs allowed, 1 to gateway.max_attempts"),
        ("timeout_secs" = Option<u64>, Query, minimum = 1, maximum = 31_536_000, description = "Longest one run may take, in seconds (at most a year)"),
        ("dedup" = Option<String>, Query, pattern = "^(return_existing|reject|off)$", description = "return_existing (default), reject or off"),
    ),
    request_body(
        description = "The document as the raw body, or a multipart form with a `file` part and the fields as parts",
        content(
            ("application/octet-stream"),
            (SubmitForm = "multipart/form-data"),
        )
    ),
    responses(
        (status = 202, description = "Accepted and durable", body = Envelope<SubmittedView>),
        (status = 400, description = "A field is missing or wrong (`error.field` names it)", body = ErrorBody),
        (status = 409, description = "A job with this ref_type/ref_id exists (dedup=reject)", body = ErrorBody),
        (status = 413, description = "The document is over gateway.max_payload_bytes", body = ErrorBody),
        (status = 429, description = "The pool's queue is full; see the Retry-After header", body = ErrorBody),
        (status = 503, description = "The cluster is not ready", body = ErrorBody),
        (status = 507, description = "The job store's disk is full: free space, then retry", body = ErrorBody),
    )
)]
pub async fn submit(State(state): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    // A body announced over the limit is refused before a byte of it is read.
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > state.body_limit as u64) {
        return Err(ApiError::BodyTooLarge {
            limit: state.body_limit,
        });
    }
    let query = query_pairs(req.uri())?;
    let mut fields = SubmitFields::from_request(req.headers(), &query)?;
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let payload = if multipart {
        let (parts, file) = read_multipart(&state, req).await?;
        fields.merge(parts)?;
        file
    } else {
        let body = Bytes::from_request(req, &state)
            .await
            .map_err(|e| body_error(e.status(), e.body_text(), state.body_limit))?;
        Vec::from(body)
    };
    let spec = fields.into_spec(payload)?;
    let submitted = state.client.submit(spec).await?;
    let location = format!("/api/jobs/{}", submitted.id);
    let mut response = ok(StatusCode::ACCEPTED, SubmittedView::from(submitted));
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Reads a multipart submit: the `file` part and the field parts.
async fn read_multipart(
    state: &ApiState,
    req: Request,
) -> Result<(SubmitFields, Vec<u8>), ApiError> {
    let limit = state.body_limit;
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut parts = SubmitFields::default();
    let mut file = None;
    while let Some(part) = multipart
        .next_field()
        .await
        .map_err(|e| body_error(e.status(), e.body_text(), limit))?
    {
        let name = part.name().unwrap_or_default().to_owned();
        if name == "file" {
            let bytes = part
                .bytes()
                .await
                .map_err(|e| body_error(e.status(), e.body_text(), limit))?;
            if file.replace(Vec::from(bytes)).is_some() {
                return Err(ApiError::field(
                    "file",
                    "given twice: send one document per job",
                ));
            }
        } else {
            let text = part
                .text()
                .await
                .map_err(|e| body_error(e.status(), e.body_text(), limit))?;
            parts.set(&name, text)?;
        }
    }
    let file = file.ok_or_else(|| {
        ApiError::field(
            "file",
            "missing: add a part named file holding the document",
        )
    })?;
    Ok((parts, file))
}

/// A failure to read the body: over the limit, or malformed.
fn body_error(status: StatusCode, text: String, limit: usize) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::BodyTooLarge { limit }
    } else {
        ApiError::BadRequest(text)
    }
}

/// The query string as name/value pairs.
fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ApiError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// Refuses query parameters not in `known`, naming the one at fault.
fn only_known(pairs: &[(String, String)], known: &[&str]) -> Result<(), ApiError> {
    match pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((name, _)) => Err(ApiError::field(
            name,
            format!("not a parameter here; use {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn job_id(path: Result<Path<String>, PathRejection>) -> Result<JobId, ApiError> {
    let Path(text) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    text.parse()
        .map_err(|_| ApiError::field("id", format!("{text:?} is not a job id (a UUID)")))
}

/// A job's status; with `?wait=SECONDS`, answers once the job ends or the time is up.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}",
    tag = "jobs",
    params(
        ("id" = uuid::Uuid, Path, description = "The job"),
        ("wait" = Option<u64>, Query, maximum = 600, description = "Wait up to this many seconds (at most 600) for the job to end"),
    ),
    responses(
        (status = 200, description = "The job's status", body = Envelope<JobView>),
        (status = 400, description = "Bad id or wait", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub async fn status(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let id = job_id(path)?;
    let query = query_pairs(&uri)?;
    only_known(&query, &["wait"])?;
    let wait = query
        .iter()
        .find(|(k, _)| k == "wait")
        .map(|(_, v)| {
            v.parse::<u64>()
                .ok()
                .filter(|s| *s <= MAX_WAIT_SECS)
                .ok_or_else(|| {
                    ApiError::field(
                        "wait",
                        format!("{v:?} is not a number of seconds from 0 to {MAX_WAIT_SECS}"),
                    )
                })
        })
        .transpose()?;
    let status = match wait {
        Some(secs) if secs > 0 => state.client.wait(id, Duration::from_secs(secs)).await?,
        _ => state.client.status(id).await?,
    };
    Ok(ok(StatusCode::OK, JobView::from(status)))
}

/// The output bytes of a succeeded job.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/result",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job")),
    responses(
        (status = 200, description = "The handler's output", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job has not succeeded (yet)", body = ErrorBody),
    )
)]
pub async fn result(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = job_id(path)?;
    let bytes = state.client.output(id).await?;
    let headers = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    )];
    Ok((StatusCode::OK, headers, bytes).into_response())
}

/// Cancels a queued or running job.
#[utoipa::path(
    delete,
    path = "/api/jobs/{id}",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job")),
    responses(
        (status = 200, description = "Cancelled", body = Envelope<CancelledView>),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job already ended", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = job_id(path)?;
    let final_state = state.client.cancel(id).await?;
    Ok(ok(StatusCode::OK, CancelledView::new(id, final_state)))
}

/// A page of jobs, newest first; pass the answer's `next` as `cursor` for the next page.
#[utoipa::path(
    get,
    path = "/api/jobs",
    tag = "jobs",
    params(
        ("state" = Option<StateView>, Query, description = "Only jobs in this state: queued, running, succeeded, failed, cancelled, expired"),
        ("pool" = Option<String>, Query, description = "Only jobs of this pool"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Jobs per page, 1 to 1000 (default 50)"),
        ("cursor" = Option<uuid::Uuid>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = Envelope<JobPageView>),
        (status = 400, description = "A parameter is wrong", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<ApiState>, uri: Uri) -> Result<Response, ApiError> {
    let pairs = query_pairs(&uri)?;
    only_known(&pairs, &["state", "pool", "limit", "cursor"])?;
    let mut query = ListQuery {
        limit: DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    for (name, value) in pairs {
        match name.as_str() {
            "state" => {
                let st: JobState = value.parse().map_err(|e| ApiError::field("state", e))?;
                query.state = Some(st);
            }
            "pool" => query.pool = Some(value),
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::field(
                            "limit",
                            format!("{value:?} is not a page size from 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            _ => {
                let id: JobId = value.parse().map_err(|_| {
                    ApiError::field(
                        "cursor",
                        format!("{value:?} is not a job id: pass the `next` of the previous page"),
                    )
                })?;
                query.after = Some(id);
            }
        }
    }
    let page = state.client.list(query).await?;
    Ok(ok(StatusCode::OK, JobPageView::from(page)))
}
