//! Durable state in sled: the catalogue, own datasets, access requests both ways, grants and
//! spent invocations.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `entries` | EntryId | signed entry envelope bytes |
//! | `latest` | DatasetId | EntryId of the newest version known |
//! | `own` | DatasetId | [`OwnDataset`] |
//! | `requests_in` | request id (8 bytes) | [`IncomingRequest`], the owner's queue |
//! | `requests_out` | DatasetId | [`OutgoingRequest`], what this node asked for |
//! | `spent` | invocation CID bytes | expiry (i64 big-endian): replay protection |
//! | `issued` | delegation CID bytes | [`TokenRecord`]: delegations granted or re-delegated here |
//! | `received` | delegation CID bytes | [`TokenRecord`]: delegation chains imported here |
//! | `revocations` | revocation id (BLAKE3, 32 bytes) | revocation envelope bytes |
//! | `revoked` | revoked delegation CID bytes, then revocation id | revocation envelope bytes |
//! | `profiles` | peer DID text | the newest signed agency profile a peer sent (`cix/profile@1`) |
//! | `versions` | dataset id, publisher key, version (8 bytes BE), entry id | empty: every version known, for history (ISO 37156 4.2 g) |
//! | `withdrawals` | withdrawal id (BLAKE3, 32 bytes) | withdrawal envelope bytes (`cix/withdraw@1`), kept for good |
//! | `withdrawn` | dataset id, publisher key, withdrawal id | version withdrawn (8 bytes BE) |
//! | `seq` | arrival sequence number (8 bytes BE) | record id, dataset id and publisher key, kind (0 entry, 1 withdrawal) |
//! | `seq_of` | record id | its arrival sequence number: the records catch-up may serve |
//! | `cursors` | peer id bytes | the peer's store epoch and the highest of its sequence numbers fully processed here (8 + 8 bytes BE) |
//! | `meta` | `epoch` | this store's epoch (8 random bytes), fixed when the store is created |
//!
//! The arrival sequence is local to each store: a record gets the next number when it is first
//! stored, closed entries never get one (they are never served), and numbers only grow. It lets
//! a peer ask "what arrived after N" ([`Store::ids_after`]) and resume there later.
//!
//! Every write that is acknowledged to a caller is flushed before the acknowledgement returns
//! (DESIGN.md §6). Values are CBOR; a record that fails to decode is reported, never guessed.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use cix_protocol::catalogue::{DatasetId, EntryId, Level, SignedEntry};
use cix_protocol::cbor;
use cix_protocol::content::ContentHash;
use cix_protocol::identity::Did;
use cix_protocol::revocation::SignedRevocation;
use cix_protocol::ucan::Cid;
use cix_protocol::withdrawal::SignedWithdrawal;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Largest stored record; far above any real one, it only bounds a corrupt store's damage.
const MAX_RECORD_BYTES: usize = 1 << 20;

/// Most revocations a node keeps (about 200 bytes each, twice). Past it, new revocations are
/// refused with a warning rather than growing the store without bound; see `specs/limits.md`.
pub const MAX_STORED_REVOCATIONS: usize = 1_000_000;

/// A dataset this node published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnDataset {
    /// The dataset.
    pub dataset: DatasetId,
    /// Its latest entry.
    pub entry: EntryId,
    /// Spectrum and access mode, as the CLI names them.
    pub level: String,
    /// BLAKE3 of the bytes; the blob's file name.
    pub content: ContentHash,
    /// Size in bytes.
    pub bytes: u64,
}

/// Where an incoming request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Decision {
    /// Waiting for the operator.
    Pending,
    /// Approved; the delegation handed out.
    Approved {
        /// Delegation token bytes.
        #[serde(with = "serde_bytes")]
        delegation: Vec<u8>,
        /// When, Unix seconds.
        at: i64,
    },
    /// Denied, with the operator's reason.
    Denied {
        /// Why.
        reason: String,
        /// When, Unix seconds.
        at: i64,
    },
}

/// A request for one of this node's shared-named datasets (ISO 37156 5.5.3 named access).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingRequest {
    /// Short id the operator types (16 hex digits).
    pub id: String,
    /// The requester's principal.
    pub requester: Did,
    /// The requester's chosen request id.
    #[serde(with = "serde_bytes")]
    pub request: Vec<u8>,
    /// The dataset asked for.
    pub dataset: DatasetId,
    /// The stated purpose.
    pub purpose: String,
    /// When it arrived, Unix seconds.
    pub received: i64,
    /// The decision so far.
    pub decision: Decision,
}

