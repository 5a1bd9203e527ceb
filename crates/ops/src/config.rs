//! [`OpsConfig`]: the `[metrics]` section of the configuration.

use std::net::SocketAddr;

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
