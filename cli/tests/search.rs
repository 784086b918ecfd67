//! `cix search` against running nodes: one agency publishes real datasets from
//! `../shared/data/datasets/`, its peer finds them by words, ISO 37156 facets, bounding box and
//! time range, through the command line only.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{cix, json, json_lines, listen_addr, ok, start, wait_until};
use serde_json::Value;

fn data(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/datasets")
        .join(rel);
    assert!(p.is_file(), "missing real dataset {}", p.display());
    p.to_str().unwrap().to_string()
}

/// Publishes `file` with the metadata `meta` (TOML); returns the dataset id.
fn publish(home: &Path, dir: &Path, file: &str, spectrum: &str, meta: &str) -> String {
    let name = format!("meta-{}.toml", blake3::hash(meta.as_bytes()).to_hex());
    let path = dir.join(name);
    std::fs::write(&path, meta).unwrap();
    ok(
        home,
        &[
            "publish",
            &data(file),
            "--spectrum",
            spectrum,
            "--meta",
            path.to_str().unwrap(),
        ],
    )
    .trim()
    .to_string()
}

fn search(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    json(home, &all)
}

fn titles(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["title"].as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Exit code 2 and the message on stderr.
fn usage_error(home: &Path, args: &[&str]) -> String {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    let out = cix(home, &all);
    assert_eq!(out.status.code(), Some(2), "cix {all:?} is a usage error");
    String::from_utf8(out.stderr).unwrap()
}

const WEATHER: &str = r#"
title = "Seattle daily weather"
description = "Daily precipitation, temperature and wind observed in Seattle"
keywords = ["weather", "rain", "climate"]
licence = "CC0-1.0"
bbox = [-122.44, 47.49, -122.23, 47.73]
temporal_start = "2012-01-01"
temporal_end = "2015-12-31"
domain = "water"
kind = "status"
data_type = "thematic"
insight = "operational"
"#;

const CARSHARE: &str = r#"
title = "Montreal carshare usage"
description = "Car hours and peak hour of shared cars by neighbourhood centroid"
keywords = ["carshare", "mobility"]
licence = "ODbL-1.0"
bbox = [-73.98, 45.41, -73.47, 45.70]
domain = "transport"
kind = "usage"
data_type = "thematic"
insight = "analytical"
"#;

const IOWA: &str = r#"
title = "Iowa electricity generation by source"
description = "Net generation per year from fossil fuels, nuclear and renewables"
keywords = ["electricity", "generation", "renewables"]
licence = "CC-BY-4.0"
bbox = [-96.64, 40.37, -90.14, 43.50]
temporal_start = "2001-01-01"
temporal_end = "2017-12-31"
domain = "energy"
kind = "production"
data_type = "thematic"
insight = "strategic"
"#;

const BIKESHARE: &str = r#"
title = "Capital Bikeshare hourly rentals 2011"
description = "Bike rentals per hour in Washington DC, with the weather at the time"
keywords = ["bikeshare", "cycling"]
licence = "CC-BY-4.0"
bbox = [-77.12, 38.79, -76.91, 38.99]
temporal_start = "2011-01-01"
temporal_end = "2011-12-31"
domain = "transport"
kind = "movement"
data_type = "thematic"
insight = "operational"
"#;

const AIRPORTS: &str = r#"
title = "Airports reference list"
description = "Airports with their codes and locations"
keywords = ["aviation"]
domain = "transport"
kind = "characteristic"
data_type = "reference"
"#;

#[test]
fn a_peer_finds_real_datasets_by_words_facets_box_and_time() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/datasets");
    if !shared.is_dir() {
        eprintln!("skipping: {} is absent", shared.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("city");
    let b = dir.path().join("region");
    ok(
        &a,
        &["init", "--name", "City Data Office", "--jurisdiction", "US"],
    );
    ok(
        &b,
        &[
            "init",
            "--name",
            "Regional Planning",
            "--jurisdiction",
            "US",
        ],
    );
    let _node_a = start(&a, None);
    let mut node_b = start(&b, Some(&listen_addr(&a)));
    wait_until("the nodes to connect", || {
        json_lines(&ok(&b, &["--json", "peers"])).len() == 1
    });

    let weather = publish(
        &a,
        dir.path(),
        "environment/seattle-weather.csv",
        "open",
        WEATHER,
    );
    let carshare = publish(
        &a,
        dir.path(),
        "transport/montreal-carshare.csv",
        "open",
        CARSHARE,
    );
    let iowa = publish(&a, dir.path(), "energy/iowa-electricity.csv", "open", IOWA);
    let bike = publish(
        &a,
        dir.path(),
        "transport/capital-bikeshare-2011-hourly.csv",
        "shared-named",
        BIKESHARE,
    );
    let airports = publish(&a, dir.path(), "transport/airports.csv", "closed", AIRPORTS);
    assert_eq!(
        weather.len(),
        32,
        "publish prints the dataset id: {weather:?}"
    );

    // The publisher's own search sees all five, closed included, as soon as it published.
    let own = search(&a, &["--domain", "transport"]);
    assert_eq!(own["total"], 3);
    assert_eq!(own["facets"]["spectrum"]["closed"], 1);
    let r = search(&a, &["aviation"]);
    assert_eq!(r["hits"][0]["dataset"], airports.as_str());
    assert_eq!(r["hits"][0]["level"], "closed");

    wait_until("the four announced entries at the peer", || {
        search(&b, &[])["total"] == 4
    });

    // Words: the title hit ranks first; a description hit also matches.
    let r = search(&b, &["weather"]);
    assert_eq!(
        titles(&r),
        [
            "Seattle daily weather",
            "Capital Bikeshare hourly rentals 2011"
        ]
    );
    let top = &r["hits"][0];
    assert_eq!(top["dataset"], weather.as_str());
    assert_eq!(top["publisher"], "City Data Office");
    assert_eq!(top["level"], "open");
    assert_eq!(top["entry"].as_str().unwrap().len(), 64);
    assert!(top["score"].as_f64().unwrap() > r["hits"][1]["score"].as_f64().unwrap());
    assert_eq!(top["matched"]["words"], serde_json::json!(["weather"]));
    // Case, plural and prefix: "RENTAL" finds "rentals", "elec" finds "electricity".
    assert_eq!(
        titles(&search(&b, &["RENTAL"])),
        ["Capital Bikeshare hourly rentals 2011"]
    );
    assert_eq!(
        titles(&search(&b, &["elec"]))[0],
        "Iowa electricity generation by source"
    );
    assert_eq!(
        search(&b, &["weather", "bike"])["total"],
        1,
        "every word must match"
    );

    // Facets, alone and combined.
    let r = search(&b, &["--domain", "transport"]);
    assert_eq!(
        sorted(titles(&r)),
        [
            "Capital Bikeshare hourly rentals 2011",
            "Montreal carshare usage"
        ]
    );
    assert_eq!(r["facets"]["domain"]["transport"], 2);
    assert_eq!(r["facets"]["kind"]["movement"], 1);
    assert_eq!(r["hits"][0]["matched"]["domain"], "transport");
    assert_eq!(
        titles(&search(&b, &["--spectrum", "shared-named"])),
        ["Capital Bikeshare hourly rentals 2011"]
    );
    assert_eq!(
        titles(&search(
            &b,
            &["--kind", "production", "--insight", "strategic"]
        )),
        ["Iowa electricity generation by source"]
    );
    assert_eq!(search(&b, &["--licence", "cc-by-4.0"])["total"], 2);
    assert_eq!(search(&b, &["--publisher", "city data office"])["total"], 4);
    let did_a = json(&a, &["status"])["did"].as_str().unwrap().to_string();
    assert_eq!(search(&b, &["--publisher", &did_a])["total"], 4);
    assert_eq!(search(&b, &["--publisher", "Someone Else"])["total"], 0);
    assert_eq!(
        search(&b, &["--data-type", "reference"])["total"],
        0,
        "the closed one stays home"
    );
    let r = search(&b, &["--domain", "energy", "--domain", "water"]);
    assert_eq!(
        sorted(vec![
            r["hits"][0]["dataset"].as_str().unwrap().into(),
            r["hits"][1]["dataset"].as_str().unwrap().into()
        ]),
        sorted(vec![iowa.clone(), weather.clone()])
    );

    // Bounding box (negative numbers need no `=`), and a time range with open ends.
    assert_eq!(
        titles(&search(&b, &["--bbox", "-74.0,45.0,-73.0,46.0"])),
        ["Montreal carshare usage"]
    );
    assert_eq!(search(&b, &["--bbox", "-130,24,-60,50"])["total"], 4);
    assert_eq!(
        sorted(titles(&search(
            &b,
            &["--from", "2011-06-01", "--to", "2011-06-30"]
        ))),
        [
            "Capital Bikeshare hourly rentals 2011",
            "Iowa electricity generation by source"
        ]
    );
    assert_eq!(
        sorted(titles(&search(&b, &["--from", "2016-01-01"]))),
        ["Iowa electricity generation by source"]
    );
    let r = search(&b, &["--to", "2000-12-31"]);
    assert_eq!(
        r["total"], 0,
        "no coverage before 2001, and carshare states none"
    );

    // Limit: the best shown, every match counted.
    let r = search(&b, &["--limit", "1"]);
    assert_eq!(r["hits"].as_array().unwrap().len(), 1);
    assert_eq!(r["total"], 4);
    assert_eq!(r["facets"]["publisher"]["City Data Office"], 4);

    // People get a table and the facet summary.
    let text = ok(&b, &["search", "--domain", "transport"]);
    assert!(text.contains(&carshare), "{text}");
    assert!(text.contains(&bike), "{text}");
    assert!(text.contains("2 matching dataset(s)"), "{text}");
    assert!(
        text.contains("domain") && text.contains("transport 2"),
        "{text}"
    );
    assert!(ok(&b, &["search", "zeppelin"]).contains("no matching datasets"));

    // Bad flag values are usage errors naming what was wrong.
    assert!(usage_error(&b, &["--domain", "gas"]).contains("gas"));
    assert!(usage_error(&b, &["--spectrum", "public"]).contains("public"));
    assert!(usage_error(&b, &["--bbox", "1,2,3"]).contains("W,S,E,N"));
    assert!(usage_error(&b, &["--bbox", "10,50,20,40"]).contains("south"));
    assert!(usage_error(&b, &["--from", "last week"]).contains("RFC 3339"));
    assert!(usage_error(&b, &["--from", "2020-01-01", "--to", "2019-01-01"]).contains("after"));
    assert!(usage_error(&b, &["--limit", "0"]).contains("limit"));

    // The index is rebuilt from the store when the node starts again. Stop it as an operator
    // would (SIGTERM: the node flushes its store and exits), then start it afresh.
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &node_b.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(
        node_b.0.wait().unwrap().success(),
        "the node stops cleanly on SIGTERM"
    );
    std::fs::remove_file(b.join("node.json")).ok();
    node_b = start(&b, None);
    wait_until("the restarted node to answer", || {
        cix(&b, &["--json", "status"]).status.success()
    });
    assert_eq!(search(&b, &[])["total"], 4);
    assert_eq!(
        titles(&search(&b, &["carshare"])),
        ["Montreal carshare usage"]
    );
    drop(node_b);
}
