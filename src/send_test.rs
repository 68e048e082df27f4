//! `firehook send-test`: a realistic delivery of a provider's event, made fresh (a new
//! email and event id), signed with the connection's own secret and posted to its receive
//! URL, like `stripe trigger`. The samples are the bundled signed fixtures, compiled in.

use anyhow::{bail, Context};
use serde_json::Value;

use crate::clock::Clock;
use crate::config::Settings;
use crate::startup;

/// Every bundled fixture (`fixtures/<provider>/<event>.json`).
const FIXTURES: &[&str] = &[
    include_str!("../fixtures/brevo/delivered.json"),
    include_str!("../fixtures/brevo/hard_bounce.json"),
    include_str!("../fixtures/brevo/opened.json"),
    include_str!("../fixtures/brimble/deployment.success.json"),
    include_str!("../fixtures/brimble/payment.failed.json"),
    include_str!("../fixtures/brimble/payment.successful.json"),
    include_str!("../fixtures/brimble/subscription.created.json"),
    include_str!("../fixtures/clerk/user.created.json"),
    include_str!("../fixtures/clerk/user.deleted.json"),
    include_str!("../fixtures/clerk/user.updated.json"),
    include_str!("../fixtures/generic/bounced.json"),
    include_str!("../fixtures/generic/delivered.json"),
    include_str!("../fixtures/generic/opened.json"),
    include_str!("../fixtures/revenuecat/CANCELLATION.json"),
    include_str!("../fixtures/revenuecat/INITIAL_PURCHASE.json"),
    include_str!("../fixtures/revenuecat/RENEWAL.json"),
    include_str!("../fixtures/shopify/customers.create.json"),
    include_str!("../fixtures/shopify/orders.create.json"),
    include_str!("../fixtures/shopify/orders.paid.json"),
    include_str!("../fixtures/standard/invoice.paid.json"),
    include_str!("../fixtures/standard/subscription.activated.json"),
    include_str!("../fixtures/standard/user.created.json"),
    include_str!("../fixtures/stripe/checkout.session.completed.json"),
    include_str!("../fixtures/stripe/customer.created.json"),
    include_str!("../fixtures/stripe/customer.deleted.json"),
    include_str!("../fixtures/stripe/customer.subscription.created.json"),
    include_str!("../fixtures/stripe/invoice.payment_failed.json"),
    include_str!("../fixtures/stytch/dashboard.user.create.json"),
    include_str!("../fixtures/stytch/direct.member.create.json"),
    include_str!("../fixtures/stytch/direct.user.create.json"),
    include_str!("../fixtures/stytch/direct.user.update.json"),
    include_str!("../fixtures/supabase/DELETE.json"),
    include_str!("../fixtures/supabase/INSERT.json"),
    include_str!("../fixtures/supabase/UPDATE.email_confirmed.json"),
    include_str!("../fixtures/supabase/UPDATE.signed_in.json"),
    include_str!("../fixtures/workos/dsync.user.created.json"),
    include_str!("../fixtures/workos/dsync.user.deleted.json"),
    include_str!("../fixtures/workos/dsync.user.updated.json"),
    include_str!("../fixtures/workos/user.created.json"),
];

/// What to send.
pub struct SendTest {
    pub provider: String,
    pub connection_id: String,
    pub event: Option<String>,
    pub email: Option<String>,
    /// The gateway's base URL; default: `server.public_url`, else the bind address.
    pub url: Option<String>,
}

/// The fixture of `provider` for `event`, or its first event that fires.
fn sample(provider: &str, event: Option<&str>) -> anyhow::Result<Value> {
    let samples: Vec<Value> = FIXTURES
        .iter()
        .map(|text| serde_json::from_str::<Value>(text).expect("bundled fixtures are JSON"))
        .filter(|f| f["provider"] == provider)
        .collect();
    let found = match event {
        Some(event) => samples.iter().find(|f| f["event"] == event),
        None => samples
            .iter()
            .find(|f| f["expect"]["action"] == "fire" && f["expect"]["email"].is_string()),
    };
    if let Some(found) = found {
        return Ok(found.clone());
    }
    let events: Vec<&str> = samples.iter().filter_map(|f| f["event"].as_str()).collect();
    bail!(
        "no sample for {provider} {}; samples: {}",
        event.unwrap_or("(any event)"),
        events.join(", ")
    )
}

