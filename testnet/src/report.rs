//! What `cix-testnet run` reports: `report.json` (every figure), `report.md` (for people) and
//! SVG plots ([`crate::plots`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::time::Duration;

use crate::events::Logged;
use crate::revocation::{spread, Spread};
use crate::run::{Mode, Sent};
use crate::scenario::{Condition, HostileMode};

/// Milliseconds, rounded to microseconds.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Memory figures.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// How it was measured.
    pub method: String,
    /// Resident memory per idle node, MiB.
    pub per_idle_node_mib: f64,
    /// Total resident memory of the nodes, MiB.
    pub total_mib: f64,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Memory {
    /// In process: this process's growth while the nodes started, divided among them.
    pub fn in_process(before: u64, after: u64, nodes: usize) -> Self {
        let grown = after.saturating_sub(before) as f64;
        Self {
            method: "growth of this process's VmRSS from before the first node started to 1 s \
                     after the last, divided by the number of nodes"
                .into(),
            per_idle_node_mib: grown / nodes.max(1) as f64 / MIB,
            total_mib: grown / MIB,
        }
    }

    /// Process mode: the mean VmRSS of the children.
    pub fn children(rss: &[u64]) -> Self {
        let total: u64 = rss.iter().sum();
        Self {
            method: "mean VmRSS of the `cix node run` children, 1 s after the last started".into(),
            per_idle_node_mib: total as f64 / rss.len().max(1) as f64 / MIB,
            total_mib: total as f64 / MIB,
        }
    }
}

/// A step as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Number, from 1.
    pub step: usize,
    /// Its action.
    pub action: String,
    /// When it began, ms after the run started.
    pub at_ms: f64,
    /// How long it took, wait included.
    pub took_ms: f64,
    /// What it waited for.
    pub wait: Option<Condition>,
    /// Whether the wait held in time (true when there was none).
    pub held: bool,
    /// How far the wait got.
    pub detail: String,
}

/// One record's spread.
#[derive(Debug, Clone, Serialize)]
pub struct PerRecord {
    /// Entry id or revoked CID.
    pub id: String,
    /// Node that published or signed it.
    pub publisher: usize,
    /// Time until the last live node accepted it, ms (None if some never did).
    pub until_all_ms: Option<f64>,
    /// Live nodes (publisher excepted) that accepted it.
    pub reached: usize,
    /// Live nodes (publisher excepted).
    pub of: usize,
}

/// Spread of entries or revocations.
#[derive(Debug, Clone, Serialize)]
pub struct Propagation {
    /// Records measured (warm-ups excluded).
    pub measured: usize,
    /// From publishing to each live node's acceptance, every (record, node) pair.
    pub per_node: Option<Spread>,
    /// From publishing until every live node had it, every record that reached all.
    pub until_all: Option<Spread>,
    /// (record, live node) pairs that never arrived.
    pub missing: usize,
    /// Every per-node latency, ms, sorted (for the CDF).
    pub per_node_ms: Vec<f64>,
    /// Per record.
    pub records: Vec<PerRecord>,
}

/// Convergence after a heal.
#[derive(Debug, Clone, Serialize)]
pub struct Convergence {
    /// The heal step.
    pub step: usize,
    /// Whether every live node held everything within the step's timeout.
    pub converged: bool,
    /// From healing to the last acceptance of an entry published before it, ms.
    pub converge_ms: Option<f64>,
    /// Acceptances after the heal of entries published before it.
    pub arrivals_after_heal: usize,
}

/// A fetch.
#[derive(Debug, Clone, Serialize)]
pub struct FetchFigure {
    /// Requester.
    pub from: usize,
    /// Owner.
    pub owner: usize,
    /// Bytes received and verified.
    pub bytes: u64,
    /// Time, ms.
    pub ms: f64,
    /// Throughput.
    pub mib_per_s: f64,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// A node's counts, from its own events.
#[derive(Debug, Clone, Serialize)]
pub struct NodeCounts {
    /// Node number.
    pub node: usize,
    /// Entries, revocations and withdrawals it accepted from peers.
    pub accepted: u64,
    /// Those it rejected.
    pub rejected: u64,
    /// Every event it logged.
    pub events: u64,
}

/// What a latency step did to propagation: entries published after it, each (entry, node)
/// time from the publisher's announce record to the node's acceptance.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyFigures {
    /// The step.
    pub step: usize,
    /// Added one-way delay between groups, ms.
    pub delay_ms: f64,
    /// Share of packets lost between groups (0 to 1).
    pub loss: f64,
    /// What a loss did: `none`, `dropped by tc netem`, or `retransmission delay by the nodes'
    /// transport (not dropped)`, where the delaying transport held each chunk read with a lost
    /// segment for `retransmission_delay_ms` more.
    pub loss_by: String,
    /// With loss modelled by the nodes: how much longer a lost chunk was held, ms (Linux's
    /// minimum retransmission timeout plus the round trip).
    pub retransmission_delay_ms: Option<f64>,
    /// How it was added (the report's `faults`).
    pub mechanism: String,
    /// Nodes in the publisher's group.
    pub within_group: Option<Spread>,
    /// Nodes in other groups.
    pub across_groups: Option<Spread>,
    /// The quickest arrival in another group, ms.
    pub across_min_ms: Option<f64>,
}

