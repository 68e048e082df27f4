//! Payload mapping: each provider module turns a verified body into a [`Delivery`] (the
//! event name, the dedupe id and the flat contact record) and declares the events, record
//! fields and identity fields its connections provision.

use std::borrow::Cow;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::provider::Scheme;
use crate::{
    Action, ContactRecord, Delivery, EventSpec, FieldKind, FieldSpec, Headers, MapError,
    SkipReason, Verified,
};

/// Declares the provider modules and [`REGISTRY`], one line per provider:
/// `slug => Scheme`. The module of the same name supplies the provider's `MAPPING`.
macro_rules! providers {
    ($($slug:ident => $scheme:ident,)+) => {
        $(mod $slug;)+

        /// Every provider firehook receives from: the only place one is named.
        pub(crate) static REGISTRY: &[ProviderDef] = &[
            $(ProviderDef {
                slug: stringify!($slug),
                scheme: Scheme::$scheme,
                mapping: &$slug::MAPPING,
            },)+
        ];
    };
}

providers! {
    clerk => Svix,
    stripe => Stripe,
    shopify => Shopify,
    stytch => Svix,
    supabase => SharedToken,
    workos => Workos,
    revenuecat => SharedToken,
    brevo => SharedToken,
    brimble => UrlToken,
    generic => GenericHmac,
    standard => Svix,
}

/// A registry entry.
pub(crate) struct ProviderDef {
    pub(crate) slug: &'static str,
    pub(crate) scheme: Scheme,
    pub(crate) mapping: &'static Mapping,
}

/// What a provider module declares: the triggers its connections provision, the fields of
/// its records, the fields that identify a contact without an email, and its mapper.
pub(crate) struct Mapping {
    pub(crate) events: &'static [EventSpec],
    pub(crate) fields: &'static [FieldSpec],
    pub(crate) identity: &'static [&'static str],
    pub(crate) map: fn(&Input) -> Result<Delivery, MapError>,
    /// The dedupe id `map` answers, where the headers or the raw bytes give it without
    /// parsing the body (a Svix message id, a hash of the body); `None` where it is read
    /// from the body. Lets the pipeline answer a repeat before parsing it.
    pub(crate) dedupe_before_parsing: fn(&Headers, &[u8]) -> Option<String>,
    pub(crate) options: ConnectionOptions,
}

/// The Svix / Standard Webhooks message id.
fn svix_id(headers: &Headers) -> Option<String> {
    header(headers, &["svix-id", "webhook-id"])
}

/// Hex SHA-256 of the verified body: the dedupe id of deliveries without an event id.
fn body_hash(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// The dedupe id of senders whose id is the Svix message id, else the body's hash.
fn svix_id_or_body_hash(headers: &Headers, raw: &[u8]) -> String {
    svix_id(headers).unwrap_or_else(|| body_hash(raw))
}

/// `dedupe_before_parsing` of senders whose deliveries carry no id: the body's hash.
fn body_hash_only(_: &Headers, raw: &[u8]) -> Option<String> {
    Some(body_hash(raw))
}

/// `dedupe_before_parsing` of senders whose id is read from the body.
fn read_from_body(_: &Headers, _: &[u8]) -> Option<String> {
    None
}

/// How a connection's `options` shape what it provisions (Supabase `tables`).
pub(crate) struct ConnectionOptions {
    pub(crate) validate: fn(&Value) -> Result<(), String>,
    /// The events the options add to the built-in ones.
    pub(crate) events: fn(&Value) -> Vec<EventSpec>,
}

impl ConnectionOptions {
    /// Options add nothing and need no provider-specific check.
    pub(crate) const NONE: ConnectionOptions = ConnectionOptions {
        validate: |_| Ok(()),
        events: |_| Vec::new(),
    };
}

pub(crate) fn map(
    verified: &Verified,
    options: &Value,
    now_unix: i64,
) -> Result<Delivery, MapError> {
    let body: Value = serde_json::from_slice(verified.body())
        .map_err(|e| MapError::InvalidJson(e.to_string()))?;
    if !body.is_object() {
        return Err(MapError::InvalidJson("expected a JSON object".to_owned()));
    }
    let input = Input {
        body,
        headers: verified.headers(),
        raw: verified.body(),
        options,
        now_unix,
    };
    let provider = verified.provider();
    let mut delivery = (provider.def().mapping.map)(&input)?;
    // An alias spelling fires its event's trigger under the canonical name.
    if let Some(spec) = provider
        .events()
        .iter()
        .find(|e| e.aliases.contains(&delivery.provider_event_key.as_str()))
    {
        delivery.event = spec.name.to_string();
    }
    Ok(delivery)
}

/// A delivery being mapped: its parsed body (always a JSON object) and what else a
/// provider module may read.
pub(crate) struct Input<'a> {
    body: Value,
    headers: &'a Headers,
    raw: &'a [u8],
    options: &'a Value,
    now_unix: i64,
}

