//! The node's tamper-evident audit log (ISO 37156 8.3.4, 9.4): every publish, version,
//! withdrawal, access request, grant, denial, delegation, revocation and transfer is appended as
//! a signed, hash-chained `cix/audit@1` record (format in `cix_protocol::audit`, rules in
//! `specs/audit.md`).
//!
//! Appending is cheap: the record is signed and inserted under a short lock, then the caller
//! waits for a flush that covers it. Flushes are grouped: while one runs on a blocking thread,
//! later appends queue behind it and the next flush covers all of them at once, so a thousand
//! concurrent appends cost a handful of flushes, and every caller is acknowledged only once its
//! record is on disk.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `audit` | seq (8 bytes BE) | the record's envelope bytes, verbatim |
//! | `audit_held` | subject public key (32), seq (8 BE) | a peer's signed head (`cix/head@1`) |
//! | `audit_held_nodes` | subject public key (32) | empty: the nodes whose heads are held |
//! | `audit_witnessed` | witness public key (32), seq (8 BE) | a peer's counter-signature of our head (`cix/witness@1`) |
//!
//! Other modules log through [`append`] (await durability) or [`append_detached`] (for code
//! that must not wait, such as the network event loop).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use cix_protocol::audit::{
    clip, AuditHash, AuditKind, AuditRecord, Head, Signed, SignedRecord, Witness, GENESIS,
};
use cix_protocol::catalogue::DatasetId;
use cix_protocol::content::ContentHash;
use cix_protocol::identity::{Did, Keypair};
use cix_protocol::limits::{
    MAX_AUDIT_DETAIL_BYTES, MAX_AUDIT_TEXT_BYTES, MAX_PURPOSE_BYTES, MAX_REASON_BYTES,
    MAX_WITNESS_HEADS,
};
use serde::Serialize;

use crate::node::Shared;
use crate::store::Store;

/// A record's sequence number in the node's log.
pub type AuditSeq = u64;

/// Heads kept per peer: the newest [`HELD_RECENT`], plus one per power-of-two range of sequence
/// numbers for older ones (at most 64 more), so a peer's history stays sparsely witnessed
/// without growing.
pub const HELD_RECENT: usize = 16;
/// Most distinct nodes whose heads (or counter-signatures) are kept; heads from further nodes
/// are refused with a warning.
pub const MAX_WITNESSED_NODES: usize = 4096;

/// Something to log. Build it with [`AuditEvent::new`] and the setters; every field but the
/// kind is optional. Texts longer than the record's bounds are cut at a character boundary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEvent {
    /// What happened; `None` is logged as an `Other("event")` record, so prefer [`Self::new`].
    pub kind: Option<AuditKind>,
    /// The dataset concerned.
    pub dataset: Option<DatasetId>,
    /// The counterparty.
    pub peer: Option<Did>,
    /// The purpose stated.
    pub purpose: Option<String>,
    /// The legal basis that applied.
    pub basis: Option<String>,
    /// BLAKE3 of the terms text that applied.
    pub terms: Option<ContentHash>,
    /// CID of the token (delegation or invocation), as text.
    pub token: Option<String>,
    /// Bytes moved.
    pub bytes: Option<u64>,
    /// BLAKE3 of the data.
    pub content: Option<ContentHash>,
    /// Why.
    pub reason: Option<String>,
    /// Free detail.
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event of `kind` with no other field set.
    pub fn new(kind: AuditKind) -> Self {
        Self {
            kind: Some(kind),
            ..Self::default()
        }
    }
    /// Sets the dataset.
    pub fn dataset(mut self, d: DatasetId) -> Self {
        self.dataset = Some(d);
        self
    }
    /// Sets the counterparty.
    pub fn peer(mut self, p: Did) -> Self {
        self.peer = Some(p);
        self
    }
    /// Sets the counterparty when known.
    pub fn peer_opt(mut self, p: Option<Did>) -> Self {
        self.peer = p;
        self
    }
    /// Sets the purpose (empty text is left out).
    pub fn purpose(mut self, p: impl Into<String>) -> Self {
        let p = p.into();
        self.purpose = (!p.is_empty()).then_some(p);
        self
    }
    /// Sets the legal basis.
    pub fn basis(mut self, b: impl Into<String>) -> Self {
        self.basis = Some(b.into());
        self
    }
    /// Sets the terms by hash.
    pub fn terms(mut self, h: ContentHash) -> Self {
        self.terms = Some(h);
        self
    }
    /// Sets the terms from their text (BLAKE3 of its UTF-8 bytes).
    pub fn terms_text(mut self, text: &str) -> Self {
        self.terms = Some(ContentHash::of(text.as_bytes()));
        self
    }
    /// Sets the token CID.
    pub fn token(mut self, cid: impl ToString) -> Self {
        self.token = Some(cid.to_string());
        self
    }
    /// Sets the byte count.
    pub fn bytes(mut self, n: u64) -> Self {
        self.bytes = Some(n);
        self
    }
    /// Sets the content hash.
    pub fn content(mut self, h: ContentHash) -> Self {
        self.content = Some(h);
        self
    }
    /// Sets the reason.
    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = Some(r.into());
        self
    }
    /// Sets the free detail.
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    /// Sets what a catalogue entry says applies: its dataset, legal basis
    /// (ISO 37156 8.2.2) and the hash of its terms (5.5.3).
    pub fn entry(mut self, e: &cix_protocol::catalogue::Entry) -> Self {
        self.dataset = Some(e.dataset);
        if let Some(b) = &e.iso.privacy.legal_basis {
            self.basis = Some(b.clone());
        }
        if let Some(t) = &e.iso.terms {
            self.terms = Some(ContentHash::of(t.as_bytes()));
        }
        self
    }
}

