//! `berth backup`: containers' private areas in restic-format repositories (docs/backups.md,
//! ADR 0016, ADR 0019).
//!
//! A snapshot holds one container: `/ct/<ctid>/config.toml`, `/ct/<ctid>/template.toml`
//! (its OS template's manifest, for reference) and `/ct/<ctid>/upper/`, the overlay's upper
//! layer of its virtual disk as the container left it (whiteouts and opaque directories
//! included), with container-native ownership. Tags `berth`, `ct:<ctid>`, `name:<name>`, the
//! mode, then the user's; the snapshot's hostname is the container's.
//!
//! Consistency: a stopped container's disk is read where only Berth sees it
//! (`run/.raw/<ctid>`). A running one: `live` (default) reads it once while it runs, then
//! freezes it (cgroup freezer, `syncfs`), reads again with the first pass as parent (only
//! what changed is read again), thaws, and keeps only the second snapshot; `suspend` keeps
//! it frozen for one pass; `stop` stops it and starts it again. The freeze carries the
//! marker clone uses (`run/<ctid>/clone-frozen`): a backup killed meanwhile is thawed by
//! the next command on the container or by berthd's start.

use crate::clone::{sync_mounted_disk, thaw_after_clone};
use crate::local::LocalNode;
use crate::{NodeError, Result};
use berth_backup::source::{CtSource, Extra, IdShift};
use berth_backup::{Repo, SnapInfo, SnapSpec};
use berth_core::config::ContainerConfig;
use berth_core::ops::{CtStatus, StopOptions};
use berth_core::validate::validate_name;
use berth_core::{fsutil, lock, CoreError, CtId, CtRef, NodeRoot};
use berth_storage::progress::Progress;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The tag of a live backup's first pass, removed once the second is saved.
pub const PARTIAL_TAG: &str = "berth:partial";

/// A container backup's tag per template it was made on: `template:<name>@blake3:…`.
pub const TEMPLATE_TAG: &str = "template";

/// The tag of a snapshot that holds a template (`backup create --with-templates`).
pub const TEMPLATE_SNAP_TAG: &str = "berth:template";

pub use berth_api::backup::{
    BackupCreate, BackupEntry, BackupFilter, BackupMode, BackupRestore, BackupResult, RepoEntry,
    Repos, Snapshot,
};

/// Berth's view of an engine's snapshot.
pub fn snapshot_of(s: SnapInfo) -> Snapshot {
    Snapshot {
        id: s.id,
        time: s.time,
        hostname: s.hostname,
        tags: s.tags,
        paths: s.paths,
        parent: s.parent,
        description: s.description,
        files: s.files,
        bytes: s.bytes,
        added: s.added,
        files_read: s.files_read,
    }
}

pub(crate) fn inval(m: String) -> NodeError {
    NodeError::Invalid(m)
}

pub(crate) fn bk(e: berth_backup::BackupError) -> NodeError {
    NodeError::Backup(e)
}

/// A tag the user gives: printable, no commas (restic's separator) or spaces, and not one
/// of Berth's own (`berth`, `ct:…`, `name:…`, `mode:…`, `berth:…`, `schedule:…`).
pub fn validate_tag(t: &str) -> Result<()> {
    let ok = !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    if !ok {
        return Err(inval(format!(
            "tag {t:?}: 1 to 64 printable characters, no commas or spaces"
        )));
    }
    if t == "berth"
        || [
            "ct:",
            "name:",
            "mode:",
            "berth:",
            "template:",
            berth_api::backup::SCHEDULE_TAG,
        ]
        .iter()
        .any(|p| t.starts_with(p))
    {
        return Err(inval(format!("tag {t:?} is one of Berth's own")));
    }
    Ok(())
}

fn repos_file(root: &NodeRoot) -> PathBuf {
    root.backups_dir().join("repos.toml")
}

fn keys_dir(root: &NodeRoot) -> PathBuf {
    root.backups_dir().join("keys")
}

/// Reads a password file: a regular file owned by root that no one else may read, its
/// first line non-empty.
pub fn read_password_file(p: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).map_err(|e| CoreError::io(p, e))?;
    if !m.file_type().is_file() {
        return Err(inval(format!(
            "password file {}: not a regular file",
            p.display()
        )));
    }
    if m.uid() != 0 || m.mode() & 0o077 != 0 {
        return Err(inval(format!(
            "password file {}: must be root's and unreadable by others (mode {:o}, owner {}): chmod 600 and chown root",
            p.display(),
            m.mode() & 0o7777,
            m.uid()
        )));
    }
    let b = read_bounded(p, 4096)?;
    let s = String::from_utf8_lossy(&b);
    let line = s.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(inval(format!(
            "password file {}: its first line is empty",
            p.display()
        )));
    }
    Ok(line.to_string())
}

fn password_path(e: &RepoEntry, root: &NodeRoot) -> PathBuf {
    e.password_file
        .clone()
        .unwrap_or_else(|| keys_dir(root).join(format!("{}.key", e.name)))
}

fn password(e: &RepoEntry, root: &NodeRoot) -> Result<String> {
    read_password_file(&password_path(e, root))
}

/// Where a repository's master key is cached (root-only, as secret as its password).
fn key_cache_path(root: &NodeRoot, name: &str) -> PathBuf {
    keys_dir(root).join(format!("{name}.master"))
}

