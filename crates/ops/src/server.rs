//! [`OpsServer`]: `/metrics`, `/healthz` and `/readyz` over HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_http::{Header, Method, Request, Response, Server};
use tracing::{info, warn};

use crate::{OpsConfig, OpsError, Telemetry};

/// The operations endpoint, served from a thread of its own (so a busy or
/// stuck runtime still answers `/healthz` and shows its metrics). Stops when
/// dropped.
pub struct OpsServer {
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OpsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl OpsServer {
    /// Listens on `cfg.listen` and serves `telemetry`.
    ///
    /// # Errors
    /// [`OpsError::Bind`] when the address cannot be used.
    pub fn start(cfg: &OpsConfig, telemetry: &Telemetry) -> Result<Self, OpsError> {
        let bind_error = |reason: String| OpsError::Bind {
            addr: cfg.listen.to_string(),
            reason,
        };
        let server = Arc::new(Server::http(cfg.listen).map_err(|e| bind_error(e.to_string()))?);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| bind_error("not an IP listener".into()))?;
        let thread = {
            let server = Arc::clone(&server);
            let telemetry = telemetry.clone();
            std::thread::Builder::new()
                .name("epitrace-ops".into())
                .spawn(move || {
                    for request in server.incoming_requests() {
                        respond(request, &telemetry);
                    }
                })
                .map_err(|e| bind_error(e.to_string()))?
        };
        info!(%addr, "serving /metrics, /healthz and /readyz");
        Ok(Self {
            server,
            addr,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the actual port when configured as 0).
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn respond(request: Request, telemetry: &Telemetry) {
    let text = |status: u16, body: String| {
        let mut r = Response::from_string(body).with_status_code(status);
        if let Some(h) = header("Content-Type", "text/plain; charset=utf-8") {
            r = r.with_header(h);
        }
        r
    };
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    let response = if *request.method() != Method::Get && *request.method() != Method::Head {
        text(405, "only GET\n".into())
    } else {
        match path.as_str() {
            "/metrics" => match telemetry.metrics.render() {
                Ok(body) => {
                    let mut r = Response::from_string(body);
                    if let Some(h) = header("Content-Type", prometheus::TEXT_FORMAT) {
                        r = r.with_header(h);
                    }
                    r
                }
                Err(e) => {
                    warn!(error = %e, "rendering metrics failed");
                    text(500, format!("{e}\n"))
                }
            },
            "/healthz" => text(200, "ok\n".into()),
            "/readyz" => match telemetry.health.not_ready() {
                Some(waiting) if waiting.is_empty() => text(200, "ready\n".into()),
                Some(waiting) => text(503, format!("not ready: {}\n", waiting.join(", "))),
                None => text(503, "not ready: no processor running\n".into()),
            },
            _ => text(404, "endpoints: /metrics, /healthz, /readyz\n".into()),
        }
    };
    if let Err(e) = request.respond(response) {
        warn!(error = %e, "answering an ops request failed");
    }
}

/// A plain HTTP GET of `url` (`http://host:port/path`), for probes and
/// tests: the status code and the body.
///
/// # Errors
/// [`OpsError::Request`] for a malformed URL, a connection failure, a
/// timeout (5 s) or a malformed response.
pub fn get(url: &str) -> Result<(u16, String), OpsError> {
    let fail = |reason: String| OpsError::Request {
        url: url.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| fail("only http:// URLs".into()))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = host
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".into()))?;
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail(e.to_string()))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| fail(e.to_string()))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("no end of headers".into()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| fail(format!("bad status line {:?}", head.lines().next())))?;
    Ok((status, body.to_owned()))
}
