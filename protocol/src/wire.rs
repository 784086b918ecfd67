//! Messages of the request-response and stream protocols.
//!
//! | protocol | request | response |
//! |---|---|---|
//! | `/cix/access/1` | [`AccessRequest`] | [`AccessResponse`] |
//! | `/cix/transfer/2` | [`TransferRequest`] | [`TransferHeader`], then the verified ranges |
//!
//! Every message is one canonical CBOR item ([`crate::cbor`]) preceded by its length as a
//! 4-byte big-endian integer. On `/cix/access/1` and `/cix/sync/1` each stream carries one
//! request and one response; on `/cix/transfer/2` the requested ranges follow the header,
//! bao-encoded (BLAKE3 verified streaming), until the stream ends. Limits are in [`crate::limits`].

use serde::{Deserialize, Serialize};

use crate::catalogue::DatasetId;
use crate::content::ContentHash;

/// Protocol id of access negotiation.
pub const ACCESS_PROTOCOL: &str = "/cix/access/1";
/// Protocol id of dataset transfer.
pub const TRANSFER_PROTOCOL: &str = "/cix/transfer/2";
/// Protocol id of catalogue catch-up.
pub const SYNC_PROTOCOL: &str = "/cix/sync/1";
/// Gossip topic of catalogue announcements.
pub const CATALOGUE_TOPIC: &str = "cix/catalogue/1";
/// Gossip topic of revocations ([`crate::revocation`]).
pub const REVOCATION_TOPIC: &str = "cix/revocations/1";
/// Gossip topic of dataset withdrawals ([`crate::withdrawal`]).
pub const WITHDRAWAL_TOPIC: &str = "cix/withdrawals/1";

/// A requester asks the owner for access to a dataset (ISO 37156 5.5.3, 8.3.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Requester-chosen id; asking again with the same id asks about the same request.
    #[serde(with = "serde_bytes")]
    pub request: Vec<u8>,
    /// The dataset wanted.
    pub dataset: DatasetId,
    /// What the data will be used for; recorded with the decision.
    pub purpose: String,
    /// The requester accepts the entry's stated terms (shared-public data).
    pub accept_terms: bool,
    /// Only ask what would happen: the owner queues nothing and grants nothing. Used to explain
    /// why an id missing from the local catalogue cannot be fetched (a closed dataset, say).
    #[serde(default, skip_serializing_if = "is_false")]
    pub probe: bool,
    /// The requester's own signed agency profile ([`crate::profile`]), which the owner checks
    /// against the connected peer and uses for the jurisdiction rules (ISO 37156 8.2.2 a, h).
    /// Absent from the encoding when none is sent.
    #[serde(skip_serializing_if = "Option::is_none", default, with = "opt_bytes")]
    pub profile: Option<Vec<u8>>,
    /// Signed membership attestations ([`crate::attestation`]) for shared-group data, at most
    /// [`crate::limits::MAX_ATTESTATIONS`]. Absent from the encoding when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<serde_bytes::ByteBuf>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why access was refused. Stable codes for scripts; the text explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenyCode {
    /// No such dataset here.
    UnknownDataset,
    /// The dataset is closed (ISO 37156 5.5.2) and never leaves its node.
    Closed,
    /// The owner's operator denied the request.
    DeniedByOwner,
    /// Shared-public data needs the terms accepted.
    TermsNotAccepted,
    /// The access mode is not supported by this node (no longer sent by this revision, which
    /// supports every mode; kept so that older answers still decode).
    Unsupported,
    /// The request itself is malformed (purpose too long, say).
    BadRequest,
    /// No valid grant accompanies a transfer request.
    NoGrant,
    /// The content asked for is not held here.
    NotHeld,
    /// A delegation in the presented chain has been revoked.
    Revoked,
    /// The node is overloaded; try later.
    Busy,
    /// The requester's jurisdiction is outside those the dataset may go to (ISO 37156 8.2.2 h).
    Jurisdiction,
    /// The dataset restricts jurisdictions and the requester sent no signed profile saying
    /// where it is (ISO 37156 8.2.2 a, h).
    ProfileRequired,
    /// Shared-group data, and no attestation shows the requester in a group the dataset's rule
    /// accepts (ISO 37156 5.5.3).
    NotInGroup,
    /// The owner withdrew the dataset (ISO 37156 4.2 g); it is no longer served.
    Withdrawn,
}

