//! Bar charts of the comparison driver (`tools/compare/compare.py`), drawn with `plotters`
//! into SVG.
//!
//! Input is a [`Chart`]: a title, a note, the proxies in display order, and panels (one per
//! scenario, each with its own y scale, since µs per request for a 2-byte response and µs per
//! MiB for an upload differ by orders of magnitude), each a map proxy → value. A proxy without
//! a value (or a NaN one) in a panel is left out of that panel. Output is one standalone SVG.

use std::collections::BTreeMap;

use plotters::prelude::*;
use plotters::style::text_anchor;
use serde::Deserialize;

/// What `ringway-plot` reads (JSON).
#[derive(Debug, Deserialize)]
pub struct Chart {
    pub title: String,
    #[serde(default)]
    pub note: String,
    /// Proxies left to right.
    pub order: Vec<String>,
    pub panels: Vec<Panel>,
}

#[derive(Debug, Deserialize)]
pub struct Panel {
    pub title: String,
    /// The y axis unit, e.g. "CPU µs/req".
    pub unit: String,
    pub values: BTreeMap<String, f64>,
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("the chart has no panels")]
    Empty,
    #[error("drawing failed: {0}")]
    Draw(String),
}

const PANEL_W: u32 = 260;
const PANEL_H: u32 = 280;
const HEADER_H: u32 = 56;

fn color_of(name: &str, i: usize) -> RGBColor {
    match name {
        "ringway" => RGBColor(0xd9, 0x48, 0x0f),
        "nginx" => RGBColor(0x2b, 0x8a, 0x3e),
        "haproxy" => RGBColor(0x1c, 0x7e, 0xd6),
        "envoy" => RGBColor(0x70, 0x48, 0xe8),
        "direct" => RGBColor(0x86, 0x8e, 0x96),
        _ => [
            RGBColor(0x49, 0x50, 0x57),
            RGBColor(0xe6, 0x77, 0x00),
            RGBColor(0x0b, 0x72, 0x85),
        ][i % 3],
    }
}

/// Smallest 1/2/2.5/5 × 10^k at or above `x` (the axis top).
pub fn nice_max(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || x.is_infinite() {
        return 1.0;
    }
    let k = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * k >= x * (1.0 - 1e-12) {
            return m * k;
        }
    }
    10.0 * k
}

