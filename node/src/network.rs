//! The libp2p side of a node: the composed behaviour and the event loop that owns the swarm.
//!
//! One task owns the [`Swarm`]; everything else talks to it through [`Command`]s sent on a
//! bounded channel, each carrying a oneshot for its reply (the file-sharing pattern). Inbound
//! gossip, access requests and catch-up requests are answered inside the loop because each
//! answer is a short, synchronous store operation. Transfers run on their own streams outside
//! the loop (see [`crate::transfer`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use anyhow::{anyhow, Result};
use cix_protocol::catalogue::{EntryId, Level, SignedEntry};
use cix_protocol::identity::Did;
use cix_protocol::limits;
use cix_protocol::revocation::SignedRevocation;
use cix_protocol::wire::{
    AccessRequest, AccessResponse, SyncRequest, SyncResponse, ACCESS_PROTOCOL, CATALOGUE_TOPIC,
    REVOCATION_TOPIC, SYNC_PROTOCOL, WITHDRAWAL_TOPIC,
};
use cix_protocol::withdrawal::{SignedWithdrawal, WITHDRAWAL_TAG};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::kad::{self, store::MemoryStore};
use libp2p::metrics::Recorder;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{behaviour::toggle::Toggle, ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{autonat, dcutr, relay};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::codec::Codec;
use crate::node::{NodeEvent, Shared};

/// Depth of the command channel from handles to the event loop.
pub const COMMAND_QUEUE: usize = 256;
/// How long an access or catch-up request may take before it fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most concurrent inbound request-response streams per connection.
pub const MAX_CONCURRENT_REQUESTS: usize = 32;
/// How often the node re-dials missing bootstrap peers (and ends expired bans). Each node
/// starts its ticks at a random point of the first interval, so that nodes started together
/// (a testnet, a city's nodes after a power cut) do not all act at once.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(15);
/// How often the node refreshes its Kademlia routing table (a bootstrap: lookups that find
/// peers beyond those it is connected to), the first time at its first maintenance tick with a
/// peer. Identify keeps the table current for connected peers in between. A refresh every
/// maintenance tick made every node of a 50-node testnet run lookups and open connections
/// every 15 s, all at once, which tripled gossip latency while it lasted.
pub const KAD_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Protocol id of identify (libp2p's protocol, cix's namespace).
pub const IDENTIFY_PROTOCOL: &str = "/cix/id/1.0.0";
/// Protocol id of Kademlia, kept apart from the public IPFS DHT.
pub const KAD_PROTOCOL: &str = "/cix/kad/1.0.0";
/// Most record requests (`want`) of one catch-up in flight to one peer at a time; with
/// `MAX_SYNC_RESPONSE_BYTES` this bounds what one peer's catch-up holds in memory.
pub const MAX_SYNC_IN_FLIGHT: usize = 4;

/// What an outbound catch-up request asked for.
#[derive(Debug)]
enum SyncAsk {
    /// r0: revocations.
    Revocations,
    /// r0: the peer's own entries (the fallback for peers that do not speak r1).
    OwnEntries,
    /// r1: record ids after this sequence number.
    Ids(u64),
    /// r1: these records.
    Records(Vec<[u8; 32]>),
}

/// Where an r1 catch-up with one peer stands.
#[derive(Debug, Default)]
struct CatchUp {
    /// The peer's store epoch, from its id page.
    epoch: u64,
    /// The sequence number the current id page reaches: committed as the cursor once every
    /// record of the page was processed.
    through: u64,
    /// The peer has more id pages.
    more: bool,
    /// Ids of the current page still to ask for.
    queue: VecDeque<[u8; 32]>,
    /// Record requests in flight.
    in_flight: usize,
    /// Records received in this catch-up.
    received: u64,
    /// Ids of the current page that were being fetched from another peer when their turn
    /// came: checked again before the page is committed.
    deferred: Vec<[u8; 32]>,
}

/// The composed libp2p behaviour of a cix node.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connection caps (`limits::MAX_CONNECTIONS_PER_PEER` and the totals; issue 8). First, so
    /// that a connection it denies is never seen by the behaviours after it.
    connection_limits: libp2p::connection_limits::Behaviour,
    /// Peers cut off for misbehaving ([`crate::guard::Bans`]); second for the same reason.
    blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    access: request_response::Behaviour<Codec<AccessRequest, AccessResponse>>,
    sync: request_response::Behaviour<Codec<SyncRequest, SyncResponse>>,
    stream: libp2p_stream::Behaviour,
    /// Circuit relay v2, client side: reserve a slot on a relay and dial through one.
    relay_client: relay::client::Behaviour,
    /// Circuit relay v2, server side: on when `relay_server` is set.
    relay: Toggle<relay::Behaviour>,
    /// Direct connection upgrade through relay (hole punching).
    dcutr: dcutr::Behaviour,
    /// AutoNAT: asks peers to dial back to learn whether this node is reachable.
    autonat: autonat::Behaviour,
}

impl Behaviour {
    pub(crate) fn kad_add(&mut self, peer: &PeerId, addr: Multiaddr) {
        self.kad.add_address(peer, addr);
    }

    pub(crate) fn stream_control(&self) -> libp2p_stream::Control {
        self.stream.new_control()
    }
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Behaviour")
    }
}

/// A connected peer, as `cix peers` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerInfo {
    /// libp2p PeerId.
    pub peer_id: String,
    /// The peer's did:key.
    pub did: Option<String>,
    /// What identify reported as agent (cix version and agency name).
    pub agent: Option<String>,
    /// Addresses it listens on.
    pub addresses: Vec<String>,
    /// Last ping round trip, milliseconds.
    pub rtt_ms: Option<u64>,
    /// The remote address of each open connection, and whether it runs through a relay.
    #[serde(default)]
    pub connections: Vec<ConnectionInfo>,
    /// Its gossipsub score; None while scoring is off.
    #[serde(default)]
    pub gossip_score: Option<f64>,
    /// Protocols it said it speaks (identify).
    #[serde(default)]
    pub protocols: Vec<String>,
}

/// One open connection to a peer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionInfo {
    /// The remote address.
    pub address: String,
    /// Through a circuit relay (`/p2p-circuit`), not direct.
    pub relayed: bool,
    /// This node dialed it (else the peer did).
    pub outbound: bool,
}

impl PeerInfo {
    /// The agency name a cix peer puts in its identify agent string, `cix/VERSION (NAME)`.
    pub fn agency(&self) -> Option<String> {
        agency_of(self.agent.as_deref()?)
    }
}

/// Extracts the agency name from an identify agent string `cix/VERSION (NAME)`.
pub fn agency_of(agent: &str) -> Option<String> {
    let rest = agent.strip_prefix("cix/")?;
    let open = rest.find(" (")?;
    let name = rest[open + 2..].strip_suffix(')')?;
    (!name.is_empty()).then(|| name.to_string())
}

