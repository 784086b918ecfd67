//! Delivery receipts and deletion notices (ISO 37156 8.3.4 auditable sharing, 9.4
//! accountability, 8.2.2 e retention), verifiable by anyone holding the bytes, without a node.
//!
//! ```text
//! receipt      = [ signature, { "h": varsig, "cix/receipt@1": receipt-body } ]    ; by receiver
//! countersign  = [ signature, { "h": varsig, "cix/receipt-ack@1": ack-body } ]    ; by provider
//! deletion     = [ signature, { "h": varsig, "cix/deletion@1": deletion-body } ]  ; by receiver
//! bundle       = [ receipt: bytes, countersign: bytes / null ]                    ; a receipt file
//! ```
//!
//! The receiver of a completed transfer signs a [`Receipt`] and sends it to the provider on
//! `/cix/receipt/1` ([`RECEIPT_PROTOCOL`]); the provider checks it against the transfer it
//! served and answers with a [`Countersignature`] naming the receipt's id (the BLAKE3 hash of
//! the receipt envelope's bytes) or a refusal. Both keep the pair; either can later show what
//! was delivered to whom, under which invocation and for which purpose. When data received under
//! a retention period is deleted, the receiver signs a [`DeletionNotice`] and sends it the same
//! way; the provider acknowledges it with [`ReceiptResponse::Noted`].
//!
//! Times are Unix milliseconds. Every record is canonical CBOR (`crate::cbor`) and every
//! signature is checked with `verify_strict` ([`crate::identity`]).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::catalogue::DatasetId;
use crate::cbor::{self, EncodeError};
use crate::content::ContentHash;
use crate::envelope::{self, Envelope, EnvelopeError};
use crate::identity::{Did, Keypair};
use crate::limits::{
    MAX_DELETION_BYTES, MAX_PURPOSE_BYTES, MAX_RECEIPT_ACK_BYTES, MAX_RECEIPT_BUNDLE_BYTES,
    MAX_RECEIPT_BYTES,
};
use crate::ucan::Cid;

/// Type tag of a receipt, signed by the receiver.
pub const RECEIPT_TAG: &str = "cix/receipt@1";
/// Type tag of a provider's counter-signature of a receipt.
pub const RECEIPT_ACK_TAG: &str = "cix/receipt-ack@1";
/// Type tag of a deletion notice, signed by the receiver.
pub const DELETION_TAG: &str = "cix/deletion@1";
/// The request-response protocol receipts and deletion notices travel on.
pub const RECEIPT_PROTOCOL: &str = "/cix/receipt/1";

/// Largest Unix-millisecond time a record may carry (year 9999).
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// What the receiver of a completed transfer states it received (ISO 37156 8.3.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The receiver, who signs.
    pub iss: Did,
    /// The provider that served the bytes (the dataset's owner).
    pub provider: Did,
    /// The dataset.
    pub dataset: DatasetId,
    /// BLAKE3 of the bytes delivered (for a projection, of the projection).
    pub content: ContentHash,
    /// Bytes delivered.
    pub bytes: u64,
    /// CID of the invocation the transfer was made under; absent for open data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation: Option<Cid>,
    /// The purpose the data was granted and fetched for (8.2.2 b); absent for open data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Days the receiver may keep the data (8.2.2 e), when the grant or the entry limits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// When the fetch started, Unix milliseconds.
    pub start: i64,
    /// When the last byte was verified, Unix milliseconds.
    pub end: i64,
}

/// The provider's counter-signature: it served exactly what the receipt says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Countersignature {
    /// The provider, who signs.
    pub iss: Did,
    /// BLAKE3 of the receipt envelope's bytes.
    #[serde(with = "serde_bytes")]
    pub receipt: [u8; 32],
    /// When the provider checked it, Unix milliseconds.
    pub at: i64,
}

/// The receiver's statement that it deleted data it held under a retention period (8.2.2 e).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionNotice {
    /// The receiver, who signs.
    pub iss: Did,
    /// The provider the data came from.
    pub provider: Did,
    /// The dataset.
    pub dataset: DatasetId,
    /// BLAKE3 of the bytes deleted.
    pub content: ContentHash,
    /// Id of the receipt of the transfer that delivered them, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hash32")]
    pub receipt: Option<[u8; 32]>,
    /// The retention period that ran out, in days.
    pub retention_days: u32,
    /// When the data was deleted, Unix milliseconds.
    pub deleted: i64,
}

mod opt_hash32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(h) => s.serialize_bytes(h),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        let b: Option<serde_bytes::ByteBuf> = Option::deserialize(d)?;
        match b {
            None => Ok(None),
            Some(b) => <[u8; 32]>::try_from(b.as_slice())
                .map(Some)
                .map_err(|_| serde::de::Error::custom("receipt id must be 32 bytes")),
        }
    }
}

