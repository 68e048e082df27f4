//! Trigger payload schemas: declaring them and resolving a payload against one.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// The fields a trigger's payload carries; `email` (a required string) is mandatory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"fields": [{"key": "email", "type": "string", "required": true}, {"key": "plan", "type": "string", "required": false, "fallbackValue": "free"}]}))]
pub struct PayloadSchema {
    pub fields: Vec<FieldDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FieldDef {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub required: bool,
    /// Filled in when the field is absent from a fired payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub fallback_value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

impl FieldType {
    fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Object => "object",
            FieldType::Array => "array",
        }
    }

    fn matches(self, value: &Value) -> bool {
        match self {
            FieldType::String => value.is_string(),
            FieldType::Number => value.is_number(),
            FieldType::Boolean => value.is_boolean(),
            FieldType::Object => value.is_object(),
            FieldType::Array => value.is_array(),
        }
    }
}

const MAX_FIELDS: usize = 200;
const MAX_KEY_LEN: usize = 100;
/// A `fallbackValue`, serialized.
const MAX_FALLBACK_BYTES: usize = 16 * 1024;

impl PayloadSchema {
    /// Checks the schema itself; the error names the offending field and what is wrong.
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.fields.len() > MAX_FIELDS {
            return Err((
                "payloadSchema.fields".into(),
                format!("at most {MAX_FIELDS} fields are allowed"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, field) in self.fields.iter().enumerate() {
            let param = format!("payloadSchema.fields[{i}]");
            if field.key.is_empty() || field.key.chars().count() > MAX_KEY_LEN {
                return Err((
                    format!("{param}.key"),
                    format!("must be 1 to {MAX_KEY_LEN} characters"),
                ));
            }
            if !seen.insert(field.key.as_str()) {
                return Err((
                    format!("{param}.key"),
                    format!("duplicate key `{}`", field.key),
                ));
            }
            if let Some(fallback) = &field.fallback_value {
                if fallback.to_string().len() > MAX_FALLBACK_BYTES {
                    return Err((
                        format!("{param}.fallbackValue"),
                        format!("must be at most {MAX_FALLBACK_BYTES} bytes of JSON"),
                    ));
                }
                if !field.kind.matches(fallback) {
                    return Err((
                        format!("{param}.fallbackValue"),
                        format!("must be of type {}", field.kind.as_str()),
                    ));
                }
            }
        }
        let email_ok = self
            .fields
            .iter()
            .any(|f| f.key == "email" && f.kind == FieldType::String && f.required);
        if !email_ok {
            return Err((
                "payloadSchema.fields".into(),
                "must declare {\"key\": \"email\", \"type\": \"string\", \"required\": true}"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Resolves `payload`: checks required fields and types, fills fallbacks, keeps unknown
    /// keys and warns about them. On failure, every problem is listed.
    pub fn resolve(&self, payload: &Map<String, Value>) -> Result<Resolved, Vec<Value>> {
        let mut problems = Vec::new();
        let mut values = payload.clone();
        for field in &self.fields {
            match payload.get(&field.key) {
                // An explicit null counts as absent.
                None | Some(Value::Null) => {
                    values.remove(&field.key);
                    if let Some(fallback) = &field.fallback_value {
                        values.insert(field.key.clone(), fallback.clone());
                    } else if field.required {
                        problems.push(json!({"field": field.key, "problem": "missing_required"}));
                    }
                }
                Some(value) if !field.kind.matches(value) => problems.push(json!({
                    "field": field.key, "problem": "wrong_type", "expected": field.kind.as_str()
                })),
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let warnings = payload
            .keys()
            .filter(|k| !self.fields.iter().any(|f| &f.key == *k))
            .map(|k| json!({"code": "unexpected_key", "field": k}))
            .collect();
        Ok(Resolved { values, warnings })
    }
}

#[derive(Debug)]
pub struct Resolved {
    pub values: Map<String, Value>,
    pub warnings: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> PayloadSchema {
        serde_json::from_value(json!({"fields": [
            {"key": "email", "type": "string", "required": true},
            {"key": "plan", "type": "string", "required": false, "fallbackValue": "free"},
            {"key": "seats", "type": "number", "required": true},
        ]}))
        .unwrap()
    }

    #[test]
    fn lists_every_problem() {
        let payload = json!({"email": 42}).as_object().unwrap().clone();
        let problems = schema().resolve(&payload).err().unwrap();
        assert_eq!(
            problems,
            vec![
                json!({"field": "email", "problem": "wrong_type", "expected": "string"}),
                json!({"field": "seats", "problem": "missing_required"}),
            ]
        );
    }

    #[test]
    fn fills_fallbacks_and_warns_on_unknown_keys() {
        let payload = json!({"email": "a@b.co", "seats": 3, "utm": "x"})
            .as_object()
            .unwrap()
            .clone();
        let resolved = schema().resolve(&payload).ok().unwrap();
        assert_eq!(resolved.values["plan"], "free");
        assert_eq!(resolved.values["utm"], "x");
        assert_eq!(
            resolved.warnings,
            vec![json!({"code": "unexpected_key", "field": "utm"})]
        );
    }

    #[test]
    fn requires_the_email_field() {
        let s: PayloadSchema =
            serde_json::from_value(json!({"fields": [{"key": "email", "type": "string"}]}))
                .unwrap();
        assert!(s.check().is_err());
        assert!(schema().check().is_ok());
    }
}
