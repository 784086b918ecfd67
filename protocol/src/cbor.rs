//! Canonical CBOR: one encoding per value, and a decoder that accepts nothing else.
//!
//! Everything cix signs or hashes is CBOR in the deterministic form that DAG-CBOR fixes
//! (RFC 8949 §4.2.1 with DAG-CBOR's key order): definite lengths only, the shortest integer and
//! length encodings, map keys sorted shortest first and then bytewise, no duplicate keys and no
//! floats. Two implementations that agree on the value therefore agree on the bytes, and so on
//! every hash and signature over them.
//!
//! Decoding is strict in the simplest way that can be proved: parse the bytes into a generic
//! value, convert it into the typed message, encode that message canonically again and require
//! the very same bytes. Whatever a peer could vary (key order, integer width, unknown or
//! duplicated fields, an explicit `null` where a field is absent) is thereby refused. Input size
//! is bounded by the caller (every wire message has a limit, see [`crate::limits`]) and nesting
//! by [`MAX_DEPTH`], so no input can make the decoder allocate more than its own length or
//! recurse without bound.

use ciborium::Value;
use serde::{de::DeserializeOwned, Serialize};

/// Deepest nesting of arrays, maps and tags a decoder accepts. Our deepest message (a UCAN
/// policy inside an invocation inside a transfer request) stays far below this.
pub const MAX_DEPTH: usize = 64;

/// Why bytes were not accepted as a canonical CBOR message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not well-formed CBOR (or nest deeper than [`MAX_DEPTH`]).
    #[error("malformed cbor: {0}")]
    Malformed(String),
    /// Bytes follow the first complete item.
    #[error("{0} trailing bytes after the cbor item")]
    TrailingBytes(usize),
    /// A float appeared where cix forbids them.
    #[error("floating-point number in a signed payload")]
    Float,
    /// A map repeats a key.
    #[error("duplicate map key")]
    DuplicateKey,
    /// The CBOR is well formed but does not describe the expected message.
    #[error("schema mismatch: {0}")]
    Schema(String),
    /// The value is right but its encoding is not the canonical one.
    #[error("not canonical: re-encoding gives different bytes")]
    NotCanonical,
    /// The input is longer than the limit for this message.
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode as cbor: {0}")]
pub struct EncodeError(pub String);

/// Encodes `value` canonically.
///
/// # Errors
///
/// [`EncodeError`] if serde refuses the value or it holds a float.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let value = Value::serialized(value).map_err(|e| EncodeError(e.to_string()))?;
    value_to_vec(&value)
}

/// Encodes an already built generic value canonically.
///
/// # Errors
///
/// [`EncodeError`] if the value holds a float.
pub fn value_to_vec(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut value = value.clone();
    canonicalize(&mut value).map_err(|e| EncodeError(e.to_string()))?;
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).map_err(|e| EncodeError(e.to_string()))?;
    Ok(out)
}

/// Decodes bytes that must be exactly one canonical CBOR item describing a `T`.
///
/// # Errors
///
/// Any [`DecodeError`]; `limit` bounds the input length.
pub fn from_slice<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    let value = value_from_slice(bytes, limit)?;
    let typed: T = value
        .deserialized()
        .map_err(|e| DecodeError::Schema(e.to_string()))?;
    let again = to_vec(&typed).map_err(|e| DecodeError::Schema(e.0))?;
    if again != bytes {
        return Err(DecodeError::NotCanonical);
    }
    Ok(typed)
}

/// Decodes bytes into a generic value, checking that they are one canonical item with no
/// floats and no duplicate keys.
///
/// # Errors
///
/// Any [`DecodeError`] but `Schema`.
pub fn value_from_slice(bytes: &[u8], limit: usize) -> Result<Value, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
        .map_err(|e| DecodeError::Malformed(describe(e)))?;
    if !reader.is_empty() {
        return Err(DecodeError::TrailingBytes(reader.len()));
    }
    let mut check = value.clone();
    canonicalize(&mut check)?;
    let mut again = Vec::with_capacity(bytes.len());
    ciborium::into_writer(&check, &mut again).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if again != bytes {
        return Err(DecodeError::NotCanonical);
    }
    Ok(value)
}

fn describe<E: std::fmt::Debug>(e: ciborium::de::Error<E>) -> String {
    match e {
        ciborium::de::Error::Io(io) => format!("truncated input ({io:?})"),
        ciborium::de::Error::Syntax(at) => format!("syntax error at byte {at}"),
        ciborium::de::Error::Semantic(at, what) => match at {
            Some(at) => format!("{what} at byte {at}"),
            None => what,
        },
        ciborium::de::Error::RecursionLimitExceeded => {
            format!("nesting deeper than {MAX_DEPTH} levels")
        }
    }
}

