//! Starting a node and the cloneable [`Node`] handle the admin API, the CLI and the testnet
//! drive it through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use cix_protocol::identity::{Did, Keypair, PublicKey};
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::Config;
use crate::home::Home;
use crate::network::{self, Command, EventLoop, PeerInfo};
use crate::store::Store;

/// Capacity of the event broadcast; slow subscribers miss events rather than slow the node.
pub const EVENT_QUEUE: usize = 1024;

/// Things that happened, for tests, the testnet and live displays. Also logged under the
/// tracing target `cix::event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum NodeEvent {
    /// A peer was cut off and is refused for a while (`limits::PEER_BAN_SECS`): it sent too
    /// much invalid gossip.
    PeerBanned {
        /// PeerId.
        peer: String,
        /// Why.
        reason: String,
    },
    /// A connection to a peer was established.
    PeerConnected {
        /// PeerId.
        peer: String,
    },
    /// A peer told us who it is (identify); catalogue catch-up with it starts now.
    PeerIdentified {
        /// PeerId.
        peer: String,
        /// Its agent string, `cix/VERSION (AGENCY)` for cix nodes.
        agent: String,
    },
    /// A peer subscribed to the catalogue topic.
    PeerSubscribed {
        /// PeerId.
        peer: String,
    },
    /// A catalogue entry from a peer was accepted and stored.
    EntryAccepted {
        /// Entry id.
        entry: String,
        /// Dataset id.
        dataset: String,
        /// Title.
        title: String,
        /// Peer it came from.
        from: String,
    },
    /// This node is about to announce an entry it published on the catalogue topic (the
    /// start of its propagation).
    EntryAnnounced {
        /// Entry id.
        entry: String,
        /// Dataset id.
        dataset: String,
    },
    /// A catalogue entry from a peer was rejected.
    EntryRejected {
        /// Peer it came from.
        from: String,
        /// Why.
        reason: String,
    },
    /// A revocation from a peer (gossip or catch-up) was accepted and stored.
    RevocationAccepted {
        /// Revocation id (BLAKE3 hex of its envelope).
        revocation: String,
        /// CID of the delegation it revokes.
        revoked: String,
        /// Who signed it.
        by: String,
        /// Peer it came from.
        from: String,
    },
    /// A revocation from a peer was rejected (malformed or badly signed).
    RevocationRejected {
        /// Peer it came from.
        from: String,
        /// Why.
        reason: String,
    },
    /// A withdrawal from a peer (gossip or catch-up) was accepted and stored.
    WithdrawalAccepted {
        /// Withdrawal id (BLAKE3 hex of its envelope).
        withdrawal: String,
        /// Dataset id.
        dataset: String,
        /// The last version withdrawn.
        version: u64,
        /// Who signed it (the dataset's publisher).
        by: String,
        /// Peer it came from.
        from: String,
    },
    /// A withdrawal from a peer was rejected.
    WithdrawalRejected {
        /// Peer it came from.
        from: String,
        /// Why.
        reason: String,
    },
    /// Catch-up (`/cix/sync/1` r1) with a peer reached the end of what the peer listed.
    CatchUpDone {
        /// PeerId.
        peer: String,
        /// Records received from it in this catch-up.
        received: u64,
    },
    /// An access request waits in the operator's queue.
    RequestQueued {
        /// Request id.
        request: String,
        /// Dataset id.
        dataset: String,
    },
    /// A receipt was counter-signed: by this node as provider, or by the provider of a fetch
    /// this node made (ISO 37156 8.3.4).
    ReceiptCountersigned {
        /// Receipt id.
        receipt: String,
        /// Dataset id.
        dataset: String,
    },
    /// Received data was deleted because its retention period ran out (8.2.2 e).
    DataDeleted {
        /// Dataset id.
        dataset: String,
        /// The file concerned.
        path: String,
    },
    /// A deletion notice this node sent was noted by the provider.
    DeletionNoticeDelivered {
        /// Dataset id.
        dataset: String,
        /// The provider.
        to: String,
    },
    /// A receiver's deletion notice arrived and was kept.
    DeletionNoted {
        /// Dataset id.
        dataset: String,
        /// The receiver that deleted.
        by: String,
    },
    /// An emergency declaration (ISO 37156 6.7) was checked and kept: access under it is open.
    EmergencyDeclared {
        /// Declaration id (hex).
        declaration: String,
        /// Agreement id (hex).
        agreement: String,
        /// The DID it came from (this node's own when it declared).
        from: String,
    },
    /// A recipient received and kept its grants under an emergency declaration.
    EmergencyGranted {
        /// Declaration id (hex).
        declaration: String,
        /// How many grants.
        grants: usize,
    },
    /// An emergency declaration was ended early.
    EmergencyEnded {
        /// Declaration id (hex).
        declaration: String,
    },
    /// A request on `/cix/emergency/1` was refused.
    EmergencyRefused {
        /// PeerId.
        from: String,
        /// Why.
        reason: String,
    },
}

