//! Operations on a repository: snapshot a [`CtSource`], list, browse, read, restore, forget,
//! prune and check. Each opens the repository with the password it is given; nothing is
//! cached on disk (rustic's cache is off).

use crate::source::{CtSource, Report};
use crate::{backends, repo_err, BackupError, Location};
use rustic_core::repofile::{Node, NodeType, SnapshotFile};
use rustic_core::{
    BackupOptions, CheckOptions, Credentials, KeepOptions, LocalDestination, LsOptions,
    ParentOptions, PruneOptions, ReadSubsetOption, Repository, RepositoryOptions, RestoreOptions,
    SnapshotOptions,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Result<T> = std::result::Result<T, BackupError>;

fn repo_opts() -> RepositoryOptions {
    RepositoryOptions::default().no_cache(true)
}

/// Opens `repo` with `password` (a wrong one is an error naming the repository).
pub fn open(repo: &Location, password: &str) -> Result<Repo> {
    let be = backends(repo)?;
    let r = Repository::new(&repo_opts(), &be)
        .map_err(|e| repo_err(repo, e))?
        .open(&Credentials::password(password))
        .map_err(|e| repo_err(repo, e.display_log()))?;
    Ok(Repo {
        key: r.key(),
        loc: repo.clone(),
        on_bytes: None,
        probe: None,
    })
}

/// The cached form of an open repository's key: its id and master key, JSON.
#[derive(Serialize, Deserialize)]
struct KeyCache {
    repo_id: String,
    /// SHA-256 of the password the key was derived from: another password (a changed
    /// password file) derives again, so the password stays what decides.
    password_sha256: String,
    key: rustic_core::repofile::MasterKey,
}

fn pw_digest(password: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Opens `repo` with a master key cached by [`Repo::key_cache`] (no key derivation);
/// `None` when the cache does not fit this repository and `password` (another repository
/// at the same place, another password, a damaged cache): open with the password then.
pub fn open_cached(repo: &Location, cache: &[u8], password: &str) -> Option<Repo> {
    let c: KeyCache = serde_json::from_slice(cache).ok()?;
    if c.password_sha256 != pw_digest(password) {
        return None;
    }
    let be = backends(repo).ok()?;
    let r = Repository::new(&repo_opts(), &be)
        .ok()?
        .open(&Credentials::Masterkey(c.key.clone()))
        .ok()?;
    if r.config().id.to_string() != c.repo_id {
        return None;
    }
    Some(Repo {
        key: c.key,
        loc: repo.clone(),
        on_bytes: None,
        probe: None,
    })
}

/// Where a long call's byte progress goes: `(phase, bytes done, bytes in all if known)`.
pub type OnBytes = Arc<dyn Fn(&str, u64, Option<u64>) + Send + Sync>;

/// rustic's progress bars as calls of an [`OnBytes`]: only byte counters (the backup's
/// "backing up…", a restore's file contents) are reported; spinners and counters are not.
struct Bars(OnBytes);

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bars")
    }
}

impl rustic_core::ProgressBars for Bars {
    fn progress(&self, kind: rustic_core::ProgressType, prefix: &str) -> rustic_core::Progress {
        match kind {
            rustic_core::ProgressType::Bytes => rustic_core::Progress::new(ByteBar {
                on: self.0.clone(),
                title: std::sync::Mutex::new(prefix.to_string()),
                len: std::sync::atomic::AtomicU64::new(0),
                done: std::sync::atomic::AtomicU64::new(0),
            }),
            _ => rustic_core::Progress::hidden(),
        }
    }
}

struct ByteBar {
    on: OnBytes,
    title: std::sync::Mutex<String>,
    len: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ByteBar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByteBar")
    }
}

impl ByteBar {
    fn report(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let len = self.len.load(Relaxed);
        let t = self.title.lock().map(|t| t.clone()).unwrap_or_default();
        (self.on)(&t, self.done.load(Relaxed), (len > 0).then_some(len));
    }
}

impl rustic_core::RusticProgress for ByteBar {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.len.store(len, std::sync::atomic::Ordering::Relaxed);
        self.report();
    }
    fn set_title(&self, title: &str) {
        if let Ok(mut t) = self.title.lock() {
            *t = title.to_string();
        }
    }
    fn inc(&self, inc: u64) {
        self.done
            .fetch_add(inc, std::sync::atomic::Ordering::Relaxed);
        self.report();
    }
    fn finish(&self) {
        self.report();
    }
}

