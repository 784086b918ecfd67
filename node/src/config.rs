//! Node configuration: one TOML file (`HOME/config.toml`) with documented defaults.
//!
//! Every setting has a default; `cix init` writes the agency's name and jurisdiction, and
//! `cix node run` flags override the listen and bootstrap addresses for one run.

use std::net::SocketAddr;

use cix_protocol::catalogue::Domain;
use cix_protocol::identity::Did;
use serde::{Deserialize, Serialize};

/// Least `store_cache_bytes` accepted: below about 256 bytes sled panics, and a cache under a
/// megabyte only slows the store.
pub const MIN_STORE_CACHE_BYTES: u64 = 1024 * 1024;

/// Settings of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The agency's display name (ISO 37156 3.1.3 organization).
    pub name: String,
    /// The agency's jurisdiction, ISO 3166-1 alpha-2.
    pub jurisdiction: String,
    /// Infrastructure sectors the agency runs (energy, water, transport, waste, ict).
    #[serde(default)]
    pub sectors: Vec<String>,
    /// Contact address for data requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// libp2p listen addresses: TCP (`/ip4/.../tcp/PORT`) and QUIC (`/ip4/.../udp/PORT/quic-v1`);
    /// by default both, on port 4870. A node dials peers over whichever of their addresses it
    /// learns, whatever it listens on itself.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// The security upgrade offered first on TCP connections this node dials: `tls` (the
    /// default) or `noise`; both measured within a few percent of each other for transfers
    /// (README, "Measuring transfer speed"). Both are always accepted.
    #[serde(default)]
    pub tcp_security: crate::network::TcpSecurity,
    /// Peers to dial at start, with `/p2p/PEERID`.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// Admin API address (and the web console's); must be a loopback address unless
    /// `admin_behind_tls` is set.
    #[serde(default = "default_admin")]
    pub admin_listen: SocketAddr,
    /// The operator puts the admin listener behind TLS of their choosing (a reverse proxy) and
    /// lets `admin_listen` be a non-loopback address; console cookies are then always `Secure`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin_behind_tls: bool,
    /// sled page cache, in bytes (sled's own default is 1 GiB, too much for many nodes per
    /// machine).
    #[serde(default = "default_cache")]
    pub store_cache_bytes: u64,
    /// How long a granted delegation stays valid, in days.
    #[serde(default = "default_grant_days")]
    pub grant_days: u32,
    /// Registrars whose group membership attestations this node accepts for its shared-group
    /// datasets (ISO 37156 5.5.3), as did:key principals. Empty: no group request is granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_registrars: Vec<Did>,
    /// How often, in seconds, the node sends its signed audit log head to every connected peer
    /// to be counter-signed (`/cix/witness/1`, `specs/audit.md`); 0 turns it off.
    #[serde(default = "default_witness_secs")]
    pub audit_witness_secs: u64,
    /// The agency's privacy notice (ISO 37156 8.3.3), carried in its signed profile; required
    /// before publishing an entry that holds personal data. A `[privacy]` table, written by
    /// `cix init --privacy FILE` or `cix privacy set FILE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<cix_protocol::profile::PrivacyNotice>,
    /// TESTING KNOB: the length of a retention "day" in seconds (default 86400). Shortening it
    /// makes received data expire in seconds instead of days; the node warns loudly at start
    /// whenever it is set. Never set it on a production node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_day_secs: Option<u64>,
    /// Days an agency that received a person's request or complaint has to answer it (ISO
    /// 37156 8.3.5, 8.3.6), unless `cix rights new --deadline-days` says otherwise. Default 30.
    #[serde(default = "default_rights_deadline_days")]
    pub rights_deadline_days: u32,
    /// TESTING KNOB: the length of a "day" of the deadlines of individuals' requests and
    /// complaints, in seconds (default 86400). The node warns at start whenever it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rights_day_secs: Option<u64>,
    /// Run a circuit relay v2 for other agencies' nodes that cannot be dialed directly (behind
    /// NAT or a firewall); limits per circuit are in `specs/limits.md` (`MAX_RELAY_*`).
    #[serde(default)]
    pub relay_server: bool,
    /// Addresses this node is reachable on from outside (its public address behind a port
    /// forward, say), announced to peers; a relay needs them (without any, a relay announces
    /// its listen addresses).
    #[serde(default)]
    pub external_addresses: Vec<String>,
    /// Thresholds of the re-identification guard (ISO 37156 7.4.2.5): a `[reidentification]`
    /// table with `k` (smallest group, default 5), `l` (distinct sensitive values per group,
    /// default 2) and `max_suppressed_permille` (default 50).
    #[serde(default, skip_serializing_if = "is_default_guard")]
    pub reidentification: cix_protocol::reident::Thresholds,
}

