//! Builds the OCI runtime spec of a container from its config: namespaces (including a user
//! namespace with the container's own ID range), the overlay root mounted inside them,
//! masked and read-only paths, a device allowlist, a bounded capability set and a seccomp
//! deny-list of the known escape syscalls.

use crate::{Result, RuntimeError};
use berth_core::ContainerConfig;
use berth_storage::rootfs::PreparedRootfs;
use libcontainer::oci_spec::runtime::Spec;
use serde_json::{json, Value};

/// Capabilities kept by container root. Dropped, among others: SYS_MODULE, SYS_RAWIO,
/// SYS_TIME, MAC_ADMIN, MAC_OVERRIDE, SYSLOG, WAKE_ALARM, BLOCK_SUSPEND, AUDIT_CONTROL,
/// LINUX_IMMUTABLE, SYS_PACCT, BPF, PERFMON. In an unprivileged container the kept ones act
/// only on what the container's own namespaces own.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
];

/// Syscalls refused with EPERM: kernel modules, kexec, file-handle escapes, host time,
/// swap, accounting, kernel keyring (not namespaced), raw I/O ports, BPF and perf.
pub const DENIED_SYSCALLS: &[&str] = &[
    "kexec_load",
    "kexec_file_load",
    "open_by_handle_at",
    "name_to_handle_at",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "iopl",
    "ioperm",
    "swapon",
    "swapoff",
    "acct",
    "lookup_dcookie",
    "add_key",
    "keyctl",
    "request_key",
    "nfsservctl",
    "uselib",
    "_sysctl",
    "ustat",
    "sysfs",
    "settimeofday",
    "clock_settime",
    "adjtimex",
    "clock_adjtime",
    "bpf",
    "perf_event_open",
];

/// Hidden from the container (bind of /dev/null or an empty read-only tmpfs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/sysrq-trigger",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    // The host's block devices: their names and sizes, and each loop device's backing file,
    // the host path of every running container's disk image (`loop/backing_file`). A
    // container has no block device of its own (the device cgroup refuses them all).
    "/proc/partitions",
    "/sys/block",
    "/sys/class/block",
    "/sys/dev/block",
    "/sys/devices/virtual/block",
    // Per-device filesystem and writeback counters name every loop device and show the
    // other containers' I/O (ext4's lifetime_write_kbytes, bdi stats).
    "/proc/fs/ext4",
    "/sys/fs/ext4",
    "/sys/fs/xfs",
    "/sys/class/bdi",
    "/sys/devices/virtual/bdi",
];

/// Visible but read-only.
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"];

/// Character devices the container may use (major, minor; -1 = any): null, zero, full,
/// random, urandom, tty, console, ptmx, pty slaves, tun, fuse.
pub const ALLOWED_CHAR_DEVICES: &[(i64, i64)] = &[
    (1, 3),
    (1, 5),
    (1, 7),
    (1, 8),
    (1, 9),
    (5, 0),
    (5, 1),
    (5, 2),
    (136, -1),
    (10, 200),
    (10, 229),
];

/// Everything the spec needs besides the config.
pub struct SpecInput<'a> {
    pub cfg: &'a ContainerConfig,
    pub runtime_id: &'a str,
    /// Empty directory used as `root.path`; the overlay is mounted on it.
    pub root_path: &'a str,
    pub rootfs: &'a PreparedRootfs,
    pub init: &'a [String],
    pub host: crate::resources::HostInfo,
    /// Where the monitor takes the seccomp listeners of joined processes, whose `sysinfo` it
    /// answers with the container's values (crate::sysinfo); kept in the annotation
    /// [`SYSINFO_ANNOTATION`] for `exec`. None: `sysinfo` is the kernel's.
    pub seccomp_listener: Option<&'a str>,
}

/// Annotation naming the monitor's sysinfo socket.
pub const SYSINFO_ANNOTATION: &str = "org.berth.sysinfo";

