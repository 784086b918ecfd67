//! Checking an invocation against its delegation chain, in two layers.
//!
//! The first layer is UCAN 1.0 itself ([`validate_spec`]): signatures, time bounds, principal
//! alignment, one subject along the chain, commands narrowing by whole path segments, and every
//! delegation's policy holding for the invocation's `args`. The second is the cix profile,
//! applied on top by [`validate`]: stricter rules a token can break while still being valid
//! UCAN (mandatory expiry, short lifetimes, a bounded chain, a minimum nonce, commands under
//! `/cix`). A refusal by the second layer is always [`ValidationError::Profile`], so the caller
//! can tell "not a valid UCAN" from "valid UCAN that cix does not accept".
//!
//! Not done here, because it needs state: that the invocation is addressed to this node, that
//! its issuer is the peer on the connection, that it has not been seen before, and that no
//! delegation in the chain is revoked. The node does those with [`Validated`].

use std::collections::HashMap;
use std::fmt;

use super::cid::Cid;
use super::token::{Delegation, Invocation, TokenError};
use super::{
    command_covers, MAX_CHAIN_LEN, MAX_CLOCK_SKEW_SECS, MAX_DELEGATION_TTL_SECS,
    MAX_INVOCATION_TTL_SECS, MAX_TOKEN_BYTES, MIN_NONCE_BYTES,
};
use crate::identity::Did;

/// Which token of the ones presented an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    /// The invocation.
    Invocation,
    /// The delegation with this CID.
    Delegation(Cid),
}

impl fmt::Display for TokenRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenRef::Invocation => f.write_str("invocation"),
            TokenRef::Delegation(cid) => write!(f, "delegation {cid}"),
        }
    }
}

/// Why the chain does not establish the claimed authority (UCAN's `InvalidClaim`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// No proofs, and the invoker is not the subject.
    #[error("invoker {iss} is not the subject {sub} and presents no proof")]
    NoProof {
        /// The invoker.
        iss: Did,
        /// The subject.
        sub: Did,
    },
    /// The root delegation is a powerline (`sub: null`); a chain must start at its subject.
    #[error("root delegation {0} has a null subject")]
    PowerlineRoot(Cid),
    /// The root delegation is not issued by its subject.
    #[error("root delegation {cid} is issued by {iss}, not by its subject {sub}")]
    RootNotSubject {
        /// The root delegation.
        cid: Cid,
        /// Its issuer.
        iss: Did,
        /// Its subject.
        sub: Did,
    },
    /// A command is not covered by the command delegated before it.
    #[error("command {cmd:?} is not covered by {delegated:?} delegated in {cid}")]
    CommandNotDelegated {
        /// The command asked for (by the invocation or a later delegation).
        cmd: String,
        /// The command the proof grants.
        delegated: String,
        /// The proof that does not cover it.
        cid: Cid,
    },
}

/// Why an invocation was refused.
///
/// Eight variants are named after the errors of the UCAN working group's fixtures
/// ([`ValidationError::name`] gives that name); [`ValidationError::Malformed`] is a token that
/// does not decode, and [`ValidationError::Profile`] a valid UCAN chain that cix's stricter
/// profile refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A token is not well formed.
    #[error("malformed {token}: {error}")]
    Malformed {
        /// The token.
        token: TokenRef,
        /// What is wrong with it.
        error: TokenError,
    },
    /// A token's signature is malformed or does not verify.
    #[error("invalid signature on {token}: {error}")]
    InvalidSignature {
        /// The token.
        token: TokenRef,
        /// The signature problem.
        error: TokenError,
    },
    /// The invocation names a proof that was not presented.
    #[error("proof {0} was not presented")]
    UnavailableProof(Cid),
    /// The chain does not grant what is claimed.
    #[error("invalid claim: {0}")]
    InvalidClaim(ClaimError),
    /// A token has expired.
    #[error("{token} expired at {exp}")]
    Expired {
        /// The token.
        token: TokenRef,
        /// Its expiry.
        exp: i64,
    },
    /// A token is not valid yet.
    #[error("{token} is not valid before {nbf}")]
    TooEarly {
        /// The token.
        token: TokenRef,
        /// Its start.
        nbf: i64,
    },
    /// A token's issuer is not the audience of the proof before it.
    #[error("{token} is issued by {found}, but its proof is addressed to {expected}")]
    InvalidAudience {
        /// The token whose issuer does not line up.
        token: TokenRef,
        /// The audience of the proof before it.
        expected: Did,
        /// The issuer found.
        found: Did,
    },
    /// A token is about another subject than the chain's root.
    #[error("{token} is about subject {found}, but the chain is about {expected}")]
    InvalidSubject {
        /// The token.
        token: TokenRef,
        /// The chain's subject.
        expected: Did,
        /// The subject found.
        found: Did,
    },
    /// The invocation's `args` do not satisfy a delegation's policy.
    #[error("args do not satisfy statement {statement} of the policy in delegation {delegation}")]
    MatchError {
        /// The delegation whose policy fails.
        delegation: Cid,
        /// Index of the first failing statement.
        statement: usize,
    },
    /// Valid UCAN that the cix profile refuses.
    #[error("refused by the cix token profile: {0}")]
    Profile(ProfileError),
}

