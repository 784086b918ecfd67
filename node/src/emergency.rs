//! Emergency access (ISO 37156 6.7): agreements signed in advance by a dataset owner, declared
//! emergencies that open them for a bounded time without a live negotiation, early ends, and the
//! mandatory review of every use afterwards. `specs/emergency.md` is the specification.
//!
//! Flow: the owner signs an agreement (`cix emergency agree`) and hands it to every party on
//! `/cix/emergency/1`. A declarer the agreement names signs a declaration (`cix emergency
//! declare`) and sends it, with the agreement, to every node the agreement names. Each receiver
//! checks it ([`cix_protocol::emergency::check_declaration`]); a recipient then asks the owner
//! for its grants, with the agreement and the declaration as proof, and keeps them as received
//! delegations, so that `cix fetch` works at once. Every grant expires at the declaration's end;
//! an early end (`cix emergency end`) makes the owner revoke them. Grants, transfers and
//! receipts under a declaration carry the purpose `emergency:<declaration id>`, which is how
//! `cix emergency review` finds every use in the audit log.
//!
//! | tree | key | value (JSON) |
//! |---|---|---|
//! | `emergency_agreements` | agreement id (hex) | [`AgreementRec`] |
//! | `emergency_declarations` | declaration id (hex) | [`DeclarationRec`] |
//! | `emergency_grants` | delegation CID | [`GrantRec`] (owner side) |

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cix_protocol::audit::AuditKind;
use cix_protocol::catalogue::{DatasetId, Level};
use cix_protocol::caveats;
use cix_protocol::emergency::{
    check_declaration, Agreement, Area, Declaration, EmergencyRequest, EmergencyResponse, End,
    Signed, EMERGENCY_PROTOCOL,
};
use cix_protocol::identity::Did;
use cix_protocol::limits;
use cix_protocol::ucan::{self, Delegation};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::{debug, info, warn};

use crate::access::now;
use crate::audit::{self, AuditEvent};
use crate::exchange::Exchange;
use crate::node::{did_of_peer, Node, NodeEvent, Shared};
use crate::store::TokenRecord;

const AGREEMENTS: &str = "emergency_agreements";
const DECLARATIONS: &str = "emergency_declarations";
const GRANTS: &str = "emergency_grants";
/// How long one exchange on `/cix/emergency/1` may take.
pub const EMERGENCY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most exchanges served at once.
pub const MAX_CONCURRENT_EMERGENCY: usize = 16;

/// `EMERGENCY_PROTOCOL`: one request, one answer, bounded each way ([`crate::exchange`]).
const EXCHANGE: Exchange = Exchange {
    protocol: EMERGENCY_PROTOCOL,
    request_limit: limits::MAX_EMERGENCY_REQUEST_BYTES,
    response_limit: limits::MAX_EMERGENCY_RESPONSE_BYTES,
    timeout: EMERGENCY_TIMEOUT,
    concurrent: MAX_CONCURRENT_EMERGENCY,
};
/// Longest review note.
pub const MAX_REVIEW_NOTE_BYTES: usize = 4096;
/// Longest an agreement may hold, in days.
pub const MAX_AGREEMENT_DAYS: u32 = 3660;
/// How often a recipient asks the owner for its grants before giving up.
const GRANT_ATTEMPTS: u32 = 3;

/// A kept agreement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgreementRec {
    /// The envelope, hex.
    pub bytes: String,
    /// When it was kept here, Unix seconds.
    pub kept: i64,
}

/// A kept declaration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeclarationRec {
    /// The agreement's id, hex.
    pub agreement: String,
    /// The envelope, hex.
    pub bytes: String,
    /// When it was kept here.
    pub kept: i64,
    /// When it was ended early, if it was.
    pub ended: Option<i64>,
    /// The end's envelope, hex.
    pub end: Option<String>,
    /// Grants this node received under it (recipient side).
    #[serde(default)]
    pub grants_received: usize,
    /// The review, once done.
    pub review: Option<Review>,
}

/// The operator's review of the uses under a declaration, after it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// When.
    pub at: i64,
    /// The reviewer's note.
    pub note: String,
    /// How many uses it covered.
    pub uses: usize,
}

/// A grant this node issued under a declaration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantRec {
    /// The declaration id, hex.
    pub declaration: String,
    /// The holder.
    pub holder: String,
    /// The dataset.
    pub dataset: String,
    /// The delegation, hex.
    pub token: String,
    /// When issued.
    pub at: i64,
}

/// `cix emergency agree`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgreeRequest {
    /// This node's datasets that open.
    pub datasets: Vec<String>,
    /// Agencies (did:key) that may declare.
    pub declarers: Vec<String>,
    /// Agencies (did:key) that receive access.
    pub recipients: Vec<String>,
    /// Kinds of emergency.
    pub kinds: Vec<String>,
    /// Areas (`bbox:W,S,E,N` or `name:AREA`).
    pub areas: Vec<String>,
    /// Longest declaration, hours.
    pub max_hours: u32,
    /// Days the agreement holds (default 365).
    pub days: Option<u32>,
}

