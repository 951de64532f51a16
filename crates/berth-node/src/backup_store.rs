//! A backup node's stores (docs/backups.md, "A backup node"): one restic repository per
//! backup user, `backups/stores/<user>/`, in restic's local layout (so restic reads it as a
//! directory too), written and read by berthd for that user's client node through the
//! restic REST protocol.
//!
//! What the client may do is bounded here, whatever it sends: names are restic's (a type
//! of five, 64 hex digits that are the SHA-256 of the content, checked before a file
//! appears), every file is written to a temporary one and renamed into place after
//! `fsync`, a store never exceeds its quota nor leaves the node filesystem less than its
//! reserve, and an append-only store neither deletes (lock files aside) nor overwrites.

use crate::{NodeError, Result};
use berth_api::agent::StoreLimits;
use berth_core::{fsutil, CoreError, NodeRoot};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The largest file a client may store (restic's packs are far smaller).
pub const MAX_OBJECT: u64 = 4 * 1024 * 1024 * 1024;

/// The five kinds of files of a repository besides `config`.
const TYPES: [&str; 5] = ["data", "keys", "locks", "snapshots", "index"];

/// Each store's usage (keyed by its directory), counted at first need and again every
/// [`RECOUNT`] (an administrator's prune in place frees space berthd did not see), kept up
/// to date by writes and removals under the store's own lock, which also covers the step
/// from "is it there?" to the rename.
static USAGE: Mutex<Option<HashMap<PathBuf, Arc<Mutex<Usage>>>>> = Mutex::new(None);

/// Bytes of uploads under way on the whole node, not yet on disk: the node's reserve is
/// checked against free space less these.
static INFLIGHT: AtomicU64 = AtomicU64::new(0);

const RECOUNT: std::time::Duration = std::time::Duration::from_secs(600);

/// The largest `config` (restic's is a few hundred bytes).
const MAX_CONFIG: u64 = 64 * 1024;

/// Free inodes kept on the node filesystem (a store of many tiny files must not starve
/// the containers).
const MIN_FREE_INODES: u64 = 10_000;

struct Usage {
    bytes: u64,
    counted: Option<std::time::Instant>,
}

/// What a file costs against a quota: its length in whole 4 KiB blocks (at least one), so
/// that many tiny files cost what they take on disk.
fn charge(len: u64) -> u64 {
    len.max(1).div_ceil(4096) * 4096
}

fn inval(m: impl Into<String>) -> NodeError {
    NodeError::Invalid(m.into())
}

/// One store, as its user reaches it.
pub struct Store {
    dir: PathBuf,
    name: String,
    limits: StoreLimits,
    /// The node filesystem's reserve.
    reserve: u64,
}

/// Where a file of a store is: `config`, or one of the [`TYPES`] and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Config,
    File { tpe: String, id: String },
}

impl Object {
    /// `config`, or `TYPE/ID` (the REST protocol's path after the store).
    pub fn parse(tpe: &str, id: Option<&str>) -> Result<Object> {
        match (tpe, id) {
            ("config", None) => Ok(Object::Config),
            (t, Some(id)) if TYPES.contains(&t) => {
                if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(inval(format!(
                        "{t}/{id}: a name is 64 lower-case hex digits"
                    )));
                }
                Ok(Object::File {
                    tpe: t.into(),
                    id: id.into(),
                })
            }
            (t, _) => Err(NodeError::NotFound(format!(
                "{t}: no such kind of file in a repository"
            ))),
        }
    }
}

/// The kind of a list request, checked.
pub fn list_type(tpe: &str) -> Result<&'static str> {
    TYPES
        .iter()
        .find(|t| **t == tpe)
        .copied()
        .ok_or_else(|| NodeError::NotFound(format!("{tpe}: no such kind of file in a repository")))
}

/// The directory of all stores.
pub fn stores_dir(root: &NodeRoot) -> PathBuf {
    root.backups_dir().join("stores")
}

