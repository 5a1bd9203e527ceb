//! The feeds, their file formats and column sets.

use std::io::{self, Write};

/// One of the feeds a producer publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feed {
    /// Telecom location records → `feeds.telecom.location`.
    Telecom,
    /// Card transactions → `feeds.card.transaction`.
    Card,
    /// Venue QR check-ins → `feeds.venue.checkin`.
    Checkin,
    /// Confirmed cases from the health authority → `cases.events`.
    Cases,
    /// Data-access approvals for cases (one category each) →
    /// `cases.approvals`.
    Approvals,
}

/// A column: its name, whether it may be empty, and what it holds.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Header name (CSV) or key (JSON Lines).
    pub name: &'static str,
    /// Whether the value may be empty or missing.
    pub optional: bool,
    /// What it holds (for `--help` and the README).
    pub doc: &'static str,
}

const fn col(name: &'static str, optional: bool, doc: &'static str) -> Column {
    Column {
        name,
        optional,
        doc,
    }
}

const TIME: &str = "RFC 3339 (2020-05-02T13:05:00Z or with an offset) or epoch milliseconds";

const TELECOM: &[Column] = &[
    col(
        "msisdn",
        false,
        "raw phone number (pseudonymised by the producer)",
    ),
    col("provider", false, "telecom id"),
    col("observed_at", false, TIME),
    col("lat", false, "degrees"),
    col("lng", false, "degrees"),
    col("accuracy_m", false, "radius in metres"),
    col("source", false, "CELL, GPS or WIFI"),
    col("site_id", true, "serving cell site, for CELL"),
];

const CARD: &[Column] = &[
    col(
        "card_number",
        false,
        "raw card number (pseudonymised by the producer)",
    ),
    col("issuer", false, "card company id"),
    col("merchant_id", false, "merchant id"),
    col("mcc", false, "ISO 18245 merchant category code"),
    col("observed_at", false, TIME),
    col("lat", false, "merchant latitude"),
    col("lng", false, "merchant longitude"),
    col("accuracy_m", false, "geocoding radius in metres"),
];

const CHECKIN: &[Column] = &[
    col(
        "msisdn",
        false,
        "raw phone number of the visitor (pseudonymised by the producer)",
    ),
    col("venue_id", false, "venue id"),
    col("lat", false, "venue latitude"),
    col("lng", false, "venue longitude"),
    col("checkin_at", false, TIME),
    col("checkout_at", true, TIME),
];

const CASES: &[Column] = &[
    col("case_id", false, "the authority's case id"),
    col(
        "msisdns",
        true,
        "the patient's raw phone numbers, `;`-separated (a JSON array in JSON Lines)",
    ),
    col(
        "card_numbers",
        true,
        "the patient's raw card numbers, `;`-separated (a JSON array in JSON Lines)",
    ),
    col("confirmed_at", false, TIME),
    col("symptom_onset", true, TIME),
    col(
        "infectious_from",
        true,
        "start of the infectious period; default: the configured look-back before onset, or before confirmation",
    ),
    col("infectious_until", true, TIME),
    col(
        "status",
        true,
        "CONFIRMED (default), UPDATED, RETRACTED or CLOSED",
    ),
    col(
        "region",
        true,
        "the health region in charge (e.g. `seoul`); the API shows the case to that region's investigators; empty: to those of every region only",
    ),
];

const APPROVALS: &[Column] = &[
    col("case_id", false, "the authority's case id"),
    col(
        "category",
        false,
        "LOCATION (telecom records), CARD (card transactions) or CHECKIN (venue entry logs)",
    ),
    col(
        "authority",
        false,
        "who approved (e.g. the police agency, the card association)",
    ),
    col("reference", false, "the approval's reference number"),
    col("approved_at", false, TIME),
    col(
        "expires_at",
        false,
        "when it lapses (after approved_at); posting a reference again with an earlier time revokes it",
    ),
];

impl Feed {
    /// Every feed.
    pub const ALL: [Self; 5] = [
        Self::Telecom,
        Self::Card,
        Self::Checkin,
        Self::Cases,
        Self::Approvals,
    ];

    /// Its name on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Telecom => "telecom",
            Self::Card => "card",
            Self::Checkin => "checkin",
            Self::Cases => "cases",
            Self::Approvals => "approvals",
        }
    }

    /// The columns, in file order.
    #[must_use]
    pub const fn columns(self) -> &'static [Column] {
        match self {
            Self::Telecom => TELECOM,
            Self::Card => CARD,
            Self::Checkin => CHECKIN,
            Self::Cases => CASES,
            Self::Approvals => APPROVALS,
        }
    }

    /// Whether a column holds a list (`;`-separated in CSV).
    #[must_use]
    pub fn is_list(self, column: &str) -> bool {
        self == Self::Cases && (column == "msisdns" || column == "card_numbers")
    }
}

impl std::str::FromStr for Feed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown feed {s:?} (telecom, card, checkin, cases, approvals)"))
    }
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with the feed's header line (RFC 4180
    /// quoting).
    Csv,
    /// One JSON object per line, keys = column names.
    JsonLines,
}

impl Format {
    /// From a file name: `.jsonl`, `.ndjson` or `.json` → JSON Lines,
    /// anything else CSV.
    #[must_use]
    pub fn of_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson" | "json") => Self::JsonLines,
            _ => Self::Csv,
        }
    }
}

/// One row's values, in [`Feed::columns`] order (lists `;`-joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    /// The file line it came from.
    pub line: u64,
    /// The values.
    pub values: Vec<String>,
}

fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Writes the header line (CSV only; nothing for JSON Lines).
///
/// # Errors
/// The writer's.
pub fn write_header(w: &mut impl Write, feed: Feed, format: Format) -> io::Result<()> {
    if format == Format::Csv {
        let names: Vec<&str> = feed.columns().iter().map(|c| c.name).collect();
        writeln!(w, "{}", names.join(","))?;
    }
    Ok(())
}

/// Writes one row; `values` in [`Feed::columns`] order, lists `;`-joined.
///
/// # Errors
/// The writer's.
pub fn write_row(
    w: &mut impl Write,
    feed: Feed,
    format: Format,
    values: &[&str],
) -> io::Result<()> {
    match format {
        Format::Csv => {
            let fields: Vec<_> = values.iter().map(|v| csv_field(v)).collect();
            writeln!(w, "{}", fields.join(","))
        }
        Format::JsonLines => {
            let mut obj = serde_json::Map::new();
            for (c, v) in feed.columns().iter().zip(values) {
                let value = if feed.is_list(c.name) {
                    serde_json::Value::Array(
                        v.split(';')
                            .filter(|s| !s.is_empty())
                            .map(|s| serde_json::Value::String(s.to_owned()))
                            .collect(),
                    )
                } else if v.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String((*v).to_owned())
                };
                obj.insert(c.name.to_owned(), value);
            }
            writeln!(w, "{}", serde_json::Value::Object(obj))
        }
    }
}
