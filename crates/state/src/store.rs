//! The [`KvStore`] trait shared by [`crate::RocksStore`] and
//! [`crate::MemStore`].

use crate::{StateError, WriteSet};

/// A key and its value, as returned by scans.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Prefix reserved for the internal column families (`__offsets`,
/// `__meta`); logical store names may not start with it.
pub const RESERVED_PREFIX: &str = "__";

/// The byte-level state of one processor instance: named logical stores of
/// ordered byte keys, plus the input offsets the state corresponds to.
///
/// Keys compare as unsigned byte strings (see [`crate::keys`] for encodings
/// that make that order meaningful). Every store used must have been
/// declared when the implementation was built; any other name is
/// [`StateError::UnknownStore`].
pub trait KvStore: Send + Sync {
    /// The value of `key` in `store`.
    ///
    /// # Errors
    /// [`StateError::UnknownStore`], or a backend error.
    fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;

    /// Entries with from <= key < to, in key order (empty when
    /// `from >= to`).
    ///
    /// # Errors
    /// [`StateError::UnknownStore`], or a backend error.
    fn scan(&self, store: &str, from: &[u8], to: &[u8]) -> Result<Vec<Entry>, StateError>;

    /// At most `limit` entries with from <= key < to, in key order: a slice
    /// of a large store (retention sweeps). The default scans and
    /// truncates; backends override it to stop early.
    ///
    /// # Errors
    /// As [`KvStore::scan`].
    fn scan_limit(
        &self,
        store: &str,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StateError> {
        let mut all = self.scan(store, from, to)?;
        all.truncate(limit);
        Ok(all)
    }

    /// Applies every op of the batch atomically: state and input offsets
    /// together. On error nothing was applied.
    ///
    /// # Errors
    /// [`StateError::UnknownStore`] if any op names an undeclared store, or
    /// a backend error.
    fn write(&self, batch: WriteSet) -> Result<(), StateError>;

    /// The next input offset to read for (topic, partition), as last
    /// written.
    ///
    /// # Errors
    /// A backend error, or [`StateError::Corrupt`] for a malformed stored
    /// offset.
    fn offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StateError>;

    /// Approximate live keys and bytes per declared store, in declaration
    /// order (for metrics).
    ///
    /// # Errors
    /// A backend error.
    fn stats(&self) -> Result<Vec<StoreStats>, StateError>;

    /// Makes every write so far durable, for a clean shutdown. Without it a
    /// crash may roll the store back to an earlier batch (state and offsets
    /// together). The default has nothing to persist.
    ///
    /// # Errors
    /// The backend's error.
    fn flush(&self) -> Result<(), StateError> {
        Ok(())
    }
}

/// Size of one logical store, as far as the backend can tell cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// The logical store.
    pub store: String,
    /// Approximate number of live keys (exact for [`crate::MemStore`];
    /// RocksDB's `estimate-num-keys`, which counts overwrites and deletes
    /// not yet compacted away).
    pub approx_keys: u64,
    /// Approximate bytes of keys and values (exact sum for
    /// [`crate::MemStore`]; live SST data plus memtables for RocksDB).
    pub approx_bytes: u64,
}

/// Checks the declared store names and removes duplicates, keeping the
/// first occurrence's position.
pub(crate) fn declared_stores(stores: &[&str]) -> Result<Vec<String>, StateError> {
    let mut out: Vec<String> = Vec::with_capacity(stores.len());
    for &s in stores {
        if s.is_empty() || s.starts_with(RESERVED_PREFIX) {
            return Err(StateError::InvalidStoreName(s.to_owned()));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}
