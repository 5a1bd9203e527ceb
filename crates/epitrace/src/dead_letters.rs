//! `epitrace dead-letters`: the records the pipeline refused, with their
//! reasons — every dead letter (`pipeline.deadletter`, operators) or a
//! provider's own (`pipeline.deadletter.<ID>`, the provider).
//!
//! Personal data stays out: a dead letter is shown by where the record was
//! (topic, partition, offset), why it was refused, when, and its size —
//! never its key or bytes. The offset finds the record in the provider's
//! own feed.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use epitrace_model::DeadLetter;
use epitrace_model::codec::{DecodeOptions, decode_single_object};
use epitrace_model::topics::{DEADLETTER, provider_dead_letters};
use epitrace_stream::read::read_own_to_end;
use serde_json::json;

use crate::settings::{Overrides, load};

/// `epitrace dead-letters` flags.
#[derive(Debug, Args)]
pub(crate) struct DeadLettersArgs {
    /// Read this provider's own topic, `pipeline.deadletter.<ID>`, as the
    /// provider (consumer group `deadletters.<ID>`; the grants to ask for
    /// are in deploy/README.md). Without it: `pipeline.deadletter`, every
    /// dead letter (operators).
    #[arg(long, value_name = "ID")]
    provider: Option<String>,
    /// One JSON object per dead letter (topic, partition, offset,
    /// reason_code, detail, dead_lettered_at, payload_bytes) instead of
    /// lines; the summary goes to stderr.
    #[arg(long)]
    json: bool,
    /// How long reading the topic to its end may take, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    #[command(flatten)]
    overrides: Overrides,
}

pub(crate) fn dead_letters_cmd(args: &DeadLettersArgs, out: &mut impl Write) -> Result<()> {
    let topic = match &args.provider {
        Some(p) => provider_dead_letters(p).with_context(|| {
            format!("--provider {p:?} is not a provider id (1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-')")
        })?,
        None => DEADLETTER.to_owned(),
    };
    let cfg = load(&args.overrides)?;
    crate::require_kafka(&cfg.kafka)?;
    let timeout = Duration::from_secs(args.timeout_s.max(1));
    let records = match &args.provider {
        Some(p) => read_own_to_end(&cfg.kafka, &topic, &format!("deadletters.{p}"), timeout)
            .with_context(|| {
                format!(
                    "cannot read {topic}: it must exist (topology.dead_letter_providers) and your \
                     principal needs Read on it and on group deadletters.{p}; ask the authority"
                )
            })?,
        None => read_own_to_end(
            &cfg.kafka,
            &topic,
            &format!("{}.reader", cfg.kafka.group_prefix),
            timeout,
        )
        .with_context(|| format!("cannot read {topic}"))?,
    };
    let mut shown = 0u64;
    let mut undecodable = 0u64;
    for r in &records {
        let letter = r
            .payload
            .as_deref()
            .map(|p| decode_single_object::<DeadLetter>(p, &DecodeOptions::default()));
        let Some(Ok(letter)) = letter else {
            undecodable += 1;
            writeln!(
                std::io::stderr(),
                "{topic}/{}@{}: not a dead letter this epitrace can read",
                r.partition,
                r.offset
            )?;
            continue;
        };
        shown += 1;
        let at = epitrace_feeds::format_time(letter.dead_lettered_at);
        if args.json {
            let line = json!({
                "topic": letter.topic.as_str(),
                "partition": letter.partition,
                "offset": letter.offset,
                "reason_code": letter.reason_code.as_str(),
                "detail": letter.detail.as_str(),
                "dead_lettered_at": at,
                "payload_bytes": letter.payload.len(),
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{}/{}@{} {}: {} (dead-lettered {at}, {} bytes)",
                letter.topic.as_str(),
                letter.partition,
                letter.offset,
                letter.reason_code.as_str(),
                letter.detail.as_str(),
                letter.payload.len()
            )?;
        }
    }
    let summary = if undecodable > 0 {
        format!("{shown} dead letters on {topic}, {undecodable} undecodable")
    } else {
        format!("{shown} dead letters on {topic}")
    };
    if args.json {
        writeln!(std::io::stderr(), "{summary}")?;
    } else {
        writeln!(out, "{summary}")?;
    }
    Ok(())
}
