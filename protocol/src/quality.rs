//! Quality feedback (ISO 37156 9.2 e, 9.3): a holder of a dataset tells its primary publisher,
//! in a signed report, what it found wrong (which field, which rows, what kind of problem, the
//! evidence); the publisher answers, also signed, and may publish a corrected version whose
//! entry names the reports it resolves (`details.resolves`), so every node sees the fix.
//! Entries also carry quality measures (`details.quality_measures`): completeness and validity
//! against the data dictionary, counted by the publisher at publish time.
//!
//! Reports and answers travel on `/cix/quality/1`, never on gossip: a report's evidence may
//! quote rows of shared data.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::catalogue::{DatasetId, EntryId};
use crate::dictionary::{self, Field};
use crate::envelope::{self, Envelope, EnvelopeError};
use crate::identity::{Did, Keypair};
use crate::limits::{
    MAX_FIELD_TEXT_BYTES, MAX_QUALITY_ANSWER_BYTES, MAX_QUALITY_EVIDENCE_BYTES,
    MAX_QUALITY_REPORT_BYTES, MAX_QUALITY_ROWS,
};

/// The request-response protocol of quality feedback.
pub const QUALITY_PROTOCOL: &str = "/cix/quality/1";
/// Envelope type of a report.
pub const REPORT_TAG: &str = "cix/quality@1";
/// Envelope type of an answer.
pub const ANSWER_TAG: &str = "cix/quality-answer@1";

/// What kind of problem a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Problem {
    /// Values missing.
    Missing,
    /// Values that break the dictionary (type, enum).
    Invalid,
    /// Values outside a plausible or declared range.
    OutOfRange,
    /// Values that contradict each other or another source.
    Inconsistent,
    /// Data no longer current.
    Outdated,
    /// Rows repeated.
    Duplicate,
    /// Anything else, said in the evidence.
    Other,
}

impl std::str::FromStr for Problem {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "missing" => Problem::Missing,
            "invalid" => Problem::Invalid,
            "out-of-range" => Problem::OutOfRange,
            "inconsistent" => Problem::Inconsistent,
            "outdated" => Problem::Outdated,
            "duplicate" => Problem::Duplicate,
            "other" => Problem::Other,
            _ => {
                return Err(format!(
                    "{s:?} is not a kind of problem: missing, invalid, out-of-range, \
                     inconsistent, outdated, duplicate or other"
                ))
            }
        })
    }
}

/// A quality report, as its sender signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityReport {
    /// The sender, a holder of the data.
    pub iss: Did,
    /// The dataset.
    pub dataset: DatasetId,
    /// The version looked at.
    pub entry: EntryId,
    /// The field (data dictionary name), if the problem is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The data rows concerned (1 for the first row after the header).
    #[serde(default)]
    pub rows: Vec<u64>,
    /// The kind of problem.
    pub kind: Problem,
    /// What was seen.
    pub evidence: String,
    /// When, Unix seconds.
    pub issued: i64,
}

/// How a publisher answers a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not answered yet (local state only, never signed).
    Open,
    /// The problem is acknowledged; a fix is to come.
    Accepted,
    /// The publisher disagrees, saying why.
    Rejected,
    /// A corrected version resolves it.
    Fixed,
}

impl Status {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Accepted => "accepted",
            Status::Rejected => "rejected",
            Status::Fixed => "fixed",
        }
    }
}

/// A publisher's answer to a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityAnswer {
    /// The publisher.
    pub iss: Did,
    /// The report's id (BLAKE3 of its envelope).
    pub report: ByteBuf,
    /// The verdict (never `open`).
    pub status: Status,
    /// What the publisher says.
    pub text: String,
    /// The corrected version, for `fixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<EntryId>,
    /// When, Unix seconds.
    pub at: i64,
}

/// Why a report or answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QualityError {
    /// Not a well-formed, correctly signed envelope of the right type.
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// A field is out of bounds.
    #[error("{0}")]
    Field(String),
}

/// Something signed on `/cix/quality/1`.
pub trait Signable: Serialize + serde::de::DeserializeOwned + Clone {
    /// Envelope type.
    const TAG: &'static str;
    /// Largest envelope.
    const MAX: usize;
    /// The signer.
    fn iss(&self) -> Did;
    /// Bounds a signature cannot vouch for.
    ///
    /// # Errors
    ///
    /// A message naming the field.
    fn check(&self) -> Result<(), String>;
}

fn time_ok(t: i64) -> bool {
    (0..=crate::ucan::TIMESTAMP_LIMIT).contains(&t)
}