impl Store {
    /// The store of backup user `name` (it need not exist yet).
    pub fn new(root: &NodeRoot, name: &str, limits: StoreLimits) -> Result<Store> {
        berth_core::validate::validate_name(name).map_err(|m| inval(format!("store name: {m}")))?;
        let total = crate::diskspace::fs_space(root.path())
            .map(|s| s.total)
            .unwrap_or(0);
        let reserve = match root.load_node_config() {
            Ok(c) => crate::diskspace::reserve_of(&c, total),
            Err(_) => berth_core::config::default_disk_reserve(total).0,
        };
        Ok(Store {
            dir: stores_dir(root).join(name),
            name: name.into(),
            limits,
            reserve,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    fn path(&self, o: &Object) -> PathBuf {
        match o {
            Object::Config => self.dir.join("config"),
            Object::File { tpe, id } if tpe == "data" => {
                self.dir.join("data").join(&id[..2]).join(id)
            }
            Object::File { tpe, id } => self.dir.join(tpe).join(id),
        }
    }

    /// Whether it holds a repository (its `config`).
    pub fn initialised(&self) -> bool {
        self.dir.join("config").is_file()
    }

    /// Makes the store's directories (`POST /?create=true`); nothing if they exist.
    pub fn create(&self) -> Result<()> {
        if !self.dir.exists() {
            // A store made afresh (a user of that name removed before): counted again.
            Self::lock_usage(&self.usage()).counted = None;
        }
        let parent = self.dir.parent().unwrap_or(&self.dir);
        fsutil::create_dir_mode(parent, 0o700)?;
        fsutil::create_dir_mode(&self.dir, 0o700)?;
        for t in TYPES {
            fsutil::create_dir_mode(&self.dir.join(t), 0o700)?;
        }
        for i in 0..=255u8 {
            fsutil::create_dir_mode(&self.dir.join("data").join(format!("{i:02x}")), 0o700)?;
        }
        Ok(())
    }

    fn exists_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            Ok(())
        } else {
            Err(NodeError::NotFound(format!(
                "backup store {:?} holds no repository yet",
                self.name
            )))
        }
    }

    /// The files of kind `tpe` with their sizes.
    pub fn list(&self, tpe: &str) -> Result<Vec<(String, u64)>> {
        let tpe = list_type(tpe)?;
        self.exists_dir()?;
        let base = self.dir.join(tpe);
        let mut dirs = vec![base.clone()];
        if tpe == "data" {
            dirs = read_dir_names(&base)?
                .into_iter()
                .filter(|n| n.len() == 2)
                .map(|n| base.join(n))
                .collect();
        }
        let mut out = vec![];
        for d in dirs {
            for n in read_dir_names(&d)? {
                if Object::parse(tpe, Some(&n)).is_err() {
                    continue; // a temporary or foreign file
                }
                let m = std::fs::symlink_metadata(d.join(&n)).map_err(|e| CoreError::io(&d, e))?;
                if m.file_type().is_file() {
                    out.push((n, m.len()));
                }
            }
        }
        Ok(out)
    }

    /// The size of a file (`HEAD`).
    pub fn size(&self, o: &Object) -> Result<u64> {
        let p = self.path(o);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_file() => Ok(m.len()),
            Ok(_) => Err(NodeError::NotFound(self.shown(o))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(NodeError::NotFound(self.shown(o)))
            }
            Err(e) => Err(CoreError::io(&p, e).into()),
        }
    }

    fn shown(&self, o: &Object) -> String {
        match o {
            Object::Config => format!("backup store {:?}: config", self.name),
            Object::File { tpe, id } => format!("backup store {:?}: {tpe}/{id}", self.name),
        }
    }

