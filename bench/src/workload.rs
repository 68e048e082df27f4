//! Pre-built requests: signed Clerk and Stripe deliveries, API fires, and the order they
//! are sent in. Everything here happens before the clock starts.

use std::ops::Range;
use std::thread;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, StatusCode, Uri};
use serde_json::{json, Value};

use crate::sign::{stripe_signature, SvixSecret};

/// One request, ready to send as many times as needed.
pub struct Prepared {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Prepared {
    pub fn get(path: &str) -> Prepared {
        Prepared::new(Method::GET, path, HeaderMap::new(), Bytes::new())
    }

    pub fn new(method: Method, path: &str, mut headers: HeaderMap, body: Bytes) -> Prepared {
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let uri = path.parse().expect("a valid request path");
        Prepared {
            method,
            uri,
            headers,
            body,
        }
    }
}

/// Whether each request is sent once (unique deliveries) or the list is sent round and round.
pub enum Order {
    Once,
    Cycle,
}

/// The answer that counts as accepted.
#[derive(Clone, Copy)]
pub enum Expect {
    Success,
    Unauthorized,
}

impl Expect {
    pub fn met(self, status: StatusCode) -> bool {
        match self {
            Expect::Success => status.is_success(),
            Expect::Unauthorized => status == StatusCode::UNAUTHORIZED,
        }
    }
}

pub struct Workload {
    pub requests: Vec<Prepared>,
    pub order: Order,
    pub expect: Expect,
}

impl Workload {
    /// The `i`-th request to send, or `None` once a send-once list is used up.
    pub fn get(&self, i: usize) -> Option<&Prepared> {
        match self.order {
            Order::Once => self.requests.get(i),
            Order::Cycle => self.requests.get(i % self.requests.len()),
        }
    }
}

/// Builds requests `range` on every core (signing 1.5 KB bodies adds up).
fn build(range: Range<usize>, make: impl Fn(usize) -> Prepared + Sync) -> Vec<Prepared> {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = range.len().div_ceil(threads).max(1);
    let make = &make;
    thread::scope(|scope| {
        let parts: Vec<_> = (range.start..range.end)
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(range.end);
                scope.spawn(move || (start..end).map(make).collect::<Vec<_>>())
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("builder thread"))
            .collect()
    })
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("a valid header value")
}

/// What makes delivery `n` of a run unique, and plausible.
struct Person {
    key: String,
    email: String,
    first: &'static str,
    last: &'static str,
}

fn person(tag: &str, n: usize) -> Person {
    const FIRST: [&str; 8] = [
        "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances",
    ];
    const LAST: [&str; 8] = [
        "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
    ];
    let key = format!("{tag}{n:08}");
    Person {
        email: format!("bench.{key}@example.com"),
        key,
        first: FIRST[n % 8],
        last: LAST[(n / 8) % 8],
    }
}

/// Clerk deliveries `range` of `user.created`, Svix-signed with `secret` at `now`.
pub fn clerk(
    path: &str,
    secret: &SvixSecret,
    tag: &str,
    range: Range<usize>,
    now: i64,
) -> Vec<Prepared> {
    build(range, |n| {
        let p = person(tag, n);
        let id = format!("msg_{}", p.key);
        let body = serde_json::to_vec(&clerk_user_created(&p, now)).expect("JSON");
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("svix-id"), header(&id));
        headers.insert(
            HeaderName::from_static("svix-timestamp"),
            header(&now.to_string()),
        );
        headers.insert(
            HeaderName::from_static("svix-signature"),
            header(&secret.sign(&id, now, &body)),
        );
        Prepared::new(Method::POST, path, headers, body.into())
    })
}

/// Stripe deliveries `range` of `customer.created`, signed with `secret` at `now`.
pub fn stripe(path: &str, secret: &str, tag: &str, range: Range<usize>, now: i64) -> Vec<Prepared> {
    build(range, |n| {
        let p = person(tag, n);
        let body = serde_json::to_vec(&stripe_customer_created(&p, now)).expect("JSON");
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("stripe-signature"),
            header(&stripe_signature(secret, now, &body)),
        );
        Prepared::new(Method::POST, path, headers, body.into())
    })
}

/// API fires `range` of the trigger at `path`, each with its own Idempotency-Key.
pub fn api_fires(path: &str, api_key: &str, tag: &str, range: Range<usize>) -> Vec<Prepared> {
    let bearer = header(&format!("Bearer {api_key}"));
    build(range, |n| {
        let p = person(tag, n);
        let body = json!({"payload": {"email": p.email, "firstName": p.first, "lastName": p.last, "plan": "pro"}});
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, bearer.clone());
        headers.insert(
            HeaderName::from_static("idempotency-key"),
            header(&format!("fire_{}", p.key)),
        );
        Prepared::new(
            Method::POST,
            path,
            headers,
            serde_json::to_vec(&body).expect("JSON").into(),
        )
    })
}

