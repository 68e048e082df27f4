//! Svix / Standard Webhooks: `{id}.{timestamp}.{body}` signed with HMAC-SHA256, checked by
//! the `svix` crate; the clock check is ours so it uses the caller's `now_unix`.

use http::{HeaderMap, HeaderValue};
use svix::webhooks::Webhook;

use super::{header, parse_timestamp, within_tolerance};
use crate::{Inbound, Secret, VerifyError};

const SVIX: [&str; 3] = ["svix-id", "svix-timestamp", "svix-signature"];
const STANDARD: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];
const TOLERANCE_SECS: u64 = 300;

pub(super) fn check(
    inbound: &Inbound,
    secrets: &[Secret],
    now_unix: i64,
) -> Result<(), VerifyError> {
    // Errors name the `webhook-*` headers when the sender uses those.
    let standard = STANDARD.iter().any(|n| inbound.headers.get(n).is_some());
    let mut headers = HeaderMap::new();
    let mut timestamp = 0;
    for (svix_name, standard_name) in SVIX.into_iter().zip(STANDARD) {
        let names = if standard {
            [standard_name, svix_name]
        } else {
            [svix_name, standard_name]
        };
        let value = header(inbound, &names)?;
        if svix_name == "svix-timestamp" {
            timestamp = parse_timestamp(value, names[0])?;
        }
        let value = HeaderValue::from_str(value)
            .ok()
            .filter(|v| v.to_str().is_ok())
            .ok_or(VerifyError::MalformedHeader(names[0]))?;
        headers.insert(svix_name, value);
    }
    within_tolerance(timestamp, now_unix, TOLERANCE_SECS)?;

    // The crate signs the body as UTF-8 text, so a body that is not UTF-8 never matches.
    let matched = secrets
        .iter()
        .filter_map(|s| Webhook::new(s.expose()).ok())
        .any(|wh| wh.verify_ignoring_timestamp(inbound.body, &headers).is_ok());
    if matched {
        Ok(())
    } else {
        Err(VerifyError::InvalidSignature)
    }
}

pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    let Some(key) = secret.strip_prefix("whsec_") else {
        return Err("a Svix / Standard Webhooks secret starts with `whsec_`".into());
    };
    if key.is_empty() || Webhook::new(key).is_err() {
        return Err("the part after `whsec_` must be non-empty base64".into());
    }
    Ok(())
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
        ] {
            let err = validate_secret(Scheme::Svix, bad).unwrap_err();
            assert!(err.contains("whsec_"), "{err}");
        }
    }
}
