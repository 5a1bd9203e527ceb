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
//!
//! Clusters are scored apart ([`evaluate_clusters`], [`one_to_one`]): a true
//! cluster is an outbreak event, the infections at one place in a period
//! with no week between consecutive ones, at least three of the people
//! involved published cases, its source the first infector there
//! (`truth/clusters.csv`); a predicted one is a live
//! record of `tracing.clusters` holding at least one of the truth's cases.
//! A true cluster is found when one predicted cluster holds at least three
//! of its cases (all of them, if it has fewer); the scores are recall, the
//! share of found clusters whose index case was named, and precision.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use epitrace_feeds::{IdKind, PseudonymKey, Pseudonymizer};
use epitrace_model::records::{ClusterAlert, Exposure, ExposureStatus};
use epitrace_model::topics::EXPOSURES;
use epitrace_model::{CaseId, SubjectId};
use epitrace_stream::KafkaConfig;

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

/// A true cluster of the simulator (a row of `truth/clusters.csv`): an
/// outbreak event, the infections at one place in one period, with at
/// least three published cases and its first infector (a case) as source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrueCluster {
    /// The truth's id (`T<seed>-<n>`).
    pub id: String,
    /// The place (`venue-12`, `work-3`, `home-40`, `subway-…`).
    pub place: String,
    /// The kind of place: a venue's kind, or the contact setting.
    pub kind: String,
    /// The infector's case id.
    pub index_case: String,
    /// Every case of the cluster, the index case included.
    pub cases: BTreeSet<String>,
}

/// The ground truth of a simulator run, as `eval` needs it.
#[derive(Debug, Clone)]
pub struct TruthSet {
    residents: Vec<Resident>,
    /// Pseudonym → resident.
    by_subject: BTreeMap<SubjectId, u32>,
    /// Case id → the case's resident.
    cases: BTreeMap<String, u32>,
    /// Case id → when it was confirmed (ms), where the truth says.
    confirmed: BTreeMap<String, i64>,
    pairs: BTreeMap<(String, u32), Pair>,
    clusters: Vec<TrueCluster>,
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

/// Reads `clusters.csv` as the simulator writes it (`cases` separated by
/// `;`); a missing file (a folder from before clusters) is no cluster.
fn load_clusters(path: &Path) -> Result<Vec<TrueCluster>, ToolError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(truth_error(path, e.to_string())),
    };
    let mut reader = csv::Reader::from_reader(file);
    let h = reader
        .headers()
        .map_err(|e| truth_error(path, e.to_string()))?
        .clone();
    let (cid, cplace, ckind, cindex, ccases, csize) = (
        column(path, &h, "cluster")?,
        column(path, &h, "place")?,
        column(path, &h, "kind")?,
        column(path, &h, "index_case")?,
        column(path, &h, "cases")?,
        column(path, &h, "size")?,
    );
    let mut clusters = Vec::new();
    let mut ids = BTreeSet::new();
    for record in reader.records() {
        // The csv crate's errors name the line themselves.
        let r = record.map_err(|e| truth_error(path, e.to_string()))?;
        let line = r.position().map_or(0, csv::Position::line);
        let bad = |reason: String| truth_error(path, format!("line {line}: {reason}"));
        let field = |c: usize| r.get(c).map_or("", str::trim);
        let id = field(cid);
        if id.is_empty() {
            return Err(bad("empty cluster id".to_owned()));
        }
        if !ids.insert(id.to_owned()) {
            return Err(bad(format!("cluster {id} listed twice")));
        }
        let index_case = field(cindex);
        if index_case.is_empty() {
            return Err(bad(format!("cluster {id}: empty index_case")));
        }
        let mut cases = BTreeSet::new();
        for case in field(ccases).split(';').map(str::trim) {
            if case.is_empty() {
                return Err(bad(format!("cluster {id}: empty case id in cases")));
            }
            if !cases.insert(case.to_owned()) {
                return Err(bad(format!("cluster {id}: case {case} listed twice")));
            }
        }
        let size: usize = field(csize)
            .parse()
            .map_err(|_| bad(format!("cluster {id}: bad size {:?}", field(csize))))?;
        if size != cases.len() {
            return Err(bad(format!(
                "cluster {id}: size {size} but {} cases",
                cases.len()
            )));
        }
        if !cases.contains(index_case) {
            return Err(bad(format!(
                "cluster {id}: index_case {index_case} not among its cases"
            )));
        }
        clusters.push(TrueCluster {
            id: id.to_owned(),
            place: field(cplace).to_owned(),
            kind: field(ckind).to_owned(),
            index_case: index_case.to_owned(),
            cases,
        });
    }
    Ok(clusters)
}

