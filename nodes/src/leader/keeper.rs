//! The task that keeps the leader's lease: it asks [`Elector`] what to do, makes the
//! call (each bounded in time, so that no stuck connection keeps the node from seeing
//! its deadline), reports the outcome back and publishes where the node stands. It is
//! the only place that talks to the lease row, and it never waits on the actors.
//!
//! On acquiring the lease it makes the [`Fence`] of the new epoch; on losing it (the
//! deadline passed without a renewal, the renewal found another holder, or a fenced
//! write found another epoch) it revokes the fence before saying so, so that nothing the
//! CapacityManager still sends reaches the store, and goes on campaigning as a standby:
//! the next lease it takes comes with a fresh fence. Told to release (a clean
//! shutdown), it frees the lease row so that a standby takes over at its next try.

use std::sync::Arc;
use std::time::Duration;

use marie_decide::leadership::{Elector, LeaderSettings, Loss, Step};
use marie_store::postgres::fence::{Fence, Revoked};
use marie_store::postgres::lease::{Acquisition, LeaderLease, Renewal, Succession};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Where the node stands, as the keeper last knew.
#[derive(Clone, Debug)]
pub enum Lease {
    /// Not the leader; `holder` leads with `epoch`, as last seen (none: unknown, or
    /// nobody leads right now).
    Standby {
        /// The leader, if one holds the lease.
        holder: Option<String>,
        /// The lease's epoch.
        epoch: u64,
    },
    /// This node leads; its CapacityManager writes under `fence`.
    Leading {
        /// The lease's epoch.
        epoch: u64,
        /// The fence of its writes.
        fence: Arc<Fence>,
    },
    /// This node led and lost the lease: it must stop leading at once. It campaigns
    /// again as a standby.
    Lost,
}

/// Keeps the lease of `lease` at the pace of `settings`, publishing through `status`,
/// until `release` is sent (then the lease is freed first); a lost lease is revoked and
/// campaigned for again.
pub async fn keep(
    lease: LeaderLease,
    settings: LeaderSettings,
    status: watch::Sender<Lease>,
    mut release: oneshot::Receiver<()>,
) {
    let clock = Clock(Instant::now());
    let mut elector = Elector::new(settings, clock.now_ms());
    let mut fence: Option<Arc<Fence>> = None;
    let mut failures = Failures::default();
    let ttl = Duration::from_millis(settings.ttl_ms);
    let call_limit = Duration::from_millis(settings.renew_ms);
    loop {
        let now_ms = clock.now_ms();
        let loss = match elector.next(now_ms) {
            Step::Wait { until_ms } => {
                tokio::select! {
                    () = tokio::time::sleep_until(clock.at(until_ms)) => None,
                    revoked = revoked(fence.as_deref()) => elector.deposed(superseded(revoked), clock.now_ms()),
                    _ = &mut release => {
                        release_lease(&lease, elector.epoch(), call_limit).await;
                        return;
                    }
                }
            }
            Step::Acquire => {
                match tokio::time::timeout(call_limit, lease.acquire(ttl)).await {
                    Ok(Ok(Acquisition::Acquired { epoch, succession })) => {
                        failures.passed("acquire");
                        elector.acquired(epoch, now_ms);
                        log_acquired(epoch, &succession);
                        let new = Arc::new(Fence::new(epoch, ttl));
                        fence = Some(new.clone());
                        status.send_replace(Lease::Leading { epoch, fence: new });
                    }
                    Ok(Ok(Acquisition::Held {
                        holder,
                        epoch,
                        expires_in,
                    })) => {
                        failures.passed("acquire");
                        let expires_in_ms = expires_in.map(|left| left.as_millis() as u64);
                        elector.found_held(clock.now_ms(), expires_in_ms);
                        seen(&status, holder, epoch);
                    }
                    Ok(Err(e)) => {
                        failures.failed("acquire", &e.failure().message);
                        elector.not_acquired(clock.now_ms());
                    }
                    Err(_) => {
                        failures.failed("acquire", "no answer in time");
                        elector.not_acquired(clock.now_ms());
                    }
                }
                None
            }
            Step::Renew { epoch, deadline_ms } => {
                let limit = clock.at(deadline_ms).min(Instant::now() + call_limit);
                tokio::select! {
                    answer = tokio::time::timeout_at(limit, lease.renew(epoch, ttl)) => match answer {
                        Ok(Ok(Renewal::Renewed)) => {
                            failures.passed("renew");
                            elector.renewed(now_ms);
                            None
                        }
                        Ok(Ok(Renewal::Lost { current, .. })) => {
                            elector.deposed(Some(current), clock.now_ms())
                        }
                        Ok(Err(e)) => {
                            failures.failed("renew", &e.failure().message);
                            elector.renewal_failed(clock.now_ms());
                            None
                        }
                        Err(_) => {
                            failures.failed("renew", "no answer in time");
                            elector.renewal_failed(clock.now_ms());
                            None
                        }
                    },
                    revoked = revoked(fence.as_deref()) => elector.deposed(superseded(revoked), clock.now_ms()),
                }
            }
            Step::Lost(loss) => Some(loss),
        };
        if let Some(loss) = loss {
            if let Some(fence) = fence.take() {
                fence.revoke();
            }
            log_lost(&loss);
            status.send_replace(Lease::Lost);
        }
    }
}

