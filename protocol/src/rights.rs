//! Individuals' requests and complaints (ISO 37156 8.2.2, 8.3.5, 8.3.6).
//!
//! A person asks the agency that holds data about them for access, rectification, erasure,
//! objection or a review of automated processing (8.3.5), or complains (8.3.6). The agency
//! records the request as a signed [`Case`] naming the datasets it concerns and sends it to
//! every agency that received those datasets; each answers with a signed [`Answer`]. A
//! complaint may then be appealed ([`Appeal`]) and the appeal decided ([`Decision`]), both
//! signed by the agency that recorded the complaint and sent to the agencies concerned.
//!
//! Cases travel on `/cix/rights/1` only, never on gossip. The person is never named: a case
//! carries at most [`subject_hash`] of the opaque reference the recording agency keeps for them.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::catalogue::DatasetId;
use crate::identity::Did;
use crate::limits::{
    MAX_RIGHTS_CASE_BYTES, MAX_RIGHTS_DATASETS, MAX_RIGHTS_REPLY_BYTES, MAX_RIGHTS_TEXT_BYTES,
};
use crate::quality::Signable;

/// The request-response protocol of individuals' requests and complaints.
pub const RIGHTS_PROTOCOL: &str = "/cix/rights/1";
/// Envelope type of a case.
pub const CASE_TAG: &str = "cix/rights@1";
/// Envelope type of a recipient's answer.
pub const ANSWER_TAG: &str = "cix/rights-answer@1";
/// Envelope type of an appeal.
pub const APPEAL_TAG: &str = "cix/rights-appeal@1";
/// Envelope type of the decision on an appeal.
pub const DECISION_TAG: &str = "cix/rights-decision@1";
/// Length of a case's random nonce.
pub const NONCE_BYTES: usize = 16;

/// The key-derivation context of [`subject_hash`].
const SUBJECT_CONTEXT: &str = "cix 2026 rights subject reference v1";

/// What a person asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A copy of, or information about, the data held about them (8.3.5).
    Access,
    /// Correction of data about them (8.3.5).
    Rectification,
    /// Deletion of data about them (8.3.5).
    Erasure,
    /// They object to a processing (8.3.5).
    Objection,
    /// A human review of a decision taken by automated processing (8.3.5).
    AutomatedReview,
    /// A complaint (8.3.6), which may be appealed.
    Complaint,
}

impl Kind {
    /// The name on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Rectification => "rectification",
            Kind::Erasure => "erasure",
            Kind::Objection => "objection",
            Kind::AutomatedReview => "automated-review",
            Kind::Complaint => "complaint",
        }
    }

    /// Whether this is a complaint (8.3.6) rather than a request (8.3.5).
    pub fn is_complaint(self) -> bool {
        self == Kind::Complaint
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "access" => Kind::Access,
            "rectification" => Kind::Rectification,
            "erasure" => Kind::Erasure,
            "objection" => Kind::Objection,
            "automated-review" | "review" => Kind::AutomatedReview,
            "complaint" => Kind::Complaint,
            _ => {
                return Err(format!(
                    "{s:?} is not a kind of request: access, rectification, erasure, objection \
                     or automated-review"
                ))
            }
        })
    }
}

/// How a recipient answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Done as asked.
    Done,
    /// Refused, saying why.
    Refused,
    /// Done in part, saying what was not.
    Partly,
}

impl Outcome {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Refused => "refused",
            Outcome::Partly => "partly",
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "done" => Outcome::Done,
            "refused" => Outcome::Refused,
            "partly" => Outcome::Partly,
            _ => return Err(format!("{s:?} is not an outcome: done, refused or partly")),
        })
    }
}

/// The decision on an appeal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The complaint is upheld: the agencies concerned must act on it.
    Upheld,
    /// The complaint is dismissed.
    Dismissed,
    /// Upheld in part.
    Partly,
}

impl Verdict {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Upheld => "upheld",
            Verdict::Dismissed => "dismissed",
            Verdict::Partly => "partly",
        }
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "upheld" => Verdict::Upheld,
            "dismissed" => Verdict::Dismissed,
            "partly" => Verdict::Partly,
            _ => {
                return Err(format!(
                    "{s:?} is not a decision: upheld, dismissed or partly"
                ))
            }
        })
    }
}

/// The pseudonym of a person's reference that a case may carry: BLAKE3 in key-derivation mode
/// over the reference, trimmed. The reference itself never leaves the agency that recorded it.
pub fn subject_hash(reference: &str) -> [u8; 32] {
    blake3::derive_key(SUBJECT_CONTEXT, reference.trim().as_bytes())
}

/// An individual's request or complaint, as the recording agency signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The agency that recorded it.
    pub iss: Did,
    /// Random, so that two cases alike in every field still differ.
    pub nonce: ByteBuf,
    /// What is asked.
    pub kind: Kind,
    /// The datasets it concerns.
    pub datasets: Vec<DatasetId>,
    /// [`subject_hash`] of the person's reference, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<ByteBuf>,
    /// What is asked, in words that do not identify the person.
    #[serde(default)]
    pub summary: String,
    /// When it was recorded, Unix seconds.
    pub issued: i64,
    /// When every answer is due, Unix seconds.
    pub due: i64,
}