/// Appends `event` to the node's log and returns once the record is durable.
///
/// # Errors
///
/// If the record cannot be signed, stored or flushed.
pub async fn append(shared: &Shared, event: AuditEvent) -> Result<AuditSeq> {
    shared.audit.append(event).await
}

/// Appends `event` now and makes it durable in the background: for code that must not wait
/// (the network event loop). The record is in the log, in order, when this returns; it is on
/// disk after the next group flush.
///
/// # Errors
///
/// If the record cannot be signed or stored.
pub fn append_detached(shared: &Shared, event: AuditEvent) -> Result<AuditSeq> {
    let seq = shared.audit.write(event)?;
    let log = shared.audit.clone();
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            if let Err(e) = log.durable(seq).await {
                tracing::error!(error = %e, seq, "audit record could not be flushed");
            }
        });
    }
    Ok(seq)
}

/// `purpose` cut to the record's bound ([`MAX_PURPOSE_BYTES`]).
pub fn clip_purpose(purpose: &str) -> String {
    clip(purpose, MAX_PURPOSE_BYTES)
}

/// [`append`], reporting a failure as an error trace instead of returning it: for the places
/// where an operation that already happened is being logged.
pub async fn log(shared: &Shared, event: AuditEvent) {
    let kind = event.kind.clone();
    if let Err(e) = append(shared, event).await {
        tracing::error!(error = %e, kind = ?kind, "cannot append to the audit log");
    }
}

/// [`append_detached`], reporting a failure as an error trace.
pub fn log_detached(shared: &Shared, event: AuditEvent) {
    let kind = event.kind.clone();
    if let Err(e) = append_detached(shared, event) {
        tracing::error!(error = %e, kind = ?kind, "cannot append to the audit log");
    }
}

/// What a transfer request says applied (ISO 37156 8.3.4): the dataset, the invocation's CID,
/// and the purpose and terms the grant it cites pins, with the legal basis of `entry`.
pub fn transfer_event(
    kind: AuditKind,
    req: &cix_protocol::wire::TransferRequest,
    entry: Option<&cix_protocol::catalogue::Entry>,
) -> AuditEvent {
    use cix_protocol::caveats;
    use cix_protocol::ucan::{Cid, Delegation};
    let mut e = AuditEvent::new(kind);
    if let Some(entry) = entry {
        e = e.entry(entry);
        // The terms that bind are the ones the grant pins, set below when there is one.
        e.terms = None;
    }
    e.dataset = Some(req.dataset);
    if let Some(inv) = &req.invocation {
        e = e.token(Cid::of_token(inv));
    }
    if let Some(Ok((grant, _))) = req.proofs.last().map(|p| Delegation::decode(p)) {
        if let Some(p) = caveats::pinned_text(&grant.pol, caveats::ARG_PURPOSE) {
            e = e.purpose(p);
        }
        if let Some(t) = caveats::pinned_text(&grant.pol, caveats::ARG_TERMS) {
            e.terms = t.parse().ok();
        }
    }
    e
}

