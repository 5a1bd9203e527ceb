//! The pictures of `epitrace eval`: PNG files beside the JSON report.
//!
//! - `<stem>.pr.png`: precision against recall of `likelihood >= t` over
//!   the thresholds of the report, the configured close threshold marked;
//! - `<stem>.reliability.png`: the reliability diagram (share of true
//!   exposures against mean likelihood per bin; the diagonal is perfect
//!   calibration), with each bin's count;
//! - `<stem>.clusters.png`: per true cluster, the best Jaccard of cases any
//!   detected cluster reaches with it, blue when matched one to one, red
//!   when not; the 0.5 bar of a match drawn.
//!
//! Text is drawn with a TrueType font read at run time (`--plot-font`, or
//! the first of DejaVu Sans and Liberation Sans found in
//! `/usr/share/fonts`; Debian: `fonts-dejavu-core`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use epitrace_tools::calibration::LikelihoodReport;
use epitrace_tools::eval::OneToOne;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Where a TrueType font is looked for when `--plot-font` is not given.
pub(crate) const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
];

static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Registers the font once for the process (plotters keeps it for good).
fn register(font: Option<&Path>) -> Result<()> {
    FONT.get_or_init(|| {
        let path = match font {
            Some(p) => p.to_path_buf(),
            None => FONT_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    format!(
                        "no TrueType font for the plots: give --plot-font, or install one of {} (Debian: apt-get install fonts-dejavu-core)",
                        FONT_PATHS.join(", ")
                    )
                })?,
        };
        let bytes =
            std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        // plotters wants the font for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a TrueType font", path.display()))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

fn draw_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

/// The plot files of a report whose JSON is `json`: `<stem>.<name>.png` in
/// its folder.
pub(crate) fn plot_path(json: &Path, name: &str) -> PathBuf {
    let stem = json
        .file_stem()
        .map_or_else(|| "eval".to_owned(), |s| s.to_string_lossy().into_owned());
    json.with_file_name(format!("{stem}.{name}.png"))
}

/// Writes the plots of a report; returns the files written.
pub(crate) fn write_plots(
    json: &Path,
    likelihood: &LikelihoodReport,
    close_threshold: f64,
    clusters: Option<&OneToOne>,
    font: Option<&Path>,
) -> Result<Vec<PathBuf>> {
    register(font)?;
    let mut written = Vec::new();
    let pr = plot_path(json, "pr");
    precision_recall(&pr, likelihood, close_threshold)
        .with_context(|| format!("writing {}", pr.display()))?;
    written.push(pr);
    let rel = plot_path(json, "reliability");
    reliability(&rel, likelihood).with_context(|| format!("writing {}", rel.display()))?;
    written.push(rel);
    if let Some(o) = clusters {
        let cl = plot_path(json, "clusters");
        cluster_bars(&cl, o).with_context(|| format!("writing {}", cl.display()))?;
        written.push(cl);
    }
    Ok(written)
}

const SIZE: (u32, u32) = (720, 540);

/// A chart of the unit square (both axes 0 to 1) with its caption, mesh and
/// axis names.
type UnitChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn unit_square<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<UnitChart<'a, 'b>> {
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..1.02f64, 0f64..1.02f64)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .max_light_lines(2)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(draw_err)?;
    Ok(chart)
}

/// Draws the series' legend in a framed box.
fn legend<'a, 'b: 'a>(chart: &mut UnitChart<'a, 'b>, at: SeriesLabelPosition) -> Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)
}

fn precision_recall(path: &Path, r: &LikelihoodReport, close_threshold: f64) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let mut chart = unit_square(
        &root,
        "Exposures: precision and recall of likelihood >= t",
        "recall",
        "precision",
    )?;
    let points: Vec<(f64, f64, f64)> = r
        .curve
        .iter()
        .filter_map(|p| Some((p.recall?, p.precision?, p.threshold)))
        .collect();
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|(x, y, _)| (*x, *y)),
            BLUE.stroke_width(2),
        ))
        .map_err(draw_err)?
        .label("likelihood >= t (t = 0, 0.05, ..., 0.95)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(
            points
                .iter()
                .map(|(x, y, _)| Circle::new((*x, *y), 3, BLUE.filled())),
        )
        .map_err(draw_err)?;
    // The configured threshold: the curve point nearest to it.
    if let Some((x, y, t)) = points.iter().min_by(|a, b| {
        (a.2 - close_threshold)
            .abs()
            .total_cmp(&(b.2 - close_threshold).abs())
    }) {
        chart
            .draw_series(std::iter::once(Circle::new(
                (*x, *y),
                7,
                RED.stroke_width(2),
            )))
            .map_err(draw_err)?
            .label(format!("close threshold (t = {t:.2})"))
            .legend(|(x, y)| Circle::new((x + 9, y), 6, RED.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

fn reliability(path: &Path, r: &LikelihoodReport) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let ece = r
        .ece
        .map_or_else(|| "n/a".to_owned(), |e| format!("{e:.3}"));
    let brier = r
        .brier
        .map_or_else(|| "n/a".to_owned(), |e| format!("{e:.3}"));
    let mut chart = unit_square(
        &root,
        &format!("Reliability (expected calibration error {ece}, Brier {brier})"),
        "mean likelihood in the bin",
        "share of them truly exposed",
    )?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4)))
        .map_err(draw_err)?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.4)));
    let bins: Vec<(f64, f64, usize)> = r
        .reliability
        .iter()
        .filter_map(|b| Some((b.mean_likelihood?, b.observed?, b.count)))
        .collect();
    chart
        .draw_series(LineSeries::new(
            bins.iter().map(|(x, y, _)| (*x, *y)),
            BLUE.stroke_width(2),
        ))
        .map_err(draw_err)?
        .label("epitrace (ten bins; count beside each)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(bins.iter().map(|(x, y, n)| {
            EmptyElement::at((*x, *y))
                + Circle::new((0, 0), 4, BLUE.filled())
                + Text::new(format!("{n}"), (6, -16), ("sans-serif", 13))
        }))
        .map_err(draw_err)?;
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

