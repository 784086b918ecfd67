//! `cix dictionary show|export`: a dataset's data dictionary (ISO 37156 5.4) for people, and
//! as a Frictionless Table Schema for tools (`specs/catalogue.md` §9.6 gives the mapping).
//!
//! Both read the entry from the node, so they work for the node's own datasets and for those
//! its peers announced alike.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cix_node::Home;
use cix_protocol::dictionary::{self, Field, FieldType};
use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::output::Out;

#[derive(Debug, Subcommand)]
pub(crate) enum DictionaryCommand {
    /// One row per field of a dataset's data dictionary (ISO 37156 5.4): type, unit,
    /// nullability, range, allowed values; with --json one object with `fields`.
    Show {
        /// Dataset id, or a unique prefix of it.
        id: String,
    },
    /// Write a dataset's data dictionary as a Frictionless Table Schema (JSON), to stdout or
    /// to a file.
    Export {
        /// Dataset id, or a unique prefix of it.
        id: String,
        /// Write the schema to FILE (it appears only once complete) instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// The entry of `id` from the node, and its dictionary.
fn fetch_dictionary(home: &Home, id: &str) -> Result<(Value, Vec<Field>)> {
    let v: Value =
        Client::connect(home)?.get(&format!("/v1/catalogue/{}", crate::url_safe(id)?))?;
    let fields: Vec<Field> = serde_json::from_value(v["record"]["iso"]["dictionary"].clone())
        .context("the node returned an entry whose data dictionary cannot be read")?;
    Ok((v, fields))
}

pub(crate) fn dictionary(home: &Home, cmd: DictionaryCommand, out: &mut Out) -> Result<()> {
    match cmd {
        DictionaryCommand::Show { id } => {
            let (v, fields) = fetch_dictionary(home, &id)?;
            out.dictionary(&v, &fields)
        }
        DictionaryCommand::Export { id, output } => {
            let (v, fields) = fetch_dictionary(home, &id)?;
            let schema = table_schema(&fields);
            let mut text = serde_json::to_string_pretty(&schema)?;
            text.push('\n');
            match output {
                None => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(text.as_bytes())?;
                    stdout.flush()?;
                    Ok(())
                }
                Some(path) => {
                    write_whole(&path, text.as_bytes())?;
                    out.message(
                        &json!({ "dataset": v["dataset"], "output": path, "fields": fields.len() }),
                        &format!(
                            "wrote the Frictionless Table Schema of {} ({} fields) to {}",
                            v["dataset"].as_str().unwrap_or(""),
                            fields.len(),
                            path.display()
                        ),
                    )
                }
            }
        }
    }
}

/// Writes `bytes` to `path` through a temporary file beside it, so nothing half-written is
/// left under that name.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The Frictionless type of a dictionary type: the names coincide, by design.
fn frictionless_type(t: FieldType) -> &'static str {
    t.as_str()
}

/// A dictionary value as JSON of the field's type: numbers for numeric fields, text otherwise.
fn typed(t: FieldType, v: &str) -> Value {
    match t {
        FieldType::Integer | FieldType::Number => {
            if let Ok(i) = v.parse::<i64>() {
                return Value::from(i);
            }
            v.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::from(v), Value::Number)
        }
        _ => Value::from(v),
    }
}

/// The dictionary as a Frictionless Table Schema: `fields` with name, type, format,
/// description, constraints (required, minimum, maximum, enum), cix's `unit` (and for GeoJSON
/// `geometryTypes`) as custom properties, and the table's `missingValues`.
pub(crate) fn table_schema(fields: &[Field]) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .map(|f| {
            let mut o = Map::new();
            o.insert("name".into(), Value::from(f.name.clone()));
            o.insert("type".into(), Value::from(frictionless_type(f.field_type)));
            if f.field_type == FieldType::Datetime {
                // cix accepts `YYYY-MM-DD HH:MM:SS` and offsets, beyond the default format.
                o.insert("format".into(), Value::from("any"));
            }
            if let Some(d) = &f.description {
                o.insert("description".into(), Value::from(d.clone()));
            }
            if let Some(u) = &f.unit {
                o.insert("unit".into(), Value::from(u.clone()));
            }
            if f.field_type == FieldType::Boolean {
                o.insert("trueValues".into(), json!(dictionary::TRUE_VALUES));
                o.insert("falseValues".into(), json!(dictionary::FALSE_VALUES));
            }
            if let Some(g) = &f.geometry_types {
                o.insert("geometryTypes".into(), json!(g));
            }
            let mut c = Map::new();
            c.insert("required".into(), Value::from(!f.nullable));
            if let Some(min) = &f.min {
                c.insert("minimum".into(), typed(f.field_type, min));
            }
            if let Some(max) = &f.max {
                c.insert("maximum".into(), typed(f.field_type, max));
            }
            if let Some(values) = &f.allowed {
                let values: Vec<Value> = values.iter().map(|v| typed(f.field_type, v)).collect();
                c.insert("enum".into(), Value::from(values));
            }
            o.insert("constraints".into(), Value::Object(c));
            Value::Object(o)
        })
        .collect();
    json!({ "fields": fields, "missingValues": dictionary::MISSING_VALUES })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The field types the Frictionless Table Schema specification defines.
    const SPEC_TYPES: [&str; 15] = [
        "string",
        "number",
        "integer",
        "boolean",
        "object",
        "array",
        "date",
        "time",
        "datetime",
        "year",
        "yearmonth",
        "duration",
        "geopoint",
        "geojson",
        "any",
    ];

    #[test]
    fn every_dictionary_type_is_a_frictionless_type() {
        for t in [
            FieldType::Integer,
            FieldType::Number,
            FieldType::Boolean,
            FieldType::Date,
            FieldType::Datetime,
            FieldType::String,
            FieldType::Object,
            FieldType::Array,
            FieldType::Geojson,
            FieldType::Any,
        ] {
            assert!(SPEC_TYPES.contains(&frictionless_type(t)), "{t}");
        }
    }

    #[test]
    fn bounds_and_enums_take_the_fields_type() {
        let mut f = Field::new("n", FieldType::Number);
        f.min = Some("-2".into());
        f.max = Some("3.5".into());
        f.unit = Some("kW".into());
        let mut e = Field::new("e", FieldType::Integer);
        e.allowed = Some(vec!["1".into(), "2".into()]);
        e.nullable = true;
        let s = table_schema(&[f, e]);
        let c = &s["fields"][0]["constraints"];
        assert_eq!(c["minimum"], json!(-2));
        assert_eq!(c["maximum"], json!(3.5));
        assert_eq!(c["required"], json!(true));
        assert_eq!(s["fields"][0]["unit"], json!("kW"));
        assert_eq!(s["fields"][1]["constraints"]["enum"], json!([1, 2]));
        assert_eq!(s["fields"][1]["constraints"]["required"], json!(false));
        assert_eq!(s["missingValues"][0], json!(""));
    }
}
