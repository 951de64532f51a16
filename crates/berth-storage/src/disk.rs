//! The private virtual disk: a sparse ext4 (or XFS, see [`crate::xfs`]) image whose size is
//! the container's disk quota.
//! It holds `upper/` and `work/` of the container's overlay, owned by container-native IDs.

use crate::{Result, StorageError};
use berth_core::{DiskFs, DiskType, Size};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// Runs a command, turning a non-zero exit into an error carrying its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let name = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| StorageError::Command {
        cmd: name.clone(),
        msg: e.to_string(),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let out_text = String::from_utf8_lossy(&out.stdout);
        let last_line = |t: &str| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        };
        let last = last_line(&err)
            .or_else(|| last_line(&out_text))
            .unwrap_or_else(|| "failed".into());
        return Err(StorageError::Command {
            cmd: name,
            msg: last,
        });
    }
    Ok(())
}

/// Creates a sparse image of `size` at `path` (which must not exist) with an empty `fstype`
/// filesystem holding `upper/` and `work/`. `staging` is an empty scratch directory.
/// Costs the same for any template: nothing of the template is copied.
pub fn create_image(
    path: &Path,
    size: Size,
    fstype: DiskFs,
    inodes: Option<u64>,
    staging: &Path,
) -> Result<()> {
    create_image_of(path, size, fstype, DiskType::Expanding, inodes, staging)
}

/// [`create_image`] of either disk type: a fixed image is made the same way, then
/// preallocated ([`preallocate`]); its ext4 inode tables are zeroed by mkfs, not later by
/// the kernel (whose lazy zeroing would punch holes through the loop device).
pub fn create_image_of(
    path: &Path,
    size: Size,
    fstype: DiskFs,
    disktype: DiskType,
    inodes: Option<u64>,
    staging: &Path,
) -> Result<()> {
    if disktype == DiskType::Fixed {
        // Fail early, before mkfs, when the node filesystem cannot hold it.
        fallocate(path, size.0, libc::FALLOC_FL_KEEP_SIZE, 0, true)?;
    }
    create_sparse(
        path,
        size,
        fstype,
        inodes,
        staging,
        disktype == DiskType::Fixed,
    )?;
    if disktype == DiskType::Fixed {
        preallocate(path)?;
    }
    Ok(())
}

fn create_sparse(
    path: &Path,
    size: Size,
    fstype: DiskFs,
    inodes: Option<u64>,
    staging: &Path,
    eager_itable: bool,
) -> Result<()> {
    // Root-only: the image holds all of the container's files, whatever their modes inside.
    let f = OpenOptions::new()
        .write(true)
        .create(eager_itable)
        .create_new(!eager_itable)
        .mode(0o600)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    f.set_len(size.0).map_err(|e| StorageError::io(path, e))?;
    drop(f);
    if fstype == DiskFs::Xfs {
        return crate::xfs::mkfs(path, size, inodes, staging);
    }
    for d in ["upper", "work"] {
        let p = staging.join(d);
        fs::create_dir(&p).map_err(|e| StorageError::io(&p, e))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
            .map_err(|e| StorageError::io(&p, e))?;
    }
    mkfs_with(path, inodes, staging, eager_itable)
}

/// fallocate(2) of `len` bytes from `offset` on `path` with `mode`; ENOSPC becomes
/// [`StorageError::NoSpace`]. `create` makes the file (new, root-only) first.
fn fallocate(path: &Path, len: u64, mode: libc::c_int, offset: u64, create: bool) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = OpenOptions::new()
        .write(true)
        .create_new(create)
        .mode(0o600)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    if len == 0 {
        return Ok(());
    }
    // SAFETY: fallocate on an owned descriptor with integer arguments.
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            mode,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSPC) {
            return Err(StorageError::NoSpace(path.into(), Size(len).to_string()));
        }
        return Err(StorageError::io(path, e));
    }
    Ok(())
}

