//! Every size limit on the wire, in one place. `specs/limits.md` repeats each number; a test
//! there keeps the two in step.
//!
//! A node refuses any message over its limit before parsing it, so no peer can make it
//! allocate more than these bounds (plus a constant per connection).

/// Largest signed catalogue entry (the envelope bytes), and so the largest gossip message.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// Largest title of an entry.
pub const MAX_TITLE_BYTES: usize = 512;
/// Most keywords on one entry.
pub const MAX_KEYWORDS: usize = 64;
/// Largest entry description, and largest of any other long text in an entry (version
/// notes, a distribution's description, a translated description).
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;
/// Largest short text in an entry: a keyword, theme, identifier, licence, media type, format,
/// contact detail, frequency and the like.
pub const MAX_SHORT_TEXT_BYTES: usize = 1024;
/// Longest URL (landing page, access or download URL, documentation page, ...).
pub const MAX_URL_BYTES: usize = 2048;
/// Most items in any other list of an entry (themes, languages, conforms-to,
/// documentation pages, legislation).
pub const MAX_LIST_ITEMS: usize = 64;
/// Most translations of an entry's title, description and keywords.
pub const MAX_TRANSLATIONS: usize = 16;
/// Most distributions on one entry.
pub const MAX_DISTRIBUTIONS: usize = 16;
/// Most fields in one data dictionary.
pub const MAX_DICTIONARY_FIELDS: usize = 256;
/// Longest text in a data dictionary field: its name, unit, description, `min`, `max`, and
/// each `enum` value.
pub const MAX_FIELD_TEXT_BYTES: usize = 1024;
/// Most allowed values (`enum`) one data dictionary field may list.
pub const MAX_ENUM_VALUES: usize = 256;
/// Largest access request on `/cix/access/1` (it may carry a profile and attestations).
pub const MAX_ACCESS_REQUEST_BYTES: usize = 24 * 1024;
/// Largest access response on `/cix/access/1` (it may carry a delegation token).
pub const MAX_ACCESS_RESPONSE_BYTES: usize = 32 * 1024;
/// Largest purpose text a requester may state.
pub const MAX_PURPOSE_BYTES: usize = 1024;
/// Largest reason text in a refusal.
pub const MAX_REASON_BYTES: usize = 1024;
/// Largest transfer request on `/cix/transfer/2` (an invocation and its proof chain, plus up
/// to `MAX_TRANSFER_RANGES` ranges of 19 bytes each encoded).
pub const MAX_TRANSFER_REQUEST_BYTES: usize = 160 * 1024;
/// Largest transfer response header on `/cix/transfer/2` (a projection's header lists the
/// fields it holds, which an invocation of at most `MAX_TOKEN_BYTES` named).
pub const MAX_TRANSFER_HEADER_BYTES: usize = 16 * 1024;
/// Most byte ranges one transfer request may ask for (r2).
pub const MAX_TRANSFER_RANGES: usize = 64;
/// Chunk group of the BLAKE3 verified stream on `/cix/transfer/2` (16 BLAKE3 chunks of 1 KiB):
/// the unit a receiver verifies, and so the most bytes a bad sender can make it accept before
/// it is caught; ranges start on multiples of it. The sender's outboard holds one 64-byte hash
/// pair per group (0.4 % of the file).
pub const TRANSFER_CHUNK_GROUP_BYTES: u64 = 16 * 1024;
/// Largest dataset a node accepts in one transfer (1 TiB).
pub const MAX_DATASET_BYTES: u64 = 1 << 40;
/// Most entries in one catch-up page on `/cix/sync/1`.
pub const MAX_SYNC_ENTRIES: usize = 64;
/// Largest catch-up response on `/cix/sync/1`.
pub const MAX_SYNC_RESPONSE_BYTES: usize = 1024 * 1024;
/// Largest catch-up request on `/cix/sync/1` (r1: a request may name up to
/// `MAX_SYNC_ENTRIES` record ids it wants, 34 bytes each encoded).
pub const MAX_SYNC_REQUEST_BYTES: usize = 4096;
/// Most record ids in one id page of `/cix/sync/1` (r1).
pub const MAX_SYNC_IDS: usize = 1024;
/// Largest signed withdrawal (`cix/withdraw@1`, the envelope bytes).
pub const MAX_WITHDRAWAL_BYTES: usize = 2048;
/// Longest `reason` in a withdrawal.
pub const MAX_WITHDRAWAL_REASON_BYTES: usize = 512;
/// Largest signed agency profile (`cix/profile@1`, the envelope bytes), privacy notice
/// included.
pub const MAX_PROFILE_BYTES: usize = 8 * 1024;
/// Longest agency name in a profile.
pub const MAX_AGENCY_NAME_BYTES: usize = 256;
/// Most sectors in a profile.
pub const MAX_SECTORS: usize = 16;
/// Largest signed group membership attestation (`cix/attest@1`, the envelope bytes).
pub const MAX_ATTESTATION_BYTES: usize = 1024;
/// Most attestations one access request may carry.
pub const MAX_ATTESTATIONS: usize = 8;
/// Longest group name, in an attestation or an entry's group rule.
pub const MAX_GROUP_NAME_BYTES: usize = 64;
/// Most groups an entry's group rule may accept.
pub const MAX_GROUPS: usize = 16;
/// Largest dataset an owner serves as a projection of some of its fields (ISO 37156 8.2.2 c):
/// the owner projects the whole file before the header goes out, so this bounds the wait.
pub const MAX_PROJECTION_SOURCE_BYTES: u64 = 1 << 30;
/// Longest CSV row (record) an owner reads while projecting; a longer row is refused, so a
/// projection holds at most this much of the file in memory at once.
pub const MAX_PROJECTION_ROW_BYTES: usize = 1024 * 1024;
/// Largest signed receipt (`cix/receipt@1`, the envelope bytes).
pub const MAX_RECEIPT_BYTES: usize = 2048;
/// Largest signed counter-signature of a receipt (`cix/receipt-ack@1`).
pub const MAX_RECEIPT_ACK_BYTES: usize = 512;
/// Largest signed deletion notice (`cix/deletion@1`).
pub const MAX_DELETION_BYTES: usize = 1024;
/// Largest receipt bundle (a receipt file: receipt and counter-signature).
pub const MAX_RECEIPT_BUNDLE_BYTES: usize = 4096;
/// Largest request on `/cix/receipt/1` (a receipt or a deletion notice, framed).
pub const MAX_RECEIPT_REQUEST_BYTES: usize = 4096;
/// Largest response on `/cix/receipt/1`: a counter-signature, a refusal, or the node's signed
/// profile (at most `MAX_PROFILE_BYTES`) with its framing.
pub const MAX_RECEIPT_RESPONSE_BYTES: usize = 9 * 1024;
/// Longest text in a privacy notice: the controller, third-party disclosure, individuals'
/// rights, cross-border transfers, contact and URL (ISO 37156 8.3.3).
pub const MAX_NOTICE_TEXT_BYTES: usize = 512;
/// Most purposes a privacy notice lists.
pub const MAX_NOTICE_PURPOSES: usize = 8;
/// Largest audit record (`cix/audit@1`, the envelope bytes), stored or exported.
pub const MAX_AUDIT_RECORD_BYTES: usize = 8 * 1024;
/// Longest audit record kind name.
pub const MAX_AUDIT_KIND_BYTES: usize = 32;
/// Longest short text in an audit record: the legal basis and the token CID.
pub const MAX_AUDIT_TEXT_BYTES: usize = 256;
/// Longest free `detail` text in an audit record.
pub const MAX_AUDIT_DETAIL_BYTES: usize = 2048;
/// Largest signed log head (`cix/head@1`) or counter-signature (`cix/witness@1`).
pub const MAX_HEAD_BYTES: usize = 512;
/// Largest request on `/cix/witness/1` (one signed head).
pub const MAX_WITNESS_REQUEST_BYTES: usize = 1024;
/// Most heads in one `/cix/witness/1` response.
pub const MAX_WITNESS_HEADS: usize = 96;
/// Largest response on `/cix/witness/1`.
pub const MAX_WITNESS_RESPONSE_BYTES: usize = 64 * 1024;
/// Most bytes a QUIC peer may send on one stream before this node acknowledges them (the
/// stream's flow-control window): what one transfer stream can make a node buffer.
pub const MAX_QUIC_STREAM_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// Most unacknowledged bytes a QUIC peer may send over all streams of one connection.
pub const MAX_QUIC_CONNECTION_WINDOW_BYTES: u32 = 24 * 1024 * 1024;

