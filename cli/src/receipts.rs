//! `cix receipts ...` (ISO 37156 8.3.4, 8.2.2 e) and `cix privacy ...` (8.3.3).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cix_node::Home;
use cix_protocol::profile::PrivacyNotice;
use cix_protocol::receipt::Bundle;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::Out;

/// Largest receipt file `cix receipts verify FILE` reads.
const MAX_FILE_BYTES: u64 = cix_protocol::limits::MAX_RECEIPT_BUNDLE_BYTES as u64;
/// Largest privacy notice file read.
const MAX_NOTICE_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Subcommand)]
pub(crate) enum ReceiptsCommand {
    /// Receipts this node keeps, as receiver and as provider.
    List,
    /// One receipt in full; `--out FILE` writes its bundle (receipt and counter-signature) for
    /// anyone to verify with `cix receipts verify FILE`.
    Show {
        /// Receipt id (64 hex digits, or a unique prefix of at least 4).
        id: String,
        /// Write the receipt bundle (canonical CBOR) to FILE.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Verify a kept receipt by id, or a receipt file (no node needed): the receiver's
    /// signature, the provider's counter-signature, and that they belong together.
    Verify {
        /// A receipt id kept by this node, or the path of a receipt file.
        id_or_file: String,
    },
    /// Deletion notices: data this node deleted when its retention ran out, and deletions its
    /// receivers reported.
    Deletions,
    /// Data this node holds under a retention period, with when it will be deleted.
    Retention,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrivacyCommand {
    /// Show this agency's privacy notice, or a connected peer's (by did:key or PeerId).
    Notice {
        /// The peer (did:key:… or PeerId); this node's own when omitted.
        peer: Option<String>,
    },
    /// Set this agency's privacy notice from a TOML file (controller, purposes, third_parties,
    /// rights, cross_border, contact, url). Writes config.toml; restart the node to sign it
    /// into the profile.
    Set {
        /// The notice file.
        file: PathBuf,
    },
    /// Run the re-identification guard (ISO 37156 7.4.2.5) on a CSV file: k-anonymity over
    /// the columns the metadata file marks `privacy = "quasi-identifier"` and l-diversity of
    /// those it marks `"sensitive"`; refused tables get the offending groups and a suggestion.
    /// Thresholds default to the node's `[reidentification]` config. Exits non-zero when refused
    /// (unless --apply wrote the suggestion).
    Check {
        /// The CSV file.
        file: PathBuf,
        /// The metadata file (`cix publish --meta` format) whose `[fields.NAME]` tables mark
        /// the columns.
        #[arg(long, value_name = "META")]
        dictionary: PathBuf,
        /// Smallest group allowed.
        #[arg(long)]
        k: Option<u32>,
        /// Fewest distinct sensitive values allowed in a group.
        #[arg(long)]
        l: Option<u32>,
        /// Most rows the suggestion may suppress, per thousand.
        #[arg(long)]
        max_suppressed_permille: Option<u32>,
        /// Write the table with the suggestion applied (generalised, suppressed) to FILE.
        #[arg(long, value_name = "FILE")]
        apply: Option<PathBuf>,
    },
}

fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > max {
        bail!(
            "{} is {} bytes: a {what} is at most {max}",
            path.display(),
            meta.len()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads and checks a privacy notice file.
pub(crate) fn read_notice(path: &Path) -> Result<PrivacyNotice> {
    let bytes = read_bounded(path, MAX_NOTICE_FILE_BYTES, "privacy notice file")?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    let notice: PrivacyNotice = toml::from_str(&text)
        .with_context(|| format!("{} is not a privacy notice", path.display()))?;
    notice
        .check()
        .map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.field, e.rule))?;
    Ok(notice)
}

fn ms(v: &Value) -> String {
    v.as_i64()
        .and_then(|t| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t) * 1_000_000).ok()
        })
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

