//! The investigators' API (`epitrace serve`) on a real Apache Kafka broker
//! of the test's own: fixture records on the output topics, a users file
//! with one user per role (two investigators of different regions, two
//! approvers of different categories), and the server in process.
//!
//! - **The matrix**: every role against every endpoint, allowed or denied
//!   as `policy::MATRIX` says, each request with its audit record (actor,
//!   role, action, case, outcome) on `audit.log`; region and category
//!   scoping; the epidemiologist's pseudonymous contacts.
//! - **Approvals** posted through the API land on `cases.approvals` and
//!   change the case's status.
//! - **Bad input** (malformed JSON, oversize bodies, unknown fields,
//!   injection attempts in ids, wrong content type, forged, expired and
//!   missing tokens, a locked name, a disabled user) gets a 4xx, an audit
//!   record, and changes nothing.
//! - **1,000 requests** from 8 concurrent clients give 1,000 more audit
//!   records and the chain verifies; editing, removing or reordering one
//!   record read back is detected.
//! - **TLS**: a server given a certificate speaks HTTPS only; its tokens
//!   expire.
//! - **Audit first**: with the broker gone, nothing is answered but 503.
//!
//! Needs Java, Maven and openssl (as `make test` does); fails loudly
//! without them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::too_many_lines
)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use epitrace_api::policy::{MATRIX, access};
use epitrace_api::{
    Access, ApiConfig, ApiRole, EndpointKind, NewUser, Server, ServerHandle, Users,
};
use epitrace_core::approval::{ApprovalConfig, Category};
use epitrace_core::interview::InterviewConfig;
use epitrace_e2e::LocalBroker;
use epitrace_model::codec::{DecodeOptions, decode_single_object, encode_single_object};
use epitrace_model::records::{
    AuditAction, AuditOutcome, AuditRecord, CaseEvent, CaseStatus, ClusterAlert, ClusterStatus,
    DataAccessApproval, Exposure, ExposureStatus, ObservationSource, Place, Role, TimeWindow,
    Visit,
};
use epitrace_model::topics::{APPROVALS, AUDIT, CASES, CLUSTERS, EXPOSURES, TIMELINES};
use epitrace_model::{
    AvroRecord, CaseId, Cell, ClusterId, EventTime, ExposureId, Probability, SubjectId, Text,
    VisitId,
};
use epitrace_ops::Telemetry;
use epitrace_processors::topology::{TopologyConfig, topic_specs};
use epitrace_stream::admin::create_topics;
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};
use epitrace_tools::audit::{verify_chain, verify_log};
use serde_json::{Value, json};

const H: i64 = 3_600_000;
const T0: i64 = 1_588_377_600_000; // 2020-05-02T00:00:00Z
const PASSWORD: &str = "correct horse battery staple";

fn t(ms: i64) -> EventTime {
    EventTime::from_millis("t", ms).unwrap()
}

fn subject(b: u8) -> SubjectId {
    SubjectId::from_slice(&[b; 16]).unwrap()
}

fn cell() -> Cell {
    Cell::new(0x0893_0e1d_8a0b_ffff).unwrap()
}

fn case(id: &str, region: Option<&str>) -> CaseEvent {
    CaseEvent {
        case_id: CaseId::new(id).unwrap(),
        subjects: vec![subject(1)],
        confirmed_at: t(T0),
        symptom_onset: None,
        infectious_from: t(T0 - 48 * H),
        infectious_until: None,
        status: CaseStatus::Confirmed,
        region: region.map(|r| Text::new("region", r).unwrap()),
    }
}

fn record<R: AvroRecord>(topic: &str, key: &str, r: &R) -> OutputRecord {
    OutputRecord {
        topic: topic.to_owned(),
        key: key.as_bytes().to_vec(),
        payload: encode_single_object(r).unwrap(),
        timestamp_ms: None,
    }
}