/// Opens repository `e`: with its cached master key when it fits (deriving the key from
/// the password costs scrypt's time and memory at every open), else with the password,
/// caching the key for the next time.
pub(crate) fn open_repo(e: &RepoEntry, root: &NodeRoot) -> Result<Repo> {
    let loc = location(e, root)?;
    let pw = password(e, root)?;
    let cache = key_cache_path(root, &e.name);
    if let Ok(b) = read_password_file(&cache) {
        if let Some(r) = berth_backup::open_cached(&loc, b.as_bytes(), &pw) {
            return Ok(r);
        }
        tracing::debug!(repo = %e.name, "the cached key does not fit: deriving it");
    }
    let r = berth_backup::open(&loc, &pw).map_err(bk)?;
    match r.key_cache(&pw) {
        Ok(k) => {
            let mut k = k;
            k.push(b'\n');
            if let Err(err) = fsutil::create_dir_mode(&keys_dir(root), 0o700)
                .and_then(|_| fsutil::atomic_write(&cache, &k, 0o600))
            {
                tracing::warn!(repo = %e.name, error = %err, "cannot cache the repository key");
            }
        }
        Err(err) => tracing::warn!(repo = %e.name, error = %err, "cannot cache the repository key"),
    }
    Ok(r)
}

/// Where a backup node repository's token is kept (root-only).
fn token_path(root: &NodeRoot, name: &str) -> PathBuf {
    keys_dir(root).join(format!("{name}.token"))
}

/// Where repository `e` is: its directory, or its store on a backup node (the token read
/// from `backups/keys/<name>.token`).
pub(crate) fn location(e: &RepoEntry, root: &NodeRoot) -> Result<berth_backup::Location> {
    match &e.node {
        None => Ok(berth_backup::Location::Dir(e.path.clone())),
        Some(n) => Ok(berth_backup::Location::Store(berth_backup::StoreSpec {
            url: n.url.clone(),
            fingerprint: n.fingerprint.clone(),
            token: read_password_file(&token_path(root, &e.name))?,
            store: n.store.clone(),
        })),
    }
}

/// The repositories of the node (an absent file: none).
pub fn load_repos(root: &NodeRoot) -> Result<Repos> {
    let p = repos_file(root);
    if !p.exists() {
        return Ok(Repos::default());
    }
    let r: Repos = fsutil::read_toml(&p)?;
    for e in &r.repos {
        validate_name(&e.name).map_err(|m| inval(format!("{}: repo name: {m}", p.display())))?;
        if let Some(n) = &e.node {
            validate_name(&n.store)
                .map_err(|m| inval(format!("{}: repo {}: store: {m}", p.display(), e.name)))?;
            berth_client::Endpoint::parse(&n.url)
                .map_err(|m| inval(format!("{}: repo {}: {m}", p.display(), e.name)))?;
            continue;
        }
        if !e.path.is_absolute() {
            return Err(inval(format!(
                "{}: repo {}: path must be absolute",
                p.display(),
                e.name
            )));
        }
    }
    Ok(r)
}

fn save_repos(root: &NodeRoot, r: &Repos) -> Result<()> {
    Ok(fsutil::write_toml(&repos_file(root), r)?)
}