/// The owner's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum AccessResponse {
    /// Open data: no token is needed, fetch directly.
    Open,
    /// Access granted: a UCAN delegation from the owner to the requester.
    Granted {
        /// The delegation token bytes.
        #[serde(with = "serde_bytes")]
        delegation: Vec<u8>,
    },
    /// Waiting for the owner's decision (shared-named data).
    Pending,
    /// Refused.
    Denied {
        /// Stable reason code.
        code: DenyCode,
        /// Human explanation.
        reason: String,
    },
}

/// Opens a transfer: which content, from where, under which grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    /// The dataset the content belongs to.
    pub dataset: DatasetId,
    /// The content wanted.
    pub content: ContentHash,
    /// The byte ranges wanted, `[start, end)`, ascending and disjoint, each starting on a
    /// chunk group boundary ([`crate::limits::TRANSFER_CHUNK_GROUP_BYTES`]) and ending on one
    /// or at the end of the content; empty for the whole content (and always empty for a
    /// projection). At most [`crate::limits::MAX_TRANSFER_RANGES`] (r2; r1 had `offset`).
    pub ranges: Vec<(u64, u64)>,
    /// A UCAN invocation of `/cix/data/fetch`, signed by the requester; absent for open data.
    #[serde(skip_serializing_if = "Option::is_none", default, with = "opt_bytes")]
    pub invocation: Option<Vec<u8>>,
    /// The delegations the invocation cites.
    #[serde(default)]
    pub proofs: Vec<serde_bytes::ByteBuf>,
    /// The requester's own signed agency profile, for datasets that restrict jurisdictions
    /// (ISO 37156 8.2.2 h); absent from the encoding when none is sent.
    #[serde(skip_serializing_if = "Option::is_none", default, with = "opt_bytes")]
    pub profile: Option<Vec<u8>>,
}

impl TransferRequest {
    /// Checks `ranges` against a content of `size` bytes (`specs/transfer.md` §3): at most
    /// [`limits::MAX_TRANSFER_RANGES`], each non-empty, starting on a chunk group boundary,
    /// ending on one or at `size`, ascending and disjoint. Returns the ranges to serve: the
    /// whole content when the list is empty.
    ///
    /// # Errors
    ///
    /// A text naming the first rule broken.
    pub fn checked_ranges(&self, size: u64) -> Result<Vec<(u64, u64)>, String> {
        use crate::limits;
        let group = limits::TRANSFER_CHUNK_GROUP_BYTES;
        if self.ranges.len() > limits::MAX_TRANSFER_RANGES {
            return Err(format!(
                "{} ranges requested; at most {} (MAX_TRANSFER_RANGES)",
                self.ranges.len(),
                limits::MAX_TRANSFER_RANGES
            ));
        }
        if self.ranges.is_empty() {
            return Ok(vec![(0, size)]);
        }
        let mut previous_end = 0u64;
        for (i, &(start, end)) in self.ranges.iter().enumerate() {
            if start >= end {
                return Err(format!("range {i} [{start}, {end}) is empty or reversed"));
            }
            if end > size {
                return Err(format!(
                    "range {i} [{start}, {end}) goes past the end of the content ({size} bytes)"
                ));
            }
            if start % group != 0 || (end % group != 0 && end != size) {
                return Err(format!(
                    "range {i} [{start}, {end}) is not aligned to chunk groups of {group} bytes"
                ));
            }
            if i > 0 && start < previous_end {
                return Err(format!(
                    "range {i} [{start}, {end}) overlaps or precedes the range before it"
                ));
            }
            previous_end = end;
        }
        Ok(self.ranges.clone())
    }
}

