//! Emergency access (ISO 37156 6.7): agreements made in advance, declarations that open them,
//! and early ends, each a signed record; and the messages of `/cix/emergency/1`.
//!
//! ```text
//! agreement   = [ signature, { "h": varsig, "cix/emergency-agreement@1": agreement-body } ]   ; by the owner
//! declaration = [ signature, { "h": varsig, "cix/emergency-declaration@1": declaration-body } ] ; by a declarer
//! end         = [ signature, { "h": varsig, "cix/emergency-end@1": end-body } ]               ; by the declarer or the owner
//! ```
//!
//! An agreement is signed by the owner of its datasets (`iss`). It names who may declare an
//! emergency (`declarers`), who receives access while one is declared (`recipients`), the
//! kinds of emergency and the areas it covers, and the longest a declaration may last. A
//! declaration names its agreement by id (the BLAKE3 hash of the agreement's envelope), one of
//! its kinds, an area inside one of its areas, and a start and end no further apart than the
//! agreement allows. Every check a receiver makes is in [`check_declaration`]; ids are the
//! BLAKE3 hashes of the envelopes. Coordinates are integer micro-degrees (WGS 84), as
//! canonical CBOR carries no floats.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::catalogue::DatasetId;
use crate::cbor::EncodeError;
use crate::envelope::{self, Envelope, EnvelopeError};
use crate::identity::{Did, Keypair};
use crate::limits::{
    MAX_EMERGENCY_AGREEMENT_BYTES, MAX_EMERGENCY_AREAS, MAX_EMERGENCY_DATASETS,
    MAX_EMERGENCY_DECLARATION_BYTES, MAX_EMERGENCY_HOURS, MAX_EMERGENCY_KINDS,
    MAX_EMERGENCY_PARTIES, MAX_EMERGENCY_TEXT_BYTES,
};

/// Type tag of an emergency agreement.
pub const AGREEMENT_TAG: &str = "cix/emergency-agreement@1";
/// Type tag of an emergency declaration.
pub const DECLARATION_TAG: &str = "cix/emergency-declaration@1";
/// Type tag of the early end of a declaration.
pub const END_TAG: &str = "cix/emergency-end@1";
/// The request-response protocol agreements, declarations, ends and emergency grants travel on.
pub const EMERGENCY_PROTOCOL: &str = "/cix/emergency/1";
/// How far in the future a declaration's start may be, against the receiver's clock, in
/// seconds (clock skew between agencies).
pub const START_SKEW_SECS: i64 = 300;

/// Where an emergency applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    /// A bounding box in micro-degrees: west, south, east, north.
    Bbox {
        /// Western edge (longitude).
        w: i32,
        /// Southern edge (latitude).
        s: i32,
        /// Eastern edge (longitude).
        e: i32,
        /// Northern edge (latitude).
        n: i32,
    },
    /// An area known by name to the parties (a district, a river basin).
    Named(String),
}

