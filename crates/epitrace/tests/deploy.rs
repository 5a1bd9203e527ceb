//! The deployment files agree with the binary and with each other (there is
//! no Docker engine or cluster here, so they are checked as data): every
//! file parses; every configuration they carry passes `epitrace config
//! check`; every command line they run parses; every metric the dashboard
//! queries is one the binary exports; ports, paths, labels and names match.

// Test code: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use epitrace_ops::Metrics;
use serde::Deserialize;
use serde_json::Value;

const METRICS_PORT: u64 = 9464;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON values.
fn yaml(rel: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(&read(rel))
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect()
}

fn epitrace(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_epitrace"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // The developer's own settings must not leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("EPITRACE_") && !env.iter().any(|(e, _)| *e == k) {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Checks a configuration file with the binary; returns the effective
/// configuration it prints.
fn config_check(file: &Path, env: &[(&str, &str)]) -> String {
    let (ok, out, err) = epitrace(&["config", "check", file.to_str().unwrap()], env);
    assert!(ok, "{}: {err}", file.display());
    out
}

/// A command line of a container parses (clap rejects unknown flags before
/// it honours `--help`).
fn command_parses(args: &[String]) {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--help");
    let (ok, _, err) = epitrace(&args, &[]);
    assert!(ok, "`epitrace {}` does not parse: {err}", args.join(" "));
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

#[test]
fn the_example_configuration_is_valid_and_complete() {
    let out = config_check(&repo().join("deploy/epitrace.example.toml"), &[]);
    // Every key the binary knows is documented in the example.
    let example = read("deploy/epitrace.example.toml");
    let (ok, keys, err) = epitrace(&["config", "keys"], &[]);
    assert!(ok, "{err}");
    for line in keys.lines().skip(1) {
        let key = line.split_whitespace().next().unwrap();
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            example.contains(&format!("{leaf} ="))
                || example.contains(&format!("# {leaf} ="))
                || example.contains(&format!("[{key}]")),
            "{key} is not in deploy/epitrace.example.toml"
        );
    }
    assert!(out.contains("listen = \"127.0.0.1:9464\""), "{out}");
}

/// The `[tracing.likelihood]` table of `config check`'s output.
fn likelihood_table(effective: &str) -> String {
    let start = effective
        .find("[tracing.likelihood]")
        .unwrap_or_else(|| panic!("no [tracing.likelihood] in {effective}"));
    let rest = &effective[start..];
    let end = rest[1..].find("\n[").map_or(rest.len(), |i| i + 1);
    rest[..end].to_owned()
}

#[test]
fn the_default_likelihood_model_is_the_calibration_file() {
    // The fitted model is kept as configuration with its provenance
    // (deploy/calibration/likelihood.toml, written by `epitrace
    // calibrate`); the built-in defaults are the same numbers.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let defaults = likelihood_table(&config_check(&empty, &[]));
    let fitted = likelihood_table(&config_check(
        &repo().join("deploy/calibration/likelihood.toml"),
        &[],
    ));
    assert_eq!(defaults, fitted);
    assert!(fitted.contains("provenance = \"") && !fitted.contains("not fitted"));
    // The example configuration says the same.
    let example = likelihood_table(&config_check(
        &repo().join("deploy/epitrace.example.toml"),
        &[],
    ));
    assert_eq!(example, fitted);
}

#[test]
fn compose_agrees_with_the_binary_prometheus_and_grafana() {
    let compose = &yaml("deploy/compose/compose.yaml")[0];
    let services = compose["services"].as_object().unwrap();
    for name in [
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "epitrace-topics",
        "epitrace-1",
        "epitrace-2",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    // Three KRaft voters, each a broker and a controller.
    for (i, name) in ["kafka-1", "kafka-2", "kafka-3"].iter().enumerate() {
        let env = &services[*name]["environment"];
        assert_eq!(env["KAFKA_NODE_ID"], Value::String((i + 1).to_string()));
        assert_eq!(env["KAFKA_PROCESS_ROLES"], "broker,controller");
        assert_eq!(
            env["KAFKA_CONTROLLER_QUORUM_VOTERS"],
            "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        );
    }
    // The config the instances mount is valid, and with their environment
    // the endpoint listens where Prometheus scrapes.
    let config = repo().join("deploy/compose/epitrace.toml");
    let brokers = {
        let text = read("deploy/compose/epitrace.toml");
        let t: toml::Table = toml::from_str(&text).unwrap();
        t["kafka"]["brokers"].as_str().unwrap().to_owned()
    };
    for b in brokers.split(',') {
        assert!(
            services.contains_key(b.split(':').next().unwrap()),
            "broker {b} is not a service"
        );
    }
    let prometheus = &yaml("deploy/compose/prometheus.yml")[0];
    let job = &prometheus["scrape_configs"][0];
    assert_eq!(job["metrics_path"], "/metrics");
    let targets = strings(&job["static_configs"][0]["targets"]);
    for name in ["epitrace-1", "epitrace-2"] {
        let svc = &services[name];
        assert_eq!(svc["image"], "epitrace:local");
        command_parses(&strings(&svc["command"]));
        let mount = strings(&svc["volumes"]);
        assert!(
            mount
                .iter()
                .any(|m| m.starts_with("./epitrace.toml:/etc/epitrace/epitrace.toml"))
        );
        let env: Vec<(String, String)> = svc["environment"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let effective = config_check(&config, &env_refs);
        assert!(
            effective.contains("listen = \"0.0.0.0:9464\""),
            "{effective}"
        );
        assert!(
            effective.contains(&format!("client_id = \"{name}\"")),
            "{effective}"
        );
        assert!(
            targets.contains(&format!("{name}:{METRICS_PORT}")),
            "{name} not scraped"
        );
        let ports = strings(&svc["ports"]);
        assert!(
            ports
                .iter()
                .any(|p| p.ends_with(&format!(":{METRICS_PORT}")))
        );
        let health = strings(&svc["healthcheck"]["test"]);
        assert_eq!(health[..2], ["CMD".to_owned(), "epitrace".to_owned()]);
        command_parses(&health[2..]);
        let url = health.iter().find(|a| a.starts_with("http://")).unwrap();
        assert!(url.ends_with("/readyz"));
        assert_eq!(port_of(url.trim_end_matches("/readyz")), METRICS_PORT);
    }
    command_parses(&strings(&services["epitrace-topics"]["command"]));
    // Grafana: the provisioned datasource is the one every panel uses, and
    // the dashboard file lands where the provider looks.
    let ds = &yaml("deploy/compose/grafana/provisioning/datasources/prometheus.yaml")[0];
    assert_eq!(ds["datasources"][0]["uid"], "prometheus");
    assert_eq!(ds["datasources"][0]["url"], "http://prometheus:9090");
    let provider = &yaml("deploy/compose/grafana/provisioning/dashboards/epitrace.yaml")[0];
    let dir = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let mounts = strings(&services["grafana"]["volumes"]);
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("../grafana/epitrace.json:") && m.contains(&dir)),
        "{mounts:?} vs {dir}"
    );
    // Every host path mounted exists.
    for svc in services.values() {
        for m in svc["volumes"].as_array().into_iter().flatten() {
            let m = m.as_str().unwrap();
            if m.starts_with('.') {
                let host = m.split(':').next().unwrap();
                assert!(
                    repo().join("deploy/compose").join(host).exists(),
                    "{host} missing"
                );
            }
        }
    }
}

/// Every `expr` in the dashboard.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if (k == "expr" || k == "query")
                    && let Some(s) = x.as_str()
                {
                    out.push(s.to_owned());
                }
                exprs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/epitrace.json")).unwrap();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 10, "{} queries", all.len());
    let mut used = BTreeSet::new();
    for e in &all {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("epitrace_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| f.ends_with("_seconds")))
                .unwrap_or(&name)
                .to_owned();
            assert!(
                Metrics::NAMES.contains(&family.as_str()),
                "the dashboard queries {name}, which the binary does not export (in {e})"
            );
            used.insert(family);
        }
    }
    // The panels: throughput, lag, event-time lag, DLQ rate,
    // exposures and clusters, state size.
    for needed in [
        "epitrace_input_records_total",
        "epitrace_consumer_lag_records",
        "epitrace_event_time_lag_seconds",
        "epitrace_deadletter_records_total",
        "epitrace_exposures_emitted_total",
        "epitrace_cluster_alerts_emitted_total",
        "epitrace_state_size_bytes",
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
    // Every panel and target reads the provisioned datasource.
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "prometheus", "{}", p["title"]);
        }
    }
}

