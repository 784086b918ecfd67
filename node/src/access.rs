//! Access decisions by data spectrum (ISO 37156 5.5), the operator's request queue, and the
//! requester's side of `/cix/access/1`.
//!
//! | level | decision |
//! |---|---|
//! | closed (5.5.2) | always denied: closed data never leaves the node, whatever a token says |
//! | open (5.5.4) | `Open`: any authenticated peer may fetch, no token |
//! | shared-public (5.5.3) | granted at once when the requester accepts the stated terms |
//! | shared-group (5.5.3) | granted at once when an attestation from a trusted registrar shows the requester in a group of the dataset's rule |
//! | shared-named (5.5.3) | queued for the operator; granted only after `cix requests approve` |
//!
//! Before any shared level is decided, the dataset's jurisdiction rule applies (8.2.2 a, h): a
//! requester whose signed profile (sent with the request, [`crate::rules`]) places it outside
//! the allowed jurisdictions is refused, and so is one that sent no profile.
//!
//! A grant is a UCAN delegation from this node (the owner) to the requester, for
//! `/cix/data/fetch` on one dataset only, valid for `grant_days` (and no longer than the
//! attestation it rests on), whose policy carries the caveats of [`cix_protocol::caveats`]:
//! the purpose stated, the terms accepted, the jurisdictions allowed and the retention.

use anyhow::{anyhow, bail, Result};
use cix_protocol::catalogue::{DatasetId, Entry, EntryId, Level};
use cix_protocol::caveats;
use cix_protocol::identity::Did;
use cix_protocol::limits;
use cix_protocol::ucan::{self, Delegation};
use cix_protocol::wire::{AccessRequest, AccessResponse, DenyCode, SyncResponse};
use libp2p::PeerId;
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::node::{did_of_peer, peer_of_did, Node, NodeEvent, Shared};
use crate::store::{Decision, IncomingRequest, OutgoingRequest};

/// Most requests one requester may have waiting in the operator's queue.
pub const MAX_PENDING_PER_REQUESTER: usize = 32;
/// Most requests waiting in the operator's queue in all.
pub const MAX_PENDING_TOTAL: usize = 1024;

/// Current Unix time in seconds.
pub fn now() -> i64 {
    // With the testing offset of `crate::clock`, if set.
    crate::clock::now_millis().div_euclid(1000)
}

fn deny(code: DenyCode, reason: impl Into<String>) -> AccessResponse {
    AccessResponse::Denied {
        code,
        reason: reason.into(),
    }
}

/// The owner's decision on an access request from `peer`.
pub fn decide(shared: &Shared, peer: &PeerId, req: AccessRequest) -> AccessResponse {
    let resp = match decide_inner(shared, peer, &req) {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "access decision failed");
            deny(
                DenyCode::Busy,
                "the owner's node could not decide; try again later",
            )
        }
    };
    audit_decision(shared, peer, &req, &resp);
    shared.metrics.request(match &resp {
        AccessResponse::Open => "open",
        AccessResponse::Pending => "pending",
        AccessResponse::Granted { .. } => "granted",
        AccessResponse::Denied { .. } => "denied",
    });
    resp
}

/// ISO 37156 8.3.4: the owner's side of an access request goes on the record: the request as
/// received, then the grant or the denial with its reason (jurisdiction refusals included,
/// 8.2.2). Written without waiting for the flush, as this runs in the network loop.
fn audit_decision(shared: &Shared, peer: &PeerId, req: &AccessRequest, resp: &AccessResponse) {
    use crate::audit::{log_detached, AuditEvent};
    use cix_protocol::audit::AuditKind;
    let entry = shared
        .store
        .own(&req.dataset)
        .ok()
        .flatten()
        .and_then(|own| shared.store.entry(&own.entry).ok().flatten());
    let base = |kind: AuditKind| {
        let mut e = AuditEvent::new(kind)
            .dataset(req.dataset)
            .peer_opt(did_of_peer(peer))
            .purpose(crate::audit::clip_purpose(&req.purpose));
        if let Some(s) = &entry {
            e = e.entry(&s.entry);
        }
        e
    };
    let role = if req.probe {
        "probe received"
    } else {
        "received"
    };
    let answer = match resp {
        AccessResponse::Open => "open",
        AccessResponse::Pending => "pending",
        AccessResponse::Granted { .. } => "granted",
        AccessResponse::Denied { .. } => "denied",
    };
    log_detached(
        shared,
        base(AuditKind::AccessRequest).detail(format!(
            "{role}, accept-terms {}, answer {answer}",
            req.accept_terms
        )),
    );
    if req.probe {
        return;
    }
    match resp {
        AccessResponse::Granted { delegation } => log_detached(
            shared,
            base(AuditKind::Grant)
                .token(ucan::Cid::of_token(delegation))
                .detail("issued in answer to the request"),
        ),
        AccessResponse::Denied { code, reason } => log_detached(
            shared,
            base(AuditKind::Denial).reason(reason.clone()).detail(
                if *code == DenyCode::Jurisdiction {
                    format!("code {code:?}: refused by jurisdiction (ISO 37156 8.2.2 h)")
                } else {
                    format!("code {code:?}")
                },
            ),
        ),
        AccessResponse::Open | AccessResponse::Pending => {}
    }
}

