//! Catalogue entries: one signed record per dataset version.
//!
//! An [`Entry`] is a DCAT-AP compatible description of one version of a dataset (title,
//! description, keywords, themes, publisher, contact, coverage, licence, distributions with
//! media type, size and BLAKE3 content hash, issued and modified times, version links) plus the
//! [`Iso`] block that ISO 37156 asks for: data type (5.2), concept-model classification and
//! insight level (5.3), data dictionary (5.4), spectrum and access mode (5.5), roles (9.2),
//! provenance and quality (9.3) and the privacy facts of 8.2.
//!
//! Entries travel as signed envelopes tagged [`ENTRY_TAG`]; the signer is `iss`, the primary
//! publisher. An entry's id is the BLAKE3 hash of its envelope bytes ([`EntryId`]). The
//! [`Entry::check`] rules run when an entry is signed and again whenever one arrives from a peer,
//! so a node never stores or forwards an entry that contradicts its own classification.
//!
//! Signed payloads carry no floats: coordinates are integers in units of 1e-7 degree, and
//! times are RFC 3339 text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cbor::{DecodeError, EncodeError};
use crate::content::ContentHash;
use crate::dictionary::Field;
use crate::envelope::{self, Envelope, EnvelopeError};
use crate::identity::{Did, Keypair};
use crate::limits;

/// Type tag of a signed catalogue entry.
pub const ENTRY_TAG: &str = "cix/entry@1";

/// A dataset's stable id, the same for all its versions: 16 random bytes, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetId(pub [u8; 16]);

impl DatasetId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(rand::random())
    }
}

/// An entry's id: BLAKE3 of its signed envelope bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub [u8; 32]);

impl EntryId {
    /// The id of the envelope `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

/// Why text is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {what} (expected {digits} hex digits): {text:?}")]
pub struct ParseIdError {
    what: &'static str,
    digits: usize,
    text: String,
}

macro_rules! hex_id {
    ($ty:ident, $len:expr, $what:expr) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), hex::encode(self.0))
            }
        }
        impl FromStr for $ty {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; $len];
                if s.len() != 2 * $len || hex::decode_to_slice(s, &mut out).is_err() {
                    return Err(ParseIdError {
                        what: $what,
                        digits: 2 * $len,
                        text: s.chars().take(80).collect(),
                    });
                }
                Ok(Self(out))
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let b = serde_bytes::ByteBuf::deserialize(d)?;
                let arr: [u8; $len] = b.into_vec().try_into().map_err(|_| {
                    serde::de::Error::custom(concat!($what, " has the wrong length"))
                })?;
                Ok(Self(arr))
            }
        }
    };
}
hex_id!(DatasetId, 16, "dataset id");
hex_id!(EntryId, 32, "entry id");

/// The data spectrum (ISO 37156 5.5) as one value, the way operators name it on the command
/// line: `open`, `shared-public`, `shared-group`, `shared-named` or `closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// 5.5.4: anyone may access, use, change and share it.
    Open,
    /// 5.5.3 public access: anyone who accepts the stated terms.
    SharedPublic,
    /// 5.5.3 group access: those whose attestations meet predetermined rules.
    SharedGroup,
    /// 5.5.3 named access: only those the owner names, one decision at a time.
    SharedNamed,
    /// 5.5.2: never leaves the owner's node.
    Closed,
}

impl Level {
    /// Every level, in the order the CLI lists them.
    pub const ALL: [Level; 5] = [
        Level::Open,
        Level::SharedPublic,
        Level::SharedGroup,
        Level::SharedNamed,
        Level::Closed,
    ];

    /// The command-line name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Open => "open",
            Level::SharedPublic => "shared-public",
            Level::SharedGroup => "shared-group",
            Level::SharedNamed => "shared-named",
            Level::Closed => "closed",
        }
    }

    /// Splits into the entry's `spectrum` and `access` fields.
    pub fn split(&self) -> (Spectrum, Option<AccessMode>) {
        match self {
            Level::Open => (Spectrum::Open, None),
            Level::SharedPublic => (Spectrum::Shared, Some(AccessMode::Public)),
            Level::SharedGroup => (Spectrum::Shared, Some(AccessMode::Group)),
            Level::SharedNamed => (Spectrum::Shared, Some(AccessMode::Named)),
            Level::Closed => (Spectrum::Closed, None),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL.into_iter().find(|l| l.as_str() == s).ok_or_else(|| {
            format!("unknown spectrum {s:?}: use open, shared-public, shared-group, shared-named or closed")
        })
    }
}

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[doc = $text] #[serde(rename = $text)] $var),+
        }
        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The text form used in CBOR, TOML and JSON.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$var => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let all: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown {} {s:?}: expected one of {}", stringify!($name), all.join(", "))
                })
            }
        }
    };
}

