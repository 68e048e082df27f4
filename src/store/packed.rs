//! Delivery bodies as the log stores them: LZ4-compressed, when that makes them smaller.
//!
//! A verified body is most of a log row's bytes, and on SQLite every byte a fire's
//! transaction writes is written twice more (the WAL, then the checkpoint). LZ4 alone brings
//! a provider's JSON to about two thirds. DEFLATE gets it near half, but each stream resets
//! a few hundred KiB of tables, and with both cores busy that cost more throughput than
//! the smaller rows gave back. Bodies are packed right before they are written (a repeat
//! answered from memory packs nothing), on the caller's thread, not by the committer.
//!
//! Most of a webhook body is its provider's key names and fixed values, the same in every
//! delivery, and a single body is too short for LZ4 to find them repeated. So a provider's
//! body is compressed against a dictionary of that provider's sample bodies (the fire
//! fixtures of `fixtures/<provider>/`, a few KiB each, in `dictionaries/`), which takes a
//! Clerk `user.created` of 1,662 bytes from 1,167 bytes with plain LZ4 to 489. A stored body
//! names its dictionary in its encoding, so a dictionary is never changed once shipped: a
//! better one is added under a new version and the old one is kept for the rows it wrote.

/// The stored `body_encoding` of an LZ4 block (no frame) after its length as received, in
/// 4 bytes little-endian; no encoding: as received.
const LZ4: &str = "lz4";

/// A shipped dictionary: `dictionaries/<provider>-<version>.txt`, named in the encoding of
/// the bodies it packed as `lz4:<provider>-<version>`.
struct Dictionary {
    provider: &'static str,
    encoding: &'static str,
    bytes: &'static [u8],
}

macro_rules! dictionary {
    ($provider:literal, $version:literal) => {
        Dictionary {
            provider: $provider,
            encoding: concat!("lz4:", $provider, "-", $version),
            bytes: include_bytes!(concat!("dictionaries/", $provider, "-", $version, ".txt")),
        }
    };
}

/// Every dictionary a body may name. A provider's last one packs its new bodies; providers
/// whose bodies have no fixed shape (`generic`, `standard`) have none.
const DICTIONARIES: &[Dictionary] = &[
    dictionary!("brevo", 1),
    dictionary!("brimble", 1),
    dictionary!("clerk", 1),
    dictionary!("revenuecat", 1),
    dictionary!("shopify", 1),
    dictionary!("stripe", 1),
    dictionary!("stytch", 1),
    dictionary!("supabase", 1),
    dictionary!("workos", 1),
];

/// The dictionary new bodies of `provider` are packed with.
fn current_dictionary(provider: &str) -> Option<&'static Dictionary> {
    DICTIONARIES.iter().rev().find(|d| d.provider == provider)
}

fn dictionary(encoding: &str) -> Option<&'static [u8]> {
    DICTIONARIES
        .iter()
        .find(|d| d.encoding == encoding)
        .map(|d| d.bytes)
}

/// The largest body a stored length may claim; a larger one is damage, not a body (the
/// receive path refuses anything near it).
const MAX_UNPACKED: usize = 256 * 1024 * 1024;

/// A body as stored, with its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBody {
    pub bytes: Vec<u8>,
    pub encoding: Option<&'static str>,
}

impl PackedBody {
    /// A body as it arrived, not yet packed.
    pub fn as_received(bytes: Vec<u8>) -> PackedBody {
        PackedBody {
            bytes,
            encoding: None,
        }
    }

    /// Packs a body [`as_received`](Self::as_received) from `provider`; a packed one stays
    /// as it is.
    pub fn pack(&mut self, provider: &str) {
        if self.encoding.is_none() {
            *self = pack(&self.bytes, provider);
        }
    }
}

/// Compresses `body`, or keeps it as it is when that is no smaller.
fn pack(body: &[u8], provider: &str) -> PackedBody {
    let (packed, encoding) = match current_dictionary(provider) {
        Some(dict) => (
            lz4_flex::block::compress_prepend_size_with_dict(body, dict.bytes),
            dict.encoding,
        ),
        None => (lz4_flex::block::compress_prepend_size(body), LZ4),
    };
    if packed.len() < body.len() {
        PackedBody {
            bytes: packed,
            encoding: Some(encoding),
        }
    } else {
        PackedBody::as_received(body.to_vec())
    }
}

/// A stored body whose encoding is unknown or whose bytes do not decode.
#[derive(Debug, thiserror::Error)]
#[error("a stored delivery body does not decode: {0}")]
pub struct Undecodable(String);

