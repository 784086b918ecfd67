//! The nodes of a run: in this process ([`Member`] holds a [`Node`]) or as `cix node run`
//! children ([`Child`]). [`Net`] gives the runner one set of operations over both.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cix_node::publish::{publish, PublishRequest};
use cix_node::revoke::{revoke, RevokeRequest};
use cix_node::testnet_delay::Link;
use cix_node::{Config, Home, Node};
use cix_protocol::ucan::Cid;
use libp2p::PeerId;

use super::netns::{self, Fabric};
use super::Faults;
use crate::events::{now_us, parse_log_line, Recorder};
use crate::hostile::{self, Order};
use crate::traffic::{self, Counters};

/// sled cache per node: many nodes share one machine (MEASUREMENTS.md).
pub(crate) const STORE_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// Longest a call to a child's testnet fault endpoints may take.
const FAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Metadata of every dataset the testnet publishes.
const META: &str = "domain = \"water\"\nkind = \"supply\"\ndescription = \"testnet\"\n";

/// Which kind of nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Real libp2p swarms in this process.
    InProcess,
    /// Each node a `cix node run` child.
    Process,
}

/// One in-process node.
pub(crate) struct Member {
    pub(crate) home: Home,
    pub(crate) config: Config,
    pub(crate) node: Option<Node>,
}

