//! Receipts, deletion notices and retention on `/cix/receipt/1` (ISO 37156 8.3.4, 9.4, 8.2.2 e).
//!
//! - The provider notes every transfer it serves ([`served`]): peer, dataset, content,
//!   invocation, purpose and bytes, in the `served` tree, until a receipt claims it.
//! - The receiver, once a fetch verified ([`after_fetch`]), signs a [`Receipt`], keeps it and
//!   sends it to the provider; the provider checks it (signed by the connected peer, for a
//!   transfer it served that peer with that content, bytes and invocation), counter-signs it and
//!   keeps the pair; the receiver keeps the counter-signature. A refusal names what was wrong.
//! - Data received under a retention period is tracked in `held`; a background task, which
//!   also runs at start-up, deletes the file `cix fetch` wrote when the period runs out (only if
//!   it still holds the bytes received), signs a [`DeletionNotice`] and sends it to the
//!   provider, retrying on every sweep until the provider notes it.
//! - The same protocol answers a request for the node's signed profile, so `cix privacy notice
//!   PEER` can show a peer's privacy notice (8.3.3).
//!
//! The protocol is request-response on a libp2p stream: one framed [`ReceiptRequest`], one
//! framed [`ReceiptResponse`] (the framing of [`crate::codec`]).
//!
//! | tree | key | value |
//! |---|---|---|
//! | `receipts` | receipt id (32 bytes) | [`KeptReceipt`] |
//! | `served` | match key (32 bytes), then a random suffix (8 bytes) | [`ServedTransfer`] |
//! | `held` | receipt id (32 bytes) | [`Held`]: received data under a retention period |
//! | `deletions` | notice id (32 bytes) | [`KeptDeletion`] |

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use cix_protocol::audit::AuditKind;
use cix_protocol::catalogue::DatasetId;
use cix_protocol::caveats;
use cix_protocol::content::ContentHash;
use cix_protocol::identity::Did;
use cix_protocol::limits;
use cix_protocol::profile::SignedProfile;
use cix_protocol::receipt::{
    Bundle, DeletionNotice, Receipt, ReceiptRequest, ReceiptResponse, SignedAck, SignedDeletion,
    SignedReceipt, RECEIPT_PROTOCOL,
};
use cix_protocol::ucan::{Cid, Invocation};
use cix_protocol::wire::TransferRequest;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::{debug, info, warn};

use crate::audit::{self, AuditEvent};
use crate::exchange::Exchange;
use crate::node::{did_of_peer, Node, NodeEvent, Shared};
use crate::transfer::Fetched;

/// How long either side waits for the other on `/cix/receipt/1`.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most served transfers a provider remembers awaiting their receipt; past it the oldest are
/// forgotten (their receipts are then refused as unknown).
pub const MAX_SERVED_PENDING: usize = 100_000;
/// Most receipt requests served at once.
pub const MAX_CONCURRENT_RECEIPTS: usize = 32;

/// `RECEIPT_PROTOCOL`: one request, one answer, bounded each way ([`crate::exchange`]).
const EXCHANGE: Exchange = Exchange {
    protocol: RECEIPT_PROTOCOL,
    request_limit: limits::MAX_RECEIPT_REQUEST_BYTES,
    response_limit: limits::MAX_RECEIPT_RESPONSE_BYTES,
    timeout: RECEIPT_TIMEOUT,
    concurrent: MAX_CONCURRENT_RECEIPTS,
};
/// Seconds in a retention day, unless the testing knob `retention_day_secs` shortens it.
pub const DAY_SECS: u64 = 86_400;

tokio::task_local! {
    /// When the fetch being run started, Unix milliseconds; set by the admin API around
    /// [`crate::transfer::fetch`].
    pub static FETCH_STARTED: i64;
}

/// The sled tree of data kept under a retention period, keyed by receipt id (distinct from
/// [`crate::transfer::HELD_TREE`], the copies this node may serve as a custodian).
const RETAINED_TREE: &str = "retained";

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A receipt kept by either side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptReceipt {
    /// `receiver` or `provider`: which side this node was.
    pub role: String,
    /// The receipt envelope.
    pub receipt: ByteBuf,
    /// The provider's counter-signature, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<ByteBuf>,
    /// The provider's refusal, when it refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// A transfer the provider served, awaiting its receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServedTransfer {
    /// The receiver.
    pub peer: Did,
    /// The dataset.
    pub dataset: DatasetId,
    /// What the invocation named, or the dataset's content for open data.
    pub content: ContentHash,
    /// Bytes sent.
    pub bytes: u64,
    /// The invocation's CID.
    pub invocation: Option<Cid>,
    /// The purpose the invocation stated (ISO 37156 8.2.2 b): the receipt must state the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// When it ended, Unix milliseconds.
    pub at: i64,
}

/// Data this node received under a retention period (ISO 37156 8.2.2 e).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Held {
    /// The receipt of the transfer.
    #[serde(with = "serde_bytes")]
    pub receipt: [u8; 32],
    /// The dataset.
    pub dataset: DatasetId,
    /// The provider.
    pub provider: Did,
    /// BLAKE3 of the bytes written.
    pub content: ContentHash,
    /// The file `cix fetch` wrote.
    pub path: PathBuf,
    /// The retention period, in days.
    pub retention_days: u32,
    /// When it runs out, Unix milliseconds.
    pub expires: i64,
}

