// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use super::*;
use cix_protocol::catalogue::{Spatial, Temporal};
use cix_protocol::identity::Keypair;
use proptest::prelude::*;

/// A valid open entry by `key`, built from JSON so that fields added to the entry later take
/// their defaults here.
fn base(key: &Keypair, n: u8) -> Entry {
    let did = key.did().to_string();
    let dataset = vec![n; 16];
    let content = vec![7u8; 32];
    let v = json!({
        "iss": did, "dataset": dataset, "version": 1, "title": "untitled", "description": "",
        "keywords": [], "themes": [], "publisher": { "name": "City Water" },
        "issued": "2026-01-01", "modified": "2026-01-01",
        "distributions": [{ "media_type": "text/csv", "bytes": 1, "content": content }],
        "iso": {
            "data_type": "thematic", "kind": "status", "concept": "State", "domain": "water",
            "insight": "operational", "facets": {}, "spectrum": "open",
            "roles": { "creator": { "name": "c" }, "owner": { "name": "o" }, "custodians": [],
                       "primary_publisher": did },
            "privacy": { "personal_data": false, "high_risk": [], "jurisdiction": "US",
                         "allowed_jurisdictions": [] },
            "dictionary": []
        }
    });
    serde_json::from_value(v).unwrap()
}

fn doc(key: &Keypair, n: u8, title: &str, description: &str, keywords: &[&str]) -> Entry {
    let mut e = base(key, n);
    e.title = title.into();
    e.description = description.into();
    e.keywords = keywords.iter().map(|k| k.to_string()).collect();
    e
}

fn id(n: u8) -> EntryId {
    EntryId([n; 32])
}

fn words_query(text: &str) -> Query {
    Query::from_pairs(&[("q".into(), text.into())]).unwrap()
}

fn query(pairs: &[(&str, &str)]) -> Query {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Query::from_pairs(&pairs).unwrap()
}

fn titles(r: &Results) -> Vec<String> {
    r.hits.iter().map(|h| h.title.clone()).collect()
}

fn index_of(entries: &[Entry]) -> Index {
    let mut index = Index::new();
    for (i, e) in entries.iter().enumerate() {
        assert!(index.insert(id(i as u8), e));
    }
    index
}

fn deg(d: f64) -> i64 {
    (d * 1e7).round() as i64
}

fn bbox(w: f64, s: f64, e: f64, n: f64) -> BoundingBox {
    BoundingBox {
        west: deg(w),
        south: deg(s),
        east: deg(e),
        north: deg(n),
    }
}

#[test]
fn tokenisation_is_unicode_aware_and_stems_plurals() {
    let got: Vec<String> =
        words("Straßen-Beleuchtung: ÉCLAIRAGE public, Libraries & Buses").collect();
    assert_eq!(
        got,
        [
            "straßen",
            "beleuchtung",
            "éclairage",
            "public",
            "library",
            "buse"
        ]
    );
    assert_eq!(stem("gas"), "gas", "short words keep their s");
    assert_eq!(stem("status"), "status");
    assert_eq!(stem("boxes"), "box");
    assert_eq!(stem("addresses"), "address");
    assert_eq!(stem("permits"), "permit");
}

#[test]
fn title_hits_rank_above_description_hits_and_rarer_words_above_common_ones() {
    let k = Keypair::generate();
    let entries = [
        doc(
            &k,
            1,
            "Pipe inventory",
            "hydrant locations in the city",
            &[],
        ),
        doc(&k, 2, "Hydrant locations", "every pipe and valve", &[]),
        doc(&k, 3, "Valve register", "no match here", &["hydrant"]),
        doc(&k, 4, "Reservoir levels", "daily reservoir levels", &[]),
    ];
    let index = index_of(&entries);
    let r = index.search(&words_query("hydrant"));
    assert_eq!(
        titles(&r),
        ["Hydrant locations", "Valve register", "Pipe inventory"],
        "title beats keyword beats description"
    );
    assert!(r.hits[0].score > r.hits[1].score && r.hits[1].score > r.hits[2].score);
    assert_eq!(r.total, 3);

    // AND: both words must be present; the entry holding the rarer one in its title leads.
    // (pipe is in two entries, hydrant in three: pipe is the rarer.)
    let r = index.search(&words_query("pipe hydrant"));
    assert_eq!(titles(&r), ["Pipe inventory", "Hydrant locations"]);
    assert!(index.search(&words_query("pipe reservoir")).hits.is_empty());
}

