//! The built-in scenarios at small sizes, each one's key claim asserted from its report (whose
//! figures come from the nodes' own `cix::event` records), and the process mode's kill and
//! restart with catch-up.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cix_node::scoring::GRAYLIST_THRESHOLD;
use cix_testnet::builtin::{self, Knobs};
use cix_testnet::report::Report;
use cix_testnet::run::{self, Mode, Options};

const TESTNET: &str = env!("CARGO_BIN_EXE_cix-testnet");

async fn run_builtin(name: &str, k: Knobs, out: Option<&Path>) -> Report {
    let scenario = builtin::get(name, k).unwrap();
    let opts = Options {
        mode: Mode::InProcess,
        cix: None,
        work: None,
        faults: run::FaultChoice::Auto,
    };
    let report = run::run_and_write(&scenario, &opts, cix_testnet::events::global(), out)
        .await
        .unwrap();
    assert!(
        report.ok,
        "{name}: {}",
        cix_testnet::report::markdown(&report)
    );
    report
}

fn knobs(nodes: usize) -> Knobs {
    Knobs {
        nodes: Some(nodes),
        entries: None,
        duration: None,
        interval: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_reports_time_until_every_node_and_writes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let k = Knobs {
        entries: Some(10),
        ..knobs(8)
    };
    let r = run_builtin("propagation", k, Some(dir.path())).await;
    let p = &r.propagation;
    assert_eq!(p.measured, 10);
    assert_eq!(p.missing, 0);
    let all = p.until_all.clone().unwrap();
    assert!(all.median_ms > 0.0 && all.median_ms <= all.p99_ms && all.p99_ms <= all.max_ms);
    // 10 entries x 7 other nodes, each an acceptance the node logged.
    assert_eq!(p.per_node_ms.len(), 70);
    assert!(p
        .records
        .iter()
        .all(|x| x.reached == 7 && x.until_all_ms.is_some()));
    assert!(r.memory.per_idle_node_mib > 0.0);
    // Every node counted its own traffic: each received the 10 entries by gossip and sent
    // bytes; the publisher published its 10 messages.
    let t = &r.traffic;
    assert_eq!(t.nodes.len(), 8);
    for n in &t.nodes {
        assert!(n.read, "{n:?}");
        assert!(
            n.counters.bytes_sent > 0 && n.counters.bytes_received > 0,
            "{n:?}"
        );
        assert!(n.counters.messages_received >= 1, "{n:?}");
    }
    assert!(t.total.messages_published >= 10, "{:?}", t.total);
    assert!(
        t.total.messages_sent >= t.total.messages_published,
        "{:?}",
        t.total
    );
    // Honest nodes are not penalised in a normal run.
    assert!(
        r.honest_min_score.unwrap() >= 0.0,
        "{:?}",
        r.honest_min_score
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["propagation"]["measured"], 10);
    assert!(json["propagation"]["until_all"]["p99_ms"].is_number());
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("until every live node had it"), "{md}");
    for svg in ["propagation-cdf.svg", "convergence.svg", "throughput.svg"] {
        let text = std::fs::read_to_string(dir.path().join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("</svg>"), "{svg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_heal_converges_and_entries_crossed_only_after_the_heal() {
    let r = run_builtin("partition-heal", knobs(8), None).await;
    assert_eq!(r.convergence.len(), 1);
    let c = &r.convergence[0];
    assert!(c.converged);
    assert!(c.converge_ms.unwrap() > 0.0);
    // Nodes 1 and 7, on either side, published 2 entries each while apart: each of the 4
    // entries reached the 4 nodes on the other side only after healing.
    assert!(c.arrivals_after_heal >= 16, "{c:?}");
    assert!(r.full_catalogue_on_every_live_node);
    assert_eq!(r.live_nodes_at_end, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_peer_is_graylisted_and_nothing_invalid_is_accepted_or_forwarded() {
    let r = run_builtin("hostile-peer", knobs(8), None).await;
    let h = r.hostile.clone().unwrap();
    assert_eq!(h.sent, 60);
    assert!(h.rejected_direct > 0);
    assert_eq!(
        h.rejected_forwarded, 0,
        "an honest node forwarded an invalid entry"
    );
    assert_eq!(
        h.invalid_accepted, 0,
        "an honest node accepted an invalid entry"
    );
    assert!(h.nodes_that_received_its_messages > 0);
    assert!(h.below_graylist);
    assert!(h.scores.iter().any(|s| s.score < GRAYLIST_THRESHOLD));
    // The honest publication after the attack still reached every honest node.
    assert_eq!(r.propagation.missing, 0);
    assert_eq!(r.propagation.measured, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_ends_with_every_live_node_holding_the_full_catalogue() {
    let k = Knobs {
        duration: Some(Duration::from_secs(8)),
        ..knobs(8)
    };
    let r = run_builtin("churn", k, None).await;
    assert!(r.churn_rounds >= 3, "{}", r.churn_rounds);
    assert_eq!(r.live_nodes_at_end, 8);
    assert!(r.entries_published >= 4);
    assert!(r.full_catalogue_on_every_live_node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_storm_reaches_every_node() {
    let k = Knobs {
        entries: Some(24),
        ..knobs(8)
    };
    let r = run_builtin("revocation-storm", k, None).await;
    assert_eq!(r.revocations.measured, 24);
    assert_eq!(r.revocations.missing, 0);
    assert!(r.revocations.until_all.is_some());
}

#[test]
fn process_mode_kills_and_restarts_a_node_which_catches_up() {
    let cix = Path::new(TESTNET).with_file_name("cix");
    assert!(
        cix.is_file(),
        "{} is missing: build the whole workspace (cargo build --workspace) first",
        cix.display()
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/kill-restart.toml");
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(TESTNET)
        .args(["run", "--mode", "process", "--json", "--scenario"])
        .arg(&file)
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["mode"], "process");
    assert_eq!(r["ok"], true);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps[1]["action"], "kill");
    assert_eq!(steps[3]["action"], "restart");
    assert_eq!(steps[3]["held"], true);
    // The two entries published while node 2 was down reached it after its restart, as the
    // child logged them.
    let entries = r["propagation"]["records"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|e| e["reached"] == 2 && e["of"] == 2));
    let restart_at = steps[3]["at_ms"].as_f64().unwrap();
    let started = r["started_at_unix_ms"].as_f64().unwrap();
    let _ = (restart_at, started);
    assert!(r["memory"]["per_idle_node_mib"].as_f64().unwrap() > 1.0);
    assert!(out_dir.path().join("report.json").is_file());
    // Node 2's counters: what was read before its kill plus its second life.
    let t = &r["traffic"]["nodes"].as_array().unwrap()[2];
    assert_eq!(t["read"], true);
    assert!(t["bytes_sent"].as_u64().unwrap() > 0, "{t}");
}

/// Revoke and fetch in process mode, through each child's admin API; traffic from `cix
/// metrics` of each child.
#[test]
fn process_mode_revokes_and_fetches_through_the_cli() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/process-steps.toml");
    let out = Command::new(TESTNET)
        .args(["run", "--mode", "process", "--json", "--scenario"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["mode"], "process");
    assert_eq!(r["ok"], true, "{}", r["steps"]);
    let f = &r["fetches"][0];
    assert_eq!(f["ok"], true, "{f}");
    assert!(f["bytes"].as_u64().unwrap() > 0, "{f}");
    // Both revocations of node 1 reached nodes 0 and 2, as the children logged.
    let revs = r["revocations"]["records"].as_array().unwrap();
    assert_eq!(revs.len(), 2);
    assert!(revs.iter().all(|e| e["reached"] == 2), "{revs:?}");
    // Every child counted its own traffic; node 1 published its two revocations.
    let nodes = r["traffic"]["nodes"].as_array().unwrap();
    assert!(nodes.iter().all(|n| n["read"] == true), "{nodes:?}");
    let sent = |i: usize| nodes[i]["bytes_sent"].as_u64().unwrap();
    assert!(sent(0) > 0 && sent(1) > 0 && sent(2) > 0);
    assert!(
        nodes[1]["messages_published"].as_u64().unwrap() >= 2,
        "{nodes:?}"
    );
}

/// The hostile node as a child (`cix-testnet hostile-node`): forged and invalid entries on
/// the topic and a corrupt dataset; honest children refuse all of it and graylist it.
#[test]
fn process_mode_runs_a_hostile_child() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/process-hostile.toml");
    let out = Command::new(TESTNET)
        .args(["run", "--mode", "process", "--json", "--scenario"])
        .arg(&file)
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(r["mode"], "process");
    assert_eq!(r["ok"], true, "{}", r["steps"]);
    let h = &r["hostile"];
    assert_eq!(h["node"], 3);
    assert_eq!(h["sent"], 51, "{h}");
    assert!(h["rejected_direct"].as_u64().unwrap() > 0, "{h}");
    assert_eq!(h["rejected_forwarded"], 0, "{h}");
    assert_eq!(h["invalid_accepted"], 0, "{h}");
    assert_eq!(h["corrupt_fetches"], 1, "{h}");
    assert_eq!(h["corrupt_fetches_refused"], 1, "{h}");
    assert_eq!(h["below_graylist"], true, "{h}");
    assert!(h["scores"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["score"].as_f64().unwrap() < GRAYLIST_THRESHOLD || s["node"] == 3));
}
