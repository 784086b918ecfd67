//! Agency profiles: who an agency says it is, signed by its node key (DESIGN §2).
//!
//! A [`Profile`] names the agency, its jurisdiction (ISO 3166-1 alpha-2, one of the assigned
//! codes), the infrastructure sectors it runs and a contact. It travels as a signed envelope
//! tagged [`PROFILE_TAG`] ([`crate::envelope`]); the signer is `iss`. A requester sends its own
//! profile with every access request and transfer request, so that the owner can apply the
//! jurisdiction rules of ISO 37156 8.2.2 a and h to a claim the requester signed, and check
//! that it is the connected peer's own.
//!
//! What a profile does not do: prove that the jurisdiction is true. It is the requester's
//! signed statement, kept by the owner with its decision (8.3.4); an owner that needs more asks
//! for a registrar's attestation ([`crate::attestation`]).

use serde::{Deserialize, Serialize};

use crate::catalogue::{Domain, RuleError};
use crate::cbor::{DecodeError, EncodeError};
use crate::envelope::{self, Envelope, EnvelopeError};
use crate::identity::{Did, Keypair};
use crate::{country, limits, ucan};

/// Type tag of a signed agency profile.
pub const PROFILE_TAG: &str = "cix/profile@1";

/// An agency's description of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The agency's principal, the signer.
    pub iss: Did,
    /// Display name (ISO 37156 3.1.3 organization).
    pub name: String,
    /// ISO 3166-1 alpha-2 code of the jurisdiction the agency operates under (8.2.2 a).
    pub jurisdiction: String,
    /// Infrastructure sectors it runs: `energy`, `water`, `transport`, `waste`, `ict`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sectors: Vec<String>,
    /// Contact for data requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// When it was signed, Unix seconds.
    pub issued: i64,
    /// The agency's privacy notice (ISO 37156 8.3.3). Absent in profiles signed before notices
    /// existed, which still decode: the field is optional, the tag unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacyNotice>,
}

/// What an agency tells individuals about personal data it handles (ISO 37156 8.3.3): who the
/// controller is, why it processes the data, to whom it discloses it, the individuals' rights,
/// transfers across borders and whom to contact. Catalogue entries holding personal data name
/// its hash ([`PrivacyNotice::hash`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacyNotice {
    /// Identity of the controller (the legal entity responsible).
    pub controller: String,
    /// Purposes of processing.
    pub purposes: Vec<String>,
    /// Disclosure to third parties: to whom, on which basis.
    pub third_parties: String,
    /// Individuals' rights and how to exercise them.
    pub rights: String,
    /// Transfers outside the jurisdiction and their safeguards.
    pub cross_border: String,
    /// Contact for privacy matters (a data protection officer, say).
    pub contact: String,
    /// Where the full notice is published, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl PrivacyNotice {
    /// Checks sizes and that nothing required is empty.
    ///
    /// # Errors
    ///
    /// The first [`RuleError`], naming the field as `privacy.FIELD`.
    pub fn check(&self) -> Result<(), RuleError> {
        let max = limits::MAX_NOTICE_TEXT_BYTES;
        let texts: [(&'static str, &str); 5] = [
            ("privacy.controller", &self.controller),
            ("privacy.third_parties", &self.third_parties),
            ("privacy.rights", &self.rights),
            ("privacy.cross_border", &self.cross_border),
            ("privacy.contact", &self.contact),
        ];
        for (field, text) in texts {
            if text.trim().is_empty() {
                return Err(rule(field, "must not be empty"));
            }
            if text.len() > max {
                return Err(rule(field, format!("at most {max} bytes")));
            }
        }
        if self.purposes.is_empty() || self.purposes.len() > limits::MAX_NOTICE_PURPOSES {
            return Err(rule(
                "privacy.purposes",
                format!("between 1 and {} purposes", limits::MAX_NOTICE_PURPOSES),
            ));
        }
        if self
            .purposes
            .iter()
            .any(|p| p.trim().is_empty() || p.len() > max)
        {
            return Err(rule(
                "privacy.purposes",
                format!("each purpose is non-empty and at most {max} bytes"),
            ));
        }
        if self.url.as_ref().is_some_and(|u| u.len() > max) {
            return Err(rule("privacy.url", format!("at most {max} bytes")));
        }
        Ok(())
    }

    /// BLAKE3 of the notice's canonical CBOR, in hex: what an entry holding personal data names.
    ///
    /// # Errors
    ///
    /// If the notice cannot be encoded (it always can).
    pub fn hash(&self) -> Result<String, EncodeError> {
        let bytes = crate::cbor::to_vec(self)?;
        Ok(blake3::hash(&bytes).to_hex().to_string())
    }
}