/// Allocates every block of a fixed disk's image (holes become unwritten extents; data is
/// kept): after mkfs, a resize or anything that may have punched holes.
pub fn preallocate(image: &Path) -> Result<()> {
    let len = fs::metadata(image)
        .map_err(|e| StorageError::io(image, e))?
        .len();
    fallocate(image, len, 0, 0, false)
}

/// Reserves the blocks a fixed disk growing to `size` needs beyond its current end
/// (FALLOC_FL_KEEP_SIZE: the file's length is unchanged until the grow itself). On ENOSPC
/// whatever was allocated is given back and the image keeps its old size.
pub fn reserve_growth(image: &Path, size: Size) -> Result<()> {
    let len = fs::metadata(image)
        .map_err(|e| StorageError::io(image, e))?
        .len();
    if size.0 <= len {
        return Ok(());
    }
    fallocate(image, size.0 - len, libc::FALLOC_FL_KEEP_SIZE, len, false).inspect_err(|_| {
        // Truncating to the current length frees what KEEP_SIZE allocated past the end.
        if let Ok(f) = OpenOptions::new().write(true).open(image) {
            let _ = f.set_len(len);
        }
    })
}

/// mkfs.ext4 on `path` with the contents of `from`: no reserved blocks (the whole disk is the
/// container's), lazy inode tables (sparse and fast), an exact inode count when asked.
fn mkfs(path: &Path, inodes: Option<u64>, from: &Path) -> Result<()> {
    mkfs_with(path, inodes, from, false)
}

/// [`mkfs`]; `eager_itable` zeroes the inode tables now (fixed disks).
fn mkfs_with(path: &Path, inodes: Option<u64>, from: &Path, eager_itable: bool) -> Result<()> {
    let mut cmd = Command::new("mkfs.ext4");
    cmd.args([
        "-q",
        "-F",
        "-m",
        "0",
        "-E",
        if eager_itable {
            "lazy_itable_init=0,lazy_journal_init=1,nodiscard,root_owner=0:0"
        } else {
            "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0"
        },
    ]);
    let Some(want) = inodes else {
        return run(cmd.arg("-d").arg(from).arg(path));
    };
    // mkfs fits the count to whole inode-table blocks in every block group, rounding up or
    // down: ask again for more until the filesystem has at least `want`.
    let mut ask = want;
    for _ in 0..4 {
        let mut c = Command::new("mkfs.ext4");
        c.args(cmd.get_args());
        run(c
            .arg("-N")
            .arg(ask.to_string())
            .arg("-d")
            .arg(from)
            .arg(path))?;
        let have = usage_image(path)?.total_inodes;
        if have >= want {
            return Ok(());
        }
        ask += 2 * (want - have) + 8;
    }
    Err(StorageError::TooSmall(
        format!("{want} inodes"),
        "mkfs.ext4 could not fit that many".into(),
    ))
}

/// Most inodes a filesystem of `size` can have (ext4: one per 1 KiB, its densest ratio).
pub fn max_inodes(size: Size, fstype: DiskFs) -> u64 {
    // The model's bound, which validation of CLI input and of config files uses.
    fstype.max_inodes(size)
}

/// Space and inode usage of a virtual disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub total_inodes: u64,
    pub used_inodes: u64,
}

/// Usage of the mounted filesystem holding `dir` (statfs).
pub fn usage_mounted(dir: &Path) -> Result<DiskUsage> {
    let st = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| StorageError::sys(format!("statfs {}", dir.display()), e))?;
    let bs = st.fragment_size() as u64;
    Ok(DiskUsage {
        total_bytes: st.blocks() as u64 * bs,
        used_bytes: (st.blocks() - st.blocks_free()) as u64 * bs,
        total_inodes: st.files() as u64,
        used_inodes: (st.files() - st.files_free()) as u64,
    })
}

