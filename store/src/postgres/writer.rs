//! The writer task: group commit.
//!
//! Inserts, updates and recoveries are sent to one task. It takes every call waiting (up
//! to `max_batch`), applies them in one transaction and answers each caller after the
//! commit, so that concurrent callers share one commit (and its WAL flush:
//! `synchronous_commit` stays on). Consecutive calls of one kind form a group written with
//! one statement per chunk of rows ([`super::write`]). The batch is first written as it
//! is, with no savepoint (each costs two round trips and a subtransaction). Should a
//! group fail, that transaction is rolled back and the batch written again carefully:
//! each group in a savepoint, and should the group fail, the savepoint is undone and its
//! calls are tried one by one, each in its own savepoint, so that the call at fault is
//! answered with its error and the others pass.
//!
//! A leader's writer has a [`Fence`]: each transaction first checks, under a share lock
//! on the lease row, that the lease still carries the fence's epoch ([`check_epoch`]),
//! and the rows it changes record that epoch. The check and the writes go out together
//! (pipelined on the connection); the commit waits for the check's answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::Transaction;
use marie_protocol::{JobId, JobState};
use tokio::sync::{mpsc, oneshot};

use super::connect::Connections;
use super::fence::Fence;
use super::write;
use crate::{Inserted, JobUpdate, NewJob, Recovered, StoreError, Unavailable};

/// Where the writer sends a call's result.
pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write for the writer task.
pub enum Command {
    /// [`crate::GatewayStore::insert`].
    Insert(Vec<NewJob>, Reply<Vec<Inserted>>),
    /// [`crate::JobStore::update`].
    Update(Vec<JobUpdate>, Reply<Vec<(JobId, JobState)>>),
    /// [`crate::JobStore::recover`].
    Recover(Reply<Recovered>),
}

/// Why a whole batch failed: every call of it is answered with a copy.
#[derive(Clone)]
enum BatchFailure {
    /// No connection could be had.
    Unavailable(Unavailable),
    /// Postgres failed the transaction itself (its begin, a savepoint, the commit).
    Postgres(Arc<tokio_postgres::Error>),
    /// The lease is no longer the writer's: nothing was written.
    Deposed {
        /// The writer's epoch.
        epoch: u64,
        /// The lease's, when known.
        current: Option<u64>,
    },
}

impl From<tokio_postgres::Error> for BatchFailure {
    fn from(error: tokio_postgres::Error) -> Self {
        BatchFailure::Postgres(Arc::new(error))
    }
}

impl From<BatchFailure> for StoreError {
    fn from(failure: BatchFailure) -> Self {
        match failure {
            BatchFailure::Unavailable(e) => StoreError::Unavailable(e),
            BatchFailure::Postgres(e) => StoreError::Postgres(e),
            BatchFailure::Deposed { epoch, current } => StoreError::Deposed { epoch, current },
        }
    }
}

/// How a batch's transaction ended.
type Committed = Result<(), BatchFailure>;

/// A call applied but not yet answered: it is called with the commit's outcome.
type Answer = Box<dyn FnOnce(&Committed) + Send>;

/// One kind of call, written for many calls at once.
trait Call: Send + Sync + Sized + 'static {
    /// What one call answers.
    type Output: Send + 'static;

    /// Writes `calls` in `tx`, the rows changed recording the leader's `epoch` (none
    /// for a writer without a fence); answers one output per call, in order.
    fn write(
        tx: &Transaction<'_>,
        calls: &[&Self],
        epoch: Option<i64>,
    ) -> impl Future<Output = Result<Vec<Self::Output>, StoreError>> + Send;
}

impl Call for Vec<NewJob> {
    type Output = Vec<Inserted>;

    async fn write(
        tx: &Transaction<'_>,
        calls: &[&Self],
        _epoch: Option<i64>,
    ) -> Result<Vec<Self::Output>, StoreError> {
        let calls: Vec<&[NewJob]> = calls.iter().map(|jobs| jobs.as_slice()).collect();
        write::insert(tx, &calls).await
    }
}

impl Call for Vec<JobUpdate> {
    type Output = Vec<(JobId, JobState)>;

    async fn write(
        tx: &Transaction<'_>,
        calls: &[&Self],
        epoch: Option<i64>,
    ) -> Result<Vec<Self::Output>, StoreError> {
        let calls: Vec<&[JobUpdate]> = calls.iter().map(|changes| changes.as_slice()).collect();
        write::update(tx, &calls, epoch).await
    }
}

