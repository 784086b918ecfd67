//! Writes the test vectors of `specs/vectors/`.
//!
//! Every input is fixed (seeds, dataset ids, times, file contents) and Ed25519 signing is
//! deterministic, so each run writes the same bytes. `tests/vectors.rs` includes this file,
//! runs [`generate`] and fails if the committed files differ, so regenerate with
//!
//! ```text
//! cargo run -p cix-protocol --example vectors
//! ```
//!
//! whenever an encoding changes on purpose, and review the diff.
//!
//! Each case states its intended verdict here, next to its construction; the generator refuses
//! to write a case the decoder disagrees with, so a regression cannot be recorded as the new
//! truth by rerunning it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ciborium::Value;
use serde::Serialize;

use cix_protocol::catalogue::{
    AccessMode, Agent, BoundingBox, Concept, Contact, DataType, DatasetId, Distribution, Domain,
    Entry, EntryError, EntryId, Facets, Insight, Iso, Kind, Privacy, Roles, SignedEntry, Spatial,
    Spectrum, Temporal, ENTRY_TAG,
};
use cix_protocol::cbor::{self, DecodeError};
use cix_protocol::content::ContentHash;
use cix_protocol::dictionary::{Field, FieldType};
use cix_protocol::envelope::{self, EnvelopeError};
use cix_protocol::identity::Keypair;
use cix_protocol::limits;
use cix_protocol::ucan;
use cix_protocol::wire::{
    AccessRequest, AccessResponse, DenyCode, Projection, SyncRequest, SyncResponse, TransferHeader,
    TransferRequest, ACCESS_PROTOCOL, SYNC_PROTOCOL, TRANSFER_PROTOCOL,
};

/// Seed of the data owner in every vector ("Riverside Water Board").
pub(crate) const OWNER_SEED: [u8; 32] = [1; 32];
/// Seed of a second agency, the requester.
pub(crate) const REQUESTER_SEED: [u8; 32] = [2; 32];
/// Secret key of RFC 8032 section 7.1, TEST 1: its public key is published there, which lets a
/// reader check their Ed25519 library and our seed convention against an outside source.
pub(crate) const RFC8032_TEST1_SEED: &str =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

/// Stands in for a UCAN token in wire vectors: the wire layer carries tokens as opaque byte
/// strings, and token vectors belong to `specs/ucan.md`.
const TOKEN_PLACEHOLDER: &[u8] = b"placeholder, not a token: see specs/ucan.md";

/// Directory the files go to.
pub(crate) fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors")
}

/// Every generated file: its name inside `specs/vectors/` and its contents.
///
/// # Panics
///
/// If any case's decoder verdict differs from the one stated here.
pub(crate) fn generate() -> Vec<(&'static str, String)> {
    let owner = Keypair::from_seed(OWNER_SEED);
    let entries = entry_vectors(&owner);
    let valid = &entries.signed;
    vec![
        ("identity.json", json(&identity_file())),
        ("content.json", json(&content_file())),
        ("entries.json", json(&entries.file)),
        ("wire.json", json(&wire_file(&owner))),
        ("sync.json", json(&sync_file(valid))),
        ("tokens.json", json(&tokens_file(&owner))),
        ("revocations.json", json(&revocations_file(&owner))),
        ("withdrawals.json", json(&withdrawals_file(&owner))),
        ("audit.json", json(&audit_file(&owner))),
        ("annotated.txt", annotated_file(valid, &owner)),
    ]
}

#[allow(dead_code)] // unused when tests/vectors.rs includes this file as a module
fn main() -> std::io::Result<()> {
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir)?;
    for (name, contents) in generate() {
        let path = dir.join(name);
        std::fs::write(&path, contents)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("vector files are plain data");
    text.push('\n');
    text
}

/// The frame shared by every JSON file.
#[derive(Serialize)]
struct VectorFile<T> {
    about: &'static str,
    regenerate: &'static str,
    vectors: Vec<T>,
}

fn vector_file<T>(about: &'static str, vectors: Vec<T>) -> VectorFile<T> {
    VectorFile {
        about,
        regenerate: "cargo run -p cix-protocol --example vectors",
        vectors,
    }
}

// ---------------------------------------------------------------------------------------------
// Identity

#[derive(Serialize)]
struct KeyVector {
    name: &'static str,
    seed: String,
    public_key: String,
    did: String,
    peer_id: String,
    peer_id_bytes: String,
    message: String,
    signature: String,
}

fn identity_file() -> VectorFile<KeyVector> {
    let rfc_seed: [u8; 32] = hex::decode(RFC8032_TEST1_SEED)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let keys = [
        ("owner", OWNER_SEED, b"cix".as_slice()),
        ("requester", REQUESTER_SEED, b"cix".as_slice()),
        ("rfc8032-test1", rfc_seed, b"".as_slice()),
    ];
    let vectors = keys
        .into_iter()
        .map(|(name, seed, message)| {
            let key = Keypair::from_seed(seed);
            let public = key.public().to_bytes();
            let peer_id = peer_id_bytes(&public);
            KeyVector {
                name,
                seed: hex::encode(seed),
                public_key: hex::encode(public),
                did: key.did().to_string(),
                peer_id: bs58::encode(&peer_id).into_string(),
                peer_id_bytes: hex::encode(&peer_id),
                message: hex::encode(message),
                signature: hex::encode(key.sign(message)),
            }
        })
        .collect();
    vector_file(
        "Ed25519 keys from fixed seeds: did:key, libp2p PeerId, a signature",
        vectors,
    )
}

/// A libp2p PeerId of an Ed25519 key: identity multihash (0x00, length) of the protobuf
/// `PublicKey { Type: Ed25519 = 1, Data: key }`, i.e. `08 01 12 20 || key`.
pub(crate) fn peer_id_bytes(public: &[u8; 32]) -> Vec<u8> {
    let mut protobuf = vec![0x08, 0x01, 0x12, 0x20];
    protobuf.extend_from_slice(public);
    let mut out = vec![0x00, protobuf.len() as u8];
    out.extend_from_slice(&protobuf);
    out
}

// ---------------------------------------------------------------------------------------------
// Content ids

/// Version 1 of the pressure readings.
const PRESSURE_V1: &[u8] = b"main_id,time,pressure (kPa)\n\
WM-0412,2026-11-30T00:00:00Z,412\n\
WM-0412,2026-11-30T01:00:00Z,409\n";
/// Version 2 of the pressure readings: one more row.
const PRESSURE_V2: &[u8] = b"main_id,time,pressure (kPa)\n\
WM-0412,2026-11-30T00:00:00Z,412\n\
WM-0412,2026-11-30T01:00:00Z,409\n\
WM-0412,2026-11-30T02:00:00Z,415\n";
/// Version 1 projected on `main_id` and `pressure` (ISO 37156 8.2.2 c), as an owner serves it.
const PRESSURE_V1_PROJECTED: &[u8] = b"main_id,pressure (kPa)\n\
WM-0412,412\n\
WM-0412,409\n";
/// Household consumption (personal data, shared with named agencies only).
const CONSUMPTION: &[u8] = b"meter_id,date,volume (m3)\nHH-00017,2026-11-30,0.412\n";
/// Hydrant locations (reference data, shared under public terms).
const HYDRANTS: &[u8] = b"hydrant_id,lon_e7,lat_e7\nHY-001,134512345,525123456\n";

#[derive(Serialize)]
struct ContentVector {
    name: &'static str,
    data: String,
    length: usize,
    blake3: String,
}

