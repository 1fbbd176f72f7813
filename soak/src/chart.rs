//! The soak's curves as SVG: the server's resident memory, its open files
//! and the request latency (p50, p99), window by window.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Run;
use crate::window::Latencies;

/// Anything that went wrong drawing the chart.
pub type ChartError = Box<dyn std::error::Error + Send + Sync>;

/// One curve: a name, a color and its points (minutes, value).
type Curve = (&'static str, RGBColor, Vec<(f64, f64)>);

/// Draws `run`'s curves to `path`.
pub fn draw(run: &Run, path: &Path) -> Result<(), ChartError> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    let minutes = |s: f64| s / 60.0;
    #[allow(clippy::cast_precision_loss)]
    let at = |index: usize| ((index + 1) as u64 * run.settings.window_s) as f64;
    #[allow(clippy::cast_precision_loss)]
    let rss: Vec<(f64, f64)> = run
        .samples
        .iter()
        .map(|s| (minutes(s.at_s), s.rss as f64 / (1024.0 * 1024.0)))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let files: Vec<(f64, f64)> = run
        .samples
        .iter()
        .map(|s| (minutes(s.at_s), s.open_files as f64))
        .collect();
    let percentile = |p: f64| -> Vec<(f64, f64)> {
        run.windows
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                Latencies::from_counts(&w.latency_us)
                    .ms_at(p)
                    .map(|v| (minutes(at(i)), v))
            })
            .collect()
    };
    let panels: [(&str, Vec<Curve>); 3] = [
        (
            "server resident memory, MiB",
            vec![("RSS", RGBColor(31, 119, 180), rss)],
        ),
        (
            "server open files",
            vec![("open files", RGBColor(44, 160, 44), files)],
        ),
        (
            "request latency, ms",
            vec![
                ("p50", RGBColor(120, 120, 120), percentile(50.0)),
                ("p99", RGBColor(214, 39, 40), percentile(99.0)),
            ],
        ),
    ];
    #[allow(clippy::cast_precision_loss)]
    let x_max = minutes(run.settings.seconds as f64).max(0.1);
    #[allow(clippy::cast_precision_loss)]
    let warmup = minutes(run.settings.warmup_s as f64);
    let root = SVGBackend::new(path, (900, 840)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "Soak: {} connections with churn, {} min (dashed: end of warm-up)",
            run.settings.conns,
            run.settings.seconds / 60
        ),
        ("sans-serif", 20),
    )?;
    for (area, (title, curves)) in root.split_evenly((3, 1)).iter().zip(panels) {
        let y_max = curves
            .iter()
            .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .x_labels(11)
            .y_labels(5)
            .draw()?;
        chart.draw_series(DashedLineSeries::new(
            [(warmup, 0.0), (warmup, y_max)],
            6,
            4,
            BLACK.mix(0.4).stroke_width(1),
        ))?;
        for (name, color, points) in curves {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