/// The body as received, from its stored bytes and encoding.
pub fn unpack(bytes: Vec<u8>, encoding: Option<&str>) -> Result<Vec<u8>, Undecodable> {
    let Some(encoding) = encoding else {
        return Ok(bytes);
    };
    let dict = match encoding {
        LZ4 => &[][..],
        named => {
            dictionary(named).ok_or_else(|| Undecodable(format!("unknown encoding {named:?}")))?
        }
    };
    let claimed = bytes
        .get(..4)
        .map(|len| u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize)
        .ok_or_else(|| Undecodable("shorter than its length".into()))?;
    if claimed > MAX_UNPACKED {
        return Err(Undecodable(format!("claims {claimed} bytes")));
    }
    lz4_flex::block::decompress_size_prepended_with_dict(&bytes, dict)
        .map_err(|e| Undecodable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// The body of a fixture delivery, as the provider sent it.
    fn fixture_body(path: &str) -> Vec<u8> {
        let text =
            std::fs::read_to_string(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR")))
                .expect("fixture");
        let fixture: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        fixture["body"]
            .as_str()
            .expect("a body")
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn json_is_compressed_and_comes_back_byte_for_byte() {
        let body = format!(
            r#"{{"data":{{"email_addresses":[{{"email_address":"a@example.com"}}],"padding":"{}"}},"type":"user.created"}}"#,
            "ab".repeat(500)
        );
        let mut packed = PackedBody::as_received(body.clone().into_bytes());
        packed.pack("generic");
        assert_eq!(packed.encoding, Some(LZ4));
        assert!(
            packed.bytes.len() < body.len() / 2,
            "{}",
            packed.bytes.len()
        );
        assert_eq!(
            unpack(packed.bytes, packed.encoding).unwrap(),
            body.as_bytes()
        );
    }

    #[test]
    fn a_providers_body_packs_against_its_dictionary() {
        // A delivery like the fixture but of another user: the key names and fixed
        // values are the dictionary's, the ids and the address are not.
        let body = String::from_utf8(fixture_body("clerk/user.created.json"))
            .unwrap()
            .replace("user_", "user_7Qx")
            .replace("idn_", "idn_k2P")
            .replace("@", "+second@");
        let plain = lz4_flex::block::compress_prepend_size(body.as_bytes());
        let mut packed = PackedBody::as_received(body.clone().into_bytes());
        packed.pack("clerk");
        assert_eq!(packed.encoding, Some("lz4:clerk-1"));
        assert!(
            packed.bytes.len() * 2 < plain.len(),
            "{} with the dictionary against {} without",
            packed.bytes.len(),
            plain.len()
        );
        assert_eq!(
            unpack(packed.bytes, packed.encoding).unwrap(),
            body.as_bytes()
        );
    }

    #[test]
    fn a_body_longer_than_the_window_comes_back_whole() {
        let sample = fixture_body("stripe/customer.created.json");
        let body: Vec<u8> = sample.iter().copied().cycle().take(300 * 1024).collect();
        let packed = pack(&body, "stripe");
        assert_eq!(packed.encoding, Some("lz4:stripe-1"));
        assert_eq!(unpack(packed.bytes, packed.encoding).unwrap(), body);
    }

    #[test]
    fn every_dictionary_provider_packs_and_unpacks_its_fixtures() {
        for Dictionary { provider, .. } in DICTIONARIES {
            let encoding = current_dictionary(provider).unwrap().encoding;
            let dir = format!("{}/fixtures/{provider}", env!("CARGO_MANIFEST_DIR"));
            for entry in std::fs::read_dir(dir).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let body = fixture_body(&format!("{provider}/{name}"));
                let packed = pack(&body, provider);
                if packed.encoding.is_some() {
                    assert_eq!(packed.encoding, Some(encoding), "{provider}/{name}");
                }
                assert_eq!(
                    unpack(packed.bytes, packed.encoding).unwrap(),
                    body,
                    "{provider}/{name}"
                );
            }
        }
    }

    /// Rows name the dictionary they were packed with: a shipped dictionary that changed
    /// would turn them into garbage. A new dictionary gets a new version instead.
    #[test]
    fn shipped_dictionaries_never_change() {
        let digests: Vec<(&str, String)> = DICTIONARIES
            .iter()
            .map(|d| (d.encoding, hex::encode(&Sha256::digest(d.bytes)[..8])))
            .collect();
        let shipped = [
            ("lz4:brevo-1", "e76ef2e8540bbe77"),
            ("lz4:brimble-1", "47346718e571dd39"),
            ("lz4:clerk-1", "33d59eb2bbaaae09"),
            ("lz4:revenuecat-1", "98dce2c56d25c0d0"),
            ("lz4:shopify-1", "3bdb7d1e8aa3d614"),
            ("lz4:stripe-1", "3fe2b5b7e7e10b19"),
            ("lz4:stytch-1", "8d6fc3f6d0931077"),
            ("lz4:supabase-1", "b25537fb82bade16"),
            ("lz4:workos-1", "3cce8e19b3aebc41"),
        ];
        assert_eq!(digests, shipped.map(|(n, d)| (n, d.to_owned())));
    }

    #[test]
    fn bytes_that_do_not_shrink_are_kept_as_received() {
        // Hash output looks random: compressing cannot make it smaller.
        let body: Vec<u8> = (0u32..64)
            .flat_map(|i| Sha256::digest(i.to_be_bytes()))
            .collect();
        let packed = pack(&body, "clerk");
        assert_eq!(packed.encoding, None);
        assert_eq!(packed.bytes, body);
        assert_eq!(unpack(packed.bytes, None).unwrap(), body);
    }

    #[test]
    fn damaged_or_unknown_encodings_are_errors() {
        let mut damaged = pack(&[b'a'; 4096], "generic").bytes;
        damaged.truncate(damaged.len() - 2);
        assert!(unpack(damaged, Some(LZ4)).is_err());
        assert!(unpack(vec![0xff; 16], Some(LZ4)).is_err());
        assert!(unpack(vec![1], Some(LZ4)).is_err());
        assert!(unpack(b"{}".to_vec(), Some("br")).is_err());
        let packed = pack(&fixture_body("clerk/user.created.json"), "clerk");
        assert!(unpack(packed.bytes.clone(), Some("lz4:clerk-0")).is_err());
        // The right bytes against the wrong dictionary do not pass as a body.
        assert_ne!(
            unpack(packed.bytes, Some("lz4:stripe-1")).ok(),
            Some(fixture_body("clerk/user.created.json"))
        );
    }
}
