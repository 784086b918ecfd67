//! What the demo found, as `cix-testnet demo --json` prints it.
//!
//! One JSON object. Hashes are BLAKE3 in lower-case hex (what `b3sum` prints), sizes in bytes,
//! durations in milliseconds. `ok` is true exactly when every entry of `expectations` held.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// The whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// True when every expectation held.
    pub ok: bool,
    /// The agencies, in the order they started.
    pub agencies: Vec<AgencyReport>,
    /// Every dataset published.
    pub published: Vec<PublishedReport>,
    /// What each agency found in the others' catalogues.
    pub discovery: Vec<DiscoveryReport>,
    /// Every successful fetch.
    pub fetches: Vec<FetchReport>,
    /// Every refusal the demo provoked, with the message the requester saw.
    pub refusals: Vec<Refusal>,
    /// Access requests and the owners' decisions.
    pub requests: Vec<RequestReport>,
    /// How long things took.
    pub timings: Timings,
    /// Each thing the demo checks, and whether it held.
    pub expectations: Vec<Expectation>,
    /// Where homes, published files and downloads were kept (`--keep`), if anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<PathBuf>,
}

impl Report {
    /// The expectations that did not hold.
    pub fn failures(&self) -> impl Iterator<Item = &Expectation> {
        self.expectations.iter().filter(|e| !e.held)
    }

    /// The fetch of the dataset with this title, if it happened.
    pub fn fetch_of(&self, title: &str) -> Option<&FetchReport> {
        self.fetches.iter().find(|f| f.title == title)
    }
}

/// One agency and its node.
#[derive(Debug, Clone, Serialize)]
pub struct AgencyReport {
    /// Display name.
    pub name: String,
    /// Its principal, a did:key.
    pub did: String,
    /// Its libp2p PeerId.
    pub peer_id: String,
    /// Infrastructure sectors.
    pub sectors: Vec<String>,
    /// Addresses it listened on.
    pub listen: Vec<String>,
}

/// One published dataset.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedReport {
    /// Publishing agency.
    pub agency: String,
    /// Dataset id.
    pub dataset: String,
    /// Title.
    pub title: String,
    /// Spectrum level (ISO 37156 5.5).
    pub spectrum: String,
    /// The shipped file it was made from.
    pub file: String,
    /// BLAKE3 hex of the content.
    pub content_hash: String,
    /// Size.
    pub bytes: u64,
    /// ISO 37156 5.2 data type.
    pub data_type: String,
    /// ISO 37156 5.3 kind of collected data.
    pub kind: String,
    /// ISO 37156 5.3 main SCCM concept.
    pub concept: String,
    /// Infrastructure domain.
    pub domain: String,
    /// ISO 37156 5.3 insight level.
    pub insight: String,
    /// Licence.
    pub licence: Option<String>,
    /// Peers the announcement went to directly (0 for closed data).
    pub announced_to: usize,
}

/// One agency's view of the others' catalogues once discovery finished.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveryReport {
    /// The agency looking.
    pub agency: String,
    /// Titles of the other agencies' entries it lists.
    pub entries_from_others: Vec<String>,
    /// How long after publishing began it listed every open and shared entry of the others.
    pub complete_after_ms: f64,
    /// Whether it ever listed the closed dataset (it must not).
    pub lists_closed_dataset: bool,
}

/// One verified fetch.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    /// Demo step.
    pub step: u8,
    /// Dataset id.
    pub dataset: String,
    /// Title.
    pub title: String,
    /// Spectrum level.
    pub spectrum: String,
    /// Owner agency.
    pub owner: String,
    /// Fetching agency.
    pub requester: String,
    /// Shipped file the dataset was published from.
    pub file: String,
    /// Where the copy was written; only when it was kept (`--keep`), since a temporary
    /// directory is gone by the time anyone reads the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Bytes received.
    pub bytes: u64,
    /// BLAKE3 hex of the file as written, computed by the demo after the fetch.
    pub content_hash: String,
    /// BLAKE3 hex of the shipped file.
    pub shipped_hash: String,
    /// Whether the two agree (and the node's own verification agreed too).
    pub verified: bool,
    /// Time from asking to a verified file on disk.
    pub duration_ms: f64,
}

/// A refusal, as the requester saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// Demo step.
    pub step: u8,
    /// Why the demo provoked it: `pending`, `denied` or `closed`.
    pub case: String,
    /// Dataset id.
    pub dataset: String,
    /// Title.
    pub title: String,
    /// Spectrum level.
    pub spectrum: String,
    /// Owner agency.
    pub owner: String,
    /// Requesting agency.
    pub requester: String,
    /// The error message the requester's node gave.
    pub message: String,
}

/// An access request and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestReport {
    /// Demo step.
    pub step: u8,
    /// The id in the owner's queue (empty when nothing was queued).
    pub queue_id: String,
    /// Dataset id.
    pub dataset: String,
    /// Title.
    pub title: String,
    /// Owner agency.
    pub owner: String,
    /// Requesting agency.
    pub requester: String,
    /// Stated purpose.
    pub purpose: String,
    /// First answer: open, granted, pending or denied.
    pub first_answer: String,
    /// Final state: granted, approved or denied.
    pub outcome: String,
    /// The owner's reason, when denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Durations, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Starting the three nodes.
    pub start_ms: f64,
    /// From the last start until every node was connected to the other two.
    pub connect_ms: f64,
    /// Publishing every dataset (copy, hash, sign, announce).
    pub publish_ms: f64,
    /// From the first publication until every agency listed every open and shared entry.
    pub discovery_ms: f64,
    /// The whole demo.
    pub total_ms: f64,
}

/// One thing the demo checks.
#[derive(Debug, Clone, Serialize)]
pub struct Expectation {
    /// Demo step (0 for setting up).
    pub step: u8,
    /// What should hold, as a sentence.
    pub name: String,
    /// Whether it did.
    pub held: bool,
    /// What was observed.
    pub detail: String,
}

/// A duration in milliseconds, to a tenth.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}