impl Area {
    /// Parses `bbox:W,S,E,N` (decimal degrees) or `name:TEXT`.
    ///
    /// # Errors
    ///
    /// Text naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("bbox:") {
            let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
            if parts.len() != 4 {
                return Err(format!(
                    "area {text:?}: a bounding box is bbox:WEST,SOUTH,EAST,NORTH in degrees"
                ));
            }
            let mut v = [0i32; 4];
            for (i, p) in parts.iter().enumerate() {
                v[i] = micro_degrees(p).ok_or_else(|| {
                    format!(
                        "area {text:?}: {p:?} is not a number of degrees with at most 6 decimals"
                    )
                })?;
            }
            let a = Area::Bbox {
                w: v[0],
                s: v[1],
                e: v[2],
                n: v[3],
            };
            a.check()?;
            Ok(a)
        } else if let Some(name) = text.strip_prefix("name:") {
            let a = Area::Named(name.trim().to_string());
            a.check()?;
            Ok(a)
        } else {
            Err(format!(
                "area {text:?}: give bbox:WEST,SOUTH,EAST,NORTH or name:AREA"
            ))
        }
    }

    /// Checks the bounds of the coordinates or the name.
    ///
    /// # Errors
    ///
    /// Text naming what is wrong.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Area::Bbox { w, s, e, n } => {
                let lon = -180_000_000..=180_000_000;
                let lat = -90_000_000..=90_000_000;
                if !lon.contains(w) || !lon.contains(e) || !lat.contains(s) || !lat.contains(n) {
                    return Err("area: coordinates out of range".into());
                }
                if w >= e || s >= n {
                    return Err("area: a bounding box needs west < east and south < north".into());
                }
                Ok(())
            }
            Area::Named(name) => check_text("area name", name),
        }
    }

    /// Whether `self` lies inside `outer`: a box inside a box, or the same name.
    pub fn within(&self, outer: &Area) -> bool {
        match (self, outer) {
            (
                Area::Bbox { w, s, e, n },
                Area::Bbox {
                    w: ow,
                    s: os,
                    e: oe,
                    n: on,
                },
            ) => w >= ow && s >= os && e <= oe && n <= on,
            (Area::Named(a), Area::Named(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl std::fmt::Display for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let deg = |v: i32| {
            let sign = if v < 0 { "-" } else { "" };
            let a = v.unsigned_abs();
            format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
        };
        match self {
            Area::Bbox { w, s, e, n } => {
                write!(f, "bbox:{},{},{},{}", deg(*w), deg(*s), deg(*e), deg(*n))
            }
            Area::Named(name) => write!(f, "name:{name}"),
        }
    }
}

fn micro_degrees(text: &str) -> Option<i32> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty()
        || int.len() > 3
        || frac.len() > 6
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int: i64 = int.parse().ok()?;
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..6 {
        f *= 10;
    }
    let v = int * 1_000_000 + f;
    i32::try_from(if neg { -v } else { v }).ok()
}

fn check_text(what: &str, text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > MAX_EMERGENCY_TEXT_BYTES {
        return Err(format!(
            "{what} must be 1 to {MAX_EMERGENCY_TEXT_BYTES} bytes"
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} holds control characters"));
    }
    Ok(())
}

/// Whether `t` is a Unix time a record may carry.
fn time_ok(t: i64) -> bool {
    (0..=crate::ucan::TIMESTAMP_LIMIT).contains(&t)
}

/// What an emergency agreement says (ISO 37156 6.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    /// The owner of the datasets, who signs.
    pub iss: Did,
    /// The datasets that open during a declared emergency (the owner's own).
    pub datasets: Vec<DatasetId>,
    /// The agencies that may declare an emergency under this agreement.
    pub declarers: Vec<Did>,
    /// The agencies that receive access while one is declared.
    pub recipients: Vec<Did>,
    /// The kinds of emergency covered (`flood`, `earthquake`, `fire`, ...), lower case.
    pub kinds: Vec<String>,
    /// The areas covered; a declaration's area lies inside one of them.
    pub areas: Vec<Area>,
    /// The longest a declaration may last, in hours.
    pub max_hours: u32,
    /// When it was signed, Unix seconds.
    pub issued: i64,
    /// When it lapses, Unix seconds: no declaration may start after it.
    pub expires: i64,
    /// Random bytes that make two agreements with the same terms distinct.
    pub nonce: ByteBuf,
}

/// What a declaration says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    /// The declaring agency, who signs; named in the agreement's `declarers`.
    pub iss: Did,
    /// The agreement's id (BLAKE3 of its envelope).
    pub agreement: ByteBuf,
    /// The kind of emergency, one of the agreement's kinds.
    pub kind: String,
    /// Where, inside one of the agreement's areas.
    pub area: Area,
    /// When access opens, Unix seconds.
    pub start: i64,
    /// When access closes, Unix seconds: every token issued under it expires then.
    pub end: i64,
}

/// An early end of a declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// Who ends it: the declarer, or the agreement's owner.
    pub iss: Did,
    /// The declaration's id.
    pub declaration: ByteBuf,
    /// When it ended, Unix seconds.
    pub at: i64,
}

/// Why bytes are not an acceptable emergency record, or a declaration does not fit its
/// agreement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmergencyError {
    /// Not a well-formed, correctly signed envelope of the right type.
    #[error("emergency record envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// A field out of bounds or a payload that does not decode.
    #[error("{0}")]
    Field(String),
    /// The declaration does not fit the agreement.
    #[error("declaration refused: {0}")]
    Refused(String),
}

