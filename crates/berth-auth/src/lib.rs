//! Users and API tokens of a node's API, kept in the node root (`api/users.toml`,
//! `api/tokens.toml`, root-only, 0600, written atomically under a lock) and shared by
//! berthd and the CLI (`berth user …`, `berth token …`).
//!
//! Passwords are stored as argon2id PHC strings; tokens are 32 random bytes shown once
//! (base64url) and stored as their SHA-256. Both files are validated on load like input:
//! a hand-edited or corrupted file is refused, never half-trusted.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use berth_api::agent::{NewToken, Role, StoreLimits, TokenInfo, UserAdd, UserInfo};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Largest accepted users.toml / tokens.toml.
const MAX_FILE: u64 = 4 << 20;
/// At most this many users and tokens.
pub const MAX_USERS: usize = 10_000;
pub const MAX_TOKENS: usize = 100_000;
/// Longest accepted password (bytes), so that a hash request cannot be made arbitrarily big.
pub const MAX_PASSWORD: usize = 1024;
/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 8;
/// Containers one owner may hold.
const MAX_OWNED: usize = 4096;

/// Errors of the store, each with an API kind.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Invalid(String),
    #[error("user {0:?} not found")]
    UserNotFound(String),
    #[error("token {0:?} not found")]
    TokenNotFound(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("{path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Forbidden(String),
}

impl AuthError {
    pub fn kind(&self) -> berth_api::ErrorKind {
        use berth_api::ErrorKind as K;
        match self {
            AuthError::Invalid(_) => K::Invalid,
            AuthError::UserNotFound(_) | AuthError::TokenNotFound(_) => K::NotFound,
            AuthError::UserExists(_) => K::Conflict,
            AuthError::Forbidden(_) => K::Forbidden,
            AuthError::Corrupt { .. } | AuthError::Io { .. } | AuthError::Internal(_) => {
                K::Internal
            }
        }
    }
    fn io(path: &Path, err: std::io::Error) -> Self {
        AuthError::Io {
            path: path.into(),
            err,
        }
    }
}

impl From<AuthError> for berth_api::Error {
    fn from(e: AuthError) -> Self {
        berth_api::Error::new(e.kind(), e.to_string())
    }
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<u32>,
    /// argon2 PHC string; absent: tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    pub created: u64,
    /// An owner's quota: how many containers he may hold, clones of his own included
    /// (absent: he makes none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_containers: Option<u32>,
    /// A backup user's limits on its store (role `backup` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreLimits>,
}

impl User {
    pub fn info(&self) -> UserInfo {
        UserInfo {
            name: self.name.clone(),
            role: self.role,
            containers: self.containers.clone(),
            created: self.created,
            max_containers: self.max_containers,
            store: self.store.clone(),
        }
    }
}

/// A token as stored: its secret's SHA-256, never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub id: String,
    pub user: String,
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

impl Token {
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            user: self.user.clone(),
            name: self.name.clone(),
            created: self.created,
            expires: self.expires,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default, rename = "user")]
    users: Vec<User>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default, rename = "token")]
    tokens: Vec<Token>,
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| AuthError::Internal(format!("getrandom: {e}")))?;
    Ok(b)
}

/// Hex SHA-256 of a token secret.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compares in time independent of where the inputs differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Validates a user name like any other name (letters first, no path characters).
pub fn validate_user_name(name: &str) -> Result<()> {
    berth_api::validate::validate_name(name).map_err(|e| AuthError::Invalid(e.to_string()))
}

