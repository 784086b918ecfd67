//! `cix rights ...` and `cix complaints ...` (ISO 37156 8.3.5, 8.3.6) through the real binary
//! and two `cix node run` children on loopback.

#![allow(clippy::unwrap_used)]

mod common;

use common::{fails, json, json_lines, listen_addr, ok, start, wait_until};

#[test]
fn iso_37156_8_3_5_rights_and_complaints_through_the_cli() {
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
    let did_b = json(&b, &["status"])["did"].as_str().unwrap().to_string();
    let file = dir.path().join("flow.csv");
    std::fs::write(&file, "time,flow\n2024-01-01T00:00:00Z,5\n").unwrap();
    let published = json(
        &a,
        &[
            "publish",
            file.to_str().unwrap(),
            "--title",
            "Flow",
            "--spectrum",
            "open",
        ],
    );
    let id = published["dataset"].as_str().unwrap().to_string();
    wait_until("the entry to reach B", || {
        ok(&b, &["--json", "catalogue", "list"]).contains(&id)
    });
    let got = dir.path().join("got.csv");
    json(&b, &["fetch", &id, "-o", got.to_str().unwrap()]);

    // Bad input is refused with the reason.
    assert!(fails(
        &a,
        &["rights", "new", "--kind", "deletion", "--dataset", &id]
    )
    .contains("not a kind of request"));
    assert!(fails(
        &a,
        &[
            "rights",
            "new",
            "--kind",
            "access",
            "--dataset",
            "ffffffffff"
        ]
    )
    .contains("no dataset"));

    let case = json(
        &a,
        &[
            "rights",
            "new",
            "--kind",
            "erasure",
            "--dataset",
            &id,
            "--subject-ref",
            "R-77",
            "--summary",
            "erase one meter's rows",
            "--deadline-days",
            "30",
        ],
    );
    let case_id = case["id"].as_str().unwrap().to_string();
    assert_eq!(case["recipients"][0]["agency"], did_b.as_str());
    assert_eq!(case["recipients"][0]["delivered"], true);
    assert_eq!(case["status"], "open");
    assert!(case["subject"].as_str().unwrap().len() == 64);
    assert!(!case.to_string().contains("R-77"));
    let at_b = json_lines(&ok(&b, &["--json", "rights", "list"]));
    assert_eq!(at_b.len(), 1);
    assert_eq!(at_b[0]["role"], "received");
    assert!(
        fails(&a, &["rights", "answer", &case_id, "--outcome", "done"]).contains("recorded here")
    );
    ok(
        &b,
        &[
            "rights",
            "answer",
            &case_id[..10],
            "--outcome",
            "partly",
            "--text",
            "one row kept by law",
        ],
    );
    let shown = json(&a, &["rights", "show", &case_id]);
    assert_eq!(shown["status"], "answered");
    assert_eq!(shown["recipients"][0]["outcome"], "partly");
    let text = ok(&a, &["rights", "show", &case_id]);
    assert!(text.contains("partly: one row kept by law"), "{text}");

    // ISO 37156 8.3.6: complaint, answer, appeal, decision.
    let c = json(
        &a,
        &[
            "complaints",
            "new",
            "--dataset",
            &id,
            "--summary",
            "kept too long",
        ],
    );
    let cid = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["class"], "complaint");
    ok(
        &b,
        &[
            "complaints",
            "answer",
            &cid,
            "--outcome",
            "refused",
            "--text",
            "within retention",
        ],
    );
    let appealed = json(
        &a,
        &[
            "complaints",
            "appeal",
            &cid,
            "--text",
            "retention was exceeded",
        ],
    );
    assert_eq!(appealed["status"], "appealed");
    let decided = json(
        &a,
        &[
            "complaints",
            "decide",
            &cid,
            "--outcome",
            "upheld",
            "--text",
            "delete it",
        ],
    );
    assert_eq!(decided["status"], "decided");
    wait_until("B to hold the decision", || {
        json(&b, &["complaints", "show", &cid])["status"] == "decided"
    });
    assert_eq!(
        json_lines(&ok(&a, &["--json", "complaints", "list"])).len(),
        1
    );
    let audit = ok(&a, &["--json", "audit", "log"]);
    for step in ["recorded", "forwarded", "answered", "appealed", "decided"] {
        assert!(audit.contains(step), "{step}");
    }
    assert!(!audit.contains("R-77") && !audit.contains("erase one meter"));
}