/// The owner's side of a transfer: its start, once authorised. Detached: the bytes must not
/// wait for the log.
pub fn serving(shared: &Shared, peer: &libp2p::PeerId, req: &cix_protocol::wire::TransferRequest) {
    let entry = shared
        .store
        .own(&req.dataset)
        .ok()
        .flatten()
        .and_then(|own| shared.store.entry(&own.entry).ok().flatten());
    let e = transfer_event(
        AuditKind::TransferStart,
        req,
        entry.as_ref().map(|s| &s.entry),
    )
    .peer_opt(crate::node::did_of_peer(peer))
    .detail(if req.ranges.is_empty() {
        "serving the whole content".to_string()
    } else {
        format!("serving {} ranges", req.ranges.len())
    });
    log_detached(shared, e);
}

/// A custodian's side of a transfer of shared data (transfer.md §6; ISO 37156 8.3.4): its
/// start, once authorised, with the serve delegation it serves under.
pub fn custodian_serving(
    shared: &Shared,
    peer: &libp2p::PeerId,
    req: &cix_protocol::wire::TransferRequest,
    entry: &cix_protocol::catalogue::Entry,
    serve: &cix_protocol::ucan::Cid,
) {
    let e = transfer_event(AuditKind::TransferStart, req, Some(entry))
        .peer_opt(crate::node::did_of_peer(peer))
        .detail(format!(
            "serving {} as custodian for {} under serve delegation {serve}",
            if req.ranges.is_empty() {
                "the whole content".to_string()
            } else {
                format!("{} ranges", req.ranges.len())
            },
            entry.iss
        ));
    log_detached(shared, e);
}

/// The owner's side of a transfer: its end, with the bytes sent and the hash of what was sent.
/// In the log at once, durable at the next group flush: the transfer's slot is not held
/// while the log flushes.
pub fn served(
    shared: &Shared,
    peer: &libp2p::PeerId,
    req: &cix_protocol::wire::TransferRequest,
    bytes: u64,
    content: ContentHash,
) {
    let e = transfer_event(AuditKind::TransferEnd, req, None)
        .peer_opt(crate::node::did_of_peer(peer))
        .bytes(bytes)
        .content(content)
        .detail("served");
    log_detached(shared, e);
}

/// The owner's side of a transfer that was refused (a denial, with its reason: 8.2.2
/// jurisdiction refusals included) or that failed after it started.
pub fn refused(
    shared: &Shared,
    peer: &libp2p::PeerId,
    req: Option<&cix_protocol::wire::TransferRequest>,
    reason: &str,
) {
    let e = match req {
        Some(req) => transfer_event(AuditKind::Denial, req, None).detail("transfer refused"),
        None => AuditEvent::new(AuditKind::TransferEnd).detail("serving failed"),
    };
    log_detached(
        shared,
        e.peer_opt(crate::node::did_of_peer(peer)).reason(reason),
    );
}

/// The requester's side of a transfer: logs the start when made, and the end when
/// [`Fetching::done`] is called; dropped before that, it logs the transfer as failed.
#[derive(Debug)]
pub struct Fetching {
    shared: Shared,
    event: Option<AuditEvent>,
}

impl Fetching {
    /// Logs the start of fetching `req` from `owner`.
    pub async fn start(
        shared: &Shared,
        owner: Did,
        req: &cix_protocol::wire::TransferRequest,
        entry: &cix_protocol::catalogue::Entry,
    ) -> Self {
        let base = transfer_event(AuditKind::TransferStart, req, Some(entry)).peer(owner);
        log(shared, base.clone().detail("fetching")).await;
        Self {
            shared: shared.clone(),
            event: Some(AuditEvent {
                kind: Some(AuditKind::TransferEnd),
                ..base
            }),
        }
    }