/// A recipient's answer to a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The answering agency.
    pub iss: Did,
    /// The case's id (BLAKE3 of its envelope).
    pub case: ByteBuf,
    /// What it did.
    pub outcome: Outcome,
    /// What it says.
    pub text: String,
    /// When, Unix seconds.
    pub at: i64,
}

/// An appeal against the handling of a complaint, signed by the agency that recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Appeal {
    /// The agency that recorded the complaint.
    pub iss: Did,
    /// The complaint's id.
    pub case: ByteBuf,
    /// The grounds.
    pub grounds: String,
    /// When, Unix seconds.
    pub at: i64,
    /// When the decision is due, Unix seconds.
    pub due: i64,
}

/// The decision on an appeal, signed by the agency that recorded the complaint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The agency that recorded the complaint.
    pub iss: Did,
    /// The complaint's id.
    pub case: ByteBuf,
    /// The verdict.
    pub verdict: Verdict,
    /// Its reasons.
    pub text: String,
    /// When, Unix seconds.
    pub at: i64,
}

fn time_ok(t: i64) -> bool {
    (0..=crate::ucan::TIMESTAMP_LIMIT).contains(&t)
}

fn text_ok(what: &str, t: &str, required: bool) -> Result<(), String> {
    if t.len() > MAX_RIGHTS_TEXT_BYTES {
        return Err(format!(
            "{what} is longer than {MAX_RIGHTS_TEXT_BYTES} bytes"
        ));
    }
    if required && t.trim().is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    Ok(())
}

fn case_id_ok(id: &ByteBuf) -> Result<(), String> {
    if id.len() == 32 {
        Ok(())
    } else {
        Err("case must be a 32-byte id".into())
    }
}

impl Signable for Case {
    const TAG: &'static str = CASE_TAG;
    const MAX: usize = MAX_RIGHTS_CASE_BYTES;
    fn iss(&self) -> Did {
        self.iss
    }
    fn check(&self) -> Result<(), String> {
        if self.nonce.len() != NONCE_BYTES {
            return Err(format!("nonce must be {NONCE_BYTES} bytes"));
        }
        if self.datasets.is_empty() || self.datasets.len() > MAX_RIGHTS_DATASETS {
            return Err(format!("a case names 1 to {MAX_RIGHTS_DATASETS} datasets"));
        }
        let mut seen = self.datasets.clone();
        seen.sort_by_key(|d| d.0);
        seen.dedup();
        if seen.len() != self.datasets.len() {
            return Err("a dataset is named twice".into());
        }
        if self.subject.as_ref().is_some_and(|s| s.len() != 32) {
            return Err("subject must be a 32-byte hash".into());
        }
        text_ok("summary", &self.summary, false)?;
        if !time_ok(self.issued) || !time_ok(self.due) {
            return Err("a time is out of range".into());
        }
        if self.due <= self.issued {
            return Err("the deadline must come after the case was recorded".into());
        }
        Ok(())
    }
}

impl Signable for Answer {
    const TAG: &'static str = ANSWER_TAG;
    const MAX: usize = MAX_RIGHTS_REPLY_BYTES;
    fn iss(&self) -> Did {
        self.iss
    }
    fn check(&self) -> Result<(), String> {
        case_id_ok(&self.case)?;
        text_ok("text", &self.text, self.outcome != Outcome::Done)?;
        if !time_ok(self.at) {
            return Err(format!("time {} is out of range", self.at));
        }
        Ok(())
    }
}

impl Signable for Appeal {
    const TAG: &'static str = APPEAL_TAG;
    const MAX: usize = MAX_RIGHTS_REPLY_BYTES;
    fn iss(&self) -> Did {
        self.iss
    }
    fn check(&self) -> Result<(), String> {
        case_id_ok(&self.case)?;
        text_ok("grounds", &self.grounds, true)?;
        if !time_ok(self.at) || !time_ok(self.due) || self.due <= self.at {
            return Err(
                "the times are out of range or the deadline is not after the appeal".into(),
            );
        }
        Ok(())
    }
}

impl Signable for Decision {
    const TAG: &'static str = DECISION_TAG;
    const MAX: usize = MAX_RIGHTS_REPLY_BYTES;
    fn iss(&self) -> Did {
        self.iss
    }
    fn check(&self) -> Result<(), String> {
        case_id_ok(&self.case)?;
        text_ok("text", &self.text, true)?;
        if !time_ok(self.at) {
            return Err(format!("time {} is out of range", self.at));
        }
        Ok(())
    }
}

