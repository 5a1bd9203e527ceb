//! Accuracy of the published exposures against a simulator's ground truth.
//!
//! A predicted exposure is a live record of `tracing.exposures` (its latest
//! version, not RETRACTED); its contact pseudonym is mapped back to a
//! resident with the same key the producers used (a resident's phone and
//! card count once). A true exposure is a (case, resident) pair whose exact
//! co-presence meets the exposure rule (`truth/contacts.csv`, `exposed` =
//! 1). Scores are given overall, by contact setting (where the pair spent
//! most of its time together; predictions that never shared a place are
//! `none`) and by data source (`gps` when both phones report GPS/Wi-Fi
//! fixes, `tower` when neither does, `mixed` otherwise).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use epitrace_feeds::{IdKind, PseudonymKey, Pseudonymizer};
use epitrace_model::codec::{DecodeOptions, decode_single_object};
use epitrace_model::records::{Exposure, ExposureStatus};
use epitrace_model::topics::EXPOSURES;
use epitrace_model::{CaseId, SubjectId};
use epitrace_stream::KafkaConfig;
use epitrace_stream::read::read_to_end;

use crate::ToolError;

/// One resident of the truth.
#[derive(Debug, Clone)]
struct Resident {
    precise: bool,
}

/// A (case, resident) pair's true co-presence.
#[derive(Debug, Clone)]
struct Pair {
    setting: String,
    exposed: bool,
}

/// The ground truth of a simulator run, as `eval` needs it.
#[derive(Debug, Clone)]
pub struct TruthSet {
    residents: Vec<Resident>,
    /// Pseudonym → resident.
    by_subject: BTreeMap<SubjectId, u32>,
    /// Case id → the case's resident.
    cases: BTreeMap<String, u32>,
    pairs: BTreeMap<(String, u32), Pair>,
}

fn truth_error(path: &Path, reason: impl Into<String>) -> ToolError {
    ToolError::Truth {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn rows(path: &Path) -> Result<(csv::StringRecord, Vec<csv::StringRecord>), ToolError> {
    let mut r = csv::Reader::from_path(path).map_err(|e| truth_error(path, e.to_string()))?;
    let headers = r
        .headers()
        .map_err(|e| truth_error(path, e.to_string()))?
        .clone();
    let records = r
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| truth_error(path, e.to_string()))?;
    Ok((headers, records))
}

fn column(path: &Path, headers: &csv::StringRecord, name: &str) -> Result<usize, ToolError> {
    headers
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| truth_error(path, format!("no column {name}")))
}

