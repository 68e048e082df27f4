//! Svix / Standard Webhooks: `{id}.{timestamp}.{body}` signed with HMAC-SHA256 under the
//! base64 key after `whsec_`; `svix-signature` lists `v1,<base64>` signatures, any of which
//! may match.
//!
//! The check is ours rather than the `svix` crate's: that crate's portable SHA-256 took
//! several times the CPU of `sha2`'s on every delivery, and it reads the body as UTF-8
//! text, where the scheme signs the raw bytes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::{header, hmac_sha256_any_key, parse_timestamp, tolerance_secs, within_tolerance};
use crate::provider::Scheme;
use crate::{Inbound, Secret, VerifyError};

const SVIX: [&str; 3] = ["svix-id", "svix-timestamp", "svix-signature"];
const STANDARD: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];
const TOLERANCE_SECS: u64 = tolerance_secs(Scheme::Svix);

pub(super) fn check(
    inbound: &Inbound,
    secrets: &[Secret],
    now_unix: i64,
) -> Result<(), VerifyError> {
    // Errors name the `webhook-*` headers when the sender uses those.
    let standard = STANDARD.iter().any(|n| inbound.headers.get(n).is_some());
    let mut values = [""; 3];
    for (i, (svix_name, standard_name)) in SVIX.into_iter().zip(STANDARD).enumerate() {
        let names = if standard {
            [standard_name, svix_name]
        } else {
            [svix_name, standard_name]
        };
        let value = header(inbound, &names)?;
        // Header values are visible ASCII and spaces.
        if !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(VerifyError::MalformedHeader(names[0]));
        }
        values[i] = value;
    }
    let [id, timestamp, signatures] = values;
    let sent_at = parse_timestamp(timestamp, if standard { STANDARD[1] } else { SVIX[1] })?;
    within_tolerance(sent_at, now_unix, TOLERANCE_SECS)?;

    let macs: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .collect();
    let keys = secrets.iter().filter_map(|s| signing_key(s.expose()));
    let signed = [
        id.as_bytes(),
        b".",
        timestamp.as_bytes(),
        b".",
        inbound.body,
    ];
    hmac_sha256_any_key(keys, &signed, &macs)
}

/// The HMAC key of a secret: the base64 after `whsec_` (the prefix is optional, as in the
/// providers' SDKs).
fn signing_key(secret: &str) -> Option<Vec<u8>> {
    let key = secret.strip_prefix("whsec_").unwrap_or(secret);
    BASE64.decode(key).ok().filter(|k| !k.is_empty())
}

/// The fewest bytes of a signing key: what Svix generates, and the Standard Webhooks
/// specification's minimum.
const MIN_KEY_BYTES: usize = 24;

pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    match secret.strip_prefix("whsec_").map(signing_key) {
        Some(Some(key)) if key.len() >= MIN_KEY_BYTES => Ok(()),
        Some(Some(_)) => Err(format!(
            "the part after `whsec_` must decode to at least {MIN_KEY_BYTES} bytes"
        )),
        Some(None) => Err("the part after `whsec_` must be non-empty base64".into()),
        None => Err("a Svix / Standard Webhooks secret starts with `whsec_`".into()),
    }
}

#[cfg(test)]
mod tests {
    use crate::provider::Scheme;
    use crate::scheme::{run, validate_secret};
    use crate::VerifyError;

    // The documented vector from the svix repository's tests (providers.md); re-checked with
    // the Standard Webhooks SDK:
    // standardwebhooks.Webhook(SECRET).sign(ID, datetime.fromtimestamp(TS, timezone.utc), BODY)
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    // standardwebhooks.Webhook(OTHER_SECRET).sign(ID, datetime.fromtimestamp(TS, timezone.utc), BODY)
    const OTHER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER_SIG: &str = "v1,bmED0YkXIwCHhhZjbHn8qMCbczjpYwHGju/WMUmDqOQ=";

