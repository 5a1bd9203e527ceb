//! The HTTP shell: every request goes through one handler, in this order:
//!
//! 1. the path and method are parsed into an [`Endpoint`] (404, 405, or 400
//!    for an invalid id in the path);
//! 2. until the view has caught up with the topics, 503 (login excepted);
//! 3. `POST /v1/login` checks the password (argon2id, in a blocking task)
//!    against the users file, counts failures per name and locks a name
//!    after `max_failures` in a row (429); otherwise the bearer token is
//!    verified and its user must still exist, be enabled and hold the
//!    token's role (401);
//! 4. the role × endpoint matrix ([`crate::policy::access`]) decides (403);
//!    reads of a case's data need a purpose (`X-Epitrace-Purpose`, 400);
//! 5. the handler answers from the view, scoped to the caller's regions or
//!    category (403 for another region's case, 404 for an unknown one);
//!    bodies are JSON of at most `max_body_bytes` (413), with no unknown
//!    fields (400), sent as `application/json` (415);
//! 6. **the audit record is committed** on `audit.log` — who, role, what
//!    (`METHOD path`), which case, purpose, outcome (2xx ALLOWED, 401/403/
//!    429 DENIED, any other FAILED) — and only then is the response sent,
//!    with the record's seq in `X-Epitrace-Audit-Seq`. If the record cannot
//!    be committed within `audit_timeout_s`, the response is replaced by 503
//!    and nothing is shown.
//!
//! Audit records are group-committed: one task owns the log's
//! [`AuditWriter`] and appends the requests that queued while the previous
//! transaction committed as one transaction, so concurrent requests never
//! fork the chain and do not wait for each other's round trips.
//!
//! The view is kept by a thread that follows the output topics
//! ([`epitrace_stream::read::Follower`], `read_committed`) into
//! [`View`]; once it has caught up, the process is ready (`/readyz`).
//! Requests are counted by endpoint and outcome, audit transactions by
//! size (`epitrace_api_requests_total`, `epitrace_api_audit_batch_records`).
//! Error bodies are `{"error": "…"}` and never echo a submitted value. Logs
//! carry the endpoint and status only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use epitrace_core::approval::{ApprovalConfig, Category};
use epitrace_core::interview::{InterviewConfig, Observed, Stated, correlate};
use epitrace_feeds::{Produced, looks_like_raw_id, parse_time};
use epitrace_model::records::{
    AuditOutcome, DataAccessApproval, DataCategory, InterviewEntry, Role,
};
use epitrace_model::topics::INTERVIEWS;
use epitrace_model::{ActorId, CaseId, EntryId, EventTime, LatLng, Text};
use epitrace_stream::read::Follower;
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};
use epitrace_tools::audit::{AuditEntry, AuditWriter, verify_chain};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::lockout::Lockout;
use crate::policy::{Access, ApiRole, Endpoint, EndpointKind, RouteError, access};
use crate::render;
use crate::token::{Claims, TokenKey, session_id};
use crate::users::{User, Users, decoy_hash};
use crate::view::{FOLLOWED, View};

/// The header a request states its purpose in.
pub const PURPOSE_HEADER: &str = "x-epitrace-purpose";
/// The response header carrying the request's audit record seq.
pub const AUDIT_SEQ_HEADER: &str = "x-epitrace-audit-seq";
/// Requests queued for one audit transaction at most.
const AUDIT_BATCH: usize = 512;

/// What the server needs besides its own settings.
#[derive(Debug, Clone)]
pub struct Server {
    /// `[api]`.
    pub api: ApiConfig,
    /// The brokers (the view's topics, `cases.approvals`, `audit.log`).
    pub kafka: KafkaConfig,
    /// `[tracing.approvals]`, for the approval status of cases.
    pub approvals: ApprovalConfig,
    /// `[tracing.interview]`, for matching interview statements.
    pub interview: InterviewConfig,
    /// Where to count requests and audit batches, and report readiness
    /// (the view caught up); `None` in tests that do not look.
    pub telemetry: Option<epitrace_ops::Telemetry>,
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    /// The address it listens on (the port chosen when `listen` had 0).
    pub addr: SocketAddr,
    /// Whether it speaks TLS.
    pub tls: bool,
    shutdown: watch::Sender<bool>,
    stop_follower: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Stops accepting connections and following the topics; returns when
    /// the accept loop has ended.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.stop_follower.store(true, Ordering::Relaxed);
        let _ = self.accept.await;
    }
}

struct UsersCache {
    path: PathBuf,
    modified: Option<SystemTime>,
    users: Option<Users>,
}

impl UsersCache {
    /// The users, read again when the file changed. A file that no longer
    /// reads fails closed.
    fn current(&mut self) -> Result<&Users, ApiError> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if self.users.is_none() || modified != self.modified {
            self.users = None;
            let users = Users::load(&self.path)?;
            self.modified = modified;
            self.users = Some(users);
        }
        self.users.as_ref().ok_or_else(|| ApiError::UsersFile {
            path: self.path.clone(),
            reason: "not loaded".into(),
        })
    }
}

struct Pending {
    entry: AuditEntry,
    done: oneshot::Sender<Result<i64, String>>,
}

