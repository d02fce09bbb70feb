//! SVG charts for the report (`charts/*.svg`).
//!
//! Pure functions from plain data to an SVG document (a `String`), drawn with `plotters`:
//! bars with confidence-interval whiskers, latency boxes, line charts and time series.
//! The module knows nothing about runs; callers turn summaries into [`Bar`], [`LatencyBox`]
//! and [`Series`].
//!
//! Conventions shared by every chart:
//! - 900x500 px, white background, title drawn at the top.
//! - Non-finite values (NaN, ±inf) are skipped; a bar or box without a finite value keeps its
//!   slot and its label and shows "–" (the statistic does not exist).
//! - Empty input (or no finite value at all in a line chart) gives a valid SVG saying "no data".
//! - Every bar, box and series label appears whole, as one SVG `<text>` element, so a caller can
//!   check that the expected series are present. Category labels are written horizontally when
//!   they fit their slot, otherwise vertically (never shortened).

use anyhow::Result;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One vertical bar with its 95% confidence interval.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bar {
    pub label: String,
    /// What sets the bar's colour (the system): bars with the same key share a colour, and
    /// each key gets one legend entry. Empty: the default colour, no legend.
    pub key: String,
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Latency percentiles of one configuration (same unit for all fields, e.g. ms).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyBox {
    pub label: String,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// A named list of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: u32 = 900;
const HEIGHT: u32 = 500;
const FONT: &str = "sans-serif";
// Font sizes as plotters takes them; the SVG backend writes `size / 1.24` as font-size.
const TITLE_SIZE: f64 = 22.0;
const SUBTITLE_SIZE: f64 = 15.0;
const DESC_SIZE: f64 = 16.0;
const TICK_SIZE: f64 = 15.0;
const VALUE_SIZE: f64 = 14.0;
const MIN_LABEL_SIZE: f64 = 11.0;
/// Average glyph width in em, on the wide side (DejaVu Sans) so estimates do not overlap.
const CHAR_EM: f64 = 0.6;
const MARGIN: u32 = 12;
const Y_LABEL_AREA: u32 = 78;
/// Above this many points a series gets a marker only on every k-th point.
const MAX_MARKERS: usize = 40;

const BAR_COLOR: RGBColor = RGBColor(0x4E, 0x79, 0xA7);
const BOX_COLOR: RGBColor = RGBColor(0x8F, 0xB3, 0xD9);
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const MUTED: RGBColor = RGBColor(0x80, 0x80, 0x80);
const GRID: RGBColor = RGBColor(0xE3, 0xE3, 0xE3);
/// Tableau 10 (category10); series beyond it continue with `Palette99`.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1F, 0x77, 0xB4),
    RGBColor(0xFF, 0x7F, 0x0E),
    RGBColor(0x2C, 0xA0, 0x2C),
    RGBColor(0xD6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xBD),
    RGBColor(0x8C, 0x56, 0x4B),
    RGBColor(0xE3, 0x77, 0xC2),
    RGBColor(0x7F, 0x7F, 0x7F),
    RGBColor(0xBC, 0xBD, 0x22),
    RGBColor(0x17, 0xBE, 0xCF),
];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Vertical bars (one per label, e.g. "asynctasq asyncio-c10 drain") with 95% CI whiskers.
///
/// The y axis starts at 0 (or below it when a value is negative); each bar shows its value above
/// the whisker when the slot is wide enough.
pub fn bars_with_ci(title: &str, y_label: &str, bars: &[Bar]) -> Result<String> {
    if bars.is_empty() {
        return no_data(title, &[]);
    }
    let (lo, hi) = finite_bounds(
        bars.iter()
            .flat_map(|b| [b.value, b.ci_low, b.ci_high])
            .chain([0.0]),
    )
    .unwrap_or((0.0, 1.0));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let y_top = if hi > 0.0 {
        hi + span * 0.12
    } else if lo < 0.0 {
        0.0
    } else {
        1.0 // no finite value, or all zero
    };
    let y_bottom = if lo < 0.0 { lo - span * 0.05 } else { 0.0 };
    let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
    let keys = colour_keys(bars);

    render(|root| {
        let mut plot = CategoryPlot::new(title, None, &labels);
        if !keys.is_empty() {
            plot.top = header_height(true);
            draw_key_row(root, &keys)?;
        }
        let mut chart = plot.build(
            root,
            y_label,
            -0.5..bars.len() as f64 - 0.5,
            y_bottom..y_top,
            false,
        )?;
        plot.draw_labels(root, &chart)?;
        let slot = plot.slot_px();
        let half = plot.half_width(0.35);
        let cap = half * 0.35;
        let value_style = text_style(VALUE_SIZE, &INK, Pos::new(HPos::Center, VPos::Bottom));
        let na_style = text_style(VALUE_SIZE, &MUTED, Pos::new(HPos::Center, VPos::Bottom));
        let whisker = INK.stroke_width(2);
        for (i, bar) in bars.iter().enumerate() {
            let x = i as f64;
            if !bar.value.is_finite() {
                chart.draw_series(std::iter::once(
                    EmptyElement::at((x, 0.0)) + Text::new("–", (0, -4), na_style.clone()),
                ))?;
                continue;
            }
            let (top, bottom) = (bar.value.max(0.0), bar.value.min(0.0));
            let colour = keys
                .iter()
                .find(|(k, _)| *k == bar.key)
                .map_or(BAR_COLOR, |(_, c)| *c);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x - half, top), (x + half, bottom)],
                colour.filled(),
            )))?;
            let mut label_at = bar.value;
            if bar.ci_low.is_finite() && bar.ci_high.is_finite() {
                let (l, h) = (bar.ci_low.min(bar.ci_high), bar.ci_low.max(bar.ci_high));
                chart.draw_series([
                    PathElement::new(vec![(x, l), (x, h)], whisker),
                    PathElement::new(vec![(x - cap, l), (x + cap, l)], whisker),
                    PathElement::new(vec![(x - cap, h), (x + cap, h)], whisker),
                ])?;
                label_at = label_at.max(h);
            }
            let text = fmt_num(bar.value);
            if text_width(&text, VALUE_SIZE) <= slot * 0.85 {
                chart.draw_series(std::iter::once(
                    EmptyElement::at((x, label_at.max(0.0)))
                        + Text::new(text, (0, -4), value_style.clone()),
                ))?;
            }
        }
        Ok(())
    })
}

