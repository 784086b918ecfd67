//! The tamper-evident audit log (ISO 37156 8.3.4: an auditable record whenever data is shared;
//! 9.4: owners are accountable), its signed heads and their counter-signatures.
//!
//! ```text
//! record   = [ signature, { "h": varsig, "cix/audit@1": audit } ]
//! audit    = { "iss": did:key, "seq": uint, "at": int, "prev": bytes .size 32, "kind": text,
//!              ? "dataset": bytes .size 16, ? "peer": did:key, ? "purpose": text,
//!              ? "basis": text, ? "terms": bytes .size 32, ? "token": text, ? "bytes": uint,
//!              ? "content": bytes .size 32, ? "reason": text, ? "detail": text }
//! head     = [ signature, { "h": varsig, "cix/head@1": { "iss", "seq", "hash", "at" } } ]
//! witness  = [ signature, { "h": varsig, "cix/witness@1":
//!              { "iss", "subject", "seq", "hash", "at" } } ]
//! ```
//!
//! Every record names the node that keeps the log (`iss`, which signs it), its sequence number
//! (1, 2, 3, ... without gaps), the time it was written (Unix seconds, never less than the
//! record before) and `prev`, the BLAKE3 hash of the previous record's complete envelope bytes
//! (32 zero bytes for record 1). The hash of a record is the BLAKE3 hash of its envelope bytes,
//! so changing any byte of any record breaks either its signature or the next record's `prev`.
//!
//! A node's *head* is the sequence number and hash of its last record, signed by the node. Peers
//! keep the heads they are sent and counter-sign them (a *witness*); a node that later rewrites
//! or truncates its history contradicts a head it signed itself ([`check_witnessed`]).
//!
//! An exported log is the records' envelope bytes, verbatim, one after another: a CBOR sequence
//! (RFC 8742) that [`split_sequence`] cuts back into records and [`verify_chain`] checks.

use std::fmt;

use ciborium::Value;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::catalogue::DatasetId;
use crate::cbor::{self, EncodeError};
use crate::content::ContentHash;
use crate::envelope::{self, Envelope, EnvelopeError};
use crate::identity::{Did, Keypair};
use crate::limits::{
    MAX_AUDIT_DETAIL_BYTES, MAX_AUDIT_KIND_BYTES, MAX_AUDIT_RECORD_BYTES, MAX_AUDIT_TEXT_BYTES,
    MAX_HEAD_BYTES, MAX_PURPOSE_BYTES, MAX_REASON_BYTES, MAX_WITNESS_HEADS,
    MAX_WITNESS_REQUEST_BYTES, MAX_WITNESS_RESPONSE_BYTES,
};

/// Type tag of an audit record inside the signed envelope.
pub const AUDIT_TAG: &str = "cix/audit@1";
/// Type tag of a signed log head.
pub const HEAD_TAG: &str = "cix/head@1";
/// Type tag of a counter-signature of a peer's head.
pub const WITNESS_TAG: &str = "cix/witness@1";
/// The request-response protocol on which heads are exchanged.
pub const WITNESS_PROTOCOL: &str = "/cix/witness/1";
/// `prev` of the first record.
pub const GENESIS: AuditHash = AuditHash([0; 32]);

/// BLAKE3 of a record's envelope bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuditHash(pub [u8; 32]);

impl AuditHash {
    /// The hash of a record's envelope bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditHash({})", self.to_hex())
    }
}

impl std::str::FromStr for AuditHash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| format!("not a record hash (64 hex digits): {s:?}"))?;
        Ok(Self(out))
    }
}

impl Serialize for AuditHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for AuditHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = serde_bytes::ByteBuf::deserialize(d)?;
        let arr: [u8; 32] = b
            .into_vec()
            .try_into()
            .map_err(|_| serde::de::Error::custom("record hash must be 32 bytes"))?;
        Ok(Self(arr))
    }
}

