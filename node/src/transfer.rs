//! Dataset transfer on `/cix/transfer/1`: the owner's server and the requester's fetch.
//!
//! The requester opens a stream, sends a [`TransferRequest`] (with a UCAN invocation and its
//! delegation unless the data is open), and reads a [`TransferHeader`] followed by the bytes.
//! The receiver hashes while it writes to a temporary file beside the target and renames it
//! into place only when length and BLAKE3 match the catalogue entry (ISO 37156 3.2.4
//! integrity, 7.3.2 authenticity); a wrong byte never reaches the target path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cix_protocol::catalogue::{DatasetId, Entry, Level, SignedEntry};
use cix_protocol::caveats;
use cix_protocol::content::ContentHash;
use cix_protocol::identity::Did;
use cix_protocol::limits;
use cix_protocol::profile::Profile;
use cix_protocol::ucan::{self, command_covers, Cid, Delegation, Invocation};
use cix_protocol::wire::{
    AccessRequest, AccessResponse, DenyCode, Projection, TransferHeader, TransferRequest,
    TRANSFER_PROTOCOL,
};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::access::now;
use crate::codec::{read_message, write_message};
use crate::node::{did_of_peer, peer_of_did, Node, Shared};
use crate::rules::{self, Refusal};
use crate::store::OwnDataset;

/// Most transfers a node serves at once; further requests are refused as busy.
pub const MAX_CONCURRENT_TRANSFERS: usize = 16;
/// How long a requester has to send its request after opening a stream.
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause in a transfer before either side gives up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Lifetime of the invocation a requester signs for one fetch.
pub const INVOCATION_TTL_SECS: i64 = 120;
/// Size of the copy buffer.
const CHUNK: usize = 256 * 1024;

fn protocol() -> StreamProtocol {
    StreamProtocol::new(TRANSFER_PROTOCOL)
}

/// Starts accepting transfer streams; the task ends when the node stops.
///
/// # Errors
///
/// If the protocol is already registered.
pub fn spawn_server(node: Node) -> Result<tokio::task::JoinHandle<()>> {
    let mut control = node.control();
    let mut incoming = control
        .accept(protocol())
        .map_err(|e| anyhow!("cannot accept transfers: {e}"))?;
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_TRANSFERS));
    Ok(tokio::spawn(async move {
        let mut stopping = node.shared.stopping.clone();
        loop {
            let next = tokio::select! {
                next = incoming.next() => next,
                _ = stopping.changed() => None,
            };
            let Some((peer, mut stream)) = next else {
                break;
            };
            match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let node = node.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve(&node.shared, peer, &mut stream).await {
                            debug!(%peer, error = %e, "transfer ended with an error");
                        }
                        let _ = stream.close().await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    warn!(%peer, "transfer refused: too many at once");
                    tokio::spawn(async move {
                        let header = TransferHeader::Refused {
                            code: DenyCode::Busy,
                            reason: "the owner is serving too many transfers; try again shortly"
                                .into(),
                        };
                        let _ = tokio::time::timeout(
                            REQUEST_READ_TIMEOUT,
                            write_message(&mut stream, &header, limits::MAX_TRANSFER_HEADER_BYTES),
                        )
                        .await;
                    });
                }
            }
        }
    }))
}

async fn serve(shared: &Shared, peer: PeerId, stream: &mut libp2p::Stream) -> Result<()> {
    let req: TransferRequest = tokio::time::timeout(
        REQUEST_READ_TIMEOUT,
        read_message(stream, limits::MAX_TRANSFER_REQUEST_BYTES),
    )
    .await
    .map_err(|_| anyhow!("peer sent no request in time"))?
    .map_err(|e| {
        warn!(%peer, error = %e, "malformed transfer request");
        e
    })?;
    let (own, plan) = match authorise(shared, &peer, &req) {
        Ok(ok) => ok,
        Err((code, reason)) => return refuse(shared, peer, &req, stream, code, reason).await,
    };
    let path = shared.home.blobs().join(own.content.to_hex());
    if let Some(plan) = plan {
        return serve_projection(shared, peer, &req, stream, &own, plan, path).await;
    }
    let mut file = tokio::fs::File::open(&path)
        .await
        .with_context(|| format!("blob {} is missing", path.display()))?;
    let offset = req.offset;
    if offset > 0 {
        use tokio::io::AsyncSeekExt;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
    }
    let length = own.bytes - offset;
    let header = TransferHeader::Ok {
        size: own.bytes,
        length,
        projection: None,
    };
    write_message(stream, &header, limits::MAX_TRANSFER_HEADER_BYTES).await?;
    let sent = send_file(stream, &mut file, length, &path).await?;
    shared.stats.served(sent);
    info!(%peer, dataset = %own.dataset, bytes = sent, "transfer served");
    Ok(())
}

async fn refuse(
    shared: &Shared,
    peer: PeerId,
    req: &TransferRequest,
    stream: &mut libp2p::Stream,
    code: DenyCode,
    reason: String,
) -> Result<()> {
    warn!(%peer, dataset = %req.dataset, ?code, %reason, "transfer refused");
    shared.stats.refused();
    let header = TransferHeader::Refused { code, reason };
    write_message(stream, &header, limits::MAX_TRANSFER_HEADER_BYTES).await?;
    Ok(())
}

/// Sends `length` bytes of `file` from where it stands.
async fn send_file(
    stream: &mut libp2p::Stream,
    file: &mut tokio::fs::File,
    length: u64,
    path: &Path,
) -> Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < length {
        let want = CHUNK.min((length - sent) as usize);
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            bail!("blob {} is shorter than recorded", path.display());
        }
        tokio::time::timeout(IDLE_TIMEOUT, stream.write_all(&buf[..n]))
            .await
            .map_err(|_| anyhow!("receiver stalled"))??;
        sent += n as u64;
    }
    stream.flush().await?;
    Ok(sent)
}

