//! Signing secrets at rest: XChaCha20-Poly1305 with a random nonce per value, stored as
//! `enc:v1:<key id>:<base64(nonce || ciphertext)>` so the column stays TEXT on both
//! backends. The row a value belongs to is authenticated too, so a sealed secret copied
//! into another row does not open.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// The key secrets are sealed with, and its public id (a digest prefix, so an operator can
/// tell keys apart without seeing them).
#[derive(Clone)]
pub struct SealingKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey").field("id", &self.id).finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("not an encrypted value (expected enc:v1:...)")]
    NotSealed,
    #[error("sealed with key {found}, not with the configured key {expected}")]
    OtherKey { found: String, expected: String },
    #[error("the encrypted value is malformed or was altered")]
    Tampered,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an encryption key must be the base64 of exactly {KEY_LEN} bytes")]
pub struct BadKey;

impl SealingKey {
    /// A key from its base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<SealingKey, BadKey> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| BadKey)?;
        if bytes.len() != KEY_LEN {
            return Err(BadKey);
        }
        let digest = Sha256::new()
            .chain_update(b"firehook key id\0")
            .chain_update(&bytes)
            .finalize();
        Ok(SealingKey {
            cipher: XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| BadKey)?,
            id: hex::encode(&digest[..4]),
        })
    }

    /// A fresh random key, as base64 text.
    pub fn generate_base64() -> String {
        STANDARD.encode(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain`, bound to `row` (e.g. `connection_secrets:<id>`).
    pub fn seal(&self, row: &str, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: row.as_bytes(),
        };
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(&nonce, payload)
                .expect("encryption of an in-memory value cannot fail"),
        );
        format!("{PREFIX}{}:{}", self.id, STANDARD.encode(out))
    }

    /// The plain value of a sealed one stored in `row`.
    pub fn open(&self, row: &str, stored: &str) -> Result<String, OpenError> {
        let rest = stored.strip_prefix(PREFIX).ok_or(OpenError::NotSealed)?;
        let (id, data) = rest.split_once(':').ok_or(OpenError::Tampered)?;
        if id != self.id {
            return Err(OpenError::OtherKey {
                found: id.to_owned(),
                expected: self.id.clone(),
            });
        }
        let data = STANDARD.decode(data).map_err(|_| OpenError::Tampered)?;
        if data.len() < NONCE_LEN {
            return Err(OpenError::Tampered);
        }
        let (nonce, ciphertext) = data.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: row.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(nonce.into(), payload)
            .map_err(|_| OpenError::Tampered)?;
        String::from_utf8(plain).map_err(|_| OpenError::Tampered)
    }
}

/// Whether a stored value is sealed (rather than left in clear by an older version).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with("enc:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_base64(&SealingKey::generate_base64()).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_to_itself_and_hides_it() {
        let key = key();
        let sealed = key.seal("connection_secrets:sec_1", "whsec_c2VjcmV0");
        assert!(is_sealed(&sealed));
        assert!(sealed.starts_with(&format!("enc:v1:{}:", key.id())));
        assert!(!sealed.contains("whsec_c2VjcmV0"));
        assert_ne!(
            sealed,
            key.seal("connection_secrets:sec_1", "whsec_c2VjcmV0"),
            "a fresh nonce each time"
        );
        assert_eq!(
            key.open("connection_secrets:sec_1", &sealed).unwrap(),
            "whsec_c2VjcmV0"
        );
    }

    #[test]
    fn a_tampered_value_is_refused() {
        let key = key();
        let sealed = key.seal("r", "secret");
        let (head, data) = sealed.rsplit_once(':').unwrap();
        let mut bytes = STANDARD.decode(data).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let flipped = format!("{head}:{}", STANDARD.encode(&bytes));
        assert_eq!(key.open("r", &flipped), Err(OpenError::Tampered));
        let short = format!("{head}:{}", STANDARD.encode(&bytes[..10]));
        assert_eq!(key.open("r", &short), Err(OpenError::Tampered));
        assert_eq!(key.open("r", "secret"), Err(OpenError::NotSealed));
    }

    #[test]
    fn a_value_moved_to_another_row_is_refused() {
        let key = key();
        let sealed = key.seal("connection_secrets:a", "secret");
        assert_eq!(
            key.open("connection_secrets:b", &sealed),
            Err(OpenError::Tampered)
        );
    }

    #[test]
    fn the_wrong_key_is_refused() {
        let (right, wrong) = (key(), key());
        let sealed = right.seal("r", "secret");
        assert!(matches!(
            wrong.open("r", &sealed),
            Err(OpenError::OtherKey { .. })
        ));
        // A value claiming the wrong key's id still fails authentication.
        let forged = sealed.replacen(right.id(), wrong.id(), 1);
        assert_eq!(wrong.open("r", &forged), Err(OpenError::Tampered));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(
            SealingKey::from_base64(&STANDARD.encode([0u8; 16])).err(),
            Some(BadKey)
        );
        assert_eq!(SealingKey::from_base64("not base64!").err(), Some(BadKey));
        let text = SealingKey::generate_base64();
        assert_eq!(
            SealingKey::from_base64(&format!("{text}\n")).unwrap().id(),
            SealingKey::from_base64(&text).unwrap().id()
        );
    }
}
