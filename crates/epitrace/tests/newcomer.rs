//! A newcomer's first hour, scripted: the prerequisite check names what is
//! missing in one line, and every command that needs Kafka says within
//! seconds which address it tried and how to start a broker — `run` keeps
//! retrying, reports not-ready, logs a summary instead of an error per
//! client, and stops cleanly on SIGTERM while disconnected.
//!
//! These need no broker: they run against a closed port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A PATH holding only the tools the prerequisite check looks for, minus
/// `without` (and never apt-get or sudo, so nothing can be installed).
fn bare_path(without: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let tools = [
        "bash",
        "sed",
        "head",
        "grep",
        "id",
        "cargo",
        "rustup",
        "rustc",
        "cc",
        "c++",
        "make",
        "cmake",
        "pkg-config",
        "java",
        "javac",
        "mvn",
        "openssl",
        "curl",
        "python3",
    ];
    let home = std::env::var("HOME").unwrap_or_default();
    let search: Vec<PathBuf> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .chain([PathBuf::from(home).join(".cargo/bin")])
        .collect();
    for tool in tools.iter().filter(|t| !without.contains(t)) {
        if let Some(found) = search.iter().map(|d| d.join(tool)).find(|p| p.exists()) {
            symlink(found, dir.path().join(tool)).unwrap();
        }
    }
    dir
}

fn bootstrap(path: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(path.join("bash"))
        .arg(repo().join("scripts/bootstrap.sh"))
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_prerequisite_check_names_a_missing_tool_and_its_install_command_in_one_line() {
    let path = bare_path(&["cmake"]);
    let (code, stdout, stderr) = bootstrap(path.path(), &["--quiet", "build"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, not a backtrace: {stderr}");
    assert!(
        lines[0].starts_with("prerequisites: missing cmake"),
        "{stderr}"
    );
    assert!(lines[0].contains("apt-get install -y cmake"), "{stderr}");

    // The test scope also wants Java and Maven; two missing, one line.
    let path = bare_path(&["cmake", "java"]);
    let (code, _, stderr) = bootstrap(path.path(), &["test"]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cmake") && stderr.contains("java"),
        "{stderr}"
    );
    assert!(stderr.contains("cmake default-jdk-headless"), "{stderr}");

    // Java is not needed for a build.
    let path = bare_path(&["java", "mvn"]);
    let (code, _, stderr) = bootstrap(path.path(), &["--check", "--quiet", "build"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn the_prerequisite_check_passes_on_this_machine_and_refuses_bad_arguments() {
    // `make test` runs on a machine that has everything.
    let out = Command::new("bash")
        .arg(repo().join("scripts/bootstrap.sh"))
        .args(["--check", "test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("bootstrap: ok"));
    let out = Command::new("bash")
        .arg(repo().join("scripts/bootstrap.sh"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn commands_that_need_kafka_name_the_address_within_10_s_when_nothing_answers() {
    let port = closed_port();
    let brokers = format!("127.0.0.1:{port}");
    let out_dir = tempfile::tempdir().unwrap();
    let city = out_dir.path().join("city");
    let city = city.to_str().unwrap();
    let commands: Vec<Vec<String>> = [
        vec!["topics", "create"],
        vec!["topics", "purge", "--yes"],
        vec!["clusters", "--actor", "inv.kim", "--purpose", "test"],
        vec![
            "case",
            "KR-2020-0001",
            "--actor",
            "inv.kim",
            "--purpose",
            "test",
        ],
        vec![
            "sim",
            "--publish",
            "--residents",
            "50",
            "--days",
            "1",
            "--out",
            city,
        ],
    ]
    .into_iter()
    .map(|c| {
        c.into_iter()
            .map(str::to_owned)
            .chain(["--brokers".to_owned(), brokers.clone()])
            .collect()
    })
    .collect();
    let handles: Vec<_> = commands
        .into_iter()
        .map(|args| {
            thread::spawn(move || {
                let started = Instant::now();
                let out = Command::new(env!("CARGO_BIN_EXE_epitrace"))
                    .args(&args)
                    .output()
                    .unwrap();
                (args, started.elapsed(), out)
            })
        })
        .collect();
    for h in handles {
        let (args, took, out) = h.join().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = args.join(" ");
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(took < Duration::from_secs(10), "{what}: took {took:?}");
        assert!(
            stderr.contains(&format!("no Kafka broker answered at {brokers}")),
            "{what}: {stderr}"
        );
        assert!(stderr.contains("make kafka-up"), "{what}: {stderr}");
        assert!(stderr.contains("EPITRACE_BROKERS"), "{what}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{what}: {stderr}"
        );
        // One line: librdkafka's own errors are not shown.
        assert_eq!(stderr.trim().lines().count(), 1, "{what}: {stderr}");
    }
}

fn get(url: &str) -> Option<(u16, String)> {
    epitrace_ops::get(url).ok()
}

/// Kills the child when the test fails before stopping it (no process
/// left behind).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn stop(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
}

#[test]
fn run_without_a_broker_retries_not_ready_with_one_summary_line_and_stops_on_sigterm() {
    let port = closed_port();
    let brokers = format!("127.0.0.1:{port}");
    let metrics_port = closed_port();
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("run.log");
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_epitrace"))
            .args([
                "run",
                "--brokers",
                &brokers,
                "--state-dir",
                state.path().join("state").to_str().unwrap(),
                "--set",
                &format!("metrics.listen=127.0.0.1:{metrics_port}"),
            ])
            .env("RUST_LOG", "info,rdkafka=warn")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let base = format!("http://127.0.0.1:{metrics_port}");
    // Within 10 s: one line naming the address and the fix.
    let named = loop {
        let text = fs::read_to_string(&log).unwrap();
        if text.contains(&format!("no broker at {brokers}")) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no summary within 10 s:\n{text}"
        );
        assert!(child.try_wait().unwrap().is_none(), "exited:\n{text}");
        thread::sleep(Duration::from_millis(200));
    };
    // Not ready, and says why; the gauge agrees.
    let (status, body) = get(&format!("{base}/readyz")).expect("/readyz answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("kafka"), "{body}");
    let (_, metrics) = get(&format!("{base}/metrics")).unwrap();
    assert!(metrics.contains("epitrace_kafka_reachable 0"), "{metrics}");
    assert!(metrics.contains("epitrace_ready 0"));
    // Keep retrying for a while: still alive, still one line per interval,
    // not one per client per retry.
    thread::sleep(Duration::from_secs(8).saturating_sub(started.elapsed()));
    assert!(child.try_wait().unwrap().is_none(), "run gave up");
    let (_, metrics) = get(&format!("{base}/metrics")).unwrap();
    assert!(
        metrics.contains("epitrace_kafka_client_errors_total{kind=\"all_brokers_down\"}"),
        "errors are counted: {metrics}"
    );
    let text = fs::read_to_string(&log).unwrap();
    let noisy: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(
        noisy.len() <= 2,
        "{} warning/error lines in {:?} (named after {named:?}):\n{text}",
        noisy.len(),
        started.elapsed()
    );
    assert!(!text.contains("AllBrokersDown"), "{text}");
    assert!(text.contains("make kafka-up"), "{text}");
    // SIGTERM while disconnected: a clean exit, quickly.
    stop(&mut child, "-TERM");
    let stopping = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM"
        );
        thread::sleep(Duration::from_millis(100));
    };
    let mut rest = String::new();
    fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    assert!(status.success(), "exit {status:?}:\n{rest}");
}