/// A request this node made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingRequest {
    /// The dataset.
    pub dataset: DatasetId,
    /// Our request id (stable, so asking again asks about the same request).
    #[serde(with = "serde_bytes")]
    pub request: Vec<u8>,
    /// The purpose stated.
    pub purpose: String,
    /// Terms accepted.
    pub accept_terms: bool,
    /// The last answer: pending, granted, denied.
    pub status: String,
    /// The delegation, once granted.
    #[serde(with = "serde_bytes", default, skip_serializing_if = "Vec::is_empty")]
    pub delegation: Vec<u8>,
    /// The reason, when denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The node's sled database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    entries: sled::Tree,
    latest: sled::Tree,
    own: sled::Tree,
    requests_in: sled::Tree,
    requests_out: sled::Tree,
    spent: sled::Tree,
    revocations: sled::Tree,
    revoked: sled::Tree,
    versions: sled::Tree,
    withdrawals: sled::Tree,
    withdrawn: sled::Tree,
    seq: sled::Tree,
    seq_of: sled::Tree,
    cursors: sled::Tree,
    epoch: u64,
    /// Held while a sequence number is taken and written, so that numbers become visible in
    /// order: a reader never sees N+1 before N and so never skips N for good.
    seq_lock: std::sync::Arc<std::sync::Mutex<()>>,
}

/// Kind byte of an entry in the `seq` tree.
const KIND_ENTRY: u8 = 0;
/// Kind byte of a withdrawal in the `seq` tree.
const KIND_WITHDRAWAL: u8 = 1;
/// Most `seq` records one id page looks at, listed or not: bounds the work of one request.
pub const MAX_SYNC_SCAN: usize = 8 * cix_protocol::limits::MAX_SYNC_IDS;

/// A 32-byte record id: an entry id or a withdrawal id.
pub type RecordId = [u8; 32];

/// One page of record ids, for a peer catching up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPage {
    /// Ids of current entries and of withdrawals, in arrival order.
    pub ids: Vec<RecordId>,
    /// The highest sequence number the page covers.
    pub through: u64,
    /// More records follow.
    pub more: bool,
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    cbor::to_vec(v).map_err(|e| anyhow!("cannot encode record: {e}"))
}

fn dec<T: Serialize + DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    cbor::from_slice(bytes, MAX_RECORD_BYTES).map_err(|e| anyhow!("corrupt {what} record: {e}"))
}

fn latest_key(dataset: &DatasetId, issuer: &Did) -> [u8; 48] {
    let mut key = [0u8; 48];
    key[..16].copy_from_slice(&dataset.0);
    key[16..].copy_from_slice(&issuer.public_key().to_bytes());
    key
}

fn as_id(bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| anyhow!("corrupt latest index"))
}

