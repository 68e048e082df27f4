//! Drives the adapters with the signed fixtures in `fixtures/` (see `fixtures/README.md`).
//!
//! Every fixture was signed by an implementation firehook did not write (the `svix` /
//! `standardwebhooks` packages, or the documented algorithm cross-checked by the official
//! Stripe and WorkOS SDKs), so these tests pin the adapters to the providers' real schemes.
//! Each test walks every fixture and reports all failures at once.

use std::fs;
use std::path::{Path, PathBuf};

use firehook_adapters::{
    dedupe_id_before_parsing, map, verify, Action, Delivery, Headers, Inbound, Provider, Secret,
    Verified, VerifyError,
};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Fixture {
    provider: String,
    event: String,
    provider_event_key: Option<String>,
    secret: String,
    timestamp: i64,
    headers: Map<String, Value>,
    query: Option<String>,
    body: String,
    #[serde(default)]
    options: Option<Value>,
    expect: Expect,
    /// `<provider>/<file>`, for messages.
    #[serde(skip)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
enum Expect {
    #[serde(rename_all = "camelCase")]
    Fire {
        email: Option<String>,
        lookup: Option<(String, String)>,
        dedupe_id: String,
        fields: Map<String, Value>,
        #[serde(default)]
        present: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    Ignore { reason: String, dedupe_id: String },
}

/// A secret of the same shape as the real ones that matches nothing (valid `whsec_` base64).
const DECOY_SECRET: &str = "whsec_n2RyTwxLbKLXyjsun78hKg6m3QtOcjpX";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The `fixtures/<slug>/` folders, by slug.
fn folders() -> Vec<(String, PathBuf)> {
    let mut folders: Vec<(String, PathBuf)> = fs::read_dir(fixtures_dir())
        .unwrap_or_else(|e| panic!("{}: {e}", fixtures_dir().display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|p| p.is_dir() && !p.ends_with("node_modules"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    folders.sort();
    folders
}

/// Every fixture of every folder; a folder must be named after a registry provider.
fn load_all() -> Vec<Fixture> {
    let mut out = Vec::new();
    for (slug, dir) in folders() {
        let provider = Provider::from_slug(&slug)
            .unwrap_or_else(|| panic!("fixtures/{slug}/ names no provider of the registry"));
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("readable directory entry").path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        for path in files {
            let text = fs::read_to_string(&path).expect("readable fixture");
            let mut fixture: Fixture =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            fixture.name = format!("{slug}/{}", path.file_name().unwrap().to_string_lossy());
            assert_eq!(fixture.provider, provider.slug(), "{}", fixture.name);
            out.push(fixture);
        }
    }
    out
}

impl Fixture {
    fn provider(&self) -> Provider {
        Provider::from_slug(&self.provider).expect("known provider slug")
    }

    fn header_list(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(name, value)| {
                let value = value
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: header {name} is not a string", self.name));
                (name.clone(), value.to_owned())
            })
            .collect()
    }

    fn headers(&self) -> Headers {
        headers_from(&self.header_list())
    }

    fn options(&self) -> Value {
        self.options
            .clone()
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// Verifies with the fixture's own headers and query, `body` and `secrets`, at `now`.
    fn verify_with(
        &self,
        headers: &Headers,
        query: Option<&str>,
        body: &[u8],
        secrets: &[Secret],
        now: i64,
    ) -> Result<Verified, VerifyError> {
        let inbound = Inbound {
            headers,
            body,
            query,
        };
        verify(self.provider(), &inbound, secrets, now)
    }

    fn verify_at(&self, now: i64) -> Result<Verified, VerifyError> {
        self.verify_with(
            &self.headers(),
            self.query.as_deref(),
            self.body.as_bytes(),
            &[Secret::new(self.secret.clone())],
            now,
        )
    }
}

fn headers_from(list: &[(String, String)]) -> Headers {
    list.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
}

/// Runs `check` on every fixture and fails once, listing every fixture that failed.
fn for_each_fixture(what: &str, mut check: impl FnMut(&Fixture) -> Result<(), String>) {
    let fixtures = load_all();
    let failures: Vec<String> = fixtures
        .iter()
        .filter_map(|f| check(f).err().map(|e| format!("  {}: {e}", f.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {} fixtures failed:\n{}",
        failures.len(),
        fixtures.len(),
        failures.join("\n")
    );
}

/// Emails are compared as contacts are keyed: trimmed and lower-cased. Whether the adapter
/// or the pipeline lower-cases them is not part of the contract.
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn same_field(key: &str, expected: &Value, actual: &Value) -> bool {
    match (key, expected, actual) {
        ("email", Value::String(e), Value::String(a)) => normalize_email(e) == normalize_email(a),
        _ => expected == actual,
    }
}

fn check_delivery(fixture: &Fixture, delivery: &Delivery) -> Result<(), String> {
    let mut problems = Vec::new();
    if delivery.event != fixture.event {
        problems.push(format!(
            "event is {:?}, expected {:?}",
            delivery.event, fixture.event
        ));
    }
    if let Some(key) = &fixture.provider_event_key {
        if &delivery.provider_event_key != key {
            problems.push(format!(
                "providerEventKey is {:?}, expected {key:?}",
                delivery.provider_event_key
            ));
        }
    }
    match (&fixture.expect, &delivery.action) {
        (
            Expect::Fire {
                email,
                lookup,
                dedupe_id,
                fields,
                present,
            },
            Action::Fire(record),
        ) => {
            if &delivery.dedupe_id != dedupe_id {
                problems.push(format!(
                    "dedupe id is {:?}, expected {dedupe_id:?}",
                    delivery.dedupe_id
                ));
            }
            match (email, &record.email) {
                (None, None) => {}
                (Some(e), Some(a)) if normalize_email(e) == normalize_email(a) => {}
                (e, a) => problems.push(format!("email is {a:?}, expected {e:?}")),
            }
            // `lookup: null` with an email: the email is enough, a lookup is not required.
            if let Some((key, value)) = lookup {
                let expected = Some((key.clone(), value.clone()));
                if record.lookup != expected {
                    problems.push(format!(
                        "lookup is {:?}, expected {expected:?}",
                        record.lookup
                    ));
                }
            } else if email.is_none() {
                problems.push("the fixture has neither an email nor a lookup".to_owned());
            }
            for (key, expected) in fields {
                match record.fields.get(key) {
                    Some(actual) if same_field(key, expected, actual) => {}
                    Some(actual) => {
                        problems.push(format!("{key} is {actual}, expected {expected}"))
                    }
                    None => problems.push(format!("{key} is missing, expected {expected}")),
                }
            }
            for key in present {
                match record.fields.get(key) {
                    Some(Value::String(s)) if !s.is_empty() => {}
                    other => {
                        problems.push(format!("{key} is {other:?}, expected a non-empty string"))
                    }
                }
            }
            if record.fields.values().any(Value::is_null) {
                problems.push("the record holds a null (absent values must be left out)".into());
            }
        }
        (Expect::Ignore { reason, dedupe_id }, Action::Ignore(actual)) => {
            if actual.as_str() != reason {
                problems.push(format!("ignored with {actual:?}, expected {reason:?}"));
            }
            if &delivery.dedupe_id != dedupe_id {
                problems.push(format!(
                    "dedupe id is {:?}, expected {dedupe_id:?}",
                    delivery.dedupe_id
                ));
            }
        }
        (Expect::Fire { .. }, Action::Ignore(reason)) => {
            problems.push(format!("ignored ({reason}), expected a fire"));
        }
        (Expect::Ignore { reason, .. }, Action::Fire(record)) => {
            problems.push(format!("fired {record:?}, expected ignored ({reason})"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn fixture_folders_match_the_registry() {
    let folders: Vec<String> = folders().into_iter().map(|(slug, _)| slug).collect();
    for provider in Provider::all() {
        assert!(
            folders.iter().any(|f| f == provider.slug()),
            "{} has no fixtures/{}/ folder",
            provider.slug(),
            provider.slug()
        );
    }
    for folder in &folders {
        assert!(
            Provider::from_slug(folder).is_some(),
            "fixtures/{folder}/ names no provider of the registry"
        );
    }
}

#[test]
fn every_provider_has_at_least_three_fixtures() {
    let fixtures = load_all();
    for provider in Provider::all() {
        let count = fixtures.iter().filter(|f| f.provider() == provider).count();
        assert!(count >= 3, "{}: only {count} fixtures", provider.slug());
    }
}

#[test]
fn fixtures_verify_at_their_timestamp_and_map_as_expected() {
    for_each_fixture("verify + map", |f| {
        let verified = f
            .verify_at(f.timestamp)
            .map_err(|e| format!("verify failed: {e} ({})", e.reason()))?;
        let delivery =
            map(&verified, &f.options(), f.timestamp).map_err(|e| format!("map failed: {e}"))?;
        check_delivery(f, &delivery)
    });
}

/// The pipeline answers a repeat from the dedupe id it reads before parsing, so that id
/// must be the one mapping gives, wherever a provider has one.
#[test]
fn the_dedupe_id_known_before_parsing_is_the_mapped_one() {
    let mut known = std::collections::BTreeSet::new();
    for_each_fixture("dedupe id before parsing", |f| {
        let verified = f
            .verify_at(f.timestamp)
            .map_err(|e| format!("verify failed: {e}"))?;
        let delivery =
            map(&verified, &f.options(), f.timestamp).map_err(|e| format!("map failed: {e}"))?;
        match dedupe_id_before_parsing(&verified) {
            None => Ok(()),
            Some(id) if id == delivery.dedupe_id => {
                known.insert(f.provider.clone());
                Ok(())
            }
            Some(id) => Err(format!(
                "{id:?} before parsing, {:?} mapped",
                delivery.dedupe_id
            )),
        }
    });
    let expected = [
        "brevo", "brimble", "clerk", "shopify", "standard", "stytch", "supabase",
    ];
    assert_eq!(known, expected.map(String::from).into_iter().collect());
}

#[test]
fn fired_events_are_provisioned_as_triggers() {
    // Generic and standard receivers take their events from the connection's options.
    for_each_fixture("provisioned events", |f| {
        let provider = f.provider();
        let events = provider.events_for(&f.options());
        if events.is_empty() || matches!(f.expect, Expect::Ignore { .. }) {
            return Ok(());
        }
        let spec = events
            .iter()
            .find(|e| e.name == f.event)
            .ok_or_else(|| format!("{} is not among {provider:?}'s events", f.event))?;
        match &f.provider_event_key {
            Some(key) if !spec.is_spelled(key) => Err(format!(
                "{} is spelled {:?} (or one of {:?}), the fixture says {key:?}",
                f.event, spec.provider_key, spec.aliases
            )),
            _ => Ok(()),
        }
    });
}

#[test]
fn any_active_secret_verifies() {
    for_each_fixture("secret rotation", |f| {
        let real = Secret::new(f.secret.clone());
        let decoy = Secret::new(DECOY_SECRET);
        for secrets in [[decoy.clone(), real.clone()], [real, decoy]] {
            f.verify_with(
                &f.headers(),
                f.query.as_deref(),
                f.body.as_bytes(),
                &secrets,
                f.timestamp,
            )
            .map_err(|e| format!("with two active secrets: {e}"))?;
        }
        Ok(())
    });
}

#[test]
fn a_wrong_secret_fails_verification() {
    for_each_fixture("wrong secret", |f| {
        let result = f.verify_with(
            &f.headers(),
            f.query.as_deref(),
            f.body.as_bytes(),
            &[Secret::new(DECOY_SECRET)],
            f.timestamp,
        );
        match result {
            Err(_) => Ok(()),
            Ok(_) => Err("verified with a secret it was not signed with".into()),
        }
    });
}

#[test]
fn a_one_byte_tampered_body_fails_verification() {
    for_each_fixture("tampered body", |f| {
        if !f.provider().scheme().signs_body() {
            // The token does not cover the body; see the tampered-token test.
            return Ok(());
        }
        let body = f.body.as_bytes();
        for at in [0, body.len() / 2, body.len() - 1] {
            let mut tampered = body.to_vec();
            tampered[at] ^= 0x01;
            let result = f.verify_with(
                &f.headers(),
                f.query.as_deref(),
                &tampered,
                &[Secret::new(f.secret.clone())],
                f.timestamp,
            );
            match result {
                Err(VerifyError::InvalidSignature) => {}
                Err(other) => {
                    return Err(format!(
                        "byte {at} flipped: {other}, expected invalid_signature"
                    ))
                }
                Ok(_) => return Err(format!("byte {at} flipped and it still verified")),
            }
        }
        Ok(())
    });
}

#[test]
fn a_tampered_token_fails_verification() {
    for_each_fixture("tampered token", |f| {
        if f.provider().scheme().signs_body() {
            return Ok(());
        }
        let secret = [Secret::new(f.secret.clone())];
        let flip_last = |s: &str| {
            let mut bytes = s.as_bytes().to_vec();
            *bytes.last_mut().unwrap() ^= 0x01;
            String::from_utf8(bytes).unwrap()
        };
        if let Some(query) = &f.query {
            let tampered = flip_last(query);
            if f.verify_with(
                &f.headers(),
                Some(&tampered),
                f.body.as_bytes(),
                &secret,
                f.timestamp,
            )
            .is_ok()
            {
                return Err(format!("verified with query {tampered:?}"));
            }
            if f.verify_with(&f.headers(), None, f.body.as_bytes(), &secret, f.timestamp)
                .is_ok()
            {
                return Err("verified without the query".into());
            }
        } else {
            let list = f.header_list();
            let tampered: Vec<(String, String)> = list
                .iter()
                .map(|(n, v)| {
                    let v = if n.eq_ignore_ascii_case("authorization") {
                        flip_last(v)
                    } else {
                        v.clone()
                    };
                    (n.clone(), v)
                })
                .collect();
            let without: Vec<(String, String)> = list
                .iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case("authorization"))
                .cloned()
                .collect();
            for (what, headers) in [("a tampered", tampered), ("no", without)] {
                let headers = headers_from(&headers);
                if f.verify_with(
                    &headers,
                    f.query.as_deref(),
                    f.body.as_bytes(),
                    &secret,
                    f.timestamp,
                )
                .is_ok()
                {
                    return Err(format!("verified with {what} Authorization header"));
                }
            }
        }
        Ok(())
    });
}

#[test]
fn clock_schemes_reject_stale_and_future_timestamps() {
    for_each_fixture("clock", |f| {
        let Some(tolerance) = f.provider().scheme().clock_tolerance_secs() else {
            return Ok(());
        };
        let tolerance = i64::try_from(tolerance).expect("a tolerance of seconds");
        let mut problems = Vec::new();
        let mut expect_rejected = |offset: i64| match f.verify_at(f.timestamp + offset) {
            Err(VerifyError::TimestampOutOfTolerance) => {}
            Err(other) => problems.push(format!(
                "clock {offset:+} s: {other}, expected timestamp_out_of_tolerance"
            )),
            Ok(_) => problems.push(format!("clock {offset:+} s: still verified")),
        };
        // The tolerance holds either way: a timestamp in the future is refused too.
        expect_rejected(tolerance + 1);
        expect_rejected(tolerance + 3600);
        expect_rejected(-(tolerance + 1));
        // Within the tolerance the same delivery still verifies.
        for offset in [tolerance - 10, -(tolerance - 10)] {
            if let Err(e) = f.verify_at(f.timestamp + offset) {
                problems.push(format!("clock {offset:+} s: {e}, expected it to verify"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    });
}

#[test]
fn schemes_without_a_timestamp_ignore_the_clock() {
    for_each_fixture("clock-free schemes", |f| {
        if f.provider().scheme().clock_tolerance_secs().is_some() {
            return Ok(());
        }
        f.verify_at(f.timestamp + 365 * 86_400)
            .map(drop)
            .map_err(|e| format!("a year later: {e}"))
    });
}

/// Providers whose fixtures cover every event of their documentation (Brevo: seeds 002 and
/// 004; Brimble: seed 001): each spelling an `EventSpec` accepts must have a fixture sending it.
const EVERY_EVENT_HAS_A_FIXTURE: &[&str] = &["brevo", "brimble"];

#[test]
fn every_spelling_of_fully_covered_providers_has_a_fixture() {
    let fixtures = load_all();
    let mut missing = Vec::new();
    for slug in EVERY_EVENT_HAS_A_FIXTURE {
        let provider = Provider::from_slug(slug).expect("a registry provider");
        for spec in provider.events() {
            for spelling in std::iter::once(&*spec.provider_key).chain(spec.aliases.iter().copied())
            {
                let sent = fixtures.iter().any(|f| {
                    f.provider() == provider
                        && f.event == spec.name
                        && f.provider_event_key.as_deref() == Some(spelling)
                });
                if !sent {
                    missing.push(format!("{slug}: {} spelled {spelling:?}", spec.name));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no fixture sends:\n{}",
        missing.join("\n")
    );
}