fn decide_inner(shared: &Shared, peer: &PeerId, req: &AccessRequest) -> Result<AccessResponse> {
    let Some(requester) = did_of_peer(peer) else {
        warn!(%peer, "access request from a peer without an ed25519 identity");
        return Ok(deny(
            DenyCode::BadRequest,
            "requester identity is not an ed25519 key",
        ));
    };
    if req.purpose.len() > limits::MAX_PURPOSE_BYTES || req.request.len() != 16 {
        warn!(%peer, "malformed access request");
        return Ok(deny(
            DenyCode::BadRequest,
            "purpose too long or request id not 16 bytes",
        ));
    }
    let Some(own) = shared.store.own(&req.dataset)? else {
        return Ok(deny(
            DenyCode::UnknownDataset,
            format!("dataset {} is not held here", req.dataset),
        ));
    };
    let level = crate::store::Store::own_level(&own)?;
    debug!(%peer, dataset = %req.dataset, %level, probe = req.probe, "access request");
    if let Some(why) = crate::withdraw::withdrawn_own(shared, &own)? {
        return Ok(deny(DenyCode::Withdrawn, why));
    }
    if req.probe {
        // A probe learns only what any peer could: closed, open, or "ask properly".
        return Ok(match level {
            Level::Closed => deny(
                DenyCode::Closed,
                "the dataset is closed (ISO 37156 5.5.2): it never leaves its owner's node",
            ),
            Level::Open => AccessResponse::Open,
            _ => deny(
                DenyCode::NoGrant,
                format!(
                    "{level} data: ask its owner with `cix request {}`",
                    req.dataset
                ),
            ),
        });
    }
    match level {
        Level::Closed => {
            return Ok(deny(
                DenyCode::Closed,
                "the dataset is closed (ISO 37156 5.5.2): it never leaves its owner's node",
            ))
        }
        Level::Open => return Ok(AccessResponse::Open),
        _ => {}
    }
    let entry = shared
        .store
        .entry(&own.entry)?
        .ok_or_else(|| anyhow!("own dataset {} has no stored entry", own.dataset))?
        .entry;
    let t = now();
    // ISO 37156 8.2.2 a, h: who is asking, by its own signed profile, and whether the data may
    // go where it is.
    let profile =
        match crate::rules::requester_profile(shared, &requester, req.profile.as_deref(), t)
            .and_then(|p| crate::rules::check_jurisdiction(&entry, p.as_ref()).map(|()| p))
        {
            Ok(p) => p,
            Err((code, reason)) => {
                debug!(%peer, dataset = %req.dataset, ?code, "access refused");
                if code == DenyCode::Jurisdiction {
                    // ISO 37156 8.2.2 h: a refusal to send data abroad is kept with its reason.
                    warn!(%requester, dataset = %req.dataset, "access refused by jurisdiction");
                    // The denial record itself is written by `audit_decision`.
                }
                return Ok(deny(code, reason));
            }
        };
    debug!(%peer, jurisdiction = ?profile.as_ref().map(|p| &p.jurisdiction), "requester profile");
    Ok(match level {
        Level::SharedPublic if !req.accept_terms => deny(
            DenyCode::TermsNotAccepted,
            "shared-public data is granted to anyone who accepts its terms: ask again with --accept-terms",
        ),
        Level::SharedPublic => {
            let (delegation, _) = grant(shared, &requester, &entry, &req.purpose, None)?;
            AccessResponse::Granted { delegation }
        }
        Level::SharedGroup => {
            match crate::rules::check_group(shared, &requester, &entry, &req.attestations, t) {
                Ok(a) => {
                    let (delegation, cid) =
                        grant(shared, &requester, &entry, &req.purpose, Some(a.exp))?;
                    crate::recheck::note_grant(shared, &cid, &delegation, Some(a.iss));
                    AccessResponse::Granted { delegation }
                }
                Err((code, reason)) => {
                    debug!(%peer, dataset = %req.dataset, ?code, "group access refused");
                    deny(code, reason)
                }
            }
        }
        Level::SharedNamed => named(shared, &requester, req)?,
        Level::Open | Level::Closed => {
            tracing::error!("level already decided above");
            deny(DenyCode::Busy, "the owner's node could not decide")
        }
    })
}

