//! `cix-testnet join`: how long a node joining a network takes to hold its whole catalogue
//! through catch-up (`/cix/sync/1` r1, `specs/gossip.md` §6).
//!
//! Setup (not measured): `nodes` real nodes on loopback, each bootstrapped to the first. Each
//! publishes one small CSV through the node library; from those entries the testnet derives
//! synthetic ones, each a new dataset signed by one of the publishers in turn, until the
//! catalogue holds `entries` entries, and puts every one straight into every node's store, as
//! if gossip had delivered them earlier. The synthetic entries are signed, rule-checked entries
//! like any other: the joiner validates each exactly as it would a gossip message.
//!
//! Measured: a fresh node starts, bootstrapped to the first node only, and the clock runs from
//! its start until its own `CatchUpDone` event for that peer, after which its listing must
//! hold every entry. Also reported: records and envelope bytes received, and as a baseline
//! measured in the same run, the time to decode, verify and store the same envelopes into an
//! empty store without any network.

use anyhow::{bail, Context, Result};
use cix_node::publish::{publish, PublishRequest};
use cix_node::store::Store;
use cix_node::{Config, Home, Node, NodeEvent};
use cix_protocol::catalogue::{DatasetId, SignedEntry};
use serde::Serialize;
use tokio::time::{Duration, Instant};

/// sled cache per node.
const STORE_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Entries the network's catalogue holds.
    pub entries: usize,
    /// Nodes in the network before the joiner.
    pub nodes: usize,
    /// Longest wait for the joiner.
    pub timeout: Duration,
}

/// What `cix-testnet join --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Entries in the network's catalogue.
    pub entries: usize,
    /// Nodes before the joiner.
    pub nodes: usize,
    /// Time to start the network and fill its stores, milliseconds.
    pub setup_ms: f64,
    /// From the joiner's start until it held every entry, milliseconds.
    pub join_ms: f64,
    /// Entries the joiner lists at the end.
    pub joiner_entries: usize,
    /// Records (entries and withdrawals) the joiner received while catching up.
    pub records_received: u64,
    /// Envelope bytes of those records.
    pub bytes_received: u64,
    /// Records per second over `join_ms`.
    pub records_per_second: f64,
    /// Baseline: decoding, verifying and storing the same envelopes locally, milliseconds.
    pub local_ingest_ms: f64,
    /// `join_ms` / `local_ingest_ms`: the cost of the network on top of the local work.
    pub ratio_to_local: f64,
    /// True when the joiner holds every entry.
    pub ok: bool,
}

