//! Process mode where the children make partitions and latency themselves (`--faults
//! filter`, the fallback wherever network namespaces or netem are missing): every child runs
//! `cix node run --testnet-faults` and the runner sets its refused peers and its delays and
//! losses over its admin API. Each test runs the `cix-testnet` binary on a small scenario and asserts
//! from its report, whose figures come from the children's own `cix::event` records.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

const TESTNET: &str = env!("CARGO_BIN_EXE_cix-testnet");

/// Runs `cix-testnet run --mode process --json ARGS --scenario FILE` with `text` as FILE.
fn run(text: &str, args: &[&str]) -> Output {
    let cix = Path::new(TESTNET).with_file_name("cix");
    assert!(
        cix.is_file(),
        "{} is missing: build the whole workspace (cargo build --workspace) first",
        cix.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenario.toml");
    std::fs::write(&file, text).unwrap();
    Command::new(TESTNET)
        .args(["run", "--mode", "process", "--json"])
        .args(args)
        .arg("--scenario")
        .arg(&file)
        .output()
        .unwrap()
}

fn report(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `scenarios/process-filter-partition.toml`: two pairs cut apart by the children's filter;
/// each side publishes, node 3 is killed and restarted while apart (its filter set again), and
/// after the heal every node holds every entry. Then, with the switch still on, node 3 is
/// killed again, misses an entry, and catches up after its restart.
#[test]
fn process_mode_partition_by_the_childrens_filter_holds_until_the_heal() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/process-filter-partition.toml");
    let text = std::fs::read_to_string(file).unwrap();
    let r = report(&run(&text, &["--faults", "filter"]));
    assert_eq!(r["mode"], "process");
    assert_eq!(r["faults"], "filter");
    assert!(
        r["network_emulation"]
            .as_str()
            .unwrap()
            .contains("--testnet-faults"),
        "{}",
        r["network_emulation"]
    );
    assert_eq!(r["ok"], true, "{}", r["steps"]);
    let steps = r["steps"].as_array().unwrap();
    let actions: Vec<&str> = steps
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "publish",
            "partition",
            "kill",
            "publish",
            "restart",
            "heal",
            "kill",
            "publish",
            "restart"
        ]
    );
    assert!(steps.iter().all(|s| s["held"] == true), "{steps:?}");
    // Node 1's entry reached neither 2 nor 3 before the heal, node 2's neither 0 nor 1: four
    // acceptances after it at least. Had the partition leaked, they would have come before.
    let c = &r["convergence"][0];
    assert_eq!(c["converged"], true);
    assert!(c["arrivals_after_heal"].as_u64().unwrap() >= 4, "{c}");
    // Every entry on every node, node 3's last one through its catch-up after the restart.
    let entries = r["propagation"]["records"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert!(
        entries.iter().all(|e| e["reached"] == 3 && e["of"] == 3),
        "{entries:?}"
    );
    assert_eq!(r["full_catalogue_on_every_live_node"], true);
    assert_eq!(r["live_nodes_at_end"], 4);
}

/// 150 ms one way between {0, 1} and {2, 3}, by the children's delaying transport.
const LATENCY: &str = r#"
name = "filter-latency"
nodes = 4

[topology]
kind = "full"

[[step]]
action = "publish"
nodes = [0]
wait = "entries"
timeout = "20s"

[[step]]
action = "latency"
groups = [[0, 1], [2, 3]]
delay = "150ms"
loss = 0.0

[[step]]
action = "publish"
nodes = [0, 2]
interval = "100ms"
wait = "entries"
timeout = "30s"
"#;

#[test]
fn process_mode_latency_by_the_childrens_transport_delays_only_traffic_across_groups() {
    let r = report(&run(LATENCY, &["--faults", "filter"]));
    assert_eq!(r["faults"], "delay");
    assert_eq!(r["ok"], true, "{}", r["steps"]);
    let l = &r["latency"];
    assert_eq!(l["delay_ms"], 150.0);
    assert_eq!(l["mechanism"], "delay");
    // Two entries after the step, one from each group: each reached one node within its
    // group and two across.
    let (within, across) = (&l["within_group"], &l["across_groups"]);
    assert!(l["across_min_ms"].as_f64().unwrap() >= 150.0, "{l}");
    assert!(across["median_ms"].as_f64().unwrap() >= 150.0, "{l}");
    assert!(within["median_ms"].as_f64().unwrap() < 75.0, "{l}");
    assert!(within["max_ms"].as_f64().unwrap() < 150.0, "{l}");
}

#[test]
fn process_mode_refuses_a_loss_of_one_the_children_cannot_model_naming_the_step() {
    let lossy = LATENCY.replace("loss = 0.0", "loss = 1.0");
    let out = run(&lossy, &["--faults", "filter"]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("step 2 (latency)")
            && e.contains("loss 1 drops every packet")
            && e.contains("partition step")
            && e.contains("netns"),
        "{e}"
    );
    assert!(out.stdout.is_empty());
}

/// `scenarios/latency-loss.toml` (100 ms and a loss of 0.6 between two pairs) with the
/// children's delaying transport: each child is told its peers' delay, loss and loss seed over
/// `PUT /v1/testnet/delays` and holds a chunk read with a lost segment for a retransmission
/// timeout more. As in process (`netns.rs`, where the odds are worked out), some entries cross
/// only after the delay plus Linux's 200 ms minimum timeout, every entry arrives, and nothing
/// within a group is slowed.
#[test]
fn process_mode_loss_by_the_childrens_transport_shows_as_retransmission_delay() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/latency-loss.toml");
    let text = std::fs::read_to_string(file).unwrap();
    let r = report(&run(&text, &["--faults", "filter"]));
    assert_eq!(r["faults"], "delay");
    assert_eq!(r["ok"], true, "{}", r["steps"]);
    let how = r["network_emulation"].as_str().unwrap();
    assert!(
        how.contains("--testnet-faults") && how.contains("loss modelled as TCP retransmission"),
        "{how}"
    );
    let l = &r["latency"];
    assert_eq!(l["loss"], 0.6);
    assert_eq!(l["retransmission_delay_ms"], 400.0);
    let records = r["propagation"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 20);
    assert!(
        records.iter().all(|e| e["reached"] == 3 && e["of"] == 3),
        "{records:?}"
    );
    let (within, across) = (&l["within_group"], &l["across_groups"]);
    assert!(l["across_min_ms"].as_f64().unwrap() >= 100.0, "{l}");
    assert!(across["max_ms"].as_f64().unwrap() >= 100.0 + 200.0, "{l}");
    assert!(within["max_ms"].as_f64().unwrap() < 100.0, "{l}");
}

/// `--faults auto`: namespaces where they can make every fault step here, the children
/// otherwise; a latency step without loss runs either way.
#[test]
fn process_mode_left_to_choose_runs_latency_with_or_without_netem() {
    let r = report(&run(LATENCY, &[]));
    let faults = r["faults"].as_str().unwrap();
    assert!(faults == "delay" || faults == "netns+netem", "{faults}");
    assert_eq!(r["ok"], true, "{}", r["steps"]);
    assert!(r["latency"]["across_min_ms"].as_f64().unwrap() >= 150.0);
}
