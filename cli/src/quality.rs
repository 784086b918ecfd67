//! `cix quality report|reports|answer|show`: quality feedback (ISO 37156 9.2 e, 9.3) through
//! the node's admin API.

use anyhow::Result;
use cix_node::Home;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::Out;

#[derive(Debug, Subcommand)]
pub(crate) enum QualityCommand {
    /// Send the dataset's publisher a signed quality report over /cix/quality/1.
    Report {
        /// Dataset id, or a unique prefix of it.
        dataset: String,
        /// The field (data dictionary name) the problem is in.
        #[arg(long)]
        field: Option<String>,
        /// Data rows concerned (1 is the first row after the header), comma-separated.
        #[arg(long, value_delimiter = ',')]
        rows: Vec<u64>,
        /// missing, invalid, out-of-range, inconsistent, outdated, duplicate or other.
        #[arg(long)]
        kind: String,
        /// What was seen.
        #[arg(long)]
        evidence: String,
    },
    /// Reports this node received (as publisher) and sent, with their status: open,
    /// accepted, rejected, fixed (a version names it).
    Reports,
    /// Answer a received report: accepted or rejected (with --text saying why). A fix is a new
    /// version: `cix publish FILE --dataset D --resolves REPORT`.
    Answer {
        /// Report id, or a unique prefix of at least 6 hex digits.
        report: String,
        /// accepted or rejected.
        #[arg(long)]
        status: String,
        /// What to tell the reporter.
        #[arg(long, default_value = "")]
        text: String,
    },
    /// A dataset's quality: completeness and validity against its dictionary (from the
    /// entry), open and resolved reports.
    Show {
        /// Dataset id, or a unique prefix of it.
        dataset: String,
    },
}

fn print_report(v: &Value, out: &mut Out) -> Result<()> {
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    let text = format!(
        "{}  {:<8} {:<9} {}  {}{}  {}",
        &s("id")[..s("id").len().min(16)],
        s("direction"),
        s("status"),
        s("dataset"),
        v["kind"].as_str().unwrap_or("-"),
        v["field"]
            .as_str()
            .map(|f| format!(" in {f}"))
            .unwrap_or_default(),
        s("evidence"),
    );
    out.message(v, &text)
}

pub(crate) fn quality(home: &Home, cmd: QualityCommand, out: &mut Out) -> Result<()> {
    let client = Client::connect(home)?;
    match cmd {
        QualityCommand::Report {
            dataset,
            field,
            rows,
            kind,
            evidence,
        } => {
            let v: Value = client.post(
                "/v1/quality/report",
                &json!({ "dataset": dataset, "field": field, "rows": rows, "kind": kind,
                         "evidence": evidence }),
            )?;
            print_report(&v, out)
        }
        QualityCommand::Reports => {
            let lines: Vec<Value> = client.get("/v1/quality/reports")?;
            for l in &lines {
                print_report(l, out)?;
            }
            Ok(())
        }
        QualityCommand::Answer {
            report,
            status,
            text,
        } => {
            let v: Value = client.post(
                "/v1/quality/answer",
                &json!({ "report": report, "status": status, "text": text }),
            )?;
            print_report(&v, out)
        }
        QualityCommand::Show { dataset } => {
            let v: Value = client.get(&format!("/v1/quality/{dataset}"))?;
            let pm = |k: &str| {
                v[k].as_u64()
                    .map(|p| format!("{}.{}%", p / 10, p % 10))
                    .unwrap_or_else(|| "not measured".into())
            };
            let text = format!(
                "dataset {} version {}: completeness {}, validity {}, {} open report(s), {} \
                 resolved",
                v["dataset"].as_str().unwrap_or("-"),
                v["version"],
                pm("completeness_permille"),
                pm("validity_permille"),
                v["open_reports"],
                v["resolved_reports"].as_array().map_or(0, Vec::len),
            );
            out.message(&v, &text)
        }
    }
}