/// Which columns of the dataset an authorised transfer may carry, when the invocation asked for
/// some fields only (ISO 37156 8.2.2 c).
#[derive(Debug, Clone)]
struct Plan {
    /// Column numbers, ascending.
    columns: Vec<usize>,
    /// Their dictionary names, in that order: what the header states.
    fields: Vec<String>,
    /// Fields the dictionary describes, which the stored CSV's header must have.
    width: usize,
}

/// Serves the projection of the dataset on `plan`'s columns: projected into a temporary file
/// while hashed, its BLAKE3 and length stated in the header, then sent.
async fn serve_projection(
    shared: &Shared,
    peer: PeerId,
    req: &TransferRequest,
    stream: &mut libp2p::Stream,
    own: &OwnDataset,
    plan: Plan,
    path: PathBuf,
) -> Result<()> {
    let tmp_dir = shared.home.tmp();
    let (columns, width) = (plan.columns.clone(), plan.width);
    let blob = path.clone();
    let made = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&tmp_dir)?;
        crate::projection::project(&blob, &tmp_dir, &columns, width)
    })
    .await
    .map_err(|e| anyhow!("projection task failed: {e}"))?;
    let projected = match made {
        Ok(p) => p,
        Err(e @ crate::projection::ProjectError::RowTooLong { .. }) => {
            let reason = format!("cannot serve a projection of this dataset: {e}");
            return refuse(shared, peer, req, stream, DenyCode::BadRequest, reason).await;
        }
        Err(e) => {
            tracing::error!(dataset = %own.dataset, error = %e, "cannot project an own dataset");
            let reason = "the owner's node could not project the dataset".to_string();
            return refuse(shared, peer, req, stream, DenyCode::Busy, reason).await;
        }
    };
    let header = TransferHeader::Ok {
        size: own.bytes,
        length: projected.size,
        projection: Some(Projection {
            fields: plan.fields.clone(),
            content: projected.content,
            size: projected.size,
        }),
    };
    write_message(stream, &header, limits::MAX_TRANSFER_HEADER_BYTES).await?;
    let mut file = tokio::fs::File::open(projected.file.path())
        .await
        .context("the projection vanished")?;
    let sent = send_file(stream, &mut file, projected.size, projected.file.path()).await?;
    drop(projected);
    shared.stats.served(sent);
    info!(%peer, dataset = %own.dataset, bytes = sent, fields = plan.fields.len(),
        "projection served");
    Ok(())
}

/// Decides whether `peer` may have the content it asks for.
fn authorise(
    shared: &Shared,
    peer: &PeerId,
    req: &TransferRequest,
) -> std::result::Result<(OwnDataset, Option<Plan>), Refusal> {
    let internal = |e: anyhow::Error| {
        tracing::error!(error = %e, "store failure while authorising a transfer");
        (
            DenyCode::Busy,
            "the owner's node could not check the request".to_string(),
        )
    };
    let own = shared
        .store
        .own(&req.dataset)
        .map_err(internal)?
        .ok_or_else(|| {
            (
                DenyCode::UnknownDataset,
                format!("dataset {} is not held here", req.dataset),
            )
        })?;
    // Closed first: a prober must not learn whether a guessed content id is a closed dataset's.
    let level = crate::store::Store::own_level(&own).map_err(internal)?;
    if level != Level::Closed {
        if let Some(why) = crate::withdraw::withdrawn_own(shared, &own).map_err(internal)? {
            return Err((DenyCode::Withdrawn, why));
        }
    }
    if level != Level::Closed && own.content != req.content {
        return Err((
            DenyCode::NotHeld,
            "that content is not the dataset's current version".into(),
        ));
    }
    if req.offset > own.bytes {
        return Err((
            DenyCode::BadRequest,
            "offset beyond the end of the dataset".into(),
        ));
    }
    match level {
        Level::Closed => Err((
            DenyCode::Closed,
            "the dataset is closed (ISO 37156 5.5.2): it never leaves its owner's node".into(),
        )),
        Level::Open => Ok((own, None)),
        Level::SharedPublic | Level::SharedGroup | Level::SharedNamed => {
            let entry = shared
                .store
                .entry(&own.entry)
                .map_err(internal)?
                .ok_or_else(|| internal(anyhow!("own dataset {} has no entry", own.dataset)))?
                .entry;
            let requester = did_of_peer(peer).ok_or((
                DenyCode::BadRequest,
                "peer has no ed25519 identity".to_string(),
            ))?;
            // ISO 37156 8.2.2 h, at the moment the data would leave (DESIGN §7), against the
            // current entry: a grant given before the rule tightened does not escape it.
            let profile =
                rules::requester_profile(shared, &requester, req.profile.as_deref(), now())?;
            rules::check_jurisdiction(&entry, profile.as_ref())?;
            let plan = check_invocation(shared, &requester, req, &entry, profile.as_ref())?;
            Ok((own, plan))
        }
    }
}

