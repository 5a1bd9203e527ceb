//! `epitrace demo`: the whole pipeline in one process on librdkafka's mock
//! cluster, fed the built-in scenario, with a readable summary.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use epitrace_core::testkit::{CaseSpec, oracle};
use epitrace_core::{Ingest, TracingConfig};
use epitrace_model::codec::{DecodeOptions, decode_single_object, encode_single_object};
use epitrace_model::records::{Exposure, ExposureStatus, Visit};
use epitrace_model::topics::{APPROVALS, CASES, EXPOSURES, TIMELINES};
use epitrace_model::{CaseId, SubjectId};
use epitrace_ops::{OpsConfig, OpsServer, Telemetry};
use epitrace_processors::topology::{TopologyConfig, changelog_specs, topic_specs};
use epitrace_processors::{Pipeline, PipelineConfig, ProcessorKind};
use epitrace_sim::nightlife;
use epitrace_stream::mock::MockKafka;
use epitrace_stream::read::read_to_end;
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};
use epitrace_tools::query::{live_clusters, read_clusters};

fn ops_at(listen: SocketAddr) -> OpsConfig {
    OpsConfig {
        enabled: true,
        listen,
    }
}

/// Runs the demo and prints its summary to `out`.
pub(crate) async fn run(
    residents: u32,
    seed: u64,
    timeout_s: u64,
    metrics_listen: SocketAddr,
    out: &mut impl Write,
) -> Result<()> {
    let started = Instant::now();
    let scenario = nightlife(residents, seed).context("building the scenario")?;
    let mock = MockKafka::start(1).context("starting the mock Kafka cluster")?;
    let topology = TopologyConfig::default();
    let kafka = KafkaConfig::for_brokers(mock.brokers());
    // The mock cluster has no CreateTopics: the changelogs too are made
    // here (compaction is not simulated; nothing in a demo needs it).
    for spec in topic_specs(&topology)
        .into_iter()
        .chain(changelog_specs(&topology, &kafka.group_prefix))
    {
        mock.create_topic(&spec.name, spec.partitions)?;
    }
    let state = tempfile::tempdir().context("creating a temporary state folder")?;
    let cfg = PipelineConfig {
        kafka,
        tracing: TracingConfig::default(),
        topology,
        state_dir: state.path().to_path_buf(),
        ..PipelineConfig::default()
    };
    writeln!(
        out,
        "epitrace demo — mock Kafka at {}, state in {}",
        mock.brokers(),
        state.path().display()
    )?;
    let telemetry = Telemetry::new()?;
    // The demo's metrics, scrapeable while it runs; any free port when the
    // default one is taken (say, by a running `epitrace run`).
    let ops = match OpsServer::start(&ops_at(metrics_listen), &telemetry) {
        Ok(server) => server,
        Err(_) => OpsServer::start(&ops_at(SocketAddr::new(metrics_listen.ip(), 0)), &telemetry)?,
    };
    writeln!(
        out,
        "metrics while it runs: http://{0}/metrics (health: /healthz, /readyz)",
        ops.local_addr()
    )?;
    let pipeline = Pipeline::start(&cfg, &ProcessorKind::ALL, &telemetry)?;
    let publisher = Publisher::new(&cfg.kafka)?;

    // Phase 1: the trails. Phase 2: the cases. Phase 3: late data and junk.
    let feed = |records: &[epitrace_sim::FeedRecord]| -> Result<Vec<OutputRecord>> {
        records
            .iter()
            .map(|r| {
                Ok(OutputRecord {
                    topic: r.topic().into(),
                    key: r.key(),
                    payload: r.encode()?,
                    timestamp_ms: None,
                })
            })
            .collect()
    };
    publisher.send_all(&feed(&scenario.trail)?).await?;
    let cases: Vec<OutputRecord> = scenario
        .cases
        .iter()
        .map(|c| {
            Ok(OutputRecord {
                topic: CASES.into(),
                key: c.case_id.as_str().as_bytes().to_vec(),
                payload: encode_single_object(c)?,
                timestamp_ms: None,
            })
        })
        .collect::<Result<_>>()?;
    publisher.send_all(&cases).await?;
    // The authorities' approvals: each category of each case, granted at
    // confirmation (without them the cases stay pending and nothing is
    // traced).
    let approvals: Vec<OutputRecord> = scenario
        .approvals()
        .iter()
        .map(|a| {
            Ok(OutputRecord {
                topic: APPROVALS.into(),
                key: a.case_id.as_str().as_bytes().to_vec(),
                payload: encode_single_object(a)?,
                timestamp_ms: None,
            })
        })
        .collect::<Result<_>>()?;
    publisher.send_all(&approvals).await?;
    let mut late = feed(&scenario.late)?;
    late.extend(scenario.malformed.iter().map(|m| OutputRecord {
        topic: m.topic.into(),
        key: m.key.clone(),
        payload: m.payload.clone(),
        timestamp_ms: None,
    }));
    publisher.send_all(&late).await?;
    let published = scenario.trail.len() + scenario.cases.len() + approvals.len() + late.len();
    writeln!(
        out,
        "published {published} records ({} malformed); waiting for the pipeline…",
        scenario.malformed.len()
    )?;

    // What the rule says, computed by brute force from the same records.
    let ingest = Ingest::new(&cfg.tracing);
    let observations: Vec<_> = scenario.feed().map(|r| r.observation(&ingest)).collect();
    let specs: Vec<CaseSpec> = scenario
        .live_cases()
        .iter()
        .map(CaseSpec::from_event)
        .collect();
    let expected = oracle::exposures(&observations, &specs, &cfg.tracing);

    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let reader_cfg = cfg.kafka.clone();
    let latest = loop {
        let rc = reader_cfg.clone();
        let records = tokio::task::spawn_blocking(move || {
            read_to_end(&rc, EXPOSURES, Duration::from_secs(10))
        })
        .await??;
        let latest = latest_exposures(&records);
        let agrees = latest.len() == expected.len()
            && expected.iter().all(|(k, e)| {
                latest
                    .get(k)
                    .is_some_and(|x| i64::from(x.cumulative_s) == e.cumulative_ms / 1000)
            });
        if agrees {
            break latest;
        }
        if Instant::now() > deadline {
            pipeline.stop().await?;
            bail!(
                "the pipeline did not produce the expected {} exposures within {timeout_s} s (got {})",
                expected.len(),
                latest.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The cluster the scenario holds: case 1 and the two it infected at the
    // club, linked by the exposure chain.
    let want: Vec<&str> = vec!["KR-2020-0501", "KR-2020-0503", "KR-2020-0504"];
    let clusters = loop {
        let rc = reader_cfg.clone();
        let (versions, _) =
            tokio::task::spawn_blocking(move || read_clusters(&rc, Duration::from_secs(10)))
                .await??;
        let live = live_clusters(versions);
        if live
            .iter()
            .any(|c| c.cases.iter().map(CaseId::as_str).eq(want.iter().copied()))
        {
            break live;
        }
        if Instant::now() > deadline {
            pipeline.stop().await?;
            bail!(
                "the pipeline did not publish the cluster of {} within {timeout_s} s (live: {})",
                want.join(", "),
                live.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let stats: Vec<(ProcessorKind, u64, u64, u64)> = pipeline
        .stats()
        .iter()
        .map(|(k, s)| {
            use std::sync::atomic::Ordering::Relaxed;
            (
                *k,
                s.records_in.load(Relaxed),
                s.records_out.load(Relaxed),
                s.dead_letters.load(Relaxed),
            )
        })
        .collect();
    let rc = reader_cfg.clone();
    let visits = latest_visits(
        &tokio::task::spawn_blocking(move || read_to_end(&rc, TIMELINES, Duration::from_secs(10)))
            .await??,
    );
    pipeline.stop().await?;

    writeln!(out)?;
    for case in scenario.live_cases() {
        writeln!(
            out,
            "case {} — {} pseudonyms, infectious from {}",
            case.case_id,
            case.subjects.len(),
            case.infectious_from
        )?;
        let timeline = visits.get(&case.case_id).map_or(&[][..], Vec::as_slice);
        writeln!(out, "  timeline ({} visits):", timeline.len())?;
        writeln!(
            out,
            "  {:<11} {:>7}  {:<22} {:<4} {:<16} confidence",
            "when (UTC)", "minutes", "place (lat, lng)", "res", "sources"
        )?;
        for v in timeline {
            let place = v.cell.center();
            let sources: Vec<&str> = v.sources.iter().map(|s| s.as_symbol()).collect();
            writeln!(
                out,
                "  {}–{} {:>7}  {:<22} {:<4} {:<16} {:.2}",
                &v.start.to_string()[11..16],
                &v.end.to_string()[11..16],
                v.dwell_s / 60,
                format!("{:.4}, {:.4}", place.lat(), place.lng()),
                v.res(),
                sources.join("+"),
                v.confidence.get()
            )?;
        }
        writeln!(
            out,
            "  {:<10} {:>7} {:<5} {:>10}  {:<22} when (UTC)",
            "contact", "minutes", "class", "likelihood", "first place (lat, lng)"
        )?;
        let mut rows: Vec<(&SubjectId, &Exposure)> = latest
            .iter()
            .filter(|((c, _), _)| *c == case.case_id)
            .map(|((_, contact), e)| (contact, e))
            .collect();
        rows.sort_by_key(|(_, e)| std::cmp::Reverse(e.cumulative_s));
        let shown = 15;
        for (contact, e) in rows.iter().take(shown) {
            let place = e.first_cell.center();
            let when: Vec<String> = e
                .windows
                .iter()
                .map(|w| {
                    format!(
                        "{}–{}",
                        &w.start().to_string()[11..16],
                        &w.end().to_string()[11..16]
                    )
                })
                .collect();
            writeln!(
                out,
                "  {:<10} {:>7} {:<5} {:>10}  {:<22} {}",
                short(contact),
                e.cumulative_s / 60,
                e.contact_class
                    .map_or("-", |c| c.as_symbol())
                    .to_ascii_lowercase(),
                e.likelihood
                    .map_or_else(|| "-".to_owned(), |p| format!("{:.2}", p.get())),
                format!("{:.4}, {:.4}", place.lat(), place.lng()),
                when.join(", ")
            )?;
        }
        if rows.len() > shown {
            writeln!(out, "  … and {} more (longest first)", rows.len() - shown)?;
        }
    }
    writeln!(out)?;
    writeln!(out, "clusters ({} live):", clusters.len())?;
    for c in &clusters {
        writeln!(
            out,
            "  {} {} — {} cases, index case {}",
            c.cluster_id,
            c.status.as_symbol(),
            c.size,
            c.index_case.as_ref().map_or("none", CaseId::as_str)
        )?;
        let cases: Vec<&str> = c.cases.iter().map(CaseId::as_str).collect();
        writeln!(out, "    cases: {}", cases.join(", "))?;
        writeln!(out, "    why:   {}", c.source_evidence.as_str())?;
        writeln!(
            out,
            "    {:<22} {:<4} {:<35} {:<14} cases here",
            "place (lat, lng)", "res", "when (UTC)", "source"
        )?;
        for p in &c.places {
            let centre = p.cell().center();
            let here: Vec<&str> = p.cases().iter().map(CaseId::as_str).collect();
            writeln!(
                out,
                "    {:<22} {:<4} {:<35} {:<14} {}",
                format!("{:.4}, {:.4}", centre.lat(), centre.lng()),
                u8::from(p.cell().resolution()),
                format!(
                    "{} – {}",
                    &p.start().to_string()[..16],
                    &p.end().to_string()[..16]
                ),
                p.source_case().map_or("-", CaseId::as_str),
                here.join(", ")
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "retracted case KR-2020-0502: {} live exposures (expected 0)",
        latest
            .keys()
            .filter(|(c, _)| c.as_str() == "KR-2020-0502")
            .count()
    )?;
    for (kind, rin, rout, dead) in stats {
        writeln!(
            out,
            "{:<20} in {rin:>6}  out {rout:>6}  dead letters {dead}",
            kind.name()
        )?;
    }
    writeln!(
        out,
        "{} exposures, equal to the brute-force oracle's; {:.1} s",
        latest.len(),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

/// A pseudonym shortened for display: enough to tell rows apart, not to
/// identify anyone (the telecom maps pseudonyms back to subscribers).
fn short(subject: &SubjectId) -> String {
    let hex = subject.to_hex();
    format!("{}…{}", &hex[..4], &hex[28..])
}

/// The live visits of every case, in time order.
fn latest_visits(
    records: &[epitrace_stream::read::ConsumedRecord],
) -> BTreeMap<CaseId, Vec<Visit>> {
    let mut latest: BTreeMap<String, Visit> = BTreeMap::new();
    for r in records {
        let Some(payload) = &r.payload else { continue };
        let Ok(v) = decode_single_object::<Visit>(payload, &DecodeOptions::default()) else {
            continue;
        };
        latest.insert(v.visit_id.as_str().to_owned(), v);
    }
    let mut by_case: BTreeMap<CaseId, Vec<Visit>> = BTreeMap::new();
    for v in latest.into_values().filter(|v| !v.retracted) {
        by_case.entry(v.case_id.clone()).or_default().push(v);
    }
    for visits in by_case.values_mut() {
        visits.sort_by_key(|v| (v.start, v.end));
    }
    by_case
}

/// The latest version of every exposure, live ones only.
fn latest_exposures(
    records: &[epitrace_stream::read::ConsumedRecord],
) -> BTreeMap<(CaseId, SubjectId), Exposure> {
    let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
    for r in records {
        let Some(payload) = &r.payload else { continue };
        let Ok(e) = decode_single_object::<Exposure>(payload, &DecodeOptions::default()) else {
            continue;
        };
        latest.insert((e.case_id.clone(), e.contact), e);
    }
    latest.retain(|_, e| e.status != ExposureStatus::Retracted);
    latest
}