struct App {
    cfg: ApiConfig,
    approvals_cfg: ApprovalConfig,
    interview_cfg: InterviewConfig,
    view: Arc<RwLock<View>>,
    users: Mutex<UsersCache>,
    tokens: TokenKey,
    lockout: Mutex<Lockout>,
    decoy: String,
    audit: mpsc::Sender<Pending>,
    publisher: Publisher,
    metrics: Option<Arc<epitrace_ops::Metrics>>,
}

impl Server {
    /// Loads the users, starts following the topics and the audit writer,
    /// binds `listen` and serves until [`ServerHandle::shutdown`].
    ///
    /// # Errors
    /// [`ApiError::Config`] for invalid settings or a users file without
    /// users; [`ApiError::UsersFile`]; [`ApiError::Tls`] when the
    /// certificate or key does not load; [`ApiError::Io`] when the address
    /// cannot be bound; [`ApiError::Stream`] when no producer can be
    /// created.
    pub async fn start(self) -> Result<ServerHandle, ApiError> {
        self.api.validate().map_err(ApiError::Config)?;
        let users = Users::load(&self.api.users_file)?;
        if users.all().is_empty() {
            return Err(ApiError::Config(format!(
                "{} has no users: add one with `epitrace users add`",
                self.api.users_file.display()
            )));
        }
        let tls = match self.api.tls() {
            Some((cert, key)) => Some(Arc::new(acceptor(cert, key)?)),
            None => None,
        };
        let view = Arc::new(RwLock::new(View::default()));
        let stop_follower = Arc::new(AtomicBool::new(false));
        let readiness = self
            .telemetry
            .as_ref()
            .map(|t| (t.health.task("api"), Arc::clone(&t.kafka)));
        let metrics = self.telemetry.as_ref().map(|t| Arc::clone(&t.metrics));
        {
            let kafka = self.kafka.clone();
            let view = Arc::clone(&view);
            let stop = Arc::clone(&stop_follower);
            std::thread::Builder::new()
                .name("api-follower".into())
                .spawn(move || follow(&kafka, &view, &stop, readiness.as_ref()))?;
        }
        let (audit_tx, audit_rx) = mpsc::channel(4 * AUDIT_BATCH);
        let writer = AuditWriter::new(&self.kafka, Duration::from_secs(self.api.audit_timeout_s));
        tokio::spawn(audit_task(audit_rx, writer, metrics.clone()));
        let lock_ms = i64::try_from(self.api.lockout_s.saturating_mul(1_000)).unwrap_or(i64::MAX);
        let app = Arc::new(App {
            users: Mutex::new(UsersCache {
                path: self.api.users_file.clone(),
                modified: None,
                users: None,
            }),
            tokens: TokenKey::random()?,
            lockout: Mutex::new(Lockout::new(self.api.max_failures, lock_ms)),
            decoy: decoy_hash()?,
            audit: audit_tx,
            publisher: Publisher::new(&self.kafka)?,
            metrics,
            view,
            approvals_cfg: self.approvals,
            interview_cfg: self.interview,
            cfg: self.api.clone(),
        });
        let listener = tokio::net::TcpListener::bind(self.api.listen).await?;
        let addr = listener.local_addr()?;
        if tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "api: serving plain HTTP on a non-loopback address; set [api] tls_cert and tls_key");
        }
        tracing::info!(%addr, tls = tls.is_some(), "api: listening");
        let router = Router::new().fallback(handle).with_state(app);
        let (shutdown, mut stopped) = watch::channel(false);
        let is_tls = tls.is_some();
        let accept = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => {
                            tokio::spawn(connection(tcp, tls.clone(), router.clone()));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "api: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            }
        });
        Ok(ServerHandle {
            addr,
            tls: is_tls,
            shutdown,
            stop_follower,
            accept,
        })
    }
}

fn acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<openssl::ssl::SslAcceptor, ApiError> {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let tls = |what: &str, e: openssl::error::ErrorStack| ApiError::Tls(format!("{what}: {e}"));
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| tls("TLS setup", e))?;
    b.set_certificate_chain_file(cert)
        .map_err(|e| tls(&format!("certificate {}", cert.display()), e))?;
    b.set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| tls(&format!("key {}", key.display()), e))?;
    b.check_private_key()
        .map_err(|e| tls("the key does not match the certificate", e))?;
    Ok(b.build())
}

async fn connection(
    tcp: tokio::net::TcpStream,
    tls: Option<Arc<openssl::ssl::SslAcceptor>>,
    router: Router,
) {
    let svc = hyper_util::service::TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let served = match tls {
        None => builder.serve_connection(TokioIo::new(tcp), svc).await,
        Some(acceptor) => {
            let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else {
                return;
            };
            let Ok(mut stream) = tokio_openssl::SslStream::new(ssl, tcp) else {
                return;
            };
            let handshake =
                tokio::time::timeout(Duration::from_secs(10), Pin::new(&mut stream).accept()).await;
            if !matches!(handshake, Ok(Ok(()))) {
                tracing::debug!("api: TLS handshake failed");
                return;
            }
            builder.serve_connection(TokioIo::new(stream), svc).await
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "api: connection ended with an error");
    }
}

