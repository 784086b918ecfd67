//! Individuals' requests and complaints on `/cix/rights/1` (ISO 37156 8.2.2, 8.3.5, 8.3.6).
//!
//! - The agency a person turned to records a case ([`record`]): a request (access,
//!   rectification, erasure, objection, review of automated processing) or a complaint, against
//!   datasets it knows. It finds every agency that received them ([`recipients_of`]: its
//!   receipts as provider, the transfers it served, the grants it issued), signs the case and
//!   sends it to each. Undelivered cases are sent again by the sweep task.
//! - A recipient keeps a case only if it is signed by the connected peer and the recipient
//!   really received one of its datasets from that agency by its own records (a receipt as
//!   receiver, a grant, a transfer of that agency's dataset); otherwise it refuses, saying why.
//! - Each recipient answers ([`answer`]): done, refused or partly, signed, sent back.
//! - Every answer is due by the case's deadline (`rights_deadline_days`, the testing knob
//!   `rights_day_secs` shortens a day); the sweep task reports overdue ones once each, on both
//!   sides.
//! - A complaint can be appealed ([`appeal`]) and the appeal decided ([`decide`]) by the
//!   recording agency; both are signed and sent to the agencies concerned.
//!
//! Every step is in the audit log (kinds `rights` and `complaint`; the detail names the step:
//! recorded, forwarded, received, answered, overdue, appealed, decided). Neither the person's
//! reference nor the summary is ever logged or gossiped: the case carries only the pseudonym
//! [`subject_hash`] of the reference, and this node keeps nothing else about the person.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `rights` | case id (32 bytes, BLAKE3 of the case envelope) | [`Kept`] |

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use cix_protocol::audit::AuditKind;
use cix_protocol::catalogue::DatasetId;
use cix_protocol::caveats;
use cix_protocol::identity::Did;
use cix_protocol::limits;
use cix_protocol::quality::Signed;
use cix_protocol::rights::{
    subject_hash, Answer, Appeal, Case, Decision, Kind, Outcome, RightsRequest, RightsResponse,
    Verdict, NONCE_BYTES, RIGHTS_PROTOCOL,
};
use cix_protocol::ucan::Delegation;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::{debug, info, warn};

use crate::access::now;
use crate::audit::{self, AuditEvent};
use crate::exchange::Exchange;
use crate::node::{did_of_peer, Node, Shared};

const TREE: &str = "rights";
/// How long either side waits for the other.
pub const RIGHTS_TIMEOUT: Duration = Duration::from_secs(10);
/// Most cases a recipient keeps from one agency; beyond it new ones are refused.
pub const MAX_CASES_PER_PEER: usize = 1000;
/// Most recipients one case is forwarded to.
pub const MAX_RECIPIENTS: usize = 256;
/// Seconds in a deadline day, unless the testing knob `rights_day_secs` shortens it.
pub const DAY_SECS: u64 = 86_400;
/// Most deadline days a case or an appeal may give.
pub const MAX_DEADLINE_DAYS: u32 = 3650;
/// Most requests served at once.
const MAX_CONCURRENT: usize = 16;

/// `RIGHTS_PROTOCOL`: one request, one answer, bounded each way ([`crate::exchange`]).
const EXCHANGE: Exchange = Exchange {
    protocol: RIGHTS_PROTOCOL,
    request_limit: limits::MAX_RIGHTS_REQUEST_BYTES,
    response_limit: limits::MAX_RIGHTS_RESPONSE_BYTES,
    timeout: RIGHTS_TIMEOUT,
    concurrent: MAX_CONCURRENT,
};
/// Largest kept record read back (a case, and per recipient an answer).
const MAX_KEPT_BYTES: usize = 4 * 1024 * 1024;

/// Which side of a case this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// This agency recorded it (the person turned to it).
    Recorded,
    /// Another agency forwarded it here.
    Received,
}

/// One agency a recorded case went to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recipient {
    /// The agency.
    pub agency: Did,
    /// Which of the case's datasets it received, by this node's records.
    pub datasets: Vec<DatasetId>,
    /// The records that show it: `receipt`, `transfer`, `grant`.
    pub via: Vec<String>,
    /// Whether it noted the case.
    pub delivered: bool,
    /// Why the last delivery failed, or why it refused.
    #[serde(default)]
    pub error: Option<String>,
    /// Its signed answer, once there is one.
    #[serde(default)]
    pub answer: Option<ByteBuf>,
    /// Whether it missed the deadline (reported once).
    #[serde(default)]
    pub overdue: bool,
    /// Whether it noted the appeal.
    #[serde(default)]
    pub appeal_delivered: bool,
    /// Whether it noted the decision.
    #[serde(default)]
    pub decision_delivered: bool,
}

/// A case as this node keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    /// Which side this node is.
    pub role: Role,
    /// The signed case.
    pub case: ByteBuf,
    /// Recorded here: where it went.
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    /// Received here: which of its datasets this node received from the recording agency.
    #[serde(default)]
    pub held: Vec<DatasetId>,
    /// Received here: this node's signed answer.
    #[serde(default)]
    pub answer: Option<ByteBuf>,
    /// Received here: whether the recording agency noted the answer.
    #[serde(default)]
    pub answer_delivered: bool,
    /// The signed appeal, for a complaint.
    #[serde(default)]
    pub appeal: Option<ByteBuf>,
    /// The signed decision on the appeal.
    #[serde(default)]
    pub decision: Option<ByteBuf>,
    /// Received here: whether this node's answer is overdue (reported once). Recorded here:
    /// whether the decision on the appeal is.
    #[serde(default)]
    pub overdue: bool,
}

