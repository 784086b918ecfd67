//! Publishing a file: copy it into the blob store, describe it, sign the entry, announce it.
//!
//! What the command line does not say comes from the metadata file (`--meta FILE.toml`, see
//! [`Meta`]), then from defaults. A CSV's data dictionary (ISO 37156 5.4) is inferred from its
//! header and values, and any field the metadata file lists overrides the inferred one; the
//! file is then validated against the result, and a file that breaks it is refused with the
//! line, column and rule of each violation unless the operator accepts it (`accept_invalid`,
//! recorded in the entry's quality statement). JSON and GeoJSON files get their structure
//! described. The entry's consistency rules are checked before anything is stored: a refused entry leaves
//! no blob and no record behind.

use crate::audit::AuditEvent;
use cix_protocol::audit::AuditKind;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use cix_protocol::catalogue::{
    Agent, BoundingBox, Concept, Contact, DataType, DatasetId, Distribution, Domain, Entry, Facets,
    HighRisk, Insight, Iso, Kind, Level, Privacy, Roles, SignedEntry, Spatial, Temporal,
};
use cix_protocol::content::ContentHash;
use cix_protocol::dictionary::{self, Field, FieldType};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::node::{Node, Shared};
use crate::store::OwnDataset;

/// The metadata file: every field optional; the command line wins over it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// `open`, `shared-public`, `shared-group`, `shared-named` or `closed`.
    pub spectrum: Option<String>,
    /// Keywords.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// DCAT themes.
    #[serde(default)]
    pub themes: Vec<String>,
    /// Licence, SPDX id or URI.
    pub licence: Option<String>,
    /// Contact name.
    pub contact_name: Option<String>,
    /// Contact e-mail.
    pub contact_email: Option<String>,
    /// Media type; guessed from the extension when absent.
    pub media_type: Option<String>,
    /// Place name.
    pub place: Option<String>,
    /// Bounding box in degrees: west, south, east, north.
    pub bbox: Option<[f64; 4]>,
    /// First date covered.
    pub temporal_start: Option<String>,
    /// Last date covered.
    pub temporal_end: Option<String>,
    /// ISO 37156 5.2 data type.
    pub data_type: Option<String>,
    /// ISO 37156 5.3 kind of collected data.
    pub kind: Option<String>,
    /// ISO 37156 5.3 SCCM concept.
    pub concept: Option<String>,
    /// Infrastructure domain.
    pub domain: Option<String>,
    /// ISO 37156 5.3 insight level.
    pub insight: Option<String>,
    /// ISO 37156 5.3 observation facets.
    #[serde(default)]
    pub facets: FacetsMeta,
    /// Terms for shared-public data.
    pub terms: Option<String>,
    /// The group rule of shared-group data: groups whose members may have it (any one).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Who created the data (defaults to the agency).
    pub creator: Option<String>,
    /// Who owns it (defaults to the agency).
    pub owner: Option<String>,
    /// Provenance statement.
    pub provenance: Option<String>,
    /// Quality statement.
    pub quality: Option<String>,
    /// ISO 37156 8.2 personal data.
    #[serde(default)]
    pub personal_data: bool,
    /// ISO 37156 8.2.3 high-risk categories.
    #[serde(default)]
    pub high_risk: Vec<String>,
    /// Purpose of collection.
    pub purpose: Option<String>,
    /// Legal basis.
    pub legal_basis: Option<String>,
    /// Retention in days.
    pub retention_days: Option<u32>,
    /// Jurisdiction (defaults to the node's).
    pub jurisdiction: Option<String>,
    /// Jurisdictions it may go to.
    #[serde(default)]
    pub allowed_jurisdictions: Vec<String>,
    /// Dictionary overrides, by field name.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldMeta>,
}

/// Observation facets in the metadata file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacetsMeta {
    /// Subject.
    pub subject: Option<String>,
    /// Metric.
    pub metric: Option<String>,
    /// Place granularity.
    pub place: Option<String>,
    /// Time granularity.
    pub time: Option<String>,
    /// Stakeholder role.
    pub stakeholder: Option<String>,
}

