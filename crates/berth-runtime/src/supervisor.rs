//! Berth's supervisor as a container's PID 1 (host side). The static `berth-init` binary is
//! embedded in `berth` at build time (see `build.rs`), installed once per node under
//! `run/init/`, copied into `run/<ctid>/berth/init` next to the container's service
//! definitions (`run/<ctid>/berth/services`), and that directory is bind-mounted read-only on
//! `/.berth` inside the container. See docs/adr/0007-static-supervisor.md.
//!
//! `run/<ctid>/berth/` is a tmpfs of its own (source `berth`, `size=0`, 16 inodes): a bind of
//! a directory of the node's filesystem showed the container that filesystem's device (the
//! host's `/dev/vda`, with its size in `df`) and the directory's host path in its mountinfo
//! (docs/inside.md). The copy costs about 1.2 MB of memory per running container.

use crate::{Result, RuntimeError};
use berth_core::services::InitMode;
use berth_core::{fsutil, ContainerConfig, CtId, NodeRoot, TemplateManifest};
use libcontainer::oci_spec::runtime::{Mount, Spec};
use std::path::PathBuf;

/// The static supervisor binary.
pub static INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// Where the supervisor's directory appears inside the container.
pub const MOUNT_POINT: &str = "/.berth";
/// The supervisor inside the container.
pub const INIT_PATH: &str = "/.berth/init";

/// Whether the container runs Berth's supervisor as PID 1: when its config asks for it, and
/// by default on templates without a service manager of their own (busybox).
pub fn uses_supervisor(cfg: &ContainerConfig, template: &TemplateManifest) -> bool {
    match cfg.procs.init {
        InitMode::Berth => true,
        InitMode::Template => false,
        InitMode::Auto => template.source == "busybox",
    }
}

/// `run/<ctid>/berth/`: what is mounted on `/.berth`.
pub fn host_dir(root: &NodeRoot, id: CtId) -> PathBuf {
    root.ct_run_dir(id).join("berth")
}

/// FNV-1a 64 of [`INIT_BINARY`], computed by the build script.
const INIT_HASH: u64 = include!(concat!(env!("OUT_DIR"), "/berth-init.hash"));

/// The node-wide copy of the supervisor binary (written once per binary version), in the
/// root-only `run/init/`; containers reach it only through its hard link in their
/// `run/<ctid>/berth/`.
fn node_binary(root: &NodeRoot) -> Result<PathBuf> {
    let dir = root.supervisor_dir();
    fsutil::create_dir_mode(&dir, 0o700)?;
    let p = dir.join(format!("berth-init-{:016x}", INIT_HASH));
    if std::fs::metadata(&p).map(|m| m.len()).ok() != Some(INIT_BINARY.len() as u64) {
        fsutil::atomic_write(&p, INIT_BINARY, 0o755)?;
    }
    Ok(p)
}

/// Writes the container's service definitions where the supervisor reads them (atomically;
/// the running supervisor picks them up on `reload`).
pub fn write_services(root: &NodeRoot, cfg: &ContainerConfig) -> Result<()> {
    let dir = host_dir(root, cfg.ctid);
    // Read by the supervisor as container root (an unmapped host-root inode is "other" to
    // it); below run/<ctid>/, which only root and the container's root group traverse.
    fsutil::create_dir_mode(&dir, 0o755)?;
    let text = berth_init::proto::render(&cfg.procs.specs());
    fsutil::write_runtime_file(&dir.join("services"), text.as_bytes(), 0o644)?;
    Ok(())
}

/// Installs the supervisor and the services for a start; returns PID 1's command.
pub fn prepare(
    root: &NodeRoot,
    cfg: &ContainerConfig,
    template: &TemplateManifest,
) -> Result<Vec<String>> {
    let bin = node_binary(root)?;
    let dir = host_dir(root, cfg.ctid);
    fsutil::create_dir_mode(&dir, 0o755)?;
    mount_own_tmpfs(&dir)?;
    let dest = dir.join("init");
    fsutil::remove_file_if_exists(&dest)?;
    std::fs::copy(&bin, &dest).map_err(|e| RuntimeError::io(&dest, e))?;
    write_services(root, cfg)?;
    Ok(init_command(template))
}

/// Mounts the tmpfs `berth` on `dir` unless one is there (host root writes it; the container
/// sees it read-only). `size=0`: no block count, so `df` inside leaves it out.
fn mount_own_tmpfs(dir: &std::path::Path) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    if berth_storage::mounts::mounts_under(dir)
        .iter()
        .any(|m| m.as_path() == dir)
    {
        return Ok(());
    }
    mount(
        Some("berth"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=0,nr_inodes=16,mode=0755"),
    )
    .map_err(|e| RuntimeError::sys(format!("mount tmpfs on {}", dir.display()), e))
}

/// PID 1's command: the supervisor, running busybox's boot and shutdown scripts (what the
/// template's inittab would run) and a login prompt on the console (`berth console`) when
/// the template is the busybox one.
pub fn init_command(template: &TemplateManifest) -> Vec<String> {
    let mut v = vec![INIT_PATH.to_string(), "boot".to_string()];
    if template.source == "busybox" {
        v.extend(
            [
                "--rc",
                "/etc/init.d/rcS",
                "--rc-stop",
                "/etc/init.d/rcK",
                "--getty",
                "/sbin/getty",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
    }
    v
}

/// Adds the read-only bind mount of [`host_dir`] on [`MOUNT_POINT`] to the spec.
pub fn add_mount(spec: &mut Spec, root: &NodeRoot, id: CtId) -> Result<()> {
    let m: Mount = serde_json::from_value(serde_json::json!({
        "destination": MOUNT_POINT,
        "type": "bind",
        "source": host_dir(root, id),
        "options": ["rbind", "ro", "nosuid", "nodev"],
    }))
    .map_err(|e| RuntimeError::Spec(e.to_string()))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_time_hash_is_the_embedded_binarys() {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in INIT_BINARY {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        assert_eq!(h, INIT_HASH);
    }

    #[test]
    fn embedded_binary_is_static() {
        // ELF, and no PT_INTERP program header: it needs no dynamic loader.
        let b = INIT_BINARY;
        assert_eq!(&b[..4], b"\x7fELF");
        let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
        let phentsize = u16::from_le_bytes(b[0x36..0x38].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes(b[0x38..0x3a].try_into().unwrap()) as usize;
        for i in 0..phnum {
            let off = phoff + i * phentsize;
            let ptype = u32::from_le_bytes(b[off..off + 4].try_into().unwrap());
            assert_ne!(
                ptype, 3,
                "PT_INTERP found: berth-init is dynamically linked"
            );
        }
    }
}
