//! UCAN 1.0 capability tokens, restricted to Ed25519 `did:key` principals (DESIGN §5).
//!
//! A data owner hands out authority as a **delegation** ("`aud` may run `cmd` on `sub`, within
//! policy `pol`, until `exp`"); whoever holds a chain of delegations uses it by signing an
//! **invocation** that names the chain's CIDs in `prf`, root first, and sends it with the
//! delegation tokens to the serving node, which calls [`validate`].
//!
//! Tokens are the envelope of [`crate::envelope`] (`[signature, {"h": varsig, TAG: payload}]`,
//! canonical DAG-CBOR, Ed25519) under the type tags [`DELEGATION_TAG`] and [`INVOCATION_TAG`];
//! a token's id is its [`Cid`]. This module owns:
//!
//! - the payloads and their strict encoding ([`Delegation`], [`Invocation`]);
//! - the policy language ([`Policy`]);
//! - chain validation in two layers: UCAN 1.0 itself ([`validate_spec`]) and the cix profile on
//!   top of it ([`validate`]);
//! - [`Verifier`], the same validation with a bounded cache of delegations already verified.
//!
//! Replay protection, revocation and checking that an invocation is addressed to this node and
//! comes from the connected peer need node state, and are left to the node crate. The profile
//! is written down in `specs/ucan.md`; every limit below appears there with the same value.
//!
//! ```
//! use std::collections::BTreeMap;
//! use cix_protocol::identity::Keypair;
//! use cix_protocol::ucan::{self, Delegation, Invocation, Policy, CMD_FETCH};
//!
//! let (owner, requester) = (Keypair::generate(), Keypair::generate());
//! let now = 1_800_000_000;
//! let grant = Delegation {
//!     iss: owner.did(),
//!     aud: requester.did(),
//!     sub: Some(owner.did()),
//!     cmd: CMD_FETCH.into(),
//!     pol: Policy::dataset_equals("water/net3"),
//!     nonce: ucan::fresh_nonce(),
//!     exp: Some(now + 86_400),
//!     nbf: None,
//!     meta: None,
//! };
//! let (grant_bytes, grant_cid) = grant.seal(&owner)?;
//!
//! let fetch = Invocation {
//!     iss: requester.did(),
//!     sub: owner.did(),
//!     aud: None,
//!     cmd: CMD_FETCH.into(),
//!     args: BTreeMap::from([("dataset".to_string(), "water/net3".into())]),
//!     prf: vec![grant_cid],
//!     exp: Some(now + 60),
//!     iat: Some(now),
//!     nonce: ucan::fresh_nonce(),
//!     meta: None,
//!     cause: None,
//! };
//! let (fetch_bytes, _) = fetch.seal(&requester)?;
//!
//! let ok = ucan::validate(&fetch_bytes, &[grant_bytes], now)?;
//! assert_eq!(ok.chain[0].iss, owner.did());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cid;
mod policy;
mod token;
mod validate;
mod verifier;

pub use cid::{Cid, CidError};
pub use policy::{
    CompareOp, Number, Pattern, Policy, PolicyError, Selector, Statement, EVAL_BUDGET,
    MAX_POLICY_DEPTH, MAX_SELECTOR_LEN,
};
pub use token::{fresh_nonce, Delegation, Invocation, TokenError};
pub use validate::{
    validate, validate_spec, ClaimError, ProfileError, TokenRef, Validated, ValidationError,
};
pub use verifier::{Verifier, VERIFIED_CACHE_CAPACITY};

/// Envelope type tag of a delegation.
pub const DELEGATION_TAG: &str = "ucan/dlg@1.0.0";
/// Envelope type tag of an invocation.
pub const INVOCATION_TAG: &str = "ucan/inv@1.0.0";
/// The release candidate's delegation tag, accepted on read, never written.
pub const DELEGATION_TAG_RC1: &str = "ucan/dlg@1.0.0-rc.1";
/// The release candidate's invocation tag, accepted on read, never written.
pub const INVOCATION_TAG_RC1: &str = "ucan/inv@1.0.0-rc.1";

/// Fetch a dataset (args: `dataset`, the dataset's name).
pub const CMD_FETCH: &str = "/cix/data/fetch";
/// Take a dataset in order to republish it as its secondary publisher (ISO 37156 9.2 e). The
/// serving node treats an invocation of it as a fetch, so republication rights imply fetch
/// rights; the right to republish itself is shown by holding a chain that covers it.
pub const CMD_REPUBLISH: &str = "/cix/data/republish";
/// Every command on a dataset's data: covers [`CMD_FETCH`] and [`CMD_REPUBLISH`]. What a
/// primary publisher grants a secondary publisher that may pass on read-only rights
/// (`/cix/data/republish` cannot be narrowed to `/cix/data/fetch`, which is not beneath it).
pub const CMD_DATA: &str = "/cix/data";
/// Serve a dataset one holds to requesters its owner granted, as a custodian (ISO 37156 7.2
/// availability; specs/transfer.md §6). Granted by the owner alone, in a single link; it gives
/// no right to fetch.
pub const CMD_SERVE: &str = "/cix/data/serve";

/// Largest token accepted or produced, in bytes (whole envelope).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most delegations an invocation may name in `prf` (cix profile).
pub const MAX_CHAIN_LEN: usize = 8;
/// Tolerance, either way, when comparing `exp` and `nbf` with the validator's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;
/// Longest remaining lifetime of an invocation (cix profile): it is made for one request.
pub const MAX_INVOCATION_TTL_SECS: i64 = 5 * 60;
/// Longest remaining lifetime of a delegation (cix profile): a year and a day.
pub const MAX_DELEGATION_TTL_SECS: i64 = 366 * 24 * 60 * 60;
/// Shortest nonce accepted (cix profile).
pub const MIN_NONCE_BYTES: usize = 12;
/// Timestamps must lie within ±(2^53 - 1), the range UCAN allows.
pub const TIMESTAMP_LIMIT: i64 = (1 << 53) - 1;

/// Whether a delegation of `delegated` covers `cmd`: the same command, one beneath it by whole
/// path segments (`/cix/data` covers `/cix/data/fetch` but not `/cix/database`), or anything
/// when `delegated` is `/`.
pub fn command_covers(delegated: &str, cmd: &str) -> bool {
    delegated == "/"
        || cmd == delegated
        || cmd
            .strip_prefix(delegated)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn commands_attenuate_by_whole_segments() {
        assert!(command_covers("/", "/cix/data/fetch"));
        assert!(command_covers("/cix", "/cix/data/fetch"));
        assert!(command_covers("/cix/data/fetch", "/cix/data/fetch"));
        assert!(!command_covers("/cix/data", "/cix/database"));
        assert!(!command_covers("/cix/data/fetch", "/cix/data"));
        assert!(!command_covers("/cix/data/fetch", "/"));
    }
}
