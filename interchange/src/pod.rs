//! Project Open Data `data.json` (bare array before 1.1, catalog object in 1.1) and CKAN
//! package JSON.

use cix_protocol::catalogue::{
    Agent, Checksum, Contact, Distribution, Entry, Spatial, Temporal, Translation,
};
use serde_json::{json, Map, Value};

use crate::mapping::Classification;
use crate::record::Record;
use crate::text::{self, date, url};
use crate::{Draft, ImportError, Parsed, Skipped};

/// POD 1.1 keys cix maps, at dataset level.
const POD_KEYS: &[&str] = &[
    "@type",
    "title",
    "description",
    "keyword",
    "keywords",
    "modified",
    "issued",
    "releaseDate",
    "created",
    "publisher",
    "contactPoint",
    "mbox",
    "identifier",
    "accessLevel",
    "license",
    "spatial",
    "temporal",
    "distribution",
    "theme",
    "language",
    "landingPage",
    "accrualPeriodicity",
    "frequency",
    "conformsTo",
    "references",
    "accessURL",
    "webService",
    "feed",
    "format",
];

fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(s).collect(),
        Some(Value::String(x)) if !x.trim().is_empty() => vec![x.trim().to_string()],
        _ => Vec::new(),
    }
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in list {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Reads a `data.json`: a bare array of datasets or `{"dataset": [...]}`.
pub(crate) fn parse_data_json(v: &Value) -> Result<Parsed, ImportError> {
    let list = match v {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("dataset") {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(ImportError(
                    "a data.json catalog must have a \"dataset\" array".into(),
                ))
            }
        },
        _ => {
            return Err(ImportError(
                "a data.json is an array or a catalog object".into(),
            ))
        }
    };
    let mut out = Parsed::default();
    for (i, rec) in list.iter().enumerate() {
        match pod_record(rec) {
            Ok(d) => out.drafts.push(d),
            Err(reason) => out.skipped.push(Skipped {
                source: rec
                    .get("identifier")
                    .and_then(s)
                    .unwrap_or_else(|| format!("#{}", i + 1)),
                reason,
            }),
        }
    }
    Ok(out)
}

