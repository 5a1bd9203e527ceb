//! `Txn` property test: over a store with random content, after random
//! staged ops, the transaction reads exactly like the model "base + staged",
//! the base is untouched until the write set is written, and writing
//! `into_write_set()` makes the store equal to that model.

use std::collections::BTreeMap;

use epitrace_state::{
    Entry, KvStore, MemStore, RocksStore, StateError, StoreOptions, Txn, WriteSet,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const STORES: [&str; 2] = ["a", "b"];
const TOP: &[u8] = &[0xff, 0xff, 0xff, 0xff];

/// Initial entries and offsets of the base store.
type Initial = (
    Vec<(&'static str, Vec<u8>, Vec<u8>)>,
    Vec<(&'static str, i32, i64)>,
);

type Tables = BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Clone)]
enum Step {
    Put(&'static str, Vec<u8>, Vec<u8>),
    Delete(&'static str, Vec<u8>),
    DeleteRange(&'static str, Vec<u8>, Vec<u8>),
    SetOffset(&'static str, i32, i64),
    Get(&'static str, Vec<u8>),
    Scan(&'static str, Vec<u8>, Vec<u8>),
    Offset(&'static str, i32),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![Just(0u8), Just(1), Just(2), Just(0xff)], 0..=3)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..4)
}

fn store() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(STORES[0]), Just(STORES[1])]
}

fn read_store() -> impl Strategy<Value = &'static str> {
    prop_oneof![8 => store(), 1 => Just("zz")]
}

fn topic() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("t1"), Just("t2")]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (store(), key(), value()).prop_map(|(s, k, v)| Step::Put(s, k, v)),
        2 => (store(), key()).prop_map(|(s, k)| Step::Delete(s, k)),
        2 => (store(), key(), key()).prop_map(|(s, f, t)| Step::DeleteRange(s, f, t)),
        1 => (topic(), 0..2i32, any::<i64>()).prop_map(|(t, p, o)| Step::SetOffset(t, p, o)),
        3 => (read_store(), key()).prop_map(|(s, k)| Step::Get(s, k)),
        3 => (read_store(), key(), key()).prop_map(|(s, f, t)| Step::Scan(s, f, t)),
        1 => (topic(), 0..2i32).prop_map(|(t, p)| Step::Offset(t, p)),
    ]
}

/// Initial content: entries plus offsets, written in one batch.
fn initial() -> impl Strategy<Value = Initial> {
    (
        vec((store(), key(), value()), 0..40),
        vec((topic(), 0..2i32, any::<i64>()), 0..3),
    )
}

fn model_scan(
    tables: &Tables,
    store: &str,
    from: &[u8],
    to: &[u8],
) -> Result<Vec<Entry>, StateError> {
    let t = tables
        .get(store)
        .ok_or_else(|| StateError::UnknownStore(store.to_owned()))?;
    Ok(t.iter()
        .filter(|(k, _)| from <= k.as_slice() && k.as_slice() < to)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

fn run(base: &dyn KvStore, init: &Initial, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut tables: Tables = STORES.iter().map(|&s| (s, BTreeMap::new())).collect();
    let mut offsets: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    let mut ws = WriteSet::new();
    for (s, k, v) in &init.0 {
        ws.put(s, k.clone(), v.clone());
        tables.entry(s).or_default().insert(k.clone(), v.clone());
    }
    for (t, p, o) in &init.1 {
        ws.set_offset(t, *p, *o);
        offsets.insert((t, *p), *o);
    }
    base.write(ws)?;
    let base_tables = tables.clone();
    let base_offsets = offsets.clone();

    let mut txn = Txn::new(base);
    prop_assert!(txn.is_empty());
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Put(s, k, v) => {
                txn.put(s, k.clone(), v.clone());
                tables.entry(s).or_default().insert(k.clone(), v.clone());
            }
            Step::Delete(s, k) => {
                txn.delete(s, k.clone());
                tables.entry(s).or_default().remove(k);
            }
            Step::DeleteRange(s, f, t) => {
                txn.delete_range(s, f.clone(), t.clone());
                tables
                    .entry(s)
                    .or_default()
                    .retain(|k, _| !(f <= k && k < t));
            }
            Step::SetOffset(t, p, o) => {
                txn.set_offset(t, *p, *o);
                offsets.insert((t, *p), *o);
            }
            Step::Get(s, k) => {
                let expected = match tables.get(s) {
                    Some(t) => Ok(t.get(k).cloned()),
                    None => Err(StateError::UnknownStore((*s).to_owned())),
                };
                prop_assert_eq!(txn.get(s, k), expected, "step {}: get", i);
            }
            Step::Scan(s, f, t) => {
                prop_assert_eq!(
                    txn.scan(s, f, t),
                    model_scan(&tables, s, f, t),
                    "step {}: scan",
                    i
                );
            }
            Step::Offset(t, p) => {
                prop_assert_eq!(
                    txn.offset(t, *p)?,
                    offsets.get(&(*t, *p)).copied(),
                    "step {}: offset",
                    i
                );
            }
        }
    }

    // Nothing reached the base store yet.
    for s in STORES {
        prop_assert_eq!(
            base.scan(s, &[], TOP),
            model_scan(&base_tables, s, &[], TOP)
        );
    }
    for ((t, p), o) in &base_offsets {
        prop_assert_eq!(base.offset(t, *p)?, Some(*o));
    }

    // The write set turns the base into the model.
    base.write(txn.into_write_set())?;
    for s in STORES {
        prop_assert_eq!(
            base.scan(s, &[], TOP),
            model_scan(&tables, s, &[], TOP),
            "final {}",
            s
        );
    }
    for t in ["t1", "t2"] {
        for p in 0..2 {
            prop_assert_eq!(base.offset(t, p)?, offsets.get(&(t, p)).copied());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/txn.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn txn_over_mem_store_matches_model(init in initial(), steps in vec(step(), 1..60)) {
        let base = MemStore::new(&STORES)?;
        run(&base, &init, &steps)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/txn.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn txn_over_rocks_store_matches_model(init in initial(), steps in vec(step(), 1..60)) {
        let dir = tempfile::tempdir()?;
        let options = StoreOptions { write_buffer_mb: 1, block_cache_mb: 1, max_background_jobs: 1, ..StoreOptions::default() };
        let base = RocksStore::open(dir.path(), &STORES, &options)?;
        run(&base, &init, &steps)?;
    }
}
