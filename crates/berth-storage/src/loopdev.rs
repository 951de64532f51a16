//! Loop devices through the kernel's ioctl interface (`LOOP_CTL_GET_FREE`, `LOOP_CONFIGURE`,
//! `LOOP_CLR_FD`). Written by hand: the maintained crates generate bindings with bindgen at
//! build time (a libclang dependency) for four ioctls; see docs/adr/0002-loop-and-mount-syscalls.md.

use crate::{Result, StorageError};
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device, held open: with autoclear, the kernel detaches the device when its
/// last opener closes it and nothing mounts it, so keep this until the filesystem is mounted.
pub struct LoopDevice {
    pub path: PathBuf,
    _file: File,
}

/// Attaches `backing` to a free loop device with autoclear set (the device detaches itself
/// when its last user goes away).
pub fn attach(backing: &Path) -> Result<LoopDevice> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(backing)
        .map_err(|e| StorageError::io(backing, e))?;
    let ctl =
        File::open("/dev/loop-control").map_err(|e| StorageError::io("/dev/loop-control", e))?;
    for _ in 0..32 {
        // SAFETY: ioctl on an owned control descriptor, no argument.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(StorageError::io(
                "/dev/loop-control",
                std::io::Error::last_os_error(),
            ));
        }
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        let lo = match OpenOptions::new().read(true).write(true).open(&dev) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io(&dev, e)),
        };
        // Direct I/O: the loop device reads and writes the image with O_DIRECT, so the
        // container's data is cached once (in its own filesystem's page cache, charged to its
        // memory cgroup) instead of twice, and the host's flusher threads do not write it back
        // a second time. A backing filesystem without O_DIRECT gets buffered I/O instead.
        let mut r = configure(&lo, &file, backing, LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO);
        if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) {
            r = configure(&lo, &file, backing, LO_FLAGS_AUTOCLEAR);
        }
        let Err(e) = r else {
            return Ok(LoopDevice {
                path: dev,
                _file: lo,
            });
        };
        if e.raw_os_error() == Some(libc::EBUSY) {
            continue; // raced with another attach: take the next free device
        }
        return Err(StorageError::io(&dev, e));
    }
    Err(StorageError::io(
        backing,
        std::io::Error::other("no free loop device"),
    ))
}

/// `LOOP_CONFIGURE` of the open loop device `lo` with `file` as its backing file.
fn configure(lo: &File, file: &File, backing: &Path, flags: u32) -> std::io::Result<()> {
    // SAFETY: zeroed plain-old-data struct.
    let mut cfg: LoopConfig = unsafe { std::mem::zeroed() };
    cfg.fd = file.as_raw_fd() as u32;
    cfg.info.lo_flags = flags;
    let name = backing.as_os_str().as_encoded_bytes();
    let len = name.len().min(63);
    cfg.info.lo_file_name[..len].copy_from_slice(&name[..len]);
    // SAFETY: ioctl with a pointer to a properly laid out loop_config.
    let r = unsafe { libc::ioctl(lo.as_raw_fd(), LOOP_CONFIGURE, &cfg as *const LoopConfig) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Loop devices whose backing file is `backing` (by device and inode, so renames and
/// different spellings of the path do not matter).
pub fn find_by_backing(backing: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(backing) else {
        return vec![];
    };
    let mut out = vec![];
    let Ok(rd) = fs::read_dir("/sys/block") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let base = e.path().join("loop");
        let read = |f: &str| {
            fs::read_to_string(base.join(f))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let (Some(inode), Some(dev)) = (read("backing_inode"), read("backing_dev")) else {
            // older kernels: compare the path
            if read("backing_file").as_deref() == Some(&*backing.to_string_lossy()) {
                out.push(PathBuf::from(format!("/dev/{name}")));
            }
            continue;
        };
        let devnum = dev
            .split_once(':')
            .and_then(|(ma, mi)| Some(libc::makedev(ma.parse().ok()?, mi.parse().ok()?)));
        if inode.parse::<u64>().ok() == Some(meta.ino()) && devnum == Some(meta.dev()) {
            out.push(PathBuf::from(format!("/dev/{name}")));
        }
    }
    out
}

/// Detaches a loop device (if busy, the kernel marks it autoclear and detaches it when freed).
pub fn detach(dev: &Path) -> Result<()> {
    let f = match File::open(dev) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io(dev, e)),
    };
    // The device's next user gets the kernel's writeback defaults, not a container's bound.
    if let Some((ma, mi)) = dev_numbers(dev) {
        let _ = limit_dirty(ma, mi, None);
    }
    // SAFETY: ioctl on an owned descriptor, no argument.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), LOOP_CLR_FD, 0) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENXIO) {
            return Err(StorageError::io(dev, e));
        }
    }
    Ok(())
}

