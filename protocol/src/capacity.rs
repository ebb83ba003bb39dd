//! The capacity report, in exactly the JSON shape of `GET /api/capacity`.

use serde::{Deserialize, Serialize};

/// Slots of one pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolCapacity {
    /// The pool's name.
    pub name: String,
    /// Slots of live executors that take work (draining ones excluded).
    pub capacity: u64,
    /// Slots the pool should have (what the Supervisor or configuration wants).
    pub target: u64,
    /// Slots running a job.
    pub used: u64,
    /// `capacity - used`.
    pub available: u64,
    /// Names of the executors holding the slots.
    pub holders: Vec<String>,
}

/// Sums over every pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityTotals {
    /// Sum of `capacity`.
    pub capacity: u64,
    /// Sum of `used`.
    pub used: u64,
    /// Sum of `available`.
    pub available: u64,
}

/// Queue pressure of one pool: what admission, metrics and autoscaling read besides slots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolLoad {
    /// The pool's name.
    pub name: String,
    /// Jobs waiting for a slot (including those backing off between attempts).
    pub pending: u64,
    /// Jobs running.
    pub running: u64,
    /// Jobs finished per second, smoothed.
    pub finish_rate: f64,
}

/// One executor as the CapacityManager sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorLoad {
    /// Its name.
    pub name: String,
    /// Slots it offers.
    pub slots: u32,
    /// Slots running a job.
    pub used: u32,
    /// Whether it is draining (takes no new job).
    pub draining: bool,
}

/// Everything the autoscaler reads about one pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolState {
    /// The pool's name.
    pub name: String,
    /// Jobs waiting for a slot.
    pub queued: u64,
    /// Jobs running.
    pub running: u64,
    /// Jobs queued since the CapacityManager started (first attempts only).
    pub arrived_total: u64,
    /// Mean run time of finished runs, smoothed, in milliseconds.
    pub mean_run_ms: Option<u64>,
    /// The pool's registered executors.
    pub executors: Vec<ExecutorLoad>,
}

/// `{"slots":[…],"totals":{…}}`: the `result` of `GET /api/capacity`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityReport {
    /// One entry per pool, sorted by name.
    pub slots: Vec<PoolCapacity>,
    /// Sums.
    pub totals: CapacityTotals,
}

impl CapacityReport {
    /// Builds the report from per-pool entries, sorting them and computing the totals.
    pub fn from_pools(mut slots: Vec<PoolCapacity>) -> Self {
        slots.sort_by(|a, b| a.name.cmp(&b.name));
        let totals = slots
            .iter()
            .fold(CapacityTotals::default(), |t, p| CapacityTotals {
                capacity: t.capacity + p.capacity,
                used: t.used + p.used,
                available: t.available + p.available,
            });
        CapacityReport { slots, totals }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_seed_shape() {
        let report = CapacityReport::from_pools(vec![PoolCapacity {
            name: "extract".into(),
            capacity: 4,
            target: 4,
            used: 2,
            available: 2,
            holders: vec!["executor-1".into(), "executor-2".into()],
        }]);
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "slots": [{"name": "extract", "capacity": 4, "target": 4, "used": 2,
                           "available": 2, "holders": ["executor-1", "executor-2"]}],
                "totals": {"capacity": 4, "used": 2, "available": 2}
            })
        );
    }
}
