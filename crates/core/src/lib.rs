//! # epitrace-core