/// Requests from handles to the event loop.
#[derive(Debug)]
pub enum Command {
    /// Announce a signed record on a gossip topic: an entry on the catalogue topic, a
    /// revocation on the revocations topic.
    Announce {
        /// [`CATALOGUE_TOPIC`] or [`REVOCATION_TOPIC`].
        topic: &'static str,
        /// Envelope bytes.
        bytes: Vec<u8>,
        /// Number of peers it went to (0 if none was subscribed yet).
        reply: oneshot::Sender<Result<usize>>,
    },
    /// List connected peers.
    Peers {
        /// The list.
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    /// Dial an address.
    Dial {
        /// With `/p2p/PEERID`, ideally.
        addr: Multiaddr,
        /// Dial started.
        reply: oneshot::Sender<Result<()>>,
    },
    /// Make sure a peer is reachable: connected, or addresses found through Kademlia.
    Locate {
        /// The peer.
        peer: PeerId,
        /// True if it is connected or now has known addresses.
        reply: oneshot::Sender<bool>,
    },
    /// Send an access request.
    Access {
        /// The owner.
        peer: PeerId,
        /// The request.
        request: AccessRequest,
        /// The owner's answer.
        reply: oneshot::Sender<Result<AccessResponse>>,
    },
    /// Announce on Kademlia that this node provides a key (a content id it serves as a
    /// custodian, transfer.md §6).
    Provide {
        /// The key.
        key: Vec<u8>,
        /// Whether the record was stored locally (the announcement continues in the background).
        reply: oneshot::Sender<bool>,
    },
    /// Find the peers that provide a key on Kademlia.
    Providers {
        /// The key.
        key: Vec<u8>,
        /// The providers found when the query ended.
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Our listen addresses.
    Listening {
        /// With `/p2p/PEERID`.
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// gossipsub's score of a peer (`None` if it has none).
    PeerScore {
        /// The peer.
        peer: PeerId,
        /// Its score.
        reply: oneshot::Sender<Option<f64>>,
    },
    /// Testnet hook: the set of peers this node refuses to stay connected to (replaces the
    /// previous set; connections to them are closed at once and whenever they form again).
    Block {
        /// The peers.
        peers: HashSet<PeerId>,
        /// Done.
        reply: oneshot::Sender<()>,
    },
}

/// Security upgrade a node offers first on TCP connections it dials. Both are always accepted
/// and offered (multistream-select settles on the first the listener supports), so a node
/// preferring one still talks to a peer that offers only the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcpSecurity {
    /// TLS 1.3 (libp2p-tls, rustls). libp2p-tls lists ChaCha20-Poly1305 first among its
    /// cipher suites, so that is what two cix nodes agree on, as with Noise.
    #[default]
    Tls,
    /// Noise XX (ChaCha20-Poly1305).
    Noise,
}

fn tcp_config() -> tcp::Config {
    tcp::Config::default().nodelay(true)
}

fn quic_config(mut c: libp2p::quic::Config) -> libp2p::quic::Config {
    c.max_stream_data = limits::MAX_QUIC_STREAM_WINDOW_BYTES;
    c.max_connection_data = limits::MAX_QUIC_CONNECTION_WINDOW_BYTES;
    c
}

/// Builds the swarm for `key`: TCP (TLS or Noise, then Yamux) and QUIC, both always supported;
/// `security` is the upgrade offered first on TCP.
///
/// # Errors
///
/// If the transport or a behaviour cannot be built.
pub fn build_swarm(
    key: libp2p::identity::Keypair,
    agent: String,
    security: TcpSecurity,
    registry: &mut prometheus_client::registry::Registry,
    relay_server: bool,
) -> Result<Swarm<Behaviour>> {
    let builder = libp2p::SwarmBuilder::with_existing_identity(key).with_tokio();
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(120));
    if crate::testnet_delay::enabled() {
        // TESTNET ONLY: TCP whose reads wait out a per-peer delay (crate::testnet_delay).
        return Ok(builder
            .with_other_transport(delayed_tcp)?
            .with_relay_client(
                (libp2p::tls::Config::new, noise::Config::new),
                yamux::Config::default,
            )?
            .with_bandwidth_metrics(registry)
            .with_behaviour(|key, relay_client| {
                make_behaviour(key, agent, relay_client, registry, relay_server)
            })?
            .with_swarm_config(idle)
            .build());
    }
    let swarm = match security {
        TcpSecurity::Tls => builder
            .with_tcp(
                tcp_config(),
                (libp2p::tls::Config::new, noise::Config::new),
                yamux::Config::default,
            )?
            .with_quic_config(quic_config)
            .with_relay_client(
                (libp2p::tls::Config::new, noise::Config::new),
                yamux::Config::default,
            )?
            .with_bandwidth_metrics(registry)
            .with_behaviour(|key, relay_client| {
                make_behaviour(key, agent, relay_client, registry, relay_server)
            })?
            .with_swarm_config(idle)
            .build(),
        TcpSecurity::Noise => builder
            .with_tcp(
                tcp_config(),
                (noise::Config::new, libp2p::tls::Config::new),
                yamux::Config::default,
            )?
            .with_quic_config(quic_config)
            .with_relay_client(
                (noise::Config::new, libp2p::tls::Config::new),
                yamux::Config::default,
            )?
            .with_bandwidth_metrics(registry)
            .with_behaviour(|key, relay_client| {
                make_behaviour(key, agent, relay_client, registry, relay_server)
            })?
            .with_swarm_config(idle)
            .build(),
    };
    Ok(swarm)
}

/// TCP with Noise and Yamux whose muxer delays reads by the testnet's per-peer delay.
#[allow(clippy::type_complexity)]
fn delayed_tcp(
    key: &libp2p::identity::Keypair,
) -> std::result::Result<
    libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    use libp2p::core::{muxing::StreamMuxerBox, upgrade::Version, Transport as _};
    let local = key.public().to_peer_id();
    Ok(tcp::tokio::Transport::new(tcp_config())
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(move |(peer, muxer), _| {
            (
                peer,
                StreamMuxerBox::new(crate::testnet_delay::Delayed::new(muxer, local, peer)),
            )
        })
        .boxed())
}

/// What a relay this node runs allows one circuit (limits.md): enough for a dataset, not
/// unbounded.
fn relay_config() -> relay::Config {
    relay::Config {
        max_circuit_bytes: limits::MAX_RELAY_CIRCUIT_BYTES,
        max_circuit_duration: Duration::from_secs(limits::MAX_RELAY_CIRCUIT_SECS),
        max_circuits: limits::MAX_RELAY_CIRCUITS,
        max_reservations: limits::MAX_RELAY_RESERVATIONS,
        ..relay::Config::default()
    }
}

