//! Scenario files: TOML describing a network and the steps to run on it (README, "Research
//! testnet").
//!
//! ```toml
//! name = "two-halves"
//! nodes = 8
//! [topology]
//! kind = "random"      # full | random | sectors
//! degree = 3
//! [[step]]
//! action = "publish"
//! nodes = [0, 5]
//! wait = "entries"     # entries | revocations | converged | graylisted
//! timeout = "20s"
//! ```
//!
//! [`parse`] reads the text strictly (unknown keys are errors) and [`Scenario::validate`] checks
//! what serde cannot: known step names, node indices within `nodes`, durations that parse,
//! fields that belong to the step. Every error names the step (by number, from 1) and what was
//! wrong.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

/// Longest error message a scenario file's syntax error gives, in characters.
pub const MAX_ERROR_CHARS: usize = 600;

/// Most nodes a scenario may ask for.
pub const MAX_NODES: usize = 500;
/// Most steps in one scenario.
pub const MAX_STEPS: usize = 10_000;
/// Most entries or revocations one step may publish per node.
pub const MAX_COUNT: usize = 100_000;
/// Longest duration any field may give.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Largest scenario file read.
pub const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;
/// The timeout of a step's wait when it gives none.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// How nodes are linked at start.
#[derive(Debug, Clone, PartialEq)]
pub enum Topology {
    /// Every node lists every node started before it as bootstrap.
    Full,
    /// Each node dials `degree` nodes started before it, picked at random.
    Random {
        /// Links per node.
        degree: usize,
    },
    /// Nodes are dealt round-robin into `sectors` groups (water, transport, ...); each links
    /// to every earlier node of its sector, and `bridges` random earlier nodes of others.
    Sectors {
        /// Groups.
        sectors: usize,
        /// Links across sectors per node.
        bridges: usize,
    },
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topology::Full => f.write_str("full"),
            Topology::Random { degree } => write!(f, "random (degree {degree})"),
            Topology::Sectors { sectors, bridges } => {
                write!(f, "sectors ({sectors}, {bridges} bridge(s) per node)")
            }
        }
    }
}

impl Condition {
    /// The name a scenario file gives it.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Entries => "entries",
            Condition::Revocations => "revocations",
            Condition::Converged => "converged",
            Condition::Graylisted => "graylisted",
            Condition::Quiet => "quiet",
        }
    }
}

/// What a hostile node sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostileMode {
    /// Random bytes on the catalogue topic.
    Invalid,
    /// Genuine entries of honest nodes with a signature by the hostile key.
    Forged,
    /// Publishes a dataset, then serves bytes that do not match it.
    Corrupt,
}

/// What to wait for after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// Every live honest node holds every entry published so far.
    Entries,
    /// Every live honest node holds every revocation signed so far.
    Revocations,
    /// Both.
    Converged,
    /// Every honest node that scores the hostile node puts it below the graylist threshold.
    Graylisted,
    /// The nodes have settled: together they used less than `QUIET_CPU` of one core over the
    /// last `QUIET_WINDOW` (connections made, discovery done), so what comes next is measured
    /// on a network at rest rather than one still starting up.
    Quiet,
}

/// CPU the nodes may use together, in cores, for them to count as quiet.
pub const QUIET_CPU: f64 = 0.25;
/// Window over which the nodes' CPU use is measured for `quiet`.
pub const QUIET_WINDOW: Duration = Duration::from_secs(1);