/// The request id the owner's operator sees: 16 hex digits derived from the requester and its
/// own request id, so that asking again finds the same queue entry.
pub fn queue_id(requester: &Did, request: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(requester.to_string().as_bytes());
    h.update(request);
    hex::encode(&h.finalize().as_bytes()[..8])
}

fn named(shared: &Shared, requester: &Did, req: &AccessRequest) -> Result<AccessResponse> {
    let id = queue_id(requester, &req.request);
    if let Some(existing) = shared.store.request_in(&id)? {
        if existing.dataset != req.dataset {
            return Ok(deny(
                DenyCode::BadRequest,
                "request id reused for another dataset",
            ));
        }
        return Ok(match existing.decision {
            Decision::Pending => AccessResponse::Pending,
            Decision::Approved { delegation, .. } => AccessResponse::Granted { delegation },
            Decision::Denied { reason, .. } => deny(DenyCode::DeniedByOwner, reason),
        });
    }
    let all = shared.store.requests_in()?;
    let pending: Vec<_> = all
        .iter()
        .filter(|r| r.decision == Decision::Pending)
        .collect();
    if pending.len() >= MAX_PENDING_TOTAL
        || pending.iter().filter(|r| &r.requester == requester).count() >= MAX_PENDING_PER_REQUESTER
    {
        warn!(%requester, "access request queue full");
        return Ok(deny(
            DenyCode::Busy,
            "the owner's request queue is full; try again later",
        ));
    }
    let record = IncomingRequest {
        id: id.clone(),
        requester: *requester,
        request: req.request.clone(),
        dataset: req.dataset,
        purpose: req.purpose.clone(),
        received: now(),
        decision: Decision::Pending,
    };
    shared.store.put_request_in(&record)?;
    shared.store.flush()?;
    info!(request = %id, dataset = %req.dataset, %requester, "access request queued for the operator");
    shared.emit(NodeEvent::RequestQueued {
        request: id,
        dataset: req.dataset.to_string(),
    });
    Ok(AccessResponse::Pending)
}

/// Issues a delegation of `/cix/data/fetch` on `entry`'s dataset from this node to
/// `requester`, with the caveats of [`caveats::grant_policy`] for `purpose`, expiring after
/// `grant_days` or at `not_after`, whichever is first.
fn grant(
    shared: &Shared,
    requester: &Did,
    entry: &Entry,
    purpose: &str,
    not_after: Option<i64>,
) -> Result<(Vec<u8>, ucan::Cid)> {
    let issued = now();
    let dataset = entry.dataset;
    let mut exp = issued + i64::from(shared.config.grant_days) * 86_400;
    if let Some(limit) = not_after {
        exp = exp.min(limit);
    }
    let delegation = Delegation {
        iss: shared.did(),
        aud: *requester,
        sub: Some(shared.did()),
        cmd: ucan::CMD_FETCH.into(),
        pol: caveats::grant_policy(entry, Some(purpose)),
        nonce: rand::random::<[u8; 16]>().to_vec(),
        exp: Some(exp),
        nbf: None,
        meta: None,
    };
    let (bytes, cid) = delegation
        .seal(&shared.key)
        .map_err(|e| anyhow!("cannot sign grant: {e}"))?;
    crate::recheck::note_grant(shared, &cid, &bytes, None);
    info!(%requester, %dataset, token = %cid, "access granted");
    Ok((bytes, cid))
}

