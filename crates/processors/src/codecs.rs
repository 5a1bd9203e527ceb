//! The key and value codecs of the processors' stores, as the registry
//! declares them: what a stored entry is, whether it decodes, and whose
//! personal data its key names (a subject, a case). Tools that look into
//! state — a check that deletion left nothing of a subject, an inspector —
//! read stores through these, never by guessing layouts; a test decodes
//! every entry a run leaves in every store with its declared codecs.

use epitrace_core::ContactLedger;
use epitrace_core::SubjectTrail;
use epitrace_core::codec::decode_segment;
use epitrace_model::records::{
    CaseEvent, ClusterAlert, DataAccessApproval, Exposure, InterviewEntry, SubjectCase, Visit,
};
use epitrace_model::{CaseId, SubjectId};

use crate::common::decode_value;
use crate::error::PipelineError;

/// Length of a segment id key suffix: subject, lane, start, first cell.
const SEGMENT_ID: usize = 16 + 4 + 8 + 8;

/// How a store's keys are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCodec {
    /// `subject(16) · feed(1)`.
    SubjectFeed,
    /// `subject(16) · lane(4) · start(8) · first cell(8)`: a segment id.
    SegmentId,
    /// `subject(16) · case id`.
    SubjectCase,
    /// `bucket(8) · cell key(8) · segment id(36)`: a time-bucketed index.
    BucketCellSegment,
    /// `case id · 0 · contact(16)`.
    CaseContact,
    /// `case id · 0 · visit id`.
    CaseVisit,
    /// `case id · 0 · category(1) · approval reference`.
    CaseApproval,
    /// `case id · 0 · interview entry id`.
    CaseEntry,
    /// `case id`.
    Case,
    /// `cluster id`.
    Cluster,
}

/// Whose data a stored key names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    /// The subject (pseudonym) it belongs to or names as a contact.
    pub subject: Option<SubjectId>,
    /// The case it belongs to.
    pub case: Option<CaseId>,
}

fn bad(what: &str) -> PipelineError {
    PipelineError::Config(format!("stored key does not match its layout: {what}"))
}

fn subject_at(key: &[u8], at: usize) -> Result<SubjectId, PipelineError> {
    key.get(at..at + 16)
        .and_then(|b| SubjectId::from_slice(b).ok())
        .ok_or_else(|| bad("no subject"))
}

fn case_of(bytes: &[u8]) -> Result<CaseId, PipelineError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| CaseId::new(s).ok())
        .ok_or_else(|| bad("no case id"))
}

/// `case id · 0 · rest` → (case, rest).
fn split_case(key: &[u8]) -> Result<(CaseId, &[u8]), PipelineError> {
    let zero = key
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| bad("no case separator"))?;
    Ok((case_of(&key[..zero])?, &key[zero + 1..]))
}

impl KeyCodec {
    /// The layout, for help and docs.
    #[must_use]
    pub const fn layout(self) -> &'static str {
        match self {
            Self::SubjectFeed => "subject(16) · feed(1)",
            Self::SegmentId => "subject(16) · lane(4) · start(8) · first cell(8)",
            Self::SubjectCase => "subject(16) · case id",
            Self::BucketCellSegment => "bucket(8) · cell key(8) · segment id(36)",
            Self::CaseContact => "case id · 0 · contact(16)",
            Self::CaseVisit => "case id · 0 · visit id",
            Self::CaseApproval => "case id · 0 · category(1) · approval reference",
            Self::CaseEntry => "case id · 0 · interview entry id",
            Self::Case => "case id",
            Self::Cluster => "cluster id",
        }
    }

    /// Whose data `key` names.
    ///
    /// # Errors
    /// [`PipelineError::Config`] when the key does not have this layout.
    pub fn decode(self, key: &[u8]) -> Result<KeyOwner, PipelineError> {
        let exact = |n: usize| {
            if key.len() == n {
                Ok(())
            } else {
                Err(bad(&format!("{} bytes, not {n}", key.len())))
            }
        };
        Ok(match self {
            Self::SubjectFeed => {
                exact(17)?;
                KeyOwner {
                    subject: Some(subject_at(key, 0)?),
                    case: None,
                }
            }
            Self::SegmentId => {
                exact(SEGMENT_ID)?;
                KeyOwner {
                    subject: Some(subject_at(key, 0)?),
                    case: None,
                }
            }
            Self::SubjectCase => KeyOwner {
                subject: Some(subject_at(key, 0)?),
                case: Some(case_of(key.get(16..).unwrap_or_default())?),
            },
            Self::BucketCellSegment => {
                exact(16 + SEGMENT_ID)?;
                KeyOwner {
                    subject: Some(subject_at(key, 16)?),
                    case: None,
                }
            }
            Self::CaseContact => {
                let (case, rest) = split_case(key)?;
                if rest.len() != 16 {
                    return Err(bad("contact is not 16 bytes"));
                }
                KeyOwner {
                    subject: Some(subject_at(rest, 0)?),
                    case: Some(case),
                }
            }
            Self::CaseVisit | Self::CaseEntry => {
                let (case, rest) = split_case(key)?;
                if rest.is_empty() || std::str::from_utf8(rest).is_err() {
                    return Err(bad(if self == Self::CaseVisit {
                        "no visit id"
                    } else {
                        "no interview entry id"
                    }));
                }
                KeyOwner {
                    subject: None,
                    case: Some(case),
                }
            }
            Self::CaseApproval => {
                let (case, rest) = split_case(key)?;
                match rest.split_first() {
                    Some((1..=4, reference)) if std::str::from_utf8(reference).is_ok() => {}
                    _ => return Err(bad("no approval category and reference")),
                }
                KeyOwner {
                    subject: None,
                    case: Some(case),
                }
            }
            Self::Case => KeyOwner {
                subject: None,
                case: Some(case_of(key)?),
            },
            Self::Cluster => {
                if key.is_empty() || std::str::from_utf8(key).is_err() {
                    return Err(bad("no cluster id"));
                }
                KeyOwner::default()
            }
        })
    }
}

