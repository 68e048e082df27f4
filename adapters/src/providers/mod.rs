//! Payload mapping: each provider module turns a verified body into a [`Delivery`] (the
//! event name, the dedupe id and the flat contact record) and declares the events, record
//! fields and identity fields its connections provision.

mod brevo;
mod brimble;
mod clerk;
mod generic;
mod revenuecat;
mod shopify;
mod standard;
mod stripe;
mod stytch;
mod supabase;
mod workos;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{
    Action, ContactRecord, Delivery, EventSpec, FieldKind, FieldSpec, Headers, MapError, Provider,
    Verified,
};

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
    match verified.provider() {
        Provider::Clerk => clerk::map(&input),
        Provider::Stripe => stripe::map(&input),
        Provider::Shopify => shopify::map(&input),
        Provider::Stytch => stytch::map(&input),
        Provider::Supabase => supabase::map(&input),
        Provider::Workos => workos::map(&input),
        Provider::Revenuecat => revenuecat::map(&input),
        Provider::Brevo => brevo::map(&input),
        Provider::Brimble => brimble::map(&input),
        Provider::Generic => generic::map(&input),
        Provider::Standard => standard::map(&input),
    }
}

pub(crate) fn events(p: Provider) -> &'static [EventSpec] {
    match p {
        Provider::Clerk => clerk::EVENTS,
        Provider::Stripe => stripe::EVENTS,
        Provider::Shopify => shopify::EVENTS,
        Provider::Stytch => stytch::EVENTS,
        Provider::Supabase => supabase::EVENTS,
        Provider::Workos => workos::EVENTS,
        Provider::Revenuecat => revenuecat::EVENTS,
        Provider::Brevo => brevo::EVENTS,
        Provider::Brimble => brimble::EVENTS,
        Provider::Generic | Provider::Standard => &[],
    }
}

pub(crate) fn fields(p: Provider) -> &'static [FieldSpec] {
    match p {
        Provider::Clerk => clerk::FIELDS,
        Provider::Stripe => stripe::FIELDS,
        Provider::Shopify => shopify::FIELDS,
        Provider::Stytch => stytch::FIELDS,
        Provider::Supabase => supabase::FIELDS,
        Provider::Workos => workos::FIELDS,
        Provider::Revenuecat => revenuecat::FIELDS,
        Provider::Brevo => brevo::FIELDS,
        Provider::Brimble => brimble::FIELDS,
        Provider::Generic | Provider::Standard => &[],
    }
}

pub(crate) fn identity_fields(p: Provider) -> &'static [&'static str] {
    match p {
        Provider::Clerk => clerk::IDENTITY,
        Provider::Stripe => stripe::IDENTITY,
        Provider::Shopify => shopify::IDENTITY,
        Provider::Stytch => stytch::IDENTITY,
        Provider::Supabase => supabase::IDENTITY,
        Provider::Workos => workos::IDENTITY,
        Provider::Revenuecat => revenuecat::IDENTITY,
        Provider::Brimble => brimble::IDENTITY,
        Provider::Brevo | Provider::Generic | Provider::Standard => &[],
    }
}

/// A delivery being mapped: its parsed body (always a JSON object) and what else a
/// provider module may read.
struct Input<'a> {
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
        header(self.headers, &["svix-id", "webhook-id"])
    }

    /// An id carried in the body at `path`.
    fn body_id(&self, path: &str) -> Option<String> {
        id(&self.body, path)
    }

    /// Hex SHA-256 of the verified body: the dedupe id of deliveries without an event id.
    fn body_hash(&self) -> String {
        hex::encode(Sha256::digest(self.raw))
    }

    /// The RFC 3339 time of a deletion: the payload's own time when it has one, else now.
    fn deleted_at(&self, payload_unix: Option<i64>) -> String {
        rfc3339(payload_unix.unwrap_or(self.now_unix))
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
                    return Action::Ignore("no_email".to_owned());
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

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parses an RFC 3339 timestamp (`2024-11-21T06:47:49.555Z`, `...+02:00`) to Unix seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date_time, zone) = (s.get(..19)?, s.get(19..)?);
    let field = |range: std::ops::Range<usize>| digits(date_time.get(range)?);
    let b = date_time.as_bytes();
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let zone = match zone.strip_prefix('.') {
        Some(fraction) => fraction.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => zone,
    };
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (hours, minutes) = zone.get(1..)?.split_once(':')?;
            if hours.len() != 2 || minutes.len() != 2 {
                return None;
            }
            sign * (digits(hours)? * 3600 + digits(minutes)? * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    // A leap second (:60) counts as the second before it.
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset)
}

/// A non-empty run of ASCII digits as a number (no sign, unlike `str::parse`).
fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

// Howard Hinnant's civil-calendar algorithms (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An event whose trigger name is the provider's own spelling.
const fn event(name: &'static str) -> EventSpec {
    EventSpec {
        name,
        provider_key: name,
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
        if let Action::Fire(record) = &delivery.action {
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

    pub(super) fn ignored(delivery: &Delivery) -> &str {
        match &delivery.action {
            Action::Ignore(reason) => reason,
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

    use super::testing::{fired, map, NOW};
    use super::*;

    #[test]
    fn rejects_bodies_that_are_not_json_objects() {
        for body in ["not json", "[1, 2]", "\"text\""] {
            let verified = Verified::for_test(Provider::Clerk, &[], body);
            assert!(matches!(
                super::map(&verified, &json!({}), NOW),
                Err(MapError::InvalidJson(_))
            ));
        }
    }

    #[test]
    fn declarations_are_consistent() {
        for p in Provider::ALL {
            let names: HashSet<_> = events(p).iter().map(|e| e.name).collect();
            assert_eq!(names.len(), events(p).len(), "{p:?} repeats an event");
            let keys: HashSet<_> = fields(p).iter().map(|f| f.key).collect();
            assert_eq!(keys.len(), fields(p).len(), "{p:?} repeats a field");
            for key in &keys {
                assert!(key.starts_with(&format!("{}_", p.slug())), "{key}");
            }
            for identity in identity_fields(p) {
                assert!(
                    fields(p).contains(&string_field(identity)),
                    "{identity} is not a string field of {p:?}"
                );
            }
        }
        assert!(events(Provider::Generic).is_empty() && events(Provider::Standard).is_empty());
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
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(NOW), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
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
            Action::Ignore("no_email".to_owned())
        );
    }

    #[test]
    fn map_dispatches_on_the_provider() {
        let body = r#"{"type": "user.created", "data": {"object": "user", "id": "user_1"}}"#;
        let delivery = map(Provider::Clerk, &[("svix-id", "msg_1")], body);
        assert_eq!(delivery.event, "user.created");
        assert_eq!(fired(&delivery).lookup.as_ref().unwrap().1, "user_1");
    }
}
