//! The audit writer: every read of personal data by a person appends one
//! [`AuditRecord`] to `audit.log` (DESIGN §3) before anything is shown.
//!
//! ## The chain
//!
//! Records form one hash chain, in `seq` order:
//!
//! - `seq` counts from 0 without gaps;
//! - `prev_hash` is the previous record's `hash` (32 zero bytes, [`GENESIS`],
//!   for seq 0);
//! - `hash = SHA-256(prev_hash ‖ datum)`, where `datum` is the record's
//!   plain Avro binary datum (current `AuditRecord` schema, no single-object
//!   header) **with `hash` set to 32 zero bytes** ([`chain_hash`]).
//!
//! Removing, reordering or altering a record therefore breaks the chain at
//! that record ([`verify_chain`]).
//!
//! ## Appending: one writer at a time
//!
//! Every writer of a deployment — the CLI readers, the investigators' API —
//! appends through an [`AuditWriter`]: a transactional producer whose
//! transactional id is the same for all of them ([`WRITER_ID`]). A writer
//! starting (`init_transactions`) fences every other and aborts what they
//! left open; it then reads the log's tail (`read_committed`), chains its
//! record to the one with the highest `seq` and commits it in a
//! transaction. A fenced writer's commit fails, so it starts again: it
//! fences the others in turn, reads the tail anew and retries. Only the
//! latest writer can commit, and it read the tail after every earlier
//! commit, so concurrent writers — in one process or many — never fork the
//! chain: they take turns. Records are produced with key `"audit"`, so the
//! whole chain is one partition, in order. The log's retention
//! (`topology.audit_retention`) deletes its oldest records, so a chain read
//! back may start after seq 0; [`verify_chain`] accepts that suffix.

use std::time::Duration;

use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{AuditAction, AuditOutcome, AuditRecord, Role};
use epitrace_model::topics::AUDIT;
use epitrace_model::{ActorId, CaseId, EventTime, Text, encode_datum};
use epitrace_stream::link::LinkHooks;
use epitrace_stream::read::read_tail;
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};
use sha2::{Digest, Sha256};

use crate::ToolError;

/// `prev_hash` of the first record (seq 0): 32 zero bytes.
pub const GENESIS: [u8; 32] = [0; 32];

/// The key every audit record is produced with, so that the whole log is
/// one partition in append order.
pub const AUDIT_KEY: &[u8] = b"audit";

/// The transactional id every [`AuditWriter`] uses, whatever its group
/// prefix: `audit.log` is one log per cluster, so its writers must fence
/// each other.
pub const WRITER_ID: &str = "epitrace.audit-writer";

/// Offsets of the log's tail read first when looking for its last record
/// (doubled until one is found).
const TAIL: i64 = 64;

/// One access, before it is placed in the chain: everything of an
/// [`AuditRecord`] but `seq`, `prev_hash` and `hash`.
#[derive(Clone, PartialEq, Debug)]
pub struct AuditEntry {
    /// When the access happened (the caller's wall clock).
    pub at: EventTime,
    /// Who acted.
    pub actor: ActorId,
    /// The role the actor acted in.
    pub role: Role,
    /// What was done.
    pub action: AuditAction,
    /// What was accessed (e.g. a topic name).
    pub resource: Text,
    /// The case concerned, if any.
    pub case_id: Option<CaseId>,
    /// Why, as stated by the actor.
    pub purpose: Text,
    /// Result of the access.
    pub outcome: AuditOutcome,
}

/// The chain hash of `record`: SHA-256 over `record.prev_hash` followed by
/// the plain Avro binary datum of `record` with `hash` replaced by 32 zero
/// bytes. The stored `hash` is ignored, so `chain_hash(r) == r.hash` checks
/// a record.
///
/// # Errors
/// [`ToolError::Model`] when the record does not validate (a negative
/// `seq`).
pub fn chain_hash(record: &AuditRecord) -> Result<[u8; 32], ToolError> {
    let zeroed = AuditRecord {
        hash: [0; 32],
        ..record.clone()
    };
    let datum = encode_datum(&zeroed)?;
    let mut h = Sha256::new();
    h.update(record.prev_hash);
    h.update(&datum);
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize());
    Ok(out)
}

