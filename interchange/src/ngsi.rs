//! FIWARE Smart Data Models DCAT-AP entities (`Catalogue`, `Dataset`, `Distribution`) in
//! NGSI-LD, key-values or normalized form. The remote `@context` is not fetched: the
//! entities' attribute names are the DCAT-AP property names, which this reader knows.

use std::collections::BTreeMap;

use cix_protocol::catalogue::{
    Agent, BoundingBox, Contact, Details, Distribution, Spatial, Temporal,
};
use serde_json::Value;

use crate::mapping::Classification;
use crate::record::Record;
use crate::text::{self, date, url};
use crate::{Draft, ImportError, Parsed, Skipped};

/// The value of an attribute in either form: a normalized `{"type":"Property","value":..}`
/// (or `Relationship`/`object`) is unwrapped, a `{"@type":..,"@value":..}` too.
fn val(v: &Value) -> &Value {
    let inner = match v {
        Value::Object(o)
            if matches!(
                o.get("type").and_then(Value::as_str),
                Some("Property" | "Relationship" | "GeoProperty" | "LanguageProperty")
            ) =>
        {
            o.get("value").or(o.get("object")).unwrap_or(&Value::Null)
        }
        _ => v,
    };
    match inner {
        Value::Object(o) if o.contains_key("@value") => &o["@value"],
        _ => inner,
    }
}

fn list(e: &serde_json::Map<String, Value>, k: &str) -> Vec<String> {
    match e.get(k).map(val) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| match val(x) {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_string()],
        Some(Value::Number(n)) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

fn one(e: &serde_json::Map<String, Value>, k: &str, notes: &mut Vec<String>) -> Option<String> {
    let mut l = list(e, k);
    if l.len() > 1 {
        notes.push(format!(
            "{k}: only the first of {} values is kept ({:?} dropped)",
            l.len(),
            &l[1..]
        ));
    }
    (!l.is_empty()).then(|| l.swap_remove(0))
}

const DATASET_KEYS: &[&str] = &[
    "id",
    "type",
    "@context",
    "title",
    "description",
    "keyword",
    "publisher",
    "contactPoint",
    "spatial",
    "temporal",
    "theme",
    "accessRights",
    "creator",
    "page",
    "accrualPeriodicity",
    "identifier",
    "landingPage",
    "language",
    "releaseDate",
    "modified",
    "version",
    "versionNotes",
    "distribution",
    "conformsTo",
];

const DIST_KEYS: &[&str] = &[
    "id",
    "type",
    "@context",
    "accessURL",
    "downloadURL",
    "description",
    "title",
    "format",
    "mediaType",
    "license",
    "byteSize",
    "availability",
    "issued",
    "modified",
    "belongsToDataset",
];

pub(crate) fn parse(v: &Value) -> Result<Parsed, ImportError> {
    let entities: Vec<&serde_json::Map<String, Value>> = match v {
        Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
        Value::Object(o) => vec![o],
        _ => {
            return Err(ImportError(
                "NGSI-LD input is an entity or an array of entities".into(),
            ))
        }
    };
    let mut out = Parsed::default();
    let mut dists: BTreeMap<String, &serde_json::Map<String, Value>> = BTreeMap::new();
    for e in &entities {
        if e.get("type").and_then(Value::as_str) == Some("Distribution") {
            if let Some(id) = e.get("id").and_then(Value::as_str) {
                dists.insert(id.to_string(), e);
            }
        }
    }
    let mut used = Vec::new();
    for (i, e) in entities.iter().enumerate() {
        let id = e
            .get("id")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| format!("#{}", i + 1));
        match e.get("type").and_then(Value::as_str) {
            Some("Dataset") => match dataset(&id, e, &dists, &mut used) {
                Ok(d) => out.drafts.push(d),
                Err(reason) => out.skipped.push(Skipped { source: id, reason }),
            },
            Some("Distribution") => {}
            Some("Catalogue") => out.skipped.push(Skipped {
                source: id,
                reason: "a Catalogue entity: cix keeps datasets, not catalogues; its datasets are imported from their own Dataset entities".into(),
            }),
            other => out.skipped.push(Skipped {
                source: id,
                reason: format!(
                    "a {} entity is data, not a DCAT-AP Dataset; publish it as a dataset instead",
                    other.unwrap_or("untyped")
                ),
            }),
        }
    }
    for (id, _) in dists {
        if !used.contains(&id) {
            out.skipped.push(Skipped {
                source: id,
                reason: "a Distribution entity that no Dataset in this file names: import it together with its Dataset".into(),
            });
        }
    }
    Ok(out)
}

