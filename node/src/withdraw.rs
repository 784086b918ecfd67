//! Versions and withdrawal of datasets (ISO 37156 4.2 g: a dataset's history is kept, and its
//! withdrawal is part of it).
//!
//! - `cix publish FILE --dataset ID` signs a new version of one of this node's datasets: the
//!   next version number (past any withdrawn one), `previous` naming the entry it replaces, the
//!   first version's `issued` kept ([`next_version`]).
//! - `cix catalogue withdraw ID` signs a [`Withdrawal`] of this node's dataset, naming its
//!   latest version, stores it durably and gossips it on `cix/withdrawals/1` ([`withdraw`]).
//!   Every node then leaves the dataset out of its listings, and the owner refuses to serve it
//!   with the code `withdrawn` ([`withdrawn_own`]).
//! - `cix catalogue history ID` lists every version this node knows and every withdrawal
//!   ([`history`]).

use anyhow::{anyhow, bail, Result};
use cix_protocol::catalogue::{DatasetId, EntryId, SignedEntry};
use cix_protocol::limits::MAX_WITHDRAWAL_REASON_BYTES;
use cix_protocol::withdrawal::{SignedWithdrawal, Withdrawal};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::access::now;
use crate::node::{Node, Shared};
use crate::store::OwnDataset;

/// What `POST /v1/withdraw` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct WithdrawRequest {
    /// Dataset id, or a unique prefix of one of this node's datasets.
    pub dataset: String,
    /// Why, shown to the operators who meet the withdrawal.
    #[serde(default)]
    pub reason: Option<String>,
}

/// One withdrawal, as `cix catalogue withdraw` and `cix catalogue history` show it.
#[derive(Debug, Clone, Serialize)]
pub struct WithdrawalLine {
    /// Always `withdrawal` (history lines mix versions and withdrawals).
    pub kind: &'static str,
    /// Withdrawal id: BLAKE3 hex of its envelope.
    pub withdrawal: String,
    /// Dataset id.
    pub dataset: String,
    /// The last version withdrawn.
    pub version: u64,
    /// Who signed it.
    pub by: String,
    /// When, Unix seconds.
    pub at: i64,
    /// Why.
    pub reason: Option<String>,
    /// Peers subscribed to the withdrawals topic when it was gossiped (`withdraw` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announced_to: Option<usize>,
}

/// One version of a dataset in `cix catalogue history`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionLine {
    /// Always `version`.
    pub kind: &'static str,
    /// Dataset id.
    pub dataset: String,
    /// Entry id.
    pub entry: String,
    /// Version number.
    pub version: u64,
    /// BLAKE3 hex of the content (the primary distribution's).
    pub content_hash: String,
    /// The version's modified time, as signed.
    pub modified: String,
    /// Title of this version.
    pub title: String,
    /// Publisher's did:key.
    pub publisher_did: String,
    /// The entry id this version replaces, if it says.
    pub previous: Option<String>,
    /// True for the version listings show (the newest), unless the dataset is withdrawn.
    pub current: bool,
}

/// What `GET /v1/catalogue/{id}/history` answers.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// Dataset id.
    pub dataset: String,
    /// True if the dataset appears in listings (not withdrawn, or re-published since).
    pub listed: bool,
    /// Every version known, oldest first.
    pub versions: Vec<VersionLine>,
    /// Every withdrawal known, oldest first.
    pub withdrawals: Vec<WithdrawalLine>,
}

fn withdrawal_line(w: &SignedWithdrawal, announced_to: Option<usize>) -> WithdrawalLine {
    WithdrawalLine {
        kind: "withdrawal",
        withdrawal: hex::encode(w.id),
        dataset: w.withdrawal.dataset.to_string(),
        version: w.withdrawal.version,
        by: w.withdrawal.iss.to_string(),
        at: w.withdrawal.at,
        reason: w.withdrawal.reason.clone(),
        announced_to,
    }
}