/// A deletion notice kept by either side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptDeletion {
    /// `receiver` (this node deleted) or `provider` (a receiver told this node).
    pub role: String,
    /// The notice envelope.
    pub notice: ByteBuf,
    /// Whether the provider has noted it (always true on the provider's side).
    pub delivered: bool,
    /// What was deleted, in words (receiver side).
    #[serde(default)]
    pub what: String,
}

fn tree(shared: &Shared, name: &str) -> Result<sled::Tree> {
    shared.store.tree(name)
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    cix_protocol::cbor::to_vec(v).map_err(|e| anyhow!("cannot encode: {e}"))
}

fn dec<T: Serialize + serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    cix_protocol::cbor::from_slice(bytes, 1 << 20).map_err(|e| anyhow!("corrupt {what}: {e}"))
}

fn match_key(peer: &Did, dataset: &DatasetId, content: &ContentHash) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(peer.to_string().as_bytes());
    h.update(&dataset.0);
    h.update(&content.0);
    *h.finalize().as_bytes()
}

/// Provider side: notes a transfer served to `peer`, so that its receipt can be checked.
pub fn served(shared: &Shared, peer: &PeerId, req: &TransferRequest, bytes: u64) {
    let Some(did) = did_of_peer(peer) else {
        return;
    };
    let invocation = req.invocation.as_deref().map(Cid::of_token);
    // The invocation was validated before anything was served; its purpose is what was granted.
    let purpose = req
        .invocation
        .as_deref()
        .and_then(|b| Invocation::decode(b).ok())
        .and_then(|(inv, _)| {
            inv.args
                .get(caveats::ARG_PURPOSE)
                .and_then(|v| v.as_text())
                .map(str::to_owned)
        });
    let record = ServedTransfer {
        peer: did,
        dataset: req.dataset,
        content: req.content,
        bytes,
        invocation,
        purpose,
        at: now_ms(),
    };
    let result = (|| -> Result<()> {
        let t = tree(shared, "served")?;
        if t.len() >= MAX_SERVED_PENDING {
            if let Some((k, _)) = t.iter().next().transpose()? {
                t.remove(k)?;
            }
        }
        // One note per stream served: a fetch of verified ranges takes several (transfer.md
        // §7), and its receipt covers them together.
        let mut key = match_key(&did, &req.dataset, &req.content).to_vec();
        key.extend_from_slice(&rand::random::<[u8; 8]>());
        t.insert(key, enc(&record)?)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot note a served transfer");
    }
}

/// What a fetch was made under, for its receipts: the dataset, the catalogue's content id,
/// the invocation (the first of the fetch, when it signed one per stream) and what it stated.
#[derive(Debug, Clone)]
pub struct Basis {
    /// Dataset id.
    pub dataset: DatasetId,
    /// The content the invocation names (the catalogue's, also for a projection).
    pub content: ContentHash,
    /// The invocation's CID; none for open data.
    pub invocation: Option<Cid>,
    /// The purpose it states.
    pub purpose: Option<String>,
    /// The retention it states, in days.
    pub retention_days: Option<u32>,
    /// When it was issued, Unix seconds.
    pub iat: Option<i64>,
}

impl Basis {
    /// The basis of a fetch made under `inv` (with id `cid`), or of open data when `None`.
    pub fn of(dataset: DatasetId, content: ContentHash, inv: Option<(&Invocation, Cid)>) -> Self {
        let (invocation, purpose, retention_days, iat) = match inv {
            Some((inv, cid)) => {
                let purpose = inv
                    .args
                    .get(caveats::ARG_PURPOSE)
                    .and_then(|v| v.as_text())
                    .map(str::to_owned);
                let days = inv
                    .args
                    .get(caveats::ARG_RETENTION_DAYS)
                    .and_then(|v| v.as_integer())
                    .and_then(|n| u32::try_from(n).ok());
                (Some(cid), purpose, days, inv.iat)
            }
            None => (None, None, None, None),
        };
        Basis {
            dataset,
            content,
            invocation,
            purpose,
            retention_days,
            iat,
        }
    }

    /// The basis of a single-stream fetch made with `req`.
    ///
    /// # Errors
    ///
    /// If its invocation does not decode.
    pub fn of_request(req: &TransferRequest) -> Result<Self> {
        let decoded = match req.invocation.as_deref() {
            Some(bytes) => Some(Invocation::decode(bytes).map_err(|e| anyhow!("invocation: {e}"))?),
            None => None,
        };
        Ok(Self::of(
            req.dataset,
            req.content,
            decoded.as_ref().map(|(inv, cid)| (inv, *cid)),
        ))
    }
}

/// Receiver side: called when a fetch has verified its bytes. Signs and keeps a receipt for
/// each provider that delivered bytes in this run (the bytes it delivered), sends it and keeps
/// its counter-signature, and starts tracking the data's retention. Failures are logged; the
/// fetch itself stands.
pub async fn after_fetch(node: &Node, basis: &Basis, fetched: &Fetched) {
    if fetched.from == node.did().to_string() {
        return;
    }
    let mut providers: Vec<(Did, u64)> = fetched
        .sources
        .iter()
        .filter(|s| s.bytes > 0)
        .filter_map(|s| {
            let peer: PeerId = s.peer.parse().ok()?;
            Some((did_of_peer(&peer)?, s.bytes))
        })
        .collect();
    if providers.is_empty() && fetched.network_bytes > 0 {
        if let Ok(owner) = fetched.from.parse::<Did>() {
            providers.push((owner, fetched.network_bytes));
        }
    }
    for (provider, bytes) in providers {
        if let Err(e) = receipt_for(node, basis, fetched, provider, bytes).await {
            warn!(dataset = %fetched.dataset, %provider, error = %format!("{e:#}"),
                "no receipt for this fetch");
        }
    }
}

async fn receipt_for(
    node: &Node,
    basis: &Basis,
    fetched: &Fetched,
    provider: Did,
    bytes: u64,
) -> Result<()> {
    let shared = &node.shared;
    let end = now_ms();
    let (invocation, purpose, iat) = (basis.invocation, basis.purpose.clone(), basis.iat);
    let mut retention = basis.retention_days;
    if retention.is_none() {
        retention = shared
            .store
            .latest_entry(&basis.dataset)?
            .and_then(|e| e.entry.iso.privacy.retention_days);
    }
    let start = FETCH_STARTED
        .try_with(|s| *s)
        .ok()
        .or(iat.map(|t| t.saturating_mul(1000)))
        .unwrap_or(end)
        .min(end);
    let receipt = Receipt {
        iss: node.did(),
        provider,
        dataset: basis.dataset,
        // The content the invocation names (the catalogue's); a projection's own hash is in
        // the fetch's output.
        content: basis.content,
        bytes,
        invocation,
        purpose,
        retention_days: retention,
        start,
        end,
    }
    .seal(&shared.key)
    .map_err(|e| anyhow!("cannot sign the receipt: {e}"))?;
    let id = receipt.id;
    let kept = KeptReceipt {
        role: "receiver".into(),
        receipt: ByteBuf::from(receipt.bytes.clone()),
        ack: None,
        refused: None,
    };
    let receipts = tree(shared, "receipts")?;
    receipts.insert(id, enc(&kept)?)?;
    if let Some(days) = retention {
        let content: ContentHash = fetched
            .content_hash
            .parse()
            .map_err(|e| anyhow!("content hash: {e:?}"))?;
        let day_ms = i64::try_from(day_secs(shared).saturating_mul(1000)).unwrap_or(i64::MAX);
        let held = Held {
            receipt: id,
            dataset: basis.dataset,
            provider,
            content,
            path: std::fs::canonicalize(&fetched.path).unwrap_or_else(|_| fetched.path.clone()),
            retention_days: days,
            expires: end.saturating_add(day_ms.saturating_mul(i64::from(days))),
        };
        tree(shared, RETAINED_TREE)?.insert(id, enc(&held)?)?;
        info!(dataset = %basis.dataset, days, expires = held.expires,
            "received data is kept under a retention period (ISO 37156 8.2.2 e)");
    }
    shared.store.flush_async().await?;
    let r = &receipt.receipt;
    let mut event = AuditEvent::new(AuditKind::Receipt)
        .dataset(basis.dataset)
        .peer(provider)
        .bytes(bytes)
        .content(basis.content)
        .detail(format!("receipt {} signed as receiver", receipt.id_hex()));
    if let Some(p) = &r.purpose {
        event = event.purpose(p.clone());
    }
    if let Some(c) = &r.invocation {
        event = event.token(c);
    }
    audit::log(shared, event).await;
    deliver(node, &receipt, kept).await
}

/// Sends a kept receipt to its provider and keeps the counter-signature or the refusal.
async fn deliver(node: &Node, receipt: &SignedReceipt, mut kept: KeptReceipt) -> Result<()> {
    let shared = &node.shared;
    let provider = receipt.receipt.provider;
    let dataset = receipt.receipt.dataset;
    let receipts = tree(shared, "receipts")?;
    match send(
        node,
        &provider,
        &ReceiptRequest::Receipt {
            receipt: ByteBuf::from(receipt.bytes.clone()),
        },
    )
    .await
    {
        Ok(ReceiptResponse::Countersigned { ack }) => {
            let ack = SignedAck::decode(&ack).map_err(|e| anyhow!("counter-signature: {e}"))?;
            receipt
                .check_ack(&ack)
                .map_err(|e| anyhow!("the provider's counter-signature: {e}"))?;
            kept.ack = Some(ByteBuf::from(ack.bytes));
            receipts.insert(receipt.id, enc(&kept)?)?;
            shared.store.flush_async().await?;
            info!(receipt = %receipt.id_hex(), "receipt counter-signed by the provider");
            audit::log(
                shared,
                AuditEvent::new(AuditKind::Receipt)
                    .dataset(dataset)
                    .peer(provider)
                    .detail(format!(
                        "receipt {} counter-signed by the provider",
                        receipt.id_hex()
                    )),
            )
            .await;
            shared.emit(NodeEvent::ReceiptCountersigned {
                receipt: receipt.id_hex(),
                dataset: dataset.to_string(),
            });
        }
        Ok(ReceiptResponse::Refused { reason }) => {
            warn!(receipt = %receipt.id_hex(), %reason, "the provider refused the receipt");
            kept.refused = Some(reason);
            receipts.insert(receipt.id, enc(&kept)?)?;
        }
        Ok(other) => bail!("the provider answered {other:?} to a receipt"),
        Err(e) => bail!("cannot deliver the receipt: {e:#}"),
    }
    Ok(())
}

/// Most unacknowledged receipts sent again in one sweep.
pub const MAX_RESENT_PER_SWEEP: usize = 32;

/// Sends again the receipts whose provider has not answered (it was offline, say): those made
/// more than two [`RECEIPT_TIMEOUT`]s ago, so that a first delivery still under way is left
/// alone.
async fn resend_receipts(node: &Node) -> Result<()> {
    let cutoff = now_ms() - 2 * i64::try_from(RECEIPT_TIMEOUT.as_millis()).unwrap_or(i64::MAX);
    let mut due = Vec::new();
    for item in tree(&node.shared, "receipts")?.iter() {
        let (_, v) = item?;
        let kept: KeptReceipt = dec(&v, "receipt")?;
        if kept.role != "receiver" || kept.ack.is_some() || kept.refused.is_some() {
            continue;
        }
        let receipt = SignedReceipt::decode(&kept.receipt)
            .map_err(|e| anyhow!("a kept receipt no longer verifies: {e}"))?;
        if receipt.receipt.end < cutoff {
            due.push((receipt, kept));
        }
        if due.len() >= MAX_RESENT_PER_SWEEP {
            break;
        }
    }
    for (receipt, kept) in due {
        if let Err(e) = deliver(node, &receipt, kept).await {
            debug!(receipt = %receipt.id_hex(), error = %format!("{e:#}"),
                "receipt not delivered yet; sent again on the next sweep");
        }
    }
    Ok(())
}

fn day_secs(shared: &Shared) -> u64 {
    shared.config.retention_day_secs.unwrap_or(DAY_SECS)
}

/// Sends one request on `/cix/receipt/1` and reads the answer.
///
/// # Errors
///
/// If the peer cannot be reached or its answer is late or malformed.
pub async fn send(node: &Node, to: &Did, req: &ReceiptRequest) -> Result<ReceiptResponse> {
    EXCHANGE.ask(node, to, req).await
}

/// Starts serving `/cix/receipt/1` and the retention task; both end when the node stops.
///
/// # Errors
///
/// If the protocol is already registered.
pub fn spawn(node: Node) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let accept =
        EXCHANGE.serve(
            node.clone(),
            |node: Node, peer, req: ReceiptRequest| async move {
                answer(&node.shared, &peer, req).await
            },
        )?;
    if let Some(secs) = node.shared.config.retention_day_secs {
        warn!(
            retention_day_secs = secs,
            "TESTING KNOB ON: a retention day lasts {secs} seconds, not 86400; received data \
             expires early. Never use this in production."
        );
    }
    let sweeper = node;
    let retention = tokio::spawn(async move {
        let mut stopping = sweeper.shared.stopping.clone();
        let period = Duration::from_secs((day_secs(&sweeper.shared) / 4).clamp(1, 60));
        while !*stopping.borrow() {
            // At start-up first: the node may have been down when a period ran out.
            if let Err(e) = sweep(&sweeper).await {
                tracing::error!(error = %format!("{e:#}"), "retention sweep failed");
            }
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                _ = stopping.changed() => break,
            }
        }
    });
    Ok(vec![accept, retention])
}

