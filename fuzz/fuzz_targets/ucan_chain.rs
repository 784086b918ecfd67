//! Whole proof chains as a transfer request presents them: an invocation and its delegations,
//! through both validators (UCAN 1.0 with the cix profile, and UCAN 1.0 alone) and the caching
//! verifier, which must agree.
//!
//! Input: pieces, each a 2-byte big-endian length then that many bytes; the first piece is the
//! invocation, the rest its proofs (at most 16).
#![no_main]

use cix_protocol::ucan::{self, Verifier};
use libfuzzer_sys::fuzz_target;

fn pieces(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < 17 {
        let len = u16::from_be_bytes([data[0], data[1]]) as usize;
        data = &data[2..];
        let take = len.min(data.len());
        out.push(data[..take].to_vec());
        data = &data[take..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut parts = pieces(data);
    if parts.is_empty() {
        return;
    }
    let invocation = parts.remove(0);
    let now = 1_800_000_000;
    let plain = ucan::validate(&invocation, &parts, now).map(|v| v.executor());
    let spec = ucan::validate_spec(&invocation, &parts, now).map(|v| v.executor());
    let mut verifier = Verifier::with_capacity(8);
    let cached = verifier
        .validate(&invocation, &parts, now)
        .map(|v| v.executor());
    let again = verifier
        .validate(&invocation, &parts, now)
        .map(|v| v.executor());
    assert_eq!(
        plain.is_ok(),
        cached.is_ok(),
        "verifier disagrees with validate"
    );
    assert_eq!(
        cached.is_ok(),
        again.is_ok(),
        "verifier's cache changed the verdict"
    );
    if plain.is_ok() {
        assert!(
            spec.is_ok(),
            "the cix profile accepted what UCAN 1.0 refuses"
        );
    }
    // Revocations of any delegation in the chain must be checkable on whatever decoded.
    let chain: Vec<_> = parts
        .iter()
        .filter_map(|p| ucan::Delegation::decode(p).ok())
        .collect();
    if let Some((_, cid)) = chain.first() {
        let _ = cid.as_bytes();
    }
});
