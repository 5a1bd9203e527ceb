//! Topic names and how the topics are created (DESIGN §3).

use epitrace_core::Span;
use epitrace_stream::admin::TopicSpec;
use serde::{Deserialize, Serialize};

pub use epitrace_model::topics::{
    APPROVALS, AUDIT, CANDIDATES, CARD, CASES, CASES_BY_SUBJECT, CHECKIN, CLUSTER_EVIDENCE,
    CLUSTERS, DEADLETTER, EXPOSURES, INTERVIEWS, SEGMENTS, TELECOM, TIMELINES,
};

/// How topics are laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopologyConfig {
    /// Partitions of every topic but `clusters.evidence` (always one).
    /// Co-partitioned topics (the feeds and
    /// `cases.by-subject`; `exposure.candidates` and `cases.events`) must
    /// have the same count, so one number is used for all. Default 4.
    pub partitions: i32,
    /// Replication factor. Default 1 (a single local broker); use 3 in
    /// production.
    pub replication: i32,
    /// How long personal data is kept in topics and state. Default `21d`
    /// (DESIGN §4). The audit log is kept longer (`audit_retention`).
    pub retention: Span,
    /// Retention of `audit.log`. Default `365d`.
    pub audit_retention: Span,
    /// Providers that read their own dead letters: each gets the topic
    /// `pipeline.deadletter.<provider>` (created with the others, input
    /// retention), and the dead letter of every feed record whose
    /// `epitrace.provider` header names it is copied there (it is also on
    /// `pipeline.deadletter`, as every dead letter). Grant each provider
    /// Read on its topic only (`deploy/README.md`). Ids of 1 to 64
    /// characters of `[A-Za-z0-9._-]`. Default `[]`: none.
    pub dead_letter_providers: Vec<String>,
}

impl TopologyConfig {
    /// Checks what serde cannot: every `dead_letter_providers` entry can
    /// name a topic, and none is listed twice.
    ///
    /// # Errors
    /// A message naming the first bad entry.
    pub fn validate(&self) -> Result<(), String> {
        for (i, p) in self.dead_letter_providers.iter().enumerate() {
            if epitrace_model::topics::provider_dead_letters(p).is_none() {
                return Err(format!(
                    "topology.dead_letter_providers: {p:?} is not a provider id \
                     (1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-')"
                ));
            }
            if self.dead_letter_providers[..i].contains(p) {
                return Err(format!(
                    "topology.dead_letter_providers: {p:?} is listed twice"
                ));
            }
        }
        Ok(())
    }
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            partitions: 4,
            replication: 1,
            retention: Span::days(21),
            audit_retention: Span::days(365),
            dead_letter_providers: Vec::new(),
        }
    }
}

/// Every topic epitrace uses, with its configuration: the external inputs
/// and every processor's outputs (from the
/// [`registry`](crate::registry::REGISTRY)), the dead letters and the audit
/// log.
#[must_use]
pub fn topic_specs(cfg: &TopologyConfig) -> Vec<TopicSpec> {
    let delete = |name: &str, retention: Span| TopicSpec {
        name: name.to_owned(),
        partitions: cfg.partitions,
        replication: cfg.replication,
        config: vec![
            ("cleanup.policy".into(), "delete".into()),
            ("retention.ms".into(), retention.as_millis().to_string()),
            // Retention counts from when a record reached Kafka, whatever
            // event time it carries (a replayed or late batch must not be
            // deleted on arrival). Processors stamp outputs with their
            // input's timestamp, so outputs stay identical on replay.
            ("message.timestamp.type".into(), "LogAppendTime".into()),
        ],
    };
    let mut names: Vec<&str> = crate::registry::EXTERNAL_INPUTS.to_vec();
    for spec in crate::registry::REGISTRY {
        for topic in spec.outputs {
            if !names.contains(topic) {
                names.push(topic);
            }
        }
    }
    names.push(DEADLETTER);
    let provider_topics: Vec<String> = cfg
        .dead_letter_providers
        .iter()
        .filter_map(|p| epitrace_model::topics::provider_dead_letters(p))
        .collect();
    names.extend(provider_topics.iter().map(String::as_str));
    let mut specs: Vec<TopicSpec> = names
        .into_iter()
        .map(|name| match name {
            // Cluster alerts are upserted by cluster id: compacted, but
            // still deleted after the retention period (they name cases).
            CLUSTERS => TopicSpec {
                config: vec![
                    ("cleanup.policy".into(), "compact,delete".into()),
                    ("retention.ms".into(), cfg.retention.as_millis().to_string()),
                    ("message.timestamp.type".into(), "LogAppendTime".into()),
                ],
                ..delete(CLUSTERS, cfg.retention)
            },
            // The cluster detector's input: one partition, so that one
            // consumer sees every case (see `cluster_router`).
            CLUSTER_EVIDENCE => TopicSpec {
                partitions: 1,
                ..delete(CLUSTER_EVIDENCE, cfg.retention)
            },
            other => delete(other, cfg.retention),
        })
        .collect();
    specs.push(delete(AUDIT, cfg.audit_retention));
    specs
}

