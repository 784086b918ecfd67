//! Delegations this node hands out directly and re-delegates, and the list of every delegation
//! it issued or received: what `cix grant`, `cix delegate`, `cix tokens import` and
//! `cix tokens list` do through the admin API.
//!
//! - **grant**: the owner of a dataset delegates a command on it (by default
//!   `/cix/data/fetch`; `/cix/data/republish` or `/cix/data` for a secondary publisher,
//!   ISO 37156 9.2 e) to another agency without waiting for a request. The policy names the
//!   dataset and carries the dataset's caveats ([`cix_protocol::caveats`]: jurisdictions,
//!   retention, terms), the purpose when one is stated (also kept in `meta.purpose`), and, with
//!   `--fields`, the only columns of a CSV dataset the audience may have (ISO 37156 8.2.2 c).
//! - **delegate**: an agency that received a delegation passes it on, attenuated: the same or a
//!   narrower command, the same subject and policy (a fields caveat included), and an expiry no later than the one it
//!   received (ISO 37156 9.2 e: a secondary publisher's rights are a subset of the primary's).
//! - **import**: a delegation chain handed over out of band (a file from `cix grant --out`) is
//!   checked and kept as received, so it can be used and re-delegated. A chain in which a link
//!   widens the command, drops a policy statement or outlives the link before it is refused.
//!
//! Records live in the store's `issued` and `received` trees (see [`crate::store`]); the list
//! also shows the grants made through the request queue and those this node received that way,
//! which the access module keeps with the requests.
//!
//! Revocation lives in [`crate::revoke`]; the list shows a revoked chain's state as `revoked`.
//! Not done here: delivering a direct grant over the network (the operator hands the chain
//! over).

use anyhow::{anyhow, bail, Context, Result};
use cix_protocol::catalogue::Level;
use cix_protocol::identity::Did;
use cix_protocol::ucan::{
    self, command_covers, Cid, Delegation, Policy, Statement, CMD_FETCH, MAX_CHAIN_LEN,
    MAX_DELEGATION_TTL_SECS,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::info;

use crate::access::now;
use crate::node::Shared;
use crate::store::{Decision, TokenRecord};

/// Longest delegation `cix grant` and `cix delegate` issue, in days (the profile's limit).
pub const MAX_GRANT_DAYS: u32 = (MAX_DELEGATION_TTL_SECS / 86_400) as u32;

/// What `POST /v1/grant` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct GrantRequest {
    /// Dataset id or a unique prefix; the dataset must be this node's own.
    pub dataset: String,
    /// The agency receiving the delegation.
    pub to: String,
    /// Validity in days; the node's `grant_days` when absent.
    #[serde(default)]
    pub days: Option<u32>,
    /// Purpose, recorded in the token's `meta`.
    #[serde(default)]
    pub purpose: Option<String>,
    /// Command delegated; `/cix/data/fetch` when absent.
    #[serde(default)]
    pub command: Option<String>,
    /// The only fields (data dictionary names) of a CSV dataset the audience may have
    /// (ISO 37156 8.2.2 c, 7.1); every field when absent.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

/// What `POST /v1/delegate` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct DelegateRequest {
    /// CID (or a unique prefix) of a delegation this node received.
    pub cid: String,
    /// The agency receiving the new delegation.
    pub to: String,
    /// Validity in days, capped by the received delegation's expiry.
    #[serde(default)]
    pub days: Option<u32>,
    /// Purpose, recorded in the token's `meta`.
    #[serde(default)]
    pub purpose: Option<String>,
    /// A command at or beneath the received one; the received one when absent.
    #[serde(default)]
    pub command: Option<String>,
}

/// What `POST /v1/tokens/import` takes: a chain of delegation tokens in hex, root first, the
/// last one addressed to this node.
#[derive(Debug, Clone, Deserialize)]
pub struct ImportRequest {
    /// Token bytes in hex, root first.
    pub chain: Vec<String>,
}

