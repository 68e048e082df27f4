//! Supabase database webhooks: `{type, table, schema, record, old_record}`. Rows of
//! `auth.users` are contacts, and an UPDATE fires the first transition it matches; rows of
//! the tables a connection lists in `options.tables` fire `<schema>.<table>.created|updated|
//! deleted` with their scalar columns as `supabase_<column>`.

use serde_json::Value;

use super::{ConnectionOptions, Input, Mapping, Record, at, body_hash_only, id, string_field, text};
use crate::{Action, Delivery, EventSpec, FieldSpec, MapError, SkipReason};

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
    string_field("supabase_row_id"),
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
    dedupe_before_parsing: body_hash_only,
    options: ConnectionOptions {
        validate: validate_options,
        events: table_events,
    },
};

fn map(input: &Input) -> Result<Delivery, MapError> {
    let body = &input.body;
    let operation = input.event_at("type")?.to_ascii_uppercase();
    let schema = text(body, "schema").unwrap_or_default();
    let table = text(body, "table").unwrap_or_default();
    let ignore = |reason| Delivery {
        event: format!("{schema}.{table}.{}", operation.to_ascii_lowercase()),
        provider_event_key: operation.clone(),
        dedupe_id: input.body_hash(),
        action: Action::Ignore(reason),
    };
    if (schema, table) != ("auth", "users") {
        let tables = tables(input.options).unwrap_or_default();
        return Ok(match tables.iter().find(|t| (&*t.schema, &*t.table) == (schema, table)) {
            Some(configured) => table_row(input, configured, &operation),
            None => ignore(SkipReason::TableNotSupported),
        });
    }
    let record = body.get("record").unwrap_or(&Value::Null);
    let old_record = body.get("old_record").unwrap_or(&Value::Null);
    let (event, row) = match operation.as_str() {
        "INSERT" => ("auth.user.created", record),
        "UPDATE" => (transition(old_record, record), record),
        "DELETE" => ("auth.user.deleted", old_record),
        _ => return Ok(ignore(SkipReason::EventNotSupported)),
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

/// A row of a table listed in `options.tables`.
fn table_row(input: &Input, table: &Table, operation: &str) -> Delivery {
    let body = &input.body;
    let (suffix, row) = match operation {
        "INSERT" => ("created", body.get("record")),
        "UPDATE" => ("updated", body.get("record")),
        "DELETE" => ("deleted", body.get("old_record")),
        _ => ("unknown", None),
    };
    let event = format!("{}.{}.{suffix}", table.schema, table.table);
    let action = match row.and_then(Value::as_object) {
        None => Action::Ignore(SkipReason::EventNotSupported),
        Some(columns) => {
            let mut record = Record::default();
            record.email(columns.get(&table.email_column).and_then(Value::as_str));
            if let Some(id_column) = &table.id_column {
                record.set("supabase_row_id", columns.get(id_column).and_then(scalar_id));
            }
            for (column, value) in columns {
                if matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    record.set(&format!("supabase_{column}"), Some(value.clone()));
                }
            }
            // No lookup: a row without its email column names no contact.
            record.into_action(&[])
        }
    };
    Delivery {
        event,
        provider_event_key: operation.to_owned(),
        dedupe_id: input.body_hash(),
        action,
    }
}

fn scalar_id(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An entry of `options.tables`.
#[derive(Debug, PartialEq)]
struct Table {
    schema: String,
    table: String,
    email_column: String,
    id_column: Option<String>,
}

const MAX_TABLES: usize = 20;
/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;

fn validate_options(options: &Value) -> Result<(), String> {
    tables(options).map(drop)
}

/// Each configured table's three events, spelled as the webhook's `type`.
fn table_events(options: &Value) -> Vec<EventSpec> {
    let tables = tables(options).unwrap_or_default();
    tables
        .iter()
        .flat_map(|t| {
            [("created", "INSERT"), ("updated", "UPDATE"), ("deleted", "DELETE")].map(
                |(suffix, operation)| EventSpec {
                    name: format!("{}.{}.{suffix}", t.schema, t.table).into(),
                    provider_key: operation.into(),
                    aliases: &[],
                },
            )
        })
        .collect()
}

/// `options.tables`, checked: the message names the offending field.
fn tables(options: &Value) -> Result<Vec<Table>, String> {
    let Some(list) = options.get("tables") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or("options.tables must be an array of {schema, table, emailColumn, idColumn?}")?;
    if list.len() > MAX_TABLES {
        return Err(format!("options.tables holds at most {MAX_TABLES} tables"));
    }
    let mut tables: Vec<Table> = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let field = |key: &str| format!("options.tables[{i}].{key}");
        let entry = entry
            .as_object()
            .ok_or_else(|| format!("options.tables[{i}] must be an object"))?;
        if let Some(unknown) = entry
            .keys()
            .find(|k| !["schema", "table", "emailColumn", "idColumn"].contains(&k.as_str()))
        {
            return Err(format!("{} is not a known field", field(unknown)));
        }
        let name = |key: &str| -> Result<Option<String>, String> {
            let Some(value) = entry.get(key) else {
                return Ok(None);
            };
            let valid = value.as_str().filter(|s| {
                (1..=MAX_NAME).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
            });
            match valid {
                Some(s) => Ok(Some(s.to_owned())),
                None => Err(format!(
                    "{} must be a name of 1-{MAX_NAME} letters, digits, `_` or `$`",
                    field(key)
                )),
            }
        };
        let required = |key: &str| name(key)?.ok_or_else(|| format!("{} is required", field(key)));
        let table = Table {
            schema: required("schema")?,
            table: required("table")?,
            email_column: required("emailColumn")?,
            id_column: name("idColumn")?,
        };
        if (&*table.schema, &*table.table) == ("auth", "users") {
            return Err(format!(
                "options.tables[{i}]: auth.users is built in and needs no entry"
            ));
        }
        if tables
            .iter()
            .any(|t| (&t.schema, &t.table) == (&table.schema, &table.table))
        {
            return Err(format!(
                "options.tables[{i}]: {}.{} is listed twice",
                table.schema, table.table
            ));
        }
        tables.push(table);
    }
    Ok(tables)
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

    use super::super::testing::{fired, ignored, map, map_with, record_json, NOW_RFC3339};
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

    fn profiles() -> Value {
        json!({"tables": [{"schema": "public", "table": "profiles",
                           "emailColumn": "contact_email", "idColumn": "id"}]})
    }

    fn profile_row() -> Value {
        json!({"id": 42, "contact_email": "Ada@Example.com", "plan": "pro", "seats": 3,
               "active": true, "settings": {"theme": "dark"}, "tags": ["a"], "note": null})
    }

    #[test]
    fn configured_table_rows_fire_with_their_scalar_columns() {
        let body = json!({"type": "INSERT", "table": "profiles", "schema": "public",
                          "record": profile_row(), "old_record": null});
        let delivery = map_with(provider("supabase"), &[], &body.to_string(), &profiles());
        assert_eq!(delivery.event, "public.profiles.created");
        assert_eq!(delivery.provider_event_key, "INSERT");
        assert_eq!(
            record_json(&delivery),
            json!({"email": "Ada@Example.com", "supabase_row_id": "42", "supabase_id": 42,
                   "supabase_contact_email": "Ada@Example.com", "supabase_plan": "pro",
                   "supabase_seats": 3, "supabase_active": true})
        );
        let delete = json!({"type": "DELETE", "table": "profiles", "schema": "public",
                            "record": null, "old_record": profile_row()});
        let delivery = map_with(provider("supabase"), &[], &delete.to_string(), &profiles());
        assert_eq!(delivery.event, "public.profiles.deleted");
        assert_eq!(fired(&delivery).email.as_deref(), Some("Ada@Example.com"));
    }

    #[test]
    fn configured_table_row_without_email_is_ignored() {
        let mut row = profile_row();
        row.as_object_mut().unwrap().remove("contact_email");
        let body = json!({"type": "UPDATE", "table": "profiles", "schema": "public",
                          "record": row, "old_record": profile_row()});
        let delivery = map_with(provider("supabase"), &[], &body.to_string(), &profiles());
        assert_eq!(delivery.event, "public.profiles.updated");
        assert_eq!(ignored(&delivery), "no_email");
    }

    #[test]
    fn tables_add_three_events_each() {
        let supabase = provider("supabase");
        assert_eq!(supabase.events_for(&json!({})), supabase.events());
        let events = supabase.events_for(&profiles());
        let added: Vec<(&str, &str)> = events[supabase.events().len()..]
            .iter()
            .map(|e| (&*e.name, &*e.provider_key))
            .collect();
        assert_eq!(
            added,
            [
                ("public.profiles.created", "INSERT"),
                ("public.profiles.updated", "UPDATE"),
                ("public.profiles.deleted", "DELETE")
            ]
        );
    }

    #[test]
    fn tables_option_is_checked() {
        let supabase = provider("supabase");
        assert_eq!(supabase.validate_options(&json!({})), Ok(()));
        assert_eq!(supabase.validate_options(&profiles()), Ok(()));
        let table = |entry: Value| json!({"tables": [entry]});
        let cases = [
            (json!({"tables": {}}), "options.tables must be an array"),
            (table(json!("public.x")), "options.tables[0] must be an object"),
            (
                table(json!({"schema": "public", "emailColumn": "email"})),
                "options.tables[0].table is required",
            ),
            (
                table(json!({"schema": "public", "table": "a\u{0}b", "emailColumn": "e"})),
                "options.tables[0].table must be a name",
            ),
            (
                table(json!({"schema": "pub.lic", "table": "t", "emailColumn": "e"})),
                "options.tables[0].schema must be a name",
            ),
            (
                table(json!({"schema": "p", "table": "t", "emailColumn": "x".repeat(64)})),
                "options.tables[0].emailColumn must be a name",
            ),
            (
                table(json!({"schema": "p", "table": "t", "emailColumn": "e", "idColumn": 1})),
                "options.tables[0].idColumn must be a name",
            ),
            (
                table(json!({"schema": "p", "table": "t", "emailColumn": "e", "extra": 1})),
                "options.tables[0].extra is not a known field",
            ),
            (
                table(json!({"schema": "auth", "table": "users", "emailColumn": "email"})),
                "auth.users is built in",
            ),
            (
                json!({"tables": [profiles()["tables"][0], profiles()["tables"][0]]}),
                "options.tables[1]: public.profiles is listed twice",
            ),
            (
                json!({"tables": vec![json!({"schema": "p", "table": "t", "emailColumn": "e"}); 21]}),
                "at most 20 tables",
            ),
        ];
        for (options, message) in cases {
            let err = supabase.validate_options(&options).unwrap_err();
            assert!(err.contains(message), "{options}: {err}");
        }
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
