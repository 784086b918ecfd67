//! `cix rights new|list|show|answer` and `cix complaints new|list|show|answer|appeal|decide`:
//! individuals' requests and complaints (ISO 37156 8.3.5, 8.3.6) through the node's admin API.

use anyhow::Result;
use cix_node::Home;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::Out;

#[derive(Debug, Subcommand)]
pub(crate) enum RightsCommand {
    /// Record a person's request against datasets and forward it, signed over /cix/rights/1,
    /// to every agency that received them (by this node's receipts, transfers and grants).
    New {
        /// access, rectification, erasure, objection or automated-review.
        #[arg(long)]
        kind: String,
        /// A dataset the request concerns (id or unique prefix; repeat for more).
        #[arg(long = "dataset", value_name = "ID", required = true, num_args = 1..)]
        datasets: Vec<String>,
        /// This agency's own opaque reference for the person (a case number, never a name):
        /// only a hash of it is kept and sent.
        #[arg(long, value_name = "REF")]
        subject_ref: Option<String>,
        /// What is asked, in words that do not identify the person.
        #[arg(long, value_name = "TEXT")]
        summary: Option<String>,
        /// Days the recipients have to answer (default: the config's rights_deadline_days).
        #[arg(long, value_name = "N")]
        deadline_days: Option<u32>,
    },
    /// Requests recorded here and requests forwarded here, with their status (open,
    /// answered, overdue).
    List,
    /// One request: each recipient's answer, or this node's own.
    Show {
        /// Request id, or a unique prefix of at least 6 hex digits.
        id: String,
    },
    /// Answer a request forwarded here; the signed answer goes back to the recording agency.
    Answer {
        /// Request id, or a unique prefix of at least 6 hex digits.
        id: String,
        /// done, refused or partly.
        #[arg(long)]
        outcome: String,
        /// What to say (required for refused and partly).
        #[arg(long, default_value = "")]
        text: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ComplaintsCommand {
    /// Record a person's complaint against datasets and forward it, signed, to every agency
    /// that received them.
    New {
        /// A dataset the complaint concerns (id or unique prefix; repeat for more).
        #[arg(long = "dataset", value_name = "ID", required = true, num_args = 1..)]
        datasets: Vec<String>,
        /// This agency's own opaque reference for the person: only a hash of it is kept.
        #[arg(long, value_name = "REF")]
        subject_ref: Option<String>,
        /// What the complaint is about, without identifying the person.
        #[arg(long, value_name = "TEXT")]
        summary: Option<String>,
        /// Days the recipients have to answer (default: rights_deadline_days).
        #[arg(long, value_name = "N")]
        deadline_days: Option<u32>,
    },
    /// Complaints recorded here and forwarded here, with their status (open, answered,
    /// overdue, appealed, decided).
    List,
    /// One complaint: answers, appeal and decision.
    Show {
        /// Complaint id, or a unique prefix of at least 6 hex digits.
        id: String,
    },
    /// Answer a complaint forwarded here.
    Answer {
        /// Complaint id, or a unique prefix of at least 6 hex digits.
        id: String,
        /// done, refused or partly.
        #[arg(long)]
        outcome: String,
        /// What to say (required for refused and partly).
        #[arg(long, default_value = "")]
        text: String,
    },
    /// Appeal a complaint recorded here; the signed appeal goes to the agencies concerned.
    Appeal {
        /// Complaint id, or a unique prefix of at least 6 hex digits.
        id: String,
        /// The grounds of the appeal.
        #[arg(long)]
        text: String,
        /// Days to decide (default: rights_deadline_days).
        #[arg(long, value_name = "N")]
        deadline_days: Option<u32>,
    },
    /// Decide the appeal of a complaint recorded here; the signed decision goes to the
    /// agencies concerned.
    Decide {
        /// Complaint id, or a unique prefix of at least 6 hex digits.
        id: String,
        /// upheld, dismissed or partly.
        #[arg(long)]
        outcome: String,
        /// The reasons.
        #[arg(long)]
        text: String,
    },
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("-").to_string()
}

fn short(id: &str) -> &str {
    &id[..id.len().min(16)]
}

fn summary_line(v: &Value) -> String {
    let role = s(v, "role");
    let who = if role == "recorded" {
        let r = v["recipients"].as_array().map_or(0, Vec::len);
        let answered = v["recipients"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|r| !r["outcome"].is_null()).count());
        format!("{answered}/{r} answered")
    } else {
        format!("from {}", s(v, "origin"))
    };
    format!(
        "{}  {:<8} {:<16} {:<9} {}  due {}",
        short(&s(v, "id")),
        role,
        s(v, "kind"),
        s(v, "status"),
        who,
        v["due"]
    )
}

fn detail(v: &Value) -> String {
    let mut t = summary_line(v);
    t.push_str(&format!("\n  datasets: {}", join(&v["datasets"])));
    if let Some(sub) = v["subject"].as_str() {
        t.push_str(&format!("\n  subject (hash): {sub}"));
    }
    if let Some(sum) = v["summary"].as_str().filter(|x| !x.is_empty()) {
        t.push_str(&format!("\n  summary: {sum}"));
    }
    for r in v["recipients"].as_array().into_iter().flatten() {
        let state = match r["outcome"].as_str() {
            Some(o) => format!("{o}: {}", s(r, "text")),
            None if r["overdue"].as_bool() == Some(true) => "OVERDUE, no answer".into(),
            None if r["delivered"].as_bool() == Some(true) => r["error"]
                .as_str()
                .map_or_else(|| "waiting for an answer".to_string(), String::from),
            None => format!("not delivered yet ({})", s(r, "error")),
        };
        t.push_str(&format!(
            "\n  recipient {} (via {}): {state}",
            s(r, "agency"),
            join(&r["via"])
        ));
    }
    if !v["answer"].is_null() {
        let a = &v["answer"];
        t.push_str(&format!(
            "\n  our answer: {}: {}",
            s(a, "outcome"),
            s(a, "text")
        ));
    }
    if !v["appeal"].is_null() {
        t.push_str(&format!("\n  appeal: {}", s(&v["appeal"], "text")));
    }
    if !v["decision"].is_null() {
        let d = &v["decision"];
        t.push_str(&format!(
            "\n  decision: {}: {}",
            s(d, "outcome"),
            s(d, "text")
        ));
    }
    t
}

fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn print_list(lines: &[Value], out: &mut Out) -> Result<()> {
    for l in lines {
        out.message(l, &summary_line(l))?;
    }
    Ok(())
}

pub(crate) fn rights(home: &Home, cmd: RightsCommand, out: &mut Out) -> Result<()> {
    let client = Client::connect(home)?;
    match cmd {
        RightsCommand::New {
            kind,
            datasets,
            subject_ref,
            summary,
            deadline_days,
        } => {
            let v: Value = client.post(
                "/v1/rights",
                &json!({ "kind": kind, "datasets": datasets, "subject_ref": subject_ref,
                         "summary": summary, "deadline_days": deadline_days }),
            )?;
            out.message(&v, &detail(&v))
        }
        RightsCommand::List => print_list(&client.get::<Vec<Value>>("/v1/rights")?, out),
        RightsCommand::Show { id } => {
            let v: Value = client.get(&format!("/v1/rights/{}", id.trim()))?;
            out.message(&v, &detail(&v))
        }
        RightsCommand::Answer { id, outcome, text } => {
            let v: Value = client.post(
                &format!("/v1/rights/{}/answer", id.trim()),
                &json!({ "outcome": outcome, "text": text }),
            )?;
            out.message(&v, &detail(&v))
        }
    }
}

pub(crate) fn complaints(home: &Home, cmd: ComplaintsCommand, out: &mut Out) -> Result<()> {
    let client = Client::connect(home)?;
    let v: Value = match cmd {
        ComplaintsCommand::New {
            datasets,
            subject_ref,
            summary,
            deadline_days,
        } => client.post(
            "/v1/complaints",
            &json!({ "datasets": datasets, "subject_ref": subject_ref, "summary": summary,
                     "deadline_days": deadline_days }),
        )?,
        ComplaintsCommand::List => {
            return print_list(&client.get::<Vec<Value>>("/v1/complaints")?, out)
        }
        ComplaintsCommand::Show { id } => client.get(&format!("/v1/complaints/{}", id.trim()))?,
        ComplaintsCommand::Answer { id, outcome, text } => client.post(
            &format!("/v1/complaints/{}/answer", id.trim()),
            &json!({ "outcome": outcome, "text": text }),
        )?,
        ComplaintsCommand::Appeal {
            id,
            text,
            deadline_days,
        } => client.post(
            &format!("/v1/complaints/{}/appeal", id.trim()),
            &json!({ "text": text, "deadline_days": deadline_days }),
        )?,
        ComplaintsCommand::Decide { id, outcome, text } => client.post(
            &format!("/v1/complaints/{}/decide", id.trim()),
            &json!({ "outcome": outcome, "text": text }),
        )?,
    };
    out.message(&v, &detail(&v))
}
