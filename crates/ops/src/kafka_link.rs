//! [`KafkaLink`]: whether this process reaches its Kafka brokers, fed by
//! every Kafka client of the process and summarised for operators.
//!
//! librdkafka reports a lost broker from every client, on every reconnect
//! attempt: six processors with a consumer and a producer each turn a
//! broker outage into thousands of error lines a minute, none of which says
//! which address was tried or what to do. Instead, each client's context
//! (see `epitrace_stream::link`) *counts* its errors here, and one watcher
//! turns the counts into one summary line per interval and the readiness of
//! the process. The state is plain data (no Kafka types), so it is tested
//! without a broker.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGauge};

/// A class of Kafka client error: a bounded set, used as a metric label and
/// in the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkErrorKind {
    /// No broker of the cluster can be reached (librdkafka's
    /// `AllBrokersDown`): the link is down.
    AllBrokersDown,
    /// A connection to one broker failed or was lost.
    Transport,
    /// A broker address did not resolve.
    Resolve,
    /// A request timed out.
    Timeout,
    /// TLS or SASL refused the connection.
    Auth,
    /// A subscribed topic does not exist (yet).
    UnknownTopic,
    /// Anything else.
    Other,
}

impl LinkErrorKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 7] = [
        Self::AllBrokersDown,
        Self::Transport,
        Self::Resolve,
        Self::Timeout,
        Self::Auth,
        Self::UnknownTopic,
        Self::Other,
    ];

    /// The label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AllBrokersDown => "all_brokers_down",
            Self::Transport => "transport",
            Self::Resolve => "resolve",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::UnknownTopic => "unknown_topic",
            Self::Other => "other",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::AllBrokersDown => 0,
            Self::Transport => 1,
            Self::Resolve => 2,
            Self::Timeout => 3,
            Self::Auth => 4,
            Self::UnknownTopic => 5,
            Self::Other => 6,
        }
    }
}

/// How soon an unreachable cluster is first reported once clients report
/// errors (a broker that is merely slow to accept the first connection is
/// not an outage).
pub const FIRST_REPORT_AFTER: Duration = Duration::from_secs(3);

/// How soon a cluster that has not answered is reported when no client
/// reported an error either (a consumer group still forming takes a few
/// seconds; an address that swallows packets gives no error for long).
pub const QUIET_REPORT_AFTER: Duration = Duration::from_secs(10);

/// How often a continuing outage, or continuing client errors, are
/// reported again.
pub const REPORT_EVERY: Duration = Duration::from_secs(30);

/// What the watcher should say now (see [`KafkaLink::poll`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkReport {
    /// No broker has answered for `down_for`.
    Down {
        /// How long the link has been down (since the start when it never
        /// came up).
        down_for: Duration,
        /// Whether any broker ever answered this process.
        ever_reached: bool,
        /// Errors counted since the last report, by kind (non-zero only).
        errors: Vec<(LinkErrorKind, u64)>,
    },
    /// A broker answered again after an outage that was reported.
    Recovered {
        /// How long the outage lasted.
        after: Duration,
    },
    /// Brokers answer, but clients reported errors since the last report.
    Errors {
        /// Errors by kind (non-zero only).
        errors: Vec<(LinkErrorKind, u64)>,
    },
}

#[derive(Debug)]
struct State {
    ever_reached: bool,
    /// When `reachable` last changed (or the link was created).
    since: Instant,
    errors: [u64; LinkErrorKind::ALL.len()],
    last_report: Option<Instant>,
    outage_reported: bool,
}

/// Whether the process reaches Kafka: one per process, shared by every
/// Kafka client context and by [`crate::Health`] (not ready while
/// unreachable).
///
/// Reachable means a broker answered since the last "all brokers down":
/// an assignment, a fetched batch, an acknowledged delivery or a broker
/// reported `UP` in the client statistics. A link starts unreachable.
#[derive(Debug)]
pub struct KafkaLink {
    reachable: AtomicBool,
    state: Mutex<State>,
    metrics: Option<(IntGauge, IntCounterVec)>,
}