/// KR-1 (seoul: a visit, an exposure, an approval), KR-2 (busan), KR-3
/// (no region), and a cluster of KR-1 and KR-2.
fn fixtures() -> Vec<OutputRecord> {
    let kr1 = CaseId::new("KR-1").unwrap();
    let visit = Visit {
        visit_id: VisitId::new("v-1").unwrap(),
        case_id: kr1.clone(),
        subject: subject(1),
        cell: cell(),
        start: t(T0 - 10 * H),
        end: t(T0 - 9 * H),
        dwell_s: 3_600,
        sources: vec![ObservationSource::Card],
        confidence: Probability::new("confidence", 0.9).unwrap(),
        retracted: false,
    };
    let exposure = Exposure {
        exposure_id: ExposureId::new("e-1").unwrap(),
        case_id: kr1.clone(),
        contact: subject(9),
        first_cell: cell(),
        windows: vec![TimeWindow::new(t(T0 - 10 * H), t(T0 - 9 * H)).unwrap()],
        cumulative_s: 3_600,
        risk: Probability::new("risk", 0.7).unwrap(),
        status: ExposureStatus::New,
        detected_at: t(T0),
        evidence: vec![epitrace_model::records::DataCategory::Card],
        likelihood: Some(Probability::new("likelihood", 0.93).unwrap()),
        contact_class: Some(epitrace_model::ContactClass::Close),
        basis: Some(epitrace_model::LocationBasis {
            fine_s: 3_600,
            near_s: 0,
            wide_s: 0,
            apart_s: 0,
            transit_s: 0,
        }),
    };
    let approval = DataAccessApproval {
        case_id: kr1.clone(),
        category: epitrace_model::records::DataCategory::Card,
        authority: Text::new("authority", "card-association").unwrap(),
        reference: Text::new("reference", "CA-1").unwrap(),
        approved_at: t(T0),
        expires_at: t(T0 + 90 * 24 * H),
    };
    let cluster = ClusterAlert {
        cluster_id: ClusterId::new("cl-1").unwrap(),
        status: ClusterStatus::New,
        cases: vec![kr1.clone(), CaseId::new("KR-2").unwrap()],
        places: vec![
            Place::new(cell(), t(T0 - 10 * H), t(T0 - 9 * H))
                .unwrap()
                .with_cases(vec![kr1.clone(), CaseId::new("KR-2").unwrap()], Some(kr1)),
        ],
        index_case: Some(CaseId::new("KR-1").unwrap()),
        source_evidence: Text::new("source_evidence", "shared place").unwrap(),
        size: 2,
        merged_into: None,
        linked_clusters: Vec::new(),
        detected_at: t(T0),
    };
    vec![
        record(CASES, "KR-1", &case("KR-1", Some("seoul"))),
        record(CASES, "KR-2", &case("KR-2", Some("busan"))),
        record(CASES, "KR-3", &case("KR-3", None)),
        record(TIMELINES, "KR-1", &visit),
        record(EXPOSURES, "KR-1", &exposure),
        record(APPROVALS, "KR-1", &approval),
        record(CLUSTERS, "cl-1", &cluster),
    ]
}

/// name, role, regions, (authority, category)
type UserSpec = (
    &'static str,
    ApiRole,
    &'static [&'static str],
    Option<(&'static str, Category)>,
);

const USERS: [UserSpec; 7] = [
    ("inv-seoul", ApiRole::Investigator, &["seoul"], None),
    ("inv-busan", ApiRole::Investigator, &["busan"], None),
    ("epi", ApiRole::Epidemiologist, &[], None),
    (
        "police",
        ApiRole::Approver,
        &[],
        Some(("seoul-police", Category::Location)),
    ),
    (
        "cardassoc",
        ApiRole::Approver,
        &[],
        Some(("card-association", Category::Card)),
    ),
    ("auditor", ApiRole::Auditor, &[], None),
    ("admin", ApiRole::Admin, &[], None),
];

fn users_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("users.toml");
    let mut users = Users::default();
    for (name, role, regions, approver) in USERS {
        users
            .add(
                NewUser {
                    name: name.into(),
                    role,
                    regions: regions.iter().map(|r| (*r).to_owned()).collect(),
                    authority: approver.map(|(a, _)| a.to_owned()),
                    category: approver.map(|(_, c)| c),
                },
                PASSWORD,
            )
            .unwrap();
    }
    users.save(&path).unwrap();
    path
}

/// A response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Value,
}

impl Resp {
    fn seq(&self) -> i64 {
        self.headers
            .get("x-epitrace-audit-seq")
            .unwrap_or_else(|| panic!("no audit seq: {self:?}"))
            .parse()
            .unwrap()
    }
}

/// One request, `Connection: close`, over any stream.
fn exchange(mut s: impl Read + Write, raw: &[u8]) -> Resp {
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut body = buf[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()))
    };
    Resp {
        status,
        headers,
        body,
    }
}

#[derive(Clone)]
struct Client {
    addr: SocketAddr,
    tls_ca: Option<std::path::PathBuf>,
}

