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
//!   - `exposures`: case | 0 | contact → the latest live [`Exposure`];
//!   - `published`: cluster id → the last [`ClusterAlert`] of each live
//!     cluster.
//!
//!   In memory, the [`ClusterGraph`] (see `epitrace_core::cluster` for the
//!   rule), rebuilt from the stores when the task starts. Nothing expires
//!   yet: the state is a few records per case, and it is deleted with the
//!   rest of the personal data when the response ends.
//! - **Output:** `tracing.clusters` (key = cluster id, compacted):
//!   [`ClusterAlert`]s NEW, GROWING, UPDATED, MERGED (with `merged_into`)
//!   and DISSOLVED, once per batch for the clusters the batch changed.
//! - **Time:** `detected_at` and the output timestamp are the latest input
//!   timestamp of the batch. Clusters depend only on the evidence, never
//!   on its order or on batch boundaries; the alerts in between may differ
//!   on a replay with other batch sizes, the final state may not.
//! - **Delivery:** exactly-once by default, at-least-once as an option (see `epitrace_stream`); either way with deterministic cluster ids
//!   (consumers upsert by id).

use epitrace_core::{CaseFacts, ClusterConfig, ClusterGraph, PlaceTime};
use epitrace_engine::{Emitted, InputRecord, OutputRecord, ProcessError, Processor};
use epitrace_model::EventTime;
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{CaseEvent, ClusterAlert, ClusterStatus, Exposure, Visit};
use epitrace_state::Txn;

use crate::common::{OrFatal, case_member_key, decode, decode_value, encode_value, prefix_end};
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
const KINDS: [&str; 5] = ["new", "growing", "updated", "merged", "dissolved"];

fn kind_slot(status: ClusterStatus) -> usize {
    match status {
        ClusterStatus::New => 0,
        ClusterStatus::Growing => 1,
        ClusterStatus::Updated | ClusterStatus::Closed => 2,
        ClusterStatus::Merged => 3,
        ClusterStatus::Dissolved => 4,
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
    emitted: [u64; 5],
    /// Event time of the last record (for the lag metric).
    last_event_ms: Option<i64>,
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
            emitted: [0; 5],
            last_event_ms: None,
        }
    }

    /// The graph, rebuilt from the stores when first needed.
    fn graph(&mut self, txn: &Txn<'_>) -> Result<&mut ClusterGraph, ProcessError> {
        if self.graph.is_none() {
            let mut g = ClusterGraph::new(&self.cfg).or_fatal()?;
            let all = |store: &str| txn.scan(store, &[], &prefix_end(&[0xff])).or_fatal();
            for (_, bytes) in all(CASE_STATE)? {
                let e: CaseEvent = decode_value(&bytes)?;
                g.set_case(&e.case_id, CaseFacts::from(&e));
            }
            for (_, bytes) in all(VISITS)? {
                let v: Visit = decode_value(&bytes)?;
                g.set_visit(&v.case_id, &v.visit_id, PlaceTime::of_visit(&v));
            }
            for (_, bytes) in all(EXPOSURE_STATE)? {
                let e: Exposure = decode_value(&bytes)?;
                g.set_exposure(&e.case_id, e.contact, PlaceTime::of_exposure(&e));
            }
            for (_, bytes) in all(PUBLISHED)? {
                g.restore(decode_value::<ClusterAlert>(&bytes)?);
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
            v.end.as_millis()
        } else if source == EXPOSURES.as_bytes() {
            let e: Exposure = decode(record)?;
            let key = case_member_key(&e.case_id, e.contact.as_bytes());
            let place = PlaceTime::of_exposure(&e);
            if place.is_some() {
                txn.put(EXPOSURE_STATE, key, encode_value(&e)?);
            } else {
                txn.delete(EXPOSURE_STATE, key);
            }
            self.graph(txn)?.set_exposure(&e.case_id, e.contact, place);
            e.detected_at.as_millis()
        } else if source == CASES.as_bytes() {
            let e: CaseEvent = decode(record)?;
            txn.put(
                CASE_STATE,
                e.case_id.as_str().as_bytes().to_vec(),
                encode_value(&e)?,
            );
            self.graph(txn)?.set_case(&e.case_id, CaseFacts::from(&e));
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
        let Some(graph) = self.graph.as_mut().filter(|g| g.has_changes()) else {
            return Ok(());
        };
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