impl KafkaLink {
    /// A link that has not reached any broker yet, exporting to the given
    /// metrics (`epitrace_kafka_reachable`,
    /// `epitrace_kafka_client_errors_total`).
    #[must_use]
    pub fn new(reachable_gauge: IntGauge, errors_total: IntCounterVec) -> Self {
        reachable_gauge.set(0);
        // Every kind exported from the start (at 0), so that rates and
        // alerts work before the first error.
        for kind in LinkErrorKind::ALL {
            let _ = errors_total.with_label_values(&[kind.as_str()]);
        }
        Self::with_metrics(Some((reachable_gauge, errors_total)))
    }

    /// A link that exports nothing (a one-off client such as a probe).
    #[must_use]
    pub fn standalone() -> Self {
        Self::with_metrics(None)
    }

    fn with_metrics(metrics: Option<(IntGauge, IntCounterVec)>) -> Self {
        Self {
            reachable: AtomicBool::new(false),
            state: Mutex::new(State {
                ever_reached: false,
                since: Instant::now(),
                errors: [0; LinkErrorKind::ALL.len()],
                last_report: None,
                outage_reported: false,
            }),
            metrics,
        }
    }

    /// Whether a broker answered since the last "all brokers down".
    #[must_use]
    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    /// A broker answered. Cheap when already reachable (called per batch).
    pub fn answered(&self) {
        if self.is_reachable() {
            return;
        }
        self.answered_at(Instant::now());
    }

    fn answered_at(&self, now: Instant) {
        if let Ok(mut s) = self.state.lock()
            && !self.reachable.swap(true, Ordering::AcqRel)
        {
            // `since` keeps the start of the outage until the watcher has
            // reported the recovery.
            if !s.outage_reported {
                s.since = now;
            }
            s.ever_reached = true;
            if let Some((gauge, _)) = &self.metrics {
                gauge.set(1);
            }
        }
    }

    /// A client reported an error of `kind`: counted; `AllBrokersDown`
    /// also marks the link down.
    pub fn error(&self, kind: LinkErrorKind) {
        self.error_at(kind, Instant::now());
    }

    fn error_at(&self, kind: LinkErrorKind, now: Instant) {
        if let Some((_, errors)) = &self.metrics {
            errors.with_label_values(&[kind.as_str()]).inc();
        }
        if let Ok(mut s) = self.state.lock() {
            s.errors[kind.index()] += 1;
            if kind == LinkErrorKind::AllBrokersDown && self.reachable.swap(false, Ordering::AcqRel)
            {
                s.since = now;
                if let Some((gauge, _)) = &self.metrics {
                    gauge.set(0);
                }
            }
        }
    }

    /// What to report now, if anything: called about once a second by one
    /// watcher. An outage is first reported [`FIRST_REPORT_AFTER`] after it
    /// began ([`QUIET_REPORT_AFTER`] when no client reported an error),
    /// then every [`REPORT_EVERY`]; its end once; client errors while
    /// reachable at most every [`REPORT_EVERY`].
    pub fn poll(&self) -> Option<LinkReport> {
        self.poll_at(Instant::now())
    }

    fn poll_at(&self, now: Instant) -> Option<LinkReport> {
        let mut s = self.state.lock().ok()?;
        let due = s
            .last_report
            .is_none_or(|at| now.duration_since(at) >= REPORT_EVERY);
        let reachable = self.is_reachable();
        let report = if !reachable {
            let down_for = now.duration_since(s.since);
            let grace = if s.errors.iter().all(|&n| n == 0) {
                QUIET_REPORT_AFTER
            } else {
                FIRST_REPORT_AFTER
            };
            if (!s.outage_reported && down_for < grace) || (s.outage_reported && !due) {
                return None;
            }
            s.outage_reported = true;
            LinkReport::Down {
                down_for,
                ever_reached: s.ever_reached,
                errors: take_errors(&mut s.errors),
            }
        } else if s.outage_reported {
            s.outage_reported = false;
            let after = now.duration_since(s.since);
            s.since = now;
            // Errors of the outage were reported with it.
            let _ = take_errors(&mut s.errors);
            LinkReport::Recovered { after }
        } else {
            if !due || s.errors.iter().all(|&n| n == 0) {
                return None;
            }
            LinkReport::Errors {
                errors: take_errors(&mut s.errors),
            }
        };
        s.last_report = Some(now);
        Some(report)
    }
}

fn take_errors(errors: &mut [u64; LinkErrorKind::ALL.len()]) -> Vec<(LinkErrorKind, u64)> {
    let out = LinkErrorKind::ALL
        .into_iter()
        .filter_map(|k| {
            let n = errors[k.index()];
            (n > 0).then_some((k, n))
        })
        .collect();
    *errors = [0; LinkErrorKind::ALL.len()];
    out
}

