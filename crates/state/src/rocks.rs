//! [`RocksStore`]: the RocksDB-backed [`KvStore`].

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions,
};

use crate::store::declared_stores;
use crate::{Entry, KvStore, Op, StateError, StoreOptions, StoreStats, WriteSet};

/// Column family of the input offsets: key = topic bytes ‖ `0x00` ‖
/// partition (`i32` BE), value = next offset (`i64` BE).
pub const OFFSETS_CF: &str = "__offsets";
/// Column family of the metadata (format version tag).
pub const META_CF: &str = "__meta";
/// Key of the format version tag in [`META_CF`]; value `u32` BE.
pub const FORMAT_VERSION_KEY: &[u8] = b"format_version";
/// The on-disk format this build reads and writes. Bump it when the key or
/// value layout of any store changes; an old directory is then refused with
/// [`StateError::FormatVersion`] and must be rebuilt from the changelogs.
pub const FORMAT_VERSION: u32 = 1;

/// RocksDB-backed [`KvStore`]: one column family per declared logical
/// store, plus `__offsets` and `__meta`.
///
/// Each batch holds the input offsets together with the state they
/// produced, and every column family is flushed atomically, so whatever a
/// crash loses — the batches since the last memtable flush when the WAL is
/// off ([`StoreOptions::wal`], the default), the unsynced end of the WAL
/// when it is on — state and offsets roll back together: the processor
/// resumes from the last stored offsets and recomputes exactly what was
/// lost. A clean close ([`RocksStore::flush`], or dropping the store)
/// persists everything.
pub struct RocksStore {
    db: DB,
    stores: Vec<String>,
    path: PathBuf,
    wal: bool,
    /// Every column family open (declared, internal and found on disk).
    families: Vec<String>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Opens (creating if needed) the state directory at `path` with the
    /// logical `stores` the processor declares.
    ///
    /// Column families found on disk but not declared are opened (RocksDB
    /// requires it) and left untouched, but are not accessible. A fresh
    /// directory is tagged with [`FORMAT_VERSION`].
    ///
    /// # Errors
    /// [`StateError::InvalidStoreName`], [`StateError::InvalidOptions`],
    /// [`StateError::FormatVersion`] for a directory written by another
    /// format, [`StateError::Corrupt`] for a non-empty directory without a
    /// version tag, [`StateError::Io`] / [`StateError::RocksDb`] otherwise
    /// (including a directory already opened by another `RocksStore`).
    pub fn open(
        path: impl AsRef<Path>,
        stores: &[&str],
        options: &StoreOptions,
    ) -> Result<Self, StateError> {
        let path = path.as_ref().to_path_buf();
        let stores = declared_stores(stores)?;
        options.validate()?;
        std::fs::create_dir_all(&path)?;

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(i32::from(options.max_background_jobs));
        // State and offsets must reach disk together even without the WAL.
        db_opts.set_atomic_flush(true);

        // An error here means there is no database yet; a real problem with
        // an existing one resurfaces in `open_cf_descriptors`.
        let existing = DB::list_cf(&db_opts, &path).unwrap_or_default();
        let mut cf_names: Vec<String> = vec![
            rocksdb::DEFAULT_COLUMN_FAMILY_NAME.to_owned(),
            OFFSETS_CF.to_owned(),
            META_CF.to_owned(),
        ];
        for name in stores.iter().chain(&existing) {
            if !cf_names.contains(name) {
                cf_names.push(name.clone());
            }
        }

        let cf_opts = column_family_options(options);
        let descriptors = cf_names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_opts.clone()));
        let db = DB::open_cf_descriptors(&db_opts, &path, descriptors)?;
        let this = Self {
            db,
            stores,
            path,
            wal: options.wal,
            families: cf_names.clone(),
        };
        this.check_format_version(&cf_names)?;
        Ok(this)
    }

    /// The state directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The declared logical stores, in declaration order.
    #[must_use]
    pub fn stores(&self) -> &[String] {
        &self.stores
    }

    fn check_format_version(&self, cf_names: &[String]) -> Result<(), StateError> {
        let meta = self.internal_cf(META_CF)?;
        match self.db.get_pinned_cf(meta, FORMAT_VERSION_KEY)? {
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(&*bytes)
                    .map(u32::from_be_bytes)
                    .map_err(|_| StateError::Corrupt {
                        store: META_CF.to_owned(),
                        reason: format!("format version tag of {} bytes", bytes.len()),
                    })?;
                if found == FORMAT_VERSION {
                    Ok(())
                } else {
                    Err(StateError::FormatVersion {
                        found,
                        expected: FORMAT_VERSION,
                    })
                }
            }
            None => {
                // Untagged: fresh (or created but crashed before tagging)
                // when every column family is empty; anything else is state
                // of unknown format.
                for name in cf_names {
                    let cf = self.internal_cf(name)?;
                    let mut it = self.db.raw_iterator_cf(cf);
                    it.seek_to_first();
                    it.status()?;
                    if it.valid() {
                        return Err(StateError::Corrupt {
                            store: META_CF.to_owned(),
                            reason: format!(
                                "no format version tag, but column family `{name}` holds data"
                            ),
                        });
                    }
                }
                let mut opts = WriteOptions::default();
                opts.set_sync(true);
                let mut batch = WriteBatch::default();
                batch.put_cf(meta, FORMAT_VERSION_KEY, FORMAT_VERSION.to_be_bytes());
                Ok(self.db.write_opt(batch, &opts)?)
            }
        }
    }

    fn internal_cf(&self, name: &str) -> Result<&ColumnFamily, StateError> {
        self.db.cf_handle(name).ok_or_else(|| StateError::Corrupt {
            store: name.to_owned(),
            reason: "column family missing after open".to_owned(),
        })
    }

    fn store_cf(&self, store: &str) -> Result<&ColumnFamily, StateError> {
        if !self.stores.iter().any(|s| s == store) {
            return Err(StateError::UnknownStore(store.to_owned()));
        }
        self.internal_cf(store)
    }

    fn int_property(&self, cf: &ColumnFamily, name: &str) -> Result<u64, StateError> {
        Ok(self.db.property_int_value_cf(cf, name)?.unwrap_or(0))
    }
}

