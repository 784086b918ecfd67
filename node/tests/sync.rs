//! Versions, withdrawals (ISO 37156 4.2 g) and incremental catch-up on `/cix/sync/1` r1, with
//! real nodes on loopback.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use cix_node::publish::{publish, PublishRequest};
use cix_node::{transfer, withdraw, Home, Node, NodeEvent};
use cix_protocol::catalogue::{DatasetId, SignedEntry};
use cix_protocol::identity::Keypair;
use cix_protocol::withdrawal::Withdrawal;
use common::{spawn, wait_for, TestNode};

fn request(path: &std::path::Path, title: &str, dataset: Option<String>) -> PublishRequest {
    PublishRequest {
        resolves: Vec::new(),
        dataset,
        path: path.to_path_buf(),
        title: Some(title.into()),
        spectrum: Some("open".into()),
        meta: Some("domain = \"water\"\nkind = \"supply\"\ndescription = \"test data\"\n".into()),
        accept_invalid: false,
    }
}

/// Publishes `rows` rows of readings on `node` as `title` (a new version of `dataset` if given).
async fn publish_csv(
    node: &TestNode,
    name: &str,
    rows: usize,
    title: &str,
    dataset: Option<String>,
) -> cix_node::publish::Published {
    let file = node.path(name);
    std::fs::write(&file, common::readings_csv(rows)).unwrap();
    publish(&node.node, request(&file, title, dataset))
        .await
        .unwrap()
}

/// `n` synthetic entries signed by `key`, each a new dataset shaped like `template`.
fn synthetic(template: &SignedEntry, key: &Keypair, n: usize, tag: &str) -> Vec<SignedEntry> {
    (0..n)
        .map(|i| {
            let mut e = template.entry.clone();
            e.iss = key.did();
            e.iso.roles.primary_publisher = key.did();
            e.dataset = DatasetId::generate();
            e.title = format!("{tag} synthetic {i}");
            e.sign(key).unwrap()
        })
        .collect()
}

fn put_all(node: &Node, entries: &[SignedEntry]) {
    for e in entries {
        assert!(node.shared.store.put_entry(e).unwrap());
    }
    node.shared.store.flush().unwrap();
}

async fn entry_accepted(
    node: &TestNode,
    rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    entry: &str,
) {
    let what = format!("{} to accept entry {entry}", node.name);
    wait_for(
        rx,
        &what,
        |e| matches!(e, NodeEvent::EntryAccepted { entry: got, .. } if got == entry),
    )
    .await;
}

async fn catch_up_from(rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>, peer: &Node) -> u64 {
    let who = peer.peer_id().to_string();
    match wait_for(
        rx,
        "catch-up to finish",
        |e| matches!(e, NodeEvent::CatchUpDone { peer, .. } if *peer == who),
    )
    .await
    {
        NodeEvent::CatchUpDone { received, .. } => received,
        _ => unreachable!(),
    }
}

/// Waits until the peer subscribed to all three topics (catalogue, revocations, withdrawals):
/// the subscriptions cross at connection, so gossip published after this reaches the peer.
async fn subscribed(rx: &mut tokio::sync::broadcast::Receiver<NodeEvent>, what: &str) {
    for _ in 0..3 {
        wait_for(rx, what, |e| matches!(e, NodeEvent::PeerSubscribed { .. })).await;
    }
}

