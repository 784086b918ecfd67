//! Export followed by import gives back the same entries, field by field, in every format,
//! over entries describing real datasets from ../shared/data/datasets/.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use cix_interchange::{export, parse, Classification, ExportFormat, Format, Record};
use cix_protocol::catalogue::*;
use cix_protocol::content::ContentHash;
use cix_protocol::identity::Keypair;

fn agent(name: &str) -> Agent {
    Agent {
        name: name.into(),
        ..Agent::default()
    }
}

/// [`entries`], or `None` (after saying so) in a clone without `../shared/data` beside it.
fn real_entries(key: &Keypair) -> Option<Vec<Entry>> {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/datasets");
    if !base.is_dir() {
        eprintln!("skipping: {} is absent", base.display());
        return None;
    }
    Some(entries(key))
}

/// Entries for real files, with every kind of property set somewhere.
fn entries(key: &Keypair) -> Vec<Entry> {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/datasets");
    let files = [
        (
            "energy/iowa-electricity.csv",
            "Iowa electricity generation",
            Domain::Energy,
            Level::Open,
        ),
        (
            "environment/seattle-weather.csv",
            "Seattle daily weather",
            Domain::Ict,
            Level::SharedPublic,
        ),
        (
            "transport/airports.csv",
            "US airports",
            Domain::Transport,
            Level::SharedGroup,
        ),
        (
            "water/Net3.inp",
            "EPANET example network 3",
            Domain::Water,
            Level::SharedNamed,
        ),
    ];
    let mut out = Vec::new();
    for (i, (rel, title, domain, level)) in files.into_iter().enumerate() {
        let path = base.join(rel);
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("skipping {}: absent", path.display());
            continue;
        };
        let (spectrum, access) = level.split();
        let me = key.did();
        let rich = i % 2 == 0;
        out.push(Entry {
            iss: me,
            dataset: DatasetId([i as u8 + 1; 16]),
            version: 1,
            previous: None,
            title: title.into(),
            description: format!("{title}: a real file from ../shared/data ({rel})."),
            keywords: vec!["open data".into(), format!("k{i}")],
            themes: vec!["http://publications.europa.eu/resource/authority/data-theme/ENER".into(), "ENVI".into()],
            publisher: Agent { name: "Riverside City".into(), did: Some(me), uri: rich.then(|| "https://riverside.example/org".into()) },
            contact: Some(Contact {
                name: "Data desk".into(),
                email: Some("data@riverside.example".into()),
                url: rich.then(|| "https://riverside.example/contact".into()),
                phone: rich.then(|| "+34912222222".into()),
            }),
            licence: Some(if rich { "https://creativecommons.org/licenses/by/4.0/".into() } else { "US-Government-Work".into() }),
            spatial: Some(Spatial {
                name: Some(if rich { "Seattle".into() } else { "http://sws.geonames.org/5809844/".into() }),
                bbox: rich.then_some(BoundingBox { west: -1_224_400_000, south: 474_900_001, east: -1_222_300_000, north: 477_300_000 }),
            }),
            temporal: Some(Temporal { start: Some("2012-01-01".into()), end: rich.then(|| "2015-12-31T23:59:59Z".into()) }),
            issued: "2026-12-01T08:00:00Z".into(),
            modified: "2026-12-03".into(),
            distributions: vec![
                Distribution {
                    media_type: if rel.ends_with(".csv") { "text/csv".into() } else { String::new() },
                    bytes: Some(bytes.len() as u64),
                    content: Some(ContentHash::of(&bytes)),
                    filename: Some(rel.rsplit('/').next().unwrap().into()),
                    title: Some("the file".into()),
                    description: rich.then(|| "As published".into()),
                    download_url: rich.then(|| format!("https://riverside.example/files/{rel}")),
                    format: Some(if rich { "http://publications.europa.eu/resource/authority/file-type/CSV".into() } else { "CSV".into() }),
                    licence: rich.then(|| "CC0-1.0".into()),
                    availability: rich.then(|| "http://publications.europa.eu/resource/authority/planned-availability/STABLE".into()),
                    issued: Some("2026-12-01".into()),
                    modified: rich.then(|| "2026-12-02T10:00:00+01:00".into()),
                    ..Distribution::default()
                },
                Distribution {
                    access_url: Some("https://riverside.example/api".into()),
                    checksum: rich.then(|| Checksum { algorithm: "sha256".into(), value: "ab".repeat(32) }),
                    bytes: rich.then_some(1024),
                    ..Distribution::default()
                },
            ],
            details: Details {
                quality_measures: None,
                resolves: Vec::new(),
                identifier: rich.then(|| format!("riverside-{i}")),
                lang: rich.then(|| "en".into()),
                translations: if rich {
                    vec![Translation { lang: "es".into(), title: Some(format!("{title} (es)")), description: Some("Descripción".into()), keywords: vec!["datos abiertos".into()] }]
                } else {
                    vec![]
                },
                landing_page: Some(format!("https://riverside.example/datasets/{i}")),
                languages: vec!["http://publications.europa.eu/resource/authority/language/ENG".into()],
                frequency: Some(if rich { "http://publications.europa.eu/resource/authority/frequency/DAILY".into() } else { "daily".into() }),
                conforms_to: if rich { vec!["https://www.w3.org/TR/tabular-data-primer/".into()] } else { vec![] },
                access_rights: Some("public".into()),
                documentation: vec!["https://riverside.example/doc".into()],
                version_info: Some("1.0".into()),
                version_notes: rich.then(|| "First public release".into()),
                legislation: if rich { vec!["http://data.europa.eu/eli/dir/2007/2/2019-06-26".into()] } else { vec![] },
            },
            iso: Iso {
                data_type: if rich { DataType::Thematic } else { DataType::Reference },
                kind: Kind::Status,
                concept: Concept::Infrastructure,
                domain,
                insight: Insight::Analytical,
                facets: Facets { subject: rich.then(|| "city".into()), metric: Some("quantity".into()), ..Facets::default() },
                spectrum,
                access,
                groups: if level == Level::SharedGroup { vec!["water-utilities".into(), "city/planning".into()] } else { vec![] },
                terms: (level == Level::SharedPublic).then(|| "Attribute the city".into()),
                roles: Roles { creator: agent("Survey team"), owner: agent("Riverside City"), custodians: vec![me], primary_publisher: me, secondary_publisher: None },
                provenance: Some("Measured by the city".into()),
                quality: rich.then(|| "Checked daily".into()),
                privacy: Privacy {
                    personal_data: level == Level::SharedNamed,
                    high_risk: if level == Level::SharedNamed { vec![HighRisk::PersonalDetails] } else { vec![] },
                    purpose: Some("Network planning".into()),
                    legal_basis: (level == Level::SharedNamed).then(|| "Public task".into()),
                    retention_days: (level == Level::SharedNamed).then_some(30),
                    jurisdiction: "US".into(),
                    allowed_jurisdictions: if rich { vec!["CA".into()] } else { vec![] },
                    notice: None,
                },
                // 5.4: the dictionary inferred from the real file travels too.
                dictionary: if rel.ends_with(".csv") {
                    cix_protocol::dictionary::infer_csv(bytes.as_slice()).unwrap()
                } else {
                    vec![]
                },
            },
        });
    }
    for e in &out {
        e.check().unwrap();
    }
    out
}