impl TruthSet {
    /// Loads `DIR/truth/people.csv`, `cases.csv`, `contacts.csv` and
    /// `clusters.csv` (what `epitrace sim` writes), pseudonymising the
    /// residents' ids with `key`. A folder without `clusters.csv` (written
    /// before clusters) has no true cluster.
    ///
    /// # Errors
    /// [`ToolError::Truth`] for a missing or malformed file (but a missing
    /// `clusters.csv`); for `clusters.csv`, naming the line.
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
        let cconf = column(&path, &h, "confirmed_at").ok();
        let mut confirmed = BTreeMap::new();
        for r in &recs {
            if let (Some(id), Some(at)) = (r.get(cid), cconf.and_then(|c| r.get(c)))
                && let Ok(t) = epitrace_feeds::parse_time("confirmed_at", at)
            {
                confirmed.insert(id.to_owned(), t.as_millis());
            }
            let (Some(id), Some(p)) = (r.get(cid), r.get(cper).and_then(|s| s.parse::<u32>().ok()))
            else {
                return Err(truth_error(&path, "bad row"));
            };
            cases.insert(id.to_owned(), p);
        }
        let clusters = load_clusters(&dir.join("truth/clusters.csv"))?;
        Ok(Self {
            residents,
            by_subject,
            cases,
            confirmed,
            pairs,
            clusters,
        })
    }

    /// The true clusters, in the file's order.
    #[must_use]
    pub fn clusters(&self) -> &[TrueCluster] {
        &self.clusters
    }

    /// Whether `case_id` is one of the truth's published cases.
    #[must_use]
    pub fn has_case(&self, case_id: &str) -> bool {
        self.cases.contains_key(case_id)
    }

    /// The resident a pseudonym belongs to.
    #[must_use]
    pub fn resident_of(&self, subject: &SubjectId) -> Option<u32> {
        self.by_subject.get(subject).copied()
    }

    /// Whether (case, resident) truly met the exposure rule.
    #[must_use]
    pub fn is_exposed(&self, case_id: &str, person: u32) -> bool {
        self.pairs
            .get(&(case_id.to_owned(), person))
            .is_some_and(|p| p.exposed)
    }

    /// The true exposures.
    #[must_use]
    pub fn exposed_pairs(&self) -> usize {
        self.pairs.values().filter(|p| p.exposed).count()
    }

    /// The data source of (case, resident): `gps` when both phones report
    /// GPS/Wi-Fi fixes, `tower` when neither does, `mixed` otherwise.
    #[must_use]
    pub fn source_of(&self, case_id: &str, person: u32) -> &'static str {
        let case_person = self.cases.get(case_id).copied().unwrap_or(u32::MAX);
        self.source(case_person, person)
    }

    /// The true exposures by data source ([`TruthSet::source_of`]).
    #[must_use]
    pub fn exposed_by_source(&self) -> BTreeMap<&'static str, usize> {
        let mut n = BTreeMap::new();
        for ((case, person), p) in &self.pairs {
            if p.exposed {
                *n.entry(self.source_of(case, *person)).or_insert(0) += 1;
            }
        }
        n
    }

    /// The true exposures whose setting is transit (most of their time
    /// together in one subway car) between two phones that report GPS
    /// fixes: what co-travel detection can find.
    #[must_use]
    pub fn exposed_transit_gps_pairs(&self) -> BTreeSet<(String, u32)> {
        self.pairs
            .iter()
            .filter(|((case, person), p)| {
                p.exposed && p.setting == "transit" && self.source_of(case, *person) == "gps"
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The true setting of (case, resident) (`household`, `workplace`,
    /// `venue`, `transit`), if they met at all.
    #[must_use]
    pub fn setting_of(&self, case_id: &str, person: u32) -> Option<&str> {
        self.pairs
            .get(&(case_id.to_owned(), person))
            .map(|p| p.setting.as_str())
    }

    /// The true exposures where at least one side had fine evidence.
    #[must_use]
    pub fn exposed_fine_pairs(&self) -> usize {
        self.pairs
            .iter()
            .filter(|((case, person), p)| p.exposed && self.fine_evidence(case, *person))
            .count()
    }

    /// Whether at least one side of (case, resident) had fine evidence of
    /// where they met, as far as the truth tells: the case or the contact
    /// is a resident whose phone reports GPS/Wi-Fi fixes, or they met at a
    /// venue (where the simulator's residents pay by card or check in).
    #[must_use]
    pub fn fine_evidence(&self, case_id: &str, person: u32) -> bool {
        let case_person = self.cases.get(case_id).copied().unwrap_or(u32::MAX);
        let venue = self
            .pairs
            .get(&(case_id.to_owned(), person))
            .is_some_and(|p| p.setting == "venue");
        venue || self.source(case_person, person) != "tower"
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
    /// A finished score of counts.
    #[must_use]
    pub fn of(group: &str, name: &str, tp: u64, fp: u64, fn_: u64) -> Self {
        Self {
            group: group.to_owned(),
            name: name.to_owned(),
            tp,
            fp,
            fn_,
            ..Self::default()
        }
        .finish()
    }

    #[allow(clippy::cast_precision_loss)]
    fn finish(mut self) -> Self {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        self.precision = ratio(self.tp, self.tp + self.fp);
        self.recall = ratio(self.tp, self.tp + self.fn_);
        self.f1 = f1(self.precision, self.recall);
        self
    }
}

/// The harmonic mean of precision and recall; `None` when either is.
fn f1(precision: Option<f64>, recall: Option<f64>) -> Option<f64> {
    match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
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
    /// Cluster scores, when the clusters were evaluated
    /// ([`evaluate_clusters`]; [`evaluate`] leaves this `None`).
    pub clusters: Option<ClusterScore>,
    /// Contact classes and likelihood, when evaluated
    /// ([`likelihood_report`](crate::calibration::likelihood_report);
    /// [`evaluate`] leaves this `None`).
    pub likelihood: Option<crate::calibration::LikelihoodReport>,
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
    crate::query::read_all(kafka, EXPOSURES, timeout)
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
        clusters: None,
        likelihood: None,
    }
}

/// A true cluster no detected cluster found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissedCluster {
    /// The truth's id.
    pub id: String,
    /// The kind of place.
    pub kind: String,
    /// Its cases.
    pub size: usize,
}

/// A detected cluster that matches no true cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnmatchedCluster {
    /// The cluster id published.
    pub id: String,
    /// Its cases (all of them, also another run's).
    pub size: usize,
}

/// A found true cluster and its match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterMatch {
    /// The truth's id.
    pub true_id: String,
    /// The matching detected cluster's id.
    pub detected_id: String,
    /// The true cluster's cases.
    pub true_size: usize,
    /// Cases of the true cluster the detected one holds.
    pub overlap: usize,
    /// The detected cluster's index case, if it names one.
    pub detected_index: Option<String>,
    /// The source the detected cluster names for this true cluster: the
    /// `source_case` of its place holding most of the true cluster's cases
    /// (at least two), else its index case.
    pub named_source: Option<String>,
    /// Whether `named_source` is the true index case.
    pub index_named: bool,
    /// Whether `detected_index` is the true index case (a merged cluster
    /// names one index for all of its events).
    pub cluster_index_named: bool,
}

