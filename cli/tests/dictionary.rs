//! Data dictionaries (ISO 37156 5.4) through real `cix node run` processes: every real dataset
//! of `../shared/data/datasets/` publishes with a dictionary that passes validation, exports
//! as a Frictionless Table Schema on the publisher and on a peer, and a CSV that breaks its
//! dictionary is refused with line, column and rule unless `--accept-invalid` is given.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{fails, json, json_lines, listen_addr, ok, start, wait_until};
use serde_json::Value;

fn shared_datasets() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/datasets");
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

/// The field types the Frictionless Table Schema specification defines.
const SPEC_TYPES: [&str; 15] = [
    "string",
    "number",
    "integer",
    "boolean",
    "object",
    "array",
    "date",
    "time",
    "datetime",
    "year",
    "yearmonth",
    "duration",
    "geopoint",
    "geojson",
    "any",
];
/// The constraints it defines.
const SPEC_CONSTRAINTS: [&str; 8] = [
    "required",
    "unique",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "pattern",
    "enum",
];
/// Types whose values are ordered, for which `minimum` and `maximum` are defined.
const ORDERED_TYPES: [&str; 7] = [
    "integer",
    "number",
    "date",
    "time",
    "datetime",
    "year",
    "yearmonth",
];

fn is_date_text(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-')
}

/// Checks `schema` against the structure the Frictionless Table Schema specification sets.
fn assert_valid_table_schema(schema: &Value) {
    let top = schema.as_object().expect("a schema is a JSON object");
    for key in top.keys() {
        assert!(
            [
                "fields",
                "missingValues",
                "primaryKey",
                "foreignKeys",
                "$schema"
            ]
            .contains(&key.as_str()),
            "unexpected top-level key {key}"
        );
    }
    let missing = schema["missingValues"]
        .as_array()
        .expect("missingValues is an array");
    assert!(
        missing.iter().all(Value::is_string),
        "missingValues are strings"
    );
    let fields = schema["fields"].as_array().expect("fields is an array");
    let mut names = BTreeSet::new();
    for f in fields {
        let name = f["name"].as_str().expect("a field has a name");
        assert!(!name.is_empty());
        assert!(names.insert(name), "{name} named twice");
        let t = f["type"].as_str().expect("a field has a type");
        assert!(
            SPEC_TYPES.contains(&t),
            "{name}: {t} is not a Table Schema type"
        );
        if let Some(format) = f.get("format") {
            let format = format.as_str().expect("format is text");
            let ok = match t {
                "date" | "time" | "datetime" => true,
                "string" => ["default", "email", "uri", "binary", "uuid"].contains(&format),
                "geojson" => ["default", "topojson"].contains(&format),
                _ => format == "default",
            };
            assert!(ok, "{name}: format {format} for {t}");
        }
        for key in ["description", "title", "unit"] {
            if let Some(v) = f.get(key) {
                assert!(v.is_string(), "{name}: {key} is text");
            }
        }
        for key in ["trueValues", "falseValues"] {
            if let Some(v) = f.get(key) {
                assert_eq!(t, "boolean", "{name}: {key} only on booleans");
                assert!(v.as_array().unwrap().iter().all(Value::is_string));
            }
        }
        let Some(c) = f.get("constraints") else {
            continue;
        };
        let c = c.as_object().expect("constraints is an object");
        for (key, v) in c {
            assert!(
                SPEC_CONSTRAINTS.contains(&key.as_str()),
                "{name}: constraint {key}"
            );
            match key.as_str() {
                "required" | "unique" => assert!(v.is_boolean(), "{name}: {key} is a boolean"),
                "minimum" | "maximum" => {
                    assert!(ORDERED_TYPES.contains(&t), "{name}: {key} on {t}");
                    let fits = match t {
                        "integer" => v.is_i64(),
                        "number" => v.is_number(),
                        _ => is_date_text(v),
                    };
                    assert!(fits, "{name}: {key} {v} is not a {t}");
                }
                "enum" => {
                    let values = v.as_array().expect("enum is an array");
                    assert!(!values.is_empty(), "{name}: enum is not empty");
                }
                _ => {}
            }
        }
    }
}

fn csv_header(path: &Path) -> Vec<String> {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    rdr.headers()
        .unwrap()
        .iter()
        .map(|h| h.trim().to_string())
        .collect()
}

