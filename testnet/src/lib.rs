//! cix-testnet: many cix nodes on one machine.
//!
//! For now this crate holds the quick tour, [`demo`]: three agencies in one process publish real
//! open data, discover each other's catalogues, negotiate access under different ISO 37156
//! spectrum levels and fetch verified copies. The `cix-testnet` binary runs it
//! (`cix-testnet demo`); scenarios and measurements (DESIGN.md §9) will join it here.

pub mod demo;