/// Default environment of init and of processes joining the container.
pub fn default_env() -> Vec<String> {
    vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "container=berth".into(),
        "TERM=linux".into(),
        "HOME=/root".into(),
    ]
}

/// The kept capabilities that this process's bounding set still has: asking for one the host
/// has dropped (e.g. CAP_SYS_RESOURCE on some VMs) makes capset fail with EPERM.
pub fn effective_capabilities() -> Vec<&'static str> {
    let bnd = caps::read(None, caps::CapSet::Bounding).ok();
    CAPABILITIES
        .iter()
        .copied()
        .filter(|c| {
            let (Some(b), Ok(cap)) = (&bnd, c.parse::<caps::Capability>()) else {
                return true;
            };
            b.contains(&cap)
        })
        .collect()
}

/// Kernel number of a capability name (`CAP_CHOWN` is 0), from the `caps` crate's table.
pub fn cap_number(name: &str) -> Option<u32> {
    name.parse::<caps::Capability>()
        .ok()
        .map(|c| u32::from(c.index()))
}

/// Capabilities that act only in the host's user namespace: an unprivileged container can
/// hold them and still not use them (the kernel checks them against the initial namespace).
pub const HOST_ONLY_CAPABILITIES: &[&str] = &[
    "CAP_SYS_TIME",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_CONTROL",
    "CAP_LINUX_IMMUTABLE",
];

/// `net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN` as the kernel's name, if it is one.
pub fn capability_name(s: &str) -> Option<String> {
    let up = s.to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    full.parse::<caps::Capability>().ok().map(|_| full)
}

/// The container's capabilities: the default set with its config's changes, within what
/// this process's bounding set still has.
pub fn container_capabilities(cfg: &ContainerConfig) -> Vec<String> {
    let bnd = caps::read(None, caps::CapSet::Bounding).ok();
    let mut v: Vec<String> = effective_capabilities()
        .iter()
        .map(|c| c.to_string())
        .collect();
    for (name, on) in &cfg.capabilities {
        let Some(full) = capability_name(name) else {
            continue;
        };
        v.retain(|c| *c != full);
        let held = match (&bnd, full.parse::<caps::Capability>()) {
            (Some(b), Ok(c)) => b.contains(&c),
            _ => true,
        };
        if *on && held {
            v.push(full);
        }
    }
    v
}

fn process_json(args: &[String], env: &[String], caps: &[String]) -> Value {
    json!({
        // init's stdio is the container's /dev/console: a pty of its own devpts, whose
        // master the monitor holds (crate::console::attach)
        "terminal": true,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": env,
        "cwd": "/",
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": [],
            "ambient": [],
        },
        "noNewPrivileges": false,
    })
}