/// The distinct non-empty colour keys of the bars, in order of first appearance, each with
/// its palette colour.
fn colour_keys(bars: &[Bar]) -> Vec<(&str, RGBColor)> {
    let mut keys: Vec<&str> = Vec::new();
    for bar in bars.iter().filter(|b| !b.key.is_empty()) {
        if !keys.contains(&bar.key.as_str()) {
            keys.push(&bar.key);
        }
    }
    keys.into_iter()
        .enumerate()
        .map(|(i, k)| (k, series_color(i)))
        .collect()
}

/// A legend row under the title: a colour swatch and the key, centred.
fn draw_key_row(root: &Area, keys: &[(&str, RGBColor)]) -> Result<()> {
    let swatch = 12;
    let gap = 18.0;
    let widths: Vec<f64> = keys
        .iter()
        .map(|(k, _)| swatch as f64 + 6.0 + text_width(k, SUBTITLE_SIZE))
        .collect();
    let total = widths.iter().sum::<f64>() + gap * (keys.len().saturating_sub(1)) as f64;
    let mut x = (WIDTH as f64 - total) / 2.0;
    let y = 40;
    for ((key, colour), width) in keys.iter().zip(widths) {
        let x0 = x as i32;
        root.draw(&Rectangle::new(
            [(x0, y), (x0 + swatch, y + swatch)],
            colour.filled(),
        ))?;
        root.draw(&Text::new(
            key.to_string(),
            (x0 + swatch + 6, y + swatch / 2),
            text_style(SUBTITLE_SIZE, &INK, Pos::new(HPos::Left, VPos::Center)),
        ))?;
        x += width + gap;
    }
    Ok(())
}

/// One box per label: box from p50 to p95, whisker to p99, a dot at max; log-scale y if
/// max/p50 > 100 (the largest max over the smallest p50, so every box stays readable).
pub fn latency_boxes(title: &str, y_label: &str, boxes: &[LatencyBox]) -> Result<String> {
    if boxes.is_empty() {
        return no_data(title, &[]);
    }
    let labels: Vec<&str> = boxes.iter().map(|b| b.label.as_str()).collect();
    let note = "box: p50 to p95 · whisker: to p99 · dot: max";
    let x_range = -0.5..boxes.len() as f64 - 0.5;
    let values = boxes.iter().flat_map(|b| [b.p50, b.p95, b.p99, b.max]);

    if let Some((lo, hi)) = log_range(boxes) {
        return render(|root| {
            let plot = CategoryPlot::new(title, Some(note), &labels);
            let y_label = format!("{y_label} (log scale)");
            let mut chart = plot.build(root, &y_label, x_range, (lo..hi).log_scale(), true)?;
            plot.draw_labels(root, &chart)?;
            let (xs, ys) = chart.plotting_area().get_pixel_range();
            let map = |v: f64| chart.backend_coord(&(0.0, v)).1;
            draw_ticks(root, (&xs, &ys), Axis::Y, &log_tick_sets(lo, hi), map)?;
            draw_boxes(&mut chart, boxes, lo, plot.half_width(0.3))
        });
    }
    let (_, hi) = finite_bounds(values.chain([0.0])).unwrap_or((0.0, 1.0));
    let hi = if hi > 0.0 { hi * 1.1 } else { 1.0 };
    render(|root| {
        let plot = CategoryPlot::new(title, Some(note), &labels);
        let mut chart = plot.build(root, y_label, x_range, 0.0..hi, false)?;
        plot.draw_labels(root, &chart)?;
        draw_boxes(&mut chart, boxes, 0.0, plot.half_width(0.3))
    })
}

