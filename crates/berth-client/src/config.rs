//! The remotes of the invoking user: `~/.config/berth/remotes.toml` (or
//! `$BERTH_CONFIG_DIR/remotes.toml`), mode 0600 because it holds tokens, written atomically
//! (a temporary file in the same directory, fsync, rename) and validated on every load.
//!
//! ```toml
//! [remotes.node1]
//! url = "https://203.0.113.7:8470"
//! fingerprint = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! token = "…"
//! ```

use crate::error::{ClientError, Result};
use crate::http::Endpoint;
use crate::tls::Fingerprint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "remotes.toml";

/// One remote node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    /// `https://HOST:PORT` or `unix:///path/to/berthd.sock`.
    pub url: String,
    /// SHA-256 of the node's certificate, 64 hex digits (HTTPS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The API token (`BERTH_TOKEN` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Remote {
    /// Checks the URL, the pin (required for HTTPS, refused for a unix socket) and the token.
    pub fn validate(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let ep = Endpoint::parse(&self.url)?;
        match (&ep, &self.fingerprint) {
            (Endpoint::Https { .. }, None) => {
                return Err(ClientError::Invalid(format!(
                    "remote {name:?}: an https remote needs the node certificate's fingerprint"
                )))
            }
            (Endpoint::Https { .. }, Some(f)) => {
                if Fingerprint::parse(f).is_none() {
                    return Err(ClientError::Invalid(format!(
                        "remote {name:?}: invalid fingerprint {f:?}: give the SHA-256 as 64 hex digits"
                    )));
                }
            }
            (Endpoint::Unix { .. }, Some(_)) => {
                return Err(ClientError::Invalid(format!(
                    "remote {name:?}: a unix socket remote has no certificate fingerprint"
                )))
            }
            (Endpoint::Unix { .. }, None) => {}
        }
        if let Some(t) = &self.token {
            validate_token(t)?;
        }
        Ok(())
    }

    pub fn endpoint(&self) -> Result<Endpoint> {
        Endpoint::parse(&self.url)
    }

    pub fn pin(&self) -> Option<Fingerprint> {
        self.fingerprint.as_deref().and_then(Fingerprint::parse)
    }
}

/// A remote's name: the rules of container names.
pub fn validate_name(name: &str) -> Result<()> {
    berth_api::validate::validate_name(name)
        .map_err(|e| ClientError::Invalid(format!("invalid remote name: {e}")))
}

/// A token goes into an HTTP header: printable ASCII without spaces, at most 4 KiB.
pub fn validate_token(t: &str) -> Result<()> {
    if t.is_empty() || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ClientError::Invalid(
            "invalid token: expected printable ASCII without spaces (at most 4096 characters)"
                .into(),
        ));
    }
    Ok(())
}

/// The remotes file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remotes {
    #[serde(default)]
    pub remotes: BTreeMap<String, Remote>,
}

/// The directory of the remotes file: `$BERTH_CONFIG_DIR`, else `$HOME/.config/berth`.
pub fn config_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("BERTH_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".config").join("berth")),
        None => Err(ClientError::Invalid(
            "neither BERTH_CONFIG_DIR nor HOME is set: no place for the remotes file".into(),
        )),
    }
}

impl Remotes {
    /// Loads `dir/remotes.toml` (empty when absent) and validates every remote.
    pub fn load(dir: &Path) -> Result<Remotes> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Remotes::default()),
            Err(e) => return Err(ClientError::io(format!("reading {}", path.display()), e)),
        };
        let r: Remotes = toml::from_str(&text)
            .map_err(|e| ClientError::Invalid(format!("{}: {}", path.display(), e.message())))?;
        for (name, remote) in &r.remotes {
            remote
                .validate(name)
                .map_err(|e| ClientError::Invalid(format!("{}: {e}", path.display())))?;
        }
        if r.remotes.values().any(|x| x.token.is_some()) {
            let mode = std::fs::metadata(&path)
                .map_err(|e| ClientError::io(format!("reading {}", path.display()), e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(ClientError::Invalid(format!(
                    "{} holds tokens and is open to other users (mode {:o}): make it 0600",
                    path.display(),
                    mode & 0o777
                )));
            }
        }
        Ok(r)
    }

    /// Writes `dir/remotes.toml` atomically, mode 0600 (the directory 0700 when made).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |what: &str, p: &Path, e| ClientError::io(format!("{what} {}", p.display()), e);
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| io("creating", dir, e))?;
        }
        let text = toml::to_string(self)
            .map_err(|e| ClientError::Invalid(format!("cannot write the remotes: {e}")))?;
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io("writing", &path, e)
        })
    }

    pub fn get(&self, name: &str) -> Result<&Remote> {
        self.remotes
            .get(name)
            .ok_or_else(|| ClientError::NoSuchRemote(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn remote(url: &str, fp: Option<&str>) -> Remote {
        Remote {
            url: url.into(),
            fingerprint: fp.map(Into::into),
            token: Some("abc.DEF-123".into()),
        }
    }

    #[test]
    fn save_load_round_trip_0600() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cfg");
        let mut r = Remotes::default();
        r.remotes
            .insert("node1".into(), remote("https://127.0.0.1:8470", Some(FP)));
        r.remotes
            .insert("local".into(), remote("unix:///run/berthd.sock", None));
        r.save(&dir).unwrap();
        let meta = std::fs::metadata(dir.join(FILE_NAME)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(Remotes::load(&dir).unwrap(), r);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // Open to others with a token inside: refused.
        std::fs::set_permissions(dir.join(FILE_NAME), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert!(Remotes::load(&dir).is_err());
        assert_eq!(
            Remotes::load(&d.path().join("none")).unwrap(),
            Remotes::default()
        );
    }

    #[test]
    fn validation() {
        assert!(remote("https://h:1", Some(FP)).validate("n1").is_ok());
        assert!(remote("https://h:1", None).validate("n1").is_err());
        assert!(remote("https://h:1", Some("abc")).validate("n1").is_err());
        assert!(remote("unix:///s", Some(FP)).validate("n1").is_err());
        assert!(remote("http://h:1", Some(FP)).validate("n1").is_err());
        assert!(remote("https://h:1", Some(FP)).validate("../x").is_err());
        assert!(remote("https://h:1", Some(FP)).validate("").is_err());
        let mut bad_token = remote("unix:///s", None);
        bad_token.token = Some("a b\n".into());
        assert!(bad_token.validate("n1").is_err());
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(FILE_NAME),
            "[remotes.x]\nurl = \"https://h:1\"\nfingerprint = \"zz\"\n",
        )
        .unwrap();
        assert!(Remotes::load(d.path()).is_err());
        std::fs::write(
            d.path().join(FILE_NAME),
            "[remotes.x]\nurl = \"unix:///s\"\nunknown = 1\n",
        )
        .unwrap();
        assert!(Remotes::load(d.path()).is_err());
    }
}
