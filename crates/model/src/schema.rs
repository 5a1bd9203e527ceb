//! The Avro schemas compiled into this crate, their fingerprints, and the set
//! of writer schemas each record can be read from.
//!
//! Every `.avsc` in `schemas/` (the current schemas) and in
//! `schemas/released/vN/` (the baselines producers may still write with) is
//! embedded with `include_str!`. A [`SchemaSet`] holds, for one record, the
//! current schema (what this build writes and reads into) and every known
//! writer schema by single-object fingerprint.
//!
//! ## Fingerprints
//!
//! The single-object fingerprint is the CRC-64-AVRO (Rabin) of the schema's
//! Parsing Canonical Form (PCF), written little-endian after `C3 01`.
//! apache-avro 0.22's `Schema::canonical_form` keeps a logical type's
//! primitive as `{"type":"long"}`, where the specification's `[PRIMITIVES]`
//! rule and the Java reference implementation give `"long"`; every epitrace
//! record has `timestamp-millis` fields, so the two disagree for all of them.
//! [`canonical_form`] follows the specification (interoperable with Java
//! producers and consumers) and is what epitrace writes; the fingerprint of
//! apache-avro's form is also registered as a reader alias so that frames
//! written by apache-avro's own single-object writer still decode.

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::error::ModelError;

/// One record's schema files, as compiled in.
#[derive(Debug)]
pub struct SchemaFile {
    /// The Avro record name (without namespace).
    pub record: &'static str,
    /// The file name in `schemas/`.
    pub file: &'static str,
    /// The current schema text.
    pub current: &'static str,
    /// Released versions, oldest first: (`"v1"`, text).
    pub released: &'static [(&'static str, &'static str)],
}

/// Declares a record's [`SchemaFile`]. Releasing a version `vN` adds one
/// `("vN", …)` line to `released` here; every record has every version.
macro_rules! schema_file {
    ($const:ident, $record:literal, $file:literal) => {
        #[doc = concat!("`schemas/", $file, "` and its released versions.")]
        pub const $const: SchemaFile = SchemaFile {
            record: $record,
            file: $file,
            current: include_str!(concat!("../../../schemas/", $file)),
            released: &[(
                "v1",
                include_str!(concat!("../../../schemas/released/v1/", $file)),
            )],
        };
    };
}

schema_file!(LOCATION_PING, "LocationPing", "location_ping.avsc");
schema_file!(CARD_TRANSACTION, "CardTransaction", "card_transaction.avsc");
schema_file!(VENUE_CHECKIN, "VenueCheckin", "venue_checkin.avsc");
schema_file!(CASE_EVENT, "CaseEvent", "case_event.avsc");
schema_file!(
    DATA_ACCESS_APPROVAL,
    "DataAccessApproval",
    "data_access_approval.avsc"
);
schema_file!(INTERVIEW_ENTRY, "InterviewEntry", "interview_entry.avsc");
schema_file!(VISIT, "Visit", "visit.avsc");
schema_file!(EXPOSURE, "Exposure", "exposure.avsc");
schema_file!(CLUSTER_ALERT, "ClusterAlert", "cluster_alert.avsc");
schema_file!(DEAD_LETTER, "DeadLetter", "dead_letter.avsc");
schema_file!(AUDIT_RECORD, "AuditRecord", "audit_record.avsc");
schema_file!(SUBJECT_CASE, "SubjectCase", "subject_case.avsc");
schema_file!(SEGMENT_UPDATE, "SegmentUpdate", "segment_update.avsc");
schema_file!(
    EXPOSURE_CANDIDATE,
    "ExposureCandidate",
    "exposure_candidate.avsc"
);

/// Every record's schema files: the topic records of DESIGN §3, then the
/// internal records of the repartition topics (DESIGN §4).
pub const SCHEMA_FILES: &[SchemaFile] = &[
    LOCATION_PING,
    CARD_TRANSACTION,
    VENUE_CHECKIN,
    CASE_EVENT,
    DATA_ACCESS_APPROVAL,
    INTERVIEW_ENTRY,
    VISIT,
    EXPOSURE,
    CLUSTER_ALERT,
    DEAD_LETTER,
    AUDIT_RECORD,
    SUBJECT_CASE,
    SEGMENT_UPDATE,
    EXPOSURE_CANDIDATE,
];