    /// Logs the end: `bytes` received and verified against `content`.
    pub async fn done(mut self, bytes: u64, content: &ContentHash) {
        if let Some(e) = self.event.take() {
            log(
                &self.shared,
                e.bytes(bytes)
                    .content(*content)
                    .detail("fetched and verified"),
            )
            .await;
        }
    }
}

impl Drop for Fetching {
    fn drop(&mut self) {
        if let Some(e) = self.event.take() {
            log_detached(
                &self.shared,
                e.reason("the fetch failed before the data was verified"),
            );
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Tip {
    seq: u64,
    hash: AuditHash,
    at: i64,
}

struct Inner {
    key: Keypair,
    store: Store,
    records: sled::Tree,
    held: sled::Tree,
    held_nodes: sled::Tree,
    witnessed: sled::Tree,
    tip: Mutex<Tip>,
    durable: AtomicU64,
    flush_gate: tokio::sync::Mutex<()>,
}

/// The log. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

/// One listed record, for `cix audit log`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Sequence number.
    pub seq: u64,
    /// Record hash, hex.
    pub hash: String,
    /// Unix seconds.
    pub at: i64,
    /// Kind.
    pub kind: String,
    /// Dataset id, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Counterparty DID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Purpose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Legal basis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// Terms hash, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terms: Option<String>,
    /// Token CID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Content hash, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Listed {
    /// The listing of a decoded record.
    pub fn of(s: &SignedRecord) -> Self {
        let r = &s.record;
        Self {
            seq: r.seq,
            hash: s.hash.to_hex(),
            at: r.at,
            kind: r.kind.to_string(),
            dataset: r.dataset.map(|d| d.to_string()),
            peer: r.peer.as_ref().map(ToString::to_string),
            purpose: r.purpose.clone(),
            basis: r.basis.clone(),
            terms: r.terms.map(|t| t.to_hex()),
            token: r.token.clone(),
            bytes: r.bytes,
            content: r.content.map(|c| c.to_hex()),
            reason: r.reason.clone(),
            detail: r.detail.clone(),
        }
    }
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this kind.
    pub kind: Option<AuditKind>,
    /// Only this dataset.
    pub dataset: Option<DatasetId>,
    /// Only this counterparty.
    pub peer: Option<Did>,
    /// At or after, Unix seconds.
    pub since: Option<i64>,
    /// At or before, Unix seconds.
    pub until: Option<i64>,
    /// At most this many (the newest ones).
    pub limit: Option<usize>,
}

impl Filter {
    fn matches(&self, r: &AuditRecord) -> bool {
        self.kind.as_ref().is_none_or(|k| *k == r.kind)
            && self.dataset.is_none_or(|d| r.dataset == Some(d))
            && self
                .peer
                .as_ref()
                .is_none_or(|p| r.peer.as_ref() == Some(p))
            && self.since.is_none_or(|s| r.at >= s)
            && self.until.is_none_or(|u| r.at <= u)
    }
}

fn seq_of_key(k: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(
        k.try_into().map_err(|_| anyhow!("corrupt audit key"))?,
    ))
}

fn pair_key(who: &Did, seq: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&who.public_key().to_bytes());
    k[32..].copy_from_slice(&seq.to_be_bytes());
    k
}

