//! `specs/limits.md` and `protocol/src/limits.rs` state the same limits with the same values.
//!
//! The spec's main table (header `| NAME | value | meaning |`) must list every constant of
//! `limits.rs` and nothing else. Its second table (header `| NAME | value | meaning | defined
//! in |`) repeats bounds defined in other modules of this crate; each row must match the code.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use cix_protocol::{cbor, dictionary, limits, revocation, ucan};

const LIMITS_TABLE: &str = "| NAME | value | meaning |";
const ELSEWHERE_TABLE: &str = "| NAME | value | meaning | defined in |";

/// Every constant of `limits.rs` with its value, read from the code itself.
fn code_limits() -> BTreeMap<String, u64> {
    let all: [(&str, u64); 84] = [
        ("MAX_TRANSFER_RANGES", limits::MAX_TRANSFER_RANGES as u64),
        (
            "TRANSFER_CHUNK_GROUP_BYTES",
            limits::TRANSFER_CHUNK_GROUP_BYTES,
        ),
        (
            "MAX_DESCRIPTION_BYTES",
            limits::MAX_DESCRIPTION_BYTES as u64,
        ),
        ("MAX_SHORT_TEXT_BYTES", limits::MAX_SHORT_TEXT_BYTES as u64),
        ("MAX_URL_BYTES", limits::MAX_URL_BYTES as u64),
        ("MAX_LIST_ITEMS", limits::MAX_LIST_ITEMS as u64),
        ("MAX_TRANSLATIONS", limits::MAX_TRANSLATIONS as u64),
        ("MAX_ENTRY_BYTES", limits::MAX_ENTRY_BYTES as u64),
        (
            "MAX_QUIC_STREAM_WINDOW_BYTES",
            limits::MAX_QUIC_STREAM_WINDOW_BYTES as u64,
        ),
        (
            "MAX_QUIC_CONNECTION_WINDOW_BYTES",
            limits::MAX_QUIC_CONNECTION_WINDOW_BYTES as u64,
        ),
        ("MAX_RELAY_CIRCUIT_BYTES", limits::MAX_RELAY_CIRCUIT_BYTES),
        ("MAX_RELAY_CIRCUIT_SECS", limits::MAX_RELAY_CIRCUIT_SECS),
        ("MAX_RELAY_CIRCUITS", limits::MAX_RELAY_CIRCUITS as u64),
        (
            "MAX_RELAY_RESERVATIONS",
            limits::MAX_RELAY_RESERVATIONS as u64,
        ),
        ("TIME_RESPONSE_BYTES", limits::TIME_RESPONSE_BYTES as u64),
        ("MAX_TITLE_BYTES", limits::MAX_TITLE_BYTES as u64),
        ("MAX_KEYWORDS", limits::MAX_KEYWORDS as u64),
        ("MAX_DISTRIBUTIONS", limits::MAX_DISTRIBUTIONS as u64),
        (
            "MAX_DICTIONARY_FIELDS",
            limits::MAX_DICTIONARY_FIELDS as u64,
        ),
        ("MAX_FIELD_TEXT_BYTES", limits::MAX_FIELD_TEXT_BYTES as u64),
        ("MAX_ENUM_VALUES", limits::MAX_ENUM_VALUES as u64),
        (
            "MAX_ACCESS_REQUEST_BYTES",
            limits::MAX_ACCESS_REQUEST_BYTES as u64,
        ),
        (
            "MAX_ACCESS_RESPONSE_BYTES",
            limits::MAX_ACCESS_RESPONSE_BYTES as u64,
        ),
        ("MAX_PURPOSE_BYTES", limits::MAX_PURPOSE_BYTES as u64),
        ("MAX_REASON_BYTES", limits::MAX_REASON_BYTES as u64),
        (
            "MAX_TRANSFER_REQUEST_BYTES",
            limits::MAX_TRANSFER_REQUEST_BYTES as u64,
        ),
        (
            "MAX_TRANSFER_HEADER_BYTES",
            limits::MAX_TRANSFER_HEADER_BYTES as u64,
        ),
        ("MAX_DATASET_BYTES", limits::MAX_DATASET_BYTES),
        ("MAX_SYNC_ENTRIES", limits::MAX_SYNC_ENTRIES as u64),
        ("MAX_SYNC_IDS", limits::MAX_SYNC_IDS as u64),
        ("MAX_WITHDRAWAL_BYTES", limits::MAX_WITHDRAWAL_BYTES as u64),
        (
            "MAX_WITHDRAWAL_REASON_BYTES",
            limits::MAX_WITHDRAWAL_REASON_BYTES as u64,
        ),
        (
            "MAX_SYNC_RESPONSE_BYTES",
            limits::MAX_SYNC_RESPONSE_BYTES as u64,
        ),
        (
            "MAX_SYNC_REQUEST_BYTES",
            limits::MAX_SYNC_REQUEST_BYTES as u64,
        ),
        ("MAX_PROFILE_BYTES", limits::MAX_PROFILE_BYTES as u64),
        (
            "MAX_AGENCY_NAME_BYTES",
            limits::MAX_AGENCY_NAME_BYTES as u64,
        ),
        ("MAX_SECTORS", limits::MAX_SECTORS as u64),
        (
            "MAX_ATTESTATION_BYTES",
            limits::MAX_ATTESTATION_BYTES as u64,
        ),
        ("MAX_ATTESTATIONS", limits::MAX_ATTESTATIONS as u64),
        ("MAX_GROUP_NAME_BYTES", limits::MAX_GROUP_NAME_BYTES as u64),
        ("MAX_GROUPS", limits::MAX_GROUPS as u64),
        (
            "MAX_PROJECTION_SOURCE_BYTES",
            limits::MAX_PROJECTION_SOURCE_BYTES,
        ),
        (
            "MAX_PROJECTION_ROW_BYTES",
            limits::MAX_PROJECTION_ROW_BYTES as u64,
        ),
        (
            "MAX_AUDIT_RECORD_BYTES",
            limits::MAX_AUDIT_RECORD_BYTES as u64,
        ),
        ("MAX_AUDIT_KIND_BYTES", limits::MAX_AUDIT_KIND_BYTES as u64),
        ("MAX_AUDIT_TEXT_BYTES", limits::MAX_AUDIT_TEXT_BYTES as u64),
        (
            "MAX_AUDIT_DETAIL_BYTES",
            limits::MAX_AUDIT_DETAIL_BYTES as u64,
        ),
        ("MAX_HEAD_BYTES", limits::MAX_HEAD_BYTES as u64),
        (
            "MAX_WITNESS_REQUEST_BYTES",
            limits::MAX_WITNESS_REQUEST_BYTES as u64,
        ),
        ("MAX_WITNESS_HEADS", limits::MAX_WITNESS_HEADS as u64),
        (
            "MAX_WITNESS_RESPONSE_BYTES",
            limits::MAX_WITNESS_RESPONSE_BYTES as u64,
        ),
        ("MAX_RECEIPT_BYTES", limits::MAX_RECEIPT_BYTES as u64),
        (
            "MAX_RECEIPT_ACK_BYTES",
            limits::MAX_RECEIPT_ACK_BYTES as u64,
        ),
        ("MAX_DELETION_BYTES", limits::MAX_DELETION_BYTES as u64),
        (
            "MAX_RECEIPT_BUNDLE_BYTES",
            limits::MAX_RECEIPT_BUNDLE_BYTES as u64,
        ),
        (
            "MAX_RECEIPT_REQUEST_BYTES",
            limits::MAX_RECEIPT_REQUEST_BYTES as u64,
        ),
        (
            "MAX_RECEIPT_RESPONSE_BYTES",
            limits::MAX_RECEIPT_RESPONSE_BYTES as u64,
        ),
        (
            "MAX_NOTICE_TEXT_BYTES",
            limits::MAX_NOTICE_TEXT_BYTES as u64,
        ),
        ("MAX_NOTICE_PURPOSES", limits::MAX_NOTICE_PURPOSES as u64),
        (
            "MAX_QUALITY_REPORT_BYTES",
            limits::MAX_QUALITY_REPORT_BYTES as u64,
        ),
        ("MAX_QUALITY_ROWS", limits::MAX_QUALITY_ROWS as u64),
        (
            "MAX_QUALITY_EVIDENCE_BYTES",
            limits::MAX_QUALITY_EVIDENCE_BYTES as u64,
        ),
        (
            "MAX_QUALITY_ANSWER_BYTES",
            limits::MAX_QUALITY_ANSWER_BYTES as u64,
        ),
        (
            "MAX_QUALITY_REQUEST_BYTES",
            limits::MAX_QUALITY_REQUEST_BYTES as u64,
        ),
        (
            "MAX_QUALITY_RESPONSE_BYTES",
            limits::MAX_QUALITY_RESPONSE_BYTES as u64,
        ),
        ("MAX_RESOLVED_REPORTS", limits::MAX_RESOLVED_REPORTS as u64),
        (
            "MAX_EMERGENCY_AGREEMENT_BYTES",
            limits::MAX_EMERGENCY_AGREEMENT_BYTES as u64,
        ),
        (
            "MAX_EMERGENCY_DECLARATION_BYTES",
            limits::MAX_EMERGENCY_DECLARATION_BYTES as u64,
        ),
        (
            "MAX_EMERGENCY_DATASETS",
            limits::MAX_EMERGENCY_DATASETS as u64,
        ),
        (
            "MAX_EMERGENCY_PARTIES",
            limits::MAX_EMERGENCY_PARTIES as u64,
        ),
        ("MAX_EMERGENCY_KINDS", limits::MAX_EMERGENCY_KINDS as u64),
        ("MAX_EMERGENCY_AREAS", limits::MAX_EMERGENCY_AREAS as u64),
        (
            "MAX_EMERGENCY_TEXT_BYTES",
            limits::MAX_EMERGENCY_TEXT_BYTES as u64,
        ),
        ("MAX_EMERGENCY_HOURS", limits::MAX_EMERGENCY_HOURS as u64),
        (
            "MAX_EMERGENCY_REQUEST_BYTES",
            limits::MAX_EMERGENCY_REQUEST_BYTES as u64,
        ),
        (
            "MAX_EMERGENCY_RESPONSE_BYTES",
            limits::MAX_EMERGENCY_RESPONSE_BYTES as u64,
        ),
        (
            "MAX_EMERGENCY_AGREEMENTS_KEPT",
            limits::MAX_EMERGENCY_AGREEMENTS_KEPT as u64,
        ),
        (
            "MAX_EMERGENCY_DECLARATIONS_KEPT",
            limits::MAX_EMERGENCY_DECLARATIONS_KEPT as u64,
        ),
        (
            "MAX_RIGHTS_CASE_BYTES",
            limits::MAX_RIGHTS_CASE_BYTES as u64,
        ),
        ("MAX_RIGHTS_DATASETS", limits::MAX_RIGHTS_DATASETS as u64),
        (
            "MAX_RIGHTS_TEXT_BYTES",
            limits::MAX_RIGHTS_TEXT_BYTES as u64,
        ),
        (
            "MAX_RIGHTS_REPLY_BYTES",
            limits::MAX_RIGHTS_REPLY_BYTES as u64,
        ),
        (
            "MAX_RIGHTS_REQUEST_BYTES",
            limits::MAX_RIGHTS_REQUEST_BYTES as u64,
        ),
        (
            "MAX_RIGHTS_RESPONSE_BYTES",
            limits::MAX_RIGHTS_RESPONSE_BYTES as u64,
        ),
    ];
    all.into_iter()
        .chain(peer_limits())
        .map(|(n, v)| (n.to_string(), v))
        .collect()
}

