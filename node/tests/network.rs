//! Scenario tests over real loopback sockets: agencies publish, discover each other's
//! catalogues, negotiate access by data spectrum (ISO 37156 5.5) and fetch verified copies.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use cix_node::publish::{publish, PublishRequest};
use cix_node::{access, transfer, NodeEvent};
use common::{eventually, readings_csv, spawn, wait_for};

fn publish_request(path: &std::path::Path, title: &str, spectrum: &str) -> PublishRequest {
    PublishRequest {
        resolves: Vec::new(),
        dataset: None,
        path: path.to_path_buf(),
        title: Some(title.into()),
        spectrum: Some(spectrum.into()),
        meta: Some("domain = \"water\"\nkind = \"supply\"\ndescription = \"test data\"\n".into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agencies_discover_negotiate_and_fetch_by_spectrum() {
    common::init_tracing();
    let water = spawn("Water Board", vec![]).await;
    let boot = vec![water.addr().await];
    let transit = spawn("Transit Authority", boot.clone()).await;
    let environment = spawn("Environment Office", boot).await;
    let mut transit_events = transit.node.events();
    let mut env_events = environment.node.events();

    // The owner publishes one dataset at each of three levels.
    let data = readings_csv(40_000); // about 1.5 MB: many transfer chunks
    let file = water.path("flows.csv");
    std::fs::write(&file, &data).unwrap();
    let open = publish(&water.node, publish_request(&file, "Hourly flows", "open"))
        .await
        .unwrap();
    let closed = publish(
        &water.node,
        publish_request(&file, "Customer meters", "closed"),
    )
    .await
    .unwrap();
    let named = publish(
        &water.node,
        publish_request(&file, "Main pressures", "shared-named"),
    )
    .await
    .unwrap();
    assert_eq!(open.content_hash, blake3::hash(&data).to_hex().to_string());
    assert_eq!(closed.announced_to, 0, "closed data is never announced");

    // Discovery: both peers learn the open and the named entry, by gossip or catch-up.
    for (events, who) in [
        (&mut transit_events, "transit"),
        (&mut env_events, "environment"),
    ] {
        let mut seen = std::collections::HashSet::new();
        while seen.len() < 2 {
            let ev = wait_for(events, &format!("{who} to accept both entries"), |e| {
                matches!(e, NodeEvent::EntryAccepted { .. })
            })
            .await;
            if let NodeEvent::EntryAccepted { dataset, .. } = ev {
                seen.insert(dataset);
            }
        }
        assert!(seen.contains(&open.dataset) && seen.contains(&named.dataset));
    }
    for peer in [&transit, &environment] {
        let listed: Vec<String> = peer
            .node
            .shared
            .store
            .catalogue()
            .unwrap()
            .iter()
            .map(|e| e.entry.dataset.to_string())
            .collect();
        assert!(
            !listed.contains(&closed.dataset),
            "{} must never see the closed entry",
            peer.name
        );
    }

    // A directory as the output is refused before anything is fetched.
    let err = transfer::fetch(&transit.node, &open.dataset, transit.dir.path(), |_, _| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
    assert_eq!(water.node.shared.stats.snapshot().transfers_served, 0);

    // Open data: fetched without asking, byte-identical.
    let out = transit.path("flows-copy.csv");
    let got = transfer::fetch(&transit.node, &open.dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(got.content_hash, open.content_hash);

    // Shared-named without a request: refused, and nothing written.
    let out = transit.path("pressures.csv");
    let err = transfer::fetch(&transit.node, &named.dataset, &out, |_, _| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a grant"), "{err}");
    assert!(!out.exists());

    // Request: pending in the owner's queue; fetching still refused until approval.
    let named_id = named.dataset.parse().unwrap();
    let outcome = access::request(&transit.node, named_id, "flood model calibration", false)
        .await
        .unwrap();
    assert_eq!(outcome.status, "pending");
    let queue = water.node.shared.store.requests_in().unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].purpose, "flood model calibration");
    assert_eq!(queue[0].requester, transit.node.did());
    let err = transfer::fetch(&transit.node, &named.dataset, &out, |_, _| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("waiting for the owner's approval"),
        "{err}"
    );
    assert!(!out.exists());

    access::approve(&water.node.shared, &queue[0].id[..6]).unwrap();
    let mut progress = Vec::new();
    let got = transfer::fetch(&transit.node, &named.dataset, &out, |a, b| {
        progress.push((a, b))
    })
    .await
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(got.bytes, data.len() as u64);
    assert_eq!(
        progress.last(),
        Some(&(data.len() as u64, data.len() as u64))
    );
    // The grant is reusable: each fetch signs a fresh invocation.
    let again = transit.path("pressures-2.csv");
    transfer::fetch(&transit.node, &named.dataset, &again, |_, _| {})
        .await
        .unwrap();

    // A second requester is denied by the operator, and told why.
    let outcome = access::request(&environment.node, named_id, "curiosity", false)
        .await
        .unwrap();
    assert_eq!(outcome.status, "pending");
    let pending = water
        .node
        .shared
        .store
        .requests_in()
        .unwrap()
        .into_iter()
        .find(|r| r.requester == environment.node.did())
        .unwrap();
    access::deny_request(&water.node.shared, &pending.id, "not needed for your remit").unwrap();
    let out = environment.path("pressures.csv");
    let err = transfer::fetch(&environment.node, &named.dataset, &out, |_, _| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not needed for your remit"),
        "{err}"
    );
    assert!(!out.exists());

    // The closed dataset: refused by its owner, whatever the requester knows of its id.
    let out = environment.path("meters.csv");
    let err = transfer::fetch(&environment.node, &closed.dataset, &out, |_, _| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    assert!(!out.exists());

    // Served three transfers (open once, named twice), refused none at the stream level.
    let stats = water.node.shared.stats.snapshot();
    assert_eq!(stats.transfers_served, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_that_joins_late_catches_up_on_the_catalogue() {
    common::init_tracing();
    let owner = spawn("Power Utility", vec![]).await;
    let file = owner.path("gen.csv");
    std::fs::write(&file, readings_csv(100)).unwrap();
    let open = publish(&owner.node, publish_request(&file, "Generation", "open"))
        .await
        .unwrap();
    assert_eq!(open.announced_to, 0, "nobody was there to hear it");

    let late = spawn("Waste Services", vec![owner.addr().await]).await;
    let store = late.node.shared.store.clone();
    let id: cix_protocol::catalogue::DatasetId = open.dataset.parse().unwrap();
    eventually("the late node to catch up", || {
        store.latest_entry(&id).unwrap().is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_that_breaks_the_rules_is_refused_at_publish_and_nothing_is_stored() {
    let owner = spawn("Power Utility", vec![]).await;
    let file = owner.path("people.csv");
    std::fs::write(&file, "name,kwh\nA,1\n").unwrap();
    let req = PublishRequest {
        resolves: Vec::new(),
        dataset: None,
        path: file,
        title: Some("Household consumption".into()),
        spectrum: Some("open".into()),
        meta: Some("personal_data = true\npurpose = \"billing\"\nlegal_basis = \"contract\"\nretention_days = 30\n".into()),
        ..Default::default()
    };
    let err = publish(&owner.node, req).await.unwrap_err();
    assert!(
        err.to_string().contains("iso.privacy.personal_data"),
        "{err}"
    );
    assert!(owner.node.shared.store.catalogue().unwrap().is_empty());
    let blobs = std::fs::read_dir(owner.node.shared.home.blobs())
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "a refused entry leaves no blob behind");
    let tmp = std::fs::read_dir(owner.node.shared.home.tmp())
        .unwrap()
        .count();
    assert_eq!(tmp, 0, "nor a temporary file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restarted_from_its_home_keeps_and_serves_what_it_published() {
    common::init_tracing();
    let owner = spawn("Water Board", vec![]).await;
    let data = readings_csv(500);
    let file = owner.path("levels.csv");
    std::fs::write(&file, &data).unwrap();
    let open = publish(
        &owner.node,
        publish_request(&file, "Reservoir levels", "open"),
    )
    .await
    .unwrap();
    let did = owner.node.did();
    let common::TestNode { node, dir, .. } = owner;
    node.shutdown().await.unwrap();
    // Idempotent.
    node.shutdown().await.unwrap();
    // The last handle goes: the store's lock is released, as when a process exits.
    drop(node);

    // The same home, started again: same identity, same catalogue, still served.
    let home = cix_node::Home::new(dir.path().join("home"));
    let mut config = home.load_config().unwrap();
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    let again = cix_node::start(home, config).await.unwrap();
    assert_eq!(again.did(), did);
    let id: cix_protocol::catalogue::DatasetId = open.dataset.parse().unwrap();
    assert!(again.shared.store.latest_entry(&id).unwrap().is_some());

    let addr = again.listening().await.unwrap()[0].to_string();
    let reader = spawn("Planning Office", vec![addr]).await;
    let store = reader.node.shared.store.clone();
    eventually("the entry to reach the new peer", || {
        store.latest_entry(&id).unwrap().is_some()
    })
    .await;
    let out = reader.path("levels.csv");
    transfer::fetch(&reader.node, &open.dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_a_port_in_use_is_refused_with_a_clear_error() {
    let first = spawn("Power Utility", vec![]).await;
    let addr = first.addr().await;
    // /ip4/127.0.0.1/tcp/PORT/p2p/... -> the same address without the peer id.
    let port: String = addr
        .split('/')
        .nth(4)
        .expect("a tcp port in the address")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let home = cix_node::Home::new(dir.path().join("home"));
    let mut config = cix_node::Config::new("Water Board", "US");
    config.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
    home.init(&config).unwrap();
    let err = cix_node::start(home, config).await.unwrap_err();
    assert!(format!("{err:#}").contains("already in use"), "{err:#}");
}
