//! Data dictionaries (ISO 37156 5.4): every field of a dataset with its type and unit.
//!
//! A CSV file's dictionary is inferred from its header and values ([`infer_csv`]): the type
//! that every non-empty value fits (integer, number, boolean, date, date-time, text), whether
//! missing values (see [`MISSING_VALUES`]) occur, and the smallest and largest value. A unit is
//! taken from a header of the form `name (unit)` or `name [unit]`. Operators can override every
//! part through the metadata file when they publish, and the file is then checked against the
//! dictionary it will be published with ([`validate_csv`]): each row that breaks it is reported
//! with its physical line number.
//!
//! JSON and GeoJSON files get their structure described ([`infer_json`]): for a GeoJSON
//! feature collection its geometry types and the properties of its features, for other JSON the
//! fields of its records (nested objects as dotted paths), bounded by
//! [`MAX_DICTIONARY_DEPTH`] and [`limits::MAX_DICTIONARY_FIELDS`].
//!
//! `specs/catalogue.md` §9 is the normative description.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};

use crate::catalogue::is_rfc3339;
use crate::limits;

/// Deepest level of nested JSON objects expanded into dotted paths; deeper objects are
/// described as one field of type `object`.
pub const MAX_DICTIONARY_DEPTH: usize = 8;
/// Most rule violations a validation report lists one by one; the rest are only counted.
pub const MAX_LISTED_VIOLATIONS: usize = 20;
/// Largest JSON or GeoJSON file whose structure is described (it is parsed in memory);
/// larger ones are published without a dictionary.
pub const MAX_STRUCTURE_SOURCE_BYTES: u64 = 256 * 1024 * 1024;

/// CSV values treated as missing (ISO 37156 5.4 nullability), after trimming spaces.
pub const MISSING_VALUES: [&str; 6] = ["", "NA", "N/A", "NaN", "null", "NULL"];
/// Spellings of true in CSV.
pub const TRUE_VALUES: [&str; 3] = ["true", "TRUE", "True"];
/// Spellings of false in CSV.
pub const FALSE_VALUES: [&str; 3] = ["false", "FALSE", "False"];

/// The GeoJSON geometry types (RFC 7946 §1.4) a dictionary may name.
pub const GEOMETRY_TYPES: [&str; 7] = [
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
];

/// The type of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Whole numbers.
    Integer,
    /// Decimal numbers.
    Number,
    /// true/false.
    Boolean,
    /// Calendar dates (`YYYY-MM-DD`).
    Date,
    /// Date and time (RFC 3339 or `YYYY-MM-DD HH:MM:SS`).
    Datetime,
    /// Anything else.
    String,
    /// A JSON object (nested deeper than the dictionary describes).
    Object,
    /// A JSON array.
    Array,
    /// A GeoJSON geometry.
    Geojson,
    /// JSON values of more than one type.
    Any,
}

impl FieldType {
    /// Lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::String => "string",
            FieldType::Object => "object",
            FieldType::Array => "array",
            FieldType::Geojson => "geojson",
            FieldType::Any => "any",
        }
    }

    /// Whether values of this type are ordered, so that `min` and `max` apply.
    pub fn is_ranged(&self) -> bool {
        matches!(
            self,
            FieldType::Integer | FieldType::Number | FieldType::Date | FieldType::Datetime
        )
    }

    /// What a value of this type is, for messages ("an integer").
    fn noun(&self) -> &'static str {
        match self {
            FieldType::Integer => "an integer",
            FieldType::Number => "a number",
            FieldType::Boolean => "a boolean (true or false)",
            FieldType::Date => "a date (YYYY-MM-DD)",
            FieldType::Datetime => "a date-time (RFC 3339 or YYYY-MM-DD HH:MM:SS)",
            FieldType::String => "text",
            FieldType::Object => "a JSON object",
            FieldType::Array => "a JSON array",
            FieldType::Geojson => "a GeoJSON geometry",
            FieldType::Any => "any value",
        }
    }
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field of a dataset.
///
/// Fields added after the first revision are optional and left out when absent, so entries
/// signed before them keep their bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Column or property name.
    pub name: String,
    /// Type of its values.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Unit of measure, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<String>,
    /// What the field means.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// Whether values may be missing.
    #[serde(default)]
    pub nullable: bool,
    /// Smallest value (as text, since signed payloads carry no floats): inferred as the
    /// smallest seen, or set by the publisher as a bound.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min: Option<String>,
    /// Largest value.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max: Option<String>,
    /// The only values allowed, as text (set by the publisher).
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none", default)]
    pub allowed: Option<Vec<String>>,
    /// For a `geojson` field: the geometry types that occur, sorted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub geometry_types: Option<Vec<String>>,
    /// For JSON and GeoJSON: how many records (features, array elements) hold a non-null value.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count: Option<u64>,
    /// What the column tells about a person, for the re-identification guard (ISO 37156
    /// 7.4.2.5): `quasi-identifier` or `sensitive` ([`crate::reident`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub privacy: Option<crate::reident::ColumnRole>,
}

