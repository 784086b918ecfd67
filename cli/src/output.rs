//! What `cix` prints: tables and sentences for people, JSON Lines with `--json`.
//!
//! JSON Lines are one object per line. Catalogue lines carry at least `dataset`, `title`,
//! `publisher`, `spectrum`, `content_hash` and `bytes`; fields are only ever added.

use std::io::{self, Write};

use anyhow::Result;
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::Value;

pub(crate) struct Out {
    json: bool,
    stdout: io::Stdout,
}

/// `text` made safe for a terminal: control characters other than newline (escape sequences,
/// carriage returns, backspaces, C1 controls), line and paragraph separators and the
/// bidirectional overrides and isolates (U+202A to U+202E, U+2066 to U+2069, which can make a
/// name read backwards) are shown as `\u{..}` instead of being obeyed.
/// Titles, purposes and reasons come from peers; without this a requester could clear or
/// overwrite what the approving operator sees. JSON output needs no such care: serde_json
/// escapes control characters itself.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c != '\n'
            && (c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// True if the error is a closed stdout, which is not a failure (`cix ... | head`).
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = n as f64;
    let mut i = 0;
    while x >= 1024.0 && i < UNITS.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{x:.1} {}", UNITS[i])
    }
}

pub(crate) fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(headers.to_vec());
    t
}

impl Out {
    pub(crate) fn new(json: bool) -> Self {
        Self {
            json,
            stdout: io::stdout(),
        }
    }

    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    pub(crate) fn line(&mut self, v: &Value) -> Result<()> {
        writeln!(self.stdout, "{v}")?;
        Ok(())
    }

    pub(crate) fn text_line(&mut self, t: &str) -> Result<()> {
        self.text(t)
    }

    fn text(&mut self, t: &str) -> Result<()> {
        writeln!(self.stdout, "{}", printable(t))?;
        Ok(())
    }

    pub(crate) fn message(&mut self, v: &Value, text: &str) -> Result<()> {
        if self.json {
            self.line(v)
        } else {
            self.text(text)
        }
    }

