//! `cix-testnet revocation`: how fast a revocation reaches every node (DESIGN §5 and §9).
//!
//! Starts `nodes` real nodes in this process, each on its own loopback port and store, each
//! bootstrapped to up to [`Options::links`] nodes started before it (so the graph is connected
//! but not complete). It first sends one warm-up revocation and waits until every node has it,
//! so that the gossip mesh has formed; then the measured revocations, each signed by a node
//! chosen at random, [`Options::spacing`] apart. Times come from each node's own
//! `RevocationAccepted` event, the same event the node writes to the `cix::event` tracing target.
//!
//! The revocations name random CIDs: propagation does not depend on what is revoked, and every
//! node keeps and passes on every well-formed revocation whoever signed it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use cix_node::revoke::{revoke, RevokeRequest};
use cix_node::{Config, Home, Node, NodeEvent};
use cix_protocol::ucan::Cid;
use serde::Serialize;
use tokio::time::{Duration, Instant};

/// sled cache per node: many nodes share one machine.
const STORE_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Nodes to start.
    pub nodes: usize,
    /// Revocations to measure.
    pub revocations: usize,
    /// Each node dials up to this many nodes started before it.
    pub links: usize,
    /// Time between two revocations.
    pub spacing: Duration,
    /// Longest wait for every node to have one revocation.
    pub timeout: Duration,
}

/// Latency figures, milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Spread {
    /// Median.
    pub median_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// What `cix-testnet revocation --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Nodes started.
    pub nodes: usize,
    /// Revocations measured.
    pub revocations: usize,
    /// Dial links per node.
    pub links: usize,
    /// Time to start every node, milliseconds.
    pub start_ms: f64,
    /// Time from the warm-up revocation until every node had it (mesh forming included).
    pub warmup_ms: f64,
    /// From signing to each other node's acceptance, over every (revocation, node) pair.
    pub per_node: Spread,
    /// From signing until the last node had it, over every revocation.
    pub until_all: Spread,
    /// (revocation, node) pairs that never arrived within the timeout.
    pub missing: usize,
    /// True when every node received every revocation.
    pub ok: bool,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Nearest-rank percentiles of `values` (which must not be empty).
pub fn spread(values: &mut [f64]) -> Spread {
    values.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[i - 1]
    };
    Spread {
        median_ms: rank(0.5),
        p99_ms: rank(0.99),
        max_ms: values[values.len() - 1],
    }
}

/// When each node accepted each revoked CID.
type Arrivals = Arc<Mutex<HashMap<String, HashMap<usize, Instant>>>>;

struct Net {
    nodes: Vec<Node>,
    _dirs: Vec<tempfile::TempDir>,
    arrivals: Arrivals,
}

async fn start(opts: &Options) -> Result<Net> {
    let arrivals: Arrivals = Arc::default();
    let mut nodes: Vec<Node> = Vec::with_capacity(opts.nodes);
    let mut dirs = Vec::with_capacity(opts.nodes);
    let mut addresses: Vec<String> = Vec::new();
    for i in 0..opts.nodes {
        let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
        let home = Home::new(dir.path().join("home"));
        let mut config = Config::new(&format!("Agency {i:03}"), "US");
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.store_cache_bytes = STORE_CACHE_BYTES;
        // Up to `links` earlier nodes, picked at random.
        let mut earlier = addresses.clone();
        while earlier.len() > opts.links {
            earlier.swap_remove(rand::random_range(0..earlier.len()));
        }
        config.bootstrap = earlier;
        home.init(&config)?;
        let node = cix_node::start(home, config)
            .await
            .with_context(|| format!("cannot start node {i}"))?;
        let addr = node
            .listening()
            .await?
            .first()
            .map(|a| a.to_string())
            .context("node has no listen address")?;
        addresses.push(addr);
        let mut events = node.events();
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if let NodeEvent::RevocationAccepted { revoked, .. } = ev {
                    let at = Instant::now();
                    if let Ok(mut a) = arrivals.lock() {
                        a.entry(revoked).or_default().entry(i).or_insert(at);
                    }
                }
            }
        });
        nodes.push(node);
        dirs.push(dir);
    }
    Ok(Net {
        nodes,
        _dirs: dirs,
        arrivals,
    })
}

impl Net {
    /// Signs a revocation of a random CID on node `from`; returns the CID and when.
    async fn revoke_from(&self, from: usize) -> Result<(String, Instant)> {
        let cid = Cid::of_token(&rand::random::<[u8; 32]>()).to_string();
        let at = Instant::now();
        revoke(
            &self.nodes[from],
            &RevokeRequest {
                cid: cid.clone(),
                reason: Some("testnet".into()),
            },
        )
        .await?;
        Ok((cid, at))
    }

