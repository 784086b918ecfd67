//! Revocations: a signed statement that a delegation may no longer be used (DESIGN §5,
//! ISO 37156 5.5.3 and 9.2 b: the owner changes the data's permissions, also after granting).
//!
//! ```text
//! envelope = [ signature, { "h": varsig, "cix/revoke@1": revocation } ]
//! revocation = { "iss": did:key, "revoke": CID link, "at": int, ? "reason": text }
//! ```
//!
//! A revocation names one delegation by its CID. Anyone may sign one, and nodes keep and pass
//! on every well-formed, correctly signed revocation, because a node cannot know in advance which
//! chains it will be shown. It takes effect only on a chain in which its issuer stands at or
//! above the revoked link: the issuer of the revoked delegation itself, or of any delegation
//! before it, root first ([`SignedRevocation::breaks`]). A stranger's revocation of someone
//! else's delegation therefore changes nothing. A revocation is final: there is no
//! un-revocation; the owner grants again instead.
//!
//! The revocation id is the BLAKE3 hash of its envelope bytes; catch-up pages are ordered by it.

use serde::{Deserialize, Serialize};

use crate::cbor::EncodeError;
use crate::envelope::{self, Envelope, EnvelopeError};
use crate::identity::{Did, Keypair};
use crate::ucan::{Cid, Delegation};

/// Type tag of a revocation inside the signed envelope.
pub const REVOCATION_TAG: &str = "cix/revoke@1";
/// Largest revocation envelope, in bytes (a real one is about 200).
pub const MAX_REVOCATION_BYTES: usize = 2048;
/// Longest `reason`, in bytes.
pub const MAX_REVOCATION_REASON_BYTES: usize = 512;

/// What a revocation says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Who revokes: the issuer of the revoked delegation or of one upstream of it.
    pub iss: Did,
    /// The delegation revoked.
    pub revoke: Cid,
    /// When, Unix seconds (informative: a revocation holds from the moment it is seen).
    pub at: i64,
    /// Why, for the operators who see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why bytes are not an acceptable revocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// Not a well-formed, correctly signed envelope of the right type.
    #[error("revocation envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The payload is not a revocation.
    #[error("revocation payload: {0}")]
    Payload(String),
    /// The reason is too long.
    #[error("revocation reason is longer than {MAX_REVOCATION_REASON_BYTES} bytes")]
    Reason,
    /// The time is negative or beyond what UCAN timestamps allow.
    #[error("revocation time {0} is out of range")]
    Time(i64),
}

/// A revocation as received: checked, with its bytes and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRevocation {
    /// What it says.
    pub revocation: Revocation,
    /// The exact envelope bytes, as they travel.
    pub bytes: Vec<u8>,
    /// BLAKE3 of `bytes`.
    pub id: [u8; 32],
}

impl Revocation {
    /// Checks the fields a signature cannot vouch for.
    ///
    /// # Errors
    ///
    /// [`RevocationError`] naming the field.
    pub fn check(&self) -> Result<(), RevocationError> {
        if self
            .reason
            .as_ref()
            .is_some_and(|r| r.len() > MAX_REVOCATION_REASON_BYTES)
        {
            return Err(RevocationError::Reason);
        }
        if !(0..=crate::ucan::TIMESTAMP_LIMIT).contains(&self.at) {
            return Err(RevocationError::Time(self.at));
        }
        Ok(())
    }

    /// Signs the revocation with `key`, which must be the key of `iss`.
    ///
    /// # Errors
    ///
    /// If the fields are out of bounds, the key is not `iss`'s, or encoding fails.
    pub fn seal(&self, key: &Keypair) -> Result<SignedRevocation, RevocationError> {
        self.check()?;
        if key.did() != self.iss {
            return Err(RevocationError::Payload(
                "the signing key is not the revocation's issuer".into(),
            ));
        }
        let bytes = envelope::seal(key, REVOCATION_TAG, self)
            .map_err(|EncodeError(e)| RevocationError::Payload(e))?;
        SignedRevocation::decode(&bytes)
    }
}

