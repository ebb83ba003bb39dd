//! When the Supervisor reads and writes a declarative pool's replica count, and when it
//! stops: the count is read before the first write (a restarted server adopts it), after
//! a conflict, on resume, and every resync interval on the tick to notice another
//! writer; a wake never reads once the count is known, so its write goes out at once.
//! Somebody else's count pauses the pool (no more writes) until it is resumed. Writes
//! and the reads they wait for back off exponentially when they fail; the resync read
//! keeps its interval and never holds a write back.

use super::PoolBook;
use super::replicas::ReplicaRead;
use super::retry::Retry;

/// How often a declarative pool's count is read again to notice another writer, ms.
pub const REPLICA_RESYNC_MS: u64 = 2_000;

/// What a read changed, for the Supervisor to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaEvent {
    /// The first read: the pool's count is taken as it is.
    Adopted(u32),
    /// Resumed after a pause: the count found is taken as Marie's.
    Resumed(u32),
    /// Somebody else set the count: the pool is paused.
    Paused {
        /// The count Marie set last.
        expected: u32,
        /// The count found.
        found: u32,
    },
}

/// The read and write schedule of one declarative pool.
#[derive(Clone, Debug)]
pub struct ReplicaSync {
    resync_ms: u64,
    /// A read succeeded once.
    known: bool,
    /// The last read tried.
    read_ms: u64,
    reread: bool,
    paused: bool,
    resuming: bool,
    retry: Retry,
}

impl ReplicaSync {
    /// A pool never read, to be read again every `resync_ms`, retried from
    /// [`super::RETRY_BASE_MS`] to [`super::RETRY_MAX_MS`].
    pub fn new(resync_ms: u64) -> Self {
        ReplicaSync {
            resync_ms,
            known: false,
            read_ms: 0,
            reread: false,
            paused: false,
            resuming: false,
            retry: Retry::default(),
        }
    }

    /// Whether to read the count at `now_ms` (`tick`: on the Supervisor's tick rather
    /// than a wake).
    pub fn read_due(&self, now_ms: u64, tick: bool) -> bool {
        match self.read_owed() {
            true => self.retry.ready(now_ms),
            false => tick && now_ms.saturating_sub(self.read_ms) >= self.resync_ms,
        }
    }

    /// Whether a read must come before the next write: none succeeded yet, the last
    /// write conflicted, or the pool is being resumed.
    fn read_owed(&self) -> bool {
        !self.known || self.reread || self.resuming
    }

    /// Whether the count may be written at `now_ms`: read once, not paused, no read
    /// owed after a conflict, not backing off.
    pub fn may_write(&self, now_ms: u64) -> bool {
        !self.read_owed() && !self.paused && self.retry.ready(now_ms)
    }

    /// Whether somebody else's count paused the pool.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// The platform read `found` at `now_ms`: the book takes it as its first count,
    /// confirms it, or — when somebody else set it — adopts it and the pool pauses.
    /// While paused every count found is adopted (the policy still sees the pool as it
    /// is); a resume takes it as Marie's and writes again.
    pub fn read(&mut self, book: &mut PoolBook, found: u32, now_ms: u64) -> Option<ReplicaEvent> {
        if self.read_owed() {
            self.retry.succeeded();
        }
        self.known = true;
        self.read_ms = now_ms;
        self.reread = false;
        if self.paused {
            book.adopt_replicas(found);
            if !std::mem::take(&mut self.resuming) {
                return None;
            }
            self.paused = false;
            return Some(ReplicaEvent::Resumed(found));
        }
        self.resuming = false;
        match book.read_replicas(found, now_ms)? {
            ReplicaRead::Adopted(n) => Some(ReplicaEvent::Adopted(n)),
            ReplicaRead::Ours => None,
            ReplicaRead::Elsewhere { expected, found } => {
                self.scaled_elsewhere(book, found);
                Some(ReplicaEvent::Paused { expected, found })
            }
        }
    }

    /// A write succeeded.
    pub fn wrote(&mut self) {
        self.retry.succeeded();
    }

    /// The backend found somebody else's count `found` when it wrote: the pool pauses
    /// and adopts it. Answers whether it was not paused already.
    pub fn scaled_elsewhere(&mut self, book: &mut PoolBook, found: u32) -> bool {
        book.adopt_replicas(found);
        !std::mem::replace(&mut self.paused, true)
    }

    /// A write failed at `now_ms`; `conflict`: the object changed under it, so it is
    /// read again before the next write. Answers the wait before the next try, ms.
    pub fn write_failed(&mut self, now_ms: u64, conflict: bool) -> u64 {
        self.reread |= conflict;
        self.retry.failed(now_ms)
    }

