//! The node root's layout. Every path Berth touches is derived here, from validated input.

use crate::config::NodeConfig;
use crate::fsutil;
use crate::validate::{validate_name, CtId};
use crate::{CoreError, Result};
use std::path::{Path, PathBuf};

/// Default node root, like vzctl's /vz.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";

/// A node root directory (`--root` / `BERTH_ROOT`, default `/var/lib/berth`).
#[derive(Debug, Clone)]
pub struct NodeRoot {
    root: PathBuf,
}

impl NodeRoot {
    /// A relative root is made absolute (against the current directory) here: the
    /// runtime, the monitor and mount paths all need the same absolute path (a relative
    /// `--root` failed `start` with an OCI spec error and left mounts behind).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        NodeRoot { root }
    }
    pub fn path(&self) -> &Path {
        &self.root
    }
    pub fn node_toml(&self) -> PathBuf {
        self.root.join("node.toml")
    }
    pub fn templates_dir(&self) -> PathBuf {
        self.root.join("templates")
    }
    /// `templates/<name>`; `name` must be valid (checked).
    pub fn template_dir(&self, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        Ok(self.templates_dir().join(name))
    }
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    /// `containers/<ctid>`: the private area (config, virtual disk).
    pub fn ct_dir(&self, id: CtId) -> PathBuf {
        self.containers_dir().join(id.to_string())
    }
    pub fn ct_config(&self, id: CtId) -> PathBuf {
        self.ct_dir(id).join("config.toml")
    }
    pub fn ct_disk(&self, id: CtId) -> PathBuf {
        self.ct_dir(id).join("disk.img")
    }
    /// Journal of a multi-step operation in progress on the container.
    pub fn ct_journal(&self, id: CtId) -> PathBuf {
        self.ct_dir(id).join("op.toml")
    }
    /// Persistent console log (kept across restarts, bounded).
    pub fn ct_console_log(&self, id: CtId) -> PathBuf {
        self.ct_dir(id).join("console.log")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    /// `run/<ctid>`: runtime state of a running container (mounts, bundle, monitor state).
    pub fn ct_run_dir(&self, id: CtId) -> PathBuf {
        self.run_dir().join(id.to_string())
    }
    /// Root-only directory for host-side mounts of virtual disks without ID mapping.
    pub fn raw_mounts_dir(&self) -> PathBuf {
        self.run_dir().join(".raw")
    }
    /// Directory where the OCI runtime keeps its per-container state.
    pub fn runtime_state_dir(&self) -> PathBuf {
        self.run_dir().join("runtime")
    }
    /// Where the node's copy of Berth's supervisor binary lives (`run/init/`).
    pub fn supervisor_dir(&self) -> PathBuf {
        self.run_dir().join("init")
    }
    pub fn locks_dir(&self) -> PathBuf {
        self.run_dir().join("locks")
    }
    pub fn ct_lock(&self, id: CtId) -> PathBuf {
        self.locks_dir().join(format!("{id}.lock"))
    }
    /// Held by a container's monitor for its whole life (passed to it by `start`): while it
    /// is held, the container is not fully stopped.
    pub fn monitor_lock(&self, id: CtId) -> PathBuf {
        self.locks_dir().join(format!("{id}.monitor"))
    }
    pub fn node_lock(&self) -> PathBuf {
        self.locks_dir().join("node.lock")
    }
    pub fn networks_dir(&self) -> PathBuf {
        self.root.join("networks")
    }
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// Creates the directory skeleton (idempotent) and gives it its modes, also on a node
    /// root made by an older Berth (see docs/storage.md, "Permissions"):
    ///
    /// - the node root and `run/` are `0711`: every container's mapped root user must
    ///   traverse them to reach its own `run/<ctid>/` (the overlay is mounted inside the
    ///   container's user namespace, with its credentials), but no one else lists them;
    /// - everything else is root-only (`0700`, files `0600`): templates (their trees hold
    ///   setuid files and, from tarballs, device nodes), containers (disk images, configs,
    ///   logs), locks (a host user holding one would block Berth), networks, backups, the
    ///   OCI runtime's state, and `run/.raw/`, where a disk is mounted without ID mapping
    ///   (on-disk uid 0 is host root there).
    pub fn create_layout(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        fsutil::create_dir_all(&self.root)?;
        let meta = std::fs::metadata(&self.root).map_err(|e| CoreError::io(&self.root, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        fsutil::ensure_mode(&self.root, (mode & 0o7700) | 0o011)?;
        for (d, mode) in [
            (self.templates_dir(), 0o700),
            (self.containers_dir(), 0o700),
            (self.run_dir(), 0o711),
            (self.runtime_state_dir(), 0o700),
            (self.locks_dir(), 0o700),
            (self.raw_mounts_dir(), 0o700),
            (self.supervisor_dir(), 0o700),
            (self.networks_dir(), 0o700),
            (self.backups_dir(), 0o700),
        ] {
            fsutil::create_dir_mode(&d, mode)?;
        }
        fsutil::ensure_mode(&self.node_toml(), 0o600)?;
        Ok(())
    }

    /// Creates `run/<ctid>/` (or fixes it) as `root:<group> 0710`: root and the container's
    /// mapped root group (`group`, its `host_base`) traverse it, nobody lists it, and no other
    /// host user reaches into it. Without a group (a privileged container, whose root is host
    /// root), it is `root:root 0700`. libcontainer looks up the overlay's layers and the
    /// supervisor's bind mount below it with the container's credentials.
    pub fn create_ct_run_dir(&self, id: CtId, group: Option<u32>) -> Result<PathBuf> {
        let run = self.ct_run_dir(id);
        fsutil::create_dir_all(&run)?;
        self.secure_ct_run_dir(id, group)?;
        Ok(run)
    }

    /// Gives an existing `run/<ctid>/` the owner and mode of [`Self::create_ct_run_dir`]
    /// (a missing one is left missing).
    pub fn secure_ct_run_dir(&self, id: CtId, group: Option<u32>) -> Result<()> {
        let run = self.ct_run_dir(id);
        match group {
            Some(g) => fsutil::ensure_owner_mode(&run, 0, g, 0o710),
            None => fsutil::ensure_owner_mode(&run, 0, 0, 0o700),
        }
    }

    /// Gives a container's private area its modes: the directory `0700`, every file in it
    /// `0600` (disk image, config, logs, journal). Fixes what an older Berth left (0644 disk
    /// images, 0755 directories).
    pub fn secure_ct_dir(&self, id: CtId) -> Result<()> {
        let dir = self.ct_dir(id);
        fsutil::ensure_mode(&dir, 0o700)?;
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(CoreError::io(&dir, e)),
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                fsutil::ensure_mode(&e.path(), 0o600)?;
            }
        }
        Ok(())
    }

    /// Gives every template directory (`templates/<name>/`) mode `0700` and its manifest
    /// `0600`. The tree itself (`rootfs/`) keeps its modes: its root's mode is the mode of
    /// `/` inside the containers.
    pub fn secure_templates(&self) -> Result<()> {
        let dir = self.templates_dir();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                fsutil::ensure_mode(&e.path(), 0o700)?;
                fsutil::ensure_mode(&e.path().join("template.toml"), 0o600)?;
            }
        }
        Ok(())
    }

    /// Loads `node.toml`, or says that the node needs `berth node init`.
    pub fn load_node_config(&self) -> Result<NodeConfig> {
        let p = self.node_toml();
        if !p.exists() {
            return Err(CoreError::NodeNotInitialised(self.root.clone()));
        }
        NodeConfig::load(&p)
    }

    /// CTIDs with a directory under `containers/` (complete or not).
    pub fn list_ct_dirs(&self) -> Result<Vec<CtId>> {
        let dir = self.containers_dir();
        let mut out = vec![];
        let rd = std::fs::read_dir(&dir).map_err(|e| CoreError::io(&dir, e))?;
        for e in rd.flatten() {
            if let Some(id) = e.file_name().to_str().and_then(|s| CtId::parse(s).ok()) {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_derived_from_validated_input() {
        let r = NodeRoot::new("/x");
        assert_eq!(
            r.ct_config(CtId(101)),
            PathBuf::from("/x/containers/101/config.toml")
        );
        assert!(r.template_dir("../etc").is_err());
        assert_eq!(
            r.template_dir("busybox").unwrap(),
            PathBuf::from("/x/templates/busybox")
        );
    }

    #[test]
    fn uninitialised_root_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let err = NodeRoot::new(d.path()).load_node_config().unwrap_err();
        assert!(err.to_string().contains("is not initialised"), "{err}");
        // The CLI's advice comes from the cause (crates/berth/src/hints.rs).
        assert!(matches!(
            err.cause(),
            Some(berth_api::Cause::NodeNotInitialised { .. })
        ));
    }

    #[test]
    fn layout_is_root_only_except_traversal() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let r = NodeRoot::new(d.path().join("n"));
        std::fs::create_dir(r.path()).unwrap();
        std::fs::set_permissions(r.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(r.path().join("containers")).unwrap();
        std::fs::set_permissions(
            r.path().join("containers"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        r.create_layout().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(r.path()), 0o711);
        assert_eq!(mode(&r.containers_dir()), 0o700);
        assert_eq!(mode(&r.templates_dir()), 0o700);
        assert_eq!(mode(&r.run_dir()), 0o711);
        assert_eq!(mode(&r.locks_dir()), 0o700);
        assert_eq!(mode(&r.raw_mounts_dir()), 0o700);
    }
}
