//! Signing imported catalogue records (`POST /v1/catalogue/import`) and exporting this
//! node's own entries (`GET /v1/catalogue/export`).
//!
//! The command line reads the catalogue file and applies the operator's mapping; the node
//! receives only confirmed drafts: a record plus a complete ISO 37156 block. Each becomes an
//! entry signed by this node, with the dataset id derived from this node's key and the
//! record's source identifier ([`cix_interchange::dataset_id_for`]): importing the same
//! record again makes a new version only when something changed. A record describing data
//! this node does not hold is a reference-only entry, announced like any other per its
//! spectrum (closed ones are not announced, ISO 37156 5.5.2).

use anyhow::{anyhow, Result};
use cix_interchange::{dataset_id_for, own_dataset_of, Classification, ExportFormat, Record};
use cix_protocol::catalogue::{Entry, Level, SignedEntry};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::node::Node;

/// Most drafts one import request may carry.
pub const MAX_IMPORT_DRAFTS: usize = 10_000;

/// The body of `POST /v1/catalogue/import`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The confirmed drafts.
    pub drafts: Vec<ConfirmedDraft>,
    /// Check and report only: sign and store nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// One record and its confirmed ISO 37156 block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmedDraft {
    /// The description.
    pub record: Record,
    /// The ISO block; every required field must be set.
    pub iso: Classification,
}

/// What happened to one record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The record's source identifier.
    pub source_id: String,
    /// Its title.
    pub title: String,
    /// `created`, `updated`, `unchanged`, `refused` (or `would-create`, `would-update` in a
    /// dry run).
    pub outcome: String,
    /// Dataset id, when it got one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Entry id of the version now current.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Version number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// open, shared-..., closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spectrum: Option<String>,
    /// Peers it was announced to.
    pub announced_to: usize,
}

/// Signs, stores and announces confirmed drafts.
///
/// # Errors
///
/// Only for a request over [`MAX_IMPORT_DRAFTS`] or store failures; a bad record is an
/// outcome `refused`, not an error.
pub async fn import(node: &Node, req: ImportRequest) -> Result<Vec<ImportOutcome>> {
    if req.drafts.len() > MAX_IMPORT_DRAFTS {
        anyhow::bail!(
            "{} drafts in one import; at most {MAX_IMPORT_DRAFTS}: split the file",
            req.drafts.len()
        );
    }
    let mut out = Vec::with_capacity(req.drafts.len());
    for d in req.drafts {
        let source_id = d.record.source_id.clone();
        let title = d.record.title.clone();
        let refused = |reason: String| {
            warn!(source = %crate::rules::clip(source_id.clone()), "import refused a record");
            ImportOutcome {
                source_id: source_id.clone(),
                title: title.clone(),
                outcome: "refused".into(),
                dataset: None,
                entry: None,
                version: None,
                reason: Some(reason),
                spectrum: None,
                announced_to: 0,
            }
        };
        match prepare(node, d) {
            Err(e) => out.push(refused(format!("{e:#}"))),
            Ok(Prepared::Unchanged(latest)) => out.push(ImportOutcome {
                source_id,
                title,
                outcome: "unchanged".into(),
                dataset: Some(latest.entry.dataset.to_string()),
                entry: Some(latest.id.to_string()),
                version: Some(latest.entry.version),
                reason: None,
                spectrum: Some(latest.entry.level().to_string()),
                announced_to: 0,
            }),
            Ok(Prepared::New(signed)) => {
                let updated = signed.entry.version > 1;
                let level = signed.entry.level();
                let mut announced_to = 0;
                let outcome = if req.dry_run {
                    if updated {
                        "would-update"
                    } else {
                        "would-create"
                    }
                } else {
                    node.shared.store.put_entry(&signed)?;
                    node.shared.search.insert(&signed);
                    if level != Level::Closed {
                        announced_to = node.announce(signed.bytes.clone()).await.unwrap_or(0);
                    }
                    debug!(dataset = %signed.entry.dataset, entry = %signed.id, "imported");
                    if updated {
                        "updated"
                    } else {
                        "created"
                    }
                };
                out.push(ImportOutcome {
                    source_id,
                    title,
                    outcome: outcome.into(),
                    dataset: Some(signed.entry.dataset.to_string()),
                    entry: Some(signed.id.to_string()),
                    version: Some(signed.entry.version),
                    reason: None,
                    spectrum: Some(level.to_string()),
                    announced_to,
                });
            }
        }
    }
    if !req.dry_run {
        node.shared.store.flush()?;
    }
    info!(records = out.len(), "catalogue import done");
    Ok(out)
}