fn dataset(
    id: &str,
    e: &serde_json::Map<String, Value>,
    dists: &BTreeMap<String, &serde_json::Map<String, Value>>,
    used: &mut Vec<String>,
) -> Result<Draft, String> {
    let mut notes = Vec::new();
    let title = one(e, "title", &mut notes).ok_or("no title")?;
    let modified = one(e, "modified", &mut notes)
        .and_then(|d| date(&d, &mut notes, "modified"))
        .ok_or("no usable modified date")?;
    let issued = one(e, "releaseDate", &mut notes)
        .and_then(|d| date(&d, &mut notes, "releaseDate"))
        .unwrap_or_else(|| {
            notes.push("releaseDate: not stated; issued taken from modified".into());
            modified.clone()
        });
    let temporal = {
        let ts: Vec<String> = list(e, "temporal")
            .iter()
            .filter_map(|t| date(t, &mut notes, "temporal"))
            .collect();
        (!ts.is_empty()).then(|| Temporal {
            start: ts.first().cloned(),
            end: ts.last().cloned(),
        })
    };
    let spatial = e
        .get("spatial")
        .map(val)
        .and_then(|g| geo_bbox(g, &mut notes))
        .map(|b| Spatial {
            name: None,
            bbox: Some(b),
        });
    let contact = one(e, "contactPoint", &mut notes).map(|c| Contact {
        url: url(&c, &mut Vec::new(), "contactPoint"),
        name: c,
        ..Contact::default()
    });
    let mut distributions = Vec::new();
    for r in list(e, "distribution") {
        match dists.get(&r) {
            Some(d) => {
                used.push(r.clone());
                if let Some(d) = distribution(d, &mut notes) {
                    distributions.push(d);
                }
            }
            None => notes.push(format!(
                "distribution: {r} is not in this file; not kept (import it with its Distribution entity)"
            )),
        }
    }
    let mut iso = Classification::default();
    if let Some(c) = one(e, "creator", &mut notes) {
        iso.creator = Some(c);
    }
    for (k, v) in e {
        if !DATASET_KEYS.contains(&k.as_str()) {
            let v = val(v);
            let empty =
                v.is_null() || v == &Value::String(String::new()) || v == &Value::Array(vec![]);
            if !empty {
                notes.push(format!(
                    "{k}: no place in a cix entry; not kept ({})",
                    text::clip(&v.to_string())
                ));
            }
        }
    }
    // The source identifier is the dataset's own `identifier` when it states one, as
    // dct:identifier is for RDF: an export writes that back, so re-importing the export lands
    // on the same dataset. The entity id is then reported, not kept.
    let identifier = one(e, "identifier", &mut notes);
    let source_id = match &identifier {
        Some(i) if !i.trim().is_empty() => {
            if i != id {
                notes.push(format!(
                    "id: the entity id {} is not kept; the dataset is known by its identifier",
                    text::clip(id)
                ));
            }
            i.clone()
        }
        _ => id.to_string(),
    };
    let record = Record {
        source_id,
        title,
        description: one(e, "description", &mut notes).unwrap_or_default(),
        keywords: list(e, "keyword"),
        themes: list(e, "theme"),
        publisher: Agent {
            name: one(e, "publisher", &mut notes).unwrap_or_default(),
            ..Agent::default()
        },
        contact,
        licence: None,
        spatial,
        temporal,
        issued,
        modified,
        distributions,
        details: Details {
            quality_measures: None,
            resolves: Vec::new(),
            identifier,
            landing_page: one(e, "landingPage", &mut notes)
                .and_then(|u| url(&u, &mut notes, "landingPage")),
            languages: list(e, "language"),
            frequency: one(e, "accrualPeriodicity", &mut notes),
            conforms_to: list(e, "conformsTo"),
            access_rights: one(e, "accessRights", &mut notes),
            documentation: list(e, "page")
                .into_iter()
                .filter_map(|u| url(&u, &mut notes, "page"))
                .collect(),
            version_info: one(e, "version", &mut notes),
            version_notes: one(e, "versionNotes", &mut notes),
            ..Details::default()
        },
    };
    Ok(Draft { record, iso, notes })
}

