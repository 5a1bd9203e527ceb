//! [`Txn`]: a read-your-writes overlay for one processing batch.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::{Entry, KvStore, StateError, WriteSet, retention};

/// Staged writes of one store.
#[derive(Debug, Default, Clone)]
struct Overlay {
    /// Disjoint, non-adjacent half-open ranges `[from, to)` deleted in the
    /// base store, keyed by `from`.
    ranges: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Keys written after the last range covering them: `Some` = put,
    /// `None` = delete. Always wins over `ranges` and the base.
    entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Overlay {
    fn covered(&self, key: &[u8]) -> bool {
        self.ranges
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .is_some_and(|(_, to)| key < to.as_slice())
    }

    fn delete_range(&mut self, from: Vec<u8>, to: Vec<u8>) {
        if from >= to {
            return;
        }
        // Staged entries inside the range are older than it: drop them.
        let mut inside = self.entries.split_off(&from);
        let mut after = inside.split_off(&to);
        self.entries.append(&mut after);

        // Merge with every range that overlaps or touches [from, to).
        let (mut lo, mut hi) = (from, to);
        if let Some((f, t)) = self
            .ranges
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(lo.as_slice())))
            .next_back()
            && t.as_slice() >= lo.as_slice()
        {
            lo = f.clone();
        }
        let absorbed: Vec<Vec<u8>> = self
            .ranges
            .range::<[u8], _>((
                Bound::Included(lo.as_slice()),
                Bound::Included(hi.as_slice()),
            ))
            .map(|(f, _)| f.clone())
            .collect();
        for f in absorbed {
            if let Some(t) = self.ranges.remove(&f)
                && t > hi
            {
                hi = t;
            }
        }
        self.ranges.insert(lo, hi);
    }
}

/// A read-your-writes transaction over a [`KvStore`] for one processing
/// batch.
///
/// Writes are staged in memory; reads see the staged writes on top of the
/// base store, so processing record *k* of a batch sees the effects of
/// records *0..k*. Nothing reaches the store until the caller writes
/// [`Txn::into_write_set`] — after the batch's outputs were acknowledged by
/// Kafka, with the batch's input offsets staged by [`Txn::set_offset`] so
/// that state and offsets land in one atomic write. Dropping a `Txn`
/// discards it.
///
/// Staged writes to an undeclared store are accepted here and refused (as a
/// whole batch) by [`KvStore::write`]; reads of one fail immediately.
pub struct Txn<'a> {
    base: &'a dyn KvStore,
    stores: BTreeMap<String, Overlay>,
    offsets: BTreeMap<(String, i32), i64>,
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("stores", &self.stores)
            .field("offsets", &self.offsets)
            .finish_non_exhaustive()
    }
}

impl<'a> Txn<'a> {
    /// An empty transaction over `base`.
    #[must_use]
    pub fn new(base: &'a dyn KvStore) -> Self {
        Self {
            base,
            stores: BTreeMap::new(),
            offsets: BTreeMap::new(),
        }
    }

    /// The base store.
    #[must_use]
    pub fn base(&self) -> &'a dyn KvStore {
        self.base
    }

    fn overlay(&mut self, store: &str) -> &mut Overlay {
        self.stores.entry(store.to_owned()).or_default()
    }

    /// The value of `key` in `store`, staged writes first.
    ///
    /// # Errors
    /// As [`KvStore::get`].
    pub fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(overlay) = self.stores.get(store) {
            if let Some(staged) = overlay.entries.get(key) {
                return Ok(staged.clone());
            }
            if overlay.covered(key) {
                return Ok(None);
            }
        }
        self.base.get(store, key)
    }

    /// Entries with `from <= key < to` of the base store with the staged
    /// writes applied, in key order.
    ///
    /// # Errors
    /// As [`KvStore::scan`].
    pub fn scan(&self, store: &str, from: &[u8], to: &[u8]) -> Result<Vec<Entry>, StateError> {
        let base = self.base.scan(store, from, to)?;
        let Some(overlay) = self.stores.get(store) else {
            return Ok(base);
        };
        if from >= to {
            return Ok(base);
        }
        let mut staged = overlay
            .entries
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .peekable();
        let mut out = Vec::with_capacity(base.len());
        // Merge two sorted sequences; on equal keys the staged entry wins.
        for (k, v) in base {
            while let Some((sk, sv)) = staged.next_if(|(sk, _)| sk.as_slice() < k.as_slice()) {
                if let Some(sv) = sv {
                    out.push((sk.clone(), sv.clone()));
                }
            }
            if let Some((_, sv)) = staged.next_if(|(sk, _)| sk.as_slice() == k.as_slice()) {
                if let Some(sv) = sv {
                    out.push((k, sv.clone()));
                }
            } else if !overlay.covered(&k) {
                out.push((k, v));
            }
        }
        out.extend(staged.filter_map(|(sk, sv)| sv.as_ref().map(|sv| (sk.clone(), sv.clone()))));
        Ok(out)
    }

    /// The next input offset for (`topic`, `partition`), staged first.
    ///
    /// # Errors
    /// As [`KvStore::offset`].
    pub fn offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StateError> {
        match self.offsets.get(&(topic.to_owned(), partition)) {
            Some(&o) => Ok(Some(o)),
            None => self.base.offset(topic, partition),
        }
    }

    /// Stages `key = value` in `store`.
    pub fn put(&mut self, store: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.overlay(store)
            .entries
            .insert(key.into(), Some(value.into()));
    }

    /// Stages the removal of `key` from `store`.
    pub fn delete(&mut self, store: &str, key: impl Into<Vec<u8>>) {
        self.overlay(store).entries.insert(key.into(), None);
    }

    /// Stages the removal of every key `k` of `store` with `from <= k < to`.
    pub fn delete_range(&mut self, store: &str, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        let (from, to) = (from.into(), to.into());
        if from < to {
            self.overlay(store).delete_range(from, to);
        }
    }

    /// Stages the removal of every whole time bucket `< cutoff_bucket`
    /// ([`retention::drop_buckets_before`]).
    pub fn drop_buckets_before(&mut self, store: &str, cutoff_bucket: i64) {
        if let Some((from, to)) = retention::drop_buckets_before(cutoff_bucket) {
            self.delete_range(store, from, to);
        }
    }

    /// Stages the next input offset for (`topic`, `partition`).
    pub fn set_offset(&mut self, topic: &str, partition: i32, next_offset: i64) {
        self.offsets
            .insert((topic.to_owned(), partition), next_offset);
    }

    /// Whether nothing is staged.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
            && self
                .stores
                .values()
                .all(|o| o.entries.is_empty() && o.ranges.is_empty())
    }

    /// The staged writes as one [`WriteSet`] that, written to the base
    /// store, leaves it in the state this transaction reads: per store the
    /// deleted ranges first, then the puts and deletes staged after them,
    /// then the offsets.
    #[must_use]
    pub fn into_write_set(self) -> WriteSet {
        let mut ws = WriteSet::new();
        for (store, overlay) in self.stores {
            for (from, to) in overlay.ranges {
                ws.delete_range(&store, from, to);
            }
            for (key, value) in overlay.entries {
                match value {
                    Some(value) => ws.put(&store, key, value),
                    None => ws.delete(&store, key),
                };
            }
        }
        for ((topic, partition), next) in self.offsets {
            ws.set_offset(&topic, partition, next);
        }
        ws
    }
}
