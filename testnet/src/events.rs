//! Measurement events: what the nodes themselves logged under the `cix::event` tracing target,
//! with the time each record was made.
//!
//! Every [`cix_node::NodeEvent`] a node emits is also a `cix::event` debug record carrying
//! `node` (its PeerId) and `json` (the event). In process, [`EventLayer`] is a tracing layer
//! that reads those records as they are made; in process mode, [`parse_log_line`] reads them
//! from a `cix node run` child's log on stderr (RUST_LOG=`cix::event=debug`). Both feed one
//! [`Recorder`], which the scenario runner queries ("does every live node hold these
//! entries?") and turns into the report. Nothing here is inferred by the harness: an arrival is
//! an arrival because the node said so.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use cix_node::NodeEvent;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// The tracing target the nodes log their events under.
pub const EVENT_TARGET: &str = "cix::event";

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One event as a node logged it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// PeerId of the node that logged it.
    pub node: String,
    /// When, microseconds since the epoch.
    pub at_us: u64,
    /// What.
    pub event: NodeEvent,
}

#[derive(Debug, Default)]
struct Inner {
    log: Vec<Logged>,
    /// node PeerId → entry id → first acceptance.
    entries: HashMap<String, HashMap<String, u64>>,
    /// node PeerId → revoked CID → first acceptance.
    revocations: HashMap<String, HashMap<String, u64>>,
    /// Entry id → when its publisher announced it.
    announced: HashMap<String, u64>,
    /// Records dropped because the log was full.
    dropped: u64,
}

/// Most events kept; beyond it events are counted but not stored (a hostile flood must not
/// grow the harness without bound).
pub const MAX_LOGGED_EVENTS: usize = 2_000_000;

/// Collected events, shared between the layer or log readers and the runner.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one event.
    pub fn record(&self, node: String, at_us: u64, event: NodeEvent) {
        let mut g = self.lock();
        match &event {
            NodeEvent::EntryAccepted { entry, .. } => {
                g.entries
                    .entry(node.clone())
                    .or_default()
                    .entry(entry.clone())
                    .or_insert(at_us);
            }
            NodeEvent::RevocationAccepted { revoked, .. } => {
                g.revocations
                    .entry(node.clone())
                    .or_default()
                    .entry(revoked.clone())
                    .or_insert(at_us);
            }
            NodeEvent::EntryAnnounced { entry, .. } => {
                g.announced.entry(entry.clone()).or_insert(at_us);
            }
            _ => {}
        }
        if g.log.len() < MAX_LOGGED_EVENTS {
            g.log.push(Logged { node, at_us, event });
        } else {
            g.dropped += 1;
        }
    }

    /// When `node` accepted entry `entry`, if it did.
    pub fn entry_at(&self, node: &str, entry: &str) -> Option<u64> {
        self.lock()
            .entries
            .get(node)
            .and_then(|m| m.get(entry))
            .copied()
    }

    /// When the publisher of `entry` announced it, if it logged so.
    pub fn announced_at(&self, entry: &str) -> Option<u64> {
        self.lock().announced.get(entry).copied()
    }

    /// When `node` accepted a revocation of `cid`, if it did.
    pub fn revocation_at(&self, node: &str, cid: &str) -> Option<u64> {
        self.lock()
            .revocations
            .get(node)
            .and_then(|m| m.get(cid))
            .copied()
    }

    /// How many of `wanted` (node, entry) pairs are held.
    pub fn entries_held<'a>(
        &self,
        wanted: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> (usize, usize) {
        let g = self.lock();
        let mut have = 0;
        let mut total = 0;
        for (n, e) in wanted {
            total += 1;
            if g.entries.get(n).is_some_and(|m| m.contains_key(e)) {
                have += 1;
            }
        }
        (have, total)
    }

    /// How many of `wanted` (node, CID) pairs are held.
    pub fn revocations_held<'a>(
        &self,
        wanted: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> (usize, usize) {
        let g = self.lock();
        let mut have = 0;
        let mut total = 0;
        for (n, c) in wanted {
            total += 1;
            if g.revocations.get(n).is_some_and(|m| m.contains_key(c)) {
                have += 1;
            }
        }
        (have, total)
    }

    /// A copy of every event logged so far.
    pub fn snapshot(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Events dropped because the log was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Entry ids `node` accepted.
    pub fn entries_of(&self, node: &str) -> HashSet<String> {
        self.lock()
            .entries
            .get(node)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A tracing layer that feeds `cix::event` records to a [`Recorder`].
#[derive(Debug, Clone)]
pub struct EventLayer {
    recorder: Recorder,
}

impl EventLayer {
    /// A layer recording into `recorder`.
    pub fn new(recorder: Recorder) -> Self {
        Self { recorder }
    }
}

#[derive(Default)]
struct Fields {
    node: Option<String>,
    json: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "node" => self.node = Some(value.to_string()),
            "json" => self.json = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "node" => self.node = Some(format!("{value:?}")),
            "json" => self.json = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for EventLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != EVENT_TARGET {
            return;
        }
        let at = now_us();
        let mut f = Fields::default();
        event.record(&mut f);
        let (Some(node), Some(json)) = (f.node, f.json) else {
            return;
        };
        match serde_json::from_str::<NodeEvent>(&json) {
            Ok(ev) => self.recorder.record(node, at, ev),
            Err(e) => tracing::error!(error = %e, "a cix::event record does not parse"),
        }
    }
}

/// The process-wide recorder, installed with the tracing subscriber on first use: a
/// [`EventLayer`] for `cix::event` records at debug, beside a log on stderr filtered by
/// RUST_LOG (off when unset). Runs in one process share it; their nodes have distinct PeerIds.
pub fn global() -> Recorder {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    static GLOBAL: std::sync::OnceLock<Recorder> = std::sync::OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            let recorder = Recorder::default();
            let env = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let log = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_filter(env);
            let events = EventLayer::new(recorder.clone()).with_filter(
                tracing_subscriber::filter::filter_fn(|m| {
                    m.target() == EVENT_TARGET && *m.level() <= tracing::Level::DEBUG
                }),
            );
            if tracing_subscriber::registry()
                .with(log)
                .with(events)
                .try_init()
                .is_err()
            {
                tracing::warn!("a tracing subscriber was already set: no events are recorded");
            }
            recorder
        })
        .clone()
}

