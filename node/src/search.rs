//! Catalogue search (ISO 37156 9.3: data that can be found): an in-memory inverted index over
//! the latest entry of every dataset the node knows, its own and its peers'.
//!
//! - **Words** are matched in the title, the keywords and the description. Text is cut into
//!   words at every character that is not a Unicode letter or digit, lower-cased with Unicode
//!   rules, and given a light English plural stemming ([`stem`]). A query word matches a word of
//!   an entry that is equal to it, or, when the query word has at least [`MIN_PREFIX_CHARS`]
//!   characters, one that starts with it. Every query word must match (AND).
//! - **Ranking** is BM25F: title hits weigh [`TITLE_WEIGHT`], keyword hits [`KEYWORD_WEIGHT`],
//!   description hits [`DESCRIPTION_WEIGHT`]; a prefix match counts [`PREFIX_FACTOR`] of an
//!   exact one. Ties (and facet-only queries, which score 0) are ordered by modification time,
//!   newest first, then dataset id.
//! - **Facets** filter exactly: domain, SCCM kind (5.3), data type (5.2), spectrum (5.5),
//!   publisher (name, case-insensitive, or did), insight level (5.3), licence (case-insensitive).
//!   Several values of one facet are alternatives; different facets must all hold.
//! - **Coverage**: a bounding box intersects an entry's box (edges touching count; a box whose
//!   west is east of its east crosses the antimeridian); a time range overlaps an entry's
//!   temporal coverage (an entry without a start began before any time, one without an end is
//!   still going on; a date-only end covers its whole day).
//!
//! The index holds exactly what the store's `latest` tree holds, keyed the same way (dataset id
//! and publisher), so it is bounded by the store. It is rebuilt from the store at start and
//! updated when the node stores a newer version ([`SearchIndex::insert`]); [`SearchIndex::remove`]
//! drops a dataset (for withdrawals). Memory is about 1.1 KiB per entry
//! ([`Index::memory_bytes`] estimates it); `specs/catalogue.md` §12 describes it all.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Bound;
use std::sync::RwLock;

use anyhow::{Context, Result};
use cix_protocol::catalogue::{
    is_rfc3339, BoundingBox, DataType, DatasetId, Domain, Entry, EntryId, Insight, Kind, Level,
    SignedEntry,
};
use cix_protocol::identity::Did;
use serde::Serialize;
use serde_json::{json, Value};

use crate::store::Store;

/// Results shown when the query does not say.
pub const DEFAULT_LIMIT: usize = 20;
/// Most results one query returns.
pub const MAX_LIMIT: usize = 1000;
/// Most words in one query (after tokenisation).
pub const MAX_QUERY_WORDS: usize = 16;
/// Longest query text, bytes, all words together.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Most values given for one facet.
pub const MAX_FACET_VALUES: usize = 16;
/// Longest facet value (publisher, licence), bytes.
pub const MAX_FACET_VALUE_BYTES: usize = 512;
/// Shortest query word that also matches as a prefix.
pub const MIN_PREFIX_CHARS: usize = 3;
/// Longest indexed word, characters; longer words are cut to this.
pub const MAX_WORD_CHARS: usize = 64;

/// BM25F weight of a title hit.
pub const TITLE_WEIGHT: f64 = 3.0;
/// BM25F weight of a keyword hit.
pub const KEYWORD_WEIGHT: f64 = 2.0;
/// BM25F weight of a description hit.
pub const DESCRIPTION_WEIGHT: f64 = 1.0;
/// Share of an exact match's score a prefix match gets.
pub const PREFIX_FACTOR: f64 = 0.5;
const K1: f64 = 1.2;
const B: f64 = 0.75;

const LON_MAX: i64 = 1_800_000_000;

/// Light English plural stemming: `ies` to `y`, `sses`/`xes`/`ches`/`shes`/`zes` lose `es`, and
/// a final `s` goes unless the word ends in `ss`, `us` or `is`. Short words are left alone.
pub fn stem(word: &str) -> String {
    let n = word.chars().count();
    let cut = |k: usize| word[..word.len() - k].to_string();
    if n > 4 && word.ends_with("ies") {
        return format!("{}y", cut(3));
    }
    if n > 4
        && ["sses", "xes", "ches", "shes", "zes"]
            .iter()
            .any(|s| word.ends_with(s))
    {
        return cut(2);
    }
    if n > 3 && word.ends_with('s') && !["ss", "us", "is"].iter().any(|s| word.ends_with(s)) {
        return cut(1);
    }
    word.to_string()
}

/// The words of `text`: split at non-alphanumeric characters (Unicode), lower-cased, cut to
/// [`MAX_WORD_CHARS`], stemmed.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let lower: String = w.to_lowercase().chars().take(MAX_WORD_CHARS).collect();
            stem(&lower)
        })
}

/// Why a query was refused; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {why}")]
pub struct QueryError {
    /// The parameter (`q`, `domain`, `bbox`, ...).
    pub param: String,
    /// What was wrong.
    pub why: String,
}

fn qerr(param: &str, why: impl Into<String>) -> QueryError {
    QueryError {
        param: param.to_string(),
        why: why.into(),
    }
}