/// What happened. Serialised as kebab-case text; kinds this version does not know are kept as
/// [`AuditKind::Other`], so a newer node's log still verifies here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AuditKind {
    /// A new dataset was published (ISO 37156 4.2).
    Publish,
    /// A new version of a published dataset (4.2 g).
    Version,
    /// A dataset was withdrawn.
    Withdrawal,
    /// An access request, sent or received (`detail` says which).
    AccessRequest,
    /// Access was granted: a delegation handed out.
    Grant,
    /// Access was refused, with the reason (8.2.2 jurisdiction refusals included).
    Denial,
    /// A delegation was re-delegated or imported.
    Delegation,
    /// A delegation was revoked.
    Revocation,
    /// A transfer began (served or fetched; `detail` says which).
    TransferStart,
    /// A transfer ended (bytes, content hash; `reason` when it failed).
    TransferEnd,
    /// A delivery receipt was signed or received.
    Receipt,
    /// Received data was deleted (retention).
    Deletion,
    /// A deletion notice was sent or received.
    DeletionNotice,
    /// A kind this version does not name.
    Other(String),
}

impl AuditKind {
    /// Every kind this version names, in order.
    pub const KNOWN: [AuditKind; 13] = [
        AuditKind::Publish,
        AuditKind::Version,
        AuditKind::Withdrawal,
        AuditKind::AccessRequest,
        AuditKind::Grant,
        AuditKind::Denial,
        AuditKind::Delegation,
        AuditKind::Revocation,
        AuditKind::TransferStart,
        AuditKind::TransferEnd,
        AuditKind::Receipt,
        AuditKind::Deletion,
        AuditKind::DeletionNotice,
    ];

    /// The kind's name on the wire and the command line.
    pub fn as_str(&self) -> &str {
        match self {
            AuditKind::Publish => "publish",
            AuditKind::Version => "version",
            AuditKind::Withdrawal => "withdrawal",
            AuditKind::AccessRequest => "access-request",
            AuditKind::Grant => "grant",
            AuditKind::Denial => "denial",
            AuditKind::Delegation => "delegation",
            AuditKind::Revocation => "revocation",
            AuditKind::TransferStart => "transfer-start",
            AuditKind::TransferEnd => "transfer-end",
            AuditKind::Receipt => "receipt",
            AuditKind::Deletion => "deletion",
            AuditKind::DeletionNotice => "deletion-notice",
            AuditKind::Other(s) => s,
        }
    }

    /// Parses a kind name: a known one, or any other lower-case name of ASCII letters, digits
    /// and `-`, at most [`MAX_AUDIT_KIND_BYTES`] long.
    ///
    /// # Errors
    ///
    /// A message naming the bad text.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(k) = Self::KNOWN.iter().find(|k| k.as_str() == s) {
            return Ok(k.clone());
        }
        let ok = !s.is_empty()
            && s.len() <= MAX_AUDIT_KIND_BYTES
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(AuditKind::Other(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not an audit record kind (lower-case letters, digits and -, at most \
                 {MAX_AUDIT_KIND_BYTES} bytes)"
            ))
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for AuditKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One audit record's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The node whose log this is; it signs every record.
    pub iss: Did,
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When it was written, Unix seconds; never less than the previous record's.
    pub at: i64,
    /// BLAKE3 of the previous record's envelope bytes ([`GENESIS`] for record 1).
    pub prev: AuditHash,
    /// What happened.
    pub kind: AuditKind,
    /// The dataset concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetId>,
    /// The other party: requester, owner, sender or receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Did>,
    /// The purpose stated (ISO 37156 8.2.2 a).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The legal basis that applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// BLAKE3 of the terms text that applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<ContentHash>,
    /// CID of the token (delegation or invocation) involved, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Bytes moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// BLAKE3 of the data concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentHash>,
    /// Why (a refusal's or a failure's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Anything else, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Why bytes are not an acceptable audit record, head or witness.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Not a well-formed, correctly signed envelope of the right type.
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The payload does not have the expected fields.
    #[error("payload: {0}")]
    Payload(String),
    /// A field is out of bounds.
    #[error("field {0}")]
    Field(String),
}