/// Builds the JSON form of the spec (kept separate so unit tests can inspect it).
pub fn spec_json(input: &SpecInput) -> Value {
    let cfg = input.cfg;
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "network"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    let mut resources =
        crate::resources::resources_json(cfg, &input.host, input.rootfs.disk_dev, false);
    resources["devices"] = devices_json();
    // Forwarded host devices (berth set --device-add): allowed, and created inside (the
    // runtime binds the host's node; views.rs replaces it with one owned by the container's
    // root).
    let mut devs = vec![];
    for d in cfg.devices.iter().filter(|d| d.validate().is_ok()) {
        if let Some(a) = resources["devices"].as_array_mut() {
            a.push(json!({"allow": true, "type": d.kind, "major": d.major, "minor": d.minor, "access": d.access}));
        }
        devs.push(json!({
            "path": d.path, "type": d.kind, "major": d.major, "minor": d.minor,
            "fileMode": if d.access == "r" { 0o400 } else { 0o600 }, "uid": 0, "gid": 0,
        }));
    }
    let mut linux = json!({
        "cgroupsPath": format!("/{}", input.runtime_id),
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
        "resources": resources,
        "seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": DENIED_SYSCALLS, "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                // userfaultfd only for faults in user mode (UFFD_USER_MODE_ONLY, bit 0):
                // one that can stall the kernel's own copies widens race windows
                // (whatever the host's vm.unprivileged_userfaultfd says). libcontainer 0.7
                // takes valueTwo as the mask and value as the datum (runc the other way):
                // this is (flags & 1) == 0.
                {"names": ["userfaultfd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "args": [{"index": 0, "value": 0, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
            ],
        },
    });
    if let (false, Some(map)) = (cfg.privileged, cfg.idmap) {
        namespaces.push(json!({"type": "user"}));
        let m = json!([{"containerID": 0, "hostID": map.host_base, "size": map.size}]);
        linux["uidMappings"] = m.clone();
        linux["gidMappings"] = m;
    }
    linux["namespaces"] = Value::Array(namespaces);
    if !devs.is_empty() {
        linux["devices"] = Value::Array(devs);
    }
    // Relative to run/<ctid>/ (the monitor's working directory while the runtime mounts):
    // no host path in the container's mountinfo (ADR 0011).
    // (A node root given as a relative path keeps absolute options: the monitor changes
    // directory only for an absolute one.)
    let root_path = std::path::Path::new(input.root_path);
    let mut overlay = match root_path.parent() {
        Some(base) if root_path.is_absolute() => input.rootfs.overlay_options_relative(base),
        _ => input.rootfs.overlay_options(),
    };
    if !cfg.privileged {
        // Mounted inside the container's user namespace, overlayfs cannot set its trusted.*
        // xattrs: without `userxattr` it cannot mark a directory opaque, and removing a
        // template directory that has entries fails with EIO (`rm -rf /etc/init.d`,
        // package upgrades). user.overlay.* xattrs work there.
        overlay.push("userxattr".into());
    }
    let mut mounts = vec![json!({
        "destination": "/",
        "type": "overlay",
        // What `df` and `mount` show inside as the root's filesystem.
        "source": format!("berth-{}", cfg.ctid),
        "options": overlay,
    })];
    mounts.extend([
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ]);
    let mut annotations = json!({"org.berth.ctid": cfg.ctid.to_string()});
    if let Some(p) = input.seccomp_listener {
        annotations[SYSINFO_ANNOTATION] = json!(p);
    }
    json!({
        "ociVersion": "1.0.2",
        "root": {"path": input.root_path, "readonly": false},
        "hostname": cfg.effective_hostname(),
        "process": process_json(input.init, &default_env(), &container_capabilities(cfg)),
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    })
}

fn devices_json() -> Value {
    let mut v = vec![
        json!({"allow": false, "access": "rwm"}),
        // mknod of any node is allowed (opening is not): package installs create device nodes
        json!({"allow": true, "type": "c", "access": "m"}),
        json!({"allow": true, "type": "b", "access": "m"}),
    ];
    for (major, minor) in ALLOWED_CHAR_DEVICES {
        let mut d = json!({"allow": true, "type": "c", "major": major, "access": "rwm"});
        if *minor >= 0 {
            d["minor"] = json!(minor);
        }
        v.push(d);
    }
    Value::Array(v)
}

