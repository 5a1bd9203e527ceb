//! `make up` end to end: `scripts/up.sh` starts a real local broker of its
//! own (another port and data folder than the test broker), creates the
//! topics, starts the pipeline, publishes a small simulated city, waits
//! until it is traced, prints the clusters and a case's timeline, keeps
//! running until Ctrl-C (SIGTERM where SIGINT is ignored), and then stops
//! everything it started.
//!
//! Needs Java and Maven (as `make test` does); fails loudly without them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};

use epitrace_e2e::free_port;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Whether process `pid` ignores SIGINT (bit 1 of `SigIgn` in its
/// `/proc` status).
fn ignores_sigint(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1 << 1) != 0)
}

#[test]
fn make_up_traces_a_city_on_a_real_broker_and_stops_everything_on_ctrl_c() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let (port, cport, mport) = (free_port(), free_port(), free_port());
    let mut child = Command::new("bash")
        .arg(repo.join("scripts/up.sh"))
        .env("EPITRACE_BIN", env!("CARGO_BIN_EXE_epitrace"))
        .env("EPITRACE_UP_DIR", dir.path().join("up"))
        .env("KAFKA_LOCAL_DIR", dir.path().join("kafka"))
        .env("KAFKA_LOCAL_PORT", port.to_string())
        .env("KAFKA_LOCAL_CONTROLLER_PORT", cport.to_string())
        .env("UP_METRICS_LISTEN", format!("127.0.0.1:{mport}"))
        .env("UP_RESIDENTS", "400")
        .env("UP_DAYS", "3")
        .env("UP_SEED", "7")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(format!("[stderr] {line}"));
        }
    });
    let started = Instant::now();
    let mut out: Vec<String> = Vec::new();
    // Until it says it runs until Ctrl-C (or gives up).
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                let done = line.contains("running until Ctrl-C");
                out.push(line);
                if done {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("up.sh ended early:\n{}", out.join("\n"))
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            // Drain what is left before failing.
            while let Ok(line) = rx.try_recv() {
                out.push(line);
            }
            panic!("up.sh exited {status:?}:\n{}", out.join("\n"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not traced in 10 min:\n{}",
            out.join("\n")
        );
    }
    let text = out.join("\n");
    println!("{text}");
    assert!(text.contains("up: starting the local broker"), "{text}");
    assert!(text.contains("up: topics created"), "{text}");
    assert!(text.contains("up: pipeline ready"), "{text}");
    assert!(text.contains("up: published "), "{text}");
    assert!(text.contains("up: idle: "), "{text}");
    // The clusters (a table, or the word that there are none) and a case's
    // timeline with visits.
    assert!(
        text.contains("cluster cl-") || text.contains("no live clusters"),
        "{text}"
    );
    let timeline = out
        .iter()
        .find(|l| l.starts_with("case ") && l.contains(" visits"))
        .unwrap_or_else(|| panic!("no timeline:\n{text}"));
    assert!(!timeline.contains(": 0 visits"), "{timeline}");
    assert!(
        text.contains(&format!("http://127.0.0.1:{mport}/metrics")),
        "{text}"
    );
    let pid: u32 = out
        .iter()
        .find_map(|l| l.split("pipeline started (pid ").nth(1))
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pipeline pid:\n{text}"));
    // The pipeline and the broker are up while it waits.
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    let (status, _) = epitrace_ops::get(&format!("http://127.0.0.1:{mport}/readyz")).unwrap();
    assert_eq!(status, 200);

    // Ctrl-C: everything it started stops. A shell started with SIGINT
    // ignored (a background job of a non-interactive shell, as some CI
    // runners start their commands) cannot trap it, so there the test
    // sends SIGTERM, which `make up` handles the same way.
    let (signal, code) = if ignores_sigint(child.id()) {
        println!("SIGINT is ignored in this environment: stopping with SIGTERM");
        ("-TERM", 143)
    } else {
        ("-INT", 130)
    };
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let stopping = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(90),
            "still running 90 s after Ctrl-C"
        );
        thread::sleep(Duration::from_millis(200));
    };
    thread::sleep(Duration::from_millis(300));
    while let Ok(line) = rx.try_recv() {
        out.push(line);
    }
    let text = out.join("\n");
    assert_eq!(status.code(), Some(code), "{text}");
    assert!(text.contains("up: stopping the pipeline"), "{text}");
    assert!(text.contains("up: stopping the broker"), "{text}");
    assert!(text.contains("up: stopped"), "{text}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the pipeline still runs"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the broker still listens"
    );
}
