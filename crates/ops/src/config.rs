//! [`OpsConfig`]: the `[metrics]` section of the configuration; [`ApiConfig`]:
//! the `[api]` section (how `epitrace serve`, the investigators' API, listens
//! and admits), kept here with the other listener so that the pipeline's
//! configuration can hold it without depending on the API.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the operations endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// Serve `/metrics`, `/healthz` and `/readyz` (default `true`).
    pub enabled: bool,
    /// Address and port (default `127.0.0.1:9464`; `0.0.0.0:9464` in a
    /// container; port 0 picks a free one).
    pub listen: SocketAddr,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// How `epitrace serve` listens, whom it admits and how long sessions last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address and port to listen on. Default `127.0.0.1:8443`.
    pub listen: SocketAddr,
    /// The users file (`epitrace users add|disable|list` manage it).
    /// Default `users.toml`.
    pub users_file: PathBuf,
    /// PEM certificate chain: with `tls_key`, the API speaks HTTPS only.
    /// Default empty: plain HTTP (for a loopback address or behind a TLS
    /// proxy; the server warns when it listens elsewhere without TLS).
    pub tls_cert: PathBuf,
    /// PEM private key of `tls_cert` (default empty).
    pub tls_key: PathBuf,
    /// How long a session token is valid, in seconds. Default 900 (15 min).
    pub token_ttl_s: u64,
    /// Failed logins in a row after which a name is locked. Default 5.
    pub max_failures: u32,
    /// How long a locked name stays locked, in seconds. Default 900.
    pub lockout_s: u64,
    /// Largest request body accepted, in bytes (larger: 413). Default 65536.
    pub max_body_bytes: usize,
    /// How long a request may wait for its audit record to be committed
    /// before it fails with 503 (and shows nothing), in seconds. Default 30.
    pub audit_timeout_s: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            users_file: PathBuf::from("users.toml"),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            token_ttl_s: 900,
            max_failures: 5,
            lockout_s: 900,
            max_body_bytes: 65_536,
            audit_timeout_s: 30,
        }
    }
}

impl ApiConfig {
    /// The certificate and key files, when TLS is configured.
    #[must_use]
    pub fn tls(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        (!self.tls_cert.as_os_str().is_empty() && !self.tls_key.as_os_str().is_empty())
            .then_some((self.tls_cert.as_path(), self.tls_key.as_path()))
    }

    /// Checks the settings that serde cannot.
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.tls_cert.as_os_str().is_empty() != self.tls_key.as_os_str().is_empty() {
            return Err("tls_cert and tls_key go together: give both or neither".into());
        }
        if !(1..=86_400).contains(&self.token_ttl_s) {
            return Err("token_ttl_s must be between 1 and 86400".into());
        }
        if self.max_failures == 0 {
            return Err("max_failures must be at least 1".into());
        }
        if !(1_024..=16 << 20).contains(&self.max_body_bytes) {
            return Err("max_body_bytes must be between 1024 and 16777216".into());
        }
        if self.audit_timeout_s == 0 {
            return Err("audit_timeout_s must be at least 1".into());
        }
        Ok(())
    }
}