/// A value as printed on its bar: fewer decimals for larger values.
pub fn label(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws `chart` and returns the SVG text.
pub fn render_svg(chart: &Chart) -> Result<String, PlotError> {
    if chart.panels.is_empty() {
        return Err(PlotError::Empty);
    }
    let cols = chart.panels.len().min(4) as u32;
    let rows = (chart.panels.len() as u32).div_ceil(cols);
    let size = (cols * PANEL_W, HEADER_H + rows * PANEL_H);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root, chart, rows as usize, cols as usize)
            .map_err(|e| PlotError::Draw(e.to_string()))?;
        root.present().map_err(|e| PlotError::Draw(e.to_string()))?;
    }
    Ok(svg)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    chart: &Chart,
    rows: usize,
    cols: usize,
) -> DrawResult {
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER_H);
    let w = header.dim_in_pixel().0 as i32;
    header.draw(&Text::new(
        chart.title.clone(),
        (w / 2, 10),
        ("sans-serif", 18)
            .into_font()
            .style(FontStyle::Bold)
            .color(&BLACK)
            .pos(text_anchor::Pos::new(
                text_anchor::HPos::Center,
                text_anchor::VPos::Top,
            )),
    ))?;
    if !chart.note.is_empty() {
        header.draw(&Text::new(
            chart.note.clone(),
            (w / 2, 34),
            ("sans-serif", 12)
                .into_font()
                .color(&RGBColor(0x55, 0x55, 0x55))
                .pos(text_anchor::Pos::new(
                    text_anchor::HPos::Center,
                    text_anchor::VPos::Top,
                )),
        ))?;
    }
    let areas = body.split_evenly((rows, cols));
    for (panel, area) in chart.panels.iter().zip(areas.iter()) {
        draw_panel(area, panel, &chart.order)?;
    }
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
    order: &[String],
) -> DrawResult {
    let bars: Vec<(&str, f64)> = order
        .iter()
        .filter_map(|n| {
            let v = *panel.values.get(n)?;
            v.is_finite().then_some((n.as_str(), v))
        })
        .collect();
    let top = nice_max(bars.iter().map(|b| b.1).fold(0.0, f64::max) * 1.12);
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(
            &panel.title,
            ("sans-serif", 14).into_font().style(FontStyle::Bold),
        )
        .margin(8)
        .x_label_area_size(22)
        .y_label_area_size(54)
        // A segmented range 0..k has k + 1 segments; one bar still needs a range of two.
        .build_cartesian_2d((0..n.max(2) - 1).into_segmented(), 0f64..top)?;
    let names: Vec<&str> = bars.iter().map(|b| b.0).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(panel.unit.as_str())
        .y_labels(5)
        .y_label_formatter(&|v| {
            if top >= 20.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .x_labels(n)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => names.get(*i).map_or(String::new(), |s| s.to_string()),
            _ => String::new(),
        })
        .light_line_style(RGBColor(0xe9, 0xec, 0xef))
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (name, v))| {
        let mut r = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *v),
            ],
            color_of(name, i).filled(),
        );
        r.set_margin(0, 0, 10, 10);
        r
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        Text::new(
            label(*v),
            (SegmentValue::CenterOf(i), *v),
            ("sans-serif", 11)
                .into_font()
                .color(&BLACK)
                .pos(text_anchor::Pos::new(
                    text_anchor::HPos::Center,
                    text_anchor::VPos::Bottom,
                )),
        )
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_max_rounds_up_to_a_round_number() {
        for (x, want) in [
            (0.0, 1.0),
            (0.73, 1.0),
            (1.0, 1.0),
            (1.1, 2.0),
            (2.2, 2.5),
            (3.0, 5.0),
            (7.0, 10.0),
            (18.0, 20.0),
            (53.4, 100.0),
            (135.0, 200.0),
            (f64::NAN, 1.0),
        ] {
            assert_eq!(nice_max(x), want, "nice_max({x})");
        }
    }

    #[test]
    fn labels_use_fewer_decimals_for_large_values() {
        assert_eq!(label(0.604), "0.60");
        assert_eq!(label(10.18), "10.2");
        assert_eq!(label(135.09), "135");
    }

    #[test]
    fn renders_one_bar_and_label_per_proxy_with_a_value() {
        let chart: Chart = serde_json::from_str(
            r#"{"title": "CPU per request", "note": "test", "order": ["ringway", "nginx", "envoy"],
                "panels": [
                  {"title": "small", "unit": "CPU µs/req", "values": {"ringway": 10.18, "nginx": 20.06}},
                  {"title": "idle", "unit": "KiB/conn", "values": {"ringway": 0.6, "nginx": 0.73, "envoy": 48.0}}
                ]}"#,
        )
        .unwrap();
        let svg = render_svg(&chart).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in [
            "CPU per request",
            "small",
            "idle",
            "10.2",
            "20.1",
            "0.60",
            "48.0",
            "envoy",
        ] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        // Two bars in the first panel, three in the second.
        let bars =
            svg.matches("fill=\"#D9480F\"").count() + svg.matches("fill=\"#d9480f\"").count();
        assert_eq!(bars, 2, "one ringway bar per panel");
    }

    #[test]
    fn refuses_an_empty_chart() {
        let chart = Chart {
            title: "t".into(),
            note: String::new(),
            order: vec![],
            panels: vec![],
        };
        assert!(matches!(render_svg(&chart), Err(PlotError::Empty)));
    }
}
