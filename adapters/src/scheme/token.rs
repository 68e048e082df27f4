//! Shared tokens: the secret itself sent in `Authorization` (verbatim, as `Bearer <secret>`,
//! or as the basic-auth password) or as `?token=<secret>` on the receive URL.

use base64::{engine::general_purpose::STANDARD, Engine};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Inbound, Secret, VerifyError};

pub(super) fn check_header(inbound: &Inbound, secrets: &[Secret]) -> Result<(), VerifyError> {
    let value = super::header(inbound, &["authorization"])?;
    let password = auth_param(value, "basic").and_then(basic_password);
    let mut candidates = vec![value.as_bytes()];
    candidates.extend(auth_param(value, "bearer").map(str::as_bytes));
    candidates.extend(password.as_deref());
    matches_any(secrets, &candidates)
}

pub(super) fn check_query(inbound: &Inbound, secrets: &[Secret]) -> Result<(), VerifyError> {
    let tokens: Vec<Vec<u8>> = inbound
        .query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("token="))
        .map(|value| percent_decode_str(value).collect())
        .collect();
    if tokens.is_empty() {
        return Err(VerifyError::MissingHeader("token"));
    }
    let candidates: Vec<&[u8]> = tokens.iter().map(Vec::as_slice).collect();
    matches_any(secrets, &candidates)
}

pub(super) fn validate_secret(secret: &str) -> Result<(), String> {
    super::long_enough(secret, "token")?;
    // It travels in a header or URL, where surrounding spaces are lost.
    if secret.trim() != secret || !secret.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err("the token must be printable ASCII without leading or trailing spaces".into());
    }
    Ok(())
}

/// The credentials of `<scheme> <credentials>`, the scheme compared without regard to case.
fn auth_param<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = value.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim_start())
}

/// The password part of base64 `user:password`.
fn basic_password(credentials: &str) -> Option<Vec<u8>> {
    let decoded = STANDARD.decode(credentials).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

/// Compares digests so neither the content nor the length of a secret leaks through timing.
fn matches_any(secrets: &[Secret], candidates: &[&[u8]]) -> Result<(), VerifyError> {
    let matched = secrets.iter().any(|secret| {
        let expected = Sha256::digest(secret.expose().as_bytes());
        candidates
            .iter()
            .any(|c| bool::from(Sha256::digest(c).ct_eq(&expected)))
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use crate::provider::Scheme;
    use crate::scheme::{check, run, validate_secret};
    use crate::{Headers, Inbound, Secret, VerifyError};

    const TOKEN: &str = "fh_tok_3q2+7w/x";
    const BODY: &str = r#"{"type":"INSERT"}"#;

    fn auth(value: &str, secrets: &[&str]) -> Result<(), VerifyError> {
        run(
            Scheme::SharedToken,
            &[("Authorization", value)],
            BODY,
            secrets,
            0,
        )
    }

    fn url(query: Option<&str>, secrets: &[&str]) -> Result<(), VerifyError> {
        let headers = Headers::new();
        let inbound = Inbound {
            headers: &headers,
            body: BODY.as_bytes(),
            query,
        };
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        check(Scheme::UrlToken, &inbound, &secrets, 0)
    }

    #[test]
    fn verbatim_and_bearer_tokens_pass() {
        assert_eq!(auth(TOKEN, &[TOKEN]), Ok(()));
        assert_eq!(auth(&format!("Bearer {TOKEN}"), &[TOKEN]), Ok(()));
        assert_eq!(auth(&format!("bearer {TOKEN}"), &[TOKEN]), Ok(()));
    }

    #[test]
    fn basic_auth_password_passes() {
        // base64.b64encode(b"brevo:fh_tok_3q2+7w/x")
        let basic = "Basic YnJldm86ZmhfdG9rXzNxMis3dy94";
        assert_eq!(auth(basic, &[TOKEN]), Ok(()));
        // base64.b64encode(b"fh_tok_3q2+7w/x:nope"): the user name is not the password
        assert_eq!(
            auth("Basic ZmhfdG9rXzNxMis3dy94Om5vcGU=", &[TOKEN]),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn wrong_or_partial_tokens_fail() {
        for value in [
            "fh_tok_3q2+7w/",
            "fh_tok_3q2+7w/xx",
            "Bearer",
            "Token fh_tok_3q2+7w/x",
            "",
        ] {
            assert_eq!(
                auth(value, &[TOKEN]),
                Err(VerifyError::InvalidSignature),
                "{value}"
            );
        }
        assert_eq!(
            auth("Basic !!!", &[TOKEN]),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn any_secret_verifies() {
        assert_eq!(auth(&format!("Bearer {TOKEN}"), &["old", TOKEN]), Ok(()));
        assert_eq!(
            url(Some("token=fh_tok_3q2%2B7w%2Fx"), &["old", TOKEN]),
            Ok(())
        );
    }

    #[test]
    fn missing_authorization_fails() {
        assert_eq!(
            run(Scheme::SharedToken, &[], BODY, &[TOKEN], 0),
            Err(VerifyError::MissingHeader("authorization"))
        );
    }

    #[test]
    fn url_token_is_percent_decoded() {
        // urllib.parse.quote(TOKEN, safe="") == "fh_tok_3q2%2B7w%2Fx"
        assert_eq!(url(Some("a=1&token=fh_tok_3q2%2B7w%2Fx"), &[TOKEN]), Ok(()));
        assert_eq!(url(Some("token=fh_tok_3q2+7w/x"), &[TOKEN]), Ok(()));
        assert_eq!(
            url(Some("token=fh_tok_3q2"), &[TOKEN]),
            Err(VerifyError::InvalidSignature)
        );
        assert_eq!(
            url(Some("token=%ff%fe"), &[TOKEN]),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn missing_url_token_fails() {
        for query in [None, Some(""), Some("tokens=x&xtoken=y")] {
            assert_eq!(
                url(query, &[TOKEN]),
                Err(VerifyError::MissingHeader("token"))
            );
        }
    }

    #[test]
    fn token_secrets_must_survive_transport() {
        for scheme in [Scheme::SharedToken, Scheme::UrlToken] {
            assert_eq!(validate_secret(scheme, "fh_tok_3q2+7w/x0"), Ok(()));
            assert_eq!(validate_secret(scheme, "Bearer abcdefghij"), Ok(()));
            for bad in [
                "",
                TOKEN,
                " abcdefghijklmnop",
                "abcdefghijklmnop ",
                "abcdefgh\nijklmnop",
                "tökentökentökentöken",
            ] {
                assert!(validate_secret(scheme, bad).is_err(), "{bad:?}");
            }
        }
    }
}
