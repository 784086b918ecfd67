//! `cix revoke`: withdrawing a delegation this node issued (DESIGN §5; ISO 37156 9.2 b, the
//! owner changes the data's permissions, and 5.5.3, access stays with those the owner chose).
//!
//! The node signs a [`Revocation`] naming the delegation's CID, stores it durably (flushed
//! before the command returns), and gossips it on `cix/revocations/1`; nodes that were away get
//! it through `/cix/sync/1`. From then on every serving node refuses a chain through that link
//! with the code `revoked`, also after restarts, because revocations are never deleted.
//!
//! A node may revoke what it issued (found by CID or unique prefix among its grants, approvals
//! and re-delegations), or, given a full CID, any delegation: such a revocation takes effect
//! only on chains in which this node stands at or above the revoked link.

use anyhow::{anyhow, bail, Result};
use cix_protocol::revocation::{Revocation, SignedRevocation, MAX_REVOCATION_REASON_BYTES};
use cix_protocol::ucan::{Cid, Delegation};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::access::now;
use crate::node::{Node, Shared};
use crate::store::{Decision, TokenRecord};

/// What `POST /v1/revoke` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct RevokeRequest {
    /// CID of the delegation, or a unique prefix of one this node issued.
    pub cid: String,
    /// Why, shown to the operators who meet the revocation.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer of `cix revoke`, and one line of `cix revocations --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RevocationLine {
    /// Revocation id: BLAKE3 hex of its envelope.
    pub revocation: String,
    /// CID of the revoked delegation.
    pub revoked: String,
    /// Who signed the revocation.
    pub by: String,
    /// When it was signed, Unix seconds.
    pub at: i64,
    /// Why.
    pub reason: Option<String>,
    /// True if this node issued the revoked delegation itself.
    pub issued_here: bool,
    /// Peers subscribed to the revocations topic when it was gossiped (`revoke` answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announced_to: Option<usize>,
}

