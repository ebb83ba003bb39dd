//! The HTTP port of an executor node: `GET /healthz`, `GET /readyz` and the `public`
//! routes (`/metrics`); no job API, no token.
//!
//! An executor node is ready while every executor it runs is registered with the
//! CapacityManager and takes work: not before they registered, not while one drains (the
//! Supervisor scaling it down, or the node shutting down), and not while the
//! CapacityManager is out of reach. Nothing fronts executor pods, so readiness here
//! tells rollouts and autoscalers which pods serve, and never latches.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use marie_actors::lookup;
use marie_protocol::messages::{CapacityMsg, PoolStates, PoolStatesQuery};

use super::error::ApiError;
use super::health::{Draining, READY_TIMEOUT, healthz, ready};

/// What `/readyz` of an executor node checks.
#[derive(Clone)]
struct ProbeState {
    draining: Draining,
    executors: Vec<String>,
}

/// The routes of an executor node running `executors`, `draining` when it shuts down.
pub fn executor_probes(draining: Draining, executors: Vec<String>, public: Router) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ProbeState {
            draining,
            executors,
        })
        .merge(public)
}

async fn readyz(State(state): State<ProbeState>) -> Result<Response, ApiError> {
    state.draining.check()?;
    let manager = lookup::capacity_manager().ok_or_else(|| {
        ApiError::NotReady("the CapacityManager (server node) is not connected".into())
    })?;
    let states = manager
        .call(
            |reply| CapacityMsg::PoolStates(PoolStatesQuery, reply),
            Some(READY_TIMEOUT),
        )
        .await
        .ok()
        .and_then(|answer| answer.success_or(()).ok())
        .ok_or_else(|| ApiError::NotReady("the CapacityManager does not answer".into()))?;
    executors_take_work(&state.executors, &states).map_err(ApiError::NotReady)?;
    Ok(ready())
}

/// Whether each of `executors` is registered and not draining, as the CapacityManager
/// reports; else why not.
fn executors_take_work(executors: &[String], states: &PoolStates) -> Result<(), String> {
    if executors.is_empty() {
        return Err("this node runs no executor".into());
    }
    for name in executors {
        let found = states
            .0
            .iter()
            .flat_map(|pool| &pool.executors)
            .find(|e| &e.name == name);
        match found {
            None => return Err(format!("executor {name} has not registered yet")),
            Some(e) if e.draining => return Err(format!("executor {name} is draining")),
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use marie_protocol::capacity::{ExecutorLoad, PoolState};

    use super::*;

    fn states(executors: &[(&str, bool)]) -> PoolStates {
        PoolStates(vec![PoolState {
            name: "cpu".into(),
            executors: executors
                .iter()
                .map(|(name, draining)| ExecutorLoad {
                    name: (*name).into(),
                    slots: 4,
                    draining: *draining,
                    ..ExecutorLoad::default()
                })
                .collect(),
            ..PoolState::default()
        }])
    }

    #[test]
    fn ready_once_every_executor_registered_and_not_while_one_drains() {
        let mine = vec!["n-cpu-1".to_string(), "n-cpu-2".to_string()];
        let err = executors_take_work(&mine, &states(&[("n-cpu-1", false)])).unwrap_err();
        assert!(err.contains("n-cpu-2 has not registered"), "{err}");
        let all = states(&[("n-cpu-1", false), ("n-cpu-2", false), ("other", true)]);
        assert_eq!(executors_take_work(&mine, &all), Ok(()));
        let draining = states(&[("n-cpu-1", false), ("n-cpu-2", true)]);
        let err = executors_take_work(&mine, &draining).unwrap_err();
        assert!(err.contains("n-cpu-2 is draining"), "{err}");
        assert!(executors_take_work(&[], &all).is_err());
    }
}
