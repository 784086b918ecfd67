//! Step 7: what happened, in a few lines.

use std::time::Duration;

use super::{human, thousands, Demo};

impl Demo {
    pub(super) fn summary(&mut self) {
        self.say.step(7, "Summary");
        self.say.line("  Agencies and their identities:");
        let agencies: Vec<String> = self
            .report
            .agencies
            .iter()
            .map(|a| format!("    {:<30} {}", a.name, a.did))
            .collect();
        for line in agencies {
            self.say.line(&line);
        }

        self.say
            .line("  Verified copies (BLAKE3 of the copy = BLAKE3 of the shipped file):");
        let fetches: Vec<String> = self
            .report
            .fetches
            .iter()
            .map(|f| {
                format!(
                    "[{}] \"{}\" from {} to {}: {} bytes in {}, BLAKE3 {}{}",
                    f.spectrum,
                    f.title,
                    f.owner,
                    f.requester,
                    thousands(f.bytes),
                    human(Duration::from_secs_f64(f.duration_ms / 1000.0)),
                    f.content_hash,
                    if f.verified { "" } else { " (MISMATCH)" }
                )
            })
            .collect();
        for f in fetches {
            self.say.hanging(4, 6, &f);
        }

        self.say.line("  Refused, as they should be:");
        let refusals: Vec<String> = self
            .report
            .refusals
            .iter()
            .map(|r| {
                let when = match r.case.as_str() {
                    "pending" => "before approval",
                    "denied" => "after the owner denied it",
                    _ => "because it is closed",
                };
                format!(
                    "[{}] \"{}\" for {}, {when}",
                    r.spectrum, r.title, r.requester
                )
            })
            .collect();
        for r in refusals {
            self.say.hanging(4, 6, &r);
        }

        let t = &self.report.timings;
        let timing = format!(
            "Timings: the nodes started in {:.0} ms and were connected {:.0} ms later; every \
             catalogue was complete {:.0} ms after publishing began; the whole tour took {:.2} s.",
            t.start_ms,
            t.connect_ms,
            t.discovery_ms,
            t.total_ms / 1000.0
        );
        self.say.para(2, &timing);

        let total = self.report.expectations.len();
        let failed: Vec<String> = self
            .report
            .failures()
            .map(|e| format!("step {}: {}: {}", e.step, e.name, e.detail))
            .collect();
        if failed.is_empty() {
            self.say.para(2, &format!("All {total} checks held."));
        } else {
            self.say
                .para(2, &format!("{} of {total} checks FAILED:", failed.len()));
            for f in failed {
                self.say.hanging(4, 6, &f);
            }
        }
        if let Some(dir) = self.report.kept.clone() {
            self.say.para(
                2,
                &format!(
                    "Everything is kept in {}: for each agency its node home (key, store, \
                     blobs), the files it published (outbox/) and the copies it fetched \
                     (downloads/).",
                    dir.display()
                ),
            );
        }
    }
}
