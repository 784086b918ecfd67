//! Property: sealing any token, decoding it and encoding it again gives the same bytes and the
//! same CID (issue 3: "encoding then decoding any token gives the same bytes and CID").
//!
//! Tokens are drawn at random in every field the payload has: principals from random seeds,
//! lowercase command paths, policies of every statement kind built from their CBOR form, times
//! across the whole ±(2^53 - 1) range, nonces of any length, nested DAG-CBOR arguments and
//! metadata (links included, floats excluded: cix never signs them), proof and cause links.
//! Three round trips are checked for each token: decode, re-encode with the received signature,
//! and seal the decoded payload again (Ed25519 is deterministic, so that too must give the same
//! bytes).

use std::collections::BTreeMap;

use ciborium::Value;
use cix_protocol::identity::Keypair;
use cix_protocol::ucan::{Cid, Delegation, Invocation, Policy, TIMESTAMP_LIMIT};
use proptest::prelude::*;

fn seed() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn command() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9_.~-]{1,10}", 0..5).prop_map(|segs| {
        if segs.is_empty() {
            "/".to_string()
        } else {
            format!("/{}", segs.join("/"))
        }
    })
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        -TIMESTAMP_LIMIT..=TIMESTAMP_LIMIT,
        Just(TIMESTAMP_LIMIT),
        Just(-TIMESTAMP_LIMIT),
        0i64..=4_000_000_000,
    ]
}

fn link() -> impl Strategy<Value = Cid> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| Cid::of_token(&b))
}

/// Any DAG-CBOR value cix will sign: no floats, text keys, links allowed.
fn data() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,16}".prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Value::Bytes),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        link().prop_map(|c| c.to_link()),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..4).prop_map(|m| {
                // In canonical order (shortest key first), as decoding gives them back.
                let mut entries: Vec<(String, Value)> = m.into_iter().collect();
                entries.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
                Value::Map(
                    entries
                        .into_iter()
                        .map(|(k, v)| (Value::Text(k), v))
                        .collect(),
                )
            }),
        ]
    })
}

fn map() -> impl Strategy<Value = BTreeMap<String, Value>> {
    prop::collection::btree_map(".{0,10}", data(), 0..5)
}

/// A selector: `.`, or dotted fields, indexes, slices and iterators, some optional.
fn selector() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[a-z_][a-z0-9_]{0,6}".prop_map(|f| format!(".{f}")),
        (-5i64..20).prop_map(|i| format!("[{i}]")),
        Just("[]".to_string()),
        (0i64..4, 4i64..9).prop_map(|(a, b)| format!("[{a}:{b}]")),
        "[a-z ]{0,6}".prop_map(|f| format!("[\"{f}\"]")),
    ];
    prop::collection::vec((segment, any::<bool>()), 0..4).prop_map(|segs| {
        if segs.is_empty() {
            return ".".to_string();
        }
        let text: String = segs
            .into_iter()
            .map(|(s, optional)| if optional { format!("{s}?") } else { s })
            .collect();
        // Every selector starts with the identity `.`; `.[0]`, not `[0]`.
        if text.starts_with('.') {
            text
        } else {
            format!(".{text}")
        }
    })
}

/// One policy statement in its CBOR form, of any kind and nesting.
fn statement() -> impl Strategy<Value = Value> {
    let text = |s: &str| Value::Text(s.to_string());
    let leaf = prop_oneof![
        (prop_oneof![Just("=="), Just("!=")], selector(), data())
            .prop_map(move |(op, sel, v)| Value::Array(vec![text(op), Value::Text(sel), v])),
        (
            prop_oneof![Just("<"), Just("<="), Just(">"), Just(">=")],
            selector(),
            any::<i64>()
        )
            .prop_map(move |(op, sel, n)| {
                Value::Array(vec![text(op), Value::Text(sel), Value::from(n)])
            }),
        (selector(), "[a-z*\\\\]{0,10}").prop_map(move |(sel, pattern)| {
            Value::Array(vec![text("like"), Value::Text(sel), Value::Text(pattern)])
        }),
    ];
    leaf.prop_recursive(3, 16, 3, move |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(move |s| Value::Array(vec![text("not"), s])),
            (
                prop_oneof![Just("and"), Just("or")],
                prop::collection::vec(inner.clone(), 0..3)
            )
                .prop_map(move |(op, list)| Value::Array(vec![text(op), Value::Array(list)])),
            (prop_oneof![Just("all"), Just("any")], selector(), inner)
                .prop_map(move |(op, sel, s)| Value::Array(vec![text(op), Value::Text(sel), s])),
        ]
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::collection::vec(statement(), 0..4).prop_map(|statements| {
        let value = Value::Array(statements);
        Policy::from_value(&value)
            .unwrap_or_else(|e| panic!("the generator made a policy that does not parse: {e}"))
    })
}

