//! Every real dataset in `../shared/data/datasets/` (and the 30 MiB flights file in
//! `../shared/data/large/`) gets a data dictionary (ISO 37156 5.4) that matches the file,
//! checked here by reading each file independently with the csv crate or serde_json.
//!
//! Skips with a message when `../shared/data/` is absent (a clone without the shared data).

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cix_protocol::dictionary::{self, Field, FieldType};
use serde_json::Value;

fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} is absent", dir.display());
        None
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn extension(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

const MISSING: [&str; 6] = ["", "NA", "N/A", "NaN", "null", "NULL"];

/// A date as the spec defines it: `YYYY-MM-DD` with a valid month and day.
fn looks_like_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && v[5..7].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
        && v[8..10].parse::<u32>().is_ok_and(|d| (1..=31).contains(&d))
}

/// A date-time: a date, `T` or a space, `HH:MM:SS`, then anything the spec allows.
fn looks_like_datetime(v: &str) -> bool {
    let b = v.as_bytes();
    looks_like_date(v)
        && b.len() >= 19
        && matches!(b[10], b'T' | b' ')
        && b[13] == b':'
        && b[16] == b':'
}

fn value_fits(t: FieldType, v: &str) -> bool {
    match t {
        FieldType::Integer => v.parse::<i64>().is_ok(),
        FieldType::Number => v.parse::<f64>().is_ok_and(f64::is_finite),
        FieldType::Boolean => ["true", "false", "TRUE", "FALSE", "True", "False"].contains(&v),
        FieldType::Date => v.len() == 10 && looks_like_date(v),
        FieldType::Datetime => v.len() == 10 && looks_like_date(v) || looks_like_datetime(v),
        FieldType::String => true,
        other => panic!("a CSV field typed {other}"),
    }
}

/// The narrowest type the spec's inference rules give to these values.
fn narrowest(values: &[&str]) -> FieldType {
    if values.is_empty() {
        return FieldType::String;
    }
    for t in [
        FieldType::Integer,
        FieldType::Number,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::Datetime,
    ] {
        if values.iter().all(|v| value_fits(t, v)) {
            return t;
        }
    }
    FieldType::String
}

fn check_csv(path: &Path) {
    let fields = dictionary::infer_csv(std::fs::File::open(path).unwrap()).unwrap();
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    let expected: Vec<String> = header
        .iter()
        .zip(&fields)
        .map(|(h, f)| match &f.unit {
            // A unit must come from a `name (unit)` or `name [unit]` header.
            Some(u) => {
                assert!(
                    h.trim() == format!("{} ({u})", f.name)
                        || h.trim() == format!("{} [{u}]", f.name),
                    "{}: unit {u:?} not in header {h:?}",
                    path.display()
                );
                f.name.clone()
            }
            None => h.trim().to_string(),
        })
        .collect();
    assert_eq!(
        names,
        expected,
        "{}: names are the columns in order",
        path.display()
    );
    let mut columns: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    let mut rows = 0u64;
    for record in rdr.records() {
        let record = record.unwrap();
        rows += 1;
        for (i, v) in record.iter().enumerate() {
            columns[i].push(v.trim().to_string());
        }
    }
    assert!(rows > 0, "{}", path.display());
    for (f, values) in fields.iter().zip(&columns) {
        let what = format!("{} column {:?}", path.display(), f.name);
        let present: Vec<&str> = values
            .iter()
            .map(String::as_str)
            .filter(|v| !MISSING.contains(v))
            .collect();
        assert_eq!(
            f.nullable,
            present.len() < values.len() || present.is_empty(),
            "{what}: nullable"
        );
        for v in &present {
            assert!(
                value_fits(f.field_type, v),
                "{what}: {v:?} is not {}",
                f.field_type
            );
        }
        assert_eq!(
            f.field_type,
            narrowest(&present),
            "{what}: the narrowest type"
        );
        match f.field_type {
            FieldType::Integer | FieldType::Number => {
                let nums: Vec<f64> = present.iter().map(|v| v.parse().unwrap()).collect();
                let lo = nums.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = nums.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                assert_eq!(
                    f.min.as_deref().unwrap().parse::<f64>().unwrap(),
                    lo,
                    "{what}: min"
                );
                assert_eq!(
                    f.max.as_deref().unwrap().parse::<f64>().unwrap(),
                    hi,
                    "{what}: max"
                );
            }
            FieldType::Date | FieldType::Datetime => {
                // The real files write each column's times in one format, so text order is
                // time order; check that premise, then compare.
                let len = present[0].len();
                assert!(present.iter().all(|v| v.len() == len), "{what}: one format");
                assert_eq!(
                    f.min.as_deref(),
                    present.iter().min().copied(),
                    "{what}: min"
                );
                assert_eq!(
                    f.max.as_deref(),
                    present.iter().max().copied(),
                    "{what}: max"
                );
            }
            _ => assert!(
                f.min.is_none() && f.max.is_none(),
                "{what}: no range for text"
            ),
        }
    }
    let report = dictionary::validate_csv(std::fs::File::open(path).unwrap(), &fields).unwrap();
    assert!(report.is_valid(), "{}: {:?}", path.display(), report.listed);
    assert_eq!(report.rows, rows, "{}", path.display());
    dictionary::check(&fields).unwrap();
    eprintln!(
        "{}: {} fields, {rows} rows: ok",
        path.display(),
        fields.len()
    );
}

