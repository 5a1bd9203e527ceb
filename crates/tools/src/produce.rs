//! A provider's producer: one feed file to Kafka.
//!
//! Rows are read in file order, pseudonymised (raw ids never leave this
//! process), validated and published with the idempotent producer in
//! batches; a bad row is reported with its file and line, skipped and
//! counted; the run fails when more than a set share of rows is bad.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use epitrace_core::config::ExposureConfig;
use epitrace_feeds::{Feed, FeedReader, Format, Produced, Pseudonymizer, RowError};
use epitrace_model::EventTime;
use epitrace_model::topics::PROVIDER_HEADER;
use epitrace_stream::publish::Outgoing;
use epitrace_stream::{OutputRecord, Publisher};

use crate::ToolError;

/// A record header: name, value.
type Header<'a> = (&'a str, &'a [u8]);

/// What to produce.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// The feed.
    pub feed: Feed,
    /// The file.
    pub input: PathBuf,
    /// Its format (default: from the extension).
    pub format: Option<Format>,
    /// Most records per second (none: as fast as Kafka takes them).
    pub rate: Option<f64>,
    /// Records per batch handed to the producer.
    pub batch: usize,
    /// Refuse timestamps more than a day after this (the wall clock).
    pub now: Option<EventTime>,
    /// The exposure rule's look-back (default infectious start of cases).
    pub exposure: ExposureConfig,
    /// Accepted values of the `provider` and `issuer` columns (empty:
    /// any identifier), from `feeds.providers`.
    pub providers: Vec<String>,
    /// The provider named in every feed record's `epitrace.provider`
    /// header (`--provider`); `None`: the record's own `provider`
    /// (telecom) or `issuer` (card) column, and no header on check-ins.
    pub provider: Option<String>,
}

impl ProduceOptions {
    /// Publishing `input` as `feed` with the defaults: the format from the
    /// extension, no rate limit, batches of 5,000, no clock check, each
    /// record's own provider in its header; `providers` as
    /// `feeds.providers`.
    #[must_use]
    pub fn new(
        feed: Feed,
        input: PathBuf,
        exposure: ExposureConfig,
        providers: Vec<String>,
    ) -> Self {
        Self {
            feed,
            input,
            format: None,
            rate: None,
            batch: 5_000,
            now: None,
            exposure,
            providers,
            provider: None,
        }
    }
}

/// How a run went.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Rows read (good and bad).
    pub rows: u64,
    /// Records published.
    pub published: u64,
    /// Rows skipped.
    pub bad: u64,
    /// Bad rows by column.
    pub bad_by_field: BTreeMap<String, u64>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Summary {
    /// Share of rows that were bad.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn bad_share(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.bad as f64 / self.rows as f64
        }
    }
}

/// Progress, reported after each batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Rows read so far.
    pub rows: u64,
    /// Records published so far.
    pub published: u64,
    /// Bad rows so far.
    pub bad: u64,
    /// Seconds since the start.
    pub seconds: f64,
}

/// Publishes a feed file. `on_bad` sees every bad row (to report it with
/// the file name); `on_progress` sees every batch.
///
/// # Errors
/// [`ToolError::Feed`] when the file or its header is unusable,
/// [`ToolError::Stream`] when Kafka refuses a batch.
pub async fn produce(
    opts: &ProduceOptions,
    pseudonyms: Pseudonymizer,
    publisher: &Publisher,
    mut on_bad: impl FnMut(&Path, &RowError),
    mut on_progress: impl FnMut(&Progress),
) -> Result<Summary, ToolError> {
    let format = opts.format.unwrap_or_else(|| Format::of_path(&opts.input));
    let reader = FeedReader::open(
        &opts.input,
        opts.feed,
        format,
        pseudonyms,
        opts.exposure.clone(),
        opts.now,
    )?
    .with_providers(opts.providers.clone());
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut batch: Vec<(OutputRecord, Option<String>)> = Vec::with_capacity(opts.batch.max(1));
    let flush = |batch: &mut Vec<(OutputRecord, Option<String>)>, summary: &mut Summary| {
        let n = batch.len() as u64;
        let out = std::mem::take(batch);
        summary.published += n;
        async move {
            let headers: Vec<Option<[Header<'_>; 1]>> = out
                .iter()
                .map(|(_, p)| p.as_ref().map(|p| [(PROVIDER_HEADER, p.as_bytes())]))
                .collect();
            let records: Vec<Outgoing<'_>> = out
                .iter()
                .zip(&headers)
                .map(|((r, _), h)| Outgoing {
                    headers: h.as_ref().map_or(&[], |h| h.as_slice()),
                    ..Outgoing::from(r)
                })
                .collect();
            publisher.send(&records).await
        }
    };
    for row in reader {
        summary.rows += 1;
        match row {
            Ok(record) => {
                let provider = opts.provider.clone().or_else(|| match &record {
                    Produced::Ping(p) => Some(p.provider.as_str().to_owned()),
                    Produced::Card(c) => Some(c.issuer.as_str().to_owned()),
                    _ => None,
                });
                batch.push((
                    OutputRecord {
                        topic: record.topic().to_owned(),
                        key: record.key(),
                        payload: record.encode()?,
                        timestamp_ms: None,
                    },
                    provider,
                ));
            }
            Err(e) => {
                summary.bad += 1;
                *summary.bad_by_field.entry(e.field.to_owned()).or_default() += 1;
                on_bad(&opts.input, &e);
            }
        }
        if batch.len() >= opts.batch.max(1) {
            flush(&mut batch, &mut summary).await?;
            throttle(opts.rate, summary.published, started).await;
            on_progress(&progress(&summary, started));
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut summary).await?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    on_progress(&progress(&summary, started));
    Ok(summary)
}

fn progress(s: &Summary, started: Instant) -> Progress {
    Progress {
        rows: s.rows,
        published: s.published,
        bad: s.bad,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Sleeps until `published` records are no faster than `rate` per second.
#[allow(clippy::cast_precision_loss)]
async fn throttle(rate: Option<f64>, published: u64, started: Instant) {
    let Some(rate) = rate.filter(|r| *r > 0.0) else {
        return;
    };
    let due = Duration::from_secs_f64(published as f64 / rate);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}
