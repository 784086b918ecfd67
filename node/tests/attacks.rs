//! Attacks on `/cix/transfer/1`, one test each, against real nodes over loopback (issue 3).
//!
//! Every test sets up an owner with a shared-named dataset (ISO 37156 5.5.3 named access) and a
//! requester whose request the owner approved, so it holds a genuine delegation. The attacker
//! then builds a `TransferRequest` by hand and sends it; the owner must answer `refused` with
//! the code and a reason naming the fault, and serve nothing (its `transfers_served` and
//! `bytes_served` do not move, `transfers_refused` goes up by one, no byte follows the header).
//! Where it matters a test also shows that the honest request, or the same chain without the
//! flaw, is still served, so a node that refused everything would fail it.
//!
//! The rules attacked are those of DESIGN §5 as `specs/ucan.md` §7 and `specs/transfer.md` §4
//! and §5 write them down: every token strictly and canonically encoded and signed by a key
//! that is not weak (ISO 37156 7.3.2 authenticity); time bounds within `MAX_CLOCK_SKEW_SECS`;
//! the invocation issued by the connected peer, addressed to the owner and used once; each
//! link of the chain issued by the audience of the one before, narrowing the command and
//! keeping every policy statement (9.2 e); no revoked link (9.2 b); bounded tokens, chains and
//! requests (`specs/limits.md`); closed data never leaves its node whatever the tokens say
//! (5.5.2); and personal data goes only to the jurisdictions its entry allows (8.2.2 h).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use ciborium::Value;
use cix_node::access::{self, now};
use cix_node::publish::{publish, PublishRequest};
use cix_node::revoke::{revoke, RevokeRequest};
use cix_node::transfer;
use cix_protocol::catalogue::{DatasetId, SignedEntry};
use cix_protocol::caveats;
use cix_protocol::content::ContentHash;
use cix_protocol::envelope::{self, VARSIG_ED25519_DAG_CBOR};
use cix_protocol::identity::verify_strict;
use cix_protocol::ucan::{self, Cid, Delegation, Invocation, Pattern, Policy, Selector, Statement};
use cix_protocol::wire::{DenyCode, TransferHeader, TransferRequest};
use cix_protocol::{cbor, limits};
use common::{eventually, readings_csv, spawn, spawn_with, TestNode};
use futures::{AsyncReadExt, AsyncWriteExt};

const PURPOSE: &str = "leak detection";

/// An owner, a requester it granted, and optionally a third agency with no grant of its own.
struct World {
    owner: TestNode,
    requester: TestNode,
    third: Option<TestNode>,
    /// The shared-named entry, as the requester holds it.
    signed: SignedEntry,
    /// The owner's genuine delegation to the requester.
    grant: Vec<u8>,
    /// The owner's delegation of `/cix/data` (republication rights, which include fetching) to
    /// the requester, like `grant` otherwise: the root of every chain the requester passes on.
    chain_root: (Vec<u8>, Cid),
    data: Vec<u8>,
}

