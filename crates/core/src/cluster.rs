//! The cluster graph: confirmed cases linked by shared places and exposure
//! chains, grouped into clusters, and the alerts that keep consumers'
//! copies of those clusters up to date (issue 5, DESIGN §4).
//!
//! # The rule
//!
//! Two live (not retracted) cases are **linked** when
//! - **place:** each visited a place for at least
//!   [`ClusterConfig::min_dwell`], both visits' cells are at
//!   [`ClusterConfig::place_res`] or finer, one cell equals or contains the
//!   other, and the visits are at most [`ClusterConfig::revisit_window`]
//!   apart (overlapping visits are 0 apart); or
//! - **chain:** one case's exposure names a pseudonym of the other (the
//!   other was its contact) and the contact could have been the infection:
//!   it began before the contact became infectious, by at most
//!   [`ClusterConfig::max_incubation`]. The exposing case is the source.
//!
//! A **cluster** is a connected group of at least
//! [`ClusterConfig::min_cases`] linked cases. Its **index case** is its
//! earliest infectious case: the root of its exposure chains when it has
//! any (a chain only runs from a case to one that became infectious after
//! their contact, hence later), otherwise the first infectious case of the
//! shared places. Its **id** derives from the index
//! case ([`crate::ids::cluster_id`]), so the set of live clusters, with
//! their ids, depends only on the evidence, never on the order it arrived
//! in.
//!
//! # Alerts
//!
//! [`ClusterGraph::detect`] recomputes the clusters around the cases whose
//! evidence changed since the last call and compares them with what was last
//! published:
//! - `NEW`: an id not live before;
//! - `GROWING`: a live id that gained cases;
//! - `UPDATED`: a live id that lost cases, or whose places or index evidence
//!   changed;
//! - `MERGED` (with `merged_into`): a live id whose cases now belong to
//!   another cluster, because two clusters were joined by a case (the
//!   surviving id is the one of the joined cluster's index case) or because
//!   an earlier case became the index;
//! - `DISSOLVED`: a live id whose cases no longer form a cluster (a
//!   retraction left fewer than `min_cases`).
//!
//! Each alert lists its **places**: the links grouped by place and day (the
//! cells' ancestor at `place_res`, or a coarser exposure cell with
//! everything inside it, and the UTC day the link began: a visit's start, an
//! exposure's first contact), each with its time span, the cases linked there and the
//! likely **source** there — the case whose exposures there make it the
//! source of the most cases there (ties: the earliest infectious), or else
//! the earliest infectious case linked there. A merged cluster thus keeps the source of each of its events.
//!
//! State is in memory and small (a few facts per case, its qualifying
//! visits, its exposures); the detector rebuilds it from its store on start.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use epitrace_model::records::{
    CaseEvent, CaseStatus, ClusterAlert, ClusterStatus, Exposure, ExposureStatus, Place, Visit,
};
use epitrace_model::{CaseId, Cell, ClusterId, EventTime, ModelError, SubjectId, Text, VisitId};
use h3o::Resolution;

use crate::config::ClusterConfig;

const DAY_MS: i64 = 86_400_000;
use crate::error::CoreError;

/// What the graph needs of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFacts {
    /// The case's pseudonyms (chain links find the case through them).
    pub subjects: Vec<SubjectId>,
    /// Start of the infectious period: orders cases for the index case.
    pub infectious_from: EventTime,
    /// Confirmation time: breaks ties of `infectious_from`.
    pub confirmed_at: EventTime,
    /// End of the infectious period; `None` while the case is open (an
    /// open case never expires, see [`ClusterGraph::expire`]).
    pub infectious_until: Option<EventTime>,
    /// A retracted case belongs to no cluster.
    pub retracted: bool,
}

impl From<&CaseEvent> for CaseFacts {
    fn from(e: &CaseEvent) -> Self {
        Self {
            subjects: e.subjects.clone(),
            infectious_from: e.infectious_from,
            confirmed_at: e.confirmed_at,
            infectious_until: e.infectious_until,
            retracted: e.status == CaseStatus::Retracted,
        }
    }
}

/// A cell over a time span: a visit, or where and when an exposure
/// happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaceTime {
    /// The place.
    pub cell: Cell,
    /// Start of the span.
    pub start: EventTime,
    /// End of the span, not before `start`.
    pub end: EventTime,
}

impl PlaceTime {
    /// A live visit's place-time; `None` for a retracted one.
    #[must_use]
    pub fn of_visit(v: &Visit) -> Option<Self> {
        (!v.retracted).then_some(Self {
            cell: v.cell,
            start: v.start,
            end: v.end,
        })
    }

    /// A live exposure's place and time: its first cell over its first
    /// window (the first contact, when an infection would have happened);
    /// `None` for a retracted one.
    #[must_use]
    pub fn of_exposure(e: &Exposure) -> Option<Self> {
        if e.status == ExposureStatus::Retracted {
            return None;
        }
        let first = e.windows.iter().min_by_key(|w| (w.start(), w.end()))?;
        Some(Self {
            cell: e.first_cell,
            start: first.start(),
            end: first.end(),
        })
    }

    fn len_ms(self) -> i64 {
        self.end.millis_since(self.start)
    }

    /// Time between two spans, 0 when they overlap or touch.
    fn gap_ms(self, other: Self) -> i64 {
        let gap = if self.start <= other.start {
            other.start.millis_since(self.end)
        } else {
            self.start.millis_since(other.end)
        };
        gap.max(0)
    }

