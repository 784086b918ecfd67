//! `cix-testnet run`: runs a [`Scenario`] on real nodes and measures it from the nodes' own
//! `cix::event` records ([`crate::events`]).
//!
//! The runner starts the nodes with the scenario's topology, runs each step, waits for the
//! step's condition (polling the recorder, bounded by the step's timeout), and at the end turns
//! the records into a [`Report`] ([`crate::report`]). A wait that times out does not stop the
//! run: it is recorded as failed, and the report's `ok` is false.

mod net;
pub mod netns;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cix_node::scoring::GRAYLIST_THRESHOLD;
use cix_node::testnet_delay::{Link, LinkError};
use libp2p::PeerId;
use tokio::time::Instant;

use crate::builtin::mix;
use crate::events::{now_us, Recorder};
use crate::hostile::Order;
use crate::report::{self, Convergence, FetchFigure, HostileFigures, Report, Score, StepReport};
use crate::scenario::{Action, Condition, HostileMode, Scenario, Topology};
use crate::traffic::{Counters, NodeTraffic, Traffic};
pub use net::Mode;
use net::{Net, PublishedEntry};

/// Live honest nodes whose scores of their honest peers the report reads.
const HONEST_SCORE_SAMPLE: usize = 20;

/// How often a wait looks at the recorder.
const POLL: Duration = Duration::from_millis(20);

/// Mixed into the scenario's seed for the loss draws of each pair of nodes.
const LOSS_SEED_SALT: u64 = 0x6c6f_7373_2d64_7261;

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// In this process or as `cix node run` children.
    pub mode: Mode,
    /// The `cix` binary for process mode (default: beside this program).
    pub cix: Option<PathBuf>,
    /// Where the node homes live (default: a temporary directory).
    pub work: Option<PathBuf>,
    /// How partitions and latency may be made (`--faults`).
    pub faults: FaultChoice,
}

/// How a run may make its partitions and latency (`cix-testnet run --faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultChoice {
    /// Process mode: network namespaces (with `tc netem` for latency) when they can make
    /// every fault step here, otherwise the children themselves, as with `Filter`. In
    /// process: the nodes' connection filter and delaying transport.
    #[default]
    Auto,
    /// Process mode only: network namespaces and `tc netem`, or refuse the scenario.
    Netns,
    /// The nodes' own testnet-only connection filter and delaying transport; in process
    /// mode each child is a `cix node run --testnet-faults`, told over its admin API.
    Filter,
}

impl std::str::FromStr for FaultChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "netns" => Ok(Self::Netns),
            "filter" => Ok(Self::Filter),
            other => Err(format!("{other:?} is not auto, netns or filter")),
        }
    }
}

/// How a run makes its network faults (the report's `faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Faults {
    /// The scenario has no partition, heal or latency step.
    #[serde(rename = "none")]
    None,
    /// The nodes' connection filter (`Node::testnet_block`): in process through each node's
    /// handle, in process mode through each child's testnet fault endpoint.
    #[serde(rename = "filter")]
    Filter,
    /// Process mode, each child in its own network namespace; partitions by routes.
    #[serde(rename = "netns")]
    Netns,
    /// As `Netns`, with latency and loss by `tc netem`.
    #[serde(rename = "netns+netem")]
    NetnsNetem,
    /// Latency by the nodes' delaying transport (`cix_node::testnet_delay`), in process or
    /// in `cix node run --testnet-faults` children.
    #[serde(rename = "delay")]
    Delay,
    /// Partitions by the connection filter and latency by the delaying transport.
    #[serde(rename = "filter+delay")]
    FilterDelay,
}

impl Faults {
    /// The name the report uses.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Filter => "filter",
            Self::Netns => "netns",
            Self::NetnsNetem => "netns+netem",
            Self::Delay => "delay",
            Self::FilterDelay => "filter+delay",
        }
    }

    /// Whether process-mode children run in network namespaces.
    #[must_use]
    pub fn uses_namespaces(self) -> bool {
        matches!(self, Self::Netns | Self::NetnsNetem)
    }

    /// Whether the nodes make the faults themselves (filter, delaying transport).
    #[must_use]
    pub fn made_by_nodes(self) -> bool {
        matches!(self, Self::Filter | Self::Delay | Self::FilterDelay)
    }

    /// The report's `network_emulation`: how the faults were made, in words; `lossy` when a
    /// latency step sets a loss.
    fn described(self, mode: Mode, lossy: bool) -> String {
        let filter = match mode {
            Mode::InProcess => "the in-process connection filter (Node::testnet_block)",
            Mode::Process => {
                "each child's connection filter (Node::testnet_block; `cix node run \
                 --testnet-faults`, set through its admin API)"
            }
        };
        let delay = match mode {
            Mode::InProcess => {
                "the nodes' delaying transport (testnet only: cix_node::testnet_delay holds \
                 bytes read from other groups' peers for the delay)"
            }
            Mode::Process => {
                "each child's delaying transport (testnet only: cix_node::testnet_delay in \
                 `cix node run --testnet-faults`, set through its admin API)"
            }
        };
        let loss = if lossy {
            format!(
                "loss modelled as TCP retransmission delay by the same transport, not dropped \
                 by netem: a chunk read with a lost segment is held {} ms plus twice the delay \
                 longer (Linux's minimum retransmission timeout plus the round trip) and \
                 nothing read after it on the connection overtakes it",
                cix_node::testnet_delay::MIN_RTO.as_millis()
            )
        } else {
            "no loss".into()
        };
        match self {
            Self::None => "none (no partition, heal or latency step)".into(),
            Self::Filter => format!("partitions by {filter}"),
            Self::Netns => "a network namespace per node; partitions by prohibit routes".into(),
            Self::NetnsNetem => "a network namespace per node; partitions by prohibit routes, \
                                 latency and loss by tc netem (lost packets really dropped)"
                .into(),
            Self::Delay => format!("latency by {delay}; {loss}"),
            Self::FilterDelay => format!("partitions by {filter}; latency by {delay}; {loss}"),
        }
    }
}

