//! Crash safety (issue 8; ISO 37156 7.4.1 counts corruption of service data among the threats):
//! a `cix node run` process is killed with SIGKILL in the middle of its work, restarted, and
//! must hold everything it acknowledged before the kill.
//!
//! - [`killed_while_publishing_granting_revoking_and_auditing`]: an operator publishes, grants,
//!   revokes and notes in the audit log in a loop (every one of these also appends to the audit
//!   log); the node is killed while the next command is under way, [`OWNER_KILLS`] times, each
//!   time with a different command in flight (each of the four kinds three times). After each
//!   restart every acknowledged dataset is listed, its blob hashes to its content id, every
//!   acknowledged grant is listed, every acknowledged revocation is listed and in force, every
//!   acknowledged note is in the log, and the log verifies end to end.
//! - [`killed_while_receiving_a_transfer`]: a receiver is killed mid-fetch [`RECEIVER_KILLS`]
//!   times; after each restart its store opens, the output file is absent (never half
//!   written), and the fetch run again delivers the exact bytes.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{json_lines, ok, wait_until, Daemon, CIX};
use serde_json::Value;

/// Kills of the owner: each of the four commands is in flight at three of them.
const OWNER_KILLS: usize = 12;
/// Kills of a receiver in the middle of a fetch.
const RECEIVER_KILLS: usize = 3;
/// A grantee (any valid did:key will do: the grant is made without asking it).
const GRANTEE: &str = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";

/// Starts `cix node run` with `env` set, after removing the `node.json` a killed run left.
fn run_node(home: &Path, bootstrap: Option<&str>, env: &[(&str, &str)]) -> Daemon {
    let _ = std::fs::remove_file(home.join("node.json"));
    let mut cmd = Command::new(CIX);
    cmd.arg("--home")
        .arg(home)
        .args(["node", "run", "--listen", "/ip4/127.0.0.1/tcp/0"]);
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let daemon = Daemon(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn node"),
    );
    wait_until("the node to write node.json", || {
        home.join("node.json").exists()
    });
    daemon
}

/// SIGKILL, then reap.
fn kill(mut daemon: Daemon) {
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
}

/// Runs cix; its stdout when it succeeded, `None` when it failed (the node was killed).
fn attempt(home: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(CIX)
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

/// Every blob in the store hashes to the content id it is named by.
fn blobs_are_sound(home: &Path) -> usize {
    let mut n = 0;
    for f in std::fs::read_dir(home.join("blobs")).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().to_string_lossy().to_string();
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let bytes = std::fs::read(f.path()).unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            name,
            "blob {name} is corrupt"
        );
        n += 1;
    }
    n
}

/// What the operator was told succeeded.
#[derive(Default, Debug)]
struct Acked {
    datasets: Vec<String>,
    grants: Vec<String>,
    revoked: Vec<String>,
    notes: Vec<String>,
    /// Commands acknowledged in the current run.
    this_run: usize,
}

fn field(json: &str, name: &str) -> String {
    let v: Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    v[name].as_str().unwrap().to_string()
}