/// The peer bounds of `limits.rs` (connections, per-peer rates, misbehaviour; issue 8).
fn peer_limits() -> [(&'static str, u64); 11] {
    [
        (
            "MAX_CONNECTIONS_PER_PEER",
            limits::MAX_CONNECTIONS_PER_PEER as u64,
        ),
        (
            "MAX_ESTABLISHED_CONNECTIONS",
            limits::MAX_ESTABLISHED_CONNECTIONS as u64,
        ),
        ("MAX_PENDING_INCOMING", limits::MAX_PENDING_INCOMING as u64),
        (
            "MAX_TRANSFERS_PER_PEER",
            limits::MAX_TRANSFERS_PER_PEER as u64,
        ),
        ("TRANSFER_WINDOW", limits::TRANSFER_WINDOW as u64),
        ("RATE_WINDOW_SECS", limits::RATE_WINDOW_SECS),
        (
            "MAX_ACCESS_REQUESTS_PER_WINDOW",
            limits::MAX_ACCESS_REQUESTS_PER_WINDOW as u64,
        ),
        (
            "MAX_TRANSFER_REQUESTS_PER_WINDOW",
            limits::MAX_TRANSFER_REQUESTS_PER_WINDOW as u64,
        ),
        (
            "MAX_INVALID_GOSSIP_PER_WINDOW",
            limits::MAX_INVALID_GOSSIP_PER_WINDOW as u64,
        ),
        ("PEER_BAN_SECS", limits::PEER_BAN_SECS),
        ("MAX_TRACKED_PEERS", limits::MAX_TRACKED_PEERS as u64),
    ]
}

/// Bounds defined outside `limits.rs` that the spec repeats, keyed `module::NAME`.
fn code_elsewhere() -> BTreeMap<String, u64> {
    let all: [(&str, u64); 9] = [
        ("cbor::MAX_DEPTH", cbor::MAX_DEPTH as u64),
        (
            "revocation::MAX_REVOCATION_BYTES",
            revocation::MAX_REVOCATION_BYTES as u64,
        ),
        (
            "revocation::MAX_REVOCATION_REASON_BYTES",
            revocation::MAX_REVOCATION_REASON_BYTES as u64,
        ),
        ("ucan::MAX_TOKEN_BYTES", ucan::MAX_TOKEN_BYTES as u64),
        ("ucan::MAX_CHAIN_LEN", ucan::MAX_CHAIN_LEN as u64),
        (
            "ucan::MAX_INVOCATION_TTL_SECS",
            ucan::MAX_INVOCATION_TTL_SECS as u64,
        ),
        (
            "dictionary::MAX_DICTIONARY_DEPTH",
            dictionary::MAX_DICTIONARY_DEPTH as u64,
        ),
        (
            "dictionary::MAX_LISTED_VIOLATIONS",
            dictionary::MAX_LISTED_VIOLATIONS as u64,
        ),
        (
            "dictionary::MAX_STRUCTURE_SOURCE_BYTES",
            dictionary::MAX_STRUCTURE_SOURCE_BYTES,
        ),
    ];
    all.into_iter().map(|(n, v)| (n.to_string(), v)).collect()
}

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of the markdown table whose header line is exactly `header`, as trimmed cells.
fn table(markdown: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = markdown.lines().skip_while(|l| l.trim() != header);
    assert!(
        lines.next().is_some(),
        "specs/limits.md has no table headed {header:?}"
    );
    let separator = lines.next().unwrap_or_default();
    assert!(
        separator.starts_with("|---") || separator.starts_with("| ---"),
        "{separator:?}"
    );
    let width = header.matches('|').count() - 1;
    lines
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            let cells: Vec<String> = l
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            assert_eq!(cells.len(), width, "row {l:?} should have {width} cells");
            cells
        })
        .collect()
}