fn make_behaviour(
    key: &libp2p::identity::Keypair,
    agent: String,
    relay_client: relay::client::Behaviour,
    registry: &mut prometheus_client::registry::Registry,
    relay_server: bool,
) -> std::result::Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let peer_id = key.public().to_peer_id();
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(limits::MAX_ENTRY_BYTES + 4096)
        .message_id_fn(message_id)
        .heartbeat_interval(Duration::from_millis(700))
        .build()
        .map_err(|e| anyhow!("gossipsub config: {e}"))?;
    let mut gossipsub =
        gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)
            .map_err(|e| anyhow!("gossipsub: {e}"))?
            .with_metrics(registry, gossipsub::MetricsConfig::default());
    crate::scoring::enable(&mut gossipsub).map_err(|e| anyhow!("gossipsub peer score: {e}"))?;
    let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    // The event loop refreshes the routing table itself, once peers are known.
    kad_config.set_periodic_bootstrap_interval(None);
    let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
    // Loopback and private addresses are never "confirmed external", so without this
    // kad would stay a client and answer nobody's queries.
    kad.set_mode(Some(kad::Mode::Server));
    let rr = request_response::Config::default()
        .with_request_timeout(REQUEST_TIMEOUT)
        .with_max_concurrent_streams(MAX_CONCURRENT_REQUESTS);
    Ok(Behaviour {
        connection_limits: libp2p::connection_limits::Behaviour::new(
            libp2p::connection_limits::ConnectionLimits::default()
                .with_max_established_per_peer(Some(limits::MAX_CONNECTIONS_PER_PEER))
                .with_max_established(Some(limits::MAX_ESTABLISHED_CONNECTIONS))
                .with_max_pending_incoming(Some(limits::MAX_PENDING_INCOMING)),
        ),
        blocked: Default::default(),
        identify: identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                .with_agent_version(agent)
                // Tell peers of new listen addresses (a relay reservation's circuit address
                // comes after the first identify).
                .with_push_listen_addr_updates(true),
        ),
        ping: ping::Behaviour::default(),
        gossipsub,
        kad,
        access: request_response::Behaviour::with_codec(
            Codec::new(
                limits::MAX_ACCESS_REQUEST_BYTES,
                limits::MAX_ACCESS_RESPONSE_BYTES,
            ),
            [(StreamProtocol::new(ACCESS_PROTOCOL), ProtocolSupport::Full)],
            rr.clone(),
        ),
        sync: request_response::Behaviour::with_codec(
            Codec::new(
                limits::MAX_SYNC_REQUEST_BYTES,
                limits::MAX_SYNC_RESPONSE_BYTES,
            ),
            [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
            rr,
        ),
        stream: libp2p_stream::Behaviour::new(),
        relay_client,
        relay: relay_server
            .then(|| relay::Behaviour::new(peer_id, relay_config()))
            .into(),
        dcutr: dcutr::Behaviour::new(peer_id),
        autonat: autonat::Behaviour::new(
            peer_id,
            autonat::Config {
                // Agencies' networks are often private address space; judge them too.
                only_global_ips: false,
                ..autonat::Config::default()
            },
        ),
    })
}