fn field(s: impl Into<String>) -> EmergencyError {
    EmergencyError::Field(s.into())
}

impl Agreement {
    /// Checks the fields a signature cannot vouch for.
    ///
    /// # Errors
    ///
    /// [`EmergencyError::Field`] naming the field.
    pub fn check(&self) -> Result<(), EmergencyError> {
        if self.datasets.is_empty() || self.datasets.len() > MAX_EMERGENCY_DATASETS {
            return Err(field(format!(
                "an agreement names 1 to {MAX_EMERGENCY_DATASETS} datasets"
            )));
        }
        for (what, list) in [
            ("declarers", &self.declarers),
            ("recipients", &self.recipients),
        ] {
            if list.is_empty() || list.len() > MAX_EMERGENCY_PARTIES {
                return Err(field(format!(
                    "an agreement names 1 to {MAX_EMERGENCY_PARTIES} {what}"
                )));
            }
        }
        if self.kinds.is_empty() || self.kinds.len() > MAX_EMERGENCY_KINDS {
            return Err(field(format!(
                "an agreement names 1 to {MAX_EMERGENCY_KINDS} kinds of emergency"
            )));
        }
        for k in &self.kinds {
            check_kind(k)?;
        }
        if self.areas.is_empty() || self.areas.len() > MAX_EMERGENCY_AREAS {
            return Err(field(format!(
                "an agreement names 1 to {MAX_EMERGENCY_AREAS} areas"
            )));
        }
        for a in &self.areas {
            a.check().map_err(field)?;
        }
        if self.max_hours == 0 || self.max_hours > MAX_EMERGENCY_HOURS {
            return Err(field(format!(
                "max_hours must be 1 to {MAX_EMERGENCY_HOURS}"
            )));
        }
        if !time_ok(self.issued) || !time_ok(self.expires) || self.expires <= self.issued {
            return Err(field(
                "agreement times out of range or expiry not after issue",
            ));
        }
        if self.nonce.len() != 16 {
            return Err(field("agreement nonce must be 16 bytes"));
        }
        Ok(())
    }

    /// Whether `did` is named as declarer, recipient or owner.
    pub fn names(&self, did: &Did) -> bool {
        &self.iss == did || self.declarers.contains(did) || self.recipients.contains(did)
    }

    /// Every party but the owner, without repeats.
    pub fn parties(&self) -> Vec<Did> {
        let mut out: Vec<Did> = Vec::new();
        for d in self.declarers.iter().chain(&self.recipients) {
            if d != &self.iss && !out.contains(d) {
                out.push(*d);
            }
        }
        out
    }

    /// Signs with `key`, which must be `iss`'s.
    ///
    /// # Errors
    ///
    /// A field out of bounds, the wrong key, or encoding.
    pub fn seal(&self, key: &Keypair) -> Result<Signed<Agreement>, EmergencyError> {
        self.check()?;
        if key.did() != self.iss {
            return Err(field("the signing key is not the agreement's owner"));
        }
        let bytes = envelope::seal(key, AGREEMENT_TAG, self).map_err(|EncodeError(e)| field(e))?;
        Signed::<Agreement>::decode(&bytes)
    }
}

fn check_kind(k: &str) -> Result<(), EmergencyError> {
    if k.is_empty()
        || k.len() > 32
        || !k
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(field(format!(
            "kind of emergency {k:?}: 1 to 32 of a-z, 0-9 and '-'"
        )));
    }
    Ok(())
}

impl Declaration {
    /// Checks the fields a signature cannot vouch for.
    ///
    /// # Errors
    ///
    /// [`EmergencyError::Field`] naming the field.
    pub fn check(&self) -> Result<(), EmergencyError> {
        if self.agreement.len() != 32 {
            return Err(field("declaration: agreement id must be 32 bytes"));
        }
        check_kind(&self.kind)?;
        self.area.check().map_err(field)?;
        if !time_ok(self.start) || !time_ok(self.end) || self.end <= self.start {
            return Err(field(
                "declaration: times out of range or end not after start",
            ));
        }
        Ok(())
    }

