//! `--svg`: latency against batch size, one panel per (vocab, dtype, method, numerics, kernels),
//! one line per mode, and the one-read floor drawn as a dashed line in each panel — readable
//! without the table.

use super::{BenchKernels, BenchMode, BenchResult};
use batchsample::error::{Result, SampleError};
use plotters::prelude::*;
use std::path::Path;

const PALETTE: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

fn color_of(mode: BenchMode) -> RGBColor {
    PALETTE[BenchMode::ALL.iter().position(|&m| m == mode).unwrap_or(0)]
}

/// Writes the plot of `results` (measured against `bandwidth_gbps` on `device`) to `path`.
pub fn write_svg(
    path: &Path,
    results: &[BenchResult],
    device: &str,
    bandwidth_gbps: f64,
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| SampleError::file(path, e);
    type Panel = (
        usize,
        &'static str,
        batchsample::DrawMethod,
        batchsample::Numerics,
        BenchKernels,
        super::BenchProcessing,
    );
    let mut panels: Vec<Panel> = Vec::new();
    for r in results {
        let key = (
            r.case.vocab,
            r.case.dtype.name(),
            r.case.method,
            r.case.numerics,
            r.case.kernels,
            r.case.processing,
        );
        if !panels.contains(&key) {
            panels.push(key);
        }
    }
    if panels.is_empty() {
        return Err(err(&"no results to plot"));
    }
    let cols = panels.len().min(3);
    let rows = panels.len().div_ceil(cols);
    let (w, h) = ((560 * cols as u32).max(760), 400 * rows as u32 + 70);
    let body = crate::svg::titled_page(
        path,
        (w, h),
        "batchsample: median sampling latency vs batch size",
        20,
        &format!("{device}; dashed: one-read floor = logit bytes / {bandwidth_gbps:.0} GB/s"),
    )?;
    let areas = body.split_evenly((rows, cols));
    for (area, &(vocab, dtype, method, numerics, kernels, processing)) in areas.iter().zip(&panels)
    {
        let mine: Vec<&BenchResult> = results
            .iter()
            .filter(|r| {
                r.case.vocab == vocab
                    && r.case.dtype.name() == dtype
                    && r.case.method == method
                    && r.case.numerics == numerics
                    && r.case.kernels == kernels
                    && r.case.processing == processing
            })
            .collect();
        let max_batch = mine.iter().map(|r| r.case.batch).max().unwrap_or(1).max(2) as f64;
        let min_batch = mine.iter().map(|r| r.case.batch).min().unwrap_or(1).max(1) as f64;
        let lo = mine
            .iter()
            .map(|r| r.floor_us.min(r.median_us))
            .fold(f64::INFINITY, f64::min)
            .max(0.01)
            * 0.7;
        let hi = mine
            .iter()
            .map(|r| r.p90_us.max(r.floor_us))
            .fold(0.0, f64::max)
            * 1.5;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "vocab {vocab}, {dtype}, {method:?}, {} numerics{}",
                    super::numerics_name(numerics),
                    match kernels {
                        BenchKernels::Auto => "",
                        BenchKernels::General => ", general kernels",
                        BenchKernels::Fields => ", per-field parameters",
                    }
                ),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((min_batch..max_batch).log_scale(), (lo..hi).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_label_formatter(&|b| format!("{b:.0}"))
            .y_label_formatter(&|us| format!("{us}"))
            .x_desc("batch (rows)")
            .y_desc("median latency (us)")
            .draw()
            .map_err(|e| err(&e))?;
        for mode in BenchMode::ALL {
            let mut pts: Vec<(f64, f64)> = mine
                .iter()
                .filter(|r| r.case.mode == mode)
                .map(|r| (r.case.batch.max(1) as f64, r.median_us))
                .collect();
            if pts.is_empty() {
                continue;
            }
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let c = color_of(mode);
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(mode.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(|e| err(&e))?;
        }
        let mut floor: Vec<(f64, f64)> = mine
            .iter()
            .map(|r| (r.case.batch.max(1) as f64, r.floor_us))
            .collect();
        floor.sort_by(|a, b| a.0.total_cmp(&b.0));
        floor.dedup_by(|a, b| a.0 == b.0);
        chart
            .draw_series(DashedLineSeries::new(floor, 6, 4, BLACK.stroke_width(1)))
            .map_err(|e| err(&e))?
            .label("floor (one read)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| err(&e))?;
    }
    body.present().map_err(|e| err(&e))?;
    Ok(())
}
