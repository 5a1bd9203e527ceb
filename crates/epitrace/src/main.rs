//! The `epitrace` binary: real-time contact tracing over Kafka.
//!
//! Subcommands: `schemas` (records and fingerprints), `topics create`,
//! `run` (the processors, with the operations endpoint), `demo` (everything
//! in one process on an in-process mock Kafka cluster), `config check` /
//! `config keys`, `health` (a probe for containers without curl), `wait`
//! (until a running pipeline has caught up), the
//! audited reads of investigators, `clusters` and `case ID`, and the
//! investigators' API, `serve`, with its `users`. The
//! binary only parses flags, loads configuration and wires the library
//! crates together.

mod dead_letters;
mod demo;
mod plots;
mod purge;
mod query;
mod serve;
mod settings;
mod tools;
mod wait;

use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use epitrace_model::schema::{SCHEMA_FILES, SchemaSet};
use epitrace_ops::{OpsServer, Telemetry};
use epitrace_processors::topology::{changelog_specs, is_changelog, topic_specs};
use epitrace_processors::{Pipeline, ProcessorKind};
use epitrace_stream::admin::{
    TopicOutcome, create_topics, delete_topics, list_topics, purge_topics,
};

use crate::settings::{Overrides, load};

/// epitrace: find, within minutes of a positive test, where a confirmed
/// patient has been, who was there at the same time, and which cases share a
/// place and time.
#[derive(Debug, Parser)]
#[command(name = "epitrace", version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "EPITRACE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the Avro record of every topic with the 10 bytes that open its
    /// single-object frames, exactly as on the wire (`c3 01`, then the
    /// schema fingerprint's 8 bytes little-endian), and the writer versions
    /// this build still reads; `schemas register` registers them in a
    /// Schema Registry.
    Schemas(SchemasArgs),
    /// Manage Kafka topics.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Generate a synthetic city (Seoul by default) with provider feeds,
    /// faults and the exact ground truth: feed files (raw ids, as providers
    /// hold them) or straight to Kafka.
    Sim(tools::SimArgs),
    /// A provider's producer: publish a feed file (CSV or JSON Lines) to
    /// Kafka, pseudonymising raw phone and card numbers, validating every
    /// row (bad rows reported by file and line, skipped and counted).
    Produce(tools::ProduceArgs),
    /// End of response: delete personal data everywhere epitrace keeps it
    /// (every topic but audit.log deleted and created again empty, every
    /// changelog, the state folder), scan for canary subjects until none is
    /// left, then destroy the pseudonym key; each step recorded on
    /// audit.log.
    Purge(purge::PurgeArgs),
    /// Score the published exposures against a simulator's ground truth:
    /// precision, recall and F1, by contact setting and by data source; by
    /// contact class; the likelihood's precision-recall curve and
    /// calibration; clusters.
    Eval(tools::EvalArgs),
    /// Fit the exposure likelihood model to labelled examples written by
    /// `epitrace eval --examples` (cities other than the one you will
    /// evaluate) and print it as a [tracing.likelihood] table.
    Calibrate(tools::CalibrateArgs),
    /// The records the pipeline refused, with their reasons: every dead
    /// letter (pipeline.deadletter), or with --provider a provider's own
    /// (pipeline.deadletter.ID, read as that provider). Shows where each
    /// record was, why and when it was refused and its size — never its
    /// key or bytes.
    DeadLetters(dead_letters::DeadLettersArgs),
    /// The live clusters (tracing.clusters), largest first: status, size,
    /// index case, evidence, cases and shared places. Audited: appends a
    /// record to audit.log (--actor, --purpose) before printing anything.
    Clusters(query::ClustersArgs),
    /// A case's timeline (its live visits on tracing.timelines) and the live
    /// clusters that contain it. Audited: appends a record to audit.log
    /// (--actor, --purpose) before printing anything.
    Case(query::CaseArgs),
    /// The investigators' API over HTTP(S): cases and their approval
    /// status, timelines, contacts, clusters, approvals, the audit log —
    /// each to the roles whose duty needs it (log in with a user of
    /// `api.users_file`); every request recorded on audit.log before its
    /// response is sent. Runs until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Manage the API's users file: add (argon2id-hashed password, role,
    /// regions or authority and category), disable, list.
    Users {
        #[command(subcommand)]
        command: serve::UsersCommand,
    },
    /// The audit trail: `audit verify` checks audit.log's hash chain.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check or list the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Probe an endpoint: exit 0 when it answers 200 (a container health
    /// check that needs no curl).
    Health {
        /// The URL to probe.
        #[arg(long, default_value = "http://127.0.0.1:9464/readyz")]
        url: String,
    },
    /// Wait until a running pipeline has caught up: ready, no consumer lag
    /// and no input record processed for --quiet-s seconds (read from its
    /// /metrics; exit 1 on --timeout-s).
    Wait(wait::WaitArgs),
    /// Run processors until Ctrl-C or SIGTERM (then finish the batch in
    /// hand, flush and exit 0), serving /metrics, /healthz and /readyz on
    /// `metrics.listen` (default 127.0.0.1:9464).
    Run {
        #[command(flatten)]
        overrides: Overrides,
        /// Processors to run, comma separated (default: all of them, in
        /// pipeline order). The cluster detector reads one partition, so
        /// one instance of the consumer group does its work.
        #[arg(
            long,
            value_delimiter = ',',
            env = "EPITRACE_PROCESSORS",
            value_parser = processor_parser()
        )]
        processors: Vec<ProcessorKind>,
    },
    /// Run the whole pipeline in one process on librdkafka's in-process mock
    /// cluster with RocksDB in a temporary folder, feed it a built-in
    /// scenario (a night out around Itaewon), and print the cases, exposures
    /// and where and when they happened.
    Demo {
        /// Where to serve the demo's metrics while it runs (another free
        /// port when this one is taken).
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_listen: SocketAddr,
        /// Background residents in the scenario (keep it small: the mock
        /// cluster is for demos, not load).
        #[arg(long, default_value_t = 300)]
        residents: u32,
        /// Seed of the scenario.
        #[arg(long, default_value_t = 2020)]
        seed: u64,
        /// Give up waiting for the pipeline after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration (file, then EPITRACE_* variables, then
    /// flags) and print the effective one as TOML.
    Check {
        /// The file (default: --config / EPITRACE_CONFIG, else none).
        file: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// List every configuration key with its environment variable and
    /// default value.
    Keys,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain of audit.log: exit 0 when it is intact,
    /// 1 naming the first record that breaks it (altered, removed,
    /// reordered or forked records, an undecodable record, a log whose
    /// start was cut).
    Verify {
        #[command(flatten)]
        overrides: Overrides,
        /// How long reading the log may take, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
    },
}

#[derive(Debug, clap::Args)]
struct SchemasArgs {
    #[command(subcommand)]
    command: Option<SchemasCommand>,
    /// Print JSON Lines instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum SchemasCommand {
    /// Register every schema in a Confluent-compatible Schema Registry
    /// (`kafka.registry.url`): under `<topic>-value` for every topic with
    /// one record type, the compatibility level `kafka.registry.compatibility`
    /// (BACKWARD by default) first, then each released version, oldest
    /// first, then the current one. Idempotent; an incompatible change is
    /// refused by the registry and reported.
    Register {
        /// The registry's Confluent-compatible base URL (overrides
        /// `kafka.registry.url` and `EPITRACE_KAFKA_REGISTRY_URL`), e.g.
        /// `http://127.0.0.1:8081/apis/ccompat/v7`.
        #[arg(long)]
        url: Option<String>,
        /// Print JSON Lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create every topic epitrace uses (partitions, retention, compaction
    /// per DESIGN §3). Existing topics are left as they are.
    Create {
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Delete every record of every epitrace topic but audit.log (Kafka
    /// DeleteRecords) and every processor state changelog: the
    /// end-of-response erasure of personal data in Kafka. The topics stay;
    /// compacted ones refuse and are reported. audit.log is kept — it is
    /// the proof of what was done — and the purge itself is recorded on
    /// it first (nothing is deleted when that fails). State stores are
    /// separate: delete each processor's state directory too.
    Purge {
        /// Confirm: without it nothing is deleted.
        #[arg(long)]
        yes: bool,
        /// Who purges, recorded on audit.log ([A-Za-z0-9._:-], at most 128
        /// bytes).
        #[arg(long, env = "EPITRACE_ACTOR", default_value = "operator")]
        actor: String,
        /// Why, recorded on audit.log.
        #[arg(long, env = "EPITRACE_PURPOSE", default_value = "end of response")]
        purpose: String,
        #[command(flatten)]
        overrides: Overrides,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    // Colours only on a terminal: piped or collected logs stay plain.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let mut out = io::stdout().lock();
    let result = run(cli, &mut out).and_then(|()| out.flush().map_err(Into::into));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`epitrace schemas | head`) is the reader's choice.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "epitrace: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

/// `--processors` values: the registry's names, each with its one-line
/// description in the help.
fn processor_parser() -> impl clap::builder::TypedValueParser<Value = ProcessorKind> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        epitrace_processors::registry::REGISTRY
            .iter()
            .map(|s| PossibleValue::new(s.name()).help(s.about)),
    )
    .try_map(|name| name.parse::<ProcessorKind>())
}

/// Fails within a few seconds, naming the brokers and how to start one,
/// when no Kafka broker answers: every command that needs Kafka calls it
/// first instead of waiting for librdkafka's timeouts in silence.
pub(crate) fn require_kafka(kafka: &epitrace_stream::KafkaConfig) -> Result<()> {
    epitrace_stream::link::probe(kafka, epitrace_stream::link::PROBE_TIMEOUT)?;
    Ok(())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli, out: &mut impl Write) -> Result<()> {
    match cli.command {
        Command::Schemas(SchemasArgs {
            command: None,
            json,
        }) => schemas(json, out),
        Command::Schemas(SchemasArgs {
            command:
                Some(SchemasCommand::Register {
                    url,
                    json,
                    overrides,
                }),
            ..
        }) => {
            let mut cfg = load(&overrides)?;
            if let Some(url) = url {
                cfg.kafka.registry.url = url;
            }
            cfg.kafka
                .registry
                .validate()
                .map_err(|e| anyhow::anyhow!("invalid [kafka.registry] configuration: {e}"))?;
            let client = epitrace_stream::registry::RegistryClient::from_config(
                &cfg.kafka.registry,
            )
            .context(
                "no Schema Registry: set kafka.registry.url, EPITRACE_KAFKA_REGISTRY_URL or --url",
            )?;
            let registered = runtime()?.block_on(epitrace_tools::schemas::register_all(
                &client,
                &cfg.kafka.registry.compatibility,
            ))?;
            for r in registered {
                if json {
                    let line = serde_json::json!({
                        "topic": r.topic,
                        "subject": r.subject,
                        "compatibility": cfg.kafka.registry.compatibility,
                        "versions": r.versions.iter().map(|(label, id)| serde_json::json!({"schema": label, "id": id})).collect::<Vec<_>>(),
                    });
                    writeln!(out, "{line}")?;
                } else {
                    let ids: Vec<String> = r
                        .versions
                        .iter()
                        .map(|(label, id)| format!("{label}={id}"))
                        .collect();
                    writeln!(out, "{:<36} {}", r.subject, ids.join(" "))?;
                }
            }
            Ok(())
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    overrides,
                    timeout_s,
                },
        } => {
            let cfg = load(&overrides)?;
            require_kafka(&cfg.kafka)?;
            let report = epitrace_tools::audit::verify_log(
                &cfg.kafka,
                std::time::Duration::from_secs(timeout_s),
            )?;
            match report.seqs {
                None => writeln!(out, "audit.log is empty: nothing to verify")?,
                Some((first, last)) => writeln!(
                    out,
                    "audit.log: {} records, seq {first} to {last}: the chain is intact{}",
                    report.records,
                    if first > 0 {
                        format!(" (records before seq {first} were deleted by retention)")
                    } else {
                        String::new()
                    }
                )?,
            }
            Ok(())
        }
        Command::Topics {
            command: TopicsCommand::Create { overrides },
        } => {
            let cfg = load(&overrides)?;
            let mut specs = topic_specs(&cfg.topology);
            specs.extend(changelog_specs(&cfg.topology, &cfg.kafka.group_prefix));
            require_kafka(&cfg.kafka)?;
            let results = runtime()?.block_on(create_topics(&cfg.kafka, &specs))?;
            for (name, outcome) in results {
                let what = match outcome {
                    TopicOutcome::Created => "created",
                    TopicOutcome::Existed => "exists",
                };
                writeln!(out, "{what:<8} {name}")?;
            }
            Ok(())
        }
        Command::Topics {
            command:
                TopicsCommand::Purge {
                    yes,
                    actor,
                    purpose,
                    overrides,
                },
        } => {
            let cfg = load(&overrides)?;
            let specs = topic_specs(&cfg.topology);
            let names: Vec<&str> = specs
                .iter()
                .map(|s| s.name.as_str())
                .filter(|n| *n != epitrace_model::topics::AUDIT)
                .collect();
            if !yes {
                bail!(
                    "this deletes every record of {} topics and every processor state changelog on {}; add --yes to confirm",
                    names.len(),
                    cfg.kafka.brokers
                );
            }
            let entry = purge::purge_entry(
                &actor,
                &purpose,
                "every epitrace topic but audit.log, and the changelogs",
            )?;
            require_kafka(&cfg.kafka)?;
            let recorded = runtime()?
                .block_on(epitrace_tools::audit::append(
                    &cfg.kafka,
                    entry,
                    std::time::Duration::from_secs(60),
                ))
                .context("the purge could not be recorded on audit.log, so nothing was deleted")?;
            writeln!(
                out,
                "recorded the purge on audit.log (seq {})",
                recorded.record.seq
            )?;
            for (topic, records, refused) in
                runtime()?.block_on(purge_topics(&cfg.kafka, &names))?
            {
                if refused {
                    writeln!(
                        out,
                        "refused  {topic} (compacted: delete its keys, or the topic)"
                    )?;
                } else {
                    writeln!(out, "purged   {topic} ({records} records)")?;
                }
            }
            // The changelogs hold the processors' state (personal data):
            // deleted, of every group prefix; `epitrace run` creates them
            // again, empty.
            let rt = runtime()?;
            let all = rt.block_on(list_topics(&cfg.kafka))?;
            let changelogs: Vec<&str> = all
                .iter()
                .map(String::as_str)
                .filter(|t| is_changelog(t))
                .collect();
            for topic in rt.block_on(delete_topics(&cfg.kafka, &changelogs))? {
                writeln!(out, "deleted  {topic} (a processor's state changelog)")?;
            }
            Ok(())
        }
        Command::Run {
            overrides,
            processors,
        } => {
            let cfg = load(&overrides)?;
            let kinds = if processors.is_empty() {
                ProcessorKind::ALL.to_vec()
            } else {
                processors
            };
            let telemetry = Telemetry::new()?;
            let _ops = if cfg.metrics.enabled {
                Some(OpsServer::start(&cfg.metrics, &telemetry)?)
            } else {
                None
            };
            runtime()?.block_on(async {
                let pipeline = Pipeline::start(&cfg, &kinds, &telemetry)?;
                pipeline.run_until(shutdown_signal()).await?;
                Ok(())
            })
        }
        Command::Demo {
            residents,
            seed,
            timeout_s,
            metrics_listen,
        } => runtime()?.block_on(demo::run(residents, seed, timeout_s, metrics_listen, out)),
        Command::Config {
            command:
                ConfigCommand::Check {
                    file,
                    mut overrides,
                },
        } => {
            if file.is_some() {
                overrides.config = file;
            }
            let cfg = load(&overrides)?;
            let text = toml::to_string_pretty(&cfg).context("printing the configuration")?;
            let from = overrides
                .config
                .as_ref()
                .map_or_else(|| "defaults".to_owned(), |p| p.display().to_string());
            writeln!(
                out,
                "# effective configuration ({from}, environment, flags): valid"
            )?;
            write!(out, "{text}")?;
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Keys,
        } => {
            writeln!(out, "{:<42} {:<48} default", "key", "environment variable")?;
            for (key, default) in settings::keys()? {
                writeln!(out, "{key:<42} {:<48} {default}", settings::env_name(&key))?;
            }
            Ok(())
        }
        Command::Sim(args) => tools::sim(&args, out),
        Command::Produce(args) => tools::produce_cmd(&args, out),
        Command::Purge(args) => purge::purge_cmd(&args, out),
        Command::Eval(args) => tools::eval_cmd(&args, out),
        Command::Calibrate(args) => tools::calibrate_cmd(&args, out),
        Command::DeadLetters(args) => dead_letters::dead_letters_cmd(&args, out),
        Command::Clusters(args) => query::clusters_cmd(&args, out),
        Command::Case(args) => query::case_cmd(&args, out),
        Command::Serve(args) => serve::serve_cmd(&args, out),
        Command::Users { command } => serve::users_cmd(&command, out),
        Command::Wait(args) => wait::wait_cmd(&args, out),
        Command::Health { url } => {
            let (status, body) = epitrace_ops::get(&url)?;
            anyhow::ensure!(status == 200, "{url}: {status} {}", body.trim());
            writeln!(out, "{}", body.trim())?;
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn schemas(json: bool, out: &mut impl Write) -> Result<()> {
    use epitrace_tools::schemas::{frame_header_hex, topics_of};
    if !json {
        writeln!(
            out,
            "{:<18} {:<24} {:<20}   known writers (frame header)",
            "record", "topics", "frame header (wire)"
        )?;
    }
    for file in SCHEMA_FILES {
        let set = SchemaSet::build(file).with_context(|| format!("schema {}", file.file))?;
        let topics = topics_of(file.record);
        let header = frame_header_hex(set.fingerprint());
        let writers: Vec<String> = set
            .writers()
            .map(|w| format!("{}={}", w.label, frame_header_hex(w.fingerprint)))
            .collect();
        if json {
            let line = serde_json::json!({
                "record": file.record,
                "file": file.file,
                "topics": topics,
                // Bytes 2..10 of every frame, in wire order: paste these.
                "fingerprint": header[4..].to_owned(),
                "frame_header": header,
                "fingerprint_u64": format!("{:016x}", set.fingerprint()),
                "writers": writers,
            });
            writeln!(out, "{line}")?;
        } else {
            let topics = if topics.is_empty() {
                "(clusters.evidence only)".to_owned()
            } else {
                topics.join(",")
            };
            writeln!(
                out,
                "{:<18} {:<24} {:<20}   {}",
                file.record,
                topics,
                header,
                writers.join(" ")
            )?;
        }
    }
    Ok(())
}
