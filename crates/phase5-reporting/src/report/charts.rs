//! The report's plots, drawn with plotters once per backend: SVG (always) and PNG (when a font
//! is available to rasterize text).
//!
//! Text placement never asks the font for its size: titles and legends sit at fixed pixel
//! positions, chart captions are not used, and tick labels are drawn where plotters puts them
//! without measuring. That is what lets the SVG backend, which only writes `<text>` elements,
//! work on a machine with no font at all, while the bitmap backend rasterizes the same text with
//! `ab_glyph` from a TrueType file found at run time ([`find_font`], [`register_font`]).
//! Every chart is one of the few shapes of [`Plot`] (grouped bars with error bars, stacked
//! bars, lines, histograms on shared bins, box plots), filled in by the report from its inputs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Error, Result};

/// The family every text style names; the font found at run time is registered under it.
const FAMILY: &str = "sans-serif";

/// Colors of series, in order (the first is the baseline's grey).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(127, 127, 127),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Color of the `i`-th series, cycling after the palette.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One bar: a value and optionally its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Height.
    pub value: f64,
    /// Error bar ends.
    pub ci: Option<(f64, f64)>,
}

/// A named series of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series<T> {
    /// Legend label.
    pub label: String,
    /// Color.
    pub color: RGBColor,
    /// Data, one entry per group (bars) or point (lines).
    pub data: T,
}

/// What can be drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Plot {
    /// Groups along x, one bar per series in each group, with error bars and value labels.
    Bars {
        /// Title drawn at the top.
        title: String,
        /// Y axis description.
        y_desc: String,
        /// Group names along x.
        groups: Vec<String>,
        /// One value per group, `None` where the series has no value for the group.
        series: Vec<Series<Vec<Option<Bar>>>>,
        /// Values are shares in 0..1 shown as percentages.
        percent: bool,
    },
    /// Groups along x, one stacked bar per group with a layer per series.
    Stacked {
        /// Title.
        title: String,
        /// Y axis description.
        y_desc: String,
        /// Group names along x.
        groups: Vec<String>,
        /// Layers bottom-up, one value per group.
        layers: Vec<Series<Vec<f64>>>,
    },
    /// Lines over a numeric x axis; NaN values break a line and are marked with a cross.
    Lines {
        /// Title.
        title: String,
        /// X axis description.
        x_desc: String,
        /// Y axis description.
        y_desc: String,
        /// Each line's points; `markers` draws a dot at every point.
        series: Vec<Series<LineData>>,
        /// Fixed x ticks with labels (categorical x), else ticks are chosen from the range.
        x_ticks: Option<Vec<(f64, String)>>,
    },
    /// Histograms of samples on shared bins, series side by side in each bin.
    Histogram {
        /// Title.
        title: String,
        /// X axis description.
        x_desc: String,
        /// Samples per series.
        series: Vec<Series<Vec<f64>>>,
    },
    /// One box per series: quartiles, whiskers at min and max, a cross at the mean.
    Boxes {
        /// Title.
        title: String,
        /// Y axis description.
        y_desc: String,
        /// Samples per series.
        series: Vec<Series<Vec<f64>>>,
    },
}

/// A line's points and look.
#[derive(Debug, Clone, PartialEq)]
pub struct LineData {
    /// (x, y) points; a non-finite y breaks the line.
    pub points: Vec<(f64, f64)>,
    /// Dot at each point (sparse series such as validation loss).
    pub markers: bool,
    /// Stroke width in pixels.
    pub width: u32,
}

type DrawResult<T, DB> = std::result::Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A linear x axis whose ticks are chosen here (group centres, round numbers, sweep ranks).
/// Plotters' `WithKeyPoints` over `f64` keeps f64's own formatting and so takes no label
/// formatter; this axis uses the default one, which `x_label_formatter` replaces.
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        // As plotters maps its own f64 axes: the fraction of the range, floored to a pixel.
        if self.hi == self.lo {
            return (limit.0 + limit.1) / 2;
        }
        let frac = (v - self.lo) / (self.hi - self.lo);
        limit.0 + ((limit.1 - limit.0) as f64 * frac + 1e-3).floor() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Only bold grid lines (with labels), none of the light ones in between.
        if hint.weight().allow_light_points() {
            vec![]
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

fn text(size: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font()).color(&BLACK)
}

