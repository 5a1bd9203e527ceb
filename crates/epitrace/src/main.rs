//! The `epitrace` binary: real-time contact tracing over Kafka.
//!
//! Today it has one subcommand, `schemas`, which lists the Avro records
//! epitrace reads and writes with the fingerprints producers put in their
//! single-object frames. The pipeline (`run`, `topics create`, `demo`)
//! arrives with the pipeline issue.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use epitrace_model::schema::{SCHEMA_FILES, SchemaSet};

/// epitrace: find, within minutes of a positive test, where a confirmed
/// patient has been, who was there at the same time, and which cases share a
/// place and time.
#[derive(Debug, Parser)]
#[command(name = "epitrace", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the Avro records of every topic, with the schema fingerprint a
    /// single-object frame carries (bytes 2..10, little-endian) and the
    /// writer versions this build still reads.
    Schemas {
        /// Print JSON Lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = io::stdout().lock();
    match run(&cli, &mut out).and_then(|()| out.flush().map_err(Into::into)) {
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

fn run(cli: &Cli, out: &mut impl Write) -> Result<()> {
    match cli.command {
        Command::Schemas { json } => schemas(json, out),
    }
}

fn schemas(json: bool, out: &mut impl Write) -> Result<()> {
    if !json {
        writeln!(
            out,
            "{:<20} {:<26} {:<18} known writers",
            "record", "file", "fingerprint"
        )?;
    }
    for file in SCHEMA_FILES {
        let set = SchemaSet::build(file).with_context(|| format!("schema {}", file.file))?;
        let writers: Vec<String> = set
            .writers()
            .map(|w| format!("{}={:016x}", w.label, w.fingerprint))
            .collect();
        if json {
            let line = serde_json::json!({
                "record": file.record,
                "file": file.file,
                "fingerprint": format!("{:016x}", set.fingerprint()),
                "writers": writers,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{:<20} {:<26} {:016x}   {}",
                file.record,
                file.file,
                set.fingerprint(),
                writers.join(" ")
            )?;
        }
    }
    Ok(())
}
