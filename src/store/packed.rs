//! Delivery bodies as the log stores them: deflated, when that makes them smaller.
//!
//! A verified body is most of a log row's bytes, and every byte a fire's transaction writes
//! is written twice more on SQLite (the WAL, then the checkpoint), so a provider's JSON,
//! which deflates to about half, halves the log's share of that. Bodies are packed on the
//! request's worker thread, not by the committer.

use std::io::{Read, Write};

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;

/// The stored `body_encoding` of a raw DEFLATE stream (RFC 1951); no encoding: as received.
const DEFLATE: &str = "deflate";

/// A body as stored, with its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBody {
    pub bytes: Vec<u8>,
    pub encoding: Option<&'static str>,
}

/// Deflates `body`, or keeps it as it is when that is no larger.
pub fn pack(body: &[u8]) -> PackedBody {
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(body.len() / 2), Compression::fast());
    let deflated = encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .expect("writing to a Vec does not fail");
    if deflated.len() < body.len() {
        PackedBody {
            bytes: deflated,
            encoding: Some(DEFLATE),
        }
    } else {
        PackedBody {
            bytes: body.to_vec(),
            encoding: None,
        }
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
        Some(DEFLATE) => {
            let mut body = Vec::with_capacity(bytes.len() * 3);
            DeflateDecoder::new(bytes.as_slice())
                .read_to_end(&mut body)
                .map_err(|e| Undecodable(e.to_string()))?;
            Ok(body)
        }
        Some(other) => Err(Undecodable(format!("unknown encoding {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_deflated_and_comes_back_byte_for_byte() {
        let body = format!(
            r#"{{"data":{{"email_addresses":[{{"email_address":"a@example.com"}}],"padding":"{}"}},"type":"user.created"}}"#,
            "ab".repeat(500)
        );
        let packed = pack(body.as_bytes());
        assert_eq!(packed.encoding, Some(DEFLATE));
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
        // Hash output looks random: deflating cannot make it smaller.
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
        assert!(unpack(vec![0xff; 16], Some(DEFLATE)).is_err());
        assert!(unpack(b"{}".to_vec(), Some("br")).is_err());
    }
}
