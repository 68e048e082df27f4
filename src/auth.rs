//! API keys: random, shown once, stored only as a SHA-256 hash.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::ids;
use crate::store::{NewApiKey, Store};

const KEY_PREFIX: &str = "fh_";

/// A freshly minted key: `secret` is shown once and never stored.
pub struct MintedKey {
    pub id: String,
    pub secret: String,
}

pub fn mint_key() -> MintedKey {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    MintedKey {
        id: ids::new_id(ids::API_KEY),
        secret: format!("{KEY_PREFIX}{}", hex::encode(bytes)),
    }
}

/// The stored form of a key. Keys carry 192 random bits, so a plain hash is enough.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn hint(secret: &str) -> String {
    secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// Stores a new key for `org_id` (minted unless `secret` is given) and returns it.
pub async fn create_key(
    store: &Store,
    org_id: &str,
    name: &str,
    now: i64,
) -> anyhow::Result<MintedKey> {
    let key = mint_key();
    let hash = hash_key(&key.secret);
    store
        .insert_api_key(
            org_id,
            &NewApiKey {
                id: &key.id,
                name,
                hash: &hash,
                hint: &hint(&key.secret),
            },
            now,
        )
        .await?;
    Ok(key)
}

/// Creates an org with its first key. `secret` overrides the minted key (bootstrap config).
pub async fn create_org(
    store: &Store,
    name: &str,
    secret: Option<&str>,
    now: i64,
) -> anyhow::Result<(String, MintedKey)> {
    let org_id = ids::new_id(ids::ORG);
    let mut key = mint_key();
    if let Some(secret) = secret {
        key.secret = secret.to_owned();
    }
    let hash = hash_key(&key.secret);
    let new = NewApiKey {
        id: &key.id,
        name: "default",
        hash: &hash,
        hint: &hint(&key.secret),
    };
    store.create_org_with_key(&org_id, name, &new, now).await?;
    Ok((org_id, key))
}
