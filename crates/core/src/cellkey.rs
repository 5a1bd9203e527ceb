//! Hierarchical cell keys: an order of H3 cells in which a cell and all its
//! descendants form one contiguous range (DESIGN §4).
//!
//! An H3 cell index stores, below a header (mode, resolution), a 7-bit base
//! cell and fifteen 3-bit digits; digits past the cell's resolution are 7
//! ("unused"), and a valid cell never uses 7 for a digit it does use. The
//! [`CellKey`] keeps exactly those 52 bits — base cell, then digits 1..15 — and
//! drops the header. Hence:
//!
//! - the key is unique per cell, whatever its resolution, and the resolution
//!   can be read back (count the trailing 7s);
//! - every descendant of a cell at resolution `r` shares its first `r` digits
//!   and has smaller-or-equal digits after them, so the descendants are
//!   exactly the keys in `[key with digits r+1..15 set to 0, key]`, and the
//!   cell is the last key of its own range;
//! - an ancestor at resolution `a` is the key with digits `a+1..15` set to 7:
//!   a point lookup.
//!
//! Stored big-endian, the keys sort the same way as bytes, so a store scans
//! "this cell and everything inside it" as one range, and "everything that
//! contains this cell" as a handful of gets.

use std::fmt;
use std::ops::RangeInclusive;

use epitrace_model::Cell;

use crate::error::CoreError;

/// Bits of the key: base cell (7) + 15 digits (3 each).
const KEY_BITS: u32 = 52;
const KEY_MASK: u64 = (1 << KEY_BITS) - 1;
/// H3 index mode for cells, at bits 59..63.
const CELL_MODE: u64 = 1 << 59;
const RES_SHIFT: u32 = 52;

/// A cell in hierarchical order. See the module docs for the layout.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey(u64);

/// Mask of the digits finer than `res` (digits `res+1..=15`).
const fn finer_digits_mask(res: u8) -> u64 {
    let bits = 3 * (15 - res as u32);
    (1u64 << bits) - 1
}

impl CellKey {
    /// Length of [`CellKey::to_be_bytes`].
    pub const LEN: usize = 8;

    /// The key of a cell.
    #[must_use]
    pub fn from_cell(cell: Cell) -> Self {
        Self(cell.raw() & KEY_MASK)
    }

    /// The cell this key stands for.
    ///
    /// # Errors
    /// [`CoreError::InvalidCellKey`] when the bits are not a valid cell's
    /// (corrupt stored state).
    pub fn to_cell(self) -> Result<Cell, CoreError> {
        if self.0 > KEY_MASK {
            return Err(CoreError::InvalidCellKey(self.0));
        }
        let raw = CELL_MODE | (u64::from(self.resolution()) << RES_SHIFT) | self.0;
        Cell::new(raw).map_err(|_| CoreError::InvalidCellKey(self.0))
    }

    /// The resolution (0..=15) of the cell this key stands for.
    #[must_use]
    pub fn resolution(self) -> u8 {
        let mut res = 15u8;
        while res > 0 && (self.0 >> (3 * u32::from(15 - res))) & 7 == 7 {
            res -= 1;
        }
        res
    }

    /// The keys of this cell and all its descendants, as one inclusive range
    /// (the cell itself is the upper end).
    #[must_use]
    pub fn descendants(self) -> RangeInclusive<Self> {
        let mask = finer_digits_mask(self.resolution());
        Self(self.0 & !mask)..=self
    }

    /// Whether `other` is this cell or one of its descendants.
    #[must_use]
    pub fn contains(self, other: Self) -> bool {
        self.descendants().contains(&other)
    }

    /// Whether one of the two cells equals or contains the other.
    #[must_use]
    pub fn co_located(self, other: Self) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// The ancestor at resolution `res`, or `None` when `res` is finer than
    /// this cell (the cell itself when equal).
    #[must_use]
    pub fn ancestor(self, res: u8) -> Option<Self> {
        (res <= self.resolution()).then(|| Self(self.0 | finer_digits_mask(res)))
    }

    /// The strict ancestors from resolution `res - 1` up to `min_res`
    /// (nothing when `min_res` is not coarser than the cell).
    pub fn ancestors(self, min_res: u8) -> impl Iterator<Item = Self> {
        let res = self.resolution();
        (min_res..res)
            .rev()
            .map(move |r| Self(self.0 | finer_digits_mask(r)))
    }

    /// Big-endian bytes: byte order equals key order.
    #[must_use]
    pub const fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Reads [`CellKey::to_be_bytes`] back.
    ///
    /// # Errors
    /// [`CoreError::InvalidCellKey`] when bits above the 52 key bits are set.
    pub fn from_be_bytes(bytes: [u8; 8]) -> Result<Self, CoreError> {
        let raw = u64::from_be_bytes(bytes);
        if raw > KEY_MASK {
            return Err(CoreError::InvalidCellKey(raw));
        }
        Ok(Self(raw))
    }

    /// The raw 52-bit value.
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.0
    }
}

impl From<Cell> for CellKey {
    fn from(cell: Cell) -> Self {
        Self::from_cell(cell)
    }
}

impl fmt::Debug for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CellKey({:013x}/r{})", self.0, self.resolution())
    }
}
