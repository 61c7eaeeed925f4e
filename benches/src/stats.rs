//! The few statistics the bench reports: nearest-rank percentiles of latencies and the
//! median across rounds.

/// Nearest-rank percentile `p` (0 < p <= 100) of `sorted` (ascending); 0 when empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median of `values` (mean of the two middle ones for an even count); `None` when empty
/// or when a value is NaN.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Summary of one timed run: throughput over the wall-clock window and latency
/// percentiles over every operation of every thread.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunStats {
    /// Operations completed.
    pub ops: u64,
    /// Wall-clock window, from the common start to the last thread's end.
    pub wall_s: f64,
    /// `ops / wall_s`.
    pub ops_per_s: f64,
    /// Median latency, nanoseconds.
    pub p50_ns: u64,
    /// 99th-percentile latency, nanoseconds.
    pub p99_ns: u64,
}

impl RunStats {
    /// Summarises `latencies_ns` (reordered in place) completed in `wall_s` seconds.
    pub fn from_latencies(latencies_ns: &mut [u64], wall_s: f64) -> RunStats {
        latencies_ns.sort_unstable();
        let ops = latencies_ns.len() as u64;
        RunStats {
            ops,
            wall_s,
            ops_per_s: if wall_s > 0.0 {
                ops as f64 / wall_s
            } else {
                0.0
            },
            p50_ns: percentile(latencies_ns, 50.0),
            p99_ns: percentile(latencies_ns, 99.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[1, 2, 3], 50.0), 2);
        assert_eq!(percentile(&[1, 2, 3, 1000], 99.0), 1000);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn run_stats_from_unsorted_latencies() {
        let mut lat = vec![30, 10, 20, 40];
        let s = RunStats::from_latencies(&mut lat, 2.0);
        assert_eq!(s.ops, 4);
        assert_eq!(s.ops_per_s, 2.0);
        assert_eq!(s.p50_ns, 20);
        assert_eq!(s.p99_ns, 40);
    }
}