fn column_family_options(options: &StoreOptions) -> Options {
    let mut table = BlockBasedOptions::default();
    if options.block_cache_mb == 0 {
        table.disable_cache();
    } else {
        table.set_block_cache(&Cache::new_lru_cache(options.block_cache_bytes()));
    }
    let mut cf = Options::default();
    cf.set_compression_type(DBCompressionType::Lz4);
    cf.set_write_buffer_size(options.write_buffer_bytes());
    cf.set_block_based_table_factory(&table);
    cf
}

/// `topic ‖ 0x00 ‖ partition (i32 BE)`. Kafka topic names never contain
/// `0x00`, and the fixed-width partition makes the split unambiguous anyway.
pub(crate) fn offset_key(topic: &str, partition: i32) -> Vec<u8> {
    let mut key = Vec::with_capacity(topic.len() + 5);
    key.extend_from_slice(topic.as_bytes());
    key.push(0);
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

impl KvStore for RocksStore {
    fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let cf = self.store_cf(store)?;
        Ok(self.db.get_pinned_cf(cf, key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, store: &str, from: &[u8], to: &[u8]) -> Result<Vec<Entry>, StateError> {
        self.scan_limit(store, from, to, usize::MAX)
    }

    fn scan_limit(
        &self,
        store: &str,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StateError> {
        let cf = self.store_cf(store)?;
        if from >= to {
            return Ok(Vec::new());
        }
        let mut read = ReadOptions::default();
        read.set_iterate_upper_bound(to);
        self.db
            .iterator_cf_opt(cf, read, IteratorMode::From(from, Direction::Forward))
            .take(limit)
            .map(|item| {
                item.map(|(k, v)| (k.into_vec(), v.into_vec()))
                    .map_err(StateError::from)
            })
            .collect()
    }

    fn write(&self, batch: WriteSet) -> Result<(), StateError> {
        let offsets = self.internal_cf(OFFSETS_CF)?;
        // Sized up front: a batch of thousands of puts otherwise grows its
        // buffer by copying it again and again. Each record costs its key
        // and value plus a tag, a column family id and two varint lengths.
        let bytes: usize = batch
            .ops()
            .iter()
            .map(|op| match op {
                Op::Put { key, value, .. } => key.len() + value.len(),
                Op::Delete { key, .. } => key.len(),
                Op::DeleteRange { from, to, .. } => from.len() + to.len(),
                Op::SetOffset { topic, .. } => topic.len() + 16,
            } + 16)
            .sum();
        let mut wb = WriteBatch::with_capacity_bytes(bytes + 12);
        for op in batch.into_ops() {
            match op {
                Op::Put { store, key, value } => wb.put_cf(self.store_cf(&store)?, key, value),
                Op::Delete { store, key } => wb.delete_cf(self.store_cf(&store)?, key),
                Op::DeleteRange { store, from, to } => {
                    let cf = self.store_cf(&store)?;
                    // RocksDB rejects a reversed range; an empty one is a no-op.
                    if from < to {
                        wb.delete_range_cf(cf, from, to);
                    }
                }
                Op::SetOffset {
                    topic,
                    partition,
                    next_offset,
                } => wb.put_cf(
                    offsets,
                    offset_key(&topic, partition),
                    next_offset.to_be_bytes(),
                ),
            }
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        opts.disable_wal(!self.wal);
        Ok(self.db.write_opt(wb, &opts)?)
    }

    fn offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StateError> {
        let cf = self.internal_cf(OFFSETS_CF)?;
        let Some(bytes) = self.db.get_pinned_cf(cf, offset_key(topic, partition))? else {
            return Ok(None);
        };
        <[u8; 8]>::try_from(&*bytes)
            .map(|b| Some(i64::from_be_bytes(b)))
            .map_err(|_| StateError::Corrupt {
                store: OFFSETS_CF.to_owned(),
                reason: format!(
                    "offset of {topic}/{partition} has {} bytes, expected 8",
                    bytes.len()
                ),
            })
    }

    /// Flushes every column family's memtable to disk, atomically: a
    /// durability point (shutdown, a partition handed over). Without it, a
    /// crash replays from the last automatic flush.
    ///
    /// # Errors
    /// [`StateError::RocksDb`].
    fn flush(&self) -> Result<(), StateError> {
        if self.wal {
            self.db.flush_wal(true)?;
        }
        let cfs: Vec<&ColumnFamily> = self
            .families
            .iter()
            .filter_map(|name| self.db.cf_handle(name))
            .collect();
        Ok(self
            .db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())?)
    }

    fn stats(&self) -> Result<Vec<StoreStats>, StateError> {
        self.stores
            .iter()
            .map(|store| {
                let cf = self.internal_cf(store)?;
                Ok(StoreStats {
                    store: store.clone(),
                    approx_keys: self.int_property(cf, "rocksdb.estimate-num-keys")?,
                    approx_bytes: self
                        .int_property(cf, "rocksdb.estimate-live-data-size")?
                        .saturating_add(self.int_property(cf, "rocksdb.cur-size-all-mem-tables")?),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> StoreOptions {
        StoreOptions {
            write_buffer_mb: 1,
            block_cache_mb: 1,
            max_background_jobs: 1,
            wal: false,
        }
    }

    #[test]
    fn format_version_mismatch_is_refused() -> Result<(), StateError> {
        let dir = tempfile::tempdir()?;
        {
            let store = RocksStore::open(dir.path(), &["a"], &small())?;
            let meta = store.internal_cf(META_CF)?;
            store
                .db
                .put_cf(meta, FORMAT_VERSION_KEY, 2u32.to_be_bytes())?;
        }
        let err = RocksStore::open(dir.path(), &["a"], &small()).err();
        assert_eq!(
            err,
            Some(StateError::FormatVersion {
                found: 2,
                expected: FORMAT_VERSION
            })
        );
        Ok(())
    }

    #[test]
    fn fresh_directory_is_tagged_and_reopens() -> Result<(), StateError> {
        let dir = tempfile::tempdir()?;
        {
            let store = RocksStore::open(dir.path(), &["a"], &small())?;
            let meta = store.internal_cf(META_CF)?;
            let tag = store.db.get_cf(meta, FORMAT_VERSION_KEY)?;
            assert_eq!(tag, Some(FORMAT_VERSION.to_be_bytes().to_vec()));
        }
        RocksStore::open(dir.path(), &["a", "b"], &small())?;
        Ok(())
    }

    #[test]
    fn untagged_state_is_refused() -> Result<(), StateError> {
        let dir = tempfile::tempdir()?;
        {
            let store = RocksStore::open(dir.path(), &["a"], &small())?;
            let meta = store.internal_cf(META_CF)?;
            store.db.delete_cf(meta, FORMAT_VERSION_KEY)?;
            let mut ws = WriteSet::new();
            ws.put("a", b"k".to_vec(), b"v".to_vec());
            store.write(ws)?;
        }
        let err = RocksStore::open(dir.path(), &["a"], &small()).err();
        assert!(
            matches!(err, Some(StateError::Corrupt { ref store, .. }) if store == META_CF),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn undeclared_column_family_survives_but_is_hidden() -> Result<(), StateError> {
        let dir = tempfile::tempdir()?;
        {
            let store = RocksStore::open(dir.path(), &["a", "old"], &small())?;
            let mut ws = WriteSet::new();
            ws.put("old", b"k".to_vec(), b"v".to_vec());
            store.write(ws)?;
        }
        {
            let store = RocksStore::open(dir.path(), &["a"], &small())?;
            assert_eq!(
                store.get("old", b"k"),
                Err(StateError::UnknownStore("old".to_owned()))
            );
        }
        let store = RocksStore::open(dir.path(), &["a", "old"], &small())?;
        assert_eq!(store.get("old", b"k")?, Some(b"v".to_vec()));
        Ok(())
    }

    #[test]
    fn offset_key_layout() {
        assert_eq!(offset_key("t", 2), vec![b't', 0, 0, 0, 0, 2]);
    }
}
