//! # epitrace-processors
//!
//! Role: one module per stream processor of DESIGN §4 (segmenter,
//! presence-join, exposure-aggregator, cluster-detector), each a thin wiring of
//! `epitrace-core` logic, `epitrace-state` stores and `epitrace-stream` I/O,
//! with its contract (inputs and keys, state and retention, outputs, time
//! semantics, delivery guarantee) in its module docs.
//!
//! It is deliberately empty until the pipeline issue fills it: nothing here is
//! a stub.
