//! Setting up: the agencies' directories, homes and nodes, their connections, and what each
//! publishes.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use cix_node::publish::{self, PublishRequest};
use cix_node::{Config, Home};
use tokio::time::{Duration, Instant};

use super::data::{Plan, Shipped, AGENCIES};
use super::report::{ms, AgencyReport, PublishedReport};
use super::{human, parse_id, thousands, within, Agency, Demo};

/// Where every node listens: loopback, a port the system picks.
const LISTEN: &str = "/ip4/127.0.0.1/tcp/0";
/// The demo city's jurisdiction (ISO 3166-1 alpha-2).
const JURISDICTION: &str = "US";
/// sled cache per node: three nodes share one small machine.
const STORE_CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// How often the demo looks again at something no event announces (peer connections).
const POLL_INTERVAL: Duration = Duration::from_millis(20);

impl Demo {
    pub(super) fn intro(&mut self) {
        self.say
            .line("cix demo: three city agencies share data peer to peer");
        self.say.blank();
        self.say.para(
            2,
            "Three agencies of a fictional city, Riverton, each run a cix node inside this \
             process. The nodes talk over real TCP connections on 127.0.0.1 and keep their \
             keys, catalogues and files in their own directories. Each agency publishes real \
             open data that ships with cix (testnet/data/SOURCES.md says where every file comes \
             from) as a stand-in for its own, classified under ISO 37156. Watch them find each \
             other's data, negotiate access by data spectrum (ISO 37156 5.5) and fetch copies \
             that are checked byte for byte.",
        );
    }

    pub(super) async fn start_agencies(&mut self, root: &Path) -> Result<()> {
        self.say.blank();
        self.say.line("Setting up");
        let t = Instant::now();
        let mut addresses: Vec<String> = Vec::new();
        for (index, plan) in AGENCIES.iter().enumerate() {
            let (agency, listen) = self
                .start_one(root, *plan, addresses.clone())
                .await
                .with_context(|| format!("cannot start the node of {}", plan.name))?;
            let address = listen.first().cloned().unwrap_or_default();
            let joined = match index {
                0 => "the first node, with no one to dial yet".to_string(),
                1 => format!("bootstrapped to {}", AGENCIES[0].name),
                _ => "bootstrapped to the two others".to_string(),
            };
            self.say.hanging(
                2,
                6,
                &format!(
                    "{} ({}) started, {joined}. Its identity is {} and it listens on {}.",
                    plan.name,
                    plan.sectors.join(", "),
                    agency.did,
                    address
                ),
            );
            addresses.push(address);
            self.report.agencies.push(AgencyReport {
                name: plan.name.to_string(),
                did: agency.did.clone(),
                peer_id: agency.peer_id.clone(),
                sectors: plan.sectors.iter().map(|s| s.to_string()).collect(),
                listen,
            });
            self.agencies.push(agency);
        }
        self.report.timings.start_ms = ms(t.elapsed());

        let t = Instant::now();
        self.wait_connected().await?;
        self.report.timings.connect_ms = ms(t.elapsed());
        self.expect(
            0,
            "every agency connects to the other two",
            true,
            format!("connected and identified in {}", human(t.elapsed())),
        );
        self.say.para(
            2,
            &format!(
                "All three are connected to each other and have exchanged identities ({}). \
                 Every connection is encrypted and authenticated with the agencies' keys (TLS 1.3).",
                human(t.elapsed())
            ),
        );
        Ok(())
    }

    /// Creates an agency's directories and home and starts its node.
    pub(super) async fn start_one(
        &mut self,
        root: &Path,
        plan: Plan,
        bootstrap: Vec<String>,
    ) -> Result<(Agency, Vec<String>)> {
        let dir = root.join(plan.short);
        let outbox = dir.join("outbox");
        let downloads = dir.join("downloads");
        for d in [&outbox, &downloads] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let home = Home::new(dir.join("home"));
        let mut config = Config::new(plan.name, JURISDICTION);
        config.sectors = plan.sectors.iter().map(|s| s.to_string()).collect();
        config.listen = vec![LISTEN.to_string()];
        config.bootstrap = bootstrap;
        config.store_cache_bytes = STORE_CACHE_BYTES;
        home.init(&config)?;

        let node = within(
            self.timeout,
            "for the node to start",
            cix_node::start(home, config),
        )
        .await??;
        // Subscribe at once: nothing is published before this point.
        let discovery_events = Some(node.events());
        let listen: Vec<String> = within(
            self.timeout,
            "for the node's listen addresses",
            node.listening(),
        )
        .await??
        .iter()
        .map(ToString::to_string)
        .collect();
        if listen.is_empty() {
            bail!("the node did not bind {LISTEN}");
        }
        let agency = Agency {
            plan,
            did: node.did().to_string(),
            peer_id: node.peer_id().to_string(),
            node,
            outbox,
            downloads,
            discovery_events,
        };
        Ok((agency, listen))
    }

