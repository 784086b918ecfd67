//! Process mode with real network faults (`--faults netns`): every `cix node run` child in its
//! own network namespace, a partition by routes and its heal, and latency by `tc netem`. Each
//! test runs the `cix-testnet` binary; where this machine cannot make namespaces (not root) or
//! has no netem qdisc, the binary refuses the step with its reason and the test prints that
//! and skips. `process_faults.rs` tests the fallback, where the children make the faults.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

const TESTNET: &str = env!("CARGO_BIN_EXE_cix-testnet");

/// Runs `cix-testnet run --mode process --faults netns` on `scenario`; `None` (after printing
/// why) when the binary refused because this machine lacks what the faults need.
fn run_process(scenario: &Path, needs: &[&str]) -> Option<(serde_json::Value, u32)> {
    let cix = Path::new(TESTNET).with_file_name("cix");
    assert!(
        cix.is_file(),
        "{} is missing: build the whole workspace (cargo build --workspace) first",
        cix.display()
    );
    let child = Command::new(TESTNET)
        .args([
            "run",
            "--mode",
            "process",
            "--faults",
            "netns",
            "--json",
            "--scenario",
        ])
        .arg(scenario)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out: Output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && needs.iter().any(|n| stderr.contains(n)) {
        println!("skipped: {}", stderr.trim());
        return None;
    }
    assert!(out.status.success(), "{stderr}");
    Some((serde_json::from_slice(&out.stdout).unwrap(), pid))
}