impl SignedRevocation {
    /// Decodes strictly (canonical CBOR, known fields only), checks the signature against
    /// `iss` and the field bounds.
    ///
    /// # Errors
    ///
    /// [`RevocationError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, RevocationError> {
        let env = Envelope::decode(bytes, MAX_REVOCATION_BYTES)?;
        env.expect_tag(REVOCATION_TAG)?;
        let revocation: Revocation = env
            .payload()
            .map_err(|e| RevocationError::Payload(e.to_string()))?;
        revocation.check()?;
        env.verify(&revocation.iss.public_key())?;
        Ok(Self {
            revocation,
            bytes: bytes.to_vec(),
            id: *blake3::hash(bytes).as_bytes(),
        })
    }

    /// `": REASON"` when the revocation states a reason, else empty: for messages that end in
    /// the signer's own words.
    pub fn reason_suffix(&self) -> String {
        self.revocation
            .reason
            .as_deref()
            .map(|t| format!(": {t}"))
            .unwrap_or_default()
    }

    /// The index of the link this revocation breaks in `chain` (root first, each delegation
    /// with its CID), or `None` if it does not apply: the revoked CID is not in the chain, or its
    /// issuer is neither the revoked delegation's issuer nor upstream of it.
    pub fn breaks(&self, chain: &[(Delegation, Cid)]) -> Option<usize> {
        let at = chain
            .iter()
            .position(|(_, cid)| *cid == self.revocation.revoke)?;
        chain[..=at]
            .iter()
            .any(|(d, _)| d.iss == self.revocation.iss)
            .then_some(at)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ucan::Policy;

    fn delegation(from: &Keypair, to: &Keypair, subject: &Keypair) -> (Delegation, Cid) {
        let d = Delegation {
            iss: from.did(),
            aud: to.did(),
            sub: Some(subject.did()),
            cmd: crate::ucan::CMD_FETCH.into(),
            pol: Policy::empty(),
            nonce: vec![7; 16],
            exp: Some(2_000_000_000),
            nbf: None,
            meta: None,
        };
        let (bytes, cid) = d.seal(from).unwrap();
        (Delegation::decode(&bytes).unwrap().0, cid)
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = Keypair::generate();
        let r = Revocation {
            iss: key.did(),
            revoke: Cid::of_token(b"some delegation"),
            at: 1_780_000_000,
            reason: Some("contract ended".into()),
        };
        let signed = r.seal(&key).unwrap();
        let back = SignedRevocation::decode(&signed.bytes).unwrap();
        assert_eq!(back.revocation, r);
        assert_eq!(back.id, *blake3::hash(&signed.bytes).as_bytes());

        let mut bad = signed.bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(SignedRevocation::decode(&bad).is_err());
        let mut trailing = signed.bytes.clone();
        trailing.push(0);
        assert!(SignedRevocation::decode(&trailing).is_err());
    }

    #[test]
    fn signing_with_someone_elses_key_is_refused() {
        let key = Keypair::generate();
        let other = Keypair::generate();
        let r = Revocation {
            iss: other.did(),
            revoke: Cid::of_token(b"x"),
            at: 1,
            reason: None,
        };
        assert!(r.seal(&key).is_err());
    }

    #[test]
    fn oversized_reason_and_bad_time_are_refused() {
        let key = Keypair::generate();
        let mut r = Revocation {
            iss: key.did(),
            revoke: Cid::of_token(b"x"),
            at: 1,
            reason: Some("x".repeat(MAX_REVOCATION_REASON_BYTES + 1)),
        };
        assert_eq!(r.seal(&key).unwrap_err(), RevocationError::Reason);
        r.reason = None;
        r.at = -1;
        assert!(matches!(r.seal(&key), Err(RevocationError::Time(-1))));
    }

    #[test]
    fn applies_only_from_the_revoked_link_or_upstream() {
        let owner = Keypair::generate();
        let middle = Keypair::generate();
        let last = Keypair::generate();
        let stranger = Keypair::generate();
        let root = delegation(&owner, &middle, &owner);
        let child = delegation(&middle, &last, &owner);
        let chain = vec![root.clone(), child.clone()];
        let revoke = |by: &Keypair, cid: Cid| {
            Revocation {
                iss: by.did(),
                revoke: cid,
                at: 1,
                reason: None,
            }
            .seal(by)
            .unwrap()
        };
        // The owner may revoke either link; the middle agency its own link only.
        assert_eq!(revoke(&owner, root.1).breaks(&chain), Some(0));
        assert_eq!(revoke(&owner, child.1).breaks(&chain), Some(1));
        assert_eq!(revoke(&middle, child.1).breaks(&chain), Some(1));
        assert_eq!(revoke(&middle, root.1).breaks(&chain), None);
        assert_eq!(revoke(&last, child.1).breaks(&chain), None);
        assert_eq!(revoke(&stranger, root.1).breaks(&chain), None);
        // A revocation of a delegation outside the chain changes nothing.
        assert_eq!(revoke(&owner, Cid::of_token(b"other")).breaks(&chain), None);
    }
}
