//! `ringway-plot CHART.json OUT.svg`: draws the comparison driver's bar chart (see
//! `ringway_tools::plot`). `-` as CHART reads standard input.

use std::io::Read;

use anyhow::Context;
use clap::Parser;

/// Draws the bar chart of tools/compare/compare.py (JSON in, SVG out).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Chart description (JSON: title, note, order, panels[{title, unit, values}]); - = stdin.
    chart: String,
    /// SVG file to write.
    out: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut text = String::new();
    if args.chart == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the chart from stdin")?;
    } else {
        text = std::fs::read_to_string(&args.chart)
            .with_context(|| format!("reading {}", args.chart))?;
    }
    let chart: ringway_tools::plot::Chart =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", args.chart))?;
    let svg = ringway_tools::plot::render_svg(&chart)?;
    std::fs::write(&args.out, svg).with_context(|| format!("writing {}", args.out))?;
    Ok(())
}
