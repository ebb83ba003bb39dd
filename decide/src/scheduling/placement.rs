//! Which executor of a pool gets the next job.

/// What placement needs to know of one executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacementCandidate<'a> {
    /// The executor's name.
    pub name: &'a str,
    /// Slots it offers.
    pub slots: u32,
    /// Slots running a job.
    pub used: u32,
    /// True while draining: it takes no new job.
    pub draining: bool,
}

/// Picks the executor with the most free slots, so work spreads over the pool; ties go
/// to the smallest name, so placement is deterministic. `None` when no executor that
/// takes work has a free slot — the job stays queued and the slots stay the credits.
pub fn choose_executor<'a>(
    executors: impl IntoIterator<Item = PlacementCandidate<'a>>,
) -> Option<&'a str> {
    executors
        .into_iter()
        .filter(|e| !e.draining && e.used < e.slots)
        .max_by(|a, b| {
            (a.slots - a.used)
                .cmp(&(b.slots - b.used))
                .then_with(|| b.name.cmp(a.name))
        })
        .map(|e| e.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, slots: u32, used: u32, draining: bool) -> PlacementCandidate<'_> {
        PlacementCandidate {
            name,
            slots,
            used,
            draining,
        }
    }

    #[test]
    fn the_least_busy_executor_wins() {
        let pick = choose_executor([load("a", 4, 3, false), load("b", 4, 1, false)]);
        assert_eq!(pick, Some("b"));
    }

    #[test]
    fn ties_go_to_the_smallest_name() {
        let pick = choose_executor([load("b", 2, 0, false), load("a", 2, 0, false)]);
        assert_eq!(pick, Some("a"));
    }

    #[test]
    fn full_and_draining_executors_get_nothing() {
        let pick = choose_executor([load("a", 2, 2, false), load("b", 8, 0, true)]);
        assert_eq!(pick, None);
    }
}
