//! `cix-testnet run --scenario rights`: a person's request and a complaint through the
//! agencies that received their data (ISO 37156 8.3.5, 8.3.6).
//!
//! Starts in this process a publishing agency, `recipients` agencies that ask for and fetch its
//! shared dataset (so that receipts, served transfers and grants record who received it), and
//! one bystander that never asks. The testing knob `rights_day_secs` makes a deadline "day"
//! last [`Options::day_secs`]. Then:
//!
//! 1. the publisher records an access request against the dataset; it must reach exactly the
//!    recipients, not the bystander;
//! 2. every recipient but the last answers (`done`, then `partly`, ...); the last stays
//!    silent and must be reported overdue once the deadline passes;
//! 3. the publisher records a complaint, the first recipient refuses it, the publisher appeals
//!    and decides; every recipient must hold the signed decision.
//!
//! The report lists each recipient's answer and which one is overdue, and the complaint's
//! path. Waits poll the nodes' stores with a deadline.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use cix_node::publish::{publish, PublishRequest};
use cix_node::rights::{self, AnswerRequest, AppealRequest, CaseLine, DecideRequest, NewRequest};
use cix_node::{Config, Home, Node};
use cix_protocol::catalogue::DatasetId;
use serde::Serialize;
use tokio::time::Instant;

/// sled cache per node.
const STORE_CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// Most recipients the scenario starts.
pub const MAX_RECIPIENTS: usize = 16;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Agencies that receive the data (at least 2: one answers, one stays silent).
    pub recipients: usize,
    /// Seconds in a deadline day.
    pub day_secs: u64,
    /// Days the recipients have to answer the request.
    pub deadline_days: u32,
    /// Longest wait for any one step.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            recipients: 3,
            day_secs: 1,
            deadline_days: 4,
            timeout: Duration::from_secs(30),
        }
    }
}

/// One recipient's answer to the request.
#[derive(Debug, Clone, Serialize)]
pub struct RecipientAnswer {
    /// The agency's name.
    pub agency: String,
    /// Its DID.
    pub did: String,
    /// The records that made it a recipient.
    pub via: Vec<String>,
    /// `done`, `refused`, `partly`, or none.
    pub outcome: Option<String>,
    /// Its answer text.
    pub text: Option<String>,
    /// Whether it missed the deadline.
    pub overdue: bool,
}

/// What the complaint went through.
#[derive(Debug, Clone, Serialize)]
pub struct ComplaintPath {
    /// Complaint id.
    pub id: String,
    /// Each recipient's answer.
    pub answers: Vec<RecipientAnswer>,
    /// The grounds of the appeal.
    pub appeal: Option<String>,
    /// The decision and its reasons.
    pub decision: Option<String>,
    /// The status each recipient sees at the end (`decided` when the decision reached it).
    pub seen_by: Vec<(String, String)>,
}

/// What the scenario reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `rights`.
    pub scenario: &'static str,
    /// Whether every expectation held.
    pub ok: bool,
    /// What did not hold.
    pub failures: Vec<String>,
    /// The dataset.
    pub dataset: String,
    /// The request's id.
    pub request: String,
    /// Its status at the end (`overdue` while the silent one has not answered).
    pub request_status: String,
    /// Each recipient's answer.
    pub answers: Vec<RecipientAnswer>,
    /// The agencies reported overdue.
    pub overdue: Vec<String>,
    /// Whether the bystander, which never received the data, was left out.
    pub bystander_left_out: bool,
    /// The complaint.
    pub complaint: ComplaintPath,
    /// Audit steps recorded at the publisher.
    pub audit_steps: Vec<String>,
    /// Wall time, milliseconds.
    pub elapsed_ms: u128,
}

struct Agency {
    name: String,
    node: Node,
    _dir: tempfile::TempDir,
}

async fn start(name: &str, bootstrap: Vec<String>, day_secs: u64) -> Result<Agency> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let home = Home::new(dir.path().join("home"));
    let mut config = Config::new(name, "NL");
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.bootstrap = bootstrap;
    config.store_cache_bytes = STORE_CACHE_BYTES;
    config.rights_day_secs = Some(day_secs);
    home.init(&config)?;
    let node = cix_node::start(home, config)
        .await
        .with_context(|| format!("starting {name}"))?;
    Ok(Agency {
        name: name.into(),
        node,
        _dir: dir,
    })
}

