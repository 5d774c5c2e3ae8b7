//! HdrHistogram's percentile distribution text (`.hgrm`, what `outputPercentileDistribution`
//! writes and HdrHistogram's plotter reads), values in microseconds; and reading it back, so
//! runs saved by `ordo bench --out` can be drawn on one chart later.

use hdrhistogram::Histogram;
use std::io::{self, Write};

/// Ticks per half the distance to 100%, as HdrHistogram's own output uses.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Writes `histogram` (nanoseconds) as a percentile distribution in microseconds.
pub fn write(histogram: &Histogram<u64>, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    let mut total = 0u64;
    for step in histogram.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += step.count_since_last_iteration();
        let value_us = step.value_iterated_to() as f64 / 1000.0;
        let quantile = step.quantile_iterated_to();
        if quantile < 1.0 {
            writeln!(out, "{value_us:12.3} {quantile:2.12} {total:10} {:14.2}", 1.0 / (1.0 - quantile))?;
        } else {
            writeln!(out, "{value_us:12.3} {quantile:2.12} {total:10}")?;
        }
    }
    writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        histogram.mean() / 1000.0,
        histogram.stdev() / 1000.0
    )?;
    writeln!(out, "#[Max     = {:12.3}, Total count    = {:12}]", histogram.max() as f64 / 1000.0, histogram.len())?;
    writeln!(out, "#[Buckets = {:12}, SubBuckets     = {:12}]", histogram.buckets(), histogram.distinct_values())?;
    Ok(())
}

/// One point of a distribution: the percentile (0..=100) and its latency in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub percentile: f64,
    pub value_us: f64,
}

/// Reads the points of a percentile distribution; names the first line that is not one.
pub fn read(text: &str) -> Result<Vec<Point>, String> {
    let mut points = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || line.starts_with('#') || fields[0] == "Value" {
            continue;
        }
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        match (number(0), number(1)) {
            (Some(value_us), Some(quantile)) if (0.0..=1.0).contains(&quantile) => {
                points.push(Point { percentile: quantile * 100.0, value_us })
            }
            _ => return Err(format!("line {} is not a percentile distribution line: {line:?}", index + 1)),
        }
    }
    if points.is_empty() {
        return Err("it holds no percentile lines".into());
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_distribution_reads_back_with_its_percentiles() {
        let mut histogram = crate::latency::histogram();
        for us in 1..=10_000u64 {
            histogram.record(us * 1000).unwrap();
        }
        let mut text = Vec::new();
        write(&histogram, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("Total count    =        10000]"), "{text}");
        let points = read(&text).unwrap();
        assert_eq!(points.first().unwrap().percentile, 0.0);
        assert_eq!(points.last().unwrap().percentile, 100.0);
        assert!(points.windows(2).all(|w| w[0].percentile <= w[1].percentile && w[0].value_us <= w[1].value_us));
        let p99 = points.iter().find(|p| p.percentile >= 99.0).unwrap();
        assert!((p99.value_us - 9900.0).abs() < 20.0, "{p99:?}");
        let bad = read("     Value  Percentile\n  12.5 banana 3\n").unwrap_err();
        assert!(bad.contains("line 2"), "{bad}");
    }
}