fn text_within(name: &str, v: &Option<String>, max: usize) -> Result<(), AuditError> {
    match v {
        Some(s) if s.len() > max => Err(AuditError::Field(format!(
            "{name} is longer than {max} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl AuditRecord {
    /// Checks the fields a signature cannot vouch for.
    ///
    /// # Errors
    ///
    /// [`AuditError::Field`] naming the field.
    pub fn check(&self) -> Result<(), AuditError> {
        if self.seq == 0 {
            return Err(AuditError::Field("seq must be at least 1".into()));
        }
        if !(0..=crate::ucan::TIMESTAMP_LIMIT).contains(&self.at) {
            return Err(AuditError::Field(format!("at {} is out of range", self.at)));
        }
        if self.seq == 1 && self.prev != GENESIS {
            return Err(AuditError::Field(
                "record 1 must have the all-zero prev".into(),
            ));
        }
        text_within("purpose", &self.purpose, MAX_PURPOSE_BYTES)?;
        text_within("reason", &self.reason, MAX_REASON_BYTES)?;
        text_within("basis", &self.basis, MAX_AUDIT_TEXT_BYTES)?;
        text_within("token", &self.token, MAX_AUDIT_TEXT_BYTES)?;
        text_within("detail", &self.detail, MAX_AUDIT_DETAIL_BYTES)?;
        Ok(())
    }

    /// Signs the record with `key`, which must be `iss`'s.
    ///
    /// # Errors
    ///
    /// If a field is out of bounds, the key is not `iss`'s, or encoding fails.
    pub fn seal(&self, key: &Keypair) -> Result<SignedRecord, AuditError> {
        self.check()?;
        if key.did() != self.iss {
            return Err(AuditError::Payload(
                "the signing key is not the log's issuer".into(),
            ));
        }
        let bytes = envelope::seal(key, AUDIT_TAG, self)
            .map_err(|EncodeError(e)| AuditError::Payload(e))?;
        if bytes.len() > MAX_AUDIT_RECORD_BYTES {
            return Err(AuditError::Field(format!(
                "record of {} bytes is over {MAX_AUDIT_RECORD_BYTES}",
                bytes.len()
            )));
        }
        let hash = AuditHash::of(&bytes);
        Ok(SignedRecord {
            record: self.clone(),
            bytes,
            hash,
        })
    }
}

/// A record as stored or exported: checked, with its bytes and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    /// What it says.
    pub record: AuditRecord,
    /// The exact envelope bytes.
    pub bytes: Vec<u8>,
    /// BLAKE3 of `bytes`.
    pub hash: AuditHash,
}

impl SignedRecord {
    /// Decodes strictly (canonical CBOR, known fields only, at most
    /// [`MAX_AUDIT_RECORD_BYTES`]), checks the field bounds and the signature against `iss`.
    ///
    /// # Errors
    ///
    /// [`AuditError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, AuditError> {
        let env = Envelope::decode(bytes, MAX_AUDIT_RECORD_BYTES)?;
        env.expect_tag(AUDIT_TAG)?;
        let record: AuditRecord = env
            .payload()
            .map_err(|e| AuditError::Payload(e.to_string()))?;
        record.check()?;
        env.verify(&record.iss.public_key())?;
        Ok(Self {
            record,
            bytes: bytes.to_vec(),
            hash: AuditHash::of(bytes),
        })
    }
}

/// Where a chain first goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", describe_at(*.index, *.seq))]
pub struct ChainError {
    /// Position of the bad record in what was checked, from 0.
    pub index: usize,
    /// Its sequence number: the one it claims when readable, else the one expected there.
    pub seq: Option<u64>,
    /// What is wrong with it.
    pub problem: String,
}

fn describe_at(index: usize, seq: Option<u64>) -> String {
    match seq {
        Some(s) => format!("record seq {s} (item {} of the log)", index + 1),
        None => format!("item {} of the log", index + 1),
    }
}

/// What a verified chain covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// The log's node, if any record was checked.
    pub iss: Option<Did>,
    /// Number of records.
    pub records: u64,
    /// First sequence number checked.
    pub first: Option<u64>,
    /// The head: last sequence number and its record's hash.
    pub last: Option<(u64, AuditHash)>,
}

/// Checks a run of records, in order: each decodes strictly and verifies against the log's
/// node; all name the same node (and `expected_iss`, when given); sequence numbers follow one
/// another; each `prev` is the hash of the record before; times never go back. A run that starts
/// at record 1 must start from [`GENESIS`]; a run that starts later (an exported range) is taken
/// from its first record's `prev`. Stops at the first broken record.
///
/// # Errors
///
/// [`ChainError`] naming the first bad record and what is wrong with it.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a [u8]>,
    expected_iss: Option<&Did>,
) -> Result<ChainSummary, ChainError> {
    let mut summary = ChainSummary {
        iss: expected_iss.cloned(),
        records: 0,
        first: None,
        last: None,
    };
    let mut prev: Option<(u64, AuditHash, i64)> = None;
    for (index, bytes) in records.into_iter().enumerate() {
        let expected_seq = prev.map(|(s, _, _)| s + 1);
        let fail = |seq: Option<u64>, problem: String| ChainError {
            index,
            seq,
            problem,
        };
        let signed = SignedRecord::decode(bytes).map_err(|e| fail(expected_seq, e.to_string()))?;
        let r = &signed.record;
        let seq = Some(r.seq);
        match &summary.iss {
            Some(iss) if *iss != r.iss => {
                return Err(fail(
                    seq,
                    format!("signed by {}, but the log is {iss}'s", r.iss),
                ))
            }
            Some(_) => {}
            None => summary.iss = Some(r.iss.clone()),
        }
        if let Some((pseq, phash, pat)) = prev {
            if r.seq != pseq + 1 {
                return Err(fail(
                    seq,
                    format!(
                        "sequence number {} follows {pseq}: expected {}",
                        r.seq,
                        pseq + 1
                    ),
                ));
            }
            if r.prev != phash {
                return Err(fail(
                    seq,
                    format!("prev {} is not the hash of record {pseq} ({phash})", r.prev),
                ));
            }
            if r.at < pat {
                return Err(fail(
                    seq,
                    format!("time {} is before the previous record's {pat}", r.at),
                ));
            }
        } else {
            summary.first = Some(r.seq);
        }
        prev = Some((r.seq, signed.hash, r.at));
        summary.records += 1;
        summary.last = Some((r.seq, signed.hash));
    }
    Ok(summary)
}

