//! The schemas as providers see them: which record each topic carries, the
//! bytes that open its single-object frames, and its registration in a
//! Confluent-compatible Schema Registry (`epitrace schemas register`).

use epitrace_model::schema::{SCHEMA_FILES, SchemaFile, SchemaSet};
use epitrace_model::topics;
use epitrace_stream::registry::RegistryClient;

use crate::ToolError;

/// The first 10 bytes of a single-object frame written with the schema of
/// fingerprint `fp`, as hex, exactly as they appear on the wire: `c301`
/// and the fingerprint's 8 bytes little-endian.
#[must_use]
pub fn frame_header_hex(fp: u64) -> String {
    let mut s = String::from("c301");
    for b in fp.to_le_bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The topics whose records are `record` (a `schemas/` record name).
#[must_use]
pub fn topics_of(record: &str) -> Vec<&'static str> {
    topics::REGISTERED
        .iter()
        .copied()
        .filter(|t| topics::record_of(t) == Some(record))
        .collect()
}

/// The schema file of `record`.
#[must_use]
pub fn file_of(record: &str) -> Option<&'static SchemaFile> {
    SCHEMA_FILES.iter().find(|f| f.record == record)
}

/// The registry subject of a topic's values (TopicNameStrategy).
#[must_use]
pub fn subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// One topic's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The topic.
    pub topic: &'static str,
    /// Its subject, `<topic>-value`.
    pub subject: String,
    /// Each schema version registered, oldest first: its label
    /// (`released/v1`, …, `current`) and the registry's id.
    pub versions: Vec<(String, u32)>,
}

/// Registers, under `<topic>-value` of every topic with one record type
/// ([`topics::REGISTERED`]), the compatibility level `compatibility`, then
/// every released schema of its record, oldest first, then the current
/// one — the exact `.avsc` texts, so that a serializer holding the same
/// file finds the same id. Idempotent: run again, it registers nothing new
/// and reports the same ids.
///
/// # Errors
/// [`ToolError::Registry`]: the registry did not answer, or refused a
/// version as incompatible with the subject's history.
pub async fn register_all(
    client: &RegistryClient,
    compatibility: &str,
) -> Result<Vec<Registered>, ToolError> {
    let mut out = Vec::new();
    for &topic in topics::REGISTERED {
        let Some(file) = topics::record_of(topic).and_then(file_of) else {
            continue;
        };
        let subject = subject(topic);
        client.set_compatibility(&subject, compatibility).await?;
        let mut versions = Vec::new();
        for (label, text) in file.released {
            let id = client.register(&subject, text).await?;
            versions.push((format!("released/{label}"), id));
        }
        let id = client.register(&subject, file.current).await?;
        versions.push(("current".to_owned(), id));
        out.push(Registered {
            topic,
            subject,
            versions,
        });
    }
    Ok(out)
}

/// The current schema set of a file (for fingerprints).
///
/// # Errors
/// [`ToolError::Model`] when a compiled-in schema does not parse (a bug).
pub fn set_of(file: &SchemaFile) -> Result<SchemaSet, ToolError> {
    Ok(SchemaSet::build(file)?)
}