fn content_file() -> VectorFile<ContentVector> {
    let inputs: [(&'static str, &[u8]); 5] = [
        ("empty", b""),
        ("pressure-v1.csv", PRESSURE_V1),
        ("pressure-v2.csv", PRESSURE_V2),
        ("consumption.csv", CONSUMPTION),
        ("hydrants.csv", HYDRANTS),
    ];
    let vectors = inputs
        .into_iter()
        .map(|(name, data)| ContentVector {
            name,
            data: hex::encode(data),
            length: data.len(),
            blake3: ContentHash::of(data).to_hex(),
        })
        .collect();
    vector_file(
        "content ids: BLAKE3 of the bytes, as b3sum prints it",
        vectors,
    )
}

// ---------------------------------------------------------------------------------------------
// Catalogue entries

#[derive(Serialize)]
struct EntryVector {
    name: &'static str,
    description: &'static str,
    envelope: String,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What a case is meant to produce.
enum Expect {
    Valid,
    /// The error kind (see [`error_kind`]) and, for rule errors, the field.
    Invalid(&'static str, Option<&'static str>),
}

struct Entries {
    file: VectorFile<EntryVector>,
    /// The valid entries, in file order.
    signed: Vec<SignedEntry>,
}

fn agency(key: &Keypair) -> Agent {
    Agent {
        name: "Riverside Water Board".into(),
        did: Some(key.did()),
        uri: None,
    }
}

fn csv_distribution(data: &[u8], filename: &str) -> Distribution {
    Distribution {
        media_type: "text/csv".into(),
        bytes: Some(data.len() as u64),
        content: Some(ContentHash::of(data)),
        filename: Some(filename.into()),
        ..Default::default()
    }
}

fn field(name: &str, field_type: FieldType, unit: Option<&str>, description: &str) -> Field {
    Field {
        name: name.into(),
        field_type,
        unit: unit.map(Into::into),
        description: Some(description.into()),
        nullable: false,
        min: None,
        max: None,
        allowed: None,
        geometry_types: None,
        count: None,
        privacy: None,
    }
}

fn privacy_none() -> Privacy {
    Privacy {
        personal_data: false,
        high_risk: vec![],
        purpose: None,
        legal_basis: None,
        retention_days: None,
        jurisdiction: "DE".into(),
        allowed_jurisdictions: vec![],
        notice: None,
    }
}

/// Open thematic data: pressure along a water main, version 1.
fn pressure_v1(owner: &Keypair) -> Entry {
    Entry {
        iss: owner.did(),
        dataset: DatasetId(std::array::from_fn(|i| i as u8)),
        version: 1,
        previous: None,
        title: "Water main pressure, district 4".into(),
        description: "Hourly pressure readings along water main WM-0412".into(),
        keywords: vec!["water".into(), "pressure".into()],
        themes: vec!["ENVI".into()],
        publisher: agency(owner),
        contact: Some(Contact {
            name: "Network data desk".into(),
            email: Some("data@riverside-water.example".into()),
            ..Default::default()
        }),
        licence: Some("CC-BY-4.0".into()),
        spatial: Some(Spatial {
            name: Some("District 4".into()),
            bbox: Some(BoundingBox {
                west: 134_500_000,
                south: 524_500_000,
                east: 135_500_000,
                north: 525_500_000,
            }),
        }),
        temporal: Some(Temporal {
            start: Some("2026-11-30".into()),
            end: Some("2026-11-30".into()),
        }),
        issued: "2026-12-01T08:00:00Z".into(),
        modified: "2026-12-01T08:00:00Z".into(),
        distributions: vec![csv_distribution(PRESSURE_V1, "pressure.csv")],
        details: Default::default(),
        iso: Iso {
            data_type: DataType::Thematic,
            kind: Kind::Status,
            concept: Concept::State,
            domain: Domain::Water,
            insight: Insight::Operational,
            facets: Facets {
                subject: Some("infrastructure".into()),
                metric: Some("state".into()),
                place: Some("route".into()),
                time: Some("timestamp".into()),
                stakeholder: Some("operator".into()),
            },
            spectrum: Spectrum::Open,
            access: None,
            groups: vec![],
            terms: None,
            roles: Roles {
                creator: agency(owner),
                owner: agency(owner),
                custodians: vec![],
                primary_publisher: owner.did(),
                secondary_publisher: None,
            },
            provenance: Some("SCADA pressure loggers, hourly means".into()),
            quality: Some("Loggers calibrated 2026-06".into()),
            privacy: privacy_none(),
            dictionary: vec![
                field("main_id", FieldType::String, None, "Water main identifier"),
                field("time", FieldType::Datetime, None, "Start of the hour"),
                field("pressure", FieldType::Integer, Some("kPa"), "Mean pressure"),
            ],
        },
    }
}

/// Version 2 of the same dataset, superseding version 1.
fn pressure_v2(owner: &Keypair, v1: EntryId) -> Entry {
    let mut e = pressure_v1(owner);
    e.version = 2;
    e.previous = Some(v1);
    e.modified = "2026-12-02T08:00:00Z".into();
    e.distributions = vec![csv_distribution(PRESSURE_V2, "pressure.csv")];
    e
}

/// Shared with named agencies only: personal data with purpose, basis and retention.
fn consumption(owner: &Keypair) -> Entry {
    let mut e = pressure_v1(owner);
    e.dataset = DatasetId(std::array::from_fn(|i| 0x10 + i as u8));
    e.title = "Household water consumption, district 4".into();
    e.description = "Daily metered volume per household".into();
    e.keywords = vec!["water".into(), "consumption".into()];
    e.licence = None;
    e.distributions = vec![csv_distribution(CONSUMPTION, "consumption.csv")];
    e.iso.kind = Kind::Consumption;
    e.iso.facets.subject = Some("person or household".into());
    e.iso.facets.metric = Some("quantity".into());
    e.iso.facets.place = Some("point".into());
    e.iso.facets.time = Some("date".into());
    e.iso.facets.stakeholder = Some("citizen".into());
    e.iso.spectrum = Spectrum::Shared;
    e.iso.access = Some(AccessMode::Named);
    e.iso.provenance = Some("Smart meter readings".into());
    e.iso.quality = None;
    e.iso.privacy = Privacy {
        personal_data: true,
        high_risk: vec![],
        purpose: Some("leak detection".into()),
        legal_basis: Some("public task".into()),
        retention_days: Some(90),
        jurisdiction: "DE".into(),
        allowed_jurisdictions: vec![],
        notice: None,
    };
    e.iso.dictionary = vec![
        field("meter_id", FieldType::String, None, "Household meter"),
        field("date", FieldType::Date, None, "Day of reading"),
        field(
            "volume",
            FieldType::Number,
            Some("m3"),
            "Volume drawn that day",
        ),
    ];
    e
}

/// Shared with anyone who accepts the terms: reference data.
fn hydrants(owner: &Keypair) -> Entry {
    let mut e = pressure_v1(owner);
    e.dataset = DatasetId(std::array::from_fn(|i| 0x20 + i as u8));
    e.title = "Fire hydrant locations".into();
    e.description = "Every public hydrant with its position".into();
    e.keywords = vec!["hydrant".into(), "emergency".into()];
    e.temporal = None;
    e.distributions = vec![csv_distribution(HYDRANTS, "hydrants.csv")];
    e.iso.data_type = DataType::Reference;
    e.iso.kind = Kind::Characteristic;
    e.iso.concept = Concept::Infrastructure;
    e.iso.insight = Insight::Critical;
    e.iso.facets = Facets {
        place: Some("point".into()),
        ..Facets::default()
    };
    e.iso.spectrum = Spectrum::Shared;
    e.iso.access = Some(AccessMode::Public);
    e.iso.terms = Some("Emergency planning only; do not republish".into());
    e.iso.provenance = None;
    e.iso.quality = None;
    e.iso.dictionary = vec![
        field("hydrant_id", FieldType::String, None, "Hydrant"),
        field(
            "lon_e7",
            FieldType::Integer,
            Some("1e-7 degree"),
            "WGS 84 longitude",
        ),
        field(
            "lat_e7",
            FieldType::Integer,
            Some("1e-7 degree"),
            "WGS 84 latitude",
        ),
    ];
    e
}

/// Signs `entry` after its rules pass.
fn sign(entry: &Entry, key: &Keypair) -> SignedEntry {
    entry.sign(key).expect("a valid vector entry signs")
}

/// Signs `entry` without running the rules, as a hostile or buggy peer would.
fn seal_unchecked<T: Serialize>(key: &Keypair, tag: &str, payload: &T) -> Vec<u8> {
    envelope::seal(key, tag, payload).expect("the payload encodes")
}

/// Parses canonical bytes into a generic value (the caller breaks them on purpose).
fn parse(bytes: &[u8]) -> Value {
    cbor::value_from_slice(bytes, usize::MAX).expect("generator input is canonical")
}

/// Writes a generic value as it stands, without sorting keys: how non-canonical bytes are made.
fn write_raw(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("writing to a vector cannot fail");
    out
}

/// The entry map inside an envelope value.
fn payload_mut(envelope: &mut Value) -> &mut Vec<(Value, Value)> {
    let Value::Array(parts) = envelope else {
        panic!("envelope is an array")
    };
    let Value::Map(signed) = &mut parts[1] else {
        panic!("signed part is a map")
    };
    let Value::Map(payload) = &mut signed[1].1 else {
        panic!("payload is a map")
    };
    payload
}

fn entry_vectors(owner: &Keypair) -> Entries {
    let requester = Keypair::from_seed(REQUESTER_SEED);
    let v1 = sign(&pressure_v1(owner), owner);
    let v2 = sign(&pressure_v2(owner, v1.id), owner);
    let named = sign(&consumption(owner), owner);
    let public = sign(&hydrants(owner), owner);

    let mut bad_signature = v1.bytes.clone();
    bad_signature[3] ^= 0x01; // first byte of the signature

    let mut open_personal = pressure_v1(owner);
    open_personal.iso.privacy = consumption(owner).iso.privacy;

    let mut shared_no_mode = pressure_v1(owner);
    shared_no_mode.iso.spectrum = Spectrum::Shared;

    let mut no_previous = pressure_v1(owner);
    no_previous.version = 2;

    let mut swapped = parse(&v1.bytes);
    payload_mut(&mut swapped).swap(0, 1); // "iso" and "iss": both three letters, "iso" first

    let wide_version = widen_version(&v1.bytes);

    let mut trailing = v1.bytes.clone();
    trailing.push(0x00);

    let mut float = parse(&v1.bytes);
    for (k, v) in payload_mut(&mut float).iter_mut() {
        if k.as_text() == Some("version") {
            *v = Value::Float(1.0);
        }
    }

    let mut unknown = Value::serialized(&pressure_v1(owner)).expect("an entry is a value");
    if let Value::Map(m) = &mut unknown {
        m.push((Value::Text("rating".into()), Value::Integer(5.into())));
    }

    let rule = |field| Expect::Invalid("rule", Some(field));
    let cases: Vec<(&'static str, &'static str, Vec<u8>, Expect)> = vec![
        (
            "open-v1",
            "open thematic data, version 1",
            v1.bytes.clone(),
            Expect::Valid,
        ),
        (
            "open-v2",
            "version 2 of the same dataset; previous = open-v1's id",
            v2.bytes.clone(),
            Expect::Valid,
        ),
        (
            "shared-named-personal",
            "personal data shared with named agencies, with purpose, legal basis and retention",
            named.bytes.clone(),
            Expect::Valid,
        ),
        (
            "shared-public-terms",
            "reference data shared with anyone accepting the terms",
            public.bytes.clone(),
            Expect::Valid,
        ),
        (
            "bad-signature",
            "open-v1 with the first signature byte flipped",
            bad_signature,
            Expect::Invalid("signature", None),
        ),
        (
            "wrong-signer",
            "open-v1 names the owner as iss but the requester signed it",
            seal_unchecked(&requester, ENTRY_TAG, &pressure_v1(owner)),
            Expect::Invalid("signature", None),
        ),
        (
            "open-personal-data",
            "open data declaring personal data (signed without the rules)",
            seal_unchecked(owner, ENTRY_TAG, &open_personal),
            rule("iso.privacy.personal_data"),
        ),
        (
            "shared-without-access-mode",
            "shared data with no access mode",
            seal_unchecked(owner, ENTRY_TAG, &shared_no_mode),
            rule("iso.access"),
        ),
        (
            "version-2-without-previous",
            "version 2 that names no previous entry",
            seal_unchecked(owner, ENTRY_TAG, &no_previous),
            rule("version"),
        ),
        (
            "non-canonical-key-order",
            "open-v1 with the payload keys iss and iso swapped",
            write_raw(&swapped),
            Expect::Invalid("not-canonical", None),
        ),
        (
            "non-minimal-integer",
            "open-v1 with version 1 written as 0x18 0x01",
            wide_version,
            Expect::Invalid("not-canonical", None),
        ),
        (
            "trailing-byte",
            "open-v1 followed by one 0x00 byte",
            trailing,
            Expect::Invalid("trailing-bytes", None),
        ),
        (
            "float",
            "open-v1 with version written as the float 1.0",
            write_raw(&float),
            Expect::Invalid("float", None),
        ),
        (
            "wrong-type-tag",
            "an entry payload sealed under the delegation tag ucan/dlg@1.0.0",
            seal_unchecked(owner, "ucan/dlg@1.0.0", &pressure_v1(owner)),
            Expect::Invalid("wrong-type", None),
        ),
        (
            "unknown-field",
            "a correctly signed entry with an extra field rating",
            seal_unchecked(owner, ENTRY_TAG, &unknown),
            Expect::Invalid("schema", None),
        ),
    ];

    let mut vectors = Vec::new();
    let mut signed = Vec::new();
    for (name, description, bytes, expect) in cases {
        let verdict = SignedEntry::decode(&bytes);
        let mut v = EntryVector {
            name,
            description,
            envelope: hex::encode(&bytes),
            verdict: "valid",
            entry_id: None,
            dataset: None,
            version: None,
            kind: None,
            field: None,
            error: None,
        };
        match (expect, verdict) {
            (Expect::Valid, Ok(entry)) => {
                v.entry_id = Some(entry.id.to_string());
                v.dataset = Some(entry.entry.dataset.to_string());
                v.version = Some(entry.entry.version);
                signed.push(entry);
            }
            (Expect::Invalid(kind, field), Err(err)) => {
                let (found_kind, found_field) = error_kind(&err);
                assert_eq!((found_kind, found_field), (kind, field), "{name}: {err}");
                v.verdict = "invalid";
                v.kind = Some(kind);
                v.field = field;
                v.error = Some(err.to_string());
            }
            (Expect::Valid, Err(err)) => panic!("{name} should be valid, decoder says: {err}"),
            (Expect::Invalid(kind, _), Ok(_)) => {
                panic!("{name} should fail ({kind}), decoder accepts it")
            }
        }
        vectors.push(v);
    }
    Entries {
        file: vector_file(
            "signed catalogue entries (cix/entry@1) and their verdicts",
            vectors,
        ),
        signed,
    }
}

/// Rewrites the `version` value 1 (0x01) as the non-minimal 0x18 0x01.
fn widen_version(bytes: &[u8]) -> Vec<u8> {
    let mut needle = vec![0x67];
    needle.extend_from_slice(b"version");
    needle.push(0x01);
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("version 1 is encoded");
    let mut out = bytes[..at + needle.len() - 1].to_vec();
    out.extend_from_slice(&[0x18, 0x01]);
    out.extend_from_slice(&bytes[at + needle.len()..]);
    out
}

/// The verdict category of an entry error, as `specs/vectors/README.md` lists them, with the
/// field for rule errors.
fn error_kind(err: &EntryError) -> (&'static str, Option<&'static str>) {
    match err {
        EntryError::Rule(r) => ("rule", Some(r.field)),
        EntryError::Schema(_) => ("schema", None),
        EntryError::Envelope(EnvelopeError::Decode(d)) => (decode_kind(d), None),
        EntryError::Envelope(EnvelopeError::Signature(_)) => ("signature", None),
        EntryError::Envelope(EnvelopeError::WrongType { .. }) => ("wrong-type", None),
        EntryError::Envelope(_) => ("envelope", None),
        _ => ("other", None),
    }
}

fn decode_kind(err: &DecodeError) -> &'static str {
    match err {
        DecodeError::Malformed(_) => "malformed",
        DecodeError::TrailingBytes(_) => "trailing-bytes",
        DecodeError::Float => "float",
        DecodeError::DuplicateKey => "duplicate-key",
        DecodeError::Schema(_) => "schema",
        DecodeError::NotCanonical => "not-canonical",
        DecodeError::TooLarge { .. } => "too-large",
        _ => "other",
    }
}

// ---------------------------------------------------------------------------------------------
// Wire messages

#[derive(Serialize)]
struct WireVector {
    name: &'static str,
    protocol: &'static str,
    message: &'static str,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnostic: Option<String>,
    cbor: String,
    /// The message as it appears on the stream: 4-byte big-endian length, then the CBOR.
    #[serde(skip_serializing_if = "Option::is_none")]
    framed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The wire messages, as (name, protocol, type name, value) with the value encoded.
fn wire_messages(owner: &Keypair) -> Vec<(&'static str, &'static str, &'static str, Vec<u8>)> {
    let pressure = pressure_v1(owner);
    let named = consumption(owner);
    let public = hydrants(owner);
    let request_id: Vec<u8> = (0xa0..0xb0).collect();

    let mut out = vec![
        (
            "access-request-named",
            ACCESS_PROTOCOL,
            "AccessRequest",
            enc(&AccessRequest {
                request: request_id.clone(),
                dataset: named.dataset,
                purpose: "leak detection model for district 4".into(),
                accept_terms: false,
                probe: false,
                profile: None,
                attestations: Vec::new(),
            }),
        ),
        (
            "access-request-public-accepting-terms",
            ACCESS_PROTOCOL,
            "AccessRequest",
            enc(&AccessRequest {
                request: (0xb0..0xc0).collect(),
                dataset: public.dataset,
                purpose: "emergency response planning".into(),
                accept_terms: true,
                probe: false,
                profile: None,
                attestations: Vec::new(),
            }),
        ),
        (
            "access-request-probe",
            ACCESS_PROTOCOL,
            "AccessRequest",
            enc(&AccessRequest {
                request: (0xc0..0xd0).collect(),
                dataset: named.dataset,
                purpose: String::new(),
                accept_terms: false,
                probe: true,
                profile: None,
                attestations: Vec::new(),
            }),
        ),
        (
            "access-response-open",
            ACCESS_PROTOCOL,
            "AccessResponse",
            enc(&AccessResponse::Open),
        ),
        (
            "access-response-pending",
            ACCESS_PROTOCOL,
            "AccessResponse",
            enc(&AccessResponse::Pending),
        ),
        (
            "access-response-granted",
            ACCESS_PROTOCOL,
            "AccessResponse",
            enc(&AccessResponse::Granted {
                delegation: TOKEN_PLACEHOLDER.to_vec(),
            }),
        ),
    ];
    let denials: [(&'static str, DenyCode, &str); 9] = [
        (
            "access-response-denied-unknown-dataset",
            DenyCode::UnknownDataset,
            "no such dataset here",
        ),
        (
            "access-response-denied-closed",
            DenyCode::Closed,
            "closed data never leaves its node",
        ),
        (
            "access-response-denied-by-owner",
            DenyCode::DeniedByOwner,
            "the owner declined this request",
        ),
        (
            "access-response-denied-terms-not-accepted",
            DenyCode::TermsNotAccepted,
            "accept the stated terms to get this dataset",
        ),
        (
            "access-response-denied-unsupported",
            DenyCode::Unsupported,
            "group access is not supported yet",
        ),
        (
            "access-response-denied-bad-request",
            DenyCode::BadRequest,
            "purpose is longer than 1024 bytes",
        ),
        (
            "access-response-denied-no-grant",
            DenyCode::NoGrant,
            "no valid grant",
        ),
        (
            "access-response-denied-not-held",
            DenyCode::NotHeld,
            "content not held here",
        ),
        (
            "access-response-denied-busy",
            DenyCode::Busy,
            "too many pending requests, try later",
        ),
    ];
    for (name, code, reason) in denials {
        out.push((
            name,
            ACCESS_PROTOCOL,
            "AccessResponse",
            enc(&AccessResponse::Denied {
                code,
                reason: reason.into(),
            }),
        ));
    }
    let content = ContentHash::of(PRESSURE_V1);
    out.extend([
        (
            "transfer-request-open",
            TRANSFER_PROTOCOL,
            "TransferRequest",
            enc(&TransferRequest {
                dataset: pressure.dataset,
                content,
                ranges: vec![],
                invocation: None,
                proofs: vec![],
                profile: None,
            }),
        ),
        (
            "transfer-request-with-grant",
            TRANSFER_PROTOCOL,
            "TransferRequest",
            enc(&TransferRequest {
                dataset: named.dataset,
                content: ContentHash::of(CONSUMPTION),
                ranges: vec![],
                invocation: Some(TOKEN_PLACEHOLDER.to_vec()),
                proofs: vec![serde_bytes::ByteBuf::from(TOKEN_PLACEHOLDER.to_vec())],
                profile: None,
            }),
        ),
        (
            "transfer-request-ranges",
            TRANSFER_PROTOCOL,
            "TransferRequest",
            enc(&TransferRequest {
                dataset: pressure.dataset,
                content,
                ranges: vec![(0, PRESSURE_V1.len() as u64)],
                invocation: None,
                proofs: vec![],
                profile: None,
            }),
        ),
        (
            "transfer-header-ok",
            TRANSFER_PROTOCOL,
            "TransferHeader",
            enc(&TransferHeader::Ok {
                size: PRESSURE_V1.len() as u64,
                length: PRESSURE_V1.len() as u64,
                projection: None,
            }),
        ),
        (
            "transfer-header-ok-projection",
            TRANSFER_PROTOCOL,
            "TransferHeader",
            enc(&TransferHeader::Ok {
                size: PRESSURE_V1.len() as u64,
                length: PRESSURE_V1_PROJECTED.len() as u64,
                projection: Some(Projection {
                    fields: vec!["main_id".into(), "pressure".into()],
                    content: ContentHash::of(PRESSURE_V1_PROJECTED),
                    size: PRESSURE_V1_PROJECTED.len() as u64,
                }),
            }),
        ),
        (
            "transfer-header-refused",
            TRANSFER_PROTOCOL,
            "TransferHeader",
            enc(&TransferHeader::Refused {
                code: DenyCode::NoGrant,
                reason: "invocation expired".into(),
            }),
        ),
    ]);
    out
}

/// Encodes a wire message canonically.
fn enc<T: Serialize>(message: &T) -> Vec<u8> {
    cbor::to_vec(message).expect("wire messages encode")
}

/// Decodes `bytes` as the named message type, strictly.
fn decode_wire(message: &str, bytes: &[u8]) -> Result<(), DecodeError> {
    match message {
        "AccessRequest" => {
            cbor::from_slice::<AccessRequest>(bytes, limits::MAX_ACCESS_REQUEST_BYTES).map(drop)
        }
        "AccessResponse" => {
            cbor::from_slice::<AccessResponse>(bytes, limits::MAX_ACCESS_RESPONSE_BYTES).map(drop)
        }
        "TransferRequest" => {
            cbor::from_slice::<TransferRequest>(bytes, limits::MAX_TRANSFER_REQUEST_BYTES).map(drop)
        }
        "TransferHeader" => {
            cbor::from_slice::<TransferHeader>(bytes, limits::MAX_TRANSFER_HEADER_BYTES).map(drop)
        }
        other => panic!("unknown message type {other}"),
    }
}

/// Messages a strict decoder must refuse: (name, protocol, type, bytes, expected kind).
fn wire_invalid(
    owner: &Keypair,
) -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Vec<u8>,
    &'static str,
)> {
    let valid: std::collections::HashMap<_, _> = wire_messages(owner)
        .into_iter()
        .map(|(n, _, _, b)| (n, b))
        .collect();
    let get = |n: &str| parse(&valid[n]);

    let mut swapped = get("access-request-named");
    if let Value::Map(m) = &mut swapped {
        m.reverse();
    }
    let mut unknown_status = get("access-response-pending");
    if let Value::Map(m) = &mut unknown_status {
        m[0].1 = Value::Text("maybe".into());
    }
    let mut no_proofs = get("transfer-request-open");
    if let Value::Map(m) = &mut no_proofs {
        m.retain(|(k, _)| k.as_text() != Some("proofs"));
    }
    let mut null_invocation = get("transfer-request-open");
    if let Value::Map(m) = &mut null_invocation {
        m.push((Value::Text("invocation".into()), Value::Null));
    }
    let null_invocation = cbor::value_to_vec(&null_invocation).expect("canonical order");
    let mut short_dataset = get("access-request-named");
    if let Value::Map(m) = &mut short_dataset {
        for (k, v) in m.iter_mut() {
            if k.as_text() == Some("dataset") {
                *v = Value::Bytes(vec![0x10; 15]);
            }
        }
    }
    vec![
        (
            "access-request-keys-reversed",
            ACCESS_PROTOCOL,
            "AccessRequest",
            write_raw(&swapped),
            "not-canonical",
        ),
        (
            "access-request-dataset-15-bytes",
            ACCESS_PROTOCOL,
            "AccessRequest",
            write_raw(&short_dataset),
            "schema",
        ),
        (
            "access-response-unknown-status",
            ACCESS_PROTOCOL,
            "AccessResponse",
            write_raw(&unknown_status),
            "schema",
        ),
        (
            "transfer-request-without-proofs",
            TRANSFER_PROTOCOL,
            "TransferRequest",
            write_raw(&no_proofs),
            "not-canonical",
        ),
        (
            "transfer-request-null-invocation",
            TRANSFER_PROTOCOL,
            "TransferRequest",
            null_invocation,
            "not-canonical",
        ),
    ]
}

fn framed(bytes: &[u8]) -> Vec<u8> {
    let len = u32::try_from(bytes.len()).expect("wire messages are small");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn wire_file(owner: &Keypair) -> VectorFile<WireVector> {
    let mut vectors = Vec::new();
    for (name, protocol, message, bytes) in wire_messages(owner) {
        if let Err(err) = decode_wire(message, &bytes) {
            panic!("{name} should decode, decoder says: {err}");
        }
        vectors.push(WireVector {
            name,
            protocol,
            message,
            verdict: "valid",
            diagnostic: Some(diagnostic(&parse(&bytes))),
            framed: Some(hex::encode(framed(&bytes))),
            cbor: hex::encode(&bytes),
            kind: None,
            error: None,
        });
    }
    for (name, protocol, message, bytes, kind) in wire_invalid(owner) {
        let err = match decode_wire(message, &bytes) {
            Ok(()) => panic!("{name} should fail ({kind}), decoder accepts it"),
            Err(err) => err,
        };
        assert_eq!(decode_kind(&err), kind, "{name}: {err}");
        vectors.push(WireVector {
            name,
            protocol,
            message,
            verdict: "invalid",
            diagnostic: None,
            cbor: hex::encode(&bytes),
            framed: None,
            kind: Some(kind),
            error: Some(err.to_string()),
        });
    }
    vector_file(
        "access and transfer messages, canonical CBOR; token fields hold placeholders",
        vectors,
    )
}

// ---------------------------------------------------------------------------------------------
// Catch-up (sync)

#[derive(Serialize)]
struct SyncVector {
    name: &'static str,
    protocol: &'static str,
    message: &'static str,
    description: &'static str,
    diagnostic: String,
    cbor: String,
    framed: String,
}

/// The owner's catch-up answers: the latest version of each of its open and shared datasets,
/// ordered by entry id.
fn sync_file(valid: &[SignedEntry]) -> VectorFile<SyncVector> {
    let mut latest: Vec<&SignedEntry> = valid
        .iter()
        .filter(|e| {
            !valid.iter().any(|o| {
                (o.entry.iss, o.entry.dataset) == (e.entry.iss, e.entry.dataset)
                    && o.entry.version > e.entry.version
            })
        })
        .collect();
    latest.sort_by_key(|e| e.id);
    let page = |from: usize| {
        SyncResponse::envelopes(
            latest[from..]
                .iter()
                .map(|e| serde_bytes::ByteBuf::from(e.bytes.clone()))
                .collect(),
            false,
        )
    };
    let messages = [
        (
            "sync-request-first",
            "SyncRequest",
            "first page: no after",
            enc(&SyncRequest::entries(None)),
        ),
        (
            "sync-response-all",
            "SyncResponse",
            "the owner's latest open and shared entries, by entry id",
            enc(&page(0)),
        ),
        (
            "sync-request-after",
            "SyncRequest",
            "next page: entries after the first id of sync-response-all",
            enc(&SyncRequest::entries(Some(latest[0].id))),
        ),
        (
            "sync-response-after",
            "SyncResponse",
            "the entries whose id is greater than after",
            enc(&page(1)),
        ),
    ];
    let vectors = messages
        .into_iter()
        .map(|(name, message, description, bytes)| {
            let decoded = match message {
                "SyncRequest" => {
                    cbor::from_slice::<SyncRequest>(&bytes, limits::MAX_SYNC_REQUEST_BYTES)
                        .map(drop)
                }
                _ => cbor::from_slice::<SyncResponse>(&bytes, limits::MAX_SYNC_RESPONSE_BYTES)
                    .map(drop),
            };
            if let Err(err) = decoded {
                panic!("{name} should decode, decoder says: {err}");
            }
            SyncVector {
                name,
                protocol: SYNC_PROTOCOL,
                message,
                description,
                diagnostic: diagnostic(&parse(&bytes)),
                framed: hex::encode(framed(&bytes)),
                cbor: hex::encode(bytes),
            }
        })
        .collect();
    vector_file("catalogue catch-up on /cix/sync/1", vectors)
}

// ---------------------------------------------------------------------------------------------
// Revocations

/// Seed of a third agency: the audience of the second link in the revocation vectors.
const THIRD_SEED: [u8; 32] = [4; 32];

#[derive(Serialize)]
struct RevocationVector {
    name: &'static str,
    description: &'static str,
    envelope: String,
    /// BLAKE3 of the envelope: the revocation id (valid cases only).
    id: Option<String>,
    /// `valid`, or the kind of refusal: `envelope`, `payload`, `reason`, `time`.
    verdict: &'static str,
    /// The delegation CID revoked (valid cases only).
    revoke: Option<String>,
    /// Index (root first) of the link it breaks in the file's `chain`, if any (valid cases).
    breaks: Option<usize>,
}

#[derive(Serialize)]
struct RevocationsFile {
    about: &'static str,
    regenerate: &'static str,
    /// Delegation tokens in hex, root first: owner to requester, requester to third.
    chain: Vec<String>,
    /// The catch-up request for revocations on `/cix/sync/1`, CBOR hex.
    sync_request: String,
    vectors: Vec<RevocationVector>,
}

fn revocation_kind(err: &cix_protocol::revocation::RevocationError) -> &'static str {
    use cix_protocol::revocation::RevocationError as E;
    match err {
        E::Envelope(_) => "envelope",
        E::Payload(_) => "payload",
        E::Reason => "reason",
        E::Time(_) => "time",
        _ => "other",
    }
}

fn revocations_file(owner: &Keypair) -> RevocationsFile {
    use cix_protocol::revocation::{
        Revocation, SignedRevocation, MAX_REVOCATION_REASON_BYTES, REVOCATION_TAG,
    };
    let requester = Keypair::from_seed(REQUESTER_SEED);
    let third = Keypair::from_seed(THIRD_SEED);
    let stranger = Keypair::from_seed(STRANGER_SEED);
    let root = grant_delegation(owner, &requester);
    let (root_bytes, root_cid) = root.seal(owner).expect("root seals");
    let mut child = grant_delegation(&requester, &third);
    child.nonce = vec![0x33; 16];
    let (child_bytes, child_cid) = child.seal(&requester).expect("child seals");
    let chain = vec![(root, root_cid), (child, child_cid)];

    let at = TOKEN_TIME + 86_400;
    let revocation = |by: &Keypair, cid: ucan::Cid, reason: Option<&str>| Revocation {
        iss: by.did(),
        revoke: cid,
        at,
        reason: reason.map(str::to_string),
    };
    let seal = |by: &Keypair, r: &Revocation| {
        envelope::seal(by, REVOCATION_TAG, r).expect("revocations encode")
    };
    let mut cases: Vec<(&'static str, &'static str, Vec<u8>, &'static str)> = vec![
        (
            "owner-revokes-root",
            "the owner revokes its own grant: breaks link 0, and so the whole chain",
            seal(owner, &revocation(owner, root_cid, Some("agreement ended"))),
            "valid",
        ),
        (
            "owner-revokes-child",
            "the owner, upstream, revokes the requester's re-delegation: breaks link 1",
            seal(owner, &revocation(owner, child_cid, None)),
            "valid",
        ),
        (
            "requester-revokes-child",
            "the requester revokes the delegation it issued: breaks link 1",
            seal(&requester, &revocation(&requester, child_cid, None)),
            "valid",
        ),
        (
            "requester-revokes-root",
            "the requester is downstream of the root: well formed, kept, but breaks nothing",
            seal(&requester, &revocation(&requester, root_cid, None)),
            "valid",
        ),
        (
            "stranger-revokes-root",
            "an agency outside the chain: well formed, kept and passed on, but breaks nothing",
            seal(
                &stranger,
                &revocation(&stranger, root_cid, Some("mischief")),
            ),
            "valid",
        ),
    ];
    let mut forged = seal(owner, &revocation(owner, root_cid, None));
    forged[3] ^= 0x01; // the first byte of the signature
    cases.push((
        "forged-signature",
        "one bit of the signature flipped",
        forged,
        "envelope",
    ));
    cases.push((
        "signed-by-another",
        "names the owner as issuer but is signed by the stranger",
        seal(&stranger, &revocation(owner, root_cid, None)),
        "envelope",
    ));
    cases.push((
        "entry-tag",
        "a revocation payload under the catalogue entry's type tag",
        envelope::seal(owner, ENTRY_TAG, &revocation(owner, root_cid, None)).expect("encodes"),
        "envelope",
    ));
    let long = "x".repeat(MAX_REVOCATION_REASON_BYTES + 1);
    cases.push((
        "reason-too-long",
        "a reason one byte over MAX_REVOCATION_REASON_BYTES",
        seal(owner, &revocation(owner, root_cid, Some(&long))),
        "reason",
    ));
    let mut before_epoch = revocation(owner, root_cid, None);
    before_epoch.at = -1;
    cases.push((
        "negative-time",
        "a time before 1970",
        seal(owner, &before_epoch),
        "time",
    ));
    let mut extra = parse(&seal(owner, &revocation(owner, root_cid, None)));
    if let Value::Array(parts) = &mut extra {
        if let Some(Value::Map(signed)) = parts.get_mut(1) {
            if let Some((_, Value::Map(fields))) = signed.get_mut(1) {
                fields.push((Value::Text("zz".into()), Value::Bool(true)));
                // Keep the map canonical (shorter keys first, then bytewise).
                fields.sort_by_key(|(k, _)| {
                    let t = k.as_text().unwrap_or_default().to_string();
                    (t.len(), t)
                });
            }
        }
    }
    cases.push((
        "unknown-field",
        "a field this version does not know (the signature no longer matters: decoding fails first)",
        write_raw(&extra),
        "payload",
    ));
    let mut trailing = seal(owner, &revocation(owner, root_cid, None));
    trailing.push(0x00);
    cases.push((
        "trailing-byte",
        "one byte after the envelope",
        trailing,
        "envelope",
    ));

    let vectors = cases
        .into_iter()
        .map(|(name, description, bytes, verdict)| {
            let decoded = SignedRevocation::decode(&bytes);
            let found = match &decoded {
                Ok(_) => "valid",
                Err(e) => revocation_kind(e),
            };
            assert_eq!(found, verdict, "{name}: decoder says {decoded:?}");
            let ok = decoded.ok();
            RevocationVector {
                name,
                description,
                envelope: hex::encode(&bytes),
                id: ok.as_ref().map(|r| hex::encode(r.id)),
                verdict,
                revoke: ok.as_ref().map(|r| r.revocation.revoke.to_string()),
                breaks: ok.as_ref().and_then(|r| r.breaks(&chain)),
            }
        })
        .collect();
    RevocationsFile {
        about: "revocations (cix/revoke@1): signed records, their ids, verdicts, and which link of a two-link chain each breaks",
        regenerate: "cargo run -p cix-protocol --example vectors",
        chain: vec![hex::encode(root_bytes), hex::encode(child_bytes)],
        sync_request: hex::encode(enc(&SyncRequest::revocations(None))),
        vectors,
    }
}

// ---------------------------------------------------------------------------------------------
// Withdrawals

#[derive(Serialize)]
struct WithdrawalVector {
    name: &'static str,
    description: &'static str,
    envelope: String,
    /// BLAKE3 of the envelope: the withdrawal id (valid cases only).
    id: Option<String>,
    /// `valid`, or the kind of refusal: `envelope`, `payload`, `reason`, `version`, `time`.
    verdict: &'static str,
}

#[derive(Serialize)]
struct WithdrawalsFile {
    about: &'static str,
    regenerate: &'static str,
    /// The dataset every case names.
    dataset: String,
    /// The r1 catch-up requests on `/cix/sync/1`, CBOR hex: the first id page, and a record
    /// page asking for the first valid withdrawal.
    sync_ids_request: String,
    sync_want_request: String,
    /// An r1 id page listing the valid withdrawals (through 7, epoch 42), CBOR hex.
    sync_ids_response: String,
    vectors: Vec<WithdrawalVector>,
}

fn withdrawal_kind(err: &cix_protocol::withdrawal::WithdrawalError) -> &'static str {
    use cix_protocol::withdrawal::WithdrawalError as E;
    match err {
        E::Envelope(_) => "envelope",
        E::Payload(_) => "payload",
        E::Reason => "reason",
        E::Version => "version",
        E::Time(_) => "time",
        _ => "other",
    }
}

fn withdrawals_file(owner: &Keypair) -> WithdrawalsFile {
    use cix_protocol::withdrawal::{SignedWithdrawal, Withdrawal, WITHDRAWAL_TAG};
    let stranger = Keypair::from_seed(STRANGER_SEED);
    let dataset = DatasetId([0x5a; 16]);
    let withdrawal = |by: &Keypair, version: u64, reason: Option<&str>| Withdrawal {
        iss: by.did(),
        dataset,
        version,
        at: TOKEN_TIME + 2 * 86_400,
        reason: reason.map(str::to_string),
    };
    let seal = |by: &Keypair, w: &Withdrawal| {
        envelope::seal(by, WITHDRAWAL_TAG, w).expect("withdrawals encode")
    };
    let mut cases: Vec<(&'static str, &'static str, Vec<u8>, &'static str)> = vec![
        (
            "owner-withdraws-v2",
            "the publisher withdraws its dataset up to version 2, with a reason",
            seal(owner, &withdrawal(owner, 2, Some("sensor network retired"))),
            "valid",
        ),
        (
            "owner-withdraws-v1-no-reason",
            "the publisher withdraws version 1, no reason given",
            seal(owner, &withdrawal(owner, 1, None)),
            "valid",
        ),
    ];
    let mut forged = seal(owner, &withdrawal(owner, 2, None));
    forged[3] ^= 0x01;
    cases.push((
        "forged-signature",
        "one bit of the signature flipped",
        forged,
        "envelope",
    ));
    cases.push((
        "signed-by-another",
        "names the owner as issuer but is signed by the stranger: no one but the publisher can withdraw",
        seal(&stranger, &withdrawal(owner, 2, None)),
        "envelope",
    ));
    cases.push((
        "entry-tag",
        "a withdrawal payload under the catalogue entry's type tag",
        envelope::seal(owner, ENTRY_TAG, &withdrawal(owner, 2, None)).expect("encodes"),
        "envelope",
    ));
    cases.push((
        "version-zero",
        "version 0: versions start at 1",
        seal(owner, &withdrawal(owner, 0, None)),
        "version",
    ));
    let long = "x".repeat(limits::MAX_WITHDRAWAL_REASON_BYTES + 1);
    cases.push((
        "reason-too-long",
        "a reason one byte over MAX_WITHDRAWAL_REASON_BYTES",
        seal(owner, &withdrawal(owner, 2, Some(&long))),
        "reason",
    ));
    let mut before_epoch = withdrawal(owner, 2, None);
    before_epoch.at = -1;
    cases.push((
        "negative-time",
        "a time before 1970",
        seal(owner, &before_epoch),
        "time",
    ));
    let mut trailing = seal(owner, &withdrawal(owner, 2, None));
    trailing.push(0x00);
    cases.push((
        "trailing-byte",
        "one byte after the envelope",
        trailing,
        "envelope",
    ));
    let mut valid_ids = Vec::new();
    let vectors = cases
        .into_iter()
        .map(|(name, description, bytes, verdict)| {
            let decoded = SignedWithdrawal::decode(&bytes);
            let found = match &decoded {
                Ok(_) => "valid",
                Err(e) => withdrawal_kind(e),
            };
            assert_eq!(found, verdict, "{name}: decoder says {decoded:?}");
            let ok = decoded.ok();
            if let Some(w) = &ok {
                valid_ids.push(w.id);
            }
            WithdrawalVector {
                name,
                description,
                envelope: hex::encode(&bytes),
                id: ok.as_ref().map(|w| hex::encode(w.id)),
                verdict,
            }
        })
        .collect();
    let ids_response = SyncResponse {
        entries: Vec::new(),
        more: false,
        ids: valid_ids
            .iter()
            .map(|i| serde_bytes::ByteBuf::from(i.to_vec()))
            .collect(),
        through: Some(7),
        epoch: Some(42),
    };
    let ids_response = enc(&ids_response);
    cbor::from_slice::<SyncResponse>(&ids_response, limits::MAX_SYNC_RESPONSE_BYTES)
        .expect("the id page decodes");
    WithdrawalsFile {
        about: "withdrawals (cix/withdraw@1): signed records, their ids and verdicts; r1 catch-up messages",
        regenerate: "cargo run -p cix-protocol --example vectors",
        dataset: dataset.to_string(),
        sync_ids_request: hex::encode(enc(&SyncRequest::ids(0))),
        sync_want_request: hex::encode(enc(&SyncRequest::want(&valid_ids[..1]))),
        sync_ids_response: hex::encode(ids_response),
        vectors,
    }
}

// ---------------------------------------------------------------------------------------------
// Audit log (specs/audit.md)

#[derive(Serialize)]
struct AuditFile {
    about: &'static str,
    regenerate: &'static str,
    /// The log's node.
    did: String,
    /// The records of the untouched log, in order.
    records: Vec<AuditRecordVector>,
    /// The owner's signed head of that log (`cix/head@1`), hex.
    head: String,
    /// The requester's counter-signature of that head (`cix/witness@1`), hex.
    witness: String,
    /// `/cix/witness/1` messages, CBOR hex: sending the head, the answer, asking for held heads.
    witness_request_head: String,
    witness_response_witnessed: String,
    witness_request_held: String,
    /// Exported logs (CBOR sequences, hex) and what verification must say.
    exports: Vec<AuditExportVector>,
}

#[derive(Serialize)]
struct AuditRecordVector {
    seq: u64,
    kind: String,
    envelope: String,
    hash: String,
}

#[derive(Serialize)]
struct AuditExportVector {
    name: &'static str,
    description: &'static str,
    export: String,
    /// `valid`, or `item N` (1-based position of the first bad record).
    chain: String,
    /// With the witnessed head: `valid`, or `seq N`.
    witnessed: String,
}

fn audit_file(owner: &Keypair) -> AuditFile {
    use cix_protocol::audit::{
        check_witnessed, split_sequence, verify_chain, AuditHash, AuditKind, AuditRecord, Head,
        Vouched, Witness, WitnessRequest, WitnessResponse, GENESIS,
    };
    let requester = Keypair::from_seed(REQUESTER_SEED);
    let at = TOKEN_TIME + 3 * 86_400;
    let blank = |seq: u64, prev: AuditHash, kind: AuditKind| AuditRecord {
        iss: owner.did(),
        seq,
        at: at + seq as i64,
        prev,
        kind,
        dataset: Some(DatasetId([0x5a; 16])),
        peer: None,
        purpose: None,
        basis: None,
        terms: None,
        token: None,
        bytes: None,
        content: None,
        reason: None,
        detail: None,
    };
    let mut signed = Vec::new();
    let kinds = [
        AuditKind::Publish,
        AuditKind::AccessRequest,
        AuditKind::Denial,
        AuditKind::Grant,
        AuditKind::TransferStart,
        AuditKind::TransferEnd,
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        let seq = i as u64 + 1;
        let prev = signed
            .last()
            .map(|r: &cix_protocol::audit::SignedRecord| r.hash)
            .unwrap_or(GENESIS);
        let mut r = blank(seq, prev, kind.clone());
        match kind {
            AuditKind::Publish => {
                r.content = Some(ContentHash::of(b"time,flow\n"));
                r.bytes = Some(10);
            }
            AuditKind::AccessRequest => {
                r.peer = Some(requester.did());
                r.purpose = Some("leak detection".into());
                r.detail = Some("received".into());
            }
            AuditKind::Denial => {
                r.peer = Some(requester.did());
                r.reason = Some(
                    "the requester's jurisdiction DE is not allowed (ISO 37156 8.2.2 h)".into(),
                );
            }
            AuditKind::Grant => {
                r.peer = Some(requester.did());
                r.basis = Some("public task".into());
                r.terms = Some(ContentHash::of(b"CC-BY-4.0"));
                r.token = Some("bafyreiexampleexampleexampleexampleexampleexampleexample".into());
            }
            _ => {
                r.peer = Some(requester.did());
                r.bytes = Some(10);
                r.content = Some(ContentHash::of(b"time,flow\n"));
            }
        }
        signed.push(r.seal(owner).expect("audit records seal"));
    }
    let head = Head {
        iss: owner.did(),
        seq: 6,
        hash: signed[5].hash,
        at: at + 10,
    }
    .seal(owner)
    .expect("head seals");
    let witness = Witness {
        iss: requester.did(),
        subject: owner.did(),
        seq: 6,
        hash: signed[5].hash,
        at: at + 11,
    }
    .seal(&requester)
    .expect("witness seals");
    let raw: Vec<Vec<u8>> = signed.iter().map(|r| r.bytes.clone()).collect();
    let mut rebuilt = raw[..3].to_vec();
    for r in &signed[3..] {
        let mut again = r.record.clone();
        again.prev = AuditHash::of(rebuilt.last().expect("three records"));
        if again.seq == 4 {
            again.detail = Some("rewritten".into());
        }
        rebuilt.push(again.seal(owner).expect("rebuilt seal").bytes);
    }
    let mut flipped = raw.clone();
    let n = flipped[1].len();
    flipped[1][n - 2] ^= 0x01;
    let mut deleted = raw.clone();
    deleted.remove(2);
    let mut swapped = raw.clone();
    swapped.swap(3, 4);
    let cases: Vec<(&'static str, &'static str, Vec<Vec<u8>>)> = vec![
        ("untouched", "the log as written", raw.clone()),
        ("byte-changed", "one byte of record 2 changed", flipped),
        ("record-deleted", "record 3 removed", deleted),
        ("records-swapped", "records 4 and 5 swapped", swapped),
        (
            "tail-truncated",
            "records 5 and 6 cut off",
            raw[..4].to_vec(),
        ),
        (
            "rebuilt",
            "records 4 to 6 rewritten and re-signed by the owner",
            rebuilt,
        ),
    ];
    let vouched = [Vouched {
        seq: 6,
        hash: signed[5].hash,
        source: requester.did().to_string(),
    }];
    let exports = cases
        .into_iter()
        .map(|(name, description, parts)| {
            let export = parts.concat();
            let pieces = split_sequence(&export);
            let chain = match verify_chain(pieces.iter().copied(), Some(&owner.did())) {
                Ok(_) => "valid".to_string(),
                Err(e) => format!("item {}", e.index + 1),
            };
            let witnessed = match check_witnessed(
                &vouched,
                |s| pieces.get((s - 1) as usize).map(|b| AuditHash::of(b)),
                pieces.len() as u64,
            ) {
                Ok(_) => "valid".to_string(),
                Err(e) => format!("seq {}", e.seq.unwrap_or_default()),
            };
            AuditExportVector {
                name,
                description,
                export: hex::encode(export),
                chain,
                witnessed,
            }
        })
        .collect();
    AuditFile {
        about: "audit log (cix/audit@1): a six-record chain, its signed head and a counter-signature, /cix/witness/1 messages, and exported logs with the verdicts of verification",
        regenerate: "cargo run -p cix-protocol --example vectors",
        did: owner.did().to_string(),
        records: signed
            .iter()
            .map(|r| AuditRecordVector {
                seq: r.record.seq,
                kind: r.record.kind.to_string(),
                envelope: hex::encode(&r.bytes),
                hash: r.hash.to_hex(),
            })
            .collect(),
        head: hex::encode(&head.bytes),
        witness: hex::encode(&witness.bytes),
        witness_request_head: hex::encode(
            WitnessRequest::Head(head.bytes.clone()).encode().expect("encodes"),
        ),
        witness_response_witnessed: hex::encode(
            WitnessResponse::Witnessed(witness.bytes.clone()).encode().expect("encodes"),
        ),
        witness_request_held: hex::encode(
            WitnessRequest::Held(owner.did()).encode().expect("encodes"),
        ),
        exports,
    }
}

// ---------------------------------------------------------------------------------------------
// Readable forms

/// CBOR diagnostic notation (RFC 8949 section 8) of a value.
pub(crate) fn diagnostic(value: &Value) -> String {
    match value {
        Value::Integer(i) => i128::from(*i).to_string(),
        Value::Bytes(b) => format!("h'{}'", hex::encode(b)),
        Value::Text(t) => serde_json::to_string(t).expect("strings serialise"),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Float(f) => format!("{f:?}"),
        Value::Tag(t, inner) => format!("{t}({})", diagnostic(inner)),
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(diagnostic).collect::<Vec<_>>().join(", ")
            )
        }
        Value::Map(pairs) => format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", diagnostic(k), diagnostic(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "?".into(),
    }
}

