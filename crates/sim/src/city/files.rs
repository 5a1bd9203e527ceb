//! The simulator's output folder: the five feed files (raw ids, as
//! providers hold them), the ground truth, a manifest and a demo
//! pseudonymisation key.
//!
//! ```text
//! OUT/telecom.csv  card.csv  checkin.csv  cases.csv  approvals.csv   (or .jsonl)
//! OUT/truth/people.csv       resident, msisdn, card_number, household, work, subway, precise
//! OUT/truth/cases.csv        case_id, person, confirmed_at, infectious_from, infectious_until
//! OUT/truth/contacts.csv     case_id, case_person, contact_person, setting, cumulative_s, peak_s, exposed
//! OUT/truth/infections.csv   person, case_id, infected_at, onset, confirmed_at, infector, place, setting
//! OUT/truth/clusters.csv     cluster, place, kind, lat, lng, first, last, index_case, cases, size
//! OUT/manifest.json          configuration, counts (rows and malformed rows per feed)
//! OUT/pseudonym.key          a key for trying it out (hex); an authority issues its own
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use epitrace_core::config::ExposureConfig;
use epitrace_feeds::{Feed, Format, write_header, write_row};
use epitrace_model::EventTime;

use super::rng::Rng;
use super::schedule::setting;
use super::{Counts, Malformed, RowSink, Truth, World, simulate};
use crate::city::CityConfig;

/// Writes rows to one file per feed.
#[derive(Debug)]
pub struct FileSink {
    format: Format,
    files: BTreeMap<&'static str, BufWriter<File>>,
}

impl FileSink {
    /// Creates the four feed files in `dir` (with headers, for CSV).
    ///
    /// # Errors
    /// I/O.
    pub fn create(dir: &Path, format: Format) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut files = BTreeMap::new();
        for feed in Feed::ALL {
            let mut w = BufWriter::new(File::create(feed_path(dir, feed, format))?);
            write_header(&mut w, feed, format)?;
            files.insert(feed.name(), w);
        }
        Ok(Self { format, files })
    }

    fn file(&mut self, feed: Feed) -> io::Result<&mut BufWriter<File>> {
        self.files
            .get_mut(feed.name())
            .ok_or_else(|| io::Error::other("feed file not open"))
    }

    /// Flushes every file.
    ///
    /// # Errors
    /// I/O.
    pub fn finish(mut self) -> io::Result<()> {
        for w in self.files.values_mut() {
            w.flush()?;
        }
        Ok(())
    }
}

/// The file of a feed in an output folder.
#[must_use]
pub fn feed_path(dir: &Path, feed: Feed, format: Format) -> PathBuf {
    let ext = match format {
        Format::Csv => "csv",
        Format::JsonLines => "jsonl",
    };
    dir.join(format!("{}.{ext}", feed.name()))
}

impl RowSink for FileSink {
    type Error = io::Error;

    fn row(&mut self, feed: Feed, values: &[String]) -> io::Result<()> {
        let format = self.format;
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        write_row(self.file(feed)?, feed, format, &refs)
    }

    fn malformed(&mut self, feed: Feed, row: &Malformed) -> io::Result<()> {
        let format = self.format;
        let w = self.file(feed)?;
        match row {
            Malformed::Values(values) => {
                let refs: Vec<&str> = values.iter().map(String::as_str).collect();
                if format == Format::JsonLines && refs.len() < feed.columns().len() {
                    // A cut-off JSON object.
                    let mut line = Vec::new();
                    write_row(&mut line, feed, format, &refs)?;
                    let text = String::from_utf8_lossy(&line);
                    let cut = text.len() / 2;
                    let cut = (0..=cut)
                        .rev()
                        .find(|i| text.is_char_boundary(*i))
                        .unwrap_or(0);
                    writeln!(w, "{}", &text[..cut])
                } else {
                    write_row(w, feed, format, &refs)
                }
            }
            Malformed::Garbage(text) => writeln!(w, "{text}"),
        }
    }
}

/// What `write_city` produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    /// Seed.
    pub seed: u64,
    /// Residents.
    pub residents: u32,
    /// Days.
    pub days: u32,
    /// First day's local midnight (RFC 3339).
    pub start: String,
    /// Share of precise phones.
    pub precise_phones: f64,
    /// Records per phone per day.
    pub pings_per_day: f64,
    /// Rows per feed, malformed rows per feed, duplicates, late blocks.
    pub counts: Counts,
    /// Infections (index cases included).
    pub infections: usize,
    /// Published cases.
    pub cases: usize,
    /// Case–resident pairs that meet the exposure rule on exact positions.
    pub true_exposures: usize,
    /// True clusters.
    pub clusters: usize,
}

fn create(path: &Path) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::new(File::create(path)?))
}

fn time(ms: i64) -> String {
    EventTime::from_millis("t", ms).map_or_else(|_| ms.to_string(), epitrace_feeds::format_time)
}

fn place_name(place: super::Place) -> String {
    match place {
        super::Place::Home(h) => format!("home-{h}"),
        super::Place::Work(w) => format!("work-{w}"),
        super::Place::Venue(v) => format!("venue-{v}"),
        super::Place::Vehicle(a, b, slot) => format!("subway-{a}-{b}-{slot}"),
    }
}

