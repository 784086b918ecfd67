//! Real network faults for process mode: every `cix node run` child in its own Linux network
//! namespace, joined to a bridge in a "hub" namespace by a veth pair. Partitions are
//! `prohibit` routes towards the other groups' addresses in each node's namespace; latency and
//! loss are `tc` on each node's veth (an htb root whose second class, reached by u32 filters on
//! the other groups' addresses, holds a `netem` qdisc).
//!
//! Needs root and `ip`/`tc` from iproute2; latency also needs the kernel's netem qdisc.
//! [`probe`] and [`probe_netem`] find out, so that the runner can fall back or refuse with a
//! clear reason. Every namespace a [`Fabric`] makes is removed when it is dropped, and
//! [`cleanup_all`] removes those of every live fabric (the binary calls it on Ctrl-C).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// Most nodes one fabric addresses (10.77.0.0/16, skipping .0 and .255 host parts).
pub(crate) const MAX_NODES: usize = 250 * 200;

/// Port every child listens on inside its own namespace.
pub(crate) const LISTEN_PORT: u16 = 4001;

/// Namespaces of every live fabric in this process, for [`cleanup_all`].
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Tells fabrics of one process apart.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The network namespaces of one run.
pub(crate) struct Fabric {
    hub: String,
    nodes: Vec<String>,
    /// Addresses each node currently refuses to route to.
    prohibited: Vec<Vec<String>>,
    /// Whether each node's veth carries the latency qdiscs.
    shaped: Vec<bool>,
}

/// Runs `program args`, failing with its stderr.
fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `program args -batch -` with `lines` on stdin (one spawn for many commands).
fn batch(program: &str, args: &[&str], lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut child = Command::new(program)
        .args(args)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    {
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("no stdin for {program}"))?;
        for l in lines {
            writeln!(stdin, "{l}").with_context(|| format!("cannot feed {program}"))?;
        }
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("cannot wait for {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {} -batch` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn tag() -> String {
    format!(
        "cixt{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether network namespaces can be made here; the reason when not.
pub(crate) fn probe() -> std::result::Result<(), String> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return Err(format!("not running as root (uid {uid})")),
        None => return Err("cannot read the user id from /proc/self/status".into()),
    }
    let name = format!("{}-probe", tag());
    run("ip", &["netns", "add", &name]).map_err(|e| format!("{e:#}"))?;
    let _ = run("ip", &["netns", "del", &name]);
    Ok(())
}

/// Whether the kernel has the netem qdisc; the reason when not. Needs [`probe`] to pass.
pub(crate) fn probe_netem() -> std::result::Result<(), String> {
    let name = format!("{}-netem", tag());
    run("ip", &["netns", "add", &name]).map_err(|e| format!("{e:#}"))?;
    let r = run("ip", &["-n", &name, "link", "set", "lo", "up"]).and_then(|()| {
        run(
            "tc",
            &[
                "-n", &name, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
            ],
        )
    });
    let _ = run("ip", &["netns", "del", &name]);
    r.map_err(|e| format!("{e:#}"))
}

/// Address of node `i` inside the fabric.
pub(crate) fn address(i: usize) -> String {
    let k = i + 1;
    format!("10.77.{}.{}", k / 250, k % 250 + 1)
}

fn forget(names: &[String]) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|n| !names.contains(n));
    }
}

/// Removes the namespaces of every live fabric (for Ctrl-C: drops do not run on exit).
pub fn cleanup_all() {
    let names = match LIVE.lock() {
        Ok(mut live) => std::mem::take(&mut *live),
        Err(_) => return,
    };
    for n in names {
        let _ = run("ip", &["netns", "del", &n]);
    }
}

impl Fabric {
    /// Makes the hub and `n` node namespaces, each node at [`address`].
    pub(crate) fn new(n: usize) -> Result<Self> {
        if n > MAX_NODES {
            bail!("network namespaces address at most {MAX_NODES} nodes, not {n}");
        }
        let t = tag();
        let mut fabric = Self {
            hub: format!("{t}-hub"),
            nodes: Vec::with_capacity(n),
            prohibited: vec![Vec::new(); n],
            shaped: vec![false; n],
        };
        fabric.add_namespace(fabric.hub.clone())?;
        let hub = fabric.hub.clone();
        batch(
            "ip",
            &["-n", &hub],
            &[
                "link set lo up".into(),
                "link add br0 type bridge".into(),
                "link set br0 up".into(),
            ],
        )
        .context("cannot set up the hub's bridge")?;
        for i in 0..n {
            let ns = format!("{t}-{i}");
            fabric.add_namespace(ns.clone())?;
            let veth = format!("h{i}");
            batch(
                "ip",
                &["-n", &hub],
                &[
                    format!("link add {veth} type veth peer name eth0 netns {ns}"),
                    format!("link set {veth} master br0"),
                    format!("link set {veth} up"),
                ],
            )
            .with_context(|| format!("cannot link node {i} to the hub"))?;
            batch(
                "ip",
                &["-n", &ns],
                &[
                    "link set lo up".into(),
                    format!("addr add {}/16 dev eth0", address(i)),
                    "link set eth0 up".into(),
                ],
            )
            .with_context(|| format!("cannot address node {i}"))?;
        }
        tracing::debug!(nodes = n, hub = %fabric.hub, "network namespaces up");
        Ok(fabric)
    }

