//! `epitrace clusters` and `epitrace case ID`: what investigators read from
//! the output topics, as tables or JSON.
//!
//! Both read personal data, so each run appends one record to the
//! hash-chained `audit.log` (who, in which role, why, what) and prints
//! nothing unless the broker acknowledged it. The order is: validate the
//! flags, read the topics, write the audit record, print.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use epitrace_model::records::{
    AuditAction, AuditOutcome, ClusterAlert, ContactClass, Exposure, Role, Visit,
};
use epitrace_model::topics::{CLUSTERS, EXPOSURES, TIMELINES};
use epitrace_model::{ActorId, CaseId, Cell, EventTime, Text};
use epitrace_stream::KafkaConfig;
use epitrace_tools::audit::{AuditEntry, append};
use epitrace_tools::eval::{live_exposures, read_exposures};
use epitrace_tools::query::{live_clusters, live_visits, read_clusters, read_visits};
use serde_json::{Value, json};

use crate::settings::{Overrides, load};

/// Who reads, and why: recorded on `audit.log` before anything is shown.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Who is reading: your personal id ([A-Za-z0-9._:-], at most 128
    /// bytes), recorded on audit.log.
    #[arg(long, env = "EPITRACE_ACTOR")]
    actor: String,
    /// Why you are reading (free text, e.g. the case or ticket you work
    /// on), recorded on audit.log.
    #[arg(long, env = "EPITRACE_PURPOSE")]
    purpose: String,
    /// The role you act in, recorded on audit.log.
    #[arg(long, value_enum, default_value_t = RoleArg::Investigator, env = "EPITRACE_ROLE")]
    role: RoleArg,
}

/// The roles of `audit.log` records, as flag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RoleArg {
    /// Traces cases: reads timelines and exposures of assigned cases.
    Investigator,
    /// Reads clusters and aggregate outputs.
    Epidemiologist,
    /// Runs the pipeline.
    Operator,
    /// Reads the audit log.
    Auditor,
    /// An automated service.
    Service,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Investigator => Self::Investigator,
            RoleArg::Epidemiologist => Self::Epidemiologist,
            RoleArg::Operator => Self::Operator,
            RoleArg::Auditor => Self::Auditor,
            RoleArg::Service => Self::Service,
        }
    }
}

/// [`AuditArgs`], validated.
#[derive(Clone)]
struct Reader {
    actor: ActorId,
    purpose: Text,
    role: Role,
}

impl AuditArgs {
    fn validate(&self) -> Result<Reader> {
        Ok(Reader {
            actor: ActorId::new(self.actor.as_str())
                .with_context(|| format!("--actor {:?}", self.actor))?,
            purpose: Text::new("purpose", self.purpose.as_str()).context("--purpose")?,
            role: self.role.into(),
        })
    }
}

/// `epitrace clusters` flags.
#[derive(Debug, Args)]
pub(crate) struct ClustersArgs {
    /// Print one JSON document (an array of clusters) instead of tables.
    #[arg(long)]
    json: bool,
    /// Only the clusters that contain this case.
    #[arg(long, value_name = "ID")]
    case: Option<String>,
    /// How long to wait for tracing.clusters (and audit.log) to be read to
    /// their end, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    #[command(flatten)]
    audit: AuditArgs,
    #[command(flatten)]
    overrides: Overrides,
}

/// `epitrace case` flags.
#[derive(Debug, Args)]
pub(crate) struct CaseArgs {
    /// The case, as the health authority numbers it (e.g. KR-2020-0031).
    id: String,
    /// Print one JSON document (the visits and the clusters) instead of
    /// tables.
    #[arg(long)]
    json: bool,
    /// How long to wait for tracing.timelines, tracing.exposures,
    /// tracing.clusters and audit.log to be read to their end, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    #[command(flatten)]
    audit: AuditArgs,
    #[command(flatten)]
    overrides: Overrides,
}