impl Store {
    /// Opens (or creates) the store at `path` with an explicit page cache.
    ///
    /// # Errors
    ///
    /// If sled cannot open it (another node holds the lock, say).
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self> {
        if cache_bytes < crate::config::MIN_STORE_CACHE_BYTES {
            bail!(
                "store_cache_bytes: {cache_bytes} is below the least the store works with, {} \
                 (1 MiB)",
                crate::config::MIN_STORE_CACHE_BYTES
            );
        }
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open();
        if let Err(sled::Error::Io(e)) = &db {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                bail!(
                    "the store at {} is in use: another node is running from this home (stop it \
                     first, or give this one its own --home)",
                    path.display()
                );
            }
        }
        let db = db.with_context(|| {
            format!(
                "cannot open the store at {}: if another node is running from this home, \
                     stop it first; otherwise the store is damaged: restore it from a backup, \
                     or move it aside and start again (peers send the catalogue again, but this \
                     node's grants, requests and audit log are in it)",
                path.display()
            )
        })?;
        let meta = db.open_tree("meta")?;
        let epoch = match meta.get("epoch")? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| anyhow!("corrupt store epoch"))?,
            ),
            None => {
                let e: u64 = rand::random();
                meta.insert("epoch", &e.to_be_bytes())?;
                e
            }
        };
        let store = Self {
            versions: db.open_tree("versions")?,
            withdrawals: db.open_tree("withdrawals")?,
            withdrawn: db.open_tree("withdrawn")?,
            seq: db.open_tree("seq")?,
            seq_of: db.open_tree("seq_of")?,
            cursors: db.open_tree("cursors")?,
            epoch,
            seq_lock: std::sync::Arc::default(),
            entries: db.open_tree("entries")?,
            latest: db.open_tree("latest")?,
            own: db.open_tree("own")?,
            requests_in: db.open_tree("requests_in")?,
            requests_out: db.open_tree("requests_out")?,
            spent: db.open_tree("spent")?,
            revocations: db.open_tree("revocations")?,
            revoked: db.open_tree("revoked")?,
            db,
        };
        store.index_old_entries()?;
        Ok(store)
    }

    /// A store written before versions and arrival numbers existed: index its entries once.
    fn index_old_entries(&self) -> Result<()> {
        if !self.versions.is_empty() || self.entries.is_empty() {
            return Ok(());
        }
        for item in self.entries.iter() {
            let (_, bytes) = item?;
            let signed =
                SignedEntry::decode(&bytes).map_err(|e| anyhow!("corrupt stored entry: {e}"))?;
            self.index_entry(&signed)?;
        }
        self.flush()
    }

    /// Records an entry in the version index and, unless closed, in the arrival sequence.
    fn index_entry(&self, signed: &SignedEntry) -> Result<()> {
        let pair = latest_key(&signed.entry.dataset, &signed.entry.iss);
        let mut key = pair.to_vec();
        key.extend_from_slice(&signed.entry.version.to_be_bytes());
        key.extend_from_slice(&signed.id.0);
        self.versions.insert(key, &[])?;
        if signed.entry.level() != Level::Closed {
            self.assign_seq(&signed.id.0, &pair, KIND_ENTRY)?;
        }
        Ok(())
    }

    fn assign_seq(&self, id: &RecordId, pair: &[u8; 48], kind: u8) -> Result<()> {
        let _order = self
            .seq_lock
            .lock()
            .map_err(|_| anyhow!("the sequence lock is poisoned"))?;
        if self.seq_of.contains_key(id)? {
            return Ok(());
        }
        let n = match self.seq.last()? {
            Some((k, _)) => {
                u64::from_be_bytes(
                    k.as_ref()
                        .try_into()
                        .map_err(|_| anyhow!("corrupt sequence key"))?,
                ) + 1
            }
            None => 1,
        };
        let mut value = id.to_vec();
        value.extend_from_slice(pair);
        value.push(kind);
        self.seq.insert(n.to_be_bytes(), value)?;
        self.seq_of.insert(id, &n.to_be_bytes())?;
        Ok(())
    }

    /// Flushes everything written so far to disk on a blocking thread; the future ends when it
    /// is durable. (sled's own `flush_async` deadlocked here under concurrent writes, so the
    /// ordinary flush runs off the async threads instead.)
    pub fn flush_async(&self) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let store = self.clone();
        async move {
            tokio::task::spawn_blocking(move || store.flush())
                .await
                .map_err(|e| anyhow!("flush task failed: {e}"))?
        }
    }

    /// Opens (or creates) another tree of this store, for modules that keep their own tables
    /// (the audit log, `crate::audit`). A flush of the store covers it.
    ///
    /// # Errors
    ///
    /// Store I/O errors.
    pub fn tree(&self, name: &str) -> Result<sled::Tree> {
        Ok(self.db.open_tree(name)?)
    }

    /// Flushes everything written so far to disk.
    ///
    /// # Errors
    ///
    /// If the flush fails.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().context("cannot flush the store")?;
        Ok(())
    }

    /// Stores a verified entry. Returns true if it is new and is now the latest version of its
    /// dataset. An older or equal version is kept (history stays queryable, ISO 37156 4.2 g)
    /// but not made latest; for equal versions the smaller entry id wins, so every node agrees.
    ///
    /// The latest index is keyed by dataset id *and* publisher, so a peer that announces
    /// someone else's dataset id cannot take over that dataset's listing.
    ///
    /// # Errors
    ///
    /// Store I/O errors.
    pub fn put_entry(&self, signed: &SignedEntry) -> Result<bool> {
        if self.entries.contains_key(signed.id.0)? {
            return Ok(false);
        }
        self.entries.insert(signed.id.0, signed.bytes.as_slice())?;
        self.index_entry(signed)?;
        let key = latest_key(&signed.entry.dataset, &signed.entry.iss);
        let newer = match self.latest.get(key)? {
            Some(id) => match self.entry(&EntryId(as_id(&id)?))? {
                Some(cur) => {
                    signed.entry.version > cur.entry.version
                        || (signed.entry.version == cur.entry.version && signed.id < cur.id)
                }
                None => true,
            },
            None => true,
        };
        if newer {
            self.latest.insert(key, &signed.id.0)?;
        }
        Ok(newer)
    }

    /// An entry by id.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn entry(&self, id: &EntryId) -> Result<Option<SignedEntry>> {
        match self.entries.get(id.0)? {
            Some(bytes) => Ok(Some(
                SignedEntry::decode(&bytes).map_err(|e| anyhow!("corrupt stored entry: {e}"))?,
            )),
            None => Ok(None),
        }
    }

    /// The latest entry of a dataset.
    ///
    /// # Errors
    ///
    /// Store I/O, a corrupt record, or a dataset id that several publishers claim (only one of
    /// them can be genuine; cix refuses to guess which).
    pub fn latest_entry(&self, dataset: &DatasetId) -> Result<Option<SignedEntry>> {
        let mut found = Vec::new();
        for item in self.latest.scan_prefix(dataset.0) {
            let (_, id) = item?;
            if let Some(e) = self.entry(&EntryId(as_id(&id)?))? {
                found.push(e);
            }
        }
        match found.len() {
            0 | 1 => Ok(found.pop()),
            _ => {
                let who: Vec<String> = found.iter().map(|e| e.entry.iss.to_string()).collect();
                Err(anyhow!(
                    "dataset id {dataset} is claimed by several publishers ({}); refusing to guess",
                    who.join(", ")
                ))
            }
        }
    }

    /// The latest entry of every dataset known and listed: withdrawn datasets are left out
    /// (ISO 37156 4.2 g; `specs/catalogue.md` §5).
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn catalogue(&self) -> Result<Vec<SignedEntry>> {
        let mut out = Vec::new();
        for e in self.catalogue_all()? {
            if self.withdrawal_of(&e)?.is_none() {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The latest entry of every dataset known, withdrawn ones included.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn catalogue_all(&self) -> Result<Vec<SignedEntry>> {
        let mut out = Vec::new();
        for item in self.latest.iter() {
            let (_, id) = item?;
            if let Some(e) = self.entry(&EntryId(as_id(&id)?))? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Records an own dataset.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn put_own(&self, own: &OwnDataset) -> Result<()> {
        self.own.insert(own.dataset.0, enc(own)?)?;
        Ok(())
    }

    /// An own dataset.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn own(&self, dataset: &DatasetId) -> Result<Option<OwnDataset>> {
        self.own
            .get(dataset.0)?
            .map(|b| dec(&b, "own dataset"))
            .transpose()
    }

    /// All own datasets.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn own_all(&self) -> Result<Vec<OwnDataset>> {
        self.own
            .iter()
            .values()
            .map(|v| dec(&v?, "own dataset"))
            .collect()
    }

    /// The level of an own dataset.
    ///
    /// # Errors
    ///
    /// A corrupt record.
    pub fn own_level(own: &OwnDataset) -> Result<Level> {
        own.level.parse().map_err(|e: String| anyhow!(e))
    }

    /// Stores or updates an incoming request.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn put_request_in(&self, r: &IncomingRequest) -> Result<()> {
        self.requests_in.insert(r.id.as_bytes(), enc(r)?)?;
        Ok(())
    }

    /// An incoming request by its exact id.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn request_in(&self, id: &str) -> Result<Option<IncomingRequest>> {
        self.requests_in
            .get(id.as_bytes())?
            .map(|b| dec(&b, "request"))
            .transpose()
    }

    /// Every incoming request.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn requests_in(&self) -> Result<Vec<IncomingRequest>> {
        self.requests_in
            .iter()
            .values()
            .map(|v| dec(&v?, "request"))
            .collect()
    }

    /// Stores what this node asked for.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn put_request_out(&self, r: &OutgoingRequest) -> Result<()> {
        self.requests_out.insert(r.dataset.0, enc(r)?)?;
        Ok(())
    }

    /// What this node asked for a dataset.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn request_out(&self, dataset: &DatasetId) -> Result<Option<OutgoingRequest>> {
        self.requests_out
            .get(dataset.0)?
            .map(|b| dec(&b, "outgoing request"))
            .transpose()
    }

    /// Every request this node made.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn requests_out(&self) -> Result<Vec<OutgoingRequest>> {
        self.requests_out
            .iter()
            .values()
            .map(|v| dec(&v?, "outgoing request"))
            .collect()
    }

    /// Marks an invocation as used; returns false if it already was (a replay). Expired marks
    /// are dropped on the way, so the tree holds only invocations that could still be replayed.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn spend_invocation(&self, cid: &[u8], expires: i64, now: i64) -> Result<bool> {
        let fresh = self
            .spent
            .compare_and_swap(cid, None as Option<&[u8]>, Some(&expires.to_be_bytes()[..]))?
            .is_ok();
        if fresh {
            self.spent.flush()?;
            for item in self.spent.iter() {
                let (k, v) = item?;
                let exp = v
                    .as_ref()
                    .try_into()
                    .map(i64::from_be_bytes)
                    .unwrap_or(i64::MIN);
                if exp < now {
                    self.spent.remove(k)?;
                }
            }
        }
        Ok(fresh)
    }
}

