//! The [`Processor`] trait.

use epitrace_state::Txn;

use crate::record::{Emitted, InputRecord, OutputRecord};

/// Why a record was not processed.
#[derive(Debug)]
pub enum ProcessError {
    /// The record itself is bad (undecodable, invalid): it goes to the dead
    /// letter topic and processing goes on.
    Rejected {
        /// Stable reason code (a bounded set: a metric label).
        reason: &'static str,
        /// Human-readable detail, free of personal data.
        detail: String,
    },
    /// Something other than the record is wrong (state, a bug): the task
    /// stops without writing the batch, so a restart replays it.
    Fatal(String),
}

/// A stream processor: pure logic over a transaction, driven by
/// [`run_batch`](crate::run_batch) — in production inside the Kafka task,
/// in tests inside the [`TopologyDriver`](crate::TopologyDriver).
pub trait Processor: Send {
    /// Short name: consumer group suffix and log field.
    fn name(&self) -> &'static str;
    /// Topics consumed (co-partitioned when more than one).
    fn inputs(&self) -> Vec<String>;
    /// Processes one record: reads and stages state in `txn`, appends
    /// outputs to `out`.
    ///
    /// # Errors
    /// [`ProcessError::Rejected`] for a bad record, [`ProcessError::Fatal`]
    /// otherwise.
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError>;
    /// Runs after the last record of each batch (retention, timers).
    ///
    /// # Errors
    /// [`ProcessError::Fatal`].
    fn end_batch(
        &mut self,
        _txn: &mut Txn<'_>,
        _out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// The event time (ms) of the last record processed, for the
    /// event-time lag metric; `None` when unknown (the default).
    fn last_event_time_ms(&self) -> Option<i64> {
        None
    }

    /// The domain outputs of the batch just processed, by kind (e.g.
    /// exposures `new`/`updated`/`retracted`), drained once per batch for
    /// the metrics. The default has none.
    fn drain_emitted(&mut self) -> Vec<(Emitted, &'static str, u64)> {
        Vec::new()
    }

    /// How many of its cases have no data category open (pending
    /// approval), when the processor tracks it and knows (the exposure
    /// aggregator); `None` otherwise (the default).
    fn pending_approval(&self) -> Option<u64> {
        None
    }
}

impl<P: Processor + ?Sized> Processor for Box<P> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn inputs(&self) -> Vec<String> {
        (**self).inputs()
    }
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        (**self).process(record, txn, out)
    }
    fn end_batch(
        &mut self,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        (**self).end_batch(txn, out)
    }
    fn last_event_time_ms(&self) -> Option<i64> {
        (**self).last_event_time_ms()
    }
    fn drain_emitted(&mut self) -> Vec<(Emitted, &'static str, u64)> {
        (**self).drain_emitted()
    }
    fn pending_approval(&self) -> Option<u64> {
        (**self).pending_approval()
    }
}
