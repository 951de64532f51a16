//! Forwarding host devices into containers (`berth set --device-add`, the seed's
//! "Forwarding Hardware Device"): what may be forwarded, read from the host's node. The
//! runtime creates the node inside at each start (crate berth-runtime's views) and the device
//! cgroup allows it.

use crate::error::NodeError;
use crate::Result;
use berth_core::config::DeviceRule;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// Parses `PATH[:rw|:r]` and reads the host node at PATH. A block device the host uses
/// (mounted, swap, or a disk with such a partition) is refused unless `force`.
pub fn parse_add(spec: &str, force: bool) -> Result<DeviceRule> {
    let (path, access) = match spec.rsplit_once(':') {
        Some((p, a @ ("rw" | "r"))) => (p, a),
        Some((_, a)) if !a.contains('/') => {
            return Err(NodeError::Invalid(format!(
                "device {spec:?}: access {a:?} is neither rw nor r"
            )))
        }
        _ => (spec, "rw"),
    };
    let meta =
        std::fs::metadata(path).map_err(|e| NodeError::Invalid(format!("device {path}: {e}")))?;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Err(NodeError::Invalid(format!("{path} is not a device node")));
    };
    let rdev = meta.rdev();
    let rule = DeviceRule {
        path: path.to_string(),
        kind: kind.into(),
        major: libc::major(rdev),
        minor: libc::minor(rdev),
        access: access.into(),
    };
    rule.validate().map_err(NodeError::Invalid)?;
    if kind == "b" && !force {
        if let Some(why) = host_uses(rule.major, rule.minor) {
            return Err(NodeError::Invalid(format!(
                "{path} is a disk of the host ({why}): forwarding it would give the container the host's data; use --force if this is meant"
            )));
        }
    }
    // mem, kmem, port: the host's memory and I/O ports.
    if kind == "c" && rule.major == 1 && matches!(rule.minor, 1 | 2 | 4) {
        return Err(NodeError::Invalid(format!(
            "{path} is the host's memory or I/O ports: never forwarded"
        )));
    }
    Ok(rule)
}

/// Why the host uses block device `major:minor`, if it does: mounted, swap, or a disk
/// holding a partition that is.
fn host_uses(major: u32, minor: u32) -> Option<String> {
    let mut used: Vec<(u32, u32, String)> = vec![];
    if let Ok(t) = std::fs::read_to_string("/proc/self/mountinfo") {
        for l in t.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            if let (Some(dev), Some(mp)) = (f.get(2), f.get(4)) {
                if let Some((a, b)) = dev.split_once(':') {
                    if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                        used.push((a, b, format!("mounted on {mp}")));
                    }
                }
            }
        }
    }
    if let Ok(t) = std::fs::read_to_string("/proc/swaps") {
        for l in t.lines().skip(1) {
            if let Some(p) = l.split_whitespace().next() {
                if let Ok(m) = std::fs::metadata(p) {
                    if m.file_type().is_block_device() {
                        used.push((libc::major(m.rdev()), libc::minor(m.rdev()), "swap".into()));
                    }
                }
            }
        }
    }
    if let Some((_, _, why)) = used.iter().find(|(a, b, _)| (*a, *b) == (major, minor)) {
        return Some(why.clone());
    }
    // A whole disk whose partitions (or holders: device-mapper, md) are in use.
    let sys = format!("/sys/dev/block/{major}:{minor}");
    let mut subs = vec![];
    if let Ok(rd) = std::fs::read_dir(&sys) {
        for e in rd.flatten() {
            if let Ok(d) = std::fs::read_to_string(e.path().join("dev")) {
                subs.push(d.trim().to_string());
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(format!("{sys}/holders")) {
        for e in rd.flatten() {
            if let Ok(d) = std::fs::read_to_string(e.path().join("dev")) {
                subs.push(d.trim().to_string());
            }
        }
    }
    for s in subs {
        if let Some((a, b)) = s.split_once(':') {
            if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                if let Some((_, _, why)) = used.iter().find(|(x, y, _)| (*x, *y) == (a, b)) {
                    return Some(format!("its part {a}:{b} is {why}"));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals() {
        assert!(parse_add("/dev/null:rx", false).is_err());
        assert!(parse_add("/etc/passwd", false).is_err());
        assert!(parse_add("/dev/mem", false).is_err());
        let r = parse_add("/dev/null:r", false).unwrap();
        assert_eq!(
            (r.kind.as_str(), r.major, r.minor, r.access.as_str()),
            ("c", 1, 3, "r")
        );
    }
}