/// A recovery: it writes nothing, but reads in the fenced transaction, so a deposed
/// leader recovers nothing.
struct Recovery;

impl Call for Recovery {
    type Output = Recovered;

    async fn write(
        tx: &Transaction<'_>,
        calls: &[&Self],
        _epoch: Option<i64>,
    ) -> Result<Vec<Self::Output>, StoreError> {
        let mut recovered = Vec::with_capacity(calls.len());
        for _ in calls {
            recovered.push(write::recover(tx).await?);
        }
        Ok(recovered)
    }
}

/// Calls of one kind, each with where its answer goes.
type Calls<C> = Vec<(C, Reply<<C as Call>::Output>)>;

/// Consecutive calls of one kind, and their outputs once written at once
/// ([`Group::write_at_once`]).
enum Group {
    Insert(Calls<Vec<NewJob>>, Vec<Vec<Inserted>>),
    Update(Calls<Vec<JobUpdate>>, Vec<Vec<(JobId, JobState)>>),
    Recover(Calls<Recovery>, Vec<Recovered>),
}

impl Group {
    /// The batch's calls, consecutive calls of one kind together, in order.
    fn of(batch: Vec<Command>) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        for command in batch {
            match (groups.last_mut(), command) {
                (Some(Group::Insert(calls, _)), Command::Insert(jobs, reply)) => {
                    calls.push((jobs, reply));
                }
                (Some(Group::Update(calls, _)), Command::Update(changes, reply)) => {
                    calls.push((changes, reply));
                }
                (Some(Group::Recover(calls, _)), Command::Recover(reply)) => {
                    calls.push((Recovery, reply));
                }
                (_, Command::Insert(jobs, reply)) => {
                    groups.push(Group::Insert(vec![(jobs, reply)], Vec::new()))
                }
                (_, Command::Update(changes, reply)) => {
                    groups.push(Group::Update(vec![(changes, reply)], Vec::new()));
                }
                (_, Command::Recover(reply)) => {
                    groups.push(Group::Recover(vec![(Recovery, reply)], Vec::new()));
                }
            }
        }
        groups
    }

    /// Writes the whole group in `tx` with no savepoint, keeping the outputs for
    /// [`Group::answer`]; after an error the transaction is no longer usable.
    async fn write_at_once(
        &mut self,
        tx: &Transaction<'_>,
        epoch: Option<i64>,
    ) -> Result<(), StoreError> {
        match self {
            Group::Insert(calls, written) => *written = write_calls(tx, calls, epoch).await?,
            Group::Update(calls, written) => *written = write_calls(tx, calls, epoch).await?,
            Group::Recover(calls, written) => *written = write_calls(tx, calls, epoch).await?,
        }
        Ok(())
    }

    /// Sends each call the output [`Group::write_at_once`] kept if the transaction
    /// `committed`, the commit's error otherwise.
    fn answer(self, committed: &Committed) {
        fn send<C: Call>(calls: Calls<C>, written: Vec<C::Output>, committed: &Committed) {
            for ((_, reply), output) in calls.into_iter().zip(written) {
                answer(reply, Ok(output))(committed);
            }
        }
        match self {
            Group::Insert(calls, written) => send(calls, written, committed),
            Group::Update(calls, written) => send(calls, written, committed),
            Group::Recover(calls, written) => send(calls, written, committed),
        }
    }

    /// Writes the group in `tx`, in a savepoint (its calls one by one should the group
    /// fail); its answers wait in `answers` for the commit.
    async fn write_carefully(
        self,
        tx: &mut Transaction<'_>,
        epoch: Option<i64>,
        answers: &mut Vec<Answer>,
    ) -> Result<(), BatchFailure> {
        match self {
            Group::Insert(calls, _) => write_group(tx, calls, epoch, answers).await,
            Group::Update(calls, _) => write_group(tx, calls, epoch, answers).await,
            Group::Recover(calls, _) => write_group(tx, calls, epoch, answers).await,
        }
    }

    /// Answers every call of the group with `failure`, without writing it.
    fn reject(self, failure: &BatchFailure) {
        // A caller that stopped waiting does not mind: the send results are ignored.
        fn refuse<C, T>(calls: Vec<(C, Reply<T>)>, failure: &BatchFailure) {
            for (_, reply) in calls {
                let _ = reply.send(Err(failure.clone().into()));
            }
        }
        match self {
            Group::Insert(calls, _) => refuse(calls, failure),
            Group::Update(calls, _) => refuse(calls, failure),
            Group::Recover(calls, _) => refuse(calls, failure),
        }
    }
}

