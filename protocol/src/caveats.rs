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
//! | fields | `["all", ".fields", ["or", [["==", ".", NAME], …]]]` | the owner limits a grant to some columns of a CSV dataset (`cix grant --fields`) | 8.2.2 c, 7.1 |
//!
//! The fields caveat lists the permitted data dictionary names, sorted. The invocation states
//! `fields`, the list of names it wants (a non-empty subset of the permitted ones, in the
//! dataset's column order), and the owner serves a projection: the CSV with those columns
//! only. A missing `fields` argument selects `null`, over which `all` is false, so a chain that
//! pins fields cannot fetch the whole file.
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
use crate::limits;
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
/// Argument listing the fields (data dictionary names) wanted, as a list of text.
pub const ARG_FIELDS: &str = "fields";

/// The media type a dataset must have to be limited to some fields.
pub const CSV_MEDIA_TYPE: &str = "text/csv";

/// Why a list of fields cannot limit a grant or an invocation (ISO 37156 8.2.2 c).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldsError {
    /// The dataset is not a CSV file described by a data dictionary.
    #[error(
        "the dataset is {0}, not a CSV file with a data dictionary: only CSV datasets can be \
         limited to some fields"
    )]
    NotCsv(String),
    /// No field was named.
    #[error("the list of fields is empty: name at least one field")]
    Empty,
    /// More names than a dictionary may hold.
    #[error("{0} fields named, more than the {max} a data dictionary may hold", max = limits::MAX_DICTIONARY_FIELDS)]
    TooMany(usize),
    /// A name appears twice.
    #[error("field {0:?} is named twice")]
    Duplicate(String),
    /// A name the dictionary does not have.
    #[error("the dataset's data dictionary has no field {name:?} (its fields: {known})")]
    Unknown {
        /// The name given (clipped).
        name: String,
        /// The dictionary's names (clipped).
        known: String,
    },
    /// A name the dictionary gives to several columns.
    #[error("field {0:?} names {1} columns of the dataset, so it cannot say which one is meant")]
    Ambiguous(String, usize),
    /// The `fields` argument is not a list of text.
    #[error("the fields argument is not a list of field names")]
    NotAList,
}

/// Whether `entry` can be limited to some fields: a CSV distribution with a data dictionary.
pub fn is_csv(entry: &Entry) -> bool {
    entry
        .primary()
        .is_some_and(|d| d.media_type.eq_ignore_ascii_case(CSV_MEDIA_TYPE))
        && !entry.iso.dictionary.is_empty()
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// The column numbers (positions in `entry`'s data dictionary, which follows the CSV's column
/// order) that `names` select, ascending. Refuses a non-CSV dataset, an empty or overlong list,
/// a duplicate, a name the dictionary lacks and a name it gives to several columns.
///
/// # Errors
///
/// The first [`FieldsError`] found.
pub fn field_columns(entry: &Entry, names: &[String]) -> Result<Vec<usize>, FieldsError> {
    if !is_csv(entry) {
        let media = entry
            .primary()
            .map(|d| clip(&d.media_type, 60))
            .unwrap_or_else(|| "without a distribution".into());
        return Err(FieldsError::NotCsv(media));
    }
    if names.is_empty() {
        return Err(FieldsError::Empty);
    }
    if names.len() > limits::MAX_DICTIONARY_FIELDS {
        return Err(FieldsError::TooMany(names.len()));
    }
    let dictionary = &entry.iso.dictionary;
    let mut columns = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(FieldsError::Duplicate(clip(name, 80)));
        }
        let hits: Vec<usize> = dictionary
            .iter()
            .enumerate()
            .filter(|(_, f)| &f.name == name)
            .map(|(c, _)| c)
            .collect();
        match hits.as_slice() {
            [] => {
                let known: Vec<&str> = dictionary.iter().map(|f| f.name.as_str()).collect();
                return Err(FieldsError::Unknown {
                    name: clip(name, 80),
                    known: clip(&known.join(", "), 400),
                });
            }
            [c] => columns.push(*c),
            more => return Err(FieldsError::Ambiguous(clip(name, 80), more.len())),
        }
    }
    columns.sort_unstable();
    Ok(columns)
}

/// The names of `columns` in `entry`'s dictionary, in that (column) order.
pub fn column_names(entry: &Entry, columns: &[usize]) -> Vec<String> {
    columns
        .iter()
        .filter_map(|&c| entry.iso.dictionary.get(c).map(|f| f.name.clone()))
        .collect()
}

/// The statement pinning the permitted fields: `["all", ".fields", ["or", [["==", ".",
/// NAME], …]]]` with the names sorted and deduplicated, so the same set always encodes alike.
pub fn fields_statement(names: &[String]) -> Statement {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    sorted.dedup();
    Statement::All(
        Selector::field(ARG_FIELDS),
        Box::new(Statement::Or(
            sorted
                .into_iter()
                .map(|n| Statement::Equal(Selector::whole(), Value::Text(n.clone())))
                .collect(),
        )),
    )
}