/// Runs `cix-testnet run --json` in process on the scenario file `file`, which must pass; its
/// report.
fn run_in_process(file: &Path) -> serde_json::Value {
    let out = Command::new(TESTNET)
        .args(["run", "--json", "--scenario"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// No namespace of the run with process id `pid` is left.
fn assert_cleaned_up(pid: u32) {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    let tag = format!("cixt{pid}x");
    assert!(
        !list.lines().any(|l| l.starts_with(&tag)),
        "namespaces left behind: {list}"
    );
}

#[test]
fn process_mode_partition_in_namespaces_holds_until_the_heal() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/netns-partition-heal.toml");
    let Some((r, pid)) = run_process(&file, &["cannot be met here"]) else {
        return;
    };
    assert_cleaned_up(pid);
    assert_eq!(r["mode"], "process");
    assert_eq!(r["faults"], "netns");
    assert_eq!(r["ok"], true, "{r}");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps[1]["action"], "partition");
    assert_eq!(steps[4]["action"], "heal");
    assert_eq!(steps[4]["held"], true);
    // Nodes 1 and 2, on either side, each published one entry while apart: each reached the
    // two nodes of the other side only after the heal (and every node holds all three).
    let c = &r["convergence"][0];
    assert_eq!(c["converged"], true);
    assert_eq!(c["arrivals_after_heal"], 4, "{c}");
    assert!(c["converge_ms"].as_f64().unwrap() > 0.0);
    let entries = r["propagation"]["records"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(
        entries.iter().all(|e| e["reached"] == 3 && e["of"] == 3),
        "{entries:?}"
    );
}

#[test]
fn process_mode_latency_delays_propagation_by_at_least_the_added_delay() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latency.toml");
    // 150 ms one way between node 0 and the other two; every acceptance elsewhere must come
    // at least that long after the announce.
    std::fs::write(
        &file,
        "name = \"latency\"\nnodes = 3\n[topology]\nkind = \"full\"\n\
         [[step]]\naction = \"latency\"\ngroups = [[0], [1, 2]]\ndelay = \"150ms\"\nloss = 0.0\n\
         [[step]]\naction = \"publish\"\nnodes = [0]\ncount = 2\nwait = \"entries\"\n\
         timeout = \"20s\"\n",
    )
    .unwrap();
    let Some((r, pid)) = run_process(&file, &["cannot be met here"]) else {
        return;
    };
    assert_cleaned_up(pid);
    assert_eq!(r["faults"], "netns+netem");
    assert_eq!(r["ok"], true, "{r}");
    let times: Vec<f64> = r["propagation"]["per_node_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(times.len(), 4, "{times:?}");
    assert!(times.iter().all(|t| *t >= 150.0), "{times:?}");
}

#[test]
fn in_process_mode_refuses_a_loss_of_one_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latency.toml");
    std::fs::write(
        &file,
        "name = \"latency\"\nnodes = 2\n[topology]\nkind = \"full\"\n[[step]]\naction = \"latency\"\ngroups = [[0]]\n\
         delay = \"10ms\"\nloss = 1.0\n",
    )
    .unwrap();
    let out = Command::new(TESTNET)
        .args(["run", "--scenario"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("step 1 (latency)")
            && e.contains("loss 1 drops every packet")
            && e.contains("partition step")
            && e.contains("--mode process"),
        "{e}"
    );
}

/// Without netem: in process, the nodes' delaying transport adds the step's 150 ms between
/// the groups, and the report shows it in propagation across groups but not within.
#[test]
fn in_process_latency_delays_only_traffic_across_groups() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/latency-delay.toml");
    let r = run_in_process(&file);
    assert_eq!(r["faults"], "delay");
    assert_eq!(r["ok"], true, "{}", r["steps"]);
    let l = &r["latency"];
    assert_eq!(l["delay_ms"], 150.0);
    assert_eq!(l["mechanism"], "delay");
    let across = &l["across_groups"];
    let within = &l["within_group"];
    // Two entries, 3 nodes across and 2 within each.
    assert!(l["across_min_ms"].as_f64().unwrap() >= 150.0, "{l}");
    assert!(across["median_ms"].as_f64().unwrap() >= 150.0, "{l}");
    assert!(within["median_ms"].as_f64().unwrap() < 75.0, "{l}");
    assert!(within["max_ms"].as_f64().unwrap() < 150.0, "{l}");
}

/// Without netem: in process, a loss is modelled by the nodes' delaying transport as TCP
/// retransmission delay (`scenarios/latency-loss.toml`: 100 ms and a loss of 0.6 between two
/// pairs, ten entries from each). A lost chunk is held 200 ms plus the 200 ms round trip more,
/// so some entries cross in at least the delay plus Linux's 200 ms minimum timeout, none is
/// lost, and nothing within a group is slowed.
///
/// The seed fixes each pair's draw per chunk index, but not which bytes a chunk holds (that
/// follows the sockets' timing), so the run is not repeatable to the millisecond. The
/// assertions hold whatever the timing: each entry reaches a node of the other group along
/// three paths, all of which must lose it (or hold it behind a lost chunk) for it to be late;
/// at 0.6 that is about one (entry, node) pair in five at the very least, so among forty the
/// chance that none is late is below 1e-4 (measured: the median across is about 400 ms).
#[test]
fn in_process_loss_shows_as_retransmission_delay_across_groups_only() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/latency-loss.toml");
    let r = run_in_process(&file);
    assert_eq!(r["faults"], "delay");
    assert_eq!(r["ok"], true, "{}", r["steps"]);
    let how = r["network_emulation"].as_str().unwrap();
    assert!(
        how.contains("loss modelled as TCP retransmission delay") && how.contains("not dropped"),
        "{how}"
    );
    let l = &r["latency"];
    assert_eq!(l["delay_ms"], 100.0);
    assert_eq!(l["loss"], 0.6);
    assert_eq!(
        l["loss_by"],
        "retransmission delay by the nodes' transport (not dropped)"
    );
    // Linux's 200 ms floor plus the round trip of twice 100 ms.
    let rto = l["retransmission_delay_ms"].as_f64().unwrap();
    assert_eq!(rto, 400.0);
    // Every entry reached every node: loss delays, it does not drop.
    let records = r["propagation"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 20);
    assert!(
        records.iter().all(|e| e["reached"] == 3 && e["of"] == 3),
        "{records:?}"
    );
    let (within, across) = (&l["within_group"], &l["across_groups"]);
    let across_max = across["max_ms"].as_f64().unwrap();
    assert!(l["across_min_ms"].as_f64().unwrap() >= 100.0, "{l}");
    assert!(
        across_max >= 100.0 + 200.0,
        "no entry waited a retransmission: {l}"
    );
    // One retransmission per loss: a chunk waits at most the delay and one timeout after it
    // came in, however many before it were lost (a generous second for a busy machine).
    assert!(across_max < 100.0 + rto + 1000.0, "{l}");
    assert!(within["max_ms"].as_f64().unwrap() < 100.0, "{l}");
}