/// Lines with markers, a legend; e.g. throughput vs concurrency.
///
/// Points are sorted by x; the y axis starts at 0 when no value is negative.
pub fn lines(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<String> {
    line_chart(title, x_label, y_label, series, false)
}

/// Same as `lines` but for time series (x in seconds), e.g. RSS or queue depth over a run.
///
/// The x axis spans the data (from 0 when the series start near 0); long series get a marker on
/// every k-th point only.
pub fn time_series(title: &str, y_label: &str, series: &[Series]) -> Result<String> {
    line_chart(title, "time (s)", y_label, series, true)
}

// ---------------------------------------------------------------------------------------------
// Category charts (bars, boxes)

/// Layout of a chart with one slot per label on the x axis.
struct CategoryPlot {
    n: usize,
    labels: Vec<String>,
    top: u32,
    x_area: u32,
    label_size: f64,
    vertical: bool,
    title: String,
    note: Option<String>,
}

impl CategoryPlot {
    fn new(title: &str, note: Option<&str>, labels: &[&str]) -> Self {
        let n = labels.len().max(1);
        let top = header_height(note.is_some());
        let slot = (WIDTH - 2 * MARGIN - Y_LABEL_AREA) as f64 / n as f64;
        let widest = labels
            .iter()
            .map(|l| text_width(l, TICK_SIZE))
            .fold(0.0, f64::max);
        let (vertical, label_size, x_area) = if widest <= slot * 0.92 {
            (false, TICK_SIZE, (font_px(TICK_SIZE) * 1.3) as u32 + 12)
        } else {
            // Vertical labels: at most ~40% of the height, and a line must fit its slot.
            let max_area = HEIGHT as f64 * 0.4;
            let mut size = TICK_SIZE;
            if widest > max_area {
                size *= max_area / widest;
            }
            size = size.min(slot * 0.9 * 1.24).max(MIN_LABEL_SIZE);
            // Height from a narrower average glyph than the overlap checks use: 0.6 em wastes
            // much of the plot's height on long labels; the 14 px slack covers wider fonts.
            let longest = labels
                .iter()
                .map(|l| text_width(l, size) * 0.55 / CHAR_EM)
                .fold(0.0, f64::max);
            (true, size, longest.ceil() as u32 + 14)
        };
        Self {
            n,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            top,
            x_area,
            label_size,
            vertical,
            title: title.to_string(),
            note: note.map(str::to_string),
        }
    }

    /// Half the width of a bar or box, in slots: `fraction` of the slot, at most 45 px.
    fn half_width(&self, fraction: f64) -> f64 {
        fraction.min(45.0 / self.slot_px())
    }

    fn slot_px(&self) -> f64 {
        (WIDTH - 2 * MARGIN - Y_LABEL_AREA) as f64 / self.n as f64
    }

    fn build<'a, 'b, Y>(
        &self,
        root: &'a Area<'b>,
        y_label: &str,
        x_range: std::ops::Range<f64>,
        y_spec: Y,
        custom_y_ticks: bool,
    ) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y::CoordDescType>>>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        draw_header(root, &self.title, self.note.as_deref())?;
        let mut chart = ChartBuilder::on(root)
            .margin_top(self.top)
            .margin_left(MARGIN)
            .margin_right(MARGIN)
            .margin_bottom(MARGIN)
            .x_label_area_size(self.x_area)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x_range, y_spec)?;
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| fmt_num(*v))
            .y_desc(y_label)
            .label_style((FONT, TICK_SIZE))
            .axis_desc_style((FONT, DESC_SIZE))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_style(INK);
        if custom_y_ticks {
            mesh.disable_y_axis().disable_y_mesh();
        } else {
            mesh.y_labels(8);
        }
        mesh.draw()?;
        Ok(chart)
    }

    /// Writes the category labels under the x axis, centered on their slots.
    fn draw_labels<Y: Ranged>(
        &self,
        root: &Area,
        chart: &ChartContext<SVGBackend, Cartesian2d<RangedCoordf64, Y>>,
    ) -> Result<()> {
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        let slot = (xs.end - xs.start) as f64 / self.n as f64;
        let y = ys.end + 6;
        let style = if self.vertical {
            text_style(self.label_size, &INK, Pos::new(HPos::Right, VPos::Center))
                .transform(FontTransform::Rotate270)
        } else {
            text_style(self.label_size, &INK, Pos::new(HPos::Center, VPos::Top))
        };
        for (i, label) in self.labels.iter().enumerate() {
            let x = xs.start + ((i as f64 + 0.5) * slot).round() as i32;
            root.draw(&Text::new(label.as_str(), (x, y), style.clone()))?;
        }
        Ok(())
    }
}

fn draw_boxes<Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<SVGBackend, Cartesian2d<RangedCoordf64, Y>>,
    boxes: &[LatencyBox],
    floor: f64,
    w: f64,
) -> Result<()> {
    // In log scale, values at or below the axis floor cannot be drawn.
    let ok = |v: f64| v.is_finite() && (floor <= 0.0 || v > 0.0);
    let clamp = |v: f64| v.max(floor);
    let na_style = text_style(VALUE_SIZE, &MUTED, Pos::new(HPos::Center, VPos::Bottom));
    let ink = INK.stroke_width(2);
    for (i, b) in boxes.iter().enumerate() {
        let x = i as f64;
        let (p50, p95, p99, max) = (ok(b.p50), ok(b.p95), ok(b.p99), ok(b.max));
        if p50 && p95 {
            let (l, h) = (clamp(b.p50.min(b.p95)), clamp(b.p50.max(b.p95)));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x - w, h), (x + w, l)],
                BOX_COLOR.filled(),
            )))?;
            chart.draw_series([
                PathElement::new(vec![(x - w, clamp(b.p50)), (x + w, clamp(b.p50))], ink),
                PathElement::new(vec![(x - w, h), (x + w, h)], INK.stroke_width(1)),
                PathElement::new(vec![(x - w, l), (x - w, h)], INK.stroke_width(1)),
                PathElement::new(vec![(x + w, l), (x + w, h)], INK.stroke_width(1)),
            ])?;
        } else if p50 {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x - w, clamp(b.p50)), (x + w, clamp(b.p50))],
                ink,
            )))?;
        }
        if p99 {
            let from = if p95 { clamp(b.p95) } else { clamp(b.p99) };
            chart.draw_series([
                PathElement::new(vec![(x, from), (x, clamp(b.p99))], ink),
                PathElement::new(
                    vec![(x - w * 0.4, clamp(b.p99)), (x + w * 0.4, clamp(b.p99))],
                    ink,
                ),
            ])?;
        }
        if max {
            chart.draw_series(std::iter::once(Circle::new(
                (x, clamp(b.max)),
                4,
                PALETTE[3].filled(),
            )))?;
        }
        if !(p50 || p95 || p99 || max) {
            chart.draw_series(std::iter::once(
                EmptyElement::at((x, floor)) + Text::new("–", (0, -4), na_style.clone()),
            ))?;
        }
    }
    Ok(())
}

/// The log-scale y range of a box chart, when the data spans more than two decades.
fn log_range(boxes: &[LatencyBox]) -> Option<(f64, f64)> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let min_p50 = boxes
        .iter()
        .map(|b| b.p50)
        .filter(|v| positive(*v))
        .fold(f64::INFINITY, f64::min);
    let (lo, hi) = finite_bounds(
        boxes
            .iter()
            .flat_map(|b| [b.p50, b.p95, b.p99, b.max])
            .filter(|v| positive(*v)),
    )?;
    if !min_p50.is_finite() || hi / min_p50 <= 100.0 {
        return None;
    }
    Some((lo / 1.5, hi * 1.5))
}

// ---------------------------------------------------------------------------------------------
// Line charts

fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    time: bool,
) -> Result<String> {
    let cleaned: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            let mut pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            pts
        })
        .collect();
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let all = cleaned.iter().flatten();
    let (Some((x0, x1)), Some((y0, y1))) = (
        finite_bounds(all.clone().map(|p| p.0)),
        finite_bounds(all.map(|p| p.1)),
    ) else {
        return no_data(title, &names);
    };

    let (y_lo, y_hi) = if y0 >= 0.0 {
        (0.0, if y1 > 0.0 { y1 * 1.08 } else { 1.0 })
    } else if y1 > y0 {
        let span = y1 - y0;
        (y0 - span * 0.05, y1 + span * 0.08)
    } else {
        (y0 - y0.abs() * 0.1, y1 + y1.abs() * 0.1)
    };

    // The legend sits on the right, as wide as the longest name needs (within bounds).
    let legend_size = if series.len() > 16 {
        VALUE_SIZE - 2.0
    } else {
        VALUE_SIZE
    };
    let legend: Vec<String> = series
        .iter()
        .zip(&cleaned)
        .map(|(s, pts)| {
            if pts.is_empty() {
                format!("{} (no data)", s.name)
            } else {
                s.name.clone()
            }
        })
        .collect();
    let widest = legend
        .iter()
        .map(|n| text_width(n, legend_size))
        .fold(0.0, f64::max);
    let legend_size = if widest + 52.0 > 320.0 {
        (legend_size * 268.0 / widest).max(MIN_LABEL_SIZE)
    } else {
        legend_size
    };
    let plot = LinePlot {
        title,
        x_label,
        y_label,
        series: &cleaned,
        legend: &legend,
        legend_size,
        legend_w: (widest + 52.0).clamp(120.0, 320.0) as u32,
        y_range: y_lo..y_hi,
    };

    // Concurrency-like axes (all positive, spanning 16x or more) read better in log scale,
    // ticked at the data's own x values when there are few of them.
    if !time && x0 > 0.0 && x1 / x0 >= 16.0 {
        let mut xs: Vec<f64> = cleaned.iter().flatten().map(|p| p.0).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        let x_label = format!("{x_label} (log scale)");
        let plot = LinePlot {
            x_label: &x_label,
            ..plot
        };
        let pad = (x1 / x0).powf(0.03);
        return render(|root| plot.draw(root, (x0 / pad..x1 * pad).log_scale(), Some(xs)));
    }
    let (x_lo, x_hi) = if x1 > x0 {
        let pad = if time { 0.0 } else { (x1 - x0) * 0.04 };
        let lo = if x0 >= 0.0 && x0 <= (x1 - x0) * 0.1 {
            0.0
        } else {
            x0 - pad
        };
        (lo, x1 + pad)
    } else {
        let pad = if x0 == 0.0 { 1.0 } else { x0.abs() * 0.1 };
        (x0 - pad, x1 + pad)
    };
    render(|root| plot.draw(root, x_lo..x_hi, None))
}

struct LinePlot<'s> {
    title: &'s str,
    x_label: &'s str,
    y_label: &'s str,
    /// Finite points of each series, sorted by x.
    series: &'s [Vec<(f64, f64)>],
    /// Legend text of each series.
    legend: &'s [String],
    legend_size: f64,
    legend_w: u32,
    y_range: std::ops::Range<f64>,
}

