//! A validator that remembers the delegations whose signatures it has already checked.
//!
//! A serving node sees the same few delegation chains again and again: every fetch by an agency
//! carries the grant it received, and each new invocation names the same proofs. Decoding a
//! delegation and checking its Ed25519 signature depends only on its bytes, and its CID is the
//! SHA2-256 of those bytes, so a CID once verified stays verified. [`Verifier`] keeps such
//! delegations, keyed by CID, and skips decoding and signature checks for them.
//!
//! Everything that depends on the moment or on the other tokens (time bounds, principal
//! alignment, subject, commands, policies, the cix profile) runs on every call, through the very
//! code [`super::validate`] uses: the verdicts are identical, only faster. Proofs must still be
//! presented with each invocation; a delegation that is cached but not presented is
//! `UnavailableProof`, as it would be without a cache.
//!
//! The cache is bounded by [`VERIFIED_CACHE_CAPACITY`] (or the capacity given to
//! [`Verifier::with_capacity`]) and keeps the recently used entries: it holds two generations,
//! looks in both, moves an entry it finds in the old one into the young one, and when the young
//! one is full drops the old one whole and starts a new young one. Each operation is O(1), and
//! an entry used at least once per half-capacity insertions is never dropped.

use std::collections::HashMap;

use super::cid::Cid;
use super::token::{Delegation, TokenError};
use super::validate::{self, Validated, ValidationError};

/// Most verified delegations a [`Verifier`] made by [`Verifier::new`] keeps. A delegation
/// decodes to a few hundred bytes of heap, so a full cache is on the order of a few megabytes.
pub const VERIFIED_CACHE_CAPACITY: usize = 4096;

/// Validates invocations like [`super::validate`] and [`super::validate_spec`], with a bounded
/// cache of delegations whose signatures were already checked.
///
/// ```
/// use std::collections::BTreeMap;
/// use cix_protocol::identity::Keypair;
/// use cix_protocol::ucan::{self, Delegation, Invocation, Policy, Verifier, CMD_FETCH};
///
/// let (owner, requester) = (Keypair::generate(), Keypair::generate());
/// let now = 1_800_000_000;
/// let (grant, grant_cid) = Delegation {
///     iss: owner.did(),
///     aud: requester.did(),
///     sub: Some(owner.did()),
///     cmd: CMD_FETCH.into(),
///     pol: Policy::dataset_equals("water/net3"),
///     nonce: ucan::fresh_nonce(),
///     exp: Some(now + 86_400),
///     nbf: None,
///     meta: None,
/// }
/// .seal(&owner)?;
/// let fetch = |nonce| Invocation {
///     iss: requester.did(),
///     sub: owner.did(),
///     aud: None,
///     cmd: CMD_FETCH.into(),
///     args: BTreeMap::from([("dataset".to_string(), "water/net3".into())]),
///     prf: vec![grant_cid],
///     exp: Some(now + 60),
///     iat: Some(now),
///     nonce,
///     meta: None,
///     cause: None,
/// };
///
/// let mut verifier = Verifier::new();
/// let (first, _) = fetch(ucan::fresh_nonce()).seal(&requester)?;
/// verifier.validate(&first, std::slice::from_ref(&grant), now)?;
/// // The second invocation's proof is not decoded or signature-checked again.
/// let (second, _) = fetch(ucan::fresh_nonce()).seal(&requester)?;
/// verifier.validate(&second, std::slice::from_ref(&grant), now)?;
/// assert_eq!(verifier.hits(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Verifier {
    /// Entries inserted or used since `old` was last dropped.
    young: HashMap<Cid, Delegation>,
    /// The generation before; dropped whole when `young` fills up.
    old: HashMap<Cid, Delegation>,
    /// Entries one generation holds at most: half the capacity.
    generation: usize,
    /// Proofs answered from the cache so far.
    hits: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

impl Verifier {
    /// A verifier keeping up to [`VERIFIED_CACHE_CAPACITY`] delegations.
    pub fn new() -> Verifier {
        Verifier::with_capacity(VERIFIED_CACHE_CAPACITY)
    }

    /// A verifier keeping up to `capacity` delegations (at least two).
    pub fn with_capacity(capacity: usize) -> Verifier {
        let generation = (capacity / 2).max(1);
        Verifier {
            young: HashMap::with_capacity(generation),
            old: HashMap::new(),
            generation,
            hits: 0,
        }
    }

