//! Operating a node: `cix doctor`, `cix config show`, `cix peers`, `cix peer show`,
//! `cix completions`, `cix man`.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use cix_node::layers::{self, Flags};
use cix_node::Home;
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::{printable, Out};

/// Least free space on the home's file system that `cix doctor` accepts, bytes.
pub(crate) const MIN_FREE_DISK_BYTES: u64 = 256 * 1024 * 1024;
/// Largest clock difference against a peer that `cix doctor` accepts, milliseconds: well
/// inside what token and receipt times tolerate.
pub(crate) const MAX_CLOCK_SKEW_MS: i64 = 30_000;
/// How long `cix doctor` waits for a bootstrap peer to accept a TCP connection.
pub(crate) const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the effective configuration: every key, its value, and where it came from
    /// (default, file, environment, flag). Takes the flags of `cix node run` to preview a run.
    Show(RunFlags),
    /// Make the running node read its configuration again; `trusted_registrars` takes effect
    /// at once (live grants resting on a registrar no longer trusted are re-checked and
    /// revoked, ISO 37156 8.2.5); other keys need a restart.
    Reload,
}

/// The flags of `cix node run` that override the configuration.
#[derive(Debug, Args, Default)]
pub(crate) struct RunFlags {
    /// Listen address for this run, replacing the config's (may be repeated).
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) listen: Vec<String>,
    /// Peer to connect to at start, with /p2p/PEERID (may be repeated).
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) bootstrap: Vec<String>,
}

impl RunFlags {
    pub(crate) fn flags(&self) -> Flags {
        Flags {
            listen: self.listen.clone(),
            bootstrap: self.bootstrap.clone(),
        }
    }
}

