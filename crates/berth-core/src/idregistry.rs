//! The host-wide registry of container ID ranges (ADR 0009).
//!
//! Every node root on a machine allocates its containers' user-namespace ID ranges from one
//! file, `/var/lib/berth-idmap/ranges`, so that two node roots never give two containers the
//! same host UIDs. The directory is root's alone (0700), the file 0600; every reader and
//! writer holds `flock(ranges.lock)`; the file is replaced atomically (temp, fsync, rename).
//! One line per range:
//!
//! ```text
//! HOST_BASE SIZE NODE_ID CTID NODE_ROOT
//! 165536 65536 3f2a9c01 101 /var/lib/berth
//! ```
//!
//! The file is validated like input: a malformed line is an error naming the file and the
//! line, never a range silently given out again. Ranges that `/etc/subuid` or `/etc/subgid`
//! give to any user (root included: that is where LXD and Incus take their containers' IDs)
//! are never allocated. An entry whose node root no longer holds a `node.toml` with its
//! `node_id`, or whose container directory is gone, is stale and is reclaimed.

use crate::config::IdMap;
use crate::idmap::allocate_idmap;
use crate::lock::{self, LockGuard};
use crate::validate::CtId;
use crate::{fsutil, CoreError, Result};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the host-wide registry lives. No override: the registry is only useful if every
/// node root on the machine uses the same one.
pub const HOST_REGISTRY_DIR: &str = "/var/lib/berth-idmap";
/// The files whose subordinate ID ranges Berth never hands out.
pub const SUBID_FILES: [&str; 2] = ["/etc/subuid", "/etc/subgid"];
/// Host IDs below this are the host's own users (system accounts, login users, `nobody`):
/// no container range may include them.
pub const MIN_HOST_BASE: u32 = 65536;

/// Who holds a range: one container of one node root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node_id: String,
    pub ctid: CtId,
    /// The node root's canonical (absolute, symlink-free) path.
    pub root: PathBuf,
}

impl Owner {
    fn describe(&self) -> String {
        format!(
            "container {} of node root {}",
            self.ctid,
            self.root.display()
        )
    }
}

/// One line of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub range: IdMap,
    pub owner: Owner,
}

/// A range `/etc/subuid` or `/etc/subgid` gives to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub file: PathBuf,
    pub line: usize,
    pub user: String,
    pub range: IdMap,
}

fn show(r: &IdMap) -> String {
    format!("{}-{}", r.host_base, r.host_base as u64 + r.size as u64 - 1)
}

/// Checks a range as a container's: not empty, above the host's own users, and not reaching
/// ID 4294967295 (`(uid_t)-1`, which the kernel reserves).
pub fn validate_range(r: &IdMap) -> std::result::Result<(), String> {
    if r.size == 0 {
        return Err("an ID range of size 0".into());
    }
    if r.host_base < MIN_HOST_BASE {
        return Err(format!(
            "host base {} is below {MIN_HOST_BASE}: it would share host IDs with the host's own users",
            r.host_base
        ));
    }
    if r.host_base as u64 + r.size as u64 > u32::MAX as u64 {
        return Err(format!(
            "host IDs {}+{} run past 4294967294",
            r.host_base, r.size
        ));
    }
    Ok(())
}

/// A node ID as `berth node init` makes them: 1 to 64 ASCII letters and digits.
fn valid_node_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A node root path the registry can hold on one line.
fn valid_root(p: &str) -> bool {
    p.starts_with('/') && !p.chars().any(char::is_control)
}

