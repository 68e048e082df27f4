//! Generic HMAC: `X-Webhook-Signature: sha256=<hex>` over the raw body.

use super::hmac_sha256_any;
use crate::{Inbound, Secret, VerifyError};

const HEADER: &str = "x-webhook-signature";

pub(super) fn check(inbound: &Inbound, secrets: &[Secret]) -> Result<(), VerifyError> {
    let mac = super::header(inbound, &[HEADER])?
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(VerifyError::MalformedHeader(HEADER))?;
    hmac_sha256_any(secrets, &[inbound.body], &[mac])
}

#[cfg(test)]
mod tests {
    use crate::provider::Scheme;
    use crate::scheme::run;
    use crate::VerifyError;

    const SECRET: &str = "generic_secret";
    const BODY: &str = r#"{"email":"g@example.com"}"#;
    // "sha256=" + hmac.new(SECRET.encode(), BODY.encode(), hashlib.sha256).hexdigest()
    const SIG: &str = "sha256=cb0c0179a129706f2aca60f4cbc91e677f599a88da1be7b4c0dd3634acd8079a";

    fn generic(sig: &str, body: &str, secrets: &[&str]) -> Result<(), VerifyError> {
        run(
            Scheme::GenericHmac,
            &[("X-Webhook-Signature", sig)],
            body,
            secrets,
            0,
        )
    }

    #[test]
    fn valid_signature_passes() {
        assert_eq!(generic(SIG, BODY, &[SECRET]), Ok(()));
        let upper_hex = format!("sha256={}", SIG["sha256=".len()..].to_uppercase());
        assert_eq!(generic(&upper_hex, BODY, &[SECRET]), Ok(()));
    }

    #[test]
    fn tampered_body_fails() {
        assert_eq!(
            generic(SIG, &BODY.replace("g@", "h@"), &[SECRET]),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn wrong_secret_fails() {
        assert_eq!(
            generic(SIG, BODY, &["other"]),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn any_secret_verifies() {
        assert_eq!(generic(SIG, BODY, &["other", SECRET]), Ok(()));
    }

    #[test]
    fn missing_header_fails() {
        assert_eq!(
            run(Scheme::GenericHmac, &[], BODY, &[SECRET], 0),
            Err(VerifyError::MissingHeader("x-webhook-signature"))
        );
    }

    #[test]
    fn malformed_headers() {
        for sig in [
            "",
            "cb0c0179a129706f2aca60f4cbc91e677f599a88da1be7b4c0dd3634acd8079a",
            "sha1=cb0c0179a129706f2aca60f4cbc91e677f599a88da1be7b4c0dd3634acd8079a",
            "sha256=xyz",
        ] {
            assert_eq!(
                generic(sig, BODY, &[SECRET]),
                Err(VerifyError::MalformedHeader("x-webhook-signature")),
                "{sig}"
            );
        }
        assert_eq!(
            generic("sha256=cb0c", BODY, &[SECRET]),
            Err(VerifyError::InvalidSignature)
        );
    }
}