fn listed(node: &Node, dataset: &str) -> bool {
    node.shared
        .store
        .catalogue()
        .unwrap()
        .iter()
        .any(|e| e.entry.dataset.to_string() == dataset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_catches_up_incrementally_with_versions_and_withdrawals() {
    common::init_tracing();
    let a = spawn("Alpha Water", vec![]).await;
    let mut a_events = a.node.events();
    let b = spawn("Beta Energy", vec![a.addr().await]).await;
    subscribed(&mut a_events, "Alpha to see Beta subscribe").await;

    // Beta publishes Y twice (a new version) and Z, then withdraws Z; Alpha hears by gossip.
    let y1 = publish_csv(&b, "y1.csv", 20, "Mains flow", None).await;
    entry_accepted(&a, &mut a_events, &y1.entry).await;
    let y2 = publish_csv(&b, "y2.csv", 30, "Mains flow", Some(y1.dataset.clone())).await;
    assert_eq!((y2.dataset.as_str(), y2.version), (y1.dataset.as_str(), 2));
    entry_accepted(&a, &mut a_events, &y2.entry).await;
    let z = publish_csv(&b, "z.csv", 10, "Old pumps", None).await;
    entry_accepted(&a, &mut a_events, &z.entry).await;
    let w = withdraw::withdraw(
        &b.node,
        &withdraw::WithdrawRequest {
            dataset: z.dataset.clone(),
            reason: Some("pumps decommissioned".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(w.version, 1);
    wait_for(
        &mut a_events,
        "Alpha to accept the withdrawal",
        |e| matches!(e, NodeEvent::WithdrawalAccepted { dataset, .. } if *dataset == z.dataset),
    )
    .await;

    // The withdrawal takes Z out of every listing; history keeps every version.
    for n in [&a.node, &b.node] {
        assert!(!listed(n, &z.dataset), "Z still listed");
        assert!(listed(n, &y1.dataset));
        let h = withdraw::history(&n.shared, &y1.dataset).unwrap();
        let versions: Vec<(u64, bool)> =
            h.versions.iter().map(|v| (v.version, v.current)).collect();
        assert_eq!(versions, vec![(1, false), (2, true)]);
        assert_eq!(h.versions[1].content_hash, y2.content_hash);
        let hz = withdraw::history(&n.shared, &z.dataset).unwrap();
        assert!(!hz.listed);
        assert_eq!(hz.versions.len(), 1);
        assert_eq!(hz.withdrawals.len(), 1);
        assert_eq!(
            hz.withdrawals[0].reason.as_deref(),
            Some("pumps decommissioned")
        );
    }
    // The owner refuses to serve what it withdrew, saying so.
    let err = transfer::fetch(&a.node, &z.dataset, &a.path("z.out"), |_, _| {})
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("withdrew"), "{err:#}");
    assert!(!a.path("z.out").exists());

    // Alpha holds 1,500 more entries, half of them Beta's: catch-up must relay third parties'.
    let x = publish_csv(&a, "x.csv", 5, "Reservoir levels", None).await;
    let template = a
        .node
        .shared
        .store
        .entry(&x.entry.parse().unwrap())
        .unwrap()
        .unwrap();
    put_all(
        &a.node,
        &synthetic(&template, &a.node.shared.key, 750, "alpha"),
    );
    put_all(
        &a.node,
        &synthetic(&template, &b.node.shared.key, 750, "beta"),
    );
    let listed_on_a = a.node.shared.store.catalogue().unwrap().len();
    assert_eq!(
        listed_on_a, 1502,
        "X, Y and 1,500 synthetic entries; Z withdrawn"
    );

    // A late joiner that only knows Alpha.
    let c = spawn("Gamma Transit", vec![a.addr().await]).await;
    let mut c_events = c.node.events();
    let received = catch_up_from(&mut c_events, &a.node).await;
    // Every current entry (Z's too, which the withdrawal hides) and the withdrawal, nothing else.
    assert_eq!(received, 1502 + 1 + 1);
    let on_c = c.node.shared.store.catalogue().unwrap();
    assert_eq!(on_c.len(), listed_on_a);
    let betas = on_c.iter().filter(|e| e.entry.iss == b.node.did()).count();
    assert_eq!(betas, 751, "Beta's Y and 750 synthetic, relayed by Alpha");
    assert!(!listed(&c.node, &z.dataset));
    assert_eq!(
        c.node
            .shared
            .store
            .withdrawals_of(&z.dataset.parse().unwrap())
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.node
            .shared
            .store
            .latest_entry(&y1.dataset.parse().unwrap())
            .unwrap()
            .unwrap()
            .entry
            .version,
        2
    );

    // Gamma goes away; 100 more (third-party) entries appear on Alpha; Gamma comes back and
    // receives exactly those.
    let TestNode {
        node: c_node,
        dir: c_dir,
        ..
    } = c;
    let home = Home::new(c_dir.path().join("home"));
    let config = home.load_config().unwrap();
    c_node.shutdown().await.unwrap();
    drop(c_node);
    drop(c_events);
    put_all(
        &a.node,
        &synthetic(&template, &b.node.shared.key, 100, "later"),
    );
    let served_before = a.node.shared.stats.snapshot().sync_records_served;
    let c2 = cix_node::start(home, config).await.unwrap();
    let mut c2_events = c2.events();
    let received = catch_up_from(&mut c2_events, &a.node).await;
    assert_eq!(received, 100, "only what appeared while Gamma was away");
    assert_eq!(
        a.node.shared.stats.snapshot().sync_records_served - served_before,
        100
    );
    assert_eq!(
        c2.shared.store.catalogue().unwrap().len(),
        listed_on_a + 100
    );

    // A later version by the owner lists Z again, everywhere it reaches.
    let z2 = publish_csv(
        &b,
        "z2.csv",
        12,
        "Old pumps, refurbished",
        Some(z.dataset.clone()),
    )
    .await;
    assert_eq!(z2.version, 2);
    entry_accepted(&a, &mut a_events, &z2.entry).await;
    assert!(listed(&a.node, &z.dataset));
    assert!(listed(&b.node, &z.dataset));
    c2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_withdrawal_by_someone_other_than_the_publisher_is_rejected() {
    common::init_tracing();
    let owner = spawn("Owner Water", vec![]).await;
    let mut owner_events = owner.node.events();
    let relay = spawn("Hostile Relay", vec![owner.addr().await]).await;
    let mut relay_events = relay.node.events();
    subscribed(&mut owner_events, "the owner to see the relay subscribe").await;
    let d = publish_csv(&owner, "d.csv", 10, "Hydrants", None).await;
    // The relay catches up from the owner (or hears the gossip).
    wait_for(
        &mut relay_events,
        "the relay to get the entry",
        |e| matches!(e, NodeEvent::EntryAccepted { entry, .. } if *entry == d.entry),
    )
    .await;
    // The relay forges a withdrawal of the owner's dataset with its own key and keeps it as
    // if it were genuine.
    let forged = Withdrawal {
        iss: relay.node.did(),
        dataset: d.dataset.parse().unwrap(),
        version: 1,
        at: cix_node::access::now(),
        reason: Some("mischief".into()),
    }
    .seal(&relay.node.shared.key)
    .unwrap();
    assert!(relay.node.shared.store.put_withdrawal(&forged).unwrap());

    let joiner = spawn("Joiner", vec![relay.addr().await]).await;
    let mut j_events = joiner.node.events();
    let ev = wait_for(
        &mut j_events,
        "the joiner to reject the forged withdrawal",
        |e| matches!(e, NodeEvent::WithdrawalRejected { .. }),
    )
    .await;
    let NodeEvent::WithdrawalRejected { reason, from } = ev else {
        unreachable!()
    };
    assert_eq!(from, relay.node.peer_id().to_string());
    assert!(reason.contains("its publisher is"), "{reason}");
    assert!(listed(&joiner.node, &d.dataset), "the dataset stays listed");
    assert!(joiner
        .node
        .shared
        .store
        .withdrawals_of(&d.dataset.parse().unwrap())
        .unwrap()
        .is_empty());
    assert_eq!(joiner.node.shared.stats.snapshot().withdrawals_rejected, 1);
}