/// What `POST /v1/rights` and `POST /v1/complaints` take.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewRequest {
    /// `access`, `rectification`, `erasure`, `objection` or `automated-review` (ignored for a
    /// complaint).
    #[serde(default)]
    pub kind: Option<String>,
    /// Datasets (ids or unique prefixes).
    pub datasets: Vec<String>,
    /// The agency's own opaque reference for the person; only its hash is kept and sent.
    #[serde(default)]
    pub subject_ref: Option<String>,
    /// What is asked, without naming the person.
    #[serde(default)]
    pub summary: Option<String>,
    /// Days to answer (default `rights_deadline_days`).
    #[serde(default)]
    pub deadline_days: Option<u32>,
}

/// What `POST /v1/rights/{id}/answer` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct AnswerRequest {
    /// `done`, `refused` or `partly`.
    pub outcome: String,
    /// What to say (required unless done).
    #[serde(default)]
    pub text: String,
}

/// What `POST /v1/complaints/{id}/appeal` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct AppealRequest {
    /// The grounds of the appeal.
    pub text: String,
    /// Days to decide (default `rights_deadline_days`).
    #[serde(default)]
    pub deadline_days: Option<u32>,
}

/// What `POST /v1/complaints/{id}/decide` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct DecideRequest {
    /// `upheld`, `dismissed` or `partly`.
    pub outcome: String,
    /// The reasons.
    pub text: String,
}

/// One recipient in `cix rights show`.
#[derive(Debug, Clone, Serialize)]
pub struct RecipientLine {
    /// The agency's DID.
    pub agency: String,
    /// The datasets it received.
    pub datasets: Vec<String>,
    /// The records that show it.
    pub via: Vec<String>,
    /// Whether it noted the case.
    pub delivered: bool,
    /// Why delivery failed or was refused.
    pub error: Option<String>,
    /// `done`, `refused`, `partly`, or none yet.
    pub outcome: Option<String>,
    /// Its answer text.
    pub text: Option<String>,
    /// When it answered, Unix seconds.
    pub answered: Option<i64>,
    /// Whether it missed the deadline without answering.
    pub overdue: bool,
}

/// An appeal or a decision in `cix complaints show`.
#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    /// `upheld`, `dismissed` or `partly` for a decision; none for an appeal.
    pub outcome: Option<String>,
    /// The grounds or reasons.
    pub text: String,
    /// When, Unix seconds.
    pub at: i64,
    /// When the decision is due (appeal only).
    pub due: Option<i64>,
}

/// One case as `cix rights list|show` and `cix complaints list|show` print it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseLine {
    /// Case id, hex.
    pub id: String,
    /// `rights` or `complaint`.
    pub class: &'static str,
    /// The kind of request.
    pub kind: &'static str,
    /// `recorded` or `received`.
    pub role: Role,
    /// The agency that recorded it.
    pub origin: String,
    /// The datasets it concerns.
    pub datasets: Vec<String>,
    /// The pseudonym of the person's reference, hex.
    pub subject: Option<String>,
    /// What is asked.
    pub summary: String,
    /// When it was recorded, Unix seconds.
    pub recorded: i64,
    /// When answers are due, Unix seconds.
    pub due: i64,
    /// `open`, `answered`, `overdue`, `appealed` or `decided`.
    pub status: &'static str,
    /// Recorded here: each recipient with its answer.
    pub recipients: Vec<RecipientLine>,
    /// Received here: the datasets this node received from the origin.
    pub held: Vec<String>,
    /// Received here: this node's answer.
    pub answer: Option<RecipientLine>,
    /// The appeal.
    pub appeal: Option<StepLine>,
    /// The decision.
    pub decision: Option<StepLine>,
}

fn audit_kind(kind: Kind) -> AuditKind {
    AuditKind::Other(
        if kind.is_complaint() {
            "complaint"
        } else {
            "rights"
        }
        .into(),
    )
}

fn clause(kind: Kind) -> &'static str {
    if kind.is_complaint() {
        "ISO 37156 8.3.6"
    } else {
        "ISO 37156 8.3.5"
    }
}

/// Seconds in a deadline day on this node.
pub fn day_secs(shared: &Shared) -> u64 {
    shared.config.rights_day_secs.unwrap_or(DAY_SECS)
}

fn deadline(shared: &Shared, from: i64, days: Option<u32>) -> Result<i64> {
    let days = days.unwrap_or(shared.config.rights_deadline_days);
    if !(1..=MAX_DEADLINE_DAYS).contains(&days) {
        bail!("--deadline-days must be 1 to {MAX_DEADLINE_DAYS}");
    }
    let secs = i64::try_from(u64::from(days).saturating_mul(day_secs(shared)))
        .map_err(|_| anyhow!("deadline out of range"))?;
    Ok(from.saturating_add(secs))
}

fn decode_case(k: &Kept) -> Result<Case> {
    Ok(Signed::<Case>::decode(&k.case)
        .map_err(|e| anyhow!("a kept case no longer verifies: {e}"))?
        .value)
}

fn all(shared: &Shared) -> Result<Vec<([u8; 32], Kept)>> {
    let mut out = Vec::new();
    for item in shared.store.tree(TREE)?.iter() {
        let (k, v) = item?;
        let Ok(id) = <[u8; 32]>::try_from(k.as_ref()) else {
            continue;
        };
        let kept: Kept = cix_protocol::cbor::from_slice(&v, MAX_KEPT_BYTES)
            .map_err(|e| anyhow!("corrupt rights record: {e}"))?;
        out.push((id, kept));
    }
    Ok(out)
}

fn get(shared: &Shared, id: &[u8; 32]) -> Result<Option<Kept>> {
    match shared.store.tree(TREE)?.get(id)? {
        None => Ok(None),
        Some(v) => Ok(Some(
            cix_protocol::cbor::from_slice(&v, MAX_KEPT_BYTES)
                .map_err(|e| anyhow!("corrupt rights record: {e}"))?,
        )),
    }
}