fn distribution(
    e: &serde_json::Map<String, Value>,
    notes: &mut Vec<String>,
) -> Option<Distribution> {
    let mut n = Vec::new();
    let d = Distribution {
        access_url: one(e, "accessURL", &mut n)
            .and_then(|u| url(&u, &mut n, "distribution.accessURL")),
        download_url: one(e, "downloadURL", &mut n)
            .and_then(|u| url(&u, &mut n, "distribution.downloadURL")),
        description: one(e, "description", &mut n),
        title: one(e, "title", &mut n),
        format: one(e, "format", &mut n),
        media_type: one(e, "mediaType", &mut n).unwrap_or_default(),
        licence: one(e, "license", &mut n),
        bytes: e.get("byteSize").map(val).and_then(Value::as_u64),
        availability: one(e, "availability", &mut n),
        issued: one(e, "issued", &mut n).and_then(|d| date(&d, &mut n, "distribution.issued")),
        modified: one(e, "modified", &mut n)
            .and_then(|d| date(&d, &mut n, "distribution.modified")),
        ..Distribution::default()
    };
    for (k, v) in e {
        let v = val(v);
        let empty = v.is_null() || v == &Value::String(String::new()) || v == &Value::Array(vec![]);
        if !DIST_KEYS.contains(&k.as_str()) && !empty {
            n.push(format!("{k}: no place in a cix entry; not kept"));
        }
    }
    notes.extend(n.into_iter().map(|x| {
        format!(
            "distribution {}: {x}",
            e.get("id").and_then(Value::as_str).unwrap_or("?")
        )
    }));
    if d.access_url.is_none() && d.download_url.is_none() {
        notes.push("distribution: no usable URL; not kept".into());
        return None;
    }
    Some(d)
}

/// A GeoJSON Point, Polygon or list of them as a bounding box; invalid coordinates noted.
fn geo_bbox(g: &Value, notes: &mut Vec<String>) -> Option<BoundingBox> {
    let mut pts: Vec<(i64, i64)> = Vec::new();
    fn walk(v: &Value, pts: &mut Vec<(i64, i64)>) {
        match v {
            Value::Array(a) if a.len() >= 2 && a.iter().all(Value::is_number) => {
                let x = text::degrees(&a[0].to_string());
                let y = text::degrees(&a[1].to_string());
                if let (Some(x), Some(y)) = (x, y) {
                    pts.push((x, y));
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, pts)),
            Value::Object(o) => {
                if let Some(c) = o.get("coordinates") {
                    walk(c, pts);
                }
            }
            _ => {}
        }
    }
    walk(g, &mut pts);
    if pts.is_empty() {
        notes.push("spatial: no coordinates found; not kept".into());
        return None;
    }
    let b = BoundingBox {
        west: pts.iter().map(|p| p.0).min()?,
        south: pts.iter().map(|p| p.1).min()?,
        east: pts.iter().map(|p| p.0).max()?,
        north: pts.iter().map(|p| p.1).max()?,
    };
    const LON: i64 = 1_800_000_000;
    const LAT: i64 = 900_000_000;
    if [b.west, b.east].iter().any(|x| !(-LON..=LON).contains(x))
        || [b.south, b.north].iter().any(|y| !(-LAT..=LAT).contains(y))
    {
        notes.push(format!(
            "spatial: coordinates {} out of range (longitude ±180, latitude ±90); not kept",
            text::clip(&g.to_string())
        ));
        return None;
    }
    Some(b)
}