// Peer bounds (issue 8): connections, per-peer request rates and misbehaviour. A node applies
// them to every peer alike; they bound what one peer, or many, can make it hold or do.

/// Most connections established with one peer at once (libp2p `connection_limits`); a further
/// connection is closed as it completes.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// Most connections established in all, inbound and outbound together.
pub const MAX_ESTABLISHED_CONNECTIONS: u32 = 256;
/// Most inbound connections still in their handshake at once.
pub const MAX_PENDING_INCOMING: u32 = 32;
/// Most transfers one peer may have served at once (of `MAX_CONCURRENT_TRANSFERS` in all);
/// a further request from it is answered `busy`, so one peer cannot take every slot.
pub const MAX_TRANSFERS_PER_PEER: usize = 8;
/// Segments a receiver has in flight from one source at once, each its own stream and request
/// (the receiver's window). Several keep the connection busy while each new stream's Yamux
/// window grows; twice the window fits in `MAX_TRANSFERS_PER_PEER`, so two fetches from one
/// source run side by side. A crash loses at most this many segments per source.
pub const TRANSFER_WINDOW: usize = 4;
const _: () = assert!(2 * TRANSFER_WINDOW <= MAX_TRANSFERS_PER_PEER);
/// Length of the window the per-peer rates below are counted over, in seconds.
pub const RATE_WINDOW_SECS: u64 = 60;
/// Most access requests (`/cix/access/1`) one peer may send per window; beyond it `busy`.
pub const MAX_ACCESS_REQUESTS_PER_WINDOW: u32 = 30;
/// Most transfer requests (`/cix/transfer/2`) one peer may open per window (a large fetch asks
/// for one `SEGMENT_BYTES` segment per request, however many of them it has in flight
/// (`TRANSFER_WINDOW`), so this allows one peer about 1 GiB/s of segments, above line speed,
/// while a flood of tiny requests is cut off); beyond it `busy`.
pub const MAX_TRANSFER_REQUESTS_PER_WINDOW: u32 = 15_000;
/// Invalid gossip messages (rejected entries, revocations, withdrawals) one peer may send per
/// window; past it the node closes its connections and refuses it for `PEER_BAN_SECS`.
pub const MAX_INVALID_GOSSIP_PER_WINDOW: u32 = 16;
/// How long a peer cut off for invalid gossip stays refused, in seconds.
pub const PEER_BAN_SECS: u64 = 600;
/// Most peers the per-peer rate counters track at once; when full, a peer not tracked yet is
/// answered `busy` until a window ends, so the counters never grow without bound.
pub const MAX_TRACKED_PEERS: usize = 4096;
/// Most bytes a relay this node runs (`relay_server = true`) carries over one circuit, both
/// directions together, before closing it: room for a dataset, not for unbounded traffic.
pub const MAX_RELAY_CIRCUIT_BYTES: u64 = 1 << 30;
/// Longest a circuit through a relay this node runs stays open, in seconds.
pub const MAX_RELAY_CIRCUIT_SECS: u64 = 3600;
/// Most circuits a relay this node runs carries at once.
pub const MAX_RELAY_CIRCUITS: usize = 64;
/// Most reservations (peers reachable through it) a relay this node runs keeps at once.
pub const MAX_RELAY_RESERVATIONS: usize = 128;
/// Size of a `/cix/time/1` answer: the answering node's clock, milliseconds since the Unix
/// epoch, as 8 big-endian bytes (the request is empty).
pub const TIME_RESPONSE_BYTES: usize = 8;
/// Largest signed quality report (`cix/quality@1`, the envelope bytes) on `/cix/quality/1`
/// (ISO 37156 9.2 e).
pub const MAX_QUALITY_REPORT_BYTES: usize = 16 * 1024;
/// Most rows one quality report names.
pub const MAX_QUALITY_ROWS: usize = 256;
/// Longest evidence in a quality report, and longest text in an answer.
pub const MAX_QUALITY_EVIDENCE_BYTES: usize = 8 * 1024;
/// Largest signed answer to a quality report (`cix/quality-answer@1`).
pub const MAX_QUALITY_ANSWER_BYTES: usize = 12 * 1024;
/// Largest request on `/cix/quality/1` (a report or an answer, framed).
pub const MAX_QUALITY_REQUEST_BYTES: usize = 17 * 1024;
/// Largest response on `/cix/quality/1`.
pub const MAX_QUALITY_RESPONSE_BYTES: usize = 2048;
/// Most reports that resolve one corrected version names (`details.resolves`).
pub const MAX_RESOLVED_REPORTS: usize = 64;