/// A request on `/cix/receipt/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ReceiptRequest {
    /// A receipt for a transfer the provider served.
    Receipt {
        /// The receipt envelope.
        receipt: ByteBuf,
    },
    /// A deletion notice.
    Deletion {
        /// The deletion notice envelope.
        notice: ByteBuf,
    },
    /// The node's own signed profile, with its privacy notice (ISO 37156 8.3.3).
    Profile,
}

/// The answer on `/cix/receipt/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ReceiptResponse {
    /// The receipt checked out: the provider's counter-signature.
    Countersigned {
        /// The counter-signature envelope.
        ack: ByteBuf,
    },
    /// The deletion notice was verified and kept.
    Noted,
    /// The answer to [`ReceiptRequest::Profile`].
    Profile {
        /// The signed profile envelope (`cix/profile@1`).
        profile: ByteBuf,
    },
    /// Refused, with the reason.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Why bytes are not an acceptable receipt, counter-signature or deletion notice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Not a well-formed, correctly signed envelope of the right type.
    #[error("envelope refused: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The payload is not the record expected.
    #[error("payload refused: {0}")]
    Payload(String),
    /// A field breaks a rule.
    #[error("{field}: {rule}")]
    Rule {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        rule: String,
    },
    /// The signing key is not the record's issuer.
    #[error("the signing key is not the record's issuer")]
    WrongKey,
    /// The counter-signature is not the receipt's provider's, or names another receipt.
    #[error("counter-signature does not match: {0}")]
    Mismatch(String),
}

fn rule(field: &'static str, rule: impl Into<String>) -> ReceiptError {
    ReceiptError::Rule {
        field,
        rule: rule.into(),
    }
}

fn check_time(field: &'static str, t: i64) -> Result<(), ReceiptError> {
    if (0..=MAX_TIME_MS).contains(&t) {
        Ok(())
    } else {
        Err(rule(field, "must be a Unix time in milliseconds"))
    }
}

fn seal_checked<T: Serialize>(
    key: &Keypair,
    iss: &Did,
    tag: &str,
    body: &T,
    max: usize,
) -> Result<Vec<u8>, ReceiptError> {
    if &key.did() != iss {
        return Err(ReceiptError::WrongKey);
    }
    let bytes =
        envelope::seal(key, tag, body).map_err(|EncodeError(e)| ReceiptError::Payload(e))?;
    if bytes.len() > max {
        return Err(rule(
            "envelope",
            format!("{} bytes, over {max}", bytes.len()),
        ));
    }
    Ok(bytes)
}

impl Receipt {
    /// Checks what a signature cannot vouch for.
    ///
    /// # Errors
    ///
    /// [`ReceiptError::Rule`] naming the field.
    pub fn check(&self) -> Result<(), ReceiptError> {
        check_time("start", self.start)?;
        check_time("end", self.end)?;
        if self.end < self.start {
            return Err(rule("end", "is before start"));
        }
        if self
            .purpose
            .as_ref()
            .is_some_and(|p| p.len() > MAX_PURPOSE_BYTES)
        {
            return Err(rule(
                "purpose",
                format!("at most {MAX_PURPOSE_BYTES} bytes"),
            ));
        }
        if self.iss == self.provider {
            return Err(rule("provider", "is the receiver itself"));
        }
        Ok(())
    }

    /// Signs the receipt with the receiver's key.
    ///
    /// # Errors
    ///
    /// A broken rule, a key that is not `iss`'s, or an oversized result.
    pub fn seal(&self, key: &Keypair) -> Result<SignedReceipt, ReceiptError> {
        self.check()?;
        let bytes = seal_checked(key, &self.iss, RECEIPT_TAG, self, MAX_RECEIPT_BYTES)?;
        SignedReceipt::decode(&bytes)
    }
}

/// A receipt as received: verified, with its bytes and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReceipt {
    /// What it says.
    pub receipt: Receipt,
    /// The envelope bytes exactly as signed.
    pub bytes: Vec<u8>,
    /// BLAKE3 of `bytes`: the receipt id.
    pub id: [u8; 32],
}