impl Signable for QualityReport {
    const TAG: &'static str = REPORT_TAG;
    const MAX: usize = MAX_QUALITY_REPORT_BYTES;
    fn iss(&self) -> Did {
        self.iss
    }
    fn check(&self) -> Result<(), String> {
        if self
            .field
            .as_ref()
            .is_some_and(|f| f.is_empty() || f.len() > MAX_FIELD_TEXT_BYTES)
        {
            return Err(format!("field must be 1 to {MAX_FIELD_TEXT_BYTES} bytes"));
        }
        if self.rows.len() > MAX_QUALITY_ROWS {
            return Err(format!("at most {MAX_QUALITY_ROWS} rows"));
        }
        if self.evidence.trim().is_empty() || self.evidence.len() > MAX_QUALITY_EVIDENCE_BYTES {
            return Err(format!(
                "evidence must be 1 to {MAX_QUALITY_EVIDENCE_BYTES} bytes"
            ));
        }
        if !time_ok(self.issued) {
            return Err(format!("time {} is out of range", self.issued));
        }
        Ok(())
    }
}

impl Signable for QualityAnswer {
    const TAG: &'static str = ANSWER_TAG;
    const MAX: usize = MAX_QUALITY_ANSWER_BYTES;
    fn iss(&self) -> Did {
        self.iss
    }
    fn check(&self) -> Result<(), String> {
        if self.report.len() != 32 {
            return Err("report must be a 32-byte id".into());
        }
        if self.status == Status::Open {
            return Err("an answer cannot leave the report open".into());
        }
        if self.text.len() > MAX_QUALITY_EVIDENCE_BYTES {
            return Err(format!(
                "text is longer than {MAX_QUALITY_EVIDENCE_BYTES} bytes"
            ));
        }
        if (self.status == Status::Fixed) != self.version.is_some() {
            return Err("a version is named exactly when the report is fixed".into());
        }
        if !time_ok(self.at) {
            return Err(format!("time {} is out of range", self.at));
        }
        Ok(())
    }
}

/// A report or answer as received: checked, with its bytes and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<T> {
    /// What it says.
    pub value: T,
    /// The envelope bytes.
    pub bytes: Vec<u8>,
    /// BLAKE3 of `bytes`.
    pub id: [u8; 32],
}

impl<T: Signable> Signed<T> {
    /// Signs `value` with `key`, which must be its issuer's.
    ///
    /// # Errors
    ///
    /// Out-of-bounds fields, a key that is not the issuer's, or an encoding failure.
    pub fn seal(value: &T, key: &Keypair) -> Result<Self, QualityError> {
        value.check().map_err(QualityError::Field)?;
        if key.did() != value.iss() {
            return Err(QualityError::Field(
                "the signing key is not the issuer's".into(),
            ));
        }
        let bytes = envelope::seal(key, T::TAG, value).map_err(|e| QualityError::Field(e.0))?;
        Self::decode(&bytes)
    }

    /// Decodes strictly, checks the bounds and the issuer's signature.
    ///
    /// # Errors
    ///
    /// [`QualityError`] naming what was wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, QualityError> {
        let env = Envelope::decode(bytes, T::MAX)?;
        env.expect_tag(T::TAG)?;
        let value: T = env
            .payload()
            .map_err(|e| QualityError::Field(format!("payload: {e}")))?;
        value.check().map_err(QualityError::Field)?;
        env.verify(&value.iss().public_key())?;
        Ok(Self {
            value,
            bytes: bytes.to_vec(),
            id: *blake3::hash(bytes).as_bytes(),
        })
    }
}

/// A request on `/cix/quality/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum QualityRequest {
    /// A holder's report, to the publisher.
    Report {
        /// The signed report.
        report: ByteBuf,
    },
    /// The publisher's answer, to the reporter.
    Answer {
        /// The signed answer.
        answer: ByteBuf,
    },
}

/// The answer on `/cix/quality/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum QualityResponse {
    /// Kept.
    Noted,
    /// Not kept, and why.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Quality measures of a CSV version (ISO 37156 9.3), counted by its publisher; integers, as
/// signed payloads carry no floats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measures {
    /// Data rows.
    pub rows: u64,
    /// Cells (rows times fields).
    pub cells: u64,
    /// Cells with a missing value.
    pub missing_cells: u64,
    /// Rows that break the data dictionary.
    pub invalid_rows: u64,
}