#[test]
fn prefix_and_plural_matching_with_exact_matches_first() {
    let k = Keypair::generate();
    let entries = [
        doc(&k, 1, "Parking permits", "", &[]),
        doc(&k, 2, "Park boundaries", "", &[]),
        doc(&k, 3, "Bike parks", "", &[]),
    ];
    let index = index_of(&entries);
    let r = index.search(&words_query("park"));
    assert_eq!(
        r.total, 3,
        "park matches park, parks (stemmed) and parking (prefix)"
    );
    assert_eq!(
        r.hits.last().unwrap().title,
        "Parking permits",
        "a prefix match scores less than an exact one"
    );
    assert_eq!(
        titles(&index.search(&words_query("permit"))),
        ["Parking permits"]
    );
    // Two letters are too short to be a prefix: only the exact word.
    assert!(index.search(&words_query("pa")).hits.is_empty());
}

#[test]
fn each_facet_filters() {
    let a = Keypair::generate();
    let b = Keypair::generate();
    let mut water = doc(&a, 1, "Water mains", "", &[]);
    water.licence = Some("CC-BY-4.0".into());
    let mut power = doc(&b, 2, "Substation load", "", &[]);
    power.publisher.name = "City Power".into();
    power.iso.domain = Domain::Energy;
    power.iso.kind = Kind::Consumption;
    power.iso.data_type = DataType::Reference;
    power.iso.insight = Insight::Strategic;
    power.iso.spectrum = cix_protocol::catalogue::Spectrum::Shared;
    power.iso.access = Some(cix_protocol::catalogue::AccessMode::Named);
    let index = index_of(&[water, power]);
    let only = |pairs: &[(&str, &str)]| titles(&index.search(&query(pairs)));
    assert_eq!(only(&[("domain", "energy")]), ["Substation load"]);
    assert_eq!(only(&[("domain", "water")]), ["Water mains"]);
    assert_eq!(only(&[("kind", "consumption")]), ["Substation load"]);
    assert_eq!(only(&[("data_type", "thematic")]), ["Water mains"]);
    assert_eq!(only(&[("spectrum", "shared-named")]), ["Substation load"]);
    assert_eq!(only(&[("spectrum", "open")]), ["Water mains"]);
    assert_eq!(only(&[("insight", "strategic")]), ["Substation load"]);
    assert_eq!(only(&[("licence", "cc-by-4.0")]), ["Water mains"]);
    assert_eq!(only(&[("publisher", "city power")]), ["Substation load"]);
    assert_eq!(
        only(&[("publisher", &a.did().to_string())]),
        ["Water mains"]
    );
    // Values of one facet are alternatives; facets together must all hold.
    assert_eq!(only(&[("domain", "energy"), ("domain", "water")]).len(), 2);
    assert!(only(&[("domain", "energy"), ("insight", "operational")]).is_empty());

    let r = index.search(&Query::default());
    assert_eq!(r.facets.domain.get("energy"), Some(&1));
    assert_eq!(r.facets.domain.get("water"), Some(&1));
    assert_eq!(r.facets.spectrum.get("shared-named"), Some(&1));
    assert_eq!(r.facets.licence.get("none"), Some(&1));
    assert_eq!(r.facets.licence.get("CC-BY-4.0"), Some(&1));
    let r = index.search(&query(&[("domain", "energy")]));
    assert_eq!(r.hits[0].matched.get("domain"), Some(&json!("energy")));
    assert_eq!(r.facets.publisher.len(), 1, "counts cover the hits only");
}

