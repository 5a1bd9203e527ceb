//! Reaching the brokers: client contexts that feed [`KafkaLink`] instead of
//! logging every librdkafka error, the watcher that turns the link into one
//! summary line per interval and the process's readiness, and the probe
//! that CLI commands run before they need Kafka.
//!
//! Why: with no broker, each of librdkafka's clients logs `AllBrokersDown`
//! and a failed connect on every retry, and none names the address or what
//! to do about it. Here every client *counts* its transport errors on the
//! process's [`KafkaLink`]; the [`watch`] task logs one line per interval
//! naming the brokers and the fix; a command that cannot work without Kafka
//! calls [`probe`] first and fails within seconds with
//! [`StreamError::Unreachable`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use epitrace_ops::kafka_link::format_errors;
use epitrace_ops::{Health, KafkaLink, LinkErrorKind, LinkReport};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use tracing::{debug, info, warn};

use crate::config::KafkaConfig;
use crate::error::StreamError;

/// What to tell a person who has no broker: used in every message about an
/// unreachable cluster.
pub const UNREACHABLE_HINT: &str = "start the local broker with `make kafka-up`, or point kafka.brokers \
     (--brokers, EPITRACE_BROKERS) at a running cluster";

/// The class of a Kafka error, for counting on the link.
#[must_use]
pub fn classify(error: &KafkaError) -> LinkErrorKind {
    error
        .rdkafka_error_code()
        .map_or(LinkErrorKind::Other, classify_code)
}

/// The class of a librdkafka error code.
#[must_use]
pub fn classify_code(code: RDKafkaErrorCode) -> LinkErrorKind {
    use RDKafkaErrorCode as C;
    match code {
        C::AllBrokersDown => LinkErrorKind::AllBrokersDown,
        C::BrokerTransportFailure | C::BrokerNotAvailable | C::NetworkException => {
            LinkErrorKind::Transport
        }
        C::Resolve => LinkErrorKind::Resolve,
        C::OperationTimedOut | C::RequestTimedOut | C::MessageTimedOut => LinkErrorKind::Timeout,
        C::Authentication
        | C::SaslAuthenticationFailed
        | C::SSL
        | C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed => LinkErrorKind::Auth,
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition => {
            LinkErrorKind::UnknownTopic
        }
        _ => LinkErrorKind::Other,
    }
}

/// Feeds the link from a client's callbacks: errors counted, connection
/// failures counted instead of logged, a broker `UP` in the statistics
/// marks the link reachable. Shared by every context of this crate.
#[derive(Debug, Clone)]
pub struct LinkHooks {
    link: Option<Arc<KafkaLink>>,
    /// Client errors are expected and returned to the caller anyway (e.g.
    /// a transactional writer fenced by another): logged at debug only.
    quiet: bool,
}

impl LinkHooks {
    /// Hooks that report to `link`.
    #[must_use]
    pub const fn new(link: Arc<KafkaLink>) -> Self {
        Self {
            link: Some(link),
            quiet: false,
        }
    }

    /// Hooks of a client that belongs to no pipeline (a CLI command, a
    /// test): errors are logged, as librdkafka's default does.
    #[must_use]
    pub const fn detached() -> Self {
        Self {
            link: None,
            quiet: false,
        }
    }

    /// Hooks of a client whose errors its caller handles from the results
    /// (a transactional writer that expects to be fenced and starts
    /// again): client errors and librdkafka's error lines are logged at
    /// debug only.
    #[must_use]
    pub const fn quiet() -> Self {
        Self {
            link: None,
            quiet: true,
        }
    }

    /// The link, if any.
    #[must_use]
    pub const fn link(&self) -> Option<&Arc<KafkaLink>> {
        self.link.as_ref()
    }

    /// A broker answered (an assignment, a batch, an acknowledgement).
    pub fn answered(&self) {
        if let Some(link) = &self.link {
            link.answered();
        }
    }

    /// A consumer or producer error that is not about one record.
    pub fn error(&self, error: &KafkaError) {
        match &self.link {
            Some(link) => {
                link.error(classify(error));
                debug!(error = %error, "kafka client error (counted)");
            }
            None => warn!(error = %error, "kafka client error"),
        }
    }

    fn on_error(&self, error: &KafkaError, reason: &str) {
        match &self.link {
            Some(link) => {
                link.error(classify(error));
                debug!(error = %error, reason, "kafka client error (counted)");
            }
            None if self.quiet => debug!(error = %error, reason, "kafka client error"),
            None => tracing::error!(error = %error, reason, "kafka client error"),
        }
    }

