//! When a server node tries to take the leader's lease, when it renews it, and when it
//! must consider it lost.
//!
//! The lease lives in the shared store, timed by the database's clock; this node only
//! knows when it *asked*. A lease granted or renewed by a call that left at `t` (on the
//! node's monotonic clock) runs until at least `t + ttl` on the database's clock, since
//! the database stamped it later than `t`. The node therefore holds it until
//! `t + ttl - margin` ([`LeaderSettings::margin_ms`]: room for the two clocks running at
//! slightly different rates), and past that deadline without a successful renewal it
//! has lost the lease, whatever the database would say: a standby may have taken it.
//! Its writes are fenced by the epoch anyway; the deadline is what stops it from
//! *acting* as the leader.
//!
//! A standby that finds the lease held tries again as soon as the lease it saw expires:
//! the database answers how long the lease has left on its own clock, and the standby
//! asks again that long after the answer came (the lease expired by then, since the
//! database measured it before answering), plus a small slack
//! ([`LeaderSettings::expiry_slack_ms`]), and at the latest a renewal period later. A
//! dead leader is so replaced as soon as its lease runs out, not up to a period after.
//!
//! [`Elector`] is a state machine with time passed in: [`Elector::next`] says what to do
//! now, and the outcome of each call is reported back.

use serde::{Deserialize, Serialize};

/// `[leader]` of `cluster.toml`: the pace of the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaderSettings {
    /// How often the leader renews its lease, in ms; a standby tries to take it this
    /// often too, or sooner when the lease it saw expires sooner.
    pub renew_ms: u64,
    /// How long a lease lasts after its last renewal, in ms: a dead leader is replaced
    /// after at most this long.
    pub ttl_ms: u64,
}

impl Default for LeaderSettings {
    fn default() -> Self {
        LeaderSettings {
            renew_ms: 1_000,
            ttl_ms: 3_000,
        }
    }
}

impl LeaderSettings {
    /// How much sooner than the database the node gives its lease up: a tenth of the
    /// time to live.
    pub fn margin_ms(&self) -> u64 {
        self.ttl_ms / 10
    }

    /// How long after asking the node holds a lease granted or renewed by that call.
    pub fn hold_ms(&self) -> u64 {
        self.ttl_ms - self.margin_ms()
    }

    /// How long after the lease it saw expires a standby tries to take it: a hundredth
    /// of the time to live (room for the two clocks running at slightly different
    /// rates), at least a millisecond.
    pub fn expiry_slack_ms(&self) -> u64 {
        (self.ttl_ms / 100).max(1)
    }

    /// Wait before another try after a renewal failed (an error, no answer in time):
    /// a quarter of the renewal period, so that several tries fit before the deadline.
    pub fn retry_ms(&self) -> u64 {
        (self.renew_ms / 4).max(1)
    }
}

/// What the node should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Try to take the lease.
    Acquire,
    /// Renew the lease of `epoch`; the call must be given up at `deadline_ms`, when the
    /// lease is lost if it has not answered.
    Renew {
        /// The epoch held.
        epoch: u64,
        /// When the lease is lost without a renewal.
        deadline_ms: u64,
    },
    /// Nothing until `until_ms`.
    Wait {
        /// When to ask again.
        until_ms: u64,
    },
    /// The lease is lost: stop leading at once.
    Lost(Loss),
}

/// Why a leader lost its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// No renewal succeeded before the deadline (Postgres out of reach, or too slow).
    RenewalFailed {
        /// The epoch held.
        epoch: u64,
    },
    /// Another node took the lease (the renewal found another epoch or holder, or a
    /// write was refused by the fence).
    Deposed {
        /// The epoch held.
        epoch: u64,
        /// The epoch of the lease now, when known.
        current: Option<u64>,
    },
}

/// Where the node stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Not the leader.
    Standby,
    /// The leader with `epoch`, sure of it until `until_ms`.
    Leader {
        /// The lease's epoch.
        epoch: u64,
        /// When the lease is lost without a renewal.
        until_ms: u64,
    },
}

/// The node's view of its lease.
#[derive(Clone, Debug)]
pub struct Elector {
    settings: LeaderSettings,
    standing: Standing,
    /// When the next call is due.
    next_ms: u64,
}

impl Elector {
    /// A standby that tries to take the lease at once.
    pub fn new(settings: LeaderSettings, now_ms: u64) -> Elector {
        Elector {
            settings,
            standing: Standing::Standby,
            next_ms: now_ms,
        }
    }

