//! The UCAN working group's 1.0.0 fixtures (ucan-wg/spec, fixtures/1.0.0): the delegation
//! token, every invocation case and every policy case, run through cix's decoder and the
//! spec-only validator (`ucan::validate_spec`; the fixtures are plain UCAN, not the cix
//! profile, whose expiry rules most of them would break on purpose).

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use ciborium::Value;
use cix_protocol::identity::{Did, Keypair};
use cix_protocol::ucan::{self, Cid, Delegation, Invocation, Policy};
use serde_json::Value as Json;

/// Fixture binaries are base64 with or without padding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ucan");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: fixture folder {} is absent", dir.display());
        None
    }
}

fn read(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn b64(text: &str) -> Vec<u8> {
    B64.decode(text).unwrap()
}

/// DAG-JSON bytes: `{"/": {"bytes": base64}}`.
fn dag_bytes(v: &Json) -> Vec<u8> {
    b64(v["/"]["bytes"].as_str().expect("dag-json bytes"))
}

/// A principal's key from `base64(varint 0x1300 ‖ seed)`.
fn principal(text: &str) -> Keypair {
    let raw = b64(text);
    assert_eq!(&raw[..2], &[0x80, 0x26], "ed25519 private-key multicodec");
    Keypair::from_seed(raw[2..].try_into().unwrap())
}

fn did(v: &Json) -> Did {
    v.as_str().unwrap().parse().unwrap()
}

fn cbor(v: &Json) -> Value {
    Value::serialized(v).unwrap()
}

#[test]
fn delegation_fixture_decodes_verifies_and_re_encodes() {
    let Some(dir) = fixtures() else { return };
    let file: Json = serde_json::from_str(&read(&dir, "delegation.json")).unwrap();
    let case = &file["valid"][0];
    let bytes = b64(case["token"].as_str().unwrap());

    // Decoding checks the signature against iss; the CID is over the whole token.
    let (dlg, cid) = Delegation::decode(&bytes).unwrap();
    assert_eq!(cid.to_string(), case["cid"].as_str().unwrap());
    assert_eq!(cid, case["cid"].as_str().unwrap().parse::<Cid>().unwrap());
    assert_eq!(cid, Cid::of_token(&bytes));

    let payload = &case["envelope"]["payload"];
    assert_eq!(dlg.iss, did(&payload["iss"]));
    assert_eq!(dlg.aud, did(&payload["aud"]));
    assert_eq!(dlg.sub, Some(did(&payload["sub"])));
    assert_eq!(dlg.cmd, payload["cmd"].as_str().unwrap());
    assert!(dlg.pol.is_empty());
    assert_eq!(dlg.exp, payload["exp"].as_i64());
    assert_eq!(dlg.nbf, None);
    assert_eq!(dlg.nonce, b64(payload["nonce"].as_str().unwrap()));

    // Re-encoding with the received signature gives the received bytes.
    let sig: [u8; 64] = b64(case["envelope"]["signature"].as_str().unwrap())
        .try_into()
        .unwrap();
    assert_eq!(&bytes[3..67], &sig[..]);
    assert_eq!(dlg.encode_with_signature(&sig).unwrap(), bytes);

    // Ed25519 is deterministic: sealing again with bob's key reproduces the token.
    let bob = principal(file["principals"]["bob"].as_str().unwrap());
    let carol = principal(file["principals"]["carol"].as_str().unwrap());
    assert_eq!(dlg.iss, bob.did());
    assert_eq!(dlg.aud, carol.did());
    let (again, again_cid) = dlg.seal(&bob).unwrap();
    assert_eq!(again, bytes);
    assert_eq!(again_cid, cid);

    // One flipped bit in the signature is refused.
    let mut tampered = bytes.clone();
    tampered[10] ^= 1;
    assert!(Delegation::decode(&tampered).unwrap_err().is_signature());
}

#[test]
fn invocation_fixture_cases_get_the_expected_verdicts() {
    let Some(dir) = fixtures() else { return };
    let file: Json = serde_json::from_str(&read(&dir, "invocation.json")).unwrap();
    let valid = file["valid"].as_array().unwrap();
    let invalid = file["invalid"].as_array().unwrap();
    assert_eq!(
        (valid.len(), invalid.len()),
        (7, 13),
        "the fixture file changed"
    );

    let mut failures = Vec::new();
    let cases = valid.iter().map(|c| (c, None)).chain(
        invalid
            .iter()
            .map(|c| (c, Some(c["error"]["name"].as_str().unwrap()))),
    );
    let mut passed = 0;
    for (case, expected) in cases {
        let name = case["name"].as_str().unwrap();
        let invocation = dag_bytes(&case["invocation"]);
        let proofs: Vec<Vec<u8>> = case["proofs"]
            .as_array()
            .unwrap()
            .iter()
            .map(dag_bytes)
            .collect();
        let now = case["time"].as_i64().unwrap();

        let verdict = ucan::validate_spec(&invocation, &proofs, now);
        let got = verdict.as_ref().err().map(|e| e.name());
        let shown = verdict
            .as_ref()
            .map_or_else(|e| format!("{e:?}"), |_| "valid".into());
        println!(
            "{name}: expected {}, got {shown}",
            expected.unwrap_or("valid")
        );
        if got == expected {
            passed += 1;
        } else {
            failures.push(format!("{name}: expected {expected:?}, got {shown}"));
        }

        // Proofs in reverse order are found just the same.
        let reversed: Vec<Vec<u8>> = proofs.iter().rev().cloned().collect();
        let again = ucan::validate_spec(&invocation, &reversed, now);
        assert_eq!(
            again.as_ref().err().map(|e| e.name()),
            got,
            "{name}: proof order matters"
        );
    }
    println!(
        "invocation.json: {passed} of {} cases pass",
        valid.len() + invalid.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_well_signed_fixture_token_re_encodes_to_its_bytes() {
    let Some(dir) = fixtures() else { return };
    let file: Json = serde_json::from_str(&read(&dir, "invocation.json")).unwrap();
    let cases = file["valid"]
        .as_array()
        .unwrap()
        .iter()
        .chain(file["invalid"].as_array().unwrap());
    let mut checked = 0;
    for case in cases {
        let tokens = std::iter::once(&case["invocation"]).chain(case["proofs"].as_array().unwrap());
        for token in tokens {
            let bytes = dag_bytes(token);
            let Ok(sig) = <[u8; 64]>::try_from(bytes.get(3..67).unwrap_or_default()) else {
                continue; // the two cases with a 3-byte signature
            };
            if let Ok((dlg, _)) = Delegation::decode(&bytes) {
                assert_eq!(dlg.encode_with_signature(&sig).unwrap(), bytes);
                checked += 1;
            } else if let Ok((inv, _)) = Invocation::decode(&bytes) {
                assert_eq!(inv.encode_with_signature(&sig).unwrap(), bytes);
                checked += 1;
            }
        }
    }
    println!("{checked} fixture tokens re-encode byte for byte");
    assert!(checked >= 40, "only {checked} tokens decoded");
}

#[test]
fn valid_invocation_fixtures_are_refused_by_the_cix_profile() {
    // The fixtures use `exp: null` and /msg/send; the full validator must say the profile, not
    // UCAN, is what refuses them.
    let Some(dir) = fixtures() else { return };
    let file: Json = serde_json::from_str(&read(&dir, "invocation.json")).unwrap();
    for case in file["valid"].as_array().unwrap() {
        let invocation = dag_bytes(&case["invocation"]);
        let proofs: Vec<Vec<u8>> = case["proofs"]
            .as_array()
            .unwrap()
            .iter()
            .map(dag_bytes)
            .collect();
        let err = ucan::validate(&invocation, &proofs, case["time"].as_i64().unwrap()).unwrap_err();
        assert_eq!(err.name(), "Profile", "{}: {err}", case["name"]);
    }
}

/// Removes the one upstream case that is not JSON (an object without a key under
/// `newsletters`), so the rest of the file can be parsed. Returns the text without it.
fn drop_newsletters_case(text: &str) -> String {
    let at = text.find("\"newsletters\"").expect("the newsletters case");
    let args = text[..at].rfind("\"args\"").unwrap();
    let start = text[..args].rfind('{').unwrap();
    // Braces are balanced in that case even though it is not JSON, and no string in it holds
    // a brace; count to the matching close.
    let mut depth = 0usize;
    let mut end = start;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = start + i + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    let rest = text[end..].trim_start();
    let rest = rest.strip_prefix(',').unwrap_or(rest);
    format!("{}{}", &text[..start], rest)
}

#[test]
fn policy_fixture_cases_hold_or_fail_as_expected() {
    let Some(dir) = fixtures() else { return };
    let text = read(&dir, "policy.json");
    assert!(
        serde_json::from_str::<Json>(&text).is_err(),
        "upstream file became valid JSON"
    );
    println!("dropping the `newsletters` case of policy.json in memory: it is not valid JSON");
    let file: Json = serde_json::from_str(&drop_newsletters_case(&text)).unwrap();

    let mut counts = [0usize; 2];
    for (group, expect) in [("valid", true), ("invalid", false)] {
        for case in file[group].as_array().unwrap() {
            let args = cbor(&case["args"]);
            for policy in case["policies"].as_array().unwrap() {
                let parsed = Policy::from_value(&cbor(policy))
                    .unwrap_or_else(|e| panic!("{policy} does not parse: {e}"));
                assert_eq!(
                    parsed.to_value(),
                    cbor(policy),
                    "{policy} does not re-encode"
                );
                assert_eq!(
                    parsed.matches(&args),
                    expect,
                    "{group} policy {policy} on {args:?}"
                );
                counts[usize::from(!expect)] += 1;
            }
        }
    }
    println!(
        "policy.json: {} valid and {} invalid policies pass",
        counts[0], counts[1]
    );
    assert_eq!(counts, [16, 8], "every remaining policy ran");
}

#[test]
fn newsletters_case_rebuilt_as_json() {
    // Our reading of the dropped case, with the missing key supplied: bob is among the
    // recipients of every newsletter.
    let args = cbor(&serde_json::json!({
        "newsletters": {
            "christmas": {
                "recipients": [{"email": "bob@example.com"}, {"email": "alice@example.com"}]
            },
            "easter": {"recipients": [{"email": "bob@example.com"}]}
        }
    }));
    let policy = Policy::from_value(&cbor(&serde_json::json!([[
        "all",
        ".newsletters",
        ["any", ".recipients", ["==", ".email", "bob@example.com"]]
    ]])))
    .unwrap();
    assert!(policy.matches(&args));
    let without_bob = cbor(&serde_json::json!({
        "newsletters": {"christmas": {"recipients": [{"email": "alice@example.com"}]}}
    }));
    assert!(!policy.matches(&without_bob));
}

#[test]
fn caching_verifier_gives_identical_verdicts_on_every_fixture_case() {
    // One verifier for all cases, each case twice: the second time (and for later cases sharing
    // proofs) delegations come from the cache. Both layers must match the free functions
    // exactly, error details included.
    let Some(dir) = fixtures() else { return };
    let file: Json = serde_json::from_str(&read(&dir, "invocation.json")).unwrap();
    let cases: Vec<&Json> = file["valid"]
        .as_array()
        .unwrap()
        .iter()
        .chain(file["invalid"].as_array().unwrap())
        .collect();
    assert_eq!(cases.len(), 20, "the fixture file changed");
    let mut verifier = ucan::Verifier::new();
    let mut compared = 0;
    for pass in ["cold", "warm"] {
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            let invocation = dag_bytes(&case["invocation"]);
            let proofs: Vec<Vec<u8>> = case["proofs"]
                .as_array()
                .unwrap()
                .iter()
                .map(dag_bytes)
                .collect();
            let now = case["time"].as_i64().unwrap();
            assert_eq!(
                verifier.validate_spec(&invocation, &proofs, now),
                ucan::validate_spec(&invocation, &proofs, now),
                "{pass} {name}: UCAN layer"
            );
            assert_eq!(
                verifier.validate(&invocation, &proofs, now),
                ucan::validate(&invocation, &proofs, now),
                "{pass} {name}: with the cix profile"
            );
            compared += 2;
        }
    }
    println!(
        "{compared} verdicts identical; {} proofs answered from the cache",
        verifier.hits()
    );
    assert!(verifier.hits() > 0, "the cache was never used");
}
