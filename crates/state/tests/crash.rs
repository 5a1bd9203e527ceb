//! A process that dies without closing its store (no WAL, the default)
//! loses its latest batches, but state and input offsets roll back
//! together: whatever offset survives, the state is exactly the state that
//! batch left.
//!
//! The crash is real: the test re-runs this test binary as a child process
//! (`crash_child`, which does nothing unless `EPITRACE_CRASH_DIR` is set),
//! which writes batches and calls `std::process::abort()`.

// Test code: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use epitrace_state::{KvStore, RocksStore, StoreOptions, WriteSet};

const STORES: [&str; 2] = ["big", "small"];
const BATCHES: i64 = 400;
/// Values large enough that 1 MiB memtables flush every few batches.
const VALUE: usize = 16 * 1024;

fn options(wal: bool) -> StoreOptions {
    StoreOptions {
        write_buffer_mb: 1,
        wal,
        ..StoreOptions::default()
    }
}

/// Runs the child over `dir` and requires it to die.
fn crash(dir: &std::path::Path, wal: bool) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("EPITRACE_CRASH_DIR", dir)
        .env("EPITRACE_CRASH_WAL", if wal { "1" } else { "0" })
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die by abort");
}

/// Batch `b`: a large value under key `b` in `big`, the batch number under a
/// fixed key in `small`, and the next offset `b + 1`.
fn batch(b: i64) -> WriteSet {
    let mut ws = WriteSet::new();
    let fill = u8::try_from(b % 251).unwrap();
    ws.put("big", b.to_be_bytes().to_vec(), vec![fill; VALUE]);
    ws.put("small", b"last".to_vec(), b.to_be_bytes().to_vec());
    ws.set_offset("in", 0, b + 1);
    ws
}

/// The child: writes every batch, then dies without closing the store.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("EPITRACE_CRASH_DIR") else {
        return; // only meaningful as the child of `state_and_offsets_roll_back_together`
    };
    let wal = std::env::var("EPITRACE_CRASH_WAL").is_ok_and(|v| v == "1");
    let store = RocksStore::open(&dir, &STORES, &options(wal)).unwrap();
    for b in 0..BATCHES {
        store.write(batch(b)).unwrap();
    }
    std::process::abort();
}

#[test]
fn state_and_offsets_roll_back_together() {
    let dir = tempfile::tempdir().unwrap();
    crash(dir.path(), false);
    let store = RocksStore::open(dir.path(), &STORES, &options(false)).unwrap();
    let next = store.offset("in", 0).unwrap().unwrap_or(0);
    // Some batches were flushed (1 MiB memtables, 6 MiB written), and the
    // newest were lost with the memtable.
    assert!(next > 0, "nothing survived: no flush happened");
    assert!(
        next < BATCHES,
        "nothing was lost: the crash was not a crash"
    );
    let last = store.get("small", b"last").unwrap();
    if next == 0 {
        assert_eq!(last, None);
    } else {
        assert_eq!(last, Some((next - 1).to_be_bytes().to_vec()));
    }
    let big = store.scan("big", &[], &[0xff; 9]).unwrap();
    assert_eq!(
        big.len(),
        usize::try_from(next).unwrap(),
        "state holds batches beyond the stored offset, or misses some"
    );
    for (i, (key, value)) in big.iter().enumerate() {
        let b = i64::try_from(i).unwrap();
        assert_eq!(key, &b.to_be_bytes().to_vec());
        assert_eq!(value.len(), VALUE);
        assert!(value.iter().all(|&x| i64::from(x) == b % 251));
    }
}

/// With the WAL on, a process crash loses nothing (the WAL is in the OS's
/// buffers).
#[test]
fn with_the_wal_a_process_crash_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    crash(dir.path(), true);
    let store = RocksStore::open(dir.path(), &STORES, &options(true)).unwrap();
    assert_eq!(store.offset("in", 0).unwrap(), Some(BATCHES));
    assert_eq!(
        store.get("small", b"last").unwrap(),
        Some((BATCHES - 1).to_be_bytes().to_vec())
    );
}
