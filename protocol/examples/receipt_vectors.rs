//! Writes `specs/vectors/receipts.json`: receipts, counter-signatures, bundles, deletion notices
//! and `/cix/receipt/1` messages (specs/receipts.md), with the verdict each must get.
//!
//! Inputs are fixed (seeds, ids, times) and Ed25519 is deterministic, so every run writes the
//! same bytes; `tests/receipt_vectors.rs` reruns this and fails on any difference, and checks
//! each committed case against the decoders on its own. Regenerate with
//!
//! ```text
//! cargo run -p cix-protocol --example receipt_vectors
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_bytes::ByteBuf;

use cix_protocol::catalogue::DatasetId;
use cix_protocol::cbor;
use cix_protocol::content::ContentHash;
use cix_protocol::envelope;
use cix_protocol::identity::Keypair;
use cix_protocol::receipt::{
    Bundle, DeletionNotice, Receipt, ReceiptError, ReceiptRequest, ReceiptResponse, SignedAck,
    SignedDeletion, SignedReceipt, RECEIPT_TAG,
};
use cix_protocol::ucan::Cid;

/// The provider (the data owner), as in the other vector files.
pub(crate) const PROVIDER_SEED: [u8; 32] = [1; 32];
/// The receiver.
pub(crate) const RECEIVER_SEED: [u8; 32] = [2; 32];
/// Someone else.
pub(crate) const STRANGER_SEED: [u8; 32] = [3; 32];
/// 2026-06-01T00:00:00Z in Unix milliseconds.
const T0: i64 = 1_780_272_000_000;

/// The file's path.
pub(crate) fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors/receipts.json")
}

/// One case.
#[derive(Serialize)]
pub(crate) struct Case {
    name: &'static str,
    /// `receipt`, `ack`, `bundle`, `deletion`, `request` or `response`.
    kind: &'static str,
    description: &'static str,
    bytes: String,
    /// `valid`, or the class of the refusal: `envelope`, `payload`, `rule`, `mismatch`.
    verdict: &'static str,
    /// BLAKE3 hex of the bytes, for valid receipts and deletion notices: their id.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

#[derive(Serialize)]
struct File {
    about: &'static str,
    regenerate: &'static str,
    provider_seed: String,
    receiver_seed: String,
    vectors: Vec<Case>,
}

/// The class of a refusal, as the vectors name it.
pub(crate) fn class(e: &ReceiptError) -> &'static str {
    match e {
        ReceiptError::Envelope(_) => "envelope",
        ReceiptError::Payload(_) => "payload",
        ReceiptError::Rule { .. } => "rule",
        ReceiptError::WrongKey => "wrong-key",
        ReceiptError::Mismatch(_) => "mismatch",
        _ => "other",
    }
}

/// Decodes `bytes` as `kind` and names the verdict and the id, if any.
pub(crate) fn verdict(kind: &str, bytes: &[u8]) -> (&'static str, Option<[u8; 32]>) {
    let r = match kind {
        "receipt" => SignedReceipt::decode(bytes).map(|r| Some(r.id)),
        "ack" => SignedAck::decode(bytes).map(|_| None),
        "bundle" => Bundle::decode(bytes).map(|_| None),
        "deletion" => SignedDeletion::decode(bytes).map(|d| Some(d.id)),
        "request" => {
            return match cbor::from_slice::<ReceiptRequest>(bytes, 4096) {
                Ok(_) => ("valid", None),
                Err(_) => ("payload", None),
            }
        }
        "response" => {
            return match cbor::from_slice::<ReceiptResponse>(bytes, 9216) {
                Ok(_) => ("valid", None),
                Err(_) => ("payload", None),
            }
        }
        other => panic!("unknown kind {other}"),
    };
    match r {
        Ok(id) => ("valid", id),
        Err(e) => (class(&e), None),
    }
}

