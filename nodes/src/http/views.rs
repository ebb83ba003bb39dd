//! What the HTTP API answers, as plain types with an OpenAPI schema. They mirror the
//! wire types of `marie-protocol` field for field (same names, same order), so the
//! protocol crate needs no HTTP dependency.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use marie_protocol::messages::{JobPage, Submitted};
use marie_protocol::{CapacityReport, JobId, JobState, JobStatus};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A successful answer: `{"status":"OK","result":…}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `OK`.
    #[schema(example = "OK")]
    pub status: &'static str,
    /// The answer.
    pub result: T,
}

/// Answers `result` with `status` in the envelope.
pub fn ok<T: Serialize>(status: StatusCode, result: T) -> Response {
    let body = Envelope {
        status: "OK",
        result,
    };
    (status, axum::Json(body)).into_response()
}

/// A failed answer: `{"status":"error","error":{"code","message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `error`.
    #[schema(example = "error")]
    pub status: &'static str,
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and message of a failed answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid_field`, `not_found`, `queue_full`, …).
    #[schema(example = "invalid_field")]
    pub code: String,
    /// What was wrong and what to do, for a person.
    pub message: String,
    /// The request field at fault, for `invalid_field`, `unknown_pool` and
    /// `unknown_handler`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A job accepted by `POST /api/jobs`: it is durable.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmittedView {
    /// The job's id (the existing job's id when deduplicated).
    pub id: Uuid,
    /// True when an existing job with the same (`ref_type`, `ref_id`) was returned.
    pub deduplicated: bool,
}

impl From<Submitted> for SubmittedView {
    fn from(s: Submitted) -> Self {
        SubmittedView {
            id: s.id.0,
            deduplicated: s.deduplicated,
        }
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateView {
    /// Waiting for a slot (also between attempts).
    Queued,
    /// Leased to an executor.
    Running,
    /// The handler returned an output.
    Succeeded,
    /// Every attempt failed, or the input can never succeed.
    Failed,
    /// Cancelled by a client.
    Cancelled,
    /// Waited longer than allowed before it could start.
    Expired,
}

impl From<JobState> for StateView {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Queued => StateView::Queued,
            JobState::Running => StateView::Running,
            JobState::Succeeded => StateView::Succeeded,
            JobState::Failed => StateView::Failed,
            JobState::Cancelled => StateView::Cancelled,
            JobState::Expired => StateView::Expired,
        }
    }
}

/// Who a job belongs to and what document it is about.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetadataView {
    /// The tenant or project.
    pub project_id: String,
    /// Kind of the referenced document; with `ref_id`, the deduplication key.
    pub ref_type: String,
    /// Id of the referenced document in the caller's system.
    pub ref_id: String,
}

/// A job's status (without its payload or output).
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// The job.
    pub id: Uuid,
    /// Its pool.
    pub pool: String,
    /// Its handler.
    pub handler: String,
    /// Its metadata.
    pub metadata: MetadataView,
    /// Its priority (higher runs first).
    pub priority: i32,
    /// Where it is now.
    pub state: StateView,
    /// Runs started so far.
    pub attempt: u32,
    /// Runs allowed.
    pub max_attempts: u32,
    /// Why the last run failed, or why the job ended, if it did not succeed.
    pub last_error: Option<String>,
    /// Executor of the current or last run.
    pub executor: Option<String>,
    /// Accepted at, Unix milliseconds.
    pub created_at_ms: u64,
    /// Last state change, Unix milliseconds.
    pub updated_at_ms: u64,
    /// Size of the output in bytes, once succeeded (`GET /api/jobs/{id}/result`).
    pub output_len: Option<u64>,
    /// The W3C trace id of the job's trace, when it was submitted with traces on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl From<JobStatus> for JobView {
    fn from(s: JobStatus) -> Self {
        JobView {
            id: s.id.0,
            pool: s.pool,
            handler: s.handler,
            metadata: MetadataView {
                project_id: s.metadata.project_id,
                ref_type: s.metadata.ref_type,
                ref_id: s.metadata.ref_id,
            },
            priority: s.priority,
            state: s.state.into(),
            attempt: s.attempt,
            max_attempts: s.max_attempts,
            last_error: s.last_error,
            executor: s.executor,
            created_at_ms: s.created_at_ms,
            updated_at_ms: s.updated_at_ms,
            output_len: s.output_len,
            trace_id: s.trace_id,
        }
    }
}

/// One page of `GET /api/jobs`, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPageView {
    /// The jobs.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next: Option<Uuid>,
}

impl From<JobPage> for JobPageView {
    fn from(p: JobPage) -> Self {
        JobPageView {
            jobs: p.jobs.into_iter().map(JobView::from).collect(),
            next: p.next.map(|id| id.0),
        }
    }
}

/// The answer to `DELETE /api/jobs/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelledView {
    /// The job.
    pub id: Uuid,
    /// Its final state (`cancelled`).
    pub state: StateView,
}

impl CancelledView {
    /// The view of a cancel answer.
    pub fn new(id: JobId, state: JobState) -> Self {
        CancelledView {
            id: id.0,
            state: state.into(),
        }
    }
}

/// Slots of one pool.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolSlotsView {
    /// The pool's name.
    pub name: String,
    /// Slots of live executors that take work.
    pub capacity: u64,
    /// Slots the pool should have.
    pub target: u64,
    /// Slots running a job.
    pub used: u64,
    /// `capacity - used`.
    pub available: u64,
    /// Names of the executors holding the slots.
    pub holders: Vec<String>,
}

/// Sums over every pool.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotalsView {
    /// Sum of `capacity`.
    pub capacity: u64,
    /// Sum of `used`.
    pub used: u64,
    /// Sum of `available`.
    pub available: u64,
}

