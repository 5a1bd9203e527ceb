//! How good the exposure likelihood is, and how to fit it.
//!
//! [`likelihood_report`] scores the live exposures of a simulator run by
//! contact class and by likelihood against the truth: precision, recall and
//! F1 of `close`, of `close ∪ area`; the precision-recall curve over the
//! likelihood threshold; calibration (Brier score, expected calibration
//! error over ten equal-width bins, the reliability table).
//!
//! [`examples`] turns the same run into labelled examples (the exposure's
//! location basis, whether the pair truly met the rule), which
//! [`write_examples`] stores as CSV; [`fit`] fits the logistic model of
//! `epitrace_core::likelihood` to examples of cities other than the one
//! evaluated (`epitrace calibrate`), by Newton's method on the log-loss
//! with a small ridge.

use std::collections::BTreeMap;
use std::path::Path;

use epitrace_core::{Basis, LikelihoodConfig};
use epitrace_model::records::{ContactClass, Exposure};

use crate::ToolError;
use crate::eval::{Score, TruthSet, ratio as share};

/// One live exposure of a truth case, labelled.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    /// The case.
    pub case_id: String,
    /// The contact's resident number in the truth.
    pub person: u32,
    /// Seconds of fine, near, wide and apart co-location
    /// ([`LocationBasis`]); zero when the record has no basis.
    ///
    /// [`LocationBasis`]: epitrace_model::records::LocationBasis
    pub fine_s: u32,
    /// See `fine_s`.
    pub near_s: u32,
    /// See `fine_s`.
    pub wide_s: u32,
    /// See `fine_s`.
    pub apart_s: u32,
    /// Of those seconds, the co-travel ones (`LocationBasis::transit_s`);
    /// 0 in files written before it.
    #[serde(default)]
    pub transit_s: u32,
    /// The likelihood published; empty when the record has none.
    pub likelihood: Option<f64>,
    /// Whether the record's class is `CLOSE`.
    pub close: bool,
    /// Whether the pair truly met the exposure rule.
    pub truth: bool,
}

impl Example {
    /// Whether it is a transit contact: most of its counted time on one
    /// moving path.
    #[must_use]
    pub fn is_transit(&self) -> bool {
        epitrace_model::records::LocationBasis {
            fine_s: self.fine_s,
            near_s: self.near_s,
            wide_s: self.wide_s,
            apart_s: self.apart_s,
            transit_s: self.transit_s,
        }
        .is_transit()
    }

    /// The basis, in ms.
    #[must_use]
    pub fn basis(&self) -> Basis {
        Basis {
            fine_ms: i64::from(self.fine_s) * 1000,
            near_ms: i64::from(self.near_s) * 1000,
            wide_ms: i64::from(self.wide_s) * 1000,
            apart_ms: i64::from(self.apart_s) * 1000,
            transit_ms: i64::from(self.transit_s) * 1000,
        }
    }
}

/// The live exposures of the truth's cases whose contact maps to a
/// resident, labelled by the truth: one per (case, resident), the most
/// likely of a resident's pseudonyms (a phone and a card are one person),
/// in (case, resident) order.
#[must_use]
pub fn examples(truth: &TruthSet, live: &[Exposure]) -> Vec<Example> {
    let mut best: BTreeMap<(String, u32), Example> = BTreeMap::new();
    for e in live.iter().filter(|e| truth.has_case(e.case_id.as_str())) {
        let Some(person) = truth.resident_of(&e.contact) else {
            continue;
        };
        let b = e.basis.unwrap_or_default();
        let example = Example {
            case_id: e.case_id.as_str().to_owned(),
            person,
            fine_s: b.fine_s,
            near_s: b.near_s,
            wide_s: b.wide_s,
            apart_s: b.apart_s,
            transit_s: b.transit_s,
            likelihood: e.likelihood.map(|p| p.get()),
            close: e.contact_class == Some(ContactClass::Close),
            truth: truth.is_exposed(e.case_id.as_str(), person),
        };
        let rank = |x: &Example| (x.likelihood.unwrap_or(-1.0), x.fine_s, x.near_s);
        match best.entry((example.case_id.clone(), person)) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(example);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if rank(&example) > rank(o.get()) {
                    o.insert(example);
                }
            }
        }
    }
    best.into_values().collect()
}

