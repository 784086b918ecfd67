//! Catalogue import and export for cix.
//!
//! Reads Project Open Data `data.json` (the bare-array form before 1.1 and the 1.1 catalog),
//! DCAT-AP in JSON-LD, Turtle and RDF/XML, CKAN package JSON and FIWARE DCAT-AP NGSI-LD
//! entities into [`Record`]s; writes a node's entries as DCAT-AP JSON-LD, DCAT-AP Turtle or
//! data.json with the ISO 37156 block in the cix vocabulary ([`rdf::CIX`]).
//!
//! This crate is pure: no network, no files. It is kept out of `cix-protocol` so that other
//! implementations embedding the protocol crate do not carry RDF parsers.

use std::fmt;
use std::str::FromStr;

use cix_protocol::catalogue::Entry;
use serde::{Deserialize, Serialize};

pub mod mapping;
mod ngsi;
mod pod;
pub mod rdf;
pub mod record;
mod text;

pub use mapping::{Classification, Mapping};
pub use record::{dataset_id_for, own_dataset_of, Record};

/// Largest catalogue file accepted for import.
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;
/// Most records one import may hold.
pub const MAX_IMPORT_RECORDS: usize = 100_000;

/// The formats cix reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Project Open Data `data.json`, bare array or 1.1 catalog.
    DataJson,
    /// DCAT-AP as JSON-LD.
    DcatApJsonld,
    /// DCAT-AP as Turtle.
    DcatApTurtle,
    /// DCAT-AP as RDF/XML.
    DcatApRdfxml,
    /// CKAN `package_show` or `package_search` result, or a list of packages.
    Ckan,
    /// FIWARE Smart Data Models DCAT-AP entities (Catalogue, Dataset, Distribution), NGSI-LD
    /// key-values or normalized.
    NgsiLd,
    /// Drafts written by `cix catalogue import --drafts`, edited by the operator.
    CixDrafts,
}

impl Format {
    /// Every format, as `--format` names them.
    pub const ALL: [Format; 7] = [
        Format::DataJson,
        Format::DcatApJsonld,
        Format::DcatApTurtle,
        Format::DcatApRdfxml,
        Format::Ckan,
        Format::NgsiLd,
        Format::CixDrafts,
    ];

    /// The `--format` name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::DataJson => "data-json",
            Format::DcatApJsonld => "dcat-ap-jsonld",
            Format::DcatApTurtle => "dcat-ap-turtle",
            Format::DcatApRdfxml => "dcat-ap-rdfxml",
            Format::Ckan => "ckan",
            Format::NgsiLd => "ngsi-ld",
            Format::CixDrafts => "cix-drafts",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown format {s:?}: use one of {}", all.join(", "))
            })
    }
}

/// One record read, with what the source said of its ISO block and what did not fit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    /// The description.
    pub record: Record,
    /// The ISO 37156 block as far as known (a cix export states it; other sources do not).
    #[serde(default)]
    pub iso: Classification,
    /// Source fields that have no place in an entry, or values that were not kept and why.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// A record that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Its identifier, or its position (`#12`) when it has none.
    pub source: String,
    /// Why.
    pub reason: String,
}

/// What a catalogue file held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parsed {
    /// Records that became drafts.
    pub drafts: Vec<Draft>,
    /// Records that did not, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Why a file could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// Guesses the format from the file's first bytes (and its name, for RDF/XML).