/// Every delegation this node issued, with its CID: direct grants, re-delegations and approvals.
fn issued(shared: &Shared) -> Result<Vec<Cid>> {
    let mut out: Vec<Cid> = shared
        .store
        .issued()?
        .into_iter()
        .map(|(cid, _)| cid)
        .collect();
    for r in shared.store.requests_in()? {
        if let Decision::Approved { delegation, .. } = r.decision {
            out.push(Cid::of_token(&delegation));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The delegation named by `text`, and whether this node issued it.
fn target(shared: &Shared, text: &str) -> Result<(Cid, bool)> {
    let text = text.trim();
    let mine = issued(shared)?;
    if let Ok(cid) = text.parse::<Cid>() {
        return Ok((cid, mine.contains(&cid)));
    }
    if text.len() < 6 || !text.bytes().all(|c| c.is_ascii_alphanumeric()) {
        bail!(
            "{text:?} is not a delegation CID (bafy…, or a unique prefix of at least 6 characters \
             of one this node issued)"
        );
    }
    let found: Vec<Cid> = mine
        .into_iter()
        .filter(|c| c.to_string().starts_with(text))
        .collect();
    match found.as_slice() {
        [] => bail!(
            "this node issued no delegation {text:?} (see `cix tokens list`); to revoke a \
             delegation issued downstream of one of yours, give its full CID"
        ),
        [one] => Ok((*one, true)),
        many => bail!(
            "{} delegations this node issued start with {text:?}; give more characters",
            many.len()
        ),
    }
}

fn line(r: &SignedRevocation, issued_here: bool, announced_to: Option<usize>) -> RevocationLine {
    RevocationLine {
        revocation: hex::encode(r.id),
        revoked: r.revocation.revoke.to_string(),
        by: r.revocation.iss.to_string(),
        at: r.revocation.at,
        reason: r.revocation.reason.clone(),
        issued_here,
        announced_to,
    }
}

/// Signs, stores (durably) and gossips a revocation of the delegation `req.cid`.
///
/// # Errors
///
/// An unknown or ambiguous CID, a reason over [`MAX_REVOCATION_REASON_BYTES`], or store I/O.
pub async fn revoke(node: &Node, req: &RevokeRequest) -> Result<RevocationLine> {
    let shared = &node.shared;
    let reason = req
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.len() > MAX_REVOCATION_REASON_BYTES) {
        bail!("--reason is longer than {MAX_REVOCATION_REASON_BYTES} bytes");
    }
    let (cid, issued_here) = target(shared, &req.cid)?;
    let signed = Revocation {
        iss: shared.did(),
        revoke: cid,
        at: now(),
        reason: reason.map(str::to_string),
    }
    .seal(&shared.key)
    .map_err(|e| anyhow!("cannot sign the revocation: {e}"))?;
    // Durable first: a revocation acknowledged to the operator is never lost.
    shared.store.put_revocation(&signed)?;
    shared.store.flush()?;
    info!(revoked = %cid, revocation = %hex::encode(signed.id), "delegation revoked");
    let mut event = crate::audit::AuditEvent::new(cix_protocol::audit::AuditKind::Revocation)
        .token(cid)
        .detail(format!("revocation {}", hex::encode(signed.id)));
    if let Some(r) = reason {
        event = event.reason(r);
    }
    crate::audit::append(shared, event).await?;
    let announced = node.announce_revocation(signed.bytes.clone()).await?;
    Ok(line(&signed, issued_here, Some(announced)))
}

/// Every revocation this node knows.
///
/// # Errors
///
/// Store I/O or a corrupt record.
pub fn list(shared: &Shared) -> Result<Vec<RevocationLine>> {
    let mine = issued(shared)?;
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let (page, more) = shared.store.revocations_after(after, 512, usize::MAX)?;
        for bytes in &page {
            let r = SignedRevocation::decode(bytes)
                .map_err(|e| anyhow!("corrupt revocation record: {e}"))?;
            after = Some(r.id);
            out.push(line(&r, mine.contains(&r.revocation.revoke), None));
        }
        if !more || page.is_empty() {
            break;
        }
    }
    out.sort_by(|a, b| b.at.cmp(&a.at).then(a.revocation.cmp(&b.revocation)));
    Ok(out)
}

/// Why a single grant this node received can no longer be used: revoked (with the revocation)
/// or expired; `None` while it is usable.
///
/// # Errors
///
/// Store I/O, or a grant that no longer decodes.
pub fn grant_unusable(shared: &Shared, delegation: &[u8]) -> Result<Option<String>> {
    let record = TokenRecord {
        chain: vec![serde_bytes::ByteBuf::from(delegation.to_vec())],
        source: "request".into(),
    };
    if let Some(r) = revoked(shared, &record)? {
        let why = r.reason_suffix();
        return Ok(Some(format!("was revoked by {}{why}", r.revocation.iss)));
    }
    let (d, _) = Delegation::decode(delegation).map_err(|e| anyhow!("stored grant: {e}"))?;
    Ok(d.exp
        .filter(|e| *e <= now())
        .map(|e| format!("expired at {e}")))
}

/// The revocation that breaks the chain of `record`, if one is known.
///
/// # Errors
///
/// Store I/O, or a stored chain that no longer decodes.
pub fn revoked(shared: &Shared, record: &TokenRecord) -> Result<Option<SignedRevocation>> {
    let mut chain = Vec::with_capacity(record.chain.len());
    for bytes in &record.chain {
        let (d, cid) =
            Delegation::decode(bytes).map_err(|e| anyhow!("corrupt stored delegation: {e}"))?;
        chain.push((d, cid));
    }
    for (_, cid) in &chain {
        if let Some(r) = shared
            .store
            .revocations_of(cid)?
            .into_iter()
            .find(|r| r.breaks(&chain).is_some())
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}