impl Input<'_> {
    /// The event name at `path`, which every delivery must carry.
    fn event_at(&self, path: &'static str) -> Result<String, MapError> {
        text(&self.body, path)
            .map(str::to_owned)
            .ok_or(MapError::MissingEvent(path))
    }

    /// The Svix / Standard Webhooks message id.
    fn svix_id(&self) -> Option<String> {
        svix_id(self.headers)
    }

    /// An id carried in the body at `path`.
    fn body_id(&self, path: &str) -> Option<String> {
        id(&self.body, path)
    }

    /// Hex SHA-256 of the verified body: the dedupe id of deliveries without an event id.
    fn body_hash(&self) -> String {
        body_hash(self.raw)
    }

    /// The RFC 3339 time of a deletion: the payload's own time when it has one, else now.
    fn deleted_at(&self, payload_unix: Option<i64>) -> Option<String> {
        payload_unix
            .and_then(rfc3339)
            .or_else(|| rfc3339(self.now_unix))
    }
}

/// The contact record being built. Absent values are skipped, and the first value given
/// for a key wins, so fallbacks are written as successive calls.
#[derive(Default)]
struct Record {
    email: Option<String>,
    fields: Map<String, Value>,
}

impl Record {
    /// Takes `email` (trimmed) if it looks like an address and none was taken before.
    fn email(&mut self, email: Option<&str>) {
        if self.email.is_none() {
            if let Some(email) = email.and_then(plausible_email) {
                self.email = Some(email.to_owned());
                self.fields.insert("email".to_owned(), email.into());
            }
        }
    }

    fn set<T: Into<Value>>(&mut self, key: &str, value: Option<T>) {
        let Some(value) = value.map(Into::into) else {
            return;
        };
        if !value.is_null() && !self.fields.contains_key(key) {
            self.fields.insert(key.to_owned(), value);
        }
    }

    fn names(&mut self, first: Option<&str>, last: Option<&str>) {
        self.set("firstName", first);
        self.set("lastName", last);
    }

    /// Splits a display name at its first space: `Ada King Lovelace` -> `Ada`, `King Lovelace`.
    fn full_name(&mut self, name: Option<&str>) {
        let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
            return;
        };
        match name.split_once(char::is_whitespace) {
            Some((first, last)) => self.names(Some(first), Some(last.trim())),
            None => self.names(Some(name), None),
        }
    }

    /// Fires for the email; without one, through the first identity field that was set;
    /// else the delivery is ignored.
    fn into_action(self, identity: &[&str]) -> Action {
        let lookup = match &self.email {
            Some(_) => None,
            None => {
                let found = identity.iter().find_map(|key| {
                    let value = self.fields.get(*key)?.as_str()?;
                    Some(((*key).to_owned(), value.to_owned()))
                });
                if found.is_none() {
                    return Action::Ignore(SkipReason::NoEmail);
                }
                found
            }
        };
        Action::Fire(ContactRecord {
            email: self.email,
            lookup,
            fields: self.fields,
        })
    }
}

fn plausible_email(s: &str) -> Option<&str> {
    let s = s.trim();
    s.contains('@').then_some(s)
}

fn header(headers: &Headers, names: &[&str]) -> Option<String> {
    headers
        .get_any(names)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The value at a dotted `path` (numeric segments index arrays); null counts as absent.
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let found = path.split('.').try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })?;
    (!found.is_null()).then_some(found)
}

/// A non-empty string at `path`, trimmed.
fn text<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    at(value, path)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An id at `path` as a string: strings as sent, numbers (Shopify ids) in decimal.
fn id(value: &Value, path: &str) -> Option<String> {
    match at(value, path)? {
        Value::Number(n) => Some(n.to_string()),
        other => other
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    }
}