/// Writes examples as CSV (a header, one row each).
///
/// # Errors
/// [`ToolError::Io`] naming the file.
pub fn write_examples(path: &Path, examples: &[Example]) -> Result<(), ToolError> {
    let io_err = |e: &dyn std::fmt::Display| ToolError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut w = csv::Writer::from_path(path).map_err(|e| io_err(&e))?;
    for e in examples {
        w.serialize(e).map_err(|e| io_err(&e))?;
    }
    w.flush().map_err(|e| io_err(&e))
}

/// Reads [`write_examples`]' CSV.
///
/// # Errors
/// [`ToolError::Io`] for a missing or malformed file, naming it.
pub fn read_examples(path: &Path) -> Result<Vec<Example>, ToolError> {
    let io_err = |e: &dyn std::fmt::Display| ToolError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut r = csv::Reader::from_path(path).map_err(|e| io_err(&e))?;
    r.deserialize()
        .collect::<Result<Vec<Example>, _>>()
        .map_err(|e| io_err(&e))
}

/// One point of the precision-recall curve.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CurvePoint {
    /// Exposures with a likelihood at or above this count as predicted.
    pub threshold: f64,
    /// Of them, true.
    pub precision: Option<f64>,
    /// Of the true exposures, predicted.
    pub recall: Option<f64>,
    /// How many are predicted.
    pub predicted: usize,
}

/// One bin of the reliability diagram.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReliabilityBin {
    /// The bin's lower bound (inclusive).
    pub from: f64,
    /// Its upper bound (exclusive; the last bin includes 1).
    pub to: f64,
    /// Exposures whose likelihood falls in it.
    pub count: usize,
    /// Their mean likelihood.
    pub mean_likelihood: Option<f64>,
    /// The share of them that are true.
    pub observed: Option<f64>,
}

/// Contact classes and likelihood against the truth.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LikelihoodReport {
    /// Live exposures scored (truth cases, known contacts).
    pub exposures: usize,
    /// Of those, records without a likelihood (written before it).
    pub without_likelihood: usize,
    /// The `close` class over every true exposure.
    pub close: Score,
    /// The `close` class: precision over all its records, recall over the
    /// true exposures where at least one side had fine evidence (see
    /// [`TruthSet::fine_evidence`]).
    pub close_fine: Score,
    /// `close ∪ area` (every live exposure) over every true exposure.
    pub close_or_area: Score,
    /// The `close` class by data source (`gps`: both phones report fixes,
    /// `mixed`, `tower`: neither does): precision and recall within each.
    pub close_by_source: Vec<Score>,
    /// Precision and recall of `likelihood >= t`, t = 0, 0.05, …, 0.95.
    pub curve: Vec<CurvePoint>,
    /// Mean squared difference of likelihood and truth (0 or 1).
    pub brier: Option<f64>,
    /// Expected calibration error: the count-weighted mean of
    /// |mean likelihood − share true| over ten equal-width bins.
    pub ece: Option<f64>,
    /// The ten bins.
    pub reliability: Vec<ReliabilityBin>,
    /// Co-travel against the truth's transit exposures.
    pub transit: TransitScore,
}

/// Co-travel: a published exposure is a transit contact when most of its
/// counted time is on one moving path (`basis.transit_s` at least half of
/// it, [`Example::is_transit`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TransitScore {
    /// Transit contacts published.
    pub published: usize,
    /// Of those, true exposures (whatever their setting).
    pub published_true: usize,
    /// Of those, pairs whose true setting is transit.
    pub published_in_car: usize,
    /// True transit exposures between two phones that report GPS fixes
    /// ([`TruthSet::exposed_transit_gps_pairs`]).
    pub true_gps: usize,
    /// Of those, published as transit contacts.
    pub found: usize,
    /// `published_true / published`.
    pub precision: Option<f64>,
    /// `found / true_gps`.
    pub recall: Option<f64>,
}

