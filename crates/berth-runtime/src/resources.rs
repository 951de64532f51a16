//! Maps a container's limits (vzctl names) to the OCI `linux.resources` section and applies
//! them to the container's cgroups through libcgroups, at start (in the spec) and live (on a
//! running container). Also reads usage back from the cgroups.
//!
//! | knob | cgroup v1 | cgroup v2 |
//! | --- | --- | --- |
//! | `--ram` | memory.limit_in_bytes | memory.max |
//! | `--swap` | memory.memsw.limit_in_bytes = ram + swap | memory.swap.max = swap |
//! | `--cpuunits` | cpu.shares = units × 1024 / 1000 | cpu.weight (libcgroups converts) |
//! | `--cpulimit` | cpu.cfs_quota_us / cfs_period_us | cpu.max |
//! | `--cpus`, `--cpumask` | cpuset.cpus | cpuset.cpus |
//! | `--numproc` | pids.max | pids.max |
//! | `--ioprio` | blkio.weight or blkio.bfq.weight | io.weight or io.bfq.weight |
//! | `--iolimit`, `--iopslimit` | blkio.throttle.{read,write}_{bps,iops}_device | io.max |

use crate::{Result, RuntimeError};
use berth_core::resources::NodeCapacity;
use berth_core::ContainerConfig;
use libcgroups::common::{AnyCgroupManager, CgroupManager, ControllerOpt};
use libcontainer::oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// CFS period used with `--cpulimit` (100 ms, the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// What the mapping needs to know of the node.
#[derive(Debug, Clone, Copy)]
pub struct HostInfo {
    pub cpus: u32,
    /// cgroup v1 with swap accounting (memory.memsw.*), or cgroup v2 (memory.swap.max).
    pub swap_accounting: bool,
    /// The block I/O controller has a proportional weight (v1 `blkio.weight`, or
    /// `blkio.bfq.weight` with the BFQ scheduler; v2 `io.weight`): without one (a v1 host whose
    /// disks use mq-deadline), `--ioprio` cannot be applied and is left out of the spec.
    pub io_weight: bool,
}

impl HostInfo {
    pub fn detect() -> Self {
        let v1 = Path::new(CGROUP_ROOT).join("memory");
        let swap_accounting = if v1.is_dir() {
            v1.join("memory.memsw.limit_in_bytes").exists()
        } else {
            true
        };
        let blkio = Path::new(CGROUP_ROOT).join("blkio");
        let io_weight = if blkio.is_dir() {
            blkio.join("blkio.weight").exists() || blkio.join("blkio.bfq.weight").exists()
        } else {
            true
        };
        HostInfo {
            cpus: online_cpus(),
            swap_accounting,
            io_weight,
        }
    }
}

/// Number of CPUs online on the node.
pub fn online_cpus() -> u32 {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| berth_core::resources::CpuMask::parse(s.trim()).ok())
        .map(|m| m.len() as u32)
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        })
}

/// The node's CPUs and memory, for validating limits.
pub fn node_capacity() -> NodeCapacity {
    NodeCapacity {
        cpus: online_cpus(),
        memory: meminfo("MemTotal").unwrap_or(0),
    }
}