#[test]
fn export_then_import_loses_nothing_in_any_format() {
    let key = Keypair::generate();
    let Some(entries) = real_entries(&key) else {
        return;
    };
    assert_eq!(entries.len(), 4, "every real file makes an entry");
    assert!(
        entries
            .iter()
            .filter(|e| !e.iso.dictionary.is_empty())
            .count()
            >= 3,
        "the CSV entries carry dictionaries"
    );
    for (out, back) in [
        (ExportFormat::DcatApTurtle, Format::DcatApTurtle),
        (ExportFormat::DcatApJsonld, Format::DcatApJsonld),
        (ExportFormat::DataJson, Format::DataJson),
    ] {
        let bytes = export(&entries, out).unwrap();
        let detected = cix_interchange::detect("export", &bytes).unwrap();
        assert_eq!(detected, back, "{out:?} is detected as what it is");
        let parsed = parse(back, &bytes).unwrap();
        assert!(
            parsed.skipped.iter().all(|s| s.reason.contains("Catalog")),
            "{out:?}: {:?}",
            parsed.skipped
        );
        assert_eq!(parsed.drafts.len(), entries.len(), "{out:?}");
        for e in &entries {
            let want = Record::from_entry(e);
            let got = parsed
                .drafts
                .iter()
                .find(|d| d.record.source_id == want.source_id)
                .unwrap_or_else(|| panic!("{out:?}: {} missing", want.source_id));
            let r = &got.record;
            assert_eq!(r.title, want.title, "{out:?} title");
            assert_eq!(r.description, want.description, "{out:?} description");
            assert_eq!(r.keywords, want.keywords, "{out:?} keywords");
            assert_eq!(r.themes, want.themes, "{out:?} themes");
            assert_eq!(r.publisher, want.publisher, "{out:?} publisher");
            assert_eq!(r.contact, want.contact, "{out:?} contact");
            assert_eq!(r.licence, want.licence, "{out:?} licence");
            assert_eq!(r.spatial, want.spatial, "{out:?} spatial");
            assert_eq!(r.temporal, want.temporal, "{out:?} temporal");
            assert_eq!(r.issued, want.issued, "{out:?} issued");
            assert_eq!(r.modified, want.modified, "{out:?} modified");
            assert_eq!(r.distributions.len(), want.distributions.len(), "{out:?}");
            for (a, b) in r.distributions.iter().zip(&want.distributions) {
                assert_eq!(a, b, "{out:?} distribution");
            }
            assert_eq!(r.details, want.details, "{out:?} details");
            assert_eq!(r, &want, "{out:?} whole record");
            assert_eq!(
                got.iso,
                Classification::from_iso(&e.iso),
                "{out:?} ISO block"
            );
            // And the confirmed block rebuilds the same ISO block.
            let iso = got.iso.to_iso(key.did(), r).unwrap();
            assert_eq!(iso, e.iso, "{out:?} iso");
        }
    }
}