async fn answer(shared: &Shared, peer: &PeerId, req: ReceiptRequest) -> ReceiptResponse {
    let refuse = |reason: String| {
        warn!(%peer, %reason, "receipt refused");
        ReceiptResponse::Refused { reason }
    };
    let Some(sender) = did_of_peer(peer) else {
        return refuse("the connected peer has no ed25519 identity".into());
    };
    match req {
        ReceiptRequest::Receipt { receipt } => {
            match checked_soon(shared, &sender, &receipt).await {
                Ok(resp) => {
                    if let Err(e) = shared.store.flush_async().await {
                        tracing::error!(error = %e, "cannot flush a counter-signed receipt");
                    }
                    resp
                }
                Err(reason) => {
                    audit::log(
                        shared,
                        AuditEvent::new(AuditKind::Receipt)
                            .peer(sender)
                            .reason(reason.clone())
                            .detail("receipt refused"),
                    )
                    .await;
                    refuse(reason)
                }
            }
        }
        ReceiptRequest::Deletion { notice } => match note_deletion(shared, &sender, &notice) {
            Ok(()) => {
                if let Err(e) = shared.store.flush_async().await {
                    tracing::error!(error = %e, "cannot flush a deletion notice");
                }
                ReceiptResponse::Noted
            }
            Err(reason) => refuse(reason),
        },
        ReceiptRequest::Profile => ReceiptResponse::Profile {
            profile: ByteBuf::from(shared.profile.bytes.clone()),
        },
    }
}

