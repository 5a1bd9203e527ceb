//! [`Metrics`]: every metric epitrace exports, defined once.
//!
//! Naming: `epitrace_<thing>_<unit>[_total]`. Labels are bounded sets:
//! `processor` (4 values), `topic` (the topics of DESIGN §3), `partition`
//! (the partition count), `store` (a processor's stores), `reason` (the
//! dead-letter reason codes), `kind` (a few symbols each). Hot paths count
//! per batch, never per record.

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::OpsError;

/// Every metric of the process, in a registry of its own.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `epitrace_input_records_total{processor, topic}`.
    pub input_records: IntCounterVec,
    /// `epitrace_output_records_total{processor, topic}`.
    pub output_records: IntCounterVec,
    /// `epitrace_deadletter_records_total{processor, reason}`.
    pub deadletter_records: IntCounterVec,
    /// `epitrace_batch_duration_seconds{processor}`.
    pub batch_duration: HistogramVec,
    /// `epitrace_event_time_lag_seconds{processor}`.
    pub event_time_lag: HistogramVec,
    /// `epitrace_end_to_end_lag_seconds{topic}`.
    pub end_to_end_lag: HistogramVec,
    /// `epitrace_consumer_lag_records{processor, topic, partition}`.
    pub consumer_lag: IntGaugeVec,
    /// `epitrace_assigned_partitions{processor}`.
    pub assigned_partitions: IntGaugeVec,
    /// `epitrace_rebalances_total{processor, kind}`.
    pub rebalances: IntCounterVec,
    /// `epitrace_delivery_retries_total{processor}`.
    pub delivery_retries: IntCounterVec,
    /// `epitrace_registry_waits_total{processor}`.
    pub registry_waits: IntCounterVec,
    /// `epitrace_restore_records_total{processor}`.
    pub restore_records: IntCounterVec,
    /// `epitrace_restoring_partitions{processor}`.
    pub restoring_partitions: IntGaugeVec,
    /// `epitrace_standby_partitions{processor}`.
    pub standby_partitions: IntGaugeVec,
    /// `epitrace_standby_records_total{processor}`.
    pub standby_records: IntCounterVec,
    /// `epitrace_transactions_total{processor, outcome}`.
    pub transactions: IntCounterVec,
    /// `epitrace_state_size_bytes{processor, store}`.
    pub state_size: IntGaugeVec,
    /// `epitrace_state_keys{processor, store}`.
    pub state_keys: IntGaugeVec,
    /// `epitrace_exposures_emitted_total{kind}`.
    pub exposures_emitted: IntCounterVec,
    /// `epitrace_exposures_class_total{class}`.
    pub exposures_class: IntCounterVec,
    /// `epitrace_cluster_alerts_emitted_total{kind}`.
    pub cluster_alerts_emitted: IntCounterVec,
    /// `epitrace_pending_approval_cases`.
    pub cases_pending_approval: IntGauge,
    /// `epitrace_ready`.
    pub ready: IntGauge,
    /// `epitrace_kafka_reachable`.
    pub kafka_reachable: IntGauge,
    /// `epitrace_kafka_client_errors_total{kind}`.
    pub kafka_client_errors: IntCounterVec,
    /// `epitrace_build_info{version}`.
    pub build_info: IntGaugeVec,
    /// `epitrace_api_requests_total{endpoint, outcome}` (`epitrace serve`).
    pub api_requests: IntCounterVec,
    /// `epitrace_api_audit_batch_records` (`epitrace serve`).
    pub api_audit_batch: Histogram,
}

/// Audit records per group commit of the API: 1 to the batch limit.
const AUDIT_BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Batch durations: 1 ms to 60 s.
const BATCH_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// End-to-end lag: 10 ms to an hour (a backlog drains in minutes).
const END_TO_END_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3_600.0,
];

/// Event-time lag: a second to a week (provider batches arrive hours late).
const LAG_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1_800.0, 3_600.0, 7_200.0, 21_600.0, 43_200.0, 86_400.0,
    259_200.0, 604_800.0,
];

