//! The admin API: HTTP on a loopback address, guarded by the bearer token in
//! `HOME/admin.token` (owner-only). The `cix` command line is its client.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/status` | identity, addresses, counts, counters |
//! | `GET /v1/peers?all=BOOL` | [`crate::ops::PeerView`] of each connected peer (with `all`, also bootstrap peers not connected) |
//! | `POST /v1/dial` | `{"addr"}`: dial a peer |
//! | `POST /v1/publish` | [`PublishRequest`]: publish a file |
//! | `GET /v1/catalogue` | one [`CatalogueLine`] per dataset known |
//! | `GET /v1/catalogue/{id}` | the full entry |
//! | `POST /v1/catalogue/import` | [`crate::import::ImportRequest`]: sign and announce confirmed drafts; one [`crate::import::ImportOutcome`] per record |
//! | `GET /v1/catalogue/export?format=F` | [`crate::import::Exported`]: this node's own non-closed datasets as `dcat-ap-jsonld`, `dcat-ap-turtle` or `data-json` |
//! | `GET /v1/catalogue/{id}/history` | [`withdraw::History`]: every version and withdrawal known |
//! | `POST /v1/withdraw` | [`withdraw::WithdrawRequest`]: withdraw an own dataset, gossip it |
//! | `GET /v1/search?q=...&domain=...` | [`crate::search::Results`]: ranked search of the catalogue (parameters in [`crate::search::Query::from_pairs`]) |
//! | `POST /v1/request` | `{"dataset","purpose","accept_terms","attestations"}`: ask the owner for access (attestations in hex) |
//! | `POST /v1/attest` | [`attest::AttestRequest`]: sign a group membership attestation as a registrar |
//! | `GET /v1/requests` | the operator's queue and this node's own requests |
//! | `POST /v1/requests/{id}/approve` | approve a queued request |
//! | `POST /v1/requests/{id}/deny` | `{"reason"}`: deny it |
//! | `POST /v1/fetch` | `{"dataset","output","from"?}`: JSON Lines of progress, then the result |
//! | `GET /v1/transfers` | running and interrupted transfers |
//! | `GET /metrics` | Prometheus metrics, OpenMetrics text format ([`crate::metrics`]) |
//! | `GET /health` | [`crate::ops::Health`]; the only route that needs no token |
//! | `GET /v1/peers/{id}` | one [`crate::ops::PeerView`] by PeerId, did:key or PeerId prefix |
//! | `GET /v1/doctor` | [`crate::ops::NodeChecks`]: clock skew against peers, store integrity |
//! | `POST /v1/grant` | [`tokens::GrantRequest`]: delegate an own dataset directly (optionally only some `fields`) |
//! | `POST /v1/delegate` | [`tokens::DelegateRequest`]: pass a received delegation on |
//! | `POST /v1/tokens/import` | [`tokens::ImportRequest`]: keep a chain addressed to this node |
//! | `GET /v1/tokens` | one [`tokens::TokenLine`] per delegation issued or received |
//! | `POST /v1/revoke` | [`crate::revoke::RevokeRequest`]: revoke a delegation, gossip it |
//! | `GET /v1/revocations` | one [`crate::revoke::RevocationLine`] per revocation known |
//! | `GET /v1/audit?kind=&dataset=&peer=&since=&until=&limit=` | one [`crate::audit::Listed`] per matching audit record, oldest first |
//! | `GET /v1/audit/export?from=&to=` | `{"did","records":[hex...]}`: the signed records verbatim |
//! | `POST /v1/audit/note` | `{"detail"}`: append an operator's `note` record; `{"seq"}` once durable |
//! | `POST /v1/audit/witness` | [`crate::witness::Exchange`]: send the log head to every connected peer now |
//! | `GET /v1/audit/witnesses?subject=DID` | [`crate::witness::Gathered`]: heads of that node's log (default this one) that peers and this node vouch for |
//! | `GET /v1/receipts` | one [`crate::receipts::ReceiptLine`] per receipt kept (either role) |
//! | `GET /v1/receipts/{id}` | one receipt with its `bundle` (hex) |
//! | `POST /v1/receipts/verify` | `{"id"}` or `{"bundle"}` (hex): a [`crate::receipts::Verdict`] |
//! | `GET /v1/deletions` | one [`crate::receipts::DeletionLine`] per deletion notice kept |
//! | `GET /v1/retention` | data held under a retention period ([`crate::receipts::Held`]) |
//! | `GET /v1/privacy/notice?peer=P` | [`crate::privacy::NoticeLine`]: this node's notice, or peer P's |
//!
//! Errors are `{"error": "..."}` with a 4xx or 5xx status.
//!
//! TESTNET ONLY: with [`Options::testnet_faults`] (`cix node run --testnet-faults`, a hidden
//! flag for `cix-testnet`), also `PUT /v1/testnet/blocked` and `PUT /v1/testnet/delays`
//! ([`crate::testnet_faults`]); without it those paths do not exist.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::access;
use crate::attest;
use crate::node::Node;
use crate::publish::{self, PublishRequest};
use crate::store::Decision;
use crate::tokens;
use crate::transfer;
use crate::withdraw;

