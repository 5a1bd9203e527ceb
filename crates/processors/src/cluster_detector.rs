//! # cluster-detector
//!
//! - **Input:** `clusters.evidence` (one partition, so one consumer holds
//!   every case's evidence; key = the source topic, see
//!   [`crate::cluster_router`]): [`Visit`]s of `tracing.timelines`,
//!   [`Exposure`]s of `tracing.exposures` and [`CaseEvent`]s of
//!   `cases.events`. A key naming another topic is dead-lettered.
//! - **State** (RocksDB), the evidence the graph is rebuilt from on start:
//!   - `cases`: case → its latest [`CaseEvent`];
//!   - `visits`: case | 0 | visit id → the latest live [`Visit`];
//!   - `exposures`: case | 0 | contact → the latest live [`Exposure`] that
//!     can be a chain link (likely a close contact:
//!     `cluster.chain_min_likelihood`);
//!   - `published`: cluster id → the last [`ClusterAlert`] of each live
//!     cluster.
//!
//!   In memory, the [`ClusterGraph`] (see `epitrace_core::cluster` for the
//!   rule), rebuilt from the stores when the task starts.
//! - **Retention:** by event time, once per day of stream time (the latest
//!   visit end, exposure window end or confirmation seen, resumed from the
//!   stores on start; records more than a day past the wall clock are
//!   dead-lettered before they move it): a
//!   group of linked cases that all ended (infectious period, visits,
//!   exposures) more than `topology.retention` behind the stream time is
//!   forgotten with its evidence and its `published` entry, silently — its
//!   last alert stands on the compacted topic (`ClusterGraph::expire`).
//!   Open cases are kept. `topology.retention` must exceed
//!   `cluster.revisit_window`, `cluster.max_incubation` and
//!   `cluster.watch_period` (checked at start), so no new case can link to
//!   a forgotten one and every event closes before it is forgotten.
//! - **Output:** `tracing.clusters` (key = cluster id, compacted): one
//!   [`ClusterAlert`] per outbreak event the batch changed — NEW, GROWING,
//!   UPDATED, MERGED (with `merged_into`), DISSOLVED — and CLOSED for the
//!   events whose watch period the stream time passed.
//! - **Time:** `detected_at` and the output timestamp are the latest input
//!   timestamp of the batch; events close on the stream time (event time).
//!   Events depend only on the evidence (and a close on the latest event
//!   time), never on its order or on batch boundaries; the alerts in
//!   between may differ on a replay with other batch sizes, the final state
//!   may not.
//! - **Delivery:** exactly-once by default, at-least-once as an option (see `epitrace_stream`); either way with deterministic cluster ids
//!   (consumers upsert by id).

use epitrace_core::{CaseFacts, ClusterConfig, ClusterGraph, PlaceTime};
use epitrace_engine::{Emitted, InputRecord, OutputRecord, ProcessError, Processor};
use epitrace_model::EventTime;
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{CaseEvent, ClusterAlert, ClusterStatus, Exposure, Visit};
use epitrace_state::Txn;

use crate::common::{
    OrFatal, case_member_key, case_prefix, decode, decode_value, encode_value, prefix_end,
};
use crate::topology::{CASES, CLUSTER_EVIDENCE, CLUSTERS, EXPOSURES, TIMELINES};

/// Store of case events.
pub const CASE_STATE: &str = "cases";
/// Store of live visits.
pub const VISITS: &str = "visits";
/// Store of live exposures.
pub const EXPOSURE_STATE: &str = "exposures";
/// Store of the live clusters as published.
pub const PUBLISHED: &str = "published";

/// Alert kinds, in metric-label order.
const KINDS: [&str; 6] = ["new", "growing", "updated", "merged", "dissolved", "closed"];

fn kind_slot(status: ClusterStatus) -> usize {
    match status {
        ClusterStatus::New => 0,
        ClusterStatus::Growing => 1,
        ClusterStatus::Updated => 2,
        ClusterStatus::Merged => 3,
        ClusterStatus::Dissolved => 4,
        ClusterStatus::Closed => 5,
    }
}

