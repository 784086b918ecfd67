//! cix-testnet: many nodes on one machine (DESIGN.md §9).
//!
//! Placeholder: the branch this crate's sources live on has not been merged here yet, and a
//! workspace member without a target stops every cargo command. The real crate replaces this
//! file when the branches meet.
