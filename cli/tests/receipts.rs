//! `cix receipts` and `cix privacy` through the command line (ISO 37156 8.3.4, 8.3.3): two
//! `cix node run` processes on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, json, json_lines, listen_addr, ok, start, wait_until};

const NOTICE: &str = r#"controller = "City Power, Data Protection Office"
purposes = ["grid operation", "outage planning"]
third_parties = "agencies holding a signed grant"
rights = "access, rectification and erasure: write to the contact below"
cross_border = "none"
contact = "privacy@power.example"
url = "https://power.example/privacy"
"#;

#[test]
fn receipts_are_listed_shown_and_verified_and_notices_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("power");
    let b = dir.path().join("transit");
    let notice = dir.path().join("notice.toml");
    std::fs::write(&notice, NOTICE).unwrap();
    ok(
        &a,
        &[
            "init",
            "--name",
            "City Power",
            "--privacy",
            notice.to_str().unwrap(),
        ],
    );
    ok(&b, &["init", "--name", "Transit Authority"]);
    // A notice missing a field is refused, naming it.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, NOTICE.replace("rights = ", "rites = ")).unwrap();
    let err = fails(&b, &["privacy", "set", bad.to_str().unwrap()]);
    assert!(err.contains("rights"), "{err}");

    let _node_a = start(&a, None);
    let _node_b = start(&b, Some(&listen_addr(&a)));
    wait_until("the nodes to connect", || {
        json_lines(&ok(&b, &["--json", "peers"])).len() == 1
    });

    // Own notice and the peer's, the same.
    let mine = json(&a, &["privacy", "notice"]);
    assert_eq!(
        mine["notice"]["controller"],
        "City Power, Data Protection Office"
    );
    let did = mine["did"].as_str().unwrap().to_string();
    let theirs = json(&b, &["privacy", "notice", &did]);
    assert_eq!(theirs["hash"], mine["hash"]);
    assert!(ok(&b, &["privacy", "notice", &did]).contains("outage planning"));
    assert!(ok(&b, &["privacy", "notice"]).contains("has no privacy notice"));

    let csv = dir.path().join("load.csv");
    std::fs::write(&csv, "date,load_mw\n2024-03-01,12\n2024-03-02,14\n").unwrap();
    let id = ok(
        &a,
        &[
            "publish",
            csv.to_str().unwrap(),
            "--title",
            "Load",
            "--spectrum",
            "open",
        ],
    );
    let id = id.trim().to_string();
    wait_until("the entry to reach the reader", || {
        json_lines(&ok(&b, &["--json", "catalogue", "list"]))
            .iter()
            .any(|e| e["dataset"] == id.as_str())
    });
    let out = dir.path().join("copy.csv");
    ok(&b, &["fetch", &id, "-o", out.to_str().unwrap()]);

    let rb = json_lines(&ok(&b, &["--json", "receipts", "list"]));
    let ra = json_lines(&ok(&a, &["--json", "receipts", "list"]));
    assert_eq!((rb.len(), ra.len()), (1, 1));
    assert_eq!(rb[0]["id"], ra[0]["id"]);
    assert_eq!(rb[0]["status"], "countersigned");
    assert_eq!(rb[0]["bytes"], std::fs::metadata(&csv).unwrap().len());
    let rid = rb[0]["id"].as_str().unwrap().to_string();
    let file = dir.path().join("receipt.cbor");
    let shown = json(
        &b,
        &[
            "receipts",
            "show",
            &rid[..10],
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(shown["role"], "receiver");
    assert!(ok(&a, &["receipts", "show", &rid]).contains("provider"));

    // A receipt file verifies with no node and no home; a changed byte does not.
    let nowhere = dir.path().join("no-such-home");
    let v = json(&nowhere, &["receipts", "verify", file.to_str().unwrap()]);
    assert_eq!(
        (v["valid"].as_bool(), v["countersigned"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(v["id"], rid.as_str());
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x04;
    let tampered = dir.path().join("tampered.cbor");
    std::fs::write(&tampered, bytes).unwrap();
    let err = fails(
        &nowhere,
        &["receipts", "verify", tampered.to_str().unwrap()],
    );
    assert!(err.contains("does not verify"), "{err}");
    // By id, on both nodes.
    assert!(ok(&a, &["receipts", "verify", &rid]).contains("counter-signed by its provider"));
    let err = fails(&a, &["receipts", "verify", "ffffffff"]);
    assert!(err.contains("no receipt"), "{err}");
    // Open data has no retention: nothing held, nothing deleted.
    assert!(ok(&b, &["receipts", "retention"]).contains("no data held"));
    assert!(ok(&b, &["receipts", "deletions"]).contains("no deletion notices"));
}