text_enum!(
    /// ISO 37156 5.5.1: how open a data asset is.
    Spectrum { Closed = "closed", Shared = "shared", Open = "open" }
);
text_enum!(
    /// ISO 37156 5.5.3: the access level of shared data.
    AccessMode { Named = "named", Group = "group", Public = "public" }
);
text_enum!(
    /// ISO 37156 5.2: the three data types.
    DataType { Metadata = "metadata", Reference = "reference", Thematic = "thematic" }
);
text_enum!(
    /// ISO 37156 5.3 table 1: the kind of collected data.
    Kind {
        Characteristic = "characteristic", Consumption = "consumption", Movement = "movement",
        Presence = "presence", Production = "production", Status = "status", Supply = "supply",
        Usage = "usage",
    }
);
text_enum!(
    /// ISO 37156 5.3: the main concept of the ISO/IEC 30182 Smart City Concept Model.
    Concept {
        State = "State", Infrastructure = "Infrastructure", Instance = "Instance",
        Place = "Place", Event = "Event",
    }
);
text_enum!(
    /// The infrastructure domain the data comes from.
    Domain {
        Energy = "energy", Water = "water", Transport = "transport", Waste = "waste", Ict = "ict",
    }
);
text_enum!(
    /// ISO 37156 5.3 table 2: insight levels.
    Insight {
        Operational = "operational", Critical = "critical", Analytical = "analytical",
        Strategic = "strategic",
    }
);
text_enum!(
    /// ISO 37156 8.2.3: categories of high-risk personal data.
    HighRisk {
        Sensitive = "sensitive", Financial = "financial", IdentityNumber = "identity-number",
        Vulnerable = "vulnerable", PersonalDetails = "personal-details",
        Negotiations = "negotiations",
    }
);

/// A person or organisation in a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Display name.
    pub name: String,
    /// The principal, when the agent runs a node.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub did: Option<Did>,
    /// The agent's IRI in a catalogue it came from (DCAT-AP publishers are often only an
    /// IRI; `name` then repeats it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uri: Option<String>,
}

/// A point of contact (DCAT `contactPoint`, a vCard).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Name of the person or desk (`vcard:fn`).
    pub name: String,
    /// E-mail address (`vcard:hasEmail`, without `mailto:`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    /// Web page of the contact (`vcard:hasURL`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    /// Telephone (`vcard:hasTelephone`, without `tel:`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phone: Option<String>,
}

/// A bounding box in units of 1e-7 degree (WGS 84), west/south/east/north.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Western longitude.
    pub west: i64,
    /// Southern latitude.
    pub south: i64,
    /// Eastern longitude.
    pub east: i64,
    /// Northern latitude.
    pub north: i64,
}

/// Spatial coverage (ISO 37156 4.2 f).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spatial {
    /// A place name or gazetteer URI.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// The bounding box, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bbox: Option<BoundingBox>,
}

/// Temporal coverage (ISO 37156 4.2 g), RFC 3339 dates or date-times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Temporal {
    /// First instant covered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub start: Option<String>,
    /// Last instant covered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub end: Option<String>,
}

/// One way to get the dataset's bytes (DCAT `Distribution`).
///
/// A distribution is *held* when it has a `content` hash (and so a `bytes` size): its owner
/// serves those exact bytes over `/cix/transfer/1`. It is *referenced* when it has an
/// `access_url` or `download_url`: the data lives elsewhere (an imported catalogue record,
/// for instance). Every distribution is one or the other, or both (rule H1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    /// IANA media type, for example `text/csv` (`dcat:mediaType`); empty when unknown.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub media_type: String,
    /// Exact length in bytes (`dcat:byteSize`). Required for a held distribution.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    /// BLAKE3 of the bytes: the content id (`spdx:checksum`). Present exactly when held.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<ContentHash>,
    /// Suggested file name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub filename: Option<String>,
    /// `dct:title`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    /// `dct:description`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// `dcat:accessURL`: a page or service giving access to the data.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_url: Option<String>,
    /// `dcat:downloadURL`: the file itself.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub download_url: Option<String>,
    /// `dct:format`: a file-type IRI or a short name such as `CSV`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub format: Option<String>,
    /// `dct:license`, when it differs from the dataset's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub licence: Option<String>,
    /// `dcatap:availability` (e.g. the EU planned-availability IRI `.../STABLE`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub availability: Option<String>,
    /// A checksum the source catalogue gave, other than the BLAKE3 content id
    /// (`spdx:checksum`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checksum: Option<Checksum>,
    /// `dct:issued`, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub issued: Option<String>,
    /// `dct:modified`, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub modified: Option<String>,
}

