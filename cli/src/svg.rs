//! The page every figure of the crate is drawn on: an SVG of a given size with a title and a
//! subtitle in a 70-pixel header, the rest handed back for the charts.

use batchsample::error::{Result, SampleError};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// A white `size` SVG at `path` with `title` (title_size pt) and `subtitle` on top; returns the
/// area below the header. Call `present()` on it when the figure is drawn.
pub(crate) fn titled_page<'a>(
    path: &'a Path,
    size: (u32, u32),
    title: &str,
    title_size: u32,
    subtitle: &str,
) -> Result<DrawingArea<SVGBackend<'a>, Shift>> {
    let err = |e: &dyn std::fmt::Display| SampleError::file(path, e);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, body) = root.split_vertically(70);
    top.draw(&Text::new(
        title.to_string(),
        (14, 10),
        ("sans-serif", title_size).into_font(),
    ))
    .map_err(|e| err(&e))?;
    top.draw(&Text::new(
        subtitle.to_string(),
        (14, 40),
        ("sans-serif", 14).into_font(),
    ))
    .map_err(|e| err(&e))?;
    Ok(body)
}