    /// The shared place (the coarser cell) over both spans.
    fn join(self, other: Self) -> Self {
        Self {
            cell: if self.cell.resolution() <= other.cell.resolution() {
                self.cell
            } else {
                other.cell
            },
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    facts: Option<CaseFacts>,
    /// Visits that can identify a place (fine enough, long enough).
    visits: BTreeMap<VisitId, PlaceTime>,
    /// Live exposures of this case, by contact.
    exposures: BTreeMap<SubjectId, PlaceTime>,
}

impl Node {
    fn live(&self) -> Option<&CaseFacts> {
        self.facts.as_ref().filter(|f| !f.retracted)
    }

    /// The latest event time of the case: the end of its infectious period
    /// or of any of its visits and exposures, whichever is later. `None`
    /// for an open case and for evidence whose case event has not arrived.
    fn horizon(&self) -> Option<EventTime> {
        let until = self.facts.as_ref()?.infectious_until?;
        Some(
            self.visits
                .values()
                .chain(self.exposures.values())
                .map(|p| p.end)
                .fold(until, EventTime::max),
        )
    }
}

/// What [`ClusterGraph::expire`] forgot.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Cases whose evidence is gone from the graph (and is to go from the
    /// stores).
    pub cases: Vec<CaseId>,
    /// Live clusters forgotten with their cases: their last alert stands.
    pub clusters: Vec<ClusterId>,
}

/// A connected group of cases and the links of each, as the walk found them.
#[derive(Debug, Default)]
struct Component {
    cases: BTreeSet<CaseId>,
    links: Vec<(CaseId, Vec<Link>)>,
}

/// A link from some case: the other case, how, and where and when.
type Link = (CaseId, LinkKind, PlaceTime);

/// The links of a cluster at one place, while an alert is built.
struct PlaceGroup {
    span: PlaceTime,
    cases: BTreeSet<CaseId>,
    /// Exposing case → the cases it is linked to as their source here.
    sources: BTreeMap<CaseId, BTreeSet<CaseId>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkKind {
    /// Both visited the place.
    Place,
    /// This case is the other's likely infector.
    Infected,
    /// The other case is this one's likely infector.
    InfectedBy,
}

/// The order that picks index cases and orients chains.
type Rank = (EventTime, EventTime);

/// Cases, their links and the clusters last published.
#[derive(Debug)]
pub struct ClusterGraph {
    cfg: ClusterConfig,
    place_res: Resolution,
    nodes: BTreeMap<CaseId, Node>,
    /// Qualifying visits by their ancestor at `place_res`: two visits can
    /// only share a place when they share that ancestor.
    places: HashMap<Cell, BTreeSet<(CaseId, VisitId)>>,
    /// Pseudonym → the cases that name it.
    subject_cases: HashMap<SubjectId, BTreeSet<CaseId>>,
    /// Contact pseudonym → the cases it was exposed to.
    exposed_to: HashMap<SubjectId, BTreeSet<CaseId>>,
    /// Live clusters as last published.
    live: BTreeMap<ClusterId, ClusterAlert>,
    /// Case → its live cluster.
    case_cluster: HashMap<CaseId, ClusterId>,
    /// Cases whose evidence changed since the last `detect`.
    dirty: BTreeSet<CaseId>,
}

impl ClusterGraph {
    /// An empty graph.
    ///
    /// # Errors
    /// [`CoreError::InvalidConfig`] for a bad `place_res`.
    pub fn new(cfg: &ClusterConfig) -> Result<Self, CoreError> {
        let place_res =
            Resolution::try_from(cfg.place_res).map_err(|_| CoreError::InvalidConfig {
                field: "cluster.place_res",
                reason: format!("{} is not an H3 resolution", cfg.place_res),
            })?;
        Ok(Self {
            cfg: cfg.clone(),
            place_res,
            nodes: BTreeMap::new(),
            places: HashMap::new(),
            subject_cases: HashMap::new(),
            exposed_to: HashMap::new(),
            live: BTreeMap::new(),
            case_cluster: HashMap::new(),
            dirty: BTreeSet::new(),
        })
    }

    /// Sets (or replaces) what is known of a case.
    pub fn set_case(&mut self, case: &CaseId, facts: CaseFacts) {
        let node = self.nodes.entry(case.clone()).or_default();
        if node.facts.as_ref() == Some(&facts) {
            return;
        }
        if let Some(old) = node.facts.take() {
            for s in &old.subjects {
                remove_from(&mut self.subject_cases, s, case);
            }
        }
        for s in &facts.subjects {
            self.subject_cases
                .entry(*s)
                .or_default()
                .insert(case.clone());
        }
        node.facts = Some(facts);
        self.dirty.insert(case.clone());
    }

    /// Sets a visit of a case's timeline; `None` removes it (retracted).
    /// Visits too coarse or too short to identify a place are ignored.
    pub fn set_visit(&mut self, case: &CaseId, visit: &VisitId, place: Option<PlaceTime>) {
        let place = place.filter(|p| {
            p.cell.resolution() >= self.place_res && p.len_ms() >= self.cfg.min_dwell.as_millis()
        });
        let node = self.nodes.entry(case.clone()).or_default();
        let old = match place {
            Some(p) => node.visits.insert(visit.clone(), p),
            None => node.visits.remove(visit),
        };
        if old == place {
            return;
        }
        let entry = (case.clone(), visit.clone());
        if let Some(bucket) = old.and_then(|o| o.cell.parent(self.place_res))
            && let Some(set) = self.places.get_mut(&bucket)
        {
            set.remove(&entry);
            if set.is_empty() {
                self.places.remove(&bucket);
            }
        }
        if let Some(bucket) = place.and_then(|p| p.cell.parent(self.place_res)) {
            self.places.entry(bucket).or_default().insert(entry);
        }
        self.dirty.insert(case.clone());
    }

    /// Sets a case's exposure of `contact`; `None` removes it (retracted).
    pub fn set_exposure(&mut self, case: &CaseId, contact: SubjectId, place: Option<PlaceTime>) {
        let node = self.nodes.entry(case.clone()).or_default();
        let old = match place {
            Some(p) => node.exposures.insert(contact, p),
            None => node.exposures.remove(&contact),
        };
        if old == place {
            return;
        }
        match place {
            Some(_) => {
                self.exposed_to
                    .entry(contact)
                    .or_default()
                    .insert(case.clone());
            }
            None => remove_from(&mut self.exposed_to, &contact, case),
        }
        self.dirty.insert(case.clone());
        // The contact's own case (if any) gains or loses a link.
        if let Some(others) = self.subject_cases.get(&contact) {
            self.dirty.extend(others.iter().cloned());
        }
    }

    /// Restores a cluster published before (on start, from the detector's
    /// store); MERGED and DISSOLVED alerts are not live and are ignored.
    pub fn restore(&mut self, alert: ClusterAlert) {
        if matches!(
            alert.status,
            ClusterStatus::Merged | ClusterStatus::Dissolved
        ) {
            return;
        }
        for c in &alert.cases {
            self.case_cluster
                .insert(c.clone(), alert.cluster_id.clone());
        }
        self.live.insert(alert.cluster_id.clone(), alert);
    }

    /// The live clusters, as last published.
    pub fn clusters(&self) -> impl Iterator<Item = &ClusterAlert> {
        self.live.values()
    }

    /// Whether evidence changed since the last [`Self::detect`].
    #[must_use]
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    fn rank(&self, case: &CaseId) -> Option<Rank> {
        self.nodes
            .get(case)
            .and_then(Node::live)
            .map(|f| (f.infectious_from, f.confirmed_at))
    }

    fn is_live(&self, case: &CaseId) -> bool {
        self.rank(case).is_some()
    }