    fn on_log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // Connection failures (facility FAIL) repeat on every reconnect:
        // with a link they are counted through the error callback that
        // accompanies them and summarised by the watcher.
        if self.quiet || (self.link.is_some() && (fac == "FAIL" || fac == "ERROR")) {
            debug!(facility = fac, message, "librdkafka");
            return;
        }
        // The target librdkafka's own lines have always had, so RUST_LOG
        // filters keep working.
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, message, "librdkafka");
            }
            RDKafkaLogLevel::Warning => {
                warn!(target: "librdkafka", facility = fac, message, "librdkafka");
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(target: "librdkafka", facility = fac, message, "librdkafka");
            }
            RDKafkaLogLevel::Debug => {
                debug!(target: "librdkafka", facility = fac, message, "librdkafka");
            }
        }
    }

    /// Statistics (every `statistics.interval.ms`): a broker in state `UP`
    /// means the cluster answers.
    pub fn on_stats(&self, statistics: &Statistics) {
        if statistics.brokers.values().any(|b| b.state == "UP") {
            self.answered();
        }
    }
}

/// A client context that only feeds the link (producers, readers, probes).
#[derive(Debug, Clone)]
pub struct LinkContext {
    hooks: LinkHooks,
}

impl LinkContext {
    /// A context reporting through `hooks`.
    #[must_use]
    pub const fn new(hooks: LinkHooks) -> Self {
        Self { hooks }
    }

    /// Its hooks.
    #[must_use]
    pub const fn hooks(&self) -> &LinkHooks {
        &self.hooks
    }
}

impl ClientContext for LinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.hooks.on_log(level, fac, log_message);
    }

    fn stats(&self, statistics: Statistics) {
        self.hooks.on_stats(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.hooks.on_error(&error, reason);
    }
}

impl ConsumerContext for LinkContext {}

/// Implements `log`, `error` and `stats` of a [`ClientContext`] through a
/// [`LinkHooks`] field (for contexts that add their own behaviour).
pub(crate) fn forward_log(hooks: &LinkHooks, level: RDKafkaLogLevel, fac: &str, msg: &str) {
    hooks.on_log(level, fac, msg);
}

/// See [`forward_log`].
pub(crate) fn forward_error(hooks: &LinkHooks, error: &KafkaError, reason: &str) {
    hooks.on_error(error, reason);
}

/// How often the watcher looks at the link.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Watches the link until `shutdown` resolves: logs an outage (naming
/// `brokers` and the fix) within a few seconds, then once per interval,
/// its end once, and client errors while reachable at most once per
/// interval; keeps `health`'s readiness in step with the link.
pub async fn watch(
    link: Arc<KafkaLink>,
    health: Arc<Health>,
    brokers: String,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(WATCH_EVERY);
    let mut was_reachable = link.is_reachable();
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let reachable = link.is_reachable();
        if reachable != was_reachable {
            health.refresh();
            was_reachable = reachable;
        }
        match link.poll() {
            None => {}
            Some(LinkReport::Down {
                down_for,
                ever_reached,
                errors,
            }) => warn!(
                brokers = %brokers,
                down_s = down_for.as_secs(),
                errors = %format_errors(&errors),
                "{}; retrying, not ready meanwhile: {UNREACHABLE_HINT}",
                if ever_reached {
                    format!(
                        "kafka unreachable: no broker at {brokers} has answered for {} s",
                        down_for.as_secs()
                    )
                } else {
                    format!(
                        "kafka unreachable: no broker at {brokers} answered in {} s since start",
                        down_for.as_secs()
                    )
                }
            ),
            Some(LinkReport::Recovered { after }) => info!(
                brokers = %brokers,
                down_s = after.as_secs(),
                "kafka reachable again at {brokers} after {} s",
                after.as_secs()
            ),
            Some(LinkReport::Errors { errors }) => {
                let missing = errors
                    .iter()
                    .any(|(k, _)| *k == LinkErrorKind::UnknownTopic);
                warn!(
                    brokers = %brokers,
                    errors = %format_errors(&errors),
                    "kafka client errors in the last interval{}",
                    if missing {
                        " (unknown_topic: create the topics with `epitrace topics create`)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
}

/// How long a CLI command waits for a broker before giving up.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks that a broker of `cfg.brokers` answers a metadata request within
/// `timeout`, without logging librdkafka's errors. Blocking: call it from
/// `spawn_blocking` in async code.
///
/// # Errors
/// [`StreamError::Unreachable`] naming the brokers and how to start one;
/// [`StreamError::Kafka`] for an invalid client configuration.
pub fn probe(cfg: &KafkaConfig, timeout: Duration) -> Result<(), StreamError> {
    let started = Instant::now();
    let link = Arc::new(KafkaLink::standalone());
    let mut conf = cfg.consumer_config("probe");
    conf.remove("statistics.interval.ms");
    let consumer: BaseConsumer<LinkContext> =
        conf.create_with_context(LinkContext::new(LinkHooks::new(link)))?;
    let deadline = started + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // Any answer will do: a broker that is still starting (fenced, an
        // empty broker list) answers too, and the command's own requests
        // wait for it.
        if consumer
            .fetch_metadata(None, left.min(Duration::from_secs(1)))
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(StreamError::Unreachable {
        brokers: cfg.brokers.clone(),
        waited: timeout,
    })
}
