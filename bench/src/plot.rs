//! Latency-by-percentile charts as SVG (`plotters`): the x axis in "nines" (90%, 99%,
//! 99.9%, … evenly spaced, as HdrHistogram's plotter draws them), the y axis logarithmic in
//! microseconds, one line a run, so a cluster's curve sits beside its floor's.

use crate::hgrm::Point;
use plotters::prelude::*;
use std::path::Path;

/// The deepest percentile drawn: 99.9999% (a run rarely has more samples than that).
const NINES_MAX: f64 = 6.0;

fn nines(percentile: f64) -> f64 {
    let rest = 1.0 - percentile / 100.0;
    if rest <= 0.0 { NINES_MAX } else { (-rest.log10()).min(NINES_MAX) }
}

fn percentile_label(nines: f64) -> String {
    let percentile = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines.round() as usize).saturating_sub(2);
    format!("{percentile:.decimals$}%")
}

/// Draws every run (a label and its distribution) on one chart at `path`.
pub fn draw(path: &Path, title: &str, runs: &[(String, Vec<Point>)]) -> Result<(), String> {
    if runs.iter().all(|(_, points)| points.is_empty()) {
        return Err("there is nothing to plot: every run is empty".into());
    }
    let all = runs.iter().flat_map(|(_, points)| points.iter());
    let x_max = all.clone().map(|p| nines(p.percentile)).fold(1.0f64, f64::max).ceil();
    let y_max = all.clone().map(|p| p.value_us).fold(1.0f64, f64::max) * 1.5;
    let y_min = all.map(|p| p.value_us).fold(f64::INFINITY, f64::min).clamp(0.1, 1.0e6) / 1.5;
    let failed = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency, µs (from intended send: coordinated omission corrected)")
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| failed(&e))?;
    for (index, (label, points)) in runs.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        let line = points.iter().map(|p| (nines(p.percentile), p.value_us.max(y_min)));
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(|e| failed(&e))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_map_to_nines_and_back_to_labels() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert_eq!(nines(100.0), NINES_MAX);
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
    }

    #[test]
    fn two_runs_draw_into_one_svg_with_both_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.svg");
        let run = |scale: f64| {
            let point = |i: u32| Point {
                percentile: 100.0 - 100.0 * 10f64.powf(-f64::from(i) / 15.0),
                value_us: scale * f64::from(1 + i),
            };
            (0..=60).map(point).collect()
        };
        draw(&path, "test", &[("floor".into(), run(1.0)), ("cluster".into(), run(3.0))]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("floor") && svg.contains("cluster") && svg.contains("99.9%"));
        assert!(draw(&path, "empty", &[("none".into(), vec![])]).is_err());
    }
}