impl Plot {
    /// Pixel size of the image.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Plot::Bars { groups, series, .. } => {
                // Wide enough that every bar keeps at least ~14 px.
                let bars = groups.len() * series.len().max(1);
                ((160 + bars * 22 + groups.len() * 24).max(900) as u32, 520)
            }
            _ => (900, 520),
        }
    }

    fn title(&self) -> &str {
        match self {
            Plot::Bars { title, .. } | Plot::Stacked { title, .. } | Plot::Lines { title, .. } | Plot::Histogram { title, .. } | Plot::Boxes { title, .. } => title,
        }
    }

    fn legend(&self) -> Vec<(String, RGBColor, Swatch)> {
        match self {
            Plot::Bars { series, .. } => series.iter().map(|s| (s.label.clone(), s.color, Swatch::Box)).collect(),
            Plot::Stacked { layers, .. } => layers.iter().map(|s| (s.label.clone(), s.color, Swatch::Box)).collect(),
            Plot::Lines { series, .. } => series.iter().map(|s| (s.label.clone(), s.color, Swatch::Line { width: s.data.width, dot: s.data.markers })).collect(),
            Plot::Histogram { series, .. } | Plot::Boxes { series, .. } => series.iter().map(|s| (s.label.clone(), s.color, Swatch::Box)).collect(),
        }
    }

    /// Draw on `root` (already sized by [`Plot::size`]).
    pub fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        root.fill(&WHITE)?;
        let area = frame(root, self.title(), &self.legend())?;
        match self {
            Plot::Bars { y_desc, groups, series, percent, .. } => bars(&area, y_desc, groups, series, *percent),
            Plot::Stacked { y_desc, groups, layers, .. } => stacked(&area, y_desc, groups, layers),
            Plot::Lines { x_desc, y_desc, series, x_ticks, .. } => lines(&area, x_desc, y_desc, series, x_ticks.as_deref()),
            Plot::Histogram { x_desc, series, .. } => histogram(&area, x_desc, series),
            Plot::Boxes { y_desc, series, .. } => boxes(&area, y_desc, series),
        }
    }
}

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    /// A filled box (bars, boxes).
    Box,
    /// A line of the series' width, with a dot when the series has markers.
    Line { width: u32, dot: bool },
}

/// Title and legend rows at fixed positions; returns the area left for the chart. Legend
/// entries are spaced by a width estimated from the label's length (no font metrics needed).
fn frame<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, legend: &[(String, RGBColor, Swatch)]) -> DrawResult<DrawingArea<DB, Shift>, DB> {
    let (w, _) = root.dim_in_pixel();
    root.draw_text(title, &text(18).pos(Pos::new(HPos::Center, VPos::Top)), (w as i32 / 2, 8))?;
    let (mut x, mut y) = (70i32, 36i32);
    for (label, color, swatch) in legend {
        let width = 26 + 7 * label.chars().count() as i32 + 18;
        if x + width > w as i32 - 10 && x > 70 {
            x = 70;
            y += 20;
        }
        match swatch {
            Swatch::Box => root.draw(&Rectangle::new([(x, y + 3), (x + 18, y + 13)], color.filled()))?,
            Swatch::Line { width, dot } => {
                root.draw(&PathElement::new(vec![(x, y + 8), (x + 18, y + 8)], color.stroke_width(*width)))?;
                if *dot {
                    root.draw(&Circle::new((x + 9, y + 8), 3, color.filled()))?;
                }
            }
        }
        root.draw_text(label, &text(13).pos(Pos::new(HPos::Left, VPos::Center)), (x + 24, y + 8))?;
        x += width;
    }
    let top = if legend.is_empty() { 36 } else { y + 22 };
    Ok(root.split_vertically(top).1)
}

/// Round tick spacing (1, 2 or 5 times a power of ten) giving about `n` ticks over `span`.
fn nice_step(span: f64, n: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let f = if norm < 1.5 {
        1.0
    } else if norm < 3.5 {
        2.0
    } else if norm < 7.5 {
        5.0
    } else {
        10.0
    };
    f * mag
}

fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let step = nice_step(hi - lo, 8.0);
    let mut t = (lo / step).ceil() * step;
    let mut out = vec![];
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(t);
        t += step;
    }
    out
}

