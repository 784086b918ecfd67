//! The small signed records peers send: withdrawals, revocations, agency profiles and group
//! membership attestations; each full decoder, and each rule check on a parsed payload.
#![no_main]

use cix_protocol::attestation::Attestation;
use cix_protocol::profile::{Profile, SignedProfile};
use cix_protocol::revocation::{Revocation, SignedRevocation};
use cix_protocol::withdrawal::{SignedWithdrawal, Withdrawal};
use cix_protocol::{envelope::Envelope, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = SignedWithdrawal::decode(data);
    let _ = SignedRevocation::decode(data);
    let _ = SignedProfile::decode(data);
    let _ = Attestation::decode(data);
    if let Ok(env) = Envelope::decode(data, limits::MAX_PROFILE_BYTES) {
        if let Ok(w) = env.payload::<Withdrawal>() {
            let _ = w.check();
        }
        if let Ok(r) = env.payload::<Revocation>() {
            let _ = r.check();
        }
        if let Ok(p) = env.payload::<Profile>() {
            let _ = p.check();
        }
        if let Ok(a) = env.payload::<Attestation>() {
            let _ = a.check();
            let _ = a.is_current(1_800_000_000);
        }
    }
});
