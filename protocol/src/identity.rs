//! Identities: Ed25519 key pairs, written as `did:key` in tokens and catalogue entries.
//!
//! A node has one Ed25519 key. The same 32-byte public key is the node's libp2p identity
//! (the node crate derives the PeerId from it) and, written as `did:key:z6Mk…`, the agency's
//! principal in UCAN tokens and catalogue entries. This module owns the key types, the `did:key`
//! text form (multicodec `0xed01` followed by the key, base58btc with the `z` multibase prefix)
//! and the one signature check cix uses everywhere: `verify_strict` plus rejection of weak
//! (small-order) keys, which is what the Ed25519 speccheck fixtures expect of us.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Multicodec varint of an Ed25519 public key (`0xed`).
const ED25519_PUB_MULTICODEC: [u8; 2] = [0xed, 0x01];
/// The fixed prefix of every `did:key` that names an Ed25519 key.
const DID_KEY_PREFIX: &str = "did:key:z";

/// Why a signature or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The public key is of small order; anyone could forge signatures for it.
    #[error("weak (small-order) public key")]
    WeakKey,
    /// The bytes are not a point on the curve.
    #[error("malformed public key")]
    MalformedKey,
    /// The signature does not verify under `verify_strict`.
    #[error("signature does not verify")]
    BadSignature,
}

/// Why a `did:key` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DidError {
    /// Not `did:key:z…`.
    #[error("not an ed25519 did:key (expected did:key:z6Mk...): {0:?}")]
    Scheme(String),
    /// The base58 part does not decode.
    #[error("did:key is not valid base58btc")]
    Base58,
    /// The multicodec is not Ed25519 or the key length is wrong.
    #[error("did:key does not hold a 32-byte ed25519 key")]
    NotEd25519,
    /// The key bytes are not usable.
    #[error("did:key holds an unusable key: {0}")]
    Key(#[from] SignatureError),
}

/// An Ed25519 public key: a principal of the network.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Accepts 32 bytes as a public key if they are a valid, non-weak curve point.
    ///
    /// # Errors
    ///
    /// [`SignatureError::MalformedKey`] or [`SignatureError::WeakKey`].
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, SignatureError> {
        let vk = VerifyingKey::from_bytes(&bytes).map_err(|_| SignatureError::MalformedKey)?;
        if vk.is_weak() {
            return Err(SignatureError::WeakKey);
        }
        Ok(Self(bytes))
    }

    /// The raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Checks a signature over `message` with `verify_strict`.
    ///
    /// # Errors
    ///
    /// [`SignatureError`] naming why it failed.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), SignatureError> {
        verify_strict(&self.0, message, signature)
    }

    /// The `did:key` form of this key.
    pub fn did(&self) -> Did {
        Did(*self)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.did())
    }
}

/// Verifies a signature the way every cix component must: the key is decoded and refused if
/// weak, and the signature checked with `verify_strict` (canonical `S`, no small-order `R`).
///
/// # Errors
///
/// [`SignatureError`] naming why it failed.
pub fn verify_strict(
    public_key: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    let vk = VerifyingKey::from_bytes(public_key).map_err(|_| SignatureError::MalformedKey)?;
    if vk.is_weak() {
        return Err(SignatureError::WeakKey);
    }
    let sig = Signature::from_bytes(signature);
    vk.verify_strict(message, &sig)
        .map_err(|_| SignatureError::BadSignature)
}

/// A node's or a person's secret key. Never serialised by serde, never printed.
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl Keypair {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// The key whose 32-byte seed is given.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The 32-byte seed; handle with care (it is the whole secret).
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// The `did:key` of the public half.
    pub fn did(&self) -> Did {
        self.public().did()
    }

    /// Signs `message` (deterministic Ed25519).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({}, secret elided)", self.did())
    }
}

/// A `did:key` naming an Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did(PublicKey);

impl Did {
    /// The key this DID names.
    pub fn public_key(&self) -> PublicKey {
        self.0
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(34);
        raw.extend_from_slice(&ED25519_PUB_MULTICODEC);
        raw.extend_from_slice(&self.0 .0);
        write!(f, "{DID_KEY_PREFIX}{}", bs58::encode(raw).into_string())
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Did {
    type Err = DidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // 34 bytes of base58 never exceed 48 characters; refuse longer input before decoding.
        let rest = s
            .strip_prefix(DID_KEY_PREFIX)
            .filter(|r| r.len() <= 48)
            .ok_or_else(|| DidError::Scheme(s.chars().take(80).collect()))?;
        let raw = bs58::decode(rest)
            .into_vec()
            .map_err(|_| DidError::Base58)?;
        let key: [u8; 32] = match raw.split_first_chunk::<2>() {
            Some((codec, key)) if *codec == ED25519_PUB_MULTICODEC => {
                key.try_into().map_err(|_| DidError::NotEd25519)?
            }
            _ => return Err(DidError::NotEd25519),
        };
        Ok(Did(PublicKey::from_bytes(key)?))
    }
}

impl Serialize for Did {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Did {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn did_round_trips_and_starts_with_z6mk() {
        let key = Keypair::generate();
        let did = key.did();
        let text = did.to_string();
        assert!(text.starts_with("did:key:z6Mk"), "{text}");
        assert_eq!(text.parse::<Did>().unwrap(), did);
    }

    #[test]
    fn known_did_decodes() {
        // A principal from the UCAN working group's delegation fixture.
        let did: Did = "did:key:z6MkmT9j6fVZqzXV8u2wVVSu49gYSRYGSQnduWXF6foAJrqz"
            .parse()
            .unwrap();
        assert_eq!(
            did.to_string(),
            "did:key:z6MkmT9j6fVZqzXV8u2wVVSu49gYSRYGSQnduWXF6foAJrqz"
        );
    }

    #[test]
    fn rejects_other_methods_and_garbage() {
        assert!(matches!(
            "did:web:example.org".parse::<Did>(),
            Err(DidError::Scheme(_))
        ));
        assert!(matches!(
            "did:key:z0OIl".parse::<Did>(),
            Err(DidError::Base58)
        ));
        // secp256k1 multicodec (0xe7 0x01) is not accepted.
        let mut raw = vec![0xe7, 0x01];
        raw.extend_from_slice(&[1u8; 33]);
        let s = format!("did:key:z{}", bs58::encode(raw).into_string());
        assert_eq!(s.parse::<Did>(), Err(DidError::NotEd25519));
    }

    #[test]
    fn rejects_small_order_key() {
        // The identity point is of small order.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert_eq!(PublicKey::from_bytes(id), Err(SignatureError::WeakKey));
    }

    #[test]
    fn signature_checks() {
        let key = Keypair::generate();
        let sig = key.sign(b"hello");
        key.public().verify(b"hello", &sig).unwrap();
        assert_eq!(
            key.public().verify(b"hellO", &sig),
            Err(SignatureError::BadSignature)
        );
    }
}
