//! The hostile node's misbehaviour, in process and as a child.
//!
//! [`send`] makes a node put invalid or forged entries on the catalogue topic, bypassing its
//! own checks (`Node::testnet_announce_raw`, a testnet-only door that no wire message opens).
//! In process the runner calls it on the node's handle. In process mode the hostile node is a
//! child running the hidden `cix-testnet hostile-node` command ([`serve`]): a full node like
//! `cix node run` (admin API, `node.json`, `cix::event` records on stderr) that also reads
//! one [`Order`] per line of JSON on stdin, carries it out with [`send`], and answers with one
//! [`Done`] line on stdout. Its `corrupt` mode needs no order: the runner publishes through the
//! child's admin API and spoils the blob on disk, as in process.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cix_node::{Home, Node};
use serde::{Deserialize, Serialize};

use crate::scenario::HostileMode;

/// Most entries one forged order names.
pub const MAX_ORDER_ENTRIES: usize = 10_000;

/// Most bytes of one order line.
pub const MAX_ORDER_LINE: usize = 2 * 1024 * 1024;

/// What the hostile node is told to send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// `invalid` or `forged` (`corrupt` is not sent on the topic).
    pub mode: HostileMode,
    /// Messages to send.
    pub count: usize,
    /// Pause after each, ms.
    pub interval_ms: u64,
    /// Forged: ids of honest entries the hostile node holds, to re-sign.
    #[serde(default)]
    pub entries: Vec<String>,
}

/// What it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// Messages sent.
    pub sent: u64,
    /// Why it stopped short, if it did.
    pub error: Option<String>,
}

/// Sends `order` from `node`; the number of messages sent.
///
/// # Errors
///
/// For a `corrupt` order, or a forged one whose entries the node does not hold.
pub async fn send(node: &Node, order: &Order) -> Result<u64> {
    let interval = Duration::from_millis(order.interval_ms);
    let mut sent = 0;
    match order.mode {
        HostileMode::Invalid => {
            for _ in 0..order.count {
                let len = 64 + (rand::random::<u32>() % 512) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
                let _ = node.testnet_announce_raw(bytes).await;
                sent += 1;
                tokio::time::sleep(interval).await;
            }
        }
        HostileMode::Forged => {
            // Genuine entries of honest publishers, with the hostile key's signature in place
            // of theirs (envelope: 0x82 0x58 0x40, 64 signature bytes, signed map).
            let mut genuine = Vec::new();
            for id in order.entries.iter().take(MAX_ORDER_ENTRIES) {
                if let Ok(id) = id.parse() {
                    if let Ok(Some(s)) = node.shared.store.entry(&id) {
                        genuine.push(s.bytes.clone());
                    }
                }
            }
            if genuine.is_empty() {
                bail!("the hostile node holds no honest entry to forge: publish one first");
            }
            for k in 0..order.count {
                let mut bytes = genuine[k % genuine.len()].clone();
                if bytes.len() < 67 {
                    bail!("an entry envelope is shorter than its signature");
                }
                let sig = node.shared.key.sign(&rand::random::<[u8; 32]>());
                bytes[3..67].copy_from_slice(&sig);
                let _ = node.testnet_announce_raw(bytes).await;
                sent += 1;
                tokio::time::sleep(interval).await;
            }
        }
        HostileMode::Corrupt => bail!("a corrupt order is not sent on the topic"),
    }
    Ok(sent)
}

/// Where and how the hostile child runs.
#[derive(Debug, Clone)]
pub struct ChildArgs {
    /// Its home (made by `cix init`).
    pub home: PathBuf,
    /// Listen addresses.
    pub listen: Vec<String>,
    /// Bootstrap addresses.
    pub bootstrap: Vec<String>,
    /// As `cix node run --testnet-faults`: the delaying transport and the admin API's fault
    /// endpoints ([`cix_node::testnet_faults`]).
    pub testnet_faults: bool,
}

/// Runs the hostile child until stdin closes.
///
/// # Errors
///
/// If the node cannot start, or stdin or stdout fail.
pub async fn serve(args: ChildArgs) -> Result<()> {
    let home = Home::new(args.home);
    let config = cix_node::layers::load(
        &home,
        &cix_node::layers::Flags {
            listen: args.listen,
            bootstrap: args.bootstrap,
        },
    )?
    .config;
    let token = home.load_token()?;
    let admin_addr = config.admin_listen;
    if args.testnet_faults {
        cix_node::testnet_delay::enable();
    }
    let node = cix_node::start(home.clone(), config).await?;
    let admin = cix_node::admin::serve_with(
        node.clone(),
        admin_addr,
        token,
        cix_node::admin::Options {
            testnet_faults: args.testnet_faults,
        },
    )
    .await?;
    let listening = node
        .listening()
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    home.write_runtime(&cix_node::home::RuntimeInfo {
        admin_url: format!("http://{admin}"),
        peer_id: node.peer_id().to_string(),
        did: node.did().to_string(),
        listen: listening,
        pid: std::process::id(),
    })?;
    tracing::debug!(peer = %node.peer_id(), "hostile node running");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Order>>(4);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = String::new();
            match std::io::Read::take(&mut lock, MAX_ORDER_LINE as u64 + 1).read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let order = if line.len() > MAX_ORDER_LINE {
                Err(anyhow!("an order line is over {MAX_ORDER_LINE} bytes"))
            } else {
                serde_json::from_str::<Order>(line.trim()).context("an order that does not parse")
            };
            if tx.blocking_send(order).is_err() {
                break;
            }
        }
    });
    while let Some(order) = rx.recv().await {
        let done = match order {
            Ok(o) => match send(&node, &o).await {
                Ok(sent) => Done { sent, error: None },
                Err(e) => Done {
                    sent: 0,
                    error: Some(format!("{e:#}")),
                },
            },
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "hostile node: bad order");
                Done {
                    sent: 0,
                    error: Some(format!("{e:#}")),
                }
            }
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(&done)?)?;
        out.flush()?;
    }
    node.shutdown().await?;
    Ok(())
}
