//! The README's operator guide, run for real: two `cix node run` processes with separate homes
//! on 127.0.0.1, driven only through the `cix` command line.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{cix, fails, json_lines, listen_addr, ok, start, wait_until};
use serde_json::Value;

fn catalogue(home: &Path) -> Vec<Value> {
    json_lines(&ok(home, &["--json", "catalogue", "list"]))
}

fn write_csv(dir: &Path, name: &str, rows: usize) -> PathBuf {
    let mut s = String::from("date,substation,load_mw\n");
    for i in 0..rows {
        s.push_str(&format!(
            "2024-03-{:02},S{},{}\n",
            1 + i % 28,
            i % 13,
            (i * 37) % 500
        ));
    }
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn two_agencies_share_open_named_and_closed_data_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("power");
    let b = dir.path().join("transit");
    ok(
        &a,
        &["init", "--name", "City Power", "--jurisdiction", "US"],
    );
    ok(
        &b,
        &[
            "init",
            "--name",
            "Transit Authority",
            "--jurisdiction",
            "US",
        ],
    );
    // init twice is refused: the key is never overwritten.
    assert!(fails(&a, &["init", "--name", "Again"]).contains("refusing to overwrite"));

    let _node_a = start(&a, None);
    let _node_b = start(&b, Some(&listen_addr(&a)));
    wait_until("the nodes to connect", || {
        json_lines(&ok(&b, &["--json", "peers"])).len() == 1
    });

    let open_csv = write_csv(dir.path(), "load.csv", 5000);
    let closed_csv = write_csv(dir.path(), "billing.csv", 50);
    let named_csv = write_csv(dir.path(), "feeders.csv", 300);
    let open = ok(
        &a,
        &[
            "publish",
            open_csv.to_str().unwrap(),
            "--title",
            "Substation load",
            "--spectrum",
            "open",
        ],
    );
    let open = open.trim().to_string();
    let closed = ok(
        &a,
        &[
            "publish",
            closed_csv.to_str().unwrap(),
            "--title",
            "Billing",
            "--spectrum",
            "closed",
        ],
    )
    .trim()
    .to_string();
    let named = ok(
        &a,
        &[
            "publish",
            named_csv.to_str().unwrap(),
            "--title",
            "Feeder map",
            "--spectrum",
            "shared-named",
        ],
    )
    .trim()
    .to_string();
    assert_eq!(open.len(), 32, "publish prints the dataset id: {open:?}");

    // The open and named entries reach the other node within seconds; the closed one never.
    wait_until("both entries at the peer", || catalogue(&b).len() == 2);
    let lines = catalogue(&b);
    let open_line = lines
        .iter()
        .find(|l| l["dataset"] == open.as_str())
        .expect("open listed");
    for key in [
        "dataset",
        "title",
        "publisher",
        "spectrum",
        "content_hash",
        "bytes",
    ] {
        assert!(!open_line[key].is_null(), "catalogue line lacks {key}");
    }
    let expected = blake3::hash(&std::fs::read(&open_csv).unwrap())
        .to_hex()
        .to_string();
    assert_eq!(open_line["content_hash"], expected.as_str());
    assert_eq!(open_line["publisher"], "City Power");
    assert!(lines.iter().all(|l| l["dataset"] != closed.as_str()));
    assert_eq!(
        catalogue(&a).len(),
        3,
        "the owner lists its closed dataset locally"
    );

    // Open: fetched byte-identical.
    let out = dir.path().join("copy.csv");
    ok(&b, &["fetch", &open[..8], "-o", out.to_str().unwrap()]);
    assert_eq!(
        blake3::hash(&std::fs::read(&out).unwrap())
            .to_hex()
            .to_string(),
        expected
    );

    // Closed: refused with a clear error, nothing written.
    let out = dir.path().join("billing-copy.csv");
    let err = fails(&b, &["fetch", &closed, "-o", out.to_str().unwrap()]);
    assert!(err.contains("closed"), "{err}");
    assert!(!out.exists());

    // Shared-named: only after the owner approves.
    let out = dir.path().join("feeders-copy.csv");
    let err = fails(&b, &["fetch", &named, "-o", out.to_str().unwrap()]);
    assert!(err.contains("cix request"), "{err}");
    let req = json_lines(&ok(
        &b,
        &[
            "--json",
            "request",
            &named,
            "--purpose",
            "bus depot planning",
        ],
    ));
    assert_eq!(req[0]["status"], "pending");
    let err = fails(&b, &["fetch", &named, "-o", out.to_str().unwrap()]);
    assert!(err.contains("waiting for the owner's approval"), "{err}");
    let queue = json_lines(&ok(&a, &["--json", "requests", "list"]));
    let pending = queue
        .iter()
        .find(|r| r["state"] == "pending")
        .expect("a pending request");
    assert_eq!(pending["purpose"], "bus depot planning");
    ok(
        &a,
        &["requests", "approve", pending["request"].as_str().unwrap()],
    );
    let fetched = json_lines(&ok(
        &b,
        &["--json", "fetch", &named, "-o", out.to_str().unwrap()],
    ));
    let done = fetched.last().unwrap();
    assert_eq!(done["event"], "done");
    let mine = |state: &str| {
        json_lines(&ok(&b, &["--json", "requests", "list"]))
            .iter()
            .any(|r| {
                r["direction"] == "outgoing"
                    && r["dataset"] == named.as_str()
                    && r["state"] == state
            })
    };
    assert!(
        mine("approved"),
        "B's own request reads approved once granted"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&named_csv).unwrap()
    );

    // Status reflects it all.
    let status = json_lines(&ok(&a, &["--json", "status"]));
    assert_eq!(status[0]["counters"]["transfers_served"], 2);
    assert_eq!(status[0]["own_datasets"], 3);

    // The owner revokes the grant: B's next fetch is refused, saying so, and B's node lists
    // the revocation it was gossiped.
    let issued = json_lines(&ok(&a, &["--json", "tokens", "list"]));
    let grant = issued
        .iter()
        .find(|t| t["direction"] == "issued" && t["dataset"] == named.as_str())
        .expect("the approval is listed as issued");
    let cid = grant["cid"].as_str().unwrap();
    let revoked = json_lines(&ok(
        &a,
        &[
            "--json",
            "revoke",
            &cid[..20],
            "--reason",
            "depot plan finished",
        ],
    ));
    assert_eq!(revoked[0]["revoked"], cid);
    assert_eq!(revoked[0]["issued_here"], true);
    wait_until("B to receive the revocation", || {
        json_lines(&ok(&b, &["--json", "revocations"]))
            .iter()
            .any(|r| r["revoked"] == cid)
    });
    let again = dir.path().join("feeders-again.csv");
    let err = fails(&b, &["fetch", &named, "-o", again.to_str().unwrap()]);
    assert!(
        err.contains("revoked") && err.contains("depot plan finished"),
        "{err}"
    );
    assert!(!again.exists());
    let listed = json_lines(&ok(&a, &["--json", "tokens", "list"]));
    assert!(listed
        .iter()
        .any(|t| t["cid"] == cid && t["state"] == "revoked"));
    assert!(
        mine("revoked"),
        "B's own request reads revoked once it has heard"
    );
    let queue = json_lines(&ok(&a, &["--json", "requests", "list"]));
    assert!(
        queue
            .iter()
            .any(|r| r["request"] == pending["request"] && r["state"] == "revoked"),
        "the owner's queue still shows the revoked approval as standing: {queue:?}"
    );
    let err = fails(&a, &["revoke", "bafynothing"]);
    assert!(err.contains("issued no delegation"), "{err}");
}

