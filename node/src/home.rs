//! The node's data directory ("home"): what lives where, and creating it.
//!
//! ```text
//! HOME/config.toml   settings (see [`crate::config`])
//! HOME/node.key      the Ed25519 seed, hex, owner-only (0600)
//! HOME/admin.token   the admin API bearer token, owner-only (0600)
//! HOME/node.json     written by a running node: admin URL, PeerId, listen addresses, pid
//! HOME/store/        sled: catalogue, grants, requests, used invocations
//! HOME/blobs/        dataset bytes, named by their BLAKE3 hex
//! HOME/tmp/          bytes being written; renamed into blobs/ once verified
//! ```
//!
//! Several nodes live on one machine by giving each its own home.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cix_protocol::identity::Keypair;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Fewest characters an admin token may have; `cix init` writes 64 hex digits (256 bits).
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Paths inside a node's home.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

/// What a running node writes so that `cix` can find it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// Base URL of the admin API, `http://127.0.0.1:PORT`.
    pub admin_url: String,
    /// The node's PeerId.
    pub peer_id: String,
    /// The node's did:key.
    pub did: String,
    /// Addresses peers can dial, with `/p2p/PEERID`.
    pub listen: Vec<String>,
    /// Process id.
    pub pid: u32,
}

impl Home {
    /// A home at `root` (not necessarily existing yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `node.key`.
    pub fn key(&self) -> PathBuf {
        self.root.join("node.key")
    }
    /// `admin.token`.
    pub fn token(&self) -> PathBuf {
        self.root.join("admin.token")
    }
    /// `node.json`.
    pub fn runtime(&self) -> PathBuf {
        self.root.join("node.json")
    }
    /// `store/`.
    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }
    /// `blobs/`.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }
    /// `tmp/`.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Whether `path` (its directory resolved, as [`std::fs::canonicalize`] gives it) names one
    /// of the node's own files or lies in one of its directories: what no dataset may be
    /// written over. Files and directories are compared by device and inode, so another way to
    /// the same place (a bind mount, a hard link) is caught too, and names case-insensitively
    /// (for file systems that ignore case).
    pub fn holds(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let id = |p: &Path| fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        let files = [self.config(), self.key(), self.token(), self.runtime()];
        if let Some(target) = id(path) {
            if files.iter().any(|f| id(f) == Some(target)) {
                return true;
            }
        }
        // A file of the home that does not exist yet (node.json of a stopped node).
        if let (Some(dir), Some(name), Some(root)) =
            (path.parent(), path.file_name(), id(&self.root))
        {
            let name = name.to_string_lossy();
            if id(dir) == Some(root)
                && files
                    .iter()
                    .filter_map(|f| f.file_name())
                    .any(|f| name.eq_ignore_ascii_case(&f.to_string_lossy()))
            {
                return true;
            }
        }
        let dirs: Vec<_> = [self.store(), self.blobs(), self.tmp()]
            .iter()
            .filter_map(|d| id(d))
            .collect();
        path.ancestors()
            .skip(1)
            .any(|a| id(a).is_some_and(|i| dirs.contains(&i)))
    }

    /// True once `cix init` has run here.
    pub fn is_initialised(&self) -> bool {
        self.key().exists() && self.config().exists()
    }

    /// Creates a new home: key, token, config. Refuses to touch an existing one.
    ///
    /// # Errors
    ///
    /// If the home is already initialised or a file cannot be written.
    pub fn init(&self, config: &Config) -> Result<Keypair> {
        if self.key().exists() {
            bail!(
                "{} already holds a node key; refusing to overwrite it (choose another --home)",
                self.root.display()
            );
        }
        fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        restrict_dir(&self.root)?;
        let key = Keypair::generate();
        write_secret(&self.key(), hex::encode(key.seed()).as_bytes())?;
        let token: [u8; 32] = rand::random();
        write_secret(&self.token(), hex::encode(token).as_bytes())?;
        let text = toml::to_string_pretty(config).context("cannot encode config")?;
        write_atomic(&self.config(), text.as_bytes())?;
        Ok(key)
    }

    /// Reads the node key, refusing one that others can read.
    ///
    /// # Errors
    ///
    /// If the file is missing, malformed or readable by group or others.
    pub fn load_key(&self) -> Result<Keypair> {
        let path = self.key();
        check_owner_only(&path)?;
        let text = read_home_file(&path)
            .with_context(|| format!("cannot read {} (run `cix init` first)", path.display()))?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed)
            .with_context(|| format!("{} is not a 64-hex-digit ed25519 seed", path.display()))?;
        Ok(Keypair::from_seed(seed))
    }

    /// Reads the admin token.
    ///
    /// # Errors
    ///
    /// If the file is missing or readable by group or others.
    pub fn load_token(&self) -> Result<String> {
        let path = self.token();
        check_owner_only(&path)?;
        let text = read_home_file(&path)
            .with_context(|| format!("cannot read {} (run `cix init` first)", path.display()))?;
        let token = text.trim().to_string();
        // An empty or short token would let anyone on the machine in (an empty one matched a
        // request with no token at all).
        if token.chars().count() < MIN_ADMIN_TOKEN_CHARS || token.chars().any(char::is_whitespace) {
            bail!(
                "{} holds {} characters; an admin token must be at least {MIN_ADMIN_TOKEN_CHARS}, \
                 with no spaces (`cix init` writes 64 hex digits): write a long random one, \
                 for example `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > {}`",
                path.display(),
                token.chars().count(),
                path.display()
            );
        }
        Ok(token)
    }

    /// Reads the config file.
    ///
    /// # Errors
    ///
    /// If it is missing or invalid, naming the file.
    pub fn load_config(&self) -> Result<Config> {
        let path = self.config();
        let text = read_home_file(&path)
            .with_context(|| format!("cannot read {} (run `cix init` first)", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!(
                "invalid config in {}: fix the setting named below (README.md, Configuration, \
                 lists every setting and its default)",
                path.display()
            )
        })
    }

    /// Reads what the running node wrote about itself.
    ///
    /// # Errors
    ///
    /// If no node is running from this home (or it never started).
    pub fn load_runtime(&self) -> Result<RuntimeInfo> {
        let path = self.runtime();
        if path.exists() && !path.is_file() {
            bail!(
                "{} is not a regular file: remove it (a running node writes it anew)",
                path.display()
            );
        }
        let Ok(text) = read_home_file(&path) else {
            if !self.config().exists() {
                bail!(
                    "{} is not a node's home (no config.toml): make one with `cix --home {} \
                     init --name NAME --jurisdiction CC`, then start it with `cix node run`",
                    self.root.display(),
                    self.root.display()
                );
            }
            bail!(
                "no running node for {}: start it with `cix --home {} node run`",
                self.root.display(),
                self.root.display()
            );
        };
        serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))
    }

    /// Records runtime information for `cix`.
    ///
    /// # Errors
    ///
    /// If the file cannot be written.
    pub fn write_runtime(&self, info: &RuntimeInfo) -> Result<()> {
        write_atomic(
            &self.runtime(),
            serde_json::to_string_pretty(info)?.as_bytes(),
        )
    }
}