fn pod_record(v: &Value) -> Result<Draft, String> {
    let o = v.as_object().ok_or("not a JSON object")?;
    let mut notes = Vec::new();
    let title = o.get("title").and_then(s).ok_or("no title")?;
    let source_id = o
        .get("identifier")
        .and_then(s)
        .ok_or("no identifier: a record needs one so that re-importing it updates it")?;
    let keywords = {
        let arr = strings(o.get("keywords"));
        let kw = match o.get("keyword") {
            Some(Value::String(k)) => text::split_list(k),
            other => strings(other),
        };
        if arr.is_empty() {
            dedup(kw)
        } else {
            if !kw.is_empty() && dedup(kw.clone()) != dedup(arr.clone()) {
                notes.push(format!(
                    "keyword: differs from keywords; kept keywords {arr:?}"
                ));
            }
            dedup(arr)
        }
    };
    let modified_raw = o.get("modified").and_then(s).ok_or("no modified date")?;
    let modified = date(&modified_raw, &mut notes, "modified").ok_or("modified is not a date")?;
    let issued = ["issued", "releaseDate", "created"]
        .iter()
        .find_map(|k| o.get(*k).and_then(s).and_then(|d| date(&d, &mut notes, k)))
        .unwrap_or_else(|| {
            notes.push("issued: not stated; taken from modified".into());
            modified.clone()
        });
    if let (Some(c), Some(r)) = (
        o.get("created").and_then(s),
        o.get("releaseDate").and_then(s),
    ) {
        if c != r && o.get("issued").is_none() {
            notes.push(format!(
                "created: {c} differs from releaseDate {r}; issued is releaseDate"
            ));
        }
    }
    let publisher = match o.get("publisher") {
        Some(Value::Object(p)) => Agent {
            name: p.get("name").and_then(s).unwrap_or_default(),
            did: p.get("cix:did").and_then(s).and_then(|d| d.parse().ok()),
            uri: p.get("cix:uri").and_then(s),
        },
        Some(v) => Agent {
            name: s(v).unwrap_or_default(),
            ..Agent::default()
        },
        None => Agent::default(),
    };
    let contact = match o.get("contactPoint") {
        Some(Value::Object(c)) => Some(Contact {
            name: c.get("fn").and_then(s).unwrap_or_default(),
            email: c
                .get("hasEmail")
                .and_then(s)
                .map(|e| e.trim_start_matches("mailto:").to_string()),
            url: c.get("cix:url").and_then(s),
            phone: c.get("cix:phone").and_then(s),
        }),
        Some(v) => s(v).map(|name| Contact {
            name,
            email: o.get("mbox").and_then(s),
            ..Contact::default()
        }),
        None => None,
    };
    let spatial = match o.get("cix:spatial") {
        Some(sp) => serde_json::from_value(sp.clone()).ok(),
        None => o.get("spatial").and_then(s).map(|t| {
            let parts: Vec<&str> = t.split(',').collect();
            match text::bbox_from_list(&parts) {
                Some(b) => Spatial {
                    name: None,
                    bbox: Some(b),
                },
                None => Spatial {
                    name: Some(t),
                    bbox: None,
                },
            }
        }),
    };
    let temporal = o.get("temporal").and_then(s).and_then(|t| {
        let (a, b) = t.split_once('/').unwrap_or((&t, ""));
        let start = (!a.is_empty() && a != "..")
            .then(|| date(a, &mut notes, "temporal"))
            .flatten();
        let end = (!b.is_empty() && b != "..")
            .then(|| date(b, &mut notes, "temporal"))
            .flatten();
        (start.is_some() || end.is_some()).then_some(Temporal { start, end })
    });
    let mut distributions = Vec::new();
    if let Some(Value::Array(ds)) = o.get("distribution") {
        for d in ds {
            if let Some(d) = pod_distribution(d, &mut notes) {
                distributions.push(d);
            }
        }
    }
    // The pre-1.1 form also names URLs at the top: keep the ones no distribution has.
    for (key, label) in [
        ("accessURL", None),
        ("webService", Some("API")),
        ("feed", Some("RSS")),
    ] {
        let Some(u) = o.get(key).and_then(s) else {
            continue;
        };
        if distributions
            .iter()
            .any(|d: &Distribution| d.url() == Some(u.as_str()))
        {
            continue;
        }
        let Some(u) = url(&u, &mut notes, key) else {
            continue;
        };
        distributions.push(Distribution {
            media_type: if key == "accessURL" {
                o.get("format").and_then(s).unwrap_or_default()
            } else {
                String::new()
            },
            access_url: Some(u),
            format: label.map(String::from),
            ..Distribution::default()
        });
    }
    let mut details = cix_protocol::catalogue::Details {
        quality_measures: None,
        resolves: Vec::new(),
        // urn:cix: identifiers are cix's own names for entries that had none.
        identifier: (!source_id.starts_with("urn:cix:")).then(|| source_id.clone()),
        landing_page: o
            .get("landingPage")
            .and_then(s)
            .and_then(|u| url(&u, &mut notes, "landingPage")),
        languages: strings(o.get("language")),
        frequency: o
            .get("accrualPeriodicity")
            .or(o.get("frequency"))
            .and_then(s),
        conforms_to: strings(o.get("conformsTo")),
        access_rights: o.get("accessLevel").and_then(s),
        documentation: strings(o.get("references"))
            .into_iter()
            .filter_map(|u| url(&u, &mut notes, "references"))
            .collect(),
        ..Default::default()
    };
    details.lang = o.get("cix:lang").and_then(s);
    details.translations = o
        .get("cix:translations")
        .and_then(|t| serde_json::from_value::<Vec<Translation>>(t.clone()).ok())
        .unwrap_or_default();
    details.legislation = strings(o.get("cix:legislation"));
    details.version_info = o.get("cix:versionInfo").and_then(s);
    details.version_notes = o.get("cix:versionNotes").and_then(s);
    let iso = match o.get("cix:iso") {
        Some(v) => serde_json::from_value::<Classification>(v.clone())
            .map_err(|e| format!("cix:iso is not a cix classification: {e}"))?,
        None => Classification::default(),
    };
    for (k, v) in o {
        if !POD_KEYS.contains(&k.as_str()) && !k.starts_with("cix:") && !v.is_null() {
            notes.push(format!(
                "{k}: no place in a cix entry; not kept ({})",
                text::clip(&v.to_string())
            ));
        }
    }
    let record = Record {
        source_id,
        title,
        description: o.get("description").and_then(s).unwrap_or_default(),
        keywords,
        themes: strings(o.get("theme")),
        publisher,
        contact,
        licence: o.get("license").and_then(s),
        spatial,
        temporal,
        issued,
        modified,
        distributions,
        details,
    };
    Ok(Draft { record, iso, notes })
}