/// One line of `cix tokens list --json`, and the answer to grant, delegate and import.
#[derive(Debug, Clone, Serialize)]
pub struct TokenLine {
    /// Always `delegation`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `issued` by this node or `received` by it.
    pub direction: &'static str,
    /// How it came about: `grant`, `delegate`, `request`, `import` or `emergency` (ISO 37156 6.7).
    pub source: &'static str,
    /// The delegation's CID.
    pub cid: String,
    /// Its issuer.
    pub issuer: String,
    /// Its audience.
    pub audience: String,
    /// Its subject (`null` for a powerline).
    pub subject: Option<String>,
    /// Its command.
    pub command: String,
    /// The dataset its policy names, if it names one with `==` on `.dataset`.
    pub dataset: Option<String>,
    /// The purpose in its `meta`, if any.
    pub purpose: Option<String>,
    /// The only fields its policy permits (sorted), if it limits fields (ISO 37156 8.2.2 c).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// Expiry, Unix seconds (`null`: never).
    pub expires: Option<i64>,
    /// `active`, `expired`, `not-yet-valid` or `revoked`, at the time of the call.
    pub state: &'static str,
    /// Length of the chain ending in this delegation.
    pub depth: usize,
    /// The chain ending in this delegation, token bytes in hex, root first (grant, delegate and
    /// import answers only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
}

fn parse_did(text: &str) -> Result<Did> {
    text.parse()
        .map_err(|e| anyhow!("--to {text:?} is not an ed25519 did:key: {e}"))
}

fn validity(shared: &Shared, days: Option<u32>) -> Result<i64> {
    let days = days.unwrap_or(shared.config.grant_days);
    if days == 0 || days > MAX_GRANT_DAYS {
        bail!("--days must be between 1 and {MAX_GRANT_DAYS}, not {days}");
    }
    Ok(i64::from(days) * 86_400)
}

fn purpose_meta(
    purpose: Option<&str>,
) -> Result<Option<std::collections::BTreeMap<String, ciborium::Value>>> {
    let Some(p) = purpose.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if p.len() > cix_protocol::limits::MAX_PURPOSE_BYTES {
        bail!(
            "--purpose is longer than {} bytes",
            cix_protocol::limits::MAX_PURPOSE_BYTES
        );
    }
    Ok(Some(std::collections::BTreeMap::from([(
        "purpose".to_string(),
        ciborium::Value::Text(p.to_string()),
    )])))
}

/// Signs `dlg`, stores it as issued with `proofs` before it, and describes it.
fn issue(
    shared: &Shared,
    dlg: &Delegation,
    proofs: Vec<ByteBuf>,
    source: &'static str,
) -> Result<TokenLine> {
    let (bytes, cid) = dlg
        .seal(&shared.key)
        .map_err(|e| anyhow!("cannot sign the delegation: {e}"))?;
    let mut chain = proofs;
    chain.push(ByteBuf::from(bytes));
    let record = TokenRecord {
        chain,
        source: source.into(),
    };
    shared.store.put_issued(&cid, &record)?;
    shared.store.flush()?;
    info!(token = %cid, audience = %dlg.aud, command = %dlg.cmd, source, "delegation issued");
    let line = describe(&record, "issued", true)?;
    audit_token(shared, &line, dlg.aud, source);
    Ok(line)
}