/// A search: words and filters. Empty filters do not filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Query words (already tokenised with [`words`], deduplicated).
    pub words: Vec<String>,
    /// Infrastructure domains.
    pub domains: Vec<Domain>,
    /// ISO 37156 5.3 kinds.
    pub kinds: Vec<Kind>,
    /// ISO 37156 5.2 data types.
    pub data_types: Vec<DataType>,
    /// ISO 37156 5.5 spectrum levels.
    pub levels: Vec<Level>,
    /// Publisher names (matched case-insensitively) or dids.
    pub publishers: Vec<String>,
    /// ISO 37156 5.3 insight levels.
    pub insights: Vec<Insight>,
    /// Licences (case-insensitive).
    pub licences: Vec<String>,
    /// Bounding box the entry's must intersect.
    pub bbox: Option<BoundingBox>,
    /// Start of the time range, Unix seconds.
    pub from: Option<i64>,
    /// End of the time range, Unix seconds, inclusive.
    pub to: Option<i64>,
    /// Results to return.
    pub limit: usize,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            words: Vec::new(),
            domains: Vec::new(),
            kinds: Vec::new(),
            data_types: Vec::new(),
            levels: Vec::new(),
            publishers: Vec::new(),
            insights: Vec::new(),
            licences: Vec::new(),
            bbox: None,
            from: None,
            to: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// Parses `W,S,E,N` in degrees into a box in units of 1e-7 degree. West may exceed east (the
/// box crosses the antimeridian); south may not exceed north.
///
/// # Errors
///
/// A message saying what is wrong with the text.
pub fn parse_bbox(text: &str) -> Result<BoundingBox, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() != 4 {
        return Err(format!(
            "{:?} is not W,S,E,N (four numbers in degrees, comma separated)",
            short(text)
        ));
    }
    let mut v = [0i64; 4];
    for (i, (p, name)) in parts
        .iter()
        .zip(["west", "south", "east", "north"])
        .enumerate()
    {
        let deg: f64 = p
            .parse()
            .map_err(|_| format!("{name} {:?} is not a number of degrees", short(p)))?;
        let max = if i % 2 == 0 { 180.0 } else { 90.0 };
        if !deg.is_finite() || deg.abs() > max {
            return Err(format!("{name} {deg} is outside ±{max}°"));
        }
        v[i] = (deg * 1e7).round() as i64;
    }
    let [west, south, east, north] = v;
    if south > north {
        return Err("south is north of north".into());
    }
    Ok(BoundingBox {
        west,
        south,
        east,
        north,
    })
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    // Count from 1 March of year 0 so that the leap day ends the year.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 date or date-time as Unix seconds. A bare date is its first second, or its last
/// when `end_of_day`. `None` unless [`is_rfc3339`] accepts it.
pub fn instant(text: &str, end_of_day: bool) -> Option<i64> {
    if !is_rfc3339(text) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r).and_then(|t| t.parse::<i64>().ok());
    let days = days_from_civil(num(0..4)?, num(5..7)?, num(8..10)?);
    if text.len() == 10 {
        return Some(days * 86_400 + if end_of_day { 86_399 } else { 0 });
    }
    let secs = num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    let rest = text[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match rest.as_bytes() {
        [b'+' | b'-', ..] => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 3600
                + rest.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => 0,
    };
    Some(days * 86_400 + secs - offset)
}

/// Parses a `--from`/`--to` bound.
///
/// # Errors
///
/// A message when it is not an RFC 3339 date or date-time.
pub fn parse_time(text: &str, end_of_day: bool) -> Result<i64, String> {
    instant(text, end_of_day).ok_or_else(|| {
        format!(
            "{:?} is not an RFC 3339 date (YYYY-MM-DD) or date-time",
            short(text)
        )
    })
}

