//! Identifiers: subject pseudonyms and the textual ids of cases, providers,
//! merchants, venues and sites.

use std::fmt;

use crate::error::ModelError;

/// A subject's pseudonym: HMAC-SHA-256 of a raw phone or card number under a
/// key the health authority issues, truncated to 16 bytes (DESIGN §3).
///
/// Raw identifiers never reach Kafka; this is the only form a person takes
/// inside epitrace. A pseudonym is still personal data: `Debug` shows only a
/// 4-hex-digit prefix so that a stray `{:?}` in a log line leaks nothing
/// useful, while [`SubjectId::to_hex`] gives the full value where an output
/// record needs it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectId([u8; 16]);

impl SubjectId {
    /// Length in bytes.
    pub const LEN: usize = 16;

    /// Wraps 16 pseudonym bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Checks the length of a byte slice (e.g. an Avro `fixed` value).
    ///
    /// # Errors
    /// [`ModelError::SubjectIdLength`] unless the slice is 16 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ModelError> {
        <[u8; 16]>::try_from(bytes)
            .map(Self)
            .map_err(|_| ModelError::SubjectIdLength { len: bytes.len() })
    }

    /// Parses 32 hexadecimal digits.
    ///
    /// # Errors
    /// [`ModelError::SubjectIdLength`] for the wrong length,
    /// [`ModelError::InvalidIdentifier`] for a non-hex digit.
    pub fn from_hex(hex: &str) -> Result<Self, ModelError> {
        let digits = hex.as_bytes();
        if digits.len() != 2 * Self::LEN {
            return Err(ModelError::SubjectIdLength {
                len: digits.len() / 2,
            });
        }
        let mut out = [0u8; 16];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let hi = hex_value(pair[0])?;
            let lo = hex_value(pair[1])?;
            *byte = (hi << 4) | lo;
        }
        Ok(Self(out))
    }

    /// The pseudonym bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The full pseudonym as 32 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut s = String::with_capacity(32);
        for b in self.0 {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

fn hex_value(digit: u8) -> Result<u8, ModelError> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(ModelError::InvalidIdentifier {
            kind: "subject",
            reason: "not a hexadecimal digit",
        }),
    }
}

impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectId({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// Declares a validated textual identifier: 1..=`$max` bytes of
/// `[A-Za-z0-9._:-]`, no other characters, so ids are safe in keys, file names
/// and log fields.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(Box<str>);

        impl $name {
            /// Longest accepted id, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps an identifier.
            ///
            /// # Errors
            /// [`ModelError::InvalidIdentifier`] when empty, longer than
            /// [`Self::MAX_LEN`] or containing a character outside `[A-Za-z0-9._:-]`.
            pub fn new(id: impl Into<String>) -> Result<Self, ModelError> {
                let id: String = id.into();
                validate_text_id($kind, &id, $max)?;
                Ok(Self(id.into_boxed_str()))
            }

            /// The identifier text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ModelError;
            fn try_from(id: &str) -> Result<Self, ModelError> {
                Self::new(id)
            }
        }
    };
}

fn validate_text_id(kind: &'static str, id: &str, max: usize) -> Result<(), ModelError> {
    if id.is_empty() {
        return Err(ModelError::InvalidIdentifier {
            kind,
            reason: "empty",
        });
    }
    if id.len() > max {
        return Err(ModelError::InvalidIdentifier {
            kind,
            reason: "too long",
        });
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(ModelError::InvalidIdentifier {
            kind,
            reason: "characters outside [A-Za-z0-9._:-]",
        });
    }
    Ok(())
}

text_id!(
    /// A confirmed case, as the health authority numbers it (e.g. `KR-2020-0031`).
    CaseId, "case_id", 64
);
text_id!(
    /// The organisation that produced a feed record (a telecom, a card issuer,
    /// a check-in operator).
    ProviderId, "provider", 64
);
text_id!(
    /// A card merchant.
    MerchantId, "merchant_id", 64
);
text_id!(
    /// A venue with QR entry logs.
    VenueId, "venue_id", 64
);
text_id!(
    /// A telecom base station (cell site).
    SiteId, "site_id", 64
);
text_id!(
    /// A person or service acting on personal data (audit records).
    ActorId, "actor", 128
);

text_id!(
    /// An interview entry within its case (`cases.interviews`).
    EntryId, "entry_id", 64
);

text_id!(
    /// A visit on a case's timeline; deterministic (derived from its content)
    /// so that consumers can upsert and a replay produces the same id.
    VisitId, "visit_id", 128
);
text_id!(
    /// An exposure of a contact to a case; deterministic, for dedupe and upsert.
    ExposureId, "exposure_id", 128
);
text_id!(
    /// A cluster of cases; deterministic, for upsert.
    ClusterId, "cluster_id", 128
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_hex_round_trip() {
        let s = SubjectId::from_bytes([0xab; 16]);
        assert_eq!(SubjectId::from_hex(&s.to_hex()).unwrap(), s);
        assert_eq!(format!("{s:?}"), "SubjectId(abab…)");
    }

    #[test]
    fn subject_bad_input() {
        assert_eq!(
            SubjectId::from_slice(&[1; 15]),
            Err(ModelError::SubjectIdLength { len: 15 })
        );
        assert!(SubjectId::from_hex("zz").is_err());
        assert!(SubjectId::from_hex(&"g".repeat(32)).is_err());
    }

    #[test]
    fn text_ids_are_validated() {
        assert!(CaseId::new("KR-2020-0031").is_ok());
        assert!(CaseId::new("").is_err());
        assert!(CaseId::new("a b").is_err());
        assert!(CaseId::new("x".repeat(65)).is_err());
        assert!(CaseId::new("é").is_err());
    }
}
