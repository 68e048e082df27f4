//! Signature schemes: each checks one delivery's raw headers and body against a
//! connection's secrets, any one of which may verify it.

mod generic;
mod shopify;
mod stripe;
mod svix;
mod token;
mod workos;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::provider::Scheme;
use crate::{Inbound, Secret, VerifyError};

pub(crate) fn check(
    scheme: Scheme,
    inbound: &Inbound,
    secrets: &[Secret],
    now_unix: i64,
) -> Result<(), VerifyError> {
    match scheme {
        Scheme::Svix => svix::check(inbound, secrets, now_unix),
        Scheme::Stripe => stripe::check(inbound, secrets, now_unix),
        Scheme::Shopify => shopify::check(inbound, secrets),
        Scheme::Workos => workos::check(inbound, secrets, now_unix),
        Scheme::SharedToken => token::check_header(inbound, secrets),
        Scheme::UrlToken => token::check_query(inbound, secrets),
        Scheme::GenericHmac => generic::check(inbound, secrets),
    }
}

/// The fewest characters of a shared secret or token given as text (Stripe's part after
/// `whsec_` included): 16 random characters are beyond guessing, and every provider's own
/// secrets are longer.
pub(crate) const MIN_SECRET_CHARS: usize = 16;

pub(crate) fn validate_secret(scheme: Scheme, secret: &str) -> Result<(), String> {
    match scheme {
        Scheme::Svix => svix::validate_secret(secret),
        Scheme::Stripe => stripe::validate_secret(secret),
        Scheme::SharedToken | Scheme::UrlToken => token::validate_secret(secret),
        Scheme::Shopify | Scheme::Workos | Scheme::GenericHmac => long_enough(secret, "secret"),
    }
}

/// Refuses a secret shorter than [`MIN_SECRET_CHARS`], naming it `what`.
fn long_enough(secret: &str, what: &str) -> Result<(), String> {
    if secret.chars().count() < MIN_SECRET_CHARS {
        Err(format!(
            "the {what} must be at least {MIN_SECRET_CHARS} characters"
        ))
    } else {
        Ok(())
    }
}

/// The first present header among `names`; a missing one is reported as `names[0]`.
fn header<'a>(inbound: &Inbound<'a>, names: &[&'static str]) -> Result<&'a str, VerifyError> {
    inbound
        .headers
        .get_any(names)
        .ok_or(VerifyError::MissingHeader(names[0]))
}

/// A decimal Unix timestamp: ASCII digits only.
fn parse_timestamp(value: &str, header: &'static str) -> Result<i64, VerifyError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedHeader(header));
    }
    value
        .parse()
        .map_err(|_| VerifyError::MalformedHeader(header))
}

/// A clock scheme's tolerance, for its module's constant (evaluated at compile time).
const fn tolerance_secs(scheme: Scheme) -> u64 {
    match scheme.clock_tolerance_secs() {
        Some(secs) => secs,
        None => panic!("the scheme signs no timestamp"),
    }
}

fn within_tolerance(timestamp: i64, now: i64, tolerance: u64) -> Result<(), VerifyError> {
    if timestamp.abs_diff(now) > tolerance {
        Err(VerifyError::TimestampOutOfTolerance)
    } else {
        Ok(())
    }
}

/// Parses `t=<digits>,v1=<hex>[,v1=<hex>...]` (Stripe, WorkOS), spaces around items allowed.
/// Returns `t` as sent and the decoded `v1` MACs; other keys (`v0`) are ignored.
fn parse_t_v1<'a>(
    value: &'a str,
    header: &'static str,
) -> Result<(&'a str, Vec<Vec<u8>>), VerifyError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", ts)) => {
                t.get_or_insert(ts);
            }
            // A value that is not a hex SHA-256 MAC cannot match; another v1 still may.
            Some(("v1", mac)) => v1.extend(hex::decode(mac).ok().filter(|m| m.len() == 32)),
            _ => {}
        }
    }
    match t {
        Some(t) if !v1.is_empty() => Ok((t, v1)),
        _ => Err(VerifyError::MalformedHeader(header)),
    }
}

/// HMAC-SHA256 of `parts`, keyed with each secret's UTF-8 bytes, compared in constant
/// time with each of `macs`: any pair matching passes.
fn hmac_sha256_any(
    secrets: &[Secret],
    parts: &[&[u8]],
    macs: &[Vec<u8>],
) -> Result<(), VerifyError> {
    hmac_sha256_any_key(secrets.iter().map(|s| s.expose().as_bytes()), parts, macs)
}

/// [`hmac_sha256_any`] with the keys given as bytes.
fn hmac_sha256_any_key<K: AsRef<[u8]>>(
    keys: impl IntoIterator<Item = K>,
    parts: &[&[u8]],
    macs: &[Vec<u8>],
) -> Result<(), VerifyError> {
    let matched = keys.into_iter().any(|key| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(key.as_ref()).expect("HMAC accepts keys of any length");
        for part in parts {
            mac.update(part);
        }
        macs.iter().any(|m| mac.clone().verify_slice(m).is_ok())
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::InvalidSignature)
    }
}

/// Runs `check` on a delivery built from test values.
#[cfg(test)]
fn run(
    scheme: Scheme,
    headers: &[(&str, &str)],
    body: &str,
    secrets: &[&str],
    now_unix: i64,
) -> Result<(), VerifyError> {
    let headers: crate::Headers = headers.iter().copied().collect();
    let inbound = Inbound {
        headers: &headers,
        body: body.as_bytes(),
        query: None,
    };
    let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
    check(scheme, &inbound, &secrets, now_unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: &str = "abababababababababababababababababababababababababababababababab";

    #[test]
    fn t_v1_parsing() {
        assert_eq!(
            parse_t_v1(&format!("t=12, v1={MAC},v0=zz ,v1=00ff"), "h"),
            Ok(("12", vec![vec![0xab; 32]]))
        );
        for bad in ["", "t=12", "v1=00", "t=12,v1=", "t=12,v1=zz", "garbage"] {
            assert_eq!(
                parse_t_v1(bad, "h"),
                Err(VerifyError::MalformedHeader("h")),
                "{bad}"
            );
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1700000000", "h"), Ok(1_700_000_000));
        for bad in ["", "-1", "+1", "1.5", " 1", "99999999999999999999"] {
            assert_eq!(
                parse_timestamp(bad, "h"),
                Err(VerifyError::MalformedHeader("h")),
                "{bad}"
            );
        }
        assert_eq!(within_tolerance(100, 400, 300), Ok(()));
        assert_eq!(within_tolerance(700, 400, 300), Ok(()));
        assert_eq!(
            within_tolerance(99, 400, 300),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            within_tolerance(i64::MAX, i64::MIN, 300),
            Err(VerifyError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn validate_secret_for_hmac_schemes() {
        for scheme in [Scheme::Shopify, Scheme::Workos, Scheme::GenericHmac] {
            assert!(validate_secret(scheme, "").is_err());
            let err = validate_secret(scheme, "s3cret_s3cret_1").unwrap_err();
            assert!(err.contains("at least 16"), "{err}");
            assert_eq!(validate_secret(scheme, "s3cret_s3cret_12"), Ok(()));
        }
    }
}