/// One `cix node run` child.
pub(crate) struct Child {
    home: PathBuf,
    listen: String,
    bootstrap: Vec<String>,
    /// The network namespace it runs in, if any.
    netns: Option<String>,
    /// Started with `--testnet-faults`: it makes partitions and latency itself, set through
    /// its admin API ([`cix_node::testnet_faults`]).
    testnet_faults: bool,
    process: Option<std::process::Child>,
    /// The hostile node: `cix-testnet hostile-node` (this program) instead of `cix node run`,
    /// with its order pipe.
    hostile: Option<PathBuf>,
    orders: Option<(
        std::process::ChildStdin,
        BufReader<std::process::ChildStdout>,
    )>,
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// The nodes of a run.
pub(crate) enum Net {
    InProcess(Vec<Member>),
    Process {
        cix: PathBuf,
        children: Vec<Child>,
        /// The children's network namespaces; declared after them so that the children are
        /// killed before their namespaces go.
        fabric: Option<Fabric>,
    },
}

/// A published entry.
#[derive(Debug, Clone)]
pub(crate) struct PublishedEntry {
    pub(crate) entry: String,
    pub(crate) dataset: String,
    pub(crate) content: String,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

fn csv(i: usize, salt: u64) -> String {
    let mut s = String::from("site,level_m\n");
    for r in 0..8 {
        s.push_str(&format!("site-{i}-{r},{}.{}\n", (salt + r) % 97, salt % 10));
    }
    s
}

impl Net {
    /// Starts one node per entry of `links` under `dir`; `links[i]` are the earlier nodes node
    /// `i` bootstraps to.
    /// In process mode, `faults` says whether children run in network namespaces (`netns`,
    /// `netns+netem`) or make faults themselves (`filter`, `delay`, `filter+delay`).
    pub(crate) async fn start(
        mode: Mode,
        cix: Option<PathBuf>,
        dir: &Path,
        links: &[Vec<usize>],
        recorder: &Recorder,
        faults: Faults,
        hostile: Option<usize>,
    ) -> Result<(Self, Vec<String>)> {
        let n = links.len();
        let namespaces = faults.uses_namespaces();
        let testnet_faults = faults.made_by_nodes();
        let mut addrs: Vec<String> = Vec::with_capacity(n);
        let mut peers = Vec::with_capacity(n);
        match mode {
            Mode::InProcess => {
                let mut members = Vec::with_capacity(n);
                for (i, earlier) in links.iter().enumerate() {
                    let home = Home::new(dir.join(format!("node-{i:03}")));
                    let mut config = Config::new(&format!("Agency {i:03}"), "US");
                    config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
                    config.store_cache_bytes = STORE_CACHE_BYTES;
                    config.bootstrap = earlier.iter().map(|j| addrs[*j].clone()).collect();
                    home.init(&config)
                        .with_context(|| format!("cannot set up node {i}"))?;
                    let node = cix_node::start(home.clone(), config.clone())
                        .await
                        .with_context(|| format!("cannot start node {i}"))?;
                    let addr = node
                        .listening()
                        .await?
                        .first()
                        .map(|a| a.to_string())
                        .context("node has no listen address")?;
                    // A restart listens where the node listened before.
                    config.listen = vec![addr.split("/p2p/").next().unwrap_or(&addr).to_string()];
                    addrs.push(addr);
                    peers.push(node.peer_id().to_string());
                    members.push(Member {
                        home,
                        config,
                        node: Some(node),
                    });
                }
                Ok((Self::InProcess(members), peers))
            }
            Mode::Process => {
                let cix = match cix {
                    Some(c) => c,
                    None => std::env::current_exe()?.with_file_name("cix"),
                };
                if !cix.is_file() {
                    bail!(
                        "{} is missing: process mode runs `cix node run`; build the workspace \
                         or give --cix PATH",
                        cix.display()
                    );
                }
                // The hostile child is this program's hidden `hostile-node` command.
                let testnet = cix.with_file_name("cix-testnet");
                if hostile.is_some() && !testnet.is_file() {
                    bail!(
                        "{} is missing: process mode's hostile node runs `cix-testnet \
                         hostile-node` beside the cix binary",
                        testnet.display()
                    );
                }
                let fabric = if namespaces {
                    Some(Fabric::new(n).context("cannot set up network namespaces")?)
                } else {
                    None
                };
                // Declared after the fabric: dropped (children killed) first on an error.
                let mut children = Vec::with_capacity(n);
                for (i, earlier) in links.iter().enumerate() {
                    let home = dir.join(format!("node-{i:03}"));
                    run_cix(
                        &cix,
                        &home,
                        &[
                            "init",
                            "--name",
                            &format!("Agency {i:03}"),
                            "--jurisdiction",
                            "US",
                        ],
                    )?;
                    shrink_cache(&home)?;
                    let listen = match &fabric {
                        Some(_) => format!("/ip4/{}/tcp/{}", netns::address(i), netns::LISTEN_PORT),
                        None => format!("/ip4/127.0.0.1/tcp/{}", free_port()?),
                    };
                    let info: serde_json::Value = serde_json::from_str(&read_identity(&home)?)
                        .context("cannot read the node's identity")?;
                    let peer = info["peer_id"]
                        .as_str()
                        .ok_or_else(|| anyhow!("node {i}: no peer_id in its identity"))?
                        .to_string();
                    let bootstrap = earlier.iter().map(|j| addrs[*j].clone()).collect();
                    let mut child = Child {
                        home,
                        listen: listen.clone(),
                        bootstrap,
                        netns: fabric.as_ref().map(|f| f.namespace(i).to_string()),
                        testnet_faults,
                        process: None,
                        hostile: (hostile == Some(i)).then(|| testnet.clone()),
                        orders: None,
                    };
                    spawn_child(&cix, &mut child, recorder)?;
                    addrs.push(format!("{listen}/p2p/{peer}"));
                    peers.push(peer);
                    children.push(child);
                }
                for (i, c) in children.iter().enumerate() {
                    wait_started(c, Duration::from_secs(60))
                        .with_context(|| format!("node {i} did not start"))?;
                }
                Ok((
                    Self::Process {
                        cix,
                        children,
                        fabric,
                    },
                    peers,
                ))
            }
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        match self {
            Self::InProcess(_) => Mode::InProcess,
            Self::Process { .. } => Mode::Process,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::InProcess(m) => m.len(),
            Self::Process { children, .. } => children.len(),
        }
    }

    pub(crate) fn is_up(&self, i: usize) -> bool {
        match self {
            Self::InProcess(m) => m[i].node.is_some(),
            Self::Process { children, .. } => children[i].process.is_some(),
        }
    }

    pub(crate) fn node(&self, i: usize) -> Option<&Node> {
        match self {
            Self::InProcess(m) => m[i].node.as_ref(),
            Self::Process { .. } => None,
        }
    }

    pub(crate) async fn kill(&mut self, i: usize) -> Result<()> {
        match self {
            Self::InProcess(m) => {
                if let Some(node) = m[i].node.take() {
                    node.shutdown().await?;
                }
            }
            Self::Process { children, .. } => {
                children[i].orders = None;
                if let Some(mut p) = children[i].process.take() {
                    p.kill().with_context(|| format!("cannot kill node {i}"))?;
                    let _ = p.wait();
                }
                let _ = std::fs::remove_file(children[i].home.join("node.json"));
            }
        }
        Ok(())
    }

    pub(crate) async fn restart(&mut self, i: usize, recorder: &Recorder) -> Result<()> {
        if self.is_up(i) {
            return Ok(());
        }
        match self {
            Self::InProcess(m) => {
                let node = cix_node::start(m[i].home.clone(), m[i].config.clone())
                    .await
                    .with_context(|| format!("cannot restart node {i}"))?;
                m[i].node = Some(node);
            }
            Self::Process { cix, children, .. } => {
                let cix = cix.clone();
                spawn_child(&cix, &mut children[i], recorder)?;
                wait_started(&children[i], Duration::from_secs(60))
                    .with_context(|| format!("node {i} did not restart"))?;
            }
        }
        Ok(())
    }

    /// Node `i` publishes one small open dataset.
    pub(crate) async fn publish(&self, i: usize, work: &Path, salt: u64) -> Result<PublishedEntry> {
        let file = work.join(format!("data-{i:03}-{salt}.csv"));
        std::fs::write(&file, csv(i, salt))
            .with_context(|| format!("cannot write {}", file.display()))?;
        let title = format!("Reservoir levels {i}/{salt}");
        match self {
            Self::InProcess(m) => {
                let node = m[i]
                    .node
                    .as_ref()
                    .ok_or_else(|| anyhow!("node {i} is down"))?;
                let p = publish(
                    node,
                    PublishRequest {
                        path: file,
                        title: Some(title),
                        spectrum: Some("open".into()),
                        meta: Some(META.into()),
                        accept_invalid: false,
                        dataset: None,
                        resolves: Vec::new(),
                    },
                )
                .await?;
                Ok(PublishedEntry {
                    entry: p.entry,
                    dataset: p.dataset,
                    content: p.content_hash,
                })
            }
            Self::Process { cix, children, .. } => {
                let meta = work.join(format!("meta-{i:03}-{salt}.toml"));
                std::fs::write(&meta, META)?;
                let out = run_cix_in(
                    cix,
                    &children[i].home,
                    children[i].netns.as_deref(),
                    &[
                        "--json",
                        "publish",
                        &file.to_string_lossy(),
                        "--title",
                        &title,
                        "--spectrum",
                        "open",
                        "--meta",
                        &meta.to_string_lossy(),
                    ],
                )?;
                let v: serde_json::Value = out
                    .lines()
                    .rev()
                    .find_map(|l| serde_json::from_str(l).ok())
                    .ok_or_else(|| anyhow!("cix publish printed no JSON"))?;
                let field = |k: &str| {
                    v[k].as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| anyhow!("cix publish printed no {k}"))
                };
                Ok(PublishedEntry {
                    entry: field("entry")?,
                    dataset: field("dataset")?,
                    content: field("content_hash")?,
                })
            }
        }
    }

