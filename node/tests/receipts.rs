//! Receipts (ISO 37156 8.3.4, 9.4), retention deletion (8.2.2 e), the jurisdiction refusal kept
//! for accountability (8.2.2 h) and the privacy notice (8.3.3), over real loopback sockets.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cix_node::audit::{Filter, Listed};
use cix_node::publish::{publish, PublishRequest};
use cix_node::{access, privacy, receipts, transfer, Home, NodeEvent};
use cix_protocol::catalogue::{DatasetId, SignedEntry};
use cix_protocol::caveats;
use cix_protocol::receipt::{Receipt, ReceiptRequest, ReceiptResponse, SignedReceipt};
use cix_protocol::ucan::Delegation;
use cix_protocol::wire::{DenyCode, TransferHeader, TransferRequest};
use common::{eventually, readings_csv, spawn, spawn_with, test_notice, wait_for, TestNode};
use serde_bytes::ByteBuf;

async fn publish_with(owner: &TestNode, data: &[u8], spectrum: &str, meta: &str) -> String {
    let file = owner.path(&format!("{}.csv", hex::encode(rand::random::<[u8; 6]>())));
    std::fs::write(&file, data).unwrap();
    publish(
        &owner.node,
        PublishRequest {
            resolves: Vec::new(),
            dataset: None,
            path: file,
            title: Some(format!("{spectrum} readings")),
            spectrum: Some(spectrum.into()),
            meta: Some(format!(
                "domain = \"water\"\nkind = \"supply\"\ndescription = \"test\"\n{meta}"
            )),
            ..Default::default()
        },
    )
    .await
    .map(|p| p.dataset)
    .unwrap()
}

async fn entry_at(peer: &TestNode, dataset: &str) -> SignedEntry {
    let id: DatasetId = dataset.parse().unwrap();
    let store = peer.node.shared.store.clone();
    eventually(&format!("{} to learn the entry", peer.name), || {
        store.latest_entry(&id).unwrap().is_some()
    })
    .await;
    store.latest_entry(&id).unwrap().unwrap()
}

const PERSONAL: &str =
    "terms = \"research only\"\npersonal_data = true\npurpose = \"leak detection\"\n\
     legal_basis = \"public task\"\nretention_days = 1\n";

/// The node's audit log, oldest first.
fn audit_of(n: &TestNode) -> Vec<Listed> {
    let mut all = n.node.shared.audit.list(&Filter::default()).unwrap();
    all.sort_by_key(|l| l.seq);
    all
}

fn has(log: &[Listed], kind: &str, detail: &str) -> usize {
    log.iter()
        .filter(|l| l.kind == kind && l.detail.as_deref().is_some_and(|d| d.contains(detail)))
        .count()
}