/// `epitrace clusters`: the live clusters, largest first.
pub(crate) fn clusters_cmd(args: &ClustersArgs, out: &mut impl Write) -> Result<()> {
    let reader = args.audit.validate()?;
    let case = args
        .case
        .as_deref()
        .map(|c| CaseId::new(c).with_context(|| format!("--case {c:?}")))
        .transpose()?;
    let cfg = load(&args.overrides)?;
    crate::require_kafka(&cfg.kafka)?;
    let timeout = Duration::from_secs(args.timeout_s);
    let (versions, bad) = read_clusters(&cfg.kafka, timeout)?;
    audit(
        &cfg.kafka,
        reader,
        AuditAction::ReadCluster,
        CLUSTERS,
        case.clone(),
        timeout,
    )?;
    warn_undecodable(bad, CLUSTERS);
    let clusters = select_clusters(live_clusters(versions), case.as_ref());
    if args.json {
        writeln!(out, "{:#}", clusters_json(&clusters))?;
    } else {
        write!(out, "{}", clusters_text(&clusters, case.as_ref()))?;
    }
    Ok(())
}

/// `epitrace case ID`: the case's live visits, its live contacts counted by
/// class (close, area; no contact's identity), and the live clusters that
/// contain it.
pub(crate) fn case_cmd(args: &CaseArgs, out: &mut impl Write) -> Result<()> {
    let reader = args.audit.validate()?;
    let case = CaseId::new(args.id.as_str()).with_context(|| format!("case id {:?}", args.id))?;
    let cfg = load(&args.overrides)?;
    crate::require_kafka(&cfg.kafka)?;
    let timeout = Duration::from_secs(args.timeout_s);
    let (visits, bad_visits) = read_visits(&cfg.kafka, timeout)?;
    let (exposures, bad_exposures) = read_exposures(&cfg.kafka, timeout)?;
    let (clusters, bad_clusters) = read_clusters(&cfg.kafka, timeout)?;
    for (action, resource) in [
        (AuditAction::ReadTimeline, TIMELINES),
        (AuditAction::ReadExposures, EXPOSURES),
    ] {
        audit(
            &cfg.kafka,
            reader.clone(),
            action,
            resource,
            Some(case.clone()),
            timeout,
        )?;
    }
    warn_undecodable(bad_visits, TIMELINES);
    warn_undecodable(bad_exposures, EXPOSURES);
    warn_undecodable(bad_clusters, CLUSTERS);
    let visits = live_visits(&case, visits);
    let contacts = ContactCounts::of(
        live_exposures(exposures)
            .iter()
            .filter(|e| e.case_id == case),
    );
    let clusters = select_clusters(live_clusters(clusters), Some(&case));
    if args.json {
        let mut doc = case_json(&case, &visits, &clusters);
        doc["contacts"] = contacts.json();
        writeln!(out, "{doc:#}")?;
    } else {
        let mut text = case_text(&case, &visits, &clusters);
        text.push_str(&contacts.text(&case));
        write!(out, "{text}")?;
    }
    Ok(())
}

/// Appends the audit record of this read; an error means nothing may be
/// shown.
fn audit(
    kafka: &KafkaConfig,
    reader: Reader,
    action: AuditAction,
    resource: &str,
    case_id: Option<CaseId>,
    timeout: Duration,
) -> Result<()> {
    let entry = AuditEntry {
        at: now()?,
        actor: reader.actor,
        role: reader.role,
        action,
        resource: Text::new("resource", resource)?,
        case_id,
        purpose: reader.purpose,
        outcome: AuditOutcome::Allowed,
    };
    let appended = crate::runtime()?
        .block_on(append(kafka, entry, timeout))
        .context("writing the audit record to audit.log failed, so nothing is shown")?;
    if appended.undecodable > 0 {
        let _ = writeln!(
            io::stderr(),
            "warning: {} undecodable records in audit.log (the chain continues from seq {})",
            appended.undecodable,
            appended.record.seq
        );
    }
    Ok(())
}

fn warn_undecodable(bad: usize, topic: &str) {
    if bad > 0 {
        let _ = writeln!(
            io::stderr(),
            "{bad} undecodable records in {topic} were skipped"
        );
    }
}

/// The wall clock as an event time.
fn now() -> Result<EventTime> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_millis();
    let ms = i64::try_from(ms).map_err(|_| anyhow!("the system clock is past year 2100"))?;
    Ok(EventTime::from_millis("at", ms)?)
}

// ------------------------------------------------------------- formatting

/// A case's live contacts by class.
#[derive(Debug, Default, PartialEq, Eq)]
struct ContactCounts {
    close: usize,
    area: usize,
    /// Records written before contact classes.
    unclassified: usize,
    /// Of all, transit contacts (most of their time on one ride).
    transit: usize,
}