    /// Node `i` revokes a random CID; returns the CID. In process mode through `cix revoke`
    /// (the child's admin API).
    pub(crate) async fn revoke(&self, i: usize) -> Result<String> {
        let cid = Cid::of_token(&rand::random::<[u8; 32]>()).to_string();
        if !self.is_up(i) {
            bail!("node {i} is down");
        }
        match self {
            Self::InProcess(m) => {
                let node = m[i]
                    .node
                    .as_ref()
                    .ok_or_else(|| anyhow!("node {i} is down"))?;
                revoke(
                    node,
                    &RevokeRequest {
                        cid: cid.clone(),
                        reason: Some("testnet".into()),
                    },
                )
                .await?;
            }
            Self::Process { cix, children, .. } => {
                run_cix_in(
                    cix,
                    &children[i].home,
                    children[i].netns.as_deref(),
                    &["--json", "revoke", &cid, "--reason", "testnet"],
                )?;
            }
        }
        Ok(cid)
    }

    /// Node `i` fetches open dataset `dataset` into `out`: the bytes written, or why it failed
    /// (a refused or corrupt transfer is an answer, not an error of the run). In process mode
    /// through `cix fetch`.
    pub(crate) async fn fetch(
        &self,
        i: usize,
        dataset: &str,
        out: &Path,
    ) -> Result<std::result::Result<u64, String>> {
        match self {
            Self::InProcess(m) => {
                let node = m[i]
                    .node
                    .clone()
                    .ok_or_else(|| anyhow!("node {i} is down"))?;
                Ok(
                    match cix_node::transfer::fetch(&node, dataset, out, |_, _| {}).await {
                        Ok(f) => Ok(f.bytes),
                        Err(e) => Err(format!("{e:#}")),
                    },
                )
            }
            Self::Process { cix, children, .. } => {
                if children[i].process.is_none() {
                    bail!("node {i} is down");
                }
                let answer = run_cix_in(
                    cix,
                    &children[i].home,
                    children[i].netns.as_deref(),
                    &[
                        "--json",
                        "fetch",
                        dataset,
                        "--output",
                        &out.to_string_lossy(),
                    ],
                );
                Ok(match answer {
                    Ok(text) => {
                        let done = text
                            .lines()
                            .rev()
                            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                            .ok_or_else(|| anyhow!("cix fetch printed no JSON"))?;
                        Ok(done["bytes"]
                            .as_u64()
                            .ok_or_else(|| anyhow!("cix fetch printed no bytes"))?)
                    }
                    Err(e) => Err(format!("{e:#}")),
                })
            }
        }
    }