/// The typed spec (validated by `oci-spec`).
pub fn build_spec(input: &SpecInput) -> Result<Spec> {
    serde_json::from_value(spec_json(input)).map_err(|e| RuntimeError::Spec(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::config::{DiskConfig, IdMap};
    use berth_core::{CtId, Size};
    use std::path::PathBuf;

    #[test]
    fn capability_numbers_are_the_kernels() {
        assert_eq!(cap_number("CAP_CHOWN"), Some(0));
        assert_eq!(cap_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(cap_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(cap_number("CAP_NOPE"), None);
        assert!(CAPABILITIES.iter().all(|c| cap_number(c).is_some()));
    }

    fn cfg(privileged: bool) -> ContainerConfig {
        ContainerConfig {
            name: Some("web1".into()),
            hostname: Some("web1.local".into()),
            privileged,
            idmap: (!privileged).then_some(IdMap {
                host_base: 165536,
                size: 65536,
            }),
            ..ContainerConfig::new(CtId(101), "busybox", DiskConfig::new(Size(1 << 30)))
        }
    }

    fn rootfs() -> PreparedRootfs {
        PreparedRootfs {
            lowerdirs: vec![PathBuf::from("/r/layers/0"), PathBuf::from("/r/layers/1")],
            upperdir: PathBuf::from("/r/private/upper"),
            workdir: PathBuf::from("/r/private/work"),
            disk_dev: Some((7, 3)),
        }
    }

    fn input<'a>(
        c: &'a ContainerConfig,
        r: &'a PreparedRootfs,
        init: &'a [String],
    ) -> SpecInput<'a> {
        SpecInput {
            cfg: c,
            runtime_id: "berth-abc-101",
            root_path: "/r/root",
            rootfs: r,
            init,
            host: crate::resources::HostInfo {
                cpus: 2,
                swap_accounting: true,
                io_weight: true,
            },
            seccomp_listener: Some("/r/seccomp.sock"),
        }
    }

    #[test]
    fn unprivileged_spec() {
        let (c, r, init) = (cfg(false), rootfs(), vec!["/sbin/init".to_string()]);
        let input = input(&c, &r, &init);
        let spec = build_spec(&input).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<String> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| format!("{:?}", n.typ()))
            .collect();
        for want in ["Pid", "Network", "Ipc", "Uts", "Mount", "Cgroup", "User"] {
            assert!(ns.iter().any(|n| n == want), "{want} in {ns:?}");
        }
        let m = &linux.uid_mappings().as_ref().unwrap()[0];
        assert_eq!(
            (m.container_id(), m.host_id(), m.size()),
            (0, 165536, 65536)
        );
        assert_eq!(spec.hostname().as_deref(), Some("web1.local"));
        let root_mount = &spec.mounts().as_ref().unwrap()[0];
        assert_eq!(root_mount.destination(), &PathBuf::from("/"));
        let opts = root_mount.options().as_ref().unwrap();
        assert_eq!(opts[0], "lowerdir=layers/0:layers/1");
        assert_eq!(opts[1], "upperdir=private/upper");
        assert_eq!(opts[2], "workdir=private/work");
        assert_eq!(
            root_mount.source().as_deref(),
            Some(std::path::Path::new("berth-101"))
        );
        let seccomp = linux.seccomp().as_ref().unwrap();
        let denied = seccomp.syscalls().as_ref().unwrap()[0].names();
        for s in [
            "kexec_load",
            "open_by_handle_at",
            "init_module",
            "finit_module",
            "delete_module",
        ] {
            assert!(denied.iter().any(|d| d == s));
        }
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        let bounding: Vec<String> = caps
            .bounding()
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert!(!bounding.iter().any(|c| c.contains("SYS_MODULE")));
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore"));
    }

    #[test]
    fn sysinfo_goes_to_the_monitor() {
        let (c, r, init) = (cfg(false), rootfs(), vec!["/sbin/init".to_string()]);
        let v = spec_json(&input(&c, &r, &init));
        assert_eq!(v["annotations"][SYSINFO_ANNOTATION], "/r/seccomp.sock");
        // Berth's own filter does it (crate::sysinfo), not a rule of the spec's.
        assert!(v["linux"]["seccomp"].get("listenerPath").is_none());
        build_spec(&input(&c, &r, &init)).unwrap();
    }

    #[test]
    fn privileged_has_no_user_namespace() {
        let (c, r, init) = (cfg(true), rootfs(), vec!["/sbin/init".to_string()]);
        let input = input(&c, &r, &init);
        let v = spec_json(&input);
        assert!(!v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "user"));
        assert!(v["linux"].get("uidMappings").is_none());
    }
}
