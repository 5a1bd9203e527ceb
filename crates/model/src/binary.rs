//! Avro binary encoding by hand, for the records on the hot path
//! ([`LocationPing`](crate::records::LocationPing),
//! [`SegmentUpdate`](crate::records::SegmentUpdate),
//! [`ExposureCandidate`](crate::records::ExposureCandidate)).
//!
//! apache-avro's generic path builds a [`Value`](apache_avro::types::Value)
//! tree per record (allocations for every field name and string); these
//! primitives read and write the same bytes directly. The records that use
//! them must agree with the generic path byte for byte and error for error
//! class — `tests/fast_codec.rs` checks both on arbitrary records, bytes and
//! mutated frames.
//!
//! The encoding (Avro 1.11 specification, "Binary Encoding"): `int` and
//! `long` as zig-zag varints, `double` as 8 bytes little-endian, `string` as
//! a `long` length and UTF-8 bytes, `fixed` raw, `enum` and union branches as
//! an `int` index, arrays as blocks of a `long` count (negative: followed by
//! the block's byte size) ending with a zero count.

use crate::error::ModelError;

/// The error of reading past the end of the datum (what the generic path
/// reports for a truncated datum).
const TRUNCATED: ModelError = ModelError::Truncated("datum ends before the record");

/// apache-avro's default allocation limit: a string length or an array
/// block count above it is refused before any byte of it is read. Mirrored
/// so that both paths give the same error class.
const MAX_ALLOCATION: u64 = 512 * 1024 * 1024;

fn too_large(n: u64) -> ModelError {
    ModelError::Avro(format!("length {n} above the allocation limit"))
}

