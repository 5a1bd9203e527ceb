//! Support for the benchmarks in this folder (see `pipeline.rs`).
