//! The simulator: deterministic for a seed, plausible volumes, and files
//! the producers accept except the intended malformed rows.

// Test code: a panic is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss
)]

use std::path::Path;

use epitrace_core::config::ExposureConfig;
use epitrace_feeds::{Feed, FeedReader, Format, PseudonymKey, Pseudonymizer};
use epitrace_sim::city::CityConfig;
use epitrace_sim::city::files::{feed_path, write_city};

fn small() -> CityConfig {
    CityConfig {
        seed: 7,
        residents: 600,
        days: 3,
        malformed_share: 0.002,
        ..CityConfig::default()
    }
}

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = walk(dir)
        .into_iter()
        .map(|f| {
            (
                f.strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(&f).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

#[test]
fn the_same_seed_gives_identical_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let exposure = ExposureConfig::default();
    write_city(&small(), &exposure, a.path(), Format::Csv).unwrap();
    write_city(&small(), &exposure, b.path(), Format::Csv).unwrap();
    let other = CityConfig { seed: 8, ..small() };
    write_city(&other, &exposure, c.path(), Format::Csv).unwrap();
    let (fa, fb, fc) = (read_all(a.path()), read_all(b.path()), read_all(c.path()));
    assert_eq!(
        fa.len(),
        12,
        "{:?}",
        fa.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(fa == fb, "same seed, different bytes");
    assert!(
        fa.iter().zip(&fc).any(|(x, y)| x.1 != y.1),
        "another seed, same bytes"
    );
}

#[test]
fn volumes_truth_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small();
    let exposure = ExposureConfig::default();
    let manifest = write_city(&cfg, &exposure, dir.path(), Format::Csv).unwrap();
    println!("{}", serde_json::to_string_pretty(&manifest).unwrap());
    // ~230 records per phone per day.
    let telecom = manifest.counts.rows["telecom"] as f64 / f64::from(cfg.residents * cfg.days);
    assert!(
        (190.0..270.0).contains(&telecom),
        "{telecom} records per phone-day"
    );
    let cards = manifest.counts.rows["card"] as f64 / f64::from(cfg.residents * cfg.days);
    assert!(
        (0.2..6.0).contains(&cards),
        "{cards} payments per person-day"
    );
    assert!(manifest.counts.rows["checkin"] > 0);
    assert!(manifest.cases >= usize::try_from(cfg.index_cases).unwrap());
    assert!(manifest.true_exposures > 10, "{}", manifest.true_exposures);
    // Every generated file passes the producer's validation, except exactly
    // the malformed rows the simulator wrote.
    let key = PseudonymKey::from_file(&dir.path().join("pseudonym.key")).unwrap();
    for feed in Feed::ALL {
        let reader = FeedReader::open(
            &feed_path(dir.path(), feed, Format::Csv),
            feed,
            Format::Csv,
            Pseudonymizer::new(key.clone()),
            exposure.clone(),
            None,
        )
        .unwrap();
        let (mut ok, mut bad) = (0u64, 0u64);
        for r in reader {
            match r {
                Ok(_) => ok += 1,
                Err(_) => bad += 1,
            }
        }
        let name = feed.name();
        assert_eq!(
            ok,
            manifest.counts.rows.get(name).copied().unwrap_or(0),
            "{name} good rows"
        );
        assert_eq!(
            bad,
            manifest.counts.malformed.get(name).copied().unwrap_or(0),
            "{name} bad rows"
        );
    }
}
