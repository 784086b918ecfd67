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
//!
//! Every write that is acknowledged to a caller is flushed before the acknowledgement returns
//! (DESIGN.md §6). Values are CBOR; a record that fails to decode is reported, never guessed.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use cix_protocol::catalogue::{DatasetId, EntryId, Level, SignedEntry};
use cix_protocol::cbor;
use cix_protocol::content::ContentHash;
use cix_protocol::identity::Did;
use cix_protocol::revocation::SignedRevocation;
use cix_protocol::ucan::Cid;
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
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .with_context(|| {
                format!(
                    "cannot open the store at {} (is another node using it?)",
                    path.display()
                )
            })?;
        Ok(Self {
            entries: db.open_tree("entries")?,
            latest: db.open_tree("latest")?,
            own: db.open_tree("own")?,
            requests_in: db.open_tree("requests_in")?,
            requests_out: db.open_tree("requests_out")?,
            spent: db.open_tree("spent")?,
            revocations: db.open_tree("revocations")?,
            revoked: db.open_tree("revoked")?,
            db,
        })
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

    /// The latest entry of every dataset known.
    ///
    /// # Errors
    ///
    /// Store I/O or a corrupt record.
    pub fn catalogue(&self) -> Result<Vec<SignedEntry>> {
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
}