/// A schema a record may have been written with.
#[derive(Debug)]
pub struct WriterSchema {
    /// Where it comes from: `"current"`, `"released/v1"`; with a
    /// `" (apache-avro pcf)"` suffix for the library-fingerprint alias.
    pub label: String,
    /// Its single-object fingerprint.
    pub fingerprint: u64,
    /// The schema.
    pub schema: Schema,
    /// Whether its canonical form equals the current schema's, so data
    /// written with it needs no schema resolution.
    pub same_as_current: bool,
}

/// One record's current schema and every writer schema it can be read from.
#[derive(Debug)]
pub struct SchemaSet {
    current: Schema,
    canonical: String,
    fingerprint: u64,
    writers: Vec<WriterSchema>,
    /// Built once per process for the compiled-in sets (see
    /// [`SchemaSet::datum_writer`]): resolving a schema's names allocates,
    /// which cost about a microsecond per record when done per call.
    cache: DatumCache,
}

/// Lazily built readers and writer of a `'static` [`SchemaSet`].
#[derive(Default)]
struct DatumCache {
    writer: OnceLock<GenericDatumWriter<'static>>,
    /// One reader per entry of `writers`, same order.
    readers: Vec<OnceLock<GenericDatumReader<'static>>>,
}

impl std::fmt::Debug for DatumCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatumCache")
            .field("writer", &self.writer.get().is_some())
            .finish_non_exhaustive()
    }
}

impl SchemaSet {
    /// Parses a record's schema files.
    ///
    /// # Errors
    /// [`ModelError::Avro`] when a file does not parse.
    pub fn build(file: &SchemaFile) -> Result<Self, ModelError> {
        let current = parse(file.current)?;
        let current_pcf = canonical_form(&current);
        let fingerprint = rabin(current_pcf.as_bytes());
        let mut set = Self {
            current: current.clone(),
            canonical: current_pcf,
            fingerprint,
            writers: Vec::new(),
            cache: DatumCache::default(),
        };
        set.add("current", current)?;
        for (version, text) in file.released {
            set.add(&format!("released/{version}"), parse(text)?)?;
        }
        set.cache.readers = set.writers.iter().map(|_| OnceLock::new()).collect();
        Ok(set)
    }

    /// Registers a writer schema under its specification fingerprint and,
    /// when different, apache-avro's.
    fn add(&mut self, label: &str, schema: Schema) -> Result<(), ModelError> {
        let pcf = canonical_form(&schema);
        let same_as_current = pcf == self.canonical;
        let spec = rabin(pcf.as_bytes());
        let library = library_fingerprint(&schema);
        if self.writer(spec).is_none() {
            self.writers.push(WriterSchema {
                label: label.to_owned(),
                fingerprint: spec,
                schema: schema.clone(),
                same_as_current,
            });
        }
        if self.writer(library).is_none() {
            self.writers.push(WriterSchema {
                label: format!("{label} (apache-avro pcf)"),
                fingerprint: library,
                schema,
                same_as_current,
            });
        }
        Ok(())
    }

    /// The current schema: what this build writes, and reads everything into.
    #[must_use]
    pub const fn current(&self) -> &Schema {
        &self.current
    }

    /// The current schema's Parsing Canonical Form (see [`canonical_form`]).
    #[must_use]
    pub fn canonical_form(&self) -> &str {
        &self.canonical
    }

    /// The current schema's single-object fingerprint.
    #[must_use]
    pub const fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The writer schema with this fingerprint.
    #[must_use]
    pub fn writer(&self, fingerprint: u64) -> Option<&WriterSchema> {
        self.writers.iter().find(|w| w.fingerprint == fingerprint)
    }