/// The follower thread: reads the followed topics into the view until
/// `stop`.
fn follow(
    kafka: &KafkaConfig,
    view: &RwLock<View>,
    stop: &AtomicBool,
    readiness: Option<&(epitrace_ops::TaskHealth, Arc<epitrace_ops::KafkaLink>)>,
) {
    let mut follower = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match Follower::new(kafka, &FOLLOWED, Duration::from_secs(10)) {
            Ok(f) => break f,
            Err(e) => {
                tracing::warn!(error = %e, "api: cannot follow the output topics yet; retrying in 2 s");
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    };
    let mut caught_up = false;
    let mut last_error: Option<std::time::Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::new();
        let mut wait = Duration::from_millis(200);
        while batch.len() < 2_000 {
            match follower.poll(wait) {
                Some(Ok(r)) => batch.push(r),
                Some(Err(e)) => {
                    if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                        tracing::warn!(error = %e, "api: reading the output topics");
                        last_error = Some(std::time::Instant::now());
                    }
                    break;
                }
                None => break,
            }
            wait = Duration::ZERO;
        }
        if !batch.is_empty()
            && let Some((_, link)) = readiness
        {
            link.answered();
        }
        if !batch.is_empty()
            && let Ok(mut v) = view.write()
        {
            for r in &batch {
                v.apply(&r.topic, r.record.payload.as_deref());
            }
        }
        if !caught_up && follower.caught_up().unwrap_or(false) {
            caught_up = true;
            if let Ok(mut v) = view.write() {
                v.set_caught_up();
            }
            if let Some((task, link)) = readiness {
                link.answered();
                task.set_ready(true);
            }
            tracing::info!("api: the view has caught up with the output topics");
        }
    }
}

/// The audit task: appends the queued requests' entries, as many as queued
/// (up to [`AUDIT_BATCH`]), in one transaction, and answers each with its
/// seq.
async fn audit_task(
    mut rx: mpsc::Receiver<Pending>,
    mut writer: AuditWriter,
    metrics: Option<Arc<epitrace_ops::Metrics>>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < AUDIT_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let entries: Vec<AuditEntry> = batch.iter().map(|p| p.entry.clone()).collect();
        if let Some(m) = &metrics {
            #[allow(clippy::cast_precision_loss)] // at most AUDIT_BATCH
            m.api_audit_batch.observe(entries.len() as f64);
        }
        match writer.append_all(&entries).await {
            Ok((records, _)) => {
                for (p, r) in batch.into_iter().zip(records) {
                    let _ = p.done.send(Ok(r.seq));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = entries.len(), "api: audit records not committed; the requests fail with 503");
                for p in batch {
                    let _ = p.done.send(Err(e.to_string()));
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A response before it is audited.
struct Reply {
    status: StatusCode,
    body: Value,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            headers: Vec::new(),
        }
    }

    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
            headers: Vec::new(),
        }
    }
}

/// The audit record of a request, filled in as the request is understood.
struct Draft {
    /// The endpoint, once the path parsed (the metrics label).
    kind: Option<EndpointKind>,
    actor: ActorId,
    role: Role,
    action: epitrace_model::records::AuditAction,
    resource: Text,
    case_id: Option<CaseId>,
    purpose: Text,
}

fn anonymous() -> ActorId {
    ActorId::new("anonymous").unwrap_or_else(|_| unreachable!("a valid literal id"))
}

fn text_or(field: &'static str, s: &str, fallback: &'static str) -> Text {
    let mut cut = s.len().min(Text::MAX_LEN);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    Text::new(field, &s[..cut])
        .or_else(|_| Text::new(field, fallback))
        .unwrap_or_else(|_| unreachable!("a valid literal text"))
}