fn put(shared: &Shared, id: &[u8; 32], k: &Kept) -> Result<()> {
    let bytes = cix_protocol::cbor::to_vec(k).map_err(|e| anyhow!("{e}"))?;
    if bytes.len() > MAX_KEPT_BYTES {
        bail!("the case record would exceed {MAX_KEPT_BYTES} bytes");
    }
    shared.store.tree(TREE)?.insert(id, bytes)?;
    shared.store.flush()?;
    Ok(())
}

/// The case named by `text` (id or a unique prefix of at least 6 hex digits), of the class
/// asked for.
fn find(shared: &Shared, text: &str, complaint: bool) -> Result<([u8; 32], Kept, Case)> {
    let text = text.trim().to_ascii_lowercase();
    let what = if complaint { "complaint" } else { "request" };
    let list = if complaint {
        "cix complaints list"
    } else {
        "cix rights list"
    };
    if text.len() < 6 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("{text:?} is not a {what} id (at least 6 hex digits; see `{list}`)");
    }
    let mut found = Vec::new();
    for (id, k) in all(shared)? {
        if hex::encode(id).starts_with(&text) {
            let c = decode_case(&k)?;
            if c.kind.is_complaint() == complaint {
                found.push((id, k, c));
            }
        }
    }
    match found.len() {
        0 => bail!("no {what} {text:?} is kept here (see `{list}`)"),
        1 => Ok(found.pop().expect("one")),
        n => bail!("{n} {what}s start with {text:?}; give more digits"),
    }
}

/// What one agency received: the datasets, and the records that show it.
pub type Received = (BTreeSet<DatasetId>, BTreeSet<&'static str>);

/// Every agency that received any of `datasets` from this node, by its records: receipts
/// where this node was the provider, transfers it served, and grants it issued.
///
/// # Errors
///
/// Store I/O or a corrupt record.
pub fn recipients_of(shared: &Shared, datasets: &[DatasetId]) -> Result<BTreeMap<Did, Received>> {
    let wanted: BTreeSet<DatasetId> = datasets.iter().copied().collect();
    let me = shared.did();
    let mut out: BTreeMap<Did, Received> = BTreeMap::new();
    let mut note = |who: Did, d: DatasetId, via: &'static str| {
        if who != me && wanted.contains(&d) {
            let e = out.entry(who).or_default();
            e.0.insert(d);
            e.1.insert(via);
        }
    };
    for r in crate::receipts::list(shared)? {
        if r.role != "provider" {
            continue;
        }
        if let (Ok(who), Ok(d)) = (r.receiver.parse::<Did>(), r.dataset.parse::<DatasetId>()) {
            note(who, d, "receipt");
        }
    }
    for item in shared.store.tree("served")?.iter() {
        let (_, v) = item?;
        if let Ok(s) =
            cix_protocol::cbor::from_slice::<crate::receipts::ServedTransfer>(&v, MAX_KEPT_BYTES)
        {
            note(s.peer, s.dataset, "transfer");
        }
    }
    for (_, basis) in crate::recheck::candidates(shared)? {
        let Ok((d, _)) = Delegation::decode(&basis.delegation) else {
            continue;
        };
        if let Some(ds) = caveats::pinned_text(&d.pol, caveats::ARG_DATASET)
            .and_then(|t| t.parse::<DatasetId>().ok())
        {
            note(d.aud, ds, "grant");
        }
    }
    Ok(out)
}

