//! Properties of every provider of the registry, on generated input: arbitrary bodies,
//! header values, query strings and clocks never make verification or mapping panic; and a
//! delivery signed as its provider documents the scheme verifies, while any single-byte
//! change of its body or of the headers (or query) that authenticate it is refused.
//!
//! The signatures are computed here with `hmac`/`sha2` from the documented schemes, not
//! with the adapters' own signer, so the properties check the verifier against an
//! independent implementation.
//!
//! Each property runs 64 cases; `PROPTEST_CASES=20000 cargo test -p firehook-adapters
//! --test properties` runs a longer search.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use firehook_adapters::{
    dedupe_id_before_parsing, map, verify, Headers, Inbound, Provider, Scheme, Secret, Verified,
};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};
use sha2::Sha256;

/// 64 cases per property unless `PROPTEST_CASES` asks for more (or fewer).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Header names the schemes and mappers read, so generated values reach their parsers.
const HEADER_NAMES: &[&str] = &[
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "stripe-signature",
    "x-shopify-hmac-sha256",
    "shopify-hmac-sha256",
    "x-shopify-topic",
    "shopify-topic",
    "x-shopify-event-id",
    "x-shopify-webhook-id",
    "x-shopify-shop-domain",
    "workos-signature",
    "authorization",
    "x-webhook-signature",
];

/// A header value: mostly what the schemes expect (`v1,`, `t=`, `sha256=`, digits, base64
/// and hex), with arbitrary text mixed in.
fn header_value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("v1,".to_owned()),
        Just("t=".to_owned()),
        Just(",v1=".to_owned()),
        Just("sha256=".to_owned()),
        Just("Bearer ".to_owned()),
        Just("Basic ".to_owned()),
        Just(" ".to_owned()),
        "[0-9]{1,20}",
        "[0-9a-fA-F]{0,70}",
        "[A-Za-z0-9+/=]{0,48}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..5).prop_map(|pieces| pieces.concat())
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(HEADER_NAMES).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof!["token=[A-Za-z0-9%&=_]{0,40}", any::<String>()])
}

