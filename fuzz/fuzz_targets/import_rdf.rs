//! Imported catalogue files in RDF: DCAT-AP as JSON-LD, Turtle and RDF/XML, and the format
//! detection that picks a parser.
#![no_main]

use cix_interchange::{detect, parse, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = detect("catalogue", data);
    let _ = detect("catalogue.rdf", data);
    for format in [
        Format::DcatApJsonld,
        Format::DcatApTurtle,
        Format::DcatApRdfxml,
    ] {
        if let Ok(parsed) = parse(format, data) {
            assert!(
                parsed.drafts.len() + parsed.skipped.len() <= cix_interchange::MAX_IMPORT_RECORDS
            );
        }
    }
});