/// Why a profile could not be signed or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Not a well-formed envelope, wrong tag, or a bad signature.
    #[error("profile envelope refused: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The payload is not a profile.
    #[error("not an agency profile: {0}")]
    Schema(#[from] DecodeError),
    /// CBOR encoding failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A field breaks a rule.
    #[error("profile refused: {0}")]
    Rule(#[from] RuleError),
    /// The signing key is not the profile's `iss`.
    #[error("the signing key is not the profile's issuer")]
    WrongKey,
    /// The signed profile exceeds [`limits::MAX_PROFILE_BYTES`].
    #[error("signed profile is {0} bytes, over the limit of {max}", max = limits::MAX_PROFILE_BYTES)]
    TooLarge(usize),
}

fn rule(field: &'static str, text: impl Into<String>) -> RuleError {
    RuleError {
        field,
        rule: text.into(),
    }
}

impl Profile {
    /// Checks the rules every profile meets, at signing and on receipt.
    ///
    /// # Errors
    ///
    /// The first [`RuleError`] found, naming the field.
    pub fn check(&self) -> Result<(), RuleError> {
        if self.name.trim().is_empty() {
            return Err(rule("name", "must not be empty"));
        }
        if self.name.len() > limits::MAX_AGENCY_NAME_BYTES {
            return Err(rule(
                "name",
                format!("at most {} bytes", limits::MAX_AGENCY_NAME_BYTES),
            ));
        }
        if !country::is_assigned(&self.jurisdiction) {
            return Err(rule(
                "jurisdiction",
                format!(
                    "{:?} is not an assigned ISO 3166-1 alpha-2 code",
                    self.jurisdiction.chars().take(8).collect::<String>()
                ),
            ));
        }
        if self.sectors.len() > limits::MAX_SECTORS {
            return Err(rule("sectors", format!("at most {}", limits::MAX_SECTORS)));
        }
        if let Some(bad) = self.sectors.iter().find(|s| s.parse::<Domain>().is_err()) {
            return Err(rule(
                "sectors",
                format!(
                    "{:?} is not one of energy, water, transport, waste, ict",
                    bad.chars().take(32).collect::<String>()
                ),
            ));
        }
        if self
            .contact
            .as_ref()
            .is_some_and(|c| c.len() > limits::MAX_AGENCY_NAME_BYTES)
        {
            return Err(rule(
                "contact",
                format!("at most {} bytes", limits::MAX_AGENCY_NAME_BYTES),
            ));
        }
        if !(0..=ucan::TIMESTAMP_LIMIT).contains(&self.issued) {
            return Err(rule("issued", "must be a Unix time in seconds"));
        }
        if let Some(n) = &self.privacy {
            n.check()?;
        }
        Ok(())
    }

    /// Checks the rules, then signs the profile with `key` (which must be `iss`).
    ///
    /// # Errors
    ///
    /// [`ProfileError`] naming the broken rule, a wrong key or an oversized result.
    pub fn sign(&self, key: &Keypair) -> Result<SignedProfile, ProfileError> {
        if key.did() != self.iss {
            return Err(ProfileError::WrongKey);
        }
        self.check()?;
        let bytes = envelope::seal(key, PROFILE_TAG, self)?;
        if bytes.len() > limits::MAX_PROFILE_BYTES {
            return Err(ProfileError::TooLarge(bytes.len()));
        }
        Ok(SignedProfile {
            profile: self.clone(),
            bytes,
        })
    }
}

/// A profile with its signed bytes, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedProfile {
    /// The decoded profile.
    pub profile: Profile,
    /// The envelope exactly as signed.
    pub bytes: Vec<u8>,
}