fn annotated_file(valid: &[SignedEntry], owner: &Keypair) -> String {
    let mut out = String::from(
        "Annotated hex of selected vectors: each line is one CBOR head or a run of at most 16\n\
         payload bytes, indented by nesting depth; '#' starts a comment.\n",
    );
    let sections = [(
        format!("entries.json: {}", "open-v1"),
        valid[0].bytes.clone(),
    )]
    .into_iter()
    .chain(
        wire_messages(owner)
            .into_iter()
            .filter(|(n, ..)| {
                !n.starts_with("access-response-denied-") || *n == "access-response-denied-closed"
            })
            .map(|(n, _, _, b)| (format!("wire.json: {n}"), b)),
    );
    for (title, bytes) in sections {
        out.push_str(&format!("\n## {title} ({} bytes)\n\n", bytes.len()));
        let mut a = Annotator {
            bytes: &bytes,
            pos: 0,
            out: &mut out,
        };
        a.item(0);
        assert_eq!(a.pos, bytes.len(), "{title}: annotator consumed every byte");
    }
    out
}

/// Column at which comments start.
const COMMENT_COLUMN: usize = 44;

struct Annotator<'a> {
    bytes: &'a [u8],
    pos: usize,
    out: &'a mut String,
}

impl Annotator<'_> {
    fn line(&mut self, depth: usize, hex: &str, comment: &str) {
        let code = format!("{:width$}{hex}", "", width = 2 * depth);
        if comment.is_empty() {
            self.out.push_str(&code);
        } else {
            let pad = COMMENT_COLUMN.saturating_sub(code.len()).max(1);
            self.out.push_str(&format!("{code}{:pad$}# {comment}", ""));
        }
        self.out.push('\n');
    }

    /// Reads one head: major type, argument, and the head bytes as spaced hex.
    fn head(&mut self) -> (u8, u64, String) {
        let first = self.bytes[self.pos];
        let extra = match first & 0x1f {
            n if n < 24 => 0,
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            n => panic!("head {n} does not occur in canonical cbor"),
        };
        let raw = &self.bytes[self.pos..self.pos + 1 + extra];
        self.pos += 1 + extra;
        let arg = if extra == 0 {
            u64::from(first & 0x1f)
        } else {
            raw[1..]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        };
        let spaced = raw
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        (first >> 5, arg, spaced)
    }

    fn item(&mut self, depth: usize) {
        let (major, arg, head) = self.head();
        match major {
            0 => self.line(depth, &head, &format!("unsigned({arg})")),
            1 => self.line(depth, &head, &format!("negative({})", -1 - i128::from(arg))),
            2 | 3 => {
                let len = usize::try_from(arg).expect("small");
                let data = &self.bytes[self.pos..self.pos + len];
                self.pos += len;
                let comment = if major == 2 {
                    format!("bytes({len})")
                } else {
                    let text = String::from_utf8_lossy(data);
                    format!(
                        "text({len}) {}",
                        serde_json::to_string(&text).expect("text")
                    )
                };
                if len <= 16 {
                    self.line(depth, &format!("{head} {}", hex::encode(data)), &comment);
                } else {
                    self.line(depth, &head, &comment);
                    for chunk in data.chunks(16) {
                        self.line(depth + 1, &hex::encode(chunk), "");
                    }
                }
            }
            4 => {
                self.line(depth, &head, &format!("array({arg})"));
                (0..arg).for_each(|_| self.item(depth + 1));
            }
            5 => {
                self.line(depth, &head, &format!("map({arg})"));
                (0..2 * arg).for_each(|_| self.item(depth + 1));
            }
            6 => {
                self.line(depth, &head, &format!("tag({arg})"));
                self.item(depth + 1);
            }
            _ => {
                let what = match arg {
                    20 => "false",
                    21 => "true",
                    22 => "null",
                    _ => "simple or float",
                };
                self.line(depth, &head, what);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// UCAN tokens

/// Seed of a third principal: a stranger to the grant, used to break chains.
pub(crate) const STRANGER_SEED: [u8; 32] = [3; 32];
/// The moment every token case is validated at (`time` in tokens.json).
pub(crate) const TOKEN_TIME: i64 = 1_800_000_000;
/// The dataset every token case is about.
const TOKEN_DATASET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[derive(Serialize)]
struct TokenVector {
    name: &'static str,
    kind: &'static str,
    description: &'static str,
    issuer_seed: String,
    token: String,
    cid: String,
    verdict: &'static str,
}

#[derive(Serialize)]
struct ChainVector {
    name: &'static str,
    description: &'static str,
    time: i64,
    invocation: String,
    invocation_cid: String,
    proofs: Vec<String>,
    /// `valid`, or `invalid`.
    verdict: &'static str,
    /// The UCAN layer's verdict: `valid` or the fixtures' error name.
    ucan: &'static str,
    /// The error name a full cix validator reports (`Profile` for the cix profile's own).
    error: Option<&'static str>,
    message: Option<String>,
}

#[derive(Serialize)]
struct TokensFile {
    about: &'static str,
    regenerate: &'static str,
    time: i64,
    tokens: Vec<TokenVector>,
    chains: Vec<ChainVector>,
}

fn grant_delegation(owner: &Keypair, to: &Keypair) -> ucan::Delegation {
    ucan::Delegation {
        iss: owner.did(),
        aud: to.did(),
        sub: Some(owner.did()),
        cmd: ucan::CMD_FETCH.into(),
        pol: ucan::Policy::dataset_equals(TOKEN_DATASET),
        nonce: vec![0x11; 16],
        exp: Some(TOKEN_TIME + 30 * 86_400),
        nbf: None,
        meta: None,
    }
}

fn fetch_invocation(by: &Keypair, owner: &Keypair, prf: Vec<ucan::Cid>) -> ucan::Invocation {
    ucan::Invocation {
        iss: by.did(),
        sub: owner.did(),
        aud: None,
        cmd: ucan::CMD_FETCH.into(),
        args: BTreeMap::from([("dataset".to_string(), Value::Text(TOKEN_DATASET.into()))]),
        prf,
        exp: Some(TOKEN_TIME + 60),
        iat: Some(TOKEN_TIME),
        nonce: vec![0x22; 16],
        meta: None,
        cause: None,
    }
}

fn seal_dlg(dlg: &ucan::Delegation, key: &Keypair) -> (Vec<u8>, ucan::Cid) {
    dlg.seal(key).expect("a vector delegation seals")
}

fn seal_inv(inv: &ucan::Invocation, key: &Keypair) -> (Vec<u8>, ucan::Cid) {
    inv.seal(key).expect("a vector invocation seals")
}

/// The token vectors: the reference grant and fetch, then one chain per verdict.
fn tokens_file(owner: &Keypair) -> TokensFile {
    let requester = Keypair::from_seed(REQUESTER_SEED);
    let stranger = Keypair::from_seed(STRANGER_SEED);
    let grant = grant_delegation(owner, &requester);
    let (grant_bytes, grant_cid) = seal_dlg(&grant, owner);
    let fetch = fetch_invocation(&requester, owner, vec![grant_cid]);
    let (fetch_bytes, fetch_cid) = seal_inv(&fetch, &requester);

    let tokens = vec![
        TokenVector {
            name: "grant",
            kind: "delegation",
            description: "the owner lets the requester fetch one dataset for 30 days",
            issuer_seed: hex::encode(OWNER_SEED),
            token: hex::encode(&grant_bytes),
            cid: grant_cid.to_string(),
            verdict: "valid",
        },
        TokenVector {
            name: "fetch",
            kind: "invocation",
            description: "the requester fetches that dataset, proving its right with grant",
            issuer_seed: hex::encode(REQUESTER_SEED),
            token: hex::encode(&fetch_bytes),
            cid: fetch_cid.to_string(),
            verdict: "valid",
        },
    ];

    // One chain per case: (name, description, invocation, proofs, expected error name).
    let with_grant = |dlg: ucan::Delegation, edit: &dyn Fn(&mut ucan::Invocation)| {
        let (g, cid) = seal_dlg(&dlg, owner);
        let mut inv = fetch_invocation(&requester, owner, vec![cid]);
        edit(&mut inv);
        let signer = if inv.iss == stranger.did() {
            &stranger
        } else {
            &requester
        };
        (seal_inv(&inv, signer).0, vec![g])
    };
    let mut tampered = grant_bytes.clone();
    tampered[3] ^= 0x01; // first byte of the signature
    let tampered_chain = {
        let inv = fetch_invocation(&requester, owner, vec![ucan::Cid::of_token(&tampered)]);
        (seal_inv(&inv, &requester).0, vec![tampered.clone()])
    };
    let mut fetch_bytes_trailing = fetch_bytes.clone();
    fetch_bytes_trailing.push(0x00);

    type Case = (
        &'static str,
        &'static str,
        (Vec<u8>, Vec<Vec<u8>>),
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "valid-fetch",
            "fetch with its grant: valid under UCAN and the cix profile",
            (fetch_bytes.clone(), vec![grant_bytes.clone()]),
            None,
        ),
        (
            "invalid-claim-no-proof",
            "the requester invokes on the owner's subject with no proof at all",
            (
                seal_inv(&fetch_invocation(&requester, owner, vec![]), &requester).0,
                vec![],
            ),
            Some("InvalidClaim"),
        ),
        (
            "unavailable-proof",
            "fetch names grant in prf but grant is not presented",
            (fetch_bytes.clone(), vec![]),
            Some("UnavailableProof"),
        ),
        (
            "expired-delegation",
            "the grant expired 61 seconds before the validation time (skew allowance 60 s)",
            with_grant(
                ucan::Delegation {
                    exp: Some(TOKEN_TIME - 61),
                    ..grant.clone()
                },
                &|_| {},
            ),
            Some("Expired"),
        ),
        (
            "too-early-delegation",
            "the grant is not valid before an hour after the validation time",
            with_grant(
                ucan::Delegation {
                    nbf: Some(TOKEN_TIME + 3600),
                    ..grant.clone()
                },
                &|_| {},
            ),
            Some("TooEarly"),
        ),
        (
            "invalid-audience",
            "a stranger, not the grant's audience, signs the invocation",
            with_grant(grant.clone(), &|inv| inv.iss = stranger.did()),
            Some("InvalidAudience"),
        ),
        (
            "invalid-subject",
            "the invocation claims the stranger's subject, the chain is about the owner",
            with_grant(grant.clone(), &|inv| inv.sub = stranger.did()),
            Some("InvalidSubject"),
        ),
        (
            "invalid-signature",
            "the grant with its first signature byte flipped, named by its new CID",
            tampered_chain,
            Some("InvalidSignature"),
        ),
        (
            "match-error",
            "the invocation asks for another dataset than the grant's policy allows",
            with_grant(grant.clone(), &|inv| {
                inv.args.insert(
                    "dataset".into(),
                    Value::Text("ffffffffffffffffffffffffffffffff".into()),
                );
            }),
            Some("MatchError"),
        ),
        (
            "malformed-trailing-byte",
            "fetch followed by one 0x00 byte: not one canonical DAG-CBOR item",
            (fetch_bytes_trailing, vec![grant_bytes.clone()]),
            Some("Malformed"),
        ),
        (
            "profile-no-expiry",
            "a grant that never expires (exp null): valid UCAN, refused by the cix profile",
            with_grant(
                ucan::Delegation {
                    exp: None,
                    ..grant.clone()
                },
                &|_| {},
            ),
            Some("Profile"),
        ),
        (
            "profile-long-invocation",
            "an invocation valid for an hour: valid UCAN, refused by the cix profile (5 minutes)",
            with_grant(grant.clone(), &|inv| inv.exp = Some(TOKEN_TIME + 3600)),
            Some("Profile"),
        ),
    ];

    let chains = cases
        .into_iter()
        .map(|(name, description, (invocation, proofs), expected)| {
            let full = ucan::validate(&invocation, &proofs, TOKEN_TIME);
            let spec = ucan::validate_spec(&invocation, &proofs, TOKEN_TIME);
            let cached = ucan::Verifier::new().validate(&invocation, &proofs, TOKEN_TIME);
            assert_eq!(full, cached, "{name}: the caching verifier disagrees");
            let got = full.as_ref().err().map(|e| e.name());
            assert_eq!(got, expected, "{name}: {full:?}");
            let ucan_verdict = spec.as_ref().err().map_or("valid", |e| e.name());
            if expected == Some("Profile") {
                assert_eq!(
                    ucan_verdict, "valid",
                    "{name}: a profile case must be valid UCAN"
                );
            } else {
                assert_eq!(
                    Some(ucan_verdict).filter(|v| *v != "valid"),
                    expected,
                    "{name}"
                );
            }
            ChainVector {
                name,
                description,
                time: TOKEN_TIME,
                invocation_cid: ucan::Cid::of_token(&invocation).to_string(),
                invocation: hex::encode(&invocation),
                proofs: proofs.iter().map(hex::encode).collect(),
                verdict: if expected.is_none() {
                    "valid"
                } else {
                    "invalid"
                },
                ucan: ucan_verdict,
                error: expected,
                message: full.err().map(|e| e.to_string()),
            }
        })
        .collect();

    TokensFile {
        about: "UCAN 1.0 tokens under the cix profile: a delegation and an invocation, then one \
                chain per validation verdict",
        regenerate: "cargo run -p cix-protocol --example vectors",
        time: TOKEN_TIME,
        tokens,
        chains,
    }
}
