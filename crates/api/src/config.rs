//! `[api]`: [`ApiConfig`], defined in `epitrace-ops` next to the other
//! listener's settings so that the pipeline's configuration holds it.

pub use epitrace_ops::ApiConfig;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_unknown_keys_are_refused() {
        ApiConfig::default().validate().unwrap();
        let c: ApiConfig = toml::from_str("listen = \"0.0.0.0:9443\"\ntoken_ttl_s = 600").unwrap();
        assert_eq!(c.token_ttl_s, 600);
        assert!(toml::from_str::<ApiConfig>("tokn_ttl_s = 600").is_err());
        let half = ApiConfig {
            tls_cert: "cert.pem".into(),
            ..ApiConfig::default()
        };
        assert!(half.validate().is_err());
    }
}