#[test]
fn kubernetes_manifests_agree() {
    let kustomization = &yaml("deploy/k8s/kustomization.yaml")[0];
    let resources = strings(&kustomization["resources"]);
    let mut docs = Vec::new();
    for r in &resources {
        docs.extend(yaml(&format!("deploy/k8s/{r}")));
    }
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} missing"))
            .clone()
    };
    let sts = find("StatefulSet", "epitrace");
    let pod = &sts["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(
        sts["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        labels["app.kubernetes.io/name"]
    );
    let c = &pod["spec"]["containers"][0];
    command_parses(&strings(&c["args"]));
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .unwrap();
    assert_eq!(port["containerPort"], METRICS_PORT);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/port"], METRICS_PORT.to_string());
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    // The state volume is where the configuration puts the stores.
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"];
    let mounts = c["volumeMounts"].as_array().unwrap();
    let state_mount = mounts.iter().find(|m| m["name"] == *claim).unwrap();
    let cm = find("ConfigMap", "epitrace-config");
    let toml_text = cm["data"]["epitrace.toml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("epitrace.toml");
    std::fs::write(&file, toml_text).unwrap();
    let effective = config_check(&file, &[("EPITRACE_KAFKA_CLIENT_ID", "epitrace-0")]);
    assert!(effective.contains(&format!(
        "state_dir = \"{}\"",
        state_mount["mountPath"].as_str().unwrap()
    )));
    assert!(
        effective.contains(&format!("listen = \"0.0.0.0:{METRICS_PORT}\"")),
        "{effective}"
    );
    let config_mount = mounts
        .iter()
        .find(|m| m["mountPath"] == "/etc/epitrace")
        .unwrap();
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    let config_volume = volumes
        .iter()
        .find(|v| v["name"] == config_mount["name"])
        .unwrap();
    assert_eq!(config_volume["configMap"]["name"], "epitrace-config");
    // Services select the pods and expose the named port; the
    // ServiceMonitor selects the metrics Service.
    let svc = find("Service", "epitrace-metrics");
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/name"],
        labels["app.kubernetes.io/name"]
    );
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(svc["spec"]["ports"][0]["port"], METRICS_PORT);
    let headless = find("Service", "epitrace-headless");
    assert_eq!(sts["spec"]["serviceName"], "epitrace-headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let sm = find("ServiceMonitor", "epitrace");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k], v, "ServiceMonitor label {k}");
    }
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
}

#[test]
fn the_image_exposes_the_metrics_port_and_runs_the_binary() {
    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains(&format!("EXPOSE {METRICS_PORT}")));
    assert!(dockerfile.contains("ENTRYPOINT [\"epitrace\"]"));
    let cmd = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("a CMD line");
    let args: Vec<String> = serde_json::from_str(cmd).unwrap();
    command_parses(&args);
}
