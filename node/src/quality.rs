//! Quality feedback on `/cix/quality/1` (ISO 37156 9.2 e, 9.3).
//!
//! - A holder signs a [`QualityReport`] about a dataset and sends it to the entry's signer, its
//!   primary publisher ([`report`]); the publisher keeps it if it is signed by the connected
//!   peer and about one of its own datasets.
//! - The publisher lists reports ([`reports`]), answers one ([`answer`]: accepted or
//!   rejected, signed, sent to the reporter), or publishes a corrected version with
//!   `cix publish --dataset D --resolves REPORT`: the entry names the reports in
//!   `details.resolves`, so every node that has the entry sees what it fixed, and each reporter
//!   gets a signed `fixed` answer naming the version.
//! - [`measures`] shows a dataset's quality: completeness and validity from the entry,
//!   reports open and resolved as this node knows them.
//!
//! Every step is in the audit log (kind `quality`). Nothing of a report goes on gossip.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `quality_in` | report id (32 bytes) | [`Kept`]: a report this node received as publisher |
//! | `quality_out` | report id (32 bytes) | [`Kept`]: a report this node sent |

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use cix_protocol::audit::AuditKind;
use cix_protocol::catalogue::{DatasetId, EntryId};
use cix_protocol::identity::Did;
use cix_protocol::limits;
use cix_protocol::quality::{
    Problem, QualityAnswer, QualityReport, QualityRequest, QualityResponse, Signed, Status,
    QUALITY_PROTOCOL,
};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tracing::{debug, info, warn};

use crate::access::now;
use crate::audit::{self, AuditEvent};
use crate::exchange::Exchange;
use crate::node::{did_of_peer, Node, Shared};

const IN_TREE: &str = "quality_in";
const OUT_TREE: &str = "quality_out";
/// How long either side waits for the other.
pub const QUALITY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most reports a publisher keeps from one peer.
pub const MAX_REPORTS_PER_PEER: usize = 1000;
/// Most requests served at once.
const MAX_CONCURRENT: usize = 16;

/// `QUALITY_PROTOCOL`: one request, one answer, bounded each way ([`crate::exchange`]).
const EXCHANGE: Exchange = Exchange {
    protocol: QUALITY_PROTOCOL,
    request_limit: limits::MAX_QUALITY_REQUEST_BYTES,
    response_limit: limits::MAX_QUALITY_RESPONSE_BYTES,
    timeout: QUALITY_TIMEOUT,
    concurrent: MAX_CONCURRENT,
};
/// Largest kept record read back.
const MAX_KEPT_BYTES: usize = 64 * 1024;

/// A report as this node keeps it, with the answer so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    /// The signed report.
    #[serde(with = "serde_bytes")]
    pub report: Vec<u8>,
    /// The signed answer, once there is one.
    #[serde(default, with = "serde_bytes")]
    pub answer: Option<Vec<u8>>,
}

/// What `POST /v1/quality/report` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct ReportRequest {
    /// Dataset id (or a unique prefix) of a dataset another agency published.
    pub dataset: String,
    /// The field concerned.
    #[serde(default)]
    pub field: Option<String>,
    /// The data rows concerned.
    #[serde(default)]
    pub rows: Vec<u64>,
    /// `missing`, `invalid`, `out-of-range`, `inconsistent`, `outdated`, `duplicate`, `other`.
    pub kind: String,
    /// What was seen.
    pub evidence: String,
}

/// What `POST /v1/quality/answer` takes.
#[derive(Debug, Clone, Deserialize)]
pub struct AnswerRequest {
    /// Report id or a unique prefix (at least 6 hex digits).
    pub report: String,
    /// `accepted` or `rejected`.
    pub status: String,
    /// What to say.
    #[serde(default)]
    pub text: String,
}

/// One line of `cix quality reports`.
#[derive(Debug, Clone, Serialize)]
pub struct ReportLine {
    /// Report id, hex.
    pub id: String,
    /// `received` (this node is the publisher) or `sent`.
    pub direction: &'static str,
    /// Dataset.
    pub dataset: String,
    /// Entry looked at.
    pub entry: String,
    /// Field.
    pub field: Option<String>,
    /// Rows.
    pub rows: Vec<u64>,
    /// Kind of problem.
    pub kind: Problem,
    /// Evidence.
    pub evidence: String,
    /// Reporter.
    pub reporter: String,
    /// Status: `open`, `accepted`, `rejected` or `fixed`.
    pub status: &'static str,
    /// The publisher's answer text.
    pub answer: Option<String>,
    /// The version that fixed it, when one did.
    pub fixed_by: Option<String>,
    /// When it was sent, Unix seconds.
    pub issued: i64,
}

