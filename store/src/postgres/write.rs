//! The writes of one group of calls, each with one statement per kind of row however
//! many calls the group holds: `UNNEST` of one array per column turns the calls' rows
//! into a table that one `INSERT` or `UPDATE` reads. Rows go in chunks of at most
//! [`CHUNK_ROWS`] rows and [`CHUNK_BYTES`] of payloads and outputs, well under the
//! protocol's 1 GiB message.
//!
//! The result is what the calls would have had one after the other, in order: inserts
//! see the jobs inserted before them in the group (deduplication), and the changes of
//! one job are folded into the one row they leave, so that a job ended by an earlier
//! change is not changed by a later one.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;
use marie_protocol::{DedupPolicy, JobId, JobState};
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::listen::{CHANNEL, IDS_PER_NOTIFICATION};
use super::rows::{self, QUEUED_COLUMNS, to_bigint};
use crate::{Inserted, JobUpdate, NewJob, Recovered, StoreError, dedup_name};

/// Most rows in one statement.
const CHUNK_ROWS: usize = 1000;
/// Most payload or output bytes in one statement.
const CHUNK_BYTES: usize = 64 * 1024 * 1024;

/// The condition every update carries: a terminal job never changes again.
const LIVE: &str = "jobs.state IN ('queued', 'running')";