/// One command of the loop: the `i`-th (publish, grant, revoke, note, in turn). Returns false
/// once a command fails (the node is gone).
fn step(home: &Path, dir: &Path, i: usize, acked: &Mutex<Acked>) -> bool {
    let (latest_dataset, latest_grant) = {
        let a = acked.lock().unwrap();
        (a.datasets.last().cloned(), a.grants.last().cloned())
    };
    let done = match i % 4 {
        0 => {
            let file = dir.join(format!("readings-{i}.csv"));
            let mut csv = String::from("time,station,flow\n");
            for r in 0..200 + i {
                csv.push_str(&format!(
                    "2024-05-01T{:02}:00:00Z,S{},{}\n",
                    r % 24,
                    r % 7,
                    r * i
                ));
            }
            std::fs::write(&file, csv).unwrap();
            let path = file.to_str().unwrap().to_string();
            attempt(
                home,
                &[
                    "publish",
                    &path,
                    "--title",
                    "Flow",
                    "--spectrum",
                    "shared-named",
                ],
            )
            .map(|out| {
                let id = out.lines().next().unwrap().trim().to_string();
                acked.lock().unwrap().datasets.push(id);
            })
        }
        1 => match latest_dataset {
            Some(d) => attempt(home, &["--json", "grant", "--to", GRANTEE, &d]).map(|out| {
                acked.lock().unwrap().grants.push(field(&out, "cid"));
            }),
            None => Some(()),
        },
        2 => match latest_grant {
            Some(cid) => attempt(home, &["--json", "revoke", &cid]).map(|out| {
                assert_eq!(field(&out, "revoked"), cid);
                let mut a = acked.lock().unwrap();
                if !a.revoked.contains(&cid) {
                    a.revoked.push(cid);
                }
            }),
            None => Some(()),
        },
        _ => {
            let text = format!("crash test note {i} {}", std::process::id());
            attempt(home, &["audit", "note", &text]).map(|_| {
                acked.lock().unwrap().notes.push(text);
            })
        }
    };
    match done {
        Some(()) => {
            acked.lock().unwrap().this_run += 1;
            true
        }
        None => false,
    }
}

/// Checks that the restarted node holds everything in `acked`.
fn holds_everything(home: &Path, acked: &Acked) {
    let catalogue = ok(home, &["--json", "catalogue", "list"]);
    for d in &acked.datasets {
        assert!(
            catalogue.contains(d.as_str()),
            "acknowledged dataset {d} lost"
        );
    }
    let tokens = json_lines(&ok(home, &["--json", "tokens", "list"]));
    for cid in &acked.grants {
        let t = tokens
            .iter()
            .find(|t| t["cid"] == cid.as_str())
            .unwrap_or_else(|| panic!("acknowledged grant {cid} lost"));
        if acked.revoked.contains(cid) {
            assert_eq!(t["state"], "revoked", "revocation of {cid} not in force");
        }
    }
    let revocations = ok(home, &["--json", "revocations"]);
    for cid in &acked.revoked {
        assert!(
            revocations.contains(cid.as_str()),
            "acknowledged revocation of {cid} lost"
        );
    }
    let log = ok(home, &["--json", "audit", "log"]);
    for note in &acked.notes {
        assert!(
            log.contains(note.as_str()),
            "acknowledged audit note {note:?} lost"
        );
    }
    // Exits non-zero, naming the first broken record, if the chain is broken anywhere.
    ok(home, &["audit", "verify"]);
    let blobs = blobs_are_sound(home);
    assert!(
        blobs >= acked.datasets.len(),
        "{blobs} blobs for {} datasets",
        acked.datasets.len()
    );
}

#[test]
fn killed_while_publishing_granting_revoking_and_auditing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("owner");
    ok(
        &home,
        &["init", "--name", "Crash Test Water", "--jurisdiction", "NL"],
    );
    let acked = Arc::new(Mutex::new(Acked::default()));
    let began = Instant::now();
    let mut next = 0usize;
    for kill_no in 0..OWNER_KILLS {
        let daemon = run_node(&home, None, &[]);
        holds_everything(&home, &acked.lock().unwrap());
        acked.lock().unwrap().this_run = 0;
        // Kill while command number `target` of this run is under way: the target moves on by
        // one each time, so each kind of command is the one in flight in turn.
        let target = 4 + kill_no % 4;
        let worker = {
            let (home, dir, acked) = (home.clone(), dir.path().to_path_buf(), acked.clone());
            let start = next;
            std::thread::spawn(move || {
                let mut i = start;
                while step(&home, &dir, i, &acked) {
                    i += 1;
                }
                i
            })
        };
        wait_until("the commands before the kill to be acknowledged", || {
            acked.lock().unwrap().this_run >= target || worker.is_finished()
        });
        kill(daemon);
        next = worker.join().unwrap() + 1;
    }
    let daemon = run_node(&home, None, &[]);
    let acked = acked.lock().unwrap();
    holds_everything(&home, &acked);
    println!(
        "{OWNER_KILLS} kills: {} datasets, {} grants, {} revocations, {} notes acknowledged and \
         all still there; {:.1} s",
        acked.datasets.len(),
        acked.grants.len(),
        acked.revoked.len(),
        acked.notes.len(),
        began.elapsed().as_secs_f64()
    );
    assert!(
        acked.revoked.len() >= OWNER_KILLS / 2,
        "too few revocations exercised"
    );
    drop(daemon);
}

