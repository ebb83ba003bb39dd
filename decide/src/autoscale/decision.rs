//! What the policy answers: a desired executor count and the reason for it.

use std::fmt;

/// The policy's answer for one pool at one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Executors the pool should have (ready plus starting).
    pub desired: u32,
    /// Executors it has now (ready plus starting), as observed.
    pub current: u32,
    /// What the load alone asks for, before windows, rate limits and idle rules.
    pub need: u32,
    /// Why `desired` is what it is.
    pub reason: Reason,
}

impl Decision {
    /// Whether the backend has anything to do.
    pub fn is_change(&self) -> bool {
        self.desired != self.current
    }

    /// Executors to add (positive) or remove (negative).
    pub fn delta(&self) -> i64 {
        i64::from(self.desired) - i64::from(self.current)
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}: {}", self.current, self.desired, self.reason)
    }
}

/// Why the desired count is what it is: the rule that decided it.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// A job is queued and the pool has no executor: one starts at once, no window.
    FirstJob,
    /// The queue needs this many executors to drain within one cold start.
    Backlog {
        /// Jobs queued.
        queued: u32,
        /// Executors needed.
        executors: u32,
    },
    /// The executors there clear the queue before a new one, ready only after a cold
    /// start, could help.
    DrainsBeforeReady {
        /// Jobs queued.
        queued: u32,
        /// Cold start, in seconds.
        cold_start_secs: u64,
        /// Executors there (ready and starting).
        executors: u32,
    },
    /// The arrival rate needs this many executors at the target utilisation.
    Arrivals {
        /// Jobs per second.
        per_second: f64,
        /// Executors needed.
        executors: u32,
    },
    /// Running jobs hold this many executors' slots: never fewer.
    Running {
        /// Jobs running on executors that are not draining.
        running: u32,
        /// Executors needed.
        executors: u32,
    },
    /// The scale-down window holds the highest need it has seen.
    Held {
        /// Executors kept.
        executors: u32,
        /// What the load needs now.
        needed: u32,
        /// The window, in seconds.
        window_secs: u64,
    },
    /// The scale-up window holds back to the lowest need it has seen.
    Waiting {
        /// Executors wanted for now.
        executors: u32,
        /// What the load needs now.
        needed: u32,
        /// The window, in seconds.
        window_secs: u64,
    },
    /// A rate limit stops the move part-way.
    Limited {
        /// Executors allowed.
        executors: u32,
        /// Executors wanted.
        needed: u32,
        /// True when scaling up.
        up: bool,
        /// The limit's period, in seconds.
        period_secs: u64,
    },
    /// The load asks for more than `max`.
    AtMax {
        /// What the load needs.
        needed: u32,
        /// The configured max.
        max: u32,
    },
    /// The load asks for less than the floor (`max(min, 1)`).
    AtMin {
        /// What the load needs.
        needed: u32,
        /// The floor.
        min: u32,
    },
    /// Idle long enough: down to one executor.
    IdleToOne {
        /// Seconds idle.
        idle_secs: u64,
    },
    /// Idle long enough: the last executor goes.
    IdleToZero {
        /// Seconds idle.
        idle_secs: u64,
    },
    /// At zero with nothing queued: stays there.
    IdleAtZero,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::FirstJob => write!(f, "first job queued for an empty pool: 1 executor at once"),
            Reason::Backlog { queued, executors } => {
                write!(f, "backlog {queued} jobs needs {executors} executors")
            }
            Reason::DrainsBeforeReady {
                queued,
                cold_start_secs,
                executors,
            } => write!(
                f,
                "backlog {queued} jobs: the {executors} executors there clear it before a new \
                 one would help (ready in {cold_start_secs} s)"
            ),
            Reason::Arrivals {
                per_second,
                executors,
            } => {
                let digits = if *per_second < 1.0 { 2 } else { 1 };
                write!(
                    f,
                    "arrivals {per_second:.digits$} jobs/s need {executors} executors"
                )
            }
            Reason::Running { running, executors } => {
                write!(f, "running {running} jobs need {executors} executors")
            }
            Reason::Held {
                executors,
                needed,
                window_secs,
            } => write!(
                f,
                "holding {executors}: the highest need of the last {window_secs} s (now {needed})"
            ),
            Reason::Waiting {
                executors,
                needed,
                window_secs,
            } => write!(
                f,
                "scale-up window: the lowest need of the last {window_secs} s is {executors} \
                 (now {needed})"
            ),
            Reason::Limited {
                executors,
                needed,
                up,
                period_secs,
            } => write!(
                f,
                "scale-{} limited to {executors} per {period_secs} s (needs {needed})",
                if *up { "up" } else { "down" }
            ),
            Reason::AtMax { needed, max } => {
                write!(f, "needs {needed} executors, capped at max {max}")
            }
            Reason::AtMin { needed, min } => write!(f, "needs {needed}, kept at min {min}"),
            Reason::IdleToOne { idle_secs } => write!(f, "idle {idle_secs} s: down to 1"),
            Reason::IdleToZero { idle_secs } => write!(f, "idle {idle_secs} s: to zero"),
            Reason::IdleAtZero => write!(f, "idle at zero"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_sentences() {
        let backlog = Reason::Backlog {
            queued: 120,
            executors: 8,
        };
        assert_eq!(backlog.to_string(), "backlog 120 jobs needs 8 executors");
        assert_eq!(
            Reason::IdleToZero { idle_secs: 300 }.to_string(),
            "idle 300 s: to zero"
        );
        let decision = Decision {
            desired: 8,
            current: 2,
            need: 8,
            reason: backlog,
        };
        assert_eq!(
            decision.to_string(),
            "2 → 8: backlog 120 jobs needs 8 executors"
        );
        assert_eq!(decision.delta(), 6);
        assert!(decision.is_change());
    }
}