/// Revocations (see [`cix_protocol::revocation`]): kept forever, written durably before
/// anything is acknowledged, looked up by the delegation they revoke.
impl Store {
    /// Stores a verified revocation. Returns true if it was new. It is in force at once (every
    /// check reads the store); the caller makes it durable with [`Store::flush`] before
    /// acknowledging it, or with [`Store::flush_async`] when nothing waits on it.
    ///
    /// # Errors
    ///
    /// Store I/O, or the store already holds [`MAX_STORED_REVOCATIONS`].
    pub fn put_revocation(&self, r: &SignedRevocation) -> Result<bool> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        if self.revocations.contains_key(r.id)? {
            return Ok(false);
        }
        if self.revocations.len() >= MAX_STORED_REVOCATIONS {
            anyhow::bail!("the store already holds {MAX_STORED_REVOCATIONS} revocations");
        }
        let mut by_cid = r.revocation.revoke.as_bytes().to_vec();
        by_cid.extend_from_slice(&r.id);
        let bytes = r.bytes.as_slice();
        (&self.revocations, &self.revoked)
            .transaction(|(all, revoked)| {
                all.insert(&r.id[..], bytes)?;
                revoked.insert(by_cid.as_slice(), bytes)?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| anyhow!("cannot store a revocation: {e:?}"))?;
        Ok(true)
    }

