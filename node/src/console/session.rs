//! Server-side sessions of the console: a random id in an HttpOnly, SameSite=Strict cookie,
//! the session (who, role, CSRF token, times) here in memory, bounded by
//! [`MAX_SESSIONS`](super::limits::MAX_SESSIONS). The map is keyed by the BLAKE3 hash of the id,
//! so even a dump of the memory does not hold a usable cookie.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::users::Role;

/// Who is logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person's account, by name.
    Account(String),
    /// Someone who gave the node's admin token.
    AdminToken,
}

impl Principal {
    /// The name the audit log records.
    pub fn label(&self) -> String {
        match self {
            Principal::Account(n) => n.clone(),
            Principal::AdminToken => "(admin token)".into(),
        }
    }
}

/// One session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub who: Principal,
    /// Role at login (an account's role is re-read on every request).
    pub role: Role,
    /// The token every change must carry (`X-CSRF-Token`).
    pub csrf: String,
    /// For an account: which account, as it was when the session began
    /// ([`super::users::AccountKey`]).
    pub account: Option<super::users::AccountKey>,
    created: Instant,
    last: Instant,
}

/// The bounded session store.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
    max_age: Duration,
    cap: usize,
}

fn key(id: &str) -> [u8; 32] {
    *blake3::hash(id.as_bytes()).as_bytes()
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// An empty store whose sessions end after `idle` unused or `max_age` in all, holding at
    /// most `cap`.
    pub fn new(idle: Duration, max_age: Duration, cap: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            idle,
            max_age,
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves only whole sessions behind.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last) < self.idle && now.duration_since(s.created) < self.max_age
    }

    /// Starts a session: returns its id (for the cookie) and CSRF token.
    pub fn create(&self, who: Principal, role: Role) -> (String, String) {
        self.create_for(who, role, None)
    }

    /// [`Self::create`] for an account, keeping which account it is.
    pub fn create_for(
        &self,
        who: Principal,
        role: Role,
        account: Option<super::users::AccountKey>,
    ) -> (String, String) {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| self.live(s, now));
        while map.len() >= self.cap {
            let oldest = map.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    map.remove(&k);
                    tracing::warn!(
                        "console session limit reached: the least recently used session was ended"
                    );
                }
                None => break,
            }
        }
        let id = random_token();
        let csrf = random_token();
        map.insert(
            key(&id),
            Session {
                who,
                role,
                csrf: csrf.clone(),
                account,
                created: now,
                last: now,
            },
        );
        (id, csrf)
    }

    /// The live session of cookie value `id`, marked as used now; an expired one is removed.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.lock();
        let k = key(id);
        let live = map.get(&k).map(|s| self.live(s, now))?;
        if !live {
            map.remove(&k);
            return None;
        }
        let s = map.get_mut(&k)?;
        s.last = now;
        Some(s.clone())
    }

    /// Whether session `id` is live, without marking it used (a live-update stream must not
    /// keep an idle session alive).
    pub fn is_live(&self, id: &str) -> bool {
        let now = Instant::now();
        self.lock().get(&key(id)).is_some_and(|s| self.live(s, now))
    }

    /// The live session of `id`, without marking it used.
    pub fn peek(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        self.lock()
            .get(&key(id))
            .filter(|s| self.live(s, now))
            .cloned()
    }

    /// Ends session `id`; true when there was one.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(&key(id)).is_some()
    }

    /// Sessions held now (expired ones included until the next login sweeps them).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No session held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::new(Duration::from_millis(200), Duration::from_secs(60), 2);
        let (a, csrf_a) = s.create(Principal::Account("ada".into()), Role::Admin);
        let got = s.get(&a).expect("live");
        assert_eq!(got.csrf, csrf_a);
        assert_eq!(got.who, Principal::Account("ada".into()));
        assert!(s.get("not-a-session").is_none());
        let (b, _) = s.create(Principal::AdminToken, Role::Admin);
        // `b` is used after `a`, so `a` is the least recently used.
        let _ = s.get(&b);
        let (c, _) = s.create(Principal::AdminToken, Role::Admin);
        assert_eq!(s.len(), 2, "the cap holds");
        assert!(s.get(&a).is_none(), "the least recently used went");
        assert!(s.get(&c).is_some());
        assert!(s.remove(&c));
        assert!(s.get(&c).is_none());
        assert!(!s.remove(&c));
        // Idle expiry is a matter of the clock alone: let it pass.
        std::thread::sleep(Duration::from_millis(250));
        assert!(!s.is_live(&b));
        assert!(s.get(&b).is_none(), "idle session ended");
    }

    #[test]
    fn ids_and_tokens_are_random() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60), 8);
        let (a, ca) = s.create(Principal::AdminToken, Role::Admin);
        let (b, cb) = s.create(Principal::AdminToken, Role::Admin);
        assert_ne!(a, b);
        assert_ne!(ca, cb);
        assert_eq!(a.len(), 64);
    }
}
