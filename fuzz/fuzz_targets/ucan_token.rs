//! UCAN 1.0 delegations and invocations, their policies, selectors and glob patterns, and the
//! text forms of principals, CIDs and content hashes.
#![no_main]

use cix_protocol::content::ContentHash;
use cix_protocol::identity::Did;
use cix_protocol::ucan::{Cid, Delegation, Invocation};
use cix_protocol::ucan::{Pattern, Policy, Selector};
use cix_protocol::{cbor, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((dlg, _)) = Delegation::decode(data) {
        let _ = dlg.to_value();
    }
    if let Ok((inv, _)) = Invocation::decode(data) {
        let args = inv.args_value();
        let _ = Policy::empty().matches(&args);
    }
    if let Ok(v) = cbor::value_from_slice(data, limits::MAX_TRANSFER_REQUEST_BYTES) {
        if let Ok(pol) = Policy::from_value(&v) {
            // A policy that parsed must survive its own encoding and be usable on any args.
            let back = Policy::from_value(&pol.to_value()).expect("policy round trip");
            assert_eq!(back, pol);
            let _ = pol.matches(&v);
            let _ = cix_protocol::caveats::permitted_fields(&pol);
        }
        let _ = Cid::from_link(&v);
    }
    let _ = Cid::from_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(sel) = Selector::parse(text) {
            assert_eq!(
                Selector::parse(sel.as_str()).expect("selector round trip"),
                sel
            );
        }
        let p = Pattern::parse(text);
        let _ = p.is_match(text);
        let _ = text.parse::<Did>();
        let _ = text.parse::<Cid>();
        let _ = text.parse::<ContentHash>();
    }
});