/// Cuts an exported log (a CBOR sequence of record envelopes) into the records' bytes. Each
/// item is bounded by [`MAX_AUDIT_RECORD_BYTES`]; what follows an unreadable item is returned
/// as one last piece, so [`verify_chain`] names it as the first bad record.
pub fn split_sequence(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let window = &bytes[..bytes.len().min(MAX_AUDIT_RECORD_BYTES + 1)];
        let mut reader = window;
        let parsed: Result<Value, _> =
            ciborium::de::from_reader_with_recursion_limit(&mut reader, cbor::MAX_DEPTH);
        match parsed {
            Ok(_) => {
                let used = window.len() - reader.len();
                out.push(&bytes[..used]);
                bytes = &bytes[used..];
            }
            Err(_) => {
                out.push(bytes);
                break;
            }
        }
    }
    out
}

/// A node's statement of its log head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The log's node, which signs.
    pub iss: Did,
    /// Sequence number of the last record (0: an empty log).
    pub seq: u64,
    /// Hash of that record ([`GENESIS`] for an empty log).
    pub hash: AuditHash,
    /// When the head was signed, Unix seconds.
    pub at: i64,
}

/// A peer's counter-signature of another node's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    /// The witness, which signs.
    pub iss: Did,
    /// The node whose head this is.
    pub subject: Did,
    /// The head's sequence number.
    pub seq: u64,
    /// The head's hash.
    pub hash: AuditHash,
    /// When the witness signed, Unix seconds.
    pub at: i64,
}

/// A signed head or witness, checked, with its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<T> {
    /// What it says.
    pub value: T,
    /// The exact envelope bytes.
    pub bytes: Vec<u8>,
}

fn check_time(at: i64) -> Result<(), AuditError> {
    if (0..=crate::ucan::TIMESTAMP_LIMIT).contains(&at) {
        Ok(())
    } else {
        Err(AuditError::Field(format!("at {at} is out of range")))
    }
}

impl Head {
    /// Signs the head with `key`, which must be `iss`'s.
    ///
    /// # Errors
    ///
    /// If the key is not `iss`'s or the time is out of range.
    pub fn seal(&self, key: &Keypair) -> Result<Signed<Head>, AuditError> {
        check_time(self.at)?;
        if key.did() != self.iss {
            return Err(AuditError::Payload(
                "the signing key is not the head's issuer".into(),
            ));
        }
        let bytes =
            envelope::seal(key, HEAD_TAG, self).map_err(|EncodeError(e)| AuditError::Payload(e))?;
        Ok(Signed {
            value: self.clone(),
            bytes,
        })
    }