impl ValidationError {
    /// The error name the UCAN working group's fixtures use (`Expired`, `InvalidClaim`, …);
    /// `Malformed` and `Profile` for the two kinds they do not name.
    pub fn name(&self) -> &'static str {
        match self {
            ValidationError::Malformed { .. } => "Malformed",
            ValidationError::InvalidSignature { .. } => "InvalidSignature",
            ValidationError::UnavailableProof(_) => "UnavailableProof",
            ValidationError::InvalidClaim(_) => "InvalidClaim",
            ValidationError::Expired { .. } => "Expired",
            ValidationError::TooEarly { .. } => "TooEarly",
            ValidationError::InvalidAudience { .. } => "InvalidAudience",
            ValidationError::InvalidSubject { .. } => "InvalidSubject",
            ValidationError::MatchError { .. } => "MatchError",
            ValidationError::Profile(_) => "Profile",
        }
    }
}

/// The cix profile's own refusals (the token is valid UCAN).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// More proofs than [`MAX_CHAIN_LEN`].
    #[error("proof chain of {len} delegations exceeds the limit of {MAX_CHAIN_LEN}")]
    ChainTooLong {
        /// Proofs named by the invocation.
        len: usize,
    },
    /// A token never expires (`exp: null`).
    #[error("{0} has no expiry")]
    MissingExpiry(TokenRef),
    /// A token expires further in the future than the profile allows.
    #[error("{token} expires at {exp}, more than {max_secs} s from now")]
    LifetimeTooLong {
        /// The token.
        token: TokenRef,
        /// Its expiry.
        exp: i64,
        /// The longest remaining lifetime allowed for its kind.
        max_secs: i64,
    },
    /// A nonce shorter than [`MIN_NONCE_BYTES`].
    #[error("{token} has a nonce of {len} bytes, fewer than {MIN_NONCE_BYTES}")]
    NonceTooShort {
        /// The token.
        token: TokenRef,
        /// The nonce length.
        len: usize,
    },
    /// The invoked command is not one of cix's (under `/cix`).
    #[error("command {0:?} is not under /cix")]
    ForeignCommand(String),
    /// A delegation drops a policy statement of the delegation before it: the chain would hand
    /// on fewer caveats than it received (ISO 37156 9.2 e: a secondary publisher's rights are a
    /// subset of the primary publisher's).
    #[error("{cid} drops statement {statement} of the policy delegated to its issuer")]
    PolicyLoosened {
        /// The delegation that loosens.
        cid: Cid,
        /// Index of the dropped statement in the previous delegation's policy.
        statement: usize,
    },
    /// A delegation expires after the delegation before it.
    #[error("{cid} expires at {exp}, after the delegation it rests on ({proof_exp})")]
    OutlivesProof {
        /// The delegation that outlives its proof.
        cid: Cid,
        /// Its expiry.
        exp: i64,
        /// The proof's expiry.
        proof_exp: i64,
    },
}

/// An invocation that passed validation, with the chain that grants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The invocation.
    pub invocation: Invocation,
    /// Its CID (what replay protection should remember).
    pub cid: Cid,
    /// The delegations of its proof chain, root first (empty when the invoker is the subject).
    pub chain: Vec<Delegation>,
}

impl Validated {
    /// Who is asked to run the command: the invocation's `aud`, or else its subject.
    pub fn executor(&self) -> Did {
        self.invocation.aud.unwrap_or(self.invocation.sub)
    }

    /// The CIDs of the chain's delegations, root first (what a revocation check looks up).
    pub fn proof_cids(&self) -> &[Cid] {
        &self.invocation.prf
    }
}

/// Validates an invocation and its proofs at Unix time `now` under UCAN 1.0 and the cix
/// profile.
///
/// `proofs` holds delegation token bytes, in the invocation's `prf` order or any other; tokens
/// it does not name are ignored. Time bounds allow [`MAX_CLOCK_SKEW_SECS`] either way.
///
/// # Errors
///
/// The first [`ValidationError`] found; [`ValidationError::Profile`] when only the cix profile
/// refuses.
pub fn validate(
    invocation: &[u8],
    proofs: &[Vec<u8>],
    now: i64,
) -> Result<Validated, ValidationError> {
    check(invocation, proofs, now, true, &mut decode_proof)
}