/// A field of /proc/meminfo, in bytes.
pub fn meminfo(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// cpu.shares for a `--cpuunits` weight (1000 units = the kernel's default 1024 shares).
pub fn cpu_shares(cpuunits: u32) -> u64 {
    (cpuunits as u64 * 1024 / 1000).clamp(2, 262_144)
}

/// Block I/O weight for an `--ioprio` (0–7): 100 + 128 × prio, so 4 (the default) is 612.
pub fn ioprio_weight(ioprio: u8) -> u16 {
    100 + 128 * ioprio.min(7) as u16
}

/// The `linux.resources` section (without devices) for `cfg`. `disk_dev` is the (major, minor)
/// of the container's virtual disk, for I/O limits. With `live`, limits that are absent are
/// written as "no limit", so that removing a limit from a running container works.
pub fn resources_json(
    cfg: &ContainerConfig,
    host: &HostInfo,
    disk_dev: Option<(u64, u64)>,
    live: bool,
) -> Value {
    let r = &cfg.resources;
    let mut out = serde_json::Map::new();
    match r.ram {
        Some(ram) => {
            let mut m = json!({"limit": ram.0 as i64});
            if host.swap_accounting {
                m["swap"] = json!((ram.0 + r.swap.map(|s| s.0).unwrap_or(0)) as i64);
            }
            out.insert("memory".into(), m);
        }
        None if live => {
            let mut m = json!({"limit": -1});
            if host.swap_accounting {
                m["swap"] = json!(-1);
            }
            out.insert("memory".into(), m);
        }
        None => {}
    }
    let mut cpu = json!({"shares": cpu_shares(r.cpuunits)});
    match r.cpulimit {
        Some(l) => {
            cpu["period"] = json!(CPU_PERIOD_US);
            cpu["quota"] = json!((l as u64 * CPU_PERIOD_US / 100) as i64);
        }
        None if live => cpu["quota"] = json!(-1),
        None => {}
    }
    match r.effective_cpus(host.cpus, cfg.ctid.0) {
        Some(m) => cpu["cpus"] = json!(m.to_string()),
        None if live => cpu["cpus"] = json!(format!("0-{}", host.cpus.saturating_sub(1))),
        None => {}
    }
    out.insert("cpu".into(), cpu);
    out.insert("pids".into(), json!({"limit": r.numproc as i64}));
    let mut bio = if host.io_weight {
        json!({"weight": ioprio_weight(r.ioprio)})
    } else {
        json!({})
    };
    if let Some((major, minor)) = disk_dev {
        let rule = |rate: Option<u64>| -> Option<Value> {
            match rate {
                Some(rate) => Some(json!([{"major": major, "minor": minor, "rate": rate}])),
                // rate 0 removes a rule
                None if live => Some(json!([{"major": major, "minor": minor, "rate": 0}])),
                None => None,
            }
        };
        let bps = r.iolimit.map(|s| s.0);
        for (key, rate) in [
            ("throttleReadBpsDevice", bps),
            ("throttleWriteBpsDevice", bps),
            ("throttleReadIOPSDevice", r.iopslimit),
            ("throttleWriteIOPSDevice", r.iopslimit),
        ] {
            if let Some(v) = rule(rate) {
                bio[key] = v;
            }
        }
    }
    out.insert("blockIO".into(), bio);
    Value::Object(out)
}

/// The typed form of [`resources_json`].
pub fn linux_resources(
    cfg: &ContainerConfig,
    host: &HostInfo,
    disk_dev: Option<(u64, u64)>,
    live: bool,
) -> Result<LinuxResources> {
    serde_json::from_value(resources_json(cfg, host, disk_dev, live))
        .map_err(|e| RuntimeError::Spec(format!("resources: {e}")))
}

/// cgroup v1 only. Buffered writes reach the disk from the kernel's flusher threads, which sit
/// in the root blkio cgroup (v1 has no writeback attribution), so the container's own rules do
/// not see them. The virtual disk's loop device belongs to this one container, so the same
/// write caps are also set for that device in the root cgroup. `None` clears them (at stop,
/// and before a device number is reused). A no-op on cgroup v2, where writeback is charged to
/// the container.
pub fn set_writeback_limit(
    disk_dev: (u64, u64),
    bps: Option<u64>,
    iops: Option<u64>,
) -> Result<()> {
    let root = Path::new(CGROUP_ROOT).join("blkio");
    if !root.join("blkio.throttle.write_bps_device").exists() {
        return Ok(());
    }
    let (major, minor) = disk_dev;
    for (file, rate) in [
        ("blkio.throttle.write_bps_device", bps),
        ("blkio.throttle.write_iops_device", iops),
    ] {
        let p = root.join(file);
        let line = format!("{major}:{minor} {}", rate.unwrap_or(0));
        std::fs::write(&p, &line).map_err(|e| RuntimeError::io(&p, e))?;
    }
    Ok(())
}

/// Applies the write caps of `cfg` to the root cgroup's rules for its disk (see
/// [`set_writeback_limit`]).
pub fn apply_writeback_limit(cfg: &ContainerConfig, disk_dev: (u64, u64)) -> Result<()> {
    let r = &cfg.resources;
    set_writeback_limit(disk_dev, r.iolimit.map(|s| s.0), r.iopslimit)
}

fn manager(runtime_id: &str) -> Result<AnyCgroupManager> {
    libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
        cgroup_path: format!("/{runtime_id}").into(),
        systemd_cgroup: false,
        container_name: runtime_id.to_string(),
    })
    .map_err(|e| RuntimeError::Cgroup(e.to_string()))
}

/// Applies `res` to a running container's cgroups.
pub fn apply_live(runtime_id: &str, res: &LinuxResources) -> Result<()> {
    apply_with(&manager(runtime_id)?, res)
}