// Emergency access (ISO 37156 6.7, specs/emergency.md): agreements, declarations and ends on
// `/cix/emergency/1`.

/// Largest signed emergency agreement (`cix/emergency-agreement@1`, the envelope bytes).
pub const MAX_EMERGENCY_AGREEMENT_BYTES: usize = 16 * 1024;
/// Largest signed emergency declaration or early end (the envelope bytes).
pub const MAX_EMERGENCY_DECLARATION_BYTES: usize = 2048;
/// Most datasets one agreement opens.
pub const MAX_EMERGENCY_DATASETS: usize = 64;
/// Most declarers, and most recipients, one agreement names.
pub const MAX_EMERGENCY_PARTIES: usize = 64;
/// Most kinds of emergency one agreement covers.
pub const MAX_EMERGENCY_KINDS: usize = 16;
/// Most areas one agreement covers.
pub const MAX_EMERGENCY_AREAS: usize = 16;
/// Longest area name in an agreement or a declaration.
pub const MAX_EMERGENCY_TEXT_BYTES: usize = 256;
/// Longest an agreement may let a declaration last, in hours (30 days).
pub const MAX_EMERGENCY_HOURS: u32 = 720;
/// Largest request on `/cix/emergency/1` (an agreement, a declaration and an end, framed).
pub const MAX_EMERGENCY_REQUEST_BYTES: usize = 20 * 1024;
/// Largest response on `/cix/emergency/1` (the grants for one recipient).
pub const MAX_EMERGENCY_RESPONSE_BYTES: usize = 256 * 1024;
/// Most agreements a node keeps; a further one from a peer is refused.
pub const MAX_EMERGENCY_AGREEMENTS_KEPT: usize = 1024;
/// Most declarations a node keeps; a further one from a peer is refused.
pub const MAX_EMERGENCY_DECLARATIONS_KEPT: usize = 4096;

// Individuals' requests and complaints (ISO 37156 8.3.5, 8.3.6, specs/rights.md §3) on
// `/cix/rights/1`.

/// Largest signed case (`cix/rights@1`: an individual's request or a complaint, ISO 37156
/// 8.3.5, 8.3.6), the envelope bytes, on `/cix/rights/1`.
pub const MAX_RIGHTS_CASE_BYTES: usize = 16 * 1024;
/// Most datasets one case names.
pub const MAX_RIGHTS_DATASETS: usize = 64;
/// Longest text in a case, answer, appeal or decision (summary, answer text, grounds).
pub const MAX_RIGHTS_TEXT_BYTES: usize = 4096;
/// Largest signed answer, appeal or decision on `/cix/rights/1` (the envelope bytes).
pub const MAX_RIGHTS_REPLY_BYTES: usize = 8 * 1024;
/// Largest request on `/cix/rights/1` (one signed message, framed).
pub const MAX_RIGHTS_REQUEST_BYTES: usize = 17 * 1024;
/// Largest response on `/cix/rights/1`.
pub const MAX_RIGHTS_RESPONSE_BYTES: usize = 2048;