/// One step.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Each listed node publishes `count` new open datasets.
    Publish {
        /// Publishers, in order (a node may appear more than once).
        nodes: Vec<usize>,
        /// Datasets each.
        count: usize,
        /// Pause between two publications.
        interval: Duration,
        /// Whether these entries count in the propagation figures (false for a warm-up).
        measure: bool,
    },
    /// `from` requests and fetches the dataset `owner` published last.
    Fetch {
        /// Requester.
        from: usize,
        /// Owner.
        owner: usize,
    },
    /// Each listed node signs `count` revocations.
    Revoke {
        /// Signers.
        nodes: Vec<usize>,
        /// Revocations each.
        count: usize,
        /// Whether these count in the revocation figures (false for a warm-up).
        measure: bool,
    },
    /// Stop nodes (in process mode: SIGKILL).
    Kill {
        /// Which.
        nodes: Vec<usize>,
    },
    /// Start stopped nodes again on their own store.
    Restart {
        /// Which.
        nodes: Vec<usize>,
    },
    /// Cut the network into groups: nodes of different groups cannot connect. Nodes in no
    /// group form one more group.
    Partition {
        /// The groups.
        groups: Vec<Vec<usize>>,
    },
    /// Undo the partition.
    Heal,
    /// Delay and lose packets between groups: by `tc netem` in process mode as root on a
    /// kernel with netem, elsewhere by the nodes' delaying transport, which models a loss below
    /// 1 as TCP retransmission delay (`cix_node::testnet_delay`).
    Latency {
        /// The groups.
        groups: Vec<Vec<usize>>,
        /// Added one-way delay.
        delay: Duration,
        /// Share of packets lost, 0 to 1 (below 1 where the nodes model it).
        loss: f64,
    },
    /// For `duration`, every `period`: bring back the nodes taken down last time, take a
    /// `share` of the live nodes down, and let one live node publish a dataset.
    Churn {
        /// Share of nodes down at a time.
        share: f64,
        /// Round length.
        period: Duration,
        /// How long.
        duration: Duration,
    },
    /// Node `node` turns hostile and sends `count` bad messages, `interval` apart.
    Hostile {
        /// The hostile node.
        node: usize,
        /// What it sends.
        mode: HostileMode,
        /// How many.
        count: usize,
        /// Apart.
        interval: Duration,
    },
    /// Do nothing for a while.
    Sleep {
        /// How long.
        duration: Duration,
    },
    /// Only wait (the step's condition).
    Wait,
}

impl Action {
    /// The step's name in files.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Publish { .. } => "publish",
            Self::Fetch { .. } => "fetch",
            Self::Revoke { .. } => "revoke",
            Self::Kill { .. } => "kill",
            Self::Restart { .. } => "restart",
            Self::Partition { .. } => "partition",
            Self::Heal => "heal",
            Self::Latency { .. } => "latency",
            Self::Churn { .. } => "churn",
            Self::Hostile { .. } => "hostile",
            Self::Sleep { .. } => "sleep",
            Self::Wait => "wait",
        }
    }
}

/// A step and what to wait for after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What to do.
    pub action: Action,
    /// What must hold afterwards, within `timeout`.
    pub wait: Option<Condition>,
    /// Bound on the wait.
    pub timeout: Duration,
}

/// A whole scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// Nodes.
    pub nodes: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Links at start.
    pub topology: Topology,
    /// Steps, in order.
    pub steps: Vec<Step>,
}

