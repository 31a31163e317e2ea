//! A plain-text horizontal bar chart: one line per token, a bar whose full width is probability 1,
//! drawn in Unicode eighth blocks, and the percentage.

use std::fmt::Write;

/// Eighth-block partial cells, 1/8 to 7/8 of a cell.
const PARTIAL: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// What a row of the chart shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// A token with probability `p`; `was` is its probability before this stage, when it changed.
    Kept { p: f64, was: Option<f64> },
    /// A token out of the distribution, and why (e.g. "removed by top-k", "masked (-inf)").
    Removed(String),
}

/// One row: a label (token and logit) and its cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub label: String,
    pub cell: Cell,
}

/// A bar of `fraction` (clamped to [0, 1]) of `width` cells, padded to `width` characters. A
/// positive fraction too small to round to an eighth still shows one thin sliver.
pub fn bar(fraction: f64, width: usize) -> String {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let mut eighths = (fraction * width as f64 * 8.0).round() as usize;
    if eighths == 0 && fraction > 0.0 {
        eighths = 1;
    }
    let (full, rest) = (eighths / 8, eighths % 8);
    let mut s: String = "█".repeat(full);
    let mut used = full;
    if rest > 0 {
        s.push(PARTIAL[rest]);
        used += 1;
    }
    s.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    s
}

/// A probability as a percentage, two decimals (`<0.01%` for positive values that round to 0).
pub fn percent(p: f64) -> String {
    if p > 0.0 && p < 0.00005 {
        "<0.01%".into()
    } else {
        format!("{:.2}%", p * 100.0)
    }
}

/// Renders the rows, each indented by `indent`, labels padded to a common width.
pub fn render(rows: &[Row], width: usize, indent: &str) -> String {
    let label_width = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for row in rows {
        let pad = label_width - row.label.chars().count();
        let label = format!("{}{}", row.label, " ".repeat(pad));
        let line = match &row.cell {
            Cell::Kept { p, was } => {
                let mut tail = format!("{:>7}", percent(*p));
                if let Some(was) = was {
                    let _ = write!(tail, "  (was {})", percent(*was));
                }
                format!("{indent}{label}  │{}│ {tail}", bar(*p, width))
            }
            Cell::Removed(why) => {
                format!("{indent}{label}  │{}│  ✗ {why}", "·".repeat(width))
            }
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_have_the_width_and_the_length() {
        assert_eq!(bar(0.0, 4), "    ");
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.5, 4), "██  ");
        assert_eq!(bar(0.5 + 3.0 / 32.0, 4), "██▍ ");
        assert_eq!(bar(0.5 + 1.0 / 32.0, 4), "██▏ ");
        assert_eq!(bar(1e-9, 4), "▏   ");
        assert_eq!(bar(2.0, 3), "███");
        assert_eq!(bar(f64::NAN, 2), "  ");
        for i in 0..=80 {
            assert_eq!(bar(i as f64 / 80.0, 10).chars().count(), 10);
        }
    }

    #[test]
    fn rows_render_kept_and_removed() {
        let rows = [
            Row {
                label: "token 0".into(),
                cell: Cell::Kept {
                    p: 0.75,
                    was: Some(0.5),
                },
            },
            Row {
                label: "token 12".into(),
                cell: Cell::Removed("removed by top-k".into()),
            },
        ];
        let text = render(&rows, 8, "  ");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "  token 0   │██████  │  75.00%  (was 50.00%)");
        assert_eq!(lines[1], "  token 12  │········│  ✗ removed by top-k");
        assert_eq!(percent(0.00001), "<0.01%");
        assert_eq!(percent(0.0), "0.00%");
    }
}
