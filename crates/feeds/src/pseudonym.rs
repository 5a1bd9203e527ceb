//! Pseudonymisation: HMAC-SHA-256 of a normalised raw id under the
//! authority's key, truncated to 16 bytes (DESIGN §3).

use std::path::Path;

use epitrace_model::SubjectId;
use sha2::{Digest, Sha256};

use crate::FeedError;

/// What kind of raw id is pseudonymised: part of the HMAC input, so a phone
/// number and a card number with the same digits never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// A phone number (MSISDN).
    Msisdn,
    /// A payment card number (PAN).
    Card,
}

impl IdKind {
    const fn domain(self) -> &'static [u8] {
        match self {
            Self::Msisdn => b"epitrace/v1/msisdn:",
            Self::Card => b"epitrace/v1/card:",
        }
    }

    /// Normalises a raw id: separators (space, `-`, `.`, `(`, `)`) dropped;
    /// a phone number may start with `+` and has 6–15 digits (E.164), a card
    /// number 12–19 digits. The error never repeats the id.
    ///
    /// # Errors
    /// A reason, without the id.
    pub fn normalise(self, raw: &str) -> Result<String, String> {
        let mut out = String::with_capacity(raw.len());
        for (i, c) in raw.trim().chars().enumerate() {
            match c {
                '0'..='9' => out.push(c),
                '+' if i == 0 && self == Self::Msisdn => out.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err("contains a character that is not a digit or separator".into()),
            }
        }
        let digits = out.trim_start_matches('+').len();
        let (lo, hi) = match self {
            Self::Msisdn => (6, 15),
            Self::Card => (12, 19),
        };
        if !(lo..=hi).contains(&digits) {
            return Err(format!("{digits} digits, expected {lo}–{hi}"));
        }
        Ok(out)
    }
}

/// The authority's pseudonymisation key (at least 32 bytes).
#[derive(Clone)]
pub struct PseudonymKey(Vec<u8>);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(…)")
    }
}

impl PseudonymKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A key from bytes.
    ///
    /// # Errors
    /// A reason when shorter than [`Self::MIN_LEN`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < Self::MIN_LEN {
            return Err(format!(
                "{} bytes, at least {} needed",
                bytes.len(),
                Self::MIN_LEN
            ));
        }
        Ok(Self(bytes))
    }

    /// Reads a key file: hex text (64+ hex digits, whitespace ignored) or
    /// raw bytes (32+).
    ///
    /// # Errors
    /// [`FeedError::Key`] when unreadable or too short.
    pub fn from_file(path: &Path) -> Result<Self, FeedError> {
        let fail = |reason: String| FeedError::Key {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let text: String = String::from_utf8_lossy(&bytes)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let decoded = if !text.is_empty()
            && text.len().is_multiple_of(2)
            && text.chars().all(|c| c.is_ascii_hexdigit())
        {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| fail(e.to_string()))?
        } else {
            bytes
        };
        Self::new(decoded).map_err(fail)
    }

    /// The key as hex text (what [`Self::from_file`] reads).
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// HMAC-SHA-256 (RFC 2104).
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer.finalize());
    out
}

/// Turns raw ids into subject pseudonyms.
#[derive(Debug, Clone)]
pub struct Pseudonymizer {
    key: PseudonymKey,
}

impl Pseudonymizer {
    /// A pseudonymizer under `key`.
    #[must_use]
    pub const fn new(key: PseudonymKey) -> Self {
        Self { key }
    }

    /// The pseudonym of a raw id: HMAC-SHA-256(key, domain ‖ normalised id),
    /// first 16 bytes.
    ///
    /// # Errors
    /// The normalisation's reason (never the id).
    pub fn subject(&self, kind: IdKind, raw: &str) -> Result<SubjectId, String> {
        let id = kind.normalise(raw)?;
        let mac = hmac_sha256(&self.key.0, &[kind.domain(), id.as_bytes()]);
        let mut b = [0u8; 16];
        b.copy_from_slice(&mac[..16]);
        Ok(SubjectId::from_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], &[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn ids_are_normalised_and_kinds_kept_apart() {
        let p = Pseudonymizer::new(PseudonymKey::new(vec![7; 32]).unwrap());
        let a = p.subject(IdKind::Msisdn, "+82 10-1234-5678").unwrap();
        assert_eq!(a, p.subject(IdKind::Msisdn, "+821012345678").unwrap());
        assert_ne!(a, p.subject(IdKind::Msisdn, "821012345678").unwrap());
        let card = p.subject(IdKind::Card, "4111 1111 1111 111").unwrap();
        assert_ne!(card, p.subject(IdKind::Msisdn, "411111111111111").unwrap());
        let other = Pseudonymizer::new(PseudonymKey::new(vec![8; 32]).unwrap());
        assert_ne!(a, other.subject(IdKind::Msisdn, "+821012345678").unwrap());
        let e = p.subject(IdKind::Msisdn, "010-12a4").unwrap_err();
        assert!(!e.contains("12a4"), "{e}");
        assert!(p.subject(IdKind::Card, "4111").is_err());
        assert!(PseudonymKey::new(vec![1; 31]).is_err());
    }
}