async fn publish_file(
    owner: &TestNode,
    name: &str,
    data: &[u8],
    spectrum: &str,
    extra: &str,
) -> DatasetId {
    let file = owner.path(name);
    std::fs::write(&file, data).unwrap();
    let published = publish(
        &owner.node,
        PublishRequest {
            resolves: Vec::new(),
            dataset: None,
            path: file,
            title: Some(format!("{spectrum} mains readings")),
            spectrum: Some(spectrum.into()),
            meta: Some(format!("domain = \"water\"\nkind = \"supply\"\n{extra}")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    published.dataset.parse().unwrap()
}

async fn learn(node: &TestNode, id: DatasetId) -> SignedEntry {
    let store = node.node.shared.store.clone();
    eventually(&format!("{} to learn the entry", node.name), || {
        store.latest_entry(&id).unwrap().is_some()
    })
    .await;
    store.latest_entry(&id).unwrap().unwrap()
}

async fn world(with_third: bool) -> World {
    common::init_tracing();
    let owner = spawn("Water Board", vec![]).await;
    let boot = vec![owner.addr().await];
    let requester = spawn("Transit Authority", boot.clone()).await;
    let third = if with_third {
        Some(spawn("Unnamed Contractor", boot).await)
    } else {
        None
    };
    let data = readings_csv(300);
    let id = publish_file(&owner, "mains.csv", &data, "shared-named", "").await;
    let signed = learn(&requester, id).await;
    let asked = access::request(&requester.node, id, PURPOSE, false)
        .await
        .unwrap();
    assert_eq!(asked.status, "pending", "{asked:?}");
    let queued = owner.node.shared.store.requests_in().unwrap();
    access::approve(&owner.node.shared, &queued[0].id).unwrap();
    let asked = access::request(&requester.node, id, "", false)
        .await
        .unwrap();
    assert_eq!(asked.status, "granted", "{asked:?}");
    let grant = requester
        .node
        .shared
        .store
        .request_out(&id)
        .unwrap()
        .unwrap()
        .delegation;
    let chain_root = {
        let mut d = Delegation::decode(&grant).unwrap().0;
        d.nonce = ucan::fresh_nonce();
        d.cmd = ucan::CMD_DATA.into();
        d.seal(&owner.node.shared.key).unwrap()
    };
    World {
        owner,
        requester,
        third,
        signed,
        grant,
        chain_root,
        data,
    }
}

/// The invocation an honest `by` signs to fetch `dataset`'s `content` from `owner` under `prf`.
fn invocation_for(
    by: &TestNode,
    owner: &TestNode,
    dataset: DatasetId,
    content: ContentHash,
    prf: Vec<Cid>,
) -> Invocation {
    common::fetch_invocation(
        by,
        &owner.node.did(),
        &dataset.to_string(),
        &content,
        PURPOSE,
        prf,
    )
}

fn seal_inv(by: &TestNode, inv: &Invocation) -> Vec<u8> {
    inv.seal(&by.node.shared.key).unwrap().0
}

fn request_for(
    by: &TestNode,
    dataset: DatasetId,
    content: ContentHash,
    invocation: Vec<u8>,
    proofs: Vec<Vec<u8>>,
) -> TransferRequest {
    TransferRequest {
        dataset,
        content,
        ranges: vec![],
        invocation: Some(invocation),
        proofs: proofs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        profile: Some(by.node.shared.profile.bytes.clone()),
    }
}

/// Sends `req` from `by` to `owner` and returns the header with every byte that followed it.
async fn send_to(
    owner: &TestNode,
    by: &TestNode,
    req: &TransferRequest,
) -> (TransferHeader, Vec<u8>) {
    let (mut stream, header) = transfer::send_transfer(&by.node, &owner.node.did(), req)
        .await
        .unwrap();
    let mut body = Vec::new();
    // The owner closes the stream after a refusal; a reset counts as the end too.
    let _ = tokio::time::timeout(common::STEP, stream.read_to_end(&mut body))
        .await
        .expect("the owner neither finished nor closed the stream");
    (header, body)
}

/// Sends `req` and asserts it is refused with `code`, a reason containing `words`, and that
/// nothing was served. Returns the reason.
async fn refused_by(
    owner: &TestNode,
    by: &TestNode,
    req: &TransferRequest,
    code: DenyCode,
    words: &str,
) -> String {
    let before = owner.node.shared.stats.snapshot();
    let (header, body) = send_to(owner, by, req).await;
    let after = owner.node.shared.stats.snapshot();
    let reason = match header {
        TransferHeader::Refused { code: got, reason } => {
            assert_eq!(got, code, "wrong code; reason: {reason}");
            assert!(
                reason.contains(words),
                "{words:?} not in the reason {reason:?}"
            );
            reason
        }
        TransferHeader::Ok { .. } => panic!("the attack was served ({} bytes)", body.len()),
    };
    assert!(body.is_empty(), "{} bytes followed a refusal", body.len());
    assert_eq!(after.transfers_served, before.transfers_served, "served");
    assert_eq!(after.bytes_served, before.bytes_served, "bytes served");
    assert_eq!(
        after.transfers_refused,
        before.transfers_refused + 1,
        "refusals"
    );
    reason
}

/// Sends `req` and asserts the whole dataset came back, waiting until the owner counts it.
async fn served_to(owner: &TestNode, by: &TestNode, req: &TransferRequest, data: &[u8]) {
    let before = owner.node.shared.stats.snapshot().transfers_served;
    let (header, body) = send_to(owner, by, req).await;
    assert!(
        matches!(header, TransferHeader::Ok { size, length, projection: None } if size == data.len() as u64 && length == size),
        "expected the data, got {header:?}"
    );
    // The body is the BLAKE3 verified stream of the whole content (transfer.md §2).
    let content = cix_protocol::content::ContentHash::of(data);
    let plain = cix_node::verified::decode_body(&content, data.len() as u64, &[], &body)
        .await
        .unwrap();
    assert_eq!(plain, data);
    let stats = owner.node.shared.stats.clone();
    eventually("the owner to count the transfer", || {
        stats.snapshot().transfers_served == before + 1
    })
    .await;
}

impl World {
    fn dataset(&self) -> DatasetId {
        self.signed.entry.dataset
    }

    fn content(&self) -> ContentHash {
        self.signed.entry.primary().unwrap().content.unwrap()
    }

    fn grant_cid(&self) -> Cid {
        Cid::of_token(&self.grant)
    }

    fn third(&self) -> &TestNode {
        self.third.as_ref().expect("a world with a third agency")
    }

    fn invocation(&self, by: &TestNode, prf: Vec<Cid>) -> Invocation {
        invocation_for(by, &self.owner, self.dataset(), self.content(), prf)
    }

    fn request(&self, by: &TestNode, invocation: Vec<u8>, proofs: Vec<Vec<u8>>) -> TransferRequest {
        request_for(by, self.dataset(), self.content(), invocation, proofs)
    }

    /// The request the requester would honestly send: a fresh invocation under its grant.
    fn honest_request(&self) -> TransferRequest {
        let inv = self.invocation(&self.requester, vec![self.grant_cid()]);
        self.request(
            &self.requester,
            seal_inv(&self.requester, &inv),
            vec![self.grant.clone()],
        )
    }

    async fn refused(
        &self,
        by: &TestNode,
        req: &TransferRequest,
        code: DenyCode,
        words: &str,
    ) -> String {
        refused_by(&self.owner, by, req, code, words).await
    }

    async fn served(&self, by: &TestNode, req: &TransferRequest) {
        served_to(&self.owner, by, req, &self.data).await;
    }

    /// The honest request is still served.
    async fn honest_still_served(&self) {
        self.served(&self.requester, &self.honest_request()).await;
    }

    /// The genuine grant, decoded.
    fn grant_delegation(&self) -> Delegation {
        Delegation::decode(&self.grant).unwrap().0
    }

    /// A delegation the owner signs to the requester, like its grant but edited.
    fn owner_grant(&self, edit: impl FnOnce(&mut Delegation)) -> (Vec<u8>, Cid) {
        let mut d = self.grant_delegation();
        d.nonce = ucan::fresh_nonce();
        edit(&mut d);
        d.seal(&self.owner.node.shared.key).unwrap()
    }

    /// A second link the requester signs from its republication grant to `to`, with `cmd` and
    /// `pol`.
    fn child(&self, to: &TestNode, cmd: &str, pol: Policy) -> (Vec<u8>, Cid) {
        let root = Delegation::decode(&self.chain_root.0).unwrap().0;
        Delegation {
            iss: self.requester.node.did(),
            aud: to.node.did(),
            sub: root.sub,
            cmd: cmd.into(),
            pol,
            nonce: ucan::fresh_nonce(),
            exp: root.exp,
            nbf: None,
            meta: None,
        }
        .seal(&self.requester.node.shared.key)
        .unwrap()
    }

    /// The third agency's request under the chain `[chain_root, child]`.
    fn third_request(&self, child: &(Vec<u8>, Cid)) -> TransferRequest {
        self.third_request_under(&self.chain_root, child)
    }

    /// The third agency's request under the chain `[root, child]`.
    fn third_request_under(
        &self,
        root: &(Vec<u8>, Cid),
        child: &(Vec<u8>, Cid),
    ) -> TransferRequest {
        let third = self.third();
        let inv = self.invocation(third, vec![root.1, child.1]);
        self.request(
            third,
            seal_inv(third, &inv),
            vec![root.0.clone(), child.0.clone()],
        )
    }
}

/// The 64 signature bytes of a token start after `82 58 40` (array(2), bytes(64)).
fn signature_at(token: &[u8]) -> std::ops::Range<usize> {
    assert_eq!(
        &token[..3],
        &[0x82, 0x58, 0x40],
        "not a canonical token prefix"
    );
    3..67
}

// 1. ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_forged_signature() {
    let w = world(false).await;

    // One bit of the invocation's signature flipped.
    let mut inv = seal_inv(
        &w.requester,
        &w.invocation(&w.requester, vec![w.grant_cid()]),
    );
    let at = signature_at(&inv).start + 17;
    inv[at] ^= 0x01;
    let req = w.request(&w.requester, inv, vec![w.grant.clone()]);
    w.refused(
        &w.requester,
        &req,
        DenyCode::NoGrant,
        "invalid signature on invocation",
    )
    .await;

    // One bit of the delegation's signature flipped; the invocation names the forged token.
    let mut forged = w.grant.clone();
    let at = signature_at(&forged).start + 40;
    forged[at] ^= 0x80;
    let inv = w.invocation(&w.requester, vec![Cid::of_token(&forged)]);
    let req = w.request(&w.requester, seal_inv(&w.requester, &inv), vec![forged]);
    w.refused(
        &w.requester,
        &req,
        DenyCode::NoGrant,
        "invalid signature on delegation",
    )
    .await;

    w.honest_still_served().await;
}

// 2. ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_wrong_audience() {
    let w = world(false).await;
    let elsewhere = cix_protocol::identity::Keypair::generate().did();
    let mut inv = w.invocation(&w.requester, vec![w.grant_cid()]);
    inv.aud = Some(elsewhere);
    let req = w.request(
        &w.requester,
        seal_inv(&w.requester, &inv),
        vec![w.grant.clone()],
    );
    w.refused(
        &w.requester,
        &req,
        DenyCode::NoGrant,
        "addressed to another node",
    )
    .await;
    w.honest_still_served().await;
}

// 3. ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_expired() {
    let w = world(false).await;
    let past = now() - ucan::MAX_CLOCK_SKEW_SECS - 2;

    // An invocation that expired just beyond the skew allowance.
    let mut inv = w.invocation(&w.requester, vec![w.grant_cid()]);
    inv.iat = Some(past - 60);
    inv.exp = Some(past);
    let req = w.request(
        &w.requester,
        seal_inv(&w.requester, &inv),
        vec![w.grant.clone()],
    );
    w.refused(
        &w.requester,
        &req,
        DenyCode::NoGrant,
        "invocation expired at",
    )
    .await;

    // A grant of the owner's that expired just beyond it, under a fresh invocation.
    let (old, old_cid) = w.owner_grant(|d| d.exp = Some(past));
    let inv = w.invocation(&w.requester, vec![old_cid]);
    let req = w.request(&w.requester, seal_inv(&w.requester, &inv), vec![old]);
    w.refused(
        &w.requester,
        &req,
        DenyCode::NoGrant,
        &format!("delegation {old_cid} expired at {past}"),
    )
    .await;

    w.honest_still_served().await;
}