/// `cix quality show DATASET`: a dataset's quality (ISO 37156 9.3).
#[derive(Debug, Clone, Serialize)]
pub struct MeasuresLine {
    /// Dataset.
    pub dataset: String,
    /// Latest version known.
    pub version: u64,
    /// Entry id of that version.
    pub entry: String,
    /// The quality statement, if the publisher wrote one.
    pub statement: Option<String>,
    /// Data rows, when measured.
    pub rows: Option<u64>,
    /// Cells present, per thousand.
    pub completeness_permille: Option<u64>,
    /// Rows valid against the dictionary, per thousand.
    pub validity_permille: Option<u64>,
    /// Reports known here that no version resolved and the publisher did not reject.
    pub open_reports: usize,
    /// Reports resolved by some version (as every node sees it in the entries).
    pub resolved_reports: Vec<String>,
}

fn resolve_dataset(shared: &Shared, text: &str) -> Result<DatasetId> {
    crate::withdraw::resolve_any(shared, text)?
        .ok_or_else(|| anyhow!("no dataset {text:?} is known here (see `cix catalogue`)"))
}

fn kept(shared: &Shared, tree: &str) -> Result<Vec<([u8; 32], Kept)>> {
    let mut out = Vec::new();
    for item in shared.store.tree(tree)?.iter() {
        let (k, v) = item?;
        let Ok(id) = <[u8; 32]>::try_from(k.as_ref()) else {
            continue;
        };
        let kept: Kept = cix_protocol::cbor::from_slice(&v, MAX_KEPT_BYTES)
            .map_err(|e| anyhow!("corrupt quality record: {e}"))?;
        out.push((id, kept));
    }
    Ok(out)
}

fn put(shared: &Shared, tree: &str, id: &[u8; 32], k: &Kept) -> Result<()> {
    let bytes = cix_protocol::cbor::to_vec(k).map_err(|e| anyhow!("{e}"))?;
    shared.store.tree(tree)?.insert(id, bytes)?;
    shared.store.flush()?;
    Ok(())
}

/// Sends one request and reads the answer.
async fn send(node: &Node, to: &Did, req: &QualityRequest) -> Result<QualityResponse> {
    EXCHANGE.ask(node, to, req).await
}

/// Signs a report about `req.dataset` and sends it to the dataset's primary publisher.
///
/// # Errors
///
/// An unknown dataset, one's own dataset, bad fields, or a publisher that refuses or cannot be
/// reached (nothing is kept then).
pub async fn report(node: &Node, req: &ReportRequest) -> Result<ReportLine> {
    let shared = &node.shared;
    let dataset = resolve_dataset(shared, &req.dataset)?;
    let latest = shared
        .store
        .latest_entry(&dataset)?
        .ok_or_else(|| anyhow!("no entry of dataset {dataset} is known here"))?;
    let publisher = latest.entry.iss;
    if publisher == shared.did() {
        bail!("dataset {dataset} is this agency's own: nobody to report to");
    }
    if let Some(f) = &req.field {
        if !latest.entry.iso.dictionary.iter().any(|d| &d.name == f) {
            bail!("dataset {dataset} has no field {f:?} in its data dictionary");
        }
    }
    let kind: Problem = req
        .kind
        .parse()
        .map_err(|e: String| anyhow!("--kind: {e}"))?;
    let report = QualityReport {
        iss: shared.did(),
        dataset,
        entry: latest.id,
        field: req.field.clone(),
        rows: req.rows.clone(),
        kind,
        evidence: req.evidence.trim().to_string(),
        issued: now(),
    };
    let signed = Signed::seal(&report, &shared.key).map_err(|e| anyhow!("quality report: {e}"))?;
    let resp = send(
        node,
        &publisher,
        &QualityRequest::Report {
            report: ByteBuf::from(signed.bytes.clone()),
        },
    )
    .await?;
    if let QualityResponse::Refused { reason } = resp {
        bail!("the publisher refused the report: {reason}");
    }
    let k = Kept {
        report: signed.bytes.clone(),
        answer: None,
    };
    put(shared, OUT_TREE, &signed.id, &k)?;
    audit::append(
        shared,
        AuditEvent::new(AuditKind::Other("quality".into()))
            .dataset(dataset)
            .peer(publisher)
            .detail(format!(
                "quality report {} sent ({:?})",
                hex::encode(signed.id),
                kind
            )),
    )
    .await?;
    info!(%dataset, report = %hex::encode(signed.id), "quality report sent");
    line(shared, "sent", &signed.id, &k)
}

