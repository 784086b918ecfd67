//! Delegation and invocation payloads: their fields, strict decoding and sealing.
//!
//! Both token kinds travel in the signed envelope of [`crate::envelope`]. Payloads are read
//! field by field from the generic CBOR value rather than through serde attributes, so that the
//! three kinds of UCAN field stay visible in one place: required ones, required-but-nullable
//! ones (`exp`, and `sub` in a delegation: always written, `null` meaning "never" or "any
//! subject") and optional ones (`nbf`, `iat`, `aud`, `meta`, `cause`: left out when absent,
//! never `null`). After reading, the payload is encoded again and must give the very bytes that
//! arrived, so nothing unknown or differently written survives decoding.

use std::collections::BTreeMap;

use ciborium::Value;

use super::cid::{Cid, CidError};
use super::policy::{Policy, PolicyError};
use super::{DELEGATION_TAG, DELEGATION_TAG_RC1, INVOCATION_TAG, INVOCATION_TAG_RC1};
use super::{MAX_TOKEN_BYTES, TIMESTAMP_LIMIT};
use crate::cbor::{self, EncodeError};
use crate::envelope::{self, Envelope, EnvelopeError, VARSIG_ED25519_DAG_CBOR};
use crate::identity::{Did, DidError, Keypair, SignatureError};

/// Why a token could not be sealed or was not accepted as a well-formed, correctly signed
/// token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a canonical UCAN envelope (this includes input over [`MAX_TOKEN_BYTES`]).
    #[error("not a ucan envelope: {0}")]
    Envelope(EnvelopeError),
    /// The signature element is a byte string of the wrong length.
    #[error("token signature is {0} bytes, not 64")]
    SignatureLength(usize),
    /// The signature does not verify against the issuer's key.
    #[error("token signature does not verify against its issuer: {0}")]
    Signature(SignatureError),
    /// The envelope holds another kind of record.
    #[error("expected a {expected} token, found type tag {found:?}")]
    WrongType {
        /// `delegation` or `invocation`.
        expected: &'static str,
        /// The tag found.
        found: String,
    },
    /// A required field is absent.
    #[error("payload lacks the required field {0:?}")]
    MissingField(&'static str),
    /// A field holds the wrong kind of value.
    #[error("payload field {field:?} {problem}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// The payload has a field this version does not know.
    #[error("payload has unknown field {0:?}")]
    UnknownField(String),
    /// A principal is not an acceptable `did:key`.
    #[error("payload field {field:?} is not an acceptable did: {error}")]
    Did {
        /// The field.
        field: &'static str,
        /// Why the DID was refused.
        error: DidError,
    },
    /// A proof or cause link is not a supported CID.
    #[error("payload field {field:?}: {error}")]
    Cid {
        /// The field.
        field: &'static str,
        /// Why the link was refused.
        error: CidError,
    },
    /// The delegation's policy is malformed.
    #[error("delegation policy: {0}")]
    Policy(PolicyError),
    /// The command is not a lowercase, `/`-separated path.
    #[error("invalid command {0:?}: expected a lowercase path like /cix/data/fetch")]
    Command(String),
    /// A timestamp is outside the ±(2^53 - 1) range UCAN allows.
    #[error("timestamp {field:?} is outside the range ucan allows")]
    TimestampRange {
        /// The field.
        field: &'static str,
    },
    /// The payload uses CBOR that DAG-CBOR forbids (a tag other than 42, a link that is not a
    /// byte string starting with 0x00, a map key that is not text).
    #[error("payload is not dag-cbor: {0}")]
    NotDagCbor(&'static str),
    /// The payload decodes but does not re-encode to the same bytes.
    #[error("payload is not in canonical form")]
    NotCanonical,
    /// Sealing with a key that is not the issuer's.
    #[error("signing key {key} is not the token issuer {iss}")]
    WrongKey {
        /// The key offered.
        key: Did,
        /// The issuer named in the payload.
        iss: Did,
    },
    /// The payload cannot be encoded (it holds a float, for example).
    #[error("cannot encode the token: {0}")]
    Encode(EncodeError),
    /// The sealed token would exceed [`MAX_TOKEN_BYTES`].
    #[error("sealed token of {0} bytes exceeds the limit of {MAX_TOKEN_BYTES} bytes")]
    TooLarge(usize),
}

impl TokenError {
    /// Whether the token was refused for its signature (wrong length or not verifying).
    pub fn is_signature(&self) -> bool {
        matches!(
            self,
            TokenError::SignatureLength(_) | TokenError::Signature(_)
        )
    }
}

/// A UCAN delegation: `iss` grants `aud` the right to run `cmd` (and the commands beneath it)
/// on `sub`, for `args` that satisfy `pol`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delegation {
    /// Who grants (and signs).
    pub iss: Did,
    /// Who receives.
    pub aud: Did,
    /// The principal the authority is about; `None` is a powerline (`null`): whatever subject
    /// the proofs before it establish.
    pub sub: Option<Did>,
    /// The command granted, with every command beneath it.
    pub cmd: String,
    /// Conditions on the eventual invocation's `args`.
    pub pol: Policy,
    /// Makes the token unique.
    pub nonce: Vec<u8>,
    /// Expiry, Unix seconds; `None` (written as `null`) never expires.
    pub exp: Option<i64>,
    /// Not valid before, Unix seconds.
    pub nbf: Option<i64>,
    /// Signed metadata that grants nothing.
    pub meta: Option<BTreeMap<String, Value>>,
}

