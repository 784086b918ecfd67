//! `cix catalogue import` and `cix catalogue export`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use cix_interchange::{detect, parse, DraftsFile, Format, Mapping, MAX_IMPORT_BYTES};
use cix_node::Home;
use clap::Args;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::Out;

/// Drafts sent to the node per request.
const IMPORT_BATCH: usize = 100;

/// Import a catalogue file.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The catalogue file: Project Open Data data.json, DCAT-AP (JSON-LD, Turtle, RDF/XML),
    /// CKAN package JSON, FIWARE DCAT-AP NGSI-LD entities, or a drafts file from --drafts.
    file: PathBuf,
    /// Force the format instead of detecting it: data-json, dcat-ap-jsonld, dcat-ap-turtle,
    /// dcat-ap-rdfxml, ckan, ngsi-ld or cix-drafts.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Mapping file (TOML) that supplies each record's ISO 37156 block: [defaults] plus
    /// [[rules]] matched on keyword, theme, publisher, identifier or title. Giving it
    /// confirms the blocks it yields.
    #[arg(long, value_name = "FILE.toml")]
    mapping: Option<PathBuf>,
    /// Accept the ISO 37156 blocks the file itself states (a cix export) as confirmed.
    #[arg(long)]
    accept_stated: bool,
    /// Write editable drafts (JSON) to FILE and sign nothing; fill in each `iso`, then import
    /// that file.
    #[arg(long, value_name = "FILE")]
    drafts: Option<PathBuf>,
    /// Check every record with the node and report what would happen; sign nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Export this node's own datasets.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// dcat-ap-jsonld, dcat-ap-turtle or data-json.
    #[arg(long, value_name = "FORMAT")]
    format: String,
    /// Write to FILE (atomically) instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_IMPORT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > MAX_IMPORT_BYTES {
        bail!(
            "{} is over the import limit of {MAX_IMPORT_BYTES} bytes",
            path.display()
        );
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a failure
/// leaves nothing half-written.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

