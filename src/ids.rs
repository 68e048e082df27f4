//! Resource ids: a type prefix and a ULID, so ids sort by creation time and say what they are.

use std::sync::Mutex;

pub const ORG: &str = "org";
pub const API_KEY: &str = "key";
pub const TRIGGER: &str = "tri";
pub const AUTOMATION: &str = "aut";
pub const RUN: &str = "run";
pub const TRIGGER_INSTANCE: &str = "tin";
pub const CONNECTION: &str = "con";
pub const SECRET: &str = "sec";
pub const REQUEST: &str = "req";
/// A request on a receive URL (inbound delivery).
pub const DELIVERY: &str = "dlv";
pub const SUBSCRIPTION: &str = "whs";
pub const EVENT: &str = "evt";
pub const OUTBOUND_DELIVERY: &str = "whd";

/// Whether `id` has the shape of an id minted with `prefix` (a ULID after `prefix_`).
pub fn is_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|ulid| ulid.len() == 26 && ulid.bytes().all(|b| b.is_ascii_alphanumeric()))
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}

/// An id that sorts after every id this process minted before it, also within one
/// millisecond (lists ordered by id, newest first, keep the order things happened in).
pub fn new_ordered_id(prefix: &str) -> String {
    static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut generator = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let ulid = generator
        .get_or_insert_with(ulid::Generator::new)
        .generate()
        // Only after 2^80 ids in one millisecond.
        .unwrap_or_else(|_| ulid::Ulid::new());
    format!("{prefix}_{ulid}")
}