/// JSON with the keys the mappers look for, nested a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    const KEYS: &[&str] = &[
        "type",
        "event",
        "id",
        "data",
        "object",
        "email",
        "email_address",
        "email_addresses",
        "primary_email_address_id",
        "first_name",
        "last_name",
        "customer",
        "customer_email",
        "customer_details",
        "record",
        "old_record",
        "table",
        "schema",
        "user",
        "member",
        "emails",
        "primary",
        "subscriber_attributes",
        "$email",
        "value",
        "app_user_id",
        "source",
        "object_type",
        "action",
        "created_at",
        "deleted",
        "contact_email",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z@.0-9_]{0,20}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec(
                (
                    prop_oneof![
                        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
                        1 => any::<String>()
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn headers_of(pairs: &[(String, String)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// Verifies, then maps the bytes as if they had verified: neither may panic, and a dedupe
/// id known before parsing is the one mapping gives.
fn exercise(provider: Provider, headers: &Headers, body: &[u8], query: Option<&str>, now: i64) {
    let secrets = [Secret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")];
    let inbound = Inbound {
        headers,
        body,
        query,
    };
    let _ = verify(provider, &inbound, &secrets, now);
    let _ = verify(provider, &inbound, &[], now);
    let delivery = Verified::read_back(provider, headers.clone(), body.to_vec());
    if let (Ok(mapped), Some(early)) = (
        map(&delivery, &json!({}), now),
        dedupe_id_before_parsing(&delivery),
    ) {
        assert_eq!(early, mapped.dedupe_id, "{}", provider.slug());
    }
    let _ = map(&delivery, &json!({"emailPath": "data.email"}), now);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_and_headers_never_panic(
        headers in prop::collection::vec((header_name(), header_value()), 0..6),
        body in prop::collection::vec(any::<u8>(), 0..512),
        query in query(),
        now in any::<i64>(),
    ) {
        let headers = headers_of(&headers);
        for provider in Provider::all() {
            exercise(provider, &headers, &body, query.as_deref(), now);
        }
    }

    #[test]
    fn arbitrary_json_never_panics_the_mappers(
        body in json_value(),
        headers in prop::collection::vec((header_name(), header_value()), 0..4),
        now in any::<i64>(),
    ) {
        let headers = headers_of(&headers);
        let body = body.to_string();
        for provider in Provider::all() {
            exercise(provider, &headers, body.as_bytes(), None, now);
        }
    }

    #[test]
    fn a_signed_body_verifies_and_any_changed_byte_is_refused(
        key in prop::collection::vec(any::<u8>(), 1..48),
        token in token(),
        id in "msg_[A-Za-z0-9]{1,30}",
        now in 1_000_000_000i64..4_000_000_000,
        body in prop::collection::vec(any::<u8>(), 1..512),
        at in any::<Index>(),
        delta in 1u8..=255,
    ) {
        for provider in Provider::all() {
            let secret = secret_for(provider.scheme(), &key, &token);
            let signed = sign(provider, &secret, &id, now, &body);
            prop_assert!(
                signed.verify(provider, &secret, &body, now),
                "{provider:?}: the documented signature does not verify"
            );
            if !provider.scheme().signs_body() {
                continue;
            }
            let mut tampered = body.clone();
            let i = at.index(tampered.len());
            tampered[i] = tampered[i].wrapping_add(delta);
            prop_assert!(
                !signed.verify(provider, &secret, &tampered, now),
                "{provider:?}: byte {i} of the body changed, still verified"
            );
        }
    }

    #[test]
    fn any_changed_byte_of_the_signature_is_refused(
        key in prop::collection::vec(any::<u8>(), 1..48),
        token in token(),
        id in "msg_[A-Za-z0-9]{1,30}",
        now in 1_000_000_000i64..4_000_000_000,
        body in prop::collection::vec(any::<u8>(), 0..256),
        which in any::<Index>(),
        at in any::<Index>(),
        delta in 1u8..128,
    ) {
        for provider in Provider::all() {
            let scheme = provider.scheme();
            let secret = secret_for(scheme, &key, &token);
            let signed = sign(provider, &secret, &id, now, &body);
            let mut tampered = signed.clone();
            let Some((field, original, i, new)) = tampered.change_one_byte(&which, &at, delta)
            else {
                continue;
            };
            if same_meaning(scheme, &original, i, new) {
                continue;
            }
            prop_assert!(
                !tampered.verify(provider, &secret, &body, now),
                "{provider:?}: byte {i} of {field} ({original:?}) changed to {:?}, still verified",
                new as char
            );
        }
    }
}

/// A token or plain-text secret: printable ASCII without surrounding spaces.
fn token() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,38}[!-~])?"
}

/// A secret of the shape the scheme needs: Svix keys are `whsec_` + base64 of the key bytes.
fn secret_for(scheme: Scheme, key: &[u8], token: &str) -> String {
    match scheme {
        Scheme::Svix => format!("whsec_{}", BASE64.encode(key)),
        Scheme::Stripe => format!("whsec_{token}"),
        _ => token.to_owned(),
    }
}

/// What authenticates a delivery: headers, and the query for URL tokens.
#[derive(Clone, Debug)]
struct Signed {
    headers: Vec<(String, String)>,
    query: Option<String>,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Signs as the providers document their schemes (the headers, signed bytes, MAC encoding
/// and key of each). The match has no catch-all arm: a new scheme does not compile until
/// it is signed here too.
fn sign(provider: Provider, secret: &str, id: &str, now: i64, body: &[u8]) -> Signed {
    let header = |name: &str, value: String| Signed {
        headers: vec![(name.to_owned(), value)],
        query: None,
    };
    let ts = now.to_string();
    match provider.scheme() {
        Scheme::Svix => {
            let key = BASE64
                .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
                .expect("base64 key");
            let mac = hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
            let prefix = if provider.slug() == "standard" {
                "webhook"
            } else {
                "svix"
            };
            Signed {
                headers: vec![
                    (format!("{prefix}-id"), id.to_owned()),
                    (format!("{prefix}-timestamp"), ts),
                    (
                        format!("{prefix}-signature"),
                        format!("v1,{}", BASE64.encode(mac)),
                    ),
                ],
                query: None,
            }
        }
        Scheme::Stripe => {
            let mac = hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), b".", body]);
            header(
                "stripe-signature",
                format!("t={ts},v1={}", hex::encode(mac)),
            )
        }
        Scheme::Shopify => header(
            "x-shopify-hmac-sha256",
            BASE64.encode(hmac_sha256(secret.as_bytes(), &[body])),
        ),
        Scheme::Workos => {
            let ms = (now * 1000).to_string();
            let mac = hmac_sha256(secret.as_bytes(), &[ms.as_bytes(), b".", body]);
            header(
                "workos-signature",
                format!("t={ms}, v1={}", hex::encode(mac)),
            )
        }
        Scheme::GenericHmac => header(
            "x-webhook-signature",
            format!(
                "sha256={}",
                hex::encode(hmac_sha256(secret.as_bytes(), &[body]))
            ),
        ),
        Scheme::SharedToken => header("authorization", format!("Bearer {secret}")),
        Scheme::UrlToken => Signed {
            headers: vec![],
            query: Some(format!(
                "token={}",
                utf8_percent_encode(secret, NON_ALPHANUMERIC)
            )),
        },
    }
}

impl Signed {
    fn verify(&self, provider: Provider, secret: &str, body: &[u8], now: i64) -> bool {
        let headers = headers_of(&self.headers);
        let inbound = Inbound {
            headers: &headers,
            body,
            query: self.query.as_deref(),
        };
        verify(provider, &inbound, &[Secret::new(secret)], now).is_ok()
    }

    /// Adds `delta` (modulo 128, so the value stays ASCII) to one byte of one header value
    /// or of the query; answers which field, its value before, the index and the new byte.
    fn change_one_byte(
        &mut self,
        which: &Index,
        at: &Index,
        delta: u8,
    ) -> Option<(String, String, usize, u8)> {
        let mut fields: Vec<(String, &mut String)> = self
            .headers
            .iter_mut()
            .map(|(name, value)| (name.clone(), value))
            .collect();
        if let Some(query) = self.query.as_mut() {
            fields.push(("the query".to_owned(), query));
        }
        if fields.is_empty() {
            return None;
        }
        let n = fields.len();
        let (field, value) = &mut fields[which.index(n)];
        if value.is_empty() {
            return None;
        }
        let original = value.clone();
        let mut bytes = std::mem::take(*value).into_bytes();
        let i = at.index(bytes.len());
        if !bytes[i].is_ascii() {
            return None;
        }
        let new = (bytes[i] + delta) % 128;
        bytes[i] = new;
        **value = String::from_utf8(bytes).expect("ASCII for ASCII keeps UTF-8");
        Some((field.clone(), original, i, new))
    }
}

/// Changes the schemes define as meaning nothing: a letter's case in hex MACs, in the
/// `Bearer` word and in percent escapes, and one blank for another around `t=`/`v1=`
/// items. Base64 (Svix, Shopify) is case-sensitive, so there every change counts.
fn same_meaning(scheme: Scheme, original: &str, i: usize, new: u8) -> bool {
    let old = original.as_bytes()[i];
    let case_only = old.eq_ignore_ascii_case(&new);
    match scheme {
        Scheme::Svix | Scheme::Shopify => false,
        Scheme::Stripe | Scheme::Workos => {
            case_only || ((old as char).is_whitespace() && (new as char).is_whitespace())
        }
        Scheme::GenericHmac => case_only,
        // The header is `Bearer <token>`.
        Scheme::SharedToken => case_only && i < "Bearer".len(),
        // The query is `token=<percent-encoded>`: a hex digit of a `%XX` escape.
        Scheme::UrlToken => {
            case_only && original.as_bytes()[i.saturating_sub(2)..i].contains(&b'%')
        }
    }
}