    /// Hostile node `h` carries out `order`: the messages it sent.
    pub(crate) async fn hostile_send(&mut self, h: usize, order: &Order) -> Result<u64> {
        match self {
            Self::InProcess(m) => {
                let node = m[h]
                    .node
                    .clone()
                    .ok_or_else(|| anyhow!("node {h} is down"))?;
                hostile::send(&node, order).await
            }
            Self::Process { children, .. } => {
                let (stdin, stdout) = children[h]
                    .orders
                    .as_mut()
                    .ok_or_else(|| anyhow!("node {h} is down, or not the hostile node"))?;
                use std::io::Write as _;
                writeln!(stdin, "{}", serde_json::to_string(order)?)
                    .and_then(|()| stdin.flush())
                    .with_context(|| format!("cannot send an order to hostile node {h}"))?;
                let mut line = String::new();
                stdout
                    .read_line(&mut line)
                    .with_context(|| format!("no answer from hostile node {h}"))?;
                let done: hostile::Done = serde_json::from_str(line.trim())
                    .with_context(|| format!("hostile node {h} answered {line:?}"))?;
                match done.error {
                    Some(e) => bail!("hostile node {h}: {e}"),
                    None => Ok(done.sent),
                }
            }
        }
    }

    /// Where node `i` keeps the blob with content hash `content`.
    pub(crate) fn blob(&self, i: usize, content: &str) -> PathBuf {
        match self {
            Self::InProcess(m) => m[i].home.blobs().join(content),
            Self::Process { children, .. } => {
                Home::new(children[i].home.clone()).blobs().join(content)
            }
        }
    }

    /// Node `i`'s gossipsub score of `peer`, if it has one.
    pub(crate) async fn score_of(&self, i: usize, peer: &str) -> Result<Option<f64>> {
        match self {
            Self::InProcess(m) => {
                let node = m[i]
                    .node
                    .as_ref()
                    .ok_or_else(|| anyhow!("node {i} is down"))?;
                let p: PeerId = peer.parse().map_err(|e| anyhow!("bad peer id: {e}"))?;
                node.peer_score(p).await
            }
            Self::Process { cix, children, .. } => {
                if children[i].process.is_none() {
                    bail!("node {i} is down");
                }
                // `cix peer show` also knows a peer gone whose score gossipsub keeps; an
                // unknown peer is an error there, and no score here.
                let Ok(text) = run_cix_in(
                    cix,
                    &children[i].home,
                    children[i].netns.as_deref(),
                    &["--json", "peer", "show", peer],
                ) else {
                    return Ok(None);
                };
                Ok(text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .find(|v| v["peer_id"] == peer)
                    .and_then(|v| v["gossip_score"].as_f64()))
            }
        }
    }

    /// Node `i`'s traffic counters, read from its own metrics registry.
    pub(crate) fn counters(&self, i: usize) -> Result<Counters> {
        let text = match self {
            Self::InProcess(m) => m[i]
                .node
                .as_ref()
                .ok_or_else(|| anyhow!("node {i} is down"))?
                .shared
                .metrics
                .encode()?,
            Self::Process { cix, children, .. } => {
                if children[i].process.is_none() {
                    bail!("node {i} is down");
                }
                run_cix_in(
                    cix,
                    &children[i].home,
                    children[i].netns.as_deref(),
                    &["metrics"],
                )?
            }
        };
        traffic::parse(&text).with_context(|| format!("node {i}'s metrics"))
    }