/// The invocation must be valid, issued by the connected peer, addressed to us, for fetching
/// exactly this dataset and content, rooted in a delegation we issued, with no revoked link
/// (refused as `revoked`), and never seen before; and what its arguments claim must be true of
/// the requester and the current entry. Returns the projection to serve when it states fields.
fn check_invocation(
    shared: &Shared,
    requester: &Did,
    req: &TransferRequest,
    entry: &Entry,
    profile: Option<&Profile>,
) -> std::result::Result<Option<Plan>, Refusal> {
    let no_grant = |reason: String| (DenyCode::NoGrant, reason);
    let Some(inv) = &req.invocation else {
        return Err(no_grant(
            "this dataset needs a grant: request access first (cix request)".into(),
        ));
    };
    if req.proofs.len() > ucan::MAX_CHAIN_LEN {
        return Err(no_grant("proof chain too long".into()));
    }
    // The validator skips over-limit proofs unhashed and would then call the one named "not
    // presented"; say what is wrong instead.
    if let Some(big) = req.proofs.iter().find(|p| p.len() > ucan::MAX_TOKEN_BYTES) {
        return Err(no_grant(format!(
            "token refused: a proof of {} bytes exceeds the limit of {} bytes",
            big.len(),
            ucan::MAX_TOKEN_BYTES
        )));
    }
    let proofs: Vec<Vec<u8>> = req.proofs.iter().map(|p| p.to_vec()).collect();
    let t = now();
    let v = ucan::validate(inv, &proofs, t).map_err(|e| no_grant(explain_refusal(&e, &proofs)))?;
    let me = shared.did();
    if &v.invocation.iss != requester {
        return Err(no_grant(
            "the invocation was not issued by the connected peer".into(),
        ));
    }
    if v.invocation.aud.is_some_and(|a| a != me) || v.invocation.sub != me {
        return Err(no_grant(
            "the invocation is addressed to another node".into(),
        ));
    }
    // Republication rights imply fetch: taking the data to republish it is a fetch.
    if v.invocation.cmd != ucan::CMD_FETCH && v.invocation.cmd != ucan::CMD_REPUBLISH {
        return Err(no_grant(format!(
            "the invocation is for {}, not {} or {}",
            v.invocation.cmd,
            ucan::CMD_FETCH,
            ucan::CMD_REPUBLISH
        )));
    }
    let Some(root) = v.chain.first().filter(|root| root.iss == me) else {
        return Err(no_grant("the grant was not issued by this node".into()));
    };
    // Onward transfer (DESIGN §5, ISO 37156 9.2 e): only an agency given republication rights
    // may pass data on. Every link but the last must therefore carry /cix/data/republish (or
    // more); a plain fetch grant ends the chain.
    if let Some(link) = v.chain[..v.chain.len() - 1]
        .iter()
        .find(|d| !command_covers(&d.cmd, ucan::CMD_REPUBLISH))
    {
        return Err(no_grant(format!(
            "{} passed on a delegation of {} it received from {}, but only republication rights \
             ({}) may be passed on (ISO 37156 9.2 e)",
            link.aud,
            link.cmd,
            link.iss,
            ucan::CMD_REPUBLISH
        )));
    }
    let arg = |k: &str| v.invocation.args.get(k);
    let text = |k: &str| arg(k).and_then(|x| x.as_text()).map(str::to_owned);
    if text(caveats::ARG_DATASET) != Some(req.dataset.to_string())
        || text(caveats::ARG_CONTENT) != Some(req.content.to_hex())
    {
        return Err(no_grant(
            "the invocation names another dataset or content".into(),
        ));
    }
    check_claims(
        root,
        entry,
        profile,
        &text,
        arg(caveats::ARG_RETENTION_DAYS),
    )?;
    let plan = check_fields(&v.chain, arg(caveats::ARG_FIELDS), entry, req.offset)?;
    check_revocations(shared, &v)?;
    let exp = v
        .invocation
        .exp
        .unwrap_or(t + ucan::MAX_INVOCATION_TTL_SECS);
    match shared.store.spend_invocation(v.cid.as_bytes(), exp, t) {
        Ok(true) => Ok(plan),
        Ok(false) => Err(no_grant(
            "this invocation was already used (replay refused)".into(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a spent invocation");
            Err(no_grant(
                "the owner's node could not record the invocation".into(),
            ))
        }
    }
}

/// Refuses a chain with a revoked link (DESIGN §5): a revocation of one of its delegations,
/// signed by that delegation's issuer or by anyone upstream of it.
fn check_revocations(
    shared: &Shared,
    v: &ucan::Validated,
) -> std::result::Result<(), (DenyCode, String)> {
    let chain: Vec<(Delegation, ucan::Cid)> = v
        .chain
        .iter()
        .cloned()
        .zip(v.proof_cids().iter().copied())
        .collect();
    for (delegation, cid) in &chain {
        let found = shared.store.revocations_of(cid).map_err(|e| {
            tracing::error!(error = %e, "cannot read revocations");
            (
                DenyCode::Busy,
                "the owner's node could not check revocations".to_string(),
            )
        })?;
        if let Some(r) = found.iter().find(|r| r.breaks(&chain).is_some()) {
            let why = r.reason_suffix();
            return Err((
                DenyCode::Revoked,
                format!(
                    "the delegation {cid} from {} was revoked by {}{why}",
                    delegation.iss, r.revocation.iss
                ),
            ));
        }
    }
    Ok(())
}

/// The invocation's caveat arguments against reality (DESIGN §5): the policy already checked
/// that they match the grant; here they must also match the requester and the current entry.
fn check_claims(
    root: &Delegation,
    entry: &Entry,
    profile: Option<&Profile>,
    text: &dyn Fn(&str) -> Option<String>,
    retention: Option<&ciborium::Value>,
) -> std::result::Result<(), Refusal> {
    let no_grant = |reason: String| Err((DenyCode::NoGrant, reason));
    // Purpose (8.2.2 b): the one this node granted.
    if let Some(granted) = caveats::pinned_text(&root.pol, caveats::ARG_PURPOSE) {
        if text(caveats::ARG_PURPOSE).as_deref() != Some(granted.as_str()) {
            return no_grant(format!(
                "the invocation states another purpose than the one granted ({granted:?})"
            ));
        }
    }
    // Terms (5.5.3): the ones the dataset states now.
    if entry.level() == Level::SharedPublic {
        if let Some(terms) = &entry.iso.terms {
            let current = caveats::terms_hash(terms);
            if text(caveats::ARG_TERMS).as_deref() != Some(current.as_str()) {
                return no_grant(format!(
                    "the invocation does not accept the dataset's current terms (BLAKE3 \
                     {current}); ask again with `cix request ID --accept-terms`"
                ));
            }
        }
    }
    // Jurisdiction (8.2.2 a, h): the one the requester's own signed profile states.
    let claimed = text(caveats::ARG_JURISDICTION);
    if let (Some(claimed), Some(p)) = (&claimed, profile) {
        if claimed != &p.jurisdiction {
            return Err((
                DenyCode::Jurisdiction,
                format!(
                    "the invocation states jurisdiction {claimed}, but your signed profile says {}",
                    p.jurisdiction
                ),
            ));
        }
    }
    if caveats::allowed_jurisdictions(entry).is_some() && claimed.is_none() {
        return Err((
            DenyCode::Jurisdiction,
            "this dataset restricts jurisdictions: the invocation must state yours".into(),
        ));
    }
    // Retention (8.2.2 e): no longer than the entry allows now.
    if let Some(days) = entry.iso.privacy.retention_days {
        let stated = retention.and_then(|v| v.as_integer()).map(i128::from);
        if stated.is_none_or(|n| n < 0 || n > i128::from(days)) {
            return no_grant(format!(
                "this dataset may be kept at most {days} days: the invocation must state \
                 retention_days of at most that"
            ));
        }
    }
    Ok(())
}

/// The fields caveat (ISO 37156 8.2.2 c, 7.1) against the invocation's `fields` and the
/// current entry. The policy already holds the stated fields to those every link permits; this
/// says so in words when it did not, and refuses names the current dictionary lacks, a
/// non-CSV dataset, a dataset too large to project and a projection from a non-zero offset.
fn check_fields(
    chain: &[Delegation],
    stated: Option<&ciborium::Value>,
    entry: &Entry,
    offset: u64,
) -> std::result::Result<Option<Plan>, Refusal> {
    let bad = |reason: String| Err((DenyCode::BadRequest, reason));
    let stated = match caveats::stated_fields(stated) {
        Ok(s) => s,
        Err(e) => return bad(format!("the invocation's fields: {e}")),
    };
    let permitted = caveats::permitted_by_all(chain.iter().map(|d| &d.pol));
    let Some(stated) = stated else {
        return match permitted {
            None => Ok(None),
            Some(p) => Err((
                DenyCode::NoGrant,
                rules::clip(format!(
                    "this grant permits only the fields {} (ISO 37156 8.2.2 c): the invocation \
                     must state which of them it wants",
                    p.join(", ")
                )),
            )),
        };
    };
    if let Some(p) = &permitted {
        let extra: Vec<&str> = stated
            .iter()
            .filter(|n| !p.contains(n))
            .map(String::as_str)
            .collect();
        if !extra.is_empty() {
            return Err((
                DenyCode::NoGrant,
                rules::clip(format!(
                    "the invocation asks for fields the grant does not permit: {} (permitted: \
                     {}; ISO 37156 8.2.2 c)",
                    extra.join(", "),
                    p.join(", ")
                )),
            ));
        }
    }
    let columns = match caveats::field_columns(entry, &stated) {
        Ok(c) => c,
        Err(e) => return bad(rules::clip(format!("cannot serve those fields: {e}"))),
    };
    if offset != 0 {
        return bad(
            "a projection is sent whole, from offset 0: fetch it again from the start".into(),
        );
    }
    let bytes = entry.held().map(|(_, _, n)| n).unwrap_or_default();
    if bytes > limits::MAX_PROJECTION_SOURCE_BYTES {
        return bad(format!(
            "the dataset is {bytes} bytes; this node projects datasets of at most {} bytes \
             (MAX_PROJECTION_SOURCE_BYTES)",
            limits::MAX_PROJECTION_SOURCE_BYTES
        ));
    }
    debug!(dataset = %entry.dataset, fields = columns.len(), "invocation asks for a projection");
    Ok(Some(Plan {
        fields: caveats::column_names(entry, &columns),
        columns,
        width: entry.iso.dictionary.len(),
    }))
}

/// Words for a token refusal; a policy mismatch names the caveat it broke.
fn explain_refusal(e: &ucan::ValidationError, proofs: &[Vec<u8>]) -> String {
    if let ucan::ValidationError::MatchError {
        delegation,
        statement,
    } = e
    {
        let arg = proofs
            .iter()
            .filter(|p| ucan::Cid::of_token(p) == *delegation)
            .find_map(|p| Delegation::decode(p).ok())
            .and_then(|(d, _)| d.pol.statements().get(*statement).cloned())
            .and_then(|s| caveats::argument_of(&s).map(|a| (a, s)));
        if let Some((arg, statement)) = arg {
            if arg == caveats::ARG_FIELDS {
                let permitted = caveats::permitted_fields(&ucan::Policy::new(vec![statement]))
                    .unwrap_or_default();
                return rules::clip(format!(
                    "token refused: the invocation's fields are not within the fields delegation \
                     {delegation} permits ({}; ISO 37156 8.2.2 c)",
                    permitted.join(", ")
                ));
            }
            return rules::clip(format!(
                "token refused: the invocation's {arg} does not meet the caveat of delegation \
                 {delegation} ({e})"
            ));
        }
    }
    rules::clip(format!("token refused: {e}"))
}

/// What a completed fetch delivered.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    /// Dataset id.
    pub dataset: String,
    /// Title.
    pub title: String,
    /// BLAKE3 hex of the bytes written, verified: the catalogue's content hash, or for a
    /// projection the hash its owner stated.
    pub content_hash: String,
    /// Bytes written.
    pub bytes: u64,
    /// Where.
    pub path: PathBuf,
    /// The owner's principal.
    pub from: String,
    /// Present when what was written is a projection on some fields (ISO 37156 8.2.2 c).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection: Option<FetchedProjection>,
}

/// The projection a fetch delivered.
#[derive(Debug, Clone, Serialize)]
pub struct FetchedProjection {
    /// The fields it holds, in the dataset's column order.
    pub fields: Vec<String>,
    /// BLAKE3 hex of the whole content it was projected from (the catalogue's).
    pub of_content: String,
}

/// Finds a dataset in the local catalogue by id or unique id prefix (at least 4 hex digits).
///
/// # Errors
///
/// If none or several match.
pub fn resolve(shared: &Shared, text: &str) -> Result<Option<SignedEntry>> {
    if let Ok(id) = text.parse::<DatasetId>() {
        return shared.store.latest_entry(&id);
    }
    if text.len() < 4 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("{text:?} is not a dataset id (32 hex digits, or a unique prefix of at least 4)");
    }
    let lower = text.to_ascii_lowercase();
    let mut hits: Vec<SignedEntry> = shared
        .store
        .catalogue()?
        .into_iter()
        .filter(|e| e.entry.dataset.to_string().starts_with(&lower))
        .collect();
    match hits.len() {
        0 => Ok(None),
        1 => Ok(hits.pop()),
        n => bail!("{n} datasets start with {text:?}; give more digits"),
    }
}

