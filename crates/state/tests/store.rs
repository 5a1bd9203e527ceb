//! Behaviour every `KvStore` shares, checked on both backends.

use epitrace_state::keys::{KeyBuilder, KeyReader, prefix_end};
use epitrace_state::{
    KvStore, MemStore, RocksStore, StateError, StoreOptions, Txn, WriteSet, retention,
};
use tempfile::TempDir;

fn small() -> StoreOptions {
    StoreOptions {
        write_buffer_mb: 1,
        block_cache_mb: 1,
        max_background_jobs: 1,
        ..StoreOptions::default()
    }
}

/// Runs `check` on a fresh `MemStore` and a fresh `RocksStore`.
fn both(
    stores: &[&str],
    check: impl Fn(&dyn KvStore) -> Result<(), StateError>,
) -> Result<(), StateError> {
    check(&MemStore::new(stores)?)?;
    let dir = TempDir::new()?;
    check(&RocksStore::open(dir.path(), stores, &small())?)
}

fn kv(k: &[u8], v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (k.to_vec(), v.to_vec())
}

#[test]
fn state_and_offsets_are_written_together() -> Result<(), StateError> {
    both(&["s"], |db| {
        let mut ok = WriteSet::new();
        ok.put("s", b"k".to_vec(), b"1".to_vec())
            .set_offset("in", 0, 10);
        db.write(ok)?;
        assert_eq!(db.get("s", b"k")?, Some(b"1".to_vec()));
        assert_eq!(db.offset("in", 0)?, Some(10));

        // One bad op anywhere: neither the state nor the offset moves.
        let mut bad = WriteSet::new();
        bad.put("s", b"k".to_vec(), b"2".to_vec())
            .set_offset("in", 0, 11)
            .delete("nope", b"k".to_vec());
        assert_eq!(
            db.write(bad),
            Err(StateError::UnknownStore("nope".to_owned()))
        );
        assert_eq!(db.get("s", b"k")?, Some(b"1".to_vec()));
        assert_eq!(db.offset("in", 0)?, Some(10));
        assert_eq!(db.offset("in", 1)?, None);
        assert_eq!(db.offset("other", 0)?, None);
        Ok(())
    })
}

#[test]
fn state_and_offsets_survive_reopen_together() -> Result<(), StateError> {
    let dir = TempDir::new()?;
    {
        let db = RocksStore::open(dir.path(), &["s"], &small())?;
        for i in 0..100i64 {
            let mut ws = WriteSet::new();
            ws.put("s", b"n".to_vec(), i.to_be_bytes().to_vec())
                .set_offset("in", 3, i + 1);
            db.write(ws)?;
        }
    }
    let db = RocksStore::open(dir.path(), &["s"], &small())?;
    assert_eq!(db.get("s", b"n")?, Some(99i64.to_be_bytes().to_vec()));
    assert_eq!(db.offset("in", 3)?, Some(100));
    Ok(())
}

#[test]
fn unknown_and_invalid_store_names() -> Result<(), StateError> {
    both(&["s"], |db| {
        let unknown = Err(StateError::UnknownStore("t".to_owned()));
        assert_eq!(db.get("t", b"k"), unknown.clone().map(|()| None));
        assert_eq!(
            db.scan("t", b"a", b"b"),
            unknown.clone().map(|()| Vec::new())
        );
        let mut ws = WriteSet::new();
        ws.delete_range("t", b"a".to_vec(), b"b".to_vec());
        assert_eq!(db.write(ws), unknown);
        // Internal column families are not stores.
        assert_eq!(
            db.get("__offsets", b"k"),
            Err(StateError::UnknownStore("__offsets".to_owned()))
        );
        Ok(())
    })?;
    for bad in ["", "__meta", "__x"] {
        let expected = StateError::InvalidStoreName(bad.to_owned());
        assert_eq!(MemStore::new(&["s", bad]).err(), Some(expected.clone()));
        let dir = TempDir::new()?;
        assert_eq!(
            RocksStore::open(dir.path(), &["s", bad], &small()).err(),
            Some(expected)
        );
    }
    Ok(())
}

