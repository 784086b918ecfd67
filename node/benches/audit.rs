//! Audit log appends (ISO 37156 8.3.4): records per second with group-committed flushes,
//! against the two baselines measured in the same run.
//!
//! ```text
//! cargo bench --workspace --bench audit
//! ```
//!
//! - **grouped**: [`AuditLog::append`] from many concurrent tasks; each returns only once a
//!   flush covers its record, and one flush covers every record written before it started.
//! - **per-record flush**: [`AuditLog::append_sync`], one flush per record, the naive way.
//! - **sign only**: sealing the same records without storing them, the CPU floor.
//! - **raw sled**: inserting the same bytes into a sled tree with one flush per 256 inserts,
//!   what the store costs without signing.
//!
//! A plain `main` (`harness = false`) so that `cargo test` never runs it.

use std::time::Instant;

use cix_node::audit::{AuditEvent, AuditLog};
use cix_node::store::Store;
use cix_protocol::audit::{AuditKind, AuditRecord, GENESIS};
use cix_protocol::catalogue::DatasetId;
use cix_protocol::content::ContentHash;
use cix_protocol::identity::Keypair;

const GROUPED: u64 = 40_000;
const TASKS: u64 = 256;
const PER_RECORD: u64 = 300;
const TARGET: f64 = 20_000.0;

fn event(i: u64, peer: &Keypair) -> AuditEvent {
    AuditEvent::new(AuditKind::TransferEnd)
        .dataset(DatasetId([(i % 251) as u8; 16]))
        .peer(peer.did())
        .purpose("leak detection on the eastern district mains")
        .basis("municipal water act, art. 12")
        .terms_text("CC-BY-4.0")
        .token("bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yhm")
        .bytes(1_000_000 + i)
        .content(ContentHash::of(&i.to_be_bytes()))
        .detail("served")
}

fn rate(n: u64, secs: f64) -> f64 {
    n as f64 / secs
}

fn main() -> anyhow::Result<()> {
    let peer = Keypair::generate();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    // Grouped appends.
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("grouped"), 64 << 20)?;
    let log = AuditLog::open(&store, Keypair::generate())?;
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let log = log.clone();
            let peer = Keypair::from_seed(peer.seed());
            tasks.push(tokio::spawn(async move {
                let mut i = t;
                while i < GROUPED {
                    log.append(event(i, &peer)).await?;
                    i += TASKS;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        anyhow::Ok(())
    })?;
    let grouped = rate(GROUPED, started.elapsed().as_secs_f64());
    assert_eq!(log.len(), GROUPED);

    // One flush per record.
    let store2 = Store::open(&dir.path().join("single"), 64 << 20)?;
    let log2 = AuditLog::open(&store2, Keypair::generate())?;
    let started = Instant::now();
    for i in 0..PER_RECORD {
        log2.append_sync(event(i, &peer))?;
    }
    let single = rate(PER_RECORD, started.elapsed().as_secs_f64());

    // Signing alone.
    let key = Keypair::generate();
    let started = Instant::now();
    let mut sealed = Vec::with_capacity(GROUPED as usize);
    for i in 0..GROUPED {
        let e = event(i, &peer);
        let r = AuditRecord {
            iss: key.did(),
            seq: i + 1,
            at: 1_780_000_000,
            prev: GENESIS,
            kind: AuditKind::TransferEnd,
            dataset: e.dataset,
            peer: e.peer,
            purpose: e.purpose,
            basis: e.basis,
            terms: e.terms,
            token: e.token,
            bytes: e.bytes,
            content: e.content,
            reason: None,
            detail: e.detail,
        };
        sealed.push(r.seal(&key).map_err(|e| anyhow::anyhow!("{e}"))?.bytes);
    }
    let sign_only = rate(GROUPED, started.elapsed().as_secs_f64());

    // Raw sled inserts of the same bytes, flushed every 256.
    let db = sled::Config::new()
        .path(dir.path().join("raw"))
        .cache_capacity(64 << 20)
        .open()?;
    let tree = db.open_tree("audit")?;
    let started = Instant::now();
    for (i, bytes) in sealed.iter().enumerate() {
        tree.insert((i as u64).to_be_bytes(), bytes.as_slice())?;
        if i % 256 == 255 {
            db.flush()?;
        }
    }
    db.flush()?;
    let raw = rate(GROUPED, started.elapsed().as_secs_f64());

    println!("audit append, {} bytes per record", sealed[0].len());
    println!("  grouped flushes ({TASKS} tasks):   {grouped:>10.0} records/s");
    println!("  one flush per record:        {single:>10.0} records/s");
    println!("  baseline, sign only:         {sign_only:>10.0} records/s");
    println!("  baseline, raw sled + flush/256: {raw:>7.0} records/s");
    println!(
        "  grouped / per-record = {:.1}x; grouped / sign-only = {:.2}; target {TARGET:.0}/s: {}",
        grouped / single,
        grouped / sign_only,
        if grouped >= TARGET { "met" } else { "NOT met" }
    );
    Ok(())
}