impl Field {
    /// A field with a name and a type and nothing else.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Field {
            name: name.into(),
            field_type,
            unit: None,
            description: None,
            nullable: false,
            min: None,
            max: None,
            allowed: None,
            geometry_types: None,
            count: None,
            privacy: None,
        }
    }
}

/// A dictionary that breaks a structural rule (`specs/catalogue.md` rule D3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {index} ({name:?}): {rule}")]
pub struct DictionaryError {
    /// Position of the field, from 0.
    pub index: usize,
    /// Its name (clipped).
    pub name: String,
    /// What is wrong.
    pub rule: String,
}

/// Checks the bounds every dictionary meets, at signing and on receipt: field count, text
/// lengths, enum size, known geometry types, and `min`/`max`/`enum` values that fit the type.
///
/// # Errors
///
/// The first [`DictionaryError`].
pub fn check(fields: &[Field]) -> Result<(), DictionaryError> {
    if fields.len() > limits::MAX_DICTIONARY_FIELDS {
        return Err(DictionaryError {
            index: limits::MAX_DICTIONARY_FIELDS,
            name: String::new(),
            rule: format!("at most {} fields", limits::MAX_DICTIONARY_FIELDS),
        });
    }
    for (index, f) in fields.iter().enumerate() {
        let bad = |rule: String| DictionaryError {
            index,
            name: clip(&f.name, 64),
            rule,
        };
        if f.name.is_empty() {
            return Err(bad("the name must not be empty".into()));
        }
        let texts = [
            ("name", Some(&f.name)),
            ("unit", f.unit.as_ref()),
            ("description", f.description.as_ref()),
            ("min", f.min.as_ref()),
            ("max", f.max.as_ref()),
        ];
        for (key, text) in texts {
            if text.is_some_and(|t| t.len() > limits::MAX_FIELD_TEXT_BYTES) {
                return Err(bad(format!(
                    "{key} is longer than {} bytes",
                    limits::MAX_FIELD_TEXT_BYTES
                )));
            }
        }
        if (f.min.is_some() || f.max.is_some()) && !f.field_type.is_ranged() {
            return Err(bad(format!(
                "min and max apply only to integer, number, date and datetime fields, not {}",
                f.field_type
            )));
        }
        for (key, v) in [("min", &f.min), ("max", &f.max)] {
            if let Some(v) = v {
                if !fits(f.field_type, v) {
                    return Err(bad(format!(
                        "{key} {:?} is not {}",
                        clip(v, 40),
                        f.field_type.noun()
                    )));
                }
            }
        }
        if let (Some(lo), Some(hi)) = (&f.min, &f.max) {
            if compare(f.field_type, lo, hi) == Some(Ordering::Greater) {
                return Err(bad("min is greater than max".into()));
            }
        }
        if let Some(values) = &f.allowed {
            if values.is_empty() || values.len() > limits::MAX_ENUM_VALUES {
                return Err(bad(format!(
                    "enum must list between 1 and {} values",
                    limits::MAX_ENUM_VALUES
                )));
            }
            for v in values {
                if v.len() > limits::MAX_FIELD_TEXT_BYTES {
                    return Err(bad(format!(
                        "an enum value is longer than {} bytes",
                        limits::MAX_FIELD_TEXT_BYTES
                    )));
                }
                if !fits(f.field_type, v) {
                    return Err(bad(format!(
                        "enum value {:?} is not {}",
                        clip(v, 40),
                        f.field_type.noun()
                    )));
                }
            }
        }
        if let Some(types) = &f.geometry_types {
            if f.field_type != FieldType::Geojson {
                return Err(bad("geometry_types applies only to geojson fields".into()));
            }
            if let Some(t) = types.iter().find(|t| !GEOMETRY_TYPES.contains(&t.as_str())) {
                return Err(bad(format!(
                    "{:?} is not a GeoJSON geometry type",
                    clip(t, 40)
                )));
            }
            if types.windows(2).any(|w| w[0] >= w[1]) {
                return Err(bad("geometry_types must be sorted without repeats".into()));
            }
        }
    }
    Ok(())
}