/// Finds a queued request by id or unique prefix.
///
/// # Errors
///
/// If none or several match.
pub fn find_request(shared: &Shared, id: &str) -> Result<IncomingRequest> {
    let matches: Vec<_> = shared
        .store
        .requests_in()?
        .into_iter()
        .filter(|r| r.id.starts_with(id))
        .collect();
    match matches.len() {
        0 => bail!("no request {id:?} in this node's queue (see `cix requests list`)"),
        1 => Ok(matches.into_iter().next().expect("one element")),
        n => bail!("{n} requests start with {id:?}; give more digits"),
    }
}

/// The operator approves a queued request: a delegation is issued and kept for the requester.
///
/// # Errors
///
/// If the request is unknown or already decided.
pub fn approve(shared: &Shared, id: &str) -> Result<IncomingRequest> {
    let mut r = find_request(shared, id)?;
    if r.decision != Decision::Pending {
        bail!("request {} was already decided", r.id);
    }
    let own = shared
        .store
        .own(&r.dataset)?
        .ok_or_else(|| anyhow!("dataset {} is no longer published by this node", r.dataset))?;
    let entry = shared
        .store
        .entry(&own.entry)?
        .ok_or_else(|| anyhow!("own dataset {} has no stored entry", own.dataset))?
        .entry;
    let (delegation, cid) = grant(shared, &r.requester, &entry, &r.purpose, None)?;
    r.decision = Decision::Approved {
        delegation,
        at: now(),
    };
    shared.store.put_request_in(&r)?;
    shared.store.flush()?;
    crate::audit::log_detached(
        shared,
        crate::audit::AuditEvent::new(cix_protocol::audit::AuditKind::Grant)
            .entry(&entry)
            .peer(r.requester)
            .purpose(r.purpose.clone())
            .token(cid)
            .detail(format!("request {} approved by the operator", r.id)),
    );
    Ok(r)
}

/// The operator denies a queued request with a reason the requester will see.
///
/// # Errors
///
/// If the request is unknown or already decided, or the reason is too long.
pub fn deny_request(shared: &Shared, id: &str, reason: &str) -> Result<IncomingRequest> {
    if reason.len() > limits::MAX_REASON_BYTES {
        bail!("reason is longer than {} bytes", limits::MAX_REASON_BYTES);
    }
    let mut r = find_request(shared, id)?;
    if r.decision != Decision::Pending {
        bail!("request {} was already decided", r.id);
    }
    r.decision = Decision::Denied {
        reason: reason.into(),
        at: now(),
    };
    shared.store.put_request_in(&r)?;
    shared.store.flush()?;
    info!(request = %r.id, "access denied by the operator");
    crate::audit::log_detached(
        shared,
        crate::audit::AuditEvent::new(cix_protocol::audit::AuditKind::Denial)
            .dataset(r.dataset)
            .peer(r.requester)
            .purpose(r.purpose.clone())
            .reason(reason)
            .detail(format!("request {} denied by the operator", r.id)),
    );
    Ok(r)
}

/// One page of this node's own announced entries, for a peer catching up.
pub fn sync_page(shared: &Shared, after: Option<EntryId>) -> SyncResponse {
    let mut ids: Vec<EntryId> = match shared.store.own_all() {
        Ok(own) => own
            .into_iter()
            .filter(|o| o.level != Level::Closed.as_str())
            .map(|o| o.entry)
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot list own datasets");
            Vec::new()
        }
    };
    ids.sort();
    let mut entries = Vec::new();
    let mut size = 0usize;
    let mut more = false;
    for id in ids.into_iter().filter(|id| after.is_none_or(|a| *id > a)) {
        let Ok(Some(e)) = shared.store.entry(&id) else {
            continue;
        };
        if entries.len() == limits::MAX_SYNC_ENTRIES
            || size + e.bytes.len() + 16 > limits::MAX_SYNC_RESPONSE_BYTES - 64
        {
            more = true;
            break;
        }
        size += e.bytes.len() + 16;
        entries.push(serde_bytes::ByteBuf::from(e.bytes));
    }
    SyncResponse::envelopes(entries, more)
}

/// One page of the revocations this node knows, whoever signed them, for a peer catching up:
/// a revocation must reach nodes that were away when it was gossiped, even if its signer is
/// offline now.
pub fn revocation_page(shared: &Shared, after: Option<EntryId>) -> SyncResponse {
    match shared.store.revocations_after(
        after.map(|a| a.0),
        limits::MAX_SYNC_ENTRIES,
        limits::MAX_SYNC_RESPONSE_BYTES - 1024,
    ) {
        Ok((entries, more)) => SyncResponse::envelopes(
            entries
                .into_iter()
                .map(serde_bytes::ByteBuf::from)
                .collect(),
            more,
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot list revocations");
            SyncResponse::envelopes(Vec::new(), false)
        }
    }
}