    /// How many nodes other than `from` have `cid`.
    fn arrived(&self, cid: &str) -> usize {
        self.arrivals
            .lock()
            .map(|a| a.get(cid).map_or(0, HashMap::len))
            .unwrap_or(0)
    }

    async fn wait_all(&self, cid: &str, deadline: Instant) -> bool {
        let want = self.nodes.len() - 1;
        while self.arrived(cid) < want {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    async fn shutdown(self) {
        for n in &self.nodes {
            let _ = n.shutdown().await;
        }
    }
}

/// Runs the measurement.
///
/// # Errors
///
/// If a node cannot start, or the warm-up revocation does not reach every node in time.
pub async fn run(opts: Options) -> Result<Report> {
    if opts.nodes < 2 || opts.revocations == 0 {
        bail!("need at least 2 nodes and 1 revocation");
    }
    let t = Instant::now();
    let net = start(&opts).await?;
    let start_ms = ms(t.elapsed());

    let (warm, at) = net.revoke_from(0).await?;
    if !net.wait_all(&warm, at + opts.timeout).await {
        let got = net.arrived(&warm);
        net.shutdown().await;
        bail!(
            "the warm-up revocation reached {got} of {} nodes within {:?}: the network did not form",
            opts.nodes - 1,
            opts.timeout
        );
    }
    let warmup_ms = ms(at.elapsed());

    let mut sent = Vec::with_capacity(opts.revocations);
    for _ in 0..opts.revocations {
        let from = rand::random_range(0..opts.nodes);
        let (cid, at) = net.revoke_from(from).await?;
        sent.push((cid, at, from));
        tokio::time::sleep(opts.spacing).await;
    }
    let deadline = Instant::now() + opts.timeout;
    for (cid, _, _) in &sent {
        net.wait_all(cid, deadline).await;
    }

    let mut per_node = Vec::new();
    let mut until_all = Vec::new();
    let mut missing = 0;
    {
        let arrivals = net
            .arrivals
            .lock()
            .map_err(|_| anyhow::anyhow!("arrival table poisoned"))?;
        for (cid, at, from) in &sent {
            let got = arrivals.get(cid).cloned().unwrap_or_default();
            let mut last = Duration::ZERO;
            for (node, when) in got.iter().filter(|(n, _)| *n != from) {
                let _ = node;
                let d = when.saturating_duration_since(*at);
                per_node.push(ms(d));
                last = last.max(d);
            }
            let expected = opts.nodes - 1;
            let have = got.keys().filter(|n| *n != from).count();
            missing += expected - have.min(expected);
            if have >= expected {
                until_all.push(ms(last));
            }
        }
    }
    net.shutdown().await;
    let empty = Spread {
        median_ms: f64::NAN,
        p99_ms: f64::NAN,
        max_ms: f64::NAN,
    };
    Ok(Report {
        nodes: opts.nodes,
        revocations: opts.revocations,
        links: opts.links,
        start_ms,
        warmup_ms,
        per_node: if per_node.is_empty() {
            empty.clone()
        } else {
            spread(&mut per_node)
        },
        until_all: if until_all.is_empty() {
            empty
        } else {
            spread(&mut until_all)
        },
        missing,
        ok: missing == 0,
    })
}

impl Report {
    /// The figures for a person.
    pub fn text(&self) -> String {
        format!(
            "{} nodes in this process, each dialling up to {} earlier ones; {} revocations signed \
             by random nodes\n\
             started in {:.0} ms; warm-up revocation everywhere {:.0} ms after signing\n\
             per node, signing to acceptance: median {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             until every node had it:         median {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             {}",
            self.nodes,
            self.links,
            self.revocations,
            self.start_ms,
            self.warmup_ms,
            self.per_node.median_ms,
            self.per_node.p99_ms,
            self.per_node.max_ms,
            self.until_all.median_ms,
            self.until_all.p99_ms,
            self.until_all.max_ms,
            if self.ok {
                "every node received every revocation".to_string()
            } else {
                format!("{} (revocation, node) pairs never arrived", self.missing)
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = spread(&mut v);
        assert_eq!((s.median_ms, s.p99_ms, s.max_ms), (50.0, 99.0, 100.0));
        let mut one = vec![7.0];
        assert_eq!(spread(&mut one).p99_ms, 7.0);
    }
}
