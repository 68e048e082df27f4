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

#[test]
fn svix_providers_verify_and_keep_the_delivery() {
    for (provider, prefix) in [
        (Provider::Clerk, "svix"),
        (Provider::Stytch, "svix"),
        (Provider::Standard, "webhook"),
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
    for provider in Provider::ALL {
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
    assert!(verify(Provider::Brimble, &inbound, &secrets, 0).is_ok());
    assert_eq!(
        verify(Provider::Supabase, &inbound, &secrets, 0).unwrap_err(),
        VerifyError::MissingHeader("authorization")
    );
}

#[test]
fn validate_secret_per_provider() {
    assert!(Provider::Clerk.validate_secret(SVIX_SECRET).is_ok());
    assert!(Provider::Clerk.validate_secret("sk_test_abc").is_err());
    assert!(Provider::Standard.validate_secret("whsec_!!").is_err());
    assert!(Provider::Stripe.validate_secret("whsec_abc").is_ok());
    assert!(Provider::Stripe.validate_secret("sk_test_abc").is_err());
    assert!(Provider::Shopify.validate_secret("shpss_abc").is_ok());
    assert!(Provider::Workos.validate_secret("").is_err());
    assert!(Provider::Revenuecat.validate_secret("Bearer abc").is_ok());
    assert!(Provider::Brimble.validate_secret(" tok").is_err());
    assert!(Provider::Generic.validate_secret("x").is_ok());
}

#[test]
fn errors_never_show_the_secret() {
    let err = Provider::Clerk
        .validate_secret("whsec_s3cr3t!!")
        .unwrap_err();
    assert!(!err.contains("s3cr3t"), "{err}");
    let secret = format!("{:?}", Secret::new("s3cr3t"));
    assert!(!secret.contains("s3cr3t"));
}