fn list<T>(
    param: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, QueryError> {
    if values.len() > MAX_FACET_VALUES {
        return Err(qerr(param, format!("at most {MAX_FACET_VALUES} values")));
    }
    values
        .iter()
        .map(|v| {
            if v.len() > MAX_FACET_VALUE_BYTES {
                return Err(qerr(
                    param,
                    format!("a value is over {MAX_FACET_VALUE_BYTES} bytes"),
                ));
            }
            parse(v.trim()).map_err(|e| qerr(param, e))
        })
        .collect()
}

impl Query {
    /// Builds a query from URL query pairs: `q` (words; may repeat), `domain`, `kind`,
    /// `data_type`, `spectrum`, `publisher`, `insight`, `licence` (each may repeat), `bbox`
    /// (`W,S,E,N`), `from`, `to` (RFC 3339), `limit`.
    ///
    /// # Errors
    ///
    /// [`QueryError`] naming the first bad parameter.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, QueryError> {
        let mut by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        const KNOWN: [&str; 12] = [
            "q",
            "domain",
            "kind",
            "data_type",
            "spectrum",
            "publisher",
            "insight",
            "licence",
            "bbox",
            "from",
            "to",
            "limit",
        ];
        for (k, v) in pairs {
            let Some(known) = KNOWN.iter().find(|n| **n == k.as_str()) else {
                return Err(qerr(&short(k), "unknown search parameter"));
            };
            by.entry(known).or_default().push(v.clone());
        }
        let take = |k: &str| by.get(k).cloned().unwrap_or_default();
        let single = |k: &str| -> Result<Option<String>, QueryError> {
            match by.get(k).map(Vec::as_slice) {
                None | Some([]) => Ok(None),
                Some([one]) => Ok(Some(one.clone())),
                Some(_) => Err(qerr(k, "given more than once")),
            }
        };
        let text = take("q").join(" ");
        if text.len() > MAX_QUERY_BYTES {
            return Err(qerr("q", format!("at most {MAX_QUERY_BYTES} bytes")));
        }
        if words(&text).count() > MAX_QUERY_WORDS {
            return Err(qerr("q", format!("at most {MAX_QUERY_WORDS} words")));
        }
        let mut seen = HashSet::new();
        let query_words: Vec<String> = words(&text).filter(|w| seen.insert(w.clone())).collect();
        let limit = match single("limit")? {
            None => DEFAULT_LIMIT,
            Some(l) => match l.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(qerr(
                        "limit",
                        format!("{:?} is not a number from 1 to {MAX_LIMIT}", short(&l)),
                    ))
                }
            },
        };
        let from = single("from")?
            .map(|t| parse_time(t.trim(), false).map_err(|e| qerr("from", e)))
            .transpose()?;
        let to = single("to")?
            .map(|t| parse_time(t.trim(), true).map_err(|e| qerr("to", e)))
            .transpose()?;
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(qerr(
                    "from",
                    "the range starts after it ends (--from after --to)",
                ));
            }
        }
        Ok(Self {
            words: query_words,
            domains: list("domain", &take("domain"), |v| v.parse())?,
            kinds: list("kind", &take("kind"), |v| v.parse())?,
            data_types: list("data_type", &take("data_type"), |v| v.parse())?,
            levels: list("spectrum", &take("spectrum"), |v| v.parse())?,
            publishers: list("publisher", &take("publisher"), |v| {
                if v.is_empty() {
                    Err("empty publisher".to_string())
                } else {
                    Ok(v.to_string())
                }
            })?,
            insights: list("insight", &take("insight"), |v| v.parse())?,
            licences: list("licence", &take("licence"), |v| {
                if v.is_empty() {
                    Err("empty licence".to_string())
                } else {
                    Ok(v.to_string())
                }
            })?,
            bbox: single("bbox")?
                .map(|b| parse_bbox(&b).map_err(|e| qerr("bbox", e)))
                .transpose()?,
            from,
            to,
            limit,
        })
    }
}

/// Whether two boxes intersect; edges touching count, and a box with west > east wraps across
/// the antimeridian.
pub fn bbox_intersects(a: &BoundingBox, b: &BoundingBox) -> bool {
    fn spans(x: &BoundingBox) -> [(i64, i64); 2] {
        if x.west <= x.east {
            [(x.west, x.east), (x.west, x.east)]
        } else {
            [(x.west, LON_MAX), (-LON_MAX, x.east)]
        }
    }
    if a.south > b.north || b.south > a.north {
        return false;
    }
    spans(a)
        .iter()
        .any(|(w1, e1)| spans(b).iter().any(|(w2, e2)| w1 <= e2 && w2 <= e1))
}

/// An entry's temporal coverage as inclusive Unix seconds; open ends are `i64::MIN`/`MAX`.
/// `None` when it states no coverage (or a bound that cannot be read).
fn coverage(entry: &Entry) -> Option<(i64, i64)> {
    let t = entry.temporal.as_ref()?;
    if t.start.is_none() && t.end.is_none() {
        return None;
    }
    let start = match &t.start {
        Some(s) => instant(s, false)?,
        None => i64::MIN,
    };
    let end = match &t.end {
        Some(e) => instant(e, true)?,
        None => i64::MAX,
    };
    Some((start, end))
}

fn time_overlaps(cov: Option<(i64, i64)>, from: Option<i64>, to: Option<i64>) -> bool {
    if from.is_none() && to.is_none() {
        return true;
    }
    let Some((s, e)) = cov else {
        return false;
    };
    s <= to.unwrap_or(i64::MAX) && from.unwrap_or(i64::MIN) <= e
}

/// True if `token` (an entry's word) satisfies the query word `word`.
fn word_matches(word: &str, token: &str) -> bool {
    token == word || (word.chars().count() >= MIN_PREFIX_CHARS && token.starts_with(word))
}

/// The facet values of one entry, the part of it that filters read.
#[derive(Debug, Clone)]
struct FacetValues {
    publisher: Box<str>,
    publisher_lc: Box<str>,
    publisher_did: Box<str>,
    level: Level,
    domain: Domain,
    kind: Kind,
    data_type: DataType,
    insight: Insight,
    licence: Option<Box<str>>,
    licence_lc: Option<Box<str>>,
    bbox: Option<BoundingBox>,
    time: Option<(i64, i64)>,
}

