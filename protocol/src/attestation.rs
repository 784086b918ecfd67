//! Group membership attestations: a registrar's signed statement that an agency belongs to a
//! named group, the evidence behind ISO 37156 5.5.3 group access ("people or organisations
//! meeting predetermined rules").
//!
//! An [`Attestation`] says "registrar `iss` attests that `sub` is a member of `group` from
//! `issued` until `exp`". It travels as a signed envelope tagged [`ATTESTATION_TAG`]; the signer
//! is `iss`. A requester passes the attestations it holds with its access request; the owner
//! of a shared-group dataset grants access when one of them is from a registrar it trusts,
//! names the requester, is current, and names a group the dataset's rule (`iso.groups`)
//! accepts. Which registrars are trusted is the owner's configuration, not the protocol's.
//!
//! Group names are short lower-case identifiers ([`is_group_name`]); an entry's rule and an
//! attestation compare them byte for byte.

use serde::{Deserialize, Serialize};

use crate::catalogue::RuleError;
use crate::cbor::{DecodeError, EncodeError};
use crate::envelope::{self, Envelope, EnvelopeError};
use crate::identity::{Did, Keypair};
use crate::{limits, ucan};

/// Type tag of a signed membership attestation.
pub const ATTESTATION_TAG: &str = "cix/attest@1";

/// A registrar's statement that `sub` belongs to `group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// The registrar, the signer.
    pub iss: Did,
    /// The member.
    pub sub: Did,
    /// The group's name.
    pub group: String,
    /// When it was signed, Unix seconds.
    pub issued: i64,
    /// When it stops holding, Unix seconds.
    pub exp: i64,
}

/// Why an attestation could not be signed or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// Not a well-formed envelope, wrong tag, or a bad signature.
    #[error("attestation envelope refused: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The payload is not an attestation.
    #[error("not a membership attestation: {0}")]
    Schema(#[from] DecodeError),
    /// CBOR encoding failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A field breaks a rule.
    #[error("attestation refused: {0}")]
    Rule(#[from] RuleError),
    /// The signing key is not the attestation's `iss`.
    #[error("the signing key is not the attestation's issuer")]
    WrongKey,
    /// The signed attestation exceeds [`limits::MAX_ATTESTATION_BYTES`].
    #[error("signed attestation is {0} bytes, over the limit of {max}", max = limits::MAX_ATTESTATION_BYTES)]
    TooLarge(usize),
}

/// True for a valid group name: 1 to [`limits::MAX_GROUP_NAME_BYTES`] bytes of lower-case
/// ASCII letters, digits and `-`, `_`, `.`, `/`, starting with a letter or digit.
pub fn is_group_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= limits::MAX_GROUP_NAME_BYTES
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.' | b'/')
        })
}

fn rule(field: &'static str, text: impl Into<String>) -> RuleError {
    RuleError {
        field,
        rule: text.into(),
    }
}

impl Attestation {
    /// Checks the rules every attestation meets, at signing and on receipt.
    ///
    /// # Errors
    ///
    /// The first [`RuleError`] found, naming the field.
    pub fn check(&self) -> Result<(), RuleError> {
        if !is_group_name(&self.group) {
            return Err(rule(
                "group",
                format!(
                    "1 to {} bytes of a-z, 0-9, '-', '_', '.', '/', starting with a letter or digit",
                    limits::MAX_GROUP_NAME_BYTES
                ),
            ));
        }
        let times = 0..=ucan::TIMESTAMP_LIMIT;
        if !times.contains(&self.issued) || !times.contains(&self.exp) {
            return Err(rule("issued", "times must be Unix seconds"));
        }
        if self.exp <= self.issued {
            return Err(rule("exp", "must be after issued"));
        }
        Ok(())
    }

    /// Whether it holds at `now`, allowing [`ucan::MAX_CLOCK_SKEW_SECS`] either way.
    pub fn is_current(&self, now: i64) -> bool {
        self.issued <= now.saturating_add(ucan::MAX_CLOCK_SKEW_SECS)
            && now <= self.exp.saturating_add(ucan::MAX_CLOCK_SKEW_SECS)
    }

    /// Checks the rules, then signs with `key` (which must be `iss`); returns the envelope.
    ///
    /// # Errors
    ///
    /// [`AttestationError`] naming the broken rule, a wrong key or an oversized result.
    pub fn sign(&self, key: &Keypair) -> Result<Vec<u8>, AttestationError> {
        if key.did() != self.iss {
            return Err(AttestationError::WrongKey);
        }
        self.check()?;
        let bytes = envelope::seal(key, ATTESTATION_TAG, self)?;
        if bytes.len() > limits::MAX_ATTESTATION_BYTES {
            return Err(AttestationError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Decodes strictly, verifies the signature against `iss`, and checks the rules. Whether
    /// it is current, trusted and relevant is the caller's decision.
    ///
    /// # Errors
    ///
    /// [`AttestationError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, AttestationError> {
        let env = Envelope::decode(bytes, limits::MAX_ATTESTATION_BYTES)?;
        env.expect_tag(ATTESTATION_TAG)?;
        let a: Attestation = env.payload()?;
        env.verify(&a.iss.public_key())?;
        a.check()?;
        Ok(a)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn attestation_round_trips_and_knows_when_it_holds() {
        let (registrar, member) = (Keypair::generate(), Keypair::generate());
        let a = Attestation {
            iss: registrar.did(),
            sub: member.did(),
            group: "utility-operators".into(),
            issued: 1_000,
            exp: 2_000,
        };
        let bytes = a.sign(&registrar).unwrap();
        assert_eq!(Attestation::decode(&bytes).unwrap(), a);
        assert!(a.is_current(1_500));
        assert!(!a.is_current(2_000 + ucan::MAX_CLOCK_SKEW_SECS + 1));
        assert!(!a.is_current(1_000 - ucan::MAX_CLOCK_SKEW_SECS - 1));
    }

    #[test]
    fn tampered_or_malformed_attestations_are_refused() {
        let (registrar, member) = (Keypair::generate(), Keypair::generate());
        let mut a = Attestation {
            iss: registrar.did(),
            sub: member.did(),
            group: "g".into(),
            issued: 1_000,
            exp: 2_000,
        };
        let mut bytes = a.sign(&registrar).unwrap();
        let i = bytes.len() - 1;
        bytes[i] ^= 1;
        assert!(Attestation::decode(&bytes).is_err());
        a.group = "Bad Group".into();
        assert!(a
            .sign(&registrar)
            .unwrap_err()
            .to_string()
            .contains("group"));
        a.group = "g".into();
        a.exp = a.issued;
        assert!(a.sign(&registrar).unwrap_err().to_string().contains("exp"));
        assert_eq!(a.sign(&member).unwrap_err(), AttestationError::WrongKey);
    }

    #[test]
    fn group_names() {
        for ok in ["a", "utility-operators", "nl/water.boards_2"] {
            assert!(is_group_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "a b",
            &"a".repeat(limits::MAX_GROUP_NAME_BYTES + 1),
        ] {
            assert!(!is_group_name(bad), "{bad}");
        }
    }
}