/// A Clerk `user.created` event as Clerk sends it (about 1.5 KB), for person `p`.
fn clerk_user_created(p: &Person, now: i64) -> Value {
    let ms = now * 1000;
    let email_id = format!("idn_{}", p.key);
    json!({
        "data": {
            "backup_code_enabled": false,
            "banned": false,
            "birthday": "",
            "create_organization_enabled": true,
            "created_at": ms,
            "delete_self_enabled": true,
            "email_addresses": [{
                "created_at": ms,
                "email_address": p.email,
                "id": email_id,
                "linked_to": [],
                "object": "email_address",
                "reserved": false,
                "updated_at": ms,
                "verification": {"attempts": null, "expire_at": null, "status": "verified", "strategy": "email_code"}
            }],
            "external_accounts": [],
            "external_id": null,
            "first_name": p.first,
            "gender": "",
            "has_image": true,
            "id": format!("user_{}", p.key),
            "image_url": "https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJodHRwczovL2ltYWdlcy5jbGVyayJ9",
            "last_active_at": ms,
            "last_name": p.last,
            "last_sign_in_at": ms,
            "locked": false,
            "object": "user",
            "password_enabled": false,
            "phone_numbers": [],
            "primary_email_address_id": email_id,
            "primary_phone_number_id": null,
            "primary_web3_wallet_id": null,
            "private_metadata": {},
            "profile_image_url": "https://www.gravatar.com/avatar?d=mp",
            "public_metadata": {"plan": "trial", "signup_source": "pricing-page"},
            "saml_accounts": [],
            "totp_enabled": false,
            "two_factor_enabled": false,
            "unsafe_metadata": {"utm_campaign": "spring-launch", "utm_medium": "cpc", "utm_source": "newsletter"},
            "updated_at": ms,
            "username": null,
            "web3_wallets": []
        },
        "event_attributes": {"http_request": {
            "client_ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
        }},
        "instance_id": "ins_2bW9z2QmY1dQx7nS0Vd3kLp8rTa",
        "object": "event",
        "timestamp": ms,
        "type": "user.created"
    })
}

/// A Stripe `customer.created` event (about 1.5 KB), for person `p`.
fn stripe_customer_created(p: &Person, now: i64) -> Value {
    json!({
        "id": format!("evt_{}", p.key),
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "data": {"object": {
            "id": format!("cus_{}", p.key),
            "object": "customer",
            "address": {"city": "Berlin", "country": "DE", "line1": "Torstrasse 1", "line2": null, "postal_code": "10119", "state": null},
            "balance": 0,
            "created": now,
            "currency": "eur",
            "default_source": null,
            "delinquent": false,
            "description": "Signed up from the pricing page",
            "discount": null,
            "email": p.email,
            "invoice_prefix": "4F2A1C9B",
            "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null},
            "livemode": false,
            "metadata": {"clerk_user_id": format!("user_{}", p.key), "plan": "pro", "signup_source": "pricing-page", "utm_campaign": "spring-launch"},
            "name": format!("{} {}", p.first, p.last),
            "next_invoice_sequence": 1,
            "phone": "+49 30 1234567",
            "preferred_locales": ["en-GB", "de-DE"],
            "shipping": {"address": {"city": "Berlin", "country": "DE", "line1": "Torstrasse 1", "line2": null, "postal_code": "10119", "state": null}, "name": format!("{} {}", p.first, p.last), "phone": null},
            "subscriptions": {"object": "list", "data": [], "has_more": false, "total_count": 0, "url": format!("/v1/customers/cus_{}/subscriptions", p.key)},
            "tax_exempt": "none",
            "tax_ids": {"object": "list", "data": [], "has_more": false, "total_count": 0, "url": format!("/v1/customers/cus_{}/tax_ids", p.key)},
            "test_clock": null
        }},
        "livemode": false,
        "pending_webhooks": 2,
        "request": {"id": format!("req_{}", p.key), "idempotency_key": format!("9f1c2d3e-{}", p.key)},
        "type": "customer.created"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_unique_realistic_and_signed() {
        let secret = SvixSecret::new(b"0123456789abcdef0123456789abcdef");
        let list = clerk(
            "/api/integrations/clerk/webhook/con_x",
            &secret,
            "t1",
            0..5,
            1_700_000_000,
        );
        assert_eq!(list.len(), 5);
        let ids: std::collections::HashSet<_> =
            list.iter().map(|p| p.headers["svix-id"].clone()).collect();
        assert_eq!(ids.len(), 5);
        for p in &list {
            assert!(
                (1300..1800).contains(&p.body.len()),
                "clerk body is {} bytes",
                p.body.len()
            );
            let id = p.headers["svix-id"].to_str().unwrap();
            let sig = p.headers["svix-signature"].to_str().unwrap();
            assert!(secret.verify(id, 1_700_000_000, &p.body, sig));
        }
        let stripe = stripe("/s", "whsec_x", "t1", 3..4, 1_700_000_000);
        assert!(
            (1300..1800).contains(&stripe[0].body.len()),
            "stripe body is {} bytes",
            stripe[0].body.len()
        );
    }

    #[test]
    fn once_runs_out_and_cycle_does_not() {
        let fires = api_fires("/f", "key", "t", 0..2);
        let once = Workload {
            requests: fires,
            order: Order::Once,
            expect: Expect::Success,
        };
        assert!(once.get(1).is_some() && once.get(2).is_none());
        let cycle = Workload {
            requests: once.requests,
            order: Order::Cycle,
            expect: Expect::Success,
        };
        assert!(cycle.get(5).is_some());
    }
}