/// Splits off the next field separated by spaces or tabs.
fn field(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return None;
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Parses and validates the registry's text; `file` names it in errors.
pub fn parse(file: &Path, text: &str) -> Result<Vec<Entry>> {
    let mut out: Vec<(usize, Entry)> = vec![];
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let bad = |msg: String| {
            CoreError::Parse {
            path: file.into(),
            msg: format!(
                "line {n}: {msg} (a line is `HOST_BASE SIZE NODE_ID CTID NODE_ROOT`; fix or remove it, see docs/adr/0009-host-wide-id-registry.md)"
            ),
        }
        };
        let mut rest = line;
        let mut f = [""; 4];
        for (k, name) in ["HOST_BASE", "SIZE", "NODE_ID", "CTID"].iter().enumerate() {
            let (v, r) = field(rest).ok_or_else(|| bad(format!("{name} is missing")))?;
            f[k] = v;
            rest = r;
        }
        let base = parse_u32(f[0]).ok_or_else(|| bad(format!("bad HOST_BASE {:?}", f[0])))?;
        let size = parse_u32(f[1]).ok_or_else(|| bad(format!("bad SIZE {:?}", f[1])))?;
        let range = IdMap {
            host_base: base,
            size,
        };
        validate_range(&range).map_err(bad)?;
        if !valid_node_id(f[2]) {
            return Err(bad(format!("bad NODE_ID {:?}", f[2])));
        }
        let ctid = CtId::parse(f[3]).map_err(|_| bad(format!("bad CTID {:?}", f[3])))?;
        let root = rest.trim_start_matches([' ', '\t']);
        if root.is_empty() {
            return Err(bad("NODE_ROOT is missing".into()));
        }
        if !valid_root(root) {
            return Err(bad(format!("bad NODE_ROOT {root:?}: not an absolute path")));
        }
        let owner = Owner {
            node_id: f[2].into(),
            ctid,
            root: root.into(),
        };
        if let Some((m, _)) = out.iter().find(|(_, e)| e.owner == owner) {
            return Err(bad(format!("{} is already on line {m}", owner.describe())));
        }
        out.push((n, Entry { range, owner }));
    }
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

/// The registry's text for `entries`.
pub fn render(entries: &[Entry]) -> String {
    let mut s = String::from(
        "# Berth's host-wide registry of container ID ranges (docs/adr/0009-host-wide-id-registry.md).\n\
         # Written by berth under ranges.lock. One line per range: HOST_BASE SIZE NODE_ID CTID NODE_ROOT\n",
    );
    for e in entries {
        s.push_str(&format!(
            "{} {} {} {} {}\n",
            e.range.host_base,
            e.range.size,
            e.owner.node_id,
            e.owner.ctid,
            e.owner.root.display()
        ));
    }
    s
}

/// The ranges of a subuid/subgid file (`user:start:count`). Lines that do not parse are
/// skipped, as `newuidmap` skips them: they grant nobody anything.
pub fn parse_subids(file: &Path, text: &str) -> Vec<Reserved> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut it = t.split(':');
        let (Some(user), Some(start), Some(count), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let (Ok(start), Ok(count)) = (start.parse::<u32>(), count.parse::<u32>()) else {
            continue;
        };
        if count == 0 {
            continue;
        }
        out.push(Reserved {
            file: file.into(),
            line: i + 1,
            user: user.into(),
            range: IdMap {
                host_base: start,
                size: count,
            },
        });
    }
    out
}

fn gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Whether an entry's node root and container still exist: `<root>/node.toml` names its
/// `node_id` and `<root>/containers/<ctid>` exists. Anything unclear (an unreadable or
/// unparsable `node.toml`) counts as live: a range wrongly kept costs nothing, one wrongly
/// reclaimed could be given to a second container.
pub fn entry_is_live(e: &Entry) -> bool {
    if !node_root_is_live(&e.owner.root, &e.owner.node_id) {
        return false;
    }
    match fs::symlink_metadata(
        e.owner
            .root
            .join("containers")
            .join(e.owner.ctid.to_string()),
    ) {
        Ok(_) => true,
        Err(err) => !gone(&err),
    }
}

/// Whether `root` still holds the node root `node_id`: a directory as Berth makes them with
/// a `node.toml` naming `node_id`. Anything unclear counts as live.
pub fn node_root_is_live(root: &Path, node_id: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Id {
        node_id: String,
    }
    // Checked under the host-wide lock, on paths other users may have made since the root
    // went away (`rm -rf` of a root in /tmp): what is not a directory and a file as Berth
    // makes them (root's, nobody else may write them, no symlink, no FIFO) is not a node
    // root, and is read without blocking and within a bound.
    match fs::symlink_metadata(root) {
        Ok(m) if !(m.is_dir() && berth_owned(&m)) => return false,
        Ok(_) => {}
        Err(err) if gone(&err) => return false,
        Err(_) => return true,
    }
    match read_node_toml(&root.join("node.toml")) {
        Ok(Some(t)) => !matches!(toml::from_str::<Id>(&t), Ok(id) if id.node_id != node_id),
        Ok(None) => false,
        Err(err) if gone(&err) => false,
        Err(_) => true,
    }
}

