//! Reading a feed file into validated, pseudonymised records.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use epitrace_core::config::ExposureConfig;
use epitrace_core::ingest::default_infectious_from;
use epitrace_model::codec::{AvroRecord, encode_single_object, validate_not_future};
use epitrace_model::records::{
    CardTransaction, CaseEvent, CaseStatus, DataAccessApproval, DataCategory, LocationPing,
    LocationSource, VenueCheckin,
};
use epitrace_model::text::Text;
use epitrace_model::topics::{APPROVALS, CARD, CASES, CHECKIN, TELECOM};
use epitrace_model::{
    AccuracyM, CaseId, EventTime, LatLng, Mcc, MerchantId, ModelError, ProviderId, SiteId,
    SubjectId, VenueId,
};

use crate::rows::{Feed, Format, RawRow};
use crate::time::parse_time;
use crate::{FeedError, IdKind, Pseudonymizer, RowError};

/// A validated record, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Produced {
    /// `feeds.telecom.location`.
    Ping(LocationPing),
    /// `feeds.card.transaction`.
    Card(CardTransaction),
    /// `feeds.venue.checkin`.
    Checkin(VenueCheckin),
    /// `cases.events`.
    Case(CaseEvent),
    /// `cases.approvals`.
    Approval(DataAccessApproval),
}

impl Produced {
    /// The topic it goes to.
    #[must_use]
    pub const fn topic(&self) -> &'static str {
        match self {
            Self::Ping(_) => TELECOM,
            Self::Card(_) => CARD,
            Self::Checkin(_) => CHECKIN,
            Self::Case(_) => CASES,
            Self::Approval(_) => APPROVALS,
        }
    }

    /// The Kafka key: the subject pseudonym, or the case id.
    #[must_use]
    pub fn key(&self) -> Vec<u8> {
        match self {
            Self::Ping(r) => r.subject.as_bytes().to_vec(),
            Self::Card(r) => r.subject.as_bytes().to_vec(),
            Self::Checkin(r) => r.subject.as_bytes().to_vec(),
            Self::Case(r) => r.case_id.as_str().as_bytes().to_vec(),
            Self::Approval(r) => r.case_id.as_str().as_bytes().to_vec(),
        }
    }

    /// The Avro single-object frame.
    ///
    /// # Errors
    /// The record's validation error.
    pub fn encode(&self) -> Result<Vec<u8>, ModelError> {
        match self {
            Self::Ping(r) => encode_single_object(r),
            Self::Card(r) => encode_single_object(r),
            Self::Checkin(r) => encode_single_object(r),
            Self::Case(r) => encode_single_object(r),
            Self::Approval(r) => encode_single_object(r),
        }
    }
}

/// Turns rows of values into validated, pseudonymised records.
#[derive(Debug, Clone)]
pub struct RowConverter {
    pseudonyms: Pseudonymizer,
    exposure: ExposureConfig,
    now: Option<EventTime>,
    /// Accepted values of the `provider` and `issuer` columns; empty
    /// accepts any identifier.
    providers: Vec<String>,
}

/// Reads a feed file row by row.
pub struct FeedReader {
    feed: Feed,
    rows: Box<dyn Iterator<Item = Result<RawRow, RowError>>>,
    converter: RowConverter,
}

impl std::fmt::Debug for FeedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedReader")
            .field("feed", &self.feed)
            .finish_non_exhaustive()
    }
}

impl FeedReader {
    /// Opens `path` as `feed` in `format`. Timestamps more than a day after
    /// `now` are refused when `now` is given; `exposure` supplies the
    /// default infectious start of cases that omit it.
    ///
    /// # Errors
    /// [`FeedError::Io`] when unreadable, [`FeedError::Header`] for a CSV
    /// header that lacks a required column or has an unknown one.
    pub fn open(
        path: &Path,
        feed: Feed,
        format: Format,
        pseudonyms: Pseudonymizer,
        exposure: ExposureConfig,
        now: Option<EventTime>,
    ) -> Result<Self, FeedError> {
        let io = |source| FeedError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let rows: Box<dyn Iterator<Item = Result<RawRow, RowError>>> = match format {
            Format::Csv => Box::new(csv_rows(path, feed, file)?),
            Format::JsonLines => Box::new(json_rows(feed, BufReader::new(file))),
        };
        Ok(Self {
            feed,
            rows,
            converter: RowConverter::new(pseudonyms, exposure, now),
        })
    }