#[test]
fn bounding_boxes_intersect_touch_and_cross_the_antimeridian() {
    let seattle = bbox(-122.44, 47.49, -122.23, 47.73);
    assert!(bbox_intersects(&seattle, &bbox(-122.3, 47.6, -122.0, 48.0)));
    assert!(!bbox_intersects(&seattle, &bbox(-74.3, 40.5, -73.7, 40.9)));
    // Edges touching count, on each side and at a corner.
    assert!(bbox_intersects(
        &seattle,
        &bbox(-122.23, 47.0, -121.0, 47.5)
    ));
    assert!(bbox_intersects(
        &seattle,
        &bbox(-123.0, 47.73, -122.44, 48.0)
    ));
    assert!(!bbox_intersects(
        &seattle,
        &bbox(-122.22, 47.0, -121.0, 47.5)
    ));
    // Fiji's box crosses the antimeridian (west 177, east -178).
    let fiji = bbox(177.0, -19.0, -178.0, -16.0);
    assert!(bbox_intersects(&fiji, &bbox(179.0, -18.0, 179.5, -17.0)));
    assert!(bbox_intersects(&fiji, &bbox(-179.5, -18.0, -179.0, -17.0)));
    assert!(bbox_intersects(&bbox(-179.9, -17.5, -179.8, -17.0), &fiji));
    assert!(!bbox_intersects(&fiji, &bbox(0.0, -18.0, 10.0, -17.0)));
    assert!(!bbox_intersects(&fiji, &bbox(179.0, 0.0, 179.5, 1.0)));
    assert!(bbox_intersects(&fiji, &bbox(170.0, -20.0, -170.0, -10.0)));
    assert!(bbox_intersects(&fiji, &bbox(-180.0, -90.0, 180.0, 90.0)));

    let k = Keypair::generate();
    let mut a = doc(&k, 1, "Seattle", "", &[]);
    a.spatial = Some(Spatial {
        name: None,
        bbox: Some(seattle),
    });
    let mut b = doc(&k, 2, "Fiji", "", &[]);
    b.spatial = Some(Spatial {
        name: None,
        bbox: Some(fiji),
    });
    let c = doc(&k, 3, "Nowhere", "", &[]);
    let index = index_of(&[a, b, c]);
    let only = |text: &str| titles(&index.search(&query(&[("bbox", text)])));
    assert_eq!(only("179,-20,-179,-15"), ["Fiji"]);
    assert_eq!(only("-122.23,47.73,-122,48"), ["Seattle"]);
    assert_eq!(only("-180,-90,180,90").len(), 2, "no bbox, no bbox match");
    assert_eq!(only("10,10,20,20"), Vec::<String>::new());
}

#[test]
fn bad_query_values_are_named() {
    let bad = |k: &str, v: &str| {
        let e = Query::from_pairs(&[(k.into(), v.into())]).unwrap_err();
        assert_eq!(e.param, k, "{e}");
        e.to_string()
    };
    assert!(bad("domain", "gas").contains("unknown Domain"));
    assert!(bad("spectrum", "public").contains("unknown spectrum"));
    assert!(bad("bbox", "1,2,3").contains("W,S,E,N"));
    assert!(bad("bbox", "1,2,181,4").contains("east 181"));
    assert!(bad("bbox", "1,50,3,40").contains("south"));
    assert!(bad("from", "yesterday").contains("RFC 3339"));
    assert!(bad("limit", "0").contains("1 to"));
    assert!(bad("limit", "100000").contains("1 to"));
    assert!(bad("colour", "red").contains("unknown"));
    assert!(bad(
        "q",
        &(0..=MAX_QUERY_WORDS)
            .map(|i| format!("w{i} "))
            .collect::<String>()
    )
    .contains("words"));
    assert!(bad("q", &"y".repeat(MAX_QUERY_BYTES + 1)).contains("bytes"));
    let e = Query::from_pairs(&[
        ("from".into(), "2024-02-01".into()),
        ("to".into(), "2024-01-01".into()),
    ])
    .unwrap_err();
    assert_eq!(e.param, "from");
}