#[test]
fn the_fault_mechanism_follows_the_mode_the_steps_and_the_choice() {
    use cix_testnet::builtin::{self, Knobs};
    use cix_testnet::run::{faults_for, FaultChoice, Faults, Mode};
    use cix_testnet::scenario;
    let k = || Knobs {
        nodes: Some(4),
        entries: None,
        duration: None,
        interval: None,
    };
    let split = builtin::get("partition-heal", k()).unwrap();
    let plain = builtin::get("propagation", k()).unwrap();
    let slow = |loss: &str| {
        scenario::parse_with(
            &format!(
                "name = \"slow\"\nnodes = 4\n[topology]\nkind = \"full\"\n\
                 [[step]]\naction = \"partition\"\ngroups = [[0, 1]]\n\
                 [[step]]\naction = \"latency\"\ngroups = [[0, 1]]\ndelay = \"50ms\"\n\
                 loss = {loss}\n"
            ),
            None,
        )
        .unwrap()
    };
    let (both, lossy, whole) = (slow("0.0"), slow("0.2"), slow("1.0"));
    use FaultChoice::{Auto, Filter, Netns};
    assert_eq!(
        faults_for(&split, Mode::InProcess, Auto).unwrap(),
        Faults::Filter
    );
    assert_eq!(
        faults_for(&plain, Mode::InProcess, Auto).unwrap(),
        Faults::None
    );
    assert_eq!(
        faults_for(&both, Mode::InProcess, Filter).unwrap(),
        Faults::FilterDelay
    );
    let e = format!(
        "{:#}",
        faults_for(&split, Mode::InProcess, Netns).unwrap_err()
    );
    assert!(e.contains("--faults netns is for --mode process"), "{e}");
    // Without fault steps process mode needs no namespaces (and probes for none).
    assert_eq!(
        faults_for(&plain, Mode::Process, Auto).unwrap(),
        Faults::None
    );
    assert_eq!(
        faults_for(&plain, Mode::Process, Netns).unwrap(),
        Faults::None
    );
    // In process the nodes model a loss below 1 as retransmission delay; 1 they cannot.
    assert_eq!(
        faults_for(&lossy, Mode::InProcess, Auto).unwrap(),
        Faults::FilterDelay
    );
    let e = format!(
        "{:#}",
        faults_for(&whole, Mode::InProcess, Auto).unwrap_err()
    );
    assert!(
        e.contains("step 2 (latency)") && e.contains("loss 1 drops every packet"),
        "{e}"
    );
    // Asked for, the children make every fault themselves, loss below 1 included.
    assert_eq!(
        faults_for(&split, Mode::Process, Filter).unwrap(),
        Faults::Filter
    );
    assert_eq!(
        faults_for(&both, Mode::Process, Filter).unwrap(),
        Faults::FilterDelay
    );
    assert_eq!(
        faults_for(&lossy, Mode::Process, Filter).unwrap(),
        Faults::FilterDelay
    );
    let e = format!(
        "{:#}",
        faults_for(&whole, Mode::Process, Filter).unwrap_err()
    );
    assert!(
        e.contains("step 2 (latency)")
            && e.contains("loss 1 drops every packet")
            && e.contains("--faults netns"),
        "{e}"
    );
    // Left to choose, process mode takes namespaces where they can make every fault step
    // and the children otherwise; never an error for a partition or a loss below 1.
    let split_auto = faults_for(&split, Mode::Process, Auto).unwrap();
    match faults_for(&split, Mode::Process, Netns) {
        Ok(f) => {
            assert_eq!(f, Faults::Netns);
            assert_eq!(split_auto, Faults::Netns);
        }
        Err(e) => {
            let e = format!("{e:#}");
            assert!(
                e.contains("cannot be met here") && e.contains("--faults filter"),
                "{e}"
            );
            assert_eq!(split_auto, Faults::Filter);
            println!("no namespaces here: {e}");
        }
    }
    match faults_for(&both, Mode::Process, Netns) {
        Ok(f) => {
            assert_eq!(f, Faults::NetnsNetem);
            assert_eq!(faults_for(&both, Mode::Process, Auto).unwrap(), f);
            assert_eq!(faults_for(&lossy, Mode::Process, Auto).unwrap(), f);
            assert_eq!(faults_for(&whole, Mode::Process, Auto).unwrap(), f);
        }
        Err(e) => {
            println!("no netem here: {e:#}");
            assert_eq!(
                faults_for(&both, Mode::Process, Auto).unwrap(),
                Faults::FilterDelay
            );
            assert_eq!(
                faults_for(&lossy, Mode::Process, Auto).unwrap(),
                Faults::FilterDelay
            );
            let e = format!("{:#}", faults_for(&whole, Mode::Process, Auto).unwrap_err());
            assert!(
                e.contains("step 2 (latency)")
                    && e.contains("loss 1 drops every packet")
                    && e.contains("netem, which could drop every packet, cannot be used here"),
                "{e}"
            );
        }
    }
    assert_eq!(Faults::NetnsNetem.name(), "netns+netem");
    assert_eq!(
        serde_json::to_value(Faults::FilterDelay).unwrap(),
        serde_json::json!("filter+delay")
    );
    assert!(Faults::Delay.made_by_nodes() && !Faults::Delay.uses_namespaces());
    assert!(Faults::Netns.uses_namespaces() && !Faults::Netns.made_by_nodes());
}
