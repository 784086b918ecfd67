//! DCAT-AP in RDF (Turtle, RDF/XML, JSON-LD), read and written with oxrdfio.
//!
//! The ISO 37156 block travels in the cix vocabulary [`CIX`]: one property per field of
//! [`Classification`], named like the field (`cix:data_type`, `cix:level`,
//! `cix:facets_subject`, ...), plus `cix:lang` (language of the main text), `cix:did` (a
//! publisher's principal) and `cix:filename` (a distribution's file name).

use std::collections::HashMap;

use cix_protocol::catalogue::{
    Agent, Checksum, Contact, Details, Distribution, Entry, Spatial, Temporal, Translation,
};
use oxrdf::{BlankNode, Literal, NamedNode, NamedOrBlankNode, Term, Triple};
use oxrdfio::{JsonLdProfileSet, RdfFormat, RdfParser, RdfSerializer};
use serde_json::{Map, Value};

use crate::mapping::Classification;
use crate::record::{entry_iri, Record};
use crate::text::{self, date};
use crate::{Draft, Format, ImportError, Parsed, Skipped};

/// The cix vocabulary namespace for the ISO 37156 block.
pub const CIX: &str = "https://example.invalid/cix/ns#";
const DCAT: &str = "http://www.w3.org/ns/dcat#";
const DCT: &str = "http://purl.org/dc/terms/";
const FOAF: &str = "http://xmlns.com/foaf/0.1/";
const VCARD: &str = "http://www.w3.org/2006/vcard/ns#";
const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
const XSD: &str = "http://www.w3.org/2001/XMLSchema#";
const SPDX: &str = "http://spdx.org/rdf/terms#";
const SKOS: &str = "http://www.w3.org/2004/02/skos/core#";
const RDFS: &str = "http://www.w3.org/2000/01/rdf-schema#";
const ADMS: &str = "http://www.w3.org/ns/adms#";
const DCATAP: &str = "http://data.europa.eu/r5r/";
const OWL: &str = "http://www.w3.org/2002/07/owl#";
const GEO: &str = "http://www.opengis.net/ont/geosparql#";
const IANA: &str = "https://www.iana.org/assignments/media-types/";
/// Fields of [`Classification`] that are lists.
const CIX_LISTS: &[&str] = &["groups", "high_risk", "allowed_jurisdictions"];

fn rdf_format(f: Format) -> RdfFormat {
    match f {
        Format::DcatApTurtle => RdfFormat::Turtle,
        Format::DcatApRdfxml => RdfFormat::RdfXml,
        _ => RdfFormat::JsonLd {
            profile: JsonLdProfileSet::empty(),
        },
    }
}

struct Graph {
    triples: Vec<Triple>,
    by_subject: HashMap<NamedOrBlankNode, Vec<usize>>,
}