fn refusal(resp: ReceiptResponse) -> String {
    match resp {
        ReceiptResponse::Refused { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_hold_the_same_verified_receipt_and_forged_receipts_are_refused() {
    common::init_tracing();
    let owner = spawn("Owner Water", vec![]).await;
    let boot = vec![owner.addr().await];
    let reader = spawn("Reader Roads", boot.clone()).await;
    let other = spawn("Other Agency", boot).await;
    let data = readings_csv(200);
    let ds = publish_with(
        &owner,
        &data,
        "shared-public",
        "terms = \"research only\"\n",
    )
    .await;
    let signed = entry_at(&reader, &ds).await;
    let id = signed.entry.dataset;

    // ISO 37156 8.2.2 b: the purpose stated in the request is carried into the grant...
    let o = access::request(&reader.node, id, "flood modelling", true)
        .await
        .unwrap();
    assert_eq!(o.status, "granted", "{o:?}");
    let grant = reader.node.shared.store.request_out(&id).unwrap().unwrap();
    let (d, _) = Delegation::decode(&grant.delegation).unwrap();
    assert_eq!(
        caveats::pinned_text(&d.pol, caveats::ARG_PURPOSE).as_deref(),
        Some("flood modelling")
    );

    let mut owner_events = owner.node.events();
    let out = reader.path("fetched.csv");
    transfer::fetch(&reader.node, &ds, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    wait_for(
        &mut owner_events,
        "the owner to counter-sign",
        |e| matches!(e, NodeEvent::ReceiptCountersigned { dataset, .. } if *dataset == ds),
    )
    .await;

    // Both sides hold the same receipt, counter-signed, and it verifies from its bytes alone.
    let mine = receipts::list(&reader.node.shared).unwrap();
    let theirs = receipts::list(&owner.node.shared).unwrap();
    assert_eq!((mine.len(), theirs.len()), (1, 1));
    assert_eq!(mine[0].id, theirs[0].id);
    assert_eq!(
        (mine[0].role.as_str(), theirs[0].role.as_str()),
        ("receiver", "provider")
    );
    assert_eq!(mine[0].status, "countersigned");
    assert_eq!(theirs[0].status, "countersigned");
    let a = receipts::show(&reader.node.shared, &mine[0].id).unwrap();
    let b = receipts::show(&owner.node.shared, &mine[0].id[..12]).unwrap();
    assert_eq!(a.bundle, b.bundle);
    let bundle = hex::decode(a.bundle.unwrap()).unwrap();
    let verdict = receipts::verify_bundle(&bundle);
    assert!(verdict.valid && verdict.countersigned, "{verdict:?}");
    assert!(
        receipts::verify_kept(&owner.node.shared, &mine[0].id)
            .unwrap()
            .valid
    );
    // ...and into the receipt, with the invocation, bytes, content and both principals.
    assert_eq!(a.purpose.as_deref(), Some("flood modelling"));
    assert!(a.invocation.is_some());
    assert_eq!(a.bytes, data.len() as u64);
    assert_eq!(a.content, signed.entry.held().unwrap().1.to_hex());
    assert_eq!(a.receiver, reader.node.did().to_string());
    assert_eq!(a.provider, owner.node.did().to_string());
    assert!(a.start <= a.end);
    // Any changed byte of the bundle is caught.
    for i in [0, bundle.len() / 3, bundle.len() / 2, bundle.len() - 1] {
        let mut bad = bundle.clone();
        bad[i] ^= 0x20;
        assert!(!receipts::verify_bundle(&bad).valid, "byte {i}");
    }

    // Forgeries, sent by the reader to the owner.
    let genuine = SignedReceipt::decode(
        &hex::decode(
            receipts::show(&reader.node.shared, &mine[0].id)
                .unwrap()
                .bundle
                .unwrap(),
        )
        .map(|b| {
            cix_protocol::receipt::Bundle::decode(&b)
                .unwrap()
                .receipt
                .bytes
        })
        .unwrap(),
    )
    .unwrap()
    .receipt;
    let owner_did = owner.node.did();
    let send = |r: Vec<u8>| {
        let node = reader.node.clone();
        async move {
            receipts::send(
                &node,
                &owner_did,
                &ReceiptRequest::Receipt {
                    receipt: ByteBuf::from(r),
                },
            )
            .await
            .unwrap()
        }
    };
    // Signed by another agency than the connected peer.
    let forged = Receipt {
        iss: other.node.did(),
        ..genuine.clone()
    }
    .seal(&other.node.shared.key)
    .unwrap();
    let why = refusal(send(forged.bytes).await);
    assert!(why.contains("not by the connected peer"), "{why}");
    // More bytes than were sent.
    let inflated = Receipt {
        bytes: genuine.bytes + 1,
        ..genuine.clone()
    }
    .seal(&reader.node.shared.key)
    .unwrap();
    let why = refusal(send(inflated.bytes).await);
    assert!(why.contains("served no transfer"), "{why}");
    // A transfer that never happened.
    let never = Receipt {
        dataset: DatasetId(rand::random()),
        ..genuine.clone()
    }
    .seal(&reader.node.shared.key)
    .unwrap();
    let why = refusal(send(never.bytes).await);
    assert!(why.contains("served no transfer"), "{why}");
    // A second receipt for the one transfer already receipted.
    let again = Receipt {
        start: genuine.start - 1,
        ..genuine.clone()
    }
    .seal(&reader.node.shared.key)
    .unwrap();
    let why = refusal(send(again.bytes).await);
    assert!(why.contains("served no transfer"), "{why}");
    // Not a receipt at all.
    let why = refusal(send(vec![0x82, 0x40, 0xa0]).await);
    assert!(why.contains("receipt refused"), "{why}");
    // The owner still keeps only the genuine one, and logged the refusals.
    assert_eq!(receipts::list(&owner.node.shared).unwrap().len(), 1);
    let log = audit_of(&owner);
    assert_eq!(has(&log, "receipt", "receipt refused"), 5);
    let refused: Vec<&Listed> = log
        .iter()
        .filter(|l| l.detail.as_deref() == Some("receipt refused"))
        .collect();
    assert!(refused[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("not by the connected peer"));
    let received: Vec<&Listed> = log
        .iter()
        .filter(|l| {
            l.kind == "receipt"
                && l.detail
                    .as_deref()
                    .is_some_and(|d| d.contains("counter-signed"))
        })
        .collect();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].purpose.as_deref(), Some("flood modelling"));
    assert_eq!(received[0].bytes, Some(data.len() as u64));
    assert_eq!(received[0].token, a.invocation);
    let log = audit_of(&reader);
    assert_eq!(has(&log, "receipt", "signed as receiver"), 1);
    assert_eq!(has(&log, "receipt", "counter-signed by the provider"), 1);

    // A transfer made by hand, with no receipt sent yet: a receipt stating another purpose
    // than the invocation's is refused (ISO 37156 8.2.2 b); the true one, kept unsent and
    // dated a minute ago as if the owner had been unreachable, is sent again by the sweep.
    let (inv, proofs) = transfer::credentials(&reader.node, &signed)
        .await
        .unwrap()
        .unwrap();
    let (inv_bytes, inv_cid) = inv.seal(&reader.node.shared.key).unwrap();
    let req = TransferRequest {
        dataset: id,
        content: signed.entry.held().unwrap().1,
        ranges: Vec::new(),
        invocation: Some(inv_bytes),
        proofs: proofs.into_iter().map(ByteBuf::from).collect(),
        profile: Some(reader.node.shared.profile.bytes.clone()),
    };
    let (mut stream, header) = transfer::send_transfer(&reader.node, &owner_did, &req)
        .await
        .unwrap();
    assert!(matches!(header, TransferHeader::Ok { .. }), "{header:?}");
    let mut got = Vec::new();
    futures::AsyncReadExt::read_to_end(&mut stream, &mut got)
        .await
        .unwrap();
    let plain = cix_node::verified::decode_body(&req.content, data.len() as u64, &[], &got)
        .await
        .unwrap();
    assert_eq!(plain, data);
    let minute_ago = receipts::now_ms() - 60_000;
    let honest = Receipt {
        invocation: Some(inv_cid),
        start: minute_ago - 100,
        end: minute_ago,
        ..genuine.clone()
    };
    let other_purpose = Receipt {
        purpose: Some("marketing".into()),
        ..honest.clone()
    }
    .seal(&reader.node.shared.key)
    .unwrap();
    let why = refusal(send(other_purpose.bytes).await);
    assert!(why.contains("states purpose"), "{why}");
    let honest = honest.seal(&reader.node.shared.key).unwrap();
    let kept = receipts::KeptReceipt {
        role: "receiver".into(),
        receipt: ByteBuf::from(honest.bytes.clone()),
        ack: None,
        refused: None,
    };
    reader
        .node
        .shared
        .store
        .tree("receipts")
        .unwrap()
        .insert(honest.id, cix_protocol::cbor::to_vec(&kept).unwrap())
        .unwrap();
    let unacked =
        |l: &[receipts::ReceiptLine]| l.iter().filter(|r| r.status == "unacknowledged").count();
    assert_eq!(unacked(&receipts::list(&reader.node.shared).unwrap()), 1);
    receipts::sweep(&reader.node).await.unwrap();
    assert_eq!(unacked(&receipts::list(&reader.node.shared).unwrap()), 0);
    assert!(
        receipts::verify_kept(&owner.node.shared, &honest.id_hex())
            .unwrap()
            .countersigned
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_data_is_deleted_at_expiry_also_across_a_restart_and_the_provider_is_told() {
    // ISO 37156 8.2.2 e, with a retention "day" of 4 seconds (the testing knob).
    common::init_tracing();
    let owner = spawn("Owner Energy", vec![]).await;
    let boot = vec![owner.addr().await];
    let reader = spawn_with("Reader Short Clock", boot, |c| {
        c.retention_day_secs = Some(4);
    })
    .await;
    let data = readings_csv(50);
    let ds = publish_with(&owner, &data, "shared-public", PERSONAL).await;
    let signed = entry_at(&reader, &ds).await;
    let o = access::request(&reader.node, signed.entry.dataset, "network planning", true)
        .await
        .unwrap();
    assert_eq!(o.status, "granted", "{o:?}");

    let mut owner_events = owner.node.events();
    let mut reader_events = reader.node.events();
    let first = reader.path("first.csv");
    transfer::fetch(&reader.node, &ds, &first, |_, _| {})
        .await
        .unwrap();
    let held = receipts::held(&reader.node.shared).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].retention_days, 1);
    assert!(first.exists());
    wait_for(
        &mut reader_events,
        "the reader to delete at expiry",
        |e| matches!(e, NodeEvent::DataDeleted { dataset, .. } if *dataset == ds),
    )
    .await;
    assert!(!first.exists(), "the fetched file is gone");
    assert!(receipts::now_ms() >= held[0].expires);
    wait_for(
        &mut owner_events,
        "the owner to note the deletion",
        |e| matches!(e, NodeEvent::DeletionNoted { dataset, .. } if *dataset == ds),
    )
    .await;
    // The audit record of delivery follows the stored mark, so wait for the event after both.
    wait_for(
        &mut reader_events,
        "the reader to log its notice as delivered",
        |e| matches!(e, NodeEvent::DeletionNoticeDelivered { dataset, .. } if *dataset == ds),
    )
    .await;
    let mine = receipts::deletions(&reader.node.shared).unwrap();
    assert!(mine.iter().all(|d| d.delivered), "{mine:?}");
    assert_eq!(mine.len(), 1);
    let theirs = receipts::deletions(&owner.node.shared).unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].id, mine[0].id);
    assert_eq!(theirs[0].receiver, reader.node.did().to_string());
    let kinds = |n: &TestNode| -> Vec<String> { audit_of(n).into_iter().map(|r| r.kind).collect() };
    assert!(kinds(&reader).contains(&"deletion".to_string()));
    assert_eq!(
        has(&audit_of(&reader), "deletion-notice", "sent and noted"),
        1
    );
    assert_eq!(has(&audit_of(&owner), "deletion-notice", "received"), 1);

    // Again, but the node is down when the period runs out: deleted at start-up.
    let second = reader.path("second.csv");
    transfer::fetch(&reader.node, &ds, &second, |_, _| {})
        .await
        .unwrap();
    let expires = receipts::held(&reader.node.shared).unwrap()[0].expires;
    let config = (*reader.node.shared.config).clone();
    let TestNode { node, dir, name } = reader;
    node.shutdown().await.unwrap();
    drop(node);
    assert!(second.exists(), "still there while the node is down");
    assert!(
        receipts::now_ms() < expires,
        "the node stopped before expiry"
    );
    // Wait for the clock, not for the node: the period runs out while it is down.
    let left = u64::try_from(expires - receipts::now_ms()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(left + 200)).await;
    assert!(second.exists(), "nothing deletes while the node is down");
    let node = cix_node::start(Home::new(dir.path().join("home")), config)
        .await
        .unwrap();
    let reader = TestNode { node, dir, name };
    eventually("the restarted node to delete the expired file", || {
        !second.exists()
    })
    .await;
    wait_for(
        &mut owner_events,
        "the owner to note the second deletion",
        |e| matches!(e, NodeEvent::DeletionNoted { dataset, .. } if *dataset == ds),
    )
    .await;
    assert_eq!(receipts::deletions(&owner.node.shared).unwrap().len(), 2);
    assert!(receipts::held(&reader.node.shared).unwrap().is_empty());
    assert_eq!(
        kinds(&reader).iter().filter(|k| *k == "deletion").count(),
        2
    );
    eventually("the second notice to be marked delivered", || {
        receipts::deletions(&reader.node.shared)
            .unwrap()
            .iter()
            .all(|d| d.delivered)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_outside_the_allowed_jurisdictions_is_refused_and_logged_with_its_reason() {
    // ISO 37156 8.2.2 h.
    common::init_tracing();
    let owner = spawn_with("Gemeente Water", vec![], |c| c.jurisdiction = "NL".into()).await;
    let abroad = spawn_with("Overseas Analytics", vec![owner.addr().await], |c| {
        c.jurisdiction = "US".into()
    })
    .await;
    let ds = publish_with(&owner, &readings_csv(20), "shared-public", PERSONAL).await;
    let signed = entry_at(&abroad, &ds).await;
    let o = access::request(&abroad.node, signed.entry.dataset, "benchmarking", true)
        .await
        .unwrap();
    assert_eq!(o.status, "denied");
    assert_eq!(o.code, Some(DenyCode::Jurisdiction), "{o:?}");
    let reason = o.reason.unwrap();
    let log = audit_of(&owner);
    let rec = log
        .iter()
        .find(|r| r.kind == "denial" && r.detail.as_deref().is_some_and(|d| d.contains("8.2.2 h")))
        .expect("the refusal is in the audit log");
    assert_eq!(rec.peer, Some(abroad.node.did().to_string()));
    assert_eq!(rec.reason.as_deref(), Some(reason.as_str()));
    assert_eq!(rec.purpose.as_deref(), Some("benchmarking"));
    assert_eq!(rec.dataset.as_deref(), Some(ds.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_notice_travels_to_peers_and_personal_data_must_link_to_one() {
    // ISO 37156 8.3.3.
    common::init_tracing();
    let owner = spawn("Notice Owner", vec![]).await;
    let boot = vec![owner.addr().await];
    let silent = spawn_with("No Notice Agency", boot.clone(), |c| c.privacy = None).await;
    let reader = spawn("Notice Reader", boot).await;

    let seen = privacy::of_peer(&reader.node, &owner.node.did().to_string())
        .await
        .unwrap();
    assert_eq!(seen.notice, Some(test_notice("Notice Owner")));
    let hash = test_notice("Notice Owner").hash().unwrap();
    assert_eq!(seen.hash.as_deref(), Some(hash.as_str()));
    assert_eq!(
        privacy::own(&owner.node.shared).unwrap().hash,
        Some(hash.clone())
    );
    let none = privacy::of_peer(&reader.node, &silent.node.peer_id().to_string())
        .await
        .unwrap();
    assert!(none.notice.is_none());

    // Personal data names the notice; data that is not personal names none.
    let ds = publish_with(&owner, &readings_csv(10), "shared-public", PERSONAL).await;
    let e = entry_at(&reader, &ds).await;
    assert_eq!(e.entry.iso.privacy.notice.as_deref(), Some(hash.as_str()));
    let ds = publish_with(&owner, &readings_csv(10), "open", "").await;
    assert!(entry_at(&reader, &ds)
        .await
        .entry
        .iso
        .privacy
        .notice
        .is_none());

    // No notice, no personal data.
    let file = silent.path("p.csv");
    std::fs::write(&file, readings_csv(10)).unwrap();
    let err = publish(
        &silent.node,
        PublishRequest {
            resolves: Vec::new(),
            dataset: None,
            path: file,
            title: Some("personal".into()),
            spectrum: Some("shared-public".into()),
            meta: Some(format!(
                "domain = \"water\"\nkind = \"supply\"\ndescription = \"t\"\n{PERSONAL}"
            )),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("privacy notice"), "{text}");
    assert!(silent.node.shared.store.own_all().unwrap().is_empty());
}