    fn svix(sig: &str, body: &str, secrets: &[&str], now: i64) -> Result<(), VerifyError> {
        let ts = TS.to_string();
        let headers = [
            ("svix-id", ID),
            ("svix-timestamp", ts.as_str()),
            ("svix-signature", sig),
        ];
        run(Scheme::Svix, &headers, body, secrets, now)
    }

    #[test]
    fn documented_vector_passes() {
        assert_eq!(svix(SIG, BODY, &[SECRET], TS), Ok(()));
    }

    #[test]
    fn standard_webhooks_header_names_pass() {
        let headers = [
            ("Webhook-Id", ID),
            ("Webhook-Timestamp", "1649367553"),
            ("Webhook-Signature", SIG),
        ];
        assert_eq!(run(Scheme::Svix, &headers, BODY, &[SECRET], TS), Ok(()));
    }

    #[test]
    fn tampered_body_fails() {
        let body = BODY.replace("test@", "evil@");
        assert_eq!(
            svix(SIG, &body, &[SECRET], TS),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn wrong_secret_fails() {
        assert_eq!(
            svix(SIG, BODY, &[OTHER_SECRET], TS),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn any_secret_verifies() {
        assert_eq!(svix(SIG, BODY, &[OTHER_SECRET, SECRET], TS), Ok(()));
        assert_eq!(svix(OTHER_SIG, BODY, &[SECRET, OTHER_SECRET], TS), Ok(()));
    }

    #[test]
    fn any_listed_signature_verifies_and_v1a_is_ignored() {
        let list = format!("{OTHER_SIG} {SIG}");
        assert_eq!(svix(&list, BODY, &[SECRET], TS), Ok(()));
        let v1a = SIG.replace("v1,", "v1a,");
        assert_eq!(
            svix(&v1a, BODY, &[SECRET], TS),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn clock_tolerance_is_five_minutes_either_way() {
        assert_eq!(svix(SIG, BODY, &[SECRET], TS + 300), Ok(()));
        assert_eq!(svix(SIG, BODY, &[SECRET], TS - 300), Ok(()));
        assert_eq!(
            svix(SIG, BODY, &[SECRET], TS + 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            svix(SIG, BODY, &[SECRET], TS - 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let ts = TS.to_string();
        let all = [
            ("svix-id", ID),
            ("svix-timestamp", ts.as_str()),
            ("svix-signature", SIG),
        ];
        for (i, (name, _)) in all.iter().enumerate() {
            let mut headers = all.to_vec();
            headers.remove(i);
            assert_eq!(
                run(Scheme::Svix, &headers, BODY, &[SECRET], TS),
                Err(VerifyError::MissingHeader(name))
            );
        }
        let standard = [("webhook-id", ID), ("webhook-timestamp", ts.as_str())];
        assert_eq!(
            run(Scheme::Svix, &standard, BODY, &[SECRET], TS),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
    }

    #[test]
    fn malformed_headers() {
        for ts in ["soon", "-1649367553", "1649367553.0", ""] {
            let headers = [
                ("svix-id", ID),
                ("svix-timestamp", ts),
                ("svix-signature", SIG),
            ];
            assert_eq!(
                run(Scheme::Svix, &headers, BODY, &[SECRET], TS),
                Err(VerifyError::MalformedHeader("svix-timestamp"))
            );
        }
        assert_eq!(
            svix("v1,tZ1I4/hDygé", BODY, &[SECRET], TS),
            Err(VerifyError::MalformedHeader("svix-signature"))
        );
        for garbage in [
            "",
            "v1",
            "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "v1,!!",
        ] {
            assert_eq!(
                svix(garbage, BODY, &[SECRET], TS),
                Err(VerifyError::InvalidSignature)
            );
        }
    }

    #[test]
    fn secrets_must_be_whsec_base64() {
        assert_eq!(validate_secret(Scheme::Svix, SECRET), Ok(()));
        for bad in [
            "",
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_",
            "whsec_not base64!",
            "sk_live_abc",
            // 23 bytes.
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7o=",
        ] {
            let err = validate_secret(Scheme::Svix, bad).unwrap_err();
            assert!(err.contains("whsec_"), "{err}");
        }
    }
}