/// Finds a dataset known here, withdrawn or not, by id or unique prefix (at least 4 hex
/// digits).
///
/// # Errors
///
/// Text that is not an id or prefix, a prefix several datasets share, or store I/O.
pub fn resolve_any(shared: &Shared, text: &str) -> Result<Option<DatasetId>> {
    let text = text.trim();
    if let Ok(id) = text.parse::<DatasetId>() {
        let known = !shared.store.versions(&id)?.is_empty()
            || !shared.store.withdrawals_of(&id)?.is_empty();
        return Ok(known.then_some(id));
    }
    if text.len() < 4 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("{text:?} is not a dataset id (32 hex digits, or a unique prefix of at least 4)");
    }
    let lower = text.to_ascii_lowercase();
    let mut hits: Vec<DatasetId> = shared
        .store
        .catalogue_all()?
        .into_iter()
        .map(|e| e.entry.dataset)
        .filter(|d| d.to_string().starts_with(&lower))
        .collect();
    hits.sort();
    hits.dedup();
    match hits.len() {
        0 => Ok(None),
        1 => Ok(hits.pop()),
        n => bail!("{n} datasets start with {text:?}; give more digits"),
    }
}

fn own_dataset(shared: &Shared, text: &str) -> Result<OwnDataset> {
    let dataset = resolve_any(shared, text)?
        .ok_or_else(|| anyhow!("no dataset {text:?} is known here (see `cix catalogue list`)"))?;
    shared.store.own(&dataset)?.ok_or_else(|| {
        anyhow!(
            "dataset {dataset} was not published by this node; only its publisher can sign a \
             new version or withdraw it"
        )
    })
}

/// Dataset id, version, previous entry and `issued` for a new version of the own dataset named
/// by `text`: one past both the latest version and any withdrawn one, so that publishing after
/// a withdrawal lists the dataset again.
///
/// # Errors
///
/// If `text` names no dataset this node published.
pub fn next_version(shared: &Shared, text: &str) -> Result<(DatasetId, u64, EntryId, String)> {
    let own = own_dataset(shared, text)?;
    let latest = shared
        .store
        .latest_entry(&own.dataset)?
        .ok_or_else(|| anyhow!("own dataset {} has no entry", own.dataset))?;
    let withdrawn = shared
        .store
        .withdrawn_version(&own.dataset, &shared.did())?
        .unwrap_or(0);
    let version = latest
        .entry
        .version
        .max(withdrawn)
        .checked_add(1)
        .ok_or_else(|| anyhow!("dataset {} has no version number left", own.dataset))?;
    Ok((own.dataset, version, latest.id, latest.entry.issued))
}

/// Why an own dataset is not served any more, if it was withdrawn: the text of a `withdrawn`
/// refusal.
///
/// # Errors
///
/// Store I/O or a corrupt record.
pub fn withdrawn_own(shared: &Shared, own: &OwnDataset) -> Result<Option<String>> {
    let Some(entry) = shared.store.entry(&own.entry)? else {
        return Ok(None);
    };
    Ok(shared.store.withdrawal_of(&entry)?.map(|w| {
        format!(
            "the owner withdrew dataset {} (version {}) and no longer serves it (ISO 37156 4.2 g){}",
            own.dataset,
            w.withdrawal.version,
            w.withdrawal
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )
    }))
}

/// Signs, stores (durably) and gossips a withdrawal of this node's dataset `req.dataset`, up to
/// its latest version.
///
/// # Errors
///
/// A dataset this node did not publish, one already withdrawn at its latest version, a reason
/// over [`MAX_WITHDRAWAL_REASON_BYTES`], or store I/O.
pub async fn withdraw(node: &Node, req: &WithdrawRequest) -> Result<WithdrawalLine> {
    let shared = &node.shared;
    let reason = req
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.len() > MAX_WITHDRAWAL_REASON_BYTES) {
        bail!("--reason is longer than {MAX_WITHDRAWAL_REASON_BYTES} bytes");
    }
    let own = own_dataset(shared, &req.dataset)?;
    let latest = shared
        .store
        .latest_entry(&own.dataset)?
        .ok_or_else(|| anyhow!("own dataset {} has no entry", own.dataset))?;
    if let Some(w) = shared.store.withdrawal_of(&latest)? {
        bail!(
            "dataset {} is already withdrawn (version {}, withdrawal {})",
            own.dataset,
            w.withdrawal.version,
            hex::encode(w.id)
        );
    }
    let (signed, announced) =
        withdraw_version(node, own.dataset, latest.entry.version, reason).await?;
    Ok(withdrawal_line(&signed, Some(announced)))
}

