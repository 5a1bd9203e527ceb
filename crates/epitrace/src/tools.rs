//! `epitrace sim`, `epitrace produce` and `epitrace eval`: flags and
//! output around `epitrace-sim` and `epitrace-tools`.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use epitrace_feeds::{Feed, Format, PseudonymKey, Pseudonymizer, RawRow, RowConverter};
use epitrace_model::EventTime;
use epitrace_sim::city::files::{FileSink, demo_key, write_truth};
use epitrace_sim::city::{CityConfig, Malformed, RowSink, simulate};
use epitrace_stream::{OutputRecord, Publisher};
use epitrace_tools::calibration::{
    examples, fit, fit_toml, likelihood_report, read_examples, write_examples,
};
use epitrace_tools::eval::{
    TruthSet, evaluate, evaluate_clusters, live_exposures, one_to_one, read_exposures, table,
};
use epitrace_tools::produce::{ProduceOptions, Progress, produce};
use epitrace_tools::query::{live_clusters, read_clusters};

use crate::settings::{Overrides, load};

/// `epitrace sim` flags.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 2020)]
    seed: u64,
    /// Residents.
    #[arg(long, default_value_t = 20_000)]
    residents: u32,
    /// Days simulated (from Friday 2020-05-01, Seoul time).
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Output folder: the feed files (unless --publish), the ground truth
    /// (truth/), manifest.json and a demo pseudonymisation key.
    #[arg(long)]
    out: PathBuf,
    /// Feed file format.
    #[arg(long, value_enum, default_value_t = FileFormat::Csv)]
    format: FileFormat,
    /// Share of phones reporting GPS/Wi-Fi fixes (the rest: towers only).
    #[arg(long, default_value_t = 0.3)]
    precise_phones: f64,
    /// Share of a precise phone's records that are fixes (not towers).
    #[arg(long, default_value_t = 0.8)]
    precise_fix_share: f64,
    /// Mean telecom records per phone per day.
    #[arg(long, default_value_t = 230.0)]
    pings_per_day: f64,
    /// Residents infected at the start.
    #[arg(long, default_value_t = 5)]
    index_cases: u32,
    /// Multiplier of every transmission rate.
    #[arg(long, default_value_t = 1.0)]
    transmissibility: f64,
    /// Share of malformed rows.
    #[arg(long, default_value_t = 0.001)]
    malformed_share: f64,
    /// Share of person-day blocks delivered a day late.
    #[arg(long, default_value_t = 0.02)]
    late_share: f64,
    /// Shift the whole run by this many days (to keep two runs on one
    /// broker apart in time).
    #[arg(long, default_value_t = 0)]
    shift_days: u32,
    /// Publish the feeds to Kafka (pseudonymised with --key, or the demo key
    /// written to --out) instead of writing feed files; the truth still goes
    /// to --out.
    #[arg(long)]
    publish: bool,
    /// Pseudonymisation key file for --publish (default: the demo key).
    #[arg(long)]
    key: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FileFormat {
    /// CSV with a header.
    Csv,
    /// JSON Lines.
    Jsonl,
}

impl From<FileFormat> for Format {
    fn from(f: FileFormat) -> Self {
        match f {
            FileFormat::Csv => Self::Csv,
            FileFormat::Jsonl => Self::JsonLines,
        }
    }
}

/// Publishes simulator rows straight to Kafka.
struct KafkaSink<'a> {
    converter: RowConverter,
    publisher: &'a Publisher,
    runtime: &'a tokio::runtime::Runtime,
    batch: Vec<OutputRecord>,
    published: u64,
}

impl KafkaSink<'_> {
    fn flush(&mut self) -> Result<()> {
        let out = std::mem::take(&mut self.batch);
        self.published += out.len() as u64;
        self.runtime.block_on(self.publisher.send_all(&out))?;
        Ok(())
    }
}

