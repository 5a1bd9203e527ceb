//! [`MemStore`]: the in-memory twin of [`crate::RocksStore`].

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::store::declared_stores;
use crate::{Entry, KvStore, Op, StateError, StoreStats, WriteSet};

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
struct Inner {
    /// One table per declared store, in declaration order.
    tables: Vec<(String, Table)>,
    offsets: HashMap<(String, i32), i64>,
}

impl Inner {
    fn index(&self, store: &str) -> Result<usize, StateError> {
        self.tables
            .iter()
            .position(|(name, _)| name == store)
            .ok_or_else(|| StateError::UnknownStore(store.to_owned()))
    }
}

/// In-memory [`KvStore`] with exactly the semantics of
/// [`crate::RocksStore`] (same ordering, same `UnknownStore` errors, same
/// atomic batches), for tests and for the in-memory test driver.
///
/// Nothing survives a drop.
#[derive(Debug)]
pub struct MemStore {
    inner: RwLock<Inner>,
}

impl MemStore {
    /// An empty store with the given logical stores.
    ///
    /// # Errors
    /// [`StateError::InvalidStoreName`] for an empty or `__`-prefixed name.
    pub fn new(stores: &[&str]) -> Result<Self, StateError> {
        let tables = declared_stores(stores)?
            .into_iter()
            .map(|name| (name, Table::new()))
            .collect();
        Ok(Self {
            inner: RwLock::new(Inner {
                tables,
                offsets: HashMap::new(),
            }),
        })
    }

    // A panic while holding the lock can only come from allocation failure
    // inside `BTreeMap`; writes validate every store name before touching
    // anything, so the data behind a poisoned lock is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl KvStore for MemStore {
    fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let inner = self.read();
        let i = inner.index(store)?;
        Ok(inner.tables[i].1.get(key).cloned())
    }

    fn scan(&self, store: &str, from: &[u8], to: &[u8]) -> Result<Vec<Entry>, StateError> {
        let inner = self.read();
        let i = inner.index(store)?;
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(inner.tables[i]
            .1
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn write(&self, batch: WriteSet) -> Result<(), StateError> {
        let mut inner = self.write_lock();
        // Resolve every store first so that an unknown name applies nothing.
        let ops = batch.into_ops();
        let mut slots = Vec::with_capacity(ops.len());
        for op in &ops {
            slots.push(op.store().map(|s| inner.index(s)).transpose()?);
        }
        for (op, slot) in ops.into_iter().zip(slots) {
            match (op, slot) {
                (Op::Put { key, value, .. }, Some(i)) => {
                    inner.tables[i].1.insert(key, value);
                }
                (Op::Delete { key, .. }, Some(i)) => {
                    inner.tables[i].1.remove(&key);
                }
                (Op::DeleteRange { from, to, .. }, Some(i)) => {
                    if from < to {
                        let table = &mut inner.tables[i].1;
                        let mut tail = table.split_off(&from);
                        let mut rest = tail.split_off(&to);
                        table.append(&mut rest);
                    }
                }
                (
                    Op::SetOffset {
                        topic,
                        partition,
                        next_offset,
                    },
                    _,
                ) => {
                    inner.offsets.insert((topic, partition), next_offset);
                }
                // `slot` is `Some` exactly for the ops with a store.
                (Op::Put { .. } | Op::Delete { .. } | Op::DeleteRange { .. }, None) => {}
            }
        }
        Ok(())
    }

    fn offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StateError> {
        Ok(self
            .read()
            .offsets
            .get(&(topic.to_owned(), partition))
            .copied())
    }

    fn stats(&self) -> Result<Vec<StoreStats>, StateError> {
        Ok(self
            .read()
            .tables
            .iter()
            .map(|(name, table)| StoreStats {
                store: name.clone(),
                approx_keys: table.len() as u64,
                approx_bytes: table.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum(),
            })
            .collect())
    }
}