impl Distribution {
    /// The content id and size when this node's owner serves the bytes itself.
    pub fn held(&self) -> Option<(ContentHash, u64)> {
        Some((self.content?, self.bytes?))
    }

    /// Where the data can be got from outside cix: the download URL, else the access URL.
    pub fn url(&self) -> Option<&str> {
        self.download_url.as_deref().or(self.access_url.as_deref())
    }
}

/// A checksum stated by a source catalogue (`spdx:Checksum`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    /// The SPDX algorithm name in lower case (`sha1`, `sha256`, `md5`, ...).
    pub algorithm: String,
    /// The value as given, normally hex.
    pub value: String,
}

/// The title, description and keywords in another language (multilingual DCAT-AP literals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Translation {
    /// BCP 47 language tag, lower case (`en`, `es`, `pt-br`).
    pub lang: String,
    /// The title in that language.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    /// The description in that language.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// The keywords in that language.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub keywords: Vec<String>,
}

/// The DCAT-AP dataset properties beyond the core ones, all optional; the whole block is
/// left out of the encoding when empty, so entries that do not use it sign exactly as
/// before it existed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    /// `dct:identifier`: the dataset's id in the catalogue it came from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub identifier: Option<String>,
    /// BCP 47 tag of the language `title`, `description` and `keywords` are written in.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lang: Option<String>,
    /// Title, description and keywords in other languages (no language twice, none equal
    /// to `lang`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub translations: Vec<Translation>,
    /// `dcat:landingPage`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub landing_page: Option<String>,
    /// `dct:language`: languages of the data itself (IRIs or tags).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub languages: Vec<String>,
    /// `dct:accrualPeriodicity`: how often it is updated (an IRI or a word such as `daily`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub frequency: Option<String>,
    /// `dct:conformsTo`: standards or schemas the data follows.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub conforms_to: Vec<String>,
    /// `dct:accessRights`, as the source catalogue stated them (e.g. POD `accessLevel`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_rights: Option<String>,
    /// `foaf:page`: documentation pages.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub documentation: Vec<String>,
    /// `dcat:version` (`owl:versionInfo`): the publisher's own version label.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version_info: Option<String>,
    /// `adms:versionNotes`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version_notes: Option<String>,
    /// `dcatap:applicableLegislation`: ELI IRIs of the law that applies.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub legislation: Vec<String>,
    /// ISO 37156 9.3: completeness and validity against the dictionary, counted by the
    /// publisher ([`crate::quality::Measures`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quality_measures: Option<crate::quality::Measures>,
    /// ISO 37156 9.2 e: ids (BLAKE3 hex) of the quality reports this version resolves.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub resolves: Vec<String>,
}

impl Details {
    /// True when no property is set (the block is then not encoded).
    pub fn is_empty(&self) -> bool {
        self == &Details::default()
    }
}

/// ISO 37156 5.3 table 3: observation facets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facets {
    /// Subject observed (person or household; building, infrastructure or city; government).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
    /// Metric (cost, frequency, quantity, size, specification, state, speed, life expectancy).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metric: Option<String>,
    /// Place granularity (point, origin, destination, route, neighbourhood, district, city).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub place: Option<String>,
    /// Time granularity (date or timestamp).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time: Option<String>,
    /// Stakeholder role (owner, supplier, operator, investor, planner, citizen).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stakeholder: Option<String>,
}

/// ISO 37156 9.2: who does what with the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    /// (a) collects or transforms the data.
    pub creator: Agent,
    /// (b) manages it for the city and decides its permissions.
    pub owner: Agent,
    /// (c) nodes that hold copies for a purpose without owning them.
    #[serde(default)]
    pub custodians: Vec<Did>,
    /// (d) publishes it according to spectrum and restrictions: the entry's signer.
    pub primary_publisher: Did,
    /// (e) republishes it with added value, under rights the primary publisher set.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secondary_publisher: Option<Did>,
}

/// ISO 37156 8.2: privacy facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privacy {
    /// The data is, or can be combined into, personal data (8.1).
    pub personal_data: bool,
    /// Categories of high-risk personal data it holds (8.2.3).
    #[serde(default)]
    pub high_risk: Vec<HighRisk>,
    /// Purpose the data was collected for (8.2.2 b).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub purpose: Option<String>,
    /// Legal basis for processing and sharing it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub legal_basis: Option<String>,
    /// How long a receiver may keep it, in days (8.2.2 e).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retention_days: Option<u32>,
    /// Jurisdiction whose law governs the data, ISO 3166-1 alpha-2 (8.2.2 a).
    pub jurisdiction: String,
    /// Jurisdictions it may be sent to besides its own (8.2.2 h); empty means its own only
    /// when the data is personal, and anywhere when it is not.
    #[serde(default)]
    pub allowed_jurisdictions: Vec<String>,
    /// BLAKE3 hex of the publisher's privacy notice (ISO 37156 8.3.3), carried in its signed
    /// profile ([`crate::profile::PrivacyNotice::hash`]): the notice that covers this personal
    /// data. A node refuses to publish personal data without one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notice: Option<String>,
}