impl AuditLog {
    /// Opens the log in `store`, signing with `key` (the node's).
    ///
    /// # Errors
    ///
    /// Store I/O errors.
    pub fn open(store: &Store, key: Keypair) -> Result<Self> {
        let records = store.tree("audit")?;
        let tip = match records.last()? {
            None => Tip {
                seq: 0,
                hash: GENESIS,
                at: 0,
            },
            Some((k, v)) => {
                // The tip is taken from the stored bytes whatever they say: a damaged last
                // record is `cix audit verify`'s to report, and new records still chain to it.
                let seq = seq_of_key(&k)?;
                let at = SignedRecord::decode(&v).map(|s| s.record.at).unwrap_or(0);
                Tip {
                    seq,
                    hash: AuditHash::of(&v),
                    at,
                }
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                key,
                store: store.clone(),
                held: store.tree("audit_held")?,
                held_nodes: store.tree("audit_held_nodes")?,
                witnessed: store.tree("audit_witnessed")?,
                records,
                durable: AtomicU64::new(tip.seq),
                tip: Mutex::new(tip),
                flush_gate: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The node whose log this is.
    pub fn did(&self) -> Did {
        self.inner.key.did()
    }

    /// Signs and stores a record for `event` as the next in the chain, without waiting for it
    /// to be flushed. See [`Self::durable`].
    ///
    /// # Errors
    ///
    /// If the record cannot be signed or stored.
    pub fn write(&self, event: AuditEvent) -> Result<AuditSeq> {
        let inner = &self.inner;
        let clip_opt = |s: Option<String>, max: usize| s.map(|s| clip(&s, max));
        let mut tip = inner
            .tip
            .lock()
            .map_err(|_| anyhow!("the audit log lock is poisoned"))?;
        let record = AuditRecord {
            iss: inner.key.did(),
            seq: tip.seq + 1,
            at: crate::access::now().max(tip.at),
            prev: tip.hash,
            kind: event
                .kind
                .unwrap_or_else(|| AuditKind::Other("event".into())),
            dataset: event.dataset,
            peer: event.peer,
            purpose: clip_opt(event.purpose, MAX_PURPOSE_BYTES),
            basis: clip_opt(event.basis, MAX_AUDIT_TEXT_BYTES),
            terms: event.terms,
            token: clip_opt(event.token, MAX_AUDIT_TEXT_BYTES),
            bytes: event.bytes,
            content: event.content,
            reason: clip_opt(event.reason, MAX_REASON_BYTES),
            detail: clip_opt(event.detail, MAX_AUDIT_DETAIL_BYTES),
        };
        let signed = record
            .seal(&inner.key)
            .map_err(|e| anyhow!("cannot sign audit record: {e}"))?;
        inner
            .records
            .insert(record.seq.to_be_bytes(), signed.bytes)
            .context("cannot store audit record")?;
        *tip = Tip {
            seq: record.seq,
            hash: signed.hash,
            at: record.at,
        };
        tracing::debug!(seq = record.seq, kind = %record.kind, "audit record appended");
        Ok(record.seq)
    }

    /// Returns once record `seq` (and every one before it) is on disk. Concurrent callers
    /// share flushes: one flush covers every record written before it started.
    ///
    /// # Errors
    ///
    /// If the flush fails.
    pub async fn durable(&self, seq: AuditSeq) -> Result<()> {
        let inner = &self.inner;
        if inner.durable.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _gate = inner.flush_gate.lock().await;
        if inner.durable.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let target = inner
            .tip
            .lock()
            .map_err(|_| anyhow!("the audit log lock is poisoned"))?
            .seq;
        let store = inner.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| anyhow!("flush task failed: {e}"))??;
        inner.durable.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Appends and waits until durable.
    ///
    /// # Errors
    ///
    /// As [`Self::write`] and [`Self::durable`].
    pub async fn append(&self, event: AuditEvent) -> Result<AuditSeq> {
        let seq = self.write(event)?;
        self.durable(seq).await?;
        Ok(seq)
    }

    /// Appends and flushes before returning, one flush per record: the slow path, for
    /// comparison in the benchmark and for callers outside any runtime.
    ///
    /// # Errors
    ///
    /// As [`Self::write`], or if the flush fails.
    pub fn append_sync(&self, event: AuditEvent) -> Result<AuditSeq> {
        let seq = self.write(event)?;
        self.inner.store.flush()?;
        self.inner.durable.fetch_max(seq, Ordering::AcqRel);
        Ok(seq)
    }

    /// The head: last sequence number (0 when empty) and its record's hash.
    pub fn head(&self) -> (u64, AuditHash) {
        match self.inner.tip.lock() {
            Ok(t) => (t.seq, t.hash),
            Err(p) => {
                let t = p.into_inner();
                (t.seq, t.hash)
            }
        }
    }

    /// The head, signed by the node (`cix/head@1`).
    ///
    /// # Errors
    ///
    /// If signing fails.
    pub fn signed_head(&self) -> Result<Signed<Head>> {
        let (seq, hash) = self.head();
        Head {
            iss: self.did(),
            seq,
            hash,
            at: crate::access::now(),
        }
        .seal(&self.inner.key)
        .map_err(|e| anyhow!("cannot sign the log head: {e}"))
    }

    /// The stored bytes of records `from..=to` (either end open), in order.
    ///
    /// # Errors
    ///
    /// Store I/O errors.
    pub fn raw_range(&self, from: Option<u64>, to: Option<u64>) -> Result<Vec<(u64, Vec<u8>)>> {
        let lo = from.unwrap_or(1).to_be_bytes();
        let hi = to.unwrap_or(u64::MAX).to_be_bytes();
        let mut out = Vec::new();
        for item in self.inner.records.range(lo..=hi) {
            let (k, v) = item?;
            out.push((seq_of_key(&k)?, v.to_vec()));
        }
        Ok(out)
    }

    /// The hash of the stored record at `seq`.
    ///
    /// # Errors
    ///
    /// Store I/O errors.
    pub fn hash_at(&self, seq: u64) -> Result<Option<AuditHash>> {
        Ok(self
            .inner
            .records
            .get(seq.to_be_bytes())?
            .map(|v| AuditHash::of(&v)))
    }

    /// Records matching `filter`, oldest first (the newest `limit` of them). A record that no
    /// longer decodes is skipped here; `cix audit verify` names it.
    ///
    /// # Errors
    ///
    /// Store I/O errors.
    pub fn list(&self, filter: &Filter) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        let limit = filter.limit.unwrap_or(usize::MAX);
        for item in self.inner.records.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            let Ok(s) = SignedRecord::decode(&v) else {
                continue;
            };
            if filter.matches(&s.record) {
                out.push(Listed::of(&s));
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.head().0
    }

    /// True when nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps a peer's signed head, within the storage bounds ([`HELD_RECENT`], sparse history,
    /// [`MAX_WITNESSED_NODES`]). A head at a sequence number already held with a different
    /// hash is evidence of a forked log: the first is kept, and the conflict reported.
    ///
    /// # Errors
    ///
    /// Store I/O errors, a full table of nodes, or a conflicting head.
    pub fn hold_head(&self, head: &Signed<Head>) -> Result<()> {
        let h = &head.value;
        let key = pair_key(&h.iss, h.seq);
        if let Some(old) = self.inner.held.get(key)? {
            let old = Head::decode(&old).map_err(|e| anyhow!("corrupt held head: {e}"))?;
            if old.value.hash != h.hash {
                return Err(anyhow!(
                    "{} signed two different heads at seq {}: {} and {}",
                    h.iss,
                    h.seq,
                    old.value.hash,
                    h.hash
                ));
            }
            return Ok(());
        }
        self.admit_node(&h.iss)?;
        self.inner.held.insert(key, head.bytes.as_slice())?;
        prune(&self.inner.held, &h.iss)?;
        Ok(())
    }

    fn admit_node(&self, who: &Did) -> Result<()> {
        let pk = who.public_key().to_bytes();
        if self.inner.held_nodes.contains_key(pk)? {
            return Ok(());
        }
        if self.inner.held_nodes.len() >= MAX_WITNESSED_NODES {
            return Err(anyhow!(
                "already witnessing {MAX_WITNESSED_NODES} nodes; refusing a new one"
            ));
        }
        self.inner.held_nodes.insert(pk, &[])?;
        Ok(())
    }

    /// The signed heads held for `subject`, newest first, at most [`MAX_WITNESS_HEADS`].
    ///
    /// # Errors
    ///
    /// Store I/O errors.
    pub fn held_for(&self, subject: &Did) -> Result<Vec<Vec<u8>>> {
        let prefix = subject.public_key().to_bytes();
        let mut out = Vec::new();
        for item in self.inner.held.scan_prefix(prefix).rev() {
            let (_, v) = item?;
            out.push(v.to_vec());
            if out.len() >= MAX_WITNESS_HEADS {
                break;
            }
        }
        Ok(out)
    }

    /// Keeps a peer's counter-signature of one of our heads, within the same bounds.
    ///
    /// # Errors
    ///
    /// If it is not about this node, or store I/O errors.
    pub fn keep_witness(&self, w: &Signed<Witness>) -> Result<()> {
        if w.value.subject != self.did() {
            return Err(anyhow!("the counter-signature is about another node"));
        }
        self.admit_node(&w.value.iss)?;
        self.inner
            .witnessed
            .insert(pair_key(&w.value.iss, w.value.seq), w.bytes.as_slice())?;
        prune(&self.inner.witnessed, &w.value.iss)?;
        Ok(())
    }

    /// Every counter-signature of our heads kept here.
    ///
    /// # Errors
    ///
    /// Store I/O errors.
    pub fn witnesses(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for item in self.inner.witnessed.iter() {
            out.push(item?.1.to_vec());
        }
        Ok(out)
    }

    /// Signs the counter-signature of a peer's head.
    ///
    /// # Errors
    ///
    /// If signing fails.
    pub fn countersign(&self, head: &Head) -> Result<Signed<Witness>> {
        Witness {
            iss: self.did(),
            subject: head.iss,
            seq: head.seq,
            hash: head.hash,
            at: crate::access::now(),
        }
        .seal(&self.inner.key)
        .map_err(|e| anyhow!("cannot counter-sign: {e}"))
    }
}

/// Drops the entries of `who` in `tree` beyond the bounds: the newest [`HELD_RECENT`] stay,
/// and of the older ones the newest in each power-of-two range of sequence numbers.
fn prune(tree: &sled::Tree, who: &Did) -> Result<()> {
    let prefix = who.public_key().to_bytes();
    let mut seen_ranges = std::collections::HashSet::new();
    for (i, item) in tree.scan_prefix(prefix).rev().enumerate() {
        let (k, _) = item?;
        if i < HELD_RECENT {
            continue;
        }
        let seq = seq_of_key(&k[32..])?;
        let range = 64 - seq.leading_zeros();
        if !seen_ranges.insert(range) {
            tree.remove(k)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cix_protocol::audit::verify_chain;

    fn open() -> (tempfile::TempDir, Store, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store"), 8 << 20).unwrap();
        let log = AuditLog::open(&store, Keypair::generate()).unwrap();
        (dir, store, log)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_chain_and_share_flushes() {
        let (_dir, _store, log) = open();
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.append(AuditEvent::new(AuditKind::Publish).bytes(i))
                    .await
                    .unwrap()
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
        let raw = log.raw_range(None, None).unwrap();
        let s = verify_chain(raw.iter().map(|(_, b)| b.as_slice()), Some(&log.did())).unwrap();
        assert_eq!(s.records, 200);
        assert_eq!(s.last.unwrap(), log.head());
    }

    #[test]
    fn reopened_log_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let key = Keypair::generate();
        {
            let store = Store::open(&dir.path().join("s"), 8 << 20).unwrap();
            let log = AuditLog::open(&store, key.clone()).unwrap();
            for _ in 0..3 {
                log.append_sync(AuditEvent::new(AuditKind::Grant)).unwrap();
            }
        }
        let store = Store::open(&dir.path().join("s"), 8 << 20).unwrap();
        let log = AuditLog::open(&store, key).unwrap();
        log.append_sync(AuditEvent::new(AuditKind::Denial).reason("x".repeat(5000)))
            .unwrap();
        let raw = log.raw_range(None, None).unwrap();
        assert_eq!(
            verify_chain(raw.iter().map(|(_, b)| b.as_slice()), None)
                .unwrap()
                .records,
            4
        );
        let listed = log
            .list(&Filter {
                kind: Some(AuditKind::Denial),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].reason.as_ref().unwrap().len(), MAX_REASON_BYTES);
    }

    #[test]
    fn held_heads_stay_bounded_and_conflicts_are_refused() {
        let (_dir, _store, log) = open();
        let peer = Keypair::generate();
        let head = |seq: u64, b: u8| {
            Head {
                iss: peer.did(),
                seq,
                hash: AuditHash([b; 32]),
                at: 1_780_000_000,
            }
            .seal(&peer)
            .unwrap()
        };
        for seq in 1..=1000 {
            log.hold_head(&head(seq, 1)).unwrap();
        }
        let held = log.held_for(&peer.did()).unwrap();
        // 16 recent plus at most one per power-of-two range below them.
        assert!(held.len() <= HELD_RECENT + 11, "{} heads", held.len());
        assert!(held.len() > HELD_RECENT);
        assert_eq!(Head::decode(&held[0]).unwrap().value.seq, 1000);
        assert!(log.hold_head(&head(1000, 2)).is_err());
    }
}
