//! Helpers shared by the command-line tests: run the real `cix` binary against a home, start
//! `cix node run` children on 127.0.0.1 port 0, and wait for conditions with a deadline.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const CIX: &str = env!("CARGO_BIN_EXE_cix");
/// Longest wait for any one condition.
pub const WAIT: Duration = Duration::from_secs(30);

/// A running `cix node run`, killed and reaped when dropped.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cix --home HOME ARGS...`.
pub fn cix(home: &Path, args: &[&str]) -> Output {
    Command::new(CIX)
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run cix")
}

/// Runs cix, requires success, returns stdout.
pub fn ok(home: &Path, args: &[&str]) -> String {
    let out = cix(home, args);
    assert!(
        out.status.success(),
        "cix {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs cix, requires exit code 1 (the operation failed), returns stderr.
pub fn fails(home: &Path, args: &[&str]) -> String {
    let out = cix(home, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "cix {args:?} should fail with exit code 1"
    );
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

/// Every line of `text` as JSON.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Runs `cix --json ARGS...`, requires success, returns its last JSON line.
pub fn json(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(home, &all);
    serde_json::from_str(text.lines().last().expect("a line")).expect("JSON")
}

/// Starts `cix node run` on loopback, optionally bootstrapped, and waits for its `node.json`.
pub fn start(home: &Path, bootstrap: Option<&str>) -> Daemon {
    start_on(home, "/ip4/127.0.0.1/tcp/0", bootstrap)
}

/// Starts `cix node run` listening on `listen` only (a TCP or a QUIC multiaddr), optionally
/// bootstrapped, and waits for its `node.json`.
pub fn start_on(home: &Path, listen: &str, bootstrap: Option<&str>) -> Daemon {
    start_with(home, listen, bootstrap, &[])
}

/// As [`start_on`], with `extra` arguments after `node run`.
pub fn start_with(home: &Path, listen: &str, bootstrap: Option<&str>, extra: &[&str]) -> Daemon {
    let mut cmd = Command::new(CIX);
    cmd.arg("--home")
        .arg(home)
        .args(["node", "run", "--listen", listen])
        .args(extra);
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
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

/// Polls `check` every 100 ms until it holds, or fails the test after [`WAIT`].
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first address a running node listens on, from its `node.json`.
pub fn listen_addr(home: &Path) -> String {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("node.json")).unwrap()).unwrap();
    v["listen"][0].as_str().unwrap().to_string()
}
