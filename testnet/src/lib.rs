//! cix-testnet: many cix nodes on one machine.
//!
//! For now this crate holds the quick tour, [`demo`]: three agencies in one process publish real
//! open data, discover each other's catalogues, negotiate access under different ISO 37156
//! spectrum levels and fetch verified copies. The `cix-testnet` binary runs it
//! (`cix-testnet demo`). The first measurement, [`revocation`], times how fast revocations
//! spread (`cix-testnet revocation`); [`join`] times how long a new node takes to hold a
//! whole catalogue through catch-up (`cix-testnet join`); [`bench`] moves a
//! large file between two `cix node run` processes against a plain TCP baseline
//! (`cix-testnet bench transfer`). Scenarios (DESIGN.md §9): [`scenario`] reads TOML
//! scenario files, [`builtin`] holds the named ones, [`run`] runs them on real nodes and
//! measures them from the nodes' own `cix::event` records ([`events`]), and [`report`] and
//! [`plots`] write `report.json`, `report.md` and SVG plots (`cix-testnet run`). [`rights`] is
//! the built-in `rights` scenario (ISO 37156 8.3.5, 8.3.6), which runs its own steps.

pub mod bench;
pub mod builtin;
pub mod demo;
pub mod events;
pub mod hostile;
pub mod join;
pub mod plots;
pub mod report;
pub mod revocation;
pub mod rights;
pub mod run;
pub mod scenario;
pub mod traffic;

/// Adds `--exit-with-parent PID` (this process) to a `cix node run` command, so that the node
/// stops by itself if this program ends without stopping it (killed outright).
pub(crate) fn tie_to_this_process(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.arg("--exit-with-parent")
        .arg(std::process::id().to_string())
}