/// A UCAN invocation: `iss` asks to run `cmd` on `sub` with `args`, proving its right with the
/// delegations `prf` (root first).
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Who invokes (and signs).
    pub iss: Did,
    /// The principal the command acts on.
    pub sub: Did,
    /// Who should run it, when not the subject.
    pub aud: Option<Did>,
    /// The command.
    pub cmd: String,
    /// The command's arguments, which delegation policies constrain.
    pub args: BTreeMap<String, Value>,
    /// CIDs of the delegation chain, root first.
    pub prf: Vec<Cid>,
    /// Expiry, Unix seconds; `None` is written as `null`.
    pub exp: Option<i64>,
    /// Issued at, Unix seconds.
    pub iat: Option<i64>,
    /// Makes the token unique.
    pub nonce: Vec<u8>,
    /// Signed metadata.
    pub meta: Option<BTreeMap<String, Value>>,
    /// The receipt that caused this invocation, if any.
    pub cause: Option<Cid>,
}

/// A fresh random 16-byte nonce.
pub fn fresh_nonce() -> Vec<u8> {
    rand::random::<[u8; 16]>().to_vec()
}

impl Delegation {
    /// Signs the delegation with the issuer's key.
    ///
    /// # Errors
    ///
    /// [`TokenError::WrongKey`] if `key` is not `iss`; [`TokenError::Command`],
    /// [`TokenError::TimestampRange`] for fields no validator would accept;
    /// [`TokenError::Encode`] for floats; [`TokenError::NotDagCbor`] for CBOR tags other than
    /// links; [`TokenError::TooLarge`].
    pub fn seal(&self, key: &Keypair) -> Result<(Vec<u8>, Cid), TokenError> {
        if key.did() != self.iss {
            return Err(TokenError::WrongKey {
                key: key.did(),
                iss: self.iss,
            });
        }
        self.check()?;
        let payload = self.to_value();
        check_dag_cbor(&payload)?;
        seal_payload(key, DELEGATION_TAG, &payload)
    }

    /// Decodes a delegation strictly and checks its signature against `iss`.
    ///
    /// Accepts the `ucan/dlg@1.0.0` tag and the release candidate's `ucan/dlg@1.0.0-rc.1`.
    ///
    /// # Errors
    ///
    /// Any [`TokenError`] naming what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<(Delegation, Cid), TokenError> {
        let env = open(bytes, &[DELEGATION_TAG, DELEGATION_TAG_RC1], "delegation")?;
        let dlg = Delegation::from_value(env.payload_value())?;
        require_canonical(&env, &dlg.to_value())?;
        env.verify(&dlg.iss.public_key()).map_err(signature_error)?;
        Ok((dlg, Cid::of_token(bytes)))
    }

    /// The token bytes this payload gives with `signature` under the `ucan/dlg@1.0.0` tag:
    /// decoding and then calling this reproduces a 1.0.0 token exactly.
    ///
    /// # Errors
    ///
    /// [`TokenError::Encode`] if the payload cannot be encoded.
    pub fn encode_with_signature(&self, signature: &[u8; 64]) -> Result<Vec<u8>, TokenError> {
        assemble(signature, DELEGATION_TAG, self.to_value())
    }

    /// The payload as a CBOR value, exactly as signed.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::with_capacity(9);
        put(&mut m, "iss", did_value(&self.iss));
        put(&mut m, "aud", did_value(&self.aud));
        put(
            &mut m,
            "sub",
            self.sub.as_ref().map_or(Value::Null, did_value),
        );
        put(&mut m, "cmd", Value::Text(self.cmd.clone()));
        put(&mut m, "pol", self.pol.to_value());
        put(&mut m, "nonce", Value::Bytes(self.nonce.clone()));
        put(&mut m, "exp", self.exp.map_or(Value::Null, Value::from));
        if let Some(nbf) = self.nbf {
            put(&mut m, "nbf", Value::from(nbf));
        }
        if let Some(meta) = &self.meta {
            put(&mut m, "meta", map_value(meta));
        }
        Value::Map(m)
    }

    /// Reads a delegation payload strictly (no signature check).
    ///
    /// # Errors
    ///
    /// [`TokenError`] naming the first bad field.
    pub fn from_value(value: &Value) -> Result<Delegation, TokenError> {
        check_dag_cbor(value)?;
        let mut f = Fields::of(value)?;
        let dlg = Delegation {
            iss: read_did("iss", f.take("iss"))?,
            aud: read_did("aud", f.take("aud"))?,
            sub: match f.take("sub") {
                Some(Value::Null) => None,
                other => Some(read_did("sub", other)?),
            },
            cmd: read_text("cmd", f.take("cmd"))?,
            pol: Policy::from_value(&f.take("pol").ok_or(TokenError::MissingField("pol"))?)
                .map_err(TokenError::Policy)?,
            nonce: read_bytes("nonce", f.take("nonce"))?,
            exp: read_nullable_time("exp", f.take("exp"))?,
            nbf: f.take("nbf").map(|v| read_time("nbf", v)).transpose()?,
            meta: f.take("meta").map(|v| read_map("meta", v)).transpose()?,
        };
        f.finish()?;
        dlg.check()?;
        Ok(dlg)
    }

    fn check(&self) -> Result<(), TokenError> {
        check_command(&self.cmd)?;
        check_time("exp", self.exp)?;
        check_time("nbf", self.nbf)
    }
}