/// Writes a file through a temporary name and a rename, flushed to disk before the rename, so
/// a reader sees the old content or the new, never half of it.
///
/// # Errors
///
/// Any I/O error, with the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(unix)]
fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes)
}

#[cfg(unix)]
fn restrict_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict permissions of {}", path.display()))
}

#[cfg(not(unix))]
fn restrict_dir(_: &Path) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
fn check_owner_only(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path)
        .with_context(|| format!("cannot read {} (run `cix init` first)", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode,
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_: &Path) -> Result<()> {
    Ok(())
}

/// Most bytes a file of the home (key, token, config, `node.json`) may hold.
pub const MAX_HOME_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a file of the home as text: it must be a regular file (not a directory or a pipe,
/// which would block the reader) of at most [`MAX_HOME_FILE_BYTES`].
pub fn read_home_file(path: &Path) -> std::io::Result<String> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    if meta.len() > MAX_HOME_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "it holds {} bytes, over the {MAX_HOME_FILE_BYTES} a file of a node's home may",
            meta.len()
        )));
    }
    fs::read_to_string(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_owner_only_secrets_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("n"));
        let key = home.init(&Config::new("Water Board", "NL")).unwrap();
        assert_eq!(home.load_key().unwrap().did(), key.did());
        assert_eq!(home.load_token().unwrap().len(), 64);
        assert_eq!(home.load_config().unwrap().name, "Water Board");
        assert!(home.init(&Config::new("x", "NL")).is_err());
    }

    /// The node's own files and directories are held; other files in the home, and look-alike
    /// names, are not.
    #[test]
    fn holds_names_the_nodes_own_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("n"));
        home.init(&Config::new("x", "NL")).unwrap();
        let root = fs::canonicalize(home.root()).unwrap();
        // A running node makes these; a path into one that does not exist is refused before
        // (its directory must exist).
        for d in [home.store(), home.blobs(), home.tmp()] {
            fs::create_dir_all(d).unwrap();
        }
        for own in [
            "node.key",
            "config.toml",
            "admin.token",
            "node.json",
            "store/db",
            "blobs/x",
        ] {
            assert!(home.holds(&root.join(own)), "{own}");
        }
        for other in ["data.csv", "node.key.csv", "storage", "x/node.key"] {
            assert!(!home.holds(&root.join(other)), "{other}");
        }
        assert!(!home.holds(&dir.path().join("node.key")));
        // By identity: a hard link to the key elsewhere, another name of the home's directory
        // (standing in for a bind mount), a name in another case.
        let elsewhere = dir.path().join("key-link");
        fs::hard_link(home.key(), &elsewhere).unwrap();
        assert!(home.holds(&elsewhere));
        let alias = dir.path().join("alias");
        std::os::unix::fs::symlink(&root, &alias).unwrap();
        assert!(home.holds(&fs::canonicalize(&alias).unwrap().join("NODE.KEY")));
        assert!(home.holds(&root.join("Node.Json")));
    }

    /// A home file that is a pipe or a directory is refused at once, never read (a pipe
    /// would block the reader).
    #[test]
    fn a_home_file_that_is_not_a_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        home.init(&Config::new("x", "NL")).unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(home.runtime())
            .status()
            .unwrap()
            .success());
        let e = home.load_runtime().unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        fs::remove_file(home.key()).unwrap();
        fs::create_dir(home.key()).unwrap();
        let e = format!("{:#}", home.load_key().unwrap_err());
        assert!(e.contains("not a regular file"), "{e}");
        fs::remove_file(home.config()).unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(home.config())
            .status()
            .unwrap()
            .success());
        let e = format!("{:#}", home.load_config().unwrap_err());
        assert!(e.contains("not a regular file"), "{e}");
    }

    /// An empty or short admin token is refused, never taken to mean "no token needed".
    #[test]
    fn an_empty_or_short_admin_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        home.init(&Config::new("x", "NL")).unwrap();
        for bad in ["", "   \n", "short", "0123456789abcdef 0123456789abcdef"] {
            fs::write(home.token(), bad).unwrap();
            let e = home.load_token().unwrap_err().to_string();
            assert!(e.contains("at least 32"), "{bad:?}: {e}");
        }
        fs::write(home.token(), format!("{}\n", "ab".repeat(16))).unwrap();
        assert_eq!(home.load_token().unwrap(), "ab".repeat(16));
    }

    #[cfg(unix)]
    #[test]
    fn key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        home.init(&Config::new("x", "NL")).unwrap();
        fs::set_permissions(home.key(), fs::Permissions::from_mode(0o644)).unwrap();
        let err = home.load_key().unwrap_err().to_string();
        assert!(err.contains("readable by others"), "{err}");
    }
}