    /// Every revocation naming the delegation `cid`, whoever signed it.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn revocations_of(&self, cid: &Cid) -> Result<Vec<SignedRevocation>> {
        let mut out = Vec::new();
        for item in self.revoked.scan_prefix(cid.as_bytes()) {
            let (_, v) = item?;
            out.push(
                SignedRevocation::decode(&v)
                    .map_err(|e| anyhow!("corrupt revocation record: {e}"))?,
            );
        }
        Ok(out)
    }

    /// Revocation envelopes in id order after `after`: at most `max_count` of them and at most
    /// `max_bytes` in all. The flag is true if more follow.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn revocations_after(
        &self,
        after: Option<[u8; 32]>,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, bool)> {
        let range = match after {
            Some(a) => self.revocations.range((
                std::ops::Bound::Excluded(a.to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => self.revocations.iter(),
        };
        let mut out = Vec::new();
        let mut size = 0usize;
        for item in range {
            let (_, v) = item?;
            if out.len() == max_count || size + v.len() > max_bytes {
                return Ok((out, true));
            }
            size += v.len();
            out.push(v.to_vec());
        }
        Ok((out, false))
    }

    /// How many revocations the store holds.
    pub fn revocation_count(&self) -> usize {
        self.revocations.len()
    }
}

/// Versions, withdrawals and the arrival sequence behind incremental catch-up
/// (`specs/gossip.md` §6, `specs/catalogue.md` §5).
impl Store {
    /// This store's epoch: random, fixed when the store was created.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Every version of `dataset` known, from any publisher that used the id, by publisher and
    /// version.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn versions(&self, dataset: &DatasetId) -> Result<Vec<SignedEntry>> {
        let mut out = Vec::new();
        for item in self.versions.scan_prefix(dataset.0) {
            let (k, _) = item?;
            let id = k
                .get(56..88)
                .ok_or_else(|| anyhow!("corrupt version index"))?;
            if let Some(e) = self.entry(&EntryId(as_id(id)?))? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The publishers known to publish `dataset`.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn publishers_of(&self, dataset: &DatasetId) -> Result<Vec<Did>> {
        let mut out = Vec::new();
        for item in self.latest.scan_prefix(dataset.0) {
            let (_, id) = item?;
            if let Some(e) = self.entry(&EntryId(as_id(&id)?))? {
                out.push(e.entry.iss);
            }
        }
        Ok(out)
    }

    /// Stores a verified withdrawal. Returns true if it was new. The caller has checked that
    /// its signer publishes the dataset, if the dataset is known here at all.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn put_withdrawal(&self, w: &SignedWithdrawal) -> Result<bool> {
        if self.withdrawals.contains_key(w.id)? {
            return Ok(false);
        }
        let pair = latest_key(&w.withdrawal.dataset, &w.withdrawal.iss);
        let mut key = pair.to_vec();
        key.extend_from_slice(&w.id);
        self.withdrawals.insert(w.id, w.bytes.as_slice())?;
        self.withdrawn
            .insert(key, &w.withdrawal.version.to_be_bytes())?;
        // A dataset id never announced (closed in every version this node holds, whoever
        // published them) is nobody else's business: its withdrawal is not relayed either
        // (ISO 37156 5.5.2). An id some open or shared entry carries is public already.
        if self.any_announced(&w.withdrawal.dataset)? {
            self.assign_seq(&w.id, &pair, KIND_WITHDRAWAL)?;
        }
        Ok(true)
    }

    /// True if some version of `issuer`'s `dataset` held here is not closed, so that it was
    /// (or may be) announced to peers.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn ever_announced(&self, dataset: &DatasetId, issuer: &Did) -> Result<bool> {
        self.announced_under(&latest_key(dataset, issuer))
    }

    /// True if some version of `dataset` held here, by any publisher, is not closed.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn any_announced(&self, dataset: &DatasetId) -> Result<bool> {
        self.announced_under(&dataset.0)
    }

    fn announced_under(&self, prefix: &[u8]) -> Result<bool> {
        for item in self.versions.scan_prefix(prefix) {
            let (k, _) = item?;
            let id = k
                .get(56..88)
                .ok_or_else(|| anyhow!("corrupt version index"))?;
            let id = EntryId(
                id.try_into()
                    .map_err(|_| anyhow!("corrupt version index"))?,
            );
            if let Some(e) = self.entry(&id)? {
                if e.entry.level() != Level::Closed {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Every withdrawal of `dataset` known, whoever signed it.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn withdrawals_of(&self, dataset: &DatasetId) -> Result<Vec<SignedWithdrawal>> {
        let mut out = Vec::new();
        for item in self.withdrawn.scan_prefix(dataset.0) {
            let (k, _) = item?;
            let id = k
                .get(48..80)
                .ok_or_else(|| anyhow!("corrupt withdrawal index"))?;
            if let Some(bytes) = self.withdrawals.get(id)? {
                out.push(
                    SignedWithdrawal::decode(&bytes)
                        .map_err(|e| anyhow!("corrupt stored withdrawal: {e}"))?,
                );
            }
        }
        Ok(out)
    }

    /// The greatest version of (`dataset`, `issuer`) withdrawn, if any.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn withdrawn_version(&self, dataset: &DatasetId, issuer: &Did) -> Result<Option<u64>> {
        let mut max = None;
        for item in self.withdrawn.scan_prefix(latest_key(dataset, issuer)) {
            let (_, v) = item?;
            let v = u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| anyhow!("corrupt withdrawal index"))?,
            );
            max = max.max(Some(v));
        }
        Ok(max)
    }

    /// The withdrawal that keeps `entry` out of listings: one by its publisher whose version is
    /// at least the entry's. `None` if the entry is listed.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn withdrawal_of(&self, entry: &SignedEntry) -> Result<Option<SignedWithdrawal>> {
        let mut best: Option<(u64, Vec<u8>)> = None;
        let pair = latest_key(&entry.entry.dataset, &entry.entry.iss);
        for item in self.withdrawn.scan_prefix(pair) {
            let (k, v) = item?;
            let v = u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| anyhow!("corrupt withdrawal index"))?,
            );
            if v >= entry.entry.version && best.as_ref().is_none_or(|(b, _)| v > *b) {
                best = Some((v, k.get(48..).unwrap_or_default().to_vec()));
            }
        }
        match best {
            Some((_, id)) => match self.withdrawals.get(id)? {
                Some(bytes) => Ok(Some(
                    SignedWithdrawal::decode(&bytes)
                        .map_err(|e| anyhow!("corrupt stored withdrawal: {e}"))?,
                )),
                None => Err(anyhow!("withdrawal index names a missing withdrawal")),
            },
            None => Ok(None),
        }
    }

    /// Record ids that arrived after sequence number `since`, for a peer catching up: current
    /// entries (the latest version of their dataset) and withdrawals, at most `max` ids, and
    /// at most [`MAX_SYNC_SCAN`] sequence records looked at.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn ids_after(&self, since: u64, max: usize) -> Result<IdPage> {
        let mut ids = Vec::new();
        let mut through = since;
        let start = since.saturating_add(1).to_be_bytes();
        for (scanned, item) in self.seq.range(start..).enumerate() {
            let (k, v) = item?;
            if ids.len() == max || scanned == MAX_SYNC_SCAN {
                return Ok(IdPage {
                    ids,
                    through,
                    more: true,
                });
            }
            through = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| anyhow!("corrupt sequence key"))?,
            );
            if v.len() != 81 {
                bail!("corrupt sequence record");
            }
            let id = as_id(&v[..32])?;
            let listed = match v[80] {
                KIND_ENTRY => self.latest.get(&v[32..80])?.is_some_and(|l| *l == id),
                _ => true,
            };
            if listed {
                ids.push(id);
            }
        }
        Ok(IdPage {
            ids,
            through,
            more: false,
        })
    }

    /// The envelope of a record catch-up may serve (an open or shared entry, or a
    /// withdrawal), by id. `None` for anything else, closed entries included.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn servable(&self, id: &RecordId) -> Result<Option<Vec<u8>>> {
        if !self.seq_of.contains_key(id)? {
            return Ok(None);
        }
        if let Some(b) = self.entries.get(id)? {
            return Ok(Some(b.to_vec()));
        }
        Ok(self.withdrawals.get(id)?.map(|b| b.to_vec()))
    }

    /// True if the entry or withdrawal `id` is stored here.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn holds(&self, id: &RecordId) -> Result<bool> {
        Ok(self.entries.contains_key(id)? || self.withdrawals.contains_key(id)?)
    }

    /// The catch-up cursor kept for a peer: its store epoch and the highest of its sequence
    /// numbers fully processed here.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn cursor(&self, peer: &[u8]) -> Result<Option<(u64, u64)>> {
        match self.cursors.get(peer)? {
            Some(v) if v.len() == 16 => Ok(Some((
                u64::from_be_bytes(as_id_8(&v[..8])),
                u64::from_be_bytes(as_id_8(&v[8..])),
            ))),
            Some(_) => Err(anyhow!("corrupt catch-up cursor")),
            None => Ok(None),
        }
    }

    /// Keeps the catch-up cursor of a peer (made durable by the next flush).
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn set_cursor(&self, peer: &[u8], epoch: u64, through: u64) -> Result<()> {
        let mut v = epoch.to_be_bytes().to_vec();
        v.extend_from_slice(&through.to_be_bytes());
        self.cursors.insert(peer, v)?;
        Ok(())
    }

    /// How many entries (every version) the store holds.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }
}