#[test]
fn commands_fail_clearly_without_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("none");
    let err = fails(&home, &["status"]);
    assert!(err.contains("cix node run"), "{err}");
    ok(&home, &["init", "--name", "Idle Agency"]);
    let err = fails(&home, &["catalogue", "list"]);
    assert!(err.contains("no running node"), "{err}");
    // A usage error is exit code 2, from clap.
    let out = cix(&home, &["publish", "x.csv", "--spectrum", "secret"]);
    assert_eq!(out.status.code(), Some(2));
    // A bad jurisdiction is named.
    let err = fails(
        &dir.path().join("other"),
        &["init", "--name", "X", "--jurisdiction", "usa"],
    );
    assert!(err.contains("jurisdiction"), "{err}");
}

/// Ctrl-C on `cix fetch` abandons the transfer: the partial file goes away and the output never
/// appears (the node does not finish the fetch on its own).
#[test]
fn cancelling_a_fetch_writes_nothing_and_keeps_its_verified_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (home, name) in [(&a, "City Power"), (&b, "Transit Authority")] {
        ok(
            home,
            &["init", "--name", name, "--listen", "/ip4/127.0.0.1/tcp/0"],
        );
    }
    let _node_a = start(&a, None);
    let _node_b = start(&b, Some(&listen_addr(&a)));
    // Large enough that the fetch is still running when it is cancelled.
    let big = dir.path().join("big.bin");
    let mut bytes = vec![0u8; 256 << 20];
    for (i, chunk) in bytes.chunks_mut(4096).enumerate() {
        chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
    }
    std::fs::write(&big, &bytes).unwrap();
    drop(bytes);
    let id = ok(
        &a,
        &[
            "publish",
            big.to_str().unwrap(),
            "--title",
            "Big",
            "--spectrum",
            "open",
        ],
    )
    .trim()
    .to_string();
    wait_until("B to list the dataset", || {
        catalogue(&b).iter().any(|l| l["dataset"] == id.as_str())
    });

    let downloads = dir.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let out = downloads.join("big-copy.bin");
    let mut child = std::process::Command::new(common::CIX)
        .arg("--home")
        .arg(&b)
        .args(["fetch", &id, "-o", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partials = || {
        std::fs::read_dir(&downloads)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".cix-partial"))
            .count()
    };
    wait_until("the transfer to start", || partials() > 0 || out.exists());
    assert!(
        !out.exists(),
        "the fetch finished before it could be cancelled"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // The node stops the fetch (its workers are gone once it is listed as interrupted) and
    // keeps the verified segments for resuming (specs/transfer.md §7); nothing is written
    // under the final name.
    let interrupted = || {
        json_lines(&ok(&b, &["--json", "transfers"]))
            .into_iter()
            .find(|t| t["dataset"] == id.as_str() && t["state"] == "interrupted")
    };
    wait_until("the fetch to be listed as interrupted", || {
        interrupted().is_some()
    });
    assert!(!out.exists(), "a cancelled fetch wrote its output");
    assert_eq!(
        partials(),
        1,
        "the verified progress stays beside the target"
    );
    let kept = interrupted().unwrap()["bytes"].as_u64().unwrap();
    // Fetching again completes from there.
    let done = json_lines(&ok(
        &b,
        &["--json", "fetch", &id, "-o", out.to_str().unwrap()],
    ))
    .pop()
    .unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(done["reused_bytes"].as_u64(), Some(kept));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 256 << 20);
    assert_eq!(partials(), 0);
}
