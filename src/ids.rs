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
pub const SUBSCRIPTION: &str = "whs";
pub const EVENT: &str = "evt";
pub const OUTBOUND_DELIVERY: &str = "whd";
/// A request on a receive URL (inbound delivery).
pub const DELIVERY: &str = "dlv";

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}