fn validate_label(label: &str) -> Result<()> {
    if label.is_empty() || label.len() > 64 {
        return Err(AuthError::Invalid(
            "token name must be 1 to 64 characters".into(),
        ));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.@ ".contains(&b))
    {
        return Err(AuthError::Invalid(format!(
            "invalid token name {label:?}: only letters, digits, space, '-', '_', '.' and '@'"
        )));
    }
    Ok(())
}

fn validate_password(pw: &str) -> Result<()> {
    if pw.len() < MIN_PASSWORD || pw.len() > MAX_PASSWORD {
        return Err(AuthError::Invalid(format!(
            "a password must be {MIN_PASSWORD} to {MAX_PASSWORD} bytes long"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(pw: &str) -> Result<String> {
    validate_password(pw)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Internal(format!("argon2: {e}")))
}

/// A valid hash of a password nobody has, verified against when the user does not exist so
/// that a login for an unknown user costs as much as one for a known user.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        SaltString::encode_b64(b"berth-dummy-salt")
            .ok()
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(b"not a password of anyone", &salt)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    })
}

/// The store of one node root.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store of the node root `root` (its `api/` directory, made 0700 when absent).
    pub fn open(root: &Path) -> Result<Self> {
        let dir = root.join("api");
        if !dir.exists() {
            berth_core::fsutil::create_dir_mode(&dir, 0o700)
                .map_err(|e| AuthError::Internal(e.to_string()))?;
        }
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    fn users_path(&self) -> PathBuf {
        self.dir.join("users.toml")
    }
    fn tokens_path(&self) -> PathBuf {
        self.dir.join("tokens.toml")
    }

    /// Exclusive lock of the store for a read-modify-write (berthd and the CLI share it).
    fn lock(&self) -> Result<fs::File> {
        let p = self.dir.join(".auth.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| AuthError::io(&p, e))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(AuthError::io(&p, std::io::Error::last_os_error()));
        }
        Ok(f)
    }

    fn read_file<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
            Err(e) => return Err(AuthError::io(path, e)),
        };
        let corrupt = |msg: String| AuthError::Corrupt {
            path: path.into(),
            msg,
        };
        if !meta.file_type().is_file() {
            return Err(corrupt("not a regular file".into()));
        }
        if meta.uid() != 0 && unsafe { libc::geteuid() } == 0 {
            return Err(corrupt(format!("owned by uid {}, not root", meta.uid())));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(corrupt(format!(
                "mode {:o}: must be 0600 (readable by root only)",
                meta.mode() & 0o777
            )));
        }
        if meta.len() > MAX_FILE {
            return Err(corrupt(format!("larger than {MAX_FILE} bytes")));
        }
        let text = fs::read_to_string(path).map_err(|e| AuthError::io(path, e))?;
        toml::from_str(&text).map_err(|e| corrupt(e.message().replace('\n', " ")))
    }

    fn write_file<T: Serialize>(path: &Path, v: &T) -> Result<()> {
        let text = toml::to_string_pretty(v).map_err(|e| AuthError::Internal(e.to_string()))?;
        berth_core::fsutil::atomic_write(path, text.as_bytes(), 0o600)
            .map_err(|e| AuthError::Internal(e.to_string()))
    }

    fn load_users(&self) -> Result<Vec<User>> {
        let path = self.users_path();
        let f: UsersFile = Self::read_file(&path)?;
        let corrupt = |msg: String| AuthError::Corrupt {
            path: path.clone(),
            msg,
        };
        if f.users.len() > MAX_USERS {
            return Err(corrupt(format!("more than {MAX_USERS} users")));
        }
        let mut seen = std::collections::HashSet::new();
        for u in &f.users {
            validate_user_name(&u.name).map_err(|e| corrupt(e.to_string()))?;
            if !seen.insert(u.name.as_str()) {
                return Err(corrupt(format!("user {:?} listed twice", u.name)));
            }
            check_containers(u.role, &u.containers).map_err(|e| corrupt(e.to_string()))?;
            check_quota(u.role, u.max_containers).map_err(|e| corrupt(e.to_string()))?;
            if let Some(h) = &u.password_hash {
                PasswordHash::new(h)
                    .map_err(|e| corrupt(format!("user {:?}: bad password hash: {e}", u.name)))?;
            }
        }
        Ok(f.users)
    }

    fn load_tokens(&self, users: &[User]) -> Result<Vec<Token>> {
        let path = self.tokens_path();
        let f: TokensFile = Self::read_file(&path)?;
        let corrupt = |msg: String| AuthError::Corrupt {
            path: path.clone(),
            msg,
        };
        if f.tokens.len() > MAX_TOKENS {
            return Err(corrupt(format!("more than {MAX_TOKENS} tokens")));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &f.tokens {
            if t.id.len() != 16 || !t.id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(corrupt(format!("bad token id {:?}", t.id)));
            }
            if !seen.insert(t.id.as_str()) {
                return Err(corrupt(format!("token {:?} listed twice", t.id)));
            }
            if t.hash.len() != 64 || !t.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(corrupt(format!("token {:?}: bad hash", t.id)));
            }
            validate_label(&t.name).map_err(|e| corrupt(e.to_string()))?;
            validate_user_name(&t.user).map_err(|e| corrupt(e.to_string()))?;
        }
        // Tokens of removed users are dead (removal drops them; a hand edit may not).
        let mut tokens = f.tokens;
        tokens.retain(|t| users.iter().any(|u| u.name == t.user));
        Ok(tokens)
    }

    pub fn users(&self) -> Result<Vec<User>> {
        self.load_users()
    }

    pub fn user(&self, name: &str) -> Result<User> {
        self.load_users()?
            .into_iter()
            .find(|u| u.name == name)
            .ok_or_else(|| AuthError::UserNotFound(name.into()))
    }

    /// Adds a user (password optional: tokens only without one).
    pub fn add_user(
        &self,
        name: &str,
        role: Role,
        containers: Vec<u32>,
        password: Option<&str>,
        max_containers: Option<u32>,
    ) -> Result<User> {
        self.add(&UserAdd {
            name: name.into(),
            role,
            containers,
            password: password.map(str::to_string),
            max_containers,
            store: None,
        })
    }

    /// Adds the user `u` describes (a backup user's store limits included).
    pub fn add(&self, u: &UserAdd) -> Result<User> {
        let name = u.name.as_str();
        validate_user_name(name)?;
        if name == "root" || name == "berthd" {
            return Err(AuthError::Invalid(format!(
                "user name {name:?} is reserved (the local administrator and berthd itself)"
            )));
        }
        let role = u.role;
        let mut containers = u.containers.clone();
        containers.sort_unstable();
        containers.dedup();
        check_containers(role, &containers)?;
        check_quota(role, u.max_containers)?;
        let store = match (role, &u.store) {
            (Role::Backup, s) => Some(s.clone().unwrap_or_default()),
            (_, None) => None,
            (_, Some(_)) => {
                return Err(AuthError::Invalid(
                    "only backup users have store limits".into(),
                ))
            }
        };
        if store.as_ref().and_then(|s| s.quota) == Some(0) {
            return Err(AuthError::Invalid(
                "a store quota of 0 holds nothing".into(),
            ));
        }
        let password_hash = u.password.as_deref().map(hash_password).transpose()?;
        let _l = self.lock()?;
        let mut users = self.load_users()?;
        if users.iter().any(|x| x.name == name) {
            return Err(AuthError::UserExists(name.into()));
        }
        if users.len() >= MAX_USERS {
            return Err(AuthError::Invalid(format!("at most {MAX_USERS} users")));
        }
        let u = User {
            name: name.into(),
            role,
            containers,
            password_hash,
            created: now(),
            max_containers: u.max_containers,
            store,
        };
        users.push(u.clone());
        Self::write_file(&self.users_path(), &UsersFile { users })?;
        Ok(u)
    }

    /// Removes a user and every token of his.
    pub fn remove_user(&self, name: &str) -> Result<()> {
        let _l = self.lock()?;
        let mut users = self.load_users()?;
        let before = users.len();
        users.retain(|u| u.name != name);
        if users.len() == before {
            return Err(AuthError::UserNotFound(name.into()));
        }
        let mut tokens = self.load_tokens(&users)?;
        tokens.retain(|t| t.user != name);
        Self::write_file(&self.tokens_path(), &TokensFile { tokens })?;
        Self::write_file(&self.users_path(), &UsersFile { users })?;
        Ok(())
    }

    /// Whether owner `name` may make one more container (`clone` of one of his): his quota
    /// (`max_containers`) above the number he holds. An error says why not.
    pub fn check_quota(&self, name: &str) -> Result<()> {
        self.quota_left(name).map(|_| ())
    }

    /// How many more containers owner `name` may hold (at least 1; an error says why not).
    pub fn quota_left(&self, name: &str) -> Result<u32> {
        quota_left(&self.user(name)?)
    }

    /// Gives owner `name` container `id` (made by his `clone`), within his quota.
    pub fn grant_container(&self, name: &str, id: u32) -> Result<()> {
        let _l = self.lock()?;
        let mut users = self.load_users()?;
        let u = users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| AuthError::UserNotFound(name.into()))?;
        if !u.containers.contains(&id) {
            quota_left(u)?;
            u.containers.push(id);
            u.containers.sort_unstable();
        }
        Self::write_file(&self.users_path(), &UsersFile { users })
    }

    /// Container `from` is container `to` now (`move --ctid`), or gone (`to` = None: a
    /// destroyed container leaves every owner's list, so that a new container of the same
    /// CTID is nobody's). Returns the owners whose lists changed.
    pub fn renumber_container(&self, from: u32, to: Option<u32>) -> Result<Vec<String>> {
        let _l = self.lock()?;
        let mut users = self.load_users()?;
        let mut changed = vec![];
        for u in users.iter_mut().filter(|u| u.containers.contains(&from)) {
            u.containers.retain(|c| *c != from);
            if let Some(t) = to {
                if !u.containers.contains(&t) {
                    u.containers.push(t);
                }
            }
            u.containers.sort_unstable();
            changed.push(u.name.clone());
        }
        if !changed.is_empty() {
            Self::write_file(&self.users_path(), &UsersFile { users })?;
        }
        Ok(changed)
    }

    /// Checks a password; the user when it matches. Costs one argon2 verification whether
    /// or not the user exists.
    pub fn verify_password(&self, name: &str, password: &str) -> Result<Option<User>> {
        if password.len() > MAX_PASSWORD {
            return Ok(None);
        }
        let user = self
            .load_users()?
            .into_iter()
            .find(|u| u.name == name && u.password_hash.is_some());
        let hash = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| dummy_hash().to_string());
        let ok = PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        Ok(if ok { user } else { None })
    }

    /// Creates a token for `user`, valid `ttl_s` seconds (None: until revoked).
    pub fn create_token(&self, user: &str, name: &str, ttl_s: Option<u64>) -> Result<NewToken> {
        validate_label(name)?;
        if let Some(t) = ttl_s {
            if t == 0 || t > 10 * 365 * 86400 {
                return Err(AuthError::Invalid(
                    "a token expires after 1 second to 10 years".into(),
                ));
            }
        }
        let _l = self.lock()?;
        let users = self.load_users()?;
        if !users.iter().any(|u| u.name == user) {
            return Err(AuthError::UserNotFound(user.into()));
        }
        let mut tokens = self.load_tokens(&users)?;
        if tokens.len() >= MAX_TOKENS {
            return Err(AuthError::Invalid(format!("at most {MAX_TOKENS} tokens")));
        }
        let secret = format!(
            "berth_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
        );
        let created = now();
        let t = Token {
            id: hex(&random_bytes::<8>()?),
            user: user.into(),
            name: name.into(),
            hash: hash_secret(&secret),
            created,
            expires: ttl_s.map(|s| created + s),
        };
        tokens.push(t.clone());
        Self::write_file(&self.tokens_path(), &TokensFile { tokens })?;
        Ok(NewToken {
            info: t.info(),
            secret,
        })
    }

    pub fn tokens(&self) -> Result<Vec<Token>> {
        let users = self.load_users()?;
        self.load_tokens(&users)
    }

    pub fn token(&self, id: &str) -> Result<Token> {
        self.tokens()?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| AuthError::TokenNotFound(id.into()))
    }

    pub fn revoke_token(&self, id: &str) -> Result<()> {
        let _l = self.lock()?;
        let users = self.load_users()?;
        let mut tokens = self.load_tokens(&users)?;
        let before = tokens.len();
        tokens.retain(|t| t.id != id);
        if tokens.len() == before {
            return Err(AuthError::TokenNotFound(id.into()));
        }
        Self::write_file(&self.tokens_path(), &TokensFile { tokens })
    }

    /// The user a token secret belongs to, when it is known and unexpired.
    pub fn verify_token(&self, secret: &str) -> Result<Option<(Token, User)>> {
        if secret.len() > 256 {
            return Ok(None);
        }
        let h = hash_secret(secret);
        let users = self.load_users()?;
        let tokens = self.load_tokens(&users)?;
        let now = now();
        let found = tokens
            .into_iter()
            .find(|t| ct_eq(t.hash.as_bytes(), h.as_bytes()));
        Ok(found.and_then(|t| {
            if t.expires.is_some_and(|e| e <= now) {
                return None;
            }
            let u = users.into_iter().find(|u| u.name == t.user)?;
            Some((t, u))
        }))
    }
}

