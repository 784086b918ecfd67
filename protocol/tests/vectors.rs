//! The committed test vectors in `specs/vectors/` are exactly what the generator writes, and
//! every verdict they state is what this crate's decoders say.
//!
//! The first test reruns the generator (`examples/vectors.rs`, included below) and compares
//! bytes. The others read the committed JSON files on their own and check each case against the
//! code, so a vector file edited by hand, or a decoder that changed its mind, fails here.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};

use cix_protocol::catalogue::{EntryError, EntryId, SignedEntry, Spectrum, ENTRY_TAG};
use cix_protocol::cbor::{self, DecodeError};
use cix_protocol::content::ContentHash;
use cix_protocol::envelope::EnvelopeError;
use cix_protocol::identity::{verify_strict, Did, Keypair};
use cix_protocol::limits;
use cix_protocol::wire::{
    AccessRequest, AccessResponse, SyncRequest, SyncResponse, TransferHeader, TransferRequest,
};
use serde_json::Value as Json;

#[path = "../examples/vectors.rs"]
mod generator;

const REGENERATE: &str = "run `cargo run -p cix-protocol --example vectors` and review the diff";

fn read(name: &str) -> String {
    let path = generator::vectors_dir().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", path.display()))
}

/// The `vectors` array of a committed JSON file.
fn vectors(name: &str) -> Vec<Json> {
    let file: Json = serde_json::from_str(&read(name)).unwrap();
    file["vectors"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has no vectors array"))
        .clone()
}

fn text<'a>(v: &'a Json, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: field {key} is not a string", v["name"]))
}

fn bytes(v: &Json, key: &str) -> Vec<u8> {
    hex::decode(text(v, key)).unwrap_or_else(|e| panic!("{}: {key} is not hex: {e}", v["name"]))
}

#[test]
fn committed_vectors_are_exactly_what_the_generator_writes() {
    let generated = generator::generate();
    for (name, contents) in &generated {
        assert!(
            read(name) == *contents,
            "specs/vectors/{name} is stale: {REGENERATE}"
        );
    }
    // Nothing else lives there but the hand-written README.
    let mut expected: BTreeSet<String> = generated.iter().map(|(n, _)| n.to_string()).collect();
    expected.insert("README.md".into());
    // Written by its own generator, examples/receipt_vectors.rs, checked by
    // tests/receipt_vectors.rs.
    expected.insert("receipts.json".into());
    let found: BTreeSet<String> = std::fs::read_dir(generator::vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        found, expected,
        "specs/vectors/ holds files the generator does not write"
    );
}