/// `cix emergency declare`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeclareRequest {
    /// Agreement id or unique prefix.
    pub agreement: String,
    /// Kind of emergency.
    pub kind: String,
    /// Area.
    pub area: String,
    /// Hours access stays open.
    pub hours: u32,
}

/// `cix emergency end`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndRequest {
    /// Declaration id or unique prefix.
    pub declaration: String,
}

/// `cix emergency review`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReviewRequest {
    /// Declaration id or unique prefix.
    pub declaration: String,
    /// Mark the review done.
    #[serde(default)]
    pub done: bool,
    /// The reviewer's note (needed with `done`).
    pub note: Option<String>,
}

/// What one party answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Delivery {
    /// The party.
    pub to: String,
    /// `accepted`, `refused: ...` or `unreachable: ...`.
    pub result: String,
}

/// An agreement as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgreementLine {
    /// Id (hex).
    pub id: String,
    /// Owner.
    pub owner: String,
    /// This node's role: owner, declarer, recipient (comma-separated).
    pub role: String,
    /// Datasets.
    pub datasets: Vec<String>,
    /// Declarers.
    pub declarers: Vec<String>,
    /// Recipients.
    pub recipients: Vec<String>,
    /// Kinds.
    pub kinds: Vec<String>,
    /// Areas.
    pub areas: Vec<String>,
    /// Longest declaration, hours.
    pub max_hours: u32,
    /// Signed, Unix seconds.
    pub issued: i64,
    /// Lapses, Unix seconds.
    pub expires: i64,
    /// Answers of the parties, when just sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<Delivery>>,
}

/// A declaration as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeclarationLine {
    /// Id (hex).
    pub id: String,
    /// Agreement id.
    pub agreement: String,
    /// Who declared.
    pub declarer: String,
    /// Kind.
    pub kind: String,
    /// Area.
    pub area: String,
    /// Opens, Unix seconds.
    pub start: i64,
    /// Closes, Unix seconds.
    pub end: i64,
    /// Ended early at.
    pub ended: Option<i64>,
    /// `open`, `ended` (early) or `expired`.
    pub state: String,
    /// `not-due` (still open), `due` or `done`.
    pub review: String,
    /// Grants this node received under it.
    pub grants_received: usize,
    /// Grants this node issued under it.
    pub grants_issued: usize,
    /// Answers of the parties, when just sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<Delivery>>,
}

/// `cix emergency review`: every use under a declaration, from this node's audit log.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewReport {
    /// The declaration.
    pub declaration: DeclarationLine,
    /// Every audit record whose purpose or basis is `emergency:<id>`.
    pub uses: Vec<crate::audit::Listed>,
    /// The review, once done.
    pub reviewed: Option<Review>,
}

/// The purpose and basis every grant, transfer and receipt under `declaration` carries.
pub fn basis_of(declaration_hex: &str) -> String {
    format!("emergency:{declaration_hex}")
}

fn parse_did(text: &str, what: &str) -> Result<Did> {
    text.trim()
        .parse::<Did>()
        .map_err(|e| anyhow!("{what} {text:?} is not a did:key: {e}"))
}

fn role_of(a: &Agreement, me: &Did) -> String {
    let mut r = Vec::new();
    if &a.iss == me {
        r.push("owner");
    }
    if a.declarers.contains(me) {
        r.push("declarer");
    }
    if a.recipients.contains(me) {
        r.push("recipient");
    }
    if r.is_empty() {
        r.push("none");
    }
    r.join(",")
}

fn agreement_line(s: &Signed<Agreement>, me: &Did) -> AgreementLine {
    let a = &s.record;
    AgreementLine {
        id: s.id_hex(),
        owner: a.iss.to_string(),
        role: role_of(a, me),
        datasets: a.datasets.iter().map(ToString::to_string).collect(),
        declarers: a.declarers.iter().map(ToString::to_string).collect(),
        recipients: a.recipients.iter().map(ToString::to_string).collect(),
        kinds: a.kinds.clone(),
        areas: a.areas.iter().map(ToString::to_string).collect(),
        max_hours: a.max_hours,
        issued: a.issued,
        expires: a.expires,
        deliveries: None,
    }
}

fn decode_hex<T>(
    hex_text: &str,
    f: impl Fn(&[u8]) -> Result<T, cix_protocol::emergency::EmergencyError>,
) -> Result<T> {
    let bytes = hex::decode(hex_text).context("corrupt emergency record")?;
    f(&bytes).map_err(|e| anyhow!("kept emergency record no longer verifies: {e}"))
}

fn kept_agreements(shared: &Shared) -> Result<Vec<Signed<Agreement>>> {
    let mut out = Vec::new();
    for (_, rec) in shared.store.records::<AgreementRec>(AGREEMENTS)? {
        out.push(decode_hex(&rec.bytes, Signed::<Agreement>::decode)?);
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.record.issued));
    Ok(out)
}

fn agreement_by_id(shared: &Shared, id_hex: &str) -> Result<Option<Signed<Agreement>>> {
    shared
        .store
        .record::<AgreementRec>(AGREEMENTS, id_hex)?
        .map(|r| decode_hex(&r.bytes, Signed::<Agreement>::decode))
        .transpose()
}

