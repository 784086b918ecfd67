//! What an operations team asks of a running node besides its data (ISO 37156 Annex A.1:
//! service registration and discovery, live run-status monitoring): the health answer a
//! supervisor polls, the operator's view of peers (`cix peers`, `cix peer show`), and the
//! checks of `cix doctor` that need the running node (clock skew against peers, store
//! integrity).

use std::collections::HashMap;

use anyhow::Result;
use cix_protocol::profile::SignedProfile;
use libp2p::PeerId;
use serde::Serialize;

use crate::network::{ConnectionInfo, PeerInfo};
use crate::node::Node;

/// The answer of the unauthenticated `GET /health`: enough for a supervisor, nothing an
/// outsider could use (no identity, no addresses, no counts of data).
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `ok`, or `stopping` while the node shuts down.
    pub status: &'static str,
    /// Seconds since the node started.
    pub uptime_secs: u64,
    /// Connected peers.
    pub peers: u64,
}

/// The health of `node`.
pub fn health(node: &Node) -> Health {
    let stopping = *node.shared.stopping.borrow();
    Health {
        status: if stopping { "stopping" } else { "ok" },
        uptime_secs: node.shared.metrics.uptime_secs(),
        peers: node.shared.metrics.peers(),
    }
}

/// A dataset a peer publishes.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// Dataset id.
    pub dataset: String,
    /// Title.
    pub title: String,
    /// Data spectrum (ISO 37156 5.5).
    pub spectrum: String,
}

/// One peer as `cix peers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    /// libp2p PeerId.
    pub peer_id: String,
    /// Its did:key.
    pub did: Option<String>,
    /// The agency's name: from its signed profile, else its identify agent string.
    pub agency: Option<String>,
    /// The agency's jurisdiction (ISO 3166-1 alpha-2), from its signed profile.
    pub jurisdiction: Option<String>,
    /// `connected` (direct), `relayed` (only through a circuit relay) or `disconnected` (a
    /// bootstrap peer not connected now).
    pub state: &'static str,
    /// Addresses it listens on (identify), or the configured one for a disconnected bootstrap
    /// peer.
    pub addresses: Vec<String>,
    /// Open connections.
    pub connections: Vec<ConnectionInfo>,
    /// Last ping round trip, milliseconds.
    pub latency_ms: Option<u64>,
    /// The same, under the name `cix peers --json` used before (fields are only added).
    pub rtt_ms: Option<u64>,
    /// Gossipsub score; None while scoring is off.
    pub gossip_score: Option<f64>,
    /// Identify agent string.
    pub agent: Option<String>,
    /// Protocols it speaks.
    pub protocols: Vec<String>,
    /// The datasets it publishes, as this node's catalogue knows them.
    pub publishes: Vec<Published>,
}

/// Every connected peer and, with `configured`, every bootstrap peer that is not connected.
///
/// # Errors
///
/// If the node has stopped or the store cannot be read.
pub async fn peers(node: &Node, configured: bool) -> Result<Vec<PeerView>> {
    let live = node.peers().await?;
    let shared = &node.shared;
    let mut by_publisher: HashMap<String, Vec<Published>> = HashMap::new();
    for e in shared.store.catalogue()? {
        by_publisher
            .entry(e.entry.iss.to_string())
            .or_default()
            .push(Published {
                dataset: e.entry.dataset.to_string(),
                title: e.entry.title.clone(),
                spectrum: e.entry.level().to_string(),
            });
    }
    let mut out: Vec<PeerView> = live
        .into_iter()
        .map(|p| view(node, p, &mut by_publisher))
        .collect();
    let bootstrap = if configured {
        shared.config.bootstrap.as_slice()
    } else {
        &[]
    };
    for addr in bootstrap {
        let Ok(ma) = addr.parse::<libp2p::Multiaddr>() else {
            continue;
        };
        let Some(peer) = crate::network::peer_of(&ma) else {
            continue;
        };
        if out.iter().any(|v| v.peer_id == peer.to_string()) {
            continue;
        }
        let info = PeerInfo {
            peer_id: peer.to_string(),
            did: crate::node::did_of_peer(&peer).map(|d| d.to_string()),
            agent: None,
            addresses: vec![addr.clone()],
            rtt_ms: None,
            connections: Vec::new(),
            gossip_score: None,
            protocols: Vec::new(),
        };
        out.push(view(node, info, &mut by_publisher));
    }
    out.sort_by(|a, b| a.agency.cmp(&b.agency).then(a.peer_id.cmp(&b.peer_id)));
    Ok(out)
}

