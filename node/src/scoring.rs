//! gossipsub peer scoring (gossipsub v1.1 score function), as `specs/gossip.md` §7.1 documents.
//!
//! The aim is narrow: a peer that keeps sending records the node rejects
//! (`MessageAcceptance::Reject`, counted by the router as invalid message deliveries, P4) falls
//! below [`GRAYLIST_THRESHOLD`] within a few messages, after which the router ignores whatever
//! it sends; honest peers stay at or above zero in a quiet network. So only P4 carries a real
//! weight; the positive terms (time in mesh, first deliveries) are small and capped, and the
//! terms that punish honest-but-quiet peers are off:
//!
//! - P3 (mesh message deliveries) and P3b are 0: cix topics are quiet most of the time (a city
//!   publishes a few entries a day), and a deficit penalty would prune honest peers;
//! - P6 (IP colocation) is 0: agencies behind one NAT or cloud provider, and every node of a
//!   testnet on 127.0.0.1, share an address without being Sybils.

use std::time::Duration;

use libp2p::gossipsub::{self, IdentTopic, PeerScoreParams, PeerScoreThresholds, TopicScoreParams};

/// Below this, gossip (IHAVE/IWANT) with the peer stops.
pub const GOSSIP_THRESHOLD: f64 = -10.0;
/// Below this, the node does not publish its own messages to the peer.
pub const PUBLISH_THRESHOLD: f64 = -50.0;
/// Below this, the router ignores everything the peer sends (graylist).
pub const GRAYLIST_THRESHOLD: f64 = -80.0;
/// Peer exchange is accepted only from peers above this (cix does not rely on PX).
pub const ACCEPT_PX_THRESHOLD: f64 = 10.0;
/// Median mesh score below which the router grafts better-scoring peers.
pub const OPPORTUNISTIC_GRAFT_THRESHOLD: f64 = 1.0;

/// P4 weight, per topic: the penalty is this times the square of the (decaying) count of
/// invalid messages, so 6 rejected messages on one topic give -72 and 7 give -98, below
/// [`GRAYLIST_THRESHOLD`]. A few mistakes leave a peer heard (a genuine message after them
/// is still processed); a flood silences it.
pub const INVALID_MESSAGE_WEIGHT: f64 = -2.0;
/// P4 decay per [`DECAY_INTERVAL`]: the count halves in about 69 seconds.
pub const INVALID_MESSAGE_DECAY: f64 = 0.99;
/// P2 weight (first deliveries of valid messages).
pub const FIRST_DELIVERY_WEIGHT: f64 = 0.5;
/// P2 cap per topic (so at most +10 from one topic).
pub const FIRST_DELIVERY_CAP: f64 = 20.0;
/// P2 decay per [`DECAY_INTERVAL`].
pub const FIRST_DELIVERY_DECAY: f64 = 0.9;
/// P1 weight per [`TIME_IN_MESH_QUANTUM`] in the mesh.
pub const TIME_IN_MESH_WEIGHT: f64 = 0.01;
/// P1 quantum.
pub const TIME_IN_MESH_QUANTUM: Duration = Duration::from_secs(1);
/// P1 cap (so at most +1 from one topic).
pub const TIME_IN_MESH_CAP: f64 = 100.0;
/// Cap on the positive part of all topic scores together.
pub const TOPIC_SCORE_CAP: f64 = 50.0;
/// P7 weight (broken IWANT promises, GRAFT during backoff), on the square of the excess.
pub const BEHAVIOUR_PENALTY_WEIGHT: f64 = -1.0;
/// P7 counts up to this are free.
pub const BEHAVIOUR_PENALTY_THRESHOLD: f64 = 4.0;
/// P7 decay per [`DECAY_INTERVAL`].
pub const BEHAVIOUR_PENALTY_DECAY: f64 = 0.9;
/// How often counters decay.
pub const DECAY_INTERVAL: Duration = Duration::from_secs(1);
/// A peer's counters are kept this long after it disconnects, so reconnecting does not wash a
/// bad score.
pub const RETAIN_SCORE: Duration = Duration::from_secs(600);

/// The thresholds above.
pub fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: GOSSIP_THRESHOLD,
        publish_threshold: PUBLISH_THRESHOLD,
        graylist_threshold: GRAYLIST_THRESHOLD,
        accept_px_threshold: ACCEPT_PX_THRESHOLD,
        opportunistic_graft_threshold: OPPORTUNISTIC_GRAFT_THRESHOLD,
    }
}

/// Score parameters of one cix topic.
pub fn topic_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: TIME_IN_MESH_WEIGHT,
        time_in_mesh_quantum: TIME_IN_MESH_QUANTUM,
        time_in_mesh_cap: TIME_IN_MESH_CAP,
        first_message_deliveries_weight: FIRST_DELIVERY_WEIGHT,
        first_message_deliveries_decay: FIRST_DELIVERY_DECAY,
        first_message_deliveries_cap: FIRST_DELIVERY_CAP,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: INVALID_MESSAGE_DECAY,
        ..TopicScoreParams::default()
    }
}

/// Score parameters for the given topics.
pub fn params(topics: &[&str]) -> PeerScoreParams {
    let mut p = PeerScoreParams {
        topic_score_cap: TOPIC_SCORE_CAP,
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: BEHAVIOUR_PENALTY_WEIGHT,
        behaviour_penalty_threshold: BEHAVIOUR_PENALTY_THRESHOLD,
        behaviour_penalty_decay: BEHAVIOUR_PENALTY_DECAY,
        decay_interval: DECAY_INTERVAL,
        retain_score: RETAIN_SCORE,
        ..PeerScoreParams::default()
    };
    for t in topics {
        p.topics.insert(IdentTopic::new(*t).hash(), topic_params());
    }
    p
}

/// Turns scoring on for `gossipsub` on every cix topic.
///
/// # Errors
///
/// If gossipsub refuses the parameters (a bug: they are constants).
pub fn enable(gossipsub: &mut gossipsub::Behaviour) -> Result<(), String> {
    use cix_protocol::wire::{CATALOGUE_TOPIC, REVOCATION_TOPIC, WITHDRAWAL_TOPIC};
    gossipsub.with_peer_score(
        params(&[CATALOGUE_TOPIC, REVOCATION_TOPIC, WITHDRAWAL_TOPIC]),
        thresholds(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_accepted_by_gossipsub() {
        assert_eq!(params(&["a", "b"]).validate(), Ok(()));
        assert_eq!(thresholds().validate(), Ok(()));
        let t = thresholds();
        assert!(t.graylist_threshold < t.publish_threshold);
        assert!(t.publish_threshold < t.gossip_threshold);
    }

    #[test]
    fn seven_invalid_messages_reach_the_graylist() {
        // P4 is weight x count^2 x topic weight; the positive terms are capped.
        let positive_max = TOPIC_SCORE_CAP;
        let p4 = |n: f64| INVALID_MESSAGE_WEIGHT * n * n;
        assert!(p4(6.0) > GRAYLIST_THRESHOLD);
        assert!(p4(7.0) < GRAYLIST_THRESHOLD);
        // Enough invalid messages outweigh any positive score.
        assert!(p4(9.0) + positive_max < GRAYLIST_THRESHOLD);
    }
}
