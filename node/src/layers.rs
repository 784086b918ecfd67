//! The effective configuration: defaults, then `HOME/config.toml`, then the environment,
//! then command-line flags, each overriding the one before; and where each value came from
//! (`cix config show`). `docs/config.md` documents every key.
//!
//! Environment: `CIX_<KEY>` in capitals sets `<KEY>` (for example `CIX_GRANT_DAYS=14`,
//! `CIX_RELAY_SERVER=true`). The value is read as a TOML value when it is one (numbers,
//! booleans, `[...]` arrays, quoted strings) and as a plain string otherwise; for list
//! settings a plain value is split at commas (`CIX_BOOTSTRAP=/ip4/.../p2p/A,/ip4/.../p2p/B`).
//! The `privacy` table cannot be set from the environment.
//!
//! Flags (`cix node run`, `cix config show`): `--listen` replaces the listen addresses,
//! `--bootstrap` adds bootstrap peers.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use crate::config::Config;
use crate::home::Home;

/// Prefix of the environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "CIX_";

/// Every key of [`Config`], in the order `cix config show` and `docs/config.md` list them.
pub const KEYS: &[&str] = &[
    "name",
    "jurisdiction",
    "sectors",
    "contact",
    "listen",
    "tcp_security",
    "bootstrap",
    "external_addresses",
    "relay_server",
    "admin_listen",
    "admin_behind_tls",
    "store_cache_bytes",
    "grant_days",
    "trusted_registrars",
    "audit_witness_secs",
    "privacy",
    "retention_day_secs",
    "rights_deadline_days",
    "rights_day_secs",
    "reidentification",
];

/// Keys the environment cannot set (tables).
const NOT_FROM_ENV: &[&str] = &["privacy", "reidentification"];

/// Flags that override the configuration for one run.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--listen`: replaces `listen` when not empty.
    pub listen: Vec<String>,
    /// `--bootstrap`: added to `bootstrap`.
    pub bootstrap: Vec<String>,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Nobody set it.
    Default,
    /// `HOME/config.toml`.
    File,
    /// An environment variable (named in [`Setting::origin`]).
    Environment,
    /// A command-line flag (named in [`Setting::origin`]).
    Flag,
}

/// One key of the effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    /// The key, as in config.toml.
    pub key: String,
    /// Its effective value, TOML-formatted; `(unset)` for an absent optional setting.
    pub value: String,
    /// Where it came from.
    pub source: Source,
    /// The file, variable or flag, when not the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// The effective configuration and the provenance of each key.
#[derive(Debug, Clone)]
pub struct Effective {
    /// What the node runs with.
    pub config: Config,
    /// One line per key of [`KEYS`].
    pub settings: Vec<Setting>,
}

/// The variable that sets `key`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

fn env_value(key: &str, raw: &str, is_list: bool) -> Result<toml::Value> {
    let trimmed = raw.trim();
    if is_list && !trimmed.starts_with('[') {
        return Ok(toml::Value::Array(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ));
    }
    match toml::from_str::<toml::Table>(&format!("v = {trimmed}")) {
        Ok(mut t) => t
            .remove("v")
            .ok_or_else(|| anyhow!("{}: no value", env_name(key))),
        Err(_) if is_list => Err(anyhow!(
            "{}: {raw:?} is neither a TOML array nor a comma-separated list",
            env_name(key)
        )),
        Err(_) => Ok(toml::Value::String(trimmed.to_string())),
    }
}

fn is_list_key(key: &str) -> bool {
    matches!(
        key,
        "sectors" | "listen" | "bootstrap" | "external_addresses" | "trusted_registrars"
    )
}

/// The start of every error about the config file: where it is and where each setting is
/// described.
fn invalid(path: &std::path::Path, with: &str) -> String {
    format!(
        "invalid config in {}{with}: fix the setting named below (docs/config.md and README.md, \
         Configuration, list every setting and its default)",
        path.display()
    )
}

/// Loads the effective configuration of `home`, reading the environment through `env`
/// (`std::env::var` in the binary; a map in tests).
///
/// # Errors
///
/// If the file cannot be read or the result is not a valid configuration, naming the file,
/// variable or key at fault.
pub fn load_with(
    home: &Home,
    flags: &Flags,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Effective> {
    let path = home.config();
    let text = crate::home::read_home_file(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!("cannot read {} (run `cix init` first)", path.display())
        } else {
            anyhow!(
                "cannot read {}: {e}; it must be UTF-8 TOML readable by this user",
                path.display()
            )
        }
    })?;
    let mut table: toml::Table = toml::from_str(&text).with_context(|| invalid(&path, ""))?;
    let from_file: BTreeSet<String> = table.keys().cloned().collect();
    let mut from_env = BTreeMap::new();
    for key in KEYS {
        if NOT_FROM_ENV.contains(key) {
            continue;
        }
        let name = env_name(key);
        if let Some(raw) = env(&name) {
            let value = env_value(key, &raw, is_list_key(key))?;
            table.insert(key.to_string(), value);
            from_env.insert(key.to_string(), name);
        }
    }
    let mut config: Config = toml::Value::Table(table).try_into().with_context(|| {
        if from_env.is_empty() {
            invalid(&path, "")
        } else {
            let vars = from_env.values().cloned().collect::<Vec<_>>().join(", ");
            invalid(&path, &format!(" with {vars}"))
        }
    })?;
    let mut from_flag = BTreeMap::new();
    if !flags.listen.is_empty() {
        config.listen = flags.listen.clone();
        from_flag.insert("listen", "--listen");
    }
    if !flags.bootstrap.is_empty() {
        config.bootstrap.extend(flags.bootstrap.iter().cloned());
        from_flag.insert("bootstrap", "--bootstrap");
    }
    config
        .validate()
        .map_err(|e| anyhow!("{}: {e}", invalid(&path, "")))?;
    let shown = toml::Table::try_from(&config).context("cannot show the configuration")?;
    let settings = KEYS
        .iter()
        .map(|key| {
            let (source, origin) = if let Some(f) = from_flag.get(key) {
                (Source::Flag, Some(f.to_string()))
            } else if let Some(v) = from_env.get(*key) {
                (Source::Environment, Some(v.clone()))
            } else if from_file.contains(*key) {
                (Source::File, Some(path.display().to_string()))
            } else {
                (Source::Default, None)
            };
            let value = match shown.get(*key) {
                Some(toml::Value::Table(t)) => toml::to_string(t)
                    .unwrap_or_default()
                    .trim()
                    .replace('\n', "; "),
                Some(v) => v.to_string(),
                None => "(unset)".into(),
            };
            Setting {
                key: key.to_string(),
                value,
                source,
                origin,
            }
        })
        .collect();
    Ok(Effective { config, settings })
}

