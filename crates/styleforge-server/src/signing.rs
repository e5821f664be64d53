//! HMAC-SHA256 signatures: webhook deliveries (the Standard Webhooks format) and signed result
//! links (several keys at once, so keys rotate without downtime).
//!
//! - Webhooks (<https://www.standardwebhooks.com/>): headers `webhook-id`, `webhook-timestamp`
//!   (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
//!   keyed with the bytes of the owner's secret (`whsec_` + base64).
//! - Links: `?expires=<unix seconds>&kid=<key id>&sig=<base64url HMAC-SHA256 of
//!   "GET\n<path>\n<expires>">`, keyed with the UTF-8 bytes of the named key's secret.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `message` under `key` (32 bytes).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of `message` under `key`, compared in constant time.
pub fn verify_hmac_sha256(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.verify_slice(tag).is_ok()
}

/// `n` random bytes (from the operating system's generator, through UUID v4).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(n);
    out
}

/// A new webhook secret: `whsec_` and 32 random bytes in base64.
pub fn new_webhook_secret() -> String {
    format!("whsec_{}", STANDARD.encode(random_bytes(32)))
}

/// The key bytes of a webhook secret (`whsec_` + base64; any other string is used as is).
pub fn webhook_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b| STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// The `webhook-signature` header value for a delivery: `v1,` and the base64 HMAC-SHA256 of
/// `"{id}.{timestamp}.{body}"`.
pub fn sign_webhook(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut msg = format!("{id}.{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(hmac_sha256(&webhook_key(secret), &msg)))
}

/// Whether one of the space-separated `v1,` signatures of a `webhook-signature` header signs
/// this delivery (what a receiver checks; also checks the timestamp is within `tolerance_s` of
/// `now_s`).
pub fn verify_webhook(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now_s: i64,
    tolerance_s: i64,
) -> bool {
    if (now_s - timestamp).abs() > tolerance_s {
        return false;
    }
    let mut msg = format!("{id}.{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    let key = webhook_key(secret);
    header.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b| STANDARD.decode(b).ok())
            .is_some_and(|tag| verify_hmac_sha256(&key, &msg, &tag))
    })
}

/// A key that signs links: `kid:secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkKey {
    /// Key id, sent in the link (`kid`).
    pub id: String,
    /// The secret.
    pub secret: String,
}

impl LinkKey {
    /// Parses `kid:secret` (the id: 1-32 letters, digits, `-`, `_`; the secret at least 16
    /// characters).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (id, secret) = s
            .split_once(':')
            .ok_or("a link key is written `kid:secret`")?;
        if id.is_empty()
            || id.len() > 32
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("link key id `{id}`: use 1-32 letters, digits, `-` or `_`"));
        }
        if secret.len() < 16 {
            return Err(format!("link key `{id}`: the secret needs at least 16 characters"));
        }
        Ok(Self {
            id: id.into(),
            secret: secret.into(),
        })
    }
}

fn link_message(path: &str, expires: i64) -> Vec<u8> {
    format!("GET\n{path}\n{expires}").into_bytes()
}

/// The query string that signs `path` until `expires` (Unix seconds) with `key`.
pub fn sign_link(key: &LinkKey, path: &str, expires: i64) -> String {
    let tag = hmac_sha256(key.secret.as_bytes(), &link_message(path, expires));
    format!(
        "expires={expires}&kid={}&sig={}",
        key.id,
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// Why a signed link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// Its time is over.
    Expired,
    /// No key of that id, or the signature does not match (the path, expiry or signature was
    /// changed).
    BadSignature,
}

/// Checks a signed link for `path` against every key in `keys` (the current key and those
/// being retired), at `now_s` (Unix seconds).
pub fn verify_link(
    keys: &[LinkKey],
    path: &str,
    expires: i64,
    kid: &str,
    sig: &str,
    now_s: i64,
) -> Result<(), LinkError> {
    let key = keys.iter().find(|k| k.id == kid).ok_or(LinkError::BadSignature)?;
    let tag = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| LinkError::BadSignature)?;
    if !verify_hmac_sha256(key.secret.as_bytes(), &link_message(path, expires), &tag) {
        return Err(LinkError::BadSignature);
    }
    if now_s >= expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231, test case 2: key "Jefe".
        let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn webhook_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign_webhook(secret, id, 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify_webhook(secret, id, 1614265330, body, &sig, 1614265331, 300));
        assert!(!verify_webhook(secret, id, 1614265330, b"{}", &sig, 1614265331, 300));
        assert!(!verify_webhook(secret, id, 1614265330, body, &sig, 1614266331, 300));
    }

    #[test]
    fn links_verify_with_any_listed_key_and_refuse_changes() {
        let old = LinkKey::parse("k1:0123456789abcdef").unwrap();
        let new = LinkKey::parse("k2:fedcba9876543210").unwrap();
        let q = sign_link(&old, "/v1/public/results/res_1", 2000);
        let parts: std::collections::HashMap<_, _> =
            q.split('&').filter_map(|p| p.split_once('=')).collect();
        let keys = [new.clone(), old.clone()];
        assert_eq!(verify_link(&keys, "/v1/public/results/res_1", 2000, "k1", parts["sig"], 1999), Ok(()));
        assert_eq!(verify_link(&keys, "/v1/public/results/res_1", 2000, "k1", parts["sig"], 2000), Err(LinkError::Expired));
        assert_eq!(verify_link(&keys, "/v1/public/results/res_2", 2000, "k1", parts["sig"], 1), Err(LinkError::BadSignature));
        assert_eq!(verify_link(&keys, "/v1/public/results/res_1", 3000, "k1", parts["sig"], 1), Err(LinkError::BadSignature));
        assert_eq!(verify_link(&[new], "/v1/public/results/res_1", 2000, "k1", parts["sig"], 1), Err(LinkError::BadSignature));
        assert!(LinkKey::parse("nokey").is_err());
        assert!(LinkKey::parse("k:short").is_err());
    }
}