/// r1 catch-up, first half: the ids of the records (current entries and withdrawals, whoever
/// signed them) that arrived here after sequence number `since`, one bounded page.
pub fn id_page(shared: &Shared, since: u64) -> SyncResponse {
    match shared.store.ids_after(since, limits::MAX_SYNC_IDS) {
        Ok(page) => SyncResponse {
            entries: Vec::new(),
            more: page.more,
            ids: page
                .ids
                .iter()
                .map(|i| serde_bytes::ByteBuf::from(i.to_vec()))
                .collect(),
            through: Some(page.through),
            epoch: Some(shared.store.epoch()),
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot list records for catch-up");
            SyncResponse::envelopes(Vec::new(), false)
        }
    }
}

/// r1 catch-up, second half: the envelopes of the records `want` names, those this node may
/// serve (never a closed entry), within the response bounds; `more` when some were left out
/// for size.
pub fn record_page(shared: &Shared, peer: &PeerId, want: &[serde_bytes::ByteBuf]) -> SyncResponse {
    if want.len() > limits::MAX_SYNC_ENTRIES || want.iter().any(|w| w.len() != 32) {
        warn!(%peer, count = want.len(), "malformed catch-up request: too many ids or an id not 32 bytes");
        return SyncResponse::envelopes(Vec::new(), false);
    }
    let mut entries = Vec::new();
    let mut size = 0usize;
    for w in want {
        let mut id = [0u8; 32];
        id.copy_from_slice(w);
        let bytes = match shared.store.servable(&id) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot read a record for catch-up");
                continue;
            }
        };
        if size + bytes.len() + 16 > limits::MAX_SYNC_RESPONSE_BYTES - 64 {
            return SyncResponse::envelopes(entries, true);
        }
        size += bytes.len() + 16;
        entries.push(serde_bytes::ByteBuf::from(bytes));
    }
    shared.stats.sync_served(entries.len() as u64);
    SyncResponse::envelopes(entries, false)
}

/// Outcome of asking for access, as `cix request` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestOutcome {
    /// Dataset id.
    pub dataset: String,
    /// open, granted, pending or denied.
    pub status: String,
    /// The owner's reason, when denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Stable refusal code, when denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<DenyCode>,
    /// The owner's principal.
    pub owner: String,
}

/// Asks the owner of `dataset` for access (or asks again about an earlier request).
///
/// # Errors
///
/// If the dataset is unknown or the owner cannot be reached.
pub async fn request(
    node: &Node,
    dataset: DatasetId,
    purpose: &str,
    accept_terms: bool,
) -> Result<RequestOutcome> {
    request_with(node, dataset, purpose, accept_terms, &[]).await
}