fn field_names(dictionary: &Value) -> Vec<String> {
    dictionary["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_real_dataset_publishes_with_its_dictionary_and_exports_as_a_table_schema() {
    let Some(data) = shared_datasets() else {
        return;
    };
    let mut files = Vec::new();
    files_under(&data, &mut files);
    files.sort();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(
        &a,
        &["init", "--name", "City Data Office", "--sector", "ict"],
    );
    ok(&b, &["init", "--name", "Neighbour City"]);
    let _node_a = start(&a, None);
    let _node_b = start(&b, Some(&listen_addr(&a)));
    wait_until("the nodes to connect", || {
        json_lines(&ok(&b, &["--json", "peers"])).len() == 1
    });
    let mut published = Vec::new();
    for path in &files {
        let title = path.file_stem().unwrap().to_str().unwrap();
        let p = json(
            &a,
            &[
                "publish",
                path.to_str().unwrap(),
                "--title",
                title,
                "--spectrum",
                "open",
            ],
        );
        assert_eq!(p["invalid_rows"], 0, "{}", path.display());
        let id = p["dataset"].as_str().unwrap().to_string();
        let shown = json(&a, &["dictionary", "show", &id]);
        let ext = path.extension().unwrap().to_str().unwrap();
        match ext {
            "csv" => {
                assert_eq!(field_names(&shown), csv_header(path), "{}", path.display());
                assert_eq!(p["dictionary_fields"], csv_header(path).len());
            }
            "json" | "geojson" => assert!(p["dictionary_fields"].as_u64().unwrap() > 0),
            _ => assert_eq!(
                p["dictionary_fields"],
                0,
                "{}: no dictionary",
                path.display()
            ),
        }
        if p["dictionary_fields"] != 0 {
            let schema: Value =
                serde_json::from_str(&ok(&a, &["dictionary", "export", &id])).unwrap();
            assert_valid_table_schema(&schema);
            assert_eq!(field_names(&schema), field_names(&shown));
            published.push((id, schema));
        }
        eprintln!("{}: published as {}", path.display(), p["dataset"]);
    }
    assert!(
        published.len() >= 13,
        "{} datasets with a dictionary",
        published.len()
    );
    // The peer knows the entries from gossip and exports the same schemas from them.
    wait_until("the peer to list every dataset", || {
        json_lines(&ok(&b, &["--json", "catalogue", "list"])).len() == files.len()
    });
    for (id, schema) in &published {
        let out = dir.path().join(format!("{id}.schema.json"));
        let written = json(
            &b,
            &["dictionary", "export", id, "-o", out.to_str().unwrap()],
        );
        assert_eq!(
            written["fields"],
            schema["fields"].as_array().unwrap().len()
        );
        let on_peer: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(&on_peer, schema, "{id}: the peer's export");
    }
}

/// `seattle-weather.csv` with bad rows at known physical lines; a quoted value over two
/// lines shifts every later line by one.
fn broken_weather(source: &Path, to: &Path) {
    let text = std::fs::read_to_string(source).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let set = |lines: &mut Vec<String>, i: usize, col: usize, v: &str| {
        let mut cells: Vec<String> = lines[i].split(',').map(String::from).collect();
        cells[col] = v.to_string();
        lines[i] = cells.join(",");
    };
    set(&mut lines, 3, 2, "warm"); // line 4: temp_max is not a number
    let cut = lines[5].rsplit_once(',').unwrap().0.to_string();
    lines[5] = cut; // line 6: five values, not six
    set(&mut lines, 7, 5, "\"rain\nlater\""); // lines 8-9: not an allowed weather
    set(&mut lines, 9, 1, "-1"); // line 11: precipitation below its minimum 0
    set(&mut lines, 10, 4, ""); // line 12: wind is required
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(to, out).unwrap();
}

const BROKEN_META: &str = r#"
domain = "ict"
kind = "status"
[fields.temp_max]
type = "number"
unit = "°C"
[fields.precipitation]
min = 0
unit = "mm"
[fields.wind]
nullable = false
[fields.weather]
enum = ["drizzle", "rain", "sun", "snow", "fog"]
description = "weather label derived by vega"
"#;

#[test]
fn a_csv_that_breaks_its_dictionary_is_refused_with_lines_columns_and_rules_unless_accepted() {
    let Some(data) = shared_datasets() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("node");
    ok(&home, &["init", "--name", "Weather Office"]);
    let _node = start(&home, None);
    let file = dir.path().join("weather.csv");
    broken_weather(&data.join("environment/seattle-weather.csv"), &file);
    let meta = dir.path().join("weather.toml");
    std::fs::write(&meta, BROKEN_META).unwrap();
    let args = [
        "publish",
        file.to_str().unwrap(),
        "--title",
        "Seattle weather",
        "--spectrum",
        "open",
        "--meta",
        meta.to_str().unwrap(),
    ];
    let err = fails(&home, &args);
    for expected in [
        "line 4, column 3 (temp_max): type: \"warm\" is not a number",
        "line 6: columns: 5 values, expected 6",
        "line 8, column 6 (weather): enum:",
        "line 11, column 2 (precipitation): minimum: -1 is below the minimum 0",
        "line 12, column 5 (wind): required:",
        "5 of its 1462 records (the header and 1461 rows) break it, 5 violations in all",
        "--accept-invalid",
    ] {
        assert!(err.contains(expected), "{expected:?} missing from:\n{err}");
    }
    assert!(
        json_lines(&ok(&home, &["--json", "catalogue", "list"])).is_empty(),
        "nothing is published"
    );
    let blobs = std::fs::read_dir(home.join("blobs")).map_or(0, |d| d.count());
    assert_eq!(blobs, 0, "no blob is left behind");

    let mut accepted = vec!["--json"];
    accepted.extend_from_slice(&args);
    accepted.push("--accept-invalid");
    let out = ok(&home, &accepted);
    let p: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(p["invalid_rows"], 5);
    let id = p["dataset"].as_str().unwrap();
    let entry = json(&home, &["catalogue", "show", id]);
    let quality = entry["record"]["iso"]["quality"].as_str().unwrap();
    assert!(quality.contains("in 5 of 1462 records"), "{quality}");
    assert!(
        quality.contains("line 4, column 3 (temp_max): type"),
        "{quality}"
    );
    assert!(quality.contains("--accept-invalid"), "{quality}");
    // The dictionary is the inferred one with the metadata file's overrides.
    let shown = json(&home, &["dictionary", "show", id]);
    let f = |name: &str| {
        shown["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(f("temp_max")["type"], "number");
    assert_eq!(f("temp_max")["unit"], "°C");
    assert_eq!(f("precipitation")["min"], "0");
    assert_eq!(f("wind")["nullable"], false);
    assert_eq!(f("weather")["enum"].as_array().unwrap().len(), 5);
    assert_eq!(f("date")["type"], "date");
    let schema: Value = serde_json::from_str(&ok(&home, &["dictionary", "export", id])).unwrap();
    assert_valid_table_schema(&schema);
    let weather = &schema["fields"][5];
    assert_eq!(weather["constraints"]["enum"][0], "drizzle");
    assert_eq!(weather["description"], "weather label derived by vega");
    assert_eq!(schema["fields"][1]["constraints"]["minimum"], 0);
    assert_eq!(schema["fields"][1]["unit"], "mm");
    assert_eq!(schema["fields"][4]["constraints"]["required"], true);
    // People get a table naming each field.
    let table = ok(&home, &["dictionary", "show", id]);
    assert!(
        table.contains("precipitation") && table.contains("drizzle, rain"),
        "{table}"
    );
}

#[test]
fn metadata_overrides_that_contradict_themselves_or_name_no_field_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("node");
    ok(&home, &["init", "--name", "Metering"]);
    let _node = start(&home, None);
    let file = dir.path().join("m.csv");
    std::fs::write(&file, "meter,reading (kWh)\nA,1.5\nB,2\n").unwrap();
    for (meta, expected) in [
        (
            "[fields.nope]\nunit = \"m\"\n",
            "fields.nope: the file has no field of that name",
        ),
        (
            "[fields.reading]\nmin = 5\nmax = 1\n",
            "min is greater than max",
        ),
        ("[fields.meter]\nmin = 1\n", "min and max apply only to"),
        (
            "[fields.reading]\nenum = [1, \"x\"]\n",
            "enum value \"x\" is not a number",
        ),
        (
            "[fields.reading]\ncolour = \"red\"\n",
            "unknown field `colour`",
        ),
    ] {
        let m = dir.path().join("m.toml");
        std::fs::write(&m, meta).unwrap();
        let err = fails(
            &home,
            &[
                "publish",
                file.to_str().unwrap(),
                "--title",
                "m",
                "--spectrum",
                "open",
                "--meta",
                m.to_str().unwrap(),
            ],
        );
        assert!(
            err.contains(expected),
            "{meta:?}: {expected:?} missing from {err}"
        );
    }
    // A unit in the header is kept, and the name is without it.
    let p = json(
        &home,
        &[
            "publish",
            file.to_str().unwrap(),
            "--title",
            "m",
            "--spectrum",
            "open",
        ],
    );
    let shown = json(
        &home,
        &["dictionary", "show", p["dataset"].as_str().unwrap()],
    );
    assert_eq!(shown["fields"][1]["name"], "reading");
    assert_eq!(shown["fields"][1]["unit"], "kWh");
    assert_eq!(shown["fields"][1]["type"], "number");
}
