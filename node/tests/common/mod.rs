//! Helpers for the node's scenario tests: real nodes on 127.0.0.1 port 0, each with its own
//! home in a temporary directory, and waiting on node events with a timeout.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use cix_node::{Config, Home, Node, NodeEvent};
use tokio::sync::broadcast;

/// Longest a scenario step may wait for an event.
pub const STEP: Duration = Duration::from_secs(20);

pub struct TestNode {
    pub node: Node,
    pub dir: tempfile::TempDir,
    pub name: String,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Starts a node named `name`, bootstrapped to `bootstrap` (addresses with /p2p/).
pub async fn spawn(name: &str, bootstrap: Vec<String>) -> TestNode {
    spawn_with(name, bootstrap, |_| {}).await
}

/// [`spawn`], with `edit` changing the config first (jurisdiction, trusted registrars...).
pub async fn spawn_with(
    name: &str,
    bootstrap: Vec<String>,
    edit: impl FnOnce(&mut Config),
) -> TestNode {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = Home::new(dir.path().join("home"));
    let mut config = Config::new(name, "US");
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.bootstrap = bootstrap;
    config.store_cache_bytes = 8 * 1024 * 1024;
    // Every agency may publish personal data in tests (ISO 37156 8.3.3 asks for a notice).
    config.privacy = Some(test_notice(name));
    edit(&mut config);
    home.init(&config).expect("init");
    let node = cix_node::start(home, config).await.expect("start");
    TestNode {
        node,
        dir,
        name: name.into(),
    }
}

/// A privacy notice for agency `name`.
pub fn test_notice(name: &str) -> cix_protocol::profile::PrivacyNotice {
    cix_protocol::profile::PrivacyNotice {
        controller: format!("{name}, data protection office"),
        purposes: vec!["operating the network".into(), "planning".into()],
        third_parties: "other agencies under a signed grant only".into(),
        rights: "access, rectification, erasure, objection".into(),
        cross_border: "none outside the jurisdiction".into(),
        contact: "privacy@agency.example".into(),
        url: None,
    }
}

impl TestNode {
    pub async fn addr(&self) -> String {
        self.node.listening().await.expect("listening")[0].to_string()
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// Waits until an event matching `pred` arrives, or fails the test after [`STEP`].
pub async fn wait_for(
    rx: &mut broadcast::Receiver<NodeEvent>,
    what: &str,
    mut pred: impl FnMut(&NodeEvent) -> bool,
) -> NodeEvent {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return ev,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                panic!("node stopped while waiting for {what}")
            }
            Err(_) => panic!("timed out after {STEP:?} waiting for {what}"),
        }
    }
}

/// Polls `check` every 50 ms until it is true, or fails the test after [`STEP`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !check() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {STEP:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A CSV of hourly readings, about `rows` lines, deterministic.
pub fn readings_csv(rows: usize) -> Vec<u8> {
    let mut out = String::from("time,station,flow (m3/h),pressure (bar)\n");
    for i in 0..rows {
        out.push_str(&format!(
            "2024-01-{:02}T{:02}:00:00Z,ST{:03},{}.{},{}\n",
            1 + (i / 24) % 28,
            i % 24,
            i % 97,
            (i * 7919) % 1000,
            (i * 31) % 11,
            i % 10
        ));
    }
    out.into_bytes()
}

/// The invocation an honest `by` signs to fetch `content` of `dataset` from `owner` under
/// `prf`, stating the caveat arguments a grant for `purpose` asks for (what
/// `transfer::credentials` would build). Tests edit it to make attacks.
pub fn fetch_invocation(
    by: &TestNode,
    owner: &cix_protocol::identity::Did,
    dataset: &str,
    content: &cix_protocol::content::ContentHash,
    purpose: &str,
    prf: Vec<cix_protocol::ucan::Cid>,
) -> cix_protocol::ucan::Invocation {
    use cix_protocol::{caveats, ucan};
    let t = cix_node::access::now();
    let text = |s: &str| ciborium::Value::Text(s.into());
    ucan::Invocation {
        iss: by.node.did(),
        sub: *owner,
        aud: Some(*owner),
        cmd: ucan::CMD_FETCH.into(),
        args: std::collections::BTreeMap::from([
            (caveats::ARG_DATASET.into(), text(dataset)),
            (caveats::ARG_CONTENT.into(), text(&content.to_hex())),
            (caveats::ARG_PURPOSE.into(), text(purpose)),
            (
                caveats::ARG_JURISDICTION.into(),
                text(&by.node.shared.config.jurisdiction),
            ),
        ]),
        prf,
        exp: Some(t + 60),
        iat: Some(t),
        nonce: ucan::fresh_nonce(),
        meta: None,
        cause: None,
    }
}