impl SignedReceipt {
    /// Decodes strictly (canonical CBOR, known fields, at most [`MAX_RECEIPT_BYTES`]), checks
    /// the rules and the receiver's signature.
    ///
    /// # Errors
    ///
    /// [`ReceiptError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let env = Envelope::decode(bytes, MAX_RECEIPT_BYTES)?;
        env.expect_tag(RECEIPT_TAG)?;
        let receipt: Receipt = env
            .payload()
            .map_err(|e| ReceiptError::Payload(e.to_string()))?;
        receipt.check()?;
        env.verify(&receipt.iss.public_key())?;
        Ok(Self {
            receipt,
            id: *blake3::hash(bytes).as_bytes(),
            bytes: bytes.to_vec(),
        })
    }

    /// The receipt id in hex.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// The provider's counter-signature of this receipt, signed with `key`.
    ///
    /// # Errors
    ///
    /// If `key` is not the receipt's provider's.
    pub fn countersign(&self, key: &Keypair, at: i64) -> Result<SignedAck, ReceiptError> {
        if key.did() != self.receipt.provider {
            return Err(ReceiptError::WrongKey);
        }
        let ack = Countersignature {
            iss: key.did(),
            receipt: self.id,
            at,
        };
        check_time("at", at)?;
        let bytes = seal_checked(key, &ack.iss, RECEIPT_ACK_TAG, &ack, MAX_RECEIPT_ACK_BYTES)?;
        SignedAck::decode(&bytes)
    }

    /// Checks that `ack` is this receipt's provider's counter-signature of this receipt.
    ///
    /// # Errors
    ///
    /// [`ReceiptError::Mismatch`] saying which part differs.
    pub fn check_ack(&self, ack: &SignedAck) -> Result<(), ReceiptError> {
        if ack.ack.iss != self.receipt.provider {
            return Err(ReceiptError::Mismatch(format!(
                "signed by {}, but the receipt's provider is {}",
                ack.ack.iss, self.receipt.provider
            )));
        }
        if ack.ack.receipt != self.id {
            return Err(ReceiptError::Mismatch(format!(
                "it counter-signs receipt {}, not {}",
                hex::encode(ack.ack.receipt),
                self.id_hex()
            )));
        }
        Ok(())
    }
}

/// A counter-signature as received: verified, with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAck {
    /// What it says.
    pub ack: Countersignature,
    /// The envelope bytes exactly as signed.
    pub bytes: Vec<u8>,
}

impl SignedAck {
    /// Decodes strictly and checks the provider's signature.
    ///
    /// # Errors
    ///
    /// [`ReceiptError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let env = Envelope::decode(bytes, MAX_RECEIPT_ACK_BYTES)?;
        env.expect_tag(RECEIPT_ACK_TAG)?;
        let ack: Countersignature = env
            .payload()
            .map_err(|e| ReceiptError::Payload(e.to_string()))?;
        check_time("at", ack.at)?;
        env.verify(&ack.iss.public_key())?;
        Ok(Self {
            ack,
            bytes: bytes.to_vec(),
        })
    }
}

/// A receipt with its counter-signature when there is one: what both sides keep, and the
/// content of a receipt file (`cix receipts show ID --out FILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The receipt.
    pub receipt: SignedReceipt,
    /// The provider's counter-signature, once given.
    pub ack: Option<SignedAck>,
}

impl Bundle {
    /// Canonical CBOR `[receipt, countersign / null]`.
    ///
    /// # Errors
    ///
    /// Never in practice; encoding errors are reported.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ReceiptError> {
        let parts = (
            ByteBuf::from(self.receipt.bytes.clone()),
            self.ack.as_ref().map(|a| ByteBuf::from(a.bytes.clone())),
        );
        cbor::to_vec(&parts).map_err(|EncodeError(e)| ReceiptError::Payload(e))
    }

    /// Decodes a bundle and verifies both signatures and that they belong together.
    ///
    /// # Errors
    ///
    /// [`ReceiptError`] naming the first thing wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let (receipt, ack): (ByteBuf, Option<ByteBuf>) =
            cbor::from_slice(bytes, MAX_RECEIPT_BUNDLE_BYTES)
                .map_err(|e| ReceiptError::Payload(format!("not a receipt bundle: {e}")))?;
        let receipt = SignedReceipt::decode(&receipt)?;
        let ack = ack.map(|a| SignedAck::decode(&a)).transpose()?;
        if let Some(a) = &ack {
            receipt.check_ack(a)?;
        }
        Ok(Self { receipt, ack })
    }
}

impl DeletionNotice {
    /// Checks what a signature cannot vouch for.
    ///
    /// # Errors
    ///
    /// [`ReceiptError::Rule`] naming the field.
    pub fn check(&self) -> Result<(), ReceiptError> {
        check_time("deleted", self.deleted)?;
        if self.iss == self.provider {
            return Err(rule("provider", "is the receiver itself"));
        }
        Ok(())
    }

    /// Signs the notice with the receiver's key.
    ///
    /// # Errors
    ///
    /// A broken rule, a key that is not `iss`'s, or an oversized result.
    pub fn seal(&self, key: &Keypair) -> Result<SignedDeletion, ReceiptError> {
        self.check()?;
        let bytes = seal_checked(key, &self.iss, DELETION_TAG, self, MAX_DELETION_BYTES)?;
        SignedDeletion::decode(&bytes)
    }
}