/// Writes `calls` together in `tx`: one output per call.
async fn write_calls<C: Call>(
    tx: &Transaction<'_>,
    calls: &Calls<C>,
    epoch: Option<i64>,
) -> Result<Vec<C::Output>, StoreError> {
    let all: Vec<&C> = calls.iter().map(|(call, _)| call).collect();
    C::write(tx, &all, epoch).await
}

/// The writer task: one transaction per batch of waiting calls, until every sender is
/// dropped; a leader's under its `fence`.
pub async fn write_loop(
    connections: Arc<Connections>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    max_batch: usize,
    commits: Arc<AtomicU64>,
    fence: Option<Arc<Fence>>,
) {
    while let Some(first) = commands.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match commands.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        write_batch(&connections, batch, &commits, fence.as_deref()).await;
    }
}

/// Writes `batch` in one transaction and answers its calls once it committed (or failed):
/// at once, and should a call fail, again carefully.
async fn write_batch(
    connections: &Connections,
    batch: Vec<Command>,
    commits: &AtomicU64,
    fence: Option<&Fence>,
) {
    let mut groups = Group::of(batch);
    if let Some(fence) = fence.filter(|fence| fence.revoked().is_some()) {
        let failure = deposed(fence);
        return groups.into_iter().for_each(|group| group.reject(&failure));
    }
    let mut client = match connections.get().await {
        Ok(client) => client,
        Err(e) => {
            let failure = BatchFailure::Unavailable(e);
            return groups.into_iter().for_each(|group| group.reject(&failure));
        }
    };
    let committed = match write_at_once(&mut client, &mut groups, fence).await {
        AtOnce::Done(committed) => committed,
        AtOnce::CallFailed => {
            write_carefully(&mut client, groups, fence, commits).await;
            return;
        }
    };
    match &committed {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
            groups
                .into_iter()
                .for_each(|group| group.answer(&committed));
        }
        Err(e) => {
            tracing::warn!(error = %StoreError::from(e.clone()), "job store: a batch of writes failed");
            groups.into_iter().for_each(|group| group.reject(e));
        }
    }
}

/// How writing a batch at once ended.
enum AtOnce {
    /// The transaction committed, or failed as a whole (no connection, deposed, the
    /// commit).
    Done(Committed),
    /// A group's statement failed: the transaction was rolled back.
    CallFailed,
}

/// Writes every group in one transaction without savepoints; the outputs wait in the
/// groups. Under a fence, the epoch's check and the writes are sent together, without
/// waiting for the check's answer (one round trip less per batch): Postgres runs them
/// in order, the check's share lock first, and the transaction commits only once the
/// check passed; otherwise it is rolled back with whatever the writes did.
async fn write_at_once(
    client: &mut deadpool_postgres::Object,
    groups: &mut [Group],
    fence: Option<&Fence>,
) -> AtOnce {
    let tx = match client.transaction().await {
        Ok(tx) => tx,
        Err(e) => return AtOnce::Done(Err(e.into())),
    };
    let epoch = fence.map(|fence| fence.epoch() as i64);
    let writes = async {
        for group in groups.iter_mut() {
            group.write_at_once(&tx, epoch).await?;
        }
        Ok::<(), StoreError>(())
    };
    let (checked, written) = match fence {
        Some(fence) => tokio::join!(check_epoch(&tx, fence), writes),
        None => (Ok(()), writes.await),
    };
    // Dropping the transaction rolls it back.
    if let Err(failure) = checked {
        return AtOnce::Done(Err(failure));
    }
    if written.is_err() {
        return AtOnce::CallFailed;
    }
    AtOnce::Done(tx.commit().await.map_err(BatchFailure::from))
}

/// Writes `groups` in one transaction, each in a savepoint, so that a call at fault
/// fails alone; answers every call.
async fn write_carefully(
    client: &mut deadpool_postgres::Object,
    groups: Vec<Group>,
    fence: Option<&Fence>,
    commits: &AtomicU64,
) {
    let mut groups = groups.into_iter();
    let mut tx = match begin(client, fence).await {
        Ok(tx) => tx,
        Err(failure) => return groups.for_each(|group| group.reject(&failure)),
    };
    let epoch = fence.map(|fence| fence.epoch() as i64);
    let mut answers = Vec::new();
    let mut failed = None;
    for group in groups.by_ref() {
        if let Err(e) = group.write_carefully(&mut tx, epoch, &mut answers).await {
            failed = Some(e);
            break;
        }
    }
    let committed = match failed {
        // Dropping the transaction rolls it back.
        Some(failure) => Err(failure),
        None => tx.commit().await.map_err(BatchFailure::from),
    };
    match &committed {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(error = %StoreError::from(e.clone()), "job store: a batch of writes failed");
            groups.for_each(|group| group.reject(e));
        }
    }
    answers.into_iter().for_each(|answer| answer(&committed));
}