/// Every request: see the module docs.
async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let purpose = req
        .headers()
        .get(PURPOSE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .and_then(|p| Text::new("purpose", p).ok());
    let mut draft = Draft {
        kind: None,
        actor: anonymous(),
        role: Role::Anonymous,
        action: epitrace_model::records::AuditAction::InvalidRequest,
        resource: text_or("resource", &format!("{method} {path}"), "(request)"),
        case_id: None,
        purpose: purpose
            .clone()
            .unwrap_or_else(|| text_or("purpose", "(not stated)", "-")),
    };
    let reply = process(&app, &mut draft, purpose.is_some(), req).await;
    let outcome = match reply.status.as_u16() {
        200..=299 => AuditOutcome::Allowed,
        401 | 403 | 429 => AuditOutcome::Denied,
        _ => AuditOutcome::Failed,
    };
    let label = draft.kind.map_or("unknown", EndpointKind::label);
    let entry = AuditEntry {
        at: EventTime::from_millis("at", now_ms()).unwrap_or(EventTime::MIN),
        actor: draft.actor,
        role: draft.role,
        action: draft.action,
        resource: draft.resource,
        case_id: draft.case_id,
        purpose: draft.purpose,
        outcome,
    };
    let (done, recorded) = oneshot::channel();
    let sent = app.audit.send(Pending { entry, done }).await;
    let seq = match sent {
        Ok(()) => tokio::time::timeout(Duration::from_secs(app.cfg.audit_timeout_s), recorded)
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(Result::ok),
        Err(_) => None,
    };
    if let Some(m) = &app.metrics {
        let shown = match (seq.is_some(), outcome) {
            (false, _) => "unaudited",
            (true, AuditOutcome::Allowed) => "allowed",
            (true, AuditOutcome::Denied) => "denied",
            (true, AuditOutcome::Failed) => "failed",
        };
        m.api_request(label, shown);
    }
    let Some(seq) = seq else {
        tracing::error!(
            status = reply.status.as_u16(),
            "api: the request could not be audited; answered 503"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "the audit log is unavailable: nothing is shown until the request is recorded"})),
        )
            .into_response();
    };
    tracing::debug!(status = reply.status.as_u16(), seq, "api: request answered");
    let mut response = (reply.status, axum::Json(reply.body)).into_response();
    let h = response.headers_mut();
    for (k, v) in reply.headers {
        h.insert(k, v);
    }
    if let Ok(v) = HeaderValue::from_str(&seq.to_string()) {
        h.insert(AUDIT_SEQ_HEADER, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The authenticated caller.
struct Principal {
    user: User,
}

async fn process(app: &App, draft: &mut Draft, has_purpose: bool, req: Request) -> Reply {
    let endpoint = match Endpoint::parse(req.method().as_str(), req.uri().path()) {
        Ok(e) => e,
        Err(RouteError::NotFound) => {
            return Reply::error(StatusCode::NOT_FOUND, "no such endpoint");
        }
        Err(RouteError::MethodNotAllowed(kind)) => {
            draft.kind = Some(kind);
            draft.action = kind.action();
            return Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("this path takes {}", kind.route()),
            );
        }
        Err(RouteError::BadId(kind, what)) => {
            draft.kind = Some(kind);
            draft.action = kind.action();
            return Reply::error(
                StatusCode::BAD_REQUEST,
                format!("invalid {what} in the path"),
            );
        }
    };
    let kind = endpoint.kind();
    draft.kind = Some(kind);
    draft.action = kind.action();
    draft.case_id = endpoint.case().cloned();
    let query = req.uri().query().map(str::to_owned);
    let (parts, body) = req.into_parts();
    if kind == EndpointKind::Login {
        return match read_json::<LoginBody>(app, &parts.headers, body).await {
            Ok(b) => login(app, draft, b).await,
            Err(r) => r,
        };
    }
    let principal = match authenticate(app, &parts.headers, draft) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let role = principal.user.role;
    let grant = access(role, kind);
    if grant == Access::Denied {
        return Reply::error(
            StatusCode::FORBIDDEN,
            format!("the {role} role may not call {}", kind.route()),
        );
    }
    if kind.needs_purpose() && !has_purpose {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "state the purpose of this access in the X-Epitrace-Purpose header",
        );
    }
    let caught_up = app.view.read().map(|v| v.caught_up()).unwrap_or(false);
    if !caught_up {
        return Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the API is still reading the output topics; try again shortly",
        );
    }
    match endpoint {
        Endpoint::Login => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "unreachable"),
        Endpoint::ListCases => list_cases(app, &principal, query.as_deref()),
        Endpoint::Case(id) => read_case(app, &principal, &id, |_, s| render::case_state(s)),
        Endpoint::Timeline(id) => read_case(app, &principal, &id, |v, _| {
            json!({
                "case_id": id.as_str(),
                "visits": v.visits(&id).into_iter().map(render::visit).collect::<Vec<_>>(),
            })
        }),
        Endpoint::Contacts(id) => read_case(app, &principal, &id, |v, _| {
            let exposures = v.exposures(&id);
            if grant == Access::Pseudonymous {
                render::contacts_pseudonymous(&id, &exposures)
            } else {
                json!({
                    "case_id": id.as_str(),
                    "view": "full",
                    "exposures": exposures.into_iter().map(render::exposure).collect::<Vec<_>>(),
                })
            }
        }),
        Endpoint::Interview(id) => read_case(app, &principal, &id, |v, _| {
            let visits = v.visits(&id);
            let observed: Vec<Observed<'_>> = visits
                .iter()
                .map(|x| Observed {
                    cell: x.cell,
                    start_ms: x.start.as_millis(),
                    end_ms: x.end.as_millis(),
                    sources: &x.sources,
                })
                .collect();
            let entries: Vec<Value> = v
                .interviews(&id)
                .into_iter()
                .map(|e| {
                    let stated = Stated {
                        position: e.position,
                        radius_m: e.radius_m,
                        start_ms: e.start.as_millis(),
                        end_ms: e.end.as_millis(),
                    };
                    render::interview(
                        e,
                        &correlate(&stated, &observed, &app.interview_cfg),
                        &visits,
                    )
                })
                .collect();
            json!({ "case_id": id.as_str(), "entries": entries })
        }),
        Endpoint::PostInterview(id) => {
            match read_json::<InterviewBody>(app, &parts.headers, body).await {
                Ok(b) => post_interview(app, &principal, &id, b).await,
                Err(r) => r,
            }
        }
        Endpoint::ListClusters => with_view(app, |v| {
            Reply::ok(json!({ "clusters": v.clusters().map(render::cluster).collect::<Vec<_>>() }))
        }),
        Endpoint::Cluster(id) => with_view(app, |v| match v.cluster(&id) {
            Some(c) => Reply::ok(render::cluster(c)),
            None => Reply::error(StatusCode::NOT_FOUND, "no live cluster with this id"),
        }),
        Endpoint::ListApprovals => list_approvals(app, &principal, draft, query.as_deref()),
        Endpoint::PostApproval => {
            match read_json::<ApprovalBody>(app, &parts.headers, body).await {
                Ok(b) => post_approval(app, &principal, draft, b).await,
                Err(r) => r,
            }
        }
        Endpoint::Audit => read_audit(app, query.as_deref()),
        Endpoint::AuditVerify => with_view(app, |v| {
            let records = v.audit();
            let span = records
                .first()
                .zip(records.last())
                .map(|(a, b)| (a.seq, b.seq));
            match verify_chain(records) {
                Ok(()) => Reply::ok(json!({
                    "intact": true,
                    "records": records.len(),
                    "first_seq": span.map(|s| s.0),
                    "last_seq": span.map(|s| s.1),
                })),
                Err(epitrace_tools::ToolError::AuditChain { seq, reason }) => Reply::ok(json!({
                    "intact": false,
                    "records": records.len(),
                    "broken_at_seq": seq,
                    "reason": reason,
                })),
                Err(e) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }),
        Endpoint::Users => match app.users.lock() {
            Ok(mut cache) => match cache.current() {
                Ok(users) => Reply::ok(
                    json!({ "users": users.all().iter().map(render::user).collect::<Vec<_>>() }),
                ),
                Err(_) => Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the users file does not read",
                ),
            },
            Err(_) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "users lock poisoned"),
        },
        Endpoint::DisableUser(name) => disable_user(app, &name),
    }
}

