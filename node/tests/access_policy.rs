//! Access policy across the data spectrum, over real loopback sockets: group access on a
//! registrar's attestation and shared-public terms (ISO 37156 5.5.3), the jurisdiction rule
//! (8.2.2 a, h), caveats in grants checked against reality (DESIGN §5), and a secondary
//! publisher's re-delegation (9.2 e).

#![allow(clippy::unwrap_used)]

mod common;

use cix_node::attest::{attest, AttestRequest};
use cix_node::publish::{publish, PublishRequest};
use cix_node::tokens::{self, DelegateRequest, GrantRequest, ImportRequest};
use cix_node::{access, transfer};
use cix_protocol::attestation::Attestation;
use cix_protocol::catalogue::{DatasetId, SignedEntry};
use cix_protocol::caveats;
use cix_protocol::ucan::{self, Delegation, Policy};
use cix_protocol::wire::{
    AccessRequest, AccessResponse, DenyCode, TransferHeader, TransferRequest,
};
use common::{eventually, readings_csv, spawn, spawn_with, TestNode};

/// Publishes `data` from `owner` at `spectrum` with extra metadata lines.
async fn publish_with(
    owner: &TestNode,
    data: &[u8],
    spectrum: &str,
    meta: &str,
) -> cix_node::publish::Published {
    let file = owner.path(&format!("{}.csv", rand_name()));
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
    .unwrap()
}

fn rand_name() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}

/// Waits until `peer` has the dataset's entry, and returns it.
async fn entry_at(peer: &TestNode, dataset: &str) -> SignedEntry {
    let id: DatasetId = dataset.parse().unwrap();
    let store = peer.node.shared.store.clone();
    eventually(&format!("{} to learn the entry", peer.name), || {
        store.latest_entry(&id).unwrap().is_some()
    })
    .await;
    store.latest_entry(&id).unwrap().unwrap()
}

/// Sends a transfer request whose invocation the test built (edited from the honest one), as
/// a requester trying its luck would.
async fn fetch_edited(
    requester: &TestNode,
    signed: &SignedEntry,
    edit: impl FnOnce(&mut ucan::Invocation, &mut Vec<Vec<u8>>),
) -> TransferHeader {
    fetch_edited_at(requester, signed, 0, edit).await
}

/// [`fetch_edited`] from byte `offset`.
async fn fetch_edited_at(
    requester: &TestNode,
    signed: &SignedEntry,
    offset: u64,
    edit: impl FnOnce(&mut ucan::Invocation, &mut Vec<Vec<u8>>),
) -> TransferHeader {
    let (mut inv, mut proofs) = transfer::credentials(&requester.node, signed)
        .await
        .unwrap()
        .expect("shared data needs an invocation");
    edit(&mut inv, &mut proofs);
    let (bytes, _) = inv.seal(&requester.node.shared.key).unwrap();
    let dist = signed.entry.primary().unwrap();
    let req = TransferRequest {
        dataset: signed.entry.dataset,
        content: dist.content.unwrap(),
        ranges: if offset == 0 {
            vec![]
        } else {
            vec![(0, offset)]
        },
        invocation: Some(bytes),
        proofs: proofs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        profile: Some(requester.node.shared.profile.bytes.clone()),
    };
    let (_, header) = transfer::send_transfer(&requester.node, &signed.entry.iss, &req)
        .await
        .unwrap();
    header
}