/// Which versions of `dataset` resolve which report, from the entries every node has.
fn resolved_by(shared: &Shared, dataset: &DatasetId) -> Result<Vec<(String, EntryId)>> {
    let mut out = Vec::new();
    for v in shared.store.versions(dataset)? {
        for r in &v.entry.details.resolves {
            out.push((r.clone(), v.id));
        }
    }
    Ok(out)
}

fn line(shared: &Shared, direction: &'static str, id: &[u8; 32], k: &Kept) -> Result<ReportLine> {
    let r = Signed::<QualityReport>::decode(&k.report)
        .map_err(|e| anyhow!("corrupt kept report: {e}"))?
        .value;
    let answer = k
        .answer
        .as_deref()
        .and_then(|b| Signed::<QualityAnswer>::decode(b).ok())
        .map(|a| a.value);
    let hex_id = hex::encode(id);
    let fixed = resolved_by(shared, &r.dataset)?
        .into_iter()
        .find(|(rid, _)| rid == &hex_id)
        .map(|(_, e)| e);
    let status = if fixed.is_some() {
        Status::Fixed
    } else {
        answer.as_ref().map_or(Status::Open, |a| a.status)
    };
    Ok(ReportLine {
        id: hex_id,
        direction,
        dataset: r.dataset.to_string(),
        entry: r.entry.to_string(),
        field: r.field,
        rows: r.rows,
        kind: r.kind,
        evidence: r.evidence,
        reporter: r.iss.to_string(),
        status: status.as_str(),
        answer: answer.as_ref().map(|a| a.text.clone()),
        fixed_by: fixed
            .or_else(|| answer.and_then(|a| a.version))
            .map(|e| e.to_string()),
        issued: r.issued,
    })
}

