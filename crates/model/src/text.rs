//! Bounded free text and small validated scalars shared by several records.

use std::fmt;

use crate::error::ModelError;

/// Free text from a person or a system (an approval's authority, an audit
/// purpose, a dead letter's detail): 1..=[`Text::MAX_LEN`] bytes of UTF-8
/// without control characters (no newlines, tabs or escapes), so it is safe
/// in a log line or a table cell.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Text(Box<str>);

impl Text {
    /// Longest accepted text, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// Validates and wraps free text; `field` names the record field in the error.
    ///
    /// # Errors
    /// [`ModelError::InvalidText`] when empty, longer than [`Self::MAX_LEN`]
    /// bytes or containing a control character.
    pub fn new(field: &'static str, text: impl Into<String>) -> Result<Self, ModelError> {
        let text: String = text.into();
        if text.is_empty() {
            return Err(ModelError::InvalidText {
                field,
                reason: "empty",
            });
        }
        if text.len() > Self::MAX_LEN {
            return Err(ModelError::InvalidText {
                field,
                reason: "longer than 1024 bytes",
            });
        }
        if text.chars().any(char::is_control) {
            return Err(ModelError::InvalidText {
                field,
                reason: "contains a control character",
            });
        }
        Ok(Self(text.into_boxed_str()))
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 18245 merchant category code, 0..=9999. It maps to an assumed dwell
/// time at the merchant (restaurant ~45 min, convenience store ~5 min).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Mcc(u16);

impl Mcc {
    /// Largest valid code.
    pub const MAX: u16 = 9999;

    /// Validates a code.
    ///
    /// # Errors
    /// [`ModelError::InvalidRecord`] outside 0..=9999.
    pub fn new(code: i64) -> Result<Self, ModelError> {
        u16::try_from(code)
            .ok()
            .filter(|c| *c <= Self::MAX)
            .map(Self)
            .ok_or(ModelError::InvalidRecord {
                field: "mcc",
                reason: "merchant category code outside 0..=9999",
            })
    }

    /// The code.
    #[must_use]
    pub const fn code(self) -> u16 {
        self.0
    }
}

/// A probability or score in [0, 1] (a visit's confidence, an exposure's risk).
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
pub struct Probability(f64);

impl Probability {
    /// Validates a value; `field` names the record field in the error.
    ///
    /// # Errors
    /// [`ModelError::InvalidRecord`] for NaN and values outside [0, 1].
    pub fn new(field: &'static str, value: f64) -> Result<Self, ModelError> {
        if !(0.0..=1.0).contains(&value) {
            return Err(ModelError::InvalidRecord {
                field,
                reason: "not a finite number in [0, 1]",
            });
        }
        Ok(Self(value))
    }

    /// The value.
    #[must_use]
    pub const fn get(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_bounded_and_printable() {
        assert!(Text::new("t", "KNPA Seoul").is_ok());
        assert!(Text::new("t", "서울경찰청").is_ok());
        assert_eq!(
            Text::new("t", "").unwrap_err().reason_code(),
            "invalid_text"
        );
        assert!(Text::new("t", "a\nb").is_err());
        assert!(Text::new("t", "\u{1b}[31m").is_err());
        assert!(Text::new("t", "x".repeat(1024)).is_ok());
        assert!(Text::new("t", "x".repeat(1025)).is_err());
    }

    #[test]
    fn mcc_range() {
        assert_eq!(Mcc::new(5812).unwrap().code(), 5812);
        assert!(Mcc::new(0).is_ok());
        assert!(Mcc::new(10_000).is_err());
        assert!(Mcc::new(-1).is_err());
    }

    #[test]
    fn probability_range() {
        assert!(Probability::new("p", 0.0).is_ok());
        assert!(Probability::new("p", 1.0).is_ok());
        assert!(Probability::new("p", f64::NAN).is_err());
        assert!(Probability::new("p", 1.000_001).is_err());
    }
}