    /// Opens a file for reading at `offset`, at most `len` bytes of it (`None`: to its
    /// end): the open file, positioned, and how many bytes it gives.
    pub fn open(
        &self,
        o: &Object,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<(std::fs::File, u64)> {
        let p = self.path(o);
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&p)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => NodeError::NotFound(self.shown(o)),
                _ => CoreError::io(&p, e).into(),
            })?;
        let size = f.metadata().map_err(|e| CoreError::io(&p, e))?.len();
        let (off, len) = match range {
            None => (0, size),
            Some((off, _)) if off >= size && size > 0 => {
                return Err(inval(format!(
                    "{}: range starts past its end ({size} bytes)",
                    self.shown(o)
                )))
            }
            Some((off, len)) => (off, len.unwrap_or(u64::MAX).min(size.saturating_sub(off))),
        };
        f.seek(std::io::SeekFrom::Start(off))
            .map_err(|e| CoreError::io(&p, e))?;
        Ok((f, len))
    }

    /// This store's usage, recounted when stale.
    fn usage(&self) -> Arc<Mutex<Usage>> {
        let mut g = USAGE.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert_with(HashMap::new)
            .entry(self.dir.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Usage {
                    bytes: 0,
                    counted: None,
                }))
            })
            .clone()
    }

    fn lock_usage(u: &Mutex<Usage>) -> std::sync::MutexGuard<'_, Usage> {
        u.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, u: &mut Usage) {
        if u.counted.is_none_or(|t| t.elapsed() > RECOUNT) {
            u.bytes = du(&self.dir);
            u.counted = Some(std::time::Instant::now());
        }
    }

    /// Bytes the store holds (in [`charge`]s).
    pub fn used(&self) -> u64 {
        let u = self.usage();
        let mut g = Self::lock_usage(&u);
        self.fresh(&mut g);
        g.bytes
    }

    /// Takes `len` bytes of the quota and of the node's free space (and checks its free
    /// inodes) before a write; the guard gives them back unless the write is kept.
    fn reserve(&self, len: u64) -> Result<Reserved<'_>> {
        let u = self.usage();
        let mut g = Self::lock_usage(&u);
        self.fresh(&mut g);
        let (used, cost) = (g.bytes, charge(len));
        if let Some(q) = self.limits.quota {
            if used.saturating_add(cost) > q {
                return Err(NodeError::TooLarge(format!(
                    "backup store {:?} is full: {used} of its quota of {q} bytes used, {len} more asked",
                    self.name
                )));
            }
        }
        let st = nix::sys::statvfs::statvfs(&self.dir)
            .map_err(|e| CoreError::io(&self.dir, std::io::Error::from(e)))?;
        let free = (st.blocks_available() * st.fragment_size())
            .saturating_sub(INFLIGHT.load(Ordering::Relaxed));
        if free.saturating_sub(cost) < self.reserve {
            return Err(NodeError::TooLarge(format!(
                "the backup node's filesystem is nearly full ({free} bytes free, a reserve of {} kept): {len} bytes refused",
                self.reserve
            )));
        }
        if st.files() > 0 && st.files_available() < MIN_FREE_INODES {
            return Err(NodeError::TooLarge(format!(
                "the backup node's filesystem is nearly out of inodes ({} free): refused",
                st.files_available()
            )));
        }
        g.bytes = used + cost;
        INFLIGHT.fetch_add(cost, Ordering::Relaxed);
        Ok(Reserved {
            store: self,
            usage: u.clone(),
            cost,
            kept: false,
        })
    }

    /// Writes a file of `len` bytes from `body` (`POST`): refused past the quota or the
    /// node's reserve, an id that is not the content's SHA-256, and in an append-only store
    /// a `config` or file that exists with other content. An identical file already there
    /// is kept as it is (a client's retry).
    pub fn write(&self, o: &Object, len: u64, body: &mut dyn Read) -> Result<()> {
        if self.refusal(o, len)? == Refusal::HaveIt {
            return Ok(());
        }
        let dest = self.path(o);
        let mut res = self.reserve(len)?;
        let dir = dest.parent().unwrap_or(&self.dir).to_path_buf();
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), unique()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| CoreError::io(&tmp, e))?;
        let written = (|| -> Result<[u8; 32]> {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            // A body that trickles in holds a thread: a minute, plus a second per 64 KiB.
            let deadline =
                std::time::Instant::now() + std::time::Duration::from_secs(60 + len / 65536);
            loop {
                if std::time::Instant::now() > deadline {
                    return Err(inval(format!(
                        "{}: the upload is too slow ({got} of {len} bytes)",
                        self.shown(o)
                    )));
                }
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(inval(format!(
                            "{}: the upload broke off: {e}",
                            self.shown(o)
                        )))
                    }
                };
                got += n as u64;
                if got > len {
                    return Err(inval(format!(
                        "{}: more than the {len} bytes announced",
                        self.shown(o)
                    )));
                }
                h.update(&buf[..n]);
                f.write_all(&buf[..n]).map_err(|e| CoreError::io(&tmp, e))?;
            }
            if got != len {
                return Err(inval(format!(
                    "{}: {got} bytes came of the {len} announced",
                    self.shown(o)
                )));
            }
            f.sync_all().map_err(|e| CoreError::io(&tmp, e))?;
            Ok(h.finalize().into())
        })();
        let sum = match written {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Object::File { id, .. } = o {
            let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
            if &hex != id {
                let _ = std::fs::remove_file(&tmp);
                return Err(inval(format!(
                    "{}: its content's SHA-256 is {hex}",
                    self.shown(o)
                )));
            }
        }
        // From "is it there?" to the rename under the store's lock: two writers of one name
        // neither both replace nor both count.
        let usage = self.usage();
        let mut g = Self::lock_usage(&usage);
        let old = std::fs::symlink_metadata(&dest).ok().map(|m| m.len());
        let replace = match (o, old) {
            (_, None) => true,
            // Same name, same content (the hash checked): a retry; nothing to change.
            (Object::File { .. }, Some(_)) => false,
            (Object::Config, Some(_)) if self.limits.append_only => {
                let _ = std::fs::remove_file(&tmp);
                return Err(NodeError::Forbidden(format!(
                    "{}: an append-only store's config is written once",
                    self.shown(o)
                )));
            }
            (Object::Config, Some(_)) => true,
        };
        if !replace {
            let _ = std::fs::remove_file(&tmp);
            return Ok(());
        }
        std::fs::rename(&tmp, &dest).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CoreError::io(&dest, e)
        })?;
        res.kept = true;
        if let Some(old) = old {
            g.bytes = g.bytes.saturating_sub(charge(old));
        }
        drop(g);
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CoreError::io(&dir, e))?;
        Ok(())
    }

    /// Whether a write of `len` bytes to `o` would be refused (checked before its body is
    /// read, so that a refused client is told before it sends it), or is not needed: a
    /// content-named file of that length is there already (a client's retry).
    pub fn refusal(&self, o: &Object, len: u64) -> Result<Refusal> {
        self.exists_dir()?;
        let max = if *o == Object::Config {
            MAX_CONFIG
        } else {
            MAX_OBJECT
        };
        if len > max {
            return Err(NodeError::TooLarge(format!(
                "{}: {len} bytes, at most {max} in one file",
                self.shown(o)
            )));
        }
        let existing = std::fs::symlink_metadata(self.path(o))
            .ok()
            .filter(|m| m.file_type().is_file())
            .map(|m| m.len());
        match (o, existing) {
            (Object::File { .. }, Some(n)) if n == len => return Ok(Refusal::HaveIt),
            (Object::Config, Some(_)) if self.limits.append_only => {
                return Err(NodeError::Forbidden(format!(
                    "{}: an append-only store's config is written once",
                    self.shown(o)
                )))
            }
            _ => {}
        }
        drop(self.reserve(len)?);
        Ok(Refusal::Write)
    }

    /// Removes a file (`DELETE`): an append-only store removes only lock files.
    pub fn remove(&self, o: &Object) -> Result<()> {
        let lock = matches!(o, Object::File { tpe, .. } if tpe == "locks");
        if self.limits.append_only && !lock {
            return Err(NodeError::Forbidden(format!(
                "{}: the store is append-only (its administrator forgets and prunes on the backup node)",
                self.shown(o)
            )));
        }
        let p = self.path(o);
        let usage = self.usage();
        let mut g = Self::lock_usage(&usage);
        let size = self.size(o)?;
        std::fs::remove_file(&p).map_err(|e| CoreError::io(&p, e))?;
        g.bytes = g.bytes.saturating_sub(charge(size));
        Ok(())
    }

    /// Puts the store of a removed backup user aside (`stores/.removed-<name>-<time>`, its
    /// data kept for the administrator to delete), so that a new user of that name starts
    /// empty; where it went, if there was one.
    pub fn retire(root: &NodeRoot, name: &str) -> Result<Option<PathBuf>> {
        berth_core::validate::validate_name(name).map_err(|m| inval(format!("store name: {m}")))?;
        let dir = stores_dir(root).join(name);
        if !dir.exists() {
            return Ok(None);
        }
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = stores_dir(root).join(format!(".removed-{name}-{t}"));
        std::fs::rename(&dir, &aside).map_err(|e| CoreError::io(&dir, e))?;
        let mut g = USAGE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = g.as_mut() {
            m.remove(&dir);
        }
        Ok(Some(aside))
    }

    /// Removes the temporary files a killed berthd left (at its start).
    pub fn sweep(root: &NodeRoot) {
        let base = stores_dir(root);
        for s in read_dir_names(&base).unwrap_or_default() {
            let dir = base.join(&s);
            let mut dirs = vec![dir.clone()];
            dirs.extend(TYPES.iter().map(|t| dir.join(t)));
            dirs.extend((0..=255u8).map(|i| dir.join("data").join(format!("{i:02x}"))));
            for d in dirs {
                for n in read_dir_names(&d).unwrap_or_default() {
                    if n.starts_with(".tmp-") {
                        let _ = std::fs::remove_file(d.join(n));
                    }
                }
            }
        }
    }
}