/// One node's score of the hostile node.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    /// The honest node.
    pub node: usize,
    /// gossipsub's `peer_score` of the hostile node there.
    pub score: f64,
}

/// What the hostile node did and what it got.
#[derive(Debug, Clone, Serialize)]
pub struct HostileFigures {
    /// Node number.
    pub node: usize,
    /// PeerId.
    pub peer: String,
    /// What it sent.
    pub modes: Vec<HostileMode>,
    /// Messages (or corrupt datasets) sent.
    pub sent: u64,
    /// Honest nodes' rejections of messages straight from it.
    pub rejected_direct: u64,
    /// Honest nodes' rejections of messages relayed by another node: an honest node forwarded
    /// an invalid entry. Must be 0.
    pub rejected_forwarded: u64,
    /// Acceptances by honest nodes of entries the scenario did not publish. Must be 0.
    pub invalid_accepted: u64,
    /// Fetches of its corrupt datasets.
    pub corrupt_fetches: u64,
    /// Of them, refused by the fetcher's verification.
    pub corrupt_fetches_refused: u64,
    /// `cix_node::scoring::GRAYLIST_THRESHOLD`.
    pub graylist_threshold: f64,
    /// Its score on every live honest node that has one.
    pub scores: Vec<Score>,
    /// Honest nodes that rejected a message straight from it.
    pub nodes_that_received_its_messages: usize,
    /// Every one of those scores it below the graylist threshold.
    pub below_graylist: bool,
}

/// The report of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// What it shows.
    pub description: String,
    /// in-process or process.
    pub mode: Mode,
    /// How partitions and latency were made: `none`, `filter`, `netns`, `netns+netem`, `delay`
    /// or `filter+delay`.
    pub faults: crate::run::Faults,
    /// The same in words.
    pub network_emulation: String,
    /// Nodes.
    pub nodes: usize,
    /// Topology.
    pub topology: String,
    /// Seed.
    pub seed: u64,
    /// Start, Unix ms.
    pub started_at_unix_ms: u64,
    /// Whole run, ms.
    pub wall_ms: f64,
    /// Starting every node, ms.
    pub start_ms: f64,
    /// Memory.
    pub memory: Memory,
    /// Steps.
    pub steps: Vec<StepReport>,
    /// Entry propagation.
    pub propagation: Propagation,
    /// Revocation spread.
    pub revocations: Propagation,
    /// After each heal.
    pub convergence: Vec<Convergence>,
    /// Fetches.
    pub fetches: Vec<FetchFigure>,
    /// Per node.
    pub per_node: Vec<NodeCounts>,
    /// Messages and bytes each node sent and received, from its own counters.
    pub traffic: crate::traffic::Traffic,
    /// Propagation within and across the groups of the last latency step.
    pub latency: Option<LatencyFigures>,
    /// The hostile node, if any.
    pub hostile: Option<HostileFigures>,
    /// Lowest gossipsub score a live honest node gives a connected honest peer at the end
    /// (read on up to 20 live honest nodes).
    pub honest_min_score: Option<f64>,
    /// Churn rounds run.
    pub churn_rounds: u64,
    /// Duration of each publish call in the harness (local hashing, storing, audit record,
    /// announce), which precedes propagation.
    pub publish_call: Option<Spread>,
    /// Live honest nodes at the end.
    pub live_nodes_at_end: usize,
    /// Entries published in all.
    pub entries_published: usize,
    /// Every live honest node holds every honest entry at the end.
    pub full_catalogue_on_every_live_node: bool,
    /// Events recorded.
    pub events_logged: usize,
    /// Events not kept (the log was full).
    pub events_dropped: u64,
    /// (ms after start, (node, entry) acceptances so far, expected so far), for the
    /// convergence plot.
    pub timeline: Vec<(f64, usize, usize)>,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
    /// Every wait held and no step failed.
    pub ok: bool,
    /// Reading the nodes' figures (scores, traffic) and building this report, ms.
    pub report_ms: f64,
    /// Stopping every node after the last step, ms.
    pub shutdown_ms: f64,
}

