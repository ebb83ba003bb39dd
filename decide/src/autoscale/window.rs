//! Stabilisation windows: the highest (or lowest) recommendation of the last few
//! seconds, kept in amortised constant time per tick.

use std::collections::VecDeque;

/// Which extreme a [`Window`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The highest value of the window (scale-down stabilisation).
    Highest,
    /// The lowest value of the window (scale-up stabilisation).
    Lowest,
}

/// The highest or lowest value pushed within the last `length_ms` (strictly later
/// than `now - length_ms`, as the HPA counts), the newest value always included.
///
/// A monotonic queue: values that can never be the answer again (an older value
/// beaten by a newer one) are dropped as soon as the newer one arrives.
#[derive(Clone, Debug)]
pub struct Window {
    keep: Keep,
    length_ms: u64,
    entries: VecDeque<(u64, u32)>,
}

impl Window {
    /// An empty window of `length_ms` keeping the given extreme.
    pub fn new(keep: Keep, length_ms: u64) -> Self {
        Window {
            keep,
            length_ms,
            entries: VecDeque::new(),
        }
    }

    /// Adds `value` seen at `now_ms` and returns the extreme of the window,
    /// `value` included.
    pub fn push(&mut self, now_ms: u64, value: u32) -> u32 {
        self.push_within(now_ms, value, self.length_ms)
    }

    /// As [`Window::push`], with the window stretched to `length_ms` for this push
    /// (never shorter than the window's own length).
    pub fn push_within(&mut self, now_ms: u64, value: u32, length_ms: u64) -> u32 {
        let length_ms = length_ms.max(self.length_ms);
        while let Some(&(_, last)) = self.entries.back() {
            let beaten = match self.keep {
                Keep::Highest => last <= value,
                Keep::Lowest => last >= value,
            };
            if !beaten {
                break;
            }
            self.entries.pop_back();
        }
        self.entries.push_back((now_ms, value));
        if let Some(cutoff) = now_ms.checked_sub(length_ms) {
            while let Some(&(at, _)) = self.entries.front() {
                if at > cutoff || self.entries.len() == 1 {
                    break;
                }
                self.entries.pop_front();
            }
        }
        self.entries.front().map_or(value, |&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_of_the_window() {
        let mut window = Window::new(Keep::Highest, 10_000);
        assert_eq!(window.push(0, 5), 5);
        assert_eq!(window.push(1_000, 3), 5);
        assert_eq!(window.push(9_000, 4), 5);
        assert_eq!(window.push(10_500, 2), 4);
        assert_eq!(window.push(19_500, 1), 2);
        assert_eq!(window.push(30_000, 1), 1);
    }

    #[test]
    fn keeps_the_lowest_of_the_window() {
        let mut window = Window::new(Keep::Lowest, 5_000);
        assert_eq!(window.push(0, 2), 2);
        assert_eq!(window.push(1_000, 8), 2);
        assert_eq!(window.push(6_000, 9), 9);
        assert_eq!(window.push(7_000, 3), 3);
    }

    #[test]
    fn a_stretched_window_remembers_longer() {
        let mut window = Window::new(Keep::Highest, 10_000);
        assert_eq!(window.push(0, 5), 5);
        assert_eq!(window.push_within(15_000, 1, 20_000), 5);
        assert_eq!(window.push_within(25_000, 1, 20_000), 1);
    }

    #[test]
    fn a_zero_window_is_the_value_itself() {
        let mut window = Window::new(Keep::Highest, 0);
        assert_eq!(window.push(0, 7), 7);
        assert_eq!(window.push(0, 3), 3);
        assert_eq!(window.push(1, 2), 2);
    }
}