/// The changelog topic of every processor for consumer groups prefixed
/// `group_prefix` ([`epitrace_stream::changelog`]): compacted, with as many
/// partitions as the processor's first input. `epitrace run` creates any
/// that are missing; creating them up front sets their replication.
#[must_use]
pub fn changelog_specs(cfg: &TopologyConfig, group_prefix: &str) -> Vec<TopicSpec> {
    let topics = topic_specs(cfg);
    crate::registry::REGISTRY
        .iter()
        .map(|spec| {
            let partitions = spec
                .inputs
                .first()
                .and_then(|input| topics.iter().find(|t| t.name == *input))
                .map_or(cfg.partitions, |t| t.partitions);
            epitrace_stream::changelog::spec(
                &epitrace_stream::changelog::topic(group_prefix, spec.name()),
                partitions,
                cfg.replication,
                cfg.retention.as_millis(),
            )
        })
        .collect()
}

/// Whether `topic` is the changelog of a processor of the registry (for any
/// group prefix).
#[must_use]
pub fn is_changelog(topic: &str) -> bool {
    crate::registry::REGISTRY.iter().any(|spec| {
        topic
            .strip_suffix("-changelog")
            .and_then(|rest| rest.strip_suffix(spec.name()))
            .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(spec: &TopicSpec, key: &str) -> Option<String> {
        spec.config
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn changelogs_are_compacted_and_partitioned_like_their_first_input() {
        let cfg = TopologyConfig::default();
        let specs = changelog_specs(&cfg, "ep");
        assert_eq!(specs.len(), crate::registry::REGISTRY.len());
        for s in &specs {
            assert!(is_changelog(&s.name), "{}", s.name);
            assert_eq!(config(s, "cleanup.policy").as_deref(), Some("compact"));
            let want = if s.name == "ep.cluster-detector-changelog" {
                1
            } else {
                4
            };
            assert_eq!(s.partitions, want, "{}", s.name);
        }
        assert!(!is_changelog("tracing.exposures"));
        assert!(!is_changelog("segmenter-changelog"));
        assert!(!is_changelog("x.other-changelog"));
    }

    #[test]
    fn every_topic_is_created_with_retention_by_arrival_time() {
        let cfg = TopologyConfig::default();
        let specs = topic_specs(&cfg);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        for t in [
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
            CLUSTER_EVIDENCE,
            DEADLETTER,
            AUDIT,
        ] {
            assert!(names.contains(&t), "{t} missing");
        }
        for s in &specs {
            let want = if s.name == CLUSTER_EVIDENCE { 1 } else { 4 };
            assert_eq!(
                s.partitions, want,
                "{}: co-partitioned topics need equal counts",
                s.name
            );
            assert_eq!(
                config(s, "message.timestamp.type").as_deref(),
                Some("LogAppendTime"),
                "{}",
                s.name
            );
            let retention: i64 = config(s, "retention.ms").unwrap().parse().unwrap();
            let want = if s.name == AUDIT {
                cfg.audit_retention
            } else {
                cfg.retention
            };
            assert_eq!(retention, want.as_millis(), "{}", s.name);
        }
        let clusters = specs.iter().find(|s| s.name == CLUSTERS).unwrap();
        assert_eq!(
            config(clusters, "cleanup.policy").as_deref(),
            Some("compact,delete")
        );
    }
}
