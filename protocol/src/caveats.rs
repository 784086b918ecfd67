//! The caveats a grant carries in its UCAN policy, and the invocation arguments that meet them
//! (DESIGN §5).
//!
//! An owner's grant of a shared dataset says, besides which dataset:
//!
//! | caveat | statement | when | clause |
//! |---|---|---|---|
//! | purpose | `["==", ".purpose", TEXT]` | a purpose was stated (every request states one) | 8.2.2 b, 8.3.4 |
//! | terms | `["==", ".terms", BLAKE3-HEX]` | shared-public data: the terms accepted | 5.5.3 |
//! | jurisdiction | `["or", [["==", ".jurisdiction", CC], …]]` | the dataset restricts where it may go | 8.2.2 a, h |
//! | retention | `["<=", ".retention_days", N]` | the entry sets `privacy.retention_days` | 8.2.2 e |
//!
//! UCAN's policy language has no set-membership operator, so "one of these jurisdictions" is
//! an `or` of equalities. The requester's invocation states `purpose`, `terms` (the BLAKE3 hex
//! of the entry's terms text), `jurisdiction` (its own) and `retention_days` (how long it will
//! keep the data) beside `dataset` and `content`; UCAN validation then checks every statement
//! of every delegation in the chain. The serving node additionally checks the arguments
//! against what it knows to be true (the requester's signed profile, the current entry): a
//! policy only proves that the requester said the right words.
//!
//! Onward transfer is the command, not a statement: `/cix/data/fetch` lets the holder take the
//! data, `/cix/data/republish` (or `/cix/data`, which covers both) lets it republish
//! (ISO 37156 9.2 e); see [`crate::ucan::CMD_REPUBLISH`].

use ciborium::Value;

use crate::catalogue::{Entry, Level};
use crate::ucan::{CompareOp, Number, Policy, Selector, Statement};

/// Argument naming the dataset (32 hex digits).
pub const ARG_DATASET: &str = "dataset";
/// Argument naming the content wanted (BLAKE3, 64 hex digits).
pub const ARG_CONTENT: &str = "content";
/// Argument stating the purpose the data is used for.
pub const ARG_PURPOSE: &str = "purpose";
/// Argument stating the BLAKE3 hex of the terms the requester accepted.
pub const ARG_TERMS: &str = "terms";
/// Argument stating the requester's jurisdiction (ISO 3166-1 alpha-2).
pub const ARG_JURISDICTION: &str = "jurisdiction";
/// Argument stating how many days the requester keeps the data.
pub const ARG_RETENTION_DAYS: &str = "retention_days";

/// The BLAKE3 hex of a terms text: what a shared-public grant binds.
pub fn terms_hash(terms: &str) -> String {
    blake3::hash(terms.as_bytes()).to_hex().to_string()
}

/// The jurisdictions `entry` may be sent to (ISO 37156 8.2.2 h): its own and the allowed ones,
/// sorted; `None` when it may go anywhere (data that is not personal and lists none).
pub fn allowed_jurisdictions(entry: &Entry) -> Option<Vec<String>> {
    let p = &entry.iso.privacy;
    if !p.personal_data && p.allowed_jurisdictions.is_empty() {
        return None;
    }
    let mut all: Vec<String> = std::iter::once(p.jurisdiction.clone())
        .chain(p.allowed_jurisdictions.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    Some(all)
}

/// The policy of a grant of `entry`'s dataset: the dataset, then every caveat that applies.
/// `purpose` is the purpose stated in the request, if any.
pub fn grant_policy(entry: &Entry, purpose: Option<&str>) -> Policy {
    let eq = |arg: &str, v: &str| Statement::Equal(Selector::field(arg), Value::Text(v.into()));
    let mut statements = vec![eq(ARG_DATASET, &entry.dataset.to_string())];
    if let Some(p) = purpose.map(str::trim).filter(|p| !p.is_empty()) {
        statements.push(eq(ARG_PURPOSE, p));
    }
    if entry.level() == Level::SharedPublic {
        if let Some(terms) = &entry.iso.terms {
            statements.push(eq(ARG_TERMS, &terms_hash(terms)));
        }
    }
    if let Some(places) = allowed_jurisdictions(entry) {
        statements.push(Statement::Or(
            places.iter().map(|c| eq(ARG_JURISDICTION, c)).collect(),
        ));
    }
    if let Some(days) = entry.iso.privacy.retention_days {
        statements.push(Statement::Compare(
            Selector::field(ARG_RETENTION_DAYS),
            CompareOp::LessOrEqual,
            Number::Int(days.into()),
        ));
    }
    Policy::new(statements)
}

/// The text a policy pins with `["==", ".ARG", TEXT]`, if it does.
pub fn pinned_text(policy: &Policy, arg: &str) -> Option<String> {
    let sel = format!(".{arg}");
    policy.statements().iter().find_map(|s| match s {
        Statement::Equal(k, Value::Text(t)) if k.as_str() == sel => Some(t.clone()),
        _ => None,
    })
}

/// The tightest `["<=", ".retention_days", N]` bound of a policy, if any.
pub fn retention_bound(policy: &Policy) -> Option<i128> {
    let sel = format!(".{ARG_RETENTION_DAYS}");
    policy
        .statements()
        .iter()
        .filter_map(|s| match s {
            Statement::Compare(k, CompareOp::LessOrEqual, Number::Int(n)) if k.as_str() == sel => {
                Some(i128::from(*n))
            }
            _ => None,
        })
        .min()
}

/// Which invocation argument a statement constrains (the first selector found), to explain a
/// refusal in words.
pub fn argument_of(statement: &Statement) -> Option<String> {
    let name = |s: &Selector| s.as_str().trim_start_matches('.').to_string();
    match statement {
        Statement::Equal(s, _)
        | Statement::NotEqual(s, _)
        | Statement::Compare(s, _, _)
        | Statement::Like(s, _)
        | Statement::All(s, _)
        | Statement::Any(s, _) => Some(name(s)),
        Statement::Not(inner) => argument_of(inner),
        Statement::And(list) | Statement::Or(list) => list.iter().find_map(argument_of),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn terms_hash_is_b3sum_of_the_text() {
        assert_eq!(
            terms_hash("abc"),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
    }

    #[test]
    fn pinned_text_and_bounds_are_read_back() {
        let pol = Policy::new(vec![
            Statement::Equal(
                Selector::field("purpose"),
                Value::Text("flood model".into()),
            ),
            Statement::Compare(
                Selector::field(ARG_RETENTION_DAYS),
                CompareOp::LessOrEqual,
                Number::Int(30.into()),
            ),
            Statement::Compare(
                Selector::field(ARG_RETENTION_DAYS),
                CompareOp::LessOrEqual,
                Number::Int(7.into()),
            ),
        ]);
        assert_eq!(
            pinned_text(&pol, ARG_PURPOSE).as_deref(),
            Some("flood model")
        );
        assert_eq!(pinned_text(&pol, ARG_TERMS), None);
        assert_eq!(retention_bound(&pol), Some(7));
        assert_eq!(
            argument_of(&pol.statements()[1]).as_deref(),
            Some(ARG_RETENTION_DAYS)
        );
    }
}
