//! Receipts, their counter-signatures, deletion notices and receipt files (bundles).
#![no_main]

use cix_protocol::receipt::{Bundle, SignedAck, SignedDeletion, SignedReceipt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let receipt = SignedReceipt::decode(data).ok();
    let _ = SignedAck::decode(data);
    let _ = SignedDeletion::decode(data);
    if let Ok(bundle) = Bundle::decode(data) {
        let _ = bundle.to_bytes();
    }
    // A receipt followed by an ack in one input: check the ack against the receipt.
    if let Some(r) = receipt {
        let _ = r.id_hex();
    }
    for cut in [data.len() / 2, data.len() / 3] {
        let (a, b) = data.split_at(cut);
        if let (Ok(r), Ok(ack)) = (SignedReceipt::decode(a), SignedAck::decode(b)) {
            let _ = r.check_ack(&ack);
        }
    }
});
