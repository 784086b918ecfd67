//! Custodians serving shared data (specs/transfer.md r3 §6; ISO 37156 7.2 availability,
//! 7.3.2 authenticity, 8.2.2 conditions of sharing, 8.3.4 records), against running nodes over
//! loopback: an owner, one custodian and a requester with a grant fetch from both at once;
//! without the owner's serve delegation, to a requester without a grant, after the
//! requester's grant is revoked and after the custodian's serve delegation is revoked, the
//! custodian refuses.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use cix_node::audit::Filter;
use cix_node::publish::{publish, PublishRequest};
use cix_node::revoke::{revoke, RevokeRequest};
use cix_node::tokens::{self, GrantRequest, ImportRequest};
use cix_node::{access, transfer};
use cix_protocol::catalogue::DatasetId;
use cix_protocol::content::ContentHash;
use cix_protocol::ucan::{self, Cid};
use cix_protocol::wire::{DenyCode, TransferHeader, TransferRequest};
use common::{eventually, readings_csv, spawn, TestNode};

/// Has `requester` ask for `id` with `purpose` and the owner approve it; the grant's bytes.
async fn granted(owner: &TestNode, requester: &TestNode, id: DatasetId, purpose: &str) -> Vec<u8> {
    let outcome = access::request(&requester.node, id, purpose, false)
        .await
        .unwrap();
    assert_eq!(outcome.status, "pending", "{outcome:?}");
    let queued = owner
        .node
        .shared
        .store
        .requests_in()
        .unwrap()
        .into_iter()
        .find(|r| r.decision == cix_node::store::Decision::Pending)
        .expect("a pending request");
    let approved = access::approve(&owner.node.shared, &queued.id).unwrap();
    let cix_node::store::Decision::Approved { delegation, .. } = approved.decision else {
        panic!("not approved");
    };
    delegation
}

/// Asks `source` by hand, as `by` under the one-link chain `grant`, for the first chunk group
/// of `content` with an honest invocation addressed to `source`; the header it answers.
async fn ask(
    by: &TestNode,
    source: &TestNode,
    owner: &TestNode,
    id: DatasetId,
    content: ContentHash,
    grant: Option<&[u8]>,
) -> TransferHeader {
    let (invocation, proofs) = match grant {
        Some(grant) => {
            let mut inv = common::fetch_invocation(
                by,
                &owner.node.did(),
                &id.to_string(),
                &content,
                "regional mirror",
                vec![Cid::of_token(grant)],
            );
            inv.aud = Some(source.node.did());
            let bytes = inv.seal(&by.node.shared.key).unwrap().0;
            (
                Some(bytes),
                vec![serde_bytes::ByteBuf::from(grant.to_vec())],
            )
        }
        None => (None, Vec::new()),
    };
    let req = TransferRequest {
        dataset: id,
        content,
        ranges: vec![(0, 16 * 1024)],
        invocation,
        proofs,
        profile: Some(by.node.shared.profile.bytes.clone()),
    };
    let (mut stream, header) = transfer::send_transfer_to(&by.node, source.node.peer_id(), &req)
        .await
        .unwrap();
    if matches!(header, TransferHeader::Ok { .. }) {
        // Read the body to its end, so the custodian finishes its serve.
        use futures::AsyncReadExt;
        let mut body = Vec::new();
        stream.read_to_end(&mut body).await.unwrap();
        assert!(body.len() >= 16 * 1024, "a short body: {}", body.len());
    }
    header
}

