//! # cluster-router
//!
//! - **Inputs:** `tracing.timelines` ([`Visit`], key = case id),
//!   `tracing.exposures` ([`Exposure`], key = contact) and `cases.events`
//!   ([`CaseEvent`], key = case id). Not co-partitioned: the router is
//!   stateless, so any partition may go to any instance.
//! - **State:** none.
//! - **Output:** `clusters.evidence` (one partition; key = the source
//!   topic's name): each valid input record, unchanged. The cluster
//!   detector needs every case's evidence in one place (clusters span
//!   cases, places and contacts), and one partition gives it a single
//!   consumer by construction — Kafka Streams' repartition-to-one pattern.
//!   The volume is small: timelines and exposures concern cases only.
//! - **Validation:** each record is decoded first, so a bad one is
//!   dead-lettered with its original topic and offset, never forwarded.
//! - **Time:** outputs carry the input's timestamp.
//! - **Delivery:** exactly-once by default, at-least-once as an option (see `epitrace_stream`); a replay forwards identical records,
//!   which the detector applies idempotently (upserts by id).

use epitrace_engine::{InputRecord, OutputRecord, ProcessError, Processor};
use epitrace_model::records::{CaseEvent, Exposure, Visit};
use epitrace_state::Txn;

use crate::common::{decode, unexpected_topic};
use crate::topology::{CASES, CLUSTER_EVIDENCE, EXPOSURES, TIMELINES};

/// The cluster-router processor.
#[derive(Debug, Default)]
pub struct ClusterRouter {
    /// Event time of the last record (for the lag metric).
    last_event_ms: Option<i64>,
}

impl Processor for ClusterRouter {
    fn name(&self) -> &'static str {
        "cluster-router"
    }

    fn inputs(&self) -> Vec<String> {
        vec![TIMELINES.into(), EXPOSURES.into(), CASES.into()]
    }

    fn process(
        &mut self,
        record: &InputRecord<'_>,
        _txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let event_ms = match record.topic {
            TIMELINES => decode::<Visit>(record)?.end.as_millis(),
            EXPOSURES => decode::<Exposure>(record)?.detected_at.as_millis(),
            CASES => decode::<CaseEvent>(record)?.confirmed_at.as_millis(),
            _ => return Err(unexpected_topic(self.name(), record)),
        };
        self.last_event_ms = Some(event_ms);
        out.push(OutputRecord {
            topic: CLUSTER_EVIDENCE.into(),
            key: record.topic.as_bytes().to_vec(),
            payload: record.payload.unwrap_or_default().to_vec(),
            timestamp_ms: record.timestamp_ms,
        });
        Ok(())
    }

    fn last_event_time_ms(&self) -> Option<i64> {
        self.last_event_ms
    }
}