#[test]
fn identity_vectors_hold() {
    let keys = vectors("identity.json");
    assert_eq!(keys.len(), 3);
    for v in &keys {
        let seed: [u8; 32] = bytes(v, "seed").try_into().unwrap();
        let public: [u8; 32] = bytes(v, "public_key").try_into().unwrap();
        let key = Keypair::from_seed(seed);
        assert_eq!(key.public().to_bytes(), public, "{}", v["name"]);

        // did:key: "did:key:z" + base58btc(0xed 0x01 || key), and back.
        let did: Did = text(v, "did").parse().unwrap();
        assert_eq!(did.public_key().to_bytes(), public);
        assert_eq!(did, key.did());
        let mut raw = vec![0xed, 0x01];
        raw.extend_from_slice(&public);
        assert_eq!(
            text(v, "did"),
            format!("did:key:z{}", bs58::encode(raw).into_string())
        );

        // PeerId: identity multihash of the protobuf-encoded public key, base58btc, no prefix.
        let peer = bytes(v, "peer_id_bytes");
        assert_eq!(peer[..6], [0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
        assert_eq!(peer[6..], public);
        assert_eq!(bs58::decode(text(v, "peer_id")).into_vec().unwrap(), peer);
        assert!(text(v, "peer_id").starts_with("12D3KooW"));

        let sig: [u8; 64] = bytes(v, "signature").try_into().unwrap();
        verify_strict(&public, &bytes(v, "message"), &sig).unwrap();
        assert_eq!(key.sign(&bytes(v, "message")), sig);
    }
}

#[test]
fn identity_vectors_agree_with_outside_sources() {
    let keys: HashMap<String, Json> = vectors("identity.json")
        .into_iter()
        .map(|v| (text(&v, "name").to_string(), v))
        .collect();
    // RFC 8032 section 7.1, TEST 1: public key and the signature of the empty message.
    let rfc = &keys["rfc8032-test1"];
    assert_eq!(
        text(rfc, "public_key"),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    assert_eq!(
        text(rfc, "signature"),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb882\
         1590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
    // PeerIds that libp2p-identity 0.3.1 (`Keypair::ed25519_from_bytes(seed)`, then
    // `public().to_peer_id()`) prints for the same seeds.
    assert_eq!(
        text(&keys["owner"], "peer_id"),
        "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"
    );
    assert_eq!(
        text(&keys["requester"], "peer_id"),
        "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"
    );
}

#[test]
fn content_vectors_hold() {
    let all = vectors("content.json");
    for v in &all {
        let data = bytes(v, "data");
        assert_eq!(v["length"].as_u64(), Some(data.len() as u64));
        assert_eq!(
            ContentHash::of(&data).to_hex(),
            text(v, "blake3"),
            "{}",
            v["name"]
        );
        assert_eq!(blake3::hash(&data).to_hex().as_str(), text(v, "blake3"));
    }
    // The empty input's hash is the one `b3sum` prints for an empty file.
    assert_eq!(
        text(&all[0], "blake3"),
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );
}

/// The verdict category of an entry error, independently of the generator's own mapping.
fn entry_error_kind(err: &EntryError) -> String {
    match err {
        EntryError::Rule(r) => format!("rule {}", r.field),
        EntryError::Schema(DecodeError::Schema(_)) => "schema".into(),
        EntryError::Envelope(EnvelopeError::Signature(_)) => "signature".into(),
        EntryError::Envelope(EnvelopeError::WrongType { .. }) => "wrong-type".into(),
        EntryError::Envelope(EnvelopeError::Decode(DecodeError::NotCanonical)) => {
            "not-canonical".into()
        }
        EntryError::Envelope(EnvelopeError::Decode(DecodeError::TrailingBytes(_))) => {
            "trailing-bytes".into()
        }
        EntryError::Envelope(EnvelopeError::Decode(DecodeError::Float)) => "float".into(),
        other => panic!("no vector expects {other:?}"),
    }
}

#[test]
fn entry_vectors_have_their_verdicts() {
    let all = vectors("entries.json");
    let content: HashMap<String, u64> = vectors("content.json")
        .iter()
        .map(|v| (text(v, "blake3").to_string(), v["length"].as_u64().unwrap()))
        .collect();
    let mut ids = HashMap::new();
    let mut kinds = BTreeSet::new();
    for v in &all {
        let name = text(v, "name");
        let envelope = bytes(v, "envelope");
        match (text(v, "verdict"), SignedEntry::decode(&envelope)) {
            ("valid", Ok(signed)) => {
                // EntryId is BLAKE3 of the envelope bytes exactly as received.
                assert_eq!(
                    text(v, "entry_id"),
                    hex::encode(blake3::hash(&envelope).as_bytes())
                );
                assert_eq!(signed.id, EntryId::of(&envelope));
                assert_eq!(signed.id.to_string(), text(v, "entry_id"), "{name}");
                assert_eq!(signed.entry.dataset.to_string(), text(v, "dataset"));
                assert_eq!(Some(signed.entry.version), v["version"].as_u64());
                assert_ne!(signed.entry.iso.spectrum, Spectrum::Closed);
                for d in &signed.entry.distributions {
                    let (hash, size) = d.held().expect("vector distributions are held");
                    assert_eq!(content.get(&hash.to_hex()), Some(&size), "{name}");
                }
                ids.insert(name.to_string(), signed);
            }
            ("invalid", Err(err)) => {
                let mut expected = text(v, "kind").to_string();
                if let Some(field) = v["field"].as_str() {
                    expected = format!("{expected} {field}");
                }
                assert_eq!(entry_error_kind(&err), expected, "{name}");
                assert_eq!(err.to_string(), text(v, "error"), "{name}");
                kinds.insert(text(v, "kind").to_string());
            }
            (verdict, found) => panic!("{name}: vector says {verdict}, decoder says {found:?}"),
        }
    }
    // Supersession: version 2 names version 1 as previous, for the same dataset and issuer.
    let (v1, v2) = (&ids["open-v1"], &ids["open-v2"]);
    assert_eq!(v2.entry.previous, Some(v1.id));
    assert_eq!(
        (v1.entry.dataset, v1.entry.iss),
        (v2.entry.dataset, v2.entry.iss)
    );
    assert!(v2.entry.version > v1.entry.version);
    // The cases the brief asks for are all there.
    for kind in [
        "signature",
        "rule",
        "not-canonical",
        "trailing-bytes",
        "float",
    ] {
        assert!(kinds.contains(kind), "no invalid entry of kind {kind}");
    }
    assert!(all
        .iter()
        .any(|v| v["field"] == "iso.privacy.personal_data"));
}

#[test]
fn entry_envelopes_have_the_documented_shape() {
    let v1 = bytes(&vectors("entries.json")[0], "envelope");
    // array(2), bytes(64) signature, map(2) { "h": varsig, "cix/entry@1": payload }.
    assert_eq!(v1[..3], [0x82, 0x58, 0x40]);
    let signed = &v1[67..];
    let mut prefix = vec![
        0xa2, 0x61, b'h', 0x48, 0x34, 0x01, 0xed, 0x01, 0xed, 0x01, 0x13, 0x71,
    ];
    prefix.push(0x60 + ENTRY_TAG.len() as u8);
    prefix.extend_from_slice(ENTRY_TAG.as_bytes());
    assert_eq!(signed[..prefix.len()], prefix[..]);
    // The signature covers exactly the signed map's bytes.
    let sig: [u8; 64] = v1[3..67].try_into().unwrap();
    let owner = Keypair::from_seed(generator::OWNER_SEED);
    verify_strict(&owner.public().to_bytes(), signed, &sig).unwrap();
}

fn decode_wire(message: &str, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    fn again<T: serde::Serialize>(t: T) -> Vec<u8> {
        cbor::to_vec(&t).unwrap()
    }
    Ok(match message {
        "AccessRequest" => again(cbor::from_slice::<AccessRequest>(
            bytes,
            limits::MAX_ACCESS_REQUEST_BYTES,
        )?),
        "AccessResponse" => again(cbor::from_slice::<AccessResponse>(
            bytes,
            limits::MAX_ACCESS_RESPONSE_BYTES,
        )?),
        "TransferRequest" => again(cbor::from_slice::<TransferRequest>(
            bytes,
            limits::MAX_TRANSFER_REQUEST_BYTES,
        )?),
        "TransferHeader" => again(cbor::from_slice::<TransferHeader>(
            bytes,
            limits::MAX_TRANSFER_HEADER_BYTES,
        )?),
        other => panic!("unknown message type {other}"),
    })
}

#[test]
fn wire_vectors_have_their_verdicts() {
    let all = vectors("wire.json");
    for v in &all {
        let name = text(v, "name");
        let cbor_bytes = bytes(v, "cbor");
        match (
            text(v, "verdict"),
            decode_wire(text(v, "message"), &cbor_bytes),
        ) {
            ("valid", Ok(again)) => assert_eq!(again, cbor_bytes, "{name} re-encodes identically"),
            ("invalid", Err(err)) => {
                let kind = match err {
                    DecodeError::NotCanonical => "not-canonical",
                    DecodeError::Schema(_) => "schema",
                    ref other => panic!("{name}: unexpected {other:?}"),
                };
                assert_eq!(kind, text(v, "kind"), "{name}");
                assert_eq!(err.to_string(), text(v, "error"), "{name}");
            }
            (verdict, found) => panic!("{name}: vector says {verdict}, decoder says {found:?}"),
        }
        if text(v, "verdict") == "valid" {
            check_framed(v, &cbor_bytes);
        }
    }
    // Every deny code appears in exactly one denial vector.
    let codes: BTreeSet<String> = all
        .iter()
        .filter(|v| text(v, "name").starts_with("access-response-denied-"))
        .map(
            |v| match cbor::from_slice::<AccessResponse>(&bytes(v, "cbor"), usize::MAX) {
                Ok(AccessResponse::Denied { code, .. }) => format!("{code:?}"),
                other => panic!("{other:?} is not a denial"),
            },
        )
        .collect();
    assert_eq!(codes.len(), 9);
}

#[test]
fn sync_vectors_decode_and_carry_the_owners_latest_entries() {
    let owner = Keypair::from_seed(generator::OWNER_SEED).did();
    let all = vectors("sync.json");
    assert_eq!(all.len(), 4);
    for v in &all {
        let name = text(v, "name");
        let cbor_bytes = bytes(v, "cbor");
        check_framed(v, &cbor_bytes);
        match text(v, "message") {
            "SyncRequest" => {
                let req: SyncRequest =
                    cbor::from_slice(&cbor_bytes, limits::MAX_SYNC_REQUEST_BYTES).unwrap();
                assert_eq!(cbor::to_vec(&req).unwrap(), cbor_bytes, "{name}");
            }
            "SyncResponse" => {
                let resp: SyncResponse =
                    cbor::from_slice(&cbor_bytes, limits::MAX_SYNC_RESPONSE_BYTES).unwrap();
                assert!(!resp.entries.is_empty() && resp.entries.len() <= limits::MAX_SYNC_ENTRIES);
                let mut ids = Vec::new();
                for e in &resp.entries {
                    let signed = SignedEntry::decode(e).unwrap();
                    assert_eq!(signed.entry.iss, owner, "{name}: only the responder's own");
                    assert_ne!(signed.entry.iso.spectrum, Spectrum::Closed);
                    ids.push(signed.id);
                }
                assert!(
                    ids.windows(2).all(|w| w[0] < w[1]),
                    "{name}: ordered by entry id"
                );
            }
            other => panic!("{name}: unknown message {other}"),
        }
    }
    // The second page starts after the id the second request names.
    let after: SyncRequest = cbor::from_slice(&bytes(&all[2], "cbor"), 64).unwrap();
    let first: SyncResponse = cbor::from_slice(&bytes(&all[1], "cbor"), 1 << 20).unwrap();
    let second: SyncResponse = cbor::from_slice(&bytes(&all[3], "cbor"), 1 << 20).unwrap();
    assert_eq!(after.after, Some(EntryId::of(&first.entries[0])));
    assert_eq!(second.entries[..], first.entries[1..]);
    // Superseded versions are not offered: open-v1 is not there, open-v2 is.
    let entries = vectors("entries.json");
    let id_of = |n: &str| {
        let v = entries.iter().find(|v| v["name"] == n).unwrap();
        EntryId::of(&bytes(v, "envelope"))
    };
    let offered: Vec<EntryId> = first.entries.iter().map(|e| EntryId::of(e)).collect();
    assert!(!offered.contains(&id_of("open-v1")));
    assert!(offered.contains(&id_of("open-v2")));
}

/// The `framed` form is a 4-byte big-endian length, then exactly the CBOR.
fn check_framed(v: &Json, cbor_bytes: &[u8]) {
    let framed = bytes(v, "framed");
    let len = u32::from_be_bytes(framed[..4].try_into().unwrap()) as usize;
    assert_eq!(
        (len, &framed[4..]),
        (cbor_bytes.len(), cbor_bytes),
        "{}",
        v["name"]
    );
}

#[test]
fn revocation_vectors_hold() {
    use cix_protocol::revocation::SignedRevocation;
    use cix_protocol::ucan::Delegation;

    let file: Json = serde_json::from_str(&read("revocations.json")).unwrap();
    let chain: Vec<_> = file["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Delegation::decode(&hex::decode(t.as_str().unwrap()).unwrap()).unwrap())
        .collect();
    let request: SyncRequest = cbor::from_slice(
        &hex::decode(file["sync_request"].as_str().unwrap()).unwrap(),
        limits::MAX_SYNC_REQUEST_BYTES,
    )
    .unwrap();
    assert!(request.revocations && request.after.is_none());
    let mut verdicts = BTreeSet::new();
    for v in file["vectors"].as_array().unwrap() {
        let name = text(v, "name");
        let decoded = SignedRevocation::decode(&bytes(v, "envelope"));
        verdicts.insert(text(v, "verdict").to_string());
        match text(v, "verdict") {
            "valid" => {
                let r = decoded.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(hex::encode(r.id), text(v, "id"), "{name}");
                assert_eq!(r.revocation.revoke.to_string(), text(v, "revoke"), "{name}");
                assert_eq!(
                    r.breaks(&chain),
                    v["breaks"].as_u64().map(|b| b as usize),
                    "{name}"
                );
            }
            _ => assert!(decoded.is_err(), "{name} should be refused"),
        }
    }
    let every = ["envelope", "payload", "reason", "time", "valid"];
    assert_eq!(
        verdicts,
        every.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()
    );
}

#[test]
fn withdrawal_vectors_hold() {
    use cix_protocol::withdrawal::SignedWithdrawal;

    let file: Json = serde_json::from_str(&read("withdrawals.json")).unwrap();
    let hexed = |k: &str| hex::decode(file[k].as_str().unwrap()).unwrap();
    let ids: SyncRequest =
        cbor::from_slice(&hexed("sync_ids_request"), limits::MAX_SYNC_REQUEST_BYTES).unwrap();
    assert_eq!((ids.since, ids.want.len()), (Some(0), 0));
    let want: SyncRequest =
        cbor::from_slice(&hexed("sync_want_request"), limits::MAX_SYNC_REQUEST_BYTES).unwrap();
    let page: SyncResponse =
        cbor::from_slice(&hexed("sync_ids_response"), limits::MAX_SYNC_RESPONSE_BYTES).unwrap();
    assert_eq!((page.through, page.epoch), (Some(7), Some(42)));
    let mut valid_ids = Vec::new();
    let mut verdicts = BTreeSet::new();
    for v in file["vectors"].as_array().unwrap() {
        let name = text(v, "name");
        let decoded = SignedWithdrawal::decode(&bytes(v, "envelope"));
        verdicts.insert(text(v, "verdict").to_string());
        match text(v, "verdict") {
            "valid" => {
                let w = decoded.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(hex::encode(w.id), text(v, "id"), "{name}");
                assert_eq!(
                    w.withdrawal.dataset.to_string(),
                    file["dataset"].as_str().unwrap()
                );
                valid_ids.push(w.id.to_vec());
            }
            _ => assert!(decoded.is_err(), "{name} should be refused"),
        }
    }
    let listed: Vec<Vec<u8>> = page.ids.iter().map(|b| b.to_vec()).collect();
    assert_eq!(listed, valid_ids);
    assert_eq!(want.want[0].to_vec(), valid_ids[0]);
    let every = ["envelope", "reason", "time", "valid", "version"];
    assert_eq!(
        verdicts,
        every.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()
    );
}

#[test]
fn token_vectors_hold() {
    use cix_protocol::ucan::{self, Cid, Delegation, Invocation, Verifier};

    let file: Json = serde_json::from_str(&read("tokens.json")).unwrap();
    let tokens = file["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    for v in tokens {
        let token = bytes(v, "token");
        let seed: [u8; 32] = bytes(v, "issuer_seed").try_into().unwrap();
        let issuer = Keypair::from_seed(seed).did();
        let cid = match text(v, "kind") {
            "delegation" => {
                let (d, cid) = Delegation::decode(&token).unwrap();
                assert_eq!(d.iss, issuer);
                assert_eq!(d.seal(&Keypair::from_seed(seed)).unwrap().0, token);
                cid
            }
            "invocation" => {
                let (i, cid) = Invocation::decode(&token).unwrap();
                assert_eq!(i.iss, issuer);
                assert_eq!(i.seal(&Keypair::from_seed(seed)).unwrap().0, token);
                cid
            }
            other => panic!("unknown token kind {other}"),
        };
        assert_eq!(cid.to_string(), text(v, "cid"));
        assert_eq!(cid, Cid::of_token(&token));
    }

    let chains = file["chains"].as_array().unwrap();
    let mut names = BTreeSet::new();
    let mut verifier = Verifier::new();
    for v in chains {
        let name = text(v, "name");
        let invocation = bytes(v, "invocation");
        let proofs: Vec<Vec<u8>> = v["proofs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| hex::decode(p.as_str().unwrap()).unwrap())
            .collect();
        let time = v["time"].as_i64().unwrap();
        assert_eq!(
            Cid::of_token(&invocation).to_string(),
            text(v, "invocation_cid")
        );

        let full = ucan::validate(&invocation, &proofs, time);
        assert_eq!(
            verifier.validate(&invocation, &proofs, time),
            full,
            "{name}"
        );
        let spec = ucan::validate_spec(&invocation, &proofs, time);
        assert_eq!(
            spec.as_ref().err().map_or("valid", |e| e.name()),
            text(v, "ucan"),
            "{name}"
        );
        match text(v, "verdict") {
            "valid" => assert!(full.is_ok(), "{name}: {full:?}"),
            "invalid" => {
                let err = full.unwrap_err();
                assert_eq!(err.name(), text(v, "error"), "{name}");
                assert_eq!(err.to_string(), text(v, "message"), "{name}");
                names.insert(err.name());
            }
            other => panic!("{name}: unknown verdict {other}"),
        }
    }
    // One case at least for every error the fixtures name, and for both of cix's own.
    let every = [
        "InvalidClaim",
        "UnavailableProof",
        "Expired",
        "TooEarly",
        "InvalidAudience",
        "InvalidSubject",
        "InvalidSignature",
        "MatchError",
        "Malformed",
        "Profile",
    ];
    assert_eq!(names, every.into_iter().collect::<BTreeSet<_>>());
}

#[test]
fn audit_vectors_hold() {
    use cix_protocol::audit::{
        check_witnessed, split_sequence, verify_chain, AuditHash, Head, SignedRecord, Vouched,
        Witness, WitnessRequest, WitnessResponse,
    };
    let file: Json = serde_json::from_str(&read("audit.json")).unwrap();
    let did: Did = file["did"].as_str().unwrap().parse().unwrap();
    let hexed = |k: &str| hex::decode(file[k].as_str().unwrap()).unwrap();
    let mut prev = [0u8; 32];
    let mut last = None;
    for (i, r) in file["records"].as_array().unwrap().iter().enumerate() {
        let s = SignedRecord::decode(&bytes(r, "envelope")).unwrap();
        assert_eq!(s.record.seq, i as u64 + 1);
        assert_eq!(s.record.iss, did);
        assert_eq!(s.record.prev.0, prev, "record {} does not chain", i + 1);
        assert_eq!(s.record.kind.to_string(), text(r, "kind"));
        assert_eq!(s.hash.to_hex(), text(r, "hash"));
        assert_eq!(s.hash, AuditHash::of(&bytes(r, "envelope")));
        prev = s.hash.0;
        last = Some((s.record.seq, s.hash));
    }
    let (seq, hash) = last.unwrap();
    let head = Head::decode(&hexed("head")).unwrap();
    assert_eq!(
        (head.value.iss, head.value.seq, head.value.hash),
        (did, seq, hash)
    );
    let w = Witness::decode(&hexed("witness")).unwrap();
    assert_eq!(
        (w.value.subject, w.value.seq, w.value.hash),
        (did, seq, hash)
    );
    assert_eq!(
        WitnessRequest::decode(&hexed("witness_request_head")).unwrap(),
        WitnessRequest::Head(head.bytes.clone())
    );
    assert_eq!(
        WitnessResponse::decode(&hexed("witness_response_witnessed")).unwrap(),
        WitnessResponse::Witnessed(w.bytes.clone())
    );
    assert_eq!(
        WitnessRequest::decode(&hexed("witness_request_held")).unwrap(),
        WitnessRequest::Held(did)
    );
    let vouched = [Vouched {
        seq,
        hash,
        source: w.value.iss.to_string(),
    }];
    let mut names = BTreeSet::new();
    for v in file["exports"].as_array().unwrap() {
        let name = text(v, "name");
        names.insert(name.to_string());
        let export = bytes(v, "export");
        let pieces = split_sequence(&export);
        let chain = match verify_chain(pieces.iter().copied(), Some(&did)) {
            Ok(_) => "valid".to_string(),
            Err(e) => format!("item {}", e.index + 1),
        };
        assert_eq!(chain, text(v, "chain"), "{name}");
        let witnessed = match check_witnessed(
            &vouched,
            |s| pieces.get((s - 1) as usize).map(|b| AuditHash::of(b)),
            pieces.len() as u64,
        ) {
            Ok(_) => "valid".to_string(),
            Err(e) => format!("seq {}", e.seq.unwrap()),
        };
        assert_eq!(witnessed, text(v, "witnessed"), "{name}");
    }
    // The untouched log passes both; each tampering fails one check or the other.
    let untouched = file["exports"][0].clone();
    assert_eq!(
        (text(&untouched, "chain"), text(&untouched, "witnessed")),
        ("valid", "valid")
    );
    for v in file["exports"].as_array().unwrap().iter().skip(1) {
        assert!(
            text(v, "chain") != "valid" || text(v, "witnessed") != "valid",
            "{} passes",
            text(v, "name")
        );
    }
    assert_eq!(names.len(), 6);
}