// 4. ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_not_yet_valid() {
    let w = world(false).await;
    let later = now() + ucan::MAX_CLOCK_SKEW_SECS + 30;
    let (early, early_cid) = w.owner_grant(|d| d.nbf = Some(later));
    let inv = w.invocation(&w.requester, vec![early_cid]);
    let req = w.request(&w.requester, seal_inv(&w.requester, &inv), vec![early]);
    w.refused(
        &w.requester,
        &req,
        DenyCode::NoGrant,
        &format!("delegation {early_cid} is not valid before {later}"),
    )
    .await;

    // Within the skew allowance the same kind of grant is in force.
    let (soon, soon_cid) = w.owner_grant(|d| d.nbf = Some(now() + ucan::MAX_CLOCK_SKEW_SECS / 2));
    let inv = w.invocation(&w.requester, vec![soon_cid]);
    let req = w.request(&w.requester, seal_inv(&w.requester, &inv), vec![soon]);
    w.served(&w.requester, &req).await;
}

// 5. ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_command_widened_by_child() {
    let w = world(true).await;
    let pol = w.grant_delegation().pol;

    // The requester hands the third agency `/cix`, wider than the `/cix/data` it holds.
    let widened = w.child(w.third(), "/cix", pol.clone());
    w.refused(
        w.third(),
        &w.third_request(&widened),
        DenyCode::NoGrant,
        "command \"/cix\" is not covered by \"/cix/data\"",
    )
    .await;

    // The same hand-on with the command it holds is served to the third agency.
    let faithful = w.child(w.third(), ucan::CMD_FETCH, pol);
    w.served(w.third(), &w.third_request(&faithful)).await;
}

