//! XFS virtual disks (`create --fstype xfs`): made by `mkfs.xfs`, grown and given a new inode
//! limit online through the kernel's own ioctls, which need CAP_SYS_ADMIN only (ext4's online
//! resize needs CAP_SYS_RESOURCE; ADR 0005).
//!
//! XFS allocates inodes on demand. Its only inode limit is `imaxpct`, the share of the data
//! blocks that inodes may take, in whole percent: the limit is the requested count rounded up
//! to the next whole percent of the disk (and down to XFS's 64-inode chunks).

use crate::disk::{run, DiskUsage};
use crate::{Result, StorageError};
use berth_core::Size;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

/// mkfs.xfs refuses smaller filesystems (xfsprogs 5.19 and later).
pub const MIN_SIZE: u64 = berth_core::checked::XFS_MIN_SIZE;
/// mkfs.xfs's defaults on disks of Berth's sizes: 4 KiB blocks, 512-byte inodes.
const BLOCK_SIZE: u64 = 4096;
const INODE_SIZE: u64 = 512;
/// XFS allocates inodes in chunks of 64.
const CHUNK: u64 = 64;

/// The superblock fields Berth uses (big-endian, at offset 0 of the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub block_size: u64,
    pub data_blocks: u64,
    pub log_blocks: u64,
    pub ag_count: u64,
    pub inodes_per_block: u64,
    pub imax_pct: u8,
    pub icount: u64,
    pub ifree: u64,
    pub free_blocks: u64,
}

impl Superblock {
    pub fn parse(sb: &[u8]) -> Option<Superblock> {
        if sb.len() < 160 || &sb[0..4] != b"XFSB" {
            return None;
        }
        let u32_at = |o: usize| u32::from_be_bytes(sb[o..o + 4].try_into().unwrap()) as u64;
        let u64_at = |o: usize| u64::from_be_bytes(sb[o..o + 8].try_into().unwrap());
        Some(Superblock {
            block_size: u32_at(4),
            data_blocks: u64_at(8),
            log_blocks: u32_at(96),
            ag_count: u32_at(88),
            inodes_per_block: u16::from_be_bytes([sb[106], sb[107]]) as u64,
            imax_pct: sb[127],
            icount: u64_at(128),
            ifree: u64_at(136),
            free_blocks: u64_at(144),
        })
    }

    /// Usage close to what `statfs` reports on the mounted filesystem: the internal log is
    /// not counted, the blocks XFS keeps in reserve once mounted count as used (its reserve
    /// pool, `xfs_default_resblks`, and the per-AG set-aside; the per-AG metadata
    /// reservations, a few MiB, are not in the superblock), inodes are what exists plus what
    /// free space and `imaxpct` still allow.
    pub fn usage(&self) -> DiskUsage {
        let total_blocks = self.data_blocks.saturating_sub(self.log_blocks);
        let reserved = (self.data_blocks / 20).min(8192) + self.ag_count * 8;
        let free = self.free_blocks.saturating_sub(reserved);
        let max = max_icount(self.data_blocks, self.imax_pct, self.inodes_per_block);
        DiskUsage {
            total_bytes: total_blocks * self.block_size,
            used_bytes: total_blocks.saturating_sub(free) * self.block_size,
            total_inodes: (self.icount + self.free_blocks * self.inodes_per_block).min(max),
            used_inodes: self.icount.saturating_sub(self.ifree),
        }
    }
}

/// Reads the superblock of an unmounted XFS image (exact after a clean unmount).
pub fn read_superblock(image: &Path) -> Result<Superblock> {
    use std::io::Read;
    let mut sb = [0u8; 512];
    fs::File::open(image)
        .and_then(|mut f| f.read_exact(&mut sb))
        .map_err(|e| StorageError::io(image, e))?;
    Superblock::parse(&sb).ok_or_else(|| {
        StorageError::io(
            image,
            std::io::Error::other("not an XFS filesystem (bad superblock magic)"),
        )
    })
}

/// Whether the first bytes of an image are an XFS superblock.
pub fn is_xfs(head: &[u8]) -> bool {
    head.starts_with(b"XFSB")
}

