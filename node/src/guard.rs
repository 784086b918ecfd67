//! Per-peer bounds on what a peer may ask of a node (issue 8; ISO 37156 7.4.1 lists outsider
//! attacks among the threats): request rates counted over a fixed window, a cap on the
//! transfers one peer has served at once, and a tally of invalid gossip that gets a peer cut
//! off. Every counter is bounded by [`limits::MAX_TRACKED_PEERS`], so a crowd of peers cannot
//! make them grow without bound either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cix_protocol::limits;
use libp2p::PeerId;

/// Counts events per peer over a fixed window and says whether a peer is still within its rate.
#[derive(Debug)]
pub struct PeerRates {
    max: u32,
    window: Duration,
    counts: HashMap<PeerId, (Instant, u32)>,
}

impl PeerRates {
    /// At most `max` events per peer in each `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            counts: HashMap::new(),
        }
    }

    /// The window [`limits::RATE_WINDOW_SECS`] long.
    pub fn per_window(max: u32) -> Self {
        Self::new(max, Duration::from_secs(limits::RATE_WINDOW_SECS))
    }

    /// Counts one event from `peer` at `now`; false once the peer is over its rate for the
    /// current window (or when the table is full of peers whose windows have not ended).
    pub fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        if !self.counts.contains_key(&peer) && self.counts.len() >= limits::MAX_TRACKED_PEERS {
            let window = self.window;
            self.counts
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            if self.counts.len() >= limits::MAX_TRACKED_PEERS {
                return false;
            }
        }
        let (start, n) = self.counts.entry(peer).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *n = 0;
        }
        *n = n.saturating_add(1);
        *n <= self.max
    }

    /// Forgets `peer` (it disconnected, or was banned).
    pub fn forget(&mut self, peer: &PeerId) {
        self.counts.remove(peer);
    }

    /// Peers tracked now.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// No peer tracked.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// How many transfers each peer has being served, shared by the transfer tasks.
#[derive(Debug, Clone, Default)]
pub struct PeerSlots {
    inner: Arc<Mutex<HashMap<PeerId, usize>>>,
}

/// One transfer slot of a peer; given back when dropped.
#[derive(Debug)]
pub struct PeerSlot {
    slots: PeerSlots,
    peer: PeerId,
}

impl PeerSlots {
    /// A slot for `peer` if it has fewer than `max` in use.
    pub fn try_take(&self, peer: PeerId, max: usize) -> Option<PeerSlot> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(peer).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            slots: self.clone(),
            peer,
        })
    }

    /// Slots `peer` holds now.
    pub fn held(&self, peer: &PeerId) -> usize {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(peer).copied().unwrap_or(0)
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.slots.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

/// Peers cut off for misbehaving, until when.
#[derive(Debug, Default)]
pub struct Bans {
    until: HashMap<PeerId, Instant>,
}

impl Bans {
    /// Bans `peer` for [`limits::PEER_BAN_SECS`] from `now`.
    pub fn ban(&mut self, peer: PeerId, now: Instant) {
        if self.until.len() >= limits::MAX_TRACKED_PEERS {
            self.until.retain(|_, t| *t > now);
        }
        self.until
            .insert(peer, now + Duration::from_secs(limits::PEER_BAN_SECS));
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.until.get(peer).is_some_and(|t| *t > now)
    }

    /// Removes the bans that have ended by `now` and returns their peers.
    pub fn expired(&mut self, now: Instant) -> Vec<PeerId> {
        let done: Vec<PeerId> = self
            .until
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in &done {
            self.until.remove(p);
        }
        done
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_over_its_rate_is_refused_until_the_window_ends_and_others_are_not() {
        let mut rates = PeerRates::new(3, Duration::from_secs(10));
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert!((0..3).all(|_| rates.allow(a, t0)));
        assert!(!rates.allow(a, t0 + Duration::from_secs(1)));
        assert!(rates.allow(b, t0 + Duration::from_secs(1)), "another peer");
        assert!(rates.allow(a, t0 + Duration::from_secs(10)), "new window");
        rates.forget(&a);
        assert_eq!(rates.len(), 1);
    }

    #[test]
    fn the_rate_table_stays_bounded_and_makes_room_when_windows_end() {
        let mut rates = PeerRates::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..limits::MAX_TRACKED_PEERS {
            assert!(rates.allow(PeerId::random(), t0));
        }
        assert!(!rates.allow(PeerId::random(), t0), "table full");
        assert_eq!(rates.len(), limits::MAX_TRACKED_PEERS);
        assert!(rates.allow(PeerId::random(), t0 + Duration::from_secs(11)));
        assert_eq!(rates.len(), 1);
    }

    #[test]
    fn peer_slots_are_capped_per_peer_and_given_back_on_drop() {
        let slots = PeerSlots::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let held: Vec<_> = (0..2).map(|_| slots.try_take(a, 2).unwrap()).collect();
        assert!(slots.try_take(a, 2).is_none());
        assert!(slots.try_take(b, 2).is_some());
        drop(held);
        assert_eq!(slots.held(&a), 0);
        assert!(slots.try_take(a, 2).is_some());
    }

    #[test]
    fn bans_end() {
        let mut bans = Bans::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        bans.ban(p, t0);
        assert!(bans.is_banned(&p, t0 + Duration::from_secs(1)));
        let later = t0 + Duration::from_secs(limits::PEER_BAN_SECS);
        assert!(!bans.is_banned(&p, later));
        assert_eq!(bans.expired(later), vec![p]);
    }
}