pub(crate) fn config(home: &Home, cmd: ConfigCommand, out: &mut Out) -> Result<()> {
    let flags = match cmd {
        ConfigCommand::Show(flags) => flags,
        ConfigCommand::Reload => {
            let v: Value = crate::client::Client::connect(home)?
                .post("/v1/config/reload", &serde_json::json!({}))?;
            return crate::emergency::trust_change(&v, out);
        }
    };
    let effective = layers::load(home, &flags.flags())?;
    if out.is_json() {
        for s in &effective.settings {
            out.line(&serde_json::to_value(s)?)?;
        }
        return Ok(());
    }
    let mut t = crate::output::table(&["key", "value", "source"]);
    for s in &effective.settings {
        let source = match (&s.source, &s.origin) {
            (layers::Source::Default, _) => "default".to_string(),
            (layers::Source::File, _) => "file".to_string(),
            (layers::Source::Environment, Some(o)) => format!("environment ({o})"),
            (layers::Source::Flag, Some(o)) => format!("flag ({o})"),
            (other, _) => format!("{other:?}").to_lowercase(),
        };
        t.add_row(vec![s.key.clone(), s.value.clone(), source]);
    }
    out.text_line(&t.to_string())
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verdict {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    check: &'static str,
    verdict: Verdict,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn check(check: &'static str, verdict: Verdict, detail: impl Into<String>) -> Check {
    Check {
        check,
        verdict,
        detail: detail.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

#[cfg(unix)]
fn mode_of(path: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn mode_of(path: &Path) -> std::io::Result<u32> {
    std::fs::metadata(path).map(|_| 0o600)
}

fn check_secrets(home: &Home) -> Vec<Check> {
    let mut out = Vec::new();
    for (what, path) in [
        ("key permissions", home.key()),
        ("token permissions", home.token()),
    ] {
        out.push(match mode_of(&path) {
            Ok(mode) if mode & 0o077 == 0 => check(
                what,
                Verdict::Ok,
                format!("{} is owner-only ({mode:o})", path.display()),
            ),
            Ok(mode) => check(
                what,
                Verdict::Fail,
                format!(
                    "{} can be read by others (mode {mode:o}); the node refuses to start",
                    path.display()
                ),
            )
            .fix(format!("chmod 600 {}", path.display())),
            Err(e) => check(
                what,
                Verdict::Fail,
                format!("cannot read {}: {e}", path.display()),
            )
            .fix(format!(
                "create the node with `cix --home {} init`",
                home.root().display()
            )),
        });
    }
    out
}

/// Host and port of a TCP multiaddr (`/ip4`, `/ip6`, `/dns*` then `/tcp`); None otherwise.
fn tcp_target(addr: &str) -> Option<(String, u16)> {
    let ma: libp2p::multiaddr::Multiaddr = addr.parse().ok()?;
    let mut host = None;
    let mut port = None;
    for p in ma.iter() {
        use libp2p::multiaddr::Protocol;
        match p {
            Protocol::Ip4(a) => host = Some(a.to_string()),
            Protocol::Ip6(a) => host = Some(format!("[{a}]")),
            Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) => host = Some(h.to_string()),
            Protocol::Tcp(p) => port = Some(p),
            Protocol::Udp(_) | Protocol::P2pCircuit => return None,
            _ => {}
        }
    }
    Some((host?, port?))
}

fn reachable(host: &str, port: u16) -> Result<()> {
    let addrs: Vec<SocketAddr> = format!("{host}:{port}").to_socket_addrs()?.collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, BOOTSTRAP_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e.into()),
        None => bail!("{host} resolves to no address"),
    }
}

fn check_listen_offline(config: &cix_node::Config) -> Check {
    let mut problems = Vec::new();
    for addr in &config.listen {
        let Ok(ma) = addr.parse::<libp2p::multiaddr::Multiaddr>() else {
            problems.push(format!("{addr} is not a multiaddr"));
            continue;
        };
        let mut ip = None;
        let mut port = None;
        let mut udp = false;
        let mut relayed = false;
        for p in ma.iter() {
            use libp2p::multiaddr::Protocol;
            match p {
                Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
                Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
                Protocol::Tcp(p) => port = Some(p),
                Protocol::Udp(p) => {
                    port = Some(p);
                    udp = true;
                }
                Protocol::P2pCircuit => relayed = true,
                _ => {}
            }
        }
        let (Some(ip), Some(port)) = (ip, port) else {
            continue;
        };
        if relayed || port == 0 {
            continue;
        }
        let bound = if udp {
            std::net::UdpSocket::bind((ip, port)).map(drop)
        } else {
            std::net::TcpListener::bind((ip, port)).map(drop)
        };
        match bound {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => problems.push(format!(
                "{addr}: port {port} is already in use by another program"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                problems.push(format!("{addr}: {ip} is not an address of this machine"))
            }
            Err(e) => problems.push(format!("{addr}: cannot bind: {e}")),
        }
    }
    if problems.is_empty() {
        check(
            "listen addresses",
            Verdict::Ok,
            format!("{} can be bound", config.listen.join(", ")),
        )
    } else {
        check("listen addresses", Verdict::Fail, problems.join("; ")).fix(
            "stop the program holding the port (`ss -ltnup` names it), or choose another port \
             with `listen` in config.toml, CIX_LISTEN or --listen",
        )
    }
}

fn check_listen_running(listening: &[String]) -> Check {
    let mut problems = Vec::new();
    let mut checked = 0;
    for addr in listening {
        let Some((host, port)) = tcp_target(addr) else {
            continue;
        };
        let host = if host == "0.0.0.0" {
            "127.0.0.1".to_string()
        } else {
            host
        };
        checked += 1;
        if let Err(e) = reachable(&host, port) {
            problems.push(format!("{addr}: {e}"));
        }
    }
    if problems.is_empty() {
        check(
            "listen addresses",
            Verdict::Ok,
            format!("the running node accepts connections on {checked} TCP address(es)"),
        )
    } else {
        check("listen addresses", Verdict::Fail, problems.join("; "))
            .fix("check the firewall of this machine and that no other program took the port")
    }
}

fn check_bootstrap(config: &cix_node::Config, connected: &[String]) -> Check {
    if config.bootstrap.is_empty() {
        return check("bootstrap peers", Verdict::Skip, "none configured");
    }
    let mut problems = Vec::new();
    let mut good = 0;
    for addr in &config.bootstrap {
        let peer = addr
            .rsplit("/p2p/")
            .next()
            .filter(|_| addr.contains("/p2p/"));
        if peer.is_some_and(|p| connected.iter().any(|c| c == p)) {
            good += 1;
            continue;
        }
        match tcp_target(addr) {
            Some((host, port)) => match reachable(&host, port) {
                Ok(()) => good += 1,
                Err(e) => problems.push(format!("{addr}: {e}")),
            },
            None => good += 1,
        }
    }
    if problems.is_empty() {
        check(
            "bootstrap peers",
            Verdict::Ok,
            format!("{good} of {} answer", config.bootstrap.len()),
        )
    } else {
        check(
            "bootstrap peers",
            Verdict::Fail,
            format!("not answering: {}", problems.join("; ")),
        )
        .fix(
            "check the address (the peer's `cix node run` prints it), that the peer runs, and \
             the firewalls between; fix `bootstrap` in config.toml",
        )
    }
}

fn check_disk(home: &Home) -> Check {
    match fs2::available_space(home.root()) {
        Ok(free) if free >= MIN_FREE_DISK_BYTES => check(
            "disk space",
            Verdict::Ok,
            format!(
                "{} MiB free on the home's file system",
                free / (1024 * 1024)
            ),
        ),
        Ok(free) => check(
            "disk space",
            Verdict::Fail,
            format!(
                "only {} MiB free on the file system of {} (at least {} MiB needed for the \
                 store, fetches and the audit log)",
                free / (1024 * 1024),
                home.root().display(),
                MIN_FREE_DISK_BYTES / (1024 * 1024)
            ),
        )
        .fix("free space there, or move the home to a larger file system (--home / CIX_HOME)"),
        Err(e) => check(
            "disk space",
            Verdict::Fail,
            format!("cannot read free space: {e}"),
        ),
    }
}

fn check_clock(v: &Value) -> Check {
    let skews = v["clock"].as_array().cloned().unwrap_or_default();
    let unanswered = v["clock_unanswered"].as_array().map(Vec::len).unwrap_or(0);
    if skews.is_empty() {
        return check(
            "clock skew",
            if unanswered > 0 {
                Verdict::Warn
            } else {
                Verdict::Skip
            },
            if unanswered > 0 {
                format!("none of {unanswered} connected peer(s) answered /cix/time/1")
            } else {
                "no connected peer to compare with".to_string()
            },
        );
    }
    let worst = skews
        .iter()
        .max_by_key(|s| s["offset_ms"].as_i64().unwrap_or(0).abs())
        .cloned()
        .unwrap_or(Value::Null);
    let off = worst["offset_ms"].as_i64().unwrap_or(0);
    let peer = worst["peer"].as_str().unwrap_or("?");
    if off.abs() > MAX_CLOCK_SKEW_MS {
        check(
            "clock skew",
            Verdict::Fail,
            format!(
                "this node's clock is {:.1} s {} peer {peer}'s (at most {} s accepted); tokens \
                 and receipts it signs or checks will be judged at the wrong time",
                off.abs() as f64 / 1000.0,
                if off > 0 { "behind" } else { "ahead of" },
                MAX_CLOCK_SKEW_MS / 1000
            ),
        )
        .fix("synchronise the clock (NTP: `timedatectl set-ntp true`, chrony or ntpd), or ask the peer's operator to")
    } else {
        check(
            "clock skew",
            Verdict::Ok,
            format!("within {} ms of {} peer(s)", off.abs(), skews.len()),
        )
    }
}

fn check_store_offline(home: &Home, config: &cix_node::Config) -> Check {
    let run = || -> Result<u64> {
        let store = cix_node::store::Store::open(&home.store(), config.store_cache_bytes)?;
        let entries = store.catalogue_all()?.len() as u64;
        let key = home.load_key()?;
        let audit = cix_node::audit::AuditLog::open(&store, key.clone())?;
        let records = audit.raw_range(None, None)?;
        cix_protocol::audit::verify_chain(
            records.iter().map(|(_, b)| b.as_slice()),
            Some(&key.did()),
        )
        .map_err(|e| anyhow::anyhow!("audit log: {e}"))?;
        Ok(entries + records.len() as u64)
    };
    if !home.store().exists() {
        return check(
            "store integrity",
            Verdict::Ok,
            "no store yet (created at first start)",
        );
    }
    match run() {
        Ok(n) => check("store integrity", Verdict::Ok, format!("{n} records check out")),
        Err(e) => check("store integrity", Verdict::Fail, format!("{e:#}"))
            .fix("restore HOME/store from a backup; `cix audit verify` shows the audit log's first bad record"),
    }
}

/// `cix doctor`.
pub(crate) fn doctor(home: &Home, out: &mut Out) -> Result<()> {
    let mut checks = check_secrets(home);
    let effective = layers::load(home, &Flags::default());
    let config = match effective {
        Ok(e) => {
            checks.push(check(
                "config",
                Verdict::Ok,
                format!("{} is valid", home.config().display()),
            ));
            Some(e.config)
        }
        Err(e) => {
            checks.push(
                check("config", Verdict::Fail, format!("{e:#}")).fix(format!(
                    "edit {} (every key is in docs/config.md; `cix config show` prints what is in force)",
                    home.config().display()
                )),
            );
            None
        }
    };
    let running = Client::connect(home)
        .ok()
        .and_then(|c| c.get::<Value>("/v1/doctor").ok());
    if let Some(config) = &config {
        match &running {
            Some(v) => {
                let listening: Vec<String> = v["listening"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                checks.push(check_listen_running(&listening));
            }
            None => checks.push(check_listen_offline(config)),
        }
        let connected: Vec<String> = running
            .as_ref()
            .and_then(|v| v["connected"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        checks.push(check_bootstrap(config, &connected));
    }
    match &running {
        Some(v) => checks.push(check_clock(v)),
        None => checks.push(check(
            "clock skew",
            Verdict::Skip,
            "the node is not running (start it to compare clocks with peers)",
        )),
    }
    checks.push(check_disk(home));
    match (&running, &config) {
        (Some(v), _) => checks.push(match v["store_problem"].as_str() {
            None => check(
                "store integrity",
                Verdict::Ok,
                format!("{} records check out", v["store_checked"].as_u64().unwrap_or(0)),
            ),
            Some(p) => check("store integrity", Verdict::Fail, p)
                .fix("restore HOME/store from a backup; `cix audit verify` shows the audit log's first bad record"),
        }),
        (None, Some(config)) => checks.push(check_store_offline(home, config)),
        (None, None) => checks.push(check("store integrity", Verdict::Skip, "needs a valid config")),
    }
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    if out.is_json() {
        for c in &checks {
            out.line(&serde_json::to_value(c)?)?;
        }
        out.line(
            &json!({ "healthy": failed == 0, "failed": failed, "running": running.is_some() }),
        )?;
    } else {
        for c in &checks {
            let mark = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "skip",
            };
            out.text_line(&format!("{mark} {}: {}", c.check, c.detail))?;
            if let Some(f) = &c.fix {
                out.text_line(&format!("     fix: {f}"))?;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// `cix peers`.
pub(crate) fn peers(home: &Home, all: bool, out: &mut Out) -> Result<()> {
    let path = if all {
        "/v1/peers?all=true"
    } else {
        "/v1/peers"
    };
    let v: Vec<Value> = Client::connect(home)?.get(path)?;
    if out.is_json() {
        return v.iter().try_for_each(|p| out.line(p));
    }
    if v.is_empty() {
        return out.text_line("no peers connected");
    }
    let mut t = crate::output::table(&[
        "peer",
        "agency",
        "jurisdiction",
        "state",
        "latency",
        "score",
        "publishes",
        "addresses",
    ]);
    for p in &v {
        t.add_row(vec![
            short(p["peer_id"].as_str().unwrap_or("")),
            dash(&p["agency"]),
            dash(&p["jurisdiction"]),
            dash(&p["state"]),
            latency(&p["latency_ms"]),
            score(&p["gossip_score"]),
            p["publishes"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0)
                .to_string(),
            strings(&p["addresses"]).join("\n"),
        ]);
    }
    out.text_line(&t.to_string())
}

/// Longest peer argument (`--from`, `cix peer show`) taken, in bytes.
const MAX_PEER_ARG_CHARS: usize = 128;
/// Fewest characters on each side of the ellipsis of a shortened PeerId.
const MIN_SHORTENED_SIDE: usize = 4;

/// `id` as given, or, when it is a PeerId shortened as `cix peers` shows it (`12D3KooW…iqvdwJ`,
/// or with `...`), the one known peer whose PeerId starts and ends so.
///
/// # Errors
///
/// When no known peer, or more than one, fits the shortened form.
pub(crate) fn resolve_peer(client: &Client, id: &str) -> Result<String> {
    // A did:key is 56 characters, a PeerId 52 or 53: anything much longer is neither.
    if id.len() > MAX_PEER_ARG_CHARS {
        bail!(
            "{}…: {} characters is too long for a PeerId or did:key",
            id.chars().take(16).collect::<String>(),
            id.len()
        );
    }
    let Some((head, tail)) = id.split_once('…').or_else(|| id.split_once("...")) else {
        return Ok(id.to_string());
    };
    if head.len() < MIN_SHORTENED_SIDE || tail.len() < MIN_SHORTENED_SIDE {
        bail!(
            "{id:?}: a shortened PeerId needs at least {MIN_SHORTENED_SIDE} characters on each \
             side of the ellipsis, as `cix peers` shows them (12D3KooW…iqvdwJ)"
        );
    }
    let known: Vec<Value> = client.get("/v1/peers?all=true")?;
    let fits: Vec<&str> = known
        .iter()
        .filter_map(|p| p["peer_id"].as_str())
        .filter(|p| p.len() > head.len() + tail.len() && p.starts_with(head) && p.ends_with(tail))
        .collect();
    match fits.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => bail!(
            "{id:?}: no known peer's PeerId starts with {head:?} and ends with {tail:?} \
             (`cix --json peers --all` lists whole PeerIds)"
        ),
        many => bail!(
            "{id:?} fits {} peers ({}); give the whole PeerId",
            many.len(),
            many.join(", ")
        ),
    }
}

/// `cix peer show ID`.
pub(crate) fn peer_show(home: &Home, id: &str, out: &mut Out) -> Result<()> {
    let client = Client::connect(home)?;
    let id = &resolve_peer(&client, id)?;
    if id.is_empty() || !id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b':') {
        bail!("{id:?} is not a PeerId or did:key");
    }
    let p: Value = client.get(&format!("/v1/peers/{id}"))?;
    if out.is_json() {
        return out.line(&p);
    }
    let conns: Vec<String> = p["connections"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    format!(
                        "{} ({}, {})",
                        c["address"].as_str().unwrap_or(""),
                        if c["relayed"].as_bool() == Some(true) {
                            "relayed"
                        } else {
                            "direct"
                        },
                        if c["outbound"].as_bool() == Some(true) {
                            "dialed"
                        } else {
                            "inbound"
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let publishes: Vec<String> = p["publishes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    format!(
                        "{} {} ({})",
                        d["dataset"].as_str().unwrap_or(""),
                        d["title"].as_str().unwrap_or(""),
                        d["spectrum"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let sep = "\n                ";
    out.text_line(&format!(
        "peer {}\n  did:          {}\n  agency:       {}\n  jurisdiction: {}\n  state:        {}\n  latency:      {}\n  gossip score: {}\n  agent:        {}\n  addresses:    {}\n  connections:  {}\n  protocols:    {}\n  publishes:    {}",
        p["peer_id"].as_str().unwrap_or(""),
        dash(&p["did"]),
        dash(&p["agency"]),
        dash(&p["jurisdiction"]),
        dash(&p["state"]),
        latency(&p["latency_ms"]),
        score(&p["gossip_score"]),
        dash(&p["agent"]),
        or_dash(strings(&p["addresses"]).join(sep)),
        or_dash(conns.join(sep)),
        or_dash(strings(&p["protocols"]).join(sep)),
        or_dash(publishes.join(sep)),
    ))
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .map(|s| printable(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn dash(v: &Value) -> String {
    match v.as_str() {
        Some(s) if !s.is_empty() => printable(s).into_owned(),
        _ => "-".into(),
    }
}

fn latency(v: &Value) -> String {
    v.as_u64()
        .map(|r| format!("{r} ms"))
        .unwrap_or_else(|| "-".into())
}

fn score(v: &Value) -> String {
    v.as_f64()
        .map(|s| format!("{s:.2}"))
        .unwrap_or_else(|| "-".into())
}

fn short(peer: &str) -> String {
    if peer.len() > 16 {
        format!("{}…{}", &peer[..8], &peer[peer.len() - 6..])
    } else {
        peer.to_string()
    }
}