    /// Every link of a live case, with where and when it happened.
    fn links(&self, case: &CaseId) -> Vec<Link> {
        let mut out = Vec::new();
        let Some(node) = self.nodes.get(case) else {
            return out;
        };
        let Some(facts) = node.live() else {
            return out;
        };
        let window = self.cfg.revisit_window.as_millis();
        for v in node.visits.values() {
            let Some(bucket) = v.cell.parent(self.place_res) else {
                continue;
            };
            for (other, vid) in self.places.get(&bucket).into_iter().flatten() {
                if other == case || !self.is_live(other) {
                    continue;
                }
                let Some(w) = self.nodes.get(other).and_then(|n| n.visits.get(vid)) else {
                    continue;
                };
                if v.cell.co_located(w.cell) && v.gap_ms(*w) <= window {
                    out.push((other.clone(), LinkKind::Place, v.join(*w)));
                }
            }
        }
        // This case exposed another case's pseudonym.
        for (contact, place) in &node.exposures {
            for other in self.subject_cases.get(contact).into_iter().flatten() {
                if other != case && self.plausible(*place, other) {
                    out.push((other.clone(), LinkKind::Infected, *place));
                }
            }
        }
        // Another case exposed one of this case's pseudonyms.
        for s in &facts.subjects {
            for other in self.exposed_to.get(s).into_iter().flatten() {
                if other == case || !self.is_live(other) {
                    continue;
                }
                if let Some(place) = self.nodes.get(other).and_then(|n| n.exposures.get(s))
                    && self.plausible(*place, case)
                {
                    out.push((other.clone(), LinkKind::InfectedBy, *place));
                }
            }
        }
        out
    }

    /// Whether an exposure could have infected `infectee`: its first
    /// contact came before the infectee became infectious, by at most
    /// `max_incubation`. A contact who was already infectious was not
    /// infected there (both were cases already; a place link may still
    /// hold).
    fn plausible(&self, exposure: PlaceTime, infectee: &CaseId) -> bool {
        self.rank(infectee).is_some_and(|(from, _)| {
            let gap = from.millis_since(exposure.start);
            gap > 0 && gap <= self.cfg.max_incubation.as_millis()
        })
    }

    /// The connected group of live cases around `start`, with every link
    /// of each (found once, by the walk, and reused by [`Self::describe`]).
    fn component(&self, start: &CaseId) -> Component {
        let mut group = Component::default();
        if !self.is_live(start) {
            return group;
        }
        let mut queue = VecDeque::from([start.clone()]);
        group.cases.insert(start.clone());
        while let Some(c) = queue.pop_front() {
            let links = self.links(&c);
            for (other, _, _) in &links {
                if group.cases.insert(other.clone()) {
                    queue.push_back(other.clone());
                }
            }
            group.links.push((c, links));
        }
        group
    }

    /// The cluster a qualifying group of cases forms, without status.
    fn describe(&self, group: &Component, at: EventTime) -> Result<ClusterAlert, ModelError> {
        let cases = &group.cases;
        let by_rank = |c: &CaseId| self.rank(c).map(|r| (r, c.clone()));
        let index = cases
            .iter()
            .filter_map(by_rank)
            .min()
            .map(|(_, c)| c)
            .ok_or(ModelError::InvalidRecord {
                field: "cases",
                reason: "empty",
            })?;
        let mut groups: BTreeMap<(Cell, i64), PlaceGroup> = BTreeMap::new();
        let mut chain: BTreeSet<(CaseId, CaseId)> = BTreeSet::new();
        let mut place_links = 0usize;
        for (c, links) in &group.links {
            for (other, kind, pt) in links.iter().cloned() {
                let key = pt.cell.parent(self.place_res).unwrap_or(pt.cell);
                let day = pt.start.as_millis().div_euclid(DAY_MS);
                let group = groups.entry((key, day)).or_insert_with(|| PlaceGroup {
                    span: PlaceTime { cell: key, ..pt },
                    cases: BTreeSet::new(),
                    sources: BTreeMap::new(),
                });
                group.span = group.span.join(PlaceTime { cell: key, ..pt });
                group.cases.insert(c.clone());
                group.cases.insert(other.clone());
                match kind {
                    LinkKind::Infected => {
                        group
                            .sources
                            .entry(c.clone())
                            .or_default()
                            .insert(other.clone());
                        chain.insert((c.clone(), other));
                    }
                    LinkKind::InfectedBy => {
                        group
                            .sources
                            .entry(other.clone())
                            .or_default()
                            .insert(c.clone());
                        chain.insert((other, c.clone()));
                    }
                    LinkKind::Place => place_links += 1,
                }
            }
        }
        // A place coarser than `place_res` (an exposure on a tower's cell)
        // absorbs the finer places it contains on the same day.
        let coarse: Vec<(Cell, i64)> = groups
            .keys()
            .copied()
            .filter(|(k, _)| k.resolution() < self.place_res)
            .collect();
        for (outer, day) in coarse {
            let inner: Vec<(Cell, i64)> = groups
                .keys()
                .copied()
                .filter(|(k, d)| *d == day && *k != outer && outer.contains(*k))
                .collect();
            for k in inner {
                if let Some(g) = groups.remove(&k)
                    && let Some(o) = groups.get_mut(&(outer, day))
                {
                    o.span = o.span.join(PlaceTime {
                        cell: outer,
                        ..g.span
                    });
                    o.cases.extend(g.cases);
                    for (source, infected) in g.sources {
                        o.sources.entry(source).or_default().extend(infected);
                    }
                }
            }
        }
        let earliest =
            |set: &BTreeSet<CaseId>| set.iter().filter_map(by_rank).min().map(|(_, c)| c);
        // The source here: the case linked as the source of the most cases
        // here (ties: the earliest infectious), else the earliest case.
        let spreader = |sources: &BTreeMap<CaseId, BTreeSet<CaseId>>| {
            sources
                .iter()
                .filter_map(|(c, infected)| {
                    by_rank(c).map(|r| (infected.len(), std::cmp::Reverse(r)))
                })
                .max()
                .map(|(_, std::cmp::Reverse((_, c)))| c)
        };
        let mut places: Vec<Place> = groups
            .into_values()
            .map(|g| {
                let source = spreader(&g.sources).or_else(|| earliest(&g.cases));
                Place::new(g.span.cell, g.span.start, g.span.end)
                    .map(|p| p.with_cases(g.cases.into_iter().collect(), source))
            })
            .collect::<Result<_, _>>()?;
        places.sort_by_key(|p| (p.start(), p.end(), p.cell()));
        places.truncate(usize::try_from(self.cfg.max_places).unwrap_or(usize::MAX));
        let index_from = self.rank(&index).map(|r| r.0);
        let evidence = evidence(&index, index_from, cases.len(), &chain, place_links / 2);
        Ok(ClusterAlert {
            cluster_id: crate::ids::cluster_id(&index)?,
            status: ClusterStatus::New,
            cases: cases.iter().cloned().collect(),
            places,
            index_case: Some(index),
            source_evidence: Text::new("source_evidence", evidence)?,
            size: u32::try_from(cases.len()).unwrap_or(u32::MAX),
            merged_into: None,
            detected_at: at,
        })
    }

