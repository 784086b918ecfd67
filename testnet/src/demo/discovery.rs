//! Step 1: every agency lists the others' open and shared entries, and no one but its owner
//! lists the closed one.

use std::collections::HashSet;

use anyhow::{anyhow, bail, Result};
use cix_node::{Node, NodeEvent};
use cix_protocol::catalogue::SignedEntry;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Duration, Instant};

use super::data;
use super::report::{ms, DiscoveryReport};
use super::{human, parse_id, Dataset, Demo};

/// What one agency's wait for the others' entries found.
struct Discovered {
    complete_at: Option<Instant>,
    missing: Vec<String>,
    closed_seen: bool,
}

impl Demo {
    pub(super) async fn discovery(&mut self, published_at: Instant) -> Result<()> {
        self.say.step(1, "Discovery: who publishes what");
        self.say.para(
            2,
            "Open and shared entries travel on the gossip topic cix/catalogue/1; a node that \
             connects late catches up over /cix/sync/1. Every node checks each entry's \
             signature and classification before it lists it. Closed data (ISO 37156 5.5.2) is \
             never announced, so only its owner lists it.",
        );
        let closed = self.dataset(&data::WATER_NETWORK)?;
        let mut announced = Vec::new();
        for shipped in data::SHIPPED {
            let d = self.dataset(&shipped)?;
            if d.level != "closed" {
                announced.push(d);
            }
        }

        // Wait for every agency at once, each on the events it has buffered since it started.
        let deadline = Instant::now() + self.timeout;
        let mut waits = Vec::new();
        for (index, agency) in self.agencies.iter_mut().enumerate() {
            let want: HashSet<String> = announced
                .iter()
                .filter(|d| d.owner != index)
                .map(Dataset::id_text)
                .collect();
            let events = agency
                .discovery_events
                .take()
                .ok_or_else(|| anyhow!("discovery events were already used"))?;
            let node = agency.node.clone();
            waits.push(tokio::spawn(await_entries(
                node,
                events,
                want,
                closed.id_text(),
                deadline,
            )));
        }
        let mut slowest = Duration::ZERO;
        for (index, wait) in waits.into_iter().enumerate() {
            let found = wait
                .await
                .map_err(|e| anyhow!("discovery task failed: {e}"))??;
            let name = self.name(index);
            let others = announced.iter().filter(|d| d.owner != index).count();
            let check =
                format!("{name} lists the other agencies' {others} open and shared entries");
            let Some(done) = found.complete_at else {
                let titles: Vec<String> = found
                    .missing
                    .iter()
                    .map(|id| {
                        announced
                            .iter()
                            .find(|d| d.id_text() == *id)
                            .map_or_else(|| id.clone(), |d| format!("\"{}\"", d.title))
                    })
                    .collect();
                let detail = format!(
                    "after {} it still lacked {}",
                    human(self.timeout),
                    titles.join(", ")
                );
                return Err(self.fail(1, check, detail));
            };
            let after = done.saturating_duration_since(published_at);
            slowest = slowest.max(after);
            self.expect(
                1,
                check,
                true,
                format!("complete {} after publishing began", human(after)),
            );

            let view = self.catalogue_of_others(index)?;
            self.say.para(
                2,
                &format!(
                    "{name} lists {} entries from the others (complete {} after publishing \
                     began):",
                    view.len(),
                    human(after)
                ),
            );
            for e in &view {
                self.say.hanging(
                    4,
                    6,
                    &format!(
                        "[{}] {}  (from {})",
                        e.entry.level(),
                        e.entry.title,
                        e.entry.publisher.name
                    ),
                );
            }
            let lists_closed = view.iter().any(|e| e.entry.dataset == closed.id)
                || self.agencies[index]
                    .node
                    .shared
                    .store
                    .latest_entry(&closed.id)?
                    .is_some();
            self.report.discovery.push(DiscoveryReport {
                agency: name.to_string(),
                entries_from_others: view.iter().map(|e| e.entry.title.clone()).collect(),
                complete_after_ms: ms(after),
                lists_closed_dataset: lists_closed && index != closed.owner,
            });
            if index != closed.owner {
                self.expect(
                    1,
                    format!("{name} never lists the closed dataset"),
                    !lists_closed && !found.closed_seen,
                    format!(
                        "in its catalogue: {lists_closed}; seen as an event: {}",
                        found.closed_seen
                    ),
                );
            }
        }
        self.report.timings.discovery_ms = ms(slowest);

        let owner_lists = self.agencies[closed.owner]
            .node
            .shared
            .store
            .latest_entry(&closed.id)?
            .is_some();
        self.expect(
            1,
            format!("{} lists its own closed dataset", self.name(closed.owner)),
            owner_lists,
            format!("in its own catalogue: {owner_lists}"),
        );
        self.say.para(
            2,
            &format!(
                "No agency but {} lists \"{}\": it is closed, so it was never announced. Every \
                 catalogue was complete {} after publishing began.",
                self.name(closed.owner),
                closed.title,
                human(slowest)
            ),
        );
        Ok(())
    }

    /// The entries of other agencies in `index`'s catalogue, by publisher then title.
    pub(super) fn catalogue_of_others(&self, index: usize) -> Result<Vec<SignedEntry>> {
        let own = &self.agencies[index].did;
        let mut view: Vec<SignedEntry> = self.agencies[index]
            .node
            .shared
            .store
            .catalogue()?
            .into_iter()
            .filter(|e| e.entry.iss.to_string() != *own)
            .collect();
        view.sort_by(|a, b| {
            (&a.entry.publisher.name, &a.entry.title)
                .cmp(&(&b.entry.publisher.name, &b.entry.title))
        });
        Ok(view)
    }
}

/// Waits until `node` lists every dataset in `want`, watching its events; also notes whether
/// the closed dataset ever shows up.
async fn await_entries(
    node: Node,
    mut events: broadcast::Receiver<NodeEvent>,
    mut want: HashSet<String>,
    closed: String,
    deadline: Instant,
) -> Result<Discovered> {
    let mut closed_seen = false;
    drop_listed(&node, &mut want)?;
    while !want.is_empty() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => {
                let mut missing: Vec<String> = want.into_iter().collect();
                missing.sort();
                return Ok(Discovered {
                    complete_at: None,
                    missing,
                    closed_seen,
                });
            }
            Ok(Ok(NodeEvent::EntryAccepted { dataset, .. })) => {
                closed_seen |= dataset == closed;
                want.remove(&dataset);
            }
            Ok(Ok(_)) => {}
            // Events were dropped: the store still knows what arrived.
            Ok(Err(RecvError::Lagged(_))) => drop_listed(&node, &mut want)?,
            Ok(Err(RecvError::Closed)) => bail!("the node stopped while waiting for entries"),
        }
    }
    Ok(Discovered {
        complete_at: Some(Instant::now()),
        missing: Vec::new(),
        closed_seen,
    })
}

/// Removes from `want` the datasets the node already lists.
fn drop_listed(node: &Node, want: &mut HashSet<String>) -> Result<()> {
    let mut listed = Vec::new();
    for id in want.iter() {
        if node.shared.store.latest_entry(&parse_id(id)?)?.is_some() {
            listed.push(id.clone());
        }
    }
    for id in listed {
        want.remove(&id);
    }
    Ok(())
}
