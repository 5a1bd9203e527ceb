//! [`run_batch`]: one batch of input records through a processor.

use epitrace_model::codec::encode_single_object;
use epitrace_model::topics::PROVIDER_DEADLETTER_PREFIX;
use epitrace_model::{DeadLetter, EventTime, Text};
use epitrace_state::{KvStore, Txn, WriteSet};
use tracing::info_span;

use crate::DEADLETTER_TOPIC;
use crate::error::EngineError;
use crate::processor::{ProcessError, Processor};
use crate::record::{Consumed, Emitted, OutputRecord};

/// What one batch produced, ready for the caller to publish and commit:
/// first `outputs` (dead letters included), then `state` (state changes
/// *and* the next input offsets, one atomic write).
#[derive(Debug)]
pub struct BatchOutcome {
    /// Records to produce, in order (dead letters where their input was).
    pub outputs: Vec<OutputRecord>,
    /// State changes and the next input offsets, to write together once
    /// the outputs are acknowledged.
    pub state: WriteSet,
    /// The next offset of every (topic, partition) the batch read.
    pub next_offsets: Vec<(String, i32, i64)>,
    /// Input records per topic.
    pub inputs: Vec<(String, u64)>,
    /// Output records per topic (dead letters excluded).
    pub produced: Vec<(String, u64)>,
    /// Dead letters per reason code.
    pub dead_letters: Vec<(&'static str, u64)>,
    /// Domain outputs by kind, for the metrics.
    pub emitted: Vec<(Emitted, &'static str, u64)>,
    /// The event time of the last record processed, if the processor knows.
    pub last_event_ms: Option<i64>,
    /// Cases pending approval after the batch, if the processor tracks it.
    pub pending_approval: Option<u64>,
}

impl BatchOutcome {
    /// Total dead letters.
    #[must_use]
    pub fn dead_letter_count(&self) -> u64 {
        self.dead_letters.iter().map(|(_, n)| n).sum()
    }

    /// Total outputs, dead letters excluded.
    #[must_use]
    pub fn produced_count(&self) -> u64 {
        self.produced.iter().map(|(_, n)| n).sum()
    }
}

/// Processes `batch` with `processor` against a read-your-writes
/// transaction over `store`, at wall-clock time `received_at_ms` (used only
/// to reject timestamps in the future and to stamp dead letters).
///
/// Records are processed partition by partition (each partition's records
/// in their order; partitions are independent by construction, their keys
/// disjoint). A rejected record becomes a dead letter with its reason and
/// the batch goes on; its offset advances like any other. Nothing is
/// written: the caller publishes [`BatchOutcome::outputs`], waits for the
/// acknowledgements, and only then writes [`BatchOutcome::state`].
///
/// # Errors
/// [`EngineError::Processor`] for a fatal processor error (the batch must
/// then be dropped unwritten), [`EngineError::State`] when the store
/// cannot be read.
pub fn run_batch<P, R>(
    processor: &mut P,
    store: &dyn KvStore,
    batch: &[R],
    received_at_ms: i64,
) -> Result<BatchOutcome, EngineError>
where
    P: Processor + ?Sized,
    R: Consumed,
{
    let mut txn = Txn::new(store);
    let mut outputs: Vec<OutputRecord> = Vec::new();
    let mut dead: Vec<(&'static str, u64)> = Vec::new();
    let mut inputs: Vec<(String, u64)> = Vec::new();
    let mut next_offsets: Vec<(String, i32, i64)> = Vec::new();
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&i| batch[i].partition());
    for run in order.chunk_by(|&a, &b| batch[a].partition() == batch[b].partition()) {
        let Some(&first) = run.first() else { continue };
        let _partition = info_span!("partition", partition = batch[first].partition()).entered();
        for &i in run {
            let msg = &batch[i];
            if let Some((reason, detail)) = msg.rejection() {
                push_dead_letter(&mut outputs, msg, reason, detail, received_at_ms)?;
                bump(&mut dead, reason);
                continue;
            }
            let record = msg.as_input(received_at_ms);
            match processor.process(&record, &mut txn, &mut outputs) {
                Ok(()) => {}
                Err(ProcessError::Rejected { reason, detail }) => {
                    push_dead_letter(&mut outputs, msg, reason, &detail, received_at_ms)?;
                    bump(&mut dead, reason);
                }
                Err(ProcessError::Fatal(reason)) => {
                    return Err(EngineError::Processor {
                        processor: processor.name(),
                        reason,
                    });
                }
            }
            bump_owned(&mut inputs, msg.topic());
            let next = msg.offset() + 1;
            txn.set_offset(msg.topic(), msg.partition(), next);
            match next_offsets
                .iter_mut()
                .find(|(t, p, _)| t == msg.topic() && *p == msg.partition())
            {
                Some(entry) => entry.2 = entry.2.max(next),
                None => next_offsets.push((msg.topic().to_owned(), msg.partition(), next)),
            }
        }
    }
    if let Err(ProcessError::Fatal(reason) | ProcessError::Rejected { detail: reason, .. }) =
        processor.end_batch(&mut txn, &mut outputs)
    {
        return Err(EngineError::Processor {
            processor: processor.name(),
            reason,
        });
    }
    let mut produced: Vec<(String, u64)> = Vec::new();
    for o in &outputs {
        if o.topic != DEADLETTER_TOPIC && !o.topic.starts_with(PROVIDER_DEADLETTER_PREFIX) {
            bump_owned(&mut produced, &o.topic);
        }
    }
    Ok(BatchOutcome {
        outputs,
        state: txn.into_write_set(),
        next_offsets,
        inputs,
        produced,
        dead_letters: dead,
        emitted: processor.drain_emitted(),
        last_event_ms: processor.last_event_time_ms(),
        pending_approval: processor.pending_approval(),
    })
}

/// Adds one to `key`'s count (a handful of keys per batch: a vector beats a
/// map).
fn bump(counts: &mut Vec<(&'static str, u64)>, key: &'static str) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key, 1)),
    }
}