pub(crate) fn spread_of(
    sent: &[Sent],
    live: &[usize],
    at: impl Fn(usize, &str) -> Option<u64>,
) -> Propagation {
    let mut per_node = Vec::new();
    let mut until_all = Vec::new();
    let mut records = Vec::new();
    let mut missing = 0;
    for s in sent.iter().filter(|s| s.measure) {
        let mut last = 0.0f64;
        let mut reached = 0;
        let mut of = 0;
        for &n in live.iter().filter(|n| **n != s.publisher) {
            of += 1;
            match at(n, &s.id) {
                Some(t) => {
                    let d = t.saturating_sub(s.at_us) as f64 / 1000.0;
                    per_node.push(d);
                    last = last.max(d);
                    reached += 1;
                }
                None => missing += 1,
            }
        }
        let all = reached == of;
        if all {
            until_all.push(last);
        }
        records.push(PerRecord {
            id: s.id.clone(),
            publisher: s.publisher,
            until_all_ms: all.then_some(last),
            reached,
            of,
        });
    }
    let measured = records.len();
    let pn = (!per_node.is_empty()).then(|| spread(&mut per_node));
    Propagation {
        measured,
        per_node: pn,
        until_all: (!until_all.is_empty()).then(|| spread(&mut until_all)),
        missing,
        per_node_ms: per_node,
        records,
    }
}

pub(crate) fn per_node(log: &[Logged], index: &HashMap<&str, usize>, n: usize) -> Vec<NodeCounts> {
    use cix_node::NodeEvent as E;
    let mut out: Vec<NodeCounts> = (0..n)
        .map(|node| NodeCounts {
            node,
            accepted: 0,
            rejected: 0,
            events: 0,
        })
        .collect();
    for l in log {
        let Some(&i) = index.get(l.node.as_str()) else {
            continue;
        };
        let c = &mut out[i];
        c.events += 1;
        match l.event {
            E::EntryAccepted { .. }
            | E::RevocationAccepted { .. }
            | E::WithdrawalAccepted { .. } => c.accepted += 1,
            E::EntryRejected { .. }
            | E::RevocationRejected { .. }
            | E::WithdrawalRejected { .. } => c.rejected += 1,
            _ => {}
        }
    }
    out
}

/// Most points in the timeline.
const TIMELINE_POINTS: usize = 2000;

pub(crate) fn timeline(
    sent: &[Sent],
    log: &[Logged],
    index: &HashMap<&str, usize>,
    start_us: u64,
) -> Vec<(f64, usize, usize)> {
    let n = index.len();
    let known: HashSet<&str> = sent.iter().map(|s| s.id.as_str()).collect();
    // Expected holdings grow by n - 1 with each publication; acceptances by one each.
    let mut points: Vec<(u64, i8)> = sent.iter().map(|s| (s.at_us, 0)).collect();
    for l in log {
        if let cix_node::NodeEvent::EntryAccepted { entry, .. } = &l.event {
            if known.contains(entry.as_str()) && index.contains_key(l.node.as_str()) {
                points.push((l.at_us, 1));
            }
        }
    }
    points.sort();
    let mut out = Vec::with_capacity(points.len().min(TIMELINE_POINTS) + 1);
    let (mut held, mut expected) = (0usize, 0usize);
    let every = points.len().div_ceil(TIMELINE_POINTS).max(1);
    for (k, (t, kind)) in points.iter().enumerate() {
        if *kind == 1 {
            held += 1;
        } else {
            expected += n.saturating_sub(1);
        }
        if k % every == 0 || k + 1 == points.len() {
            out.push((t.saturating_sub(start_us) as f64 / 1000.0, held, expected));
        }
    }
    out
}

fn fmt_spread(s: &Option<Spread>) -> String {
    match s {
        Some(s) => format!(
            "median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            s.median_ms, s.p99_ms, s.max_ms
        ),
        None => "no figures".into(),
    }
}