    /// Sets the peers node `i` refuses: through its handle in process, through the child's
    /// testnet fault endpoint in process mode. A node that is down is left alone (the runner
    /// sets it again after a restart).
    pub(crate) async fn block(&self, i: usize, peers: HashSet<PeerId>) -> Result<()> {
        match self {
            Self::InProcess(m) => {
                if let Some(node) = &m[i].node {
                    node.testnet_block(peers).await?;
                }
            }
            Self::Process { children, .. } => {
                let c = &children[i];
                if c.process.is_none() {
                    return Ok(());
                }
                let body = cix_node::testnet_faults::BlockRequest {
                    peers: peers.iter().map(ToString::to_string).collect(),
                };
                fault_put(c, "/v1/testnet/blocked", &serde_json::to_value(body)?)
                    .with_context(|| format!("cannot set the peers node {i} refuses"))?;
                tracing::debug!(node = i, peers = peers.len(), "child's refused peers set");
            }
        }
        Ok(())
    }

    /// Sets the links (delay and loss) through which node `i` (peer id `local`) reads each of
    /// `links`' peers, every other peer getting none: in this process's delay table, or through
    /// the child's testnet fault endpoint in process mode (a child that is down is left alone).
    pub(crate) async fn set_delays(
        &self,
        i: usize,
        local: PeerId,
        links: &HashMap<PeerId, Link>,
    ) -> Result<()> {
        match self {
            Self::InProcess(_) => cix_node::testnet_delay::set(local, links),
            Self::Process { children, .. } => {
                let c = &children[i];
                if c.process.is_none() {
                    return Ok(());
                }
                let body = cix_node::testnet_faults::DelayRequest {
                    delays: links
                        .iter()
                        .map(|(p, l)| cix_node::testnet_faults::PeerDelay {
                            peer: p.to_string(),
                            delay_ms: u64::try_from(l.delay().as_millis()).unwrap_or(u64::MAX),
                            loss: l.loss(),
                            seed: Some(l.seed()),
                        })
                        .collect(),
                };
                fault_put(c, "/v1/testnet/delays", &serde_json::to_value(body)?)
                    .with_context(|| format!("cannot set the delays of node {i}"))?;
                tracing::debug!(node = i, peers = links.len(), "child's delays set");
            }
        }
        Ok(())
    }

    /// The network namespaces, when the children run in them.
    pub(crate) fn fabric_mut(&mut self) -> Option<&mut Fabric> {
        match self {
            Self::Process { fabric, .. } => fabric.as_mut(),
            Self::InProcess(_) => None,
        }
    }

    /// Resident memory of each live child, bytes (process mode).
    /// CPU time, in seconds, the nodes have used so far: this process's in process mode
    /// (user and system, from `/proc/self/stat`), the live children's in process mode.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        match self {
            Self::InProcess(_) => cpu_of("/proc/self/stat").unwrap_or(0.0),
            Self::Process { children, .. } => children
                .iter()
                .filter_map(|c| c.process.as_ref())
                .filter_map(|p| cpu_of(&format!("/proc/{}/stat", p.id())))
                .sum(),
        }
    }

    pub(crate) fn child_rss(&self) -> Vec<u64> {
        match self {
            Self::InProcess(_) => Vec::new(),
            Self::Process { children, .. } => children
                .iter()
                .filter_map(|c| c.process.as_ref())
                .filter_map(|p| rss_of(&format!("/proc/{}/status", p.id())))
                .collect(),
        }
    }

    /// Stops every node, in-process nodes all at once (one after the other takes seconds
    /// each at a hundred nodes).
    pub(crate) async fn shutdown(&mut self) {
        if let Self::InProcess(members) = self {
            let mut set = tokio::task::JoinSet::new();
            for m in members.iter_mut() {
                if let Some(node) = m.node.take() {
                    set.spawn(async move { node.shutdown().await });
                }
            }
            while set.join_next().await.is_some() {}
        }
        for i in 0..self.len() {
            let _ = self.kill(i).await;
        }
    }
}

/// User plus system CPU seconds of a `/proc/<pid>/stat` file (fields 14 and 15, in clock
/// ticks of 1/100 s, the value Linux uses for every user-visible tick count).
pub(crate) fn cpu_of(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// VmRSS of a /proc status file, bytes.
pub(crate) fn rss_of(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn run_cix(cix: &Path, home: &Path, args: &[&str]) -> Result<String> {
    run_cix_in(cix, home, None, args)
}

/// `ip netns exec NS cix ...`, or plain `cix ...` without a namespace.
fn command_in(cix: &Path, netns: Option<&str>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(cix);
            c
        }
        None => Command::new(cix),
    }
}