/// One line of `cix catalogue list --json`.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogueLine {
    /// Dataset id.
    pub dataset: String,
    /// Title.
    pub title: String,
    /// Publisher's name.
    pub publisher: String,
    /// Publisher's did:key.
    pub publisher_did: String,
    /// open, shared-public, shared-group, shared-named or closed.
    pub spectrum: String,
    /// BLAKE3 hex of the bytes (what `b3sum` prints).
    pub content_hash: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Media type.
    pub media_type: String,
    /// Entry id.
    pub entry: String,
    /// Version.
    pub version: u64,
    /// Infrastructure domain.
    pub domain: String,
    /// ISO 37156 5.2 data type.
    pub data_type: String,
    /// Last modified.
    pub modified: String,
    /// Published by this node.
    pub local: bool,
}

mod emergency;
mod requests;
mod rights;
mod testnet;
mod users;

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError(StatusCode::BAD_REQUEST, format!("{e:#}"))
    }
}

type ApiResult<T> = std::result::Result<Json<T>, ApiError>;

#[derive(Clone)]
struct Api {
    node: Node,
    token: String,
}

/// What the admin API serves beyond its ordinary routes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// TESTNET ONLY: serve the fault endpoints of [`crate::testnet_faults`] (loopback only).
    pub testnet_faults: bool,
}

/// Binds the admin API and serves it in the background; returns the bound address.
///
/// # Errors
///
/// If the address is not loopback or cannot be bound.
pub async fn serve(node: Node, addr: SocketAddr, token: String) -> Result<SocketAddr> {
    serve_with(node, addr, token, Options::default()).await
}