/// Sorts every map's keys into DAG-CBOR order and refuses floats and duplicate keys.
fn canonicalize(value: &mut Value) -> Result<(), DecodeError> {
    match value {
        Value::Float(_) => Err(DecodeError::Float),
        Value::Array(items) => items.iter_mut().try_for_each(canonicalize),
        Value::Tag(_, inner) => canonicalize(inner),
        Value::Map(entries) => {
            let mut keyed = Vec::with_capacity(entries.len());
            for (mut k, mut v) in entries.drain(..) {
                canonicalize(&mut k)?;
                canonicalize(&mut v)?;
                let mut kb = Vec::new();
                ciborium::into_writer(&k, &mut kb)
                    .map_err(|e| DecodeError::Malformed(e.to_string()))?;
                keyed.push((kb, k, v));
            }
            keyed.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
            if keyed.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(DecodeError::DuplicateKey);
            }
            entries.extend(keyed.into_iter().map(|(_, k, v)| (k, v)));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Looks up a text key in a CBOR map.
pub fn map_get<'a>(map: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        zeta: u64,
        a: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        maybe: Option<u32>,
    }

    fn sample() -> Sample {
        Sample {
            zeta: 7,
            a: "x".into(),
            maybe: None,
        }
    }

    #[test]
    fn keys_sort_shortest_first_then_bytewise() {
        let bytes = to_vec(&sample()).unwrap();
        // map(2) "a" "x" "zeta" 7: "a" is shorter, so it comes first whatever the field order.
        assert_eq!(hex::encode(&bytes), "a261616178647a65746107");
        assert_eq!(from_slice::<Sample>(&bytes, 100).unwrap(), sample());
    }

    #[test]
    fn rejects_keys_out_of_order() {
        // Same map with "zeta" first.
        let bytes = hex::decode("a2647a6574610761616178").unwrap();
        assert_eq!(
            from_slice::<Sample>(&bytes, 100),
            Err(DecodeError::NotCanonical)
        );
    }

    #[test]
    fn rejects_non_minimal_integer() {
        // zeta encoded as 0x18 0x07 instead of 0x07.
        let bytes = hex::decode("a261616178647a6574611807").unwrap();
        assert_eq!(
            from_slice::<Sample>(&bytes, 100),
            Err(DecodeError::NotCanonical)
        );
    }

    #[test]
    fn rejects_indefinite_length_map() {
        let bytes = hex::decode("bf61616178647a65746107ff").unwrap();
        assert_eq!(
            from_slice::<Sample>(&bytes, 100),
            Err(DecodeError::NotCanonical)
        );
    }

    #[test]
    fn rejects_explicit_null_for_absent_field() {
        let bytes = hex::decode("a361616178656d61796265f6647a65746107").unwrap();
        assert_eq!(
            from_slice::<Sample>(&bytes, 100),
            Err(DecodeError::NotCanonical)
        );
    }

    #[test]
    fn rejects_unknown_field() {
        let bytes = hex::decode("a3616161786162f5647a65746107").unwrap();
        assert!(from_slice::<Sample>(&bytes, 100).is_err());
    }

    #[test]
    fn rejects_duplicate_keys() {
        let bytes = hex::decode("a3616161786161617a647a65746107").unwrap();
        assert_eq!(
            value_from_slice(&bytes, 100),
            Err(DecodeError::DuplicateKey)
        );
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = to_vec(&sample()).unwrap();
        bytes.push(0);
        assert_eq!(
            from_slice::<Sample>(&bytes, 100),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn rejects_floats() {
        let bytes = hex::decode("f93c00").unwrap(); // 1.0 as a half float
        assert_eq!(value_from_slice(&bytes, 100), Err(DecodeError::Float));
        assert!(to_vec(&1.5f64).is_err());
    }

    #[test]
    fn rejects_oversized_input_before_parsing() {
        let bytes = to_vec(&sample()).unwrap();
        assert_eq!(
            from_slice::<Sample>(&bytes, 4),
            Err(DecodeError::TooLarge {
                len: bytes.len(),
                limit: 4
            })
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let mut bytes = vec![0x81u8; 10_000]; // arrays of one element, 10,000 deep
        bytes.push(0x00);
        assert!(matches!(
            value_from_slice(&bytes, 1 << 20),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn huge_declared_byte_string_fails_without_allocating_it() {
        // A byte string that claims 4 GiB but carries three bytes.
        let bytes = hex::decode("5affffffff010203").unwrap();
        assert!(matches!(
            value_from_slice(&bytes, 1 << 20),
            Err(DecodeError::Malformed(_))
        ));
    }
}