impl TruthSet {
    /// Loads `DIR/truth/people.csv`, `cases.csv` and `contacts.csv` (what
    /// `epitrace sim` writes), pseudonymising the residents' ids with `key`.
    ///
    /// # Errors
    /// [`ToolError::Truth`] for a missing or malformed file.
    pub fn load(dir: &Path, key: &PseudonymKey) -> Result<Self, ToolError> {
        let pseudonyms = Pseudonymizer::new(key.clone());
        let path = dir.join("truth/people.csv");
        let (h, recs) = rows(&path)?;
        let (ci, cm, cc, cp) = (
            column(&path, &h, "person")?,
            column(&path, &h, "msisdn")?,
            column(&path, &h, "card_number")?,
            column(&path, &h, "precise")?,
        );
        let mut residents = Vec::with_capacity(recs.len());
        let mut by_subject = BTreeMap::new();
        for r in &recs {
            let person: u32 = r
                .get(ci)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| truth_error(&path, "bad person"))?;
            if person as usize != residents.len() {
                return Err(truth_error(&path, "people out of order"));
            }
            for (kind, col) in [(IdKind::Msisdn, cm), (IdKind::Card, cc)] {
                if let Some(raw) = r.get(col).filter(|s| !s.is_empty()) {
                    let s = pseudonyms
                        .subject(kind, raw)
                        .map_err(|e| truth_error(&path, e))?;
                    by_subject.insert(s, person);
                }
            }
            residents.push(Resident {
                precise: r.get(cp) == Some("1"),
            });
        }
        let path = dir.join("truth/contacts.csv");
        let (h, recs) = rows(&path)?;
        let (cid, cper, ccon, cset, cexp) = (
            column(&path, &h, "case_id")?,
            column(&path, &h, "case_person")?,
            column(&path, &h, "contact_person")?,
            column(&path, &h, "setting")?,
            column(&path, &h, "exposed")?,
        );
        let mut cases = BTreeMap::new();
        let mut pairs = BTreeMap::new();
        for r in &recs {
            let parse = |c: usize| r.get(c).and_then(|s| s.parse::<u32>().ok());
            let (Some(case_id), Some(case_person), Some(contact)) =
                (r.get(cid), parse(cper), parse(ccon))
            else {
                return Err(truth_error(&path, "bad row"));
            };
            cases.insert(case_id.to_owned(), case_person);
            pairs.insert(
                (case_id.to_owned(), contact),
                Pair {
                    setting: r.get(cset).unwrap_or("").to_owned(),
                    exposed: r.get(cexp) == Some("1"),
                },
            );
        }
        // Every published case, also those that met nobody.
        let path = dir.join("truth/cases.csv");
        let (h, recs) = rows(&path)?;
        let (cid, cper) = (column(&path, &h, "case_id")?, column(&path, &h, "person")?);
        for r in &recs {
            let (Some(id), Some(p)) = (r.get(cid), r.get(cper).and_then(|s| s.parse::<u32>().ok()))
            else {
                return Err(truth_error(&path, "bad row"));
            };
            cases.insert(id.to_owned(), p);
        }
        Ok(Self {
            residents,
            by_subject,
            cases,
            pairs,
        })
    }

    fn source(&self, a: u32, b: u32) -> &'static str {
        let precise = |p: u32| self.residents.get(p as usize).is_some_and(|r| r.precise);
        match (precise(a), precise(b)) {
            (true, true) => "gps",
            (false, false) => "tower",
            _ => "mixed",
        }
    }
}

/// Counts and scores of one group of pairs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Score {
    /// `all`, `setting` or `source`.
    pub group: String,
    /// The setting or source (or `all`).
    pub name: String,
    /// Predicted and true.
    pub tp: u64,
    /// Predicted, not true.
    pub fp: u64,
    /// True, not predicted.
    pub fn_: u64,
    /// tp / (tp + fp); `None` with no prediction.
    pub precision: Option<f64>,
    /// tp / (tp + fn); `None` with no true pair.
    pub recall: Option<f64>,
    /// Harmonic mean of the two.
    pub f1: Option<f64>,
}

impl Score {
    #[allow(clippy::cast_precision_loss)]
    fn finish(mut self) -> Self {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        self.precision = ratio(self.tp, self.tp + self.fp);
        self.recall = ratio(self.tp, self.tp + self.fn_);
        self.f1 = match (self.precision, self.recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        self
    }
}

/// The evaluation of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// Cases in the truth.
    pub cases: usize,
    /// Cases with at least one live exposure.
    pub cases_traced: usize,
    /// Live exposures of the truth's cases.
    pub predicted: usize,
    /// Of those, contacts no resident's id maps to.
    pub unknown_contacts: usize,
    /// True exposures.
    pub true_exposures: usize,
    /// Scores: overall, by setting, by source.
    pub scores: Vec<Score>,
    /// The true exposures not found (case id, resident, setting, source),
    /// at most 1,000: for investigating misses.
    pub missed: Vec<(String, u32, String, String)>,
    /// The exposures found that are not true, likewise.
    pub false_positives: Vec<(String, u32, String, String)>,
}

impl Report {
    /// The overall score.
    #[must_use]
    pub fn overall(&self) -> Option<&Score> {
        self.scores.iter().find(|s| s.group == "all")
    }
}

/// The latest version of every exposure, live ones only.
#[must_use]
pub fn live_exposures(versions: impl IntoIterator<Item = Exposure>) -> Vec<Exposure> {
    let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
    for e in versions {
        latest.insert((e.case_id.clone(), e.contact), e);
    }
    latest
        .into_values()
        .filter(|e| e.status != ExposureStatus::Retracted)
        .collect()
}