fn pod_distribution(v: &Value, notes: &mut Vec<String>) -> Option<Distribution> {
    let o = v.as_object()?;
    let mut d = Distribution {
        access_url: o
            .get("accessURL")
            .and_then(s)
            .and_then(|u| url(&u, notes, "distribution.accessURL")),
        download_url: o
            .get("downloadURL")
            .and_then(s)
            .and_then(|u| url(&u, notes, "distribution.downloadURL")),
        media_type: o.get("mediaType").and_then(s).unwrap_or_default(),
        title: o.get("title").and_then(s),
        description: o.get("description").and_then(s),
        filename: o.get("cix:filename").and_then(s),
        licence: o.get("cix:licence").and_then(s),
        availability: o.get("cix:availability").and_then(s),
        issued: o.get("cix:issued").and_then(s),
        modified: o.get("cix:modified").and_then(s),
        bytes: o.get("cix:byteSize").and_then(Value::as_u64),
        content: o.get("cix:blake3").and_then(s).and_then(|h| h.parse().ok()),
        checksum: o
            .get("cix:checksum")
            .and_then(|c| serde_json::from_value::<Checksum>(c.clone()).ok()),
        ..Distribution::default()
    };
    match o.get("format") {
        Some(Value::String(f)) => {
            // POD 1.0 put the media type in "format"; 1.1 has a separate mediaType.
            if d.media_type.is_empty() && f.contains('/') && !o.contains_key("cix:format") {
                d.media_type = f.clone();
            } else {
                d.format = Some(f.clone());
            }
        }
        Some(other) => notes.push(format!(
            "distribution.format: {other} is not text; not kept"
        )),
        None => {}
    }
    if let Some(Value::Array(fs)) = o.get("formats") {
        for (i, f) in fs.iter().enumerate() {
            let value = f.get("value").and_then(s);
            let label = f.get("label").and_then(s);
            if i == 0 {
                if d.media_type.is_empty() {
                    d.media_type = value.unwrap_or_default();
                }
                if d.format.is_none() {
                    d.format = label;
                }
            } else {
                notes.push(format!(
                    "distribution.formats: only the first format is kept, not {f}"
                ));
            }
        }
    }
    for (k, v) in o {
        let known = [
            "accessURL",
            "downloadURL",
            "mediaType",
            "format",
            "formats",
            "title",
            "description",
            "@type",
        ];
        if !known.contains(&k.as_str()) && !k.starts_with("cix:") && !v.is_null() {
            notes.push(format!(
                "distribution.{k}: no place in a cix entry; not kept"
            ));
        }
    }
    if d.access_url.is_none() && d.download_url.is_none() && d.content.is_none() {
        notes.push("distribution: no usable URL; not kept".into());
        return None;
    }
    Some(d)
}

/// Writes a POD 1.1 catalog; what POD cannot say goes in `cix:` keys.
pub(crate) fn export_data_json(entries: &[Entry]) -> Vec<u8> {
    let datasets: Vec<Value> = entries.iter().map(pod_dataset).collect();
    let cat = json!({
        "@type": "dcat:Catalog",
        "conformsTo": "https://project-open-data.cio.gov/v1.1/schema",
        "describedBy": "https://project-open-data.cio.gov/v1.1/schema/catalog.json",
        "dataset": datasets,
    });
    let mut out = serde_json::to_vec_pretty(&cat).unwrap_or_default();
    out.push(b'\n');
    out
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v.into());
    }
}

fn put_list(m: &mut Map<String, Value>, k: &str, v: &[String]) {
    if !v.is_empty() {
        m.insert(k.to_string(), json!(v));
    }
}

