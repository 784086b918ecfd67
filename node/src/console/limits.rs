//! The console's bounds, repeated in `specs/console.md` (a test checks the table matches).

/// Sessions held at once; logging in past it ends the least recently used one.
pub const MAX_SESSIONS: usize = 256;
/// A session unused for this long ends.
pub const SESSION_IDLE_SECS: u64 = 30 * 60;
/// A session ends this long after login, used or not.
pub const SESSION_MAX_SECS: u64 = 12 * 60 * 60;
/// Accounts a node keeps.
pub const MAX_USERS: usize = 1000;
/// Longest login name.
pub const MAX_USER_NAME_BYTES: usize = 64;
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password, in bytes (Argon2 reads all of it).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Failed logins accepted per minute, all accounts together; past it logins are refused
/// (429) until the minute is over.
pub const MAX_LOGIN_FAILURES_PER_MINUTE: u32 = 30;
/// Password checks running at once (each Argon2id check takes 19 MiB of memory).
pub const MAX_CONCURRENT_LOGINS: usize = 2;
/// Server-sent event streams open at once.
pub const MAX_EVENT_STREAMS: usize = 32;
/// Largest request body the console accepts.
pub const MAX_CONSOLE_BODY_BYTES: usize = 64 * 1024;
/// Largest GeoJSON or TopoJSON file of its own that the node draws on the map.
pub const MAX_MAP_SHAPE_BYTES: u64 = 8 * 1024 * 1024;
/// Largest total of shapes in one map answer.
pub const MAX_MAP_BYTES: u64 = 32 * 1024 * 1024;
/// Audit records the console lists at most in one answer.
pub const MAX_AUDIT_LISTED: usize = 500;
/// Connected peers whose signed profile one peers page asks for at most (the rest are asked
/// on later loads).
pub const MAX_PROFILES_ASKED: usize = 8;
/// How long the peers page waits for those profiles, in seconds.
pub const PROFILE_WAIT_SECS: u64 = 2;
