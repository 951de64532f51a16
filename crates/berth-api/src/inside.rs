//! Users, groups, passwords and files inside a container: the owner's everyday tools
//! (`berth user CT …`, `berth group CT …`, `berth file …`, `set --userpasswd`).
//!
//! Everything here is done in the container's own view: its `/etc/passwd`, `/etc/shadow`,
//! `/etc/group` and `/etc/gshadow`, its paths resolved inside its root, its user IDs
//! (container-native: UID 0 is the container's root, whatever host ID it maps to).
//! Passwords travel in request bodies only and are hashed by the node with the container's
//! own scheme (`ENCRYPT_METHOD` of its `/etc/login.defs`).

use crate::error::InputError;
use serde::{Deserialize, Serialize};

type Result<T, E = InputError> = std::result::Result<T, E>;

/// Largest path inside a container that the API takes (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// Largest password the API takes.
pub const MAX_PASSWORD: usize = 4096;
/// Largest user or group name (shadow-utils' default `LOGIN_NAME_MAX` is 32).
pub const MAX_ACCOUNT_NAME: usize = 32;
/// Every container's IDs are `0..65536` of its own map.
pub const ID_LIMIT: u32 = 65536;

/// The header of a pulled file's answer (`GET /containers/{ct}/files/content`): the
/// percent-encoded JSON of its [`FileEntry`] (its bytes are the body).
pub const FILE_HEADER: &str = "x-berth-file";

/// Whether a user has a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PasswordState {
    /// A password hash is set (never shown).
    Set,
    /// Locked (`!` or `*`): no password login.
    Locked,
    /// An empty password field: login without a password.
    Empty,
}

/// A user of a container (`/etc/passwd`, with `/etc/shadow` and `/etc/group`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CtUser {
    pub name: String,
    /// UID inside the container.
    pub uid: u32,
    /// Primary GID inside the container.
    pub gid: u32,
    /// The primary group's name, when `/etc/group` has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Supplementary groups (those of `/etc/group` that list the user).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default)]
    pub gecos: String,
    pub home: String,
    pub shell: String,
    pub password: PasswordState,
}

/// A group of a container (`/etc/group`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CtGroup {
    pub name: String,
    pub gid: u32,
    /// Supplementary members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// `user CT add NAME`: a new user of a container.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CtUserAdd {
    pub name: String,
    /// Default: the first free UID from the container's `UID_MIN` (1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// An existing group's GID as the primary group. Default: a new group named like the
    /// user (GID = UID when free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Supplementary groups (existing ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Default: `/bin/bash` when the container has it, else `/bin/sh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Default: `/home/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gecos: Option<String>,
    /// Do not create the home directory (it is created 0700, owned by the user, when
    /// missing).
    #[serde(default)]
    pub no_create_home: bool,
    /// A password to set at once (else the account is locked until one is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for CtUserAdd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtUserAdd")
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("groups", &self.groups)
            .field("shell", &self.shell)
            .field("home", &self.home)
            .field("gecos", &self.gecos)
            .field("no_create_home", &self.no_create_home)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// `user CT passwd NAME`, `set --userpasswd NAME:PASSWORD`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CtPassword {
    pub password: String,
    /// Create the user when missing (vzctl's `--userpasswd`).
    #[serde(default)]
    pub create: bool,
}

impl std::fmt::Debug for CtPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtPassword")
            .field("password", &"<hidden>")
            .field("create", &self.create)
            .finish()
    }
}

/// `group CT add NAME`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CtGroupAdd {
    pub name: String,
    /// Default: the first free GID from the container's `GID_MIN` (1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// What a file of a container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Char,
    Block,
}

impl FileKind {
    /// The `ls -l` letter.
    pub fn letter(self) -> char {
        match self {
            FileKind::File => '-',
            FileKind::Dir => 'd',
            FileKind::Symlink => 'l',
            FileKind::Fifo => 'p',
            FileKind::Socket => 's',
            FileKind::Char => 'c',
            FileKind::Block => 'b',
        }
    }
}