    /// Waits until every node is connected to, and has identified, the other two. No event
    /// says "identified", so this looks at the peer lists until they are complete.
    pub(super) async fn wait_connected(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut missing = Vec::new();
            for a in &self.agencies {
                let peers = within(self.timeout, "for the peer list", a.node.peers()).await??;
                for b in &self.agencies {
                    let linked = peers
                        .iter()
                        .any(|p| p.peer_id == b.peer_id && p.agent.is_some());
                    if b.peer_id != a.peer_id && !linked {
                        missing.push(format!("{} to {}", a.plan.name, b.plan.name));
                    }
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.fail(
                    0,
                    "every agency connects to the other two",
                    format!(
                        "after {} these links were still missing: {}",
                        human(self.timeout),
                        missing.join("; ")
                    ),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Every agency publishes its files. Returns when publishing began.
    pub(super) async fn publish_all(&mut self) -> Result<Instant> {
        self.say.blank();
        self.say.para(
            2,
            "Each agency publishes its two files. Publishing copies the file into the node's \
             store, takes its BLAKE3 hash as its content id, infers a data dictionary from a \
             CSV header (5.4), and signs a catalogue entry with the agency's key. Open and \
             shared entries are announced to the network; closed ones are not.",
        );
        let began = Instant::now();
        for (index, plan) in AGENCIES.iter().enumerate().take(self.agencies.len()) {
            self.say.line(&format!("  {} published:", plan.name));
            for shipped in plan.files {
                self.publish_one(index, shipped).await?;
            }
        }
        self.report.timings.publish_ms = ms(began.elapsed());
        Ok(began)
    }

    pub(super) async fn publish_one(&mut self, index: usize, shipped: &Shipped) -> Result<()> {
        let agency = &self.agencies[index];
        let path = agency.outbox.join(shipped.file);
        tokio::fs::write(&path, shipped.bytes)
            .await
            .with_context(|| format!("cannot write {}", path.display()))?;
        let request = PublishRequest {
            resolves: Vec::new(),
            dataset: None,
            path,
            title: None,
            spectrum: None,
            meta: Some(shipped.meta.to_string()),
            ..Default::default()
        };
        let node = agency.node.clone();
        let what = format!("for {} to publish {}", agency.plan.name, shipped.file);
        let published = within(self.timeout, &what, publish::publish(&node, request))
            .await?
            .with_context(|| format!("{} could not publish {}", agency.plan.name, shipped.file))?;
        let id = parse_id(&published.dataset)?;
        let entry =
            node.shared.store.latest_entry(&id)?.ok_or_else(|| {
                anyhow!("{} is missing from its publisher's catalogue", shipped.file)
            })?;
        let iso = &entry.entry.iso;

        let expected_hash = shipped.blake3_hex();
        let as_planned = published.spectrum == shipped.level
            && published.content_hash == expected_hash
            && published.bytes == shipped.bytes.len() as u64;
        self.expect(
            0,
            format!(
                "{} is published as {} with the shipped file's hash",
                shipped.file, shipped.level
            ),
            as_planned,
            format!(
                "published as {} with BLAKE3 {} and {} bytes",
                published.spectrum, published.content_hash, published.bytes
            ),
        );

        let reach = if published.spectrum == "closed" {
            "never announced: it stays in this agency's own catalogue".to_string()
        } else {
            format!("announced directly to {} peers", published.announced_to)
        };
        self.say.hanging(
            4,
            6,
            &format!("[{}] {}", published.spectrum, published.title),
        );
        self.say.para(
            6,
            &format!(
                "{} data (5.2); kind {}, concept {}, domain {}, insight {} (5.3); licence {}; \
                 {}, {} bytes, {} dictionary fields; {reach}.",
                iso.data_type,
                iso.kind,
                iso.concept,
                iso.domain,
                iso.insight,
                entry.entry.licence.as_deref().unwrap_or("not stated"),
                shipped.file,
                thousands(published.bytes),
                iso.dictionary.len(),
            ),
        );
        self.report.published.push(PublishedReport {
            agency: self.name(index).to_string(),
            dataset: published.dataset.clone(),
            title: published.title.clone(),
            spectrum: published.spectrum.clone(),
            file: shipped.file.to_string(),
            content_hash: published.content_hash.clone(),
            bytes: published.bytes,
            data_type: iso.data_type.to_string(),
            kind: iso.kind.to_string(),
            concept: iso.concept.to_string(),
            domain: iso.domain.to_string(),
            insight: iso.insight.to_string(),
            licence: entry.entry.licence.clone(),
            announced_to: published.announced_to,
        });
        Ok(())
    }
}