fn pod_dataset(e: &Entry) -> Value {
    let r = Record::from_entry(e);
    let mut m = Map::new();
    m.insert("@type".into(), json!("dcat:Dataset"));
    m.insert("title".into(), json!(r.title));
    m.insert("description".into(), json!(r.description));
    m.insert("keyword".into(), json!(r.keywords));
    m.insert("modified".into(), json!(r.modified));
    m.insert("issued".into(), json!(r.issued));
    let mut p = Map::new();
    p.insert("@type".into(), json!("org:Organization"));
    p.insert("name".into(), json!(r.publisher.name));
    put(&mut p, "cix:uri", r.publisher.uri.clone());
    put(&mut p, "cix:did", r.publisher.did.map(|d| d.to_string()));
    m.insert("publisher".into(), Value::Object(p));
    if let Some(c) = &r.contact {
        let mut cm = Map::new();
        cm.insert("@type".into(), json!("vcard:Contact"));
        cm.insert("fn".into(), json!(c.name));
        put(
            &mut cm,
            "hasEmail",
            c.email.as_ref().map(|e| format!("mailto:{e}")),
        );
        put(&mut cm, "cix:url", c.url.clone());
        put(&mut cm, "cix:phone", c.phone.clone());
        m.insert("contactPoint".into(), Value::Object(cm));
    }
    m.insert("identifier".into(), json!(r.source_id));
    put(&mut m, "accessLevel", r.details.access_rights.clone());
    put(&mut m, "license", r.licence.clone());
    if let Some(sp) = &r.spatial {
        // POD's spatial is one string; the exact box and name go in cix:spatial too.
        let text = match (&sp.name, &sp.bbox) {
            (Some(n), _) => n.clone(),
            (None, Some(b)) => [b.west, b.south, b.east, b.north]
                .map(text::degrees_text)
                .join(","),
            (None, None) => String::new(),
        };
        m.insert("spatial".into(), json!(text));
        m.insert("cix:spatial".into(), json!(sp));
    }
    if let Some(t) = &r.temporal {
        m.insert(
            "temporal".into(),
            json!(format!(
                "{}/{}",
                t.start.as_deref().unwrap_or(".."),
                t.end.as_deref().unwrap_or("..")
            )),
        );
    }
    let dists: Vec<Value> = r.distributions.iter().map(pod_dist).collect();
    m.insert("distribution".into(), json!(dists));
    put_list(&mut m, "theme", &r.themes);
    put_list(&mut m, "language", &r.details.languages);
    put(&mut m, "landingPage", r.details.landing_page.clone());
    put(&mut m, "accrualPeriodicity", r.details.frequency.clone());
    put_list(&mut m, "conformsTo", &r.details.conforms_to);
    put_list(&mut m, "references", &r.details.documentation);
    put(&mut m, "cix:lang", r.details.lang.clone());
    if !r.details.translations.is_empty() {
        m.insert("cix:translations".into(), json!(r.details.translations));
    }
    put_list(&mut m, "cix:legislation", &r.details.legislation);
    put(&mut m, "cix:versionInfo", r.details.version_info.clone());
    put(&mut m, "cix:versionNotes", r.details.version_notes.clone());
    m.insert("cix:iso".into(), json!(Classification::from_iso(&e.iso)));
    Value::Object(m)
}

fn pod_dist(d: &Distribution) -> Value {
    let mut m = Map::new();
    m.insert("@type".into(), json!("dcat:Distribution"));
    put(&mut m, "accessURL", d.access_url.clone());
    put(&mut m, "downloadURL", d.download_url.clone());
    if !d.media_type.is_empty() {
        m.insert("mediaType".into(), json!(d.media_type));
    }
    if let Some(f) = &d.format {
        m.insert("format".into(), json!(f));
        m.insert("cix:format".into(), json!(true));
    }
    put(&mut m, "title", d.title.clone());
    put(&mut m, "description", d.description.clone());
    put(&mut m, "cix:filename", d.filename.clone());
    put(&mut m, "cix:licence", d.licence.clone());
    put(&mut m, "cix:availability", d.availability.clone());
    put(&mut m, "cix:issued", d.issued.clone());
    put(&mut m, "cix:modified", d.modified.clone());
    put(&mut m, "cix:byteSize", d.bytes);
    put(&mut m, "cix:blake3", d.content.map(|c| c.to_hex()));
    if let Some(c) = &d.checksum {
        m.insert("cix:checksum".into(), json!(c));
    }
    Value::Object(m)
}

/// Reads CKAN JSON: an API response (`{"success":..,"result":..}`), a package, a list of
/// packages, or a search result (`{"results": [...]}`).
pub(crate) fn parse_ckan(v: &Value) -> Result<Parsed, ImportError> {
    let body = v.get("result").unwrap_or(v);
    let list: Vec<&Value> = match body {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => match o.get("results") {
            Some(Value::Array(a)) => a.iter().collect(),
            _ => vec![body],
        },
        _ => {
            return Err(ImportError(
                "CKAN JSON is a package, a list or a search result".into(),
            ))
        }
    };
    let mut out = Parsed::default();
    for (i, p) in list.into_iter().enumerate() {
        match ckan_package(p) {
            Ok(d) => out.drafts.push(d),
            Err(reason) => out.skipped.push(Skipped {
                source: p
                    .get("id")
                    .and_then(s)
                    .unwrap_or_else(|| format!("#{}", i + 1)),
                reason,
            }),
        }
    }
    Ok(out)
}