/// A file of a container as seen inside it (never following a final symlink).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileEntry {
    /// Absolute path inside the container.
    pub path: String,
    pub kind: FileKind,
    /// Bytes (of a regular file; of the link text for a symlink).
    pub size: u64,
    /// Permission bits, with setuid, setgid and sticky (`0o7777` at most).
    pub mode: u32,
    /// Owner inside the container.
    pub uid: u32,
    pub gid: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl FileEntry {
    /// The last component of the path (`/` for the root).
    pub fn name(&self) -> &str {
        match self.path.rsplit('/').next() {
            Some("") | None => "/",
            Some(n) => n,
        }
    }
}

/// `file push`: where and how the file is written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FilePush {
    /// Absolute path of the file inside; its directory must exist.
    pub path: String,
    /// Default: the replaced file's mode, else 0644.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Owner inside the container. Default: the replaced file's, else 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

impl FilePush {
    pub fn validate(&self) -> Result<()> {
        validate_path(&self.path)?;
        if self.path == "/" {
            return Err(InputError::Invalid(
                "cannot write over the root directory".into(),
            ));
        }
        if let Some(m) = self.mode {
            validate_mode(m)?;
        }
        for (v, what) in [(self.uid, "uid"), (self.gid, "gid")] {
            if let Some(v) = v {
                validate_id(v, what)?;
            }
        }
        Ok(())
    }
}

/// Receives a file read from a container: its entry first, then its bytes.
pub trait FileSink {
    /// Once, before the first byte.
    fn begin(&mut self, entry: &FileEntry) -> std::io::Result<()>;
    fn write(&mut self, data: &[u8]) -> std::io::Result<()>;
}

/// A [`FileSink`] writing into any `Write` (the entry is ignored).
pub struct WriteSink<W: std::io::Write>(pub W);

impl<W: std::io::Write> FileSink for WriteSink<W> {
    fn begin(&mut self, _: &FileEntry) -> std::io::Result<()> {
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all(data)
    }
}

/// A user or group name: POSIX portable characters (`A-Z a-z 0-9 . _ -`), not starting
/// with `-`, not all digits (it would read as an ID), at most 32 characters; a trailing
/// `$` is allowed (Samba machine accounts).
pub fn validate_account_name(s: &str) -> Result<()> {
    let bad = |why| Err(InputError::InvalidName(s.into(), why));
    let core = s.strip_suffix('$').unwrap_or(s);
    if core.is_empty() {
        return bad("empty");
    }
    if s.len() > MAX_ACCOUNT_NAME {
        return bad("longer than 32 characters");
    }
    if core.starts_with('-') {
        return bad("must not start with '-'");
    }
    if !core
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only letters, digits, '.', '_' and '-' are allowed");
    }
    if core == "." || core == ".." {
        return bad("not a name");
    }
    if core.bytes().all(|b| b.is_ascii_digit()) {
        return bad("must not be all digits");
    }
    Ok(())
}

/// A path inside a container: absolute, without `..` or `.` components, NUL or newline,
/// at most 4096 bytes (each component at most 255).
pub fn validate_path(p: &str) -> Result<()> {
    let bad = |why: &str| Err(InputError::Invalid(format!("invalid path {p:?}: {why}")));
    if !p.starts_with('/') {
        return bad("a path inside the container is absolute");
    }
    if p.len() > MAX_PATH {
        return bad("longer than 4096 bytes");
    }
    if p.bytes().any(|b| b == 0 || b == b'\n') {
        return bad("contains NUL or a newline");
    }
    for c in p.split('/') {
        if c == ".." || c == "." {
            return bad("must not contain '.' or '..' components");
        }
        if c.len() > 255 {
            return bad("a component is longer than 255 bytes");
        }
    }
    Ok(())
}

