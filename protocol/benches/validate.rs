//! How many invocations one core validates per second, cold and warm.
//!
//! ```text
//! cargo bench -p cix-protocol --bench validate
//! ```
//!
//! - **baseline**: `verify_strict` of one Ed25519 signature over a token-sized message, the key
//!   already decoded: the floor every token costs at least once.
//! - **cold**: [`ucan::validate`] on an invocation with a chain of three delegations (owner to
//!   agency to agency to holder): four tokens decoded, four signatures checked, every time.
//! - **warm**: [`ucan::Verifier::validate`] on fresh invocations over the same chain, whose
//!   delegations are cached: one token decoded and one signature checked per invocation.
//! - **invocation decode alone**: [`Invocation::decode`] (strict decoding and the signature
//!   check) on the same invocations, the floor of a warm validation.
//!
//! Every invocation is distinct (its own nonce), as it is on a real node; all are made before
//! timing starts. Each figure is the best of a few timed rounds, on one thread. A plain `main`
//! (`harness = false`) so that `cargo test` never runs it and no benchmark crate is needed.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cix_protocol::identity::Keypair;
use cix_protocol::ucan::{self, Cid, Delegation, Invocation, Policy, Verifier, CMD_FETCH};

/// The moment every token is validated at.
const NOW: i64 = 1_800_000_000;
/// Delegations between the owner and the invoker.
const CHAIN_DEPTH: usize = 3;
/// Distinct invocations prepared; the timed loops cycle through them.
const INVOCATIONS: usize = 1000;
/// Length of one timed round.
const ROUND: Duration = Duration::from_millis(700);
/// Timed rounds per figure; the best counts (the machine may be shared).
const ROUNDS: usize = 3;

fn main() {
    let (invocations, proofs) = workload();

    let baseline = baseline_rate(&invocations[0]);

    // The floor of a warm validation: the invocation itself, decoded and verified.
    let decode = best_rate(|i| {
        let inv = &invocations[i % invocations.len()];
        Invocation::decode(black_box(inv)).is_ok()
    });

    let cold = best_rate(|i| {
        let inv = &invocations[i % invocations.len()];
        ucan::validate(black_box(inv), black_box(&proofs), NOW).is_ok()
    });

    let mut verifier = Verifier::new();
    if let Err(e) = verifier.validate(&invocations[0], &proofs, NOW) {
        panic!("the benchmark chain does not validate: {e}");
    }
    let warm = best_rate(|i| {
        let inv = &invocations[i % invocations.len()];
        verifier
            .validate(black_box(inv), black_box(&proofs), NOW)
            .is_ok()
    });

    println!("cix token validation, one core, chain depth {CHAIN_DEPTH}, best of {ROUNDS}");
    println!("  baseline ed25519 verify_strict: {baseline:>9.0} /s");
    println!("  invocation decode alone:          {decode:>9.0} /s");
    println!("  cold invocations (4 signatures):  {cold:>9.0} /s  target 10000");
    println!("  warm invocations (cached chain):  {warm:>9.0} /s  target 50000");
    println!(
        "  cold / baseline: {:.3}   (4 signatures each: at most 0.25)",
        cold / baseline
    );
    println!(
        "  warm / baseline: {:.3}   (1 signature each: at most 1)",
        warm / baseline
    );
    println!("  warm / cold:     {:.2}", warm / cold);
    println!("  warm / invocation decode: {:.3}", warm / decode);
}

/// The chain's tokens, and [`INVOCATIONS`] invocations that each validate with it.
fn workload() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let owner = Keypair::from_seed([1; 32]);
    let mut issuer = owner.clone();
    let (mut proofs, mut cids): (Vec<Vec<u8>>, Vec<Cid>) = (Vec::new(), Vec::new());
    for hop in 0..CHAIN_DEPTH {
        let next = Keypair::from_seed([hop as u8 + 2; 32]);
        let dlg = Delegation {
            iss: issuer.did(),
            aud: next.did(),
            sub: Some(owner.did()),
            cmd: CMD_FETCH.into(),
            pol: Policy::dataset_equals("7f3a9c0d5e6b4a1f8e2d3c4b5a697887"),
            nonce: vec![hop as u8; 16],
            exp: Some(NOW + 30 * 86_400),
            nbf: None,
            meta: None,
        };
        let (bytes, cid) = seal(dlg.seal(&issuer));
        proofs.push(bytes);
        cids.push(cid);
        issuer = next;
    }
    let invocations = (0..INVOCATIONS)
        .map(|n| {
            let inv = Invocation {
                iss: issuer.did(),
                sub: owner.did(),
                aud: None,
                cmd: CMD_FETCH.into(),
                args: BTreeMap::from([(
                    "dataset".to_string(),
                    "7f3a9c0d5e6b4a1f8e2d3c4b5a697887".into(),
                )]),
                prf: cids.clone(),
                exp: Some(NOW + 60),
                iat: Some(NOW),
                nonce: (n as u128).to_be_bytes().to_vec(),
                meta: None,
                cause: None,
            };
            seal(inv.seal(&issuer)).0
        })
        .collect();
    (invocations, proofs)
}

fn seal(sealed: Result<(Vec<u8>, Cid), ucan::TokenError>) -> (Vec<u8>, Cid) {
    sealed.unwrap_or_else(|e| panic!("cannot seal a benchmark token: {e}"))
}

/// Raw Ed25519 `verify_strict` per second over the invocation's signed bytes.
fn baseline_rate(token: &[u8]) -> f64 {
    let key = Keypair::from_seed([9; 32]);
    let public = ed25519_dalek::VerifyingKey::from_bytes(&key.public().to_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let message = &token[67..];
    let signature = ed25519_dalek::Signature::from_bytes(&key.sign(message));
    best_rate(|_| {
        public
            .verify_strict(black_box(message), black_box(&signature))
            .is_ok()
    })
}

/// Calls `op` with 0, 1, 2, … for [`ROUND`], [`ROUNDS`] times, and returns the best calls per
/// second. Panics if `op` ever returns false: a benchmark of failures measures nothing.
fn best_rate(mut op: impl FnMut(usize) -> bool) -> f64 {
    let mut best = 0f64;
    let mut i = 0usize;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < ROUND {
            // Check the clock once per batch, so that reading it costs next to nothing.
            for _ in 0..16 {
                assert!(op(i), "operation {i} failed");
                i += 1;
                calls += 1;
            }
        }
        best = best.max(calls as f64 / start.elapsed().as_secs_f64());
    }
    best
}
