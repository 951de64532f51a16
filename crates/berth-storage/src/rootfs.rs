//! Prepares the layers of a container's root filesystem before start and removes them after
//! stop. Under `run/<ctid>/`:
//!
//! - `private/`: the container's virtual disk (loop device, ext4 or XFS), idmapped to its user namespace;
//! - `layers/<n>/`: each read-only template layer (app templates, then the OS template), idmapped.
//!
//! The runtime then mounts `overlay(lowerdir=layers…, upperdir=private/upper, workdir=private/work)`
//! inside the container's user and mount namespaces. Privileged containers get plain binds.

use crate::{disk, loopdev, mounts, safefs, userns, Result, StorageError};
use berth_core::crash::crash_point;
use berth_core::{ContainerConfig, CtId, DiskFs, NodeRoot};
use std::fs;
use std::path::{Path, PathBuf};

/// The host paths of a prepared container root.
#[derive(Debug, Clone)]
pub struct PreparedRootfs {
    /// Read-only layers, top-most first.
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: PathBuf,
    pub workdir: PathBuf,
    /// (major, minor) of the virtual disk's loop device, for I/O limits and statistics.
    pub disk_dev: Option<(u64, u64)>,
}

impl PreparedRootfs {
    /// Options of the overlay mount (`lowerdir=a:b,upperdir=…,workdir=…`).
    pub fn overlay_options(&self) -> Vec<String> {
        let lower: Vec<String> = self
            .lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        vec![
            format!("lowerdir={}", lower.join(":")),
            format!("upperdir={}", self.upperdir.display()),
            format!("workdir={}", self.workdir.display()),
        ]
    }

    /// The same options with each path relative to `base` (the container's `run/<ctid>/`)
    /// when it lies below it: overlayfs shows its options as they were given, in the
    /// container's own mountinfo, so host paths given there are shown to the container
    /// (ADR 0011). The mount must then be made with `base` as the working directory.
    pub fn overlay_options_relative(&self, base: &Path) -> Vec<String> {
        let rel = |p: &Path| -> String {
            match p.strip_prefix(base) {
                Ok(r) if !r.as_os_str().is_empty() => r.display().to_string(),
                _ => p.display().to_string(),
            }
        };
        let lower: Vec<String> = self.lowerdirs.iter().map(|p| rel(p)).collect();
        vec![
            format!("lowerdir={}", lower.join(":")),
            format!("upperdir={}", rel(&self.upperdir)),
            format!("workdir={}", rel(&self.workdir)),
        ]
    }
}