/// The record that follows `prev` (or starts the chain, when `None`):
/// `seq = prev.seq + 1`, `prev_hash = prev.hash`, `hash` per [`chain_hash`].
///
/// # Errors
/// [`ToolError::Audit`] when `prev.seq` is `i64::MAX`; [`ToolError::Model`]
/// as [`chain_hash`].
pub fn next_record(
    prev: Option<&AuditRecord>,
    entry: AuditEntry,
) -> Result<AuditRecord, ToolError> {
    let (seq, prev_hash) = match prev {
        None => (0, GENESIS),
        Some(p) => (
            p.seq.checked_add(1).ok_or_else(|| ToolError::Audit {
                reason: "audit.log: seq overflow".into(),
            })?,
            p.hash,
        ),
    };
    let mut record = AuditRecord {
        seq,
        at: entry.at,
        actor: entry.actor,
        role: entry.role,
        action: entry.action,
        resource: entry.resource,
        case_id: entry.case_id,
        purpose: entry.purpose,
        outcome: entry.outcome,
        prev_hash,
        hash: [0; 32],
    };
    record.hash = chain_hash(&record)?;
    Ok(record)
}

/// Checks a chain read back in log order: every record's `hash` recomputes
/// ([`chain_hash`]), every record after the first has `seq` one more than
/// its predecessor and `prev_hash` equal to its predecessor's `hash`, and a
/// first record with seq 0 has `prev_hash` [`GENESIS`]. A chain may start
/// after seq 0 (retention deletes the oldest records); an empty chain is
/// valid.
///
/// # Errors
/// [`ToolError::AuditChain`] naming the first record that breaks the chain
/// and why.
pub fn verify_chain(records: &[AuditRecord]) -> Result<(), ToolError> {
    let broken = |seq: i64, reason: &'static str| ToolError::AuditChain { seq, reason };
    let mut prev: Option<&AuditRecord> = None;
    for r in records {
        if chain_hash(r)? != r.hash {
            return Err(broken(r.seq, "hash does not match the record"));
        }
        match prev {
            None if r.seq == 0 && r.prev_hash != GENESIS => {
                return Err(broken(r.seq, "seq 0 must have a zero prev_hash"));
            }
            None => {}
            Some(p) => {
                if p.seq.checked_add(1) != Some(r.seq) {
                    return Err(broken(r.seq, "seq does not follow the previous record"));
                }
                if r.prev_hash != p.hash {
                    return Err(broken(r.seq, "prev_hash is not the previous record's hash"));
                }
            }
        }
        prev = Some(r);
    }
    Ok(())
}

/// Reads every record of `audit.log` in log order (partition, then offset),
/// blocking; returns them and how many did not decode.
///
/// # Errors
/// [`ToolError::Stream`].
pub fn read_audit(
    kafka: &KafkaConfig,
    timeout: Duration,
) -> Result<(Vec<AuditRecord>, usize), ToolError> {
    crate::query::read_all(kafka, AUDIT, timeout)
}

/// What [`verify_log`] found in an intact log.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LogReport {
    /// Records in the log.
    pub records: usize,
    /// `seq` of the first and the last record (`None` for an empty log).
    pub seqs: Option<(i64, i64)>,
}

/// Reads the whole of `audit.log` (`read_committed`) and checks it: every
/// record decodes, all sit in one partition, the chain verifies
/// ([`verify_chain`]), and a log whose first record is at offset 0 starts
/// at seq 0 (a later start is only legitimate when retention deleted the
/// oldest records, which moves the log's start). Blocking.
///
/// # Errors
/// [`ToolError::AuditChain`] naming the first record that breaks the
/// chain; [`ToolError::Audit`] for an undecodable record, records in more
/// than one partition, or a log that starts after seq 0 at offset 0;
/// [`ToolError::Stream`] when the log cannot be read.
pub fn verify_log(kafka: &KafkaConfig, timeout: Duration) -> Result<LogReport, ToolError> {
    let raw = epitrace_stream::read::read_to_end(kafka, AUDIT, timeout)?;
    let mut partitions: Vec<i32> = raw.iter().map(|r| r.partition).collect();
    partitions.dedup();
    if partitions.len() > 1 {
        return Err(ToolError::Audit {
            reason: format!("audit.log: records in partitions {partitions:?}, not one chain"),
        });
    }
    let mut records = Vec::with_capacity(raw.len());
    for r in &raw {
        let decoded = r.payload.as_deref().map(|p| {
            epitrace_model::codec::decode_single_object::<AuditRecord>(
                p,
                &epitrace_model::codec::DecodeOptions::default(),
            )
        });
        match decoded {
            Some(Ok(rec)) => records.push(rec),
            _ => {
                return Err(ToolError::Audit {
                    reason: format!(
                        "audit.log: the record at offset {} does not decode (after seq {})",
                        r.offset,
                        records.last().map_or(-1, |p: &AuditRecord| p.seq)
                    ),
                });
            }
        }
    }
    verify_chain(&records)?;
    if let (Some(first), Some(raw_first)) = (records.first(), raw.first())
        && first.seq != 0
        && raw_first.offset == 0
    {
        return Err(ToolError::AuditChain {
            seq: first.seq,
            reason: "the log starts after seq 0 although nothing was deleted from its start",
        });
    }
    Ok(LogReport {
        records: records.len(),
        seqs: records
            .first()
            .zip(records.last())
            .map(|(a, b)| (a.seq, b.seq)),
    })
}

