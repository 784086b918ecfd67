//! `cix publish --dataset`, `cix catalogue history` and `cix catalogue withdraw` through the
//! command line, on two real nodes (ISO 37156 4.2 g).

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, json, json_lines, listen_addr, ok, start, wait_until};

#[test]
fn versions_history_and_withdrawal_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("water");
    let b = dir.path().join("roads");
    ok(&a, &["init", "--name", "Water Board"]);
    ok(&b, &["init", "--name", "Roads Office"]);
    let _na = start(&a, None);
    let _nb = start(&b, Some(&listen_addr(&a)));
    wait_until("the nodes to connect", || {
        json_lines(&ok(&b, &["--json", "peers"])).len() == 1
    });
    let csv = |name: &str, rows: usize| {
        let mut s = String::from("time,flow\n");
        for i in 0..rows {
            s.push_str(&format!("2024-01-01T{:02}:00:00Z,{i}\n", i % 24));
        }
        let p = dir.path().join(name);
        std::fs::write(&p, s).unwrap();
        p
    };
    let v1 = csv("v1.csv", 10);
    let v2 = csv("v2.csv", 20);
    let id = ok(
        &a,
        &[
            "publish",
            v1.to_str().unwrap(),
            "--title",
            "Flow",
            "--spectrum",
            "open",
        ],
    );
    let id = id.trim().to_string();
    let second = json(
        &a,
        &[
            "publish",
            v2.to_str().unwrap(),
            "--title",
            "Flow",
            "--spectrum",
            "open",
            "--dataset",
            &id,
        ],
    );
    assert_eq!(second["dataset"], id.as_str());
    assert_eq!(second["version"], 2);
    // The peer lists the newest version only; history on both nodes has both.
    wait_until("the second version to reach the peer", || {
        json_lines(&ok(&b, &["--json", "catalogue", "list"]))
            .iter()
            .any(|l| l["dataset"] == id.as_str() && l["version"] == 2)
    });
    let history = json_lines(&ok(&a, &["--json", "catalogue", "history", &id]));
    let versions: Vec<u64> = history
        .iter()
        .filter(|l| l["kind"] == "version")
        .map(|l| l["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2]);
    assert!(history
        .iter()
        .all(|l| l["content_hash"].is_string() || l["kind"] != "version"));

    // Only the publisher may withdraw.
    assert!(fails(&b, &["catalogue", "withdraw", &id]).contains("only its publisher"));
    let w = json(
        &a,
        &["catalogue", "withdraw", &id, "--reason", "meter replaced"],
    );
    assert_eq!(w["version"], 2);
    wait_until("the withdrawal to empty the peer's listing", || {
        !ok(&b, &["--json", "catalogue", "list"]).contains(&id)
    });
    assert!(!ok(&a, &["--json", "catalogue", "list"]).contains(&id));
    let text = ok(&b, &["catalogue", "history", &id]);
    assert!(text.contains("withdrawn up to version 2"), "{text}");
    assert!(text.contains("meter replaced"), "{text}");
    // The owner refuses to serve it.
    let out = dir.path().join("flow.csv");
    let err = fails(&b, &["fetch", &id, "-o", out.to_str().unwrap()]);
    assert!(err.contains("withdrew"), "{err}");
    assert!(!out.exists());
}

/// ISO 37156 4.2 g: a new version describes the same data unless its publisher restates
/// something, so `cix publish NEW --dataset ID` alone keeps the title, spectrum, description,
/// coverage, classification and dictionary units of the previous version; a restated key wins.
#[test]
fn a_new_version_keeps_what_it_does_not_restate() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("water");
    ok(&a, &["init", "--name", "Water Board"]);
    let _na = start(&a, None);
    let csv = |name: &str, rows: usize| {
        let mut s = String::from("time,flow (m3/h)\n");
        for i in 0..rows {
            s.push_str(&format!("2024-01-01T{:02}:00:00Z,{i}\n", i % 24));
        }
        let p = dir.path().join(name);
        std::fs::write(&p, s).unwrap();
        p
    };
    let meta = dir.path().join("flow.toml");
    std::fs::write(
        &meta,
        "description = \"Hourly flow at the intake\"\nkeywords = [\"flow\", \"intake\"]\n\
         licence = \"CC-BY-4.0\"\nbbox = [-73.6, 45.4, -73.5, 45.6]\ndomain = \"water\"\n\
         kind = \"supply\"\nquality = \"Checked weekly\"\n\
         [fields.time]\ndescription = \"Start of the hour\"\n",
    )
    .unwrap();
    let v1 = csv("v1.csv", 10);
    let first = json(
        &a,
        &[
            "publish",
            v1.to_str().unwrap(),
            "--title",
            "Intake flow",
            "--spectrum",
            "shared-named",
            "--meta",
            meta.to_str().unwrap(),
        ],
    );
    let id = first["dataset"].as_str().unwrap().to_string();
    let show = |home: &std::path::Path| json(home, &["catalogue", "show", &id])["record"].clone();
    let before = show(&a);
    for key in ["spatial", "licence", "keywords"] {
        assert!(!before[key].is_null(), "{key} is set in version 1");
    }

    // No title, no spectrum, no metadata file: everything carries over.
    let v2 = csv("v2.csv", 20);
    let second = json(&a, &["publish", v2.to_str().unwrap(), "--dataset", &id]);
    assert_eq!(second["version"], 2);
    assert_eq!(second["spectrum"], "shared-named");
    let after = show(&a);
    for key in ["title", "description", "keywords", "licence", "spatial"] {
        assert_eq!(after[key], before[key], "{key} carries over");
    }
    for key in ["domain", "kind", "spectrum", "access", "quality", "privacy"] {
        assert_eq!(
            after["iso"][key], before["iso"][key],
            "iso.{key} carries over"
        );
    }
    let field = |r: &serde_json::Value, name: &str| {
        r["iso"]["dictionary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(field(&after, "time")["description"], "Start of the hour");
    assert_eq!(field(&after, "flow")["unit"], "m3/h");
    assert_ne!(
        after["distributions"], before["distributions"],
        "the new file"
    );

    // What a version restates wins; a key present but empty clears.
    let changed = dir.path().join("changed.toml");
    std::fs::write(&changed, "keywords = []\ndomain = \"energy\"\n").unwrap();
    let v3 = csv("v3.csv", 30);
    json(
        &a,
        &[
            "publish",
            v3.to_str().unwrap(),
            "--dataset",
            &id,
            "--title",
            "Intake flow, recalibrated",
            "--meta",
            changed.to_str().unwrap(),
        ],
    );
    let third = show(&a);
    assert_eq!(third["title"], "Intake flow, recalibrated");
    assert_eq!(third["keywords"], serde_json::json!([]));
    assert_eq!(third["iso"]["domain"], "energy");
    assert_eq!(third["description"], before["description"]);
    assert_eq!(third["iso"]["spectrum"], before["iso"]["spectrum"]);
}

/// ISO 37156 5.5.2: closed data is never announced. A closed new version takes the earlier,
/// announced versions off the peers' listings; withdrawing a dataset that was closed in every
/// version tells nobody.
#[test]
fn closing_a_dataset_takes_it_off_peers_and_closed_withdrawals_stay_home() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("water");
    let b = dir.path().join("roads");
    ok(&a, &["init", "--name", "Water Board"]);
    ok(&b, &["init", "--name", "Roads Office"]);
    let _na = start(&a, None);
    let _nb = start(&b, Some(&listen_addr(&a)));
    wait_until("the nodes to connect", || {
        json_lines(&ok(&b, &["--json", "peers"])).len() == 1
    });
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let listed = |home: &std::path::Path, id: &str| {
        json_lines(&ok(home, &["--json", "catalogue", "list"]))
            .iter()
            .any(|l| l["dataset"] == id)
    };
    // Publishes FILE with TEXT as TITLE (open) on the water node; returns the dataset id.
    let publish_open = |name: &str, text: &str, title: &str| {
        let p = file(name, text);
        let v = json(
            &a,
            &[
                "publish",
                p.to_str().unwrap(),
                "--title",
                title,
                "--spectrum",
                "open",
            ],
        );
        v["dataset"].as_str().unwrap().to_string()
    };
    let id = publish_open("v1.csv", "time,flow\n2024-01-01T00:00:00Z,1\n", "Flow");
    wait_until("the open version to reach the peer", || listed(&b, &id));

    let v2 = file("v2.csv", "time,flow\n2024-01-01T00:00:00Z,2\n");
    let closed = json(
        &a,
        &[
            "publish",
            v2.to_str().unwrap(),
            "--dataset",
            &id,
            "--spectrum",
            "closed",
        ],
    );
    assert_eq!(closed["spectrum"], "closed");
    assert_eq!(closed["announced_to"], 0);
    wait_until("the peer to drop the dataset", || !listed(&b, &id));
    assert!(listed(&a, &id), "the owner still lists its closed version");
    let history = json_lines(&ok(&b, &["--json", "catalogue", "history", &id]));
    assert!(
        history
            .iter()
            .all(|l| l["kind"] != "version" || l["version"] == 1),
        "the closed version never reached the peer: {history:?}"
    );

    // A dataset closed from the start: its withdrawal is not gossiped.
    let secret = file("secret.csv", "a,b\n1,2\n");
    let secret = ok(
        &a,
        &[
            "publish",
            secret.to_str().unwrap(),
            "--title",
            "Valve settings",
            "--spectrum",
            "closed",
        ],
    );
    let secret = secret.trim().to_string();
    let w = json(
        &a,
        &["catalogue", "withdraw", &secret, "--reason", "retired"],
    );
    assert_eq!(w["announced_to"], 0, "{w}");
    // Something later does reach the peer, so the silence above is not a slow network.
    let later = publish_open("later.csv", "time,flow\n2024-01-02T00:00:00Z,3\n", "Later");
    wait_until("a later open dataset to reach the peer", || {
        listed(&b, &later)
    });
    let seen = fails(&b, &["catalogue", "history", &secret]);
    assert!(!seen.contains("retired"), "{seen}");
}