impl LinePlot<'_> {
    /// Draws the chart; `log_x_ticks` (data x values) means a log x axis with custom ticks.
    fn draw<X>(&self, root: &Area, x_spec: X, log_x_ticks: Option<Vec<f64>>) -> Result<()>
    where
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let top = header_height(false);
        draw_header(root, self.title, None)?;
        let mut chart = ChartBuilder::on(root)
            .margin_top(top)
            .margin_left(MARGIN)
            .margin_right(self.legend_w)
            .margin_bottom(MARGIN)
            .x_label_area_size(50)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x_spec, self.y_range.clone())?;
        let mut mesh = chart.configure_mesh();
        mesh.y_labels(8)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .label_style((FONT, TICK_SIZE))
            .axis_desc_style((FONT, DESC_SIZE))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_style(INK);
        if log_x_ticks.is_some() {
            mesh.disable_x_axis().disable_x_mesh();
        } else {
            mesh.x_labels(10);
        }
        mesh.draw()?;

        let (xs, ys) = chart.plotting_area().get_pixel_range();
        if let Some(data_ticks) = log_x_ticks {
            let range = chart.x_range();
            let (lo, hi) = (range.start, range.end);
            let map = |v: f64| chart.backend_coord(&(v, self.y_range.start)).0;
            let mut candidates = Vec::new();
            if data_ticks.len() <= 16 {
                candidates.push(data_ticks);
            }
            candidates.extend(log_tick_sets(lo, hi));
            draw_ticks(root, (&xs, &ys), Axis::X, &candidates, map)?;
        }

        for (i, pts) in self.series.iter().enumerate() {
            let color = series_color(i);
            if pts.len() > 1 {
                chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
            }
            let step = pts.len().div_ceil(MAX_MARKERS).max(1);
            for p in pts.iter().step_by(step) {
                draw_marker(chart.plotting_area(), *p, i, color)?;
            }
        }

        // Legend: a line sample with the series' marker, then the name.
        let row = (font_px(self.legend_size) * 1.6).max(16.0);
        let x = xs.end + 16;
        for (i, name) in self.legend.iter().enumerate() {
            let color = series_color(i);
            let y = ys.start + 8 + (row * (i as f64 + 0.5)) as i32;
            root.draw(&PathElement::new(
                vec![(x, y), (x + 26, y)],
                color.stroke_width(2),
            ))?;
            draw_marker(root, (x + 13, y), i, color)?;
            let ink = if self.series[i].is_empty() {
                MUTED
            } else {
                INK
            };
            root.draw(&Text::new(
                name.as_str(),
                (x + 34, y),
                text_style(self.legend_size, &ink, Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Axis {
    X,
    Y,
}

/// Candidate tick sets of a log axis, densest first: 1-2-5 per decade, then decades, then every
/// 2nd, 3rd... decade.
fn log_tick_sets(lo: f64, hi: f64) -> Vec<Vec<f64>> {
    if !(lo > 0.0 && hi > lo) {
        return Vec::new();
    }
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let in_range = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    let decade = |e: i32| 10f64.powi(e);
    let mut sets = vec![(first..=last)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * decade(e)))
        .filter(in_range)
        .collect::<Vec<_>>()];
    for every in 1..=4 {
        sets.push(
            (first..=last)
                .filter(|e| e.rem_euclid(every) == 0)
                .map(decade)
                .filter(in_range)
                .collect(),
        );
    }
    sets
}

/// Draws the axis line, then ticks, grid lines and labels for the first candidate set whose labels do not overlap
/// (or the last set). `map` gives the pixel position of a value along `axis`.
fn draw_ticks(
    root: &Area,
    (xs, ys): (&std::ops::Range<i32>, &std::ops::Range<i32>),
    axis: Axis,
    candidates: &[Vec<f64>],
    map: impl Fn(f64) -> i32,
) -> Result<()> {
    let span = if axis == Axis::X { xs } else { ys };
    let size = |t: &str| match axis {
        Axis::X => text_width(t, TICK_SIZE) + 10.0,
        Axis::Y => font_px(TICK_SIZE) * 1.5,
    };
    let placed = |ticks: &Vec<f64>| -> Vec<(i32, String)> {
        ticks
            .iter()
            .map(|v| (map(*v), fmt_num(*v)))
            .filter(|(p, _)| span.contains(p) || *p == span.end)
            .collect()
    };
    let fits = |ticks: &[(i32, String)]| {
        ticks.windows(2).all(|w| {
            let need = (size(&w[0].1) + size(&w[1].1)) / 2.0;
            f64::from((w[1].0 - w[0].0).abs()) >= need
        })
    };
    let Some(ticks) = candidates
        .iter()
        .map(placed)
        .find(|t| fits(t))
        .or_else(|| candidates.last().map(placed))
    else {
        return Ok(());
    };
    let (label, axis_line) = match axis {
        Axis::X => (
            text_style(TICK_SIZE, &BLACK, Pos::new(HPos::Center, VPos::Top)),
            [(xs.start, ys.end), (xs.end, ys.end)],
        ),
        Axis::Y => (
            text_style(TICK_SIZE, &BLACK, Pos::new(HPos::Right, VPos::Center)),
            [(xs.start - 1, ys.start), (xs.start - 1, ys.end)],
        ),
    };
    root.draw(&PathElement::new(axis_line.to_vec(), INK))?;
    for (p, text) in ticks {
        let (grid, tick, at) = match axis {
            Axis::X => (
                [(p, ys.start), (p, ys.end)],
                [(p, ys.end), (p, ys.end + 5)],
                (p, ys.end + 8),
            ),
            Axis::Y => (
                [(xs.start, p), (xs.end, p)],
                [(xs.start - 5, p), (xs.start, p)],
                (xs.start - 8, p),
            ),
        };
        root.draw(&PathElement::new(grid.to_vec(), GRID))?;
        root.draw(&PathElement::new(tick.to_vec(), INK))?;
        root.draw(&Text::new(text, at, label.clone()))?;
    }
    Ok(())
}

fn series_color(i: usize) -> RGBColor {
    if i < PALETTE.len() {
        PALETTE[i]
    } else {
        let c = Palette99::pick(i).to_rgba();
        RGBColor(c.0, c.1, c.2)
    }
}

/// Draws marker `shape` (circle, triangle, square, cross, cycling) at `at`.
fn draw_marker<CT>(
    area: &DrawingArea<SVGBackend, CT>,
    at: CT::From,
    shape: usize,
    color: RGBColor,
) -> Result<()>
where
    CT: CoordTranslate,
    CT::From: Clone + 'static,
{
    let fill = color.filled();
    match shape % 4 {
        0 => area.draw(&Circle::new(at, 4, fill))?,
        1 => area.draw(&TriangleMarker::new(at, 6, fill))?,
        2 => area.draw(&(EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], fill)))?,
        _ => area.draw(&Cross::new(at, 5, color.stroke_width(2)))?,
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// Renders onto a fresh white 900x500 SVG and returns the document.
fn render(draw: impl FnOnce(&Area) -> Result<()>) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(buf)
}

/// A valid chart that says "no data", listing the expected series if any.
fn no_data(title: &str, names: &[&str]) -> Result<String> {
    render(|root| {
        draw_header(root, title, None)?;
        let cx = WIDTH as i32 / 2;
        let cy = HEIGHT as i32 / 2;
        root.draw(&Text::new(
            "no data",
            (cx, cy),
            text_style(28.0, &MUTED, Pos::new(HPos::Center, VPos::Center)),
        ))?;
        let small = text_style(VALUE_SIZE, &MUTED, Pos::new(HPos::Center, VPos::Top));
        for (i, name) in names.iter().take(8).enumerate() {
            root.draw(&Text::new(
                format!("{name} (no data)"),
                (cx, cy + 28 + 18 * i as i32),
                small.clone(),
            ))?;
        }
        if names.len() > 8 {
            root.draw(&Text::new(
                format!("and {} more", names.len() - 8),
                (cx, cy + 28 + 18 * 8),
                small,
            ))?;
        }
        Ok(())
    })
}

fn header_height(with_note: bool) -> u32 {
    if with_note {
        62
    } else {
        44
    }
}

fn draw_header(root: &Area, title: &str, note: Option<&str>) -> Result<()> {
    let cx = WIDTH as i32 / 2;
    root.draw(&Text::new(
        title,
        (cx, 12),
        text_style(TITLE_SIZE, &BLACK, Pos::new(HPos::Center, VPos::Top)),
    ))?;
    if let Some(note) = note {
        root.draw(&Text::new(
            note,
            (cx, 38),
            text_style(SUBTITLE_SIZE, &MUTED, Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    Ok(())
}

fn text_style<'a>(size: f64, color: &'a RGBColor, pos: Pos) -> TextStyle<'a> {
    TextStyle::from((FONT, size).into_font())
        .color(color)
        .pos(pos)
}

/// Font size in pixels as written to the SVG for a plotters size.
fn font_px(size: f64) -> f64 {
    size / 1.24
}

/// Estimated rendered width of `text` in pixels.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * font_px(size) * CHAR_EM
}

/// (min, max) of the finite values, `None` when there are none.
fn finite_bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
        })
}