impl Graph {
    fn objects<'a>(&'a self, s: &NamedOrBlankNode, p: &str) -> Vec<&'a Term> {
        self.by_subject
            .get(s)
            .map(|ix| {
                ix.iter()
                    .map(|i| &self.triples[*i])
                    .filter(|t| t.predicate.as_str() == p)
                    .map(|t| &t.object)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Values as text: a literal's value or an IRI.
    fn texts(&self, s: &NamedOrBlankNode, p: &str) -> Vec<String> {
        self.objects(s, p)
            .into_iter()
            .filter_map(|o| match o {
                Term::NamedNode(n) => Some(n.as_str().to_string()),
                Term::Literal(l) => Some(l.value().trim().to_string()),
                _ => None,
            })
            .filter(|v| !v.is_empty())
            .collect()
    }

    fn text(&self, s: &NamedOrBlankNode, p: &str, notes: &mut Vec<String>) -> Option<String> {
        let mut v = self.texts(s, p);
        if v.len() > 1 {
            notes.push(format!(
                "{}: {} values, kept the first; dropped {:?}",
                short(p),
                v.len(),
                &v[1..]
            ));
        }
        (!v.is_empty()).then(|| v.swap_remove(0))
    }

    /// Literals with their language tags (lower case).
    fn literals(&self, s: &NamedOrBlankNode, p: &str) -> Vec<(String, Option<String>)> {
        self.objects(s, p)
            .into_iter()
            .filter_map(|o| match o {
                Term::Literal(l) => Some((
                    l.value().trim().to_string(),
                    l.language().map(str::to_ascii_lowercase),
                )),
                Term::NamedNode(n) => Some((n.as_str().to_string(), None)),
                _ => None,
            })
            .collect()
    }

    fn node(&self, s: &NamedOrBlankNode, p: &str) -> Option<NamedOrBlankNode> {
        self.objects(s, p).into_iter().find_map(|o| match o {
            Term::NamedNode(n) => Some(NamedOrBlankNode::NamedNode(n.clone())),
            Term::BlankNode(b) => Some(NamedOrBlankNode::BlankNode(b.clone())),
            _ => None,
        })
    }

    fn nodes(&self, s: &NamedOrBlankNode, p: &str) -> Vec<NamedOrBlankNode> {
        self.objects(s, p)
            .into_iter()
            .filter_map(|o| match o {
                Term::NamedNode(n) => Some(NamedOrBlankNode::NamedNode(n.clone())),
                Term::BlankNode(b) => Some(NamedOrBlankNode::BlankNode(b.clone())),
                _ => None,
            })
            .collect()
    }

    fn predicates(&self, s: &NamedOrBlankNode) -> Vec<&str> {
        self.by_subject
            .get(s)
            .map(|ix| {
                ix.iter()
                    .map(|i| self.triples[*i].predicate.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn short(iri: &str) -> String {
    for (p, ns) in [
        ("dcat:", DCAT),
        ("dct:", DCT),
        ("foaf:", FOAF),
        ("vcard:", VCARD),
        ("cix:", CIX),
        ("adms:", ADMS),
        ("dcatap:", DCATAP),
        ("spdx:", SPDX),
    ] {
        if let Some(rest) = iri.strip_prefix(ns) {
            return format!("{p}{rest}");
        }
    }
    iri.to_string()
}

fn d(p: &str) -> String {
    format!("{DCAT}{p}")
}
fn t(p: &str) -> String {
    format!("{DCT}{p}")
}

/// Reads DCAT-AP RDF: every `dcat:Dataset` becomes a draft.
pub(crate) fn parse(format: Format, bytes: &[u8]) -> Result<Parsed, ImportError> {
    let parser = RdfParser::from_format(rdf_format(format))
        .without_named_graphs()
        .rename_blank_nodes()
        .for_reader(bytes)
        .with_document_loader(|url| {
            Err(format!(
                "remote JSON-LD context {url} is not fetched (cix makes no network requests on import): inline the context or convert the file to Turtle"
            )
            .into())
        });
    let mut triples = Vec::new();
    for q in parser {
        let q = q.map_err(|e| ImportError(format!("not valid {format}: {e}")))?;
        triples.push(Triple::new(q.subject, q.predicate, q.object));
        if triples.len() > 2_000_000 {
            return Err(ImportError(
                "more than 2 000 000 triples: split the file".into(),
            ));
        }
    }
    let mut by_subject: HashMap<NamedOrBlankNode, Vec<usize>> = HashMap::new();
    for (i, tr) in triples.iter().enumerate() {
        by_subject.entry(tr.subject.clone()).or_default().push(i);
    }
    let g = Graph {
        triples,
        by_subject,
    };
    let mut out = Parsed::default();
    let mut seen = Vec::new();
    for tr in &g.triples {
        if tr.predicate.as_str() != RDF_TYPE || seen.contains(&tr.subject) {
            continue;
        }
        let Term::NamedNode(ty) = &tr.object else {
            continue;
        };
        match ty.as_str() {
            x if x == d("Dataset") => {
                seen.push(tr.subject.clone());
                let id = subject_text(&tr.subject);
                match dataset(&g, &tr.subject) {
                    Ok(draft) => out.drafts.push(draft),
                    Err(reason) => out.skipped.push(Skipped { source: id, reason }),
                }
            }
            x if x == d("Catalog") || x == d("DataService") => {
                seen.push(tr.subject.clone());
                out.skipped.push(Skipped {
                    source: subject_text(&tr.subject),
                    reason: format!(
                        "a {}: cix keeps datasets; the catalogue's datasets are imported on their own",
                        short(x)
                    ),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

fn subject_text(s: &NamedOrBlankNode) -> String {
    match s {
        NamedOrBlankNode::NamedNode(n) => n.as_str().to_string(),
        NamedOrBlankNode::BlankNode(b) => format!("_:{}", b.as_str()),
    }
}

/// Groups `(value, lang)` literals by language, in order of first appearance.
fn by_lang(items: Vec<(String, Option<String>)>) -> Vec<(Option<String>, Vec<String>)> {
    let mut out: Vec<(Option<String>, Vec<String>)> = Vec::new();
    for (v, l) in items {
        match out.iter_mut().find(|(k, _)| *k == l) {
            Some((_, vs)) => vs.push(v),
            None => out.push((l, vec![v])),
        }
    }
    out
}

fn dataset(g: &Graph, s: &NamedOrBlankNode) -> Result<Draft, String> {
    let mut notes = Vec::new();
    let titles = by_lang(g.literals(s, &t("title")));
    let first_lang = titles.first().and_then(|(l, _)| l.clone());
    let lang = g
        .texts(s, &format!("{CIX}lang"))
        .into_iter()
        .next()
        .or(first_lang);
    let pick = |groups: &[(Option<String>, Vec<String>)]| -> Vec<String> {
        groups
            .iter()
            .filter(|(l, _)| *l == lang || l.is_none())
            .flat_map(|(_, v)| v.clone())
            .collect()
    };
    let descriptions = by_lang(g.literals(s, &t("description")));
    let keywords = by_lang(g.literals(s, &d("keyword")));
    let main_titles = pick(&titles);
    let title = main_titles.first().cloned().ok_or("no dct:title")?;
    if main_titles.len() > 1 {
        notes.push(format!(
            "dct:title: several titles in one language; kept {title:?}"
        ));
    }
    let mut translations: Vec<Translation> = Vec::new();
    for (field, groups) in [
        ("title", &titles),
        ("description", &descriptions),
        ("keyword", &keywords),
    ] {
        for (l, vs) in groups.iter() {
            let Some(l) = l.clone().filter(|l| Some(l) != lang.as_ref()) else {
                continue;
            };
            if lang.is_none() {
                notes.push(format!(
                    "dct:{field}@{l}: the main text has no language; translation not kept"
                ));
                continue;
            }
            let i = match translations.iter().position(|x| x.lang == l) {
                Some(i) => i,
                None => {
                    translations.push(Translation {
                        lang: l.clone(),
                        title: None,
                        description: None,
                        keywords: vec![],
                    });
                    translations.len() - 1
                }
            };
            let tr = &mut translations[i];
            match field {
                "title" => tr.title = vs.first().cloned(),
                "description" => tr.description = vs.first().cloned(),
                _ => tr.keywords = vs.clone(),
            }
        }
    }
    let modified = g
        .text(s, &t("modified"), &mut notes)
        .and_then(|v| date(&v, &mut notes, "dct:modified"));
    let issued = g
        .text(s, &t("issued"), &mut notes)
        .and_then(|v| date(&v, &mut notes, "dct:issued"));
    let (issued, modified) = match (issued, modified) {
        (Some(i), Some(m)) => (i, m),
        (Some(i), None) => {
            notes.push("dct:modified: not stated; taken from dct:issued".into());
            (i.clone(), i)
        }
        (None, Some(m)) => {
            notes.push("dct:issued: not stated; taken from dct:modified".into());
            (m.clone(), m)
        }
        (None, None) => {
            // A dataset without dates takes its catalogue's (DCAT-AP-ES's example does this).
            let cat = g
                .triples
                .iter()
                .find(|x| x.predicate.as_str() == d("dataset") && x.object == Term::from(s.clone()))
                .map(|x| x.subject.clone());
            let from_cat = |p: &str, notes: &mut Vec<String>| {
                cat.as_ref()
                    .and_then(|c| g.text(c, &t(p), notes))
                    .and_then(|v| date(&v, notes, "catalogue date"))
            };
            let m = from_cat("modified", &mut notes).or_else(|| from_cat("issued", &mut notes));
            let i = from_cat("issued", &mut notes).or_else(|| m.clone());
            match (i, m) {
                (Some(i), Some(m)) => {
                    notes.push("dct:issued, dct:modified: not stated on the dataset; taken from its catalogue".into());
                    (i, m)
                }
                _ => return Err("neither dct:issued nor dct:modified is stated, on the dataset or its catalogue".into()),
            }
        }
    };
    let publisher = match g.node(s, &t("publisher")) {
        Some(p) => {
            let name = g.text(&p, &format!("{FOAF}name"), &mut notes);
            let uri = match &p {
                NamedOrBlankNode::NamedNode(n) => Some(n.as_str().to_string()),
                _ => None,
            };
            Agent {
                name: name.or(uri.clone()).unwrap_or_default(),
                did: g
                    .texts(&p, &format!("{CIX}did"))
                    .first()
                    .and_then(|x| x.parse().ok()),
                uri,
            }
        }
        None => Agent::default(),
    };
    let contact = g.node(s, &d("contactPoint")).map(|c| {
        let name = g
            .text(&c, &format!("{VCARD}fn"), &mut notes)
            .or_else(|| g.text(&c, &format!("{VCARD}organization-name"), &mut notes))
            .unwrap_or_default();
        Contact {
            name,
            email: g
                .text(&c, &format!("{VCARD}hasEmail"), &mut notes)
                .map(|e| e.trim_start_matches("mailto:").to_string()),
            url: g.text(&c, &format!("{VCARD}hasURL"), &mut notes),
            phone: g
                .text(&c, &format!("{VCARD}hasTelephone"), &mut notes)
                .map(|p| p.trim_start_matches("tel:").to_string()),
        }
    });
    let spatial = g.node(s, &t("spatial")).map(|sp| match &sp {
        NamedOrBlankNode::NamedNode(n) if g.predicates(&sp).is_empty() => Spatial {
            name: Some(n.as_str().to_string()),
            bbox: None,
        },
        _ => {
            let bbox = g.text(&sp, &d("bbox"), &mut notes).and_then(|w| {
                let b = text::bbox_parse(&w);
                if b.is_none() {
                    notes.push(format!(
                        "dcat:bbox: {:?} is not a polygon cix reads; not kept",
                        text::clip(&w)
                    ));
                }
                b
            });
            let name = g
                .text(&sp, &format!("{SKOS}prefLabel"), &mut notes)
                .or_else(|| g.text(&sp, &format!("{RDFS}label"), &mut notes))
                .or_else(|| match &sp {
                    NamedOrBlankNode::NamedNode(n) => Some(n.as_str().to_string()),
                    _ => None,
                });
            Spatial { name, bbox }
        }
    });
    let temporal = g.node(s, &t("temporal")).and_then(|p| {
        let start = g
            .text(&p, &d("startDate"), &mut notes)
            .and_then(|v| date(&v, &mut notes, "dcat:startDate"));
        let end = g
            .text(&p, &d("endDate"), &mut notes)
            .and_then(|v| date(&v, &mut notes, "dcat:endDate"));
        (start.is_some() || end.is_some()).then_some(Temporal { start, end })
    });
    let mut distributions = Vec::new();
    for dn in g.nodes(s, &d("distribution")) {
        match distribution(g, &dn, &mut notes) {
            Some(x) => distributions.push(x),
            None => notes.push(format!(
                "dcat:distribution {}: no access or download URL and no cix content hash; not kept",
                subject_text(&dn)
            )),
        }
    }
    let identifier = g.text(s, &t("identifier"), &mut notes);
    let source_id = identifier.clone().unwrap_or_else(|| subject_text(s));
    let urls = |p: &str, notes: &mut Vec<String>| -> Vec<String> {
        g.texts(s, p)
            .into_iter()
            .filter_map(|u| text::url(&u, notes, &short(p)))
            .collect()
    };
    let details = Details {
        quality_measures: None,
        resolves: Vec::new(),
        identifier,
        lang: lang.clone(),
        translations,
        landing_page: g
            .text(s, &d("landingPage"), &mut notes)
            .and_then(|u| text::url(&u, &mut notes, "dcat:landingPage")),
        languages: g.texts(s, &t("language")),
        frequency: g.text(s, &t("accrualPeriodicity"), &mut notes),
        conforms_to: g.texts(s, &t("conformsTo")),
        access_rights: g.text(s, &t("accessRights"), &mut notes),
        documentation: urls(&format!("{FOAF}page"), &mut notes),
        version_info: g
            .text(s, &d("version"), &mut notes)
            .or_else(|| g.text(s, &format!("{OWL}versionInfo"), &mut notes)),
        version_notes: g.text(s, &format!("{ADMS}versionNotes"), &mut notes),
        legislation: urls(&format!("{DCATAP}applicableLegislation"), &mut notes),
    };
    let iso = classification(g, s)?;
    let known: Vec<String> = [
        t("title"),
        t("description"),
        d("keyword"),
        d("theme"),
        t("publisher"),
        d("contactPoint"),
        t("license"),
        t("spatial"),
        t("temporal"),
        t("issued"),
        t("modified"),
        d("distribution"),
        t("identifier"),
        d("landingPage"),
        t("language"),
        t("accrualPeriodicity"),
        t("conformsTo"),
        t("accessRights"),
        format!("{FOAF}page"),
        d("version"),
        format!("{OWL}versionInfo"),
        format!("{ADMS}versionNotes"),
        format!("{DCATAP}applicableLegislation"),
        RDF_TYPE.into(),
    ]
    .into();
    let mut unknown: Vec<&str> = g
        .predicates(s)
        .into_iter()
        .filter(|p| !known.iter().any(|k| k == p) && !p.starts_with(CIX))
        .collect();
    unknown.dedup();
    for p in unknown {
        notes.push(format!("{}: no place in a cix entry; not kept", short(p)));
    }
    let record = Record {
        source_id,
        title,
        description: pick(&descriptions).first().cloned().unwrap_or_default(),
        keywords: pick(&keywords),
        themes: g.texts(s, &d("theme")),
        publisher,
        contact,
        licence: g.text(s, &t("license"), &mut notes),
        spatial,
        temporal,
        issued,
        modified,
        distributions,
        details,
    };
    Ok(Draft { record, iso, notes })
}

fn distribution(g: &Graph, s: &NamedOrBlankNode, notes: &mut Vec<String>) -> Option<Distribution> {
    let mut dist = Distribution {
        access_url: g
            .text(s, &d("accessURL"), notes)
            .and_then(|u| text::url(&u, notes, "dcat:accessURL")),
        download_url: g
            .text(s, &d("downloadURL"), notes)
            .and_then(|u| text::url(&u, notes, "dcat:downloadURL")),
        media_type: g
            .text(s, &d("mediaType"), notes)
            .map(|m| {
                m.trim_start_matches(IANA)
                    .trim_start_matches("http://www.iana.org/assignments/media-types/")
                    .to_string()
            })
            .unwrap_or_default(),
        title: g.text(s, &t("title"), notes),
        description: g.text(s, &t("description"), notes),
        format: g.text(s, &t("format"), notes),
        licence: g.text(s, &t("license"), notes),
        availability: g
            .text(s, &format!("{DCATAP}availability"), notes)
            .or_else(|| g.text(s, &format!("{ADMS}status"), notes)),
        issued: g
            .text(s, &t("issued"), notes)
            .and_then(|v| date(&v, notes, "distribution dct:issued")),
        modified: g
            .text(s, &t("modified"), notes)
            .and_then(|v| date(&v, notes, "distribution dct:modified")),
        filename: g.text(s, &format!("{CIX}filename"), notes),
        ..Distribution::default()
    };
    if let Some(b) = g.text(s, &d("byteSize"), notes) {
        match b.parse::<u64>() {
            Ok(n) => dist.bytes = Some(n),
            Err(_) => notes.push(format!(
                "dcat:byteSize: {b:?} is not a whole number; not kept"
            )),
        }
    }
    for c in g.nodes(s, &format!("{SPDX}checksum")) {
        let alg = g
            .text(&c, &format!("{SPDX}algorithm"), notes)
            .map(|a| {
                a.rsplit("checksumAlgorithm_")
                    .next()
                    .unwrap_or(&a)
                    .to_ascii_lowercase()
            })
            .unwrap_or_else(|| "unknown".into());
        let Some(value) = g.text(&c, &format!("{SPDX}checksumValue"), notes) else {
            continue;
        };
        if alg == "blake3" && dist.content.is_none() {
            match value.parse() {
                Ok(h) => dist.content = Some(h),
                Err(e) => notes.push(format!("spdx:checksum: {e}; not kept")),
            }
        } else {
            dist.checksum = Some(Checksum {
                algorithm: alg,
                value,
            });
        }
    }
    (dist.access_url.is_some() || dist.download_url.is_some() || dist.content.is_some())
        .then_some(dist)
}

/// The `cix:` properties of a dataset as a [`Classification`].
fn classification(g: &Graph, s: &NamedOrBlankNode) -> Result<Classification, String> {
    let mut m = Map::new();
    let mut facets = Map::new();
    for o in g
        .by_subject
        .get(s)
        .into_iter()
        .flatten()
        .map(|i| &g.triples[*i])
    {
        let Some(key) = o.predicate.as_str().strip_prefix(CIX) else {
            continue;
        };
        if matches!(key, "lang" | "did" | "filename") {
            continue;
        }
        let Term::Literal(l) = &o.object else {
            continue;
        };
        if key == "dictionary" {
            let v: Value = serde_json::from_str(l.value())
                .map_err(|e| format!("cix:dictionary is not a JSON data dictionary: {e}"))?;
            m.insert(key.to_string(), v);
            continue;
        }
        let v = match l.datatype().as_str() {
            x if x == format!("{XSD}boolean") => Value::Bool(l.value() == "true"),
            x if x == format!("{XSD}integer") => l
                .value()
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(l.value().into())),
            _ => Value::String(l.value().into()),
        };
        if let Some(f) = key.strip_prefix("facets_") {
            facets.insert(f.to_string(), v);
        } else if CIX_LISTS.contains(&key) {
            if let Some(a) = m
                .entry(key.to_string())
                .or_insert_with(|| Value::Array(vec![]))
                .as_array_mut()
            {
                a.push(v);
            }
        } else {
            m.insert(key.to_string(), v);
        }
    }
    if !facets.is_empty() {
        m.insert("facets".into(), Value::Object(facets));
    }
    serde_json::from_value(Value::Object(m))
        .map_err(|e| format!("cix: properties do not form an ISO block: {e}"))
}

/// Writes entries as DCAT-AP.
pub(crate) fn export(entries: &[Entry], format: Format) -> Result<Vec<u8>, ImportError> {
    let mut w = Writer::default();
    let cat = NamedOrBlankNode::from(BlankNode::new_unchecked("catalogue"));
    w.iri(&cat, RDF_TYPE, &d("Catalog"));
    w.lit(&cat, &t("title"), "cix catalogue export", None);
    for e in entries {
        let ds = dataset_out(&mut w, e);
        w.push(&cat, &d("dataset"), ds.into());
    }
    let mut ser = RdfSerializer::from_format(rdf_format(format));
    for (p, ns) in [
        ("dcat", DCAT),
        ("dct", DCT),
        ("foaf", FOAF),
        ("vcard", VCARD),
        ("cix", CIX),
        ("xsd", XSD),
        ("spdx", SPDX),
        ("adms", ADMS),
        ("dcatap", DCATAP),
        ("skos", SKOS),
    ] {
        ser = ser
            .with_prefix(p, ns)
            .map_err(|e| ImportError(e.to_string()))?;
    }
    let mut out = ser.for_writer(Vec::new());
    for tr in &w.triples {
        out.serialize_triple(tr)
            .map_err(|e| ImportError(format!("cannot write RDF: {e}")))?;
    }
    out.finish()
        .map_err(|e| ImportError(format!("cannot write RDF: {e}")))
}

#[derive(Default)]
struct Writer {
    triples: Vec<Triple>,
    blanks: usize,
}

impl Writer {
    fn blank(&mut self) -> NamedOrBlankNode {
        self.blanks += 1;
        BlankNode::new_unchecked(format!("b{}", self.blanks)).into()
    }
    fn push(&mut self, s: &NamedOrBlankNode, p: &str, o: Term) {
        self.triples
            .push(Triple::new(s.clone(), NamedNode::new_unchecked(p), o));
    }
    fn iri(&mut self, s: &NamedOrBlankNode, p: &str, o: &str) {
        self.push(s, p, NamedNode::new_unchecked(o).into());
    }
    fn lit(&mut self, s: &NamedOrBlankNode, p: &str, v: &str, lang: Option<&str>) {
        let l = match lang.and_then(|l| Literal::new_language_tagged_literal(v, l).ok()) {
            Some(l) => l,
            None => Literal::new_simple_literal(v),
        };
        self.push(s, p, l.into());
    }
    fn typed(&mut self, s: &NamedOrBlankNode, p: &str, v: &str, ty: &str) {
        self.push(
            s,
            p,
            Literal::new_typed_literal(v, NamedNode::new_unchecked(format!("{XSD}{ty}"))).into(),
        );
    }
    /// An IRI when `v` is one, else a plain literal.
    fn iri_or_lit(&mut self, s: &NamedOrBlankNode, p: &str, v: &str) {
        match NamedNode::new(v) {
            Ok(n) if cix_protocol::catalogue::is_url(v) => self.push(s, p, n.into()),
            _ => self.lit(s, p, v, None),
        }
    }
    fn date(&mut self, s: &NamedOrBlankNode, p: &str, v: &str) {
        self.typed(s, p, v, if v.len() == 10 { "date" } else { "dateTime" });
    }
}

fn dataset_out(w: &mut Writer, e: &Entry) -> NamedOrBlankNode {
    let r = Record::from_entry(e);
    let s: NamedOrBlankNode = NamedNode::new(entry_iri(e))
        .map(Into::into)
        .unwrap_or_else(|_| w.blank());
    let lang = r.details.lang.as_deref();
    w.iri(&s, RDF_TYPE, &d("Dataset"));
    w.lit(&s, &t("title"), &r.title, lang);
    w.lit(&s, &t("description"), &r.description, lang);
    for k in &r.keywords {
        w.lit(&s, &d("keyword"), k, lang);
    }
    if let Some(l) = lang {
        w.lit(&s, &format!("{CIX}lang"), l, None);
    }
    for tr in &r.details.translations {
        if let Some(x) = &tr.title {
            w.lit(&s, &t("title"), x, Some(&tr.lang));
        }
        if let Some(x) = &tr.description {
            w.lit(&s, &t("description"), x, Some(&tr.lang));
        }
        for k in &tr.keywords {
            w.lit(&s, &d("keyword"), k, Some(&tr.lang));
        }
    }
    for th in &r.themes {
        w.iri_or_lit(&s, &d("theme"), th);
    }
    let p: NamedOrBlankNode = match r.publisher.uri.as_deref().map(NamedNode::new) {
        Some(Ok(n)) => n.into(),
        _ => w.blank(),
    };
    w.iri(&p, RDF_TYPE, &format!("{FOAF}Agent"));
    if r.publisher.uri.as_deref() != Some(r.publisher.name.as_str()) {
        w.lit(&p, &format!("{FOAF}name"), &r.publisher.name, None);
    }
    if let Some(did) = r.publisher.did {
        w.lit(&p, &format!("{CIX}did"), &did.to_string(), None);
    }
    w.push(&s, &t("publisher"), p.into());
    if let Some(c) = &r.contact {
        let cn = w.blank();
        w.iri(&cn, RDF_TYPE, &format!("{VCARD}Kind"));
        w.lit(&cn, &format!("{VCARD}fn"), &c.name, None);
        if let Some(x) = &c.email {
            w.iri_or_lit(&cn, &format!("{VCARD}hasEmail"), &format!("mailto:{x}"));
        }
        if let Some(x) = &c.url {
            w.iri_or_lit(&cn, &format!("{VCARD}hasURL"), x);
        }
        if let Some(x) = &c.phone {
            w.iri_or_lit(&cn, &format!("{VCARD}hasTelephone"), &format!("tel:{x}"));
        }
        w.push(&s, &d("contactPoint"), cn.into());
    }
    if let Some(l) = &r.licence {
        w.iri_or_lit(&s, &t("license"), l);
    }
    if let Some(sp) = &r.spatial {
        match (&sp.name, &sp.bbox) {
            (Some(n), None)
                if cix_protocol::catalogue::is_url(n) && NamedNode::new(n.as_str()).is_ok() =>
            {
                w.iri(&s, &t("spatial"), n)
            }
            _ => {
                let loc = w.blank();
                w.iri(&loc, RDF_TYPE, &t("Location"));
                if let Some(n) = &sp.name {
                    w.lit(&loc, &format!("{SKOS}prefLabel"), n, None);
                }
                if let Some(b) = &sp.bbox {
                    w.push(
                        &loc,
                        &d("bbox"),
                        Literal::new_typed_literal(
                            text::bbox_wkt(b),
                            NamedNode::new_unchecked(format!("{GEO}wktLiteral")),
                        )
                        .into(),
                    );
                }
                w.push(&s, &t("spatial"), loc.into());
            }
        }
    }
    if let Some(tm) = &r.temporal {
        let pn = w.blank();
        w.iri(&pn, RDF_TYPE, &t("PeriodOfTime"));
        if let Some(x) = &tm.start {
            w.date(&pn, &d("startDate"), x);
        }
        if let Some(x) = &tm.end {
            w.date(&pn, &d("endDate"), x);
        }
        w.push(&s, &t("temporal"), pn.into());
    }
    w.date(&s, &t("issued"), &r.issued);
    w.date(&s, &t("modified"), &r.modified);
    let dt = &r.details;
    if let Some(x) = &dt.identifier {
        w.lit(&s, &t("identifier"), x, None);
    }
    if let Some(x) = &dt.landing_page {
        w.iri_or_lit(&s, &d("landingPage"), x);
    }
    for x in &dt.languages {
        w.iri_or_lit(&s, &t("language"), x);
    }
    if let Some(x) = &dt.frequency {
        w.iri_or_lit(&s, &t("accrualPeriodicity"), x);
    }
    for x in &dt.conforms_to {
        w.iri_or_lit(&s, &t("conformsTo"), x);
    }
    if let Some(x) = &dt.access_rights {
        w.iri_or_lit(&s, &t("accessRights"), x);
    }
    for x in &dt.documentation {
        w.iri_or_lit(&s, &format!("{FOAF}page"), x);
    }
    if let Some(x) = &dt.version_info {
        w.lit(&s, &d("version"), x, None);
    }
    if let Some(x) = &dt.version_notes {
        w.lit(&s, &format!("{ADMS}versionNotes"), x, None);
    }
    for x in &dt.legislation {
        w.iri_or_lit(&s, &format!("{DCATAP}applicableLegislation"), x);
    }
    for dist in &r.distributions {
        let dn = w.blank();
        w.iri(&dn, RDF_TYPE, &d("Distribution"));
        if let Some(x) = &dist.access_url {
            w.iri_or_lit(&dn, &d("accessURL"), x);
        }
        if let Some(x) = &dist.download_url {
            w.iri_or_lit(&dn, &d("downloadURL"), x);
        }
        if !dist.media_type.is_empty() {
            w.iri_or_lit(&dn, &d("mediaType"), &format!("{IANA}{}", dist.media_type));
        }
        for (p, v) in [
            (t("title"), &dist.title),
            (t("description"), &dist.description),
            (format!("{CIX}filename"), &dist.filename),
        ] {
            if let Some(v) = v {
                w.lit(&dn, &p, v, None);
            }
        }
        for (p, v) in [
            (t("format"), &dist.format),
            (t("license"), &dist.licence),
            (format!("{DCATAP}availability"), &dist.availability),
        ] {
            if let Some(v) = v {
                w.iri_or_lit(&dn, &p, v);
            }
        }
        if let Some(x) = &dist.issued {
            w.date(&dn, &t("issued"), x);
        }
        if let Some(x) = &dist.modified {
            w.date(&dn, &t("modified"), x);
        }
        if let Some(n) = dist.bytes {
            w.typed(&dn, &d("byteSize"), &n.to_string(), "nonNegativeInteger");
        }
        let sums = dist
            .content
            .map(|c| ("blake3".to_string(), c.to_hex()))
            .into_iter()
            .chain(
                dist.checksum
                    .as_ref()
                    .map(|c| (c.algorithm.clone(), c.value.clone())),
            );
        for (alg, value) in sums.collect::<Vec<_>>() {
            let cn = w.blank();
            w.iri(&cn, RDF_TYPE, &format!("{SPDX}Checksum"));
            w.iri(
                &cn,
                &format!("{SPDX}algorithm"),
                &format!("{SPDX}checksumAlgorithm_{alg}"),
            );
            w.typed(&cn, &format!("{SPDX}checksumValue"), &value, "hexBinary");
            w.push(&dn, &format!("{SPDX}checksum"), cn.into());
        }
        w.push(&s, &d("distribution"), dn.into());
    }
    // The ISO 37156 block, one cix: property per classification field.
    if let Ok(Value::Object(m)) = serde_json::to_value(Classification::from_iso(&e.iso)) {
        for (k, v) in m {
            if k == "dictionary" {
                // One literal holding the fields as JSON text: they are ordered records, which
                // RDF has no plain form for (short of rdf:List), and no DCAT-AP property
                // describes them. A plain string, not rdf:JSON, so no serializer rewrites it.
                w.lit(&s, &format!("{CIX}dictionary"), &v.to_string(), None);
            } else {
                cix_value(w, &s, &k, &v);
            }
        }
    }
    s
}

fn cix_value(w: &mut Writer, s: &NamedOrBlankNode, key: &str, v: &Value) {
    let p = format!("{CIX}{key}");
    match v {
        Value::String(x) => w.lit(s, &p, x, None),
        Value::Bool(b) => w.typed(s, &p, if *b { "true" } else { "false" }, "boolean"),
        Value::Number(n) => w.typed(s, &p, &n.to_string(), "integer"),
        Value::Array(a) => a.iter().for_each(|x| cix_value(w, s, key, x)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| cix_value(w, s, &format!("{key}_{k}"), x)),
        Value::Null => {}
    }
}
