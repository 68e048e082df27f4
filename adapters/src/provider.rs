//! The providers firehook receives from, and what each one can fire. The list itself is
//! [`crate::providers::REGISTRY`]; a [`Provider`] is a handle on one of its entries.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde_json::Value;

use crate::providers::{ProviderDef, REGISTRY};

/// A provider with a receive URL: a handle on its registry entry, compared by slug.
#[derive(Clone, Copy)]
pub struct Provider(&'static ProviderDef);

/// How a provider's deliveries are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Svix,
    Stripe,
    Shopify,
    Workos,
    /// `Authorization: Bearer <secret>` (or the bare value, or basic auth with it as password).
    SharedToken,
    /// `?token=<secret>` on the receive URL.
    UrlToken,
    /// `X-Webhook-Signature: sha256=<hex>`.
    GenericHmac,
}

impl Scheme {
    /// How far (in seconds) a signed timestamp may be from the clock, either way: one as
    /// far in the future is refused too. `None` for schemes that sign no timestamp.
    pub const fn clock_tolerance_secs(self) -> Option<u64> {
        match self {
            Scheme::Svix | Scheme::Stripe => Some(300),
            Scheme::Workos => Some(180),
            Scheme::Shopify | Scheme::SharedToken | Scheme::UrlToken | Scheme::GenericHmac => None,
        }
    }

    /// Whether the MAC covers the body; token schemes only prove the sender knows the secret.
    pub fn signs_body(self) -> bool {
        !matches!(self, Scheme::SharedToken | Scheme::UrlToken)
    }
}

/// Where a connection's secret comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// The provider's dashboard shows it; the user must supply it.
    ProviderIssued,
    /// firehook mints one when none is given and shows it once.
    Minted,
}

/// A trigger a connection provisions: one per supported provider event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// The event part of the trigger id (`orders.paid`).
    pub name: Cow<'static, str>,
    /// The provider's own spelling (`orders/paid`).
    pub provider_key: Cow<'static, str>,
    /// Other spellings the provider sends for the same event (Brevo's `hardBounce` for
    /// `hard_bounce`): they fire this trigger too.
    pub aliases: &'static [&'static str],
}

impl EventSpec {
    /// Whether the provider's spelling `key` names this event.
    pub fn is_spelled(&self, key: &str) -> bool {
        self.provider_key == key || self.aliases.contains(&key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

impl FieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::String => "string",
            FieldKind::Number => "number",
            FieldKind::Boolean => "boolean",
            FieldKind::Object => "object",
            FieldKind::Array => "array",
        }
    }
}

/// A field of the flat record, for the provisioned triggers' payload schemas.
/// `email` (required) is implied and not listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub key: &'static str,
    pub kind: FieldKind,
}

impl Provider {
    /// Every provider, in registry order.
    pub fn all() -> impl Iterator<Item = Provider> {
        REGISTRY.iter().map(Provider)
    }

    pub fn from_slug(slug: &str) -> Option<Provider> {
        Provider::all().find(|p| p.slug() == slug)
    }

    /// The provider's name in URLs and trigger ids.
    pub fn slug(self) -> &'static str {
        self.0.slug
    }

    pub fn scheme(self) -> Scheme {
        self.0.scheme
    }

    pub fn secret_kind(self) -> SecretKind {
        if self.scheme().signs_body() {
            SecretKind::ProviderIssued
        } else {
            SecretKind::Minted
        }
    }

    /// Checks that a secret has the shape this provider's scheme needs
    /// (e.g. Svix secrets are `whsec_` + base64). The message names what is wrong.
    pub fn validate_secret(self, secret: &str) -> Result<(), String> {
        crate::scheme::validate_secret(self.scheme(), secret)
    }

    /// The events every connection of this provider provisions. Generic and standard
    /// receivers have none built in: their events come from the connection's options.
    pub fn events(self) -> &'static [EventSpec] {
        self.0.mapping.events
    }

    /// The events a connection with these `options` provisions: [`Provider::events`] plus
    /// those its options add (Supabase `tables`). Call [`Provider::validate_options`] first.
    pub fn events_for(self, options: &Value) -> Vec<EventSpec> {
        let mut events = self.events().to_vec();
        events.extend((self.0.mapping.options.events)(options));
        events
    }

    /// Checks the provider-specific part of a connection's `options`; the message names
    /// the offending field (`options.tables[0].schema`).
    pub fn validate_options(self, options: &Value) -> Result<(), String> {
        (self.0.mapping.options.validate)(options)
    }

    /// The provider-specific fields of the flat record (besides email, firstName, lastName).
    pub fn fields(self) -> &'static [FieldSpec] {
        self.0.mapping.fields
    }

    /// The record fields that identify a contact when a later event carries no email
    /// (e.g. `clerk_user_id`, `stripe_customer_id`).
    pub fn identity_fields(self) -> &'static [&'static str] {
        self.0.mapping.identity
    }

    pub(crate) fn def(self) -> &'static ProviderDef {
        self.0
    }
}

impl PartialEq for Provider {
    fn eq(&self, other: &Self) -> bool {
        self.slug() == other.slug()
    }
}

impl Eq for Provider {}

impl Hash for Provider {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.slug().hash(state);
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Provider({})", self.slug())
    }
}