fn int(value: &Value, path: &str) -> Option<i64> {
    at(value, path)?.as_i64()
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`; `None` past year 9999.
fn rfc3339(unix: i64) -> Option<String> {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&format)
        .ok()
}

/// Parses an RFC 3339 timestamp (`2024-11-21T06:47:49.555Z`, `...+02:00`) to Unix seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// An event whose trigger name is the provider's own spelling.
const fn event(name: &'static str) -> EventSpec {
    spelled(name, name)
}

/// An event the provider also spells in other ways (`hard_bounce`, `hardBounce`).
const fn aliased(name: &'static str, aliases: &'static [&'static str]) -> EventSpec {
    EventSpec {
        name: Cow::Borrowed(name),
        provider_key: Cow::Borrowed(name),
        aliases,
    }
}

/// An event whose trigger name differs from the provider's spelling.
const fn spelled(name: &'static str, provider_key: &'static str) -> EventSpec {
    EventSpec {
        name: Cow::Borrowed(name),
        provider_key: Cow::Borrowed(provider_key),
        aliases: &[],
    }
}

const fn string_field(key: &'static str) -> FieldSpec {
    FieldSpec {
        key,
        kind: FieldKind::String,
    }
}

const fn number_field(key: &'static str) -> FieldSpec {
    FieldSpec {
        key,
        kind: FieldKind::Number,
    }
}

const fn boolean_field(key: &'static str) -> FieldSpec {
    FieldSpec {
        key,
        kind: FieldKind::Boolean,
    }
}

const fn array_field(key: &'static str) -> FieldSpec {
    FieldSpec {
        key,
        kind: FieldKind::Array,
    }
}

#[cfg(test)]
mod testing {
    //! Helpers shared by the provider modules' tests.

    use serde_json::{json, Value};

    use crate::{Action, ContactRecord, Delivery, FieldKind, Provider, Verified};

    /// The registry entry of `slug`.
    pub(in crate::providers) fn provider(slug: &str) -> Provider {
        Provider::from_slug(slug).unwrap_or_else(|| panic!("no provider {slug}"))
    }

    /// The `now_unix` the tests map with, and its RFC 3339 form.
    pub(super) const NOW: i64 = 1_700_000_000;
    pub(super) const NOW_RFC3339: &str = "2023-11-14T22:13:20Z";

    pub(super) fn map(provider: Provider, headers: &[(&str, &str)], body: &str) -> Delivery {
        map_with(provider, headers, body, &json!({}))
    }

    pub(super) fn map_with(
        provider: Provider,
        headers: &[(&str, &str)],
        body: &str,
        options: &Value,
    ) -> Delivery {
        let verified = Verified::for_test(provider, headers, body);
        let delivery = super::map(&verified, options, NOW).expect("maps");
        // Events a connection's options add map columns the provider cannot declare.
        let declared = provider.events().is_empty()
            || provider.events().iter().any(|e| e.name == delivery.event);
        if let (Action::Fire(record), true) = (&delivery.action, declared) {
            assert_declared(provider, record);
        }
        delivery
    }

    /// The record of a delivery that fires.
    pub(super) fn fired(delivery: &Delivery) -> &ContactRecord {
        match &delivery.action {
            Action::Fire(record) => record,
            Action::Ignore(reason) => panic!("ignored ({reason}), expected a fire"),
        }
    }

    pub(super) fn ignored(delivery: &Delivery) -> &'static str {
        match &delivery.action {
            Action::Ignore(reason) => reason.as_str(),
            Action::Fire(record) => panic!("fired {record:?}, expected ignored"),
        }
    }

    /// Every record field is declared in the provider's `fields()` with the kind it has,
    /// the record holds no nulls, and provider ids are strings.
    fn assert_declared(provider: Provider, record: &ContactRecord) {
        assert_eq!(
            record.email.as_deref(),
            record.fields.get("email").and_then(Value::as_str)
        );
        assert_eq!(record.email.is_none(), record.lookup.is_some());
        for (key, value) in &record.fields {
            if matches!(key.as_str(), "email" | "firstName" | "lastName") {
                assert!(value.is_string(), "{key} is {value}");
                continue;
            }
            let spec = provider
                .fields()
                .iter()
                .find(|f| f.key == key)
                .unwrap_or_else(|| panic!("{key} is not in {provider:?} fields()"));
            let kind = match value {
                Value::String(_) => FieldKind::String,
                Value::Number(_) => FieldKind::Number,
                Value::Bool(_) => FieldKind::Boolean,
                Value::Array(_) => FieldKind::Array,
                Value::Object(_) => FieldKind::Object,
                Value::Null => panic!("{key} is null"),
            };
            assert_eq!(spec.kind, kind, "{key}");
        }
    }

    /// The fired record's fields as one JSON value, for comparing whole records.
    pub(super) fn record_json(delivery: &Delivery) -> Value {
        Value::Object(fired(delivery).fields.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::testing::{fired, map, provider, NOW};
    use super::*;
    use crate::Provider;

    #[test]
    fn rejects_bodies_that_are_not_json_objects() {
        for body in ["not json", "[1, 2]", "\"text\""] {
            let verified = Verified::for_test(provider("clerk"), &[], body);
            assert!(matches!(
                super::map(&verified, &json!({}), NOW),
                Err(MapError::InvalidJson(_))
            ));
        }
    }

    #[test]
    fn declarations_are_consistent() {
        for p in Provider::all() {
            let names: HashSet<_> = p.events().iter().map(|e| &e.name).collect();
            assert_eq!(names.len(), p.events().len(), "{p:?} repeats an event");
            // An alias names one event only, and never what another event is spelled.
            let mut spellings: HashSet<&str> =
                p.events().iter().map(|e| &*e.provider_key).collect();
            for alias in p.events().iter().flat_map(|e| e.aliases) {
                assert!(spellings.insert(alias), "{p:?}: alias {alias} is taken");
            }
            let keys: HashSet<_> = p.fields().iter().map(|f| f.key).collect();
            assert_eq!(keys.len(), p.fields().len(), "{p:?} repeats a field");
            for key in &keys {
                assert!(key.starts_with(&format!("{}_", p.slug())), "{key}");
            }
            for identity in p.identity_fields() {
                assert!(
                    p.fields().contains(&string_field(identity)),
                    "{identity} is not a string field of {p:?}"
                );
            }
        }
        assert!(
            provider("generic").events().is_empty() && provider("standard").events().is_empty()
        );
    }

    #[test]
    fn slugs_are_unique_and_found() {
        let slugs: HashSet<_> = Provider::all().map(Provider::slug).collect();
        assert_eq!(slugs.len(), REGISTRY.len());
        for p in Provider::all() {
            assert_eq!(Provider::from_slug(p.slug()), Some(p));
        }
        assert_eq!(Provider::from_slug("Clerk"), None);
    }

    #[test]
    fn paths_read_objects_and_arrays_and_skip_nulls() {
        let v = json!({"a": {"b": [{"c": " x "}, 7]}, "n": null, "e": ""});
        assert_eq!(text(&v, "a.b.0.c"), Some("x"));
        assert_eq!(id(&v, "a.b.1"), Some("7".to_owned()));
        assert_eq!(at(&v, "n"), None);
        assert_eq!(text(&v, "e"), None);
        assert_eq!(at(&v, "a.b.x"), None);
    }

    #[test]
    fn formats_and_parses_rfc3339() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(rfc3339(NOW).as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(
            rfc3339(951_782_400).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(rfc3339(i64::MAX), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(NOW));
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123456789+01:00"),
            Some(NOW)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00.000Z"), Some(951_782_400));
        assert_eq!(parse_rfc3339("2023-11-14"), None);
        assert_eq!(parse_rfc3339("2023-13-14T22:13:20Z"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20+1:00"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:2éZ"), None);
    }

    #[test]
    fn record_keeps_the_first_value_and_skips_absent_ones() {
        let mut record = Record::default();
        record.email(Some("not an address"));
        record.email(Some("  Ada@Example.com "));
        record.email(Some("other@example.com"));
        record.set("clerk_user_id", None::<&str>);
        record.set("clerk_user_id", Some(Value::Null));
        record.set("clerk_user_id", Some("user_1"));
        record.set("clerk_user_id", Some("user_2"));
        record.full_name(Some("Ada King Lovelace"));
        let Action::Fire(contact) = record.into_action(&["clerk_user_id"]) else {
            panic!("ignored");
        };
        assert_eq!(contact.email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(contact.lookup, None);
        assert_eq!(
            Value::Object(contact.fields),
            json!({"email": "Ada@Example.com", "clerk_user_id": "user_1",
                   "firstName": "Ada", "lastName": "King Lovelace"})
        );
    }

    #[test]
    fn record_without_email_resolves_by_identity_or_is_ignored() {
        let mut record = Record::default();
        record.set("workos_directory_user_id", Some("directory_user_1"));
        let Action::Fire(contact) =
            record.into_action(&["workos_user_id", "workos_directory_user_id"])
        else {
            panic!("ignored");
        };
        assert_eq!(
            contact.lookup,
            Some((
                "workos_directory_user_id".to_owned(),
                "directory_user_1".to_owned()
            ))
        );
        assert_eq!(
            Record::default().into_action(&["clerk_user_id"]),
            Action::Ignore(SkipReason::NoEmail)
        );
    }

    #[test]
    fn map_dispatches_on_the_provider() {
        let body = r#"{"type": "user.created", "data": {"object": "user", "id": "user_1"}}"#;
        let delivery = map(provider("clerk"), &[("svix-id", "msg_1")], body);
        assert_eq!(delivery.event, "user.created");
        assert_eq!(fired(&delivery).lookup.as_ref().unwrap().1, "user_1");
    }
}