/// Usage of an unmounted image, read from its ext4 or XFS superblock (exact after a clean
/// unmount).
pub fn usage_image(image: &Path) -> Result<DiskUsage> {
    use std::io::Read;
    let mut f = fs::File::open(image).map_err(|e| StorageError::io(image, e))?;
    let mut head = [0u8; 2048];
    f.read_exact(&mut head)
        .map_err(|e| StorageError::io(image, e))?;
    if let Some(sb) = crate::xfs::Superblock::parse(&head[..512]) {
        return Ok(sb.usage());
    }
    parse_superblock(head[1024..].try_into().unwrap()).ok_or_else(|| {
        StorageError::io(
            image,
            std::io::Error::other("neither ext4 nor XFS (bad superblock magic)"),
        )
    })
}

/// Reads counts from an ext4 superblock (the 1024 bytes at offset 1024).
pub fn parse_superblock(sb: &[u8; 1024]) -> Option<DiskUsage> {
    let u32_at = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().unwrap()) as u64;
    let u16_at = |o: usize| u16::from_le_bytes(sb[o..o + 2].try_into().unwrap());
    if u16_at(0x38) != 0xEF53 {
        return None;
    }
    let inodes = u32_at(0x0);
    let free_inodes = u32_at(0x10);
    let incompat = u32_at(0x60);
    let is64 = incompat & 0x80 != 0;
    let mut blocks = u32_at(0x4);
    let mut free = u32_at(0xC);
    if is64 {
        blocks |= u32_at(0x150) << 32;
        free |= u32_at(0x158) << 32;
    }
    let bs = 1024u64 << u32_at(0x18);
    Some(DiskUsage {
        total_bytes: blocks * bs,
        used_bytes: blocks.saturating_sub(free) * bs,
        total_inodes: inodes,
        used_inodes: inodes.saturating_sub(free_inodes),
    })
}

/// Bytes of the node's disk the image really occupies (it is sparse).
pub fn allocated(image: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(image).map(|m| m.blocks() * 512).unwrap_or(0)
}

