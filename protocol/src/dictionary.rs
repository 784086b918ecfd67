//! Data dictionaries (ISO 37156 5.4): every field of a dataset with its type and unit.
//!
//! A CSV file's dictionary is inferred from its header and values ([`infer_csv`]): the type
//! that every non-empty value fits (integer, number, boolean, date, date-time, text), whether
//! empty or `NA` values occur, and the smallest and largest value. A unit is taken from a header
//! of the form `name (unit)` or `name [unit]`. Operators can override every part through the
//! metadata file when they publish.

use serde::{Deserialize, Serialize};

use crate::catalogue::is_rfc3339;
use crate::limits;

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
        }
    }
}

/// One field of a dataset.
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
    /// Smallest value seen (as text, since signed payloads carry no floats).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min: Option<String>,
    /// Largest value seen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max: Option<String>,
}

/// Why a dictionary could not be inferred.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    /// The CSV could not be read.
    #[error("cannot read csv: {0}")]
    Csv(#[from] csv::Error),
    /// The header has more columns than an entry may describe.
    #[error("csv has {0} columns, more than the {max} a dictionary may hold", max = limits::MAX_DICTIONARY_FIELDS)]
    TooManyColumns(usize),
    /// There is no header row.
    #[error("csv has no header row")]
    NoHeader,
}

/// Values treated as missing.
fn is_missing(v: &str) -> bool {
    matches!(v, "" | "NA" | "N/A" | "NaN" | "null" | "NULL")
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
}

fn classify(v: &str) -> Seen {
    if v.parse::<i64>().is_ok() {
        Seen::Integer
    } else if v.parse::<f64>().is_ok_and(f64::is_finite) {
        Seen::Number
    } else if matches!(v, "true" | "false" | "TRUE" | "FALSE" | "True" | "False") {
        Seen::Boolean
    } else if v.len() == 10 && is_rfc3339(v) {
        Seen::Date
    } else if is_rfc3339(v) || (v.len() == 19 && is_rfc3339(&format!("{v}Z"))) {
        Seen::Datetime
    } else {
        Seen::Text
    }
}

fn widen(a: Seen, b: Seen) -> Seen {
    use Seen::*;
    match (a, b) {
        (Nothing, x) | (x, Nothing) => x,
        (x, y) if x == y => x,
        (Integer, Number) | (Number, Integer) => Number,
        (Date, Datetime) | (Datetime, Date) => Datetime,
        _ => Text,
    }
}

struct Column {
    name: String,
    unit: Option<String>,
    seen: Seen,
    nullable: bool,
    min: Option<String>,
    max: Option<String>,
    min_num: f64,
    max_num: f64,
}

/// Splits `temp (°C)` or `temp [°C]` into name and unit.
fn split_unit(header: &str) -> (String, Option<String>) {
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

/// Infers a dictionary from CSV bytes: header row, then values.
///
/// # Errors
///
/// [`InferError`] if the CSV is malformed or too wide.
pub fn infer_csv<R: std::io::Read>(reader: R) -> Result<Vec<Field>, InferError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let headers = rdr.headers()?.clone();
    if headers.is_empty() {
        return Err(InferError::NoHeader);
    }
    if headers.len() > limits::MAX_DICTIONARY_FIELDS {
        return Err(InferError::TooManyColumns(headers.len()));
    }
    let mut cols: Vec<Column> = headers
        .iter()
        .map(|h| {
            let (name, unit) = split_unit(h);
            Column {
                name,
                unit,
                seen: Seen::Nothing,
                nullable: false,
                min: None,
                max: None,
                min_num: f64::INFINITY,
                max_num: f64::NEG_INFINITY,
            }
        })
        .collect();
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record)? {
        for (col, value) in cols.iter_mut().zip(record.iter()) {
            observe(col, value.trim());
        }
    }
    Ok(cols.into_iter().map(finish).collect())
}

fn observe(col: &mut Column, v: &str) {
    if is_missing(v) {
        col.nullable = true;
        return;
    }
    let kind = classify(v);
    col.seen = widen(col.seen, kind);
    match kind {
        Seen::Integer | Seen::Number => {
            if let Ok(x) = v.parse::<f64>() {
                if x < col.min_num {
                    col.min_num = x;
                    col.min = Some(v.to_string());
                }
                if x > col.max_num {
                    col.max_num = x;
                    col.max = Some(v.to_string());
                }
            }
        }
        Seen::Date | Seen::Datetime => {
            if col.min.as_deref().is_none_or(|m| v < m) {
                col.min = Some(v.to_string());
            }
            if col.max.as_deref().is_none_or(|m| v > m) {
                col.max = Some(v.to_string());
            }
        }
        _ => {}
    }
}

fn finish(col: Column) -> Field {
    let field_type = match col.seen {
        Seen::Integer => FieldType::Integer,
        Seen::Number => FieldType::Number,
        Seen::Boolean => FieldType::Boolean,
        Seen::Date => FieldType::Date,
        Seen::Datetime => FieldType::Datetime,
        Seen::Text | Seen::Nothing => FieldType::String,
    };
    let ranged = matches!(
        field_type,
        FieldType::Integer | FieldType::Number | FieldType::Date | FieldType::Datetime
    );
    Field {
        name: col.name,
        field_type,
        unit: col.unit,
        description: None,
        nullable: col.nullable || col.seen == Seen::Nothing,
        min: if ranged { col.min } else { None },
        max: if ranged { col.max } else { None },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn infers_types_units_nulls_and_ranges() {
        let csv = "year,source,net_generation (GWh),ok,when\n\
                   2001-01-01,Fossil Fuels,35361,true,2013-01-01 05:00:00\n\
                   2002-01-01,Nuclear,NA,false,2013-01-01 06:00:00\n\
                   2003-01-01,Renewables,3.5,true,2013-01-01T07:00:00Z\n";
        let d = infer_csv(csv.as_bytes()).unwrap();
        assert_eq!(d.len(), 5);
        assert_eq!(d[0].field_type, FieldType::Date);
        assert_eq!(d[0].min.as_deref(), Some("2001-01-01"));
        assert_eq!(d[1].field_type, FieldType::String);
        assert_eq!(d[2].name, "net_generation");
        assert_eq!(d[2].unit.as_deref(), Some("GWh"));
        assert_eq!(d[2].field_type, FieldType::Number);
        assert!(d[2].nullable);
        assert_eq!(d[2].min.as_deref(), Some("3.5"));
        assert_eq!(d[2].max.as_deref(), Some("35361"));
        assert_eq!(d[3].field_type, FieldType::Boolean);
        assert_eq!(d[4].field_type, FieldType::Datetime);
        assert!(!d[0].nullable);
    }

    #[test]
    fn ragged_rows_are_an_error_not_a_panic() {
        assert!(matches!(
            infer_csv("a,b\n1\n".as_bytes()),
            Err(InferError::Csv(_))
        ));
    }
}