/// Step names and the fields each takes (besides `action`, `wait` and `timeout`).
pub const STEPS: &[(&str, &[&str])] = &[
    ("publish", &["nodes", "count", "interval", "measure"]),
    ("fetch", &["from", "owner"]),
    ("revoke", &["nodes", "count", "measure"]),
    ("kill", &["nodes"]),
    ("restart", &["nodes"]),
    ("partition", &["groups"]),
    ("heal", &[]),
    ("latency", &["groups", "delay", "loss"]),
    ("churn", &["share", "period", "duration"]),
    ("hostile", &["node", "mode", "count", "interval"]),
    ("sleep", &["duration"]),
    ("wait", &[]),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    nodes: usize,
    #[serde(default)]
    seed: Option<u64>,
    topology: RawTopology,
    #[serde(default)]
    step: Vec<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    kind: String,
    degree: Option<usize>,
    sectors: Option<usize>,
    bridges: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Nodes {
    List(Vec<usize>),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    // Read from the table before; declared so that deny_unknown_fields admits it.
    #[allow(dead_code)]
    action: String,
    wait: Option<String>,
    timeout: Option<String>,
    nodes: Option<Nodes>,
    count: Option<usize>,
    from: Option<usize>,
    owner: Option<usize>,
    groups: Option<Vec<Vec<usize>>>,
    delay: Option<String>,
    loss: Option<f64>,
    share: Option<f64>,
    period: Option<String>,
    duration: Option<String>,
    node: Option<usize>,
    mode: Option<String>,
    interval: Option<String>,
    measure: Option<bool>,
}

/// Parses a duration: a number and a unit, `ms`, `s`, `m` or `h` (`250ms`, `2s`, `1.5m`).
///
/// # Errors
///
/// A message saying what is wrong with `text`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            format!("bad duration {text:?}: give a unit (ms, s, m or h), as in \"2s\"")
        })?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {text:?}: {num:?} is not a number"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "bad duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > MAX_DURATION.as_secs_f64() {
        return Err(format!("bad duration {text:?}: longer than 24 h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn condition(text: &str) -> Result<Condition, String> {
    Ok(match text {
        "entries" => Condition::Entries,
        "revocations" => Condition::Revocations,
        "converged" => Condition::Converged,
        "graylisted" => Condition::Graylisted,
        "quiet" => Condition::Quiet,
        other => {
            return Err(format!(
                "unknown wait condition {other:?} (known: entries, revocations, converged, \
                 graylisted, quiet)"
            ))
        }
    })
}

/// Parses scenario text (see the module documentation) and validates it.
///
/// # Errors
///
/// A message naming the step and what is wrong, or the TOML error.
pub fn parse(text: &str) -> Result<Scenario, String> {
    parse_with(text, None)
}

/// As [`parse`], with the number of nodes replaced by `nodes` when given (`--nodes`): node
/// numbers in the steps are checked against it.
///
/// # Errors
///
/// As [`parse`].
pub fn parse_with(text: &str, nodes: Option<usize>) -> Result<Scenario, String> {
    let mut raw: RawScenario = toml::from_str(text).map_err(|e| {
        // The TOML error quotes the offending line, which in a hostile file can be the whole
        // file: keep the message readable.
        let e = e.to_string();
        match e.char_indices().nth(MAX_ERROR_CHARS) {
            Some((cut, _)) => format!("scenario: {}… (message cut)", &e[..cut]),
            None => format!("scenario: {e}"),
        }
    })?;
    if let Some(n) = nodes {
        raw.nodes = n;
    }
    let topology = match raw.topology.kind.as_str() {
        "full" => Topology::Full,
        "random" => Topology::Random {
            degree: raw
                .topology
                .degree
                .ok_or("topology: kind \"random\" needs degree")?,
        },
        "sectors" => Topology::Sectors {
            sectors: raw
                .topology
                .sectors
                .ok_or("topology: kind \"sectors\" needs sectors")?,
            bridges: raw.topology.bridges.unwrap_or(1),
        },
        other => {
            return Err(format!(
                "topology: unknown kind {other:?} (known: full, random, sectors)"
            ))
        }
    };
    if raw.step.len() > MAX_STEPS {
        return Err(format!("scenario: more than {MAX_STEPS} steps"));
    }
    let mut steps = Vec::with_capacity(raw.step.len());
    for (i, table) in raw.step.into_iter().enumerate() {
        steps.push(step(i + 1, table, raw.nodes)?);
    }
    let s = Scenario {
        name: raw.name,
        description: raw.description,
        nodes: raw.nodes,
        seed: raw.seed.unwrap_or(1),
        topology,
        steps,
    };
    s.validate()?;
    Ok(s)
}

fn step(n: usize, table: toml::Table, nodes: usize) -> Result<Step, String> {
    let action = match table.get("action") {
        Some(toml::Value::String(a)) => a.clone(),
        Some(_) => return Err(format!("step {n}: action must be a string")),
        None => return Err(format!("step {n}: no action")),
    };
    let Some((_, fields)) = STEPS.iter().find(|(name, _)| *name == action) else {
        let known: Vec<&str> = STEPS.iter().map(|(s, _)| *s).collect();
        return Err(format!(
            "step {n}: unknown step {action:?} (known: {})",
            known.join(", ")
        ));
    };
    for key in table.keys() {
        if !["action", "wait", "timeout"].contains(&key.as_str()) && !fields.contains(&key.as_str())
        {
            let takes = if fields.is_empty() {
                "only wait and timeout".to_string()
            } else {
                format!("{}, wait, timeout", fields.join(", "))
            };
            return Err(format!(
                "step {n} ({action}): unknown field {key:?} (it takes {takes})"
            ));
        }
    }
    let raw: RawStep = toml::Value::Table(table).try_into().map_err(|e| {
        let e = e.to_string();
        if e.contains("untagged enum Nodes") {
            format!(
                "step {n} ({action}): nodes: give a list of node numbers (each 0 or more) or \
                 \"all\""
            )
        } else if e.contains("expected usize") {
            format!(
                "step {n} ({action}): {}: node numbers and counts are whole numbers, 0 or more",
                e.trim()
            )
        } else {
            format!("step {n} ({action}): {e}")
        }
    })?;
    let at = |e: String| format!("step {n} ({action}): {e}");
    let dur = |field: &str, v: &Option<String>| -> Result<Duration, String> {
        let v = v.as_ref().ok_or_else(|| at(format!("needs {field}")))?;
        parse_duration(v).map_err(|e| at(format!("{field}: {e}")))
    };
    // Publishers may repeat (each turn publishes), up to MAX_COUNT turns; in every other
    // list a node stands once.
    let list_with = |v: &Option<Nodes>, repeats: bool| -> Result<Vec<usize>, String> {
        match v {
            None => Err(at("needs nodes (a list of node numbers, or \"all\")".into())),
            Some(Nodes::List(l)) if repeats && l.len() > MAX_COUNT => Err(at(format!(
                "nodes: {} publishers is over {MAX_COUNT}",
                l.len()
            ))),
            Some(Nodes::List(l)) if repeats => Ok(l.clone()),
            Some(Nodes::List(l)) => {
                let mut seen = std::collections::HashSet::new();
                match l.iter().find(|n| !seen.insert(**n)) {
                    Some(twice) => Err(at(format!("nodes: node {twice} is listed twice"))),
                    None => Ok(l.clone()),
                }
            }
            Some(Nodes::Word(w)) if w == "all" => Ok((0..nodes).collect()),
            Some(Nodes::Word(w)) => Err(at(format!(
                "nodes: {w:?} is neither a list of node numbers nor \"all\""
            ))),
        }
    };
    let list = |v: &Option<Nodes>| list_with(v, false);
    let need = |field: &str, v: Option<usize>| v.ok_or_else(|| at(format!("needs {field}")));
    let action = match action.as_str() {
        "publish" => Action::Publish {
            nodes: list_with(&raw.nodes, true)?,
            count: raw.count.unwrap_or(1),
            interval: match &raw.interval {
                Some(_) => dur("interval", &raw.interval)?,
                None => Duration::ZERO,
            },
            measure: raw.measure.unwrap_or(true),
        },
        "fetch" => Action::Fetch {
            from: need("from", raw.from)?,
            owner: need("owner", raw.owner)?,
        },
        "revoke" => Action::Revoke {
            nodes: list(&raw.nodes)?,
            count: raw.count.unwrap_or(1),
            measure: raw.measure.unwrap_or(true),
        },
        "kill" => Action::Kill {
            nodes: list(&raw.nodes)?,
        },
        "restart" => Action::Restart {
            nodes: list(&raw.nodes)?,
        },
        "partition" => Action::Partition {
            groups: raw.groups.ok_or_else(|| at("needs groups".into()))?,
        },
        "heal" => Action::Heal,
        "latency" => Action::Latency {
            groups: raw.groups.ok_or_else(|| at("needs groups".into()))?,
            delay: dur("delay", &raw.delay)?,
            loss: raw.loss.unwrap_or(0.0),
        },
        "churn" => Action::Churn {
            share: raw.share.ok_or_else(|| at("needs share".into()))?,
            period: dur("period", &raw.period)?,
            duration: dur("duration", &raw.duration)?,
        },
        "hostile" => Action::Hostile {
            node: need("node", raw.node)?,
            mode: match raw.mode.as_deref().unwrap_or("invalid") {
                "invalid" => HostileMode::Invalid,
                "forged" => HostileMode::Forged,
                "corrupt" => HostileMode::Corrupt,
                other => {
                    return Err(at(format!(
                        "unknown mode {other:?} (known: invalid, forged, corrupt)"
                    )))
                }
            },
            count: raw.count.unwrap_or(20),
            interval: match &raw.interval {
                Some(_) => dur("interval", &raw.interval)?,
                None => Duration::from_millis(20),
            },
        },
        "sleep" => Action::Sleep {
            duration: dur("duration", &raw.duration)?,
        },
        _ => Action::Wait,
    };
    let wait = raw.wait.as_deref().map(condition).transpose().map_err(at)?;
    let timeout = match &raw.timeout {
        Some(_) => dur("timeout", &raw.timeout)?,
        None => DEFAULT_WAIT_TIMEOUT,
    };
    Ok(Step {
        action,
        wait,
        timeout,
    })
}

impl Scenario {
    /// Checks what parsing cannot: sizes, node numbers within `nodes`, shares within 0..1,
    /// groups that do not overlap.
    ///
    /// # Errors
    ///
    /// A message naming the step and what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes < 2 || self.nodes > MAX_NODES {
            return Err(format!(
                "nodes: {} is out of range (2 to {MAX_NODES})",
                self.nodes
            ));
        }
        match self.topology {
            Topology::Random { degree: 0 } => {
                return Err("topology: degree must be at least 1".into())
            }
            Topology::Sectors { sectors, .. } if sectors == 0 || sectors > self.nodes => {
                return Err(format!(
                    "topology: sectors must be between 1 and the number of nodes ({})",
                    self.nodes
                ))
            }
            _ => {}
        }
        let mut hostile: Option<usize> = None;
        for (i, step) in self.steps.iter().enumerate() {
            let at = |e: String| format!("step {} ({}): {e}", i + 1, step.action.name());
            let check = |which: &str, n: usize| {
                if n >= self.nodes {
                    Err(at(format!(
                        "node {n} in {which} is out of range: the scenario has {} nodes, \
                         numbered 0 to {}",
                        self.nodes,
                        self.nodes - 1
                    )))
                } else {
                    Ok(())
                }
            };
            let check_all = |which: &str, l: &[usize]| -> Result<(), String> {
                if l.is_empty() {
                    return Err(at(format!("{which} is empty")));
                }
                l.iter().try_for_each(|n| check(which, *n))
            };
            let count_ok = |c: usize| {
                if c == 0 || c > MAX_COUNT {
                    Err(at(format!("count {c} is out of range (1 to {MAX_COUNT})")))
                } else {
                    Ok(())
                }
            };
            let groups_ok = |groups: &[Vec<usize>]| -> Result<(), String> {
                if groups.is_empty() {
                    return Err(at("groups is empty".into()));
                }
                let mut seen = BTreeSet::new();
                for g in groups {
                    check_all("groups", g)?;
                    for n in g {
                        if !seen.insert(*n) {
                            return Err(at(format!("node {n} is in two groups")));
                        }
                    }
                }
                Ok(())
            };
            match &step.action {
                Action::Publish { nodes, count, .. } | Action::Revoke { nodes, count, .. } => {
                    check_all("nodes", nodes)?;
                    count_ok(*count)?;
                }
                Action::Kill { nodes } | Action::Restart { nodes } => check_all("nodes", nodes)?,
                Action::Fetch { from, owner } => {
                    check("from", *from)?;
                    check("owner", *owner)?;
                    if from == owner {
                        return Err(at("from and owner are the same node".into()));
                    }
                }
                Action::Partition { groups } => groups_ok(groups)?,
                Action::Latency { groups, loss, .. } => {
                    groups_ok(groups)?;
                    if !(0.0..=1.0).contains(loss) {
                        return Err(at(format!("loss {loss} is not between 0 and 1")));
                    }
                }
                Action::Churn {
                    share,
                    period,
                    duration,
                } => {
                    if !(*share > 0.0 && *share < 1.0) {
                        return Err(at(format!("share {share} is not strictly between 0 and 1")));
                    }
                    if period.is_zero() || period > duration {
                        return Err(at("period must be above zero and at most duration".into()));
                    }
                }
                Action::Hostile { node, count, .. } => {
                    check("node", *node)?;
                    count_ok(*count)?;
                    if hostile.is_some_and(|h| h != *node) {
                        return Err(at("only one node may be hostile".into()));
                    }
                    hostile = Some(*node);
                }
                Action::Heal | Action::Sleep { .. } | Action::Wait => {}
            }
            if step.wait == Some(Condition::Graylisted) && hostile.is_none() {
                return Err(at(
                    "wait = \"graylisted\" needs an earlier hostile step".into()
                ));
            }
            if step.wait == Some(Condition::Quiet) && step.timeout < QUIET_WINDOW {
                return Err(at(format!(
                    "wait = \"quiet\" measures the nodes over {} ms, so its timeout must be at \
                     least that",
                    QUIET_WINDOW.as_millis()
                )));
            }
        }
        Ok(())
    }

    /// The hostile node, if a step names one.
    pub fn hostile(&self) -> Option<usize> {
        self.steps.iter().find_map(|s| match s.action {
            Action::Hostile { node, .. } => Some(node),
            _ => None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5").unwrap_err().contains("unit"));
        assert!(parse_duration("5 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("99999h").unwrap_err().contains("24 h"));
    }

    #[test]
    fn every_wait_condition_parses_and_the_error_lists_them() {
        for (text, c) in [
            ("entries", Condition::Entries),
            ("revocations", Condition::Revocations),
            ("converged", Condition::Converged),
            ("graylisted", Condition::Graylisted),
            ("quiet", Condition::Quiet),
        ] {
            assert_eq!(condition(text), Ok(c));
        }
        assert!(condition("calm").unwrap_err().contains("quiet)"));
    }
}
