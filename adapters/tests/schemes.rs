//! The schemes through the public API: `verify` and `Provider::validate_secret`.

use firehook_adapters::{verify, Headers, Inbound, Provider, Secret, VerifyError};

// The documented Svix vector (providers.md).
const SVIX_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SVIX_TS: i64 = 1649367553;
const SVIX_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;

fn svix_headers(prefix: &str) -> Headers {
    [
        (format!("{prefix}-id"), "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
        (format!("{prefix}-timestamp"), "1649367553"),
        (
            format!("{prefix}-signature"),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ]
    .iter()
    .map(|(n, v)| (n.as_str(), *v))
    .collect()
}

fn provider(slug: &str) -> Provider {
    Provider::from_slug(slug).expect("a registry provider")
}

#[test]
fn svix_providers_verify_and_keep_the_delivery() {
    for (provider, prefix) in [
        (provider("clerk"), "svix"),
        (provider("stytch"), "svix"),
        (provider("standard"), "webhook"),
    ] {
        let headers = svix_headers(prefix);
        let inbound = Inbound {
            headers: &headers,
            body: SVIX_BODY.as_bytes(),
            query: None,
        };
        let verified = verify(provider, &inbound, &[Secret::new(SVIX_SECRET)], SVIX_TS).unwrap();
        assert_eq!(verified.provider(), provider);
        assert_eq!(verified.body(), SVIX_BODY.as_bytes());
        assert_eq!(verified.headers(), &headers);
    }
}

#[test]
fn no_secret_is_rejected_before_any_check() {
    let headers = Headers::new();
    let inbound = Inbound {
        headers: &headers,
        body: b"{}",
        query: None,
    };
    for provider in Provider::all() {
        assert_eq!(
            verify(provider, &inbound, &[], 0).unwrap_err(),
            VerifyError::NoActiveSecret
        );
    }
}

#[test]
fn url_token_reads_the_query() {
    let headers = Headers::new();
    let inbound = Inbound {
        headers: &headers,
        body: b"{}",
        query: Some("token=brimble_tok"),
    };
    let secrets = [Secret::new("brimble_tok")];
    assert!(verify(provider("brimble"), &inbound, &secrets, 0).is_ok());
    assert_eq!(
        verify(provider("supabase"), &inbound, &secrets, 0).unwrap_err(),
        VerifyError::MissingHeader("authorization")
    );
}

#[test]
fn validate_secret_per_provider() {
    assert!(provider("clerk").validate_secret(SVIX_SECRET).is_ok());
    assert!(provider("clerk").validate_secret("sk_test_abc").is_err());
    assert!(provider("standard").validate_secret("whsec_!!").is_err());
    assert!(provider("stripe")
        .validate_secret("whsec_abcdefghijklmnop")
        .is_ok());
    assert!(provider("stripe").validate_secret("whsec_abc").is_err());
    assert!(provider("stripe").validate_secret("sk_test_abc").is_err());
    assert!(provider("shopify")
        .validate_secret("shpss_abcdefghij")
        .is_ok());
    assert!(provider("shopify").validate_secret("shpss_abc").is_err());
    assert!(provider("workos").validate_secret("").is_err());
    assert!(provider("revenuecat")
        .validate_secret("Bearer abcdefghij")
        .is_ok());
    assert!(provider("revenuecat")
        .validate_secret("Bearer abc")
        .is_err());
    assert!(provider("brimble").validate_secret(" tok").is_err());
    assert!(provider("generic")
        .validate_secret("0123456789abcdef")
        .is_ok());
    assert!(provider("generic").validate_secret("x").is_err());
}

#[test]
fn errors_never_show_the_secret() {
    let err = provider("clerk")
        .validate_secret("whsec_s3cr3t!!")
        .unwrap_err();
    assert!(!err.contains("s3cr3t"), "{err}");
    let secret = format!("{:?}", Secret::new("s3cr3t"));
    assert!(!secret.contains("s3cr3t"));
}
