//! The latency chart: open-loop percentiles per system, one panel per client
//! count and payload, drawn as SVG with `plotters`.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;
use crate::run::System;
use crate::wire::BoxError;

/// Percentiles on the x axis as "nines": p50 is 0.3, p90 is 1, p99 is 2, p99.9 is 3.
fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).log10()
}

fn nines_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    if p < 99.0 {
        format!("p{p:.0}")
    } else {
        let text = format!("p{p:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn color(system: System) -> RGBColor {
    match system {
        System::Floor => RGBColor(0, 0, 0),
        System::Bare => RGBColor(127, 127, 127),
        System::SenteJson => RGBColor(31, 119, 180),
        System::SentePostcard => RGBColor(44, 160, 44),
        System::SenteJsonHistory => RGBColor(148, 103, 189),
        System::SentePostcardHistory => RGBColor(140, 86, 75),
        System::Socketioxide => RGBColor(255, 127, 14),
        System::SocketIoNode => RGBColor(214, 39, 40),
        System::EchoExample => RGBColor(23, 190, 207),
    }
}

/// Draws the chart of `report`'s open-loop latencies to `path`.
pub(crate) fn latency_chart(report: &Report, path: &Path) -> Result<(), BoxError> {
    let mut cells: Vec<(usize, usize)> = Vec::new();
    for cell in &report.open {
        if !cells.contains(&(cell.clients, cell.payload)) {
            cells.push((cell.clients, cell.payload));
        }
    }
    if cells.is_empty() {
        return Ok(());
    }
    let mut payloads: Vec<usize> = cells.iter().map(|c| c.1).collect();
    payloads.sort_unstable();
    payloads.dedup();
    let mut clients: Vec<usize> = cells.iter().map(|c| c.0).collect();
    clients.sort_unstable();
    clients.dedup();
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    let (cols, rows) = (clients.len(), payloads.len());
    let size = (
        u32::try_from(cols).unwrap_or(1) * 420,
        u32::try_from(rows).unwrap_or(1) * 330 + 50,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "Request/reply latency at a fixed offered rate (open loop), µs, log scale",
        ("sans-serif", 20),
    )?;
    let panels = root.split_evenly((rows, cols));
    let x_max = nines(99.99) + 0.2;
    for (index, panel) in panels.iter().enumerate() {
        let (row, col) = (index / cols, index % cols);
        let (client_count, payload) = (clients[col], payloads[row]);
        let series: Vec<(System, Vec<(f64, f64)>)> = System::ALL
            .into_iter()
            .filter_map(|system| {
                let cell = report.open.iter().find(|c| {
                    c.system == system && c.clients == client_count && c.payload == payload
                })?;
                let points: Vec<(f64, f64)> = cell
                    .latency
                    .percentiles_us
                    .iter()
                    .filter(|(p, _)| *p < 100.0)
                    .map(|(p, v)| (nines(*p), v.max(1.0)))
                    .collect();
                (!points.is_empty()).then_some((system, points))
            })
            .collect();
        let y_min = series
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
            .fold(f64::MAX, f64::min)
            .min(1e6);
        let y_max = series
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
            .fold(1.0, f64::max);
        let offered = report
            .open
            .iter()
            .find(|c| c.clients == client_count && c.payload == payload)
            .map_or(0.0, |c| c.offered_per_s);
        let payload_text = if payload >= 1024 {
            format!("{} KiB", payload / 1024)
        } else {
            format!("{payload} B")
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{client_count} client{}, {payload_text}, {offered:.0} req/s",
                    if client_count == 1 { "" } else { "s" }
                ),
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(52)
            .build_cartesian_2d(
                0.0..x_max,
                ((y_min * 0.8).max(1.0)..y_max * 1.25).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x| {
                if *x < 0.25 {
                    String::new()
                } else {
                    nines_label(*x)
                }
            })
            .y_label_formatter(&|y| {
                if *y >= 1000.0 {
                    format!("{:.0} ms", y / 1000.0)
                } else {
                    format!("{y:.0} µs")
                }
            })
            .draw()?;
        for (system, points) in series {
            let style = color(system).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points.clone(), style))?
                .label(system.label())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color(system).filled())),
            )?;
        }
        if index == 0 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_axis_reads_as_nines() {
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert_eq!(nines_label(nines(50.0)), "p50");
        assert_eq!(nines_label(nines(99.9)), "p99.9");
        assert_eq!(nines_label(2.0), "p99");
    }
}