/// As [`serve`], with `options`.
///
/// # Errors
///
/// As [`serve`], and if `options` asks for the testnet's fault endpoints on an address that is
/// not loopback.
pub async fn serve_with(
    node: Node,
    addr: SocketAddr,
    token: String,
    options: Options,
) -> Result<SocketAddr> {
    let remote = !addr.ip().is_loopback();
    anyhow::ensure!(
        !remote || node.shared.config.admin_behind_tls,
        "the admin API only listens on loopback, not {addr}, unless admin_behind_tls = true"
    );
    anyhow::ensure!(
        !(remote && options.testnet_faults),
        "--testnet-faults serves its endpoints on a loopback admin address only, not {addr}"
    );
    if remote {
        tracing::warn!(%addr, "the admin API and web console listen beyond loopback: \
            only safe behind a TLS proxy (admin_behind_tls = true); console cookies are Secure");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the admin API to {addr}"))?;
    let bound = listener.local_addr()?;
    let api = Api { node, token };
    let mut app = Router::new();
    if options.testnet_faults {
        tracing::warn!(%bound, "TESTNET ONLY: fault endpoints on (/v1/testnet/...)");
        app = app.merge(testnet::routes());
    }
    let app = app
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/dial", post(dial))
        .route("/v1/publish", post(publish_file))
        .route("/v1/catalogue", get(catalogue))
        .route("/v1/catalogue/import", post(catalogue_import))
        .route("/v1/catalogue/export", get(catalogue_export))
        .route("/v1/catalogue/{id}", get(catalogue_show))
        .route("/v1/search", get(search))
        .route("/v1/request", post(request))
        .route("/v1/requests", get(requests))
        .route("/v1/requests/{id}/approve", post(approve))
        .route("/v1/requests/{id}/deny", post(deny))
        .route("/v1/fetch", post(fetch))
        .route("/v1/transfers", get(transfers))
        .route("/metrics", get(metrics))
        .route("/v1/grant", post(token_grant))
        .route("/v1/delegate", post(token_delegate))
        .route("/v1/tokens/import", post(token_import))
        .route("/v1/tokens", get(token_list))
        .route("/v1/revoke", post(revoke))
        .route("/v1/revocations", get(revocations))
        .route("/v1/attest", post(attest_member))
        .route("/v1/catalogue/{id}/history", get(catalogue_history))
        .route("/v1/withdraw", post(withdraw_dataset))
        .route("/v1/audit", get(audit_list))
        .route("/v1/audit/export", get(audit_export))
        .route("/v1/audit/note", post(audit_note))
        .route("/v1/audit/witness", post(audit_witness))
        .route("/v1/audit/witnesses", get(audit_witnesses))
        .route("/v1/receipts", get(receipts_list))
        .route("/v1/receipts/verify", post(receipts_verify))
        .route("/v1/receipts/{id}", get(receipts_show))
        .route("/v1/deletions", get(deletions_list))
        .route("/v1/retention", get(retention_list))
        .route("/v1/privacy/notice", get(privacy_notice))
        .route("/v1/peers/{id}", get(peer_show))
        .route("/v1/doctor", get(doctor))
        .merge(rights::routes())
        .merge(emergency::routes())
        .merge(requests::routes())
        .merge(users::routes())
        .layer(middleware::from_fn_with_state(api.clone(), authorise))
        // Added after the token check, so a supervisor polls it without the token.
        .route("/health", get(health))
        .with_state(api.clone())
        // The web console logs in by itself (sessions, not the bearer token).
        .merge(crate::console::routes(
            api.node,
            api.token,
            crate::console::Settings::for_listener(remote),
        ));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    Ok(bound)
}

async fn authorise(State(api): State<Api>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare in constant time: the token is a secret.
    let ok = !api.token.is_empty()
        && given.len() == api.token.len()
        && given
            .bytes()
            .zip(api.token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !ok {
        tracing::warn!("admin API request with a missing or wrong token");
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token (it is in HOME/admin.token)".into(),
        )
        .into_response();
    }
    next.run(req).await
}

async fn status(State(api): State<Api>) -> ApiResult<Value> {
    Ok(Json(status_value(&api.node).await?))
}

/// What `GET /v1/status` answers (the console's status page shows it too).
pub(crate) async fn status_value(node: &Node) -> Result<Value> {
    let s = &node.shared;
    let peers = node.peers().await?;
    let listening: Vec<String> = node
        .listening()
        .await?
        .iter()
        .map(|a| a.to_string())
        .collect();
    let catalogue = s.store.catalogue()?;
    let own = s.store.own_all()?;
    let pending = s
        .store
        .requests_in()?
        .iter()
        .filter(|r| r.decision == Decision::Pending)
        .count();
    Ok(json!({
        "name": s.config.name,
        "jurisdiction": s.config.jurisdiction,
        "did": s.did().to_string(),
        "peer_id": node.peer_id().to_string(),
        "listen": listening,
        "peers": peers.len(),
        "catalogue": catalogue.len(),
        "own_datasets": own.len(),
        "pending_requests": pending,
        "revocations": s.store.revocation_count(),
        "counters": s.stats.snapshot(),
        "sizes": crate::metrics::sizes(&s.store, &s.audit, &s.home),
        "uptime_secs": s.metrics.uptime_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(Deserialize)]
struct PeersQuery {
    #[serde(default)]
    all: bool,
}

async fn peers(
    State(api): State<Api>,
    axum::extract::Query(q): axum::extract::Query<PeersQuery>,
) -> ApiResult<Vec<crate::ops::PeerView>> {
    Ok(Json(
        crate::ops::peers_with_profiles(&api.node, q.all).await?,
    ))
}

async fn peer_show(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<crate::ops::PeerView> {
    crate::ops::peer(&api.node, &id)
        .await
        .map(Json)
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, format!("{e:#}")))
}

async fn doctor(State(api): State<Api>) -> ApiResult<crate::ops::NodeChecks> {
    Ok(Json(crate::ops::doctor(&api.node).await?))
}

async fn health(State(api): State<Api>) -> Json<crate::ops::Health> {
    Json(crate::ops::health(&api.node))
}

#[derive(Deserialize)]
struct DialBody {
    addr: String,
}

async fn dial(State(api): State<Api>, Json(body): Json<DialBody>) -> ApiResult<Value> {
    let addr = body
        .addr
        .parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("not a multiaddr: {e}")))?;
    api.node.dial(addr).await?;
    Ok(Json(json!({ "dialing": body.addr })))
}

async fn publish_file(
    State(api): State<Api>,
    Json(req): Json<PublishRequest>,
) -> ApiResult<publish::Published> {
    Ok(Json(publish::publish(&api.node, req).await?))
}

pub(crate) fn line(node: &Node, e: &cix_protocol::catalogue::SignedEntry) -> CatalogueLine {
    let held = e.entry.held().ok();
    let d = held.map(|(d, _, _)| d).or(e.entry.primary());
    CatalogueLine {
        dataset: e.entry.dataset.to_string(),
        title: e.entry.title.clone(),
        publisher: e.entry.publisher.name.clone(),
        publisher_did: e.entry.iss.to_string(),
        spectrum: e.entry.level().to_string(),
        content_hash: held.map(|(_, c, _)| c.to_hex()).unwrap_or_default(),
        bytes: held.map(|(_, _, n)| n).unwrap_or(0),
        media_type: d.map(|d| d.media_type.clone()).unwrap_or_default(),
        entry: e.id.to_string(),
        version: e.entry.version,
        domain: e.entry.iso.domain.to_string(),
        data_type: e.entry.iso.data_type.to_string(),
        modified: e.entry.modified.clone(),
        local: e.entry.iss == node.did(),
    }
}

async fn catalogue(State(api): State<Api>) -> ApiResult<Vec<CatalogueLine>> {
    let mut lines: Vec<CatalogueLine> = api
        .node
        .shared
        .store
        .catalogue()?
        .iter()
        .map(|e| line(&api.node, e))
        .collect();
    lines.sort_by(|a, b| a.publisher.cmp(&b.publisher).then(a.title.cmp(&b.title)));
    Ok(Json(lines))
}

async fn catalogue_import(
    State(api): State<Api>,
    Json(req): Json<crate::import::ImportRequest>,
) -> ApiResult<Vec<crate::import::ImportOutcome>> {
    Ok(Json(crate::import::import(&api.node, req).await?))
}

#[derive(Deserialize)]
struct ExportQuery {
    format: String,
}

async fn catalogue_export(
    State(api): State<Api>,
    axum::extract::Query(q): axum::extract::Query<ExportQuery>,
) -> ApiResult<crate::import::Exported> {
    Ok(Json(crate::import::export(&api.node, &q.format)?))
}

async fn catalogue_show(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Value> {
    let entry = transfer::resolve(&api.node.shared, &id)?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no dataset {id:?} in this node's catalogue"),
        )
    })?;
    let mut v = serde_json::to_value(line(&api.node, &entry)).map_err(anyhow::Error::from)?;
    v["record"] = serde_json::to_value(&entry.entry).map_err(anyhow::Error::from)?;
    Ok(Json(v))
}

