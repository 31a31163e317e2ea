//! Experiment 2's figure: four panels over the batch size (log2 axis), one colour per backend —
//! logits differing from batch 1, greedy flip rate, each flip against its row's f64 top-2
//! margin, and the time of one projection.

use super::report::Report;
use batchsample::error::{Result, SampleError};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const COLOURS: [RGBColor; 4] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// The figure's title (the device is appended).
pub const TITLE: &str = "Experiment 2: batch-size drift of projection logits at temperature 0";

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Writes the figure of `rep` to `path`.
pub fn write_svg(path: &Path, rep: &Report) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| SampleError::file(path, e);
    let title = format!("{TITLE} ({})", rep.device);
    let ratios: Vec<f64> = rep.cost.iter().map(|c| c.ratio).collect();
    let cost = match (
        ratios.iter().copied().reduce(f64::min),
        ratios.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => format!("; invariant/baseline time {lo:.2}x-{hi:.2}x"),
        _ => String::new(),
    };
    let subtitle = format!(
        "{} x {} {} projection, {} pool rows at positions {}; {}{cost}",
        rep.vocab,
        rep.d,
        rep.dtype.name(),
        rep.rows,
        rep.config
            .positions
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(","),
        rep.source
    );
    let body = crate::svg::titled_page(path, (1400, 1000), &title, 20, &subtitle)?;
    let panels = body.split_evenly((2, 2));
    differing_panel(&panels[0], rep).map_err(|e| err(&e))?;
    flips_panel(&panels[1], rep).map_err(|e| err(&e))?;
    margin_panel(&panels[2], rep).map_err(|e| err(&e))?;
    time_panel(&panels[3], rep).map_err(|e| err(&e))?;
    body.present().map_err(|e| err(&e))?;
    Ok(())
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn batch_range(rep: &Report) -> std::ops::Range<f64> {
    let hi = rep.config.batches.iter().copied().max().unwrap_or(1) as f64;
    0.8..(hi * 1.25).max(2.0)
}

fn batch_label(x: &f64) -> String {
    let r = x.round();
    if (x - r).abs() < 1e-6 && r >= 1.0 && (r as u64).is_power_of_two() {
        format!("{r:.0}")
    } else {
        String::new()
    }
}

/// A log-log chart over the batch size, `y` from `lo` to `hi`.
macro_rules! batch_chart {
    ($area:expr, $rep:expr, $caption:expr, $lo:expr, $hi:expr, $ydesc:expr) => {{
        let mut chart = ChartBuilder::on($area)
            .caption($caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(batch_range($rep).log_scale(), ($lo..$hi).log_scale())?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_labels(12)
            .x_label_formatter(&batch_label)
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .x_desc("batch size")
            .y_desc($ydesc)
            .draw()?;
        chart
    }};
}

/// One line with points per backend over the batch sizes (values below `floor` drawn at it).
macro_rules! backend_lines {
    ($chart:expr, $rep:expr, $floor:expr, $value:expr) => {{
        for (i, b) in $rep.backends.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f64, f64)> = b
                .batches
                .iter()
                .filter_map(|st| $value(st).map(|v: f64| (st.batch as f64, v.max($floor))))
                .collect();
            $chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
                .label(b.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            $chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
        $chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }};
}

fn differing_panel(area: &Area<'_>, rep: &Report) -> DrawResult {
    let floor = 1e-7;
    let mut chart = batch_chart!(
        area,
        rep,
        "logits differing in any bit from batch 1 (0 drawn at the bottom)",
        floor,
        1.5,
        "fraction of logits"
    );
    backend_lines!(chart, rep, floor, |st: &super::BatchStats| Some(
        st.logits_differing as f64 / st.logits_compared.max(1) as f64
    ));
    Ok(())
}

fn flips_panel(area: &Area<'_>, rep: &Report) -> DrawResult {
    let rows = rep
        .backends
        .iter()
        .flat_map(|b| b.batches.iter().map(|st| st.rows_compared))
        .max()
        .unwrap_or(1)
        .max(1);
    let floor = 0.5 / rows as f64;
    let total: usize = rep.backends.iter().map(|b| b.flips.len()).sum();
    let mut chart = batch_chart!(
        area,
        rep,
        format!("greedy-token flips vs batch 1 ({total} in all; 0 drawn at the bottom)"),
        floor,
        1.5,
        "flip rate (rows)"
    );
    backend_lines!(chart, rep, floor, |st: &super::BatchStats| Some(
        st.flip_rate
    ));
    Ok(())
}

fn margin_panel(area: &Area<'_>, rep: &Report) -> DrawResult {
    let floor = 1e-12;
    let margins: Vec<f64> = rep
        .reference
        .iter()
        .map(|r| r.relative_margin.max(floor))
        .collect();
    let lo = margins.iter().copied().fold(1e-8f64, f64::min) * 0.5;
    let hi = margins.iter().copied().fold(1e-2f64, f64::max) * 2.0;
    let (b0, b1) = (batch_range(rep).start, batch_range(rep).end);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "each flip at its row's f64 top-2 margin (grey: every row's margin)",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((lo..hi).log_scale(), (b0..b1).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .y_labels(12)
        .y_label_formatter(&batch_label)
        .x_desc("f64 top-2 margin / |top logit| (0 drawn at the left)")
        .y_desc("batch size of the flip")
        .draw()?;
    let grey = RGBColor(150, 150, 150);
    chart.draw_series(
        margins
            .iter()
            .map(|&m| PathElement::new(vec![(m, b0), (m, b0 * 1.12)], grey.stroke_width(1))),
    )?;
    for (i, b) in rep.backends.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        // The largest logit change seen, relative to the top logit: a flip needs a margin
        // below about twice it.
        let widest = b
            .batches
            .iter()
            .map(|st| st.max_relative)
            .fold(0.0, f64::max);
        if widest > 0.0 {
            chart.draw_series(DashedLineSeries::new(
                vec![(widest.clamp(lo, hi), b0), (widest.clamp(lo, hi), b1)],
                6,
                4,
                c.stroke_width(1),
            ))?;
        }
        chart
            .draw_series(b.flips.iter().map(|f| {
                Circle::new(
                    (
                        f.f64_relative_margin.max(floor).clamp(lo, hi),
                        f.batch as f64,
                    ),
                    3,
                    c.filled(),
                )
            }))?
            .label(format!("{} flips (dashed: largest |change|/|top|)", b.name))
            .legend(move |(x, y)| Circle::new((x + 8, y), 3, c.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

fn time_panel(area: &Area<'_>, rep: &Report) -> DrawResult {
    let times: Vec<f64> = rep
        .backends
        .iter()
        .flat_map(|b| b.batches.iter().filter_map(|st| st.time_ms))
        .filter(|t| *t > 0.0)
        .collect();
    let lo = times.iter().copied().fold(1e-2f64, f64::min) * 0.5;
    let hi = times.iter().copied().fold(1e-1f64, f64::max) * 2.0;
    let caption = if times.is_empty() {
        "time of one projection (not measured)"
    } else {
        "time of one projection (CUDA events, mean over the timed runs)"
    };
    let mut chart = batch_chart!(area, rep, caption, lo, hi, "ms");
    backend_lines!(chart, rep, lo, |st: &super::BatchStats| st.time_ms);
    Ok(())
}
