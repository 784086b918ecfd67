//! Witnessed heads on `/cix/witness/1` (ISO 37156 9.4 accountability without a central
//! authority): every `audit_witness_secs` a node sends each connected peer its signed log head
//! (`cix/head@1`); the peer keeps it and answers with its counter-signature (`cix/witness@1`),
//! which the node keeps in turn. Later anyone can ask a peer which heads of a node it holds
//! (`Held`): since the node signed them itself, a node that rewrote or truncated its log
//! contradicts its own signature (`cix_protocol::audit::check_witnessed`).
//!
//! One request and one response per stream, each a length-prefixed canonical CBOR message
//! within `MAX_WITNESS_REQUEST_BYTES` / `MAX_WITNESS_RESPONSE_BYTES` (`specs/audit.md`).

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use cix_protocol::audit::{
    Head, Vouched, Witness, WitnessRequest, WitnessResponse, WITNESS_PROTOCOL,
};
use cix_protocol::identity::Did;
use cix_protocol::limits::{
    MAX_WITNESS_HEADS, MAX_WITNESS_REQUEST_BYTES, MAX_WITNESS_RESPONSE_BYTES,
};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use serde::Serialize;
use tracing::{debug, warn};

use crate::node::{did_of_peer, peer_of_did, Node, Shared};

/// How long one witness exchange may take.
pub const WITNESS_TIMEOUT: Duration = Duration::from_secs(10);
/// Most witness requests served at once; more are dropped.
pub const MAX_CONCURRENT_WITNESS: usize = 16;

fn protocol() -> StreamProtocol {
    StreamProtocol::new(WITNESS_PROTOCOL)
}

async fn read_frame<R: futures::AsyncRead + Unpin>(io: &mut R, limit: usize) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        bail!("message of {len} bytes exceeds the limit of {limit}");
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<W: futures::AsyncWrite + Unpin>(io: &mut W, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| anyhow!("message too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await?;
    Ok(())
}

/// Serves `/cix/witness/1` and, every `audit_witness_secs` (0: never), exchanges heads with
/// every connected peer.
///
/// # Errors
///
/// If the protocol cannot be registered.
pub fn spawn(node: Node) -> Result<tokio::task::JoinHandle<()>> {
    let mut control = node.control();
    let mut incoming = control
        .accept(protocol())
        .map_err(|e| anyhow!("cannot accept witness requests: {e}"))?;
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_WITNESS));
    let every = node.shared.config.audit_witness_secs;
    Ok(tokio::spawn(async move {
        let mut stopping = node.shared.stopping.clone();
        let period = Duration::from_secs(every.max(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                next = incoming.next() => {
                    let Some((peer, mut stream)) = next else { break };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        warn!(%peer, "witness request dropped: too many at once");
                        continue;
                    };
                    let shared = node.shared.clone();
                    tokio::spawn(async move {
                        let served =
                            tokio::time::timeout(WITNESS_TIMEOUT, answer(&shared, peer, &mut stream))
                                .await;
                        match served {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => debug!(%peer, error = %e, "witness request failed"),
                            Err(_) => debug!(%peer, "witness request timed out"),
                        }
                        let _ = stream.close().await;
                        drop(permit);
                    });
                }
                _ = ticker.tick(), if every > 0 => {
                    let node = node.clone();
                    tokio::spawn(async move {
                        match exchange_all(&node).await {
                            Ok(r) => debug!(peers = r.peers, witnessed = r.witnessed, "heads exchanged"),
                            Err(e) => debug!(error = %e, "head exchange failed"),
                        }
                    });
                }
                _ = stopping.changed() => break,
            }
        }
    }))
}

async fn answer(shared: &Shared, peer: PeerId, stream: &mut libp2p::Stream) -> Result<()> {
    let bytes = read_frame(stream, MAX_WITNESS_REQUEST_BYTES).await?;
    let response = match WitnessRequest::decode(&bytes) {
        Err(e) => {
            warn!(%peer, error = %e, "malformed witness request");
            WitnessResponse::Refused(format!("malformed request: {e}"))
        }
        Ok(WitnessRequest::Head(head)) => witness(shared, &peer, &head),
        Ok(WitnessRequest::Held(subject)) => match shared.audit.held_for(&subject) {
            Ok(heads) => WitnessResponse::Heads(
                heads
                    .into_iter()
                    .take(MAX_WITNESS_HEADS)
                    .map(serde_bytes::ByteBuf::from)
                    .collect(),
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot read held heads");
                WitnessResponse::Refused("the witness could not read its store".into())
            }
        },
    };
    let out = response.encode().map_err(|e| anyhow!("{e}"))?;
    write_frame(stream, &out).await
}

/// Keeps a peer's head and counter-signs it; only a peer's own head is accepted.
fn witness(shared: &Shared, peer: &PeerId, bytes: &[u8]) -> WitnessResponse {
    let head = match Head::decode(bytes) {
        Ok(h) => h,
        Err(e) => {
            warn!(%peer, error = %e, "invalid head");
            return WitnessResponse::Refused(format!("invalid head: {e}"));
        }
    };
    if did_of_peer(peer) != Some(head.value.iss) {
        warn!(%peer, "head of another node sent to be witnessed");
        return WitnessResponse::Refused("only a node's own head is witnessed".into());
    }
    if let Err(e) = shared.audit.hold_head(&head) {
        warn!(%peer, error = %e, "head not kept");
        return WitnessResponse::Refused(format!("head not kept: {e}"));
    }
    match shared.audit.countersign(&head.value) {
        Ok(w) => {
            debug!(%peer, seq = head.value.seq, "head witnessed");
            WitnessResponse::Witnessed(w.bytes)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot counter-sign");
            WitnessResponse::Refused("the witness could not sign".into())
        }
    }
}