impl Invocation {
    /// Signs the invocation with the issuer's key.
    ///
    /// # Errors
    ///
    /// As [`Delegation::seal`].
    pub fn seal(&self, key: &Keypair) -> Result<(Vec<u8>, Cid), TokenError> {
        if key.did() != self.iss {
            return Err(TokenError::WrongKey {
                key: key.did(),
                iss: self.iss,
            });
        }
        self.check()?;
        let payload = self.to_value();
        check_dag_cbor(&payload)?;
        seal_payload(key, INVOCATION_TAG, &payload)
    }

    /// Decodes an invocation strictly and checks its signature against `iss`.
    ///
    /// Accepts the `ucan/inv@1.0.0` tag and the release candidate's `ucan/inv@1.0.0-rc.1`.
    ///
    /// # Errors
    ///
    /// Any [`TokenError`] naming what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<(Invocation, Cid), TokenError> {
        let env = open(bytes, &[INVOCATION_TAG, INVOCATION_TAG_RC1], "invocation")?;
        let inv = Invocation::from_value(env.payload_value())?;
        require_canonical(&env, &inv.to_value())?;
        env.verify(&inv.iss.public_key()).map_err(signature_error)?;
        Ok((inv, Cid::of_token(bytes)))
    }

    /// As [`Delegation::encode_with_signature`], under the `ucan/inv@1.0.0` tag.
    ///
    /// # Errors
    ///
    /// [`TokenError::Encode`] if the payload cannot be encoded.
    pub fn encode_with_signature(&self, signature: &[u8; 64]) -> Result<Vec<u8>, TokenError> {
        assemble(signature, INVOCATION_TAG, self.to_value())
    }

    /// The arguments as one CBOR map, the value policies are evaluated against.
    pub fn args_value(&self) -> Value {
        map_value(&self.args)
    }

    /// The payload as a CBOR value, exactly as signed.
    pub fn to_value(&self) -> Value {
        let mut m = Vec::with_capacity(11);
        put(&mut m, "iss", did_value(&self.iss));
        put(&mut m, "sub", did_value(&self.sub));
        if let Some(aud) = &self.aud {
            put(&mut m, "aud", did_value(aud));
        }
        put(&mut m, "cmd", Value::Text(self.cmd.clone()));
        put(&mut m, "args", self.args_value());
        put(
            &mut m,
            "prf",
            Value::Array(self.prf.iter().map(Cid::to_link).collect()),
        );
        put(&mut m, "nonce", Value::Bytes(self.nonce.clone()));
        put(&mut m, "exp", self.exp.map_or(Value::Null, Value::from));
        if let Some(iat) = self.iat {
            put(&mut m, "iat", Value::from(iat));
        }
        if let Some(meta) = &self.meta {
            put(&mut m, "meta", map_value(meta));
        }
        if let Some(cause) = &self.cause {
            put(&mut m, "cause", cause.to_link());
        }
        Value::Map(m)
    }

    /// Reads an invocation payload strictly (no signature check).
    ///
    /// # Errors
    ///
    /// [`TokenError`] naming the first bad field.
    pub fn from_value(value: &Value) -> Result<Invocation, TokenError> {
        check_dag_cbor(value)?;
        let mut f = Fields::of(value)?;
        let inv = Invocation {
            iss: read_did("iss", f.take("iss"))?,
            sub: read_did("sub", f.take("sub"))?,
            aud: f
                .take("aud")
                .map(|v| read_did("aud", Some(v)))
                .transpose()?,
            cmd: read_text("cmd", f.take("cmd"))?,
            args: read_map(
                "args",
                f.take("args").ok_or(TokenError::MissingField("args"))?,
            )?,
            prf: read_links(f.take("prf"))?,
            nonce: read_bytes("nonce", f.take("nonce"))?,
            exp: read_nullable_time("exp", f.take("exp"))?,
            iat: f.take("iat").map(|v| read_time("iat", v)).transpose()?,
            meta: f.take("meta").map(|v| read_map("meta", v)).transpose()?,
            cause: f
                .take("cause")
                .map(|v| {
                    Cid::from_link(&v).map_err(|error| TokenError::Cid {
                        field: "cause",
                        error,
                    })
                })
                .transpose()?,
        };
        f.finish()?;
        inv.check()?;
        Ok(inv)
    }

    fn check(&self) -> Result<(), TokenError> {
        check_command(&self.cmd)?;
        check_time("exp", self.exp)?;
        check_time("iat", self.iat)
    }
}

