//! The UCAN policy language: predicates a delegation places on an invocation's `args`.
//!
//! A policy is a list of statements that must all hold. Each statement is a CBOR array whose
//! first element names the operator:
//!
//! ```text
//! ["==", sel, value]  ["!=", sel, value]            deep equality, numbers by value
//! ["<", sel, n]  ["<=", sel, n]  [">", sel, n]  [">=", sel, n]
//! ["like", sel, pattern]                             `*` is the only wildcard, `\*` a star
//! ["not", stmt]  ["and", [stmt…]]  ["or", [stmt…]]
//! ["all", sel, stmt]  ["any", sel, stmt]             over a list's items or a map's values
//! ```
//!
//! Selectors are a small jq-like path: `.` (the whole args), `.name`, `["any key"]`, `[2]`,
//! `[-1]`, `[1:3]`, `[]` (every item or map value, the rest of the path applied to each and the
//! results collected into a list) and a trailing `?` on any segment that turns a failed step
//! into `null`. A missing map key selects `null`; a further step into that `null` fails.
//!
//! Evaluation never fails loudly: a selector that cannot be resolved, a comparison between
//! different kinds, or a quantifier over something that is not a collection makes the
//! statement false. Two choices are ours where the UCAN text leaves room: an unresolved selector
//! makes `!=` false as well (so `!=` only holds for values that exist), and every evaluation
//! runs on a step budget ([`EVAL_BUDGET`]); exhausting it fails the whole policy, never a
//! sub-statement, so a `not` cannot turn exhaustion into a grant.

use std::borrow::Cow;
use std::cmp::Ordering;

use ciborium::Value;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Deepest nesting of statements (`not`, `and`, `or`, `all`, `any` inside one another).
pub const MAX_POLICY_DEPTH: usize = 16;
/// Longest selector text accepted, in bytes.
pub const MAX_SELECTOR_LEN: usize = 256;
/// Steps one policy evaluation may take (statements visited, values compared or copied)
/// before it is abandoned as failed.
pub const EVAL_BUDGET: u64 = 200_000;

/// Why a value is not a well-formed policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy, or a statement, or an `and`/`or` list is not an array.
    #[error("policy {0} is not an array")]
    NotAnArray(&'static str),
    /// A statement does not start with a known operator.
    #[error("unknown policy operator {0:?}")]
    UnknownOperator(String),
    /// A statement has the wrong number of elements for its operator.
    #[error("policy operator {op:?} takes {expected} operands, found {found}")]
    Arity {
        /// The operator.
        op: String,
        /// Operands it takes.
        expected: usize,
        /// Operands present.
        found: usize,
    },
    /// A selector is not valid.
    #[error("invalid selector {text:?}: {reason}")]
    Selector {
        /// The selector text (truncated).
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A selector or pattern is not a text string.
    #[error("policy {0} is not a text string")]
    NotText(&'static str),
    /// An inequality compares against something that is not a number.
    #[error("policy operator {0:?} needs a number")]
    NotANumber(String),
    /// Statements nest deeper than [`MAX_POLICY_DEPTH`].
    #[error("policy statements nest deeper than {MAX_POLICY_DEPTH} levels")]
    TooDeep,
}

/// A policy: statements that must all hold for the invocation's `args`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy(Vec<Statement>);

/// One predicate of the policy language.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Statement {
    /// `["==", sel, value]`: the selected value equals `value` (deeply; `1 == 1.0`).
    Equal(Selector, Value),
    /// `["!=", sel, value]`: the selected value exists and differs from `value`.
    NotEqual(Selector, Value),
    /// `["<", sel, n]` and friends: the selected value is a number in that relation to `n`.
    Compare(Selector, CompareOp, Number),
    /// `["like", sel, pattern]`: the selected value is text matching the glob.
    Like(Selector, Pattern),
    /// `["not", stmt]`.
    Not(Box<Statement>),
    /// `["and", [stmt…]]`: all hold (true when empty).
    And(Vec<Statement>),
    /// `["or", [stmt…]]`: one holds (true when empty, as UCAN specifies).
    Or(Vec<Statement>),
    /// `["all", sel, stmt]`: the statement holds for every item of the selected collection.
    All(Selector, Box<Statement>),
    /// `["any", sel, stmt]`: the statement holds for at least one item.
    Any(Selector, Box<Statement>),
}

/// The four numeric inequalities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl CompareOp {
    fn symbol(self) -> &'static str {
        match self {
            CompareOp::Less => "<",
            CompareOp::LessOrEqual => "<=",
            CompareOp::Greater => ">",
            CompareOp::GreaterOrEqual => ">=",
        }
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            CompareOp::Less => ord == Ordering::Less,
            CompareOp::LessOrEqual => ord != Ordering::Greater,
            CompareOp::Greater => ord == Ordering::Greater,
            CompareOp::GreaterOrEqual => ord != Ordering::Less,
        }
    }
}

