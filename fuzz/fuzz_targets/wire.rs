//! Every request and response of the request-response protocols (`/cix/access/1`,
//! `/cix/transfer/2`, `/cix/sync/1`, `/cix/witness/1`, `/cix/receipt/1`), each decoded with its
//! own limit, then the length framing the node reads them with.
#![no_main]

use cix_protocol::audit::{WitnessRequest, WitnessResponse};
use cix_protocol::receipt::{ReceiptRequest, ReceiptResponse};
use cix_protocol::wire::{
    AccessRequest, AccessResponse, SyncRequest, SyncResponse, TransferHeader, TransferRequest,
};
use cix_protocol::{cbor, limits};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};

fn round<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
    limit: usize,
) -> Option<T> {
    let msg: T = cbor::from_slice(bytes, limit).ok()?;
    let again = cbor::to_vec(&msg).expect("a decoded message encodes");
    assert_eq!(again, bytes, "decoder accepted a second encoding");
    Some(msg)
}

fn all(body: &[u8]) {
    let _ = round::<AccessRequest>(body, limits::MAX_ACCESS_REQUEST_BYTES);
    let _ = round::<AccessResponse>(body, limits::MAX_ACCESS_RESPONSE_BYTES);
    if let Some(req) = round::<TransferRequest>(body, limits::MAX_TRANSFER_REQUEST_BYTES) {
        for size in [0, 1, limits::TRANSFER_CHUNK_GROUP_BYTES * 3 + 7, u64::MAX] {
            if let Ok(ranges) = req.checked_ranges(size) {
                let mut end = 0;
                for (s, e) in ranges {
                    assert!(s < e || size == 0, "empty range accepted");
                    assert!(
                        s >= end && e <= size,
                        "overlapping or outside range accepted"
                    );
                    end = e;
                }
            }
        }
    }
    let _ = round::<TransferHeader>(body, limits::MAX_TRANSFER_HEADER_BYTES);
    let _ = round::<SyncRequest>(body, limits::MAX_SYNC_REQUEST_BYTES);
    let _ = round::<SyncResponse>(body, limits::MAX_SYNC_RESPONSE_BYTES);
    let _ = WitnessRequest::decode(body);
    let _ = WitnessResponse::decode(body);
    let _ = round::<ReceiptRequest>(body, limits::MAX_RECEIPT_REQUEST_BYTES);
    let _ = round::<ReceiptResponse>(body, limits::MAX_RECEIPT_RESPONSE_BYTES);
}

fuzz_target!(|data: &[u8]| {
    all(data);
    // As framed on a stream: a 4-byte big-endian length, then the body. A length over the
    // limit or past the end is refused before anything is read.
    if data.len() >= 4 {
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len <= limits::MAX_TRANSFER_REQUEST_BYTES && len <= data.len() - 4 {
            all(&data[4..4 + len]);
        }
    }
});
