//! The built-in `rights` scenario (ISO 37156 8.3.5, 8.3.6) as an operator runs it:
//! `cix-testnet run --scenario rights`, its report read back.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;

const TESTNET: &str = env!("CARGO_BIN_EXE_cix-testnet");

#[test]
fn iso_37156_8_3_5_the_rights_scenario_reports_each_answer_the_overdue_one_and_the_appeal() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(TESTNET)
        .args([
            "run",
            "--scenario",
            "rights",
            "--nodes",
            "5",
            "--json",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["ok"], true, "{r:#}");
    // Three recipients: two answered, the third is the overdue one.
    let answers = r["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{r:#}");
    assert_eq!(answers[0]["outcome"], "done");
    assert_eq!(answers[1]["outcome"], "partly");
    assert!(answers[2]["outcome"].is_null());
    assert_eq!(answers[2]["overdue"], true);
    assert!(answers[..2].iter().all(|a| a["overdue"] == false));
    for a in answers {
        let via: Vec<&str> = a["via"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            via.contains(&"grant") && via.contains(&"receipt"),
            "{via:?}"
        );
    }
    assert_eq!(r["overdue"], serde_json::json!(["Agency 3"]));
    assert_eq!(r["request_status"], "overdue");
    assert_eq!(r["bystander_left_out"], true);
    // The complaint: refused, appealed, decided, and the decision reached every recipient.
    let c = &r["complaint"];
    assert_eq!(c["answers"][0]["outcome"], "refused");
    assert!(c["appeal"].as_str().unwrap().contains("disputes"));
    assert!(c["decision"].as_str().unwrap().starts_with("upheld"));
    let seen = c["seen_by"].as_array().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s[1] == "decided"), "{seen:?}");
    let steps = r["audit_steps"].to_string();
    for step in [
        "recorded",
        "forwarded",
        "answered",
        "overdue",
        "appealed",
        "decided",
    ] {
        assert!(steps.contains(step), "{step} missing from {steps}");
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("| Agency 3 |") && md.contains("OVERDUE"),
        "{md}"
    );
    assert!(dir.path().join("report.json").is_file());
}

#[test]
fn the_rights_scenario_refuses_too_few_nodes() {
    let out = Command::new(TESTNET)
        .args(["run", "--scenario", "rights", "--nodes", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nodes 4 to"));
}