fn find_agreement(shared: &Shared, prefix: &str) -> Result<Signed<Agreement>> {
    let prefix = prefix.trim().to_ascii_lowercase();
    let found: Vec<_> = kept_agreements(shared)?
        .into_iter()
        .filter(|a| a.id_hex().starts_with(&prefix))
        .collect();
    match found.len() {
        0 => {
            bail!("no emergency agreement {prefix:?} is kept here (see `cix emergency agreements`)")
        }
        1 => Ok(found.into_iter().next().expect("one")),
        n => bail!("{n} agreements start with {prefix:?}; give more digits"),
    }
}

fn find_declaration(shared: &Shared, prefix: &str) -> Result<(String, DeclarationRec)> {
    let prefix = prefix.trim().to_ascii_lowercase();
    if prefix.is_empty() {
        bail!("give a declaration id (see `cix emergency list`)");
    }
    let found: Vec<_> = shared
        .store
        .records::<DeclarationRec>(DECLARATIONS)?
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .collect();
    match found.len() {
        0 => bail!("no emergency declaration {prefix:?} is kept here (see `cix emergency list`)"),
        1 => Ok(found.into_iter().next().expect("one")),
        n => bail!("{n} declarations start with {prefix:?}; give more digits"),
    }
}

/// Keeps an agreement (idempotent); refuses when the store holds its bound already.
fn keep_agreement(shared: &Shared, a: &Signed<Agreement>) -> Result<()> {
    let id = a.id_hex();
    if shared
        .store
        .record::<AgreementRec>(AGREEMENTS, &id)?
        .is_some()
    {
        return Ok(());
    }
    if shared.store.tree(AGREEMENTS)?.len() >= limits::MAX_EMERGENCY_AGREEMENTS_KEPT {
        bail!(
            "this node keeps {} emergency agreements already",
            limits::MAX_EMERGENCY_AGREEMENTS_KEPT
        );
    }
    shared.store.put_record(
        AGREEMENTS,
        &id,
        &AgreementRec {
            bytes: hex::encode(&a.bytes),
            kept: now(),
        },
    )
}

/// Keeps a declaration; returns whether it is new here.
fn keep_declaration(
    shared: &Shared,
    a: &Signed<Agreement>,
    d: &Signed<Declaration>,
) -> Result<bool> {
    let id = d.id_hex();
    if shared
        .store
        .record::<DeclarationRec>(DECLARATIONS, &id)?
        .is_some()
    {
        return Ok(false);
    }
    if shared.store.tree(DECLARATIONS)?.len() >= limits::MAX_EMERGENCY_DECLARATIONS_KEPT {
        bail!(
            "this node keeps {} emergency declarations already",
            limits::MAX_EMERGENCY_DECLARATIONS_KEPT
        );
    }
    keep_agreement(shared, a)?;
    shared.store.put_record(
        DECLARATIONS,
        &id,
        &DeclarationRec {
            agreement: a.id_hex(),
            bytes: hex::encode(&d.bytes),
            kept: now(),
            ended: None,
            end: None,
            grants_received: 0,
            review: None,
        },
    )?;
    Ok(true)
}

fn grants_issued(shared: &Shared, declaration_hex: &str) -> Result<Vec<(String, GrantRec)>> {
    Ok(shared
        .store
        .records::<GrantRec>(GRANTS)?
        .into_iter()
        .filter(|(_, g)| g.declaration == declaration_hex)
        .collect())
}

fn declaration_line(shared: &Shared, id: &str, rec: &DeclarationRec) -> Result<DeclarationLine> {
    let d = decode_hex(&rec.bytes, Signed::<Declaration>::decode)?;
    let t = now();
    let state = if rec.ended.is_some() {
        "ended"
    } else if t >= d.record.end {
        "expired"
    } else {
        "open"
    };
    let review = if rec.review.is_some() {
        "done"
    } else if state == "open" {
        "not-due"
    } else {
        "due"
    };
    Ok(DeclarationLine {
        id: id.to_string(),
        agreement: rec.agreement.clone(),
        declarer: d.record.iss.to_string(),
        kind: d.record.kind.clone(),
        area: d.record.area.to_string(),
        start: d.record.start,
        end: d.record.end,
        ended: rec.ended,
        state: state.into(),
        review: review.into(),
        grants_received: rec.grants_received,
        grants_issued: grants_issued(shared, id)?.len(),
        deliveries: None,
    })
}

/// Sends one request on `/cix/emergency/1` to `to` and reads the answer.
///
/// # Errors
///
/// If the peer cannot be reached, or answers late or malformed.
pub async fn send(node: &Node, to: &Did, req: &EmergencyRequest) -> Result<EmergencyResponse> {
    EXCHANGE.ask(node, to, req).await
}

/// Sends `req` to every one of `to` at once and reports each answer.
async fn deliver_all(node: &Node, to: &[Did], req: &EmergencyRequest) -> Vec<Delivery> {
    let sends = to.iter().map(|did| async move {
        let result = match send(node, did, req).await {
            Ok(EmergencyResponse::Refused { reason }) => format!("refused: {reason}"),
            Ok(_) => "accepted".to_string(),
            Err(e) => format!("unreachable: {e:#}"),
        };
        Delivery {
            to: did.to_string(),
            result,
        }
    });
    futures::future::join_all(sends).await
}

