//! The node's recent past, for the console: every [`INTERVAL`] a sampler reads each
//! pool's queue and slots from the CapacityManager and the Gateway and keeps them for
//! [`WINDOW`] in a bounded ring per pool; it also notes since when each member has had
//! its status. `GET /api/history` answers the rings with the Supervisor's recent
//! decisions and reasons (its [`journal`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use marie_actors::lookup;
use marie_actors::supervisor::journal::{self, unix_ms};
use marie_client::Client;
use marie_protocol::messages::{CapacityMsg, PoolStatesQuery};
use marie_protocol::{CapacityReport, PoolState};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::views::{Envelope, ok};
use crate::membership;

/// How far back the rings reach.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Time between two samples.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Samples one ring holds: the window's worth.
const RING_LEN: usize = (WINDOW.as_secs() / INTERVAL.as_secs()) as usize;

/// How long the sampler waits for the CapacityManager.
const MANAGER_TIMEOUT: Duration = Duration::from_secs(2);

/// One pool at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PoolSample {
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// Jobs waiting for a slot (including those backing off between attempts).
    pub pending: u64,
    /// Slots running a job.
    pub slots_used: u64,
    /// Slots of live executors that take work.
    pub slots_capacity: u64,
    /// Slots the pool should have.
    pub slots_target: u64,
    /// Registered executors that take work.
    pub executors: u64,
    /// Executors the pool should have (`slots_target` over the slots of one executor).
    pub executors_target: u64,
}

/// The recent past of one pool.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolHistoryView {
    /// The pool.
    pub name: String,
    /// Slots each of its executors offers (0 when the configuration does not say).
    pub slots_per_executor: u32,
    /// The Supervisor's measured cold start (asking for an executor to its first free
    /// slot), when the Supervisor runs in this node and scales the pool.
    pub cold_start_ms: Option<u64>,
    /// The samples of the window, oldest first.
    pub samples: Vec<PoolSample>,
}

/// A change of a pool's desired executor count, with its reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// The pool.
    pub pool: String,
    /// Executors it had (ready and starting).
    pub from: u32,
    /// Executors it should have.
    pub to: u32,
    /// Why ("backlog 40 jobs needs 8 executors").
    pub reason: String,
}

/// `GET /api/history`: the last 15 minutes of every pool, and the scaling decisions.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    /// This node's clock, Unix milliseconds.
    pub now_ms: u64,
    /// How far back the samples reach, seconds.
    pub window_secs: u64,
    /// Time between two samples, milliseconds.
    pub interval_ms: u64,
    /// One entry per pool, sorted by name.
    pub pools: Vec<PoolHistoryView>,
    /// The Supervisor's decisions of the window, oldest first. Only the node that runs
    /// the Supervisor (the server node; the leader on the Postgres store) has them.
    pub decisions: Vec<DecisionView>,
}

/// The rings and the members' statuses.
#[derive(Debug, Default)]
struct Rings {
    pools: BTreeMap<String, VecDeque<PoolSample>>,
    /// Per node: its status, and since when this node has seen it so.
    members: HashMap<String, (String, u64)>,
}

/// What the sampler keeps; shared by the handlers.
#[derive(Debug, Default)]
pub struct History {
    rings: Mutex<Rings>,
    /// Slots of one executor, per pool, from the configuration.
    slots_per_executor: BTreeMap<String, u32>,
}

impl History {
    /// An empty history of pools whose executors offer `slots_per_executor`.
    pub fn new(slots_per_executor: BTreeMap<String, u32>) -> Self {
        History {
            rings: Mutex::default(),
            slots_per_executor,
        }
    }

    fn rings(&self) -> std::sync::MutexGuard<'_, Rings> {
        self.rings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one sample per pool at `at_ms`, dropping samples past the window.
    fn record(&self, at_ms: u64, report: &CapacityReport, states: &[PoolState]) {
        let oldest = at_ms.saturating_sub(window_ms());
        let mut rings = self.rings();
        for pool in &report.slots {
            let state = states.iter().find(|s| s.name == pool.name);
            let per = u64::from(self.slots_per(&pool.name));
            let sample = PoolSample {
                at_ms,
                pending: state.map_or(0, |s| s.queued),
                slots_used: pool.used,
                slots_capacity: pool.capacity,
                slots_target: pool.target,
                executors: state.map_or(0, |s| {
                    s.executors.iter().filter(|e| !e.draining).count() as u64
                }),
                executors_target: if per == 0 {
                    0
                } else {
                    pool.target.div_ceil(per)
                },
            };
            let ring = rings.pools.entry(pool.name.clone()).or_default();
            ring.push_back(sample);
            while ring.len() > RING_LEN || ring.front().is_some_and(|s| s.at_ms < oldest) {
                ring.pop_front();
            }
        }
    }

    fn slots_per(&self, pool: &str) -> u32 {
        self.slots_per_executor.get(pool).copied().unwrap_or(0)
    }

    /// Notes each member's status at `now_ms`; a status seen for the first time starts
    /// its "since".
    fn note_members(&self, now_ms: u64, members: impl IntoIterator<Item = (String, String)>) {
        let mut rings = self.rings();
        for (name, status) in members {
            match rings.members.get_mut(&name) {
                Some((was, _)) if *was == status => {}
                Some(entry) => *entry = (status, now_ms),
                None => {
                    rings.members.insert(name, (status, now_ms));
                }
            }
        }
    }

