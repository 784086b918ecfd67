//! The hidden, testnet-only `cix node run --testnet-faults` (`cix_node::testnet_faults`):
//! without it the fault endpoints do not exist and the transport is the ordinary one (QUIC
//! included); with it the node runs the delaying transport (TCP only) and its admin API takes
//! the peers to refuse and the delay and loss per peer, checking every input.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const SWITCH: &[&str] = &["--testnet-faults"];
const TCP: &str = "/ip4/127.0.0.1/tcp/0";

fn init(home: &Path, name: &str) {
    ok(home, &["init", "--name", name, "--jurisdiction", "NL"]);
}

fn node_json(home: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(home.join("node.json")).unwrap()).unwrap()
}

/// `PUT path` on the node's admin API with `body` (raw bytes) and `token` (the node's own
/// when `None`): the status and the JSON answer (`Null` when it is not JSON).
fn put_raw(home: &Path, path: &str, body: Vec<u8>, token: Option<&str>) -> (u16, Value) {
    let base = node_json(home)["admin_url"].as_str().unwrap().to_string();
    let own = std::fs::read_to_string(home.join("admin.token")).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut resp = agent
        .put(format!("{base}{path}"))
        .header(
            "Authorization",
            format!("Bearer {}", token.unwrap_or(own.trim())),
        )
        .header("Content-Type", "application/json")
        .send(&body[..])
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn put(home: &Path, path: &str, body: &Value) -> (u16, Value) {
    put_raw(home, path, serde_json::to_vec(body).unwrap(), None)
}

fn peer_of(home: &Path) -> String {
    node_json(home)["peer_id"].as_str().unwrap().to_string()
}

/// The peer views `home`'s node has of connected peers.
fn peers(home: &Path) -> Vec<Value> {
    json_lines(&ok(home, &["--json", "peers"]))
}

fn connected(home: &Path, peer: &str) -> Option<Value> {
    peers(home).into_iter().find(|p| p["peer_id"] == peer)
}

#[test]
fn without_the_switch_there_are_no_fault_endpoints_and_the_transport_is_the_usual_one() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "Plain");
    // QUIC is part of the ordinary transport, not of the testnet's delaying one.
    let _node = start_on(&home, "/ip4/127.0.0.1/udp/0/quic-v1", None);
    let listen = node_json(&home)["listen"].to_string();
    assert!(listen.contains("/quic-v1"), "{listen}");
    let other = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_string();
    let (status, _) = put(&home, "/v1/testnet/blocked", &json!({ "peers": [other] }));
    assert_eq!(status, 404);
    let (status, _) = put(
        &home,
        "/v1/testnet/delays",
        &json!({ "delays": [{ "peer": other, "delay_ms": 100 }] }),
    );
    assert_eq!(status, 404);
    // The switch is hidden from operators.
    let help = ok(&home, &["node", "run", "--help"]);
    assert!(!help.contains("testnet"), "{help}");
}

#[test]
fn with_the_switch_the_node_runs_the_delaying_transport_which_is_tcp_only() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "Switched");
    let mut child = Command::new(CIX)
        .arg("--home")
        .arg(&home)
        .args(["node", "run", "--testnet-faults", "--listen"])
        .arg("/ip4/127.0.0.1/udp/0/quic-v1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node did not refuse a QUIC listen address with --testnet-faults");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("TESTNET ONLY") && err.contains("quic-v1") && err.contains("not supported"),
        "{err}"
    );
}