/// Whether `cmd` is a UCAN command: `/`, or `/`-separated non-empty lowercase segments with no
/// trailing slash.
pub(crate) fn is_valid_command(cmd: &str) -> bool {
    if cmd == "/" {
        return true;
    }
    let Some(rest) = cmd.strip_prefix('/') else {
        return false;
    };
    rest.split('/').all(|seg| !seg.is_empty()) && !cmd.chars().any(char::is_uppercase)
}

fn check_command(cmd: &str) -> Result<(), TokenError> {
    if is_valid_command(cmd) {
        Ok(())
    } else {
        Err(TokenError::Command(cmd.chars().take(80).collect()))
    }
}

fn check_time(field: &'static str, t: Option<i64>) -> Result<(), TokenError> {
    match t {
        Some(t) if !(-TIMESTAMP_LIMIT..=TIMESTAMP_LIMIT).contains(&t) => {
            Err(TokenError::TimestampRange { field })
        }
        _ => Ok(()),
    }
}

/// Refuses what canonical CBOR allows but DAG-CBOR does not: tags other than links (tag 42
/// around `0x00` and a CID) and map keys that are not text. Recursion is bounded by the
/// decoder's nesting limit.
fn check_dag_cbor(value: &Value) -> Result<(), TokenError> {
    match value {
        Value::Tag(42, inner) => match inner.as_ref() {
            Value::Bytes(b) if b.first() == Some(&0x00) => Ok(()),
            _ => Err(TokenError::NotDagCbor(
                "a link is not a byte string starting with 0x00",
            )),
        },
        Value::Tag(..) => Err(TokenError::NotDagCbor("cbor tag other than 42")),
        Value::Array(items) => items.iter().try_for_each(check_dag_cbor),
        Value::Map(entries) => entries.iter().try_for_each(|(k, v)| match k {
            Value::Text(_) => check_dag_cbor(v),
            _ => Err(TokenError::NotDagCbor("map key that is not text")),
        }),
        _ => Ok(()),
    }
}

/// Decodes the envelope and checks its type tag, telling a malformed signature apart.
fn open(bytes: &[u8], tags: &[&str], kind: &'static str) -> Result<Envelope, TokenError> {
    let env = Envelope::decode(bytes, MAX_TOKEN_BYTES).map_err(|e| match e {
        EnvelopeError::Shape(_) => signature_length(bytes).unwrap_or(TokenError::Envelope(e)),
        other => TokenError::Envelope(other),
    })?;
    if !tags.contains(&env.tag()) {
        return Err(TokenError::WrongType {
            expected: kind,
            found: env.tag().chars().take(80).collect(),
        });
    }
    Ok(env)
}

/// If `bytes` is a two-element array whose first element is a byte string of the wrong length,
/// the error saying so. Only called once the envelope has been refused for its shape.
fn signature_length(bytes: &[u8]) -> Option<TokenError> {
    let value = cbor::value_from_slice(bytes, MAX_TOKEN_BYTES).ok()?;
    match value.as_array()?.as_slice() {
        [Value::Bytes(sig), _] if sig.len() != 64 => Some(TokenError::SignatureLength(sig.len())),
        _ => None,
    }
}

fn signature_error(e: EnvelopeError) -> TokenError {
    match e {
        EnvelopeError::Signature(s) => TokenError::Signature(s),
        other => TokenError::Envelope(other),
    }
}