    /// Decodes strictly and verifies against `iss`.
    ///
    /// # Errors
    ///
    /// [`AuditError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Signed<Head>, AuditError> {
        let env = Envelope::decode(bytes, MAX_HEAD_BYTES)?;
        env.expect_tag(HEAD_TAG)?;
        let head: Head = env
            .payload()
            .map_err(|e| AuditError::Payload(e.to_string()))?;
        check_time(head.at)?;
        env.verify(&head.iss.public_key())?;
        Ok(Signed {
            value: head,
            bytes: bytes.to_vec(),
        })
    }
}

impl Witness {
    /// Signs the witness with `key`, which must be `iss`'s.
    ///
    /// # Errors
    ///
    /// If the key is not `iss`'s or the time is out of range.
    pub fn seal(&self, key: &Keypair) -> Result<Signed<Witness>, AuditError> {
        check_time(self.at)?;
        if key.did() != self.iss {
            return Err(AuditError::Payload(
                "the signing key is not the witness".into(),
            ));
        }
        let bytes = envelope::seal(key, WITNESS_TAG, self)
            .map_err(|EncodeError(e)| AuditError::Payload(e))?;
        Ok(Signed {
            value: self.clone(),
            bytes,
        })
    }

    /// Decodes strictly and verifies against `iss`.
    ///
    /// # Errors
    ///
    /// [`AuditError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Signed<Witness>, AuditError> {
        let env = Envelope::decode(bytes, MAX_HEAD_BYTES)?;
        env.expect_tag(WITNESS_TAG)?;
        let w: Witness = env
            .payload()
            .map_err(|e| AuditError::Payload(e.to_string()))?;
        check_time(w.at)?;
        env.verify(&w.iss.public_key())?;
        Ok(Signed {
            value: w,
            bytes: bytes.to_vec(),
        })
    }
}

/// A request on `/cix/witness/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WitnessRequest {
    /// "Here is my head: counter-sign it." Carries a signed [`Head`].
    Head(#[serde(with = "serde_bytes")] Vec<u8>),
    /// "Which heads signed by this node do you hold?"
    Held(Did),
}

/// A response on `/cix/witness/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WitnessResponse {
    /// The counter-signature of the head sent (a signed [`Witness`]).
    Witnessed(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Heads held for the node asked about, at most [`MAX_WITNESS_HEADS`].
    Heads(Vec<serde_bytes::ByteBuf>),
    /// The request was refused, with the reason.
    Refused(String),
}

impl WitnessRequest {
    /// Encodes canonically.
    ///
    /// # Errors
    ///
    /// If encoding fails.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        cbor::to_vec(self)
    }
    /// Decodes strictly, at most [`MAX_WITNESS_REQUEST_BYTES`].
    ///
    /// # Errors
    ///
    /// [`AuditError::Payload`].
    pub fn decode(bytes: &[u8]) -> Result<Self, AuditError> {
        cbor::from_slice(bytes, MAX_WITNESS_REQUEST_BYTES)
            .map_err(|e| AuditError::Payload(e.to_string()))
    }
}

impl WitnessResponse {
    /// Encodes canonically.
    ///
    /// # Errors
    ///
    /// If encoding fails.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        cbor::to_vec(self)
    }
    /// Decodes strictly, at most [`MAX_WITNESS_RESPONSE_BYTES`] and [`MAX_WITNESS_HEADS`] heads.
    ///
    /// # Errors
    ///
    /// [`AuditError::Payload`].
    pub fn decode(bytes: &[u8]) -> Result<Self, AuditError> {
        let r: Self = cbor::from_slice(bytes, MAX_WITNESS_RESPONSE_BYTES)
            .map_err(|e| AuditError::Payload(e.to_string()))?;
        if let WitnessResponse::Heads(h) = &r {
            if h.len() > MAX_WITNESS_HEADS {
                return Err(AuditError::Payload(format!(
                    "{} heads, more than {MAX_WITNESS_HEADS}",
                    h.len()
                )));
            }
        }
        Ok(r)
    }
}

