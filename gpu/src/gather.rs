//! The gathering policy of dynamic batching, as plain code with time passed in.
//!
//! Requests wait in arrival order. A batch runs as soon as `max_batch_size` requests
//! wait, or once the oldest has waited `max_queue_delay` (then with whatever is there,
//! up to `max_batch_size`). While a forward pass runs, new requests pile up and form the
//! next batch, so under load batches fill without waiting; when idle, a lone request
//! waits at most `max_queue_delay` for company.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When a batch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most requests in one batch (at least 1).
    pub max_batch_size: usize,
    /// Longest the oldest request waits for others before its batch runs.
    pub max_queue_delay: Duration,
}

/// What the model thread does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run a batch now ([`Gatherer::take_batch`]).
    Run,
    /// Wait for more requests until this instant, then decide again.
    WaitUntil(Instant),
    /// Nothing waits: block until a request comes.
    Idle,
}

/// Waiting requests, each with the instant it was enqueued.
#[derive(Debug)]
pub struct Gatherer<T> {
    policy: BatchPolicy,
    waiting: VecDeque<(Instant, T)>,
}

impl<T> Gatherer<T> {
    /// An empty queue under `policy`.
    pub fn new(policy: BatchPolicy) -> Self {
        Gatherer {
            policy: BatchPolicy {
                max_batch_size: policy.max_batch_size.max(1),
                ..policy
            },
            waiting: VecDeque::new(),
        }
    }

    /// Adds a request that was enqueued at `enqueued`.
    pub fn push(&mut self, request: T, enqueued: Instant) {
        self.waiting.push_back((enqueued, request));
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// What to do at `now`.
    pub fn next(&self, now: Instant) -> Next {
        let Some((oldest, _)) = self.waiting.front() else {
            return Next::Idle;
        };
        let deadline = *oldest + self.policy.max_queue_delay;
        if self.waiting.len() >= self.policy.max_batch_size || now >= deadline {
            Next::Run
        } else {
            Next::WaitUntil(deadline)
        }
    }

    /// Takes the oldest requests, at most `max_batch_size`, with their enqueue instants.
    pub fn take_batch(&mut self) -> Vec<(Instant, T)> {
        let n = self.waiting.len().min(self.policy.max_batch_size);
        self.waiting.drain(..n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_batch_size: usize, delay_ms: u64) -> BatchPolicy {
        BatchPolicy {
            max_batch_size,
            max_queue_delay: Duration::from_millis(delay_ms),
        }
    }

    #[test]
    fn a_full_batch_runs_at_once() {
        let t0 = Instant::now();
        let mut g = Gatherer::new(policy(3, 1000));
        for i in 0..3 {
            assert_ne!(g.next(t0), Next::Run);
            g.push(i, t0);
        }
        assert_eq!(g.next(t0), Next::Run);
        let batch: Vec<i32> = g.take_batch().into_iter().map(|(_, r)| r).collect();
        assert_eq!(batch, [0, 1, 2]);
        assert_eq!(g.next(t0), Next::Idle);
    }

    #[test]
    fn a_lone_request_waits_exactly_the_delay() {
        let t0 = Instant::now();
        let mut g = Gatherer::new(policy(8, 10));
        g.push("a", t0);
        let deadline = t0 + Duration::from_millis(10);
        assert_eq!(g.next(t0), Next::WaitUntil(deadline));
        assert_eq!(
            g.next(t0 + Duration::from_millis(9)),
            Next::WaitUntil(deadline)
        );
        assert_eq!(g.next(deadline), Next::Run);
        assert_eq!(g.take_batch().len(), 1);
    }

    #[test]
    fn the_deadline_follows_the_oldest_request() {
        let t0 = Instant::now();
        let mut g = Gatherer::new(policy(8, 10));
        g.push(1, t0);
        g.push(2, t0 + Duration::from_millis(8));
        assert_eq!(
            g.next(t0 + Duration::from_millis(8)),
            Next::WaitUntil(t0 + Duration::from_millis(10))
        );
        assert_eq!(g.next(t0 + Duration::from_millis(10)), Next::Run);
        assert_eq!(g.take_batch().len(), 2, "the younger one rides along");
    }

    #[test]
    fn a_backlog_is_cut_into_batches_of_the_maximum() {
        let t0 = Instant::now();
        let mut g = Gatherer::new(policy(4, 0));
        for i in 0..10 {
            g.push(i, t0);
        }
        let sizes: Vec<usize> =
            std::iter::from_fn(|| (g.next(t0) == Next::Run).then(|| g.take_batch().len()))
                .collect();
        assert_eq!(sizes, [4, 4, 2]);
    }

    #[test]
    fn zero_delay_runs_whatever_is_there() {
        let t0 = Instant::now();
        let mut g = Gatherer::new(policy(8, 0));
        g.push((), t0);
        assert_eq!(g.next(t0), Next::Run);
    }

    /// Simulates the model thread with injected time: requests arrive at pseudo-random
    /// instants, a forward pass takes `pass` and runs one batch at a time. No request
    /// waits for company past the delay: when the model is free at the oldest request's
    /// deadline, its batch starts then, and every batch is at most the maximum.
    #[test]
    fn simulated_arrivals_never_wait_past_the_delay_when_the_model_is_free() {
        let delay = Duration::from_millis(5);
        let pass = Duration::from_millis(3);
        let t0 = Instant::now();
        let mut seed = 42u64;
        let mut next_gap = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Duration::from_micros((seed >> 33) % 4000)
        };
        let mut arrivals = Vec::new();
        let mut t = t0;
        for _ in 0..2000 {
            t += next_gap();
            arrivals.push(t);
        }
        let mut g = Gatherer::new(policy(8, 5));
        let mut now = t0;
        let mut free_at = t0;
        let mut next_arrival = 0;
        let mut served = 0;
        let mut batches = 0;
        while served < arrivals.len() {
            while next_arrival < arrivals.len() && arrivals[next_arrival] <= now {
                g.push(arrivals[next_arrival], arrivals[next_arrival]);
                next_arrival += 1;
            }
            let decision = if now < free_at {
                Next::WaitUntil(free_at)
            } else {
                g.next(now)
            };
            match decision {
                Next::Run => {
                    let batch = g.take_batch();
                    assert!(batch.len() <= 8);
                    // Started by the oldest's deadline, or as soon as the model was free.
                    let oldest = batch[0].0;
                    assert!(
                        now <= (oldest + delay).max(free_at),
                        "waited past the delay"
                    );
                    served += batch.len();
                    batches += 1;
                    free_at = now + pass;
                    now = free_at;
                }
                Next::WaitUntil(until) => {
                    let arrival = arrivals.get(next_arrival).copied().unwrap_or(until);
                    now = until.min(arrival).max(now);
                }
                Next::Idle => now = arrivals[next_arrival],
            }
        }
        assert!(
            batches < arrivals.len() / 2,
            "{batches} batches for {} requests",
            arrivals.len()
        );
    }
}
