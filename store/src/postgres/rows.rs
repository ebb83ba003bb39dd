//! Rows to Marie's types and back: Postgres has no unsigned integers, so counts and
//! milliseconds are stored as `bigint` and checked on the way in and out.

use std::collections::BTreeMap;

use marie_protocol::messages::{QueuedJob, RunningJob};
use marie_protocol::{JobId, JobMetadata, JobSpec, JobStatus, TraceContext};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Json};

use crate::{StoreError, dedup_policy};

/// Columns read into a [`JobStatus`] by [`status`].
pub const STATUS_COLUMNS: &str = "id, pool, handler, project_id, ref_type, ref_id, priority, \
     state, attempt, max_attempts, last_error, executor, created_at_ms, updated_at_ms, \
     octet_length(output)::bigint, trace";

/// Columns read into a [`QueuedJob`] by [`queued`].
pub const QUEUED_COLUMNS: &str = "id, pool, handler, payload, project_id, ref_type, ref_id, \
     priority, max_attempts, timeout_ms, expire_after_ms, dedup, trace, attempt, created_at_ms";

/// A `u64` as a `bigint`; `what` names it in the error.
pub fn to_bigint(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Value(format!("{what} = {value} is above {}", i64::MAX)))
}

/// Reads column `idx`.
fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    Ok(row.try_get(idx)?)
}

/// Reads a `bigint` column as an unsigned type.
fn unsigned<T: TryFrom<i64>>(row: &Row, idx: usize) -> Result<T, StoreError> {
    let value: i64 = get(row, idx)?;
    T::try_from(value).map_err(|_| {
        let column = row.columns()[idx].name();
        StoreError::Value(format!("column {column} holds {value}, out of range"))
    })
}

/// Reads a nullable `bigint` column as an unsigned type.
fn unsigned_or_null<T: TryFrom<i64>>(row: &Row, idx: usize) -> Result<Option<T>, StoreError> {
    match get::<Option<i64>>(row, idx)? {
        None => Ok(None),
        Some(_) => unsigned(row, idx).map(Some),
    }
}

/// Reads the trace context (`jsonb`) in column `idx`.
fn trace_context(row: &Row, idx: usize) -> Result<TraceContext, StoreError> {
    let Json(trace): Json<BTreeMap<String, String>> = get(row, idx)?;
    Ok(TraceContext(trace))
}

/// Reads the `uuid` column `idx`.
pub fn job_id(row: &Row, idx: usize) -> Result<JobId, StoreError> {
    get(row, idx).map(JobId)
}

/// Reads the columns of [`STATUS_COLUMNS`].
pub fn status(row: &Row) -> Result<JobStatus, StoreError> {
    let state: &str = get(row, 7)?;
    Ok(JobStatus {
        id: job_id(row, 0)?,
        pool: get(row, 1)?,
        handler: get(row, 2)?,
        metadata: JobMetadata {
            project_id: get(row, 3)?,
            ref_type: get(row, 4)?,
            ref_id: get(row, 5)?,
        },
        priority: get(row, 6)?,
        state: state.parse().map_err(StoreError::Value)?,
        attempt: unsigned(row, 8)?,
        max_attempts: unsigned(row, 9)?,
        last_error: get(row, 10)?,
        executor: get(row, 11)?,
        created_at_ms: unsigned(row, 12)?,
        updated_at_ms: unsigned(row, 13)?,
        output_len: unsigned_or_null(row, 14)?,
        trace_id: trace_context(row, 15)?.trace_id(),
    })
}

/// Reads the columns of [`QUEUED_COLUMNS`] followed by the executor of the job's run.
pub fn running(row: &Row) -> Result<RunningJob, StoreError> {
    Ok(RunningJob {
        job: queued(row)?,
        executor: get(row, 15)?,
    })
}

/// Reads the columns of [`QUEUED_COLUMNS`]. The spec's `max_attempts` and `timeout_ms`
/// come back as the values resolved at submit.
pub fn queued(row: &Row) -> Result<QueuedJob, StoreError> {
    let dedup: &str = get(row, 11)?;
    let trace = trace_context(row, 12)?;
    let max_attempts = unsigned(row, 8)?;
    let timeout_ms = unsigned(row, 9)?;
    Ok(QueuedJob {
        id: job_id(row, 0)?,
        spec: JobSpec {
            pool: get(row, 1)?,
            handler: get(row, 2)?,
            payload: get(row, 3)?,
            metadata: JobMetadata {
                project_id: get(row, 4)?,
                ref_type: get(row, 5)?,
                ref_id: get(row, 6)?,
            },
            priority: get(row, 7)?,
            max_attempts: Some(max_attempts),
            timeout_ms: Some(timeout_ms),
            expire_after_ms: unsigned_or_null(row, 10)?,
            dedup: dedup_policy(dedup)
                .ok_or_else(|| StoreError::Value(format!("unknown dedup policy {dedup:?}")))?,
            trace,
        },
        attempts_done: unsigned(row, 13)?,
        max_attempts,
        timeout_ms,
        created_at_ms: unsigned(row, 14)?,
    })
}
