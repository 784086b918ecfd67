//! Dataset transfer on `/cix/transfer/2`: the server (owner or custodian) and the fetch.
//!
//! The requester opens a stream, sends a [`TransferRequest`] (with a UCAN invocation and its
//! delegation unless the data is open), and reads a [`TransferHeader`] followed by the bytes.
//! The receiver hashes while it writes to a temporary file beside the target and renames it
//! into place only when length and BLAKE3 match the catalogue entry (ISO 37156 3.2.4
//! integrity, 7.3.2 authenticity); a wrong byte never reaches the target path.

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cix_protocol::catalogue::{DatasetId, Entry, Level, SignedEntry};
use cix_protocol::caveats;
use cix_protocol::content::ContentHash;
use cix_protocol::identity::Did;
use cix_protocol::limits;
use cix_protocol::profile::Profile;
use cix_protocol::ucan::{self, command_covers, Cid, Delegation, Invocation};
use cix_protocol::wire::{
    AccessRequest, AccessResponse, DenyCode, Projection, TransferHeader, TransferRequest,
    TRANSFER_PROTOCOL,
};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::access::now;
use crate::codec::{read_message, write_message};
use crate::node::{did_of_peer, peer_of_did, Node, Shared};
use crate::rules::{self, Refusal};
use crate::store::OwnDataset;

/// Most transfers a node serves at once; further requests are refused as busy (four
/// receivers with a full window, `limits::TRANSFER_WINDOW`, each).
pub const MAX_CONCURRENT_TRANSFERS: usize = 32;
const _: () = assert!(MAX_CONCURRENT_TRANSFERS >= 4 * limits::TRANSFER_WINDOW);
/// How long a requester has to send its request after opening a stream.
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause in a transfer before either side gives up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Lifetime of the invocation a requester signs for one fetch.
pub const INVOCATION_TTL_SECS: i64 = 120;
/// Size of the copy buffer.
const CHUNK: usize = 256 * 1024;

fn protocol() -> StreamProtocol {
    StreamProtocol::new(TRANSFER_PROTOCOL)
}

/// Starts accepting transfer streams; the task ends when the node stops.
///
/// # Errors
///
/// If the protocol is already registered.
pub fn spawn_server(node: Node) -> Result<tokio::task::JoinHandle<()>> {
    let mut control = node.control();
    let mut incoming = control
        .accept(protocol())
        .map_err(|e| anyhow!("cannot accept transfers: {e}"))?;
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_TRANSFERS));
    let per_peer = crate::guard::PeerSlots::default();
    let mut rates = crate::guard::PeerRates::per_window(limits::MAX_TRANSFER_REQUESTS_PER_WINDOW);
    // Announce again the copies held as a custodian (provider records are not kept on disk).
    let announcer = node.clone();
    tokio::spawn(async move {
        let held = announcer
            .shared
            .store
            .records::<Held>(HELD_TREE)
            .unwrap_or_default();
        for (hex, copy) in held {
            let Ok(content) = hex.parse::<ContentHash>() else {
                continue;
            };
            // Shared data only while a serve delegation allows serving it (transfer.md §6).
            let entry = copy
                .dataset
                .parse::<DatasetId>()
                .ok()
                .and_then(|id| announcer.shared.store.latest_entry(&id).ok().flatten());
            let announce = entry.is_some_and(|e| {
                crate::custody::may_announce(
                    &announcer.shared,
                    &e.entry.iss,
                    &e.entry.dataset,
                    e.entry.level() == Level::Open,
                )
            });
            if announce {
                let _ = announcer.provide(provider_key(&content)).await;
            }
        }
    });
    Ok(tokio::spawn(async move {
        let mut stopping = node.shared.stopping.clone();
        loop {
            let next = tokio::select! {
                next = incoming.next() => next,
                _ = stopping.changed() => None,
            };
            let Some((peer, mut stream)) = next else {
                break;
            };
            // Issue 8: a rate and a share of the slots per peer, so that one peer cannot take
            // every slot from the others.
            let admitted = if !rates.allow(peer, std::time::Instant::now()) {
                Err(format!(
                    "more than {} transfer requests in {} s from this peer; try later",
                    limits::MAX_TRANSFER_REQUESTS_PER_WINDOW,
                    limits::RATE_WINDOW_SECS
                ))
            } else if let Some(slot) = per_peer.try_take(peer, limits::MAX_TRANSFERS_PER_PEER) {
                slots
                    .clone()
                    .try_acquire_owned()
                    .map(|p| (p, slot))
                    .map_err(|_| {
                        "the owner is serving too many transfers; try again shortly".to_string()
                    })
            } else {
                Err(format!(
                    "this peer already has {} transfers under way; try again shortly",
                    limits::MAX_TRANSFERS_PER_PEER
                ))
            };
            match admitted {
                Ok((permit, slot)) => {
                    let node = node.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve(&node.shared, peer, &mut stream).await {
                            debug!(%peer, error = %e, "transfer ended with an error");
                            crate::audit::refused(&node.shared, &peer, None, &e.to_string());
                        }
                        let _ = stream.close().await;
                        drop(permit);
                        drop(slot);
                    });
                }
                Err(reason) => {
                    warn!(%peer, %reason, "transfer refused as busy");
                    tokio::spawn(async move {
                        let header = TransferHeader::Refused {
                            code: DenyCode::Busy,
                            reason,
                        };
                        // Closed, not dropped, so that the refusal reaches the peer before
                        // the stream ends.
                        let _ = tokio::time::timeout(REQUEST_READ_TIMEOUT, async {
                            write_message(&mut stream, &header, limits::MAX_TRANSFER_HEADER_BYTES)
                                .await?;
                            stream.close().await
                        })
                        .await;
                    });
                }
            }
        }
    }))
}

async fn serve(shared: &Shared, peer: PeerId, stream: &mut libp2p::Stream) -> Result<()> {
    let req: TransferRequest = tokio::time::timeout(
        REQUEST_READ_TIMEOUT,
        read_message(stream, limits::MAX_TRANSFER_REQUEST_BYTES),
    )
    .await
    .map_err(|_| anyhow!("peer sent no request in time"))?
    .map_err(|e| {
        warn!(%peer, error = %e, "malformed transfer request");
        e
    })?;
    let (own, plan) = match authorise(shared, &peer, &req) {
        Ok(ok) => ok,
        Err((code, reason)) => return refuse(shared, peer, &req, stream, code, reason).await,
    };
    match &own.custody {
        Some((entry, serve)) => crate::audit::custodian_serving(shared, &peer, &req, entry, serve),
        None => crate::audit::serving(shared, &peer, &req),
    }
    let sent = match plan {
        Some(plan) => {
            let path = own.path.clone();
            serve_projection(shared, peer, &req, stream, &own, plan, path).await?
        }
        None => serve_ranges(shared, peer, &req, stream, &own).await?,
    };
    // ISO 37156 8.3.4: what was served, so that the receiver's receipt can be checked.
    if let Some(sent) = sent {
        crate::receipts::served(shared, &peer, &req, sent);
    }
    Ok(())
}

/// Streams the requested ranges as the verified encoding (transfer.md §4); the bytes sent, or
/// `None` when the request was refused.
async fn serve_ranges(
    shared: &Shared,
    peer: PeerId,
    req: &TransferRequest,
    stream: &mut libp2p::Stream,
    own: &Served,
) -> Result<Option<u64>> {
    let ranges = match req.checked_ranges(own.bytes) {
        Ok(r) => r,
        Err(why) => {
            let reason = format!("bad ranges: {why}");
            return refuse(shared, peer, req, stream, DenyCode::BadRequest, reason)
                .await
                .map(|()| None);
        }
    };
    // The outboard: built at publish or after a fetch, rebuilt here when missing. Building
    // it also proves the held copy still hashes to the content id.
    let (blobs, content, data, size) = (
        shared.home.blobs(),
        own.content,
        own.path.clone(),
        own.bytes,
    );
    let built = tokio::task::spawn_blocking(move || {
        crate::verified::ensure_outboard(&blobs, &content, &data, size)
    })
    .await
    .map_err(|e| anyhow!("outboard task failed: {e}"))?;
    let obao = match built {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(dataset = %own.dataset, error = %e, "cannot serve a held copy");
            let reason = "this node's copy of that content is unusable".to_string();
            return refuse(shared, peer, req, stream, DenyCode::NotHeld, reason)
                .await
                .map(|()| None);
        }
    };
    let file = std::fs::File::open(&own.path)
        .with_context(|| format!("{} is missing", own.path.display()))?;
    let outboard = crate::verified::open_outboard(&obao, &own.content, own.bytes)?;
    let length: u64 = ranges.iter().map(|(a, b)| b - a).sum();
    let header = TransferHeader::Ok {
        size: own.bytes,
        length,
        projection: None,
    };
    write_message(stream, &header, limits::MAX_TRANSFER_HEADER_BYTES).await?;
    let mut out = crate::verified::StreamOut::new(stream, IDLE_TIMEOUT, serve_rate());
    // Not validated here: the receiver verifies every chunk group against the content id
    // (ISO 37156 7.3.2), so a copy that rotted on disk is caught there, within one group.
    bao_tree::io::fsm::encode_ranges(
        crate::verified::BlockAt::new(Arc::new(file), crate::verified::SERVE_READ_BLOCK),
        outboard,
        &crate::verified::chunk_ranges(&ranges),
        &mut out,
    )
    .await
    .map_err(|e| anyhow!("sending ranges: {e}"))?;
    out.finish().await?;
    shared.stats.served(length);
    info!(%peer, dataset = %own.dataset, bytes = length, ranges = ranges.len(),
        custodian = !own.owner, "transfer served");
    crate::audit::served(shared, &peer, req, length, own.content);
    Ok(Some(length))
}

/// The pace this node serves at, bytes per second, from `CIX_SERVE_RATE` (unset: unpaced). An
/// operator setting for sharing a thin uplink; the tests use it to stop a transfer midway.
fn serve_rate() -> Option<u64> {
    std::env::var("CIX_SERVE_RATE")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|r| *r > 0)
}

/// What an authorised request is served from: an own dataset's blob, or a copy this node
/// holds as a custodian.
#[derive(Debug, Clone)]
struct Served {
    dataset: DatasetId,
    content: ContentHash,
    bytes: u64,
    path: PathBuf,
    owner: bool,
    /// Shared data served as a custodian: the entry checked and the serve delegation.
    custody: Option<(Entry, Cid)>,
}

/// Name of the store tree of copies held as a custodian, keyed by content id hex.
pub const HELD_TREE: &str = "held";
/// Name of the store tree of resumable transfers, keyed by `dataset/content`.
pub const TRANSFERS_TREE: &str = "transfers";

/// A verified whole copy this node fetched and may serve as a custodian (open data only).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Held {
    /// Dataset id.
    pub dataset: String,
    /// Where the copy is.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
}

/// A custodian's checks (transfer.md §6): only the content of the dataset's current entry
/// that it holds whole and verified, not withdrawn; open data to anyone, shared data only
/// under the owner's serve delegation to a requester the owner granted (ISO 37156 8.2.2).
fn custodian_source(
    shared: &Shared,
    peer: &PeerId,
    req: &TransferRequest,
) -> std::result::Result<Served, Refusal> {
    let internal = |e: anyhow::Error| {
        tracing::error!(error = %e, "store failure while checking a held copy");
        (
            DenyCode::Busy,
            "this node could not check the request".to_string(),
        )
    };
    let unknown = || {
        (
            DenyCode::UnknownDataset,
            format!("dataset {} is not held here", req.dataset),
        )
    };
    let held: Held = shared
        .store
        .record(HELD_TREE, &req.content.to_hex())
        .map_err(internal)?
        .filter(|h: &Held| h.dataset == req.dataset.to_string())
        .ok_or_else(unknown)?;
    let signed = shared
        .store
        .latest_entry(&req.dataset)
        .map_err(internal)?
        .ok_or_else(unknown)?;
    if signed.entry.level() == Level::Closed {
        return Err((
            DenyCode::Closed,
            "the dataset is closed (ISO 37156 5.5.2)".into(),
        ));
    }
    if signed.entry.held().map(|(_, c, _)| c).ok() != Some(req.content) {
        return Err((
            DenyCode::NotHeld,
            "that content is not the dataset's current version".into(),
        ));
    }
    if let Some(w) = shared.store.withdrawal_of(&signed).map_err(internal)? {
        return Err((
            DenyCode::Withdrawn,
            format!(
                "dataset {} (version {}) was withdrawn by its owner",
                req.dataset, w.withdrawal.version
            ),
        ));
    }
    if std::fs::metadata(&held.path).map(|m| m.len()).ok() != Some(held.size) {
        warn!(dataset = %req.dataset, path = %held.path.display(), "a held copy is gone or changed size");
        return Err((
            DenyCode::NotHeld,
            "this node no longer holds that content".into(),
        ));
    }
    let custody = if signed.entry.level() == Level::Open {
        None
    } else {
        Some(custodian_checks(shared, peer, req, &signed.entry)?)
    };
    Ok(Served {
        dataset: req.dataset,
        content: req.content,
        bytes: held.size,
        path: held.path,
        owner: false,
        custody: custody.map(|serve| (signed.entry.clone(), serve)),
    })
}

