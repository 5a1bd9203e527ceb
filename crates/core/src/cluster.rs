//! The cluster graph: confirmed cases linked by shared places and exposure
//! chains, grouped into **outbreak events** (a place and a period, with its
//! cases and the likely source there), and the alerts that keep consumers'
//! copies of those events up to date (issues 5 and 15, DESIGN §4).
//!
//! # Links
//!
//! Two live (not retracted) cases are **linked** when
//! - **place:** each visited a place for at least
//!   [`ClusterConfig::min_dwell`], both visits' cells are at
//!   [`ClusterConfig::place_res`] or finer, one cell equals or contains the
//!   other, and the visits are at most [`ClusterConfig::revisit_window`]
//!   apart (overlapping visits are 0 apart); or
//! - **chain:** one case's exposure names a pseudonym of the other (the
//!   other was its contact), the exposure is likely a close contact (its
//!   likelihood is at least [`ClusterConfig::chain_min_likelihood`], see
//!   [`PlaceTime::of_chain`]) and the contact could have been the
//!   infection: it began before the contact became infectious, by at most
//!   [`ClusterConfig::max_incubation`]. The exposing case is the source.
//!
//! Every link happens at a **place**: the ancestor at `place_res` of its
//! cell (the coarser visit's, or the exposure's first cell), or the cell
//! itself when it is coarser (an exposure on a tower's cell).
//!
//! # Events
//!
//! An **event** is a group of links in which each link shares a case with
//! another at the same place, or at a nested place (a tower's cell holding
//! a venue's) within [`ClusterConfig::revisit_window`]; one with at least
//! [`ClusterConfig::min_cases`] cases is published. So a case infected at
//! one event and spreading at another is in both, and the two stay apart:
//! each alert lists the other live events sharing a case with it
//! (`linked_clusters`, the transmission chains between events) instead of
//! merging into one.
//!
//! An event's **source** is the case whose exposures there make it the
//! source of the most of its cases (ties: the earliest infectious), else
//! the earliest infectious case (infectious start, then confirmation).
//! Its **main place** is the place of most of the source's links there
//! (ties: the finer, then the smaller cell), and its **id** derives from
//! the source and the main place ([`crate::ids::cluster_id`]). Two events
//! with one source and one main place would share a link of the source at
//! that place and be one event, so ids are unique; and the set of live
//! events, with their ids, depends only on the evidence, never on the order
//! it arrived in.
//!
//! # Alerts
//!
//! [`ClusterGraph::detect`] recomputes the events around the cases whose
//! evidence changed since the last call and compares them with what was last
//! published:
//! - `NEW`: an id not live before;
//! - `GROWING`: a live id that gained cases;
//! - `UPDATED`: a live id that lost cases, or whose places, source, source
//!   evidence or linked events changed;
//! - `MERGED` (with `merged_into`): a live id whose cases now belong to
//!   another event (the one holding most of them), because two events
//!   were joined by new links or the event's source or main place changed;
//! - `DISSOLVED`: a live id whose cases no longer form an event (a
//!   retraction left fewer than `min_cases`);
//! - `CLOSED`: a live event whose latest link ended at least
//!   [`ClusterConfig::watch_period`] before the graph's clock (event time,
//!   [`ClusterGraph::advance`]): no new linked case for a watch period. A
//!   closed event that changes is published CLOSED again; one that gains a
//!   link inside the watch period reopens (GROWING or UPDATED).
//!
//! Each alert lists its **places**: who was at the event's places when —
//! each case of a place link over its own visit, both cases of a chain link
//! over the exposure's first contact — grouped by place and UTC day (the
//! day the visit or the contact began; a coarser place absorbs the finer
//! ones inside it on its day), each with its time span, the cases there and
//! the likely **source** there: the case there whose exposures there make
//! it the source of the most cases there, else the event's source if it
//! was there, else the earliest infectious case there.
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

    /// A chain link's place and time: [`Self::of_exposure`] when the
    /// exposure's likelihood is at least `min_likelihood` (an exposure
    /// without one, written before the field existed, counts), `None`
    /// otherwise: a contact that was probably not close (the `area` list)
    /// does not make one case the other's source.
    #[must_use]
    pub fn of_chain(e: &Exposure, min_likelihood: f64) -> Option<Self> {
        if e.likelihood.is_some_and(|p| p.get() < min_likelihood) {
            return None;
        }
        Self::of_exposure(e)
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

/// A link from some case: the other case, how, where and when, and for a
/// place link the two visits (this case's, the other's).
type Link = (CaseId, LinkKind, PlaceTime, Option<[PlaceTime; 2]>);

/// A link between two cases, once: from the smaller id `a` to `b`, `kind`
/// as `a` sees it, at `place` (see the module docs, Links).
#[derive(Debug, Clone)]
struct Edge {
    a: CaseId,
    b: CaseId,
    kind: LinkKind,
    span: PlaceTime,
    place: Cell,
    /// For a place link, `a`'s visit and `b`'s.
    visits: Option<[PlaceTime; 2]>,
}

impl Edge {
    /// Who was at the edge's place when: each visit of a place link with
    /// its case, or both cases over an exposure's time.
    fn presence(&self) -> Vec<(PlaceTime, &CaseId)> {
        match self.visits {
            Some([va, vb]) => vec![(va, &self.a), (vb, &self.b)],
            None => vec![(self.span, &self.a), (self.span, &self.b)],
        }
    }

    /// The exposing case and the case it infected, for a chain link.
    fn chain(&self) -> Option<(&CaseId, &CaseId)> {
        match self.kind {
            LinkKind::Infected => Some((&self.a, &self.b)),
            LinkKind::InfectedBy => Some((&self.b, &self.a)),
            LinkKind::Place => None,
        }
    }

    fn touches(&self, case: &CaseId) -> bool {
        &self.a == case || &self.b == case
    }
}

/// The links of an event at one place and day, while an alert is built.
struct PlaceGroup {
    span: PlaceTime,
    cases: BTreeSet<CaseId>,
    /// Exposing case → the cases it is linked to as their source here.
    sources: BTreeMap<CaseId, BTreeSet<CaseId>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum LinkKind {
    /// Both visited the place.
    Place,
    /// This case is the other's likely infector.
    Infected,
    /// The other case is this one's likely infector.
    InfectedBy,
}

/// The order that picks sources and orients chains.
type Rank = (EventTime, EventTime);

/// Disjoint sets over `0..n`, for grouping links into events.
struct Sets(Vec<usize>);

impl Sets {
    fn new(n: usize) -> Self {
        Self((0..n).collect())
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }

    fn union(&mut self, x: usize, y: usize) {
        let (rx, ry) = (self.find(x), self.find(y));
        if rx != ry {
            self.0[rx.max(ry)] = rx.min(ry);
        }
    }
}

/// Cases, their links and the events last published.
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
    /// Live events as last published.
    live: BTreeMap<ClusterId, ClusterAlert>,
    /// Case → the live events it belongs to.
    case_clusters: HashMap<CaseId, BTreeSet<ClusterId>>,
    /// Cases whose evidence changed since the last `detect`.
    dirty: BTreeSet<CaseId>,
    /// The latest event time seen ([`Self::advance`]): events close on it.
    clock: Option<EventTime>,
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
            case_clusters: HashMap::new(),
            dirty: BTreeSet::new(),
            clock: None,
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

    /// Moves the graph's clock (event time) to `now` if it is later: events
    /// whose latest link ended a [`ClusterConfig::watch_period`] before it
    /// close at the next [`Self::detect`].
    pub fn advance(&mut self, now: EventTime) {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
    }

    /// Restores an event published before (on start, from the detector's
    /// store); MERGED and DISSOLVED alerts are not live and are ignored.
    pub fn restore(&mut self, alert: ClusterAlert) {
        if matches!(
            alert.status,
            ClusterStatus::Merged | ClusterStatus::Dissolved
        ) {
            return;
        }
        for c in &alert.cases {
            self.case_clusters
                .entry(c.clone())
                .or_default()
                .insert(alert.cluster_id.clone());
        }
        self.live.insert(alert.cluster_id.clone(), alert);
    }

    /// The live events, as last published.
    pub fn clusters(&self) -> impl Iterator<Item = &ClusterAlert> {
        self.live.values()
    }

    /// Whether the next [`Self::detect`] has anything to do: evidence
    /// changed, or an open event is due to close.
    #[must_use]
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty() || self.live.values().any(|a| self.closes(a))
    }

    /// Whether `alert` is open and its latest place ended a watch period
    /// before the clock.
    fn closes(&self, alert: &ClusterAlert) -> bool {
        alert.status != ClusterStatus::Closed && self.is_closed(alert)
    }

    /// Whether the latest place of `alert` ended a watch period or more
    /// before the clock.
    fn is_closed(&self, alert: &ClusterAlert) -> bool {
        let (Some(clock), Some(last)) = (self.clock, alert.places.iter().map(Place::end).max())
        else {
            return false;
        };
        clock.millis_since(last) >= self.cfg.watch_period.as_millis()
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
                    out.push((other.clone(), LinkKind::Place, v.join(*w), Some([*v, *w])));
                }
            }
        }
        // This case exposed another case's pseudonym.
        for (contact, place) in &node.exposures {
            for other in self.subject_cases.get(contact).into_iter().flatten() {
                if other != case && self.plausible(*place, other) {
                    out.push((other.clone(), LinkKind::Infected, *place, None));
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
                    out.push((other.clone(), LinkKind::InfectedBy, *place, None));
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
    /// of each (found once, by the walk, and reused by [`Self::events`]).
    fn component(&self, start: &CaseId) -> Component {
        let mut group = Component::default();
        if !self.is_live(start) {
            return group;
        }
        let mut queue = VecDeque::from([start.clone()]);
        group.cases.insert(start.clone());
        while let Some(c) = queue.pop_front() {
            let links = self.links(&c);
            for (other, ..) in &links {
                if group.cases.insert(other.clone()) {
                    queue.push_back(other.clone());
                }
            }
            group.links.push((c, links));
        }
        group
    }

    /// The place a link at `cell` happened at (see the module docs).
    fn place_of(&self, cell: Cell) -> Cell {
        cell.parent(self.place_res).unwrap_or(cell)
    }

    /// The events of a connected group (module docs, Events) with at least
    /// `min_cases` cases, each as its links in a stable order.
    fn events(&self, group: &Component) -> Vec<Vec<Edge>> {
        let mut edges: Vec<Edge> = group
            .links
            .iter()
            .flat_map(|(c, links)| {
                links
                    .iter()
                    .filter(move |(o, ..)| c < o)
                    .map(move |(o, kind, pt, visits)| Edge {
                        a: c.clone(),
                        b: o.clone(),
                        kind: *kind,
                        span: *pt,
                        place: self.place_of(pt.cell),
                        visits: *visits,
                    })
            })
            .collect();
        edges.sort_by(|x, y| {
            let key = |e: &Edge| (e.place, e.span.start, e.span.end, e.span.cell, e.kind);
            (&x.a, &x.b, key(x)).cmp(&(&y.a, &y.b, key(y)))
        });
        let mut sets = Sets::new(edges.len());
        // Links of one case at one place.
        let mut first: HashMap<(Cell, &CaseId), usize> = HashMap::new();
        let mut by_case: BTreeMap<&CaseId, Vec<usize>> = BTreeMap::new();
        for (i, e) in edges.iter().enumerate() {
            for c in [&e.a, &e.b] {
                match first.entry((e.place, c)) {
                    std::collections::hash_map::Entry::Occupied(o) => sets.union(*o.get(), i),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(i);
                    }
                }
                by_case.entry(c).or_default().push(i);
            }
        }
        // Links of one case at nested places, within the revisit window.
        for list in by_case.values() {
            for (n, &i) in list.iter().enumerate() {
                for &j in &list[n + 1..] {
                    let (x, y) = (&edges[i], &edges[j]);
                    if x.place != y.place
                        && x.place.co_located(y.place)
                        && x.span.gap_ms(y.span) <= self.cfg.revisit_window.as_millis()
                    {
                        sets.union(i, j);
                    }
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<Edge>> = BTreeMap::new();
        for (i, e) in edges.iter().enumerate() {
            groups.entry(sets.find(i)).or_default().push(e.clone());
        }
        let min = usize::try_from(self.cfg.min_cases).unwrap_or(usize::MAX);
        groups
            .into_values()
            .filter(|g| {
                let cases: BTreeSet<&CaseId> = g.iter().flat_map(|e| [&e.a, &e.b]).collect();
                cases.len() >= min
            })
            .collect()
    }

    /// The alert of one event (its links), without status or linked events.
    fn describe(&self, edges: &[Edge], at: EventTime) -> Result<ClusterAlert, ModelError> {
        let by_rank = |c: &CaseId| self.rank(c).map(|r| (r, c.clone()));
        let earliest =
            |set: &BTreeSet<CaseId>| set.iter().filter_map(by_rank).min().map(|(_, c)| c);
        // The source: the case linked as the source of the most cases
        // (ties: the earliest infectious), else the earliest case.
        let spreader = |sources: &BTreeMap<CaseId, BTreeSet<CaseId>>| {
            sources
                .iter()
                .filter_map(|(c, infected)| {
                    by_rank(c).map(|r| (infected.len(), std::cmp::Reverse(r)))
                })
                .max()
                .map(|(_, std::cmp::Reverse((_, c)))| c)
        };
        let cases: BTreeSet<CaseId> = edges
            .iter()
            .flat_map(|e| [e.a.clone(), e.b.clone()])
            .collect();
        let mut groups: BTreeMap<(Cell, i64), PlaceGroup> = BTreeMap::new();
        let mut chain: BTreeSet<(CaseId, CaseId)> = BTreeSet::new();
        let mut sources: BTreeMap<CaseId, BTreeSet<CaseId>> = BTreeMap::new();
        let mut place_links = 0usize;
        for e in edges {
            // A place link puts each case there over its own visit, on the
            // visit's day; an exposure puts both there over its time.
            for (at, case) in e.presence() {
                let day = at.start.as_millis().div_euclid(DAY_MS);
                let here = PlaceTime {
                    cell: e.place,
                    ..at
                };
                let group = groups.entry((e.place, day)).or_insert_with(|| PlaceGroup {
                    span: here,
                    cases: BTreeSet::new(),
                    sources: BTreeMap::new(),
                });
                group.span = group.span.join(here);
                group.cases.insert(case.clone());
            }
            match e.chain() {
                Some((from, to)) => {
                    let day = e.span.start.as_millis().div_euclid(DAY_MS);
                    if let Some(group) = groups.get_mut(&(e.place, day)) {
                        group
                            .sources
                            .entry(from.clone())
                            .or_default()
                            .insert(to.clone());
                    }
                    sources.entry(from.clone()).or_default().insert(to.clone());
                    chain.insert((from.clone(), to.clone()));
                }
                None => place_links += 1,
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
        let source =
            spreader(&sources)
                .or_else(|| earliest(&cases))
                .ok_or(ModelError::InvalidRecord {
                    field: "cases",
                    reason: "empty",
                })?;
        // The main place: where most of the source's links are.
        let mut at_place: BTreeMap<Cell, usize> = BTreeMap::new();
        for e in edges.iter().filter(|e| e.touches(&source)) {
            *at_place.entry(e.place).or_default() += 1;
        }
        let main = at_place
            .iter()
            .max_by_key(|(cell, n)| (**n, cell.resolution(), std::cmp::Reverse(**cell)))
            .map(|(cell, _)| *cell)
            .ok_or(ModelError::InvalidRecord {
                field: "places",
                reason: "empty",
            })?;
        let mut places: Vec<Place> = groups
            .into_values()
            .map(|g| {
                // The spreader there, else the event's source if it was
                // there, else the earliest case there.
                let here = spreader(&g.sources)
                    .or_else(|| g.cases.contains(&source).then(|| source.clone()))
                    .or_else(|| earliest(&g.cases));
                Place::new(g.span.cell, g.span.start, g.span.end)
                    .map(|p| p.with_cases(g.cases.into_iter().collect(), here))
            })
            .collect::<Result<_, _>>()?;
        places.sort_by_key(|p| (p.start(), p.end(), p.cell()));
        places.truncate(usize::try_from(self.cfg.max_places).unwrap_or(usize::MAX));
        let from = self.rank(&source).map(|r| r.0);
        let text = evidence(&source, from, cases.len(), &chain, place_links);
        Ok(ClusterAlert {
            cluster_id: crate::ids::cluster_id(&source, main)?,
            status: ClusterStatus::New,
            cases: cases.iter().cloned().collect(),
            places,
            index_case: Some(source),
            source_evidence: Text::new("source_evidence", text)?,
            size: u32::try_from(cases.len()).unwrap_or(u32::MAX),
            merged_into: None,
            detected_at: at,
            linked_clusters: Vec::new(),
        })
    }

    /// Forgets, silently, what can no longer change: every connected group
    /// of live cases whose every case ended (its infectious period, visits
    /// and exposures) before `cutoff`, and every retracted case that ended
    /// before it. Their events' last alerts stand (no alert is emitted).
    ///
    /// Exact as long as no evidence arrives about times before `cutoff`,
    /// and `cutoff` lies more than [`ClusterConfig::revisit_window`] and
    /// [`ClusterConfig::max_incubation`] behind the newest evidence: then
    /// no new case can link to a forgotten one, so forgetting changes no
    /// later event. Open cases (no `infectious_until`), cases whose
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
            if let Some(ids) = self.case_clusters.remove(case) {
                clusters.extend(ids);
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

    /// Recomputes the events around the cases changed since the last call,
    /// closes the events due to close, and returns the alerts that bring the
    /// published events up to date, stamped `at`. The alerts are also the
    /// graph's new published state.
    ///
    /// # Errors
    /// [`ModelError`] only if an alert cannot be built (an id or text out
    /// of range), which valid inputs never cause.
    pub fn detect(&mut self, at: EventTime) -> Result<Vec<ClusterAlert>, ModelError> {
        let dirty = std::mem::take(&mut self.dirty);
        // Everyone whose events may change: the changed cases and the
        // members of their published events (a removed link may split
        // one).
        let mut seeds: BTreeSet<CaseId> = dirty.clone();
        let mut touched: BTreeSet<ClusterId> = BTreeSet::new();
        for c in &dirty {
            touched.extend(self.case_clusters.get(c).into_iter().flatten().cloned());
        }
        for id in &touched {
            if let Some(alert) = self.live.get(id) {
                seeds.extend(alert.cases.iter().cloned());
            }
        }
        // Whole connected groups are recomputed: events that share a case
        // are always in one group, so `linked_clusters` is complete.
        let mut seen: BTreeSet<CaseId> = BTreeSet::new();
        let mut fresh: BTreeMap<ClusterId, ClusterAlert> = BTreeMap::new();
        for seed in &seeds {
            if seen.contains(seed) {
                continue;
            }
            let group = self.component(seed);
            seen.extend(group.cases.iter().cloned());
            for c in &group.cases {
                touched.extend(self.case_clusters.get(c).into_iter().flatten().cloned());
            }
            for event in self.events(&group) {
                let alert = self.describe(&event, at)?;
                fresh.insert(alert.cluster_id.clone(), alert);
            }
        }
        let mut members: BTreeMap<&CaseId, Vec<ClusterId>> = BTreeMap::new();
        for (id, a) in &fresh {
            for c in &a.cases {
                members.entry(c).or_default().push(id.clone());
            }
        }
        let linked: BTreeMap<ClusterId, Vec<ClusterId>> = fresh
            .iter()
            .map(|(id, a)| {
                let set: BTreeSet<ClusterId> = a
                    .cases
                    .iter()
                    .flat_map(|c| members.get(c).into_iter().flatten())
                    .filter(|other| *other != id)
                    .cloned()
                    .collect();
                (id.clone(), set.into_iter().collect())
            })
            .collect();
        for (id, a) in &mut fresh {
            a.linked_clusters = linked.get(id).cloned().unwrap_or_default();
        }

        let mut alerts = Vec::new();
        let mut unchanged: BTreeMap<ClusterId, ClusterAlert> = BTreeMap::new();
        for (id, mut event) in fresh.clone() {
            let closed = self.is_closed(&event);
            let status = match self.live.get(&id) {
                None if closed => ClusterStatus::Closed,
                None => ClusterStatus::New,
                Some(old) => {
                    let old_cases: BTreeSet<&CaseId> = old.cases.iter().collect();
                    let gained = event.cases.iter().any(|c| !old_cases.contains(c));
                    let changed = old.cases != event.cases
                        || old.places != event.places
                        || old.index_case != event.index_case
                        || old.source_evidence != event.source_evidence
                        || old.linked_clusters != event.linked_clusters;
                    let was_closed = old.status == ClusterStatus::Closed;
                    if !changed && closed == was_closed {
                        unchanged.insert(id, old.clone());
                        continue;
                    }
                    if closed {
                        ClusterStatus::Closed
                    } else if gained {
                        ClusterStatus::Growing
                    } else {
                        ClusterStatus::Updated
                    }
                }
            };
            event.status = status;
            alerts.push(event);
        }
        for id in &touched {
            if fresh.contains_key(id) {
                continue;
            }
            let Some(old) = self.live.get(id) else {
                continue;
            };
            // The fresh event holding most of the old one's cases absorbs
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
        // Untouched events whose watch period ran out.
        let closing: Vec<ClusterId> = self
            .live
            .iter()
            .filter(|(id, a)| !touched.contains(*id) && self.closes(a))
            .map(|(id, _)| id.clone())
            .collect();
        for id in closing {
            if let Some(a) = self.live.get_mut(&id) {
                a.status = ClusterStatus::Closed;
                a.detected_at = at;
                alerts.push(a.clone());
            }
        }

        // The published state: drop what was touched, add what is fresh.
        for id in &touched {
            if let Some(old) = self.live.remove(id) {
                for c in &old.cases {
                    if let Some(set) = self.case_clusters.get_mut(c) {
                        set.remove(id);
                        if set.is_empty() {
                            self.case_clusters.remove(c);
                        }
                    }
                }
            }
        }
        for (id, event) in fresh {
            for c in &event.cases {
                self.case_clusters
                    .entry(c.clone())
                    .or_default()
                    .insert(id.clone());
            }
            // Unchanged events keep the version consumers have.
            let published = alerts
                .iter()
                .find(|a| a.cluster_id == id && a.merged_into.is_none())
                .or_else(|| unchanged.get(&id))
                .cloned()
                .unwrap_or(event);
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

/// Why the event's source was chosen, in one line of at most 1024 bytes.
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
            "{index}: source of the exposure chain here{from}; exposed {} of the {size} cases",
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

    /// The place (at the place resolution) of `place(p)`.
    fn at(p: usize) -> Cell {
        let c = place(p);
        c.parent(Resolution::Nine).unwrap_or(c)
    }

    /// The id of the event with `source` whose main place is `place(p)`'s.
    fn id(source: u8, p: usize) -> ClusterId {
        cluster_id(&case(source), at(p)).unwrap()
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

    /// The alerts' statuses and cases, sorted (alerts of one `detect` come
    /// in id order, which tests do not predict).
    fn sorted(alerts: &[ClusterAlert]) -> Vec<(ClusterStatus, Vec<String>)> {
        let mut got = statuses(alerts);
        got.sort();
        got
    }

    /// The alert of the event with `id`.
    fn event<'a>(alerts: &'a [ClusterAlert], id: &ClusterId) -> &'a ClusterAlert {
        alerts.iter().find(|a| &a.cluster_id == id).unwrap()
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
        assert_eq!(a.cluster_id, id(1, 0));
        assert_eq!(a.size, 3);
        // One place, the res-9 cell that holds every visit (cases 1 and 2
        // shared a res-10 cell, case 3 is placed only in its parent), on
        // two days: each row with the cases there that day, over their
        // visits, and the earliest of them as the source there.
        type Row<'a> = (Cell, EventTime, EventTime, Vec<CaseId>, Option<&'a CaseId>);
        let rows: Vec<Row<'_>> = a
            .places
            .iter()
            .map(|p| {
                (
                    p.cell(),
                    p.start(),
                    p.end(),
                    p.cases().to_vec(),
                    p.source_case(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    place(2),
                    t(10.0),
                    t(12.0),
                    vec![case(1), case(2)],
                    Some(&case(1))
                ),
                (
                    place(2),
                    t(24.0 * 5.0 + 10.0),
                    t(24.0 * 5.0 + 11.0),
                    vec![case(3)],
                    Some(&case(3))
                ),
            ]
        );
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
    fn an_exposure_chain_at_one_place_names_its_source() {
        let mut g = graph();
        // 3 exposed 2 and 1 at one place; 3 is the source, though 1 and 2
        // also met there later (a place link).
        g.set_case(&case(1), facts(1, 48.0));
        g.set_case(&case(2), facts(2, 24.0));
        g.set_case(&case(3), facts(3, 30.0));
        g.set_exposure(&case(3), subject(2), stay(0, 5.0, 1.0));
        assert!(
            g.detect(t(100.0)).unwrap().is_empty(),
            "a pair is no cluster"
        );
        g.set_exposure(&case(3), subject(1), stay(1, 5.5, 1.0));
        g.set_visit(&case(1), &vid(1, 0), stay(0, 30.0, 1.0));
        g.set_visit(&case(2), &vid(2, 0), stay(0, 30.0, 1.0));
        let alerts = g.detect(t(101.0)).unwrap();
        assert_eq!(
            statuses(&alerts),
            vec![(ClusterStatus::New, names(&[1, 2, 3]))]
        );
        let a = &alerts[0];
        assert_eq!(
            a.index_case,
            Some(case(3)),
            "the exposing case, not the earliest"
        );
        assert_eq!(a.cluster_id, id(3, 0));
        let ev = a.source_evidence.as_str();
        assert!(
            ev.starts_with("C03: source of the exposure chain here"),
            "{ev}"
        );
        assert!(ev.contains("C03>C01") && ev.contains("C03>C02"), "{ev}");
        assert!(ev.contains("2 chain link(s), 1 place link(s)"), "{ev}");
        // Places by day: the exposures on day 0, the visits on day 1.
        let got: Vec<(Cell, Vec<CaseId>, Option<&CaseId>)> = a
            .places
            .iter()
            .map(|p| (p.cell(), p.cases().to_vec(), p.source_case()))
            .collect();
        assert_eq!(
            got,
            vec![
                (at(0), vec![case(1), case(2), case(3)], Some(&case(3))),
                (at(0), vec![case(1), case(2)], Some(&case(2))),
            ]
        );
        assert!(a.linked_clusters.is_empty());
    }

    #[test]
    fn a_chain_across_places_links_two_events_without_merging_them() {
        let mut g = graph();
        // A club: 1 exposed 2, 3 and 4. A day later 2 exposed 5 and 6 at
        // work, 2 km away.
        g.set_case(&case(1), facts(1, 0.0));
        for n in 2..=4 {
            g.set_case(&case(n), facts(n, 30.0));
            g.set_exposure(&case(1), subject(n), stay(0, 10.0, 2.0));
        }
        for n in 5..=6 {
            g.set_case(&case(n), facts(n, 60.0));
            g.set_exposure(&case(2), subject(n), stay(3, 40.0, 2.0));
        }
        let alerts = g.detect(t(100.0)).unwrap();
        assert_eq!(
            sorted(&alerts),
            vec![
                (ClusterStatus::New, names(&[1, 2, 3, 4])),
                (ClusterStatus::New, names(&[2, 5, 6])),
            ]
        );
        let club = event(&alerts, &id(1, 0));
        let work = event(&alerts, &id(2, 3));
        assert_eq!(club.index_case, Some(case(1)));
        assert_eq!(work.index_case, Some(case(2)));
        assert_eq!(club.linked_clusters, vec![work.cluster_id.clone()]);
        assert_eq!(work.linked_clusters, vec![club.cluster_id.clone()]);
        // A third at work: only that event grows (the club's is unchanged).
        g.set_case(&case(7), facts(7, 60.0));
        g.set_exposure(&case(2), subject(7), stay(3, 41.0, 2.0));
        assert_eq!(
            statuses(&g.detect(t(101.0)).unwrap()),
            vec![(ClusterStatus::Growing, names(&[2, 5, 6, 7]))]
        );
    }

    #[test]
    fn a_tower_cell_joins_the_venue_it_holds_within_the_revisit_window() {
        let mut g = graph();
        // 1 exposed 3 and 4 on a tower's cell (res 8, cell 4) on day 0;
        // 1, 2 and 5 met at a venue inside it (cell 5) on day 9, beyond the
        // revisit window.
        g.set_case(&case(1), facts(1, 0.0));
        for n in 2..=5 {
            g.set_case(&case(n), facts(n, 200.0));
        }
        for n in [3, 4] {
            g.set_exposure(&case(1), subject(n), stay(4, 11.0, 1.0));
        }
        for n in [1, 2, 5] {
            g.set_visit(&case(n), &vid(n, 0), stay(5, 24.0 * 9.0 + 10.0, 2.0));
        }
        let alerts = g.detect(t(300.0)).unwrap();
        assert_eq!(
            sorted(&alerts),
            vec![
                (ClusterStatus::New, names(&[1, 2, 5])),
                (ClusterStatus::New, names(&[1, 3, 4])),
            ]
        );
        let tower = event(&alerts, &id(1, 4));
        assert_eq!(tower.linked_clusters, vec![id(1, 5)]);
        // The venue on day 6: one event, keyed by the venue (the source's
        // links there are as many as on the tower's cell, and finer).
        for n in [1, 2, 5] {
            g.set_visit(&case(n), &vid(n, 0), stay(5, 24.0 * 6.0 + 10.0, 2.0));
        }
        let alerts = g.detect(t(301.0)).unwrap();
        let mut got: Vec<(ClusterStatus, ClusterId, Option<ClusterId>)> = alerts
            .iter()
            .map(|a| (a.status, a.cluster_id.clone(), a.merged_into.clone()))
            .collect();
        got.sort();
        let mut want = vec![
            (ClusterStatus::Growing, id(1, 5), None),
            (ClusterStatus::Merged, id(1, 4), Some(id(1, 5))),
        ];
        want.sort();
        assert_eq!(got, want);
        let one = event(&alerts, &id(1, 5));
        assert_eq!(
            one.cases,
            names(&[1, 2, 3, 4, 5])
                .iter()
                .map(|c| CaseId::new(c.clone()).unwrap())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            one.places.iter().map(Place::cell).collect::<Vec<_>>(),
            vec![at(4), at(5)],
            "the tower's cell on day 0, the venue on day 6"
        );
        assert!(one.linked_clusters.is_empty());
    }

    #[test]
    fn only_a_likely_close_exposure_is_a_chain_link() {
        use epitrace_model::records::{ExposureStatus, TimeWindow};
        use epitrace_model::{ExposureId, Probability};
        let exposure = |likelihood: Option<f64>, status: ExposureStatus| Exposure {
            exposure_id: ExposureId::new("x-1").unwrap(),
            case_id: case(1),
            contact: subject(2),
            first_cell: place(0),
            windows: vec![
                TimeWindow::new(t(2.0), t(3.0)).unwrap(),
                TimeWindow::new(t(1.0), t(1.5)).unwrap(),
            ],
            cumulative_s: 5400,
            risk: Probability::new("risk", 0.5).unwrap(),
            status,
            detected_at: t(4.0),
            evidence: Vec::new(),
            likelihood: likelihood.map(|p| Probability::new("likelihood", p).unwrap()),
            contact_class: None,
            basis: None,
        };
        let first = Some(PlaceTime {
            cell: place(0),
            start: t(1.0),
            end: t(1.5),
        });
        let new = ExposureStatus::New;
        assert_eq!(PlaceTime::of_chain(&exposure(Some(0.5), new), 0.5), first);
        assert_eq!(
            PlaceTime::of_chain(&exposure(Some(0.49), new), 0.5),
            None,
            "area"
        );
        assert_eq!(
            PlaceTime::of_chain(&exposure(None, new), 0.5),
            first,
            "older writers"
        );
        assert_eq!(PlaceTime::of_chain(&exposure(Some(0.0), new), 0.0), first);
        let gone = exposure(Some(0.9), ExposureStatus::Retracted);
        assert_eq!(PlaceTime::of_chain(&gone, 0.5), None);
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
    fn a_case_at_two_events_joins_both_and_they_stay_apart() {
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
        assert_eq!(
            sorted(&alerts),
            vec![
                (ClusterStatus::New, names(&[1, 2, 3])),
                (ClusterStatus::New, names(&[4, 5, 6]))
            ]
        );
        // Case 7 was at both places: both events grow, linked, apart.
        g.set_case(&case(7), facts(7, 30.0));
        g.set_visit(&case(7), &vid(7, 0), stay(0, 11.0, 1.0));
        g.set_visit(&case(7), &vid(7, 1), stay(3, 51.0, 1.0));
        let alerts = g.detect(t(101.0)).unwrap();
        assert_eq!(
            sorted(&alerts),
            vec![
                (ClusterStatus::Growing, names(&[1, 2, 3, 7])),
                (ClusterStatus::Growing, names(&[4, 5, 6, 7]))
            ]
        );
        let first = event(&alerts, &id(1, 0));
        assert_eq!(first.linked_clusters, vec![id(4, 3)]);
        assert_eq!(live(&g).len(), 2);
    }

    #[test]
    fn two_events_at_one_place_joined_by_a_case_merge_into_the_earlier_source() {
        let mut g = graph();
        // The same place in two weeks, nine days apart: two events.
        for (n, from, day) in [(1, 0.0, 0.0), (2, 1.0, 0.0), (3, 2.0, 0.0)] {
            g.set_case(&case(n), facts(n, from));
            g.set_visit(&case(n), &vid(n, 0), stay(0, 24.0 * day + 10.0, 2.0));
        }
        for (n, from, day) in [(4, 3.0, 9.0), (5, 4.0, 9.0), (6, 5.0, 9.0)] {
            g.set_case(&case(n), facts(n, from));
            g.set_visit(&case(n), &vid(n, 0), stay(0, 24.0 * day + 10.0, 2.0));
        }
        assert_eq!(g.detect(t(300.0)).unwrap().len(), 2);
        // Case 7 came in between, within a week of both.
        g.set_case(&case(7), facts(7, 30.0));
        g.set_visit(&case(7), &vid(7, 0), stay(0, 24.0 * 4.5, 2.0));
        let alerts = g.detect(t(301.0)).unwrap();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        let grown = event(&alerts, &id(1, 0));
        assert_eq!(grown.status, ClusterStatus::Growing);
        assert_eq!(grown.size, 7);
        let merged = event(&alerts, &id(4, 0));
        assert_eq!(merged.status, ClusterStatus::Merged);
        assert_eq!(merged.merged_into, Some(id(1, 0)));
        assert_eq!(live(&g).len(), 1);
    }

    #[test]
    fn an_event_closes_after_the_watch_period_and_reopens_on_a_new_case() {
        let mut g = graph();
        for n in 1..=3 {
            g.set_case(&case(n), facts(n, f64::from(n)));
            g.set_visit(&case(n), &vid(n, 0), stay(0, 10.0, 2.0));
        }
        g.advance(t(20.0));
        assert_eq!(g.detect(t(20.0)).unwrap()[0].status, ClusterStatus::New);
        // 14 days after the latest link (hour 12) less a minute: open.
        g.advance(t(12.0 + 14.0 * 24.0 - 0.02));
        assert!(!g.has_changes());
        assert!(g.detect(t(400.0)).unwrap().is_empty());
        // The clock reaches the watch period: CLOSED, once.
        g.advance(t(12.0 + 14.0 * 24.0));
        assert!(g.has_changes());
        let alerts = g.detect(t(401.0)).unwrap();
        assert_eq!(
            statuses(&alerts),
            vec![(ClusterStatus::Closed, names(&[1, 2, 3]))]
        );
        assert_eq!(alerts[0].cluster_id, id(1, 0));
        assert_eq!(alerts[0].detected_at, t(401.0));
        assert!(g.detect(t(402.0)).unwrap().is_empty());
        // The clock never goes back.
        g.advance(t(0.0));
        assert!(!g.has_changes());
        // Late evidence of an old visit: the event changes but stays
        // closed.
        g.set_case(&case(4), facts(4, 4.0));
        g.set_visit(&case(4), &vid(4, 0), stay(0, 10.5, 1.5));
        assert_eq!(
            statuses(&g.detect(t(403.0)).unwrap()),
            vec![(ClusterStatus::Closed, names(&[1, 2, 3, 4]))]
        );
        // A new case inside the watch period: reopened.
        g.set_case(&case(5), facts(5, 300.0));
        g.set_visit(&case(5), &vid(5, 0), stay(0, 24.0 * 6.0 + 10.0, 2.0));
        g.set_visit(&case(1), &vid(1, 1), stay(0, 24.0 * 12.0 + 10.0, 2.0));
        assert_eq!(
            statuses(&g.detect(t(404.0)).unwrap()),
            vec![(ClusterStatus::Growing, names(&[1, 2, 3, 4, 5]))]
        );
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
        let new_id = id(1, 0);
        let old_id = id(2, 0);
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
            Some(id(2, 0))
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
        assert_eq!(gone.clusters, vec![id(1, 0)]);
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

    /// Every live event: its cases, source and linked events.
    type Events = BTreeMap<String, (Vec<String>, String, Vec<String>)>;

    fn snapshot(g: &ClusterGraph) -> Events {
        g.clusters()
            .map(|a| {
                (
                    a.cluster_id.to_string(),
                    (
                        a.cases.iter().map(ToString::to_string).collect(),
                        a.index_case.as_ref().map(ToString::to_string).unwrap(),
                        a.linked_clusters.iter().map(ToString::to_string).collect(),
                    ),
                )
            })
            .collect()
    }

    /// A link the oracle found: two cases, a place, a span and, for a
    /// chain, the exposing case.
    struct OracleLink {
        cases: [u8; 2],
        place: Cell,
        span: (EventTime, EventTime),
        source: Option<u8>,
    }

    /// The events by brute force from the final evidence: every pair of
    /// live cases' links, then every pair of links that share a case at
    /// the same place or at nested places within the revisit window,
    /// unioned.
    fn oracle(final_state: &BTreeMap<(u8, u8, usize), Evidence>) -> Events {
        let cfg = ClusterConfig::default();
        let res = Resolution::try_from(cfg.place_res).unwrap();
        let mut facts: BTreeMap<u8, CaseFacts> = BTreeMap::new();
        let mut visits: BTreeMap<u8, Vec<PlaceTime>> = BTreeMap::new();
        let mut exposures: BTreeMap<u8, Vec<(u8, PlaceTime)>> = BTreeMap::new();
        for e in final_state.values() {
            match e {
                Evidence::Case(c, f) if !f.retracted => {
                    facts.insert(*c, f.clone());
                }
                Evidence::Visit(c, _, Some(p)) => visits.entry(*c).or_default().push(*p),
                Evidence::Exposure(c, s, Some(p)) => {
                    exposures.entry(*c).or_default().push((*s, *p));
                }
                _ => {}
            }
        }
        let ok = |p: &&PlaceTime| {
            p.cell.resolution() >= res && p.end.millis_since(p.start) >= cfg.min_dwell.as_millis()
        };
        let place_of = |c: Cell| c.parent(res).unwrap_or(c);
        let gap = |a: (EventTime, EventTime), b: (EventTime, EventTime)| {
            b.0.millis_since(a.1).max(a.0.millis_since(b.1))
        };
        let ids: Vec<u8> = facts.keys().copied().collect();
        let mut links: Vec<OracleLink> = Vec::new();
        for (i, &a) in ids.iter().enumerate() {
            for &b in &ids[i + 1..] {
                for p in visits.get(&a).into_iter().flatten().filter(ok) {
                    for q in visits.get(&b).into_iter().flatten().filter(ok) {
                        if p.cell.co_located(q.cell)
                            && gap((p.start, p.end), (q.start, q.end))
                                <= cfg.revisit_window.as_millis()
                        {
                            let coarser = if p.cell.resolution() <= q.cell.resolution() {
                                p.cell
                            } else {
                                q.cell
                            };
                            links.push(OracleLink {
                                cases: [a, b],
                                place: place_of(coarser),
                                span: (p.start.min(q.start), p.end.max(q.end)),
                                source: None,
                            });
                        }
                    }
                }
                // x exposed y, and y was not yet infectious then.
                for (x, y) in [(a, b), (b, a)] {
                    for (s, pt) in exposures.get(&x).into_iter().flatten() {
                        let lag = facts[&y].infectious_from.millis_since(pt.start);
                        if facts[&y].subjects.contains(&subject(*s))
                            && lag > 0
                            && lag <= cfg.max_incubation.as_millis()
                        {
                            links.push(OracleLink {
                                cases: [a, b],
                                place: place_of(pt.cell),
                                span: (pt.start, pt.end),
                                source: Some(x),
                            });
                        }
                    }
                }
            }
        }
        let n = links.len();
        let mut root: Vec<usize> = (0..n).collect();
        fn find(root: &mut [usize], x: usize) -> usize {
            if root[x] == x {
                return x;
            }
            let top = find(root, root[x]);
            root[x] = top;
            top
        }
        for i in 0..n {
            for j in i + 1..n {
                let (x, y) = (&links[i], &links[j]);
                let share = x.cases.iter().any(|c| y.cases.contains(c));
                let same = x.place == y.place
                    || (x.place.co_located(y.place)
                        && gap(x.span, y.span) <= cfg.revisit_window.as_millis());
                if share && same {
                    let (ri, rj) = (find(&mut root, i), find(&mut root, j));
                    root[ri] = rj;
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<&OracleLink>> = BTreeMap::new();
        for (i, l) in links.iter().enumerate() {
            groups.entry(find(&mut root, i)).or_default().push(l);
        }
        let rank = |c: u8| (facts[&c].infectious_from, facts[&c].confirmed_at, case(c));
        let mut events: Vec<(String, Vec<u8>, u8)> = Vec::new();
        for g in groups.values() {
            let cases: BTreeSet<u8> = g.iter().flat_map(|l| l.cases).collect();
            if cases.len() < 3 {
                continue;
            }
            let mut infected: BTreeMap<u8, BTreeSet<u8>> = BTreeMap::new();
            for l in g {
                if let Some(x) = l.source {
                    let y = if l.cases[0] == x {
                        l.cases[1]
                    } else {
                        l.cases[0]
                    };
                    infected.entry(x).or_default().insert(y);
                }
            }
            let source = infected
                .iter()
                .min_by_key(|(x, ys)| (std::cmp::Reverse(ys.len()), rank(**x)))
                .map(|(x, _)| *x)
                .unwrap_or_else(|| *cases.iter().min_by_key(|c| rank(**c)).unwrap());
            let mut count: BTreeMap<Cell, usize> = BTreeMap::new();
            for l in g.iter().filter(|l| l.cases.contains(&source)) {
                *count.entry(l.place).or_default() += 1;
            }
            let main = count
                .iter()
                .max_by_key(|(c, n)| (**n, c.resolution(), std::cmp::Reverse(**c)))
                .map(|(c, _)| *c)
                .unwrap();
            let id = cluster_id(&case(source), main).unwrap().to_string();
            events.push((id, cases.into_iter().collect(), source));
        }
        events
            .iter()
            .map(|(id, cases, source)| {
                let linked: BTreeSet<String> = events
                    .iter()
                    .filter(|(other, more, _)| {
                        other != id && more.iter().any(|c| cases.contains(c))
                    })
                    .map(|(other, _, _)| other.clone())
                    .collect();
                (
                    id.clone(),
                    (
                        names(cases),
                        case(*source).to_string(),
                        linked.into_iter().collect(),
                    ),
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
    fn run(events: &[Evidence], seed: u64) -> Events {
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
        snapshot(&g)
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
