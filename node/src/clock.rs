//! The node's clock and `/cix/time/1`, which lets `cix doctor` measure clock skew against
//! peers.
//!
//! Tokens, grants and receipts carry times (ISO 37156 8.3.4 needs records in order), so a node
//! whose clock is far off refuses valid tokens or issues ones peers refuse. `/cix/time/1` is a
//! stream on which the asker sends nothing and the answerer writes its clock, milliseconds
//! since the Unix epoch, as [`limits::TIME_RESPONSE_BYTES`] big-endian bytes, then closes. The
//! asker takes the midpoint of its own send and receive times as the moment of the answer.
//!
//! TESTING KNOB: the environment variable [`OFFSET_ENV`] (whole seconds, may be negative)
//! shifts this node's clock, for every use of it, so tests can give one node a skewed clock.
//! The node warns at start whenever it is set; never set it on a production node.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cix_protocol::limits;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use tracing::{debug, warn};

use crate::node::Node;

/// The stream protocol id.
pub const TIME_PROTOCOL: &str = "/cix/time/1";
/// The testing knob: seconds added to this node's clock.
pub const OFFSET_ENV: &str = "CIX_TEST_CLOCK_OFFSET_SECS";
/// How long a time query may take.
pub const TIME_TIMEOUT: Duration = Duration::from_secs(5);

/// The clock offset set by [`OFFSET_ENV`], in seconds (0 when unset or unreadable).
pub fn offset_secs() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| match std::env::var(OFFSET_ENV) {
        Ok(v) => match v.trim().parse::<i64>() {
            Ok(n) if n.unsigned_abs() <= 100 * 365 * 86_400 => n,
            _ => {
                warn!(value = %v, "{OFFSET_ENV} is not a whole number of seconds within a century; ignored");
                0
            }
        },
        Err(_) => 0,
    })
}

/// This node's clock, milliseconds since the Unix epoch (with the testing offset).
pub fn now_millis() -> i64 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    real + offset_secs() * 1000
}

fn protocol() -> StreamProtocol {
    StreamProtocol::new(TIME_PROTOCOL)
}

/// Answers `/cix/time/1` until the node stops.
///
/// # Errors
///
/// If the protocol is already being accepted.
pub fn spawn(node: Node) -> Result<tokio::task::JoinHandle<()>> {
    if offset_secs() != 0 {
        warn!(
            offset_secs = offset_secs(),
            "TESTING KNOB {OFFSET_ENV} is set: this node's clock is deliberately wrong"
        );
    }
    let mut control = node.control();
    let mut incoming = control
        .accept(protocol())
        .map_err(|e| anyhow!("cannot accept time requests: {e}"))?;
    Ok(tokio::spawn(async move {
        let mut stopping = node.shared.stopping.clone();
        loop {
            tokio::select! {
                next = incoming.next() => {
                    let Some((peer, mut stream)) = next else { break };
                    tokio::spawn(async move {
                        let bytes = now_millis().to_be_bytes();
                        let sent = tokio::time::timeout(TIME_TIMEOUT, async {
                            stream.write_all(&bytes).await?;
                            stream.close().await
                        })
                        .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            debug!(%peer, "time answer not delivered");
                        }
                    });
                }
                _ = stopping.changed() => break,
            }
        }
    }))
}

/// One peer's clock against ours.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skew {
    /// The peer.
    pub peer: String,
    /// Its clock minus ours, milliseconds (positive: it is ahead).
    pub offset_ms: i64,
    /// Round trip of the query, milliseconds; the offset is good to about half of it.
    pub rtt_ms: u64,
}

/// Asks `peer` for its clock.
///
/// # Errors
///
/// If the peer does not answer in time or answers malformed.
pub async fn query(node: &Node, peer: PeerId) -> Result<Skew> {
    let mut control = node.control();
    let started = std::time::Instant::now();
    let sent_at = now_millis();
    let answer = tokio::time::timeout(TIME_TIMEOUT, async {
        let mut stream = control
            .open_stream(peer, protocol())
            .await
            .map_err(|e| anyhow!("cannot open {TIME_PROTOCOL}: {e}"))?;
        let mut buf = Vec::with_capacity(limits::TIME_RESPONSE_BYTES);
        (&mut stream)
            .take(limits::TIME_RESPONSE_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .await
            .context("reading the time answer")?;
        if buf.len() != limits::TIME_RESPONSE_BYTES {
            bail!(
                "time answer of {} bytes, not {}",
                buf.len(),
                limits::TIME_RESPONSE_BYTES
            );
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf);
        Ok(i64::from_be_bytes(b))
    })
    .await
    .map_err(|_| anyhow!("{peer} did not answer {TIME_PROTOCOL} within {TIME_TIMEOUT:?}"))??;
    let rtt = started.elapsed();
    let midpoint = sent_at + (rtt.as_millis() as i64) / 2;
    Ok(Skew {
        peer: peer.to_string(),
        offset_ms: answer - midpoint,
        rtt_ms: rtt.as_millis() as u64,
    })
}
