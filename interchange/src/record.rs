//! A catalogue record as it comes from (or goes to) another catalogue: the descriptive part
//! of an entry, without signer, ids, versions or the ISO 37156 block.

use cix_protocol::catalogue::{
    Agent, Contact, DatasetId, Details, Distribution, Entry, EntryId, Iso, Spatial, Temporal,
};
use cix_protocol::identity::Did;
use serde::{Deserialize, Serialize};

/// One dataset description read from a catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The record's identifier in its source (`dct:identifier`, else its IRI or CKAN id):
    /// with the publisher's key it fixes the dataset id, so re-importing the same record
    /// updates the same dataset.
    pub source_id: String,
    /// `dct:title`.
    pub title: String,
    /// `dct:description`.
    #[serde(default)]
    pub description: String,
    /// `dcat:keyword`.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// `dcat:theme`.
    #[serde(default)]
    pub themes: Vec<String>,
    /// `dct:publisher`.
    pub publisher: Agent,
    /// `dcat:contactPoint`.
    #[serde(default)]
    pub contact: Option<Contact>,
    /// `dct:license`.
    #[serde(default)]
    pub licence: Option<String>,
    /// `dct:spatial`.
    #[serde(default)]
    pub spatial: Option<Spatial>,
    /// `dct:temporal`.
    #[serde(default)]
    pub temporal: Option<Temporal>,
    /// `dct:issued`.
    pub issued: String,
    /// `dct:modified`.
    pub modified: String,
    /// `dcat:distribution`.
    #[serde(default)]
    pub distributions: Vec<Distribution>,
    /// The other DCAT-AP properties.
    #[serde(default)]
    pub details: Details,
}

impl Record {
    /// The descriptive part of a signed entry; `source_id` is its `details.identifier`, else
    /// `cix:{iss}:{dataset}`.
    pub fn from_entry(e: &Entry) -> Self {
        Record {
            source_id: e.details.identifier.clone().unwrap_or_else(|| entry_iri(e)),
            title: e.title.clone(),
            description: e.description.clone(),
            keywords: e.keywords.clone(),
            themes: e.themes.clone(),
            publisher: e.publisher.clone(),
            contact: e.contact.clone(),
            licence: e.licence.clone(),
            spatial: e.spatial.clone(),
            temporal: e.temporal.clone(),
            issued: e.issued.clone(),
            modified: e.modified.clone(),
            distributions: e.distributions.clone(),
            details: e.details.clone(),
        }
    }

    /// The entry this record becomes, once signer, ids and ISO block are known.
    pub fn into_entry(
        self,
        iss: Did,
        dataset: DatasetId,
        version: u64,
        previous: Option<EntryId>,
        iso: Iso,
    ) -> Entry {
        Entry {
            iss,
            dataset,
            version,
            previous,
            title: self.title,
            description: self.description,
            keywords: self.keywords,
            themes: self.themes,
            publisher: self.publisher,
            contact: self.contact,
            licence: self.licence,
            spatial: self.spatial,
            temporal: self.temporal,
            issued: self.issued,
            modified: self.modified,
            distributions: self.distributions,
            details: self.details,
            iso,
        }
    }
}

/// The IRI an exported entry is known by when it has no `dct:identifier`.
pub fn entry_iri(e: &Entry) -> String {
    format!(
        "urn:cix:{}:{}",
        e.iss.to_string().trim_start_matches("did:key:"),
        e.dataset
    )
}

/// The dataset an exported entry's IRI ([`entry_iri`]) names, if `source_id` is one and
/// `publisher` is the key it names: re-importing one's own export lands on the same
/// datasets instead of copies.
pub fn own_dataset_of(publisher: &Did, source_id: &str) -> Option<DatasetId> {
    let rest = source_id.strip_prefix("urn:cix:")?;
    let (key, dataset) = rest.rsplit_once(':')?;
    let mine = publisher.to_string();
    if key != mine.trim_start_matches("did:key:") {
        return None;
    }
    dataset.parse().ok()
}

/// The dataset id of the record `source_id` imported by `publisher`: the first 16 bytes of
/// a BLAKE3 key derivation over both, so the same record always lands on the same dataset
/// and two publishers never collide.
pub fn dataset_id_for(publisher: &Did, source_id: &str) -> DatasetId {
    let mut h = blake3::Hasher::new_derive_key("cix 2026-12 dataset id of an imported record");
    let did = publisher.to_string();
    h.update(&(did.len() as u64).to_le_bytes());
    h.update(did.as_bytes());
    h.update(source_id.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    DatasetId(id)
}