/// Shared data at a custodian (transfer.md §6 checks s1 to s4): this node's serve delegation
/// from the owner, then the requester's profile, jurisdiction and chain as the owner checks
/// them (ISO 37156 8.2.2 a, b, h; 7.3.2), with this node as the executor. Returns the serve
/// delegation's CID.
fn custodian_checks(
    shared: &Shared,
    peer: &PeerId,
    req: &TransferRequest,
    entry: &Entry,
) -> std::result::Result<Cid, Refusal> {
    let t = now();
    let serve = crate::custody::serve_grant(shared, &entry.iss, &req.dataset, t)?;
    let requester = did_of_peer(peer).ok_or((
        DenyCode::BadRequest,
        "peer has no ed25519 identity".to_string(),
    ))?;
    let profile = rules::requester_profile(shared, &requester, req.profile.as_deref(), t)?;
    rules::check_jurisdiction(entry, profile.as_ref())?;
    let checked = check_invocation(shared, &requester, req, entry, profile.as_ref());
    shared.metrics.token_check(checked.is_ok());
    if checked?.is_some() {
        return Err((
            DenyCode::NotHeld,
            "a projection on some fields is served by the dataset's owner only".into(),
        ));
    }
    debug!(%peer, dataset = %req.dataset, serve = %serve.cid, "serving shared data as custodian");
    Ok(serve.cid)
}

async fn refuse(
    shared: &Shared,
    peer: PeerId,
    req: &TransferRequest,
    stream: &mut libp2p::Stream,
    code: DenyCode,
    reason: String,
) -> Result<()> {
    warn!(%peer, dataset = %req.dataset, ?code, %reason, "transfer refused");
    crate::audit::refused(shared, &peer, Some(req), &reason);
    shared.stats.refused();
    let header = TransferHeader::Refused { code, reason };
    write_message(stream, &header, limits::MAX_TRANSFER_HEADER_BYTES).await?;
    Ok(())
}

/// Sends `length` bytes of `file` from where it stands.
async fn send_file(
    stream: &mut libp2p::Stream,
    file: &mut tokio::fs::File,
    length: u64,
    path: &Path,
) -> Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < length {
        let want = CHUNK.min((length - sent) as usize);
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            bail!("blob {} is shorter than recorded", path.display());
        }
        tokio::time::timeout(IDLE_TIMEOUT, stream.write_all(&buf[..n]))
            .await
            .map_err(|_| anyhow!("receiver stalled"))??;
        sent += n as u64;
    }
    stream.flush().await?;
    Ok(sent)
}

/// Which columns of the dataset an authorised transfer may carry, when the invocation asked for
/// some fields only (ISO 37156 8.2.2 c).
#[derive(Debug, Clone)]
struct Plan {
    /// Column numbers, ascending.
    columns: Vec<usize>,
    /// Their dictionary names, in that order: what the header states.
    fields: Vec<String>,
    /// Fields the dictionary describes, which the stored CSV's header must have.
    width: usize,
}

/// Serves the projection of the dataset on `plan`'s columns: projected into a temporary file
/// while hashed, its BLAKE3 and length stated in the header, then sent.
async fn serve_projection(
    shared: &Shared,
    peer: PeerId,
    req: &TransferRequest,
    stream: &mut libp2p::Stream,
    own: &Served,
    plan: Plan,
    path: PathBuf,
) -> Result<Option<u64>> {
    let tmp_dir = shared.home.tmp();
    let (columns, width) = (plan.columns.clone(), plan.width);
    let blob = path.clone();
    let made = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&tmp_dir)?;
        crate::projection::project(&blob, &tmp_dir, &columns, width)
    })
    .await
    .map_err(|e| anyhow!("projection task failed: {e}"))?;
    let projected = match made {
        Ok(p) => p,
        Err(e @ crate::projection::ProjectError::RowTooLong { .. }) => {
            let reason = format!("cannot serve a projection of this dataset: {e}");
            refuse(shared, peer, req, stream, DenyCode::BadRequest, reason).await?;
            return Ok(None);
        }
        Err(e) => {
            tracing::error!(dataset = %own.dataset, error = %e, "cannot project an own dataset");
            let reason = "the owner's node could not project the dataset".to_string();
            refuse(shared, peer, req, stream, DenyCode::Busy, reason).await?;
            return Ok(None);
        }
    };
    let header = TransferHeader::Ok {
        size: own.bytes,
        length: projected.size,
        projection: Some(Projection {
            fields: plan.fields.clone(),
            content: projected.content,
            size: projected.size,
        }),
    };
    write_message(stream, &header, limits::MAX_TRANSFER_HEADER_BYTES).await?;
    let mut file = tokio::fs::File::open(projected.file.path())
        .await
        .context("the projection vanished")?;
    let sent = send_file(stream, &mut file, projected.size, projected.file.path()).await?;
    crate::audit::served(shared, &peer, req, sent, projected.content);
    drop(projected);
    shared.stats.served(sent);
    info!(%peer, dataset = %own.dataset, bytes = sent, fields = plan.fields.len(),
        "projection served");
    Ok(Some(sent))
}

/// Decides whether `peer` may have the content it asks for.
fn authorise(
    shared: &Shared,
    peer: &PeerId,
    req: &TransferRequest,
) -> std::result::Result<(Served, Option<Plan>), Refusal> {
    let internal = |e: anyhow::Error| {
        tracing::error!(error = %e, "store failure while authorising a transfer");
        (
            DenyCode::Busy,
            "the owner's node could not check the request".to_string(),
        )
    };
    let Some(own) = shared.store.own(&req.dataset).map_err(internal)? else {
        return custodian_source(shared, peer, req).map(|s| (s, None));
    };
    let served = |own: &OwnDataset| Served {
        dataset: own.dataset,
        content: own.content,
        bytes: own.bytes,
        path: shared.home.blobs().join(own.content.to_hex()),
        owner: true,
        custody: None,
    };
    // Closed first: a prober must not learn whether a guessed content id is a closed dataset's.
    let level = crate::store::Store::own_level(&own).map_err(internal)?;
    if level != Level::Closed {
        if let Some(why) = crate::withdraw::withdrawn_own(shared, &own).map_err(internal)? {
            return Err((DenyCode::Withdrawn, why));
        }
    }
    if level != Level::Closed && own.content != req.content {
        return Err((
            DenyCode::NotHeld,
            "that content is not the dataset's current version".into(),
        ));
    }
    match level {
        Level::Closed => Err((
            DenyCode::Closed,
            "the dataset is closed (ISO 37156 5.5.2): it never leaves its owner's node".into(),
        )),
        Level::Open => Ok((served(&own), None)),
        Level::SharedPublic | Level::SharedGroup | Level::SharedNamed => {
            let entry = shared
                .store
                .entry(&own.entry)
                .map_err(internal)?
                .ok_or_else(|| internal(anyhow!("own dataset {} has no entry", own.dataset)))?
                .entry;
            let requester = did_of_peer(peer).ok_or((
                DenyCode::BadRequest,
                "peer has no ed25519 identity".to_string(),
            ))?;
            // ISO 37156 8.2.2 h, at the moment the data would leave (DESIGN §7), against the
            // current entry: a grant given before the rule tightened does not escape it.
            let profile =
                rules::requester_profile(shared, &requester, req.profile.as_deref(), now())?;
            rules::check_jurisdiction(&entry, profile.as_ref())?;
            crate::reident::guard_serve(shared, &entry, &own.content)?;
            let checked = check_invocation(shared, &requester, req, &entry, profile.as_ref());
            shared.metrics.token_check(checked.is_ok());
            let plan = checked?;
            Ok((served(&own), plan))
        }
    }
}