/// Name and value of each row, refusing anything but a bare constant name and a plain integer.
fn named_values(
    rows: &[Vec<String>],
    name_of: impl Fn(&[String]) -> String,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for row in rows {
        let name = name_of(row);
        let value = &row[1];
        assert!(
            !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
            "{name}: value {value:?} is not a plain integer"
        );
        assert!(!row[2].is_empty(), "{name}: meaning is empty");
        let previous = out.insert(name.clone(), value.parse().unwrap());
        assert!(previous.is_none(), "{name} is listed twice");
    }
    out
}

fn is_constant_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[test]
fn this_test_knows_every_constant_in_limits_rs() {
    let source = read("src/limits.rs");
    let declared: Vec<String> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .map(|rest| {
            rest.split(':')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect();
    let known: Vec<String> = code_limits().into_keys().collect();
    let mut sorted = declared.clone();
    sorted.sort();
    assert_eq!(
        sorted, known,
        "limits.rs declares other constants than code_limits() lists: add the new one there \
         and to specs/limits.md"
    );
}

#[test]
fn every_limit_in_code_is_in_the_spec_with_the_same_value_and_vice_versa() {
    let spec = read("../specs/limits.md");
    let rows = table(&spec, LIMITS_TABLE);
    let in_spec = named_values(&rows, |row| {
        assert!(
            is_constant_name(&row[0]),
            "{:?} is not a bare constant name",
            row[0]
        );
        row[0].clone()
    });
    let in_code = code_limits();
    for (name, value) in &in_code {
        match in_spec.get(name) {
            None => panic!("{name} = {value} is in limits.rs but not in specs/limits.md"),
            Some(v) => assert_eq!(
                v, value,
                "{name}: specs/limits.md says {v}, code says {value}"
            ),
        }
    }
    for name in in_spec.keys() {
        assert!(
            in_code.contains_key(name),
            "specs/limits.md lists {name}, limits.rs does not"
        );
    }
}

#[test]
fn bounds_from_other_modules_match_the_code() {
    let spec = read("../specs/limits.md");
    let rows = table(&spec, ELSEWHERE_TABLE);
    let in_spec = named_values(&rows, |row| {
        assert!(
            is_constant_name(&row[0]),
            "{:?} is not a bare constant name",
            row[0]
        );
        let module = row[3].trim_matches('`');
        let module = module.strip_prefix("cix_protocol::").unwrap_or(module);
        format!("{module}::{}", row[0])
    });
    assert!(!in_spec.is_empty());
    let in_code = code_elsewhere();
    for (name, value) in &in_spec {
        let code = in_code
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not a known constant"));
        assert_eq!(
            value, code,
            "{name}: specs/limits.md says {value}, code says {code}"
        );
    }
    for name in in_code.keys() {
        assert!(
            in_spec.contains_key(name),
            "specs/limits.md no longer lists {name}"
        );
    }
}
