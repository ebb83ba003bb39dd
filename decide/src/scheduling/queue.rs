//! The queue of one pool: highest priority first, then oldest first.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use marie_protocol::JobId;

/// Ready jobs of one pool. Removal is lazy: a job cancelled while queued stays in the
/// heap until popped, and the caller skips it (it is no longer ready).
#[derive(Debug, Default)]
pub struct PoolQueue {
    heap: BinaryHeap<(i32, Reverse<u64>, JobId)>,
}

impl PoolQueue {
    /// Queues a job with its priority and age (`seq`: smaller is older).
    pub fn push(&mut self, priority: i32, seq: u64, id: JobId) {
        self.heap.push((priority, Reverse(seq), id));
    }

    /// Takes the next job, highest priority, then oldest.
    pub fn pop(&mut self) -> Option<JobId> {
        self.heap.pop().map(|(_, _, id)| id)
    }

    /// Entries in the heap, including lazily removed ones.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when the heap holds nothing.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_then_age() {
        let ids: Vec<JobId> = (0..4).map(|_| JobId::generate()).collect();
        let mut q = PoolQueue::default();
        q.push(0, 1, ids[0]);
        q.push(5, 3, ids[1]);
        q.push(5, 2, ids[2]);
        q.push(-1, 0, ids[3]);
        let order: Vec<JobId> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![ids[2], ids[1], ids[0], ids[3]]);
    }
}