/// Why a dictionary could not be inferred or a file not validated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    /// The CSV could not be read.
    #[error("cannot read csv: {0}")]
    Csv(#[from] csv::Error),
    /// The header has more columns than an entry may describe.
    #[error("the file has {0} fields, more than the {max} a dictionary may hold", max = limits::MAX_DICTIONARY_FIELDS)]
    TooManyColumns(usize),
    /// There is no header row.
    #[error("csv has no header row")]
    NoHeader,
    /// A column of the header has no name.
    #[error("line 1: column {0} of the header has no name")]
    EmptyName(usize),
    /// A header name is too long.
    #[error("line 1: the name of column {0} is longer than {max} bytes", max = limits::MAX_FIELD_TEXT_BYTES)]
    LongName(usize),
    /// The file is separated by something other than commas.
    #[error(
        "line 1: the header is separated by {0:?}, not commas; cix reads comma-separated CSV \
         (RFC 4180): convert the file first"
    )]
    Delimiter(char),
    /// The file is not valid JSON.
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON field path is too long.
    #[error("a JSON field path is longer than {max} bytes", max = limits::MAX_FIELD_TEXT_BYTES)]
    LongPath,
}

/// Whether a (trimmed) CSV value counts as missing.
pub fn is_missing(v: &str) -> bool {
    MISSING_VALUES.contains(&v)
}

fn is_bool(v: &str) -> bool {
    TRUE_VALUES.contains(&v) || FALSE_VALUES.contains(&v)
}

fn is_date(v: &str) -> bool {
    v.len() == 10 && is_rfc3339(v)
}

fn is_datetime(v: &str) -> bool {
    v.len() > 10
        && (is_rfc3339(v) || (v.len() >= 19 && !has_offset(v) && is_rfc3339(&format!("{v}Z"))))
}

/// Whether a date-time text ends with `Z` or a numeric offset.
fn has_offset(v: &str) -> bool {
    let b = v.as_bytes();
    matches!(b.last(), Some(b'Z' | b'z'))
        || (b.len() >= 25 && matches!(b[b.len() - 6], b'+' | b'-'))
}