/// [`load_with`] reading the process environment.
///
/// # Errors
///
/// As [`load_with`].
pub fn load(home: &Home, flags: &Flags) -> Result<Effective> {
    load_with(home, flags, |name| std::env::var(name).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn home_with(text: &str) -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), text).unwrap();
        let home = Home::new(dir.path());
        (dir, home)
    }

    fn source<'a>(e: &'a Effective, key: &str) -> &'a Setting {
        e.settings.iter().find(|s| s.key == key).unwrap()
    }

    #[test]
    fn each_layer_overrides_the_one_before_and_says_so() {
        let (_d, home) = home_with("name = \"Water\"\njurisdiction = \"NL\"\ngrant_days = 10\n");
        let env = |n: &str| match n {
            "CIX_GRANT_DAYS" => Some("12".to_string()),
            "CIX_BOOTSTRAP" => Some("/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/tcp/2".to_string()),
            "CIX_RELAY_SERVER" => Some("true".to_string()),
            _ => None,
        };
        let flags = Flags {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            bootstrap: vec!["/ip4/127.0.0.1/tcp/3".into()],
        };
        let e = load_with(&home, &flags, env).unwrap();
        assert_eq!(e.config.grant_days, 12);
        assert!(e.config.relay_server);
        assert_eq!(e.config.listen, vec!["/ip4/127.0.0.1/tcp/0".to_string()]);
        assert_eq!(e.config.bootstrap.len(), 3);
        assert_eq!(source(&e, "name").source, Source::File);
        assert_eq!(source(&e, "grant_days").source, Source::Environment);
        assert_eq!(
            source(&e, "grant_days").origin.as_deref(),
            Some("CIX_GRANT_DAYS")
        );
        assert_eq!(source(&e, "listen").source, Source::Flag);
        assert_eq!(source(&e, "bootstrap").source, Source::Flag);
        assert_eq!(source(&e, "audit_witness_secs").source, Source::Default);
        assert_eq!(source(&e, "audit_witness_secs").value, "300");
        assert_eq!(source(&e, "contact").value, "(unset)");
    }

    #[test]
    fn a_bad_environment_value_is_named() {
        let (_d, home) = home_with("name = \"Water\"\njurisdiction = \"NL\"\n");
        let env = |n: &str| (n == "CIX_GRANT_DAYS").then(|| "many".to_string());
        let err = load_with(&home, &Flags::default(), env).unwrap_err();
        assert!(format!("{err:#}").contains("CIX_GRANT_DAYS"), "{err:#}");
        let env = |n: &str| (n == "CIX_GRANT_DAYS").then(|| "0".to_string());
        let err = load_with(&home, &Flags::default(), env).unwrap_err();
        assert!(format!("{err:#}").contains("grant_days"), "{err:#}");
    }

    #[test]
    fn keys_are_the_config_fields_and_the_reference_lists_each() {
        // Every key a default config serialises is listed; the rest are the optional ones.
        let shown = toml::Table::try_from(Config::new("A", "NL")).unwrap();
        let keys: BTreeSet<&str> = KEYS.iter().copied().collect();
        for k in shown.keys() {
            assert!(keys.contains(k.as_str()), "{k} is missing from KEYS");
        }
        let optional: BTreeSet<&str> = keys
            .iter()
            .copied()
            .filter(|k| !shown.contains_key(*k))
            .collect();
        assert_eq!(
            optional,
            BTreeSet::from([
                "contact",
                "trusted_registrars",
                "privacy",
                "retention_day_secs",
                "rights_day_secs",
                "admin_behind_tls",
                "reidentification"
            ])
        );
        // Each key is accepted by the struct (deny_unknown_fields would refuse a stale one).
        for k in [
            "contact = \"x@example.org\"",
            "trusted_registrars = []",
            "retention_day_secs = 5",
            "rights_day_secs = 2",
            "[reidentification]\nk = 3",
        ] {
            let text = format!("name = \"A\"\njurisdiction = \"NL\"\n{k}\n");
            toml::from_str::<Config>(&text).unwrap();
        }
        // docs/config.md has one `### key` heading per key, in this order.
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md"))
                .unwrap();
        let documented: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("### `"))
            .filter_map(|l| l.strip_suffix('`'))
            .collect();
        assert_eq!(documented, KEYS.to_vec());
    }
}