/// A new random password, as 64 hex digits.
fn new_password() -> Result<String> {
    let mut b = [0u8; 32];
    let mut f =
        std::fs::File::open("/dev/urandom").map_err(|e| CoreError::io("/dev/urandom", e))?;
    std::io::Read::read_exact(&mut f, &mut b).map_err(|e| CoreError::io("/dev/urandom", e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Forgets the stored templates that no container backup names any more (before a prune,
/// under the repository's exclusive lock: no backup is deciding meanwhile that a stored
/// template is there).
fn sweep_templates(rh: &Repo) -> Result<()> {
    let all = rh.list().map_err(bk)?;
    let is_tpl = |s: &SnapInfo| s.tags.iter().any(|t| t == TEMPLATE_SNAP_TAG);
    let named: std::collections::HashSet<&String> = all
        .iter()
        .filter(|s| !is_tpl(s))
        .flat_map(|s| s.tags.iter())
        .collect();
    let unused: Vec<String> = all
        .iter()
        .filter(|s| is_tpl(s))
        .filter(|s| {
            !s.tags
                .iter()
                .any(|t| t.starts_with(&format!("{TEMPLATE_TAG}:")) && named.contains(t))
        })
        .map(|s| s.id.clone())
        .collect();
    if !unused.is_empty() {
        tracing::info!(
            count = unused.len(),
            "stored templates no backup names forgotten"
        );
        rh.delete(&unused).map_err(bk)?;
    }
    Ok(())
}

/// Removes a live backup's first passes, except from an append-only store on a backup node,
/// which keeps them (tagged [`PARTIAL_TAG`], left out of every list).
fn drop_partial(rh: &Repo, repo: &RepoEntry, ids: &[String]) -> Result<()> {
    if ids.is_empty() || repo.node.as_ref().is_some_and(|n| n.append_only) {
        return Ok(());
    }
    rh.delete(ids).map_err(bk)
}

/// The snapshot path of container `id`.
pub fn snap_path(id: CtId) -> PathBuf {
    PathBuf::from(format!("/ct/{id}"))
}

fn ctid_of(s: &SnapInfo) -> Option<u32> {
    s.tag("ct").and_then(|v| v.parse().ok())
}

impl LocalNode {
    /// Adds (and initialises, if empty) repository `name` at `path`, or in the caller's
    /// store on the backup node `node`. Without a password file, a random key is made in
    /// `backups/keys/<name>.key`: the note says to keep a copy. Returns the entry and notes.
    pub fn backup_repo_add(
        &self,
        name: &str,
        path: &Path,
        password_file: Option<&Path>,
        node: Option<&berth_api::backup::RepoNodeAdd>,
    ) -> Result<(RepoEntry, Vec<String>)> {
        validate_name(name).map_err(|m| inval(format!("repo name: {m}")))?;
        let root = self.root();
        if node.is_some() {
            if !path.as_os_str().is_empty() {
                return Err(inval(
                    "a repository is a directory or on a backup node, not both".into(),
                ));
            }
        } else {
            if !path.is_absolute() {
                return Err(inval(format!(
                    "{}: the repository path must be absolute",
                    path.display()
                )));
            }
            if path.starts_with(root.path()) && !path.starts_with(root.backups_dir()) {
                return Err(inval(format!(
                    "{}: inside the node root (only under {} there)",
                    path.display(),
                    root.backups_dir().display()
                )));
            }
        }
        let _g = lock::lock(&root.node_lock())?;
        let mut repos = load_repos(root)?;
        if repos.repos.iter().any(|r| r.name == name) {
            return Err(inval(format!("backup repository {name:?} exists")));
        }
        let mut notes = vec![];
        // A backup node: its account of the caller's store (which checks the token).
        let store = match node {
            None => None,
            Some(n) => {
                berth_client::Endpoint::parse(&n.url).map_err(|e| inval(e.to_string()))?;
                berth_client::config::validate_token(&n.token).map_err(|e| inval(e.to_string()))?;
                if berth_client::Fingerprint::parse(&n.fingerprint).is_none() {
                    return Err(inval(format!(
                        "{}: the fingerprint is 64 hex digits (the node certificate's SHA-256)",
                        n.url
                    )));
                }
                let mut spec = berth_backup::StoreSpec {
                    url: n.url.clone(),
                    fingerprint: n.fingerprint.clone(),
                    token: n.token.clone(),
                    store: String::new(),
                };
                let (_, info) = berth_backup::store_info(&spec).map_err(bk)?;
                spec.store = info.store.clone();
                let (has, _) = berth_backup::store_info(&spec).map_err(bk)?;
                let mut what = format!("store {:?} on {}", info.store, n.url);
                if info.limits.append_only {
                    what.push_str(" (append-only: forget and prune are its administrator's)");
                }
                if let Some(q) = info.limits.quota {
                    what.push_str(&format!(", quota {q} bytes, {} used", info.used));
                }
                notes.push(what);
                Some((spec, has, info.limits.append_only))
            }
        };
        let entry = RepoEntry {
            name: name.into(),
            path: path.into(),
            password_file: password_file.map(Path::to_path_buf),
            node: store
                .as_ref()
                .map(|(s, _, ao)| berth_api::backup::RepoNode {
                    url: s.url.clone(),
                    fingerprint: s.fingerprint.clone(),
                    store: s.store.clone(),
                    append_only: *ao,
                }),
        };
        let pw = match password_file {
            Some(f) => read_password_file(f)?,
            None => {
                let k = password_path(&entry, root);
                if k.exists() {
                    read_password_file(&k)?
                } else {
                    let pw = new_password()?;
                    fsutil::create_dir_mode(&keys_dir(root), 0o700)?;
                    fsutil::atomic_write(&k, format!("{pw}\n").as_bytes(), 0o600)?;
                    notes.push(format!(
                        "the repository's key is {}: keep a copy elsewhere, the backups cannot be read without it",
                        k.display()
                    ));
                    pw
                }
            }
        };
        match &store {
            Some((spec, has, _)) => {
                let loc = berth_backup::Location::Store(spec.clone());
                if *has {
                    berth_backup::open(&loc, &pw).map_err(bk)?;
                    notes.push(format!(
                        "{loc}: an existing repository, opened with that password"
                    ));
                } else {
                    berth_backup::init_repo(&loc, &pw).map_err(bk)?;
                }
                fsutil::create_dir_mode(&keys_dir(root), 0o700)?;
                fsutil::atomic_write(
                    &token_path(root, name),
                    format!("{}\n", spec.token).as_bytes(),
                    0o600,
                )?;
            }
            None if berth_backup::is_repo(path) => {
                berth_backup::open(&path.into(), &pw).map_err(bk)?;
                notes.push(format!(
                    "{}: an existing repository, opened with that password",
                    path.display()
                ));
            }
            None => {
                if path.exists() {
                    let empty = std::fs::read_dir(path)
                        .map_err(|e| CoreError::io(path, e))?
                        .next()
                        .is_none();
                    if !empty {
                        return Err(inval(format!(
                            "{}: neither empty nor a restic repository",
                            path.display()
                        )));
                    }
                }
                fsutil::create_dir_mode(path, 0o700)?;
                berth_backup::init_repo(&path.into(), &pw).map_err(bk)?;
            }
        }
        if repos.default.is_none() {
            repos.default = Some(name.into());
        }
        repos.repos.push(entry.clone());
        save_repos(root, &repos)?;
        tracing::info!(name, location = %location(&entry, root)?, "backup repository added");
        Ok((entry, notes))
    }

    /// Forgets repository `name` (its directory and data stay where they are).
    pub fn backup_repo_remove(&self, name: &str) -> Result<()> {
        let root = self.root();
        let _g = lock::lock(&root.node_lock())?;
        let mut repos = load_repos(root)?;
        let before = repos.repos.len();
        repos.repos.retain(|r| r.name != name);
        if repos.repos.len() == before {
            return Err(NodeError::NotFound(format!("backup repository {name:?}")));
        }
        // A backup node's token and the cached key are of no use without the entry.
        let _ = std::fs::remove_file(token_path(root, name));
        let _ = std::fs::remove_file(key_cache_path(root, name));
        if repos.default.as_deref() == Some(name) {
            repos.default = repos.repos.first().map(|r| r.name.clone());
        }
        save_repos(root, &repos)
    }

    /// Makes `name` the default repository.
    pub fn backup_repo_default(&self, name: &str) -> Result<()> {
        let root = self.root();
        let _g = lock::lock(&root.node_lock())?;
        let mut repos = load_repos(root)?;
        if !repos.repos.iter().any(|r| r.name == name) {
            return Err(NodeError::NotFound(format!("backup repository {name:?}")));
        }
        repos.default = Some(name.into());
        save_repos(root, &repos)
    }

    pub fn backup_repos(&self) -> Result<Repos> {
        load_repos(self.root())
    }

    /// The repository `name`, or the default; with no repository at all, `local` is made
    /// under `backups/local` (its key in `backups/keys/local.key`) and noted.
    fn repo(&self, name: Option<&str>, notes: &mut Vec<String>) -> Result<(RepoEntry, Repo)> {
        let root = self.root();
        let repos = load_repos(root)?;
        let want = name.map(str::to_string).or(repos.default.clone());
        let e = match want {
            Some(n) => repos
                .repos
                .iter()
                .find(|r| r.name == n)
                .cloned()
                .ok_or_else(|| {
                    NodeError::NotFound(format!(
                        "backup repository {n:?} (`berth backup repo list`)"
                    ))
                })?,
            None if name.is_none() && repos.repos.is_empty() => {
                let dir = root.backups_dir().join("local");
                let (e, n) = self.backup_repo_add("local", &dir, None, None)?;
                notes.push(format!(
                    "no backup repository was set up: made `local` at {} (on the node's own disk; add one elsewhere with `berth backup repo add`)",
                    dir.display()
                ));
                notes.extend(n);
                e
            }
            None => {
                return Err(inval(
                    "no default backup repository: `berth backup repo default NAME` or --repo"
                        .into(),
                ))
            }
        };
        let r = open_repo(&e, root)?;
        Ok((e, r))
    }

    /// Backs up container `r` (docs/backups.md).
    pub fn backup_create(
        &self,
        r: &CtRef,
        o: &BackupCreate,
        p: &dyn Progress,
    ) -> Result<BackupResult> {
        self.backup_create_tagged(r, o, &[], p)
    }

    /// [`Self::backup_create`] with tags of Berth's own added (a schedule's).
    pub(crate) fn backup_create_tagged(
        &self,
        r: &CtRef,
        o: &BackupCreate,
        own_tags: &[String],
        p: &dyn Progress,
    ) -> Result<BackupResult> {
        for t in &o.tags {
            validate_tag(t)?;
        }
        if let Some(d) = &o.description {
            berth_core::validate::validate_description(d)
                .map_err(|m| inval(format!("description: {m}")))?;
        }
        let mut warnings = vec![];
        let (repo, rh) = self.repo(o.repo.as_deref(), &mut warnings)?;
        let _repo_lock = repo_lock(self.root(), &repo.name, false)?;
        let id = self.resolve(r)?;
        let guard = self.lock_ct(id)?;
        let cfg = self.load_config(id)?;
        let config_bytes = read_bounded(&self.root().ct_config(id), 1 << 20)?;
        let mut extras = vec![Extra {
            name: "config.toml".into(),
            content: config_bytes,
            mode: 0o600,
        }];
        // The templates it was made on, by content hash (computed once for a template
        // older than hashes).
        let mut layers = vec![];
        for t in std::iter::once(&cfg.ostemplate).chain(cfg.app_templates.iter()) {
            match berth_storage::template::ensure_hash(self.root(), t) {
                Ok(h) => layers.push((t.clone(), h)),
                Err(e) => warnings.push(format!("template {t}: no content hash: {e}")),
            }
        }
        let tpl = self
            .root()
            .template_dir(&cfg.ostemplate)?
            .join("template.toml");
        if let Ok(b) = read_bounded(&tpl, 1 << 20) {
            extras.push(Extra {
                name: "template.toml".into(),
                content: b,
                mode: 0o644,
            });
        }
        let mut tags = vec!["berth".to_string(), format!("ct:{id}")];
        for (t, h) in &layers {
            tags.push(format!("{TEMPLATE_TAG}:{t}@{h}"));
        }
        if let Some(n) = &cfg.name {
            tags.push(format!("name:{n}"));
        }
        let status = self.current_status(id);
        let mode = if status == CtStatus::Stopped {
            BackupMode::Stop
        } else {
            o.mode
        };
        tags.push(format!("mode:{mode}"));
        tags.extend(own_tags.iter().cloned());
        tags.extend(o.tags.iter().cloned());
        let latest = rh
            .list()
            .map_err(bk)?
            .into_iter()
            .filter(|s| ctid_of(s) == Some(id.0))
            .collect::<Vec<_>>();
        if let Some(max) = o.at_most {
            let held = latest
                .iter()
                .filter(|s| !s.tags.iter().any(|t| t == PARTIAL_TAG))
                .filter(|s| s.time >= cfg.created as i64)
                .filter(|s| !berth_api::backup::by_schedule(&s.tags))
                .count();
            if held as u64 >= max as u64 {
                return Err(NodeError::Precondition(format!(
                    "container {id} has {held} backups in {}, the most allowed ({max}): remove old ones with `berth backup forget {id}`",
                    repo.name
                )));
            }
        }
        // Leftover first passes of a killed live backup go now.
        let stale: Vec<String> = latest
            .iter()
            .filter(|s| s.tags.iter().any(|t| t == PARTIAL_TAG))
            .map(|s| s.id.clone())
            .collect();
        drop_partial(&rh, &repo, &stale)?;
        let parent = latest
            .iter()
            .rev()
            .find(|s| !s.tags.iter().any(|t| t == PARTIAL_TAG))
            .map(|s| s.id.clone());
        let spec = SnapSpec {
            path: snap_path(id),
            hostname: cfg.effective_hostname(),
            tags,
            parent,
            full: o.full,
            description: o.description.clone(),
        };
        let shift = cfg.idmap.filter(|_| !cfg.privileged).map(|m| IdShift {
            base: m.host_base,
            count: m.size,
        });
        let mounted = berth_storage::rootfs::mounted_disk_dir(self.root(), id).join("upper");
        let mut paused_ms = None;
        let snap = with_bytes(p, rh.clone(), |rh| -> Result<SnapInfo> {
            Ok(match (status, mode) {
                (CtStatus::Stopped, _) => {
                    p.message(&format!("backing up container {id} (stopped)"));
                    self.snapshot_stopped(id, &cfg, rh, &extras, &spec, &mut warnings)?
                }
                (_, BackupMode::Stop) => {
                    p.message(&format!("stopping container {id} for its backup"));
                    let t0 = Instant::now();
                    self.stop_locked(id, &cfg, StopOptions::default())?;
                    let res = self.snapshot_stopped(id, &cfg, rh, &extras, &spec, &mut warnings);
                    p.message(&format!("starting container {id} again"));
                    let started = self.start_locked(id);
                    paused_ms = Some(t0.elapsed().as_millis() as u64);
                    if let Err(e) = started {
                        warnings.push(format!("container {id} did not start again: {e}"));
                    }
                    res?
                }
                (_, BackupMode::Suspend) => {
                    p.message(&format!("backing up container {id} (frozen)"));
                    let t0 = Instant::now();
                    let r = self.frozen_pass(
                        id,
                        status,
                        &mounted,
                        shift,
                        rh,
                        &extras,
                        &spec,
                        &mut warnings,
                    );
                    paused_ms = Some(t0.elapsed().as_millis() as u64);
                    r?
                }
                (_, BackupMode::Live) => {
                    p.message(&format!("backing up container {id} (pass 1, running)"));
                    let mut first = spec.clone();
                    first.tags.push(PARTIAL_TAG.into());
                    let src = CtSource::new(&mounted, &spec.path, "upper", extras.clone(), shift)
                        .with_size_hint(used_bytes(&mounted));
                    let (s1, _) = rh.snapshot(&src, &first).map_err(bk)?;
                    crate::crash_point("backup:after-first-pass");
                    if p.cancelled() {
                        drop_partial(rh, &repo, std::slice::from_ref(&s1.id))?;
                        return Err(NodeError::Cancelled(format!(
                            "the backup of container {id}"
                        )));
                    }
                    p.message(&format!(
                        "backing up container {id} (pass 2, frozen: what changed)"
                    ));
                    let mut second = spec.clone();
                    second.parent = Some(s1.id.clone());
                    second.full = false;
                    let t0 = Instant::now();
                    let r = self.frozen_pass(
                        id,
                        status,
                        &mounted,
                        shift,
                        rh,
                        &extras,
                        &second,
                        &mut warnings,
                    );
                    paused_ms = Some(t0.elapsed().as_millis() as u64);
                    drop_partial(rh, &repo, std::slice::from_ref(&s1.id))?;
                    let mut s2 = r?;
                    // The second pass read only what changed; the whole backup read both.
                    s2.files_read = s2.files_read.max(s1.files_read);
                    s2.added += s1.added;
                    s2
                }
            })
        })?;
        drop(guard);
        tracing::info!(%id, snapshot = %snap.id, repo = %repo.name, %mode, ?paused_ms, "container backed up");
        let mut templates = vec![];
        if o.with_templates {
            for (t, h) in &layers {
                p.message(&format!("storing template {t}"));
                let stored = self.backup_template(&rh, t, h)?;
                templates.push(format!(
                    "{t} {h} ({})",
                    if stored {
                        "stored"
                    } else {
                        "in the repository already"
                    }
                ));
            }
        }
        Ok(BackupResult {
            ctid: id.0,
            repo: repo.name,
            snapshot: snapshot_of(snap),
            paused_ms,
            mode,
            warnings,
            templates,
        })
    }

    /// Stores template `name` (content hash `hash`) in the repository unless a snapshot of
    /// it is there already: `/template/<name>/{template.toml,tree/}`, tagged
    /// [`TEMPLATE_SNAP_TAG`] and `template:<name>@<hash>`. Whether it stored it.
    fn backup_template(&self, rh: &Repo, name: &str, hash: &str) -> Result<bool> {
        let tag = format!("{TEMPLATE_TAG}:{name}@{hash}");
        let have = rh
            .list()
            .map_err(bk)?
            .into_iter()
            .any(|s| s.tags.iter().any(|t| t == TEMPLATE_SNAP_TAG) && s.tags.contains(&tag));
        if have {
            return Ok(false);
        }
        let dir = self.root().template_dir(name)?;
        let manifest = read_bounded(&dir.join("template.toml"), 1 << 20)?;
        let path = PathBuf::from(format!("/template/{name}"));
        let src = CtSource::new(
            &dir.join("rootfs"),
            &path,
            "tree",
            vec![Extra {
                name: "template.toml".into(),
                content: manifest,
                mode: 0o644,
            }],
            None,
        );
        let spec = SnapSpec {
            path,
            hostname: "berth-template".into(),
            tags: vec![TEMPLATE_SNAP_TAG.into(), tag],
            parent: None,
            full: false,
            description: Some(format!("template {name}")),
        };
        rh.snapshot(&src, &spec).map_err(bk)?;
        tracing::info!(template = name, %hash, "template stored in the backup repository");
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    fn snapshot_stopped(
        &self,
        id: CtId,
        cfg: &ContainerConfig,
        rh: &Repo,
        extras: &[Extra],
        spec: &SnapSpec,
        warnings: &mut Vec<String>,
    ) -> Result<SnapInfo> {
        berth_storage::rootfs::with_raw_mount(self.root(), id, cfg.disk.fstype, |raw, _| {
            let src = CtSource::new(
                &raw.join("upper"),
                &spec.path,
                "upper",
                extras.to_vec(),
                None,
            )
            .with_size_hint(used_bytes(raw));
            let (s, rep) = rh.snapshot(&src, spec).map_err(|e| {
                berth_storage::StorageError::io(
                    rh.location().to_string(),
                    std::io::Error::other(e.to_string()),
                )
            })?;
            skipped(&rep, warnings);
            Ok(s)
        })
        .map_err(Into::into)
    }

    #[allow(clippy::too_many_arguments)]
    fn frozen_pass(
        &self,
        id: CtId,
        status: CtStatus,
        mounted: &Path,
        shift: Option<IdShift>,
        rh: &Repo,
        extras: &[Extra],
        spec: &SnapSpec,
        warnings: &mut Vec<String>,
    ) -> Result<SnapInfo> {
        let freeze = status == CtStatus::Running;
        if freeze {
            self.freeze_for_clone(id)?;
        }
        crate::crash_point("backup:after-freeze");
        let r = (|| -> Result<SnapInfo> {
            sync_mounted_disk(self.root(), id, false)?;
            let src = CtSource::new(mounted, &spec.path, "upper", extras.to_vec(), shift)
                .with_size_hint(used_bytes(mounted));
            let (s, rep) = rh.snapshot(&src, spec).map_err(bk)?;
            skipped(&rep, warnings);
            Ok(s)
        })();
        if freeze && !thaw_after_clone(self.root(), &self.node_config().node_id, id) {
            warnings.push(format!(
                "container {id} could not be thawed after its backup: `berth resume {id}`"
            ));
        }
        r
    }

    /// The snapshots of the node's repositories (or one), filtered, oldest first.
    pub fn backup_list(&self, f: &BackupFilter) -> Result<Vec<BackupEntry>> {
        let root = self.root();
        let repos = load_repos(root)?;
        let mut out = vec![];
        // With `current_only`: each container's creation time (absent: no container).
        let mut created: std::collections::HashMap<u32, Option<i64>> = Default::default();
        let mut born = |ct: u32| -> Option<i64> {
            *created
                .entry(ct)
                .or_insert_with(|| self.load_config(CtId(ct)).ok().map(|c| c.created as i64))
        };
        for e in &repos.repos {
            if f.repo.as_deref().is_some_and(|r| r != e.name) {
                continue;
            }
            let listed = open_repo(e, root).and_then(|rh| rh.list().map_err(bk));
            let snaps = match listed {
                Ok(l) => l,
                // A backup node that does not answer hides only its own backups from a
                // list of every repository.
                Err(err) if f.repo.is_none() && e.node.is_some() => {
                    tracing::warn!(repo = %e.name, error = %err, "backup node left out of the list");
                    continue;
                }
                Err(err) => return Err(err),
            };
            for s in snaps {
                let Some(ct) = ctid_of(&s) else { continue };
                if s.tags.iter().any(|t| t == PARTIAL_TAG)
                    || f.ctid.is_some_and(|c| c != ct)
                    || f.since.is_some_and(|t| s.time < t)
                    || f.hostname.as_deref().is_some_and(|h| h != s.hostname)
                    || f.tag
                        .as_deref()
                        .is_some_and(|t| !s.tags.iter().any(|x| x == t))
                    || (f.current_only && born(ct).is_none_or(|c| s.time < c))
                {
                    continue;
                }
                out.push(BackupEntry {
                    repo: e.name.clone(),
                    ctid: ct,
                    name: s.tag("name").map(str::to_string),
                    snapshot: snapshot_of(s),
                });
            }
        }
        if f.repo.is_some()
            && out.is_empty()
            && !repos.repos.iter().any(|e| Some(&e.name) == f.repo.as_ref())
        {
            return Err(NodeError::NotFound(format!(
                "backup repository {:?}",
                f.repo.as_deref().unwrap_or("")
            )));
        }
        out.sort_by_key(|b| b.snapshot.time);
        Ok(out)
    }

    /// The snapshot of container `ct` named `snap` (a full id or a unique prefix), or its
    /// latest; with the repository and its password.
    pub(crate) fn find_snapshot(
        &self,
        repo: Option<&str>,
        ct: CtId,
        snap: Option<&str>,
        current_only: bool,
    ) -> Result<(RepoEntry, Repo, Snapshot)> {
        let mut notes = vec![];
        let list = self.backup_list(&BackupFilter {
            repo: repo.map(str::to_string),
            ctid: Some(ct.0),
            current_only,
            ..Default::default()
        })?;
        let found: Vec<&BackupEntry> = match snap {
            Some(s) => {
                if s.len() < 4 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(inval(format!(
                        "snapshot {s:?}: at least 4 hex digits of its id"
                    )));
                }
                list.iter()
                    .filter(|b| b.snapshot.id.starts_with(s))
                    .collect()
            }
            None => list.last().into_iter().collect(),
        };
        let b = match found.as_slice() {
            [b] => (*b).clone(),
            [] => {
                return Err(NodeError::NotFound(match snap {
                    Some(s) => format!("backup {s} of container {ct}"),
                    None => format!("a backup of container {ct}"),
                }))
            }
            _ => {
                return Err(inval(format!(
                    "snapshot {:?} is ambiguous: give more of its id",
                    snap.unwrap_or("")
                )))
            }
        };
        let (e, rh) = self.repo(Some(&b.repo), &mut notes)?;
        Ok((e, rh, b.snapshot))
    }

    /// Lists `path` (inside the container, `/` its root) of a backup of container `ct`.
    pub fn backup_ls(
        &self,
        repo: Option<&str>,
        ct: CtId,
        snap: Option<&str>,
        path: &str,
        recursive: bool,
    ) -> Result<(Snapshot, Vec<berth_backup::LsEntry>)> {
        self.backup_ls_of(repo, ct, snap, path, recursive, false)
    }

    /// [`Self::backup_ls`]; `current_only`: only backups of the container holding the CTID.
    pub fn backup_ls_of(
        &self,
        repo: Option<&str>,
        ct: CtId,
        snap: Option<&str>,
        path: &str,
        recursive: bool,
        current_only: bool,
    ) -> Result<(Snapshot, Vec<berth_backup::LsEntry>)> {
        let (_, rh, s) = self.find_snapshot(repo, ct, snap, current_only)?;
        let inner = inner_path(path)?;
        let full = format!("/ct/{ct}/upper{inner}");
        let v = rh.ls(&s.id, &full, recursive).map_err(bk)?;
        Ok((s, v))
    }

    /// Applies a retention policy to container `ct`'s backups in one repository (its
    /// latest is always kept); with `prune`, frees the data no snapshot uses. Returns the
    /// kept and removed snapshot ids and the bytes freed.
    pub fn backup_forget(
        &self,
        ct: CtId,
        req: &berth_api::backup::ForgetRequest,
    ) -> Result<(Vec<String>, Vec<String>, u64)> {
        let (repo, keep, tag, prune) = (
            req.repo.as_deref(),
            &req.keep,
            req.tag.as_deref(),
            req.prune,
        );
        let (current_only, manual_only) = (req.current_only, req.manual_only);
        if keep.is_empty() {
            return Err(inval(
                "a retention policy is needed: --keep-last, --keep-daily, --keep-weekly…".into(),
            ));
        }
        let mut notes = vec![];
        let (e, rh) = self.repo(repo, &mut notes)?;
        let born = self.load_config(ct).ok().map(|c| c.created as i64);
        // Pruning rewrites packs that a backup running meanwhile may reuse: alone.
        let _l = repo_lock(self.root(), &e.name, prune)?;
        let snaps: Vec<SnapInfo> = rh
            .list()
            .map_err(bk)?
            .into_iter()
            .filter(|s| ctid_of(s) == Some(ct.0))
            .filter(|s| !s.tags.iter().any(|t| t == PARTIAL_TAG))
            .filter(|s| tag.is_none_or(|t| s.tags.iter().any(|x| x == t)))
            .filter(|s| !current_only || born.is_some_and(|b| s.time >= b))
            .filter(|s| !manual_only || !berth_api::backup::by_schedule(&s.tags))
            .collect();
        if snaps.is_empty() {
            return Ok((vec![], vec![], 0));
        }
        let keep = berth_backup::Keep {
            last: keep.last,
            hourly: keep.hourly,
            daily: keep.daily,
            weekly: keep.weekly,
            monthly: keep.monthly,
            yearly: keep.yearly,
        };
        let (kept, gone) = rh.plan_forget(&snaps, &keep).map_err(bk)?;
        rh.delete(&gone).map_err(bk)?;
        let freed = if prune {
            sweep_templates(&rh)?;
            rh.prune().map_err(bk)?
        } else {
            0
        };
        tracing::info!(%ct, kept = kept.len(), removed = gone.len(), freed, "backups forgotten");
        Ok((kept, gone, freed))
    }

    /// `node set --backup-max-per-container N|none`: 1 to 10000, or no limit.
    pub fn set_backup_max_per_container(&self, max: Option<u32>) -> Result<()> {
        if let Some(m) = max {
            if !(1..=10_000).contains(&m) {
                return Err(inval(format!(
                    "backup-max-per-container {m}: 1 to 10000, or none"
                )));
            }
        }
        self.edit_node_config(|n| n.backup_max_per_container = max)
    }

    /// Frees the data of repository `repo` that no snapshot uses; the bytes freed.
    pub fn backup_prune(&self, repo: &str) -> Result<u64> {
        let mut notes = vec![];
        let (e, rh) = self.repo(Some(repo), &mut notes)?;
        let _l = repo_lock(self.root(), &e.name, true)?;
        sweep_templates(&rh)?;
        rh.prune().map_err(bk)
    }

    /// Checks a repository (structure; with `read_data`, that share of the data too).
    pub fn backup_verify(&self, repo: Option<&str>, read_data: Option<f64>) -> Result<String> {
        let mut notes = vec![];
        let (e, rh) = self.repo(repo, &mut notes)?;
        rh.check(read_data).map_err(bk)?;
        Ok(e.name)
    }
}

fn skipped(rep: &berth_backup::source::Report, warnings: &mut Vec<String>) {
    if rep.skipped() > 0 {
        let mut m = format!(
            "{} entries could not be read and are not in the backup",
            rep.skipped()
        );
        if let Some(first) = rep.messages().first() {
            m.push_str(&format!(" (first: {first})"));
        }
        warnings.push(m);
    }
}

/// Runs `f` with `rh` reporting its byte progress to `p` (rustic's callbacks must be
/// `'static`: they fill a cell that a scoped thread hands on to `p` five times a second).
pub(crate) fn with_bytes<T>(p: &dyn Progress, rh: Repo, f: impl FnOnce(&Repo) -> T) -> T {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    type Cell = Arc<Mutex<Option<(u64, Option<u64>)>>>;
    let cell: Cell = Default::default();
    let c2 = cell.clone();
    let probe: berth_backup::FileProbe = Default::default();
    let rh = rh
        .with_progress(Arc::new(move |_t: &str, done, total| {
            if let Ok(mut g) = c2.lock() {
                *g = Some((done, total));
            }
        }))
        .with_file_probe(probe.clone());
    let files = || {
        probe
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|r| r.files()))
    };
    let last_files = std::sync::atomic::AtomicU64::new(u64::MAX);
    let send_files = || {
        if let Some(n) = files() {
            if last_files.swap(n, Ordering::Relaxed) != n {
                p.files(n);
            }
        }
    };
    let stop = AtomicBool::new(false);
    // Set however `f` ends (a panic too: the scope waits for the forwarder).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(200));
                if let Some((d, t)) = cell.lock().ok().and_then(|mut g| g.take()) {
                    p.update(d, t);
                }
                send_files();
            }
        });
        let guard = Stop(&stop);
        let r = f(&rh);
        drop(guard);
        // The last count, however short the call was.
        if let Some((d, t)) = cell.lock().ok().and_then(|mut g| g.take()) {
            p.update(d, t);
        }
        send_files();
        r
    })
}