/// A file Berth writes into the container's upper layer at start (hostname, later resolv.conf…).
pub struct InjectedFile {
    pub path: &'static str,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// Largest /etc/hosts Berth edits (block lists run to megabytes; a larger one is left alone
/// rather than read in part).
const MAX_HOSTS: u64 = 16 << 20;

/// What a file of the container is, seen without following a symlink it made.
enum Found {
    File(Vec<u8>),
    Absent,
    /// A symlink, a whiteout (deleted in the container), a directory, or too large: the
    /// container's business.
    Other,
}

fn find_in_tree(tree: &Path, rel: &str) -> Found {
    match safefs::open_in_tree(tree, rel, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => match fs::File::from(fd).metadata() {
            Ok(m) if m.is_file() && m.len() <= MAX_HOSTS => {
                match safefs::read_in_tree(tree, rel, MAX_HOSTS) {
                    Ok(b) => Found::File(b),
                    Err(_) => Found::Other,
                }
            }
            _ => Found::Other,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Found::Absent,
        Err(_) => Found::Other,
    }
}

/// Puts the container's hostname into its /etc/hosts (Berth's one marked line), starting
/// from the container's own file in its upper layer, else the template's.
fn update_hosts(root: &NodeRoot, cfg: &ContainerConfig, upper: &Path) -> Result<()> {
    let rel = "etc/hosts";
    let existing = match find_in_tree(upper, rel) {
        Found::File(b) => Some(b),
        Found::Other => return Ok(()),
        Found::Absent => {
            let mut found = None;
            for layer in cfg.layers() {
                match find_in_tree(&root.template_dir(&layer)?.join("rootfs"), rel) {
                    Found::File(b) => {
                        found = Some(b);
                        break;
                    }
                    Found::Other => return Ok(()),
                    Found::Absent => {}
                }
            }
            found
        }
    };
    let text = existing.map(|b| String::from_utf8_lossy(&b).into_owned());
    let new = berth_core::hosts::with_hostname(text.as_deref(), &cfg.effective_hostname());
    if text.as_deref() == Some(new.as_str()) {
        return Ok(());
    }
    safefs::write_file_in(upper, rel, new.as_bytes(), 0o644, 0, 0)
}

fn mkdir(p: &Path) -> Result<()> {
    fs::create_dir_all(p).map_err(|e| StorageError::io(p, e))
}

/// Mounts the container's disk and layers under `run/<ctid>/`, writes `files` into its upper
/// layer, and returns the overlay's paths. On error, everything done so far is undone.
pub fn prepare(
    root: &NodeRoot,
    cfg: &ContainerConfig,
    files: &[InjectedFile],
) -> Result<PreparedRootfs> {
    let res = prepare_inner(root, cfg, Some(files));
    if res.is_err() {
        let _ = teardown(root, cfg.ctid);
    }
    res
}

/// Mounts a stopped container's disk and layers as [`prepare`] does, without writing
/// anything into it: for reading and changing its files in its own view (`berth file`,
/// `berth user`), with the container's lock held. [`teardown`] undoes it (and so does the
/// recovery of a stopped container's leftovers, after a crash).
pub fn prepare_access(root: &NodeRoot, cfg: &ContainerConfig) -> Result<PreparedRootfs> {
    let res = prepare_inner(root, cfg, None);
    if res.is_err() {
        let _ = teardown(root, cfg.ctid);
    }
    res
}

fn prepare_inner(
    root: &NodeRoot,
    cfg: &ContainerConfig,
    files: Option<&[InjectedFile]>,
) -> Result<PreparedRootfs> {
    // Only root and the container's root group may traverse run/<ctid>/: the mounts below
    // are the container's data (its setuid files, its device nodes, its secrets).
    let run = root.create_ct_run_dir(cfg.ctid, cfg.host_root_id())?;
    let raw = root.raw_mounts_dir().join(cfg.ctid.to_string());
    let private = run.join("private");
    let layers = run.join("layers");
    for d in [&raw, &private, &layers] {
        mkdir(d)?;
    }
    let image = root.ct_disk(cfg.ctid);
    let dev = loopdev::attach(&image)?;
    crash_point("start:monitor-after-loop");
    let disk_dev = loopdev::dev_numbers(&dev.path);
    if let Err(e) = mounts::mount_disk(&dev.path, &raw, cfg.disk.fstype) {
        let _ = loopdev::detach(&dev.path);
        return Err(e);
    }
    drop(dev);
    crash_point("start:monitor-after-disk-mount");
    // Injected files are written on the raw disk, where ownership is container-native (0-based).
    if let Some(files) = files {
        for f in files {
            safefs::write_file_in(&raw.join("upper"), f.path, &f.content, f.mode, 0, 0)?;
        }
        update_hosts(root, cfg, &raw.join("upper"))?;
    }
    let mut lowerdirs = vec![];
    // Privileged containers get plain binds (no ID mapping); either way, the host-side
    // mounts are nosuid,nodev,noexec and the layers read-only.
    let ns = match cfg.idmap.as_ref().filter(|_| !cfg.privileged) {
        Some(map) => Some(userns::userns_fd(map)?),
        None => None,
    };
    mounts::clone_mount(&raw, &private, ns.as_ref(), mounts::ATTR_HOST_DATA)?;
    mounts::unmount(&raw)?;
    crash_point("start:monitor-after-private-mount");
    for (i, layer) in cfg.layers().iter().enumerate() {
        let src = root.template_dir(layer)?.join("rootfs");
        let dst = layers.join(i.to_string());
        mkdir(&dst)?;
        mounts::clone_mount(
            &src,
            &dst,
            ns.as_ref(),
            mounts::ATTR_HOST_DATA | mounts::ATTR_RDONLY,
        )?;
        lowerdirs.push(dst);
    }
    crash_point("start:monitor-after-layers");
    Ok(PreparedRootfs {
        lowerdirs,
        upperdir: private.join("upper"),
        workdir: private.join("work"),
        disk_dev,
    })
}

/// Removes every mount under `run/<ctid>/` and detaches the container's loop device(s).
/// Idempotent: used after stop, after a failed start, and by crash recovery.
pub fn teardown(root: &NodeRoot, id: CtId) -> Result<()> {
    let run = root.ct_run_dir(id);
    mounts::unmount_all_under(&run)?;
    let raw = root.raw_mounts_dir().join(id.to_string());
    mounts::unmount_all_under(&raw)?;
    let _ = fs::remove_dir(&raw);
    release_disk(root, id)
}

/// Detaches any loop device still backed by the container's disk image.
pub fn release_disk(root: &NodeRoot, id: CtId) -> Result<()> {
    release_disk_image(&root.ct_disk(id))
}

/// Detaches any loop device still backed by the disk image at `image`.
pub fn release_disk_image(image: &Path) -> Result<()> {
    let image = image.to_path_buf();
    for _ in 0..500 {
        let devs = loopdev::find_by_backing(&image);
        if devs.is_empty() {
            return Ok(());
        }
        for d in &devs {
            loopdev::detach(d)?;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    tracing::warn!(image = %image.display(), "loop device still busy; it will detach when its last user exits");
    Ok(())
}

/// Creates the virtual disk of a new container.
pub fn create_disk(root: &NodeRoot, cfg: &ContainerConfig) -> Result<()> {
    let staging = root.ct_dir(cfg.ctid).join(".staging");
    let _ = fs::remove_dir_all(&staging);
    mkdir(&staging)?;
    let r = disk::create_image_of(
        &root.ct_disk(cfg.ctid),
        cfg.disk.size,
        cfg.disk.fstype,
        cfg.disk.disktype,
        cfg.disk.inodes,
        &staging,
    );
    let _ = fs::remove_dir_all(&staging);
    r
}

/// The host path where a running container's virtual disk is mounted (idmapped).
pub fn mounted_disk_dir(root: &NodeRoot, id: CtId) -> PathBuf {
    root.ct_run_dir(id).join("private")
}

/// The loop device of a running container's virtual disk, if attached.
pub fn disk_device(root: &NodeRoot, id: CtId) -> Option<PathBuf> {
    loopdev::find_by_backing(&root.ct_disk(id))
        .into_iter()
        .next()
}

/// Runs `f` with a stopped container's virtual disk mounted at `run/.raw/<ctid>`
/// (container-native ownership, not idmapped), then unmounts it and detaches the loop device.
pub fn with_raw_mount<T>(
    root: &NodeRoot,
    id: CtId,
    fstype: DiskFs,
    f: impl FnOnce(&Path, &Path) -> Result<T>,
) -> Result<T> {
    with_raw_mount_of(root, &root.ct_disk(id), id, fstype, f)
}

/// [`with_raw_mount`] of the disk image at `image` (a restore's new disk beside the
/// container's own), mounted at `run/.raw/<ctid>`.
pub fn with_raw_mount_of<T>(
    root: &NodeRoot,
    image: &Path,
    id: CtId,
    fstype: DiskFs,
    f: impl FnOnce(&Path, &Path) -> Result<T>,
) -> Result<T> {
    let raw = root.raw_mounts_dir().join(id.to_string());
    mkdir(&raw)?;
    let dev = loopdev::attach(image)?;
    let dev_path = dev.path.clone();
    if let Err(e) = mounts::mount_disk(&dev.path, &raw, fstype) {
        drop(dev);
        let _ = loopdev::detach(&dev_path);
        let _ = fs::remove_dir(&raw);
        return Err(e);
    }
    drop(dev);
    let res = f(&raw, &dev_path);
    let un = mounts::unmount(&raw);
    let _ = fs::remove_dir(&raw);
    let rel = release_disk_image(image);
    let v = res?;
    un?;
    rel?;
    Ok(v)
}
