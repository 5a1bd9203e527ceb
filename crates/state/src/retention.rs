//! Retention by whole time buckets.
//!
//! Time-bucketed stores key their entries `bucket (i64, keys::i64_key) ‖
//! rest` (see [`crate::keys`]). Dropping everything older than a cutoff
//! bucket is then one half-open range per store: from the smallest encoded
//! bucket to the first key of the cutoff bucket. A bucket is dropped whole or
//! not at all: every key whose leading bucket is `>= cutoff` is at or past
//! the upper bound, every key whose leading bucket is `< cutoff` is inside.
//! (A malformed key shorter than one bucket field is inside exactly when it
//! sorts before the cutoff bucket's first key; well-formed stores have none.)
//!
//! The bucket arithmetic (event time → bucket) belongs to the caller, which
//! must use the same bucket for writing and for computing the cutoff.

use crate::keys::i64_key;

/// The half-open key range `[from, to)` holding every key whose leading
/// `i64` bucket is `< cutoff_bucket`; `None` when that set is empty
/// (`cutoff_bucket == i64::MIN`).
#[must_use]
pub fn drop_buckets_before(cutoff_bucket: i64) -> Option<(Vec<u8>, Vec<u8>)> {
    (cutoff_bucket > i64::MIN)
        .then(|| (i64_key(i64::MIN).to_vec(), i64_key(cutoff_bucket).to_vec()))
}
