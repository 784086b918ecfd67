//! `cix audit log | export | verify`: the node's tamper-evident audit log (ISO 37156 8.3.4,
//! 9.4; `specs/audit.md`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use cix_node::Home;
use cix_protocol::audit::{check_witnessed, split_sequence, verify_chain, AuditHash, Vouched};
use cix_protocol::identity::Did;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::Out;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// List the node's audit records, oldest first (filters combine).
    Log(LogArgs),
    /// Write the node's signed records, verbatim, to a file (a CBOR sequence, specs/audit.md).
    Export(ExportArgs),
    /// Check the node's log, or an exported file, end to end: names the first broken record
    /// and exits non-zero if there is one.
    Verify(VerifyArgs),
    /// Send this node's signed log head to every connected peer now, to be counter-signed
    /// (this also happens every `audit_witness_secs`).
    Witness,
    /// Append an operator's note to the log (kind `note`).
    Note {
        /// The text of the note.
        text: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Only records of this kind (publish, version, withdrawal, access-request, grant, denial,
    /// delegation, revocation, transfer-start, transfer-end, receipt, deletion,
    /// deletion-notice, note, ...).
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
    /// Only records about this dataset (its 32 hex digit id).
    #[arg(long, value_name = "ID")]
    dataset: Option<String>,
    /// Only records whose counterparty is this agency (did:key:z6Mk…).
    #[arg(long, value_name = "DID")]
    peer: Option<String>,
    /// Only records written at or after this time (RFC 3339, or Unix seconds).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only records written at or before this time (RFC 3339, or Unix seconds).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// At most this many records (the newest that match).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The file to write (replaced whole, never half-written). Default: standard output,
    /// when it is not a terminal.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// First sequence number to export (default 1).
    #[arg(long, value_name = "SEQ")]
    from: Option<u64>,
    /// Last sequence number to export (default: the head).
    #[arg(long, value_name = "SEQ")]
    to: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// An exported log to check; without it, the running node's own log.
    file: Option<PathBuf>,
    /// Also check the heads peers witnessed (and counter-signatures kept by the node): a
    /// witnessed head the log no longer matches (a rewritten or truncated log) fails.
    #[arg(long)]
    witnesses: bool,
}

fn parse_time(text: &str) -> Result<i64> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            anyhow!("{text:?} is not a time: give RFC 3339 (2026-12-04T10:00:00Z) or Unix seconds")
        })?;
    Ok(t.unix_timestamp())
}

fn utc(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string())
}

pub(crate) fn audit(home: &Home, cmd: AuditCommand, out: &mut Out) -> Result<()> {
    match cmd {
        AuditCommand::Log(args) => log(home, args, out),
        AuditCommand::Export(args) => export(home, args, out),
        AuditCommand::Verify(args) => verify(home, args, out),
        AuditCommand::Witness => {
            let v: Value = Client::connect(home)?.post("/v1/audit/witness", &json!({}))?;
            let text = format!(
                "head seq {} sent to {} peer(s), {} counter-signature(s) kept",
                v["seq"], v["peers"], v["witnessed"]
            );
            out.message(&v, &text)
        }
        AuditCommand::Note { text } => {
            let v: Value =
                Client::connect(home)?.post("/v1/audit/note", &json!({ "detail": text }))?;
            let text = format!("note appended as record {}", v["seq"]);
            out.message(&v, &text)
        }
    }
}

fn log(home: &Home, args: LogArgs, out: &mut Out) -> Result<()> {
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(k) = args.kind {
        cix_protocol::audit::AuditKind::parse(&k).map_err(|e| anyhow!("--kind: {e}"))?;
        q.push(("kind", k));
    }
    if let Some(d) = args.dataset {
        q.push(("dataset", d));
    }
    if let Some(p) = args.peer {
        p.parse::<Did>().map_err(|e| anyhow!("--peer: {e}"))?;
        q.push(("peer", p));
    }
    if let Some(s) = args.since {
        q.push(("since", parse_time(&s).context("--since")?.to_string()));
    }
    if let Some(u) = args.until {
        q.push(("until", parse_time(&u).context("--until")?.to_string()));
    }
    if let Some(l) = args.limit {
        q.push(("limit", l.to_string()));
    }
    let lines: Vec<Value> = Client::connect(home)?.get_query("/v1/audit", &q)?;
    if out.is_json() {
        return lines.iter().try_for_each(|l| out.line(l));
    }
    if lines.is_empty() {
        return out.message(&Value::Null, "no audit records match");
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(vec!["seq", "at", "kind", "dataset", "peer", "what"]);
    for l in &lines {
        let s = |k: &str| l[k].as_str().unwrap_or("").to_string();
        let short = |k: &str| {
            let v = s(k);
            if v.len() > 20 {
                format!("{}…", &v[..20])
            } else if v.is_empty() {
                "-".into()
            } else {
                v
            }
        };
        let mut what = Vec::new();
        for k in ["purpose", "reason", "detail"] {
            if !s(k).is_empty() {
                what.push(format!("{k}: {}", s(k)));
            }
        }
        if let Some(b) = l["bytes"].as_u64() {
            what.push(format!("{b} bytes"));
        }
        t.add_row(vec![
            l["seq"].to_string(),
            utc(l["at"].as_i64().unwrap_or(0)),
            s("kind"),
            short("dataset"),
            short("peer"),
            crate::output::printable(&what.join("; ")).into_owned(),
        ]);
    }
    out.message(&Value::Null, &t.to_string())
}

#[derive(Deserialize)]
struct Exported {
    did: String,
    records: Vec<String>,
}

fn fetch_records(
    client: &Client,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<(Did, Vec<Vec<u8>>)> {
    let mut q = Vec::new();
    if let Some(f) = from {
        q.push(("from", f.to_string()));
    }
    if let Some(t) = to {
        q.push(("to", t.to_string()));
    }
    let e: Exported = client.get_query("/v1/audit/export", &q)?;
    let did: Did = e
        .did
        .parse()
        .map_err(|e| anyhow!("the node named itself wrongly: {e}"))?;
    let records = e
        .records
        .iter()
        .map(|h| hex::decode(h).map_err(|_| anyhow!("the node sent a record that is not hex")))
        .collect::<Result<Vec<_>>>()?;
    Ok((did, records))
}

fn export(home: &Home, args: ExportArgs, out: &mut Out) -> Result<()> {
    if let (Some(f), Some(t)) = (args.from, args.to) {
        if f > t {
            bail!("--from {f} is after --to {t}");
        }
    }
    let client = Client::connect(home)?;
    let (_, records) = fetch_records(&client, args.from, args.to)?;
    let bytes: Vec<u8> = records.concat();
    let first = records
        .first()
        .and_then(|r| cix_protocol::audit::SignedRecord::decode(r).ok())
        .map(|s| s.record.seq);
    let last = records
        .last()
        .and_then(|r| cix_protocol::audit::SignedRecord::decode(r).ok())
        .map(|s| s.record.seq);
    match &args.output {
        Some(path) => write_whole(path, &bytes)?,
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                bail!("the export is binary (CBOR): give -o FILE, or redirect standard output");
            }
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&bytes)?;
            stdout.flush()?;
            return Ok(());
        }
    }
    let v = json!({
        "records": records.len(),
        "first": first,
        "last": last,
        "bytes": bytes.len(),
        "path": args.output.as_ref().map(|p| p.display().to_string()),
    });
    let text = match (first, last) {
        (Some(a), Some(b)) => format!(
            "wrote {} records (seq {a} to {b}, {} bytes) to {}",
            records.len(),
            bytes.len(),
            args.output.as_deref().unwrap_or(Path::new("-")).display()
        ),
        _ => format!("wrote {} records", records.len()),
    };
    out.message(&v, &text)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so the file is