/// `cix grant`: this node, owner of a dataset, delegates to another agency directly.
///
/// # Errors
///
/// An unknown, foreign or closed dataset, a bad DID, command or duration, fields that a CSV
/// dataset's dictionary does not have (or named twice, or none, or a dataset that is not CSV),
/// or store I/O.
pub fn grant(shared: &Shared, req: &GrantRequest) -> Result<TokenLine> {
    let to = parse_did(&req.to)?;
    let entry = crate::transfer::resolve(shared, &req.dataset)?.ok_or_else(|| {
        anyhow!(
            "no dataset {:?} in this node's catalogue (see `cix catalogue list`)",
            req.dataset
        )
    })?;
    let dataset = entry.entry.dataset;
    let own = shared.store.own(&dataset)?.ok_or_else(|| {
        anyhow!(
            "dataset {dataset} is published by {}, not by this node: only its owner grants it \
             (to pass on a delegation you received, use `cix delegate`)",
            entry.entry.iss
        )
    })?;
    if crate::store::Store::own_level(&own)? == Level::Closed {
        bail!("dataset {dataset} is closed (ISO 37156 5.5.2): it is never shared, so no grant");
    }
    let open = crate::store::Store::own_level(&own)? == Level::Open;
    if to == shared.did() {
        bail!("--to names this node itself; a grant goes to another agency");
    }
    let cmd = req.command.clone().unwrap_or_else(|| CMD_FETCH.into());
    if !command_covers("/cix", &cmd) || cmd == "/cix" {
        bail!("--command {cmd:?} is not a cix command beneath /cix (e.g. {CMD_FETCH})");
    }
    if cmd == ucan::CMD_SERVE {
        // transfer.md §6: a custodian serves the whole content of shared data.
        if open {
            bail!(
                "dataset {dataset} is open: any node holding it may serve it, so it needs no \
                 serve delegation"
            );
        }
        if req.fields.is_some() {
            bail!("--fields does not apply to --serve: a custodian serves the whole content");
        }
    }
    let issued = now();
    let purpose = req
        .purpose
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let mut pol = cix_protocol::caveats::grant_policy(&entry.entry, purpose);
    if let Some(fields) = &req.fields {
        // ISO 37156 8.2.2 c and 7.1: only the columns the audience needs.
        cix_protocol::caveats::field_columns(&entry.entry, fields)
            .map_err(|e| anyhow!("--fields: {e}"))?;
        let mut statements = pol.statements().to_vec();
        statements.push(cix_protocol::caveats::fields_statement(fields));
        pol = Policy::new(statements);
    }
    let dlg = Delegation {
        iss: shared.did(),
        aud: to,
        sub: Some(shared.did()),
        cmd,
        pol,
        nonce: ucan::fresh_nonce(),
        exp: Some(issued + validity(shared, req.days)?),
        nbf: None,
        meta: purpose_meta(req.purpose.as_deref())?,
    };
    issue(shared, &dlg, Vec::new(), "grant")
}

/// `cix delegate`: passes on a delegation this node received, attenuated.
///
/// # Errors
///
/// An unknown or ambiguous CID, a delegation not addressed to this node or already expired, a
/// command that widens the received one, a chain at its length limit, or store I/O.
pub fn delegate(shared: &Shared, req: &DelegateRequest) -> Result<TokenLine> {
    let to = parse_did(&req.to)?;
    let (parent_cid, record) = find_received(shared, &req.cid)?;
    let parent_bytes = record
        .chain
        .last()
        .ok_or_else(|| anyhow!("corrupt received record {parent_cid}: empty chain"))?;
    let (parent, _) = Delegation::decode(parent_bytes)
        .map_err(|e| anyhow!("received delegation {parent_cid} no longer decodes: {e}"))?;
    if parent.aud != shared.did() {
        bail!(
            "delegation {parent_cid} is addressed to {}, not to this node",
            parent.aud
        );
    }
    if record.chain.len() >= MAX_CHAIN_LEN {
        bail!(
            "delegation {parent_cid} ends a chain of {} delegations; the cix profile allows \
             {MAX_CHAIN_LEN}, so it cannot be passed on",
            record.chain.len()
        );
    }
    if !command_covers(&parent.cmd, ucan::CMD_REPUBLISH) {
        bail!(
            "delegation {parent_cid} gives this node {:?} only: data may be passed on only under \
             republication rights ({}), which the owner grants with `cix grant --cmd {}` \
             (ISO 37156 9.2 e)",
            parent.cmd,
            ucan::CMD_REPUBLISH,
            ucan::CMD_REPUBLISH
        );
    }
    let cmd = req.command.clone().unwrap_or_else(|| parent.cmd.clone());
    if !command_covers(&parent.cmd, &cmd) {
        bail!(
            "--command {cmd:?} is not covered by {:?}, the command delegated to this node: a \
             delegation can only narrow what it received",
            parent.cmd
        );
    }
    let issued = now();
    let mut exp = issued + validity(shared, req.days)?;
    if let Some(parent_exp) = parent.exp {
        if parent_exp <= issued {
            bail!("delegation {parent_cid} expired at {parent_exp}; nothing left to pass on");
        }
        exp = exp.min(parent_exp);
    }
    let dlg = Delegation {
        iss: shared.did(),
        aud: to,
        sub: parent.sub,
        cmd,
        pol: parent.pol.clone(),
        nonce: ucan::fresh_nonce(),
        exp: Some(exp),
        nbf: parent.nbf,
        meta: purpose_meta(req.purpose.as_deref())?,
    };
    issue(shared, &dlg, record.chain.clone(), "delegate")
}