fn refused(header: TransferHeader) -> (DenyCode, String) {
    match header {
        TransferHeader::Refused { code, reason } => (code, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn grant_policy(outcome_delegation: &[u8]) -> Policy {
    Delegation::decode(outcome_delegation).unwrap().0.pol
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_access_needs_a_current_attestation_from_a_trusted_registrar_for_the_requester() {
    // ISO 37156 5.5.3 group access: "organisations meeting predetermined rules".
    common::init_tracing();
    let registrar = spawn("City Registry", vec![]).await;
    let stranger = spawn("Self-appointed Registry", vec![]).await;
    let registrar_did = registrar.node.did();
    let owner = spawn_with("Water Board", vec![], |c| {
        c.trusted_registrars = vec![registrar_did];
    })
    .await;
    let boot = vec![owner.addr().await];
    let member = spawn("Transit Authority", boot.clone()).await;
    let other = spawn("Power Utility", boot).await;

    let data = readings_csv(300);
    let ds = publish_with(
        &owner,
        &data,
        "shared-group",
        "groups = [\"water-utilities\", \"emergency-services\"]\n",
    )
    .await;
    let id: DatasetId = ds.dataset.parse().unwrap();
    entry_at(&member, &ds.dataset).await;

    let attestation = |by: &TestNode, to: &TestNode, group: &str| {
        let line = attest(
            &by.node.shared,
            &AttestRequest {
                to: to.node.did().to_string(),
                group: group.into(),
                days: Some(7),
            },
        )
        .unwrap();
        hex::decode(line.attestation).unwrap()
    };
    let ask = |atts: Vec<Vec<u8>>| {
        let node = member.node.clone();
        async move {
            access::request_with(&node, id, "incident coordination", false, &atts)
                .await
                .unwrap()
        }
    };
    let expect_refused = |o: access::RequestOutcome, words: &str| {
        assert_eq!(o.status, "denied", "{o:?}");
        assert_eq!(o.code, Some(DenyCode::NotInGroup), "{o:?}");
        let reason = o.reason.unwrap_or_default();
        assert!(reason.contains(words), "{words:?} not in {reason:?}");
    };

    // No attestation at all.
    expect_refused(ask(vec![]).await, "attestation");
    // From a registrar the owner does not trust.
    expect_refused(
        ask(vec![attestation(&stranger, &member, "emergency-services")]).await,
        "not one this owner trusts",
    );
    // Expired.
    let t = access::now();
    let expired = Attestation {
        iss: registrar_did,
        sub: member.node.did(),
        group: "emergency-services".into(),
        issued: t - 30 * 86_400,
        exp: t - 86_400,
    }
    .sign(&registrar.node.shared.key)
    .unwrap();
    expect_refused(ask(vec![expired]).await, "expired");
    // About another member.
    expect_refused(
        ask(vec![attestation(&registrar, &other, "emergency-services")]).await,
        "not about you",
    );
    // For a group the dataset's rule does not accept.
    expect_refused(
        ask(vec![attestation(
            &registrar,
            &member,
            "transport-operators",
        )])
        .await,
        "does not accept",
    );
    // Nothing was fetched on any of those.
    let out = member.path("group.csv");
    assert!(transfer::fetch(&member.node, &ds.dataset, &out, |_, _| {})
        .await
        .is_err());
    assert!(!out.exists());

    // A valid one among bad ones: granted, for no longer than the attestation holds.
    let good = attestation(&registrar, &member, "emergency-services");
    let good_exp = Attestation::decode(&good).unwrap().exp;
    let o = ask(vec![
        attestation(&stranger, &member, "emergency-services"),
        good,
    ])
    .await;
    assert_eq!(o.status, "granted", "{o:?}");
    let grant = member.node.shared.store.request_out(&id).unwrap().unwrap();
    let (dlg, _) = Delegation::decode(&grant.delegation).unwrap();
    assert!(dlg.exp.unwrap() <= good_exp);
    assert_eq!(
        caveats::pinned_text(&dlg.pol, caveats::ARG_PURPOSE).as_deref(),
        Some("incident coordination")
    );
    transfer::fetch(&member.node, &ds.dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_public_grant_binds_the_terms_and_an_invocation_claiming_other_terms_is_refused() {
    // ISO 37156 5.5.3 public access: "anyone, under specific terms".
    common::init_tracing();
    let owner = spawn("Transit Authority", vec![]).await;
    let reader = spawn("Planning Office", vec![owner.addr().await]).await;
    let data = readings_csv(200);
    let terms = "Attribution required; no resale of raw readings.";
    let ds = publish_with(
        &owner,
        &data,
        "shared-public",
        &format!("terms = \"{terms}\"\n"),
    )
    .await;
    let signed = entry_at(&reader, &ds.dataset).await;
    let id = signed.entry.dataset;

    let o = access::request(&reader.node, id, "timetable planning", true)
        .await
        .unwrap();
    assert_eq!(o.status, "granted", "{o:?}");
    let grant = reader.node.shared.store.request_out(&id).unwrap().unwrap();
    let pol = grant_policy(&grant.delegation);
    assert_eq!(
        caveats::pinned_text(&pol, caveats::ARG_TERMS),
        Some(caveats::terms_hash(terms)),
        "the grant binds the BLAKE3 of the terms text"
    );

    // Claiming to accept other terms: the grant's caveat refuses it.
    let (code, reason) = refused(
        fetch_edited(&reader, &signed, |inv, _| {
            inv.args.insert(
                caveats::ARG_TERMS.into(),
                caveats::terms_hash("no terms at all").into(),
            );
        })
        .await,
    );
    assert_eq!(code, DenyCode::NoGrant);
    assert!(reason.contains("terms"), "{reason}");
    // Leaving the terms out is no better.
    let (code, _) = refused(
        fetch_edited(&reader, &signed, |inv, _| {
            inv.args.remove(caveats::ARG_TERMS);
        })
        .await,
    );
    assert_eq!(code, DenyCode::NoGrant);

    // The honest invocation states the hash of the terms accepted and is served.
    let out = reader.path("public.csv");
    transfer::fetch(&reader.node, &ds.dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_goes_only_to_allowed_jurisdictions_by_the_requesters_signed_profile() {
    // ISO 37156 8.2.2 a and h: processed under its jurisdiction, not sent where it may not go.
    common::init_tracing();
    let owner = spawn_with("Gemeente Waterbedrijf", vec![], |c| {
        c.jurisdiction = "NL".into()
    })
    .await;
    let boot = vec![owner.addr().await];
    let abroad = spawn_with("Overseas Analytics", boot.clone(), |c| {
        c.jurisdiction = "US".into()
    })
    .await;
    let neighbour = spawn_with("Waterschap Vlaanderen", boot, |c| {
        c.jurisdiction = "BE".into()
    })
    .await;
    let data = readings_csv(100);
    let ds = publish_with(
        &owner,
        &data,
        "shared-public",
        "terms = \"research only\"\npersonal_data = true\npurpose = \"leak detection\"\n\
         legal_basis = \"public task\"\nretention_days = 30\nallowed_jurisdictions = [\"BE\"]\n",
    )
    .await;
    let signed = entry_at(&neighbour, &ds.dataset).await;
    entry_at(&abroad, &ds.dataset).await;
    let id = signed.entry.dataset;

    // Outside the list: refused with the jurisdiction code.
    let o = access::request(&abroad.node, id, "benchmarking", true)
        .await
        .unwrap();
    assert_eq!(o.status, "denied");
    assert_eq!(o.code, Some(DenyCode::Jurisdiction), "{o:?}");
    assert!(o.reason.unwrap().contains("BE, NL"));
    // ISO 37156 8.2.2, 8.3.4: the refusal is in both logs, with its reason, the purpose stated
    // and the legal basis that applied.
    let denials = |n: &TestNode| {
        n.node
            .shared
            .audit
            .list(&cix_node::audit::Filter {
                kind: Some(cix_protocol::audit::AuditKind::Denial),
                dataset: Some(id),
                ..Default::default()
            })
            .unwrap()
    };
    let at_owner = denials(&owner);
    assert_eq!(at_owner.len(), 1, "{at_owner:?}");
    assert_eq!(at_owner[0].peer, Some(abroad.node.did().to_string()));
    assert!(at_owner[0].reason.as_ref().unwrap().contains("BE, NL"));
    assert_eq!(at_owner[0].purpose.as_deref(), Some("benchmarking"));
    assert_eq!(at_owner[0].basis.as_deref(), Some("public task"));
    let at_requester = denials(&abroad);
    assert_eq!(at_requester.len(), 1, "{at_requester:?}");
    assert_eq!(at_requester[0].peer, Some(owner.node.did().to_string()));
    assert!(at_requester[0].reason.as_ref().unwrap().contains("BE, NL"));

    // No profile at all: refused, saying a profile is needed.
    let answer = access::ask(
        &neighbour.node,
        cix_node::node::peer_of_did(&signed.entry.iss).unwrap(),
        AccessRequest {
            request: vec![3; 16],
            dataset: id,
            purpose: "network planning".into(),
            accept_terms: true,
            probe: false,
            profile: None,
            attestations: Vec::new(),
        },
    )
    .await
    .unwrap();
    match answer {
        AccessResponse::Denied { code, reason } => {
            assert_eq!(code, DenyCode::ProfileRequired);
            assert!(reason.contains("profile"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Another agency's profile passed off as one's own: refused.
    let answer = access::ask(
        &neighbour.node,
        cix_node::node::peer_of_did(&signed.entry.iss).unwrap(),
        AccessRequest {
            request: vec![4; 16],
            dataset: id,
            purpose: "network planning".into(),
            accept_terms: true,
            probe: false,
            profile: Some(owner.node.shared.profile.bytes.clone()),
            attestations: Vec::new(),
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(
            answer,
            AccessResponse::Denied {
                code: DenyCode::BadRequest,
                ..
            }
        ),
        "{answer:?}"
    );

    // Inside the list: granted, with the jurisdictions and retention as caveats.
    let o = access::request(&neighbour.node, id, "network planning", true)
        .await
        .unwrap();
    assert_eq!(o.status, "granted", "{o:?}");
    let grant = neighbour
        .node
        .shared
        .store
        .request_out(&id)
        .unwrap()
        .unwrap();
    let pol = grant_policy(&grant.delegation);
    assert_eq!(caveats::retention_bound(&pol), Some(30));
    let args = |j: &str, days: i64| {
        ciborium::Value::Map(vec![
            ("jurisdiction".into(), j.into()),
            ("retention_days".into(), days.into()),
        ])
    };
    let jurisdiction_caveat = &pol.statements()[pol.statements().len() - 2];
    let only = Policy::new(vec![jurisdiction_caveat.clone()]);
    assert!(only.matches(&args("BE", 1)) && only.matches(&args("NL", 1)));
    assert!(!only.matches(&args("US", 1)));

    // Claiming an allowed jurisdiction that is not one's own: refused against the profile.
    let (code, reason) = refused(
        fetch_edited(&neighbour, &signed, |inv, _| {
            inv.args
                .insert(caveats::ARG_JURISDICTION.into(), "NL".into());
        })
        .await,
    );
    assert_eq!(code, DenyCode::Jurisdiction, "{reason}");
    // Keeping it longer than allowed: refused by the retention caveat.
    let (code, reason) = refused(
        fetch_edited(&neighbour, &signed, |inv, _| {
            inv.args
                .insert(caveats::ARG_RETENTION_DAYS.into(), 90.into());
        })
        .await,
    );
    assert_eq!(code, DenyCode::NoGrant);
    assert!(reason.contains("retention_days"), "{reason}");

    let out = neighbour.path("personal.csv");
    transfer::fetch(&neighbour.node, &ds.dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_stating_another_purpose_than_the_one_granted_is_refused() {
    // ISO 37156 8.2.2 b: obtained for a specific purpose and not processed against it.
    common::init_tracing();
    let owner = spawn("Water Board", vec![]).await;
    let requester = spawn("Environment Office", vec![owner.addr().await]).await;
    let data = readings_csv(100);
    let ds = publish_with(&owner, &data, "shared-named", "").await;
    let signed = entry_at(&requester, &ds.dataset).await;
    let id = signed.entry.dataset;
    let o = access::request(&requester.node, id, "flood model calibration", false)
        .await
        .unwrap();
    assert_eq!(o.status, "pending");
    let queued = owner.node.shared.store.requests_in().unwrap();
    access::approve(&owner.node.shared, &queued[0].id).unwrap();
    access::request(&requester.node, id, "", false)
        .await
        .unwrap();

    let (code, reason) = refused(
        fetch_edited(&requester, &signed, |inv, _| {
            inv.args
                .insert(caveats::ARG_PURPOSE.into(), "marketing".into());
        })
        .await,
    );
    assert_eq!(code, DenyCode::NoGrant);
    assert!(reason.contains("purpose"), "{reason}");

    let out = requester.path("named.csv");
    transfer::fetch(&requester.node, &ds.dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_publishers_chain_lets_a_third_agency_fetch_and_a_widened_chain_is_refused() {
    // ISO 37156 9.2 e: a secondary publisher's access rights are set by the primary publisher.
    common::init_tracing();
    let primary = spawn("Power Utility", vec![]).await;
    let boot = vec![primary.addr().await];
    let secondary = spawn("Energy Observatory", boot.clone()).await;
    let third = spawn("University Lab", boot).await;
    let data = readings_csv(150);
    let ds = publish_with(&primary, &data, "shared-named", "").await;
    let signed = entry_at(&third, &ds.dataset).await;
    entry_at(&secondary, &ds.dataset).await;

    // The primary gives the secondary republication rights, by hand, never automatically.
    let line = tokens::grant(
        &primary.node.shared,
        &GrantRequest {
            dataset: ds.dataset.clone(),
            to: secondary.node.did().to_string(),
            days: Some(10),
            purpose: Some("regional energy atlas".into()),
            command: Some(ucan::CMD_REPUBLISH.into()),
            fields: None,
        },
    )
    .unwrap();
    assert_eq!(line.command, ucan::CMD_REPUBLISH);
    let got = tokens::import(&secondary.node.shared, &ImportRequest { chain: line.chain }).unwrap();
    // Republication rights imply fetching.
    let out = secondary.path("atlas-source.csv");
    transfer::fetch(&secondary.node, &ds.dataset, &out, |_, _| {})
        .await
        .unwrap();

    // The secondary passes them on to a third agency; the third fetches from the owner.
    let passed = tokens::delegate(
        &secondary.node.shared,
        &DelegateRequest {
            cid: got.cid.clone(),
            to: third.node.did().to_string(),
            days: Some(5),
            purpose: None,
            command: None,
        },
    )
    .unwrap();
    assert_eq!(passed.depth, 2);
    let root_hex = passed.chain[0].clone();
    tokens::import(
        &third.node.shared,
        &ImportRequest {
            chain: passed.chain,
        },
    )
    .unwrap();
    let out = third.path("from-owner.csv");
    let fetched = transfer::fetch(&third.node, &ds.dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(fetched.from, primary.node.did().to_string());
    assert_eq!(std::fs::read(&out).unwrap(), data);

    // A second link the secondary signs itself, wider than what it received.
    let (root, _) = Delegation::decode(&hex::decode(&root_hex).unwrap()).unwrap();
    let forge = |cmd: &str, pol: Policy| {
        let d = Delegation {
            iss: secondary.node.did(),
            aud: third.node.did(),
            sub: root.sub,
            cmd: cmd.into(),
            pol,
            nonce: ucan::fresh_nonce(),
            exp: root.exp,
            nbf: None,
            meta: None,
        };
        d.seal(&secondary.node.shared.key).unwrap()
    };
    let widened = forge(ucan::CMD_DATA, root.pol.clone());
    let loosened = forge(
        ucan::CMD_REPUBLISH,
        Policy::dataset_equals(&signed.entry.dataset.to_string()),
    );
    for ((bytes, cid), what) in [(widened, "widens"), (loosened, "loosens")] {
        // Not even kept on import...
        let err = tokens::import(
            &third.node.shared,
            &ImportRequest {
                chain: vec![root_hex.clone(), hex::encode(&bytes)],
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
        // ...and refused by the owner when presented anyway.
        let (code, reason) = refused(
            fetch_edited(&third, &signed, |inv, proofs| {
                inv.prf[1] = cid;
                proofs[1] = bytes.clone();
            })
            .await,
        );
        assert_eq!(code, DenyCode::NoGrant, "{reason}");
        assert!(reason.contains("token refused"), "{what}: {reason}");
    }
}

/// The columns of a CSV: header text and every row's values, by column.
fn columns_of(csv: &[u8]) -> Vec<(String, Vec<String>)> {
    let mut rdr = ::csv::Reader::from_reader(csv);
    let headers: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let mut cols: Vec<(String, Vec<String>)> = headers.into_iter().map(|h| (h, vec![])).collect();
    for record in rdr.records() {
        let record = record.unwrap();
        assert_eq!(record.len(), cols.len());
        for (col, value) in cols.iter_mut().zip(record.iter()) {
            col.1.push(value.to_string());
        }
    }
    cols
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fields_limited_grant_serves_exactly_the_permitted_columns_and_nothing_more() {
    // ISO 37156 8.2.2 c (adequate, relevant and not excessive) and 7.1 (least access): the
    // owner grants some columns; the requester receives a projection with only those.
    common::init_tracing();
    let owner = spawn("Water Board", vec![]).await;
    let boot = vec![owner.addr().await];
    let requester = spawn("Flood Office", boot.clone()).await;
    let third = spawn("University Lab", boot).await;
    let mut data = readings_csv(400);
    // A value that needs quoting survives the projection.
    data.extend_from_slice(b"2024-02-01T00:00:00Z,\"ST, \"\"north\"\"\",1.5,7\n");
    let ds = publish_with(&owner, &data, "shared-named", "").await;
    let signed = entry_at(&requester, &ds.dataset).await;
    entry_at(&third, &ds.dataset).await;
    let names: Vec<&str> = signed
        .entry
        .iso
        .dictionary
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["time", "station", "flow", "pressure"]);

    let grant = |fields: Vec<&str>| {
        tokens::grant(
            &owner.node.shared,
            &GrantRequest {
                dataset: ds.dataset.clone(),
                to: requester.node.did().to_string(),
                days: Some(3),
                purpose: Some("flood forecasting".into()),
                command: Some(ucan::CMD_DATA.into()),
                fields: Some(fields.into_iter().map(String::from).collect()),
            },
        )
    };
    // Refused at grant time: an unknown field, a duplicate, none at all.
    let err = grant(vec!["time", "velocity"]).unwrap_err().to_string();
    assert!(err.contains("no field \"velocity\""), "{err}");
    assert!(err.contains("time, station, flow, pressure"), "{err}");
    let err = grant(vec!["time", "time"]).unwrap_err().to_string();
    assert!(err.contains("named twice"), "{err}");
    let err = grant(vec![]).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");

    // Given in any order; the policy pins the sorted set.
    let line = grant(vec!["pressure", "station"]).unwrap();
    assert_eq!(
        line.fields,
        Some(vec!["pressure".to_string(), "station".into()])
    );
    let got = tokens::import(&requester.node.shared, &ImportRequest { chain: line.chain }).unwrap();

    // Claiming an extra field: refused, naming the permitted ones.
    let (code, reason) = refused(
        fetch_edited(&requester, &signed, |inv, _| {
            inv.args.insert(
                caveats::ARG_FIELDS.into(),
                ciborium::Value::Array(vec!["station".into(), "flow".into()]),
            );
        })
        .await,
    );
    assert_eq!(code, DenyCode::NoGrant);
    assert!(
        reason.contains("fields") && reason.contains("pressure, station"),
        "{reason}"
    );
    // Stating no fields, to get the whole file: refused too.
    let (code, reason) = refused(
        fetch_edited(&requester, &signed, |inv, _| {
            inv.args.remove(caveats::ARG_FIELDS);
        })
        .await,
    );
    assert_eq!(code, DenyCode::NoGrant, "{reason}");
    // A projection does not resume from an offset.
    let (code, reason) = refused(fetch_edited_at(&requester, &signed, 10, |_, _| {}).await);
    assert_eq!(code, DenyCode::BadRequest);
    assert!(reason.contains("offset"), "{reason}");

    // The honest fetch: exactly the permitted columns, in the dataset's order, header included.
    let out = requester.path("projection.csv");
    let fetched = transfer::fetch(&requester.node, &ds.dataset, &out, |_, _| {})
        .await
        .unwrap();
    let written = std::fs::read(&out).unwrap();
    let original = columns_of(&data);
    assert_eq!(
        columns_of(&written),
        vec![original[1].clone(), original[3].clone()]
    );
    assert_eq!(original[1].1.last().unwrap(), "ST, \"north\"");
    let projection = fetched.projection.expect("a projection");
    assert_eq!(projection.fields, ["station", "pressure"]);
    assert_eq!(
        projection.of_content,
        signed.entry.primary().unwrap().content.unwrap().to_hex()
    );
    assert_eq!(
        fetched.content_hash,
        blake3::hash(&written).to_hex().to_string()
    );
    assert_eq!(fetched.bytes, written.len() as u64);
    assert!(written.len() < data.len());

    // Passed on, the chain keeps the caveat: the third agency gets the same columns only.
    let passed = tokens::delegate(
        &requester.node.shared,
        &DelegateRequest {
            cid: got.cid,
            to: third.node.did().to_string(),
            days: Some(1),
            purpose: None,
            command: Some(ucan::CMD_FETCH.into()),
        },
    )
    .unwrap();
    assert_eq!(passed.fields, line.fields);
    tokens::import(
        &third.node.shared,
        &ImportRequest {
            chain: passed.chain,
        },
    )
    .unwrap();
    let out = third.path("passed-on.csv");
    let fetched = transfer::fetch(&third.node, &ds.dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(fetched.projection.unwrap().fields, ["station", "pressure"]);
    assert_eq!(std::fs::read(&out).unwrap(), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_cannot_limit_a_grant_of_a_dataset_that_is_not_csv() {
    common::init_tracing();
    let owner = spawn("Parks Department", vec![]).await;
    let file = owner.path("boundaries.geojson");
    std::fs::write(&file, br#"{"type":"FeatureCollection","features":[]}"#).unwrap();
    let ds = publish(
        &owner.node,
        PublishRequest {
            resolves: Vec::new(),
            dataset: None,
            path: file,
            title: Some("park boundaries".into()),
            spectrum: Some("shared-named".into()),
            meta: Some("domain = \"water\"\nkind = \"supply\"\ndescription = \"test\"\n".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err = tokens::grant(
        &owner.node.shared,
        &GrantRequest {
            dataset: ds.dataset,
            to: cix_protocol::identity::Keypair::generate()
                .did()
                .to_string(),
            days: Some(1),
            purpose: None,
            command: None,
            fields: Some(vec!["type".into()]),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a CSV file"), "{err}");
}