/// A number in a policy. Floats exist only in memory: cix never signs or accepts a float, so a
/// policy holding one cannot be sealed into a token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer (CBOR's full range, -2^64 to 2^64 - 1).
    Int(ciborium::value::Integer),
    /// A float (in-memory only, see above).
    Float(f64),
}

impl Number {
    fn of(value: &Value) -> Option<Number> {
        match value {
            Value::Integer(i) => Some(Number::Int(*i)),
            Value::Float(f) => Some(Number::Float(*f)),
            _ => None,
        }
    }

    fn to_value(self) -> Value {
        match self {
            Number::Int(i) => Value::Integer(i),
            Number::Float(f) => Value::Float(f),
        }
    }

    /// Compares exactly, without rounding large integers through f64.
    fn cmp(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Some(i128::from(a).cmp(&i128::from(b))),
            (Number::Float(a), Number::Float(b)) => a.partial_cmp(&b),
            (Number::Int(a), Number::Float(b)) => cmp_int_float(a.into(), b),
            (Number::Float(a), Number::Int(b)) => cmp_int_float(b.into(), a).map(Ordering::reverse),
        }
    }
}

/// Orders an integer against a float with no loss of precision.
fn cmp_int_float(i: i128, f: f64) -> Option<Ordering> {
    const EXACT: i128 = 1 << 53;
    if f.is_nan() {
        return None;
    }
    if (-EXACT..=EXACT).contains(&i) {
        // Integers this small are exact in f64.
        return (i as f64).partial_cmp(&f);
    }
    // Floats beyond 2^53 in magnitude are integers; compare in i128 when f fits.
    if f >= 1.7e38 {
        return Some(Ordering::Less);
    }
    if f <= -1.7e38 {
        return Some(Ordering::Greater);
    }
    let fi = f.trunc() as i128;
    match i.cmp(&fi) {
        Ordering::Equal if f.fract() > 0.0 => Some(Ordering::Less),
        Ordering::Equal if f.fract() < 0.0 => Some(Ordering::Greater),
        ord => Some(ord),
    }
}

/// A parsed selector, keeping its text so the policy re-encodes byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    step: Step,
    optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Values,
}

/// A `like` pattern: literal runs separated by `*` wildcards, kept with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    /// `parts.len() - 1` wildcards sit between the literal parts.
    parts: Vec<String>,
}

/// Budget exhausted: the evaluation is abandoned.
#[derive(Debug)]
struct Exhausted;

struct Budget(u64);

impl Budget {
    fn spend(&mut self, steps: u64) -> Result<(), Exhausted> {
        self.0 = self.0.checked_sub(steps).ok_or(Exhausted)?;
        Ok(())
    }
}

impl Policy {
    /// A policy of the given statements.
    pub fn new(statements: Vec<Statement>) -> Policy {
        Policy(statements)
    }

    /// The empty policy, which every `args` satisfies.
    pub fn empty() -> Policy {
        Policy(Vec::new())
    }

    /// `[["==", ".dataset", name]]`: the invocation must name exactly this dataset.
    pub fn dataset_equals(name: &str) -> Policy {
        Policy(vec![Statement::Equal(
            Selector::field("dataset"),
            Value::Text(name.into()),
        )])
    }

    /// The statements, all of which must hold.
    pub fn statements(&self) -> &[Statement] {
        &self.0
    }

    /// Whether the policy has no statements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `args` satisfies every statement.
    pub fn matches(&self, args: &Value) -> bool {
        self.failing_statement(args).is_none()
    }

    /// The index of the first statement `args` does not satisfy, if any. When the evaluation
    /// budget runs out, the statement being evaluated counts as failing.
    pub fn failing_statement(&self, args: &Value) -> Option<usize> {
        let mut budget = Budget(EVAL_BUDGET);
        self.0
            .iter()
            .position(|s| !matches!(s.eval(args, &mut budget), Ok(true)))
    }

    /// Reads a policy from its CBOR form.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] naming the first malformed part.
    pub fn from_value(value: &Value) -> Result<Policy, PolicyError> {
        let Value::Array(items) = value else {
            return Err(PolicyError::NotAnArray("top level"));
        };
        let statements = items
            .iter()
            .map(|s| Statement::from_value(s, 0))
            .collect::<Result<_, _>>()?;
        Ok(Policy(statements))
    }

