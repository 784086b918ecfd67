//! Fetches the tour expects to succeed, verified against the shipped bytes, and fetches it
//! expects to be refused, with the message the requester saw.

use anyhow::{Context, Result};
use cix_node::transfer;
use tokio::time::Instant;

use super::report::{ms, FetchReport, Refusal};
use super::{human, thousands, within, Dataset, Demo};

impl Demo {
    /// Fetches a dataset that must arrive, and checks the copy against the shipped bytes.
    pub(super) async fn fetch_verified(
        &mut self,
        step: u8,
        requester: usize,
        ds: &Dataset,
    ) -> Result<()> {
        let out = self.agencies[requester].downloads.join(ds.shipped.file);
        let node = self.node(requester);
        let check = format!(
            "{} fetches \"{}\" and its copy equals the shipped file",
            self.name(requester),
            ds.title
        );
        let began = Instant::now();
        let id = ds.id_text();
        let result = within(
            self.timeout,
            "for a fetch",
            transfer::fetch(&node, &id, &out, |_, _| {}),
        )
        .await?;
        let took = began.elapsed();
        let fetched = match result {
            Ok(f) => f,
            Err(e) => return Err(self.fail(step, check, format!("the fetch failed: {e:#}"))),
        };

        // Hash what is on disk ourselves rather than trust the node's word for it.
        let written = tokio::fs::read(&out)
            .await
            .with_context(|| format!("cannot read the fetched copy {}", out.display()))?;
        let actual = blake3::hash(&written).to_hex().to_string();
        let shipped = ds.shipped.blake3_hex();
        let verified = actual == shipped
            && fetched.content_hash == shipped
            && written.len() as u64 == fetched.bytes;
        self.expect(
            step,
            check,
            verified,
            format!(
                "{} bytes, BLAKE3 {actual} (shipped file: {shipped}; node reported {})",
                written.len(),
                fetched.content_hash
            ),
        );
        self.say.para(
            2,
            &format!(
                "Received {} bytes in {} and wrote them to {}/downloads/{}.",
                thousands(fetched.bytes),
                human(took),
                self.agencies[requester].plan.short,
                ds.shipped.file
            ),
        );
        self.say
            .line(&format!("    BLAKE3 of the received file:  {actual}"));
        self.say
            .line(&format!("    BLAKE3 of the file cix ships: {shipped}"));
        let first = self.report.fetches.is_empty();
        let verdict = match (verified, first) {
            (true, true) => {
                "Identical. The node had also checked the bytes against the hash in the \
                 owner's signed catalogue entry before it wrote the file (integrity, 3.2.4; \
                 authenticity, 7.3.2)."
            }
            (true, false) => "Identical.",
            (false, _) => "THEY DIFFER: the copy is not the shipped file.",
        };
        self.say.para(2, verdict);
        self.report.fetches.push(FetchReport {
            step,
            dataset: id,
            title: ds.title.clone(),
            spectrum: ds.level.clone(),
            owner: self.name(ds.owner).to_string(),
            requester: self.name(requester).to_string(),
            file: ds.shipped.file.to_string(),
            path: Some(out),
            bytes: written.len() as u64,
            content_hash: actual,
            shipped_hash: shipped,
            verified,
            duration_ms: ms(took),
        });
        Ok(())
    }

    /// Fetches a dataset that must be refused; `reason_ok` judges the message. The refusal is
    /// recorded either way; a fetch that succeeds is a failed expectation.
    pub(super) async fn fetch_refused(
        &mut self,
        step: u8,
        case: &str,
        requester: usize,
        ds: &Dataset,
        check: &str,
        reason_ok: impl Fn(&str) -> bool,
    ) -> Result<()> {
        let out = self.agencies[requester].downloads.join(ds.shipped.file);
        let node = self.node(requester);
        let id = ds.id_text();
        let result = within(
            self.timeout,
            "for a fetch",
            transfer::fetch(&node, &id, &out, |_, _| {}),
        )
        .await?;
        let message = match result {
            Ok(f) => {
                let detail = format!("the fetch succeeded and wrote {} bytes", f.bytes);
                return Err(self.fail(step, check, detail));
            }
            Err(e) => format!("{e:#}"),
        };
        let nothing_written = !out.exists();
        self.expect(
            step,
            check,
            reason_ok(&message) && nothing_written,
            format!("refused: {message}; file written: {}", !nothing_written),
        );
        self.report.refusals.push(Refusal {
            step,
            case: case.to_string(),
            dataset: id,
            title: ds.title.clone(),
            spectrum: ds.level.clone(),
            owner: self.name(ds.owner).to_string(),
            requester: self.name(requester).to_string(),
            message,
        });
        Ok(())
    }

    pub(super) fn say_last_refusal(&mut self) {
        if let Some(r) = self.report.refusals.last() {
            let text = format!("\"{}\"", r.message);
            self.say.para(6, &text);
        }
    }
}
