//! Configuration: one TOML file, then `EPITRACE_*` environment variables,
//! then flags.
//!
//! Every key of the file can be overridden without editing it:
//!
//! - by an environment variable named after its path: `EPITRACE_` and the
//!   path upper-cased with `.` → `_` (`kafka.batch_max_records` →
//!   `EPITRACE_KAFKA_BATCH_MAX_RECORDS`; `epitrace config keys` lists them);
//! - by `--set PATH=VALUE` (repeatable), which beats the environment;
//! - for the most common ones, by a dedicated flag (`--brokers`,
//!   `--state-dir`, `--partitions`, each with its own variable), which beats
//!   both.
//!
//! A value is read as a TOML value when it parses as one (`4`, `true`,
//! `[1, 2]`) and as a string otherwise (`30m`, `host:9092`). Unknown keys —
//! in the file or in `--set` — are an error naming the key. Free-form
//! librdkafka properties go under `kafka.consumer` / `kafka.producer`
//! (`--set kafka.consumer.fetch.min.bytes=1024`; no variables, as their
//! names contain dots).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use epitrace_processors::PipelineConfig;
use toml::{Table, Value};

/// Flags shared by the subcommands that read the configuration.
#[derive(Debug, Clone, Default, Args)]
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
    /// Sets any configuration value, e.g. `--set metrics.listen=0.0.0.0:9464`
    /// or `--set tracing.exposure.min_cumulative=10m` (repeatable; beats the
    /// file and `EPITRACE_*` variables).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<String>,
}

/// Tables whose keys are free-form (librdkafka properties).
const FREE_FORM: &[&str] = &["kafka.consumer", "kafka.producer"];

/// Variables that look like configuration but are something else.
const NOT_KEYS: &[&str] = &[
    "EPITRACE_CONFIG",
    "EPITRACE_BROKERS",
    "EPITRACE_PARTITIONS",
    "EPITRACE_PROCESSORS",
    "EPITRACE_LOG_FORMAT",
    "EPITRACE_ACTOR",
    "EPITRACE_PURPOSE",
    "EPITRACE_ROLE",
];

/// Every configurable key with its default value, by path.
pub(crate) fn keys() -> Result<BTreeMap<String, Value>> {
    let defaults = Table::try_from(PipelineConfig::default()).context("serialising defaults")?;
    let mut out = BTreeMap::new();
    flatten("", &defaults, &mut out);
    Ok(out)
}

fn flatten(prefix: &str, table: &Table, out: &mut BTreeMap<String, Value>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(t) if !FREE_FORM.contains(&path.as_str()) => flatten(&path, t, out),
            other => {
                out.insert(path, other.clone());
            }
        }
    }
}

/// The environment variable of a key.
pub(crate) fn env_name(path: &str) -> String {
    format!("EPITRACE_{}", path.replace('.', "_").to_uppercase())
}

/// Reads a flag or variable value: TOML when it parses, else a string.
fn parse_value(raw: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

/// Sets `path` in `table`, creating tables on the way.
fn set_path(table: &mut Table, path: &str, value: Value) -> Result<()> {
    let mut parts = path.split('.').peekable();
    let mut at = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            at.insert(part.to_owned(), value);
            return Ok(());
        }
        let next = at
            .entry(part.to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        at = match next {
            Value::Table(t) => t,
            _ => bail!("`{path}`: `{part}` is a value, not a table"),
        };
    }
    Ok(())
}

/// Where `--set KEY` goes: a known key, or a property of a free-form table
/// (the rest of the key, dots included, is the property name).
fn target(known: &BTreeMap<String, Value>, key: &str) -> Result<(Vec<String>, bool)> {
    if known.contains_key(key) {
        return Ok((key.split('.').map(str::to_owned).collect(), false));
    }
    for free in FREE_FORM {
        if let Some(prop) = key.strip_prefix(free).and_then(|r| r.strip_prefix('.'))
            && !prop.is_empty()
        {
            let mut path: Vec<String> = free.split('.').map(str::to_owned).collect();
            path.push(prop.to_owned());
            return Ok((path, true));
        }
    }
    bail!("unknown configuration key `{key}` (`epitrace config keys` lists them)")
}