/// Validates under UCAN 1.0 alone, without the cix profile (what the working group's fixtures
/// test, and what a non-cix UCAN peer expects).
///
/// # Errors
///
/// The first [`ValidationError`] found; never [`ValidationError::Profile`].
pub fn validate_spec(
    invocation: &[u8],
    proofs: &[Vec<u8>],
    now: i64,
) -> Result<Validated, ValidationError> {
    check(invocation, proofs, now, false, &mut decode_proof)
}

/// Turns the bytes of a proof named by `cid` into a signature-checked delegation. [`validate`]
/// decodes every time; a [`super::Verifier`] answers from its cache when it can.
pub(crate) type ProofDecoder<'a> = dyn FnMut(&Cid, &[u8]) -> Result<Delegation, TokenError> + 'a;

fn decode_proof(_: &Cid, bytes: &[u8]) -> Result<Delegation, TokenError> {
    Delegation::decode(bytes).map(|(dlg, _)| dlg)
}

/// Both layers (or only UCAN's when `profile` is false), with `decode` turning proofs into
/// delegations. Every validator of this crate runs through here, so they cannot disagree.
pub(crate) fn check(
    invocation: &[u8],
    proofs: &[Vec<u8>],
    now: i64,
    profile: bool,
    decode: &mut ProofDecoder<'_>,
) -> Result<Validated, ValidationError> {
    let validated = run(invocation, proofs, now, profile, decode)?;
    if profile {
        check_profile(&validated, now)?;
    }
    Ok(validated)
}

fn run(
    bytes: &[u8],
    proofs: &[Vec<u8>],
    now: i64,
    profile: bool,
    decode: &mut ProofDecoder<'_>,
) -> Result<Validated, ValidationError> {
    let (inv, cid) = Invocation::decode(bytes).map_err(|e| refused(TokenRef::Invocation, e))?;

    // The profile's chain bound is checked before any proof is hashed or decoded.
    if profile && inv.prf.len() > MAX_CHAIN_LEN {
        return Err(ValidationError::Profile(ProfileError::ChainTooLong {
            len: inv.prf.len(),
        }));
    }
    check_time(TokenRef::Invocation, inv.exp, None, now)?;

    let chain = resolve_chain(&inv, proofs, decode)?;
    for (dlg, cid) in &chain {
        check_time(TokenRef::Delegation(*cid), dlg.exp, dlg.nbf, now)?;
    }
    check_principals(&inv, &chain)?;
    check_commands(&inv, &chain)?;

    let args = inv.args_value();
    for (dlg, cid) in &chain {
        if let Some(statement) = dlg.pol.failing_statement(&args) {
            return Err(ValidationError::MatchError {
                delegation: *cid,
                statement,
            });
        }
    }
    Ok(Validated {
        invocation: inv,
        cid,
        chain: chain.into_iter().map(|(d, _)| d).collect(),
    })
}

/// Finds, decodes and signature-checks every proof the invocation names, root first.
fn resolve_chain(
    inv: &Invocation,
    proofs: &[Vec<u8>],
    decode: &mut ProofDecoder<'_>,
) -> Result<Vec<(Delegation, Cid)>, ValidationError> {
    if inv.prf.is_empty() {
        if inv.iss != inv.sub {
            return Err(ValidationError::InvalidClaim(ClaimError::NoProof {
                iss: inv.iss,
                sub: inv.sub,
            }));
        }
        return Ok(Vec::new());
    }

    // Oversized tokens could never decode; leave them unhashed.
    let by_cid: HashMap<Cid, &[u8]> = proofs
        .iter()
        .filter(|p| p.len() <= MAX_TOKEN_BYTES)
        .map(|p| (Cid::of_token(p), p.as_slice()))
        .collect();
    let mut found = Vec::with_capacity(inv.prf.len());
    for cid in &inv.prf {
        found.push((
            *cid,
            *by_cid
                .get(cid)
                .ok_or(ValidationError::UnavailableProof(*cid))?,
        ));
    }

    let mut chain = Vec::with_capacity(found.len());
    for (cid, bytes) in found {
        let dlg = decode(&cid, bytes).map_err(|e| refused(TokenRef::Delegation(cid), e))?;
        chain.push((dlg, cid));
    }
    Ok(chain)
}

/// Maps a token decoding error to the validation error it amounts to.
fn refused(token: TokenRef, error: TokenError) -> ValidationError {
    if error.is_signature() {
        ValidationError::InvalidSignature { token, error }
    } else {
        ValidationError::Malformed { token, error }
    }
}