/// Splits `items` into runs of at most [`CHUNK_ROWS`] items and [`CHUNK_BYTES`] bytes (a
/// single larger item goes alone).
fn chunks<T>(items: &[T], bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let len = bytes(item);
        if i > start && (i - start == CHUNK_ROWS || size + len > CHUNK_BYTES) {
            out.push(&items[start..i]);
            (start, size) = (i, 0);
        }
        size += len;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Inserts the jobs of `calls`, one answer per call.
pub async fn insert(
    tx: &Transaction<'_>,
    calls: &[&[NewJob]],
) -> Result<Vec<Vec<Inserted>>, StoreError> {
    let all = || calls.iter().flat_map(|jobs| jobs.iter());
    let mut newest = existing(tx, all().filter_map(dedup_key)).await?;
    let mut new_jobs: Vec<&NewJob> = Vec::new();
    let answers = calls
        .iter()
        .map(|jobs| {
            jobs.iter()
                .map(|job| {
                    let key = job.spec.metadata.dedup_key();
                    let found = dedup_key(job).and_then(|key| newest.get(&key).copied());
                    if let Some(id) = found {
                        return match job.spec.dedup {
                            DedupPolicy::Reject => Inserted::Duplicate(id),
                            _ => Inserted::Existing(id),
                        };
                    }
                    if let Some((ref_type, ref_id)) = key {
                        newest.insert((ref_type.to_owned(), ref_id.to_owned()), job.id);
                    }
                    new_jobs.push(job);
                    Inserted::New(job.id)
                })
                .collect()
        })
        .collect();
    for chunk in chunks(&new_jobs, |job| job.spec.payload.len()) {
        insert_rows(tx, chunk).await?;
    }
    Ok(answers)
}

/// The deduplication key of a job whose policy looks for one.
fn dedup_key(job: &NewJob) -> Option<(String, String)> {
    let key = job.spec.metadata.dedup_key()?;
    (job.spec.dedup != DedupPolicy::Off).then(|| (key.0.to_owned(), key.1.to_owned()))
}

/// The newest stored job of each key that has not failed, been cancelled or expired.
async fn existing(
    tx: &Transaction<'_>,
    keys: impl Iterator<Item = (String, String)>,
) -> Result<HashMap<(String, String), JobId>, StoreError> {
    let (ref_types, ref_ids): (Vec<String>, Vec<String>) = keys.unzip();
    if ref_types.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = tx
        .prepare_cached(
            "SELECT DISTINCT ON (ref_type, ref_id) ref_type, ref_id, id FROM jobs \
             WHERE (ref_type, ref_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) \
             AND state IN ('queued', 'running', 'succeeded') \
             ORDER BY ref_type, ref_id, id DESC",
        )
        .await?;
    tx.query(&statement, &[&ref_types, &ref_ids])
        .await?
        .iter()
        .map(|row| Ok(((row.try_get(0)?, row.try_get(1)?), rows::job_id(row, 2)?)))
        .collect()
}

/// One `INSERT … SELECT FROM UNNEST(…)` of `jobs`, which notifies their ids on
/// [`CHANNEL`] (delivered once the transaction commits, dropped if it does not).
async fn insert_rows(tx: &Transaction<'_>, jobs: &[&NewJob]) -> Result<(), StoreError> {
    let mut ids = Vec::with_capacity(jobs.len());
    let (mut pools, mut handlers, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
    let (mut projects, mut ref_types, mut ref_ids) = (Vec::new(), Vec::new(), Vec::new());
    let (mut priorities, mut max_attempts, mut timeouts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut expire_after, mut dedups, mut traces) = (Vec::new(), Vec::new(), Vec::new());
    let mut created = Vec::with_capacity(jobs.len());
    for job in jobs {
        let spec = &job.spec;
        ids.push(job.id.0);
        pools.push(spec.pool.as_str());
        handlers.push(spec.handler.as_str());
        payloads.push(spec.payload.as_slice());
        projects.push(spec.metadata.project_id.as_str());
        ref_types.push(spec.metadata.ref_type.as_str());
        ref_ids.push(spec.metadata.ref_id.as_str());
        priorities.push(spec.priority);
        max_attempts.push(i64::from(job.max_attempts));
        timeouts.push(to_bigint(job.timeout_ms, "timeout_ms")?);
        expire_after.push(
            spec.expire_after_ms
                .map(|ms| to_bigint(ms, "expire_after_ms"))
                .transpose()?,
        );
        dedups.push(dedup_name(spec.dedup));
        traces.push(Json(&spec.trace.0));
        created.push(to_bigint(job.created_at_ms, "created_at_ms")?);
    }
    let statement = tx
        .prepare_cached(&format!(
            "WITH inserted AS (INSERT INTO jobs (id, pool, handler, payload, project_id, \
             ref_type, ref_id, priority, max_attempts, timeout_ms, expire_after_ms, dedup, \
             trace, state, attempt, created_at_ms, updated_at_ms) \
             SELECT id, pool, handler, payload, project_id, ref_type, ref_id, priority, \
             max_attempts, timeout_ms, expire_after_ms, dedup, trace, 'queued', 0, \
             created_at_ms, created_at_ms \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::text[], \
             $6::text[], $7::text[], $8::int4[], $9::int8[], $10::int8[], $11::int8[], \
             $12::text[], $13::jsonb[], $14::int8[]) \
             AS t(id, pool, handler, payload, project_id, ref_type, ref_id, priority, \
             max_attempts, timeout_ms, expire_after_ms, dedup, trace, created_at_ms) \
             RETURNING id) \
             SELECT pg_notify('{CHANNEL}', string_agg(id::text, ',')) \
             FROM (SELECT id, (row_number() OVER () - 1) / {IDS_PER_NOTIFICATION} AS part \
             FROM inserted) AS parts GROUP BY part"
        ))
        .await?;
    tx.query(
        &statement,
        &[
            &ids,
            &pools,
            &handlers,
            &payloads,
            &projects,
            &ref_types,
            &ref_ids,
            &priorities,
            &max_attempts,
            &timeouts,
            &expire_after,
            &dedups,
            &traces,
            &created,
        ],
    )
    .await?;
    Ok(())
}

/// What the changes of one job leave in its row, if it was live before them.
struct Folded<'a> {
    id: Uuid,
    state: JobState,
    updated_at_ms: u64,
    /// Set by a start or a requeue.
    attempt: Option<u32>,
    /// Set by a start.
    executor: Option<&'a str>,
    /// Set (maybe to nothing) by a requeue or an end.
    last_error: Option<Option<&'a str>>,
    /// Set (maybe to nothing) by an end.
    output: Option<Option<&'a [u8]>>,
    /// The call and position of the change that ended the job.
    ended_by: Option<(usize, usize)>,
}

impl<'a> Folded<'a> {
    fn new(id: JobId) -> Self {
        Folded {
            id: id.0,
            state: JobState::Queued,
            updated_at_ms: 0,
            attempt: None,
            executor: None,
            last_error: None,
            output: None,
            ended_by: None,
        }
    }

    /// Applies `change`, the `seq`-th of call `call`, unless an earlier one ended the job.
    fn apply(&mut self, change: &'a JobUpdate, call: usize, seq: usize) {
        if self.ended_by.is_some() {
            return;
        }
        match change {
            JobUpdate::Started {
                run,
                executor,
                at_ms,
            } => {
                self.state = JobState::Running;
                self.attempt = Some(run.attempt);
                self.executor = Some(executor);
                self.updated_at_ms = *at_ms;
            }
            JobUpdate::Requeued {
                attempts_done,
                error,
                at_ms,
                ..
            } => {
                self.state = JobState::Queued;
                self.attempt = Some(*attempts_done);
                self.last_error = Some(Some(error));
                self.updated_at_ms = *at_ms;
            }
            JobUpdate::Finished {
                state,
                error,
                output,
                at_ms,
                ..
            } => {
                self.state = *state;
                self.last_error = Some(error.as_deref());
                self.output = Some(output.as_deref());
                self.updated_at_ms = *at_ms;
                self.ended_by = Some((call, seq));
            }
        }
    }
}

/// The job a change is about.
fn job_of(change: &JobUpdate) -> JobId {
    match change {
        JobUpdate::Started { run, .. } => run.job,
        JobUpdate::Requeued { id, .. } | JobUpdate::Finished { id, .. } => *id,
    }
}

/// Applies the changes of `calls`, in order, the rows recording the leader's `epoch`;
/// answers, per call, the terminal states it set (in the order of its changes).
pub async fn update(
    tx: &Transaction<'_>,
    calls: &[&[JobUpdate]],
    epoch: Option<i64>,
) -> Result<Vec<Vec<(JobId, JobState)>>, StoreError> {
    let mut folded: Vec<Folded<'_>> = Vec::new();
    let mut index: HashMap<JobId, usize> = HashMap::new();
    for (call, changes) in calls.iter().enumerate() {
        for (seq, change) in changes.iter().enumerate() {
            let id = job_of(change);
            let at = *index.entry(id).or_insert_with(|| {
                folded.push(Folded::new(id));
                folded.len() - 1
            });
            folded[at].apply(change, call, seq);
        }
    }
    let mut changed = HashSet::new();
    for chunk in chunks(&folded, |f| f.output.flatten().map_or(0, <[u8]>::len)) {
        changed.extend(update_rows(tx, chunk, epoch).await?);
    }
    let mut ended: Vec<(usize, usize, JobId, JobState)> = folded
        .iter()
        .filter(|f| changed.contains(&f.id))
        .filter_map(|f| {
            f.ended_by
                .map(|(call, seq)| (call, seq, JobId(f.id), f.state))
        })
        .collect();
    ended.sort_unstable_by_key(|&(call, seq, ..)| (call, seq));
    let mut answers = vec![Vec::new(); calls.len()];
    for (call, _, id, state) in ended {
        answers[call].push((id, state));
    }
    Ok(answers)
}

/// One `UPDATE … FROM UNNEST(…)` of the folded rows, on live jobs only; answers the
/// ids it changed.
async fn update_rows(
    tx: &Transaction<'_>,
    rows: &[Folded<'_>],
    epoch: Option<i64>,
) -> Result<Vec<Uuid>, StoreError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
    let attempts: Vec<Option<i64>> = rows.iter().map(|r| r.attempt.map(i64::from)).collect();
    let executors: Vec<Option<&str>> = rows.iter().map(|r| r.executor).collect();
    let set_errors: Vec<bool> = rows.iter().map(|r| r.last_error.is_some()).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|r| r.last_error.flatten()).collect();
    let set_outputs: Vec<bool> = rows.iter().map(|r| r.output.is_some()).collect();
    let outputs: Vec<Option<&[u8]>> = rows.iter().map(|r| r.output.flatten()).collect();
    let updated: Vec<i64> = rows
        .iter()
        .map(|r| to_bigint(r.updated_at_ms, "at_ms"))
        .collect::<Result<_, _>>()?;
    let statement = tx
        .prepare_cached(&format!(
            "UPDATE jobs SET state = u.state, \
             attempt = coalesce(u.attempt, jobs.attempt), \
             executor = coalesce(u.executor, jobs.executor), \
             last_error = CASE WHEN u.set_error THEN u.last_error ELSE jobs.last_error END, \
             output = CASE WHEN u.set_output THEN u.output ELSE jobs.output END, \
             updated_at_ms = u.updated_at_ms, leader_epoch = $10 \
             FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::bool[], \
             $6::text[], $7::bool[], $8::bytea[], $9::int8[]) \
             AS u(id, state, attempt, executor, set_error, last_error, set_output, output, \
             updated_at_ms) \
             WHERE jobs.id = u.id AND {LIVE} RETURNING jobs.id"
        ))
        .await?;
    tx.query(
        &statement,
        &[
            &ids,
            &states,
            &attempts,
            &executors,
            &set_errors,
            &errors,
            &set_outputs,
            &outputs,
            &updated,
            &epoch,
        ],
    )
    .await?
    .iter()
    .map(|row| Ok(row.try_get(0)?))
    .collect()
}