impl Metrics {
    /// The name of every metric family, as exported (histograms add
    /// `_bucket`, `_sum` and `_count`). The process also exports the
    /// standard `process_*` families on Linux.
    pub const NAMES: &'static [&'static str] = &[
        "epitrace_input_records_total",
        "epitrace_output_records_total",
        "epitrace_deadletter_records_total",
        "epitrace_batch_duration_seconds",
        "epitrace_event_time_lag_seconds",
        "epitrace_end_to_end_lag_seconds",
        "epitrace_consumer_lag_records",
        "epitrace_assigned_partitions",
        "epitrace_rebalances_total",
        "epitrace_delivery_retries_total",
        "epitrace_registry_waits_total",
        "epitrace_restore_records_total",
        "epitrace_restoring_partitions",
        "epitrace_standby_partitions",
        "epitrace_standby_records_total",
        "epitrace_transactions_total",
        "epitrace_state_size_bytes",
        "epitrace_state_keys",
        "epitrace_exposures_emitted_total",
        "epitrace_exposures_class_total",
        "epitrace_cluster_alerts_emitted_total",
        "epitrace_pending_approval_cases",
        "epitrace_ready",
        "epitrace_kafka_reachable",
        "epitrace_kafka_client_errors_total",
        "epitrace_build_info",
        "epitrace_api_requests_total",
        "epitrace_api_audit_batch_records",
    ];

    /// Counts one request to the investigators' API (`endpoint`: a
    /// matrix row or `unknown`; `outcome`: `allowed`, `denied`, `failed`
    /// or `unaudited`).
    pub fn api_request(&self, endpoint: &str, outcome: &str) {
        self.api_requests
            .with_label_values(&[endpoint, outcome])
            .inc();
    }

    /// Defines and registers every metric.
    ///
    /// # Errors
    /// [`OpsError::Metrics`] (a bug: names and labels are fixed).
    pub fn new() -> Result<Self, OpsError> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                &["processor"],
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let end_to_end_lag = HistogramVec::new(
            HistogramOpts::new(
                "epitrace_end_to_end_lag_seconds",
                "Time from the append of the input record an output on a public topic (tracing.*) comes from, through every stage, to the commit of that output; by output topic.",
            )
            .buckets(END_TO_END_BUCKETS.to_vec()),
            &["topic"],
        )?;
        registry.register(Box::new(end_to_end_lag.clone()))?;
        let api_audit_batch = Histogram::with_opts(
            HistogramOpts::new(
                "epitrace_api_audit_batch_records",
                "Audit records the investigators' API committed per transaction (requests that arrived together share one).",
            )
            .buckets(AUDIT_BATCH_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(api_audit_batch.clone()))?;
        let metrics = Self {
            input_records: counter(
                "epitrace_input_records_total",
                "Records consumed and committed, by processor and input topic (processed or dead-lettered).",
                &["processor", "topic"],
            )?,
            output_records: counter(
                "epitrace_output_records_total",
                "Records produced and acknowledged, by processor and output topic (dead letters excluded).",
                &["processor", "topic"],
            )?,
            deadletter_records: counter(
                "epitrace_deadletter_records_total",
                "Input records sent to pipeline.deadletter, by processor and reason code.",
                &["processor", "reason"],
            )?,
            batch_duration: histogram(
                "epitrace_batch_duration_seconds",
                "Time to process a batch: records, outputs acknowledged, state written.",
                BATCH_BUCKETS,
            )?,
            event_time_lag: histogram(
                "epitrace_event_time_lag_seconds",
                "Wall clock minus the event time of a batch's last record, observed once per batch.",
                LAG_BUCKETS,
            )?,
            end_to_end_lag,
            consumer_lag: gauge(
                "epitrace_consumer_lag_records",
                "Records between the consumer's position and the end of the partition (librdkafka statistics).",
                &["processor", "topic", "partition"],
            )?,
            assigned_partitions: gauge(
                "epitrace_assigned_partitions",
                "Input partitions currently assigned to the processor.",
                &["processor"],
            )?,
            rebalances: counter(
                "epitrace_rebalances_total",
                "Consumer group rebalances, by kind (assign, revoke, error).",
                &["processor", "kind"],
            )?,
            delivery_retries: counter(
                "epitrace_delivery_retries_total",
                "Times a batch's outputs were sent again because the brokers did not acknowledge them in time (its state is written only once they are).",
                &["processor"],
            )?,
            registry_waits: counter(
                "epitrace_registry_waits_total",
                "Input records held back because the Schema Registry did not answer for their Confluent schema id: their partition is read again from them at the next batch (a record held over several batches is counted each time).",
                &["processor"],
            )?,
            restore_records: counter(
                "epitrace_restore_records_total",
                "Changelog records applied to local state while restoring assigned partitions.",
                &["processor"],
            )?,
            restoring_partitions: gauge(
                "epitrace_restoring_partitions",
                "Partitions whose state is being restored from the changelog now (the processor is not ready meanwhile).",
                &["processor"],
            )?,
            standby_partitions: gauge(
                "epitrace_standby_partitions",
                "Partitions of which this instance keeps a standby copy (kafka.num_standby).",
                &["processor"],
            )?,
            standby_records: counter(
                "epitrace_standby_records_total",
                "Changelog records applied to standby copies.",
                &["processor"],
            )?,
            transactions: counter(
                "epitrace_transactions_total",
                "Kafka transactions of exactly-once processing, by outcome (committed, aborted).",
                &["processor", "outcome"],
            )?,
            state_size: gauge(
                "epitrace_state_size_bytes",
                "Approximate bytes of a state store (live SST data plus memtables).",
                &["processor", "store"],
            )?,
            state_keys: gauge(
                "epitrace_state_keys",
                "Approximate keys in a state store (RocksDB estimate).",
                &["processor", "store"],
            )?,
            exposures_emitted: counter(
                "epitrace_exposures_emitted_total",
                "Exposure records published to tracing.exposures, by kind (new, updated, retracted).",
                &["kind"],
            )?,
            exposures_class: counter(
                "epitrace_exposures_class_total",
                "Live exposure records (new or updated) published to tracing.exposures, by contact class (close, area).",
                &["class"],
            )?,
            cluster_alerts_emitted: counter(
                "epitrace_cluster_alerts_emitted_total",
                "Cluster alerts published to tracing.clusters, by kind (new, growing, updated, merged, dissolved, closed).",
                &["kind"],
            )?,
            cases_pending_approval: {
                let g = IntGauge::new(
                    "epitrace_pending_approval_cases",
                    "Cases with no data category open (no approval holds, none open by default): their data is kept, nothing is traced until one arrives.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            ready: {
                let g = IntGauge::new(
                    "epitrace_ready",
                    "1 when every processor has its partitions restored and is consuming, else 0.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            kafka_reachable: {
                let g = IntGauge::new(
                    "epitrace_kafka_reachable",
                    "1 while a Kafka broker answers this process, 0 while none does (not ready meanwhile).",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            kafka_client_errors: counter(
                "epitrace_kafka_client_errors_total",
                "Errors reported by the Kafka clients of the process, by kind (all_brokers_down, transport, resolve, timeout, auth, unknown_topic, other).",
                &["kind"],
            )?,
            build_info: gauge(
                "epitrace_build_info",
                "Always 1; the version of the running binary in its label.",
                &["version"],
            )?,
            api_requests: counter(
                "epitrace_api_requests_total",
                "Requests to the investigators' API, by endpoint and outcome (allowed, denied, failed; unaudited when the audit record could not be committed and 503 was sent).",
                &["endpoint", "outcome"],
            )?,
            api_audit_batch,
            registry,
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        metrics.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(metrics)
    }

    /// The metrics of one processor task.
    #[must_use]
    pub fn task(self: &Arc<Self>, processor: &'static str) -> TaskMetrics {
        // Exported at 0 from the start, so that rates and alerts work.
        let _ = self.delivery_retries.with_label_values(&[processor]);
        let _ = self.registry_waits.with_label_values(&[processor]);
        let _ = self.restore_records.with_label_values(&[processor]);
        let _ = self.restoring_partitions.with_label_values(&[processor]);
        let _ = self.standby_partitions.with_label_values(&[processor]);
        let _ = self.standby_records.with_label_values(&[processor]);
        for outcome in ["committed", "aborted"] {
            let _ = self.transactions.with_label_values(&[processor, outcome]);
        }
        TaskMetrics {
            processor,
            batch_duration: self.batch_duration.with_label_values(&[processor]),
            event_time_lag: self.event_time_lag.with_label_values(&[processor]),
            assigned: self.assigned_partitions.with_label_values(&[processor]),
            metrics: Arc::clone(self),
        }
    }

    /// Everything, in the Prometheus text exposition format.
    ///
    /// # Errors
    /// [`OpsError::Metrics`] if encoding fails.
    pub fn render(&self) -> Result<String, OpsError> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// The metrics of one processor, its label values resolved once.
#[derive(Debug, Clone)]
pub struct TaskMetrics {
    processor: &'static str,
    batch_duration: Histogram,
    event_time_lag: Histogram,
    assigned: IntGauge,
    metrics: Arc<Metrics>,
}

impl TaskMetrics {
    /// The processor these metrics describe.
    #[must_use]
    pub const fn processor(&self) -> &'static str {
        self.processor
    }

    /// One committed batch: records in per input topic, records out per
    /// output topic, dead letters per reason, and how long it took.
    pub fn batch(
        &self,
        inputs: &[(&str, u64)],
        outputs: &[(&str, u64)],
        dead_letters: &[(&str, u64)],
        seconds: f64,
    ) {
        for (topic, n) in inputs {
            self.metrics
                .input_records
                .with_label_values(&[self.processor, topic])
                .inc_by(*n);
        }
        for (topic, n) in outputs {
            self.metrics
                .output_records
                .with_label_values(&[self.processor, topic])
                .inc_by(*n);
        }
        for (reason, n) in dead_letters {
            self.metrics
                .deadletter_records
                .with_label_values(&[self.processor, reason])
                .inc_by(*n);
        }
        self.batch_duration.observe(seconds);
    }

    /// The event time of a batch's last record, seen at `now_ms`.
    #[allow(clippy::cast_precision_loss)] // lags are far below 2^52 ms
    pub fn event_time(&self, now_ms: i64, event_ms: i64) {
        let lag_ms = now_ms.saturating_sub(event_ms).max(0);
        self.event_time_lag.observe(lag_ms as f64 / 1_000.0);
    }

    /// The outputs of a batch committed at `now_ms`, as (public topic,
    /// origin time): each one's end-to-end lag, observed in a local
    /// histogram per topic and added to the shared one once per batch.
    #[allow(clippy::cast_precision_loss)] // lags are far below 2^52 ms
    pub fn end_to_end<'t>(&self, now_ms: i64, outputs: impl Iterator<Item = (&'t str, i64)>) {
        let mut local: Vec<(&str, prometheus::local::LocalHistogram)> = Vec::new();
        for (topic, origin_ms) in outputs {
            let lag_s = now_ms.saturating_sub(origin_ms).max(0) as f64 / 1_000.0;
            match local.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, h)) => h.observe(lag_s),
                None => {
                    let h = self
                        .metrics
                        .end_to_end_lag
                        .with_label_values(&[topic])
                        .local();
                    h.observe(lag_s);
                    local.push((topic, h));
                }
            }
        }
        for (_, h) in &local {
            h.flush();
        }
    }

    /// A rebalance of `kind` (`assign`, `revoke`, `error`), leaving
    /// `assigned` partitions.
    pub fn rebalance(&self, kind: &str, assigned: usize) {
        self.metrics
            .rebalances
            .with_label_values(&[self.processor, kind])
            .inc();
        self.assigned
            .set(i64::try_from(assigned).unwrap_or(i64::MAX));
        if kind != "assign" {
            // Lag gauges of partitions no longer owned would go stale.
            self.clear_consumer_lag();
        }
    }

    /// A batch's outputs are sent again (the brokers did not acknowledge
    /// them in time).
    pub fn delivery_retry(&self) {
        self.metrics
            .delivery_retries
            .with_label_values(&[self.processor])
            .inc();
    }

    /// `n` input records held back: the registry did not answer for their
    /// schema ids.
    pub fn registry_wait(&self, n: u64) {
        self.metrics
            .registry_waits
            .with_label_values(&[self.processor])
            .inc_by(n);
    }

    /// `n` changelog records applied while restoring.
    pub fn restored(&self, n: u64) {
        self.metrics
            .restore_records
            .with_label_values(&[self.processor])
            .inc_by(n);
    }

    /// How many partitions are being restored now.
    pub fn restoring(&self, partitions: usize) {
        self.metrics
            .restoring_partitions
            .with_label_values(&[self.processor])
            .set(i64::try_from(partitions).unwrap_or(i64::MAX));
    }

    /// How many standby copies are open now.
    pub fn standby(&self, partitions: usize) {
        self.metrics
            .standby_partitions
            .with_label_values(&[self.processor])
            .set(i64::try_from(partitions).unwrap_or(i64::MAX));
    }

    /// `n` changelog records applied to standby copies.
    pub fn standby_applied(&self, n: u64) {
        self.metrics
            .standby_records
            .with_label_values(&[self.processor])
            .inc_by(n);
    }

    /// A transaction ended with `outcome` (`committed` or `aborted`).
    pub fn transaction(&self, outcome: &'static str) {
        self.metrics
            .transactions
            .with_label_values(&[self.processor, outcome])
            .inc();
    }

    /// Consumer lag of one partition.
    pub fn consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.metrics
            .consumer_lag
            .with_label_values(&[self.processor, topic, &partition.to_string()])
            .set(lag);
    }

    fn clear_consumer_lag(&self) {
        // This processor's series only (gathered labels are sorted by name).
        let mut owned: Vec<(String, String)> = Vec::new();
        for family in self.metrics.registry.gather() {
            if family.name() != "epitrace_consumer_lag_records" {
                continue;
            }
            for m in family.get_metric() {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_owned())
                };
                if label("processor").as_deref() == Some(self.processor)
                    && let (Some(topic), Some(partition)) = (label("topic"), label("partition"))
                {
                    owned.push((topic, partition));
                }
            }
        }
        for (topic, partition) in owned {
            let _ = self.metrics.consumer_lag.remove_label_values(&[
                self.processor,
                &topic,
                &partition,
            ]);
        }
    }

    /// Size and key count of one store.
    pub fn state(&self, store: &str, bytes: u64, keys: u64) {
        self.metrics
            .state_size
            .with_label_values(&[self.processor, store])
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.metrics
            .state_keys
            .with_label_values(&[self.processor, store])
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
    }

    /// Exposures published in a batch, by kind.
    pub fn exposures(&self, kind: &str, n: u64) {
        self.metrics
            .exposures_emitted
            .with_label_values(&[kind])
            .inc_by(n);
    }

    /// Cases pending approval on this instance's partitions.
    pub fn pending_approval(&self, cases: u64) {
        self.metrics
            .cases_pending_approval
            .set(i64::try_from(cases).unwrap_or(i64::MAX));
    }

    /// Live exposures published in a batch, by contact class.
    pub fn exposure_classes(&self, class: &str, n: u64) {
        self.metrics
            .exposures_class
            .with_label_values(&[class])
            .inc_by(n);
    }

    /// Cluster alerts published in a batch, by kind.
    pub fn cluster_alerts(&self, kind: &str, n: u64) {
        self.metrics
            .cluster_alerts_emitted
            .with_label_values(&[kind])
            .inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_to_end_lags_are_observed_per_topic_once_per_batch() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let t = metrics.task("exposure-aggregator");
        t.end_to_end(
            10_000,
            [
                ("tracing.exposures", 9_750),
                ("tracing.exposures", 8_000),
                ("tracing.timelines", 12_000),
            ]
            .into_iter(),
        );
        let h = |topic: &str| {
            metrics
                .end_to_end_lag
                .with_label_values(&[topic])
                .get_sample_count()
        };
        assert_eq!(h("tracing.exposures"), 2);
        assert_eq!(h("tracing.timelines"), 1);
        let sum = metrics
            .end_to_end_lag
            .with_label_values(&["tracing.exposures"])
            .get_sample_sum();
        // 0.25 s and 2 s; a clock behind the origin counts as 0.
        assert!((sum - 2.25).abs() < 1e-9, "{sum}");
        assert!(
            metrics
                .end_to_end_lag
                .with_label_values(&["tracing.timelines"])
                .get_sample_sum()
                .abs()
                < 1e-9
        );
    }

    #[test]
    fn every_metric_is_listed_once_and_follows_the_naming_rule() {
        let metrics = Arc::new(Metrics::new().unwrap());
        // Touch every labelled family so that it is gathered.
        let t = metrics.task("segmenter");
        t.batch(&[("in", 3)], &[("out", 2)], &[("truncated", 1)], 0.01);
        t.event_time(10_000, 4_000);
        t.end_to_end(10_000, [("tracing.exposures", 9_500)].into_iter());
        t.rebalance("assign", 2);
        t.delivery_retry();
        t.consumer_lag("in", 0, 5);
        t.state("trails", 100, 3);
        t.exposures("new", 1);
        t.exposure_classes("close", 1);
        t.cluster_alerts("new", 1);
        metrics
            .kafka_client_errors
            .with_label_values(&["transport"])
            .inc();
        metrics.api_request("case", "allowed");
        metrics.api_audit_batch.observe(3.0);
        let mut gathered: Vec<String> = metrics
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .filter(|n| n.starts_with("epitrace_"))
            .collect();
        gathered.sort();
        let mut listed: Vec<String> = Metrics::NAMES.iter().map(|s| (*s).to_owned()).collect();
        listed.sort();
        assert_eq!(gathered, listed);
        for name in Metrics::NAMES {
            let unit_ok = [
                "_total",
                "_seconds",
                "_bytes",
                "_records",
                "_keys",
                "_partitions",
                "_cases",
            ]
            .iter()
            .any(|u| name.ends_with(u))
                || *name == "epitrace_ready"
                || *name == "epitrace_kafka_reachable"
                || *name == "epitrace_build_info";
            assert!(unit_ok, "{name}");
        }
        let text = metrics.render().unwrap();
        assert!(
            text.contains("epitrace_input_records_total{processor=\"segmenter\",topic=\"in\"} 3")
        );
        assert!(text.contains("epitrace_event_time_lag_seconds_count{processor=\"segmenter\"} 1"));
        assert!(text.contains("# HELP epitrace_ready "));
    }

    #[test]
    fn a_revoke_clears_the_processors_lag_series_only() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let a = metrics.task("segmenter");
        let b = metrics.task("presence-join");
        a.consumer_lag("t", 0, 5);
        b.consumer_lag("t", 0, 7);
        a.rebalance("revoke", 0);
        let text = metrics.render().unwrap();
        assert!(
            !text.contains("epitrace_consumer_lag_records{partition=\"0\",processor=\"segmenter\"")
        );
        assert!(text.contains("epitrace_consumer_lag_records{partition=\"0\",processor=\"presence-join\",topic=\"t\"} 7"));
    }
}