fn is_default_guard(t: &cix_protocol::reident::Thresholds) -> bool {
    *t == cix_protocol::reident::Thresholds::default()
}

fn default_rights_deadline_days() -> u32 {
    30
}

fn default_witness_secs() -> u64 {
    300
}

fn default_listen() -> Vec<String> {
    vec![
        "/ip4/0.0.0.0/tcp/4870".into(),
        "/ip4/0.0.0.0/udp/4870/quic-v1".into(),
    ]
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn default_cache() -> u64 {
    64 * 1024 * 1024
}

fn default_grant_days() -> u32 {
    30
}

impl Config {
    /// Defaults for an agency.
    pub fn new(name: &str, jurisdiction: &str) -> Self {
        Self {
            name: name.into(),
            jurisdiction: jurisdiction.into(),
            sectors: Vec::new(),
            contact: None,
            listen: default_listen(),
            tcp_security: crate::network::TcpSecurity::default(),
            bootstrap: Vec::new(),
            admin_listen: default_admin(),
            admin_behind_tls: false,
            store_cache_bytes: default_cache(),
            grant_days: default_grant_days(),
            trusted_registrars: Vec::new(),
            audit_witness_secs: default_witness_secs(),
            privacy: None,
            retention_day_secs: None,
            rights_deadline_days: default_rights_deadline_days(),
            rights_day_secs: None,
            relay_server: false,
            external_addresses: Vec::new(),
            reidentification: cix_protocol::reident::Thresholds::default(),
        }
    }

    /// Checks values that TOML cannot.
    ///
    /// # Errors
    ///
    /// A message naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        if !cix_protocol::country::is_assigned(&self.jurisdiction) {
            return Err(format!(
                "jurisdiction: {:?} is not an assigned ISO 3166-1 alpha-2 code such as NL or US",
                self.jurisdiction
            ));
        }
        if let Some(bad) = self.sectors.iter().find(|s| s.parse::<Domain>().is_err()) {
            return Err(format!(
                "sectors: {bad:?} is not one of energy, water, transport, waste, ict"
            ));
        }
        if self.name.len() > cix_protocol::limits::MAX_AGENCY_NAME_BYTES {
            return Err(format!(
                "name: at most {} bytes",
                cix_protocol::limits::MAX_AGENCY_NAME_BYTES
            ));
        }
        if !self.admin_listen.ip().is_loopback() && !self.admin_behind_tls {
            return Err(format!(
                "admin_listen: {} is not a loopback address; the admin API is only exposed \
                 behind TLS, with admin_behind_tls = true",
                self.admin_listen
            ));
        }
        if self.store_cache_bytes < MIN_STORE_CACHE_BYTES {
            return Err(format!(
                "store_cache_bytes: {} is below the least the store works with, \
                 {MIN_STORE_CACHE_BYTES} (1 MiB)",
                self.store_cache_bytes
            ));
        }
        if self.grant_days == 0 || self.grant_days > 366 {
            return Err("grant_days: must be between 1 and 366".into());
        }
        if let Some(n) = &self.privacy {
            n.check().map_err(|e| format!("{}: {}", e.field, e.rule))?;
        }
        self.reidentification
            .check()
            .map_err(|e| format!("reidentification: {e}"))?;
        if !(1..=3650).contains(&self.rights_deadline_days) {
            return Err("rights_deadline_days: must be 1 to 3650".into());
        }
        if self.rights_day_secs == Some(0) {
            return Err("rights_day_secs: must be at least 1".into());
        }
        if self.retention_day_secs == Some(0) {
            return Err("retention_day_secs: must be at least 1".into());
        }
        Ok(())
    }
}
