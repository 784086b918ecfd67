//! `cix catalogue import` and `export` through real running nodes: the Seattle data.json
//! becomes signed entries on one node, reaches a second node by gossip, re-imports as
//! unchanged, and exports in every format that imports back to the very same entries.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{fails, json, json_lines, listen_addr, ok, start, wait_until};
use serde_json::Value;

fn seattle() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/catalogues/data.seattle.gov-data.json");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} is absent", p.display());
        None
    }
}

fn catalogue(home: &Path) -> Vec<Value> {
    json_lines(&ok(home, &["--json", "catalogue", "list"]))
}

fn outcomes(home: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json", "catalogue", "import"];
    all.extend_from_slice(args);
    json_lines(&ok(home, &all))
}

fn count(lines: &[Value], outcome: &str) -> usize {
    lines.iter().filter(|l| l["outcome"] == outcome).count()
}

const MAPPING: &str = r#"
[defaults]
level = "open"
data_type = "thematic"
kind = "characteristic"
concept = "Infrastructure"
domain = "ict"
insight = "operational"
jurisdiction = "US"

[[rules]]
keyword = "crime"
[rules.set]
kind = "status"
concept = "Event"

[[rules]]
title = "bicycle"
[rules.set]
domain = "transport"
"#;

#[test]
fn seattle_catalogue_imports_spreads_and_round_trips_through_the_cli() {
    let Some(file) = seattle() else { return };
    let file = file.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("seattle");
    let b = dir.path().join("peer");
    ok(
        &a,
        &["init", "--name", "City of Seattle", "--jurisdiction", "US"],
    );
    ok(
        &b,
        &["init", "--name", "Peer agency", "--jurisdiction", "US"],
    );
    let _node_a = start(&a, None);
    let _node_b = start(&b, Some(&listen_addr(&a)));
    wait_until("the nodes to connect", || {
        json_lines(&ok(&b, &["--json", "peers"])).len() == 1
    });

    // Without a mapping nothing is signed: every record is listed as unconfirmed.
    let lines = outcomes(&a, &[file]);
    assert_eq!(lines.len(), 169);
    assert_eq!(count(&lines, "unconfirmed"), 169);
    assert!(catalogue(&a).is_empty());

    // A mapping whose values break a rule refuses every record, and the import fails (exit
    // status 1) so that scripts notice; nothing is signed.
    let bad = dir.path().join("bad-mapping.toml");
    std::fs::write(
        &bad,
        MAPPING.replace("level = \"open\"", "level = \"public\""),
    )
    .unwrap();
    let err = fails(
        &a,
        &[
            "catalogue",
            "import",
            file,
            "--mapping",
            bad.to_str().unwrap(),
        ],
    );
    assert!(err.contains("169 of 169 records refused"), "{err}");
    assert!(catalogue(&a).is_empty());

    // A dry run with the mapping signs nothing either but says what would happen.
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, MAPPING).unwrap();
    let m = mapping.to_str().unwrap();
    let lines = outcomes(&a, &[file, "--mapping", m, "--dry-run"]);
    assert_eq!(
        count(&lines, "would-create"),
        169,
        "{:?}",
        lines.iter().find(|l| l["outcome"] != "would-create")
    );
    assert!(catalogue(&a).is_empty());

    // For real: 169 entries, reference-only, announced to the peer.
    let lines = outcomes(&a, &[file, "--mapping", m]);
    assert_eq!(count(&lines, "created"), 169);
    assert_eq!(catalogue(&a).len(), 169);
    wait_until("all 169 entries at the peer", || catalogue(&b).len() == 169);

    // One record, as the second node shows it: title, keywords, distribution URL, and the
    // ISO block the mapping's crime rule chose.
    let crime = lines
        .iter()
        .find(|l| l["source_id"] == "e3zj-s4zh")
        .unwrap();
    let id = crime["dataset"].as_str().unwrap();
    let shown = json(&b, &["catalogue", "show", id]);
    let rec = &shown["record"];
    assert_eq!(
        rec["title"],
        "Seattle Crime Stats by 1990 Census Tract 1996-2007"
    );
    assert_eq!(
        rec["keywords"],
        serde_json::json!(["crime", "violent", "seattle"])
    );
    assert_eq!(rec["iso"]["kind"], "status");
    assert_eq!(rec["iso"]["concept"], "Event");
    assert_eq!(rec["publisher"]["name"], "City of Seattle");
    assert!(rec["distributions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["access_url"]
            == "https://data.seattle.gov/api/views/e3zj-s4zh/rows.csv?accessType=DOWNLOAD"));

    // A reference-only dataset cannot be fetched over cix; the error says where it is.
    let out = dir.path().join("crime.csv");
    let err = fails(&b, &["fetch", id, "-o", out.to_str().unwrap()]);
    assert!(
        err.contains("published by reference only: get it from https://data.seattle.gov/"),
        "{err}"
    );
    assert!(!out.exists());
    let err = fails(&b, &["request", id, "--purpose", "planning"]);
    assert!(err.contains("published by reference only"), "{err}");

    // The same file again changes nothing.
    let lines = outcomes(&a, &[file, "--mapping", m]);
    assert_eq!(count(&lines, "unchanged"), 169);

    // A file this node publishes itself joins the export: re-importing the export must land
    // on that same dataset (its urn:cix: name), not on a copy.
    let weather = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/datasets/environment/seattle-weather.csv");
    let own = json(
        &a,
        &[
            "publish",
            weather.to_str().unwrap(),
            "--title",
            "Seattle daily weather",
            "--spectrum",
            "open",
        ],
    );
    let own_id = own["dataset"].as_str().unwrap().to_string();
    let listed_before = catalogue(&a).len();

    // Export in every format, import back: every entry comes back identical (unchanged).
    for format in ["dcat-ap-turtle", "dcat-ap-jsonld", "data-json"] {
        let path = dir.path().join(format!("export.{format}"));
        let v = json(
            &a,
            &[
                "catalogue",
                "export",
                "--format",
                format,
                "-o",
                path.to_str().unwrap(),
            ],
        );
        assert_eq!(v["entries"], 170, "{format}");
        let lines = outcomes(&a, &[path.to_str().unwrap(), "--accept-stated"]);
        let unchanged = count(&lines, "unchanged");
        let mine = lines
            .iter()
            .find(|l| l["title"] == "Seattle daily weather")
            .unwrap_or_else(|| panic!("{format}: the published file is not in the export"));
        assert_eq!(mine["outcome"], "unchanged", "{format}: {mine}");
        assert_eq!(mine["dataset"].as_str(), Some(own_id.as_str()), "{format}");
        assert_eq!(catalogue(&a).len(), listed_before, "{format}: no copies");
        assert_eq!(
            unchanged,
            170,
            "{format}: {:?}",
            lines
                .iter()
                .find(|l| l["outcome"] != "unchanged" && l["outcome"] != "skipped")
        );
    }

    // Drafts: written, then imported as the operator's confirmation.
    let drafts = dir.path().join("drafts.json");
    ok(
        &a,
        &[
            "catalogue",
            "import",
            file,
            "--mapping",
            m,
            "--drafts",
            drafts.to_str().unwrap(),
        ],
    );
    let lines = outcomes(&a, &[drafts.to_str().unwrap()]);
    assert_eq!(count(&lines, "unchanged"), 169);

    // A changed record becomes version 2 of the same dataset.
    let mut raw: Vec<Value> = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    raw[1]["title"] = Value::from("Seattle Crime Stats, corrected");
    let edited = dir.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_vec(&raw).unwrap()).unwrap();
    let lines = outcomes(&a, &[edited.to_str().unwrap(), "--mapping", m]);
    assert_eq!(count(&lines, "unchanged"), 168);
    let up = lines.iter().find(|l| l["outcome"] == "updated").unwrap();
    assert_eq!(up["dataset"].as_str(), Some(id));
    assert_eq!(up["version"], 2);
}