/// The receiver may finish reading before this node has noted the transfer as served (the two
/// run concurrently): a receipt for an unknown transfer is looked for again for up to
/// [`SERVED_GRACE`] before it is refused.
async fn checked_soon(
    shared: &Shared,
    sender: &Did,
    bytes: &[u8],
) -> Result<ReceiptResponse, String> {
    let deadline = tokio::time::Instant::now() + SERVED_GRACE;
    loop {
        match check_receipt(shared, sender, bytes) {
            Err(Unserved(reason)) if tokio::time::Instant::now() < deadline => {
                debug!(%reason, "receipt for a transfer not yet noted; looking again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(Unserved(reason)) => return Err(reason),
            Ok(r) => return r,
        }
    }
}

/// How long a receipt for a transfer not (yet) noted as served is looked for again.
pub const SERVED_GRACE: Duration = Duration::from_secs(2);

struct Unserved(String);

/// Checks a receipt sent by `sender` and counter-signs it (ISO 37156 8.3.4). The outer error is
/// "no such transfer" (worth looking again shortly); the inner one any other refusal.
#[allow(clippy::result_large_err)]
fn check_receipt(
    shared: &Shared,
    sender: &Did,
    bytes: &[u8],
) -> Result<Result<ReceiptResponse, String>, Unserved> {
    Ok(match check_receipt_once(shared, sender, bytes) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => {
            let r = SignedReceipt::decode(bytes).map(|r| r.receipt);
            let Ok(r) = r else {
                return Ok(Err("receipt refused".into()));
            };
            let what = match &r.invocation {
                Some(c) => format!("under invocation {c}"),
                None => "without an invocation".into(),
            };
            return Err(Unserved(format!(
                "this node served no transfer of {} bytes of dataset {} (content {}) {what} to \
                 {sender}",
                r.bytes, r.dataset, r.content
            )));
        }
        Err(e) => Err(e),
    })
}

/// Checks a receipt sent by `sender` and counter-signs it; `None` when no served transfer
/// matches.
fn check_receipt_once(
    shared: &Shared,
    sender: &Did,
    bytes: &[u8],
) -> Result<Option<ReceiptResponse>, String> {
    let receipt = SignedReceipt::decode(bytes).map_err(|e| format!("receipt refused: {e}"))?;
    let r = &receipt.receipt;
    if &r.iss != sender {
        return Err(format!(
            "the receipt is signed by {}, not by the connected peer {sender}",
            r.iss
        ));
    }
    if r.provider != shared.did() {
        return Err(format!(
            "the receipt names another provider, {}",
            r.provider
        ));
    }
    let internal = |e: anyhow::Error| {
        tracing::error!(error = %e, "store failure while checking a receipt");
        "the provider's node could not check the receipt".to_string()
    };
    let receipts = tree(shared, "receipts").map_err(internal)?;
    if let Some(v) = receipts.get(receipt.id).map_err(|e| internal(e.into()))? {
        // Asked again (a retry): the same counter-signature.
        let kept: KeptReceipt = dec(&v, "receipt").map_err(internal)?;
        if let Some(ack) = kept.ack {
            return Ok(Some(ReceiptResponse::Countersigned { ack }));
        }
    }
    let served = tree(shared, "served").map_err(internal)?;
    let key = match_key(sender, &r.dataset, &r.content);
    // The streams served to this peer of this content and not yet receipted: the receipt
    // must name one of their invocations (or none, for open data) and at most their bytes.
    let mut notes = Vec::new();
    for item in served.scan_prefix(key) {
        let (k, v) = item.map_err(|e| internal(e.into()))?;
        let note: ServedTransfer = dec(&v, "served transfer").map_err(internal)?;
        notes.push((k, note));
    }
    let total: u64 = notes.iter().map(|(_, n)| n.bytes).sum();
    let Some((_, named)) = notes.iter().find(|(_, n)| n.invocation == r.invocation) else {
        return Ok(None);
    };
    if total < r.bytes {
        // Not (yet) that many bytes: the last stream's note may still be on its way.
        return Ok(None);
    }
    if named.purpose != r.purpose {
        return Err(format!(
            "the receipt states purpose {:?}, but the transfer was made for {:?} (ISO 37156 \
             8.2.2 b)",
            r.purpose, named.purpose
        ));
    }
    let ack = receipt
        .countersign(&shared.key, now_ms())
        .map_err(|e| internal(anyhow!("{e}")))?;
    let kept = KeptReceipt {
        role: "provider".into(),
        receipt: ByteBuf::from(receipt.bytes.clone()),
        ack: Some(ByteBuf::from(ack.bytes.clone())),
        refused: None,
    };
    receipts
        .insert(receipt.id, enc(&kept).map_err(internal)?)
        .map_err(|e| internal(e.into()))?;
    for (k, _) in &notes {
        served.remove(k).map_err(|e| internal(e.into()))?;
    }
    info!(receipt = %receipt.id_hex(), receiver = %sender, dataset = %r.dataset, bytes = r.bytes,
        "receipt checked and counter-signed");
    let mut event = AuditEvent::new(AuditKind::Receipt)
        .dataset(r.dataset)
        .peer(*sender)
        .bytes(r.bytes)
        .content(r.content)
        .detail(format!(
            "receipt {} received and counter-signed",
            receipt.id_hex()
        ));
    if let Some(p) = &r.purpose {
        event = event.purpose(p.clone());
    }
    if let Some(c) = &r.invocation {
        event = event.token(c);
    }
    audit::log_detached(shared, event);
    shared.emit(NodeEvent::ReceiptCountersigned {
        receipt: receipt.id_hex(),
        dataset: r.dataset.to_string(),
    });
    Ok(Some(ReceiptResponse::Countersigned {
        ack: ByteBuf::from(ack.bytes),
    }))
}

fn note_deletion(shared: &Shared, sender: &Did, bytes: &[u8]) -> Result<(), String> {
    let notice =
        SignedDeletion::decode(bytes).map_err(|e| format!("deletion notice refused: {e}"))?;
    let n = &notice.notice;
    if &n.iss != sender {
        return Err(format!(
            "the deletion notice is signed by {}, not by the connected peer {sender}",
            n.iss
        ));
    }
    if n.provider != shared.did() {
        return Err(format!(
            "the deletion notice names another provider, {}",
            n.provider
        ));
    }
    let kept = KeptDeletion {
        role: "provider".into(),
        notice: ByteBuf::from(notice.bytes.clone()),
        delivered: true,
        what: String::new(),
    };
    let internal = |e: anyhow::Error| {
        tracing::error!(error = %e, "store failure while keeping a deletion notice");
        "the provider's node could not keep the notice".to_string()
    };
    tree(shared, "deletions")
        .map_err(internal)?
        .insert(notice.id, enc(&kept).map_err(internal)?)
        .map_err(|e| internal(e.into()))?;
    info!(receiver = %sender, dataset = %n.dataset, "deletion notice received (ISO 37156 8.2.2 e)");
    audit::log_detached(
        shared,
        AuditEvent::new(AuditKind::DeletionNotice)
            .dataset(n.dataset)
            .peer(*sender)
            .content(n.content)
            .detail(format!(
                "deletion notice {} received: deleted after {} days",
                hex::encode(notice.id),
                n.retention_days
            )),
    );
    shared.emit(NodeEvent::DeletionNoted {
        dataset: n.dataset.to_string(),
        by: sender.to_string(),
    });
    Ok(())
}

/// Deletes what ran out, delivers pending deletion notices and sends again receipts the
/// provider never answered. Runs at start-up and then periodically.
///
/// # Errors
///
/// Store failures.
pub async fn sweep(node: &Node) -> Result<()> {
    let shared = &node.shared;
    let held = tree(shared, RETAINED_TREE)?;
    let deletions = tree(shared, "deletions")?;
    let now = now_ms();
    for item in held.iter() {
        let (k, v) = item?;
        let h: Held = dec(&v, "held record")?;
        if h.expires > now {
            continue;
        }
        let what = delete_file(&h).await;
        let notice = DeletionNotice {
            iss: node.did(),
            provider: h.provider,
            dataset: h.dataset,
            content: h.content,
            receipt: Some(h.receipt),
            retention_days: h.retention_days,
            deleted: now_ms(),
        }
        .seal(&shared.key)
        .map_err(|e| anyhow!("cannot sign a deletion notice: {e}"))?;
        let kept = KeptDeletion {
            role: "receiver".into(),
            notice: ByteBuf::from(notice.bytes.clone()),
            delivered: false,
            what: what.clone(),
        };
        deletions.insert(notice.id, enc(&kept)?)?;
        held.remove(k)?;
        shared.store.flush_async().await?;
        info!(dataset = %h.dataset, %what, "retention period over: data deleted (ISO 37156 8.2.2 e)");
        audit::log(
            shared,
            AuditEvent::new(AuditKind::Deletion)
                .dataset(h.dataset)
                .peer(h.provider)
                .content(h.content)
                .reason(format!("retention of {} days ran out", h.retention_days))
                .detail(what.clone()),
        )
        .await;
        shared.emit(NodeEvent::DataDeleted {
            dataset: h.dataset.to_string(),
            path: h.path.display().to_string(),
        });
    }
    for item in deletions.iter() {
        let (k, v) = item?;
        let mut kept: KeptDeletion = dec(&v, "deletion")?;
        if kept.delivered || kept.role != "receiver" {
            continue;
        }
        let notice = SignedDeletion::decode(&kept.notice)
            .map_err(|e| anyhow!("a kept deletion notice no longer verifies: {e}"))?;
        let provider = notice.notice.provider;
        match send(
            node,
            &provider,
            &ReceiptRequest::Deletion {
                notice: kept.notice.clone(),
            },
        )
        .await
        {
            Ok(ReceiptResponse::Noted) => {
                kept.delivered = true;
                deletions.insert(k, enc(&kept)?)?;
                shared.store.flush_async().await?;
                info!(dataset = %notice.notice.dataset, %provider, "deletion notice delivered");
                audit::log(
                    shared,
                    AuditEvent::new(AuditKind::DeletionNotice)
                        .dataset(notice.notice.dataset)
                        .peer(provider)
                        .content(notice.notice.content)
                        .detail(format!(
                            "deletion notice {} sent and noted",
                            hex::encode(notice.id)
                        )),
                )
                .await;
                shared.emit(NodeEvent::DeletionNoticeDelivered {
                    dataset: notice.notice.dataset.to_string(),
                    to: provider.to_string(),
                });
            }
            Ok(ReceiptResponse::Refused { reason }) => {
                warn!(%provider, %reason, "the provider refused a deletion notice; kept, not retried");
                kept.delivered = true;
                kept.what = format!("{} (the provider refused the notice: {reason})", kept.what);
                deletions.insert(k, enc(&kept)?)?;
            }
            Ok(_) | Err(_) => {
                debug!(%provider, "deletion notice not delivered yet; retried on the next sweep");
            }
        }
    }
    resend_receipts(node).await
}

/// Removes the fetched file if it still holds the bytes received; says what happened.
async fn delete_file(h: &Held) -> String {
    let path = h.path.clone();
    let expected = h.content;
    let r = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(format!("{} was already gone", path.display()));
            }
            Err(e) => return Err(e),
        };
        let (hash, _) = ContentHash::of_reader(std::io::BufReader::new(file))?;
        if hash != expected {
            return Ok(format!(
                "{} now holds other bytes and was left alone",
                path.display()
            ));
        }
        std::fs::remove_file(&path)?;
        Ok(format!("{} removed", path.display()))
    })
    .await;
    match r {
        Ok(Ok(what)) => what,
        Ok(Err(e)) => {
            warn!(path = %h.path.display(), error = %e, "cannot delete expired data");
            format!("{} could not be removed: {e}", h.path.display())
        }
        Err(e) => format!("deletion task failed: {e}"),
    }
}