/// Bytes in use on the filesystem at `dir` (a container's disk): a backup's expected size.
pub(crate) fn used_bytes(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let used = st.blocks().saturating_sub(st.blocks_free()) as u64;
    Some(used * st.fragment_size() as u64)
}

/// The node's lock of repository `name` (`locks/backup-repo-<name>.lock`): shared by
/// backups, exclusive for pruning, which rewrites data a running backup may reuse.
pub(crate) fn repo_lock(root: &NodeRoot, name: &str, exclusive: bool) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = root.locks_dir();
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
    let p = dir.join(format!("backup-repo-{name}.lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
        .map_err(|e| CoreError::io(&p, e))?;
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    loop {
        // SAFETY: a valid descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(CoreError::io(&p, e).into());
        }
    }
}

/// A path inside the container, normalised to `/a/b` (or empty for `/`): absolute, no
/// `.`/`..` components, no NUL.
pub fn inner_path(p: &str) -> Result<String> {
    if !p.starts_with('/') || p.contains('\0') {
        return Err(inval(format!(
            "{p:?}: a path inside the container starts with /"
        )));
    }
    let mut out = String::new();
    for c in p.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(inval(format!("{p:?}: no . or .. components")));
        }
        out.push('/');
        out.push_str(c);
    }
    Ok(out)
}

/// Reads at most `max` bytes of `p` (a larger file is refused).
fn read_bounded(p: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(p).map_err(|e| CoreError::io(p, e))?;
    let mut b = vec![];
    f.take(max + 1)
        .read_to_end(&mut b)
        .map_err(|e| CoreError::io(p, e))?;
    if b.len() as u64 > max {
        return Err(inval(format!("{}: larger than {max} bytes", p.display())));
    }
    Ok(b)
}