/// Owned by root (or by whoever runs this, for tests without root) and writable by nobody
/// else.
fn berth_owned(m: &fs::Metadata) -> bool {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    (m.uid() == 0 || m.uid() == me) && m.mode() & 0o022 == 0
}

/// Largest `node.toml` read (Berth's are a few hundred bytes).
const NODE_TOML_MAX: u64 = 64 << 10;

/// Reads a node root's `node.toml` if it is one Berth could have written: `None` for a
/// symlink, FIFO, device or foreign file.
fn read_node_toml(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if !m.is_file() || !berth_owned(&m) {
        return Ok(None);
    }
    let mut t = String::new();
    f.take(NODE_TOML_MAX).read_to_string(&mut t)?;
    Ok(Some(t))
}

/// A registry: its directory and the subordinate-ID files it respects.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
    subid_files: Vec<PathBuf>,
}

impl Registry {
    /// The host's registry, `/var/lib/berth-idmap`, respecting `/etc/subuid` and `/etc/subgid`.
    pub fn host() -> Registry {
        Registry::at(
            HOST_REGISTRY_DIR,
            SUBID_FILES.iter().map(PathBuf::from).collect(),
        )
    }

    /// A registry in another directory (unit tests).
    pub fn at(dir: impl Into<PathBuf>, subid_files: Vec<PathBuf>) -> Registry {
        Registry {
            dir: dir.into(),
            subid_files,
        }
    }

    pub fn ranges_file(&self) -> PathBuf {
        self.dir.join("ranges")
    }

    fn lock_file(&self) -> PathBuf {
        self.dir.join("ranges.lock")
    }