fn view(node: &Node, p: PeerInfo, by_publisher: &mut HashMap<String, Vec<Published>>) -> PeerView {
    let profile = p
        .did
        .as_deref()
        .and_then(|d| d.parse().ok())
        .and_then(|did| node.shared.store.profile(&did).ok().flatten())
        .and_then(|bytes| SignedProfile::decode(&bytes).ok());
    let state = if p.connections.is_empty() {
        "disconnected"
    } else if p.connections.iter().all(|c| c.relayed) {
        "relayed"
    } else {
        "connected"
    };
    let agency = profile
        .as_ref()
        .map(|s| s.profile.name.clone())
        .or_else(|| p.agency());
    PeerView {
        publishes: p
            .did
            .as_ref()
            .and_then(|d| by_publisher.remove(d))
            .unwrap_or_default(),
        agency,
        jurisdiction: profile.map(|s| s.profile.jurisdiction),
        state,
        addresses: p.addresses,
        connections: p.connections,
        latency_ms: p.rtt_ms,
        rtt_ms: p.rtt_ms,
        gossip_score: p.gossip_score,
        agent: p.agent,
        protocols: p.protocols,
        did: p.did,
        peer_id: p.peer_id,
    }
}

/// A disconnected peer, named by its whole PeerId, that gossipsub still keeps a score of.
async fn remembered(node: &Node, id: &str) -> Option<PeerView> {
    let peer: libp2p::PeerId = id.parse().ok()?;
    let score = node.peer_score(peer).await.ok()??;
    let info = PeerInfo {
        peer_id: peer.to_string(),
        did: crate::node::did_of_peer(&peer).map(|d| d.to_string()),
        agent: None,
        addresses: Vec::new(),
        rtt_ms: None,
        connections: Vec::new(),
        gossip_score: Some(score),
        protocols: Vec::new(),
    };
    Some(view(node, info, &mut HashMap::new()))
}

/// One peer by PeerId or did:key (or a unique prefix of the PeerId).
///
/// # Errors
///
/// If no peer or several match.
pub async fn peer(node: &Node, id: &str) -> Result<PeerView> {
    let all = peers(node, true).await?;
    let matching: Vec<PeerView> = all
        .into_iter()
        .filter(|p| p.peer_id == id || p.did.as_deref() == Some(id) || p.peer_id.starts_with(id))
        .collect();
    let mut one = match matching.len() {
        // A peer gone (say, cut off for invalid gossip) whose gossipsub score is still kept.
        0 => match remembered(node, id).await {
            Some(v) => v,
            None => anyhow::bail!("no peer {id} is connected or configured (see `cix peers`)"),
        },
        1 => matching.into_iter().next().expect("one"),
        n => anyhow::bail!("{id} matches {n} peers; give more of the PeerId"),
    };
    learn_profile(node, &mut one, std::time::Duration::from_secs(5)).await;
    Ok(one)
}

/// [`peers`], with the connected peers whose profile this node does not keep yet asked for it
/// (at most `MAX_PROFILES_ASKED` of them, each for at most `PROFILE_WAIT_SECS`), so that the
/// agency and jurisdiction columns are filled as soon as a peer is connected.
///
/// # Errors
///
/// As [`peers`].
pub async fn peers_with_profiles(node: &Node, configured: bool) -> Result<Vec<PeerView>> {
    use crate::console::limits::{MAX_PROFILES_ASKED, PROFILE_WAIT_SECS};
    let mut list = peers(node, configured).await?;
    let wait = std::time::Duration::from_secs(PROFILE_WAIT_SECS);
    let unknown = list
        .iter_mut()
        .filter(|p| p.jurisdiction.is_none() && p.state != "disconnected")
        .take(MAX_PROFILES_ASKED);
    futures::future::join_all(unknown.map(|p| learn_profile(node, p, wait))).await;
    Ok(list)
}

