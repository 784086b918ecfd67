//! cix-node: the cix daemon as a library.
//!
//! A node is one agency's presence on the network. It owns an Ed25519 key (its PeerId and its
//! `did:key`), a sled store and a blob directory under its home ([`home`]), and a libp2p swarm
//! ([`network`]) speaking:
//!
//! - gossipsub on `cix/catalogue/1`: signed catalogue entries, each checked before it is
//!   accepted or forwarded;
//! - `/cix/sync/1`: catch-up of a peer's own entries on connecting;
//! - `/cix/access/1`: access negotiation by data spectrum ([`access`]);
//! - `/cix/transfer/1`: dataset bytes, verified before they are renamed into place
//!   ([`transfer`]);
//! - `/cix/witness/1`: exchanging and counter-signing audit log heads ([`witness`]; the log
//!   itself is [`audit`]);
//! - `/cix/receipt/1`: signed receipts, deletion notices and profiles ([`receipts`]);
//! - identify, ping and Kademlia for finding peers.
//!
//! [`start`] runs a node and returns a [`Node`] handle; [`admin`] serves the loopback admin API
//! that the `cix` command line talks to.

pub mod access;
pub mod admin;
pub mod attest;
pub mod audit;
pub mod clock;
pub mod codec;
pub mod config;
pub mod console;
pub mod custody;
pub mod emergency;
pub mod exchange;
pub mod guard;
pub mod home;
pub mod import;
pub mod layers;
pub mod metrics;
pub mod network;
pub mod node;
pub mod ops;
pub mod privacy;
pub mod projection;
pub mod publish;
pub mod quality;
pub mod receipts;
pub mod recheck;
pub mod registrars;
pub mod reident;
pub mod revoke;
pub mod rights;
pub mod rules;
pub mod scoring;
pub mod search;
pub mod store;
pub mod testnet_delay;
pub mod testnet_faults;
pub mod tokens;
pub mod transfer;
pub mod verified;
pub mod withdraw;
pub mod witness;

pub use config::Config;
pub use home::Home;
pub use node::{start, Node, NodeEvent};
