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
            uri: None,
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
            bytes: Some(3),
            content: Some(ContentHash::of(b"a,b")),
            filename: Some("iowa.csv".into()),
            ..Default::default()
        }],
        details: Default::default(),
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
                    uri: None,
                },
                owner: Agent {
                    name: "Iowa Power".into(),
                    did: Some(key.did()),
                    uri: None,
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
                notice: None,
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
                privacy: None,
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
fn privacy_notice_link_is_a_hash_and_only_on_personal_data() {
    // ISO 37156 8.3.3: rules P8 and P9 of specs/catalogue.md.
    let key = Keypair::generate();
    let mut e = entry(&key);
    e.iso.spectrum = Spectrum::Shared;
    e.iso.access = Some(AccessMode::Named);
    e.iso.privacy.notice = Some("ab".repeat(32));
    assert!(matches!(e.check(), Err(r) if r.field == "iso.privacy.notice"));
    e.iso.privacy.personal_data = true;
    e.iso.privacy.purpose = Some("maintenance planning".into());
    e.iso.privacy.legal_basis = Some("public task".into());
    e.iso.privacy.retention_days = Some(365);
    e.check().unwrap();
    let signed = e.sign(&key).unwrap();
    let back = SignedEntry::decode(&signed.bytes).unwrap();
    assert_eq!(back.entry.iso.privacy.notice, Some("ab".repeat(32)));
    for bad in [
        "AB".repeat(32),
        "ab".repeat(31),
        format!("{}zz", "ab".repeat(31)),
    ] {
        e.iso.privacy.notice = Some(bad.clone());
        assert!(
            matches!(e.check(), Err(r) if r.field == "iso.privacy.notice"),
            "{bad}"
        );
    }
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

/// The field a refused entry names, or "" when it passes.
fn verdict(e: &Entry) -> &'static str {
    e.check().err().map(|r| r.field).unwrap_or("")
}

fn referenced(url: &str) -> Distribution {
    Distribution {
        media_type: "text/csv".into(),
        access_url: Some(url.into()),
        ..Distribution::default()
    }
}

#[test]
fn a_distribution_is_held_or_referenced_or_both() {
    let key = Keypair::generate();
    let mut e = entry(&key);
    // Held and referenced at once.
    e.distributions[0].download_url = Some("https://example.org/iowa.csv".into());
    assert_eq!(verdict(&e), "");
    // Referenced only.
    e.distributions = vec![referenced("https://data.seattle.gov/api/views/x/rows.csv")];
    assert_eq!(verdict(&e), "");
    let err = e.held().unwrap_err().to_string();
    assert_eq!(
        err,
        "published by reference only: get it from https://data.seattle.gov/api/views/x/rows.csv"
    );
    // Neither: refused, naming the rule.
    e.distributions = vec![Distribution {
        media_type: "text/csv".into(),
        ..Distribution::default()
    }];
    let r = e.check().unwrap_err();
    assert_eq!(r.field, "distributions");
    assert!(r.rule.contains("held"), "{r}");
    // A content hash needs the size.
    e.distributions = vec![Distribution {
        content: Some(ContentHash::of(b"x")),
        ..Distribution::default()
    }];
    assert_eq!(verdict(&e), "distributions.bytes");
}

#[test]
fn an_entry_may_only_describe() {
    let key = Keypair::generate();
    let mut e = entry(&key);
    e.distributions.clear();
    assert_eq!(verdict(&e), "");
    assert!(e.held().unwrap_err().to_string().contains("only describes"));
    let signed = e.sign(&key).unwrap();
    assert_eq!(SignedEntry::decode(&signed.bytes).unwrap().entry, e);
}

#[test]
fn urls_must_be_absolute_and_bounded() {
    let key = Keypair::generate();
    for bad in [
        "not a url",
        "/relative/path",
        "https://exa mple.org",
        "1http://x",
        "mailto:",
        &format!("https://x.org/{}", "a".repeat(limits::MAX_URL_BYTES)),
    ] {
        let mut e = entry(&key);
        e.details.landing_page = Some(bad.to_string());
        assert_eq!(verdict(&e), "details.landing_page", "{bad}");
        let mut e = entry(&key);
        e.distributions = vec![referenced(bad)];
        assert_eq!(verdict(&e), "distributions.access_url", "{bad}");
        let mut e = entry(&key);
        e.details.documentation = vec![bad.to_string()];
        assert_eq!(verdict(&e), "details.documentation", "{bad}");
    }
    for ok in [
        "https://data.seattle.gov/d/e3zj-s4zh",
        "urn:ngsi-ld:Dataset:id:VESI:23278568",
        "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0",
    ] {
        let mut e = entry(&key);
        e.details.landing_page = Some(ok.to_string());
        assert_eq!(verdict(&e), "", "{ok}");
    }
}

#[test]
fn languages_and_translations_are_checked() {
    let key = Keypair::generate();
    let mut e = entry(&key);
    e.details.translations = vec![Translation {
        lang: "en".into(),
        title: Some("Example".into()),
        description: None,
        keywords: vec![],
    }];
    // A translation without the main text's language is ambiguous.
    assert_eq!(verdict(&e), "details.lang");
    e.details.lang = Some("es".into());
    assert_eq!(verdict(&e), "");
    e.details.lang = Some("EN".into());
    assert_eq!(verdict(&e), "details.lang");
    e.details.lang = Some("en".into());
    assert_eq!(verdict(&e), "details.translations", "same language twice");
    e.details.lang = Some("es".into());
    e.details.translations[0].title = Some("t".repeat(limits::MAX_TITLE_BYTES + 1));
    assert_eq!(verdict(&e), "details.translations");
    assert!(is_lang_tag("pt-br") && is_lang_tag("es") && !is_lang_tag("") && !is_lang_tag("e s"));
}

#[test]
fn text_lists_and_dates_are_bounded() {
    let key = Keypair::generate();
    let mut e = entry(&key);
    e.description = "d".repeat(limits::MAX_DESCRIPTION_BYTES + 1);
    assert_eq!(verdict(&e), "description");
    let mut e = entry(&key);
    e.keywords = vec!["k".repeat(limits::MAX_SHORT_TEXT_BYTES + 1)];
    assert_eq!(verdict(&e), "keywords");
    let mut e = entry(&key);
    e.details.languages = vec!["es".into(); limits::MAX_LIST_ITEMS + 1];
    assert_eq!(verdict(&e), "details.languages");
    let mut e = entry(&key);
    e.details.translations = (0..=limits::MAX_TRANSLATIONS)
        .map(|i| Translation {
            lang: format!("x{i}"),
            title: None,
            description: None,
            keywords: vec![],
        })
        .collect();
    e.details.lang = Some("en".into());
    assert_eq!(verdict(&e), "details.translations");
    let mut e = entry(&key);
    e.distributions[0].modified = Some("last tuesday".into());
    assert_eq!(verdict(&e), "distributions.modified");
    e.distributions[0].modified = Some("2013-03-22".into());
    assert_eq!(verdict(&e), "");
}

#[test]
fn details_survive_signing_and_are_refused_on_receipt_when_bad() {
    let key = Keypair::generate();
    let mut e = entry(&key);
    e.details = Details {
        quality_measures: None,
        resolves: Vec::new(),
        identifier: Some("e3zj-s4zh".into()),
        lang: Some("es".into()),
        translations: vec![Translation {
            lang: "en".into(),
            title: Some("Example Dataset".into()),
            description: Some("Example dataset description.".into()),
            keywords: vec!["statistics".into()],
        }],
        landing_page: Some("https://data.seattle.gov/d/e3zj-s4zh".into()),
        languages: vec!["http://publications.europa.eu/resource/authority/language/SPA".into()],
        frequency: Some("weekly".into()),
        conforms_to: vec!["https://project-open-data.cio.gov/v1.1/schema".into()],
        access_rights: Some("public".into()),
        documentation: vec!["https://example.org/doc".into()],
        version_info: Some("1.0".into()),
        version_notes: Some("first".into()),
        legislation: vec!["https://www.boe.es/eli/es/rd/2023/08/22/729".into()],
    };
    let signed = e.sign(&key).unwrap();
    assert_eq!(SignedEntry::decode(&signed.bytes).unwrap().entry, e);
    // A hostile peer signs a bad URL by hand: the receiver still refuses it.
    let mut bad = e.clone();
    bad.details.landing_page = Some("no url".into());
    let bytes = crate::envelope::seal(&key, ENTRY_TAG, &bad).unwrap();
    let err = SignedEntry::decode(&bytes).unwrap_err();
    assert!(err.to_string().contains("details.landing_page"), "{err}");
}