/// The invocation must be valid, issued by the connected peer, addressed to us, for fetching
/// exactly this dataset and content, rooted in a delegation we issued, with no revoked link
/// (refused as `revoked`), and never seen before; and what its arguments claim must be true of
/// the requester and the current entry. Returns the projection to serve when it states fields.
fn check_invocation(
    shared: &Shared,
    requester: &Did,
    req: &TransferRequest,
    entry: &Entry,
    profile: Option<&Profile>,
) -> std::result::Result<Option<Plan>, Refusal> {
    let no_grant = |reason: String| (DenyCode::NoGrant, reason);
    let Some(inv) = &req.invocation else {
        return Err(no_grant(
            "this dataset needs a grant: request access first (cix request)".into(),
        ));
    };
    if req.proofs.len() > ucan::MAX_CHAIN_LEN {
        return Err(no_grant("proof chain too long".into()));
    }
    // The validator skips over-limit proofs unhashed and would then call the one named "not
    // presented"; say what is wrong instead.
    if let Some(big) = req.proofs.iter().find(|p| p.len() > ucan::MAX_TOKEN_BYTES) {
        return Err(no_grant(format!(
            "token refused: a proof of {} bytes exceeds the limit of {} bytes",
            big.len(),
            ucan::MAX_TOKEN_BYTES
        )));
    }
    let proofs: Vec<Vec<u8>> = req.proofs.iter().map(|p| p.to_vec()).collect();
    let t = now();
    let v = ucan::validate(inv, &proofs, t).map_err(|e| no_grant(explain_refusal(&e, &proofs)))?;
    let me = shared.did();
    // The owner: this node, or (a custodian, transfer.md §6) the entry's issuer.
    let owner = entry.iss;
    if &v.invocation.iss != requester {
        return Err(no_grant(
            "the invocation was not issued by the connected peer".into(),
        ));
    }
    // The executor is this node: an invocation sent to one source is useless at another.
    if v.invocation.aud.unwrap_or(v.invocation.sub) != me || v.invocation.sub != owner {
        return Err(no_grant(
            "the invocation is addressed to another node".into(),
        ));
    }
    // Republication rights imply fetch: taking the data to republish it is a fetch.
    if v.invocation.cmd != ucan::CMD_FETCH && v.invocation.cmd != ucan::CMD_REPUBLISH {
        return Err(no_grant(format!(
            "the invocation is for {}, not {} or {}",
            v.invocation.cmd,
            ucan::CMD_FETCH,
            ucan::CMD_REPUBLISH
        )));
    }
    let Some(root) = v.chain.first().filter(|root| root.iss == owner) else {
        return Err(no_grant(if owner == me {
            "the grant was not issued by this node".into()
        } else {
            format!("the grant was not issued by the dataset's owner {owner}")
        }));
    };
    // Onward transfer (DESIGN §5, ISO 37156 9.2 e): only an agency given republication rights
    // may pass data on. Every link but the last must therefore carry /cix/data/republish (or
    // more); a plain fetch grant ends the chain.
    if let Some(link) = v.chain[..v.chain.len() - 1]
        .iter()
        .find(|d| !command_covers(&d.cmd, ucan::CMD_REPUBLISH))
    {
        return Err(no_grant(format!(
            "{} passed on a delegation of {} it received from {}, but only republication rights \
             ({}) may be passed on (ISO 37156 9.2 e)",
            link.aud,
            link.cmd,
            link.iss,
            ucan::CMD_REPUBLISH
        )));
    }
    let arg = |k: &str| v.invocation.args.get(k);
    let text = |k: &str| arg(k).and_then(|x| x.as_text()).map(str::to_owned);
    if text(caveats::ARG_DATASET) != Some(req.dataset.to_string())
        || text(caveats::ARG_CONTENT) != Some(req.content.to_hex())
    {
        return Err(no_grant(
            "the invocation names another dataset or content".into(),
        ));
    }
    check_claims(
        root,
        entry,
        profile,
        &text,
        arg(caveats::ARG_RETENTION_DAYS),
    )?;
    let plan = check_fields(&v.chain, arg(caveats::ARG_FIELDS), entry, &req.ranges)?;
    check_revocations(shared, &v)?;
    let exp = v
        .invocation
        .exp
        .unwrap_or(t + ucan::MAX_INVOCATION_TTL_SECS);
    match shared.store.spend_invocation(v.cid.as_bytes(), exp, t) {
        Ok(true) => Ok(plan),
        Ok(false) => Err(no_grant(
            "this invocation was already used (replay refused)".into(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a spent invocation");
            Err(no_grant(
                "the owner's node could not record the invocation".into(),
            ))
        }
    }
}

/// Refuses a chain with a revoked link (DESIGN §5): a revocation of one of its delegations,
/// signed by that delegation's issuer or by anyone upstream of it.
fn check_revocations(
    shared: &Shared,
    v: &ucan::Validated,
) -> std::result::Result<(), (DenyCode, String)> {
    let chain: Vec<(Delegation, ucan::Cid)> = v
        .chain
        .iter()
        .cloned()
        .zip(v.proof_cids().iter().copied())
        .collect();
    for (delegation, cid) in &chain {
        let found = shared.store.revocations_of(cid).map_err(|e| {
            tracing::error!(error = %e, "cannot read revocations");
            (
                DenyCode::Busy,
                "the owner's node could not check revocations".to_string(),
            )
        })?;
        if let Some(r) = found.iter().find(|r| r.breaks(&chain).is_some()) {
            let why = r.reason_suffix();
            return Err((
                DenyCode::Revoked,
                format!(
                    "the delegation {cid} from {} was revoked by {}{why}",
                    delegation.iss, r.revocation.iss
                ),
            ));
        }
    }
    Ok(())
}

/// The invocation's caveat arguments against reality (DESIGN §5): the policy already checked
/// that they match the grant; here they must also match the requester and the current entry.
fn check_claims(
    root: &Delegation,
    entry: &Entry,
    profile: Option<&Profile>,
    text: &dyn Fn(&str) -> Option<String>,
    retention: Option<&ciborium::Value>,
) -> std::result::Result<(), Refusal> {
    let no_grant = |reason: String| Err((DenyCode::NoGrant, reason));
    // Purpose (8.2.2 b): the one this node granted.
    if let Some(granted) = caveats::pinned_text(&root.pol, caveats::ARG_PURPOSE) {
        if text(caveats::ARG_PURPOSE).as_deref() != Some(granted.as_str()) {
            return no_grant(format!(
                "the invocation states another purpose than the one granted ({granted:?})"
            ));
        }
    }
    // Terms (5.5.3): the ones the dataset states now.
    if entry.level() == Level::SharedPublic {
        if let Some(terms) = &entry.iso.terms {
            let current = caveats::terms_hash(terms);
            if text(caveats::ARG_TERMS).as_deref() != Some(current.as_str()) {
                return no_grant(format!(
                    "the invocation does not accept the dataset's current terms (BLAKE3 \
                     {current}); ask again with `cix request ID --accept-terms`"
                ));
            }
        }
    }
    // Jurisdiction (8.2.2 a, h): the one the requester's own signed profile states.
    let claimed = text(caveats::ARG_JURISDICTION);
    if let (Some(claimed), Some(p)) = (&claimed, profile) {
        if claimed != &p.jurisdiction {
            return Err((
                DenyCode::Jurisdiction,
                format!(
                    "the invocation states jurisdiction {claimed}, but your signed profile says {}",
                    p.jurisdiction
                ),
            ));
        }
    }
    if caveats::allowed_jurisdictions(entry).is_some() && claimed.is_none() {
        return Err((
            DenyCode::Jurisdiction,
            "this dataset restricts jurisdictions: the invocation must state yours".into(),
        ));
    }
    // Retention (8.2.2 e): no longer than the entry allows now.
    if let Some(days) = entry.iso.privacy.retention_days {
        let stated = retention.and_then(|v| v.as_integer()).map(i128::from);
        if stated.is_none_or(|n| n < 0 || n > i128::from(days)) {
            return no_grant(format!(
                "this dataset may be kept at most {days} days: the invocation must state \
                 retention_days of at most that"
            ));
        }
    }
    Ok(())
}

/// The fields caveat (ISO 37156 8.2.2 c, 7.1) against the invocation's `fields` and the
/// current entry. The policy already holds the stated fields to those every link permits; this
/// says so in words when it did not, and refuses names the current dictionary lacks, a
/// non-CSV dataset, a dataset too large to project and a projection from a non-zero offset.
fn check_fields(
    chain: &[Delegation],
    stated: Option<&ciborium::Value>,
    entry: &Entry,
    ranges: &[(u64, u64)],
) -> std::result::Result<Option<Plan>, Refusal> {
    let bad = |reason: String| Err((DenyCode::BadRequest, reason));
    let stated = match caveats::stated_fields(stated) {
        Ok(s) => s,
        Err(e) => return bad(format!("the invocation's fields: {e}")),
    };
    let permitted = caveats::permitted_by_all(chain.iter().map(|d| &d.pol));
    let Some(stated) = stated else {
        return match permitted {
            None => Ok(None),
            Some(p) => Err((
                DenyCode::NoGrant,
                rules::clip(format!(
                    "this grant permits only the fields {} (ISO 37156 8.2.2 c): the invocation \
                     must state which of them it wants",
                    p.join(", ")
                )),
            )),
        };
    };
    if let Some(p) = &permitted {
        let extra: Vec<&str> = stated
            .iter()
            .filter(|n| !p.contains(n))
            .map(String::as_str)
            .collect();
        if !extra.is_empty() {
            return Err((
                DenyCode::NoGrant,
                rules::clip(format!(
                    "the invocation asks for fields the grant does not permit: {} (permitted: \
                     {}; ISO 37156 8.2.2 c)",
                    extra.join(", "),
                    p.join(", ")
                )),
            ));
        }
    }
    let columns = match caveats::field_columns(entry, &stated) {
        Ok(c) => c,
        Err(e) => return bad(rules::clip(format!("cannot serve those fields: {e}"))),
    };
    if !ranges.is_empty() {
        return bad("a projection is sent whole, from offset 0: ask for it with no ranges".into());
    }
    let bytes = entry.held().map(|(_, _, n)| n).unwrap_or_default();
    if bytes > limits::MAX_PROJECTION_SOURCE_BYTES {
        return bad(format!(
            "the dataset is {bytes} bytes; this node projects datasets of at most {} bytes \
             (MAX_PROJECTION_SOURCE_BYTES)",
            limits::MAX_PROJECTION_SOURCE_BYTES
        ));
    }
    debug!(dataset = %entry.dataset, fields = columns.len(), "invocation asks for a projection");
    Ok(Some(Plan {
        fields: caveats::column_names(entry, &columns),
        columns,
        width: entry.iso.dictionary.len(),
    }))
}

/// Words for a token refusal; a policy mismatch names the caveat it broke.
fn explain_refusal(e: &ucan::ValidationError, proofs: &[Vec<u8>]) -> String {
    if let ucan::ValidationError::MatchError {
        delegation,
        statement,
    } = e
    {
        let arg = proofs
            .iter()
            .filter(|p| ucan::Cid::of_token(p) == *delegation)
            .find_map(|p| Delegation::decode(p).ok())
            .and_then(|(d, _)| d.pol.statements().get(*statement).cloned())
            .and_then(|s| caveats::argument_of(&s).map(|a| (a, s)));
        if let Some((arg, statement)) = arg {
            if arg == caveats::ARG_FIELDS {
                let permitted = caveats::permitted_fields(&ucan::Policy::new(vec![statement]))
                    .unwrap_or_default();
                return rules::clip(format!(
                    "token refused: the invocation's fields are not within the fields delegation \
                     {delegation} permits ({}; ISO 37156 8.2.2 c)",
                    permitted.join(", ")
                ));
            }
            return rules::clip(format!(
                "token refused: the invocation's {arg} does not meet the caveat of delegation \
                 {delegation} ({e})"
            ));
        }
    }
    rules::clip(format!("token refused: {e}"))
}

/// What a completed fetch delivered.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    /// Dataset id.
    pub dataset: String,
    /// Title.
    pub title: String,
    /// BLAKE3 hex of the bytes written, verified: the catalogue's content hash, or for a
    /// projection the hash its owner stated.
    pub content_hash: String,
    /// Bytes written.
    pub bytes: u64,
    /// Where.
    pub path: PathBuf,
    /// The owner's principal.
    pub from: String,
    /// Present when what was written is a projection on some fields (ISO 37156 8.2.2 c).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection: Option<FetchedProjection>,
    /// Bytes received from the network in this run (content, verified).
    pub network_bytes: u64,
    /// Bytes reused from earlier, interrupted runs (verified then, recorded durably).
    pub reused_bytes: u64,
    /// Each source asked, what it delivered and how it ended.
    pub sources: Vec<SourceReport>,
    /// CID of the first invocation this fetch presented (shared data), for the receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation: Option<String>,
    /// The purpose the invocation stated, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// One source of a fetch.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    /// Its PeerId.
    pub peer: String,
    /// Verified content bytes it delivered in this run.
    pub bytes: u64,
    /// `ok` (still good at the end), `misbehaving` (sent data that does not verify; dropped),
    /// `refused`, or `unreachable` (dropped for this fetch).
    pub state: String,
    /// Why it was dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The projection a fetch delivered.
#[derive(Debug, Clone, Serialize)]
pub struct FetchedProjection {
    /// The fields it holds, in the dataset's column order.
    pub fields: Vec<String>,
    /// BLAKE3 hex of the whole content it was projected from (the catalogue's).
    pub of_content: String,
}

/// Finds a dataset in the local catalogue by id or unique id prefix (at least 4 hex digits).
///
/// # Errors
///
/// If none or several match.
pub fn resolve(shared: &Shared, text: &str) -> Result<Option<SignedEntry>> {
    if let Ok(id) = text.parse::<DatasetId>() {
        return shared.store.latest_entry(&id);
    }
    if text.len() < 4 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("{text:?} is not a dataset id (32 hex digits, or a unique prefix of at least 4)");
    }
    let lower = text.to_ascii_lowercase();
    let mut hits: Vec<SignedEntry> = shared
        .store
        .catalogue()?
        .into_iter()
        .filter(|e| e.entry.dataset.to_string().starts_with(&lower))
        .collect();
    match hits.len() {
        0 => Ok(None),
        1 => Ok(hits.pop()),
        n => bail!("{n} datasets start with {text:?}; give more digits"),
    }
}

/// Explains why an id unknown to the catalogue cannot be fetched, asking connected peers
/// whether one of them holds it (a closed dataset's owner says so).
async fn explain_unknown(node: &Node, text: &str) -> anyhow::Error {
    let Ok(dataset) = text.parse::<DatasetId>() else {
        return anyhow!("no dataset {text:?} in this node's catalogue (see `cix catalogue list`)");
    };
    let peers = node.peers().await.unwrap_or_default();
    for p in peers.iter().take(16) {
        let Ok(peer) = p.peer_id.parse::<PeerId>() else {
            continue;
        };
        let req = AccessRequest {
            request: rand::random::<[u8; 16]>().to_vec(),
            dataset,
            purpose: String::new(),
            accept_terms: false,
            probe: true,
            profile: None,
            attestations: Vec::new(),
        };
        let who = p.agency().unwrap_or_else(|| p.peer_id.clone());
        match node.send_access(peer, req).await {
            Ok(AccessResponse::Denied {
                code: DenyCode::Closed,
                reason,
            }) => {
                return anyhow!("refused by {who}: {reason}");
            }
            Ok(AccessResponse::Denied {
                code: DenyCode::UnknownDataset,
                ..
            })
            | Err(_) => {}
            Ok(_) => {
                return anyhow!(
                    "{who} holds dataset {dataset}, but its entry has not reached this node's                      catalogue yet; wait a moment and try again, or ask with `cix request`"
                );
            }
        }
    }
    anyhow!(
        "dataset {dataset} is not in this node's catalogue and no connected peer will serve it \
         (closed datasets are never announced; check the id with `cix catalogue list`)"
    )
}

/// Verified bytes of a running fetch.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Progress {
    /// Content bytes verified so far, those reused from earlier runs included.
    pub bytes: u64,
    /// The content's size.
    pub total: u64,
    /// Of `bytes`, those received from the network in this run.
    pub network: u64,
    /// Of `bytes`, those reused from an interrupted earlier run.
    pub reused: u64,
}

/// How to fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// The sources to fetch from (PeerIds or `did:key`s), instead of the owner and the
    /// custodians found on the network. `cix fetch --from`.
    pub from: Vec<String>,
}

