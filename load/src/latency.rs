//! Latency percentiles from an HdrHistogram, in microseconds.

use hdrhistogram::Histogram;

/// The figures `ordo bench` prints (CLI.md's JSON field names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyReport {
    pub sent: u64,
    pub completed: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
}

/// A histogram of nanoseconds, 1 ns to 60 s, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

impl LatencyReport {
    pub fn from_histogram(histogram: &Histogram<u64>, sent: u64) -> Self {
        let us = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        LatencyReport {
            sent,
            completed: histogram.len(),
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p999_us: us(0.999),
            p9999_us: us(0.9999),
            max_us: histogram.max() as f64 / 1000.0,
        }
    }

    /// One JSON object, CLI.md's field names.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"sent\": {}, \"completed\": {}, \"p50_us\": {:.1}, \"p90_us\": {:.1}, \"p99_us\": {:.1}, \"p999_us\": {:.1}, \"p9999_us\": {:.1}, \"max_us\": {:.1}}}",
            self.sent, self.completed, self.p50_us, self.p90_us, self.p99_us, self.p999_us, self.p9999_us, self.max_us
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut h = histogram();
        for ns in 1..=1000u64 {
            h.record(ns * 1000).unwrap();
        }
        let report = LatencyReport::from_histogram(&h, 1001);
        assert_eq!((report.sent, report.completed), (1001, 1000));
        assert!((report.p50_us - 500.0).abs() < 1.0, "{report:?}");
        assert!((report.p99_us - 990.0).abs() < 1.0, "{report:?}");
        assert!((report.max_us - 1000.0).abs() < 1.0, "{report:?}");
        assert!(report.to_json().contains("\"p999_us\": "));
    }
}