/// A head some party vouches for: `seq` must hold the record with `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vouched {
    /// Sequence number.
    pub seq: u64,
    /// Record hash at that sequence number.
    pub hash: AuditHash,
    /// Who holds it: the witness's DID, or "self" for a head the log's node signed.
    pub source: String,
}

/// Checks the heads others hold against a log: for each, the log must reach `seq` and its
/// record at `seq` must have `hash`. `hash_at(seq)` gives the log's hash at a sequence number
/// (None past its end). Returns the number of heads checked.
///
/// # Errors
///
/// The first contradiction, naming the record and the witness.
pub fn check_witnessed(
    heads: &[Vouched],
    hash_at: impl Fn(u64) -> Option<AuditHash>,
    log_len: u64,
) -> Result<usize, ChainError> {
    let mut sorted: Vec<&Vouched> = heads.iter().filter(|h| h.seq > 0).collect();
    sorted.sort_by_key(|h| h.seq);
    for h in &sorted {
        let index = usize::try_from(h.seq - 1).unwrap_or(usize::MAX);
        match hash_at(h.seq) {
            None => {
                return Err(ChainError {
                    index,
                    seq: Some(h.seq),
                    problem: format!(
                        "missing: the log ends at seq {log_len}, but {} holds a signed head at \
                         seq {} (hash {})",
                        h.source, h.seq, h.hash
                    ),
                })
            }
            Some(found) if found != h.hash => {
                return Err(ChainError {
                    index,
                    seq: Some(h.seq),
                    problem: format!(
                        "hash {found} differs from the head {} holds (hash {}): the log was \
                         rewritten",
                        h.source, h.hash
                    ),
                })
            }
            Some(_) => {}
        }
    }
    Ok(sorted.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Builds a log of `n` records signed by `key`.
    pub(crate) fn log(key: &Keypair, n: u64) -> Vec<SignedRecord> {
        let mut out: Vec<SignedRecord> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map(|r| r.hash).unwrap_or(GENESIS);
            let r = AuditRecord {
                iss: key.did(),
                seq,
                at: 1_780_000_000 + seq as i64,
                prev,
                kind: AuditKind::KNOWN[(seq as usize) % 13].clone(),
                dataset: Some(DatasetId([seq as u8; 16])),
                peer: None,
                purpose: Some("leak detection".into()),
                basis: None,
                terms: None,
                token: None,
                bytes: Some(seq * 100),
                content: None,
                reason: None,
                detail: None,
            };
            out.push(r.seal(key).unwrap());
        }
        out
    }

    fn file(records: &[SignedRecord]) -> Vec<u8> {
        records.iter().flat_map(|r| r.bytes.clone()).collect()
    }

    #[test]
    fn untouched_log_verifies_and_round_trips() {
        let key = Keypair::generate();
        let records = log(&key, 20);
        let bytes = file(&records);
        let parts = split_sequence(&bytes);
        assert_eq!(parts.len(), 20);
        let s = verify_chain(parts, Some(&key.did())).unwrap();
        assert_eq!(s.records, 20);
        assert_eq!(s.last, Some((20, records[19].hash)));
        let back = SignedRecord::decode(&records[3].bytes).unwrap();
        assert_eq!(back, records[3]);
    }

    #[test]
    fn any_changed_byte_is_caught_at_its_record() {
        let key = Keypair::generate();
        let records = log(&key, 6);
        let bytes = file(&records);
        let mut start = 0;
        for (i, r) in records.iter().enumerate() {
            for off in 0..r.bytes.len() {
                let mut bad = bytes.clone();
                bad[start + off] ^= 0x01;
                let err = verify_chain(split_sequence(&bad), Some(&key.did())).unwrap_err();
                assert_eq!(err.index, i, "byte {off} of record {}: {err}", i + 1);
            }
            start += r.bytes.len();
        }
    }

    #[test]
    fn deleted_swapped_and_foreign_records_are_named() {
        let key = Keypair::generate();
        let records = log(&key, 8);
        let mut deleted = records.clone();
        deleted.remove(4);
        let err = verify_chain(split_sequence(&file(&deleted)), None).unwrap_err();
        assert_eq!((err.index, err.seq), (4, Some(6)));
        assert!(err.problem.contains("expected 5"), "{err}");

        let mut swapped = records.clone();
        swapped.swap(2, 5);
        let err = verify_chain(split_sequence(&file(&swapped)), None).unwrap_err();
        assert_eq!((err.index, err.seq), (2, Some(6)));

        let other = Keypair::generate();
        let mut foreign = records.clone();
        foreign[7] = log(&other, 8)[7].clone();
        let err = verify_chain(split_sequence(&file(&foreign)), Some(&key.did())).unwrap_err();
        assert_eq!(err.index, 7);
        assert!(err.problem.contains("signed by"), "{err}");
    }

    #[test]
    fn witnessed_heads_catch_truncation_and_rebuild() {
        let key = Keypair::generate();
        let records = log(&key, 10);
        let vouched = vec![Vouched {
            seq: 9,
            hash: records[8].hash,
            source: "did:key:witness".into(),
        }];
        let hash_at = |rs: &[SignedRecord], s: u64| rs.get((s - 1) as usize).map(|r| r.hash);
        assert_eq!(
            check_witnessed(&vouched, |s| hash_at(&records, s), 10),
            Ok(1)
        );
        // Truncated to 7: the witnessed seq 9 is missing.
        let short = &records[..7];
        let err = check_witnessed(&vouched, |s| hash_at(short, s), 7).unwrap_err();
        assert_eq!(err.seq, Some(9));
        assert!(err.problem.contains("missing"), "{err}");
        // Rebuilt from record 5 with a fresh, validly signed chain.
        let mut rebuilt = records[..4].to_vec();
        for seq in 5..=10u64 {
            let mut r = records[(seq - 1) as usize].record.clone();
            r.prev = rebuilt.last().unwrap().hash;
            r.detail = Some("rewritten".into());
            rebuilt.push(r.seal(&key).unwrap());
        }
        verify_chain(rebuilt.iter().map(|r| r.bytes.as_slice()), None).unwrap();
        let err = check_witnessed(&vouched, |s| hash_at(&rebuilt, s), 10).unwrap_err();
        assert_eq!(err.seq, Some(9));
        assert!(err.problem.contains("rewritten"), "{err}");
    }

    #[test]
    fn heads_witnesses_and_messages_round_trip_strictly() {
        let a = Keypair::generate();
        let b = Keypair::generate();
        let head = Head {
            iss: a.did(),
            seq: 4,
            hash: AuditHash([7; 32]),
            at: 1_780_000_000,
        }
        .seal(&a)
        .unwrap();
        assert_eq!(Head::decode(&head.bytes).unwrap(), head);
        let w = Witness {
            iss: b.did(),
            subject: a.did(),
            seq: 4,
            hash: AuditHash([7; 32]),
            at: 1_780_000_001,
        }
        .seal(&b)
        .unwrap();
        assert_eq!(Witness::decode(&w.bytes).unwrap(), w);
        // A head is not a witness, and a head signed by someone else does not verify.
        assert!(Witness::decode(&head.bytes).is_err());
        let forged = envelope::seal(&b, HEAD_TAG, &head.value).unwrap();
        assert!(Head::decode(&forged).is_err());
        let req = WitnessRequest::Head(head.bytes.clone());
        assert_eq!(WitnessRequest::decode(&req.encode().unwrap()).unwrap(), req);
        let resp = WitnessResponse::Heads(vec![serde_bytes::ByteBuf::from(head.bytes.clone())]);
        assert_eq!(
            WitnessResponse::decode(&resp.encode().unwrap()).unwrap(),
            resp
        );
        let too_many = WitnessResponse::Heads(vec![
            serde_bytes::ByteBuf::from(vec![0u8; 4]);
            MAX_WITNESS_HEADS + 1
        ]);
        assert!(WitnessResponse::decode(&too_many.encode().unwrap()).is_err());
    }

    #[test]
    fn kinds_parse_and_unknown_kinds_survive() {
        for k in AuditKind::KNOWN {
            assert_eq!(AuditKind::parse(k.as_str()).unwrap(), k);
        }
        assert_eq!(
            AuditKind::parse("key-rotation").unwrap(),
            AuditKind::Other("key-rotation".into())
        );
        assert!(AuditKind::parse("Bad Kind").is_err());
        assert!(AuditKind::parse("").is_err());
    }
}