/// Scores examples (all of one run) against the truth's exposures.
#[must_use]
pub fn likelihood_report(truth: &TruthSet, examples: &[Example]) -> LikelihoodReport {
    let true_total = truth.exposed_pairs();
    let fine_total = truth.exposed_fine_pairs();
    let score = |name: &str, tp: usize, fp: usize, true_n: usize| {
        Score::of(
            "class",
            name,
            tp as u64,
            fp as u64,
            true_n.saturating_sub(tp) as u64,
        )
    };
    let close: Vec<&Example> = examples.iter().filter(|e| e.close).collect();
    let close_tp = close.iter().filter(|e| e.truth).count();
    let close_fine_tp = close
        .iter()
        .filter(|e| e.truth && truth.fine_evidence(&e.case_id, e.person))
        .count();
    let all_tp = examples.iter().filter(|e| e.truth).count();
    let close_by_source = truth
        .exposed_by_source()
        .into_iter()
        .map(|(source, true_n)| {
            let here: Vec<&&Example> = close
                .iter()
                .filter(|e| truth.source_of(&e.case_id, e.person) == source)
                .collect();
            let tp = here.iter().filter(|e| e.truth).count();
            Score::of(
                "close_source",
                source,
                tp as u64,
                (here.len() - tp) as u64,
                true_n.saturating_sub(tp) as u64,
            )
        })
        .collect();
    let scored: Vec<(f64, bool)> = examples
        .iter()
        .filter_map(|e| Some((e.likelihood?, e.truth)))
        .collect();
    let curve = (0..20)
        .map(|i| {
            let t = f64::from(i) * 0.05;
            let predicted = scored.iter().filter(|(p, _)| *p >= t).count();
            let tp = scored.iter().filter(|(p, y)| *p >= t && *y).count();
            CurvePoint {
                threshold: t,
                precision: share(tp, predicted),
                recall: share(tp, true_total),
                predicted,
            }
        })
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let brier = (!scored.is_empty()).then(|| {
        scored
            .iter()
            .map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2))
            .sum::<f64>()
            / scored.len() as f64
    });
    let mut bins: Vec<(usize, f64, usize)> = vec![(0, 0.0, 0); 10];
    for (p, y) in &scored {
        // The last bin includes 1.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = ((p * 10.0).floor() as usize).min(9);
        if let Some(b) = bins.get_mut(i) {
            b.0 += 1;
            b.1 += p;
            b.2 += usize::from(*y);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let ece = (!scored.is_empty()).then(|| {
        bins.iter()
            .filter(|b| b.0 > 0)
            .map(|(n, sum, pos)| (*n as f64) * (sum / *n as f64 - *pos as f64 / *n as f64).abs())
            .sum::<f64>()
            / scored.len() as f64
    });
    #[allow(clippy::cast_precision_loss)]
    let reliability = bins
        .iter()
        .enumerate()
        .map(|(i, (n, sum, pos))| ReliabilityBin {
            from: i as f64 / 10.0,
            to: (i + 1) as f64 / 10.0,
            count: *n,
            mean_likelihood: (*n > 0).then(|| sum / *n as f64),
            observed: share(*pos, *n),
        })
        .collect();
    let true_transit = truth.exposed_transit_gps_pairs();
    let transit: Vec<&Example> = examples.iter().filter(|e| e.is_transit()).collect();
    let transit_tp = transit.iter().filter(|e| e.truth).count();
    let transit_found = transit
        .iter()
        .filter(|e| true_transit.contains(&(e.case_id.clone(), e.person)))
        .count();
    let transit = TransitScore {
        published: transit.len(),
        published_true: transit_tp,
        published_in_car: transit
            .iter()
            .filter(|e| truth.setting_of(&e.case_id, e.person) == Some("transit"))
            .count(),
        true_gps: true_transit.len(),
        found: transit_found,
        precision: share(transit_tp, transit.len()),
        recall: share(transit_found, true_transit.len()),
    };
    LikelihoodReport {
        transit,
        exposures: examples.len(),
        without_likelihood: examples.len() - scored.len(),
        close: score("close", close_tp, close.len() - close_tp, true_total),
        close_fine: score(
            "close_fine",
            close_fine_tp,
            close.len() - close_tp,
            fine_total,
        ),
        close_or_area: score("close_or_area", all_tp, examples.len() - all_tp, true_total),
        close_by_source,
        curve,
        brier,
        ece,
        reliability,
    }
}

/// The report as a table for people.
#[must_use]
pub fn likelihood_table(r: &LikelihoodReport) -> String {
    use std::fmt::Write as _;
    let num = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nContact classes ({} exposures, {} without a likelihood)",
        r.exposures, r.without_likelihood
    );
    let _ = writeln!(
        s,
        "{:<22} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
        "class", "TP", "FP", "FN", "precision", "recall", "F1"
    );
    let by_source: Vec<(String, &Score)> = r
        .close_by_source
        .iter()
        .map(|sc| (format!("close, source {}", sc.name), sc))
        .collect();
    for (label, sc) in [
        ("close".to_owned(), &r.close),
        ("close (fine evidence)".to_owned(), &r.close_fine),
        ("close or area".to_owned(), &r.close_or_area),
    ]
    .into_iter()
    .chain(by_source)
    {
        let _ = writeln!(
            s,
            "{:<22} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
            label,
            sc.tp,
            sc.fp,
            sc.fn_,
            num(sc.precision),
            num(sc.recall),
            num(sc.f1)
        );
    }
    let t = &r.transit;
    let _ = writeln!(
        s,
        "transit contacts: {} published ({} true exposures, {} in the same car), precision {}; recall {} ({} of {} true transit exposures between GPS phones)",
        t.published,
        t.published_true,
        t.published_in_car,
        num(t.precision),
        num(t.recall),
        t.found,
        t.true_gps
    );
    let _ = writeln!(
        s,
        "calibration: Brier {}, expected calibration error {}",
        num(r.brier),
        num(r.ece)
    );
    let _ = writeln!(
        s,
        "{:<11} {:>7} {:>10} {:>9}",
        "likelihood", "count", "mean", "observed"
    );
    for b in &r.reliability {
        let _ = writeln!(
            s,
            "{:<11} {:>7} {:>10} {:>9}",
            format!("{:.1}-{:.1}", b.from, b.to),
            b.count,
            num(b.mean_likelihood),
            num(b.observed)
        );
    }
    let _ = writeln!(
        s,
        "{:<11} {:>9} {:>7} {:>9}",
        "threshold", "precision", "recall", "predicted"
    );
    for p in r.curve.iter().step_by(2) {
        let _ = writeln!(
            s,
            "{:<11} {:>9} {:>7} {:>9}",
            format!("{:.2}", p.threshold),
            num(p.precision),
            num(p.recall),
            p.predicted
        );
    }
    s
}