impl RowSink for KafkaSink<'_> {
    type Error = anyhow::Error;

    fn row(&mut self, feed: Feed, values: &[String]) -> Result<()> {
        let row = RawRow {
            line: 0,
            values: values.to_vec(),
        };
        let record = self.converter.convert(feed, &row).map_err(|e| {
            anyhow::anyhow!("a simulated {} row failed validation: {e}", feed.name())
        })?;
        self.batch.push(OutputRecord {
            topic: record.topic().to_owned(),
            key: record.key(),
            payload: record.encode()?,
            timestamp_ms: None,
        });
        if self.batch.len() >= 5_000 {
            self.flush()?;
        }
        Ok(())
    }

    fn malformed(&mut self, _feed: Feed, _row: &Malformed) -> Result<()> {
        // A producer rejects these before Kafka: nothing to publish.
        Ok(())
    }
}

pub(crate) fn sim(args: &SimArgs, out: &mut impl Write) -> Result<()> {
    let cfg = CityConfig {
        seed: args.seed,
        residents: args.residents,
        days: args.days,
        precise_phones: args.precise_phones,
        precise_fix_share: args.precise_fix_share,
        pings_per_day: args.pings_per_day,
        index_cases: args.index_cases,
        transmissibility: args.transmissibility,
        malformed_share: args.malformed_share,
        late_share: args.late_share,
        start_ms: CityConfig::default().start_ms + i64::from(args.shift_days) * 86_400_000,
        start_weekday: (CityConfig::default().start_weekday + args.shift_days) % 7,
        ..CityConfig::default()
    };
    cfg.validate().map_err(anyhow::Error::msg)?;
    let pipeline = load(&args.overrides)?;
    let exposure = pipeline.tracing.exposure.clone();
    let started = Instant::now();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let manifest = if args.publish {
        crate::require_kafka(&pipeline.kafka)?;
        let key = match &args.key {
            Some(path) => PseudonymKey::from_file(path)?,
            None => PseudonymKey::from_file(&write_demo_key(&args.out, args.seed)?)?,
        };
        let runtime = crate::runtime()?;
        let publisher = runtime.block_on(async { Publisher::new(&pipeline.kafka) })?;
        let mut sink = KafkaSink {
            converter: RowConverter::new(Pseudonymizer::new(key), exposure.clone(), None),
            publisher: &publisher,
            runtime: &runtime,
            batch: Vec::new(),
            published: 0,
        };
        let (world, counts, truth) = simulate(&cfg, &exposure, &mut sink)?;
        sink.flush()?;
        writeln!(
            out,
            "published {} records to {}",
            sink.published, pipeline.kafka.brokers
        )?;
        write_truth(&cfg, &world, counts, &truth, &args.out)?
    } else {
        let mut sink = FileSink::create(&args.out, args.format.into())?;
        let (world, counts, truth) = simulate(&cfg, &exposure, &mut sink)?;
        sink.finish()?;
        write_truth(&cfg, &world, counts, &truth, &args.out)?
    };
    writeln!(
        out,
        "{} residents, {} days (seed {}): {} telecom, {} card, {} check-in rows ({} malformed, {} duplicated, {} blocks a day late); {} infections, {} cases, {} true exposures, {} true clusters; {:.1} s",
        manifest.residents,
        manifest.days,
        manifest.seed,
        manifest.counts.rows.get("telecom").copied().unwrap_or(0),
        manifest.counts.rows.get("card").copied().unwrap_or(0),
        manifest.counts.rows.get("checkin").copied().unwrap_or(0),
        manifest.counts.malformed.values().sum::<u64>(),
        manifest.counts.duplicates,
        manifest.counts.late_blocks,
        manifest.infections,
        manifest.cases,
        manifest.true_exposures,
        manifest.clusters,
        started.elapsed().as_secs_f64(),
    )?;
    writeln!(out, "written to {}", args.out.display())?;
    Ok(())
}

fn write_demo_key(dir: &Path, seed: u64) -> Result<PathBuf> {
    let path = dir.join("pseudonym.key");
    std::fs::write(&path, format!("{}\n", demo_key(seed)))?;
    Ok(path)
}

