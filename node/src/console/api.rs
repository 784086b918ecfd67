//! The console's JSON API: the same node functions the admin API calls, behind a session.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::limits::{MAX_AUDIT_LISTED, MAX_MAP_BYTES, MAX_MAP_SHAPE_BYTES};
use super::{audit_change, Actor, Console, Refusal, Role};
use crate::node::NodeEvent;

type Answer = Result<Json<Value>, Refusal>;

pub(super) fn routes() -> Router<Console> {
    Router::new()
        .route("/console/api/status", get(status))
        .route("/console/api/peers", get(peers))
        .route("/console/api/catalogue", get(catalogue))
        .route("/console/api/search", get(search))
        .route("/console/api/datasets/{id}", get(dataset))
        .route("/console/api/map", get(map))
        .route("/console/api/requests", get(requests))
        .route("/console/api/requests/{id}/approve", post(approve))
        .route("/console/api/requests/{id}/deny", post(deny))
        .route("/console/api/transfers", get(transfers))
        .route("/console/api/audit", get(audit))
        .route("/console/api/audit/verify", get(audit_verify))
        .route("/console/api/audit/note", post(audit_note))
        .route("/console/api/revocations", get(revocations))
        .route("/console/api/revoke", post(revoke))
        .route("/console/api/events", get(events))
}

fn to_value<T: serde::Serialize>(t: &T) -> Result<Value, Refusal> {
    serde_json::to_value(t).map_err(|e| {
        tracing::error!(error = %e, "console answer does not serialise");
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    })
}

async fn status(State(c): State<Console>) -> Answer {
    let mut v = crate::admin::status_value(&c.node).await?;
    v["health"] = to_value(&crate::ops::health(&c.node))?;
    v["audit_records"] = json!(c.node.shared.audit.len());
    Ok(Json(v))
}

/// The peers, as `cix peers --all` lists them. A peer's jurisdiction comes from its signed
/// profile, which this node keeps once the peer has sent it; connected peers not known yet are
/// asked for it here, at most `MAX_PROFILES_ASKED` at once and briefly, so that the page
/// shows it (the once-a-second live view does not ask).
async fn peers(State(c): State<Console>) -> Answer {
    let list = crate::ops::peers_with_profiles(&c.node, true).await?;
    Ok(Json(to_value(&list)?))
}

async fn catalogue(State(c): State<Console>) -> Answer {
    let mut lines: Vec<crate::admin::CatalogueLine> = c
        .node
        .shared
        .store
        .catalogue()?
        .iter()
        .map(|e| crate::admin::line(&c.node, e))
        .collect();
    lines.sort_by(|a, b| a.title.cmp(&b.title));
    Ok(Json(to_value(&lines)?))
}

async fn search(
    State(c): State<Console>,
    pairs: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let pairs =
        pairs.map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("unreadable query: {e}")))?;
    let query = crate::search::Query::from_pairs(&pairs.0).map_err(|e| {
        tracing::warn!(error = %e, "console search query refused");
        Refusal(StatusCode::BAD_REQUEST, format!("search {e}"))
    })?;
    let index = c.node.shared.search.clone();
    let results = tokio::task::spawn_blocking(move || index.search(&query))
        .await
        .map_err(|e| anyhow::anyhow!("search task failed: {e}"))?;
    Ok(Json(to_value(&results)?))
}

/// A dataset's page: its entry (with the data dictionary, ISO 37156 5.4), versions (4.2 g),
/// quality (9.3) and the grants this node issued or holds for it (5.5.3).
async fn dataset(State(c): State<Console>, Path(id): Path<String>) -> Answer {
    let s = &c.node.shared;
    let entry = crate::transfer::resolve(s, &id)?.ok_or_else(|| {
        Refusal(
            StatusCode::NOT_FOUND,
            format!("no dataset {id:?} in this node's catalogue"),
        )
    })?;
    let dataset = entry.entry.dataset.to_string();
    let versions = crate::withdraw::history(s, &dataset)
        .ok()
        .map(|h| to_value(&h))
        .transpose()?;
    let quality = crate::quality::measures(s, &dataset)
        .ok()
        .map(|q| to_value(&q))
        .transpose()?;
    let grants: Vec<crate::tokens::TokenLine> = crate::tokens::list(s)?
        .into_iter()
        .filter(|t| t.dataset.as_deref() == Some(dataset.as_str()))
        .collect();
    Ok(Json(json!({
        "entry": to_value(&crate::admin::line(&c.node, &entry))?,
        "record": to_value(&entry.entry)?,
        "versions": versions,
        "quality": quality,
        "grants": to_value(&grants)?,
    })))
}