/// The ISO 37156 block of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iso {
    /// 5.2.
    pub data_type: DataType,
    /// 5.3 table 1.
    pub kind: Kind,
    /// 5.3: main SCCM concept.
    pub concept: Concept,
    /// Infrastructure domain.
    pub domain: Domain,
    /// 5.3 table 2.
    pub insight: Insight,
    /// 5.3 table 3.
    #[serde(default)]
    pub facets: Facets,
    /// 5.5.1.
    pub spectrum: Spectrum,
    /// 5.5.3; present exactly when the spectrum is shared.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access: Option<AccessMode>,
    /// 5.5.3 group access: the dataset's rule, as the groups whose members may have it (any one
    /// suffices; membership is shown by a registrar's attestation, [`crate::attestation`]).
    /// Present exactly when the access mode is group; absent from the encoding when empty.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub groups: Vec<String>,
    /// Terms a requester accepts for shared-public data (5.5.3).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub terms: Option<String>,
    /// 9.2.
    pub roles: Roles,
    /// 9.3: where the data comes from and how it was made.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provenance: Option<String>,
    /// 9.3: a statement of its quality.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quality: Option<String>,
    /// 8.2.
    pub privacy: Privacy,
    /// 5.4: every field with its type and unit.
    #[serde(default)]
    pub dictionary: Vec<Field>,
}

/// One version of a dataset, as its publisher signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The signer: the primary publisher's principal.
    pub iss: Did,
    /// Stable across versions.
    pub dataset: DatasetId,
    /// Version number, 1 for the first.
    pub version: u64,
    /// The entry this one supersedes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous: Option<EntryId>,
    /// DCAT title.
    pub title: String,
    /// DCAT description.
    pub description: String,
    /// DCAT keywords.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// DCAT themes (URIs or short names).
    #[serde(default)]
    pub themes: Vec<String>,
    /// DCAT publisher.
    pub publisher: Agent,
    /// DCAT contact point.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub contact: Option<Contact>,
    /// Licence (SPDX id or URI).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub licence: Option<String>,
    /// Where the data lies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub spatial: Option<Spatial>,
    /// When the data applies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub temporal: Option<Temporal>,
    /// First issued, RFC 3339.
    pub issued: String,
    /// This version's modification time, RFC 3339.
    pub modified: String,
    /// The ways to get the bytes; the first is the canonical one. May be empty: DCAT-AP
    /// recommends, not requires, a distribution, and an entry may only describe.
    pub distributions: Vec<Distribution>,
    /// The optional DCAT-AP properties.
    #[serde(skip_serializing_if = "Details::is_empty", default)]
    pub details: Details,
    /// The ISO 37156 block.
    pub iso: Iso,
}

/// The entry has no distribution its owner serves over `/cix/transfer/1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHeld {
    /// The first URL a distribution names, if any.
    pub url: Option<String>,
}

impl fmt::Display for NotHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.url {
            Some(url) => write!(f, "published by reference only: get it from {url}"),
            None => {
                f.write_str("this entry only describes the data: it has no distribution to get")
            }
        }
    }
}

impl std::error::Error for NotHeld {}

/// An entry refused by [`Entry::check`]: which field, and which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct RuleError {
    /// Dotted path of the offending field.
    pub field: &'static str,
    /// What the rule requires.
    pub rule: String,
}

fn rule(field: &'static str, rule: impl Into<String>) -> RuleError {
    RuleError {
        field,
        rule: rule.into(),
    }
}

impl Entry {
    /// The entry's access level as the CLI names it.
    pub fn level(&self) -> Level {
        match (self.iso.spectrum, self.iso.access) {
            (Spectrum::Open, _) => Level::Open,
            (Spectrum::Closed, _) => Level::Closed,
            (Spectrum::Shared, Some(AccessMode::Public)) => Level::SharedPublic,
            (Spectrum::Shared, Some(AccessMode::Group)) => Level::SharedGroup,
            (Spectrum::Shared, _) => Level::SharedNamed,
        }
    }

    /// The canonical distribution.
    pub fn primary(&self) -> Option<&Distribution> {
        self.distributions.first()
    }