struct Req<'a> {
    method: &'a str,
    path: &'a str,
    token: Option<&'a str>,
    purpose: Option<&'a str>,
    content_type: Option<&'a str>,
    body: Vec<u8>,
}

impl<'a> Req<'a> {
    fn get(path: &'a str, token: &'a str) -> Self {
        Self {
            method: "GET",
            path,
            token: Some(token),
            purpose: Some("tracing of KR-1"),
            content_type: None,
            body: Vec::new(),
        }
    }

    fn post(path: &'a str, token: Option<&'a str>, body: &Value) -> Self {
        Self {
            method: "POST",
            path,
            token,
            purpose: Some("approval of KR-1"),
            content_type: Some("application/json"),
            body: serde_json::to_vec(body).unwrap(),
        }
    }
}

impl Client {
    fn send(&self, r: &Req<'_>) -> Resp {
        let mut raw = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            r.method,
            r.path,
            self.addr,
            r.body.len()
        );
        if let Some(t) = r.token {
            raw.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(p) = r.purpose {
            raw.push_str(&format!("X-Epitrace-Purpose: {p}\r\n"));
        }
        if let Some(c) = r.content_type {
            raw.push_str(&format!("Content-Type: {c}\r\n"));
        }
        raw.push_str("\r\n");
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(&r.body);
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        match &self.tls_ca {
            None => exchange(tcp, &bytes),
            Some(ca) => {
                let mut b =
                    openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
                b.set_ca_file(ca).unwrap();
                let tls = b.build().connect("127.0.0.1", tcp).unwrap();
                exchange(tls, &bytes)
            }
        }
    }

    fn login(&self, user: &str) -> String {
        let r = self.send(&Req::post(
            "/v1/login",
            None,
            &json!({"user": user, "password": PASSWORD}),
        ));
        assert_eq!(r.status, 200, "login {user}: {r:?}");
        r.body["token"].as_str().unwrap().to_owned()
    }
}

/// The request each endpoint gets in the matrix, and the status an allowed
/// caller gets.
fn matrix_request(kind: EndpointKind) -> (&'static str, &'static str, Option<Value>, u16) {
    match kind {
        EndpointKind::Login => ("POST", "/v1/login", None, 200),
        EndpointKind::ListCases => ("GET", "/v1/cases", None, 200),
        EndpointKind::Case => ("GET", "/v1/cases/KR-1", None, 200),
        EndpointKind::Timeline => ("GET", "/v1/cases/KR-1/timeline", None, 200),
        EndpointKind::Contacts => ("GET", "/v1/cases/KR-1/contacts", None, 200),
        EndpointKind::Interview => ("GET", "/v1/cases/KR-1/interview", None, 200),
        EndpointKind::PostInterview => (
            "POST",
            "/v1/cases/KR-1/interview",
            Some(stated(
                "at-the-visit",
                cell().center(),
                T0 - 10 * H + 10 * MIN,
                T0 - 9 * H - 10 * MIN,
            )),
            201,
        ),
        EndpointKind::ListClusters => ("GET", "/v1/clusters", None, 200),
        EndpointKind::Cluster => ("GET", "/v1/clusters/cl-1", None, 200),
        EndpointKind::ListApprovals => ("GET", "/v1/approvals?case=KR-1", None, 200),
        EndpointKind::PostApproval => (
            "POST",
            "/v1/approvals",
            Some(
                json!({"case_id": "KR-1", "category": "LOCATION", "reference": "W-7", "approved_at": "2020-05-02T00:00:00Z", "expires_at": "2020-08-01T00:00:00Z"}),
            ),
            201,
        ),
        EndpointKind::Audit => ("GET", "/v1/audit?limit=5", None, 200),
        EndpointKind::AuditVerify => ("GET", "/v1/audit/verify", None, 200),
        EndpointKind::Users => ("GET", "/v1/users", None, 200),
        // Disables nobody who matters (a user added for it).
        EndpointKind::DisableUser => ("POST", "/v1/users/spare/disable", Some(json!({})), 200),
    }
}

const MIN: i64 = 60_000;

/// An interview post of one statement.
fn stated(id: &str, at: epitrace_model::LatLng, start: i64, end: i64) -> Value {
    json!({"entries": [{
        "entry_id": id,
        "lat": at.lat(),
        "lng": at.lng(),
        "radius_m": 50.0,
        "start": t(start).to_string(),
        "end": t(end).to_string(),
        "label": "as stated",
    }]})
}

