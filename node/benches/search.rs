//! Catalogue search over 100,000 synthetic entries: index build time, memory, and query
//! latency (p50, p99) against a linear scan over the same entries.
//!
//! ```text
//! cargo bench --workspace --bench search
//! ```
//!
//! Titles and descriptions are drawn from the words of the real titles and descriptions in
//! `../shared/data/catalogues/data.seattle.gov-data.json` (read here, at bench time), skewed so
//! that some words are common and most are rare; domains, kinds, spectrum levels, publishers,
//! licences, bounding boxes (a few across the antimeridian) and time spans vary at random from
//! a fixed seed. The query mix has five kinds, 200 queries each: words only, words with facets,
//! a bounding box, a time range, and facets only; every query asks for the best 20.
//!
//! - **index**: [`Index::search`], the node's search.
//! - **baseline**: [`search::matches`] over every entry, the linear-scan filter the index is
//!   tested against (it only filters: no ranking, no counts), on the first 20 queries of each
//!   kind. Its totals are checked against the index's, so the comparison is of equal answers.
//!
//! A plain `main` (`harness = false`) so that `cargo test` never runs it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cix_node::search::{self, Index, Query};
use cix_protocol::catalogue::{
    AccessMode, BoundingBox, DataType, Domain, Entry, EntryId, Insight, Kind, Spatial, Spectrum,
    Temporal,
};
use cix_protocol::identity::Keypair;
use serde_json::{json, Value};

const ENTRIES: usize = 100_000;
const PUBLISHERS: usize = 50;
const PER_KIND: usize = 200;
const BASELINE_PER_KIND: usize = 20;
const UPDATES: usize = 1000;
/// p99 the issue aims for.
const TARGET_P99: Duration = Duration::from_millis(25);

