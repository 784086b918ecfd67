//! Issue 10 at the node, over real loopback sockets: the re-identification guard at publish
//! (ISO 37156 7.4.2.5) and the re-check of live grants when a dataset's rules change (8.2.5).

#![allow(clippy::unwrap_used)]

mod common;

use cix_node::access;
use cix_node::publish::{publish, PublishRequest};
use cix_protocol::catalogue::DatasetId;
use cix_protocol::ucan::Cid;
use common::{eventually, spawn_with, TestNode};

const PERSONAL: &str =
    "personal_data = true\npurpose = \"planning\"\nlegal_basis = \"public task\"\n\
                        retention_days = 30\n";

async fn publish_meta(
    owner: &TestNode,
    data: &[u8],
    dataset: Option<String>,
    meta: &str,
) -> anyhow::Result<cix_node::publish::Published> {
    let file = owner.path(&format!("{}.csv", hex::encode(rand::random::<[u8; 6]>())));
    std::fs::write(&file, data).unwrap();
    publish(
        &owner.node,
        PublishRequest {
            dataset,
            path: file,
            title: Some("household readings".into()),
            spectrum: Some("shared-public".into()),
            meta: Some(format!(
                "domain = \"water\"\nkind = \"consumption\"\ndescription = \"test\"\n\
                 terms = \"research only\"\n{meta}"
            )),
            ..Default::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso_37156_7_4_2_5_personal_data_with_groups_of_one_is_not_published() {
    common::init_tracing();
    let owner = spawn_with("Waterbedrijf", vec![], |c| c.jurisdiction = "NL".into()).await;
    let mut csv = String::from("postcode,birth_year,litres\n");
    for i in 0..40 {
        csv.push_str(&format!("10{:02},{},{}\n", i, 1950 + i, 100 + i));
    }
    let marks = "[fields.postcode]\nprivacy = \"quasi-identifier\"\n\
                 [fields.birth_year]\nprivacy = \"quasi-identifier\"\n";
    let e = publish_meta(&owner, csv.as_bytes(), None, &format!("{PERSONAL}{marks}"))
        .await
        .unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("7.4.2.5") && text.contains("refused"),
        "{text}"
    );
    assert!(text.contains("postcode=1000, birth_year=1950"), "{text}");
    assert!(text.contains("generalise"), "{text}");
    assert!(
        owner.node.shared.store.own_all().unwrap().is_empty(),
        "nothing stored"
    );
    // The same columns, data not personal: the guard does not apply.
    publish_meta(&owner, csv.as_bytes(), None, marks)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso_37156_8_2_5_narrowing_allowed_jurisdictions_revokes_only_the_grants_that_no_longer_fit(
) {
    common::init_tracing();
    let owner = spawn_with("Waterbedrijf", vec![], |c| c.jurisdiction = "NL".into()).await;
    let boot = vec![owner.addr().await];
    let belgian = spawn_with("Waterschap BE", boot.clone(), |c| {
        c.jurisdiction = "BE".into()
    })
    .await;
    let german = spawn_with("Wasserwerk DE", boot, |c| c.jurisdiction = "DE".into()).await;
    let data = common::readings_csv(50);
    let v1 = publish_meta(
        &owner,
        &data,
        None,
        &format!("{PERSONAL}allowed_jurisdictions = [\"BE\", \"DE\"]\n"),
    )
    .await
    .unwrap();
    let id: DatasetId = v1.dataset.parse().unwrap();
    for n in [&belgian, &german] {
        let store = n.node.shared.store.clone();
        eventually("the entry to arrive", || {
            store.latest_entry(&id).unwrap().is_some()
        })
        .await;
    }
    let grant_of = |n: &TestNode| {
        let out = n.node.shared.store.request_out(&id).unwrap().unwrap();
        Cid::of_token(&out.delegation)
    };
    for n in [&belgian, &german] {
        let o = access::request(&n.node, id, "network planning", true)
            .await
            .unwrap();
        assert_eq!(o.status, "granted", "{o:?}");
    }
    let (be, de) = (grant_of(&belgian), grant_of(&german));
    // Nothing changed yet: a re-check keeps both.
    let lines = cix_node::recheck::recheck(&owner.node, "test")
        .await
        .unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l.verdict == "kept"), "{lines:?}");

    // Version 2 allows Belgium only: the German grant is revoked, the Belgian one kept.
    publish_meta(
        &owner,
        &data,
        Some(v1.dataset.clone()),
        "allowed_jurisdictions = [\"BE\"]\n",
    )
    .await
    .unwrap();
    let revs = cix_node::revoke::list(&owner.node.shared).unwrap();
    assert_eq!(revs.len(), 1, "{revs:?}");
    assert_eq!(revs[0].revoked, de.to_string());
    let reason = revs[0].reason.clone().unwrap();
    assert!(
        reason.contains("8.2.5") && reason.contains("DE"),
        "{reason}"
    );
    assert!(!revs.iter().any(|r| r.revoked == be.to_string()));
    // The holder is told why: the revocation reaches it by gossip, reason included.
    let gs = german.node.shared.clone();
    eventually("the revocation to reach the holder", || {
        cix_node::revoke::list(&gs)
            .unwrap()
            .iter()
            .any(|r| r.revoked == de.to_string() && r.reason.as_deref() == Some(reason.as_str()))
    })
    .await;
    // The kept grant is still live: a further re-check revokes nothing more.
    let lines = cix_node::recheck::recheck(&owner.node, "test")
        .await
        .unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].cid, be.to_string());
    assert_eq!(lines[0].verdict, "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso_37156_9_2_e_a_quality_report_reaches_the_publisher_and_its_fix_is_visible_everywhere()
{
    common::init_tracing();
    let publisher = common::spawn("Publisher", vec![]).await;
    let boot = vec![publisher.addr().await];
    let holder = common::spawn("Holder", boot.clone()).await;
    let third = common::spawn("Third", boot).await;
    let mut csv = String::from("station,pressure\n");
    for i in 0..20 {
        csv.push_str(&format!(
            "s{i},{}\n",
            if i == 3 {
                "".to_string()
            } else {
                format!("{}", 300 + i)
            }
        ));
    }
    let file = publisher.path("p.csv");
    std::fs::write(&file, &csv).unwrap();
    let v1 = publish(
        &publisher.node,
        PublishRequest {
            path: file.clone(),
            title: Some("pressure".into()),
            spectrum: Some("open".into()),
            meta: Some("domain = \"water\"\nkind = \"status\"\ndescription = \"t\"\n".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let id: DatasetId = v1.dataset.parse().unwrap();
    for n in [&holder, &third] {
        let store = n.node.shared.store.clone();
        eventually("the entry to arrive", || {
            store.latest_entry(&id).unwrap().is_some()
        })
        .await;
    }
    // ISO 37156 9.3: measures are in the entry, on every node.
    let m = cix_node::quality::measures(&third.node.shared, &v1.dataset).unwrap();
    assert_eq!(m.rows, Some(20));
    assert_eq!(m.completeness_permille, Some(975), "{m:?}");
    assert_eq!(m.validity_permille, Some(1000));

    let sent = cix_node::quality::report(
        &holder.node,
        &cix_node::quality::ReportRequest {
            dataset: v1.dataset.clone(),
            field: Some("pressure".into()),
            rows: vec![4],
            kind: "missing".into(),
            evidence: "row 4 has no pressure".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(sent.status, "open");
    let received = cix_node::quality::reports(&publisher.node.shared).unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].id, sent.id);
    assert_eq!(received[0].direction, "received");
    assert_eq!(received[0].reporter, holder.node.did().to_string());
    assert_eq!(
        cix_node::quality::measures(&publisher.node.shared, &v1.dataset)
            .unwrap()
            .open_reports,
        1
    );
    // A report about a dataset the peer does not publish is refused.
    let bad = cix_node::quality::report(
        &holder.node,
        &cix_node::quality::ReportRequest {
            dataset: v1.dataset.clone(),
            field: Some("no-such-field".into()),
            rows: vec![],
            kind: "missing".into(),
            evidence: "x".into(),
        },
    )
    .await;
    assert!(bad.is_err());

    // The corrected version references the report.
    let fixed = csv.replace("s3,\n", "s3,303\n");
    std::fs::write(&file, &fixed).unwrap();
    let v2 = publish(
        &publisher.node,
        PublishRequest {
            path: file,
            dataset: Some(v1.dataset.clone()),
            resolves: vec![sent.id[..10].to_string()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(v2.version, 2);
    for n in [&holder, &third] {
        let store = n.node.shared.store.clone();
        eventually("version 2 to arrive", || {
            store.latest_entry(&id).unwrap().is_some_and(|e| {
                e.entry.version == 2 && e.entry.details.resolves == vec![sent.id.clone()]
            })
        })
        .await;
    }
    let m = cix_node::quality::measures(&third.node.shared, &v1.dataset).unwrap();
    assert_eq!(m.resolved_reports, vec![sent.id.clone()]);
    assert_eq!(m.completeness_permille, Some(1000));
    let at_holder = cix_node::quality::reports(&holder.node.shared).unwrap();
    assert_eq!(at_holder[0].status, "fixed");
    assert_eq!(at_holder[0].fixed_by.as_deref(), Some(v2.entry.as_str()));
    assert_eq!(
        cix_node::quality::measures(&publisher.node.shared, &v1.dataset)
            .unwrap()
            .open_reports,
        0
    );
}