/// Time bounds with [`MAX_CLOCK_SKEW_SECS`] of tolerance either way (computed in i128, so no
/// timestamp can overflow).
fn check_time(
    token: TokenRef,
    exp: Option<i64>,
    nbf: Option<i64>,
    now: i64,
) -> Result<(), ValidationError> {
    let (now, skew) = (i128::from(now), i128::from(MAX_CLOCK_SKEW_SECS));
    if let Some(exp) = exp {
        if now > i128::from(exp) + skew {
            return Err(ValidationError::Expired { token, exp });
        }
    }
    if let Some(nbf) = nbf {
        if i128::from(nbf) > now + skew {
            return Err(ValidationError::TooEarly { token, nbf });
        }
    }
    Ok(())
}

/// The root is issued by its (non-null) subject, each issuer is the audience of the proof
/// before it, and every token is about the same subject.
fn check_principals(inv: &Invocation, chain: &[(Delegation, Cid)]) -> Result<(), ValidationError> {
    let Some((root, root_cid)) = chain.first() else {
        return Ok(());
    };
    let Some(subject) = root.sub else {
        return Err(ValidationError::InvalidClaim(ClaimError::PowerlineRoot(
            *root_cid,
        )));
    };
    if root.iss != subject {
        return Err(ValidationError::InvalidClaim(ClaimError::RootNotSubject {
            cid: *root_cid,
            iss: root.iss,
            sub: subject,
        }));
    }

    for pair in chain.windows(2) {
        let [(prev, _), (next, cid)] = pair else {
            continue;
        };
        if next.iss != prev.aud {
            return Err(ValidationError::InvalidAudience {
                token: TokenRef::Delegation(*cid),
                expected: prev.aud,
                found: next.iss,
            });
        }
    }
    if let Some((last, _)) = chain.last() {
        if inv.iss != last.aud {
            return Err(ValidationError::InvalidAudience {
                token: TokenRef::Invocation,
                expected: last.aud,
                found: inv.iss,
            });
        }
    }

    // A powerline (null subject) takes on the subject established before it.
    for (dlg, cid) in &chain[1..] {
        if let Some(sub) = dlg.sub {
            if sub != subject {
                return Err(ValidationError::InvalidSubject {
                    token: TokenRef::Delegation(*cid),
                    expected: subject,
                    found: sub,
                });
            }
        }
    }
    if inv.sub != subject {
        return Err(ValidationError::InvalidSubject {
            token: TokenRef::Invocation,
            expected: subject,
            found: inv.sub,
        });
    }
    Ok(())
}

/// Each delegation's command lies within the one before it, and the invoked command within the
/// last.
fn check_commands(inv: &Invocation, chain: &[(Delegation, Cid)]) -> Result<(), ValidationError> {
    let asked = chain
        .iter()
        .skip(1)
        .map(|(d, _)| d.cmd.as_str())
        .chain([inv.cmd.as_str()]);
    for ((granting, cid), cmd) in chain.iter().zip(asked) {
        if !command_covers(&granting.cmd, cmd) {
            return Err(ValidationError::InvalidClaim(
                ClaimError::CommandNotDelegated {
                    cmd: cmd.into(),
                    delegated: granting.cmd.clone(),
                    cid: *cid,
                },
            ));
        }
    }
    Ok(())
}

