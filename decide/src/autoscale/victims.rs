//! Which executors go first when a pool shrinks.

use std::collections::BTreeMap;

use marie_protocol::ExecutorLoad;

/// One executor to take away when a pool shrinks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Victim {
    /// Not registered yet: cancel its start.
    Starting(String),
    /// Registered: drain it, then release it.
    Ready(String),
}

/// Picks `count` executors to take away: those still starting first (they run
/// nothing), then idle ones, then the least busy; ties go to the newest name, so
/// long-lived executors stay. Draining executors are already going and are not picked.
pub(super) fn choose_victims(
    starting: &BTreeMap<String, u64>,
    executors: &[ExecutorLoad],
    count: usize,
) -> Vec<Victim> {
    let mut victims: Vec<Victim> = starting
        .keys()
        .rev()
        .take(count)
        .cloned()
        .map(Victim::Starting)
        .collect();
    let mut ready: Vec<&ExecutorLoad> = executors.iter().filter(|e| !e.draining).collect();
    ready.sort_by(|a, b| a.used.cmp(&b.used).then_with(|| b.name.cmp(&a.name)));
    victims.extend(
        ready
            .into_iter()
            .take(count - victims.len())
            .map(|e| Victim::Ready(e.name.clone())),
    );
    victims
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An executor of 4 slots as the CapacityManager reports it.
    pub(in crate::autoscale) fn load(name: &str, used: u32, draining: bool) -> ExecutorLoad {
        ExecutorLoad {
            name: name.into(),
            slots: 4,
            used,
            draining,
        }
    }

    #[test]
    fn starting_executors_go_first_then_idle_then_least_busy() {
        let starting = BTreeMap::from([("s1".to_string(), 0)]);
        let executors = [
            load("a", 3, false),
            load("b", 0, false),
            load("c", 1, false),
            load("d", 0, true),
        ];
        let victims = choose_victims(&starting, &executors, 3);
        assert_eq!(
            victims,
            vec![
                Victim::Starting("s1".into()),
                Victim::Ready("b".into()),
                Victim::Ready("c".into())
            ]
        );
    }
}
