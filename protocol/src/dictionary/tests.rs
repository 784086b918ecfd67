//! Unit tests of dictionary inference and validation (ISO 37156 5.4).

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
    assert_eq!(d[0].max.as_deref(), Some("2003-01-01"));
    assert_eq!(d[1].field_type, FieldType::String);
    assert_eq!(d[1].min, None);
    assert_eq!(d[2].name, "net_generation");
    assert_eq!(d[2].unit.as_deref(), Some("GWh"));
    assert_eq!(d[2].field_type, FieldType::Number);
    assert!(d[2].nullable);
    assert_eq!(d[2].min.as_deref(), Some("3.5"));
    assert_eq!(d[2].max.as_deref(), Some("35361"));
    assert_eq!(d[3].field_type, FieldType::Boolean);
    assert_eq!(d[4].field_type, FieldType::Datetime);
    assert_eq!(d[4].min.as_deref(), Some("2013-01-01 05:00:00"));
    assert_eq!(d[4].max.as_deref(), Some("2013-01-01T07:00:00Z"));
    assert!(!d[0].nullable);
    assert_eq!(d[0].count, None, "CSV fields carry no count");
}

#[test]
fn date_times_are_ordered_by_instant_not_by_text() {
    // 10:00+02:00 is 08:00Z: earlier than 09:00Z though it sorts later as text.
    let csv = "t\n2020-01-01T09:00:00Z\n2020-01-01T10:00:00+02:00\n2020-01-01T08:30:00Z\n";
    let d = infer_csv(csv.as_bytes()).unwrap();
    assert_eq!(d[0].min.as_deref(), Some("2020-01-01T10:00:00+02:00"));
    assert_eq!(d[0].max.as_deref(), Some("2020-01-01T09:00:00Z"));
    assert_eq!(
        compare(FieldType::Datetime, "1969-12-31", "1970-01-01T00:00:00.5Z"),
        Some(Ordering::Less)
    );
}