/// The content a receiver asks one source for in one request, and the unit of recorded
/// progress (transfer.md §7).
pub const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Most sources one fetch uses at once.
pub const MAX_SOURCES: usize = 8;
/// Requests in a row a lane sends again when they do not get through (the stream is refused
/// or dropped before a header) before the source is dropped as unreachable. libp2p-stream
/// drops an inbound stream when the source's accept loop has not taken the previous one yet,
/// which several lanes opening streams at once can meet.
pub const OPEN_RETRIES: u32 = 3;
/// Pause before such a retry, times the attempt number.
pub const OPEN_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Requests in a row the last lane of a source sends again when the source answers `busy`
/// before the source is dropped (its other lanes stop at the first `busy`, easing its load).
pub const BUSY_RETRIES: u32 = 10;
/// Pause before the first such retry; it doubles with each one, up to
/// [`BUSY_RETRY_MAX_PAUSE`]: about 26 s in all, long enough for a source serving others over a
/// slow link to finish a segment or two.
pub const BUSY_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between two such retries.
pub const BUSY_RETRY_MAX_PAUSE: Duration = Duration::from_secs(5);
/// How often a fetch reports its progress at most (the last report, all bytes verified, is
/// always made).
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Verified bytes a receiver gathers before it writes them to the file in one write (and
/// counts them as progress): one write per 16 KiB chunk group was a syscall each.
pub const WRITE_BYTES: usize = 1024 * 1024;
const _: () = assert!(SEGMENT_BYTES.is_multiple_of(limits::TRANSFER_CHUNK_GROUP_BYTES));

/// A resumable transfer, as recorded (sled tree [`TRANSFERS_TREE`]) after each verified
/// segment is on disk.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TransferRecord {
    /// Dataset id.
    pub dataset: String,
    /// Content id hex.
    pub content: String,
    /// The dataset's title.
    pub title: String,
    /// Content size.
    pub size: u64,
    /// The final path.
    pub output: PathBuf,
    /// The temporary file beside it.
    pub partial: PathBuf,
    /// Segment size the bitmap counts in.
    pub segment_bytes: u64,
    /// Verified segments, a bitmap in hex (bit i of byte i/8 = segment i).
    pub done: String,
    /// Bytes verified and recorded.
    pub verified: u64,
    /// The sources of the latest run.
    pub sources: Vec<String>,
    /// When it started (RFC 3339).
    pub started: String,
    /// Why the latest run stopped, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A transfer as `cix transfers` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TransferStatus {
    /// Dataset id.
    pub dataset: String,
    /// Content id hex.
    pub content: String,
    /// Title.
    pub title: String,
    /// Bytes verified.
    pub bytes: u64,
    /// Content size.
    pub total: u64,
    /// Sources of the latest run.
    pub sources: Vec<String>,
    /// `running` (a fetch is at work on it) or `interrupted` (resume with `cix fetch`).
    pub state: String,
    /// When it started.
    pub started: String,
    /// Where it will be written.
    pub output: PathBuf,
    /// Why it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

static LIVE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Marks a transfer as running in this process while it lives.
struct LiveGuard(String);

impl LiveGuard {
    fn enter(key: String) -> Result<Self> {
        let mut live = LIVE
            .lock()
            .map_err(|_| anyhow!("transfer registry poisoned"))?;
        if live.contains(&key) {
            bail!("this dataset is already being fetched to that path; wait for it to finish");
        }
        live.push(key.clone());
        Ok(Self(key))
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|k| k != &self.0);
        }
    }
}

/// Running and interrupted transfers (`cix transfers`).
///
/// # Errors
///
/// Store I/O.
pub fn transfers(shared: &Shared) -> Result<Vec<TransferStatus>> {
    let live = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    Ok(shared
        .store
        .records::<TransferRecord>(TRANSFERS_TREE)?
        .into_iter()
        .map(|(_, r)| TransferStatus {
            state: if live.contains(&r.partial.display().to_string()) {
                "running".into()
            } else {
                "interrupted".into()
            },
            dataset: r.dataset,
            content: r.content,
            title: r.title,
            bytes: r.verified,
            total: r.size,
            sources: r.sources,
            started: r.started,
            output: r.output,
            error: r.error,
        })
        .collect())
}

/// Fetches a dataset into `out`, calling `progress(verified, total)` as bytes arrive: [`fetch_with`]
/// with the default sources.
///
/// # Errors
///
/// As [`fetch_with`].
pub async fn fetch(
    node: &Node,
    dataset: &str,
    out: &Path,
    mut progress: impl FnMut(u64, u64) + Send,
) -> Result<Fetched> {
    fetch_with(
        node,
        dataset,
        out,
        &FetchOptions::default(),
        move |p: &Progress| progress(p.bytes, p.total),
    )
    .await
}

/// Fetches a dataset into `out` (transfer.md §7): verified ranges from one or several
/// custodians at once, resumed from what an interrupted earlier run recorded.
///
/// # Errors
///
/// If the dataset is unknown, access is missing or refused, no source can deliver, or the
/// disk fails; `out` is untouched in every such case, and verified progress is kept.
pub async fn fetch_with(
    node: &Node,
    dataset: &str,
    out: &Path,
    opts: &FetchOptions,
    mut progress: impl FnMut(&Progress) + Send,
) -> Result<Fetched> {
    if out.is_dir() {
        bail!(
            "-o {} is a directory: give the path of the file to write (for example {})",
            out.display(),
            out.join("data.csv").display()
        );
    }
    // Checked before anything is asked of a peer: the directory exists, and the path is not
    // something other than a file that the final rename would replace, nor one of the node's
    // own files (its key, config, store).
    if node.shared.home.holds(&canonical_output(out)?) {
        bail!(
            "-o {}: that is one of this node's own files (its key, token, config, store, \
             blobs or tmp, in {}); write the dataset somewhere else",
            out.display(),
            node.shared.home.root().display()
        );
    }
    let Some(signed) = resolve(&node.shared, dataset)? else {
        return Err(explain_unknown(node, dataset).await);
    };
    let entry = &signed.entry;
    // Only a held distribution travels over /cix/transfer/2; a referenced one is fetched
    // from its URL by whoever wants it.
    let (content, entry_size) = match entry.held() {
        Ok((_, content, size)) => (content, size),
        Err(e) => bail!("{e}"),
    };
    if entry_size > limits::MAX_DATASET_BYTES {
        bail!("dataset is {entry_size} bytes, over this node's limit");
    }
    let owner = entry.iss;
    if owner == node.did() {
        let blob = node.shared.home.blobs().join(content.to_hex());
        let (_, bytes) = write_verified_copy(&blob, out, &content).await?;
        return Ok(Fetched {
            dataset: entry.dataset.to_string(),
            title: entry.title.clone(),
            content_hash: content.to_hex(),
            bytes,
            path: out.to_path_buf(),
            from: owner.to_string(),
            projection: None,
            network_bytes: 0,
            reused_bytes: bytes,
            sources: Vec::new(),
            invocation: None,
            purpose: None,
        });
    }
    let creds = credentials(node, &signed).await?;
    let asked = match &creds {
        Some((inv, _)) => {
            caveats::stated_fields(inv.args.get(caveats::ARG_FIELDS)).map_err(|e| anyhow!("{e}"))?
        }
        None => None,
    };
    let purpose = creds.as_ref().and_then(|(inv, _)| {
        inv.args
            .get(caveats::ARG_PURPOSE)
            .and_then(|v| v.as_text())
            .map(str::to_owned)
    });
    if let Some(fields) = asked {
        return fetch_projection(node, &signed, out, creds, fields, purpose, &mut progress).await;
    }
    let sources = pick_sources(node, entry, opts).await?;
    // ISO 37156 8.3.4: the fetch on the record, with the grant it is made under.
    let audit_req = TransferRequest {
        dataset: entry.dataset,
        content,
        ranges: Vec::new(),
        invocation: None,
        proofs: creds
            .as_ref()
            .map(|(_, p)| p.iter().cloned().map(serde_bytes::ByteBuf::from).collect())
            .unwrap_or_default(),
        profile: None,
    };
    let audit = crate::audit::Fetching::start(&node.shared, owner, &audit_req, entry).await;
    let template = creds.as_ref().map(|(inv, _)| inv.clone());
    let job = Job::open(node, &signed, out, content, entry_size, creds, &sources).await?;
    let fetched = job.run(&signed, sources, purpose, &mut progress).await?;
    audit.done(fetched.bytes, &content).await;
    let first: Option<ucan::Cid> = fetched.invocation.as_deref().and_then(|c| c.parse().ok());
    let basis = crate::receipts::Basis::of(entry.dataset, content, template.as_ref().zip(first));
    crate::receipts::after_fetch(node, &basis, &fetched).await;
    Ok(fetched)
}

/// The Kademlia provider key under which custodians announce a content id (transfer.md §6).
pub fn provider_key(content: &ContentHash) -> Vec<u8> {
    let mut key = b"/cix/content/".to_vec();
    key.extend_from_slice(&content.0);
    key
}

/// How long a fetch waits for Kademlia to name custodians.
const PROVIDER_WAIT: Duration = Duration::from_secs(5);

/// The sources of a fetch: `--from`'s, else the owner and the custodians that Kademlia
/// provider records name.
async fn pick_sources(node: &Node, entry: &Entry, opts: &FetchOptions) -> Result<Vec<PeerId>> {
    let mut out: Vec<PeerId> = Vec::new();
    if opts.from.is_empty() {
        out.push(peer_of_did(&entry.iss)?);
        // Custodians: of open data, and (transfer.md §6) of shared data under a serve delegation.
        if entry.level() != Level::Closed {
            if let Ok((_, content, _)) = entry.held() {
                let found =
                    tokio::time::timeout(PROVIDER_WAIT, node.providers(provider_key(&content)))
                        .await
                        .ok()
                        .and_then(|r| r.ok())
                        .unwrap_or_default();
                debug!(dataset = %entry.dataset, custodians = found.len(), "custodians found");
                for p in found {
                    if p != node.peer_id() && !out.contains(&p) && out.len() < MAX_SOURCES {
                        out.push(p);
                    }
                }
            }
        }
        return Ok(out);
    }
    for text in &opts.from {
        let text = text.trim();
        let peer = if text.starts_with("did:") {
            let did: Did = text
                .parse()
                .map_err(|e| anyhow!("--from {text}: not a did:key ({e})"))?;
            peer_of_did(&did)?
        } else {
            text.parse::<PeerId>()
                .map_err(|e| anyhow!("--from {text}: not a PeerId or did:key ({e})"))?
        };
        if peer == node.peer_id() {
            bail!("--from {text} is this node itself");
        }
        if !out.contains(&peer) {
            out.push(peer);
        }
    }
    if out.len() > MAX_SOURCES {
        bail!(
            "{} sources given; a fetch uses at most {MAX_SOURCES}",
            out.len()
        );
    }
    Ok(out)
}

/// The shared state of a ranged fetch: the workers (one per source) take segments from the
/// queue, so a faster source takes more of them (work stealing over fixed-size segments).
struct Job {
    node: Node,
    dataset: DatasetId,
    content: ContentHash,
    size: u64,
    profile: Option<Vec<u8>>,
    creds: Option<(Invocation, Vec<Vec<u8>>)>,
    file: Arc<std::fs::File>,
    /// The same temporary file opened for direct I/O, when the file system allows it: verified
    /// bytes go through it to the device without a copy into the page cache (transfer.md §7).
    direct: Option<Arc<std::fs::File>>,
    /// Set once a direct write is refused: the rest go through `file`.
    direct_refused: std::sync::atomic::AtomicBool,
    /// The outboard being assembled from the verified parents received (transfer.md §7), and
    /// its path; `None` when a resumed transfer found it gone, and it is then built from the
    /// file at completion.
    outboard: Option<(Arc<std::fs::File>, PathBuf)>,
    queue: std::sync::Mutex<std::collections::VecDeque<u64>>,
    finished: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
    first_invocation: std::sync::Mutex<Option<String>>,
    record: std::sync::Mutex<TransferRecord>,
    key: String,
    _live: LiveGuard,
}

enum Event {
    Verified {
        source: usize,
        bytes: u64,
    },
    Segment {
        seg: u64,
    },
    Gone {
        source: usize,
        state: &'static str,
        reason: String,
    },
    Fatal(anyhow::Error),
}

enum Failure {
    Disk(anyhow::Error),
    /// The source answered `busy`: this lane stops, its other lanes go on.
    Busy(String),
    /// The request did not get through (the stream could not be opened, or was dropped before
    /// a header: a source whose accept queue is momentarily full drops new streams): tried
    /// again on the same lane, up to `OPEN_RETRIES` times in a row.
    Open(String),
    Source(&'static str, String),
}

/// The lanes of one source: up to `limits::TRANSFER_WINDOW` workers, each with one segment
/// in flight. The source is dropped once, by the first lane that fails for a reason other
/// than `busy`, or by the last lane.
struct Lanes {
    dropped: std::sync::atomic::AtomicBool,
    open: std::sync::atomic::AtomicUsize,
}

fn bit(done: &[u8], i: u64) -> bool {
    done.get((i / 8) as usize)
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}

fn segment_bounds(seg: u64, size: u64) -> (u64, u64) {
    let start = seg * SEGMENT_BYTES;
    (start, (start + SEGMENT_BYTES).min(size))
}

/// The directory `out` goes in (which must exist) and its file name: where a temporary file
/// for it is made, so that the final rename stays on one file system.
fn target_of(out: &Path) -> Result<(&Path, String)> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "cannot write {}: directory {} does not exist",
            out.display(),
            dir.display()
        );
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((dir, name))
}

/// `out` with its directory resolved (symbolic links, `.` and `..`), which must exist; the
/// file name as given. Refuses a path that names something other than a regular file: the
/// final rename would replace it (a device node, a directory, a pipe).
fn canonical_output(out: &Path) -> Result<PathBuf> {
    let (dir, name) = target_of(out)?;
    if name.is_empty() || name == "." || name == ".." {
        bail!("-o {}: give the path of a file to write", out.display());
    }
    if let Ok(m) = std::fs::metadata(out) {
        if !m.is_file() {
            bail!(
                "-o {}: it exists and is not a regular file; a fetch replaces only files",
                out.display()
            );
        }
    }
    let dir = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot resolve the directory of {}", out.display()))?;
    Ok(dir.join(name))
}