impl Measures {
    /// Cells present, per thousand (1000 for an empty table).
    pub fn completeness_permille(&self) -> u64 {
        permille(self.cells - self.missing_cells.min(self.cells), self.cells)
    }

    /// Rows that keep to the dictionary, per thousand.
    pub fn validity_permille(&self) -> u64 {
        permille(self.rows - self.invalid_rows.min(self.rows), self.rows)
    }

    /// Checks that the counts agree.
    ///
    /// # Errors
    ///
    /// A message naming the count.
    pub fn check(&self) -> Result<(), String> {
        if self.missing_cells > self.cells {
            return Err("missing_cells exceeds cells".into());
        }
        if self.invalid_rows > self.rows {
            return Err("invalid_rows exceeds rows".into());
        }
        Ok(())
    }
}

fn permille(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        1000
    } else {
        u64::try_from(u128::from(part) * 1000 / u128::from(whole)).unwrap_or(1000)
    }
}

/// Counts rows, cells and missing cells of a CSV; `invalid_rows` comes from the dictionary
/// validation ([`dictionary::validate_csv`]).
///
/// # Errors
///
/// A malformed CSV.
pub fn measure_csv<R: std::io::Read>(
    r: R,
    fields: &[Field],
    invalid_rows: u64,
) -> Result<Measures, csv::Error> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(r);
    let mut m = Measures {
        invalid_rows,
        ..Measures::default()
    };
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record)? {
        if record.iter().all(str::is_empty) {
            continue;
        }
        m.rows += 1;
        m.cells += fields.len() as u64;
        for i in 0..fields.len() {
            if record.get(i).is_none_or(dictionary::is_missing) {
                m.missing_cells += 1;
            }
        }
    }
    m.invalid_rows = m.invalid_rows.min(m.rows);
    Ok(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dictionary::FieldType;

    fn report(key: &Keypair) -> QualityReport {
        QualityReport {
            iss: key.did(),
            dataset: DatasetId([7; 16]),
            entry: EntryId([9; 32]),
            field: Some("pressure".into()),
            rows: vec![3, 4],
            kind: Problem::OutOfRange,
            evidence: "negative pressure at rows 3 and 4".into(),
            issued: 1_700_000_000,
        }
    }

    #[test]
    fn iso_37156_9_2_e_a_report_is_signed_by_its_sender_and_checked_on_receipt() {
        let key = Keypair::generate();
        let s = Signed::seal(&report(&key), &key).unwrap();
        let back = Signed::<QualityReport>::decode(&s.bytes).unwrap();
        assert_eq!(back.value, report(&key));
        // Another key cannot sign for the sender.
        let other = Keypair::generate();
        assert!(Signed::seal(&report(&key), &other).is_err());
        // A flipped byte breaks the signature.
        let mut bad = s.bytes.clone();
        let n = bad.len() - 1;
        bad[n] ^= 1;
        assert!(Signed::<QualityReport>::decode(&bad).is_err());
        // Bounds.
        let mut r = report(&key);
        r.rows = vec![1; MAX_QUALITY_ROWS + 1];
        assert!(Signed::seal(&r, &key).is_err());
        let mut r = report(&key);
        r.evidence = " ".into();
        assert!(Signed::seal(&r, &key).is_err());
        // An answer is not a report.
        assert!(Signed::<QualityAnswer>::decode(&s.bytes).is_err());
    }

    #[test]
    fn an_answer_names_a_version_exactly_when_it_says_fixed() {
        let key = Keypair::generate();
        let mut a = QualityAnswer {
            iss: key.did(),
            report: ByteBuf::from(vec![1; 32]),
            status: Status::Fixed,
            text: "corrected".into(),
            version: None,
            at: 1,
        };
        assert!(Signed::seal(&a, &key).is_err());
        a.version = Some(EntryId([2; 32]));
        assert!(Signed::seal(&a, &key).is_ok());
        a.status = Status::Open;
        assert!(Signed::seal(&a, &key).is_err());
    }

    #[test]
    fn iso_37156_9_3_measures_count_missing_cells_and_invalid_rows() {
        let fields = vec![
            Field::new("a", FieldType::Integer),
            Field::new("b", FieldType::String),
        ];
        let m = measure_csv("a,b\n1,x\n,y\n3,\n4,z\n".as_bytes(), &fields, 1).unwrap();
        assert_eq!(
            (m.rows, m.cells, m.missing_cells, m.invalid_rows),
            (4, 8, 2, 1)
        );
        assert_eq!(m.completeness_permille(), 750);
        assert_eq!(m.validity_permille(), 750);
    }
}
