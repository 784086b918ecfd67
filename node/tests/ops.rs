//! Issue 9: running nodes for real. The metrics a scrape of `/metrics` returns after real work,
//! parsed with a Prometheus text parser; the unauthenticated health answer; and a libp2p node
//! that is not cix (stock rust-libp2p behaviours only) that connects, identifies, subscribes to
//! `cix/catalogue/1` and decodes and verifies a signed entry with nothing but `specs/`.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use cix_node::publish::{publish, PublishRequest};
use cix_node::NodeEvent;
use common::{spawn, wait_for, STEP};
use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{gossipsub, identify, noise, ping, tcp, yamux, Multiaddr};

/// A plain HTTP/1.1 GET on the admin listener: status code and body.
fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    // The body may be chunked; de-chunk it.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (len, after) = rest.split_once("\r\n").unwrap();
            let n = usize::from_str_radix(len.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (code, body)
}

fn scrape(addr: SocketAddr, token: &str) -> prometheus_parse::Scrape {
    let (code, body) = http_get(addr, "/metrics", Some(token));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body.lines().last(),
        Some("# EOF"),
        "OpenMetrics ends in # EOF"
    );
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(s: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let found = s
        .samples
        .iter()
        .find(|x| x.metric == name && label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {label:?} in the scrape"));
    match found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => panic!("{name} is not a plain number"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_real_work_parse_and_hold_sensible_values() {
    common::init_tracing();
    let a = spawn("Metro Water", vec![]).await;
    let b = spawn("Metro Transit", vec![a.addr().await]).await;
    let token_a = "a".repeat(32);
    let token_b = "b".repeat(32);
    let admin_a = cix_node::admin::serve(
        a.node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        token_a.clone(),
    )
    .await
    .unwrap();
    let admin_b = cix_node::admin::serve(
        b.node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        token_b.clone(),
    )
    .await
    .unwrap();

    let mut events = b.node.events();
    let file = a.path("flow.csv");
    let csv = common::readings_csv(2000);
    std::fs::write(&file, &csv).unwrap();
    let published = publish(
        &a.node,
        PublishRequest {
            path: file,
            title: Some("Flow readings".into()),
            spectrum: Some("open".into()),
            meta: Some(
                "domain = \"water\"\nkind = \"supply\"\ndescription = \"hourly flow\"\n".into(),
            ),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    wait_for(
        &mut events,
        "the entry at B",
        |e| matches!(e, NodeEvent::EntryAccepted { dataset, .. } if *dataset == published.dataset),
    )
    .await;
    let out = b.path("flow-copy.csv");
    cix_node::transfer::fetch(&b.node, &published.dataset, &out, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), csv);

    // The owner's scrape: the transfer it served, its bytes, its catalogue and audit log.
    let sa = scrape(admin_a, &token_a);
    assert_eq!(value(&sa, "cix_peers", None), 1.0);
    assert_eq!(value(&sa, "cix_catalogue_entries", None), 1.0);
    assert_eq!(value(&sa, "cix_own_datasets", None), 1.0);
    assert!(value(&sa, "cix_transfers_total", Some(("outcome", "served"))) >= 1.0);
    assert_eq!(
        value(&sa, "cix_transfers_total", Some(("outcome", "refused"))),
        0.0
    );
    assert!(
        value(&sa, "cix_bytes_total", Some(("direction", "served"))) >= csv.len() as f64,
        "at least the dataset's bytes were served"
    );
    assert!(value(&sa, "cix_audit_records", None) >= 1.0);
    assert!(value(&sa, "cix_store_bytes", None) > 0.0);
    assert!(value(&sa, "cix_blob_bytes", None) >= csv.len() as f64);
    assert_eq!(value(&sa, "cix_revocations", None), 0.0);
    assert_eq!(
        value(&sa, "cix_requests", Some(("decision", "pending"))),
        0.0
    );
    // libp2p's own metrics, from the same registry.
    assert!(
        value(&sa, "libp2p_swarm_connections_established_total", None) >= 1.0,
        "libp2p's swarm metrics are in the scrape"
    );
    assert!(
        sa.samples
            .iter()
            .any(|x| x.metric.starts_with("libp2p_bandwidth") && matches!(x.value, prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) if v > 0.0)),
        "libp2p's bandwidth metrics count the transfer"
    );
    assert!(sa
        .samples
        .iter()
        .any(|x| x.metric.starts_with("libp2p_gossipsub")));
    assert!(sa
        .samples
        .iter()
        .any(|x| x.metric.starts_with("libp2p_identify")));

    // The receiver's: the entry accepted by gossip or catch-up, none rejected.
    let sb = scrape(admin_b, &token_b);
    assert_eq!(value(&sb, "cix_peers", None), 1.0);
    assert_eq!(value(&sb, "cix_catalogue_entries", None), 1.0);
    assert_eq!(value(&sb, "cix_own_datasets", None), 0.0);
    assert_eq!(
        value(
            &sb,
            "cix_gossip_records_total",
            Some(("verdict", "entry-accepted"))
        ),
        1.0
    );
    assert_eq!(
        value(
            &sb,
            "cix_gossip_records_total",
            Some(("verdict", "entry-rejected"))
        ),
        0.0
    );
    assert!(
        value(&sb, "cix_audit_records", None) >= 1.0,
        "the fetch is on B's record"
    );

    // Without the token: /metrics is refused, /health answers, with nothing secret.
    let (code, _) = http_get(admin_a, "/metrics", None);
    assert_eq!(code, 401);
    let (code, body) = http_get(admin_a, "/health", None);
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["peers"], 1);
    assert!(!body.contains(&a.node.peer_id().to_string()) && !body.contains("did:key"));
}

#[derive(NetworkBehaviour)]
struct Stock {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
}

/// What `specs/identity.md` §6 says every envelope starts with after the signature: a two-key
/// map, the key "h", and the varsig header.
const SIGNED_PREFIX: [u8; 12] = [
    0xa2, 0x61, 0x68, 0x48, 0x34, 0x01, 0xed, 0x01, 0xed, 0x01, 0x13, 0x71,
];

/// Decodes and verifies a catalogue entry envelope by the spec alone: returns its title and
/// signer (`iss`), or why it is not valid.
fn decode_by_spec(data: &[u8]) -> Result<(String, String), String> {
    use ciborium::Value;
    // identity.md §6: [bytes .size 64, signed]; 0x82 0x58 0x40 then the signature.
    if data.len() < 67 + SIGNED_PREFIX.len() || data[..3] != [0x82, 0x58, 0x40] {
        return Err("not an envelope".into());
    }
    let sig: [u8; 64] = data[3..67].try_into().unwrap();
    let signed = &data[67..];
    if signed[..SIGNED_PREFIX.len()] != SIGNED_PREFIX {
        return Err("unexpected varsig header".into());
    }
    let value: Value = ciborium::from_reader(signed).map_err(|e| e.to_string())?;
    let map = value.as_map().ok_or("signed part is not a map")?;
    let payload = map
        .iter()
        .find(|(k, _)| k.as_text() == Some("cix/entry@1"))
        .map(|(_, v)| v)
        .ok_or("no cix/entry@1 payload")?;
    let field = |name: &str| {
        payload
            .as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some(name)))
            .and_then(|(_, v)| v.as_text())
            .map(str::to_string)
            .ok_or(format!("no {name}"))
    };
    let iss = field("iss")?;
    let title = field("title")?;
    // identity.md §4: did:key:z ‖ base58btc(ed 01 ‖ key).
    let b58 = iss
        .strip_prefix("did:key:z")
        .ok_or("iss is not a did:key")?;
    let raw = bs58::decode(b58).into_vec().map_err(|e| e.to_string())?;
    if raw.len() != 34 || raw[..2] != [0xed, 0x01] {
        return Err("iss is not an Ed25519 did:key".into());
    }
    let key = ed25519_dalek::VerifyingKey::from_bytes(&raw[2..].try_into().unwrap())
        .map_err(|e| e.to_string())?;
    if key.is_weak() {
        return Err("weak key".into());
    }
    // identity.md §5: strict verification over the signed part's bytes.
    key.verify_strict(signed, &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|e| format!("bad signature: {e}"))?;
    Ok((title, iss))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_libp2p_node_identifies_subscribes_and_verifies_an_entry_by_the_spec() {
    common::init_tracing();
    let cix = spawn("Harbour Energy", vec![]).await;
    let cix_addr: Multiaddr = cix.addr().await.parse().unwrap();

    let mut stock = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| Stock {
            identify: identify::Behaviour::new(
                identify::Config::new("/stock/1.0.0".into(), key.public())
                    .with_agent_version("stock-rust-libp2p".into()),
            ),
            ping: ping::Behaviour::default(),
            gossipsub: gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossipsub::ConfigBuilder::default()
                    .max_transmit_size(256 * 1024)
                    .build()
                    .unwrap(),
            )
            .unwrap(),
        })
        .unwrap()
        .build();
    let topic = gossipsub::IdentTopic::new("cix/catalogue/1");
    stock.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    stock.dial(cix_addr).unwrap();
    let stock_id = stock.local_peer_id().to_string();
    let mut events = cix.node.events();

    // Identify: the cix node names itself and lists the standard protocols.
    let deadline = tokio::time::Instant::now() + STEP;
    let info = loop {
        let ev = tokio::time::timeout_at(deadline, stock.select_next_some())
            .await
            .expect("identify from the cix node");
        if let SwarmEvent::Behaviour(StockEvent::Identify(identify::Event::Received {
            info, ..
        })) = ev
        {
            break info;
        }
    };
    assert!(
        info.agent_version.starts_with("cix/"),
        "{}",
        info.agent_version
    );
    assert!(info.agent_version.ends_with("(Harbour Energy)"));
    let protocols: Vec<String> = info.protocols.iter().map(|p| p.to_string()).collect();
    for p in [
        "/ipfs/ping/1.0.0",
        "/ipfs/id/1.0.0",
        "/meshsub/1.1.0",
        "/cix/kad/1.0.0",
        "/cix/sync/1",
    ] {
        assert!(
            protocols.iter().any(|x| x == p),
            "{p} missing from {protocols:?}"
        );
    }
    assert_eq!(info.public_key.to_peer_id(), cix.node.peer_id());

    // The cix node sees the subscription, then publishes.
    let subscribed = async {
        loop {
            tokio::select! {
                _ = stock.select_next_some() => {}
                ev = events.recv() => {
                    if matches!(ev, Ok(NodeEvent::PeerSubscribed { ref peer }) if *peer == stock_id) {
                        return;
                    }
                }
            }
        }
    };
    tokio::time::timeout(STEP, subscribed)
        .await
        .expect("subscription seen");
    let file = cix.path("tariffs.csv");
    std::fs::write(&file, common::readings_csv(20)).unwrap();
    let cix_node = cix.node.clone();
    let publishing = tokio::spawn(async move {
        // Let the mesh form (one gossipsub heartbeat) before publishing.
        tokio::time::sleep(Duration::from_millis(800)).await;
        publish(
            &cix_node,
            PublishRequest {
                path: file,
                title: Some("Harbour tariffs".into()),
                spectrum: Some("open".into()),
                meta: Some(
                    "domain = \"energy\"\nkind = \"supply\"\ndescription = \"tariffs\"\n".into(),
                ),
                ..Default::default()
            },
        )
        .await
        .unwrap()
    });
    let data = tokio::time::timeout(STEP, async {
        loop {
            if let SwarmEvent::Behaviour(StockEvent::Gossipsub(gossipsub::Event::Message {
                message,
                ..
            })) = stock.select_next_some().await
            {
                if message.topic == topic.hash() {
                    return message.data;
                }
            }
        }
    })
    .await
    .expect("the entry arrives by gossip");
    publishing.await.unwrap();

    let (title, iss) = decode_by_spec(&data).unwrap();
    assert_eq!(title, "Harbour tariffs");
    assert_eq!(iss, cix.node.did().to_string());
    // The decoder can say no: one flipped byte in the signed part breaks the signature.
    let mut tampered = data.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 0x01;
    assert!(decode_by_spec(&tampered).is_err());
}

