//! # epitrace-stream
//!
//! Role: all Kafka I/O of epitrace, and the only crate that depends on
//! rdkafka (DESIGN §5, §6).
//!
//! This crate will hold consumer and producer setup (idempotent producer,
//! `acks=all`), per-partition tasks that resume from offsets stored in state,
//! the delivery rule (outputs are acknowledged by the broker before the state
//! batch carrying the input offsets is written, so a crash replays and never
//! loses), graceful shutdown, and the dead-letter path to
//! `pipeline.deadletter`.
//!
//! It is deliberately empty until the pipeline issue fills it: nothing here is
//! a stub.
