#![allow(clippy::unwrap_used)]

use super::*;
use crate::dictionary::FieldType;

fn entry(key: &Keypair) -> Entry {
    Entry {
        iss: key.did(),
        dataset: DatasetId([7; 16]),
        version: 1,
        previous: None,
        title: "Iowa electricity generation".into(),
        description: "Annual net generation by source".into(),
        keywords: vec!["electricity".into()],
        themes: vec!["ENER".into()],
        publisher: Agent {
            name: "Iowa Power".into(),
            did: Some(key.did()),
        },
        contact: None,
        licence: Some("US-Government-Work".into()),
        spatial: Some(Spatial {
            name: Some("Iowa".into()),
            bbox: Some(BoundingBox {
                west: -964_000_000,
                south: 403_000_000,
                east: -900_000_000,
                north: 435_000_000,
            }),
        }),
        temporal: Some(Temporal {
            start: Some("2001-01-01".into()),
            end: Some("2017-01-01".into()),
        }),
        issued: "2026-12-03T10:00:00Z".into(),
        modified: "2026-12-03T10:00:00Z".into(),
        distributions: vec![Distribution {
            media_type: "text/csv".into(),
            bytes: 3,
            content: ContentHash::of(b"a,b"),
            filename: Some("iowa.csv".into()),
        }],
        iso: Iso {
            data_type: DataType::Thematic,
            kind: Kind::Production,
            concept: Concept::State,
            domain: Domain::Energy,
            insight: Insight::Strategic,
            facets: Facets::default(),
            spectrum: Spectrum::Open,
            access: None,
            groups: vec![],
            terms: None,
            roles: Roles {
                creator: Agent {
                    name: "EIA".into(),
                    did: None,
                },
                owner: Agent {
                    name: "Iowa Power".into(),
                    did: Some(key.did()),
                },
                custodians: vec![],
                primary_publisher: key.did(),
                secondary_publisher: None,
            },
            provenance: None,
            quality: None,
            privacy: Privacy {
                personal_data: false,
                high_risk: vec![],
                purpose: None,
                legal_basis: None,
                retention_days: None,
                jurisdiction: "US".into(),
                allowed_jurisdictions: vec![],
            },
            dictionary: vec![Field {
                name: "year".into(),
                field_type: FieldType::Date,
                unit: None,
                description: None,
                nullable: false,
                min: None,
                max: None,
                allowed: None,
                geometry_types: None,
                count: None,
            }],
        },
    }
}

#[test]
fn signed_entry_round_trips_and_verifies() {
    let key = Keypair::generate();
    let signed = entry(&key).sign(&key).unwrap();
    let back = SignedEntry::decode(&signed.bytes).unwrap();
    assert_eq!(back, signed);
    assert_eq!(back.id, EntryId::of(&signed.bytes));
}

#[test]
fn forged_signature_is_refused() {
    let key = Keypair::generate();
    let mut bytes = entry(&key).sign(&key).unwrap().bytes;
    bytes[10] ^= 0xff; // inside the signature
    assert!(matches!(
        SignedEntry::decode(&bytes),
        Err(EntryError::Envelope(EnvelopeError::Signature(_)))
    ));
}

#[test]
fn entry_signed_by_someone_else_is_refused() {
    let key = Keypair::generate();
    let other = Keypair::generate();
    let e = entry(&key);
    assert_eq!(e.sign(&other), Err(SignError::WrongKey));
    // Built by hand: an envelope whose iss is `key` but which `other` signed.
    let bytes = envelope::seal(&other, ENTRY_TAG, &e).unwrap();
    assert!(matches!(
        SignedEntry::decode(&bytes),
        Err(EntryError::Envelope(EnvelopeError::Signature(_)))
    ));
}

#[test]
fn open_entry_with_personal_data_is_refused_at_signing_and_on_receipt() {
    let key = Keypair::generate();
    let mut e = entry(&key);
    e.iso.privacy.personal_data = true;
    e.iso.privacy.purpose = Some("billing".into());
    e.iso.privacy.legal_basis = Some("contract".into());
    e.iso.privacy.retention_days = Some(30);
    let err = e.sign(&key).unwrap_err();
    assert!(
        matches!(&err, SignError::Rule(r) if r.field == "iso.privacy.personal_data"),
        "{err}"
    );
    // A hostile peer signs it anyway, bypassing `sign`: the receiver still refuses it.
    let bytes = envelope::seal(&key, ENTRY_TAG, &e).unwrap();
    assert!(
        matches!(SignedEntry::decode(&bytes), Err(EntryError::Rule(r)) if r.field == "iso.privacy.personal_data")
    );
}