/// Applies `res` through any cgroup manager (the real one, or one on a fake tree in tests).
pub fn apply_with<M: CgroupManager>(m: &M, res: &LinuxResources) -> Result<()>
where
    M::Error: std::fmt::Display,
{
    m.apply(&ControllerOpt {
        resources: res,
        disable_oom_killer: false,
        oom_score_adj: None,
        freezer_state: None,
    })
    .map_err(|e| RuntimeError::Cgroup(explain_apply_error(&e.to_string())))
}

fn explain_apply_error(msg: &str) -> String {
    if msg.contains("unable to set memory limit") {
        format!("{msg}: the container uses more memory than the new limit")
    } else if msg.contains("Device or resource busy") || msg.contains("EBUSY") {
        format!("{msg}: the container uses more than the new limit")
    } else {
        msg.to_string()
    }
}

/// Usage read from a container's cgroups at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupSample {
    /// Total CPU time, nanoseconds.
    pub cpu_ns: u64,
    pub memory_used: u64,
    /// Swap in use (memory+swap minus memory on v1).
    pub swap_used: Option<u64>,
    pub processes: u64,
    pub oom_kills: u64,
    pub taken: Option<std::time::Instant>,
}

/// Reads CPU, memory, process and OOM counters of a running container.
pub fn sample(runtime_id: &str) -> Result<CgroupSample> {
    let m = manager(runtime_id)?;
    let st = m
        .stats()
        .map_err(|e| RuntimeError::Cgroup(format!("stats: {e}")))?;
    let taken = Some(std::time::Instant::now());
    let mut s = CgroupSample {
        cpu_ns: st.cpu.usage.usage_total,
        memory_used: st.memory.memory.usage,
        swap_used: None,
        processes: st.pids.current,
        oom_kills: oom_kills(runtime_id).unwrap_or(0),
        taken,
    };
    let v1 = v1_dir("memory", runtime_id);
    if v1.is_dir() {
        // v1 usage includes the page cache; report what `free` would call used.
        let cache = st
            .memory
            .stats
            .get("total_inactive_file")
            .copied()
            .unwrap_or(0);
        s.memory_used = s.memory_used.saturating_sub(cache);
        if st.memory.memswap.usage > 0 {
            s.swap_used = Some(
                st.memory
                    .memswap
                    .usage
                    .saturating_sub(st.memory.memory.usage),
            );
        }
    } else {
        s.swap_used = read_u64(
            &Path::new(CGROUP_ROOT)
                .join(runtime_id)
                .join("memory.swap.current"),
        );
        // cgroup v2's cpu.stat counts microseconds (usage_usec).
        s.cpu_ns = s.cpu_ns.saturating_mul(1000);
    }
    Ok(s)
}

