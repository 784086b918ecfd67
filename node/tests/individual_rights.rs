//! Individuals' requests and complaints over real loopback sockets (ISO 37156 8.2.2, 8.3.5,
//! 8.3.6): a request goes to every agency that received the data, answers come back signed, a
//! deadline passes, a complaint is appealed and decided; peers that should not take part are
//! refused.

#![allow(clippy::unwrap_used)]

mod common;

use cix_node::publish::{publish, PublishRequest};
use cix_node::rights::{self, AnswerRequest, AppealRequest, DecideRequest, NewRequest, Role};
use cix_protocol::catalogue::DatasetId;
use cix_protocol::identity::Keypair;
use cix_protocol::quality::Signed;
use cix_protocol::rights::{Answer, Case, Kind, Outcome, RightsRequest, RightsResponse};
use common::{eventually, spawn_with, TestNode};
use serde_bytes::ByteBuf;

const SUBJECT: &str = "WB-2026-0042";
const SUMMARY: &str = "copy of the readings of one household";

async fn node(name: &str, boot: Vec<String>) -> TestNode {
    spawn_with(name, boot, |c| c.rights_day_secs = Some(1)).await
}

fn audit_details(n: &TestNode) -> Vec<String> {
    n.node
        .shared
        .audit
        .list(&cix_node::audit::Filter::default())
        .unwrap()
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso_37156_8_3_5_a_request_reaches_every_recipient_answers_return_and_a_deadline_passes() {
    common::init_tracing();
    let owner = node("Waterbedrijf", vec![]).await;
    let boot = vec![owner.addr().await];
    let b = node("Gemeente B", boot.clone()).await;
    let c = node("Gemeente C", boot.clone()).await;
    let d = node("Gemeente D", boot.clone()).await;
    let file = owner.path("r.csv");
    std::fs::write(&file, common::readings_csv(30)).unwrap();
    let published = publish(
        &owner.node,
        PublishRequest {
            path: file,
            title: Some("household readings".into()),
            spectrum: Some("shared-public".into()),
            meta: Some(
                "domain = \"water\"\nkind = \"consumption\"\ndescription = \"t\"\n\
                 terms = \"research only\"\n"
                    .into(),
            ),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let id: DatasetId = published.dataset.parse().unwrap();
    for n in [&b, &c, &d] {
        let store = n.node.shared.store.clone();
        eventually("the entry", || store.latest_entry(&id).unwrap().is_some()).await;
    }
    // B and C ask and are granted; D is granted by hand but never takes the token, so by its
    // own records it never received the data.
    for n in [&b, &c] {
        let o = cix_node::access::request(&n.node, id, "planning", true)
            .await
            .unwrap();
        assert_eq!(o.status, "granted", "{o:?}");
    }
    cix_node::tokens::grant(
        &owner.node.shared,
        &cix_node::tokens::GrantRequest {
            dataset: published.dataset.clone(),
            to: d.node.did().to_string(),
            days: None,
            purpose: Some("planning".into()),
            command: None,
            fields: None,
        },
    )
    .unwrap();

    // Recorded with a deadline of 3 "days" of 1 s.
    let case = rights::record(
        &owner.node,
        false,
        &NewRequest {
            kind: Some("access".into()),
            datasets: vec![published.dataset[..12].to_string()],
            subject_ref: Some(SUBJECT.into()),
            summary: Some(SUMMARY.into()),
            deadline_days: Some(3),
        },
    )
    .await
    .unwrap();
    assert_eq!(case.kind, "access");
    assert_eq!(case.role, Role::Recorded);
    let mut agencies: Vec<String> = case.recipients.iter().map(|r| r.agency.clone()).collect();
    agencies.sort();
    let mut want = vec![
        b.node.did().to_string(),
        c.node.did().to_string(),
        d.node.did().to_string(),
    ];
    want.sort();
    assert_eq!(
        agencies, want,
        "every agency the records name, and no other"
    );
    let of = |l: &rights::CaseLine, n: &TestNode| {
        l.recipients
            .iter()
            .find(|r| r.agency == n.node.did().to_string())
            .unwrap()
            .clone()
    };
    assert!(of(&case, &b).delivered && of(&case, &c).delivered);
    assert!(of(&case, &b).via.contains(&"grant".to_string()));
    // D refuses, saying it has no record of receiving the data.
    let refused = of(&case, &d).error.unwrap();
    assert!(refused.contains("no record of receiving"), "{refused}");
    assert!(rights::list(&d.node.shared, false).unwrap().is_empty());

    // B sees it and answers; the signed answer comes back.
    let at_b = rights::list(&b.node.shared, false).unwrap();
    assert_eq!(at_b.len(), 1);
    assert_eq!(at_b[0].role, Role::Received);
    assert_eq!(at_b[0].held, vec![published.dataset.clone()]);
    assert_eq!(at_b[0].subject, case.subject);
    let answered = rights::answer(
        &b.node,
        false,
        &case.id[..8],
        &AnswerRequest {
            outcome: "done".into(),
            text: "copy sent to the recording agency".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(answered.status, "answered");
    let shown = rights::show(&owner.node.shared, false, &case.id).unwrap();
    assert_eq!(of(&shown, &b).outcome.as_deref(), Some("done"));
    assert_eq!(shown.status, "open", "C has not answered yet");
    // A refusal must say why; the recording agency cannot answer its own case.
    assert!(rights::answer(
        &c.node,
        false,
        &case.id,
        &AnswerRequest {
            outcome: "refused".into(),
            text: String::new()
        }
    )
    .await
    .is_err());
    assert!(rights::answer(
        &owner.node,
        false,
        &case.id,
        &AnswerRequest {
            outcome: "done".into(),
            text: String::new()
        }
    )
    .await
    .is_err());

    // C never answers: past the deadline the sweep reports it, on both sides.
    let shared = owner.node.shared.clone();
    let cid = case.id.clone();
    let c_did = c.node.did().to_string();
    eventually("C's answer to be reported overdue", || {
        let l = rights::show(&shared, false, &cid).unwrap();
        l.status == "overdue"
            && l.recipients
                .iter()
                .any(|r| r.agency == c_did && r.overdue && r.outcome.is_none())
    })
    .await;
    let owner_audit = audit_details(&owner);
    for step in ["recorded", "forwarded", "answered by the recipient: done"] {
        assert!(
            owner_audit
                .iter()
                .any(|l| l.contains(step) && l.contains(&case.id)),
            "no {step:?} in {owner_audit:#?}"
        );
    }
    eventually("the overdue audit record", || {
        audit_details(&owner)
            .iter()
            .any(|l| l.contains("overdue") && l.contains(&c_did))
    })
    .await;
    let c_shared = c.node.shared.clone();
    eventually("C to see its own answer overdue", || {
        rights::list(&c_shared, false).unwrap()[0].status == "overdue"
    })
    .await;
    let b_audit = audit_details(&b);
    assert!(b_audit.iter().any(|l| l.contains("received")));
    assert!(b_audit.iter().any(|l| l.contains("answered: done")));
    // Nothing personal in any audit log.
    for n in [&owner, &b, &c, &d] {
        for l in audit_details(n) {
            assert!(!l.contains(SUBJECT) && !l.contains(SUMMARY), "{l}");
        }
    }

    // ISO 37156 8.3.6: a complaint goes through appeal.
    let complaint = rights::record(
        &owner.node,
        true,
        &NewRequest {
            datasets: vec![published.dataset.clone()],
            summary: Some("data shared beyond the stated purpose".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(complaint.class, "complaint");
    assert!(rights::list(&owner.node.shared, false).unwrap().len() == 1);
    rights::answer(
        &b.node,
        true,
        &complaint.id,
        &AnswerRequest {
            outcome: "refused".into(),
            text: "used for planning only".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        rights::decide(
            &owner.node,
            &complaint.id,
            &DecideRequest {
                outcome: "upheld".into(),
                text: "x".into()
            }
        )
        .await
        .is_err(),
        "no decision before an appeal"
    );
    let appealed = rights::appeal(
        &owner.node,
        &complaint.id,
        &AppealRequest {
            text: "the person disputes B's answer".into(),
            deadline_days: Some(30),
        },
    )
    .await
    .unwrap();
    assert_eq!(appealed.status, "appealed");
    let decided = rights::decide(
        &owner.node,
        &complaint.id,
        &DecideRequest {
            outcome: "upheld".into(),
            text: "B must erase the copy".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(decided.status, "decided");
    for n in [&b, &c] {
        let l = rights::show(&n.node.shared, true, &complaint.id).unwrap();
        assert_eq!(l.status, "decided", "{l:?}");
        assert_eq!(
            l.appeal.as_ref().unwrap().text,
            "the person disputes B's answer"
        );
        assert_eq!(
            l.decision.as_ref().unwrap().outcome.as_deref(),
            Some("upheld")
        );
    }
    assert!(audit_details(&b)
        .iter()
        .any(|l| l.contains("decided") && l.contains(&complaint.id)));
    // Appeal and decision come only from the recording agency.
    assert!(rights::appeal(
        &b.node,
        &complaint.id,
        &AppealRequest {
            text: "x".into(),
            deadline_days: None
        }
    )
    .await
    .is_err());

    // Hostile messages: a case signed by another key than the sender's, an answer from an
    // agency that refused the case, bytes that are no answer.
    let stranger = Keypair::generate();
    let forged = Signed::seal(
        &Case {
            iss: stranger.did(),
            nonce: ByteBuf::from(vec![9; 16]),
            kind: Kind::Erasure,
            datasets: vec![id],
            subject: None,
            summary: String::new(),
            issued: 1_800_000_000,
            due: 1_800_000_100,
        },
        &stranger,
    )
    .unwrap();
    let r = rights::send(
        &d.node,
        &b.node.did(),
        &RightsRequest::Case {
            case: ByteBuf::from(forged.bytes),
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(&r, RightsResponse::Refused { reason } if reason.contains("not signed by the connected peer")),
        "{r:?}"
    );
    let key = d.node.shared.key.clone();
    let wrong = Signed::seal(
        &Answer {
            iss: d.node.did(),
            case: ByteBuf::from(hex::decode(&complaint.id).unwrap()),
            outcome: Outcome::Done,
            text: String::new(),
            at: 1_800_000_000,
        },
        &key,
    )
    .unwrap();
    let r = rights::send(
        &d.node,
        &owner.node.did(),
        &RightsRequest::Answer {
            answer: ByteBuf::from(wrong.bytes),
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(&r, RightsResponse::Refused { reason } if reason.contains("refused this case")),
        "{r:?}"
    );
    let r = rights::send(
        &d.node,
        &owner.node.did(),
        &RightsRequest::Answer {
            answer: ByteBuf::from(vec![0xa1, 0x00]),
        },
    )
    .await
    .unwrap();
    assert!(matches!(r, RightsResponse::Refused { .. }), "{r:?}");
}