#[test]
fn instants_follow_rfc3339() {
    assert_eq!(instant("1970-01-01", false), Some(0));
    assert_eq!(instant("1970-01-01", true), Some(86_399));
    assert_eq!(instant("2000-03-01T00:00:00Z", false), Some(951_868_800));
    assert_eq!(
        instant("2000-03-01T01:30:00+01:30", false),
        Some(951_868_800)
    );
    assert_eq!(
        instant("2024-02-29T12:00:00.5-00:00", false),
        Some(1_709_208_000)
    );
    assert_eq!(instant("not a date", false), None);
}

#[test]
fn time_ranges_overlap_including_open_ends() {
    let k = Keypair::generate();
    let span = |n: u8, title: &str, start: Option<&str>, end: Option<&str>| {
        let mut e = doc(&k, n, title, "", &[]);
        e.temporal = Some(Temporal {
            start: start.map(Into::into),
            end: end.map(Into::into),
        });
        e
    };
    let index = index_of(&[
        span(1, "2013", Some("2013-01-01"), Some("2013-12-31")),
        span(2, "since 2020", Some("2020-06-01T00:00:00Z"), None),
        span(3, "until 2000", None, Some("2000-01-01")),
        doc(&k, 4, "timeless", "", &[]),
    ]);
    let range = |from: Option<&str>, to: Option<&str>| {
        let mut pairs = Vec::new();
        if let Some(f) = from {
            pairs.push(("from", f));
        }
        if let Some(t) = to {
            pairs.push(("to", t));
        }
        let mut t = titles(&index.search(&query(&pairs)));
        t.sort();
        t
    };
    assert_eq!(range(Some("2013-06-01"), Some("2013-06-02")), ["2013"]);
    // The last day of a date-only end is covered to its end; touching bounds overlap.
    assert_eq!(
        range(Some("2013-12-31T23:00:00Z"), None),
        ["2013", "since 2020"]
    );
    assert_eq!(range(None, Some("2013-01-01")), ["2013", "until 2000"]);
    assert_eq!(
        range(Some("2000-01-02"), Some("2012-12-31")),
        Vec::<String>::new()
    );
    assert_eq!(range(Some("2030-01-01"), None), ["since 2020"]);
    assert_eq!(range(None, Some("1900-01-01")), ["until 2000"]);
    assert_eq!(range(None, None).len(), 4, "no range, no time filter");
}

#[test]
fn a_newer_version_replaces_the_old_and_an_older_one_is_ignored() {
    let k = Keypair::generate();
    let mut index = Index::new();
    let v1 = doc(&k, 1, "Hydrant survey", "", &[]);
    let mut v2 = doc(&k, 1, "Valve survey", "", &[]);
    v2.version = 2;
    v2.previous = Some(id(1));
    assert!(index.insert(id(1), &v1));
    assert!(index.insert(id(2), &v2));
    assert!(
        !index.insert(id(1), &v1),
        "an older version never comes back"
    );
    assert_eq!(index.len(), 1);
    assert!(index.search(&words_query("hydrant")).hits.is_empty());
    let r = index.search(&words_query("survey"));
    assert_eq!(r.total, 1);
    assert_eq!(r.hits[0].version, 2);
    assert_eq!(r.hits[0].entry, id(2).to_string());
    assert_eq!(
        index.term_count(),
        2,
        "the superseded version's words are gone"
    );

    // The same dataset id from another publisher is another listing, as in the store.
    let other = Keypair::generate();
    assert!(index.insert(id(9), &doc(&other, 1, "Valve copy", "", &[])));
    assert_eq!(index.search(&words_query("valve")).total, 2);
}

#[test]
fn remove_drops_a_dataset_and_its_words() {
    let k = Keypair::generate();
    let mut index = index_of(&[
        doc(&k, 1, "Hydrant survey", "", &[]),
        doc(&k, 2, "Pump stations", "", &[]),
    ]);
    let before = index.memory_bytes();
    assert_eq!(index.remove(&DatasetId([1; 16])), 1);
    assert_eq!(index.remove(&DatasetId([1; 16])), 0);
    assert_eq!(index.len(), 1);
    assert!(index.search(&words_query("hydrant")).hits.is_empty());
    assert_eq!(titles(&index.search(&Query::default())), ["Pump stations"]);
    assert!(index.memory_bytes() <= before);
    // Slots are reused.
    assert!(index.insert(id(3), &doc(&k, 3, "Hydrant flushing", "", &[])));
    assert_eq!(
        titles(&index.search(&words_query("hydrant"))),
        ["Hydrant flushing"]
    );
}