async fn search(
    State(api): State<Api>,
    pairs: std::result::Result<
        axum::extract::Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> ApiResult<crate::search::Results> {
    let pairs = pairs.map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("unreadable search query: {e}"),
        )
    })?;
    let query = crate::search::Query::from_pairs(&pairs.0).map_err(|e| {
        tracing::warn!(error = %e, "search query refused");
        ApiError(StatusCode::BAD_REQUEST, format!("search {e}"))
    })?;
    let index = api.node.shared.search.clone();
    let results = tokio::task::spawn_blocking(move || index.search(&query))
        .await
        .map_err(|e| anyhow::anyhow!("search task failed: {e}"))?;
    tracing::debug!(total = results.total, "search");
    Ok(Json(results))
}

#[derive(Deserialize)]
struct RequestBody {
    dataset: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    accept_terms: bool,
    /// Signed membership attestations, hex.
    #[serde(default)]
    attestations: Vec<String>,
}

async fn request(
    State(api): State<Api>,
    Json(body): Json<RequestBody>,
) -> ApiResult<access::RequestOutcome> {
    if body.purpose.trim().is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a purpose is required (--purpose TEXT)".into(),
        ));
    }
    let entry = transfer::resolve(&api.node.shared, &body.dataset)?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no dataset {:?} in this node's catalogue (see `cix catalogue list`)",
                body.dataset
            ),
        )
    })?;
    let attestations = body
        .attestations
        .iter()
        .enumerate()
        .map(|(i, h)| {
            hex::decode(h.trim()).map_err(|e| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("attestation {} is not hex: {e}", i + 1),
                )
            })
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let out = access::request_with(
        &api.node,
        entry.entry.dataset,
        &body.purpose,
        body.accept_terms,
        &attestations,
    )
    .await?;
    Ok(Json(out))
}

