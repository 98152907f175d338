//! Exact medians of sliding windows of days, equal to PostgreSQL's
//! `round(percentile_cont(0.5) WITHIN GROUP (ORDER BY v))`.
//!
//! A rolling DORA median sorted in SQL reads every value once per window that contains it
//! (28 + 7 times); here each value enters and leaves an order-statistic tree once, so a year of
//! windows costs about what one sort of the year costs.

/// `percentile_cont(0.5)` of a sorted slice, computed the way PostgreSQL does (the lower
/// middle value plus half the distance to the upper one); `None` when empty.
pub fn percentile_cont_sorted(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    Some(lerp(sorted[(n - 1) / 2], sorted[n / 2], n))
}

fn lerp(lo: f64, hi: f64, n: usize) -> f64 {
    // PostgreSQL: first_row = floor(0.5 * (n - 1)), second_row = ceil(...); equal rows return
    // the value itself, otherwise float8_lerp(lo, hi, 0.5).
    if n % 2 == 1 { lo } else { lo + (hi - lo) * 0.5 }
}

/// PostgreSQL's `round(float8)::bigint`: round half to even (`rint`).
pub fn round_pg(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// A Fenwick tree of counts over value ranks: insert, remove and k-th smallest in O(log n).
struct Ranks {
    tree: Vec<u32>,
    top: usize,
}

impl Ranks {
    fn new(n: usize) -> Self {
        Self {
            tree: vec![0; n + 1],
            top: if n == 0 { 0 } else { 1 << n.ilog2() },
        }
    }

    fn add(&mut self, rank: usize, insert: bool) {
        let mut i = rank + 1;
        while i < self.tree.len() {
            if insert {
                self.tree[i] += 1;
            } else {
                self.tree[i] -= 1;
            }
            i += i & i.wrapping_neg();
        }
    }

    /// The rank holding the k-th (0-based) smallest element present.
    fn kth(&self, mut k: u32) -> usize {
        let (mut pos, mut step) = (0, self.top);
        while step > 0 {
            let next = pos + step;
            if next < self.tree.len() && self.tree[next] <= k {
                pos = next;
                k -= self.tree[next];
            }
            step >>= 1;
        }
        pos
    }
}

/// The median and count of each window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub count: usize,
    /// Rounded like `round(percentile_cont(0.5))::bigint`; `None` for an empty window.
    pub median: Option<i64>,
}

/// For each of `targets` (ascending day numbers), the median of the `samples` whose day lies in
/// `(target - window, target]`. `samples` are `(day, value)` sorted by day.
pub fn rolling(samples: &[(i32, i64)], window: i32, targets: &[i32]) -> Vec<Window> {
    debug_assert!(samples.is_sorted_by_key(|s| s.0) && targets.is_sorted());
    let n = samples.len();
    // Rank of each sample in value order (ties by position, so every sample has its own slot).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by_key(|&i| (samples[i].1, i));
    let mut rank = vec![0; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    let value_at = |r: usize| samples[order[r]].1 as f64;
    let mut tree = Ranks::new(n);
    let (mut first, mut end) = (0, 0);
    targets
        .iter()
        .map(|&t| {
            while end < n && samples[end].0 <= t {
                tree.add(rank[end], true);
                end += 1;
            }
            while first < end && samples[first].0 <= t - window {
                tree.add(rank[first], false);
                first += 1;
            }
            let count = end - first;
            let median = (count > 0).then(|| {
                let c = u32::try_from(count).unwrap_or(u32::MAX);
                let lo = value_at(tree.kth((c - 1) / 2));
                let hi = value_at(tree.kth(c / 2));
                round_pg(lerp(lo, hi, count))
            });
            Window { count, median }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(samples: &[(i32, i64)], window: i32, t: i32) -> Window {
        let mut v: Vec<f64> = samples
            .iter()
            .filter(|s| s.0 <= t && s.0 > t - window)
            .map(|s| s.1 as f64)
            .collect();
        v.sort_by(f64::total_cmp);
        Window {
            count: v.len(),
            median: percentile_cont_sorted(&v).map(round_pg),
        }
    }

    #[test]
    fn matches_a_sort_per_window_on_pseudo_random_data() {
        // A small LCG: deterministic, with duplicates, gaps between days and empty windows.
        let mut x: u64 = 42;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        for round in 0..50 {
            let mut samples: Vec<(i32, i64)> = (0..next(300))
                .map(|_| {
                    (
                        next(120) as i32,
                        next(if round % 2 == 0 { 10 } else { 1_000_000 }) as i64,
                    )
                })
                .collect();
            samples.sort_by_key(|s| s.0);
            let mut targets: Vec<i32> = (0..next(60)).map(|_| next(160) as i32 - 20).collect();
            targets.sort_unstable();
            for window in [1, 7, 28] {
                let got = rolling(&samples, window, &targets);
                for (t, g) in targets.iter().zip(&got) {
                    assert_eq!(
                        *g,
                        naive(&samples, window, *t),
                        "window {window} target {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn even_counts_interpolate_and_round_half_to_even() {
        // Medians 2.5 → 2 and 3.5 → 4, as PostgreSQL's round(float8) does.
        let w = rolling(&[(0, 1), (0, 4), (1, 3), (1, 4)], 1, &[0, 1]);
        assert_eq!(
            w[0],
            Window {
                count: 2,
                median: Some(2)
            }
        );
        assert_eq!(
            w[1],
            Window {
                count: 2,
                median: Some(4)
            }
        );
        assert_eq!(
            rolling(&[], 7, &[3]),
            vec![Window {
                count: 0,
                median: None
            }]
        );
        assert_eq!(percentile_cont_sorted(&[0.0, 1.0, 1.0, 2.0]), Some(1.0));
    }
}