/// How a store's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueCodec {
    /// A segmenter trail in the core codec.
    SubjectTrail,
    /// A closed segment in the core codec.
    Segment,
    /// A segment with its case tags, compact (presence join, v1).
    IndexedSegment,
    /// A contact ledger in the core codec.
    ContactLedger,
    /// Nothing: the key is the entry.
    Empty,
    /// A stored record (`[2] · Avro single-object`, or `[1] · datum` from before) of a `SubjectCase`.
    SubjectCase,
    /// A stored record (`[2] · Avro single-object`, or `[1] · datum` from before) of an `Exposure`.
    Exposure,
    /// A stored record (`[2] · Avro single-object`, or `[1] · datum` from before) of a `CaseEvent`.
    CaseEvent,
    /// A stored record (`[2] · Avro single-object`, or `[1] · datum` from before) of a `Visit`.
    Visit,
    /// A stored record (`[2] · Avro single-object`, or `[1] · datum` from before) of a `ClusterAlert`.
    ClusterAlert,
    /// A stored record (`[2] · Avro single-object`, or `[1] · datum` from before) of a `DataAccessApproval`.
    Approval,
    /// A stored record (`[2] · Avro single-object`, or `[1] · datum` from before) of an `InterviewEntry`.
    InterviewEntry,
    /// `open categories(1) · next expiry(8)`: an approval gate.
    Gate,
}

impl ValueCodec {
    /// What the value is, for help and docs.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::SubjectTrail => "SubjectTrail (core codec)",
            Self::Segment => "closed Segment (core codec)",
            Self::IndexedSegment => "segment + case tags (compact, v1)",
            Self::ContactLedger => "ContactLedger (core codec)",
            Self::Empty => "empty",
            Self::SubjectCase => "SubjectCase (version byte + Avro single-object)",
            Self::Exposure => "Exposure (version byte + Avro single-object)",
            Self::CaseEvent => "CaseEvent (version byte + Avro single-object)",
            Self::Visit => "Visit (version byte + Avro single-object)",
            Self::ClusterAlert => "ClusterAlert (version byte + Avro single-object)",
            Self::Approval => "DataAccessApproval (version byte + Avro single-object)",
            Self::InterviewEntry => "InterviewEntry (version byte + Avro single-object)",
            Self::Gate => "gate: open categories(1) · next expiry(8)",
        }
    }

    /// Checks that `bytes` decode as this codec's values.
    ///
    /// # Errors
    /// [`PipelineError::Config`] naming the codec and why.
    pub fn check(self, bytes: &[u8]) -> Result<(), PipelineError> {
        let fail = |why: String| {
            PipelineError::Config(format!("stored value is not {}: {why}", self.describe()))
        };
        let ok = match self {
            Self::SubjectTrail => SubjectTrail::decode(bytes)
                .map(drop)
                .map_err(|e| e.to_string()),
            Self::Segment => decode_segment(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            Self::IndexedSegment => crate::presence_join::decode_indexed(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            Self::ContactLedger => ContactLedger::decode(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            Self::Empty => {
                if bytes.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{} bytes", bytes.len()))
                }
            }
            Self::SubjectCase => decode_value::<SubjectCase>(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            Self::Exposure => decode_value::<Exposure>(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            Self::CaseEvent => decode_value::<CaseEvent>(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            Self::Visit => decode_value::<Visit>(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            Self::ClusterAlert => decode_value::<ClusterAlert>(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            Self::Approval => decode_value::<DataAccessApproval>(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            Self::InterviewEntry => decode_value::<InterviewEntry>(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
            Self::Gate => crate::exposure_aggregator::decode_gate(bytes)
                .map(drop)
                .map_err(|e| format!("{e:?}")),
        };
        ok.map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keys_name_their_subject_and_case_and_bad_ones_are_refused() {
        let s = SubjectId::from_bytes([7; 16]);
        let mut k = b"KR-1".to_vec();
        k.push(0);
        k.extend_from_slice(s.as_bytes());
        let owner = KeyCodec::CaseContact.decode(&k).unwrap();
        assert_eq!(owner.subject, Some(s));
        assert_eq!(owner.case.unwrap().as_str(), "KR-1");
        let mut idx = vec![0u8; 16];
        idx.extend_from_slice(&[7; 16]);
        idx.extend_from_slice(&[0; 20]);
        assert_eq!(
            KeyCodec::BucketCellSegment.decode(&idx).unwrap().subject,
            Some(s)
        );
        assert!(KeyCodec::BucketCellSegment.decode(&idx[1..]).is_err());
        assert!(KeyCodec::SubjectFeed.decode(&[7; 16]).is_err());
        assert!(KeyCodec::CaseContact.decode(b"KR-1").is_err());
        assert!(KeyCodec::Case.decode(&[0xff, 0xfe]).is_err());
        assert!(ValueCodec::Empty.check(b"x").is_err());
        assert!(ValueCodec::Exposure.check(&[9, 1, 2]).is_err());
    }
}