enum Prepared {
    New(SignedEntry),
    Unchanged(SignedEntry),
}

fn prepare(node: &Node, d: ConfirmedDraft) -> Result<Prepared> {
    let shared = &node.shared;
    let me = shared.did();
    let mut record = d.record;
    if record.source_id.trim().is_empty() {
        anyhow::bail!("source_id: a record needs its source identifier");
    }
    // The importer signs as itself: a publisher principal other than this node's is not
    // claimed on someone else's behalf.
    if record.publisher.did.is_some_and(|did| did != me) {
        record.publisher.did = None;
    }
    if record.publisher.name.trim().is_empty() {
        record.publisher.name = shared.config.name.clone();
    }
    for dist in &record.distributions {
        if let Some(c) = dist.content {
            if !shared.home.blobs().join(c.to_hex()).exists() {
                anyhow::bail!(
                    "distributions.content: this node does not hold {c}; publish the file with `cix publish`, or drop the content hash to import the record by reference"
                );
            }
        }
    }
    let iso = d.iso.to_iso(me, &record).map_err(|e| anyhow!(e))?;
    // This node's own export names its datasets by their own ids: the same datasets again.
    let dataset = own_dataset_of(&me, &record.source_id)
        .unwrap_or_else(|| dataset_id_for(&me, &record.source_id));
    let latest = shared.store.latest_entry(&dataset)?;
    let (version, previous) = match &latest {
        Some(l) => (l.entry.version + 1, Some(l.id)),
        None => (1, None),
    };
    let mut entry: Entry = record.into_entry(me, dataset, version, previous, iso);
    crate::privacy::link_notice(shared, &mut entry)?;
    if let Some(l) = latest {
        // Other catalogue formats carry no quality measures (ISO 37156 9.3): the ones counted
        // for the same content stay.
        if entry.details.quality_measures.is_none()
            && entry.primary().and_then(|d| d.content) == l.entry.primary().and_then(|d| d.content)
        {
            entry.details.quality_measures = l.entry.details.quality_measures;
        }
        let mut same = Entry {
            version: l.entry.version,
            previous: l.entry.previous,
            ..entry.clone()
        };
        same.details.resolves.clone_from(&l.entry.details.resolves);
        if same == l.entry {
            return Ok(Prepared::Unchanged(l));
        }
    }
    let signed = entry.sign(&shared.key).map_err(|e| anyhow!("{e}"))?;
    Ok(Prepared::New(signed))
}

/// The body `GET /v1/catalogue/export` returns.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    /// The format written.
    pub format: String,
    /// How many entries.
    pub entries: usize,
    /// The document.
    pub text: String,
}

/// Writes the latest version of each of this node's own non-closed datasets.
///
/// # Errors
///
/// Unknown format, store failure.
pub fn export(node: &Node, format: &str) -> Result<Exported> {
    let f: ExportFormat = format.parse().map_err(|e: String| anyhow!(e))?;
    let me = node.did();
    let mut entries: Vec<Entry> = node
        .shared
        .store
        .catalogue()?
        .into_iter()
        .filter(|e| e.entry.iss == me && e.entry.level() != Level::Closed)
        .map(|e| e.entry)
        .collect();
    entries.sort_by(|a, b| a.title.cmp(&b.title).then(a.dataset.cmp(&b.dataset)));
    let bytes = cix_interchange::export(&entries, f).map_err(|e| anyhow!(e))?;
    Ok(Exported {
        format: format.to_string(),
        entries: entries.len(),
        text: String::from_utf8(bytes).map_err(|e| anyhow!("export is not UTF-8: {e}"))?,
    })
}
