//! [`Health`]: liveness and readiness of the process.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::{KafkaLink, Metrics};

/// A task's state, as readiness sees it.
const STARTING: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;

/// Readiness of every processor task of the process.
///
/// The process is *alive* while it serves requests, and *ready* when it has
/// at least one task and every task is ready: its partitions assigned, their
/// offsets restored from its state store, and its loop consuming — and a
/// Kafka broker answers (see [`KafkaLink`]). A task is not ready before its
/// first assignment, after a revoke until the next assignment, and never
/// again after it failed.
#[derive(Debug)]
pub struct Health {
    tasks: Mutex<Vec<(&'static str, Arc<AtomicU8>)>>,
    metrics: Arc<Metrics>,
    kafka: Arc<KafkaLink>,
}

impl Health {
    /// No tasks yet: not ready.
    #[must_use]
    pub fn new(metrics: Arc<Metrics>, kafka: Arc<KafkaLink>) -> Self {
        Self {
            tasks: Mutex::new(Vec::new()),
            metrics,
            kafka,
        }
    }

    /// Registers a task (not ready until it says so).
    pub fn task(self: &Arc<Self>, processor: &'static str) -> TaskHealth {
        let state = Arc::new(AtomicU8::new(STARTING));
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push((processor, Arc::clone(&state)));
        }
        self.publish();
        TaskHealth {
            state,
            health: Arc::clone(self),
        }
    }

    /// Whether every registered task is ready (and there is one).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.not_ready().is_some_and(|waiting| waiting.is_empty())
    }

    /// What keeps the process from being ready: the processors not ready,
    /// then `kafka` when no broker answers; `None` when no task is
    /// registered.
    #[must_use]
    pub fn not_ready(&self) -> Option<Vec<&'static str>> {
        let tasks = self.tasks.lock().ok()?;
        if tasks.is_empty() {
            return None;
        }
        let mut waiting: Vec<&'static str> = tasks
            .iter()
            .filter(|(_, s)| s.load(Ordering::Acquire) != READY)
            .map(|(name, _)| *name)
            .collect();
        if !self.kafka.is_reachable() {
            waiting.push("kafka");
        }
        Some(waiting)
    }

    /// Re-publishes the `epitrace_ready` gauge (after the Kafka link
    /// changed; task changes publish by themselves).
    pub fn refresh(&self) {
        self.publish();
    }

    fn publish(&self) {
        self.metrics.ready.set(i64::from(self.is_ready()));
    }
}

/// One task's handle on [`Health`].
#[derive(Debug, Clone)]
pub struct TaskHealth {
    state: Arc<AtomicU8>,
    health: Arc<Health>,
}

impl TaskHealth {
    /// Ready (partitions restored, consuming) or not (revoked, rebalancing).
    /// A failed task stays failed.
    pub fn set_ready(&self, ready: bool) {
        let to = if ready { READY } else { STARTING };
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != FAILED).then_some(to)
            });
        self.health.publish();
    }

    /// The task stopped with an error: the process is no longer ready.
    pub fn set_failed(&self) {
        self.state.store(FAILED, Ordering::Release);
        self.health.publish();
    }

    /// The task stopped cleanly (shutdown): no longer ready.
    pub fn set_stopped(&self) {
        self.set_ready(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_task_is() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let kafka = Arc::new(KafkaLink::new(
            metrics.kafka_reachable.clone(),
            metrics.kafka_client_errors.clone(),
        ));
        kafka.answered();
        let health = Arc::new(Health::new(Arc::clone(&metrics), Arc::clone(&kafka)));
        assert!(!health.is_ready(), "no task: not ready");
        let a = health.task("segmenter");
        let b = health.task("presence-join");
        assert!(!health.is_ready());
        a.set_ready(true);
        assert_eq!(health.not_ready(), Some(vec!["presence-join"]));
        b.set_ready(true);
        assert!(health.is_ready());
        assert_eq!(metrics.ready.get(), 1);
        b.set_ready(false); // revoked
        assert!(!health.is_ready());
        assert_eq!(metrics.ready.get(), 0);
        b.set_failed();
        b.set_ready(true); // a failed task stays failed
        assert!(!health.is_ready());
    }

    #[test]
    fn not_ready_while_kafka_is_unreachable() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let kafka = Arc::new(KafkaLink::new(
            metrics.kafka_reachable.clone(),
            metrics.kafka_client_errors.clone(),
        ));
        let health = Arc::new(Health::new(Arc::clone(&metrics), Arc::clone(&kafka)));
        let a = health.task("segmenter");
        a.set_ready(true);
        assert_eq!(health.not_ready(), Some(vec!["kafka"]), "never reached");
        kafka.answered();
        health.refresh();
        assert!(health.is_ready());
        assert_eq!(metrics.ready.get(), 1);
        kafka.error(crate::LinkErrorKind::AllBrokersDown);
        health.refresh();
        assert_eq!(health.not_ready(), Some(vec!["kafka"]));
        assert_eq!(metrics.ready.get(), 0);
        assert_eq!(metrics.kafka_reachable.get(), 0);
    }
}