/// Whether this node received `dataset` from `from`, by its own records: a receipt as
/// receiver from that provider, a grant that agency issued to this node, or a transfer of a
/// dataset that agency publishes.
fn received_from(shared: &Shared, from: &Did, dataset: &DatasetId) -> Result<bool> {
    let ds = dataset.to_string();
    let from_s = from.to_string();
    if crate::receipts::list(shared)?
        .iter()
        .any(|r| r.role == "receiver" && r.provider == from_s && r.dataset == ds)
    {
        return Ok(true);
    }
    if let Some(out) = shared.store.request_out(dataset)? {
        if let Ok((d, _)) = Delegation::decode(&out.delegation) {
            if d.iss == *from {
                return Ok(true);
            }
        }
    }
    for (_, record) in shared.store.received()? {
        let Some(root) = record.chain.first() else {
            continue;
        };
        if let Ok((d, _)) = Delegation::decode(root) {
            if d.iss == *from
                && caveats::pinned_text(&d.pol, caveats::ARG_DATASET).as_deref()
                    == Some(ds.as_str())
            {
                return Ok(true);
            }
        }
    }
    let publishes = shared.store.publishers_of(dataset)?.contains(from);
    if publishes {
        let transfers: Vec<(String, crate::transfer::TransferRecord)> =
            shared.store.records(crate::transfer::TRANSFERS_TREE)?;
        if transfers.iter().any(|(_, t)| t.dataset == ds) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Sends one message on `/cix/rights/1` and reads the answer.
///
/// # Errors
///
/// An unreachable peer, a timeout or a malformed answer.
pub async fn send(node: &Node, to: &Did, req: &RightsRequest) -> Result<RightsResponse> {
    EXCHANGE.ask(node, to, req).await
}

fn resolve(shared: &Shared, texts: &[String]) -> Result<Vec<DatasetId>> {
    if texts.is_empty() {
        bail!("name at least one dataset (--dataset ID)");
    }
    if texts.len() > limits::MAX_RIGHTS_DATASETS {
        bail!(
            "a case names at most {} datasets",
            limits::MAX_RIGHTS_DATASETS
        );
    }
    let mut out = Vec::new();
    for t in texts {
        let id = crate::withdraw::resolve_any(shared, t)?
            .ok_or_else(|| anyhow!("no dataset {t:?} is known here (see `cix catalogue`)"))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Records a person's request or complaint and forwards it to every agency that received
/// its datasets (ISO 37156 8.3.5, 8.3.6).
///
/// # Errors
///
/// Bad fields or unknown datasets (nothing is kept then); failed deliveries are noted in the
/// case and retried by the sweep.
pub async fn record(node: &Node, complaint: bool, req: &NewRequest) -> Result<CaseLine> {
    let shared = &node.shared;
    let kind = if complaint {
        Kind::Complaint
    } else {
        let k: Kind = req
            .kind
            .as_deref()
            .ok_or_else(|| anyhow!("--kind is required"))?
            .parse()
            .map_err(|e: String| anyhow!("--kind: {e}"))?;
        if k.is_complaint() {
            bail!("--kind complaint: record complaints with `cix complaints new`");
        }
        k
    };
    let datasets = resolve(shared, &req.datasets)?;
    let summary = req.summary.clone().unwrap_or_default().trim().to_string();
    let subject = match req.subject_ref.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) if r.len() > limits::MAX_RIGHTS_TEXT_BYTES => {
            bail!(
                "--subject-ref is longer than {} bytes",
                limits::MAX_RIGHTS_TEXT_BYTES
            )
        }
        Some(r) => Some(ByteBuf::from(subject_hash(r).to_vec())),
    };
    let issued = now();
    let case = Case {
        iss: shared.did(),
        nonce: ByteBuf::from(rand::random::<[u8; NONCE_BYTES]>().to_vec()),
        kind,
        datasets: datasets.clone(),
        subject,
        summary,
        issued,
        due: deadline(shared, issued, req.deadline_days)?,
    };
    let signed = Signed::seal(&case, &shared.key).map_err(|e| anyhow!("case: {e}"))?;
    let found = recipients_of(shared, &datasets)?;
    if found.len() > MAX_RECIPIENTS {
        bail!(
            "{} agencies received these datasets; a case goes to at most {MAX_RECIPIENTS}: \
             record one case per dataset",
            found.len()
        );
    }
    let recipients = found
        .into_iter()
        .map(|(agency, (ds, via))| Recipient {
            agency,
            datasets: ds.into_iter().collect(),
            via: via.into_iter().map(String::from).collect(),
            delivered: false,
            error: None,
            answer: None,
            overdue: false,
            appeal_delivered: false,
            decision_delivered: false,
        })
        .collect::<Vec<_>>();
    let n = recipients.len();
    let kept = Kept {
        role: Role::Recorded,
        case: ByteBuf::from(signed.bytes.clone()),
        recipients,
        held: Vec::new(),
        answer: None,
        answer_delivered: false,
        appeal: None,
        decision: None,
        overdue: false,
    };
    put(shared, &signed.id, &kept)?;
    let hex_id = hex::encode(signed.id);
    audit::append(
        shared,
        AuditEvent::new(audit_kind(kind))
            .dataset(datasets[0])
            .basis(clause(kind))
            .detail(format!(
                "{} {hex_id} recorded ({}, {} dataset(s), {n} recipient(s))",
                if complaint { "complaint" } else { "request" },
                kind.as_str(),
                datasets.len()
            )),
    )
    .await?;
    info!(case = %hex_id, kind = kind.as_str(), recipients = n, "case recorded");
    deliver(node, &signed.id).await?;
    let k = get(shared, &signed.id)?.ok_or_else(|| anyhow!("the case vanished"))?;
    line(&signed.id, &k, now())
}

/// Sends what is still undelivered of one case: the case, an answer, an appeal, a decision.
async fn deliver(node: &Node, id: &[u8; 32]) -> Result<()> {
    let shared = &node.shared;
    let Some(mut k) = get(shared, id)? else {
        return Ok(());
    };
    let case = decode_case(&k)?;
    let hex_id = hex::encode(id);
    let mut changed = false;
    match k.role {
        Role::Recorded => {
            for r in &mut k.recipients {
                if refused(r) {
                    continue;
                }
                let mut steps: Vec<(&'static str, RightsRequest)> = Vec::new();
                if !r.delivered {
                    steps.push((
                        "forwarded",
                        RightsRequest::Case {
                            case: k.case.clone(),
                        },
                    ));
                }
                if let Some(a) = k.appeal.as_ref().filter(|_| !r.appeal_delivered) {
                    steps.push(("appeal sent", RightsRequest::Appeal { appeal: a.clone() }));
                }
                if let Some(d) = k.decision.as_ref().filter(|_| !r.decision_delivered) {
                    steps.push((
                        "decision sent",
                        RightsRequest::Decision {
                            decision: d.clone(),
                        },
                    ));
                }
                for (step, msg) in steps {
                    let result = send(node, &r.agency, &msg).await;
                    changed = true;
                    match result {
                        Ok(RightsResponse::Noted) => {
                            match step {
                                "forwarded" => r.delivered = true,
                                "appeal sent" => r.appeal_delivered = true,
                                _ => r.decision_delivered = true,
                            }
                            r.error = None;
                            audit::log(
                                shared,
                                AuditEvent::new(audit_kind(case.kind))
                                    .dataset(
                                        r.datasets.first().copied().unwrap_or(case.datasets[0]),
                                    )
                                    .peer(r.agency)
                                    .basis(clause(case.kind))
                                    .detail(format!("case {hex_id} {step} to the recipient")),
                            )
                            .await;
                            debug!(case = %hex_id, to = %r.agency, step, "delivered");
                        }
                        Ok(RightsResponse::Refused { reason }) => {
                            warn!(case = %hex_id, to = %r.agency, %reason, "recipient refused");
                            r.error = Some(format!("refused: {reason}"));
                            // A refusal is final for the case itself: do not send it again.
                            if step == "forwarded" {
                                r.delivered = true;
                            }
                            break;
                        }
                        Err(e) => {
                            debug!(case = %hex_id, to = %r.agency, error = %format!("{e:#}"), "not delivered yet");
                            r.error = Some(format!("{e:#}"));
                            break;
                        }
                    }
                }
            }
        }
        Role::Received => {
            if let Some(a) = k.answer.as_ref().filter(|_| !k.answer_delivered) {
                changed = true;
                match send(
                    node,
                    &case.iss,
                    &RightsRequest::Answer { answer: a.clone() },
                )
                .await
                {
                    Ok(RightsResponse::Noted) => {
                        k.answer_delivered = true;
                        debug!(case = %hex_id, "answer delivered");
                    }
                    Ok(RightsResponse::Refused { reason }) => {
                        warn!(case = %hex_id, %reason, "the recording agency refused the answer");
                        k.answer_delivered = true;
                    }
                    Err(e) => {
                        debug!(case = %hex_id, error = %format!("{e:#}"), "answer not delivered yet");
                    }
                }
            }
        }
    }
    if changed {
        // Messages that arrived meanwhile (answers) are in the stored record: merge.
        if let Some(mut now_kept) = get(shared, id)? {
            for (mine, theirs) in k.recipients.iter().zip(now_kept.recipients.iter_mut()) {
                theirs.delivered |= mine.delivered;
                theirs.appeal_delivered |= mine.appeal_delivered;
                theirs.decision_delivered |= mine.decision_delivered;
                theirs.error.clone_from(&mine.error);
            }
            now_kept.answer_delivered |= k.answer_delivered;
            put(shared, id, &now_kept)?;
        }
    }
    Ok(())
}

/// Whether a recipient refused the case: nothing more is sent to it.
fn refused(r: &Recipient) -> bool {
    r.error.as_deref().is_some_and(|e| e.starts_with("refused"))
}

fn outcome_of(bytes: &[u8]) -> Option<Answer> {
    Signed::<Answer>::decode(bytes).ok().map(|a| a.value)
}

fn recipient_line(r: &Recipient, due: i64, t: i64) -> RecipientLine {
    let a = r.answer.as_deref().and_then(|b| outcome_of(b));
    RecipientLine {
        agency: r.agency.to_string(),
        datasets: r.datasets.iter().map(ToString::to_string).collect(),
        via: r.via.clone(),
        delivered: r.delivered,
        error: r.error.clone(),
        outcome: a.as_ref().map(|a| a.outcome.as_str().to_string()),
        text: a.as_ref().map(|a| a.text.clone()),
        answered: a.as_ref().map(|a| a.at),
        overdue: a.is_none() && (r.overdue || t > due),
    }
}

fn line(id: &[u8; 32], k: &Kept, t: i64) -> Result<CaseLine> {
    let c = decode_case(k)?;
    let appeal = k
        .appeal
        .as_deref()
        .and_then(|b| Signed::<Appeal>::decode(b).ok())
        .map(|a| StepLine {
            outcome: None,
            text: a.value.grounds,
            at: a.value.at,
            due: Some(a.value.due),
        });
    let decision = k
        .decision
        .as_deref()
        .and_then(|b| Signed::<Decision>::decode(b).ok())
        .map(|d| StepLine {
            outcome: Some(d.value.verdict.as_str().to_string()),
            text: d.value.text,
            at: d.value.at,
            due: None,
        });
    let recipients: Vec<RecipientLine> = k
        .recipients
        .iter()
        .map(|r| recipient_line(r, c.due, t))
        .collect();
    let answer = k
        .answer
        .as_deref()
        .and_then(|b| outcome_of(b))
        .map(|a| RecipientLine {
            agency: a.iss.to_string(),
            datasets: k.held.iter().map(ToString::to_string).collect(),
            via: Vec::new(),
            delivered: k.answer_delivered,
            error: None,
            outcome: Some(a.outcome.as_str().to_string()),
            text: Some(a.text),
            answered: Some(a.at),
            overdue: false,
        });
    let status = if decision.is_some() {
        "decided"
    } else if appeal.is_some() {
        "appealed"
    } else {
        match k.role {
            Role::Recorded => {
                if recipients.iter().any(|r| r.overdue) {
                    "overdue"
                } else if !recipients.is_empty() && recipients.iter().all(|r| r.outcome.is_some()) {
                    "answered"
                } else {
                    "open"
                }
            }
            Role::Received => {
                if answer.is_some() {
                    "answered"
                } else if k.overdue || t > c.due {
                    "overdue"
                } else {
                    "open"
                }
            }
        }
    };
    Ok(CaseLine {
        id: hex::encode(id),
        class: if c.kind.is_complaint() {
            "complaint"
        } else {
            "rights"
        },
        kind: c.kind.as_str(),
        role: k.role,
        origin: c.iss.to_string(),
        datasets: c.datasets.iter().map(ToString::to_string).collect(),
        subject: c.subject.as_ref().map(hex::encode),
        summary: c.summary,
        recorded: c.issued,
        due: c.due,
        status,
        recipients,
        held: k.held.iter().map(ToString::to_string).collect(),
        answer,
        appeal,
        decision,
    })
}

/// Every request (`complaint = false`) or complaint kept here, newest first.
///
/// # Errors
///
/// Store I/O or a corrupt record.
pub fn list(shared: &Shared, complaint: bool) -> Result<Vec<CaseLine>> {
    let t = now();
    let mut out = Vec::new();
    for (id, k) in all(shared)? {
        let l = line(&id, &k, t)?;
        if (l.class == "complaint") == complaint {
            out.push(l);
        }
    }
    out.sort_by(|a, b| b.recorded.cmp(&a.recorded).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// One request or complaint.
///
/// # Errors
///
/// An unknown or ambiguous id.
pub fn show(shared: &Shared, complaint: bool, id: &str) -> Result<CaseLine> {
    let (id, k, _) = find(shared, id, complaint)?;
    line(&id, &k, now())
}

/// Answers a case forwarded to this node and sends the signed answer to the recording agency.
///
/// # Errors
///
/// An unknown case, one recorded here, or bad fields.
pub async fn answer(
    node: &Node,
    complaint: bool,
    id: &str,
    req: &AnswerRequest,
) -> Result<CaseLine> {
    let shared = &node.shared;
    let outcome: Outcome = req
        .outcome
        .parse()
        .map_err(|e: String| anyhow!("--outcome: {e}"))?;
    let (id, mut k, case) = find(shared, id, complaint)?;
    if k.role == Role::Recorded {
        bail!(
            "this case was recorded here: the agencies it was forwarded to answer it (see their \
             answers with `cix {} show`)",
            if complaint { "complaints" } else { "rights" }
        );
    }
    if outcome != Outcome::Done && req.text.trim().is_empty() {
        bail!("a {} answer says why: give --text", outcome.as_str());
    }
    let a = Answer {
        iss: shared.did(),
        case: ByteBuf::from(id.to_vec()),
        outcome,
        text: req.text.trim().to_string(),
        at: now(),
    };
    let signed = Signed::seal(&a, &shared.key).map_err(|e| anyhow!("answer: {e}"))?;
    k.answer = Some(ByteBuf::from(signed.bytes));
    k.answer_delivered = false;
    put(shared, &id, &k)?;
    audit::append(
        shared,
        AuditEvent::new(audit_kind(case.kind))
            .dataset(k.held.first().copied().unwrap_or(case.datasets[0]))
            .peer(case.iss)
            .basis(clause(case.kind))
            .detail(format!(
                "case {} answered: {}",
                hex::encode(id),
                outcome.as_str()
            )),
    )
    .await?;
    deliver(node, &id).await?;
    let k = get(shared, &id)?.ok_or_else(|| anyhow!("the case vanished"))?;
    line(&id, &k, now())
}

/// Records an appeal against a complaint recorded here and sends it to the agencies concerned.
///
/// # Errors
///
/// An unknown complaint, one received from elsewhere, or one already appealed.
pub async fn appeal(node: &Node, id: &str, req: &AppealRequest) -> Result<CaseLine> {
    let shared = &node.shared;
    let (id, mut k, case) = find(shared, id, true)?;
    if k.role != Role::Recorded {
        bail!(
            "this complaint was recorded by {}: an appeal is lodged with the agency that \
             recorded it",
            case.iss
        );
    }
    if k.appeal.is_some() {
        bail!("this complaint is already under appeal");
    }
    if req.text.trim().is_empty() {
        bail!("give the grounds of the appeal: --text");
    }
    let at = now();
    let a = Appeal {
        iss: shared.did(),
        case: ByteBuf::from(id.to_vec()),
        grounds: req.text.trim().to_string(),
        at,
        due: deadline(shared, at, req.deadline_days)?,
    };
    let signed = Signed::seal(&a, &shared.key).map_err(|e| anyhow!("appeal: {e}"))?;
    k.appeal = Some(ByteBuf::from(signed.bytes));
    put(shared, &id, &k)?;
    audit::append(
        shared,
        AuditEvent::new(audit_kind(case.kind))
            .dataset(case.datasets[0])
            .basis(clause(case.kind))
            .detail(format!("complaint {} appealed", hex::encode(id))),
    )
    .await?;
    deliver(node, &id).await?;
    let k = get(shared, &id)?.ok_or_else(|| anyhow!("the case vanished"))?;
    line(&id, &k, now())
}

/// Decides the appeal of a complaint recorded here and sends the decision to the agencies
/// concerned.
///
/// # Errors
///
/// An unknown complaint, one not under appeal, or one already decided.
pub async fn decide(node: &Node, id: &str, req: &DecideRequest) -> Result<CaseLine> {
    let shared = &node.shared;
    let verdict: Verdict = req
        .outcome
        .parse()
        .map_err(|e: String| anyhow!("--outcome: {e}"))?;
    let (id, mut k, case) = find(shared, id, true)?;
    if k.role != Role::Recorded {
        bail!(
            "this complaint was recorded by {}, which decides its appeal",
            case.iss
        );
    }
    if k.appeal.is_none() {
        bail!("this complaint has not been appealed (cix complaints appeal ID --text ...)");
    }
    if k.decision.is_some() {
        bail!("the appeal of this complaint is already decided");
    }
    if req.text.trim().is_empty() {
        bail!("a decision gives its reasons: --text");
    }
    let d = Decision {
        iss: shared.did(),
        case: ByteBuf::from(id.to_vec()),
        verdict,
        text: req.text.trim().to_string(),
        at: now(),
    };
    let signed = Signed::seal(&d, &shared.key).map_err(|e| anyhow!("decision: {e}"))?;
    k.decision = Some(ByteBuf::from(signed.bytes));
    put(shared, &id, &k)?;
    audit::append(
        shared,
        AuditEvent::new(audit_kind(case.kind))
            .dataset(case.datasets[0])
            .basis(clause(case.kind))
            .detail(format!(
                "complaint {} decided: {}",
                hex::encode(id),
                verdict.as_str()
            )),
    )
    .await?;
    deliver(node, &id).await?;
    let k = get(shared, &id)?.ok_or_else(|| anyhow!("the case vanished"))?;
    line(&id, &k, now())
}

/// One pass of the sweep: reports deadlines that passed (once each) and delivers what is
/// still undelivered.
///
/// # Errors
///
/// Store I/O.
pub async fn sweep(node: &Node) -> Result<()> {
    let shared = &node.shared;
    let t = now();
    for (id, mut k) in all(shared)? {
        let Ok(case) = decode_case(&k) else {
            continue;
        };
        let hex_id = hex::encode(id);
        let mut overdue: Vec<(Option<Did>, String)> = Vec::new();
        match k.role {
            Role::Recorded => {
                if t > case.due {
                    for r in &mut k.recipients {
                        if r.answer.is_none() && !r.overdue {
                            r.overdue = true;
                            overdue.push((
                                Some(r.agency),
                                format!("case {hex_id} overdue: the recipient did not answer"),
                            ));
                        }
                    }
                }
                let appeal_due = k
                    .appeal
                    .as_deref()
                    .and_then(|b| Signed::<Appeal>::decode(b).ok())
                    .map(|a| a.value.due);
                if let Some(due) = appeal_due {
                    if t > due && k.decision.is_none() && !k.overdue {
                        k.overdue = true;
                        overdue.push((
                            None,
                            format!("complaint {hex_id} overdue: the appeal is not decided"),
                        ));
                    }
                }
            }
            Role::Received => {
                if t > case.due && k.answer.is_none() && !k.overdue {
                    k.overdue = true;
                    overdue.push((
                        Some(case.iss),
                        format!("case {hex_id} overdue: this agency did not answer"),
                    ));
                }
            }
        }
        if !overdue.is_empty() {
            // Apply the marks to the record as it is now: an answer may have arrived meanwhile.
            if let Some(mut fresh) = get(shared, &id)? {
                for (mine, theirs) in k.recipients.iter().zip(fresh.recipients.iter_mut()) {
                    theirs.overdue |= mine.overdue && theirs.answer.is_none();
                }
                fresh.overdue |= k.overdue && fresh.answer.is_none();
                put(shared, &id, &fresh)?;
                k = fresh;
            }
            for (peer, detail) in overdue {
                info!(case = %hex_id, peer = ?peer.map(|p| p.to_string()), "deadline passed");
                audit::log(
                    shared,
                    AuditEvent::new(audit_kind(case.kind))
                        .dataset(case.datasets[0])
                        .peer_opt(peer)
                        .basis(clause(case.kind))
                        .detail(detail),
                )
                .await;
            }
        }
        let pending = match k.role {
            Role::Recorded => k.recipients.iter().any(|r| {
                !refused(r)
                    && (!r.delivered
                        || (k.appeal.is_some() && !r.appeal_delivered)
                        || (k.decision.is_some() && !r.decision_delivered))
            }),
            Role::Received => k.answer.is_some() && !k.answer_delivered,
        };
        if pending {
            if let Err(e) = deliver(node, &id).await {
                warn!(case = %hex_id, error = %format!("{e:#}"), "delivery failed");
            }
        }
    }
    Ok(())
}

fn cases_from(shared: &Shared, sender: &Did) -> usize {
    all(shared)
        .map(|v| {
            v.iter()
                .filter(|(_, k)| {
                    k.role == Role::Received && decode_case(k).is_ok_and(|c| c.iss == *sender)
                })
                .count()
        })
        .unwrap_or(usize::MAX)
}

async fn serve_one(shared: &Shared, peer: &PeerId, req: RightsRequest) -> RightsResponse {
    let refuse = |reason: String| {
        warn!(%peer, %reason, "rights message refused");
        RightsResponse::Refused { reason }
    };
    let Some(sender) = did_of_peer(peer) else {
        return refuse("the connected peer has no ed25519 identity".into());
    };
    let store_failed = |e: anyhow::Error| {
        tracing::error!(error = %format!("{e:#}"), "cannot keep a rights message");
        RightsResponse::Refused {
            reason: "the agency could not keep the message".into(),
        }
    };
    match req {
        RightsRequest::Case { case } => {
            let s = match Signed::<Case>::decode(&case) {
                Ok(s) => s,
                Err(e) => return refuse(format!("case: {e}")),
            };
            if s.value.iss != sender {
                return refuse("the case is not signed by the connected peer".into());
            }
            match get(shared, &s.id) {
                Ok(Some(_)) => return RightsResponse::Noted,
                Ok(None) => {}
                Err(e) => return store_failed(e),
            }
            if cases_from(shared, &sender) >= MAX_CASES_PER_PEER {
                return refuse(format!(
                    "at most {MAX_CASES_PER_PEER} cases are kept per agency"
                ));
            }
            let mut held = Vec::new();
            for d in &s.value.datasets {
                match received_from(shared, &sender, d) {
                    Ok(true) => held.push(*d),
                    Ok(false) => {}
                    Err(e) => return store_failed(e),
                }
            }
            if held.is_empty() {
                return refuse(format!(
                    "this agency has no record of receiving {} from {sender}",
                    s.value
                        .datasets
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let k = Kept {
                role: Role::Received,
                case: ByteBuf::from(s.bytes.clone()),
                recipients: Vec::new(),
                held: held.clone(),
                answer: None,
                answer_delivered: false,
                appeal: None,
                decision: None,
                overdue: false,
            };
            if let Err(e) = put(shared, &s.id, &k) {
                return store_failed(e);
            }
            audit::log(
                shared,
                AuditEvent::new(audit_kind(s.value.kind))
                    .dataset(held[0])
                    .peer(sender)
                    .basis(clause(s.value.kind))
                    .detail(format!(
                        "case {} received ({}, {} of its datasets held here)",
                        hex::encode(s.id),
                        s.value.kind.as_str(),
                        held.len()
                    )),
            )
            .await;
            info!(case = %hex::encode(s.id), kind = s.value.kind.as_str(), "case received");
            RightsResponse::Noted
        }
        RightsRequest::Answer { answer } => {
            let a = match Signed::<Answer>::decode(&answer) {
                Ok(a) => a,
                Err(e) => return refuse(format!("answer: {e}")),
            };
            if a.value.iss != sender {
                return refuse("the answer is not signed by the connected peer".into());
            }
            let Ok(id) = <[u8; 32]>::try_from(a.value.case.as_ref()) else {
                return refuse("bad case id".into());
            };
            let mut k = match get(shared, &id) {
                Ok(Some(k)) if k.role == Role::Recorded => k,
                Ok(_) => return refuse("no such case was recorded here".into()),
                Err(e) => return store_failed(e),
            };
            let Some(r) = k.recipients.iter_mut().find(|r| r.agency == sender) else {
                return refuse("this case was not forwarded to your agency".into());
            };
            if refused(r) {
                return refuse("your agency refused this case: it has nothing to answer".into());
            }
            r.answer = Some(ByteBuf::from(a.bytes.clone()));
            r.delivered = true;
            let first = r.datasets.first().copied();
            let Ok(case) = decode_case(&k) else {
                return store_failed(anyhow!("a kept case no longer verifies"));
            };
            if let Err(e) = put(shared, &id, &k) {
                return store_failed(e);
            }
            audit::log(
                shared,
                AuditEvent::new(audit_kind(case.kind))
                    .dataset(first.unwrap_or(case.datasets[0]))
                    .peer(sender)
                    .basis(clause(case.kind))
                    .detail(format!(
                        "case {} answered by the recipient: {}",
                        hex::encode(id),
                        a.value.outcome.as_str()
                    )),
            )
            .await;
            RightsResponse::Noted
        }
        RightsRequest::Appeal { appeal } => {
            let a = match Signed::<Appeal>::decode(&appeal) {
                Ok(a) => a,
                Err(e) => return refuse(format!("appeal: {e}")),
            };
            if a.value.iss != sender {
                return refuse("the appeal is not signed by the connected peer".into());
            }
            received_step(shared, sender, &a.value.case, a.bytes, true).await
        }
        RightsRequest::Decision { decision } => {
            let d = match Signed::<Decision>::decode(&decision) {
                Ok(d) => d,
                Err(e) => return refuse(format!("decision: {e}")),
            };
            if d.value.iss != sender {
                return refuse("the decision is not signed by the connected peer".into());
            }
            received_step(shared, sender, &d.value.case, d.bytes, false).await
        }
    }
}

/// Keeps an appeal (`is_appeal`) or a decision sent by the agency that recorded the complaint.
async fn received_step(
    shared: &Shared,
    sender: Did,
    case_id: &[u8],
    bytes: Vec<u8>,
    is_appeal: bool,
) -> RightsResponse {
    let refuse = |reason: String| {
        warn!(peer = %sender, %reason, "rights message refused");
        RightsResponse::Refused { reason }
    };
    let Ok(id) = <[u8; 32]>::try_from(case_id) else {
        return refuse("bad case id".into());
    };
    let mut k = match get(shared, &id) {
        Ok(Some(k)) if k.role == Role::Received => k,
        Ok(_) => return refuse("no such case was received here".into()),
        Err(_) => return refuse("the agency could not read its records".into()),
    };
    let Ok(case) = decode_case(&k) else {
        return refuse("the agency could not read its records".into());
    };
    if case.iss != sender {
        return refuse("only the agency that recorded the complaint appeals or decides".into());
    }
    if !case.kind.is_complaint() {
        return refuse("only complaints are appealed (ISO 37156 8.3.6)".into());
    }
    let step = if is_appeal {
        k.appeal = Some(ByteBuf::from(bytes));
        "appealed"
    } else {
        if k.appeal.is_none() {
            return refuse("no appeal of this complaint was received here".into());
        }
        k.decision = Some(ByteBuf::from(bytes));
        "decided"
    };
    if put(shared, &id, &k).is_err() {
        return refuse("the agency could not keep the message".into());
    }
    audit::log(
        shared,
        AuditEvent::new(audit_kind(case.kind))
            .dataset(k.held.first().copied().unwrap_or(case.datasets[0]))
            .peer(sender)
            .basis(clause(case.kind))
            .detail(format!(
                "complaint {} {step} (told by the recording agency)",
                hex::encode(id)
            )),
    )
    .await;
    RightsResponse::Noted
}

/// How often the sweep runs: a quarter of a deadline day, from 200 ms to 30 s.
fn sweep_period(shared: &Shared) -> Duration {
    Duration::from_millis((day_secs(shared).saturating_mul(250)).clamp(200, 30_000))
}

/// Starts serving `/cix/rights/1` and the sweep task; both end when the node stops.
///
/// # Errors
///
/// If the protocol is already registered.
pub fn spawn(node: Node) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    if let Some(secs) = node.shared.config.rights_day_secs {
        warn!(
            rights_day_secs = secs,
            "TESTING KNOB ON: a deadline day of individuals' requests lasts {secs} seconds, not \
             86400. Never use this in production."
        );
    }
    let server =
        EXCHANGE.serve(
            node.clone(),
            |node: Node, peer, req: RightsRequest| async move {
                serve_one(&node.shared, &peer, req).await
            },
        )?;
    let sweeper = tokio::spawn(async move {
        let mut stopping = node.shared.stopping.clone();
        let period = sweep_period(&node.shared);
        while !*stopping.borrow() {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                _ = stopping.changed() => break,
            }
            if let Err(e) = sweep(&node).await {
                tracing::error!(error = %format!("{e:#}"), "rights sweep failed");
            }
        }
    });
    Ok(vec![server, sweeper])
}
