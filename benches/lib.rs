//! Support for the benchmarks in this folder (`pipeline.rs`,
//! `sim_scale.rs`, `failover.rs`, `e2e.rs`): the smoke switch that `make
//! test` runs them with, medians, and the process's CPU time and peak
//! memory.

#![allow(clippy::cast_precision_loss)]

/// `EPITRACE_BENCH_SMOKE` is set (to anything but `0` or empty): run one
/// short iteration of tiny size. `make test` runs every benchmark this way
/// so that a broken benchmark fails CI; its figures mean nothing.
#[must_use]
pub fn smoke() -> bool {
    std::env::var("EPITRACE_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The median of `v` (the upper one of an even count); NaN when empty.
#[must_use]
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A name no earlier run used (consumer groups, state).
#[must_use]
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The process's CPU time and peak resident memory over a span: the peak
/// is reset when the span starts (Linux `clear_refs`), so each run reports
/// its own.
#[derive(Debug)]
pub struct Usage {
    cpu_at_start: f64,
}

impl Usage {
    /// Starts a span.
    #[must_use]
    pub fn start() -> Self {
        // "5" resets the peak RSS (VmHWM) to the current RSS.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        Self {
            cpu_at_start: cpu_seconds(),
        }
    }

    /// CPU seconds (user + system, all threads) since the start, and the
    /// peak resident bytes since the start.
    #[must_use]
    pub fn finish(self) -> (f64, u64) {
        (cpu_seconds() - self.cpu_at_start, peak_rss_bytes())
    }
}

/// User + system CPU seconds of this process so far (`/proc/self/stat`,
/// clock ticks of 1/100 s); 0 where unavailable.
#[must_use]
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in brackets.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; the state field
    // (3) is index 0 here.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The peak resident set of this process (`VmHWM`), in bytes; 0 where
/// unavailable.
#[must_use]
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