/// `GET /api/capacity`: slots per pool and their sums.
#[derive(Debug, Serialize, ToSchema)]
pub struct CapacityView {
    /// One entry per pool, sorted by name.
    pub slots: Vec<PoolSlotsView>,
    /// Sums.
    pub totals: TotalsView,
}

impl From<CapacityReport> for CapacityView {
    fn from(r: CapacityReport) -> Self {
        CapacityView {
            slots: r
                .slots
                .into_iter()
                .map(|p| PoolSlotsView {
                    name: p.name,
                    capacity: p.capacity,
                    target: p.target,
                    used: p.used,
                    available: p.available,
                    holders: p.holders,
                })
                .collect(),
            totals: TotalsView {
                capacity: r.totals.capacity,
                used: r.totals.used,
                available: r.totals.available,
            },
        }
    }
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `alive` for `/healthz`, `ready` for `/readyz`.
    #[schema(example = "ready")]
    pub state: &'static str,
}

/// The fields of a `multipart/form-data` submit (the same names as the query fields).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Only its schema is used: the parts are read one by one.
#[serde(deny_unknown_fields)] // Other parts are refused (400).
pub struct SubmitForm {
    /// The document (one part).
    #[schema(value_type = String, content_media_type = "application/octet-stream")]
    pub file: Vec<u8>,
    /// The executor pool that runs the job (or the query's `pool`).
    #[schema(required = false, min_length = 1)]
    pub pool: String,
    /// The handler within the pool (or the query's `handler`).
    #[schema(required = false, min_length = 1)]
    pub handler: String,
    // The optional parts are absent when not given, never null: a part is text.
    /// Higher runs first (default 0).
    #[schema(required = false)]
    pub priority: i32,
    /// The tenant or project.
    #[schema(required = false, max_length = 256)]
    pub project_id: String,
    /// Kind of the referenced document; with `ref_id`, the deduplication key.
    #[schema(required = false, max_length = 256)]
    pub ref_type: String,
    /// Id of the referenced document.
    #[schema(required = false, max_length = 256)]
    pub ref_id: String,
    /// Runs allowed (default `gateway.default_max_attempts`).
    #[schema(required = false, minimum = 1)]
    pub max_attempts: u32,
    /// Longest one run may take, in seconds (default `gateway.default_timeout_secs`).
    #[schema(required = false, minimum = 1, maximum = 31_536_000)]
    pub timeout_secs: u64,
    /// Duplicate (`ref_type`, `ref_id`): `return_existing` (default), `reject` or `off`.
    #[schema(required = false, pattern = "^(return_existing|reject|off)$")]
    pub dedup: String,
}