    /// The feed read.
    #[must_use]
    pub const fn feed(&self) -> Feed {
        self.feed
    }

    /// Accepts only these values in the `provider` and `issuer` columns
    /// (see [`RowConverter::with_providers`]).
    #[must_use]
    pub fn with_providers(mut self, providers: Vec<String>) -> Self {
        self.converter = self.converter.with_providers(providers);
        self
    }
}

impl RowConverter {
    /// A converter: raw ids pseudonymised with `pseudonyms`; timestamps more
    /// than a day after `now` refused when `now` is given; `exposure`
    /// supplies the default infectious start of cases that omit it.
    #[must_use]
    pub const fn new(
        pseudonyms: Pseudonymizer,
        exposure: ExposureConfig,
        now: Option<EventTime>,
    ) -> Self {
        Self {
            pseudonyms,
            exposure,
            now,
            providers: Vec::new(),
        }
    }

    /// Accepts only these values in the `provider` (telecom) and `issuer`
    /// (card) columns, so that an identifier put in the wrong column is
    /// refused; empty accepts any identifier.
    #[must_use]
    pub fn with_providers(mut self, providers: Vec<String>) -> Self {
        self.providers = providers;
        self
    }

    /// Converts one row of `feed` (values in [`Feed::columns`] order).
    ///
    /// # Errors
    /// A [`RowError`] naming the line, the column and the reason.
    pub fn convert<'a>(&self, feed: Feed, row: &'a RawRow) -> Result<Produced, RowError> {
        let cols = feed.columns();
        let get = |name: &'static str| -> Result<&str, RowError> {
            let i = cols
                .iter()
                .position(|c| c.name == name)
                .unwrap_or(usize::MAX);
            let v = row.values.get(i).map_or("", |s| s.trim());
            if v.is_empty() && cols.get(i).is_some_and(|c| !c.optional) {
                return Err(RowError::new(row.line, name, "missing"));
            }
            Ok(v)
        };
        let opt = |name: &'static str| get(name).map(|v| (!v.is_empty()).then_some(v));
        let line = row.line;
        let model = |field: &'static str| {
            let allowed = cols.iter().find(|c| c.name == field).map_or("", |c| c.doc);
            move |e: ModelError| RowError::new(line, field, redacted(&e, allowed))
        };
        // A free-text identifier column: refuses what looks like a raw
        // phone or card number (an identifier in the wrong column), and
        // for provider columns anything not configured.
        let ident = |name: &'static str, v: &'a str| -> Result<&'a str, RowError> {
            if looks_like_raw_id(v) {
                return Err(RowError::new(
                    line,
                    name,
                    "looks like a raw phone or card number; refused so that it never leaves this process",
                ));
            }
            Ok(v)
        };
        let provider = |name: &'static str| -> Result<ProviderId, RowError> {
            let v = ident(name, get(name)?)?;
            if !self.providers.is_empty() && !self.providers.iter().any(|p| p == v) {
                return Err(RowError::new(
                    line,
                    name,
                    "not one of the configured providers (feeds.providers)",
                ));
            }
            ProviderId::new(v).map_err(model(name))
        };
        let time = |name: &'static str| -> Result<EventTime, RowError> {
            parse_time(name, get(name)?).map_err(|e| RowError::new(line, name, e))
        };
        let opt_time = |name: &'static str| -> Result<Option<EventTime>, RowError> {
            opt(name)?
                .map(|v| parse_time(name, v).map_err(|e| RowError::new(line, name, e)))
                .transpose()
        };
        let float = |name: &'static str| -> Result<f64, RowError> {
            get(name)?
                .parse::<f64>()
                .map_err(|_| RowError::new(line, name, "not a number"))
        };
        let position = || -> Result<LatLng, RowError> {
            LatLng::new(float("lat")?, float("lng")?).map_err(model("lat/lng"))
        };
        let subject =
            |name: &'static str, kind: IdKind, raw: &str| -> Result<SubjectId, RowError> {
                self.pseudonyms
                    .subject(kind, raw)
                    .map_err(|e| RowError::new(line, name, e))
            };
        let produced = match feed {
            Feed::Telecom => Produced::Ping(LocationPing {
                subject: subject("msisdn", IdKind::Msisdn, get("msisdn")?)?,
                provider: provider("provider")?,
                observed_at: time("observed_at")?,
                position: position()?,
                accuracy: AccuracyM::new(float("accuracy_m")?).map_err(model("accuracy_m"))?,
                source: LocationSource::from_symbol(&get("source")?.to_ascii_uppercase())
                    .map_err(model("source"))?,
                site_id: opt("site_id")?
                    .map(|v| ident("site_id", v))
                    .transpose()?
                    .map(SiteId::new)
                    .transpose()
                    .map_err(model("site_id"))?,
            }),
            Feed::Card => Produced::Card(CardTransaction {
                subject: subject("card_number", IdKind::Card, get("card_number")?)?,
                issuer: provider("issuer")?,
                merchant_id: MerchantId::new(ident("merchant_id", get("merchant_id")?)?)
                    .map_err(model("merchant_id"))?,
                mcc: Mcc::new(
                    get("mcc")?
                        .parse::<i64>()
                        .map_err(|_| RowError::new(line, "mcc", "not an integer"))?,
                )
                .map_err(model("mcc"))?,
                position: position()?,
                accuracy: AccuracyM::new(float("accuracy_m")?).map_err(model("accuracy_m"))?,
                observed_at: time("observed_at")?,
            }),
            Feed::Checkin => Produced::Checkin(VenueCheckin {
                subject: subject("msisdn", IdKind::Msisdn, get("msisdn")?)?,
                venue_id: VenueId::new(ident("venue_id", get("venue_id")?)?)
                    .map_err(model("venue_id"))?,
                position: position()?,
                observed_at: time("checkin_at")?,
                checkout_at: opt_time("checkout_at")?,
            }),
            Feed::Cases => {
                let mut subjects = Vec::new();
                for raw in get("msisdns")?.split(';').filter(|s| !s.trim().is_empty()) {
                    subjects.push(subject("msisdns", IdKind::Msisdn, raw)?);
                }
                for raw in get("card_numbers")?
                    .split(';')
                    .filter(|s| !s.trim().is_empty())
                {
                    subjects.push(subject("card_numbers", IdKind::Card, raw)?);
                }
                if subjects.is_empty() {
                    return Err(RowError::new(
                        line,
                        "msisdns",
                        "a case needs at least one phone or card number",
                    ));
                }
                let confirmed_at = time("confirmed_at")?;
                let symptom_onset = opt_time("symptom_onset")?;
                Produced::Case(CaseEvent {
                    case_id: CaseId::new(ident("case_id", get("case_id")?)?)
                        .map_err(model("case_id"))?,
                    subjects,
                    confirmed_at,
                    symptom_onset,
                    infectious_from: opt_time("infectious_from")?.unwrap_or_else(|| {
                        default_infectious_from(symptom_onset, confirmed_at, &self.exposure)
                    }),
                    infectious_until: opt_time("infectious_until")?,
                    status: match opt("status")? {
                        Some(s) => CaseStatus::from_symbol(&s.to_ascii_uppercase())
                            .map_err(model("status"))?,
                        None => CaseStatus::Confirmed,
                    },
                    region: opt("region")?
                        .map(|r| Text::new("region", ident("region", r)?).map_err(model("region")))
                        .transpose()?,
                })
            }
            Feed::Approvals => {
                let text = |name: &'static str| -> Result<Text, RowError> {
                    Text::new(name, ident(name, get(name)?)?).map_err(model(name))
                };
                Produced::Approval(DataAccessApproval {
                    case_id: CaseId::new(ident("case_id", get("case_id")?)?)
                        .map_err(model("case_id"))?,
                    category: DataCategory::from_symbol(&get("category")?.to_ascii_uppercase())
                        .map_err(model("category"))?,
                    authority: text("authority")?,
                    reference: text("reference")?,
                    approved_at: time("approved_at")?,
                    expires_at: time("expires_at")?,
                })
            }
        };
        self.check(&produced, line)?;
        Ok(produced)
    }

    fn check(&self, p: &Produced, line: u64) -> Result<(), RowError> {
        fn rules<T: AvroRecord>(r: &T, now: Option<EventTime>) -> Result<(), ModelError> {
            r.validate()?;
            if let Some(now) = now {
                validate_not_future(r, now, epitrace_model::time::DAY_MS)?;
            }
            Ok(())
        }
        match p {
            Produced::Ping(r) => rules(r, self.now),
            Produced::Card(r) => rules(r, self.now),
            Produced::Checkin(r) => rules(r, self.now),
            Produced::Case(r) => rules(r, self.now),
            Produced::Approval(r) => rules(r, self.now),
        }
        .map_err(|e| RowError::new(line, "row", redacted(&e, "")))
    }
}