    /// Where the node stands.
    pub fn standing(&self) -> Standing {
        self.standing
    }

    /// The epoch held, if the node leads.
    pub fn epoch(&self) -> Option<u64> {
        match self.standing {
            Standing::Leader { epoch, .. } => Some(epoch),
            Standing::Standby => None,
        }
    }

    /// What to do at `now_ms`. A leader past its deadline has lost the lease: it is a
    /// standby from then on.
    pub fn next(&mut self, now_ms: u64) -> Step {
        match self.standing {
            Standing::Leader { epoch, until_ms } if now_ms >= until_ms => {
                self.standing = Standing::Standby;
                self.next_ms = now_ms + self.settings.renew_ms;
                Step::Lost(Loss::RenewalFailed { epoch })
            }
            _ if now_ms < self.next_ms => Step::Wait {
                until_ms: self.wait_until(),
            },
            Standing::Leader { epoch, until_ms } => Step::Renew {
                epoch,
                deadline_ms: until_ms,
            },
            Standing::Standby => Step::Acquire,
        }
    }

    /// When a leader must act next: its next renewal or its deadline.
    fn wait_until(&self) -> u64 {
        match self.standing {
            Standing::Leader { until_ms, .. } => self.next_ms.min(until_ms),
            Standing::Standby => self.next_ms,
        }
    }

    /// An acquisition that left at `asked_ms` took the lease with `epoch`.
    pub fn acquired(&mut self, epoch: u64, asked_ms: u64) {
        self.standing = Standing::Leader {
            epoch,
            until_ms: asked_ms + self.settings.hold_ms(),
        };
        self.next_ms = asked_ms + self.settings.renew_ms;
    }

    /// An acquisition failed (an error, no answer in time); try again a period later.
    pub fn not_acquired(&mut self, now_ms: u64) {
        self.next_ms = now_ms + self.settings.renew_ms;
    }

    /// An acquisition answered at `now_ms` found the lease held, for `expires_in_ms`
    /// more by the database's clock (none: nobody holds it any more, another node took
    /// it and let it go meanwhile). Try again once it expired, plus the slack, and at
    /// the latest a period later (to see a new holder).
    pub fn found_held(&mut self, now_ms: u64, expires_in_ms: Option<u64>) {
        let expired = now_ms + expires_in_ms.unwrap_or(0) + self.settings.expiry_slack_ms();
        self.next_ms = expired.min(now_ms + self.settings.renew_ms);
    }

    /// A renewal that left at `asked_ms` passed: the lease holds until `asked_ms` plus
    /// the hold time (never less than before).
    pub fn renewed(&mut self, asked_ms: u64) {
        if let Standing::Leader { epoch, until_ms } = self.standing {
            self.standing = Standing::Leader {
                epoch,
                until_ms: until_ms.max(asked_ms + self.settings.hold_ms()),
            };
            self.next_ms = asked_ms + self.settings.renew_ms;
        }
    }

    /// A renewal failed without an answer about the lease (an error, no answer in
    /// time): try again soon; the deadline stands.
    pub fn renewal_failed(&mut self, now_ms: u64) {
        self.next_ms = now_ms + self.settings.retry_ms();
    }

    /// The lease is another node's (`current`, when known): the node is a standby from
    /// now on. Answers the loss, if the node led.
    pub fn deposed(&mut self, current: Option<u64>, now_ms: u64) -> Option<Loss> {
        let Standing::Leader { epoch, .. } = self.standing else {
            return None;
        };
        self.standing = Standing::Standby;
        self.next_ms = now_ms + self.settings.renew_ms;
        Some(Loss::Deposed { epoch, current })
    }

