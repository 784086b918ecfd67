//! Catalogue entries as gossip and catch-up deliver them (`cix/entry@1`), with their data
//! dictionaries: the full decoder, and the rule checks on any payload that parses even when
//! the signature does not hold (so mutated entries reach the rules).
#![no_main]

use cix_protocol::catalogue::{Entry, SignedEntry};
use cix_protocol::{envelope::Envelope, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = SignedEntry::decode(data) {
        assert_eq!(signed.bytes, data);
        let _ = signed.entry.held();
        let _ = signed.entry.level();
    }
    if let Ok(env) = Envelope::decode(data, limits::MAX_ENTRY_BYTES) {
        if let Ok(entry) = env.payload::<Entry>() {
            if entry.check().is_ok() {
                let _ = entry.primary();
                let _ = cix_protocol::caveats::allowed_jurisdictions(&entry);
                let _ = cix_protocol::caveats::is_csv(&entry);
                let _ = cix_protocol::caveats::grant_policy(&entry, Some("fuzz"));
            }
        }
    }
});
