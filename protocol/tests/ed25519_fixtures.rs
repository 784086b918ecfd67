//! The Ed25519 speccheck edge cases (novifinancial/ed25519-speccheck) through
//! `identity::verify_strict`: cix must accept case 3 only, as ed25519-dalek's strict
//! verification does in the authors' results table.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use cix_protocol::identity::verify_strict;

/// The one case (0-based, in file order) a strict verifier accepts.
const ACCEPTED: usize = 3;

fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ed25519");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: fixture folder {} is absent", dir.display());
        None
    }
}

#[derive(serde::Deserialize)]
struct Case {
    message: String,
    pub_key: String,
    signature: String,
}

#[test]
fn strict_verification_accepts_only_case_3() {
    let Some(dir) = fixtures() else { return };
    let text = std::fs::read_to_string(dir.join("speccheck-cases.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 12, "the speccheck file has twelve cases");

    let mut verdicts = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let message = hex::decode(&case.message).unwrap();
        let key: [u8; 32] = hex::decode(&case.pub_key).unwrap().try_into().unwrap();
        let sig: [u8; 64] = hex::decode(&case.signature).unwrap().try_into().unwrap();
        let verdict = verify_strict(&key, &message, &sig);
        println!("case {i}: {verdict:?}");
        verdicts.push((i, verdict.is_ok()));
    }
    let accepted: Vec<usize> = verdicts
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(accepted, vec![ACCEPTED]);
}