/// Explains why an id unknown to the catalogue cannot be fetched, asking connected peers
/// whether one of them holds it (a closed dataset's owner says so).
async fn explain_unknown(node: &Node, text: &str) -> anyhow::Error {
    let Ok(dataset) = text.parse::<DatasetId>() else {
        return anyhow!("no dataset {text:?} in this node's catalogue (see `cix catalogue list`)");
    };
    let peers = node.peers().await.unwrap_or_default();
    for p in peers.iter().take(16) {
        let Ok(peer) = p.peer_id.parse::<PeerId>() else {
            continue;
        };
        let req = AccessRequest {
            request: rand::random::<[u8; 16]>().to_vec(),
            dataset,
            purpose: String::new(),
            accept_terms: false,
            probe: true,
            profile: None,
            attestations: Vec::new(),
        };
        let who = p.agency().unwrap_or_else(|| p.peer_id.clone());
        match node.send_access(peer, req).await {
            Ok(AccessResponse::Denied {
                code: DenyCode::Closed,
                reason,
            }) => {
                return anyhow!("refused by {who}: {reason}");
            }
            Ok(AccessResponse::Denied {
                code: DenyCode::UnknownDataset,
                ..
            })
            | Err(_) => {}
            Ok(_) => {
                return anyhow!(
                    "{who} holds dataset {dataset}, but its entry has not reached this node's                      catalogue yet; wait a moment and try again, or ask with `cix request`"
                );
            }
        }
    }
    anyhow!(
        "dataset {dataset} is not in this node's catalogue and no connected peer will serve it \
         (closed datasets are never announced; check the id with `cix catalogue list`)"
    )
}

