//! Re-checking live grants when the rules they were given under change (ISO 37156 8.2.5).
//!
//! A grant was decided against a state: the dataset's allowed jurisdictions, the holder's
//! jurisdiction (from its signed agency profile) and, for group access, the registrar whose
//! attestation showed membership. When any of these changes, every live grant is evaluated
//! again against the current state; a grant that no longer holds is revoked through the usual
//! path ([`crate::revoke`]: signed, stored, gossiped, enforced by every serving node) with a
//! reason that tells the holder why, and the others are kept.
//!
//! What starts a re-check:
//! - a new version of one of this node's datasets ([`crate::publish`]),
//! - a peer's profile that states a different jurisdiction than the one kept for it (marked
//!   by [`crate::rules`], run by the task [`spawn`] starts),
//! - the node's start (its trusted registrars or thresholds may have been edited),
//! - a registrar leaving the trusted list while the node runs (`cix config reload`,
//!   `cix registrars distrust`; [`crate::registrars`]), before that call returns,
//! - `cix tokens recheck` (`POST /v1/grants/recheck`).
//!
//! | tree | key | value |
//! |---|---|---|
//! | `grant_basis` | delegation CID (bytes) | [`Basis`]: the delegation and the registrar it rested on |
//! | `recheck_pending` | Unix nanoseconds (8 bytes) | why a re-check is due (UTF-8) |

use std::time::Duration;

use anyhow::{anyhow, Result};
use cix_protocol::catalogue::DatasetId;
use cix_protocol::caveats;
use cix_protocol::identity::Did;
use cix_protocol::revocation::MAX_REVOCATION_REASON_BYTES;
use cix_protocol::ucan::{Cid, Delegation};
use cix_protocol::wire::DenyCode;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::access::now;
use crate::node::{Node, Shared};
use crate::store::Decision;

const BASIS_TREE: &str = "grant_basis";
const PENDING_TREE: &str = "recheck_pending";
/// Largest stored grant basis read back.
const MAX_BASIS_BYTES: usize = 256 * 1024;
/// How often the task looks for a pending re-check.
pub const RECHECK_POLL: Duration = Duration::from_secs(2);

/// What a grant rested on, beyond its dataset's rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Basis {
    /// The delegation token.
    #[serde(with = "serde_bytes")]
    pub delegation: Vec<u8>,
    /// The registrar whose attestation granted group access (ISO 37156 5.5.3), if any.
    pub registrar: Option<Did>,
}

/// One grant's verdict.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecheckLine {
    /// The delegation.
    pub cid: String,
    /// Its holder.
    pub holder: String,
    /// Its dataset.
    pub dataset: Option<String>,
    /// `kept` or `revoked`.
    pub verdict: &'static str,
    /// Why it was revoked, or what could not be checked.
    pub reason: Option<String>,
}