// 6. ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_policy_loosened_by_child() {
    let w = world(true).await;
    let pol = w.grant_delegation().pol;
    assert!(
        caveats::pinned_text(&pol, caveats::ARG_DATASET).is_some(),
        "the grant pins the dataset in its first statement"
    );
    let rest: Vec<Statement> = pol.statements()[1..].to_vec();

    // The `.dataset` statement dropped: every other caveat kept.
    let dropped = w.child(w.third(), ucan::CMD_FETCH, Policy::new(rest.clone()));
    // The `.dataset` statement replaced by one any dataset meets.
    let mut any = vec![Statement::Like(
        Selector::field(caveats::ARG_DATASET),
        Pattern::parse("*"),
    )];
    any.extend(rest);
    let replaced = w.child(w.third(), ucan::CMD_FETCH, Policy::new(any));
    for child in [dropped, replaced] {
        w.refused(
            w.third(),
            &w.third_request(&child),
            DenyCode::NoGrant,
            &format!("{} drops statement 0 of the policy", child.1),
        )
        .await;
    }

    let faithful = w.child(w.third(), ucan::CMD_FETCH, pol);
    w.served(w.third(), &w.third_request(&faithful)).await;
}

// 6b. -----------------------------------------------------------------------------------------

/// Onward transfer (ISO 37156 9.2 e): a requester granted fetch only (through the owner's
/// queue) hands its grant on, faithfully. Only republication rights may be passed on, so the
/// owner refuses, and the requester's own node will not sign such a hand-on either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_fetch_grant_passed_on() {
    let w = world(true).await;
    let root = w.grant_delegation();
    assert_eq!(root.cmd, ucan::CMD_FETCH);
    let child = Delegation {
        iss: w.requester.node.did(),
        aud: w.third().node.did(),
        sub: root.sub,
        cmd: ucan::CMD_FETCH.into(),
        pol: root.pol.clone(),
        nonce: ucan::fresh_nonce(),
        exp: root.exp,
        nbf: None,
        meta: None,
    }
    .seal(&w.requester.node.shared.key)
    .unwrap();
    let req = w.third_request_under(&(w.grant.clone(), w.grant_cid()), &child);
    w.refused(
        w.third(),
        &req,
        DenyCode::NoGrant,
        "only republication rights (/cix/data/republish) may be passed on",
    )
    .await;
    let err = cix_node::tokens::delegate(
        &w.requester.node.shared,
        &cix_node::tokens::DelegateRequest {
            cid: w.grant_cid().to_string(),
            to: w.third().node.did().to_string(),
            days: None,
            purpose: None,
            command: None,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("passed on only under republication rights"),
        "{err}"
    );
    w.honest_still_served().await;
}

