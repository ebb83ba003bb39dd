//! The fence of a leader's writes: the epoch its lease was acquired with.
//!
//! A store handle made with [`super::PostgresStore::fenced`] checks, at the start of
//! every transaction of its writer, that the lease row still carries its epoch, and
//! holds a share lock on that row until the commit: a standby's acquisition (which
//! raises the epoch) waits for that transaction, so nothing a deposed leader writes
//! commits after its successor's epoch. When the row says otherwise, the transaction is
//! rolled back, every call of it answered [`crate::StoreError::Deposed`], and the fence
//! revoked. The node revokes it itself as soon as it can no longer be sure of its lease
//! (its renewals failed up to the deadline): from then on the handle refuses every
//! write without asking the database.

use std::time::Duration;

use tokio::sync::watch;

/// The epoch a leader writes with, and whether it still may.
#[derive(Debug)]
pub struct Fence {
    epoch: u64,
    /// Longest a transaction of the leader may sit idle holding the lease row's share
    /// lock: a leader stopped in the middle of one (SIGSTOP, a hung host) must not keep
    /// its successor waiting longer than the lease would.
    hold_limit: Duration,
    /// `None` while the epoch is current; then the current epoch, when known.
    revoked: watch::Sender<Option<Revoked>>,
}

/// Why a fence was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// The node gave the lease up or could not renew it in time.
    ByNode,
    /// The lease row carries another epoch: another node acquired it.
    Superseded {
        /// The epoch in the lease row.
        current: u64,
    },
}

impl Fence {
    /// The fence of a lease acquired with `epoch`; a transaction may sit idle holding the
    /// lease row for at most `hold_limit` (the lease's time to live).
    pub fn new(epoch: u64, hold_limit: Duration) -> Fence {
        Fence {
            epoch,
            hold_limit,
            revoked: watch::Sender::new(None),
        }
    }

    /// The epoch writes carry.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Longest a transaction may sit idle holding the lease row.
    pub fn hold_limit(&self) -> Duration {
        self.hold_limit
    }

    /// Refuses every later write: the node no longer holds the lease.
    pub fn revoke(&self) {
        self.revoke_for(Revoked::ByNode);
    }

    /// Records that the lease row carries `current`, not this fence's epoch.
    pub(crate) fn superseded(&self, current: u64) {
        self.revoke_for(Revoked::Superseded { current });
    }

    fn revoke_for(&self, why: Revoked) {
        self.revoked.send_if_modified(|revoked| {
            let first = revoked.is_none();
            if first {
                *revoked = Some(why);
            }
            first
        });
    }

    /// Why the fence was revoked, if it was.
    pub fn revoked(&self) -> Option<Revoked> {
        *self.revoked.borrow()
    }

    /// Resolves once the fence is revoked (at once if it already is), with why.
    pub async fn until_revoked(&self) -> Revoked {
        let mut watch = self.revoked.subscribe();
        match watch.wait_for(Option::is_some).await {
            Ok(revoked) => revoked.unwrap_or(Revoked::ByNode),
            // The sender lives in `self`: it cannot be dropped while this waits.
            Err(_) => Revoked::ByNode,
        }
    }

    /// The epoch of the lease row, when a refused write learnt it.
    pub(crate) fn current(&self) -> Option<u64> {
        match self.revoked() {
            Some(Revoked::Superseded { current }) => Some(current),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_revocation_is_kept_and_wakes_the_waiters() {
        let fence = std::sync::Arc::new(Fence::new(4, Duration::from_secs(3)));
        let waiting = tokio::spawn({
            let fence = fence.clone();
            async move { fence.until_revoked().await }
        });
        assert_eq!(fence.revoked(), None);
        fence.superseded(5);
        fence.revoke();
        assert_eq!(
            waiting.await.expect("the waiter ends"),
            Revoked::Superseded { current: 5 }
        );
        assert_eq!(fence.current(), Some(5));
    }
}