fn require_canonical(env: &Envelope, ours: &Value) -> Result<(), TokenError> {
    let ours = cbor::value_to_vec(ours).map_err(TokenError::Encode)?;
    let theirs = cbor::value_to_vec(env.payload_value()).map_err(TokenError::Encode)?;
    if ours == theirs {
        Ok(())
    } else {
        Err(TokenError::NotCanonical)
    }
}

fn seal_payload(key: &Keypair, tag: &str, payload: &Value) -> Result<(Vec<u8>, Cid), TokenError> {
    let bytes = envelope::seal(key, tag, payload).map_err(TokenError::Encode)?;
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge(bytes.len()));
    }
    let cid = Cid::of_token(&bytes);
    Ok((bytes, cid))
}

fn assemble(signature: &[u8; 64], tag: &str, payload: Value) -> Result<Vec<u8>, TokenError> {
    let signed = Value::Map(vec![
        (
            Value::Text("h".into()),
            Value::Bytes(VARSIG_ED25519_DAG_CBOR.to_vec()),
        ),
        (Value::Text(tag.into()), payload),
    ]);
    let token = Value::Array(vec![Value::Bytes(signature.to_vec()), signed]);
    cbor::value_to_vec(&token).map_err(TokenError::Encode)
}

fn put(map: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    map.push((Value::Text(key.into()), value));
}

fn did_value(did: &Did) -> Value {
    Value::Text(did.to_string())
}

fn map_value(map: &BTreeMap<String, Value>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (Value::Text(k.clone()), v.clone()))
            .collect(),
    )
}

/// The payload's entries, taken one by one so that leftovers can be refused.
struct Fields(Vec<(Value, Value)>);

impl Fields {
    fn of(value: &Value) -> Result<Fields, TokenError> {
        match value {
            Value::Map(entries) => Ok(Fields(entries.clone())),
            _ => Err(TokenError::Field {
                field: "payload",
                problem: "is not a map",
            }),
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| k.as_text() == Some(key))?;
        Some(self.0.swap_remove(at).1)
    }

    fn finish(self) -> Result<(), TokenError> {
        match self.0.first() {
            None => Ok(()),
            Some((Value::Text(k), _)) => {
                Err(TokenError::UnknownField(k.chars().take(40).collect()))
            }
            Some(_) => Err(TokenError::UnknownField("(a key that is not text)".into())),
        }
    }
}

fn read_did(field: &'static str, value: Option<Value>) -> Result<Did, TokenError> {
    match value {
        Some(Value::Text(s)) => s.parse().map_err(|error| TokenError::Did { field, error }),
        Some(_) => Err(TokenError::Field {
            field,
            problem: "is not a did string",
        }),
        None => Err(TokenError::MissingField(field)),
    }
}

fn read_text(field: &'static str, value: Option<Value>) -> Result<String, TokenError> {
    match value {
        Some(Value::Text(s)) => Ok(s),
        Some(_) => Err(TokenError::Field {
            field,
            problem: "is not text",
        }),
        None => Err(TokenError::MissingField(field)),
    }
}

fn read_bytes(field: &'static str, value: Option<Value>) -> Result<Vec<u8>, TokenError> {
    match value {
        Some(Value::Bytes(b)) => Ok(b),
        Some(_) => Err(TokenError::Field {
            field,
            problem: "is not a byte string",
        }),
        None => Err(TokenError::MissingField(field)),
    }
}

fn read_time(field: &'static str, value: Value) -> Result<i64, TokenError> {
    let Value::Integer(i) = value else {
        return Err(TokenError::Field {
            field,
            problem: "is not an integer",
        });
    };
    i64::try_from(i128::from(i))
        .ok()
        .filter(|t| (-TIMESTAMP_LIMIT..=TIMESTAMP_LIMIT).contains(t))
        .ok_or(TokenError::TimestampRange { field })
}

fn read_nullable_time(
    field: &'static str,
    value: Option<Value>,
) -> Result<Option<i64>, TokenError> {
    match value {
        Some(Value::Null) => Ok(None),
        Some(v) => read_time(field, v).map(Some),
        None => Err(TokenError::MissingField(field)),
    }
}

fn read_map(field: &'static str, value: Value) -> Result<BTreeMap<String, Value>, TokenError> {
    let Value::Map(entries) = value else {
        return Err(TokenError::Field {
            field,
            problem: "is not a map",
        });
    };
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        let Value::Text(k) = k else {
            return Err(TokenError::Field {
                field,
                problem: "has a key that is not text",
            });
        };
        out.insert(k, v);
    }
    Ok(out)
}