fn cluster_bars(path: &Path, o: &OneToOne) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let n = o.true_clusters.max(1);
    let f1 = o.f1.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Clusters one to one: {} of {} true matched, {} detected (F1 {f1})",
                o.matched, o.true_clusters, o.detected
            ),
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0usize..n, 0f64..1.02f64)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .max_light_lines(2)
        .disable_x_mesh()
        .x_desc("true clusters, in the truth's order: matched one to one (blue) or not (red)")
        .y_desc("best Jaccard of cases with a detected cluster")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(draw_err)?;
    let jaccards: Vec<(usize, f64, bool)> = o
        .best
        .iter()
        .enumerate()
        .map(|(i, (_, j, m))| (i, j.max(0.01), *m))
        .collect();
    chart
        .draw_series(jaccards.iter().map(|(i, j, matched)| {
            let colour = if *matched { BLUE } else { RED };
            Rectangle::new([(*i, 0.0), (*i + 1, *j)], colour.mix(0.7).filled())
        }))
        .map_err(draw_err)?;
    chart
        .draw_series(LineSeries::new([(0, 0.5), (n, 0.5)], BLACK.mix(0.5)))
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use epitrace_tools::calibration::{CurvePoint, ReliabilityBin};
    use epitrace_tools::eval::{OneToOneMatch, Score};

    fn report() -> LikelihoodReport {
        let score = Score::of("class", "close", 90, 10, 10);
        LikelihoodReport {
            exposures: 1000,
            transit: epitrace_tools::calibration::TransitScore::default(),
            without_likelihood: 0,
            close: score.clone(),
            close_fine: score.clone(),
            close_or_area: score,
            close_by_source: Vec::new(),
            curve: (0..20)
                .map(|i| CurvePoint {
                    threshold: f64::from(i) * 0.05,
                    precision: Some(0.1 + f64::from(i) * 0.04),
                    recall: Some(1.0 - f64::from(i) * 0.045),
                    predicted: 1000 - 40 * usize::try_from(i).unwrap_or(0),
                })
                .collect(),
            brier: Some(0.05),
            ece: Some(0.02),
            reliability: (0..10)
                .map(|i| ReliabilityBin {
                    from: f64::from(i) / 10.0,
                    to: f64::from(i + 1) / 10.0,
                    count: 10,
                    mean_likelihood: Some(f64::from(i) / 10.0 + 0.05),
                    observed: Some(f64::from(i) / 10.0 + 0.03),
                })
                .collect(),
        }
    }

    /// The plots are PNG files of the right size. Needs the font the
    /// bootstrap installs (fonts-dejavu-core): fails, never skips, without.
    #[test]
    fn the_plots_are_drawn_as_png_beside_the_json() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let json = dir.path().join("report.json");
        let clusters = OneToOne {
            true_clusters: 3,
            detected: 2,
            matched: 2,
            pairs: vec![
                OneToOneMatch {
                    true_id: "T1".into(),
                    detected_id: "c1".into(),
                    jaccard: 0.8,
                    source_named: true,
                    detection_delay_h: Some(4.0),
                },
                OneToOneMatch {
                    true_id: "T2".into(),
                    detected_id: "c2".into(),
                    jaccard: 0.5,
                    source_named: false,
                    detection_delay_h: None,
                },
            ],
            best: vec![
                ("T1".into(), 0.8, true),
                ("T2".into(), 0.5, true),
                ("T3".into(), 0.2, false),
            ],
            ..OneToOne::default()
        };
        let files = write_plots(&json, &report(), 0.5, Some(&clusters), None)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(files.len(), 3);
        for f in files {
            let bytes = std::fs::read(&f).unwrap_or_else(|e| panic!("{e}"));
            assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", f.display());
            // Width and height in the IHDR chunk.
            assert_eq!(&bytes[16..24], &[0, 0, 2, 208, 0, 0, 2, 28], "720 x 540");
            assert!(bytes.len() > 5_000, "{} is nearly empty", f.display());
        }
    }

    #[test]
    fn plots_go_beside_the_json() {
        assert_eq!(
            plot_path(Path::new("/x/eval.json"), "pr"),
            PathBuf::from("/x/eval.pr.png")
        );
    }
}