#[test]
fn rdf_xml_of_an_export_imports_to_the_same_records() {
    use oxrdfio::{RdfFormat, RdfParser, RdfSerializer};
    let key = Keypair::generate();
    let Some(entries) = real_entries(&key) else {
        return;
    };
    let turtle = export(&entries, ExportFormat::DcatApTurtle).unwrap();
    let mut ser = RdfSerializer::from_format(RdfFormat::RdfXml).for_writer(Vec::new());
    for q in RdfParser::from_format(RdfFormat::Turtle).for_slice(&turtle) {
        ser.serialize_quad(&q.unwrap()).unwrap();
    }
    let xml = ser.finish().unwrap();
    assert_eq!(
        cix_interchange::detect("x.rdf", &xml).unwrap(),
        Format::DcatApRdfxml
    );
    let parsed = parse(Format::DcatApRdfxml, &xml).unwrap();
    for e in &entries {
        let want = Record::from_entry(e);
        let got = parsed
            .drafts
            .iter()
            .find(|d| d.record.source_id == want.source_id)
            .unwrap();
        assert_eq!(got.record, want);
        assert_eq!(got.iso, Classification::from_iso(&e.iso));
    }
}

#[test]
fn mapping_rules_override_defaults_and_the_source_in_order() {
    let key = Keypair::generate();
    let Some(entries) = real_entries(&key) else {
        return;
    };
    let r = Record::from_entry(&entries[0]);
    let m = cix_interchange::Mapping::parse(
        r#"
[defaults]
level = "open"
domain = "water"
kind = "usage"
[[rules]]
keyword = "K0"
[rules.set]
domain = "energy"
[[rules]]
keyword = "k0"
title = "no such title"
[rules.set]
domain = "waste"
"#,
    )
    .unwrap();
    let stated = Classification {
        kind: Some(Kind::Supply),
        ..Classification::default()
    };
    let c = m.classify(&r, &stated);
    assert_eq!(
        c.domain,
        Some(Domain::Energy),
        "the first rule matches (case-insensitive), the second does not"
    );
    assert_eq!(
        c.kind,
        Some(Kind::Supply),
        "what the source states wins over defaults"
    );
    assert_eq!(
        c.missing(),
        vec!["data_type", "concept", "insight", "jurisdiction"]
    );
    assert!(c
        .to_iso(key.did(), &r)
        .unwrap_err()
        .contains("missing data_type"));
    let err = cix_interchange::Mapping::parse("[defaults]\nlevel = 3\n").unwrap_err();
    assert!(err.contains("level"), "{err}");
    assert!(
        cix_interchange::Mapping::parse("[defaults]\nspectrum = \"open\"\n").is_err(),
        "unknown keys are refused"
    );
}

#[test]
fn a_mapping_that_breaks_a_rule_is_refused_naming_field_and_rule() {
    let key = Keypair::generate();
    let Some(entries) = real_entries(&key) else {
        return;
    };
    let r = Record::from_entry(&entries[0]);
    let m = cix_interchange::Mapping::parse(
        r#"
[defaults]
level = "open"
data_type = "thematic"
kind = "usage"
concept = "State"
domain = "transport"
insight = "operational"
jurisdiction = "US"
personal_data = true
purpose = "x"
legal_basis = "y"
retention_days = 3
"#,
    )
    .unwrap();
    let iso = m
        .classify(&r, &Classification::default())
        .to_iso(key.did(), &r)
        .unwrap();
    let id = cix_interchange::dataset_id_for(&key.did(), &r.source_id);
    let entry = r.clone().into_entry(key.did(), id, 1, None, iso);
    let err = entry.sign(&key).unwrap_err().to_string();
    assert!(
        err.contains("iso.privacy.personal_data") && err.contains("open data"),
        "{err}"
    );
}

#[test]
fn imported_dataset_ids_are_stable_per_publisher_and_source() {
    let a = Keypair::generate().did();
    let b = Keypair::generate().did();
    let id = cix_interchange::dataset_id_for;
    assert_eq!(id(&a, "e3zj-s4zh"), id(&a, "e3zj-s4zh"));
    assert_ne!(id(&a, "e3zj-s4zh"), id(&b, "e3zj-s4zh"));
    assert_ne!(id(&a, "e3zj-s4zh"), id(&a, "e3zj-s4zi"));
}