/// The store key of the transfer of `dataset` into `out` (a [`canonical_output`]).
fn record_key(dataset: &DatasetId, out: &Path) -> String {
    let of = blake3::hash(out.as_os_str().as_encoded_bytes()).to_hex();
    format!("{dataset}/{}", &of[..32])
}

/// `O_NOFOLLOW` for [`std::os::unix::fs::OpenOptionsExt::custom_flags`]: a temporary file is
/// only ever opened as itself, never through a symbolic link someone put in its place.
#[allow(clippy::cast_possible_wrap)] // a small flag bit
const NO_FOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// Whether `partial` is a temporary file a fetch may resume into: a regular file (not a link),
/// of `size` bytes, with no other name (a hard link would let whoever made it read along).
fn is_own_partial(partial: &Path, size: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(partial)
        .is_ok_and(|m| m.file_type().is_file() && m.len() == size && m.nlink() == 1)
}

/// Whether `meta` (of a name or another handle) is of the same file as the open `file`: same
/// device and inode. An error on either side counts as not the same.
fn same_file(meta: std::io::Result<std::fs::Metadata>, file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (meta, file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Longest final file name kept whole in the temporary file's name; a longer one (file
/// systems allow 255 bytes, and the temporary name adds 31) is replaced there by a hash of it.
const MAX_NAME_IN_PARTIAL: usize = 200;

fn partial_path(out: &Path, content: &ContentHash) -> Result<PathBuf> {
    let (dir, name) = target_of(out)?;
    let name = if name.len() > MAX_NAME_IN_PARTIAL {
        blake3::hash(name.as_bytes()).to_hex()[..32].to_string()
    } else {
        name
    };
    Ok(dir.join(format!(".{name}.{}.cix-partial", &content.to_hex()[..16])))
}

/// Where the outboard of a transfer into `partial` is assembled: in the blob directory, where
/// it ends up, named after the content and the temporary file (two fetches of one content to
/// two places assemble their own).
fn assembling_outboard_path(blobs: &Path, partial: &Path, content: &ContentHash) -> PathBuf {
    let of = blake3::hash(partial.as_os_str().as_encoded_bytes()).to_hex();
    blobs.join(format!(".{}.{}.obao-partial", content.to_hex(), &of[..16]))
}

/// Creates (empty, of the outboard's size) the file an outboard is assembled in.
fn create_assembling_outboard(path: &Path, size: u64) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| disk("create", dir, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| disk("create", path, e))?;
    file.set_len(crate::verified::tree(size).outboard_size())
        .map_err(|e| disk("size", path, e))?;
    Ok(file)
}

fn disk(what: &str, path: &Path, e: std::io::Error) -> anyhow::Error {
    let hint = if e.raw_os_error() == Some(28) {
        " (the disk is full)"
    } else {
        ""
    };
    anyhow!("cannot {what} {}: {e}{hint}", path.display())
}

impl Job {
    /// Opens the temporary file and the record: an earlier run's, when its file is still
    /// there whole, else a fresh one.
    async fn open(
        node: &Node,
        signed: &SignedEntry,
        out: &Path,
        content: ContentHash,
        size: u64,
        creds: Option<(Invocation, Vec<Vec<u8>>)>,
        sources: &[PeerId],
    ) -> Result<Self> {
        let entry = &signed.entry;
        let store = &node.shared.store;
        // One record per dataset and final path, the path with its directory resolved, so that
        // two fetches to two places (or to one place by two names) never share one.
        let out = &canonical_output(out)?;
        let key = record_key(&entry.dataset, out);
        let partial = partial_path(out, &content)?;
        let live = LiveGuard::enter(partial.display().to_string())?;
        let segments = size.div_ceil(SEGMENT_BYTES);
        // r3 keyed records by dataset and content: such a record for this path is taken over.
        let legacy = format!("{}/{}", entry.dataset, content.to_hex());
        let prior: Option<TransferRecord> = match store.record(TRANSFERS_TREE, &key)? {
            Some(r) => Some(r),
            None => store
                .record::<TransferRecord>(TRANSFERS_TREE, &legacy)?
                .filter(|r| r.output == *out),
        };
        let reusable = prior.clone().filter(|r| {
            r.content == content.to_hex()
                && r.output == *out
                && r.partial == partial
                && r.segment_bytes == SEGMENT_BYTES
                && r.size == size
                && is_own_partial(&r.partial, size)
        });
        let blobs = node.shared.home.blobs();
        if let Some(old) = prior.filter(|_| reusable.is_none()) {
            // Another version, or a temporary file that is gone or of the wrong size.
            if old.partial != partial {
                let _ = std::fs::remove_file(&old.partial);
            }
            if let Ok(old_content) = old.content.parse::<ContentHash>() {
                let _ = std::fs::remove_file(assembling_outboard_path(
                    &blobs,
                    &old.partial,
                    &old_content,
                ));
            }
        }
        store.remove_record(TRANSFERS_TREE, &legacy)?;
        let outboard_at = assembling_outboard_path(&blobs, &partial, &content);
        let names: Vec<String> = sources.iter().map(ToString::to_string).collect();
        let (record, file, outboard) = match reusable {
            Some(mut r) => {
                debug!(dataset = %entry.dataset, verified = r.verified, "resuming a transfer");
                r.sources = names;
                r.error = None;
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(NO_FOLLOW)
                    .open(&r.partial)
                    .map_err(|e| disk("reopen", &r.partial, e))?;
                // The parents of the recorded segments were synced with them; without that
                // file the outboard is built from the whole file at the end instead.
                let want = crate::verified::tree(size).outboard_size();
                let outboard = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&outboard_at)
                    .ok()
                    .filter(|f| f.metadata().is_ok_and(|m| m.len() == want));
                if outboard.is_none() {
                    // Of the wrong size (damaged): of no use, and never cleaned up otherwise.
                    let _ = std::fs::remove_file(&outboard_at);
                    debug!(dataset = %entry.dataset, "resuming without the assembled outboard; \
                        it will be built from the file");
                }
                (r, file, outboard)
            }
            None => {
                // The name is ours, but whatever stands there now (a stale file, or a link
                // planted in a shared directory to make us write elsewhere) is removed, never
                // written through: the file is made anew, exclusively.
                match std::fs::remove_file(&partial) {
                    Ok(()) => debug!(path = %partial.display(), "removed a stale temporary file"),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(disk("replace", &partial, e)),
                }
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&partial)
                    .map_err(|e| disk("create", &partial, e))?;
                file.set_len(size).map_err(|e| disk("size", &partial, e))?;
                let outboard = create_assembling_outboard(&outboard_at, size)?;
                let started = time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let r = TransferRecord {
                    dataset: entry.dataset.to_string(),
                    content: content.to_hex(),
                    title: entry.title.clone(),
                    size,
                    output: out.to_path_buf(),
                    partial: partial.clone(),
                    segment_bytes: SEGMENT_BYTES,
                    done: hex::encode(vec![0u8; segments.div_ceil(8) as usize]),
                    verified: 0,
                    sources: names,
                    started,
                    error: None,
                };
                (r, file, Some(outboard))
            }
        };
        // The direct-I/O handle is opened by name, so it must be the very file opened above:
        // were the name swapped between the two opens, writes would go to another file while
        // the checks at the end looked at this one.
        let direct = crate::verified::open_direct(&partial);
        if let Some(d) = &direct {
            if !same_file(d.metadata(), &file) {
                warn!(path = %partial.display(),
                    "the temporary file was replaced as it was opened; refusing to write");
                bail!(
                    "the temporary file {} was replaced by something else as the fetch opened \
                     it; nothing was written (fetch again; is someone else writing in that \
                     directory?)",
                    partial.display()
                );
            }
        }
        store.put_record(TRANSFERS_TREE, &key, &record)?;
        store.flush_async().await?;
        let done = hex::decode(&record.done).unwrap_or_default();
        let queue = (0..segments).filter(|s| !bit(&done, *s)).collect();
        Ok(Self {
            node: node.clone(),
            dataset: entry.dataset,
            content,
            size,
            // The owner checks it against the dataset's jurisdiction rule (ISO 37156 8.2.2 h).
            profile: (entry.level() != Level::Open).then(|| node.shared.profile.bytes.clone()),
            creds,
            direct: direct.map(Arc::new),
            direct_refused: std::sync::atomic::AtomicBool::new(false),
            file: Arc::new(file),
            outboard: outboard.map(|f| (Arc::new(f), outboard_at)),
            queue: std::sync::Mutex::new(queue),
            finished: std::sync::atomic::AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            first_invocation: std::sync::Mutex::new(None),
            record: std::sync::Mutex::new(record),
            key,
            _live: live,
        })
    }

    fn record(&self) -> TransferRecord {
        match self.record.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn pop(&self) -> Option<u64> {
        self.queue.lock().ok().and_then(|mut q| q.pop_front())
    }

    fn requeue(&self, seg: u64) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_front(seg);
        }
        self.wake.notify_waiters();
    }

    /// A request for `ranges` to `peer`, with a fresh invocation for shared data addressed to
    /// that source (each is accepted once, by it alone: transfer.md §5).
    fn request(&self, peer: &PeerId, ranges: Vec<(u64, u64)>) -> Result<TransferRequest> {
        let (invocation, proofs) = match &self.creds {
            Some((inv, proofs)) => {
                let mut inv = inv.clone();
                inv.aud = did_of_peer(peer).or(inv.aud);
                let t = now();
                inv.iat = Some(t);
                inv.exp = Some(t + INVOCATION_TTL_SECS);
                inv.nonce = rand::random::<[u8; 16]>().to_vec();
                let (bytes, cid) = inv
                    .seal(&self.node.shared.key)
                    .map_err(|e| anyhow!("cannot sign invocation: {e}"))?;
                if let Ok(mut first) = self.first_invocation.lock() {
                    first.get_or_insert_with(|| cid.to_string());
                }
                (Some(bytes), proofs.clone())
            }
            None => (None, Vec::new()),
        };
        Ok(TransferRequest {
            dataset: self.dataset,
            content: self.content,
            ranges,
            invocation,
            proofs: proofs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
            profile: self.profile.clone(),
        })
    }

    /// Runs the workers until every segment is verified, then completes.
    async fn run(
        self,
        signed: &SignedEntry,
        sources: Vec<PeerId>,
        purpose: Option<String>,
        progress: &mut (impl FnMut(&Progress) + Send),
    ) -> Result<Fetched> {
        let job = Arc::new(self);
        let start = job.record();
        let reused = start.verified;
        let mut p = Progress {
            bytes: reused,
            total: job.size,
            network: 0,
            reused,
        };
        let mut reports: Vec<SourceReport> = sources
            .iter()
            .map(|peer| SourceReport {
                peer: peer.to_string(),
                bytes: 0,
                state: "ok".into(),
                reason: None,
            })
            .collect();
        progress(&p);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = Workers(Vec::new());
        let mut alive = 0usize;
        let mut remaining = job.queue.lock().map(|q| q.len()).unwrap_or(0);
        if remaining > 0 {
            let window = limits::TRANSFER_WINDOW;
            let lanes: Vec<Arc<Lanes>> = sources
                .iter()
                .map(|_| {
                    Arc::new(Lanes {
                        dropped: std::sync::atomic::AtomicBool::new(false),
                        open: std::sync::atomic::AtomicUsize::new(window),
                    })
                })
                .collect();
            // Source i starts on the i-th missing segment (fetches spread from the start),
            // then each of its further lanes on the next one free.
            for _ in 0..window {
                for (i, peer) in sources.iter().enumerate() {
                    let first = job.pop();
                    let (job, tx, peer, lanes) = (job.clone(), tx.clone(), *peer, lanes[i].clone());
                    workers
                        .0
                        .push(tokio::spawn(work(job, i, lanes, peer, first, tx)));
                }
            }
            alive = sources.len();
        }
        drop(tx);
        let mut in_flight: u64 = 0;
        let mut verified = start.verified;
        let mut shown = std::time::Instant::now();
        let window_bytes = SEGMENT_BYTES * limits::TRANSFER_WINDOW as u64;
        while remaining > 0 {
            let Some(event) = rx.recv().await else {
                break;
            };
            match event {
                Event::Verified { source, bytes } => {
                    reports[source].bytes += bytes;
                    p.network += bytes;
                    in_flight += bytes;
                    p.bytes = verified + in_flight.min(window_bytes * alive as u64);
                    if shown.elapsed() >= PROGRESS_INTERVAL {
                        shown = std::time::Instant::now();
                        progress(&p);
                    }
                }
                Event::Segment { seg } => {
                    let (a, b) = segment_bounds(seg, job.size);
                    in_flight = in_flight.saturating_sub(b - a);
                    let record = {
                        let mut r = job.record.lock().map_err(|_| anyhow!("record poisoned"))?;
                        let mut done = hex::decode(&r.done).unwrap_or_default();
                        if let Some(byte) = done.get_mut((seg / 8) as usize) {
                            *byte |= 1 << (seg % 8);
                        }
                        r.done = hex::encode(done);
                        r.verified += b - a;
                        r.clone()
                    };
                    if !record.partial.exists() {
                        let e = anyhow!(
                            "the temporary file {} vanished (was the target directory removed?); \
                             nothing was written to {}, and the same `cix fetch` starts afresh",
                            record.partial.display(),
                            record.output.display()
                        );
                        return Err(job.abandon(e).await);
                    }
                    // The segment was fsynced by its worker; only now is it recorded.
                    let store = &job.node.shared.store;
                    store.put_record(TRANSFERS_TREE, &job.key, &record)?;
                    store.flush_async().await?;
                    remaining -= 1;
                    verified = record.verified;
                    p.bytes = verified + in_flight.min(window_bytes * alive as u64);
                    if remaining == 0 || shown.elapsed() >= PROGRESS_INTERVAL {
                        shown = std::time::Instant::now();
                        progress(&p);
                    }
                }
                Event::Gone {
                    source,
                    state,
                    reason,
                } => {
                    alive -= 1;
                    in_flight = 0;
                    if state == "misbehaving" {
                        warn!(peer = %reports[source].peer, dataset = %job.dataset, %reason,
                            "source sent data that does not verify; dropped for this content");
                    } else {
                        debug!(peer = %reports[source].peer, %state, %reason, "source dropped");
                    }
                    reports[source].state = state.into();
                    reports[source].reason = Some(reason);
                    if alive == 0 {
                        break;
                    }
                }
                Event::Fatal(e) => return Err(job.stop(e).await),
            }
        }
        job.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
        job.wake.notify_waiters();
        drop(workers);
        if remaining > 0 {
            let why: Vec<String> = reports
                .iter()
                .map(|r| {
                    format!(
                        "{}: {}",
                        r.peer,
                        r.reason.clone().unwrap_or_else(|| r.state.clone())
                    )
                })
                .collect();
            let e = anyhow!("no source could deliver the rest ({})", why.join("; "));
            return Err(job.stop(e).await);
        }
        let invocation = job.first_invocation.lock().ok().and_then(|f| f.clone());
        let fetched = complete(&job, signed, reports, p, invocation, purpose).await;
        match fetched {
            Ok(f) => Ok(f),
            // Nothing is kept to resume from.
            Err(e) if e.is::<Discarded>() => Err(e),
            Err(e) => Err(job.stop(e).await),
        }
    }

    /// Ends the run with nothing to resume from: drops the record and the assembled outboard.
    async fn abandon(&self, e: anyhow::Error) -> anyhow::Error {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_waiters();
        if let Some((_, at)) = &self.outboard {
            let _ = std::fs::remove_file(at);
        }
        let store = &self.node.shared.store;
        let _ = store.remove_record(TRANSFERS_TREE, &self.key);
        let _ = store.flush_async().await;
        e
    }

    /// Records why the run stopped, keeping the verified progress, and returns the error
    /// with a word on resuming.
    async fn stop(&self, e: anyhow::Error) -> anyhow::Error {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_waiters();
        let mut r = self.record();
        r.error = Some(format!("{e:#}"));
        let store = &self.node.shared.store;
        if store
            .record::<TransferRecord>(TRANSFERS_TREE, &self.key)
            .ok()
            .flatten()
            .is_some()
        {
            let _ = store.put_record(TRANSFERS_TREE, &self.key, &r);
            let _ = store.flush_async().await;
        }
        anyhow!(
            "{e:#}; {} of {} bytes are verified and kept: run the same `cix fetch` again to \
             resume",
            r.verified,
            r.size
        )
    }
}