fn as_id_8(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(b);
    out
}

/// A delegation this node issued or received, with the chain it ends (`cix grant`,
/// `cix delegate`, `cix tokens import`; see [`crate::tokens`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Delegation token bytes, root first; the last one is the delegation itself.
    pub chain: Vec<serde_bytes::ByteBuf>,
    /// `grant`, `delegate`, `import` or `request`.
    pub source: String,
}

/// Peers' agency profiles, kept by DID so that a transfer can be checked against the profile
/// its requester sent with an earlier request (ISO 37156 8.2.2 h).
impl Store {
    const PROFILES: &'static str = "profiles";

    /// Keeps a peer's signed profile, replacing any older one.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn put_profile(&self, did: &Did, bytes: &[u8]) -> Result<()> {
        self.db
            .open_tree(Self::PROFILES)?
            .insert(did.to_string().as_bytes(), bytes)?;
        Ok(())
    }

    /// The signed profile kept for a peer, if any (not yet verified again).
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn profile(&self, did: &Did) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .open_tree(Self::PROFILES)?
            .get(did.to_string().as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// How many profiles are kept.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn profile_count(&self) -> Result<usize> {
        Ok(self.db.open_tree(Self::PROFILES)?.len())
    }
}

/// The delegation trees, opened on first use (sled keeps them open after that).
impl Store {
    const ISSUED: &'static str = "issued";
    const RECEIVED: &'static str = "received";