fn is_number(v: &str) -> bool {
    v.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Whether a (trimmed, non-missing) CSV value is of type `t`.
pub fn fits(t: FieldType, v: &str) -> bool {
    match t {
        FieldType::Integer => v.parse::<i64>().is_ok(),
        FieldType::Number => is_number(v),
        FieldType::Boolean => is_bool(v),
        FieldType::Date => is_date(v),
        FieldType::Datetime => is_date(v) || is_datetime(v),
        FieldType::String | FieldType::Any => true,
        FieldType::Object => {
            serde_json::from_str::<serde_json::Value>(v).is_ok_and(|j| j.is_object())
        }
        FieldType::Array => {
            serde_json::from_str::<serde_json::Value>(v).is_ok_and(|j| j.is_array())
        }
        FieldType::Geojson => serde_json::from_str::<serde_json::Value>(v).is_ok_and(|j| {
            j["type"]
                .as_str()
                .is_some_and(|t| GEOMETRY_TYPES.contains(&t))
        }),
    }
}

/// Nanoseconds since 1970 (UTC) of a date or date-time text; naive date-times count as UTC.
fn instant(v: &str) -> Option<i128> {
    let num = |r: std::ops::Range<usize>| v.get(r).and_then(|t| t.parse::<i64>().ok());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    // Days from civil (proleptic Gregorian), shifted so March is the first month.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut secs = i128::from(days) * 86_400;
    let mut nanos = 0i128;
    if v.len() > 10 {
        secs += i128::from(num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?);
        let mut rest = &v[19..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
            rest = &frac[digits.len()..];
            let padded: String = digits
                .chars()
                .chain(std::iter::repeat('0'))
                .take(9)
                .collect();
            nanos = padded.parse::<i128>().ok()?;
        }
        if let [sign @ (b'+' | b'-'), ..] = rest.as_bytes() {
            let h = rest.get(1..3)?.parse::<i128>().ok()?;
            let mi = rest.get(4..6)?.parse::<i128>().ok()?;
            let off = h * 3600 + mi * 60;
            secs -= if *sign == b'+' { off } else { -off };
        }
    }
    Some(secs * 1_000_000_000 + nanos)
}

/// Orders two values of type `t`; `None` if either does not fit it or the type is unordered.
pub fn compare(t: FieldType, a: &str, b: &str) -> Option<Ordering> {
    match t {
        FieldType::Integer | FieldType::Number => {
            if let (Ok(x), Ok(y)) = (a.parse::<i64>(), b.parse::<i64>()) {
                return Some(x.cmp(&y));
            }
            let (x, y) = (a.parse::<f64>().ok()?, b.parse::<f64>().ok()?);
            x.partial_cmp(&y)
        }
        FieldType::Date | FieldType::Datetime => Some(instant(a)?.cmp(&instant(b)?)),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Nothing,
    Integer,
    Number,
    Boolean,
    Date,
    Datetime,
    Text,
    Object,
    Array,
    Geometry,
    Mixed,
}

fn classify(v: &str) -> Seen {
    if v.parse::<i64>().is_ok() {
        Seen::Integer
    } else if is_number(v) {
        Seen::Number
    } else if is_bool(v) {
        Seen::Boolean
    } else if is_date(v) {
        Seen::Date
    } else if is_datetime(v) {
        Seen::Datetime
    } else {
        Seen::Text
    }
}

/// Combines what two values were. In CSV, values of different kinds make text; in JSON
/// (`json`), values of different JSON types make `any`.
fn widen(a: Seen, b: Seen, json: bool) -> Seen {
    use Seen::*;
    match (a, b) {
        (Nothing, x) | (x, Nothing) => x,
        (x, y) if x == y => x,
        (Integer, Number) | (Number, Integer) => Number,
        (Date, Datetime) | (Datetime, Date) => Datetime,
        (Date | Datetime | Text, Date | Datetime | Text) => Text,
        _ if json => Mixed,
        _ => Text,
    }
}

/// What is known about one field while its values are read.
#[derive(Debug)]
struct Column {
    name: String,
    unit: Option<String>,
    seen: Seen,
    nullable: bool,
    present: u64,
    num_min: Option<String>,
    num_max: Option<String>,
    time_min: Option<String>,
    time_max: Option<String>,
    geometry: BTreeSet<String>,
}

impl Column {
    fn new(name: String, unit: Option<String>) -> Self {
        Column {
            name,
            unit,
            seen: Seen::Nothing,
            nullable: false,
            present: 0,
            num_min: None,
            num_max: None,
            time_min: None,
            time_max: None,
            geometry: BTreeSet::new(),
        }
    }

    /// Records a scalar value of kind `kind` (`text` is its text).
    fn scalar(&mut self, kind: Seen, text: &str, json: bool) {
        self.present += 1;
        self.seen = widen(self.seen, kind, json);
        let (lo, hi, t) = match kind {
            Seen::Integer | Seen::Number => {
                (&mut self.num_min, &mut self.num_max, FieldType::Number)
            }
            Seen::Date | Seen::Datetime => {
                (&mut self.time_min, &mut self.time_max, FieldType::Datetime)
            }
            _ => return,
        };
        if lo
            .as_deref()
            .is_none_or(|m| compare(t, text, m) == Some(Ordering::Less))
        {
            *lo = Some(text.to_string());
        }
        if hi
            .as_deref()
            .is_none_or(|m| compare(t, text, m) == Some(Ordering::Greater))
        {
            *hi = Some(text.to_string());
        }
    }

    fn finish(self, json: bool) -> Field {
        let field_type = match self.seen {
            Seen::Integer => FieldType::Integer,
            Seen::Number => FieldType::Number,
            Seen::Boolean => FieldType::Boolean,
            Seen::Date => FieldType::Date,
            Seen::Datetime => FieldType::Datetime,
            Seen::Object => FieldType::Object,
            Seen::Array => FieldType::Array,
            Seen::Geometry => FieldType::Geojson,
            Seen::Mixed => FieldType::Any,
            Seen::Text => FieldType::String,
            Seen::Nothing if json => FieldType::Any,
            Seen::Nothing => FieldType::String,
        };
        let (min, max) = match field_type {
            FieldType::Integer | FieldType::Number => (self.num_min, self.num_max),
            FieldType::Date | FieldType::Datetime => (self.time_min, self.time_max),
            _ => (None, None),
        };
        // A bound too long to sign is left out rather than refusing the file.
        let short = |v: Option<String>| v.filter(|v| v.len() <= limits::MAX_FIELD_TEXT_BYTES);
        Field {
            name: self.name,
            field_type,
            unit: self.unit,
            nullable: self.nullable || self.seen == Seen::Nothing,
            min: short(min),
            max: short(max),
            geometry_types: (field_type == FieldType::Geojson && !self.geometry.is_empty())
                .then(|| self.geometry.into_iter().collect()),
            count: json.then_some(self.present),
            ..Field::new("", field_type)
        }
    }
}

/// Splits `temp (°C)` or `temp [°C]` into name and unit.
pub fn split_unit(header: &str) -> (String, Option<String>) {
    let h = header.trim();
    for (open, close) in [('(', ')'), ('[', ']')] {
        if let (Some(i), true) = (h.rfind(open), h.ends_with(close)) {
            let unit = h[i + 1..h.len() - 1].trim();
            let name = h[..i].trim();
            if !unit.is_empty() && !name.is_empty() {
                return (name.to_string(), Some(unit.to_string()));
            }
        }
    }
    (h.to_string(), None)
}

/// Looks at the first line already buffered: a header with no comma but semicolons or tabs
/// is a file in another dialect, which would otherwise be read as one wide column.
fn sniff_delimiter<R: Read>(reader: &mut BufReader<R>) -> Result<(), InferError> {
    let buf = reader.fill_buf().map_err(csv::Error::from)?;
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut quoted = false;
    let (mut commas, mut semis, mut tabs) = (0, 0, 0);
    for &b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semis += 1,
            b'\t' if !quoted => tabs += 1,
            _ => {}
        }
    }
    if commas == 0 && semis > 0 {
        return Err(InferError::Delimiter(';'));
    }
    if commas == 0 && tabs > 0 {
        return Err(InferError::Delimiter('\t'));
    }
    Ok(())
}

