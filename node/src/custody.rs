//! Custodians of shared data (specs/transfer.md §6.2; ISO 37156 7.2 availability and
//! resilience, 7.3.2 authenticity, 8.2.2 conditions of sharing).
//!
//! A node other than the owner serves a shared dataset only while it holds a `serve`
//! delegation ([`ucan::CMD_SERVE`]) issued directly by the owner for that dataset, unexpired
//! and not revoked as far as it knows; and only to a requester whose own chain roots at the
//! owner, checked with the owner's rules (`transfer::check_invocation`) against the entry and
//! the revocations this node knows, with the invocation addressed to this node.

use cix_protocol::catalogue::DatasetId;
use cix_protocol::caveats;
use cix_protocol::identity::Did;
use cix_protocol::ucan::{self, command_covers, Cid, Delegation};
use cix_protocol::wire::DenyCode;

use crate::node::Shared;
use crate::rules::Refusal;

/// A serve delegation this node holds and may serve under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeGrant {
    /// Its CID (named in the audit log of every serve).
    pub cid: Cid,
    /// Its expiry, Unix seconds.
    pub exp: Option<i64>,
}

/// Whether `d` is a serve delegation from `owner` to `me` for `dataset`, whatever its dates.
fn is_serve_delegation(d: &Delegation, owner: &Did, me: &Did, dataset: &str) -> bool {
    d.iss == *owner
        && d.sub == Some(*owner)
        && d.aud == *me
        && command_covers(&d.cmd, ucan::CMD_SERVE)
        && caveats::pinned_text(&d.pol, caveats::ARG_DATASET).as_deref() == Some(dataset)
}

/// The serve delegation this node holds from `owner` for `dataset` at time `t` (the one lasting
/// longest), from the delegations it received (`cix tokens import`): a single link issued by
/// the owner (its subject), addressed to this node, covering `/cix/data/serve`, pinning the
/// dataset, valid at `t` and broken by no revocation this node holds.
///
/// # Errors
///
/// A refusal to send the requester: `revoked` when the only such delegations were revoked,
/// `no-grant` when there is none or all have expired, `busy` on a store failure.
pub fn serve_grant(
    shared: &Shared,
    owner: &Did,
    dataset: &DatasetId,
    t: i64,
) -> std::result::Result<ServeGrant, Refusal> {
    let internal = |e: anyhow::Error| {
        tracing::error!(error = %format!("{e:#}"), "store failure while checking a serve delegation");
        (
            DenyCode::Busy,
            "this node could not check its serve delegation".to_string(),
        )
    };
    let me = shared.did();
    let want = dataset.to_string();
    let (mut revoked, mut expired) = (None::<String>, false);
    let mut best: Option<ServeGrant> = None;
    for (cid, record) in shared.store.received().map_err(internal)? {
        let [bytes] = record.chain.as_slice() else {
            continue;
        };
        let Ok((d, _)) = Delegation::decode(bytes) else {
            continue;
        };
        if !is_serve_delegation(&d, owner, &me, &want) {
            continue;
        }
        if d.exp.is_some_and(|e| e <= t) || d.nbf.is_some_and(|n| n > t) {
            expired = true;
            continue;
        }
        if let Some(r) = crate::revoke::revoked(shared, &record).map_err(internal)? {
            revoked = Some(format!(
                "the owner's serve delegation {cid} to this node was revoked by {}{}: this node \
                 no longer serves dataset {want}; fetch it from its owner",
                r.revocation.iss,
                r.reason_suffix()
            ));
            continue;
        }
        if best.is_none_or(|b| d.exp.unwrap_or(i64::MAX) > b.exp.unwrap_or(i64::MAX)) {
            best = Some(ServeGrant { cid, exp: d.exp });
        }
    }
    best.ok_or_else(|| match revoked {
        Some(why) => (DenyCode::Revoked, why),
        None if expired => (
            DenyCode::NoGrant,
            format!(
                "this node's serve delegation for dataset {want} has expired: fetch it from its \
                 owner"
            ),
        ),
        None => (
            DenyCode::NoGrant,
            format!(
                "this node holds dataset {want} but no serve delegation from its owner, so it \
                 does not serve it (shared data): fetch it from its owner"
            ),
        ),
    })
}

/// Whether this node may announce itself as a source of `dataset`'s content on the DHT: open
/// data always, shared data while it holds a serve delegation from `owner`.
pub fn may_announce(shared: &Shared, owner: &Did, dataset: &DatasetId, open: bool) -> bool {
    open || serve_grant(shared, owner, dataset, crate::access::now()).is_ok()
}
