//! TESTNET ONLY, not a wire feature and off unless asked for: the research testnet's partitions
//! and latency made inside a `cix node run` process, for machines where the testnet cannot
//! make them with network namespaces and `tc netem` (no root, or a kernel without netem).
//!
//! `cix node run --testnet-faults` (a hidden flag that only `cix-testnet` passes) turns on
//! [`crate::testnet_delay`] for the process and serves two extra admin endpoints, behind the
//! admin token and on loopback only ([`crate::admin::serve_with`]):
//!
//! | method and path | body | what |
//! |---|---|---|
//! | `PUT /v1/testnet/blocked` | [`BlockRequest`] | refuse exactly these peers from now on ([`crate::Node::testnet_block`]) |
//! | `PUT /v1/testnet/delays` | [`DelayRequest`] | hold what is read from these peers for their delay, from every other peer for none ([`crate::testnet_delay::set`]) |
//!
//! Without the flag neither route exists (404) and the transport is the ordinary one. This
//! module checks the bodies: every peer id must parse, none may repeat or be the node itself,
//! at most [`MAX_PEERS`] of them, each delay at most [`MAX_DELAY_MS`]; the admin API caps a body
//! at [`MAX_BODY_BYTES`] before it is parsed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

/// Most peers one request names (the testnet runs at most a few hundred nodes).
pub const MAX_PEERS: usize = 1024;

/// Longest delay a request may set, milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;

/// Largest request body, bytes: [`MAX_PEERS`] peer ids with their delays fit well within.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// Longest part of a bad peer id an error repeats.
const SHOWN_CHARS: usize = 64;

/// `PUT /v1/testnet/blocked`: the whole set of peers to refuse (empty: none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    /// Peer ids (base58).
    pub peers: Vec<String>,
}

/// One peer's delay in a [`DelayRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerDelay {
    /// Peer id (base58).
    pub peer: String,
    /// How long bytes read from it are held, milliseconds (0 to [`MAX_DELAY_MS`]).
    pub delay_ms: u64,
}

/// `PUT /v1/testnet/delays`: every peer's delay (peers not named get none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayRequest {
    /// The delays.
    pub delays: Vec<PeerDelay>,
}

/// Why a fault request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// More than [`MAX_PEERS`] peers.
    #[error("{0} peers named, at most {MAX_PEERS} allowed")]
    TooManyPeers(usize),
    /// A peer id that does not parse.
    #[error("peer {index}: {shown:?} is not a peer id")]
    BadPeer {
        /// Its position in the request.
        index: usize,
        /// Its first characters.
        shown: String,
    },
    /// A peer named twice.
    #[error("peer {index}: {peer} is named twice")]
    Repeated {
        /// Its second position.
        index: usize,
        /// The peer.
        peer: PeerId,
    },
    /// The node's own peer id.
    #[error("peer {index}: {peer} is this node itself")]
    Itself {
        /// Its position.
        index: usize,
        /// The peer.
        peer: PeerId,
    },
    /// A delay over [`MAX_DELAY_MS`].
    #[error("peer {index}: delay {delay_ms} ms is over the {MAX_DELAY_MS} ms allowed")]
    DelayTooLong {
        /// Its position.
        index: usize,
        /// The delay asked for.
        delay_ms: u64,
    },
    /// The process did not turn on the delaying transport.
    #[error("this node's transport does not delay (it was not started with --testnet-faults)")]
    NoDelayingTransport,
}

/// Parses `index`'s peer id, refusing `local` and repeats.
fn peer_at(
    index: usize,
    text: &str,
    local: PeerId,
    seen: &mut HashSet<PeerId>,
) -> Result<PeerId, FaultError> {
    let peer: PeerId = text.parse().map_err(|_| FaultError::BadPeer {
        index,
        shown: text.chars().take(SHOWN_CHARS).collect(),
    })?;
    if peer == local {
        return Err(FaultError::Itself { index, peer });
    }
    if !seen.insert(peer) {
        return Err(FaultError::Repeated { index, peer });
    }
    Ok(peer)
}

