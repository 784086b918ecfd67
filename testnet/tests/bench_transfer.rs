//! `cix-testnet bench transfer` end to end on a small file, so the benchmark path cannot rot:
//! two real `cix node run` processes, every transport, the plain TCP baseline, byte identity.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const TESTNET: &str = env!("CARGO_BIN_EXE_cix-testnet");

#[test]
fn the_transfer_bench_moves_8_mib_over_every_transport_byte_identical() {
    let cix = Path::new(TESTNET).with_file_name("cix");
    assert!(
        cix.is_file(),
        "{} is missing: build the whole workspace (cargo build --workspace) first",
        cix.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(TESTNET)
        .args(["bench", "transfer", "--size", "8MiB", "--transport", "all"])
        .args(["--runs", "2", "--json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["bytes"], 8 * 1024 * 1024);
    // The published content id is the BLAKE3 of the generated source, which the bench leaves.
    let source = std::fs::read(dir.path().join("source.bin")).unwrap();
    assert_eq!(source.len(), 8 * 1024 * 1024);
    assert_eq!(
        report["content_hash"].as_str().unwrap(),
        blake3::hash(&source).to_hex().as_str()
    );
    let baseline = report["baseline"]["mib_per_s"].as_f64().unwrap();
    assert!(baseline > 0.0, "no baseline figure: {report}");
    let direct = report["baseline_direct"]["mib_per_s"].as_f64().unwrap();
    assert!(direct > 0.0, "no direct-write baseline figure: {report}");
    assert_eq!(
        report["baseline_direct"]["runs_mib_per_s"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let names: Vec<&str> = report["transports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tcp", "tcp-noise", "quic"]);
    for t in report["transports"].as_array().unwrap() {
        assert_eq!(t["identical"], true, "{t}");
        let rate = t["mib_per_s"].as_f64().unwrap();
        let ratio = t["ratio"].as_f64().unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{t}");
        assert!((ratio - rate / baseline).abs() < 1e-9, "{t}");
        let ratio_direct = t["ratio_direct"].as_f64().unwrap();
        assert!((ratio_direct - rate / direct).abs() < 1e-9, "{t}");
        assert_eq!(t["runs_mib_per_s"].as_array().unwrap().len(), 2);
    }
    // Fetched files are removed after they are checked; the homes and the source stay.
    assert!(!dir.path().join("tcp-fetched-0.bin").exists());
}

#[test]
fn the_bench_refuses_a_nonsense_size_as_a_usage_error() {
    let out = Command::new(TESTNET)
        .args(["bench", "transfer", "--size", "12 parsecs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("size"));
}