///
/// # Errors
///
/// When nothing matches: name `--format`.
pub fn detect(name: &str, bytes: &[u8]) -> Result<Format, ImportError> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    let t = head.trim_start_matches('\u{feff}').trim_start();
    let lower = name.to_ascii_lowercase();
    if t.starts_with('<') {
        return Ok(Format::DcatApRdfxml);
    }
    if t.starts_with('{') || t.starts_with('[') {
        if t.contains("\"cix_drafts\"") {
            return Ok(Format::CixDrafts);
        }
        // A POD 1.1 catalog says so, and may carry "@id" and "dcat:" terms of its own.
        if t.contains("project-open-data.cio.gov/v1.1/schema") {
            return Ok(Format::DataJson);
        }
        if t.contains("\"@graph\"") || (t.contains("\"@id\"") && t.contains("dcat")) {
            return Ok(Format::DcatApJsonld);
        }
        if t.contains("urn:ngsi-ld:") {
            return Ok(Format::NgsiLd);
        }
        if t.contains("\"package_show\"")
            || t.contains("\"package_search\"")
            || (t.contains("\"resources\"") && t.contains("\"notes\""))
        {
            return Ok(Format::Ckan);
        }
        if t.contains("\"title\"") {
            return Ok(Format::DataJson);
        }
    }
    if t.starts_with('@')
        || t.starts_with("PREFIX")
        || t.starts_with('#')
        || lower.ends_with(".ttl")
    {
        return Ok(Format::DcatApTurtle);
    }
    Err(ImportError(format!(
        "cannot tell the format of {name}: use --format ({})",
        Format::ALL.map(|f| f.as_str()).join(", ")
    )))
}

/// Reads a catalogue file.
///
/// # Errors
///
/// When the file is over [`MAX_IMPORT_BYTES`] or not in the format at all; single bad
/// records are [`Skipped`], not errors.
pub fn parse(format: Format, bytes: &[u8]) -> Result<Parsed, ImportError> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(ImportError(format!(
            "the file is {} bytes, over the import limit of {MAX_IMPORT_BYTES}",
            bytes.len()
        )));
    }
    let parsed = match format {
        Format::DataJson => pod::parse_data_json(&json(bytes)?)?,
        Format::Ckan => pod::parse_ckan(&json(bytes)?)?,
        Format::NgsiLd => ngsi::parse(&json(bytes)?)?,
        Format::DcatApJsonld | Format::DcatApTurtle | Format::DcatApRdfxml => {
            rdf::parse(format, bytes)?
        }
        Format::CixDrafts => {
            let file: DraftsFile = serde_json::from_slice(bytes)
                .map_err(|e| ImportError(format!("not a cix drafts file: {e}")))?;
            Parsed {
                drafts: file.drafts,
                skipped: file.skipped,
            }
        }
    };
    if parsed.drafts.len() + parsed.skipped.len() > MAX_IMPORT_RECORDS {
        return Err(ImportError(format!(
            "the file holds more than {MAX_IMPORT_RECORDS} records: split it"
        )));
    }
    Ok(parsed)
}

fn json(bytes: &[u8]) -> Result<serde_json::Value, ImportError> {
    serde_json::from_slice(bytes).map_err(|e| ImportError(format!("not JSON: {e}")))
}

/// The file `--drafts` writes and import reads back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DraftsFile {
    /// Always 1.
    pub cix_drafts: u32,
    /// Records to confirm: fill in each `iso` block, then import this file.
    pub drafts: Vec<Draft>,
    /// Records that were not imported.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
}

/// The formats cix writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// DCAT-AP as JSON-LD.
    DcatApJsonld,
    /// DCAT-AP as Turtle.
    DcatApTurtle,
    /// Project Open Data 1.1 `data.json`.
    DataJson,
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dcat-ap-jsonld" => Ok(ExportFormat::DcatApJsonld),
            "dcat-ap-turtle" => Ok(ExportFormat::DcatApTurtle),
            "data-json" => Ok(ExportFormat::DataJson),
            _ => Err(format!(
                "unknown export format {s:?}: use dcat-ap-jsonld, dcat-ap-turtle or data-json"
            )),
        }
    }
}

/// Writes `entries` (a node's own, latest, non-closed) in `format`.
///
/// # Errors
///
/// Only if the RDF serializer fails, which it does not for valid entries.
pub fn export(entries: &[Entry], format: ExportFormat) -> Result<Vec<u8>, ImportError> {
    match format {
        ExportFormat::DataJson => Ok(pod::export_data_json(entries)),
        ExportFormat::DcatApJsonld => rdf::export(entries, Format::DcatApJsonld),
        ExportFormat::DcatApTurtle => rdf::export(entries, Format::DcatApTurtle),
    }
}
