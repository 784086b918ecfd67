//! Withdrawals: a publisher's signed statement that one of its datasets leaves every listing
//! (ISO 37156 4.2 g: the history of a dataset stays known, and its end is part of that history).
//!
//! ```text
//! envelope = [ signature, { "h": varsig, "cix/withdraw@1": withdrawal } ]
//! withdrawal = { "iss": did:key, "dataset": bytes .size 16, "version": uint, "at": int,
//!                ? "reason": text }
//! ```
//!
//! A dataset is the pair (`iss`, `dataset`) (`specs/catalogue.md` §5), so a withdrawal only
//! ever concerns the dataset its own signer publishes: nobody can withdraw another agency's
//! dataset, because the signature must verify against `iss` and `iss` is half of the dataset's
//! identity. `version` is the last version withdrawn: every entry of the pair with a version up
//! to it is hidden from listings; a later version, greater than `version`, lists the dataset
//! again. Withdrawals are kept for good and travel on their own gossip topic
//! ([`crate::wire::WITHDRAWAL_TOPIC`]) and through catch-up.
//!
//! The withdrawal id is the BLAKE3 hash of its envelope bytes.

use serde::{Deserialize, Serialize};

use crate::catalogue::DatasetId;
use crate::cbor::EncodeError;
use crate::envelope::{self, Envelope, EnvelopeError};
use crate::identity::{Did, Keypair};
use crate::limits::{MAX_WITHDRAWAL_BYTES, MAX_WITHDRAWAL_REASON_BYTES};

/// Type tag of a withdrawal inside the signed envelope.
pub const WITHDRAWAL_TAG: &str = "cix/withdraw@1";

/// What a withdrawal says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// The publisher of the dataset, who signs.
    pub iss: Did,
    /// The dataset withdrawn.
    pub dataset: DatasetId,
    /// The last version withdrawn (at least 1): versions up to it leave listings.
    pub version: u64,
    /// When, Unix seconds.
    pub at: i64,
    /// Why, for the operators who see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why bytes are not an acceptable withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WithdrawalError {
    /// Not a well-formed, correctly signed envelope of the right type.
    #[error("withdrawal envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The payload is not a withdrawal.
    #[error("withdrawal payload: {0}")]
    Payload(String),
    /// The reason is too long.
    #[error("withdrawal reason is longer than {MAX_WITHDRAWAL_REASON_BYTES} bytes")]
    Reason,
    /// The version is 0 (versions start at 1).
    #[error("withdrawal version must be at least 1")]
    Version,
    /// The time is negative or beyond what UCAN timestamps allow.
    #[error("withdrawal time {0} is out of range")]
    Time(i64),
}

/// A withdrawal as received: checked, with its bytes and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedWithdrawal {
    /// What it says.
    pub withdrawal: Withdrawal,
    /// The exact envelope bytes, as they travel.
    pub bytes: Vec<u8>,
    /// BLAKE3 of `bytes`.
    pub id: [u8; 32],
}

impl Withdrawal {
    /// Checks the fields a signature cannot vouch for.
    ///
    /// # Errors
    ///
    /// [`WithdrawalError`] naming the field.
    pub fn check(&self) -> Result<(), WithdrawalError> {
        if self
            .reason
            .as_ref()
            .is_some_and(|r| r.len() > MAX_WITHDRAWAL_REASON_BYTES)
        {
            return Err(WithdrawalError::Reason);
        }
        if self.version == 0 {
            return Err(WithdrawalError::Version);
        }
        if !(0..=crate::ucan::TIMESTAMP_LIMIT).contains(&self.at) {
            return Err(WithdrawalError::Time(self.at));
        }
        Ok(())
    }

    /// Signs the withdrawal with `key`, which must be the key of `iss`.
    ///
    /// # Errors
    ///
    /// If a field is out of bounds, the key is not `iss`'s, or encoding fails.
    pub fn seal(&self, key: &Keypair) -> Result<SignedWithdrawal, WithdrawalError> {
        self.check()?;
        if key.did() != self.iss {
            return Err(WithdrawalError::Payload(
                "the signing key is not the withdrawal's issuer".into(),
            ));
        }
        let bytes = envelope::seal(key, WITHDRAWAL_TAG, self)
            .map_err(|EncodeError(e)| WithdrawalError::Payload(e))?;
        SignedWithdrawal::decode(&bytes)
    }
}

impl SignedWithdrawal {
    /// Decodes strictly (canonical CBOR, known fields only, at most [`MAX_WITHDRAWAL_BYTES`]),
    /// checks the signature against `iss` and the field bounds.
    ///
    /// # Errors
    ///
    /// [`WithdrawalError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, WithdrawalError> {
        let env = Envelope::decode(bytes, MAX_WITHDRAWAL_BYTES)?;
        env.expect_tag(WITHDRAWAL_TAG)?;
        let withdrawal: Withdrawal = env
            .payload()
            .map_err(|e| WithdrawalError::Payload(e.to_string()))?;
        withdrawal.check()?;
        env.verify(&withdrawal.iss.public_key())?;
        Ok(Self {
            withdrawal,
            bytes: bytes.to_vec(),
            id: *blake3::hash(bytes).as_bytes(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(key: &Keypair) -> Withdrawal {
        Withdrawal {
            iss: key.did(),
            dataset: DatasetId([5; 16]),
            version: 3,
            at: 1_780_000_000,
            reason: Some("sensor network decommissioned".into()),
        }
    }

    #[test]
    fn round_trip_and_tamper_are_caught() {
        let key = Keypair::generate();
        let signed = sample(&key).seal(&key).unwrap();
        let back = SignedWithdrawal::decode(&signed.bytes).unwrap();
        assert_eq!(back.withdrawal, sample(&key));
        assert_eq!(back.id, *blake3::hash(&signed.bytes).as_bytes());
        let mut bad = signed.bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(SignedWithdrawal::decode(&bad).is_err());
        let mut trailing = signed.bytes.clone();
        trailing.push(0);
        assert!(SignedWithdrawal::decode(&trailing).is_err());
    }

    #[test]
    fn a_withdrawal_naming_another_issuer_does_not_verify() {
        let owner = Keypair::generate();
        let forger = Keypair::generate();
        // Signing with someone else's name is refused by seal...
        assert!(sample(&owner).seal(&forger).is_err());
        // ...and an envelope forged by hand does not verify against the named issuer.
        let bytes = envelope::seal(&forger, WITHDRAWAL_TAG, &sample(&owner)).unwrap();
        assert!(matches!(
            SignedWithdrawal::decode(&bytes),
            Err(WithdrawalError::Envelope(EnvelopeError::Signature(_)))
        ));
    }

    #[test]
    fn bounds_are_enforced() {
        let key = Keypair::generate();
        let mut w = sample(&key);
        w.reason = Some("x".repeat(MAX_WITHDRAWAL_REASON_BYTES + 1));
        assert_eq!(w.seal(&key).unwrap_err(), WithdrawalError::Reason);
        w.reason = None;
        w.version = 0;
        assert_eq!(w.seal(&key).unwrap_err(), WithdrawalError::Version);
        w.version = 1;
        w.at = -5;
        assert_eq!(w.seal(&key).unwrap_err(), WithdrawalError::Time(-5));
        // An entry envelope is not a withdrawal, even when correctly signed.
        let other = envelope::seal(&key, "cix/entry@1", &sample(&key)).unwrap();
        assert!(matches!(
            SignedWithdrawal::decode(&other),
            Err(WithdrawalError::Envelope(EnvelopeError::WrongType { .. }))
        ));
    }
}
