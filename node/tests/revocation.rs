//! Revocation against running nodes over loopback (DESIGN §5; ISO 37156 9.2 b, an owner changes
//! the data's permissions): a revoked grant is refused (by the requester's own node, which knows
//! of the revocation, and by the owner with the code `revoked`), the revocation reaches a node
//! that was not there when it was gossiped (catch-up from a peer other than its signer), it
//! survives the owner's restart, the requester can ask again and be granted afresh, and a
//! stranger cannot revoke someone else's grant.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use cix_node::publish::{publish, PublishRequest};
use cix_node::revoke::{revoke, RevokeRequest};
use cix_node::{access, tokens, transfer, NodeEvent};
use cix_protocol::revocation::Revocation;
use cix_protocol::ucan::Cid;
use cix_protocol::wire::{DenyCode, TransferHeader, TransferRequest};
use common::{eventually, readings_csv, spawn, wait_for};

fn named(path: &std::path::Path, title: &str) -> PublishRequest {
    PublishRequest {
        resolves: Vec::new(),
        dataset: None,
        path: path.to_path_buf(),
        title: Some(title.into()),
        spectrum: Some("shared-named".into()),
        meta: Some("domain = \"water\"\nkind = \"supply\"\n".into()),
        ..Default::default()
    }
}

/// Publishes a shared-named dataset on `owner`, has `requester` ask, approves it, and returns
/// the dataset id and the CID of the delegation granted.
async fn granted(
    owner: &common::TestNode,
    requester: &common::TestNode,
    data: &[u8],
) -> (String, Cid) {
    let file = owner.path("mains.csv");
    std::fs::write(&file, data).unwrap();
    let published = publish(&owner.node, named(&file, "Main pressures"))
        .await
        .unwrap();
    let id = published.dataset.parse().unwrap();
    let store = requester.node.shared.store.clone();
    eventually("the requester to learn the entry", || {
        store.latest_entry(&id).unwrap().is_some()
    })
    .await;
    let outcome = access::request(&requester.node, id, "leak detection", false)
        .await
        .unwrap();
    assert_eq!(outcome.status, "pending");
    let queued = owner.node.shared.store.requests_in().unwrap();
    let approved = access::approve(&owner.node.shared, &queued[0].id).unwrap();
    let cix_node::store::Decision::Approved { delegation, .. } = approved.decision else {
        panic!("not approved");
    };
    (published.dataset, Cid::of_token(&delegation))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_grant_is_refused_everywhere_also_after_restart() {
    common::init_tracing();
    let owner = spawn("Water Board", vec![]).await;
    let requester = spawn("Transit Authority", vec![owner.addr().await]).await;
    let mut requester_events = requester.node.events();
    let data = readings_csv(2_000);
    let (dataset, cid) = granted(&owner, &requester, &data).await;

    // Granted: the fetch works.
    let out = requester.path("mains.csv");
    transfer::fetch(&requester.node, &dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);

    // The owner revokes it by a prefix of its CID; the requester hears it by gossip.
    let prefix = cid.to_string()[..16].to_string();
    let line = revoke(
        &owner.node,
        &RevokeRequest {
            cid: prefix,
            reason: Some("agreement ended".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(line.revoked, cid.to_string());
    assert!(line.issued_here);
    wait_for(&mut requester_events, "the revocation to arrive", |e| {
        matches!(e, NodeEvent::RevocationAccepted { revoked, .. } if *revoked == cid.to_string())
    })
    .await;

    // Refused from now on: the requester's node knows, says why and how to ask again; nothing
    // is written. The owner refuses the same chain presented by hand, with the code `revoked`.
    let again = requester.path("mains-2.csv");
    let err = transfer::fetch(&requester.node, &dataset, &again, |_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("revoked"), "{err}");
    assert!(err.contains("agreement ended"), "{err}");
    assert!(err.contains("cix request"), "{err}");
    assert!(!again.exists());
    let (code, reason) = presented_by_hand(&requester, &owner.node.did(), &dataset).await;
    assert_eq!(code, DenyCode::Revoked, "{reason}");
    assert!(reason.contains("agreement ended"), "{reason}");
    assert_eq!(owner.node.shared.stats.snapshot().transfers_refused, 1);
    let listed = tokens::list(&owner.node.shared).unwrap();
    assert!(
        listed
            .iter()
            .any(|l| l.cid == cid.to_string() && l.state == "revoked"),
        "{listed:?}"
    );

    // A node that was away catches up from the requester, not from the revocation's signer.
    let late = spawn("Waste Services", vec![requester.addr().await]).await;
    let late_store = late.node.shared.store.clone();
    eventually("the late node to catch up on the revocation", || {
        late_store.revocation_count() == 1
    })
    .await;
    assert_eq!(
        late_store.revocations_of(&cid).unwrap()[0].revocation.iss,
        owner.node.did()
    );

    // The owner restarts from its home: the revocation is still in force.
    let requester_addr = requester.addr().await;
    let common::TestNode { node, dir, .. } = owner;
    node.shutdown().await.unwrap();
    drop(node);
    let home = cix_node::Home::new(dir.path().join("home"));
    let mut config = home.load_config().unwrap();
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.bootstrap = vec![requester_addr];
    let restarted = cix_node::start(home, config).await.unwrap();
    assert_eq!(restarted.shared.store.revocation_count(), 1);
    let owner_peer = restarted.peer_id();
    let peers = requester.node.clone();
    let deadline = tokio::time::Instant::now() + common::STEP;
    while !peers
        .peers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.peer_id == owner_peer.to_string())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the owner never reconnected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, reason) = presented_by_hand(&requester, &restarted.did(), &dataset).await;
    assert_eq!(code, DenyCode::Revoked, "after the restart: {reason}");
    assert!(!again.exists());

    // The requester asks again (the old purpose stands): a new request in the owner's queue,
    // and once approved, a new grant that works.
    let id = dataset.parse().unwrap();
    let outcome = access::request(&requester.node, id, "", false)
        .await
        .unwrap();
    assert_eq!(outcome.status, "pending", "{outcome:?}");
    let fresh = restarted
        .shared
        .store
        .requests_in()
        .unwrap()
        .into_iter()
        .find(|r| r.decision == cix_node::store::Decision::Pending)
        .expect("a new pending request");
    assert_eq!(fresh.purpose, "leak detection");
    access::approve(&restarted.shared, &fresh.id).unwrap();
    transfer::fetch(&requester.node, &dataset, &again, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), data);
}

/// Presents the requester's stored (revoked) grant to `owner` with a fresh, honest invocation,
/// bypassing the requester's own refusal, and returns the owner's refusal.
async fn presented_by_hand(
    requester: &common::TestNode,
    owner: &cix_protocol::identity::Did,
    dataset: &str,
) -> (DenyCode, String) {
    let id: cix_protocol::catalogue::DatasetId = dataset.parse().unwrap();
    let grant = requester
        .node
        .shared
        .store
        .request_out(&id)
        .unwrap()
        .unwrap()
        .delegation;
    let entry = requester
        .node
        .shared
        .store
        .latest_entry(&id)
        .unwrap()
        .unwrap();
    let content = entry.entry.primary().unwrap().content.unwrap();
    let inv = common::fetch_invocation(
        requester,
        owner,
        dataset,
        &content,
        "leak detection",
        vec![Cid::of_token(&grant)],
    );
    let req = TransferRequest {
        dataset: id,
        content,
        ranges: vec![],
        invocation: Some(inv.seal(&requester.node.shared.key).unwrap().0),
        proofs: vec![serde_bytes::ByteBuf::from(grant)],
        profile: Some(requester.node.shared.profile.bytes.clone()),
    };
    match transfer::send_transfer(&requester.node, owner, &req)
        .await
        .unwrap()
        .1
    {
        TransferHeader::Refused { code, reason } => (code, reason),
        other => panic!("the revoked grant was served: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_revoke_someone_elses_grant() {
    common::init_tracing();
    let owner = spawn("Power Utility", vec![]).await;
    let requester = spawn("Environment Office", vec![owner.addr().await]).await;
    let stranger = spawn("Hostile Agency", vec![owner.addr().await]).await;
    let mut owner_events = owner.node.events();
    let data = readings_csv(300);
    let (dataset, cid) = granted(&owner, &requester, &data).await;

    // The stranger signs a revocation of the owner's grant: well formed, so it is kept and
    // passed on, but the stranger is nowhere in the chain, so it breaks nothing.
    let line = revoke(
        &stranger.node,
        &RevokeRequest {
            cid: cid.to_string(),
            reason: Some("mischief".into()),
        },
    )
    .await
    .unwrap();
    assert!(!line.issued_here);
    wait_for(&mut owner_events, "the owner to receive it", |e| {
        matches!(e, NodeEvent::RevocationAccepted { revoked, .. } if *revoked == cid.to_string())
    })
    .await;
    let out = requester.path("copy.csv");
    transfer::fetch(&requester.node, &dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);

    // A prefix that names nothing the stranger issued is refused before anything is signed.
    let err = revoke(
        &stranger.node,
        &RevokeRequest {
            cid: cid.to_string()[..12].to_string(),
            reason: None,
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("issued no delegation"), "{err}");

    // A reason over the limit is refused, and nothing is stored.
    let before = stranger.node.shared.store.revocation_count();
    let err = revoke(
        &stranger.node,
        &RevokeRequest {
            cid: cid.to_string(),
            reason: Some("x".repeat(cix_protocol::revocation::MAX_REVOCATION_REASON_BYTES + 1)),
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("longer than"), "{err}");
    assert_eq!(stranger.node.shared.store.revocation_count(), before);
    // Sanity: the type the stranger signed is the one the spec describes.
    let kept = owner.node.shared.store.revocations_of(&cid).unwrap();
    assert_eq!(kept.len(), 1);
    let r: &Revocation = &kept[0].revocation;
    assert_eq!(r.iss, stranger.node.did());
}