    /// Forgets, silently, what can no longer change: every connected group
    /// of live cases whose every case ended (its infectious period, visits
    /// and exposures) before `cutoff`, and every retracted case that ended
    /// before it. Their clusters' last alerts stand (no alert is emitted).
    ///
    /// Exact as long as no evidence arrives about times before `cutoff`,
    /// and `cutoff` lies more than [`ClusterConfig::revisit_window`] and
    /// [`ClusterConfig::max_incubation`] behind the newest evidence: then
    /// no new case can link to a forgotten one, so forgetting changes no
    /// later cluster. Open cases (no `infectious_until`), cases whose
    /// evidence changed since the last [`Self::detect`] and evidence
    /// without its case event are kept.
    pub fn expire(&mut self, cutoff: EventTime) -> Expired {
        let ended = |g: &Self, c: &CaseId| {
            !g.dirty.contains(c)
                && g.nodes
                    .get(c)
                    .and_then(Node::horizon)
                    .is_some_and(|h| h < cutoff)
        };
        let mut out = Expired::default();
        let mut seen: BTreeSet<CaseId> = BTreeSet::new();
        let candidates: Vec<CaseId> = self
            .nodes
            .keys()
            .filter(|c| ended(self, c))
            .cloned()
            .collect();
        for case in candidates {
            if seen.contains(&case) {
                continue;
            }
            if !self.is_live(&case) {
                seen.insert(case.clone());
                out.cases.push(case);
                continue;
            }
            let group = self.component(&case);
            let all_ended = group.cases.iter().all(|c| ended(self, c));
            seen.extend(group.cases.iter().cloned());
            if all_ended {
                out.cases.extend(group.cases);
            }
        }
        let mut clusters: BTreeSet<ClusterId> = BTreeSet::new();
        for case in &out.cases {
            self.forget(case);
            if let Some(id) = self.case_cluster.remove(case) {
                clusters.insert(id);
            }
        }
        for id in &clusters {
            self.live.remove(id);
        }
        out.clusters = clusters.into_iter().collect();
        out
    }

    /// Removes a case's node and every index entry of it.
    fn forget(&mut self, case: &CaseId) {
        let Some(node) = self.nodes.remove(case) else {
            return;
        };
        if let Some(facts) = &node.facts {
            for s in &facts.subjects {
                remove_from(&mut self.subject_cases, s, case);
            }
        }
        for (vid, p) in &node.visits {
            if let Some(bucket) = p.cell.parent(self.place_res)
                && let Some(set) = self.places.get_mut(&bucket)
            {
                set.remove(&(case.clone(), vid.clone()));
                if set.is_empty() {
                    self.places.remove(&bucket);
                }
            }
        }
        for contact in node.exposures.keys() {
            remove_from(&mut self.exposed_to, contact, case);
        }
    }