/// The kernel's inode limit for `imaxpct` (`xfs_set_maxicount`): whole inode chunks.
pub fn max_icount(data_blocks: u64, pct: u8, inodes_per_block: u64) -> u64 {
    if pct == 0 || inodes_per_block == 0 {
        return u64::MAX;
    }
    let chunk_blocks = (CHUNK / inodes_per_block).max(1);
    let blocks = data_blocks * pct as u64 / 100;
    blocks / chunk_blocks * chunk_blocks * inodes_per_block
}

/// The smallest `imaxpct` whose limit holds `want` inodes, or `None` when even 100% cannot.
pub fn pct_for(data_blocks: u64, inodes_per_block: u64, want: u64) -> Option<u8> {
    (1..=100u8).find(|&p| max_icount(data_blocks, p, inodes_per_block) >= want)
}

/// Most inodes an XFS disk of `size` can be limited to (inodes may take all its space).
pub fn max_inodes(size: Size) -> u64 {
    max_icount(size.0 / BLOCK_SIZE, 100, BLOCK_SIZE / INODE_SIZE)
}

/// Makes an XFS filesystem on the sparse file `path` (already `size` long) holding empty
/// `upper/` and `work/` directories owned by 0:0, mode 0755 (a prototype file, so that nothing
/// has to be mounted). `scratch` is an empty directory for the prototype file.
pub fn mkfs(path: &Path, size: Size, inodes: Option<u64>, scratch: &Path) -> Result<()> {
    let proto = scratch.join("xfs.proto");
    fs::write(
        &proto,
        "/berth\n0 0\nd--755 0 0\nupper d--755 0 0\n$\nwork d--755 0 0\n$\n$\n",
    )
    .map_err(|e| StorageError::io(&proto, e))?;
    let mut cmd = Command::new("mkfs.xfs");
    // -K: no discard (the file is new and sparse).
    cmd.args(["-q", "-f", "-K"]);
    if let Some(want) = inodes {
        let pct = pct_for(size.0 / BLOCK_SIZE, BLOCK_SIZE / INODE_SIZE, want).ok_or_else(|| {
            StorageError::TooSmall(format!("{want} inodes"), format!("a {size} XFS disk"))
        })?;
        cmd.arg("-i").arg(format!("maxpct={pct}"));
    }
    run(cmd.arg("-p").arg(&proto).arg(path))
}

/// Geometry of a mounted XFS filesystem (`XFS_IOC_FSGEOMETRY`).
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub block_size: u64,
    pub inode_size: u64,
    pub imax_pct: u8,
    pub data_blocks: u64,
}

/// `_IOR('X', 126, struct xfs_fsop_geom)`, a 256-byte struct.
const XFS_IOC_FSGEOMETRY: libc::c_ulong = 0x8100_587e;
/// `_IOW('X', 110, struct xfs_growfs_data)` (u64 newblocks, u32 imaxpct, padded to 16).
const XFS_IOC_FSGROWFSDATA: libc::c_ulong = 0x4010_586e;

pub fn geometry(mounted_dir: &Path) -> Result<Geometry> {
    let d = fs::File::open(mounted_dir).map_err(|e| StorageError::io(mounted_dir, e))?;
    let mut buf = [0u8; 256];
    // SAFETY: ioctl on an owned descriptor with a 256-byte buffer, the size the request encodes.
    let r = unsafe { libc::ioctl(d.as_raw_fd(), XFS_IOC_FSGEOMETRY, buf.as_mut_ptr()) };
    if r != 0 {
        return Err(StorageError::io(
            mounted_dir,
            std::io::Error::last_os_error(),
        ));
    }
    let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().unwrap()) as u64;
    Ok(Geometry {
        block_size: u32_at(0),
        inode_size: u32_at(24),
        imax_pct: u32_at(28) as u8,
        data_blocks: u64::from_ne_bytes(buf[32..40].try_into().unwrap()),
    })
}