fn read_links(value: Option<Value>) -> Result<Vec<Cid>, TokenError> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                Cid::from_link(v).map_err(|error| TokenError::Cid {
                    field: "prf",
                    error,
                })
            })
            .collect(),
        Some(_) => Err(TokenError::Field {
            field: "prf",
            problem: "is not an array of links",
        }),
        None => Err(TokenError::MissingField("prf")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ucan::CMD_FETCH;

    fn sample(owner: &Keypair, to: &Keypair) -> Delegation {
        Delegation {
            iss: owner.did(),
            aud: to.did(),
            sub: Some(owner.did()),
            cmd: CMD_FETCH.into(),
            pol: Policy::dataset_equals("water/net3"),
            nonce: fresh_nonce(),
            exp: Some(1_900_000_000),
            nbf: None,
            meta: None,
        }
    }

    #[test]
    fn delegation_round_trips() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let dlg = sample(&owner, &to);
        let (bytes, cid) = dlg.seal(&owner).unwrap();
        let (back, cid2) = Delegation::decode(&bytes).unwrap();
        assert_eq!(back, dlg);
        assert_eq!(cid, cid2);
    }

    #[test]
    fn seal_refuses_someone_elses_key_and_bad_commands() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let dlg = sample(&owner, &to);
        assert!(matches!(dlg.seal(&to), Err(TokenError::WrongKey { .. })));
        for cmd in ["", "cix", "/cix/", "/cix//data", "/Cix/data"] {
            let bad = Delegation {
                cmd: cmd.into(),
                ..dlg.clone()
            };
            assert!(
                matches!(bad.seal(&owner), Err(TokenError::Command(_))),
                "{cmd:?}"
            );
        }
        let bad = Delegation {
            exp: Some(1 << 60),
            ..dlg.clone()
        };
        assert_eq!(
            bad.seal(&owner),
            Err(TokenError::TimestampRange { field: "exp" })
        );
    }

    #[test]
    fn floats_cannot_be_sealed() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let mut dlg = sample(&owner, &to);
        dlg.meta = Some(BTreeMap::from([("x".to_string(), Value::Float(0.5))]));
        assert!(matches!(dlg.seal(&owner), Err(TokenError::Encode(_))));
    }

    #[test]
    fn a_delegation_is_not_an_invocation() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let (bytes, _) = sample(&owner, &to).seal(&owner).unwrap();
        assert!(matches!(
            Invocation::decode(&bytes),
            Err(TokenError::WrongType { .. })
        ));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let mut value = sample(&owner, &to).to_value();
        if let Value::Map(m) = &mut value {
            m.push((Value::Text("extra".into()), Value::Bool(true)));
        }
        let bytes = envelope::seal(&owner, DELEGATION_TAG, &value).unwrap();
        assert_eq!(
            Delegation::decode(&bytes),
            Err(TokenError::UnknownField("extra".into()))
        );
    }

    #[test]
    fn absent_exp_is_refused_but_null_exp_is_accepted() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let dlg = Delegation {
            exp: None,
            ..sample(&owner, &to)
        };
        let (bytes, _) = dlg.seal(&owner).unwrap();
        assert_eq!(Delegation::decode(&bytes).unwrap().0.exp, None);
        let mut value = dlg.to_value();
        if let Value::Map(m) = &mut value {
            m.retain(|(k, _)| k.as_text() != Some("exp"));
        }
        let bytes = envelope::seal(&owner, DELEGATION_TAG, &value).unwrap();
        assert_eq!(
            Delegation::decode(&bytes),
            Err(TokenError::MissingField("exp"))
        );
    }

    #[test]
    fn release_candidate_tag_is_read() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let dlg = sample(&owner, &to);
        let bytes = envelope::seal(&owner, DELEGATION_TAG_RC1, &dlg.to_value()).unwrap();
        assert_eq!(Delegation::decode(&bytes).unwrap().0, dlg);
    }

    #[test]
    fn short_signature_is_a_signature_error() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let (bytes, _) = sample(&owner, &to).seal(&owner).unwrap();
        // Replace the 64-byte signature (after 82 58 40) by a 3-byte one (43 01 02 03).
        let mut short = vec![0x82, 0x43, 1, 2, 3];
        short.extend_from_slice(&bytes[67..]);
        assert_eq!(
            Delegation::decode(&short),
            Err(TokenError::SignatureLength(3))
        );
    }

    #[test]
    fn oversized_tokens_are_neither_written_nor_read() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let mut dlg = sample(&owner, &to);
        dlg.meta = Some(BTreeMap::from([(
            "padding".to_string(),
            Value::Bytes(vec![0; MAX_TOKEN_BYTES]),
        )]));
        assert!(matches!(dlg.seal(&owner), Err(TokenError::TooLarge(n)) if n > MAX_TOKEN_BYTES));
        let bytes = envelope::seal(&owner, DELEGATION_TAG, &dlg.to_value()).unwrap();
        assert!(matches!(
            Delegation::decode(&bytes),
            Err(TokenError::Envelope(EnvelopeError::Decode(
                cbor::DecodeError::TooLarge { .. }
            )))
        ));
    }

    #[test]
    fn explicit_null_for_an_optional_field_is_refused() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let mut value = sample(&owner, &to).to_value();
        if let Value::Map(m) = &mut value {
            m.push((Value::Text("nbf".into()), Value::Null));
        }
        let bytes = envelope::seal(&owner, DELEGATION_TAG, &value).unwrap();
        assert_eq!(
            Delegation::decode(&bytes),
            Err(TokenError::Field {
                field: "nbf",
                problem: "is not an integer"
            })
        );
    }

    #[test]
    fn only_dag_cbor_is_accepted() {
        let (owner, to) = (Keypair::generate(), Keypair::generate());
        let mut dlg = sample(&owner, &to);
        let date = Value::Tag(1, Box::new(Value::from(1_800_000_000)));
        dlg.meta = Some(BTreeMap::from([("when".to_string(), date)]));
        assert!(matches!(dlg.seal(&owner), Err(TokenError::NotDagCbor(_))));
        let bytes = envelope::seal(&owner, DELEGATION_TAG, &dlg.to_value()).unwrap();
        assert!(matches!(
            Delegation::decode(&bytes),
            Err(TokenError::NotDagCbor(_))
        ));

        let odd_map = Value::Map(vec![(Value::from(1), Value::from(2))]);
        dlg.meta = Some(BTreeMap::from([("m".to_string(), odd_map)]));
        assert_eq!(
            dlg.seal(&owner),
            Err(TokenError::NotDagCbor("map key that is not text"))
        );

        let link = Cid::of_token(b"x").to_link();
        dlg.meta = Some(BTreeMap::from([("see".to_string(), link)]));
        let (bytes, _) = dlg.seal(&owner).unwrap();
        assert_eq!(Delegation::decode(&bytes).unwrap().0, dlg);
    }

    /// The exact bytes of a fetch invocation, field by field. Keys, seeds and values are fixed
    /// and Ed25519 is deterministic, so any change to the encoding shows up here.
    #[test]
    fn fetch_invocation_snapshot() {
        let requester = Keypair::from_seed([1; 32]);
        let owner = Keypair::from_seed([2; 32]);
        let inv = Invocation {
            iss: requester.did(),
            sub: owner.did(),
            aud: None,
            cmd: CMD_FETCH.into(),
            args: BTreeMap::from([("dataset".to_string(), "water/net3".into())]),
            prf: vec![Cid::of_token(b"grant")],
            exp: Some(1_800_000_060),
            iat: Some(1_800_000_000),
            nonce: vec![0xaa; 12],
            meta: None,
            cause: None,
        };
        let expected = [
            "82",   // array(2)
            "5840", // bytes(64): the signature
            "40b66a6997ceb3c475045593eebed935d2097c0671f5d333e84ad35f933befa3",
            "2305c8fd15c8bcf802afa02a05f6151b57c8bbc8c9f6c47f29f013226d908402",
            "a2",                               // map(2): the signed part
            "6168",                             // text(1) "h"
            "48",                               // bytes(8)
            "3401ed01ed011371",                 //   varsig: ed25519 over dag-cbor
            "6e",                               // text(14)
            "7563616e2f696e7640312e302e30",     //   "ucan/inv@1.0.0"
            "a8",                               // map(8): the payload, shortest keys first
            "63636d64",                         // "cmd"
            "6f2f6369782f646174612f6665746368", // text(15) "/cix/data/fetch"
            "63657870",                         // "exp"
            "1a6b49d23c",                       // uint 1800000060
            "63696174",                         // "iat"
            "1a6b49d200",                       // uint 1800000000
            "63697373",                         // "iss"
            "7838",                             // text(56): the requester's did:key
            "6469643a6b65793a7a364d6b6f6e334e656364364e6b6b79666f476f",
            "48786964327a6e476335394c55334b376d756261526346624c664c58",
            "63707266",   // "prf"
            "81",         // array(1)
            "d82a",       // tag(42): a link
            "5825",       // bytes(37)
            "0001711220", // 00 (identity multibase), cidv1, dag-cbor, sha2-256, 32 bytes
            "3492ad65d05a973fef8c825521eeb41ae64625a672a8aeeeabc696e16d62a020",
            "63737562", // "sub"
            "7838",     // text(56): the owner's did:key
            "6469643a6b65793a7a364d6b6f39685467674d776a535445614a6150",
            "55664536747163793278765536426e4e713365336f38715642697948",
            "6461726773",             // "args"
            "a1",                     // map(1)
            "6764617461736574",       // "dataset"
            "6a77617465722f6e657433", // text(10) "water/net3"
            "656e6f6e6365",           // "nonce"
            "4c",                     // bytes(12)
            "aaaaaaaaaaaaaaaaaaaaaaaa",
        ]
        .concat();
        let (bytes, cid) = inv.seal(&requester).unwrap();
        assert_eq!(hex::encode(&bytes), expected);
        assert_eq!(
            cid.to_string(),
            "bafyreib2pfumhomdd6si5mcyoztyvas72keedm53xxfokcp5xe23c75myy"
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::ucan::validate;

        fn command() -> impl Strategy<Value = String> {
            prop::collection::vec("[a-z0-9_.-]{1,8}", 0..4).prop_map(|segs| {
                if segs.is_empty() {
                    "/".to_string()
                } else {
                    format!("/{}", segs.join("/"))
                }
            })
        }

        fn time() -> impl Strategy<Value = i64> {
            -TIMESTAMP_LIMIT..=TIMESTAMP_LIMIT
        }

        fn meta() -> impl Strategy<Value = Option<BTreeMap<String, Value>>> {
            let leaf = prop_oneof![
                any::<i64>().prop_map(Value::from),
                ".{0,12}".prop_map(Value::Text),
                any::<bool>().prop_map(Value::Bool),
                prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
                Just(Value::Null),
            ];
            prop::option::of(prop::collection::btree_map("[a-z]{0,6}", leaf, 0..4))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn any_delegation_round_trips(
                cmd in command(),
                nonce in prop::collection::vec(any::<u8>(), 0..32),
                exp in prop::option::of(time()),
                nbf in prop::option::of(time()),
                powerline in any::<bool>(),
                meta in meta(),
                seed in any::<[u8; 32]>(),
            ) {
                let key = Keypair::from_seed(seed);
                let dlg = Delegation {
                    iss: key.did(),
                    aud: key.did(),
                    sub: if powerline { None } else { Some(key.did()) },
                    cmd,
                    pol: Policy::empty(),
                    nonce,
                    exp,
                    nbf,
                    meta,
                };
                let (bytes, cid) = dlg.seal(&key).unwrap();
                prop_assert_eq!(Delegation::decode(&bytes).unwrap(), (dlg, cid));
            }

            #[test]
            fn any_invocation_round_trips(
                cmd in command(),
                args in meta(),
                exp in prop::option::of(time()),
                iat in prop::option::of(time()),
                prf in prop::collection::vec(any::<[u8; 4]>(), 0..4),
                cause in prop::option::of(any::<[u8; 4]>()),
                aud in any::<bool>(),
            ) {
                let key = Keypair::from_seed([7; 32]);
                let inv = Invocation {
                    iss: key.did(),
                    sub: key.did(),
                    aud: aud.then(|| key.did()),
                    cmd,
                    args: args.unwrap_or_default(),
                    prf: prf.iter().map(|b| Cid::of_token(b)).collect(),
                    exp,
                    iat,
                    nonce: vec![1; 16],
                    meta: None,
                    cause: cause.map(|b| Cid::of_token(&b)),
                };
                let (bytes, cid) = inv.seal(&key).unwrap();
                prop_assert_eq!(Invocation::decode(&bytes).unwrap(), (inv, cid));
            }

            #[test]
            fn every_single_byte_change_is_refused(
                at in any::<prop::sample::Index>(),
                bit in 0u8..8,
            ) {
                let key = Keypair::from_seed([3; 32]);
                let dlg = Delegation {
                    iss: key.did(),
                    aud: key.did(),
                    sub: Some(key.did()),
                    cmd: "/cix/data/fetch".into(),
                    pol: Policy::dataset_equals("x"),
                    nonce: vec![9; 12],
                    exp: Some(1),
                    nbf: None,
                    meta: None,
                };
                let (mut bytes, _) = dlg.seal(&key).unwrap();
                let i = at.index(bytes.len());
                bytes[i] ^= 1 << bit;
                prop_assert!(Delegation::decode(&bytes).is_err());
            }

            #[test]
            fn arbitrary_bytes_are_refused_without_panicking(
                bytes in prop::collection::vec(any::<u8>(), 0..300),
            ) {
                prop_assert!(Delegation::decode(&bytes).is_err());
                prop_assert!(Invocation::decode(&bytes).is_err());
                prop_assert!(validate(&bytes, std::slice::from_ref(&bytes), 0).is_err());
            }
        }
    }
}