/// Fetches a dataset into `out`, calling `progress(received, total)` as bytes arrive.
///
/// # Errors
///
/// If the dataset is unknown, access is missing or refused, the owner is unreachable, or the
/// bytes do not verify; `out` is untouched in every such case.
pub async fn fetch(
    node: &Node,
    dataset: &str,
    out: &Path,
    mut progress: impl FnMut(u64, u64) + Send,
) -> Result<Fetched> {
    if out.is_dir() {
        bail!(
            "-o {} is a directory: give the path of the file to write (for example {}/{})",
            out.display(),
            out.display(),
            "data.csv"
        );
    }
    let Some(signed) = resolve(&node.shared, dataset)? else {
        return Err(explain_unknown(node, dataset).await);
    };
    let entry = &signed.entry;
    // Only a held distribution travels over /cix/transfer/1; a referenced one is fetched
    // from its URL by whoever wants it.
    let (content, entry_size) = match entry.held() {
        Ok((_, content, size)) => (content, size),
        Err(e) => bail!("{e}"),
    };
    if entry_size > limits::MAX_DATASET_BYTES {
        bail!("dataset is {entry_size} bytes, over this node's limit");
    }
    let owner = entry.iss;
    let done = |bytes, content: &ContentHash, projection| Fetched {
        dataset: entry.dataset.to_string(),
        title: entry.title.clone(),
        content_hash: content.to_hex(),
        bytes,
        path: out.to_path_buf(),
        from: owner.to_string(),
        projection,
    };
    if owner == node.did() {
        let blob = node.shared.home.blobs().join(content.to_hex());
        let (_, bytes) = write_verified_copy(&blob, out, &content).await?;
        return Ok(done(bytes, &content, None));
    }
    let mut asked: Option<Vec<String>> = None;
    let (invocation, proofs) = match credentials(node, &signed).await? {
        Some((inv, proofs)) => {
            asked = caveats::stated_fields(inv.args.get(caveats::ARG_FIELDS))
                .map_err(|e| anyhow!("{e}"))?;
            let (bytes, _) = inv
                .seal(&node.shared.key)
                .map_err(|e| anyhow!("cannot sign invocation: {e}"))?;
            (Some(bytes), proofs)
        }
        None => (None, Vec::new()),
    };
    let req = TransferRequest {
        dataset: entry.dataset,
        content,
        offset: 0,
        invocation,
        proofs: proofs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        // The owner checks it against the dataset's jurisdiction rule (ISO 37156 8.2.2 h).
        profile: (entry.level() != Level::Open).then(|| node.shared.profile.bytes.clone()),
    };
    let (mut stream, header) = send_transfer(node, &owner, &req).await?;
    let (length, expected, projection) = match header {
        TransferHeader::Refused { code, reason } => {
            bail!(
                "the owner refused the transfer ({}): {reason}",
                code_text(code)
            )
        }
        TransferHeader::Ok { size, .. } if size != entry_size => {
            bail!(
                "the owner offers {size} bytes but the catalogue entry says {}",
                entry_size
            )
        }
        TransferHeader::Ok {
            length,
            projection: None,
            ..
        } => {
            if asked.is_some() {
                warn!(dataset = %entry.dataset, "owner sent the whole file when fields were asked");
                bail!("the owner sent the whole dataset, but this node asked for some fields only");
            }
            if length != entry_size {
                bail!(
                    "the owner offers {length} bytes from the start, but the entry has {}",
                    entry_size
                );
            }
            (length, content, None)
        }
        TransferHeader::Ok {
            length,
            projection: Some(p),
            ..
        } => {
            // ISO 37156 8.2.2 c: exactly the fields asked for, verified against the hash the
            // owner stated (authenticated by the Noise session with the owner's PeerId).
            if asked.as_ref() != Some(&p.fields) {
                warn!(dataset = %entry.dataset, "owner's projection holds other fields than asked");
                bail!(
                    "the owner sent a projection on other fields ({}) than this node asked for",
                    rules::clip(p.fields.join(", "))
                );
            }
            if length != p.size || p.size > limits::MAX_DATASET_BYTES {
                bail!(
                    "the owner's projection header is inconsistent ({length} bytes follow, the \
                     projection has {})",
                    p.size
                );
            }
            let about = FetchedProjection {
                fields: p.fields,
                of_content: content.to_hex(),
            };
            (length, p.content, Some(about))
        }
    };
    let bytes = receive(&mut stream, out, &expected, length, &mut progress).await?;
    debug!(dataset = %entry.dataset, bytes, projection = projection.is_some(), "fetched and verified");
    Ok(done(bytes, &expected, projection))
}