/// Begins a transaction on `client`, under `fence`'s check if given.
async fn begin<'a>(
    client: &'a mut deadpool_postgres::Object,
    fence: Option<&Fence>,
) -> Result<Transaction<'a>, BatchFailure> {
    let tx = client.transaction().await?;
    if let Some(fence) = fence {
        // On a refusal, dropping the transaction rolls it back.
        check_epoch(&tx, fence).await?;
    }
    Ok(tx)
}

/// The failure of a batch refused by `fence`.
fn deposed(fence: &Fence) -> BatchFailure {
    BatchFailure::Deposed {
        epoch: fence.epoch(),
        current: fence.current(),
    }
}

/// Checks at the start of `tx` that the lease row carries `fence`'s epoch, and takes a
/// share lock on it until the transaction ends: an acquisition (an update of the row)
/// waits for this transaction, and this one sees any acquisition committed before it.
/// The transaction may sit idle for at most the fence's hold limit, so that a leader
/// stopped in the middle of one releases the row. On another epoch the fence is revoked.
async fn check_epoch(tx: &Transaction<'_>, fence: &Fence) -> Result<(), BatchFailure> {
    let hold_ms = fence.hold_limit().as_millis().max(1);
    let sql = format!(
        "SET LOCAL idle_in_transaction_session_timeout = {hold_ms}; \
         SELECT epoch FROM marie_leader WHERE id = 1 FOR SHARE"
    );
    let current = tx
        .simple_query(&sql)
        .await?
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse::<u64>().ok(),
            _ => None,
        });
    match current {
        Some(current) if current == fence.epoch() => Ok(()),
        Some(current) => {
            fence.superseded(current);
            Err(deposed(fence))
        }
        // No lease row: the schema is older than the fence (cannot happen after the
        // migrations ran); refuse rather than write unfenced.
        None => {
            fence.revoke();
            Err(deposed(fence))
        }
    }
}

/// Writes a group of calls of one kind with one statement per chunk of rows, in a
/// savepoint; should that fail, each call alone in its own savepoint.
async fn write_group<C: Call>(
    tx: &mut Transaction<'_>,
    calls: Calls<C>,
    epoch: Option<i64>,
    answers: &mut Vec<Answer>,
) -> Result<(), BatchFailure> {
    let (inputs, replies): (Vec<C>, Vec<_>) = calls.into_iter().unzip();
    let all: Vec<&C> = inputs.iter().collect();
    let results = match in_savepoint(tx, &all, epoch).await? {
        Ok(outputs) => outputs.into_iter().map(Ok).collect(),
        Err(e) if all.len() == 1 => vec![Err(e)],
        Err(_) => {
            let mut results = Vec::with_capacity(all.len());
            for call in &all {
                // One call: one output, or its error.
                match in_savepoint(tx, std::slice::from_ref(call), epoch).await? {
                    Ok(outputs) => results.extend(outputs.into_iter().map(Ok)),
                    Err(e) => results.push(Err(e)),
                }
            }
            results
        }
    };
    for (reply, result) in replies.into_iter().zip(results) {
        answers.push(answer(reply, result));
    }
    Ok(())
}

/// Writes `calls` in a savepoint of `tx`, undone if the write fails. The outer error is
/// the transaction's own failure.
async fn in_savepoint<C: Call>(
    tx: &mut Transaction<'_>,
    calls: &[&C],
    epoch: Option<i64>,
) -> Result<Result<Vec<C::Output>, StoreError>, BatchFailure> {
    let savepoint = tx.savepoint("marie_calls").await?;
    let written = C::write(&savepoint, calls, epoch).await;
    match written {
        Ok(_) => savepoint.commit().await?,
        Err(_) => savepoint.rollback().await?,
    }
    Ok(written)
}

/// Holds a call's result until the commit: the caller gets it if the commit passed,
/// the commit's error otherwise.
fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T, StoreError>) -> Answer {
    Box::new(move |committed| {
        let result = match committed {
            Ok(()) => result,
            Err(e) => Err(e.clone().into()),
        };
        // A caller that stopped waiting does not mind.
        let _ = reply.send(result);
    })
}