impl ContactCounts {
    fn of<'a>(exposures: impl Iterator<Item = &'a Exposure>) -> Self {
        let mut c = Self::default();
        for e in exposures {
            c.transit += usize::from(e.is_transit());
            match e.contact_class {
                Some(ContactClass::Close) => c.close += 1,
                Some(ContactClass::Area) => c.area += 1,
                None => c.unclassified += 1,
            }
        }
        c
    }

    fn json(&self) -> Value {
        json!({"close": self.close, "area": self.area, "unclassified": self.unclassified, "transit": self.transit})
    }

    fn text(&self, case: &CaseId) -> String {
        let mut s = format!(
            "contacts of case {case}: {} close (call; quarantine), {} area (broad notification)",
            self.close, self.area
        );
        if self.unclassified > 0 {
            s.push_str(&format!(", {} without a class", self.unclassified));
        }
        if self.transit > 0 {
            s.push_str(&format!(
                "; {} of them met on a ride (transit)",
                self.transit
            ));
        }
        s.push('\n');
        s
    }
}

/// The clusters that contain `case` (all when `None`), largest first, then
/// by id.
fn select_clusters(mut clusters: Vec<ClusterAlert>, case: Option<&CaseId>) -> Vec<ClusterAlert> {
    if let Some(c) = case {
        clusters.retain(|a| a.cases.contains(c));
    }
    clusters.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then_with(|| a.cluster_id.cmp(&b.cluster_id))
    });
    clusters
}

/// A cell as 15 lowercase hex digits (the usual H3 spelling).
fn cell_hex(cell: Cell) -> String {
    epitrace_api::render::cell_hex(cell)
}

/// A duration in seconds as `45s`, `25m` or `1h 25m` (seconds dropped past
/// a minute).
fn dwell(seconds: u32) -> String {
    let (h, m) = (seconds / 3600, seconds % 3600 / 60);
    match (h, m) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// Left-aligned columns two spaces apart, sized to their widest cell, with
/// `indent` before every line and no trailing spaces.
fn table(indent: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::from(indent);
        for (cell, w) in cells.zip(&widths) {
            s.push_str(&format!("{cell:<w$}  "));
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

fn clusters_text(clusters: &[ClusterAlert], case: Option<&CaseId>) -> String {
    if clusters.is_empty() {
        return match case {
            Some(c) => format!("no live clusters contain case {c}\n"),
            None => "no live clusters\n".to_owned(),
        };
    }
    let mut out = String::new();
    for (i, a) in clusters.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "cluster {}  {}  size {}  index case {}  detected {}\n",
            a.cluster_id,
            a.status.as_symbol(),
            a.size,
            a.index_case.as_ref().map_or("none", CaseId::as_str),
            a.detected_at,
        ));
        out.push_str(&format!("  evidence: {}\n", a.source_evidence));
        let cases: Vec<&str> = a.cases.iter().map(CaseId::as_str).collect();
        out.push_str(&format!("  cases: {}\n", cases.join(", ")));
        if !a.linked_clusters.is_empty() {
            let linked: Vec<&str> = a.linked_clusters.iter().map(|c| c.as_str()).collect();
            out.push_str(&format!("  linked events: {}\n", linked.join(", ")));
        }
        let rows: Vec<Vec<String>> = a
            .places
            .iter()
            .map(|p| {
                let c = p.cell().center();
                vec![
                    cell_hex(p.cell()),
                    u8::from(p.cell().resolution()).to_string(),
                    format!("{:.6}", c.lat()),
                    format!("{:.6}", c.lng()),
                    p.start().to_string(),
                    p.end().to_string(),
                    p.source_case().map_or("-", CaseId::as_str).to_owned(),
                    p.cases()
                        .iter()
                        .map(CaseId::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                ]
            })
            .collect();
        out.push_str(&table(
            "  ",
            &[
                "cell",
                "res",
                "lat",
                "lng",
                "start",
                "end",
                "source",
                "cases here",
            ],
            &rows,
        ));
    }
    out
}

fn clusters_json(clusters: &[ClusterAlert]) -> Value {
    Value::Array(clusters.iter().map(cluster_json).collect())
}

fn cluster_json(a: &ClusterAlert) -> Value {
    epitrace_api::render::cluster(a)
}

fn sources(v: &Visit) -> Vec<&'static str> {
    v.sources.iter().map(|s| s.as_symbol()).collect()
}

