//! What the demo publishes: real open data compiled into the binary, and the three fictional
//! agencies that publish it.
//!
//! The files and their metadata live in `testnet/data/` (see `SOURCES.md` there for where each
//! file came from and under what licence). Everything is embedded with `include_bytes!` so the
//! demo does not depend on the working directory.

/// One data file shipped inside the binary, with the metadata it is published with.
#[derive(Debug, Clone, Copy)]
pub struct Shipped {
    /// File name, as in `testnet/data/`.
    pub file: &'static str,
    /// The file's bytes, exactly as shipped.
    pub bytes: &'static [u8],
    /// Its metadata in the `cix publish --meta` TOML format (title, spectrum, ISO block...).
    pub meta: &'static str,
    /// The spectrum level the metadata declares; the demo checks the node agrees.
    pub level: &'static str,
}

impl Shipped {
    /// BLAKE3 of the shipped bytes, hex: what every verified copy must hash to.
    pub fn blake3_hex(&self) -> String {
        blake3::hash(self.bytes).to_hex().to_string()
    }
}

macro_rules! shipped {
    ($file:literal, $meta:literal, $level:literal) => {
        Shipped {
            file: $file,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/", $file)),
            meta: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/", $meta)),
            level: $level,
        }
    };
}

/// Iowa's yearly electricity generation by source (open).
pub const IOWA_ELECTRICITY: Shipped =
    shipped!("iowa-electricity.csv", "iowa-electricity.meta.toml", "open");
/// EPA's EPANET example network 3, standing in for a utility's network model (closed).
pub const WATER_NETWORK: Shipped = shipped!("Net3.inp", "Net3.meta.toml", "closed");
/// US domestic flights per airport pair in 2008 (open).
pub const FLIGHTS: Shipped = shipped!("flights-airport.csv", "flights-airport.meta.toml", "open");
/// Car-share availability per Montreal zone (shared with named agencies).
pub const CARSHARE: Shipped = shipped!(
    "montreal-carshare.csv",
    "montreal-carshare.meta.toml",
    "shared-named"
);
/// Daily Seattle weather (open).
pub const WEATHER: Shipped = shipped!("seattle-weather.csv", "seattle-weather.meta.toml", "open");
/// Monthly CO2 at Mauna Loa (shared with anyone who accepts its terms).
pub const CO2: Shipped = shipped!(
    "co2-concentration.csv",
    "co2-concentration.meta.toml",
    "shared-public"
);

/// Every shipped file.
pub const SHIPPED: [Shipped; 6] = [
    IOWA_ELECTRICITY,
    WATER_NETWORK,
    FLIGHTS,
    CARSHARE,
    WEATHER,
    CO2,
];

/// One agency of the demo city and what it publishes.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Short name, used for its directory.
    pub short: &'static str,
    /// Display name (ISO 37156 3.1.3 organization).
    pub name: &'static str,
    /// Infrastructure sectors it runs.
    pub sectors: &'static [&'static str],
    /// The files it publishes, in order.
    pub files: &'static [Shipped],
}

/// Index of the power and water utility in [`AGENCIES`].
pub const UTILITY: usize = 0;
/// Index of the transport authority in [`AGENCIES`].
pub const TRANSPORT: usize = 1;
/// Index of the environment office in [`AGENCIES`].
pub const ENVIRONMENT: usize = 2;

/// The three agencies, in the order they start.
pub const AGENCIES: [Plan; 3] = [
    Plan {
        short: "utility",
        name: "Riverton Power & Water",
        sectors: &["energy", "water"],
        files: &[IOWA_ELECTRICITY, WATER_NETWORK],
    },
    Plan {
        short: "transport",
        name: "Riverton Transport Authority",
        sectors: &["transport"],
        files: &[FLIGHTS, CARSHARE],
    },
    Plan {
        short: "environment",
        name: "Riverton Environment Office",
        sectors: &["ict"],
        files: &[WEATHER, CO2],
    },
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_metadata_file_is_valid_and_declares_the_expected_level() {
        for s in SHIPPED {
            let meta: cix_node::publish::Meta = toml::from_str(s.meta)
                .unwrap_or_else(|e| panic!("{}: invalid metadata: {e}", s.file));
            assert_eq!(meta.spectrum.as_deref(), Some(s.level), "{}", s.file);
            let title = meta.title.unwrap_or_default();
            assert!(!title.is_empty(), "{} has no title", s.file);
            assert!(meta.licence.is_some(), "{} has no licence", s.file);
            assert!(meta.provenance.is_some(), "{} has no provenance", s.file);
            for field in [
                &meta.data_type,
                &meta.kind,
                &meta.concept,
                &meta.domain,
                &meta.insight,
            ] {
                assert!(
                    field.is_some(),
                    "{} lacks part of its ISO 37156 classification",
                    s.file
                );
            }
        }
    }

    #[test]
    fn the_plan_covers_every_spectrum_the_demo_needs() {
        let levels: Vec<&str> = AGENCIES
            .iter()
            .flat_map(|a| a.files.iter().map(|f| f.level))
            .collect();
        for needed in ["open", "shared-public", "shared-named", "closed"] {
            assert!(levels.contains(&needed), "no {needed} dataset in the plan");
        }
        assert_eq!(levels.len(), SHIPPED.len());
    }
}