/// The fault steps of a scenario: the first latency step and the first partition or heal
/// step (numbered from 1), and the first latency step with a loss.
struct FaultSteps {
    latency: Option<usize>,
    partition: Option<usize>,
    lossy: Option<usize>,
}

impl FaultSteps {
    fn of(scenario: &Scenario) -> Self {
        let step_of = |f: &dyn Fn(&Action) -> bool| {
            scenario
                .steps
                .iter()
                .position(|s| f(&s.action))
                .map(|i| i + 1)
        };
        Self {
            latency: step_of(&|a| matches!(a, Action::Latency { .. })),
            partition: step_of(&|a| matches!(a, Action::Partition { .. } | Action::Heal)),
            lossy: step_of(&|a| matches!(a, Action::Latency { loss, .. } if *loss > 0.0)),
        }
    }
}

/// Faults made by the nodes themselves: the connection filter for partitions, the delaying
/// transport for latency, which models a loss below 1 as retransmission delay
/// (`cix_node::testnet_delay::Link`). A loss of 1 (nothing gets through) it cannot model: that
/// step is refused with `whole_loss`, which says what to do instead.
fn by_nodes(scenario: &Scenario, steps: &FaultSteps, whole_loss: &str) -> Result<Faults> {
    for (i, s) in scenario.steps.iter().enumerate() {
        if let Action::Latency { delay, loss, .. } = &s.action {
            match Link::new(*delay, *loss, 0) {
                Ok(_) => {}
                Err(LinkError::BadLoss(_)) => bail!(
                    "step {} (latency): loss {loss} drops every packet, which the nodes' \
                     delaying transport cannot show (it models a loss below 1 as TCP \
                     retransmission delay): {whole_loss}",
                    i + 1
                ),
                Err(_) => bail!(
                    "step {} (latency): delay {delay:?} is over the {} ms the nodes' delaying \
                     transport allows",
                    i + 1,
                    cix_node::testnet_faults::MAX_DELAY_MS
                ),
            }
        }
    }
    Ok(match (steps.partition.is_some(), steps.latency.is_some()) {
        (true, true) => Faults::FilterDelay,
        (false, true) => Faults::Delay,
        (true, false) => Faults::Filter,
        (false, false) => Faults::None,
    })
}

/// Faults made by the kernel for process mode: network namespaces, with netem for latency;
/// the reason when this machine cannot.
fn by_kernel(steps: &FaultSteps) -> std::result::Result<Faults, String> {
    netns::probe()?;
    if steps.latency.is_some() {
        netns::probe_netem().map_err(|why| format!("this kernel has no netem qdisc: {why}"))?;
        return Ok(Faults::NetnsNetem);
    }
    Ok(Faults::Netns)
}

/// Picks how `scenario` makes its faults in `mode` under `choice`, probing for network
/// namespaces and netem in process mode unless `choice` is [`FaultChoice::Filter`].
///
/// In process mode, [`FaultChoice::Auto`] takes namespaces only when they can make every
/// fault step (partitions need namespaces, latency also netem); otherwise the children make
/// all of them (`filter`, `delay`, `filter+delay`), so one run never mixes the two.
///
/// # Errors
///
/// Naming the step that cannot run and why: loss where the nodes' delaying transport would
/// have to make it, a delay over its bound, or `--faults netns` where namespaces or netem
/// cannot be made (or in process).
pub fn faults_for(scenario: &Scenario, mode: Mode, choice: FaultChoice) -> Result<Faults> {
    let steps = FaultSteps::of(scenario);
    if mode == Mode::InProcess && choice == FaultChoice::Netns {
        bail!(
            "--faults netns is for --mode process: nodes in one process share one network \
             namespace; use --faults auto or filter"
        );
    }
    let Some(first) = steps.latency.or(steps.partition) else {
        return Ok(Faults::None);
    };
    match (mode, choice) {
        (Mode::InProcess, _) => by_nodes(
            scenario,
            &steps,
            "cut the groups apart with a partition step, or run with --mode process as root \
             on a kernel with netem",
        ),
        (Mode::Process, FaultChoice::Filter) => by_nodes(
            scenario,
            &steps,
            "cut the groups apart with a partition step, or use --faults netns as root on a \
             kernel with netem",
        ),
        (Mode::Process, FaultChoice::Netns) => by_kernel(&steps).map_err(|why| {
            anyhow!(
                "step {first} ({}): --faults netns cannot be met here: {why}; run as root on \
                 a kernel with netem, or with --faults filter (the children make partitions \
                 and latency themselves, and model loss as retransmission delay)",
                scenario.steps[first - 1].action.name()
            )
        }),
        (Mode::Process, FaultChoice::Auto) => match by_kernel(&steps) {
            Ok(f) => Ok(f),
            Err(why) => {
                tracing::debug!(reason = %why, "faults made by the children themselves");
                by_nodes(
                    scenario,
                    &steps,
                    &format!(
                        "cut the groups apart with a partition step (netem, which could drop \
                         every packet, cannot be used here: {why})"
                    ),
                )
            }
        },
    }
}