fn label_num(x: f64) -> String {
    if x.abs() >= 100.0 || x == x.round() {
        format!("{x:.0}")
    } else {
        format!("{x:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A y axis of counts from 0 to `hi` with whole-number ticks.
fn count_axis(hi: f64) -> Axis {
    let step = nice_step(hi, 6.0).max(1.0).round();
    let ticks = (0..).map(|k| k as f64 * step).take_while(|t| *t <= hi).collect();
    Axis { lo: 0.0, hi, ticks }
}

fn bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, y_desc: &str, groups: &[String], series: &[Series<Vec<Option<Bar>>>], percent: bool) -> DrawResult<(), DB> {
    let n = groups.len().max(1);
    let scale = if percent { 100.0 } else { 1.0 };
    let top = series.iter().flat_map(|s| s.data.iter().flatten()).map(|b| b.ci.map_or(b.value, |c| c.1.max(b.value))).fold(0.0f64, f64::max) * scale;
    let y_max = if percent { 100.0f64.max(top) * 1.08 } else { (top * 1.15).max(1.0) };
    let positions: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut chart = ChartBuilder::on(area).margin(12).x_label_area_size(40).y_label_area_size(64).build_cartesian_2d(Axis { lo: -0.5, hi: n as f64 - 0.5, ticks: positions }, 0f64..y_max)?;
    let xfmt = |x: &f64| groups.get(x.round().max(0.0) as usize).cloned().unwrap_or_default();
    let yfmt = |y: &f64| if percent { format!("{y:.0}%") } else { label_num(*y) };
    chart.configure_mesh().disable_x_mesh().x_label_formatter(&xfmt).y_label_formatter(&yfmt).y_desc(y_desc).max_light_lines(1).label_style(text(12)).axis_desc_style(text(13)).draw()?;
    let k = series.len().max(1) as f64;
    let slot = 0.8 / k;
    for (j, s) in series.iter().enumerate() {
        for (i, bar) in s.data.iter().enumerate() {
            let Some(bar) = bar else { continue };
            let x0 = i as f64 - 0.4 + j as f64 * slot + slot * 0.08;
            let x1 = x0 + slot * 0.84;
            let xc = (x0 + x1) / 2.0;
            let v = bar.value * scale;
            chart.draw_series(std::iter::once(Rectangle::new([(x0, 0.0), (x1, v)], s.color.filled())))?;
            let mut label_y = v;
            if let Some((lo, hi)) = bar.ci {
                let (lo, hi) = (lo * scale, hi * scale);
                let cap = slot * 0.2;
                let style = BLACK.stroke_width(1);
                chart.draw_series([PathElement::new(vec![(xc, lo), (xc, hi)], style), PathElement::new(vec![(xc - cap, lo), (xc + cap, lo)], style), PathElement::new(vec![(xc - cap, hi), (xc + cap, hi)], style)])?;
                label_y = label_y.max(hi);
            }
            let label = if percent { format!("{:.1}", v) } else { label_num(v) };
            chart.draw_series(std::iter::once(Text::new(label, (xc, label_y + y_max * 0.01), text(10).pos(Pos::new(HPos::Center, VPos::Bottom)))))?;
        }
    }
    Ok(())
}

fn stacked<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, y_desc: &str, groups: &[String], layers: &[Series<Vec<f64>>]) -> DrawResult<(), DB> {
    let n = groups.len().max(1);
    let totals: Vec<f64> = (0..n).map(|i| layers.iter().map(|l| l.data.get(i).copied().unwrap_or(0.0)).sum()).collect();
    let y_max = totals.iter().copied().fold(0.0f64, f64::max).max(1.0) * 1.08;
    let positions: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut chart = ChartBuilder::on(area).margin(12).x_label_area_size(40).y_label_area_size(64).build_cartesian_2d(Axis { lo: -0.5, hi: n as f64 - 0.5, ticks: positions }, count_axis(y_max))?;
    let xfmt = |x: &f64| groups.get(x.round().max(0.0) as usize).cloned().unwrap_or_default();
    let yfmt = |y: &f64| label_num(*y);
    chart.configure_mesh().disable_x_mesh().x_label_formatter(&xfmt).y_label_formatter(&yfmt).y_desc(y_desc).max_light_lines(1).label_style(text(12)).axis_desc_style(text(13)).draw()?;
    for i in 0..n {
        let mut base = 0.0;
        for layer in layers {
            let v = layer.data.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let (x0, x1) = (i as f64 - 0.3, i as f64 + 0.3);
            chart.draw_series(std::iter::once(Rectangle::new([(x0, base), (x1, base + v)], layer.color.filled())))?;
            chart.draw_series(std::iter::once(Text::new(label_num(v), (i as f64, base + v / 2.0), text(11).pos(Pos::new(HPos::Center, VPos::Center)))))?;
            base += v;
        }
    }
    Ok(())
}

fn lines<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, x_desc: &str, y_desc: &str, series: &[Series<LineData>], x_ticks: Option<&[(f64, String)]>) -> DrawResult<(), DB> {
    let finite = || series.iter().flat_map(|s| s.data.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x_lo, mut x_hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
    if let Some(t) = x_ticks {
        for (x, _) in t {
            x_lo = x_lo.min(*x);
            x_hi = x_hi.max(*x);
        }
    }
    if !x_lo.is_finite() {
        (x_lo, x_hi) = (0.0, 1.0);
    }
    let pad = if x_ticks.is_some() { 0.5 } else { 0.0 };
    if x_hi - x_lo < 1e-9 {
        x_hi = x_lo + 1.0;
    }
    let (x_lo, x_hi) = (x_lo - pad, x_hi + pad);
    let y_top = finite().map(|(_, y)| *y).fold(f64::NEG_INFINITY, f64::max);
    let y_bottom = finite().map(|(_, y)| *y).fold(f64::INFINITY, f64::min);
    let y_max = if y_top.is_finite() { y_top * 1.05 + 1e-9 } else { 1.0 };
    let y_min = if y_bottom.is_finite() && y_bottom < 0.0 { y_bottom * 1.05 } else { 0.0 };
    let (points, labels): (Vec<f64>, Vec<String>) = match x_ticks {
        Some(t) => t.iter().cloned().unzip(),
        None => {
            let p = ticks(x_lo, x_hi);
            let l = p.iter().map(|x| label_num(*x)).collect();
            (p, l)
        }
    };
    let tick_labels: Vec<(f64, String)> = points.iter().copied().zip(labels).collect();
    let mut chart = ChartBuilder::on(area).margin(12).x_label_area_size(44).y_label_area_size(64).build_cartesian_2d(Axis { lo: x_lo, hi: x_hi, ticks: points }, y_min..y_max)?;
    let xfmt = |x: &f64| tick_labels.iter().find(|(p, _)| (p - x).abs() < 1e-9).map(|(_, l)| l.clone()).unwrap_or_default();
    let yfmt = |y: &f64| label_num(*y);
    chart.configure_mesh().x_label_formatter(&xfmt).y_label_formatter(&yfmt).x_desc(x_desc).y_desc(y_desc).max_light_lines(1).label_style(text(12)).axis_desc_style(text(13)).draw()?;
    for s in series {
        let style = s.color.stroke_width(s.data.width);
        // Split at non-finite values so a NaN step shows as a gap plus a marker, not a jump.
        let mut segment: Vec<(f64, f64)> = vec![];
        let mut segments = vec![];
        for &(x, y) in &s.data.points {
            if y.is_finite() {
                segment.push((x, y));
            } else {
                segments.push(std::mem::take(&mut segment));
                chart.draw_series(std::iter::once(Cross::new((x, y_max * 0.97), 6, RED.stroke_width(2))))?;
            }
        }
        segments.push(segment);
        for seg in segments.into_iter().filter(|s| !s.is_empty()) {
            if s.data.markers {
                chart.draw_series(seg.iter().map(|&p| Circle::new(p, 3, s.color.filled())))?;
            }
            chart.draw_series(LineSeries::new(seg, style))?;
        }
    }
    Ok(())
}

fn histogram<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, x_desc: &str, series: &[Series<Vec<f64>>]) -> DrawResult<(), DB> {
    let all = || series.iter().flat_map(|s| s.data.iter().copied()).filter(|x| x.is_finite());
    let lo = all().fold(f64::INFINITY, f64::min);
    let hi = all().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() { (lo, if hi > lo { hi } else { lo + 1.0 }) } else { (0.0, 1.0) };
    // Square-root rule on the largest sample, kept readable.
    let largest = series.iter().map(|s| s.data.len()).max().unwrap_or(1);
    let nbins = ((largest as f64).sqrt().ceil() as usize).clamp(5, 30);
    let width = (hi - lo) / nbins as f64;
    let counts: Vec<Vec<usize>> = series
        .iter()
        .map(|s| {
            let mut c = vec![0usize; nbins];
            for x in s.data.iter().filter(|x| x.is_finite()) {
                c[(((x - lo) / width) as usize).min(nbins - 1)] += 1;
            }
            c
        })
        .collect();
    let y_max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
    let p = ticks(lo, hi);
    let mut chart = ChartBuilder::on(area).margin(12).x_label_area_size(44).y_label_area_size(64).build_cartesian_2d(Axis { lo, hi, ticks: p }, count_axis(y_max))?;
    let xfmt = |x: &f64| label_num(*x);
    let yfmt = |y: &f64| label_num(*y);
    chart.configure_mesh().x_label_formatter(&xfmt).y_label_formatter(&yfmt).x_desc(x_desc).y_desc("requests").max_light_lines(1).label_style(text(12)).axis_desc_style(text(13)).draw()?;
    // Side by side within each bin, so no variant hides another.
    let sub = width * 0.9 / series.len().max(1) as f64;
    for (j, (s, c)) in series.iter().zip(&counts).enumerate() {
        let rect = |k: usize, n: usize| {
            let x0 = lo + k as f64 * width + width * 0.05 + j as f64 * sub;
            [(x0, 0.0), (x0 + sub, n as f64)]
        };
        chart.draw_series(c.iter().enumerate().filter(|(_, n)| **n > 0).map(|(k, &n)| Rectangle::new(rect(k, n), s.color.mix(0.75).filled())))?;
        chart.draw_series(c.iter().enumerate().filter(|(_, n)| **n > 0).map(|(k, &n)| Rectangle::new(rect(k, n), s.color.stroke_width(1))))?;
    }
    Ok(())
}