async fn ask(node: &Node, peer: PeerId, req: &WitnessRequest) -> Result<WitnessResponse> {
    let go = async {
        let mut stream = node
            .control()
            .open_stream(peer, protocol())
            .await
            .map_err(|e| anyhow!("cannot open a witness stream: {e}"))?;
        write_frame(&mut stream, &req.encode().map_err(|e| anyhow!("{e}"))?).await?;
        let bytes = read_frame(&mut stream, MAX_WITNESS_RESPONSE_BYTES).await?;
        let _ = stream.close().await;
        WitnessResponse::decode(&bytes).map_err(|e| anyhow!("{e}"))
    };
    tokio::time::timeout(WITNESS_TIMEOUT, go)
        .await
        .map_err(|_| anyhow!("peer {peer} did not answer in time"))?
}

/// What one round of head exchange did.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// Connected cix peers asked.
    pub peers: usize,
    /// Counter-signatures received and kept.
    pub witnessed: usize,
    /// The head sent.
    pub seq: u64,
}

/// Sends this node's signed head to every connected peer and keeps the counter-signatures.
///
/// # Errors
///
/// If the node has stopped or the head cannot be signed.
pub async fn exchange_all(node: &Node) -> Result<Exchange> {
    let head = node.shared.audit.signed_head()?;
    let mut result = Exchange {
        peers: 0,
        witnessed: 0,
        seq: head.value.seq,
    };
    if head.value.seq == 0 {
        return Ok(result);
    }
    let req = WitnessRequest::Head(head.bytes.clone());
    for info in node.peers().await? {
        let Ok(peer) = info.peer_id.parse::<PeerId>() else {
            continue;
        };
        let Some(witness_did) = did_of_peer(&peer) else {
            continue;
        };
        result.peers += 1;
        match ask(node, peer, &req).await {
            Ok(WitnessResponse::Witnessed(bytes)) => match Witness::decode(&bytes) {
                Ok(w)
                    if w.value.iss == witness_did
                        && w.value.subject == head.value.iss
                        && w.value.seq == head.value.seq
                        && w.value.hash == head.value.hash =>
                {
                    node.shared.audit.keep_witness(&w)?;
                    result.witnessed += 1;
                }
                Ok(_) => warn!(%peer, "counter-signature of another head"),
                Err(e) => warn!(%peer, error = %e, "invalid counter-signature"),
            },
            Ok(WitnessResponse::Refused(why)) => debug!(%peer, %why, "head not witnessed"),
            Ok(_) => warn!(%peer, "unexpected answer to a head"),
            Err(e) => debug!(%peer, error = %e, "witness exchange failed"),
        }
    }
    Ok(result)
}

/// Heads vouched for a node's log, gathered for `cix audit verify --witnesses`.
#[derive(Debug, Clone, Serialize)]
pub struct Gathered {
    /// The node whose log they are about.
    pub subject: String,
    /// Every head found, each signed by `subject` (held by peers or here) or counter-signed
    /// by a peer (receipts kept by `subject`).
    pub heads: Vec<Vouched>,
    /// Peers asked.
    pub asked: usize,
    /// Peers that answered.
    pub answered: usize,
}

/// Gathers the heads of `subject`'s log that others vouch for: heads it signed that this node
/// or a connected peer holds, and, when `subject` is this node, the counter-signatures kept
/// here. Each is verified; invalid ones are skipped with a warning.
///
/// # Errors
///
/// If the node has stopped.
pub async fn gather(node: &Node, subject: &Did) -> Result<Gathered> {
    let shared = &node.shared;
    let me = shared.did();
    let mut out = Gathered {
        subject: subject.to_string(),
        heads: Vec::new(),
        asked: 0,
        answered: 0,
    };
    let take_head =
        |bytes: &[u8], source: String, heads: &mut Vec<Vouched>| match Head::decode(bytes) {
            Ok(h) if h.value.iss == *subject => heads.push(Vouched {
                seq: h.value.seq,
                hash: h.value.hash,
                source,
            }),
            Ok(_) => warn!(%source, "a held head is signed by another node"),
            Err(e) => warn!(%source, error = %e, "a held head is invalid"),
        };
    if *subject == me {
        for bytes in shared.audit.witnesses()? {
            match Witness::decode(&bytes) {
                Ok(w) if w.value.subject == me => out.heads.push(Vouched {
                    seq: w.value.seq,
                    hash: w.value.hash,
                    source: format!("counter-signature by {}", w.value.iss),
                }),
                Ok(_) => warn!("a kept counter-signature is about another node"),
                Err(e) => warn!(error = %e, "a kept counter-signature is invalid"),
            }
        }
    } else {
        for bytes in shared.audit.held_for(subject)? {
            take_head(&bytes, format!("{me} (this node)"), &mut out.heads);
        }
    }
    let subject_peer = peer_of_did(subject).ok();
    for info in node.peers().await? {
        let Ok(peer) = info.peer_id.parse::<PeerId>() else {
            continue;
        };
        if Some(peer) == subject_peer {
            continue;
        }
        let Some(did) = did_of_peer(&peer) else {
            continue;
        };
        out.asked += 1;
        match ask(node, peer, &WitnessRequest::Held(*subject)).await {
            Ok(WitnessResponse::Heads(heads)) => {
                out.answered += 1;
                for h in heads {
                    take_head(&h, did.to_string(), &mut out.heads);
                }
            }
            Ok(other) => debug!(%peer, answer = ?other, "no heads from peer"),
            Err(e) => debug!(%peer, error = %e, "peer did not answer"),
        }
    }
    Ok(out)
}
