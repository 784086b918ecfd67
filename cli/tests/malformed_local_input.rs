//! Malformed local input (issue 8): what an operator's own machine can get wrong. Each case
//! must end `cix node run` (or the command) with exit code 1 and a message that names what is
//! wrong and says what to do, never a panic, and leave nothing half-written.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{fails, ok, Daemon, CIX, WAIT};

fn init(home: &Path) {
    ok(
        home,
        &[
            "init",
            "--name",
            "Local Input Board",
            "--jurisdiction",
            "NL",
        ],
    );
}

/// Runs `cix node run` on loopback and requires it to fail by itself; returns its stderr.
fn node_run_fails(home: &Path) -> String {
    let mut child = Command::new(CIX)
        .arg("--home")
        .arg(home)
        .args(["node", "run", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if began.elapsed() > WAIT {
            let _ = child.kill();
            panic!("cix node run kept running on bad input");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "exit status {status:?}; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "it panicked: {err}");
    err
}

fn set_config_line(home: &Path, key: &str, line: &str) {
    let path = home.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{key} ")) && !l.starts_with(&format!("{key}=")))
        .map(str::to_string)
        .collect();
    // Top-level keys go before the first table.
    let at = out
        .iter()
        .position(|l| l.starts_with('['))
        .unwrap_or(out.len());
    out.insert(at, line.to_string());
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}

#[test]
fn unreadable_config_names_the_file_the_place_and_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    init(&home);
    std::fs::write(home.join("config.toml"), "name = [\"unterminated\"\n").unwrap();
    let err = node_run_fails(&home);
    assert!(err.contains("invalid config in"), "{err}");
    assert!(err.contains("config.toml"), "{err}");
    assert!(err.contains("line 1"), "{err}");
    assert!(err.contains("README.md"), "{err}");
    // Not UTF-8 at all.
    std::fs::write(home.join("config.toml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let err = node_run_fails(&home);
    assert!(err.contains("config.toml"), "{err}");
    // Gone.
    std::fs::remove_file(home.join("config.toml")).unwrap();
    let err = node_run_fails(&home);
    assert!(err.contains("run `cix init` first"), "{err}");
}

#[test]
fn contradictory_config_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    init(&home);
    for (key, line, words) in [
        (
            "admin_listen",
            "admin_listen = \"0.0.0.0:7000\"",
            "loopback",
        ),
        ("grant_days", "grant_days = 0", "between 1 and 366"),
        ("jurisdiction", "jurisdiction = \"XX\"", "ISO 3166-1"),
        (
            "store_cache_bytes",
            "store_cache_bytes = -1",
            "store_cache_bytes",
        ),
        // Below what sled works with: refused, never a panic.
        ("store_cache_bytes", "store_cache_bytes = 100", "1 MiB"),
        (
            "unknown_setting",
            "unknown_setting = true",
            "unknown_setting",
        ),
    ] {
        let saved = std::fs::read_to_string(home.join("config.toml")).unwrap();
        set_config_line(&home, key, line);
        let err = node_run_fails(&home);
        assert!(err.contains(key), "{line}: {err}");
        assert!(err.contains(words), "{line}: {err}");
        assert!(err.contains("config.toml"), "{line}: {err}");
        std::fs::write(home.join("config.toml"), saved).unwrap();
    }
}

#[test]
fn missing_or_world_readable_key_file_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    init(&home);
    let key = home.join("node.key");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let err = node_run_fails(&home);
    assert!(
        err.contains("node.key") && err.contains("cix init"),
        "{err}"
    );
    std::fs::write(&key, &saved).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = node_run_fails(&home);
    assert!(
        err.contains("readable by others") && err.contains("chmod 600"),
        "{err}"
    );
    // A key file of the wrong length is refused too, naming the file.
    std::fs::write(&key, b"short").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = node_run_fails(&home);
    assert!(err.contains("node.key"), "{err}");
}

#[test]
fn corrupt_store_directory_is_an_error_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    init(&home);
    // A first run creates the store.
    let daemon = common::start(&home, None);
    drop(daemon);
    let _ = std::fs::remove_file(home.join("node.json"));
    let conf = home.join("store").join("conf");
    assert!(conf.exists(), "sled keeps its settings in store/conf");
    std::fs::write(&conf, [0x9c; 512]).unwrap();
    let err = node_run_fails(&home);
    assert!(err.contains("cannot open the store"), "{err}");
    assert!(
        err.contains("backup") && err.contains("move it aside"),
        "{err}"
    );
}

#[test]
fn damaged_dataset_file_is_found_named_and_repaired_by_publishing_again() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    init(&home);
    let csv = dir.path().join("levels.csv");
    std::fs::write(
        &csv,
        "time,level\n2024-01-01T00:00:00Z,3\n2024-01-01T01:00:00Z,4\n",
    )
    .unwrap();
    let daemon: Daemon = common::start(&home, None);
    let id = ok(
        &home,
        &[
            "publish",
            csv.to_str().unwrap(),
            "--title",
            "Levels",
            "--spectrum",
            "open",
        ],
    )
    .lines()
    .next()
    .unwrap()
    .trim()
    .to_string();
    // Flip a byte of the stored copy.
    let blob = std::fs::read_dir(home.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_none())
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[3] ^= 0x20;
    std::fs::write(&blob, &bytes).unwrap();
    let out = dir.path().join("copy.csv");
    let err = fails(&home, &["fetch", &id, "--output", out.to_str().unwrap()]);
    assert!(
        err.contains("damaged") && err.contains(&*blob.to_string_lossy()),
        "{err}"
    );
    assert!(err.contains("publishing the original file again"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "a copy was written from a damaged blob");
    // The repair the message names works.
    ok(&home, &["publish", csv.to_str().unwrap(), "--dataset", &id]);
    ok(&home, &["fetch", &id, "--output", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&csv).unwrap());
    drop(daemon);
}