/// Reads an own dataset's file as a shape when it is GeoJSON or TopoJSON.
fn shape_of(
    s: &crate::node::Shared,
    content: &cix_protocol::content::ContentHash,
    bytes: u64,
) -> Option<Value> {
    if bytes > MAX_MAP_SHAPE_BYTES {
        return None;
    }
    let path = s.home.blobs().join(content.to_hex());
    let raw = std::fs::read(&path).ok()?;
    if raw.len() as u64 > MAX_MAP_SHAPE_BYTES {
        return None;
    }
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let kind = v.get("type")?.as_str()?;
    matches!(
        kind,
        "Topology"
            | "FeatureCollection"
            | "Feature"
            | "Polygon"
            | "MultiPolygon"
            | "LineString"
            | "MultiLineString"
            | "Point"
            | "MultiPoint"
            | "GeometryCollection"
    )
    .then_some(v)
}

/// Every dataset known with its coverage (ISO 37156 4.2 f bounding box, 4.2 g time), and the
/// shapes of the node's own GeoJSON and TopoJSON datasets, the map's base layer.
async fn map(State(c): State<Console>) -> Answer {
    let node = c.node.clone();
    let out = tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
        let s = &node.shared;
        let own: std::collections::HashMap<_, _> = s
            .store
            .own_all()?
            .into_iter()
            .map(|o| (o.dataset, o))
            .collect();
        let mut total = 0u64;
        let mut items = Vec::new();
        for e in s.store.catalogue()? {
            let line = crate::admin::line(&node, &e);
            let bbox = e.entry.spatial.as_ref().and_then(|sp| sp.bbox).map(|b| {
                let deg = |v: i64| v as f64 / 1e7;
                [deg(b.west), deg(b.south), deg(b.east), deg(b.north)]
            });
            let shape = own.get(&e.entry.dataset).and_then(|o| {
                (total + o.bytes <= MAX_MAP_BYTES)
                    .then(|| shape_of(s, &o.content, o.bytes))
                    .flatten()
                    .inspect(|_| total += o.bytes)
            });
            if bbox.is_none() && shape.is_none() {
                continue;
            }
            items.push(json!({
                "dataset": line.dataset, "title": line.title, "domain": line.domain,
                "spectrum": line.spectrum, "publisher": line.publisher,
                "data_type": line.data_type, "modified": line.modified,
                "temporal": e.entry.temporal, "place": e.entry.spatial.as_ref().and_then(|sp| sp.name.clone()),
                "bbox": bbox, "shape": shape, "local": line.local,
            }));
        }
        Ok(json!({ "datasets": items }))
    })
    .await
    .map_err(|e| anyhow::anyhow!("map task failed: {e}"))??;
    Ok(Json(out))
}

async fn requests(State(c): State<Console>) -> Answer {
    requests_value(&c).map(Json)
}

/// The request queue as the admin API gives it, each incoming request with the requester's
/// agency name and jurisdiction from the signed profile it sent (ISO 37156 5.5.3: the approver
/// decides knowing who asks).
fn requests_value(c: &Console) -> Result<Value, Refusal> {
    let mut v = crate::admin::requests_value(&c.node)?;
    if let Some(incoming) = v["incoming"].as_array_mut() {
        for r in incoming {
            if let Some(p) = r["requester"].as_str().and_then(|d| agency_of(c, d)) {
                r["requester_agency"] = json!(p.name);
                r["requester_jurisdiction"] = json!(p.jurisdiction);
            }
        }
    }
    Ok(v)
}

