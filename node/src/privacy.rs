//! The agency's privacy notice (ISO 37156 8.3.3) and the link from personal-data entries to it.
//!
//! The notice is set in the config (`[privacy]`, written by `cix init --privacy FILE` or
//! `cix privacy set FILE`) and travels in the agency's signed profile. Every entry this node
//! signs that holds personal data names the notice's hash in `iso.privacy.notice`; publishing
//! personal data with no notice configured is refused.

use anyhow::{bail, Result};
use cix_protocol::catalogue::Entry;
use cix_protocol::identity::Did;
use cix_protocol::profile::PrivacyNotice;
use serde::Serialize;

use crate::node::{Node, Shared};

/// Sets `iso.privacy.notice` on an entry this node is about to sign: the hash of this agency's
/// notice when the entry holds personal data, nothing otherwise.
///
/// # Errors
///
/// Personal data and no privacy notice configured.
pub fn link_notice(shared: &Shared, entry: &mut Entry) -> Result<()> {
    if !entry.iso.privacy.personal_data {
        entry.iso.privacy.notice = None;
        return Ok(());
    }
    let Some(notice) = &shared.profile.profile.privacy else {
        bail!(
            "iso.privacy.personal_data: this dataset holds personal data, but this agency has no \
             privacy notice (ISO 37156 8.3.3); write one (see README, \"Privacy notice\"), set it \
             with `cix privacy set FILE` and restart the node, then publish again"
        );
    };
    entry.iso.privacy.notice = Some(notice.hash()?);
    Ok(())
}

/// A notice as `cix privacy notice` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeLine {
    /// The agency whose notice it is.
    pub agency: String,
    /// Its principal.
    pub did: String,
    /// BLAKE3 hex of the notice (what its personal-data entries name), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The notice, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<PrivacyNotice>,
}

fn line(name: &str, did: &Did, notice: Option<&PrivacyNotice>) -> Result<NoticeLine> {
    Ok(NoticeLine {
        agency: name.to_string(),
        did: did.to_string(),
        hash: notice.map(PrivacyNotice::hash).transpose()?,
        notice: notice.cloned(),
    })
}

/// This agency's notice, as its signed profile carries it.
///
/// # Errors
///
/// Never in practice (encoding).
pub fn own(shared: &Shared) -> Result<NoticeLine> {
    let p = &shared.profile.profile;
    line(&p.name, &p.iss, p.privacy.as_ref())
}

/// A peer's notice, from the signed profile it sends on `/cix/receipt/1`.
///
/// # Errors
///
/// The peer is unreachable or its profile does not verify.
pub async fn of_peer(node: &Node, peer: &str) -> Result<NoticeLine> {
    let did: Did = match peer.parse::<Did>() {
        Ok(d) => d,
        Err(_) => match peer
            .parse::<libp2p::PeerId>()
            .ok()
            .and_then(|p| crate::node::did_of_peer(&p))
        {
            Some(d) => d,
            None => bail!("{peer:?} is neither a did:key nor a PeerId"),
        },
    };
    if did == node.did() {
        return own(&node.shared);
    }
    let signed = crate::receipts::peer_profile(node, &did).await?;
    let p = signed.profile;
    line(&p.name, &p.iss, p.privacy.as_ref())
}