/// Notes a grant this node decided on its own (shared-public, shared-group), so that it can be
/// re-checked later.
pub fn note_grant(shared: &Shared, cid: &Cid, delegation: &[u8], registrar: Option<Did>) {
    let basis = Basis {
        delegation: delegation.to_vec(),
        registrar,
    };
    let result = (|| -> Result<()> {
        let bytes = cix_protocol::cbor::to_vec(&basis).map_err(|e| anyhow!("{e}"))?;
        shared
            .store
            .tree(BASIS_TREE)?
            .insert(cid.to_string().as_bytes(), bytes)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::error!(error = %format!("{e:#}"), "cannot note a grant's basis");
    }
}

/// Asks the background task for a re-check.
pub fn mark(shared: &Shared, why: &str) {
    let key = u64::try_from(crate::receipts::now_ms()).unwrap_or(0) * 1_000_000
        + u64::from(rand::random::<u16>());
    if let Err(e) = shared
        .store
        .tree(PENDING_TREE)
        .and_then(|t| Ok(t.insert(key.to_be_bytes(), why.as_bytes())?))
    {
        tracing::error!(error = %format!("{e:#}"), "cannot mark a re-check");
    }
}

/// Every delegation this node issued and may have to re-check, with what it rested on.
pub(crate) fn candidates(shared: &Shared) -> Result<Vec<(Cid, Basis)>> {
    let mut out: Vec<(Cid, Basis)> = Vec::new();
    for item in shared.store.tree(BASIS_TREE)?.iter() {
        let (_, v) = item?;
        let basis: Basis = cix_protocol::cbor::from_slice(&v, MAX_BASIS_BYTES)
            .map_err(|e| anyhow!("corrupt grant basis: {e}"))?;
        if let Ok((_, cid)) = Delegation::decode(&basis.delegation) {
            out.push((cid, basis));
        }
    }
    for (cid, record) in shared.store.issued()? {
        if let Some(last) = record.chain.last() {
            out.push((
                cid,
                Basis {
                    delegation: last.to_vec(),
                    registrar: None,
                },
            ));
        }
    }
    for r in shared.store.requests_in()? {
        if let Decision::Approved { delegation, .. } = r.decision {
            out.push((
                Cid::of_token(&delegation),
                Basis {
                    delegation,
                    registrar: None,
                },
            ));
        }
    }
    out.sort_by_key(|a| a.0);
    out.dedup_by(|a, b| {
        if a.0 == b.0 {
            b.1.registrar = b.1.registrar.or(a.1.registrar);
            true
        } else {
            false
        }
    });
    Ok(out)
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_REVOCATION_REASON_BYTES {
        let mut end = MAX_REVOCATION_REASON_BYTES - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// Why a live grant no longer holds, or `None` when it does.
fn no_longer_holds(shared: &Shared, d: &Delegation, basis: &Basis) -> Result<Option<String>> {
    let Some(dataset) = caveats::pinned_text(&d.pol, caveats::ARG_DATASET)
        .and_then(|t| t.parse::<DatasetId>().ok())
    else {
        return Ok(None);
    };
    let Some(own) = shared.store.own(&dataset)? else {
        return Ok(None);
    };
    let Some(entry) = shared.store.entry(&own.entry)? else {
        return Ok(None);
    };
    let entry = entry.entry;
    let profile = crate::rules::requester_profile(shared, &d.aud, None, now()).unwrap_or(None);
    match crate::rules::check_jurisdiction(&entry, profile.as_ref()) {
        Ok(()) => {}
        // Nothing known about where the holder is: the transfer check asks for its profile.
        Err((DenyCode::ProfileRequired, _)) => {}
        Err((_, why)) => {
            return Ok(Some(clip(format!(
                "re-check on change (ISO 37156 8.2.5): the grant of dataset {dataset} no longer \
                 holds under version {}: {why}",
                entry.version
            ))))
        }
    }
    if let Some(r) = &basis.registrar {
        if !crate::registrars::trusted(shared).contains(r) {
            return Ok(Some(clip(format!(
                "re-check on change (ISO 37156 8.2.5): the group grant of dataset {dataset} \
                 rested on registrar {r}, which this agency no longer trusts"
            ))));
        }
    }
    Ok(None)
}

/// Re-evaluates every live grant this node issued; revokes those that no longer hold.
///
/// # Errors
///
/// Store I/O; a failed revocation is reported in its line instead.
pub async fn recheck(node: &Node, why: &str) -> Result<Vec<RecheckLine>> {
    let shared = &node.shared;
    let t = now();
    let mut lines = Vec::new();
    for (cid, basis) in candidates(shared)? {
        let Ok((d, _)) = Delegation::decode(&basis.delegation) else {
            continue;
        };
        if d.exp.is_some_and(|e| e <= t)
            || crate::revoke::grant_unusable(shared, &basis.delegation)?.is_some()
        {
            continue;
        }
        let dataset = caveats::pinned_text(&d.pol, caveats::ARG_DATASET);
        let mut line = RecheckLine {
            cid: cid.to_string(),
            holder: d.aud.to_string(),
            dataset,
            verdict: "kept",
            reason: None,
        };
        if let Some(reason) = no_longer_holds(shared, &d, &basis)? {
            match crate::revoke::revoke(
                node,
                &crate::revoke::RevokeRequest {
                    cid: cid.to_string(),
                    reason: Some(reason.clone()),
                },
            )
            .await
            {
                Ok(_) => {
                    info!(token = %cid, holder = %d.aud, "grant revoked on re-check");
                    line.verdict = "revoked";
                    line.reason = Some(reason);
                }
                Err(e) => {
                    warn!(token = %cid, error = %format!("{e:#}"), "re-check could not revoke");
                    line.reason = Some(format!("should be revoked ({reason}) but: {e:#}"));
                }
            }
        }
        lines.push(line);
    }
    debug!(%why, grants = lines.len(), "grants re-checked (ISO 37156 8.2.5)");
    Ok(lines)
}

/// Starts the task that re-checks at start-up and whenever a re-check is marked.
pub fn spawn(node: Node) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stopping = node.shared.stopping.clone();
        if let Err(e) = recheck(&node, "start-up").await {
            tracing::error!(error = %format!("{e:#}"), "start-up re-check failed");
        }
        while !*stopping.borrow() {
            tokio::select! {
                () = tokio::time::sleep(RECHECK_POLL) => {}
                _ = stopping.changed() => break,
            }
            let Ok(tree) = node.shared.store.tree(PENDING_TREE) else {
                continue;
            };
            let due: Vec<_> = tree.iter().filter_map(Result::ok).collect();
            if due.is_empty() {
                continue;
            }
            let why = String::from_utf8_lossy(&due[0].1).to_string();
            match recheck(&node, &why).await {
                Ok(_) => {
                    for (k, _) in due {
                        let _ = tree.remove(k);
                    }
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "re-check failed"),
            }
        }
    })
}