/// The receiver's transfers in progress, as `cix transfers` lists them: (bytes verified, state).
fn transfers(home: &Path) -> Vec<(u64, String)> {
    attempt(home, &["--json", "transfers"])
        .map(|out| {
            json_lines(&out)
                .iter()
                .map(|t| {
                    (
                        t["bytes"].as_u64().unwrap_or(0),
                        t["state"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn killed_while_receiving_a_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("owner"), dir.path().join("receiver"));
    ok(
        &a,
        &["init", "--name", "Slow Owner", "--jurisdiction", "NL"],
    );
    ok(&b, &["init", "--name", "Receiver", "--jurisdiction", "NL"]);
    // 2 MiB served at 1 MB/s: a fetch takes about two seconds, time enough to kill it midway.
    let mut data = b"station,flow\n".to_vec();
    let mut r = 0u32;
    while data.len() < 2 * 1024 * 1024 {
        data.extend_from_slice(format!("S{:03},{}\n", r % 500, r % 9973).as_bytes());
        r += 1;
    }
    let source = dir.path().join("big.csv");
    std::fs::write(&source, &data).unwrap();
    let _owner = run_node(&a, None, &[("CIX_SERVE_RATE", "1000000")]);
    let id = ok(
        &a,
        &[
            "publish",
            source.to_str().unwrap(),
            "--title",
            "Big",
            "--spectrum",
            "open",
        ],
    )
    .lines()
    .next()
    .unwrap()
    .trim()
    .to_string();
    let boot = common::listen_addr(&a);
    for kill_no in 0..RECEIVER_KILLS {
        let out: PathBuf = dir.path().join(format!("fetched-{kill_no}.csv"));
        let receiver = run_node(&b, Some(&boot), &[]);
        wait_until("the receiver to learn the dataset", || {
            attempt(&b, &["--json", "catalogue", "list"]).is_some_and(|c| c.contains(&id))
        });
        let fetch = {
            let (b, id, out) = (b.clone(), id.clone(), out.clone());
            std::thread::spawn(move || {
                attempt(&b, &["fetch", &id, "--output", out.to_str().unwrap()])
            })
        };
        wait_until("the fetch to be under way", || {
            !transfers(&b).is_empty() || fetch.is_finished()
        });
        let at_kill = transfers(&b);
        kill(receiver);
        let finished = fetch.join().unwrap();
        println!(
            "receiver killed during {at_kill:?} (bytes verified, state) of {} bytes",
            data.len()
        );
        assert!(
            finished.is_none(),
            "the fetch finished before the kill: make it slower"
        );
        // Never half written: absent, or (when the kill came after the last byte but before
        // the answer) the exact bytes.
        if out.exists() {
            assert!(
                std::fs::read(&out).unwrap() == data,
                "a killed fetch left a damaged {}",
                out.display()
            );
        }
        // Restart: the store opens, and the fetch completes with the exact bytes.
        let receiver = run_node(&b, Some(&boot), &[]);
        ok(&b, &["status"]);
        blobs_are_sound(&b);
        ok(&b, &["fetch", &id, "--output", out.to_str().unwrap()]);
        assert!(
            std::fs::read(&out).unwrap() == data,
            "refetched file differs"
        );
        blobs_are_sound(&b);
        drop(receiver);
        // Next round fetches afresh: forget the copy (a new output path, same dataset, is
        // served from the receiver's own held copy otherwise).
        std::fs::remove_dir_all(b.join("blobs")).ok();
        std::fs::remove_dir_all(b.join("store")).ok();
    }
    println!(
        "{RECEIVER_KILLS} receivers killed mid-fetch; each restarted and fetched the exact bytes"
    );
}