/// splitmix64: a small, fixed-seed generator, so every run measures the same catalogue.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// An index into a list of `n`, skewed towards the front (common words).
    fn skewed(&mut self, n: usize) -> usize {
        let u = self.unit();
        ((u * u * u) * n as f64) as usize % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn vocabulary(records: &[Value], field: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for r in records {
        let text = r[field].as_str().unwrap_or("");
        for w in text.split(|c: char| !c.is_alphanumeric()) {
            if w.chars().count() >= 2 && seen.insert(w.to_lowercase()) {
                out.push(w.to_string());
            }
        }
    }
    out
}

fn phrase(rng: &mut Rng, vocab: &[String], min: usize, max: usize) -> String {
    let n = min + rng.below(max - min + 1);
    (0..n)
        .map(|_| vocab[rng.skewed(vocab.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn template(key: &Keypair) -> Entry {
    let did = key.did().to_string();
    let zeros16 = vec![0u8; 16];
    let zeros32 = vec![0u8; 32];
    serde_json::from_value(json!({
        "iss": did, "dataset": zeros16, "version": 1, "title": "t", "description": "",
        "keywords": [], "themes": [], "publisher": { "name": "p" },
        "issued": "2020-01-01", "modified": "2020-01-01",
        "distributions": [{ "media_type": "text/csv", "bytes": 1, "content": zeros32 }],
        "iso": {
            "data_type": "thematic", "kind": "status", "concept": "State", "domain": "water",
            "insight": "operational", "facets": {}, "spectrum": "open",
            "roles": { "creator": { "name": "c" }, "owner": { "name": "o" }, "custodians": [],
                       "primary_publisher": did },
            "privacy": { "personal_data": false, "high_risk": [], "jurisdiction": "US",
                         "allowed_jurisdictions": [] },
            "dictionary": []
        }
    }))
    .expect("the template entry decodes")
}

fn deg(d: f64) -> i64 {
    (d * 1e7).round() as i64
}

fn random_box(rng: &mut Rng, min_size: f64, max_size: f64) -> BoundingBox {
    let w = -180.0 + rng.unit() * 360.0;
    let s = -60.0 + rng.unit() * 130.0;
    let width = min_size + rng.unit() * (max_size - min_size);
    let height = min_size + rng.unit() * (max_size - min_size);
    let mut e = w + width;
    if e > 180.0 {
        e -= 360.0; // crosses the antimeridian: west > east
    }
    BoundingBox {
        west: deg(w),
        south: deg(s),
        east: deg(e),
        north: deg((s + height).min(90.0)),
    }
}

fn date(year: u32, rng: &mut Rng) -> String {
    format!("{year}-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28))
}

struct Workload {
    entries: Vec<(EntryId, Entry)>,
    titles: Vec<String>,
    publishers: Vec<String>,
}

fn workload() -> Workload {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/catalogues/data.seattle.gov-data.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let records: Vec<Value> = serde_json::from_str(&text).expect("data.json is a JSON array");
    let titles = vocabulary(&records, "title");
    let mut descriptions = vocabulary(&records, "description");
    descriptions.extend(titles.iter().cloned());

    let mut rng = Rng(0x00c1_5eed);
    let keys: Vec<Keypair> = (0..PUBLISHERS)
        .map(|i| Keypair::from_seed([i as u8 + 1; 32]))
        .collect();
    let publishers: Vec<String> = (0..PUBLISHERS)
        .map(|i| format!("{} Agency {i}", titles[i % titles.len()]))
        .collect();
    let templates: Vec<Entry> = keys.iter().map(template).collect();
    let licences = ["CC-BY-4.0", "CC0-1.0", "ODbL-1.0", "PDDL-1.0"];
    let mut entries = Vec::with_capacity(ENTRIES);
    for i in 0..ENTRIES {
        let p = rng.below(PUBLISHERS);
        let mut e = templates[p].clone();
        let mut ds = [0u8; 16];
        ds[..8].copy_from_slice(&(i as u64).to_be_bytes());
        ds[8..].copy_from_slice(&rng.next().to_be_bytes());
        e.dataset = cix_protocol::catalogue::DatasetId(ds);
        e.title = phrase(&mut rng, &titles, 3, 8);
        e.description = phrase(&mut rng, &descriptions, 10, 40);
        e.keywords = (0..rng.below(5))
            .map(|_| titles[rng.skewed(titles.len())].to_lowercase())
            .collect();
        e.publisher.name = publishers[p].clone();
        e.iso.domain = *rng.pick(Domain::ALL);
        e.iso.kind = *rng.pick(Kind::ALL);
        e.iso.data_type = *rng.pick(DataType::ALL);
        e.iso.insight = *rng.pick(Insight::ALL);
        match rng.below(4) {
            0 => (e.iso.spectrum, e.iso.access) = (Spectrum::Open, None),
            1 => (e.iso.spectrum, e.iso.access) = (Spectrum::Shared, Some(AccessMode::Public)),
            2 => (e.iso.spectrum, e.iso.access) = (Spectrum::Shared, Some(AccessMode::Group)),
            _ => (e.iso.spectrum, e.iso.access) = (Spectrum::Shared, Some(AccessMode::Named)),
        }
        e.licence = (rng.below(5) > 0).then(|| rng.pick(&licences).to_string());
        if rng.below(10) > 0 {
            e.spatial = Some(Spatial {
                name: None,
                bbox: Some(random_box(&mut rng, 0.05, 5.0)),
            });
        }
        if rng.below(20) > 0 {
            let start = 1990 + rng.below(35) as u32;
            let end = start + rng.below(10) as u32;
            e.temporal = Some(Temporal {
                start: Some(date(start, &mut rng)),
                end: (rng.below(10) > 0).then(|| date(end, &mut rng)),
            });
        }
        e.modified = date(2015 + rng.below(11) as u32, &mut rng);
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&rng.next().to_be_bytes());
        entries.push((EntryId(id), e));
    }
    Workload {
        entries,
        titles,
        publishers,
    }
}

fn queries(w: &Workload) -> Vec<(&'static str, Query)> {
    let mut rng = Rng(0x0051_a4c4);
    let mut out = Vec::new();
    let word = |rng: &mut Rng| w.titles[rng.skewed(w.titles.len())].clone();
    let limit = 20;
    for _ in 0..PER_KIND {
        let n = 1 + rng.below(3);
        let text: Vec<String> = (0..n).map(|_| word(&mut rng)).collect();
        out.push((
            "words",
            Query {
                words: search::words(&text.join(" ")).collect(),
                limit,
                ..Query::default()
            },
        ));
    }
    for _ in 0..PER_KIND {
        let n = 1 + rng.below(2);
        let text: Vec<String> = (0..n).map(|_| word(&mut rng)).collect();
        out.push((
            "words+facets",
            Query {
                words: search::words(&text.join(" ")).collect(),
                domains: vec![*rng.pick(Domain::ALL)],
                levels: vec![cix_protocol::catalogue::Level::ALL[rng.below(4)]],
                limit,
                ..Query::default()
            },
        ));
    }
    for _ in 0..PER_KIND {
        out.push((
            "bbox",
            Query {
                bbox: Some(random_box(&mut rng, 1.0, 10.0)),
                limit,
                ..Query::default()
            },
        ));
    }
    for _ in 0..PER_KIND {
        let year = 1990 + rng.below(40) as u32;
        let from = search::instant(&format!("{year}-01-01"), false);
        let to = search::instant(&format!("{year}-12-31"), true);
        let (from, to) = match rng.below(4) {
            0 => (from, None),
            1 => (None, to),
            _ => (from, to),
        };
        out.push((
            "time range",
            Query {
                from,
                to,
                limit,
                ..Query::default()
            },
        ));
    }
    for _ in 0..PER_KIND {
        let q = if rng.below(2) == 0 {
            Query {
                domains: vec![*rng.pick(Domain::ALL)],
                kinds: vec![*rng.pick(Kind::ALL)],
                limit,
                ..Query::default()
            }
        } else {
            Query {
                publishers: vec![rng.pick(&w.publishers).to_lowercase()],
                insights: vec![*rng.pick(Insight::ALL)],
                limit,
                ..Query::default()
            }
        };
        out.push(("facets only", q));
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let t = Instant::now();
    let w = workload();
    let generated = t.elapsed();

    let t = Instant::now();
    let mut index = Index::new();
    for (id, e) in &w.entries {
        index.insert(*id, e);
    }
    let build = t.elapsed();
    let memory = index.memory_bytes();

    let qs = queries(&w);
    // One untimed pass to warm caches, then the timed one.
    for (_, q) in &qs {
        black_box(index.search(q));
    }
    let kinds = ["words", "words+facets", "bbox", "time range", "facets only"];
    let mut all = Vec::new();
    let mut rows = Vec::new();
    let mut hits_total = 0usize;
    for kind in kinds {
        let mut times = Vec::new();
        let mut base_times = Vec::new();
        for (i, (_, q)) in qs.iter().filter(|(k, _)| *k == kind).enumerate() {
            let t = Instant::now();
            let r = black_box(index.search(q));
            times.push(t.elapsed());
            hits_total += r.total;
            if i < BASELINE_PER_KIND {
                let t = Instant::now();
                let n = black_box(
                    w.entries
                        .iter()
                        .filter(|(_, e)| search::matches(e, q))
                        .count(),
                );
                base_times.push(t.elapsed());
                assert_eq!(n, r.total, "index and linear scan disagree on {q:?}");
            }
        }
        times.sort();
        base_times.sort();
        all.extend_from_slice(&times);
        rows.push((kind, times, base_times));
    }
    all.sort();

    // Incremental updates: new versions of existing datasets, each replacing the old.
    let t = Instant::now();
    for (id, e) in w.entries.iter().take(UPDATES) {
        let mut next = e.clone();
        next.version = 2;
        next.previous = Some(*id);
        next.title.push_str(" revised");
        let mut nid = id.0;
        nid[31] ^= 0xff;
        index.insert(EntryId(nid), &next);
    }
    let update = t.elapsed() / UPDATES as u32;

    println!(
        "cix catalogue search, {} entries ({} publishers, {} title words from data.seattle.gov), one thread",
        w.entries.len(),
        PUBLISHERS,
        w.titles.len()
    );
    println!("  workload generated in {:.2} s", generated.as_secs_f64());
    println!(
        "  index build: {:.2} s ({:.1} µs per entry), {} distinct words",
        build.as_secs_f64(),
        build.as_secs_f64() * 1e6 / w.entries.len() as f64,
        index.term_count()
    );
    println!(
        "  memory estimate: {:.1} MiB ({} bytes per entry)",
        memory as f64 / (1 << 20) as f64,
        memory / w.entries.len()
    );
    println!(
        "  incremental update (new version replaces old): {:.1} µs each",
        update.as_secs_f64() * 1e6
    );
    println!(
        "  {:<13} {:>9} {:>9} {:>9} {:>14} {:>9}",
        "query", "p50 ms", "p99 ms", "max ms", "baseline p50", "ratio"
    );
    for (kind, times, base) in &rows {
        let p50 = percentile(times, 0.5);
        let b50 = percentile(base, 0.5);
        println!(
            "  {:<13} {:>9.3} {:>9.3} {:>9.3} {:>11.3} ms {:>8.1}x",
            kind,
            ms(p50),
            ms(percentile(times, 0.99)),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
            ms(b50),
            b50.as_secs_f64() / p50.as_secs_f64().max(1e-9)
        );
    }
    let p50 = percentile(&all, 0.5);
    let p99 = percentile(&all, 0.99);
    let base_all: Vec<Duration> = {
        let mut v: Vec<Duration> = rows.iter().flat_map(|r| r.2.iter().copied()).collect();
        v.sort();
        v
    };
    println!(
        "  all {} queries: p50 {:.3} ms, p99 {:.3} ms (target p99 < {} ms: {}); {:.0} hits per query on average",
        all.len(),
        ms(p50),
        ms(p99),
        TARGET_P99.as_millis(),
        if p99 < TARGET_P99 { "met" } else { "MISSED" },
        hits_total as f64 / all.len() as f64
    );
    println!(
        "  baseline linear scan, {} queries: p50 {:.3} ms, p99 {:.3} ms; baseline p50 / index p50 = {:.1}",
        base_all.len(),
        ms(percentile(&base_all, 0.5)),
        ms(percentile(&base_all, 0.99)),
        percentile(&base_all, 0.5).as_secs_f64() / p50.as_secs_f64().max(1e-9)
    );
}