/// What [`Store::refusal`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Send the body.
    Write,
    /// The file is there already: answer at once.
    HaveIt,
}

/// Quota taken for a write, given back on drop unless the write was kept; its bytes in
/// flight given back either way.
struct Reserved<'a> {
    #[allow(dead_code)]
    store: &'a Store,
    usage: Arc<Mutex<Usage>>,
    cost: u64,
    kept: bool,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        INFLIGHT.fetch_sub(self.cost, Ordering::Relaxed);
        if !self.kept {
            let mut g = Store::lock_usage(&self.usage);
            g.bytes = g.bytes.saturating_sub(self.cost);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn read_dir_names(d: &Path) -> Result<Vec<String>> {
    match std::fs::read_dir(d) {
        Ok(rd) => Ok(rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(CoreError::io(d, e).into()),
    }
}

/// Bytes of the regular files under `d` (not following links).
fn du(d: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += charge(m.len()),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(limits: StoreLimits) -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let root = NodeRoot::new(d.path());
        let s = Store::new(&root, "nodea", limits).unwrap();
        s.create().unwrap();
        (d, s)
    }

    fn id_of(b: &[u8]) -> String {
        Sha256::digest(b)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn obj(tpe: &str, b: &[u8]) -> Object {
        Object::parse(tpe, Some(&id_of(b))).unwrap()
    }

    #[test]
    fn names_are_restics_only() {
        assert!(Object::parse("config", None).is_ok());
        assert!(Object::parse("data", Some("../../etc/passwd")).is_err());
        assert!(Object::parse("data", Some(&"A".repeat(64))).is_err());
        assert!(Object::parse("tmp", Some(&"a".repeat(64))).is_err());
        assert!(Object::parse("config", Some(&"a".repeat(64))).is_err());
        assert!(list_type("../x").is_err());
    }

    #[test]
    fn writes_are_checked_counted_and_listed() {
        let (_d, s) = store(StoreLimits {
            append_only: false,
            quota: Some(4096 + 100),
        });
        let b = b"hello pack";
        s.write(&obj("data", b), b.len() as u64, &mut &b[..])
            .unwrap();
        assert_eq!(s.list("data").unwrap(), vec![(id_of(b), b.len() as u64)]);
        // Charged in whole 4 KiB blocks.
        assert_eq!(s.used(), 4096);
        // A retry of a file that is there is answered without its body.
        assert_eq!(
            s.refusal(&obj("data", b), b.len() as u64).unwrap(),
            Refusal::HaveIt
        );
        // A name that is not the content's hash, a short body, a long one: nothing kept.
        let other = Object::parse("data", Some(&id_of(b"x"))).unwrap();
        assert!(s.write(&other, 10, &mut &b[..]).is_err());
        assert!(s.write(&obj("index", b"abc"), 5, &mut &b"abc"[..]).is_err());
        assert!(s.write(&obj("index", b"abc"), 2, &mut &b"abc"[..]).is_err());
        assert!(s.list("index").unwrap().is_empty());
        assert_eq!(s.used(), 4096);
        // The quota.
        let big = vec![7u8; 95];
        let e = s.write(&obj("data", &big), 95, &mut &big[..]).unwrap_err();
        assert!(e.to_string().contains("quota"), "{e}");
        assert_eq!(s.used(), 4096);
        // A config is small.
        let e = s
            .write(&Object::Config, 1 << 20, &mut std::io::empty())
            .unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        // Reads by range.
        let (f, n) = s.open(&obj("data", b), Some((6, Some(100)))).unwrap();
        let mut got = String::new();
        f.take(n).read_to_string(&mut got).unwrap();
        assert_eq!(got, "pack");
        s.remove(&obj("data", b)).unwrap();
        assert_eq!(s.used(), 0);
        // No temporary file stays.
        assert_eq!(du(&s.dir), 0);
    }

    /// Racing writers of an append-only store's config: one wins, the other is refused,
    /// and the count is the one file's.
    #[test]
    fn racing_config_writers_of_an_append_only_store() {
        for _ in 0..20 {
            let (_d, s) = store(StoreLimits {
                append_only: true,
                quota: None,
            });
            let s = std::sync::Arc::new(s);
            let hs: Vec<_> = [b"first".to_vec(), b"other!".to_vec()]
                .into_iter()
                .map(|c| {
                    let s = s.clone();
                    std::thread::spawn(move || {
                        s.write(&Object::Config, c.len() as u64, &mut &c[..])
                            .is_ok()
                    })
                })
                .collect();
            let won: Vec<bool> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
            let got = std::fs::read(s.dir.join("config")).unwrap();
            assert!(got == b"first" || got == b"other!");
            assert_eq!(s.used(), 4096);
        }
    }

    #[test]
    fn append_only_keeps_what_it_has() {
        let (_d, s) = store(StoreLimits {
            append_only: true,
            quota: None,
        });
        s.write(&Object::Config, 3, &mut &b"cfg"[..]).unwrap();
        assert!(s.write(&Object::Config, 3, &mut &b"new"[..]).is_err());
        let b = b"snapshot";
        s.write(&obj("snapshots", b), 8, &mut &b[..]).unwrap();
        // A retry of the same file is fine; deleting it is not; locks come and go.
        s.write(&obj("snapshots", b), 8, &mut &b[..]).unwrap();
        let e = s.remove(&obj("snapshots", b)).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        let l = b"lock";
        s.write(&obj("locks", l), 4, &mut &l[..]).unwrap();
        s.remove(&obj("locks", l)).unwrap();
        assert_eq!(s.list("snapshots").unwrap().len(), 1);
    }
}