/// The cluster-detector processor.
#[derive(Debug)]
pub struct ClusterDetector {
    cfg: ClusterConfig,
    /// Built from the stores on the first record after start.
    graph: Option<ClusterGraph>,
    /// Latest input timestamp of the batch.
    batch_ts: Option<i64>,
    /// Alerts published in this batch, by kind.
    emitted: [u64; 6],
    /// Event time of the last record (for the lag metric).
    last_event_ms: Option<i64>,
    /// How long ended cases are kept behind the stream time (ms); `None`
    /// keeps everything.
    retention_ms: Option<i64>,
    /// The latest event time seen: the clock retention runs on.
    stream_time_ms: Option<i64>,
    /// The day (of the retention cutoff) of the last expiry.
    expired_day: Option<i64>,
}

impl ClusterDetector {
    /// The stores it needs.
    pub const STORES: &'static [&'static str] = &[CASE_STATE, VISITS, EXPOSURE_STATE, PUBLISHED];

    /// A detector for one configuration.
    #[must_use]
    pub fn new(cfg: &ClusterConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            graph: None,
            batch_ts: None,
            emitted: [0; 6],
            last_event_ms: None,
            retention_ms: None,
            stream_time_ms: None,
            expired_day: None,
        }
    }

    /// Forgets groups of cases that ended `retention_ms` behind the stream
    /// time (see the module docs, Retention).
    #[must_use]
    pub const fn with_retention(mut self, retention_ms: i64) -> Self {
        self.retention_ms = Some(retention_ms);
        self
    }

    /// Once per day of stream time: forgets what ended a retention ago,
    /// in the graph and in the stores.
    fn expire(&mut self, txn: &mut Txn<'_>) -> Result<(), ProcessError> {
        let (Some(retention), Some(now)) = (self.retention_ms, self.stream_time_ms) else {
            return Ok(());
        };
        let cutoff_ms = now.saturating_sub(retention);
        let day = cutoff_ms.div_euclid(epitrace_model::time::DAY_MS);
        if self.expired_day.is_some_and(|d| d >= day) {
            return Ok(());
        }
        let Some(graph) = self.graph.as_mut() else {
            return Ok(());
        };
        let Ok(cutoff) = EventTime::from_millis("cutoff", cutoff_ms) else {
            return Ok(());
        };
        let gone = graph.expire(cutoff);
        for case in &gone.cases {
            txn.delete(CASE_STATE, case.as_str().as_bytes().to_vec());
            let prefix = case_prefix(case);
            for store in [VISITS, EXPOSURE_STATE] {
                txn.delete_range(store, prefix.clone(), prefix_end(&prefix));
            }
        }
        for id in &gone.clusters {
            txn.delete(PUBLISHED, id.as_str().as_bytes().to_vec());
        }
        self.expired_day = Some(day);
        Ok(())
    }

    fn advance_stream_time(&mut self, event_ms: i64) {
        self.stream_time_ms = Some(self.stream_time_ms.map_or(event_ms, |t| t.max(event_ms)));
    }

    /// The graph, rebuilt from the stores when first needed.
    fn graph(&mut self, txn: &Txn<'_>) -> Result<&mut ClusterGraph, ProcessError> {
        if self.graph.is_none() {
            let mut g = ClusterGraph::new(&self.cfg).or_fatal()?;
            let all = |store: &str| txn.scan(store, &[], &prefix_end(&[0xff])).or_fatal();
            // The stream time resumes from the stored evidence, so that
            // closes and expiry are due as before the restart.
            let mut clock: Option<i64> = None;
            let mut seen = |ms: i64| clock = Some(clock.map_or(ms, |c| c.max(ms)));
            for (_, bytes) in all(CASE_STATE)? {
                let e: CaseEvent = decode_value(&bytes)?;
                seen(e.confirmed_at.as_millis());
                g.set_case(&e.case_id, CaseFacts::from(&e));
            }
            for (_, bytes) in all(VISITS)? {
                let v: Visit = decode_value(&bytes)?;
                seen(v.end.as_millis());
                g.set_visit(&v.case_id, &v.visit_id, PlaceTime::of_visit(&v));
            }
            for (_, bytes) in all(EXPOSURE_STATE)? {
                let e: Exposure = decode_value(&bytes)?;
                if let Some(end) = e.windows.iter().map(|w| w.end().as_millis()).max() {
                    seen(end);
                }
                g.set_exposure(
                    &e.case_id,
                    e.contact,
                    PlaceTime::of_chain(&e, self.cfg.chain_min_likelihood),
                );
            }
            for (_, bytes) in all(PUBLISHED)? {
                g.restore(decode_value::<ClusterAlert>(&bytes)?);
            }
            if let Some(ms) = clock {
                self.advance_stream_time(ms);
            }
            self.graph = Some(g);
        }
        self.graph
            .as_mut()
            .ok_or_else(|| ProcessError::Fatal("cluster graph missing".into()))
    }
}