async fn requests(State(api): State<Api>) -> ApiResult<Value> {
    Ok(Json(requests_value(&api.node)?))
}

/// What `GET /v1/requests` answers (the console's request queue shows it too).
pub(crate) fn requests_value(node: &Node) -> Result<Value> {
    let s = &node.shared;
    let incoming: Vec<Value> = s
        .store
        .requests_in()?
        .into_iter()
        .map(|r| {
            let (state, reason) = match &r.decision {
                Decision::Pending => ("pending", None),
                // An approval whose grant was since revoked, or has run out, no longer stands.
                Decision::Approved { delegation, .. } => {
                    match crate::revoke::grant_unusable(s, delegation) {
                        Ok(Some(why)) if why.starts_with("was revoked") => {
                            ("revoked", Some(format!("the grant {why}")))
                        }
                        Ok(Some(why)) => ("expired", Some(format!("the grant {why}"))),
                        _ => ("approved", None),
                    }
                }
                Decision::Denied { reason, .. } => ("denied", Some(reason.clone())),
            };
            let title = s
                .store
                .latest_entry(&r.dataset)
                .ok()
                .flatten()
                .map(|e| e.entry.title);
            json!({
                "request": r.id, "direction": "incoming", "dataset": r.dataset.to_string(),
                "title": title, "requester": r.requester.to_string(), "purpose": r.purpose,
                "received": r.received, "state": state, "reason": reason,
            })
        })
        .collect();
    let outgoing: Vec<Value> = s
        .store
        .requests_out()?
        .into_iter()
        .map(|r| {
            // On this side too, a grant since revoked (as far as this node has heard) or run
            // out no longer stands; "granted" reads as the owner's side does, "approved".
            let (state, reason) = match r.status.as_str() {
                "granted" if !r.delegation.is_empty() => {
                    match crate::revoke::grant_unusable(s, &r.delegation) {
                        Ok(Some(why)) if why.starts_with("was revoked") => {
                            ("revoked".to_string(), Some(format!("the grant {why}")))
                        }
                        Ok(Some(why)) => ("expired".to_string(), Some(format!("the grant {why}"))),
                        _ => ("approved".to_string(), r.reason.clone()),
                    }
                }
                "granted" => ("approved".to_string(), r.reason.clone()),
                other => (other.to_string(), r.reason.clone()),
            };
            json!({
                "request": hex::encode(&r.request), "direction": "outgoing",
                "dataset": r.dataset.to_string(), "purpose": r.purpose, "state": state,
                "reason": reason,
            })
        })
        .collect();
    Ok(json!({ "incoming": incoming, "outgoing": outgoing }))
}