impl FacetValues {
    fn of(entry: &Entry) -> Self {
        Self {
            publisher: entry.publisher.name.as_str().into(),
            publisher_lc: entry.publisher.name.to_lowercase().into(),
            publisher_did: entry.iss.to_string().into(),
            level: entry.level(),
            domain: entry.iso.domain,
            kind: entry.iso.kind,
            data_type: entry.iso.data_type,
            insight: entry.iso.insight,
            licence: entry.licence.as_deref().map(Into::into),
            licence_lc: entry.licence.as_deref().map(|l| l.to_lowercase().into()),
            bbox: entry.spatial.as_ref().and_then(|s| s.bbox),
            time: coverage(entry),
        }
    }

    /// Every filter of `q` except the words (ISO 37156 5.2, 5.3, 5.5; 4.2 f, g).
    fn pass(&self, q: &Query, norm: &Lowered) -> bool {
        fn any<T: PartialEq>(wanted: &[T], have: &T) -> bool {
            wanted.is_empty() || wanted.contains(have)
        }
        any(&q.domains, &self.domain)
            && any(&q.kinds, &self.kind)
            && any(&q.data_types, &self.data_type)
            && any(&q.levels, &self.level)
            && any(&q.insights, &self.insight)
            && (q.publishers.is_empty()
                || q.publishers
                    .iter()
                    .any(|p| p.as_str() == &*self.publisher_did)
                || norm
                    .publishers
                    .iter()
                    .any(|p| p.as_str() == &*self.publisher_lc))
            && (q.licences.is_empty()
                || self
                    .licence_lc
                    .as_ref()
                    .is_some_and(|l| norm.licences.iter().any(|w| w.as_str() == &**l)))
            && q.bbox.as_ref().is_none_or(|want| {
                self.bbox
                    .as_ref()
                    .is_some_and(|have| bbox_intersects(want, have))
            })
            && time_overlaps(self.time, q.from, q.to)
    }
}

/// A query's publisher and licence values, lower-cased once per query.
#[derive(Debug)]
struct Lowered {
    publishers: Vec<String>,
    licences: Vec<String>,
}

impl Lowered {
    fn of(q: &Query) -> Self {
        Self {
            publishers: q.publishers.iter().map(|p| p.to_lowercase()).collect(),
            licences: q.licences.iter().map(|l| l.to_lowercase()).collect(),
        }
    }
}

/// The reference filter: does `entry` satisfy `q`? A direct reading of the rules on one entry,
/// used as the baseline the index is measured and tested against.
pub fn matches(entry: &Entry, q: &Query) -> bool {
    if !FacetValues::of(entry).pass(q, &Lowered::of(q)) {
        return false;
    }
    if q.words.is_empty() {
        return true;
    }
    let tokens: Vec<String> = words(&entry.title)
        .chain(entry.keywords.iter().flat_map(|k| words(k)))
        .chain(words(&entry.description))
        .collect();
    q.words
        .iter()
        .all(|w| tokens.iter().any(|t| word_matches(w, t)))
}

/// One word's occurrences in one entry: counts in title, keywords and description (saturating).
#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    tf: [u8; 3],
}

/// Key of the index, as of the store's `latest` tree: dataset id and publisher.
type Key = (DatasetId, [u8; 32]);

#[derive(Debug, Clone)]
struct Doc {
    key: Key,
    entry: EntryId,
    version: u64,
    title: Box<str>,
    modified: Box<str>,
    facets: FacetValues,
    /// Words in title, keywords, description.
    lens: [u32; 3],
    /// The distinct terms, for removal.
    terms: Box<[u32]>,
}

/// The index itself, without locking.
#[derive(Debug, Default)]
pub struct Index {
    docs: Vec<Option<Doc>>,
    free_docs: Vec<u32>,
    by_key: BTreeMap<Key, u32>,
    terms: BTreeMap<Box<str>, u32>,
    postings: Vec<Vec<Posting>>,
    term_text: Vec<Box<str>>,
    free_terms: Vec<u32>,
    total_lens: [u64; 3],
    /// Each slot's word counts (title, keywords, description), apart for cache locality.
    slot_lens: Vec<[u32; 3]>,
    /// Each slot's tie-break keys: modification time (Unix seconds) and dataset id.
    slot_order: Vec<(i64, u128)>,
    /// Each slot's enum facets (domain, kind, data type, level, insight) as small numbers, and
    /// its publisher and licence as ids into `names` ([`NO_NAME`] for none): facet counts read
    /// only these, never the entries, so counting 100,000 hits stays cheap.
    slot_facets: Vec<SlotFacets>,
    /// Publisher and licence names, each held once (never freed: bounded by what was indexed).
    names: Vec<Box<str>>,
    name_ids: std::collections::HashMap<Box<str>, u32>,
}

/// A slot's facets in compact form (see [`Index::slot_facets`]).
#[derive(Debug, Clone, Copy, Default)]
struct SlotFacets {
    enums: [u8; 5],
    publisher: u32,
    licence: u32,
}

/// The name id of "no licence stated".
const NO_NAME: u32 = u32::MAX;