/// A CSV reader for the dialect cix reads: RFC 4180, comma-separated, UTF-8 (a byte order mark
/// is skipped), rows of any width (checked by the caller).
fn csv_reader<R: Read>(reader: R) -> Result<csv::Reader<BufReader<R>>, InferError> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    sniff_delimiter(&mut buffered)?;
    // Records end at LF alone, so that a record's line break is read with it (a CR before it is
    // trimmed off the last value like any space) and line numbers can be told exactly.
    Ok(csv::ReaderBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(buffered))
}

fn header_columns(headers: &csv::StringRecord) -> Result<Vec<Column>, InferError> {
    if headers.is_empty() {
        return Err(InferError::NoHeader);
    }
    if headers.len() > limits::MAX_DICTIONARY_FIELDS {
        return Err(InferError::TooManyColumns(headers.len()));
    }
    headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let (name, unit) = split_unit(h);
            if name.is_empty() {
                return Err(InferError::EmptyName(i + 1));
            }
            if h.len() > limits::MAX_FIELD_TEXT_BYTES {
                return Err(InferError::LongName(i + 1));
            }
            Ok(Column::new(name, unit))
        })
        .collect()
}

/// Infers a dictionary from CSV bytes: header row, then values (ISO 37156 5.4). Rows whose
/// width differs from the header's are left out of the inference; [`validate_csv`] reports
/// them.
///
/// # Errors
///
/// [`InferError`] if the CSV is malformed (not UTF-8, an unclosed quote), not comma-separated,
/// has no header or an unnamed column, or is too wide.
pub fn infer_csv<R: Read>(reader: R) -> Result<Vec<Field>, InferError> {
    let mut rdr = csv_reader(reader)?;
    let headers = rdr.headers()?.clone();
    let mut cols = header_columns(&headers)?;
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record)? {
        if record.len() != cols.len() || is_blank_crlf(&record) {
            continue;
        }
        for (col, value) in cols.iter_mut().zip(record.iter()) {
            let v = value.trim();
            if is_missing(v) {
                col.nullable = true;
            } else {
                col.scalar(classify(v), v, false);
            }
        }
    }
    Ok(cols.into_iter().map(|c| c.finish(false)).collect())
}

/// The rule a value or row breaks (`specs/catalogue.md` §9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// The header does not name the dictionary's fields.
    Header,
    /// A row has a different number of values than the dictionary has fields.
    Columns,
    /// A value does not fit the field's type.
    Type,
    /// A value is missing where the field is not nullable.
    Required,
    /// A value is below the field's minimum.
    Minimum,
    /// A value is above the field's maximum.
    Maximum,
    /// A value is not one the field allows.
    Enum,
}

impl Rule {
    /// Lower-case name, as reports show it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rule::Header => "header",
            Rule::Columns => "columns",
            Rule::Type => "type",
            Rule::Required => "required",
            Rule::Minimum => "minimum",
            Rule::Maximum => "maximum",
            Rule::Enum => "enum",
        }
    }
}

/// One place where a file breaks its dictionary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Physical line where the row starts (the header is line 1; a quoted value spanning lines
    /// counts each of them).
    pub line: u64,
    /// Column, from 1; absent for a rule about the whole row.
    pub column: Option<usize>,
    /// The field's name, when the rule is about one field.
    pub field: Option<String>,
    /// The rule broken.
    pub rule: Rule,
    /// What was found, in words (values clipped to 40 characters).
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(c) = self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(name) = &self.field {
            write!(f, " ({name})")?;
        }
        write!(f, ": {}: {}", self.rule.as_str(), self.detail)
    }
}

