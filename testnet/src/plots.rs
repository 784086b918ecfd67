//! The report's SVG plots, drawn with plotters' SVG backend: the propagation CDF, convergence
//! over time, and acceptance throughput over time.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::report::Report;

const SIZE: (u32, u32) = (800, 480);

/// A named line and its colour.
type Series = (String, Vec<(f64, f64)>, RGBColor);

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw a plot: {e}")
}

/// Sorted values as CDF points (value, share at or below).
fn cdf_points(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, (i + 1) as f64 / n))
        .collect()
}

/// Propagation CDF: per-node latency and time-until-all, entries and revocations.
///
/// # Errors
///
/// If plotters fails.
pub fn cdf(r: &Report) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut series: Vec<Series> = Vec::new();
        for (name, p, colour) in [
            ("entries", &r.propagation, BLUE),
            ("revocations", &r.revocations, RED),
        ] {
            if p.per_node_ms.is_empty() {
                continue;
            }
            series.push((
                format!("{name}: per node"),
                cdf_points(&p.per_node_ms),
                colour,
            ));
            let mut all: Vec<f64> = p.records.iter().filter_map(|x| x.until_all_ms).collect();
            all.sort_by(f64::total_cmp);
            if !all.is_empty() {
                series.push((
                    format!("{name}: until every node"),
                    cdf_points(&all),
                    if colour == BLUE { CYAN } else { MAGENTA },
                ));
            }
        }
        let xmax = series
            .iter()
            .flat_map(|(_, p, _)| p.iter().map(|(x, _)| *x))
            .fold(1.0f64, f64::max)
            * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Propagation CDF: {} ({} nodes)", r.scenario, r.nodes),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..xmax, 0f64..1.0f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("ms after publishing")
            .y_desc("share of arrivals")
            .draw()
            .map_err(err)?;
        for (name, points, colour) in series {
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Convergence: (node, entry) holdings over time against what is expected so far, with the
/// steps marked.
///
/// # Errors
///
/// If plotters fails.
pub fn convergence(r: &Report) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let xmax = (r.wall_ms / 1000.0).max(0.1);
        let ymax = r
            .timeline
            .iter()
            .map(|(_, h, e)| (*h).max(*e))
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Convergence over time: {}", r.scenario),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("s after start")
            .y_desc("(node, entry) pairs")
            .draw()
            .map_err(err)?;
        let held: Vec<(f64, f64)> = r
            .timeline
            .iter()
            .map(|(t, h, _)| (t / 1000.0, *h as f64))
            .collect();
        let expected: Vec<(f64, f64)> = r
            .timeline
            .iter()
            .map(|(t, _, e)| (t / 1000.0, *e as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(expected, BLACK.stroke_width(1)))
            .map_err(err)?
            .label("published x (nodes - 1)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        chart
            .draw_series(LineSeries::new(held, BLUE.stroke_width(2)))
            .map_err(err)?
            .label("accepted")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        for s in &r.steps {
            let x = s.at_ms / 1000.0;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.0), (x, ymax)],
                    RGBColor(180, 180, 180),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    s.action.clone(),
                    (x, ymax * 0.97),
                    ("sans-serif", 11),
                )))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Throughput: entry acceptances per second across the network, in bins.
///
/// # Errors
///
/// If plotters fails.
pub fn throughput(r: &Report) -> Result<String> {
    let total_s = (r.wall_ms / 1000.0).max(0.1);
    let bins = 100usize;
    let width = total_s / bins as f64;
    let mut counts = vec![0f64; bins];
    let mut last = 0usize;
    for (t, h, _) in &r.timeline {
        let b = ((t / 1000.0 / width) as usize).min(bins - 1);
        counts[b] += h.saturating_sub(last) as f64;
        last = *h;
    }
    let rate: Vec<(f64, f64)> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| (i as f64 * width, c / width))
        .collect();
    let ymax = rate.iter().map(|(_, v)| *v).fold(1.0, f64::max) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Entry acceptances per second: {}", r.scenario),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..total_s, 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("s after start")
            .y_desc("acceptances / s, all nodes")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(rate.iter().map(|(x, y)| {
                Rectangle::new([(*x, 0.0), (*x + width * 0.9, *y)], BLUE.mix(0.6).filled())
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