    /// The node released its lease (it is shutting down).
    pub fn released(&mut self, now_ms: u64) {
        self.standing = Standing::Standby;
        self.next_ms = now_ms + self.settings.renew_ms;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SETTINGS: LeaderSettings = LeaderSettings {
        renew_ms: 1_000,
        ttl_ms: 3_000,
    };

    #[test]
    fn a_standby_tries_at_once_then_once_a_period() {
        let mut elector = Elector::new(SETTINGS, 0);
        assert_eq!(elector.next(0), Step::Acquire);
        elector.not_acquired(10);
        assert_eq!(elector.next(500), Step::Wait { until_ms: 1_010 });
        assert_eq!(elector.next(1_010), Step::Acquire);
        elector.found_held(1_020, Some(2_500));
        assert_eq!(elector.next(1_500), Step::Wait { until_ms: 2_020 });
    }

    #[test]
    fn a_standby_tries_again_right_after_the_lease_it_saw_expires() {
        let mut elector = Elector::new(SETTINGS, 0);
        assert_eq!(elector.next(0), Step::Acquire);
        // The leader died 2.6 s ago: its lease has 400 ms left.
        elector.found_held(20, Some(400));
        let retry = 20 + 400 + SETTINGS.expiry_slack_ms();
        assert_eq!(elector.next(100), Step::Wait { until_ms: retry });
        assert_eq!(elector.next(retry), Step::Acquire);
        // Nobody holds it any more: at once, after the slack.
        elector.found_held(retry + 5, None);
        assert_eq!(
            elector.next(retry + 5),
            Step::Wait {
                until_ms: retry + 5 + SETTINGS.expiry_slack_ms()
            }
        );
    }

    #[test]
    fn a_leader_renews_every_period_and_holds_until_ttl_minus_margin_after_asking() {
        let mut elector = Elector::new(SETTINGS, 0);
        elector.acquired(7, 100);
        assert_eq!(
            elector.standing(),
            Standing::Leader {
                epoch: 7,
                until_ms: 100 + 2_700
            }
        );
        assert_eq!(elector.next(600), Step::Wait { until_ms: 1_100 });
        assert_eq!(
            elector.next(1_100),
            Step::Renew {
                epoch: 7,
                deadline_ms: 2_800
            }
        );
        elector.renewed(1_100);
        assert_eq!(elector.epoch(), Some(7));
        assert_eq!(
            elector.next(2_100),
            Step::Renew {
                epoch: 7,
                deadline_ms: 3_800
            }
        );
    }

    #[test]
    fn failed_renewals_retry_sooner_and_the_lease_is_lost_at_the_deadline() {
        let mut elector = Elector::new(SETTINGS, 0);
        elector.acquired(3, 0);
        let mut now = 1_000;
        loop {
            match elector.next(now) {
                Step::Renew { .. } => elector.renewal_failed(now),
                Step::Wait { until_ms } => {
                    assert!(until_ms <= 2_700, "waits past the deadline: {until_ms}");
                    now = until_ms;
                }
                Step::Lost(loss) => {
                    assert_eq!(loss, Loss::RenewalFailed { epoch: 3 });
                    assert_eq!(now, 2_700);
                    break;
                }
                Step::Acquire => panic!("a leader does not acquire"),
            }
        }
        assert_eq!(elector.standing(), Standing::Standby);
        assert_eq!(elector.next(3_700), Step::Acquire);
    }

    #[test]
    fn a_deposed_leader_is_a_standby_and_says_which_epoch_replaced_it() {
        let mut elector = Elector::new(SETTINGS, 0);
        assert_eq!(elector.deposed(Some(2), 0), None);
        elector.acquired(4, 0);
        assert_eq!(
            elector.deposed(Some(5), 100),
            Some(Loss::Deposed {
                epoch: 4,
                current: Some(5)
            })
        );
        assert_eq!(elector.epoch(), None);
        // A late answer to a renewal changes nothing for a standby.
        elector.renewed(50);
        assert_eq!(elector.standing(), Standing::Standby);
    }

    /// What happened to one call.
    #[derive(Clone, Debug)]
    enum Outcome {
        Passed,
        Failed,
        Deposed,
    }

    fn outcomes() -> impl Strategy<Value = Vec<(u64, Outcome)>> {
        let outcome = prop_oneof![
            6 => Just(Outcome::Passed),
            3 => Just(Outcome::Failed),
            1 => Just(Outcome::Deposed),
        ];
        proptest::collection::vec((0u64..2_000, outcome), 1..200)
    }

    proptest! {
        /// Whatever the calls answer and however long they take, a node never believes
        /// it leads at a moment when the database may already have let the lease go:
        /// every instant it stands as the leader lies before the last successful
        /// call's departure plus the time to live, less the margin.
        #[test]
        fn never_leads_past_the_lease_the_database_granted(
            settings in (1u64..2_000).prop_flat_map(|renew| {
                (Just(renew), (renew * 2 + 1)..(renew * 10))
            }).prop_map(|(renew_ms, ttl_ms)| LeaderSettings { renew_ms, ttl_ms }),
            calls in outcomes(),
        ) {
            let mut elector = Elector::new(settings, 0);
            let mut now = 0;
            let mut last_grant: Option<u64> = None;
            let mut epoch = 0;
            for (took, outcome) in calls {
                let step = elector.next(now);
                let asked = now;
                match step {
                    Step::Wait { until_ms } => {
                        prop_assert!(until_ms > now);
                        now = until_ms;
                        continue;
                    }
                    Step::Lost(_) => {
                        last_grant = None;
                        continue;
                    }
                    Step::Acquire | Step::Renew { .. } => {}
                }
                now += took;
                match (step, outcome) {
                    (Step::Acquire, Outcome::Passed) => {
                        epoch += 1;
                        elector.acquired(epoch, asked);
                        last_grant = Some(asked);
                    }
                    (Step::Acquire, Outcome::Failed) => elector.not_acquired(now),
                    (Step::Acquire, Outcome::Deposed) => elector.found_held(now, Some(took)),
                    (Step::Renew { deadline_ms, .. }, _) if now >= deadline_ms => {
                        // The node gave the call up at its deadline.
                        now = deadline_ms;
                        elector.renewal_failed(now);
                    }
                    (Step::Renew { .. }, Outcome::Passed) => {
                        elector.renewed(asked);
                        last_grant = Some(asked);
                    }
                    (Step::Renew { .. }, Outcome::Failed) => elector.renewal_failed(now),
                    (Step::Renew { .. }, Outcome::Deposed) => {
                        prop_assert!(elector.deposed(Some(epoch + 1), now).is_some());
                        last_grant = None;
                    }
                    _ => {}
                }
                // Look at the standing as it is now, after any loss at this instant.
                if let Step::Lost(_) = elector.next(now) {
                    last_grant = None;
                }
                if let Standing::Leader { until_ms, .. } = elector.standing() {
                    let granted = last_grant.expect("a leader was granted its lease");
                    prop_assert!(until_ms <= granted + settings.ttl_ms - settings.margin_ms());
                    prop_assert!(now < until_ms);
                }
            }
        }

        /// A standby whose tries find another node's lease, which runs out at `expiry` (the
        /// clocks agreeing), tries again no later than a period after each answer, and
        /// its first try after the expiry comes within the slack plus the longest call.
        #[test]
        fn a_standby_tries_soon_after_the_lease_expires(
            renew_ms in 10u64..2_000,
            factor in 3u64..10,
            expiry in 0u64..20_000,
            calls in proptest::collection::vec((0u64..200, 0u64..=100), 1..400),
        ) {
            let settings = LeaderSettings { renew_ms, ttl_ms: renew_ms * factor };
            let mut elector = Elector::new(settings, 0);
            let mut now = 0;
            let mut longest = 0;
            for (took, measured_at) in calls {
                match elector.next(now) {
                    Step::Wait { until_ms } => {
                        prop_assert!(until_ms > now);
                        now = until_ms;
                    }
                    Step::Acquire if now >= expiry => {
                        prop_assert!(
                            now <= expiry + settings.expiry_slack_ms() + longest,
                            "first try at {} for a lease that expired at {}", now, expiry
                        );
                        return Ok(());
                    }
                    Step::Acquire => {
                        // The database measures the time left somewhere within the call.
                        let measured = now + took * measured_at / 100;
                        now += took;
                        longest = longest.max(took);
                        elector.found_held(now, expiry.checked_sub(measured).filter(|left| *left > 0));
                        match elector.next(now) {
                            Step::Wait { until_ms } => prop_assert!(until_ms <= now + renew_ms),
                            Step::Acquire => {}
                            other => prop_assert!(false, "{:?}", other),
                        }
                    }
                    other => prop_assert!(false, "{:?} for a standby", other),
                }
            }
        }

        /// A leader whose renewals all pass at once never loses its lease.
        #[test]
        fn renewals_that_pass_keep_the_lease(renew_ms in 1u64..2_000, factor in 3u64..10, periods in 1usize..100) {
            let settings = LeaderSettings { renew_ms, ttl_ms: renew_ms * factor };
            let mut elector = Elector::new(settings, 0);
            elector.acquired(1, 0);
            let mut now = 0;
            let mut renewals = 0;
            while renewals < periods {
                match elector.next(now) {
                    Step::Wait { until_ms } => now = until_ms,
                    Step::Renew { .. } => {
                        elector.renewed(now);
                        renewals += 1;
                    }
                    other => prop_assert!(false, "{other:?} at {now}"),
                }
            }
            prop_assert_eq!(elector.epoch(), Some(1));
        }
    }
}