/// `kind=n kind=n`, for a summary line.
#[must_use]
pub fn format_errors(errors: &[(LinkErrorKind, u64)]) -> String {
    if errors.is_empty() {
        return "none".to_owned();
    }
    errors
        .iter()
        .map(|(k, n)| format!("{}={n}", k.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn link() -> KafkaLink {
        KafkaLink::new(
            IntGauge::new("g", "g").unwrap(),
            IntCounterVec::new(Opts::new("c", "c"), &["kind"]).unwrap(),
        )
    }

    #[test]
    fn an_outage_is_reported_after_a_grace_then_once_per_interval_then_its_end() {
        let l = link();
        let t0 = l.state.lock().unwrap().since;
        assert!(!l.is_reachable(), "starts unreachable");
        assert_eq!(l.poll_at(t0 + Duration::from_secs(1)), None, "grace");
        l.error_at(LinkErrorKind::AllBrokersDown, t0);
        l.error_at(LinkErrorKind::Transport, t0);
        l.error_at(LinkErrorKind::Transport, t0);
        let first = l.poll_at(t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(
            first,
            LinkReport::Down {
                down_for: Duration::from_secs(4),
                ever_reached: false,
                errors: vec![
                    (LinkErrorKind::AllBrokersDown, 1),
                    (LinkErrorKind::Transport, 2)
                ],
            }
        );
        // Not again until the interval passed, however many errors come.
        for s in 5..34 {
            l.error_at(LinkErrorKind::Transport, t0 + Duration::from_secs(s));
            assert_eq!(l.poll_at(t0 + Duration::from_secs(s)), None, "{s}");
        }
        match l.poll_at(t0 + Duration::from_secs(34)) {
            Some(LinkReport::Down { errors, .. }) => {
                assert_eq!(errors, vec![(LinkErrorKind::Transport, 29)]);
            }
            other => panic!("{other:?}"),
        }
        l.answered_at(t0 + Duration::from_secs(40));
        assert!(l.is_reachable());
        assert_eq!(
            l.poll_at(t0 + Duration::from_secs(41)),
            Some(LinkReport::Recovered {
                after: Duration::from_secs(41)
            })
        );
        assert_eq!(l.poll_at(t0 + Duration::from_secs(80)), None, "quiet");
    }

    #[test]
    fn a_short_blip_is_not_reported_and_errors_while_up_are_summarised() {
        let l = link();
        let t0 = l.state.lock().unwrap().since;
        l.answered_at(t0);
        l.error_at(LinkErrorKind::AllBrokersDown, t0 + Duration::from_secs(10));
        assert!(!l.is_reachable());
        l.answered_at(t0 + Duration::from_secs(11));
        // The blip's errors are summarised, no outage.
        assert_eq!(
            l.poll_at(t0 + Duration::from_secs(12)),
            Some(LinkReport::Errors {
                errors: vec![(LinkErrorKind::AllBrokersDown, 1)]
            })
        );
        l.error_at(LinkErrorKind::UnknownTopic, t0 + Duration::from_secs(13));
        assert_eq!(l.poll_at(t0 + Duration::from_secs(20)), None, "not due");
        assert!(matches!(
            l.poll_at(t0 + Duration::from_secs(42)),
            Some(LinkReport::Errors { .. })
        ));
    }

    #[test]
    fn a_quiet_start_is_given_longer_before_it_counts_as_an_outage() {
        let l = link();
        let t0 = l.state.lock().unwrap().since;
        // No error, no answer yet (a group still forming): not an outage.
        assert_eq!(l.poll_at(t0 + Duration::from_secs(5)), None);
        assert!(matches!(
            l.poll_at(t0 + Duration::from_secs(11)),
            Some(LinkReport::Down {
                ever_reached: false,
                ..
            })
        ));
    }

    #[test]
    fn errors_format_as_kind_counts() {
        assert_eq!(
            format_errors(&[
                (LinkErrorKind::AllBrokersDown, 2),
                (LinkErrorKind::Resolve, 1)
            ]),
            "all_brokers_down=2 resolve=1"
        );
        assert_eq!(format_errors(&[]), "none");
    }
}