fn case_text(case: &CaseId, visits: &[Visit], clusters: &[ClusterAlert]) -> String {
    let mut out = String::new();
    if visits.is_empty() {
        out.push_str(&format!("no visits on record for case {case}\n"));
    } else {
        let n = visits.len();
        let s = if n == 1 { "" } else { "s" };
        out.push_str(&format!("case {case}: {n} visit{s}\n"));
        let rows: Vec<Vec<String>> = visits
            .iter()
            .map(|v| {
                let c = v.cell.center();
                vec![
                    v.start.to_string(),
                    v.end.to_string(),
                    dwell(v.dwell_s),
                    cell_hex(v.cell),
                    v.res().to_string(),
                    format!("{:.6}", c.lat()),
                    format!("{:.6}", c.lng()),
                    sources(v).join(","),
                    format!("{:.2}", v.confidence.get()),
                ]
            })
            .collect();
        out.push_str(&table(
            "",
            &[
                "start",
                "end",
                "dwell",
                "cell",
                "res",
                "lat",
                "lng",
                "sources",
                "confidence",
            ],
            &rows,
        ));
    }
    if clusters.is_empty() {
        out.push_str(&format!("no live clusters contain case {case}\n"));
    } else {
        out.push_str(&format!("live clusters containing case {case}:\n"));
        let rows: Vec<Vec<String>> = clusters
            .iter()
            .map(|a| {
                vec![
                    a.cluster_id.to_string(),
                    a.size.to_string(),
                    a.index_case
                        .as_ref()
                        .map_or_else(|| "none".to_owned(), CaseId::to_string),
                ]
            })
            .collect();
        out.push_str(&table("  ", &["cluster", "size", "index case"], &rows));
    }
    out
}