// 7. ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_replayed_invocation() {
    let w = world(false).await;
    let req = w.honest_request();
    w.served(&w.requester, &req).await;
    w.refused(
        &w.requester,
        &req,
        DenyCode::NoGrant,
        "already used (replay refused)",
    )
    .await;
    w.honest_still_served().await;
}

// 8. ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_delegation_used_by_another_peer() {
    let w = world(true).await;
    let third = w.third();

    // The third agency presents the requester's grant under an invocation of its own.
    let inv = w.invocation(third, vec![w.grant_cid()]);
    let req = w.request(third, seal_inv(third, &inv), vec![w.grant.clone()]);
    w.refused(
        third,
        &req,
        DenyCode::NoGrant,
        &format!(
            "invocation is issued by {}, but its proof is addressed to {}",
            third.node.did(),
            w.requester.node.did()
        ),
    )
    .await;

    // It sends the requester's own invocation, captured before use, over its connection.
    let captured = w.honest_request();
    let mut stolen = captured.clone();
    stolen.profile = Some(third.node.shared.profile.bytes.clone());
    w.refused(
        third,
        &stolen,
        DenyCode::NoGrant,
        "not issued by the connected peer",
    )
    .await;
    // The theft did not spend it: the requester itself is still served with it.
    w.served(&w.requester, &captured).await;
}

// 9. ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_revoked_link() {
    let w = world(false).await;
    w.honest_still_served().await;
    let cid = w.grant_cid();
    revoke(
        &w.owner.node,
        &RevokeRequest {
            cid: cid.to_string(),
            reason: Some("contract ended".into()),
        },
    )
    .await
    .unwrap();
    let store = w.owner.node.shared.store.clone();
    eventually("the owner to hold the revocation", || {
        !store.revocations_of(&cid).unwrap().is_empty()
    })
    .await;
    let reason = w
        .refused(
            &w.requester,
            &w.honest_request(),
            DenyCode::Revoked,
            &format!(
                "the delegation {cid} from {} was revoked by",
                w.owner.node.did()
            ),
        )
        .await;
    assert!(reason.contains("contract ended"), "{reason}");
}

// 10. -----------------------------------------------------------------------------------------

fn ed25519_fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ed25519");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: fixture folder {} is absent", dir.display());
        None
    }
}

/// The first small-order public key among the speccheck cases.
fn weak_fixture_key(dir: &std::path::Path) -> [u8; 32] {
    let text = std::fs::read_to_string(dir.join("speccheck-cases.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    cases
        .iter()
        .filter_map(|c| c["pub_key"].as_str())
        .map(|k| <[u8; 32]>::try_from(hex::decode(k).unwrap()).unwrap())
        .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_ok_and(|vk| vk.is_weak()))
        .expect("the speccheck cases hold a small-order key")
}

/// `did:key:z…` for any 32 bytes, weak or not (the protocol crate refuses to make one of a weak
/// key, which is the point).
fn did_key_text(key: &[u8; 32]) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut raw = vec![0xed, 0x01];
    raw.extend_from_slice(key);
    // Base58btc: repeated division of the big-endian number by 58.
    let mut digits: Vec<u8> = Vec::new();
    for &byte in &raw {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = raw.iter().take_while(|b| **b == 0).count();
    let text: String = std::iter::repeat_n('1', zeros)
        .chain(digits.iter().rev().map(|d| ALPHABET[*d as usize] as char))
        .collect();
    format!("did:key:z{text}")
}

/// The eight points of small order, as canonical encodings.
const SMALL_ORDER_POINTS: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
];

