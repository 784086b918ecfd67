//! Data dictionaries read from local files: inference from CSV and JSON, validation of a CSV
//! against a dictionary (the inferred one and one built from the input's own JSON), and the
//! type, range and unit helpers they use.
#![no_main]

use cix_protocol::dictionary::{self, Field, FieldType};
use libfuzzer_sys::fuzz_target;

const TYPES: [FieldType; 5] = [
    FieldType::String,
    FieldType::Integer,
    FieldType::Number,
    FieldType::Datetime,
    FieldType::Date,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(fields) = dictionary::infer_csv(data) {
        let _ = dictionary::check(&fields);
        let _ = dictionary::validate_csv(data, &fields);
    }
    if let Ok(fields) = dictionary::infer_json(data) {
        let _ = dictionary::check(&fields);
    }
    if let Ok(fields) = serde_json_fields(data) {
        if dictionary::check(&fields).is_ok() {
            let _ = dictionary::validate_csv(data, &fields);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = dictionary::split_unit(text);
        let _ = dictionary::is_missing(text);
        let (a, b) = text.split_at(
            text.char_indices()
                .nth(text.chars().count() / 2)
                .map_or(0, |(i, _)| i),
        );
        for t in TYPES {
            let _ = dictionary::fits(t, a);
            let _ = dictionary::compare(t, a, b);
        }
    }
});

/// A dictionary as the CLI reads it from a record's `iso.dictionary` (JSON, via serde).
fn serde_json_fields(data: &[u8]) -> Result<Vec<Field>, ()> {
    let v: ciborium::Value = ciborium::from_reader(data).map_err(|_| ())?;
    v.deserialized().map_err(|_| ())
}
