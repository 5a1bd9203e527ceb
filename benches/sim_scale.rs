//! How the simulator scales: residents × 1 day through a counting sink (no
//! disk), reporting rows per second and the process's peak resident memory
//! after each size. Memory follows one day of schedules (stays per
//! resident), not the number of records written; so 1,000,000 residents fit
//! in a few GiB while their week of records (~1.6 billion rows) streams out.
//!
//! `cargo bench -p epitrace-bench --bench sim_scale` (release);
//! `EPITRACE_SIM_SIZES=10000,50000` to choose the sizes;
//! `EPITRACE_BENCH_SMOKE=1` (`make test`) runs 500 residents only.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::Instant;

use epitrace_core::config::ExposureConfig;
use epitrace_feeds::Feed;
use epitrace_sim::city::{CityConfig, Malformed, RowSink, simulate};

#[derive(Default)]
struct Count {
    rows: u64,
    bytes: u64,
}

impl RowSink for Count {
    type Error = std::convert::Infallible;

    fn row(&mut self, _feed: Feed, values: &[String]) -> Result<(), Self::Error> {
        self.rows += 1;
        self.bytes += values.iter().map(|v| v.len() as u64 + 1).sum::<u64>();
        Ok(())
    }

    fn malformed(&mut self, _feed: Feed, _row: &Malformed) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Peak resident set size of this process so far, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let sizes: Vec<u32> = std::env::var("EPITRACE_SIM_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if epitrace_bench::smoke() {
                vec![500]
            } else {
                vec![10_000, 50_000, 200_000]
            }
        });
    println!(
        "{:>10} {:>6} {:>14} {:>12} {:>10} {:>16}",
        "residents", "days", "rows", "rows/s", "MiB out", "peak RSS (MiB)"
    );
    for residents in sizes {
        let cfg = CityConfig {
            residents,
            days: 1,
            ..CityConfig::default()
        };
        let mut sink = Count::default();
        let t = Instant::now();
        let _ = simulate(&cfg, &ExposureConfig::default(), &mut sink).unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{residents:>10} {:>6} {:>14} {:>12.0} {:>10.0} {:>16.0}",
            cfg.days,
            sink.rows,
            sink.rows as f64 / secs,
            sink.bytes as f64 / 1_048_576.0,
            peak_rss_mib()
        );
    }
}