fn set_parts(table: &mut Table, path: &[String], value: Value) -> Result<()> {
    let Some((last, parents)) = path.split_last() else {
        bail!("empty key");
    };
    let mut at = table;
    for part in parents {
        let next = at
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        at = match next {
            Value::Table(t) => t,
            _ => bail!("`{}`: `{part}` is a value, not a table", path.join(".")),
        };
    }
    at.insert(last.clone(), value);
    Ok(())
}

/// The effective configuration: file, then environment, then flags.
pub(crate) fn load(o: &Overrides) -> Result<PipelineConfig> {
    load_with(o, std::env::vars())
}

/// [`load`] with the environment given (for tests).
pub(crate) fn load_with(
    o: &Overrides,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<PipelineConfig> {
    let mut table = match &o.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            // Typed first, for errors that name the key and its line.
            toml::from_str::<PipelineConfig>(&text)
                .with_context(|| format!("in {}", path.display()))?;
            toml::from_str::<Table>(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Table::new(),
    };
    let known = keys()?;
    let by_env: BTreeMap<String, &String> = known.keys().map(|k| (env_name(k), k)).collect();
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("EPITRACE_") && !NOT_KEYS.contains(&k.as_str()))
        .collect();
    env.sort();
    for (name, raw) in env {
        if let Some(path) = by_env.get(&name) {
            set_path(&mut table, path, parse_value(&raw)).with_context(|| format!("in {name}"))?;
        }
    }
    for assignment in &o.set {
        let Some((key, raw)) = assignment.split_once('=') else {
            bail!("--set {assignment}: expected KEY=VALUE");
        };
        let (path, free) = target(&known, key.trim())?;
        let value = if free {
            Value::String(raw.to_owned())
        } else {
            parse_value(raw)
        };
        set_parts(&mut table, &path, value).with_context(|| format!("--set {assignment}"))?;
    }
    let mut cfg: PipelineConfig = serde_path_to_error::deserialize(Value::Table(table))
        .map_err(|e| anyhow::anyhow!("configuration key `{}`: {}", e.path(), e.inner()))?;
    if let Some(b) = &o.brokers {
        cfg.kafka.brokers.clone_from(b);
    }
    if let Some(d) = &o.state_dir {
        cfg.state_dir.clone_from(d);
    }
    if let Some(p) = o.partitions {
        cfg.topology.partitions = p;
    }
    validate(&cfg)?;
    Ok(cfg)
}

