//! The console's accounts: one per person, with a role, kept in the node's sled store (tree
//! [`TREE`]) with an Argon2id password hash (a PHC string). ISO 37156 8.3.4 asks that every
//! access decision be traceable to who made it; an account gives the console's changes a name.

use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

use super::limits::{MAX_PASSWORD_BYTES, MAX_USERS, MAX_USER_NAME_BYTES, MIN_PASSWORD_CHARS};
use crate::store::Store;

/// The sled tree holding the accounts, keyed by name.
pub const TREE: &str = "console_users";

/// What a person may do in the console; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page; changes nothing.
    Viewer,
    /// Also approves and denies access requests (ISO 37156 5.5.3).
    Approver,
    /// Everything the console offers.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        })
    }
}

impl FromStr for Role {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "approver" => Ok(Role::Approver),
            "admin" => Ok(Role::Admin),
            other => bail!("role {other:?} is not one of viewer, approver, admin"),
        }
    }
}

/// An account as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    name: String,
    role: Role,
    /// Argon2id PHC string (`$argon2id$v=19$...`).
    hash: String,
    /// Unix seconds.
    created: i64,
}

/// One line of `cix users list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLine {
    /// Login name.
    pub name: String,
    /// viewer, approver or admin.
    pub role: Role,
    /// When it was made, Unix seconds.
    pub created: i64,
}

/// Checks a login name: 1 to [`MAX_USER_NAME_BYTES`] of lower-case ASCII letters, digits, `.`,
/// `_` and `-`, starting with a letter.
///
/// # Errors
///
/// What is wrong with it.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_USER_NAME_BYTES {
        bail!("a user name is 1 to {MAX_USER_NAME_BYTES} characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("a user name starts with a lower-case letter (a-z)");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        bail!("a user name holds only a-z, 0-9, '.', '_' and '-', not {c:?}");
    }
    Ok(())
}

/// Checks a new password's length.
///
/// # Errors
///
/// If it is shorter than [`MIN_PASSWORD_CHARS`] characters or longer than
/// [`MAX_PASSWORD_BYTES`] bytes.
pub fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("a password has at least {MIN_PASSWORD_CHARS} characters");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        bail!("a password has at most {MAX_PASSWORD_BYTES} bytes");
    }
    Ok(())
}

