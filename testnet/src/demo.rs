//! `cix-testnet demo`: the quick tour of cix (DESIGN.md §9).
//!
//! Three agencies of a fictional city, Riverton, each run a cix node inside this process, with
//! a home of their own in a fresh directory and real TCP connections on 127.0.0.1. Each
//! publishes two real open data files shipped with the project ([`data`]) at different spectrum
//! levels (ISO 37156 5.5). The tour then shows, step by step:
//!
//! 1. discovery: every agency lists the others' open and shared entries, never the closed one;
//! 2. open data fetched without asking, and shared-public data granted on accepting its terms,
//!    each copy verified against the BLAKE3 hash of the shipped file;
//! 3. a shared-named request: the fetch is refused while it waits, the owner's queue shows it,
//!    the owner approves, the fetch succeeds;
//! 4. a shared-named request the owner denies with a reason, which the requester's fetch
//!    repeats;
//! 5. the closed dataset, refused by its owner even to someone who knows its id;
//! 6. a summary.
//!
//! [`run`] tells the story on [`Options::out`] and returns a [`Report`]. Every wait is bounded by
//! [`Options::timeout`]. Each check is an [`report::Expectation`] in the report; when a check
//! fails that later steps rely on, [`run`] stops with an error naming it.

pub mod data;
mod discovery;
mod fetch;
mod monitor;
pub mod report;
mod say;
mod setup;
mod sharing;
mod summary;

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cix_node::{Node, NodeEvent};
use cix_protocol::catalogue::DatasetId;
use tokio::sync::broadcast;
use tokio::time::Instant;

use self::data::{Plan, Shipped, AGENCIES};
pub use self::report::Report;
use self::report::{ms, Expectation};
use self::say::Say;

/// The default bound on every wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run the demo.
pub struct Options {
    /// Keep every home, published file and download in this directory (created if missing;
    /// must be empty). Without it everything lives in a temporary directory that is removed.
    pub keep: Option<PathBuf>,
    /// Longest wait for any one thing (a node starting, an entry arriving, a fetch).
    pub timeout: Duration,
    /// Where the narration goes; `std::io::sink()` for none.
    pub out: Box<dyn Write + Send>,
}

impl Options {
    /// Narrated on stdout, default timeout, nothing kept.
    pub fn narrated() -> Self {
        Self {
            keep: None,
            timeout: DEFAULT_TIMEOUT,
            out: Box::new(std::io::stdout()),
        }
    }

    /// Silent, default timeout, nothing kept.
    pub fn quiet() -> Self {
        Self {
            keep: None,
            timeout: DEFAULT_TIMEOUT,
            out: Box::new(std::io::sink()),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("keep", &self.keep)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Runs the demo from start to end.
///
/// # Errors
///
/// If the working directory cannot be prepared or a node cannot start, if a wait times out, or
/// if a check fails that the following steps depend on (the message names it). Checks that
/// fail without blocking the tour are only recorded: see [`Report::ok`].
pub async fn run(opts: Options) -> Result<Report> {
    let started = Instant::now();
    let work = Workdir::prepare(opts.keep.as_deref())?;
    let mut demo = Demo {
        timeout: opts.timeout,
        say: Say::new(opts.out),
        report: Report::default(),
        agencies: Vec::new(),
    };
    demo.intro();
    demo.start_agencies(work.path()).await?;
    let published_at = demo.publish_all().await?;
    demo.discovery(published_at).await?;
    demo.open_and_public().await?;
    demo.named_approved().await?;
    demo.named_denied().await?;
    demo.closed().await?;
    demo.monitoring().await?;
    demo.report.timings.total_ms = ms(started.elapsed());
    let all_held = demo.report.failures().next().is_none();
    demo.report.ok = all_held;
    match &work {
        Workdir::Kept(dir) => demo.report.kept = Some(dir.clone()),
        Workdir::Temp(_) => demo.report.fetches.iter_mut().for_each(|f| f.path = None),
    }
    demo.summary();
    Ok(demo.report)
}

/// The directory holding every agency's home, outbox and downloads.
enum Workdir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Workdir {
    fn prepare(keep: Option<&Path>) -> Result<Self> {
        let Some(dir) = keep else {
            let tmp = tempfile::Builder::new()
                .prefix("cix-demo-")
                .tempdir()
                .context("cannot create a temporary directory for the demo")?;
            return Ok(Self::Temp(tmp));
        };
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    bail!(
                        "--keep {}: the directory is not empty; give a new or empty one",
                        dir.display()
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("--keep {}: cannot create it", dir.display()))?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("--keep {}: cannot use it as a directory", dir.display())
                })
            }
        }
        // Publishing needs absolute paths.
        let dir = dir
            .canonicalize()
            .with_context(|| format!("--keep {}: cannot resolve the path", dir.display()))?;
        Ok(Self::Kept(dir))
    }

    fn path(&self) -> &Path {
        match self {
            Self::Temp(t) => t.path(),
            Self::Kept(p) => p,
        }
    }
}

