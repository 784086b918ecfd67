//! The re-identification guard (ISO 37156 7.4.2.5): before a table that holds personal data is
//! released, the columns its data dictionary marks as quasi-identifiers are checked for
//! k-anonymity (the smallest group of rows sharing the same quasi-identifier values) and the
//! columns it marks as sensitive for l-diversity (the fewest distinct sensitive values in any
//! such group). A table below the thresholds is refused with the offending groups named and a
//! suggestion: which columns to generalise, and to what level, and which rows to suppress.
//!
//! Generalisation is the same for every implementation, so that a suggestion can be applied
//! anywhere ([`generalise`]): dates lose the day, then the month, then the year's last digit;
//! numbers fall into bands of growing width; text keeps a shorter and shorter prefix; at the
//! last level every value becomes `*`.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::dictionary::Field;

/// What a column tells about a person (ISO 37156 7.4.2.5), set in the data dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColumnRole {
    /// Not identifying alone, but combined with other such columns (a birth date, a postcode)
    /// it may single a person out.
    QuasiIdentifier,
    /// What must not be learnt about a person (a health state, a reading at home).
    Sensitive,
}

/// The thresholds a node's policy sets for releasing personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Smallest group size allowed (k-anonymity).
    #[serde(default = "default_k")]
    pub k: u32,
    /// Fewest distinct values of each sensitive column allowed in a group (l-diversity).
    #[serde(default = "default_l")]
    pub l: u32,
    /// Most rows a suggestion may suppress, per thousand rows; past it, it generalises further.
    #[serde(default = "default_suppress")]
    pub max_suppressed_permille: u32,
}

fn default_k() -> u32 {
    5
}
fn default_l() -> u32 {
    2
}
fn default_suppress() -> u32 {
    50
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            k: default_k(),
            l: default_l(),
            max_suppressed_permille: default_suppress(),
        }
    }
}

impl Thresholds {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// A message naming the setting.
    pub fn check(&self) -> Result<(), String> {
        if self.k == 0 || self.k > MAX_K {
            return Err(format!("k must be between 1 and {MAX_K}"));
        }
        if self.l == 0 || self.l > MAX_L {
            return Err(format!("l must be between 1 and {MAX_L}"));
        }
        if self.max_suppressed_permille > 1000 {
            return Err("max_suppressed_permille must be at most 1000".into());
        }
        Ok(())
    }
}

/// Largest k a policy may ask for.
pub const MAX_K: u32 = 1_000_000;
/// Largest l a policy may ask for (distinct values are counted up to it, no further).
pub const MAX_L: u32 = 64;
/// Most rows the guard reads from one table; a larger table is refused as unchecked.
pub const MAX_GUARD_ROWS: u64 = 5_000_000;
/// Most offending groups and suppressed lines a report lists (it counts them all).
pub const MAX_LISTED: usize = 20;
/// The last generalisation level: every value is `*`.
pub const MAX_LEVEL: u8 = 5;

/// Why a table could not be checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The CSV is malformed.
    #[error("malformed CSV: {0}")]
    Csv(#[from] csv::Error),
    /// The header and the dictionary disagree.
    #[error("the file has {found} columns but its dictionary {expected} fields")]
    Columns {
        /// Fields in the dictionary.
        expected: usize,
        /// Columns in the header.
        found: usize,
    },
    /// Too many rows to check.
    #[error("the table has more than {MAX_GUARD_ROWS} rows, more than the guard checks")]
    TooLarge,
    /// A suggestion names a column the dictionary does not mark.
    #[error("the suggestion names column {0:?}, which is not a quasi-identifier of this table")]
    UnknownColumn(String),
    /// Writing the generalised table failed.
    #[error("cannot write the generalised table: {0}")]
    Io(#[from] std::io::Error),
}

/// One group of rows that shares its quasi-identifier values and breaks a threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The quasi-identifier values, as `column=value`.
    pub values: Vec<String>,
    /// Rows in it.
    pub rows: u64,
    /// Line of its first row in the file (the header is line 1).
    pub first_line: u64,
    /// Distinct values of each sensitive column in it (counted up to l).
    pub diversity: Vec<(String, u64)>,
}