/// An invocation "issued" by the weak key, with a signature (small-order R, S = 0) that
/// ed25519-dalek's non-strict `verify` accepts and `verify_strict` refuses.
fn weak_key_invocation(w: &World, weak: &[u8; 32]) -> Vec<u8> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(weak).unwrap();
    let iss = Value::Text(did_key_text(weak));
    // For a given message one R in eight passes, on average; vary the nonce until one does.
    for _ in 0..200 {
        let mut payload = w.invocation(&w.requester, vec![w.grant_cid()]).to_value();
        let Value::Map(fields) = &mut payload else {
            unreachable!()
        };
        for (k, v) in fields.iter_mut() {
            if k.as_text() == Some("iss") {
                *v = iss.clone();
            }
        }
        let signed = Value::Map(vec![
            (
                Value::Text("h".into()),
                Value::Bytes(VARSIG_ED25519_DAG_CBOR.to_vec()),
            ),
            (Value::Text(ucan::INVOCATION_TAG.into()), payload),
        ]);
        let message = cbor::value_to_vec(&signed).unwrap();
        for r in SMALL_ORDER_POINTS {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&hex::decode(r).unwrap());
            let lenient = ed25519_dalek::Signature::from_bytes(&sig);
            if ed25519_dalek::Verifier::verify(&vk, &message, &lenient).is_ok() {
                assert!(verify_strict(weak, &message, &sig).is_err());
                let mut token = vec![0x82, 0x58, 0x40];
                token.extend_from_slice(&sig);
                token.extend_from_slice(&message);
                return token;
            }
        }
    }
    panic!("no small-order signature passed non-strict verification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_weak_key() {
    let Some(dir) = ed25519_fixtures() else {
        return;
    };
    let weak = weak_fixture_key(&dir);
    let w = world(false).await;
    let token = weak_key_invocation(&w, &weak);
    let req = w.request(&w.requester, token, vec![w.grant.clone()]);
    w.refused(
        &w.requester,
        &req,
        DenyCode::NoGrant,
        "\"iss\" is not an acceptable did: did:key holds an unusable key: weak (small-order) public key",
    )
    .await;
    w.honest_still_served().await;
}

// 11. -----------------------------------------------------------------------------------------

/// The token with the payload's `exp` (a 4-byte integer) written with 8 bytes.
fn long_exp(token: &[u8]) -> Vec<u8> {
    let key = [0x63, b'e', b'x', b'p', 0x1a];
    let at = token
        .windows(key.len())
        .position(|w| w == key)
        .expect("a 4-byte exp");
    let mut out = token[..at + 4].to_vec();
    out.push(0x1b);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&token[at + 5..]);
    out
}

/// The token with the payload's fields written in reverse order.
fn reordered(token: &[u8]) -> Vec<u8> {
    let mut value: Value = ciborium::from_reader(token).unwrap();
    let Value::Array(parts) = &mut value else {
        unreachable!()
    };
    let Value::Map(signed) = &mut parts[1] else {
        unreachable!()
    };
    let Value::Map(payload) = &mut signed[1].1 else {
        unreachable!()
    };
    payload.reverse();
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).unwrap();
    out
}