    /// A read failed at `now_ms`. One a write waits for backs off; a resync read is
    /// tried again after the resync interval. Answers the wait before the next try, ms.
    pub fn read_failed(&mut self, now_ms: u64) -> u64 {
        self.read_ms = now_ms;
        match self.read_owed() {
            true => self.retry.failed(now_ms),
            false => self.resync_ms,
        }
    }

    /// Resume a paused pool: read at once, take the count found and write again.
    pub fn resume(&mut self) {
        self.resuming = true;
        self.retry.succeeded();
    }
}

#[cfg(test)]
mod tests {
    use marie_protocol::PoolState;

    use super::*;

    #[test]
    fn a_wake_writes_without_reading_and_a_tick_reads_every_resync() {
        let mut sync = ReplicaSync::new(2_000);
        let mut book = PoolBook::declarative(1, 1_000, 0);
        assert!(sync.read_due(0, false), "the first read, even on a wake");
        assert!(
            !sync.may_write(0),
            "nothing is written before the count is read"
        );
        assert_eq!(sync.read(&mut book, 3, 0), Some(ReplicaEvent::Adopted(3)));
        assert!(sync.may_write(10));
        assert!(
            !sync.read_due(5_000, false),
            "a wake goes straight to its write"
        );
        assert!(!sync.read_due(1_999, true));
        assert!(sync.read_due(2_000, true));
        assert_eq!(sync.read(&mut book, 3, 2_000), None);
    }

    #[test]
    fn another_writer_pauses_the_pool_until_it_is_resumed() {
        let mut sync = ReplicaSync::new(2_000);
        let mut book = PoolBook::declarative(1, 1_000, 0);
        sync.read(&mut book, 2, 0);
        assert_eq!(
            sync.read(&mut book, 5, 2_000),
            Some(ReplicaEvent::Paused {
                expected: 2,
                found: 5
            })
        );
        assert!(sync.paused() && !sync.may_write(2_100));
        assert_eq!(
            book.applied_replicas(),
            Some(5),
            "the count found is adopted"
        );
        assert_eq!(
            sync.read(&mut book, 7, 4_000),
            None,
            "paused: adopted quietly"
        );
        assert_eq!(book.applied_replicas(), Some(7));
        assert!(!sync.scaled_elsewhere(&mut book, 7), "already paused");
        sync.resume();
        assert!(sync.read_due(4_100, false), "a resume reads at once");
        assert_eq!(
            sync.read(&mut book, 6, 4_100),
            Some(ReplicaEvent::Resumed(6))
        );
        assert!(sync.may_write(4_100));
        assert_eq!(book.applied_replicas(), Some(6));
    }

    #[test]
    fn a_conflict_reads_again_before_the_next_write_after_its_backoff() {
        let mut sync = ReplicaSync::new(2_000);
        let mut book = PoolBook::declarative(1, 1_000, 0);
        sync.read(&mut book, 1, 0);
        assert_eq!(sync.write_failed(100, true), 250);
        assert!(!sync.read_due(349, false) && !sync.may_write(349));
        assert!(
            sync.read_due(350, false),
            "the read owed goes out on a wake too"
        );
        assert!(!sync.may_write(350), "no write before it");
        assert_eq!(sync.read(&mut book, 1, 350), None);
        assert!(sync.may_write(350));
    }

    #[test]
    fn a_failing_resync_read_keeps_its_interval_and_never_holds_a_write_back() {
        let mut sync = ReplicaSync::new(2_000);
        let mut book = PoolBook::declarative(1, 1_000, 0);
        assert_eq!(sync.read_failed(0), 250, "the first read backs off");
        assert!(!sync.read_due(249, true) && sync.read_due(250, false));
        sync.read(&mut book, 1, 250);
        assert_eq!(sync.read_failed(2_250), 2_000);
        assert!(sync.may_write(2_250), "the write is not held back");
        assert_eq!(sync.write_failed(2_250, false), 250);
        assert_eq!(sync.write_failed(2_500, false), 500, "writes back off");
        assert!(!sync.read_due(4_249, true) && sync.read_due(4_250, true));
    }

    #[test]
    fn a_failed_write_that_took_effect_is_not_another_writer() {
        let mut sync = ReplicaSync::new(2_000);
        let mut book = PoolBook::declarative(1, 1_000, 0);
        sync.read(&mut book, 1, 0);
        let plan = book.plan(3, &PoolState::default(), 10);
        let write = plan.replicas.expect("two more replicas");
        assert_eq!((write.from, write.to), (1, 3));
        book.write_failed(write);
        sync.write_failed(10, false);
        assert_eq!(
            sync.read(&mut book, 3, 2_000),
            None,
            "it took effect after all"
        );
        assert_eq!(book.applied_replicas(), Some(3));
        assert!(!sync.paused());
    }
}