/// Signs, stores durably and, if the dataset was ever announced, gossips this node's
/// withdrawal of `dataset` up to `version`. Returns it with the number of peers told (0 for
/// a dataset that was closed in every version: nobody else knew of it, ISO 37156 5.5.2).
///
/// # Errors
///
/// Signing or store I/O.
pub async fn withdraw_version(
    node: &Node,
    dataset: DatasetId,
    version: u64,
    reason: Option<&str>,
) -> Result<(SignedWithdrawal, usize)> {
    let shared = &node.shared;
    let signed = Withdrawal {
        iss: shared.did(),
        dataset,
        version,
        at: now(),
        reason: reason.map(str::to_string),
    }
    .seal(&shared.key)
    .map_err(|e| anyhow!("cannot sign the withdrawal: {e}"))?;
    // Durable first: a withdrawal acknowledged to the operator is never lost.
    shared.store.put_withdrawal(&signed)?;
    shared.store.flush()?;
    shared.search.withdraw(&dataset, &shared.key.did(), version);
    let mut event = crate::audit::AuditEvent::new(cix_protocol::audit::AuditKind::Withdrawal)
        .dataset(dataset)
        .detail(format!(
            "versions up to {version}, withdrawal {}",
            hex::encode(signed.id)
        ));
    if let Some(r) = reason {
        event = event.reason(r);
    }
    crate::audit::append(shared, event).await?;
    info!(%dataset, version, withdrawal = %hex::encode(signed.id), "dataset withdrawn");
    let announced = if shared.store.ever_announced(&dataset, &shared.did())? {
        node.announce_withdrawal(signed.bytes.clone()).await?
    } else {
        debug!(%dataset, "withdrawal of a dataset never announced: kept here only");
        0
    };
    Ok((signed, announced))
}

/// Every version and withdrawal of the dataset `text` names that this node knows.
///
/// # Errors
///
/// An unknown dataset, or store I/O.
pub fn history(shared: &Shared, text: &str) -> Result<History> {
    let dataset = resolve_any(shared, text)?
        .ok_or_else(|| anyhow!("no dataset {text:?} is known here (see `cix catalogue list`)"))?;
    let mut versions: Vec<SignedEntry> = shared.store.versions(&dataset)?;
    versions.sort_by(|a, b| {
        (a.entry.version, a.entry.modified.as_str()).cmp(&(b.entry.version, &b.entry.modified))
    });
    let listed_ids: Vec<EntryId> = shared
        .store
        .catalogue()?
        .into_iter()
        .filter(|e| e.entry.dataset == dataset)
        .map(|e| e.id)
        .collect();
    let mut withdrawals = shared.store.withdrawals_of(&dataset)?;
    withdrawals.sort_by_key(|w| (w.withdrawal.version, w.withdrawal.at));
    Ok(History {
        dataset: dataset.to_string(),
        listed: !listed_ids.is_empty(),
        versions: versions
            .iter()
            .map(|e| VersionLine {
                kind: "version",
                dataset: dataset.to_string(),
                entry: e.id.to_string(),
                version: e.entry.version,
                content_hash: e
                    .entry
                    .primary()
                    .and_then(|d| d.content)
                    .map(|c| c.to_hex())
                    .unwrap_or_default(),
                modified: e.entry.modified.clone(),
                title: e.entry.title.clone(),
                publisher_did: e.entry.iss.to_string(),
                previous: e.entry.previous.map(|p| p.to_string()),
                current: listed_ids.contains(&e.id),
            })
            .collect(),
        withdrawals: withdrawals
            .iter()
            .map(|w| withdrawal_line(w, None))
            .collect(),
    })
}
