//! Cgroups the container's root may write to: its own directory in the host's `name=systemd`
//! hierarchy (cgroup v1 and hybrid hosts).
//!
//! systemd as a container's PID 1 must create cgroups (`init.scope`, `system.slice`, one per
//! service) in the hierarchy it tracks processes with. On a v1/hybrid host that is the named
//! hierarchy `name=systemd`, which has no controllers: owning a subtree of it grants no
//! resources, only process grouping. LXC's `cgroup:mixed` does the same. Each container gets
//! `<hierarchy>/<runtime id>/`, owned by its root (the first host id of its range), and its
//! init starts inside it, so that the container's cgroup namespace has that directory as its
//! root and the `name=systemd` mount inside the container shows that subtree only. The
//! controller hierarchies stay owned by the host and read-only to the container.
//!
//! `notify_on_release` and `release_agent` stay the host's: a container must not make the host
//! run a program when its cgroups empty.

use crate::{Result, RuntimeError};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files of a v1 cgroup directory handed to the container's root with the directory.
const DELEGATED_V1_FILES: &[&str] = &["cgroup.procs", "tasks", "cgroup.clone_children"];

/// Where the host mounts the `name=systemd` hierarchy, if it does.
pub fn systemd_hierarchy() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    find_named_hierarchy(&text, "systemd")
}

/// The v1 hierarchies in `/proc/self/mountinfo` text: (super options, mount point) of each
/// mount of a hierarchy's root (a bind of a subtree would nest ours inside).
fn v1_hierarchies(mountinfo: &str) -> impl Iterator<Item = (&str, PathBuf)> {
    mountinfo.lines().filter_map(|line| {
        // "<id> <parent> <maj:min> <root> <mount point> <opts> [optional…] - <type> <src> <super opts>"
        let (pre, post) = line.split_once(" - ")?;
        let mut post = post.split_whitespace();
        if post.next()? != "cgroup" {
            return None;
        }
        let _source = post.next()?;
        let super_opts = post.next()?;
        let mut pre = pre.split_whitespace();
        let root = pre.nth(3)?;
        let point = pre.next()?;
        (root == "/").then(|| {
            (
                super_opts,
                PathBuf::from(berth_storage::mounts::unescape(point)),
            )
        })
    })
}

/// Parses `/proc/self/mountinfo` text for the mount point of the v1 hierarchy `name=NAME`.
fn find_named_hierarchy(mountinfo: &str, name: &str) -> Option<PathBuf> {
    let want = format!("name={name}");
    v1_hierarchies(mountinfo)
        .find_map(|(opts, point)| opts.split(',').any(|o| o == want).then_some(point))
}

/// The v1 controllers libcgroups manages (its `v1::CONTROLLERS`).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// Where a process joining the running container `runtime_id` is written, on a v1 or
/// hybrid host: its directory in each controller hierarchy libcgroups manages, and in the
/// `name=systemd` hierarchy if it has one there. `None` when the host has no v1 controller
/// hierarchy (cgroup v2: libcgroups joins). One read of mountinfo, where libcgroups' v1
/// manager reads it once per controller.
pub fn v1_join_dirs(mountinfo: &str, runtime_id: &str) -> Option<Vec<PathBuf>> {
    let mut dirs = vec![];
    let mut controllers = false;
    for (opts, point) in v1_hierarchies(mountinfo) {
        let ctl = opts.split(',').any(|o| V1_CONTROLLERS.contains(&o));
        controllers |= ctl;
        let named = opts.split(',').any(|o| o == "name=systemd");
        let dir = point.join(runtime_id);
        // The systemd directory exists only for containers started with it.
        if (ctl || (named && dir.is_dir())) && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    controllers.then_some(dirs)
}

/// The container's directory in the `name=systemd` hierarchy (whether or not it exists).
pub fn systemd_dir(runtime_id: &str) -> Option<PathBuf> {
    Some(systemd_hierarchy()?.join(runtime_id))
}

/// Creates the container's `name=systemd` cgroup owned by `uid`:`gid` (the container's root
/// on the host). Returns its path, or `None` when the host has no such hierarchy (pure
/// cgroup v2 hosts, where systemd uses the unified hierarchy). A directory left by a crash
/// is emptied of sub-cgroups first.
pub fn create_systemd(runtime_id: &str, uid: u32, gid: u32) -> Result<Option<PathBuf>> {
    let Some(dir) = systemd_dir(runtime_id) else {
        return Ok(None);
    };
    remove_tree(&dir);
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(RuntimeError::io(&dir, e)),
    }
    delegate(&dir, DELEGATED_V1_FILES, uid, gid)?;
    Ok(Some(dir))
}