#[test]
fn integers_compare_exactly_beyond_f64_precision() {
    let csv = "n\n9007199254740993\n9007199254740992\n";
    let d = infer_csv(csv.as_bytes()).unwrap();
    assert_eq!(d[0].min.as_deref(), Some("9007199254740992"));
    assert_eq!(d[0].max.as_deref(), Some("9007199254740993"));
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_name() {
    let d = infer_csv("\u{feff}a,b\n1,2\n".as_bytes()).unwrap();
    assert_eq!(d[0].name, "a");
}

#[test]
fn semicolon_and_tab_separated_files_are_refused_by_name() {
    for (text, sep) in [("a;b\n1;2\n", ';'), ("a\tb\n1\t2\n", '\t')] {
        match infer_csv(text.as_bytes()) {
            Err(InferError::Delimiter(c)) => assert_eq!(c, sep),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    // A comma-separated header with a semicolon inside quotes is fine.
    assert_eq!(infer_csv("\"a;x\",b\n1,2\n".as_bytes()).unwrap().len(), 2);
}

#[test]
fn unnamed_columns_and_broken_csv_are_errors_not_panics() {
    assert!(matches!(
        infer_csv("a,,c\n1,2,3\n".as_bytes()),
        Err(InferError::EmptyName(2))
    ));
    assert!(matches!(
        infer_csv(&b"a,b\n\xff\xfe,1\n"[..]),
        Err(InferError::Csv(_))
    ));
    assert!(matches!(infer_csv(&b""[..]), Err(InferError::NoHeader)));
}

#[test]
fn ragged_rows_are_left_out_of_inference_and_reported_by_validation() {
    let csv = "a,b\n1,2\n3\n4,5,6\n7,8\n";
    let d = infer_csv(csv.as_bytes()).unwrap();
    assert_eq!(d[0].field_type, FieldType::Integer);
    assert_eq!(d[0].max.as_deref(), Some("7"));
    let r = validate_csv(csv.as_bytes(), &d).unwrap();
    assert_eq!(r.rows, 4);
    assert_eq!(r.invalid_rows, 2);
    let lines: Vec<(u64, Rule)> = r.listed.iter().map(|v| (v.line, v.rule)).collect();
    assert_eq!(lines, vec![(3, Rule::Columns), (4, Rule::Columns)]);
}

#[test]
fn an_inferred_dictionary_always_validates_its_own_file() {
    let csv = "a,b (m),c,d\n1,2.5,x,2020-01-01\nNA,-3,,2021-02-03\n";
    let d = infer_csv(csv.as_bytes()).unwrap();
    let r = validate_csv(csv.as_bytes(), &d).unwrap();
    assert!(r.is_valid(), "{r:?}");
    assert_eq!(r.rows, 2);
}

#[test]
fn violations_name_physical_lines_columns_and_rules() {
    // Line 3 holds a quoted value over two lines, so the next record starts on line 5.
    let csv = "id,name,temp (°C),kind\n\
               1,a,20.5,x\n\
               2,\"two\nlines\",21,y\n\
               3,c,hot,x\n\
               4,d,,x\n\
               5,e,99,z\n\
               6,f,-50,x\n";
    let mut d = infer_csv(csv.as_bytes()).unwrap();
    assert_eq!(d[2].field_type, FieldType::String, "'hot' makes text");
    d[2].field_type = FieldType::Number;
    d[2].nullable = false;
    d[2].min = Some("-40".into());
    d[2].max = Some("60".into());
    d[3].allowed = Some(vec!["x".into(), "y".into()]);
    let r = validate_csv(csv.as_bytes(), &d).unwrap();
    let got: Vec<(u64, Option<usize>, Rule)> = r
        .listed
        .iter()
        .map(|v| (v.line, v.column, v.rule))
        .collect();
    assert_eq!(
        got,
        vec![
            (5, Some(3), Rule::Type),
            (6, Some(3), Rule::Required),
            (7, Some(3), Rule::Maximum),
            (7, Some(4), Rule::Enum),
            (8, Some(3), Rule::Minimum),
        ]
    );
    assert_eq!(r.rows, 6);
    assert_eq!(r.invalid_rows, 4);
    assert_eq!(r.violations, 5);
    let text = r.listed[0].to_string();
    assert_eq!(
        text,
        "line 5, column 3 (temp): type: \"hot\" is not a number"
    );
}

#[test]
fn blank_lines_and_crlf_count_as_lines() {
    let d = vec![Field::new("n", FieldType::Integer)];
    for csv in [
        "n\r\n1\r\n\r\nx\r\n\n\ny\r\n",
        "n\n1\n\nx\n\n\ny",
        "n\n1\n\n\"x\"\n\n\ny\n",
    ] {
        let r = validate_csv(csv.as_bytes(), &d).unwrap();
        assert_eq!(r.rows, 3, "{csv:?}");
        let lines: Vec<(u64, Rule)> = r.listed.iter().map(|v| (v.line, v.rule)).collect();
        assert_eq!(lines, [(4, Rule::Type), (7, Rule::Type)], "{csv:?}");
    }
    // A quoted value over lines, then a bad record right after, at the end without a break.
    let r = validate_csv(
        "n,s\n1,\"a\r\nb\nc\"\nx,d".as_bytes(),
        &[
            Field::new("n", FieldType::Integer),
            Field::new("s", FieldType::String),
        ],
    )
    .unwrap();
    assert_eq!(r.listed[0].line, 5);
    // The CR of a CRLF file is not part of the last value.
    let d = infer_csv("a,b\r\n1,2\r\n".as_bytes()).unwrap();
    assert_eq!(
        (d[1].name.as_str(), d[1].field_type),
        ("b", FieldType::Integer)
    );
}

#[test]
fn a_header_that_does_not_match_is_reported_on_line_1() {
    let d = infer_csv("a,b\n1,2\n".as_bytes()).unwrap();
    let r = validate_csv("a,c\n1,2\n".as_bytes(), &d).unwrap();
    assert_eq!(r.listed.len(), 1);
    assert_eq!((r.listed[0].line, r.listed[0].rule), (1, Rule::Header));
    let r = validate_csv("a\n1\n".as_bytes(), &d).unwrap();
    assert_eq!(r.listed[0].rule, Rule::Header);
    assert_eq!(r.listed[1].rule, Rule::Columns);
}

#[test]
fn only_a_bounded_number_of_violations_is_listed_but_all_are_counted() {
    let mut csv = String::from("n\n");
    for _ in 0..1000 {
        csv.push_str("x\n");
    }
    let mut d = vec![Field::new("n", FieldType::Integer)];
    d[0].nullable = false;
    let r = validate_csv(csv.as_bytes(), &d).unwrap();
    assert_eq!(r.violations, 1000);
    assert_eq!(r.invalid_rows, 1000);
    assert_eq!(r.listed.len(), MAX_LISTED_VIOLATIONS);
    assert_eq!(
        r.listed.last().unwrap().line,
        MAX_LISTED_VIOLATIONS as u64 + 1
    );
}

#[test]
fn check_refuses_bounds_that_do_not_fit_the_type() {
    let mut f = Field::new("n", FieldType::Integer);
    f.min = Some("1.5".into());
    assert!(check(&[f.clone()]).is_err());
    f.min = Some("5".into());
    f.max = Some("4".into());
    assert!(check(&[f.clone()]).unwrap_err().rule.contains("greater"));
    f.max = Some("6".into());
    assert!(check(&[f.clone()]).is_ok());
    let mut s = Field::new("s", FieldType::String);
    s.min = Some("a".into());
    assert!(check(&[s]).is_err());
    let mut e = Field::new("e", FieldType::Integer);
    e.allowed = Some(vec!["1".into(), "two".into()]);
    assert!(check(&[e]).unwrap_err().rule.contains("two"));
    let mut g = Field::new("geometry", FieldType::Geojson);
    g.geometry_types = Some(vec!["Polygon".into(), "Blob".into()]);
    assert!(check(&[g]).is_err());
    let long = Field::new(
        "x".repeat(limits::MAX_FIELD_TEXT_BYTES + 1),
        FieldType::String,
    );
    assert!(check(&[long]).is_err());
    assert!(check(&[Field::new("", FieldType::String)]).is_err());
}

#[test]
fn geojson_features_give_geometry_types_and_properties() {
    let doc = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","id":1,"geometry":{"type":"Polygon","coordinates":[]},
         "properties":{"name":"a","pop":10,"geometry":"x","meta":{"since":"2001-02-03"}}},
        {"type":"Feature","id":2,"geometry":{"type":"MultiPolygon","coordinates":[]},
         "properties":{"name":"b","pop":2.5,"area":null}},
        {"type":"Feature","geometry":{"type":"Polygon","coordinates":[]},
         "properties":{"name":"c","pop":7}}]}"#;
    let d = infer_json(doc.as_bytes()).unwrap();
    let names: Vec<&str> = d.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "geometry",
            "id",
            "meta.since",
            "name",
            "pop",
            "properties.geometry",
            "area"
        ],
        "members in name order within a feature, fields in first-seen order"
    );
    assert_eq!(d[0].field_type, FieldType::Geojson);
    assert_eq!(
        d[0].geometry_types.as_deref(),
        Some(&["MultiPolygon".to_string(), "Polygon".to_string()][..])
    );
    assert_eq!(d[0].count, Some(3));
    assert!(!d[0].nullable);
    assert_eq!(d[1].field_type, FieldType::Integer);
    assert!(d[1].nullable, "the third feature has no id");
    assert_eq!(d[4].field_type, FieldType::Number);
    assert_eq!(
        (d[4].min.as_deref(), d[4].max.as_deref()),
        (Some("2.5"), Some("10"))
    );
    assert_eq!(d[2].field_type, FieldType::Date);
    assert_eq!(d[2].count, Some(1));
    assert_eq!(d[6].field_type, FieldType::Any, "only null seen");
    assert!(d[6].nullable);
    assert!(check(&d).is_ok());
}