    /// The first distribution the owner serves itself, with its content id and size.
    ///
    /// # Errors
    ///
    /// When no distribution is held, a message for the operator: where to get the data
    /// instead (the first URL a distribution names), or that the entry only describes it.
    pub fn held(&self) -> Result<(&Distribution, ContentHash, u64), NotHeld> {
        if let Some((d, (c, n))) = self
            .distributions
            .iter()
            .find_map(|d| d.held().map(|h| (d, h)))
        {
            return Ok((d, c, n));
        }
        Err(NotHeld {
            url: self
                .distributions
                .iter()
                .find_map(|d| d.url())
                .map(|u| u.chars().take(limits::MAX_URL_BYTES).collect()),
        })
    }

    /// Checks the rules every entry must meet, at signing and on receipt.
    ///
    /// # Errors
    ///
    /// The first [`RuleError`] found, naming the field and the rule.
    pub fn check(&self) -> Result<(), RuleError> {
        self.check_text()?;
        self.check_classification()?;
        self.check_privacy()?;
        self.check_coverage()?;
        self.check_details()?;
        self.check_distributions()?;
        if self.distributions.len() > limits::MAX_DISTRIBUTIONS {
            return Err(rule(
                "distributions",
                format!("at most {}", limits::MAX_DISTRIBUTIONS),
            ));
        }
        if self.iso.dictionary.len() > limits::MAX_DICTIONARY_FIELDS {
            return Err(rule(
                "iso.dictionary",
                format!("at most {} fields", limits::MAX_DICTIONARY_FIELDS),
            ));
        }
        crate::dictionary::check(&self.iso.dictionary)
            .map_err(|e| rule("iso.dictionary", e.to_string()))?;
        if self.version == 0 || (self.version == 1) != self.previous.is_none() {
            return Err(rule(
                "version",
                "version 1 has no previous entry; later versions do",
            ));
        }
        if self.iso.roles.primary_publisher != self.iss {
            return Err(rule(
                "iso.roles.primary_publisher",
                "must be the entry's signer (iss)",
            ));
        }
        Ok(())
    }

    /// DCAT-AP optional properties: bounded text, well-formed URLs and language tags.
    fn check_details(&self) -> Result<(), RuleError> {
        let d = &self.details;
        short("details.identifier", d.identifier.as_deref())?;
        lang_tag("details.lang", d.lang.as_deref())?;
        url("details.landing_page", d.landing_page.as_deref())?;
        short("details.frequency", d.frequency.as_deref())?;
        short("details.access_rights", d.access_rights.as_deref())?;
        short("details.version_info", d.version_info.as_deref())?;
        long("details.version_notes", d.version_notes.as_deref())?;
        for (field, list, urls) in [
            ("details.languages", &d.languages, false),
            ("details.conforms_to", &d.conforms_to, false),
            ("details.documentation", &d.documentation, true),
            ("details.legislation", &d.legislation, true),
            ("themes", &self.themes, false),
        ] {
            if list.len() > limits::MAX_LIST_ITEMS {
                return Err(rule(
                    field,
                    format!("at most {} items", limits::MAX_LIST_ITEMS),
                ));
            }
            for v in list {
                if urls {
                    url(field, Some(v))?;
                } else {
                    short(field, Some(v))?;
                }
            }
        }
        for k in &self.keywords {
            short("keywords", Some(k))?;
        }
        if let Some(m) = &d.quality_measures {
            m.check().map_err(|e| rule("details.quality_measures", e))?;
        }
        if d.resolves.len() > limits::MAX_RESOLVED_REPORTS {
            return Err(rule(
                "details.resolves",
                format!("at most {} reports", limits::MAX_RESOLVED_REPORTS),
            ));
        }
        if d.resolves.iter().any(|r| {
            r.len() != 64
                || !r
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        }) {
            return Err(rule(
                "details.resolves",
                "each report id is 64 lower-case hex digits",
            ));
        }
        if d.translations.len() > limits::MAX_TRANSLATIONS {
            return Err(rule(
                "details.translations",
                format!("at most {}", limits::MAX_TRANSLATIONS),
            ));
        }
        let mut langs: Vec<&str> = Vec::new();
        for t in &d.translations {
            lang_tag("details.translations", Some(&t.lang))?;
            if d.lang.as_deref() == Some(t.lang.as_str()) || langs.contains(&t.lang.as_str()) {
                return Err(rule(
                    "details.translations",
                    format!("language {:?} is given twice (or is also lang)", t.lang),
                ));
            }
            if d.lang.is_none() {
                return Err(rule(
                    "details.lang",
                    "translations need the language of the main text",
                ));
            }
            langs.push(&t.lang);
            if t.title
                .as_deref()
                .is_some_and(|x| x.len() > limits::MAX_TITLE_BYTES)
            {
                return Err(rule(
                    "details.translations",
                    format!("a title is over {} bytes", limits::MAX_TITLE_BYTES),
                ));
            }
            long("details.translations", t.description.as_deref())?;
            if t.keywords.len() > limits::MAX_KEYWORDS {
                return Err(rule(
                    "details.translations",
                    format!("at most {} keywords", limits::MAX_KEYWORDS),
                ));
            }
            for k in &t.keywords {
                short("details.translations", Some(k))?;
            }
        }
        let contact = self.contact.as_ref();
        short("contact.name", contact.map(|c| c.name.as_str()))?;
        short("contact.email", contact.and_then(|c| c.email.as_deref()))?;
        url("contact.url", contact.and_then(|c| c.url.as_deref()))?;
        short("contact.phone", contact.and_then(|c| c.phone.as_deref()))?;
        short("publisher.name", Some(&self.publisher.name))?;
        url("publisher.uri", self.publisher.uri.as_deref())?;
        short("licence", self.licence.as_deref())?;
        Ok(())
    }

