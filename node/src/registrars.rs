//! The registrars this agency trusts (`trusted_registrars`, ISO 37156 5.5.3 group access), as the
//! running node holds them, and the immediate re-check when that trust changes (8.2.5).
//!
//! The list is read from the config at start. It changes while the node runs on `cix config
//! reload` (`POST /v1/config/reload`: the file and environment are read again; of the keys,
//! only `trusted_registrars` takes effect without a restart) and on `cix registrars trust DID`
//! / `cix registrars distrust DID` (`POST /v1/registrars`: config.toml is edited, then reloaded).
//! When a registrar leaves the list, every live grant this node issued is re-checked before the
//! call returns ([`crate::recheck`]): a group grant that rested on that registrar is revoked,
//! and the revocation's reason tells the holder why.

use anyhow::{anyhow, bail, Context, Result};
use cix_protocol::audit::AuditKind;
use cix_protocol::identity::Did;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::node::{Node, Shared};

/// The registrars trusted now.
pub fn trusted(shared: &Shared) -> Vec<Did> {
    match shared.registrars.read() {
        Ok(list) => list.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// `cix registrars trust|distrust`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustRequest {
    /// The registrar, did:key.
    pub did: String,
    /// Trust it (`true`) or stop trusting it.
    pub trust: bool,
}

/// What a change of trust did.
#[derive(Debug, Clone, Serialize)]
pub struct TrustChange {
    /// The registrars trusted now.
    pub trusted: Vec<String>,
    /// Newly trusted.
    pub added: Vec<String>,
    /// No longer trusted.
    pub removed: Vec<String>,
    /// The re-check run because of it (empty when nothing was removed).
    pub recheck: Vec<crate::recheck::RecheckLine>,
}

/// Makes `new` the trusted registrars; when one was removed, re-checks every live grant at
/// once (ISO 37156 8.2.5).
///
/// # Errors
///
/// Store I/O during the re-check.
pub async fn apply(node: &Node, new: Vec<Did>, how: &str) -> Result<TrustChange> {
    let shared = &node.shared;
    let old = trusted(shared);
    let added: Vec<Did> = new.iter().filter(|d| !old.contains(d)).copied().collect();
    let removed: Vec<Did> = old.iter().filter(|d| !new.contains(d)).copied().collect();
    match shared.registrars.write() {
        Ok(mut list) => *list = new.clone(),
        Err(poisoned) => *poisoned.into_inner() = new.clone(),
    }
    let names = |l: &[Did]| l.iter().map(ToString::to_string).collect::<Vec<_>>();
    if !added.is_empty() || !removed.is_empty() {
        info!(added = added.len(), removed = removed.len(), %how, "registrar trust changed");
        crate::audit::log(
            shared,
            crate::audit::AuditEvent::new(AuditKind::Other("registrar-trust".into())).detail(
                format!(
                    "trusted registrars changed ({how}): added [{}], removed [{}]",
                    names(&added).join(", "),
                    names(&removed).join(", ")
                ),
            ),
        )
        .await;
    }
    let recheck = if removed.is_empty() {
        Vec::new()
    } else {
        crate::recheck::recheck(
            node,
            &format!(
                "registrar trust withdrawn ({how}): {}",
                names(&removed).join(", ")
            ),
        )
        .await?
    };
    Ok(TrustChange {
        trusted: names(&new),
        added: names(&added),
        removed: names(&removed),
        recheck,
    })
}

/// Reads the configuration again (file and environment) and applies its `trusted_registrars`.
///
/// # Errors
///
/// An unreadable or invalid configuration, naming what is wrong; nothing changes then.
pub async fn reload(node: &Node) -> Result<TrustChange> {
    let effective = crate::layers::load(&node.shared.home, &crate::layers::Flags::default())?;
    apply(node, effective.config.trusted_registrars, "config reload").await
}

/// Adds a registrar to, or removes it from, `trusted_registrars` in config.toml, then reloads.
///
/// # Errors
///
/// A malformed DID, a config file that cannot be read, edited or written, or an edit the
/// environment overrides (`CIX_TRUSTED_REGISTRARS`).
pub async fn set_trust(node: &Node, req: &TrustRequest) -> Result<TrustChange> {
    let did: Did = req
        .did
        .trim()
        .parse()
        .map_err(|e| anyhow!("registrar {:?} is not a did:key: {e}", req.did))?;
    let path = node.shared.home.config();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("invalid config in {}", path.display()))?;
    let mut list: Vec<String> = match table.get("trusted_registrars") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    anyhow!(
                        "trusted_registrars in {} holds a non-string",
                        path.display()
                    )
                })
            })
            .collect::<Result<_>>()?,
        Some(_) => bail!("trusted_registrars in {} is not a list", path.display()),
    };
    let text_did = did.to_string();
    if req.trust {
        if !list.contains(&text_did) {
            list.push(text_did);
        }
    } else {
        list.retain(|d| d != &text_did);
    }
    let edited = with_key(&text, &table, &list)?;
    crate::home::write_atomic(&path, edited.as_bytes())?;
    let change = reload(node).await;
    match change {
        Ok(c) => {
            let now: Vec<String> = trusted(&node.shared)
                .iter()
                .map(ToString::to_string)
                .collect();
            if now.contains(&did.to_string()) != req.trust {
                bail!(
                    "config.toml was edited, but {} overrides trusted_registrars; change or unset it",
                    crate::layers::env_name("trusted_registrars")
                );
            }
            Ok(c)
        }
        Err(e) => {
            // Put the file back as it was: a failed edit leaves nothing half-done.
            crate::home::write_atomic(&path, text.as_bytes())?;
            Err(e)
        }
    }
}