fn with_view(app: &App, f: impl FnOnce(&View) -> Reply) -> Reply {
    match app.view.read() {
        Ok(v) => f(&v),
        Err(_) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "view lock poisoned"),
    }
}

/// A case-scoped read: 404 for an unknown case, 403 for an investigator
/// outside the case's region.
fn read_case(
    app: &App,
    p: &Principal,
    id: &CaseId,
    f: impl FnOnce(&View, &crate::view::CaseState<'_>) -> Value,
) -> Reply {
    with_view(app, |v| {
        let Some(state) = v.state(id, &app.approvals_cfg) else {
            return Reply::error(StatusCode::NOT_FOUND, "no such case");
        };
        if !in_scope(p, state.event.region.as_ref().map(Text::as_str)) {
            return Reply::error(StatusCode::FORBIDDEN, "this case belongs to another region");
        }
        Reply::ok(f(v, &state))
    })
}

/// Whether the caller may see a case of `region`: investigators by their
/// regions, the other roles the matrix lets through by their role.
fn in_scope(p: &Principal, region: Option<&str>) -> bool {
    p.user.role != ApiRole::Investigator || p.user.sees_region(region)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesQuery {
    /// `pending`: only the cases pending approval.
    #[serde(default)]
    status: Option<String>,
}

fn list_cases(app: &App, p: &Principal, query: Option<&str>) -> Reply {
    let q: CasesQuery = match parse_query(query) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let pending_only = match q.status.as_deref() {
        None => false,
        Some("pending") => true,
        Some(_) => return Reply::error(StatusCode::BAD_REQUEST, "status takes `pending`"),
    };
    with_view(app, |v| {
        let cases: Vec<Value> = v
            .cases()
            .filter(|e| in_scope(p, e.region.as_ref().map(Text::as_str)))
            .filter_map(|e| v.state(&e.case_id, &app.approvals_cfg))
            .filter(|s| !pending_only || s.pending)
            .map(|s| render::case_state(&s))
            .collect();
        Reply::ok(json!({ "cases": cases }))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalsQuery {
    #[serde(default)]
    case: Option<String>,
}

fn list_approvals(app: &App, p: &Principal, draft: &mut Draft, query: Option<&str>) -> Reply {
    let q: ApprovalsQuery = match parse_query(query) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let case = match q.case.as_deref().map(CaseId::new).transpose() {
        Ok(c) => c,
        Err(_) => return Reply::error(StatusCode::BAD_REQUEST, "invalid case id in `case`"),
    };
    draft.case_id.clone_from(&case);
    with_view(app, |v| {
        let listed: Vec<Value> = v
            .approvals()
            .filter(|a| case.as_ref().is_none_or(|c| &a.case_id == c))
            .filter(|a| match p.user.role {
                ApiRole::Approver => p.user.category == Some(Category::from(a.category)),
                _ => v
                    .case(&a.case_id)
                    .is_some_and(|e| in_scope(p, e.region.as_ref().map(Text::as_str))),
            })
            .map(|a| render::approval(a, None))
            .collect();
        Reply::ok(json!({ "approvals": listed }))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalBody {
    case_id: String,
    #[serde(default)]
    category: Option<String>,
    reference: String,
    #[serde(default)]
    approved_at: Option<String>,
    expires_at: String,
}

async fn post_approval(app: &App, p: &Principal, draft: &mut Draft, b: ApprovalBody) -> Reply {
    let Ok(case_id) = CaseId::new(b.case_id.as_str()) else {
        return Reply::error(StatusCode::BAD_REQUEST, "invalid case_id");
    };
    draft.case_id = Some(case_id.clone());
    let (Some(own), Some(authority)) = (p.user.category, p.user.authority.as_deref()) else {
        return Reply::error(
            StatusCode::FORBIDDEN,
            "this approver has no category or authority",
        );
    };
    let category = match b.category.as_deref() {
        None => own,
        Some(c) => match DataCategory::from_symbol(&c.to_ascii_uppercase()) {
            Ok(c) if Category::from(c) == own => own,
            Ok(_) => {
                return Reply::error(
                    StatusCode::FORBIDDEN,
                    format!("this approver approves {own} only"),
                );
            }
            Err(_) => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "category is LOCATION, CARD or CHECKIN",
                );
            }
        },
    };
    let Ok(reference) = Text::new("reference", b.reference.as_str()) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "reference must be 1 to 256 bytes of printable text",
        );
    };
    let approved_at = match b.approved_at.as_deref() {
        None => EventTime::from_millis("approved_at", now_ms()),
        Some(t) => {
            parse_time("approved_at", t).map_err(|_| epitrace_model::ModelError::InvalidRecord {
                field: "approved_at",
                reason: "bad time",
            })
        }
    };
    let (Ok(approved_at), Ok(expires_at)) = (approved_at, parse_time("expires_at", &b.expires_at))
    else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "approved_at and expires_at are RFC 3339 times (e.g. 2020-05-09T00:00:00Z)",
        );
    };
    if expires_at <= approved_at {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "expires_at must be after approved_at",
        );
    }
    let known = app
        .view
        .read()
        .map(|v| v.case(&case_id).is_some())
        .unwrap_or(false);
    if !known {
        return Reply::error(StatusCode::NOT_FOUND, "no such case");
    }
    let Ok(authority) = Text::new("authority", authority) else {
        return Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "approver authority invalid",
        );
    };
    let approval = DataAccessApproval {
        case_id,
        category: DataCategory::from(category),
        authority,
        reference,
        approved_at,
        expires_at,
    };
    let produced = Produced::Approval(approval.clone());
    let payload = match produced.encode() {
        Ok(p) => p,
        Err(_) => return Reply::error(StatusCode::BAD_REQUEST, "the approval does not validate"),
    };
    let record = OutputRecord {
        topic: produced.topic().to_owned(),
        key: produced.key(),
        payload,
        timestamp_ms: None,
    };
    match app.publisher.send_all(std::slice::from_ref(&record)).await {
        Ok(_) => Reply {
            status: StatusCode::CREATED,
            body: render::approval(&approval, None),
            headers: Vec::new(),
        },
        Err(e) => {
            tracing::error!(error = %e, "api: an approval could not be published");
            Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the approval could not be published; try again",
            )
        }
    }
}