impl Processor for ClusterDetector {
    fn name(&self) -> &'static str {
        "cluster-detector"
    }

    fn inputs(&self) -> Vec<String> {
        vec![CLUSTER_EVIDENCE.into()]
    }

    fn process(
        &mut self,
        record: &InputRecord<'_>,
        txn: &mut Txn<'_>,
        _out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let source = record.key.unwrap_or_default();
        let event_ms = if source == TIMELINES.as_bytes() {
            let v: Visit = decode(record)?;
            let key = case_member_key(&v.case_id, v.visit_id.as_str().as_bytes());
            if v.retracted {
                txn.delete(VISITS, key);
            } else {
                txn.put(VISITS, key, encode_value(&v)?);
            }
            self.graph(txn)?
                .set_visit(&v.case_id, &v.visit_id, PlaceTime::of_visit(&v));
            self.advance_stream_time(v.end.as_millis());
            v.end.as_millis()
        } else if source == EXPOSURES.as_bytes() {
            let e: Exposure = decode(record)?;
            let key = case_member_key(&e.case_id, e.contact.as_bytes());
            let place = PlaceTime::of_chain(&e, self.cfg.chain_min_likelihood);
            if place.is_some() {
                txn.put(EXPOSURE_STATE, key, encode_value(&e)?);
            } else {
                txn.delete(EXPOSURE_STATE, key);
            }
            self.graph(txn)?.set_exposure(&e.case_id, e.contact, place);
            // Event time: the exposure's last window (`detected_at` is a
            // processing timestamp, not a clock retention may run on).
            if let Some(end) = e.windows.iter().map(|w| w.end().as_millis()).max() {
                self.advance_stream_time(end);
            }
            e.detected_at.as_millis()
        } else if source == CASES.as_bytes() {
            let e: CaseEvent = decode(record)?;
            txn.put(
                CASE_STATE,
                e.case_id.as_str().as_bytes().to_vec(),
                encode_value(&e)?,
            );
            self.graph(txn)?.set_case(&e.case_id, CaseFacts::from(&e));
            self.advance_stream_time(e.confirmed_at.as_millis());
            e.confirmed_at.as_millis()
        } else {
            return Err(ProcessError::Rejected {
                reason: "unknown_evidence",
                detail: "key names no evidence topic".into(),
            });
        };
        self.last_event_ms = Some(event_ms);
        let ts = record.timestamp_ms.unwrap_or(event_ms);
        self.batch_ts = Some(self.batch_ts.map_or(ts, |t| t.max(ts)));
        Ok(())
    }

    fn end_batch(
        &mut self,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let Some(ts) = self.batch_ts.take() else {
            return Ok(());
        };
        self.detect(ts, txn, out)?;
        self.expire(txn)
    }

    fn last_event_time_ms(&self) -> Option<i64> {
        self.last_event_ms
    }

    fn drain_emitted(&mut self) -> Vec<(Emitted, &'static str, u64)> {
        let counts = std::mem::take(&mut self.emitted);
        KINDS
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| (Emitted::ClusterAlert, *kind, n))
            .collect()
    }
}

impl ClusterDetector {
    /// Publishes the alerts of the clusters this batch changed.
    fn detect(
        &mut self,
        ts: i64,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let clock = self
            .stream_time_ms
            .and_then(|ms| EventTime::from_millis("stream_time", ms).ok());
        let Some(graph) = self.graph.as_mut() else {
            return Ok(());
        };
        if let Some(now) = clock {
            graph.advance(now);
        }
        if !graph.has_changes() {
            return Ok(());
        }
        let at = EventTime::from_millis("detected_at", ts).or_fatal()?;
        for alert in graph.detect(at).or_fatal()? {
            let key = alert.cluster_id.as_str().as_bytes().to_vec();
            if matches!(
                alert.status,
                ClusterStatus::Merged | ClusterStatus::Dissolved
            ) {
                txn.delete(PUBLISHED, key.clone());
            } else {
                txn.put(PUBLISHED, key.clone(), encode_value(&alert)?);
            }
            self.emitted[kind_slot(alert.status)] += 1;
            out.push(OutputRecord {
                topic: CLUSTERS.into(),
                key,
                payload: encode_single_object(&alert).or_fatal()?,
                timestamp_ms: Some(ts),
            });
        }
        Ok(())
    }
}
