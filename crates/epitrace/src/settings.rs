//! Configuration: a TOML file (unknown keys are an error naming the key),
//! then environment variables and flags for the values people change most.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use epitrace_processors::PipelineConfig;

/// Flags shared by the subcommands that talk to Kafka.
#[derive(Debug, Clone, Args)]
pub(crate) struct Overrides {
    /// Configuration file (TOML). Every key is optional; see
    /// deploy/epitrace.example.toml.
    #[arg(long, short = 'c', env = "EPITRACE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides `kafka.brokers`).
    #[arg(long, env = "EPITRACE_BROKERS")]
    pub(crate) brokers: Option<String>,
    /// Folder for the processors' RocksDB stores (overrides `state_dir`).
    #[arg(long, env = "EPITRACE_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// Partitions per topic, for `topics create` (overrides
    /// `topology.partitions`).
    #[arg(long, env = "EPITRACE_PARTITIONS")]
    pub(crate) partitions: Option<i32>,
}

/// The effective configuration: file, then environment and flags.
pub(crate) fn load(o: &Overrides) -> Result<PipelineConfig> {
    let mut cfg = match &o.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<PipelineConfig>(&text)
                .with_context(|| format!("in {}", path.display()))?
        }
        None => PipelineConfig::default(),
    };
    if let Some(b) = &o.brokers {
        cfg.kafka.brokers.clone_from(b);
    }
    if let Some(d) = &o.state_dir {
        cfg.state_dir.clone_from(d);
    }
    if let Some(p) = o.partitions {
        anyhow::ensure!(p > 0, "--partitions must be positive");
        cfg.topology.partitions = p;
    }
    cfg.tracing
        .validate()
        .context("invalid [tracing] configuration")?;
    Ok(cfg)
}