/// Reads every queued job, and every running one with its executor.
pub async fn recover(tx: &Transaction<'_>) -> Result<Recovered, StoreError> {
    let queued = tx
        .prepare_cached(&format!(
            "SELECT {QUEUED_COLUMNS} FROM jobs WHERE state = 'queued' ORDER BY id"
        ))
        .await?;
    let queued = tx
        .query(&queued, &[])
        .await?
        .iter()
        .map(rows::queued)
        .collect::<Result<_, _>>()?;
    let running = tx
        .prepare_cached(&format!(
            "SELECT {QUEUED_COLUMNS}, COALESCE(executor, '') FROM jobs WHERE state = 'running' \
             ORDER BY id"
        ))
        .await?;
    let running = tx
        .query(&running, &[])
        .await?
        .iter()
        .map(rows::running)
        .collect::<Result<_, _>>()?;
    Ok(Recovered { queued, running })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_bound_rows_and_bytes_and_keep_everything_in_order() {
        let sizes: Vec<usize> = vec![1; 2500];
        let split = chunks(&sizes, |s| *s);
        assert_eq!(
            split.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let big = CHUNK_BYTES / 2 + 1;
        let sizes = vec![big, big, 10, CHUNK_BYTES * 3, 1];
        let split = chunks(&sizes, |s| *s);
        assert_eq!(
            split,
            [&[big][..], &[big, 10][..], &[CHUNK_BYTES * 3][..], &[1][..]]
        );
        assert!(chunks(&Vec::<usize>::new(), |s| *s).is_empty());
    }
}