/// Appends Avro binary values to a buffer.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    /// A `long`: zig-zag varint.
    pub(crate) fn long(&mut self, v: i64) {
        let mut z = u64::from_ne_bytes(((v << 1) ^ (v >> 63)).to_ne_bytes());
        while z >= 0x80 {
            // Low 7 bits with the continuation bit: fits a byte.
            self.0.push(u8::try_from(z & 0x7f).unwrap_or(0) | 0x80);
            z >>= 7;
        }
        self.0.push(u8::try_from(z).unwrap_or(0));
    }

    /// An `int`.
    pub(crate) fn int(&mut self, v: i32) {
        self.long(i64::from(v));
    }

    /// An `int` from a `u32` the record has bounded to `i32::MAX`
    /// (validated before encoding).
    pub(crate) fn bounded_u32(&mut self, v: u32) {
        self.int(i32::try_from(v).unwrap_or(i32::MAX));
    }

    /// A `double`.
    pub(crate) fn double(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// A `fixed`.
    pub(crate) fn fixed(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// A `string`.
    pub(crate) fn string(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    /// A length or count as a `long`.
    pub(crate) fn len(&mut self, n: usize) {
        self.long(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// An enum symbol or union branch index.
    pub(crate) fn index(&mut self, i: usize) {
        self.len(i);
    }

    /// The block header of an array of `n` items (nothing for none; the
    /// items follow, then [`Self::array_end`]).
    pub(crate) fn array_start(&mut self, n: usize) {
        if n > 0 {
            self.len(n);
        }
    }

    /// The end of an array.
    pub(crate) fn array_end(&mut self) {
        self.0.push(0);
    }
}

/// Reads Avro binary values from a datum.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `datum`.
    pub(crate) const fn new(datum: &'a [u8]) -> Self {
        Self { rest: datum }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let Some((head, tail)) = self.rest.split_at_checked(n) else {
            return Err(TRUNCATED);
        };
        self.rest = tail;
        Ok(head)
    }

    /// A `long`.
    pub(crate) fn long(&mut self) -> Result<i64, ModelError> {
        let mut z: u64 = 0;
        for i in 0..10 {
            let Some((&b, tail)) = self.rest.split_first() else {
                return Err(TRUNCATED);
            };
            self.rest = tail;
            z |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                let half = i64::from_ne_bytes((z >> 1).to_ne_bytes());
                let sign = -i64::from_ne_bytes((z & 1).to_ne_bytes());
                return Ok(half ^ sign);
            }
        }
        Err(ModelError::Avro("varint longer than 10 bytes".into()))
    }

    /// An `int`.
    pub(crate) fn int(&mut self) -> Result<i32, ModelError> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| ModelError::Avro(format!("int out of range: {v}")))
    }

    /// A `double`.
    pub(crate) fn double(&mut self) -> Result<f64, ModelError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(b))
    }

    /// A `fixed` of `N` bytes.
    pub(crate) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }

    /// A length: a non-negative `long` no larger than what is left (every
    /// counted unit takes at least a byte).
    fn len(&mut self) -> Result<usize, ModelError> {
        let n = self.long()?;
        let n = u64::try_from(n).map_err(|_| ModelError::Avro(format!("negative length {n}")))?;
        if n > MAX_ALLOCATION {
            return Err(too_large(n));
        }
        let n = usize::try_from(n).map_err(|_| too_large(n))?;
        if n > self.rest.len() {
            return Err(TRUNCATED);
        }
        Ok(n)
    }

    /// A `string`.
    pub(crate) fn str(&mut self) -> Result<&'a str, ModelError> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?)
            .map_err(|e| ModelError::Avro(format!("string is not UTF-8: {e}")))
    }

    /// An enum symbol: the index into `all` (the schema's symbols, in
    /// order).
    pub(crate) fn symbol<E: Copy>(&mut self, all: &[E]) -> Result<E, ModelError> {
        let i = self.int()?;
        let i = usize::try_from(i).map_err(|_| ModelError::Avro(format!("enum index {i}")))?;
        all.get(i)
            .copied()
            .ok_or_else(|| ModelError::UnknownSymbol {
                field: "enum",
                symbol: format!("#{i}"),
            })
    }

    /// The branch of a `["null", X]` union: `false` for null.
    pub(crate) fn optional(&mut self) -> Result<bool, ModelError> {
        match self.long()? {
            0 => Ok(false),
            1 => Ok(true),
            i => Err(ModelError::Avro(format!("union branch {i} out of range"))),
        }
    }

    /// The item count of the next array block, `read` items having been
    /// read before it; 0 ends the array. Bounded as apache-avro bounds it
    /// (the running total times the size of its `Value`), not by what is
    /// left: callers read items one by one (each takes at least a byte, so
    /// a huge count runs out of input) and must not preallocate.
    pub(crate) fn block(&mut self, read: usize) -> Result<usize, ModelError> {
        let n = self.long()?;
        if n < 0 {
            // A negative count is followed by the block's size in bytes.
            self.long()?;
        }
        let n = n.unsigned_abs();
        if n > MAX_ALLOCATION {
            return Err(too_large(n));
        }
        let n = usize::try_from(n).map_err(|_| too_large(n))?;
        let total = read.saturating_add(n);
        let bytes = total.saturating_mul(std::mem::size_of::<apache_avro::types::Value>());
        if u64::try_from(bytes).map_or(true, |b| b > MAX_ALLOCATION) {
            return Err(ModelError::Avro(format!(
                "array of {total} items above the allocation limit"
            )));
        }
        Ok(n)
    }

    /// Requires the datum to be fully read.
    pub(crate) fn finish(self) -> Result<(), ModelError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ModelError::TrailingBytes(self.rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Reader, Writer};

    #[test]
    fn longs_round_trip_at_every_width() {
        let values = [
            0,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ];
        for v in values {
            let mut buf = Vec::new();
            Writer(&mut buf).long(v);
            let mut r = Reader::new(&buf);
            assert_eq!(r.long().ok(), Some(v), "{v}");
            assert!(r.finish().is_ok());
        }
        // Zig-zag: 0 → 00, -1 → 01, 1 → 02, -64 → 7f, 64 → 80 01.
        let mut buf = Vec::new();
        for v in [0, -1, 1, -64, 64] {
            Writer(&mut buf).long(v);
        }
        assert_eq!(buf, [0x00, 0x01, 0x02, 0x7f, 0x80, 0x01]);
    }

    #[test]
    fn over_long_varints_and_short_input_are_errors() {
        let mut r = Reader::new(&[0xff; 11]);
        assert_eq!(r.long().map_err(|e| e.reason_code()), Err("avro"));
        let mut r = Reader::new(&[0x80]);
        assert_eq!(r.long().map_err(|e| e.reason_code()), Err("truncated"));
        // A string whose length runs past the end.
        let mut r = Reader::new(&[0x08, b'a']);
        assert_eq!(r.str().map_err(|e| e.reason_code()), Err("truncated"));
    }
}