prop_compose! {
    fn delegation()(
        iss in seed(),
        aud in seed(),
        sub in prop::option::of(seed()),
        cmd in command(),
        pol in policy(),
        nonce in prop::collection::vec(any::<u8>(), 0..40),
        exp in prop::option::of(time()),
        nbf in prop::option::of(time()),
        meta in prop::option::of(map()),
    ) -> (Keypair, Delegation) {
        let key = Keypair::from_seed(iss);
        let dlg = Delegation {
            iss: key.did(),
            aud: Keypair::from_seed(aud).did(),
            sub: sub.map(|s| Keypair::from_seed(s).did()),
            cmd,
            pol,
            nonce,
            exp,
            nbf,
            meta,
        };
        (key, dlg)
    }
}

prop_compose! {
    fn invocation()(
        iss in seed(),
        sub in seed(),
        aud in prop::option::of(seed()),
        cmd in command(),
        args in map(),
        prf in prop::collection::vec(link(), 0..9),
        exp in prop::option::of(time()),
        iat in prop::option::of(time()),
        nonce in prop::collection::vec(any::<u8>(), 0..40),
        meta in prop::option::of(map()),
        cause in prop::option::of(link()),
    ) -> (Keypair, Invocation) {
        let key = Keypair::from_seed(iss);
        let inv = Invocation {
            iss: key.did(),
            sub: Keypair::from_seed(sub).did(),
            aud: aud.map(|s| Keypair::from_seed(s).did()),
            cmd,
            args,
            prf,
            exp,
            iat,
            nonce,
            meta,
            cause,
        };
        (key, inv)
    }
}

/// The 64 signature bytes of a sealed token (after `82 58 40`).
fn signature(bytes: &[u8]) -> [u8; 64] {
    bytes
        .get(3..67)
        .and_then(|s| s.try_into().ok())
        .unwrap_or_else(|| panic!("a sealed token starts with its signature"))
}

/// Failing cases are recorded here (committed, so they are rerun first from then on).
const REGRESSIONS: &str = "tests/proptest-regressions/token_round_trip.txt";

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(REGRESSIONS),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_delegation_round_trips_to_the_same_bytes_and_cid((key, dlg) in delegation()) {
        let (bytes, cid) = dlg.seal(&key).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(cid, Cid::of_token(&bytes));

        let (back, back_cid) =
            Delegation::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &dlg);
        prop_assert_eq!(back_cid, cid);

        let again = back
            .encode_with_signature(&signature(&bytes))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &bytes);
        prop_assert_eq!(Cid::of_token(&again), cid);

        let resealed = back.seal(&key).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(resealed, (bytes, cid));
    }

    #[test]
    fn any_invocation_round_trips_to_the_same_bytes_and_cid((key, inv) in invocation()) {
        let (bytes, cid) = inv.seal(&key).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(cid, Cid::of_token(&bytes));

        let (back, back_cid) =
            Invocation::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &inv);
        prop_assert_eq!(back_cid, cid);

        let again = back
            .encode_with_signature(&signature(&bytes))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &bytes);
        prop_assert_eq!(Cid::of_token(&again), cid);

        let resealed = back.seal(&key).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(resealed, (bytes, cid));
    }

    /// The policy itself survives: what the delegation carries is what its author wrote.
    #[test]
    fn any_policy_re_encodes_to_its_cbor(statements in prop::collection::vec(statement(), 0..4)) {
        let value = Value::Array(statements);
        let policy = Policy::from_value(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(policy.to_value(), value);
    }
}