fn refused(header: TransferHeader) -> (DenyCode, String) {
    match header {
        TransferHeader::Refused { code, reason } => (code, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custodian_serves_shared_data_only_under_the_owners_serve_delegation_and_grant() {
    common::init_tracing();
    let owner = spawn("Water Board", vec![]).await;
    let custodian = spawn("County Data Hub", vec![owner.addr().await]).await;
    let requester = spawn("Transit Authority", vec![owner.addr().await]).await;
    let stranger = spawn("Parks Office", vec![owner.addr().await]).await;

    // A shared-named dataset of three segments (transfer.md §7), so both sources get some.
    let data = readings_csv(240_000);
    assert!(data.len() as u64 > 2 * transfer::SEGMENT_BYTES);
    let file = owner.path("mains.csv");
    std::fs::write(&file, &data).unwrap();
    let published = publish(
        &owner.node,
        PublishRequest {
            path: file,
            title: Some("Main pressures".into()),
            spectrum: Some("shared-named".into()),
            meta: Some("domain = \"water\"\nkind = \"supply\"\n".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dataset = published.dataset.clone();
    let id: DatasetId = dataset.parse().unwrap();
    for n in [&custodian, &requester, &stranger] {
        let store = n.node.shared.store.clone();
        eventually("the entry to spread", || {
            store.latest_entry(&id).unwrap().is_some()
        })
        .await;
    }
    let content = owner
        .node
        .shared
        .store
        .latest_entry(&id)
        .unwrap()
        .unwrap()
        .entry
        .primary()
        .unwrap()
        .content
        .unwrap();

    // The custodian fetches its copy from the owner under an ordinary grant.
    granted(&owner, &custodian, id, "regional mirror").await;
    let copy = custodian.path("mains.csv");
    transfer::fetch(&custodian.node, &dataset, &copy, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), data);

    // A holder without a serve delegation does not serve shared data, not even to a
    // requester the owner granted (ISO 37156 8.2.2: only on the owner's word).
    let grant = granted(&owner, &requester, id, "regional mirror").await;
    let (code, reason) =
        refused(ask(&requester, &custodian, &owner, id, content, Some(&grant)).await);
    assert_eq!(code, DenyCode::NoGrant, "{reason}");
    assert!(reason.contains("serve delegation"), "{reason}");

    // The owner makes it a custodian: a serve delegation, imported on the custodian.
    let serve = tokens::grant(
        &owner.node.shared,
        &GrantRequest {
            dataset: dataset.clone(),
            to: custodian.node.did().to_string(),
            days: Some(30),
            purpose: None,
            command: Some(ucan::CMD_SERVE.into()),
            fields: None,
        },
    )
    .unwrap();
    assert_eq!(serve.command, ucan::CMD_SERVE);
    tokens::import(
        &custodian.node.shared,
        &ImportRequest {
            chain: serve.chain.clone(),
        },
    )
    .unwrap();

    // The requester fetches from the owner and the custodian at once; every byte verified.
    let out = requester.path("mains.csv");
    let fetched = transfer::fetch_with(
        &requester.node,
        &dataset,
        &out,
        &transfer::FetchOptions {
            from: vec![
                owner.node.peer_id().to_string(),
                custodian.node.peer_id().to_string(),
            ],
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    println!("sources: {:?}", fetched.sources);
    assert_eq!(fetched.sources.len(), 2);
    for s in &fetched.sources {
        assert_eq!(s.state, "ok", "{s:?}");
        assert!(s.bytes > 0, "a source delivered nothing: {s:?}");
    }
    assert_eq!(
        fetched.sources.iter().map(|s| s.bytes).sum::<u64>(),
        data.len() as u64
    );
    // ISO 37156 8.3.4: the custodian's log names each serve and the delegation it served under.
    let log = custodian
        .node
        .shared
        .audit
        .list(&Filter::default())
        .unwrap();
    let serves = log
        .iter()
        .filter(|l| {
            l.detail
                .as_deref()
                .is_some_and(|d| d.contains("as custodian") && d.contains(&serve.cid))
        })
        .count();
    assert!(serves >= 1, "no custodian serve in the audit log: {log:?}");

    // A peer without a grant is refused by the custodian.
    let (code, reason) = refused(ask(&stranger, &custodian, &owner, id, content, None).await);
    assert_eq!(code, DenyCode::NoGrant, "{reason}");
    // ... and so is one presenting someone else's grant.
    let (code, reason) =
        refused(ask(&stranger, &custodian, &owner, id, content, Some(&grant)).await);
    assert_eq!(code, DenyCode::NoGrant, "{reason}");

    // The owner revokes the requester's grant; once the custodian knows, it refuses too.
    let grant_cid = Cid::of_token(&grant);
    revoke(
        &owner.node,
        &RevokeRequest {
            cid: grant_cid.to_string(),
            reason: Some("agreement ended".into()),
        },
    )
    .await
    .unwrap();
    let store = custodian.node.shared.store.clone();
    eventually("the custodian to learn of the revocation", || {
        !store.revocations_of(&grant_cid).unwrap().is_empty()
    })
    .await;
    let (code, reason) =
        refused(ask(&requester, &custodian, &owner, id, content, Some(&grant)).await);
    assert_eq!(code, DenyCode::Revoked, "{reason}");
    assert!(reason.contains("agreement ended"), "{reason}");

    // Granted afresh, the requester is served by the custodian again...
    let fresh = granted(&owner, &requester, id, "regional mirror").await;
    let header = ask(&requester, &custodian, &owner, id, content, Some(&fresh)).await;
    assert!(matches!(header, TransferHeader::Ok { .. }), "{header:?}");

    // ... until the owner revokes the custodian's serve delegation: then it refuses, while the
    // owner still serves the same grant.
    let serve_cid: Cid = serve.cid.parse().unwrap();
    revoke(
        &owner.node,
        &RevokeRequest {
            cid: serve.cid.clone(),
            reason: Some("mirror closed".into()),
        },
    )
    .await
    .unwrap();
    eventually(
        "the custodian to learn its serve delegation is revoked",
        || !store.revocations_of(&serve_cid).unwrap().is_empty(),
    )
    .await;
    let (code, reason) =
        refused(ask(&requester, &custodian, &owner, id, content, Some(&fresh)).await);
    assert_eq!(code, DenyCode::Revoked, "{reason}");
    assert!(reason.contains("serve delegation"), "{reason}");
    let header = ask(&requester, &owner, &owner, id, content, Some(&fresh)).await;
    assert!(matches!(header, TransferHeader::Ok { .. }), "{header:?}");
}