/// An entry the scenario published, with when and by whom.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) id: String,
    pub(crate) publisher: usize,
    pub(crate) at_us: u64,
    pub(crate) measure: bool,
    pub(crate) dataset: String,
}

/// The state of a run.
pub(crate) struct Run<'a> {
    scenario: &'a Scenario,
    net: Net,
    recorder: Recorder,
    peers: Vec<String>,
    work: PathBuf,
    entries: Vec<Sent>,
    revocations: Vec<Sent>,
    hostile: Option<usize>,
    hostile_sent: u64,
    hostile_mode: Vec<HostileMode>,
    corrupt_refused: u64,
    corrupt_tried: u64,
    /// Current partition: node → group.
    groups: Option<Vec<usize>>,
    faults: Faults,
    /// A latency step sets a loss.
    lossy: bool,
    started_us: u64,
    salt: u64,
    fetches: Vec<FetchFigure>,
    convergence: Vec<Convergence>,
    churn_rounds: u64,
    /// How long each publish call took (the local work before and including the announce).
    publish_ms: Vec<f64>,
    /// Traffic counters of each node's earlier incarnations, read just before each kill.
    carried: Vec<Counters>,
    /// The last latency step.
    latency: Option<LatencySet>,
}

/// Latency a step set between groups.
#[derive(Debug, Clone)]
struct LatencySet {
    step: usize,
    /// node → group.
    groups: Vec<usize>,
    delay: Duration,
    /// Share of packets lost between groups.
    loss: f64,
    at_us: u64,
}

/// Which earlier nodes each node bootstraps to.
pub fn links(topology: &Topology, n: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); n];
    let mut r = seed;
    let mut next = |m: usize| {
        r = mix(r);
        (r % m as u64) as usize
    };
    for (i, l) in out.iter_mut().enumerate() {
        match *topology {
            Topology::Full => l.extend(0..i),
            Topology::Random { degree } => {
                let mut pool: Vec<usize> = (0..i).collect();
                while l.len() < degree && !pool.is_empty() {
                    let k = next(pool.len());
                    l.push(pool.swap_remove(k));
                }
            }
            Topology::Sectors { sectors, bridges } => {
                let mine = i % sectors;
                l.extend((0..i).filter(|j| j % sectors == mine));
                let mut others: Vec<usize> = (0..i).filter(|j| j % sectors != mine).collect();
                // The first node of a sector must reach the rest of the network.
                let want = if l.is_empty() {
                    bridges.max(1)
                } else {
                    bridges
                };
                while l.len() < want + (0..i).filter(|j| j % sectors == mine).count()
                    && !others.is_empty()
                {
                    let k = next(others.len());
                    l.push(others.swap_remove(k));
                }
            }
        }
    }
    out
}

/// This process's resident memory, bytes.
fn self_rss() -> u64 {
    net::rss_of("/proc/self/status").unwrap_or(0)
}

/// Checks that `scenario` can run in `mode`.
///
/// # Errors
///
/// Naming the step that cannot.
pub fn check_mode(scenario: &Scenario, mode: Mode, choice: FaultChoice) -> Result<()> {
    // Every step type runs in both modes; only faults depend on the machine.
    faults_for(scenario, mode, choice).map(|_| ())
}