/// `cix tokens import`: keeps a delegation chain addressed to this node.
///
/// # Errors
///
/// A token that does not decode or verify, a chain whose links do not line up, a last
/// delegation not addressed to this node, or store I/O.
pub fn import(shared: &Shared, req: &ImportRequest) -> Result<TokenLine> {
    if req.chain.is_empty() || req.chain.len() > MAX_CHAIN_LEN {
        bail!(
            "a chain holds 1 to {MAX_CHAIN_LEN} delegations, not {}",
            req.chain.len()
        );
    }
    let mut chain = Vec::with_capacity(req.chain.len());
    let mut prev: Option<Delegation> = None;
    for (i, text) in req.chain.iter().enumerate() {
        let bytes = hex::decode(text).with_context(|| format!("token {i} is not hex"))?;
        let (dlg, cid) =
            Delegation::decode(&bytes).map_err(|e| anyhow!("token {i} is refused: {e}"))?;
        match &prev {
            None if dlg.sub != Some(dlg.iss) => {
                bail!("the root delegation {cid} is not issued by its subject")
            }
            Some(p) if p.aud != dlg.iss => bail!(
                "delegation {cid} is issued by {}, but the one before it is addressed to {}",
                dlg.iss,
                p.aud
            ),
            Some(p) => check_attenuates(p, &dlg, &cid)?,
            None => {}
        }
        chain.push(ByteBuf::from(bytes));
        prev = Some(dlg);
    }
    let last = prev.ok_or_else(|| anyhow!("empty chain"))?;
    if last.aud != shared.did() {
        bail!(
            "the last delegation is addressed to {}, not to this node ({})",
            last.aud,
            shared.did()
        );
    }
    let cid = Cid::of_token(chain.last().map(|b| b.as_slice()).unwrap_or_default());
    let record = TokenRecord {
        chain,
        source: "import".into(),
    };
    shared.store.put_received(&cid, &record)?;
    shared.store.flush()?;
    info!(token = %cid, issuer = %last.iss, "delegation imported");
    let line = describe(&record, "received", true)?;
    audit_token(shared, &line, last.iss, "import");
    Ok(line)
}

/// Logs a delegation issued (`grant`: a direct grant; `delegate`: a re-delegation) or
/// imported here, with the counterparty, the dataset and purpose its policy names.
fn audit_token(shared: &Shared, line: &TokenLine, peer: Did, source: &str) {
    use crate::audit::AuditEvent;
    use cix_protocol::audit::AuditKind;
    let kind = if source == "grant" {
        AuditKind::Grant
    } else {
        AuditKind::Delegation
    };
    let mut event = AuditEvent::new(kind)
        .peer(peer)
        .token(&line.cid)
        .detail(format!("{} {} ({source})", line.direction, line.command));
    if let Some(d) = line.dataset.as_deref().and_then(|d| d.parse().ok()) {
        event = event.dataset(d);
    }
    if let Some(p) = &line.purpose {
        event = event.purpose(p.clone());
    }
    crate::audit::log_detached(shared, event);
}

/// ISO 37156 9.2 e: a link hands on at most what it received: a command the one before covers,
/// every statement of its policy, the same subject, and no later expiry (the rules the cix
/// profile applies when the chain is used, checked here so a bad chain is not even kept).
fn check_attenuates(proof: &Delegation, dlg: &Delegation, cid: &Cid) -> Result<()> {
    if !command_covers(&proof.cmd, &dlg.cmd) {
        bail!(
            "delegation {cid} widens the command: {:?} is not covered by {:?} delegated before it",
            dlg.cmd,
            proof.cmd
        );
    }
    if let Some(i) = proof
        .pol
        .statements()
        .iter()
        .position(|s| !dlg.pol.statements().contains(s))
    {
        bail!("delegation {cid} loosens the policy: it drops statement {i} of the one before it");
    }
    if dlg.sub.is_some() && dlg.sub != proof.sub {
        bail!("delegation {cid} is about another subject than the one before it");
    }
    if let (Some(exp), Some(before)) = (dlg.exp, proof.exp) {
        if exp > before {
            bail!("delegation {cid} expires at {exp}, after the one before it ({before})");
        }
    }
    Ok(())
}