async fn approve(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Value> {
    let r = access::approve(&api.node.shared, &id)?;
    Ok(Json(
        json!({ "request": r.id, "dataset": r.dataset.to_string(), "state": "approved",
        "requester": r.requester.to_string() }),
    ))
}

#[derive(Deserialize)]
struct DenyBody {
    reason: String,
}

async fn deny(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(body): Json<DenyBody>,
) -> ApiResult<Value> {
    let r = access::deny_request(&api.node.shared, &id, &body.reason)?;
    Ok(Json(
        json!({ "request": r.id, "dataset": r.dataset.to_string(), "state": "denied",
        "reason": body.reason }),
    ))
}

#[derive(Deserialize)]
struct FetchBody {
    dataset: String,
    output: PathBuf,
    #[serde(default)]
    from: Vec<String>,
}

/// Streams JSON Lines: `{"event":"progress","bytes","total","rate","eta_secs","network",
/// "reused"}` while bytes arrive (at most every 100 ms), then one `{"event":"done",...}` (the
/// [`transfer::Fetched`] record) or `{"event":"error","error"}`.
async fn fetch(State(api): State<Api>, Json(body): Json<FetchBody>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let started = std::time::Instant::now();
        let mut last: Option<std::time::Instant> = None;
        let opts = transfer::FetchOptions {
            from: body.from.clone(),
        };
        let fetching = transfer::fetch_with(
            &api.node,
            &body.dataset,
            &body.output,
            &opts,
            |p: &transfer::Progress| {
                let due = last.is_none_or(|l| l.elapsed() >= std::time::Duration::from_millis(100));
                if p.bytes == p.total || due {
                    last = Some(std::time::Instant::now());
                    let secs = started.elapsed().as_secs_f64();
                    // Rate over this run's network bytes; time left at that rate.
                    let rate = if secs > 0.0 {
                        p.network as f64 / secs
                    } else {
                        0.0
                    };
                    let eta = (rate > 0.0).then(|| (p.total - p.bytes.min(p.total)) as f64 / rate);
                    let line = json!({
                        "event": "progress",
                        "bytes": p.bytes,
                        "received": p.bytes,
                        "total": p.total,
                        "network": p.network,
                        "reused": p.reused,
                        "rate": rate.round(),
                        "eta_secs": eta.map(|e| (e * 10.0).round() / 10.0),
                    });
                    let _ = progress_tx.try_send(format!("{line}\n"));
                }
            },
        );
        // The receipt's start time (ISO 37156 8.3.4).
        let fetching = crate::receipts::FETCH_STARTED.scope(crate::receipts::now_ms(), fetching);
        // The client going away (Ctrl-C on `cix fetch`) drops the response body and so the
        // receiver: the fetch is abandoned; its verified progress stays recorded for resuming.
        let result = tokio::select! {
            r = fetching => r,
            () = tx.closed() => {
                tracing::info!(dataset = %body.dataset, "fetch cancelled: the client went away");
                return;
            }
        };
        let line = match result {
            Ok(done) => {
                let mut v = serde_json::to_value(done).unwrap_or_default();
                v["event"] = json!("done");
                v
            }
            Err(e) => json!({ "event": "error", "error": format!("{e:#}") }),
        };
        let _ = tx.send(format!("{line}\n")).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn transfers(
    State(api): State<Api>,
) -> std::result::Result<Json<Vec<transfer::TransferStatus>>, ApiError> {
    Ok(Json(transfer::transfers(&api.node.shared)?))
}

async fn metrics(State(api): State<Api>) -> Response {
    match api.node.shared.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response()
        }
    }
}