impl Iterator for FeedReader {
    type Item = Result<Produced, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let row = self.rows.next()?;
        Some(row.and_then(|r| self.converter.convert(self.feed, &r)))
    }
}

/// A model error as a reason that never repeats the value (a value in the
/// wrong column may be someone's phone number): the rule it broke, and for
/// an unknown symbol the `allowed` ones.
fn redacted(e: &ModelError, allowed: &str) -> String {
    match e {
        ModelError::UnknownSymbol { .. } => format!("not one of: {allowed}"),
        ModelError::InvalidIdentifier { reason, .. } => format!("invalid identifier: {reason}"),
        ModelError::InvalidText { reason, .. } | ModelError::InvalidRecord { reason, .. } => {
            (*reason).to_owned()
        }
        ModelError::InvalidLatitude(_) => "latitude is not a finite number in [-90, 90]".into(),
        ModelError::InvalidLongitude(_) => "longitude is not a finite number in [-180, 180]".into(),
        ModelError::InvalidAccuracy(_) => "not a finite number in [0, 100000] m".into(),
        ModelError::TimestampOutOfRange { field, .. } => {
            format!("{field} is outside 2000-01-01 .. 2100-01-01")
        }
        ModelError::TimestampInFuture { field, skew_ms, .. } => format!(
            "{field} is more than {} h after this producer's clock",
            skew_ms / epitrace_model::time::HOUR_MS
        ),
        ModelError::TimestampOrder { field, .. } => {
            format!("{field} is before the time it must follow")
        }
        other => format!("invalid ({})", other.reason_code()),
    }
}

