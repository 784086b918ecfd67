//! The re-identification guard (ISO 37156 7.4.2.5) on a real table: Seattle's daily weather
//! from `../shared/data/datasets/environment/seattle-weather.csv` (NOAA, via vega-datasets),
//! with `date` and `temp_max` declared quasi-identifiers and `weather` sensitive. Every date
//! occurs once, so every group is a group of one: refused, the groups named; the suggested
//! generalisation, applied, is accepted.
//!
//! Skips with a message when `../shared/data/` is absent.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use cix_protocol::dictionary::infer_csv;
use cix_protocol::reident::{apply_csv, check_csv, ColumnRole, Thresholds};

fn table() -> Option<Vec<u8>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/datasets/environment/seattle-weather.csv");
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!("skipping: {} is absent", p.display());
            None
        }
    }
}

#[test]
fn iso_37156_7_4_2_5_groups_of_one_are_refused_and_the_suggested_generalisation_is_accepted() {
    let Some(bytes) = table() else { return };
    let mut fields = infer_csv(bytes.as_slice()).unwrap();
    for f in &mut fields {
        f.privacy = match f.name.as_str() {
            "date" | "temp_max" => Some(ColumnRole::QuasiIdentifier),
            "weather" => Some(ColumnRole::Sensitive),
            _ => None,
        };
    }
    let th = Thresholds {
        k: 5,
        l: 2,
        max_suppressed_permille: 50,
    };
    let report = check_csv(bytes.as_slice(), &fields, &th).unwrap().unwrap();
    assert!(!report.passes());
    assert_eq!(report.rows, 1461);
    assert_eq!(report.k, 1, "every date is unique");
    assert_eq!(report.groups, 1461);
    assert_eq!(report.offending_groups, 1461);
    // The groups are named by their values and line, smallest first.
    let first = &report.listed[0];
    assert_eq!(first.rows, 1);
    assert_eq!(first.first_line, 2);
    assert_eq!(first.values, vec!["date=2012-01-01", "temp_max=12.8"]);
    let summary = report.summary();
    assert!(summary.contains("refused"), "{summary}");
    assert!(summary.contains("date=2012-01-01"), "{summary}");
    let suggestion = report.suggestion.clone().unwrap();
    assert!(
        suggestion.generalise.iter().any(|g| g.column == "date"),
        "the unique column is generalised: {suggestion:?}"
    );
    assert!(
        suggestion.suppress_rows * 1000 <= report.rows * 50,
        "{suggestion:?}"
    );
    assert!(suggestion.k_after >= 5, "{suggestion:?}");

    // The same table after the suggestion: accepted.
    let mut out = Vec::new();
    let applied = apply_csv(bytes.as_slice(), &mut out, &fields, &suggestion, &th).unwrap();
    assert_eq!(applied.kept + applied.suppressed, 1461);
    assert_eq!(applied.suppressed, suggestion.suppress_rows);
    let again = check_csv(out.as_slice(), &fields, &th).unwrap().unwrap();
    assert!(again.passes(), "{}", again.summary());
    assert!(again.k >= 5 && again.l >= Some(2), "{again:?}");
    assert_eq!(again.rows, applied.kept);
    // Without the suppression, generalising alone leaves some small groups: the suggestion
    // needed both steps, or none were needed, never a pass by accident.
    let strict = Thresholds {
        max_suppressed_permille: 0,
        ..th
    };
    let none = check_csv(bytes.as_slice(), &fields, &strict)
        .unwrap()
        .unwrap();
    let s0 = none.suggestion.unwrap();
    assert_eq!(s0.suppress_rows, 0, "{s0:?}");
}
