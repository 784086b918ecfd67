//! `cix privacy check FILE --dictionary META`: the re-identification guard (ISO 37156 7.4.2.5)
//! run on a CSV file before it is published, without a node. The dictionary is inferred from
//! the file, then the metadata file's `[fields.NAME]` tables apply, as `cix publish --meta`
//! does; `privacy = "quasi-identifier"` or `"sensitive"` marks the columns the guard counts.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use cix_node::publish::{apply_overrides, Meta};
use cix_protocol::dictionary;
use cix_protocol::reident::{self, Thresholds};
use serde_json::json;

use crate::output::Out;

/// Largest metadata file read.
const MAX_META_BYTES: u64 = 1024 * 1024;

/// What `cix privacy check` was given.
pub(crate) struct CheckArgs {
    pub(crate) file: PathBuf,
    pub(crate) dictionary: PathBuf,
    pub(crate) k: Option<u32>,
    pub(crate) l: Option<u32>,
    pub(crate) max_suppressed_permille: Option<u32>,
    pub(crate) apply: Option<PathBuf>,
    pub(crate) thresholds: Thresholds,
}

fn open(p: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    Ok(std::io::BufReader::new(
        std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
    ))
}

pub(crate) fn check(a: CheckArgs, out: &mut Out) -> Result<()> {
    let len = std::fs::metadata(&a.dictionary)
        .with_context(|| format!("cannot read {}", a.dictionary.display()))?
        .len();
    if len > MAX_META_BYTES {
        bail!(
            "{} is {len} bytes: a metadata file is at most {MAX_META_BYTES}",
            a.dictionary.display()
        );
    }
    let text = std::fs::read_to_string(&a.dictionary)
        .with_context(|| format!("cannot read {}", a.dictionary.display()))?;
    let meta: Meta = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid metadata file", a.dictionary.display()))?;
    let inferred = dictionary::infer_csv(open(&a.file)?)
        .with_context(|| format!("cannot infer the data dictionary of {}", a.file.display()))?;
    let fields = apply_overrides(inferred, &meta)?;
    let th = Thresholds {
        k: a.k.unwrap_or(a.thresholds.k),
        l: a.l.unwrap_or(a.thresholds.l),
        max_suppressed_permille: a
            .max_suppressed_permille
            .unwrap_or(a.thresholds.max_suppressed_permille),
    };
    th.check()
        .map_err(|e| anyhow!("--k/--l/--max-suppressed-permille: {e}"))?;
    let Some(report) = reident::check_csv(open(&a.file)?, &fields, &th)? else {
        bail!(
            "{} marks no quasi-identifier: set privacy = \"quasi-identifier\" in [fields.NAME] \
             tables of the metadata file",
            a.dictionary.display()
        );
    };
    let mut applied = None;
    if let (Some(target), Some(s)) = (&a.apply, &report.suggestion) {
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        let done = reident::apply_csv(open(&a.file)?, tmp.as_file_mut(), &fields, s, &th)?;
        tmp.persist(target)
            .with_context(|| format!("cannot write {}", target.display()))?;
        applied = Some(done);
    }
    let text = match &applied {
        Some(d) => format!(
            "{}\nsuggestion applied: {} rows written to {}, {} suppressed",
            report.summary(),
            d.kept,
            a.apply.as_deref().unwrap_or(Path::new("-")).display(),
            d.suppressed
        ),
        None => report.summary(),
    };
    out.message(&json!({ "report": report, "applied": applied }), &text)?;
    if report.passes() || applied.is_some() {
        Ok(())
    } else {
        bail!(
            "the table would be refused (see the report above; --apply FILE writes the suggestion)"
        )
    }
}
