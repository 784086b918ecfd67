//! Permitted fields through the command line (ISO 37156 8.2.2 c, 7.1): the owner's
//! `cix grant --fields`, the holder's `cix tokens import` and `cix fetch`, between two
//! `cix node run` processes on 127.0.0.1. The holder receives and reports a projection.

#![allow(clippy::unwrap_used)]

mod common;

use common::{json, listen_addr, ok, start, wait_until};

#[test]
fn grant_with_fields_gives_the_holder_a_projection_it_verifies_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let owner = dir.path().join("water");
    let holder = dir.path().join("planning");
    json(
        &owner,
        &["init", "--name", "Water Board", "--jurisdiction", "NL"],
    );
    let holder_did = json(
        &holder,
        &["init", "--name", "Planning Office", "--jurisdiction", "NL"],
    )["did"]
        .as_str()
        .unwrap()
        .to_string();
    let _o = start(&owner, None);
    let _h = start(&holder, Some(&listen_addr(&owner)));

    let data = dir.path().join("meters.csv");
    std::fs::write(
        &data,
        "meter,street,volume (m3)\nM1,\"Kade 1, west\",4.1\nM2,Dijk 9,3.7\n",
    )
    .unwrap();
    let id = ok(
        &owner,
        &[
            "publish",
            data.to_str().unwrap(),
            "--title",
            "Meter volumes",
            "--spectrum",
            "shared-named",
        ],
    )
    .trim()
    .to_string();
    wait_until("the entry at the holder", || {
        ok(&holder, &["--json", "catalogue", "list"]).contains(&id)
    });

    // A field the dictionary lacks: refused at grant time, naming it and the known ones.
    let out = common::cix(
        &owner,
        &["grant", &id, "--to", &holder_did, "--fields", "meter,owner"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"owner\"") && err.contains("meter, street, volume"),
        "{err}"
    );

    // Granted on two fields; the chain handed over as files.
    let chain = dir.path().join("chain");
    let text = ok(
        &owner,
        &[
            "grant",
            &id,
            "--to",
            &holder_did,
            "--fields",
            "volume,meter",
            "--out",
            chain.to_str().unwrap(),
        ],
    );
    assert!(text.contains("fields limited to meter, volume"), "{text}");
    let mut files: Vec<String> = std::fs::read_dir(&chain)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort();
    let mut args = vec!["tokens", "import"];
    args.extend(files.iter().map(String::as_str));
    ok(&holder, &args);

    // Fetched: only those columns, reported as a projection with its own BLAKE3.
    let out = dir.path().join("projection.csv");
    let done = json(&holder, &["fetch", &id, "-o", out.to_str().unwrap()]);
    let written = std::fs::read(&out).unwrap();
    assert_eq!(written, b"meter,volume (m3)\nM1,4.1\nM2,3.7\n".to_vec());
    assert_eq!(
        done["projection"]["fields"],
        serde_json::json!(["meter", "volume"])
    );
    assert_eq!(
        done["content_hash"],
        blake3::hash(&written).to_hex().to_string()
    );
    let human = ok(&holder, &["fetch", &id, "-o", out.to_str().unwrap()]);
    assert!(
        human.contains("projection on the fields meter, volume"),
        "{human}"
    );
}
