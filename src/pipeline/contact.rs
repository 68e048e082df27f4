//! From a resolved payload to the contact it upserts.

use serde_json::{Map, Value};

use crate::store::ContactUpdate;

/// The longest custom field key a contact stores (as a payload schema's keys). A longer
/// key, which a provider's payload may carry, stays in the fire's payload but defines no
/// contact field.
pub const MAX_FIELD_KEY_LEN: usize = 100;

/// Splits a payload into the core contact columns and custom fields. `email` is the key and
/// not repeated; nulls are dropped so they never erase a stored value.
pub fn contact_update(payload: &Map<String, Value>) -> ContactUpdate {
    let mut update = ContactUpdate::default();
    for (key, value) in payload {
        match (key.as_str(), value) {
            ("email", _) | (_, Value::Null) => {}
            ("firstName", Value::String(s)) => update.first_name = Some(s.clone()),
            ("lastName", Value::String(s)) => update.last_name = Some(s.clone()),
            ("subscribed", Value::Bool(b)) => update.subscribed = Some(*b),
            _ if key.chars().count() > MAX_FIELD_KEY_LEN => {}
            _ => {
                update.custom_fields.insert(key.clone(), value.clone());
            }
        }
    }
    update
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_columns_and_custom_fields() {
        let payload = json!({"email": "a@b.co", "firstName": "Ann", "subscribed": true,
                             "plan": "pro", "gone": null, "k".repeat(101): 1});
        let update = contact_update(payload.as_object().unwrap());
        assert_eq!(update.first_name.as_deref(), Some("Ann"));
        assert_eq!(update.last_name, None);
        assert_eq!(update.subscribed, Some(true));
        assert_eq!(Value::Object(update.custom_fields), json!({"plan": "pro"}));
    }
}
