//! [`StoreOptions`]: the RocksDB tuning knobs a deployment may set.

use serde::Deserialize;

use crate::StateError;

/// RocksDB tuning for one [`crate::RocksStore`], read from the processor's
/// config file (`[state]` section). Unknown fields are rejected so that a
/// misspelt knob fails at startup instead of being silently ignored.
///
/// Compression (LZ4), atomic flushes and the column family layout are not
/// knobs: they are part of the crash-recovery contract (offsets live in the
/// same batch as state, and every column family is flushed together, so a
/// crash replays from the last durable batch).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreOptions {
    /// Memtable size per column family, in MiB (default 64). Larger
    /// memtables mean fewer, larger flushes and more memory per store.
    pub write_buffer_mb: u32,
    /// Block cache shared by every column family, in MiB (default 128);
    /// 0 disables the block cache (reads then always hit the OS page cache).
    pub block_cache_mb: u32,
    /// Background flush and compaction threads (default 4).
    pub max_background_jobs: u16,
    /// Whether writes also go to RocksDB's write-ahead log (default
    /// `false`). Without it a crash loses the batches written since the
    /// last memtable flush — state and input offsets together, because
    /// every column family is flushed atomically — and the task consumes
    /// them again from Kafka, producing the same outputs (at-least-once, as
    /// after any crash). The WAL halves the write cost of the segmenter
    /// path; turn it on to shorten the replay after a crash instead.
    pub wal: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            write_buffer_mb: 64,
            block_cache_mb: 128,
            max_background_jobs: 4,
            wal: false,
        }
    }
}

impl StoreOptions {
    /// Checks the ranges: `write_buffer_mb >= 1`, `max_background_jobs >= 1`.
    ///
    /// # Errors
    /// [`StateError::InvalidOptions`] naming the offending field.
    pub fn validate(&self) -> Result<(), StateError> {
        if self.write_buffer_mb == 0 {
            return Err(StateError::InvalidOptions(
                "write_buffer_mb must be >= 1".to_owned(),
            ));
        }
        if self.max_background_jobs == 0 {
            return Err(StateError::InvalidOptions(
                "max_background_jobs must be >= 1".to_owned(),
            ));
        }
        Ok(())
    }

    pub(crate) fn write_buffer_bytes(&self) -> usize {
        mib(self.write_buffer_mb)
    }

    pub(crate) fn block_cache_bytes(&self) -> usize {
        mib(self.block_cache_mb)
    }
}

fn mib(n: u32) -> usize {
    usize::try_from(u64::from(n) << 20).unwrap_or(usize::MAX)
}