fn boxes<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, y_desc: &str, series: &[Series<Vec<f64>>]) -> DrawResult<(), DB> {
    use phase4_evaluation::stats::percentile;
    let n = series.len().max(1);
    let top = series.iter().flat_map(|s| s.data.iter().copied()).filter(|x| x.is_finite()).fold(0.0f64, f64::max);
    let y_max = (top * 1.08).max(1.0);
    let positions: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut chart = ChartBuilder::on(area).margin(12).x_label_area_size(40).y_label_area_size(64).build_cartesian_2d(Axis { lo: -0.5, hi: n as f64 - 0.5, ticks: positions }, 0f64..y_max)?;
    let xfmt = |x: &f64| series.get(x.round().max(0.0) as usize).map(|s| s.label.clone()).unwrap_or_default();
    let yfmt = |y: &f64| label_num(*y);
    chart.configure_mesh().disable_x_mesh().x_label_formatter(&xfmt).y_label_formatter(&yfmt).y_desc(y_desc).max_light_lines(1).label_style(text(12)).axis_desc_style(text(13)).draw()?;
    for (i, s) in series.iter().enumerate() {
        let v: Vec<f64> = s.data.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            continue;
        }
        let q = |p: f64| percentile(&v, p);
        let (min, q1, med, q3, max) = (q(0.0), q(25.0), q(50.0), q(75.0), q(100.0));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let x = i as f64;
        let line = s.color.stroke_width(2);
        chart.draw_series(std::iter::once(Rectangle::new([(x - 0.22, q1), (x + 0.22, q3)], s.color.mix(0.3).filled())))?;
        chart.draw_series([
            PathElement::new(vec![(x - 0.22, q1), (x + 0.22, q1), (x + 0.22, q3), (x - 0.22, q3), (x - 0.22, q1)], line),
            PathElement::new(vec![(x - 0.22, med), (x + 0.22, med)], BLACK.stroke_width(2)),
            PathElement::new(vec![(x, q3), (x, max)], line),
            PathElement::new(vec![(x, q1), (x, min)], line),
            PathElement::new(vec![(x - 0.1, max), (x + 0.1, max)], line),
            PathElement::new(vec![(x - 0.1, min), (x + 0.1, min)], line),
        ])?;
        chart.draw_series(std::iter::once(Cross::new((x, mean), 5, BLACK.stroke_width(1))))?;
    }
    Ok(())
}

