//! The checks an owner applies to who is asking, shared by access decisions ([`crate::access`])
//! and transfers ([`crate::transfer`]): the requester's signed profile, the dataset's
//! jurisdiction rule (ISO 37156 8.2.2 a, h) and its group rule (5.5.3).
//!
//! Each check answers `Err((code, reason))` with the stable [`DenyCode`] and a reason for the
//! requester. Rejected input is logged at warn, without its bytes.

use cix_protocol::attestation::Attestation;
use cix_protocol::catalogue::Entry;
use cix_protocol::caveats;
use cix_protocol::identity::Did;
use cix_protocol::limits;
use cix_protocol::profile::{Profile, SignedProfile};
use cix_protocol::ucan::MAX_CLOCK_SKEW_SECS;
use cix_protocol::wire::DenyCode;
use tracing::{debug, warn};

use crate::node::Shared;

/// A refusal: stable code and the reason the requester reads.
pub type Refusal = (DenyCode, String);

/// Most peers' profiles an owner keeps (one per peer, the newest). Beyond it, profiles of new
/// peers are used for the request they came with and not kept.
pub const MAX_KEPT_PROFILES: usize = 4096;

/// Cuts a reason to [`limits::MAX_REASON_BYTES`] on a character boundary.
pub fn clip(mut text: String) -> String {
    if text.len() > limits::MAX_REASON_BYTES {
        let mut end = limits::MAX_REASON_BYTES - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// The requester's profile: the one it sent, verified and checked to be its own, else the one
/// this node kept from an earlier request. A verified profile is kept (newest wins).
///
/// # Errors
///
/// `bad-request` for a profile that does not verify, is another agency's, or is dated in the
/// future.
pub fn requester_profile(
    shared: &Shared,
    requester: &Did,
    sent: Option<&[u8]>,
    now: i64,
) -> Result<Option<Profile>, Refusal> {
    let Some(bytes) = sent else {
        return Ok(kept_profile(shared, requester));
    };
    let signed = SignedProfile::decode(bytes).map_err(|e| {
        warn!(%requester, error = %e, "agency profile refused");
        (
            DenyCode::BadRequest,
            clip(format!("your agency profile is refused: {e}")),
        )
    })?;
    let p = &signed.profile;
    if &p.iss != requester {
        warn!(%requester, signer = %p.iss, "agency profile of another agency");
        return Err((
            DenyCode::BadRequest,
            format!(
                "the agency profile is signed by {}, not by the connected peer {requester}",
                p.iss
            ),
        ));
    }
    if p.issued > now + MAX_CLOCK_SKEW_SECS {
        warn!(%requester, issued = p.issued, "agency profile dated in the future");
        return Err((
            DenyCode::BadRequest,
            "the agency profile is dated in the future (check the clock)".into(),
        ));
    }
    keep_profile(shared, requester, &signed);
    Ok(Some(signed.profile))
}

/// The profile this node kept for `requester` from an earlier request, if any.
pub(crate) fn kept_profile(shared: &Shared, requester: &Did) -> Option<Profile> {
    match shared.store.profile(requester) {
        Ok(Some(bytes)) => SignedProfile::decode(&bytes).ok().map(|s| s.profile),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot read kept profiles");
            None
        }
    }
}

fn keep_profile(shared: &Shared, requester: &Did, signed: &SignedProfile) {
    let result = (|| -> anyhow::Result<()> {
        let known = shared.store.profile(requester)?;
        if known.as_deref() == Some(signed.bytes.as_slice()) {
            return Ok(());
        }
        if let Some(old) = known.and_then(|b| SignedProfile::decode(&b).ok()) {
            if old.profile.issued > signed.profile.issued {
                return Ok(());
            }
            if old.profile.jurisdiction != signed.profile.jurisdiction {
                // ISO 37156 8.2.5: the agency moved; its grants are re-checked.
                crate::recheck::mark(shared, "an agency's jurisdiction changed");
            }
        } else if shared.store.profile_count()? >= MAX_KEPT_PROFILES {
            debug!(%requester, "profile not kept: the profile store is full");
            return Ok(());
        }
        shared.store.put_profile(requester, &signed.bytes)
    })();
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot keep a peer's profile");
    }
}