/// Gives `dir` and the listed files in it to `uid`:`gid`.
fn delegate(dir: &Path, files: &[&str], uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| RuntimeError::io(dir, e))?;
    for f in files {
        let p = dir.join(f);
        match std::os::unix::fs::chown(&p, Some(uid), Some(gid)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io(&p, e)),
        }
    }
    Ok(())
}

/// Moves process `pid` (0: the caller) into the cgroup `dir` of a v1 hierarchy.
pub fn attach(dir: &Path, pid: i32) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    fs::OpenOptions::new()
        .write(true)
        .open(&procs)
        .and_then(|mut f| f.write_all(pid.to_string().as_bytes()))
        .map_err(|e| RuntimeError::io(&procs, e))
}

/// The calling process's cgroup in the `name=systemd` hierarchy mounted at `h`.
pub fn own_systemd_cgroup(h: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let _ = it.next()?;
        (it.next()? == "name=systemd").then(|| it.next().map(str::to_owned))?
    })?;
    Some(h.join(rel.trim_start_matches('/')))
}

/// Removes a cgroup directory and every cgroup below it, deepest first, retrying briefly
/// while exiting tasks keep one busy.
pub fn remove_tree(dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if std::time::Instant::now() >= until => {
                tracing::warn!(dir = %dir.display(), "cannot remove cgroup: {e}");
                return;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755
34 33 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu
42 33 0:37 /berth /sys/fs/cgroup/bound rw,relatime - cgroup cgroup rw,name=systemd
43 33 0:37 / /sys/fs/cgroup/sys\\040temd rw,relatime shared:18 - cgroup cgroup rw,name=systemd
44 33 0:38 / /sys/fs/cgroup/unified rw,relatime shared:19 - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_the_named_hierarchy_root_mount() {
        assert_eq!(
            find_named_hierarchy(MOUNTINFO, "systemd"),
            Some(PathBuf::from("/sys/fs/cgroup/sys temd"))
        );
        assert_eq!(find_named_hierarchy(MOUNTINFO, "elogind"), None);
        // A controller hierarchy is not a named one.
        assert_eq!(find_named_hierarchy(MOUNTINFO, "cpu"), None);
    }

    #[test]
    fn join_dirs_cover_each_controller_hierarchy_once() {
        let mi = "\
34 33 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
35 33 0:30 / /sys/fs/cgroup/memory rw,relatime shared:11 - cgroup cgroup rw,memory
36 33 0:31 / /sys/fs/cgroup/misc rw,relatime shared:12 - cgroup cgroup rw,misc
37 33 0:32 /sub /sys/fs/cgroup/bound rw,relatime - cgroup cgroup rw,pids
44 33 0:38 / /sys/fs/cgroup/unified rw,relatime shared:19 - cgroup2 cgroup2 rw
";
        assert_eq!(
            v1_join_dirs(mi, "berth-x-101"),
            Some(vec![
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/berth-x-101"),
                PathBuf::from("/sys/fs/cgroup/memory/berth-x-101"),
            ])
        );
        // A pure v2 host: libcgroups does the joining.
        assert_eq!(
            v1_join_dirs("44 33 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "x"),
            None
        );
    }

    #[test]
    fn delegates_the_directory_and_its_process_files_only() {
        let d = tempfile::tempdir().unwrap();
        for f in ["cgroup.procs", "tasks", "notify_on_release"] {
            fs::write(d.path().join(f), "").unwrap();
        }
        // Handing files to our own ids works unprivileged; other ids (to see which files
        // changed hands) only as root.
        // SAFETY: plain id getters.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        delegate(d.path(), DELEGATED_V1_FILES, uid, gid).unwrap();
        if uid == 0 {
            delegate(d.path(), DELEGATED_V1_FILES, 4242, 4243).unwrap();
            use std::os::unix::fs::MetadataExt;
            let owner = |f: &str| fs::metadata(d.path().join(f)).unwrap().uid();
            assert_eq!(fs::metadata(d.path()).unwrap().uid(), 4242);
            assert_eq!(owner("cgroup.procs"), 4242);
            assert_eq!(owner("tasks"), 4242);
            assert_eq!(owner("notify_on_release"), 0);
        }
    }

    #[test]
    fn removes_nested_directories() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("ct");
        fs::create_dir_all(top.join("system.slice/a.service")).unwrap();
        fs::create_dir_all(top.join("init.scope")).unwrap();
        remove_tree(&top);
        assert!(!top.exists());
    }
}