/// One column to generalise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generalisation {
    /// The column.
    pub column: String,
    /// The level, 1 to [`MAX_LEVEL`].
    pub level: u8,
    /// An example from the table: a value and what it becomes.
    pub example: (String, String),
}

/// What to do to release the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    /// Columns to generalise.
    pub generalise: Vec<Generalisation>,
    /// Rows to suppress after generalising (the rows of the groups still offending).
    pub suppress_rows: u64,
    /// The first of their lines.
    pub suppress_lines: Vec<u64>,
    /// The smallest group after both.
    pub k_after: u64,
}

/// The guard's verdict on a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardReport {
    /// Rows read.
    pub rows: u64,
    /// The quasi-identifier columns.
    pub quasi_identifiers: Vec<String>,
    /// The sensitive columns.
    pub sensitive: Vec<String>,
    /// The thresholds applied.
    pub thresholds: Thresholds,
    /// The smallest group (0 for an empty table).
    pub k: u64,
    /// The fewest distinct values of a sensitive column in a group (`None` without sensitive
    /// columns).
    pub l: Option<u64>,
    /// Groups in all.
    pub groups: u64,
    /// Groups that break a threshold.
    pub offending_groups: u64,
    /// Rows in those groups.
    pub offending_rows: u64,
    /// The first offending groups, smallest first.
    pub listed: Vec<Group>,
    /// How to pass, when it does not.
    pub suggestion: Option<Suggestion>,
}

impl GuardReport {
    /// Whether the table may be released.
    pub fn passes(&self) -> bool {
        self.offending_groups == 0
    }

    /// One paragraph for people: the verdict, the offending groups, the suggestion.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let l = self.l.map_or(String::new(), |l| format!(", l = {l}"));
        if self.passes() {
            let _ = write!(
                s,
                "re-identification guard (ISO 37156 7.4.2.5): passed, {} rows in {} groups over \
                 [{}], k = {}{l} (thresholds k >= {}, l >= {})",
                self.rows,
                self.groups,
                self.quasi_identifiers.join(", "),
                self.k,
                self.thresholds.k,
                self.thresholds.l
            );
            return s;
        }
        let _ = write!(
            s,
            "re-identification guard (ISO 37156 7.4.2.5): refused, {} of {} groups over [{}] \
             ({} of {} rows) break k >= {} or l >= {}; smallest group k = {}{l}. Offending groups:",
            self.offending_groups,
            self.groups,
            self.quasi_identifiers.join(", "),
            self.offending_rows,
            self.rows,
            self.thresholds.k,
            self.thresholds.l,
            self.k,
        );
        for g in &self.listed {
            let _ = write!(
                s,
                " [{}] {} row(s) from line {}",
                g.values.join(", "),
                g.rows,
                g.first_line
            );
            for (col, n) in &g.diversity {
                let _ = write!(s, " {col}: {n} distinct");
            }
            s.push(';');
        }
        if self.offending_groups as usize > self.listed.len() {
            let _ = write!(
                s,
                " and {} more;",
                self.offending_groups as usize - self.listed.len()
            );
        }
        if let Some(sg) = &self.suggestion {
            s.push_str(" Suggestion:");
            for g in &sg.generalise {
                let _ = write!(
                    s,
                    " generalise {} to level {} ({:?} becomes {:?});",
                    g.column, g.level, g.example.0, g.example.1
                );
            }
            if sg.suppress_rows > 0 {
                let lines: Vec<String> = sg.suppress_lines.iter().map(u64::to_string).collect();
                let _ = write!(
                    s,
                    " suppress {} row(s) (lines {}{});",
                    sg.suppress_rows,
                    lines.join(", "),
                    if sg.suppress_rows as usize > lines.len() {
                        ", ..."
                    } else {
                        ""
                    }
                );
            }
            let _ = write!(s, " smallest group then {}.", sg.k_after);
        }
        s
    }
}

