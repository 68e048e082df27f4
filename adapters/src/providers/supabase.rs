//! Supabase database webhooks: `{type, table, schema, record, old_record}`. Only rows of
//! `auth.users` are contacts; an UPDATE fires the first transition it matches.

use serde_json::Value;

use super::{ConnectionOptions, Mapping, at, id, string_field, text, Input, Record};
use crate::{Action, Delivery, EventSpec, FieldSpec, MapError};

pub(super) const EVENTS: &[EventSpec] = &[
    row("auth.user.created", "INSERT"),
    row("auth.user.updated", "UPDATE"),
    row("auth.user.deleted", "DELETE"),
    row("auth.user.email_confirmed", "UPDATE"),
    row("auth.user.email_changed", "UPDATE"),
    row("auth.user.phone_confirmed", "UPDATE"),
    row("auth.user.password_changed", "UPDATE"),
    row("auth.user.banned", "UPDATE"),
    row("auth.user.unbanned", "UPDATE"),
    row("auth.user.signed_in", "UPDATE"),
];

pub(super) const FIELDS: &[FieldSpec] = &[
    string_field("supabase_user_id"),
    string_field("supabase_email_confirmed_at"),
    string_field("supabase_last_sign_in_at"),
    string_field("supabase_provider"),
    string_field("supabase_banned_until"),
    string_field("supabase_deleted_at"),
];

pub(super) const IDENTITY: &[&str] = &["supabase_user_id"];

const fn row(name: &'static str, provider_key: &'static str) -> EventSpec {
    super::spelled(name, provider_key)
}

pub(super) const MAPPING: Mapping = Mapping {
    events: EVENTS,
    fields: FIELDS,
    identity: IDENTITY,
    map,
    options: ConnectionOptions::NONE,
};

fn map(input: &Input) -> Result<Delivery, MapError> {
    let body = &input.body;
    let operation = input.event_at("type")?.to_ascii_uppercase();
    let schema = text(body, "schema").unwrap_or_default();
    let table = text(body, "table").unwrap_or_default();
    let ignore = |reason: &str| Delivery {
        event: format!("{schema}.{table}.{}", operation.to_ascii_lowercase()),
        provider_event_key: operation.clone(),
        dedupe_id: input.body_hash(),
        action: Action::Ignore(reason.to_owned()),
    };
    if (schema, table) != ("auth", "users") {
        return Ok(ignore("table_not_supported"));
    }
    let record = body.get("record").unwrap_or(&Value::Null);
    let old_record = body.get("old_record").unwrap_or(&Value::Null);
    let (event, row) = match operation.as_str() {
        "INSERT" => ("auth.user.created", record),
        "UPDATE" => (transition(old_record, record), record),
        "DELETE" => ("auth.user.deleted", old_record),
        _ => return Ok(ignore("event_not_supported")),
    };
    let mut contact = user(row);
    if operation == "DELETE" {
        contact.set("supabase_deleted_at", input.deleted_at(None));
    }
    Ok(Delivery {
        event: event.to_owned(),
        provider_event_key: operation,
        dedupe_id: input.body_hash(),
        action: contact.into_action(IDENTITY),
    })
}

/// The first change an UPDATE of `auth.users` makes, in the documented order.
fn transition(old: &Value, new: &Value) -> &'static str {
    if !old.is_object() {
        return "auth.user.updated";
    }
    let set_now = |column| at(old, column).is_none() && at(new, column).is_some();
    let cleared = |column| at(old, column).is_some() && at(new, column).is_none();
    let changed = |column| at(old, column) != at(new, column);
    if set_now("email_confirmed_at") {
        "auth.user.email_confirmed"
    } else if changed("email") {
        "auth.user.email_changed"
    } else if set_now("phone_confirmed_at") {
        "auth.user.phone_confirmed"
    } else if changed("encrypted_password") {
        "auth.user.password_changed"
    } else if set_now("banned_until") {
        "auth.user.banned"
    } else if cleared("banned_until") {
        "auth.user.unbanned"
    } else if changed("last_sign_in_at") && at(new, "last_sign_in_at").is_some() {
        "auth.user.signed_in"
    } else {
        "auth.user.updated"
    }
}