    fn add_namespace(&mut self, name: String) -> Result<()> {
        run("ip", &["netns", "add", &name])?;
        if let Ok(mut live) = LIVE.lock() {
            live.push(name.clone());
        }
        if name != self.hub {
            self.nodes.push(name);
        }
        Ok(())
    }

    /// The namespace of node `i`.
    pub(crate) fn namespace(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    /// Cuts routes between nodes of different groups (`groups[i]` is node `i`'s group), or
    /// restores every route when `groups` is `None`.
    pub(crate) fn partition(&mut self, groups: Option<&[usize]>) -> Result<()> {
        for i in 0..self.nodes.len() {
            let wanted: Vec<String> = match groups {
                Some(g) => (0..self.nodes.len())
                    .filter(|j| g[*j] != g[i])
                    .map(address)
                    .collect(),
                None => Vec::new(),
            };
            let mut lines: Vec<String> = self.prohibited[i]
                .iter()
                .filter(|a| !wanted.contains(a))
                .map(|a| format!("route del prohibit {a}/32"))
                .collect();
            lines.extend(
                wanted
                    .iter()
                    .filter(|a| !self.prohibited[i].contains(a))
                    .map(|a| format!("route add prohibit {a}/32")),
            );
            batch("ip", &["-n", &self.nodes[i]], &lines)
                .with_context(|| format!("cannot change the routes of node {i}"))?;
            self.prohibited[i] = wanted;
        }
        Ok(())
    }

    /// Delays (and drops a share `loss` of) every packet a node sends to a node of another
    /// group; packets within a group are untouched. Replaces any earlier latency.
    pub(crate) fn latency(&mut self, groups: &[usize], delay: Duration, loss: f64) -> Result<()> {
        let us = delay.as_micros();
        for i in 0..self.nodes.len() {
            let ns = self.nodes[i].clone();
            if self.shaped[i] {
                run("tc", &["-n", &ns, "qdisc", "del", "dev", "eth0", "root"])
                    .with_context(|| format!("cannot clear the latency of node {i}"))?;
                self.shaped[i] = false;
            }
            let mut lines = vec![
                "qdisc add dev eth0 root handle 1: htb default 1".to_string(),
                "class add dev eth0 parent 1: classid 1:1 htb rate 10gbit".into(),
                "class add dev eth0 parent 1: classid 1:2 htb rate 10gbit".into(),
                format!(
                    "qdisc add dev eth0 parent 1:2 handle 20: netem delay {us}us loss {:.4}%",
                    loss * 100.0
                ),
            ];
            for j in (0..self.nodes.len()).filter(|j| groups[*j] != groups[i]) {
                lines.push(format!(
                    "filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst {}/32 \
                     flowid 1:2",
                    address(j)
                ));
            }
            // Mark first: a half-made root is removed by the next call too.
            self.shaped[i] = true;
            batch("tc", &["-n", &ns], &lines)
                .with_context(|| format!("cannot add latency on node {i}"))?;
        }
        tracing::debug!(delay_us = us as u64, loss, "latency set between groups");
        Ok(())
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        let mut all = self.nodes.clone();
        all.push(self.hub.clone());
        // Removing a node's namespace removes its veth pair with it.
        for n in &all {
            if let Err(e) = run("ip", &["netns", "del", n]) {
                tracing::error!(namespace = %n, error = %e, "cannot remove a network namespace");
            }
        }
        forget(&all);
        tracing::debug!(hub = %self.hub, "network namespaces removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_and_never_network_or_broadcast() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..MAX_NODES {
            let a = address(i);
            let last: u32 = a.rsplit('.').next().unwrap().parse().unwrap();
            assert!((1..=250).contains(&last), "{a}");
            assert!(seen.insert(a));
        }
        assert_eq!(address(0), "10.77.0.2");
    }
}
