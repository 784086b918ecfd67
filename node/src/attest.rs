//! The registrar's side of group access (ISO 37156 5.5.3): `cix attest` signs a membership
//! attestation (`cix/attest@1`) saying that an agency belongs to a named group, for the member
//! to pass to owners of shared-group datasets with `cix request --attestation FILE`.
//!
//! Any node can act as a registrar; an attestation counts only with owners that list the
//! registrar in their `trusted_registrars`. Attestations are not kept by the registrar and
//! cannot be withdrawn before they expire, so keep them short.

use anyhow::{anyhow, bail, Result};
use cix_protocol::attestation::{is_group_name, Attestation};
use cix_protocol::identity::Did;
use cix_protocol::limits;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::access::now;
use crate::node::Shared;
use crate::tokens::MAX_GRANT_DAYS;

/// What `POST /v1/attest` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct AttestRequest {
    /// The member's did:key.
    pub to: String,
    /// The group's name.
    pub group: String,
    /// Validity in days; the node's `grant_days` when absent.
    #[serde(default)]
    pub days: Option<u32>,
}

/// The answer, and the line `cix attest --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct AttestLine {
    /// Always `attestation`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The registrar (this node).
    pub issuer: String,
    /// The member.
    pub subject: String,
    /// The group.
    pub group: String,
    /// Unix seconds.
    pub issued: i64,
    /// Unix seconds.
    pub expires: i64,
    /// The signed attestation, hex.
    pub attestation: String,
}

/// Signs an attestation that `req.to` belongs to `req.group`.
///
/// # Errors
///
/// A bad DID, group name or duration.
pub fn attest(shared: &Shared, req: &AttestRequest) -> Result<AttestLine> {
    let sub: Did = req
        .to
        .parse()
        .map_err(|e| anyhow!("--to {:?} is not an ed25519 did:key: {e}", req.to))?;
    if !is_group_name(&req.group) {
        bail!(
            "--group {:?} is not a group name: 1 to {} bytes of a-z, 0-9, '-', '_', '.', '/', \
             starting with a letter or digit",
            req.group,
            limits::MAX_GROUP_NAME_BYTES
        );
    }
    let days = req.days.unwrap_or(shared.config.grant_days);
    if days == 0 || days > MAX_GRANT_DAYS {
        bail!("--days must be between 1 and {MAX_GRANT_DAYS}, not {days}");
    }
    let issued = now();
    let a = Attestation {
        iss: shared.did(),
        sub,
        group: req.group.clone(),
        issued,
        exp: issued + i64::from(days) * 86_400,
    };
    let bytes = a
        .sign(&shared.key)
        .map_err(|e| anyhow!("cannot sign the attestation: {e}"))?;
    info!(member = %a.sub, group = %a.group, expires = a.exp, "membership attested");
    Ok(AttestLine {
        kind: "attestation",
        issuer: a.iss.to_string(),
        subject: a.sub.to_string(),
        group: a.group,
        issued,
        expires: a.exp,
        attestation: hex::encode(bytes),
    })
}