/// One receipt as `cix receipts list|show` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptLine {
    /// Receipt id, BLAKE3 hex of the receipt envelope.
    pub id: String,
    /// `receiver` or `provider`.
    pub role: String,
    /// Dataset id.
    pub dataset: String,
    /// Content hash named.
    pub content: String,
    /// Bytes delivered.
    pub bytes: u64,
    /// The receiver.
    pub receiver: String,
    /// The provider.
    pub provider: String,
    /// Invocation CID, for granted data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation: Option<String>,
    /// Purpose stated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Retention days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Start, Unix ms.
    pub start: i64,
    /// End, Unix ms.
    pub end: i64,
    /// `countersigned`, `refused` or `unacknowledged`.
    pub status: String,
    /// Refusal reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The bundle (receipt and counter-signature), hex, for `show`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

fn line_of(kept: &KeptReceipt, with_bundle: bool) -> Result<ReceiptLine> {
    let receipt = SignedReceipt::decode(&kept.receipt)
        .map_err(|e| anyhow!("a kept receipt no longer verifies: {e}"))?;
    let ack = kept
        .ack
        .as_deref()
        .map(|a| SignedAck::decode(a))
        .transpose()
        .map_err(|e| anyhow!("a kept counter-signature no longer verifies: {e}"))?;
    let r = &receipt.receipt;
    let status = if ack.is_some() {
        "countersigned"
    } else if kept.refused.is_some() {
        "refused"
    } else {
        "unacknowledged"
    };
    let bundle = if with_bundle {
        let b = Bundle {
            receipt: receipt.clone(),
            ack: ack.clone(),
        };
        Some(hex::encode(b.to_bytes().map_err(|e| anyhow!("{e}"))?))
    } else {
        None
    };
    Ok(ReceiptLine {
        id: receipt.id_hex(),
        role: kept.role.clone(),
        dataset: r.dataset.to_string(),
        content: r.content.to_hex(),
        bytes: r.bytes,
        receiver: r.iss.to_string(),
        provider: r.provider.to_string(),
        invocation: r.invocation.map(|c| c.to_string()),
        purpose: r.purpose.clone(),
        retention_days: r.retention_days,
        start: r.start,
        end: r.end,
        status: status.into(),
        refused: kept.refused.clone(),
        bundle,
    })
}