/// The outcome of checking a file against its dictionary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Data rows read (records after the header).
    pub rows: u64,
    /// Records (the header counts as one) with at least one violation.
    pub invalid_rows: u64,
    /// Violations in all.
    pub violations: u64,
    /// The first [`MAX_LISTED_VIOLATIONS`] of them, in file order.
    pub listed: Vec<Violation>,
}

impl Report {
    /// True when nothing broke the dictionary.
    pub fn is_valid(&self) -> bool {
        self.violations == 0
    }

    fn add(&mut self, v: Violation) {
        self.violations += 1;
        if self.listed.len() < MAX_LISTED_VIOLATIONS {
            self.listed.push(v);
        }
    }
}

fn clip(v: &str, max_chars: usize) -> String {
    if v.chars().count() <= max_chars {
        v.to_string()
    } else {
        let mut s: String = v.chars().take(max_chars).collect();
        s.push('…');
        s
    }
}

/// Checks one trimmed value against its field; `None` when it keeps every rule.
fn check_value(f: &Field, v: &str) -> Option<(Rule, String)> {
    if is_missing(v) {
        return (!f.nullable).then(|| {
            (
                Rule::Required,
                format!("a value is required, found {:?}", clip(v, 40)),
            )
        });
    }
    if !fits(f.field_type, v) {
        return Some((
            Rule::Type,
            format!("{:?} is not {}", clip(v, 40), f.field_type.noun()),
        ));
    }
    if let Some(allowed) = &f.allowed {
        if !allowed.iter().any(|a| a == v) {
            return Some((
                Rule::Enum,
                format!(
                    "{:?} is not one of the {} allowed values",
                    clip(v, 40),
                    allowed.len()
                ),
            ));
        }
    }
    if let Some(min) = &f.min {
        if compare(f.field_type, v, min) == Some(Ordering::Less) {
            return Some((
                Rule::Minimum,
                format!("{} is below the minimum {min}", clip(v, 40)),
            ));
        }
    }
    if let Some(max) = &f.max {
        if compare(f.field_type, v, max) == Some(Ordering::Greater) {
            return Some((
                Rule::Maximum,
                format!("{} is above the maximum {max}", clip(v, 40)),
            ));
        }
    }
    None
}

/// A blank line of a CRLF file: records end at LF, so it reads as one value holding CR.
fn is_blank_crlf(record: &csv::StringRecord) -> bool {
    record.len() == 1 && record.get(0) == Some("\r")
}

/// The physical line where `record`, just read, starts, if its own line break was read with
/// it (true for every record but a last one the file does not end with a break after, which
/// the caller corrects). The reader's position is then after that break; every other line
/// break of the record is inside a quoted value. Counting back from the end skips the blank
/// lines the reader passed over before the record, which its start position would include.
fn start_line<R: Read>(rdr: &csv::Reader<R>, record: &csv::StringRecord) -> u64 {
    let inside: u64 = record
        .iter()
        .map(|v| v.bytes().filter(|&b| b == b'\n').count() as u64)
        .sum();
    rdr.position().line().saturating_sub(inside + 1)
}

/// A reader that remembers the last byte it passed on, to tell whether a file ends with a
/// line break.
struct Tail<R> {
    inner: R,
    last: std::rc::Rc<std::cell::Cell<Option<u8>>>,
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(&b) = buf[..n].last() {
            self.last.set(Some(b));
        }
        Ok(n)
    }
}