/// The path with repeated and trailing slashes removed (`/` stays `/`).
pub fn clean_path(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// Permission bits: at most `0o7777`.
pub fn validate_mode(m: u32) -> Result<()> {
    if m > 0o7777 {
        return Err(InputError::InvalidValue(
            format!("{m:o}"),
            "--mode",
            "a mode is octal, at most 7777".into(),
        ));
    }
    Ok(())
}

/// An octal mode as the CLI and the query strings write it (`644`, `0644`, `0o644`).
pub fn parse_mode(s: &str) -> Result<u32> {
    let t = s.strip_prefix("0o").unwrap_or(s);
    let m = u32::from_str_radix(t, 8).map_err(|_| {
        InputError::InvalidValue(s.into(), "--mode", "a mode is octal, e.g. 0644".into())
    })?;
    validate_mode(m)?;
    Ok(m)
}

/// A UID or GID inside a container: within its 65536 IDs.
pub fn validate_id(v: u32, what: &'static str) -> Result<()> {
    if v >= ID_LIMIT {
        return Err(InputError::InvalidValue(
            v.to_string(),
            what,
            format!("a container's IDs are 0 to {}", ID_LIMIT - 1),
        ));
    }
    Ok(())
}

/// A password: 1 to 4096 bytes, no NUL or newline.
pub fn validate_password(p: &str) -> Result<()> {
    if p.is_empty() {
        return Err(InputError::Invalid("the password is empty".into()));
    }
    if p.len() > MAX_PASSWORD {
        return Err(InputError::Invalid(
            "the password is longer than 4096 bytes".into(),
        ));
    }
    if p.bytes().any(|b| b == 0 || b == b'\n' || b == b'\r') {
        return Err(InputError::Invalid(
            "the password contains NUL or a line break".into(),
        ));
    }
    Ok(())
}

impl CtUserAdd {
    pub fn validate(&self) -> Result<()> {
        validate_account_name(&self.name)?;
        if let Some(u) = self.uid {
            validate_id(u, "--uid")?;
        }
        if let Some(g) = self.gid {
            validate_id(g, "--gid")?;
        }
        for g in &self.groups {
            validate_account_name(g)?;
        }
        for (v, what) in [(&self.shell, "--shell"), (&self.home, "--home")] {
            if let Some(v) = v {
                validate_path(v).map_err(|_| {
                    InputError::InvalidValue(
                        v.clone(),
                        what,
                        "an absolute path without ':', '..' or line breaks".into(),
                    )
                })?;
                if v.contains(':') {
                    return Err(InputError::InvalidValue(
                        v.clone(),
                        what,
                        "an absolute path without ':', '..' or line breaks".into(),
                    ));
                }
            }
        }
        if let Some(g) = &self.gecos {
            if g.len() > 256 || g.chars().any(|c| c == ':' || c.is_control()) {
                return Err(InputError::InvalidValue(
                    g.clone(),
                    "--gecos",
                    "at most 256 characters, without ':' or control characters".into(),
                ));
            }
        }
        if let Some(p) = &self.password {
            validate_password(p)?;
        }
        Ok(())
    }
}

impl CtGroupAdd {
    pub fn validate(&self) -> Result<()> {
        validate_account_name(&self.name)?;
        if let Some(g) = self.gid {
            validate_id(g, "--gid")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for ok in ["www-data", "a", "_apt", "Debian-exim", "host$", "a.b", "u1"] {
            validate_account_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "-x",
            "a:b",
            "a b",
            "..",
            ".",
            "1234",
            "a/b",
            "$",
            "é",
            "a\n",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(validate_account_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_and_modes() {
        for ok in ["/", "/etc/hosts", "/srv//x/", "/a b/c"] {
            validate_path(ok).unwrap();
        }
        for bad in ["etc/hosts", "/etc/../x", "/./x", "/a\0b", "/a\nb", ""] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(clean_path("/srv//x/"), "/srv/x");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(parse_mode("0644").unwrap(), 0o644);
        assert_eq!(parse_mode("4755").unwrap(), 0o4755);
        assert!(parse_mode("10000").is_err() && parse_mode("9").is_err());
        assert!(validate_id(65536, "uid").is_err() && validate_id(65535, "uid").is_ok());
        let p = CtPassword {
            password: "secret".into(),
            create: true,
        };
        assert!(!format!("{p:?}").contains("secret"));
    }

    #[test]
    fn entries() {
        let e = FileEntry {
            path: "/etc/hosts".into(),
            kind: FileKind::File,
            size: 1,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            target: None,
        };
        assert_eq!(e.name(), "hosts");
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["kind"], "file");
        assert!(j.get("target").is_none());
    }
}
