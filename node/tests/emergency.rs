//! Emergency access (ISO 37156 6.7) and the re-check on a registrar trust change (8.2.5), over
//! real loopback sockets with in-process nodes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use cix_node::attest::{attest, AttestRequest};
use cix_node::emergency::{self, AgreeRequest, DeclareRequest, EndRequest, ReviewRequest};
use cix_node::publish::{publish, PublishRequest};
use cix_node::registrars::{self, TrustRequest};
use cix_node::{access, transfer, NodeEvent};
use cix_protocol::catalogue::DatasetId;
use cix_protocol::emergency::{
    Area, Declaration, EmergencyRequest, EmergencyResponse, DECLARATION_TAG,
};
use cix_protocol::envelope;
use cix_protocol::ucan::Cid;
use common::{eventually, readings_csv, spawn, spawn_with, wait_for, TestNode};
use serde_bytes::ByteBuf;

async fn publish_level(owner: &TestNode, spectrum: &str, meta: &str) -> String {
    let file = owner.path(&format!("{}.csv", hex::encode(rand::random::<[u8; 6]>())));
    std::fs::write(&file, readings_csv(200)).unwrap();
    publish(
        &owner.node,
        PublishRequest {
            path: file,
            title: Some("river gauges and pumping stations".into()),
            spectrum: Some(spectrum.into()),
            meta: Some(format!(
                "domain = \"water\"\nkind = \"supply\"\ndescription = \"test\"\n{meta}"
            )),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .dataset
}

async fn entry_at(peer: &TestNode, dataset: &str) {
    let id: DatasetId = dataset.parse().unwrap();
    let store = peer.node.shared.store.clone();
    eventually(&format!("{} to learn the entry", peer.name), || {
        store.latest_entry(&id).unwrap().is_some()
    })
    .await;
}

fn refused(resp: EmergencyResponse) -> String {
    match resp {
        EmergencyResponse::Refused { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso_37156_6_7_a_declaration_opens_time_boxed_access_on_every_named_node_and_its_end_closes_it(
) {
    common::init_tracing();
    let owner = spawn("Waterschap Amstel", vec![]).await;
    let boot = vec![owner.addr().await];
    let region = spawn("Veiligheidsregio", boot.clone()).await;
    let hospital = spawn("Ziekenhuis Oost", boot.clone()).await;
    let stranger = spawn("Unnamed Utility", boot).await;
    let dataset = publish_level(&owner, "shared-named", "").await;
    for n in [&region, &hospital, &stranger] {
        entry_at(n, &dataset).await;
    }

    // The owner agrees in advance: the region declares, the region and the hospital receive.
    let agreement = emergency::agree(
        &owner.node,
        &AgreeRequest {
            datasets: vec![dataset.clone()],
            declarers: vec![region.node.did().to_string()],
            recipients: vec![
                region.node.did().to_string(),
                hospital.node.did().to_string(),
            ],
            kinds: vec!["flood".into()],
            areas: vec!["bbox:4.7,52.2,5.1,52.5".into()],
            max_hours: 48,
            days: Some(30),
        },
    )
    .await
    .unwrap();
    let deliveries = agreement.deliveries.clone().unwrap();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|d| d.result == "accepted"),
        "{deliveries:?}"
    );
    for n in [&region, &hospital] {
        let kept = emergency::agreements(&n.node.shared).unwrap();
        assert_eq!(kept.len(), 1, "{} keeps the agreement", n.name);
    }
    // Without an emergency the hospital's request for shared-named data waits for the operator.
    let id: DatasetId = dataset.parse().unwrap();
    let o = access::request(&hospital.node, id, "bed planning", false)
        .await
        .unwrap();
    assert_eq!(o.status, "pending", "{o:?}");

    // The hospital cannot declare: it is not named as a declarer.
    let e = emergency::declare(
        &hospital.node,
        &DeclareRequest {
            agreement: agreement.id.clone(),
            kind: "flood".into(),
            area: "bbox:4.8,52.3,4.9,52.4".into(),
            hours: 6,
        },
    )
    .await
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("not named as a declarer"),
        "{e:#}"
    );

    // The region declares a flood; access opens on every named node within seconds.
    let mut at_owner = owner.node.events();
    let mut at_region = region.node.events();
    let mut at_hospital = hospital.node.events();
    let started = Instant::now();
    let decl = emergency::declare(
        &region.node,
        &DeclareRequest {
            agreement: agreement.id[..12].to_string(),
            kind: "flood".into(),
            area: "bbox:4.8,52.3,4.9,52.4".into(),
            hours: 6,
        },
    )
    .await
    .unwrap();
    assert_eq!(decl.state, "open");
    assert_eq!(decl.end - decl.start, 6 * 3600);
    let did = decl.id.clone();
    wait_for(
        &mut at_owner,
        "the owner to accept the declaration",
        |e| matches!(e, NodeEvent::EmergencyDeclared { declaration, .. } if *declaration == did),
    )
    .await;
    println!("owner: declaration accepted after {:?}", started.elapsed());
    for (name, rx) in [("region", &mut at_region), ("hospital", &mut at_hospital)] {
        let ev = wait_for(
            rx,
            "grants under the declaration",
            |e| matches!(e, NodeEvent::EmergencyGranted { declaration, .. } if *declaration == did),
        )
        .await;
        assert!(
            matches!(ev, NodeEvent::EmergencyGranted { grants: 1, .. }),
            "{ev:?}"
        );
        println!("{name}: access open after {:?}", started.elapsed());
    }

    // The hospital fetches without any live negotiation; the grant expires at the declaration's
    // end and its purpose flags the transfer and the receipt.
    let out = hospital.path("gauges.csv");
    let fetched = transfer::fetch(&hospital.node, &dataset, &out, |_, _| {})
        .await
        .unwrap();
    let basis = emergency::basis_of(&did);
    assert_eq!(fetched.purpose.as_deref(), Some(basis.as_str()));
    assert_eq!(std::fs::read(&out).unwrap(), readings_csv(200));
    let held = cix_node::tokens::list(&hospital.node.shared).unwrap();
    let grant = held
        .iter()
        .find(|t| t.source == "emergency" && t.direction == "received")
        .unwrap();
    assert_eq!(grant.expires, Some(decl.end), "{grant:?}");
    let hs = hospital.node.shared.clone();
    eventually("the hospital's receipt to be counter-signed", || {
        cix_node::receipts::list(&hs)
            .unwrap()
            .iter()
            .any(|r| r.purpose.as_deref() == Some(basis.as_str()) && r.status == "countersigned")
    })
    .await;

    // An agency the agreement does not name is refused, both asking and declaring.
    let a_bytes = emergency::agreement_bytes(&owner.node.shared, &agreement.id).unwrap();
    let d_bytes = emergency::declaration_bytes(&owner.node.shared, &did).unwrap();
    let reason = refused(
        emergency::send(
            &stranger.node,
            &owner.node.did(),
            &EmergencyRequest::Grant {
                agreement: ByteBuf::from(a_bytes.clone()),
                declaration: ByteBuf::from(d_bytes.clone()),
            },
        )
        .await
        .unwrap(),
    );
    assert!(reason.contains("not named as a recipient"), "{reason}");
    let own_decl = Declaration {
        iss: stranger.node.did(),
        agreement: ByteBuf::from(blake3::hash(&a_bytes).as_bytes().to_vec()),
        kind: "flood".into(),
        area: Area::parse("bbox:4.8,52.3,4.9,52.4").unwrap(),
        start: access::now(),
        end: access::now() + 3600,
    }
    .seal(&stranger.node.shared.key)
    .unwrap();
    let reason = refused(
        emergency::send(
            &stranger.node,
            &owner.node.did(),
            &EmergencyRequest::Declaration {
                agreement: ByteBuf::from(a_bytes.clone()),
                declaration: ByteBuf::from(own_decl.bytes.clone()),
            },
        )
        .await
        .unwrap(),
    );
    assert!(reason.contains("not named as a declarer"), "{reason}");
    // A forged declaration: the region's name, the stranger's key.
    let mut body = own_decl.record.clone();
    body.iss = region.node.did();
    let forged = envelope::seal(&stranger.node.shared.key, DECLARATION_TAG, &body).unwrap();
    let reason = refused(
        emergency::send(
            &stranger.node,
            &hospital.node.did(),
            &EmergencyRequest::Declaration {
                agreement: ByteBuf::from(a_bytes.clone()),
                declaration: ByteBuf::from(forged),
            },
        )
        .await
        .unwrap(),
    );
    assert!(reason.contains("signature"), "{reason}");
    assert_eq!(emergency::list(&hospital.node.shared).unwrap().len(), 1);

    // The review is not due while the emergency is open.
    let e = emergency::review(
        &owner.node.shared,
        &ReviewRequest {
            declaration: did.clone(),
            done: true,
            note: Some("too early".into()),
        },
    )
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains("still open"), "{e:#}");

    // The region ends it early: the owner revokes every grant issued under it.
    let mut at_hospital = hospital.node.events();
    let ended = emergency::end(
        &region.node,
        &EndRequest {
            declaration: did.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(ended.state, "ended");
    assert!(
        ended
            .deliveries
            .unwrap()
            .iter()
            .all(|d| d.result == "accepted"),
        "every party learns of the end"
    );
    wait_for(
        &mut at_hospital,
        "the end to reach the hospital",
        |e| matches!(e, NodeEvent::EmergencyEnded { declaration } if *declaration == did),
    )
    .await;
    let owner_line = &emergency::list(&owner.node.shared).unwrap()[0];
    assert_eq!(owner_line.state, "ended");
    assert_eq!(owner_line.review, "due");
    assert_eq!(owner_line.grants_issued, 2);
    let revs = cix_node::revoke::list(&owner.node.shared).unwrap();
    assert_eq!(revs.len(), 2, "{revs:?}");
    assert!(revs
        .iter()
        .all(|r| r.reason.as_deref().unwrap_or_default().contains("6.7")));
    // The token issued under it no longer works, and asking again is refused.
    let e = transfer::fetch(
        &hospital.node,
        &dataset,
        &hospital.path("again.csv"),
        |_, _| {},
    )
    .await
    .unwrap_err();
    let text = format!("{e:#}");
    assert!(!text.is_empty());
    let hospital_grant: Cid = grant.cid.parse().unwrap();
    assert!(revs.iter().any(|r| r.revoked == hospital_grant.to_string()));
    let reason = refused(
        emergency::send(
            &hospital.node,
            &owner.node.did(),
            &EmergencyRequest::Grant {
                agreement: ByteBuf::from(a_bytes),
                declaration: ByteBuf::from(d_bytes),
            },
        )
        .await
        .unwrap(),
    );
    assert!(reason.contains("is over"), "{reason}");

    // The review lists every use on the owner: both grants and the hospital's transfer.
    let report = emergency::review(
        &owner.node.shared,
        &ReviewRequest {
            declaration: did[..10].to_string(),
            done: false,
            note: None,
        },
    )
    .await
    .unwrap();
    let grants: Vec<_> = report.uses.iter().filter(|u| u.kind == "grant").collect();
    assert_eq!(grants.len(), 2, "{:?}", report.uses);
    for holder in [&region, &hospital] {
        let d = holder.node.did().to_string();
        assert!(grants.iter().any(|g| g.peer.as_deref() == Some(d.as_str())));
    }
    assert!(
        report.uses.iter().any(|u| u.kind.starts_with("transfer")
            && u.peer.as_deref() == Some(hospital.node.did().to_string().as_str())),
        "{:?}",
        report.uses
    );
    let report = emergency::review(
        &owner.node.shared,
        &ReviewRequest {
            declaration: did.clone(),
            done: true,
            note: Some("both uses were for the flood response".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(report.declaration.review, "done");
    assert_eq!(report.reviewed.as_ref().unwrap().uses, report.uses.len());
    let logged = owner
        .node
        .shared
        .audit
        .list(&cix_node::audit::Filter::default())
        .unwrap();
    assert!(logged.iter().any(
        |r| r.kind == "emergency" && r.detail.as_deref().unwrap_or_default().contains("review")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso_37156_8_2_5_withdrawing_trust_in_a_registrar_revokes_the_group_grants_it_carried_at_once(
) {
    common::init_tracing();
    let registrar = spawn("City Registry", vec![]).await;
    let other_registrar = spawn("Regional Registry", vec![]).await;
    let registrar_did = registrar.node.did();
    let owner = spawn_with("Water Board", vec![], |c| {
        c.trusted_registrars = vec![registrar_did];
    })
    .await;
    let boot = vec![owner.addr().await];
    let member = spawn("Transit Authority", boot).await;
    let dataset = publish_level(
        &owner,
        "shared-group",
        "groups = [\"emergency-services\"]\n",
    )
    .await;
    entry_at(&member, &dataset).await;
    let att = attest(
        &registrar.node.shared,
        &AttestRequest {
            to: member.node.did().to_string(),
            group: "emergency-services".into(),
            days: Some(7),
        },
    )
    .unwrap();
    let id: DatasetId = dataset.parse().unwrap();
    let o = access::request_with(
        &member.node,
        id,
        "incident coordination",
        false,
        &[hex::decode(att.attestation).unwrap()],
    )
    .await
    .unwrap();
    assert_eq!(o.status, "granted", "{o:?}");
    let cid = Cid::of_token(
        &member
            .node
            .shared
            .store
            .request_out(&id)
            .unwrap()
            .unwrap()
            .delegation,
    );

    // Trusting one more registrar changes nothing for the grant: no re-check is needed.
    let change = registrars::set_trust(
        &owner.node,
        &TrustRequest {
            did: other_registrar.node.did().to_string(),
            trust: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(change.added.len(), 1);
    assert!(change.recheck.is_empty());
    assert!(cix_node::revoke::list(&owner.node.shared)
        .unwrap()
        .is_empty());

    // The operator withdraws trust: the grant that rested on it is revoked before the call
    // returns, with the reason.
    let change = registrars::set_trust(
        &owner.node,
        &TrustRequest {
            did: registrar_did.to_string(),
            trust: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(change.removed, vec![registrar_did.to_string()]);
    let line = change
        .recheck
        .iter()
        .find(|l| l.cid == cid.to_string())
        .unwrap();
    assert_eq!(line.verdict, "revoked", "{line:?}");
    let reason = line.reason.clone().unwrap();
    assert!(
        reason.contains("8.2.5") && reason.contains(&registrar_did.to_string()),
        "{reason}"
    );
    let config = std::fs::read_to_string(owner.node.shared.home.config()).unwrap();
    assert!(!config.contains(&registrar_did.to_string()), "{config}");
    assert!(
        config.contains(&other_registrar.node.did().to_string()),
        "{config}"
    );
    // The holder is told why.
    let ms = member.node.shared.clone();
    eventually("the revocation to reach the holder", || {
        cix_node::revoke::list(&ms)
            .unwrap()
            .iter()
            .any(|r| r.revoked == cid.to_string() && r.reason.as_deref() == Some(reason.as_str()))
    })
    .await;

    // A config reload reads the file again: trust put back by hand is live at once.
    let edited = config.replace(
        "trusted_registrars = [",
        &format!("trusted_registrars = [\"{registrar_did}\", "),
    );
    assert_ne!(edited, config);
    std::fs::write(owner.node.shared.home.config(), edited).unwrap();
    let change = registrars::reload(&owner.node).await.unwrap();
    assert_eq!(change.added, vec![registrar_did.to_string()]);
    assert!(registrars::trusted(&owner.node.shared).contains(&registrar_did));
    // A broken file is refused and changes nothing.
    std::fs::write(owner.node.shared.home.config(), "trusted_registrars = [1").unwrap();
    assert!(registrars::reload(&owner.node).await.is_err());
    assert_eq!(registrars::trusted(&owner.node.shared).len(), 2);
}
