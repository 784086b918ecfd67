//! Group access through the command line (ISO 37156 5.5.3): a registrar's `cix attest`, the
//! member's `cix request --attestation`, then `cix fetch`, between two `cix node run`
//! processes on 127.0.0.1. The owner is also the registrar it trusts.

#![allow(clippy::unwrap_used)]

mod common;

use common::{json, listen_addr, ok, start, wait_until};

#[test]
fn registrar_attests_membership_and_the_member_gets_group_data() {
    let dir = tempfile::tempdir().unwrap();
    let owner = dir.path().join("water");
    let member = dir.path().join("fire");
    let owner_did = json(
        &owner,
        &["init", "--name", "Water Board", "--jurisdiction", "NL"],
    )["did"]
        .as_str()
        .unwrap()
        .to_string();
    let member_did = json(
        &member,
        &["init", "--name", "Fire Service", "--jurisdiction", "NL"],
    )["did"]
        .as_str()
        .unwrap()
        .to_string();
    // The owner trusts itself as the city's registrar.
    let config = owner.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("trusted_registrars = [\"{owner_did}\"]\n"));
    std::fs::write(&config, text).unwrap();

    let _o = start(&owner, None);
    let _m = start(&member, Some(&listen_addr(&owner)));

    let data = dir.path().join("hydrants.csv");
    std::fs::write(&data, "hydrant,pressure_kpa\nH1,410\nH2,395\n").unwrap();
    let meta = dir.path().join("meta.toml");
    std::fs::write(&meta, "groups = [\"emergency-services\"]\n").unwrap();
    let id = ok(
        &owner,
        &[
            "publish",
            data.to_str().unwrap(),
            "--title",
            "Hydrant pressures",
            "--spectrum",
            "shared-group",
            "--meta",
            meta.to_str().unwrap(),
        ],
    )
    .trim()
    .to_string();
    wait_until("the entry at the member", || {
        ok(&member, &["--json", "catalogue", "list"]).contains(&id)
    });

    // Without an attestation: denied, with the stable code.
    let v = json(&member, &["request", &id, "--purpose", "fire response"]);
    assert_eq!(v["status"], "denied", "{v}");
    assert_eq!(v["code"], "not-in-group", "{v}");

    // An attestation for another group: denied, saying why.
    let wrong = dir.path().join("wrong.attest");
    ok(
        &owner,
        &[
            "attest",
            "--to",
            &member_did,
            "--group",
            "transport-operators",
            "--out",
            wrong.to_str().unwrap(),
        ],
    );
    let v = json(
        &member,
        &[
            "request",
            &id,
            "--purpose",
            "fire response",
            "--attestation",
            wrong.to_str().unwrap(),
        ],
    );
    assert_eq!(v["status"], "denied", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("does not accept"),
        "{v}"
    );

    // The right group: granted, then fetched byte for byte.
    let good = dir.path().join("good.attest");
    let line = json(
        &owner,
        &[
            "attest",
            "--to",
            &member_did,
            "--group",
            "emergency-services",
            "--days",
            "3",
            "--out",
            good.to_str().unwrap(),
        ],
    );
    assert_eq!(line["type"], "attestation");
    assert_eq!(line["subject"], member_did.as_str());
    let v = json(
        &member,
        &[
            "request",
            &id,
            "--purpose",
            "fire response",
            "--attestation",
            good.to_str().unwrap(),
        ],
    );
    assert_eq!(v["status"], "granted", "{v}");
    let out = dir.path().join("copy.csv");
    ok(&member, &["fetch", &id, "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&data).unwrap());

    // A bad --days is refused by the registrar's node with a clear message.
    let out = common::cix(
        &owner,
        &[
            "attest",
            "--to",
            &member_did,
            "--group",
            "emergency-services",
            "--days",
            "0",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--days"));
}