/// `cix receipts verify FILE`: needs no node and no home.
pub(crate) fn verify_file(path: &Path, out: &mut Out) -> Result<()> {
    let bytes = read_bounded(path, MAX_FILE_BYTES, "receipt file")?;
    let v = match Bundle::decode(&bytes) {
        Ok(b) => json!({ "valid": true, "id": b.receipt.id_hex(),
                         "countersigned": b.ack.is_some() }),
        Err(e) => json!({ "valid": false, "countersigned": false, "reason": e.to_string() }),
    };
    verdict(&v, out)
}

fn verdict(v: &Value, out: &mut Out) -> Result<()> {
    if v["valid"] != Value::Bool(true) {
        if out.is_json() {
            out.line(v)?;
        }
        bail!(
            "receipt does not verify: {}",
            v["reason"].as_str().unwrap_or("unknown reason")
        );
    }
    let how = if v["countersigned"] == Value::Bool(true) {
        "signed by its receiver and counter-signed by its provider"
    } else {
        "signed by its receiver; no counter-signature from the provider"
    };
    out.message(
        v,
        &format!(
            "receipt {} verifies: {how}",
            v["id"].as_str().unwrap_or("-")
        ),
    )
}

pub(crate) fn receipts(home: &Home, cmd: ReceiptsCommand, out: &mut Out) -> Result<()> {
    match cmd {
        ReceiptsCommand::List => {
            let lines: Vec<Value> = Client::connect(home)?.get("/v1/receipts")?;
            if out.is_json() {
                return lines.iter().try_for_each(|l| out.line(l));
            }
            if lines.is_empty() {
                return out.message(&Value::Null, "no receipts kept");
            }
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
            t.set_header(vec!["id", "role", "dataset", "bytes", "end", "status"]);
            for l in &lines {
                let s = |k: &str| l[k].as_str().unwrap_or("-").to_string();
                let id: String = s("id").chars().take(16).collect();
                t.add_row(vec![
                    id,
                    s("role"),
                    s("dataset"),
                    l["bytes"].to_string(),
                    ms(&l["end"]),
                    s("status"),
                ]);
            }
            out.message(&Value::Null, &t.to_string())
        }
        ReceiptsCommand::Show { id, out: file } => {
            if id.is_empty() || !id.bytes().all(|c| c.is_ascii_hexdigit()) {
                bail!("{id:?} is not a receipt id (hex digits)");
            }
            let v: Value = Client::connect(home)?.get(&format!("/v1/receipts/{id}"))?;
            if let Some(path) = &file {
                let bytes = hex::decode(v["bundle"].as_str().unwrap_or_default())
                    .context("the node sent a bundle that is not hex")?;
                cix_node::home::write_atomic(path, &bytes)?;
            }
            if out.is_json() {
                return out.line(&v);
            }
            let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
            let mut text = format!(
                "receipt   {}\nrole      {}\nstatus    {}\ndataset   {}\ncontent   {}\nbytes     {}\n\
                 receiver  {}\nprovider  {}\ninvocation {}\npurpose   {}\nretention {}\nstart     {}\nend       {}",
                s("id"), s("role"), s("status"), s("dataset"), s("content"), v["bytes"],
                s("receiver"), s("provider"), s("invocation"), s("purpose"),
                v["retention_days"].as_u64().map_or("-".into(), |d| format!("{d} days")),
                ms(&v["start"]), ms(&v["end"])
            );
            if let Some(r) = v["refused"].as_str() {
                text.push_str(&format!("\nrefused   {r}"));
            }
            if let Some(p) = &file {
                text.push_str(&format!("\nwritten   {}", p.display()));
            }
            out.message(&v, &text)
        }
        ReceiptsCommand::Verify { id_or_file } => {
            let path = Path::new(&id_or_file);
            if path.is_file() {
                return verify_file(path, out);
            }
            let v: Value =
                Client::connect(home)?.post("/v1/receipts/verify", &json!({ "id": id_or_file }))?;
            verdict(&v, out)
        }
        ReceiptsCommand::Deletions => {
            let lines: Vec<Value> = Client::connect(home)?.get("/v1/deletions")?;
            if out.is_json() {
                return lines.iter().try_for_each(|l| out.line(l));
            }
            if lines.is_empty() {
                return out.message(&Value::Null, "no deletion notices kept");
            }
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
            t.set_header(vec![
                "role",
                "dataset",
                "deleted",
                "days",
                "delivered",
                "what",
            ]);
            for l in &lines {
                let s = |k: &str| l[k].as_str().unwrap_or("-").to_string();
                t.add_row(vec![
                    s("role"),
                    s("dataset"),
                    ms(&l["deleted"]),
                    l["retention_days"].to_string(),
                    l["delivered"].to_string(),
                    s("what"),
                ]);
            }
            out.message(&Value::Null, &t.to_string())
        }
        ReceiptsCommand::Retention => {
            let lines: Vec<Value> = Client::connect(home)?.get("/v1/retention")?;
            if out.is_json() {
                return lines.iter().try_for_each(|l| out.line(l));
            }
            if lines.is_empty() {
                return out.message(&Value::Null, "no data held under a retention period");
            }
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
            t.set_header(vec!["dataset", "file", "days", "deleted at"]);
            for l in &lines {
                t.add_row(vec![
                    l["dataset"].as_str().unwrap_or("-").to_string(),
                    l["path"].as_str().unwrap_or("-").to_string(),
                    l["retention_days"].to_string(),
                    ms(&l["expires"]),
                ]);
            }
            out.message(&Value::Null, &t.to_string())
        }
    }
}

