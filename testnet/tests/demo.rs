//! Runs `cix-testnet demo` in-process and checks its report against the files shipped in
//! `testnet/data/`, read from disk independently of the copies compiled into the demo.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cix_testnet::demo::{self, data, Options, Report};

/// A narration sink the test can read afterwards.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn shipped_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(file)
}

fn blake3_file(path: &Path) -> String {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    blake3::hash(&bytes).to_hex().to_string()
}

fn short_name(agency: &str) -> &'static str {
    data::AGENCIES
        .iter()
        .find(|a| a.name == agency)
        .map(|a| a.short)
        .unwrap()
}

async fn run_kept(dir: &Path, out: Captured) -> Report {
    let opts = Options {
        keep: Some(dir.to_path_buf()),
        timeout: Duration::from_secs(30),
        out: Box::new(out),
    };
    // The demo bounds each wait itself; this bounds the whole, so a hang fails the test.
    tokio::time::timeout(Duration::from_secs(180), demo::run(opts))
        .await
        .expect("the demo did not finish within 180 s")
        .unwrap_or_else(|e| panic!("the demo failed: {e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_delivers_verified_copies_and_refuses_what_it_must() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kept");
    let narration = Captured::default();
    let report = run_kept(&dir, narration.clone()).await;

    let failed: Vec<String> = report
        .failures()
        .map(|e| format!("{}: {}", e.name, e.detail))
        .collect();
    assert!(report.ok && failed.is_empty(), "checks failed: {failed:#?}");

    // Every fetched copy, as it lies on disk, hashes like the shipped file.
    assert_eq!(report.fetches.len(), 3, "{:#?}", report.fetches);
    let kept = dir.canonicalize().unwrap();
    for f in &report.fetches {
        let shipped = shipped_path(&f.file);
        let expected = blake3_file(&shipped);
        assert_eq!(f.content_hash, expected, "{}", f.title);
        let path = f
            .path
            .as_ref()
            .expect("a kept run names where each copy is");
        assert_eq!(blake3_file(path), expected, "copy of {} on disk", f.title);
        let size = std::fs::metadata(&shipped).unwrap().len();
        assert_eq!(f.bytes, size, "{}", f.title);
        assert!(
            path.starts_with(&kept),
            "{} is outside the kept directory",
            path.display()
        );
        assert!(f.verified);
        assert!(f.duration_ms >= 0.0);
    }
    let mut levels: Vec<&str> = report.fetches.iter().map(|f| f.spectrum.as_str()).collect();
    levels.sort_unstable();
    assert_eq!(levels, ["open", "shared-named", "shared-public"]);

    // The closed dataset was refused as closed, fetched by no one and listed by no other agency.
    let closed = report
        .refusals
        .iter()
        .find(|r| r.case == "closed")
        .expect("no closed refusal");
    assert_eq!(closed.spectrum, "closed");
    assert!(closed.message.contains("closed"), "{}", closed.message);
    assert!(report.fetches.iter().all(|f| f.dataset != closed.dataset));
    for d in &report.discovery {
        assert!(
            !d.lists_closed_dataset,
            "{} lists the closed dataset",
            d.agency
        );
        assert!(
            !d.entries_from_others.contains(&closed.title),
            "{}",
            d.agency
        );
    }
    let closed_copy = kept
        .join(short_name(&closed.requester))
        .join("downloads")
        .join(data::WATER_NETWORK.file);
    assert!(!closed_copy.exists());

    // The denied request was denied with the owner's reason, and the requester got nothing.
    let denied = report
        .requests
        .iter()
        .find(|r| r.outcome == "denied")
        .expect("no denied request");
    let reason = denied.reason.as_deref().expect("a denial carries a reason");
    let refusal = report
        .refusals
        .iter()
        .find(|r| r.case == "denied")
        .expect("the denied requester's fetch was not refused");
    assert_eq!(refusal.requester, denied.requester);
    assert_eq!(refusal.dataset, denied.dataset);
    assert!(refusal.message.contains(reason), "{}", refusal.message);
    assert!(report
        .fetches
        .iter()
        .all(|f| !(f.dataset == denied.dataset && f.requester == denied.requester)));
    let denied_copy = kept
        .join(short_name(&denied.requester))
        .join("downloads")
        .join(data::CARSHARE.file);
    assert!(!denied_copy.exists());

    // The approved request was refused while pending, then fetched by the same requester.
    let approved = report
        .requests
        .iter()
        .find(|r| r.outcome == "approved")
        .expect("no approval");
    assert_eq!(approved.first_answer, "pending");
    assert!(!approved.queue_id.is_empty());
    let pending = report
        .refusals
        .iter()
        .find(|r| r.case == "pending")
        .expect("no pending refusal");
    assert_eq!(
        (&pending.requester, &pending.dataset),
        (&approved.requester, &approved.dataset)
    );
    assert!(report
        .fetches
        .iter()
        .any(|f| f.dataset == approved.dataset && f.requester == approved.requester));
    assert_ne!(approved.requester, denied.requester);

    // Step 6 scraped every node's /metrics and parsed it (issue 9).
    let scrapes: Vec<_> = report
        .expectations
        .iter()
        .filter(|e| e.step == 6 && e.name.contains("/metrics"))
        .collect();
    assert_eq!(scrapes.len(), 3, "{scrapes:#?}");
    assert!(scrapes.iter().all(|e| e.held), "{scrapes:#?}");

    // Agencies carry their identities; timings are filled in.
    assert_eq!(report.agencies.len(), 3);
    for a in &report.agencies {
        assert!(a.did.starts_with("did:key:z6Mk"), "{}", a.did);
    }
    assert!(
        report.timings.discovery_ms > 0.0 && report.timings.total_ms >= report.timings.discovery_ms
    );

    // The JSON report names what the brief asks for.
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "agencies",
        "fetches",
        "refusals",
        "timings",
        "expectations",
        "ok",
    ] {
        assert!(json.get(key).is_some(), "JSON report lacks {key}");
    }
    assert!(json["fetches"][0]["content_hash"].is_string());
    assert!(json["fetches"][0]["bytes"].is_u64());

    // The narration walks through every step.
    let text = narration.text();
    for step in 1..=7 {
        assert!(
            text.contains(&format!("Step {step}.")),
            "narration lacks step {step}"
        );
    }
    for clause in ["5.5.2", "5.5.3", "5.5.4"] {
        assert!(
            text.contains(clause),
            "narration never names ISO 37156 {clause}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_an_impossible_timeout_stops_with_an_error() {
    let opts = Options {
        timeout: Duration::from_millis(1),
        ..Options::quiet()
    };
    let result = tokio::time::timeout(Duration::from_secs(60), demo::run(opts))
        .await
        .expect("the demo must give up on its own");
    let err = format!(
        "{:#}",
        result.expect_err("nothing can finish in a millisecond")
    );
    assert!(
        err.contains("gave up after") || err.contains("expectation failed"),
        "{err}"
    );
}
