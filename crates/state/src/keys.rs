//! Order-preserving key codecs.
//!
//! RocksDB (and [`crate::MemStore`]) order keys by unsigned byte-wise
//! comparison, so a composite key scans in the order of its fields only if
//! every field is encoded so that byte order equals value order:
//!
//! - unsigned integers: big-endian ([`u32_key`], [`u64_key`]);
//! - signed integers: big-endian with the sign bit flipped ([`i64_key`]), so
//!   that `-1` (`0x7fff…`) sorts before `0` (`0x8000…`);
//! - every field but the last must be fixed-width; a variable-width field is
//!   only order-safe in the last position.
//!
//! [`KeyBuilder`] concatenates fields, [`KeyReader`] takes them apart again,
//! and [`prefix_end`] turns a prefix into the exclusive upper bound of a
//! range scan.
//!
//! # Time-bucketed stores
//!
//! A store whose entries expire with time puts the time bucket first:
//! `bucket (i64) ‖ rest`. All entries of one bucket are then one contiguous
//! range, a scan over a key within a bucket is a prefix scan, and retention
//! is a single `delete_range` per store that removes whole buckets (see
//! [`crate::retention`]).

use crate::StateError;

/// Width of an encoded `i64` / `u64`.
pub const I64_LEN: usize = 8;
/// Width of an encoded `u32`.
pub const U32_LEN: usize = 4;

/// Encodes an `i64` so that byte order equals numeric order (big-endian,
/// sign bit flipped).
#[must_use]
pub fn i64_key(v: i64) -> [u8; I64_LEN] {
    (v.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

/// Inverse of [`i64_key`].
#[must_use]
pub fn i64_from_key(bytes: [u8; I64_LEN]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)).cast_signed()
}

/// Encodes a `u64` big-endian.
#[must_use]
pub fn u64_key(v: u64) -> [u8; I64_LEN] {
    v.to_be_bytes()
}

/// Encodes a `u32` big-endian.
#[must_use]
pub fn u32_key(v: u32) -> [u8; U32_LEN] {
    v.to_be_bytes()
}

/// The exclusive upper bound of every key that starts with `prefix`: the
/// smallest byte string greater than all of them.
///
/// Trailing `0xff` bytes are dropped and the last remaining byte is
/// incremented. `None` when no such bound exists (`prefix` is empty or all
/// `0xff`): every key from `prefix` on has the prefix.
#[must_use]
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// Builds a composite key from order-preserving fields.
///
/// ```
/// use epitrace_state::keys::{KeyBuilder, KeyReader};
/// let key = KeyBuilder::new().i64(-5).u32(7).bytes(b"subject").finish();
/// let mut r = KeyReader::new(&key);
/// assert_eq!(r.i64().unwrap(), -5);
/// assert_eq!(r.u32().unwrap(), 7);
/// assert_eq!(r.rest(), b"subject");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyBuilder {
    buf: Vec<u8>,
}

impl KeyBuilder {
    /// An empty key.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty key with room for `n` bytes.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// Appends an `i64` ([`i64_key`]).
    #[must_use]
    pub fn i64(mut self, v: i64) -> Self {
        self.buf.extend_from_slice(&i64_key(v));
        self
    }

    /// Appends a `u64` ([`u64_key`]).
    #[must_use]
    pub fn u64(mut self, v: u64) -> Self {
        self.buf.extend_from_slice(&u64_key(v));
        self
    }

    /// Appends a `u32` ([`u32_key`]).
    #[must_use]
    pub fn u32(mut self, v: u32) -> Self {
        self.buf.extend_from_slice(&u32_key(v));
        self
    }

    /// Appends raw bytes. Order-safe only for fixed-width fields or as the
    /// last field.
    #[must_use]
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// The key bytes.
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields back out of a key built by [`KeyBuilder`], front to back.
#[derive(Debug, Clone)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// A reader at the start of `key`.
    #[must_use]
    pub fn new(key: &'a [u8]) -> Self {
        Self { rest: key }
    }