    /// The CBOR form of the policy.
    pub fn to_value(&self) -> Value {
        Value::Array(self.0.iter().map(Statement::to_value).collect())
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Policy::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl Statement {
    fn from_value(value: &Value, depth: usize) -> Result<Statement, PolicyError> {
        if depth >= MAX_POLICY_DEPTH {
            return Err(PolicyError::TooDeep);
        }
        let Value::Array(parts) = value else {
            return Err(PolicyError::NotAnArray("statement"));
        };
        let Some((Value::Text(op), operands)) = parts.split_first() else {
            return Err(PolicyError::UnknownOperator(
                "a statement must start with its operator as text".into(),
            ));
        };
        let arity = |expected: usize| {
            if operands.len() == expected {
                Ok(())
            } else {
                Err(PolicyError::Arity {
                    op: op.clone(),
                    expected,
                    found: operands.len(),
                })
            }
        };
        let selector = || match operands.first() {
            Some(Value::Text(t)) => Selector::parse(t),
            _ => Err(PolicyError::NotText("selector")),
        };
        let inner = |i: usize| match operands.get(i) {
            Some(v) => Statement::from_value(v, depth + 1).map(Box::new),
            None => Err(PolicyError::Arity {
                op: op.clone(),
                expected: i + 1,
                found: i,
            }),
        };
        let list = || match operands.first() {
            Some(Value::Array(items)) => items
                .iter()
                .map(|s| Statement::from_value(s, depth + 1))
                .collect(),
            _ => Err(PolicyError::NotAnArray("connective operand")),
        };
        let compare = |cmp: CompareOp| -> Result<Statement, PolicyError> {
            arity(2)?;
            let n = operands.get(1).and_then(Number::of);
            let n = n.ok_or_else(|| PolicyError::NotANumber(op.clone()))?;
            Ok(Statement::Compare(selector()?, cmp, n))
        };
        let second = || operands.get(1).cloned().unwrap_or(Value::Null);

        match op.as_str() {
            "==" => arity(2).and_then(|()| Ok(Statement::Equal(selector()?, second()))),
            "!=" => arity(2).and_then(|()| Ok(Statement::NotEqual(selector()?, second()))),
            "<" => compare(CompareOp::Less),
            "<=" => compare(CompareOp::LessOrEqual),
            ">" => compare(CompareOp::Greater),
            ">=" => compare(CompareOp::GreaterOrEqual),
            "like" => {
                arity(2)?;
                let Some(Value::Text(p)) = operands.get(1) else {
                    return Err(PolicyError::NotText("like pattern"));
                };
                Ok(Statement::Like(selector()?, Pattern::parse(p)))
            }
            "not" => arity(1).and_then(|()| Ok(Statement::Not(inner(0)?))),
            "and" => arity(1).and_then(|()| Ok(Statement::And(list()?))),
            "or" => arity(1).and_then(|()| Ok(Statement::Or(list()?))),
            "all" => arity(2).and_then(|()| Ok(Statement::All(selector()?, inner(1)?))),
            "any" => arity(2).and_then(|()| Ok(Statement::Any(selector()?, inner(1)?))),
            other => Err(PolicyError::UnknownOperator(
                other.chars().take(40).collect(),
            )),
        }
    }

    fn to_value(&self) -> Value {
        let op = |s: &str| Value::Text(s.into());
        let sel = |s: &Selector| Value::Text(s.text.clone());
        let items = match self {
            Statement::Equal(s, v) => vec![op("=="), sel(s), v.clone()],
            Statement::NotEqual(s, v) => vec![op("!="), sel(s), v.clone()],
            Statement::Compare(s, c, n) => vec![op(c.symbol()), sel(s), n.to_value()],
            Statement::Like(s, p) => vec![op("like"), sel(s), Value::Text(p.text.clone())],
            Statement::Not(inner) => vec![op("not"), inner.to_value()],
            Statement::And(list) => {
                vec![
                    op("and"),
                    Value::Array(list.iter().map(Statement::to_value).collect()),
                ]
            }
            Statement::Or(list) => {
                vec![
                    op("or"),
                    Value::Array(list.iter().map(Statement::to_value).collect()),
                ]
            }
            Statement::All(s, inner) => vec![op("all"), sel(s), inner.to_value()],
            Statement::Any(s, inner) => vec![op("any"), sel(s), inner.to_value()],
        };
        Value::Array(items)
    }

    fn eval(&self, args: &Value, budget: &mut Budget) -> Result<bool, Exhausted> {
        budget.spend(1)?;
        match self {
            Statement::Equal(sel, want) => match sel.select(args, budget)? {
                Some(got) => deep_equal(&got, want, budget),
                None => Ok(false),
            },
            Statement::NotEqual(sel, want) => match sel.select(args, budget)? {
                Some(got) => deep_equal(&got, want, budget).map(|eq| !eq),
                None => Ok(false),
            },
            Statement::Compare(sel, cmp, n) => {
                let got = sel.select(args, budget)?;
                let ord = got.as_deref().and_then(Number::of).and_then(|g| g.cmp(*n));
                Ok(ord.is_some_and(|o| cmp.holds(o)))
            }
            Statement::Like(sel, pattern) => match sel.select(args, budget)?.as_deref() {
                Some(Value::Text(t)) => {
                    budget.spend(1 + t.len() as u64 / 64)?;
                    Ok(pattern.is_match(t))
                }
                _ => Ok(false),
            },
            Statement::Not(inner) => inner.eval(args, budget).map(|b| !b),
            Statement::And(list) => {
                for s in list {
                    if !s.eval(args, budget)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Statement::Or(list) => {
                if list.is_empty() {
                    return Ok(true);
                }
                for s in list {
                    if s.eval(args, budget)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Statement::All(sel, inner) => quantify(sel, inner, args, budget, true),
            Statement::Any(sel, inner) => quantify(sel, inner, args, budget, false),
        }
    }
}

/// `all` (`every == true`) or `any` over a list's items or a map's values.
fn quantify(
    sel: &Selector,
    inner: &Statement,
    args: &Value,
    budget: &mut Budget,
    every: bool,
) -> Result<bool, Exhausted> {
    let Some(collection) = sel.select(args, budget)? else {
        return Ok(false);
    };
    let items: Vec<&Value> = match collection.as_ref() {
        Value::Array(items) => items.iter().collect(),
        Value::Map(entries) => entries.iter().map(|(_, v)| v).collect(),
        _ => return Ok(false),
    };
    for item in items {
        if inner.eval(item, budget)? != every {
            return Ok(!every);
        }
    }
    Ok(every)
}

/// Deep equality where integers and floats compare by value and maps ignore entry order.
fn deep_equal(a: &Value, b: &Value, budget: &mut Budget) -> Result<bool, Exhausted> {
    budget.spend(1)?;
    if let (Some(x), Some(y)) = (Number::of(a), Number::of(b)) {
        return Ok(x.cmp(y) == Some(Ordering::Equal));
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            for (p, q) in x.iter().zip(y) {
                if !deep_equal(p, q, budget)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        (Value::Map(x), Value::Map(y)) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            for (k, v) in x {
                budget.spend(y.len() as u64)?;
                let Some((_, w)) = y.iter().find(|(k2, _)| k2 == k) else {
                    return Ok(false);
                };
                if !deep_equal(v, w, budget)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        (Value::Tag(t, x), Value::Tag(u, y)) => Ok(t == u && deep_equal(x, y, budget)?),
        (Value::Text(x), Value::Text(y)) => Ok(x == y),
        (Value::Bytes(x), Value::Bytes(y)) => Ok(x == y),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Null, Value::Null) => Ok(true),
        _ => Ok(false),
    }
}

/// Number of nodes in a value, the cost of copying it.
fn weight(value: &Value) -> u64 {
    match value {
        Value::Array(items) => 1 + items.iter().map(weight).sum::<u64>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| weight(k) + weight(v))
                .sum::<u64>()
        }
        Value::Tag(_, inner) => 1 + weight(inner),
        _ => 1,
    }
}

impl Selector {
    /// The selector `.name`.
    pub fn field(name: &str) -> Selector {
        let simple = is_identifier(name);
        let text = if simple {
            format!(".{name}")
        } else {
            format!(".[{}]", quote(name))
        };
        let step = Step::Field(name.into());
        Selector {
            text,
            segments: vec![Segment {
                step,
                optional: false,
            }],
        }
    }

    /// The selector `.`: the whole value (inside `all` or `any`, the item at hand).
    pub fn whole() -> Selector {
        Selector {
            text: ".".into(),
            segments: Vec::new(),
        }
    }

    /// Parses selector text such as `.`, `.a.b[0]`, `.tags[]`, `.["odd key"]?`.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Selector`] naming the problem.
    pub fn parse(text: &str) -> Result<Selector, PolicyError> {
        let fail = |reason| PolicyError::Selector {
            text: text.chars().take(60).collect(),
            reason,
        };
        if text.len() > MAX_SELECTOR_LEN {
            return Err(fail("selector is too long"));
        }
        let Some(rest) = text.strip_prefix('.') else {
            return Err(fail("a selector starts with '.'"));
        };
        let mut segments = Vec::new();
        let mut chars = rest.char_indices().peekable();
        // After the leading dot (or a separating one) a field name or a bracket must follow.
        let mut after_dot = true;
        while let Some(&(_, c)) = chars.peek() {
            let step = match c {
                '.' if after_dot => return Err(fail("two dots in a row")),
                '.' => {
                    chars.next();
                    after_dot = true;
                    continue;
                }
                '[' => {
                    chars.next();
                    parse_bracket(&mut chars).map_err(fail)?
                }
                c if after_dot && is_identifier_char(c) => {
                    let mut name = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if !is_identifier_char(c) {
                            break;
                        }
                        name.push(c);
                        chars.next();
                    }
                    if name.starts_with(|c: char| c.is_ascii_digit()) {
                        return Err(fail("a dotted field name cannot start with a digit"));
                    }
                    Step::Field(name)
                }
                _ => return Err(fail("unexpected character")),
            };
            let mut optional = false;
            while chars.next_if(|&(_, c)| c == '?').is_some() {
                optional = true;
            }
            segments.push(Segment { step, optional });
            after_dot = false;
        }
        if after_dot && !segments.is_empty() {
            return Err(fail("a selector cannot end with a separating dot"));
        }
        Ok(Selector {
            text: text.into(),
            segments,
        })
    }

    /// The selector's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Resolves the selector against `root`; `None` when it cannot be resolved.
    fn select<'a>(
        &self,
        root: &'a Value,
        budget: &mut Budget,
    ) -> Result<Option<Cow<'a, Value>>, Exhausted> {
        resolve(&self.segments, Cow::Borrowed(root), budget)
    }
}

/// Resolves the remaining `segments` from `current`. Borrowed input yields borrowed parts; only
/// what `[]` collects and slices of borrowed lists are copied, and that is paid for first.
fn resolve<'a>(
    segments: &[Segment],
    current: Cow<'a, Value>,
    budget: &mut Budget,
) -> Result<Option<Cow<'a, Value>>, Exhausted> {
    let Some((segment, rest)) = segments.split_first() else {
        return Ok(Some(current));
    };
    budget.spend(1)?;
    if segment.step == Step::Values {
        // Every child of a list or map, with the rest of the path applied to each; the
        // children where the rest does not resolve are left out.
        let children: Vec<Cow<'a, Value>> = match current {
            Cow::Borrowed(Value::Array(items)) => items.iter().map(Cow::Borrowed).collect(),
            Cow::Borrowed(Value::Map(entries)) => {
                entries.iter().map(|(_, v)| Cow::Borrowed(v)).collect()
            }
            Cow::Owned(Value::Array(items)) => items.into_iter().map(Cow::Owned).collect(),
            Cow::Owned(Value::Map(entries)) => {
                entries.into_iter().map(|(_, v)| Cow::Owned(v)).collect()
            }
            _ if segment.optional => return resolve(rest, Cow::Owned(Value::Null), budget),
            _ => return Ok(None),
        };
        let mut out = Vec::with_capacity(children.len());
        for child in children {
            if let Some(v) = resolve(rest, child, budget)? {
                budget.spend(weight(&v))?;
                out.push(v.into_owned());
            }
        }
        return Ok(Some(Cow::Owned(Value::Array(out))));
    }
    match step(&segment.step, current, budget)? {
        Some(next) => resolve(rest, next, budget),
        None if segment.optional => resolve(rest, Cow::Owned(Value::Null), budget),
        None => Ok(None),
    }
}

