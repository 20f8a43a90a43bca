//! Webhook signature verification.
//!
//! Asana signs every event delivery with the header `X-Hook-Signature`: the lowercase hex
//! HMAC-SHA256 of the **raw request body bytes**, keyed with the secret string exchanged in the
//! handshake. The body is never re-serialised before hashing, because Asana's bodies escape `/`
//! and non-ASCII characters and order keys freely. `X-Asana-Request-Signature` is accepted as a
//! fallback name when `X-Hook-Signature` is absent.
//!
//! A request is rejected when the header is missing, is not 64 hex characters, or matches none of
//! the prefix's secrets. The comparison runs in constant time over the decoded digest.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-hook-signature";
pub const FALLBACK_SIGNATURE_HEADER: &str = "x-asana-request-signature";

type HmacSha256 = Hmac<Sha256>;

/// Reason a signature was rejected. Neither variant carries the signature or the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hook-Signature header")]
    Missing,
    #[error("X-Hook-Signature does not match the body")]
    Mismatch,
}

/// Returns the lowercase hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Returns the signature header's value: `X-Hook-Signature`, else `X-Asana-Request-Signature`.
pub fn signature_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(SIGNATURE_HEADER)
        .or_else(|| headers.get(FALLBACK_SIGNATURE_HEADER))
        .and_then(|value| value.to_str().ok())
}

/// Verifies `signature` over `body` against each of `secrets`; Ok when one matches.
pub fn verify<'a>(
    signature: Option<&str>,
    body: &[u8],
    secrets: impl IntoIterator<Item = &'a str>,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?;
    let Ok(expected) = hex::decode(signature.trim()) else {
        return Err(SignatureError::Mismatch);
    };

    for secret in secrets {
        let mut mac =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(body);
        // `verify_slice` compares in constant time.
        if mac.verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/events");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{EVENTS}/{name}")).expect("fixture exists")
    }

    #[test]
    fn signature_accepts_raw_body() {
        let body = fixture("task_added.json");
        let signature = sign("s3cret", &body);
        assert_eq!(verify(Some(&signature), &body, ["s3cret"]), Ok(()));
    }

    #[test]
    fn signature_rejects_reserialised_body() {
        let raw = fixture("spaced_escaped.json");
        let signature = sign("s3cret", &raw);
        let value: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let reserialised = serde_json::to_vec(&value).unwrap();

        assert_ne!(raw, reserialised);
        assert_eq!(verify(Some(&signature), &raw, ["s3cret"]), Ok(()));
        assert_eq!(
            verify(Some(&signature), &reserialised, ["s3cret"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_rejects_wrong_secret() {
        let body = fixture("task_added.json");
        let signature = sign("other", &body);
        assert_eq!(
            verify(Some(&signature), &body, ["s3cret"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_rejects_missing_and_malformed() {
        let body = fixture("task_added.json");
        assert_eq!(
            verify(None, &body, ["s3cret"]),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("zz"), &body, ["s3cret"]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(""), &body, ["s3cret"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_matches_any_secret_of_prefix() {
        let body = fixture("task_added.json");
        let signature = sign("second", &body);
        assert_eq!(verify(Some(&signature), &body, ["first", "second"]), Ok(()));
        assert_eq!(
            verify(Some(&signature), &body, []),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signature_header_is_case_insensitive_with_fallback() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Asana-Request-Signature", "abc".parse().unwrap());
        assert_eq!(signature_header(&headers), Some("abc"));

        headers.insert("X-HOOK-SIGNATURE", "def".parse().unwrap());
        assert_eq!(signature_header(&headers), Some("def"));
    }

    #[test]
    fn signature_accepts_uppercase_hex() {
        let body = fixture("task_added.json");
        let signature = sign("s3cret", &body).to_uppercase();
        assert_eq!(verify(Some(&signature), &body, ["s3cret"]), Ok(()));
    }
}
