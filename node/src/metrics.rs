//! Prometheus metrics of a node (`GET /metrics` on the admin listener) and the figures
//! `cix status` and `GET /health` summarise.
//!
//! One [`prometheus_client`] registry holds everything: libp2p's own metrics (swarm
//! connections, identify, ping, Kademlia, gossipsub, relay, DCUtR and the bandwidth of every
//! transport, under the `libp2p_` prefix) and cix's (`cix_` prefix). The cix counters that the
//! node already keeps in [`crate::node::Stats`] and the sizes read from the store are produced
//! at scrape time by a collector, so a scrape always agrees with `cix status`. The output is the
//! OpenMetrics text format (which Prometheus reads), ending in `# EOF`.
//!
//! This is ISO 37156 Annex A.1's "live run-status monitoring" for the operator.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::audit::AuditLog;
use crate::home::Home;
use crate::node::Stats;
use crate::store::{Decision, Store};

/// The content type of `GET /metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Most files one scrape walks when it sums the store's and the blobs' sizes; past it the
/// figure is a lower bound (a store that large is measured by the file system's tools).
pub const MAX_SIZE_WALK_FILES: usize = 100_000;

type Labels = Vec<(&'static str, &'static str)>;

/// The node's metrics: the registry and the counters cix adds to it at event time.
pub struct Metrics {
    registry: Mutex<Registry>,
    libp2p: libp2p::metrics::Metrics,
    gossip_rejected: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    token_checks: Family<Labels, Counter>,
    peers: Arc<AtomicI64>,
    started: std::time::Instant,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Why a gossiped or caught-up record was rejected: the `reason` label of
/// `cix_gossip_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// It does not decode, or its signature does not verify.
    Invalid,
    /// A catch-up page of one peer's own entries carried another publisher's.
    OtherPublisher,
    /// An announcement of a closed dataset (ISO 37156 5.5.2: closed data is never announced).
    Closed,
    /// A catch-up page held a record that was not asked for.
    NotAsked,
    /// A withdrawal signed by someone other than the dataset's publisher.
    NotPublisher,
    /// A message on a topic cix does not use.
    UnknownTopic,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Rejection::Invalid => "invalid",
            Rejection::OtherPublisher => "other-publisher",
            Rejection::Closed => "closed",
            Rejection::NotAsked => "not-asked",
            Rejection::NotPublisher => "not-publisher",
            Rejection::UnknownTopic => "unknown-topic",
        }
    }
}

impl Metrics {
    /// Metrics on `registry`, which the swarm's transport and gossipsub already write to.
    pub(crate) fn new(mut registry: Registry) -> Self {
        let libp2p = libp2p::metrics::Metrics::new(&mut registry);
        let gossip_rejected = Family::<Labels, Counter>::default();
        registry.register(
            "cix_gossip_rejected",
            "Records refused from peers (gossip or catch-up), by kind and reason",
            gossip_rejected.clone(),
        );
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "cix_access_requests",
            "Access requests this node answered as owner since start, by outcome",
            requests.clone(),
        );
        let token_checks = Family::<Labels, Counter>::default();
        registry.register(
            "cix_token_checks",
            "UCAN invocations checked before serving shared data, by outcome",
            token_checks.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            libp2p,
            gossip_rejected,
            requests,
            token_checks,
            peers: Arc::new(AtomicI64::new(0)),
            started: std::time::Instant::now(),
        }
    }

    /// Adds the collector that reads `stats` and the store at every scrape.
    pub(crate) fn collect_from(
        &self,
        stats: Arc<Stats>,
        store: Store,
        audit: AuditLog,
        home: Home,
    ) {
        let c = NodeCollector {
            stats,
            store,
            audit,
            home,
            peers: self.peers.clone(),
        };
        if let Ok(mut r) = self.registry.lock() {
            r.register_collector(Box::new(c));
        }
    }

    /// libp2p's recorder, for the event loop.
    pub(crate) fn libp2p(&self) -> &libp2p::metrics::Metrics {
        &self.libp2p
    }

    /// The number of connected peers, kept by the event loop.
    pub(crate) fn set_peers(&self, n: usize) {
        self.peers.store(n as i64, Ordering::Relaxed);
    }

    /// Connected peers, as last set by the event loop.
    pub fn peers(&self) -> u64 {
        self.peers.load(Ordering::Relaxed).max(0) as u64
    }

    /// Seconds since the node started.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts a record refused from a peer; `kind` is entry, revocation or withdrawal.
    pub(crate) fn rejected(&self, kind: &'static str, why: Rejection) {
        self.gossip_rejected
            .get_or_create(&vec![("kind", kind), ("reason", why.label())])
            .inc();
    }

    /// Counts an access request answered (open, pending, granted, denied).
    pub(crate) fn request(&self, outcome: &'static str) {
        self.requests
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    /// Counts an invocation check before a transfer.
    pub(crate) fn token_check(&self, accepted: bool) {
        let outcome = if accepted { "accepted" } else { "refused" };
        self.token_checks
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    /// The whole registry in the OpenMetrics text format.
    ///
    /// # Errors
    ///
    /// If the registry lock was poisoned or encoding failed (our bug).
    pub fn encode(&self) -> anyhow::Result<String> {
        let registry = self
            .registry
            .lock()
            .map_err(|_| anyhow::anyhow!("the metrics registry lock is poisoned"))?;
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .map_err(|_| anyhow::anyhow!("cannot encode the metrics"))?;
        Ok(out)
    }
}

/// What the node's store holds, for `/metrics` and `cix status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sizes {
    /// Datasets in the catalogue (latest versions, own and peers').
    pub catalogue: u64,
    /// Datasets this node publishes.
    pub own_datasets: u64,
    /// Revocations kept.
    pub revocations: u64,
    /// Records in the audit log.
    pub audit_records: u64,
    /// Incoming access requests by decision: pending, granted, denied.
    pub requests_pending: u64,
    /// Granted.
    pub requests_granted: u64,
    /// Denied.
    pub requests_denied: u64,
    /// Bytes of the sled store on disk.
    pub store_bytes: u64,
    /// Bytes of the blobs (own datasets' content).
    pub blob_bytes: u64,
}

