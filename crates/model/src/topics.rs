//! Topic names: part of the contract with producers and consumers
//! (DESIGN §3).

/// Telecom location records (key = subject pseudonym, 16 bytes).
pub const TELECOM: &str = "feeds.telecom.location";
/// Card transactions (key = subject pseudonym).
pub const CARD: &str = "feeds.card.transaction";
/// Venue check-ins (key = subject pseudonym).
pub const CHECKIN: &str = "feeds.venue.checkin";
/// Case events (key = case id, UTF-8).
pub const CASES: &str = "cases.events";
/// Data-access approvals (key = case id).
pub const APPROVALS: &str = "cases.approvals";
/// Places and times patients stated in interview, recorded through the API
/// (key = case id).
pub const INTERVIEWS: &str = "cases.interviews";
/// Internal: case events fanned out to their subjects (key = subject),
/// co-partitioned with the feeds.
pub const CASES_BY_SUBJECT: &str = "cases.by-subject";
/// Internal: segment versions (key = raw H3 index of the partition cell,
/// 8 bytes big-endian).
pub const SEGMENTS: &str = "presence.segments";
/// Internal: overlaps of case and contact segments (key = case id),
/// co-partitioned with `cases.events`.
pub const CANDIDATES: &str = "exposure.candidates";
/// Internal: the cluster detector's evidence — timelines, exposures and
/// case events, forwarded unchanged into one partition (key = the source
/// topic's name, UTF-8).
pub const CLUSTER_EVIDENCE: &str = "clusters.evidence";
/// Patient timelines (key = case id).
pub const TIMELINES: &str = "tracing.timelines";
/// Exposures (key = contact pseudonym).
pub const EXPOSURES: &str = "tracing.exposures";
/// Cluster alerts (key = cluster id).
pub const CLUSTERS: &str = "tracing.clusters";
/// Dead letters: records that could not be processed (key = the original
/// key). Holds personal data: input retention.
pub const DEADLETTER: &str = "pipeline.deadletter";
/// The hash-chained audit log.
pub const AUDIT: &str = "audit.log";

/// Prefix of the per-provider dead-letter topics:
/// `pipeline.deadletter.<provider>` holds a copy of the dead letter of
/// every feed record whose [`PROVIDER_HEADER`] names that provider, for the
/// provider to read (and nothing else): see [`provider_dead_letters`].
pub const PROVIDER_DEADLETTER_PREFIX: &str = "pipeline.deadletter.";

/// The Kafka record header in which a provider names itself on each feed
/// record it publishes (its id, UTF-8): the dead letter of such a record
/// is also copied to the provider's own dead-letter topic.
pub const PROVIDER_HEADER: &str = "epitrace.provider";

/// The Kafka record header in which the pipeline carries a record's
/// **origin time** on the topics it writes: the broker append time (ms
/// since the epoch, decimal ASCII) of the input record whose processing
/// produced it, through every stage (a feed record → its segment update →
/// the candidate → the exposure). The record's own Kafka timestamp is its
/// append time (`LogAppendTime`), so an output's append time minus its
/// origin is the pipeline's end-to-end latency for it.
///
/// Read back only on the topics the pipeline alone writes
/// ([`pipeline_written`]): on an input from outside, a header of that name
/// is ignored and the record's own append time is its origin.
pub const ORIGIN_HEADER: &str = "epitrace.origin";

/// Whether only the pipeline writes `topic` (its internal topics and the
/// `tracing.*` outputs), so that its [`ORIGIN_HEADER`] can be trusted.
#[must_use]
pub fn pipeline_written(topic: &str) -> bool {
    matches!(
        topic,
        CASES_BY_SUBJECT
            | SEGMENTS
            | CANDIDATES
            | CLUSTER_EVIDENCE
            | TIMELINES
            | EXPOSURES
            | CLUSTERS
    )
}

/// The dead-letter topic of `provider`, or `None` when `provider` cannot
/// name a topic: 1 to 64 bytes of `[A-Za-z0-9._-]`.
#[must_use]
pub fn provider_dead_letters(provider: &str) -> Option<String> {
    let valid = !provider.is_empty()
        && provider.len() <= 64
        && provider
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    valid.then(|| format!("{PROVIDER_DEADLETTER_PREFIX}{provider}"))
}

/// Producers must partition by key with the Java client's murmur2
/// partitioner: topics that are joined (the feeds and `cases.by-subject`;
/// `exposure.candidates` and `cases.events`) rely on equal keys landing in
/// equal partition numbers.
pub const PARTITIONER: &str = "murmur2_random";

/// The Avro record every record of `topic` is (its `schemas/` file's record
/// name), for the topics a Schema Registry subject `<topic>-value` stands
/// for; `None` for `clusters.evidence` (three record types, keyed by the
/// source topic's name) and for unknown topics. A provider's dead-letter
/// topic (`pipeline.deadletter.<provider>`) holds `DeadLetter`s.
#[must_use]
pub fn record_of(topic: &str) -> Option<&'static str> {
    if topic.starts_with(PROVIDER_DEADLETTER_PREFIX) {
        return Some("DeadLetter");
    }
    Some(match topic {
        TELECOM => "LocationPing",
        CARD => "CardTransaction",
        CHECKIN => "VenueCheckin",
        CASES => "CaseEvent",
        APPROVALS => "DataAccessApproval",
        INTERVIEWS => "InterviewEntry",
        CASES_BY_SUBJECT => "SubjectCase",
        SEGMENTS => "SegmentUpdate",
        CANDIDATES => "ExposureCandidate",
        TIMELINES => "Visit",
        EXPOSURES => "Exposure",
        CLUSTERS => "ClusterAlert",
        DEADLETTER => "DeadLetter",
        AUDIT => "AuditRecord",
        _ => return None,
    })
}

/// Every topic with one record type, in pipeline order: the subjects
/// `<topic>-value` of a Schema Registry.
pub const REGISTERED: &[&str] = &[
    TELECOM,
    CARD,
    CHECKIN,
    CASES,
    APPROVALS,
    INTERVIEWS,
    CASES_BY_SUBJECT,
    SEGMENTS,
    CANDIDATES,
    TIMELINES,
    EXPOSURES,
    CLUSTERS,
    DEADLETTER,
    AUDIT,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_names_its_dead_letter_topic_only_with_topic_characters() {
        assert_eq!(
            provider_dead_letters("telco-a").as_deref(),
            Some("pipeline.deadletter.telco-a")
        );
        assert_eq!(
            provider_dead_letters("card_b.kr").as_deref(),
            Some("pipeline.deadletter.card_b.kr")
        );
        for bad in ["", "telco:a", "a/b", "spa ce", "é", &"x".repeat(65)] {
            assert_eq!(provider_dead_letters(bad), None, "{bad:?}");
        }
        assert_eq!(record_of("pipeline.deadletter.telco-a"), Some("DeadLetter"));
        assert_eq!(record_of(DEADLETTER), Some("DeadLetter"));
    }
}