/// One result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// Dataset id.
    pub dataset: String,
    /// Entry id of the latest version.
    pub entry: String,
    /// Title.
    pub title: String,
    /// Publisher's name.
    pub publisher: String,
    /// Publisher's did.
    pub publisher_did: String,
    /// Spectrum level (open, shared-public, shared-group, shared-named, closed).
    pub level: String,
    /// Version number.
    pub version: u64,
    /// Modification time.
    pub modified: String,
    /// BM25F score over the words; 0 without words.
    pub score: f64,
    /// What matched: the query words, and the entry's value of each facet the query filtered
    /// on (`domain`, `kind`, `data_type`, `spectrum`, `publisher`, `insight`, `licence`,
    /// `bbox` in degrees, `temporal` as given).
    pub matched: BTreeMap<&'static str, Value>,
}

/// Per-facet hit counts over every hit, not only those shown.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FacetCounts {
    /// By domain.
    pub domain: BTreeMap<String, usize>,
    /// By ISO 37156 5.3 kind.
    pub kind: BTreeMap<String, usize>,
    /// By ISO 37156 5.2 data type.
    pub data_type: BTreeMap<String, usize>,
    /// By spectrum level.
    pub spectrum: BTreeMap<String, usize>,
    /// By insight level.
    pub insight: BTreeMap<String, usize>,
    /// By publisher name.
    pub publisher: BTreeMap<String, usize>,
    /// By licence (`none` when the entry states none).
    pub licence: BTreeMap<String, usize>,
}

/// What a search returns.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// How many entries matched.
    pub total: usize,
    /// The limit applied.
    pub limit: usize,
    /// The best `limit` hits, best first.
    pub hits: Vec<Hit>,
    /// Counts per facet value over all `total` hits.
    pub facets: FacetCounts,
}

impl fmt::Display for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} hits", self.total)
    }
}

fn bm25_part(tf: u8, len: u32, avg: f64, weight: f64) -> f64 {
    if tf == 0 {
        return 0.0;
    }
    weight * f64::from(tf) / (1.0 - B + B * f64::from(len) / avg)
}