/// One selector step other than `[]`; `None` when it does not apply to `current`.
fn step<'a>(
    step: &Step,
    current: Cow<'a, Value>,
    budget: &mut Budget,
) -> Result<Option<Cow<'a, Value>>, Exhausted> {
    let is_key = |k: &Value, name: &str| k.as_text() == Some(name);
    Ok(match (step, current) {
        // A missing key selects null (UCAN's rule); a later step on null fails.
        (Step::Field(name), Cow::Borrowed(Value::Map(entries))) => {
            budget.spend(entries.len() as u64)?;
            let found = entries.iter().find(|(k, _)| is_key(k, name));
            Some(found.map_or(Cow::Owned(Value::Null), |(_, v)| Cow::Borrowed(v)))
        }
        (Step::Field(name), Cow::Owned(Value::Map(entries))) => {
            budget.spend(entries.len() as u64)?;
            let found = entries.into_iter().find(|(k, _)| is_key(k, name));
            Some(Cow::Owned(found.map_or(Value::Null, |(_, v)| v)))
        }
        (Step::Index(i), Cow::Borrowed(Value::Array(items))) => absolute_index(*i, items.len())
            .and_then(|at| items.get(at))
            .map(Cow::Borrowed),
        (Step::Index(i), Cow::Owned(Value::Array(items))) => {
            let at = absolute_index(*i, items.len());
            at.and_then(|at| items.into_iter().nth(at)).map(Cow::Owned)
        }
        (Step::Index(i), current) => match current.as_ref() {
            Value::Bytes(bytes) => absolute_index(*i, bytes.len())
                .and_then(|at| bytes.get(at))
                .map(|b| Cow::Owned(Value::Integer((*b).into()))),
            _ => None,
        },
        (Step::Slice(start, end), Cow::Borrowed(Value::Array(items))) => {
            let (a, b) = slice_bounds(*start, *end, items.len());
            let part = items.get(a..b).unwrap_or_default();
            budget.spend(part.iter().map(weight).sum())?;
            Some(Cow::Owned(Value::Array(part.to_vec())))
        }
        (Step::Slice(start, end), Cow::Owned(Value::Array(items))) => {
            let (a, b) = slice_bounds(*start, *end, items.len());
            Some(Cow::Owned(Value::Array(
                items
                    .into_iter()
                    .skip(a)
                    .take(b.saturating_sub(a))
                    .collect(),
            )))
        }
        (Step::Slice(start, end), current) => match current.as_ref() {
            Value::Bytes(bytes) => {
                let (a, b) = slice_bounds(*start, *end, bytes.len());
                let part = bytes.get(a..b).unwrap_or_default();
                Some(Cow::Owned(Value::Bytes(part.to_vec())))
            }
            _ => None,
        },
        _ => None,
    })
}

