//! Real catalogues from ../shared/data import in full (issue 4, done-when).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use cix_interchange::{detect, parse, Format};
use serde_json::Value;

fn shared(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} is absent", p.display());
        None
    }
}

fn keywords_of(r: &Value) -> Vec<String> {
    match r.get("keywords") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|k| k.as_str().unwrap().trim().to_string())
            .collect(),
        _ => r
            .get("keyword")
            .and_then(Value::as_str)
            .map(|k| {
                k.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[test]
fn seattle_data_json_imports_every_record_with_its_fields() {
    let Some(path) = shared("catalogues/data.seattle.gov-data.json") else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(detect("data.json", &bytes).unwrap(), Format::DataJson);
    let parsed = parse(Format::DataJson, &bytes).unwrap();
    let raw: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(raw.len(), 169);
    assert_eq!(
        parsed.drafts.len() + parsed.skipped.len(),
        169,
        "every record accounted for"
    );
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    for (r, d) in raw.iter().zip(&parsed.drafts) {
        let rec = &d.record;
        let id = r["identifier"].as_str().unwrap();
        assert_eq!(rec.source_id, id);
        assert_eq!(rec.details.identifier.as_deref(), Some(id));
        assert_eq!(rec.title, r["title"].as_str().unwrap().trim(), "{id}");
        assert_eq!(
            rec.description,
            r.get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim(),
            "{id}"
        );
        let mut want = keywords_of(r);
        want.dedup();
        assert_eq!(rec.keywords, want, "{id}");
        assert_eq!(
            rec.licence.as_deref(),
            r.get("license").and_then(Value::as_str).map(str::trim),
            "{id}"
        );
        assert_eq!(rec.modified, r["modified"].as_str().unwrap(), "{id}");
        // Every distribution URL survives, with its media type.
        for dist in r
            .get("distribution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let u = dist["accessURL"].as_str().unwrap();
            let got = rec
                .distributions
                .iter()
                .find(|x| x.access_url.as_deref() == Some(u))
                .unwrap_or_else(|| panic!("{id}: {u} lost"));
            assert_eq!(
                got.media_type,
                dist["formats"][0]["value"].as_str().unwrap(),
                "{id}"
            );
        }
        for key in ["accessURL", "webService", "feed"] {
            if let Some(u) = r.get(key).and_then(Value::as_str) {
                assert!(
                    rec.distributions.iter().any(|x| x.url() == Some(u)),
                    "{id}: {key} lost"
                );
            }
        }
        assert_eq!(
            rec.details.access_rights.as_deref(),
            r["accessLevel"].as_str()
        );
    }
    // The one record with a frequency keeps it.
    assert!(parsed
        .drafts
        .iter()
        .any(|d| d.record.details.frequency.as_deref() == Some("hourly")));
}

#[test]
fn dcat_ap_es_turtle_imports_its_dataset_in_both_languages() {
    let Some(path) = shared("catalogues/dcat-ap-es-example-catalog.ttl") else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let format = detect("x.ttl", &bytes).unwrap();
    assert_eq!(format, Format::DcatApTurtle);
    let parsed = parse(format, &bytes).unwrap();
    assert_eq!(parsed.drafts.len(), 1);
    // The catalogue and the data service are listed with a reason, not dropped silently.
    assert_eq!(parsed.skipped.len(), 2, "{:?}", parsed.skipped);
    let d = &parsed.drafts[0];
    let r = &d.record;
    assert_eq!(r.title, "Dataset de ejemplo");
    assert_eq!(r.details.lang.as_deref(), Some("es"));
    let en = r
        .details
        .translations
        .iter()
        .find(|t| t.lang == "en")
        .unwrap();
    assert_eq!(en.title.as_deref(), Some("Example Dataset"));
    assert_eq!(
        en.description.as_deref(),
        Some("Example dataset description.")
    );
    assert_eq!(r.keywords, vec!["estadísticas"]);
    assert_eq!(
        r.source_id,
        "http://dcat-ap-es.ejemplo.org/dataset/dataset-ejemplo-1"
    );
    assert_eq!(
        r.temporal.as_ref().unwrap().start.as_deref(),
        Some("2021-01-01T00:00:00Z")
    );
    assert_eq!(
        r.themes,
        vec!["http://datos.gob.es/kos/sector-publico/sector/medio-ambiente"]
    );
    assert_eq!(
        r.contact.as_ref().unwrap().email.as_deref(),
        Some("info-contacto@dcat-ap-es.ejemplo.org")
    );
    assert_eq!(
        r.details.legislation,
        vec!["https://www.boe.es/eli/es/rd/2023/08/22/729"]
    );
    let dist = &r.distributions[0];
    assert_eq!(
        dist.access_url.as_deref(),
        Some("http://dcat-ap-es.ejemplo.org/files/dataset-ejemplo-1.CSV")
    );
    assert_eq!(dist.bytes, Some(1024));
    assert_eq!(
        dist.availability.as_deref(),
        Some("http://publications.europa.eu/resource/authority/planned-availability/STABLE")
    );
    // No dct:issued on the dataset: taken from dct:modified? Neither is given on it, so the
    // reader refuses nothing but notes what it did.
    assert!(!d.notes.is_empty());
}

#[test]
fn fiware_dcat_ap_entities_import_in_both_forms() {
    for file in ["Dataset.jsonld", "Dataset-normalized.jsonld"] {
        let Some(path) = shared(&format!("ngsi-ld/{file}")) else {
            return;
        };
        let bytes = std::fs::read(&path).unwrap();
        let format = detect(file, &bytes).unwrap();
        assert_eq!(format, Format::NgsiLd, "{file}");
        let parsed = parse(format, &bytes).unwrap();
        assert_eq!(parsed.drafts.len(), 1, "{file}: {:?}", parsed.skipped);
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        let r = &parsed.drafts[0].record;
        // Known by its own identifier (what an export writes back), the entity id reported.
        let identifier = match &raw["identifier"] {
            Value::Object(o) => o["value"].clone(),
            v => v.clone(),
        };
        let identifier = match identifier {
            Value::Array(a) => a[0].as_str().unwrap().to_string(),
            v => v.as_str().unwrap().to_string(),
        };
        let id = raw["id"].as_str().unwrap();
        if identifier.is_empty() {
            assert_eq!(r.source_id, id, "{file}: no identifier, so the entity id");
        } else {
            assert_eq!(r.source_id, identifier, "{file}");
            assert!(
                parsed.drafts[0].notes.iter().any(|n| n.contains(id)),
                "{file}: the entity id is reported"
            );
        }
        assert!(r.title.starts_with("Alojamientos tur"), "{file}");
        assert!(r.keywords.contains(&"hotel".to_string()), "{file}");
        // The unresolvable distribution references are reported, not lost quietly.
        assert!(
            parsed.drafts[0]
                .notes
                .iter()
                .any(|n| n.contains("distribution")),
            "{file}"
        );
    }
    for file in [
        "Distribution.jsonld",
        "Distribution-normalized.jsonld",
        "Catalogue.jsonld",
        "Catalogue-normalized.jsonld",
        "WeatherObserved.jsonld",
    ] {
        let Some(path) = shared(&format!("ngsi-ld/{file}")) else {
            return;
        };
        let bytes = std::fs::read(&path).unwrap();
        let parsed = parse(Format::NgsiLd, &bytes).unwrap();
        assert!(parsed.drafts.is_empty(), "{file}");
        assert_eq!(parsed.skipped.len(), 1, "{file}");
        assert!(!parsed.skipped[0].reason.is_empty());
    }
}

#[test]
fn remote_json_ld_contexts_are_refused_clearly() {
    let doc = br#"{"@context":"https://example.org/ctx.jsonld","@id":"http://x/d","@type":"dcat:Dataset"}"#;
    let err = parse(Format::DcatApJsonld, doc).unwrap_err().to_string();
    assert!(err.contains("not fetched"), "{err}");
}

#[test]
fn ckan_package_and_search_results_import() {
    let pkg = serde_json::json!({
        "id": "3f1e", "name": "water-quality", "title": "Water quality", "notes": "Samples",
        "metadata_created": "2020-01-01T00:00:00", "metadata_modified": "2021-02-03T04:05:06.123456",
        "tags": [{"name": "water"}], "organization": {"title": "City Water"},
        "license_id": "cc-by", "resources": [{"url": "https://example.org/w.csv", "format": "CSV", "mimetype": "text/csv", "name": "samples"}],
        "extras": [{"key": "k", "value": "v"}]
    });
    for doc in [
        serde_json::json!({"success": true, "result": pkg}),
        serde_json::json!({"success": true, "result": {"count": 1, "results": [pkg]}}),
        serde_json::json!([pkg]),
    ] {
        let bytes = serde_json::to_vec(&doc).unwrap();
        assert_eq!(detect("x.json", &bytes).unwrap(), Format::Ckan);
        let p = parse(Format::Ckan, &bytes).unwrap();
        let r = &p.drafts[0].record;
        assert_eq!(r.title, "Water quality");
        assert_eq!(r.modified, "2021-02-03T04:05:06.123456Z");
        assert_eq!(r.publisher.name, "City Water");
        assert_eq!(
            r.distributions[0].download_url.as_deref(),
            Some("https://example.org/w.csv")
        );
        assert!(p.drafts[0].notes.iter().any(|n| n.starts_with("extras")));
    }
}