/// How well the detected clusters match the true ones.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ClusterScore {
    /// True clusters.
    pub true_clusters: usize,
    /// Live detected clusters holding at least one of the truth's cases
    /// (the others are another run's).
    pub detected: usize,
    /// True clusters found: one detected cluster holds at least
    /// min(3, size) of their cases.
    pub found: usize,
    /// found / true clusters; `None` with no true cluster.
    pub recall: Option<f64>,
    /// Found true clusters whose match names their index case as the
    /// source at their place (see [`ClusterMatch::named_source`]).
    pub index_named: usize,
    /// Found true clusters whose match's index case is theirs.
    pub cluster_index_named: usize,
    /// index named / found; `None` when none was found.
    pub index_named_first: Option<f64>,
    /// index named / true clusters; `None` with no true cluster.
    pub index_share_all: Option<f64>,
    /// Detected clusters that are the match of a found true cluster or hold
    /// at least three cases of one true cluster.
    pub detected_matching: usize,
    /// detected matching / detected; `None` with no detected cluster.
    pub precision: Option<f64>,
    /// Every found true cluster with its match, in the truth's order.
    pub matches: Vec<ClusterMatch>,
    /// Every true cluster not found, in the truth's order.
    pub missed: Vec<MissedCluster>,
    /// Every detected cluster matching none, in id order.
    pub unmatched: Vec<UnmatchedCluster>,
    /// The one-to-one scores (set by the caller from [`one_to_one`]).
    pub one_to_one: Option<OneToOne>,
}

/// `a / b`; `None` when `b` is 0.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The source a detected cluster names for a true one: the `source_case`
/// of its place-time holding most of the true cluster's cases (at least
/// two; ties: the earliest), else its index case.
fn named_source(d: &ClusterAlert, t: &TrueCluster) -> Option<String> {
    d.places
        .iter()
        .map(|p| {
            let here = p
                .cases()
                .iter()
                .filter(|c| t.cases.contains(c.as_str()))
                .count();
            (here, std::cmp::Reverse((p.start(), p.end(), p.cell())), p)
        })
        .filter(|(here, _, _)| *here >= 2)
        .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
        .and_then(|(_, _, p)| p.source_case())
        .map(|c| c.as_str().to_owned())
        .or_else(|| d.index_case.as_ref().map(|c| c.as_str().to_owned()))
}

/// A one-to-one pair of a true and a detected cluster.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OneToOneMatch {
    /// The truth's id.
    pub true_id: String,
    /// The detected cluster's id.
    pub detected_id: String,
    /// Jaccard of their cases (the detected cluster's restricted to the
    /// truth's cases).
    pub jaccard: f64,
    /// Whether the detected cluster names the true index case as the
    /// source (see [`ClusterMatch::named_source`]).
    pub source_named: bool,
    /// Hours, in event time, from the confirmation of the true cluster's
    /// third case to the earliest time an alert holding min(3, size) of
    /// its cases could exist: the latest confirmation of that alert's
    /// cases (an alert that needed a later case detects later); `None`
    /// when the truth has no confirmation times.
    pub detection_delay_h: Option<f64>,
}

/// Clusters matched one to one: each true cluster to at most one detected
/// cluster and back, when the Jaccard of their cases is at least 0.5
/// (greedily, highest Jaccard first).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OneToOne {
    /// True clusters.
    pub true_clusters: usize,
    /// Live detected clusters holding at least one of the truth's cases.
    pub detected: usize,
    /// Pairs matched.
    pub matched: usize,
    /// matched / detected.
    pub precision: Option<f64>,
    /// matched / true clusters.
    pub recall: Option<f64>,
    /// Their harmonic mean.
    pub f1: Option<f64>,
    /// matched pairs naming the true source / matched.
    pub source_named_first: Option<f64>,
    /// The median of the pairs' detection delays, in hours.
    pub median_detection_delay_h: Option<f64>,
    /// Every pair.
    pub pairs: Vec<OneToOneMatch>,
    /// Every true cluster, in the truth's order, with the highest Jaccard
    /// any detected cluster reaches with it (below 0.5: no match) and
    /// whether it was matched.
    pub best: Vec<(String, f64, bool)>,
}