/// Checks an unmounted image (`e2fsck -f -p`); needed before offline resizing.
fn fsck(image: &Path) -> Result<()> {
    let out = Command::new("e2fsck")
        .args(["-f", "-p"])
        .arg(image)
        .output()
        .map_err(|e| StorageError::Command {
            cmd: "e2fsck".into(),
            msg: e.to_string(),
        })?;
    // 0: clean, 1: errors corrected
    match out.status.code() {
        Some(0 | 1) => Ok(()),
        _ => Err(StorageError::Command {
            cmd: format!("e2fsck -f -p {}", image.display()),
            msg: String::from_utf8_lossy(&out.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
                .last()
                .unwrap_or("failed")
                .to_string(),
        }),
    }
}

/// Resizes an unmounted ext4 image to `size` (grow or shrink). Shrinking fails, changing
/// nothing, when the data does not fit.
pub fn resize_offline(image: &Path, size: Size) -> Result<()> {
    let current = fs::metadata(image)
        .map_err(|e| StorageError::io(image, e))?
        .len();
    fsck(image)?;
    let f = OpenOptions::new()
        .write(true)
        .open(image)
        .map_err(|e| StorageError::io(image, e))?;
    if size.0 > current {
        f.set_len(size.0).map_err(|e| StorageError::io(image, e))?;
        if let Err(e) = run(Command::new("resize2fs").arg("-p").arg(image)) {
            let _ = f.set_len(current);
            return Err(e);
        }
    } else if size.0 < current {
        let kib = format!("{}K", size.0 / 1024);
        run(Command::new("resize2fs").arg(image).arg(&kib)).map_err(|e| match e {
            StorageError::Command { msg, .. }
                if msg.contains("No space left") || msg.contains("smaller than minimum") =>
            {
                StorageError::TooSmall(size.to_string(), "the data on it does not fit".into())
            }
            other => other,
        })?;
        f.set_len(size.0).map_err(|e| StorageError::io(image, e))?;
    }
    Ok(())
}

/// Whether this process may grow a mounted filesystem of type `fstype`: the kernel asks for
/// CAP_SYS_RESOURCE for ext4 (which some hosts drop from every process's bounding set) and
/// CAP_SYS_ADMIN for XFS.
pub fn can_resize_online(fstype: DiskFs) -> bool {
    let cap = match fstype {
        DiskFs::Ext4 => caps::Capability::CAP_SYS_RESOURCE,
        DiskFs::Xfs => caps::Capability::CAP_SYS_ADMIN,
    };
    caps::has_cap(None, caps::CapSet::Effective, cap).unwrap_or(false)
}

/// Grows a mounted image: the file, then the loop device, then the filesystem through its
/// mount at `mounted_dir` (EXT4_IOC_RESIZE_FS, or XFS_IOC_FSGROWFSDATA which also keeps the
/// inode limit at `inodes`).
pub fn grow_online(
    image: &Path,
    dev: &Path,
    mounted_dir: &Path,
    fstype: DiskFs,
    size: Size,
    inodes: Option<u64>,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    const EXT4_IOC_RESIZE_FS: libc::c_ulong = 0x4008_6610;
    let f = OpenOptions::new()
        .write(true)
        .open(image)
        .map_err(|e| StorageError::io(image, e))?;
    let current = f.metadata().map_err(|e| StorageError::io(image, e))?.len();
    if size.0 <= current {
        return Ok(());
    }
    f.set_len(size.0).map_err(|e| StorageError::io(image, e))?;
    let undo = |e: StorageError| {
        let _ = f.set_len(current);
        let _ = crate::loopdev::set_capacity(dev);
        e
    };
    crate::loopdev::set_capacity(dev).map_err(undo)?;
    if fstype == DiskFs::Xfs {
        return crate::xfs::grow(mounted_dir, size, inodes)
            .map(drop)
            .map_err(undo);
    }
    let st = nix::sys::statvfs::statvfs(mounted_dir)
        .map_err(|e| undo(StorageError::sys("statfs", e)))?;
    let blocks: u64 = size.0 / st.block_size() as u64;
    let d = fs::File::open(mounted_dir).map_err(|e| undo(StorageError::io(mounted_dir, e)))?;
    // SAFETY: ioctl on an owned descriptor with a pointer to a u64 that outlives the call.
    let r = unsafe { libc::ioctl(d.as_raw_fd(), EXT4_IOC_RESIZE_FS, &blocks as *const u64) };
    if r != 0 {
        return Err(undo(StorageError::io(
            mounted_dir,
            std::io::Error::last_os_error(),
        )));
    }
    Ok(())
}

/// Returns free blocks of the mounted filesystem holding `dir` to the device (FITRIM); on a
/// loop device that punches holes in the sparse image.
pub fn trim(dir: &Path) -> Result<u64> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct FstrimRange {
        start: u64,
        len: u64,
        minlen: u64,
    }
    const FITRIM: libc::c_ulong = 0xC018_5879;
    let mut range = FstrimRange {
        start: 0,
        len: u64::MAX,
        minlen: 0,
    };
    let d = fs::File::open(dir).map_err(|e| StorageError::io(dir, e))?;
    // SAFETY: ioctl on an owned descriptor with a pointer to a live, correctly laid out struct.
    let r = unsafe { libc::ioctl(d.as_raw_fd(), FITRIM, &mut range as *mut FstrimRange) };
    if r != 0 {
        return Err(StorageError::io(dir, std::io::Error::last_os_error()));
    }
    Ok(range.len)
}