    /// Signs with `key`, which must be `iss`'s.
    ///
    /// # Errors
    ///
    /// A field out of bounds, the wrong key, or encoding.
    pub fn seal(&self, key: &Keypair) -> Result<Signed<Declaration>, EmergencyError> {
        self.check()?;
        if key.did() != self.iss {
            return Err(field("the signing key is not the declarer's"));
        }
        let bytes =
            envelope::seal(key, DECLARATION_TAG, self).map_err(|EncodeError(e)| field(e))?;
        Signed::<Declaration>::decode(&bytes)
    }
}

impl End {
    /// Signs with `key`, which must be `iss`'s.
    ///
    /// # Errors
    ///
    /// A field out of bounds, the wrong key, or encoding.
    pub fn seal(&self, key: &Keypair) -> Result<Signed<End>, EmergencyError> {
        self.check()?;
        if key.did() != self.iss {
            return Err(field("the signing key is not the end's issuer"));
        }
        let bytes = envelope::seal(key, END_TAG, self).map_err(|EncodeError(e)| field(e))?;
        Signed::<End>::decode(&bytes)
    }

    fn check(&self) -> Result<(), EmergencyError> {
        if self.declaration.len() != 32 {
            return Err(field("end: declaration id must be 32 bytes"));
        }
        if !time_ok(self.at) {
            return Err(field("end: time out of range"));
        }
        Ok(())
    }
}

/// A record of this module as received: checked, with its bytes and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<T> {
    /// What it says.
    pub record: T,
    /// The exact envelope bytes.
    pub bytes: Vec<u8>,
    /// BLAKE3 of `bytes`.
    pub id: [u8; 32],
}

impl<T> Signed<T> {
    /// The id as lower-case hex.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

fn open<T: Serialize + serde::de::DeserializeOwned>(
    bytes: &[u8],
    tag: &str,
    limit: usize,
) -> Result<(Envelope, T), EmergencyError> {
    let env = Envelope::decode(bytes, limit)?;
    env.expect_tag(tag)?;
    let record: T = env.payload().map_err(|e| field(e.to_string()))?;
    Ok((env, record))
}

impl Signed<Agreement> {
    /// Decodes strictly (at most [`MAX_EMERGENCY_AGREEMENT_BYTES`]), checks the bounds and the
    /// owner's signature.
    ///
    /// # Errors
    ///
    /// [`EmergencyError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, EmergencyError> {
        let (env, record): (_, Agreement) =
            open(bytes, AGREEMENT_TAG, MAX_EMERGENCY_AGREEMENT_BYTES)?;
        record.check()?;
        env.verify(&record.iss.public_key())?;
        Ok(Self {
            record,
            bytes: bytes.to_vec(),
            id: *blake3::hash(bytes).as_bytes(),
        })
    }
}

impl Signed<Declaration> {
    /// Decodes strictly (at most [`MAX_EMERGENCY_DECLARATION_BYTES`]), checks the bounds and
    /// the declarer's signature.
    ///
    /// # Errors
    ///
    /// [`EmergencyError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, EmergencyError> {
        let (env, record): (_, Declaration) =
            open(bytes, DECLARATION_TAG, MAX_EMERGENCY_DECLARATION_BYTES)?;
        record.check()?;
        env.verify(&record.iss.public_key())?;
        Ok(Self {
            record,
            bytes: bytes.to_vec(),
            id: *blake3::hash(bytes).as_bytes(),
        })
    }
}

impl Signed<End> {
    /// Decodes strictly (at most [`MAX_EMERGENCY_DECLARATION_BYTES`]), checks the bounds and
    /// the signature.
    ///
    /// # Errors
    ///
    /// [`EmergencyError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, EmergencyError> {
        let (env, record): (_, End) = open(bytes, END_TAG, MAX_EMERGENCY_DECLARATION_BYTES)?;
        record.check()?;
        env.verify(&record.iss.public_key())?;
        Ok(Self {
            record,
            bytes: bytes.to_vec(),
            id: *blake3::hash(bytes).as_bytes(),
        })
    }
}

fn refused(s: impl Into<String>) -> EmergencyError {
    EmergencyError::Refused(s.into())
}

