//! Resource ids: a type prefix and a ULID, so ids sort by creation time and say what they are.

pub const ORG: &str = "org";
pub const API_KEY: &str = "key";
pub const TRIGGER: &str = "tri";
pub const AUTOMATION: &str = "aut";
pub const RUN: &str = "run";
pub const TRIGGER_INSTANCE: &str = "tin";
pub const CONNECTION: &str = "con";
pub const SECRET: &str = "sec";
pub const REQUEST: &str = "req";
pub const DELIVERY: &str = "dlv";

/// Whether `id` has the shape of an id minted with `prefix` (a ULID after `prefix_`).
pub fn is_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|ulid| ulid.len() == 26 && ulid.bytes().all(|b| b.is_ascii_alphanumeric()))
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}