/// Whether a free-text value looks like a raw phone or card number: once
/// spaces, dashes, dots and brackets are dropped, only digits (and a
/// leading `+`) remain, and they are a Korean mobile number (`01` then 8–9
/// digits, or `+82 1…`), or 13–19 digits passing the Luhn check (a card).
#[must_use]
pub fn looks_like_raw_id(value: &str) -> bool {
    let mut digits = String::with_capacity(value.len());
    for (i, c) in value.trim().chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return false,
        }
    }
    let mobile = (digits.starts_with("01") && (10..=11).contains(&digits.len()))
        || (digits.starts_with("821") && (11..=12).contains(&digits.len()));
    mobile || ((13..=19).contains(&digits.len()) && luhn(&digits))
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn csv_rows(
    path: &Path,
    feed: Feed,
    file: File,
) -> Result<impl Iterator<Item = Result<RawRow, RowError>> + use<>, FeedError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(file);
    let header_error = |found: String| FeedError::Header {
        path: path.display().to_string(),
        feed: feed.name(),
        found,
        expected: feed
            .columns()
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(","),
    };
    let headers = reader
        .headers()
        .map_err(|e| header_error(e.to_string()))?
        .clone();
    let found: Vec<String> = headers.iter().map(|h| h.trim().to_owned()).collect();
    // Columns may come in any order; required ones must be there, unknown
    // ones are refused (a misspelt optional column must not vanish).
    let cols = feed.columns();
    let unknown = found.iter().any(|h| !cols.iter().any(|c| c.name == h));
    let missing = cols
        .iter()
        .any(|c| !c.optional && !found.iter().any(|h| h == c.name));
    if unknown || missing {
        // Only what looks like a column name is quoted: a file without a
        // header has a row of values — personal data — in its place.
        let shown: Vec<&str> = found
            .iter()
            .map(|h| {
                let name_like = !h.is_empty()
                    && h.len() <= 32
                    && h.bytes().any(|b| b.is_ascii_lowercase())
                    && h.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if name_like {
                    h.as_str()
                } else {
                    "<not a column name>"
                }
            })
            .collect();
        return Err(header_error(shown.join(",")));
    }
    let index: Vec<Option<usize>> = cols
        .iter()
        .map(|c| found.iter().position(|h| h == c.name))
        .collect();
    let width = found.len();
    Ok(reader.into_records().map(move |r| {
        let line_of = |pos: Option<&csv::Position>| pos.map_or(0, csv::Position::line);
        match r {
            Ok(rec) => {
                let line = line_of(rec.position());
                if rec.len() != width {
                    return Err(RowError::new(
                        line,
                        "row",
                        format!("{} fields, the header has {width}", rec.len()),
                    ));
                }
                Ok(RawRow {
                    line,
                    values: index
                        .iter()
                        .map(|i| i.and_then(|i| rec.get(i)).unwrap_or("").to_owned())
                        .collect(),
                })
            }
            Err(e) => Err(RowError::new(line_of(e.position()), "row", csv_reason(&e))),
        }
    }))
}