/// `text` with `trusted_registrars = list`: the key's line replaced when it is on one line,
/// added before the first table when absent, the whole file re-written otherwise.
fn with_key(text: &str, table: &toml::Table, list: &[String]) -> Result<String> {
    let value = toml::Value::Array(list.iter().cloned().map(toml::Value::String).collect());
    let line = format!("trusted_registrars = {value}");
    let lines: Vec<&str> = text.lines().collect();
    let first_table = lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let at = lines[..first_table].iter().position(|l| {
        l.trim_start()
            .strip_prefix("trusted_registrars")
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
    match at {
        Some(i) if toml::from_str::<toml::Table>(lines[i]).is_ok() => out[i] = line,
        Some(_) => {
            let mut t = table.clone();
            t.insert("trusted_registrars".into(), value);
            return toml::to_string(&t).context("cannot write the config");
        }
        None => out.insert(first_table, line),
    }
    let mut s = out.join("\n");
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_replaced_in_place_or_added_before_the_first_table() {
        let text = "name = \"A\"\n# who we trust\ntrusted_registrars = [\"x\"]\n[privacy]\nc = 1\n";
        let t: toml::Table = toml::from_str(text).unwrap();
        let out = with_key(text, &t, &["y".into()]).unwrap();
        assert_eq!(
            out,
            "name = \"A\"\n# who we trust\ntrusted_registrars = [\"y\"]\n[privacy]\nc = 1\n"
        );
        let text = "name = \"A\"\n[privacy]\nc = 1\n";
        let t: toml::Table = toml::from_str(text).unwrap();
        let out = with_key(text, &t, &["y".into()]).unwrap();
        assert_eq!(
            out,
            "name = \"A\"\ntrusted_registrars = [\"y\"]\n[privacy]\nc = 1\n"
        );
        let text = "trusted_registrars = [\n  \"x\",\n]\nname = \"A\"\n";
        let t: toml::Table = toml::from_str(text).unwrap();
        let out: toml::Table = toml::from_str(&with_key(text, &t, &[]).unwrap()).unwrap();
        assert_eq!(out["trusted_registrars"], toml::Value::Array(vec![]));
        assert_eq!(out["name"].as_str(), Some("A"));
    }
}