#[test]
fn ops_apply_in_order_and_empty_ranges_are_no_ops() -> Result<(), StateError> {
    both(&["s"], |db| {
        let mut ws = WriteSet::new();
        ws.put("s", b"a".to_vec(), b"1".to_vec())
            .put("s", b"b".to_vec(), b"1".to_vec())
            .delete_range("s", b"a".to_vec(), b"c".to_vec())
            .put("s", b"b".to_vec(), b"2".to_vec())
            .put("s", b"c".to_vec(), b"3".to_vec())
            // Reversed and empty ranges delete nothing.
            .delete_range("s", b"d".to_vec(), b"a".to_vec())
            .delete_range("s", b"c".to_vec(), b"c".to_vec());
        assert_eq!(ws.len(), 7);
        db.write(ws)?;
        assert_eq!(
            db.scan("s", b"", b"z")?,
            vec![kv(b"b", b"2"), kv(b"c", b"3")]
        );
        assert_eq!(db.scan("s", b"c", b"b")?, Vec::new());
        assert_eq!(db.scan("s", b"b", b"c")?, vec![kv(b"b", b"2")]);
        db.write(WriteSet::new())?;
        Ok(())
    })
}

#[test]
fn prefix_scan_with_prefix_end() -> Result<(), StateError> {
    both(&["s"], |db| {
        let mut ws = WriteSet::new();
        for k in [&b"a"[..], b"ab", b"ab\xff", b"ab\xff\xff", b"ac", b"b"] {
            ws.put("s", k.to_vec(), b"".to_vec());
        }
        db.write(ws)?;
        let end = prefix_end(b"ab").ok_or(StateError::Io("no end".into()))?;
        let keys: Vec<Vec<u8>> = db
            .scan("s", b"ab", &end)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            vec![b"ab".to_vec(), b"ab\xff".to_vec(), b"ab\xff\xff".to_vec()]
        );
        Ok(())
    })
}

/// Above every key of these tests (the longest is 8 + 3 bytes).
const ALL: &[u8] = &[0xff; 12];

fn bucketed(bucket: i64, rest: &[u8]) -> Vec<u8> {
    KeyBuilder::new().i64(bucket).bytes(rest).finish()
}

#[test]
fn retention_drops_exactly_the_whole_buckets_before_the_cutoff() -> Result<(), StateError> {
    let buckets = [i64::MIN, -1_000, -2, -1, 0, 1, 2, 3, i64::MAX];
    let suffixes: [&[u8]; 4] = [b"", b"\x00", b"x", b"\xff\xff\xff"];
    for cutoff in [i64::MIN, -1, 0, 1, 3, i64::MAX] {
        both(&["seg", "other"], |db| {
            let mut ws = WriteSet::new();
            for &b in &buckets {
                for s in suffixes {
                    ws.put("seg", bucketed(b, s), b"v".to_vec());
                    ws.put("other", bucketed(b, s), b"v".to_vec());
                }
            }
            db.write(ws)?;

            let mut ws = WriteSet::new();
            ws.drop_buckets_before("seg", cutoff);
            assert_eq!(ws.len(), usize::from(cutoff > i64::MIN));
            db.write(ws)?;

            let left: Vec<i64> = db
                .scan("seg", &[], ALL)?
                .iter()
                .map(|(k, _)| KeyReader::new(k).i64())
                .collect::<Result<_, _>>()?;
            let expected: Vec<i64> = buckets
                .iter()
                .filter(|&&b| b >= cutoff)
                .flat_map(|&b| std::iter::repeat_n(b, suffixes.len()))
                .collect();
            assert_eq!(left, expected, "cutoff {cutoff}");
            // Other stores are untouched.
            assert_eq!(
                db.scan("other", &[], ALL)?.len(),
                buckets.len() * suffixes.len()
            );
            Ok(())
        })?;
    }
    assert_eq!(retention::drop_buckets_before(i64::MIN), None);
    Ok(())
}