    fn put_token(&self, tree: &str, cid: &Cid, record: &TokenRecord) -> Result<()> {
        self.db
            .open_tree(tree)?
            .insert(cid.as_bytes(), enc(record)?)?;
        Ok(())
    }

    fn tokens(&self, tree: &str) -> Result<Vec<(Cid, TokenRecord)>> {
        let mut out = Vec::new();
        for item in self.db.open_tree(tree)?.iter() {
            let (k, v) = item?;
            let cid = Cid::from_bytes(&k).map_err(|e| anyhow!("corrupt {tree} key: {e}"))?;
            out.push((cid, dec(&v, tree)?));
        }
        Ok(out)
    }

    /// Records a delegation this node issued.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn put_issued(&self, cid: &Cid, record: &TokenRecord) -> Result<()> {
        self.put_token(Self::ISSUED, cid, record)
    }

    /// Records a delegation chain this node received.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn put_received(&self, cid: &Cid, record: &TokenRecord) -> Result<()> {
        self.put_token(Self::RECEIVED, cid, record)
    }

    /// Every delegation this node issued.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn issued(&self) -> Result<Vec<(Cid, TokenRecord)>> {
        self.tokens(Self::ISSUED)
    }

    /// Every delegation chain this node received.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn received(&self) -> Result<Vec<(Cid, TokenRecord)>> {
        self.tokens(Self::RECEIVED)
    }
}

/// Small JSON records in named trees, opened on first use: resumable transfers and the copies
/// this node holds as a custodian (`transfer.rs`).
impl Store {
    /// Stores `value` under `key` in `tree` (not flushed: call [`Store::flush_async`]).
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn put_record<T: Serialize>(&self, tree: &str, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.db.open_tree(tree)?.insert(key.as_bytes(), bytes)?;
        Ok(())
    }