#[test]
fn json_records_are_flattened_into_dotted_paths() {
    let doc = r#"[{"a":1,"b":{"c":"x","d":[1]}},{"a":"one","b":{"c":"y"}}]"#;
    let d = infer_json(doc.as_bytes()).unwrap();
    let got: Vec<(&str, FieldType, bool, Option<u64>)> = d
        .iter()
        .map(|f| (f.name.as_str(), f.field_type, f.nullable, f.count))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", FieldType::Any, false, Some(2)),
            ("b.c", FieldType::String, false, Some(2)),
            ("b.d", FieldType::Array, true, Some(1)),
        ]
    );
}

#[test]
fn json_nesting_is_cut_to_fit_the_field_limit() {
    // One top-level object whose child has more members than a dictionary may hold: it is
    // described as one `object` field instead.
    let mut inner = serde_json::Map::new();
    for i in 0..(limits::MAX_DICTIONARY_FIELDS + 10) {
        inner.insert(format!("k{i}"), serde_json::Value::from(i));
    }
    let doc = serde_json::json!({"kind": "x", "wide": inner});
    let d = infer_json(doc.to_string().as_bytes()).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[1].name, "wide");
    assert_eq!(d[1].field_type, FieldType::Object);
    // Deep nesting stops at MAX_DICTIONARY_DEPTH.
    let mut deep = serde_json::json!(1);
    for _ in 0..(MAX_DICTIONARY_DEPTH + 5) {
        deep = serde_json::json!({ "n": deep });
    }
    let d = infer_json(deep.to_string().as_bytes()).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].name.matches('n').count(), MAX_DICTIONARY_DEPTH + 1);
    assert_eq!(d[0].field_type, FieldType::Object);
    // Too many members at the top is an error naming the limit.
    let doc = serde_json::Value::Object(inner);
    assert!(matches!(
        infer_json(doc.to_string().as_bytes()),
        Err(InferError::TooManyColumns(_))
    ));
    assert!(matches!(infer_json(b"{not json"), Err(InferError::Json(_))));
}

#[test]
fn new_field_keys_are_left_out_when_absent() {
    // Entries signed before `enum`, `geometry_types` and `count` existed keep their bytes.
    let f = Field::new("a", FieldType::Integer);
    let mut bytes = Vec::new();
    ciborium::into_writer(&f, &mut bytes).unwrap();
    let v: ciborium::Value = ciborium::from_reader(&bytes[..]).unwrap();
    let keys: Vec<String> = v
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_text().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["name", "type", "nullable"]);
}