/// A request on `/cix/rights/1`: one signed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RightsRequest {
    /// A case, from the recording agency to a recipient.
    Case {
        /// The signed case.
        case: ByteBuf,
    },
    /// An answer, from a recipient to the recording agency.
    Answer {
        /// The signed answer.
        answer: ByteBuf,
    },
    /// An appeal, from the recording agency to a recipient.
    Appeal {
        /// The signed appeal.
        appeal: ByteBuf,
    },
    /// A decision, from the recording agency to a recipient.
    Decision {
        /// The signed decision.
        decision: ByteBuf,
    },
}

/// The answer on `/cix/rights/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum RightsResponse {
    /// Kept.
    Noted,
    /// Not kept, and why.
    Refused {
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::identity::Keypair;
    use crate::quality::Signed;

    fn case(key: &Keypair) -> Case {
        Case {
            iss: key.did(),
            nonce: ByteBuf::from(vec![1; NONCE_BYTES]),
            kind: Kind::Access,
            datasets: vec![DatasetId([3; 16]), DatasetId([4; 16])],
            subject: Some(ByteBuf::from(subject_hash("case 2026-118").to_vec())),
            summary: "a copy of the meter readings".into(),
            issued: 1_700_000_000,
            due: 1_700_000_000 + 30 * 86_400,
        }
    }

    #[test]
    fn iso_37156_8_3_5_a_case_is_signed_by_the_recording_agency_and_bounded() {
        let key = Keypair::generate();
        let s = Signed::seal(&case(&key), &key).unwrap();
        assert_eq!(Signed::<Case>::decode(&s.bytes).unwrap().value, case(&key));
        assert!(Signed::seal(&case(&key), &Keypair::generate()).is_err());
        let mut bad = s.bytes.clone();
        let n = bad.len() - 1;
        bad[n] ^= 1;
        assert!(Signed::<Case>::decode(&bad).is_err());
        assert!(Signed::<Answer>::decode(&s.bytes).is_err());
        let mut c = case(&key);
        c.datasets.clear();
        assert!(Signed::seal(&c, &key).is_err());
        let mut c = case(&key);
        c.datasets = vec![DatasetId([5; 16]); 2];
        assert!(Signed::seal(&c, &key)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let mut c = case(&key);
        c.datasets = (0..=MAX_RIGHTS_DATASETS)
            .map(|i| DatasetId([u8::try_from(i % 256).unwrap(); 16]))
            .collect();
        assert!(Signed::seal(&c, &key).is_err());
        let mut c = case(&key);
        c.due = c.issued;
        assert!(Signed::seal(&c, &key).is_err());
        let mut c = case(&key);
        c.summary = "x".repeat(MAX_RIGHTS_TEXT_BYTES + 1);
        assert!(Signed::seal(&c, &key).is_err());
    }

    #[test]
    fn the_subject_is_a_pseudonym_not_the_reference() {
        let h = subject_hash("case 2026-118");
        assert_eq!(h, subject_hash("  case 2026-118 "));
        assert_ne!(h, subject_hash("case 2026-119"));
        assert_ne!(h, *blake3::hash(b"case 2026-118").as_bytes());
        let key = Keypair::generate();
        let s = Signed::seal(&case(&key), &key).unwrap();
        assert!(!s.bytes.windows(13).any(|w| w == b"case 2026-118"));
    }

    #[test]
    fn a_refusal_says_why_and_a_decision_gives_reasons() {
        let key = Keypair::generate();
        let mut a = Answer {
            iss: key.did(),
            case: ByteBuf::from(vec![7; 32]),
            outcome: Outcome::Refused,
            text: " ".into(),
            at: 5,
        };
        assert!(Signed::seal(&a, &key).is_err());
        a.outcome = Outcome::Done;
        assert!(Signed::seal(&a, &key).is_ok());
        a.case = ByteBuf::from(vec![7; 31]);
        assert!(Signed::seal(&a, &key).is_err());
        let d = Decision {
            iss: key.did(),
            case: ByteBuf::from(vec![7; 32]),
            verdict: Verdict::Upheld,
            text: String::new(),
            at: 5,
        };
        assert!(Signed::seal(&d, &key).is_err());
        let ap = Appeal {
            iss: key.did(),
            case: ByteBuf::from(vec![7; 32]),
            grounds: "the answer ignored the second dataset".into(),
            at: 10,
            due: 10,
        };
        assert!(Signed::seal(&ap, &key).is_err());
    }

    #[test]
    fn kinds_and_outcomes_parse_as_the_command_line_names_them() {
        for k in [
            Kind::Access,
            Kind::Rectification,
            Kind::Erasure,
            Kind::Objection,
            Kind::AutomatedReview,
            Kind::Complaint,
        ] {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
        }
        assert!("deletion".parse::<Kind>().is_err());
        for o in [Outcome::Done, Outcome::Refused, Outcome::Partly] {
            assert_eq!(o.as_str().parse::<Outcome>().unwrap(), o);
        }
        for v in [Verdict::Upheld, Verdict::Dismissed, Verdict::Partly] {
            assert_eq!(v.as_str().parse::<Verdict>().unwrap(), v);
        }
    }
}