/// Where a font for the PNG plots comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FontChoice {
    /// `F1_REPORT_FONT`, else the usual system locations ([`find_font`]).
    #[default]
    Auto,
    /// This TrueType/OpenType file.
    File(PathBuf),
    /// No font: SVG only.
    Off,
}

/// TrueType files tried first, in order: common sans-serif fonts of Linux distributions,
/// macOS and Windows.
const KNOWN_FONTS: [&str; 10] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Folders searched (two levels deep) when no known file exists.
const FONT_DIRS: [&str; 3] = ["/usr/share/fonts", "/usr/local/share/fonts", "/usr/share/fonts/truetype"];

/// A font file for `choice`: the file asked for, `F1_REPORT_FONT`, a known system font, or the
/// first regular sans-serif `.ttf` under the system font folders. `None` when there is none.
pub fn find_font(choice: &FontChoice) -> Option<PathBuf> {
    match choice {
        FontChoice::Off => None,
        FontChoice::File(p) => Some(p.clone()),
        FontChoice::Auto => {
            if let Some(p) = std::env::var_os("F1_REPORT_FONT").filter(|p| !p.is_empty()) {
                return Some(PathBuf::from(p));
            }
            if let Some(p) = KNOWN_FONTS.iter().map(PathBuf::from).find(|p| p.is_file()) {
                return Some(p);
            }
            let mut found = vec![];
            for dir in FONT_DIRS {
                scan_fonts(Path::new(dir), 2, &mut found);
            }
            found.sort();
            // Prefer an upright regular sans face; any TrueType file beats no text.
            let plain = |p: &PathBuf| {
                let n = p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
                n.contains("sans") && !["bold", "italic", "oblique", "mono", "light", "condensed"].iter().any(|w| n.contains(w))
            };
            found.iter().find(|p| plain(p)).or(found.first()).cloned()
        }
    }
}

