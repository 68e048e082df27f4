//! WorkOS: `WorkOS-Signature: t=<unix ms>, v1=<hex>`, HMAC-SHA256 of `{t}.{body}`, with the
//! 180 s tolerance either way of the official SDKs.

use super::{hmac_sha256_any, parse_t_v1, parse_timestamp, tolerance_secs, within_tolerance};
use crate::provider::Scheme;
use crate::{Inbound, Secret, VerifyError};

const HEADER: &str = "workos-signature";
const TOLERANCE_MS: u64 = tolerance_secs(Scheme::Workos) * 1000;

pub(super) fn check(
    inbound: &Inbound,
    secrets: &[Secret],
    now_unix: i64,
) -> Result<(), VerifyError> {
    let (t, macs) = parse_t_v1(super::header(inbound, &[HEADER])?, HEADER)?;
    let now_ms = now_unix.saturating_mul(1000);
    within_tolerance(parse_timestamp(t, HEADER)?, now_ms, TOLERANCE_MS)?;
    hmac_sha256_any(secrets, &[t.as_bytes(), b".", inbound.body], &macs)
}

#[cfg(test)]
mod tests {
    use crate::provider::Scheme;
    use crate::scheme::run;
    use crate::VerifyError;

    const SECRET: &str = "workos_secret";
    const BODY: &str =
        r#"{"id":"event_01","event":"user.created","data":{"email":"a@example.com"}}"#;
    const NOW: i64 = 1700000000;
    // hmac.new(SECRET.encode(), ("1700000000123." + BODY).encode(), hashlib.sha256).hexdigest()
    // and accepted by workos 10.8.0:
    // workos.webhooks._verification.verify_header(event_body=..., event_signature=HEADER, secret=SECRET, tolerance=...)
    const HEADER: &str =
        "t=1700000000123, v1=d3e267f5ca2db7d096ba260e1a282909e728da7df47fed8cd79777b9f52ad356";

    fn workos(header: &str, body: &str, secrets: &[&str], now: i64) -> Result<(), VerifyError> {
        run(
            Scheme::Workos,
            &[("WorkOS-Signature", header)],
            body,
            secrets,
            now,
        )
    }

    #[test]
    fn valid_signature_passes_with_or_without_space() {
        assert_eq!(workos(HEADER, BODY, &[SECRET], NOW), Ok(()));
        let tight = HEADER.replace(", ", ",");
        assert_eq!(workos(&tight, BODY, &[SECRET], NOW), Ok(()));
    }

    #[test]
    fn tampered_body_fails() {
        assert_eq!(
            workos(HEADER, &BODY.replace("a@", "b@"), &[SECRET], NOW),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn wrong_secret_fails() {
        assert_eq!(
            workos(HEADER, BODY, &["other"], NOW),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn any_secret_verifies() {
        assert_eq!(workos(HEADER, BODY, &["other", SECRET], NOW), Ok(()));
    }

    #[test]
    fn milliseconds_are_signed_as_sent() {
        let header = HEADER.replace("t=1700000000123", "t=1700000000124");
        assert_eq!(
            workos(&header, BODY, &[SECRET], NOW),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn stale_and_future_timestamps_fail() {
        // t is 1700000000.123 s; the tolerance is 180 s either way.
        assert_eq!(workos(HEADER, BODY, &[SECRET], NOW + 180), Ok(()));
        assert_eq!(workos(HEADER, BODY, &[SECRET], NOW - 179), Ok(()));
        assert_eq!(
            workos(HEADER, BODY, &[SECRET], NOW + 181),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            workos(HEADER, BODY, &[SECRET], NOW - 180),
            Err(VerifyError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn missing_header_fails() {
        assert_eq!(
            run(Scheme::Workos, &[], BODY, &[SECRET], NOW),
            Err(VerifyError::MissingHeader("workos-signature"))
        );
    }

    #[test]
    fn malformed_headers() {
        for header in [
            "",
            "t=1700000000123",
            "v1=d3e267f5ca2db7d096ba260e1a282909e728da7df47fed8cd79777b9f52ad356",
            "t=1700000000123, v1=xyz",
            "t=1.7e12, v1=d3e267f5ca2db7d096ba260e1a282909e728da7df47fed8cd79777b9f52ad356",
        ] {
            assert_eq!(
                workos(header, BODY, &[SECRET], NOW),
                Err(VerifyError::MalformedHeader("workos-signature")),
                "{header}"
            );
        }
    }
}