/// Replaces, anywhere in `value`, strings equal to `from` (ignoring case) with `to`.
fn replace_strings(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s.eq_ignore_ascii_case(from) => *s = to.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, from, to)),
        _ => {}
    }
}

/// A fresh id shaped like `old`: its prefix up to the last `_`, then a new ULID.
fn fresh_id(old: &str) -> String {
    let ulid = ulid::Ulid::new().to_string();
    match old.rsplit_once('_') {
        Some((prefix, _)) => format!("{prefix}_{ulid}"),
        None => ulid.to_lowercase(),
    }
}

pub async fn run(settings: &Settings, test: SendTest) -> anyhow::Result<()> {
    // Opened like the other commands: on a database `serve` has not set up yet, the
    // answer is "no connection", not a missing table.
    let store = startup::open_store(settings).await?;
    let connection = store
        .find_connection(&test.connection_id)
        .await?
        .with_context(|| format!("no connection {}", test.connection_id))?;
    if connection.provider != test.provider {
        bail!(
            "connection {} is a {} connection, not {}",
            connection.id,
            connection.provider,
            test.provider
        );
    }
    if !connection.enabled {
        bail!(
            "connection {} is disabled: its receive URL refuses deliveries; enable it with \
             PATCH /v1/integrations/connections/{} {{\"enabled\": true}}",
            connection.id,
            connection.id
        );
    }
    let provider = adapters::Provider::from_slug(&connection.provider)
        .with_context(|| format!("unknown provider {}", connection.provider))?;
    // The newest secret: the one a provider signs with after a rotation.
    let secret = store
        .active_secrets(&connection.id)
        .await?
        .pop()
        .with_context(|| format!("connection {} has no active secret", connection.id))?;
    store.close().await;

    let fixture = sample(provider.slug(), test.event.as_deref())?;
    let mut body: Value = serde_json::from_str(fixture["body"].as_str().unwrap_or("{}"))?;
    let mut headers: Vec<(String, String)> = fixture["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(n, v)| Some((n.to_ascii_lowercase(), v.as_str()?.to_owned())))
        .collect();
    let email = test.email.unwrap_or_else(|| {
        format!(
            "send-test+{}@example.com",
            ulid::Ulid::new().to_string().to_lowercase()
        )
    });
    if let Some(old) = fixture["expect"]["email"].as_str() {
        replace_strings(&mut body, old, &email);
    }
    let old_id = fixture["expect"]["dedupeId"].as_str().unwrap_or_default();
    let id = fresh_id(old_id);
    if !old_id.is_empty() {
        replace_strings(&mut body, old_id, &id);
        for (_, value) in headers.iter_mut().filter(|(_, v)| v.as_str() == old_id) {
            value.clone_from(&id);
        }
    }
    let body = serde_json::to_vec(&body)?;
    let now_unix = Clock::system().now_ms() / 1000;
    let signed = adapters::sign(
        provider,
        &adapters::Secret::new(secret.secret),
        &id,
        now_unix,
        &body,
    )
    .context("the connection's secret does not sign for its provider")?;
    // The fixture's own authentication is replaced by this signature.
    let replaced = |name: &str| {
        signed.headers.iter().any(|(n, _)| n == name)
            || name.ends_with("-timestamp")
            || name.ends_with("-signature")
            || name == "authorization"
    };
    headers.retain(|(name, _)| !replaced(name));
    headers.extend(signed.headers);

    let base = match test.url {
        Some(url) => url,
        None if !settings.server.public_url.is_empty() => settings.server.public_url.clone(),
        None => format!("http://{}", settings.server.bind),
    };
    let mut url = format!(
        "{}/api/integrations/{}/webhook/{}",
        base.trim_end_matches('/'),
        provider.slug(),
        connection.id
    );
    if let Some(query) = &signed.query {
        url = format!("{url}?{query}");
    }
    let mut request = reqwest::Client::new().post(&url).body(body);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("posting to {}", url.split('?').next().unwrap_or(&url)))?;
    let status = response.status();
    let answer: Value = serde_json::from_str(&response.text().await?).unwrap_or(Value::Null);
    println!(
        "sent {} {} for {email} -> HTTP {}",
        provider.slug(),
        fixture["event"].as_str().unwrap_or_default(),
        status.as_u16()
    );
    if !status.is_success() {
        bail!("the gateway refused the delivery: {answer}");
    }
    println!("status {}", answer["status"].as_str().unwrap_or("?"));
    println!("delivery {}", answer["deliveryId"].as_str().unwrap_or("?"));
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