/// Every receipt kept here.
///
/// # Errors
///
/// Store failures.
pub fn list(shared: &Shared) -> Result<Vec<ReceiptLine>> {
    let mut out = Vec::new();
    for item in tree(shared, "receipts")?.iter() {
        let (_, v) = item?;
        out.push(line_of(&dec(&v, "receipt")?, false)?);
    }
    out.sort_by_key(|l| l.end);
    Ok(out)
}

fn find(shared: &Shared, id: &str) -> Result<Option<KeptReceipt>> {
    let id = id.to_ascii_lowercase();
    if id.len() < 4 || !id.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("{id:?} is not a receipt id (64 hex digits, or a unique prefix of at least 4)");
    }
    let mut hits = Vec::new();
    for item in tree(shared, "receipts")?.iter() {
        let (k, v) = item?;
        if hex::encode(&k).starts_with(&id) {
            hits.push(dec::<KeptReceipt>(&v, "receipt")?);
        }
    }
    match hits.len() {
        0 => Ok(None),
        1 => Ok(hits.pop()),
        n => bail!("{n} receipts start with {id:?}; give more digits"),
    }
}

/// One receipt with its bundle.
///
/// # Errors
///
/// Unknown or ambiguous id, store failures.
pub fn show(shared: &Shared, id: &str) -> Result<ReceiptLine> {
    let kept = find(shared, id)?.ok_or_else(|| anyhow!("no receipt {id} is kept here"))?;
    line_of(&kept, true)
}