fn degrees(v: i64) -> f64 {
    v as f64 / 1e7
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Distinct words indexed.
    pub fn term_count(&self) -> usize {
        self.terms.len()
    }

    /// Adds `entry` (whose signed envelope has id `id`) unless the index already holds a newer
    /// version of its dataset from the same publisher: a higher version wins, and for equal
    /// versions the smaller entry id, as in the store. Returns true if it is now indexed.
    pub fn insert(&mut self, id: EntryId, entry: &Entry) -> bool {
        let key: Key = (entry.dataset, entry.iss.public_key().to_bytes());
        if let Some(&slot) = self.by_key.get(&key) {
            if let Some(cur) = self.docs.get(slot as usize).and_then(Option::as_ref) {
                let newer =
                    entry.version > cur.version || (entry.version == cur.version && id < cur.entry);
                if !newer {
                    return false;
                }
            }
            self.remove_slot(slot);
        }
        self.add(key, id, entry);
        true
    }

    /// Drops `issuer`'s entry of `dataset` if its version is at most `version`: what a
    /// withdrawal by that publisher takes off the listings. Returns true if one went.
    pub fn withdraw(&mut self, dataset: &DatasetId, issuer: &Did, version: u64) -> bool {
        let key: Key = (*dataset, issuer.public_key().to_bytes());
        let Some(&slot) = self.by_key.get(&key) else {
            return false;
        };
        let covered = self
            .docs
            .get(slot as usize)
            .and_then(Option::as_ref)
            .is_some_and(|d| d.version <= version);
        if covered {
            self.remove_slot(slot);
        }
        covered
    }

    /// Drops every indexed entry of `dataset` (whoever published it). Returns how many.
    pub fn remove(&mut self, dataset: &DatasetId) -> usize {
        let range = (*dataset, [0u8; 32])..=(*dataset, [0xffu8; 32]);
        let slots: Vec<u32> = self.by_key.range(range).map(|(_, s)| *s).collect();
        for &slot in &slots {
            self.remove_slot(slot);
        }
        slots.len()
    }

    fn name_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.name_ids.insert(name.into(), id);
        id
    }

    fn term_id(&mut self, word: &str) -> u32 {
        if let Some(&t) = self.terms.get(word) {
            return t;
        }
        let t = match self.free_terms.pop() {
            Some(t) => {
                self.term_text[t as usize] = word.into();
                t
            }
            None => {
                self.postings.push(Vec::new());
                self.term_text.push(word.into());
                (self.postings.len() - 1) as u32
            }
        };
        self.terms.insert(word.into(), t);
        t
    }

    fn add(&mut self, key: Key, id: EntryId, entry: &Entry) {
        let slot = match self.free_docs.pop() {
            Some(s) => s,
            None => {
                self.docs.push(None);
                self.slot_lens.push([0; 3]);
                self.slot_order.push((i64::MIN, 0));
                self.slot_facets.push(SlotFacets::default());
                (self.docs.len() - 1) as u32
            }
        };
        let mut counts: BTreeMap<String, [u8; 3]> = BTreeMap::new();
        let mut lens = [0u32; 3];
        let mut count = |field: usize, text: &str| {
            for w in words(text) {
                let tf = counts.entry(w).or_insert([0; 3]);
                tf[field] = tf[field].saturating_add(1);
                lens[field] += 1;
            }
        };
        count(0, &entry.title);
        for k in &entry.keywords {
            count(1, k);
        }
        count(2, &entry.description);
        let mut terms = Vec::with_capacity(counts.len());
        for (w, tf) in counts {
            let t = self.term_id(&w);
            self.postings[t as usize].push(Posting { doc: slot, tf });
            terms.push(t);
        }
        for (total, len) in self.total_lens.iter_mut().zip(lens) {
            *total += u64::from(len);
        }
        self.slot_lens[slot as usize] = lens;
        let publisher = self.name_id(&entry.publisher.name);
        let licence = entry
            .licence
            .as_deref()
            .map_or(NO_NAME, |l| self.name_id(l));
        self.slot_facets[slot as usize] = SlotFacets {
            enums: [
                entry.iso.domain as u8,
                entry.iso.kind as u8,
                entry.iso.data_type as u8,
                entry.level() as u8,
                entry.iso.insight as u8,
            ],
            publisher,
            licence,
        };
        self.slot_order[slot as usize] = (
            instant(&entry.modified, false).unwrap_or(i64::MIN),
            u128::from_be_bytes(entry.dataset.0),
        );
        self.docs[slot as usize] = Some(Doc {
            key,
            entry: id,
            version: entry.version,
            title: entry.title.as_str().into(),
            modified: entry.modified.as_str().into(),
            facets: FacetValues::of(entry),
            lens,
            terms: terms.into_boxed_slice(),
        });
        self.by_key.insert(key, slot);
    }

    fn remove_slot(&mut self, slot: u32) {
        let Some(doc) = self.docs.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.by_key.remove(&doc.key);
        for (total, len) in self.total_lens.iter_mut().zip(doc.lens) {
            *total -= u64::from(len);
        }
        for &t in doc.terms.iter() {
            let list = &mut self.postings[t as usize];
            if let Some(i) = list.iter().position(|p| p.doc == slot) {
                list.swap_remove(i);
            }
            if list.is_empty() {
                *list = Vec::new();
                let text = std::mem::take(&mut self.term_text[t as usize]);
                self.terms.remove(&text);
                self.free_terms.push(t);
            }
        }
        self.free_docs.push(slot);
    }

    /// The terms a query word reaches: itself (factor 1) and, when long enough, every indexed
    /// word it is a prefix of ([`PREFIX_FACTOR`]).
    fn expand(&self, word: &str) -> Vec<(u32, f64)> {
        let mut out = Vec::new();
        if let Some(&t) = self.terms.get(word) {
            out.push((t, 1.0));
        }
        if word.chars().count() >= MIN_PREFIX_CHARS {
            let after = (Bound::Excluded(word), Bound::Unbounded);
            for (text, &t) in self.terms.range::<str, _>(after) {
                if !text.starts_with(word) {
                    break;
                }
                out.push((t, PREFIX_FACTOR));
            }
        }
        out
    }

    /// Runs a query.
    pub fn search(&self, q: &Query) -> Results {
        let n_docs = self.len().max(1) as f64;
        let avg = self.total_lens.map(|t| (t as f64 / n_docs).max(1.0));
        let norm = Lowered::of(q);
        let scored: Vec<(u32, f64)> = if q.words.is_empty() {
            // One pass over the entries, filtering as it goes.
            self.docs
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    d.as_ref()
                        .filter(|d| d.facets.pass(q, &norm))
                        .map(|_| (i as u32, 0.0))
                })
                .collect()
        } else {
            let mut hits = self.word_hits(q, avg);
            hits.retain(|(slot, _)| self.doc(*slot).is_some_and(|d| d.facets.pass(q, &norm)));
            hits
        };

        let facets = self.count(&scored);
        let total = scored.len();
        // Sort keys laid out in the vector itself, so ranking many hits touches no entry.
        let mut ranked: Vec<(f64, i64, u128, u32)> = scored
            .iter()
            .map(|&(slot, score)| {
                let (modified, dataset) = self.slot_order[slot as usize];
                (score, modified, dataset, slot)
            })
            .collect();
        let order = |a: &(f64, i64, u128, u32), b: &(f64, i64, u128, u32)| {
            b.0.total_cmp(&a.0)
                .then(b.1.cmp(&a.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        };
        let limit = q.limit.clamp(1, MAX_LIMIT);
        if ranked.len() > limit {
            ranked.select_nth_unstable_by(limit - 1, order);
            ranked.truncate(limit);
        }
        ranked.sort_by(order);
        let hits = ranked
            .iter()
            .filter_map(|&(score, _, _, slot)| self.doc(slot).map(|d| self.hit(d, score, q)))
            .collect();
        Results {
            total,
            limit,
            hits,
            facets,
        }
    }

    /// Facet counts over `hits`: enum facets in arrays, names borrowed, strings made once.
    fn count(&self, hits: &[(u32, f64)]) -> FacetCounts {
        let mut domain = [0usize; 8];
        let mut kind = [0usize; 8];
        let mut data_type = [0usize; 8];
        let mut level = [0usize; 8];
        let mut insight = [0usize; 8];
        let mut publisher = vec![0usize; self.names.len()];
        // One more for "none".
        let mut licence = vec![0usize; self.names.len() + 1];
        for (slot, _) in hits {
            let Some(f) = self.slot_facets.get(*slot as usize) else {
                continue;
            };
            let [dm, kd, dt, lv, ins] = f.enums.map(usize::from);
            domain[dm] += 1;
            kind[kd] += 1;
            data_type[dt] += 1;
            level[lv] += 1;
            insight[ins] += 1;
            if let Some(n) = publisher.get_mut(f.publisher as usize) {
                *n += 1;
            }
            let l = if f.licence == NO_NAME {
                self.names.len()
            } else {
                f.licence as usize
            };
            if let Some(n) = licence.get_mut(l) {
                *n += 1;
            }
        }
        fn named<T: Copy>(
            all: &[T],
            counts: &[usize],
            name: impl Fn(T) -> &'static str,
            index: impl Fn(T) -> usize,
        ) -> BTreeMap<String, usize> {
            all.iter()
                .filter(|v| counts[index(**v)] > 0)
                .map(|v| (name(*v).to_string(), counts[index(*v)]))
                .collect()
        }
        let own = |counts: Vec<usize>| -> BTreeMap<String, usize> {
            counts
                .into_iter()
                .enumerate()
                .filter(|(_, n)| *n > 0)
                .map(|(i, n)| {
                    let name = self.names.get(i).map_or("none", |s| &**s);
                    (name.to_string(), n)
                })
                .collect()
        };
        FacetCounts {
            domain: named(Domain::ALL, &domain, |v| v.as_str(), |v| v as usize),
            kind: named(Kind::ALL, &kind, |v| v.as_str(), |v| v as usize),
            data_type: named(DataType::ALL, &data_type, |v| v.as_str(), |v| v as usize),
            spectrum: named(&Level::ALL, &level, |v| v.as_str(), |v| v as usize),
            insight: named(Insight::ALL, &insight, |v| v.as_str(), |v| v as usize),
            publisher: own(publisher),
            licence: own(licence),
        }
    }

    /// Entries holding every query word, with their summed BM25F scores.
    fn word_hits(&self, q: &Query, avg: [f64; 3]) -> Vec<(u32, f64)> {
        let n = self.docs.len();
        let n_docs = self.len() as f64;
        // How many words each slot has matched so far, its score, and the current word's best.
        let mut matched = vec![0u16; n];
        let mut score = vec![0f64; n];
        let mut gain = vec![0f64; n];
        let mut alive: Vec<u32> = Vec::new();
        for (i, word) in q.words.iter().enumerate() {
            let need = i as u16;
            let mut advanced = Vec::new();
            let reached = self.expand(word);
            // One idf per query word, from every entry it reaches (counted once per indexed
            // word, at most all entries), so that a rare prefix expansion never outranks an
            // exact match.
            let df = reached
                .iter()
                .map(|(t, _)| self.postings[*t as usize].len() as f64)
                .sum::<f64>()
                .min(n_docs);
            let idf = (1.0 + (n_docs - df + 0.5) / (df + 0.5)).ln();
            for (t, factor) in reached {
                let list = &self.postings[t as usize];
                for p in list {
                    let d = p.doc as usize;
                    if matched[d] == need {
                        matched[d] = need + 1;
                        gain[d] = 0.0;
                        advanced.push(p.doc);
                    } else if matched[d] != need + 1 {
                        continue;
                    }
                    let lens = self.slot_lens[d];
                    let tfw = bm25_part(p.tf[0], lens[0], avg[0], TITLE_WEIGHT)
                        + bm25_part(p.tf[1], lens[1], avg[1], KEYWORD_WEIGHT)
                        + bm25_part(p.tf[2], lens[2], avg[2], DESCRIPTION_WEIGHT);
                    let s = factor * idf * tfw * (K1 + 1.0) / (tfw + K1);
                    if s > gain[d] {
                        gain[d] = s;
                    }
                }
            }
            for &d in &advanced {
                score[d as usize] += gain[d as usize];
            }
            alive = advanced;
            if alive.is_empty() {
                break;
            }
        }
        alive.into_iter().map(|d| (d, score[d as usize])).collect()
    }

    fn doc(&self, slot: u32) -> Option<&Doc> {
        self.docs.get(slot as usize).and_then(Option::as_ref)
    }

    fn hit(&self, d: &Doc, score: f64, q: &Query) -> Hit {
        let f = &d.facets;
        let mut matched = BTreeMap::new();
        if !q.words.is_empty() {
            matched.insert("words", json!(q.words));
        }
        let filters: [(&'static str, bool, Value); 7] = [
            ("domain", !q.domains.is_empty(), json!(f.domain)),
            ("kind", !q.kinds.is_empty(), json!(f.kind)),
            ("data_type", !q.data_types.is_empty(), json!(f.data_type)),
            ("spectrum", !q.levels.is_empty(), json!(f.level.as_str())),
            ("publisher", !q.publishers.is_empty(), json!(&*f.publisher)),
            ("insight", !q.insights.is_empty(), json!(f.insight)),
            (
                "licence",
                !q.licences.is_empty(),
                json!(f.licence.as_deref()),
            ),
        ];
        for (name, used, value) in filters {
            if used {
                matched.insert(name, value);
            }
        }
        if let (Some(_), Some(b)) = (q.bbox, f.bbox) {
            matched.insert(
                "bbox",
                json!([
                    degrees(b.west),
                    degrees(b.south),
                    degrees(b.east),
                    degrees(b.north)
                ]),
            );
        }
        if q.from.is_some() || q.to.is_some() {
            let (s, e) = f.time.unwrap_or((i64::MIN, i64::MAX));
            let bound = |v: i64| (v != i64::MIN && v != i64::MAX).then_some(v);
            matched.insert("temporal", json!({ "start": bound(s), "end": bound(e) }));
        }
        Hit {
            dataset: d.key.0.to_string(),
            entry: d.entry.to_string(),
            title: d.title.to_string(),
            publisher: f.publisher.to_string(),
            publisher_did: f.publisher_did.to_string(),
            level: f.level.as_str().to_string(),
            version: d.version,
            modified: d.modified.to_string(),
            score: (score * 1e4).round() / 1e4,
            matched,
        }
    }

    /// An estimate of the heap the index uses, bytes: slots, postings, the word dictionary and
    /// the strings each entry keeps.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        // A B-tree entry costs its key and value plus about a third again in node overhead.
        let btree = |kv: usize| kv + kv / 3;
        let docs = self.docs.capacity() * size_of::<Option<Doc>>()
            + self.free_docs.capacity() * 4
            + self
                .docs
                .iter()
                .flatten()
                .map(|d| {
                    d.title.len()
                        + d.modified.len()
                        + d.terms.len() * 4
                        + 2 * d.facets.publisher.len()
                        + d.facets.publisher_did.len()
                        + 2 * d.facets.licence.as_ref().map_or(0, |l| l.len())
                })
                .sum::<usize>()
            + self.by_key.len() * btree(size_of::<Key>() + 4)
            + self.slot_lens.capacity() * size_of::<[u32; 3]>()
            + self.slot_order.capacity() * size_of::<(i64, u128)>()
            + self.slot_facets.capacity() * size_of::<SlotFacets>()
            + self.names.iter().map(|n| 2 * n.len() + 40).sum::<usize>();
        let postings = self.postings.capacity() * size_of::<Vec<Posting>>()
            + self
                .postings
                .iter()
                .map(|p| p.capacity() * size_of::<Posting>())
                .sum::<usize>();
        let terms = self.term_text.iter().map(|t| 2 * t.len()).sum::<usize>()
            + self.term_text.capacity() * size_of::<Box<str>>()
            + self.terms.len() * btree(size_of::<Box<str>>() + 4);
        docs + postings + terms
    }
}

