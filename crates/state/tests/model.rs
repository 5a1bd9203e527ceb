//! Model-based test: random sequences of writes and queries applied to a
//! `RocksStore` (reopened at random points), a `MemStore` and a plain
//! `BTreeMap` model must answer every query identically.

use std::collections::BTreeMap;
use std::path::Path;

use epitrace_state::{Entry, KvStore, MemStore, RocksStore, StateError, StoreOptions, WriteSet};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const STORES: [&str; 2] = ["a", "b"];
const UNKNOWN: &str = "zz";
/// Larger than every generated key (keys have at most 3 bytes).
const TOP: &[u8] = &[0xff, 0xff, 0xff, 0xff];

#[derive(Debug, Clone)]
enum WOp {
    Put(&'static str, Vec<u8>, Vec<u8>),
    Delete(&'static str, Vec<u8>),
    DeleteRange(&'static str, Vec<u8>, Vec<u8>),
    SetOffset(&'static str, i32, i64),
}

#[derive(Debug, Clone)]
enum Step {
    Write(Vec<WOp>),
    Get(&'static str, Vec<u8>),
    Scan(&'static str, Vec<u8>, Vec<u8>),
    Offset(&'static str, i32),
    Stats,
    Reopen,
}

/// Keys from a 4-letter alphabet, 0..=3 bytes: 85 keys, so puts, deletes
/// and ranges collide often; 0x00 and 0xff exercise the byte-order edges.
fn key() -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![Just(0u8), Just(1), Just(2), Just(0xff)], 0..=3)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..4)
}

fn write_store() -> impl Strategy<Value = &'static str> {
    prop_oneof![20 => Just(STORES[0]), 20 => Just(STORES[1]), 1 => Just(UNKNOWN)]
}

fn read_store() -> impl Strategy<Value = &'static str> {
    prop_oneof![8 => Just(STORES[0]), 8 => Just(STORES[1]), 1 => Just(UNKNOWN)]
}

fn topic() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("t1"), Just("t2")]
}