/// Rebuilds an unmounted image with a new inode count (ext4 fixes it at mkfs time): a new
/// image is made from the old one's files (`mkfs.ext4 -d`, which keeps owners, modes,
/// extended attributes, hard links and device nodes) and renamed over it.
/// `mounted_old` is the old filesystem mounted read-only.
pub fn rebuild_with_inodes(
    image: &Path,
    mounted_old: &Path,
    size: Size,
    inodes: u64,
) -> Result<()> {
    let tmp = image.with_extension("img.new");
    let _ = fs::remove_file(&tmp);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| StorageError::io(&tmp, e))?;
    f.set_len(size.0).map_err(|e| StorageError::io(&tmp, e))?;
    drop(f);
    if let Err(e) = mkfs(&tmp, Some(inodes), mounted_old) {
        let _ = fs::remove_file(&tmp);
        return Err(match e {
            StorageError::Command { msg, .. } if msg.contains("inode") || msg.contains("space") => {
                StorageError::TooSmall(format!("{inodes} inodes"), msg)
            }
            other => other,
        });
    }
    Ok(())
}

/// Puts a rebuilt image (see [`rebuild_with_inodes`]) in place of the old one, atomically.
pub fn commit_rebuild(image: &Path) -> Result<()> {
    let tmp = image.with_extension("img.new");
    fs::rename(&tmp, image).map_err(|e| StorageError::io(image, e))
}

/// Drops an unfinished rebuild.
pub fn abort_rebuild(image: &Path) {
    let _ = fs::remove_file(image.with_extension("img.new"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A tmpfs of 8 MiB (root only; None elsewhere), unmounted on drop.
    struct SmallFs(tempfile::TempDir);
    impl SmallFs {
        fn new() -> Option<SmallFs> {
            let d = tempfile::tempdir().ok()?;
            let ok = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=8M", "tmpfs"])
                .arg(d.path())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(SmallFs(d))
        }
    }
    impl Drop for SmallFs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0.path()).status();
        }
    }

    #[test]
    fn fixed_growth_is_reserved_or_refused_keeping_the_old_size() {
        let Some(fs) = SmallFs::new() else {
            return; // not root: covered by the integration suite
        };
        let img = fs.0.path().join("disk.img");
        fallocate(&img, 2 << 20, 0, 0, true).unwrap();
        preallocate(&img).unwrap();
        assert!(fs::metadata(&img).unwrap().blocks() * 512 >= 2 << 20);
        // 64M cannot fit: refused, the image keeps its size and gives back what it took.
        let e = reserve_growth(&img, Size(64 << 20)).unwrap_err();
        assert!(matches!(e, StorageError::NoSpace(..)), "{e}");
        assert!(e.to_string().contains("fixed"), "{e}");
        let m = fs::metadata(&img).unwrap();
        assert_eq!(m.len(), 2 << 20);
        assert!(
            m.blocks() * 512 <= 3 << 20,
            "blocks past the end given back"
        );
        // 4M fits: reserved past the end, then the file grows into it.
        reserve_growth(&img, Size(4 << 20)).unwrap();
        let m = fs::metadata(&img).unwrap();
        assert_eq!(m.len(), 2 << 20, "KEEP_SIZE");
        assert!(m.blocks() * 512 >= 4 << 20);
    }

    #[test]
    fn sparse_image_with_fs() {
        if Command::new("mkfs.ext4").arg("-V").output().is_err() {
            return; // e2fsprogs missing: covered by the integration suite
        }
        let d = tempfile::tempdir().unwrap();
        let st = d.path().join("st");
        fs::create_dir(&st).unwrap();
        let img = d.path().join("disk.img");
        create_image(&img, Size(1 << 30), DiskFs::Ext4, None, &st).unwrap();
        let m = fs::metadata(&img).unwrap();
        assert_eq!(m.len(), 1 << 30);
        assert!(m.blocks() * 512 < 64 << 20, "image must be sparse");
        let u = usage_image(&img).unwrap();
        assert_eq!(u.total_bytes, 1 << 30);
        assert!(u.used_inodes >= 11 && u.total_inodes > 60_000);
        assert!(
            create_image(&img, Size(1 << 30), DiskFs::Ext4, None, &st).is_err(),
            "never overwrites"
        );
    }
}