/// Counters, read by `cix status`.
#[derive(Debug, Default)]
pub struct Stats {
    gossip_accepted: AtomicU64,
    gossip_rejected: AtomicU64,
    transfers_served: AtomicU64,
    transfers_refused: AtomicU64,
    bytes_served: AtomicU64,
    revocations_accepted: AtomicU64,
    revocations_rejected: AtomicU64,
    withdrawals_accepted: AtomicU64,
    withdrawals_rejected: AtomicU64,
    sync_records_served: AtomicU64,
    sync_records_received: AtomicU64,
    sync_bytes_received: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    /// Catalogue entries accepted from peers.
    pub entries_accepted: u64,
    /// Catalogue entries rejected.
    pub entries_rejected: u64,
    /// Transfers served.
    pub transfers_served: u64,
    /// Transfers refused.
    pub transfers_refused: u64,
    /// Bytes served.
    pub bytes_served: u64,
    /// Revocations accepted from peers.
    pub revocations_accepted: u64,
    /// Revocations rejected (malformed or badly signed).
    pub revocations_rejected: u64,
    /// Withdrawals accepted from peers (gossip or catch-up).
    pub withdrawals_accepted: u64,
    /// Withdrawals rejected (malformed, badly signed, or signed by someone other than the
    /// dataset's publisher).
    pub withdrawals_rejected: u64,
    /// Records (entries, withdrawals) this node sent to peers catching up (`/cix/sync/1` r1).
    pub sync_records_served: u64,
    /// Records this node received while catching up (r1), valid or not.
    pub sync_records_received: u64,
    /// Envelope bytes of those records.
    pub sync_bytes_received: u64,
}