/// A short number for ticks and value labels: 3 significant digits, k/M above 10 000.
fn fmt_num(v: f64) -> String {
    fn trim(s: String) -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
    if !v.is_finite() {
        return "–".to_string();
    }
    let a = v.abs();
    let s = if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a == 0.0 {
        "0".to_string()
    } else {
        let decimals = (2 - a.log10().floor() as i32).clamp(0, 9) as usize;
        trim(format!("{v:.decimals$}"))
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small well-formedness check: one root `<svg>`, balanced and properly nested tags,
    /// quoted attributes and only known entities.
    fn assert_well_formed(svg: &str) {
        let doc = svg.trim();
        assert!(doc.starts_with("<svg"), "does not start with <svg");
        assert!(doc.ends_with("</svg>"), "does not end with </svg>");
        let mut stack: Vec<&str> = Vec::new();
        let mut roots = 0;
        let mut rest = doc;
        while let Some(start) = rest.find('<') {
            check_text(&rest[..start]);
            let after = &rest[start + 1..];
            let end = tag_end(after).unwrap_or_else(|| panic!("unterminated tag: {after:.40}"));
            let tag = &after[..end];
            rest = &after[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().unwrap_or_else(|| panic!("stray </{name}>"));
                assert_eq!(open, name.trim(), "mismatched closing tag");
                continue;
            }
            let name = tag
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap();
            assert!(!name.is_empty(), "empty tag name");
            if stack.is_empty() {
                roots += 1;
            }
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed tags: {stack:?}");
        assert_eq!(roots, 1, "more than one root element");
    }

    /// Index of the `>` closing a tag, skipping quoted attribute values.
    fn tag_end(s: &str) -> Option<usize> {
        let mut quote = None;
        for (i, c) in s.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '<') => panic!("'<' inside a tag: {s:.40}"),
                (None, '>') => return Some(i),
                _ => {}
            }
        }
        None
    }

    fn check_text(text: &str) {
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "bare '&' in text: {entity:.20}"
            );
        }
    }

    fn count(svg: &str, what: &str) -> usize {
        svg.matches(what).count()
    }

    /// How many `<text>` elements hold exactly `text` (plotters writes `>\nTEXT\n</text>`).
    fn texts(svg: &str, text: &str) -> usize {
        count(svg, &format!(">\n{text}\n</text>"))
    }

    fn sample_bars(n: usize) -> Vec<Bar> {
        let systems = ["asynctasq", "celery"];
        let variants = ["asyncio-c10", "threads-c10", "process-c4"];
        let modes = ["drain", "paced"];
        (0..n)
            .map(|i| {
                let value = 800.0 + 137.0 * i as f64;
                Bar {
                    label: format!(
                        "{} {} {}",
                        systems[i % 2],
                        variants[(i / 2) % 3],
                        modes[(i / 6) % 2]
                    ),
                    key: String::new(),
                    value,
                    ci_low: value * 0.93,
                    ci_high: value * 1.06,
                }
            })
            .collect()
    }

    #[test]
    fn bars_are_coloured_by_their_key_with_one_legend_entry_each() {
        let bar = |label: &str, key: &str| Bar {
            label: label.into(),
            key: key.into(),
            value: 10.0,
            ci_low: 9.0,
            ci_high: 11.0,
        };
        let bars = [
            bar("asynctasq asyncio-c10", "asynctasq"),
            bar("celery threads-c10", "celery"),
            bar("celery prefork-c2", "celery"),
        ];
        let svg = bars_with_ci("t", "y", &bars).unwrap();
        assert_well_formed(&svg);
        let fill = |c: RGBColor| format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
        // Before, every bar had BAR_COLOR and there was no legend.
        assert!(!svg.contains(&fill(BAR_COLOR)), "{svg}");
        // Each colour: its bars plus one legend swatch.
        assert_eq!(count(&svg, &fill(PALETTE[0])), 1 + 1);
        assert_eq!(count(&svg, &fill(PALETTE[1])), 2 + 1);
        assert_eq!(texts(&svg, "asynctasq"), 1);
        assert_eq!(texts(&svg, "celery"), 1);
    }

    fn sample_boxes() -> Vec<LatencyBox> {
        vec![
            LatencyBox {
                label: "asynctasq redis".into(),
                p50: 1.2,
                p95: 3.4,
                p99: 8.0,
                max: 21.0,
            },
            LatencyBox {
                label: "celery redis".into(),
                p50: 2.5,
                p95: 7.9,
                p99: 15.2,
                max: 48.0,
            },
            LatencyBox {
                label: "asynctasq postgres".into(),
                p50: 4.1,
                p95: 9.5,
                p99: 19.0,
                max: 35.5,
            },
        ]
    }

    fn sample_series() -> Vec<Series> {
        let levels = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
        let make = |name: &str, scale: f64, sat: f64| Series {
            name: name.to_string(),
            points: levels
                .iter()
                .map(|&c| (c, scale * c / (1.0 + c / sat)))
                .collect(),
        };
        vec![
            make("asynctasq asyncio redis", 900.0, 20.0),
            make("asynctasq threads redis", 500.0, 12.0),
            make("celery prefork redis", 450.0, 8.0),
            make("celery threads redis", 300.0, 6.0),
            make("celery gevent redis", 600.0, 9.0),
        ]
    }

    fn sample_time_series() -> Vec<Series> {
        let rss = |name: &str, base: f64, growth: f64| Series {
            name: name.to_string(),
            points: (0..600)
                .map(|i| {
                    let t = i as f64 * 0.1;
                    (t, base + growth * t + 3.0 * (t * 0.7).sin())
                })
                .collect(),
        };
        vec![
            rss("asynctasq worker RSS", 85.0, 0.05),
            rss("celery worker RSS", 120.0, 0.4),
        ]
    }

    #[test]
    fn bars_have_one_rect_per_bar_and_every_label() {
        for n in [1, 3, 12] {
            let bars = sample_bars(n);
            let svg = bars_with_ci("Throughput", "tasks/s", &bars).unwrap();
            assert_well_formed(&svg);
            for b in &bars {
                assert!(svg.contains(&b.label), "missing label {}", b.label);
            }
            // One background rect plus one per bar.
            assert_eq!(count(&svg, "<rect"), n + 1, "{n} bars");
            assert!(svg.contains("Throughput") && svg.contains("tasks/s"));
        }
    }

    #[test]
    fn short_labels_stay_horizontal_long_ones_turn_vertical() {
        let short: Vec<Bar> = ["a", "b", "c"]
            .iter()
            .map(|l| Bar {
                label: l.to_string(),
                value: 1.0,
                ci_low: 0.9,
                ci_high: 1.1,
                key: String::new(),
            })
            .collect();
        let svg = bars_with_ci("t", "y", &short).unwrap();
        assert_eq!(count(&svg, "rotate(270"), 1, "only the y description");
        let svg = bars_with_ci("t", "y", &sample_bars(12)).unwrap();
        assert_eq!(
            count(&svg, "rotate(270"),
            12 + 1,
            "12 labels plus the y description"
        );
    }

    #[test]
    fn bars_skip_non_finite_values_but_keep_their_label() {
        let mut bars = sample_bars(4);
        bars[1].value = f64::NAN;
        bars[2].ci_high = f64::INFINITY;
        bars[3].value = f64::NEG_INFINITY;
        let svg = bars_with_ci("t", "y", &bars).unwrap();
        assert_well_formed(&svg);
        assert_eq!(count(&svg, "<rect"), 2 + 1);
        assert_eq!(texts(&svg, "–"), 2);
        for b in &bars {
            assert!(svg.contains(&b.label));
        }
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn degenerate_inputs_still_render() {
        let nan = |label: &str| Bar {
            label: label.into(),
            value: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
            key: String::new(),
        };
        let zero = Bar {
            label: "zero".into(),
            value: 0.0,
            ci_low: 0.0,
            ci_high: 0.0,
            key: String::new(),
        };
        let negative = Bar {
            label: "negative".into(),
            value: -5.0,
            ci_low: -6.0,
            ci_high: -4.0,
            key: String::new(),
        };
        for bars in [
            vec![nan("a"), nan("b")],
            vec![zero],
            vec![negative, nan("c")],
        ] {
            let svg = bars_with_ci("t", "y", &bars).unwrap();
            assert_well_formed(&svg);
            for b in &bars {
                assert!(svg.contains(&b.label));
            }
        }
        let boxes = [LatencyBox {
            label: "nothing".into(),
            p50: f64::NAN,
            p95: f64::NAN,
            p99: f64::NAN,
            max: f64::NAN,
        }];
        let svg = latency_boxes("t", "ms", &boxes).unwrap();
        assert_well_formed(&svg);
        assert!(svg.contains("nothing") && texts(&svg, "–") == 1);
        let single = [Series {
            name: "one point".into(),
            points: vec![(3.0, 7.0)],
        }];
        for svg in [
            lines("t", "x", "y", &single).unwrap(),
            time_series("t", "y", &single).unwrap(),
        ] {
            assert_well_formed(&svg);
            assert_eq!(texts(&svg, "one point"), 1);
            assert_eq!(count(&svg, "<circle"), 2, "plot marker and legend marker");
        }
    }

    #[test]
    fn bar_axis_starts_at_zero() {
        let bars = vec![Bar {
            label: "only".into(),
            value: 1000.0,
            ci_low: 990.0,
            ci_high: 1010.0,
            key: String::new(),
        }];
        let svg = bars_with_ci("t", "y", &bars).unwrap();
        assert_eq!(texts(&svg, "0"), 1, "no 0 tick");
    }

    #[test]
    fn labels_are_escaped() {
        let bars = vec![Bar {
            label: "a&b <c>".into(),
            value: 1.0,
            ci_low: 1.0,
            ci_high: 1.0,
            key: String::new(),
        }];
        let svg = bars_with_ci("x & y", "n < 3", &bars).unwrap();
        assert_well_formed(&svg);
        assert!(svg.contains("a&amp;b &lt;c&gt;"));
    }

    #[test]
    fn empty_input_says_no_data() {
        for svg in [
            bars_with_ci("Empty bars", "y", &[]).unwrap(),
            latency_boxes("Empty boxes", "ms", &[]).unwrap(),
            lines("Empty lines", "x", "y", &[]).unwrap(),
            time_series("Empty series", "y", &[]).unwrap(),
        ] {
            assert_well_formed(&svg);
            assert!(svg.contains("no data"));
        }
        let nan_only = [Series {
            name: "ghost".into(),
            points: vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)],
        }];
        let svg = lines("t", "x", "y", &nan_only).unwrap();
        assert_well_formed(&svg);
        assert!(svg.contains("no data") && svg.contains("ghost"));
    }

    #[test]
    fn latency_boxes_have_one_rect_and_one_dot_per_box() {
        let boxes = sample_boxes();
        let svg = latency_boxes("End-to-end latency", "ms", &boxes).unwrap();
        assert_well_formed(&svg);
        for b in &boxes {
            assert!(svg.contains(&b.label));
        }
        assert_eq!(count(&svg, "<rect"), boxes.len() + 1);
        assert_eq!(count(&svg, "<circle"), boxes.len());
        assert!(!svg.contains("log scale"));
    }

    #[test]
    fn latency_boxes_switch_to_log_scale_over_100x() {
        let mut boxes = sample_boxes();
        assert_eq!(log_range(&boxes), None);
        boxes[1].max = 500.0; // 500 / 1.2 > 100
        let (lo, hi) = log_range(&boxes).unwrap();
        assert!(lo > 0.0 && lo < 1.2 && hi > 500.0);
        boxes[2].p99 = f64::NAN;
        boxes[2].max = f64::INFINITY;
        let svg = latency_boxes("Latency", "ms", &boxes).unwrap();
        assert_well_formed(&svg);
        assert!(svg.contains("log scale"));
        assert_eq!(count(&svg, "<rect"), boxes.len() + 1);
        assert_eq!(count(&svg, "<circle"), boxes.len() - 1);
        for b in &boxes {
            assert!(svg.contains(&b.label));
        }
    }

    #[test]
    fn lines_have_every_series_in_the_legend() {
        let series = sample_series();
        let svg = lines(
            "Throughput vs concurrency",
            "concurrency",
            "tasks/s",
            &series,
        )
        .unwrap();
        assert_well_formed(&svg);
        for s in &series {
            assert_eq!(texts(&svg, &s.name), 1, "{}", s.name);
        }
        // Each series in its own color: one line in the plot and one sample in the legend.
        for i in 0..series.len() {
            let c = series_color(i);
            let stroke = format!(
                "stroke=\"#{:02X}{:02X}{:02X}\" stroke-width=\"2\"",
                c.0, c.1, c.2
            );
            let polylines = svg
                .lines()
                .filter(|l| l.starts_with("<polyline") && l.contains(&stroke));
            assert_eq!(polylines.count(), 2, "series {i}");
        }
        // Concurrency 1..64 is drawn on a log axis ticked at the data's x values, once each.
        assert!(svg.contains("concurrency (log scale)"));
        for x in ["1", "2", "4", "8", "16", "32", "64"] {
            assert_eq!(texts(&svg, x), 1, "x tick {x}");
        }
    }

    #[test]
    fn lines_skip_non_finite_points() {
        let series = vec![
            Series {
                name: "with gaps".into(),
                points: vec![
                    (1.0, 10.0),
                    (2.0, f64::NAN),
                    (f64::INFINITY, 3.0),
                    (4.0, 12.0),
                ],
            },
            Series {
                name: "empty one".into(),
                points: vec![],
            },
        ];
        let svg = lines("t", "x", "y", &series).unwrap();
        assert_well_formed(&svg);
        assert!(svg.contains("with gaps") && svg.contains("empty one (no data)"));
        assert!(!svg.contains("NaN"));
        // Two finite points: two circle markers in the plot and one in the legend.
        assert_eq!(count(&svg, "<circle"), 3);
    }

    #[test]
    fn many_series_stay_distinct() {
        let colors: std::collections::HashSet<(u8, u8, u8, usize)> = (0..20)
            .map(|i| {
                let c = series_color(i);
                (c.0, c.1, c.2, i % 4)
            })
            .collect();
        assert_eq!(colors.len(), 20);
    }

    #[test]
    fn time_series_thin_their_markers() {
        let series = sample_time_series();
        let svg = time_series("Worker RSS", "MB", &series).unwrap();
        assert_well_formed(&svg);
        for s in &series {
            assert!(svg.contains(&s.name));
        }
        assert!(svg.contains("time (s)"));
        // Series 0 uses circles: at most MAX_MARKERS in the plot, plus one in the legend.
        let circles = count(&svg, "<circle");
        assert!(
            (2..=MAX_MARKERS + 1).contains(&circles),
            "{circles} circles"
        );
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(-0.0001), "-0.0001");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(1.25), "1.25");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(1276.0), "1276");
        assert_eq!(fmt_num(12_500.0), "12.5k");
        assert_eq!(fmt_num(2_000_000.0), "2M");
        assert_eq!(fmt_num(f64::NAN), "–");
    }

    /// Writes one example of each chart to `$CHARTS_EXAMPLE_DIR` (default /tmp/charts-example)
    /// for a human to look at: `cargo test -p bench-tests --lib charts -- --ignored`.
    #[test]
    #[ignore]
    fn write_examples() {
        let dir = std::env::var("CHARTS_EXAMPLE_DIR")
            .unwrap_or_else(|_| "/tmp/charts-example".to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let mut log_boxes = sample_boxes();
        log_boxes[1].max = 640.0;
        log_boxes.push(LatencyBox {
            label: "celery rabbitmq".into(),
            p50: 0.9,
            p95: 2.0,
            p99: 4.5,
            max: 12.0,
        });
        let examples = [
            (
                "bars",
                bars_with_ci(
                    "Throughput (drain, 20 000 tasks)",
                    "tasks/s",
                    &sample_bars(12),
                ),
            ),
            (
                "bars-few",
                bars_with_ci("Throughput (drain)", "tasks/s", &sample_bars(3)),
            ),
            (
                "boxes",
                latency_boxes("End-to-end latency (paced)", "ms", &sample_boxes()),
            ),
            (
                "boxes-log",
                latency_boxes("End-to-end latency (paced)", "ms", &log_boxes),
            ),
            (
                "lines",
                lines(
                    "Throughput vs concurrency",
                    "concurrency",
                    "tasks/s",
                    &sample_series(),
                ),
            ),
            (
                "time-series",
                time_series("Worker RSS over the run", "RSS (MB)", &sample_time_series()),
            ),
            ("empty", lines("Queue depth", "x", "y", &[])),
            ("bars-many", {
                let mut many = sample_bars(24);
                many[5].value = f64::NAN;
                for b in many.iter_mut().step_by(3) {
                    b.label.push_str(" prefetch-multiplier-4 acks-late");
                }
                bars_with_ci("Throughput, 24 configurations", "tasks/s", &many)
            }),
            ("lines-many", {
                let many: Vec<Series> = (0..12)
                    .map(|i| Series {
                        name: format!("system-{i} with a rather long descriptive name"),
                        points: (0..8)
                            .map(|k| (k as f64 * 10.0, (i * 7 + k * k) as f64 - 20.0))
                            .collect(),
                    })
                    .collect();
                lines("Twelve series, negative values", "x", "y", &many)
            }),
        ];
        for (name, svg) in examples {
            std::fs::write(format!("{dir}/{name}.svg"), svg.unwrap()).unwrap();
        }
    }
}