fn code_text(code: DenyCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Opens a transfer stream to `owner`, sends `req` and reads the owner's header. The bytes,
/// if any, follow on the returned stream. [`fetch`] uses it; so can tests and tools that build
/// their own request.
///
/// # Errors
///
/// If the owner cannot be reached, or its answer is late or malformed.
pub async fn send_transfer(
    node: &Node,
    owner: &Did,
    req: &TransferRequest,
) -> Result<(libp2p::Stream, TransferHeader)> {
    let mut stream = open_transfer_stream(node, owner).await?;
    write_message(&mut stream, req, limits::MAX_TRANSFER_REQUEST_BYTES).await?;
    let header: TransferHeader = tokio::time::timeout(
        IDLE_TIMEOUT,
        read_message(&mut stream, limits::MAX_TRANSFER_HEADER_BYTES),
    )
    .await
    .map_err(|_| anyhow!("the owner did not answer in time"))?
    .context("the owner's answer was malformed")?;
    Ok((stream, header))
}

/// Opens a `/cix/transfer/1` stream to `owner` and writes nothing on it. [`send_transfer`]
/// sends its framed request on it; tests and tools use it to send bytes that are not a valid
/// request at all (an over-limit length prefix, say) and see what the owner does.
///
/// # Errors
///
/// If the owner cannot be reached or refuses the protocol.
pub async fn open_transfer_stream(node: &Node, owner: &Did) -> Result<libp2p::Stream> {
    let peer = peer_of_did(owner)?;
    if !node.locate(peer).await? {
        bail!(
            "cannot reach the owner {owner}: not connected and no address known (is it running?)"
        );
    }
    let mut control = node.control();
    control
        .open_stream(peer, protocol())
        .await
        .map_err(|e| anyhow!("cannot open a transfer stream to the owner: {e}"))
}

/// The delegation chain this node holds for fetching `signed`'s dataset from its owner, root
/// first: the grant from a request to the owner, else a chain it received (`cix tokens import`;
/// a secondary publisher's re-delegation, ISO 37156 9.2 e) that is rooted in the owner, covers
/// fetching or republishing, names the dataset and has not expired (the one lasting longest).
/// Asks the owner again when a request is pending.
async fn held_chain(node: &Node, signed: &SignedEntry) -> Result<Vec<Vec<u8>>> {
    let entry = &signed.entry;
    let level = entry.level();
    let id = entry.dataset;
    let mut prior = node.shared.store.request_out(&id)?;
    let granted = |p: &Option<crate::store::OutgoingRequest>| {
        p.as_ref()
            .is_some_and(|p| p.status == "granted" && !p.delegation.is_empty())
    };
    // A revoked or expired grant is skipped (a chain imported since may still serve), and
    // explained if nothing else does.
    let mut dead = None;
    if granted(&prior) {
        let delegation = prior
            .as_ref()
            .map(|p| p.delegation.clone())
            .unwrap_or_default();
        match crate::revoke::grant_unusable(&node.shared, &delegation)? {
            None => return Ok(vec![delegation]),
            Some(why) => dead = Some(why),
        }
    }
    if let Some(chain) = received_chain(node, entry)? {
        debug!(dataset = %id, depth = chain.len(), "fetching under a received delegation chain");
        return Ok(chain);
    }
    if let Some(why) = dead {
        bail!(
            "the grant for {id} {why}; ask its owner again with `cix request {id} --purpose TEXT`"
        );
    }
    if prior.is_none() {
        let hint = if level == Level::SharedPublic {
            " --accept-terms"
        } else if level == Level::SharedGroup {
            " --attestation FILE"
        } else {
            ""
        };
        bail!(
            "{level} data needs a grant from its owner: run `cix request {id} --purpose TEXT{hint}` first"
        );
    }
    // Ask again: the owner may have decided since.
    let outcome = crate::access::request(node, id, "", false).await?;
    match outcome.status.as_str() {
        "granted" => prior = node.shared.store.request_out(&id)?,
        "pending" => bail!(
            "access to {id} is still waiting for the owner's approval (the owner runs `cix requests approve`)"
        ),
        "denied" => bail!(
            "access to {id} was denied by the owner: {}",
            outcome.reason.unwrap_or_default()
        ),
        other => bail!("unexpected access status {other}"),
    }
    if !granted(&prior) {
        bail!("the owner answered granted but no grant was kept");
    }
    Ok(vec![prior.map(|p| p.delegation).unwrap_or_default()])
}

/// A received chain usable for `entry`'s dataset, if any (see [`held_chain`]).
fn received_chain(node: &Node, entry: &Entry) -> Result<Option<Vec<Vec<u8>>>> {
    let t = now();
    let me = node.did();
    let dataset = entry.dataset.to_string();
    let mut best: Option<(i64, Vec<Vec<u8>>)> = None;
    for (cid, record) in node.shared.store.received()? {
        let mut links = Vec::with_capacity(record.chain.len());
        for bytes in &record.chain {
            match Delegation::decode(bytes) {
                Ok((d, _)) => links.push(d),
                Err(e) => {
                    warn!(token = %cid, error = %e, "stored delegation chain no longer decodes");
                    break;
                }
            }
        }
        let (Some(root), Some(last)) = (links.first(), links.last()) else {
            continue;
        };
        if links.len() != record.chain.len() {
            continue;
        }
        let covers = command_covers(&last.cmd, ucan::CMD_FETCH)
            || command_covers(&last.cmd, ucan::CMD_REPUBLISH);
        let exp = links.iter().filter_map(|d| d.exp).min().unwrap_or(i64::MAX);
        let usable = root.iss == entry.iss
            && root.sub == Some(entry.iss)
            && last.aud == me
            && covers
            && exp > t
            && caveats::pinned_text(&root.pol, caveats::ARG_DATASET).as_deref()
                == Some(dataset.as_str());
        let usable = usable && crate::revoke::revoked(&node.shared, &record)?.is_none();
        if usable && best.as_ref().is_none_or(|(e, _)| exp > *e) {
            best = Some((exp, record.chain.iter().map(|b| b.to_vec()).collect()));
        }
    }
    Ok(best.map(|(_, chain)| chain))
}

/// The invocation (unsigned) and proofs for fetching `signed`, or none for open data. Its
/// arguments meet the chain's caveats: the purpose granted, this node's jurisdiction (from its
/// config, as its signed profile states), the hash of the terms it accepted, and the retention
/// it keeps to (the shortest the chain and the entry allow).
///
/// # Errors
///
/// Closed data, no usable grant, or a grant whose command does not include fetching.
pub async fn credentials(
    node: &Node,
    signed: &SignedEntry,
) -> Result<Option<(Invocation, Vec<Vec<u8>>)>> {
    let entry = &signed.entry;
    match entry.level() {
        Level::Open => return Ok(None),
        Level::Closed => bail!("the dataset is closed (ISO 37156 5.5.2) and cannot be fetched"),
        _ => {}
    }
    let id = entry.dataset;
    let chain = held_chain(node, signed).await?;
    let mut links = Vec::with_capacity(chain.len());
    for bytes in &chain {
        let (d, cid) =
            Delegation::decode(bytes).map_err(|e| anyhow!("stored grant is invalid: {e}"))?;
        links.push((d, cid));
    }
    let t = now();
    if links.iter().any(|(d, _)| d.exp.is_some_and(|e| e <= t)) {
        bail!("the grant for {id} has expired: request access again");
    }
    let last_cmd = links.last().map(|(d, _)| d.cmd.clone()).unwrap_or_default();
    let cmd = if command_covers(&last_cmd, ucan::CMD_FETCH) {
        ucan::CMD_FETCH
    } else if command_covers(&last_cmd, ucan::CMD_REPUBLISH) {
        ucan::CMD_REPUBLISH
    } else {
        bail!("the delegation held for {id} is for {last_cmd}, which does not include fetching");
    };

    let text = |s: String| ciborium::Value::Text(s);
    let mut args = BTreeMap::new();
    args.insert(caveats::ARG_DATASET.to_string(), text(id.to_string()));
    args.insert(
        caveats::ARG_CONTENT.to_string(),
        text(entry.held().map(|(_, c, _)| c.to_hex()).unwrap_or_default()),
    );
    args.insert(
        caveats::ARG_JURISDICTION.to_string(),
        text(node.shared.config.jurisdiction.clone()),
    );
    if let Some(purpose) = links
        .iter()
        .find_map(|(d, _)| caveats::pinned_text(&d.pol, caveats::ARG_PURPOSE))
    {
        args.insert(caveats::ARG_PURPOSE.to_string(), text(purpose));
    }
    if let Some(terms) = &entry.iso.terms {
        args.insert(
            caveats::ARG_TERMS.to_string(),
            text(caveats::terms_hash(terms)),
        );
    }
    let bound = links
        .iter()
        .filter_map(|(d, _)| caveats::retention_bound(&d.pol))
        .chain(entry.iso.privacy.retention_days.map(i128::from))
        .min();
    if let Some(days) = bound {
        let days = u32::try_from(days.max(0)).unwrap_or(u32::MAX);
        args.insert(
            caveats::ARG_RETENTION_DAYS.to_string(),
            ciborium::Value::Integer(days.into()),
        );
    }
    if let Some(fields) = fields_to_ask(entry, &links)? {
        args.insert(
            caveats::ARG_FIELDS.to_string(),
            ciborium::Value::Array(fields.into_iter().map(text).collect()),
        );
    }
    let inv = Invocation {
        iss: node.did(),
        sub: entry.iss,
        aud: Some(entry.iss),
        cmd: cmd.into(),
        args,
        prf: links.iter().map(|(_, cid)| *cid).collect::<Vec<Cid>>(),
        exp: Some(t + INVOCATION_TTL_SECS),
        iat: Some(t),
        nonce: rand::random::<[u8; 16]>().to_vec(),
        meta: None,
        cause: None,
    };
    Ok(Some((inv, chain)))
}

/// The fields to state when the chain limits them (ISO 37156 8.2.2 c): every field all its
/// links permit that the entry's dictionary still has, in the dataset's column order; `None`
/// when no link limits fields.
fn fields_to_ask(entry: &Entry, links: &[(Delegation, Cid)]) -> Result<Option<Vec<String>>> {
    let Some(mut names) = caveats::permitted_by_all(links.iter().map(|(d, _)| &d.pol)) else {
        return Ok(None);
    };
    let id = entry.dataset;
    names.retain(|n| entry.iso.dictionary.iter().any(|f| &f.name == n));
    if names.is_empty() {
        bail!(
            "the grant for {id} permits only fields that its current data dictionary no longer \
             has: ask the owner for a new grant"
        );
    }
    let columns = caveats::field_columns(entry, &names)
        .map_err(|e| anyhow!("the grant for {id} limits fields, but {e}"))?;
    Ok(Some(caveats::column_names(entry, &columns)))
}

fn partial_file(out: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "cannot write {}: directory {} does not exist",
            out.display(),
            dir.display()
        );
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".cix-partial")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