/// A fetch whose assembled file did not verify at completion: file and record are gone.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Discarded(String);

/// Aborts the worker tasks when the fetch ends or is dropped (the client went away).
struct Workers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &self.0 {
            w.abort();
        }
    }
}

/// One lane of a source: takes segments until none are left, and stops at the first failure,
/// putting its segment back for the others; the first lane of a source to fail (or, when the
/// source is only busy, the last) reports the source gone.
async fn work(
    job: Arc<Job>,
    source: usize,
    lanes: Arc<Lanes>,
    peer: PeerId,
    mut next: Option<u64>,
    tx: tokio::sync::mpsc::UnboundedSender<Event>,
) {
    use std::sync::atomic::Ordering;
    let mut failed_opens = 0u32;
    let mut busy_retries = 0u32;
    // Verified bytes waiting to be written, and being written: the lane's two buffers, kept
    // for the whole fetch.
    let mut buf = Pending::new();
    loop {
        if lanes.dropped.load(Ordering::SeqCst) {
            if let Some(seg) = next.take() {
                job.requeue(seg);
            }
            return;
        }
        let Some(seg) = next.take().or_else(|| job.pop()) else {
            if job.finished.load(Ordering::SeqCst) {
                return;
            }
            // Another source may fail and put its segment back: wait for that or the end.
            let woken = job.wake.notified();
            let idle = job.queue.lock().map(|q| q.is_empty()).unwrap_or(false);
            if idle && !job.finished.load(Ordering::SeqCst) {
                let _ = tokio::time::timeout(Duration::from_secs(1), woken).await;
            }
            continue;
        };
        match segment(&job, source, peer, seg, &tx, &mut buf).await {
            Ok(()) => {
                failed_opens = 0;
                busy_retries = 0;
                let _ = tx.send(Event::Segment { seg });
            }
            // The last lane of a busy source waits and asks again rather than give the
            // source up: a source is busy for moments at a time (transfer.md §7).
            Err(Failure::Busy(reason))
                if busy_retries < BUSY_RETRIES && lanes.open.load(Ordering::SeqCst) == 1 =>
            {
                busy_retries += 1;
                debug!(%peer, %reason, attempt = busy_retries, "source busy; asking again");
                job.requeue(seg);
                let pause = BUSY_RETRY_PAUSE
                    .saturating_mul(1 << (busy_retries - 1).min(16))
                    .min(BUSY_RETRY_MAX_PAUSE);
                tokio::time::sleep(pause).await;
            }
            Err(Failure::Open(reason)) if failed_opens < OPEN_RETRIES => {
                failed_opens += 1;
                debug!(%peer, %reason, attempt = failed_opens, "transfer request did not get through; trying again");
                job.requeue(seg);
                tokio::time::sleep(OPEN_RETRY_PAUSE * failed_opens).await;
            }
            Err(f) => {
                job.requeue(seg);
                let gone = |state: &'static str, reason: String| {
                    if !lanes.dropped.swap(true, Ordering::SeqCst) {
                        let _ = tx.send(Event::Gone {
                            source,
                            state,
                            reason,
                        });
                    }
                };
                match f {
                    Failure::Disk(e) => {
                        let _ = tx.send(Event::Fatal(e));
                    }
                    Failure::Busy(reason) => {
                        if lanes.open.fetch_sub(1, Ordering::SeqCst) > 1 {
                            debug!(%peer, %reason, "source busy: one lane fewer");
                        } else {
                            gone("refused", reason);
                        }
                    }
                    Failure::Source(state, reason) => gone(state, reason),
                    Failure::Open(reason) => gone("unreachable", reason),
                }
                return;
            }
        }
    }
}

/// Fetches one segment from `peer`, verifying each chunk group against the content id as it
/// arrives (ISO 37156 7.2, 7.3.2) and writing it in place; fsyncs the file before returning.
async fn segment(
    job: &Job,
    source: usize,
    peer: PeerId,
    seg: u64,
    tx: &tokio::sync::mpsc::UnboundedSender<Event>,
    buf: &mut Pending,
) -> std::result::Result<(), Failure> {
    let (start, end) = segment_bounds(seg, job.size);
    let req = job
        .request(&peer, vec![(start, end)])
        .map_err(Failure::Disk)?;
    let (mut stream, header) = send_transfer_to(&job.node, peer, &req)
        .await
        .map_err(|e| Failure::Open(format!("{e:#}")))?;
    let bad = |why: String| Failure::Source("misbehaving", why);
    match header {
        TransferHeader::Refused {
            code: DenyCode::Busy,
            reason,
        } => return Err(Failure::Busy(format!("busy: {reason}"))),
        TransferHeader::Refused { code, reason } => {
            return Err(Failure::Source(
                "refused",
                format!("{}: {reason}", code_text(code)),
            ))
        }
        TransferHeader::Ok {
            size,
            length,
            projection,
        } => {
            if size != job.size || length != end - start || projection.is_some() {
                return Err(bad(format!(
                    "its header ({size} bytes, {length} follow) does not match the request"
                )));
            }
        }
    }
    buf.start(start);
    receive_segment(job, source, &mut stream, (start, end), tx, buf).await
}

/// The body of [`segment`]: decodes, verifies and writes one segment's response.
async fn receive_segment(
    job: &Job,
    source: usize,
    stream: &mut libp2p::Stream,
    (start, end): (u64, u64),
    tx: &tokio::sync::mpsc::UnboundedSender<Event>,
    pending: &mut Pending,
) -> std::result::Result<(), Failure> {
    use bao_tree::io::fsm::{ResponseDecoder, ResponseDecoderNext};
    use bao_tree::io::BaoContentItem;
    let bad = |why: String| Failure::Source("misbehaving", why);
    let mut reader = crate::verified::StreamIn::new(stream, IDLE_TIMEOUT);
    let mut decoder = ResponseDecoder::new(
        crate::verified::root(&job.content),
        crate::verified::chunk_ranges(&[(start, end)]),
        crate::verified::tree(job.size),
        &mut reader,
    );
    let mut got = 0u64;
    // Verified parents, for the outboard assembled as the segments come in.
    let mut parents = crate::verified::Parents::new(job.size);
    while let ResponseDecoderNext::More((next, item)) = decoder.next().await {
        decoder = next;
        match item {
            Ok(BaoContentItem::Leaf(leaf)) => {
                let len = leaf.data.len() as u64;
                if leaf.offset < start || leaf.offset + len > end {
                    return Err(bad("it sent data outside the range asked".into()));
                }
                if pending.at + pending.buf.len() as u64 != leaf.offset {
                    got += pending.write(job, source, tx).await?;
                    pending.at = leaf.offset;
                }
                pending.buf.extend_from_slice(&leaf.data);
                if pending.buf.len() >= WRITE_BYTES {
                    got += pending.write(job, source, tx).await?;
                }
            }
            Ok(BaoContentItem::Parent(parent)) => parents.add(&parent),
            Err(e) => {
                let (guilty, why) = crate::verified::judge(&e);
                return Err(if guilty {
                    bad(why)
                } else {
                    Failure::Source("unreachable", why)
                });
            }
        }
    }
    got += pending.write(job, source, tx).await?;
    got += pending.settle(job, source, tx).await?;
    if got != end - start {
        return Err(Failure::Source(
            "unreachable",
            format!("the stream ended after {got} of {} bytes", end - start),
        ));
    }
    // On disk, with its parents, before it is recorded (transfer.md §7: fsync, then the
    // record).
    let file = job.file.clone();
    let partial = job.record().partial;
    let outboard = job.outboard.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        if let Some((ob, path)) = outboard {
            parents.write_to(&ob).map_err(|e| disk("write", &path, e))?;
            ob.sync_data().map_err(|e| disk("sync", &path, e))?;
        }
        file.sync_data().map_err(|e| disk("sync", &partial, e))
    })
    .await
    .map_err(|e| Failure::Disk(anyhow!("sync task failed: {e}")))?
    .map_err(Failure::Disk)?;
    Ok(())
}

/// A lane's verified bytes on their way to the file: one buffer being filled while the other
/// is written (off the async threads, direct when the file system allows), so that writing
/// overlaps receiving and verifying.
struct Pending {
    /// Verified bytes gathered, to be written at `at`.
    buf: crate::verified::AlignedBuf,
    at: u64,
    /// The other buffer, when no write holds it.
    spare: Option<crate::verified::AlignedBuf>,
    /// The write under way and how many bytes it writes.
    writing: Option<(Write, u64)>,
}

type Write = tokio::task::JoinHandle<(crate::verified::AlignedBuf, std::io::Result<bool>)>;

impl Pending {
    fn new() -> Self {
        Self {
            buf: crate::verified::AlignedBuf::with_capacity(WRITE_BYTES),
            at: 0,
            spare: None,
            writing: None,
        }
    }

    /// Readies the lane for a segment starting at `at`. A write of an earlier segment that
    /// failed may still hold the other buffer: it is left to finish and a new one is made.
    fn start(&mut self, at: u64) {
        if self.writing.take().is_some() {
            self.spare = None;
        }
        self.buf.clear();
        self.at = at;
    }