/// The cix profile, on a chain that is already valid UCAN.
fn check_profile(v: &Validated, now: i64) -> Result<(), ValidationError> {
    let refuse = |e| Err(ValidationError::Profile(e));
    let inv = &v.invocation;
    if !command_covers("/cix", &inv.cmd) {
        return refuse(ProfileError::ForeignCommand(
            inv.cmd.chars().take(80).collect(),
        ));
    }

    let tokens = std::iter::once((
        TokenRef::Invocation,
        inv.exp,
        &inv.nonce,
        MAX_INVOCATION_TTL_SECS,
    ))
    .chain(v.chain.iter().zip(&inv.prf).map(|(d, cid)| {
        (
            TokenRef::Delegation(*cid),
            d.exp,
            &d.nonce,
            MAX_DELEGATION_TTL_SECS,
        )
    }));
    for (token, exp, nonce, max_secs) in tokens {
        let Some(exp) = exp else {
            return refuse(ProfileError::MissingExpiry(token));
        };
        if i128::from(exp) - i128::from(now)
            > i128::from(max_secs) + i128::from(MAX_CLOCK_SKEW_SECS)
        {
            return refuse(ProfileError::LifetimeTooLong {
                token,
                exp,
                max_secs,
            });
        }
        if nonce.len() < MIN_NONCE_BYTES {
            return refuse(ProfileError::NonceTooShort {
                token,
                len: nonce.len(),
            });
        }
    }

    // Attenuation, beyond UCAN's: each delegation keeps every statement of the one before it
    // and expires no later, so what is handed on is visibly a subset of what was received.
    for (pair, cid) in v.chain.windows(2).zip(inv.prf.iter().skip(1)) {
        let (proof, dlg) = (&pair[0], &pair[1]);
        let kept = dlg.pol.statements();
        if let Some(statement) = proof
            .pol
            .statements()
            .iter()
            .position(|s| !kept.contains(s))
        {
            return refuse(ProfileError::PolicyLoosened {
                cid: *cid,
                statement,
            });
        }
        if let (Some(exp), Some(proof_exp)) = (dlg.exp, proof.exp) {
            if exp > proof_exp {
                return refuse(ProfileError::OutlivesProof {
                    cid: *cid,
                    exp,
                    proof_exp,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::identity::Keypair;
    use crate::ucan::{fresh_nonce, Policy, CMD_FETCH};

    const NOW: i64 = 1_800_000_000;

    struct World {
        owner: Keypair,
        requester: Keypair,
    }

    impl World {
        fn new() -> World {
            World {
                owner: Keypair::generate(),
                requester: Keypair::generate(),
            }
        }

        fn grant(&self) -> Delegation {
            Delegation {
                iss: self.owner.did(),
                aud: self.requester.did(),
                sub: Some(self.owner.did()),
                cmd: CMD_FETCH.into(),
                pol: Policy::dataset_equals("water/net3"),
                nonce: fresh_nonce(),
                exp: Some(NOW + 3600),
                nbf: None,
                meta: None,
            }
        }

        fn fetch(&self, prf: Vec<Cid>, dataset: &str) -> Invocation {
            Invocation {
                iss: self.requester.did(),
                sub: self.owner.did(),
                aud: None,
                cmd: CMD_FETCH.into(),
                args: BTreeMap::from([("dataset".to_string(), dataset.into())]),
                prf,
                exp: Some(NOW + 60),
                iat: Some(NOW),
                nonce: fresh_nonce(),
                meta: None,
                cause: None,
            }
        }

        /// Seals `grant` (by the owner) and an invocation built from it (by the requester).
        fn tokens(
            &self,
            grant: &Delegation,
            edit: impl FnOnce(&mut Invocation),
        ) -> (Vec<u8>, Vec<u8>) {
            let (g, cid) = grant.seal(&self.owner).unwrap();
            let mut inv = self.fetch(vec![cid], "water/net3");
            edit(&mut inv);
            let (i, _) = inv.seal(&self.requester).unwrap();
            (i, g)
        }
    }

    #[test]
    fn single_link_chain_validates() {
        let w = World::new();
        let (inv, grant) = w.tokens(&w.grant(), |_| {});
        let ok = validate(&inv, &[grant], NOW).unwrap();
        assert_eq!(ok.chain.len(), 1);
        assert_eq!(ok.chain[0].pol, Policy::dataset_equals("water/net3"));
        assert_eq!(ok.chain[0].aud, w.requester.did());
        assert_eq!(ok.invocation.iss, w.requester.did());
        assert_eq!(ok.cid, Cid::of_token(&inv));
        assert_eq!(ok.executor(), w.owner.did());
    }

    #[test]
    fn rejects_expired_delegation_but_tolerates_skew() {
        let w = World::new();
        let grant = Delegation {
            exp: Some(NOW - MAX_CLOCK_SKEW_SECS - 1),
            ..w.grant()
        };
        let (inv, g) = w.tokens(&grant, |_| {});
        let err = validate(&inv, std::slice::from_ref(&g), NOW).unwrap_err();
        assert!(matches!(
            err,
            ValidationError::Expired {
                token: TokenRef::Delegation(_),
                ..
            }
        ));
        // Within the allowance it still passes.
        assert!(validate(&inv, &[g], NOW - 1).is_ok());
    }

    #[test]
    fn skew_allowance_is_exactly_sixty_seconds() {
        let w = World::new();
        let grant = Delegation {
            exp: Some(NOW - 60),
            nbf: Some(NOW - 100),
            ..w.grant()
        };
        let (inv, g) = w.tokens(&grant, |_| {});
        assert!(validate(&inv, std::slice::from_ref(&g), NOW).is_ok());
        assert_eq!(validate(&inv, &[g], NOW + 1).unwrap_err().name(), "Expired");

        let grant = Delegation {
            nbf: Some(NOW + 60),
            ..w.grant()
        };
        let (inv, g) = w.tokens(&grant, |_| {});
        assert!(validate(&inv, std::slice::from_ref(&g), NOW).is_ok());
        assert_eq!(
            validate(&inv, &[g], NOW - 1).unwrap_err().name(),
            "TooEarly"
        );
    }

    #[test]
    fn unrelated_and_duplicate_proofs_are_ignored() {
        let w = World::new();
        let (inv, g) = w.tokens(&w.grant(), |_| {});
        let (other, _) = w.grant().seal(&w.owner).unwrap();
        let proofs = [
            other,
            b"junk".to_vec(),
            g.clone(),
            g,
            vec![0; MAX_TOKEN_BYTES + 1],
        ];
        assert!(validate(&inv, &proofs, NOW).is_ok());
    }

    #[test]
    fn release_candidate_tokens_validate() {
        let w = World::new();
        let grant = w.grant();
        let (g, cid) = {
            let bytes =
                crate::envelope::seal(&w.owner, crate::ucan::DELEGATION_TAG_RC1, &grant.to_value())
                    .unwrap();
            let cid = Cid::of_token(&bytes);
            (bytes, cid)
        };
        let inv = w.fetch(vec![cid], "water/net3");
        let bytes = crate::envelope::seal(
            &w.requester,
            crate::ucan::INVOCATION_TAG_RC1,
            &inv.to_value(),
        )
        .unwrap();
        let ok = validate(&bytes, &[g], NOW).unwrap();
        assert_eq!(ok.chain, vec![grant]);
    }

    #[test]
    fn rejects_expired_invocation_and_early_delegation() {
        let w = World::new();
        let (inv, g) = w.tokens(&w.grant(), |i| i.exp = Some(NOW - 120));
        let err = validate(&inv, &[g], NOW).unwrap_err();
        assert_eq!(
            err,
            ValidationError::Expired {
                token: TokenRef::Invocation,
                exp: NOW - 120
            }
        );

        let grant = Delegation {
            nbf: Some(NOW + 600),
            ..w.grant()
        };
        let (inv, g) = w.tokens(&grant, |_| {});
        assert_eq!(validate(&inv, &[g], NOW).unwrap_err().name(), "TooEarly");
    }

    #[test]
    fn rejects_invocation_by_someone_other_than_the_audience() {
        let w = World::new();
        let stranger = Keypair::generate();
        let (g, cid) = w.grant().seal(&w.owner).unwrap();
        let mut inv = w.fetch(vec![cid], "water/net3");
        inv.iss = stranger.did();
        let (inv, _) = inv.seal(&stranger).unwrap();
        let err = validate(&inv, &[g], NOW).unwrap_err();
        assert_eq!(
            err,
            ValidationError::InvalidAudience {
                token: TokenRef::Invocation,
                expected: w.requester.did(),
                found: stranger.did(),
            }
        );
    }

    #[test]
    fn rejects_tampered_signatures() {
        let w = World::new();
        let (mut inv, mut g) = w.tokens(&w.grant(), |_| {});
        inv[5] ^= 0x40;
        let err = validate(&inv, std::slice::from_ref(&g), NOW).unwrap_err();
        assert!(matches!(
            err,
            ValidationError::InvalidSignature {
                token: TokenRef::Invocation,
                ..
            }
        ));

        let (inv, _) = w.tokens(&w.grant(), |_| {});
        g[5] ^= 0x40;
        // The invocation names the untampered grant, so the tampered one is not even found.
        assert_eq!(
            validate(&inv, std::slice::from_ref(&g), NOW)
                .unwrap_err()
                .name(),
            "UnavailableProof"
        );
        let (inv, _) = {
            let mut i = w.fetch(vec![Cid::of_token(&g)], "water/net3");
            i.iat = None;
            i.seal(&w.requester).unwrap()
        };
        let err = validate(&inv, &[g], NOW).unwrap_err();
        assert!(matches!(
            err,
            ValidationError::InvalidSignature {
                token: TokenRef::Delegation(_),
                ..
            }
        ));
    }

    #[test]
    fn rejects_args_outside_the_policy() {
        let w = World::new();
        let (g, cid) = w.grant().seal(&w.owner).unwrap();
        let (inv, _) = w
            .fetch(vec![cid], "water/other")
            .seal(&w.requester)
            .unwrap();
        let err = validate(&inv, &[g], NOW).unwrap_err();
        assert_eq!(
            err,
            ValidationError::MatchError {
                delegation: cid,
                statement: 0
            }
        );
    }

    #[test]
    fn rejects_wrong_subject_and_missing_proof() {
        let w = World::new();
        let other = Keypair::generate();
        let (inv, g) = w.tokens(&w.grant(), |i| i.sub = other.did());
        assert_eq!(
            validate(&inv, &[g], NOW).unwrap_err().name(),
            "InvalidSubject"
        );

        let (inv, _) = w.tokens(&w.grant(), |_| {});
        assert_eq!(
            validate(&inv, &[], NOW).unwrap_err().name(),
            "UnavailableProof"
        );

        let (inv, _) = w.fetch(vec![], "water/net3").seal(&w.requester).unwrap();
        assert!(matches!(
            validate(&inv, &[], NOW).unwrap_err(),
            ValidationError::InvalidClaim(ClaimError::NoProof { .. })
        ));
    }

    #[test]
    fn commands_narrow_along_the_chain() {
        let w = World::new();
        let broad = Delegation {
            cmd: "/cix/data".into(),
            ..w.grant()
        };
        let (inv, g) = w.tokens(&broad, |_| {});
        assert!(validate(&inv, &[g], NOW).is_ok());

        let narrow = Delegation {
            cmd: "/cix/data/fetch/raw".into(),
            ..w.grant()
        };
        let (inv, g) = w.tokens(&narrow, |_| {});
        assert!(matches!(
            validate(&inv, &[g], NOW).unwrap_err(),
            ValidationError::InvalidClaim(ClaimError::CommandNotDelegated { .. })
        ));

        let sibling = Delegation {
            cmd: "/cix/data/fetchall".into(),
            ..w.grant()
        };
        let (inv, g) = w.tokens(&sibling, |_| {});
        assert_eq!(
            validate(&inv, &[g], NOW).unwrap_err().name(),
            "InvalidClaim"
        );
    }

    #[test]
    fn two_links_with_a_powerline_validate_and_policies_apply_all_along() {
        // owner → agency (sub: owner), agency → laptop (powerline), laptop invokes.
        let w = World::new();
        let laptop = Keypair::generate();
        let root = Delegation {
            pol: Policy::empty(),
            ..w.grant()
        };
        let (root_bytes, root_cid) = root.seal(&w.owner).unwrap();
        let second = Delegation {
            iss: w.requester.did(),
            aud: laptop.did(),
            sub: None,
            pol: Policy::dataset_equals("water/net3"),
            ..w.grant()
        };
        let (second_bytes, second_cid) = second.seal(&w.requester).unwrap();
        let mut inv = w.fetch(vec![root_cid, second_cid], "water/net3");
        inv.iss = laptop.did();
        let (ok_bytes, _) = inv.seal(&laptop).unwrap();
        let proofs = [second_bytes.clone(), root_bytes.clone()];
        let ok = validate(&ok_bytes, &proofs, NOW).unwrap();
        assert_eq!(ok.chain.len(), 2);
        assert_eq!(ok.chain[0].iss, w.owner.did());

        inv.args.insert("dataset".into(), "energy/iowa".into());
        let (bad, _) = inv.seal(&laptop).unwrap();
        assert_eq!(
            validate(&bad, &proofs, NOW).unwrap_err(),
            ValidationError::MatchError {
                delegation: second_cid,
                statement: 0
            }
        );
    }

    #[test]
    fn root_must_be_issued_by_its_subject() {
        let w = World::new();
        let forged = Delegation {
            sub: Some(Keypair::generate().did()),
            ..w.grant()
        };
        let (inv, g) = w.tokens(&forged, |i| i.sub = forged.sub.unwrap_or(i.sub));
        assert!(matches!(
            validate(&inv, &[g], NOW).unwrap_err(),
            ValidationError::InvalidClaim(ClaimError::RootNotSubject { .. })
        ));
    }

    #[test]
    fn profile_refusals_are_labelled_as_such() {
        let w = World::new();
        let forever = Delegation {
            exp: None,
            ..w.grant()
        };
        let (inv, g) = w.tokens(&forever, |_| {});
        assert!(validate_spec(&inv, std::slice::from_ref(&g), NOW).is_ok());
        assert!(matches!(
            validate(&inv, &[g], NOW).unwrap_err(),
            ValidationError::Profile(ProfileError::MissingExpiry(TokenRef::Delegation(_)))
        ));

        let (inv, g) = w.tokens(&w.grant(), |i| i.exp = Some(NOW + 3600));
        assert!(matches!(
            validate(&inv, &[g], NOW).unwrap_err(),
            ValidationError::Profile(ProfileError::LifetimeTooLong {
                token: TokenRef::Invocation,
                ..
            })
        ));

        let (inv, g) = w.tokens(&w.grant(), |i| i.nonce = vec![1, 2, 3]);
        assert!(matches!(
            validate(&inv, &[g], NOW).unwrap_err(),
            ValidationError::Profile(ProfileError::NonceTooShort { len: 3, .. })
        ));

        let foreign = Delegation {
            cmd: "/msg".into(),
            ..w.grant()
        };
        let (inv, g) = w.tokens(&foreign, |i| i.cmd = "/msg/send".into());
        assert!(validate_spec(&inv, std::slice::from_ref(&g), NOW).is_ok());
        assert_eq!(
            validate(&inv, &[g], NOW).unwrap_err(),
            ValidationError::Profile(ProfileError::ForeignCommand("/msg/send".into()))
        );
    }

    #[test]
    fn a_link_that_drops_a_caveat_or_outlives_its_proof_is_refused_by_the_profile() {
        // ISO 37156 9.2 e: what a secondary publisher hands on is a subset of what it received.
        let w = World::new();
        let third = Keypair::generate();
        let root = w.grant();
        let (root_bytes, root_cid) = root.seal(&w.owner).unwrap();
        let next = |pol: Policy, exp: Option<i64>| Delegation {
            iss: w.requester.did(),
            aud: third.did(),
            pol,
            exp,
            ..w.grant()
        };
        let chain = |d: &Delegation| {
            let (bytes, cid) = d.seal(&w.requester).unwrap();
            let mut inv = w.fetch(vec![root_cid, cid], "water/net3");
            inv.iss = third.did();
            let (inv, _) = inv.seal(&third).unwrap();
            (inv, vec![root_bytes.clone(), bytes], cid)
        };

        // Same policy, same expiry: accepted.
        let (inv, proofs, _) = chain(&next(root.pol.clone(), root.exp));
        validate(&inv, &proofs, NOW).unwrap();

        // The caveat dropped: valid UCAN (policies add up along the chain), refused by cix.
        let (inv, proofs, cid) = chain(&next(Policy::empty(), root.exp));
        assert!(validate_spec(&inv, &proofs, NOW).is_ok());
        assert_eq!(
            validate(&inv, &proofs, NOW).unwrap_err(),
            ValidationError::Profile(ProfileError::PolicyLoosened { cid, statement: 0 })
        );

        // A later expiry than the proof's.
        let later = root.exp.map(|e| e + 60);
        let (inv, proofs, cid) = chain(&next(root.pol.clone(), later));
        assert!(matches!(
            validate(&inv, &proofs, NOW).unwrap_err(),
            ValidationError::Profile(ProfileError::OutlivesProof { cid: c, .. }) if c == cid
        ));
    }

    #[test]
    fn chains_longer_than_the_limit_are_refused_before_decoding() {
        let w = World::new();
        let prf = vec![Cid::of_token(b"never looked up"); MAX_CHAIN_LEN + 1];
        let (inv, _) = w.fetch(prf, "water/net3").seal(&w.requester).unwrap();
        assert_eq!(
            validate(&inv, &[], NOW).unwrap_err(),
            ValidationError::Profile(ProfileError::ChainTooLong {
                len: MAX_CHAIN_LEN + 1
            })
        );
        // UCAN alone has no such limit: the proofs are looked for, and missing.
        assert_eq!(
            validate_spec(&inv, &[], NOW).unwrap_err().name(),
            "UnavailableProof"
        );
    }

    #[test]
    fn garbage_invocation_is_malformed_not_a_panic() {
        for bytes in [&b""[..], &[0x82, 0x41, 0x00], &[0xff; 40], &[0x9f; 100]] {
            let err = validate(bytes, &[], NOW).unwrap_err();
            assert!(
                matches!(
                    err,
                    ValidationError::Malformed {
                        token: TokenRef::Invocation,
                        ..
                    }
                ),
                "{err}"
            );
        }
        // An empty signature beside an empty map is a signature problem first.
        let err = validate(&[0x82, 0x40, 0xa0], &[], NOW).unwrap_err();
        assert_eq!(err.name(), "InvalidSignature");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn no_changed_or_cut_token_validates(
                in_proof in any::<bool>(),
                at in any::<prop::sample::Index>(),
                bit in 0u8..8,
                cut in any::<bool>(),
            ) {
                let w = World::new();
                let (mut inv, mut grant) = w.tokens(&w.grant(), |_| {});
                prop_assert!(validate(&inv, std::slice::from_ref(&grant), NOW).is_ok());
                let target = if in_proof { &mut grant } else { &mut inv };
                let i = at.index(target.len());
                if cut {
                    target.truncate(i);
                } else {
                    target[i] ^= 1 << bit;
                }
                prop_assert!(validate(&inv, &[grant], NOW).is_err());
            }
        }
    }
}