async fn receive(
    stream: &mut libp2p::Stream,
    out: &Path,
    expected: &ContentHash,
    length: u64,
    progress: &mut (impl FnMut(u64, u64) + Send),
) -> Result<u64> {
    let tmp = partial_file(out)?;
    let mut file = tokio::fs::File::from_std(tmp.reopen()?);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    progress(0, length);
    while got < length {
        let want = CHUNK.min((length - got) as usize);
        // Fill the whole buffer before hashing and writing: the muxer hands over a frame at a
        // time, and one file write per frame costs a blocking-pool round trip each.
        let mut n = 0;
        while n < want {
            let read = tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf[n..want]))
                .await
                .map_err(|_| {
                    anyhow!(
                        "the transfer stalled after {} of {length} bytes",
                        got + n as u64
                    )
                })??;
            if read == 0 {
                bail!(
                    "the owner closed the transfer after {} of {length} bytes; nothing was \
                     written",
                    got + n as u64
                );
            }
            n += read;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .await
            .with_context(|| format!("cannot write beside {} (disk full?)", out.display()))?;
        got += n as u64;
        progress(got, length);
    }
    let actual: ContentHash = hasher.finalize().into();
    if &actual != expected {
        warn!(expected = %expected, actual = %actual, "received bytes do not match the catalogue");
        bail!(
            "the received bytes do not match the dataset's BLAKE3 {expected}; nothing was written"
        );
    }
    file.flush().await?;
    file.sync_all().await?;
    drop(file);
    tmp.persist(out)
        .with_context(|| format!("cannot move the verified file to {}", out.display()))?;
    Ok(got)
}