    /// Checks that the registry's directory is private to us (created 0700 if absent).
    fn check_dir(&self, create: bool) -> Result<bool> {
        let dir = &self.dir;
        let meta = match fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                match fs::DirBuilder::new().mode(0o700).create(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(CoreError::io(dir, e)),
                }
                fs::symlink_metadata(dir).map_err(|e| CoreError::io(dir, e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(CoreError::io(dir, e)),
        };
        let euid = nix::unistd::geteuid().as_raw();
        if !meta.file_type().is_dir() || meta.uid() != euid || meta.mode() & 0o077 != 0 {
            return Err(CoreError::IdRegistry(format!(
                "{}: the host-wide ID registry must be a directory owned by uid {euid} with mode 0700 (found uid {}, mode {:o}{}): check its content, then fix it with `chown {euid} {0} && chmod 0700 {0}`",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777,
                if meta.file_type().is_symlink() { ", a symlink" } else { "" }
            )));
        }
        Ok(true)
    }

    /// `nodes`: the node roots of the host, one line `NODE_ID NODE_ROOT` each, kept under
    /// the registry's lock (`node init` records, `node destroy` forgets). It tells the
    /// remains of a node root that is gone (`rm -rf`) from those of one that exists.
    pub fn nodes_file(&self) -> PathBuf {
        self.dir.join("nodes")
    }

    /// The recorded node roots (read without the lock: the file is replaced atomically).
    pub fn node_roots(&self) -> Vec<(String, PathBuf)> {
        let text = fs::read_to_string(self.nodes_file()).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (id, root) = l.split_once(' ')?;
                (valid_node_id(id) && root.starts_with('/'))
                    .then(|| (id.to_string(), PathBuf::from(root)))
            })
            .collect()
    }

    /// Records (`Some(root)`) or forgets (`None`) node root `node_id`, under the lock.
    pub fn set_node_root(&self, node_id: &str, root: Option<&Path>) -> Result<()> {
        self.update_node_roots(&[node_id.to_string()], root.map(|r| (node_id, r)))
    }

    /// Forgets the node roots `ids` (gone, and nothing of them left on the host).
    pub fn forget_node_roots(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.update_node_roots(ids, None)
    }

    fn update_node_roots(&self, drop: &[String], add: Option<(&str, &Path)>) -> Result<()> {
        let _s = self.open()?;
        let mut v: Vec<(String, PathBuf)> = self
            .node_roots()
            .into_iter()
            .filter(|(id, _)| !drop.contains(id))
            .collect();
        let root = add.map(|(_, r)| r);
        let node_id = add.map(|(id, _)| id).unwrap_or_default();
        if let Some(r) = root {
            if r.to_string_lossy().contains('\n') {
                return Err(CoreError::Invalid(format!(
                    "node root {}: a path with a newline",
                    r.display()
                )));
            }
            v.push((node_id.to_string(), r.to_path_buf()));
        }
        let text: String = v
            .iter()
            .map(|(id, r)| format!("{id} {}\n", r.display()))
            .collect();
        fsutil::atomic_write(&self.nodes_file(), text.as_bytes(), 0o600)
    }

    /// Locks the registry and reads it (creating its directory on first use).
    pub fn open(&self) -> Result<Session<'_>> {
        self.check_dir(true)?;
        self.open_in()
    }

    /// Like [`open`](Self::open), but `None` when the registry does not exist yet.
    pub fn open_existing(&self) -> Result<Option<Session<'_>>> {
        if !self.check_dir(false)? {
            return Ok(None);
        }
        self.open_in().map(Some)
    }

    fn open_in(&self) -> Result<Session<'_>> {
        let lp = self.lock_file();
        // Made 0600 here: lock::lock would create it with the umask's mode.
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lp)
            .map_err(|e| CoreError::io(&lp, e))?;
        let guard = lock::lock(&lp)?;
        let file = self.ranges_file();
        let entries = match fs::symlink_metadata(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(CoreError::io(&file, e)),
            Ok(m) => {
                let euid = nix::unistd::geteuid().as_raw();
                if !m.file_type().is_file() || m.uid() != euid || m.mode() & 0o077 != 0 {
                    return Err(CoreError::IdRegistry(format!(
                        "{}: the host-wide ID registry must be a regular file owned by uid {euid} with mode 0600 (found uid {}, mode {:o}): check its content, then fix it with `chown {euid} {0} && chmod 0600 {0}`",
                        file.display(),
                        m.uid(),
                        m.mode() & 0o7777
                    )));
                }
                let text = fs::read_to_string(&file).map_err(|e| CoreError::io(&file, e))?;
                parse(&file, &text)?
            }
        };
        let mut reserved = vec![];
        for f in &self.subid_files {
            match fs::read_to_string(f) {
                Ok(t) => reserved.extend(parse_subids(f, &t)),
                Err(e) if gone(&e) => {}
                Err(e) => return Err(CoreError::io(f, e)),
            }
        }
        Ok(Session {
            reg: self,
            _lock: guard,
            entries,
            reserved,
            dirty: false,
        })
    }
}

/// The registry, locked and read. Changes are written by [`commit`](Session::commit); a
/// session dropped without it changes nothing.
pub struct Session<'a> {
    reg: &'a Registry,
    _lock: LockGuard,
    entries: Vec<Entry>,
    reserved: Vec<Reserved>,
    dirty: bool,
}