/// A deletion notice as received: verified, with its bytes and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDeletion {
    /// What it says.
    pub notice: DeletionNotice,
    /// The envelope bytes exactly as signed.
    pub bytes: Vec<u8>,
    /// BLAKE3 of `bytes`.
    pub id: [u8; 32],
}

impl SignedDeletion {
    /// Decodes strictly and checks the receiver's signature.
    ///
    /// # Errors
    ///
    /// [`ReceiptError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let env = Envelope::decode(bytes, MAX_DELETION_BYTES)?;
        env.expect_tag(DELETION_TAG)?;
        let notice: DeletionNotice = env
            .payload()
            .map_err(|e| ReceiptError::Payload(e.to_string()))?;
        notice.check()?;
        env.verify(&notice.iss.public_key())?;
        Ok(Self {
            notice,
            id: *blake3::hash(bytes).as_bytes(),
            bytes: bytes.to_vec(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(receiver: &Keypair, provider: &Keypair) -> Receipt {
        Receipt {
            iss: receiver.did(),
            provider: provider.did(),
            dataset: DatasetId([7; 16]),
            content: ContentHash([9; 32]),
            bytes: 1234,
            invocation: None,
            purpose: Some("flood modelling".into()),
            retention_days: Some(30),
            start: 1_780_000_000_000,
            end: 1_780_000_000_250,
        }
    }

    #[test]
    fn receipt_round_trips_and_the_bundle_verifies() {
        let (r, p) = (Keypair::generate(), Keypair::generate());
        let signed = sample(&r, &p).seal(&r).unwrap();
        let ack = signed.countersign(&p, 1_780_000_000_300).unwrap();
        let bundle = Bundle {
            receipt: signed.clone(),
            ack: Some(ack),
        };
        let back = Bundle::decode(&bundle.to_bytes().unwrap()).unwrap();
        assert_eq!(back, bundle);
        assert_eq!(back.receipt.receipt, sample(&r, &p));
    }

    #[test]
    fn a_receipt_signed_by_another_key_is_refused() {
        let (r, p, forger) = (
            Keypair::generate(),
            Keypair::generate(),
            Keypair::generate(),
        );
        assert_eq!(
            sample(&r, &p).seal(&forger).unwrap_err(),
            ReceiptError::WrongKey
        );
        let bytes = envelope::seal(&forger, RECEIPT_TAG, &sample(&r, &p)).unwrap();
        assert!(matches!(
            SignedReceipt::decode(&bytes),
            Err(ReceiptError::Envelope(EnvelopeError::Signature(_)))
        ));
    }

    #[test]
    fn an_altered_byte_or_a_foreign_ack_is_caught() {
        let (r, p) = (Keypair::generate(), Keypair::generate());
        let signed = sample(&r, &p).seal(&r).unwrap();
        for i in 0..signed.bytes.len() {
            let mut bad = signed.bytes.clone();
            bad[i] ^= 0x01;
            assert!(SignedReceipt::decode(&bad).is_err(), "byte {i} flipped");
        }
        // A counter-signature of another receipt, or by someone else, does not match.
        let mut other = sample(&r, &p);
        other.bytes += 1;
        let other = other.seal(&r).unwrap();
        let foreign = other.countersign(&p, 1_780_000_000_300).unwrap();
        assert!(matches!(
            signed.check_ack(&foreign),
            Err(ReceiptError::Mismatch(_))
        ));
        assert_eq!(
            signed.countersign(&r, 1).unwrap_err(),
            ReceiptError::WrongKey
        );
    }

    #[test]
    fn rules_are_enforced() {
        let (r, p) = (Keypair::generate(), Keypair::generate());
        let mut bad = sample(&r, &p);
        bad.end = bad.start - 1;
        assert!(bad.seal(&r).unwrap_err().to_string().contains("end"));
        let mut bad = sample(&r, &p);
        bad.purpose = Some("x".repeat(MAX_PURPOSE_BYTES + 1));
        assert!(bad.seal(&r).unwrap_err().to_string().contains("purpose"));
        let mut bad = sample(&r, &p);
        bad.provider = r.did();
        assert!(bad.seal(&r).unwrap_err().to_string().contains("provider"));
    }

    #[test]
    fn deletion_notice_round_trips_and_is_not_a_receipt() {
        let (r, p) = (Keypair::generate(), Keypair::generate());
        let n = DeletionNotice {
            iss: r.did(),
            provider: p.did(),
            dataset: DatasetId([1; 16]),
            content: ContentHash([2; 32]),
            receipt: Some([3; 32]),
            retention_days: 1,
            deleted: 1_780_000_100_000,
        };
        let signed = n.seal(&r).unwrap();
        assert_eq!(SignedDeletion::decode(&signed.bytes).unwrap().notice, n);
        assert!(matches!(
            SignedReceipt::decode(&signed.bytes),
            Err(ReceiptError::Envelope(EnvelopeError::WrongType { .. }))
        ));
    }
}