#[test]
fn the_fault_endpoints_refuse_bad_input_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("a");
    init(&home, "Checked");
    let _node = start_with(&home, TCP, None, SWITCH);
    let me = peer_of(&home);
    let other = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_string();
    let third = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_string();
    let error = |(status, v): (u16, Value)| (status, v["error"].as_str().unwrap_or("").to_string());

    // The admin token guards them like every other route.
    let body = serde_json::to_vec(&json!({ "peers": [] })).unwrap();
    let (status, _) = put_raw(&home, "/v1/testnet/blocked", body, Some("wrong"));
    assert_eq!(status, 401);

    let (s, e) = error(put(
        &home,
        "/v1/testnet/blocked",
        &json!({ "peers": [other, "nope"] }),
    ));
    assert_eq!(s, 400);
    assert!(e.contains("peer 1") && e.contains("not a peer id"), "{e}");
    let (s, e) = error(put(&home, "/v1/testnet/blocked", &json!({ "peers": [me] })));
    assert_eq!(s, 400);
    assert!(e.contains("this node itself"), "{e}");
    let (s, e) = error(put(
        &home,
        "/v1/testnet/blocked",
        &json!({ "peers": [other, other] }),
    ));
    assert_eq!(s, 400);
    assert!(e.contains("named twice"), "{e}");
    let many: Vec<String> = (0..=cix_node::testnet_faults::MAX_PEERS)
        .map(|i| i.to_string())
        .collect();
    let (s, e) = error(put(&home, "/v1/testnet/blocked", &json!({ "peers": many })));
    assert_eq!(s, 400);
    assert!(e.contains("1025 peers named"), "{e}");
    let (s, e) = error(put(
        &home,
        "/v1/testnet/delays",
        &json!({ "delays": [{ "peer": other, "delay_ms": 60_001 }] }),
    ));
    assert_eq!(s, 400);
    assert!(e.contains("over the 60000 ms"), "{e}");
    let (s, e) = error(put(
        &home,
        "/v1/testnet/delays",
        &json!({ "delays": [{ "peer": other, "delay_ms": -5 }] }),
    ));
    assert_eq!(s, 400);
    assert!(e.contains("bad delays body"), "{e}");
    // A loss is a finite share from 0 up to, not including, 1, named by the peer's position.
    for bad in [json!(1.0), json!(1), json!(-0.25), json!(7.5)] {
        let (s, e) = error(put(
            &home,
            "/v1/testnet/delays",
            &json!({ "delays": [
                { "peer": other, "delay_ms": 10 },
                { "peer": third, "delay_ms": 10, "loss": bad },
            ] }),
        ));
        assert_eq!(s, 400, "{bad}");
        assert!(
            e.contains("peer 1: loss") && e.contains("not a share from 0 up to"),
            "{bad}: {e}"
        );
    }
    // JSON has no NaN or infinity: such a loss, or one out of f64's range, or a seed that is
    // not a u64, is not this body at all.
    for bad in [
        r#""NaN""#.to_string(),
        "1e999".to_string(),
        r#"0.1, "seed": -1"#.to_string(),
    ] {
        let body =
            format!(r#"{{"delays": [{{"peer": "{other}", "delay_ms": 1, "loss": {bad}}}]}}"#);
        let (s, e) = error(put_raw(
            &home,
            "/v1/testnet/delays",
            body.into_bytes(),
            None,
        ));
        assert_eq!(s, 400, "{bad}");
        assert!(e.contains("bad delays body"), "{bad}: {e}");
    }
    let (s, e) = error(put(
        &home,
        "/v1/testnet/blocked",
        &json!({ "peer": [other] }),
    ));
    assert_eq!(s, 400);
    assert!(e.contains("unknown field"), "{e}");
    let (s, e) = error(put_raw(
        &home,
        "/v1/testnet/blocked",
        b"{\"peers\": [".to_vec(),
        None,
    ));
    assert_eq!(s, 400);
    assert!(e.contains("bad blocked body"), "{e}");
    // A body over the bound is refused before it is parsed.
    let huge = vec![b' '; cix_node::testnet_faults::MAX_BODY_BYTES + 1];
    let (s, _) = put_raw(&home, "/v1/testnet/blocked", huge, None);
    assert_eq!(s, 413);

    // Good requests are answered with what was set, and the node still runs.
    let (s, v) = put(&home, "/v1/testnet/blocked", &json!({ "peers": [other] }));
    assert_eq!((s, &v), (200, &json!({ "blocked": 1 })));
    let (s, v) = put(
        &home,
        "/v1/testnet/delays",
        &json!({ "delays": [{ "peer": other, "delay_ms": 150 }] }),
    );
    assert_eq!((s, &v), (200, &json!({ "delayed": 1, "lossy": 0 })));
    let (s, v) = put(
        &home,
        "/v1/testnet/delays",
        &json!({ "delays": [
            { "peer": other, "delay_ms": 0, "loss": 0.25, "seed": 7 },
            { "peer": third, "delay_ms": 20, "loss": 0.0 },
        ] }),
    );
    assert_eq!((s, &v), (200, &json!({ "delayed": 1, "lossy": 1 })));
    assert!(json(&home, &["status"])["peer_id"] == me.as_str());
}

#[test]
fn blocked_peers_are_cut_off_until_unblocked_and_delays_show_in_ping_times() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    init(&a, "Hub");
    init(&b, "Slow");
    init(&c, "Near");
    let _na = start_with(&a, TCP, None, SWITCH);
    let (pb, pc) = (peer_of_home_key(&b), peer_of_home_key(&c));
    // Before B connects: what A reads from B waits 400 ms, from C nothing.
    let (s, _) = put(
        &a,
        "/v1/testnet/delays",
        &json!({ "delays": [{ "peer": pb, "delay_ms": 400 }] }),
    );
    assert_eq!(s, 200);
    let hub = listen_addr(&a);
    let _nb = start_with(&b, TCP, Some(&hub), &[]);
    let _nc = start_with(&c, TCP, Some(&hub), &[]);
    let rtt = |peer: &str| {
        let mut got = None;
        wait_until("A's first ping of the peer", || {
            got = connected(&a, peer).and_then(|p| p["latency_ms"].as_u64());
            got.is_some()
        });
        got.unwrap()
    };
    let (slow, near) = (rtt(&pb), rtt(&pc));
    assert!(slow >= 400, "A's ping of B took {slow} ms");
    assert!(near < 400, "A's ping of C took {near} ms");

    // Blocking B closes its connection to A; C stays.
    let (s, _) = put(&a, "/v1/testnet/blocked", &json!({ "peers": [pb] }));
    assert_eq!(s, 200);
    wait_until("B to be cut off from A", || {
        connected(&a, &pb).is_none() && connected(&b, &peer_of(&a)).is_none()
    });
    assert!(connected(&a, &pc).is_some());

    // Unblocked, B can connect again.
    let (s, _) = put(&a, "/v1/testnet/blocked", &json!({ "peers": [] }));
    assert_eq!(s, 200);
    ok(&b, &["dial", &hub]);
    wait_until("B to be back", || connected(&a, &pb).is_some());
}

/// A node's peer id from its key, before it runs.
fn peer_of_home_key(home: &Path) -> String {
    let key = cix_node::Home::new(home.to_path_buf()).load_key().unwrap();
    cix_node::node::peer_of_did(&key.did()).unwrap().to_string()
}