fn case_json(case: &CaseId, visits: &[Visit], clusters: &[ClusterAlert]) -> Value {
    let visits: Vec<Value> = visits.iter().map(epitrace_api::render::visit).collect();
    let clusters: Vec<Value> = clusters
        .iter()
        .map(|a| {
            json!({
                "cluster_id": a.cluster_id.as_str(),
                "status": a.status.as_symbol(),
                "size": a.size,
                "index_case": a.index_case.as_ref().map(CaseId::as_str),
            })
        })
        .collect();
    json!({
        "case_id": case.as_str(),
        "visits": visits,
        "clusters": clusters,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use epitrace_model::records::{ClusterStatus, ObservationSource, Place};
    use epitrace_model::{ClusterId, LatLng, Probability, SubjectId, VisitId};

    use super::*;

    const T0: i64 = 1_588_377_600_000; // 2020-05-02T00:00:00Z

    fn t(minutes: i64) -> EventTime {
        EventTime::from_millis("t", T0 + minutes * 60_000).unwrap()
    }

    fn cell(lat: f64, lng: f64, res: h3o::Resolution) -> Cell {
        LatLng::new(lat, lng).unwrap().to_cell(res)
    }

    fn case(id: &str) -> CaseId {
        CaseId::new(id).unwrap()
    }

    fn alert(id: &str, status: ClusterStatus, cases: &[&str], index: Option<&str>) -> ClusterAlert {
        ClusterAlert {
            cluster_id: ClusterId::new(id).unwrap(),
            status,
            cases: cases.iter().map(|c| case(c)).collect(),
            places: vec![
                Place::new(
                    cell(37.5344, 126.9946, h3o::Resolution::Nine),
                    t(60),
                    t(150),
                )
                .unwrap()
                .with_cases(
                    cases.iter().take(2).map(|c| case(c)).collect(),
                    cases.first().map(|c| case(c)),
                ),
            ],
            index_case: index.map(case),
            source_evidence: Text::new("source_evidence", "earliest onset at the shared place")
                .unwrap(),
            size: u32::try_from(cases.len()).unwrap(),
            merged_into: (status == ClusterStatus::Merged).then(|| ClusterId::new("c-z").unwrap()),
            linked_clusters: Vec::new(),
            detected_at: t(600),
        }
    }

    fn visit(id: &str, start: i64, end: i64, srcs: &[ObservationSource]) -> Visit {
        Visit {
            visit_id: VisitId::new(id).unwrap(),
            case_id: case("KR-1"),
            subject: SubjectId::from_bytes([0xab; 16]),
            cell: cell(37.5344, 126.9946, h3o::Resolution::Ten),
            start: t(start),
            end: t(end),
            dwell_s: u32::try_from((end - start) * 60).unwrap(),
            sources: srcs.to_vec(),
            confidence: Probability::new("confidence", 0.925).unwrap(),
            retracted: false,
        }
    }

    #[test]
    fn dwell_reads_as_hours_and_minutes() {
        assert_eq!(dwell(0), "0s");
        assert_eq!(dwell(45), "45s");
        assert_eq!(dwell(60), "1m");
        assert_eq!(dwell(25 * 60 + 59), "25m");
        assert_eq!(dwell(85 * 60), "1h 25m");
        assert_eq!(dwell(26 * 3600), "26h 0m");
    }

    #[test]
    fn clusters_are_filtered_by_case_and_ordered_by_size_then_id() {
        let live = vec![
            alert("c-b", ClusterStatus::New, &["KR-1", "KR-2"], None),
            alert("c-a", ClusterStatus::New, &["KR-3", "KR-4"], None),
            alert(
                "c-c",
                ClusterStatus::Growing,
                &["KR-1", "KR-5", "KR-6"],
                None,
            ),
        ];
        let ids = |v: &[ClusterAlert]| -> Vec<String> {
            v.iter().map(|a| a.cluster_id.to_string()).collect()
        };
        assert_eq!(
            ids(&select_clusters(live.clone(), None)),
            ["c-c", "c-a", "c-b"]
        );
        assert_eq!(
            ids(&select_clusters(live.clone(), Some(&case("KR-1")))),
            ["c-c", "c-b"]
        );
        assert!(select_clusters(live, Some(&case("KR-9"))).is_empty());
    }

    #[test]
    fn the_clusters_table_shows_header_evidence_cases_and_places() {
        let a = alert(
            "c-1",
            ClusterStatus::Growing,
            &["KR-1", "KR-2", "KR-3"],
            Some("KR-1"),
        );
        let place = a.places[0].clone();
        let centre = place.cell().center();
        let text = clusters_text(&[a], None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "cluster c-1  GROWING  size 3  index case KR-1  detected 2020-05-02T10:00:00.000Z"
        );
        assert_eq!(lines[1], "  evidence: earliest onset at the shared place");
        assert_eq!(lines[2], "  cases: KR-1, KR-2, KR-3");
        assert!(lines[3].starts_with("  cell "), "{text}");
        let hex = format!("{:x}", place.cell().raw());
        assert_eq!(hex.len(), 15);
        let row: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(
            row,
            [
                hex.as_str(),
                "9",
                &format!("{:.6}", centre.lat()),
                &format!("{:.6}", centre.lng()),
                "2020-05-02T01:00:00.000Z",
                "2020-05-02T02:30:00.000Z",
                "KR-1",
                "KR-1,KR-2",
            ]
        );
        assert_eq!(lines.len(), 5);
        assert!(text.lines().all(|l| l == l.trim_end()));
        // An event linked to others by a shared case says which.
        let mut b = alert(
            "c-2",
            ClusterStatus::New,
            &["KR-1", "KR-4", "KR-5"],
            Some("KR-1"),
        );
        b.linked_clusters = vec![
            ClusterId::new("c-1").unwrap(),
            ClusterId::new("c-9").unwrap(),
        ];
        let text = clusters_text(&[b], None);
        assert_eq!(text.lines().nth(3), Some("  linked events: c-1, c-9"));
    }

    #[test]
    fn no_clusters_says_so() {
        assert_eq!(clusters_text(&[], None), "no live clusters\n");
        assert_eq!(
            clusters_text(&[], Some(&case("KR-7"))),
            "no live clusters contain case KR-7\n"
        );
        assert_eq!(clusters_json(&[]), json!([]));
    }

    #[test]
    fn the_clusters_json_has_every_field() {
        let a = alert("c-1", ClusterStatus::New, &["KR-1", "KR-2"], None);
        let m = alert("c-2", ClusterStatus::Merged, &["KR-3"], Some("KR-3"));
        let centre = a.places[0].cell().center();
        let doc = clusters_json(&[a.clone(), m]);
        assert_eq!(
            doc[0],
            json!({
                "cluster_id": "c-1",
                "status": "NEW",
                "size": 2,
                "index_case": null,
                "source_evidence": "earliest onset at the shared place",
                "cases": ["KR-1", "KR-2"],
                "places": [{
                    "cell": format!("{:x}", a.places[0].cell().raw()),
                    "res": 9,
                    "lat": centre.lat(),
                    "lng": centre.lng(),
                    "start": "2020-05-02T01:00:00.000Z",
                    "end": "2020-05-02T02:30:00.000Z",
                    "source_case": "KR-1",
                    "cases": ["KR-1", "KR-2"],
                }],
                "merged_into": null,
                "detected_at": "2020-05-02T10:00:00.000Z",
                "linked_clusters": [],
            })
        );
        assert_eq!(doc[1]["merged_into"], "c-z");
        assert_eq!(doc[1]["index_case"], "KR-3");
    }

    #[test]
    fn the_case_table_lists_visits_then_clusters() {
        use ObservationSource::{Card, Gps};
        let visits = [
            visit("v-1", 0, 85, &[Gps, Card]),
            visit("v-2", 120, 121, &[Card]),
        ];
        let clusters = [alert(
            "c-1",
            ClusterStatus::New,
            &["KR-1", "KR-2"],
            Some("KR-2"),
        )];
        let text = case_text(&case("KR-1"), &visits, &clusters);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "case KR-1: 2 visits");
        let header: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "start",
                "end",
                "dwell",
                "cell",
                "res",
                "lat",
                "lng",
                "sources",
                "confidence"
            ]
        );
        let c = visits[0].cell.center();
        let hex = format!("{:x}", visits[0].cell.raw());
        assert_eq!(
            lines[2]
                .split("  ")
                .filter(|s| !s.is_empty())
                .map(str::trim)
                .collect::<Vec<_>>(),
            [
                "2020-05-02T00:00:00.000Z",
                "2020-05-02T01:25:00.000Z",
                "1h 25m",
                hex.as_str(),
                "10",
                &format!("{:.6}", c.lat()),
                &format!("{:.6}", c.lng()),
                "GPS,CARD",
                "0.93",
            ]
        );
        assert!(lines[3].contains(" 1m "), "{text}");
        assert_eq!(lines[4], "live clusters containing case KR-1:");
        assert_eq!(
            lines[5].split_whitespace().collect::<Vec<_>>(),
            ["cluster", "size", "index", "case"]
        );
        assert_eq!(
            lines[6].split_whitespace().collect::<Vec<_>>(),
            ["c-1", "2", "KR-2"]
        );
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn an_unknown_case_says_so() {
        let text = case_text(&case("KR-404"), &[], &[]);
        assert_eq!(
            text,
            "no visits on record for case KR-404\nno live clusters contain case KR-404\n"
        );
        assert_eq!(
            case_json(&case("KR-404"), &[], &[]),
            json!({"case_id": "KR-404", "visits": [], "clusters": []})
        );
    }

    #[test]
    fn the_case_json_has_every_visit_field() {
        let v = visit("v-1", 0, 85, &[ObservationSource::Wifi]);
        let a = alert("c-1", ClusterStatus::Growing, &["KR-1", "KR-2"], None);
        let c = v.cell.center();
        let doc = case_json(&case("KR-1"), std::slice::from_ref(&v), &[a]);
        assert_eq!(
            doc,
            json!({
                "case_id": "KR-1",
                "visits": [{
                    "visit_id": "v-1",
                    "subject": "ab".repeat(16),
                    "start": "2020-05-02T00:00:00.000Z",
                    "end": "2020-05-02T01:25:00.000Z",
                    "dwell_s": 5100,
                    "cell": format!("{:x}", v.cell.raw()),
                    "res": 10,
                    "lat": c.lat(),
                    "lng": c.lng(),
                    "sources": ["WIFI"],
                    "confidence": 0.925,
                }],
                "clusters": [{
                    "cluster_id": "c-1",
                    "status": "GROWING",
                    "size": 2,
                    "index_case": null,
                }],
            })
        );
    }
}
