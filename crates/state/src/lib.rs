//! # epitrace-state
//!
//! Role: the state stores of epitrace's processors (DESIGN §5, §6).
//!
//! This crate will hold the RocksDB-backed stores, one column family per
//! logical store, layered like Kafka Streams' stores (metered → changelogged →
//! raw bytes); big-endian key codecs built on `epitrace_core::cellkey` so that
//! range scans follow time and the hierarchical cell order; input offsets
//! written in the same `WriteBatch` as the state they produced; retention by
//! dropping whole time buckets; and an in-memory twin with the same trait for
//! tests.
//!
//! It is deliberately empty until the pipeline issue fills it: nothing here is
//! a stub.
