//! A process-mode run stopped from outside leaves no node behind: on `SIGTERM` (what `kill`,
//! `timeout` and service managers send) the runner stops its children and removes its work
//! directory, and exits 143; killed outright (`SIGKILL`, no chance to clean up), its children
//! stop by themselves (`cix node run --exit-with-parent`).

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TESTNET: &str = env!("CARGO_BIN_EXE_cix-testnet");

/// The processes whose parent is `pid`, from every thread's `children` list in /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return all;
    };
    for t in tasks.flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        all.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    all
}

/// Whether `pid` still runs (a zombie, ended but not yet reaped, does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a 3-node process-mode run that sleeps for a day, with its work directory under
/// `work`; returns it once its three nodes have started, with their pids.
fn start(work: &Path) -> (std::process::Child, Vec<u32>) {
    let cix = Path::new(TESTNET).with_file_name("cix");
    assert!(
        cix.is_file(),
        "{} is missing: build the workspace",
        cix.display()
    );
    let file = work.join("day.toml");
    std::fs::write(
        &file,
        "name = \"day\"\nnodes = 3\n[topology]\nkind = \"full\"\n\
         [[step]]\naction = \"sleep\"\nduration = \"24h\"\n",
    )
    .unwrap();
    let runner = Command::new(TESTNET)
        .args(["run", "--mode", "process", "--work"])
        .arg(work)
        .arg("--scenario")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = runner.id();
    // The nodes are up once each has written its node.json.
    wait_until("three nodes", Duration::from_secs(60), || {
        children_of(pid).len() == 3 && runs(work) == 3
    });
    (runner, children_of(pid))
}

/// How many node homes under `work` hold a `node.json` (a started node).
fn runs(work: &Path) -> usize {
    homes(work)
        .iter()
        .filter(|h| h.join("node.json").is_file())
        .count()
}

fn homes(work: &Path) -> Vec<PathBuf> {
    walk(work, 3)
        .into_iter()
        .filter(|p| p.join("node.key").is_file())
        .collect()
}

fn walk(dir: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if depth == 0 {
        return out;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path(), depth - 1));
            }
        }
    }
    out
}

fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

#[test]
fn sigterm_stops_the_nodes_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let (runner, nodes) = start(dir.path());
    signal(runner.id(), "TERM");
    let out = runner.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("terminated (SIGTERM)"), "{err}");
    // The runner waited for each child it killed.
    for n in &nodes {
        assert!(!alive(*n), "node {n} outlived the runner");
    }
}

#[test]
fn sigkill_of_the_runner_stops_the_nodes_by_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let (mut runner, nodes) = start(dir.path());
    signal(runner.id(), "KILL");
    let _ = runner.wait();
    wait_until("every node to stop", Duration::from_secs(30), || {
        nodes.iter().all(|n| !alive(*n))
    });
}