    /// Rules H1-H3: each distribution is held, referenced or both, and well-formed.
    fn check_distributions(&self) -> Result<(), RuleError> {
        for d in &self.distributions {
            if d.content.is_some() && d.bytes.is_none() {
                return Err(rule(
                    "distributions.bytes",
                    "a held distribution (with a content hash) must state its size",
                ));
            }
            if d.content.is_none() && d.access_url.is_none() && d.download_url.is_none() {
                return Err(rule(
                    "distributions",
                    "each distribution is held (content hash) or referenced (access_url or download_url), or both",
                ));
            }
            url("distributions.access_url", d.access_url.as_deref())?;
            url("distributions.download_url", d.download_url.as_deref())?;
            short("distributions.media_type", Some(&d.media_type))?;
            short("distributions.filename", d.filename.as_deref())?;
            short("distributions.title", d.title.as_deref())?;
            long("distributions.description", d.description.as_deref())?;
            short("distributions.format", d.format.as_deref())?;
            short("distributions.licence", d.licence.as_deref())?;
            short("distributions.availability", d.availability.as_deref())?;
            if let Some(c) = &d.checksum {
                short("distributions.checksum", Some(&c.algorithm))?;
                short("distributions.checksum", Some(&c.value))?;
            }
            for (field, v) in [
                ("distributions.issued", &d.issued),
                ("distributions.modified", &d.modified),
            ] {
                if let Some(v) = v {
                    if !is_rfc3339(v) {
                        return Err(rule(
                            field,
                            format!("{:?} is not an RFC 3339 date or time", clip(v)),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_text(&self) -> Result<(), RuleError> {
        if self.description.len() > limits::MAX_DESCRIPTION_BYTES {
            return Err(rule(
                "description",
                format!("at most {} bytes", limits::MAX_DESCRIPTION_BYTES),
            ));
        }
        if self.title.trim().is_empty() {
            return Err(rule("title", "must not be empty"));
        }
        if self.title.len() > limits::MAX_TITLE_BYTES {
            return Err(rule(
                "title",
                format!("at most {} bytes", limits::MAX_TITLE_BYTES),
            ));
        }
        if self.keywords.len() > limits::MAX_KEYWORDS {
            return Err(rule(
                "keywords",
                format!("at most {}", limits::MAX_KEYWORDS),
            ));
        }
        for (field, value) in [("issued", &self.issued), ("modified", &self.modified)] {
            if !is_rfc3339(value) {
                return Err(rule(
                    field,
                    format!("{value:?} is not an RFC 3339 date or time"),
                ));
            }
        }
        Ok(())
    }

    /// ISO 37156 5.5: access mode exactly when shared; closed data is never described as
    /// reachable by others.
    fn check_classification(&self) -> Result<(), RuleError> {
        match (self.iso.spectrum, self.iso.access) {
            (Spectrum::Shared, None) => Err(rule(
                "iso.access",
                "shared data needs an access mode (named, group, public)",
            )),
            (Spectrum::Open | Spectrum::Closed, Some(_)) => Err(rule(
                "iso.access",
                "only shared data has an access mode (ISO 37156 5.5.3)",
            )),
            (Spectrum::Shared, Some(AccessMode::Public)) if self.iso.terms.is_none() => Err(rule(
                "iso.terms",
                "shared-public data must state the terms a requester accepts (ISO 37156 5.5.3): \
                 `terms = \"...\"` in the metadata file",
            )),
            _ => self.check_groups(),
        }
    }

    /// ISO 37156 5.5.3 group access: a group rule exactly when the access mode is group, made
    /// of at most [`limits::MAX_GROUPS`] distinct, well-formed group names.
    fn check_groups(&self) -> Result<(), RuleError> {
        let groups = &self.iso.groups;
        let is_group = self.iso.access == Some(AccessMode::Group);
        if is_group && groups.is_empty() {
            return Err(rule(
                "iso.groups",
                "shared-group data must name the groups whose members may have it (ISO 37156 5.5.3)",
            ));
        }
        if !is_group && !groups.is_empty() {
            return Err(rule(
                "iso.groups",
                "only shared-group data has a group rule",
            ));
        }
        if groups.len() > limits::MAX_GROUPS {
            return Err(rule(
                "iso.groups",
                format!("at most {} groups", limits::MAX_GROUPS),
            ));
        }
        if let Some(bad) = groups
            .iter()
            .find(|g| !crate::attestation::is_group_name(g))
        {
            return Err(rule(
                "iso.groups",
                format!(
                    "{:?} is not a group name (1 to {} bytes of a-z, 0-9, '-', '_', '.', '/')",
                    bad.chars().take(80).collect::<String>(),
                    limits::MAX_GROUP_NAME_BYTES
                ),
            ));
        }
        let mut sorted: Vec<&String> = groups.iter().collect();
        sorted.sort();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(rule("iso.groups", "a group is named twice"));
        }
        Ok(())
    }

    /// ISO 37156 8.2: open data holds nothing personal; personal data says why it is held,
    /// under what law, for how long and where.
    fn check_privacy(&self) -> Result<(), RuleError> {
        let p = &self.iso.privacy;
        if !is_country_code(&p.jurisdiction) {
            return Err(rule(
                "iso.privacy.jurisdiction",
                "must be an ISO 3166-1 alpha-2 code",
            ));
        }
        if let Some(bad) = p.allowed_jurisdictions.iter().find(|c| !is_country_code(c)) {
            return Err(rule(
                "iso.privacy.allowed_jurisdictions",
                format!("{bad:?} is not an ISO 3166-1 alpha-2 code"),
            ));
        }
        if !p.high_risk.is_empty() && !p.personal_data {
            return Err(rule(
                "iso.privacy.high_risk",
                "high-risk categories are declared, so personal_data must be true",
            ));
        }
        if p.personal_data && self.iso.spectrum == Spectrum::Open {
            return Err(rule(
                "iso.privacy.personal_data",
                "open data must not hold personal data (ISO 37156 5.5.4, 8.2)",
            ));
        }
        if p.notice.as_ref().is_some_and(|n| {
            n.len() != 64 || !n.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        }) {
            return Err(rule(
                "iso.privacy.notice",
                "must be the BLAKE3 hash of a privacy notice, 64 lowercase hex digits",
            ));
        }
        if p.notice.is_some() && !p.personal_data {
            return Err(rule(
                "iso.privacy.notice",
                "names a privacy notice, so personal_data must be true",
            ));
        }
        if p.personal_data {
            if p.purpose.is_none() {
                return Err(rule(
                    "iso.privacy.purpose",
                    "personal data requires a purpose",
                ));
            }
            if p.legal_basis.is_none() {
                return Err(rule(
                    "iso.privacy.legal_basis",
                    "personal data requires a legal basis",
                ));
            }
            if p.retention_days.is_none() {
                return Err(rule(
                    "iso.privacy.retention_days",
                    "personal data requires a retention period",
                ));
            }
        }
        Ok(())
    }

    fn check_coverage(&self) -> Result<(), RuleError> {
        if let Some(bbox) = self.spatial.as_ref().and_then(|s| s.bbox) {
            const LON: i64 = 1_800_000_000;
            const LAT: i64 = 900_000_000;
            let ok = (-LON..=LON).contains(&bbox.west)
                && (-LON..=LON).contains(&bbox.east)
                && (-LAT..=LAT).contains(&bbox.south)
                && (-LAT..=LAT).contains(&bbox.north)
                && bbox.south <= bbox.north;
            if !ok {
                return Err(rule(
                    "spatial.bbox",
                    "longitudes within ±180°, latitudes within ±90°, south <= north",
                ));
            }
        }
        if let Some(t) = &self.temporal {
            for v in [&t.start, &t.end].into_iter().flatten() {
                if !is_rfc3339(v) {
                    return Err(rule(
                        "temporal",
                        format!("{v:?} is not an RFC 3339 date or time"),
                    ));
                }
            }
            if let (Some(a), Some(b)) = (&t.start, &t.end) {
                if a.get(..10) > b.get(..10) {
                    return Err(rule("temporal", "start is after end"));
                }
            }
        }
        Ok(())
    }

    /// Checks the rules, then signs the entry with `key` (which must be `iss`).
    ///
    /// # Errors
    ///
    /// [`SignError`] naming the broken rule or the encoding problem.
    pub fn sign(&self, key: &Keypair) -> Result<SignedEntry, SignError> {
        if key.did() != self.iss {
            return Err(SignError::WrongKey);
        }
        self.check()?;
        let bytes = envelope::seal(key, ENTRY_TAG, self)?;
        if bytes.len() > limits::MAX_ENTRY_BYTES {
            return Err(SignError::TooLarge(bytes.len()));
        }
        Ok(SignedEntry {
            id: EntryId::of(&bytes),
            entry: self.clone(),
            bytes,
        })
    }
}

/// Why an entry could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The key is not the entry's `iss`.
    #[error("the signing key is not the entry's issuer")]
    WrongKey,
    /// A consistency rule failed.
    #[error("entry refused: {0}")]
    Rule(#[from] RuleError),
    /// CBOR encoding failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The signed entry exceeds [`limits::MAX_ENTRY_BYTES`].
    #[error("signed entry is {0} bytes, over the limit of {max}", max = limits::MAX_ENTRY_BYTES)]
    TooLarge(usize),
}

/// Why received bytes are not an acceptable entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Not a well-formed envelope, or its signature fails.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The payload is not an entry.
    #[error("not a catalogue entry: {0}")]
    Schema(#[from] DecodeError),
    /// The entry breaks a consistency rule.
    #[error("entry refused: {0}")]
    Rule(#[from] RuleError),
}

/// An entry with its signed bytes and id, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEntry {
    /// BLAKE3 of `bytes`.
    pub id: EntryId,
    /// The decoded entry.
    pub entry: Entry,
    /// The envelope exactly as signed.
    pub bytes: Vec<u8>,
}

impl SignedEntry {
    /// Decodes, verifies the signature against `iss`, and checks the rules.
    ///
    /// # Errors
    ///
    /// [`EntryError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let env = Envelope::decode(bytes, limits::MAX_ENTRY_BYTES)?;
        env.expect_tag(ENTRY_TAG)?;
        let entry: Entry = env.payload()?;
        env.verify(&entry.iss.public_key())?;
        entry.check()?;
        Ok(Self {
            id: EntryId::of(bytes),
            entry,
            bytes: bytes.to_vec(),
        })
    }
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Optional text of at most [`limits::MAX_SHORT_TEXT_BYTES`].
fn short(field: &'static str, v: Option<&str>) -> Result<(), RuleError> {
    match v {
        Some(v) if v.len() > limits::MAX_SHORT_TEXT_BYTES => Err(rule(
            field,
            format!("at most {} bytes", limits::MAX_SHORT_TEXT_BYTES),
        )),
        _ => Ok(()),
    }
}

/// Optional text of at most [`limits::MAX_DESCRIPTION_BYTES`].
fn long(field: &'static str, v: Option<&str>) -> Result<(), RuleError> {
    match v {
        Some(v) if v.len() > limits::MAX_DESCRIPTION_BYTES => Err(rule(
            field,
            format!("at most {} bytes", limits::MAX_DESCRIPTION_BYTES),
        )),
        _ => Ok(()),
    }
}

fn url(field: &'static str, v: Option<&str>) -> Result<(), RuleError> {
    match v {
        Some(v) if !is_url(v) => Err(rule(
            field,
            format!(
                "{:?} is not an absolute URI (scheme:rest, no spaces or control characters, at most {} bytes)",
                clip(v),
                limits::MAX_URL_BYTES
            ),
        )),
        _ => Ok(()),
    }
}

fn lang_tag(field: &'static str, v: Option<&str>) -> Result<(), RuleError> {
    match v {
        Some(v) if !is_lang_tag(v) => Err(rule(
            field,
            format!(
                "{:?} is not a lower-case BCP 47 language tag (such as en or pt-br)",
                clip(v)
            ),
        )),
        _ => Ok(()),
    }
}

/// True for an absolute URI in the sense cix checks: at most [`limits::MAX_URL_BYTES`]
/// bytes, a scheme (a letter, then letters, digits, `+`, `-` or `.`), a colon, then at
/// least one character, with no whitespace or control characters anywhere.
pub fn is_url(s: &str) -> bool {
    if s.len() > limits::MAX_URL_BYTES || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
}

/// True for a lower-case BCP 47 tag as cix keeps them: 1 to 8 letters, then optional
/// `-`-separated subtags of 1 to 8 letters or digits, at most 35 bytes.
pub fn is_lang_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (1..=8).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_lowercase()));
    s.len() <= 35
        && first_ok
        && parts.all(|p| {
            (1..=8).contains(&p.len())
                && p.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// True for `YYYY-MM-DD` or an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.f](Z|±HH:MM)`).
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let num =
        |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<u32>().ok()).unwrap_or(99);
    let date_ok = b.len() >= 10
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (1..=12).contains(&num(5..7))
        && (1..=31).contains(&num(8..10));
    if !date_ok {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    let time_ok = b.len() >= 20
        && matches!(b[10], b'T' | b't' | b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && num(11..13) < 24
        && num(14..16) < 60
        && num(17..19) <= 60;
    if !time_ok {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

fn is_country_code(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|c| c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests;
