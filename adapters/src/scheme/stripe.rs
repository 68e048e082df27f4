//! Stripe: `Stripe-Signature: t=<unix s>,v1=<hex>...`, HMAC-SHA256 of `{t}.{body}` keyed
//! with the whole `whsec_...` string.

use super::{hmac_sha256_any, parse_t_v1, parse_timestamp, tolerance_secs, within_tolerance};
use crate::provider::Scheme;
use crate::{Inbound, Secret, VerifyError};

const HEADER: &str = "stripe-signature";
const TOLERANCE_SECS: u64 = tolerance_secs(Scheme::Stripe);

pub(super) fn check(
    inbound: &Inbound,
    secrets: &[Secret],
    now_unix: i64,
) -> Result<(), VerifyError> {
    let (t, macs) = parse_t_v1(super::header(inbound, &[HEADER])?, HEADER)?;
    within_tolerance(parse_timestamp(t, HEADER)?, now_unix, TOLERANCE_SECS)?;
    hmac_sha256_any(secrets, &[t.as_bytes(), b".", inbound.body], &macs)
}

pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    match secret.strip_prefix("whsec_") {
        Some(rest) => super::long_enough(rest, "part after `whsec_`"),
        None => Err("a Stripe signing secret starts with `whsec_`".into()),
    }
}

#[cfg(test)]
mod tests {
    use crate::provider::Scheme;
    use crate::scheme::{run, validate_secret};
    use crate::VerifyError;

    const SECRET: &str = "whsec_stripe_test_a";
    const OTHER_SECRET: &str = "whsec_stripe_test_b";
    const BODY: &str = r#"{"id":"evt_1","type":"customer.created"}"#;
    const T: i64 = 1700000000;
    // stripe.WebhookSignature.generate_signature_header(BODY, SECRET, timestamp=T)  (stripe 16.1.0)
    const HEADER: &str =
        "t=1700000000,v1=7a061975534b8e75d74bcb0595922f893076985dba63cb2daa8c38e78d664c85";
    // stripe.WebhookSignature.generate_signature_header(BODY, OTHER_SECRET, timestamp=T)
    const OTHER_V1: &str = "d2614c6048b7d3ce7b32741b1149bfab7145c36f889b914523f90825cd6f23aa";

    fn stripe(header: &str, body: &str, secrets: &[&str], now: i64) -> Result<(), VerifyError> {
        run(
            Scheme::Stripe,
            &[("Stripe-Signature", header)],
            body,
            secrets,
            now,
        )
    }

    #[test]
    fn sdk_signature_passes() {
        assert_eq!(stripe(HEADER, BODY, &[SECRET], T + 10), Ok(()));
    }

    #[test]
    fn tampered_body_fails() {
        assert_eq!(
            stripe(HEADER, &BODY.replace("evt_1", "evt_2"), &[SECRET], T),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn wrong_secret_fails() {
        assert_eq!(
            stripe(HEADER, BODY, &[OTHER_SECRET], T),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn any_secret_verifies() {
        assert_eq!(stripe(HEADER, BODY, &[OTHER_SECRET, SECRET], T), Ok(()));
    }

    #[test]
    fn any_v1_entry_verifies() {
        // As Stripe sends during secret rotation: one v1 per active secret, plus a v0.
        let (_, v1) = HEADER.split_once(',').unwrap();
        let header = format!("t=1700000000,v1={OTHER_V1},{v1},v0=deadbeef");
        assert_eq!(stripe(&header, BODY, &[SECRET], T), Ok(()));
        assert_eq!(stripe(&header, BODY, &[OTHER_SECRET], T), Ok(()));
        let spaced = format!("t=1700000000, v1={OTHER_V1}, {v1}");
        assert_eq!(stripe(&spaced, BODY, &[SECRET], T), Ok(()));
    }

    #[test]
    fn timestamp_is_part_of_the_signature() {
        let header = HEADER.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            stripe(&header, BODY, &[SECRET], T),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn stale_and_future_timestamps_fail() {
        assert_eq!(stripe(HEADER, BODY, &[SECRET], T + 300), Ok(()));
        assert_eq!(stripe(HEADER, BODY, &[SECRET], T - 300), Ok(()));
        assert_eq!(
            stripe(HEADER, BODY, &[SECRET], T + 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            stripe(HEADER, BODY, &[SECRET], T - 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn missing_header_fails() {
        assert_eq!(
            run(Scheme::Stripe, &[], BODY, &[SECRET], T),
            Err(VerifyError::MissingHeader("stripe-signature"))
        );
    }

    #[test]
    fn malformed_headers() {
        for header in [
            "",
            "garbage",
            "v1=7a061975534b8e75d74bcb0595922f893076985dba63cb2daa8c38e78d664c85",
            "t=1700000000",
            "t=1700000000,v1=zz",
            "t=1700000000,v0=7a061975534b8e75d74bcb0595922f893076985dba63cb2daa8c38e78d664c85",
            "t=soon,v1=7a061975534b8e75d74bcb0595922f893076985dba63cb2daa8c38e78d664c85",
        ] {
            assert_eq!(
                stripe(header, BODY, &[SECRET], T),
                Err(VerifyError::MalformedHeader("stripe-signature")),
                "{header}"
            );
        }
    }

    #[test]
    fn secrets_must_start_with_whsec() {
        assert_eq!(
            validate_secret(Scheme::Stripe, "whsec_RFtVRoXRzlnqdulp"),
            Ok(())
        );
        for bad in ["", "whsec_", SECRET, "sk_test_abc", "stripe_test_a"] {
            assert!(validate_secret(Scheme::Stripe, bad).is_err(), "{bad}");
        }
    }
}