async fn approve(
    State(c): State<Console>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Answer {
    actor.require(Role::Approver)?;
    let r = crate::access::approve(&c.node.shared, &id)?;
    audit_change(
        &c,
        &actor,
        &format!("request {} approved", r.id),
        Some(r.dataset),
        Some(r.requester),
    )
    .await;
    Ok(Json(json!({
        "request": r.id, "dataset": r.dataset.to_string(), "state": "approved",
        "requester": r.requester.to_string(), "by": actor.who.label(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DenyBody {
    reason: String,
}

async fn deny(
    State(c): State<Console>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Json(body): Json<DenyBody>,
) -> Answer {
    actor.require(Role::Approver)?;
    if body.reason.trim().is_empty() {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "a denial needs a reason".into(),
        ));
    }
    let r = crate::access::deny_request(&c.node.shared, &id, &body.reason)?;
    audit_change(
        &c,
        &actor,
        &format!("request {} denied", r.id),
        Some(r.dataset),
        Some(r.requester),
    )
    .await;
    Ok(Json(json!({
        "request": r.id, "dataset": r.dataset.to_string(), "state": "denied",
        "reason": body.reason, "by": actor.who.label(),
    })))
}

/// Running and interrupted transfers, and the receipts of finished ones (ISO 37156 8.3.4).
async fn transfers(State(c): State<Console>) -> Answer {
    transfers_value(&c).map(Json)
}

/// The signed agency profile this node kept for `did` (sent with its requests), if any.
fn agency_of(c: &Console, did: &str) -> Option<cix_protocol::profile::Profile> {
    let did = did.parse::<cix_protocol::identity::Did>().ok()?;
    crate::rules::kept_profile(&c.node.shared, &did)
}

/// Running transfers, and receipts newest first, each with its dataset's title when this node
/// knows the entry and the other side's agency name when it knows its profile.
fn transfers_value(c: &Console) -> Result<Value, Refusal> {
    let s = &c.node.shared;
    let mut receipts = Vec::new();
    for r in crate::receipts::list(s)?.into_iter().rev() {
        let title = r
            .dataset
            .parse::<cix_protocol::catalogue::DatasetId>()
            .ok()
            .and_then(|d| s.store.latest_entry(&d).ok().flatten())
            .map(|e| e.entry.title);
        let other = if r.role == "provider" {
            &r.receiver
        } else {
            &r.provider
        };
        let agency = agency_of(c, other).map(|p| p.name);
        let mut v = to_value(&r)?;
        v["title"] = json!(title);
        v["counterparty_agency"] = json!(agency);
        receipts.push(v);
    }
    Ok(json!({
        "transfers": to_value(&crate::transfer::transfers(s)?)?,
        "receipts": receipts,
    }))
}

#[derive(Deserialize)]
struct AuditQuery {
    kind: Option<String>,
    limit: Option<usize>,
}

async fn audit(State(c): State<Console>, Query(q): Query<AuditQuery>) -> Answer {
    let filter = crate::audit::Filter {
        kind: q
            .kind
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(str::parse)
            .transpose()
            .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("kind: {e}")))?,
        limit: Some(q.limit.unwrap_or(200).min(MAX_AUDIT_LISTED)),
        ..crate::audit::Filter::default()
    };
    let mut records = c.node.shared.audit.list(&filter)?;
    records.reverse();
    Ok(Json(json!({
        "did": c.node.did().to_string(),
        "total": c.node.shared.audit.len(),
        "records": to_value(&records)?,
    })))
}

/// Checks the whole log as `cix audit verify` does (ISO 37156 8.3.4): each record's signature
/// and its link to the one before.
async fn audit_verify(State(c): State<Console>) -> Answer {
    let node = c.node.clone();
    let out = tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
        let log = &node.shared.audit;
        let did = log.did();
        let records = log.raw_range(None, None)?;
        let verdict = cix_protocol::audit::verify_chain(
            records.iter().map(|(_, b)| b.as_slice()),
            Some(&did),
        );
        Ok(match verdict {
            Ok(sum) => json!({
                "ok": true, "records": sum.records,
                "head": sum.last.map(|(seq, h)| json!({ "seq": seq, "hash": h.to_hex() })),
            }),
            Err(e) => {
                tracing::error!(error = %e, "the node's own audit log does not verify");
                json!({ "ok": false, "error": e.to_string() })
            }
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("verify task failed: {e}"))??;
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    detail: String,
}

async fn audit_note(
    State(c): State<Console>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<NoteBody>,
) -> Answer {
    actor.require(Role::Admin)?;
    let max = cix_protocol::limits::MAX_AUDIT_DETAIL_BYTES.saturating_sub(200);
    if body.detail.trim().is_empty() || body.detail.len() > max {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("a note is 1 to {max} bytes"),
        ));
    }
    audit_change(&c, &actor, &format!("note: {}", body.detail), None, None).await;
    Ok(Json(json!({ "noted": true })))
}

async fn revocations(State(c): State<Console>) -> Answer {
    Ok(Json(to_value(&crate::revoke::list(&c.node.shared)?)?))
}

async fn revoke(
    State(c): State<Console>,
    Extension(actor): Extension<Actor>,
    Json(req): Json<crate::revoke::RevokeRequest>,
) -> Answer {
    actor.require(Role::Admin)?;
    let line = crate::revoke::revoke(&c.node, &req).await?;
    audit_change(
        &c,
        &actor,
        &format!("delegation {} revoked", line.revoked),
        None,
        None,
    )
    .await;
    Ok(Json(to_value(&line)?))
}

/// The SSE topic a node event belongs to.
fn topic(e: &NodeEvent) -> Option<&'static str> {
    Some(match e {
        NodeEvent::PeerBanned { .. }
        | NodeEvent::PeerConnected { .. }
        | NodeEvent::PeerIdentified { .. }
        | NodeEvent::PeerSubscribed { .. } => "peers",
        NodeEvent::RequestQueued { .. } => "requests",
        NodeEvent::EntryAccepted { .. }
        | NodeEvent::EntryAnnounced { .. }
        | NodeEvent::WithdrawalAccepted { .. } => "catalogue",
        NodeEvent::RevocationAccepted { .. } => "revocations",
        NodeEvent::ReceiptCountersigned { .. } => "transfers",
        _ => return None,
    })
}

/// Live updates: node events by topic as they happen, and once a second `transfers` (with
/// the transfers' progress), `requests` and `peers` whenever what they show changed. The
/// stream ends when the session does.
async fn events(
    State(c): State<Console>,
    Extension(actor): Extension<Actor>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, Refusal> {
    let permit = c.streams.clone().try_acquire_owned().map_err(|_| {
        tracing::warn!("console: too many event streams open");
        Refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "too many live update streams are open".into(),
        )
    })?;
    let mut rx = c.node.events();
    let (tx, out) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let _permit = permit;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut seen: [Option<blake3::Hash>; 3] = [None, None, None];
        loop {
            let event = tokio::select! {
                () = tx.closed() => break,
                got = rx.recv() => match got {
                    Ok(e) => match topic(&e) {
                        Some(t) => Event::default().event(t).data(serde_json::to_string(&e).unwrap_or_default()),
                        None => continue,
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => {
                    if !super::still_valid(&c, &actor.sid) {
                        let _ = tx.send(Event::default().event("ended").data("{}")).await;
                        break;
                    }
                    let views = [
                        ("transfers", transfers_value(&c).ok()),
                        ("requests", requests_value(&c).ok()),
                        ("peers", crate::ops::peers(&c.node, true).await.ok().and_then(|p| serde_json::to_value(p).ok())),
                    ];
                    for (i, (name, value)) in views.into_iter().enumerate() {
                        let Some(value) = value else { continue };
                        let text = value.to_string();
                        let h = blake3::hash(text.as_bytes());
                        if seen[i] != Some(h) {
                            seen[i] = Some(h);
                            if tx.send(Event::default().event(name).data(text)).await.is_err() {
                                return;
                            }
                        }
                    }
                    continue;
                }
            };
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    let stream = futures::stream::unfold(out, |mut out| async move {
        out.recv().await.map(|e| (Ok::<_, Infallible>(e), out))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
