//! Projections of a CSV dataset on some of its columns: what an owner serves when a grant
//! limits the requester to some fields (ISO 37156 8.2.2 c, data "adequate, relevant and not
//! excessive"; 7.1, least access).
//!
//! The projection is the CSV with only the chosen columns, header row included, in the
//! dataset's column order, written by the `csv` crate (fields quoted where they need it, rows
//! ended by `\n`). It is written to a temporary file while it is hashed, so the owner can state
//! its BLAKE3 and length in the transfer header before the first byte goes out. Memory stays
//! bounded: rows are read one at a time, and a row longer than
//! [`limits::MAX_PROJECTION_ROW_BYTES`] ends the projection with [`ProjectError::RowTooLong`]
//! before more of it is read.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::rc::Rc;

use cix_protocol::content::ContentHash;
use cix_protocol::limits;

/// The CSV reader's buffer: how far it may read ahead of the row it is parsing.
const READ_BUFFER: usize = 64 * 1024;

/// A projection written and hashed, ready to send.
#[derive(Debug)]
pub struct Projected {
    /// The projection's bytes; the file is removed when this is dropped.
    pub file: tempfile::NamedTempFile,
    /// BLAKE3 of the bytes.
    pub content: ContentHash,
    /// Their length.
    pub size: u64,
}

/// Why a projection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectError {
    /// A row is longer than [`limits::MAX_PROJECTION_ROW_BYTES`].
    #[error(
        "line {line} of the dataset starts a row longer than {max} bytes, the longest this node \
         projects (MAX_PROJECTION_ROW_BYTES)",
        max = limits::MAX_PROJECTION_ROW_BYTES
    )]
    RowTooLong {
        /// The line the row starts on (1 is the header).
        line: u64,
    },
    /// The stored CSV does not have the columns its data dictionary describes.
    #[error("the stored CSV has {found} columns, but its data dictionary describes {expected}")]
    Width {
        /// Columns in the file's header.
        found: usize,
        /// Fields in the dictionary.
        expected: usize,
    },
    /// A column asked for is beyond the file's columns.
    #[error("column {0} is beyond the stored CSV's columns")]
    Column(usize),
    /// The stored CSV does not parse.
    #[error("the stored CSV cannot be read: {0}")]
    Csv(String),
    /// Reading the blob or writing the projection failed.
    #[error("projection I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads through to `inner`, counting, and refuses to read on once more than the row limit
/// (plus the reader's read-ahead) lies between the last row boundary (`mark`) and what it has
/// handed out: a long row is refused before it is held in memory.
struct Bounded<R> {
    inner: R,
    handed: u64,
    mark: Rc<Cell<u64>>,
    tripped: Rc<Cell<bool>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let ahead = self.handed.saturating_sub(self.mark.get());
        if ahead > (limits::MAX_PROJECTION_ROW_BYTES + READ_BUFFER) as u64 {
            self.tripped.set(true);
            return Err(std::io::Error::other("row too long to project"));
        }
        let n = self.inner.read(buf)?;
        self.handed += n as u64;
        Ok(n)
    }
}

