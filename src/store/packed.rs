//! Delivery bodies as the log stores them: LZ4-compressed, when that makes them smaller.
//!
//! A verified body is most of a log row's bytes, and on SQLite every byte a fire's
//! transaction writes is written twice more (the WAL, then the checkpoint). LZ4 brings a
//! provider's JSON to about two thirds. DEFLATE gets it near half, but each stream resets
//! a few hundred KiB of tables, and with both cores busy that cost more throughput than
//! the smaller rows gave back. Bodies are packed right before they are written (a repeat
//! answered from memory packs nothing), on the caller's thread, not by the committer.

/// The stored `body_encoding` of an LZ4 block (no frame) after its length as received, in
/// 4 bytes little-endian; no encoding: as received.
const LZ4: &str = "lz4";

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

    /// Packs a body [`as_received`](Self::as_received); a packed one stays as it is.
    pub fn pack(&mut self) {
        if self.encoding.is_none() {
            *self = pack(&self.bytes);
        }
    }
}

/// Compresses `body`, or keeps it as it is when that is no smaller.
fn pack(body: &[u8]) -> PackedBody {
    let packed = lz4_flex::block::compress_prepend_size(body);
    if packed.len() < body.len() {
        PackedBody {
            bytes: packed,
            encoding: Some(LZ4),
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
    match encoding {
        None => Ok(bytes),
        Some(LZ4) => {
            let claimed = bytes
                .get(..4)
                .map(|len| u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize)
                .ok_or_else(|| Undecodable("shorter than its length".into()))?;
            if claimed > MAX_UNPACKED {
                return Err(Undecodable(format!("claims {claimed} bytes")));
            }
            lz4_flex::block::decompress_size_prepended(&bytes)
                .map_err(|e| Undecodable(e.to_string()))
        }
        Some(other) => Err(Undecodable(format!("unknown encoding {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_compressed_and_comes_back_byte_for_byte() {
        let body = format!(
            r#"{{"data":{{"email_addresses":[{{"email_address":"a@example.com"}}],"padding":"{}"}},"type":"user.created"}}"#,
            "ab".repeat(500)
        );
        let mut packed = PackedBody::as_received(body.clone().into_bytes());
        packed.pack();
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
    fn bytes_that_do_not_shrink_are_kept_as_received() {
        // Hash output looks random: compressing cannot make it smaller.
        use sha2::{Digest, Sha256};
        let body: Vec<u8> = (0u32..64)
            .flat_map(|i| Sha256::digest(i.to_be_bytes()))
            .collect();
        let packed = pack(&body);
        assert_eq!(packed.encoding, None);
        assert_eq!(packed.bytes, body);
        assert_eq!(unpack(packed.bytes, None).unwrap(), body);
    }

    #[test]
    fn damaged_or_unknown_encodings_are_errors() {
        let mut damaged = pack(&[b'a'; 4096]).bytes;
        damaged.truncate(damaged.len() - 2);
        assert!(unpack(damaged, Some(LZ4)).is_err());
        assert!(unpack(vec![0xff; 16], Some(LZ4)).is_err());
        assert!(unpack(vec![1], Some(LZ4)).is_err());
        assert!(unpack(b"{}".to_vec(), Some("br")).is_err());
    }
}
