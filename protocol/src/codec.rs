//! The bincode codec behind every remote message field.
//!
//! Each encoded value starts with [`WIRE_VERSION`], then the bincode (standard config)
//! encoding of the value through serde. A peer that speaks another version is detected on
//! decode instead of being misread.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version of the wire format; bumped whenever an encoded type changes shape.
pub const WIRE_VERSION: u8 = 3;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes were empty: not even a version byte.
    #[error("empty frame: no version byte")]
    Empty,
    /// The peer speaks another wire version.
    #[error(
        "wire version {found} is not {WIRE_VERSION}: upgrade every node to the same Marie release"
    )]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// The body did not decode as the expected type.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes `value` with the version byte in front.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![WIRE_VERSION];
    // Encoding into a Vec only fails for types serde cannot represent, which none of
    // the wire types is.
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("wire types are always encodable");
    out.extend_from_slice(&body);
    out
}

/// Largest job payload that fits in one cluster frame: ractor_cluster's frames carry at
/// most 16 MiB, less room kept here for the rest of the message. A larger frame would
/// close the whole link between two nodes, so clients and Gateways refuse such a job.
pub const MAX_FRAME_PAYLOAD: u64 = 16 * 1024 * 1024 - 64 * 1024;

/// Most bytes a decoded value may claim: ractor_cluster's inbound frame limit (16 MiB).
/// No value read from one frame can be larger.
const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Decodes bytes written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != WIRE_VERSION {
        return Err(DecodeError::Version { found: version });
    }
    // The limit makes bincode refuse a length prefix larger than a frame can be before
    // it allocates: without it a 10-byte frame announcing a 1 TiB string aborts the
    // process (an allocation failure is not a panic ractor could catch).
    let config = bincode::config::standard().with_limit::<{ MAX_FRAME_BYTES }>();
    let (value, _) = bincode::serde::decode_from_slice(body, config)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(value)
}

/// Implements `ractor::BytesConvertable` for wire types through [`encode`] / [`decode`].
///
/// `from_bytes` cannot return an error; a frame that does not decode panics there, which
/// the cluster layer catches and turns into a dropped message (logged by the node).
/// Replies are not wire types of this kind: `Reply` and `StoreReply` turn bytes that do
/// not decode into their error arm, so the caller learns why instead of seeing a drop.
#[macro_export]
macro_rules! wire_type {
    ($($ty:ty),+ $(,)?) => {$(
        impl ::ractor::BytesConvertable for $ty {
            fn into_bytes(self) -> Vec<u8> {
                $crate::codec::encode(&self)
            }
            fn from_bytes(bytes: Vec<u8>) -> Self {
                match $crate::codec::decode(&bytes) {
                    Ok(value) => value,
                    Err(e) => panic!("cannot decode {}: {e}", stringify!($ty)),
                }
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_keeps_the_value() {
        let v = (String::from("pool"), 7u32, vec![1u8, 2, 3]);
        let bytes = encode(&v);
        assert_eq!(bytes[0], WIRE_VERSION);
        let back: (String, u32, Vec<u8>) = decode(&bytes).expect("decodes");
        assert_eq!(back, v);
    }

    #[test]
    fn another_version_is_refused() {
        let mut bytes = encode(&5u32);
        bytes[0] = WIRE_VERSION + 1;
        let err = decode::<u32>(&bytes).unwrap_err();
        assert!(matches!(err, DecodeError::Version { .. }), "{err}");
    }

    #[test]
    fn truncated_frame_is_malformed() {
        let bytes = encode(&String::from("a long enough string"));
        let err = decode::<String>(&bytes[..4]).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)), "{err}");
        assert!(matches!(decode::<u8>(&[]), Err(DecodeError::Empty)));
    }

    #[test]
    fn a_huge_length_prefix_is_malformed_not_an_allocation() {
        // Version, then bincode's varint marker for a u64 and 2^40: a 1 TiB string.
        let mut bytes = vec![WIRE_VERSION, 253];
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let err = decode::<String>(&bytes).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)), "{err}");
        let err = decode::<Vec<u8>>(&bytes).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)), "{err}");
    }
}