/// An open repository (the key derived once: opening is the slow part).
#[derive(Clone)]
pub struct Repo {
    key: rustic_core::repofile::MasterKey,
    loc: Location,
    on_bytes: Option<OnBytes>,
    probe: Option<FileProbe>,
}

/// Where a backup puts the walk's [`Report`] as it starts, for a watcher to read its count
/// of files while it runs.
pub type FileProbe = Arc<std::sync::Mutex<Option<Arc<Report>>>>;

impl Repo {
    /// This repository, its long calls (backup, restore) reporting their bytes to `on`.
    pub fn with_progress(mut self, on: OnBytes) -> Repo {
        self.on_bytes = Some(on);
        self
    }

    /// This repository, its backups showing their walk's [`Report`] in `probe`.
    pub fn with_file_probe(mut self, probe: FileProbe) -> Repo {
        self.probe = Some(probe);
        self
    }

    /// The repository opened again with the master key (no key derivation).
    fn opened(&self) -> Result<Repository<rustic_core::OpenStatus>> {
        let be = backends(&self.loc)?;
        let r = match &self.on_bytes {
            Some(on) => Repository::new_with_progress(&repo_opts(), &be, Bars(on.clone())),
            None => Repository::new(&repo_opts(), &be),
        };
        r.map_err(|e| repo_err(&self.loc, e))?
            .open(&Credentials::Masterkey(self.key.clone()))
            .map_err(|e| repo_err(&self.loc, e.display_log()))
    }
    pub fn location(&self) -> &Location {
        &self.loc
    }

    /// This repository's id and master key, for [`open_cached`] (as secret as the password:
    /// keep it root-only).
    pub fn key_cache(&self, password: &str) -> Result<Vec<u8>> {
        let r = self.opened()?;
        serde_json::to_vec(&KeyCache {
            repo_id: r.config().id.to_string(),
            password_sha256: pw_digest(password),
            key: self.key.clone(),
        })
        .map_err(|e| repo_err(&self.loc, e))
    }
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({})", self.loc)
    }
}

/// True if `dir` holds a restic repository (its `config` file).
pub fn is_repo(dir: &Path) -> bool {
    dir.join("config").is_file() && dir.join("keys").is_dir()
}

/// Whether a store on a backup node holds a repository, and its node's account of it.
pub fn store_info(spec: &crate::StoreSpec) -> Result<(bool, berth_api::agent::StoreInfo)> {
    let loc = Location::Store(spec.clone());
    let be = crate::store::StoreBackend::new(spec.clone()).map_err(|e| repo_err(&loc, e))?;
    let info = be.info().map_err(|e| repo_err(&loc, e.display_log()))?;
    let has = be
        .has_config()
        .map_err(|e| repo_err(&loc, e.display_log()))?;
    Ok((has, info))
}

/// One snapshot, as Berth shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapInfo {
    /// Full id (64 hex digits); the first 8 are restic's short form.
    pub id: String,
    /// Seconds since the epoch.
    pub time: i64,
    pub hostname: String,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
    pub parent: Option<String>,
    pub description: Option<String>,
    /// Files and bytes in the snapshot.
    pub files: u64,
    pub bytes: u64,
    /// Bytes this snapshot added to the repository (after deduplication and compression).
    pub added: u64,
    /// Files the backup read again (new or changed since its parent).
    pub files_read: u64,
}

impl SnapInfo {
    pub fn short(&self) -> &str {
        &self.id[..8.min(self.id.len())]
    }
    /// The value of tag `key:value`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
    }
}

fn info(s: &SnapshotFile) -> SnapInfo {
    let sum = s.summary.as_ref();
    SnapInfo {
        id: (*s.id).to_hex().as_str().to_string(),
        time: s.time.timestamp().as_second(),
        hostname: s.hostname.clone(),
        tags: s.tags.iter().cloned().collect(),
        paths: s.paths.iter().cloned().collect(),
        parent: s.parent.map(|p| (*p).to_hex().as_str().to_string()),
        description: s.description.clone(),
        files: sum.map_or(0, |x| x.total_files_processed),
        bytes: sum.map_or(0, |x| x.total_bytes_processed),
        added: sum.map_or(0, |x| x.data_added_packed),
        files_read: sum.map_or(0, |x| x.files_new + x.files_changed),
    }
}