/// The columns of `fields` with a role, by position.
fn roles(fields: &[Field]) -> (Vec<usize>, Vec<usize>) {
    let pick = |role| {
        fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.privacy == Some(role))
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    (
        pick(ColumnRole::QuasiIdentifier),
        pick(ColumnRole::Sensitive),
    )
}

/// Whether the dictionary marks any quasi-identifier (only then does the guard apply).
pub fn applies(fields: &[Field]) -> bool {
    fields
        .iter()
        .any(|f| f.privacy == Some(ColumnRole::QuasiIdentifier))
}

/// The rows of a table, reduced to the marked columns.
struct Table {
    /// Quasi-identifier values, then sensitive values, of each row.
    rows: Vec<Vec<String>>,
    /// Each row's line in the file.
    lines: Vec<u64>,
    quasi: usize,
}

fn reader<R: Read>(r: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(r)
}

fn load<R: Read>(r: R, fields: &[Field], q: &[usize], s: &[usize]) -> Result<Table, GuardError> {
    let mut rdr = reader(r);
    let found = rdr.headers()?.len();
    if found != fields.len() {
        return Err(GuardError::Columns {
            expected: fields.len(),
            found,
        });
    }
    let mut table = Table {
        rows: Vec::new(),
        lines: Vec::new(),
        quasi: q.len(),
    };
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record)? {
        if record.iter().all(str::is_empty) {
            continue;
        }
        if table.rows.len() as u64 >= MAX_GUARD_ROWS {
            return Err(GuardError::TooLarge);
        }
        let line = record.position().map_or(0, csv::Position::line);
        table.rows.push(
            q.iter()
                .chain(s)
                .map(|&i| record.get(i).unwrap_or_default().to_string())
                .collect(),
        );
        table.lines.push(line);
    }
    Ok(table)
}

#[derive(Default)]
struct Acc {
    rows: u64,
    first: usize,
    sensitive: Vec<BTreeSet<String>>,
}

struct Eval {
    groups: HashMap<Vec<String>, Acc>,
}

fn evaluate(t: &Table, levels: &[u8], l: u32) -> Eval {
    let mut groups: HashMap<Vec<String>, Acc> = HashMap::new();
    for (i, row) in t.rows.iter().enumerate() {
        let key: Vec<String> = row[..t.quasi]
            .iter()
            .zip(levels)
            .map(|(v, &lv)| generalise(v, lv))
            .collect();
        let acc = groups.entry(key).or_insert_with(|| Acc {
            rows: 0,
            first: i,
            sensitive: vec![BTreeSet::new(); row.len() - t.quasi],
        });
        acc.rows += 1;
        for (set, v) in acc.sensitive.iter_mut().zip(&row[t.quasi..]) {
            if set.len() < l as usize && !set.contains(v) {
                set.insert(v.clone());
            }
        }
    }
    Eval { groups }
}

impl Acc {
    fn offends(&self, th: &Thresholds) -> bool {
        self.rows < u64::from(th.k) || self.sensitive.iter().any(|s| s.len() < th.l as usize)
    }
}

impl Eval {
    fn offending_rows(&self, th: &Thresholds) -> u64 {
        self.groups
            .values()
            .filter(|a| a.offends(th))
            .map(|a| a.rows)
            .sum()
    }

    fn k_without_offenders(&self, th: &Thresholds) -> u64 {
        self.groups
            .values()
            .filter(|a| !a.offends(th))
            .map(|a| a.rows)
            .min()
            .unwrap_or(0)
    }
}

