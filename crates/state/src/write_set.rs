//! [`WriteSet`]: the unit of atomic writes.

use crate::retention;

/// One operation of a [`WriteSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets `key` to `value` in `store`.
    Put {
        /// The logical store.
        store: String,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Removes `key` from `store` (no effect when absent).
    Delete {
        /// The logical store.
        store: String,
        /// The key.
        key: Vec<u8>,
    },
    /// Removes every key `k` of `store` with `from <= k < to` (no effect
    /// when `from >= to`).
    DeleteRange {
        /// The logical store.
        store: String,
        /// Inclusive lower bound.
        from: Vec<u8>,
        /// Exclusive upper bound.
        to: Vec<u8>,
    },
    /// Records `next_offset` as the next input offset to read for
    /// (`topic`, `partition`).
    SetOffset {
        /// The input topic.
        topic: String,
        /// The input partition.
        partition: i32,
        /// The offset of the next record to process.
        next_offset: i64,
    },
}

impl Op {
    /// The store this op writes to, `None` for [`Op::SetOffset`].
    #[must_use]
    pub fn store(&self) -> Option<&str> {
        match self {
            Self::Put { store, .. }
            | Self::Delete { store, .. }
            | Self::DeleteRange { store, .. } => Some(store),
            Self::SetOffset { .. } => None,
        }
    }
}

/// An ordered list of writes applied atomically by
/// [`crate::KvStore::write`]: either every op takes effect or none does.
///
/// Ops apply in order, so a `put` after a `delete_range` covering its key
/// survives, and a `delete_range` after a `put` removes it. Offsets go in the
/// same set as the state they produced, which makes a crash replay exactly
/// the records whose effects were not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    ops: Vec<Op>,
}

impl WriteSet {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` in `store`.
    pub fn put(
        &mut self,
        store: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.ops.push(Op::Put {
            store: store.to_owned(),
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Removes `key` from `store`.
    pub fn delete(&mut self, store: &str, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete {
            store: store.to_owned(),
            key: key.into(),
        });
        self
    }

    /// Removes every key `k` of `store` with `from <= k < to`.
    pub fn delete_range(
        &mut self,
        store: &str,
        from: impl Into<Vec<u8>>,
        to: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.ops.push(Op::DeleteRange {
            store: store.to_owned(),
            from: from.into(),
            to: to.into(),
        });
        self
    }

    /// Removes every whole time bucket `< cutoff_bucket` of a time-bucketed
    /// `store` ([`retention::drop_buckets_before`]); nothing when the range
    /// is empty.
    pub fn drop_buckets_before(&mut self, store: &str, cutoff_bucket: i64) -> &mut Self {
        if let Some((from, to)) = retention::drop_buckets_before(cutoff_bucket) {
            self.delete_range(store, from, to);
        }
        self
    }

    /// Records the next input offset to read for (`topic`, `partition`).
    pub fn set_offset(&mut self, topic: &str, partition: i32, next_offset: i64) -> &mut Self {
        self.ops.push(Op::SetOffset {
            topic: topic.to_owned(),
            partition,
            next_offset,
        });
        self
    }

    /// Appends every op of `other` after the ops of `self`.
    pub fn extend(&mut self, other: WriteSet) -> &mut Self {
        self.ops.extend(other.ops);
        self
    }

    /// Number of ops.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no ops.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The ops, in application order.
    #[must_use]
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The ops, by value, in application order.
    #[must_use]
    pub fn into_ops(self) -> Vec<Op> {
        self.ops
    }
}