/// The outcome of `cix receipts verify`.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Whether it verified.
    pub valid: bool,
    /// Receipt id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Whether the provider's counter-signature is present and matches.
    pub countersigned: bool,
    /// Why not, when invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Verifies a bundle's bytes: the receiver's signature, the provider's counter-signature and
/// that they belong together. Needs no node.
pub fn verify_bundle(bytes: &[u8]) -> Verdict {
    match Bundle::decode(bytes) {
        Ok(b) => Verdict {
            valid: true,
            id: Some(b.receipt.id_hex()),
            countersigned: b.ack.is_some(),
            reason: None,
        },
        Err(e) => Verdict {
            valid: false,
            id: None,
            countersigned: false,
            reason: Some(e.to_string()),
        },
    }
}

/// Verifies a kept receipt by id.
///
/// # Errors
///
/// Unknown or ambiguous id.
pub fn verify_kept(shared: &Shared, id: &str) -> Result<Verdict> {
    let kept = find(shared, id)?.ok_or_else(|| anyhow!("no receipt {id} is kept here"))?;
    let receipt = match SignedReceipt::decode(&kept.receipt) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Verdict {
                valid: false,
                id: None,
                countersigned: false,
                reason: Some(e.to_string()),
            })
        }
    };
    let ack = kept
        .ack
        .as_deref()
        .map(|a| SignedAck::decode(a))
        .transpose();
    let bytes = match ack {
        Ok(ack) => Bundle { receipt, ack }
            .to_bytes()
            .map_err(|e| anyhow!("{e}"))?,
        Err(e) => {
            return Ok(Verdict {
                valid: false,
                id: Some(receipt.id_hex()),
                countersigned: false,
                reason: Some(e.to_string()),
            })
        }
    };
    Ok(verify_bundle(&bytes))
}

