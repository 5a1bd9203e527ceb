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
//! ## Appending
//!
//! [`append`] reads `audit.log` to its end (every partition), takes the
//! record with the highest `seq` as the previous one, chains the new record
//! to it and produces it with key `"audit"` (so every record lands in one
//! partition, in order), waiting for the broker's acknowledgement. Writers
//! are not coordinated: two readers appending at the same instant can both
//! take the same `seq`, which [`verify_chain`] then reports as a fork. The
//! log's retention (`topology.audit_retention`) deletes its oldest records,
//! so a chain read back may start after seq 0; [`verify_chain`] accepts that
//! suffix.

use std::time::Duration;

use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{AuditAction, AuditOutcome, AuditRecord, Role};
use epitrace_model::topics::AUDIT;
use epitrace_model::{ActorId, CaseId, EventTime, Text, encode_datum};
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};
use sha2::{Digest, Sha256};

use crate::ToolError;

/// `prev_hash` of the first record (seq 0): 32 zero bytes.
pub const GENESIS: [u8; 32] = [0; 32];

/// The key every audit record is produced with, so that the whole log is
/// one partition in append order.
pub const AUDIT_KEY: &[u8] = b"audit";

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

/// What [`append`] wrote.
#[derive(Clone, PartialEq, Debug)]
pub struct Appended {
    /// The record, as acknowledged by the broker.
    pub record: AuditRecord,
    /// Records of `audit.log` that did not decode (skipped when looking for
    /// the previous record; worth a warning).
    pub undecodable: usize,
}

/// Appends `entry` to `audit.log`: reads the log to its end (blocking, on
/// tokio's blocking pool), chains the entry to the record with the highest
/// `seq` ([`next_record`]; the later one in log order on a tie), produces it
/// single-object encoded with key [`AUDIT_KEY`] and returns once the broker
/// acknowledged it. Only then may the caller show what the entry covers.
///
/// # Errors
/// [`ToolError::Stream`] when the log cannot be read or the record is not
/// acknowledged; [`ToolError::Audit`] when the read task fails;
/// [`ToolError::Model`] as [`chain_hash`].
pub async fn append(
    kafka: &KafkaConfig,
    entry: AuditEntry,
    timeout: Duration,
) -> Result<Appended, ToolError> {
    let cfg = kafka.clone();
    let (log, undecodable) = tokio::task::spawn_blocking(move || read_audit(&cfg, timeout))
        .await
        .map_err(|e| ToolError::Audit {
            reason: format!("reading audit.log: {e}"),
        })??;
    let prev = log.iter().max_by_key(|r| r.seq);
    let record = next_record(prev, entry)?;
    let publisher = Publisher::new(kafka)?;
    publisher
        .send_all(&[OutputRecord {
            topic: AUDIT.to_owned(),
            key: AUDIT_KEY.to_vec(),
            payload: encode_single_object(&record)?,
            timestamp_ms: Some(record.at.as_millis()),
        }])
        .await?;
    Ok(Appended {
        record,
        undecodable,
    })
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
