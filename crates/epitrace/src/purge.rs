//! `epitrace purge`: the end of a response. Deletes personal data
//! everywhere epitrace keeps it, checks that it is gone, and destroys the
//! pseudonym key.
//!
//! 1. The purge is recorded on `audit.log` first. If that record cannot be
//!    written, nothing is deleted. `audit.log` itself is kept: it is the
//!    proof of what was done.
//! 2. Every other epitrace topic and every processor changelog is
//!    **deleted**, not emptied: `DeleteRecords` only moves a log's start,
//!    and the bytes stay in the broker's segment files. The topics are then
//!    created again, empty, so that a pipeline can start afresh.
//! 3. The state folder (`state_dir`) is emptied. The command refuses while
//!    an `epitrace run` holds it.
//! 4. The scan reads every file of the state folder and of the `--scan`
//!    folders (a local broker's log dirs, the API's store), looking for the
//!    canary subjects in every form they could take at rest. It waits for
//!    the brokers to delete the files (`--wait-s`).
//! 5. A clean scan destroys the pseudonym key (crypto-shredding), and that
//!    is recorded too. After hits, the key is kept so that the scan can be
//!    run again: the command exits 1 naming the files.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use epitrace_feeds::{PseudonymKey, Pseudonymizer};
use epitrace_model::records::{AuditAction, AuditOutcome, Role};
use epitrace_model::topics::AUDIT;
use epitrace_model::{ActorId, EventTime, Text};
use epitrace_processors::topology::{changelog_specs, is_changelog, topic_specs};
use epitrace_stream::admin::{create_topics, delete_topics, list_topics};
use epitrace_tools::audit::{AuditEntry, append};
use epitrace_tools::purge::{Scan, canaries, destroy_key, scan};

use crate::settings::{Overrides, load};

/// `epitrace purge` flags.
#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// Confirm: without it nothing is deleted (`--scan-only` needs none).
    #[arg(long)]
    yes: bool,
    /// Only scan and report the canaries found; delete nothing.
    #[arg(long)]
    scan_only: bool,
    /// The authority's pseudonymisation key: the canaries are pseudonymised
    /// with it for the scan, and it is destroyed (overwritten and deleted)
    /// when the scan finds nothing.
    #[arg(long, env = "EPITRACE_PSEUDONYM_KEY")]
    key: PathBuf,
    /// Canary subjects planted in the data: one raw phone number per line,
    /// or `card NUMBER`; `#` comments.
    #[arg(long)]
    canaries: PathBuf,
    /// More folders to scan besides `state_dir`, e.g. a local broker's log
    /// dirs or the API's store (repeatable).
    #[arg(long)]
    scan: Vec<PathBuf>,
    /// How long to wait for the brokers to remove the deleted topics' files
    /// before reporting what is left, in seconds.
    #[arg(long, default_value_t = 120)]
    wait_s: u64,
    /// Who purges, recorded on audit.log.
    #[arg(long, env = "EPITRACE_ACTOR", default_value = "operator")]
    actor: String,
    /// Why, recorded on audit.log.
    #[arg(long, env = "EPITRACE_PURPOSE", default_value = "end of response")]
    purpose: String,
    #[command(flatten)]
    overrides: Overrides,
}

fn entry(args: &PurgeArgs, resource: &str) -> Result<AuditEntry> {
    purge_entry(&args.actor, &args.purpose, resource)
}

/// The audit entry of a purge by `actor` (an operator) of `resource`, at
/// the wall clock (`epitrace purge` and `topics purge`).
pub(crate) fn purge_entry(actor: &str, purpose: &str, resource: &str) -> Result<AuditEntry> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Ok(AuditEntry {
        at: EventTime::from_millis("at", ms)?,
        actor: ActorId::new(actor).with_context(|| format!("--actor {actor:?}"))?,
        role: Role::Operator,
        action: AuditAction::Purge,
        resource: Text::new("resource", resource)?,
        case_id: None,
        purpose: Text::new("purpose", purpose).context("--purpose")?,
        outcome: AuditOutcome::Allowed,
    })
}

fn report(out: &mut impl Write, s: &Scan) -> Result<()> {
    writeln!(
        out,
        "scanned {} files ({} bytes): {} canary hits",
        s.files,
        s.bytes,
        s.hits.len()
    )?;
    for h in &s.hits {
        writeln!(
            out,
            "  canary on line {} found in {}",
            h.canary,
            h.path.display()
        )?;
    }
    Ok(())
}