/// The state the event loop keeps besides the swarm.
pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    shared: Shared,
    commands: mpsc::Receiver<Command>,
    topic: IdentTopic,
    revocation_topic: IdentTopic,
    bootstrap: Vec<Multiaddr>,
    pending_access: HashMap<OutboundRequestId, oneshot::Sender<Result<AccessResponse>>>,
    pending_locate: HashMap<kad::QueryId, (PeerId, oneshot::Sender<bool>)>,
    pending_providers: HashMap<kad::QueryId, (Vec<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
    identified: HashMap<PeerId, identify::Info>,
    rtt: HashMap<PeerId, Duration>,
    syncing: HashSet<PeerId>,
    /// What each outbound catch-up request asked for.
    sync_asks: HashMap<OutboundRequestId, (PeerId, SyncAsk)>,
    /// r1 catch-ups under way.
    catch_ups: HashMap<PeerId, CatchUp>,
    /// Records asked for and not yet answered, with the peer asked: a record that several
    /// peers list is fetched from one of them only.
    fetching: HashMap<[u8; 32], PeerId>,
    withdrawal_topic: IdentTopic,
    listen_addrs: Vec<Multiaddr>,
    /// Peers set by [`Command::Block`].
    blocked: HashSet<PeerId>,
    /// Access requests per peer and window (`limits::MAX_ACCESS_REQUESTS_PER_WINDOW`).
    access_rates: crate::guard::PeerRates,
    /// Invalid gossip per peer and window (`limits::MAX_INVALID_GOSSIP_PER_WINDOW`).
    invalid_gossip: crate::guard::PeerRates,
    /// Peers cut off for invalid gossip.
    bans: crate::guard::Bans,
    /// Open connections per peer, for `cix peers`.
    connections: HashMap<PeerId, Vec<(ConnectionId, ConnectionInfo)>>,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        shared: Shared,
        commands: mpsc::Receiver<Command>,
        bootstrap: Vec<Multiaddr>,
    ) -> Self {
        Self {
            swarm,
            shared,
            commands,
            topic: IdentTopic::new(CATALOGUE_TOPIC),
            revocation_topic: IdentTopic::new(REVOCATION_TOPIC),
            bootstrap,
            pending_access: HashMap::new(),
            pending_locate: HashMap::new(),
            pending_providers: HashMap::new(),
            identified: HashMap::new(),
            rtt: HashMap::new(),
            syncing: HashSet::new(),
            sync_asks: HashMap::new(),
            catch_ups: HashMap::new(),
            fetching: HashMap::new(),
            withdrawal_topic: IdentTopic::new(WITHDRAWAL_TOPIC),
            listen_addrs: Vec::new(),
            blocked: HashSet::new(),
            access_rates: crate::guard::PeerRates::per_window(
                limits::MAX_ACCESS_REQUESTS_PER_WINDOW,
            ),
            invalid_gossip: crate::guard::PeerRates::per_window(
                limits::MAX_INVALID_GOSSIP_PER_WINDOW,
            ),
            bans: crate::guard::Bans::default(),
            connections: HashMap::new(),
        }
    }

    pub(crate) fn swarm_mut(&mut self) -> &mut Swarm<Behaviour> {
        &mut self.swarm
    }

    pub(crate) fn add_listen_addr(&mut self, addr: Multiaddr) {
        let me = *self.swarm.local_peer_id();
        let relayed = addr
            .iter()
            .any(|p| p == libp2p::multiaddr::Protocol::P2pCircuit);
        let config = &self.shared.config;
        if config.relay_server && config.external_addresses.is_empty() && !relayed {
            // A relay must name the addresses it is reached on in its reservations; with none
            // configured, its own listen addresses stand in.
            self.swarm.add_external_address(addr.clone());
        }
        let addr = addr.clone().with_p2p(me).unwrap_or(addr);
        if !self.listen_addrs.contains(&addr) {
            self.listen_addrs.push(addr);
        }
    }

    /// Runs until every handle is dropped.
    pub(crate) async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        for topic in [
            self.topic.clone(),
            self.revocation_topic.clone(),
            self.withdrawal_topic.clone(),
        ] {
            if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&topic) {
                tracing::error!(error = %e, %topic, "cannot subscribe to a gossip topic");
            }
        }
        self.dial_bootstrap();
        let jitter = MAINTENANCE_INTERVAL.mul_f64(rand::random::<f64>());
        let mut maintenance =
            tokio::time::interval_at(tokio::time::Instant::now() + jitter, MAINTENANCE_INTERVAL);
        let mut refreshed: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                _ = stop.changed() => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = maintenance.tick() => {
                    self.end_bans();
                    self.dial_bootstrap();
                    let due = refreshed.is_none_or(|t| t.elapsed() >= KAD_REFRESH_INTERVAL);
                    if due && self.swarm.connected_peers().next().is_some() {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                        refreshed = Some(tokio::time::Instant::now());
                    }
                }
            }
        }
        debug!("event loop stopped");
    }

    fn dial_bootstrap(&mut self) {
        for addr in self.bootstrap.clone() {
            let peer = peer_of(&addr);
            if peer.is_some_and(|p| self.swarm.is_connected(&p) || self.blocked.contains(&p)) {
                continue;
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(%addr, error = %e, "bootstrap dial failed");
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Announce {
                topic: name,
                bytes,
                reply,
            } => {
                let ident = if name == REVOCATION_TOPIC {
                    self.revocation_topic.clone()
                } else if name == WITHDRAWAL_TOPIC {
                    self.withdrawal_topic.clone()
                } else {
                    self.topic.clone()
                };
                let topic = ident.hash();
                let peers = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&topic))
                    .count();
                let res = match self.swarm.behaviour_mut().gossipsub.publish(ident, bytes) {
                    Ok(_) => Ok(peers),
                    // Nobody subscribed yet: the entry is stored and catch-up will deliver it.
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(0),
                    Err(gossipsub::PublishError::Duplicate) => Ok(peers),
                    Err(e) => Err(anyhow!("cannot announce: {e}")),
                };
                let _ = reply.send(res);
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_list());
            }
            Command::Dial { addr, reply } => {
                let _ = reply.send(
                    self.swarm
                        .dial(addr)
                        .map_err(|e| anyhow!("dial failed: {e}")),
                );
            }
            Command::Locate { peer, reply } => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(true);
                } else {
                    let q = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                    self.pending_locate.insert(q, (peer, reply));
                }
            }
            Command::Access {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .access
                    .send_request(&peer, request);
                self.pending_access.insert(id, reply);
            }
            Command::Listening { reply } => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::PeerScore { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::Block { peers, reply } => {
                for p in &peers {
                    if self.swarm.is_connected(p) {
                        let _ = self.swarm.disconnect_peer_id(*p);
                    }
                }
                let healed = self.blocked.iter().any(|p| !peers.contains(p));
                self.blocked = peers;
                // A heal: reach the bootstrap peers no longer blocked now rather than at the
                // next maintenance tick, so convergence after a heal measures gossip and
                // catch-up, not the redial interval.
                if healed {
                    self.dial_bootstrap();
                }
                let _ = reply.send(());
            }
            Command::Provide { key, reply } => {
                let kad = &mut self.swarm.behaviour_mut().kad;
                let stored = kad.start_providing(kad::RecordKey::new(&key)).is_ok();
                let _ = reply.send(stored);
            }
            Command::Providers { key, reply } => {
                let q = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(kad::RecordKey::new(&key));
                self.pending_providers.insert(q, (Vec::new(), reply));
            }
        }
    }

    fn peer_list(&self) -> Vec<PeerInfo> {
        self.swarm
            .connected_peers()
            .map(|p| {
                let info = self.identified.get(p);
                PeerInfo {
                    peer_id: p.to_string(),
                    did: crate::node::did_of_peer(p).map(|d| d.to_string()),
                    agent: info.map(|i| i.agent_version.clone()),
                    addresses: info
                        .map(|i| i.listen_addrs.iter().map(|a| a.to_string()).collect())
                        .unwrap_or_default(),
                    rtt_ms: self.rtt.get(p).map(|d| d.as_millis() as u64),
                    connections: self
                        .connections
                        .get(p)
                        .map(|c| c.iter().map(|(_, i)| i.clone()).collect())
                        .unwrap_or_default(),
                    gossip_score: self.swarm.behaviour().gossipsub.peer_score(p),
                    protocols: info
                        .map(|i| i.protocols.iter().map(|p| p.to_string()).collect())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.shared.metrics.libp2p().record(&event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                self.add_listen_addr(address);
                info!(address = ?self.listen_addrs.last(), "listening");
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let me = *self.swarm.local_peer_id();
                let address = address.clone().with_p2p(me).unwrap_or(address);
                self.listen_addrs.retain(|a| a != &address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                connection_id,
                ..
            } => {
                if self.blocked.contains(&peer_id) {
                    debug!(peer = %peer_id, "closing a connection to a blocked peer");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), relayed = endpoint.is_relayed(), "connected");
                self.connections.entry(peer_id).or_default().push((
                    connection_id,
                    ConnectionInfo {
                        address: endpoint.get_remote_address().to_string(),
                        relayed: endpoint.is_relayed(),
                        outbound: endpoint.is_dialer(),
                    },
                ));
                self.shared
                    .metrics
                    .set_peers(self.swarm.connected_peers().count());
                self.shared.emit(NodeEvent::PeerConnected {
                    peer: peer_id.to_string(),
                });
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } if num_established > 0 => {
                if let Some(c) = self.connections.get_mut(&peer_id) {
                    c.retain(|(id, _)| *id != connection_id);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, .. } => {
                self.connections.remove(&peer_id);
                self.shared
                    .metrics
                    .set_peers(self.swarm.connected_peers().count());
                debug!(peer = %peer_id, "disconnected");
                self.identified.remove(&peer_id);
                self.syncing.remove(&peer_id);
                self.end_catch_up(peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(peer = ?peer_id, %error, "outgoing connection failed");
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour_event(ev),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        let m = self.shared.metrics.libp2p();
        match &event {
            BehaviourEvent::Identify(e) => m.record(e),
            BehaviourEvent::Ping(e) => m.record(e),
            BehaviourEvent::Kad(e) => m.record(e),
            BehaviourEvent::Relay(e) => m.record(e),
            BehaviourEvent::Dcutr(e) => {
                m.record(e);
                debug!(peer = %e.remote_peer_id, result = ?e.result, "direct connection upgrade");
            }
            _ => {}
        }
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identified(peer_id, info)
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                self.rtt.insert(peer, rtt);
            }
            BehaviourEvent::Gossipsub(ev) => self.on_gossip(ev),
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            }) => {
                if let Some((mut found, reply)) = self.pending_providers.remove(&id) {
                    if let kad::QueryResult::GetProviders(Ok(
                        kad::GetProvidersOk::FoundProviders { providers, .. },
                    )) = &result
                    {
                        found.extend(
                            providers
                                .iter()
                                .filter(|p| !found.contains(p))
                                .copied()
                                .collect::<Vec<_>>(),
                        );
                    }
                    if step.last {
                        let _ = reply.send(found);
                    } else {
                        self.pending_providers.insert(id, (found, reply));
                    }
                    return;
                }
                if let Some((peer, reply)) = self.pending_locate.remove(&id) {
                    let mut found = false;
                    if let kad::QueryResult::GetClosestPeers(Ok(ok)) = &result {
                        for p in ok.peers.iter().filter(|p| p.peer_id == peer) {
                            // Keep what the query found (a relayed address, say) so that the
                            // dial that follows can use it after the query has ended.
                            for addr in &p.addrs {
                                self.swarm
                                    .behaviour_mut()
                                    .kad
                                    .add_address(&peer, addr.clone());
                            }
                            found |= !p.addrs.is_empty();
                        }
                    }
                    if found || step.last {
                        let _ = reply.send(found || self.swarm.is_connected(&peer));
                    } else {
                        self.pending_locate.insert(id, (peer, reply));
                    }
                }
            }
            BehaviourEvent::Access(ev) => self.on_access(ev),
            BehaviourEvent::Sync(ev) => self.on_sync(ev),
            _ => {}
        }
    }

    fn on_identified(&mut self, peer: PeerId, info: identify::Info) {
        for addr in &info.listen_addrs {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
        }
        let speaks_sync = info.protocols.iter().any(|p| p.as_ref() == SYNC_PROTOCOL);
        self.shared.emit(NodeEvent::PeerIdentified {
            peer: peer.to_string(),
            agent: info.agent_version.clone(),
        });
        self.identified.insert(peer, info);
        if speaks_sync && self.syncing.insert(peer) {
            debug!(%peer, "catching up with peer's catalogue and revocations");
            let since = self.cursor_for(&peer).map(|(_, t)| t).unwrap_or(0);
            self.ask(peer, SyncAsk::Ids(since));
            self.ask(peer, SyncAsk::Revocations);
        }
    }

    /// The catch-up cursor kept for `peer`, if any.
    fn cursor_for(&self, peer: &PeerId) -> Option<(u64, u64)> {
        match self.shared.store.cursor(&peer.to_bytes()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(%peer, error = %e, "cannot read a catch-up cursor; starting over");
                None
            }
        }
    }

    fn ask(&mut self, peer: PeerId, ask: SyncAsk) {
        let request = match &ask {
            SyncAsk::Revocations => SyncRequest::revocations(None),
            SyncAsk::OwnEntries => SyncRequest::entries(None),
            SyncAsk::Ids(since) => SyncRequest::ids(*since),
            SyncAsk::Records(ids) => SyncRequest::want(ids),
        };
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.sync_asks.insert(id, (peer, ask));
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let acceptance = if message.topic == self.revocation_topic.hash() {
                    self.accept_revocation(&message.data, &propagation_source, "gossip")
                } else if message.topic == self.topic.hash() {
                    self.accept_entry(&message.data, &propagation_source, "gossip", None)
                } else if message.topic == self.withdrawal_topic.hash() {
                    self.accept_withdrawal(&message.data, &propagation_source, "gossip")
                } else {
                    warn!(peer = %propagation_source, topic = %message.topic, "gossip on a topic cix does not use");
                    self.shared
                        .metrics
                        .rejected("unknown", crate::metrics::Rejection::UnknownTopic);
                    MessageAcceptance::Reject
                };
                let rejected = matches!(acceptance, MessageAcceptance::Reject);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                if rejected {
                    // The score already counts this rejection (scoring's P4), so a peer that
                    // just fell below the graylist is cut off now: gossipsub would ignore its
                    // messages from here on, and they would never reach the count below.
                    let graylisted = self
                        .swarm
                        .behaviour()
                        .gossipsub
                        .peer_score(&propagation_source)
                        .is_some_and(|s| s < crate::scoring::GRAYLIST_THRESHOLD);
                    self.count_invalid_gossip(propagation_source, graylisted);
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                debug!(peer = %peer_id, %topic, "peer subscribed");
                self.shared.emit(NodeEvent::PeerSubscribed {
                    peer: peer_id.to_string(),
                });
            }
            _ => {}
        }
    }

    /// Checks an entry from a peer and stores it. `Accept` if it is valid (new or already
    /// known); `Reject` if it must not be forwarded and its sender deserves a penalty; `Ignore`
    /// if it is valid but could not be stored (our fault: neither forward nor penalise).
    /// `issuer`, when given, is the only publisher the entry may come from (r0 catch-up serves
    /// a peer's own entries only; r1 relays anyone's, each checked on its own signature).
    fn accept_entry(
        &mut self,
        bytes: &[u8],
        from: &PeerId,
        via: &'static str,
        issuer: Option<Did>,
    ) -> MessageAcceptance {
        let signed = match SignedEntry::decode(bytes) {
            Ok(s) => s,
            Err(e) => {
                warn!(peer = %from, via, error = %e, "rejected catalogue entry");
                self.shared.stats.rejected();
                self.shared
                    .metrics
                    .rejected("entry", crate::metrics::Rejection::Invalid);
                self.shared.emit(NodeEvent::EntryRejected {
                    from: from.to_string(),
                    reason: e.to_string(),
                });
                return MessageAcceptance::Reject;
            }
        };
        if issuer.is_some_and(|i| i != signed.entry.iss) {
            warn!(peer = %from, via, entry = %signed.id, "rejected catch-up entry of another publisher");
            self.shared.stats.rejected();
            self.shared
                .metrics
                .rejected("entry", crate::metrics::Rejection::OtherPublisher);
            self.shared.emit(NodeEvent::EntryRejected {
                from: from.to_string(),
                reason: "catch-up may only carry the peer's own entries".into(),
            });
            return MessageAcceptance::Reject;
        }
        if signed.entry.level() == Level::Closed {
            warn!(peer = %from, via, entry = %signed.id, "rejected announcement of a closed dataset");
            self.shared.stats.rejected();
            self.shared
                .metrics
                .rejected("entry", crate::metrics::Rejection::Closed);
            self.shared.emit(NodeEvent::EntryRejected {
                from: from.to_string(),
                reason: "closed datasets are never announced".into(),
            });
            return MessageAcceptance::Reject;
        }
        match self.shared.store.put_entry(&signed) {
            Ok(is_new) => {
                self.shared.stats.accepted();
                if is_new {
                    self.shared
                        .search
                        .insert_listed(&self.shared.store, &signed);
                    debug!(peer = %from, via, entry = %signed.id, dataset = %signed.entry.dataset, "accepted catalogue entry");
                    self.shared.emit(NodeEvent::EntryAccepted {
                        entry: signed.id.to_string(),
                        dataset: signed.entry.dataset.to_string(),
                        title: signed.entry.title.clone(),
                        from: from.to_string(),
                    });
                }
                MessageAcceptance::Accept
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store a valid entry");
                MessageAcceptance::Ignore
            }
        }
    }

    /// Checks a revocation from a peer and stores it durably. `Accept` if it is well formed and
    /// correctly signed (new or known); `Reject` otherwise; `Ignore` if it could not be stored.
    fn accept_revocation(
        &mut self,
        bytes: &[u8],
        from: &PeerId,
        via: &'static str,
    ) -> MessageAcceptance {
        let signed = match SignedRevocation::decode(bytes) {
            Ok(s) => s,
            Err(e) => {
                warn!(peer = %from, via, error = %e, "rejected revocation");
                self.shared.stats.revocation(false);
                self.shared
                    .metrics
                    .rejected("revocation", crate::metrics::Rejection::Invalid);
                self.shared.emit(NodeEvent::RevocationRejected {
                    from: from.to_string(),
                    reason: e.to_string(),
                });
                return MessageAcceptance::Reject;
            }
        };
        match self.shared.store.put_revocation(&signed) {
            Ok(true) => {
                // In force at once; made durable off the event loop so that a burst of
                // revocations does not stall the swarm behind one fsync each.
                let flush = self.shared.store.flush_async();
                tokio::spawn(async move {
                    if let Err(e) = flush.await {
                        tracing::error!(error = %e, "cannot flush a received revocation");
                    }
                });
                let revoked = signed.revocation.revoke.to_string();
                debug!(peer = %from, via, %revoked, by = %signed.revocation.iss, "accepted revocation");
                self.shared.stats.revocation(true);
                self.shared.emit(NodeEvent::RevocationAccepted {
                    revocation: hex::encode(signed.id),
                    revoked,
                    by: signed.revocation.iss.to_string(),
                    from: from.to_string(),
                });
                MessageAcceptance::Accept
            }
            Ok(false) => MessageAcceptance::Accept,
            Err(e) => {
                warn!(peer = %from, error = %e, "cannot store a valid revocation");
                MessageAcceptance::Ignore
            }
        }
    }

    /// Checks a withdrawal from a peer and stores it durably. `Reject` if it is malformed,
    /// badly signed, or signed by someone other than the publisher of a dataset this node
    /// knows (a dataset is the pair of publisher and id, so only its publisher may withdraw
    /// it); `Ignore` if it could not be stored.
    fn accept_withdrawal(
        &mut self,
        bytes: &[u8],
        from: &PeerId,
        via: &'static str,
    ) -> MessageAcceptance {
        let reject = |this: &mut Self, why: crate::metrics::Rejection, reason: String| {
            warn!(peer = %from, via, %reason, "rejected withdrawal");
            this.shared.stats.withdrawal(false);
            this.shared.metrics.rejected("withdrawal", why);
            this.shared.emit(NodeEvent::WithdrawalRejected {
                from: from.to_string(),
                reason,
            });
            MessageAcceptance::Reject
        };
        let signed = match SignedWithdrawal::decode(bytes) {
            Ok(s) => s,
            Err(e) => return reject(self, crate::metrics::Rejection::Invalid, e.to_string()),
        };
        let w = &signed.withdrawal;
        match self.shared.store.publishers_of(&w.dataset) {
            Ok(publishers) if !publishers.is_empty() && !publishers.contains(&w.iss) => {
                let who: Vec<String> = publishers.iter().map(|d| d.to_string()).collect();
                return reject(
                    self,
                    crate::metrics::Rejection::NotPublisher,
                    format!(
                        "withdrawal of dataset {} signed by {}, but its publisher is {}",
                        w.dataset,
                        w.iss,
                        who.join(", ")
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot look up a withdrawn dataset");
                return MessageAcceptance::Ignore;
            }
        }
        match self.shared.store.put_withdrawal(&signed) {
            Ok(true) => {
                let flush = self.shared.store.flush_async();
                tokio::spawn(async move {
                    if let Err(e) = flush.await {
                        tracing::error!(error = %e, "cannot flush a received withdrawal");
                    }
                });
                self.shared.search.withdraw(&w.dataset, &w.iss, w.version);
                debug!(peer = %from, via, dataset = %w.dataset, version = w.version, "accepted withdrawal");
                self.shared.stats.withdrawal(true);
                self.shared.emit(NodeEvent::WithdrawalAccepted {
                    withdrawal: hex::encode(signed.id),
                    dataset: w.dataset.to_string(),
                    version: w.version,
                    by: w.iss.to_string(),
                    from: from.to_string(),
                });
                MessageAcceptance::Accept
            }
            Ok(false) => MessageAcceptance::Accept,
            Err(e) => {
                tracing::error!(error = %e, "cannot store a valid withdrawal");
                MessageAcceptance::Ignore
            }
        }
    }

    /// Counts one rejected gossip message from `peer`; past
    /// `limits::MAX_INVALID_GOSSIP_PER_WINDOW` in a window the peer is cut off and refused for
    /// `limits::PEER_BAN_SECS` (gossipsub's own peer score comes on top of this).
    /// Counts one rejected gossip message from `peer` and cuts the peer off when it is over
    /// `MAX_INVALID_GOSSIP_PER_WINDOW` or its gossip score is below the graylist threshold.
    fn count_invalid_gossip(&mut self, peer: PeerId, graylisted: bool) {
        let now = std::time::Instant::now();
        let over = !self.invalid_gossip.allow(peer, now);
        if !(over || graylisted) || self.bans.is_banned(&peer, now) {
            return;
        }
        let reason = if graylisted && !over {
            format!(
                "its gossip score fell below the graylist threshold ({})",
                crate::scoring::GRAYLIST_THRESHOLD
            )
        } else {
            format!(
                "more than {} invalid gossip messages in {} s",
                limits::MAX_INVALID_GOSSIP_PER_WINDOW,
                limits::RATE_WINDOW_SECS
            )
        };
        warn!(%peer, %reason, "peer cut off for invalid gossip");
        self.bans.ban(peer, now);
        self.invalid_gossip.forget(&peer);
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        self.shared.emit(NodeEvent::PeerBanned {
            peer: peer.to_string(),
            reason,
        });
    }

    fn end_bans(&mut self) {
        for peer in self.bans.expired(std::time::Instant::now()) {
            debug!(%peer, "ban ended");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    fn on_access(&mut self, event: request_response::Event<AccessRequest, AccessResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let response = if self.access_rates.allow(peer, std::time::Instant::now()) {
                    crate::access::decide(&self.shared, &peer, request)
                } else {
                    warn!(%peer, "access request refused: over the per-peer rate");
                    AccessResponse::Denied {
                        code: cix_protocol::wire::DenyCode::Busy,
                        reason: format!(
                            "more than {} access requests in {} s from this peer; try later",
                            limits::MAX_ACCESS_REQUESTS_PER_WINDOW,
                            limits::RATE_WINDOW_SECS
                        ),
                    }
                };
                if self
                    .swarm
                    .behaviour_mut()
                    .access
                    .send_response(channel, response)
                    .is_err()
                {
                    debug!(%peer, "access requester went away before the answer");
                }
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.pending_access.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                if let Some(reply) = self.pending_access.remove(&request_id) {
                    let _ = reply.send(Err(anyhow!("access request to {peer} failed: {error}")));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                warn!(%peer, %error, "inbound access request failed");
            }
            _ => {}
        }
    }

    fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let page = if !request.want.is_empty() {
                    crate::access::record_page(&self.shared, &peer, &request.want)
                } else if let Some(since) = request.since {
                    crate::access::id_page(&self.shared, since)
                } else if request.revocations {
                    crate::access::revocation_page(&self.shared, request.after)
                } else {
                    crate::access::sync_page(&self.shared, request.after)
                };
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, page)
                    .is_err()
                {
                    debug!(%peer, "sync requester went away");
                }
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        response,
                        request_id,
                    },
                ..
            } => {
                let Some((_, ask)) = self.sync_asks.remove(&request_id) else {
                    return;
                };
                match ask {
                    SyncAsk::Revocations => self.on_revocation_page(peer, response),
                    SyncAsk::OwnEntries => self.on_own_entries_page(peer, response),
                    SyncAsk::Ids(since) => self.on_id_page(peer, since, response),
                    SyncAsk::Records(ids) => self.on_record_page(peer, ids, response),
                }
            }
            Event::OutboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                debug!(%peer, %error, "catch-up failed");
                let ask = self.sync_asks.remove(&request_id);
                self.end_catch_up(peer);
                // A peer of revision r0 refuses the r1 form: fall back to its own entries.
                if let Some((_, SyncAsk::Ids(0))) = ask {
                    if self.swarm.is_connected(&peer) {
                        self.ask(peer, SyncAsk::OwnEntries);
                        return;
                    }
                }
                self.syncing.remove(&peer);
            }
            _ => {}
        }
    }

    fn on_revocation_page(&mut self, peer: PeerId, response: SyncResponse) {
        let mut last = None;
        for bytes in response.entries.iter().take(limits::MAX_SYNC_ENTRIES) {
            match self.accept_revocation(bytes, &peer, "sync") {
                MessageAcceptance::Accept => last = Some(EntryId(*blake3::hash(bytes).as_bytes())),
                _ => return,
            }
        }
        if response.more {
            if let Some(after) = last {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, SyncRequest::revocations(Some(after)));
                self.sync_asks.insert(id, (peer, SyncAsk::Revocations));
            }
        }
    }

    /// r0: a page of the peer's own entries.
    fn on_own_entries_page(&mut self, peer: PeerId, response: SyncResponse) {
        let mut last = None;
        let issuer = crate::node::did_of_peer(&peer);
        for bytes in response.entries.iter().take(limits::MAX_SYNC_ENTRIES) {
            match self.accept_entry(bytes, &peer, "sync", issuer) {
                MessageAcceptance::Accept => last = Some(EntryId::of(bytes)),
                // A peer that sends bad catch-up pages gets no further page requests.
                _ => return,
            }
        }
        if response.more {
            if let Some(after) = last {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, SyncRequest::entries(Some(after)));
                self.sync_asks.insert(id, (peer, SyncAsk::OwnEntries));
            }
        }
    }

    /// r1: a page of record ids. Asks for the records not held here, then (in
    /// [`Self::pump`]) commits the cursor and asks for the next page.
    fn on_id_page(&mut self, peer: PeerId, since: u64, response: SyncResponse) {
        let (Some(through), Some(epoch)) = (response.through, response.epoch) else {
            warn!(%peer, "catch-up id page without its sequence number or epoch");
            self.syncing.remove(&peer);
            return;
        };
        if response.ids.len() > limits::MAX_SYNC_IDS
            || response.ids.iter().any(|i| i.len() != 32)
            || through < since
        {
            warn!(%peer, ids = response.ids.len(), "malformed catch-up id page");
            self.syncing.remove(&peer);
            return;
        }
        // A cursor taken from an earlier store of the peer's means nothing now: start over.
        if since > 0 && self.cursor_for(&peer).is_some_and(|(e, _)| e != epoch) {
            debug!(%peer, "peer's store changed since the last catch-up; starting over");
            self.ask(peer, SyncAsk::Ids(0));
            return;
        }
        let mut queue = VecDeque::new();
        let mut seen = HashSet::new();
        for raw in &response.ids {
            let mut id = [0u8; 32];
            id.copy_from_slice(raw);
            match self.shared.store.holds(&id) {
                Ok(false) if seen.insert(id) => queue.push_back(id),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the store during catch-up");
                    self.syncing.remove(&peer);
                    return;
                }
            }
        }
        let state = self.catch_ups.entry(peer).or_default();
        state.epoch = epoch;
        state.through = through;
        state.more = response.more;
        state.queue = queue;
        self.pump(peer);
    }

    /// r1: a page of records asked for by id. Each is checked exactly as if it came by gossip,
    /// on its own signature, whoever relays it.
    fn on_record_page(&mut self, peer: PeerId, asked: Vec<[u8; 32]>, response: SyncResponse) {
        for id in &asked {
            if self.fetching.get(id) == Some(&peer) {
                self.fetching.remove(id);
            }
        }
        if let Some(state) = self.catch_ups.get_mut(&peer) {
            state.in_flight = state.in_flight.saturating_sub(1);
        } else {
            return;
        }
        if response.entries.len() > limits::MAX_SYNC_ENTRIES {
            warn!(%peer, "catch-up page with too many records");
            self.end_catch_up(peer);
            return;
        }
        let mut got = HashSet::new();
        for bytes in &response.entries {
            let id = *blake3::hash(bytes).as_bytes();
            self.shared.stats.sync_received(bytes.len() as u64);
            let verdict = if !asked.contains(&id) {
                warn!(%peer, "catch-up page holds a record that was not asked for");
                self.shared.stats.rejected();
                self.shared
                    .metrics
                    .rejected("entry", crate::metrics::Rejection::NotAsked);
                MessageAcceptance::Reject
            } else if is_withdrawal(bytes) {
                self.accept_withdrawal(bytes, &peer, "sync")
            } else {
                self.accept_entry(bytes, &peer, "sync", None)
            };
            match verdict {
                MessageAcceptance::Accept => {
                    got.insert(id);
                    if let Some(state) = self.catch_ups.get_mut(&peer) {
                        state.received += 1;
                    }
                }
                // A peer that relays a bad record gets no further requests.
                _ => {
                    self.end_catch_up(peer);
                    return;
                }
            }
        }
        if response.more {
            // Left out for size: ask again for what is missing.
            if let Some(state) = self.catch_ups.get_mut(&peer) {
                for id in asked.into_iter().rev().filter(|i| !got.contains(i)) {
                    state.queue.push_front(id);
                }
            }
        }
        self.pump(peer);
        self.pump_waiting(peer);
    }

    /// Ends the catch-up with `peer` (done, failed or disconnected): what it was asked for is
    /// free to be asked of others, and catch-ups that waited on it go on.
    fn end_catch_up(&mut self, peer: PeerId) {
        if self.catch_ups.remove(&peer).is_some() {
            self.fetching.retain(|_, p| *p != peer);
            self.pump_waiting(peer);
        }
    }

    /// Lets every other catch-up that has nothing in flight re-check its deferred ids.
    fn pump_waiting(&mut self, except: PeerId) {
        let waiting: Vec<PeerId> = self
            .catch_ups
            .iter()
            .filter(|(p, s)| **p != except && s.in_flight == 0 && !s.deferred.is_empty())
            .map(|(p, _)| *p)
            .collect();
        for p in waiting {
            self.pump(p);
        }
    }

    /// Keeps up to [`MAX_SYNC_IN_FLIGHT`] record requests going to `peer`, skipping records
    /// held by now and deferring those another peer is sending; when a page is done, commits
    /// the cursor and asks for the next page, or reports the catch-up done.
    fn pump(&mut self, peer: PeerId) {
        let store = self.shared.store.clone();
        let mut asks = Vec::new();
        let finished = {
            let Some(state) = self.catch_ups.get_mut(&peer) else {
                return;
            };
            if state.queue.is_empty() && state.in_flight == 0 {
                // Deferred ids: done if held now, ours to ask if nobody is sending them.
                let mut still = Vec::new();
                for id in std::mem::take(&mut state.deferred) {
                    if store.holds(&id).unwrap_or(false) {
                        continue;
                    }
                    if self.fetching.contains_key(&id) {
                        still.push(id);
                    } else {
                        state.queue.push_back(id);
                    }
                }
                state.deferred = still;
            }
            while state.in_flight < MAX_SYNC_IN_FLIGHT && !state.queue.is_empty() {
                let mut batch = Vec::new();
                while batch.len() < limits::MAX_SYNC_ENTRIES {
                    let Some(id) = state.queue.pop_front() else {
                        break;
                    };
                    if store.holds(&id).unwrap_or(false) {
                        continue;
                    }
                    if self.fetching.contains_key(&id) {
                        state.deferred.push(id);
                        continue;
                    }
                    self.fetching.insert(id, peer);
                    batch.push(id);
                }
                if batch.is_empty() {
                    break;
                }
                asks.push(batch);
                state.in_flight += 1;
            }
            state.in_flight == 0 && state.queue.is_empty() && state.deferred.is_empty()
        };
        for ids in asks {
            self.ask(peer, SyncAsk::Records(ids));
        }
        if !finished {
            return;
        }
        let Some(state) = self.catch_ups.get(&peer) else {
            return;
        };
        let (epoch, through, more, received) =
            (state.epoch, state.through, state.more, state.received);
        if let Err(e) = self
            .shared
            .store
            .set_cursor(&peer.to_bytes(), epoch, through)
        {
            tracing::error!(error = %e, "cannot keep a catch-up cursor");
        }
        let flush = self.shared.store.flush_async();
        tokio::spawn(async move {
            if let Err(e) = flush.await {
                tracing::error!(error = %e, "cannot flush after a catch-up page");
            }
        });
        if more {
            self.ask(peer, SyncAsk::Ids(through));
        } else {
            self.catch_ups.remove(&peer);
            debug!(%peer, received, "catch-up done");
            self.shared.emit(NodeEvent::CatchUpDone {
                peer: peer.to_string(),
                received,
            });
        }
    }
}