fn bump_owned(counts: &mut Vec<(String, u64)>, key: &str) {
    match counts.iter_mut().find(|(k, _)| k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key.to_owned(), 1)),
    }
}

/// Pushes the dead letter of a rejected record, and its copy on the
/// provider's own topic when the record names one.
fn push_dead_letter<R: Consumed>(
    outputs: &mut Vec<OutputRecord>,
    msg: &R,
    reason: &'static str,
    detail: &str,
    at_ms: i64,
) -> Result<(), EngineError> {
    let letter = dead_letter(msg, reason, detail, at_ms)?;
    let copy = msg.dead_letter_copy().map(|topic| OutputRecord {
        topic: topic.to_owned(),
        ..letter.clone()
    });
    outputs.push(letter);
    outputs.extend(copy);
    Ok(())
}

/// The dead letter for a rejected record.
fn dead_letter<R: Consumed>(
    msg: &R,
    reason: &'static str,
    detail: &str,
    at_ms: i64,
) -> Result<OutputRecord, EngineError> {
    let invalid = |e: epitrace_model::ModelError| EngineError::Processor {
        processor: "deadletter",
        reason: e.to_string(),
    };
    let at = EventTime::from_millis("dead_lettered_at", at_ms).unwrap_or(EventTime::MIN);
    let record = DeadLetter {
        topic: Text::new("topic", msg.topic()).map_err(invalid)?,
        partition: msg.partition(),
        offset: msg.offset(),
        reason_code: Text::new("reason_code", reason).map_err(invalid)?,
        detail: Text::new("detail", truncate(detail, 1000))
            .or_else(|_| Text::new("detail", "-"))
            .map_err(invalid)?,
        payload: msg
            .original_payload()
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
        dead_lettered_at: at,
    };
    let payload = encode_single_object(&record).map_err(invalid)?;
    Ok(OutputRecord {
        topic: DEADLETTER_TOPIC.to_owned(),
        key: msg.key().map(<[u8]>::to_vec).unwrap_or_default(),
        payload,
        timestamp_ms: msg.timestamp_ms(),
    })
}

/// Control characters removed, at most `max` bytes (on a character
/// boundary), never empty.
fn truncate(s: &str, max: usize) -> String {
    let cleaned: String = s.chars().filter(|c| !c.is_control()).collect();
    if cleaned.len() <= max {
        return if cleaned.is_empty() {
            "-".into()
        } else {
            cleaned
        };
    }
    let mut end = max;
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    cleaned[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole_and_never_empties() {
        assert_eq!(truncate("", 10), "-");
        assert_eq!(truncate("a\u{7}b", 10), "ab");
        assert_eq!(truncate("ééé", 3), "é");
    }

    /// Refuses every record.
    struct Refuser;

    impl Processor for Refuser {
        fn name(&self) -> &'static str {
            "refuser"
        }
        fn inputs(&self) -> Vec<String> {
            vec!["feeds.telecom.location".into()]
        }
        fn process(
            &mut self,
            _: &crate::InputRecord<'_>,
            _: &mut Txn<'_>,
            _: &mut Vec<OutputRecord>,
        ) -> Result<(), ProcessError> {
            Err(ProcessError::Rejected {
                reason: "bad_magic",
                detail: "no".into(),
            })
        }
    }

    struct Rec {
        offset: i64,
        copy: Option<&'static str>,
    }

    impl Consumed for Rec {
        fn topic(&self) -> &str {
            "feeds.telecom.location"
        }
        fn partition(&self) -> i32 {
            0
        }
        fn offset(&self) -> i64 {
            self.offset
        }
        fn key(&self) -> Option<&[u8]> {
            Some(b"k")
        }
        fn payload(&self) -> Option<&[u8]> {
            Some(b"garbage")
        }
        fn timestamp_ms(&self) -> Option<i64> {
            Some(1)
        }
        fn dead_letter_copy(&self) -> Option<&str> {
            self.copy
        }
    }

    #[test]
    fn a_dead_letter_is_copied_to_the_provider_topic_and_counted_once() {
        let store = epitrace_state::MemStore::new(&[]).unwrap();
        let batch = [
            Rec {
                offset: 0,
                copy: Some("pipeline.deadletter.telco-a"),
            },
            Rec {
                offset: 1,
                copy: None,
            },
        ];
        let outcome = run_batch(&mut Refuser, &store, &batch, 5).unwrap();
        let topics: Vec<&str> = outcome.outputs.iter().map(|o| o.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "pipeline.deadletter",
                "pipeline.deadletter.telco-a",
                "pipeline.deadletter"
            ]
        );
        assert_eq!(outcome.outputs[0].payload, outcome.outputs[1].payload);
        assert_eq!(outcome.outputs[0].key, outcome.outputs[1].key);
        assert_eq!(outcome.dead_letter_count(), 2);
        assert_eq!(outcome.produced_count(), 0);
    }
}