/// Grows the mounted filesystem to `size` (rounded down to whole blocks; never shrinks) and
/// sets its inode limit to hold `inodes` (or keeps its `imaxpct`). Returns the new limit's
/// `imaxpct`.
pub fn grow(mounted_dir: &Path, size: Size, inodes: Option<u64>) -> Result<u8> {
    #[repr(C)]
    struct GrowfsData {
        newblocks: u64,
        imaxpct: u32,
    }
    let g = geometry(mounted_dir)?;
    let blocks = (size.0 / g.block_size).max(g.data_blocks);
    let ipb = g.block_size / g.inode_size.max(1);
    let pct = match inodes {
        Some(want) => pct_for(blocks, ipb, want).ok_or_else(|| {
            StorageError::TooSmall(format!("{want} inodes"), format!("a {size} XFS disk"))
        })?,
        None => g.imax_pct,
    };
    if blocks == g.data_blocks && pct == g.imax_pct {
        return Ok(pct);
    }
    let arg = GrowfsData {
        newblocks: blocks,
        imaxpct: pct as u32,
    };
    let d = fs::File::open(mounted_dir).map_err(|e| StorageError::io(mounted_dir, e))?;
    // SAFETY: ioctl on an owned descriptor with a pointer to a live, correctly laid out struct.
    let r = unsafe {
        libc::ioctl(
            d.as_raw_fd(),
            XFS_IOC_FSGROWFSDATA,
            &arg as *const GrowfsData,
        )
    };
    if r != 0 {
        return Err(StorageError::io(
            mounted_dir,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(pct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_limit_rounds_up_to_whole_percent() {
        // 400M disk: 102400 blocks of 8 inodes; 1% = 1024 blocks = 8192 inodes.
        assert_eq!(max_icount(102_400, 1, 8), 8192);
        assert_eq!(pct_for(102_400, 8, 8192), Some(1));
        assert_eq!(pct_for(102_400, 8, 8193), Some(2));
        assert_eq!(pct_for(102_400, 8, 20_000), Some(3));
        assert_eq!(max_icount(102_400, 3, 8), 24_576);
        assert_eq!(pct_for(102_400, 8, 819_201), None);
        // Chunks: 64 inodes = 8 blocks; partial chunks do not count.
        assert_eq!(max_icount(1000, 1, 8), 64);
        assert_eq!(max_inodes(Size(400 * Size::MIB)), 819_200);
        // The model's bound (berth_core::checked, used by validation) is this one.
        for mib in [300u64, 400, 1000, 1024, 4097, 100_000] {
            let s = Size(mib * Size::MIB + 12_345);
            assert_eq!(
                berth_core::DiskFs::Xfs.max_inodes(s),
                max_inodes(s),
                "{mib}M"
            );
        }
    }

    #[test]
    fn parses_a_superblock() {
        let mut sb = [0u8; 512];
        sb[0..4].copy_from_slice(b"XFSB");
        sb[4..8].copy_from_slice(&4096u32.to_be_bytes());
        sb[8..16].copy_from_slice(&76_800u64.to_be_bytes());
        sb[88..92].copy_from_slice(&4u32.to_be_bytes());
        sb[96..100].copy_from_slice(&16_384u32.to_be_bytes());
        sb[106..108].copy_from_slice(&8u16.to_be_bytes());
        sb[127] = 3;
        sb[128..136].copy_from_slice(&192u64.to_be_bytes());
        sb[136..144].copy_from_slice(&187u64.to_be_bytes());
        sb[144..152].copy_from_slice(&60_368u64.to_be_bytes());
        let s = Superblock::parse(&sb).unwrap();
        let u = s.usage();
        assert_eq!(u.total_bytes, 60_416 * 4096);
        // 48 blocks in use, 3840 in the reserve pool (5%), 32 set aside for 4 AGs.
        assert_eq!(u.used_bytes, (48 + 3840 + 32) * 4096);
        assert_eq!(u.used_inodes, 5);
        assert_eq!(u.total_inodes, 18_432);
        sb[0] = b'x';
        assert!(Superblock::parse(&sb).is_none());
    }
}