/// Every report this node received or sent, newest first.
///
/// # Errors
///
/// Store I/O or a corrupt record.
pub fn reports(shared: &Shared) -> Result<Vec<ReportLine>> {
    let mut out = Vec::new();
    for (id, k) in kept(shared, IN_TREE)? {
        out.push(line(shared, "received", &id, &k)?);
    }
    for (id, k) in kept(shared, OUT_TREE)? {
        out.push(line(shared, "sent", &id, &k)?);
    }
    out.sort_by(|a, b| b.issued.cmp(&a.issued).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// The received report named by `text` (id or unique prefix).
fn find_in(shared: &Shared, text: &str) -> Result<([u8; 32], Kept)> {
    let text = text.trim().to_ascii_lowercase();
    if text.len() < 6 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("{text:?} is not a report id (at least 6 hex digits; see `cix quality reports`)");
    }
    let found: Vec<_> = kept(shared, IN_TREE)?
        .into_iter()
        .filter(|(id, _)| hex::encode(id).starts_with(&text))
        .collect();
    match found.len() {
        0 => bail!("no report {text:?} was received here (see `cix quality reports`)"),
        1 => Ok(found.into_iter().next().expect("one")),
        n => bail!("{n} reports start with {text:?}; give more digits"),
    }
}

/// The full ids of the received reports `texts` name, all about `dataset`: what a corrected
/// version may list in `details.resolves`.
///
/// # Errors
///
/// An unknown report, or one about another dataset.
pub fn resolvable(shared: &Shared, dataset: &DatasetId, texts: &[String]) -> Result<Vec<String>> {
    if texts.len() > limits::MAX_RESOLVED_REPORTS {
        bail!(
            "--resolves names at most {} reports",
            limits::MAX_RESOLVED_REPORTS
        );
    }
    let mut out = Vec::new();
    for t in texts {
        let (id, k) = find_in(shared, t)?;
        let r = Signed::<QualityReport>::decode(&k.report)
            .map_err(|e| anyhow!("corrupt kept report: {e}"))?;
        if &r.value.dataset != dataset {
            bail!(
                "report {} is about dataset {}, not {dataset}",
                hex::encode(id),
                r.value.dataset
            );
        }
        out.push(hex::encode(id));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

async fn sign_and_send(
    node: &Node,
    id: [u8; 32],
    mut k: Kept,
    status: Status,
    text: &str,
    version: Option<EntryId>,
) -> Result<ReportLine> {
    let shared = &node.shared;
    let r = Signed::<QualityReport>::decode(&k.report)
        .map_err(|e| anyhow!("corrupt kept report: {e}"))?
        .value;
    let a = QualityAnswer {
        iss: shared.did(),
        report: ByteBuf::from(id.to_vec()),
        status,
        text: text.trim().to_string(),
        version,
        at: now(),
    };
    let signed = Signed::seal(&a, &shared.key).map_err(|e| anyhow!("answer: {e}"))?;
    k.answer = Some(signed.bytes.clone());
    put(shared, IN_TREE, &id, &k)?;
    audit::append(
        shared,
        AuditEvent::new(AuditKind::Other("quality".into()))
            .dataset(r.dataset)
            .peer(r.iss)
            .detail(format!(
                "quality report {} answered: {}",
                hex::encode(id),
                status.as_str()
            )),
    )
    .await?;
    match send(
        node,
        &r.iss,
        &QualityRequest::Answer {
            answer: ByteBuf::from(signed.bytes),
        },
    )
    .await
    {
        Ok(QualityResponse::Noted) => debug!(report = %hex::encode(id), "answer delivered"),
        Ok(QualityResponse::Refused { reason }) => {
            warn!(report = %hex::encode(id), %reason, "the reporter refused the answer");
        }
        Err(e) => {
            warn!(report = %hex::encode(id), error = %format!("{e:#}"), "answer not delivered; the reporter sees a fix in the entry");
        }
    }
    line(shared, "received", &id, &k)
}

/// Answers a received report (accepted or rejected) and tells the reporter.
///
/// # Errors
///
/// An unknown report or status; delivery failures are logged, not errors.
pub async fn answer(node: &Node, req: &AnswerRequest) -> Result<ReportLine> {
    let status = match req.status.as_str() {
        "accepted" => Status::Accepted,
        "rejected" => Status::Rejected,
        other => bail!(
            "--status {other:?}: accepted or rejected (a fix is a new version: cix publish \
             --dataset D --resolves REPORT)"
        ),
    };
    if status == Status::Rejected && req.text.trim().is_empty() {
        bail!("a rejection says why: give --text");
    }
    let (id, k) = find_in(&node.shared, &req.report)?;
    sign_and_send(node, id, k, status, &req.text, None).await
}

/// After a corrected version is published: a `fixed` answer to each reporter.
pub async fn after_fix(node: &Node, resolves: &[String], version: EntryId) {
    for r in resolves {
        match find_in(&node.shared, r) {
            Ok((id, k)) => {
                if let Err(e) = sign_and_send(
                    node,
                    id,
                    k,
                    Status::Fixed,
                    "corrected in a new version",
                    Some(version),
                )
                .await
                {
                    warn!(report = %r, error = %format!("{e:#}"), "fixed answer not recorded");
                }
            }
            Err(e) => warn!(report = %r, error = %format!("{e:#}"), "resolved report not found"),
        }
    }
}

/// A dataset's quality as this node knows it (ISO 37156 9.3).
///
/// # Errors
///
/// An unknown dataset or store I/O.
pub fn measures(shared: &Shared, dataset: &str) -> Result<MeasuresLine> {
    let id = resolve_dataset(shared, dataset)?;
    let latest = shared
        .store
        .latest_entry(&id)?
        .ok_or_else(|| anyhow!("no entry of dataset {id} is known here"))?;
    let m = latest.entry.details.quality_measures;
    let resolved: Vec<String> = resolved_by(shared, &id)?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let open = reports(shared)?
        .into_iter()
        .filter(|l| l.dataset == id.to_string() && matches!(l.status, "open" | "accepted"))
        .count();
    Ok(MeasuresLine {
        dataset: id.to_string(),
        version: latest.entry.version,
        entry: latest.id.to_string(),
        statement: latest.entry.iso.quality.clone(),
        rows: m.map(|m| m.rows),
        completeness_permille: m.map(|m| m.completeness_permille()),
        validity_permille: m.map(|m| m.validity_permille()),
        open_reports: open,
        resolved_reports: resolved,
    })
}

async fn serve_one(shared: &Shared, peer: &PeerId, req: QualityRequest) -> QualityResponse {
    let refuse = |reason: String| {
        warn!(%peer, %reason, "quality message refused");
        QualityResponse::Refused { reason }
    };
    let Some(sender) = did_of_peer(peer) else {
        return refuse("the connected peer has no ed25519 identity".into());
    };
    match req {
        QualityRequest::Report { report } => {
            let s = match Signed::<QualityReport>::decode(&report) {
                Ok(s) => s,
                Err(e) => return refuse(format!("quality report: {e}")),
            };
            if s.value.iss != sender {
                return refuse("the report is not signed by the connected peer".into());
            }
            match shared.store.own(&s.value.dataset) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return refuse(format!("dataset {} is not published here", s.value.dataset))
                }
                Err(e) => return refuse(format!("store: {e}")),
            }
            let from_peer = kept(shared, IN_TREE)
                .map(|all| {
                    all.iter()
                        .filter(|(_, k)| {
                            Signed::<QualityReport>::decode(&k.report)
                                .is_ok_and(|r| r.value.iss == sender)
                        })
                        .count()
                })
                .unwrap_or(usize::MAX);
            if from_peer >= MAX_REPORTS_PER_PEER {
                return refuse(format!(
                    "at most {MAX_REPORTS_PER_PEER} reports are kept per agency"
                ));
            }
            let k = Kept {
                report: s.bytes.clone(),
                answer: None,
            };
            if let Err(e) = put(shared, IN_TREE, &s.id, &k) {
                tracing::error!(error = %format!("{e:#}"), "cannot keep a quality report");
                return QualityResponse::Refused {
                    reason: "the publisher could not keep the report".into(),
                };
            }
            audit::log(
                shared,
                AuditEvent::new(AuditKind::Other("quality".into()))
                    .dataset(s.value.dataset)
                    .peer(sender)
                    .detail(format!("quality report {} received", hex::encode(s.id))),
            )
            .await;
            info!(dataset = %s.value.dataset, report = %hex::encode(s.id), "quality report received");
            QualityResponse::Noted
        }
        QualityRequest::Answer { answer } => {
            let a = match Signed::<QualityAnswer>::decode(&answer) {
                Ok(a) => a,
                Err(e) => return refuse(format!("answer: {e}")),
            };
            if a.value.iss != sender {
                return refuse("the answer is not signed by the connected peer".into());
            }
            let Ok(id) = <[u8; 32]>::try_from(a.value.report.as_ref()) else {
                return refuse("bad report id".into());
            };
            let mine = kept(shared, OUT_TREE).unwrap_or_default();
            let Some((_, mut k)) = mine.into_iter().find(|(i, _)| *i == id) else {
                return refuse("no such report was sent from here".into());
            };
            let publisher = Signed::<QualityReport>::decode(&k.report)
                .ok()
                .and_then(|r| shared.store.latest_entry(&r.value.dataset).ok().flatten())
                .map(|e| e.entry.iss);
            if publisher != Some(sender) {
                return refuse("only the dataset's publisher answers its reports".into());
            }
            k.answer = Some(a.bytes.clone());
            if let Err(e) = put(shared, OUT_TREE, &id, &k) {
                tracing::error!(error = %format!("{e:#}"), "cannot keep an answer");
            }
            audit::log(
                shared,
                AuditEvent::new(AuditKind::Other("quality".into()))
                    .peer(sender)
                    .detail(format!(
                        "answer to quality report {}: {}",
                        hex::encode(id),
                        a.value.status.as_str()
                    )),
            )
            .await;
            QualityResponse::Noted
        }
    }
}

/// Starts serving `/cix/quality/1`; ends when the node stops.
///
/// # Errors
///
/// If the protocol is already registered.
pub fn spawn(node: Node) -> Result<tokio::task::JoinHandle<()>> {
    EXCHANGE.serve(node, |node: Node, peer, req: QualityRequest| async move {
        serve_one(&node.shared, &peer, req).await
    })
}