/// `epitrace produce` flags.
#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// The feed: telecom, card, checkin, cases or approvals (column sets: README,
    /// "Provider files").
    #[arg(long)]
    feed: Feed,
    /// The file: CSV with a header, or JSON Lines (.jsonl/.ndjson).
    #[arg(long)]
    input: PathBuf,
    /// Format, when the extension does not say.
    #[arg(long, value_enum)]
    format: Option<FileFormat>,
    /// The authority's pseudonymisation key (hex, 32+ bytes): raw phone and
    /// card numbers are replaced by HMAC-SHA-256 pseudonyms before anything
    /// leaves this process.
    #[arg(long, env = "EPITRACE_PSEUDONYM_KEY")]
    key: PathBuf,
    /// Most records per second (default: no limit).
    #[arg(long)]
    rate: Option<f64>,
    /// Fail (exit 1) when more than this share of rows is bad (bad rows are
    /// always skipped and reported).
    #[arg(long, default_value_t = 0.01)]
    max_bad_share: f64,
    /// Records per producer batch.
    #[arg(long, default_value_t = 2_000)]
    batch: usize,
    /// Don't report bad rows one by one (the summary still counts them).
    #[arg(long)]
    quiet: bool,
    /// Your provider id, sent in every record's `epitrace.provider` header:
    /// the dead letters of your records are copied to
    /// `pipeline.deadletter.<ID>` when the authority lists you in
    /// `topology.dead_letter_providers`. Default: each record's own
    /// `provider` (telecom) or `issuer` (card) column; check-ins carry no
    /// header without it. 1 to 64 characters of A-Z a-z 0-9 . _ -
    #[arg(long, value_name = "ID")]
    provider: Option<String>,
    #[command(flatten)]
    overrides: Overrides,
}

fn now() -> Option<EventTime> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis();
    EventTime::from_millis("now", i64::try_from(ms).ok()?).ok()
}