/// ISO 37156 4.2 g: a withdrawal takes its publisher's dataset off the listings up to the
/// version it names, and nobody else's.
#[test]
fn withdraw_drops_only_the_publishers_covered_version() {
    let owner = Keypair::generate();
    let squatter = Keypair::generate();
    let mut index = index_of(&[doc(&owner, 1, "Hydrant survey", "", &[])]);
    let mut other = doc(&squatter, 1, "Hydrant survey copy", "", &[]);
    other.dataset = DatasetId([1; 16]);
    assert!(index.insert(id(9), &other));
    assert_eq!(index.len(), 2);
    // Someone else's withdrawal, or one of an older version, changes nothing.
    assert!(!index.withdraw(&DatasetId([1; 16]), &Keypair::generate().did(), 5));
    assert!(!index.withdraw(&DatasetId([1; 16]), &owner.did(), 0));
    assert_eq!(index.len(), 2);
    assert!(index.withdraw(&DatasetId([1; 16]), &owner.did(), 1));
    assert_eq!(
        titles(&index.search(&words_query("hydrant"))),
        ["Hydrant survey copy"]
    );
}

#[test]
fn the_limit_keeps_the_best_and_counts_keep_all() {
    let k = Keypair::generate();
    let entries: Vec<Entry> = (0..30)
        .map(|i| {
            let mut e = doc(&k, i, &format!("Sensor {i}"), "", &[]);
            e.modified = format!("2026-01-{:02}", 1 + i % 28);
            e
        })
        .collect();
    let index = index_of(&entries);
    let r = index.search(&query(&[("limit", "5")]));
    assert_eq!(r.total, 30);
    assert_eq!(r.hits.len(), 5);
    assert_eq!(r.facets.domain.get("water"), Some(&30));
    // Facet-only: newest first.
    let mods: Vec<&str> = r.hits.iter().map(|h| h.modified.as_str()).collect();
    let mut sorted = mods.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(mods, sorted);
    assert_eq!(mods[0], "2026-01-28");
}

// --- The index agrees with the reference filter on random entries and queries. ---

const VOCAB: [&str; 12] = [
    "water",
    "waters",
    "main",
    "mainline",
    "park",
    "parking",
    "bus",
    "buses",
    "Énergie",
    "énergies",
    "ok",
    "sensor",
];

fn arb_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(&VOCAB[..]), 0..5).prop_map(|w| w.join(" "))
}

fn arb_bbox() -> impl Strategy<Value = BoundingBox> {
    (-180i64..=180, -90i64..=90, -180i64..=180, -90i64..=90).prop_map(|(w, s, e, n)| {
        let (s, n) = if s <= n { (s, n) } else { (n, s) };
        BoundingBox {
            west: w * 10_000_000,
            south: s * 10_000_000,
            east: e * 10_000_000,
            north: n * 10_000_000,
        }
    })
}

fn arb_date() -> impl Strategy<Value = String> {
    (2000u32..2010, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y}-{m:02}-{d:02}"))
}

#[derive(Debug, Clone)]
struct Gen {
    title: String,
    description: String,
    keywords: Vec<String>,
    domain: usize,
    insight: usize,
    licence: Option<usize>,
    publisher: usize,
    bbox: Option<BoundingBox>,
    start: Option<String>,
    end: Option<String>,
}

fn arb_gen() -> impl Strategy<Value = Gen> {
    (
        arb_text(),
        arb_text(),
        proptest::collection::vec(arb_text(), 0..3),
        0usize..5,
        0usize..4,
        proptest::option::of(0usize..2),
        0usize..3,
        proptest::option::of(arb_bbox()),
        proptest::option::of(arb_date()),
        proptest::option::of(arb_date()),
    )
        .prop_map(
            |(
                title,
                description,
                keywords,
                domain,
                insight,
                licence,
                publisher,
                bbox,
                start,
                end,
            )| {
                Gen {
                    title,
                    description,
                    keywords,
                    domain,
                    insight,
                    licence,
                    publisher,
                    bbox,
                    start,
                    end,
                }
            },
        )
}