impl Stats {
    pub(crate) fn accepted(&self) {
        self.gossip_accepted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn rejected(&self) {
        self.gossip_rejected.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn served(&self, bytes: u64) {
        self.transfers_served.fetch_add(1, Ordering::Relaxed);
        self.bytes_served.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn revocation(&self, accepted: bool) {
        if accepted {
            self.revocations_accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.revocations_rejected.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn withdrawal(&self, accepted: bool) {
        if accepted {
            self.withdrawals_accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            self.withdrawals_rejected.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn sync_served(&self, records: u64) {
        self.sync_records_served
            .fetch_add(records, Ordering::Relaxed);
    }
    pub(crate) fn sync_received(&self, bytes: u64) {
        self.sync_records_received.fetch_add(1, Ordering::Relaxed);
        self.sync_bytes_received.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn refused(&self) {
        self.transfers_refused.fetch_add(1, Ordering::Relaxed);
    }
    /// Current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            entries_accepted: self.gossip_accepted.load(Ordering::Relaxed),
            entries_rejected: self.gossip_rejected.load(Ordering::Relaxed),
            transfers_served: self.transfers_served.load(Ordering::Relaxed),
            transfers_refused: self.transfers_refused.load(Ordering::Relaxed),
            bytes_served: self.bytes_served.load(Ordering::Relaxed),
            revocations_accepted: self.revocations_accepted.load(Ordering::Relaxed),
            revocations_rejected: self.revocations_rejected.load(Ordering::Relaxed),
            withdrawals_accepted: self.withdrawals_accepted.load(Ordering::Relaxed),
            withdrawals_rejected: self.withdrawals_rejected.load(Ordering::Relaxed),
            sync_records_served: self.sync_records_served.load(Ordering::Relaxed),
            sync_records_received: self.sync_records_received.load(Ordering::Relaxed),
            sync_bytes_received: self.sync_bytes_received.load(Ordering::Relaxed),
        }
    }
}

/// State shared by the event loop and every handle.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The node's key.
    pub key: Keypair,
    /// Its home directory.
    pub home: Home,
    /// Its settings.
    pub config: Arc<Config>,
    /// Its store.
    pub store: Store,
    /// Counters.
    pub stats: Arc<Stats>,
    /// The catalogue search index (`crate::search`), kept in step with the store's latest
    /// entries.
    pub search: Arc<crate::search::SearchIndex>,
    /// This agency's own signed profile (`cix/profile@1`), sent with every access and transfer
    /// request; signed at start from the config.
    pub profile: Arc<cix_protocol::profile::SignedProfile>,
    /// The tamper-evident audit log (`crate::audit`, ISO 37156 8.3.4).
    pub audit: crate::audit::AuditLog,
    /// Prometheus metrics (`crate::metrics`): libp2p's and cix's, one registry.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The registrars trusted now (`crate::registrars`): `trusted_registrars` at start, changed
    /// by a config reload or `cix registrars trust|distrust`.
    pub registrars: Arc<std::sync::RwLock<Vec<Did>>>,
    events: broadcast::Sender<NodeEvent>,
    /// This node's PeerId as text, named in every `cix::event` record.
    peer_label: Arc<str>,
    /// Becomes true when the node is shutting down.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl Shared {
    /// Publishes an event to subscribers and to the `cix::event` tracing target. The record
    /// carries `node` (this node's PeerId) and `json` (the event as one JSON object, the
    /// form [`NodeEvent`] serialises to), which is what the testnet's measurements read.
    pub fn emit(&self, event: NodeEvent) {
        if tracing::enabled!(target: "cix::event", tracing::Level::DEBUG) {
            let json = serde_json::to_string(&event).unwrap_or_default();
            tracing::debug!(target: "cix::event", node = %self.peer_label, %json, event = ?event);
        }
        let _ = self.events.send(event);
    }

    /// The node's did:key.
    pub fn did(&self) -> Did {
        self.key.did()
    }
}

/// A handle on a running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    /// Shared state.
    pub shared: Shared,
    commands: mpsc::Sender<Command>,
    control: libp2p_stream::Control,
    peer_id: PeerId,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    event_loop: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    server: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// Starts a node from `home` with `config`: opens the store, binds the listen addresses,
/// spawns the event loop and the transfer server.
///
/// # Errors
///
/// If the key, store or a listen address cannot be used.
pub async fn start(home: Home, config: Config) -> Result<Node> {
    config.validate().map_err(|e| {
        anyhow!(
            "invalid config in {}: {e}; fix that setting (README.md, Configuration)",
            home.config().display()
        )
    })?;
    let key = home.load_key()?;
    let profile = cix_protocol::profile::Profile {
        iss: key.did(),
        name: config.name.clone(),
        jurisdiction: config.jurisdiction.clone(),
        sectors: config.sectors.clone(),
        contact: config.contact.clone(),
        issued: crate::access::now(),
        privacy: config.privacy.clone(),
    }
    .sign(&key)
    .map_err(|e| anyhow!("invalid config: cannot sign the agency profile: {e}"))?;
    for dir in [home.blobs(), home.tmp()] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let store = Store::open(&home.store(), config.store_cache_bytes)?;
    let search = Arc::new(crate::search::SearchIndex::build(&store)?);
    let audit = crate::audit::AuditLog::open(&store, key.clone())?;
    let libp2p_key = libp2p::identity::Keypair::ed25519_from_bytes(key.seed())
        .map_err(|e| anyhow!("node key unusable for libp2p: {e}"))?;
    let agent = format!("cix/{} ({})", env!("CARGO_PKG_VERSION"), config.name);
    let mut registry = prometheus_client::registry::Registry::default();
    let mut swarm = network::build_swarm(
        libp2p_key,
        agent,
        config.tcp_security,
        &mut registry,
        config.relay_server,
    )?;
    let peer_id = *swarm.local_peer_id();
    for addr in &config.external_addresses {
        let ma: Multiaddr = addr
            .parse()
            .with_context(|| format!("external address {addr:?} is not a multiaddr"))?;
        swarm.add_external_address(ma);
    }

    for addr in &config.listen {
        let ma: Multiaddr = addr
            .parse()
            .with_context(|| format!("listen address {addr:?} is not a multiaddr"))?;
        ensure_port_free(&ma)?;
        swarm
            .listen_on(ma.clone())
            .with_context(|| format!("cannot listen on {ma}"))?;
    }
    let mut bootstrap = Vec::new();
    for addr in &config.bootstrap {
        let ma: Multiaddr = addr
            .parse()
            .with_context(|| format!("bootstrap address {addr:?} is not a multiaddr"))?;
        if let Some(peer) = network::peer_of(&ma) {
            swarm.behaviour_mut().kad_add(&peer, ma.clone());
        }
        bootstrap.push(ma);
    }

    let stats = Arc::new(Stats::default());
    let metrics = Arc::new(crate::metrics::Metrics::new(registry));
    metrics.collect_from(stats.clone(), store.clone(), audit.clone(), home.clone());
    let (events, _) = broadcast::channel(EVENT_QUEUE);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let registrars = Arc::new(std::sync::RwLock::new(config.trusted_registrars.clone()));
    let shared = Shared {
        registrars,
        key,
        home,
        config: Arc::new(config),
        store,
        stats,
        search,
        profile: Arc::new(profile),
        audit,
        metrics,
        events,
        peer_label: peer_id.to_string().into(),
        stopping: stop_rx.clone(),
    };
    let control = swarm.behaviour().stream_control();
    let (tx, rx) = mpsc::channel(network::COMMAND_QUEUE);
    let mut event_loop = EventLoop::new(swarm, shared.clone(), rx, bootstrap);
    // Wait for the listeners to be bound so that `listening()` is meaningful at once.
    wait_for_listeners(&mut event_loop, shared.config.listen.len()).await;
    let handle = tokio::spawn(event_loop.run(stop_rx));

    let node = Node {
        shared,
        commands: tx,
        control,
        peer_id,
        stop: Arc::new(stop_tx),
        event_loop: Arc::new(tokio::sync::Mutex::new(Some(handle))),
        server: Arc::new(tokio::sync::Mutex::new(None)),
    };
    let transfers = crate::transfer::spawn_server(node.clone())?;
    let witness = crate::witness::spawn(node.clone())?;
    let receipts = crate::receipts::spawn(node.clone())?;
    let clock = crate::clock::spawn(node.clone())?;
    let recheck = crate::recheck::spawn(node.clone());
    let quality = crate::quality::spawn(node.clone())?;
    let emergency = crate::emergency::spawn(node.clone())?;
    let rights = crate::rights::spawn(node.clone())?;
    let server = tokio::spawn(async move {
        let _ = clock.await;
        let _ = transfers.await;
        let _ = witness.await;
        for task in receipts {
            let _ = task.await;
        }
        let _ = recheck.await;
        let _ = quality.await;
        let _ = emergency.await;
        for task in rights {
            let _ = task.await;
        }
    });
    *node.server.lock().await = Some(server);
    Ok(node)
}

/// libp2p's TCP transport sets SO_REUSEPORT on its listeners, so a second node told to listen
/// on a port another node already holds would start without a word and share the port's
/// connections with it. Binding the address once without that option first turns this into a
/// clear error. Port 0 (the system picks) needs no check.
fn ensure_port_free(addr: &Multiaddr) -> Result<()> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    let mut udp = false;
    for p in addr.iter() {
        match p {
            // A relayed listen address names the relay's port, not one of ours.
            Protocol::P2pCircuit => return Ok(()),
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            Protocol::Udp(p) => {
                port = Some(p);
                udp = true;
            }
            _ => {}
        }
    }
    let (Some(ip), Some(port)) = (ip, port) else {
        return Ok(());
    };
    if port == 0 {
        return Ok(());
    }
    let bound = if udp {
        std::net::UdpSocket::bind((ip, port)).map(drop)
    } else {
        std::net::TcpListener::bind((ip, port)).map(drop)
    };
    match bound {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(anyhow!(
            "cannot listen on {addr}: port {port} is already in use (another cix node, or \
             another program); choose another port with --listen or `listen` in config.toml"
        )),
        // Other failures (an address not on this machine, say) are libp2p's to report.
        Err(_) => Ok(()),
    }
}

async fn wait_for_listeners(event_loop: &mut EventLoop, count: usize) {
    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut bound = 0;
    while bound < count {
        let next = tokio::time::timeout_at(deadline, event_loop.swarm_mut().select_next_some());
        match next.await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => {
                tracing::debug!(%address, "listening");
                event_loop.add_listen_addr(address);
                bound += 1;
            }
            Ok(SwarmEvent::ListenerError { error, .. }) => {
                tracing::warn!(%error, "listener failed");
                bound += 1;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Stops the node: the transfer server stops accepting, the event loop ends (closing every
    /// connection and listener), and the store is flushed. Transfers already running finish or
    /// fail on their own. Idempotent.
    ///
    /// # Errors
    ///
    /// If the final flush fails.
    pub async fn shutdown(&self) -> Result<()> {
        let _ = self.stop.send(true);
        if let Some(handle) = self.event_loop.lock().await.take() {
            let _ = handle.await;
        }
        // The transfer server holds a handle on the store; once it has ended, dropping the last
        // outside handle releases the store's lock (as a process exit would).
        if let Some(handle) = self.server.lock().await.take() {
            let _ = handle.await;
        }
        self.shared.store.flush()
    }

    /// The node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The node's did:key.
    pub fn did(&self) -> Did {
        self.shared.did()
    }

    /// Subscribes to node events.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.shared.events.subscribe()
    }

    /// A stream control for opening and accepting transfer streams.
    pub(crate) fn control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }

    pub(crate) async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| anyhow!("the node has stopped"))?;
        rx.await.map_err(|_| anyhow!("the node has stopped"))
    }

    /// Addresses peers can dial, with `/p2p/PEERID`.
    ///
    /// # Errors
    ///
    /// If the node has stopped.
    pub async fn listening(&self) -> Result<Vec<Multiaddr>> {
        self.call(|reply| Command::Listening { reply }).await
    }

    /// Connected peers.
    ///
    /// # Errors
    ///
    /// If the node has stopped.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// Dials a peer.
    ///
    /// # Errors
    ///
    /// If the dial cannot start.
    pub async fn dial(&self, addr: Multiaddr) -> Result<()> {
        self.call(|reply| Command::Dial { addr, reply }).await?
    }

    /// Announces on Kademlia that this node provides `key` (a content id it serves).
    ///
    /// # Errors
    ///
    /// If the node has stopped.
    pub async fn provide(&self, key: Vec<u8>) -> Result<bool> {
        self.call(|reply| Command::Provide { key, reply }).await
    }

    /// The peers Kademlia knows to provide `key`.
    ///
    /// # Errors
    ///
    /// If the node has stopped.
    pub async fn providers(&self, key: Vec<u8>) -> Result<Vec<PeerId>> {
        self.call(|reply| Command::Providers { key, reply }).await
    }

    /// Makes sure `peer` can be reached (connected, or addresses known via Kademlia).
    ///
    /// # Errors
    ///
    /// If the node has stopped.
    pub async fn locate(&self, peer: PeerId) -> Result<bool> {
        self.call(|reply| Command::Locate { peer, reply }).await
    }

    /// gossipsub's score of `peer` as this node sees it (`None` when it has none; see
    /// [`crate::scoring`]).
    ///
    /// # Errors
    ///
    /// If the node has stopped.
    pub async fn peer_score(&self, peer: PeerId) -> Result<Option<f64>> {
        self.call(|reply| Command::PeerScore { peer, reply }).await
    }

    /// Testnet hook, not a wire feature: from now on refuse connections to exactly `peers`
    /// (closing those open), until called again with another set. The testnet partitions
    /// networks with it.
    ///
    /// # Errors
    ///
    /// If the node has stopped.
    pub async fn testnet_block(&self, peers: std::collections::HashSet<PeerId>) -> Result<()> {
        self.call(|reply| Command::Block { peers, reply }).await
    }

    /// Testnet hook, not a wire feature: publishes `bytes` on the catalogue topic as they are,
    /// without checking them. The testnet's hostile node sends invalid and forged entries
    /// with it.
    ///
    /// # Errors
    ///
    /// If the node has stopped or gossipsub refuses the message.
    pub async fn testnet_announce_raw(&self, bytes: Vec<u8>) -> Result<usize> {
        self.announce(bytes).await
    }

    pub(crate) async fn announce(&self, bytes: Vec<u8>) -> Result<usize> {
        self.call(|reply| Command::Announce {
            topic: cix_protocol::wire::CATALOGUE_TOPIC,
            bytes,
            reply,
        })
        .await?
    }

    pub(crate) async fn announce_withdrawal(&self, bytes: Vec<u8>) -> Result<usize> {
        self.call(|reply| Command::Announce {
            topic: cix_protocol::wire::WITHDRAWAL_TOPIC,
            bytes,
            reply,
        })
        .await?
    }

    pub(crate) async fn announce_revocation(&self, bytes: Vec<u8>) -> Result<usize> {
        self.call(|reply| Command::Announce {
            topic: cix_protocol::wire::REVOCATION_TOPIC,
            bytes,
            reply,
        })
        .await?
    }

    pub(crate) async fn send_access(
        &self,
        peer: PeerId,
        request: cix_protocol::wire::AccessRequest,
    ) -> Result<cix_protocol::wire::AccessResponse> {
        self.call(|reply| Command::Access {
            peer,
            request,
            reply,
        })
        .await?
    }
}

/// The PeerId of an Ed25519 principal.
pub fn peer_of_did(did: &Did) -> Result<PeerId> {
    let pk = libp2p::identity::ed25519::PublicKey::try_from_bytes(&did.public_key().to_bytes())
        .map_err(|e| anyhow!("{did} is not usable as a libp2p key: {e}"))?;
    Ok(libp2p::identity::PublicKey::from(pk).to_peer_id())
}

/// The principal of a PeerId, when it inlines an Ed25519 key (every cix node's does).
pub fn did_of_peer(peer: &PeerId) -> Option<Did> {
    // A PeerId is a multihash; the identity code (0x00) inlines the protobuf-encoded key.
    let bytes = peer.to_bytes();
    let digest = match bytes.as_slice() {
        [0x00, len, rest @ ..] if *len as usize == rest.len() => rest,
        _ => return None,
    };
    let pk = libp2p::identity::PublicKey::try_decode_protobuf(digest).ok()?;
    let ed = pk.try_into_ed25519().ok()?;
    PublicKey::from_bytes(ed.to_bytes()).ok().map(|k| k.did())
}
