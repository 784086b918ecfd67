//! A hostile peer gossips forged and malformed catalogue entries and revocations: the node it
//! talks to rejects each one before accepting or forwarding it, so a node behind it never sees
//! them.
//!
//! Topology: hostile -- relay -- listener. The hostile peer is a bare libp2p swarm with only
//! gossipsub, publishing whatever bytes it likes on `cix/catalogue/1` and `cix/revocations/1`.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cix_node::NodeEvent;
use cix_protocol::catalogue::{
    Agent, Concept, DataType, DatasetId, Distribution, Domain, Entry, Facets, Insight, Iso, Kind,
    Privacy, Roles, Spectrum, ENTRY_TAG,
};
use cix_protocol::content::ContentHash;
use cix_protocol::envelope;
use cix_protocol::identity::Keypair;
use cix_protocol::revocation::{Revocation, REVOCATION_TAG};
use cix_protocol::ucan::Cid;
use common::wait_for;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr};

fn entry(key: &Keypair, title: &str, spectrum: Spectrum) -> Entry {
    Entry {
        iss: key.did(),
        dataset: DatasetId::generate(),
        version: 1,
        previous: None,
        title: title.into(),
        description: String::new(),
        keywords: vec![],
        themes: vec![],
        publisher: Agent {
            name: "Hostile".into(),
            did: Some(key.did()),
            uri: None,
        },
        contact: None,
        licence: None,
        spatial: None,
        temporal: None,
        issued: "2026-12-03T10:00:00Z".into(),
        modified: "2026-12-03T10:00:00Z".into(),
        distributions: vec![Distribution {
            media_type: "text/csv".into(),
            bytes: Some(1),
            content: Some(ContentHash::of(b"x")),
            filename: None,
            ..Default::default()
        }],
        details: Default::default(),
        iso: Iso {
            data_type: DataType::Thematic,
            kind: Kind::Status,
            concept: Concept::State,
            domain: Domain::Ict,
            insight: Insight::Operational,
            facets: Facets::default(),
            spectrum,
            access: None,
            groups: vec![],
            terms: None,
            roles: Roles {
                creator: Agent {
                    name: "Hostile".into(),
                    did: None,
                    uri: None,
                },
                owner: Agent {
                    name: "Hostile".into(),
                    did: None,
                    uri: None,
                },
                custodians: vec![],
                primary_publisher: key.did(),
                secondary_publisher: None,
            },
            provenance: None,
            quality: None,
            privacy: Privacy {
                personal_data: false,
                high_risk: vec![],
                purpose: None,
                legal_basis: None,
                retention_days: None,
                jurisdiction: "US".into(),
                allowed_jurisdictions: vec![],
                notice: None,
            },
            dictionary: vec![],
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_entries_are_rejected_and_not_forwarded() {
    common::init_tracing();
    // Subscribe to each node's events before it meets anyone, so no event can be missed.
    let relay = common::spawn("Relay Agency", vec![]).await;
    let mut relay_events = relay.node.events();
    let relay_addr: Multiaddr = relay.addr().await.parse().unwrap();
    let listener = common::spawn("Listening Agency", vec![]).await;
    let mut listener_events = listener.node.events();
    listener.node.dial(relay_addr.clone()).await.unwrap();

    // The hostile peer: a bare gossipsub swarm that validates nothing itself.
    let mut hostile = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
                })
                .heartbeat_interval(Duration::from_millis(200))
                .build()
                .unwrap();
            gossipsub::Behaviour::<
                gossipsub::IdentityTransform,
                gossipsub::AllowAllSubscriptionFilter,
            >::new(MessageAuthenticity::Signed(key.clone()), config)
            .unwrap()
        })
        .unwrap()
        .build();
    let topic = IdentTopic::new(cix_protocol::wire::CATALOGUE_TOPIC);
    let revocations = IdentTopic::new(cix_protocol::wire::REVOCATION_TOPIC);
    hostile.behaviour_mut().subscribe(&topic).unwrap();
    hostile.behaviour_mut().subscribe(&revocations).unwrap();
    hostile.dial(relay_addr).unwrap();

    // Wait until the relay knows both peers are on both topics, and the hostile peer knows the
    // relay is.
    let deadline = tokio::time::Instant::now() + common::STEP;
    let mut seen = 0;
    while seen < 2 {
        let ev = tokio::time::timeout_at(deadline, hostile.select_next_some())
            .await
            .expect("hostile never saw the relay subscribe");
        if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) = ev {
            seen += 1;
        }
    }
    for _ in 0..4 {
        wait_for(&mut relay_events, "relay to see two subscribers", |e| {
            matches!(e, NodeEvent::PeerSubscribed { .. })
        })
        .await;
    }
    for _ in 0..2 {
        wait_for(
            &mut listener_events,
            "listener to see the relay subscribe",
            |e| matches!(e, NodeEvent::PeerSubscribed { .. }),
        )
        .await;
    }

    // Four bad messages, then one good one.
    let key = Keypair::generate();
    let mut forged = entry(&key, "Forged", Spectrum::Open)
        .sign(&key)
        .unwrap()
        .bytes;
    forged[20] ^= 0x01; // inside the signature
    let garbage = b"\xa1\x61\x78\xff not cbor".to_vec();
    let closed = envelope::seal(&key, ENTRY_TAG, &entry(&key, "Closed", Spectrum::Closed)).unwrap();
    let other = Keypair::generate();
    let wrong_signer = envelope::seal(
        &other,
        ENTRY_TAG,
        &entry(&key, "Wrong signer", Spectrum::Open),
    )
    .unwrap();
    let good = entry(&key, "Genuine", Spectrum::Open).sign(&key).unwrap();

    let bad = [forged, garbage, closed, wrong_signer];
    for bytes in bad.iter().chain(std::iter::once(&good.bytes)) {
        hostile
            .behaviour_mut()
            .publish(topic.clone(), bytes.clone())
            .unwrap();
    }

    // Three bad revocations, then one good one.
    let revocation = |by: &Keypair, what: &[u8]| Revocation {
        iss: by.did(),
        revoke: Cid::of_token(what),
        at: 1_780_000_000,
        reason: None,
    };
    let mut forged_rev = revocation(&key, b"forged").seal(&key).unwrap().bytes;
    forged_rev[20] ^= 0x01;
    let impostor_rev =
        envelope::seal(&other, REVOCATION_TAG, &revocation(&key, b"impostor")).unwrap();
    // A genuine entry is not a revocation.
    let entry_as_rev = entry(&key, "Not a revocation", Spectrum::Open)
        .sign(&key)
        .unwrap()
        .bytes;
    let good_rev = revocation(&key, b"genuine").seal(&key).unwrap();
    for bytes in [
        forged_rev,
        impostor_rev,
        entry_as_rev,
        good_rev.bytes.clone(),
    ] {
        hostile
            .behaviour_mut()
            .publish(revocations.clone(), bytes)
            .unwrap();
    }
    // Keep the hostile swarm running while the others work.
    let hostile_task = tokio::spawn(async move {
        loop {
            hostile.select_next_some().await;
        }
    });

    // The listener receives the genuine entry through the relay...
    let ev = wait_for(
        &mut listener_events,
        "the genuine entry at the listener",
        |e| {
            matches!(
                e,
                NodeEvent::EntryAccepted { .. } | NodeEvent::EntryRejected { .. }
            )
        },
    )
    .await;
    match ev {
        NodeEvent::EntryAccepted { title, .. } => assert_eq!(title, "Genuine"),
        other => panic!("the listener was handed a bad entry: {other:?}"),
    }

    // ...and the genuine revocation, nothing else...
    let ev = wait_for(
        &mut listener_events,
        "the genuine revocation at the listener",
        |e| {
            matches!(
                e,
                NodeEvent::RevocationAccepted { .. } | NodeEvent::RevocationRejected { .. }
            )
        },
    )
    .await;
    match ev {
        NodeEvent::RevocationAccepted { revoked, .. } => {
            assert_eq!(revoked, Cid::of_token(b"genuine").to_string())
        }
        other => panic!("the listener was handed a bad revocation: {other:?}"),
    }

    // ...and the relay rejected all the bad ones, which therefore never travelled on.
    eventually_rejected(&relay, 4).await;
    let stats = relay.node.shared.stats.clone();
    common::eventually("the relay to reject every bad revocation", || {
        stats.snapshot().revocations_rejected == 3
    })
    .await;
    let heard = listener.node.shared.stats.snapshot();
    assert_eq!(heard.entries_rejected, 0);
    assert_eq!(heard.revocations_rejected, 0);
    assert_eq!(listener.node.shared.store.revocation_count(), 1);
    assert_eq!(listener.node.shared.store.catalogue().unwrap().len(), 1);
    assert_eq!(relay.node.shared.store.catalogue().unwrap().len(), 1);
    hostile_task.abort();
}

async fn eventually_rejected(node: &common::TestNode, n: u64) {
    let stats = node.node.shared.stats.clone();
    common::eventually("the relay to reject every bad entry", || {
        stats.snapshot().entries_rejected == n
    })
    .await;
}