/// Reads every record of `tracing.exposures` (undecodable ones skipped and
/// counted), blocking.
///
/// # Errors
/// [`ToolError::Stream`].
pub fn read_exposures(
    kafka: &KafkaConfig,
    timeout: Duration,
) -> Result<(Vec<Exposure>, usize), ToolError> {
    let records = read_to_end(kafka, EXPOSURES, timeout)?;
    let mut bad = 0;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        match r
            .payload
            .as_deref()
            .map(|p| decode_single_object::<Exposure>(p, &DecodeOptions::default()))
        {
            Some(Ok(e)) => out.push(e),
            _ => bad += 1,
        }
    }
    Ok((out, bad))
}

/// Scores live exposures against the truth.
#[must_use]
pub fn evaluate(truth: &TruthSet, live: &[Exposure]) -> Report {
    let mut predicted: BTreeSet<(String, u32)> = BTreeSet::new();
    let mut unknown = 0;
    let mut traced = BTreeSet::new();
    for e in live {
        let case = e.case_id.as_str();
        if !truth.cases.contains_key(case) {
            continue; // another run's case
        }
        traced.insert(case.to_owned());
        match truth.by_subject.get(&e.contact) {
            Some(p) => {
                predicted.insert((case.to_owned(), *p));
            }
            None => unknown += 1,
        }
    }
    let actual: BTreeSet<(String, u32)> = truth
        .pairs
        .iter()
        .filter(|(_, p)| p.exposed)
        .map(|(k, _)| k.clone())
        .collect();
    let mut groups: BTreeMap<(String, String), Score> = BTreeMap::new();
    let mut bump = |group: &str, name: &str, f: &dyn Fn(&mut Score)| {
        let s = groups
            .entry((group.to_owned(), name.to_owned()))
            .or_insert_with(|| Score {
                group: group.to_owned(),
                name: name.to_owned(),
                ..Score::default()
            });
        f(s);
    };
    let classify = |pair: &(String, u32)| -> (String, &'static str) {
        let setting = truth
            .pairs
            .get(pair)
            .map_or_else(|| "none".to_owned(), |p| p.setting.clone());
        let case_person = truth.cases.get(&pair.0).copied().unwrap_or(u32::MAX);
        (setting, truth.source(case_person, pair.1))
    };
    let mut missed = Vec::new();
    let mut false_positives = Vec::new();
    for pair in predicted.union(&actual) {
        let (setting, source) = classify(pair);
        let entry = (pair.0.clone(), pair.1, setting.clone(), source.to_owned());
        match (predicted.contains(pair), actual.contains(pair)) {
            (true, false) if false_positives.len() < 1_000 => false_positives.push(entry),
            (false, true) if missed.len() < 1_000 => missed.push(entry),
            _ => {}
        }
        let f: &dyn Fn(&mut Score) = match (predicted.contains(pair), actual.contains(pair)) {
            (true, true) => &|s: &mut Score| s.tp += 1,
            (true, false) => &|s: &mut Score| s.fp += 1,
            _ => &|s: &mut Score| s.fn_ += 1,
        };
        bump("all", "all", f);
        bump("setting", &setting, f);
        bump("source", source, f);
    }
    let order = |g: &str| match g {
        "all" => 0,
        "setting" => 1,
        _ => 2,
    };
    let mut scores: Vec<Score> = groups.into_values().map(Score::finish).collect();
    scores.sort_by(|a, b| (order(&a.group), &a.name).cmp(&(order(&b.group), &b.name)));
    Report {
        cases: truth.cases.len(),
        cases_traced: traced.len(),
        predicted: predicted.len() + unknown,
        unknown_contacts: unknown,
        true_exposures: actual.len(),
        scores,
        missed,
        false_positives,
    }
}

/// The report as a table for people.
#[must_use]
pub fn table(report: &Report) -> String {
    use std::fmt::Write as _;
    let pct = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{:.3}", v));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} cases ({} with exposures), {} true exposures, {} predicted ({} unknown contacts)\n",
        report.cases,
        report.cases_traced,
        report.true_exposures,
        report.predicted,
        report.unknown_contacts
    );
    let _ = writeln!(
        s,
        "{:<9} {:<10} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
        "by", "group", "TP", "FP", "FN", "precision", "recall", "F1"
    );
    for sc in &report.scores {
        let _ = writeln!(
            s,
            "{:<9} {:<10} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
            sc.group,
            sc.name,
            sc.tp,
            sc.fp,
            sc.fn_,
            pct(sc.precision),
            pct(sc.recall),
            pct(sc.f1)
        );
    }
    s
}
