//! Scenario files are validated with errors that name the step and what is wrong; the command
//! line refuses them with exit code 2 before starting any node.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use cix_testnet::scenario::{parse, parse_with, Action, Condition, Topology};

const TESTNET: &str = env!("CARGO_BIN_EXE_cix-testnet");

const HEAD: &str = "name = \"t\"\nnodes = 4\n[topology]\nkind = \"random\"\ndegree = 2\n";

fn with_step(step: &str) -> String {
    format!("{HEAD}\n[[step]]\n{step}\n")
}

fn error_of(text: &str) -> String {
    parse(text).unwrap_err()
}

#[test]
fn a_good_file_parses_into_its_steps() {
    let s = parse(&format!(
        "{HEAD}\n[[step]]\naction = \"publish\"\nnodes = [0, 3]\ncount = 2\nwait = \"entries\"\n\
         timeout = \"5s\"\n[[step]]\naction = \"partition\"\ngroups = [[0, 1]]\n\
         [[step]]\naction = \"heal\"\nwait = \"converged\"\n[[step]]\naction = \"kill\"\n\
         nodes = \"all\"\n"
    ))
    .unwrap();
    assert_eq!(s.topology, Topology::Random { degree: 2 });
    assert_eq!(s.steps.len(), 4);
    assert!(
        matches!(&s.steps[0].action, Action::Publish { nodes, count: 2, .. } if nodes == &[0, 3])
    );
    assert_eq!(s.steps[0].wait, Some(Condition::Entries));
    assert_eq!(s.steps[0].timeout.as_secs(), 5);
    assert_eq!(s.steps[2].wait, Some(Condition::Converged));
    assert!(matches!(&s.steps[3].action, Action::Kill { nodes } if nodes == &[0, 1, 2, 3]));
}

#[test]
fn an_unknown_step_is_named_with_the_known_ones() {
    let e = error_of(&with_step("action = \"explode\""));
    assert!(e.contains("step 1"), "{e}");
    assert!(e.contains("unknown step \"explode\""), "{e}");
    assert!(e.contains("partition"), "{e}");
}

#[test]
fn a_node_out_of_range_is_named() {
    let e = error_of(&with_step("action = \"kill\"\nnodes = [1, 4]"));
    assert!(e.contains("step 1 (kill)"), "{e}");
    assert!(e.contains("node 4"), "{e}");
    assert!(e.contains("0 to 3"), "{e}");
    let e = error_of(&with_step("action = \"fetch\"\nfrom = 0\nowner = 9"));
    assert!(e.contains("node 9 in owner"), "{e}");
    // --nodes replaces the file's count, and the steps are checked against it.
    let text = with_step("action = \"kill\"\nnodes = [3]");
    assert!(parse(&text).is_ok());
    let e = parse_with(&text, Some(3)).unwrap_err();
    assert!(e.contains("node 3"), "{e}");
}

#[test]
fn a_node_twice_or_a_negative_node_is_named() {
    let e = error_of(&with_step("action = \"kill\"\nnodes = [1, 2, 1]"));
    assert!(
        e.contains("step 1 (kill)") && e.contains("node 1 is listed twice"),
        "{e}"
    );
    let e = error_of(&with_step("action = \"publish\"\nnodes = [-1]"));
    assert!(
        e.contains("step 1 (publish)") && e.contains("each 0 or more"),
        "{e}"
    );
    let e = error_of(&with_step("action = \"fetch\"\nfrom = -1\nowner = 0"));
    assert!(
        e.contains("step 1 (fetch)") && e.contains("0 or more"),
        "{e}"
    );
    // Publishers may repeat, each turn publishing (the list is their order).
    let s = parse(&with_step("action = \"publish\"\nnodes = [0, 1, 0]")).unwrap();
    assert!(matches!(&s.steps[0].action, Action::Publish { nodes, .. } if nodes == &[0, 1, 0]));
    // A long list of one node is refused at its second entry, at once.
    let many = vec!["0"; 200_000].join(", ");
    let e = error_of(&with_step(&format!("action = \"kill\"\nnodes = [{many}]")));
    assert!(e.contains("node 0 is listed twice"), "{e}");
}

#[test]
fn a_bad_duration_is_named() {
    let e = error_of(&with_step("action = \"sleep\"\nduration = \"5 parsecs\""));
    assert!(e.contains("step 1 (sleep)"), "{e}");
    assert!(e.contains("bad duration \"5 parsecs\""), "{e}");
    let e = error_of(&with_step(
        "action = \"heal\"\nwait = \"converged\"\ntimeout = \"10\"",
    ));
    assert!(e.contains("timeout") && e.contains("unit"), "{e}");
}

#[test]
fn fields_that_do_not_belong_are_refused() {
    let e = error_of(&with_step("action = \"kill\"\nnodes = [1]\ncount = 3"));
    assert!(e.contains("unknown field \"count\""), "{e}");
    let e = error_of(&format!("{HEAD}colour = \"red\"\n"));
    assert!(e.contains("colour"), "{e}");
    let e = error_of(&with_step("action = \"heal\"\nwait = \"forever\""));
    assert!(e.contains("unknown wait condition \"forever\""), "{e}");
    let e = error_of(&with_step(
        "action = \"partition\"\ngroups = [[0, 1], [1, 2]]",
    ));
    assert!(e.contains("node 1 is in two groups"), "{e}");
    let e = error_of(&with_step(
        "action = \"churn\"\nshare = 1.5\nperiod = \"1s\"\nduration = \"5s\"",
    ));
    assert!(e.contains("share 1.5"), "{e}");
    let e = error_of("name = \"t\"\nnodes = 4\n[topology]\nkind = \"ring\"\n");
    assert!(e.contains("unknown kind \"ring\""), "{e}");
    let e = error_of(&with_step("action = \"heal\"\nwait = \"graylisted\""));
    assert!(e.contains("hostile"), "{e}");
    let e = error_of(&with_step(
        "action = \"sleep\"\nduration = \"1s\"\nwait = \"quiet\"\ntimeout = \"10ms\"",
    ));
    assert!(e.contains("quiet") && e.contains("timeout"), "{e}");
    assert!(parse(&with_step(
        "action = \"sleep\"\nduration = \"1s\"\nwait = \"quiet\"\ntimeout = \"30s\""
    ))
    .is_ok());
}

#[test]
fn the_command_line_refuses_a_bad_file_with_exit_code_2_before_starting_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, with_step("action = \"kill\"\nnodes = [7]")).unwrap();
    let out = Command::new(TESTNET)
        .args(["run", "--scenario"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node 7 in nodes is out of range"), "{err}");
    let out = Command::new(TESTNET)
        .args(["run", "--scenario", "no-such-scenario"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("neither a built-in scenario"), "{err}");
}

#[test]
fn the_shipped_scenario_files_validate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 1, "no scenario files in {}", dir.display());
}

#[test]
fn the_readme_example_validates() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme
        .find("```toml\nname = \"example\"")
        .expect("the README example")
        + 8;
    let end = start + readme[start..].find("```").unwrap();
    let s = parse(&readme[start..end]).unwrap();
    assert_eq!(s.nodes, 9);
    assert!(s.steps.len() >= 10);
}