/// One deletion notice as `cix receipts deletions` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionLine {
    /// Notice id.
    pub id: String,
    /// `receiver` or `provider`.
    pub role: String,
    /// Dataset.
    pub dataset: String,
    /// Who deleted.
    pub receiver: String,
    /// Whose data it was.
    pub provider: String,
    /// Retention days that ran out.
    pub retention_days: u32,
    /// When, Unix ms.
    pub deleted: i64,
    /// Whether the provider noted it.
    pub delivered: bool,
    /// What was deleted.
    pub what: String,
}

/// Every deletion notice kept here, both roles.
///
/// # Errors
///
/// Store failures.
pub fn deletions(shared: &Shared) -> Result<Vec<DeletionLine>> {
    let mut out = Vec::new();
    for item in tree(shared, "deletions")?.iter() {
        let (_, v) = item?;
        let kept: KeptDeletion = dec(&v, "deletion")?;
        let n = SignedDeletion::decode(&kept.notice)
            .map_err(|e| anyhow!("a kept deletion notice no longer verifies: {e}"))?;
        out.push(DeletionLine {
            id: hex::encode(n.id),
            role: kept.role,
            dataset: n.notice.dataset.to_string(),
            receiver: n.notice.iss.to_string(),
            provider: n.notice.provider.to_string(),
            retention_days: n.notice.retention_days,
            deleted: n.notice.deleted,
            delivered: kept.delivered,
            what: kept.what,
        });
    }
    out.sort_by_key(|l| l.deleted);
    Ok(out)
}

/// Data held under a retention period, soonest expiry first.
///
/// # Errors
///
/// Store failures.
pub fn held(shared: &Shared) -> Result<Vec<Held>> {
    let mut out = Vec::new();
    for item in tree(shared, RETAINED_TREE)?.iter() {
        let (_, v) = item?;
        out.push(dec::<Held>(&v, "held record")?);
    }
    out.sort_by_key(|h| h.expires);
    Ok(out)
}

/// A peer's signed profile, asked for on `/cix/receipt/1` (for its privacy notice, 8.3.3).
///
/// # Errors
///
/// Unreachable peer, or a profile that does not verify or is not the peer's own.
pub async fn peer_profile(node: &Node, peer: &Did) -> Result<SignedProfile> {
    match send(node, peer, &ReceiptRequest::Profile).await? {
        ReceiptResponse::Profile { profile } => {
            let p = SignedProfile::decode(&profile)
                .map_err(|e| anyhow!("{peer} sent a profile that does not verify: {e}"))?;
            if &p.profile.iss != peer {
                warn!(%peer, "peer sent another agency's profile");
                bail!("{peer} sent a profile signed by {}", p.profile.iss);
            }
            Ok(p)
        }
        ReceiptResponse::Refused { reason } => bail!("{peer} refused: {reason}"),
        other => bail!("{peer} answered {other:?} to a profile request"),
    }
}
