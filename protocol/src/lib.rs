//! cix-protocol: the types and rules every cix node agrees on, with no I/O.
//!
//! This crate is the protocol as code: canonical CBOR ([`cbor`]), identities as `did:key`
//! ([`identity`]), the signed envelope shared by tokens and records ([`envelope`]), catalogue
//! entries with their ISO 37156 block ([`catalogue`]), data dictionaries ([`dictionary`]), UCAN
//! 1.0 capability tokens ([`ucan`]), their revocations ([`revocation`]), content ids ([`content`]), wire messages ([`wire`]) and
//! entries with their ISO 37156 block ([`catalogue`]), agency profiles ([`profile`]) and group
//! membership attestations ([`attestation`]), data dictionaries ([`dictionary`]), UCAN
//! 1.0 capability tokens ([`ucan`]) and the caveats grants carry ([`caveats`]), content ids ([`content`]), wire messages ([`wire`]) and
//! their size limits ([`limits`]). It has no tokio, no sled and no libp2p: the node crate brings
//! those, and another implementation can read `specs/` beside this crate and interoperate.
//!
//! ```
//! use cix_protocol::identity::Keypair;
//!
//! let key = Keypair::generate();
//! assert!(key.did().to_string().starts_with("did:key:z6Mk"));
//! ```

#![warn(missing_docs)]

pub mod attestation;
pub mod audit;
pub mod catalogue;
pub mod caveats;
pub mod cbor;
pub mod content;
pub mod country;
pub mod dictionary;
pub mod emergency;
pub mod envelope;
pub mod identity;
pub mod limits;
pub mod profile;
pub mod quality;
pub mod receipt;
pub mod reident;
pub mod revocation;
pub mod rights;
pub mod ucan;
pub mod wire;
pub mod withdrawal;