/// The server's answer before any data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum TransferHeader {
    /// Content follows: for the whole content, the requested ranges BLAKE3-verified-streaming
    /// encoded (bao, chunk groups of [`crate::limits::TRANSFER_CHUNK_GROUP_BYTES`]); for a
    /// projection, its raw bytes.
    Ok {
        /// Total size of the content, as the catalogue entry states it.
        size: u64,
        /// Content bytes that follow (the sum of the ranges' lengths, or the projection's size),
        /// not counting the tree's parent hashes interleaved with them.
        length: u64,
        /// Present when the bytes are a projection of the content on some of its fields (the
        /// invocation stated `fields`, ISO 37156 8.2.2 c) rather than the content itself: the
        /// receiver checks the bytes against this, not against the catalogue's hash. Absent
        /// from the encoding for a whole-file transfer, which encodes as in revision r0.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        projection: Option<Projection>,
    },
    /// Refused; the stream closes.
    Refused {
        /// Stable reason code.
        code: DenyCode,
        /// Human explanation.
        reason: String,
    },
}

/// What a projection holds: the CSV of the content with only `fields` (header included, in the
/// dataset's column order), whose BLAKE3 and length the owner states before sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    /// The fields (data dictionary names) it holds, in the dataset's column order: the ones the
    /// invocation asked for.
    pub fields: Vec<String>,
    /// BLAKE3 of the projection's bytes.
    pub content: ContentHash,
    /// Length of the projection in bytes (it starts at offset 0, so `length` equals it).
    pub size: u64,
}

/// A catch-up request. Three forms (`specs/gossip.md` §6):
///
/// - r0 entries: `{? after}`: one page of the responder's own latest entries by entry id;
/// - r0 revocations: `{? after, revocations: true}`: one page of every revocation it knows;
/// - r1 ids: `{since}`: the ids of the records (entries and withdrawals, whoever signed them)
///   that arrived at the responder after its arrival sequence number `since`;
/// - r1 records: `{want}`: the envelopes of those records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Continue after this id (the last one of the previous page): an entry id, or with
    /// `revocations` a revocation id (both are 32-byte BLAKE3 hashes).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub after: Option<crate::catalogue::EntryId>,
    /// Ask for revocations instead of entries. Absent means false, so an entry request encodes
    /// exactly as in revision r0.
    #[serde(default, skip_serializing_if = "is_false")]
    pub revocations: bool,
    /// r1: list the ids of records that arrived after this sequence number of the responder's
    /// (0 for everything).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub since: Option<u64>,
    /// r1: send the envelopes of these records (32-byte ids, at most
    /// [`crate::limits::MAX_SYNC_ENTRIES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub want: Vec<serde_bytes::ByteBuf>,
}

impl SyncRequest {
    /// The r0 request for a peer's own entries after `after`.
    pub fn entries(after: Option<crate::catalogue::EntryId>) -> Self {
        Self {
            after,
            revocations: false,
            since: None,
            want: Vec::new(),
        }
    }

    /// The r0 request for revocations after `after`.
    pub fn revocations(after: Option<crate::catalogue::EntryId>) -> Self {
        Self {
            revocations: true,
            ..Self::entries(after)
        }
    }

    /// The r1 request for record ids after sequence number `since`.
    pub fn ids(since: u64) -> Self {
        Self {
            since: Some(since),
            ..Self::entries(None)
        }
    }

    /// The r1 request for the envelopes of `ids`.
    pub fn want(ids: &[[u8; 32]]) -> Self {
        Self {
            want: ids
                .iter()
                .map(|i| serde_bytes::ByteBuf::from(i.to_vec()))
                .collect(),
            ..Self::entries(None)
        }
    }
}

