//! The events and fields tables of `docs/providers.md` come from the registry: this test
//! fails when the committed section differs from what the code declares. Regenerate with
//! `UPDATE_DOCS=1 cargo test -p firehook-adapters --test docs`.

use std::fmt::Write;
use std::path::Path;

use firehook_adapters::{Provider, Scheme};

const BEGIN: &str =
    "<!-- BEGIN GENERATED: UPDATE_DOCS=1 cargo test -p firehook-adapters --test docs -->";
const END: &str = "<!-- END GENERATED -->";

fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Svix => "Svix / Standard Webhooks",
        Scheme::Stripe => "`Stripe-Signature`",
        Scheme::Shopify => "`X-Shopify-Hmac-Sha256`",
        Scheme::Workos => "`WorkOS-Signature`",
        Scheme::SharedToken => "shared token",
        Scheme::UrlToken => "URL token",
        Scheme::GenericHmac => "`X-Webhook-Signature`",
    }
}

fn code_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| format!("`{i}`")).collect();
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// One subsection per provider, in registry order.
fn render() -> String {
    let mut out = String::new();
    for p in Provider::all() {
        writeln!(out, "### {} ({})\n", p.slug(), scheme_name(p.scheme())).unwrap();
        if p.events().is_empty() {
            out.push_str("- triggers: the names listed in the connection's `options.events`\n");
        } else {
            let events: Vec<String> = p
                .events()
                .iter()
                .map(|e| {
                    let mut spellings: Vec<&str> = Vec::new();
                    if e.provider_key != e.name {
                        spellings.push(&e.provider_key);
                    }
                    spellings.extend(e.aliases);
                    if spellings.is_empty() {
                        format!("`{}`", e.name)
                    } else {
                        format!("`{}` (sent as {})", e.name, code_list(spellings))
                    }
                })
                .collect();
            writeln!(out, "- triggers: {}", events.join(", ")).unwrap();
        }
        let fields: Vec<String> = p
            .fields()
            .iter()
            .map(|f| format!("`{}` ({})", f.key, f.kind.as_str()))
            .collect();
        let fields = if fields.is_empty() {
            "none".to_owned()
        } else {
            fields.join(", ")
        };
        writeln!(
            out,
            "- record fields besides `email`, `firstName`, `lastName`: {fields}"
        )
        .unwrap();
        writeln!(
            out,
            "- without an email, the contact is found by: {}\n",
            code_list(p.identity_fields().iter().copied())
        )
        .unwrap();
    }
    out
}

#[test]
fn providers_doc_matches_the_registry() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/providers.md");
    let doc = std::fs::read_to_string(&path).expect("docs/providers.md");
    let (head, rest) = doc.split_once(BEGIN).expect("the BEGIN GENERATED marker");
    let (current, tail) = rest.split_once(END).expect("the END GENERATED marker");
    let generated = format!("\n\n{}", render());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{head}{BEGIN}{generated}{END}{tail}")).unwrap();
        return;
    }
    assert!(
        current == generated,
        "docs/providers.md is out of date: run UPDATE_DOCS=1 cargo test -p firehook-adapters --test docs"
    );
}
