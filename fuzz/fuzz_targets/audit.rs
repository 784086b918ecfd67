//! Audit records, signed log heads and witness counter-signatures (`/cix/witness/1`), and
//! exported logs (a CBOR sequence) through the chain verifier.
#![no_main]

use cix_protocol::audit::{self, AuditRecord, Head, SignedRecord, Witness};
use cix_protocol::{envelope::Envelope, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = SignedRecord::decode(data);
    let _ = Head::decode(data);
    let _ = Witness::decode(data);
    if let Ok(env) = Envelope::decode(data, limits::MAX_AUDIT_RECORD_BYTES) {
        if let Ok(r) = env.payload::<AuditRecord>() {
            let _ = r.check();
        }
    }
    let pieces = audit::split_sequence(data);
    let _ = audit::verify_chain(pieces.iter().copied(), None);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = audit::AuditKind::parse(text);
        let _ = text.parse::<audit::AuditHash>();
    }
});
