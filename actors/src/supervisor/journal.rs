//! The Supervisor's recent decisions and each pool's measured cold start, kept in the
//! process for the node's HTTP API (the console draws them on its plots). It belongs to
//! the process, like the metrics registry: a Supervisor that stops with a lost lease and
//! starts again with a new one adds to the same journal.
//!
//! Bounded: decisions older than [`KEPT_FOR`], and beyond the newest [`MOST_DECISIONS`],
//! are dropped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a decision stays in the journal.
pub const KEPT_FOR: Duration = Duration::from_secs(15 * 60);

/// The most decisions kept, however recent.
pub const MOST_DECISIONS: usize = 500;

/// One change of a pool's desired executor count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionRecord {
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// The pool.
    pub pool: String,
    /// Executors it had (ready and starting).
    pub from: u32,
    /// Executors it should have.
    pub to: u32,
    /// Why, as the Supervisor logs it ("backlog 40 jobs needs 8 executors").
    pub reason: String,
}

/// What the Supervisor last settled for one pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolScaling {
    /// Executors it wants.
    pub desired: u32,
    /// Measured time from asking for an executor to its first free slot (the
    /// configured guess until one was measured), milliseconds.
    pub cold_start_ms: u64,
}

/// Decisions, oldest first, and the pools' latest scaling.
#[derive(Debug, Default)]
struct Journal {
    decisions: VecDeque<DecisionRecord>,
    pools: BTreeMap<String, PoolScaling>,
}

static JOURNAL: LazyLock<Mutex<Journal>> = LazyLock::new(Mutex::default);

fn journal() -> std::sync::MutexGuard<'static, Journal> {
    JOURNAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Adds `decision`, dropping what is too old or too many.
pub(crate) fn record(decision: DecisionRecord) {
    let mut journal = journal();
    let oldest = decision
        .at_ms
        .saturating_sub(u64::try_from(KEPT_FOR.as_millis()).unwrap_or(u64::MAX));
    journal.decisions.push_back(decision);
    while journal.decisions.len() > MOST_DECISIONS
        || journal.decisions.front().is_some_and(|d| d.at_ms < oldest)
    {
        journal.decisions.pop_front();
    }
}

/// Keeps what the Supervisor settled for `pool`.
pub(crate) fn settle(pool: &str, scaling: PoolScaling) {
    journal().pools.insert(pool.to_owned(), scaling);
}

/// Forgets every pool's scaling: the Supervisor of this process stopped.
pub(crate) fn forget_pools() {
    journal().pools.clear();
}

/// The decisions of the last [`KEPT_FOR`], oldest first.
pub fn decisions() -> Vec<DecisionRecord> {
    let oldest = unix_ms().saturating_sub(u64::try_from(KEPT_FOR.as_millis()).unwrap_or(0));
    journal()
        .decisions
        .iter()
        .filter(|d| d.at_ms >= oldest)
        .cloned()
        .collect()
}

/// What the Supervisor of this process last settled per pool; empty when none runs here.
pub fn pools() -> BTreeMap<String, PoolScaling> {
    journal().pools.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(at_ms: u64, to: u32) -> DecisionRecord {
        DecisionRecord {
            at_ms,
            pool: "journal-test".into(),
            from: 1,
            to,
            reason: "backlog".into(),
        }
    }

    fn ours() -> Vec<DecisionRecord> {
        journal()
            .decisions
            .iter()
            .filter(|d| d.pool == "journal-test")
            .cloned()
            .collect()
    }

    #[test]
    fn the_journal_keeps_the_window_and_at_most_its_bound() {
        let now = unix_ms();
        let window = u64::try_from(KEPT_FOR.as_millis()).expect("fits");
        record(decision(now - window - 1_000, 2));
        record(decision(now, 3));
        assert!(
            ours().iter().all(|d| d.to == 3),
            "a decision past the window stays: {:?}",
            ours()
        );
        for n in 0..(MOST_DECISIONS as u32 + 10) {
            record(decision(now, n));
        }
        assert_eq!(journal().decisions.len(), MOST_DECISIONS);
        assert_eq!(ours().last().map(|d| d.to), Some(MOST_DECISIONS as u32 + 9));
        assert!(decisions().iter().any(|d| d.pool == "journal-test"));
    }
}