    /// Waits for the write under way, if any; the bytes it wrote.
    async fn settle(
        &mut self,
        job: &Job,
        source: usize,
        tx: &tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> std::result::Result<u64, Failure> {
        use std::sync::atomic::Ordering;
        let Some((write, n)) = self.writing.take() else {
            return Ok(0);
        };
        let (mut buf, wrote) = write
            .await
            .map_err(|e| Failure::Disk(anyhow!("write task failed: {e}")))?;
        let direct_ok =
            wrote.map_err(|e| Failure::Disk(disk("write", &job.record().partial, e)))?;
        if !direct_ok {
            job.direct_refused.store(true, Ordering::Relaxed);
        }
        buf.clear();
        self.spare = Some(buf);
        let _ = tx.send(Event::Verified { source, bytes: n });
        Ok(n)
    }

    /// Starts writing what is gathered, after the write before it has finished, and goes on
    /// gathering in the other buffer; the bytes whose write finished meanwhile.
    async fn write(
        &mut self,
        job: &Job,
        source: usize,
        tx: &tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> std::result::Result<u64, Failure> {
        use std::sync::atomic::Ordering;
        let done = self.settle(job, source, tx).await?;
        if self.buf.is_empty() {
            return Ok(done);
        }
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| crate::verified::AlignedBuf::with_capacity(WRITE_BYTES));
        let full = std::mem::replace(&mut self.buf, next);
        let (file, at, n) = (job.file.clone(), self.at, full.len() as u64);
        let direct = job
            .direct
            .clone()
            .filter(|_| !job.direct_refused.load(Ordering::Relaxed));
        let write = tokio::task::spawn_blocking(move || {
            let wrote =
                crate::verified::write_all_at(&file, direct.as_deref(), full.as_slice(), at);
            (full, wrote)
        });
        self.writing = Some((write, n));
        self.at = at + n;
        Ok(done)
    }
}

/// The one place a fetch of a whole dataset completes (transfer.md §7 step 7): the file is
/// flushed; the outboard assembled from the verified parents is checked against the content
/// id and kept (when it was lost, or does not check out, the file is hashed whole to build it,
/// which also checks the file); the file is renamed into place and its directory flushed; the
/// copy is recorded as held and the transfer record dropped. Returns what was fetched.
async fn complete(
    job: &Job,
    signed: &SignedEntry,
    sources: Vec<SourceReport>,
    p: Progress,
    invocation: Option<String>,
    purpose: Option<String>,
) -> Result<Fetched> {
    let entry = &signed.entry;
    let record = job.record();
    let (blobs, content, size) = (job.node.shared.home.blobs(), job.content, job.size);
    let (partial, output) = (record.partial.clone(), record.output.clone());
    let file = job.file.clone();
    let assembled = job.outboard.as_ref().map(|(_, path)| path.clone());
    let dataset = job.dataset;
    // Segments recorded by an earlier run were verified then, but have sat on disk since, with
    // no node watching: a resumed fetch hashes the whole file (transfer.md §7 step 8).
    let resumed = p.reused > 0;
    let placed = tokio::task::spawn_blocking(move || -> Result<std::result::Result<(), String>> {
        file.sync_all().map_err(|e| disk("sync", &partial, e))?;
        let adopted = assembled.as_ref().filter(|_| !resumed).map(|at| {
            crate::verified::adopt_outboard(&blobs, &content, at, size).inspect_err(|e| {
                // Every parent was verified on arrival, so this is our own fault.
                tracing::error!(%dataset, error = %e,
                    "the outboard assembled from verified parents does not check out; \
                     hashing the file instead");
            })
        });
        if !matches!(adopted, Some(Ok(_))) {
            if let Some(at) = &assembled {
                let _ = std::fs::remove_file(at);
            }
            if resumed {
                debug!(%dataset, "resumed fetch: hashing the whole file");
            }
            if let Err(e) = crate::verified::build_outboard(&blobs, &content, &partial, size) {
                if crate::verified::is_not_the_content(&e) {
                    return Ok(Err(format!("{e:#}")));
                }
                // Reading the file or writing the outboard failed (a full disk): that says
                // nothing against the file, which stays with its record for a later run.
                return Err(e);
            }
        }
        // The name must still be the file this fetch wrote: were it swapped for something
        // else meanwhile, that would be moved into place unverified.
        if !same_file(std::fs::symlink_metadata(&partial), &file) {
            warn!(%dataset, path = %partial.display(),
                "the temporary file was replaced during the fetch; not moved into place");
            bail!(
                "the temporary file {} was replaced by something else during the fetch; \
                 nothing was moved to {} (fetch again)",
                partial.display(),
                output.display()
            );
        }
        std::fs::rename(&partial, &output)
            .map_err(|e| disk("move the verified file to", &output, e))?;
        if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| disk("sync the directory", dir, e))?;
        }
        Ok(Ok(()))
    })
    .await
    .map_err(|e| anyhow!("completion task failed: {e}"))??;
    let store = &job.node.shared.store;
    if let Err(why) = placed {
        if resumed {
            // What an earlier run recorded changed on disk while no node watched it.
            warn!(dataset = %job.dataset, %why, "a resumed transfer does not verify");
        } else {
            // Every segment verified in this run, yet the whole does not: our own invariant.
            tracing::error!(dataset = %job.dataset, %why, "an assembled transfer does not verify");
        }
        let _ = std::fs::remove_file(&record.partial);
        store.remove_record(TRANSFERS_TREE, &job.key)?;
        store.flush_async().await?;
        return Err(Discarded(format!(
            "the assembled file does not match the content id{}; it was discarded, and the \
             same `cix fetch` starts afresh: {why}",
            if resumed {
                " (the temporary file changed between runs)"
            } else {
                ""
            }
        ))
        .into());
    }
    store.put_record(
        HELD_TREE,
        &content.to_hex(),
        &Held {
            dataset: entry.dataset.to_string(),
            path: record.output.clone(),
            size,
        },
    )?;
    store.remove_record(TRANSFERS_TREE, &job.key)?;
    store.flush_async().await?;
    if crate::custody::may_announce(
        &job.node.shared,
        &entry.iss,
        &entry.dataset,
        entry.level() == Level::Open,
    ) {
        // A custodian now (transfer.md §6): say so, for others to fetch from it too.
        let _ = job.node.provide(provider_key(&content)).await;
    }
    debug!(dataset = %entry.dataset, bytes = size, network = p.network, reused = p.reused,
        "fetched and verified");
    Ok(Fetched {
        dataset: entry.dataset.to_string(),
        title: entry.title.clone(),
        content_hash: content.to_hex(),
        bytes: size,
        path: record.output,
        from: entry.iss.to_string(),
        projection: None,
        network_bytes: p.network,
        reused_bytes: p.reused,
        sources,
        invocation,
        purpose,
    })
}

/// A projection (ISO 37156 8.2.2 c): the whole stream from the owner, verified against the
/// hash it states (transfer.md §6.2).
async fn fetch_projection(
    node: &Node,
    signed: &SignedEntry,
    out: &Path,
    creds: Option<(Invocation, Vec<Vec<u8>>)>,
    asked: Vec<String>,
    purpose: Option<String>,
    progress: &mut (impl FnMut(&Progress) + Send),
) -> Result<Fetched> {
    let entry = &signed.entry;
    let (content, entry_size) = entry
        .held()
        .map(|(_, c, n)| (c, n))
        .map_err(|e| anyhow!("{e}"))?;
    let owner = entry.iss;
    let (invocation, proofs, cid) = match creds {
        Some((inv, proofs)) => {
            let (bytes, cid) = inv
                .seal(&node.shared.key)
                .map_err(|e| anyhow!("cannot sign invocation: {e}"))?;
            (Some(bytes), proofs, Some(cid.to_string()))
        }
        None => (None, Vec::new(), None),
    };
    let req = TransferRequest {
        dataset: entry.dataset,
        content,
        ranges: Vec::new(),
        invocation,
        proofs: proofs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        profile: (entry.level() != Level::Open).then(|| node.shared.profile.bytes.clone()),
    };
    let audit = crate::audit::Fetching::start(&node.shared, owner, &req, entry).await;
    let (mut stream, header) = send_transfer(node, &owner, &req).await?;
    let (length, expected, projection) = match header {
        TransferHeader::Refused { code, reason } => {
            bail!(
                "the owner refused the transfer ({}): {reason}",
                code_text(code)
            )
        }
        TransferHeader::Ok { size, .. } if size != entry_size => {
            bail!(
                "the owner offers {size} bytes but the catalogue entry says {}",
                entry_size
            )
        }
        TransferHeader::Ok {
            projection: None, ..
        } => {
            warn!(dataset = %entry.dataset, "owner sent the whole file when fields were asked");
            bail!("the owner sent the whole dataset, but this node asked for some fields only");
        }
        TransferHeader::Ok {
            length,
            projection: Some(p),
            ..
        } => {
            // ISO 37156 8.2.2 c: exactly the fields asked for, verified against the hash the
            // owner stated (authenticated by the Noise session with the owner's PeerId).
            if asked != p.fields {
                warn!(dataset = %entry.dataset, "owner's projection holds other fields than asked");
                bail!(
                    "the owner sent a projection on other fields ({}) than this node asked for",
                    rules::clip(p.fields.join(", "))
                );
            }
            if length != p.size || p.size > limits::MAX_DATASET_BYTES {
                bail!(
                    "the owner's projection header is inconsistent ({length} bytes follow, the \
                     projection has {})",
                    p.size
                );
            }
            let about = FetchedProjection {
                fields: p.fields,
                of_content: content.to_hex(),
            };
            (length, p.content, about)
        }
    };
    let mut raw = |got: u64, total: u64| {
        progress(&Progress {
            bytes: got,
            total,
            network: got,
            reused: 0,
        })
    };
    let bytes = receive(&mut stream, out, &expected, length, &mut raw).await?;
    debug!(dataset = %entry.dataset, bytes, "projection fetched and verified");
    audit.done(bytes, &expected).await;
    let fetched = Fetched {
        dataset: entry.dataset.to_string(),
        title: entry.title.clone(),
        content_hash: expected.to_hex(),
        bytes,
        path: out.to_path_buf(),
        from: owner.to_string(),
        projection: Some(projection),
        network_bytes: bytes,
        reused_bytes: 0,
        sources: vec![SourceReport {
            peer: peer_of_did(&owner)?.to_string(),
            bytes,
            state: "ok".into(),
            reason: None,
        }],
        invocation: cid,
        purpose,
    };
    crate::receipts::after_fetch(node, &crate::receipts::Basis::of_request(&req)?, &fetched).await;
    Ok(fetched)
}