pub(crate) fn import(home: &Home, args: ImportArgs, out: &mut Out) -> Result<()> {
    let bytes = read_bounded(&args.file)?;
    let name = args.file.to_string_lossy();
    let format = match &args.format {
        Some(f) => f.parse::<Format>().map_err(|e| anyhow!(e))?,
        None => detect(&name, &bytes)?,
    };
    let parsed = parse(format, &bytes).with_context(|| format!("cannot import {name}"))?;
    let mapping = match &args.mapping {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Some(Mapping::parse(&text).map_err(|e| anyhow!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let mut drafts = parsed.drafts;
    for d in &mut drafts {
        if let Some(m) = &mapping {
            d.iso = m.classify(&d.record, &d.iso);
        }
    }
    if let Some(path) = &args.drafts {
        let file = DraftsFile {
            cix_drafts: 1,
            drafts,
            skipped: parsed.skipped,
        };
        let text = serde_json::to_vec_pretty(&file)?;
        write_atomically(path, &text)?;
        let v =
            json!({ "drafts": file.drafts.len(), "skipped": file.skipped.len(), "written": path });
        return out.message(
            &v,
            &format!(
                "wrote {} drafts ({} records skipped) to {}: fill in each \"iso\" block, then run cix catalogue import {}",
                file.drafts.len(),
                file.skipped.len(),
                path.display(),
                path.display()
            ),
        );
    }
    let confirmed_by_operator =
        mapping.is_some() || format == Format::CixDrafts || args.accept_stated;
    let mut lines: Vec<Value> = Vec::new();
    for s in &parsed.skipped {
        lines.push(json!({ "source_id": s.source, "outcome": "skipped", "reason": s.reason }));
    }
    let mut send = Vec::new();
    let mut notes_of = Vec::new();
    for d in drafts {
        let missing = d.iso.missing();
        if !confirmed_by_operator || !missing.is_empty() {
            let reason = if confirmed_by_operator {
                format!("ISO 37156 block incomplete: missing {}", missing.join(", "))
            } else {
                "ISO 37156 block not confirmed: give --mapping FILE, or write --drafts and import them once filled in".to_string()
            };
            lines.push(
                json!({ "source_id": d.record.source_id, "title": d.record.title,
                               "outcome": "unconfirmed", "reason": reason, "notes": d.notes }),
            );
            continue;
        }
        notes_of.push((d.record.source_id.clone(), d.notes));
        send.push(json!({ "record": d.record, "iso": d.iso }));
    }
    if !send.is_empty() {
        let client = Client::connect(home)?;
        let mut results: Vec<Value> = Vec::with_capacity(send.len());
        // Batches keep each request well under the admin API's body limit.
        for batch in send.chunks(IMPORT_BATCH) {
            let part: Vec<Value> = client.post(
                "/v1/catalogue/import",
                &json!({ "drafts": batch, "dry_run": args.dry_run }),
            )?;
            results.extend(part);
        }
        for mut r in results {
            let sid = r["source_id"].as_str().unwrap_or_default().to_string();
            if let Some((_, notes)) = notes_of.iter().find(|(s, _)| *s == sid) {
                r["notes"] = json!(notes);
            }
            lines.push(r);
        }
    }
    report(out, &lines)
}

fn report(out: &mut Out, lines: &[Value]) -> Result<()> {
    if out.is_json() {
        for l in lines {
            out.line(l)?;
        }
        return Ok(());
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for l in lines {
        let o = l["outcome"].as_str().unwrap_or("?").to_string();
        match counts.iter_mut().find(|(k, _)| *k == o) {
            Some((_, n)) => *n += 1,
            None => counts.push((o, 1)),
        }
        let mut text = format!(
            "{:<12} {}  {}",
            l["outcome"].as_str().unwrap_or("?"),
            l["source_id"].as_str().unwrap_or(""),
            l["title"].as_str().unwrap_or("")
        );
        if let Some(d) = l["dataset"].as_str() {
            text.push_str(&format!("  dataset {d} v{}", l["version"]));
        }
        if let Some(r) = l["reason"].as_str() {
            text.push_str(&format!("\n             why: {r}"));
        }
        for n in l["notes"].as_array().into_iter().flatten() {
            text.push_str(&format!(
                "\n             note: {}",
                n.as_str().unwrap_or("")
            ));
        }
        out.message(l, &text)?;
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    out.message(
        &json!({}),
        &format!("{} records: {}", lines.len(), summary.join(", ")),
    )?;
    // Scripts must notice: a refused record is a failure of the import (exit status 1), while
    // unconfirmed records are the expected first step without a mapping.
    let refused = lines.iter().filter(|l| l["outcome"] == "refused").count();
    if refused > 0 {
        bail!(
            "{refused} of {} records refused: each names the field and the rule it broke",
            lines.len()
        );
    }
    Ok(())
}

pub(crate) fn export(home: &Home, args: ExportArgs, out: &mut Out) -> Result<()> {
    args.format
        .parse::<cix_interchange::ExportFormat>()
        .map_err(|e| anyhow!(e))?;
    let v: Value =
        Client::connect(home)?.get(&format!("/v1/catalogue/export?format={}", args.format))?;
    let text = v["text"]
        .as_str()
        .ok_or_else(|| anyhow!("the node sent no export text"))?;
    match &args.output {
        Some(path) => {
            write_atomically(path, text.as_bytes())?;
            out.message(
                &json!({ "format": args.format, "entries": v["entries"], "written": path }),
                &format!(
                    "exported {} datasets as {} to {}",
                    v["entries"],
                    args.format,
                    path.display()
                ),
            )
        }
        None => {
            let mut so = std::io::stdout();
            so.write_all(text.as_bytes())?;
            Ok(())
        }
    }
}