/// The contact of an `auth.users` row; `encrypted_password` and the other auth columns
/// are never copied.
fn user(row: &Value) -> Record {
    let mut record = Record::default();
    record.email(text(row, "email"));
    let meta = row.get("raw_user_meta_data").unwrap_or(&Value::Null);
    record.names(text(meta, "first_name"), text(meta, "last_name"));
    record.names(text(meta, "given_name"), text(meta, "family_name"));
    record.full_name(text(meta, "full_name"));
    record.full_name(text(meta, "name"));
    record.set("supabase_user_id", id(row, "id"));
    record.set(
        "supabase_email_confirmed_at",
        text(row, "email_confirmed_at"),
    );
    record.set("supabase_last_sign_in_at", text(row, "last_sign_in_at"));
    record.set("supabase_provider", text(row, "raw_app_meta_data.provider"));
    record.set("supabase_banned_until", text(row, "banned_until"));
    record
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::testing::{fired, ignored, map, record_json, NOW_RFC3339};
    use super::super::testing::provider;

    const INSERT: &str = include_str!("../../tests/data/supabase/INSERT.auth.users.json");

    fn user_row() -> Value {
        json!({"id": "00000000-0000-0000-0000-000000000001", "email": "user@example.com",
            "encrypted_password": "$2a$10$old", "email_confirmed_at": null,
            "phone_confirmed_at": null, "banned_until": null,
            "last_sign_in_at": "2024-01-01T00:00:00+00:00",
            "raw_app_meta_data": {"provider": "email"},
            "raw_user_meta_data": {"full_name": "Example User"}})
    }

    /// The event an UPDATE fires when `change` is applied to the row.
    fn update_event(change: impl FnOnce(&mut Value)) -> String {
        let old = user_row();
        let mut new = old.clone();
        change(&mut new);
        let body = json!({"type": "UPDATE", "table": "users", "schema": "auth",
                          "record": new, "old_record": old});
        map(provider("supabase"), &[], &body.to_string()).event
    }

    #[test]
    fn insert_sample() {
        let delivery = map(provider("supabase"), &[], INSERT);
        assert_eq!(delivery.event, "auth.user.created");
        assert_eq!(delivery.provider_event_key, "INSERT");
        assert_eq!(delivery.dedupe_id.len(), 64);
        assert_eq!(
            record_json(&delivery),
            json!({"email": "user@example.com", "firstName": "Example", "lastName": "User",
                   "supabase_user_id": "00000000-0000-0000-0000-000000000001"})
        );
    }

    #[test]
    fn dedupe_id_is_the_body_hash() {
        let first = map(provider("supabase"), &[], INSERT);
        let again = map(provider("supabase"), &[], INSERT);
        let other = map(provider("supabase"), &[], &INSERT.replace("user@", "other@"));
        assert_eq!(first.dedupe_id, again.dedupe_id);
        assert_ne!(first.dedupe_id, other.dedupe_id);
        assert!(first.dedupe_id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn update_transitions_in_order() {
        let at = json!("2024-02-02T00:00:00+00:00");
        assert_eq!(update_event(|_| {}), "auth.user.updated");
        assert_eq!(
            update_event(|r| r["email_confirmed_at"] = at.clone()),
            "auth.user.email_confirmed"
        );
        // Confirming comes first even when the sign-in time changes too.
        assert_eq!(
            update_event(|r| {
                r["email_confirmed_at"] = at.clone();
                r["last_sign_in_at"] = at.clone();
            }),
            "auth.user.email_confirmed"
        );
        assert_eq!(
            update_event(|r| r["email"] = json!("new@example.com")),
            "auth.user.email_changed"
        );
        assert_eq!(
            update_event(|r| r["phone_confirmed_at"] = at.clone()),
            "auth.user.phone_confirmed"
        );
        assert_eq!(
            update_event(|r| r["encrypted_password"] = json!("$2a$10$new")),
            "auth.user.password_changed"
        );
        assert_eq!(
            update_event(|r| r["banned_until"] = json!("2099-01-01T00:00:00+00:00")),
            "auth.user.banned"
        );
        assert_eq!(
            update_event(|r| r["last_sign_in_at"] = at.clone()),
            "auth.user.signed_in"
        );
    }

    #[test]
    fn unban_and_record_fields() {
        let mut new = user_row();
        new["email_confirmed_at"] = json!("2023-12-31T00:00:00+00:00");
        let mut old = new.clone();
        old["banned_until"] = json!("2099-01-01T00:00:00+00:00");
        let body = json!({"type": "UPDATE", "table": "users", "schema": "auth",
                          "record": new, "old_record": old});
        let delivery = map(provider("supabase"), &[], &body.to_string());
        assert_eq!(delivery.event, "auth.user.unbanned");
        let fields = record_json(&delivery);
        assert_eq!(
            fields,
            json!({"email": "user@example.com", "firstName": "Example", "lastName": "User",
                   "supabase_user_id": "00000000-0000-0000-0000-000000000001",
                   "supabase_email_confirmed_at": "2023-12-31T00:00:00+00:00",
                   "supabase_last_sign_in_at": "2024-01-01T00:00:00+00:00",
                   "supabase_provider": "email"})
        );
        assert!(!fields.to_string().contains("$2a$"));
    }

    #[test]
    fn update_without_old_record_is_a_plain_update() {
        let body = json!({"type": "UPDATE", "table": "users", "schema": "auth",
                          "record": user_row(), "old_record": null});
        let delivery = map(provider("supabase"), &[], &body.to_string());
        assert_eq!(delivery.event, "auth.user.updated");
    }

    #[test]
    fn delete_uses_the_old_record() {
        let body = json!({"type": "DELETE", "table": "users", "schema": "auth",
                          "record": null, "old_record": user_row()});
        let delivery = map(provider("supabase"), &[], &body.to_string());
        assert_eq!(delivery.event, "auth.user.deleted");
        assert_eq!(delivery.provider_event_key, "DELETE");
        let record = fired(&delivery);
        assert_eq!(record.email.as_deref(), Some("user@example.com"));
        assert_eq!(record.fields["supabase_deleted_at"], json!(NOW_RFC3339));
    }

    #[test]
    fn phone_only_user_resolves_by_id() {
        let mut row = user_row();
        row["email"] = json!(null);
        let body = json!({"type": "INSERT", "table": "users", "schema": "auth",
                          "record": row, "old_record": null});
        let delivery = map(provider("supabase"), &[], &body.to_string());
        assert_eq!(
            fired(&delivery).lookup,
            Some((
                "supabase_user_id".to_owned(),
                "00000000-0000-0000-0000-000000000001".to_owned()
            ))
        );
    }

    #[test]
    fn other_tables_are_ignored() {
        let body = json!({"type": "INSERT", "table": "profiles", "schema": "public",
                          "record": {"id": 1, "email": "x@example.com"}, "old_record": null});
        let delivery = map(provider("supabase"), &[], &body.to_string());
        assert_eq!(delivery.event, "public.profiles.insert");
        assert_eq!(ignored(&delivery), "table_not_supported");
    }
}