/// Checks CSV bytes against `fields` (ISO 37156 5.4): the header names the fields in order,
/// every row has one value per field, and each value fits its field's type, nullability,
/// range and allowed values. Reading stops only at malformed CSV; every violation is counted.
///
/// # Errors
///
/// [`InferError`] when the file cannot be read as CSV at all.
pub fn validate_csv<R: Read>(reader: R, fields: &[Field]) -> Result<Report, InferError> {
    let last_byte = std::rc::Rc::new(std::cell::Cell::new(None));
    let mut rdr = csv_reader(Tail {
        inner: reader,
        last: last_byte.clone(),
    })?;
    let headers = rdr.headers()?.clone();
    let mut report = Report::default();
    let mut header_bad = false;
    if headers.len() != fields.len() {
        header_bad = true;
        report.add(Violation {
            line: 1,
            column: None,
            field: None,
            rule: Rule::Header,
            detail: format!(
                "the header has {} columns, the dictionary {} fields",
                headers.len(),
                fields.len()
            ),
        });
    }
    for (i, (h, f)) in headers.iter().zip(fields).enumerate() {
        let (name, _) = split_unit(h);
        if name != f.name {
            header_bad = true;
            report.add(Violation {
                line: 1,
                column: Some(i + 1),
                field: Some(f.name.clone()),
                rule: Rule::Header,
                detail: format!("the header names it {:?}", clip(&name, 40)),
            });
        }
    }
    report.invalid_rows += u64::from(header_bad);
    let mut last_record = report.listed.len();
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record)? {
        last_record = report.listed.len();
        if is_blank_crlf(&record) {
            continue;
        }
        report.rows += 1;
        let line = start_line(&rdr, &record);
        if record.len() != fields.len() {
            report.invalid_rows += 1;
            report.add(Violation {
                line,
                column: None,
                field: None,
                rule: Rule::Columns,
                detail: format!("{} values, expected {}", record.len(), fields.len()),
            });
            continue;
        }
        let mut row_bad = false;
        for (i, (value, f)) in record.iter().zip(fields).enumerate() {
            if let Some((rule, detail)) = check_value(f, value.trim()) {
                row_bad = true;
                report.add(Violation {
                    line,
                    column: Some(i + 1),
                    field: Some(f.name.clone()),
                    rule,
                    detail,
                });
            }
        }
        report.invalid_rows += u64::from(row_bad);
    }
    if report.rows > 0 && last_byte.get() != Some(b'\n') {
        // The last record had no line break of its own to count back over.
        for v in &mut report.listed[last_record..] {
            v.line += 1;
        }
    }
    Ok(report)
}

/// JSON structure inference: fields in first-seen order.
#[derive(Debug, Default)]
struct Shape {
    cols: Vec<Column>,
    index: HashMap<String, usize>,
    records: u64,
    overflow: bool,
}

impl Shape {
    fn col(&mut self, path: &str) -> Option<&mut Column> {
        let i = match self.index.get(path) {
            Some(&i) => i,
            None => {
                if self.cols.len() >= limits::MAX_DICTIONARY_FIELDS {
                    self.overflow = true;
                    return None;
                }
                self.index.insert(path.to_string(), self.cols.len());
                self.cols.push(Column::new(path.to_string(), None));
                self.cols.len() - 1
            }
        };
        self.cols.get_mut(i)
    }

    fn leaf(&mut self, path: &str, v: &serde_json::Value) {
        use serde_json::Value as J;
        let Some(col) = self.col(path) else { return };
        match v {
            J::Null => col.nullable = true,
            J::Bool(_) => col.scalar(Seen::Boolean, "", true),
            J::Number(n) => {
                let kind = if n.is_i64() {
                    Seen::Integer
                } else {
                    Seen::Number
                };
                col.scalar(kind, &n.to_string(), true);
            }
            J::String(s) => {
                let kind = if is_date(s) {
                    Seen::Date
                } else if is_datetime(s) {
                    Seen::Datetime
                } else {
                    Seen::Text
                };
                col.scalar(kind, s, true);
            }
            J::Array(_) => col.scalar(Seen::Array, "", true),
            J::Object(_) => col.scalar(Seen::Object, "", true),
        }
    }

    /// Describes the members of `obj` under `prefix`, expanding nested objects `depth` more
    /// levels.
    fn object(
        &mut self,
        prefix: &str,
        obj: &serde_json::Map<String, serde_json::Value>,
        depth: usize,
        seen: &mut BTreeSet<usize>,
    ) {
        for (key, v) in obj {
            if self.overflow {
                return;
            }
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match v {
                serde_json::Value::Object(inner) if depth > 0 && !inner.is_empty() => {
                    self.object(&path, inner, depth - 1, seen);
                }
                _ => {
                    self.leaf(&path, v);
                    if let Some(&i) = self.index.get(&path) {
                        seen.insert(i);
                    }
                }
            }
        }
    }

    /// Ends one record: fields it lacked are nullable.
    fn end_record(&mut self, seen: &BTreeSet<usize>) {
        self.records += 1;
        for (i, c) in self.cols.iter_mut().enumerate() {
            if !seen.contains(&i) {
                c.nullable = true;
            }
        }
    }

    fn geometry(&mut self, path: &str, g: &serde_json::Value) {
        let Some(col) = self.col(path) else { return };
        match g["type"].as_str() {
            Some(t) if GEOMETRY_TYPES.contains(&t) => {
                col.scalar(Seen::Geometry, "", true);
                col.geometry.insert(t.to_string());
            }
            _ if g.is_null() => col.nullable = true,
            _ => col.scalar(Seen::Mixed, "", true),
        }
    }

