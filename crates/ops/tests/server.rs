//! The endpoint on a real socket: metrics text, liveness, readiness.

// Test code: a panic is a failed assertion.
#![allow(clippy::unwrap_used)]

use epitrace_ops::{OpsConfig, OpsServer, Telemetry, get};

#[test]
fn serves_metrics_health_and_readiness() {
    let telemetry = Telemetry::new().unwrap();
    let cfg = OpsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..OpsConfig::default()
    };
    let server = OpsServer::start(&cfg, &telemetry).unwrap();
    let base = format!("http://{}", server.local_addr());

    assert_eq!(
        get(&format!("{base}/healthz")).unwrap(),
        (200, "ok\n".into())
    );
    let (status, body) = get(&format!("{base}/readyz")).unwrap();
    assert_eq!(status, 503, "no task yet: {body}");

    let task = telemetry.health.task("segmenter");
    let (status, body) = get(&format!("{base}/readyz")).unwrap();
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: segmenter, kafka\n")
    );
    task.set_ready(true);
    let (status, body) = get(&format!("{base}/readyz")).unwrap();
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: kafka\n"),
        "no broker has answered yet"
    );
    telemetry.kafka.answered();
    telemetry.health.refresh();
    assert_eq!(get(&format!("{base}/readyz")).unwrap().0, 200);

    telemetry
        .metrics
        .task("segmenter")
        .batch(&[("feeds.telecom.location", 42)], &[], &[], 0.002);
    let (status, body) = get(&format!("{base}/metrics")).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(
        "epitrace_input_records_total{processor=\"segmenter\",topic=\"feeds.telecom.location\"} 42"
    ));
    assert!(body.contains("epitrace_ready 1"));
    assert_eq!(get(&format!("{base}/nope")).unwrap().0, 404);

    // Stops on drop: the port no longer answers.
    drop(server);
    assert!(get(&format!("{base}/healthz")).is_err());
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let telemetry = Telemetry::new().unwrap();
    let first = OpsServer::start(
        &OpsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..OpsConfig::default()
        },
        &telemetry,
    )
    .unwrap();
    let err = OpsServer::start(
        &OpsConfig {
            listen: first.local_addr(),
            ..OpsConfig::default()
        },
        &telemetry,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(&first.local_addr().to_string()),
        "{err}"
    );
}