/// Reads [`Sizes`] from the store and the home.
pub fn sizes(store: &Store, audit: &AuditLog, home: &Home) -> Sizes {
    let mut s = Sizes {
        catalogue: store.catalogue().map(|c| c.len() as u64).unwrap_or(0),
        own_datasets: store.own_all().map(|o| o.len() as u64).unwrap_or(0),
        revocations: store.revocation_count() as u64,
        audit_records: audit.len(),
        store_bytes: dir_bytes(&home.store()),
        blob_bytes: dir_bytes(&home.blobs()),
        ..Sizes::default()
    };
    if let Ok(reqs) = store.requests_in() {
        for r in reqs {
            match r.decision {
                Decision::Pending => s.requests_pending += 1,
                Decision::Approved { .. } => s.requests_granted += 1,
                Decision::Denied { .. } => s.requests_denied += 1,
            }
        }
    }
    s
}

/// The total size of the regular files under `dir` (bounded by [`MAX_SIZE_WALK_FILES`]).
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut seen = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            seen += 1;
            if seen > MAX_SIZE_WALK_FILES {
                return total;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

#[derive(Debug)]
struct NodeCollector {
    stats: Arc<Stats>,
    store: Store,
    audit: AuditLog,
    home: Home,
    peers: Arc<AtomicI64>,
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let g = ConstGauge::new(v as i64);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(&'static str, u64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (l, v) in values {
        let labels = [(label, *l)];
        ConstCounter::new(*v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let c = self.stats.snapshot();
        let s = sizes(&self.store, &self.audit, &self.home);
        let peers = self.peers.load(Ordering::Relaxed).max(0) as u64;
        gauge(&mut e, "cix_peers", "Connected peers", peers)?;
        gauge(
            &mut e,
            "cix_catalogue_entries",
            "Datasets in the local catalogue (latest versions)",
            s.catalogue,
        )?;
        gauge(
            &mut e,
            "cix_own_datasets",
            "Datasets this node publishes",
            s.own_datasets,
        )?;
        counter(
            &mut e,
            "cix_gossip_records",
            "Records received from peers (gossip and catch-up), by verdict and kind",
            "verdict",
            &[
                ("entry-accepted", c.entries_accepted),
                ("entry-rejected", c.entries_rejected),
                ("revocation-accepted", c.revocations_accepted),
                ("revocation-rejected", c.revocations_rejected),
                ("withdrawal-accepted", c.withdrawals_accepted),
                ("withdrawal-rejected", c.withdrawals_rejected),
            ],
        )?;
        counter(
            &mut e,
            "cix_transfers",
            "Transfers this node was asked to serve, by outcome",
            "outcome",
            &[
                ("served", c.transfers_served),
                ("refused", c.transfers_refused),
            ],
        )?;
        counter(
            &mut e,
            "cix_bytes",
            "Bytes moved by cix's own protocols, by direction (dataset bytes served, catch-up bytes received)",
            "direction",
            &[
                ("served", c.bytes_served),
                ("sync-received", c.sync_bytes_received),
            ],
        )?;
        counter(
            &mut e,
            "cix_sync_records",
            "Catalogue catch-up records (/cix/sync/1), by direction",
            "direction",
            &[
                ("served", c.sync_records_served),
                ("received", c.sync_records_received),
            ],
        )?;
        {
            let mut m = e.encode_descriptor(
                "cix_requests",
                "Incoming access requests kept in the store, by decision",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (l, v) in [
                ("pending", s.requests_pending),
                ("granted", s.requests_granted),
                ("denied", s.requests_denied),
            ] {
                let labels = [("decision", l)];
                ConstGauge::new(v as i64).encode(m.encode_family(&labels)?)?;
            }
        }
        gauge(
            &mut e,
            "cix_revocations",
            "Revocations this node keeps (its own and its peers')",
            s.revocations,
        )?;
        gauge(
            &mut e,
            "cix_audit_records",
            "Records in the tamper-evident audit log (ISO 37156 8.3.4)",
            s.audit_records,
        )?;
        gauge(
            &mut e,
            "cix_store_bytes",
            "Bytes on disk of the store (sled)",
            s.store_bytes,
        )?;
        gauge(
            &mut e,
            "cix_blob_bytes",
            "Bytes on disk of the datasets this node holds",
            s.blob_bytes,
        )?;
        Ok(())
    }
}