impl Report {
    /// The report as text.
    pub fn text(&self) -> String {
        format!(
            "a node joining a network of {} nodes whose catalogue holds {} entries:\n  \
             held all of them after {:.0} ms ({} entries listed, {} records, {} received, \
             {:.0} records/s)\n  baseline, verifying and storing the same entries locally: \
             {:.0} ms (join took {:.2}x that)\n  network setup (not measured): {:.0} ms",
            self.nodes,
            self.entries,
            self.join_ms,
            self.joiner_entries,
            self.records_received,
            human_bytes(self.bytes_received),
            self.records_per_second,
            self.local_ingest_ms,
            self.ratio_to_local,
            self.setup_ms,
        )
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn csv(rows: usize) -> Vec<u8> {
    let mut out = String::from("time,level (m)\n");
    for i in 0..rows {
        out.push_str(&format!(
            "2024-03-01T{:02}:00:00Z,{}.{}\n",
            i % 24,
            10 + i % 7,
            i % 10
        ));
    }
    out.into_bytes()
}

async fn start_node(dir: &std::path::Path, name: &str, bootstrap: Vec<String>) -> Result<Node> {
    let home = Home::new(dir.join(name));
    let mut config = Config::new(name, "US");
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.store_cache_bytes = STORE_CACHE_BYTES;
    config.bootstrap = bootstrap;
    home.init(&config)?;
    cix_node::start(home, config)
        .await
        .with_context(|| format!("cannot start {name}"))
}

/// Runs the measurement.
///
/// # Errors
///
/// If a node cannot start or publish, or the joiner does not finish within the timeout.
pub async fn run(opts: Options) -> Result<Report> {
    if opts.nodes == 0 || opts.entries < opts.nodes {
        bail!("need at least one node and at least as many entries as nodes");
    }
    let t = Instant::now();
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let mut nodes: Vec<Node> = Vec::with_capacity(opts.nodes);
    let mut first = None;
    for i in 0..opts.nodes {
        let bootstrap = first.iter().cloned().collect();
        let node = start_node(dir.path(), &format!("Agency {i:02}"), bootstrap).await?;
        if first.is_none() {
            first = Some(
                node.listening()
                    .await?
                    .first()
                    .map(|a| a.to_string())
                    .context("node has no listen address")?,
            );
        }
        nodes.push(node);
    }
    // One real publication per node: the templates, and part of the catalogue.
    let mut templates = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let file = dir.path().join(format!("levels-{i}.csv"));
        std::fs::write(&file, csv(24))?;
        let published = publish(
            node,
            PublishRequest {
                resolves: Vec::new(),
                path: file,
                title: Some(format!("Reservoir levels {i}")),
                spectrum: Some("open".into()),
                meta: Some(
                    "domain = \"water\"\nkind = \"supply\"\ndescription = \"testnet\"\n".into(),
                ),
                dataset: None,
                accept_invalid: false,
            },
        )
        .await?;
        let entry = node
            .shared
            .store
            .entry(&published.entry.parse()?)?
            .context("a published entry is missing")?;
        templates.push(entry);
    }
    let mut all: Vec<SignedEntry> = templates.clone();
    for k in 0..opts.entries - opts.nodes {
        let who = k % opts.nodes;
        let key = &nodes[who].shared.key;
        let mut e = templates[who].entry.clone();
        e.dataset = DatasetId::generate();
        e.title = format!("Synthetic dataset {k} of agency {who:02}");
        all.push(e.sign(key).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    for node in &nodes {
        for e in &all {
            node.shared.store.put_entry(e)?;
        }
        node.shared.store.flush()?;
    }
    let setup_ms = ms(t.elapsed());

    // Baseline: the same work without the network.
    let base_dir = tempfile::tempdir()?;
    let base = Store::open(base_dir.path(), STORE_CACHE_BYTES)?;
    let t = Instant::now();
    for e in &all {
        let again = SignedEntry::decode(&e.bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        base.put_entry(&again)?;
    }
    base.flush()?;
    let local_ingest_ms = ms(t.elapsed());
    drop(base);

    // The joiner.
    let peer = nodes[0].peer_id().to_string();
    let t = Instant::now();
    let joiner = start_node(dir.path(), "Joiner", first.into_iter().collect()).await?;
    let mut events = joiner.events();
    let deadline = t + opts.timeout;
    let done = loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(NodeEvent::CatchUpDone { peer: p, .. })) if p == peer => break true,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) | Err(_) => break false,
        }
    };
    let join_ms = ms(t.elapsed());
    let joiner_entries = joiner.shared.store.catalogue()?.len();
    let stats = joiner.shared.stats.snapshot();
    for n in nodes.iter().chain(std::iter::once(&joiner)) {
        let _ = n.shutdown().await;
    }
    if !done {
        bail!(
            "the joiner did not finish catching up within {:?} ({} of {} entries)",
            opts.timeout,
            joiner_entries,
            opts.entries
        );
    }
    Ok(Report {
        entries: opts.entries,
        nodes: opts.nodes,
        setup_ms,
        join_ms,
        joiner_entries,
        records_received: stats.sync_records_received,
        bytes_received: stats.sync_bytes_received,
        records_per_second: (stats.sync_records_received as f64 / (join_ms / 1e3)).round(),
        local_ingest_ms,
        ratio_to_local: ((join_ms / local_ingest_ms.max(0.001)) * 100.0).round() / 100.0,
        ok: joiner_entries == opts.entries,
    })
}