/// Most entries one interview post may carry.
const MAX_INTERVIEW_ENTRIES: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InterviewBody {
    entries: Vec<InterviewItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InterviewItem {
    #[serde(default)]
    entry_id: Option<String>,
    lat: f64,
    lng: f64,
    radius_m: f64,
    start: String,
    end: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    retracted: bool,
}

/// The id of an entry posted without one: the same place and time give
/// the same id, so a repost replaces instead of duplicating.
fn derived_entry_id(case: &CaseId, it: &InterviewItem) -> String {
    let mut h = Sha256::new();
    h.update(case.as_str().as_bytes());
    h.update(it.lat.to_le_bytes());
    h.update(it.lng.to_le_bytes());
    h.update(it.start.trim().as_bytes());
    h.update([0]);
    h.update(it.end.trim().as_bytes());
    format!("iv-{}", crate::token::hex(&h.finalize()[..8]))
}

async fn post_interview(app: &App, p: &Principal, case: &CaseId, b: InterviewBody) -> Reply {
    if b.entries.is_empty() || b.entries.len() > MAX_INTERVIEW_ENTRIES {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            format!("entries holds 1 to {MAX_INTERVIEW_ENTRIES} statements"),
        );
    }
    // (The guard must not live across the publish below.)
    let scope = app
        .view
        .read()
        .map(|v| {
            v.case(case)
                .map(|e| in_scope(p, e.region.as_ref().map(Text::as_str)))
        })
        .map_err(|_| ());
    match scope {
        Ok(Some(true)) => {}
        Ok(Some(false)) => {
            return Reply::error(StatusCode::FORBIDDEN, "this case belongs to another region");
        }
        Ok(None) => return Reply::error(StatusCode::NOT_FOUND, "no such case"),
        Err(_) => return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "view lock poisoned"),
    }
    let Ok(recorded_by) = ActorId::new(p.user.name.as_str()) else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "invalid user name");
    };
    let Ok(recorded_at) = EventTime::from_millis("recorded_at", now_ms()) else {
        return Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the clock is out of range",
        );
    };
    let mut records = Vec::with_capacity(b.entries.len());
    let mut ids = Vec::with_capacity(b.entries.len());
    for (i, it) in b.entries.iter().enumerate() {
        let bad =
            |what: &str| Reply::error(StatusCode::BAD_REQUEST, format!("entries[{i}]: {what}"));
        let Ok(position) = LatLng::new(it.lat, it.lng) else {
            return bad("lat and lng are WGS84 degrees");
        };
        let (Ok(start), Ok(end)) = (parse_time("start", &it.start), parse_time("end", &it.end))
        else {
            return bad("start and end are RFC 3339 times (e.g. 2020-05-02T01:30:00Z)");
        };
        let label = match it.label.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            None => None,
            Some(l) if looks_like_raw_id(l) => {
                return bad("label looks like a phone or card number; refused");
            }
            Some(l) => match Text::new("label", l) {
                Ok(t) => Some(t),
                Err(_) => return bad("label is 1 to 256 bytes of printable text"),
            },
        };
        let entry_id = match it.entry_id.as_deref() {
            Some(id) => match EntryId::new(id) {
                Ok(id) => id,
                Err(_) => return bad("entry_id is 1 to 64 characters of A-Z a-z 0-9 . _ : -"),
            },
            None => match EntryId::new(derived_entry_id(case, it)) {
                Ok(id) => id,
                Err(_) => return bad("no entry_id could be derived"),
            },
        };
        let entry = InterviewEntry {
            case_id: case.clone(),
            entry_id,
            position,
            radius_m: it.radius_m,
            start,
            end,
            label,
            recorded_by: recorded_by.clone(),
            recorded_at,
            retracted: it.retracted,
        };
        let Ok(payload) = epitrace_model::encode_single_object(&entry) else {
            return bad("radius_m is 1 to 50000 metres and end is not before start");
        };
        ids.push(entry.entry_id.as_str().to_owned());
        records.push(OutputRecord {
            topic: INTERVIEWS.to_owned(),
            key: case.as_str().as_bytes().to_vec(),
            payload,
            timestamp_ms: None,
        });
    }
    match app.publisher.send_all(&records).await {
        Ok(_) => Reply {
            status: StatusCode::CREATED,
            body: json!({ "case_id": case.as_str(), "entries": ids }),
            headers: Vec::new(),
        },
        Err(e) => {
            tracing::error!(error = %e, "api: interview entries could not be published");
            Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the entries could not be published; try again",
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    from_seq: Option<i64>,
    #[serde(default)]
    limit: Option<usize>,
}

fn read_audit(app: &App, query: Option<&str>) -> Reply {
    let q: AuditQuery = match parse_query(query) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Reply::error(StatusCode::BAD_REQUEST, "limit is 1 to 1000");
    }
    let from = q.from_seq.unwrap_or(0);
    with_view(app, |v| {
        let all = v.audit();
        let records: Vec<Value> = all
            .iter()
            .filter(|r| r.seq >= from)
            .take(limit)
            .map(render::audit)
            .collect();
        Reply::ok(json!({
            "records": records,
            "last_seq": all.last().map(|r| r.seq),
        }))
    })
}