/// Every delegation this node issued or received, newest expiry first.
///
/// # Errors
///
/// Store I/O or a corrupt record.
pub fn list(shared: &Shared) -> Result<Vec<TokenLine>> {
    let mut lines = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |record: &TokenRecord, direction| -> Result<()> {
        let mut line = describe(record, direction, false)?;
        if crate::revoke::revoked(shared, record)?.is_some() {
            line.state = "revoked";
        }
        if seen.insert((line.cid.clone(), direction)) {
            lines.push(line);
        }
        Ok(())
    };
    for (_, r) in shared.store.issued()? {
        add(&r, "issued")?;
    }
    for (_, r) in shared.store.received()? {
        add(&r, "received")?;
    }
    // Grants made and received through the request queue (`cix requests approve`, shared-public
    // terms), which the access module keeps with the requests.
    for r in shared.store.requests_in()? {
        if let Decision::Approved { delegation, .. } = r.decision {
            add(&request_record(delegation), "issued")?;
        }
    }
    for r in shared.store.requests_out()? {
        if !r.delegation.is_empty() {
            add(&request_record(r.delegation), "received")?;
        }
    }
    lines.sort_by(|a, b| b.expires.cmp(&a.expires).then(a.cid.cmp(&b.cid)));
    Ok(lines)
}

fn request_record(delegation: Vec<u8>) -> TokenRecord {
    TokenRecord {
        chain: vec![ByteBuf::from(delegation)],
        source: "request".into(),
    }
}

/// A received delegation by CID or unique prefix: from `cix tokens import` or a request.
fn find_received(shared: &Shared, text: &str) -> Result<(Cid, TokenRecord)> {
    let text = text.trim();
    if text.len() < 6 || !text.bytes().all(|c| c.is_ascii_alphanumeric()) {
        bail!(
            "{text:?} is not a delegation CID (bafy…, or a unique prefix of at least 6 characters)"
        );
    }
    let mut found: Vec<(Cid, TokenRecord)> = shared.store.received()?;
    for r in shared.store.requests_out()? {
        if !r.delegation.is_empty() {
            found.push((Cid::of_token(&r.delegation), request_record(r.delegation)));
        }
    }
    found.retain(|(cid, _)| cid.to_string().starts_with(text));
    found.dedup_by(|a, b| a.0 == b.0);
    match found.len() {
        0 => bail!("this node received no delegation {text:?} (see `cix tokens list`)"),
        1 => found.pop().ok_or_else(|| anyhow!("no match")),
        n => bail!("{n} received delegations start with {text:?}; give more characters"),
    }
}

/// The dataset a policy pins with `==` on `.dataset`, if any.
fn dataset_of(pol: &Policy) -> Option<String> {
    pol.statements().iter().find_map(|s| match s {
        Statement::Equal(sel, ciborium::Value::Text(t)) if sel.as_str() == ".dataset" => {
            Some(t.clone())
        }
        _ => None,
    })
}

fn describe(record: &TokenRecord, direction: &'static str, with_chain: bool) -> Result<TokenLine> {
    let bytes = record
        .chain
        .last()
        .ok_or_else(|| anyhow!("corrupt token record: empty chain"))?;
    let (dlg, cid) =
        Delegation::decode(bytes).map_err(|e| anyhow!("corrupt stored delegation: {e}"))?;
    let t = now();
    let state = match (dlg.exp, dlg.nbf) {
        (Some(exp), _) if exp < t => "expired",
        (_, Some(nbf)) if nbf > t => "not-yet-valid",
        _ => "active",
    };
    let purpose = dlg
        .meta
        .as_ref()
        .and_then(|m| m.get("purpose"))
        .and_then(|v| v.as_text())
        .map(str::to_string);
    Ok(TokenLine {
        kind: "delegation",
        direction,
        source: match record.source.as_str() {
            "grant" => "grant",
            "delegate" => "delegate",
            "import" => "import",
            "emergency" => "emergency",
            _ => "request",
        },
        cid: cid.to_string(),
        issuer: dlg.iss.to_string(),
        audience: dlg.aud.to_string(),
        subject: dlg.sub.map(|s| s.to_string()),
        command: dlg.cmd.clone(),
        dataset: dataset_of(&dlg.pol),
        purpose,
        fields: cix_protocol::caveats::permitted_fields(&dlg.pol),
        expires: dlg.exp,
        state,
        depth: record.chain.len(),
        chain: if with_chain {
            record.chain.iter().map(hex::encode).collect()
        } else {
            Vec::new()
        },
    })
}