fn receipt(receiver: &Keypair, provider: &Keypair) -> Receipt {
    Receipt {
        iss: receiver.did(),
        provider: provider.did(),
        dataset: DatasetId([0x5a; 16]),
        content: ContentHash::of(b"time,flow\n2026-06-01T00:00:00Z,12.5\n"),
        bytes: 37,
        invocation: Some(Cid::of_token(b"an invocation's bytes stand in here")),
        purpose: Some("leak detection".into()),
        retention_days: Some(30),
        start: T0,
        end: T0 + 250,
    }
}

/// Every case, checked against the decoders as it is built.
pub(crate) fn cases() -> Vec<Case> {
    let provider = Keypair::from_seed(PROVIDER_SEED);
    let receiver = Keypair::from_seed(RECEIVER_SEED);
    let stranger = Keypair::from_seed(STRANGER_SEED);
    let good = receipt(&receiver, &provider)
        .seal(&receiver)
        .expect("seals");
    let ack = good.countersign(&provider, T0 + 300).expect("countersigns");
    let bundle = Bundle {
        receipt: good.clone(),
        ack: Some(ack.clone()),
    }
    .to_bytes()
    .expect("encodes");
    let mut open = receipt(&receiver, &provider);
    open.invocation = None;
    open.purpose = None;
    open.retention_days = None;
    let open = open.seal(&receiver).expect("seals");
    let notice = DeletionNotice {
        iss: receiver.did(),
        provider: provider.did(),
        dataset: DatasetId([0x5a; 16]),
        content: receipt(&receiver, &provider).content,
        receipt: Some(good.id),
        retention_days: 30,
        deleted: T0 + 30 * 86_400_000,
    }
    .seal(&receiver)
    .expect("seals");

    let mut flipped = good.bytes.clone();
    flipped[5] ^= 0x01;
    let mut altered = receipt(&receiver, &provider);
    altered.bytes = 38;
    let forged_by_stranger =
        envelope::seal(&stranger, RECEIPT_TAG, &receipt(&receiver, &provider)).expect("seals");
    let mut backwards = receipt(&receiver, &provider);
    backwards.end = backwards.start - 1;
    let backwards = envelope::seal(&receiver, RECEIPT_TAG, &backwards).expect("seals");
    let other_ack = altered
        .seal(&receiver)
        .expect("seals")
        .countersign(&provider, T0 + 300)
        .expect("countersigns");
    let mismatched = cbor::to_vec(&(
        ByteBuf::from(good.bytes.clone()),
        Some(ByteBuf::from(other_ack.bytes.clone())),
    ))
    .expect("encodes");
    let mut trailing = good.bytes.clone();
    trailing.push(0);
    let deletion_as_receipt = notice.bytes.clone();

    let request = cbor::to_vec(&ReceiptRequest::Receipt {
        receipt: ByteBuf::from(good.bytes.clone()),
    })
    .expect("encodes");
    let deletion_request = cbor::to_vec(&ReceiptRequest::Deletion {
        notice: ByteBuf::from(notice.bytes.clone()),
    })
    .expect("encodes");
    let countersigned = cbor::to_vec(&ReceiptResponse::Countersigned {
        ack: ByteBuf::from(ack.bytes.clone()),
    })
    .expect("encodes");
    let refused = cbor::to_vec(&ReceiptResponse::Refused {
        reason: "this node served no transfer of 38 bytes of dataset 5a5a… to you".into(),
    })
    .expect("encodes");
    let unknown_kind = cbor::to_vec(&ciborium::Value::Map(vec![(
        ciborium::Value::Text("kind".into()),
        ciborium::Value::Text("gossip".into()),
    )]))
    .expect("encodes");

    let raw: Vec<(
        &'static str,
        &'static str,
        &'static str,
        Vec<u8>,
        &'static str,
    )> = vec![
        (
            "receipt",
            "receipt",
            "a receipt for a granted transfer: invocation, purpose, retention",
            good.bytes.clone(),
            "valid",
        ),
        (
            "receipt-open-data",
            "receipt",
            "a receipt for open data: no invocation, purpose or retention",
            open.bytes.clone(),
            "valid",
        ),
        (
            "ack",
            "ack",
            "the provider's counter-signature of `receipt`",
            ack.bytes.clone(),
            "valid",
        ),
        (
            "bundle",
            "bundle",
            "`receipt` with `ack`: what a receipt file holds",
            bundle,
            "valid",
        ),
        (
            "deletion",
            "deletion",
            "the receiver deleted the data of `receipt` after 30 days",
            notice.bytes.clone(),
            "valid",
        ),
        (
            "flipped-signature-bit",
            "receipt",
            "`receipt` with one signature bit flipped",
            flipped,
            "envelope",
        ),
        (
            "altered-bytes",
            "receipt",
            "`receipt`'s signature over a payload claiming one byte more",
            {
                // The array head, byte-string head and signature (67 bytes) of `receipt`, then
                // the signed map of `altered`.
                let signed = envelope::seal(&receiver, RECEIPT_TAG, &altered).expect("seals");
                [&good.bytes[..67], &signed[67..]].concat()
            },
            "envelope",
        ),
        (
            "signed-by-stranger",
            "receipt",
            "names the receiver as issuer but is signed by a third key",
            forged_by_stranger,
            "envelope",
        ),
        (
            "end-before-start",
            "receipt",
            "end earlier than start",
            backwards,
            "rule",
        ),
        (
            "trailing-byte",
            "receipt",
            "one byte after the envelope",
            trailing,
            "envelope",
        ),
        (
            "deletion-is-not-a-receipt",
            "receipt",
            "a deletion notice presented as a receipt: wrong type tag",
            deletion_as_receipt,
            "envelope",
        ),
        (
            "ack-of-another-receipt",
            "bundle",
            "`receipt` with the counter-signature of a different receipt",
            mismatched,
            "mismatch",
        ),
        (
            "request-receipt",
            "request",
            "a receipt request on /cix/receipt/1",
            request,
            "valid",
        ),
        (
            "request-deletion",
            "request",
            "a deletion notice request on /cix/receipt/1",
            deletion_request,
            "valid",
        ),
        (
            "request-profile",
            "request",
            "a profile request on /cix/receipt/1",
            cbor::to_vec(&ReceiptRequest::Profile).expect("encodes"),
            "valid",
        ),
        (
            "request-unknown-kind",
            "request",
            "a request of a kind this revision does not know",
            unknown_kind,
            "payload",
        ),
        (
            "response-countersigned",
            "response",
            "the counter-signature answer",
            countersigned,
            "valid",
        ),
        (
            "response-noted",
            "response",
            "the answer to a deletion notice",
            cbor::to_vec(&ReceiptResponse::Noted).expect("encodes"),
            "valid",
        ),
        (
            "response-refused",
            "response",
            "a refusal with its reason",
            refused,
            "valid",
        ),
    ];
    raw.into_iter()
        .map(|(name, kind, description, bytes, want)| {
            let (found, id) = verdict(kind, &bytes);
            assert_eq!(found, want, "{name}: the decoder says {found}");
            Case {
                name,
                kind,
                description,
                bytes: hex::encode(&bytes),
                verdict: want,
                id: id.map(hex::encode),
            }
        })
        .collect()
}

/// The file's contents.
pub(crate) fn generate() -> String {
    let file = File {
        about: "receipts (cix/receipt@1), counter-signatures (cix/receipt-ack@1), bundles, deletion notices (cix/deletion@1) and /cix/receipt/1 messages; see specs/receipts.md",
        regenerate: "cargo run -p cix-protocol --example receipt_vectors",
        provider_seed: hex::encode(PROVIDER_SEED),
        receiver_seed: hex::encode(RECEIVER_SEED),
        vectors: cases(),
    };
    let mut text = serde_json::to_string_pretty(&file).expect("plain data");
    text.push('\n');
    text
}

#[allow(dead_code)] // unused when the test includes this file
fn main() -> std::io::Result<()> {
    std::fs::write(path(), generate())?;
    println!("wrote {}", path().display());
    Ok(())
}