/// Parameters of the model: the intercept and one slope per feature.
const PARAMS: usize = 6;

/// A fitted model: the coefficients and how well they fit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fit {
    /// Intercept, fine, near, wide, apart, transit (see
    /// [`LikelihoodConfig`]).
    pub coefficients: [f64; PARAMS],
    /// Examples fitted.
    pub examples: usize,
    /// Of them, true.
    pub positives: usize,
    /// Mean log-loss on them.
    pub log_loss: f64,
    /// Newton steps taken.
    pub steps: usize,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn dot(a: &[f64; PARAMS], b: &[f64; PARAMS]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `a x = b` (Gaussian elimination, partial pivoting); `None` when
/// singular.
fn solve(mut a: [[f64; PARAMS]; PARAMS], mut b: [f64; PARAMS]) -> Option<[f64; PARAMS]> {
    for col in 0..PARAMS {
        let pivot = (col..PARAMS).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let head = a[col];
        for row in col + 1..PARAMS {
            let f = a[row][col] / head[col];
            for (x, h) in a[row].iter_mut().zip(head).skip(col) {
                *x -= f * h;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; PARAMS];
    for row in (0..PARAMS).rev() {
        let tail: f64 = (row + 1..PARAMS).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    Some(x)
}

/// Fits the logistic model to examples: maximum likelihood with a ridge of
/// `1e-3` on the slopes, by Newton's method (at most 100 steps).
///
/// # Errors
/// [`ToolError::Calibration`] with no example, with examples all of one
/// label, or when the fit does not converge.
pub fn fit(examples: &[Example]) -> Result<Fit, ToolError> {
    let fail = |reason: &str| ToolError::Calibration {
        reason: reason.to_owned(),
    };
    let positives = examples.iter().filter(|e| e.truth).count();
    if examples.is_empty() {
        return Err(fail("no example to fit"));
    }
    if positives == 0 || positives == examples.len() {
        return Err(fail("the examples are all of one label"));
    }
    let rows: Vec<([f64; PARAMS], f64)> = examples
        .iter()
        .map(|e| {
            let [f, n, w, a, t] = e.basis().features();
            ([1.0, f, n, w, a, t], f64::from(u8::from(e.truth)))
        })
        .collect();
    let ridge = 1e-3;
    let mut beta = [0.0; PARAMS];
    for step in 1..=100 {
        let mut grad = [0.0; PARAMS];
        let mut hess = [[0.0; PARAMS]; PARAMS];
        for (x, y) in &rows {
            let p = sigmoid(dot(x, &beta));
            let w = (p * (1.0 - p)).max(1e-12);
            for (i, xi) in x.iter().enumerate() {
                grad[i] += (y - p) * xi;
                for (h, xj) in hess[i].iter_mut().zip(x) {
                    *h += w * xi * xj;
                }
            }
        }
        for i in 1..PARAMS {
            grad[i] -= ridge * beta[i];
            hess[i][i] += ridge;
        }
        let delta = solve(hess, grad).ok_or_else(|| fail("singular system"))?;
        for (b, d) in beta.iter_mut().zip(&delta) {
            *b += d;
        }
        if delta.iter().all(|d| d.abs() < 1e-9) {
            #[allow(clippy::cast_precision_loss)]
            let log_loss = rows
                .iter()
                .map(|(x, y)| {
                    let p = sigmoid(dot(x, &beta)).clamp(1e-15, 1.0 - 1e-15);
                    -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
                })
                .sum::<f64>()
                / rows.len() as f64;
            return Ok(Fit {
                coefficients: beta,
                examples: rows.len(),
                positives,
                log_loss,
                steps: step,
            });
        }
    }
    Err(fail("did not converge in 100 Newton steps"))
}

/// The fit as a `[tracing.likelihood]` table of the configuration file,
/// with its provenance.
#[must_use]
pub fn fit_toml(fit: &Fit, provenance: &str) -> String {
    let [intercept, fine, near, wide, apart, transit] = fit.coefficients;
    let defaults = LikelihoodConfig::default();
    let provenance = provenance.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "# Fitted by `epitrace calibrate`: {} examples, {} true, mean log-loss {:.4}.\n\
         [tracing.likelihood]\n\
         fine_res = {}\n\
         near_res = {}\n\
         intercept = {intercept:.4}\n\
         fine = {fine:.4}\n\
         near = {near:.4}\n\
         wide = {wide:.4}\n\
         apart = {apart:.4}\n\
         transit = {transit:.4}\n\
         close_threshold = {}\n\
         provenance = \"{provenance}\"\n",
        fit.examples,
        fit.positives,
        fit.log_loss,
        defaults.fine_res,
        defaults.near_res,
        defaults.close_threshold,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(fine_min: u32, wide_min: u32, truth: bool) -> Example {
        riding(fine_min, wide_min, 0, truth)
    }

    /// `transit_min` of the wide minutes on one path.
    fn riding(fine_min: u32, wide_min: u32, transit_min: u32, truth: bool) -> Example {
        Example {
            case_id: "C".into(),
            person: 1,
            fine_s: fine_min * 60,
            near_s: 0,
            wide_s: wide_min * 60,
            apart_s: 0,
            transit_s: transit_min * 60,
            likelihood: None,
            close: false,
            truth,
        }
    }

    #[test]
    fn the_fit_recovers_a_known_model() {
        // Labels drawn from a known model over a grid (deterministic
        // "draws": a share of each cell's copies true).
        let truth = LikelihoodConfig {
            intercept: -4.0,
            fine: 1.5,
            near: 0.0,
            wide: 0.4,
            apart: 0.0,
            transit: 1.0,
            ..LikelihoodConfig::default()
        };
        let mut examples = Vec::new();
        for fine in [0, 5, 15, 30, 60, 120] {
            for wide in [0, 15, 60, 240] {
                for transit in [0, 10, 15] {
                    let transit = transit.min(wide);
                    let p = truth.likelihood(&riding(fine, wide, transit, true).basis());
                    let copies = 400;
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let positives = (p * f64::from(copies)).round() as u32;
                    for i in 0..copies {
                        examples.push(riding(fine, wide, transit, i < positives));
                    }
                }
            }
        }
        let f = fit(&examples).unwrap_or_else(|e| panic!("{e}"));
        let [b0, bf, _, bw, _, bt] = f.coefficients;
        assert!((b0 + 4.0).abs() < 0.1, "intercept {b0}");
        assert!((bf - 1.5).abs() < 0.05, "fine {bf}");
        assert!((bw - 0.4).abs() < 0.05, "wide {bw}");
        assert!((bt - 1.0).abs() < 0.1, "transit {bt}");
        assert!(fit_toml(&f, "test").contains("transit = "));
        assert!(fit_toml(&f, "test").contains("[tracing.likelihood]"));
    }

    #[test]
    fn a_fit_of_one_label_is_refused() {
        assert!(fit(&[example(10, 0, true)]).is_err());
        assert!(fit(&[]).is_err());
    }

    #[test]
    fn examples_round_trip_through_csv() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("x.csv");
        let mut e = example(20, 5, true);
        e.likelihood = Some(0.75);
        e.close = true;
        write_examples(&path, &[e.clone(), example(0, 30, false)])
            .unwrap_or_else(|e| panic!("{e}"));
        let back = read_examples(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, vec![e, example(0, 30, false)]);
    }
}