/// ISO 37156 6.7: the owner signs an agreement over its own datasets, keeps it, and hands it to
/// every declarer and recipient.
///
/// # Errors
///
/// A dataset not this node's or closed, a malformed party, kind or area, bounds.
pub async fn agree(node: &Node, req: &AgreeRequest) -> Result<AgreementLine> {
    let shared = &node.shared;
    let mut datasets = Vec::new();
    for text in &req.datasets {
        let id: DatasetId = text
            .trim()
            .parse()
            .map_err(|e| anyhow!("dataset {text:?}: {e}"))?;
        let own = shared
            .store
            .own(&id)?
            .ok_or_else(|| anyhow!("dataset {id} is not published by this node: only a dataset's owner makes an emergency agreement for it"))?;
        if crate::store::Store::own_level(&own)? == Level::Closed {
            bail!("dataset {id} is closed (ISO 37156 5.5.2): it never leaves this node, not even in an emergency");
        }
        if !datasets.contains(&id) {
            datasets.push(id);
        }
    }
    let parse_all = |list: &[String], what: &str| -> Result<Vec<Did>> {
        let mut out = Vec::new();
        for t in list {
            let d = parse_did(t, what)?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
        Ok(out)
    };
    let declarers = parse_all(&req.declarers, "declarer")?;
    let recipients = parse_all(&req.recipients, "recipient")?;
    let mut areas = Vec::new();
    for a in &req.areas {
        areas.push(Area::parse(a).map_err(|e| anyhow!("{e}"))?);
    }
    let days = req.days.unwrap_or(365);
    if days == 0 || days > MAX_AGREEMENT_DAYS {
        bail!("--days must be 1 to {MAX_AGREEMENT_DAYS}");
    }
    let t = now();
    let signed = Agreement {
        iss: shared.did(),
        datasets,
        declarers,
        recipients,
        kinds: req
            .kinds
            .iter()
            .map(|k| k.trim().to_ascii_lowercase())
            .collect(),
        areas,
        max_hours: req.max_hours,
        issued: t,
        expires: t + i64::from(days) * 86_400,
        nonce: ByteBuf::from(rand::random::<[u8; 16]>().to_vec()),
    }
    .seal(&shared.key)
    .map_err(|e| anyhow!("cannot make the agreement: {e}"))?;
    keep_agreement(shared, &signed)?;
    shared.store.flush_async().await?;
    info!(agreement = %signed.id_hex(), "emergency agreement signed (ISO 37156 6.7)");
    audit::log(
        shared,
        AuditEvent::new(AuditKind::Other("emergency".into())).detail(format!(
            "agreement {} signed: {} datasets, {} declarers, {} recipients (ISO 37156 6.7)",
            signed.id_hex(),
            signed.record.datasets.len(),
            signed.record.declarers.len(),
            signed.record.recipients.len()
        )),
    )
    .await;
    let req = EmergencyRequest::Agreement {
        agreement: ByteBuf::from(signed.bytes.clone()),
    };
    let deliveries = deliver_all(node, &signed.record.parties(), &req).await;
    let mut line = agreement_line(&signed, &shared.did());
    line.deliveries = Some(deliveries);
    Ok(line)
}

/// Every agreement kept here.
///
/// # Errors
///
/// Store I/O or a corrupt record.
pub fn agreements(shared: &Shared) -> Result<Vec<AgreementLine>> {
    let me = shared.did();
    Ok(kept_agreements(shared)?
        .iter()
        .map(|a| agreement_line(a, &me))
        .collect())
}

/// ISO 37156 6.7: declares an emergency under an agreement that names this agency as a
/// declarer, and tells every node the agreement names.
///
/// # Errors
///
/// An unknown agreement, this agency not a declarer, or a declaration outside the agreement.
pub async fn declare(node: &Node, req: &DeclareRequest) -> Result<DeclarationLine> {
    let shared = &node.shared;
    let a = find_agreement(shared, &req.agreement)?;
    let me = shared.did();
    if !a.record.declarers.contains(&me) {
        bail!(
            "this agency ({me}) is not named as a declarer in agreement {}",
            a.id_hex()
        );
    }
    if req.hours == 0 || req.hours > a.record.max_hours {
        bail!(
            "--hours must be 1 to {} (the agreement's maximum)",
            a.record.max_hours
        );
    }
    let area = Area::parse(&req.area).map_err(|e| anyhow!("{e}"))?;
    let t = now();
    let d = Declaration {
        iss: me,
        agreement: ByteBuf::from(a.id.to_vec()),
        kind: req.kind.trim().to_ascii_lowercase(),
        area,
        start: t,
        end: t + i64::from(req.hours) * 3600,
    }
    .seal(&shared.key)
    .map_err(|e| anyhow!("cannot make the declaration: {e}"))?;
    check_declaration(&a, &d, t).map_err(|e| anyhow!("{e}"))?;
    accept_declaration(node, &a, &d, &me).await?;
    let msg = EmergencyRequest::Declaration {
        agreement: ByteBuf::from(a.bytes.clone()),
        declaration: ByteBuf::from(d.bytes.clone()),
    };
    let mut to = a.record.parties();
    to.push(a.record.iss);
    to.retain(|p| p != &me);
    let deliveries = deliver_all(node, &to, &msg).await;
    let (id, rec) = find_declaration(shared, &d.id_hex())?;
    let mut line = declaration_line(shared, &id, &rec)?;
    line.deliveries = Some(deliveries);
    Ok(line)
}

/// Keeps a checked declaration, logs it, and, on a recipient, asks the owner for its grants.
async fn accept_declaration(
    node: &Node,
    a: &Signed<Agreement>,
    d: &Signed<Declaration>,
    from: &Did,
) -> Result<()> {
    let shared = &node.shared;
    if !keep_declaration(shared, a, d)? {
        debug!(declaration = %d.id_hex(), "emergency declaration already kept");
        return Ok(());
    }
    shared.store.flush_async().await?;
    let id = d.id_hex();
    info!(declaration = %id, kind = %d.record.kind, "emergency declared (ISO 37156 6.7)");
    audit::log(
        shared,
        AuditEvent::new(AuditKind::Other("emergency".into()))
            .peer(d.record.iss)
            .basis(basis_of(&id))
            .detail(format!(
                "declaration {id} under agreement {}: {} in {}, until {} (ISO 37156 6.7)",
                a.id_hex(),
                d.record.kind,
                d.record.area,
                d.record.end
            )),
    )
    .await;
    shared.emit(NodeEvent::EmergencyDeclared {
        declaration: id,
        agreement: a.id_hex(),
        from: from.to_string(),
    });
    let me = shared.did();
    if a.record.recipients.contains(&me) && a.record.iss != me {
        let (node, a, d) = (node.clone(), a.clone(), d.clone());
        tokio::spawn(async move { fetch_grants(&node, &a, &d).await });
    }
    Ok(())
}

/// A recipient asks the owner for its grants under `d` and keeps them.
async fn fetch_grants(node: &Node, a: &Signed<Agreement>, d: &Signed<Declaration>) {
    let req = EmergencyRequest::Grant {
        agreement: ByteBuf::from(a.bytes.clone()),
        declaration: ByteBuf::from(d.bytes.clone()),
    };
    for attempt in 1..=GRANT_ATTEMPTS {
        match request_grants(node, a, d, &req).await {
            Ok(n) => {
                node.shared.emit(NodeEvent::EmergencyGranted {
                    declaration: d.id_hex(),
                    grants: n,
                });
                return;
            }
            Err(e) => {
                warn!(declaration = %d.id_hex(), attempt, error = %format!("{e:#}"), "emergency grants not obtained");
                if attempt < GRANT_ATTEMPTS {
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                }
            }
        }
    }
}

/// Asks the owner for this node's grants under `d`; keeps what it answers.
///
/// # Errors
///
/// Unreachable owner, a refusal, or grants that are not what the agreement promises.
pub async fn request_grants(
    node: &Node,
    a: &Signed<Agreement>,
    d: &Signed<Declaration>,
    req: &EmergencyRequest,
) -> Result<usize> {
    let shared = &node.shared;
    let me = shared.did();
    let delegations = match send(node, &a.record.iss, req).await? {
        EmergencyResponse::Granted { delegations } => delegations,
        EmergencyResponse::Refused { reason } => bail!("the owner refused: {reason}"),
        EmergencyResponse::Accepted => bail!("the owner answered without grants"),
    };
    if delegations.len() > a.record.datasets.len() {
        bail!("the owner sent more grants than the agreement has datasets");
    }
    let id = d.id_hex();
    let mut kept = 0;
    for bytes in delegations {
        let (dlg, cid) = Delegation::decode(&bytes).map_err(|e| anyhow!("grant refused: {e}"))?;
        let dataset = caveats::pinned_text(&dlg.pol, caveats::ARG_DATASET)
            .and_then(|t| t.parse::<DatasetId>().ok());
        if dlg.iss != a.record.iss
            || dlg.sub != Some(a.record.iss)
            || dlg.aud != me
            || dlg.exp.is_none_or(|e| e > d.record.end)
            || !dataset.is_some_and(|ds| a.record.datasets.contains(&ds))
        {
            warn!(token = %cid, "emergency grant does not match its agreement; not kept");
            continue;
        }
        shared.store.put_received(
            &cid,
            &TokenRecord {
                chain: vec![ByteBuf::from(bytes.to_vec())],
                source: "emergency".into(),
            },
        )?;
        let mut event = AuditEvent::new(AuditKind::Delegation)
            .peer(dlg.iss)
            .token(cid)
            .purpose(basis_of(&id))
            .basis(basis_of(&id))
            .detail("received under an emergency declaration (ISO 37156 6.7)");
        if let Some(ds) = dataset {
            event = event.dataset(ds);
        }
        audit::log(shared, event).await;
        kept += 1;
    }
    if let Some(mut rec) = shared.store.record::<DeclarationRec>(DECLARATIONS, &id)? {
        rec.grants_received = kept;
        shared.store.put_record(DECLARATIONS, &id, &rec)?;
    }
    shared.store.flush_async().await?;
    info!(declaration = %id, grants = kept, "emergency grants kept");
    Ok(kept)
}

/// The owner's grants for `holder` under `d`, issued now or earlier.
fn issue_grants(
    shared: &Shared,
    a: &Signed<Agreement>,
    d: &Signed<Declaration>,
    holder: &Did,
) -> Result<Vec<ByteBuf>> {
    let id = d.id_hex();
    let purpose = basis_of(&id);
    let existing = grants_issued(shared, &id)?;
    let mut out = Vec::new();
    for dataset in &a.record.datasets {
        if let Some((_, g)) = existing
            .iter()
            .find(|(_, g)| g.holder == holder.to_string() && g.dataset == dataset.to_string())
        {
            out.push(ByteBuf::from(hex::decode(&g.token)?));
            continue;
        }
        let Some(own) = shared.store.own(dataset)? else {
            continue;
        };
        if crate::store::Store::own_level(&own)? == Level::Closed
            || crate::withdraw::withdrawn_own(shared, &own)?.is_some()
        {
            continue;
        }
        let Some(entry) = shared.store.entry(&own.entry)? else {
            continue;
        };
        let delegation = Delegation {
            iss: shared.did(),
            aud: *holder,
            sub: Some(shared.did()),
            cmd: ucan::CMD_FETCH.into(),
            pol: caveats::grant_policy(&entry.entry, Some(&purpose)),
            nonce: ucan::fresh_nonce(),
            exp: Some(d.record.end),
            nbf: None,
            meta: None,
        };
        let (bytes, cid) = delegation
            .seal(&shared.key)
            .map_err(|e| anyhow!("cannot sign an emergency grant: {e}"))?;
        shared.store.put_issued(
            &cid,
            &TokenRecord {
                chain: vec![ByteBuf::from(bytes.clone())],
                source: "emergency".into(),
            },
        )?;
        shared.store.put_record(
            GRANTS,
            &cid.to_string(),
            &GrantRec {
                declaration: id.clone(),
                holder: holder.to_string(),
                dataset: dataset.to_string(),
                token: hex::encode(&bytes),
                at: now(),
            },
        )?;
        info!(%holder, %dataset, token = %cid, "emergency grant issued (ISO 37156 6.7)");
        let mut event = AuditEvent::new(AuditKind::Grant).entry(&entry.entry);
        event = event
            .peer(*holder)
            .token(cid)
            .purpose(purpose.clone())
            .basis(purpose.clone())
            .detail(format!(
                "emergency grant under declaration {id}, agreement {} (ISO 37156 6.7), expires at its end",
                a.id_hex()
            ));
        audit::log_detached(shared, event);
        out.push(ByteBuf::from(bytes));
    }
    Ok(out)
}

/// ISO 37156 6.7: ends a declaration early (its declarer or the agreement's owner), tells every
/// node the agreement names; on the owner, every grant issued under it is revoked.
///
/// # Errors
///
/// Unknown declaration, one already over, or this agency neither its declarer nor the owner.
pub async fn end(node: &Node, req: &EndRequest) -> Result<DeclarationLine> {
    let shared = &node.shared;
    let (id, rec) = find_declaration(shared, &req.declaration)?;
    let d = decode_hex(&rec.bytes, Signed::<Declaration>::decode)?;
    let a = agreement_by_id(shared, &rec.agreement)?
        .ok_or_else(|| anyhow!("the agreement of declaration {id} is not kept here"))?;
    let me = shared.did();
    if d.record.iss != me && a.record.iss != me {
        bail!(
            "only the declarer ({}) or the agreement's owner ({}) may end declaration {id}",
            d.record.iss,
            a.record.iss
        );
    }
    if rec.ended.is_some() || now() >= d.record.end {
        bail!("declaration {id} is already over");
    }
    let e = End {
        iss: me,
        declaration: ByteBuf::from(d.id.to_vec()),
        at: now(),
    }
    .seal(&shared.key)
    .map_err(|e| anyhow!("cannot sign the end: {e}"))?;
    apply_end(node, &a, &d, &e).await?;
    let msg = EmergencyRequest::End {
        agreement: ByteBuf::from(a.bytes.clone()),
        declaration: ByteBuf::from(d.bytes.clone()),
        end: ByteBuf::from(e.bytes.clone()),
    };
    let mut to = a.record.parties();
    to.push(a.record.iss);
    to.retain(|p| p != &me);
    let deliveries = deliver_all(node, &to, &msg).await;
    let (id, rec) = find_declaration(shared, &id)?;
    let mut line = declaration_line(shared, &id, &rec)?;
    line.deliveries = Some(deliveries);
    Ok(line)
}

async fn apply_end(
    node: &Node,
    a: &Signed<Agreement>,
    d: &Signed<Declaration>,
    e: &Signed<End>,
) -> Result<()> {
    let shared = &node.shared;
    let id = d.id_hex();
    keep_declaration(shared, a, d)?;
    let Some(mut rec) = shared.store.record::<DeclarationRec>(DECLARATIONS, &id)? else {
        bail!("declaration {id} could not be kept");
    };
    if rec.ended.is_some() {
        return Ok(());
    }
    rec.ended = Some(e.record.at.min(d.record.end));
    rec.end = Some(hex::encode(&e.bytes));
    shared.store.put_record(DECLARATIONS, &id, &rec)?;
    shared.store.flush_async().await?;
    info!(declaration = %id, "emergency ended early (ISO 37156 6.7)");
    audit::log(
        shared,
        AuditEvent::new(AuditKind::Other("emergency".into()))
            .peer(e.record.iss)
            .basis(basis_of(&id))
            .detail(format!("declaration {id} ended early")),
    )
    .await;
    if a.record.iss == shared.did() {
        for (cid, _) in grants_issued(shared, &id)? {
            let revoked = crate::revoke::revoke(
                node,
                &crate::revoke::RevokeRequest {
                    cid: cid.clone(),
                    reason: Some(format!(
                        "emergency declaration {id} ended (ISO 37156 6.7): access under it is closed"
                    )),
                },
            )
            .await;
            if let Err(err) = revoked {
                tracing::error!(token = %cid, error = %format!("{err:#}"), "cannot revoke an emergency grant");
            }
        }
    }
    shared.emit(NodeEvent::EmergencyEnded { declaration: id });
    Ok(())
}

/// Every declaration kept here, newest first.
///
/// # Errors
///
/// Store I/O or a corrupt record.
pub fn list(shared: &Shared) -> Result<Vec<DeclarationLine>> {
    let mut out = Vec::new();
    for (id, rec) in shared.store.records::<DeclarationRec>(DECLARATIONS)? {
        out.push(declaration_line(shared, &id, &rec)?);
    }
    out.sort_by_key(|l| std::cmp::Reverse(l.start));
    Ok(out)
}

/// The mandatory review after an emergency (ISO 37156 6.7): every use under a declaration from
/// this node's audit log; with `done`, marks it reviewed (only once it is over) and logs that.
///
/// # Errors
///
/// Unknown declaration, `done` while it is open or without a note, or store I/O.
pub async fn review(shared: &Shared, req: &ReviewRequest) -> Result<ReviewReport> {
    let (id, mut rec) = find_declaration(shared, &req.declaration)?;
    let tag = basis_of(&id);
    let uses: Vec<_> = shared
        .audit
        .list(&crate::audit::Filter::default())?
        .into_iter()
        .filter(|r| r.kind != "emergency")
        .filter(|r| {
            r.purpose.as_deref() == Some(tag.as_str()) || r.basis.as_deref() == Some(tag.as_str())
        })
        .collect();
    if req.done {
        let line = declaration_line(shared, &id, &rec)?;
        if line.state == "open" {
            bail!("declaration {id} is still open: review it once it has ended (`cix emergency end {id}` ends it early)");
        }
        if rec.review.is_some() {
            bail!("declaration {id} was reviewed already");
        }
        let note = req.note.as_deref().map(str::trim).unwrap_or_default();
        if note.is_empty() || note.len() > MAX_REVIEW_NOTE_BYTES {
            bail!("--note is needed with --done, 1 to {MAX_REVIEW_NOTE_BYTES} bytes");
        }
        rec.review = Some(Review {
            at: now(),
            note: note.to_string(),
            uses: uses.len(),
        });
        shared.store.put_record(DECLARATIONS, &id, &rec)?;
        shared.store.flush_async().await?;
        audit::log(
            shared,
            AuditEvent::new(AuditKind::Other("emergency".into()))
                .basis(tag.clone())
                .reason(note.to_string())
                .detail(format!(
                    "review of declaration {id} done: {} uses reviewed (ISO 37156 6.7)",
                    uses.len()
                )),
        )
        .await;
        info!(declaration = %id, uses = uses.len(), "emergency review done");
    }
    Ok(ReviewReport {
        declaration: declaration_line(shared, &id, &rec)?,
        uses,
        reviewed: rec.review,
    })
}

fn refuse(reason: impl Into<String>) -> EmergencyResponse {
    EmergencyResponse::Refused {
        reason: reason.into(),
    }
}

fn decode_pair(
    agreement: &[u8],
    declaration: &[u8],
) -> std::result::Result<(Signed<Agreement>, Signed<Declaration>), String> {
    let a = Signed::<Agreement>::decode(agreement).map_err(|e| e.to_string())?;
    let d = Signed::<Declaration>::decode(declaration).map_err(|e| e.to_string())?;
    Ok((a, d))
}

/// Answers one request from `peer`; every refusal is logged as a warning and emitted.
async fn answer(node: &Node, peer: &PeerId, req: EmergencyRequest) -> EmergencyResponse {
    let resp = match answer_inner(node, peer, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "emergency request failed");
            refuse("this node could not handle the request; try again later")
        }
    };
    if let EmergencyResponse::Refused { reason } = &resp {
        warn!(%peer, %reason, "emergency request refused");
        node.shared.emit(NodeEvent::EmergencyRefused {
            from: peer.to_string(),
            reason: reason.clone(),
        });
    }
    resp
}

