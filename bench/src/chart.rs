//! The PNG chart: bars drawn as rectangles with plotters' bitmap backend, labelled with a
//! built-in 3×5 pixel font (plotters' own text needs system fonts, which we do without).

use std::path::Path;

use plotters::prelude::*;
pub(crate) use plotters::style::RGBColor;

/// Node's bars.
pub(crate) const NODE: RGBColor = RGBColor(68, 136, 68);
/// The Socket.IO peer's bars.
pub(crate) const SOCKETIO: RGBColor = RGBColor(60, 110, 200);
/// Sockudo's bars.
pub(crate) const SOCKUDO: RGBColor = RGBColor(140, 70, 160);
/// bbrt's bars.
pub(crate) const BBRT: RGBColor = RGBColor(222, 110, 30);
const INK: RGBColor = RGBColor(30, 30, 30);
const GRID: RGBColor = RGBColor(215, 215, 215);

/// A 3×5 glyph, one row of 3 bits per entry, top row first.
fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_uppercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'Q' => [2, 5, 5, 6, 3],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        '.' => [0, 0, 0, 0, 2],
        ',' => [0, 0, 0, 2, 4],
        '/' => [1, 1, 2, 4, 4],
        '-' => [0, 0, 7, 0, 0],
        ':' => [0, 2, 0, 2, 0],
        '%' => [5, 1, 2, 4, 5],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        '=' => [0, 7, 0, 7, 0],
        '+' => [0, 2, 7, 2, 0],
        '<' => [1, 2, 4, 2, 1],
        '>' => [4, 2, 1, 2, 4],
        _ => [0; 5],
    }
}

/// Width in pixels of `text` at `scale`.
fn text_width(text: &str, scale: i32) -> i32 {
    text.chars().count() as i32 * 4 * scale - scale
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn text(area: &Area<'_>, x: i32, y: i32, scale: i32, s: &str, color: RGBColor) {
    for (i, c) in s.chars().enumerate() {
        let gx = x + i as i32 * 4 * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    let px = gx + col * scale;
                    let py = y + row as i32 * scale;
                    let _ = area.draw(&Rectangle::new(
                        [(px, py), (px + scale - 1, py + scale - 1)],
                        color.filled(),
                    ));
                }
            }
        }
    }
}

fn text_centered(area: &Area<'_>, cx: i32, y: i32, scale: i32, s: &str, color: RGBColor) {
    text(area, cx - text_width(s, scale) / 2, y, scale, s, color);
}

/// A compact number: 3 significant digits, k/M suffixes.
pub(crate) fn compact(v: f64) -> String {
    let (v, suffix) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e4 {
        (v / 1e3, "K")
    } else {
        (v, "")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{suffix}")
}

/// One panel: groups of bars, one per series (server) of the chart.
pub(crate) struct Panel {
    pub(crate) title: String,
    /// (group label, one value per series in the chart's order); a missing value draws no
    /// bar.
    pub(crate) groups: Vec<(String, Vec<Option<f64>>)>,
    /// Log-scale the values (latency spans decades).
    pub(crate) log: bool,
}

fn draw_panel(area: &Area<'_>, panel: &Panel, colors: &[RGBColor]) {
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let _ = area.draw(&Rectangle::new(
        [(0, 0), (w - 1, h - 1)],
        GRID.stroke_width(1),
    ));
    text(area, 12, 10, 3, &panel.title, INK);
    let (top, bottom, left, right) = (80, h - 40, 20, w - 20);
    let values: Vec<f64> = panel
        .groups
        .iter()
        .flat_map(|g| g.1.iter().copied())
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    if values.is_empty() || panel.groups.is_empty() {
        text(area, left, top + 20, 3, "NO DATA", INK);
        return;
    }
    let max = values.iter().copied().fold(0.0f64, f64::max);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let (lo, hi) = if panel.log {
        ((min / 2.0).log10().floor(), max.log10() * 1.05)
    } else {
        (0.0, max * 1.15)
    };
    let scale = |v: f64| -> i32 {
        let f = if panel.log {
            (v.max(1e-9).log10() - lo) / (hi - lo)
        } else {
            v / hi
        };
        bottom - ((f.clamp(0.0, 1.0)) * f64::from(bottom - top)) as i32
    };
    let _ = area.draw(&PathElement::new(
        vec![(left, bottom), (right, bottom)],
        INK.stroke_width(2),
    ));
    let slot = (right - left) / panel.groups.len() as i32;
    let n = colors.len().max(1) as i32;
    let bar = (slot * 2 / 3 / n).min(70);
    for (i, (label, values)) in panel.groups.iter().enumerate() {
        let cx = left + slot * i as i32 + slot / 2;
        let x_first = cx - (bar + 4) * n / 2;
        for (k, (value, color)) in values.iter().zip(colors).enumerate() {
            let x0 = x_first + (bar + 4) * k as i32;
            if let Some(v) = value.filter(|v| *v > 0.0) {
                let y = scale(v);
                let _ = area.draw(&Rectangle::new(
                    [(x0, y), (x0 + bar, bottom)],
                    color.filled(),
                ));
                // Narrow bars (four servers) take the smaller digits.
                let digits = if bar >= 40 { 3 } else { 2 };
                text_centered(area, x0 + bar / 2, y - 20, digits, &compact(v), INK);
            }
        }
        text_centered(area, cx, bottom + 12, 2, label, INK);
    }
}

/// Draws `panels` in a grid of two columns under a title and a legend of `series` (name,
/// color), in the order of every group's values.
pub(crate) fn draw(
    path: &Path,
    title: &str,
    series: &[(&str, RGBColor)],
    panels: &[Panel],
) -> Result<(), String> {
    let rows = panels.len().div_ceil(2).max(1) as u32;
    let (w, h) = (1400u32, 90 + rows * 330);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    text(&root, 20, 18, 4, title, INK);
    let mut lx = w as i32 - 180 * series.len() as i32;
    for (name, color) in series {
        let _ = root.draw(&Rectangle::new([(lx, 20), (lx + 24, 44)], color.filled()));
        text(&root, lx + 32, 24, 3, name, INK);
        lx += 180;
    }
    let colors: Vec<RGBColor> = series.iter().map(|(_, c)| *c).collect();
    let body = root.margin(80, 10, 10, 10);
    let cells = body.split_evenly((rows as usize, 2));
    for (cell, panel) in cells.iter().zip(panels) {
        draw_panel(&cell.margin(5, 5, 5, 5), panel, &colors);
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_numbers() {
        assert_eq!(compact(1.234), "1.23");
        assert_eq!(compact(12.34), "12.3");
        assert_eq!(compact(123.4), "123");
        assert_eq!(compact(45_678.0), "45.7K");
        assert_eq!(compact(2_500_000.0), "2.50M");
    }

    #[test]
    fn every_label_character_has_a_glyph() {
        for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ./-:%()=<>,+".chars() {
            assert_ne!(glyph(c), [0; 5], "{c}");
        }
    }
}