fn read_audit(kafka: &KafkaConfig) -> Vec<AuditRecord> {
    epitrace_stream::read::read_to_end(kafka, AUDIT, Duration::from_secs(60))
        .unwrap()
        .into_iter()
        .map(|r| {
            decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap()
        })
        .collect()
}

fn by_seq(records: &[AuditRecord], seq: i64) -> &AuditRecord {
    records
        .iter()
        .find(|r| r.seq == seq)
        .unwrap_or_else(|| panic!("no audit record {seq}"))
}

/// A request's audit record as it must be: seq, actor, role, action,
/// case, outcome.
type Expected = (
    i64,
    &'static str,
    Role,
    AuditAction,
    Option<&'static str>,
    AuditOutcome,
);

/// Starts a server with `api` and waits until its view shows KR-1's visit
/// (logging `inv-seoul` in again each time, as its token may be short-lived);
/// returns the server, a client for it and a token of `inv-seoul`.
async fn start_server(
    api: ApiConfig,
    kafka: &KafkaConfig,
    tls_ca: Option<std::path::PathBuf>,
    telemetry: &Telemetry,
) -> (ServerHandle, Client, String) {
    let server = Server {
        api,
        kafka: kafka.clone(),
        approvals: ApprovalConfig::default(),
        interview: InterviewConfig::default(),
        telemetry: Some(telemetry.clone()),
    }
    .start()
    .await
    .unwrap();
    let client = Client {
        addr: server.addr,
        tls_ca,
    };
    let c = client.clone();
    let token = blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let tok = c.login("inv-seoul");
            let r = c.send(&Req::get("/v1/cases/KR-1/timeline", &tok));
            if r.status == 200 && r.body["visits"].as_array().is_some_and(|v| v.len() == 1) {
                return tok;
            }
            assert!(Instant::now() < deadline, "the view never caught up: {r:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await;
    (server, client, token)
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_each_role_its_duty_and_audits_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path());
    let kafka = KafkaConfig::for_brokers(broker.brokers());
    create_topics(&kafka, &topic_specs(&TopologyConfig::default()))
        .await
        .unwrap();
    let publisher = Publisher::new(&kafka).unwrap();
    publisher.send_all(&fixtures()).await.unwrap();

    let users = users_file(dir.path());
    let telemetry = Telemetry::new().unwrap();
    let mut spare = Users::load(&users).unwrap();
    spare
        .add(
            NewUser {
                name: "spare".into(),
                role: ApiRole::Auditor,
                regions: vec![],
                authority: None,
                category: None,
            },
            PASSWORD,
        )
        .unwrap();
    spare.save(&users).unwrap();
    let api = ApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        users_file: users.clone(),
        max_failures: 3,
        max_body_bytes: 2_048,
        ..ApiConfig::default()
    };
    // Until the view caught up: 503 (audited too). Then the fixtures show.
    let (server, client, _) = start_server(api.clone(), &kafka, None, &telemetry).await;
    let admin_token = {
        let c = client.clone();
        blocking(move || c.login("admin")).await
    };

    // --- The matrix: every role against every endpoint. ---
    let mut tokens: BTreeMap<&str, String> = BTreeMap::new();
    for (name, ..) in USERS {
        let c = client.clone();
        tokens.insert(name, blocking(move || c.login(name)).await);
    }
    let mut expected: Vec<Expected> = Vec::new();
    for (kind, _) in MATRIX {
        for (name, role, ..) in USERS {
            let (method, path, body, ok_status) = matrix_request(kind);
            let token = tokens[name].clone();
            let resp = if kind == EndpointKind::Login {
                client.send(&Req::post(
                    "/v1/login",
                    None,
                    &json!({"user": name, "password": PASSWORD}),
                ))
            } else if method == "POST" {
                // The approver of LOCATION may post; the CARD approver is
                // allowed by the matrix but refused by category (403).
                client.send(&Req::post(path, Some(&token), body.as_ref().unwrap()))
            } else {
                client.send(&Req::get(path, &token))
            };
            let allowed = access(role, kind) != Access::Denied;
            // Allowed by the matrix, refused by scope: the CARD approver
            // posting a LOCATION approval, and the busan investigator
            // reading a seoul case.
            let scoped_out = (kind == EndpointKind::PostApproval && name == "cardassoc")
                || (name == "inv-busan"
                    && matches!(
                        kind,
                        EndpointKind::Case
                            | EndpointKind::Timeline
                            | EndpointKind::Contacts
                            | EndpointKind::Interview
                            | EndpointKind::PostInterview
                    ));
            let want = if allowed && !scoped_out {
                ok_status
            } else {
                403
            };
            assert_eq!(resp.status, want, "{name} {kind:?}: {resp:?}");
            // The case of a path is known before anything; the case of a
            // query or a body once the request is let through.
            let case = match kind {
                EndpointKind::Case
                | EndpointKind::Timeline
                | EndpointKind::Contacts
                | EndpointKind::Interview
                | EndpointKind::PostInterview => Some("KR-1"),
                EndpointKind::ListApprovals | EndpointKind::PostApproval if allowed => Some("KR-1"),
                _ => None,
            };
            let outcome = if want < 300 {
                AuditOutcome::Allowed
            } else {
                AuditOutcome::Denied
            };
            expected.push((
                resp.seq(),
                name,
                role.audit_role(),
                kind.action(),
                case,
                outcome,
            ));
            // Personal data only where the matrix gives it.
            if kind == EndpointKind::Contacts && want == 200 {
                let full = resp.body["view"] == "full";
                assert_eq!(full, role == ApiRole::Investigator, "{name}: {}", resp.body);
                if !full {
                    let text = resp.body.to_string();
                    assert!(!text.contains("windows") && !text.contains("lat"), "{text}");
                    assert_eq!(resp.body["contacts"], 1);
                    // Counts by class are not personal data.
                    assert_eq!(resp.body["close"], 1);
                    assert_eq!(resp.body["area"], 0);
                } else {
                    let e = &resp.body["exposures"][0];
                    assert_eq!(e["class"], "CLOSE", "{}", resp.body);
                    assert_eq!(e["likelihood"], 0.93);
                    assert_eq!(e["basis"]["fine_s"], 3_600);
                    assert_eq!(e["basis"]["apart_s"], 0);
                }
            }
        }
    }
    let records = read_audit(&kafka);
    for (seq, actor, role, action, case, outcome) in &expected {
        let r = by_seq(&records, *seq);
        assert_eq!(r.actor.as_str(), *actor, "seq {seq}");
        assert_eq!(r.role, *role, "seq {seq}");
        assert_eq!(r.action, *action, "seq {seq}");
        assert_eq!(r.case_id.as_ref().map(CaseId::as_str), *case, "seq {seq}");
        assert_eq!(r.outcome, *outcome, "seq {seq}");
    }
    println!(
        "matrix: {} requests, each with its audit record",
        expected.len()
    );

    // --- Scope: regions and categories. ---
    let inv_busan = tokens["inv-busan"].clone();
    let inv_seoul = tokens["inv-seoul"].clone();
    assert_eq!(
        client
            .send(&Req::get("/v1/cases/KR-1/timeline", &inv_busan))
            .status,
        403
    );
    assert_eq!(
        client.send(&Req::get("/v1/cases/KR-3", &inv_seoul)).status,
        403,
        "a case without a region: investigators of every region only"
    );
    let listed = client.send(&Req::get("/v1/cases", &inv_busan));
    let ids: Vec<&str> = listed.body["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["KR-2"]);
    assert_eq!(
        client
            .send(&Req::get("/v1/cases/KR-404", &inv_seoul))
            .status,
        404
    );
    let approvals = client.send(&Req::get("/v1/approvals", &tokens["cardassoc"]));
    assert!(
        approvals.body["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["category"] == "CARD"),
        "{}",
        approvals.body
    );

    // --- The posted LOCATION approval reached cases.approvals and the
    // case's status. ---
    wait_for("the posted approval in the case's status", || {
        let r = client.send(&Req::get("/v1/cases/KR-1", &inv_seoul));
        r.body["approvals"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["category"] == "LOCATION" && x["reference"] == "W-7")
        })
    })
    .await;
    let status = client.send(&Req::get("/v1/cases/KR-1", &inv_seoul));
    assert_eq!(status.body["pending_approval"], false);
    let open: Vec<&str> = status.body["open_categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(open, ["LOCATION", "CARD"]);
    let pending = client.send(&Req::get("/v1/cases/KR-2", &tokens["epi"]));
    assert_eq!(pending.body["pending_approval"], true, "{}", pending.body);
    let on_topic: Vec<DataAccessApproval> =
        epitrace_stream::read::read_to_end(&kafka, APPROVALS, Duration::from_secs(30))
            .unwrap()
            .into_iter()
            .map(|r| {
                decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default())
                    .unwrap()
            })
            .collect();
    let posted: Vec<&DataAccessApproval> = on_topic
        .iter()
        .filter(|a| a.reference.as_str() == "W-7")
        .collect();
    assert_eq!(posted.len(), 1, "one approval posted (by police only)");
    assert_eq!(posted[0].authority.as_str(), "seoul-police");

    // --- Interview correlation: a statement at the visit's place and time
    // (posted in the matrix) is corroborated by the visit's source; one 6 km
    // away at the same time is contradicted; one when the data has nothing
    // has no data. ---
    let far =
        epitrace_model::LatLng::new(cell().center().lat() + 0.054, cell().center().lng()).unwrap();
    for (id, at, start, end) in [
        (
            "elsewhere",
            far,
            T0 - 10 * H + 5 * MIN,
            T0 - 10 * H + 20 * MIN,
        ),
        ("later", cell().center(), T0 + 5 * H, T0 + 6 * H),
    ] {
        let r = client.send(&Req::post(
            "/v1/cases/KR-1/interview",
            Some(&inv_seoul),
            &stated(id, at, start, end),
        ));
        assert_eq!(r.status, 201, "{r:?}");
    }
    wait_for("three interview entries", || {
        client
            .send(&Req::get("/v1/cases/KR-1/interview", &inv_seoul))
            .body["entries"]
            .as_array()
            .is_some_and(|e| e.len() == 3)
    })
    .await;
    let iv = client
        .send(&Req::get("/v1/cases/KR-1/interview", &inv_seoul))
        .body;
    let verdicts: BTreeMap<&str, (&str, Vec<&str>)> = iv["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["entry_id"].as_str().unwrap(),
                (
                    e["verdict"].as_str().unwrap(),
                    e["sources"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap())
                        .collect(),
                ),
            )
        })
        .collect();
    assert_eq!(
        verdicts["at-the-visit"],
        ("CORROBORATED", vec!["CARD"]),
        "{iv}"
    );
    assert_eq!(verdicts["elsewhere"], ("CONTRADICTED", vec![]), "{iv}");
    assert_eq!(verdicts["later"], ("NO_DATA", vec![]), "{iv}");
    // A phone number typed as the place is refused, and echoed nowhere.
    let mut raw = stated("oops", far, T0, T0 + H);
    raw["entries"][0]["label"] = json!("010-5555-8888");
    let refused = client.send(&Req::post(
        "/v1/cases/KR-1/interview",
        Some(&inv_seoul),
        &raw,
    ));
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(!refused.body.to_string().contains("5555"), "{refused:?}");

    // --- Bad input: a 4xx, an audit record, nothing changed. ---
    let before_cases = client.send(&Req::get("/v1/cases", &tokens["epi"])).body;
    let approvals_before = on_topic.len();
    let police = tokens["police"].clone();
    let mut tampered = police.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let oversize = json!({"case_id": "KR-1", "reference": "x".repeat(4_000), "expires_at": "2020-08-01T00:00:00Z"});
    let bad: Vec<(&str, Req<'_>, u16)> = vec![
        (
            "malformed JSON",
            Req {
                body: b"{\"case_id\": \"KR-1\",".to_vec(),
                ..Req::post("/v1/approvals", Some(&police), &json!({}))
            },
            400,
        ),
        (
            "unknown field",
            Req::post(
                "/v1/approvals",
                Some(&police),
                &json!({"case_id": "KR-1", "reference": "W-8", "expires_at": "2020-08-01T00:00:00Z", "admin": true}),
            ),
            400,
        ),
        (
            "oversize body",
            Req::post("/v1/approvals", Some(&police), &oversize),
            413,
        ),
        (
            "wrong content type",
            Req {
                content_type: Some("text/plain"),
                ..Req::post(
                    "/v1/approvals",
                    Some(&police),
                    &json!({"case_id": "KR-1", "reference": "W-9", "expires_at": "2020-08-01T00:00:00Z"}),
                )
            },
            415,
        ),
        (
            "injection in a case id",
            Req::get("/v1/cases/KR-1'%20OR%20'1'='1/timeline", &inv_seoul),
            400,
        ),
        (
            "path traversal",
            Req::get("/v1/cases/..%2F..%2Fetc%2Fpasswd", &inv_seoul),
            400,
        ),
        (
            "injection in a query",
            Req::get("/v1/approvals?case=KR-1%27%3B%20DROP", &inv_seoul),
            400,
        ),
        (
            "unknown query parameter",
            Req::get("/v1/audit?evil=1", &tokens["auditor"]),
            400,
        ),
        (
            "forged token",
            Req::get("/v1/cases/KR-1/timeline", &tampered),
            401,
        ),
        (
            "garbage token",
            Req::get("/v1/cases/KR-1/timeline", "v1.zz.zz"),
            401,
        ),
        (
            "no token",
            Req {
                token: None,
                ..Req::get("/v1/cases/KR-1/timeline", "")
            },
            401,
        ),
        (
            "no purpose",
            Req {
                purpose: None,
                ..Req::get("/v1/cases/KR-1/timeline", &inv_seoul)
            },
            400,
        ),
        (
            "unknown endpoint",
            Req::get("/v1/everything", &inv_seoul),
            404,
        ),
        (
            "wrong method",
            Req {
                method: "DELETE",
                ..Req::get("/v1/cases/KR-1", &inv_seoul)
            },
            405,
        ),
        (
            "expired approval window",
            Req::post(
                "/v1/approvals",
                Some(&police),
                &json!({"case_id": "KR-1", "reference": "W-10", "approved_at": "2020-08-01T00:00:00Z", "expires_at": "2020-07-01T00:00:00Z"}),
            ),
            400,
        ),
    ];
    let mut bad_seqs = Vec::new();
    for (what, req, want) in &bad {
        let r = client.send(req);
        assert_eq!(r.status, *want, "{what}: {r:?}");
        assert!(r.body["error"].is_string(), "{what}: {r:?}");
        let text = r.body.to_string();
        assert!(
            !text.contains("DROP") && !text.contains("passwd") && !text.contains("xxxx"),
            "{what}: the error echoes the input: {text}"
        );
        bad_seqs.push((r.seq(), *what, *want));
    }
    let records = read_audit(&kafka);
    for (seq, what, status) in &bad_seqs {
        let r = by_seq(&records, *seq);
        let want = if matches!(status, 401 | 403) {
            AuditOutcome::Denied
        } else {
            AuditOutcome::Failed
        };
        assert_eq!(r.outcome, want, "{what}");
    }
    assert_eq!(
        client.send(&Req::get("/v1/cases", &tokens["epi"])).body,
        before_cases,
        "bad input changed nothing"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let approvals_after =
        epitrace_stream::read::read_to_end(&kafka, APPROVALS, Duration::from_secs(30))
            .unwrap()
            .len();
    assert_eq!(
        approvals_after, approvals_before,
        "no approval from bad input"
    );

    // Lockout: 3 failures lock the name; then even the right password is
    // refused (429), and the attempts are audited as DENIED logins.
    for _ in 0..3 {
        let r = client.send(&Req::post(
            "/v1/login",
            None,
            &json!({"user": "auditor", "password": "wrong password!!"}),
        ));
        assert_eq!(r.status, 401);
    }
    let locked = client.send(&Req::post(
        "/v1/login",
        None,
        &json!({"user": "auditor", "password": PASSWORD}),
    ));
    assert_eq!(locked.status, 429, "{locked:?}");
    let r = read_audit(&kafka);
    let rec = by_seq(&r, locked.seq());
    assert_eq!(
        (rec.action, rec.outcome, rec.actor.as_str()),
        (AuditAction::Login, AuditOutcome::Denied, "auditor")
    );
    // An unknown name is refused like a wrong password.
    let unknown = client.send(&Req::post(
        "/v1/login",
        None,
        &json!({"user": "nobody", "password": PASSWORD}),
    ));
    assert_eq!(unknown.status, 401);
    assert_eq!(
        by_seq(&read_audit(&kafka), unknown.seq()).role,
        Role::Anonymous
    );

    // A disabled user's session ends at their next request.
    let disabled = client.send(&Req::post(
        "/v1/users/inv-busan/disable",
        Some(&admin_token),
        &json!({}),
    ));
    assert_eq!(disabled.status, 200, "{disabled:?}");
    assert_eq!(
        client.send(&Req::get("/v1/cases/KR-2", &inv_busan)).status,
        401
    );
    assert!(
        Users::load(&users)
            .unwrap()
            .get("inv-busan")
            .unwrap()
            .disabled
    );

    // --- 1,000 requests, 8 clients: 1,000 more records, one chain. ---
    let before = read_audit(&kafka).len();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = client.clone();
        let tok = if i % 2 == 0 {
            inv_seoul.clone()
        } else {
            tokens["epi"].clone()
        };
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut seqs = Vec::new();
            for j in 0..125 {
                let path = if j % 3 == 0 {
                    "/v1/clusters"
                } else {
                    "/v1/cases/KR-1"
                };
                let r = c.send(&Req::get(path, &tok));
                assert_eq!(r.status, 200, "{r:?}");
                seqs.push(r.seq());
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    let took = started.elapsed();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 1_000, "every request has its own record");
    let records = read_audit(&kafka);
    assert_eq!(records.len(), before + 1_000);
    // The metrics count the same requests, and the audit writer committed
    // them in fewer transactions than requests (group commit).
    let m = &telemetry.metrics;
    let allowed = m.api_requests.with_label_values(&["case", "allowed"]).get()
        + m.api_requests
            .with_label_values(&["list_clusters", "allowed"])
            .get();
    assert!(allowed >= 1_000, "{allowed}");
    let batches = m.api_audit_batch.get_sample_count();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let committed = m.api_audit_batch.get_sample_sum() as u64;
    assert_eq!(
        committed,
        records.len() as u64,
        "every record is this server's"
    );
    println!("audit: {committed} records in {batches} transactions");
    assert!(
        telemetry.health.is_ready(),
        "the API is ready once its view caught up: waiting for {:?}",
        telemetry.health.not_ready()
    );
    let report = verify_log(&kafka, Duration::from_secs(60)).unwrap();
    assert_eq!(report.records, records.len());
    println!(
        "1000 requests from 8 clients in {:.1} s: {} audit records, the chain verifies",
        took.as_secs_f64(),
        report.records
    );
    // The auditor sees the same through the API (its session outlived the
    // lockout of its name: a lockout stops logins, not sessions).
    let verify = client.send(&Req::get("/v1/audit/verify", &tokens["auditor"]));
    assert_eq!(verify.status, 200, "{verify:?}");
    assert_eq!(verify.body["intact"], true, "{}", verify.body);
    // Editing, removing or reordering one record read back is detected.
    let mut edited = records.clone();
    edited[500].purpose = Text::new("purpose", "curiosity").unwrap();
    assert!(verify_chain(&edited).is_err());
    let mut removed = records.clone();
    removed.remove(500);
    assert!(verify_chain(&removed).is_err());
    let mut reordered = records.clone();
    reordered.swap(500, 501);
    assert!(verify_chain(&reordered).is_err());
    assert!(verify_chain(&records).is_ok());

    server.shutdown().await;

    // --- TLS, and tokens that expire. ---
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("openssl (installed by scripts/bootstrap.sh)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "api.key",
        "-out",
        "api.crt",
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    ]);
    let (tls_server, tls, tok) = start_server(
        ApiConfig {
            tls_cert: dir.path().join("api.crt"),
            tls_key: dir.path().join("api.key"),
            token_ttl_s: 2,
            ..api
        },
        &kafka,
        Some(dir.path().join("api.crt")),
        &Telemetry::new().unwrap(),
    )
    .await;
    assert!(tls_server.tls);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = {
        let addr = tls_server.addr;
        blocking(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            s.write_all(b"GET /v1/cases HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            buf
        })
        .await
    };
    assert!(!plain.starts_with(b"HTTP/1.1 200"), "plain HTTP answered");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expired = tls.send(&Req::get("/v1/cases/KR-1", &tok));
    assert_eq!(expired.status, 401, "{expired:?}");
    assert!(expired.body["error"].as_str().unwrap().contains("expired"));
    assert_eq!(
        by_seq(&read_audit(&kafka), expired.seq()).outcome,
        AuditOutcome::Denied
    );
    verify_log(&kafka, Duration::from_secs(60)).unwrap();

    tls_server.shutdown().await;

    // No audit record, no answer: with the broker gone, a request for data
    // the server holds in memory gets 503 and shows nothing.
    let (last, c, tok) = start_server(
        ApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            users_file: users.clone(),
            audit_timeout_s: 5,
            ..ApiConfig::default()
        },
        &kafka,
        None,
        &Telemetry::new().unwrap(),
    )
    .await;
    broker.run("stop");
    let unaudited = blocking(move || c.send(&Req::get("/v1/cases/KR-1/timeline", &tok))).await;
    assert_eq!(unaudited.status, 503, "{unaudited:?}");
    assert!(unaudited.body.get("visits").is_none(), "{unaudited:?}");
    assert!(!unaudited.headers.contains_key("x-epitrace-audit-seq"));
    last.shutdown().await;
}