/// What [`append`] wrote.
#[derive(Clone, PartialEq, Debug)]
pub struct Appended {
    /// The record, as acknowledged by the broker.
    pub record: AuditRecord,
    /// Records of `audit.log` that did not decode (skipped when looking for
    /// the previous record; worth a warning).
    pub undecodable: usize,
}

/// The writer of `audit.log` (see the module docs, Appending): holds the
/// last record it committed, so that a long-lived writer (the API) reads
/// the log only when it starts or was fenced.
pub struct AuditWriter {
    kafka: KafkaConfig,
    publisher: Option<Publisher>,
    /// The chain's last record as this writer knows it; `None` until read
    /// (after start and after being fenced).
    last: Option<Option<AuditRecord>>,
    timeout: Duration,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field(
                "last_seq",
                &self.last.as_ref().map(|l| l.as_ref().map(|r| r.seq)),
            )
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// A writer; it takes its turn (fences the others) on the first append.
    /// `timeout` bounds each append, retries included.
    #[must_use]
    pub fn new(kafka: &KafkaConfig, timeout: Duration) -> Self {
        Self {
            kafka: kafka.clone(),
            publisher: None,
            last: None,
            timeout,
        }
    }

    /// Appends `entry`, chained to the last record, and returns once its
    /// transaction committed: only then may the caller show what the entry
    /// covers. A writer fenced by another starts again (reads the tail
    /// anew) until `timeout`.
    ///
    /// # Errors
    /// [`ToolError::Stream`] when the brokers do not take the record within
    /// the timeout; [`ToolError::Audit`] when reading the log fails;
    /// [`ToolError::Model`] as [`chain_hash`].
    pub async fn append(&mut self, entry: AuditEntry) -> Result<Appended, ToolError> {
        let (mut records, undecodable) = self.append_all(std::slice::from_ref(&entry)).await?;
        let record = records.pop().ok_or_else(|| ToolError::Audit {
            reason: "audit writer appended nothing".into(),
        })?;
        Ok(Appended {
            record,
            undecodable,
        })
    }