fn wop() -> impl Strategy<Value = WOp> {
    prop_oneof![
        4 => (write_store(), key(), value()).prop_map(|(s, k, v)| WOp::Put(s, k, v)),
        2 => (write_store(), key()).prop_map(|(s, k)| WOp::Delete(s, k)),
        1 => (write_store(), key(), key()).prop_map(|(s, f, t)| WOp::DeleteRange(s, f, t)),
        1 => (topic(), 0..3i32, any::<i64>()).prop_map(|(t, p, o)| WOp::SetOffset(t, p, o)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => vec(wop(), 1..6).prop_map(Step::Write),
        3 => (read_store(), key()).prop_map(|(s, k)| Step::Get(s, k)),
        3 => (read_store(), key(), key()).prop_map(|(s, f, t)| Step::Scan(s, f, t)),
        1 => (topic(), 0..3i32).prop_map(|(t, p)| Step::Offset(t, p)),
        1 => Just(Step::Stats),
        1 => Just(Step::Reopen),
    ]
}

/// The reference: plain maps, with the documented semantics spelt out.
#[derive(Debug, Default)]
struct Model {
    tables: BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>,
    offsets: BTreeMap<(&'static str, i32), i64>,
}

impl Model {
    fn new() -> Self {
        Self {
            tables: STORES.iter().map(|&s| (s, BTreeMap::new())).collect(),
            offsets: BTreeMap::new(),
        }
    }

    fn table(&self, store: &str) -> Result<&BTreeMap<Vec<u8>, Vec<u8>>, StateError> {
        self.tables
            .get(store)
            .ok_or_else(|| StateError::UnknownStore(store.to_owned()))
    }

    fn apply(&mut self, ops: &[WOp]) -> Result<(), StateError> {
        // All or nothing: the first unknown store fails the whole batch.
        for op in ops {
            match op {
                WOp::Put(s, ..) | WOp::Delete(s, _) | WOp::DeleteRange(s, ..) => {
                    self.table(s)?;
                }
                WOp::SetOffset(..) => {}
            }
        }
        for op in ops {
            match op {
                WOp::Put(s, k, v) => {
                    self.tables
                        .entry(s)
                        .or_default()
                        .insert(k.clone(), v.clone());
                }
                WOp::Delete(s, k) => {
                    self.tables.entry(s).or_default().remove(k);
                }
                WOp::DeleteRange(s, f, t) => {
                    self.tables
                        .entry(s)
                        .or_default()
                        .retain(|k, _| !(f <= k && k < t));
                }
                WOp::SetOffset(t, p, o) => {
                    self.offsets.insert((t, *p), *o);
                }
            }
        }
        Ok(())
    }

    fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.table(store)?.get(key).cloned())
    }

    fn scan(&self, store: &str, from: &[u8], to: &[u8]) -> Result<Vec<Entry>, StateError> {
        Ok(self
            .table(store)?
            .iter()
            .filter(|(k, _)| from <= k.as_slice() && k.as_slice() < to)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

fn write_set(ops: &[WOp]) -> WriteSet {
    let mut ws = WriteSet::new();
    for op in ops {
        match op {
            WOp::Put(s, k, v) => ws.put(s, k.clone(), v.clone()),
            WOp::Delete(s, k) => ws.delete(s, k.clone()),
            WOp::DeleteRange(s, f, t) => ws.delete_range(s, f.clone(), t.clone()),
            WOp::SetOffset(t, p, o) => ws.set_offset(t, *p, *o),
        };
    }
    ws
}

fn small_options() -> StoreOptions {
    StoreOptions {
        write_buffer_mb: 1,
        block_cache_mb: 1,
        max_background_jobs: 1,
        ..StoreOptions::default()
    }
}

fn open(path: &Path) -> Result<RocksStore, StateError> {
    RocksStore::open(path, &STORES, &small_options())
}

fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir()?;
    let mut rocks = Some(open(dir.path())?);
    let mem = MemStore::new(&STORES)?;
    let mut model = Model::new();

    for (i, step) in steps.iter().enumerate() {
        let Some(db) = rocks.as_ref() else {
            return Err(TestCaseError::fail("rocks store missing"));
        };
        match step {
            Step::Write(ops) => {
                let expected = model.apply(ops);
                prop_assert_eq!(
                    &db.write(write_set(ops)),
                    &expected,
                    "step {}: rocks write",
                    i
                );
                prop_assert_eq!(
                    &mem.write(write_set(ops)),
                    &expected,
                    "step {}: mem write",
                    i
                );
            }
            Step::Get(s, k) => {
                let expected = model.get(s, k);
                prop_assert_eq!(&db.get(s, k), &expected, "step {}: rocks get", i);
                prop_assert_eq!(&mem.get(s, k), &expected, "step {}: mem get", i);
            }
            Step::Scan(s, f, t) => {
                let expected = model.scan(s, f, t);
                prop_assert_eq!(&db.scan(s, f, t), &expected, "step {}: rocks scan", i);
                prop_assert_eq!(&mem.scan(s, f, t), &expected, "step {}: mem scan", i);
            }
            Step::Offset(t, p) => {
                let expected = Ok(model.offsets.get(&(*t, *p)).copied());
                prop_assert_eq!(&db.offset(t, *p), &expected, "step {}: rocks offset", i);
                prop_assert_eq!(&mem.offset(t, *p), &expected, "step {}: mem offset", i);
            }
            Step::Stats => {
                let names = |stats: Vec<epitrace_state::StoreStats>| -> Vec<String> {
                    stats.into_iter().map(|s| s.store).collect()
                };
                let expected: Vec<String> = STORES.iter().map(|s| (*s).to_owned()).collect();
                prop_assert_eq!(names(db.stats()?), expected.clone());
                let exact: Vec<(u64, u64)> = STORES
                    .iter()
                    .map(|s| {
                        let t = &model.tables[s];
                        let bytes = t.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
                        (t.len() as u64, bytes)
                    })
                    .collect();
                let mem_stats = mem.stats()?;
                let got: Vec<(u64, u64)> = mem_stats
                    .iter()
                    .map(|s| (s.approx_keys, s.approx_bytes))
                    .collect();
                prop_assert_eq!(names(mem_stats), expected);
                prop_assert_eq!(got, exact);
            }
            Step::Reopen => {
                drop(rocks.take());
                rocks = Some(open(dir.path())?);
            }
        }
    }

    // Final state, after one more reopen: every store and offset agrees.
    drop(rocks.take());
    let db = open(dir.path())?;
    for s in STORES {
        let expected = model.scan(s, &[], TOP);
        prop_assert_eq!(&db.scan(s, &[], TOP), &expected, "final rocks {}", s);
        prop_assert_eq!(&mem.scan(s, &[], TOP), &expected, "final mem {}", s);
    }
    for ((t, p), o) in &model.offsets {
        prop_assert_eq!(db.offset(t, *p)?, Some(*o));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/model.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn rocks_mem_and_model_agree(steps in vec(step(), 1..60)) {
        run(&steps)?;
    }
}