pub(crate) fn produce_cmd(args: &ProduceArgs, out: &mut impl Write) -> Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.max_bad_share),
        "--max-bad-share must be within [0, 1]"
    );
    anyhow::ensure!(args.rate.is_none_or(|r| r > 0.0), "--rate must be positive");
    if let Some(p) = &args.provider {
        anyhow::ensure!(
            epitrace_model::topics::provider_dead_letters(p).is_some(),
            "--provider {p:?} is not a provider id (1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-')"
        );
    }
    let cfg = load(&args.overrides)?;
    let key = PseudonymKey::from_file(&args.key)?;
    crate::require_kafka(&cfg.kafka)?;
    let opts = ProduceOptions {
        feed: args.feed,
        input: args.input.clone(),
        format: args.format.map(Into::into),
        rate: args.rate,
        batch: args.batch.max(1),
        now: now(),
        exposure: cfg.tracing.exposure.clone(),
        providers: cfg.feeds.providers.clone(),
        provider: args.provider.clone(),
    };
    let terminal = io::stderr().is_terminal();
    let mut last = Instant::now();
    let name = args.input.display().to_string();
    let quiet = args.quiet;
    let summary = crate::runtime()?.block_on(async {
        let publisher = Publisher::new(&cfg.kafka)?;
        let s = produce(
            &opts,
            Pseudonymizer::new(key),
            &publisher,
            |path, e| {
                if !quiet {
                    let _ = writeln!(
                        io::stderr(),
                        "{}:{}: {}: {}",
                        path.display(),
                        e.line,
                        e.field,
                        e.reason
                    );
                }
            },
            |p: &Progress| {
                let every = if terminal {
                    Duration::from_millis(250)
                } else {
                    Duration::from_secs(5)
                };
                if last.elapsed() >= every {
                    last = Instant::now();
                    let line = progress_line(&name, p);
                    let _ = if terminal {
                        write!(io::stderr(), "\r{line}\x1b[K")
                    } else {
                        writeln!(io::stderr(), "{line}")
                    };
                }
            },
        )
        .await?;
        publisher.flush()?;
        anyhow::Ok(s)
    })?;
    if terminal {
        let _ = writeln!(io::stderr());
    }
    writeln!(
        out,
        "{name}: {} rows, {} published, {} bad ({:.3}%) in {:.1} s ({:.0} records/s)",
        summary.rows,
        summary.published,
        summary.bad,
        summary.bad_share() * 100.0,
        summary.seconds,
        rate(summary.published, summary.seconds),
    )?;
    for (field, n) in &summary.bad_by_field {
        writeln!(out, "  bad {field}: {n}")?;
    }
    if summary.bad_share() > args.max_bad_share {
        bail!(
            "{name}: {:.3}% of rows are bad, above --max-bad-share {:.3}%",
            summary.bad_share() * 100.0,
            args.max_bad_share * 100.0
        );
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

fn progress_line(name: &str, p: &Progress) -> String {
    format!(
        "{name}: {} rows, {} published, {} bad, {:.0} records/s",
        p.rows,
        p.published,
        p.bad,
        rate(p.published, p.seconds)
    )
}

/// `epitrace eval` flags.
#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// The simulator's output folder (truth/: people, cases, contacts and
    /// clusters).
    #[arg(long)]
    truth: PathBuf,
    /// The pseudonymisation key the feeds were produced with (default: the
    /// folder's demo key).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Also write the report as JSON here (with every missed and unmatched
    /// pair and cluster).
    #[arg(long)]
    json: Option<PathBuf>,
    /// How long to wait for tracing.exposures, then tracing.clusters, to be
    /// read to its end (each).
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    /// Also write every scored exposure as a labelled example here (CSV:
    /// case, contact resident, location basis, likelihood, class, truth),
    /// the input of `epitrace calibrate`.
    #[arg(long)]
    examples: Option<PathBuf>,
    /// With --json: do not draw the PNG plots beside it (precision-recall
    /// curve, reliability diagram, cluster matches).
    #[arg(long)]
    no_plots: bool,
    /// The TrueType font of the plots' text (default: DejaVu Sans or
    /// Liberation Sans from /usr/share/fonts).
    #[arg(long, value_name = "FILE")]
    plot_font: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

/// `epitrace calibrate` flags.
#[derive(Debug, Args)]
pub(crate) struct CalibrateArgs {
    /// Example files written by `epitrace eval --examples` (one or more
    /// cities; never the one you will evaluate).
    #[arg(required = true)]
    examples: Vec<PathBuf>,
    /// Where the model comes from, written into the table's provenance
    /// (e.g. "sim seeds 11, 12: 20,000 residents x 4 days, 2026-12-07").
    #[arg(long)]
    provenance: String,
    /// Write the table here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(crate) fn calibrate_cmd(args: &CalibrateArgs, out: &mut impl Write) -> Result<()> {
    let mut examples = Vec::new();
    for path in &args.examples {
        examples.extend(read_examples(path)?);
    }
    let fitted = fit(&examples)?;
    let text = fit_toml(&fitted, &args.provenance);
    write!(out, "{text}")?;
    if let Some(path) = &args.out {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

pub(crate) fn eval_cmd(args: &EvalArgs, out: &mut impl Write) -> Result<()> {
    let cfg = load(&args.overrides)?;
    let key_path = args
        .key
        .clone()
        .unwrap_or_else(|| args.truth.join("pseudonym.key"));
    let key = PseudonymKey::from_file(&key_path)?;
    crate::require_kafka(&cfg.kafka)?;
    let truth = TruthSet::load(&args.truth, &key)?;
    let timeout = Duration::from_secs(args.timeout_s);
    let (versions, bad) = read_exposures(&cfg.kafka, timeout)?;
    let live = live_exposures(versions);
    let mut report = evaluate(&truth, &live);
    let examples = examples(&truth, &live);
    report.likelihood = Some(likelihood_report(&truth, &examples));
    if let Some(path) = &args.examples {
        write_examples(path, &examples)?;
    }
    let (alerts, bad_clusters) = read_clusters(&cfg.kafka, timeout)?;
    let live = live_clusters(alerts.clone());
    let mut clusters = evaluate_clusters(&truth, &live);
    clusters.one_to_one = Some(one_to_one(&truth, &live, &alerts));
    report.clusters = Some(clusters);
    write!(out, "{}", table(&report))?;
    for (n, topic) in [
        (bad, "tracing.exposures"),
        (bad_clusters, "tracing.clusters"),
    ] {
        if n > 0 {
            writeln!(out, "({n} undecodable records in {topic} were skipped)")?;
        }
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        if let (false, Some(likelihood)) = (args.no_plots, &report.likelihood) {
            let clusters = report.clusters.as_ref().and_then(|c| c.one_to_one.as_ref());
            let files = crate::plots::write_plots(
                path,
                likelihood,
                cfg.tracing.likelihood.close_threshold,
                clusters,
                args.plot_font.as_deref(),
            )?;
            for f in files {
                writeln!(out, "plot: {}", f.display())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod eval_tests {
    use std::convert::Infallible;

    use epitrace_core::config::ExposureConfig;
    use epitrace_model::records::{ClusterAlert, ClusterStatus};
    use epitrace_model::{CaseId, ClusterId, Text};

    use super::*;

    /// Feeds are not needed: only the truth.
    struct Discard;

    impl RowSink for Discard {
        type Error = Infallible;

        fn row(&mut self, _feed: Feed, _values: &[String]) -> Result<(), Infallible> {
            Ok(())
        }

        fn malformed(&mut self, _feed: Feed, _row: &Malformed) -> Result<(), Infallible> {
            Ok(())
        }
    }

    fn alert(id: &str, index: Option<&str>, cases: &[&str]) -> ClusterAlert {
        ClusterAlert {
            cluster_id: ClusterId::new(id).unwrap(),
            status: ClusterStatus::Growing,
            cases: cases.iter().map(|c| CaseId::new(*c).unwrap()).collect(),
            places: Vec::new(),
            index_case: index.map(|c| CaseId::new(c).unwrap()),
            source_evidence: Text::new("source_evidence", "test").unwrap(),
            size: u32::try_from(cases.len()).unwrap(),
            merged_into: None,
            linked_clusters: Vec::new(),
            detected_at: EventTime::from_millis("t", CityConfig::default().start_ms).unwrap(),
        }
    }

    /// The simulator's clusters.csv, read back by `eval`, scored against
    /// itself as the prediction.
    #[test]
    fn eval_loads_the_clusters_the_simulator_writes() {
        let cfg = CityConfig {
            seed: 5,
            residents: 600,
            days: 4,
            index_cases: 15,
            transmissibility: 3.0,
            ..CityConfig::default()
        };
        let Ok((world, counts, truth)) = simulate(&cfg, &ExposureConfig::default(), &mut Discard);
        let dir = tempfile::tempdir().unwrap();
        let manifest = write_truth(&cfg, &world, counts, &truth, dir.path()).unwrap();
        assert!(manifest.clusters >= 3, "{} clusters", manifest.clusters);
        let key = PseudonymKey::from_file(&dir.path().join("pseudonym.key")).unwrap();
        let set = TruthSet::load(dir.path(), &key).unwrap();
        assert_eq!(set.clusters().len(), manifest.clusters);
        for c in set.clusters() {
            assert!(c.cases.len() >= 3, "{c:?}");
            assert!(c.cases.contains(&c.index_case), "{c:?}");
            assert!(c.cases.iter().all(|id| set.has_case(id)), "{c:?}");
            assert!(!c.place.is_empty() && !c.kind.is_empty(), "{c:?}");
        }

        // The truth itself as the prediction, the first cluster's index
        // case wrong, plus another run's cluster: not counted.
        let mut live: Vec<ClusterAlert> = set
            .clusters()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let cases: Vec<&str> = c.cases.iter().map(String::as_str).collect();
                let index = if i == 0 {
                    cases.iter().copied().find(|x| *x != c.index_case)
                } else {
                    Some(c.index_case.as_str())
                };
                alert(&format!("C-{}", c.id), index, &cases)
            })
            .collect();
        live.push(alert("C-other", None, &["OTHER-1", "OTHER-2", "OTHER-3"]));
        let s = evaluate_clusters(&set, &live);
        let n = manifest.clusters;
        assert_eq!((s.true_clusters, s.detected, s.found), (n, n, n));
        assert_eq!((s.recall, s.precision), (Some(1.0), Some(1.0)));
        assert_eq!(s.index_named, n - 1);
        assert!(s.missed.is_empty() && s.unmatched.is_empty());

        // A folder from before clusters.csv.
        std::fs::remove_file(dir.path().join("truth/clusters.csv")).unwrap();
        let set = TruthSet::load(dir.path(), &key).unwrap();
        assert!(set.clusters().is_empty());
        assert_eq!(evaluate_clusters(&set, &live).recall, None);
    }
}