/// The node's index behind a lock: queries read it, stored entries update it.
#[derive(Debug, Default)]
pub struct SearchIndex {
    inner: RwLock<Index>,
}

impl SearchIndex {
    /// Builds the index from the latest entry of every dataset in `store`.
    ///
    /// # Errors
    ///
    /// If the store cannot be read.
    pub fn build(store: &Store) -> Result<Self> {
        let mut index = Index::new();
        for e in store
            .catalogue()
            .context("cannot build the search index from the store")?
        {
            index.insert(e.id, &e.entry);
        }
        tracing::debug!(
            entries = index.len(),
            terms = index.term_count(),
            "search index built"
        );
        Ok(Self {
            inner: RwLock::new(index),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Indexes a stored entry, replacing an older version of its dataset (see
    /// [`Index::insert`]).
    pub fn insert(&self, signed: &SignedEntry) -> bool {
        self.write().insert(signed.id, &signed.entry)
    }

    /// Indexes a stored entry unless its publisher has withdrawn that version (a withdrawal
    /// may arrive before an older entry does, through catch-up). The store answers which.
    pub fn insert_listed(&self, store: &Store, signed: &SignedEntry) -> bool {
        let e = &signed.entry;
        match store.withdrawn_version(&e.dataset, &e.iss) {
            Ok(Some(v)) if v >= e.version => false,
            Ok(_) => self.insert(signed),
            Err(err) => {
                tracing::error!(error = %err, "cannot read withdrawals for the search index");
                self.insert(signed)
            }
        }
    }

    /// Applies a withdrawal by `issuer` of `dataset` up to `version` (see [`Index::withdraw`]).
    pub fn withdraw(&self, dataset: &DatasetId, issuer: &Did, version: u64) -> bool {
        self.write().withdraw(dataset, issuer, version)
    }

    /// Drops a dataset (a withdrawal). Returns how many entries went.
    pub fn remove(&self, dataset: &DatasetId) -> usize {
        self.write().remove(dataset)
    }

    /// Runs a query.
    pub fn search(&self, q: &Query) -> Results {
        self.read().search(q)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// See [`Index::memory_bytes`].
    pub fn memory_bytes(&self) -> usize {
        self.read().memory_bytes()
    }
}

#[cfg(test)]
mod tests;
