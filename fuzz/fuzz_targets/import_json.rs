//! Imported catalogue files in JSON: Project Open Data `data.json`, CKAN results, NGSI-LD
//! (FIWARE DCAT-AP entities) and cix's own drafts file.
#![no_main]

use cix_interchange::{parse, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [
        Format::DataJson,
        Format::Ckan,
        Format::NgsiLd,
        Format::CixDrafts,
    ] {
        if let Ok(parsed) = parse(format, data) {
            assert!(
                parsed.drafts.len() + parsed.skipped.len() <= cix_interchange::MAX_IMPORT_RECORDS
            );
        }
    }
});