/// Writes through to `inner` while hashing and counting.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Projects the CSV at `blob` on `columns` (ascending column numbers) into a new temporary
/// file in `tmp_dir`. `width` is the number of fields the dataset's dictionary describes; the
/// file's header must have exactly as many columns. Blocking: run it off the async runtime.
///
/// # Errors
///
/// [`ProjectError`]: a row too long, a file that does not match its dictionary or does not
/// parse, or I/O.
pub fn project(
    blob: &Path,
    tmp_dir: &Path,
    columns: &[usize],
    width: usize,
) -> Result<Projected, ProjectError> {
    let mark = Rc::new(Cell::new(0u64));
    let tripped = Rc::new(Cell::new(false));
    let source = Bounded {
        inner: File::open(blob)?,
        handed: 0,
        mark: mark.clone(),
        tripped: tripped.clone(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .has_headers(false)
        .buffer_capacity(READ_BUFFER)
        .from_reader(source);
    let file = tempfile::Builder::new()
        .prefix(".projection.")
        .tempfile_in(tmp_dir)?;
    let sink = Hashing {
        inner: BufWriter::new(file.reopen()?),
        hasher: blake3::Hasher::new(),
        size: 0,
    };
    let mut writer = csv::WriterBuilder::new().from_writer(sink);
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    loop {
        let line = reader.position().line();
        let more = reader.read_byte_record(&mut record).map_err(|e| {
            if tripped.get() {
                ProjectError::RowTooLong { line }
            } else {
                ProjectError::Csv(e.to_string())
            }
        })?;
        if !more {
            break;
        }
        mark.set(reader.position().byte());
        if record.as_slice().len() > limits::MAX_PROJECTION_ROW_BYTES {
            return Err(ProjectError::RowTooLong { line });
        }
        if first {
            first = false;
            if record.len() != width {
                return Err(ProjectError::Width {
                    found: record.len(),
                    expected: width,
                });
            }
        }
        let mut out = csv::ByteRecord::with_capacity(record.as_slice().len(), columns.len());
        for &c in columns {
            out.push_field(record.get(c).ok_or(ProjectError::Column(c))?);
        }
        writer
            .write_byte_record(&out)
            .map_err(|e| ProjectError::Csv(e.to_string()))?;
    }
    if first {
        return Err(ProjectError::Csv("the file has no header row".into()));
    }
    let sink = writer
        .into_inner()
        .map_err(|e| ProjectError::Io(std::io::Error::other(e.to_string())))?;
    let Hashing {
        inner,
        hasher,
        size,
    } = sink;
    let done = inner
        .into_inner()
        .map_err(|e| ProjectError::Io(std::io::Error::other(e.to_string())))?;
    done.sync_all()?;
    Ok(Projected {
        file,
        content: hasher.finalize().into(),
        size,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(csv: &[u8], columns: &[usize], width: usize) -> Result<Vec<u8>, ProjectError> {
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(&blob, csv).unwrap();
        let p = project(&blob, dir.path(), columns, width)?;
        let bytes = std::fs::read(p.file.path()).unwrap();
        assert_eq!(p.size, bytes.len() as u64);
        assert_eq!(p.content, ContentHash::of(&bytes));
        Ok(bytes)
    }

    #[test]
    fn keeps_the_chosen_columns_in_order_and_quotes_as_needed() {
        // ISO 37156 8.2.2 c: only the permitted columns leave the owner.
        let csv = b"id,name,note (text),flow (m3/h)\n\
                    1,\"Smith, J\",secret,3.5\n\
                    2,\"say \"\"hi\"\"\",\"multi\nline\",4\n";
        let out = run(csv, &[1, 3], 4).unwrap();
        assert_eq!(
            out,
            b"name,flow (m3/h)\n\"Smith, J\",3.5\n\"say \"\"hi\"\"\",4\n".to_vec()
        );
    }

    #[test]
    fn projects_the_pressure_vector_as_specs_vectors_state_it() {
        // specs/vectors/wire.json, transfer-header-ok-projection.
        let v1 = b"main_id,time,pressure (kPa)\n\
                   WM-0412,2026-11-30T00:00:00Z,412\n\
                   WM-0412,2026-11-30T01:00:00Z,409\n";
        let out = run(v1, &[0, 2], 3).unwrap();
        assert_eq!(
            out,
            b"main_id,pressure (kPa)\nWM-0412,412\nWM-0412,409\n".to_vec()
        );
        assert_eq!(
            ContentHash::of(&out).to_hex(),
            "424e0ced36d050fa998e4c77ac45b6b19e60ee948a87dc3b0c78633011dae178"
        );
    }

    #[test]
    fn a_file_that_does_not_match_its_dictionary_or_a_row_too_long_is_refused() {
        assert!(matches!(
            run(b"a,b\n1,2\n", &[0], 3),
            Err(ProjectError::Width {
                found: 2,
                expected: 3
            })
        ));
        assert!(matches!(
            run(b"a,b\n1,2\n3\n", &[0], 2),
            Err(ProjectError::Csv(_))
        ));
        let mut long = b"a,b\n1,2\n".to_vec();
        long.extend(std::iter::repeat_n(
            b'x',
            limits::MAX_PROJECTION_ROW_BYTES + 10,
        ));
        long.extend(b",3\n4,5\n");
        assert!(matches!(
            run(&long, &[1], 2),
            Err(ProjectError::RowTooLong { line: 3 })
        ));
    }
}