    /// Every known writer schema.
    pub fn writers(&self) -> impl Iterator<Item = &WriterSchema> {
        self.writers.iter()
    }

    /// The datum writer of the current schema, built on first use.
    pub(crate) fn datum_writer(
        &'static self,
    ) -> Result<&'static GenericDatumWriter<'static>, ModelError> {
        if let Some(w) = self.cache.writer.get() {
            return Ok(w);
        }
        let w = GenericDatumWriter::builder(&self.current)
            .build()
            .map_err(|e| ModelError::Avro(e.to_string()))?;
        Ok(self.cache.writer.get_or_init(|| w))
    }

    /// The reader of data written with the writer schema of `fingerprint`
    /// (resolving to the current schema when they differ), built on first
    /// use; `None` for an unknown fingerprint.
    pub(crate) fn datum_reader(
        &'static self,
        fingerprint: u64,
    ) -> Result<Option<&'static GenericDatumReader<'static>>, ModelError> {
        let Some(i) = self
            .writers
            .iter()
            .position(|w| w.fingerprint == fingerprint)
        else {
            return Ok(None);
        };
        let (Some(writer), Some(slot)) = (self.writers.get(i), self.cache.readers.get(i)) else {
            return Ok(None);
        };
        if let Some(r) = slot.get() {
            return Ok(Some(r));
        }
        let r = GenericDatumReader::builder(&writer.schema)
            .maybe_reader_schema((!writer.same_as_current).then_some(&self.current))
            .build()
            .map_err(|e| ModelError::Avro(e.to_string()))?;
        Ok(Some(slot.get_or_init(|| r)))
    }
}

/// Parses a schema.
///
/// # Errors
/// [`ModelError::Avro`] with the parser's message.
pub fn parse(text: &str) -> Result<Schema, ModelError> {
    Schema::parse_str(text).map_err(|e| ModelError::Avro(e.to_string()))
}

/// Builds the [`SchemaSet`] of a compiled-in schema file.
///
/// The schema texts are part of the binary, so a failure is a programming
/// error that the `every_schema_parses` test catches before it can ship.
#[allow(clippy::expect_used)]
pub(crate) fn compiled(file: &SchemaFile) -> SchemaSet {
    SchemaSet::build(file).expect("compiled-in schema must parse (see tests/schemas.rs)")
}

/// The Parsing Canonical Form of `schema`, per the Avro specification.
///
/// apache-avro's form with the `[PRIMITIVES]` rule applied to what remains of
/// a logical type once `[STRIP]` has removed `logicalType`: `{"type":"long"}`
/// becomes `"long"`. No name, symbol or field of a canonical form can contain
/// a brace, so the textual replacement cannot hit anything else.
#[must_use]
pub fn canonical_form(schema: &Schema) -> String {
    const PRIMITIVES: [&str; 8] = [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ];
    let mut pcf = schema.canonical_form();
    for p in PRIMITIVES {
        pcf = pcf.replace(&format!(r#"{{"type":"{p}"}}"#), &format!(r#""{p}""#));
    }
    pcf
}

/// The single-object fingerprint of `schema` ([`canonical_form`], Rabin).
#[must_use]
pub fn fingerprint(schema: &Schema) -> u64 {
    rabin(canonical_form(schema).as_bytes())
}

/// The fingerprint apache-avro's single-object writer uses (Rabin of the
/// library's own canonical form).
#[must_use]
pub fn library_fingerprint(schema: &Schema) -> u64 {
    rabin(schema.canonical_form().as_bytes())
}

/// CRC-64-AVRO ("Rabin") of `bytes`, as the specification defines it.
#[must_use]
pub fn rabin(bytes: &[u8]) -> u64 {
    let mut fp = RABIN_EMPTY;
    for &b in bytes {
        fp = (fp >> 8) ^ RABIN_TABLE[usize::from(fp.to_le_bytes()[0] ^ b)];
    }
    fp
}

const RABIN_EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const RABIN_TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (RABIN_EMPTY & 0u64.wrapping_sub(fp & 1));
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};
