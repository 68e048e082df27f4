//! The two signature schemes the deliveries use: Svix (Clerk) and Stripe.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// A Svix signing secret: `whsec_` then the base64 of the key bytes.
#[derive(Clone)]
pub struct SvixSecret {
    key: Vec<u8>,
}

impl SvixSecret {
    pub fn new(key: &[u8]) -> SvixSecret {
        SvixSecret { key: key.to_vec() }
    }

    /// The secret as a provider's dashboard shows it.
    pub fn text(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let ts = timestamp.to_string();
        hmac(&self.key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body])
    }

    /// The `svix-signature` header value: `v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let sig = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(sig))
    }

    /// Whether any `v1,<base64>` entry of a space-separated `svix-signature` header matches,
    /// compared in constant time.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let mac = self.mac(id, timestamp, body);
        header
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|sig| STANDARD.decode(sig).ok())
            .any(|sig| mac.clone().verify_slice(&sig).is_ok())
    }
}

/// The `Stripe-Signature` header value: `t=<unix>,v1=<hex HMAC-SHA256 of {t}.{body}>`, keyed
/// with the whole `whsec_...` secret as UTF-8.
pub fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let sig = hmac(secret.as_bytes(), &[ts.as_bytes(), b".", body])
        .finalize()
        .into_bytes();
    format!("t={ts},v1={}", hex::encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The documented vector from the svix repository (also in firehook-adapters' tests).
    const SVIX_KEY: &str = "C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SVIX_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SVIX_TS: i64 = 1649367553;
    const SVIX_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const SVIX_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn svix_secret() -> SvixSecret {
        SvixSecret::new(&STANDARD.decode(SVIX_KEY).unwrap())
    }

    #[test]
    fn svix_matches_the_documented_vector() {
        let secret = svix_secret();
        assert_eq!(secret.text(), format!("whsec_{SVIX_KEY}"));
        assert_eq!(
            secret.sign(SVIX_ID, SVIX_TS, SVIX_BODY.as_bytes()),
            SVIX_SIG
        );
    }

    #[test]
    fn svix_verify_accepts_any_entry_and_rejects_tampering() {
        let secret = svix_secret();
        let header = format!("v1,bm90IGl0 {SVIX_SIG}");
        assert!(secret.verify(SVIX_ID, SVIX_TS, SVIX_BODY.as_bytes(), &header));
        assert!(!secret.verify(SVIX_ID, SVIX_TS + 1, SVIX_BODY.as_bytes(), &header));
        assert!(!secret.verify(SVIX_ID, SVIX_TS, b"{}", &header));
    }

    #[test]
    fn stripe_matches_the_sdk_vector() {
        // stripe.WebhookSignature.generate_signature_header(BODY, SECRET, timestamp=T)
        let header = stripe_signature(
            "whsec_stripe_test_a",
            1700000000,
            br#"{"id":"evt_1","type":"customer.created"}"#,
        );
        assert_eq!(
            header,
            "t=1700000000,v1=7a061975534b8e75d74bcb0595922f893076985dba63cb2daa8c38e78d664c85"
        );
    }
}