/// [`request`], passing group membership attestations (ISO 37156 5.5.3) for shared-group data.
/// This node's signed agency profile goes with every request.
///
/// # Errors
///
/// If the dataset is unknown, an attestation is malformed or there are too many, or the owner
/// cannot be reached.
pub async fn request_with(
    node: &Node,
    dataset: DatasetId,
    purpose: &str,
    accept_terms: bool,
    attestations: &[Vec<u8>],
) -> Result<RequestOutcome> {
    if attestations.len() > limits::MAX_ATTESTATIONS {
        bail!(
            "at most {} attestations per request, not {}",
            limits::MAX_ATTESTATIONS,
            attestations.len()
        );
    }
    for (i, a) in attestations.iter().enumerate() {
        cix_protocol::attestation::Attestation::decode(a)
            .map_err(|e| anyhow!("attestation {} is unusable: {e}", i + 1))?;
    }
    if purpose.len() > limits::MAX_PURPOSE_BYTES {
        bail!("purpose is longer than {} bytes", limits::MAX_PURPOSE_BYTES);
    }
    let entry = node.shared.store.latest_entry(&dataset)?.ok_or_else(|| {
        anyhow!("dataset {dataset} is not in this node's catalogue (see `cix catalogue list`)")
    })?;
    // Access through cix is to bytes the owner serves; a reference-only entry (an imported
    // portal record) points elsewhere.
    if let Err(e) = entry.entry.held() {
        bail!("{e}");
    }
    let owner = entry.entry.iss;
    let mut prior = node.shared.store.request_out(&dataset)?;
    // After a denial, asking again with a purpose is a new request the owner decides afresh.
    if prior.as_ref().is_some_and(|p| p.status == "denied") && !purpose.is_empty() {
        prior = None;
    }
    // A grant that was revoked or has expired is spent: asking again is a new request (the
    // owner would otherwise answer with the same, dead, delegation). The old purpose stands
    // unless a new one is given.
    let mut old_purpose = None;
    if let Some(p) = prior.as_ref().filter(|p| p.status == "granted") {
        if crate::revoke::grant_unusable(&node.shared, &p.delegation)?.is_some() {
            old_purpose = Some(p.purpose.clone());
            prior = None;
        }
    }
    let request_id = prior
        .as_ref()
        .map(|p| p.request.clone())
        .unwrap_or_else(|| rand::random::<[u8; 16]>().to_vec());
    let purpose = if purpose.is_empty() {
        prior
            .as_ref()
            .map(|p| p.purpose.clone())
            .or(old_purpose)
            .unwrap_or_default()
    } else {
        purpose.to_string()
    };
    let accept_terms = accept_terms || prior.as_ref().is_some_and(|p| p.accept_terms);
    let peer = peer_of_did(&owner)?;
    let response = ask(
        node,
        peer,
        AccessRequest {
            request: request_id.clone(),
            dataset,
            purpose: purpose.clone(),
            accept_terms,
            probe: false,
            profile: Some(node.shared.profile.bytes.clone()),
            attestations: attestations
                .iter()
                .map(|a| serde_bytes::ByteBuf::from(a.clone()))
                .collect(),
        },
    )
    .await?;
    let mut out = OutgoingRequest {
        dataset,
        request: request_id,
        purpose,
        accept_terms,
        status: String::new(),
        delegation: Vec::new(),
        reason: None,
    };
    let mut outcome = RequestOutcome {
        dataset: dataset.to_string(),
        status: String::new(),
        reason: None,
        code: None,
        owner: owner.to_string(),
    };
    match response {
        AccessResponse::Open => out.status = "open".into(),
        AccessResponse::Pending => out.status = "pending".into(),
        AccessResponse::Granted { delegation } => {
            let (d, _) = Delegation::decode(&delegation)
                .map_err(|e| anyhow!("the owner sent an invalid grant: {e}"))?;
            if d.iss != owner || d.aud != node.did() {
                bail!("the owner sent a grant that is not from it to us");
            }
            out.status = "granted".into();
            out.delegation = delegation;
        }
        AccessResponse::Denied { code, reason } => {
            out.status = "denied".into();
            out.reason = Some(reason.clone());
            outcome.reason = Some(reason);
            outcome.code = Some(code);
        }
    }
    outcome.status = out.status.clone();
    node.shared.store.put_request_out(&out)?;
    node.shared.store.flush()?;
    // The requester's side of the exchange (ISO 37156 8.3.4): what was asked, and the answer.
    {
        use crate::audit::{log, AuditEvent};
        use cix_protocol::audit::AuditKind;
        let base = |kind: AuditKind| {
            AuditEvent::new(kind)
                .entry(&entry.entry)
                .peer(owner)
                .purpose(out.purpose.clone())
        };
        log(
            &node.shared,
            base(AuditKind::AccessRequest).detail(format!(
                "sent, accept-terms {accept_terms}, answer {}",
                out.status
            )),
        )
        .await;
        if out.status == "granted" {
            log(
                &node.shared,
                base(AuditKind::Grant)
                    .token(ucan::Cid::of_token(&out.delegation))
                    .detail("received from the owner"),
            )
            .await;
        } else if out.status == "denied" {
            log(
                &node.shared,
                base(AuditKind::Denial)
                    .reason(out.reason.clone().unwrap_or_default())
                    .detail(format!("received from the owner, code {:?}", outcome.code)),
            )
            .await;
        }
    }
    Ok(outcome)
}

/// Sends one access request to `peer`, locating it first if not connected.
///
/// # Errors
///
/// If the peer cannot be found or does not answer.
pub async fn ask(node: &Node, peer: PeerId, req: AccessRequest) -> Result<AccessResponse> {
    if !node.locate(peer).await? {
        bail!("cannot reach the owner {peer}: not connected and no address known (is it running?)");
    }
    node.send_access(peer, req).await
}