/// The node's monotonic clock, in milliseconds since the keeper started.
struct Clock(Instant);

impl Clock {
    fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

/// Resolves when `fence` is revoked; never without one.
async fn revoked(fence: Option<&Fence>) -> Revoked {
    match fence {
        Some(fence) => fence.until_revoked().await,
        None => std::future::pending().await,
    }
}

/// The epoch that replaced the node's, when the fence learnt it.
fn superseded(revoked: Revoked) -> Option<u64> {
    match revoked {
        Revoked::Superseded { current } => Some(current),
        Revoked::ByNode => None,
    }
}

/// Records the leader a standby saw, logging a change of leader.
fn seen(status: &watch::Sender<Lease>, holder: Option<String>, epoch: u64) {
    status.send_if_modified(|lease| {
        let changed = !matches!(lease, Lease::Standby { holder: h, epoch: e } if *h == holder && *e == epoch);
        if changed {
            match &holder {
                Some(leader) => tracing::info!(leader = %leader, epoch, "leader: another node leads; this one stands by"),
                None => tracing::info!(epoch, "leader: nobody holds the lease; this node will try to take it"),
            }
            *lease = Lease::Standby { holder, epoch };
        }
        changed
    });
}

fn log_acquired(epoch: u64, succession: &Succession) {
    let reason = match succession {
        Succession::First => "the first leader of this database".to_owned(),
        Succession::Released { holder } => format!("{holder} released the lease"),
        Succession::Expired { holder } => format!("the lease of {holder} expired"),
    };
    tracing::info!(epoch, %reason, "leader: acquired the lease; starting the CapacityManager and the Supervisor");
}

fn log_lost(loss: &Loss) {
    let (epoch, reason) = match loss {
        Loss::RenewalFailed { epoch } => (
            *epoch,
            "the lease could not be renewed before its deadline".to_owned(),
        ),
        Loss::Deposed {
            epoch,
            current: Some(current),
        } => (*epoch, format!("deposed by epoch {current}")),
        Loss::Deposed {
            epoch,
            current: None,
        } => (*epoch, "deposed by another node".to_owned()),
    };
    tracing::error!(epoch, %reason, "leader: lost the lease; the CapacityManager and the Supervisor stop, the Gateway keeps serving and the node campaigns again");
}

/// Frees the lease of `epoch`, if the node holds one, within `limit`.
async fn release_lease(lease: &LeaderLease, epoch: Option<u64>, limit: Duration) {
    let Some(epoch) = epoch else { return };
    match tokio::time::timeout(limit, lease.release(epoch)).await {
        Ok(Ok(true)) => {
            tracing::info!(
                epoch,
                "leader: released the lease; a standby takes over at once"
            )
        }
        Ok(Ok(false)) => tracing::warn!(epoch, "leader: the lease was no longer this node's"),
        Ok(Err(e)) => {
            tracing::warn!(epoch, error = %e.failure(), "leader: could not release the lease; a standby takes over once it expires")
        }
        Err(_) => {
            tracing::warn!(
                epoch,
                "leader: releasing the lease took too long; a standby takes over once it expires"
            )
        }
    }
}

/// Failed lease calls in a row: the first of a streak is logged, and the end of it.
#[derive(Default)]
struct Failures(u32);

impl Failures {
    fn failed(&mut self, call: &str, why: &str) {
        if self.0 == 0 {
            tracing::warn!(call, error = %why, "leader: a call on the lease failed; trying again");
        }
        self.0 += 1;
    }

    fn passed(&mut self, call: &str) {
        if self.0 > 0 {
            tracing::info!(
                call,
                failures = self.0,
                "leader: calls on the lease pass again"
            );
            self.0 = 0;
        }
    }
}