impl SignedProfile {
    /// Decodes strictly, verifies the signature against `iss`, and checks the rules.
    ///
    /// # Errors
    ///
    /// [`ProfileError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProfileError> {
        let env = Envelope::decode(bytes, limits::MAX_PROFILE_BYTES)?;
        env.expect_tag(PROFILE_TAG)?;
        let profile: Profile = env.payload()?;
        env.verify(&profile.iss.public_key())?;
        profile.check()?;
        Ok(Self {
            profile,
            bytes: bytes.to_vec(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn profile(key: &Keypair) -> Profile {
        Profile {
            iss: key.did(),
            name: "Water Board".into(),
            jurisdiction: "NL".into(),
            sectors: vec!["water".into()],
            contact: Some("data@water.example".into()),
            issued: 1_800_000_000,
            privacy: None,
        }
    }

    fn notice() -> PrivacyNotice {
        PrivacyNotice {
            controller: "Water Board of Delfland".into(),
            purposes: vec!["network maintenance".into()],
            third_parties: "none".into(),
            rights: "access, rectification, erasure".into(),
            cross_border: "none".into(),
            contact: "privacy@water.example".into(),
            url: Some("https://water.example/privacy".into()),
        }
    }

    #[test]
    fn privacy_notice_round_trips_and_old_profiles_still_decode() {
        // ISO 37156 8.3.3: the notice travels inside the signed profile.
        let key = Keypair::generate();
        let mut p = profile(&key);
        p.privacy = Some(notice());
        let signed = p.sign(&key).unwrap();
        let back = SignedProfile::decode(&signed.bytes).unwrap();
        assert_eq!(back.profile.privacy, Some(notice()));
        // A profile signed without the field (as every profile before notices) decodes.
        let old = profile(&key).sign(&key).unwrap();
        assert_eq!(
            SignedProfile::decode(&old.bytes).unwrap().profile.privacy,
            None
        );
        // The hash changes with the content.
        let mut other = notice();
        other.rights.push_str(", portability");
        assert_ne!(notice().hash().unwrap(), other.hash().unwrap());
    }

    #[test]
    fn privacy_notice_rules_name_the_field() {
        let key = Keypair::generate();
        let mut p = profile(&key);
        let mut n = notice();
        n.controller = " ".into();
        p.privacy = Some(n);
        assert!(p
            .sign(&key)
            .unwrap_err()
            .to_string()
            .contains("privacy.controller"));
        let mut n = notice();
        n.purposes = vec!["p".into(); limits::MAX_NOTICE_PURPOSES + 1];
        p.privacy = Some(n);
        assert!(p
            .sign(&key)
            .unwrap_err()
            .to_string()
            .contains("privacy.purposes"));
        let mut n = notice();
        n.rights = "r".repeat(limits::MAX_NOTICE_TEXT_BYTES + 1);
        p.privacy = Some(n);
        assert!(p
            .sign(&key)
            .unwrap_err()
            .to_string()
            .contains("privacy.rights"));
    }

    #[test]
    fn signed_profile_round_trips_and_verifies() {
        let key = Keypair::generate();
        let signed = profile(&key).sign(&key).unwrap();
        let back = SignedProfile::decode(&signed.bytes).unwrap();
        assert_eq!(back, signed);
    }

    #[test]
    fn unassigned_jurisdiction_is_refused_naming_the_field() {
        let key = Keypair::generate();
        for bad in ["XX", "EU", "nl", "NLD"] {
            let mut p = profile(&key);
            p.jurisdiction = bad.into();
            let err = p.sign(&key).unwrap_err();
            assert!(err.to_string().contains("jurisdiction"), "{bad}: {err}");
        }
    }

    #[test]
    fn profile_signed_by_another_key_does_not_verify() {
        let (key, other) = (Keypair::generate(), Keypair::generate());
        let p = profile(&key);
        assert_eq!(p.sign(&other).unwrap_err(), ProfileError::WrongKey);
        // Sealed by hand under the wrong key: the signature check catches it.
        let bytes = envelope::seal(&other, PROFILE_TAG, &p).unwrap();
        assert!(matches!(
            SignedProfile::decode(&bytes),
            Err(ProfileError::Envelope(EnvelopeError::Signature(_)))
        ));
    }

    #[test]
    fn an_entry_envelope_is_not_a_profile() {
        let key = Keypair::generate();
        let bytes = envelope::seal(&key, "cix/entry@1", &profile(&key)).unwrap();
        assert!(matches!(
            SignedProfile::decode(&bytes),
            Err(ProfileError::Envelope(EnvelopeError::WrongType { .. }))
        ));
    }

    #[test]
    fn unknown_sector_and_oversized_name_are_refused() {
        let key = Keypair::generate();
        let mut p = profile(&key);
        p.sectors = vec!["finance".into()];
        assert!(p.sign(&key).unwrap_err().to_string().contains("sectors"));
        let mut p = profile(&key);
        p.name = "n".repeat(limits::MAX_AGENCY_NAME_BYTES + 1);
        assert!(p.sign(&key).unwrap_err().to_string().contains("name"));
    }
}