/// ISO 37156 6.7: whether `declaration` opens `agreement` at `now`: it names the agreement, its
/// signer is one of the agreement's declarers, its kind is one of the agreement's kinds, its area
/// lies inside one of the agreement's areas, it lasts no longer than `max_hours`, it starts
/// while the agreement holds and not more than [`START_SKEW_SECS`] ahead of `now`. Whether it
/// is still open (`now < end`, no early end) is the caller's to ask.
///
/// # Errors
///
/// [`EmergencyError::Refused`] saying which rule failed.
pub fn check_declaration(
    agreement: &Signed<Agreement>,
    declaration: &Signed<Declaration>,
    now: i64,
) -> Result<(), EmergencyError> {
    let a = &agreement.record;
    let d = &declaration.record;
    if d.agreement.as_slice() != agreement.id {
        return Err(refused("it names another agreement"));
    }
    if !a.declarers.contains(&d.iss) {
        return Err(refused(format!(
            "{} is not named as a declarer in agreement {}",
            d.iss,
            agreement.id_hex()
        )));
    }
    if !a.kinds.contains(&d.kind) {
        return Err(refused(format!(
            "kind {:?} is not covered (the agreement covers {})",
            d.kind,
            a.kinds.join(", ")
        )));
    }
    if !a.areas.iter().any(|outer| d.area.within(outer)) {
        return Err(refused(format!(
            "area {} is not inside an area of the agreement",
            d.area
        )));
    }
    if d.end - d.start > i64::from(a.max_hours) * 3600 {
        return Err(refused(format!(
            "it lasts {} s, over the agreement's {} hours",
            d.end - d.start,
            a.max_hours
        )));
    }
    if d.start < a.issued - START_SKEW_SECS || d.start >= a.expires {
        return Err(refused("it starts outside the agreement's validity"));
    }
    if d.start > now + START_SKEW_SECS {
        return Err(refused("it starts in the future"));
    }
    Ok(())
}

/// A request on `/cix/emergency/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmergencyRequest {
    /// An owner hands a party its agreement.
    Agreement {
        /// The agreement's envelope.
        agreement: ByteBuf,
    },
    /// A declarer tells a party an emergency is declared.
    Declaration {
        /// The agreement's envelope.
        agreement: ByteBuf,
        /// The declaration's envelope.
        declaration: ByteBuf,
    },
    /// A declaration ended early.
    End {
        /// The agreement's envelope.
        agreement: ByteBuf,
        /// The declaration's envelope.
        declaration: ByteBuf,
        /// The end's envelope.
        end: ByteBuf,
    },
    /// A recipient asks the owner for its grants, with the agreement and the declaration as
    /// proof.
    Grant {
        /// The agreement's envelope.
        agreement: ByteBuf,
        /// The declaration's envelope.
        declaration: ByteBuf,
    },
}

