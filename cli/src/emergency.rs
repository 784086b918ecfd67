//! `cix emergency ...` (ISO 37156 6.7) and `cix registrars ...` (5.5.3, 8.2.5) through the
//! node's admin API.

use anyhow::Result;
use cix_node::Home;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::Out;

#[derive(Debug, Subcommand)]
pub(crate) enum EmergencyCommand {
    /// As the owner of the datasets, sign an emergency agreement and hand it to every party:
    /// which datasets open, to whom, for which kinds of emergency and areas, for how long.
    Agree {
        /// One of this node's datasets that opens (may be repeated).
        #[arg(long = "dataset", value_name = "ID", required = true)]
        datasets: Vec<String>,
        /// An agency (did:key) that may declare an emergency (may be repeated).
        #[arg(long = "declarer", value_name = "DID", required = true)]
        declarers: Vec<String>,
        /// An agency (did:key) that receives access during one (may be repeated).
        #[arg(long = "recipient", value_name = "DID", required = true)]
        recipients: Vec<String>,
        /// A kind of emergency covered: flood, earthquake, fire, ... (may be repeated).
        #[arg(long = "kind", value_name = "KIND", required = true)]
        kinds: Vec<String>,
        /// An area covered: bbox:WEST,SOUTH,EAST,NORTH (degrees) or name:AREA (may be repeated).
        #[arg(long = "area", value_name = "AREA", required = true)]
        areas: Vec<String>,
        /// Longest a declaration may last, in hours (at most 720).
        #[arg(long, value_name = "H")]
        max_hours: u32,
        /// Days the agreement holds (default 365).
        #[arg(long, value_name = "N")]
        days: Option<u32>,
    },
    /// Emergency agreements this node keeps (as owner, declarer or recipient).
    Agreements,
    /// Declare an emergency under an agreement that names this agency as a declarer: access
    /// opens at once on every node the agreement names, until the end.
    Declare {
        /// The agreement's id, or a unique prefix.
        #[arg(long, value_name = "ID")]
        agreement: String,
        /// The kind of emergency (one the agreement covers).
        #[arg(long, value_name = "K")]
        kind: String,
        /// Where: bbox:WEST,SOUTH,EAST,NORTH or name:AREA, inside an area of the agreement.
        #[arg(long, value_name = "AREA")]
        area: String,
        /// Hours access stays open (at most the agreement's maximum).
        #[arg(long, value_name = "H")]
        hours: u32,
    },
    /// End a declaration early (its declarer or the agreement's owner): access closes and the
    /// owner revokes every grant issued under it.
    End {
        /// The declaration's id, or a unique prefix.
        id: String,
    },
    /// Declarations this node knows: state (open, ended, expired) and review (not-due, due,
    /// done).
    List,
    /// The mandatory review after an emergency: every grant, transfer and receipt under the
    /// declaration in this node's audit log; with --done --note, mark it reviewed (logged).
    Review {
        /// The declaration's id, or a unique prefix.
        id: String,
        /// Mark the review done (only once the declaration is over).
        #[arg(long, requires = "note")]
        done: bool,
        /// The reviewer's note.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegistrarsCommand {
    /// The registrars this node trusts now.
    List,
    /// Trust a registrar's attestations for group access (edits trusted_registrars in
    /// config.toml and applies it at once).
    Trust {
        /// The registrar, did:key:z6Mk….
        did: String,
    },
    /// Stop trusting a registrar: config.toml is edited and every live grant that rested on it
    /// is re-checked and revoked at once (ISO 37156 8.2.5), the holder told why.
    Distrust {
        /// The registrar, did:key:z6Mk….
        did: String,
    },
}

fn short(v: &Value, k: &str) -> String {
    let s = v[k].as_str().unwrap_or("-");
    s[..s.len().min(16)].to_string()
}

fn print_deliveries(v: &Value, out: &mut Out) -> Result<()> {
    if out.is_json() {
        return Ok(());
    }
    for d in v["deliveries"].as_array().into_iter().flatten() {
        out.text_line(&format!(
            "  {}: {}",
            d["to"].as_str().unwrap_or("-"),
            d["result"].as_str().unwrap_or("-")
        ))?;
    }
    Ok(())
}

fn print_agreement(v: &Value, out: &mut Out) -> Result<()> {
    let list = |k: &str| {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let text = format!(
        "agreement {} ({}): datasets {}; kinds {}; areas {}; at most {} h; {} declarer(s), {} recipient(s); expires {}",
        v["id"].as_str().unwrap_or("-"),
        v["role"].as_str().unwrap_or("-"),
        list("datasets"),
        list("kinds"),
        list("areas"),
        v["max_hours"],
        v["declarers"].as_array().map_or(0, Vec::len),
        v["recipients"].as_array().map_or(0, Vec::len),
        v["expires"],
    );
    out.message(v, &text)?;
    print_deliveries(v, out)
}

fn print_declaration(v: &Value, out: &mut Out) -> Result<()> {
    let text = format!(
        "declaration {}  {:<7} review {:<7} {} in {}  {}..{}  grants issued {}, received {}",
        v["id"].as_str().unwrap_or("-"),
        v["state"].as_str().unwrap_or("-"),
        v["review"].as_str().unwrap_or("-"),
        v["kind"].as_str().unwrap_or("-"),
        v["area"].as_str().unwrap_or("-"),
        v["start"],
        v["end"],
        v["grants_issued"],
        v["grants_received"],
    );
    out.message(v, &text)?;
    print_deliveries(v, out)
}

pub(crate) fn emergency(home: &Home, cmd: EmergencyCommand, out: &mut Out) -> Result<()> {
    let client = Client::connect(home)?;
    match cmd {
        EmergencyCommand::Agree {
            datasets,
            declarers,
            recipients,
            kinds,
            areas,
            max_hours,
            days,
        } => {
            let v: Value = client.post(
                "/v1/emergency/agreements",
                &json!({ "datasets": datasets, "declarers": declarers, "recipients": recipients,
                         "kinds": kinds, "areas": areas, "max_hours": max_hours, "days": days }),
            )?;
            print_agreement(&v, out)
        }
        EmergencyCommand::Agreements => {
            let lines: Vec<Value> = client.get("/v1/emergency/agreements")?;
            for l in &lines {
                print_agreement(l, out)?;
            }
            Ok(())
        }
        EmergencyCommand::Declare {
            agreement,
            kind,
            area,
            hours,
        } => {
            let v: Value = client.post(
                "/v1/emergency/declarations",
                &json!({ "agreement": agreement, "kind": kind, "area": area, "hours": hours }),
            )?;
            print_declaration(&v, out)
        }
        EmergencyCommand::End { id } => {
            let v: Value =
                client.post(&format!("/v1/emergency/declarations/{id}/end"), &json!({}))?;
            print_declaration(&v, out)
        }
        EmergencyCommand::List => {
            let lines: Vec<Value> = client.get("/v1/emergency/declarations")?;
            for l in &lines {
                print_declaration(l, out)?;
            }
            Ok(())
        }
        EmergencyCommand::Review { id, done, note } => {
            let v: Value = client.post(
                &format!("/v1/emergency/declarations/{id}/review"),
                &json!({ "declaration": id, "done": done, "note": note }),
            )?;
            if out.is_json() {
                return out.line(&v);
            }
            print_declaration(&v["declaration"], out)?;
            let uses = v["uses"].as_array().cloned().unwrap_or_default();
            out.text_line(&format!("{} use(s) under it:", uses.len()))?;
            for u in &uses {
                out.text_line(&format!(
                    "  #{:<6} {:<15} {} peer {} token {}",
                    u["seq"],
                    u["kind"].as_str().unwrap_or("-"),
                    short(u, "dataset"),
                    u["peer"].as_str().unwrap_or("-"),
                    u["token"].as_str().unwrap_or("-"),
                ))?;
            }
            match v["reviewed"].as_object() {
                Some(r) => out.text_line(&format!(
                    "reviewed at {}: {}",
                    r.get("at").cloned().unwrap_or_default(),
                    r.get("note").and_then(Value::as_str).unwrap_or("-")
                )),
                None => out.text_line("not reviewed yet: `cix emergency review ID --done --note TEXT` once it is over"),
            }
        }
    }
}

pub(crate) fn registrars(home: &Home, cmd: RegistrarsCommand, out: &mut Out) -> Result<()> {
    let client = Client::connect(home)?;
    let (did, trust) = match cmd {
        RegistrarsCommand::List => {
            let list: Vec<String> = client.get("/v1/registrars")?;
            for d in &list {
                out.message(&json!({ "registrar": d }), d)?;
            }
            return Ok(());
        }
        RegistrarsCommand::Trust { did } => (did, true),
        RegistrarsCommand::Distrust { did } => (did, false),
    };
    let v: Value = client.post("/v1/registrars", &json!({ "did": did, "trust": trust }))?;
    trust_change(&v, out)
}

pub(crate) fn trust_change(v: &Value, out: &mut Out) -> Result<()> {
    if out.is_json() {
        return out.line(v);
    }
    let n = |k: &str| v[k].as_array().map_or(0, Vec::len);
    out.text_line(&format!(
        "{} registrar(s) trusted; {} added, {} removed",
        n("trusted"),
        n("added"),
        n("removed")
    ))?;
    for l in v["recheck"].as_array().into_iter().flatten() {
        out.text_line(&format!(
            "  {} {} holder {}{}",
            l["verdict"].as_str().unwrap_or("-"),
            l["cid"].as_str().unwrap_or("-"),
            l["holder"].as_str().unwrap_or("-"),
            l["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ))?;
    }
    Ok(())
}