/// Checks a CSV table against `th` over the columns its dictionary marks (ISO 37156 7.4.2.5).
/// `None` when the dictionary marks no quasi-identifier.
///
/// # Errors
///
/// [`GuardError`] when the table cannot be read or is too large.
pub fn check_csv<R: Read>(
    r: R,
    fields: &[Field],
    th: &Thresholds,
) -> Result<Option<GuardReport>, GuardError> {
    let (q, s) = roles(fields);
    if q.is_empty() {
        return Ok(None);
    }
    let table = load(r, fields, &q, &s)?;
    let names = |ix: &[usize]| {
        ix.iter()
            .map(|&i| fields[i].name.clone())
            .collect::<Vec<_>>()
    };
    let qn = names(&q);
    let sn = names(&s);
    let levels = vec![0u8; q.len()];
    let eval = evaluate(&table, &levels, th.l);
    let k = eval.groups.values().map(|a| a.rows).min().unwrap_or(0);
    let l = (!s.is_empty()).then(|| {
        eval.groups
            .values()
            .flat_map(|a| a.sensitive.iter().map(|s| s.len() as u64))
            .min()
            .unwrap_or(0)
    });
    let mut offenders: Vec<&Acc> = eval.groups.values().filter(|a| a.offends(th)).collect();
    offenders.sort_by_key(|a| (a.rows, a.first));
    let describe = |a: &Acc| Group {
        values: qn
            .iter()
            .zip(&table.rows[a.first][..table.quasi])
            .map(|(c, v)| format!("{c}={v}"))
            .collect(),
        rows: a.rows,
        first_line: table.lines[a.first],
        diversity: sn
            .iter()
            .zip(&a.sensitive)
            .map(|(c, set)| (c.clone(), set.len() as u64))
            .collect(),
    };
    let mut report = GuardReport {
        rows: table.rows.len() as u64,
        quasi_identifiers: qn.clone(),
        sensitive: sn.clone(),
        thresholds: *th,
        k,
        l,
        groups: eval.groups.len() as u64,
        offending_groups: offenders.len() as u64,
        offending_rows: offenders.iter().map(|a| a.rows).sum(),
        listed: offenders
            .iter()
            .take(MAX_LISTED)
            .map(|a| describe(a))
            .collect(),
        suggestion: None,
    };
    if !report.passes() {
        report.suggestion = Some(suggest(&table, &qn, th));
    }
    Ok(Some(report))
}

/// Greedy search: generalise one column by one level at a time, always the one that leaves the
/// fewest rows in offending groups, until the rest may be suppressed within the policy's bound.
fn suggest(t: &Table, names: &[String], th: &Thresholds) -> Suggestion {
    let total = t.rows.len() as u64;
    let within = |offending: u64| offending * 1000 <= total * u64::from(th.max_suppressed_permille);
    let mut levels = vec![0u8; t.quasi];
    let mut eval = evaluate(t, &levels, th.l);
    let mut offending = eval.offending_rows(th);
    while !within(offending) {
        let mut best: Option<(u64, usize, Eval)> = None;
        for c in 0..t.quasi {
            if levels[c] >= MAX_LEVEL {
                continue;
            }
            let mut trial = levels.clone();
            trial[c] += 1;
            let e = evaluate(t, &trial, th.l);
            let o = e.offending_rows(th);
            if best.as_ref().is_none_or(|(b, _, _)| o < *b) {
                best = Some((o, c, e));
            }
        }
        let Some((o, c, e)) = best else { break };
        levels[c] += 1;
        offending = o;
        eval = e;
    }
    let suppress: Vec<u64> = t
        .rows
        .iter()
        .zip(&t.lines)
        .filter(|(r, _)| {
            let key: Vec<String> = r[..t.quasi]
                .iter()
                .zip(&levels)
                .map(|(v, &lv)| generalise(v, lv))
                .collect();
            eval.groups.get(&key).is_some_and(|a| a.offends(th))
        })
        .map(|(_, &line)| line)
        .take(MAX_LISTED)
        .collect();
    Suggestion {
        generalise: names
            .iter()
            .zip(&levels)
            .enumerate()
            .filter(|(_, (_, &lv))| lv > 0)
            .map(|(c, (name, &lv))| {
                let v = t.rows.first().map_or(String::new(), |r| r[c].clone());
                Generalisation {
                    column: name.clone(),
                    level: lv,
                    example: (v.clone(), generalise(&v, lv)),
                }
            })
            .collect(),
        suppress_rows: offending,
        suppress_lines: suppress,
        k_after: eval.k_without_offenders(th),
    }
}