async fn token_grant(
    State(api): State<Api>,
    Json(req): Json<tokens::GrantRequest>,
) -> ApiResult<tokens::TokenLine> {
    Ok(Json(tokens::grant(&api.node.shared, &req)?))
}

async fn token_delegate(
    State(api): State<Api>,
    Json(req): Json<tokens::DelegateRequest>,
) -> ApiResult<tokens::TokenLine> {
    Ok(Json(tokens::delegate(&api.node.shared, &req)?))
}

async fn token_import(
    State(api): State<Api>,
    Json(req): Json<tokens::ImportRequest>,
) -> ApiResult<tokens::TokenLine> {
    Ok(Json(tokens::import(&api.node.shared, &req)?))
}

async fn token_list(State(api): State<Api>) -> ApiResult<Vec<tokens::TokenLine>> {
    Ok(Json(tokens::list(&api.node.shared)?))
}

async fn revoke(
    State(api): State<Api>,
    Json(req): Json<crate::revoke::RevokeRequest>,
) -> ApiResult<crate::revoke::RevocationLine> {
    Ok(Json(crate::revoke::revoke(&api.node, &req).await?))
}

async fn revocations(State(api): State<Api>) -> ApiResult<Vec<crate::revoke::RevocationLine>> {
    Ok(Json(crate::revoke::list(&api.node.shared)?))
}

async fn attest_member(
    State(api): State<Api>,
    Json(req): Json<attest::AttestRequest>,
) -> ApiResult<attest::AttestLine> {
    Ok(Json(attest::attest(&api.node.shared, &req)?))
}

async fn catalogue_history(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<withdraw::History> {
    match withdraw::resolve_any(&api.node.shared, &id)? {
        Some(d) => Ok(Json(withdraw::history(&api.node.shared, &d.to_string())?)),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no dataset {id:?} is known here (see `cix catalogue list`)"),
        )),
    }
}

async fn withdraw_dataset(
    State(api): State<Api>,
    Json(req): Json<withdraw::WithdrawRequest>,
) -> ApiResult<withdraw::WithdrawalLine> {
    Ok(Json(withdraw::withdraw(&api.node, &req).await?))
}