pub(crate) fn purge_cmd(args: &PurgeArgs, out: &mut impl Write) -> Result<()> {
    let cfg = load(&args.overrides)?;
    let key = PseudonymKey::from_file(&args.key)?;
    let text = std::fs::read_to_string(&args.canaries)
        .with_context(|| format!("reading {}", args.canaries.display()))?;
    let planted = canaries(&text, &Pseudonymizer::new(key))?;
    let mut dirs = vec![cfg.state_dir.clone()];
    dirs.extend(args.scan.iter().cloned());
    if args.scan_only {
        let found = scan(&dirs, &planted)?;
        return report(out, &found);
    }
    if !args.yes {
        bail!(
            "this deletes every epitrace topic but audit.log, every changelog and {} on {}, then destroys the key {}; add --yes to confirm",
            cfg.state_dir.display(),
            cfg.kafka.brokers,
            args.key.display()
        );
    }
    // A running instance would write its state back; a running API holds
    // personal data in memory.
    for name in ["instance.lock", crate::serve::API_LOCK] {
        let lock = cfg.state_dir.join(name);
        if lock.exists() {
            let f = std::fs::File::open(&lock)?;
            f.try_lock().map_err(|_| {
                anyhow::anyhow!(
                    "{} is in use by a running epitrace ({name}): stop every instance and `epitrace serve` first",
                    cfg.state_dir.display()
                )
            })?;
        }
    }
    crate::require_kafka(&cfg.kafka)?;
    let rt = crate::runtime()?;
    let timeout = Duration::from_secs(60);
    let recorded = rt
        .block_on(append(
            &cfg.kafka,
            entry(
                args,
                "every epitrace topic but audit.log, the changelogs, the state",
            )?,
            timeout,
        ))
        .context("the purge could not be recorded on audit.log, so nothing was deleted")?;
    writeln!(
        out,
        "recorded the purge on audit.log (seq {})",
        recorded.record.seq
    )?;

    // Topics: deleted (their files go), then created again, empty.
    let mut specs = topic_specs(&cfg.topology);
    specs.retain(|s| s.name != AUDIT);
    let existing = rt.block_on(list_topics(&cfg.kafka))?;
    let mut doomed: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    doomed.extend(
        existing
            .iter()
            .map(String::as_str)
            .filter(|t| is_changelog(t)),
    );
    let deleted = rt.block_on(delete_topics(&cfg.kafka, &doomed))?;
    writeln!(out, "deleted {} topics", deleted.len())?;
    specs.extend(changelog_specs(&cfg.topology, &cfg.kafka.group_prefix));
    // A deleted topic's name is free again once the deletion completed:
    // wait until none is listed, then create them all anew.
    let started = Instant::now();
    loop {
        let listed = rt.block_on(list_topics(&cfg.kafka))?;
        if !deleted.iter().any(|t| listed.contains(t)) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the deleted topics are still listed after 60 s");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let created = rt
        .block_on(create_topics(&cfg.kafka, &specs))
        .context("creating the topics again")?;
    let fresh = created
        .iter()
        .filter(|(_, o)| *o == epitrace_stream::admin::TopicOutcome::Created)
        .count();
    writeln!(out, "created {fresh} topics again, empty")?;

    // State: every processor's stores.
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(&cfg.state_dir) {
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if name == "instance.lock" || name == "instance-id" {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            }
            .with_context(|| format!("deleting {}", path.display()))?;
            removed += 1;
        }
    }
    writeln!(
        out,
        "deleted {removed} entries of {}",
        cfg.state_dir.display()
    )?;

    // Verify: the brokers remove deleted topics' files after a delay.
    let deadline = Instant::now() + Duration::from_secs(args.wait_s);
    let found = loop {
        let found = scan(&dirs, &planted)?;
        if found.hits.is_empty() || Instant::now() >= deadline {
            break found;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    report(out, &found)?;
    if !found.hits.is_empty() {
        bail!(
            "{} canary hits remain after {} s: the key {} is kept so that the scan can be run again (--scan-only)",
            found.hits.len(),
            args.wait_s,
            args.key.display()
        );
    }
    destroy_key(&args.key)?;
    let recorded = rt
        .block_on(append(
            &cfg.kafka,
            entry(args, "the pseudonym key: destroyed after a clean scan")?,
            timeout,
        ))
        .context("the key was destroyed but the record of it could not be written")?;
    writeln!(
        out,
        "destroyed the pseudonym key {} (recorded, seq {})",
        args.key.display(),
        recorded.record.seq
    )?;
    Ok(())
}