/// What a snapshot is made with.
#[derive(Debug, Clone, Default)]
pub struct SnapSpec {
    /// The snapshot's single path (e.g. `/ct/101`), the prefix of the source.
    pub path: PathBuf,
    pub hostname: String,
    /// Tags (validated by the caller: no commas).
    pub tags: Vec<String>,
    /// The snapshot whose unchanged files are not read again (by metadata).
    pub parent: Option<String>,
    /// Read every file again (the seed's "full" backup).
    pub full: bool,
    pub description: Option<String>,
}

impl Repo {
    /// Snapshots `src` into `repo`; returns the snapshot and what the walk skipped.
    pub fn snapshot(&self, src: &CtSource, spec: &SnapSpec) -> Result<(SnapInfo, Arc<Report>)> {
        let repo = &self.loc;
        let r = self
            .opened()?
            .to_indexed_ids()
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let mut opts = SnapshotOptions::default().host(spec.hostname.clone());
        if let Some(d) = &spec.description {
            opts = opts.description(d.clone());
        }
        if !spec.tags.is_empty() {
            opts = opts
                .add_tags(&spec.tags.join(","))
                .map_err(|e| repo_err(repo, e.display_log()))?;
        }
        let snap = opts
            .to_snapshot()
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let mut parent = ParentOptions::default();
        match (&spec.parent, spec.full) {
            (_, true) => parent = parent.force(true),
            (Some(p), false) => parent = parent.parents(vec![p.clone()]),
            (None, false) => parent = parent.force(true),
        }
        let bopts = BackupOptions::default().parent_opts(parent);
        let report = src.report();
        if let Some(p) = &self.probe {
            *p.lock().unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
        }
        let s = r
            .archive(&bopts, src, snap, std::slice::from_ref(&spec.path))
            .map_err(|e| repo_err(repo, e.display_log()))?;
        tracing::info!(%repo, snapshot = %s.id, skipped = report.skipped(), "backup saved");
        Ok((info(&s), report))
    }
}

impl Repo {
    /// Every snapshot of the repository, oldest first.
    pub fn list(&self) -> Result<Vec<SnapInfo>> {
        let repo = &self.loc;
        let r = &self.opened()?;
        let mut v: Vec<SnapInfo> = r
            .get_all_snapshots()
            .map_err(|e| repo_err(repo, e.display_log()))?
            .iter()
            .map(info)
            .collect();
        v.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(v)
    }
}

impl Repo {
    /// Removes snapshots by full id (their data stays until [`prune`]).
    pub fn delete(&self, ids: &[String]) -> Result<()> {
        let repo = &self.loc;
        if ids.is_empty() {
            return Ok(());
        }
        let r = &self.opened()?;
        let snaps = r
            .get_snapshots(ids)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let ids: Vec<_> = snaps.iter().map(|s| s.id).collect();
        r.delete_snapshots(&ids)
            .map_err(|e| repo_err(repo, e.display_log()))
    }
}

/// A retention policy (restic's `--keep-*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Keep {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
}

impl Keep {
    pub fn is_empty(&self) -> bool {
        self == &Keep::default()
    }
}

impl Repo {
    /// Which of `snaps` (one container's) the policy keeps and which it removes: (kept, removed).
    pub fn plan_forget(
        &self,
        snaps: &[SnapInfo],
        keep: &Keep,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let repo = &self.loc;
        if keep.is_empty() {
            return Err(repo_err(repo, "no --keep-* option given"));
        }
        let r = &self.opened()?;
        let ids: Vec<String> = snaps.iter().map(|s| s.id.clone()).collect();
        let files = r
            .get_snapshots(&ids)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let n = |v: Option<u32>| v.map(|x| x as i32);
        let opts = KeepOptions::default()
            .keep_last(n(keep.last))
            .keep_hourly(n(keep.hourly))
            .keep_daily(n(keep.daily))
            .keep_weekly(n(keep.weekly))
            .keep_monthly(n(keep.monthly))
            .keep_yearly(n(keep.yearly));
        let now = rustic_core::jiff::Zoned::now();
        let res = opts
            .apply(files, &now)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let (mut kept, mut gone) = (vec![], vec![]);
        for f in res {
            if f.keep {
                kept.push((*f.snapshot.id).to_hex().as_str().to_string());
            } else {
                gone.push((*f.snapshot.id).to_hex().as_str().to_string());
            }
        }
        Ok((kept, gone))
    }
}