/// ISO 37156 8.2.2 a, h: shared data goes only to requesters whose signed profile places them
/// in one of the dataset's allowed jurisdictions (its own and `allowed_jurisdictions`; anywhere
/// for data that is not personal and lists none).
///
/// # Errors
///
/// `profile-required` when the dataset restricts jurisdictions and no profile is known;
/// `jurisdiction` when the profile's is not allowed.
pub fn check_jurisdiction(entry: &Entry, profile: Option<&Profile>) -> Result<(), Refusal> {
    let Some(places) = caveats::allowed_jurisdictions(entry) else {
        return Ok(());
    };
    let list = places.join(", ");
    let Some(p) = profile else {
        return Err((
            DenyCode::ProfileRequired,
            format!(
                "this dataset may only go to agencies in {list} (ISO 37156 8.2.2 h); send your \
                 signed agency profile with the request so the owner can see where you are"
            ),
        ));
    };
    if !places.contains(&p.jurisdiction) {
        return Err((
            DenyCode::Jurisdiction,
            format!(
                "this dataset may only go to agencies in {list} (ISO 37156 8.2.2 h); your \
                 profile places you in {}",
                p.jurisdiction
            ),
        ));
    }
    Ok(())
}

/// ISO 37156 5.5.3 group access: one attestation must be well signed, from a registrar this
/// node trusts (`trusted_registrars`), about the requester, current at `now`, and for a group
/// the dataset's rule (`iso.groups`) names. Returns that attestation.
///
/// # Errors
///
/// `bad-request` for too many attestations; `not-in-group` with the reason of each one refused.
pub fn check_group(
    shared: &Shared,
    requester: &Did,
    entry: &Entry,
    attestations: &[serde_bytes::ByteBuf],
    now: i64,
) -> Result<Attestation, Refusal> {
    let groups = &entry.iso.groups;
    let rule = groups.join(", ");
    if attestations.len() > limits::MAX_ATTESTATIONS {
        warn!(%requester, count = attestations.len(), "too many attestations");
        return Err((
            DenyCode::BadRequest,
            format!(
                "at most {} attestations per request",
                limits::MAX_ATTESTATIONS
            ),
        ));
    }
    if attestations.is_empty() {
        return Err((
            DenyCode::NotInGroup,
            format!(
                "shared-group data (ISO 37156 5.5.3): only members of {rule} may have it; pass a \
                 registrar's attestation with `cix request ID --purpose TEXT --attestation FILE`"
            ),
        ));
    }
    let trusted = &crate::registrars::trusted(shared);
    let mut reasons = Vec::new();
    for (i, bytes) in attestations.iter().enumerate() {
        let n = i + 1;
        let a = match Attestation::decode(bytes) {
            Ok(a) => a,
            Err(e) => {
                warn!(%requester, error = %e, "attestation refused");
                reasons.push(format!("attestation {n}: {e}"));
                continue;
            }
        };
        let why = if !trusted.contains(&a.iss) {
            format!(
                "attestation {n}: its registrar {} is not one this owner trusts",
                a.iss
            )
        } else if &a.sub != requester {
            format!("attestation {n}: it is about {}, not about you", a.sub)
        } else if now > a.exp + MAX_CLOCK_SKEW_SECS {
            format!("attestation {n}: it expired at {}", a.exp)
        } else if !a.is_current(now) {
            format!("attestation {n}: it is not valid before {}", a.issued)
        } else if !groups.contains(&a.group) {
            format!(
                "attestation {n}: it is for group {:?}, which this dataset's rule ({rule}) does \
                 not accept",
                a.group
            )
        } else {
            debug!(%requester, group = %a.group, registrar = %a.iss, "group membership attested");
            return Ok(a);
        };
        debug!(%requester, reason = %why, "attestation not accepted");
        reasons.push(why);
    }
    Err((DenyCode::NotInGroup, clip(reasons.join("; "))))
}
