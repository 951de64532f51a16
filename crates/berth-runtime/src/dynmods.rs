//! Fast cgroup migrations: the kernel's `favordynmods` mode.
//!
//! Moving a process into a cgroup (what the runtime does for every start and every `exec`)
//! takes the kernel's global `cgroup_threadgroup_rwsem` for writing. In its default mode the
//! first writer after a quiet spell waits for a full RCU grace period: 6-27 ms measured on
//! this kind of machine, on every container start. A cgroup hierarchy mounted with the
//! `favordynmods` option switches that lock, for as long as the hierarchy exists, to the mode
//! where writers are cheap (0.1 ms) and forks and exits pay a slightly dearer read lock.
//! For a node whose job is to create and move processes between containers, that is the
//! right trade (see ADR 0008).
//!
//! Berth mounts an empty named cgroup v1 hierarchy (`name=berth-dynmods`, no controllers,
//! no processes) with that option at [`MOUNT_POINT`], once per boot, shared by every node
//! root. It changes nothing else on the host. `BERTH_FAVORDYNMODS=0` leaves it out.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Where the hierarchy is mounted (host-wide, on the /run tmpfs: gone at reboot).
pub const MOUNT_POINT: &str = "/run/berth/cgroup-dynmods";

/// Mounts the hierarchy unless it is there already or the administrator opted out.
/// Best effort: on failure (a kernel without cgroup v1, say) Berth works as before.
pub fn ensure() {
    if std::env::var("BERTH_FAVORDYNMODS").is_ok_and(|v| v == "0") {
        return;
    }
    let mp = Path::new(MOUNT_POINT);
    let parent = mp.parent().expect("absolute path");
    if let (Ok(a), Ok(b)) = (std::fs::metadata(mp), std::fs::metadata(parent)) {
        if a.dev() != b.dev() {
            return; // mounted
        }
    }
    if let Err(e) = mount(mp) {
        tracing::debug!("favordynmods cgroup hierarchy not mounted: {e}");
    }
}

fn mount(mp: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(mp)?;
    nix::mount::mount(
        Some("cgroup"),
        mp,
        Some("cgroup"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("none,name=berth-dynmods,favordynmods"),
    )
    .map_err(std::io::Error::from)
}

/// True if the hierarchy is mounted (for `node info` and tests).
pub fn active() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.contains(" cgroup ") && l.contains("name=berth-dynmods"))
        })
        .unwrap_or(false)
}