/// Reads one line of a `cix node run` log: the node's PeerId and event if it is a `cix::event`
/// record, `None` for any other line (or a garbled one).
pub fn parse_log_line(line: &str) -> Option<(String, NodeEvent)> {
    if !line.contains(EVENT_TARGET) {
        return None;
    }
    let node = {
        let start = line.find(" node=")? + " node=".len();
        let rest = &line[start..];
        rest.split_whitespace().next()?.to_string()
    };
    let start = line.find(" json=")? + " json=".len();
    // The JSON object is followed by more fields; read exactly one value.
    let mut stream = serde_json::Deserializer::from_str(&line[start..]).into_iter::<NodeEvent>();
    let ev = stream.next()?.ok()?;
    Some((node, ev))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_yields_its_node_and_event() {
        let line = "2026-12-04T06:00:00.000001Z DEBUG cix::event: node=12D3KooWabc \
                    json={\"event\":\"entry-accepted\",\"entry\":\"e1\",\"dataset\":\"d\",\
                    \"title\":\"a b\",\"from\":\"p\"} event=EntryAccepted { entry: \"e1\" }";
        let (node, ev) = parse_log_line(line).unwrap();
        assert_eq!(node, "12D3KooWabc");
        assert!(matches!(ev, NodeEvent::EntryAccepted { entry, .. } if entry == "e1"));
        assert!(parse_log_line("INFO cix_node: listening").is_none());
        assert!(parse_log_line("DEBUG cix::event: node=x json={\"event\":").is_none());
    }

    #[test]
    fn the_recorder_keeps_the_first_acceptance() {
        let r = Recorder::default();
        let ev = |e: &str| NodeEvent::EntryAccepted {
            entry: e.into(),
            dataset: "d".into(),
            title: "t".into(),
            from: "p".into(),
        };
        r.record("n1".into(), 10, ev("e"));
        r.record("n1".into(), 20, ev("e"));
        assert_eq!(r.entry_at("n1", "e"), Some(10));
        assert_eq!(r.entry_at("n2", "e"), None);
        let (have, total) = r.entries_held([("n1", "e"), ("n2", "e")].into_iter());
        assert_eq!((have, total), (1, 2));
    }
}
