//! The signed envelope shared by UCAN tokens and cix's own signed records.
//!
//! ```text
//! envelope = [ signature: bytes .size 64, signed ]
//! signed   = { "h": bytes (varsig header), TAG: payload }
//! ```
//!
//! This is exactly UCAN 1.0's envelope; cix uses the same shape for catalogue entries
//! (`cix/entry@1`) and other records, so one parser and one signature rule serve them all. The
//! signature covers the canonical bytes of `signed`; the type tag inside it is the domain
//! separation between kinds of record (a signed entry can never be replayed as a token). The
//! signer's key is named inside the payload (`iss`); the caller supplies it to
//! [`Envelope::verify`] after reading the payload, because which field names the signer is the
//! payload type's business.

use ciborium::Value;
use serde::{de::DeserializeOwned, Serialize};

use crate::cbor::{self, DecodeError, EncodeError};
use crate::identity::{Keypair, PublicKey, SignatureError};

/// Varsig header for an Ed25519 signature over DAG-CBOR: varsig prefix `0x34`, version 1,
/// Ed25519 (`0xed01`), Ed25519 again as the curve, SHA2-512 (`0x13`), DAG-CBOR (`0x71`).
pub const VARSIG_ED25519_DAG_CBOR: [u8; 8] = [0x34, 0x01, 0xed, 0x01, 0xed, 0x01, 0x13, 0x71];

/// Key of the varsig header inside the signed map.
const HEADER_KEY: &str = "h";

/// Why bytes are not an acceptable envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not canonical CBOR, or too large.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Canonical CBOR, but not `[signature, {h, tag: payload}]`.
    #[error("not a signed envelope: {0}")]
    Shape(&'static str),
    /// The varsig header is not Ed25519 over DAG-CBOR.
    #[error("unsupported signature header {0}")]
    Header(String),
    /// The type tag is not the one expected here.
    #[error("wrong record type {found:?}, expected {expected:?}")]
    WrongType {
        /// What the envelope holds.
        found: String,
        /// What the caller asked for.
        expected: String,
    },
    /// The signature does not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// A decoded, not yet verified, envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    signature: [u8; 64],
    tag: String,
    payload: Value,
    signed: Vec<u8>,
}

/// Signs `payload` under `tag` with `key` and returns the canonical envelope bytes.
///
/// # Errors
///
/// [`EncodeError`] if the payload cannot be encoded canonically (it holds a float, say).
pub fn seal<T: Serialize>(key: &Keypair, tag: &str, payload: &T) -> Result<Vec<u8>, EncodeError> {
    let payload = Value::serialized(payload).map_err(|e| EncodeError(e.to_string()))?;
    let signed = Value::Map(vec![
        (
            Value::Text(HEADER_KEY.into()),
            Value::Bytes(VARSIG_ED25519_DAG_CBOR.to_vec()),
        ),
        (Value::Text(tag.into()), payload),
    ]);
    let signed_bytes = cbor::value_to_vec(&signed)?;
    let signature = key.sign(&signed_bytes);
    let mut out = Vec::with_capacity(signed_bytes.len() + 67);
    // array(2), bytes(64): fixed prefix, then the signature, then the signed map as encoded.
    out.extend_from_slice(&[0x82, 0x58, 0x40]);
    out.extend_from_slice(&signature);
    out.extend_from_slice(&signed_bytes);
    Ok(out)
}

