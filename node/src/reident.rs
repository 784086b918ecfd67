//! The re-identification guard at the node (ISO 37156 7.4.2.5): personal data in a CSV table
//! whose dictionary marks quasi-identifiers is checked against the node's thresholds
//! (`[reidentification]` in the config) before it is published, and again before it is served
//! when the thresholds changed since ([`cix_protocol::reident`] does the counting).
//!
//! Verdicts are kept in the `reident` tree, keyed by content hash and thresholds, so a table is
//! counted once per policy, not once per fetch.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use cix_protocol::catalogue::Entry;
use cix_protocol::caveats;
use cix_protocol::content::ContentHash;
use cix_protocol::reident::{self, GuardReport, Thresholds};
use cix_protocol::wire::DenyCode;
use tracing::{debug, warn};

use crate::node::Shared;
use crate::rules::Refusal;

const TREE: &str = "reident";

fn key(content: &ContentHash, th: &Thresholds) -> Vec<u8> {
    let mut k = content.0.to_vec();
    k.extend_from_slice(&th.k.to_be_bytes());
    k.extend_from_slice(&th.l.to_be_bytes());
    k.extend_from_slice(&th.max_suppressed_permille.to_be_bytes());
    k
}

/// Whether the guard applies to `entry`: personal data in a CSV table with quasi-identifiers.
pub fn applies(entry: &Entry) -> bool {
    entry.iso.privacy.personal_data
        && caveats::is_csv(entry)
        && reident::applies(&entry.iso.dictionary)
}

/// Runs the guard on `file` under the node's thresholds.
///
/// # Errors
///
/// If the file cannot be read or checked.
pub fn run(shared: &Shared, entry: &Entry, file: &Path) -> Result<Option<GuardReport>> {
    let f = std::fs::File::open(file).map_err(|e| {
        anyhow!(
            "cannot open {} for the re-identification guard: {e}",
            file.display()
        )
    })?;
    reident::check_csv(
        std::io::BufReader::new(f),
        &entry.iso.dictionary,
        &shared.config.reidentification,
    )
    .map_err(|e| anyhow!("re-identification guard (ISO 37156 7.4.2.5): {e}"))
}

/// Refuses to publish `entry` (whose bytes are `file`) when the guard fails.
///
/// # Errors
///
/// The guard's report when it refuses, or a read error.
pub fn guard_publish(
    shared: &Shared,
    entry: &Entry,
    file: &Path,
    content: &ContentHash,
) -> Result<()> {
    if !applies(entry) {
        return Ok(());
    }
    let Some(report) = run(shared, entry, file)? else {
        return Ok(());
    };
    if !report.passes() {
        warn!(dataset = %entry.dataset, offending = report.offending_groups, "publication refused by the re-identification guard");
        bail!("{}", report.summary());
    }
    debug!(dataset = %entry.dataset, k = report.k, "re-identification guard passed");
    shared
        .store
        .tree(TREE)?
        .insert(key(content, &shared.config.reidentification), &[1u8][..])?;
    Ok(())
}

/// Refuses to serve personal data the guard does not pass under the current thresholds.
///
/// # Errors
///
/// A refusal naming the guard.
pub fn guard_serve(shared: &Shared, entry: &Entry, content: &ContentHash) -> Result<(), Refusal> {
    if !applies(entry) {
        return Ok(());
    }
    let internal = |e: anyhow::Error| {
        tracing::error!(error = %format!("{e:#}"), "re-identification guard could not run");
        (
            DenyCode::Busy,
            "the owner's node could not check the data".to_string(),
        )
    };
    let k = key(content, &shared.config.reidentification);
    let tree = shared.store.tree(TREE).map_err(internal)?;
    match tree.get(&k) {
        Ok(Some(v)) if v.as_ref() == [1u8] => return Ok(()),
        Ok(Some(_)) => {
            return Err((
                DenyCode::DeniedByOwner,
                "the data does not pass the owner's re-identification guard (ISO 37156 7.4.2.5)"
                    .into(),
            ))
        }
        Ok(None) => {}
        Err(e) => return Err(internal(e.into())),
    }
    let blob = shared.home.blobs().join(content.to_hex());
    let report = run(shared, entry, &blob).map_err(internal)?;
    let passes = report.as_ref().is_none_or(GuardReport::passes);
    let _ = tree.insert(k, &[u8::from(passes)][..]);
    if passes {
        Ok(())
    } else {
        warn!(dataset = %entry.dataset, "serving refused by the re-identification guard");
        Err((
            DenyCode::DeniedByOwner,
            "the data does not pass the owner's re-identification guard (ISO 37156 7.4.2.5) \
             under its current thresholds"
                .into(),
        ))
    }
}