impl Repo {
    /// Removes data no snapshot uses any more; returns the bytes freed (packs removed or repacked).
    pub fn prune(&self) -> Result<u64> {
        let repo = &self.loc;
        let r = &self.opened()?;
        let opts = PruneOptions::default();
        let plan = r
            .prune_plan(&opts)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let freed = plan.stats.size_sum().remove;
        r.prune(&opts, plan)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        Ok(freed)
    }
}

impl Repo {
    /// Checks the repository's structure, and with `read_data` (a percentage, 100 = all) that
    /// data too.
    pub fn check(&self, read_data: Option<f64>) -> Result<()> {
        let repo = &self.loc;
        let r = &self.opened()?;
        let mut opts = CheckOptions::default();
        if let Some(p) = read_data {
            opts = opts.read_data(true);
            if p < 100.0 {
                opts = opts.read_data_subset(ReadSubsetOption::Percentage(p));
            }
        }
        let res = r.check(opts).map_err(|e| repo_err(repo, e.display_log()))?;
        if res.is_ok().is_ok() {
            return Ok(());
        }
        // The findings in the error itself (rustic also logs each one).
        let errors: Vec<String> = res
            .0
            .iter()
            // (its level type is not exported: by its name)
            .filter(|(l, _)| format!("{l:?}") == "Error")
            .map(|(_, e)| e.to_string().lines().next().unwrap_or_default().to_string())
            .collect();
        let mut m = format!("{} error(s) found", errors.len());
        for e in errors.iter().take(3) {
            m.push_str("; ");
            m.push_str(e);
        }
        if errors.len() > 3 {
            m.push_str("; …");
        }
        Err(repo_err(repo, m))
    }
}

/// An entry of a snapshot's tree, as `backup ls` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LsEntry {
    /// Path below the listed directory.
    pub path: String,
    /// `file`, `dir`, `symlink`, `chardev`, `blockdev`, `fifo`, `socket`.
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub target: Option<String>,
}

fn kind(n: &Node) -> &'static str {
    match n.node_type {
        NodeType::File => "file",
        NodeType::Dir => "dir",
        NodeType::Symlink { .. } => "symlink",
        NodeType::Chardev { .. } => "chardev",
        NodeType::Dev { .. } => "blockdev",
        NodeType::Fifo => "fifo",
        NodeType::Socket => "socket",
    }
}

fn unix_mode(go: u32) -> u32 {
    let mut m = go & 0o777;
    if go & (1 << 23) != 0 {
        m |= 0o4000;
    }
    if go & (1 << 22) != 0 {
        m |= 0o2000;
    }
    if go & (1 << 20) != 0 {
        m |= 0o1000;
    }
    m
}

fn entry(path: &Path, n: &Node) -> LsEntry {
    LsEntry {
        path: path.display().to_string(),
        kind: kind(n).into(),
        mode: n.meta.mode.map(unix_mode).unwrap_or(0),
        uid: n.meta.uid.unwrap_or(0),
        gid: n.meta.gid.unwrap_or(0),
        size: n.meta.size,
        mtime: n.meta.mtime.map(|t| t.as_second()).unwrap_or(0),
        target: match &n.node_type {
            NodeType::Symlink { .. } => Some(n.node_type.to_link().display().to_string()),
            _ => None,
        },
    }
}

/// The node at `path` of snapshot `snap` (a full or unique short id).
fn node_at<S: rustic_core::IndexedTree>(
    r: &Repository<S>,
    repo: &Location,
    snap: &str,
    path: &str,
) -> Result<Node> {
    r.node_from_snapshot_path(&format!("{snap}:{path}"), |_| true)
        .map_err(|e| repo_err(repo, e.display_log()))
}

impl Repo {
    /// Lists `path` of a snapshot: its own entry first, then (recursively or not) below it.
    pub fn ls(&self, snap: &str, path: &str, recursive: bool) -> Result<Vec<LsEntry>> {
        let repo = &self.loc;
        let r = self
            .opened()?
            .to_indexed()
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let node = node_at(&r, repo, snap, path)?;
        let mut out = vec![];
        if node.is_dir() {
            let it = r
                .ls(&node, &LsOptions::default().recursive(recursive))
                .map_err(|e| repo_err(repo, e.display_log()))?;
            for item in it {
                let (p, n) = item.map_err(|e| repo_err(repo, e.display_log()))?;
                out.push(entry(&p, &n));
            }
        } else {
            out.push(entry(Path::new(&*node.name()), &node));
        }
        Ok(out)
    }
}

