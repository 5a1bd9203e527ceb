//! `epitrace wait`: block until a running pipeline has caught up with its
//! input, judged from its own operations endpoint (no Kafka client, no
//! personal data) — what `make up` and scripts use between publishing data
//! and reading the results.

use std::io::{self, Write};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;

/// `epitrace wait` flags.
#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// The pipeline's operations endpoint (`metrics.listen` of `epitrace
    /// run`), as `http://HOST:PORT`.
    #[arg(
        long,
        default_value = "http://127.0.0.1:9464",
        env = "EPITRACE_METRICS_URL"
    )]
    url: String,
    /// Idle means: ready, no consumer lag, and no input record processed
    /// for this many seconds.
    #[arg(long, default_value_t = 10)]
    quiet_s: u64,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
}

/// What one scrape of `/metrics` says about progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Progress {
    /// Sum of `epitrace_input_records_total` over every series.
    pub records_in: u64,
    /// Sum of `epitrace_consumer_lag_records` over every series.
    pub lag: u64,
    /// `epitrace_ready`.
    pub ready: bool,
}

/// Reads the sums `wait` needs from the Prometheus text format. Lines that
/// do not parse are ignored (the format may grow).
pub(crate) fn progress(metrics: &str) -> Progress {
    let mut p = Progress::default();
    for line in metrics.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        if !v.is_finite() || v < 0.0 {
            continue;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // finite, >= 0
        let n = v as u64;
        match name {
            "epitrace_input_records_total" => p.records_in += n,
            "epitrace_consumer_lag_records" => p.lag += n,
            "epitrace_ready" => p.ready = n == 1,
            _ => {}
        }
    }
    p
}

/// Polls every second until idle (see [`WaitArgs::quiet_s`]), printing a
/// progress line to stderr every 10 s and the final counts to `out`.
pub(crate) fn wait_cmd(args: &WaitArgs, out: &mut impl Write) -> Result<()> {
    let base = args.url.trim_end_matches('/');
    let started = Instant::now();
    let timeout = Duration::from_secs(args.timeout_s);
    let quiet = Duration::from_secs(args.quiet_s);
    let mut last: Option<Progress> = None;
    let mut unchanged_since = Instant::now();
    let mut last_line = Instant::now();
    let mut last_error = String::new();
    loop {
        match epitrace_ops::get(&format!("{base}/metrics")) {
            Ok((200, body)) => {
                let now = progress(&body);
                if last.is_none_or(|l| l.records_in != now.records_in || !now.ready || now.lag > 0)
                {
                    unchanged_since = Instant::now();
                }
                last = Some(now);
                if now.ready && now.lag == 0 && unchanged_since.elapsed() >= quiet {
                    writeln!(
                        out,
                        "idle: {} input records processed, no lag ({:.0} s)",
                        now.records_in,
                        started.elapsed().as_secs_f64()
                    )?;
                    return Ok(());
                }
            }
            Ok((status, body)) => last_error = format!("{status} {}", body.trim()),
            Err(e) => last_error = e.to_string(),
        }
        if started.elapsed() >= timeout {
            match last {
                Some(p) => bail!(
                    "not idle after {} s: {} input records processed, lag {}, ready {}",
                    args.timeout_s,
                    p.records_in,
                    p.lag,
                    p.ready
                ),
                None => bail!(
                    "no metrics at {base}/metrics after {} s ({last_error})",
                    args.timeout_s
                ),
            }
        }
        if last_line.elapsed() >= Duration::from_secs(10) {
            last_line = Instant::now();
            let _ = match last {
                Some(p) => writeln!(
                    io::stderr(),
                    "waiting: {} input records processed, lag {}{}",
                    p.records_in,
                    p.lag,
                    if p.ready { "" } else { ", not ready" }
                ),
                None => writeln!(io::stderr(), "waiting for {base}/metrics ({last_error})"),
            };
        }
        thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_sums_the_series_it_needs() {
        let text = "\
# HELP epitrace_input_records_total Records consumed.
# TYPE epitrace_input_records_total counter
epitrace_input_records_total{processor=\"segmenter\",topic=\"feeds.telecom.location\"} 1200
epitrace_input_records_total{processor=\"presence-join\",topic=\"presence.segments\"} 34
epitrace_consumer_lag_records{partition=\"0\",processor=\"segmenter\",topic=\"t\"} 5
epitrace_consumer_lag_records{partition=\"1\",processor=\"segmenter\",topic=\"t\"} 0
epitrace_ready 1
epitrace_readyness_other 7
garbage line
epitrace_input_records_total{processor=\"x\"} NaN
";
        assert_eq!(
            progress(text),
            Progress {
                records_in: 1234,
                lag: 5,
                ready: true
            }
        );
        assert_eq!(progress("epitrace_ready 0\n"), Progress::default());
    }
}