    /// As [`super::validate`]: UCAN 1.0 and the cix profile, same verdicts.
    ///
    /// # Errors
    ///
    /// The [`ValidationError`] [`super::validate`] would return for the same input.
    pub fn validate(
        &mut self,
        invocation: &[u8],
        proofs: &[Vec<u8>],
        now: i64,
    ) -> Result<Validated, ValidationError> {
        validate::check(invocation, proofs, now, true, &mut |cid, bytes| {
            self.proof(cid, bytes)
        })
    }

    /// As [`super::validate_spec`]: UCAN 1.0 alone, same verdicts.
    ///
    /// # Errors
    ///
    /// The [`ValidationError`] [`super::validate_spec`] would return for the same input.
    pub fn validate_spec(
        &mut self,
        invocation: &[u8],
        proofs: &[Vec<u8>],
        now: i64,
    ) -> Result<Validated, ValidationError> {
        validate::check(invocation, proofs, now, false, &mut |cid, bytes| {
            self.proof(cid, bytes)
        })
    }

    /// Delegations held now.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// Whether no delegation is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most delegations held at once.
    pub fn capacity(&self) -> usize {
        self.generation * 2
    }

    /// How many proofs were answered from the cache since this verifier was made.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Forgets every delegation (the hit count stays).
    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }

    /// The delegation whose token bytes are `bytes` (and whose CID, computed by the caller from
    /// those bytes, is `cid`): from the cache, or decoded, signature-checked and remembered.
    /// Failures are not remembered; they are cheap to find again and must be reported again.
    fn proof(&mut self, cid: &Cid, bytes: &[u8]) -> Result<Delegation, TokenError> {
        if let Some(dlg) = self.young.get(cid) {
            self.hits += 1;
            return Ok(dlg.clone());
        }
        if let Some(dlg) = self.old.remove(cid) {
            self.hits += 1;
            self.remember(*cid, dlg.clone());
            return Ok(dlg);
        }
        let (dlg, _) = Delegation::decode(bytes)?;
        self.remember(*cid, dlg.clone());
        Ok(dlg)
    }

    fn remember(&mut self, cid: Cid, dlg: Delegation) {
        if self.young.len() >= self.generation {
            self.old = std::mem::take(&mut self.young);
            self.young.reserve(self.generation);
        }
        self.young.insert(cid, dlg);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::identity::Keypair;
    use crate::ucan::{fresh_nonce, validate, validate_spec, Invocation, Policy, CMD_FETCH};

    const NOW: i64 = 1_800_000_000;

    /// An owner, `hops` agencies re-delegating in turn, and an invocation by the last one.
    struct Chain {
        proofs: Vec<Vec<u8>>,
        cids: Vec<Cid>,
        owner: Keypair,
        holder: Keypair,
    }

    fn chain(hops: usize) -> Chain {
        let owner = Keypair::generate();
        let mut issuer = owner.clone();
        let (mut proofs, mut cids) = (Vec::new(), Vec::new());
        for _ in 0..hops {
            let next = Keypair::generate();
            let (bytes, cid) = Delegation {
                iss: issuer.did(),
                aud: next.did(),
                sub: Some(owner.did()),
                cmd: CMD_FETCH.into(),
                pol: Policy::dataset_equals("water/net3"),
                nonce: fresh_nonce(),
                exp: Some(NOW + 3600),
                nbf: None,
                meta: None,
            }
            .seal(&issuer)
            .unwrap();
            proofs.push(bytes);
            cids.push(cid);
            issuer = next;
        }
        Chain {
            proofs,
            cids,
            owner,
            holder: issuer,
        }
    }

    impl Chain {
        fn invoke(&self, dataset: &str) -> Vec<u8> {
            Invocation {
                iss: self.holder.did(),
                sub: self.owner.did(),
                aud: None,
                cmd: CMD_FETCH.into(),
                args: BTreeMap::from([("dataset".to_string(), dataset.into())]),
                prf: self.cids.clone(),
                exp: Some(NOW + 60),
                iat: Some(NOW),
                nonce: fresh_nonce(),
                meta: None,
                cause: None,
            }
            .seal(&self.holder)
            .unwrap()
            .0
        }
    }

    #[test]
    fn second_validation_of_a_chain_uses_the_cache_and_agrees() {
        let c = chain(3);
        let mut v = Verifier::new();
        for round in 0..3 {
            let inv = c.invoke("water/net3");
            let cached = v.validate(&inv, &c.proofs, NOW);
            assert_eq!(cached, validate(&inv, &c.proofs, NOW), "round {round}");
            assert!(cached.is_ok());
            assert_eq!(v.hits(), 3 * round);
            assert_eq!(v.len(), 3);
        }
    }

    #[test]
    fn cached_chains_still_fail_for_time_policy_and_missing_proofs() {
        let c = chain(2);
        let mut v = Verifier::new();
        assert!(v.validate(&c.invoke("water/net3"), &c.proofs, NOW).is_ok());

        let other = c.invoke("energy/grid");
        let err = v.validate(&other, &c.proofs, NOW).unwrap_err();
        assert_eq!(err.name(), "MatchError");
        assert_eq!(Err(err), validate(&other, &c.proofs, NOW));

        let later = NOW + 7200;
        let inv = c.invoke("water/net3");
        let err = v.validate(&inv, &c.proofs, later).unwrap_err();
        assert_eq!(err.name(), "Expired");
        assert_eq!(Err(err), validate(&inv, &c.proofs, later));

        // Cached is not presented: the second proof must come with the invocation.
        let err = v.validate(&inv, &c.proofs[..1], NOW).unwrap_err();
        assert_eq!(err, ValidationError::UnavailableProof(c.cids[1]));
        assert_eq!(v.validate_spec(&inv, &c.proofs[..1], NOW), Err(err));
    }

    #[test]
    fn bad_signatures_are_not_remembered() {
        let c = chain(1);
        let mut tampered = c.proofs.clone();
        tampered[0][5] ^= 1;
        // An invocation naming the tampered token's CID, so that it is looked at.
        let mut bad = chain(0);
        bad.owner = c.owner.clone();
        bad.holder = c.holder.clone();
        bad.cids = vec![Cid::of_token(&tampered[0])];
        let inv = bad.invoke("water/net3");
        let mut v = Verifier::new();
        for _ in 0..2 {
            let err = v.validate(&inv, &tampered, NOW).unwrap_err();
            assert_eq!(err.name(), "InvalidSignature");
            assert_eq!(Err(err), validate(&inv, &tampered, NOW));
        }
        assert!(v.is_empty());
        assert_eq!(v.hits(), 0);
    }

    #[test]
    fn the_cache_never_exceeds_its_capacity_and_keeps_what_is_used() {
        let mut v = Verifier::with_capacity(4);
        let hot = chain(1);
        let hot_inv = hot.invoke("water/net3");
        for _ in 0..10 {
            let cold = chain(1);
            assert!(v
                .validate_spec(&cold.invoke("water/net3"), &cold.proofs, NOW)
                .is_ok());
            assert!(v.validate_spec(&hot_inv, &hot.proofs, NOW).is_ok());
            assert!(v.len() <= v.capacity(), "{} > {}", v.len(), v.capacity());
        }
        // The hot proof was decoded once and served from the cache nine times.
        assert_eq!(v.hits(), 9);
        v.clear();
        assert!(v.is_empty());
    }

    #[test]
    fn spec_and_profile_layers_agree_with_the_free_functions() {
        let c = chain(1);
        let mut inv = Invocation::decode(&c.invoke("water/net3")).unwrap().0;
        inv.exp = Some(NOW + 3600); // too long for the profile, fine for UCAN
        let inv = inv.seal(&c.holder).unwrap().0;
        let mut v = Verifier::new();
        for _ in 0..2 {
            assert_eq!(
                v.validate(&inv, &c.proofs, NOW),
                validate(&inv, &c.proofs, NOW)
            );
            assert_eq!(
                v.validate(&inv, &c.proofs, NOW).unwrap_err().name(),
                "Profile"
            );
            assert_eq!(
                v.validate_spec(&inv, &c.proofs, NOW),
                validate_spec(&inv, &c.proofs, NOW)
            );
            assert!(v.validate_spec(&inv, &c.proofs, NOW).is_ok());
        }
    }
}
