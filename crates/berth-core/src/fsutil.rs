//! Atomic file writes: temp file in the same directory, fsync, rename, fsync dir (without
//! the fsyncs for runtime state, which a host crash makes void anyway).

use crate::{CoreError, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `data` to `path` atomically: readers see the old or the new content, never a mix,
/// and a crash leaves one of the two.
pub fn atomic_write(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    replace(path, data, mode, true)
}

/// Writes a file of the node's runtime state (`run/`: PIDs, applied network state, service
/// lists of running containers) atomically but without fsync: readers see the old or the
/// new content, also after a crash of any process. Only a host crash can leave such a file
/// empty, and a host crash ends every process it describes: recovery treats it as a
/// leftover, and its readers take an unreadable file for an absent one. The fsyncs cost
/// about 0.6 ms per file on the start path.
pub fn write_runtime_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    replace(path, data, mode, false)
}

/// Temp file in the same directory, (fsync,) rename, (fsync of the directory).
fn replace(path: &Path, data: &[u8], mode: u32, durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The exact mode, whatever the umask or a stale temp file of a crashed process had.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(|e| CoreError::io(path, e))
}

/// The PID in the name of a temporary file of [`atomic_write`] / [`write_runtime_file`]
/// (`.NAME.tmp.PID`), if `name` is one.
pub fn temp_file_pid(name: &str) -> Option<i32> {
    let (base, pid) = name.strip_prefix('.')?.rsplit_once(".tmp.")?;
    if base.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|p| *p > 0)
}

/// Whether no process `pid` exists (a zombie still does: it may not have been reaped yet).
pub fn pid_gone(pid: i32) -> bool {
    // SAFETY: signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Removes the temporary files a writer killed half-way left in `dir` (`.NAME.tmp.PID` whose
/// PID no longer exists): nothing will ever rename them. A living PID's file is left
/// alone, since it may be a write in progress. Returns how many were removed.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(temp_file_pid) else {
            continue;
        };
        if pid_gone(pid)
            && e.file_type().is_ok_and(|t| t.is_file())
            && fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Serialises `value` as TOML and writes it atomically, root-only (0600): configs may hold
/// descriptions, service commands and network settings no other host user needs.
pub fn write_toml<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = toml::to_string_pretty(value).map_err(|e| CoreError::Parse {
        path: path.into(),
        msg: e.to_string(),
    })?;
    atomic_write(path, text.as_bytes(), 0o600)
}

/// Reads and parses a TOML file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    toml::from_str(&text).map_err(|e| CoreError::Parse {
        path: path.into(),
        msg: parse_message(&text, &e),
    })
}

/// A TOML error as one line (errors are one line each): toml's message spans several
/// (`invalid table header\nexpected ...`) and may quote the file's own control characters;
/// the position it points at is given as line and column.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let msg: Vec<&str> = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let msg: String = msg
        .join("; ")
        .chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect();
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let col = before.len()
                - before
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1)
                + 1;
            format!("line {line}, column {col}: {msg}")
        }
        None => msg,
    }
}

/// Creates a directory (and parents), mapping errors to the path.
pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| CoreError::io(path, e))
}

/// Creates a directory (and parents) and gives it exactly `mode` (whatever the umask, and
/// also when it already existed with another mode).
pub fn create_dir_mode(path: &Path, mode: u32) -> Result<()> {
    create_dir_all(path)?;
    ensure_mode(path, mode)
}

/// Gives `path` exactly `mode` (permission bits) if it has another one. A missing path is
/// not an error, and a symlink is left alone (never followed).
pub fn ensure_mode(path: &Path, mode: u32) -> Result<()> {
    let m = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CoreError::io(path, e)),
    };
    if m.file_type().is_symlink() || m.permissions().mode() & 0o7777 == mode {
        return Ok(());
    }
    match fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CoreError::io(path, e)),
        _ => Ok(()),
    }
}

/// Gives `path` exactly the owner `uid:gid` and `mode` (see [`ensure_mode`]); the owner first,
/// since a chown clears setuid/setgid bits.
pub fn ensure_owner_mode(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CoreError::io(path, e)),
    };
    if m.file_type().is_symlink() {
        return Ok(());
    }
    if m.uid() != uid || m.gid() != gid {
        match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(CoreError::io(path, e)),
            Ok(()) => {}
        }
    }
    ensure_mode(path, mode)
}

/// Removes a directory tree; a missing tree is not an error.
pub fn remove_dir_all_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CoreError::io(path, e)),
    }
}

/// Removes a file; a missing file is not an error.
pub fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CoreError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.toml");
        atomic_write(&p, b"one", 0o644).unwrap();
        atomic_write(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn parse_errors_are_one_line_with_their_position() {
        // found by fuzzing: toml's messages span lines (and quote control characters)
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        for (text, pos) in [
            ("a = 1\n[[b\n", "line 2, column 4"),
            ("a = \"x\u{1b}\n", "line 1"),
            ("[a]\nb = 1\n[a]\n", "line 3"),
        ] {
            fs::write(&p, text).unwrap();
            let e = read_toml::<toml::Table>(&p).unwrap_err().to_string();
            assert!(!e.contains(['\n', '\r', '\u{1b}']), "{e:?}");
            assert!(e.contains(pos) && e.contains("c.toml"), "{e}");
        }
    }

    #[test]
    fn stale_temps_of_dead_writers_are_removed() {
        assert_eq!(temp_file_pid(".config.toml.tmp.123"), Some(123));
        assert_eq!(temp_file_pid("config.toml.tmp.123"), None);
        assert_eq!(temp_file_pid(".config.toml.tmp."), None);
        assert_eq!(temp_file_pid(".config.toml.tmp.12a"), None);
        assert_eq!(temp_file_pid(".tmp.12"), None);
        let d = tempfile::tempdir().unwrap();
        // PID 0x3fffffff is above any pid_max: never alive.
        let dead = d.path().join(".config.toml.tmp.1073741823");
        let live = d
            .path()
            .join(format!(".config.toml.tmp.{}", std::process::id()));
        let other = d.path().join("config.toml");
        for p in [&dead, &live, &other] {
            fs::write(p, "x").unwrap();
        }
        assert_eq!(remove_stale_temps(d.path()), 1);
        assert!(!dead.exists() && live.exists() && other.exists());
    }

    #[test]
    fn modes_are_exact_whatever_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        // a stale temp file of a crashed writer with a wide mode is not reused as it is
        let stale = d.path().join(format!(".c.toml.tmp.{}", std::process::id()));
        fs::write(&stale, "old").unwrap();
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o666)).unwrap();
        write_toml(&p, &toml::toml! { a = 1 }).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        let sub = d.path().join("a/b");
        create_dir_mode(&sub, 0o700).unwrap();
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
        create_dir_mode(&sub, 0o700).unwrap();
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        ensure_mode(&d.path().join("missing"), 0o600).unwrap();
    }
}