fn scan_fonts(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && depth > 0 {
            scan_fonts(&p, depth - 1, out);
        } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("ttf")) {
            out.push(p);
        }
    }
}

/// The font registered with plotters in this process, if any (plotters keeps one table per
/// process, so the first successful registration stands).
static REGISTERED: OnceLock<PathBuf> = OnceLock::new();

/// Register `path` as the plotters font of the bitmap backend. Plotters needs the bytes for the
/// life of the process (`&'static`), so they are leaked once; later calls reuse the first font.
pub fn register_font(path: &Path) -> Result<PathBuf> {
    if let Some(p) = REGISTERED.get() {
        return Ok(p.clone());
    }
    let bad = |reason: String| Error::ReportInput { path: path.to_path_buf(), reason, hint: "point F1_REPORT_FONT (or --font) at a TrueType .ttf file, or install fonts-dejavu-core".into() };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, leaked).map_err(|_| bad("not a TrueType/OpenType font ab_glyph can read".into()))?;
    Ok(REGISTERED.get_or_init(|| path.to_path_buf()).clone())
}

/// Draw `plot` as SVG markup.
pub fn svg(plot: &Plot) -> Result<String> {
    let size = plot.size();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        plot.draw(&root).map_err(|e| Error::Plot { name: plot.title().to_string(), reason: e.to_string() })?;
        root.present().map_err(|e| Error::Plot { name: plot.title().to_string(), reason: e.to_string() })?;
    }
    Ok(out)
}

/// Draw `plot` as PNG bytes (needs a registered font for its text).
pub fn png(plot: &Plot) -> Result<Vec<u8>> {
    let (w, h) = plot.size();
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        plot.draw(&root).map_err(|e| Error::Plot { name: plot.title().to_string(), reason: e.to_string() })?;
        root.present().map_err(|e| Error::Plot { name: plot.title().to_string(), reason: e.to_string() })?;
    }
    let mut out = vec![];
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let encode = |e: png::EncodingError| Error::Plot { name: plot.title().to_string(), reason: format!("PNG encoding: {e}") };
    let mut writer = enc.write_header().map_err(encode)?;
    writer.write_image_data(&rgb).map_err(encode)?;
    writer.finish().map_err(encode)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!(ticks(0.0, 300.0).len(), 7);
        assert_eq!(nice_step(0.0, 8.0), 1.0);
    }

    #[test]
    fn svg_needs_no_font() {
        let plot = Plot::Bars {
            title: "acc".into(),
            y_desc: "accuracy".into(),
            groups: vec!["baseline".into(), "lora".into()],
            series: vec![Series { label: "acc".into(), color: color(1), data: vec![Some(Bar { value: 0.4, ci: Some((0.3, 0.5)) }), None] }],
            percent: true,
        };
        let s = svg(&plot).expect("svg");
        assert!(s.contains("<svg") && s.contains("baseline") && s.contains("40.0"), "{s}");
    }
}