fn arb_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let bbox = arb_bbox().prop_map(|b| {
        format!(
            "{},{},{},{}",
            b.west / 10_000_000,
            b.south / 10_000_000,
            b.east / 10_000_000,
            b.north / 10_000_000
        )
    });
    (
        proptest::option::of(arb_text()),
        proptest::option::of(0usize..5),
        proptest::option::of(0usize..4),
        proptest::option::of(0usize..3),
        proptest::option::of(0usize..2),
        proptest::option::of(bbox),
        proptest::option::of(arb_date()),
        proptest::option::of(arb_date()),
    )
        .prop_map(|(q, domain, insight, publisher, licence, bbox, from, to)| {
            let mut p = vec![("limit".to_string(), MAX_LIMIT.to_string())];
            let mut push = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    p.push((k.to_string(), v));
                }
            };
            push("q", q);
            push(
                "domain",
                domain.map(|d| Domain::ALL[d].as_str().to_string()),
            );
            push(
                "insight",
                insight.map(|i| Insight::ALL[i].as_str().to_string()),
            );
            push("publisher", publisher.map(|i| format!("AGENCY {i}")));
            push(
                "licence",
                licence.map(|i| ["cc-by-4.0", "ODbL-1.0"][i].to_string()),
            );
            push("bbox", bbox);
            push("from", from);
            push("to", to);
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn index_agrees_with_the_linear_filter(
        gens in proptest::collection::vec(arb_gen(), 1..40),
        queries in proptest::collection::vec(arb_pairs(), 1..8),
        removed in proptest::collection::vec(any::<u8>(), 0..5),
    ) {
        let key = Keypair::from_seed([3; 32]);
        let mut entries = Vec::new();
        for (i, g) in gens.iter().enumerate() {
            let mut e = doc(&key, i as u8, &g.title, &g.description, &[]);
            if e.title.trim().is_empty() {
                e.title = "untitled".into();
            }
            e.keywords = g.keywords.clone();
            e.iso.domain = Domain::ALL[g.domain];
            e.iso.insight = Insight::ALL[g.insight];
            e.licence = g.licence.map(|l| ["CC-BY-4.0", "odbl-1.0"][l].to_string());
            e.publisher.name = format!("Agency {}", g.publisher);
            e.spatial = g.bbox.map(|b| Spatial { name: None, bbox: Some(b) });
            if g.start.is_some() || g.end.is_some() {
                e.temporal = Some(Temporal { start: g.start.clone(), end: g.end.clone() });
            }
            entries.push(e);
        }
        let mut index = Index::new();
        for (i, e) in entries.iter().enumerate() {
            index.insert(id(i as u8), e);
        }
        // Withdraw a few, as a withdrawal would.
        let mut kept: Vec<&Entry> = entries.iter().collect();
        for r in removed {
            let ds = DatasetId([r % (entries.len() as u8); 16]);
            index.remove(&ds);
            kept.retain(|e| e.dataset != ds);
        }
        for pairs in &queries {
            let Ok(q) = Query::from_pairs(pairs) else { continue };
            let mut want: Vec<String> = kept
                .iter()
                .filter(|e| matches(e, &q))
                .map(|e| e.dataset.to_string())
                .collect();
            let r = index.search(&q);
            let mut got: Vec<String> = r.hits.iter().map(|h| h.dataset.clone()).collect();
            want.sort();
            got.sort();
            prop_assert_eq!(&got, &want, "query {:?}", pairs);
            prop_assert_eq!(r.total, want.len());
            let counted: usize = r.facets.domain.values().sum();
            prop_assert_eq!(counted, want.len());
            // Scores are in descending order.
            prop_assert!(r.hits.windows(2).all(|w| w[0].score >= w[1].score));
        }
    }
}