/// Overrides for one dictionary field (ISO 37156 5.4): what the metadata file says wins over
/// what was inferred, and the file is then validated against the result.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMeta {
    /// Type.
    #[serde(rename = "type")]
    pub field_type: Option<FieldType>,
    /// Unit.
    pub unit: Option<String>,
    /// Meaning.
    pub description: Option<String>,
    /// Whether values may be missing; `false` makes a value required in every row.
    pub nullable: Option<bool>,
    /// Smallest allowed value (a TOML number, date or string).
    pub min: Option<toml::Value>,
    /// Largest allowed value.
    pub max: Option<toml::Value>,
    /// The only values allowed.
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<toml::Value>>,
    /// `quasi-identifier` or `sensitive`: the column's part in the re-identification guard
    /// (ISO 37156 7.4.2.5, [`crate::reident`]).
    pub privacy: Option<cix_protocol::reident::ColumnRole>,
}

/// What `cix publish` asks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublishRequest {
    /// The file, as an absolute path on the node's machine.
    pub path: PathBuf,
    /// Title (overrides the metadata file).
    pub title: Option<String>,
    /// Spectrum level (overrides the metadata file).
    pub spectrum: Option<String>,
    /// Text of the metadata TOML file.
    pub meta: Option<String>,
    /// Publish a CSV even though rows break its data dictionary; the entry's quality
    /// statement then says so.
    #[serde(default)]
    pub accept_invalid: bool,
    /// Publish a new version of this node's dataset with this id (or unique prefix) instead
    /// of a new dataset (ISO 37156 4.2 g; see [`crate::withdraw::next_version`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Quality reports (ids or unique prefixes) this corrected version resolves (ISO 37156
    /// 9.2 e); needs `dataset`. The entry names them in `details.resolves`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolves: Vec<String>,
}

/// What was published.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// Dataset id.
    pub dataset: String,
    /// Entry id.
    pub entry: String,
    /// Version number (1 for a new dataset).
    pub version: u64,
    /// Title.
    pub title: String,
    /// Spectrum level.
    pub spectrum: String,
    /// BLAKE3 hex.
    pub content_hash: String,
    /// Size.
    pub bytes: u64,
    /// Peers the announcement went to directly (0 for closed data, never announced).
    pub announced_to: usize,
    /// Fields in the entry's data dictionary.
    pub dictionary_fields: usize,
    /// Rows that break the dictionary (non-zero only with `accept_invalid`).
    pub invalid_rows: u64,
}

fn parse<T: std::str::FromStr<Err = String>>(
    field: &str,
    v: Option<&String>,
    default: T,
) -> Result<T> {
    match v {
        Some(s) => s.parse().map_err(|e| anyhow!("metadata {field}: {e}")),
        None => Ok(default),
    }
}

fn guess_media_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => "text/csv",
        Some("geojson") => "application/geo+json",
        Some("json") | Some("topojson") => "application/json",
        Some("jsonld") => "application/ld+json",
        Some("ttl") => "text/turtle",
        Some("txt") | Some("inp") => "text/plain",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

fn rfc3339_now() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn to_e7(deg: f64) -> Result<i64> {
    if !deg.is_finite() {
        bail!("metadata bbox: coordinates must be finite numbers");
    }
    Ok((deg * 1e7).round() as i64)
}