/// One page of a catch-up answer: envelopes (r0 forms and r1 `want`), or record ids (r1
/// `since`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Signed envelopes (entries, revocations, or for r1 `want` entries and withdrawals), each
    /// checked on receipt like a gossip message.
    pub entries: Vec<serde_bytes::ByteBuf>,
    /// More pages follow.
    pub more: bool,
    /// r1 id page: 32-byte record ids in arrival order, at most
    /// [`crate::limits::MAX_SYNC_IDS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<serde_bytes::ByteBuf>,
    /// r1 id page: the responder's sequence number this page reaches; ask again with it as
    /// `since` for what follows.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub through: Option<u64>,
    /// r1 id page: the responder's store epoch, random and fixed for the life of its store;
    /// a requester whose cursor was taken in another epoch starts again from 0.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub epoch: Option<u64>,
}

impl SyncResponse {
    /// A page of envelopes (r0, and r1 `want`).
    pub fn envelopes(entries: Vec<serde_bytes::ByteBuf>, more: bool) -> Self {
        Self {
            entries,
            more,
            ids: Vec::new(),
            through: None,
            epoch: None,
        }
    }
}

mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<serde_bytes::ByteBuf>::deserialize(d)?.map(|b| b.into_vec()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{cbor, limits};

    #[test]
    fn access_messages_round_trip_canonically() {
        let req = AccessRequest {
            request: vec![1; 16],
            dataset: DatasetId([2; 16]),
            purpose: "flood model calibration".into(),
            accept_terms: false,
            probe: false,
            profile: None,
            attestations: Vec::new(),
        };
        let bytes = cbor::to_vec(&req).unwrap();
        assert_eq!(
            cbor::from_slice::<AccessRequest>(&bytes, limits::MAX_ACCESS_REQUEST_BYTES).unwrap(),
            req
        );
        for resp in [
            AccessResponse::Open,
            AccessResponse::Pending,
            AccessResponse::Granted {
                delegation: vec![9; 40],
            },
            AccessResponse::Denied {
                code: DenyCode::Closed,
                reason: "closed".into(),
            },
        ] {
            let bytes = cbor::to_vec(&resp).unwrap();
            let back: AccessResponse =
                cbor::from_slice(&bytes, limits::MAX_ACCESS_RESPONSE_BYTES).unwrap();
            assert_eq!(back, resp);
        }
    }

    #[test]
    fn access_request_with_profile_and_attestations_round_trips_and_empty_list_is_refused() {
        let req = AccessRequest {
            request: vec![1; 16],
            dataset: DatasetId([2; 16]),
            purpose: "p".into(),
            accept_terms: true,
            probe: false,
            profile: Some(vec![7; 30]),
            attestations: vec![serde_bytes::ByteBuf::from(vec![8u8; 20])],
        };
        let bytes = cbor::to_vec(&req).unwrap();
        let back: AccessRequest =
            cbor::from_slice(&bytes, limits::MAX_ACCESS_REQUEST_BYTES).unwrap();
        assert_eq!(back, req);
        // An explicit empty attestation list is a second encoding of "none": not canonical.
        let mut v = ciborium::Value::serialized(&AccessRequest {
            attestations: Vec::new(),
            ..req
        })
        .unwrap();
        if let ciborium::Value::Map(m) = &mut v {
            m.push((
                ciborium::Value::Text("attestations".into()),
                ciborium::Value::Array(vec![]),
            ));
        }
        let bytes = cbor::value_to_vec(&v).unwrap();
        assert!(
            cbor::from_slice::<AccessRequest>(&bytes, limits::MAX_ACCESS_REQUEST_BYTES).is_err()
        );
    }

    #[test]
    fn transfer_header_without_projection_encodes_as_before_and_with_one_round_trips() {
        let plain = TransferHeader::Ok {
            size: 10,
            length: 10,
            projection: None,
        };
        let bytes = cbor::to_vec(&plain).unwrap();
        // r0's encoding: a map of status, size and length only.
        let v = cbor::value_from_slice(&bytes, limits::MAX_TRANSFER_HEADER_BYTES).unwrap();
        assert_eq!(v.as_map().map(Vec::len), Some(3));
        let projected = TransferHeader::Ok {
            size: 10,
            length: 4,
            projection: Some(Projection {
                fields: vec!["time".into(), "flow".into()],
                content: ContentHash([7; 32]),
                size: 4,
            }),
        };
        for h in [plain, projected] {
            let bytes = cbor::to_vec(&h).unwrap();
            let back: TransferHeader =
                cbor::from_slice(&bytes, limits::MAX_TRANSFER_HEADER_BYTES).unwrap();
            assert_eq!(back, h);
        }
        // An explicit null projection is a second encoding of "none": not canonical.
        let mut v = ciborium::Value::serialized(&TransferHeader::Ok {
            size: 1,
            length: 1,
            projection: None,
        })
        .unwrap();
        if let ciborium::Value::Map(m) = &mut v {
            m.push((
                ciborium::Value::Text("projection".into()),
                ciborium::Value::Null,
            ));
        }
        let bytes = cbor::value_to_vec(&v).unwrap();
        assert!(
            cbor::from_slice::<TransferHeader>(&bytes, limits::MAX_TRANSFER_HEADER_BYTES).is_err()
        );
    }

    #[test]
    fn transfer_ranges_are_checked_for_count_alignment_order_and_bounds() {
        let g = limits::TRANSFER_CHUNK_GROUP_BYTES;
        let with = |ranges: Vec<(u64, u64)>| TransferRequest {
            dataset: DatasetId([2; 16]),
            content: ContentHash([3; 32]),
            ranges,
            invocation: None,
            proofs: vec![],
            profile: None,
        };
        let size = 10 * g + 5;
        assert_eq!(with(vec![]).checked_ranges(size), Ok(vec![(0, size)]));
        let fine = vec![(0, g), (2 * g, 4 * g), (10 * g, size)];
        assert_eq!(with(fine.clone()).checked_ranges(size), Ok(fine));
        for (bad, word) in [
            (vec![(g, g)], "empty"),
            (vec![(0, size + 1)], "past the end"),
            (vec![(1, g)], "aligned"),
            (vec![(0, g + 1)], "aligned"),
            (vec![(2 * g, 3 * g), (0, g)], "overlaps"),
            (vec![(0, 2 * g), (g, 3 * g)], "overlaps"),
        ] {
            let e = with(bad.clone()).checked_ranges(size).unwrap_err();
            assert!(e.contains(word), "{bad:?}: {e}");
        }
        let many: Vec<(u64, u64)> = (0..=limits::MAX_TRANSFER_RANGES as u64)
            .map(|i| (2 * i * g, (2 * i + 1) * g))
            .collect();
        let e = with(many).checked_ranges(u64::MAX).unwrap_err();
        assert!(e.contains("MAX_TRANSFER_RANGES"), "{e}");
    }

    #[test]
    fn transfer_request_round_trips_with_and_without_invocation() {
        for inv in [None, Some(vec![5u8; 10])] {
            let req = TransferRequest {
                dataset: DatasetId([2; 16]),
                content: ContentHash([3; 32]),
                ranges: vec![
                    (0, limits::TRANSFER_CHUNK_GROUP_BYTES),
                    (3 * limits::TRANSFER_CHUNK_GROUP_BYTES, 70_000),
                ],
                invocation: inv,
                proofs: vec![serde_bytes::ByteBuf::from(vec![1u8, 2])],
                profile: None,
            };
            let bytes = cbor::to_vec(&req).unwrap();
            let back: TransferRequest =
                cbor::from_slice(&bytes, limits::MAX_TRANSFER_REQUEST_BYTES).unwrap();
            assert_eq!(back, req);
        }
    }
}