#[derive(Deserialize)]
struct AuditQuery {
    kind: Option<String>,
    dataset: Option<String>,
    peer: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<usize>,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

async fn audit_list(
    State(api): State<Api>,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
) -> ApiResult<Vec<crate::audit::Listed>> {
    let filter = crate::audit::Filter {
        kind: q.kind.as_deref().map(str::parse).transpose().map_err(bad)?,
        dataset: q
            .dataset
            .as_deref()
            .map(|d| d.parse().map_err(|e| bad(format!("dataset: {e}"))))
            .transpose()?,
        peer: q
            .peer
            .as_deref()
            .map(|p| p.parse().map_err(|e| bad(format!("peer: {e}"))))
            .transpose()?,
        since: q.since,
        until: q.until,
        limit: q.limit,
    };
    Ok(Json(api.node.shared.audit.list(&filter)?))
}

#[derive(Deserialize)]
struct ExportRange {
    from: Option<u64>,
    to: Option<u64>,
}

async fn audit_export(
    State(api): State<Api>,
    axum::extract::Query(q): axum::extract::Query<ExportRange>,
) -> ApiResult<Value> {
    let log = &api.node.shared.audit;
    let records: Vec<String> = log
        .raw_range(q.from, q.to)?
        .into_iter()
        .map(|(_, bytes)| hex::encode(bytes))
        .collect();
    Ok(Json(
        json!({ "did": log.did().to_string(), "records": records }),
    ))
}

#[derive(Deserialize)]
struct NoteBody {
    detail: String,
}

async fn audit_note(State(api): State<Api>, Json(body): Json<NoteBody>) -> ApiResult<Value> {
    if body.detail.len() > cix_protocol::limits::MAX_AUDIT_DETAIL_BYTES {
        return Err(bad(format!(
            "the note is longer than {} bytes",
            cix_protocol::limits::MAX_AUDIT_DETAIL_BYTES
        )));
    }
    let event = crate::audit::AuditEvent::new(cix_protocol::audit::AuditKind::Other("note".into()))
        .detail(body.detail);
    let seq = crate::audit::append(&api.node.shared, event).await?;
    Ok(Json(json!({ "seq": seq })))
}

async fn audit_witness(State(api): State<Api>) -> ApiResult<crate::witness::Exchange> {
    Ok(Json(crate::witness::exchange_all(&api.node).await?))
}

#[derive(Deserialize)]
struct SubjectQuery {
    subject: Option<String>,
}

async fn audit_witnesses(
    State(api): State<Api>,
    axum::extract::Query(q): axum::extract::Query<SubjectQuery>,
) -> ApiResult<crate::witness::Gathered> {
    let subject = match q.subject {
        Some(s) => s.parse().map_err(|e| bad(format!("subject: {e}")))?,
        None => api.node.did(),
    };
    Ok(Json(crate::witness::gather(&api.node, &subject).await?))
}

async fn receipts_list(State(api): State<Api>) -> ApiResult<Vec<crate::receipts::ReceiptLine>> {
    Ok(Json(crate::receipts::list(&api.node.shared)?))
}

async fn receipts_show(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<crate::receipts::ReceiptLine> {
    Ok(Json(crate::receipts::show(&api.node.shared, &id)?))
}

#[derive(Deserialize)]
struct VerifyBody {
    /// A kept receipt's id (or unique prefix).
    #[serde(default)]
    id: Option<String>,
    /// A receipt bundle's bytes, hex.
    #[serde(default)]
    bundle: Option<String>,
}

async fn receipts_verify(
    State(api): State<Api>,
    Json(body): Json<VerifyBody>,
) -> ApiResult<crate::receipts::Verdict> {
    match (body.id, body.bundle) {
        (Some(id), None) => Ok(Json(crate::receipts::verify_kept(&api.node.shared, &id)?)),
        (None, Some(hex_text)) => {
            let bytes = hex::decode(hex_text.trim())
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bundle: not hex: {e}")))?;
            Ok(Json(crate::receipts::verify_bundle(&bytes)))
        }
        _ => Err(ApiError(
            StatusCode::BAD_REQUEST,
            "give exactly one of id and bundle".into(),
        )),
    }
}

async fn deletions_list(State(api): State<Api>) -> ApiResult<Vec<crate::receipts::DeletionLine>> {
    Ok(Json(crate::receipts::deletions(&api.node.shared)?))
}

async fn retention_list(State(api): State<Api>) -> ApiResult<Vec<crate::receipts::Held>> {
    Ok(Json(crate::receipts::held(&api.node.shared)?))
}

#[derive(Deserialize)]
struct NoticeQuery {
    #[serde(default)]
    peer: Option<String>,
}

async fn privacy_notice(
    State(api): State<Api>,
    axum::extract::Query(q): axum::extract::Query<NoticeQuery>,
) -> ApiResult<crate::privacy::NoticeLine> {
    match q.peer {
        None => Ok(Json(crate::privacy::own(&api.node.shared)?)),
        Some(p) => Ok(Json(crate::privacy::of_peer(&api.node, &p).await?)),
    }
}