fn json_fits(t: FieldType, v: &Value) -> bool {
    match t {
        FieldType::Integer => v.is_i64(),
        FieldType::Number => v.is_number(),
        FieldType::Boolean => v.is_boolean(),
        FieldType::String => v.is_string(),
        FieldType::Date | FieldType::Datetime => v.as_str().is_some_and(looks_like_date),
        FieldType::Object => v.is_object(),
        FieldType::Array => v.is_array(),
        FieldType::Geojson => v["type"].is_string(),
        FieldType::Any => true,
    }
}

fn check_geojson(path: &Path, doc: &Value, fields: &[Field]) {
    let features = doc["features"].as_array().unwrap();
    let geometry = &fields[0];
    assert_eq!(geometry.name, "geometry");
    assert_eq!(geometry.field_type, FieldType::Geojson);
    let with_geometry = features.iter().filter(|f| !f["geometry"].is_null()).count();
    assert_eq!(
        geometry.count,
        Some(with_geometry as u64),
        "{}",
        path.display()
    );
    let types: BTreeSet<String> = features
        .iter()
        .filter_map(|f| f["geometry"]["type"].as_str().map(String::from))
        .collect();
    assert_eq!(
        geometry.geometry_types.clone().unwrap(),
        types.into_iter().collect::<Vec<_>>()
    );
    // Every property of every feature is a field, and nothing else is (besides the members).
    let mut props: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for f in features {
        for (k, v) in f["properties"].as_object().unwrap() {
            props.entry(k.clone()).or_default().push(v);
        }
    }
    let mut described: BTreeSet<String> = fields[1..].iter().map(|f| f.name.clone()).collect();
    if features.iter().any(|f| f.get("id").is_some()) {
        assert!(
            described.remove("id"),
            "{}: features have ids",
            path.display()
        );
    }
    assert_eq!(
        described,
        props.keys().cloned().collect(),
        "{}",
        path.display()
    );
    for f in fields.iter().filter(|f| props.contains_key(&f.name)) {
        let values = &props[&f.name];
        assert!(
            values.iter().all(|v| json_fits(f.field_type, v)),
            "{}",
            f.name
        );
        assert_eq!(
            f.count,
            Some(values.iter().filter(|v| !v.is_null()).count() as u64)
        );
        assert_eq!(
            f.nullable,
            values.len() < features.len() || values.iter().any(|v| v.is_null())
        );
    }
}

/// The value at a dotted path, if the path leads through objects.
fn at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| v.get(key))
}

fn check_json(path: &Path, doc: &Value, fields: &[Field]) {
    let top = doc
        .as_object()
        .expect("the real JSON files are objects (TopoJSON)");
    for f in fields {
        let v = at(doc, &f.name).unwrap_or_else(|| panic!("{}: no {:?}", path.display(), f.name));
        assert!(
            json_fits(f.field_type, v),
            "{}: {:?} is not {}",
            path.display(),
            f.name,
            f.field_type
        );
        if let Some(o) = v.as_object() {
            // The real files are shallow and small: every non-empty object is expanded.
            assert!(
                o.is_empty(),
                "{}: {:?} was not expanded",
                path.display(),
                f.name
            );
        }
    }
    for key in top.keys() {
        assert!(
            fields
                .iter()
                .any(|f| f.name == *key || f.name.starts_with(&format!("{key}."))),
            "{}: top-level member {key:?} is described",
            path.display()
        );
    }
}

fn check_structure(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let fields = dictionary::infer_json(&bytes).unwrap();
    dictionary::check(&fields).unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    if doc["type"] == "FeatureCollection" {
        check_geojson(path, &doc, &fields);
    } else {
        check_json(path, &doc, &fields);
    }
    eprintln!("{}: {} fields: ok", path.display(), fields.len());
}

#[test]
fn every_real_dataset_gets_a_dictionary_that_matches_its_columns() {
    let Some(data) = shared_data() else { return };
    let mut files = Vec::new();
    files_under(&data.join("datasets"), &mut files);
    files.sort();
    let mut described = 0;
    for path in &files {
        match extension(path).as_str() {
            "csv" => check_csv(path),
            "json" | "geojson" => check_structure(path),
            _ => {
                eprintln!("{}: not CSV or JSON, no dictionary", path.display());
                continue;
            }
        }
        described += 1;
    }
    assert!(described >= 13, "only {described} datasets were described");
}

#[test]
fn the_large_flights_file_gets_a_dictionary_that_matches_its_columns() {
    let Some(data) = shared_data() else { return };
    let path = data.join("large/nycflights13-flights-2013.csv");
    if !path.exists() {
        eprintln!("skipping: {} is absent", path.display());
        return;
    }
    check_csv(&path);
}