/// Circuit relay v2 and DCUtR on loopback: A dials B only by its relayed address; the relayed
/// connection works, and DCUtR then upgrades it to a direct one (which loopback allows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_reached_only_through_a_relay_is_connected_then_upgraded_to_direct() {
    common::init_tracing();
    let relay = common::spawn_with("Relay Agency", vec![], |c| c.relay_server = true).await;
    let relay_addr = relay.addr().await;
    let circuit = format!("{relay_addr}/p2p-circuit");
    let b = common::spawn_with("Behind NAT", vec![relay_addr.clone()], |c| {
        c.listen.push(circuit.clone());
    })
    .await;
    let a = spawn("Dialer", vec![]).await;
    let target: Multiaddr = format!("{circuit}/p2p/{}", b.node.peer_id())
        .parse()
        .unwrap();
    // The reservation may take a moment: dial until a connection to B exists.
    let deadline = tokio::time::Instant::now() + STEP;
    let b_id = b.node.peer_id().to_string();
    let view = loop {
        let _ = a.node.dial(target.clone()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let peers = a.node.peers().await.unwrap();
        if let Some(p) = peers.into_iter().find(|p| p.peer_id == b_id) {
            break p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never reached B through the relay"
        );
    };
    assert!(
        view.connections.iter().any(|c| c.relayed),
        "the first connection is relayed: {view:?}"
    );
    // cix protocols run over it: B answers A's clock query through the relay.
    let skew = cix_node::clock::query(&a.node, b.node.peer_id())
        .await
        .unwrap();
    assert!(skew.offset_ms.abs() < 5_000, "{skew:?}");
    // Give DCUtR a moment, then report what it achieved.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let direct = loop {
        let peers = a.node.peers().await.unwrap();
        let direct = peers
            .iter()
            .find(|p| p.peer_id == b_id)
            .is_some_and(|p| p.connections.iter().any(|c| !c.relayed));
        if direct || tokio::time::Instant::now() > deadline {
            break direct;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let dcutr_succeeded = [&a, &b].iter().any(|n| {
        n.node.shared.metrics.encode().unwrap().lines().any(|l| {
            l.starts_with("libp2p_dcutr_events_total{event=\"DirectConnectionUpgradeSucceeded\"}")
        })
    });
    println!(
        "relayed connection established; direct connection within 5 s: {direct}; DCUtR reported \
         an upgrade: {dcutr_succeeded}"
    );
    assert!(
        direct && dcutr_succeeded,
        "loopback allows the upgrade to direct"
    );
}
