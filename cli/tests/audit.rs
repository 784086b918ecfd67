//! `cix audit log | export | verify [--witnesses]` on real nodes (ISO 37156 8.3.4, 9.4):
//! every event is logged on both sides of an exchange; an exported log verifies untouched and
//! fails, naming the first bad record, after any byte is changed, a record is deleted, two are
//! swapped, the tail is cut or the log is rebuilt from some point with a fresh, validly signed
//! chain (the last two caught by the heads a peer witnessed); the log survives SIGKILL with
//! every acknowledged record intact.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use cix_node::Home;
use cix_protocol::audit::{split_sequence, SignedRecord};
use common::{cix, fails, json, json_lines, listen_addr, ok, start, wait_until};
use serde_json::Value;

fn records(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    split_sequence(&bytes)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

fn write(path: &Path, records: &[Vec<u8>]) {
    std::fs::write(path, records.concat()).unwrap();
}

fn audit_log(home: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json", "audit", "log"];
    all.extend_from_slice(args);
    json_lines(&ok(home, &all))
}

#[test]
fn audit_log_tamper_and_witnesses_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("water");
    let b = dir.path().join("roads");
    ok(&a, &["init", "--name", "Water Board"]);
    ok(&b, &["init", "--name", "Roads Office"]);
    let na = start(&a, None);
    let _nb = start(&b, Some(&listen_addr(&a)));
    wait_until("the nodes to connect", || {
        json_lines(&ok(&b, &["--json", "peers"])).len() == 1
    });
    let did_a = json(&a, &["status"])["did"].as_str().unwrap().to_string();
    let did_b = json(&b, &["status"])["did"].as_str().unwrap().to_string();

    // Publish, fetch: both sides log the transfer (bytes, content hash).
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
    let hash = published["content_hash"].as_str().unwrap().to_string();
    wait_until("the entry to reach B", || {
        ok(&b, &["--json", "catalogue", "list"]).contains(&id)
    });
    let got = dir.path().join("got.csv");
    json(&b, &["fetch", &id, "-o", got.to_str().unwrap()]);
    for i in 0..6 {
        ok(&a, &["audit", "note", &format!("shift handover {i}")]);
    }

    let publish = audit_log(&a, &["--kind", "publish"]);
    assert_eq!(publish.len(), 1);
    assert_eq!(publish[0]["dataset"], id.as_str());
    assert_eq!(publish[0]["content"], hash.as_str());
    // The owner's end of the transfer is acknowledged just before the receiver's; wait for it.
    wait_until("the owner to log the transfer end", || {
        audit_log(&a, &["--kind", "transfer-end"]).len() == 1
    });
    let served = audit_log(&a, &["--kind", "transfer-end", "--peer", &did_b]);
    assert_eq!(served[0]["bytes"], published["bytes"]);
    assert_eq!(served[0]["content"], hash.as_str());
    let fetched = audit_log(&b, &["--kind", "transfer-end", "--dataset", &id]);
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0]["peer"], did_a.as_str());
    assert_eq!(fetched[0]["content"], hash.as_str());
    assert_eq!(audit_log(&b, &["--kind", "transfer-start"]).len(), 1);
    assert_eq!(audit_log(&a, &["--limit", "2"]).len(), 2);
    assert!(audit_log(&a, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    assert!(fails(&a, &["audit", "log", "--kind", "Not A Kind"]).contains("--kind"));

    // The live log and an untouched export verify.
    let report = json(&a, &["audit", "verify"]);
    assert_eq!(report["verified"], true);
    let total = report["records"].as_u64().unwrap();
    assert!(total >= 9, "{report}");
    let export = dir.path().join("a.cbor");
    ok(&a, &["audit", "export", "-o", export.to_str().unwrap()]);
    ok(&a, &["audit", "verify", export.to_str().unwrap()]);
    let good = records(&export);
    assert_eq!(good.len() as u64, total);

    let bad = dir.path().join("bad.cbor");
    let verify_bad = |home: &Path, extra: &[&str]| {
        let mut args = vec!["audit", "verify", bad.to_str().unwrap()];
        args.extend_from_slice(extra);
        fails(home, &args)
    };
    // One byte changed, near the end of record 3 (inside its signed payload).
    let mut changed = good.clone();
    let len = changed[2].len();
    changed[2][len - 3] ^= 0x20;
    write(&bad, &changed);
    let err = verify_bad(&a, &[]);
    assert!(
        err.contains("record seq 3") || err.contains("item 3 "),
        "{err}"
    );
    // A record deleted: the one after it is named.
    let mut deleted = good.clone();
    deleted.remove(3);
    write(&bad, &deleted);
    let err = verify_bad(&a, &[]);
    assert!(err.contains("record seq 5 (item 4"), "{err}");
    // Two swapped.
    let mut swapped = good.clone();
    swapped.swap(1, 4);
    write(&bad, &swapped);
    let err = verify_bad(&a, &[]);
    assert!(err.contains("record seq 5 (item 2"), "{err}");

    // B witnesses A's head now.
    let w = json(&a, &["audit", "witness"]);
    assert_eq!(w["witnessed"], 1, "{w}");
    assert_eq!(w["seq"].as_u64().unwrap(), total);

    // The tail cut: the file alone still verifies, the witnessed head catches it, asked
    // through A (which asks B) and through B (which holds A's head itself).
    write(&bad, &good[..good.len() - 2]);
    ok(&a, &["audit", "verify", bad.to_str().unwrap()]);
    let err = verify_bad(&a, &["--witnesses"]);
    assert!(err.contains(&format!("record seq {total}")), "{err}");
    assert!(err.contains("missing"), "{err}");
    let err = verify_bad(&b, &["--witnesses"]);
    assert!(err.contains("missing"), "{err}");

    // Rebuilt from record 4 with a fresh chain, signed with A's own key.
    let key = Home::new(&a).load_key().unwrap();
    let mut rebuilt: Vec<Vec<u8>> = good[..3].to_vec();
    for old in &good[3..] {
        let mut r = SignedRecord::decode(old).unwrap().record;
        r.prev = cix_protocol::audit::AuditHash::of(rebuilt.last().unwrap());
        if r.seq == 4 {
            r.detail = Some("nothing happened here".into());
        }
        rebuilt.push(r.seal(&key).unwrap().bytes);
    }
    write(&bad, &rebuilt);
    ok(&a, &["audit", "verify", bad.to_str().unwrap()]);
    let err = verify_bad(&b, &["--witnesses"]);
    assert!(err.contains(&format!("record seq {total}")), "{err}");
    assert!(err.contains("rewritten"), "{err}");
    // The untouched export passes with witnesses too.
    let good_report = json(
        &b,
        &["audit", "verify", export.to_str().unwrap(), "--witnesses"],
    );
    assert_eq!(good_report["witnessed_heads"], 1, "{good_report}");

    // The node's own store truncated behind its back: caught on the live log.
    drop(na);
    std::fs::remove_file(a.join("node.json")).unwrap();
    {
        let store = cix_node::store::Store::open(&Home::new(&a).store(), 8 << 20).unwrap();
        let tree = store.tree("audit").unwrap();
        for seq in total - 1..=total {
            tree.remove(seq.to_be_bytes()).unwrap();
        }
        store.flush().unwrap();
    }
    let _na = start(&a, Some(&listen_addr(&b)));
    wait_until("A to reconnect", || {
        json_lines(&ok(&a, &["--json", "peers"])).len() == 1
    });
    ok(&a, &["audit", "verify"]);
    let out = cix(&a, &["audit", "verify", "--witnesses"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("record seq {total}")), "{err}");
}

#[test]
fn every_acknowledged_record_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("water");
    ok(&a, &["init", "--name", "Water Board"]);
    let mut node = start(&a, None);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, String)>::new()));
    let mut writers = Vec::new();
    for w in 0..3 {
        let acked = acked.clone();
        let home = a.clone();
        writers.push(std::thread::spawn(move || {
            for i in 0.. {
                let text = format!("writer {w} note {i}");
                let out = cix(&home, &["--json", "audit", "note", &text]);
                if !out.status.success() {
                    break;
                }
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                acked
                    .lock()
                    .unwrap()
                    .push((v["seq"].as_u64().unwrap(), text));
            }
        }));
    }
    wait_until("records to be acknowledged", || {
        acked.lock().unwrap().len() >= 60
    });
    node.0.kill().unwrap(); // SIGKILL
    node.0.wait().unwrap();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    std::fs::remove_file(a.join("node.json")).unwrap();
    let _node = start(&a, None);
    let report = json(&a, &["audit", "verify"]);
    assert_eq!(report["verified"], true);
    let listed = audit_log(&a, &["--kind", "note"]);
    for (seq, text) in &acked {
        let found = listed.iter().find(|l| l["seq"] == *seq);
        assert_eq!(
            found.and_then(|l| l["detail"].as_str()),
            Some(text.as_str()),
            "acknowledged record {seq} lost"
        );
    }
    // The log goes on from where it stood.
    let next = json(&a, &["audit", "note", "after the crash"]);
    assert_eq!(
        next["seq"].as_u64().unwrap(),
        report["last"].as_u64().unwrap() + 1
    );
}