    pub(crate) fn status(&mut self, v: &Value) -> Result<()> {
        if self.json {
            return self.line(v);
        }
        let c = &v["counters"];
        let listen: Vec<String> = v["listen"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        self.text(&format!(
            "{} ({})\n  did:        {}\n  peer id:    {}\n  listening:  {}\n  peers:      {}\n  catalogue:  {} datasets ({} published here)\n  requests:   {} waiting for approval\n  gossip:     {} entries accepted, {} rejected\n  transfers:  {} served ({}), {} refused",
            s(&v["name"]), s(&v["jurisdiction"]), s(&v["did"]), s(&v["peer_id"]),
            listen.join("\n              "), s(&v["peers"]), s(&v["catalogue"]),
            s(&v["own_datasets"]), s(&v["pending_requests"]), s(&c["entries_accepted"]),
            s(&c["entries_rejected"]), s(&c["transfers_served"]),
            human_bytes(c["bytes_served"].as_u64().unwrap_or(0)), s(&c["transfers_refused"]),
        ))?;
        // Issue 9: the figures `/metrics` exports, for a person.
        let z = &v["sizes"];
        self.text(&format!(
            "  rejected:   {} revocations, {} withdrawals
  revocations: {} kept
  requests in: {} pending, {} granted, {} denied
  catch-up:   {} records served, {} received ({})
  audit log:  {} records
  store:      {} (store) + {} (datasets held)
  uptime:     {} s",
            s(&c["revocations_rejected"]),
            s(&c["withdrawals_rejected"]),
            s(&z["revocations"]),
            s(&z["requests_pending"]),
            s(&z["requests_granted"]),
            s(&z["requests_denied"]),
            s(&c["sync_records_served"]),
            s(&c["sync_records_received"]),
            human_bytes(c["sync_bytes_received"].as_u64().unwrap_or(0)),
            s(&z["audit_records"]),
            human_bytes(z["store_bytes"].as_u64().unwrap_or(0)),
            human_bytes(z["blob_bytes"].as_u64().unwrap_or(0)),
            s(&v["uptime_secs"]),
        ))
    }

    pub(crate) fn published(&mut self, v: &Value) -> Result<()> {
        if self.json {
            return self.line(v);
        }
        // The dataset id alone on stdout, so `ID=$(cix publish ...)` works; the rest on stderr.
        self.text(&s(&v["dataset"]))?;
        let announced = if v["spectrum"] == "closed" {
            "not announced: closed data never leaves this node".to_string()
        } else {
            format!("announced to {} peer(s)", s(&v["announced_to"]))
        };
        let invalid = match v["invalid_rows"].as_u64() {
            Some(n) if n > 0 => format!(
                "\n  {n} row(s) break the data dictionary: accepted (--accept-invalid) and stated \
                 in the entry's quality statement"
            ),
            _ => String::new(),
        };
        eprintln!(
            "{}",
            printable(&format!(
                "published {:?} as {} version {}: {}, {}, blake3 {}, {} dictionary field(s); {}{invalid}",
                s(&v["title"]),
                s(&v["dataset"]),
                s(&v["version"]),
                s(&v["spectrum"]),
                human_bytes(v["bytes"].as_u64().unwrap_or(0)),
                s(&v["content_hash"]),
                v["dictionary_fields"].as_u64().unwrap_or(0),
                announced
            ))
        );
        Ok(())
    }

    /// `cix dictionary show`: one object with `dataset`, `title` and `fields` as JSON; a table
    /// for people.
    pub(crate) fn dictionary(
        &mut self,
        v: &Value,
        fields: &[cix_protocol::dictionary::Field],
    ) -> Result<()> {
        if self.json {
            return self.line(&serde_json::json!({
                "dataset": v["dataset"],
                "title": v["record"]["title"],
                "media_type": v["media_type"],
                "fields": fields,
            }));
        }
        let mut text = format!(
            "{} ({}), {}: {} field(s) (ISO 37156 5.4)",
            s(&v["record"]["title"]),
            s(&v["dataset"]),
            s(&v["media_type"]),
            fields.len()
        );
        if fields.is_empty() {
            text.push_str("\n  no data dictionary: the file is neither CSV nor JSON");
            return self.text(&text);
        }
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let mut t = table(&[
            "field",
            "type",
            "unit",
            "nullable",
            "min",
            "max",
            "enum",
            "count",
            "description",
        ]);
        for f in fields {
            let kind = match &f.geometry_types {
                Some(g) => format!("{} ({})", f.field_type, g.join(", ")),
                None => f.field_type.to_string(),
            };
            t.add_row(vec![
                f.name.clone(),
                kind,
                opt(&f.unit),
                f.nullable.to_string(),
                opt(&f.min),
                opt(&f.max),
                f.allowed
                    .as_ref()
                    .map_or_else(|| "-".into(), |a| a.join(", ")),
                f.count.map_or_else(|| "-".into(), |c| c.to_string()),
                opt(&f.description),
            ]);
        }
        text.push('\n');
        text.push_str(&t.to_string());
        if let Some(q) = v["record"]["iso"]["quality"].as_str() {
            text.push_str(&format!("\nquality: {q}"));
        }
        self.text(&text)
    }

    /// `cix search`: one JSON object (hits and facet counts) with `--json`; otherwise a table
    /// of the hits, best first, then the count and the facet summary.
    pub(crate) fn search(&mut self, v: &Value) -> Result<()> {
        if self.json {
            return self.line(v);
        }
        let hits = v["hits"].as_array().map(Vec::as_slice).unwrap_or_default();
        let total = v["total"].as_u64().unwrap_or(0);
        if hits.is_empty() {
            return self.text("no matching datasets");
        }
        let mut t = table(&["score", "dataset", "title", "publisher", "spectrum"]);
        for h in hits {
            t.add_row(vec![
                format!("{:.2}", h["score"].as_f64().unwrap_or(0.0)),
                s(&h["dataset"]),
                s(&h["title"]),
                s(&h["publisher"]),
                s(&h["level"]),
            ]);
        }
        self.text(&t.to_string())?;
        let shown = if hits.len() as u64 == total {
            String::new()
        } else {
            format!(", showing the best {} (--limit)", hits.len())
        };
        let mut summary = format!("{total} matching dataset(s){shown}");
        for facet in [
            "domain",
            "kind",
            "data_type",
            "spectrum",
            "insight",
            "publisher",
            "licence",
        ] {
            if let Some(counts) = v["facets"][facet].as_object() {
                let mut parts: Vec<(u64, &String)> = counts
                    .iter()
                    .map(|(k, n)| (n.as_u64().unwrap_or(0), k))
                    .collect();
                parts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
                let parts: Vec<String> = parts.iter().map(|(n, k)| format!("{k} {n}")).collect();
                summary.push_str(&format!("\n  {facet:<10} {}", parts.join(", ")));
            }
        }
        self.text(&summary)
    }

    pub(crate) fn catalogue(&mut self, lines: &[Value]) -> Result<()> {
        if self.json {
            return lines.iter().try_for_each(|l| self.line(l));
        }
        if lines.is_empty() {
            return self.text("the catalogue is empty");
        }
        let mut t = table(&[
            "dataset",
            "title",
            "publisher",
            "spectrum",
            "size",
            "blake3",
        ]);
        for l in lines {
            let mut publisher = s(&l["publisher"]);
            if l["local"] == true {
                publisher.push_str(" (this node)");
            }
            let hash = s(&l["content_hash"]);
            t.add_row(vec![
                s(&l["dataset"]),
                s(&l["title"]),
                publisher,
                s(&l["spectrum"]),
                human_bytes(l["bytes"].as_u64().unwrap_or(0)),
                format!("{}…", hash.get(..16).unwrap_or(&hash)),
            ]);
        }
        self.text(&t.to_string())
    }

    /// `cix catalogue history`: with `--json`, one line per version and per withdrawal (each
    /// with `kind`); otherwise a table of versions, then the withdrawals.
    pub(crate) fn history(&mut self, v: &Value) -> Result<()> {
        let none = Vec::new();
        let versions = v["versions"].as_array().unwrap_or(&none);
        let withdrawals = v["withdrawals"].as_array().unwrap_or(&none);
        if self.json {
            return versions
                .iter()
                .chain(withdrawals)
                .try_for_each(|l| self.line(l));
        }
        let state = if v["listed"] == true {
            "listed"
        } else if withdrawals.is_empty() {
            "not listed"
        } else {
            "withdrawn: not listed"
        };
        let mut text = format!("dataset {} ({state})", s(&v["dataset"]));
        let mut t = table(&["version", "entry", "blake3", "modified", "title", ""]);
        for l in versions {
            let hash = s(&l["content_hash"]);
            t.add_row(vec![
                s(&l["version"]),
                s(&l["entry"]),
                format!("{}…", hash.get(..16).unwrap_or(&hash)),
                s(&l["modified"]),
                s(&l["title"]),
                if l["current"] == true {
                    "current".into()
                } else {
                    String::new()
                },
            ]);
        }
        text.push('\n');
        text.push_str(&t.to_string());
        for w in withdrawals {
            text.push_str(&format!(
                "\nwithdrawn up to version {} at {} by {} (withdrawal {}){}",
                s(&w["version"]),
                unix_time(w["at"].as_i64().unwrap_or(0)),
                s(&w["by"]),
                s(&w["withdrawal"]),
                w["reason"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ));
        }
        self.text(&text)
    }

    /// `cix catalogue withdraw`.
    pub(crate) fn withdrawn(&mut self, v: &Value) -> Result<()> {
        let text = format!(
            "withdrew dataset {} up to version {} (withdrawal {}); announced to {} peer(s)",
            s(&v["dataset"]),
            s(&v["version"]),
            s(&v["withdrawal"]),
            s(&v["announced_to"])
        );
        self.message(v, &text)
    }

    pub(crate) fn entry(&mut self, v: &Value) -> Result<()> {
        if self.json {
            return self.line(v);
        }
        let r = &v["record"];
        let iso = &r["iso"];
        let mut text = format!(
            "{}\n  dataset:     {}\n  entry:       {} (version {})\n  publisher:   {} {}\n  spectrum:    {}\n  content:     {} ({}, {})\n  description: {}\n  ISO 37156:   {} data, {} data from {}, {} insight, SCCM {}\n  privacy:     personal data {}, jurisdiction {}\n  modified:    {}",
            s(&r["title"]), s(&v["dataset"]), s(&v["entry"]), s(&v["version"]),
            s(&v["publisher"]), s(&v["publisher_did"]), s(&v["spectrum"]),
            s(&v["content_hash"]), human_bytes(v["bytes"].as_u64().unwrap_or(0)),
            s(&v["media_type"]), s(&r["description"]), s(&iso["data_type"]), s(&iso["kind"]),
            s(&iso["domain"]), s(&iso["insight"]), s(&iso["concept"]),
            s(&iso["privacy"]["personal_data"]), s(&iso["privacy"]["jurisdiction"]),
            s(&r["modified"]),
        );
        // The rest of what a receiver needs to judge the data, when the entry states it.
        let join = |v: &Value| {
            v.as_array()
                .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        let mut extra: Vec<(&str, String)> = vec![
            ("keywords", join(&r["keywords"])),
            ("themes", join(&r["themes"])),
            ("licence", s(&r["licence"])),
            ("place", s(&r["spatial"]["name"])),
            ("issued", s(&r["issued"])),
            ("provenance", s(&iso["provenance"])),
            ("quality", s(&iso["quality"])),
            ("terms", s(&iso["terms"])),
            ("purpose", s(&iso["privacy"]["purpose"])),
        ];
        if let Some(b) = r["spatial"]["bbox"].as_object() {
            let deg = |k: &str| b.get(k).and_then(Value::as_i64).unwrap_or(0) as f64 / 1e7;
            extra.push((
                "bbox",
                format!(
                    "{}, {}, {}, {} (W, S, E, N)",
                    deg("west"),
                    deg("south"),
                    deg("east"),
                    deg("north")
                ),
            ));
        }
        if r["temporal"].is_object() {
            extra.push((
                "time",
                format!(
                    "{} to {}",
                    s(&r["temporal"]["start"]),
                    s(&r["temporal"]["end"])
                ),
            ));
        }
        for d in r["distributions"].as_array().into_iter().flatten() {
            for key in ["download_url", "access_url"] {
                if d[key].is_string() {
                    extra.push(("reference", s(&d[key])));
                }
            }
        }
        if v["withdrawn"].as_bool() == Some(true) {
            extra.push(("withdrawn", "yes: not listed any more".into()));
        }
        for (k, val) in extra {
            if !val.is_empty() && val != "-" {
                text.push_str(&format!("\n  {:<12} {val}", format!("{k}:")));
            }
        }
        if let Some(fields) = iso["dictionary"].as_array().filter(|f| !f.is_empty()) {
            let mut t = table(&["field", "type", "unit", "nullable", "min", "max"]);
            for f in fields {
                t.add_row(vec![
                    s(&f["name"]),
                    s(&f["type"]),
                    s(&f["unit"]),
                    s(&f["nullable"]),
                    s(&f["min"]),
                    s(&f["max"]),
                ]);
            }
            text.push_str(&format!("\n  data dictionary (ISO 37156 5.4):\n{t}"));
        }
        self.text(&text)
    }

    pub(crate) fn request_outcome(&mut self, v: &Value) -> Result<()> {
        if self.json {
            return self.line(v);
        }
        let ds = s(&v["dataset"]);
        let text = match v["status"].as_str() {
            Some("open") => format!(
                "{ds} is open data: no grant needed, fetch it with `cix fetch {ds} -o FILE`"
            ),
            Some("granted") => {
                format!("access to {ds} granted: fetch it with `cix fetch {ds} -o FILE`")
            }
            Some("pending") => format!("request for {ds} sent: waiting for the owner's approval"),
            Some("denied") => format!("access to {ds} denied by the owner: {}", s(&v["reason"])),
            _ => v.to_string(),
        };
        self.text(&text)
    }

    pub(crate) fn requests(&mut self, v: &Value) -> Result<()> {
        let incoming = v["incoming"].as_array().cloned().unwrap_or_default();
        let outgoing = v["outgoing"].as_array().cloned().unwrap_or_default();
        if self.json {
            return incoming
                .iter()
                .chain(outgoing.iter())
                .try_for_each(|l| self.line(l));
        }
        if incoming.is_empty() && outgoing.is_empty() {
            return self.text("no access requests");
        }
        if !incoming.is_empty() {
            let mut t = table(&[
                "request",
                "dataset",
                "title",
                "requester",
                "purpose",
                "state",
            ]);
            for r in &incoming {
                t.add_row(vec![
                    s(&r["request"]),
                    s(&r["dataset"]),
                    s(&r["title"]),
                    s(&r["requester"]),
                    s(&r["purpose"]),
                    s(&r["state"]),
                ]);
            }
            self.text(&format!("requests for this node's data:\n{t}"))?;
        }
        if !outgoing.is_empty() {
            let mut t = table(&["request", "dataset", "purpose", "state", "reason"]);
            for r in &outgoing {
                t.add_row(vec![
                    s(&r["request"]),
                    s(&r["dataset"]),
                    s(&r["purpose"]),
                    s(&r["state"]),
                    s(&r["reason"]),
                ]);
            }
            self.text(&format!("this node's requests:\n{t}"))?;
        }
        Ok(())
    }

    pub(crate) fn fetched(&mut self, v: &Value) -> Result<()> {
        if self.json {
            return self.line(v);
        }
        if let Some(p) = v["projection"].as_object() {
            let fields: Vec<&str> = p
                .get("fields")
                .and_then(Value::as_array)
                .map(|f| f.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            return self.text(&format!(
                "fetched {:?}: {} written to {}: a projection on the fields {} only \
                 (ISO 37156 8.2.2 c) of content {}; blake3 {} as the owner stated it, verified",
                s(&v["title"]),
                human_bytes(v["bytes"].as_u64().unwrap_or(0)),
                s(&v["path"]),
                fields.join(", "),
                p.get("of_content").and_then(Value::as_str).unwrap_or("-"),
                s(&v["content_hash"]),
            ));
        }
        let sources: Vec<String> = v["sources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        let peer = s(&x["peer"]);
                        let short = peer.get(peer.len().saturating_sub(8)..).unwrap_or("");
                        format!(
                            "…{short} {} {}",
                            human_bytes(x["bytes"].as_u64().unwrap_or(0)),
                            s(&x["state"])
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.text(&format!(
            "fetched {:?}: {} written to {}, blake3 {} verified ({} from the network, {} \
             resumed{}{})",
            s(&v["title"]),
            human_bytes(v["bytes"].as_u64().unwrap_or(0)),
            s(&v["path"]),
            s(&v["content_hash"]),
            human_bytes(v["network_bytes"].as_u64().unwrap_or(0)),
            human_bytes(v["reused_bytes"].as_u64().unwrap_or(0)),
            if sources.is_empty() {
                ""
            } else {
                "; sources: "
            },
            sources.join(", "),
        ))
    }

    pub(crate) fn transfers(&mut self, list: &[Value]) -> Result<()> {
        if self.json {
            return list.iter().try_for_each(|t| self.line(t));
        }
        if list.is_empty() {
            return self.text("no running or interrupted transfers");
        }
        let mut t = table(&[
            "dataset", "content", "verified", "sources", "state", "started",
        ]);
        for x in list {
            let sources = x["sources"].as_array().map_or(0, Vec::len);
            let content = s(&x["content"]);
            t.add_row(vec![
                s(&x["dataset"]),
                content.get(..16).unwrap_or(&content).to_string(),
                format!(
                    "{} / {}",
                    human_bytes(x["bytes"].as_u64().unwrap_or(0)),
                    human_bytes(x["total"].as_u64().unwrap_or(0))
                ),
                sources.to_string(),
                s(&x["state"]),
                s(&x["started"]),
            ]);
        }
        self.text(&t.to_string())
    }
}

/// Unix seconds as RFC 3339 UTC, or the number itself when out of the calendar's range.
fn unix_time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_from_peers_are_shown_not_obeyed() {
        assert_eq!(
            printable("Hourly flows\nline two"),
            "Hourly flows\nline two"
        );
        assert_eq!(
            printable("legit\u{1b}[2J\u{1b}[Hcleared\rOVER\u{9b}"),
            "legit\\u{1b}[2J\\u{1b}[Hcleared\\u{d}OVER\\u{9b}"
        );
        assert_eq!(printable("tab\there"), "tab\\u{9}here");
        assert_eq!(printable("Zürich – Ω"), "Zürich – Ω");
        assert_eq!(
            printable("invoice\u{202e}fdp.exe"),
            "invoice\\u{202e}fdp.exe"
        );
        assert_eq!(printable("a\u{2066}b\u{2069}"), "a\\u{2066}b\\u{2069}");
    }
}