/// A running agency.
struct Agency {
    plan: Plan,
    node: Node,
    did: String,
    peer_id: String,
    outbox: PathBuf,
    downloads: PathBuf,
    /// Subscribed before anything was published, so no catalogue event is missed.
    discovery_events: Option<broadcast::Receiver<NodeEvent>>,
}

/// A dataset one of the agencies published.
#[derive(Debug, Clone)]
struct Dataset {
    shipped: Shipped,
    owner: usize,
    id: DatasetId,
    title: String,
    level: String,
}

impl Dataset {
    fn id_text(&self) -> String {
        self.id.to_string()
    }
}

struct Demo {
    timeout: Duration,
    say: Say,
    report: Report,
    agencies: Vec<Agency>,
}

impl Demo {
    /// Records a check; returns whether it held.
    fn expect(&mut self, step: u8, name: impl Into<String>, held: bool, detail: String) -> bool {
        let name = name.into();
        if !held {
            tracing::warn!(step, %name, %detail, "demo expectation failed");
        }
        self.report.expectations.push(Expectation {
            step,
            name,
            held,
            detail,
        });
        held
    }

    /// Records a check that failed and that the rest of the tour depends on.
    fn fail(&mut self, step: u8, name: impl Into<String>, detail: String) -> anyhow::Error {
        let name = name.into();
        self.expect(step, name.clone(), false, detail.clone());
        anyhow!("step {step}: expectation failed: {name}: {detail}")
    }

    fn name(&self, agency: usize) -> &'static str {
        AGENCIES[agency].name
    }

    fn node(&self, agency: usize) -> Node {
        self.agencies[agency].node.clone()
    }

    /// The dataset published from a shipped file.
    fn dataset(&self, shipped: &Shipped) -> Result<Dataset> {
        self.report
            .published
            .iter()
            .find(|p| p.file == shipped.file)
            .map(|p| -> Result<Dataset> {
                let owner = AGENCIES
                    .iter()
                    .position(|a| a.name == p.agency)
                    .ok_or_else(|| anyhow!("no agency named {}", p.agency))?;
                Ok(Dataset {
                    shipped: *shipped,
                    owner,
                    id: parse_id(&p.dataset)?,
                    title: p.title.clone(),
                    level: p.spectrum.clone(),
                })
            })
            .transpose()?
            .ok_or_else(|| anyhow!("{} was not published", shipped.file))
    }

    /// The agency whose node has this did, by name.
    fn agency_of_did(&self, did: &str) -> String {
        self.agencies
            .iter()
            .find(|a| a.did == did)
            .map(|a| a.plan.name.to_string())
            .unwrap_or_else(|| did.to_string())
    }
}

/// Runs `fut` for at most `limit`; the outer error says what timed out.
async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| anyhow!("gave up after {} waiting {what}", human(limit)))
}

fn parse_id(text: &str) -> Result<DatasetId> {
    text.parse()
        .map_err(|e| anyhow!("the node returned a bad dataset id: {e}"))
}

/// A duration for people: milliseconds below a second, seconds above.
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// 12345 as "12,345".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1531), "1,531");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn keep_refuses_a_directory_that_is_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("something"), b"x").unwrap();
        let err = Workdir::prepare(Some(dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not empty"), "{err}");
    }

    #[test]
    fn keep_refuses_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(Workdir::prepare(Some(&file)).is_err());
    }

    #[test]
    fn keep_creates_a_missing_directory_and_makes_it_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let wanted = dir.path().join("a").join("b");
        let work = Workdir::prepare(Some(&wanted)).unwrap();
        assert!(work.path().is_absolute());
        assert!(wanted.is_dir());
    }
}