/// An answer on `/cix/emergency/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmergencyResponse {
    /// Accepted and kept.
    Accepted,
    /// Grants (UCAN delegations) for the requester, one per dataset, expiring at the
    /// declaration's end.
    Granted {
        /// The delegations.
        delegations: Vec<ByteBuf>,
    },
    /// Refused, with the reason.
    Refused {
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn agreement(owner: &Keypair, declarer: &Keypair, recipient: &Keypair) -> Signed<Agreement> {
        Agreement {
            iss: owner.did(),
            datasets: vec![DatasetId([1; 16])],
            declarers: vec![declarer.did()],
            recipients: vec![recipient.did()],
            kinds: vec!["flood".into()],
            areas: vec![Area::parse("bbox:4.7,52.2,5.1,52.5").unwrap()],
            max_hours: 48,
            issued: 1_780_000_000,
            expires: 1_790_000_000,
            nonce: ByteBuf::from(vec![7; 16]),
        }
        .seal(owner)
        .unwrap()
    }

    fn declaration(
        by: &Keypair,
        a: &Signed<Agreement>,
        kind: &str,
        area: &str,
        hours: i64,
    ) -> Signed<Declaration> {
        Declaration {
            iss: by.did(),
            agreement: ByteBuf::from(a.id.to_vec()),
            kind: kind.into(),
            area: Area::parse(area).unwrap(),
            start: 1_780_100_000,
            end: 1_780_100_000 + hours * 3600,
        }
        .seal(by)
        .unwrap()
    }

    #[test]
    fn iso_37156_6_7_a_declaration_must_fit_its_agreement() {
        let (o, d, r) = (
            Keypair::generate(),
            Keypair::generate(),
            Keypair::generate(),
        );
        let a = agreement(&o, &d, &r);
        let now = 1_780_100_010;
        let ok = declaration(&d, &a, "flood", "bbox:4.8,52.3,4.9,52.4", 24);
        check_declaration(&a, &ok, now).unwrap();
        let e = check_declaration(
            &a,
            &declaration(&r, &a, "flood", "bbox:4.8,52.3,4.9,52.4", 24),
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not named as a declarer"), "{e}");
        let e = check_declaration(
            &a,
            &declaration(&d, &a, "fire", "bbox:4.8,52.3,4.9,52.4", 24),
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("kind"), "{e}");
        let e = check_declaration(
            &a,
            &declaration(&d, &a, "flood", "bbox:4.0,52.3,4.9,52.4", 24),
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("area"), "{e}");
        let e = check_declaration(&a, &declaration(&d, &a, "flood", "name:Amsterdam", 24), now)
            .unwrap_err();
        assert!(e.to_string().contains("area"), "{e}");
        let e = check_declaration(
            &a,
            &declaration(&d, &a, "flood", "bbox:4.8,52.3,4.9,52.4", 49),
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("48 hours"), "{e}");
        let e = check_declaration(&a, &ok, ok.record.start - START_SKEW_SECS - 1).unwrap_err();
        assert!(e.to_string().contains("future"), "{e}");
    }

    #[test]
    fn forged_and_tampered_records_are_refused() {
        let (o, d, r) = (
            Keypair::generate(),
            Keypair::generate(),
            Keypair::generate(),
        );
        let a = agreement(&o, &d, &r);
        // The declarer's name, someone else's key.
        let mut body = declaration(&d, &a, "flood", "bbox:4.8,52.3,4.9,52.4", 1).record;
        body.iss = d.did();
        let forged = envelope::seal(&r, DECLARATION_TAG, &body).unwrap();
        assert!(matches!(
            Signed::<Declaration>::decode(&forged),
            Err(EmergencyError::Envelope(EnvelopeError::Signature(_)))
        ));
        let mut bad = a.bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(Signed::<Agreement>::decode(&bad).is_err());
        // An agreement is not a declaration, even when signed.
        assert!(Signed::<Declaration>::decode(&a.bytes).is_err());
        assert!(
            Signed::<Agreement>::decode(&vec![0u8; MAX_EMERGENCY_AGREEMENT_BYTES + 1]).is_err()
        );
    }

    #[test]
    fn areas_parse_and_nest() {
        let outer = Area::parse("bbox:4.7,52.2,5.1,52.5").unwrap();
        assert_eq!(
            outer.to_string(),
            "bbox:4.700000,52.200000,5.100000,52.500000"
        );
        assert!(Area::parse("bbox:-0.5,51.2,0.3,51.7")
            .unwrap()
            .within(&Area::parse("bbox:-1,51,1,52").unwrap()));
        assert!(!outer.within(&Area::parse("bbox:4.8,52.2,5.1,52.5").unwrap()));
        assert!(Area::parse("bbox:5,52,4,53").is_err());
        assert!(Area::parse("bbox:200,52,201,53").is_err());
        assert!(Area::parse("bbox:1,2,3").is_err());
        assert!(Area::parse("Amsterdam").is_err());
        assert!(Area::parse(&format!(
            "name:{}",
            "x".repeat(MAX_EMERGENCY_TEXT_BYTES + 1)
        ))
        .is_err());
        assert!(Area::parse("name:Delfland")
            .unwrap()
            .within(&Area::parse("name:delfland").unwrap()));
    }

    #[test]
    fn agreement_bounds_are_enforced() {
        let (o, d, r) = (
            Keypair::generate(),
            Keypair::generate(),
            Keypair::generate(),
        );
        let mut a = agreement(&o, &d, &r).record;
        a.max_hours = MAX_EMERGENCY_HOURS + 1;
        assert!(a.seal(&o).is_err());
        a.max_hours = 1;
        a.kinds = vec!["Flood!".into()];
        assert!(a.seal(&o).is_err());
        a.kinds = vec!["flood".into()];
        a.recipients = vec![];
        assert!(a.seal(&o).is_err());
        a.recipients = vec![r.did()];
        assert!(
            a.seal(&d).is_err(),
            "signed by someone other than the owner"
        );
    }
}