/// True if `bytes` look like a withdrawal envelope: the type tag `cix/withdraw@1` right after
/// the signature and the varsig header (`identity.md` §6). This only picks the decoder; the
/// decoder then checks everything, so a record that lies here is refused all the same.
fn is_withdrawal(bytes: &[u8]) -> bool {
    // [0x82, 0x58, 0x40, 64-byte signature, 0xa2, "h" (0x61 0x68), 0x48 + 8-byte header, tag]
    const TAG_AT: usize = 3 + 64 + 1 + 2 + 1 + 8;
    let tag = WITHDRAWAL_TAG.as_bytes();
    bytes.get(TAG_AT) == Some(&(0x60 | tag.len() as u8))
        && bytes.get(TAG_AT + 1..TAG_AT + 1 + tag.len()) == Some(tag)
}

/// The gossip message id (`specs/gossip.md` §5): on the catalogue topic BLAKE3 of the data,
/// which is the entry id; on any other topic BLAKE3 of the topic, a zero byte and the data.
/// Keying other topics by topic keeps a copy of a revocation published on the catalogue topic
/// (rejected there) from entering the seen-cache under the id the real one will carry.
pub fn message_id(m: &gossipsub::Message) -> gossipsub::MessageId {
    let topic = m.topic.as_str();
    let id = if topic == CATALOGUE_TOPIC {
        blake3::hash(&m.data)
    } else {
        let mut h = blake3::Hasher::new();
        h.update(topic.as_bytes());
        h.update(&[0]);
        h.update(&m.data);
        h.finalize()
    };
    gossipsub::MessageId::from(id.as_bytes().to_vec())
}

/// The PeerId at the end of a multiaddr, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cix_protocol::catalogue::DatasetId;
    use cix_protocol::identity::Keypair;
    use cix_protocol::withdrawal::Withdrawal;

    #[test]
    fn withdrawal_envelopes_are_told_from_others_by_their_tag() {
        let key = Keypair::generate();
        let w = Withdrawal {
            iss: key.did(),
            dataset: DatasetId([1; 16]),
            version: 1,
            at: 1,
            reason: None,
        }
        .seal(&key)
        .unwrap();
        assert!(is_withdrawal(&w.bytes));
        let other = cix_protocol::envelope::seal(&key, "cix/entry@1", &w.withdrawal).unwrap();
        assert!(!is_withdrawal(&other));
        assert!(!is_withdrawal(&w.bytes[..40]));
    }
}