fn is_date_like(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b[..4]
            .iter()
            .chain(&b[5..7])
            .chain(&b[8..10])
            .all(u8::is_ascii_digit)
}

/// A value generalised to `level` (0 keeps it; [`MAX_LEVEL`] and above make it `*`). Missing
/// (empty) values stay empty.
pub fn generalise(value: &str, level: u8) -> String {
    if level == 0 || value.is_empty() {
        return value.to_string();
    }
    if level >= MAX_LEVEL {
        return "*".into();
    }
    if is_date_like(value) {
        return match level {
            1 => value[..7].to_string(),
            2 => value[..4].to_string(),
            3 => format!("{}0s", &value[..3]),
            _ => "*".into(),
        };
    }
    if let Ok(i) = value.parse::<i64>() {
        let width = 10i64.pow(u32::from(level));
        let lo = i.div_euclid(width) * width;
        return format!("{lo}..{}", lo.saturating_add(width - 1));
    }
    if let Ok(x) = value.parse::<f64>() {
        if x.is_finite() {
            let exp = i32::from(level) - 2;
            let width = 10f64.powi(exp);
            let lo = (x / width).floor() * width;
            let decimals = usize::try_from(-exp).unwrap_or(0);
            return format!("{lo:.decimals$}..<{:.decimals$}", lo + width);
        }
    }
    let keep = match level {
        1 => 4,
        2 => 2,
        3 => 1,
        _ => 0,
    };
    let mut chars = value.chars();
    let prefix: String = chars.by_ref().take(keep).collect();
    if chars.next().is_none() && keep > 0 {
        prefix
    } else {
        format!("{prefix}*")
    }
}

/// What [`apply_csv`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Rows written.
    pub kept: u64,
    /// Rows left out.
    pub suppressed: u64,
}