fn disable_user(app: &App, name: &ActorId) -> Reply {
    let Ok(mut cache) = app.users.lock() else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "users lock poisoned");
    };
    let mut users = match cache.current() {
        Ok(u) => u.clone(),
        Err(_) => {
            return Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the users file does not read",
            );
        }
    };
    match users.disable(name.as_str()) {
        Ok(was_enabled) => match users.save(&cache.path) {
            Ok(()) => {
                cache.users = None;
                Reply::ok(
                    json!({ "name": name.as_str(), "disabled": true, "was_enabled": was_enabled }),
                )
            }
            Err(_) => Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the users file could not be written",
            ),
        },
        Err(_) => Reply::error(StatusCode::NOT_FOUND, "no such user"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    user: String,
    password: String,
}

async fn login(app: &App, draft: &mut Draft, b: LoginBody) -> Reply {
    let Ok(name) = ActorId::new(b.user.as_str()) else {
        return Reply::error(StatusCode::UNAUTHORIZED, "wrong user name or password");
    };
    draft.actor = name.clone();
    let now = now_ms();
    let locked = app
        .lockout
        .lock()
        .ok()
        .and_then(|l| l.locked_until(name.as_str(), now));
    let user = match app.users.lock() {
        Ok(mut cache) => match cache.current() {
            Ok(users) => users.get(name.as_str()).cloned(),
            Err(_) => {
                return Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the users file does not read",
                );
            }
        },
        Err(_) => return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "users lock poisoned"),
    };
    if let Some(u) = &user {
        draft.role = u.role.audit_role();
    }
    if let Some(until) = locked {
        let wait_s = (until - now).max(1_000) / 1_000;
        let mut r = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins for this name; try again later",
        );
        if let Ok(v) = HeaderValue::from_str(&wait_s.to_string()) {
            r.headers.push((header::RETRY_AFTER, v));
        }
        return r;
    }
    // argon2 is deliberately slow: off the async threads. An unknown name
    // is checked against a decoy hash so that it takes as long.
    let hash = user
        .as_ref()
        .map_or_else(|| app.decoy.clone(), |u| u.password_hash.clone());
    let password = b.password;
    let matches = tokio::task::spawn_blocking(move || {
        let probe = User {
            name: String::new(),
            role: ApiRole::Admin,
            regions: Vec::new(),
            authority: None,
            category: None,
            password_hash: hash,
            disabled: false,
        };
        probe.password_matches(&password)
    })
    .await
    .unwrap_or(false);
    let user = user.filter(|u| matches && !u.disabled);
    let Some(user) = user else {
        if let Ok(mut l) = app.lockout.lock() {
            l.failure(name.as_str(), now);
        }
        return Reply::error(StatusCode::UNAUTHORIZED, "wrong user name or password");
    };
    if let Ok(mut l) = app.lockout.lock() {
        l.success(name.as_str());
    }
    let expires_ms = now.saturating_add(
        i64::try_from(app.cfg.token_ttl_s.saturating_mul(1_000)).unwrap_or(i64::MAX),
    );
    let claims = match session_id() {
        Ok(session) => Claims {
            user: user.name.clone(),
            role: user.role,
            expires_ms,
            session,
        },
        Err(_) => return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness"),
    };
    match app.tokens.issue(&claims) {
        Ok(token) => Reply::ok(json!({
            "token": token,
            "role": user.role.as_str(),
            "expires_at": EventTime::from_millis("expires_at", expires_ms).map(|t| t.to_string()).unwrap_or_default(),
        })),
        Err(_) => Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the token could not be signed",
        ),
    }
}