    /// Since when this node has seen `node` with `status`, Unix milliseconds.
    pub fn since(&self, node: &str, status: &str) -> Option<u64> {
        self.rings()
            .members
            .get(node)
            .filter(|(seen, _)| seen == status)
            .map(|(_, since)| *since)
    }

    /// The view of the window now.
    fn view(&self) -> HistoryView {
        let scaling = journal::pools();
        let pools = self
            .rings()
            .pools
            .iter()
            .map(|(name, ring)| PoolHistoryView {
                name: name.clone(),
                slots_per_executor: self.slots_per(name),
                cold_start_ms: scaling.get(name).map(|s| s.cold_start_ms),
                samples: ring.iter().copied().collect(),
            })
            .collect();
        let decisions = journal::decisions()
            .into_iter()
            .map(|d| DecisionView {
                at_ms: d.at_ms,
                pool: d.pool,
                from: d.from,
                to: d.to,
                reason: d.reason,
            })
            .collect();
        HistoryView {
            now_ms: unix_ms(),
            window_secs: WINDOW.as_secs(),
            interval_ms: u64::try_from(INTERVAL.as_millis()).unwrap_or(u64::MAX),
            pools,
            decisions,
        }
    }
}

fn window_ms() -> u64 {
    u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX)
}

/// Samples every [`INTERVAL`] into `history` until the API that holds it is dropped.
pub fn spawn_sampler(history: &Arc<History>, client: Client) {
    let history: Weak<History> = Arc::downgrade(history);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(history) = history.upgrade() else {
                return;
            };
            sample(&history, &client).await;
        }
    });
}

/// One sample of the pools and the members; a part that does not answer is skipped.
async fn sample(history: &History, client: &Client) {
    if let Some(list) = membership::members().await {
        history.note_members(
            unix_ms(),
            list.0.into_iter().map(|n| (n.node.name, n.status)),
        );
    }
    let Ok(report) = client.capacity().await else {
        return;
    };
    let states = match lookup::capacity_manager() {
        Some(manager) => manager
            .call(
                |reply| CapacityMsg::PoolStates(PoolStatesQuery, reply),
                Some(MANAGER_TIMEOUT),
            )
            .await
            .ok()
            .and_then(|answer| answer.success_or(()).ok())
            .map(|states| states.0)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    history.record(unix_ms(), &report, &states);
}

/// The last 15 minutes of every pool — pending jobs, slots, executors — sampled every
/// 2 s by this node, with the Supervisor's decisions and their reasons.
#[utoipa::path(
    get,
    path = "/api/history",
    tag = "capacity",
    responses((status = 200, description = "The window of samples and decisions", body = Envelope<HistoryView>))
)]
pub async fn history(State(state): State<ApiState>) -> Result<Response, ApiError> {
    Ok(ok(StatusCode::OK, state.history.view()))
}

#[cfg(test)]
mod tests {
    use marie_protocol::PoolCapacity;
    use marie_protocol::capacity::ExecutorLoad;

    use super::*;

    fn report(used: u64) -> CapacityReport {
        CapacityReport::from_pools(vec![PoolCapacity {
            name: "burst".into(),
            capacity: 8,
            target: 12,
            used,
            available: 8 - used,
            holders: vec![],
        }])
    }

    fn states(queued: u64) -> Vec<PoolState> {
        let executor = |name: &str, draining| ExecutorLoad {
            name: name.into(),
            slots: 4,
            used: 0,
            draining,
        };
        vec![PoolState {
            name: "burst".into(),
            queued,
            executors: vec![
                executor("a", false),
                executor("b", false),
                executor("c", true),
            ],
            ..PoolState::default()
        }]
    }

    #[test]
    fn a_sample_reads_queue_slots_and_executors() {
        let history = History::new(BTreeMap::from([("burst".into(), 4)]));
        history.record(1_000, &report(3), &states(40));
        let view = history.view();
        assert_eq!(
            view.pools[0].samples,
            vec![PoolSample {
                at_ms: 1_000,
                pending: 40,
                slots_used: 3,
                slots_capacity: 8,
                slots_target: 12,
                executors: 2,
                executors_target: 3,
            }]
        );
        assert_eq!(view.pools[0].slots_per_executor, 4);
    }

    #[test]
    fn the_ring_keeps_the_window_and_at_most_its_length() {
        let history = History::new(BTreeMap::new());
        let step = u64::try_from(INTERVAL.as_millis()).expect("fits");
        let start = 10_000_000;
        for n in 0..(RING_LEN as u64 + 50) {
            history.record(start + n * step, &report(1), &states(0));
        }
        let samples = &history.view().pools[0].samples;
        assert_eq!(samples.len(), RING_LEN);
        let last = samples.last().expect("samples").at_ms;
        assert!(samples[0].at_ms >= last - window_ms());
        // A jump of the clock past the window leaves only the new sample.
        history.record(last + 2 * window_ms(), &report(1), &states(0));
        assert_eq!(history.view().pools[0].samples.len(), 1);
    }

    #[test]
    fn a_member_is_up_since_its_status_changed() {
        let history = History::new(BTreeMap::new());
        history.note_members(1, [("n1".to_owned(), "up".to_owned())]);
        history.note_members(5, [("n1".to_owned(), "up".to_owned())]);
        assert_eq!(history.since("n1", "up"), Some(1));
        history.note_members(9, [("n1".to_owned(), "gone".to_owned())]);
        assert_eq!(history.since("n1", "gone"), Some(9));
        assert_eq!(history.since("n1", "up"), None);
    }
}
