//! Shopify: base64 HMAC-SHA256 of the raw body, keyed with the app's client secret.

use base64::{engine::general_purpose::STANDARD, Engine};

use super::hmac_sha256_any;
use crate::{Inbound, Secret, VerifyError};

const HEADERS: [&str; 2] = ["x-shopify-hmac-sha256", "shopify-hmac-sha256"];

pub(super) fn check(inbound: &Inbound, secrets: &[Secret]) -> Result<(), VerifyError> {
    let mac = STANDARD
        .decode(super::header(inbound, &HEADERS)?)
        .map_err(|_| VerifyError::MalformedHeader(HEADERS[0]))?;
    hmac_sha256_any(secrets, &[inbound.body], &[mac])
}

#[cfg(test)]
mod tests {
    use crate::provider::Scheme;
    use crate::scheme::run;
    use crate::VerifyError;

    const SECRET: &str = "shpss_client_secret";
    const BODY: &str = r#"{"id":820982911946154500,"email":"jon@example.com"}"#;
    // base64.b64encode(hmac.new(SECRET.encode(), BODY.encode(), hashlib.sha256).digest())
    const MAC: &str = "AT3aLBcewpBKwsJb9wcCC5j1yWefLW+cbFBTm4PULYQ=";

    fn shopify(mac: &str, body: &str, secrets: &[&str]) -> Result<(), VerifyError> {
        run(
            Scheme::Shopify,
            &[("X-Shopify-Hmac-Sha256", mac)],
            body,
            secrets,
            0,
        )
    }

    #[test]
    fn valid_mac_passes_under_either_header_name() {
        assert_eq!(shopify(MAC, BODY, &[SECRET]), Ok(()));
        let lower = [("shopify-hmac-sha256", MAC)];
        assert_eq!(run(Scheme::Shopify, &lower, BODY, &[SECRET], 0), Ok(()));
    }

    #[test]
    fn tampered_body_fails() {
        assert_eq!(
            shopify(MAC, &BODY.replace("jon@", "eve@"), &[SECRET]),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn wrong_secret_fails() {
        assert_eq!(
            shopify(MAC, BODY, &["shpss_other"]),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn any_secret_verifies() {
        assert_eq!(shopify(MAC, BODY, &["shpss_other", SECRET]), Ok(()));
    }

    #[test]
    fn missing_header_fails() {
        assert_eq!(
            run(Scheme::Shopify, &[], BODY, &[SECRET], 0),
            Err(VerifyError::MissingHeader("x-shopify-hmac-sha256"))
        );
    }

    #[test]
    fn malformed_and_truncated_macs() {
        assert_eq!(
            shopify("not base64!", BODY, &[SECRET]),
            Err(VerifyError::MalformedHeader("x-shopify-hmac-sha256"))
        );
        for mac in ["", "AT3aLBcewpBKwsJb9wcCC5j1yWefLW+c"] {
            assert_eq!(
                shopify(mac, BODY, &[SECRET]),
                Err(VerifyError::InvalidSignature)
            );
        }
    }
}
