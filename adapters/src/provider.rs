//! The providers firehook receives from, and what each one can fire.

/// Every provider with a receive URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Clerk,
    Stripe,
    Shopify,
    Stytch,
    Supabase,
    Workos,
    Revenuecat,
    Brevo,
    Brimble,
    /// Any sender signing `X-Webhook-Signature: sha256=<hex>` over the raw body.
    Generic,
    /// Any Standard Webhooks sender.
    Standard,
}

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

/// Where a connection's secret comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// The provider's dashboard shows it; the user must supply it.
    ProviderIssued,
    /// firehook mints one when none is given and shows it once.
    Minted,
}

/// A trigger a connection provisions: one per supported provider event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpec {
    /// The event part of the trigger id (`orders.paid`).
    pub name: &'static str,
    /// The provider's own spelling (`orders/paid`).
    pub provider_key: &'static str,
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
    pub const ALL: [Provider; 11] = [
        Provider::Clerk,
        Provider::Stripe,
        Provider::Shopify,
        Provider::Stytch,
        Provider::Supabase,
        Provider::Workos,
        Provider::Revenuecat,
        Provider::Brevo,
        Provider::Brimble,
        Provider::Generic,
        Provider::Standard,
    ];

    /// The provider's name in URLs and trigger ids.
    pub fn slug(self) -> &'static str {
        match self {
            Provider::Clerk => "clerk",
            Provider::Stripe => "stripe",
            Provider::Shopify => "shopify",
            Provider::Stytch => "stytch",
            Provider::Supabase => "supabase",
            Provider::Workos => "workos",
            Provider::Revenuecat => "revenuecat",
            Provider::Brevo => "brevo",
            Provider::Brimble => "brimble",
            Provider::Generic => "generic",
            Provider::Standard => "standard",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.slug() == slug)
    }

    pub fn scheme(self) -> Scheme {
        match self {
            Provider::Clerk | Provider::Stytch | Provider::Standard => Scheme::Svix,
            Provider::Stripe => Scheme::Stripe,
            Provider::Shopify => Scheme::Shopify,
            Provider::Workos => Scheme::Workos,
            Provider::Supabase | Provider::Revenuecat | Provider::Brevo => Scheme::SharedToken,
            Provider::Brimble => Scheme::UrlToken,
            Provider::Generic => Scheme::GenericHmac,
        }
    }

    pub fn secret_kind(self) -> SecretKind {
        match self.scheme() {
            Scheme::SharedToken | Scheme::UrlToken => SecretKind::Minted,
            _ => SecretKind::ProviderIssued,
        }
    }

    /// Checks that a secret has the shape this provider's scheme needs
    /// (e.g. Svix secrets are `whsec_` + base64). The message names what is wrong.
    pub fn validate_secret(self, secret: &str) -> Result<(), String> {
        crate::scheme::validate_secret(self.scheme(), secret)
    }

    /// The events a new connection provisions triggers for. Generic and standard
    /// receivers have none built in: their events come from the connection's options.
    pub fn events(self) -> &'static [EventSpec] {
        crate::providers::events(self)
    }

    /// The provider-specific fields of the flat record (besides email, firstName, lastName).
    pub fn fields(self) -> &'static [FieldSpec] {
        crate::providers::fields(self)
    }

    /// The record fields that identify a contact when a later event carries no email
    /// (e.g. `clerk_user_id`, `stripe_customer_id`).
    pub fn identity_fields(self) -> &'static [&'static str] {
        crate::providers::identity_fields(self)
    }
}