fn check_quota(role: Role, max: Option<u32>) -> Result<()> {
    match (role, max) {
        (_, None) => Ok(()),
        (Role::Owner, Some(n)) if n as usize <= MAX_OWNED => Ok(()),
        (Role::Owner, Some(_)) => Err(AuthError::Invalid(format!(
            "a quota is at most {MAX_OWNED} containers"
        ))),
        _ => Err(AuthError::Invalid(
            "only owners have a container quota".into(),
        )),
    }
}

/// How many more containers an owner may hold.
fn quota_left(u: &User) -> Result<u32> {
    if u.role != Role::Owner {
        return Err(AuthError::Invalid(format!("{} is not an owner", u.name)));
    }
    let max = u.max_containers.unwrap_or(0);
    let held = u.containers.len() as u32;
    if held >= max {
        return Err(AuthError::Forbidden(format!(
            "your container quota is {max} and you hold {held}: ask an administrator for more"
        )));
    }
    Ok(max - held)
}

fn check_containers(role: Role, containers: &[u32]) -> Result<()> {
    match role {
        Role::Owner => {
            if containers.len() > MAX_OWNED {
                return Err(AuthError::Invalid(format!(
                    "an owner holds at most {MAX_OWNED} containers"
                )));
            }
            for c in containers {
                berth_api::CtId::parse(&c.to_string())
                    .map_err(|e| AuthError::Invalid(e.to_string()))?;
            }
        }
        _ if !containers.is_empty() => {
            return Err(AuthError::Invalid(
                "only owners have a list of containers".into(),
            ))
        }
        _ => {}
    }
    Ok(())
}

/// Parses a duration like `30d`, `12h`, `90m`, `45s` (or plain seconds).
pub fn parse_duration(s: &str) -> Result<u64> {
    let bad = || {
        AuthError::Invalid(format!(
            "invalid duration {s:?}: use a number with s, m, h, d or w (e.g. 30d)"
        ))
    };
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        Some((i, 'w')) => (&s[..i], 7 * 86400),
        Some(_) => (s, 1),
        None => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(mult).filter(|v| *v > 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests;

pub mod cert;
