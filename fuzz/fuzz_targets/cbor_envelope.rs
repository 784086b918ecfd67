//! The canonical CBOR decoder and the signed envelope every record travels in: whatever the
//! bytes, decoding returns an error or a value that encodes back to the same bytes.
#![no_main]

use cix_protocol::{cbor, envelope::Envelope, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = cbor::value_from_slice(data, limits::MAX_ENTRY_BYTES) {
        // Accepted means canonical: encoding the value again gives the input back.
        let again = cbor::value_to_vec(&v).expect("an accepted value encodes");
        assert_eq!(
            again, data,
            "value_from_slice accepted a non-canonical item"
        );
    }
    if let Ok(env) = Envelope::decode(data, limits::MAX_ENTRY_BYTES) {
        let _ = env.tag();
        let _ = env.payload_value();
        assert!(env.signed_bytes().len() <= data.len());
    }
    // Sequences (exported audit logs) are cut without reading past the end.
    let pieces = cix_protocol::audit::split_sequence(data);
    assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), data.len());
});
