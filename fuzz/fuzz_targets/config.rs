//! The node's config file (`HOME/config.toml`) through the node's own `Config` type and its
//! checks, and the classification mapping file of `cix catalogue import --mapping`.
//!
//! `node/src/config.rs` is compiled in here as it stands, so the fuzzer runs the real serde
//! schema without building the node crate (and libp2p); `network` stands in for the one item
//! it takes from the node's network module.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unreachable_pub)]
mod network {
    /// Same serde form as the node's `network::TcpSecurity`.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum TcpSecurity {
        #[default]
        Tls,
        Noise,
    }
}

#[allow(dead_code, unreachable_pub)]
#[path = "../../node/src/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = toml::from_str::<config::Config>(text) {
        if cfg.validate().is_ok() {
            // A valid config written back reads as the same config.
            let out = toml::to_string(&cfg).expect("a valid config serialises");
            let back: config::Config = toml::from_str(&out).expect("written config reads back");
            assert_eq!(back, cfg);
        }
    }
    let _ = cix_interchange::mapping::Mapping::parse(text);
});