fn ckan_package(v: &Value) -> Result<Draft, String> {
    let o = v.as_object().ok_or("not a JSON object")?;
    let mut notes = Vec::new();
    let source_id = o
        .get("id")
        .or(o.get("name"))
        .and_then(s)
        .ok_or("no id or name")?;
    let title = o
        .get("title")
        .and_then(s)
        .or_else(|| o.get("name").and_then(s))
        .ok_or("no title")?;
    let modified = o
        .get("metadata_modified")
        .and_then(s)
        .and_then(|d| date(&d, &mut notes, "metadata_modified"))
        .ok_or("no usable metadata_modified")?;
    let issued = o
        .get("metadata_created")
        .and_then(s)
        .and_then(|d| date(&d, &mut notes, "metadata_created"))
        .unwrap_or_else(|| modified.clone());
    let keywords = match o.get("tags") {
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(|t| t.get("display_name").or(t.get("name")).and_then(s))
            .collect(),
        _ => Vec::new(),
    };
    let themes = match o.get("groups") {
        Some(Value::Array(gs)) => gs
            .iter()
            .filter_map(|g| g.get("name").and_then(s))
            .collect(),
        _ => Vec::new(),
    };
    let org = o.get("organization").filter(|x| x.is_object());
    let publisher = Agent {
        name: org
            .and_then(|x| x.get("title").or(x.get("name")))
            .and_then(s)
            .or_else(|| o.get("author").and_then(s))
            .unwrap_or_default(),
        ..Agent::default()
    };
    let contact = o
        .get("maintainer")
        .and_then(s)
        .or_else(|| o.get("author").and_then(s))
        .map(|name| Contact {
            name,
            email: o
                .get("maintainer_email")
                .and_then(s)
                .or_else(|| o.get("author_email").and_then(s)),
            ..Contact::default()
        });
    let mut distributions = Vec::new();
    if let Some(Value::Array(rs)) = o.get("resources") {
        for r in rs {
            let Some(u) = r
                .get("url")
                .and_then(s)
                .and_then(|u| url(&u, &mut notes, "resources.url"))
            else {
                notes.push("resource without a usable url; not kept".into());
                continue;
            };
            distributions.push(Distribution {
                download_url: Some(u),
                media_type: r.get("mimetype").and_then(s).unwrap_or_default(),
                format: r.get("format").and_then(s),
                title: r.get("name").and_then(s),
                description: r.get("description").and_then(s),
                bytes: r.get("size").and_then(Value::as_u64),
                modified: r
                    .get("last_modified")
                    .and_then(s)
                    .and_then(|d| date(&d, &mut notes, "resources.last_modified")),
                issued: r
                    .get("created")
                    .and_then(s)
                    .and_then(|d| date(&d, &mut notes, "resources.created")),
                checksum: r.get("hash").and_then(s).map(|h| Checksum {
                    algorithm: h
                        .split_once(':')
                        .map(|x| x.0.to_string())
                        .unwrap_or_else(|| "unknown".into()),
                    value: h
                        .split_once(':')
                        .map(|x| x.1.to_string())
                        .unwrap_or(h.clone()),
                }),
                ..Distribution::default()
            });
        }
    }
    let known = [
        "id",
        "name",
        "title",
        "notes",
        "metadata_modified",
        "metadata_created",
        "tags",
        "groups",
        "organization",
        "author",
        "author_email",
        "maintainer",
        "maintainer_email",
        "resources",
        "license_id",
        "license_title",
        "license_url",
        "url",
        "version",
        "private",
        "state",
        "type",
        "owner_org",
        "num_resources",
        "num_tags",
    ];
    for (k, v) in o {
        if !known.contains(&k.as_str()) && !v.is_null() && v != &json!("") && v != &json!([]) {
            notes.push(format!("{k}: no place in a cix entry; not kept"));
        }
    }
    if o.get("private") == Some(&Value::Bool(true)) {
        notes.push("private: the CKAN package is private; choose its spectrum with care".into());
    }
    let record = Record {
        source_id: source_id.clone(),
        title,
        description: o.get("notes").and_then(s).unwrap_or_default(),
        keywords,
        themes,
        publisher,
        contact,
        licence: o
            .get("license_url")
            .and_then(s)
            .or_else(|| o.get("license_id").and_then(s)),
        spatial: None,
        temporal: None,
        issued,
        modified,
        distributions,
        details: cix_protocol::catalogue::Details {
            quality_measures: None,
            resolves: Vec::new(),
            identifier: Some(source_id),
            landing_page: o
                .get("url")
                .and_then(s)
                .and_then(|u| url(&u, &mut notes, "url")),
            version_info: o.get("version").and_then(s),
            ..Default::default()
        },
    };
    Ok(Draft {
        record,
        iso: Classification::default(),
        notes,
    })
}
