//! What people read from the output topics: the live clusters and a case's
//! timeline, folded from the topics' upserts.
//!
//! Both outputs are changelogs keyed by deterministic ids: the latest record
//! per id wins, and a MERGED or DISSOLVED cluster, or a retracted visit, is
//! a deletion.

use std::collections::BTreeMap;
use std::time::Duration;

use epitrace_model::codec::{DecodeOptions, decode_single_object};
use epitrace_model::records::{ClusterAlert, ClusterStatus, Visit};
use epitrace_model::topics::{CLUSTERS, TIMELINES};
use epitrace_model::{AvroRecord, CaseId, ClusterId, VisitId};
use epitrace_stream::KafkaConfig;
use epitrace_stream::read::{ConsumedRecord, read_to_end};

use crate::ToolError;

/// The latest version of every cluster, live ones only (not MERGED, not
/// DISSOLVED), in id order.
#[must_use]
pub fn live_clusters(versions: impl IntoIterator<Item = ClusterAlert>) -> Vec<ClusterAlert> {
    let mut latest: BTreeMap<ClusterId, ClusterAlert> = BTreeMap::new();
    for a in versions {
        latest.insert(a.cluster_id.clone(), a);
    }
    latest
        .into_values()
        .filter(|a| !matches!(a.status, ClusterStatus::Merged | ClusterStatus::Dissolved))
        .collect()
}

/// The latest version of every visit of `case`, live ones only, in time
/// order.
#[must_use]
pub fn live_visits(case: &CaseId, versions: impl IntoIterator<Item = Visit>) -> Vec<Visit> {
    let mut latest: BTreeMap<VisitId, Visit> = BTreeMap::new();
    for v in versions {
        if &v.case_id == case {
            latest.insert(v.visit_id.clone(), v);
        }
    }
    let mut live: Vec<Visit> = latest.into_values().filter(|v| !v.retracted).collect();
    live.sort_by(|a, b| (a.start, a.end, &a.visit_id).cmp(&(b.start, b.end, &b.visit_id)));
    live
}

/// Reads every record of `topic` as `R` (undecodable ones skipped and
/// counted), blocking.
pub(crate) fn read_all<R: AvroRecord>(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<(Vec<R>, usize), ToolError> {
    let records = read_to_end(kafka, topic, timeout)?;
    Ok(decode_all(&records))
}

/// Decodes records read back; returns the decoded ones, in order, and how
/// many did not decode.
pub(crate) fn decode_all<R: AvroRecord>(records: &[ConsumedRecord]) -> (Vec<R>, usize) {
    let mut bad = 0;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        match r
            .payload
            .as_deref()
            .map(|p| decode_single_object::<R>(p, &DecodeOptions::default()))
        {
            Some(Ok(v)) => out.push(v),
            _ => bad += 1,
        }
    }
    (out, bad)
}

/// Reads every record of `tracing.clusters`, blocking; returns the records
/// and how many did not decode.
///
/// # Errors
/// [`ToolError::Stream`].
pub fn read_clusters(
    kafka: &KafkaConfig,
    timeout: Duration,
) -> Result<(Vec<ClusterAlert>, usize), ToolError> {
    read_all(kafka, CLUSTERS, timeout)
}

/// Reads every record of `tracing.timelines`, blocking; returns the records
/// and how many did not decode.
///
/// # Errors
/// [`ToolError::Stream`].
pub fn read_visits(
    kafka: &KafkaConfig,
    timeout: Duration,
) -> Result<(Vec<Visit>, usize), ToolError> {
    read_all(kafka, TIMELINES, timeout)
}