#[test]
fn txn_reads_its_writes_and_stays_staged() -> Result<(), StateError> {
    both(&["s"], |db| {
        let mut ws = WriteSet::new();
        ws.put("s", bucketed(0, b"a"), b"base".to_vec()).put(
            "s",
            bucketed(5, b"a"),
            b"base".to_vec(),
        );
        db.write(ws)?;

        let mut txn = Txn::new(db);
        txn.put("s", bucketed(1, b"a"), b"new".to_vec());
        txn.drop_buckets_before("s", 2);
        txn.put("s", bucketed(1, b"b"), b"newer".to_vec());
        txn.set_offset("in", 0, 7);
        assert!(!txn.is_empty());
        assert_eq!(txn.get("s", &bucketed(0, b"a"))?, None);
        assert_eq!(txn.get("s", &bucketed(1, b"a"))?, None);
        assert_eq!(
            txn.scan("s", &[], ALL)?,
            vec![
                (bucketed(1, b"b"), b"newer".to_vec()),
                (bucketed(5, b"a"), b"base".to_vec())
            ]
        );
        assert_eq!(txn.offset("in", 0)?, Some(7));
        assert_eq!(db.offset("in", 0)?, None);
        assert_eq!(db.scan("s", &[], ALL)?.len(), 2);

        let ws = txn.into_write_set();
        db.write(ws)?;
        assert_eq!(db.offset("in", 0)?, Some(7));
        assert_eq!(db.scan("s", &[], ALL)?.len(), 2);
        assert_eq!(db.get("s", &bucketed(1, b"b"))?, Some(b"newer".to_vec()));
        Ok(())
    })
}

#[test]
fn stats_name_every_declared_store() -> Result<(), StateError> {
    both(&["b", "a", "b"], |db| {
        let mut ws = WriteSet::new();
        ws.put("a", b"k".to_vec(), b"vv".to_vec());
        db.write(ws)?;
        let stats = db.stats()?;
        let names: Vec<&str> = stats.iter().map(|s| s.store.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        Ok(())
    })
}

#[test]
fn options_defaults_and_unknown_fields() {
    let parsed: Result<StoreOptions, _> = serde_json::from_str(r#"{"block_cache_mb": 0}"#);
    assert_eq!(
        parsed.ok(),
        Some(StoreOptions {
            block_cache_mb: 0,
            ..StoreOptions::default()
        })
    );
    let typo: Result<StoreOptions, _> = serde_json::from_str(r#"{"write_buffer": 8}"#);
    assert!(typo.is_err());
    let zero = StoreOptions {
        write_buffer_mb: 0,
        ..StoreOptions::default()
    };
    assert!(matches!(
        zero.validate(),
        Err(StateError::InvalidOptions(_))
    ));
}

#[test]
fn rocks_store_without_block_cache_works() -> Result<(), StateError> {
    let dir = TempDir::new()?;
    let options = StoreOptions {
        block_cache_mb: 0,
        ..small()
    };
    let db = RocksStore::open(dir.path(), &["s"], &options)?;
    let mut ws = WriteSet::new();
    ws.put("s", b"k".to_vec(), b"v".to_vec());
    db.write(ws)?;
    assert_eq!(db.get("s", b"k")?, Some(b"v".to_vec()));
    // A second handle on the same directory is refused by RocksDB's lock.
    assert!(matches!(
        RocksStore::open(dir.path(), &["s"], &small()),
        Err(StateError::RocksDb(_))
    ));
    Ok(())
}

#[test]
fn a_limited_scan_is_the_scan_cut_short() -> Result<(), StateError> {
    both(&["s"], |db| {
        let mut w = WriteSet::new();
        for i in 0u8..50 {
            w.put("s", vec![i, i], vec![i]);
        }
        w.delete("s", vec![7u8, 7]);
        db.write(w)?;
        for (from, to) in [
            (vec![], vec![0xff]),
            (vec![5u8], vec![30u8]),
            (vec![40u8], vec![3u8]),
        ] {
            let all = db.scan("s", &from, &to)?;
            for limit in [0, 1, 10, 49, 100] {
                let mut want = all.clone();
                want.truncate(limit);
                assert_eq!(
                    db.scan_limit("s", &from, &to, limit)?,
                    want,
                    "{from:?}..{to:?} / {limit}"
                );
            }
        }
        Ok(())
    })
}