fn run_cix_in(cix: &Path, home: &Path, netns: Option<&str>, args: &[&str]) -> Result<String> {
    let out = command_in(cix, netns)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", cix.display()))?;
    if !out.status.success() {
        bail!(
            "cix {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// PUT `body` to a child's testnet fault endpoint `path`, with its admin token.
fn fault_put(c: &Child, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
    if !c.testnet_faults {
        bail!("the child was not started with --testnet-faults");
    }
    let home = Home::new(c.home.clone());
    let info = home.load_runtime()?;
    let token = home.load_token()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(FAULT_CALL_TIMEOUT))
        .build()
        .into();
    let url = format!("{}{path}", info.admin_url);
    let mut resp = agent
        .put(&url)
        .header("Authorization", format!("Bearer {token}"))
        .send_json(body)
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let answer: serde_json::Value = resp
        .body_mut()
        .read_json()
        .with_context(|| format!("unreadable answer from {url} ({status})"))?;
    if !status.is_success() {
        bail!(
            "PUT {url}: {status}: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(answer)
}

/// The identity `cix init` wrote.
fn read_identity(home: &Path) -> Result<String> {
    let key = cix_node::Home::new(home.to_path_buf()).load_key()?;
    let peer = cix_node::node::peer_of_did(&key.did())?;
    Ok(serde_json::json!({ "peer_id": peer.to_string() }).to_string())
}

fn shrink_cache(home: &Path) -> Result<()> {
    let path = home.join("config.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("store_cache_bytes"))
        .map(str::to_owned)
        .collect();
    // Top-level keys must come before any table.
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    lines.insert(at, format!("store_cache_bytes = {STORE_CACHE_BYTES}"));
    std::fs::write(&path, lines.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

fn spawn_child(cix: &Path, c: &mut Child, recorder: &Recorder) -> Result<()> {
    let _ = std::fs::remove_file(c.home.join("node.json"));
    // `ip netns exec` execs cix, so the child's pid is the node's.
    let mut cmd = match &c.hostile {
        Some(testnet) => {
            let mut cmd = command_in(testnet, c.netns.as_deref());
            cmd.arg("hostile-node")
                .arg("--home")
                .arg(&c.home)
                .args(["--listen", &c.listen]);
            if c.testnet_faults {
                cmd.arg("--testnet-faults");
            }
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
            cmd
        }
        None => {
            let mut cmd = command_in(cix, c.netns.as_deref());
            cmd.arg("--home")
                .arg(&c.home)
                .args(["node", "run", "--listen", &c.listen]);
            crate::tie_to_this_process(&mut cmd);
            if c.testnet_faults {
                // TESTNET ONLY: the child makes partitions and latency itself.
                cmd.arg("--testnet-faults");
            }
            cmd.stdin(Stdio::null()).stdout(Stdio::null());
            cmd
        }
    };
    for b in &c.bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let mut child = cmd
        .env("RUST_LOG", "warn,cix::event=debug")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {} node run", cix.display()))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("no stderr from the child"))?;
    let recorder = recorder.clone();
    std::thread::spawn(move || {
        // The time a record is read stands for the time it was made: the pipe adds well
        // under a millisecond, the same for every child.
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some((node, ev)) = parse_log_line(&line) {
                recorder.record(node, now_us(), ev);
            }
        }
    });
    if c.hostile.is_some() {
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        c.orders = stdin.zip(stdout.map(BufReader::new));
    }
    c.process = Some(child);
    Ok(())
}

fn wait_started(c: &Child, timeout: Duration) -> Result<()> {
    let info = c.home.join("node.json");
    let deadline = std::time::Instant::now() + timeout;
    while !info.exists() {
        if std::time::Instant::now() > deadline {
            bail!("no {} after {timeout:?}", info.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_come_from_the_stat_fields_after_the_command_name() {
        let dir = tempfile::tempdir().unwrap();
        let stat = dir.path().join("stat");
        // A command name with spaces and a parenthesis, as a process may have.
        std::fs::write(
            &stat,
            "4242 (cix node (x) run) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0\n",
        )
        .unwrap();
        assert_eq!(cpu_of(stat.to_str().unwrap()), Some(3.25));
        std::fs::write(&stat, "4242 (short) S 1").unwrap();
        assert_eq!(cpu_of(stat.to_str().unwrap()), None);
        assert!(cpu_of("/proc/self/stat").is_some());
    }
}