/// The caller of a request with a bearer token: its user must still exist,
/// be enabled and hold the token's role.
fn authenticate(app: &App, headers: &HeaderMap, draft: &mut Draft) -> Result<Principal, Reply> {
    let unauthorized = |m: &str| {
        let mut r = Reply::error(StatusCode::UNAUTHORIZED, m);
        r.headers.push((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"epitrace\""),
        ));
        r
    };
    let Some(raw) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(unauthorized("log in first: Authorization: Bearer <token>"));
    };
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let token = match raw.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
        _ => {
            return Err(unauthorized(
                "the Authorization header takes a Bearer token",
            ));
        }
    };
    let claims = app
        .tokens
        .verify(token.trim(), now_ms())
        .map_err(|e| unauthorized(&e.to_string()))?;
    if let Ok(actor) = ActorId::new(claims.user.as_str()) {
        draft.actor = actor;
    }
    let user = match app.users.lock() {
        Ok(mut cache) => match cache.current() {
            Ok(users) => users.get(&claims.user).cloned(),
            Err(_) => {
                return Err(Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the users file does not read",
                ));
            }
        },
        Err(_) => {
            return Err(Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "users lock poisoned",
            ));
        }
    };
    match user {
        Some(u) if !u.disabled && u.role == claims.role => {
            draft.role = u.role.audit_role();
            Ok(Principal { user: u })
        }
        _ => Err(unauthorized(
            "this session is no longer valid: log in again",
        )),
    }
}

/// Reads a JSON body: `application/json`, at most `max_body_bytes`, no
/// unknown fields. Errors name the problem, never a submitted value.
async fn read_json<T: serde::de::DeserializeOwned>(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Reply> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err(Reply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as application/json",
        ));
    }
    let max = app.cfg.max_body_bytes;
    let too_big = || {
        Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {max} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_big())?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Reply::error(StatusCode::BAD_REQUEST, json_error(&e)))
}

/// A JSON error without the submitted values: the unknown or missing
/// field's name, or the kind of problem and where.
fn json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    for prefix in ["unknown field", "missing field", "duplicate field"] {
        if msg.starts_with(prefix) {
            return match msg.split('`').nth(1).filter(|f| is_field_name(f)) {
                Some(field) => format!("{prefix} `{field}`"),
                None => prefix.to_owned(),
            };
        }
    }
    let what = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "malformed JSON",
        serde_json::error::Category::Data => "a field has the wrong type",
        serde_json::error::Category::Io => "unreadable body",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// A name shaped like one of ours (`expires_at`): shown in errors; anything
/// else may be data typed in the wrong place, and is not.
fn is_field_name(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

fn parse_query<T: serde::de::DeserializeOwned>(query: Option<&str>) -> Result<T, Reply> {
    serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| {
        let msg = e.to_string();
        let shown = if msg.starts_with("unknown field") {
            match msg.split('`').nth(1).filter(|f| is_field_name(f)) {
                Some(field) => format!("unknown query parameter `{field}`"),
                None => "unknown query parameter".to_owned(),
            }
        } else {
            "a query parameter has the wrong type".to_owned()
        };
        Reply::error(StatusCode::BAD_REQUEST, shown)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_never_echo_values() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct B {
            n: i64,
        }
        let secret = "010-5555-8888";
        for body in [
            format!("{{\"n\": \"{secret}\"}}"),
            format!("{{\"{secret}\": 1}}"),
            format!("{{\"n\": 1, {secret}"),
        ] {
            let e = serde_json::from_str::<B>(&body).unwrap_err();
            let shown = json_error(&e);
            assert!(!shown.contains("5555"), "{shown}");
        }
    }
}