/// (major, minor) of a block device node.
pub fn dev_numbers(dev: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let rdev = fs::metadata(dev).ok()?.rdev();
    Some((libc::major(rdev) as u64, libc::minor(rdev) as u64))
}

/// Most dirty page-cache data a container's virtual disk may hold (the loop device's
/// writeback limit, `/sys/class/bdi/MAJ:MIN/max_bytes` with `strict_limit`): what a frozen
/// container may still write to the node filesystem, which the disk guard's reserve covers.
pub const DIRTY_LIMIT: u64 = 16 << 20;

/// Bounds the dirty data of the block device `major:minor` to `bytes` (strictly: also while
/// the node's global dirty threshold is far away), or, with `None`, gives it back the
/// kernel's defaults. Needs a kernel with per-device `max_bytes` (6.2 on).
pub fn limit_dirty(major: u64, minor: u64, bytes: Option<u64>) -> Result<()> {
    let dir = std::path::PathBuf::from(format!("/sys/class/bdi/{major}:{minor}"));
    let write = |name: &str, v: String| {
        let p = dir.join(name);
        fs::write(&p, v).map_err(|e| StorageError::io(&p, e))
    };
    match bytes {
        Some(b) => {
            write("max_bytes", b.to_string())?;
            write("strict_limit", "1".into())
        }
        None => {
            write("strict_limit", "0".into())?;
            write("max_ratio", "100".into())
        }
    }
}

/// Makes a loop device pick up its backing file's new size (after the file grew).
pub fn set_capacity(dev: &Path) -> Result<()> {
    const LOOP_SET_CAPACITY: libc::c_ulong = 0x4C07;
    let f = File::open(dev).map_err(|e| StorageError::io(dev, e))?;
    // SAFETY: ioctl on an owned descriptor, no argument.
    if unsafe { libc::ioctl(f.as_raw_fd(), LOOP_SET_CAPACITY, 0) } != 0 {
        return Err(StorageError::io(dev, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// I/O counters of a block device (/sys/block/NAME/stat): everything the container's
/// filesystem read from and wrote to its virtual disk, whoever issued it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounters {
    pub read_ops: u64,
    pub read_bytes: u64,
    pub write_ops: u64,
    pub write_bytes: u64,
}

/// Reads a block device's counters.
pub fn io_counters(dev: &Path) -> Option<IoCounters> {
    let name = dev.file_name()?.to_str()?;
    let text = fs::read_to_string(format!("/sys/block/{name}/stat")).ok()?;
    parse_block_stat(&text)
}

/// Reads a block device's counters by number (/sys/dev/block/MAJOR:MINOR/stat).
pub fn io_counters_of(major: u64, minor: u64) -> Option<IoCounters> {
    let text = fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    parse_block_stat(&text)
}

impl IoCounters {
    /// Counters since `base` (a device's counters outlive one container's use of it).
    pub fn since(&self, base: &IoCounters) -> IoCounters {
        IoCounters {
            read_ops: self.read_ops.saturating_sub(base.read_ops),
            read_bytes: self.read_bytes.saturating_sub(base.read_bytes),
            write_ops: self.write_ops.saturating_sub(base.write_ops),
            write_bytes: self.write_bytes.saturating_sub(base.write_bytes),
        }
    }
    /// `read_ops read_bytes write_ops write_bytes` on one line.
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {}\n",
            self.read_ops, self.read_bytes, self.write_ops, self.write_bytes
        )
    }
    pub fn from_line(s: &str) -> Option<IoCounters> {
        let v: Vec<u64> = s
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        (v.len() == 4).then(|| IoCounters {
            read_ops: v[0],
            read_bytes: v[1],
            write_ops: v[2],
            write_bytes: v[3],
        })
    }
}

/// Parses /sys/block/NAME/stat (fields 1, 3, 5 and 7: read I/Os, read sectors, write I/Os,
/// write sectors; sectors are 512 bytes whatever the device's block size).
pub fn parse_block_stat(text: &str) -> Option<IoCounters> {
    let f: Vec<u64> = text
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if f.len() < 7 {
        return None;
    }
    Some(IoCounters {
        read_ops: f[0],
        read_bytes: f[2] * 512,
        write_ops: f[4],
        write_bytes: f[6] * 512,
    })
}

#[cfg(test)]
mod stat_tests {
    #[test]
    fn block_stat() {
        let s = "     120        0     9600       40       30        2      480       10        0       60       50        0        0        0        0        0        0\n";
        let c = super::parse_block_stat(s).unwrap();
        assert_eq!((c.read_ops, c.read_bytes), (120, 9600 * 512));
        assert_eq!((c.write_ops, c.write_bytes), (30, 480 * 512));
        assert!(super::parse_block_stat("1 2").is_none());
        let base = super::IoCounters::from_line(&c.to_line()).unwrap();
        assert_eq!(base, c);
        assert_eq!(c.since(&base), super::IoCounters::default());
    }
}