    /// Appends `entries` in order, chained, in **one** transaction (a group
    /// commit: what a server does with the requests that arrived while the
    /// previous transaction committed), and returns their records once it
    /// committed, with the count of undecodable records skipped while
    /// reading the tail. All or none of them are on the log.
    ///
    /// # Errors
    /// As [`AuditWriter::append`].
    pub async fn append_all(
        &mut self,
        entries: &[AuditEntry],
    ) -> Result<(Vec<AuditRecord>, usize), ToolError> {
        if entries.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut attempt: u32 = 0;
        loop {
            match self.try_append(entries).await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    // Start over with a fresh producer (a fenced one is
                    // unusable). Another writer's turn is waited out until
                    // the timeout; any other failure (the brokers away) is
                    // tried once more.
                    self.publisher = None;
                    self.last = None;
                    attempt += 1;
                    let contended = matches!(&e, ToolError::Stream(s) if s.is_txn_contention());
                    let pause = backoff(attempt);
                    if (!contended && attempt >= 2)
                        || tokio::time::Instant::now() + pause >= deadline
                    {
                        return Err(e);
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    async fn try_append(
        &mut self,
        entries: &[AuditEntry],
    ) -> Result<(Vec<AuditRecord>, usize), ToolError> {
        let mut undecodable = 0;
        if self.publisher.is_none() {
            let p = Publisher::transactional(&self.kafka, LinkHooks::quiet(), WRITER_ID)?;
            p.init_transactions().await?;
            self.publisher = Some(p);
        }
        if self.last.is_none() {
            let (last, bad) = read_last(&self.kafka, self.timeout).await?;
            undecodable = bad;
            self.last = Some(last);
        }
        let (Some(publisher), Some(last)) = (&self.publisher, &self.last) else {
            return Err(ToolError::Audit {
                reason: "audit writer not initialised".into(),
            });
        };
        let mut records: Vec<AuditRecord> = Vec::with_capacity(entries.len());
        for entry in entries {
            let prev = records.last().or(last.as_ref());
            records.push(next_record(prev, entry.clone())?);
        }
        let outgoing = records
            .iter()
            .map(|record| {
                Ok(OutputRecord {
                    topic: AUDIT.to_owned(),
                    key: AUDIT_KEY.to_vec(),
                    payload: encode_single_object(record)?,
                    timestamp_ms: Some(record.at.as_millis()),
                })
            })
            .collect::<Result<Vec<_>, ToolError>>()?;
        publisher.begin()?;
        let sent = publisher.send_all(&outgoing).await;
        let committed = match sent {
            Ok(_) => publisher.commit_records().await,
            Err(e) => Err(e),
        };
        if let Err(e) = committed {
            let _ = publisher.abort().await;
            return Err(e.into());
        }
        self.last = Some(records.last().cloned());
        Ok((records, undecodable))
    }
}

/// How long a fenced writer waits before its next turn: random (so that
/// writers fenced together do not start again together and fence each
/// other forever) within a window that doubles per attempt, from 100 ms up
/// to 3 s.
fn backoff(attempt: u32) -> Duration {
    use std::hash::BuildHasher;
    let window_ms = (100u64 << attempt.min(5)).min(3_000);
    // A hasher seeded at random per call: cheap randomness without a
    // dependency.
    let r = std::collections::hash_map::RandomState::new().hash_one(attempt);
    Duration::from_millis(r % (window_ms + 1))
}

/// The record with the highest `seq` in the log's tail (the later one in
/// log order on a tie; the whole log when the tail holds none), and how
/// many records did not decode.
async fn read_last(
    kafka: &KafkaConfig,
    timeout: Duration,
) -> Result<(Option<AuditRecord>, usize), ToolError> {
    let cfg = kafka.clone();
    tokio::task::spawn_blocking(move || -> Result<_, ToolError> {
        let mut tail = TAIL;
        loop {
            let raw = read_tail(&cfg, AUDIT, tail, timeout)?;
            let (records, bad) = crate::query::decode_all::<AuditRecord>(&raw);
            if let Some(last) = records.iter().rev().max_by_key(|r| r.seq) {
                return Ok((Some(last.clone()), bad));
            }
            if i64::try_from(raw.len()).unwrap_or(i64::MAX) < tail / 2 && tail >= 1 << 16 {
                let (all, bad) = read_audit(&cfg, timeout)?;
                return Ok((all.iter().rev().max_by_key(|r| r.seq).cloned(), bad));
            }
            if tail >= 1 << 20 {
                let (all, bad) = read_audit(&cfg, timeout)?;
                return Ok((all.iter().rev().max_by_key(|r| r.seq).cloned(), bad));
            }
            tail *= 4;
        }
    })
    .await
    .map_err(|e| ToolError::Audit {
        reason: format!("reading audit.log: {e}"),
    })?
}

/// Appends one entry with a writer of its own ([`AuditWriter`]): what a
/// one-shot CLI command does.
///
/// # Errors
/// As [`AuditWriter::append`].
pub async fn append(
    kafka: &KafkaConfig,
    entry: AuditEntry,
    timeout: Duration,
) -> Result<Appended, ToolError> {
    AuditWriter::new(kafka, timeout).append(entry).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(i: i64, case: Option<&str>) -> AuditEntry {
        AuditEntry {
            at: EventTime::from_millis("at", 1_588_377_600_000 + i * 1_000).unwrap(),
            actor: ActorId::new("inv-kim").unwrap(),
            role: Role::Investigator,
            action: AuditAction::ReadTimeline,
            resource: Text::new("resource", "tracing.timelines").unwrap(),
            case_id: case.map(|c| CaseId::new(c).unwrap()),
            purpose: Text::new("purpose", "tracing of KR-2020-0031").unwrap(),
            outcome: AuditOutcome::Allowed,
        }
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let case = (i % 2 == 0).then_some("KR-2020-0031");
            out.push(next_record(out.last(), entry(i, case)).unwrap());
        }
        out
    }

    #[test]
    fn a_built_chain_verifies_and_links() {
        let c = chain(4);
        verify_chain(&c).unwrap();
        assert_eq!(c[0].seq, 0);
        assert_eq!(c[0].prev_hash, GENESIS);
        for w in c.windows(2) {
            assert_eq!(w[1].seq, w[0].seq + 1);
            assert_eq!(w[1].prev_hash, w[0].hash);
        }
        assert!(verify_chain(&[]).is_ok());
        // What audit.log carries decodes to the same, still chained, records.
        let wire: Vec<AuditRecord> = c
            .iter()
            .map(|r| {
                let frame = encode_single_object(r).unwrap();
                epitrace_model::codec::decode_single_object(
                    &frame,
                    &epitrace_model::codec::DecodeOptions::default(),
                )
                .unwrap()
            })
            .collect();
        assert_eq!(wire, c);
        verify_chain(&wire).unwrap();
        // A suffix (older records deleted by retention) still verifies.
        verify_chain(&c[2..]).unwrap();
    }

    #[test]
    fn the_hash_is_sha256_of_prev_hash_and_the_zero_hash_datum() {
        let c = chain(2);
        let r = &c[1];
        let mut zeroed = r.clone();
        zeroed.hash = [0; 32];
        let mut input = r.prev_hash.to_vec();
        input.extend(encode_datum(&zeroed).unwrap());
        let want: [u8; 32] = Sha256::digest(&input).into();
        assert_eq!(r.hash, want);
    }

    #[test]
    fn altering_any_field_breaks_the_chain() {
        let c = chain(3);
        type Alteration = Box<dyn Fn(&mut AuditRecord)>;
        let alterations: Vec<Alteration> = vec![
            Box::new(|r| r.actor = ActorId::new("someone-else").unwrap()),
            Box::new(|r| r.purpose = Text::new("purpose", "curiosity").unwrap()),
            Box::new(|r| r.case_id = Some(CaseId::new("KR-2020-0099").unwrap())),
            Box::new(|r| r.role = Role::Operator),
            Box::new(|r| r.action = AuditAction::Export),
            Box::new(|r| r.outcome = AuditOutcome::Denied),
            Box::new(|r| r.at = r.at.saturating_add_ms(1)),
            Box::new(|r| r.resource = Text::new("resource", "tracing.clusters").unwrap()),
        ];
        for alter in &alterations {
            let mut forged = c.clone();
            alter(&mut forged[1]);
            let err = verify_chain(&forged).unwrap_err();
            assert!(matches!(err, ToolError::AuditChain { seq: 1, .. }), "{err}");
        }
        // Re-hashing the altered record moves the break to its successor.
        let mut forged = c;
        forged[1].purpose = Text::new("purpose", "curiosity").unwrap();
        forged[1].hash = chain_hash(&forged[1]).unwrap();
        assert!(matches!(
            verify_chain(&forged),
            Err(ToolError::AuditChain { seq: 2, .. })
        ));
    }

    #[test]
    fn removing_or_reordering_records_breaks_the_chain() {
        let c = chain(4);
        let removed = [c[0].clone(), c[2].clone(), c[3].clone()];
        assert!(matches!(
            verify_chain(&removed),
            Err(ToolError::AuditChain { seq: 2, .. })
        ));
        let swapped = [c[0].clone(), c[2].clone(), c[1].clone(), c[3].clone()];
        assert!(verify_chain(&swapped).is_err());
        // A fork: two records chained to the same predecessor.
        let fork = next_record(Some(&c[2]), entry(9, None)).unwrap();
        let forked = [c[0].clone(), c[1].clone(), c[2].clone(), c[3].clone(), fork];
        assert!(verify_chain(&forked).is_err());
    }

    #[test]
    fn a_forged_first_record_needs_a_zero_prev_hash() {
        let mut first = next_record(None, entry(0, None)).unwrap();
        first.prev_hash = [7; 32];
        first.hash = chain_hash(&first).unwrap();
        assert!(matches!(
            verify_chain(&[first]),
            Err(ToolError::AuditChain { seq: 0, .. })
        ));
    }
}