#[test]
fn access_mode_present_exactly_when_shared() {
    let key = Keypair::generate();
    let mut e = entry(&key);
    e.iso.spectrum = Spectrum::Shared;
    assert!(matches!(e.check(), Err(r) if r.field == "iso.access"));
    e.iso.access = Some(AccessMode::Named);
    e.check().unwrap();
    e.iso.spectrum = Spectrum::Open;
    assert!(matches!(e.check(), Err(r) if r.field == "iso.access"));
}

#[test]
fn personal_data_needs_purpose_basis_and_retention() {
    let key = Keypair::generate();
    let mut e = entry(&key);
    e.iso.spectrum = Spectrum::Shared;
    e.iso.access = Some(AccessMode::Named);
    e.iso.privacy.personal_data = true;
    assert!(matches!(e.check(), Err(r) if r.field == "iso.privacy.purpose"));
    e.iso.privacy.purpose = Some("maintenance planning".into());
    assert!(matches!(e.check(), Err(r) if r.field == "iso.privacy.legal_basis"));
    e.iso.privacy.legal_basis = Some("public task".into());
    assert!(matches!(e.check(), Err(r) if r.field == "iso.privacy.retention_days"));
    e.iso.privacy.retention_days = Some(365);
    e.check().unwrap();
}

#[test]
fn bad_coordinates_and_times_are_named() {
    let key = Keypair::generate();
    let mut e = entry(&key);
    e.spatial = Some(Spatial {
        name: None,
        bbox: Some(BoundingBox {
            west: 0,
            south: 10,
            east: 1,
            north: 5,
        }),
    });
    assert!(matches!(e.check(), Err(r) if r.field == "spatial.bbox"));
    let mut e = entry(&key);
    e.modified = "yesterday".into();
    assert!(matches!(e.check(), Err(r) if r.field == "modified"));
}

#[test]
fn rfc3339_forms() {
    for ok in [
        "2013-01-01",
        "2013-01-01T05:00:00Z",
        "2013-01-01T05:00:00.25+01:00",
    ] {
        assert!(is_rfc3339(ok), "{ok}");
    }
    for bad in [
        "2013-13-01",
        "2013-01-01T25:00:00Z",
        "2013-01-01T05:00:00",
        "13-01-01",
        "",
    ] {
        assert!(!is_rfc3339(bad), "{bad}");
    }
}

#[test]
fn level_names_round_trip() {
    for l in Level::ALL {
        assert_eq!(l.as_str().parse::<Level>().unwrap(), l);
    }
    assert!("public".parse::<Level>().is_err());
}

#[test]
fn group_rule_present_exactly_when_access_is_group() {
    // ISO 37156 5.5.3 group access: the rule is part of the entry, and only of group entries.
    let key = Keypair::generate();
    let mut e = entry(&key);
    e.iso.spectrum = Spectrum::Shared;
    e.iso.access = Some(AccessMode::Group);
    assert!(matches!(e.check(), Err(r) if r.field == "iso.groups"));
    e.iso.groups = vec!["water-utilities".into(), "nl/emergency".into()];
    e.check().unwrap();
    let signed = e.sign(&key).unwrap();
    assert_eq!(SignedEntry::decode(&signed.bytes).unwrap().entry, e);

    e.iso.groups = vec!["Not A Name".into()];
    assert!(matches!(e.check(), Err(r) if r.field == "iso.groups"));
    e.iso.groups = vec!["a".into(), "a".into()];
    assert!(matches!(e.check(), Err(r) if r.field == "iso.groups"));
    e.iso.groups = (0..=limits::MAX_GROUPS).map(|i| format!("g{i}")).collect();
    assert!(matches!(e.check(), Err(r) if r.field == "iso.groups"));

    e.iso.groups = vec!["water-utilities".into()];
    e.iso.access = Some(AccessMode::Named);
    assert!(matches!(e.check(), Err(r) if r.field == "iso.groups"));
}

#[test]
fn entry_without_groups_encodes_without_the_field() {
    // Old entries (signed before the group rule existed) keep their exact bytes.
    let key = Keypair::generate();
    let bytes = crate::cbor::to_vec(&entry(&key).iso).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("groups"));
}
