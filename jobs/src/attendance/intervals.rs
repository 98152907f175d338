//! Half-open intervals `[start, end)`: clipping to a session and merging overlaps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    /// The part of `self` inside `[from, to)` (`to = None`: unbounded), if any.
    pub fn clip(self, from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> Option<Interval> {
        let start = self.start.max(from);
        let end = to.map_or(self.end, |to| self.end.min(to));
        (start < end).then_some(Interval { start, end })
    }

    pub fn seconds(self) -> i64 {
        (self.end - self.start).num_seconds()
    }
}

/// Sorts and merges: overlapping or touching intervals become one, so a moment is in at most
/// one interval. Empty intervals are dropped.
pub fn merge(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.retain(|i| i.start < i.end);
    intervals.sort_unstable();
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for next in intervals {
        match merged.last_mut() {
            Some(last) if next.start <= last.end => last.end = last.end.max(next.end),
            _ => merged.push(next),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + minute * 60, 0).expect("valid")
    }

    fn iv(a: i64, b: i64) -> Interval {
        Interval {
            start: at(a),
            end: at(b),
        }
    }

    #[test]
    fn merges_overlapping_touching_and_nested() {
        let merged = merge(vec![
            iv(30, 40),
            iv(0, 10),
            iv(5, 15),
            iv(15, 20),
            iv(32, 35),
            iv(50, 50),
        ]);
        assert_eq!(merged, vec![iv(0, 20), iv(30, 40)]);
    }

    #[test]
    fn merging_twice_changes_nothing() {
        let once = merge(vec![iv(0, 10), iv(5, 30), iv(40, 45)]);
        let mut again = once.clone();
        again.extend(once.iter().copied());
        assert_eq!(merge(again), once);
    }

    #[test]
    fn clips_to_the_session() {
        assert_eq!(iv(0, 10).clip(at(5), Some(at(8))), Some(iv(5, 8)));
        assert_eq!(iv(0, 10).clip(at(10), None), None);
        assert_eq!(iv(0, 10).clip(at(-5), None), Some(iv(0, 10)));
        assert_eq!(iv(0, 10).clip(at(0), Some(at(0))), None);
    }
}
