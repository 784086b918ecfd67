//! Token ids: CIDv1, codec dag-cbor, sha2-256 of the whole token.
//!
//! A token is named by the hash of its complete envelope bytes (signature included), so two
//! peers holding the same bytes agree on the name and a single flipped bit gives another name.
//! cix produces and accepts exactly one CID shape: version 1, multicodec `0x71` (dag-cbor),
//! multihash `0x12` (sha2-256) with a 32-byte digest. Anything else is refused rather than
//! carried along, because it could never name a token we are able to check.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// CID version 1, dag-cbor, sha2-256, 32-byte digest: the four bytes every token id opens with.
const PREFIX: [u8; 4] = [0x01, 0x71, 0x12, 0x20];
/// Length of the binary CID.
const CID_LEN: usize = PREFIX.len() + 32;
/// The CBOR tag DAG-CBOR reserves for links.
pub(crate) const LINK_TAG: u64 = 42;
/// Multibase prefix of lowercase base32 without padding.
const BASE32_PREFIX: char = 'b';
/// Length of the text form: the prefix plus ceil(36 * 8 / 5) characters.
const TEXT_LEN: usize = 1 + (CID_LEN * 8).div_ceil(5);

/// Why bytes or text were not accepted as a token id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidError {
    /// The text is not multibase base32 lower (`b…`) of the right length.
    #[error("cid text is not lowercase base32 starting with 'b': {0:?}")]
    Text(String),
    /// The binary form is not CIDv1 dag-cbor sha2-256.
    #[error("unsupported cid (cix token ids are cidv1 dag-cbor sha2-256): {0}")]
    Unsupported(String),
    /// A DAG-CBOR link lacks the identity-multibase 0x00 byte or the tag 42.
    #[error("malformed dag-cbor link: {0}")]
    Link(&'static str),
}

/// The id of a token: CIDv1 dag-cbor sha2-256 over the complete token bytes.
///
/// Displayed as multibase base32 lower (`bafyrei…`); serialised (serde) as a DAG-CBOR link,
/// that is CBOR tag 42 around a byte string holding `0x00` then the binary CID. Compared as
/// bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid([u8; CID_LEN]);

impl Cid {
    /// The id of the token whose complete envelope bytes are `bytes`.
    pub fn of_token(bytes: &[u8]) -> Cid {
        let digest = Sha256::digest(bytes);
        let mut out = [0u8; CID_LEN];
        out[..PREFIX.len()].copy_from_slice(&PREFIX);
        out[PREFIX.len()..].copy_from_slice(&digest);
        Cid(out)
    }

    /// Accepts a binary CID if it has the one shape cix uses.
    ///
    /// # Errors
    ///
    /// [`CidError::Unsupported`] for any other version, codec, hash or length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Cid, CidError> {
        let unsupported = || CidError::Unsupported(hex::encode(bytes.get(..8).unwrap_or(bytes)));
        let raw: [u8; CID_LEN] = bytes.try_into().map_err(|_| unsupported())?;
        if raw[..PREFIX.len()] != PREFIX {
            return Err(unsupported());
        }
        Ok(Cid(raw))
    }

    /// The binary CID (36 bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The sha2-256 digest of the token.
    pub fn digest(&self) -> &[u8] {
        &self.0[PREFIX.len()..]
    }

    /// The CID as a DAG-CBOR link value (tag 42, `0x00` + binary CID).
    pub fn to_link(&self) -> ciborium::Value {
        ciborium::Value::Tag(
            LINK_TAG,
            Box::new(ciborium::Value::Bytes(self.link_bytes())),
        )
    }

    /// Reads a DAG-CBOR link value.
    ///
    /// # Errors
    ///
    /// [`CidError`] if the value is not tag 42 around `0x00` and a supported CID.
    pub fn from_link(value: &ciborium::Value) -> Result<Cid, CidError> {
        match value {
            ciborium::Value::Tag(LINK_TAG, inner) => match inner.as_ref() {
                ciborium::Value::Bytes(b) => Self::from_link_bytes(b),
                _ => Err(CidError::Link("tag 42 does not hold a byte string")),
            },
            _ => Err(CidError::Link("not a cbor tag 42")),
        }
    }

    fn link_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CID_LEN + 1);
        out.push(0x00);
        out.extend_from_slice(&self.0);
        out
    }

    fn from_link_bytes(bytes: &[u8]) -> Result<Cid, CidError> {
        match bytes.split_first() {
            Some((0x00, cid)) => Cid::from_bytes(cid),
            _ => Err(CidError::Link(
                "link bytes do not start with the 0x00 multibase byte",
            )),
        }
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let upper = data_encoding::BASE32_NOPAD.encode(&self.0);
        write!(f, "{BASE32_PREFIX}{}", upper.to_ascii_lowercase())
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl FromStr for Cid {
    type Err = CidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidError::Text(s.chars().take(80).collect());
        // Length first, so nothing long is ever decoded.
        if s.len() != TEXT_LEN {
            return Err(bad());
        }
        let body = s.strip_prefix(BASE32_PREFIX).ok_or_else(bad)?;
        if !body
            .bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
        {
            return Err(bad());
        }
        let raw = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| bad())?;
        Cid::from_bytes(&raw)
    }
}

impl Serialize for Cid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = serde_bytes::ByteBuf::from(self.link_bytes());
        ciborium::tag::Required::<_, LINK_TAG>(bytes).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Cid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tagged = ciborium::tag::Required::<serde_bytes::ByteBuf, LINK_TAG>::deserialize(d)?;
        Cid::from_link_bytes(&tagged.0).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_known_prefix() {
        let cid = Cid::of_token(b"a token");
        let text = cid.to_string();
        assert!(text.starts_with("bafyrei"), "{text}");
        assert_eq!(text.len(), TEXT_LEN);
        assert_eq!(text.parse::<Cid>().unwrap(), cid);
    }

    #[test]
    fn refuses_uppercase_other_codecs_and_garbage() {
        let text = Cid::of_token(b"x").to_string();
        assert!(text.to_ascii_uppercase().parse::<Cid>().is_err());
        assert!("bafy".parse::<Cid>().is_err());
        assert!("".parse::<Cid>().is_err());
        // Same digest under the raw codec (0x55) is not a token id.
        let mut raw = Cid::of_token(b"x").0;
        raw[1] = 0x55;
        assert!(matches!(
            Cid::from_bytes(&raw),
            Err(CidError::Unsupported(_))
        ));
        assert!(Cid::from_bytes(&raw[..10]).is_err());
    }

    #[test]
    fn serde_is_a_dag_cbor_link() {
        let cid = Cid::of_token(b"abc");
        let bytes = crate::cbor::to_vec(&cid).unwrap();
        // tag(42) = d8 2a, bytes(37) = 58 25, then 00 and the CID.
        assert_eq!(hex::encode(&bytes[..6]), "d82a58250001");
        assert_eq!(&bytes[6..], &cid.0[1..]);
        let back: Cid = crate::cbor::from_slice(&bytes, 100).unwrap();
        assert_eq!(back, cid);
        assert_eq!(Cid::from_link(&cid.to_link()).unwrap(), cid);
    }

    #[test]
    fn link_without_zero_byte_is_refused() {
        let value = ciborium::Value::Tag(42, Box::new(ciborium::Value::Bytes(vec![1; 36])));
        assert!(matches!(Cid::from_link(&value), Err(CidError::Link(_))));
    }
}
