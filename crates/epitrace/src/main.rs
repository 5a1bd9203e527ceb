//! The `epitrace` binary.
fn main() {}
