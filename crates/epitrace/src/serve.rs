//! `epitrace serve` (the investigators' API) and `epitrace users`
//! (its users file).

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use epitrace_api::{ApiRole, NewUser, Server, Users};
use epitrace_core::approval::Category;

use crate::settings::{Overrides, load};

/// `epitrace serve` flags.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    overrides: Overrides,
}

/// `epitrace users` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Add a user to the users file (`api.users_file`). The password is
    /// asked for on the terminal, or read from the first line of stdin
    /// when stdin is not a terminal; at least 12 characters; stored as an
    /// argon2id hash only.
    Add(AddArgs),
    /// Disable a user: they can no longer log in, and a running server
    /// refuses their session at their next request.
    Disable {
        /// The user's name.
        name: String,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// List the users (names, roles, scopes, disabled or not; never a
    /// hash).
    List {
        /// Print JSON Lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
}

/// `epitrace users add` flags.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// Login name: 1 to 128 characters of A-Z a-z 0-9 . _ : -.
    name: String,
    /// The user's role.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Investigators: a region whose cases they see (repeatable; `*` for
    /// every region, including cases without one).
    #[arg(long = "region")]
    regions: Vec<String>,
    /// Approvers: the authority they approve for (e.g. seoul-police).
    #[arg(long)]
    authority: Option<String>,
    /// Approvers: the one data category they may approve.
    #[arg(long, value_enum)]
    category: Option<CategoryArg>,
    #[command(flatten)]
    overrides: Overrides,
}

/// The API's roles, as flag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoleArg {
    /// Traces the cases of their regions: timelines, contacts with
    /// evidence.
    Investigator,
    /// Clusters and case status; contacts only as pseudonyms and counts.
    Epidemiologist,
    /// Posts data-access approvals for one authority's category.
    Approver,
    /// Reads and verifies the audit log; no personal data.
    Auditor,
    /// Lists and disables users; no personal data.
    Admin,
}

/// Data categories, as flag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CategoryArg {
    /// Telecom location records (police approval in the 2020 model).
    Location,
    /// Card transactions (card association approval).
    Card,
    /// Venue check-ins.
    Checkin,
    /// The places patients stated in interview, traced as evidence (the
    /// health authority's decision).
    Interview,
}

impl From<RoleArg> for ApiRole {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Investigator => Self::Investigator,
            RoleArg::Epidemiologist => Self::Epidemiologist,
            RoleArg::Approver => Self::Approver,
            RoleArg::Auditor => Self::Auditor,
            RoleArg::Admin => Self::Admin,
        }
    }
}

impl From<CategoryArg> for Category {
    fn from(c: CategoryArg) -> Self {
        match c {
            CategoryArg::Location => Self::Location,
            CategoryArg::Card => Self::Card,
            CategoryArg::Interview => Self::Interview,
            CategoryArg::Checkin => Self::Checkin,
        }
    }
}

/// `epitrace serve`: runs the API until Ctrl-C or SIGTERM.
pub(crate) fn serve_cmd(args: &ServeArgs, out: &mut impl Write) -> Result<()> {
    let cfg = load(&args.overrides)?;
    crate::require_kafka(&cfg.kafka)?;
    // `epitrace purge` refuses while this lock is held: a running server
    // holds personal data in memory.
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
    let lock_path = cfg.state_dir.join(API_LOCK);
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "{} is held by another `epitrace serve` on {}",
            lock_path.display(),
            cfg.state_dir.display()
        )
    })?;
    let telemetry = epitrace_ops::Telemetry::new()?;
    let _ops = if cfg.metrics.enabled {
        Some(epitrace_ops::OpsServer::start(&cfg.metrics, &telemetry)?)
    } else {
        None
    };
    let rt = crate::runtime()?;
    rt.block_on(async {
        let handle = Server {
            api: cfg.api.clone(),
            kafka: cfg.kafka.clone(),
            approvals: cfg.tracing.approvals.clone(),
            interview: cfg.tracing.interview.clone(),
            telemetry: Some(telemetry.clone()),
        }
        .start()
        .await?;
        writeln!(
            out,
            "serving the investigators' API on {}://{} (users: {}); Ctrl-C to stop",
            if handle.tls { "https" } else { "http" },
            handle.addr,
            cfg.api.users_file.display()
        )?;
        out.flush()?;
        crate::shutdown_signal().await;
        handle.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    drop(lock);
    Ok(())
}

/// The lock file `epitrace serve` holds in the state folder.
pub(crate) const API_LOCK: &str = "api.lock";

/// `epitrace users …`.
pub(crate) fn users_cmd(cmd: &UsersCommand, out: &mut impl Write) -> Result<()> {
    match cmd {
        UsersCommand::Add(a) => {
            let cfg = load(&a.overrides)?;
            let path = &cfg.api.users_file;
            let mut users = Users::load(path)?;
            let new = NewUser {
                name: a.name.clone(),
                role: a.role.into(),
                regions: a.regions.clone(),
                authority: a.authority.clone(),
                category: a.category.map(Category::from),
            };
            let password = read_password(&a.name)?;
            let added = users.add(new, &password)?;
            let role = added.role;
            users.save(path)?;
            writeln!(out, "added {} ({role}) to {}", a.name, path.display())?;
            Ok(())
        }
        UsersCommand::Disable { name, overrides } => {
            let cfg = load(overrides)?;
            let path = &cfg.api.users_file;
            let mut users = Users::load(path)?;
            let was = users.disable(name)?;
            users.save(path)?;
            if was {
                writeln!(out, "disabled {name}")?;
            } else {
                writeln!(out, "{name} was disabled already")?;
            }
            Ok(())
        }
        UsersCommand::List { json, overrides } => {
            let cfg = load(overrides)?;
            let users = Users::load(&cfg.api.users_file)?;
            if *json {
                for u in users.all() {
                    writeln!(out, "{}", epitrace_api::render::user(u))?;
                }
                return Ok(());
            }
            writeln!(out, "{:<24} {:<15} {:<9} scope", "name", "role", "state")?;
            for u in users.all() {
                let scope = match (&u.authority, u.category) {
                    (Some(a), Some(c)) => format!("{a} / {c}"),
                    _ => u.regions.join(","),
                };
                writeln!(
                    out,
                    "{:<24} {:<15} {:<9} {scope}",
                    u.name,
                    u.role.as_str(),
                    if u.disabled { "disabled" } else { "enabled" }
                )?;
            }
            Ok(())
        }
    }
}

/// The new user's password: asked on the terminal without echo, or the
/// first line of stdin.
fn read_password(name: &str) -> Result<String> {
    let password = if io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    Ok(password)
}