fn code_text(code: DenyCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Opens a transfer stream to `owner`, sends `req` and reads the owner's header. The bytes,
/// if any, follow on the returned stream. [`fetch`] uses it; so can tests and tools that build
/// their own request.
///
/// # Errors
///
/// If the owner cannot be reached, or its answer is late or malformed.
pub async fn send_transfer(
    node: &Node,
    owner: &Did,
    req: &TransferRequest,
) -> Result<(libp2p::Stream, TransferHeader)> {
    send_transfer_to(node, peer_of_did(owner)?, req).await
}

/// [`send_transfer`] to any peer: the owner or a custodian.
///
/// # Errors
///
/// If the peer cannot be reached, or its answer is late or malformed.
pub async fn send_transfer_to(
    node: &Node,
    peer: PeerId,
    req: &TransferRequest,
) -> Result<(libp2p::Stream, TransferHeader)> {
    let mut stream = open_stream_to(node, peer).await?;
    write_message(&mut stream, req, limits::MAX_TRANSFER_REQUEST_BYTES).await?;
    let header: TransferHeader = tokio::time::timeout(
        IDLE_TIMEOUT,
        read_message(&mut stream, limits::MAX_TRANSFER_HEADER_BYTES),
    )
    .await
    .map_err(|_| anyhow!("the owner did not answer in time"))?
    .context("the owner's answer was malformed")?;
    Ok((stream, header))
}

/// Opens a `/cix/transfer/1` stream to `owner` and writes nothing on it. [`send_transfer`]
/// sends its framed request on it; tests and tools use it to send bytes that are not a valid
/// request at all (an over-limit length prefix, say) and see what the owner does.
///
/// # Errors
///
/// If the owner cannot be reached or refuses the protocol.
pub async fn open_transfer_stream(node: &Node, owner: &Did) -> Result<libp2p::Stream> {
    open_stream_to(node, peer_of_did(owner)?).await
}

async fn open_stream_to(node: &Node, peer: PeerId) -> Result<libp2p::Stream> {
    if !node.locate(peer).await? {
        bail!("cannot reach {peer}: not connected and no address known (is it running?)");
    }
    let mut control = node.control();
    control
        .open_stream(peer, protocol())
        .await
        .map_err(|e| anyhow!("cannot open a transfer stream to {peer}: {e}"))
}

/// The delegation chain this node holds for fetching `signed`'s dataset from its owner, root
/// first: the grant from a request to the owner, else a chain it received (`cix tokens import`;
/// a secondary publisher's re-delegation, ISO 37156 9.2 e) that is rooted in the owner, covers
/// fetching or republishing, names the dataset and has not expired (the one lasting longest).
/// Asks the owner again when a request is pending.
async fn held_chain(node: &Node, signed: &SignedEntry) -> Result<Vec<Vec<u8>>> {
    let entry = &signed.entry;
    let level = entry.level();
    let id = entry.dataset;
    let mut prior = node.shared.store.request_out(&id)?;
    let granted = |p: &Option<crate::store::OutgoingRequest>| {
        p.as_ref()
            .is_some_and(|p| p.status == "granted" && !p.delegation.is_empty())
    };
    // A revoked or expired grant is skipped (a chain imported since may still serve), and
    // explained if nothing else does.
    let mut dead = None;
    if granted(&prior) {
        let delegation = prior
            .as_ref()
            .map(|p| p.delegation.clone())
            .unwrap_or_default();
        match crate::revoke::grant_unusable(&node.shared, &delegation)? {
            None => return Ok(vec![delegation]),
            Some(why) => dead = Some(why),
        }
    }
    if let Some(chain) = received_chain(node, entry)? {
        debug!(dataset = %id, depth = chain.len(), "fetching under a received delegation chain");
        return Ok(chain);
    }
    if let Some(why) = dead {
        bail!(
            "the grant for {id} {why}; ask its owner again with `cix request {id} --purpose TEXT`"
        );
    }
    if prior.is_none() {
        let hint = if level == Level::SharedPublic {
            " --accept-terms"
        } else if level == Level::SharedGroup {
            " --attestation FILE"
        } else {
            ""
        };
        bail!(
            "{level} data needs a grant from its owner: run `cix request {id} --purpose TEXT{hint}` first"
        );
    }
    // Ask again: the owner may have decided since.
    let outcome = crate::access::request(node, id, "", false).await?;
    match outcome.status.as_str() {
        "granted" => prior = node.shared.store.request_out(&id)?,
        "pending" => bail!(
            "access to {id} is still waiting for the owner's approval (the owner runs `cix requests approve`)"
        ),
        "denied" => bail!(
            "access to {id} was denied by the owner: {}",
            outcome.reason.unwrap_or_default()
        ),
        other => bail!("unexpected access status {other}"),
    }
    if !granted(&prior) {
        bail!("the owner answered granted but no grant was kept");
    }
    Ok(vec![prior.map(|p| p.delegation).unwrap_or_default()])
}

/// A received chain usable for `entry`'s dataset, if any (see [`held_chain`]).
fn received_chain(node: &Node, entry: &Entry) -> Result<Option<Vec<Vec<u8>>>> {
    let t = now();
    let me = node.did();
    let dataset = entry.dataset.to_string();
    let mut best: Option<(i64, Vec<Vec<u8>>)> = None;
    for (cid, record) in node.shared.store.received()? {
        let mut links = Vec::with_capacity(record.chain.len());
        for bytes in &record.chain {
            match Delegation::decode(bytes) {
                Ok((d, _)) => links.push(d),
                Err(e) => {
                    warn!(token = %cid, error = %e, "stored delegation chain no longer decodes");
                    break;
                }
            }
        }
        let (Some(root), Some(last)) = (links.first(), links.last()) else {
            continue;
        };
        if links.len() != record.chain.len() {
            continue;
        }
        let covers = command_covers(&last.cmd, ucan::CMD_FETCH)
            || command_covers(&last.cmd, ucan::CMD_REPUBLISH);
        let exp = links.iter().filter_map(|d| d.exp).min().unwrap_or(i64::MAX);
        let usable = root.iss == entry.iss
            && root.sub == Some(entry.iss)
            && last.aud == me
            && covers
            && exp > t
            && caveats::pinned_text(&root.pol, caveats::ARG_DATASET).as_deref()
                == Some(dataset.as_str());
        let usable = usable && crate::revoke::revoked(&node.shared, &record)?.is_none();
        if usable && best.as_ref().is_none_or(|(e, _)| exp > *e) {
            best = Some((exp, record.chain.iter().map(|b| b.to_vec()).collect()));
        }
    }
    Ok(best.map(|(_, chain)| chain))
}

/// The invocation (unsigned) and proofs for fetching `signed`, or none for open data. Its
/// arguments meet the chain's caveats: the purpose granted, this node's jurisdiction (from its
/// config, as its signed profile states), the hash of the terms it accepted, and the retention
/// it keeps to (the shortest the chain and the entry allow).
///
/// # Errors
///
/// Closed data, no usable grant, or a grant whose command does not include fetching.
pub async fn credentials(
    node: &Node,
    signed: &SignedEntry,
) -> Result<Option<(Invocation, Vec<Vec<u8>>)>> {
    let entry = &signed.entry;
    match entry.level() {
        Level::Open => return Ok(None),
        Level::Closed => bail!("the dataset is closed (ISO 37156 5.5.2) and cannot be fetched"),
        _ => {}
    }
    let id = entry.dataset;
    let chain = held_chain(node, signed).await?;
    let mut links = Vec::with_capacity(chain.len());
    for bytes in &chain {
        let (d, cid) =
            Delegation::decode(bytes).map_err(|e| anyhow!("stored grant is invalid: {e}"))?;
        links.push((d, cid));
    }
    let t = now();
    if links.iter().any(|(d, _)| d.exp.is_some_and(|e| e <= t)) {
        bail!("the grant for {id} has expired: request access again");
    }
    let last_cmd = links.last().map(|(d, _)| d.cmd.clone()).unwrap_or_default();
    let cmd = if command_covers(&last_cmd, ucan::CMD_FETCH) {
        ucan::CMD_FETCH
    } else if command_covers(&last_cmd, ucan::CMD_REPUBLISH) {
        ucan::CMD_REPUBLISH
    } else {
        bail!("the delegation held for {id} is for {last_cmd}, which does not include fetching");
    };

    let text = |s: String| ciborium::Value::Text(s);
    let mut args = BTreeMap::new();
    args.insert(caveats::ARG_DATASET.to_string(), text(id.to_string()));
    args.insert(
        caveats::ARG_CONTENT.to_string(),
        text(entry.held().map(|(_, c, _)| c.to_hex()).unwrap_or_default()),
    );
    args.insert(
        caveats::ARG_JURISDICTION.to_string(),
        text(node.shared.config.jurisdiction.clone()),
    );
    if let Some(purpose) = links
        .iter()
        .find_map(|(d, _)| caveats::pinned_text(&d.pol, caveats::ARG_PURPOSE))
    {
        args.insert(caveats::ARG_PURPOSE.to_string(), text(purpose));
    }
    if let Some(terms) = &entry.iso.terms {
        args.insert(
            caveats::ARG_TERMS.to_string(),
            text(caveats::terms_hash(terms)),
        );
    }
    let bound = links
        .iter()
        .filter_map(|(d, _)| caveats::retention_bound(&d.pol))
        .chain(entry.iso.privacy.retention_days.map(i128::from))
        .min();
    if let Some(days) = bound {
        let days = u32::try_from(days.max(0)).unwrap_or(u32::MAX);
        args.insert(
            caveats::ARG_RETENTION_DAYS.to_string(),
            ciborium::Value::Integer(days.into()),
        );
    }
    if let Some(fields) = fields_to_ask(entry, &links)? {
        args.insert(
            caveats::ARG_FIELDS.to_string(),
            ciborium::Value::Array(fields.into_iter().map(text).collect()),
        );
    }
    let inv = Invocation {
        iss: node.did(),
        sub: entry.iss,
        aud: Some(entry.iss),
        cmd: cmd.into(),
        args,
        prf: links.iter().map(|(_, cid)| *cid).collect::<Vec<Cid>>(),
        exp: Some(t + INVOCATION_TTL_SECS),
        iat: Some(t),
        nonce: rand::random::<[u8; 16]>().to_vec(),
        meta: None,
        cause: None,
    };
    Ok(Some((inv, chain)))
}

/// The fields to state when the chain limits them (ISO 37156 8.2.2 c): every field all its
/// links permit that the entry's dictionary still has, in the dataset's column order; `None`
/// when no link limits fields.
fn fields_to_ask(entry: &Entry, links: &[(Delegation, Cid)]) -> Result<Option<Vec<String>>> {
    let Some(mut names) = caveats::permitted_by_all(links.iter().map(|(d, _)| &d.pol)) else {
        return Ok(None);
    };
    let id = entry.dataset;
    names.retain(|n| entry.iso.dictionary.iter().any(|f| &f.name == n));
    if names.is_empty() {
        bail!(
            "the grant for {id} permits only fields that its current data dictionary no longer \
             has: ask the owner for a new grant"
        );
    }
    let columns = caveats::field_columns(entry, &names)
        .map_err(|e| anyhow!("the grant for {id} limits fields, but {e}"))?;
    Ok(Some(caveats::column_names(entry, &columns)))
}

fn partial_file(out: &Path) -> Result<tempfile::NamedTempFile> {
    let (dir, name) = target_of(out)?;
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".cix-partial")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

async fn receive(
    stream: &mut libp2p::Stream,
    out: &Path,
    expected: &ContentHash,
    length: u64,
    progress: &mut (impl FnMut(u64, u64) + Send),
) -> Result<u64> {
    let tmp = partial_file(out)?;
    let mut file = tokio::fs::File::from_std(tmp.reopen()?);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    progress(0, length);
    while got < length {
        let want = CHUNK.min((length - got) as usize);
        // Fill the whole buffer before hashing and writing: the muxer hands over a frame at a
        // time, and one file write per frame costs a blocking-pool round trip each.
        let mut n = 0;
        while n < want {
            let read = tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf[n..want]))
                .await
                .map_err(|_| {
                    anyhow!(
                        "the transfer stalled after {} of {length} bytes",
                        got + n as u64
                    )
                })??;
            if read == 0 {
                bail!(
                    "the owner closed the transfer after {} of {length} bytes; nothing was \
                     written",
                    got + n as u64
                );
            }
            n += read;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .await
            .with_context(|| format!("cannot write beside {} (disk full?)", out.display()))?;
        got += n as u64;
        progress(got, length);
    }
    let actual: ContentHash = hasher.finalize().into();
    if &actual != expected {
        warn!(expected = %expected, actual = %actual, "received bytes do not match the catalogue");
        bail!(
            "the received bytes do not match the dataset's BLAKE3 {expected}; nothing was written"
        );
    }
    file.flush().await?;
    file.sync_all().await?;
    drop(file);
    tmp.persist(out)
        .with_context(|| format!("cannot move the verified file to {}", out.display()))?;
    Ok(got)
}

/// Copies a local blob to `out` through a verified temporary file.
async fn write_verified_copy(
    blob: &Path,
    out: &Path,
    expected: &ContentHash,
) -> Result<(ContentHash, u64)> {
    let blob = blob.to_path_buf();
    let out = out.to_path_buf();
    let expected = *expected;
    tokio::task::spawn_blocking(move || {
        let tmp = partial_file(&out)?;
        let mut src = std::fs::File::open(&blob)
            .with_context(|| format!("blob {} is missing", blob.display()))?;
        let mut dst = tmp.reopen()?;
        let mut hasher = blake3::Hasher::new();
        let n = std::io::copy(&mut src, &mut blake3_tee(&mut hasher, &mut dst))?;
        let h: ContentHash = hasher.finalize().into();
        if h != expected {
            tracing::error!(blob = %blob.display(), "stored blob does not match its hash");
            bail!(
                "the stored copy {} is damaged: it no longer hashes to content id {}; restore \
                 it by publishing the original file again (`cix publish FILE --dataset ID`), or \
                 fetch the dataset again from a peer",
                blob.display(),
                expected.to_hex()
            );
        }
        dst.sync_all()?;
        tmp.persist(&out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        Ok((h, n))
    })
    .await
    .map_err(|e| anyhow!("copy task failed: {e}"))?
}

struct Tee<'a, W> {
    hasher: &'a mut blake3::Hasher,
    inner: &'a mut W,
}

fn blake3_tee<'a, W: std::io::Write>(
    hasher: &'a mut blake3::Hasher,
    inner: &'a mut W,
) -> Tee<'a, W> {
    Tee { hasher, inner }
}

impl<W: std::io::Write> std::io::Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A final name near the file systems' 255 bytes still gets a temporary file: its name is
    /// hashed there; a usual name is kept, so that an operator recognises the file.
    #[test]
    fn temporary_names_stay_within_255_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let content = ContentHash::of(b"x");
        let short = partial_path(&dir.path().join("load.csv"), &content).unwrap();
        let short = short.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            short.starts_with(".load.csv.") && short.ends_with(".cix-partial"),
            "{short}"
        );
        let long = "n".repeat(240);
        let p = partial_path(&dir.path().join(&long), &content).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= 255, "{}", name.len());
        std::fs::write(&p, b"ok").unwrap();
        assert_eq!(p, partial_path(&dir.path().join(&long), &content).unwrap());
    }
}