/// The checks beyond types: ranges and cross-field rules.
fn validate(cfg: &PipelineConfig) -> Result<()> {
    cfg.tracing
        .validate()
        .context("invalid [tracing] configuration")?;
    cfg.store
        .validate()
        .context("invalid [store] configuration")?;
    anyhow::ensure!(
        cfg.topology.partitions > 0,
        "topology.partitions must be positive"
    );
    let retention = cfg.topology.retention;
    let cluster = &cfg.tracing.cluster;
    anyhow::ensure!(
        retention > cluster.revisit_window && retention > cluster.max_incubation,
        "topology.retention ({retention}) must be longer than tracing.cluster.revisit_window \
         ({}) and tracing.cluster.max_incubation ({}): the cluster detector forgets cases that \
         ended a retention ago, which must be too long ago to link to a new case",
        cluster.revisit_window,
        cluster.max_incubation
    );
    anyhow::ensure!(
        retention > cluster.watch_period,
        "topology.retention ({retention}) must be longer than tracing.cluster.watch_period ({}): \
         the cluster detector forgets an event a retention after it ended, and must close it \
         (CLOSED) first",
        cluster.watch_period
    );
    cfg.topology
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid [topology] configuration: {e}"))?;
    anyhow::ensure!(
        cfg.topology.replication > 0,
        "topology.replication must be positive"
    );
    anyhow::ensure!(
        cfg.kafka.batch_max_records > 0,
        "kafka.batch_max_records must be positive"
    );
    anyhow::ensure!(
        !cfg.kafka.brokers.trim().is_empty(),
        "kafka.brokers is empty"
    );
    cfg.kafka
        .security
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid [kafka.security] configuration: {e}"))?;
    cfg.kafka
        .registry
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid [kafka.registry] configuration: {e}"))?;
    cfg.api
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid [api] configuration: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_key_has_a_distinct_variable() {
        let known = keys().unwrap();
        assert!(known.len() > 25, "{}", known.len());
        let mut names: Vec<String> = known.keys().map(|k| env_name(k)).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), known.len());
        for not in NOT_KEYS {
            assert!(!names.contains(&(*not).to_owned()), "{not} is also a key");
        }
        assert!(known.contains_key("metrics.listen"));
        assert!(known.contains_key("tracing.exposure.min_cumulative"));
    }

    #[test]
    fn environment_then_set_then_flags() {
        let o = Overrides {
            set: vec!["kafka.batch_max_records=7".into()],
            ..Overrides::default()
        };
        let cfg = load_with(
            &o,
            env(&[
                ("EPITRACE_KAFKA_BATCH_MAX_RECORDS", "3"),
                ("EPITRACE_KAFKA_BROKERS", "a:1"),
                ("EPITRACE_TRACING_EXPOSURE_MIN_CUMULATIVE", "10m"),
                ("EPITRACE_STORE_WAL", "true"),
                ("EPITRACE_UNRELATED_THING", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.kafka.batch_max_records, 7);
        assert_eq!(cfg.kafka.brokers, "a:1");
        assert_eq!(cfg.tracing.exposure.min_cumulative.as_millis(), 600_000);
        assert!(cfg.store.wal);
        let o = Overrides {
            brokers: Some("b:2".into()),
            set: vec!["kafka.brokers=c:3".into()],
            ..Overrides::default()
        };
        assert_eq!(load_with(&o, env(&[])).unwrap().kafka.brokers, "b:2");
    }

    #[test]
    fn a_retention_shorter_than_the_cluster_windows_is_refused() {
        let o = Overrides {
            set: vec!["topology.retention=10d".into()],
            ..Overrides::default()
        };
        let err = format!("{:#}", load_with(&o, env(&[])).unwrap_err());
        assert!(err.contains("max_incubation"), "{err}");
        let o = Overrides {
            set: vec!["topology.retention=15d".into()],
            ..Overrides::default()
        };
        assert!(load_with(&o, env(&[])).is_ok());
        let o = Overrides {
            set: vec![
                "topology.retention=15d".into(),
                "tracing.cluster.watch_period=20d".into(),
            ],
            ..Overrides::default()
        };
        let err = format!("{:#}", load_with(&o, env(&[])).unwrap_err());
        assert!(err.contains("watch_period"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let o = Overrides {
            set: vec!["kafka.bogus=1".into()],
            ..Overrides::default()
        };
        let e = load_with(&o, env(&[])).unwrap_err().to_string();
        assert!(e.contains("kafka.bogus"), "{e}");
        let o = Overrides {
            set: vec!["topology.partitions=many".into()],
            ..Overrides::default()
        };
        let e = format!("{:#}", load_with(&o, env(&[])).unwrap_err());
        assert!(e.contains("topology.partitions"), "{e}");
        let o = Overrides {
            set: vec!["metrics.listen=nowhere".into()],
            ..Overrides::default()
        };
        let e = format!("{:#}", load_with(&o, env(&[])).unwrap_err());
        assert!(e.contains("metrics.listen"), "{e}");
    }

    #[test]
    fn free_form_properties_keep_their_dots() {
        let o = Overrides {
            set: vec!["kafka.consumer.fetch.min.bytes=1024".into()],
            ..Overrides::default()
        };
        let cfg = load_with(&o, env(&[])).unwrap();
        assert_eq!(
            cfg.kafka
                .consumer
                .get("fetch.min.bytes")
                .map(String::as_str),
            Some("1024")
        );
    }
}