    fn finish(self) -> Result<Vec<Field>, InferError> {
        if self
            .cols
            .iter()
            .any(|c| c.name.len() > limits::MAX_FIELD_TEXT_BYTES)
        {
            return Err(InferError::LongPath);
        }
        Ok(self.cols.into_iter().map(|c| c.finish(true)).collect())
    }
}

/// The members of a feature other than its properties, named as such.
const FEATURE_MEMBERS: [&str; 2] = ["geometry", "id"];

fn describe_features(features: &[serde_json::Value], depth: usize) -> Shape {
    let mut shape = Shape::default();
    for feature in features {
        let mut seen = BTreeSet::new();
        shape.geometry("geometry", &feature["geometry"]);
        seen.insert(0);
        if let Some(id) = feature.get("id") {
            shape.leaf("id", id);
            if let Some(&i) = shape.index.get("id") {
                seen.insert(i);
            }
        }
        if let Some(props) = feature["properties"].as_object() {
            let mut renamed = serde_json::Map::new();
            for (k, v) in props {
                let key = if FEATURE_MEMBERS.contains(&k.as_str()) {
                    format!("properties.{k}")
                } else {
                    k.clone()
                };
                renamed.insert(key, v.clone());
            }
            shape.object("", &renamed, depth, &mut seen);
        }
        shape.end_record(&seen);
        if shape.overflow {
            break;
        }
    }
    shape
}

fn describe_json(root: &serde_json::Value, depth: usize) -> Shape {
    use serde_json::Value as J;
    let mut shape = Shape::default();
    match root {
        J::Array(items) => {
            for item in items {
                let mut seen = BTreeSet::new();
                match item {
                    J::Object(obj) => shape.object("", obj, depth, &mut seen),
                    other => {
                        shape.leaf("[]", other);
                        if let Some(&i) = shape.index.get("[]") {
                            seen.insert(i);
                        }
                    }
                }
                shape.end_record(&seen);
                if shape.overflow {
                    break;
                }
            }
        }
        J::Object(obj) => {
            let mut seen = BTreeSet::new();
            shape.object("", obj, depth, &mut seen);
            shape.end_record(&seen);
        }
        other => {
            shape.leaf("$", other);
            shape.end_record(&BTreeSet::from([0]));
        }
    }
    shape
}

/// Describes the structure of a JSON or GeoJSON document (ISO 37156 5.4).
///
/// A GeoJSON `FeatureCollection` (or one `Feature`) gives a `geometry` field of type `geojson`
/// with the geometry types that occur, an `id` field when features have ids, and one field
/// per property; a bare geometry gives the `geometry` field alone. Other JSON is read as
/// records: the elements of a top-level array, or the top-level object as one record; their
/// members are fields, nested objects expanded as dotted paths (`transform.scale`). Nesting is
/// expanded to the deepest level, at most [`MAX_DICTIONARY_DEPTH`], at which the dictionary
/// keeps within [`limits::MAX_DICTIONARY_FIELDS`] fields. Each field's `count` says in how many
/// records it has a non-null value.
///
/// # Errors
///
/// [`InferError::Json`] for invalid JSON, [`InferError::TooManyColumns`] when even the top
/// level has too many distinct members.
pub fn infer_json(bytes: &[u8]) -> Result<Vec<Field>, InferError> {
    let root: serde_json::Value = serde_json::from_slice(bytes)?;
    let kind = root["type"].as_str();
    let features: Option<Vec<serde_json::Value>> = match kind {
        Some("FeatureCollection") => root["features"].as_array().cloned(),
        Some("Feature") => Some(vec![root.clone()]),
        _ => None,
    };
    if kind.is_some_and(|k| GEOMETRY_TYPES.contains(&k)) && root.get("features").is_none() {
        let mut shape = Shape::default();
        shape.geometry("geometry", &root);
        shape.end_record(&BTreeSet::from([0]));
        return shape.finish();
    }
    for depth in (0..=MAX_DICTIONARY_DEPTH).rev() {
        let shape = match &features {
            Some(f) => describe_features(f, depth),
            None => describe_json(&root, depth),
        };
        if !shape.overflow {
            return shape.finish();
        }
    }
    let top = match &root {
        serde_json::Value::Object(o) => o.len(),
        _ => limits::MAX_DICTIONARY_FIELDS + 1,
    };
    Err(InferError::TooManyColumns(
        top.max(limits::MAX_DICTIONARY_FIELDS + 1),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