impl Envelope {
    /// Parses envelope bytes strictly; `limit` bounds their length.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError`] naming what is wrong. The signature is not checked here.
    pub fn decode(bytes: &[u8], limit: usize) -> Result<Self, EnvelopeError> {
        let value = cbor::value_from_slice(bytes, limit)?;
        let Value::Array(mut parts) = value else {
            return Err(EnvelopeError::Shape("top level is not an array"));
        };
        if parts.len() != 2 {
            return Err(EnvelopeError::Shape(
                "top-level array must have two elements",
            ));
        }
        let signed = parts.pop().unwrap_or(Value::Null);
        let signature: [u8; 64] = match parts.pop() {
            Some(Value::Bytes(b)) => b
                .try_into()
                .map_err(|_| EnvelopeError::Shape("signature is not 64 bytes"))?,
            _ => return Err(EnvelopeError::Shape("signature is not a byte string")),
        };
        let signed_bytes = cbor::value_to_vec(&signed).map_err(|e| DecodeError::Schema(e.0))?;
        let Value::Map(mut entries) = signed else {
            return Err(EnvelopeError::Shape("signed part is not a map"));
        };
        if entries.len() != 2 {
            return Err(EnvelopeError::Shape(
                "signed map must have exactly h and one payload",
            ));
        }
        // Canonical order puts "h" (shortest key) first.
        let (tag, payload) = entries.pop().unwrap_or((Value::Null, Value::Null));
        let (hk, header) = entries.pop().unwrap_or((Value::Null, Value::Null));
        if hk.as_text() != Some(HEADER_KEY) {
            return Err(EnvelopeError::Shape("signed map lacks the varsig header h"));
        }
        match header {
            Value::Bytes(h) if h == VARSIG_ED25519_DAG_CBOR => {}
            Value::Bytes(h) => return Err(EnvelopeError::Header(hex::encode(h))),
            _ => return Err(EnvelopeError::Shape("varsig header is not a byte string")),
        }
        let Value::Text(tag) = tag else {
            return Err(EnvelopeError::Shape("payload type tag is not text"));
        };
        Ok(Self {
            signature,
            tag,
            payload,
            signed: signed_bytes,
        })
    }

    /// The record type tag, for example `ucan/dlg@1.0.0` or `cix/entry@1`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Fails unless the tag is `expected`.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::WrongType`].
    pub fn expect_tag(&self, expected: &str) -> Result<(), EnvelopeError> {
        if self.tag == expected {
            Ok(())
        } else {
            Err(EnvelopeError::WrongType {
                found: self.tag.clone(),
                expected: expected.into(),
            })
        }
    }

    /// The payload as a generic CBOR value.
    pub fn payload_value(&self) -> &Value {
        &self.payload
    }

    /// The payload as a typed record, strictly: unknown fields or any other difference between
    /// the received payload and the record's own encoding is refused.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] naming the mismatch.
    pub fn payload<T: Serialize + DeserializeOwned>(&self) -> Result<T, DecodeError> {
        let typed: T = self
            .payload
            .deserialized()
            .map_err(|e| DecodeError::Schema(e.to_string()))?;
        let ours = cbor::to_vec(&typed).map_err(|e| DecodeError::Schema(e.0))?;
        let theirs = cbor::value_to_vec(&self.payload).map_err(|e| DecodeError::Schema(e.0))?;
        if ours != theirs {
            return Err(DecodeError::Schema(
                "payload has fields this version does not know".into(),
            ));
        }
        Ok(typed)
    }

    /// The 64-byte signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The exact bytes the signature covers.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }

    /// Checks the signature against `key`.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::Signature`].
    pub fn verify(&self, key: &PublicKey) -> Result<(), EnvelopeError> {
        Ok(key.verify(&self.signed, &self.signature)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Note {
        iss: crate::identity::Did,
        text: String,
    }

    #[test]
    fn seal_then_open() {
        let key = Keypair::generate();
        let note = Note {
            iss: key.did(),
            text: "pressure along main 4".into(),
        };
        let bytes = seal(&key, "cix/test@1", &note).unwrap();
        let env = Envelope::decode(&bytes, 4096).unwrap();
        env.expect_tag("cix/test@1").unwrap();
        let back: Note = env.payload().unwrap();
        assert_eq!(back, note);
        env.verify(&back.iss.public_key()).unwrap();
    }

    #[test]
    fn tampered_payload_fails_signature() {
        let key = Keypair::generate();
        let note = Note {
            iss: key.did(),
            text: "abc".into(),
        };
        let mut bytes = seal(&key, "cix/test@1", &note).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01; // "abc" -> "abb"
        let env = Envelope::decode(&bytes, 4096).unwrap();
        assert!(matches!(
            env.verify(&key.public()),
            Err(EnvelopeError::Signature(_))
        ));
    }

    #[test]
    fn wrong_tag_is_refused() {
        let key = Keypair::generate();
        let bytes = seal(
            &key,
            "cix/entry@1",
            &Note {
                iss: key.did(),
                text: "x".into(),
            },
        )
        .unwrap();
        let env = Envelope::decode(&bytes, 4096).unwrap();
        assert!(matches!(
            env.expect_tag("ucan/dlg@1.0.0"),
            Err(EnvelopeError::WrongType { .. })
        ));
    }
}