/// either the old one or the whole new one.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

#[derive(Deserialize)]
struct Gathered {
    heads: Vec<GatheredHead>,
    asked: usize,
    answered: usize,
}

#[derive(Deserialize)]
struct GatheredHead {
    seq: u64,
    hash: Vec<u8>,
    source: String,
}

fn verify(home: &Home, args: VerifyArgs, out: &mut Out) -> Result<()> {
    let (records, expected, what): (Vec<Vec<u8>>, Option<Did>, String) = match &args.file {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let records = split_sequence(&bytes)
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect();
            (records, None, path.display().to_string())
        }
        None => {
            let client = Client::connect(home)?;
            let (did, records) = fetch_records(&client, None, None)?;
            (records, Some(did), "the node's log".to_string())
        }
    };
    let summary = verify_chain(records.iter().map(Vec::as_slice), expected.as_ref())
        .map_err(|e| anyhow!("{what} is broken at {e}"))?;
    if args.file.is_none() && summary.first.is_some_and(|f| f != 1) {
        bail!(
            "{what} is broken: it starts at seq {}, not 1",
            summary.first.unwrap_or_default()
        );
    }
    let mut report = json!({
        "source": what,
        "did": summary.iss.as_ref().map(ToString::to_string),
        "records": summary.records,
        "first": summary.first,
        "last": summary.last.map(|(s, _)| s),
        "head": summary.last.map(|(_, h)| h.to_hex()),
        "verified": true,
    });
    let mut text = match summary.last {
        Some((seq, hash)) => format!(
            "{what}: {} records, seq {} to {seq}, head {hash}: chain and signatures verified",
            summary.records,
            summary.first.unwrap_or(1)
        ),
        None => format!("{what}: empty, nothing to verify"),
    };
    if args.witnesses {
        let Some(subject) = summary.iss.or(expected) else {
            bail!("--witnesses: the log is empty, so there is no node to ask about");
        };
        let client = Client::connect(home)?;
        let g: Gathered =
            client.get_query("/v1/audit/witnesses", &[("subject", subject.to_string())])?;
        let first = summary.first.unwrap_or(1);
        let last = summary.last.map(|(s, _)| s).unwrap_or(0);
        let mut by_seq: BTreeMap<u64, AuditHash> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            by_seq.insert(first + i as u64, AuditHash::of(r));
        }
        let mut heads = Vec::new();
        let mut skipped = 0usize;
        for h in g.heads {
            let hash: [u8; 32] = h
                .hash
                .try_into()
                .map_err(|_| anyhow!("the node sent a head hash that is not 32 bytes"))?;
            if h.seq < first {
                skipped += 1;
                continue;
            }
            heads.push(Vouched {
                seq: h.seq,
                hash: AuditHash(hash),
                source: h.source,
            });
        }
        let checked = check_witnessed(&heads, |s| by_seq.get(&s).copied(), last)
            .map_err(|e| anyhow!("{what} contradicts a witnessed head at {e}"))?;
        report["witnessed_heads"] = json!(checked);
        report["peers_asked"] = json!(g.asked);
        report["peers_answered"] = json!(g.answered);
        text.push_str(&format!(
            "\nwitnesses: {checked} head(s) checked ({} of {} peer(s) answered)",
            g.answered, g.asked
        ));
        if skipped > 0 {
            text.push_str(&format!(
                "; {skipped} head(s) before seq {first} are outside this export"
            ));
        }
        if checked == 0 {
            text.push_str("\nwarning: no witnessed head was found: truncation or a rebuilt log would go unnoticed");
        }
    }
    out.message(&report, &text)
}