/// Copies a local blob to `out` through a verified temporary file.
async fn write_verified_copy(
    blob: &Path,
    out: &Path,
    expected: &ContentHash,
) -> Result<(ContentHash, u64)> {
    let blob = blob.to_path_buf();
    let out = out.to_path_buf();
    let expected = *expected;
    tokio::task::spawn_blocking(move || {
        let tmp = partial_file(&out)?;
        let mut src = std::fs::File::open(&blob)
            .with_context(|| format!("blob {} is missing", blob.display()))?;
        let mut dst = tmp.reopen()?;
        let mut hasher = blake3::Hasher::new();
        let n = std::io::copy(&mut src, &mut blake3_tee(&mut hasher, &mut dst))?;
        let h: ContentHash = hasher.finalize().into();
        if h != expected {
            tracing::error!(blob = %blob.display(), "stored blob does not match its hash");
            bail!("the stored copy is corrupt (hash mismatch)");
        }
        dst.sync_all()?;
        tmp.persist(&out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        Ok((h, n))
    })
    .await
    .map_err(|e| anyhow!("copy task failed: {e}"))?
}

struct Tee<'a, W> {
    hasher: &'a mut blake3::Hasher,
    inner: &'a mut W,
}

fn blake3_tee<'a, W: std::io::Write>(
    hasher: &'a mut blake3::Hasher,
    inner: &'a mut W,
) -> Tee<'a, W> {
    Tee { hasher, inner }
}

impl<W: std::io::Write> std::io::Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