/// Index `i` (negative counts from the end) into a sequence of `len`, if in range.
fn absolute_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let at = if i < 0 { len.checked_add(i)? } else { i };
    (0..len)
        .contains(&at)
        .then(|| usize::try_from(at).ok())
        .flatten()
}

/// Slice bounds clamped into `0..=len`, as jq does; an empty range when start passes end.
fn slice_bounds(start: Option<i64>, end: Option<i64>, len: usize) -> (usize, usize) {
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    let clamp = |x: i64| {
        let x = if x < 0 { n.saturating_add(x) } else { x };
        usize::try_from(x.clamp(0, n)).unwrap_or(0)
    };
    let a = start.map_or(0, clamp);
    let b = end.map_or(len, clamp);
    (a, b.max(a))
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Parses what follows a `[`: `]`, a quoted key, an index or a slice, through the `]`.
fn parse_bracket(chars: &mut Chars<'_>) -> Result<Step, &'static str> {
    match chars.peek().map(|&(_, c)| c) {
        Some(']') => {
            chars.next();
            Ok(Step::Values)
        }
        Some(q @ ('"' | '\'')) => {
            chars.next();
            let mut key = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some(c @ ('\\' | '"' | '\'')) => key.push(c),
                        _ => return Err("unknown escape in a quoted key"),
                    },
                    Some(c) if c == q => break,
                    Some(c) => key.push(c),
                    None => return Err("unterminated quoted key"),
                }
            }
            if chars.next().map(|(_, c)| c) != Some(']') {
                return Err("a quoted key must be followed by ']'");
            }
            Ok(Step::Field(key))
        }
        _ => {
            let mut body = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some(']') => break,
                    Some(c) if c.is_ascii_digit() || c == '-' || c == ':' => body.push(c),
                    _ => return Err("a bracket holds [], a quoted key, an index or a slice"),
                }
            }
            let int = |s: &str| -> Result<Option<i64>, &'static str> {
                if s.is_empty() {
                    return Ok(None);
                }
                s.parse()
                    .map(Some)
                    .map_err(|_| "index is not a 64-bit integer")
            };
            match body.split_once(':') {
                Some((a, b)) => Ok(Step::Slice(int(a)?, int(b)?)),
                None => int(&body)?
                    .map(Step::Index)
                    .ok_or("empty brackets need no index"),
            }
        }
    }
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(is_identifier_char)
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// A key as a double-quoted selector string.
fn quote(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    out.push('"');
    for c in key.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl Pattern {
    /// Parses a glob: `*` matches any run of characters, `\*` is a literal star and `\\` a
    /// literal backslash; any other backslash stands for itself.
    pub fn parse(text: &str) -> Pattern {
        let mut parts = vec![String::new()];
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next_if(|&n| n == '*' || n == '\\') {
                    Some(escaped) => push_last(&mut parts, escaped),
                    None => push_last(&mut parts, '\\'),
                },
                '*' => parts.push(String::new()),
                c => push_last(&mut parts, c),
            }
        }
        Pattern {
            text: text.into(),
            parts,
        }
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `s` matches. Linear in `s` per literal part: with `*` the only wildcard, taking
    /// each middle part at its leftmost occurrence is always right.
    pub fn is_match(&self, s: &str) -> bool {
        let Some((first, rest)) = self.parts.split_first() else {
            return s.is_empty();
        };
        let Some((last, middle)) = rest.split_last() else {
            return s == first;
        };
        if s.len() < first.len() + last.len() || !s.starts_with(first.as_str()) {
            return false;
        }
        if !s.ends_with(last.as_str()) {
            return false;
        }
        let mut window = &s[first.len()..s.len() - last.len()];
        for part in middle {
            match window.find(part.as_str()) {
                Some(at) => window = &window[at + part.len()..],
                None => return false,
            }
        }
        true
    }
}

