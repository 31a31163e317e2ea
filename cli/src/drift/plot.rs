//! SVG figures of the drift experiments (same style as the benchmark plot). Every title says
//! that these are CPU emulations of GPU reduction orders.

use super::{reduction_order, run_to_run, ULP_BINS};
use batchsample::error::{Result, SampleError};
use plotters::prelude::*;
use std::path::Path;

const PALETTE: [RGBColor; 11] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
];

/// The title of experiment 1's figure.
pub const REDUCTION_ORDER_TITLE: &str =
    "Experiment 1: reduction order vs exact arithmetic (CPU emulation of GPU orders, no GPU used)";
/// The title of experiment 3's figure.
pub const RUN_TO_RUN_TITLE: &str =
    "Experiment 3: run-to-run drift, float atomics vs fixed orders (CPU emulation, no GPU used)";

/// Experiment 1: the ULP histogram per order, and every inverse-CDF flip's exact boundary gap
/// against the order's error there (a flip below the diagonal would be unexplained).
pub fn write_reduction_order_svg(path: &Path, rep: &reduction_order::Report) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| SampleError::file(path, e);
    let subtitle = format!(
        "{} rows x {} vocab, T = {}, {} draws/row; {}",
        rep.rows, rep.vocab, rep.setup.temperature, rep.setup.draws, rep.source
    );
    let body = crate::svg::titled_page(path, (1400, 620), REDUCTION_ORDER_TITLE, 20, &subtitle)?;
    let (left, right) = body.split_horizontally(760);

    // Left: fraction of probabilities per ULP bin, one line per order.
    let total = rep
        .orders
        .iter()
        .map(|o| o.probabilities)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let floor = 0.5 / total;
    let mut chart = ChartBuilder::on(&left)
        .caption(
            "ULP distance of f32 probabilities w/Z from exact (0 drawn at the bottom)",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..6.5f64, (floor..1.5f64).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_labels(7)
        .x_label_formatter(&|x| {
            let k = x.round();
            if (x - k).abs() < 1e-6 && (0.0..7.0).contains(&k) {
                ULP_BINS[k as usize].to_string()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .x_desc("ULP distance")
        .y_desc("fraction of probabilities")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, o) in rep.orders.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let n = o.probabilities.max(1) as f64;
        let pts: Vec<(f64, f64)> = o
            .ulp_histogram
            .iter()
            .enumerate()
            .map(|(k, &v)| (k as f64, (v as f64 / n).max(floor)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(o.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;

    // Right: each inverse-CDF flip, exact gap vs the order's error (relative to Z).
    let flips: Vec<(usize, f64, f64)> = rep
        .orders
        .iter()
        .enumerate()
        .flat_map(|(i, o)| {
            o.flips
                .iter()
                .map(move |f| (i, f.gap.max(1e-16), f.error.max(1e-16)))
        })
        .collect();
    let lo = flips.iter().map(|f| f.1.min(f.2)).fold(1e-8f64, f64::min) * 0.5;
    let hi = flips.iter().map(|f| f.1.max(f.2)).fold(1e-6f64, f64::max) * 2.0;
    let n_flips: u64 = rep.orders.iter().map(|o| o.inverse_cdf_flips).sum();
    let n_draws: u64 = rep.orders.iter().map(|o| o.draws).sum();
    let n_gumbel: u64 = rep.orders.iter().map(|o| o.gumbel_changes).sum();
    let mut chart = ChartBuilder::on(&right)
        .caption(
            format!("inverse-CDF flips: {n_flips} of {n_draws} draws (Gumbel: {n_gumbel})"),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((lo..hi).log_scale(), (lo..hi).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .x_desc("exact gap |C_b - uZ| / Z")
        .y_desc("order's error at b / Z")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(lo, lo), (hi, hi)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label("gap = error (flips must lie above)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
    chart
        .draw_series(
            flips
                .iter()
                .map(|&(i, g, e)| Circle::new((g, e), 3, PALETTE[i % PALETTE.len()].filled())),
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    body.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Experiment 3: per order, the runs (out of `runs - 1`) that differ from run 0 in any
/// probability bit, any inverse-CDF token and any Gumbel token.
pub fn write_run_to_run_svg(path: &Path, rep: &run_to_run::Report) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| SampleError::file(path, e);
    let subtitle = format!(
        "{} runs of {} rows x {} vocab, T = {}, {} draws/row; {}",
        rep.runs, rep.rows, rep.vocab, rep.setup.temperature, rep.setup.draws, rep.source
    );
    let body = crate::svg::titled_page(path, (900, 560), RUN_TO_RUN_TITLE, 18, &subtitle)?;
    let others = rep.runs.saturating_sub(1).max(1) as f64;
    let n = rep.orders.len();
    let names: Vec<String> = rep.orders.iter().map(|o| o.name.clone()).collect();
    let mut chart = ChartBuilder::on(&body)
        .caption("runs that differ from run 0", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..others * 1.1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_labels(n.max(1))
        .x_label_formatter(&|x| {
            let k = x.round();
            if (x - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < names.len() {
                names[k as usize].clone()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("order")
        .y_desc(format!(
            "runs differing (of {})",
            rep.runs.saturating_sub(1)
        ))
        .draw()
        .map_err(|e| err(&e))?;
    let kinds = ["any probability bit", "inverse-CDF token", "Gumbel token"];
    for (k, kind) in kinds.iter().enumerate() {
        let c = PALETTE[k];
        let bars: Vec<(f64, f64)> = rep
            .orders
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let v = [
                    o.runs_differing_bits,
                    o.runs_differing_inverse_cdf,
                    o.runs_differing_gumbel,
                ][k];
                (i as f64 - 0.3 + 0.2 * k as f64, v as f64)
            })
            .collect();
        chart
            .draw_series(
                bars.iter()
                    .map(|&(x, v)| Rectangle::new([(x - 0.09, 0.0), (x + 0.09, v)], c.filled())),
            )
            .map_err(|e| err(&e))?
            .label(*kind)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        chart
            .draw_series(bars.iter().map(|&(x, v)| {
                Text::new(
                    format!("{v:.0}"),
                    (x - 0.06, v + others * 0.05),
                    ("sans-serif", 12).into_font(),
                )
            }))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    body.present().map_err(|e| err(&e))?;
    Ok(())
}