/// Runs `scenario`.
///
/// # Errors
///
/// If the nodes cannot start or a step cannot be carried out (a wait that times out is not an
/// error: it is in the report).
pub async fn run(scenario: &Scenario, opts: &Options, recorder: Recorder) -> Result<Report> {
    scenario.validate().map_err(|e| anyhow!(e))?;
    let faults = faults_for(scenario, opts.mode, opts.faults)?;
    let tmp;
    let work = match &opts.work {
        Some(w) => {
            std::fs::create_dir_all(w).with_context(|| format!("cannot create {}", w.display()))?;
            w.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("cix-testnet-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let work = work
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", work.display()))?;
    if opts.mode == Mode::InProcess && matches!(faults, Faults::Delay | Faults::FilterDelay) {
        // TESTNET ONLY: every node started from now on in this process delays what it reads
        // from peers the latency steps name (no delay until a step sets one).
        cix_node::testnet_delay::enable();
    }
    let started_us = now_us();
    let links = links(&scenario.topology, scenario.nodes, scenario.seed);
    let rss_before = self_rss();
    let t = Instant::now();
    let (net, peers) = Net::start(
        opts.mode,
        opts.cix.clone(),
        &work,
        &links,
        &recorder,
        faults,
        scenario.hostile(),
    )
    .await?;
    let start_ms = report::ms(t.elapsed());
    // Let connections, identify and catch-up settle before the idle figure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let memory = match opts.mode {
        Mode::InProcess => report::Memory::in_process(rss_before, self_rss(), scenario.nodes),
        Mode::Process => report::Memory::children(&net.child_rss()),
    };
    let mut run = Run {
        scenario,
        net,
        recorder,
        peers,
        work,
        entries: Vec::new(),
        revocations: Vec::new(),
        hostile: scenario.hostile(),
        hostile_sent: 0,
        hostile_mode: Vec::new(),
        corrupt_refused: 0,
        corrupt_tried: 0,
        groups: None,
        faults,
        lossy: FaultSteps::of(scenario).lossy.is_some(),
        started_us,
        salt: scenario.seed,
        fetches: Vec::new(),
        convergence: Vec::new(),
        churn_rounds: 0,
        publish_ms: Vec::new(),
        carried: vec![Counters::default(); scenario.nodes],
        latency: None,
    };
    let mut steps = Vec::with_capacity(scenario.steps.len());
    let mut failure = None;
    for (i, step) in scenario.steps.iter().enumerate() {
        let began = now_us();
        let t = Instant::now();
        if let Err(e) = run.act(i, &step.action).await {
            failure = Some(format!("step {} ({}): {e:#}", i + 1, step.action.name()));
            steps.push(StepReport {
                step: i + 1,
                action: step.action.name().into(),
                at_ms: (began - started_us) as f64 / 1000.0,
                took_ms: report::ms(t.elapsed()),
                wait: step.wait,
                held: false,
                detail: failure.clone().unwrap_or_default(),
            });
            break;
        }
        let (held, detail) = match step.wait {
            Some(c) => run.wait(c, step.timeout).await,
            None => (true, String::new()),
        };
        if let Action::Heal = step.action {
            run.convergence
                .push(run.converged_after(i + 1, began, held));
        }
        tracing::debug!(step = i + 1, action = step.action.name(), held, "step done");
        steps.push(StepReport {
            step: i + 1,
            action: step.action.name().into(),
            at_ms: (began - started_us) as f64 / 1000.0,
            took_ms: report::ms(t.elapsed()),
            wait: step.wait,
            held,
            detail,
        });
    }
    let t = Instant::now();
    let mut report = run.report(steps, start_ms, memory, failure).await;
    report.report_ms = report::ms(t.elapsed());
    // Every node at once (one after the other takes seconds each at a hundred nodes).
    let t = Instant::now();
    run.net.shutdown().await;
    report.shutdown_ms = report::ms(t.elapsed());
    Ok(report)
}

impl Run<'_> {
    fn honest(&self, i: usize) -> bool {
        self.hostile != Some(i)
    }

    fn live_honest(&self) -> Vec<usize> {
        (0..self.net.len())
            .filter(|i| self.net.is_up(*i) && self.honest(*i))
            .collect()
    }

    fn peer(&self, i: usize) -> Result<PeerId> {
        self.peers[i]
            .parse()
            .map_err(|e| anyhow!("node {i} has a bad peer id: {e}"))
    }

    async fn act(&mut self, index: usize, action: &Action) -> Result<()> {
        match action {
            Action::Publish {
                nodes,
                count,
                interval,
                measure,
            } => {
                for &n in nodes {
                    for _ in 0..*count {
                        self.publish(n, *measure).await?;
                        if !interval.is_zero() {
                            tokio::time::sleep(*interval).await;
                        }
                    }
                }
            }
            Action::Revoke {
                nodes,
                count,
                measure,
            } => {
                for _ in 0..*count {
                    for &n in nodes {
                        let at_us = now_us();
                        let id = self.net.revoke(n).await?;
                        self.revocations.push(Sent {
                            id,
                            publisher: n,
                            at_us,
                            measure: *measure,
                            dataset: String::new(),
                        });
                    }
                }
            }
            Action::Fetch { from, owner } => {
                self.fetch(*from, *owner).await?;
                // A fetch step holds only if the fetch did (a hostile step's fetches of
                // corrupt data are meant to fail, and are counted there instead).
                if let Some(f) = self.fetches.last().filter(|f| !f.ok) {
                    bail!(
                        "node {from} could not fetch node {owner}'s dataset: {}",
                        f.error.as_deref().unwrap_or("no reason given")
                    );
                }
            }
            Action::Kill { nodes } => {
                for &n in nodes {
                    self.kill(n).await?;
                }
            }
            Action::Restart { nodes } => {
                for &n in nodes {
                    self.restart(n).await?;
                }
            }
            Action::Partition { groups } => {
                self.groups = Some(group_of(groups, self.net.len()));
                self.apply_partition().await?;
            }
            Action::Heal => {
                self.groups = None;
                self.apply_partition().await?;
            }
            Action::Latency {
                groups,
                delay,
                loss,
            } => {
                let of = group_of(groups, self.net.len());
                self.latency = Some(LatencySet {
                    step: index + 1,
                    groups: of.clone(),
                    delay: *delay,
                    loss: *loss,
                    at_us: now_us(),
                });
                if let Some(fabric) = self.net.fabric_mut() {
                    fabric.latency(&of, *delay, *loss)?;
                } else {
                    for i in 0..self.net.len() {
                        self.apply_delays(i).await?;
                    }
                }
            }
            Action::Churn {
                share,
                period,
                duration,
            } => self.churn(*share, *period, *duration).await?,
            Action::Hostile {
                node,
                mode,
                count,
                interval,
            } => self.hostile(*node, *mode, *count, *interval).await?,
            Action::Sleep { duration } => tokio::time::sleep(*duration).await,
            Action::Wait => {}
        }
        let _ = index;
        Ok(())
    }

    async fn publish(&mut self, n: usize, measure: bool) -> Result<PublishedEntry> {
        self.salt += 1;
        let at_us = now_us();
        let p = self.net.publish(n, &self.work, self.salt).await?;
        self.publish_ms.push((now_us() - at_us) as f64 / 1000.0);
        self.entries.push(Sent {
            id: p.entry.clone(),
            publisher: n,
            at_us,
            measure,
            dataset: p.dataset.clone(),
        });
        Ok(p)
    }

    /// Kills node `n`, first adding its traffic counters to what it carries over.
    async fn kill(&mut self, n: usize) -> Result<()> {
        if self.net.is_up(n) {
            match self.net.counters(n) {
                Ok(c) => self.carried[n] = self.carried[n].plus(c),
                Err(e) => {
                    tracing::warn!(node = n, error = %format!("{e:#}"), "cannot read a node's traffic counters before killing it")
                }
            }
        }
        self.net.kill(n).await
    }

    /// Every node's traffic, from its own counters.
    fn traffic(&self) -> Traffic {
        let nodes = (0..self.net.len())
            .map(|i| {
                let (read, error, now) = if self.net.is_up(i) {
                    match self.net.counters(i) {
                        Ok(c) => (true, None, c),
                        Err(e) => (false, Some(format!("{e:#}")), Counters::default()),
                    }
                } else {
                    (false, Some("down at the end".into()), Counters::default())
                };
                NodeTraffic {
                    node: i,
                    read,
                    error,
                    counters: self.carried[i].plus(now),
                }
            })
            .collect();
        let source = match self.net.mode() {
            Mode::InProcess => {
                "each node's own metrics registry (libp2p_bandwidth_bytes, \
                                gossipsub topic_msg_*), encoded through its handle"
            }
            Mode::Process => {
                "each child's own metrics registry (libp2p_bandwidth_bytes, \
                              gossipsub topic_msg_*), read with `cix metrics`"
            }
        };
        Traffic::of(source, nodes)
    }

    /// Sets node `i`'s links towards the other groups' nodes (the last latency step's delay
    /// and loss), when the nodes make latency themselves. Each pair's loss draws are seeded
    /// from the scenario's seed and the two node numbers, so a run with the same seed draws
    /// the same losses per chunk on each pair ([`loss_seed`]).
    async fn apply_delays(&self, i: usize) -> Result<()> {
        let Some(l) = &self.latency else {
            return Ok(());
        };
        if !self.faults.made_by_nodes() {
            return Ok(());
        }
        let mut links = HashMap::new();
        for j in 0..self.net.len() {
            if l.groups[j] != l.groups[i] {
                let seed = loss_seed(self.scenario.seed, i, j);
                let link = Link::new(l.delay, l.loss, seed)
                    .with_context(|| format!("latency step {}", l.step))?;
                links.insert(self.peer(j)?, link);
            }
        }
        self.net.set_delays(i, self.peer(i)?, &links).await
    }

    /// Propagation within and across the last latency step's groups, of the entries
    /// published after it.
    fn latency_figures(&self) -> Option<report::LatencyFigures> {
        let l = self.latency.as_ref()?;
        let mut within = Vec::new();
        let mut across = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.at_us >= l.at_us && e.measure)
        {
            let from = self.recorder.announced_at(&e.id).unwrap_or(e.at_us);
            for n in self.live_honest() {
                if n == e.publisher {
                    continue;
                }
                if let Some(t) = self.recorder.entry_at(&self.peers[n], &e.id) {
                    let d = t.saturating_sub(from) as f64 / 1000.0;
                    if l.groups[n] == l.groups[e.publisher] {
                        within.push(d);
                    } else {
                        across.push(d);
                    }
                }
            }
        }
        let modelled = self.faults.made_by_nodes() && l.loss > 0.0;
        let loss_by = if l.loss == 0.0 {
            "none"
        } else if modelled {
            "retransmission delay by the nodes' transport (not dropped)"
        } else {
            "dropped by tc netem"
        };
        Some(report::LatencyFigures {
            step: l.step,
            delay_ms: report::ms(l.delay),
            loss: l.loss,
            loss_by: loss_by.into(),
            retransmission_delay_ms: modelled.then(|| {
                let link = Link::new(l.delay, l.loss, 0).unwrap_or(Link::NONE);
                report::ms(link.retransmission_delay())
            }),
            mechanism: self.faults.name().into(),
            across_min_ms: across.iter().copied().reduce(f64::min),
            within_group: (!within.is_empty()).then(|| crate::revocation::spread(&mut within)),
            across_groups: (!across.is_empty()).then(|| crate::revocation::spread(&mut across)),
        })
    }

    /// Restarts node `n`; when the nodes make the faults, sets its partition and delays
    /// again (a restarted child starts with neither; its peers still refuse it meanwhile).
    async fn restart(&mut self, n: usize) -> Result<()> {
        self.net.restart(n, &self.recorder).await?;
        if !self.faults.made_by_nodes() {
            return Ok(());
        }
        if let Some(groups) = &self.groups {
            let blocked = self.blocked_for(n, groups)?;
            self.net.block(n, blocked).await?;
        }
        self.apply_delays(n).await
    }

    fn blocked_for(&self, i: usize, groups: &[usize]) -> Result<HashSet<PeerId>> {
        let mut set = HashSet::new();
        for j in 0..self.net.len() {
            if groups[j] != groups[i] {
                set.insert(self.peer(j)?);
            }
        }
        Ok(set)
    }

    async fn apply_partition(&mut self) -> Result<()> {
        if let Some(fabric) = self.net.fabric_mut() {
            return fabric.partition(self.groups.as_deref());
        }
        for i in 0..self.net.len() {
            let blocked = match &self.groups {
                Some(g) => self.blocked_for(i, g)?,
                None => HashSet::new(),
            };
            self.net.block(i, blocked).await?;
        }
        Ok(())
    }

    async fn fetch(&mut self, from: usize, owner: usize) -> Result<()> {
        let sent = self
            .entries
            .iter()
            .rev()
            .find(|e| e.publisher == owner)
            .cloned()
            .ok_or_else(|| anyhow!("node {owner} has published nothing yet"))?;
        if !self.net.is_up(from) {
            bail!("node {from} is down");
        }
        // The requester needs the entry first.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .recorder
            .entry_at(&self.peers[from], &sent.id)
            .is_none()
        {
            if Instant::now() > deadline {
                bail!("node {from} never received the entry of node {owner}'s dataset");
            }
            tokio::time::sleep(POLL).await;
        }
        let out = self
            .work
            .join(format!("fetched-{from}-{}.csv", self.fetches.len()));
        let t = Instant::now();
        let result = self.net.fetch(from, &sent.dataset, &out).await?;
        let took = t.elapsed();
        self.fetches.push(match result {
            Ok(bytes) => FetchFigure {
                from,
                owner,
                bytes,
                ms: report::ms(took),
                mib_per_s: bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64().max(1e-9),
                ok: true,
                error: None,
            },
            Err(e) => FetchFigure {
                from,
                owner,
                bytes: 0,
                ms: report::ms(took),
                mib_per_s: 0.0,
                ok: false,
                error: Some(e),
            },
        });
        let _ = std::fs::remove_file(&out);
        Ok(())
    }

    async fn churn(&mut self, share: f64, period: Duration, duration: Duration) -> Result<()> {
        let n = self.net.len();
        let down_each = ((n as f64 * share).round() as usize).clamp(1, n - 1);
        let end = Instant::now() + duration;
        let mut down: Vec<usize> = Vec::new();
        let mut r = self.scenario.seed ^ 0xc0ffee;
        while Instant::now() < end {
            self.churn_rounds += 1;
            for &d in &down {
                self.restart(d).await?;
            }
            let mut live: Vec<usize> = (0..n).filter(|i| self.honest(*i)).collect();
            down.clear();
            while down.len() < down_each && live.len() > 1 {
                r = mix(r);
                let k = (r % live.len() as u64) as usize;
                down.push(live.swap_remove(k));
            }
            for &d in &down {
                self.kill(d).await?;
            }
            r = mix(r);
            let publisher = live[(r % live.len() as u64) as usize];
            self.publish(publisher, true).await?;
            tokio::time::sleep(period.min(end.saturating_duration_since(Instant::now()))).await;
        }
        for &d in &down {
            self.restart(d).await?;
        }
        Ok(())
    }

    async fn hostile(
        &mut self,
        h: usize,
        mode: HostileMode,
        count: usize,
        interval: Duration,
    ) -> Result<()> {
        if !self.net.is_up(h) {
            bail!("node {h} is down");
        }
        self.hostile_mode.push(mode);
        match mode {
            HostileMode::Invalid | HostileMode::Forged => {
                let order = Order {
                    mode,
                    count,
                    interval_ms: interval.as_millis() as u64,
                    entries: self
                        .entries
                        .iter()
                        .filter(|e| e.publisher != h)
                        .map(|e| e.id.clone())
                        .collect(),
                };
                self.hostile_sent += self.net.hostile_send(h, &order).await?;
            }
            HostileMode::Corrupt => {
                // Publish a real dataset, then change its bytes on disk: honest fetchers must
                // refuse what it serves.
                for _ in 0..count.min(5) {
                    let p = self.publish(h, false).await?;
                    let blob = self.net.blob(h, &p.content);
                    let mut bytes = std::fs::read(&blob)
                        .with_context(|| format!("cannot read {}", blob.display()))?;
                    for b in bytes.iter_mut() {
                        *b ^= 0x55;
                    }
                    std::fs::write(&blob, &bytes)?;
                    let from = self.live_honest().first().copied().ok_or_else(|| {
                        anyhow!("no honest node is up to fetch from the hostile node")
                    })?;
                    self.fetch(from, h).await?;
                    self.corrupt_tried += 1;
                    if self.fetches.last().is_some_and(|f| !f.ok) {
                        self.corrupt_refused += 1;
                    }
                    self.hostile_sent += 1;
                    tokio::time::sleep(interval).await;
                }
            }
        }
        Ok(())
    }

    /// Whether `c` holds; with a line saying how far it got.
    fn holds(&self, c: Condition) -> (bool, String) {
        let live = self.live_honest();
        let mut ok = true;
        let mut detail = Vec::new();
        if matches!(c, Condition::Entries | Condition::Converged) {
            let wanted: Vec<(&str, &str)> = self
                .entries
                .iter()
                .filter(|e| self.honest(e.publisher))
                .flat_map(|e| {
                    live.iter()
                        .filter(move |n| **n != e.publisher)
                        .map(move |n| (self.peers[*n].as_str(), e.id.as_str()))
                })
                .collect();
            let (have, total) = self.recorder.entries_held(wanted.into_iter());
            ok &= have == total;
            detail.push(format!("{have} of {total} (live node, entry) pairs held"));
        }
        if matches!(c, Condition::Revocations | Condition::Converged) {
            let wanted: Vec<(&str, &str)> = self
                .revocations
                .iter()
                .flat_map(|e| {
                    live.iter()
                        .filter(move |n| **n != e.publisher)
                        .map(move |n| (self.peers[*n].as_str(), e.id.as_str()))
                })
                .collect();
            let (have, total) = self.recorder.revocations_held(wanted.into_iter());
            ok &= have == total;
            detail.push(format!(
                "{have} of {total} (live node, revocation) pairs held"
            ));
        }
        (ok, detail.join("; "))
    }

    async fn wait(&mut self, c: Condition, timeout: Duration) -> (bool, String) {
        let deadline = Instant::now() + timeout;
        if c == Condition::Quiet {
            return self.quiet(deadline, timeout).await;
        }
        loop {
            let (ok, detail) = if c == Condition::Graylisted {
                self.graylisted().await
            } else {
                self.holds(c)
            };
            if ok {
                return (true, detail);
            }
            if Instant::now() > deadline {
                return (false, format!("timed out after {timeout:?}: {detail}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the nodes used less than `QUIET_CPU` of a core over a whole `QUIET_WINDOW`
    /// (in process: this process, whose own share between steps is negligible; in process
    /// mode: the children).
    async fn quiet(&mut self, deadline: Instant, timeout: Duration) -> (bool, String) {
        use crate::scenario::{QUIET_CPU, QUIET_WINDOW};
        let started = Instant::now();
        let mut last = (Instant::now(), self.net.cpu_seconds());
        loop {
            tokio::time::sleep(QUIET_WINDOW).await;
            let now = (Instant::now(), self.net.cpu_seconds());
            let cores = (now.1 - last.1) / now.0.duration_since(last.0).as_secs_f64().max(1e-3);
            let detail = format!(
                "nodes used {cores:.2} cores over the last {} ms (quiet below {QUIET_CPU}); \
                 waited {} ms",
                QUIET_WINDOW.as_millis(),
                started.elapsed().as_millis()
            );
            if cores < QUIET_CPU {
                return (true, detail);
            }
            if Instant::now() > deadline {
                return (false, format!("timed out after {timeout:?}: {detail}"));
            }
            last = now;
        }
    }

    /// Honest nodes that rejected something straight from the hostile node.
    fn direct_victims(&self) -> HashSet<String> {
        let Some(h) = self.hostile else {
            return HashSet::new();
        };
        let hp = &self.peers[h];
        self.recorder
            .snapshot()
            .into_iter()
            .filter_map(|l| match &l.event {
                cix_node::NodeEvent::EntryRejected { from, .. } if from == hp => Some(l.node),
                _ => None,
            })
            .collect()
    }

    async fn hostile_scores(&self) -> Vec<Score> {
        let Some(h) = self.hostile else {
            return Vec::new();
        };
        let hp = &self.peers[h];
        let mut out = Vec::new();
        for i in self.live_honest() {
            if let Ok(Some(s)) = self.net.score_of(i, hp).await {
                out.push(Score { node: i, score: s });
            }
        }
        out
    }

    async fn graylisted(&self) -> (bool, String) {
        let victims = self.direct_victims();
        let scores = self.hostile_scores().await;
        let judged: Vec<&Score> = scores
            .iter()
            .filter(|s| victims.contains(&self.peers[s.node]))
            .collect();
        let below = judged
            .iter()
            .filter(|s| s.score < GRAYLIST_THRESHOLD)
            .count();
        (
            !judged.is_empty() && below == judged.len(),
            format!(
                "{below} of {} honest nodes that received its messages score it below {}",
                judged.len(),
                GRAYLIST_THRESHOLD
            ),
        )
    }

    fn converged_after(&self, step: usize, heal_us: u64, held: bool) -> Convergence {
        // The last acceptance, after the heal, of an entry or revocation published before it.
        let before: HashSet<&str> = self
            .entries
            .iter()
            .filter(|e| e.at_us < heal_us)
            .map(|e| e.id.as_str())
            .collect();
        let mut last = heal_us;
        let mut arrivals = 0;
        for l in self.recorder.snapshot() {
            if l.at_us < heal_us {
                continue;
            }
            if let cix_node::NodeEvent::EntryAccepted { entry, .. } = &l.event {
                if before.contains(entry.as_str()) {
                    last = last.max(l.at_us);
                    arrivals += 1;
                }
            }
        }
        Convergence {
            step,
            converged: held,
            converge_ms: held.then(|| (last - heal_us) as f64 / 1000.0),
            arrivals_after_heal: arrivals,
        }
    }

    async fn report(
        &self,
        steps: Vec<StepReport>,
        start_ms: f64,
        memory: report::Memory,
        failure: Option<String>,
    ) -> Report {
        let log = self.recorder.snapshot();
        let live = self.live_honest();
        let nodes = self.net.len();
        let index: HashMap<&str, usize> = self
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i))
            .collect();
        // Entries are timed from their publisher's own EntryAnnounced record, which follows
        // the local work of publishing (hashing, storing, the audit record).
        let announced: Vec<Sent> = self
            .entries
            .iter()
            .map(|e| Sent {
                at_us: self.recorder.announced_at(&e.id).unwrap_or(e.at_us),
                ..e.clone()
            })
            .collect();
        let propagation = report::spread_of(&announced, &live, |n, id| {
            self.recorder.entry_at(&self.peers[n], id)
        });
        let revocations = report::spread_of(&self.revocations, &live, |n, id| {
            self.recorder.revocation_at(&self.peers[n], id)
        });
        let per_node = report::per_node(&log, &index, nodes);
        let traffic = self.traffic();
        let hostile = match self.hostile {
            None => None,
            Some(h) => {
                let hp = self.peers[h].as_str();
                let genuine: HashSet<&str> = self.entries.iter().map(|e| e.id.as_str()).collect();
                let mut rejected_direct = 0;
                let mut rejected_forwarded = 0;
                let mut invalid_accepted = 0;
                for l in &log {
                    // Only this run's honest nodes (runs in one process share the recorder).
                    if l.node == hp || !index.contains_key(l.node.as_str()) {
                        continue;
                    }
                    match &l.event {
                        cix_node::NodeEvent::EntryRejected { from, .. } => {
                            if from == hp {
                                rejected_direct += 1;
                            } else {
                                rejected_forwarded += 1;
                            }
                        }
                        cix_node::NodeEvent::EntryAccepted { entry, .. }
                            if !genuine.contains(entry.as_str()) =>
                        {
                            invalid_accepted += 1;
                        }
                        _ => {}
                    }
                }
                let victims = self.direct_victims();
                let scores = self.hostile_scores().await;
                let judged: Vec<&Score> = scores
                    .iter()
                    .filter(|s| victims.contains(&self.peers[s.node]))
                    .collect();
                let below =
                    !judged.is_empty() && judged.iter().all(|s| s.score < GRAYLIST_THRESHOLD);
                let judged_count = judged.len();
                Some(HostileFigures {
                    node: h,
                    peer: hp.to_string(),
                    modes: self.hostile_mode.clone(),
                    sent: self.hostile_sent,
                    rejected_direct,
                    rejected_forwarded,
                    invalid_accepted,
                    corrupt_fetches: self.corrupt_tried,
                    corrupt_fetches_refused: self.corrupt_refused,
                    graylist_threshold: GRAYLIST_THRESHOLD,
                    scores,
                    nodes_that_received_its_messages: judged_count,
                    below_graylist: below,
                })
            }
        };
        // Do honest nodes score each other fairly? The lowest score any live honest node gives
        // a connected honest peer.
        let mut honest_min: Option<f64> = None;
        for &i in live.iter().take(HONEST_SCORE_SAMPLE) {
            let Some(node) = self.net.node(i) else {
                continue;
            };
            let Ok(list) = node.peers().await else {
                continue;
            };
            for p in list {
                let Some(&j) = index.get(p.peer_id.as_str()) else {
                    continue;
                };
                if !self.honest(j) {
                    continue;
                }
                if let (Ok(pid), true) = (p.peer_id.parse::<PeerId>(), true) {
                    if let Ok(Some(s)) = node.peer_score(pid).await {
                        honest_min = Some(honest_min.map_or(s, |m: f64| m.min(s)));
                    }
                }
            }
        }
        let full = self.holds(Condition::Entries).0;
        let ok = failure.is_none() && steps.iter().all(|s| s.held);
        Report {
            scenario: self.scenario.name.clone(),
            description: self.scenario.description.clone(),
            mode: self.net.mode(),
            faults: self.faults,
            network_emulation: self.faults.described(self.net.mode(), self.lossy),
            nodes,
            topology: self.scenario.topology.to_string(),
            seed: self.scenario.seed,
            started_at_unix_ms: self.started_us / 1000,
            wall_ms: (now_us() - self.started_us) as f64 / 1000.0,
            start_ms,
            memory,
            steps,
            propagation,
            revocations,
            convergence: self.convergence.clone(),
            fetches: self.fetches.clone(),
            per_node,
            traffic,
            latency: self.latency_figures(),
            hostile,
            honest_min_score: honest_min,
            churn_rounds: self.churn_rounds,
            publish_call: (!self.publish_ms.is_empty())
                .then(|| crate::revocation::spread(&mut self.publish_ms.clone())),
            live_nodes_at_end: live.len(),
            entries_published: self.entries.len(),
            full_catalogue_on_every_live_node: full,
            events_logged: log.len(),
            events_dropped: self.recorder.dropped(),
            timeline: report::timeline(&self.entries, &log, &index, self.started_us),
            error: failure,
            ok,
            report_ms: 0.0,
            shutdown_ms: 0.0,
        }
    }
}

/// The seed of node `reader`'s loss draws for what it reads from node `sender`: one per
/// ordered pair, from the scenario's seed and the two node numbers alone (peer ids change from
/// run to run).
fn loss_seed(seed: u64, reader: usize, sender: usize) -> u64 {
    let pair = ((reader as u64) << 32) ^ sender as u64;
    mix(mix(seed ^ LOSS_SEED_SALT) ^ pair)
}

/// `groups[i]` for every node: its index among `groups`, or one more group for the rest.
fn group_of(groups: &[Vec<usize>], n: usize) -> Vec<usize> {
    let mut of = vec![groups.len(); n];
    for (g, members) in groups.iter().enumerate() {
        for &m in members {
            of[m] = g;
        }
    }
    of
}

/// Runs a scenario with a tracing layer installed that feeds the recorder (in process) and
/// writes the report files into `out` when given.
///
/// # Errors
///
/// As [`run`], or if the report cannot be written.
pub async fn run_and_write(
    scenario: &Scenario,
    opts: &Options,
    recorder: Recorder,
    out: Option<&Path>,
) -> Result<Report> {
    let report = run(scenario, opts, recorder).await?;
    if let Some(dir) = out {
        report::write(&report, dir)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ordered_pair_gets_its_own_loss_seed_from_the_scenario_seed() {
        let seeds: HashSet<u64> = (0..20)
            .flat_map(|i| (0..20).map(move |j| loss_seed(3, i, j)))
            .collect();
        assert_eq!(seeds.len(), 400);
        // The same scenario seed gives the same seeds; another gives others.
        assert_eq!(loss_seed(3, 1, 2), loss_seed(3, 1, 2));
        assert_ne!(loss_seed(3, 1, 2), loss_seed(3, 2, 1));
        assert_ne!(loss_seed(3, 1, 2), loss_seed(4, 1, 2));
    }
}
