//! # epitrace-state
//!
//! The byte-level state layer of epitrace's processors (DESIGN §5): the
//! "raw bytes store" of Kafka Streams' layering (metered → caching →
//! changelogging → raw bytes). Typed value codecs live in `epitrace-core`;
//! this crate deals in bytes, order-preserving key codecs and atomic
//! batches.
//!
//! - A processor declares its logical stores and opens a [`RocksStore`]
//!   (one RocksDB column family per store) or, in tests, a [`MemStore`]
//!   with identical semantics; both implement [`KvStore`].
//! - It processes a batch of input records inside a [`Txn`], which stages
//!   writes and lets record *k* read the writes of records before it.
//! - Once Kafka acknowledged the batch's outputs, it writes
//!   [`Txn::into_write_set`] — state and the next input offsets in one
//!   atomic [`WriteSet`]. After a crash it resumes from
//!   [`KvStore::offset`], so state and input position never disagree.
//! - Keys are built with [`keys`] so that byte order is scan order;
//!   time-bucketed stores put the bucket first and drop expired buckets with
//!   one range delete per store ([`retention`]).
//!
//! ## Layout
//!
//! - `error.rs`: [`StateError`], the one error type.
//! - `store.rs`: the [`KvStore`] trait and [`StoreStats`].
//! - `write_set.rs`: [`WriteSet`] and its [`Op`]s.
//! - `rocks.rs`: [`RocksStore`]; internal column families `__offsets`
//!   (topic ‖ `0x00` ‖ partition `i32` BE → next offset `i64` BE) and
//!   `__meta` (format version tag, [`rocks::FORMAT_VERSION`]).
//! - `options.rs`: [`StoreOptions`], the RocksDB tuning knobs (serde).
//! - `mem.rs`: [`MemStore`], the in-memory twin.
//! - `txn.rs`: [`Txn`], the read-your-writes overlay of one batch.
//! - `keys.rs`: order-preserving key codecs and [`keys::prefix_end`].
//! - `retention.rs`: whole-bucket retention ranges.

mod error;
pub mod keys;
mod mem;
mod options;
pub mod retention;
pub mod rocks;
mod store;
mod txn;
mod write_set;

pub use error::StateError;
pub use mem::MemStore;
pub use options::StoreOptions;
pub use rocks::RocksStore;
pub use store::{Entry, KvStore, RESERVED_PREFIX, StoreStats};
pub use txn::Txn;
pub use write_set::{Op, WriteSet};