/// When no profile of a connected peer is kept yet, asks the peer for its signed profile
/// (waiting at most `wait`), keeps it so that `cix peers` shows its jurisdiction from now on,
/// and fills in `one`'s agency and jurisdiction. Does nothing for a peer already known or not
/// connected; a peer that does not answer in time stays as it was.
pub async fn learn_profile(node: &Node, one: &mut PeerView, wait: std::time::Duration) {
    if one.jurisdiction.is_some() || one.state == "disconnected" {
        return;
    }
    let Some(did) = one.did.as_deref().and_then(|d| d.parse().ok()) else {
        return;
    };
    match tokio::time::timeout(wait, crate::receipts::peer_profile(node, &did)).await {
        Ok(Ok(p)) => {
            if let Err(e) = node.shared.store.put_profile(&did, &p.bytes) {
                tracing::error!(error = %e, "cannot keep a peer's profile");
            }
            one.agency = Some(p.profile.name.clone());
            one.jurisdiction = Some(p.profile.jurisdiction.clone());
        }
        Ok(Err(e)) => tracing::debug!(peer = %did, error = %e, "no profile from the peer"),
        Err(_) => tracing::debug!(peer = %did, "the peer did not send its profile in time"),
    }
}

/// The node-side checks of `cix doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeChecks {
    /// Clock offset against each connected peer that answered `/cix/time/1`.
    pub clock: Vec<crate::clock::Skew>,
    /// Peers that did not answer it, with why.
    pub clock_unanswered: Vec<(String, String)>,
    /// None when the store and the audit log check out, else what is wrong.
    pub store_problem: Option<String>,
    /// Records checked: catalogue entries and audit records.
    pub store_checked: u64,
    /// Connected peers' PeerIds.
    pub connected: Vec<String>,
    /// Addresses the node listens on.
    pub listening: Vec<String>,
}

/// Runs the checks that need the running node.
///
/// # Errors
///
/// If the node has stopped.
pub async fn doctor(node: &Node) -> Result<NodeChecks> {
    let live = node.peers().await?;
    let listening = node
        .listening()
        .await?
        .iter()
        .map(|a| a.to_string())
        .collect();
    let mut clock = Vec::new();
    let mut unanswered = Vec::new();
    let queries = live
        .iter()
        .filter_map(|p| p.peer_id.parse::<PeerId>().ok())
        .map(|peer| {
            let node = node.clone();
            async move { (peer, crate::clock::query(&node, peer).await) }
        });
    for (peer, r) in futures::future::join_all(queries).await {
        match r {
            Ok(s) => clock.push(s),
            Err(e) => unanswered.push((peer.to_string(), format!("{e:#}"))),
        }
    }
    let (store_problem, store_checked) = match store_integrity(node) {
        Ok(n) => (None, n),
        Err(e) => (Some(format!("{e:#}")), 0),
    };
    Ok(NodeChecks {
        clock,
        clock_unanswered: unanswered,
        store_problem,
        store_checked,
        connected: live.into_iter().map(|p| p.peer_id).collect(),
        listening,
    })
}

/// Reads every catalogue entry (each decoded and its signature checked on the way out of the
/// store) and verifies the audit log's hash chain and signatures (ISO 37156 8.3.4). Returns
/// the number of records checked.
///
/// # Errors
///
/// Naming the first thing found wrong.
pub fn store_integrity(node: &Node) -> Result<u64> {
    let shared = &node.shared;
    let entries = shared
        .store
        .catalogue_all()
        .map_err(|e| anyhow::anyhow!("catalogue: {e:#}"))?;
    let records = shared.audit.raw_range(None, None)?;
    let me = shared.did();
    cix_protocol::audit::verify_chain(records.iter().map(|(_, b)| b.as_slice()), Some(&me))
        .map_err(|e| anyhow::anyhow!("audit log: {e}"))?;
    Ok(entries.len() as u64 + records.len() as u64)
}
