//! Step 6: every agency's node is scraped as Prometheus would scrape it (`GET /metrics` on its
//! admin listener, with the admin token), and the text is parsed with a Prometheus parser: the
//! figures must reflect the tour just made (ISO 37156 Annex A.1, live run-status monitoring).

use std::io::{Read, Write};
use std::net::SocketAddr;

use anyhow::{Context, Result};

use super::Demo;

/// What one scrape must hold, with the least value that is sensible after the tour.
const FAMILIES: &[(&str, f64)] = &[
    ("cix_peers", 1.0),
    ("cix_catalogue_entries", 1.0),
    ("cix_gossip_records_total", 0.0),
    ("cix_transfers_total", 0.0),
    ("cix_bytes_total", 0.0),
    ("cix_requests", 0.0),
    ("cix_revocations", 0.0),
    ("cix_audit_records", 1.0),
    ("cix_store_bytes", 1.0),
    ("libp2p_swarm_connections_established_total", 1.0),
];

/// `GET /metrics` over plain HTTP/1.1 with `Connection: close`; the body.
fn get_metrics(addr: SocketAddr, token: &str) -> Result<String> {
    let mut s = std::net::TcpStream::connect(addr).context("connecting to the admin listener")?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .context("no end of the HTTP head")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "answer {head:?}");
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (len, after) = rest.split_once("\r\n").context("bad chunk")?;
        let n = usize::from_str_radix(len.trim(), 16).context("bad chunk size")?;
        if n == 0 {
            return Ok(out);
        }
        out.push_str(after.get(..n).context("short chunk")?);
        rest = after.get(n + 2..).context("short chunk")?;
    }
}

impl Demo {
    pub(super) async fn monitoring(&mut self) -> Result<()> {
        self.say.step(6, "Monitoring: each node's /metrics");
        self.say.para(
            2,
            "Each agency's operations team scrapes its node's Prometheus metrics on the admin \
             listener (ISO 37156 Annex A.1, live run-status monitoring):",
        );
        for index in 0..self.agencies.len() {
            let node = self.node(index);
            let token = format!("demo-token-{index}-{}", node.peer_id());
            let addr = cix_node::admin::serve(node, "127.0.0.1:0".parse()?, token.clone()).await?;
            let body = tokio::task::spawn_blocking(move || get_metrics(addr, &token)).await?;
            let name = self.name(index);
            let check = format!("{name}: a scrape of /metrics parses and holds every family");
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    self.expect(6, check, false, format!("{e:#}"));
                    continue;
                }
            };
            let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))?;
            let mut missing = Vec::new();
            let mut shown = Vec::new();
            for (family, least) in FAMILIES {
                let total: f64 = scrape
                    .samples
                    .iter()
                    .filter(|s| s.metric == *family)
                    .filter_map(|s| match s.value {
                        prometheus_parse::Value::Counter(v)
                        | prometheus_parse::Value::Gauge(v)
                        | prometheus_parse::Value::Untyped(v) => Some(v),
                        _ => None,
                    })
                    .sum();
                let present = scrape.samples.iter().any(|s| s.metric == *family);
                if !present || total < *least {
                    missing.push(format!("{family} (sum {total}, wanted at least {least})"));
                } else if ["cix_peers", "cix_catalogue_entries", "cix_audit_records"]
                    .contains(family)
                {
                    shown.push(format!("{family} {total}"));
                }
            }
            let eof = body.lines().last() == Some("# EOF");
            let held = missing.is_empty() && eof;
            let detail = if held {
                format!("{} samples; {}", scrape.samples.len(), shown.join(", "))
            } else {
                format!(
                    "missing or too small: {}; ends in # EOF: {eof}",
                    missing.join(", ")
                )
            };
            self.say.para(4, &format!("{name}: {detail}"));
            self.expect(6, check, held, detail);
        }
        Ok(())
    }
}