impl Repo {
    /// The content of the file at `path` of a snapshot, refused if larger than `max`.
    pub fn read_file(&self, snap: &str, path: &str, max: u64) -> Result<Vec<u8>> {
        let repo = &self.loc;
        let r = self
            .opened()?
            .to_indexed()
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let node = node_at(&r, repo, snap, path)?;
        if !node.is_file() {
            return Err(repo_err(
                repo,
                format!("{path} is not a file in snapshot {snap}"),
            ));
        }
        if node.meta.size > max {
            return Err(repo_err(repo, format!("{path} is larger than {max} bytes")));
        }
        let f = r
            .open_file(&node)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let b = r
            .read_file_at(&f, 0, node.meta.size as usize)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        Ok(b.to_vec())
    }
}

impl Repo {
    /// Restores `path` of a snapshot (a directory) into `dest`, an empty directory the caller
    /// made where nothing but this restore writes (a new container's fresh disk, a root-only
    /// directory): rustic's writer resolves plain paths. Ownership numeric.
    /// Returns the files and bytes restored.
    pub fn restore(
        &self,
        snap: &str,
        path: &str,
        dest: &Path,
        ownership: bool,
    ) -> Result<(u64, u64)> {
        let repo = &self.loc;
        let r = self
            .opened()?
            .to_indexed()
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let node = node_at(&r, repo, snap, path)?;
        if node.is_file() {
            return restore_file(&r, repo, &node, dest, ownership).map(|b| (1, b));
        }
        let d = dest
            .to_str()
            .ok_or_else(|| repo_err(repo, "destination path is not UTF-8"))?;
        let dest_s = if node.is_dir() {
            format!("{d}/")
        } else {
            d.to_string()
        };
        let ldest = LocalDestination::new(&dest_s, true, !node.is_dir())
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let mut opts = RestoreOptions::default();
        opts = if ownership {
            opts.numeric_id(true)
        } else {
            opts.no_ownership(true)
        };
        // Holes: a chunk of zeros is not written (the file is made at its full length first,
        // so it stays a hole). rustic_core 0.13 does not export the type's name; its value
        // is read by serde into the field's type.
        opts.sparse = Some(serde_json::from_str("\"ByContent\"").map_err(|e| repo_err(repo, e))?);
        let ls = LsOptions::default().recursive(true);
        let streamer = r
            .ls(&node, &ls)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let plan = r
            .prepare_restore(&opts, streamer.clone(), &ldest, false)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        let files = plan.stats.files.restore;
        let bytes = plan.restore_size;
        r.restore(plan, &opts, streamer, &ldest)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        Ok((files, bytes))
    }
}

/// Writes the regular file `node` to `dest` (a new file; parents made 0755), in 4 MiB
/// pieces, with its mode, times and (with `ownership`) owner.
fn restore_file(
    r: &Repository<rustic_core::IndexedFullStatus>,
    repo: &Location,
    node: &Node,
    dest: &Path,
    ownership: bool,
) -> Result<u64> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| repo_err(repo, format!("{}: {e}", dest.display()));
    if let Some(p) = dest.parent() {
        std::fs::create_dir_all(p).map_err(io)?;
    }
    let mode = node.meta.mode.map(unix_mode).unwrap_or(0o600);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(dest)
        .map_err(io)?;
    let of = r
        .open_file(node)
        .map_err(|e| repo_err(repo, e.display_log()))?;
    let size = node.meta.size;
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(4 << 20) as usize;
        let b = r
            .read_file_at(&of, off as usize, n)
            .map_err(|e| repo_err(repo, e.display_log()))?;
        if b.is_empty() {
            break;
        }
        f.write_all(&b).map_err(io)?;
        off += b.len() as u64;
    }
    if ownership {
        std::os::unix::fs::fchown(&f, node.meta.uid, node.meta.gid).map_err(io)?;
    }
    // After chown, which clears setuid bits.
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    if let Some(t) = node.meta.mtime {
        let ft = std::time::UNIX_EPOCH
            + std::time::Duration::new(
                t.as_second().max(0) as u64,
                t.subsec_nanosecond().max(0) as u32,
            );
        let _ = f.set_modified(ft);
    }
    Ok(off)
}