async fn addr(a: &Agency) -> Result<String> {
    let l = a.node.listening().await?;
    Ok(l.first().context("the node listens nowhere")?.to_string())
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
async fn wait(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let end = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn answers(line: &CaseLine, agencies: &[Agency]) -> Vec<RecipientAnswer> {
    agencies
        .iter()
        .map(|a| {
            let did = a.node.did().to_string();
            let r = line.recipients.iter().find(|r| r.agency == did);
            RecipientAnswer {
                agency: a.name.clone(),
                did,
                via: r.map(|r| r.via.clone()).unwrap_or_default(),
                outcome: r.and_then(|r| r.outcome.clone()),
                text: r.and_then(|r| r.text.clone()),
                overdue: r.is_some_and(|r| r.overdue),
            }
        })
        .collect()
}

/// Runs the scenario.
///
/// # Errors
///
/// A node that does not start, a step that fails or a wait that times out.
pub async fn run(opts: &Options) -> Result<Report> {
    if !(2..=MAX_RECIPIENTS).contains(&opts.recipients) {
        bail!("the rights scenario needs 2 to {MAX_RECIPIENTS} recipients");
    }
    let began = Instant::now();
    let t = opts.timeout;
    let publisher = start("Waterbedrijf", vec![], opts.day_secs).await?;
    let boot = vec![addr(&publisher).await?];
    let mut recipients = Vec::new();
    for i in 0..opts.recipients {
        recipients.push(start(&format!("Agency {}", i + 1), boot.clone(), opts.day_secs).await?);
    }
    let bystander = start("Bystander", boot, opts.day_secs).await?;

    let work = tempfile::tempdir()?;
    let file = work.path().join("consumption.csv");
    let mut csv = String::from("district,month,litres\n");
    for i in 0..60 {
        csv.push_str(&format!(
            "D{:02},2026-{:02},{}\n",
            i % 12,
            1 + i % 12,
            900 + 7 * i
        ));
    }
    std::fs::write(&file, csv)?;
    let published = publish(
        &publisher.node,
        PublishRequest {
            path: file,
            title: Some("water consumption by district".into()),
            spectrum: Some("shared-public".into()),
            meta: Some(
                "domain = \"water\"\nkind = \"consumption\"\ndescription = \"monthly\"\n\
                 terms = \"planning only\"\n"
                    .into(),
            ),
            ..Default::default()
        },
    )
    .await?;
    let id: DatasetId = published.dataset.parse()?;
    for a in recipients.iter().chain([&bystander]) {
        let store = a.node.shared.store.clone();
        wait("the entry to reach every agency", t, || {
            Ok(store.latest_entry(&id)?.is_some())
        })
        .await?;
    }
    for a in &recipients {
        let o = cix_node::access::request(&a.node, id, "network planning", true).await?;
        if o.status != "granted" {
            bail!("{} was not granted access: {o:?}", a.name);
        }
        let out = work
            .path()
            .join(format!("{}.csv", a.name.replace(' ', "-")));
        cix_node::transfer::fetch(&a.node, &published.dataset, &out, |_, _| {}).await?;
    }

    // 1. The request.
    let request = rights::record(
        &publisher.node,
        false,
        &NewRequest {
            kind: Some("access".into()),
            datasets: vec![published.dataset.clone()],
            subject_ref: Some("case 2026-0042".into()),
            summary: Some("a copy of the consumption data held about one household".into()),
            deadline_days: Some(opts.deadline_days),
        },
    )
    .await?;
    let mut failures = Vec::new();
    let bystander_did = bystander.node.did().to_string();
    let bystander_left_out = request.recipients.iter().all(|r| r.agency != bystander_did)
        && rights::list(&bystander.node.shared, false)?.is_empty();
    if !bystander_left_out {
        failures.push("the bystander received the request".into());
    }
    if request.recipients.len() != recipients.len() {
        failures.push(format!(
            "{} recipients found, {} expected",
            request.recipients.len(),
            recipients.len()
        ));
    }
    // 2. All but the last answer.
    let (answering, silent) = recipients.split_at(recipients.len() - 1);
    for (i, a) in answering.iter().enumerate() {
        let (outcome, text) = if i % 2 == 0 {
            ("done", "a copy of the rows about the household was sent")
        } else {
            (
                "partly",
                "rows older than the retention period were already deleted",
            )
        };
        rights::answer(
            &a.node,
            false,
            &request.id,
            &AnswerRequest {
                outcome: outcome.into(),
                text: text.into(),
            },
        )
        .await?;
    }
    let shared = publisher.node.shared.clone();
    let silent_did = silent[0].node.did().to_string();
    let deadline_wait = t + Duration::from_secs(opts.day_secs * u64::from(opts.deadline_days));
    wait(
        "the silent recipient to be reported overdue",
        deadline_wait,
        || {
            let overdue_logged = shared
                .audit
                .list(&cix_node::audit::Filter::default())?
                .iter()
                .any(|l| {
                    l.peer.as_deref() == Some(silent_did.as_str())
                        && l.detail.as_deref().is_some_and(|d| d.contains("overdue"))
                });
            Ok(overdue_logged)
        },
    )
    .await?;
    let request_line = rights::show(&publisher.node.shared, false, &request.id)?;
    let request_answers = answers(&request_line, &recipients);
    let overdue: Vec<String> = request_answers
        .iter()
        .filter(|a| a.overdue)
        .map(|a| a.agency.clone())
        .collect();
    if overdue != vec![silent[0].name.clone()] {
        failures.push(format!(
            "overdue: {overdue:?}, expected only {}",
            silent[0].name
        ));
    }
    if request_answers[..answering.len()]
        .iter()
        .any(|a| a.outcome.is_none())
    {
        failures.push("an answer did not come back".into());
    }

    // 3. The complaint through appeal.
    let complaint = rights::record(
        &publisher.node,
        true,
        &NewRequest {
            datasets: vec![published.dataset.clone()],
            subject_ref: Some("case 2026-0042".into()),
            summary: Some("the data was used beyond planning".into()),
            deadline_days: Some(30),
            ..Default::default()
        },
    )
    .await?;
    rights::answer(
        &recipients[0].node,
        true,
        &complaint.id,
        &AnswerRequest {
            outcome: "refused".into(),
            text: "the data was used for network planning only".into(),
        },
    )
    .await?;
    rights::appeal(
        &publisher.node,
        &complaint.id,
        &AppealRequest {
            text: "the person disputes the answer".into(),
            deadline_days: Some(30),
        },
    )
    .await?;
    let decided = rights::decide(
        &publisher.node,
        &complaint.id,
        &DecideRequest {
            outcome: "upheld".into(),
            text: "the copy held for other uses is to be erased".into(),
        },
    )
    .await?;
    for a in &recipients {
        let s = a.node.shared.clone();
        let cid = complaint.id.clone();
        wait("the decision to reach every recipient", t, || {
            Ok(rights::show(&s, true, &cid)?.status == "decided")
        })
        .await?;
    }
    let mut seen_by = Vec::new();
    for a in &recipients {
        seen_by.push((
            a.name.clone(),
            rights::show(&a.node.shared, true, &complaint.id)?
                .status
                .to_string(),
        ));
    }
    let audit_steps: Vec<String> = publisher
        .node
        .shared
        .audit
        .list(&cix_node::audit::Filter::default())?
        .into_iter()
        .filter(|l| l.kind == "rights" || l.kind == "complaint")
        .filter_map(|l| l.detail)
        .collect();
    for step in [
        "recorded",
        "forwarded",
        "answered",
        "overdue",
        "appealed",
        "decided",
    ] {
        if !audit_steps.iter().any(|d| d.contains(step)) {
            failures.push(format!("no {step:?} step in the publisher's audit log"));
        }
    }
    let report = Report {
        scenario: "rights",
        ok: failures.is_empty(),
        failures,
        dataset: published.dataset,
        request: request.id,
        request_status: request_line.status.to_string(),
        answers: request_answers,
        overdue,
        bystander_left_out,
        complaint: ComplaintPath {
            id: complaint.id,
            answers: answers(&decided, &recipients),
            appeal: decided.appeal.map(|a| a.text),
            decision: decided
                .decision
                .map(|d| format!("{}: {}", d.outcome.unwrap_or_default(), d.text)),
            seen_by,
        },
        audit_steps,
        elapsed_ms: began.elapsed().as_millis(),
    };
    for a in recipients.iter().chain([&publisher, &bystander]) {
        let _ = a.node.shutdown().await;
    }
    Ok(report)
}

/// The report as text.
pub fn markdown(r: &Report) -> String {
    let mut t = format!(
        "# Scenario rights (ISO 37156 8.3.5, 8.3.6): {}\n\nDataset {}.\n\n## Access request {}\n\n\
         Status: {}. The bystander {} the request.\n\n| agency | via | answer | overdue |\n|---|---|---|---|\n",
        if r.ok { "held" } else { "DID NOT HOLD" },
        r.dataset,
        &r.request[..16],
        r.request_status,
        if r.bystander_left_out {
            "did not receive"
        } else {
            "RECEIVED"
        },
    );
    for a in &r.answers {
        t.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            a.agency,
            a.via.join(", "),
            a.outcome.as_ref().map_or_else(
                || "none".to_string(),
                |o| format!("{o}: {}", a.text.clone().unwrap_or_default())
            ),
            if a.overdue { "OVERDUE" } else { "no" }
        ));
    }
    t.push_str(&format!(
        "\nOverdue: {}.\n\n## Complaint {}\n\n",
        r.overdue.join(", "),
        &r.complaint.id[..16]
    ));
    for a in &r.complaint.answers {
        if let Some(o) = &a.outcome {
            t.push_str(&format!(
                "- {} answered {o}: {}\n",
                a.agency,
                a.text.clone().unwrap_or_default()
            ));
        }
    }
    t.push_str(&format!(
        "- appeal: {}\n- decision: {}\n- seen by: {}\n",
        r.complaint.appeal.as_deref().unwrap_or("none"),
        r.complaint.decision.as_deref().unwrap_or("none"),
        r.complaint
            .seen_by
            .iter()
            .map(|(a, s)| format!("{a} ({s})"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    t.push_str(&format!(
        "\n{} audit records at the publisher; {} ms.\n",
        r.audit_steps.len(),
        r.elapsed_ms
    ));
    for f in &r.failures {
        t.push_str(&format!("\nFAILED: {f}"));
    }
    t
}