/// The token with its signature's length written in two bytes (`59 00 40` for `58 40`).
fn long_signature_length(token: &[u8]) -> Vec<u8> {
    signature_at(token);
    let mut out = vec![0x82, 0x59, 0x00, 0x40];
    out.extend_from_slice(&token[3..]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_non_canonical_encoding() {
    let w = world(false).await;
    // Each variant keeps the owner's signature, which still covers the canonical re-encoding;
    // its CID is new, which is what an attacker wants (a revocation or a replay record names
    // the canonical token's CID).
    for variant in [
        long_exp(&w.grant),
        reordered(&w.grant),
        long_signature_length(&w.grant),
    ] {
        assert_ne!(variant, w.grant);
        let inv = w.invocation(&w.requester, vec![Cid::of_token(&variant)]);
        let req = w.request(&w.requester, seal_inv(&w.requester, &inv), vec![variant]);
        let reason = w
            .refused(&w.requester, &req, DenyCode::NoGrant, "not canonical")
            .await;
        assert!(reason.contains("malformed delegation"), "{reason}");
    }

    // A used invocation re-encoded to dodge the replay record.
    let req = w.honest_request();
    w.served(&w.requester, &req).await;
    let mut again = req.clone();
    again.invocation = Some(long_signature_length(req.invocation.as_ref().unwrap()));
    let reason = w
        .refused(&w.requester, &again, DenyCode::NoGrant, "not canonical")
        .await;
    assert!(reason.contains("malformed invocation"), "{reason}");

    w.honest_still_served().await;
}

// 12. -----------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_oversized_token_chain_and_request() {
    let w = world(false).await;
    let key = &w.requester.node.shared.key;
    let padding = || {
        Some(BTreeMap::from([(
            "padding".to_string(),
            Value::Bytes(vec![0; ucan::MAX_TOKEN_BYTES]),
        )]))
    };
    let too_large = format!("exceeds the limit of {} bytes", ucan::MAX_TOKEN_BYTES);

    // An invocation over MAX_TOKEN_BYTES (signed through the envelope, which seal would refuse).
    let mut inv = w.invocation(&w.requester, vec![w.grant_cid()]);
    inv.meta = padding();
    let big = envelope::seal(key, ucan::INVOCATION_TAG, &inv.to_value()).unwrap();
    assert!(big.len() > ucan::MAX_TOKEN_BYTES);
    let req = w.request(&w.requester, big, vec![w.grant.clone()]);
    w.refused(&w.requester, &req, DenyCode::NoGrant, &too_large)
        .await;

    // A delegation over it: the requester's link to itself, padded.
    let root = Delegation::decode(&w.chain_root.0).unwrap().0;
    let link = |meta| Delegation {
        iss: w.requester.node.did(),
        aud: w.requester.node.did(),
        sub: root.sub,
        cmd: ucan::CMD_DATA.into(),
        pol: root.pol.clone(),
        nonce: ucan::fresh_nonce(),
        exp: root.exp,
        nbf: None,
        meta,
    };
    let big = envelope::seal(key, ucan::DELEGATION_TAG, &link(padding()).to_value()).unwrap();
    assert!(big.len() > ucan::MAX_TOKEN_BYTES);
    let inv = w.invocation(&w.requester, vec![w.chain_root.1, Cid::of_token(&big)]);
    let req = w.request(
        &w.requester,
        seal_inv(&w.requester, &inv),
        vec![w.chain_root.0.clone(), big],
    );
    w.refused(&w.requester, &req, DenyCode::NoGrant, &too_large)
        .await;

    // Chains of the republication grant and links from the requester to itself: every link
    // valid.
    let chain = |len: usize| {
        let mut tokens = vec![w.chain_root.0.clone()];
        tokens.extend((1..len).map(|_| link(None).seal(key).unwrap().0));
        tokens
    };
    let cids = |tokens: &[Vec<u8>]| tokens.iter().map(|t| Cid::of_token(t)).collect::<Vec<_>>();
    // One link over MAX_CHAIN_LEN.
    let long = chain(ucan::MAX_CHAIN_LEN + 1);
    let inv = w.invocation(&w.requester, cids(&long));
    let req = w.request(&w.requester, seal_inv(&w.requester, &inv), long.clone());
    w.refused(
        &w.requester,
        &req,
        DenyCode::NoGrant,
        "proof chain too long",
    )
    .await;
    // The same invocation with one proof fewer presented: refused by the chain bound, before
    // any proof is looked up.
    let req = w.request(
        &w.requester,
        seal_inv(&w.requester, &inv),
        long[..ucan::MAX_CHAIN_LEN].to_vec(),
    );
    w.refused(
        &w.requester,
        &req,
        DenyCode::NoGrant,
        &format!(
            "proof chain of {} delegations exceeds the limit of {}",
            ucan::MAX_CHAIN_LEN + 1,
            ucan::MAX_CHAIN_LEN
        ),
    )
    .await;
    // Exactly MAX_CHAIN_LEN links is served.
    let full = chain(ucan::MAX_CHAIN_LEN);
    let inv = w.invocation(&w.requester, cids(&full));
    let req = w.request(&w.requester, seal_inv(&w.requester, &inv), full);
    w.served(&w.requester, &req).await;

    // A request over MAX_TRANSFER_REQUEST_BYTES: only its length prefix is sent. The owner
    // must close the stream at once, without a header and without waiting for (or allocating)
    // the body.
    let before = w.owner.node.shared.stats.snapshot();
    for declared in [limits::MAX_TRANSFER_REQUEST_BYTES as u32 + 1, u32::MAX] {
        let mut stream = transfer::open_transfer_stream(&w.requester.node, &w.owner.node.did())
            .await
            .unwrap();
        stream.write_all(&declared.to_be_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        let answer = tokio::time::timeout(
            transfer::REQUEST_READ_TIMEOUT / 4,
            cix_node::codec::read_message::<TransferHeader, _>(
                &mut stream,
                limits::MAX_TRANSFER_HEADER_BYTES,
            ),
        )
        .await
        .expect("the owner waited for the body of an over-limit request");
        assert!(answer.is_err(), "a header came back: {answer:?}");
    }
    let after = w.owner.node.shared.stats.snapshot();
    assert_eq!(after.transfers_served, before.transfers_served);
    assert_eq!(after.bytes_served, before.bytes_served);

    w.honest_still_served().await;
}

// 13. -----------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_closed_dataset_with_a_perfect_chain() {
    let w = world(false).await;
    let secret = readings_csv(50);
    let id = publish_file(&w.owner, "valves.csv", &secret, "closed", "").await;
    let content = w.owner.node.shared.store.own(&id).unwrap().unwrap().content;
    // The owner's own key signs a grant naming the closed dataset, to the requester.
    let t = now();
    let (grant, cid) = Delegation {
        iss: w.owner.node.did(),
        aud: w.requester.node.did(),
        sub: Some(w.owner.node.did()),
        cmd: ucan::CMD_FETCH.into(),
        pol: Policy::dataset_equals(&id.to_string()),
        nonce: ucan::fresh_nonce(),
        exp: Some(t + 3600),
        nbf: None,
        meta: None,
    }
    .seal(&w.owner.node.shared.key)
    .unwrap();
    for asked in [content, ContentHash([0; 32])] {
        let inv = invocation_for(&w.requester, &w.owner, id, asked, vec![cid]);
        let req = request_for(
            &w.requester,
            id,
            asked,
            seal_inv(&w.requester, &inv),
            vec![grant.clone()],
        );
        w.refused(
            &w.requester,
            &req,
            DenyCode::Closed,
            "closed (ISO 37156 5.5.2): it never leaves its owner's node",
        )
        .await;
    }
    w.honest_still_served().await;
}

// 14. -----------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_jurisdiction_outside_the_datasets_list() {
    common::init_tracing();
    let owner = spawn_with("Gemeente Waterbedrijf", vec![], |c| {
        c.jurisdiction = "NL".into()
    })
    .await;
    let boot = vec![owner.addr().await];
    let abroad = spawn_with("Overseas Analytics", boot.clone(), |c| {
        c.jurisdiction = "US".into()
    })
    .await;
    let neighbour = spawn_with("Waterschap Vlaanderen", boot, |c| {
        c.jurisdiction = "BE".into()
    })
    .await;
    let data = readings_csv(80);
    let id = publish_file(
        &owner,
        "consumers.csv",
        &data,
        "shared-named",
        "allowed_jurisdictions = [\"BE\"]\n",
    )
    .await;
    let content = learn(&abroad, id)
        .await
        .entry
        .primary()
        .unwrap()
        .content
        .unwrap();
    // Grants without a jurisdiction caveat, as one issued before the rule was set would be:
    // only the owner's check of the requester's signed profile stands in the way.
    let grant_to = |to: &TestNode| {
        Delegation {
            iss: owner.node.did(),
            aud: to.node.did(),
            sub: Some(owner.node.did()),
            cmd: ucan::CMD_FETCH.into(),
            pol: Policy::dataset_equals(&id.to_string()),
            nonce: ucan::fresh_nonce(),
            exp: Some(now() + 3600),
            nbf: None,
            meta: None,
        }
        .seal(&owner.node.shared.key)
        .unwrap()
    };
    let request = |by: &TestNode, edit: &dyn Fn(&mut Invocation)| {
        let (grant, cid) = grant_to(by);
        let mut inv = invocation_for(by, &owner, id, content, vec![cid]);
        edit(&mut inv);
        request_for(by, id, content, seal_inv(by, &inv), vec![grant])
    };

    // No profile sent, and none kept from an earlier request: the owner cannot tell where
    // the requester is, so it refuses.
    let mut req = request(&abroad, &|_| {});
    req.profile = None;
    refused_by(
        &owner,
        &abroad,
        &req,
        DenyCode::ProfileRequired,
        "send your signed agency profile",
    )
    .await;

    // In the US by its own signed profile.
    let req = request(&abroad, &|_| {});
    refused_by(
        &owner,
        &abroad,
        &req,
        DenyCode::Jurisdiction,
        "may only go to agencies in BE, NL (ISO 37156 8.2.2 h); your profile places you in US",
    )
    .await;
    // Claiming an allowed jurisdiction in the invocation does not change where it is.
    let req = request(&abroad, &|inv| {
        inv.args
            .insert(caveats::ARG_JURISDICTION.into(), Value::Text("BE".into()));
    });
    refused_by(
        &owner,
        &abroad,
        &req,
        DenyCode::Jurisdiction,
        "places you in US",
    )
    .await;
    // An agency in BE is served under the same kind of grant.
    let req = request(&neighbour, &|_| {});
    served_to(&owner, &neighbour, &req, &data).await;
}
