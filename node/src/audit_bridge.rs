//! Where receipts, deletions and jurisdiction refusals are recorded for accountability
//! (ISO 37156 8.3.4, 9.4).
//!
//! Until the node's signed audit log takes these records, they are kept in order in the
//! `accountability` tree (key: sequence number, 8 bytes big-endian; value: [`Record`]) and
//! logged under the tracing target `cix::audit`. [`record`] is the one call every module uses,
//! so moving to the audit log changes this file only.

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

use crate::node::Shared;

const TREE: &str = "accountability";

/// One record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number, from 0.
    pub seq: u64,
    /// Unix milliseconds.
    pub at: i64,
    /// What happened: `receipt-signed`, `receipt-received`, `receipt-countersigned`,
    /// `receipt-refused`, `deletion`, `deletion-notice-sent`, `deletion-notice-received`,
    /// `jurisdiction-refused`.
    pub kind: String,
    /// In words, with ids; never payload bytes.
    pub detail: String,
}

/// Appends a record. A failure to record is our own broken invariant: logged as an error.
pub fn record(shared: &Shared, kind: &str, detail: &str) {
    tracing::info!(target: "cix::audit", kind, detail);
    let result = (|| -> Result<()> {
        let tree = shared.store.tree(TREE)?;
        let seq = tree
            .last()?
            .map(|(k, _)| <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes))
            .transpose()
            .map_err(|_| anyhow!("corrupt accountability key"))?
            .map_or(0, |s| s + 1);
        let r = Record {
            seq,
            at: crate::receipts::now_ms(),
            kind: kind.into(),
            detail: detail.into(),
        };
        let bytes = cix_protocol::cbor::to_vec(&r).map_err(|e| anyhow!("{e}"))?;
        tree.insert(seq.to_be_bytes(), bytes)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::error!(error = %e, kind, "cannot record an accountability event");
    }
}

/// Every record, in order.
///
/// # Errors
///
/// Store failures or a corrupt record.
pub fn list(shared: &Shared) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for item in shared.store.tree(TREE)?.iter() {
        let (_, v) = item?;
        out.push(
            cix_protocol::cbor::from_slice(&v, 1 << 16)
                .map_err(|e| anyhow!("corrupt accountability record: {e}"))?,
        );
    }
    Ok(out)
}