impl Session<'_> {
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn reserved(&self) -> &[Reserved] {
        &self.reserved
    }

    /// The registered range of `owner`, if any.
    pub fn range_of(&self, owner: &Owner) -> Option<IdMap> {
        self.entries
            .iter()
            .find(|e| e.owner == *owner)
            .map(|e| e.range)
    }

    /// Drops the entries whose node root or container is gone; returns them.
    pub fn reclaim_stale(&mut self) -> Vec<Entry> {
        let (live, stale): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(entry_is_live);
        self.entries = live;
        if !stale.is_empty() {
            self.dirty = true;
        }
        stale
    }

    /// Makes sure `range` is registered to `owner` and overlaps no range of another live
    /// container nor a subordinate range of `/etc/subuid` or `/etc/subgid`. Registers it if
    /// it is not (a container made before the registry existed, or whose entry was
    /// reclaimed while its node root was away) and drops stale entries in its way.
    pub fn check(&mut self, owner: &Owner, range: IdMap) -> Result<()> {
        validate_range(&range).map_err(|m| {
            CoreError::IdRangeTaken(
                owner.ctid.0,
                format!("{} has an invalid ID range: {m}", owner.describe()),
            )
        })?;
        if let Some(r) = self.reserved.iter().find(|r| r.range.overlaps(&range)) {
            return Err(CoreError::IdRangeTaken(
                owner.ctid.0,
                format!(
                    "{} has host IDs {}, which overlap {} that {} line {} gives to user {:?}",
                    owner.describe(),
                    show(&range),
                    show(&r.range),
                    r.file.display(),
                    r.line,
                    r.user,
                ),
            ));
        }
        let mut stale = vec![];
        for (i, e) in self.entries.iter().enumerate() {
            if e.owner == *owner || !e.range.overlaps(&range) {
                continue;
            }
            if !entry_is_live(e) {
                stale.push(i);
                continue;
            }
            return Err(CoreError::IdRangeTaken(
                owner.ctid.0,
                format!(
                    "{} has host IDs {}, which overlap host IDs {} of {} (node {}) in the host-wide ID registry {}",
                    owner.describe(),
                    show(&range),
                    show(&e.range),
                    e.owner.describe(),
                    e.owner.node_id,
                    self.reg.ranges_file().display(),
                ),
            ));
        }
        for i in stale.into_iter().rev() {
            self.entries.remove(i);
            self.dirty = true;
        }
        if self.range_of(owner) != Some(range) {
            self.set(owner, range);
        }
        Ok(())
    }

    fn set(&mut self, owner: &Owner, range: IdMap) {
        self.entries.retain(|e| e.owner != *owner);
        self.entries.push(Entry {
            range,
            owner: owner.clone(),
        });
        self.entries.sort_by_key(|e| e.range.host_base);
        self.dirty = true;
    }

    /// Reclaims stale entries, then registers to `owner` the lowest free range at or above
    /// `start` that overlaps no registered range (but `owner`'s own, which it replaces), no
    /// subordinate range and none of `also_used`.
    pub fn allocate(&mut self, owner: &Owner, start: u32, also_used: &[IdMap]) -> Result<IdMap> {
        self.reclaim_stale();
        let used: Vec<IdMap> = self
            .entries
            .iter()
            .filter(|e| e.owner != *owner)
            .map(|e| e.range)
            .chain(self.reserved.iter().map(|r| r.range))
            .chain(also_used.iter().copied())
            .collect();
        let range = allocate_idmap(start.max(MIN_HOST_BASE), &used)?;
        self.set(owner, range);
        Ok(range)
    }

    /// Frees `owner`'s range; true if it had one.
    pub fn free(&mut self, owner: &Owner) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.owner != *owner);
        let freed = self.entries.len() != before;
        self.dirty |= freed;
        freed
    }

    /// Frees every range of node `node_id` (whose node root is gone: `node reclaim`);
    /// returns how many.
    pub fn free_node(&mut self, node_id: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| e.owner.node_id != node_id);
        let freed = before - self.entries.len();
        self.dirty |= freed > 0;
        freed
    }

    /// Writes the changes (atomically, durably); nothing if there are none.
    pub fn commit(self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        fsutil::atomic_write(
            &self.reg.ranges_file(),
            render(&self.entries).as_bytes(),
            0o600,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IDMAP_SIZE;

    fn owner(root: &Path, node: &str, ct: u32) -> Owner {
        Owner {
            node_id: node.into(),
            ctid: CtId(ct),
            root: root.into(),
        }
    }

    fn map(base: u32) -> IdMap {
        IdMap {
            host_base: base,
            size: IDMAP_SIZE,
        }
    }

    /// A node root with `node.toml` naming `node` and container directories `cts`.
    fn node_root(dir: &Path, node: &str, cts: &[u32]) -> PathBuf {
        let root = dir.join(format!("root-{node}"));
        fs::create_dir_all(root.join("containers")).unwrap();
        fs::write(
            root.join("node.toml"),
            format!("node_id = \"{node}\"\nversion = 1\ncreated = 0\n"),
        )
        .unwrap();
        for c in cts {
            fs::create_dir_all(root.join(format!("containers/{c}"))).unwrap();
        }
        root
    }

    fn registry(dir: &Path) -> Registry {
        let reg = dir.join("reg");
        Registry::at(&reg, vec![dir.join("subuid"), dir.join("subgid")])
    }

    #[test]
    fn parse_render_roundtrip() {
        let text = "# comment\n\n165536 65536 3f2a9c01 101 /var/lib/berth\n231072 65536 ab12 7 /mnt/My Disk/berth\n";
        let e = parse(Path::new("/r"), text).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].range, map(165536));
        assert_eq!(
            e[0].owner,
            owner(Path::new("/var/lib/berth"), "3f2a9c01", 101)
        );
        assert_eq!(e[1].owner.root, PathBuf::from("/mnt/My Disk/berth"));
        assert_eq!(parse(Path::new("/r"), &render(&e)).unwrap(), e);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for (text, needle) in [
            ("165536 65536 ab 101\n", "NODE_ROOT is missing"),
            ("165536 x ab 101 /r\n", "bad SIZE"),
            ("-1 65536 ab 101 /r\n", "bad HOST_BASE"),
            ("0165536 65536 ab 101 /r\n", "bad HOST_BASE"),
            ("165536 65536 a/b 101 /r\n", "bad NODE_ID"),
            ("165536 65536 ab 0 /r\n", "bad CTID"),
            ("165536 65536 ab 101 rel/path\n", "not an absolute path"),
            ("165536 0 ab 101 /r\n", "size 0"),
            ("1000 65536 ab 101 /r\n", "below 65536"),
            ("4294901760 65536 ab 101 /r\n", "run past"),
            ("99999999999 65536 ab 101 /r\n", "bad HOST_BASE"),
            (
                "165536 65536 ab 101 /r\n231072 65536 ab 101 /r\n",
                "already on line 2",
            ),
        ] {
            let good = "# header\n";
            let err = parse(
                Path::new("/var/lib/berth-idmap/ranges"),
                &format!("{good}{text}"),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.starts_with("/var/lib/berth-idmap/ranges: malformed file: line "),
                "{err}"
            );
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        // the same container of another node root (a copied root) is another owner
        assert_eq!(
            parse(
                Path::new("/r"),
                "165536 65536 ab 101 /a\n231072 65536 ab 101 /b\n"
            )
            .unwrap()
            .len(),
            2
        );
    }

    #[test]
    fn subids_are_parsed_leniently() {
        let r = parse_subids(
            Path::new("/etc/subuid"),
            "alice:100000:65536\nbroken line\nroot:1000000:1000000000\nbob:x:1\nzero:5:0\n",
        );
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].user.as_str(), r[0].line), ("alice", 1));
        assert_eq!(r[1].range.host_base, 1_000_000);
    }

    #[test]
    fn allocate_fills_gaps_and_skips_subids() {
        let d = tempfile::tempdir().unwrap();
        let a = node_root(d.path(), "aa", &[1, 2, 3, 4]);
        let b = node_root(d.path(), "bb", &[1, 2]);
        // a login user's range right where Berth starts (Debian's second user)
        fs::write(d.path().join("subgid"), "carol:165536:65536\n").unwrap();
        let reg = registry(d.path());
        let mut s = reg.open().unwrap();
        let r1 = s.allocate(&owner(&a, "aa", 1), 165536, &[]).unwrap();
        assert_eq!(r1, map(165536 + 65536));
        let r2 = s.allocate(&owner(&b, "bb", 1), 165536, &[]).unwrap();
        assert_eq!(r2, map(165536 + 2 * 65536));
        let r3 = s.allocate(&owner(&a, "aa", 2), 165536, &[]).unwrap();
        assert_eq!(r3, map(165536 + 3 * 65536));
        s.commit().unwrap();
        // the file is private and holds three lines
        let f = reg.ranges_file();
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(d.path().join("reg")).unwrap().mode() & 0o777,
            0o700
        );
        // a freed range in the middle is reused, by another node root
        let mut s = reg.open().unwrap();
        assert_eq!(s.entries().len(), 3);
        assert!(s.free(&owner(&b, "bb", 1)));
        assert!(!s.free(&owner(&b, "bb", 1)));
        assert_eq!(s.allocate(&owner(&b, "bb", 2), 165536, &[]).unwrap(), r2);
        // also_used (ranges the node's own configs hold) is skipped
        let r4 = s.allocate(&owner(&a, "aa", 3), 165536, &[map(165536 + 4 * 65536)]);
        assert_eq!(r4.unwrap(), map(165536 + 5 * 65536));
        // allocating again for the same owner replaces its range
        let before = s.entries().len();
        s.allocate(&owner(&a, "aa", 3), 165536, &[]).unwrap();
        assert_eq!(s.entries().len(), before);
        // all ranges disjoint
        let e = s.entries().to_vec();
        for (i, x) in e.iter().enumerate() {
            for y in &e[i + 1..] {
                assert!(!x.range.overlaps(&y.range), "{x:?} {y:?}");
            }
        }
        // never below the host's own users, whatever the node's start
        let r = s.allocate(&owner(&a, "aa", 4), 0, &[]).unwrap();
        assert!(r.host_base >= MIN_HOST_BASE);
        drop(s); // not committed: nothing written
        assert_eq!(reg.open().unwrap().entries().len(), 3);
    }

    #[test]
    fn stale_entries_are_reclaimed() {
        let d = tempfile::tempdir().unwrap();
        let a = node_root(d.path(), "aa", &[1, 2]);
        let b = node_root(d.path(), "bb", &[1]);
        let c = node_root(d.path(), "cc", &[1]);
        let reg = registry(d.path());
        let mut s = reg.open().unwrap();
        for o in [
            owner(&a, "aa", 1),
            owner(&a, "aa", 2),
            owner(&b, "bb", 1),
            owner(&c, "cc", 1),
        ] {
            s.allocate(&o, 165536, &[]).unwrap();
        }
        s.commit().unwrap();
        // b's root is rm -rf'd; c's root is re-initialised (another node_id); a's CT 2 is gone
        fs::remove_dir_all(&b).unwrap();
        fs::write(c.join("node.toml"), "node_id = \"dd\"\n").unwrap();
        fs::remove_dir_all(a.join("containers/2")).unwrap();
        let mut s = reg.open().unwrap();
        let stale = s.reclaim_stale();
        let names: Vec<String> = stale
            .iter()
            .map(|e| format!("{}/{}", e.owner.node_id, e.owner.ctid))
            .collect();
        assert_eq!(names, ["aa/2", "bb/1", "cc/1"]);
        assert_eq!(s.entries().len(), 1);
        // an unreadable node.toml counts as live (kept)
        let e = node_root(d.path(), "ee", &[1]);
        fs::write(e.join("node.toml"), "garbage = [").unwrap();
        assert!(entry_is_live(&Entry {
            range: map(65536 * 100),
            owner: owner(&e, "ee", 1)
        }));
        s.commit().unwrap();
        // the lowest range is handed out again
        let mut s = reg.open().unwrap();
        assert_eq!(
            s.allocate(&owner(&a, "aa", 3), 165536, &[]).unwrap(),
            map(165536 + 65536)
        );
    }

    #[test]
    fn collisions_are_detected() {
        let d = tempfile::tempdir().unwrap();
        let a = node_root(d.path(), "aa", &[101]);
        let b = node_root(d.path(), "bb", &[101, 102]);
        let reg = registry(d.path());
        let mut s = reg.open().unwrap();
        let ra = s.allocate(&owner(&a, "aa", 101), 165536, &[]).unwrap();
        s.commit().unwrap();
        let mut s = reg.open().unwrap();
        // an old container of b (not registered) claims a's range: refused, naming both
        let err = s.check(&owner(&b, "bb", 101), ra).unwrap_err().to_string();
        assert!(
            err.contains(&format!("container 101 of node root {}", b.display())),
            "{err}"
        );
        assert!(
            err.contains(&format!("container 101 of node root {}", a.display())),
            "{err}"
        );
        assert!(err.contains("165536-231071"), "{err}");
        let api = s.check(&owner(&b, "bb", 101), ra).unwrap_err().to_api();
        assert_eq!(
            api.cause,
            Some(Box::new(berth_api::Cause::IdRangeTaken { ctid: 101 })),
            "{err}"
        );
        // a partial overlap too
        let half = IdMap {
            host_base: 165536 + 32768,
            size: IDMAP_SIZE,
        };
        assert!(s.check(&owner(&b, "bb", 102), half).is_err());
        // a free range is registered (migration), once
        let free = map(165536 + 65536);
        s.check(&owner(&b, "bb", 102), free).unwrap();
        s.check(&owner(&b, "bb", 102), free).unwrap();
        assert_eq!(s.entries().len(), 2);
        // its own registered range is fine; a copy of a's root (same node_id, other path) is not
        s.check(&owner(&a, "aa", 101), ra).unwrap();
        let copy = node_root(&d.path().join("copy"), "aa", &[101]);
        assert!(s.check(&owner(&copy, "aa", 101), ra).is_err());
        // a stale entry in the way is dropped, not a collision
        fs::remove_dir_all(&a).unwrap();
        s.check(&owner(&b, "bb", 101), ra).unwrap();
        assert_eq!(s.range_of(&owner(&a, "aa", 101)), None);
        // a changed range replaces the container's entry
        let other = map(165536 + 10 * 65536);
        s.check(&owner(&b, "bb", 101), other).unwrap();
        assert_eq!(s.range_of(&owner(&b, "bb", 101)), Some(other));
        // ranges below the host's users are refused
        let low = IdMap {
            host_base: 1000,
            size: 10,
        };
        assert!(s
            .check(&owner(&b, "bb", 101), low)
            .unwrap_err()
            .to_string()
            .contains("below 65536"));
    }

    #[test]
    fn subid_ranges_are_refused_at_check() {
        let d = tempfile::tempdir().unwrap();
        let a = node_root(d.path(), "aa", &[101]);
        fs::write(d.path().join("subuid"), "\nbob:200000:65536\n").unwrap();
        let reg = registry(d.path());
        let mut s = reg.open().unwrap();
        let err = s
            .check(&owner(&a, "aa", 101), map(165536 + 65536))
            .unwrap_err();
        let err = err.to_string();
        assert!(err.contains("line 2 gives to user \"bob\""), "{err}");
        assert!(err.contains("subuid"), "{err}");
    }

    #[test]
    fn malformed_registry_is_refused_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let reg = registry(d.path());
        drop(reg.open().unwrap());
        let f = reg.ranges_file();
        fsutil::atomic_write(&f, b"165536 65536 aa 101 /x\nnonsense\n", 0o600).unwrap();
        let err = reg.open().err().unwrap().to_string();
        assert!(err.contains("ranges: malformed file: line 2"), "{err}");
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "165536 65536 aa 101 /x\nnonsense\n"
        );
        // a registry others may write is refused
        fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        assert!(reg.open().err().unwrap().to_string().contains("mode 0600"));
        fs::set_permissions(
            d.path().join("reg"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        assert!(reg.open().err().unwrap().to_string().contains("mode 0700"));
    }

    #[test]
    fn open_existing_creates_nothing() {
        let d = tempfile::tempdir().unwrap();
        let reg = registry(d.path());
        assert!(reg.open_existing().unwrap().is_none());
        assert!(!d.path().join("reg").exists());
    }

    #[test]
    fn concurrent_allocations_stay_disjoint() {
        let d = tempfile::tempdir().unwrap();
        let cts: Vec<u32> = (1..=16).collect();
        let a = node_root(d.path(), "aa", &cts);
        let reg = registry(d.path());
        std::thread::scope(|sc| {
            for c in &cts {
                let (reg, a) = (reg.clone(), a.clone());
                sc.spawn(move || {
                    let mut s = reg.open().unwrap();
                    s.allocate(&owner(&a, "aa", *c), 165536, &[]).unwrap();
                    s.commit().unwrap();
                });
            }
        });
        let s = reg.open().unwrap();
        let mut bases: Vec<u32> = s.entries().iter().map(|e| e.range.host_base).collect();
        bases.sort();
        bases.dedup();
        assert_eq!(bases.len(), 16);
    }
}
