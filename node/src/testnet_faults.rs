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
//! | `PUT /v1/testnet/delays` | [`DelayRequest`] | hold what is read from these peers for their delay, with their loss modelled as retransmission delay; from every other peer neither ([`crate::testnet_delay::set`]) |
//!
//! Without the flag neither route exists (404) and the transport is the ordinary one. This
//! module checks the bodies: every peer id must parse, none may repeat or be the node itself,
//! at most [`MAX_PEERS`] of them, each delay at most [`MAX_DELAY_MS`], each loss finite and from
//! 0 up to, not including, 1; the admin API caps a body at [`MAX_BODY_BYTES`] before it is
//! parsed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use crate::testnet_delay::{Link, LinkError};

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
    /// Share of packets from it taken as lost, `0 ≤ loss < 1` (default 0): a chunk read with
    /// a lost segment is held one retransmission timeout longer
    /// ([`crate::testnet_delay::Link`]); nothing is dropped.
    #[serde(default)]
    pub loss: f64,
    /// Seed of this peer's loss draws, so that a run can repeat them; a random one when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// `PUT /v1/testnet/delays`: every peer's delay (peers not named get none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayRequest {
    /// The delays.
    pub delays: Vec<PeerDelay>,
}

/// Why a fault request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    /// A loss that is not finite, or not from 0 up to (not including) 1.
    #[error("peer {index}: loss {loss} is not a share from 0 up to (not including) 1")]
    BadLoss {
        /// Its position.
        index: usize,
        /// The loss asked for.
        loss: f64,
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

/// The links (delay and loss) node `local` is asked to read each peer through.
///
/// # Errors
///
/// As [`blocked`], and [`FaultError::DelayTooLong`] or [`FaultError::BadLoss`].
pub fn delays(local: PeerId, req: &DelayRequest) -> Result<HashMap<PeerId, Link>, FaultError> {
    if req.delays.len() > MAX_PEERS {
        return Err(FaultError::TooManyPeers(req.delays.len()));
    }
    let mut seen = HashSet::with_capacity(req.delays.len());
    let mut out = HashMap::with_capacity(req.delays.len());
    for (i, d) in req.delays.iter().enumerate() {
        let peer = peer_at(i, &d.peer, local, &mut seen)?;
        let seed = d.seed.unwrap_or_else(rand::random);
        let link =
            Link::new(Duration::from_millis(d.delay_ms), d.loss, seed).map_err(|e| match e {
                LinkError::DelayTooLong(_) => FaultError::DelayTooLong {
                    index: i,
                    delay_ms: d.delay_ms,
                },
                LinkError::BadLoss(loss) => FaultError::BadLoss { index: i, loss },
            })?;
        out.insert(peer, link);
    }
    Ok(out)
}

/// TESTNET ONLY: ends this process (with `SIGTERM`, which `cix node run` answers by stopping
/// cleanly) when its parent, the process `parent`, ends, however it ends, so that a killed
/// `cix-testnet` leaves no nodes behind. `cix node run --exit-with-parent PID` calls it.
///
/// # Errors
///
/// When the kernel refuses to watch the parent, or the parent is already gone (this process
/// was handed to another), so the caller stops at once.
pub fn exit_with_parent(parent: u32) -> std::result::Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getppid, set_parent_process_death_signal, Signal};
        set_parent_process_death_signal(Some(Signal::TERM))
            .map_err(|e| format!("cannot ask to be stopped with the parent process: {e}"))?;
        // The parent may have ended before the line above: then no signal will come.
        let now = getppid().map_or(0, |p| p.as_raw_nonzero().get().unsigned_abs());
        if now != parent {
            return Err(format!(
                "the parent process {parent} is gone (the parent is now {now})"
            ));
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = parent;
        Ok(())
    }
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
                    loss: 0.0,
                    seed: None,
                };
                MAX_PEERS + 1
            ],
        };
        assert_eq!(
            delays(some_peer(), &req).unwrap_err(),
            FaultError::TooManyPeers(MAX_PEERS + 1)
        );
    }

    fn delay(peer: PeerId, delay_ms: u64, loss: f64, seed: Option<u64>) -> PeerDelay {
        PeerDelay {
            peer: peer.to_string(),
            delay_ms,
            loss,
            seed,
        }
    }

    #[test]
    fn delays_are_bounded_and_kept_per_peer() {
        let (me, a, b) = (some_peer(), some_peer(), some_peer());
        let req = DelayRequest {
            delays: vec![delay(a, MAX_DELAY_MS, 0.0, None), delay(b, 0, 0.0, None)],
        };
        let got = delays(me, &req).unwrap();
        assert_eq!(got[&a].delay(), Duration::from_millis(MAX_DELAY_MS));
        assert_eq!(got[&b].delay(), Duration::ZERO);
        assert!(got[&b].is_none());
        let long = DelayRequest {
            delays: vec![delay(a, MAX_DELAY_MS + 1, 0.0, None)],
        };
        assert_eq!(
            delays(me, &long).unwrap_err(),
            FaultError::DelayTooLong {
                index: 0,
                delay_ms: MAX_DELAY_MS + 1
            }
        );
    }

    #[test]
    fn a_loss_must_be_a_finite_share_below_one_and_its_seed_is_kept() {
        let (me, a, b) = (some_peer(), some_peer(), some_peer());
        let req = DelayRequest {
            delays: vec![delay(a, 50, 0.25, Some(9)), delay(b, 0, 0.0, None)],
        };
        let got = delays(me, &req).unwrap();
        assert_eq!(
            got[&a],
            Link::new(Duration::from_millis(50), 0.25, 9).unwrap()
        );
        assert_eq!(got[&b].loss(), 0.0);
        for bad in [1.0, 1.5, -0.01, f64::NAN, f64::INFINITY] {
            let req = DelayRequest {
                delays: vec![delay(b, 0, 0.0, None), delay(a, 50, bad, None)],
            };
            let e = delays(me, &req).unwrap_err();
            assert!(
                matches!(e, FaultError::BadLoss { index: 1, loss } if loss.to_bits() == bad.to_bits()),
                "{e:?}"
            );
            assert!(e.to_string().starts_with("peer 1: loss"), "{e}");
        }
        // The body's own fields: `loss` and `seed` may be left out, nothing else added.
        let parsed: DelayRequest = serde_json::from_str(&format!(
            r#"{{"delays": [{{"peer": "{a}", "delay_ms": 5}}]}}"#
        ))
        .unwrap();
        assert_eq!((parsed.delays[0].loss, parsed.delays[0].seed), (0.0, None));
        assert!(serde_json::from_str::<DelayRequest>(&format!(
            r#"{{"delays": [{{"peer": "{a}", "delay_ms": 5, "drop": 0.1}}]}}"#
        ))
        .is_err());
    }
}