/// The fields a policy permits, sorted: the intersection of every fields statement in it (see
/// [`fields_statement`]; a lone `["==", ".", NAME]` under `all` counts too), or `None` when it
/// has none and so does not limit fields.
pub fn permitted_fields(policy: &Policy) -> Option<Vec<String>> {
    let sel = format!(".{ARG_FIELDS}");
    let mut permitted: Option<Vec<String>> = None;
    for statement in policy.statements() {
        let Statement::All(k, inner) = statement else {
            continue;
        };
        if k.as_str() != sel {
            continue;
        }
        let one = |s: &Statement| match s {
            Statement::Equal(w, Value::Text(t)) if w.as_str() == "." => Some(t.clone()),
            _ => None,
        };
        let mut names: Vec<String> = match inner.as_ref() {
            Statement::Or(list) => list.iter().filter_map(one).collect(),
            other => one(other).into_iter().collect(),
        };
        names.sort();
        names.dedup();
        permitted = Some(match permitted {
            None => names,
            Some(before) => before.into_iter().filter(|n| names.contains(n)).collect(),
        });
    }
    permitted
}

/// The fields every one of `policies` permits (a delegation chain's, say), sorted; `None` when
/// none of them limits fields.
pub fn permitted_by_all<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Option<Vec<String>> {
    let mut permitted: Option<Vec<String>> = None;
    for names in policies.into_iter().filter_map(permitted_fields) {
        permitted = Some(match permitted {
            None => names,
            Some(before) => before.into_iter().filter(|n| names.contains(n)).collect(),
        });
    }
    permitted
}

/// The `fields` argument of an invocation as names, `None` when absent.
///
/// # Errors
///
/// [`FieldsError::NotAList`] when it is not a list of text; [`FieldsError::TooMany`] past
/// [`limits::MAX_DICTIONARY_FIELDS`].
pub fn stated_fields(arg: Option<&Value>) -> Result<Option<Vec<String>>, FieldsError> {
    let Some(v) = arg else {
        return Ok(None);
    };
    let Value::Array(items) = v else {
        return Err(FieldsError::NotAList);
    };
    if items.len() > limits::MAX_DICTIONARY_FIELDS {
        return Err(FieldsError::TooMany(items.len()));
    }
    items
        .iter()
        .map(|i| i.as_text().map(str::to_owned).ok_or(FieldsError::NotAList))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

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

    fn list(names: &[&str]) -> Value {
        Value::Array(names.iter().map(|n| Value::Text((*n).into())).collect())
    }

    fn args(fields: Option<Value>) -> Value {
        let mut m = vec![(Value::Text("dataset".into()), Value::Text("d".into()))];
        if let Some(f) = fields {
            m.push((Value::Text(ARG_FIELDS.into()), f));
        }
        Value::Map(m)
    }

    #[test]
    fn fields_caveat_admits_subsets_of_the_permitted_fields_only() {
        // ISO 37156 8.2.2 c: adequate, relevant and not excessive.
        let names = vec!["time".to_string(), "flow".into(), "flow".into()];
        let statement = fields_statement(&names);
        let pol = Policy::new(vec![statement.clone()]);
        let text = |t: &str| Value::Text(t.into());
        assert_eq!(
            pol.to_value(),
            Value::Array(vec![Value::Array(vec![
                text("all"),
                text(".fields"),
                Value::Array(vec![
                    text("or"),
                    Value::Array(vec![
                        Value::Array(vec![text("=="), text("."), text("flow")]),
                        Value::Array(vec![text("=="), text("."), text("time")]),
                    ]),
                ]),
            ])]),
            "sorted, deduplicated, and as the spec writes it"
        );
        assert!(pol.matches(&args(Some(list(&["time", "flow"])))));
        assert!(pol.matches(&args(Some(list(&["flow"])))));
        assert!(!pol.matches(&args(Some(list(&["time", "pressure"])))));
        assert!(!pol.matches(&args(None)), "no fields: the whole file");
        assert!(!pol.matches(&args(Some(text("time")))));
        assert_eq!(
            permitted_fields(&pol),
            Some(vec!["flow".to_string(), "time".into()])
        );
        assert_eq!(argument_of(&statement).as_deref(), Some(ARG_FIELDS));
        // Two statements: the intersection holds.
        let narrower = Policy::new(vec![statement, fields_statement(&["time".to_string()])]);
        assert_eq!(permitted_fields(&narrower), Some(vec!["time".to_string()]));
        assert_eq!(permitted_fields(&Policy::empty()), None);
        assert_eq!(
            stated_fields(Some(&list(&["a", "b"]))),
            Ok(Some(vec!["a".to_string(), "b".into()]))
        );
        assert_eq!(
            stated_fields(Some(&Value::Array(vec![Value::Integer(1.into())]))),
            Err(FieldsError::NotAList)
        );
        assert_eq!(stated_fields(None), Ok(None));
    }

    #[test]
    fn the_widest_fields_caveat_evaluates_within_the_budget() {
        let names: Vec<String> = (0..limits::MAX_DICTIONARY_FIELDS)
            .map(|i| format!("f{i:03}"))
            .collect();
        let pol = Policy::new(vec![fields_statement(&names)]);
        // Stated in reverse, so each one is found last: the worst case.
        let stated: Vec<&str> = names.iter().rev().map(String::as_str).collect();
        assert!(pol.matches(&args(Some(list(&stated)))));
    }
}
