//! # epitrace-feeds
//!
//! Provider feeds as files, for the producers that telecoms, card companies,
//! venues and the health authority run (`epitrace produce`) and for the
//! simulator that writes them (`epitrace sim`).
//!
//! - [`Feed`] and [`Format`]: the four feeds and the two file formats (CSV
//!   with a header, JSON Lines), with the documented column sets
//!   ([`Feed::columns`]).
//! - [`Pseudonymizer`]: raw phone and card numbers → [`SubjectId`]s by
//!   HMAC-SHA-256 under the authority's key, truncated to 16 bytes. Raw ids
//!   never leave the producer: they exist only in the input file and in
//!   memory while a row is converted.
//! - [`FeedReader`]: reads a file row by row, turning every row into a
//!   validated record ([`Produced`]) or a [`RowError`] naming the line, the
//!   field and the reason.
//! - [`write_row`]: writes a row (the simulator's output).
//!
//! [`SubjectId`]: epitrace_model::SubjectId

mod error;
mod pseudonym;
mod read;
mod rows;
mod time;

pub use error::{FeedError, RowError};
pub use pseudonym::{IdKind, PseudonymKey, Pseudonymizer};
pub use read::{FeedReader, Produced, RowConverter, looks_like_raw_id};
pub use rows::{Feed, Format, RawRow, write_header, write_row};
pub use time::{format_time, parse_time};
