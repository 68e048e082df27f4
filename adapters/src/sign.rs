//! Signing a delivery as its provider would, for test deliveries (`firehook send-test`).
//! Each result is checked with [`crate::verify`] before it is handed out, so what this
//! signs is exactly what the schemes (tested against the providers' SDKs) accept.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use sha2::Sha256;

use crate::provider::Scheme;
use crate::{Headers, Inbound, Provider, Secret, VerifyError};

/// The headers and query string that authenticate a signed delivery.
#[derive(Debug, Clone, Default)]
pub struct Signed {
    pub headers: Vec<(String, String)>,
    pub query: Option<String>,
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Signs `body` as message `id` sent at `now_unix` with `secret`, in `provider`'s scheme.
pub fn sign(
    provider: Provider,
    secret: &Secret,
    id: &str,
    now_unix: i64,
    body: &[u8],
) -> Result<Signed, VerifyError> {
    let key = secret.expose().as_bytes();
    let header = |name: &str, value: String| (name.to_owned(), value);
    let signed = match provider.scheme() {
        Scheme::Svix => {
            let encoded = secret
                .expose()
                .strip_prefix("whsec_")
                .unwrap_or(secret.expose());
            let key = BASE64
                .decode(encoded)
                .map_err(|_| VerifyError::InvalidSignature)?;
            let ts = now_unix.to_string();
            let sig = BASE64.encode(mac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]));
            let prefix = if provider.slug() == "standard" {
                "webhook"
            } else {
                "svix"
            };
            Signed {
                headers: vec![
                    header(&format!("{prefix}-id"), id.to_owned()),
                    header(&format!("{prefix}-timestamp"), ts),
                    header(&format!("{prefix}-signature"), format!("v1,{sig}")),
                ],
                query: None,
            }
        }
        Scheme::Stripe => {
            let ts = now_unix.to_string();
            let sig = hex::encode(mac(key, &[ts.as_bytes(), b".", body]));
            Signed {
                headers: vec![header("stripe-signature", format!("t={ts},v1={sig}"))],
                query: None,
            }
        }
        Scheme::Shopify => Signed {
            headers: vec![header(
                "x-shopify-hmac-sha256",
                BASE64.encode(mac(key, &[body])),
            )],
            query: None,
        },
        Scheme::Workos => {
            let ts = (now_unix * 1000).to_string();
            let sig = hex::encode(mac(key, &[ts.as_bytes(), b".", body]));
            Signed {
                headers: vec![header("workos-signature", format!("t={ts}, v1={sig}"))],
                query: None,
            }
        }
        Scheme::GenericHmac => Signed {
            headers: vec![header(
                "x-webhook-signature",
                format!("sha256={}", hex::encode(mac(key, &[body]))),
            )],
            query: None,
        },
        Scheme::SharedToken => Signed {
            headers: vec![header(
                "authorization",
                format!("Bearer {}", secret.expose()),
            )],
            query: None,
        },
        Scheme::UrlToken => Signed {
            headers: vec![],
            query: Some(format!(
                "token={}",
                utf8_percent_encode(secret.expose(), NON_ALPHANUMERIC)
            )),
        },
    };
    let headers: Headers = signed
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let inbound = Inbound {
        headers: &headers,
        body,
        query: signed.query.as_deref(),
    };
    crate::verify(provider, &inbound, std::slice::from_ref(secret), now_unix)?;
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_signs_what_it_verifies() {
        let cases = [
            ("clerk", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
            ("standard", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
            ("stripe", "whsec_test"),
            ("shopify", "shpss_test"),
            ("workos", "workos_secret"),
            ("generic", "generic secret"),
            ("supabase", "fh_token"),
            ("brimble", "fh_token/with+odd=chars"),
        ];
        for (slug, secret) in cases {
            let provider = Provider::from_slug(slug).unwrap();
            let signed = sign(
                provider,
                &Secret::new(secret),
                "msg_1",
                1_700_000_000,
                b"{}",
            );
            assert!(signed.is_ok(), "{provider:?}: {signed:?}");
        }
    }
}