fn v1_dir(controller: &str, runtime_id: &str) -> PathBuf {
    Path::new(CGROUP_ROOT).join(controller).join(runtime_id)
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// OOM kills in the container's memory cgroup: `oom_kill` of memory.oom_control (v1) or
/// memory.events (v2).
pub fn oom_kills(runtime_id: &str) -> Option<u64> {
    let v1 = v1_dir("memory", runtime_id).join("memory.oom_control");
    let v2 = Path::new(CGROUP_ROOT)
        .join(runtime_id)
        .join("memory.events");
    let text = std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .ok()?;
    parse_keyed(&text, "oom_kill")
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines).
pub fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::config::{DiskConfig, IdMap};
    use berth_core::resources::CpuMask;
    use berth_core::{CtId, Resources, Size};

    fn cfg(r: Resources) -> ContainerConfig {
        ContainerConfig {
            idmap: Some(IdMap {
                host_base: 165536,
                size: 65536,
            }),
            resources: r,
            ..ContainerConfig::new(CtId(101), "busybox", DiskConfig::new(Size(1 << 30)))
        }
    }

    const HOST: HostInfo = HostInfo {
        cpus: 4,
        swap_accounting: true,
        io_weight: true,
    };

    #[test]
    fn mapping() {
        let c = cfg(Resources {
            ram: Some(Size(256 << 20)),
            swap: Some(Size(128 << 20)),
            cpuunits: 2000,
            cpulimit: Some(150),
            cpus: Some(2),
            cpumask: Some(CpuMask::parse("1-3").unwrap()),
            numproc: 512,
            ioprio: 6,
            iolimit: Some(Size(20 << 20)),
            iopslimit: Some(500),
        });
        let v = resources_json(&c, &HOST, Some((7, 3)), false);
        assert_eq!(v["memory"]["limit"], 256 << 20);
        assert_eq!(v["memory"]["swap"], 384 << 20);
        assert_eq!(v["cpu"]["shares"], 2048);
        assert_eq!(v["cpu"]["quota"], 150_000);
        assert_eq!(v["cpu"]["period"], 100_000);
        // CT 101 % 3 CPUs of the mask = start at the 3rd: CPUs 3 and 1.
        assert_eq!(v["cpu"]["cpus"], "1,3");
        assert_eq!(v["pids"]["limit"], 512);
        assert_eq!(v["blockIO"]["weight"], 868);
        assert_eq!(v["blockIO"]["throttleWriteBpsDevice"][0]["rate"], 20 << 20);
        assert_eq!(v["blockIO"]["throttleReadIOPSDevice"][0]["minor"], 3);
        linux_resources(&c, &HOST, Some((7, 3)), false).unwrap();
    }

    #[test]
    fn defaults_and_live_removal() {
        let c = cfg(Resources::default());
        let start = resources_json(&c, &HOST, Some((7, 3)), false);
        assert!(start.get("memory").is_none(), "no memory limit by default");
        assert_eq!(
            start["pids"]["limit"],
            berth_core::resources::DEFAULT_NUMPROC
        );
        assert!(start["cpu"].get("quota").is_none());
        assert!(start["blockIO"].get("throttleReadBpsDevice").is_none());
        let live = resources_json(&c, &HOST, Some((7, 3)), true);
        assert_eq!(live["memory"]["limit"], -1);
        assert_eq!(live["memory"]["swap"], -1);
        assert_eq!(live["cpu"]["quota"], -1);
        assert_eq!(live["cpu"]["cpus"], "0-3");
        assert_eq!(live["blockIO"]["throttleReadBpsDevice"][0]["rate"], 0);
        let no_swap_acct = HostInfo {
            swap_accounting: false,
            ..HOST
        };
        let c = cfg(Resources {
            ram: Some(Size(64 << 20)),
            ..Default::default()
        });
        assert!(resources_json(&c, &no_swap_acct, None, false)["memory"]
            .get("swap")
            .is_none());
    }

    #[test]
    fn shares_and_weights() {
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_shares(8), 8);
        assert_eq!(cpu_shares(500_000), 262_144);
        assert_eq!(ioprio_weight(0), 100);
        assert_eq!(ioprio_weight(4), 612);
        assert_eq!(ioprio_weight(7), 996);
    }

    #[test]
    fn keyed_files() {
        let t = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_keyed(t, "oom_kill"), Some(3));
        assert_eq!(parse_keyed(t, "missing"), None);
    }

    /// The cgroup v2 path, on a fake cgroupfs tree (this machine runs cgroup v1).
    #[test]
    fn v2_apply_on_fake_tree() {
        use libcgroups::v2::manager::Manager;
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids",
        )
        .unwrap();
        let ct = root.path().join("berth-x-101");
        std::fs::create_dir(&ct).unwrap();
        for (f, v) in [
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("memory.low", "0"),
            ("cpu.max", "max 100000"),
            ("cpu.weight", "100"),
            ("cpuset.cpus", ""),
            ("cpuset.mems", ""),
            ("pids.max", "max"),
            ("io.max", ""),
            ("io.bfq.weight", "100"),
            ("cgroup.subtree_control", ""),
        ] {
            std::fs::write(ct.join(f), v).unwrap();
        }
        let m = Manager::new(root.path().to_path_buf(), "berth-x-101".into()).unwrap();
        let c = cfg(Resources {
            ram: Some(Size(256 << 20)),
            swap: Some(Size(64 << 20)),
            cpulimit: Some(50),
            cpus: Some(1),
            numproc: 128,
            iolimit: Some(Size(10 << 20)),
            ..Default::default()
        });
        let res = linux_resources(&c, &HOST, Some((7, 3)), false).unwrap();
        apply_with(&m, &res).unwrap();
        let read = |f: &str| std::fs::read_to_string(ct.join(f)).unwrap();
        assert_eq!(read("memory.max"), (256u64 << 20).to_string());
        assert_eq!(read("memory.swap.max"), (64u64 << 20).to_string());
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "128");
        assert_eq!(read("cpuset.cpus"), "1");
        assert!(read("io.max").contains("7:3"), "{}", read("io.max"));
    }
}