    /// Recomputes the clusters around the cases changed since the last call
    /// and returns the alerts that bring the published clusters up to date,
    /// stamped `at`. The alerts are also the graph's new published state.
    ///
    /// # Errors
    /// [`ModelError`] only if an alert cannot be built (an id or text out
    /// of range), which valid inputs never cause.
    pub fn detect(&mut self, at: EventTime) -> Result<Vec<ClusterAlert>, ModelError> {
        let dirty = std::mem::take(&mut self.dirty);
        // Everyone whose cluster may change: the changed cases and the
        // members of their published clusters (a removed link may split
        // one).
        let mut seeds: BTreeSet<CaseId> = dirty.clone();
        let mut touched: BTreeSet<ClusterId> = BTreeSet::new();
        for c in &dirty {
            if let Some(id) = self.case_cluster.get(c) {
                touched.insert(id.clone());
            }
        }
        for id in &touched {
            if let Some(alert) = self.live.get(id) {
                seeds.extend(alert.cases.iter().cloned());
            }
        }
        let mut seen: BTreeSet<CaseId> = BTreeSet::new();
        let mut fresh: BTreeMap<ClusterId, ClusterAlert> = BTreeMap::new();
        let min = usize::try_from(self.cfg.min_cases).unwrap_or(usize::MAX);
        for seed in &seeds {
            if seen.contains(seed) {
                continue;
            }
            let group = self.component(seed);
            seen.extend(group.cases.iter().cloned());
            for c in &group.cases {
                if let Some(id) = self.case_cluster.get(c) {
                    touched.insert(id.clone());
                }
            }
            if group.cases.len() >= min {
                let cluster = self.describe(&group, at)?;
                fresh.insert(cluster.cluster_id.clone(), cluster);
            }
        }

        let mut alerts = Vec::new();
        let mut unchanged: BTreeMap<ClusterId, ClusterAlert> = BTreeMap::new();
        for (id, mut cluster) in fresh.clone() {
            let status = match self.live.get(&id) {
                None => ClusterStatus::New,
                Some(old) => {
                    let old_cases: BTreeSet<&CaseId> = old.cases.iter().collect();
                    if cluster.cases.iter().any(|c| !old_cases.contains(c)) {
                        ClusterStatus::Growing
                    } else if old.cases != cluster.cases
                        || old.places != cluster.places
                        || old.index_case != cluster.index_case
                        || old.source_evidence != cluster.source_evidence
                    {
                        ClusterStatus::Updated
                    } else {
                        unchanged.insert(id, old.clone());
                        continue;
                    }
                }
            };
            cluster.status = status;
            alerts.push(cluster);
        }
        for id in &touched {
            if fresh.contains_key(id) {
                continue;
            }
            let Some(old) = self.live.get(id) else {
                continue;
            };
            // The fresh cluster holding most of the old one's cases absorbs
            // it (ties: the smaller id); none → it dissolved.
            let into = fresh
                .values()
                .map(|f| {
                    let n = f.cases.iter().filter(|c| old.cases.contains(c)).count();
                    (n, std::cmp::Reverse(f.cluster_id.clone()))
                })
                .filter(|(n, _)| *n > 0)
                .max()
                .map(|(_, std::cmp::Reverse(id))| id);
            alerts.push(ClusterAlert {
                status: if into.is_some() {
                    ClusterStatus::Merged
                } else {
                    ClusterStatus::Dissolved
                },
                merged_into: into,
                detected_at: at,
                ..old.clone()
            });
        }

        // The published state: drop what was touched, add what is fresh.
        for id in &touched {
            if let Some(old) = self.live.remove(id) {
                for c in &old.cases {
                    if self.case_cluster.get(c) == Some(id) {
                        self.case_cluster.remove(c);
                    }
                }
            }
        }
        for (id, cluster) in fresh {
            for c in &cluster.cases {
                self.case_cluster.insert(c.clone(), id.clone());
            }
            // Unchanged clusters keep the version consumers have.
            let published = alerts
                .iter()
                .find(|a| a.cluster_id == id && a.merged_into.is_none())
                .or_else(|| unchanged.get(&id))
                .cloned()
                .unwrap_or(cluster);
            self.live.insert(id, published);
        }
        Ok(alerts)
    }
}

fn remove_from(map: &mut HashMap<SubjectId, BTreeSet<CaseId>>, key: &SubjectId, case: &CaseId) {
    if let Some(set) = map.get_mut(key) {
        set.remove(case);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// Why the index case was chosen, in one line of at most 1024 bytes.
fn evidence(
    index: &CaseId,
    from: Option<EventTime>,
    size: usize,
    chain: &BTreeSet<(CaseId, CaseId)>,
    place_links: usize,
) -> String {
    let from = from.map_or_else(String::new, |t| format!(", infectious from {t}"));
    let exposed: Vec<&str> = chain
        .iter()
        .filter(|(a, _)| a == index)
        .map(|(_, b)| b.as_str())
        .collect();
    let mut text = if exposed.is_empty() {
        format!("{index}: earliest infectious of {size} cases linked by shared places{from}")
    } else {
        format!(
            "{index}: root of the exposure chain{from}; exposed {} of the {size} cases",
            exposed.len()
        )
    };
    text.push_str(&format!(
        "; {} chain link(s), {place_links} place link(s)",
        chain.len()
    ));
    if !chain.is_empty() {
        text.push_str("; chain:");
        for (a, b) in chain {
            let item = format!(" {a}>{b}");
            if text.len() + item.len() + 4 > 1000 {
                text.push_str(" ...");
                break;
            }
            text.push_str(&item);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::cluster_id;
    use crate::{Span, config::ClusterConfig};
    use epitrace_model::LatLng;
    use proptest::prelude::*;

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_588_291_200_000; // 2020-05-01T00:00Z

    fn t(hours: f64) -> EventTime {
        #[allow(clippy::cast_possible_truncation)]
        EventTime::from_millis("t", T0 + (hours * HOUR as f64) as i64).unwrap()
    }

    fn case(n: u8) -> CaseId {
        CaseId::new(format!("C{n:02}")).unwrap()
    }

    fn subject(n: u8) -> SubjectId {
        SubjectId::from_bytes([n; 16])
    }

    fn facts(n: u8, from_h: f64) -> CaseFacts {
        CaseFacts {
            subjects: vec![subject(n)],
            infectious_from: t(from_h),
            confirmed_at: t(from_h + 48.0),
            infectious_until: Some(t(from_h + 72.0)),
            retracted: false,
        }
    }

    /// Places: 0 and 1 are res-10 cells with the same res-9 parent (2); 3
    /// is another res-10 cell 2 km away; 4 is a res-8 cell (too coarse to
    /// be a place); 5 is a res-10 cell inside 4.
    fn place(i: usize) -> Cell {
        let res = |r: u8| Resolution::try_from(r).unwrap();
        let a = LatLng::new(37.5340, 126.9940).unwrap().to_cell(res(10));
        let parent = a.parent(res(9)).unwrap();
        let sibling = Cell::new(
            parent
                .index()
                .children(res(10))
                .find(|c| u64::from(*c) != a.raw())
                .unwrap()
                .into(),
        )
        .unwrap();
        let far = LatLng::new(37.5520, 126.9940).unwrap().to_cell(res(10));
        let coarse = LatLng::new(37.5700, 127.0100).unwrap().to_cell(res(8));
        let inside = LatLng::new(37.5700, 127.0100).unwrap().to_cell(res(10));
        [a, sibling, parent, far, coarse, inside][i]
    }

    fn stay(p: usize, from_h: f64, hours: f64) -> Option<PlaceTime> {
        Some(PlaceTime {
            cell: place(p),
            start: t(from_h),
            end: t(from_h + hours),
        })
    }

    fn vid(c: u8, i: usize) -> VisitId {
        VisitId::new(format!("v{c}-{i}")).unwrap()
    }

    fn graph() -> ClusterGraph {
        ClusterGraph::new(&ClusterConfig::default()).unwrap()
    }

    fn live(g: &ClusterGraph) -> BTreeMap<String, (Vec<String>, String)> {
        g.clusters()
            .map(|a| {
                (
                    a.cluster_id.to_string(),
                    (
                        a.cases.iter().map(ToString::to_string).collect(),
                        a.index_case.as_ref().map(ToString::to_string).unwrap(),
                    ),
                )
            })
            .collect()
    }

    fn statuses(alerts: &[ClusterAlert]) -> Vec<(ClusterStatus, Vec<String>)> {
        alerts
            .iter()
            .map(|a| (a.status, a.cases.iter().map(ToString::to_string).collect()))
            .collect()
    }

    fn names(ns: &[u8]) -> Vec<String> {
        ns.iter().map(|n| case(*n).to_string()).collect()
    }

    #[test]
    fn a_cluster_forms_at_three_cases_and_grows() {
        let mut g = graph();
        // A church: the same place on two days, five days apart.
        for (n, from, day) in [(1, 0.0, 0.0), (2, 10.0, 0.0)] {
            g.set_case(&case(n), facts(n, from));
            g.set_visit(&case(n), &vid(n, 0), stay(0, 24.0 * day + 10.0, 2.0));
        }
        assert!(
            g.detect(t(100.0)).unwrap().is_empty(),
            "two cases are no cluster"
        );
        g.set_case(&case(3), facts(3, 5.0));
        // A finer-or-equal cell inside the same res-9 place, 5 days later.
        g.set_visit(&case(3), &vid(3, 0), stay(2, 24.0 * 5.0 + 10.0, 1.0));
        let alerts = g.detect(t(101.0)).unwrap();
        assert_eq!(
            statuses(&alerts),
            vec![(ClusterStatus::New, names(&[1, 2, 3]))]
        );
        let a = &alerts[0];
        assert_eq!(a.index_case, Some(case(1)), "earliest infectious");
        assert_eq!(a.cluster_id, cluster_id(&case(1)).unwrap());
        assert_eq!(a.size, 3);
        // One place: the res-9 cell that holds every visit (cases 1 and 2
        // shared a res-10 cell, case 3 is placed only in its parent), over
        // all three visits, with its cases and the earliest as the source.
        assert_eq!(a.places.len(), 1, "{:?}", a.places);
        let p = &a.places[0];
        assert_eq!(
            (p.cell(), p.start(), p.end()),
            (place(2), t(10.0), t(24.0 * 5.0 + 11.0))
        );
        assert_eq!(p.cases(), &[case(1), case(2), case(3)]);
        assert_eq!(p.source_case(), Some(&case(1)));
        // Nothing changed: nothing published.
        g.set_case(&case(3), facts(3, 5.0));
        assert!(g.detect(t(102.0)).unwrap().is_empty());
        // A fourth case joins.
        g.set_case(&case(4), facts(4, 20.0));
        g.set_visit(&case(4), &vid(4, 0), stay(1, 24.0 * 6.0, 1.0));
        g.set_visit(&case(4), &vid(4, 1), stay(0, 24.0 * 6.0 + 5.0, 1.0));
        let alerts = g.detect(t(103.0)).unwrap();
        assert_eq!(
            statuses(&alerts),
            vec![(ClusterStatus::Growing, names(&[1, 2, 3, 4]))]
        );
    }

    #[test]
    fn visits_too_short_too_coarse_or_too_far_apart_do_not_link() {
        let mut g = graph();
        for n in 1..=3 {
            g.set_case(&case(n), facts(n, 0.0));
        }
        // 10 minutes: below min_dwell.
        g.set_visit(&case(1), &vid(1, 0), stay(0, 10.0, 0.16));
        g.set_visit(&case(2), &vid(2, 0), stay(0, 10.0, 2.0));
        g.set_visit(&case(3), &vid(3, 0), stay(0, 10.0, 2.0));
        // Sibling cells at res 10 are not the same place.
        g.set_visit(&case(1), &vid(1, 1), stay(1, 10.0, 2.0));
        // Res 8 is too coarse, even when it contains the others' cell.
        g.set_visit(&case(1), &vid(1, 2), stay(4, 30.0, 2.0));
        g.set_visit(&case(2), &vid(2, 1), stay(5, 30.0, 2.0));
        // Eight days apart: beyond the revisit window.
        g.set_visit(&case(1), &vid(1, 3), stay(3, 0.0, 2.0));
        g.set_visit(&case(2), &vid(2, 2), stay(3, 24.0 * 8.0 + 3.0, 2.0));
        assert!(g.detect(t(300.0)).unwrap().is_empty());
        // Seven days apart links.
        g.set_visit(&case(3), &vid(3, 1), stay(3, 24.0 * 7.0 + 2.0, 2.0));
        let alerts = g.detect(t(301.0)).unwrap();
        assert_eq!(
            statuses(&alerts),
            vec![(ClusterStatus::New, names(&[1, 2, 3]))]
        );
    }

    #[test]
    fn an_exposure_chain_names_its_root() {
        let mut g = graph();
        // 3 exposed 2, 2 exposed 1... but 3 is the earliest: the root.
        g.set_case(&case(1), facts(1, 48.0));
        g.set_case(&case(2), facts(2, 24.0));
        g.set_case(&case(3), facts(3, 0.0));
        g.set_exposure(&case(3), subject(2), stay(3, 5.0, 1.0));
        assert!(
            g.detect(t(100.0)).unwrap().is_empty(),
            "a pair is no cluster"
        );
        g.set_exposure(&case(2), subject(1), stay(0, 30.0, 1.0));
        let alerts = g.detect(t(101.0)).unwrap();
        assert_eq!(
            statuses(&alerts),
            vec![(ClusterStatus::New, names(&[1, 2, 3]))]
        );
        let a = &alerts[0];
        assert_eq!(a.index_case, Some(case(3)));
        let ev = a.source_evidence.as_str();
        assert!(ev.starts_with("C03: root of the exposure chain"), "{ev}");
        assert!(ev.contains("C03>C02") && ev.contains("C02>C01"), "{ev}");
        // The exposures' places are the cluster's places (at the place
        // resolution), each with the case that exposed the other there.
        let res9 = |p: usize| place(p).parent(Resolution::Nine).unwrap();
        let got: Vec<(Cell, Vec<CaseId>, Option<&CaseId>)> = a
            .places
            .iter()
            .map(|p| (p.cell(), p.cases().to_vec(), p.source_case()))
            .collect();
        assert_eq!(
            got,
            vec![
                (res9(3), vec![case(2), case(3)], Some(&case(3))),
                (res9(0), vec![case(1), case(2)], Some(&case(2))),
            ]
        );
    }

    #[test]
    fn a_contact_already_infectious_is_no_chain_link() {
        let mut g = graph();
        g.set_case(&case(1), facts(1, 0.0));
        g.set_case(&case(2), facts(2, 10.0));
        g.set_case(&case(3), facts(3, 10.0));
        // Case 1 met cases 2 and 3 at hour 20: both were infectious by
        // then, so case 1 infected neither.
        g.set_exposure(&case(1), subject(2), stay(3, 20.0, 1.0));
        g.set_exposure(&case(1), subject(3), stay(3, 20.0, 1.0));
        assert!(g.detect(t(100.0)).unwrap().is_empty());
        // Met at hour 5, before either was infectious: a chain.
        g.set_exposure(&case(1), subject(2), stay(3, 5.0, 1.0));
        g.set_exposure(&case(1), subject(3), stay(3, 5.0, 1.0));
        assert_eq!(g.detect(t(101.0)).unwrap().len(), 1);
        // Fifteen days before case 3 became infectious: too long ago.
        g.set_case(&case(3), facts(3, 5.0 + 15.0 * 24.0));
        assert_eq!(
            statuses(&g.detect(t(102.0)).unwrap()),
            vec![(ClusterStatus::Dissolved, names(&[1, 2, 3]))]
        );
    }

    #[test]
    fn clusters_joined_by_a_case_merge_into_the_earlier_index() {
        let mut g = graph();
        for (n, from, p) in [(1, 0.0, 0), (2, 1.0, 0), (3, 2.0, 0)] {
            g.set_case(&case(n), facts(n, from));
            g.set_visit(&case(n), &vid(n, 0), stay(p, 10.0, 2.0));
        }
        for (n, from, p) in [(4, 3.0, 3), (5, 4.0, 3), (6, 5.0, 3)] {
            g.set_case(&case(n), facts(n, from));
            g.set_visit(&case(n), &vid(n, 0), stay(p, 50.0, 2.0));
        }
        let alerts = g.detect(t(100.0)).unwrap();
        let mut got = statuses(&alerts);
        got.sort();
        assert_eq!(
            got,
            vec![
                (ClusterStatus::New, names(&[1, 2, 3])),
                (ClusterStatus::New, names(&[4, 5, 6]))
            ]
        );
        assert_eq!(alerts.len(), 2);
        let (first, second) = (cluster_id(&case(1)).unwrap(), cluster_id(&case(4)).unwrap());
        // Case 7 was at both places.
        g.set_case(&case(7), facts(7, 30.0));
        g.set_visit(&case(7), &vid(7, 0), stay(0, 11.0, 1.0));
        g.set_visit(&case(7), &vid(7, 1), stay(3, 51.0, 1.0));
        let alerts = g.detect(t(101.0)).unwrap();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        let grown = alerts.iter().find(|a| a.cluster_id == first).unwrap();
        assert_eq!(grown.status, ClusterStatus::Growing);
        assert_eq!(grown.size, 7);
        let merged = alerts.iter().find(|a| a.cluster_id == second).unwrap();
        assert_eq!(merged.status, ClusterStatus::Merged);
        assert_eq!(merged.merged_into, Some(first.clone()));
        assert_eq!(live(&g).len(), 1);
    }

    #[test]
    fn an_earlier_case_re_keys_the_cluster() {
        let mut g = graph();
        for n in 2..=4 {
            g.set_case(&case(n), facts(n, f64::from(n)));
            g.set_visit(&case(n), &vid(n, 0), stay(0, 10.0, 2.0));
        }
        g.detect(t(100.0)).unwrap();
        g.set_case(&case(1), facts(1, 0.0));
        g.set_visit(&case(1), &vid(1, 0), stay(0, 9.0, 2.0));
        let alerts = g.detect(t(101.0)).unwrap();
        let new_id = cluster_id(&case(1)).unwrap();
        let old_id = cluster_id(&case(2)).unwrap();
        assert_eq!(alerts.len(), 2);
        assert!(
            alerts
                .iter()
                .any(|a| a.cluster_id == new_id && a.status == ClusterStatus::New)
        );
        assert!(alerts.iter().any(|a| a.cluster_id == old_id
            && a.status == ClusterStatus::Merged
            && a.merged_into == Some(new_id.clone())));
    }

    #[test]
    fn a_retracted_case_leaves_its_cluster() {
        let mut g = graph();
        for n in 1..=4 {
            g.set_case(&case(n), facts(n, f64::from(n)));
            g.set_visit(&case(n), &vid(n, 0), stay(0, 10.0, 2.0));
        }
        g.detect(t(100.0)).unwrap();
        let retract = |g: &mut ClusterGraph, n: u8| {
            let mut f = facts(n, f64::from(n));
            f.retracted = true;
            g.set_case(&case(n), f);
        };
        // The index case is retracted: the cluster is re-keyed to case 2.
        retract(&mut g, 1);
        let alerts = g.detect(t(101.0)).unwrap();
        let by_status: BTreeMap<ClusterStatus, &ClusterAlert> =
            alerts.iter().map(|a| (a.status, a)).collect();
        assert_eq!(by_status.len(), 2, "{alerts:?}");
        assert_eq!(
            by_status[&ClusterStatus::New].cases,
            vec![case(2), case(3), case(4)]
        );
        assert_eq!(
            by_status[&ClusterStatus::Merged].merged_into,
            Some(cluster_id(&case(2)).unwrap())
        );
        // A non-index case: UPDATED. Then below three: DISSOLVED.
        g.set_case(&case(5), facts(5, 9.0));
        g.set_visit(&case(5), &vid(5, 0), stay(0, 10.0, 2.0));
        g.detect(t(102.0)).unwrap();
        retract(&mut g, 5);
        assert_eq!(
            statuses(&g.detect(t(103.0)).unwrap()),
            vec![(ClusterStatus::Updated, names(&[2, 3, 4]))]
        );
        retract(&mut g, 3);
        let alerts = g.detect(t(104.0)).unwrap();
        assert_eq!(
            statuses(&alerts),
            vec![(ClusterStatus::Dissolved, names(&[2, 3, 4]))]
        );
        assert!(live(&g).is_empty());
        // A visit withdrawn by the timeline has the same effect as no visit.
        for n in [3, 5] {
            g.set_case(&case(n), facts(n, f64::from(n)));
        }
        assert_eq!(g.detect(t(105.0)).unwrap().len(), 1);
        g.set_visit(&case(5), &vid(5, 0), None);
        assert_eq!(
            statuses(&g.detect(t(106.0)).unwrap()),
            vec![(ClusterStatus::Updated, names(&[2, 3, 4]))]
        );
    }

    #[test]
    fn expire_forgets_only_groups_that_ended_and_changes_no_later_cluster() {
        let build = || {
            let mut g = graph();
            for n in 1..=3 {
                g.set_case(&case(n), facts(n, f64::from(n)));
                g.set_visit(&case(n), &vid(n, 0), stay(0, 10.0, 2.0));
            }
            // Linked to an open case: kept although 5 and 6 ended.
            for n in 5..=7 {
                let mut f = facts(n, f64::from(n));
                if n == 7 {
                    f.infectious_until = None;
                }
                g.set_case(&case(n), f);
                g.set_visit(&case(n), &vid(n, 0), stay(3, 10.0, 2.0));
            }
            g.detect(t(100.0)).unwrap();
            g
        };
        let mut g = build();
        assert_eq!(live(&g).len(), 2);
        // Nothing ended before the cutoff yet: nothing is forgotten.
        assert_eq!(g.expire(t(50.0)), Expired::default());
        let gone = g.expire(t(1000.0));
        assert_eq!(gone.cases, vec![case(1), case(2), case(3)]);
        assert_eq!(gone.clusters, vec![cluster_id(&case(1)).unwrap()]);
        assert_eq!(
            live(&g).into_values().collect::<Vec<_>>(),
            vec![(names(&[5, 6, 7]), case(5).to_string())]
        );
        // Later evidence: the same alerts with and without the expiry.
        let mut kept = build();
        for g in [&mut g, &mut kept] {
            for n in 8..=10 {
                g.set_case(&case(n), facts(n, 1000.0 + f64::from(n)));
                g.set_visit(&case(n), &vid(n, 0), stay(0, 1010.0, 2.0));
            }
        }
        let later = g.detect(t(1100.0)).unwrap();
        assert_eq!(later, kept.detect(t(1100.0)).unwrap());
        assert_eq!(
            statuses(&later),
            vec![(ClusterStatus::New, names(&[8, 9, 10]))]
        );
    }

    // ---- Order independence against a brute-force oracle ----

    #[derive(Debug, Clone)]
    enum Evidence {
        Case(u8, CaseFacts),
        Visit(u8, usize, Option<PlaceTime>),
        Exposure(u8, u8, Option<PlaceTime>),
    }

    impl Evidence {
        fn key(&self) -> (u8, u8, usize) {
            match self {
                Self::Case(c, _) => (0, *c, 0),
                Self::Visit(c, i, _) => (1, *c, *i),
                Self::Exposure(c, s, _) => (2, *c, usize::from(*s)),
            }
        }

        fn apply(&self, g: &mut ClusterGraph) {
            match self {
                Self::Case(c, f) => g.set_case(&case(*c), f.clone()),
                Self::Visit(c, i, p) => g.set_visit(&case(*c), &vid(*c, *i), *p),
                Self::Exposure(c, s, p) => g.set_exposure(&case(*c), subject(*s), *p),
            }
        }
    }

    /// Union-find over every pair of live cases, from the final evidence.
    fn oracle(
        final_state: &BTreeMap<(u8, u8, usize), Evidence>,
    ) -> BTreeMap<String, (Vec<String>, String)> {
        let cfg = ClusterConfig::default();
        let mut facts: BTreeMap<u8, CaseFacts> = BTreeMap::new();
        let mut visits: BTreeMap<u8, Vec<PlaceTime>> = BTreeMap::new();
        let mut exposures: BTreeMap<u8, Vec<(u8, EventTime)>> = BTreeMap::new();
        for e in final_state.values() {
            match e {
                Evidence::Case(c, f) if !f.retracted => {
                    facts.insert(*c, f.clone());
                }
                Evidence::Visit(c, _, Some(p)) => visits.entry(*c).or_default().push(*p),
                Evidence::Exposure(c, s, Some(p)) => {
                    exposures.entry(*c).or_default().push((*s, p.start));
                }
                _ => {}
            }
        }
        let ok = |p: &PlaceTime| {
            p.cell.resolution() >= Resolution::try_from(cfg.place_res).unwrap()
                && p.end.millis_since(p.start) >= cfg.min_dwell.as_millis()
        };
        let linked = |a: u8, b: u8| {
            let va = visits.get(&a).into_iter().flatten().filter(|p| ok(p));
            let place = va.into_iter().any(|p| {
                visits
                    .get(&b)
                    .into_iter()
                    .flatten()
                    .filter(|q| ok(q))
                    .any(|q| {
                        let gap = (q.start.millis_since(p.end)).max(p.start.millis_since(q.end));
                        p.cell.co_located(q.cell) && gap <= cfg.revisit_window.as_millis()
                    })
            });
            // x exposed y, and y was not yet infectious then.
            let names = |x: u8, y: u8| {
                exposures.get(&x).into_iter().flatten().any(|(s, at)| {
                    let gap = facts[&y].infectious_from.millis_since(*at);
                    facts[&y].subjects.contains(&subject(*s))
                        && gap > 0
                        && gap <= cfg.max_incubation.as_millis()
                })
            };
            place || names(a, b) || names(b, a)
        };
        let ids: Vec<u8> = facts.keys().copied().collect();
        let mut root: BTreeMap<u8, u8> = ids.iter().map(|c| (*c, *c)).collect();
        fn find(root: &mut BTreeMap<u8, u8>, x: u8) -> u8 {
            let r = root[&x];
            if r == x {
                return x;
            }
            let top = find(root, r);
            root.insert(x, top);
            top
        }
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                if linked(*a, *b) {
                    let (ra, rb) = (find(&mut root, *a), find(&mut root, *b));
                    root.insert(ra, rb);
                }
            }
        }
        let mut groups: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        for c in &ids {
            let r = find(&mut root, *c);
            groups.entry(r).or_default().push(*c);
        }
        groups
            .into_values()
            .filter(|g| g.len() >= 3)
            .map(|g| {
                let index = *g
                    .iter()
                    .min_by_key(|c| (facts[c].infectious_from, facts[c].confirmed_at, case(**c)))
                    .unwrap();
                (
                    cluster_id(&case(index)).unwrap().to_string(),
                    (names(&g), case(index).to_string()),
                )
            })
            .collect()
    }

    fn evidence_strategy() -> impl Strategy<Value = Vec<Evidence>> {
        let n_cases = 8u8;
        let facts = (0..n_cases).map(move |n| {
            (0.0..120.0f64, prop::bool::weighted(0.15)).prop_map(move |(from, retracted)| {
                let mut f = facts(n, (from / 12.0).round() * 12.0);
                f.retracted = retracted;
                Evidence::Case(n, f)
            })
        });
        let visit = (
            0..n_cases,
            0..4usize,
            0..6usize,
            0.0..300.0f64,
            0.1..4.0f64,
            prop::bool::weighted(0.1),
        )
            .prop_map(|(c, i, p, from, hours, gone)| {
                Evidence::Visit(
                    c,
                    i,
                    if gone {
                        None
                    } else {
                        stay(p, from.round(), hours)
                    },
                )
            });
        let exposure = (
            0..n_cases,
            0..n_cases + 3,
            0..6usize,
            0.0..150.0f64,
            prop::bool::weighted(0.1),
        )
            .prop_map(|(c, s, p, at, gone)| {
                Evidence::Exposure(
                    c,
                    s,
                    if gone {
                        None
                    } else {
                        stay(p, (at / 12.0).round() * 12.0, 1.0)
                    },
                )
            });
        (
            facts.collect::<Vec<_>>(),
            prop::collection::vec(visit, 0..40),
            prop::collection::vec(exposure, 0..10),
        )
            .prop_map(|(mut f, v, e)| {
                f.extend(v);
                f.extend(e);
                f
            })
    }

    /// Applies `events` in an order drawn from `seed` (each key's versions
    /// keep their order), detecting every few events; returns the final
    /// clusters and checks that the alerts, applied by a consumer that
    /// upserts by id, give the same clusters.
    fn run(events: &[Evidence], seed: u64) -> BTreeMap<String, (Vec<String>, String)> {
        let mut queues: BTreeMap<(u8, u8, usize), VecDeque<Evidence>> = BTreeMap::new();
        for e in events {
            queues.entry(e.key()).or_default().push_back(e.clone());
        }
        let mut keys: Vec<(u8, u8, usize)> = events.iter().map(Evidence::key).collect();
        let mut state = seed | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in (1..keys.len()).rev() {
            let j = usize::try_from(next() % (i as u64 + 1)).unwrap();
            keys.swap(i, j);
        }
        let mut g = graph();
        let mut consumer: BTreeMap<ClusterId, ClusterAlert> = BTreeMap::new();
        let every = usize::try_from(next() % 7 + 1).unwrap();
        for (n, k) in keys.iter().enumerate() {
            if let Some(e) = queues.get_mut(k).and_then(VecDeque::pop_front) {
                e.apply(&mut g);
            }
            if n % every == 0 || n + 1 == keys.len() {
                for a in g.detect(t(1000.0)).unwrap() {
                    match a.status {
                        ClusterStatus::Merged | ClusterStatus::Dissolved => {
                            consumer.remove(&a.cluster_id);
                        }
                        _ => {
                            consumer.insert(a.cluster_id.clone(), a);
                        }
                    }
                }
                let ids: BTreeSet<&ClusterId> = g.clusters().map(|a| &a.cluster_id).collect();
                assert_eq!(
                    ids,
                    consumer.keys().collect(),
                    "alerts do not replay to the graph"
                );
            }
        }
        live(&g)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn clusters_match_the_oracle_in_any_order(events in evidence_strategy(), s1 in any::<u64>(), s2 in any::<u64>()) {
            let mut last: BTreeMap<(u8, u8, usize), Evidence> = BTreeMap::new();
            for e in &events {
                last.insert(e.key(), e.clone());
            }
            let want = oracle(&last);
            let a = run(&events, s1);
            prop_assert_eq!(&a, &want);
            let b = run(&events, s2);
            prop_assert_eq!(&b, &want);
        }
    }

    #[test]
    fn config_durations_are_the_documented_defaults() {
        let cfg = ClusterConfig::default();
        assert_eq!(cfg.min_cases, 3);
        assert_eq!(cfg.revisit_window, Span::days(7));
        assert_eq!(cfg.min_dwell, Span::minutes(15));
    }
}