/// A CSV error's reason, without the row's content.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".into(),
        csv::ErrorKind::UnequalLengths {
            len, expected_len, ..
        } => {
            format!("{len} fields, the header has {expected_len}")
        }
        _ => "unreadable CSV".into(),
    }
}

fn json_rows(
    feed: Feed,
    reader: impl BufRead + 'static,
) -> impl Iterator<Item = Result<RawRow, RowError>> {
    reader
        .split(b'\n')
        .enumerate()
        .filter_map(move |(i, line)| {
            let line_no = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
            let bytes = match line {
                Ok(b) => b,
                Err(_) => return Some(Err(RowError::new(line_no, "row", "unreadable"))),
            };
            let Ok(text) = std::str::from_utf8(&bytes) else {
                return Some(Err(RowError::new(line_no, "row", "not UTF-8")));
            };
            if text.trim().is_empty() {
                return None;
            }
            Some(json_row(feed, line_no, text))
        })
}

fn json_row(feed: Feed, line: u64, text: &str) -> Result<RawRow, RowError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| RowError::new(line, "row", format!("not JSON: {}", e.classify_name())))?;
    let Some(obj) = value.as_object() else {
        return Err(RowError::new(line, "row", "not a JSON object"));
    };
    let cols = feed.columns();
    if let Some(k) = obj
        .keys()
        .find(|k| !cols.iter().any(|c| c.name == k.as_str()))
    {
        let shown: String = k.chars().take(40).collect();
        return Err(RowError::new(line, "row", format!("unknown key {shown:?}")));
    }
    let mut values = Vec::with_capacity(cols.len());
    for c in cols {
        let v = match obj.get(c.name) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::Array(items)) if feed.is_list(c.name) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        serde_json::Value::String(s) => parts.push(s.clone()),
                        _ => return Err(RowError::new(line, c.name, "list items must be strings")),
                    }
                }
                parts.join(";")
            }
            Some(_) => return Err(RowError::new(line, c.name, "must be a string or a number")),
        };
        values.push(v);
    }
    Ok(RawRow { line, values })
}

trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "bad data",
            serde_json::error::Category::Eof => "cut off",
        }
    }
}