    /// The next `N` bytes.
    ///
    /// # Errors
    /// [`StateError::KeyTooShort`] when fewer than `N` bytes remain.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let Some((head, tail)) = self.rest.split_first_chunk::<N>() else {
            return Err(StateError::KeyTooShort {
                needed: N,
                remaining: self.rest.len(),
            });
        };
        self.rest = tail;
        Ok(*head)
    }

    /// The next `i64` ([`i64_key`]).
    ///
    /// # Errors
    /// [`StateError::KeyTooShort`].
    pub fn i64(&mut self) -> Result<i64, StateError> {
        self.array().map(i64_from_key)
    }

    /// The next `u64`.
    ///
    /// # Errors
    /// [`StateError::KeyTooShort`].
    pub fn u64(&mut self) -> Result<u64, StateError> {
        self.array().map(u64::from_be_bytes)
    }

    /// The next `u32`.
    ///
    /// # Errors
    /// [`StateError::KeyTooShort`].
    pub fn u32(&mut self) -> Result<u32, StateError> {
        self.array().map(u32::from_be_bytes)
    }

    /// Everything not read yet (the variable-width last field).
    #[must_use]
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn i64_sign_flip_edges() {
        assert_eq!(i64_key(i64::MIN), [0; 8]);
        assert_eq!(i64_key(i64::MAX), [0xff; 8]);
        assert_eq!(i64_key(0), [0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert!(i64_key(-1) < i64_key(0));
        assert!(i64_key(-1) > i64_key(i64::MIN));
    }

    #[test]
    fn prefix_end_edges() {
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(&[0xff; 9]), None);
        assert_eq!(prefix_end(&[0x00]), Some(vec![0x01]));
        assert_eq!(prefix_end(&[0x01, 0xff, 0xff]), Some(vec![0x02]));
        assert_eq!(prefix_end(&[0x01, 0xfe, 0xff]), Some(vec![0x01, 0xff]));
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
    }

    #[test]
    fn reader_too_short() {
        let mut r = KeyReader::new(&[1, 2, 3]);
        assert_eq!(
            r.u32(),
            Err(StateError::KeyTooShort {
                needed: 4,
                remaining: 3
            })
        );
        // A failed read consumes nothing.
        assert_eq!(r.rest(), &[1, 2, 3]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn i64_order_preserved(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(a.cmp(&b), i64_key(a).cmp(&i64_key(b)));
            prop_assert_eq!(i64_from_key(i64_key(a)), a);
        }

        #[test]
        fn u64_u32_order_preserved(a in any::<u64>(), b in any::<u64>(), c in any::<u32>(), d in any::<u32>()) {
            prop_assert_eq!(a.cmp(&b), u64_key(a).cmp(&u64_key(b)));
            prop_assert_eq!(c.cmp(&d), u32_key(c).cmp(&u32_key(d)));
        }

        #[test]
        fn composite_order_is_field_order(
            a in (any::<i64>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..4)),
            b in (any::<i64>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..4)),
        ) {
            let ka = KeyBuilder::new().i64(a.0).u32(a.1).bytes(&a.2).finish();
            let kb = KeyBuilder::new().i64(b.0).u32(b.1).bytes(&b.2).finish();
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
            let mut r = KeyReader::new(&ka);
            prop_assert_eq!(r.i64()?, a.0);
            prop_assert_eq!(r.u32()?, a.1);
            prop_assert_eq!(r.rest(), &a.2[..]);
        }

        #[test]
        fn prefix_end_bounds_exactly_the_prefixed_keys(
            prefix in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xfe), Just(0xff)], 0..4),
            key in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xfe), Just(0xff)], 0..6),
        ) {
            let has_prefix = key.starts_with(&prefix);
            let in_range = key >= prefix && prefix_end(&prefix).is_none_or(|end| key < end);
            prop_assert_eq!(has_prefix, in_range);
        }
    }
}
