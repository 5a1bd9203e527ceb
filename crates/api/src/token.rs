//! Session tokens: `v1.<hex payload>.<hex HMAC-SHA-256>`, signed with a key
//! drawn at random when the server starts (a restart ends every session).
//!
//! The payload is JSON: the user, their role, when the token expires and a
//! random session id. A token is accepted only when its signature matches
//! (compared in constant time), it has not expired, and — checked by the
//! server on every request — its user still exists, is enabled and still
//! has that role. Tokens are bearer tokens: `Authorization: Bearer …`.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::policy::ApiRole;

/// What a token says.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The user.
    pub user: String,
    /// Their role when the token was issued.
    pub role: ApiRole,
    /// Expiry, ms since the Unix epoch.
    pub expires_ms: i64,
    /// Random session id (hex).
    pub session: String,
}

/// Why a token was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TokenError {
    /// Not `v1.<hex>.<hex>` or the payload does not parse.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match: forged or from another server run.
    #[error("invalid token signature")]
    Forged,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
}

/// The signing key.
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    /// A fresh random key.
    ///
    /// # Errors
    /// [`ApiError::Tls`] when the system's random source fails.
    pub fn random() -> Result<Self, ApiError> {
        let mut k = [0u8; 32];
        openssl::rand::rand_bytes(&mut k).map_err(|e| ApiError::Tls(e.to_string()))?;
        Ok(Self(k))
    }

    /// A key from bytes (tests).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let key = PKey::hmac(&self.0).ok()?;
        let mut signer = Signer::new(MessageDigest::sha256(), &key).ok()?;
        signer.update(payload).ok()?;
        signer.sign_to_vec().ok()
    }

    /// Issues a token for `claims`.
    ///
    /// # Errors
    /// [`ApiError::Tls`] when signing fails (the crypto library).
    pub fn issue(&self, claims: &Claims) -> Result<String, ApiError> {
        let payload =
            serde_json::to_vec(claims).map_err(|e| ApiError::Tls(format!("token: {e}")))?;
        let mac = self
            .mac(&payload)
            .ok_or_else(|| ApiError::Tls("token: signing failed".into()))?;
        Ok(format!("v1.{}.{}", hex(&payload), hex(&mac)))
    }

    /// The claims of `token` if it is genuine and valid at `now_ms`.
    ///
    /// # Errors
    /// [`TokenError`].
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some("v1"), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let payload = unhex(payload).ok_or(TokenError::Malformed)?;
        let mac = unhex(mac).ok_or(TokenError::Malformed)?;
        let want = self.mac(&payload).ok_or(TokenError::Forged)?;
        if mac.len() != want.len() || !openssl::memcmp::eq(&mac, &want) {
            return Err(TokenError::Forged);
        }
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if now_ms >= claims.expires_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 8_192 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A random session id (16 bytes, hex).
///
/// # Errors
/// [`ApiError::Tls`] when the system's random source fails.
pub fn session_id() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).map_err(|e| ApiError::Tls(e.to_string()))?;
    Ok(hex(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            user: "inv-kim".into(),
            role: ApiRole::Investigator,
            expires_ms: 1_000,
            session: "ab".into(),
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let k = TokenKey::from_bytes([7; 32]);
        let t = k.issue(&claims()).unwrap();
        assert_eq!(k.verify(&t, 999).unwrap(), claims());
        assert_eq!(k.verify(&t, 1_000), Err(TokenError::Expired));
    }

    #[test]
    fn forged_altered_and_foreign_tokens_are_refused() {
        let k = TokenKey::from_bytes([7; 32]);
        let t = k.issue(&claims()).unwrap();
        // Another server's key.
        assert_eq!(
            TokenKey::from_bytes([8; 32]).verify(&t, 0),
            Err(TokenError::Forged)
        );
        // The payload changed to another role, signature kept.
        let mut raised = claims();
        raised.role = ApiRole::Admin;
        let forged_payload = hex(&serde_json::to_vec(&raised).unwrap());
        let mac = t.rsplit('.').next().unwrap();
        assert_eq!(
            k.verify(&format!("v1.{forged_payload}.{mac}"), 0),
            Err(TokenError::Forged)
        );
        for junk in [
            "",
            "v1",
            "v1..",
            "v2.00.00",
            "v1.zz.00",
            "v1.00.00.00",
            "Bearer x",
        ] {
            assert!(k.verify(junk, 0).is_err(), "{junk}");
        }
    }
}