fn push_last(parts: &mut [String], c: char) {
    if let Some(last) = parts.last_mut() {
        last.push(c);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(json: &str) -> Value {
        let j: serde_json::Value = serde_json::from_str(json).unwrap();
        Value::serialized(&j).unwrap()
    }

    fn holds(policy: &str, args: &str) -> bool {
        Policy::from_value(&v(policy)).unwrap().matches(&v(args))
    }

    #[test]
    fn dataset_helper_encodes_as_the_spec_writes_it() {
        let p = Policy::dataset_equals("water/net3");
        assert_eq!(p.to_value(), v(r#"[["==", ".dataset", "water/net3"]]"#));
        assert!(p.matches(&v(r#"{"dataset": "water/net3"}"#)));
        assert!(!p.matches(&v(r#"{"dataset": "water/net4"}"#)));
        assert!(!p.matches(&v(r#"{}"#)));
    }

    #[test]
    fn selectors_parse_and_resolve() {
        let args = r#"{"to": ["a@x", "b@y", "c@x"], "m": {"k k": 1}, "n": null}"#;
        assert!(holds(r#"[["==", ".to[1]", "b@y"]]"#, args));
        assert!(holds(r#"[["==", ".to[-1]", "c@x"]]"#, args));
        assert!(holds(r#"[["==", ".to[1:]", ["b@y", "c@x"]]]"#, args));
        assert!(holds(r#"[["==", ".to[:-2]", ["a@x"]]]"#, args));
        assert!(holds(r#"[["==", ".m[\"k k\"]", 1]]"#, args));
        assert!(holds(r#"[["==", ".m[]", [1]]]"#, args));
        assert!(holds(r#"[["==", ".to[99]?", null]]"#, args));
        assert!(!holds(r#"[["==", ".to[99]", null]]"#, args));
        assert!(holds(r#"[["==", ".missing", null]]"#, args));
        assert!(!holds(r#"[["==", ".missing.deeper", null]]"#, args));
        assert!(holds(r#"[["==", ".missing.deeper?", null]]"#, args));
        for bad in [
            "", "a", "..", ".a..b", ".a.", ".[", ".[x]", ".[\"a]", ".1a", ".a b",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(Selector::parse(".").unwrap().segments, vec![]);
    }

    #[test]
    fn bytes_are_selected_as_integers() {
        let args = Value::Map(vec![(Value::Text("b".into()), Value::Bytes(vec![1, 140]))]);
        let p = Policy::from_value(&v(r#"[["==", ".b[1]", 140], [">", ".b[-2]", 0]]"#)).unwrap();
        assert!(p.matches(&args));
    }

    #[test]
    fn numbers_compare_by_value_and_non_numbers_are_false() {
        assert!(holds(
            r#"[["==", ".a", 1.0], ["<", ".a", 1.5], [">=", ".a", 1]]"#,
            r#"{"a": 1}"#
        ));
        assert!(!holds(r#"[["<", ".a", 5]]"#, r#"{"a": "3"}"#));
        assert_eq!(
            cmp_int_float(i128::from(u64::MAX), 1.8446744073709552e19),
            Some(Ordering::Less)
        );
        assert_eq!(
            cmp_int_float(1 << 60, (1u64 << 60) as f64),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn like_handles_escapes_and_anchoring() {
        let p = Pattern::parse(r"Alice\*, Bob*, Carol.");
        assert!(p.is_match("Alice*, Bob, Carol."));
        assert!(p.is_match("Alice*, Bob*, Carol."));
        assert!(!p.is_match("Alice, Bob, Carol."));
        assert!(Pattern::parse("*").is_match(""));
        assert!(Pattern::parse("a*a").is_match("aa"));
        assert!(!Pattern::parse("a*a").is_match("a"));
        assert!(Pattern::parse(r"x\\y").is_match(r"x\y"));
        assert!(Pattern::parse(r"x\ny").is_match(r"x\ny"));
        assert!(Pattern::parse("*b*b*").is_match("abcb"));
    }

    #[test]
    fn unresolved_selector_makes_not_equal_false_too() {
        assert!(!holds(r#"[["!=", ".nope.x", 1]]"#, r#"{}"#));
        assert!(holds(r#"[["!=", ".a", 1]]"#, r#"{"a": 2}"#));
    }

    #[test]
    fn policy_round_trips_through_cbor() {
        let text = r#"[["==", ".a", [1, {"b": true}]], ["not", ["like", ".c", "x\\*y*"]],
            ["and", []], ["or", [["<=", ".n", -3]]],
            ["all", ".l[]", ["any", ".", ["!=", ".", 0]]]]"#;
        let value = v(text);
        let policy = Policy::from_value(&value).unwrap();
        assert_eq!(policy.to_value(), value);
        let bytes = crate::cbor::to_vec(&policy).unwrap();
        let back: Policy = crate::cbor::from_slice(&bytes, 4096).unwrap();
        assert_eq!(back, policy);
    }

    #[test]
    fn malformed_policies_are_refused() {
        assert_eq!(
            Policy::from_value(&v("{}")),
            Err(PolicyError::NotAnArray("top level"))
        );
        assert!(matches!(
            Policy::from_value(&v(r#"[["~=", ".a", 1]]"#)),
            Err(PolicyError::UnknownOperator(_))
        ));
        assert!(matches!(
            Policy::from_value(&v(r#"[["==", ".a"]]"#)),
            Err(PolicyError::Arity { .. })
        ));
        assert!(matches!(
            Policy::from_value(&v(r#"[["<", ".a", "1"]]"#)),
            Err(PolicyError::NotANumber(_))
        ));
        let mut deep = r#"["==", ".", 1]"#.to_string();
        for _ in 0..MAX_POLICY_DEPTH {
            deep = format!(r#"["not", {deep}]"#);
        }
        assert_eq!(
            Policy::from_value(&v(&format!("[{deep}]"))),
            Err(PolicyError::TooDeep)
        );
    }

    #[test]
    fn exhausting_the_budget_fails_even_under_not() {
        // Comparing 2,000 items 200 times over blows the budget.
        let big: Vec<u32> = (0..2000).collect();
        let list = serde_json::to_string(&big).unwrap();
        let args = v(&format!(r#"{{"a": {list}}}"#));
        let inner = format!(r#"["not", ["not", ["==", ".a", {list}]]]"#);
        let stmts: Vec<String> = std::iter::repeat_n(inner, 200).collect();
        let policy = Policy::from_value(&v(&format!("[{}]", stmts.join(",")))).unwrap();
        assert!(!policy.matches(&args));
        // The first few statements on their own do hold.
        let few = Policy::new(policy.statements()[..2].to_vec());
        assert!(few.matches(&args));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Glob matching by dynamic programming over characters: slow and obviously right.
        fn reference_match(pattern: &str, s: &str) -> bool {
            // Tokens: Some(c) a literal character, None the wildcard.
            let mut tokens = Vec::new();
            let mut chars = pattern.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => tokens.push(Some(
                        chars.next_if(|&n| n == '*' || n == '\\').unwrap_or('\\'),
                    )),
                    '*' => tokens.push(None),
                    c => tokens.push(Some(c)),
                }
            }
            let s: Vec<char> = s.chars().collect();
            // ok[j]: the tokens so far match the first j characters.
            let mut ok = vec![false; s.len() + 1];
            ok[0] = true;
            for t in tokens {
                let mut next = vec![false; s.len() + 1];
                for j in 0..=s.len() {
                    next[j] = match t {
                        None => ok[j] || (j > 0 && next[j - 1]),
                        Some(c) => j > 0 && ok[j - 1] && s[j - 1] == c,
                    };
                }
                ok = next;
            }
            ok[s.len()]
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                (-3i64..300).prop_map(Value::from),
                prop::sample::select(vec![
                    "==", "!=", "<", ">=", "like", "not", "and", "or", "all", "any", ".", ".a",
                    ".a[0]", ".b[]", ".a?", "*a*", "a", "b",
                ])
                .prop_map(|t| Value::Text(t.into())),
                prop::collection::vec(any::<u8>(), 0..4).prop_map(Value::Bytes),
            ];
            leaf.prop_recursive(4, 40, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::vec((prop::sample::select(vec!["a", "b"]), inner), 0..3)
                        .prop_map(|kv| {
                            let mut seen = std::collections::BTreeMap::new();
                            for (k, v) in kv {
                                seen.insert(k.to_string(), v);
                            }
                            Value::Map(seen.into_iter().map(|(k, v)| (Value::Text(k), v)).collect())
                        }),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn glob_agrees_with_the_reference(
                pattern in "[ab*\\\\]{0,8}",
                s in "[ab*\\\\]{0,10}",
            ) {
                let fast = Pattern::parse(&pattern).is_match(&s);
                prop_assert_eq!(fast, reference_match(&pattern, &s));
            }

            #[test]
            fn selector_parsing_never_panics_and_round_trips(
                text in "[.a-z0-9\\[\\]\"'?:-]{0,16}",
            ) {
                if let Ok(sel) = Selector::parse(&text) {
                    prop_assert_eq!(Selector::parse(sel.as_str()).unwrap(), sel);
                }
            }

            #[test]
            fn arbitrary_policies_parse_evaluate_and_round_trip(p in value(), args in value()) {
                if let Ok(policy) = Policy::from_value(&p) {
                    prop_assert_eq!(policy.to_value(), p);
                    let _ = policy.matches(&args);
                }
            }

            #[test]
            fn generated_statements_evaluate_and_not_negates(
                args in value(),
                sel in prop::sample::select(
                    vec![".", ".a", ".a[0]", ".b[]", ".a?.b", ".[-1]", ".b[1:]"],
                ),
                op in prop::sample::select(vec!["==", "!=", "<", ">=", "like"]),
                quant in prop::sample::select(vec!["all", "any"]),
            ) {
                let rhs = if op == "like" { Value::Text("*a*".into()) } else { Value::from(1) };
                let text = |t: &str| Value::Text(t.into());
                let stmt = Value::Array(vec![text(op), text(sel), rhs]);
                let quantified = Value::Array(vec![text(quant), text("."), stmt.clone()]);
                let negated = Value::Array(vec![text("not"), quantified.clone()]);
                let holds = |s: &Value| {
                    Policy::from_value(&Value::Array(vec![s.clone()])).unwrap().matches(&args)
                };
                let _ = holds(&stmt);
                prop_assert_eq!(holds(&negated), !holds(&quantified));
            }
        }
    }
}
