//! Messages and bytes each node sent and received, as the node itself counted them.
//!
//! Every figure comes from the node's own Prometheus registry (the one `GET /metrics` on its
//! admin listener serves, [`cix_node::metrics`]): libp2p's transport bandwidth counters
//! (`libp2p_bandwidth_bytes_total`, by direction) and gossipsub's per-topic message counters
//! (`topic_msg_*`). In process the harness encodes the registry through the node's handle; in
//! process mode it runs `cix metrics` against the child (inside the child's network namespace
//! when there is one). The harness never estimates a figure: a node it could not read is
//! reported with `read: false` and the reason.
//!
//! A node's counters start at zero when it starts, so the runner reads a node just before it
//! is killed and adds that to what the next incarnation counts.

use anyhow::{bail, Result};
use serde::Serialize;

/// What one reading (or a sum of readings) of a node's counters holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Bytes written to its connections (every protocol, after encryption and muxing).
    pub bytes_sent: u64,
    /// Bytes read from its connections.
    pub bytes_received: u64,
    /// Gossipsub messages sent to peers (its own and forwarded ones, one per peer sent to).
    pub messages_sent: u64,
    /// Gossipsub messages it published itself.
    pub messages_published: u64,
    /// Gossipsub messages received, duplicates included.
    pub messages_received: u64,
}

impl Counters {
    /// The sum of two readings (two incarnations of one node).
    #[must_use]
    pub fn plus(self, o: Self) -> Self {
        Self {
            bytes_sent: self.bytes_sent + o.bytes_sent,
            bytes_received: self.bytes_received + o.bytes_received,
            messages_sent: self.messages_sent + o.messages_sent,
            messages_published: self.messages_published + o.messages_published,
            messages_received: self.messages_received + o.messages_received,
        }
    }
}

/// One node's traffic in the report.
#[derive(Debug, Clone, Serialize)]
pub struct NodeTraffic {
    /// Node number.
    pub node: usize,
    /// Whether its last incarnation could be read at the end (a node down at the end has only
    /// what was read before it was killed).
    pub read: bool,
    /// Why it could not be read, if so.
    pub error: Option<String>,
    /// Its counters, every incarnation added up.
    #[serde(flatten)]
    pub counters: Counters,
}

/// Every node's traffic and the totals.
#[derive(Debug, Clone, Serialize)]
pub struct Traffic {
    /// Where the figures come from.
    pub source: String,
    /// Per node.
    pub nodes: Vec<NodeTraffic>,
    /// Summed over the nodes.
    pub total: Counters,
    /// Mean bytes sent per node.
    pub mean_bytes_sent: f64,
    /// Mean gossipsub messages sent per node.
    pub mean_messages_sent: f64,
    /// The node that sent the most bytes, and how many.
    pub max_bytes_sent: Option<(usize, u64)>,
}

impl Traffic {
    /// Sums `nodes`.
    #[must_use]
    pub fn of(source: &str, nodes: Vec<NodeTraffic>) -> Self {
        let total = nodes
            .iter()
            .fold(Counters::default(), |a, n| a.plus(n.counters));
        let k = nodes.len().max(1) as f64;
        let max_bytes_sent = nodes
            .iter()
            .max_by_key(|n| n.counters.bytes_sent)
            .map(|n| (n.node, n.counters.bytes_sent));
        Self {
            source: source.into(),
            mean_bytes_sent: total.bytes_sent as f64 / k,
            mean_messages_sent: total.messages_sent as f64 / k,
            max_bytes_sent,
            total,
            nodes,
        }
    }
}

/// Most bytes of metrics text read from one node (a node's registry is a few tens of KiB;
/// more is a broken or hostile child).
pub const MAX_METRICS_TEXT: usize = 4 * 1024 * 1024;

/// Reads the counters out of a node's OpenMetrics text.
///
/// # Errors
///
/// If the text is too long, does not parse, or holds neither the bandwidth nor the gossipsub
/// families (then it is not a cix node's registry).
pub fn parse(text: &str) -> Result<Counters> {
    if text.len() > MAX_METRICS_TEXT {
        bail!(
            "metrics text of {} bytes is over the {MAX_METRICS_TEXT}-byte limit",
            text.len()
        );
    }
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| anyhow::anyhow!("the metrics text does not parse: {e}"))?;
    let mut c = Counters::default();
    let mut bandwidth = false;
    let mut gossip = false;
    for s in &scrape.samples {
        let (prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v)) = s.value
        else {
            continue;
        };
        if !v.is_finite() || v < 0.0 {
            bail!("metric {} has the value {v}, not a count", s.metric);
        }
        let v = v as u64;
        let name = s.metric.as_str();
        if name.starts_with("libp2p_bandwidth_bytes") {
            bandwidth = true;
            match s.labels.get("direction") {
                Some("Outbound") => c.bytes_sent += v,
                Some("Inbound") => c.bytes_received += v,
                _ => {}
            }
            continue;
        }
        // gossipsub's families, with or without a prefix and the `_total` suffix.
        let base = name.strip_suffix("_total").unwrap_or(name);
        if base.ends_with("topic_msg_sent_counts") {
            gossip = true;
            c.messages_sent += v;
        } else if base.ends_with("topic_msg_published") {
            gossip = true;
            c.messages_published += v;
        } else if base.ends_with("topic_msg_recv_counts_unfiltered") {
            gossip = true;
            c.messages_received += v;
        } else if base.ends_with("topic_subscription_status") {
            gossip = true;
        }
    }
    if !bandwidth && !gossip {
        bail!("the metrics hold neither libp2p_bandwidth_bytes nor gossipsub's topic_msg families");
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bandwidth_by_direction_and_gossip_counts() {
        let text = "# HELP libp2p_bandwidth_bytes Bandwidth.\n\
            # TYPE libp2p_bandwidth_bytes counter\n\
            # UNIT libp2p_bandwidth_bytes bytes\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Outbound\"} 1200\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp\",direction=\"Inbound\"} 800\n\
            libp2p_bandwidth_bytes_total{protocols=\"/ip4/udp/quic-v1\",direction=\"Outbound\"} 34\n\
            # HELP topic_msg_sent_counts Messages sent.\n\
            # TYPE topic_msg_sent_counts counter\n\
            topic_msg_sent_counts_total{hash=\"a\"} 7\n\
            topic_msg_sent_counts_total{hash=\"b\"} 2\n\
            # HELP topic_msg_published Published.\n\
            # TYPE topic_msg_published counter\n\
            topic_msg_published_total{hash=\"a\"} 3\n\
            # HELP topic_msg_recv_counts_unfiltered Received.\n\
            # TYPE topic_msg_recv_counts_unfiltered counter\n\
            topic_msg_recv_counts_unfiltered_total{hash=\"a\"} 11\n\
            # EOF\n";
        let c = parse(text).unwrap();
        assert_eq!(
            c,
            Counters {
                bytes_sent: 1234,
                bytes_received: 800,
                messages_sent: 9,
                messages_published: 3,
                messages_received: 11,
            }
        );
    }

    #[test]
    fn refuses_what_is_not_a_node_registry() {
        let e = parse("# TYPE other counter\nother_total 5\n# EOF\n").unwrap_err();
        assert!(e.to_string().contains("neither"), "{e}");
        let big = "x".repeat(MAX_METRICS_TEXT + 1);
        assert!(parse(&big).unwrap_err().to_string().contains("limit"));
    }
}
