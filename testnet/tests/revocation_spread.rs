//! `cix-testnet revocation` on a small network: every node receives every revocation, and the
//! figures it reports are consistent with each other.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cix_testnet::revocation::{run, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_receives_every_revocation_and_the_figures_add_up() {
    let report = run(Options {
        nodes: 6,
        revocations: 5,
        links: 2,
        spacing: Duration::from_millis(20),
        timeout: Duration::from_secs(20),
    })
    .await
    .expect("the measurement runs");
    assert!(report.ok, "missing arrivals: {}", report.missing);
    assert_eq!(report.missing, 0);
    assert_eq!((report.nodes, report.revocations), (6, 5));
    let (p, a) = (&report.per_node, &report.until_all);
    assert!(p.median_ms <= p.p99_ms && p.p99_ms <= p.max_ms, "{p:?}");
    assert!(a.median_ms <= a.p99_ms && a.p99_ms <= a.max_ms, "{a:?}");
    // The last node to get a revocation is as late as the latest single arrival.
    assert_eq!(a.max_ms, p.max_ms);
    assert!(report
        .text()
        .contains("every node received every revocation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_of_one_is_refused() {
    let err = run(Options {
        nodes: 1,
        revocations: 1,
        links: 1,
        spacing: Duration::ZERO,
        timeout: Duration::from_secs(1),
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("at least 2 nodes"), "{err}");
}