/// The peers node `local` is asked to refuse.
///
/// # Errors
///
/// [`FaultError::TooManyPeers`], [`FaultError::BadPeer`], [`FaultError::Repeated`] or
/// [`FaultError::Itself`].
pub fn blocked(local: PeerId, req: &BlockRequest) -> Result<HashSet<PeerId>, FaultError> {
    if req.peers.len() > MAX_PEERS {
        return Err(FaultError::TooManyPeers(req.peers.len()));
    }
    let mut seen = HashSet::with_capacity(req.peers.len());
    for (i, p) in req.peers.iter().enumerate() {
        peer_at(i, p, local, &mut seen)?;
    }
    Ok(seen)
}

/// The delays node `local` is asked to hold reads from each peer for.
///
/// # Errors
///
/// As [`blocked`], and [`FaultError::DelayTooLong`].
pub fn delays(local: PeerId, req: &DelayRequest) -> Result<HashMap<PeerId, Duration>, FaultError> {
    if req.delays.len() > MAX_PEERS {
        return Err(FaultError::TooManyPeers(req.delays.len()));
    }
    let mut seen = HashSet::with_capacity(req.delays.len());
    let mut out = HashMap::with_capacity(req.delays.len());
    for (i, d) in req.delays.iter().enumerate() {
        let peer = peer_at(i, &d.peer, local, &mut seen)?;
        if d.delay_ms > MAX_DELAY_MS {
            return Err(FaultError::DelayTooLong {
                index: i,
                delay_ms: d.delay_ms,
            });
        }
        out.insert(peer, Duration::from_millis(d.delay_ms));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn some_peer() -> PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    #[test]
    fn blocked_takes_distinct_peers_other_than_itself() {
        let (me, a, b) = (some_peer(), some_peer(), some_peer());
        let req = BlockRequest {
            peers: vec![a.to_string(), b.to_string()],
        };
        assert_eq!(blocked(me, &req).unwrap(), HashSet::from([a, b]));
        assert!(blocked(me, &BlockRequest::default()).unwrap().is_empty());
        let twice = BlockRequest {
            peers: vec![a.to_string(), a.to_string()],
        };
        assert_eq!(
            blocked(me, &twice).unwrap_err(),
            FaultError::Repeated { index: 1, peer: a }
        );
        let own = BlockRequest {
            peers: vec![me.to_string()],
        };
        assert_eq!(
            blocked(me, &own).unwrap_err(),
            FaultError::Itself { index: 0, peer: me }
        );
    }

    #[test]
    fn a_bad_peer_id_is_named_by_position_and_shown_shortened() {
        let req = BlockRequest {
            peers: vec![some_peer().to_string(), "x".repeat(10_000)],
        };
        let e = blocked(some_peer(), &req).unwrap_err();
        match &e {
            FaultError::BadPeer { index, shown } => {
                assert_eq!(*index, 1);
                assert_eq!(shown.len(), SHOWN_CHARS);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("peer 1: "), "{e}");
    }

    #[test]
    fn too_many_peers_are_refused_before_any_is_parsed() {
        let req = BlockRequest {
            peers: vec!["not checked".into(); MAX_PEERS + 1],
        };
        assert_eq!(
            blocked(some_peer(), &req).unwrap_err(),
            FaultError::TooManyPeers(MAX_PEERS + 1)
        );
        let req = DelayRequest {
            delays: vec![
                PeerDelay {
                    peer: "not checked".into(),
                    delay_ms: 1,
                };
                MAX_PEERS + 1
            ],
        };
        assert_eq!(
            delays(some_peer(), &req).unwrap_err(),
            FaultError::TooManyPeers(MAX_PEERS + 1)
        );
    }

    #[test]
    fn delays_are_bounded_and_kept_per_peer() {
        let (me, a, b) = (some_peer(), some_peer(), some_peer());
        let req = DelayRequest {
            delays: vec![
                PeerDelay {
                    peer: a.to_string(),
                    delay_ms: MAX_DELAY_MS,
                },
                PeerDelay {
                    peer: b.to_string(),
                    delay_ms: 0,
                },
            ],
        };
        let got = delays(me, &req).unwrap();
        assert_eq!(got[&a], Duration::from_millis(MAX_DELAY_MS));
        assert_eq!(got[&b], Duration::ZERO);
        let long = DelayRequest {
            delays: vec![PeerDelay {
                peer: a.to_string(),
                delay_ms: MAX_DELAY_MS + 1,
            }],
        };
        assert_eq!(
            delays(me, &long).unwrap_err(),
            FaultError::DelayTooLong {
                index: 0,
                delay_ms: MAX_DELAY_MS + 1
            }
        );
    }
}