fn hash(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow!("cannot encode a salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("cannot hash the password: {e}"))?
        .to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Creates an account.
///
/// # Errors
///
/// A bad name or password, an account of that name already there, [`MAX_USERS`] reached, or
/// the store failing.
pub fn add(store: &Store, name: &str, role: Role, password: &str) -> Result<UserLine> {
    check_name(name)?;
    check_password(password)?;
    if store.record::<Account>(TREE, name)?.is_some() {
        bail!("there is already a user {name:?} (remove it first to replace it)");
    }
    if store.records::<Account>(TREE)?.len() >= MAX_USERS {
        bail!("this node already has {MAX_USERS} console users, the most it keeps");
    }
    let account = Account {
        name: name.into(),
        role,
        hash: hash(password)?,
        created: now(),
    };
    store.put_record(TREE, name, &account)?;
    store.flush()?;
    tracing::debug!(user = name, %role, "console user added");
    Ok(UserLine {
        name: account.name,
        role,
        created: account.created,
    })
}

/// Every account, by name.
///
/// # Errors
///
/// If the store fails.
pub fn list(store: &Store) -> Result<Vec<UserLine>> {
    let mut lines: Vec<UserLine> = store
        .records::<Account>(TREE)?
        .into_iter()
        .map(|(_, a)| UserLine {
            name: a.name,
            role: a.role,
            created: a.created,
        })
        .collect();
    lines.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(lines)
}

/// Removes an account; its sessions end at their next request.
///
/// # Errors
///
/// If there is no such account or the store fails.
pub fn remove(store: &Store, name: &str) -> Result<UserLine> {
    let account = store
        .record::<Account>(TREE, name)?
        .ok_or_else(|| anyhow!("there is no console user {name:?} (see `cix users list`)"))?;
    store.remove_record(TREE, name)?;
    store.flush()?;
    tracing::debug!(user = name, "console user removed");
    Ok(UserLine {
        name: account.name,
        role: account.role,
        created: account.created,
    })
}

/// The role of account `name`, if it still exists.
///
/// # Errors
///
/// If the store fails.
pub fn role_of(store: &Store, name: &str) -> Result<Option<Role>> {
    Ok(store.record::<Account>(TREE, name)?.map(|a| a.role))
}

/// What tells one account from another made later under the same name: a hash of its
/// password hash, whose salt is drawn afresh each time an account is made. A session keeps the
/// one it logged in with, so removing an account and adding one of the same name does not hand
/// the new account's role to the old sessions.
pub type AccountKey = [u8; 32];

fn key_of_account(a: &Account) -> AccountKey {
    *blake3::hash(a.hash.as_bytes()).as_bytes()
}

/// Account `name`'s role and [`AccountKey`], when it exists.
///
/// # Errors
///
/// If the store fails.
pub fn current(store: &Store, name: &str) -> Result<Option<(Role, AccountKey)>> {
    Ok(store
        .record::<Account>(TREE, name)?
        .map(|a| (a.role, key_of_account(&a))))
}

/// Checks `password` against account `name`: its role when both match. An unknown name costs
/// as much time as a wrong password, so timing does not tell which names exist. Slow on
/// purpose (Argon2id): call it off the async threads.
///
/// # Errors
///
/// If the store fails.
pub fn verify(store: &Store, name: &str, password: &str) -> Result<Option<(Role, AccountKey)>> {
    let account = store.record::<Account>(TREE, name)?;
    let stored = match &account {
        Some(a) => a.hash.clone(),
        // A hash of nothing anyone knows, checked for the time it takes.
        None => hash(&hex::encode(rand::random::<[u8; 16]>()))?,
    };
    let parsed = PasswordHash::new(&stored).map_err(|e| {
        tracing::error!(user = name, "a stored console password hash is unreadable");
        anyhow!("the stored password hash of {name:?} is unreadable: {e}")
    })?;
    let ok = password.len() <= MAX_PASSWORD_BYTES
        && Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
    Ok(match account {
        Some(a) if ok => Some((a.role, key_of_account(&a))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 1 << 20).expect("store");
        (dir, store)
    }

    #[test]
    fn add_verify_remove() {
        let (_dir, store) = store();
        add(&store, "ada", Role::Approver, "correct horse battery").expect("add");
        let (role, key) = verify(&store, "ada", "correct horse battery")
            .expect("verify")
            .expect("the right password");
        assert_eq!(role, Role::Approver);
        assert_eq!(current(&store, "ada").expect("read"), Some((role, key)));
        assert_eq!(
            verify(&store, "ada", "wrong horse battery").expect("verify"),
            None
        );
        assert_eq!(
            verify(&store, "bob", "correct horse battery").expect("verify"),
            None
        );
        assert!(add(&store, "ada", Role::Admin, "another password").is_err());
        let listed = list(&store).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].role, Role::Approver);
        remove(&store, "ada").expect("remove");
        assert_eq!(
            verify(&store, "ada", "correct horse battery").expect("verify"),
            None
        );
        assert!(remove(&store, "ada").is_err());
    }

    #[test]
    fn the_hash_is_a_salted_argon2id_string() {
        let (_dir, store) = store();
        add(&store, "ada", Role::Viewer, "correct horse battery").expect("add");
        add(&store, "bob", Role::Viewer, "correct horse battery").expect("add");
        let a: Account = store.record(TREE, "ada").expect("read").expect("there");
        let b: Account = store.record(TREE, "bob").expect("read").expect("there");
        assert!(a.hash.starts_with("$argon2id$"), "{}", a.hash);
        assert!(!a.hash.contains("correct horse"));
        assert_ne!(a.hash, b.hash, "each password gets its own salt");
    }

    #[test]
    fn names_and_passwords_are_checked() {
        let (_dir, store) = store();
        for bad in ["", "Ada", "1ada", "a b", "ada;drop", &"a".repeat(65)] {
            assert!(
                add(&store, bad, Role::Viewer, "long enough pass").is_err(),
                "{bad:?}"
            );
        }
        assert!(add(&store, "ada", Role::Viewer, "short").is_err());
        assert!(add(
            &store,
            "ada",
            Role::Viewer,
            &"x".repeat(MAX_PASSWORD_BYTES + 1)
        )
        .is_err());
        assert!("owner".parse::<Role>().is_err());
        assert_eq!("approver".parse::<Role>().expect("role"), Role::Approver);
        assert!(Role::Admin > Role::Approver && Role::Approver > Role::Viewer);
    }
}
