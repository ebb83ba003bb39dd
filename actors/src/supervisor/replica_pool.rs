//! Carrying out a declarative pool's decisions: read the platform's replica count when
//! due, set it, drain the executors to go, and stand back when somebody else sets it.
//! A failure is logged once per kind until it clears, counted, and retried with
//! backoff; nothing here stops the Supervisor or the rest of the cluster.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use marie_decide::autoscale::{PoolBook, ReplicaEvent, ReplicaSync, ReplicaWrite};
use marie_protocol::PoolState;
use marie_protocol::messages::{CapacityMsg, ExecutorName};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use ractor::ActorRef;

use super::replicas::{ReplicaBackend, ReplicaError, ReplicaFailure};

/// A declarative pool's platform and the schedule of its reads and writes.
pub(super) struct ReplicaPool {
    backend: Arc<dyn ReplicaBackend>,
    sync: ReplicaSync,
    failing: HashSet<ReplicaFailure>,
    errors: Counter<u64>,
}

impl ReplicaPool {
    /// A pool on `backend`, read again every `resync`, its failures counted on `errors`.
    pub(super) fn new(
        backend: Arc<dyn ReplicaBackend>,
        resync: Duration,
        errors: Counter<u64>,
    ) -> Self {
        ReplicaPool {
            backend,
            sync: ReplicaSync::new(resync.as_millis() as u64),
            failing: HashSet::new(),
            errors,
        }
    }

    /// The backend's name, for logs.
    pub(super) fn name(&self) -> &'static str {
        self.backend.name()
    }

    /// Whether somebody else's count paused the pool.
    pub(super) fn paused(&self) -> bool {
        self.sync.paused()
    }

    /// An operator gave the pool back to the Supervisor: its count is read at once.
    pub(super) fn resume(&mut self, pool: &str) {
        tracing::info!(pool, object = %self.backend.object(pool), "resuming the pool's scaling: reading its replica count");
        self.sync.resume();
    }

    /// Reads the pool's count when due (`tick`: on the timer, not a wake).
    pub(super) async fn read(&mut self, pool: &str, book: &mut PoolBook, now_ms: u64, tick: bool) {
        if !self.sync.read_due(now_ms, tick) {
            return;
        }
        let found = match self.backend.replicas(pool).await {
            Ok(found) => found,
            Err(e) => return self.refused(pool, book, e, None, now_ms),
        };
        self.recovered(pool);
        let object = self.backend.object(pool);
        match self.sync.read(book, found, now_ms) {
            Some(ReplicaEvent::Adopted(replicas)) => {
                tracing::info!(pool, %object, replicas, "adopted the pool's replica count");
            }
            Some(ReplicaEvent::Resumed(replicas)) => {
                tracing::info!(pool, %object, replicas, "scaling resumed: the replica count found is the Supervisor's again");
            }
            Some(ReplicaEvent::Paused { expected, found }) => {
                let e = ReplicaError::ScaledElsewhere {
                    object,
                    expected,
                    found,
                };
                tracing::warn!(pool, "{e}");
            }
            None => {}
        }
    }

    /// Brings the pool to `desired` executors: drains the executors to go through the
    /// CapacityManager and sets the count — at most two writes, when drained replicas
    /// are taken off before the count goes up. Nothing while paused or backing off.
    pub(super) async fn carry_out(
        &mut self,
        pool: &str,
        book: &mut PoolBook,
        desired: u32,
        state: &PoolState,
        now_ms: u64,
        manager: &ActorRef<CapacityMsg>,
    ) {
        for _ in 0..2 {
            if !self.sync.may_write(now_ms) {
                return;
            }
            let plan = book.plan(desired, state, now_ms);
            for executor in plan.drain {
                tracing::info!(pool, %executor, "draining executor to scale down");
                let _ = manager.cast(CapacityMsg::Drain(ExecutorName(executor)));
            }
            let Some(write) = plan.replicas else {
                return;
            };
            let leaving = !write.leaving.is_empty();
            if !self.write(pool, book, write, now_ms).await || !leaving {
                return;
            }
        }
    }

    /// Sets the count; answers whether it was set.
    async fn write(
        &mut self,
        pool: &str,
        book: &mut PoolBook,
        write: ReplicaWrite,
        now_ms: u64,
    ) -> bool {
        let set = self
            .backend
            .set_replicas(pool, write.from, write.to, &write.leaving)
            .await;
        match set {
            Ok(()) => {
                tracing::info!(
                    pool,
                    from = write.from,
                    to = write.to,
                    leaving = ?write.leaving,
                    backend = self.backend.name(),
                    "replicas set"
                );
                book.written(&write, now_ms);
                self.sync.wrote();
                self.recovered(pool);
                true
            }
            Err(e) => {
                self.refused(pool, book, e, Some(write), now_ms);
                false
            }
        }
    }

    /// A read or a write (`write`) failed: somebody else's count pauses the pool; a
    /// failure is counted, logged once per kind, and retried with backoff.
    fn refused(
        &mut self,
        pool: &str,
        book: &mut PoolBook,
        e: ReplicaError,
        write: Option<ReplicaWrite>,
        now_ms: u64,
    ) {
        let kind = match &e {
            ReplicaError::ScaledElsewhere { found, .. } => {
                if self.sync.scaled_elsewhere(book, *found) {
                    tracing::warn!(pool, "{e}");
                }
                return;
            }
            ReplicaError::Failed { kind, .. } => *kind,
        };
        self.errors.add(
            1,
            &[
                KeyValue::new("executor", pool.to_owned()),
                KeyValue::new("kind", kind_label(kind)),
            ],
        );
        let retry_in_ms = match write.is_some() {
            true => self
                .sync
                .write_failed(now_ms, kind == ReplicaFailure::Conflict),
            false => self.sync.read_failed(now_ms),
        };
        if let Some(write) = write {
            book.write_failed(write);
        }
        if self.failing.insert(kind) {
            tracing::error!(
                pool,
                kind = kind_label(kind),
                retry_in_ms,
                "cannot scale the pool: {e}; retrying with backoff"
            );
        }
    }

    /// The platform answered: failures logged before are over.
    fn recovered(&mut self, pool: &str) {
        if !self.failing.is_empty() {
            self.failing.clear();
            tracing::info!(pool, object = %self.backend.object(pool), "the platform answers again: scaling recovered");
        }
    }
}

/// The `kind` label of `marie_supervisor_backend_errors_total`.
fn kind_label(kind: ReplicaFailure) -> &'static str {
    match kind {
        ReplicaFailure::Unreachable => "unreachable",
        ReplicaFailure::Forbidden => "forbidden",
        ReplicaFailure::Missing => "missing",
        ReplicaFailure::Conflict => "conflict",
        ReplicaFailure::Refused => "refused",
    }
}