/// The report for people.
pub fn markdown(r: &Report) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# cix testnet: {}\n\n{}\n", r.scenario, r.description);
    let _ = writeln!(
        m,
        "- result: **{}**{}",
        if r.ok {
            "every check held"
        } else {
            "a check failed"
        },
        r.error
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        m,
        "- {} nodes, {}, topology {}, seed {}",
        r.nodes,
        match r.mode {
            Mode::InProcess => "in process",
            Mode::Process => "process mode (a `cix node run` child per node)",
        },
        r.topology,
        r.seed
    );
    if r.faults == crate::run::Faults::None {
        let _ = writeln!(m, "- faults: none (no partition, heal or latency step)");
    } else {
        let _ = writeln!(m, "- faults: {} ({})", r.faults.name(), r.network_emulation);
    }
    let _ = writeln!(
        m,
        "- started every node in {:.0} ms; whole run {:.1} s; after the last step, reading \
         the nodes' figures took {:.0} ms and stopping every node {:.0} ms",
        r.start_ms,
        r.wall_ms / 1000.0,
        r.report_ms,
        r.shutdown_ms
    );
    let _ = writeln!(
        m,
        "- memory per idle node: {:.2} MiB ({})",
        r.memory.per_idle_node_mib, r.memory.method
    );
    let _ = writeln!(m, "\n## Steps\n\n| # | action | at (s) | took (ms) | wait | held | detail |\n|---|---|---|---|---|---|---|");
    for s in &r.steps {
        let _ = writeln!(
            m,
            "| {} | {} | {:.2} | {:.0} | {} | {} | {} |",
            s.step,
            s.action,
            s.at_ms / 1000.0,
            s.took_ms,
            s.wait.map(Condition::name).unwrap_or_default(),
            if s.held { "yes" } else { "**no**" },
            s.detail
        );
    }
    for (name, p) in [("Entries", &r.propagation), ("Revocations", &r.revocations)] {
        if p.measured == 0 {
            continue;
        }
        let _ = writeln!(m, "\n## {name}: propagation\n");
        let _ = writeln!(m, "- measured: {}", p.measured);
        let _ = writeln!(
            m,
            "- per node, publishing to acceptance: {}",
            fmt_spread(&p.per_node)
        );
        let _ = writeln!(
            m,
            "- until every live node had it: {}",
            fmt_spread(&p.until_all)
        );
        let _ = writeln!(m, "- (record, node) pairs missing: {}", p.missing);
    }
    if r.publish_call.is_some() {
        let _ = writeln!(
            m,
            "\nEntries are timed from the publisher's own `entry-announced` record. The publish \
             call before it (hashing, storing, audit record): {}",
            fmt_spread(&r.publish_call)
        );
    }
    for c in &r.convergence {
        let _ = writeln!(
            m,
            "\n## Convergence after the heal (step {})\n\n- converged: {}\n- time from healing to \
             the last arrival: {}\n- arrivals after healing: {}",
            c.step,
            c.converged,
            c.converge_ms
                .map(|v| format!("{v:.0} ms"))
                .unwrap_or_else(|| "never".into()),
            c.arrivals_after_heal
        );
    }
    if !r.fetches.is_empty() {
        let _ = writeln!(
            m,
            "\n## Fetches\n\n| from | owner | bytes | ms | MiB/s | ok |\n|---|---|---|---|---|---|"
        );
        for f in &r.fetches {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {:.1} | {:.2} | {} |",
                f.from,
                f.owner,
                f.bytes,
                f.ms,
                f.mib_per_s,
                if f.ok {
                    "yes".to_string()
                } else {
                    format!("no: {}", f.error.clone().unwrap_or_default())
                }
            );
        }
    }
    if let Some(l) = &r.latency {
        let loss = match l.retransmission_delay_ms {
            _ if l.loss == 0.0 => String::new(),
            Some(rto) => format!(
                ", loss {} modelled as retransmission delay: a chunk read with a lost segment \
                 held {rto:.0} ms more, nothing dropped",
                l.loss
            ),
            None => format!(", loss {} {}", l.loss, l.loss_by),
        };
        let _ = writeln!(
            m,
            "\n## Latency (step {}, {:.0} ms one way{loss}, by {})\n\n- within the publisher's \
             group: {}\n- across groups: {}",
            l.step,
            l.delay_ms,
            l.mechanism,
            fmt_spread(&l.within_group),
            fmt_spread(&l.across_groups)
        );
    }
    traffic_md(&mut m, &r.traffic);
    if let Some(h) = &r.hostile {
        let _ = writeln!(m, "\n## Hostile node {}\n", h.node);
        let _ = writeln!(m, "- sent: {} ({:?})", h.sent, h.modes);
        let _ = writeln!(
            m,
            "- rejected by honest nodes straight from it: {}",
            h.rejected_direct
        );
        let _ = writeln!(
            m,
            "- rejected after an honest node forwarded it: **{}** (must be 0)",
            h.rejected_forwarded
        );
        let _ = writeln!(
            m,
            "- invalid entries accepted by honest nodes: **{}** (must be 0)",
            h.invalid_accepted
        );
        if h.corrupt_fetches > 0 {
            let _ = writeln!(
                m,
                "- corrupt datasets fetched: {}, refused by verification: {}",
                h.corrupt_fetches, h.corrupt_fetches_refused
            );
        }
        let scores: Vec<String> = h
            .scores
            .iter()
            .map(|s| format!("{}: {:.0}", s.node, s.score))
            .collect();
        let _ = writeln!(
            m,
            "- its gossipsub score on honest nodes (node: score): {}; graylist threshold {}; \
             below it on every one of the {} nodes it reached: **{}**",
            scores.join(", "),
            h.graylist_threshold,
            h.nodes_that_received_its_messages,
            h.below_graylist
        );
    }
    if let Some(s) = r.honest_min_score {
        let _ = writeln!(
            m,
            "\n- lowest score an honest node gives an honest peer: {s:.2}"
        );
    }
    let _ = writeln!(
        m,
        "- live honest nodes at the end: {}; entries published: {}; every live node holds \
         the full catalogue: {}",
        r.live_nodes_at_end, r.entries_published, r.full_catalogue_on_every_live_node
    );
    if r.churn_rounds > 0 {
        let _ = writeln!(m, "- churn rounds: {}", r.churn_rounds);
    }
    let _ = writeln!(
        m,
        "- events recorded from the nodes' `cix::event` records: {} ({} dropped)",
        r.events_logged, r.events_dropped
    );
    let _ = writeln!(
        m,
        "\nPlots: propagation-cdf.svg, convergence.svg, throughput.svg. Every figure: report.json."
    );
    m
}

