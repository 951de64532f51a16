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
    pub fn new(root: impl Into<PathBuf>) -> Self {
        NodeRoot { root: root.into() }
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

    /// Creates the directory skeleton (idempotent).
    pub fn create_layout(&self) -> Result<()> {
        for d in [
            self.root.clone(),
            self.templates_dir(),
            self.containers_dir(),
            self.run_dir(),
            self.runtime_state_dir(),
            self.locks_dir(),
            self.networks_dir(),
            self.backups_dir(),
        ] {
            fsutil::create_dir_all(&d)?;
        }
        use std::os::unix::fs::PermissionsExt;
        // Containers' mapped root users must traverse the node root to reach their rootfs:
        // give "others" search (not read) permission if it lacks it (e.g. a mktemp -d root).
        let meta = std::fs::metadata(&self.root).map_err(|e| CoreError::io(&self.root, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o011 != 0o011 {
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(mode | 0o011))
                .map_err(|e| CoreError::io(&self.root, e))?;
        }
        // run/.raw/ holds containers' disks mounted without ID mapping (on-disk uid 0 is host
        // root there) while they start: no host user but root may reach into it.
        let raw = self.raw_mounts_dir();
        fsutil::create_dir_all(&raw)?;
        std::fs::set_permissions(&raw, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| CoreError::io(&raw, e))?;
        Ok(())
    }

    /// Loads `node.toml`, or says that the node needs `berth node init`.
    pub fn load_node_config(&self) -> Result<NodeConfig> {
        let p = self.node_toml();
        if !p.exists() {
            return Err(CoreError::NodeNotInitialised(self.root.clone()));
        }
        fsutil::read_toml(&p)
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
        assert!(err.to_string().contains("berth node init"));
    }
}