/// Scores live clusters one to one against the truth's (see [`OneToOne`]);
/// `history` is every version read, for the time of first detection.
#[must_use]
pub fn one_to_one(truth: &TruthSet, live: &[ClusterAlert], history: &[ClusterAlert]) -> OneToOne {
    let detected: Vec<(&ClusterAlert, BTreeSet<&str>)> = live
        .iter()
        .map(|a| {
            let cases: BTreeSet<&str> = a
                .cases
                .iter()
                .map(CaseId::as_str)
                .filter(|c| truth.has_case(c))
                .collect();
            (a, cases)
        })
        .filter(|(_, cases)| !cases.is_empty())
        .collect();
    let mut candidates: Vec<(f64, usize, usize)> = Vec::new();
    let mut best: Vec<(String, f64, bool)> = Vec::new();
    for (ti, t) in truth.clusters.iter().enumerate() {
        best.push((t.id.clone(), 0.0, false));
        for (di, (_, cases)) in detected.iter().enumerate() {
            let inter = t
                .cases
                .iter()
                .filter(|c| cases.contains(c.as_str()))
                .count();
            let union = t.cases.len() + cases.len() - inter;
            #[allow(clippy::cast_precision_loss)]
            let jaccard = if union == 0 {
                0.0
            } else {
                inter as f64 / union as f64
            };
            if let Some(b) = best.last_mut() {
                b.1 = b.1.max(jaccard);
            }
            if jaccard >= 0.5 {
                candidates.push((jaccard, ti, di));
            }
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let (mut used_t, mut used_d) = (BTreeSet::new(), BTreeSet::new());
    let mut pairs = Vec::new();
    for (jaccard, ti, di) in candidates {
        let (Some(t), Some((d, _))) = (truth.clusters.get(ti), detected.get(di)) else {
            continue;
        };
        if used_t.contains(&ti) || used_d.contains(&di) {
            continue;
        }
        used_t.insert(ti);
        used_d.insert(di);
        if let Some(b) = best.get_mut(ti) {
            b.2 = true;
        }
        let need = t.cases.len().clamp(1, 3);
        let mut confirmations: Vec<i64> = t
            .cases
            .iter()
            .filter_map(|c| truth.confirmed.get(c).copied())
            .collect();
        confirmations.sort_unstable();
        let first_detection = history
            .iter()
            .filter(|a| {
                a.cases
                    .iter()
                    .filter(|c| t.cases.contains(c.as_str()))
                    .count()
                    >= need
            })
            .filter_map(|a| {
                // In event time: the alert could exist once its last case
                // was confirmed (`detected_at` is an append time, which a
                // replayed city does not share with its event times).
                a.cases
                    .iter()
                    .filter_map(|c| truth.confirmed.get(c.as_str()).copied())
                    .max()
            })
            .min();
        #[allow(clippy::cast_precision_loss)]
        let detection_delay_h = match (confirmations.get(need - 1), first_detection) {
            (Some(third), Some(at)) => Some((at - third) as f64 / 3_600_000.0),
            _ => None,
        };
        pairs.push(OneToOneMatch {
            true_id: t.id.clone(),
            detected_id: d.cluster_id.as_str().to_owned(),
            jaccard,
            source_named: named_source(d, t).as_deref() == Some(t.index_case.as_str()),
            detection_delay_h,
        });
    }
    pairs.sort_by(|a, b| a.true_id.cmp(&b.true_id));
    let matched = pairs.len();
    let precision = ratio(matched, detected.len());
    let recall = ratio(matched, truth.clusters.len());
    let f1 = f1(precision, recall);
    let mut delays: Vec<f64> = pairs.iter().filter_map(|p| p.detection_delay_h).collect();
    delays.sort_by(f64::total_cmp);
    OneToOne {
        true_clusters: truth.clusters.len(),
        detected: detected.len(),
        matched,
        precision,
        recall,
        f1,
        source_named_first: ratio(pairs.iter().filter(|p| p.source_named).count(), matched),
        median_detection_delay_h: delays.get(delays.len() / 2).copied(),
        pairs,
        best,
    }
}

/// Scores live clusters (see [`live_clusters`](crate::query::live_clusters))
/// against the truth's. Only clusters holding at least one of the truth's
/// cases count. A true cluster's match is the detected cluster holding the
/// most of its cases (ties: the smaller cluster id); it is found when that
/// is at least min(3, its size).
#[must_use]
pub fn evaluate_clusters(truth: &TruthSet, live: &[ClusterAlert]) -> ClusterScore {
    let mut counted: Vec<(&ClusterAlert, BTreeSet<&str>)> = live
        .iter()
        .map(|a| {
            (
                a,
                a.cases.iter().map(CaseId::as_str).collect::<BTreeSet<_>>(),
            )
        })
        .filter(|(_, cases)| cases.iter().any(|c| truth.has_case(c)))
        .collect();
    // Id order: the first of equal overlaps is the smaller id.
    counted.sort_by(|a, b| a.0.cluster_id.as_str().cmp(b.0.cluster_id.as_str()));
    let mut matching = vec![false; counted.len()];
    let mut matches = Vec::new();
    let mut missed = Vec::new();
    for t in &truth.clusters {
        // (index in counted, the cluster, overlap)
        let mut best: Option<(usize, &ClusterAlert, usize)> = None;
        for (i, ((d, cases), held)) in counted.iter().zip(&mut matching).enumerate() {
            let overlap = t
                .cases
                .iter()
                .filter(|c| cases.contains(c.as_str()))
                .count();
            if overlap >= 3 {
                *held = true;
            }
            if overlap > best.map_or(0, |b| b.2) {
                best = Some((i, d, overlap));
            }
        }
        let need = t.cases.len().clamp(1, 3);
        match best {
            Some((i, d, overlap)) if overlap >= need => {
                if let Some(m) = matching.get_mut(i) {
                    *m = true;
                }
                let detected_index = d.index_case.as_ref().map(|c| c.as_str().to_owned());
                let named_source = named_source(d, t);
                matches.push(ClusterMatch {
                    true_id: t.id.clone(),
                    detected_id: d.cluster_id.as_str().to_owned(),
                    true_size: t.cases.len(),
                    overlap,
                    index_named: named_source.as_deref() == Some(t.index_case.as_str()),
                    cluster_index_named: detected_index.as_deref() == Some(t.index_case.as_str()),
                    named_source,
                    detected_index,
                });
            }
            _ => missed.push(MissedCluster {
                id: t.id.clone(),
                kind: t.kind.clone(),
                size: t.cases.len(),
            }),
        }
    }
    let unmatched: Vec<UnmatchedCluster> = counted
        .iter()
        .zip(&matching)
        .filter(|(_, m)| !**m)
        .map(|((d, cases), _)| UnmatchedCluster {
            id: d.cluster_id.as_str().to_owned(),
            size: cases.len(),
        })
        .collect();
    let true_clusters = truth.clusters.len();
    let found = matches.len();
    let index_named = matches.iter().filter(|m| m.index_named).count();
    let cluster_index_named = matches.iter().filter(|m| m.cluster_index_named).count();
    let detected_matching = counted.len() - unmatched.len();
    ClusterScore {
        true_clusters,
        detected: counted.len(),
        found,
        recall: ratio(found, true_clusters),
        index_named,
        cluster_index_named,
        index_named_first: ratio(index_named, found),
        index_share_all: ratio(index_named, true_clusters),
        detected_matching,
        precision: ratio(detected_matching, counted.len()),
        matches,
        missed,
        unmatched,
        one_to_one: None,
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
    if let Some(l) = &report.likelihood {
        s.push_str(&crate::calibration::likelihood_table(l));
    }
    if let Some(c) = &report.clusters {
        cluster_table(&mut s, c);
    }
    s
}

/// Most missed and unmatched clusters the table lists (the JSON report has
/// them all).
const TABLE_LIST_CAP: usize = 10;

fn cluster_table(s: &mut String, c: &ClusterScore) {
    use std::fmt::Write as _;
    let ratio = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
    let _ = writeln!(s, "\nClusters");
    let _ = writeln!(s, "{:<18} {:>7}", "true", c.true_clusters);
    let _ = writeln!(s, "{:<18} {:>7}", "detected", c.detected);
    let _ = writeln!(s, "{:<18} {:>7}", "found", c.found);
    let _ = writeln!(s, "{:<18} {:>7}", "recall", ratio(c.recall));
    let _ = writeln!(
        s,
        "{:<18} {:>7}  ({} of {} found; {} of all true)",
        "index named first",
        ratio(c.index_named_first),
        c.index_named,
        c.found,
        ratio(c.index_share_all)
    );
    let _ = writeln!(
        s,
        "{:<18} {:>7}  (the merged cluster's one index case)",
        "cluster index",
        ratio(self::ratio(c.cluster_index_named, c.found)),
    );
    let _ = writeln!(
        s,
        "{:<18} {:>7}  ({} of {} detected match a true cluster)",
        "precision",
        ratio(c.precision),
        c.detected_matching,
        c.detected
    );
    let more = |n: usize| {
        if n > TABLE_LIST_CAP {
            format!(", … {} more", n - TABLE_LIST_CAP)
        } else {
            String::new()
        }
    };
    if !c.missed.is_empty() {
        let list: Vec<String> = c
            .missed
            .iter()
            .take(TABLE_LIST_CAP)
            .map(|m| format!("{} ({}, {} cases)", m.id, m.kind, m.size))
            .collect();
        let _ = writeln!(s, "missed: {}{}", list.join(", "), more(c.missed.len()));
    }
    if !c.unmatched.is_empty() {
        let list: Vec<String> = c
            .unmatched
            .iter()
            .take(TABLE_LIST_CAP)
            .map(|u| format!("{} ({} cases)", u.id, u.size))
            .collect();
        let _ = writeln!(
            s,
            "unmatched detected: {}{}",
            list.join(", "),
            more(c.unmatched.len())
        );
    }
    if let Some(o) = &c.one_to_one {
        let hours = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} h"));
        let _ = writeln!(
            s,
            "one to one (Jaccard >= 0.5): {} of {} true, {} detected; precision {}, recall {}, F1 {}; source named first {}; median detection delay after the third case (event time) {}",
            o.matched,
            o.true_clusters,
            o.detected,
            ratio(o.precision),
            ratio(o.recall),
            ratio(o.f1),
            ratio(o.source_named_first),
            hours(o.median_detection_delay_h)
        );
    }
}

#[cfg(test)]
mod tests {
    use epitrace_model::records::ClusterStatus;
    use epitrace_model::{ClusterId, EventTime, Text};

    use super::*;

    fn set(cases: &[&str]) -> BTreeSet<String> {
        cases.iter().map(|c| (*c).to_owned()).collect()
    }

    fn true_cluster(id: &str, index: &str, cases: &[&str]) -> TrueCluster {
        TrueCluster {
            id: id.to_owned(),
            place: "venue-1".to_owned(),
            kind: "bar".to_owned(),
            index_case: index.to_owned(),
            cases: set(cases),
        }
    }

    /// A truth with cases `A`..`Z` and these clusters.
    fn truth(clusters: Vec<TrueCluster>) -> TruthSet {
        TruthSet {
            residents: Vec::new(),
            by_subject: BTreeMap::new(),
            cases: ('A'..='Z')
                .zip(0..)
                .map(|(c, p)| (c.to_string(), p))
                .collect(),
            confirmed: BTreeMap::new(),
            pairs: BTreeMap::new(),
            clusters,
        }
    }

    fn alert(id: &str, index: Option<&str>, cases: &[&str]) -> ClusterAlert {
        ClusterAlert {
            cluster_id: ClusterId::new(id).unwrap(),
            status: ClusterStatus::New,
            cases: cases.iter().map(|c| CaseId::new(*c).unwrap()).collect(),
            places: Vec::new(),
            index_case: index.map(|c| CaseId::new(c).unwrap()),
            source_evidence: Text::new("source_evidence", "test").unwrap(),
            size: u32::try_from(cases.len()).unwrap(),
            merged_into: None,
            linked_clusters: Vec::new(),
            detected_at: EventTime::from_millis("t", 1_588_000_000_000).unwrap(),
        }
    }

    #[test]
    fn one_to_one_matching_counts_a_merged_cluster_once() {
        let mut t = truth(vec![
            true_cluster("T1", "A", &["A", "B", "C", "D"]),
            true_cluster("T2", "E", &["E", "F", "G"]),
        ]);
        let h = 3_600_000;
        for (i, c) in (0..).zip(["A", "B", "C", "D", "E", "F", "G"]) {
            t.confirmed
                .insert(c.to_owned(), 1_588_000_000_000 - 10 * h + i * h);
        }
        // One merged cluster: T1 matches it (Jaccard 4/7), T2 (3/7) not.
        let merged = alert("M", Some("A"), &["A", "B", "C", "D", "E", "F", "G"]);
        let o = one_to_one(
            &t,
            std::slice::from_ref(&merged),
            std::slice::from_ref(&merged),
        );
        assert_eq!((o.matched, o.detected, o.true_clusters), (1, 1, 2));
        assert_eq!(o.precision, Some(1.0));
        assert_eq!(o.recall, Some(0.5));
        assert_eq!(o.pairs[0].true_id, "T1");
        let jaccards: Vec<(&str, f64, bool)> = o
            .best
            .iter()
            .map(|(id, j, m)| (id.as_str(), *j, *m))
            .collect();
        assert_eq!(
            jaccards,
            [("T1", 4.0 / 7.0, true), ("T2", 3.0 / 7.0, false)]
        );
        assert!(o.pairs[0].source_named);
        // T1's third case (C) was confirmed at t0 - 8 h; the merged alert
        // needed G too, confirmed at t0 - 4 h: 4 h late.
        assert_eq!(o.pairs[0].detection_delay_h, Some(4.0));
        // An earlier alert of A, B and C detected it on time.
        let first = alert("M", Some("A"), &["A", "B", "C"]);
        let o = one_to_one(&t, std::slice::from_ref(&merged), &[first, merged.clone()]);
        assert_eq!(o.pairs[0].detection_delay_h, Some(0.0));
        // Two events: both match, one each; the second names the wrong
        // source.
        let live = [
            alert("X", Some("A"), &["A", "B", "C"]),
            alert("Y", Some("F"), &["E", "F", "G", "H"]),
        ];
        let o = one_to_one(&t, &live, &live);
        assert_eq!(o.matched, 2);
        assert_eq!(o.f1, Some(1.0));
        assert_eq!(o.source_named_first, Some(0.5));
        // Below half: no match.
        let live = [alert("Z", Some("A"), &["A", "E", "F", "H"])];
        assert_eq!(one_to_one(&t, &live, &live).matched, 0);
    }

    #[test]
    fn found_and_missed_clusters() {
        let t = truth(vec![
            true_cluster("T1", "A", &["A", "B", "C", "D"]),
            true_cluster("T2", "E", &["E", "F", "G"]),
            true_cluster("T3", "H", &["H", "I", "J"]),
        ]);
        let live = [
            // T1: three of four cases is enough.
            alert("C1", Some("A"), &["A", "B", "C"]),
            // T2: two of three is not.
            alert("C2", Some("E"), &["E", "F", "X"]),
        ];
        let s = evaluate_clusters(&t, &live);
        assert_eq!((s.true_clusters, s.detected, s.found), (3, 2, 1));
        assert_eq!(s.recall, Some(1.0 / 3.0));
        assert_eq!(s.matches.len(), 1);
        assert_eq!(s.matches[0].true_id, "T1");
        assert_eq!(s.matches[0].detected_id, "C1");
        assert_eq!((s.matches[0].overlap, s.matches[0].true_size), (3, 4));
        assert_eq!(
            s.missed,
            vec![
                MissedCluster {
                    id: "T2".to_owned(),
                    kind: "bar".to_owned(),
                    size: 3
                },
                MissedCluster {
                    id: "T3".to_owned(),
                    kind: "bar".to_owned(),
                    size: 3
                },
            ]
        );
        assert_eq!(
            s.unmatched,
            vec![UnmatchedCluster {
                id: "C2".to_owned(),
                size: 3
            }]
        );
    }

    #[test]
    fn a_small_true_cluster_needs_all_its_cases() {
        let t = truth(vec![true_cluster("T1", "A", &["A", "B"])]);
        let s = evaluate_clusters(&t, &[alert("C1", None, &["A", "X"])]);
        assert_eq!(s.found, 0);
        let s = evaluate_clusters(&t, &[alert("C1", None, &["A", "B", "X"])]);
        assert_eq!(s.found, 1);
        assert_eq!(s.precision, Some(1.0));
    }

    #[test]
    fn the_largest_overlap_wins_and_ties_go_to_the_smaller_id() {
        let t = truth(vec![true_cluster(
            "T1",
            "A",
            &["A", "B", "C", "D", "E", "F"],
        )]);
        let (c1, c2, c3) = (
            alert("C1", Some("A"), &["A", "B", "C"]),
            alert("C2", Some("B"), &["C", "D", "E", "F"]),
            alert("C3", Some("A"), &["A", "B", "C", "D"]),
        );
        // C2 and C3 both hold four: C2, whatever the input order.
        for live in [
            [c1.clone(), c2.clone(), c3.clone()],
            [c3.clone(), c2.clone(), c1.clone()],
            [c2.clone(), c3.clone(), c1.clone()],
            [c3.clone(), c1.clone(), c2.clone()],
        ] {
            let s = evaluate_clusters(&t, &live);
            assert_eq!(s.matches.len(), 1);
            assert_eq!(s.matches[0].detected_id, "C2");
            assert_eq!(s.matches[0].overlap, 4);
        }
        let s = evaluate_clusters(&t, &[c3, c2, c1]);
        // C2 names B, not A.
        assert_eq!(s.index_named, 0);
        assert_eq!(s.index_named_first, Some(0.0));
        // Every one holds at least three of T1's cases: all count.
        assert_eq!(s.detected_matching, 3);
        assert!(s.unmatched.is_empty());
    }

    #[test]
    fn the_source_at_the_true_clusters_place_is_what_is_named() {
        use epitrace_model::{Cell, records::Place};
        let cell = Cell::new(0x0893_0e1d_8a0b_ffff).unwrap();
        let at = |h: i64| EventTime::from_millis("t", 1_588_000_000_000 + h * 3_600_000).unwrap();
        let place = |h: i64, cases: &[&str], source: &str| {
            Place::new(cell, at(h), at(h + 1)).unwrap().with_cases(
                cases.iter().map(|c| CaseId::new(*c).unwrap()).collect(),
                Some(CaseId::new(source).unwrap()),
            )
        };
        // One merged cluster of two events: V infected X at a club, then
        // X infected Y and Z at work. The truth's work cluster has X as
        // its index case; the merged cluster's index is V.
        let t = truth(vec![
            true_cluster("T1", "V", &["V", "X", "W"]),
            true_cluster("T2", "X", &["X", "Y", "Z"]),
        ]);
        let mut merged = alert("C1", Some("V"), &["V", "W", "X", "Y", "Z"]);
        merged.places = vec![
            place(0, &["V", "W", "X"], "V"),
            place(50, &["X", "Y", "Z"], "X"),
            // A place holding two of T2's cases, named otherwise: fewer.
            place(60, &["Y", "Z"], "Y"),
        ];
        let s = evaluate_clusters(&t, &[merged.clone()]);
        assert_eq!(s.found, 2);
        assert_eq!(s.index_named, 2, "{:?}", s.matches);
        assert_eq!(s.cluster_index_named, 1);
        let t2 = s.matches.iter().find(|m| m.true_id == "T2").unwrap();
        assert_eq!(t2.named_source.as_deref(), Some("X"));
        assert!(!t2.cluster_index_named);
        // Without places, the cluster's index case is what is named.
        merged.places.clear();
        let s = evaluate_clusters(&t, &[merged]);
        assert_eq!((s.index_named, s.cluster_index_named), (1, 1));
    }

    #[test]
    fn index_share_over_found_and_over_all() {
        let t = truth(vec![
            true_cluster("T1", "A", &["A", "B", "C"]),
            true_cluster("T2", "D", &["D", "E", "F"]),
            true_cluster("T3", "G", &["G", "H", "I"]),
            true_cluster("T4", "J", &["J", "K", "L"]),
        ]);
        let live = [
            alert("C1", Some("A"), &["A", "B", "C"]),
            alert("C2", Some("E"), &["D", "E", "F"]),
            alert("C3", None, &["G", "H", "I", "Z"]),
        ];
        let s = evaluate_clusters(&t, &live);
        assert_eq!((s.found, s.index_named), (3, 1));
        assert_eq!(s.index_named_first, Some(1.0 / 3.0));
        assert_eq!(s.index_share_all, Some(0.25));
        assert_eq!(s.recall, Some(0.75));
        assert!(s.matches[0].index_named);
        assert_eq!(s.matches[1].detected_index.as_deref(), Some("E"));
        assert_eq!(s.matches[2].detected_index, None);
    }

    #[test]
    fn precision_counts_matches_and_clusters_holding_three_true_cases() {
        let t = truth(vec![true_cluster(
            "T1",
            "A",
            &["A", "B", "C", "D", "E", "F", "G"],
        )]);
        let live = [
            // The match.
            alert("C1", Some("A"), &["A", "B", "C", "D"]),
            // A split-off part: not the match, but three true cases.
            alert("C2", Some("E"), &["E", "F", "G"]),
            // Two true cases and strangers.
            alert("C3", None, &["A", "B", "X", "Y"]),
            // Cases of no true cluster.
            alert("C4", None, &["P", "Q", "R"]),
            // Another run's cluster: not counted.
            alert("C5", None, &["OTHER-1", "OTHER-2", "OTHER-3"]),
        ];
        let s = evaluate_clusters(&t, &live);
        assert_eq!((s.detected, s.detected_matching), (4, 2));
        assert_eq!(s.precision, Some(0.5));
        let ids: Vec<&str> = s.unmatched.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["C3", "C4"]);
    }

    #[test]
    fn no_division_by_zero() {
        let s = evaluate_clusters(&truth(Vec::new()), &[]);
        assert_eq!((s.true_clusters, s.detected, s.found), (0, 0, 0));
        assert_eq!(s.recall, None);
        assert_eq!(s.index_named_first, None);
        assert_eq!(s.index_share_all, None);
        assert_eq!(s.precision, None);
        // Clusters but nothing detected, and the reverse.
        let s = evaluate_clusters(&truth(vec![true_cluster("T1", "A", &["A", "B", "C"])]), &[]);
        assert_eq!(s.recall, Some(0.0));
        assert_eq!(s.index_named_first, None);
        assert_eq!(s.index_share_all, Some(0.0));
        assert_eq!(s.precision, None);
        let s = evaluate_clusters(&truth(Vec::new()), &[alert("C1", None, &["A", "B", "C"])]);
        assert_eq!(s.recall, None);
        assert_eq!(s.precision, Some(0.0));
        let report = Report {
            cases: 0,
            cases_traced: 0,
            predicted: 0,
            unknown_contacts: 0,
            true_exposures: 0,
            scores: Vec::new(),
            missed: Vec::new(),
            false_positives: Vec::new(),
            clusters: Some(s),
            likelihood: None,
        };
        let text = table(&report);
        assert!(text.contains("recall                 n/a"), "{text}");
        assert!(!text.contains("NaN"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["clusters"]["recall"], serde_json::Value::Null);
        assert_eq!(json["clusters"]["precision"], serde_json::json!(0.0));
    }

    #[test]
    fn the_table_caps_the_lists_and_the_json_has_them_all() {
        let clusters: Vec<TrueCluster> = (0..12)
            .map(|i| true_cluster(&format!("T{i:02}"), "A", &["A", "B", "C"]))
            .collect();
        let mut report = evaluate(&truth(Vec::new()), &[]);
        report.clusters = Some(evaluate_clusters(&truth(clusters), &[]));
        let text = table(&report);
        assert!(text.contains("\nClusters\n"), "{text}");
        assert!(text.contains("T09 (bar, 3 cases), … 2 more"), "{text}");
        assert!(!text.contains("T10"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["clusters"]["missed"].as_array().map(Vec::len),
            Some(12)
        );
        assert_eq!(json["clusters"]["true_clusters"], serde_json::json!(12));
    }

    /// A unique scratch folder with `truth/clusters.csv` holding `text`.
    fn clusters_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("epitrace-eval-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clusters.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    const HEADER: &str = "cluster,place,kind,lat,lng,first,last,index_case,cases,size\n";

    #[test]
    fn loads_clusters_as_the_simulator_writes_them() {
        let path = clusters_file(
            "good",
            &format!(
                "{HEADER}T7-001,venue-12,bar,37.566000,126.978000,2020-05-01T21:00:00+09:00,2020-05-02T01:00:00+09:00,SIM7-00002,SIM7-00002;SIM7-00005;SIM7-00009,3\n\
                 T7-002,home-40,household,37.5,127.0,2020-05-03T21:00:00+09:00,2020-05-04T01:00:00+09:00,SIM7-00003,SIM7-00001;SIM7-00003;SIM7-00004;SIM7-00006,4\n"
            ),
        );
        let clusters = load_clusters(&path).unwrap();
        assert_eq!(clusters.len(), 2);
        assert_eq!(
            clusters[0],
            true_cluster(
                "T7-001",
                "SIM7-00002",
                &["SIM7-00002", "SIM7-00005", "SIM7-00009"]
            )
            .with_place("venue-12", "bar")
        );
        assert_eq!(clusters[1].kind, "household");
        assert_eq!(clusters[1].index_case, "SIM7-00003");
        assert_eq!(clusters[1].cases.len(), 4);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    impl TrueCluster {
        fn with_place(mut self, place: &str, kind: &str) -> Self {
            place.clone_into(&mut self.place);
            kind.clone_into(&mut self.kind);
            self
        }
    }

    #[test]
    fn a_missing_clusters_file_is_no_cluster() {
        let dir = std::env::temp_dir().join(format!("epitrace-eval-{}-none", std::process::id()));
        assert!(load_clusters(&dir.join("clusters.csv")).unwrap().is_empty());
    }

    #[test]
    fn a_malformed_clusters_file_names_file_and_line() {
        let good = "T1,venue-1,bar,0,0,a,b,C1,C1;C2;C3,3\n";
        for (name, row, reason) in [
            (
                "size",
                "T2,venue-2,bar,0,0,a,b,C4,C4;C5;C6,4\n",
                "size 4 but 3 cases",
            ),
            (
                "index",
                "T2,venue-2,bar,0,0,a,b,C9,C4;C5;C6,3\n",
                "not among its cases",
            ),
            (
                "empty",
                "T2,venue-2,bar,0,0,a,b,C4,C4;;C6,3\n",
                "empty case id",
            ),
            (
                "dup",
                "T1,venue-2,bar,0,0,a,b,C4,C4;C5;C6,3\n",
                "listed twice",
            ),
            (
                "nosize",
                "T2,venue-2,bar,0,0,a,b,C4,C4;C5;C6,x\n",
                "bad size",
            ),
            ("fields", "T2,venue-2,bar\n", "line: 3"),
        ] {
            let path = clusters_file(name, &format!("{HEADER}{good}{row}"));
            let err = load_clusters(&path).unwrap_err().to_string();
            assert!(
                err.starts_with(&path.display().to_string()),
                "{name}: {err}"
            );
            assert!(err.contains(reason), "{name}: {err}");
            if name != "fields" {
                assert!(err.contains("line 3:"), "{name}: {err}");
            }
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
        }
        let path = clusters_file("header", "cluster,place,kind\n");
        let err = load_clusters(&path).unwrap_err().to_string();
        assert!(err.contains("no column index_case"), "{err}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