/// Writes the table with the suggestion applied: quasi-identifier columns generalised, and the
/// rows of groups that still break the thresholds left out.
///
/// # Errors
///
/// [`GuardError`] when the table cannot be read, names other columns, or cannot be written.
pub fn apply_csv<R: Read, W: Write>(
    bytes: R,
    out: W,
    fields: &[Field],
    suggestion: &Suggestion,
    th: &Thresholds,
) -> Result<Applied, GuardError> {
    let (q, s) = roles(fields);
    let mut levels = vec![0u8; q.len()];
    for g in &suggestion.generalise {
        let pos = q
            .iter()
            .position(|&i| fields[i].name == g.column)
            .ok_or_else(|| GuardError::UnknownColumn(g.column.clone()))?;
        levels[pos] = g.level.min(MAX_LEVEL);
    }
    let mut all = Vec::new();
    let mut rdr = reader(bytes);
    let header = rdr.headers()?.clone();
    if header.len() != fields.len() {
        return Err(GuardError::Columns {
            expected: fields.len(),
            found: header.len(),
        });
    }
    for rec in rdr.records() {
        let rec = rec?;
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if all.len() as u64 >= MAX_GUARD_ROWS {
            return Err(GuardError::TooLarge);
        }
        all.push(rec);
    }
    let table = Table {
        rows: all
            .iter()
            .map(|r| {
                q.iter()
                    .chain(&s)
                    .map(|&i| r.get(i).unwrap_or_default().to_string())
                    .collect()
            })
            .collect(),
        lines: vec![0; all.len()],
        quasi: q.len(),
    };
    let eval = evaluate(&table, &levels, th.l);
    let mut w = csv::Writer::from_writer(out);
    w.write_record(&header)?;
    let mut applied = Applied {
        kept: 0,
        suppressed: 0,
    };
    for (rec, row) in all.iter().zip(&table.rows) {
        let key: Vec<String> = row[..table.quasi]
            .iter()
            .zip(&levels)
            .map(|(v, &lv)| generalise(v, lv))
            .collect();
        if eval.groups.get(&key).is_some_and(|a| a.offends(th)) {
            applied.suppressed += 1;
            continue;
        }
        let mut outrec: Vec<String> = rec.iter().map(str::to_string).collect();
        for (pos, &col) in q.iter().enumerate() {
            if let Some(cell) = outrec.get_mut(col) {
                *cell = key[pos].clone();
            }
        }
        w.write_record(&outrec)?;
        applied.kept += 1;
    }
    w.flush()?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dictionary::FieldType;

    #[test]
    fn generalisation_levels_widen_each_kind_of_value() {
        assert_eq!(generalise("2012-03-17", 1), "2012-03");
        assert_eq!(generalise("2012-03-17", 2), "2012");
        assert_eq!(generalise("2012-03-17", 3), "2010s");
        assert_eq!(generalise("1987", 1), "1980..1989");
        assert_eq!(generalise("-3", 1), "-10..-1");
        assert_eq!(generalise("0.37", 1), "0.3..<0.4");
        assert_eq!(generalise("12.5", 2), "12..<13");
        assert_eq!(generalise("Amsterdam", 1), "Amst*");
        assert_eq!(generalise("Amsterdam", 3), "A*");
        assert_eq!(generalise("NL", 1), "NL");
        assert_eq!(generalise("anything", MAX_LEVEL), "*");
        assert_eq!(generalise("", 3), "");
    }

    fn fields() -> Vec<Field> {
        let mut zip = Field::new("zip", FieldType::String);
        zip.privacy = Some(ColumnRole::QuasiIdentifier);
        let mut age = Field::new("age", FieldType::Integer);
        age.privacy = Some(ColumnRole::QuasiIdentifier);
        let mut ill = Field::new("illness", FieldType::String);
        ill.privacy = Some(ColumnRole::Sensitive);
        vec![zip, age, ill]
    }

    #[test]
    fn a_homogeneous_group_fails_l_diversity_even_when_k_holds() {
        // ISO 37156 7.4.2.5: everyone in the group shares the sensitive value.
        let csv = "zip,age,illness\n1011,34,flu\n1011,34,flu\n1012,40,flu\n1012,40,cold\n";
        let th = Thresholds {
            k: 2,
            l: 2,
            max_suppressed_permille: 500,
        };
        let r = check_csv(csv.as_bytes(), &fields(), &th).unwrap().unwrap();
        assert_eq!(r.k, 2);
        assert_eq!(r.l, Some(1));
        assert!(!r.passes());
        assert_eq!(r.offending_groups, 1);
        assert_eq!(r.listed[0].values, vec!["zip=1011", "age=34"]);
        assert_eq!(r.listed[0].first_line, 2);
        let s = r.suggestion.unwrap();
        let mut out = Vec::new();
        let applied = apply_csv(csv.as_bytes(), &mut out, &fields(), &s, &th).unwrap();
        assert_eq!(applied.kept + applied.suppressed, 4);
        let again = check_csv(out.as_slice(), &fields(), &th).unwrap().unwrap();
        assert!(again.passes(), "{}", again.summary());
    }

    #[test]
    fn no_quasi_identifier_means_the_guard_does_not_apply() {
        let plain = vec![Field::new("zip", FieldType::String)];
        assert!(
            check_csv("zip\n1\n".as_bytes(), &plain, &Thresholds::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_header_that_disagrees_with_the_dictionary_is_an_error_not_a_pass() {
        let e = check_csv(
            "zip,age\n1,2\n".as_bytes(),
            &fields(),
            &Thresholds::default(),
        );
        assert!(matches!(
            e,
            Err(GuardError::Columns {
                expected: 3,
                found: 2
            })
        ));
    }
}