    /// The record under `key` in `tree`; one that no longer parses counts as absent.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn record<T: serde::de::DeserializeOwned>(
        &self,
        tree: &str,
        key: &str,
    ) -> Result<Option<T>> {
        Ok(self
            .db
            .open_tree(tree)?
            .get(key.as_bytes())?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Removes the record under `key` in `tree`.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn remove_record(&self, tree: &str, key: &str) -> Result<()> {
        self.db.open_tree(tree)?.remove(key.as_bytes())?;
        Ok(())
    }

    /// Every record in `tree` that parses, with its key.
    ///
    /// # Errors
    ///
    /// Store I/O.
    pub fn records<T: serde::de::DeserializeOwned>(&self, tree: &str) -> Result<Vec<(String, T)>> {
        let mut out = Vec::new();
        for item in self.db.open_tree(tree)?.iter() {
            let (k, v) = item?;
            if let Ok(t) = serde_json::from_slice(&v) {
                out.push((String::from_utf8_lossy(&k).into_owned(), t));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cix_protocol::catalogue::Entry;
    use cix_protocol::identity::Keypair;

    fn signed(
        key: &Keypair,
        dataset: DatasetId,
        version: u64,
        prev: Option<EntryId>,
    ) -> SignedEntry {
        let text = format!(
            r#"{{"iss":"{did}","dataset":"{ds}","version":{version},"title":"t","description":"",
            "keywords":[],"themes":[],"publisher":{{"name":"p"}},"issued":"2026-01-01",
            "modified":"2026-01-01","distributions":[{{"media_type":"text/csv","bytes":1,
            "content":"{h}"}}],"iso":{{"data_type":"thematic","kind":"status","concept":"State",
            "domain":"ict","insight":"operational","facets":{{}},"spectrum":"open",
            "roles":{{"creator":{{"name":"c"}},"owner":{{"name":"o"}},"custodians":[],
            "primary_publisher":"{did}"}},"privacy":{{"personal_data":false,"high_risk":[],
            "jurisdiction":"US","allowed_jurisdictions":[]}},"dictionary":[]}}}}"#,
            did = key.did(),
            ds = dataset,
            h = ContentHash::of(b"x"),
        );
        // Ids and hashes are bytes on the wire but hex here; patch them in after parsing.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["dataset"] = serde_json::json!(dataset.0.to_vec());
        v["distributions"][0]["content"] = serde_json::json!(ContentHash::of(b"x").0.to_vec());
        let mut entry: Entry = serde_json::from_value(v).unwrap();
        entry.previous = prev;
        entry.sign(key).unwrap()
    }

    #[test]
    fn newer_versions_supersede_and_squatters_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let owner = Keypair::generate();
        let ds = DatasetId::generate();
        let v1 = signed(&owner, ds, 1, None);
        let v2 = signed(&owner, ds, 2, Some(v1.id));
        assert!(store.put_entry(&v2).unwrap());
        assert!(
            !store.put_entry(&v1).unwrap(),
            "an older version never becomes latest"
        );
        assert_eq!(store.latest_entry(&ds).unwrap().unwrap().id, v2.id);
        assert!(
            store.entry(&v1.id).unwrap().is_some(),
            "history stays queryable"
        );

        // Another publisher announces the same dataset id: it cannot take the listing over.
        let squatter = Keypair::generate();
        store
            .put_entry(&signed(&squatter, ds, 9, Some(v1.id)))
            .unwrap();
        let err = store.latest_entry(&ds).unwrap_err().to_string();
        assert!(err.contains("several publishers"), "{err}");
    }

    #[test]
    fn withdrawal_hides_up_to_its_version_and_a_later_version_relists() {
        use cix_protocol::withdrawal::Withdrawal;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let owner = Keypair::generate();
        let ds = DatasetId::generate();
        let v1 = signed(&owner, ds, 1, None);
        store.put_entry(&v1).unwrap();
        let w = Withdrawal {
            iss: owner.did(),
            dataset: ds,
            version: 1,
            at: 10,
            reason: None,
        }
        .seal(&owner)
        .unwrap();
        assert!(store.put_withdrawal(&w).unwrap());
        assert!(!store.put_withdrawal(&w).unwrap(), "kept once");
        assert!(store.catalogue().unwrap().is_empty());
        assert_eq!(store.catalogue_all().unwrap().len(), 1);
        // Another publisher's entry under the same id is not touched by it.
        let other = Keypair::generate();
        store.put_entry(&signed(&other, ds, 1, None)).unwrap();
        assert_eq!(store.catalogue().unwrap().len(), 1);
        // The owner's version 2 lists the dataset again.
        let v2 = signed(&owner, ds, 2, Some(v1.id));
        store.put_entry(&v2).unwrap();
        let listed: Vec<EntryId> = store.catalogue().unwrap().iter().map(|e| e.id).collect();
        assert!(listed.contains(&v2.id));
        assert_eq!(store.versions(&ds).unwrap().len(), 3);
        assert_eq!(store.withdrawn_version(&ds, &owner.did()).unwrap(), Some(1));
    }

    #[test]
    fn id_pages_list_current_records_in_arrival_order_and_resume() {
        use cix_protocol::withdrawal::Withdrawal;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let key = Keypair::generate();
        let a = DatasetId::generate();
        let a1 = signed(&key, a, 1, None);
        let a2 = signed(&key, a, 2, Some(a1.id));
        let b1 = signed(&key, DatasetId::generate(), 1, None);
        for e in [&a1, &b1, &a2] {
            store.put_entry(e).unwrap();
        }
        let w = Withdrawal {
            iss: key.did(),
            dataset: a,
            version: 2,
            at: 1,
            reason: None,
        }
        .seal(&key)
        .unwrap();
        store.put_withdrawal(&w).unwrap();
        // a1 is superseded: skipped, but its number is passed over.
        let all = store.ids_after(0, 100).unwrap();
        assert_eq!(all.ids, vec![b1.id.0, a2.id.0, w.id]);
        assert_eq!((all.through, all.more), (4, false));
        let first = store.ids_after(0, 1).unwrap();
        assert_eq!((first.ids.clone(), first.more), (vec![b1.id.0], true));
        let rest = store.ids_after(first.through, 100).unwrap();
        assert_eq!(rest.ids, vec![a2.id.0, w.id]);
        assert!(store.ids_after(all.through, 100).unwrap().ids.is_empty());
        assert!(store.servable(&w.id).unwrap().is_some());
        // Cursors and the epoch survive a reopen; numbering goes on after the last one.
        store.set_cursor(b"peer", 7, 4).unwrap();
        let epoch = store.epoch();
        store.flush().unwrap();
        drop(store);
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.epoch(), epoch);
        assert_eq!(store.cursor(b"peer").unwrap(), Some((7, 4)));
        let c1 = signed(&key, DatasetId::generate(), 1, None);
        store.put_entry(&c1).unwrap();
        assert_eq!(store.ids_after(4, 100).unwrap().ids, vec![c1.id.0]);
    }
}