fn traffic_md(m: &mut String, t: &crate::traffic::Traffic) {
    let _ = writeln!(
        m,
        "\n## Traffic per node\n\nCounted by the nodes themselves: {}.\n",
        t.source
    );
    let _ = writeln!(
        m,
        "- total: {} bytes sent, {} received; {} gossip messages sent, {} published, {} \
         received\n- per node: {:.0} bytes and {:.1} gossip messages sent on average{}\n",
        t.total.bytes_sent,
        t.total.bytes_received,
        t.total.messages_sent,
        t.total.messages_published,
        t.total.messages_received,
        t.mean_bytes_sent,
        t.mean_messages_sent,
        t.max_bytes_sent
            .map(|(n, b)| format!("; most bytes sent: node {n}, {b}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        m,
        "| node | bytes sent | bytes received | messages sent | published | received | read |\n\
         |---|---|---|---|---|---|---|"
    );
    for n in &t.nodes {
        let c = &n.counters;
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} |",
            n.node,
            c.bytes_sent,
            c.bytes_received,
            c.messages_sent,
            c.messages_published,
            c.messages_received,
            if n.read {
                "yes".to_string()
            } else {
                format!("no: {}", n.error.clone().unwrap_or_default())
            }
        );
    }
}

/// Writes `report.json`, `report.md` and the plots into `dir` (created if missing). Each file
/// is written to a temporary name and renamed, so none is left half-written.
///
/// # Errors
///
/// If a file cannot be written.
pub fn write(r: &Report, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let put = |name: &str, bytes: &[u8]| -> Result<()> {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(name))
            .with_context(|| format!("cannot write {}", dir.join(name).display()))
    };
    put("report.json", &serde_json::to_vec_pretty(r)?)?;
    put("report.md", markdown(r).as_bytes())?;
    put("propagation-cdf.svg", crate::plots::cdf(r)?.as_bytes())?;
    put("convergence.svg", crate::plots::convergence(r)?.as_bytes())?;
    put("throughput.svg", crate::plots::throughput(r)?.as_bytes())?;
    Ok(())
}