/// The demo pseudonymisation key of a seed, as hex (derived from the seed:
/// not secret; an authority issues its own).
#[must_use]
pub fn demo_key(seed: u64) -> String {
    let mut rng = Rng::new(seed, &[99]);
    (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect()
}

/// Simulates `cfg` into `dir`: feeds in `format`, the ground truth, the
/// manifest and a demo key. Returns the manifest.
///
/// # Errors
/// I/O.
pub fn write_city(
    cfg: &CityConfig,
    exposure: &ExposureConfig,
    dir: &Path,
    format: Format,
) -> io::Result<Manifest> {
    let mut sink = FileSink::create(dir, format)?;
    let (world, counts, truth) = simulate(cfg, exposure, &mut sink)?;
    sink.finish()?;
    write_truth(cfg, &world, counts, &truth, dir)
}

/// Writes the ground truth, the manifest and the demo key of a finished run
/// into `dir` (the feeds went elsewhere, or were written by [`FileSink`]).
///
/// # Errors
/// I/O.
pub fn write_truth(
    cfg: &CityConfig,
    world: &World,
    counts: Counts,
    truth: &Truth,
    dir: &Path,
) -> io::Result<Manifest> {
    std::fs::create_dir_all(dir)?;
    write_truth_files(cfg, world, truth, &dir.join("truth"))?;
    let manifest = Manifest {
        seed: cfg.seed,
        residents: cfg.residents,
        days: cfg.days,
        start: time(cfg.start_ms),
        precise_phones: cfg.precise_phones,
        pings_per_day: cfg.pings_per_day,
        counts,
        infections: truth.infections.len(),
        cases: truth.cases.len(),
        true_exposures: truth.contacts.iter().filter(|c| c.exposed).count(),
        clusters: truth.clusters.len(),
    };
    let mut m = create(&dir.join("manifest.json"))?;
    serde_json::to_writer_pretty(&mut m, &manifest).map_err(io::Error::other)?;
    writeln!(m)?;
    m.flush()?;
    // A key to try the producers with (derived from the seed: not secret).
    std::fs::write(
        dir.join("pseudonym.key"),
        format!("{}\n", demo_key(cfg.seed)),
    )?;
    Ok(manifest)
}

fn write_truth_files(cfg: &CityConfig, world: &World, truth: &Truth, dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let case_of: BTreeMap<u32, &str> = truth
        .cases
        .iter()
        .map(|(id, p)| (*p, id.as_str()))
        .collect();

    let mut w = create(&dir.join("people.csv"))?;
    writeln!(w, "person,msisdn,card_number,household,work,subway,precise")?;
    for (i, p) in world.people.iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        writeln!(
            w,
            "{i},{},{},{},{},{},{}",
            World::msisdn(i),
            world.card_number(i).unwrap_or_default(),
            p.household,
            p.work.map(|x| x.to_string()).unwrap_or_default(),
            u8::from(p.subway),
            u8::from(p.precise),
        )?;
    }
    w.flush()?;

    let mut w = create(&dir.join("cases.csv"))?;
    writeln!(
        w,
        "case_id,person,confirmed_at,infectious_from,infectious_until"
    )?;
    for (id, p) in &truth.cases {
        let Some(inf) = truth.infections.get(p) else {
            continue;
        };
        writeln!(
            w,
            "{id},{p},{},{},{}",
            inf.confirmed_at.map(time).unwrap_or_default(),
            time(inf.infectious_from),
            time(inf.infectious_until)
        )?;
    }
    w.flush()?;

    let mut w = create(&dir.join("contacts.csv"))?;
    writeln!(
        w,
        "case_id,case_person,contact_person,setting,cumulative_s,peak_s,exposed"
    )?;
    for c in &truth.contacts {
        let Some(id) = case_of.get(&c.case) else {
            continue;
        };
        writeln!(
            w,
            "{id},{},{},{},{},{},{}",
            c.case,
            c.contact,
            c.setting.name(),
            c.cumulative_s,
            c.peak_s,
            u8::from(c.exposed)
        )?;
    }
    w.flush()?;

    let mut w = create(&dir.join("infections.csv"))?;
    writeln!(
        w,
        "person,case_id,infected_at,onset,confirmed_at,infector,place,setting"
    )?;
    for (p, inf) in &truth.infections {
        let (place, set) = inf.place.map_or((String::new(), ""), |pl| {
            (place_name(pl), setting(world, pl).0.name())
        });
        writeln!(
            w,
            "{p},{},{},{},{},{},{place},{set}",
            case_of.get(p).copied().unwrap_or(""),
            time(inf.infected_at),
            inf.onset.map(time).unwrap_or_default(),
            inf.confirmed_at.map(time).unwrap_or_default(),
            inf.infector.map(|x| x.to_string()).unwrap_or_default(),
        )?;
    }
    w.flush()?;

    let mut w = create(&dir.join("clusters.csv"))?;
    writeln!(
        w,
        "cluster,place,kind,lat,lng,first,last,index_case,cases,size"
    )?;
    for (i, c) in truth.clusters.iter().enumerate() {
        let pos = world.pos(c.place);
        let kind = match c.place {
            super::Place::Venue(v) => world
                .venues
                .get(v as usize)
                .map_or("venue", |v| v.kind.name()),
            other => setting(world, other).0.name(),
        };
        let mut members: Vec<&str> = std::iter::once(c.infector)
            .chain(c.infected.iter().copied())
            .filter_map(|p| case_of.get(&p).copied())
            .collect();
        members.sort_unstable();
        writeln!(
            w,
            "T{}-{:03},{},{kind},{},{},{},{},{},{},{}",
            cfg.seed,
            i + 1,
            place_name(c.place),
            pos.map(|p| format!("{:.6}", p.lat)).unwrap_or_default(),
            pos.map(|p| format!("{:.6}", p.lng)).unwrap_or_default(),
            time(c.first),
            time(c.last),
            case_of.get(&c.infector).copied().unwrap_or(""),
            members.join(";"),
            members.len(),
        )?;
    }
    w.flush()
}
