//! Two `cix node run` processes that share one transport only, QUIC or TCP, exchange datasets
//! both ways (ISO 37156 7.3.2: verified against the catalogue's BLAKE3 on arrival), and nodes
//! that prefer different TCP security upgrades still talk.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{json, json_lines, listen_addr, ok, start_on, wait_until};

/// A file of `len` bytes that differ from run to run and from `tag` to `tag`.
fn payload(dir: &Path, tag: &str, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let mut seed = blake3::Hasher::new();
    seed.update(tag.as_bytes());
    seed.update(dir.as_os_str().as_encoded_bytes());
    let mut bytes = vec![0u8; len];
    seed.finalize_xof().fill(&mut bytes);
    let path = dir.join(format!("{tag}.bin"));
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

fn init(home: &Path, name: &str, security: &str) {
    ok(home, &["init", "--name", name, "--jurisdiction", "US"]);
    let config = home.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // `cix init` writes the default; the test changes it in place.
    let default = "tcp_security = \"tls\"";
    assert!(text.contains(default), "{text}");
    let text = text.replace(default, &format!("tcp_security = \"{security}\""));
    std::fs::write(&config, text).unwrap();
}

/// `from` publishes an open file of `len` bytes, `to` fetches it and gets the same bytes.
fn publish_and_fetch(dir: &Path, from: &Path, to: &Path, tag: &str, len: usize) {
    let (file, bytes) = payload(dir, tag, len);
    let id = ok(
        from,
        &[
            "publish",
            file.to_str().unwrap(),
            "--title",
            tag,
            "--spectrum",
            "open",
        ],
    )
    .trim()
    .to_string();
    wait_until("the entry to reach the other node", || {
        common::cix(to, &["catalogue", "show", &id])
            .status
            .success()
    });
    let out = dir.join(format!("{tag}.fetched"));
    let done = json(to, &["fetch", &id, "-o", out.to_str().unwrap()]);
    assert_eq!(
        done["content_hash"].as_str().unwrap(),
        blake3::hash(&bytes).to_hex().as_str()
    );
    assert_eq!(std::fs::read(&out).unwrap(), bytes, "{tag}: bytes differ");
}

/// Two nodes listening on `listen` only (so the only connection between them is over that
/// transport) fetch from each other; `cix peers` shows the peer's address on that transport.
fn both_ways(listen: &str, marker: &str, security: (&str, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    init(&a, "Water Board", security.0);
    init(&b, "Grid Operator", security.1);
    let _node_a = start_on(&a, listen, None);
    let addr = listen_addr(&a);
    assert!(addr.contains(marker), "{addr} is not a {marker} address");
    let _node_b = start_on(&b, listen, Some(&addr));
    wait_until("the nodes to connect", || {
        json_lines(&ok(&b, &["--json", "peers"])).len() == 1
    });
    let peers = json_lines(&ok(&b, &["--json", "peers"]));
    let shown = peers[0].to_string();
    assert!(
        shown.contains(marker),
        "peer listed without a {marker} address: {shown}"
    );
    publish_and_fetch(dir.path(), &a, &b, "a-to-b", 3 * 1024 * 1024 + 17);
    publish_and_fetch(dir.path(), &b, &a, "b-to-a", 1024 * 1024 + 5);
}

#[test]
fn two_nodes_on_quic_only_fetch_both_ways() {
    both_ways("/ip4/127.0.0.1/udp/0/quic-v1", "/quic-v1", ("tls", "tls"));
}

#[test]
fn two_nodes_on_tcp_only_fetch_both_ways() {
    both_ways("/ip4/127.0.0.1/tcp/0", "/tcp/", ("tls", "tls"));
}

#[test]
fn nodes_preferring_noise_and_tls_still_talk_over_tcp() {
    both_ways("/ip4/127.0.0.1/tcp/0", "/tcp/", ("noise", "tls"));
    both_ways("/ip4/127.0.0.1/tcp/0", "/tcp/", ("tls", "noise"));
}