async fn answer_inner(
    node: &Node,
    peer: &PeerId,
    req: EmergencyRequest,
) -> Result<EmergencyResponse> {
    let shared = &node.shared;
    let me = shared.did();
    let Some(from) = did_of_peer(peer) else {
        return Ok(refuse("the sender's identity is not an ed25519 key"));
    };
    let t = now();
    match req {
        EmergencyRequest::Agreement { agreement } => {
            let a = match Signed::<Agreement>::decode(&agreement) {
                Ok(a) => a,
                Err(e) => return Ok(refuse(format!("agreement refused: {e}"))),
            };
            if !a.record.names(&me) {
                return Ok(refuse("this agency is not named in the agreement"));
            }
            if let Err(e) = keep_agreement(shared, &a) {
                return Ok(refuse(format!("{e:#}")));
            }
            shared.store.flush_async().await?;
            debug!(agreement = %a.id_hex(), %from, "emergency agreement kept");
            Ok(EmergencyResponse::Accepted)
        }
        EmergencyRequest::Declaration {
            agreement,
            declaration,
        } => {
            let (a, d) = match decode_pair(&agreement, &declaration) {
                Ok(p) => p,
                Err(e) => return Ok(refuse(e)),
            };
            if !a.record.names(&me) {
                return Ok(refuse("this agency is not named in the agreement"));
            }
            if let Err(e) = check_declaration(&a, &d, t) {
                return Ok(refuse(e.to_string()));
            }
            if t >= d.record.end {
                return Ok(refuse("the declaration is already over"));
            }
            if let Err(e) = accept_declaration(node, &a, &d, &from).await {
                return Ok(refuse(format!("{e:#}")));
            }
            Ok(EmergencyResponse::Accepted)
        }
        EmergencyRequest::End {
            agreement,
            declaration,
            end,
        } => {
            let (a, d) = match decode_pair(&agreement, &declaration) {
                Ok(p) => p,
                Err(e) => return Ok(refuse(e)),
            };
            let e = match Signed::<End>::decode(&end) {
                Ok(e) => e,
                Err(e) => return Ok(refuse(format!("end refused: {e}"))),
            };
            if !a.record.names(&me) {
                return Ok(refuse("this agency is not named in the agreement"));
            }
            if let Err(err) = check_declaration(&a, &d, d.record.start) {
                return Ok(refuse(err.to_string()));
            }
            if e.record.declaration.as_slice() != d.id {
                return Ok(refuse("the end names another declaration"));
            }
            if e.record.iss != d.record.iss && e.record.iss != a.record.iss {
                return Ok(refuse(
                    "only the declarer or the agreement's owner may end a declaration",
                ));
            }
            apply_end(node, &a, &d, &e).await?;
            Ok(EmergencyResponse::Accepted)
        }
        EmergencyRequest::Grant {
            agreement,
            declaration,
        } => {
            let (a, d) = match decode_pair(&agreement, &declaration) {
                Ok(p) => p,
                Err(e) => return Ok(refuse(e)),
            };
            if a.record.iss != me {
                return Ok(refuse("this node is not the agreement's owner"));
            }
            if !a.record.recipients.contains(&from) {
                return Ok(refuse(format!(
                    "{from} is not named as a recipient in agreement {}",
                    a.id_hex()
                )));
            }
            if let Err(e) = check_declaration(&a, &d, t) {
                return Ok(refuse(e.to_string()));
            }
            let id = d.id_hex();
            let ended = shared
                .store
                .record::<DeclarationRec>(DECLARATIONS, &id)?
                .and_then(|r| r.ended);
            if ended.is_some() || t >= d.record.end {
                return Ok(refuse(format!(
                    "emergency declaration {id} is over: access under it is closed"
                )));
            }
            if keep_declaration(shared, &a, &d)? {
                shared.emit(NodeEvent::EmergencyDeclared {
                    declaration: id.clone(),
                    agreement: a.id_hex(),
                    from: from.to_string(),
                });
            }
            let delegations = issue_grants(shared, &a, &d, &from)?;
            shared.store.flush_async().await?;
            Ok(EmergencyResponse::Granted { delegations })
        }
    }
}

/// Starts serving `/cix/emergency/1`; ends when the node stops.
///
/// # Errors
///
/// If the protocol is already registered.
pub fn spawn(node: Node) -> Result<tokio::task::JoinHandle<()>> {
    EXCHANGE.serve(node, |node: Node, peer, req: EmergencyRequest| async move {
        answer(&node, &peer, req).await
    })
}

/// The envelope of an agreement kept here (to hand on, or for tests).
///
/// # Errors
///
/// Unknown agreement or store I/O.
pub fn agreement_bytes(shared: &Shared, id: &str) -> Result<Vec<u8>> {
    Ok(find_agreement(shared, id)?.bytes)
}

/// The envelope of a declaration kept here.
///
/// # Errors
///
/// Unknown declaration or store I/O.
pub fn declaration_bytes(shared: &Shared, id: &str) -> Result<Vec<u8>> {
    let (_, rec) = find_declaration(shared, id)?;
    Ok(hex::decode(rec.bytes)?)
}