/// Builds the (unsigned) entry for a file already hashed.
fn build_entry(
    shared: &Shared,
    req: &PublishRequest,
    meta: &Meta,
    content: ContentHash,
    bytes: u64,
    dictionary: Vec<Field>,
) -> Result<Entry> {
    let me = shared.did();
    let agency = Agent {
        name: shared.config.name.clone(),
        did: Some(me),
        uri: None,
    };
    let level: Level = match req.spectrum.as_ref().or(meta.spectrum.as_ref()) {
        Some(s) => s.parse().map_err(|e: String| anyhow!(e))?,
        None => bail!(
            "no spectrum given: use --spectrum open|shared-public|shared-group|shared-named|closed"
        ),
    };
    let (spectrum, access) = level.split();
    let title = req
        .title
        .clone()
        .or_else(|| meta.title.clone())
        .ok_or_else(|| anyhow!("no title given: use --title or set title in the metadata file"))?;
    let filename = req
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let default_domain = shared
        .config
        .sectors
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(Domain::Ict);
    let high_risk = meta
        .high_risk
        .iter()
        .map(|h| {
            h.parse::<HighRisk>()
                .map_err(|e| anyhow!("metadata high_risk: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let bbox = meta
        .bbox
        .map(|[w, s, e, n]| -> Result<BoundingBox> {
            Ok(BoundingBox {
                west: to_e7(w)?,
                south: to_e7(s)?,
                east: to_e7(e)?,
                north: to_e7(n)?,
            })
        })
        .transpose()?;
    let now = rfc3339_now();
    let (dataset, version, previous, issued) = match &req.dataset {
        Some(text) => {
            let (d, v, p, i) = crate::withdraw::next_version(shared, text)?;
            (d, v, Some(p), i)
        }
        None => (DatasetId::generate(), 1, None, now.clone()),
    };
    Ok(Entry {
        iss: me,
        dataset,
        version,
        previous,
        title,
        description: meta.description.clone().unwrap_or_default(),
        keywords: meta.keywords.clone(),
        themes: meta.themes.clone(),
        publisher: agency.clone(),
        contact: meta
            .contact_name
            .clone()
            .or_else(|| shared.config.contact.clone())
            .map(|name| Contact {
                name,
                email: meta.contact_email.clone(),
                ..Contact::default()
            }),
        licence: meta.licence.clone(),
        spatial: (meta.place.is_some() || bbox.is_some()).then(|| Spatial {
            name: meta.place.clone(),
            bbox,
        }),
        temporal: (meta.temporal_start.is_some() || meta.temporal_end.is_some()).then(|| {
            Temporal {
                start: meta.temporal_start.clone(),
                end: meta.temporal_end.clone(),
            }
        }),
        issued,
        modified: now,
        distributions: vec![Distribution {
            media_type: meta
                .media_type
                .clone()
                .unwrap_or_else(|| guess_media_type(&req.path).to_string()),
            bytes: Some(bytes),
            content: Some(content),
            filename,
            ..Distribution::default()
        }],
        details: Default::default(),
        iso: Iso {
            data_type: parse("data_type", meta.data_type.as_ref(), DataType::Thematic)?,
            kind: parse("kind", meta.kind.as_ref(), Kind::Status)?,
            concept: parse("concept", meta.concept.as_ref(), Concept::State)?,
            domain: parse("domain", meta.domain.as_ref(), default_domain)?,
            insight: parse("insight", meta.insight.as_ref(), Insight::Operational)?,
            facets: Facets {
                subject: meta.facets.subject.clone(),
                metric: meta.facets.metric.clone(),
                place: meta.facets.place.clone(),
                time: meta.facets.time.clone(),
                stakeholder: meta.facets.stakeholder.clone(),
            },
            spectrum,
            access,
            groups: meta.groups.clone(),
            terms: meta.terms.clone(),
            roles: Roles {
                creator: meta
                    .creator
                    .clone()
                    .map(|name| Agent {
                        name,
                        ..Agent::default()
                    })
                    .unwrap_or_else(|| agency.clone()),
                owner: meta
                    .owner
                    .clone()
                    .map(|name| Agent {
                        name,
                        ..Agent::default()
                    })
                    .unwrap_or(agency),
                custodians: vec![me],
                primary_publisher: me,
                secondary_publisher: None,
            },
            provenance: meta.provenance.clone(),
            quality: meta.quality.clone(),
            privacy: Privacy {
                personal_data: meta.personal_data,
                high_risk,
                purpose: meta.purpose.clone(),
                legal_basis: meta.legal_basis.clone(),
                retention_days: meta.retention_days,
                jurisdiction: meta
                    .jurisdiction
                    .clone()
                    .unwrap_or_else(|| shared.config.jurisdiction.clone()),
                allowed_jurisdictions: meta.allowed_jurisdictions.clone(),
                notice: None,
            },
            dictionary,
        },
    })
}

/// A bound or allowed value from the metadata file, as dictionary text.
fn value_text(name: &str, key: &str, v: &toml::Value) -> Result<String> {
    match v {
        toml::Value::String(t) => Ok(t.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) if f.is_finite() => Ok(f.to_string()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => bail!("metadata fields.{name}.{key}: must be a number, a date or a string"),
    }
}

/// Applies the metadata file's `[fields.NAME]` overrides to the inferred dictionary (ISO
/// 37156 5.4) and checks the result.
pub fn apply_overrides(mut fields: Vec<Field>, meta: &Meta) -> Result<Vec<Field>> {
    for (name, over) in &meta.fields {
        let Some(f) = fields.iter_mut().find(|f| &f.name == name) else {
            bail!("metadata fields.{name}: the file has no field of that name");
        };
        if let Some(t) = over.field_type {
            if t != f.field_type {
                f.field_type = t;
                // Extremes inferred for the old type may not hold for the new one.
                let fits = |v: &Option<String>| v.as_deref().is_none_or(|v| dictionary::fits(t, v));
                if !t.is_ranged() || !fits(&f.min) || !fits(&f.max) {
                    f.min = None;
                    f.max = None;
                }
            }
        }
        if over.unit.is_some() {
            f.unit = over.unit.clone();
        }
        if over.description.is_some() {
            f.description = over.description.clone();
        }
        if let Some(n) = over.nullable {
            f.nullable = n;
        }
        if over.privacy.is_some() {
            f.privacy = over.privacy;
        }
        if let Some(v) = &over.min {
            f.min = Some(value_text(name, "min", v)?);
        }
        if let Some(v) = &over.max {
            f.max = Some(value_text(name, "max", v)?);
        }
        if let Some(values) = &over.allowed {
            f.allowed = Some(
                values
                    .iter()
                    .map(|v| value_text(name, "enum", v))
                    .collect::<Result<_>>()?,
            );
        }
    }
    dictionary::check(&fields)
        .map_err(|e| anyhow!("metadata fields: the data dictionary's {e}"))?;
    Ok(fields)
}

/// The media type without parameters, lower-cased.
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Infers the dictionary of the stored copy `file` of `shown` (ISO 37156 5.4): CSV from its
/// header and values, then validated against it; JSON and GeoJSON by structure.
fn describe(
    file: &Path,
    shown: &Path,
    media_type: &str,
    bytes: u64,
    meta: &Meta,
) -> Result<(Vec<Field>, Option<dictionary::Report>)> {
    let open = || File::open(file).with_context(|| format!("cannot reopen {}", file.display()));
    match essence(media_type).as_str() {
        "text/csv" => {
            let inferred = dictionary::infer_csv(open()?).with_context(|| {
                format!("cannot infer the data dictionary of {}", shown.display())
            })?;
            let fields = apply_overrides(inferred, meta)?;
            let report = dictionary::validate_csv(open()?, &fields)
                .with_context(|| format!("cannot validate {}", shown.display()))?;
            debug!(
                fields = fields.len(),
                rows = report.rows,
                violations = report.violations,
                "csv dictionary inferred and checked"
            );
            Ok((fields, Some(report)))
        }
        "application/json" | "application/geo+json" | "application/ld+json" => {
            if bytes > dictionary::MAX_STRUCTURE_SOURCE_BYTES {
                if !meta.fields.is_empty() {
                    bail!(
                        "metadata fields: {} is larger than the {} bytes whose structure cix                          describes, so it gets no dictionary to override",
                        shown.display(),
                        dictionary::MAX_STRUCTURE_SOURCE_BYTES
                    );
                }
                debug!(
                    bytes,
                    "json too large to describe; published without a dictionary"
                );
                return Ok((Vec::new(), None));
            }
            let mut data = Vec::new();
            open()?
                .read_to_end(&mut data)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let inferred = dictionary::infer_json(&data)
                .with_context(|| format!("cannot describe the structure of {}", shown.display()))?;
            Ok((apply_overrides(inferred, meta)?, None))
        }
        _ if meta.fields.is_empty() => Ok((Vec::new(), None)),
        _ => bail!("metadata fields: dictionary overrides need a CSV, JSON or GeoJSON file"),
    }
}

/// Why a file that breaks its dictionary is refused: the first violations with line, column
/// and rule, and the total.
fn refusal(shown: &Path, r: &dictionary::Report) -> String {
    let mut text = format!(
        "{} breaks its data dictionary (ISO 37156 5.4): {} of its {} records (the header and \
         {} rows) break it, {} violations in all:",
        shown.display(),
        r.invalid_rows,
        r.rows + 1,
        r.rows,
        r.violations
    );
    for v in &r.listed {
        text.push_str(&format!("\n  {v}"));
    }
    let unlisted = r.violations - r.listed.len() as u64;
    if unlisted > 0 {
        text.push_str(&format!("\n  … and {unlisted} more"));
    }
    text.push_str(
        "\nfix the file, or the [fields.NAME] entries of the metadata file, or publish it \
         anyway with --accept-invalid (the entry's quality statement then says so)",
    );
    text
}

/// The quality statement of an entry published with `--accept-invalid` (ISO 37156 9.3): the
/// operator's own, then what breaks the dictionary, so receivers see it.
fn quality_with(own: Option<&str>, r: &dictionary::Report) -> String {
    let first = r
        .listed
        .first()
        .map(|v| format!("; first: {v}"))
        .unwrap_or_default();
    let note = format!(
        "{INVALID_NOTE} in {} of {} records (header \
         included), {} violations in all{first}; published anyway by the operator \
         (--accept-invalid).",
        r.invalid_rows,
        r.rows + 1,
        r.violations
    );
    match own.map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) => format!("{q} {note}"),
        None => note,
    }
}

/// The top-level keys the metadata file sets (empty when there is none).
fn given_keys(text: Option<&str>) -> std::collections::BTreeSet<String> {
    text.and_then(|t| toml::from_str::<toml::Table>(t).ok())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

/// The sentence [`quality_with`] appends, which describes one file and must not outlive it.
const INVALID_NOTE: &str = "The file breaks its data dictionary (ISO 37156 5.4)";

/// Fills what a new version's metadata file does not set from the previous version `prev`
/// (ISO 37156 4.2 g): a new version of a dataset describes the same data unless its
/// publisher says otherwise. Keys present in the file (`given`) win, even when empty.
fn inherit(meta: &mut Meta, given: &std::collections::BTreeSet<String>, prev: &Entry) {
    let unset = |k: &str| !given.contains(k);
    macro_rules! take {
        ($key:ident, $value:expr) => {
            if unset(stringify!($key)) {
                meta.$key = $value;
            }
        };
    }
    take!(title, Some(prev.title.clone()));
    take!(description, Some(prev.description.clone()));
    take!(spectrum, Some(prev.level().as_str().to_string()));
    take!(keywords, prev.keywords.clone());
    take!(themes, prev.themes.clone());
    take!(licence, prev.licence.clone());
    if unset("contact_name") && unset("contact_email") {
        meta.contact_name = prev.contact.as_ref().map(|c| c.name.clone());
        meta.contact_email = prev.contact.as_ref().and_then(|c| c.email.clone());
    }
    take!(place, prev.spatial.as_ref().and_then(|s| s.name.clone()));
    take!(
        bbox,
        prev.spatial
            .as_ref()
            .and_then(|s| s.bbox)
            .map(|b| { [b.west, b.south, b.east, b.north].map(|v| v as f64 / 1e7) })
    );
    take!(
        temporal_start,
        prev.temporal.as_ref().and_then(|t| t.start.clone())
    );
    take!(
        temporal_end,
        prev.temporal.as_ref().and_then(|t| t.end.clone())
    );
    let iso = &prev.iso;
    take!(data_type, Some(iso.data_type.as_str().to_string()));
    take!(kind, Some(iso.kind.as_str().to_string()));
    take!(concept, Some(iso.concept.as_str().to_string()));
    take!(domain, Some(iso.domain.as_str().to_string()));
    take!(insight, Some(iso.insight.as_str().to_string()));
    if unset("facets") {
        meta.facets = FacetsMeta {
            subject: iso.facets.subject.clone(),
            metric: iso.facets.metric.clone(),
            place: iso.facets.place.clone(),
            time: iso.facets.time.clone(),
            stakeholder: iso.facets.stakeholder.clone(),
        };
    }
    take!(terms, iso.terms.clone());
    take!(groups, iso.groups.clone());
    // An agent with a principal is this agency, which build_entry puts back itself.
    take!(
        creator,
        (iso.roles.creator.did.is_none()).then(|| iso.roles.creator.name.clone())
    );
    take!(
        owner,
        (iso.roles.owner.did.is_none()).then(|| iso.roles.owner.name.clone())
    );
    take!(provenance, iso.provenance.clone());
    take!(
        quality,
        iso.quality.as_deref().and_then(|q| {
            let kept = q.split(INVALID_NOTE).next().unwrap_or("").trim();
            (!kept.is_empty()).then(|| kept.to_string())
        })
    );
    let p = &iso.privacy;
    take!(personal_data, p.personal_data);
    take!(
        high_risk,
        p.high_risk.iter().map(|h| h.as_str().to_string()).collect()
    );
    take!(purpose, p.purpose.clone());
    take!(legal_basis, p.legal_basis.clone());
    take!(retention_days, p.retention_days);
    take!(jurisdiction, Some(p.jurisdiction.clone()));
    take!(allowed_jurisdictions, p.allowed_jurisdictions.clone());
}

/// What a new version keeps from the previous one beyond the metadata file's keys: the DCAT
/// details, and the units and descriptions of dictionary fields that still exist with the
/// same type, unless the metadata file sets them.
fn carry_over(entry: &mut Entry, prev: &Entry, meta: &Meta) {
    if entry.details == Default::default() {
        entry.details = prev.details.clone();
    }
    for f in &mut entry.iso.dictionary {
        let Some(old) = prev
            .iso
            .dictionary
            .iter()
            .find(|o| o.name == f.name && o.field_type == f.field_type)
        else {
            continue;
        };
        let over = meta.fields.get(&f.name);
        if f.unit.is_none() && over.is_none_or(|o| o.unit.is_none()) {
            f.unit = old.unit.clone();
        }
        if f.description.is_none() && over.is_none_or(|o| o.description.is_none()) {
            f.description = old.description.clone();
        }
        if f.privacy.is_none() && over.is_none_or(|o| o.privacy.is_none()) {
            f.privacy = old.privacy;
        }
    }
}

/// Copies `src` into `tmp_dir` while hashing it; returns the temporary file, hash and size.
fn copy_hashing(src: &Path, tmp_dir: &Path) -> Result<(tempfile::NamedTempFile, ContentHash, u64)> {
    let mut input = File::open(src).with_context(|| format!("cannot open {}", src.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir)
        .with_context(|| format!("cannot create a temporary file in {}", tmp_dir.display()))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", src.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .context("cannot write to the blob store (disk full?)")?;
        total += n as u64;
    }
    tmp.as_file()
        .sync_all()
        .context("cannot flush the blob to disk")?;
    Ok((tmp, hasher.finalize().into(), total))
}

/// Publishes a file (ISO 37156 5.5: closed datasets are stored and listed locally but never
/// announced).
///
/// # Errors
///
/// If the file cannot be read, the metadata is invalid, or the entry breaks a rule; nothing
/// is stored in that case.
pub async fn publish(node: &Node, req: PublishRequest) -> Result<Published> {
    let shared = node.shared.clone();
    let (signed, own, invalid_rows) = tokio::task::spawn_blocking(move || prepare(&shared, &req))
        .await
        .map_err(|e| anyhow!("publish task failed: {e}"))??;
    let level = signed.entry.level();
    // ISO 37156 9.4: the publication is on the record before anyone is told of it.
    let kind = if signed.entry.version > 1 {
        AuditKind::Version
    } else {
        AuditKind::Publish
    };
    crate::audit::append(
        &node.shared,
        AuditEvent::new(kind)
            .entry(&signed.entry)
            .content(own.content)
            .bytes(own.bytes)
            .detail(format!(
                "entry {}, version {}, {level}",
                signed.id, signed.entry.version
            )),
    )
    .await?;
    let announced_to = if level == Level::Closed {
        // ISO 37156 5.5.2: closed data is never announced. If earlier versions were, peers
        // still list one of them: withdraw those (up to the version before this one), so the
        // dataset leaves every other node's listings while this node keeps it.
        let dataset = signed.entry.dataset;
        if signed.entry.version > 1
            && node.shared.store.versions(&dataset)?.iter().any(|e| {
                e.entry.iss == node.did()
                    && e.entry.version < signed.entry.version
                    && e.entry.level() != Level::Closed
            })
        {
            let (w, told) = crate::withdraw::withdraw_version(
                node,
                dataset,
                signed.entry.version - 1,
                Some("the dataset is now closed (ISO 37156 5.5.2)"),
            )
            .await?;
            info!(%dataset, withdrawal = %hex::encode(w.id), peers = told, "earlier announced versions withdrawn: the new version is closed");
        }
        0
    } else {
        node.shared.emit(crate::node::NodeEvent::EntryAnnounced {
            entry: signed.id.to_string(),
            dataset: own.dataset.to_string(),
        });
        node.announce(signed.bytes.clone()).await?
    };
    info!(dataset = %own.dataset, entry = %signed.id, %level, "published");
    if !signed.entry.details.resolves.is_empty() {
        crate::quality::after_fix(node, &signed.entry.details.resolves, signed.id).await;
    }
    if signed.entry.version > 1 {
        // ISO 37156 8.2.5: the dataset's rules may have changed; grants under the old ones
        // are re-checked before the operator is told the version is out.
        if let Err(e) = crate::recheck::recheck(
            node,
            &format!(
                "version {} of dataset {}",
                signed.entry.version, own.dataset
            ),
        )
        .await
        {
            tracing::error!(error = %format!("{e:#}"), "re-check after a new version failed");
        }
    }
    Ok(Published {
        dataset: own.dataset.to_string(),
        entry: signed.id.to_string(),
        version: signed.entry.version,
        title: signed.entry.title.clone(),
        spectrum: level.to_string(),
        content_hash: own.content.to_hex(),
        bytes: own.bytes,
        announced_to,
        dictionary_fields: signed.entry.iso.dictionary.len(),
        invalid_rows,
    })
}

fn prepare(shared: &Shared, req: &PublishRequest) -> Result<(SignedEntry, OwnDataset, u64)> {
    if !req.path.is_absolute() {
        bail!("the file path must be absolute: {}", req.path.display());
    }
    let mut meta: Meta = match &req.meta {
        Some(text) => toml::from_str(text).context("invalid metadata file")?,
        None => Meta::default(),
    };
    // A new version (ISO 37156 4.2 g) keeps what the previous one said unless restated.
    let previous = match &req.dataset {
        Some(text) => {
            let (_, _, prev, _) = crate::withdraw::next_version(shared, text)?;
            let prev = shared
                .store
                .entry(&prev)?
                .ok_or_else(|| anyhow!("the latest version {prev} is missing from the store"))?;
            let given = given_keys(req.meta.as_deref());
            inherit(&mut meta, &given, &prev.entry);
            Some(prev.entry)
        }
        None => None,
    };
    let (tmp, content, bytes) = copy_hashing(&req.path, &shared.home.tmp())?;
    let media_type = meta
        .media_type
        .clone()
        .unwrap_or_else(|| guess_media_type(&req.path).to_string());
    let (dictionary, report) = describe(tmp.path(), &req.path, &media_type, bytes, &meta)?;
    let invalid_rows = match &report {
        Some(r) if !r.is_valid() => {
            if !req.accept_invalid {
                bail!("{}", refusal(&req.path, r));
            }
            info!(
                invalid_rows = r.invalid_rows,
                violations = r.violations,
                "publishing a file that breaks its data dictionary, as the operator asked"
            );
            meta.quality = Some(quality_with(meta.quality.as_deref(), r));
            r.invalid_rows
        }
        _ => 0,
    };
    let measures = match &report {
        Some(r) => Some(
            cix_protocol::quality::measure_csv(
                std::io::BufReader::new(File::open(tmp.path())?),
                &dictionary,
                r.invalid_rows,
            )
            .map_err(|e| anyhow!("cannot measure the quality of {}: {e}", req.path.display()))?,
        ),
        None => None,
    };
    let mut entry = build_entry(shared, req, &meta, content, bytes, dictionary)?;
    if let Some(prev) = &previous {
        carry_over(&mut entry, prev, &meta);
    }
    // ISO 37156 9.3: measures of this version, and 9.2 e: the reports it resolves.
    entry.details.quality_measures = measures;
    entry.details.resolves = if req.resolves.is_empty() {
        Vec::new()
    } else if previous.is_none() {
        bail!("--resolves needs --dataset: a corrected version of the dataset reported on");
    } else {
        crate::quality::resolvable(shared, &entry.dataset, &req.resolves)?
    };
    crate::privacy::link_notice(shared, &mut entry)?;
    // ISO 37156 7.4.2.5: personal data leaves only past the re-identification guard (derived
    // datasets are published through here too).
    crate::reident::guard_publish(shared, &entry, tmp.path(), &content)?;
    let signed = entry.sign(&shared.key).map_err(|e| anyhow!("{e}"))?;
    let blob = shared.home.blobs().join(content.to_hex());
    // A blob already present is used only if it still hashes to its content id; a damaged
    // one is replaced by the file being published (issue 8: the repair the error suggests).
    let intact = blob.exists()
        && std::fs::File::open(&blob)
            .and_then(ContentHash::of_reader)
            .is_ok_and(|(h, _)| h == content);
    if intact {
        debug!(%content, "blob already present");
    } else {
        if blob.exists() {
            tracing::warn!(%content, "stored blob was damaged; replacing it with the published file");
            let _ = std::fs::remove_file(crate::verified::outboard_path(
                &shared.home.blobs(),
                &content,
            ));
        }
        tmp.persist(&blob)
            .with_context(|| format!("cannot store {}", blob.display()))?;
    }
    // The outboard this node serves the blob's verified ranges with (transfer.md §2); a
    // failure here is not fatal: it is rebuilt on first serve.
    if let Err(e) = crate::verified::ensure_outboard(&shared.home.blobs(), &content, &blob, bytes) {
        tracing::warn!(%content, error = %e, "cannot build the outboard now; it is built when first served");
    }
    let own = OwnDataset {
        dataset: entry.dataset,
        entry: signed.id,
        level: entry.level().to_string(),
        content,
        bytes,
    };
    shared.store.put_entry(&signed)?;
    shared.store.put_own(&own)?;
    shared.store.flush()?;
    shared.search.insert(&signed);
    Ok((signed, own, invalid_rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_rfc3339_as_entries_require() {
        assert!(
            cix_protocol::catalogue::is_rfc3339(&rfc3339_now()),
            "{}",
            rfc3339_now()
        );
    }
}
