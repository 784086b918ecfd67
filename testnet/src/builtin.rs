//! The built-in scenarios, runnable by name (`cix-testnet run --scenario NAME`): each is a
//! [`Scenario`] built for the number of nodes asked for.

use std::time::Duration;

use crate::scenario::{Action, Condition, HostileMode, Scenario, Step, Topology};

/// Names of the built-in scenarios.
pub const NAMES: &[&str] = &[
    "propagation",
    "partition-heal",
    "churn",
    "revocation-storm",
    "hostile-peer",
];

/// Knobs of the built-ins (the command line's `--nodes`, `--entries`, `--duration`).
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    /// Nodes (default per scenario when `None`).
    pub nodes: Option<usize>,
    /// Announcements (propagation) or revocations (revocation-storm).
    pub entries: Option<usize>,
    /// How long churn lasts.
    pub duration: Option<Duration>,
    /// Time between two announcements (propagation).
    pub interval: Option<Duration>,
}

fn step(action: Action, wait: Option<Condition>, timeout_s: u64) -> Step {
    Step {
        action,
        wait,
        timeout: Duration::from_secs(timeout_s),
    }
}

fn warmup(publisher: usize) -> Step {
    // The first announcement also waits for the gossip mesh to form; it is not measured.
    step(
        Action::Publish {
            nodes: vec![publisher],
            count: 1,
            interval: Duration::ZERO,
            measure: false,
        },
        Some(Condition::Entries),
        60,
    )
}

/// A well-mixed number from `x` (splitmix64): deterministic picks of random nodes.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The scenario called `name`, or `None`.
pub fn get(name: &str, k: Knobs) -> Option<Scenario> {
    let s = match name {
        "propagation" => {
            let n = k.nodes.unwrap_or(50);
            let m = k.entries.unwrap_or(100);
            // Keep the load under the CPU: about n x messages/s x 1.1 ms must stay well below
            // the two cores (MEASUREMENTS.md), so space announcements further apart as n grows.
            let spacing =
                k.interval
                    .unwrap_or(Duration::from_millis(if n > 60 { 200 } else { 50 }));
            Scenario {
                name: name.into(),
                description: format!(
                    "{n} nodes on a random graph of degree 8; {m} announcements from random \
                     nodes {} ms apart; time until each node, and every node, accepted each",
                    spacing.as_millis()
                ),
                nodes: n,
                seed: 7,
                topology: Topology::Random {
                    degree: 8.min(n - 1),
                },
                steps: vec![
                    warmup(0),
                    // Measure a network at rest: starting up (connections, identify, the
                    // Kademlia discovery that follows) keeps both cores busy for seconds at
                    // 50 nodes, and announcements published meanwhile queue behind it.
                    step(
                        Action::Sleep {
                            duration: Duration::from_secs(1),
                        },
                        Some(Condition::Quiet),
                        120,
                    ),
                    step(
                        Action::Publish {
                            nodes: (0..m as u64)
                                .map(|i| (mix(7 + i) % n as u64) as usize)
                                .collect(),
                            count: 1,
                            interval: spacing,
                            measure: true,
                        },
                        Some(Condition::Entries),
                        120,
                    ),
                ],
            }
        }
        "partition-heal" => {
            let n = k.nodes.unwrap_or(12);
            let half: Vec<usize> = (0..n / 2).collect();
            Scenario {
                name: name.into(),
                description: format!(
                    "{n} nodes split in two halves; each half publishes while apart; after \
                     healing every node must hold every entry, and the time to converge is \
                     measured"
                ),
                nodes: n,
                seed: 11,
                topology: Topology::Random {
                    degree: 3.min(n - 1),
                },
                steps: vec![
                    warmup(0),
                    step(Action::Partition { groups: vec![half] }, None, 0),
                    step(
                        Action::Publish {
                            nodes: vec![1, n - 1],
                            count: 2,
                            interval: Duration::ZERO,
                            measure: false,
                        },
                        None,
                        0,
                    ),
                    step(
                        Action::Sleep {
                            duration: Duration::from_secs(2),
                        },
                        None,
                        0,
                    ),
                    step(Action::Heal, Some(Condition::Converged), 90),
                ],
            }
        }
        "churn" => {
            let n = k.nodes.unwrap_or(20);
            let duration = k.duration.unwrap_or(Duration::from_secs(180));
            let period = (duration / 6).clamp(Duration::from_secs(1), Duration::from_secs(20));
            Scenario {
                name: name.into(),
                description: format!(
                    "{n} nodes; for {} s a fifth of them leave and others return every {} s \
                     while live nodes publish; at the end every live node must hold the full \
                     catalogue",
                    duration.as_secs(),
                    period.as_secs()
                ),
                nodes: n,
                seed: 13,
                topology: Topology::Random {
                    degree: 4.min(n - 1),
                },
                steps: vec![
                    warmup(0),
                    step(
                        Action::Churn {
                            share: 0.2,
                            period,
                            duration,
                        },
                        Some(Condition::Converged),
                        120,
                    ),
                ],
            }
        }
        "revocation-storm" => {
            let n = k.nodes.unwrap_or(20);
            let m = k.entries.unwrap_or(200);
            Scenario {
                name: name.into(),
                description: format!(
                    "{n} nodes; {m} revocations signed by every node at once; how fast each \
                     reaches every node"
                ),
                nodes: n,
                seed: 17,
                topology: Topology::Random {
                    degree: 4.min(n - 1),
                },
                steps: vec![
                    step(
                        Action::Revoke {
                            nodes: vec![0],
                            count: 1,
                            measure: false,
                        },
                        Some(Condition::Revocations),
                        60,
                    ),
                    step(
                        Action::Revoke {
                            nodes: (0..n).collect(),
                            count: m.div_ceil(n).max(1),
                            measure: true,
                        },
                        Some(Condition::Revocations),
                        120,
                    ),
                ],
            }
        }
        "hostile-peer" => {
            let n = k.nodes.unwrap_or(10);
            let h = n - 1;
            Scenario {
                name: name.into(),
                description: format!(
                    "{n} nodes, node {h} hostile: it floods random bytes and forged entries \
                     (genuine entries of others with its own signature); no honest node may \
                     accept or forward one, and its gossipsub score must fall below the \
                     graylist threshold"
                ),
                nodes: n,
                seed: 19,
                topology: Topology::Random {
                    degree: 4.min(n - 1),
                },
                steps: vec![
                    warmup(0),
                    step(
                        Action::Hostile {
                            node: h,
                            mode: HostileMode::Invalid,
                            count: 30,
                            interval: Duration::from_millis(20),
                        },
                        None,
                        0,
                    ),
                    step(
                        Action::Hostile {
                            node: h,
                            mode: HostileMode::Forged,
                            count: 30,
                            interval: Duration::from_millis(20),
                        },
                        Some(Condition::Graylisted),
                        30,
                    ),
                    step(
                        Action::Publish {
                            nodes: vec![1],
                            count: 1,
                            interval: Duration::ZERO,
                            measure: true,
                        },
                        Some(Condition::Entries),
                        60,
                    ),
                ],
            }
        }
        _ => return None,
    };
    Some(s)
}