pub(crate) fn privacy(home: &Home, cmd: PrivacyCommand, out: &mut Out) -> Result<()> {
    match cmd {
        PrivacyCommand::Check {
            file,
            dictionary,
            k,
            l,
            max_suppressed_permille,
            apply,
        } => {
            let thresholds = home
                .load_config()
                .map(|c| c.reidentification)
                .unwrap_or_default();
            crate::reident::check(
                crate::reident::CheckArgs {
                    file,
                    dictionary,
                    k,
                    l,
                    max_suppressed_permille,
                    apply,
                    thresholds,
                },
                out,
            )
        }
        PrivacyCommand::Set { file } => {
            let notice = read_notice(&file)?;
            let mut config = home.load_config()?;
            config.privacy = Some(notice.clone());
            config.validate().map_err(|e| anyhow::anyhow!(e))?;
            let text = toml::to_string(&config).context("cannot encode the config")?;
            cix_node::home::write_atomic(&home.config(), text.as_bytes())?;
            let hash = notice.hash().map_err(|e| anyhow::anyhow!("{e}"))?;
            out.message(
                &json!({ "hash": hash, "config": home.config() }),
                &format!(
                    "privacy notice {hash} written to {}; restart the node to sign it into the \
                     agency profile",
                    home.config().display()
                ),
            )
        }
        PrivacyCommand::Notice { peer } => {
            let client = Client::connect(home)?;
            let v: Value = match &peer {
                Some(p) => client.get_query("/v1/privacy/notice", &[("peer", p.clone())])?,
                None => client.get("/v1/privacy/notice")?,
            };
            if out.is_json() {
                return out.line(&v);
            }
            let who = v["agency"].as_str().unwrap_or("-");
            let n = &v["notice"];
            if n.is_null() {
                return out.message(&v, &format!("{who} has no privacy notice"));
            }
            let s = |k: &str| n[k].as_str().unwrap_or("-").to_string();
            let purposes: Vec<&str> = n["purposes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let text = format!(
                "privacy notice of {who} ({})\nhash            {}\ncontroller      {}\npurposes        {}\n\
                 third parties   {}\nrights          {}\ncross-border    {}\ncontact         {}\nurl             {}",
                v["did"].as_str().unwrap_or("-"),
                v["hash"].as_str().unwrap_or("-"),
                s("controller"),
                purposes.join("; "),
                s("third_parties"),
                s("rights"),
                s("cross_border"),
                s("contact"),
                s("url"),
            );
            out.message(&v, &text)
        }
    }
}
