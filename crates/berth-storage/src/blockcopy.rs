//! Sparse copies of a virtual disk image: for `clone`, and the block rounds that online
//! migration reuses (issue 18, docs/clone.md).
//!
//! Two ways:
//!
//! - [`clone_file`] for a disk nobody writes (a stopped container): a reflink (`FICLONE`)
//!   where the node filesystem has them (XFS, btrfs), else `copy_file_range` over each data
//!   extent found with `SEEK_DATA`/`SEEK_HOLE`, so holes are never read nor written.
//! - [`round`] for a disk that is being written (a running container): the image is read in
//!   1 MiB blocks — only blocks with allocated data — each hashed with BLAKE3 into a
//!   [`BlockMap`]; a block whose hash is the one the previous round saw is not sent again,
//!   a block that became a hole is punched in the copy. Rounds run while the container
//!   writes; the last one after it is frozen and its filesystem synced, so it sends only
//!   what changed since the round before. The blocks go to a [`BlockSink`]: a local file
//!   here ([`FileSink`]), a connection to another node for migration.
//!
//! Pages of zeros are never written: the copy stays as sparse as the source.

use crate::progress::Progress;
use crate::{Result, StorageError};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Block size of [`round`]s and of migration's transfer.
pub const BLOCK: u64 = 1 << 20;
const PAGE: usize = 4096;
static ZERO_PAGE: [u8; PAGE] = [0; PAGE];

/// What a round saw of the source: the BLAKE3 hash of each block holding allocated data.
/// Blocks absent from it were holes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BlockMap {
    hashes: BTreeMap<u64, [u8; 32]>,
}

impl BlockMap {
    pub fn len(&self) -> usize {
        self.hashes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
    pub fn get(&self, index: u64) -> Option<&[u8; 32]> {
        self.hashes.get(&index)
    }
}

/// What one [`round`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundStats {
    /// Blocks with data read from the source.
    pub scanned: u64,
    /// Blocks sent (new or changed since the previous round).
    pub sent: u64,
    /// Bytes of those blocks (pages of zeros included: what a sink is handed).
    pub bytes: u64,
    /// Blocks that became holes since the previous round.
    pub punched: u64,
}

/// Where a round's blocks go.
pub trait BlockSink {
    /// Gives the copy the source's length (first, and after each round: an image may grow).
    fn set_len(&mut self, len: u64) -> Result<()>;
    /// Replaces block `index` with `data` (at most [`BLOCK`] bytes; shorter at the end of
    /// the image). `fresh`: the copy holds nothing there yet (a hole).
    fn write_block(&mut self, index: u64, data: &[u8], fresh: bool) -> Result<()>;
    /// Makes block `index` a hole (`len` bytes, shorter at the end of the image).
    fn punch_block(&mut self, index: u64, len: u64) -> Result<()>;
    /// Everything sent is durable.
    fn flush(&mut self) -> Result<()>;
}

/// A [`BlockSink`] writing into a local file that starts empty.
pub struct FileSink {
    file: File,
    path: std::path::PathBuf,
}

impl FileSink {
    /// Creates `path` (it must not exist), mode 0600.
    pub fn create(path: &Path) -> Result<FileSink> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| StorageError::io(path, e))?;
        Ok(FileSink {
            file,
            path: path.to_path_buf(),
        })
    }
    fn io(&self, e: std::io::Error) -> StorageError {
        StorageError::io(&self.path, e)
    }
}

impl BlockSink for FileSink {
    fn set_len(&mut self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| self.io(e))
    }
    fn write_block(&mut self, index: u64, data: &[u8], fresh: bool) -> Result<()> {
        let off = index * BLOCK;
        if !fresh {
            punch(&self.file, off, data.len() as u64).map_err(|e| self.io(e))?;
        }
        for (i, page) in data.chunks(PAGE).enumerate() {
            if page == &ZERO_PAGE[..page.len()] {
                continue;
            }
            self.file
                .write_all_at(page, off + (i * PAGE) as u64)
                .map_err(|e| self.io(e))?;
        }
        Ok(())
    }
    fn punch_block(&mut self, index: u64, len: u64) -> Result<()> {
        punch(&self.file, index * BLOCK, len).map_err(|e| self.io(e))
    }
    fn flush(&mut self) -> Result<()> {
        self.file.sync_all().map_err(|e| self.io(e))
    }
}

fn punch(f: &File, off: u64, len: u64) -> std::io::Result<()> {
    // SAFETY: fallocate on an open descriptor; no memory is passed.
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off as libc::off_t,
            len as libc::off_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The data extents of `f` (`[start, end)` byte ranges), from `SEEK_DATA`/`SEEK_HOLE`.
pub fn data_extents(f: &File) -> std::io::Result<Vec<(u64, u64)>> {
    data_extents_upto(f, f.metadata()?.len())
}

/// [`data_extents`] below `len` (a length read once: the file may grow meanwhile).
fn data_extents_upto(f: &File, len: u64) -> std::io::Result<Vec<(u64, u64)>> {
    let fd = f.as_raw_fd();
    let mut out = vec![];
    let mut pos: u64 = 0;
    while pos < len {
        // SAFETY: lseek on an open descriptor.
        let start = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if start < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // no data after pos
            }
            return Err(e);
        }
        // SAFETY: as above.
        let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        if end < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let (start, end) = (start as u64, (end as u64).min(len));
        if end <= start {
            break;
        }
        out.push((start, end));
        pos = end;
    }
    Ok(out)
}

/// Bytes of allocated data in `f` (its blocks on disk).
pub fn allocated(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| StorageError::io(path, e))?;
    Ok(m.blocks() * 512)
}

fn open_source(src: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(src)
        .map_err(|e| StorageError::io(src, e))
}

/// One round: reads every block of `src` holding data, sends those whose hash differs from
/// `prev` (all of them when `prev` is empty and the sink is fresh), punches blocks that
/// `prev` had and that are holes now. Returns this round's map, the input of the next.
pub fn round(
    src: &Path,
    prev: &BlockMap,
    sink: &mut dyn BlockSink,
    p: &dyn Progress,
) -> Result<(BlockMap, RoundStats)> {
    let f = open_source(src)?;
    let len = f.metadata().map_err(|e| StorageError::io(src, e))?.len();
    let blocks = blocks_with_data(&f, len).map_err(|e| StorageError::io(src, e))?;
    sink.set_len(len)?;
    let mut map = BlockMap::default();
    let mut st = RoundStats::default();
    let mut buf = vec![0u8; BLOCK as usize];
    let total = blocks.len() as u64;
    p.update(0, Some(total));
    for (n, &idx) in blocks.iter().enumerate() {
        let off = idx * BLOCK;
        let want = (len - off).min(BLOCK) as usize;
        let data = &mut buf[..want];
        read_full_at(&f, data, off).map_err(|e| StorageError::io(src, e))?;
        let h: [u8; 32] = *blake3::hash(data).as_bytes();
        let before = prev.hashes.get(&idx);
        if before != Some(&h) {
            sink.write_block(idx, data, before.is_none())?;
            st.sent += 1;
            st.bytes += want as u64;
        }
        map.hashes.insert(idx, h);
        st.scanned += 1;
        if n % 64 == 63 {
            p.update(n as u64 + 1, Some(total));
        }
    }
    for &idx in prev.hashes.keys() {
        let off = idx * BLOCK;
        if !map.hashes.contains_key(&idx) && off < len {
            sink.punch_block(idx, (len - off).min(BLOCK))?;
            st.punched += 1;
        }
    }
    sink.flush()?;
    p.update(total, Some(total));
    Ok((map, st))
}

/// Reads `buf.len()` bytes at `off` (the image does not shrink under a round: a short read
/// is an error).
fn read_full_at(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    f.read_exact_at(buf, off)
}

/// Indices of the blocks that hold any allocated data.
fn blocks_with_data(f: &File, len: u64) -> std::io::Result<Vec<u64>> {
    let mut out: Vec<u64> = vec![];
    for (s, e) in data_extents_upto(f, len)? {
        let (first, last) = (s / BLOCK, (e - 1) / BLOCK);
        for b in first..=last {
            if out.last() != Some(&b) {
                out.push(b);
            }
        }
    }
    Ok(out)
}

/// How [`clone_file`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneMethod {
    /// A reflink: the copy shares the source's blocks until either is written.
    Reflink,
    /// `copy_file_range` over the data extents.
    CopyRange,
    /// read/write over the data extents (where `copy_file_range` is refused).
    ReadWrite,
}

/// Copies `src` (nobody writes it meanwhile) to the new file `dst`, sparsely: see the module
/// comment. `dst` must not exist; it is created 0600. Reports bytes of data copied.
pub fn clone_file(src: &Path, dst: &Path, p: &dyn Progress) -> Result<CloneMethod> {
    let f = open_source(src)?;
    let sink = FileSink::create(dst)?;
    let out = sink.file;
    let len = f.metadata().map_err(|e| StorageError::io(src, e))?.len();
    // SAFETY: FICLONE takes the source descriptor as its argument.
    let r = unsafe { libc::ioctl(out.as_raw_fd(), FICLONE, f.as_raw_fd()) };
    if r == 0 {
        p.update(len, Some(len));
        return Ok(CloneMethod::Reflink);
    }
    out.set_len(len).map_err(|e| StorageError::io(dst, e))?;
    let extents = data_extents(&f).map_err(|e| StorageError::io(src, e))?;
    let total: u64 = extents.iter().map(|(s, e)| e - s).sum();
    let mut done = 0u64;
    let mut method = CloneMethod::CopyRange;
    p.update(0, Some(total));
    for (s, e) in extents {
        let mut off = s;
        while off < e {
            let chunk = (e - off).min(64 * BLOCK) as usize;
            let n = if method == CloneMethod::CopyRange {
                let mut a = off as libc::loff_t;
                let mut b = off as libc::loff_t;
                // SAFETY: both descriptors are open; the offsets are ours.
                let n = unsafe {
                    libc::copy_file_range(f.as_raw_fd(), &mut a, out.as_raw_fd(), &mut b, chunk, 0)
                };
                if n < 0 {
                    let err = std::io::Error::last_os_error();
                    match err.raw_os_error() {
                        Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
                            method = CloneMethod::ReadWrite;
                            continue;
                        }
                        _ => return Err(StorageError::io(dst, err)),
                    }
                }
                n as u64
            } else {
                copy_rw(&f, &out, off, chunk).map_err(|e| StorageError::io(dst, e))?
            };
            if n == 0 {
                return Err(StorageError::io(
                    src,
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "image shrank"),
                ));
            }
            off += n;
            done += n;
            p.update(done, Some(total));
        }
    }
    out.sync_all().map_err(|e| StorageError::io(dst, e))?;
    Ok(method)
}

/// FICLONE = _IOW(0x94, 9, int).
const FICLONE: libc::c_ulong = 0x4004_9409;

fn copy_rw(src: &File, dst: &File, off: u64, len: usize) -> std::io::Result<u64> {
    let mut buf = vec![0u8; len.min(BLOCK as usize)];
    let n = src.read_at(&mut buf, off)?;
    for (i, page) in buf[..n].chunks(PAGE).enumerate() {
        if page != &ZERO_PAGE[..page.len()] {
            dst.write_all_at(page, off + (i * PAGE) as u64)?;
        }
    }
    Ok(n as u64)
}

/// A [`BlockSink`] that runs `check` before every `every`-th block it passes on, and stops
/// the copy with its error: a copy that must give up before the node filesystem's reserve
/// is eaten, while the source (which it holds locked) writes on.
pub struct GuardedSink<'a> {
    inner: &'a mut dyn BlockSink,
    check: &'a dyn Fn() -> Result<()>,
    every: u64,
    n: u64,
}

impl<'a> GuardedSink<'a> {
    pub fn new(
        inner: &'a mut dyn BlockSink,
        every: u64,
        check: &'a dyn Fn() -> Result<()>,
    ) -> Self {
        GuardedSink {
            inner,
            check,
            every: every.max(1),
            n: 0,
        }
    }
}

impl BlockSink for GuardedSink<'_> {
    fn set_len(&mut self, len: u64) -> Result<()> {
        self.inner.set_len(len)
    }
    fn write_block(&mut self, index: u64, data: &[u8], fresh: bool) -> Result<()> {
        if self.n.is_multiple_of(self.every) {
            (self.check)()?;
        }
        self.n += 1;
        self.inner.write_block(index, data, fresh)
    }
    fn punch_block(&mut self, index: u64, len: u64) -> Result<()> {
        self.inner.punch_block(index, len)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}

/// A [`BlockSink`] that writes the blocks as frames into a byte stream (a connection to
/// another node), read back by [`apply_stream`]. Frames, integers big-endian:
/// `L len:u64` (set_len), `B index:u64 size:u32` + a zstd frame of `size` bytes (a block),
/// `P index:u64 len:u64` (a hole), `F` (a round's end), `E` (the end of the disk).
pub struct StreamSink<W: std::io::Write> {
    out: W,
    /// Bytes written, frames included (what went over the wire).
    pub sent: u64,
}

impl<W: std::io::Write> StreamSink<W> {
    pub fn new(out: W) -> Self {
        StreamSink { out, sent: 0 }
    }
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.out
            .write_all(b)
            .map_err(|e| StorageError::io("the block stream", e))?;
        self.sent += b.len() as u64;
        Ok(())
    }
    /// Ends the stream: the receiver commits what it has.
    pub fn finish(mut self) -> Result<W> {
        self.put(b"E")?;
        self.out
            .flush()
            .map_err(|e| StorageError::io("the block stream", e))?;
        Ok(self.out)
    }
}

impl<W: std::io::Write> BlockSink for StreamSink<W> {
    fn set_len(&mut self, len: u64) -> Result<()> {
        let mut f = vec![b'L'];
        f.extend(len.to_be_bytes());
        self.put(&f)
    }
    fn write_block(&mut self, index: u64, data: &[u8], _fresh: bool) -> Result<()> {
        let z = zstd::bulk::compress(data, 1)
            .map_err(|e| StorageError::io("compressing a block", e))?;
        let mut f = Vec::with_capacity(z.len() + 13);
        f.push(b'B');
        f.extend(index.to_be_bytes());
        f.extend((z.len() as u32).to_be_bytes());
        f.extend(z);
        self.put(&f)
    }
    fn punch_block(&mut self, index: u64, len: u64) -> Result<()> {
        let mut f = vec![b'P'];
        f.extend(index.to_be_bytes());
        f.extend(len.to_be_bytes());
        self.put(&f)
    }
    fn flush(&mut self) -> Result<()> {
        self.put(b"F")?;
        self.out
            .flush()
            .map_err(|e| StorageError::io("the block stream", e))
    }
}

/// Reads a [`StreamSink`]'s frames from `input` into `sink` until `E`; an end of input
/// before it, or a frame out of bounds (a block past `max_len`, a length above it, a block
/// that does not decompress to at most [`BLOCK`] bytes), is an error and the caller drops
/// what it received. Returns the image's final length.
pub fn apply_stream(
    input: &mut dyn std::io::Read,
    sink: &mut dyn BlockSink,
    max_len: u64,
    p: &dyn Progress,
) -> Result<u64> {
    let bad = |why: String| StorageError::io("the block stream", std::io::Error::other(why));
    let rd = |input: &mut dyn std::io::Read, buf: &mut [u8]| {
        input
            .read_exact(buf)
            .map_err(|e| StorageError::io("the block stream", e))
    };
    let mut len = 0u64;
    let mut blocks = 0u64;
    let mut z = vec![];
    loop {
        let mut tag = [0u8; 1];
        rd(input, &mut tag)?;
        match tag[0] {
            b'L' => {
                let mut b = [0u8; 8];
                rd(input, &mut b)?;
                len = u64::from_be_bytes(b);
                if len > max_len {
                    return Err(bad(format!("an image of {len} bytes, above {max_len}")));
                }
                sink.set_len(len)?;
            }
            b'B' => {
                let mut h = [0u8; 12];
                rd(input, &mut h)?;
                let idx = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
                let size = u32::from_be_bytes(h[8..].try_into().expect("4 bytes")) as usize;
                if size > 2 * BLOCK as usize {
                    return Err(bad(format!("a compressed block of {size} bytes")));
                }
                z.resize(size, 0);
                rd(input, &mut z)?;
                let data = zstd::bulk::decompress(&z, BLOCK as usize)
                    .map_err(|e| bad(format!("block {idx}: {e}")))?;
                let end = idx
                    .checked_mul(BLOCK)
                    .and_then(|o| o.checked_add(data.len() as u64));
                if end.is_none_or(|e| e > len) {
                    return Err(bad(format!("block {idx} lies past the image's end")));
                }
                sink.write_block(idx, &data, false)?;
                blocks += 1;
                if blocks.is_multiple_of(64) {
                    p.update(blocks * BLOCK, None);
                }
            }
            b'P' => {
                let mut h = [0u8; 16];
                rd(input, &mut h)?;
                let idx = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
                let plen = u64::from_be_bytes(h[8..].try_into().expect("8 bytes"));
                let end = idx.checked_mul(BLOCK).and_then(|o| o.checked_add(plen));
                if plen > BLOCK || end.is_none_or(|e| e > len) {
                    return Err(bad(format!("hole {idx} lies past the image's end")));
                }
                sink.punch_block(idx, plen)?;
            }
            b'F' => sink.flush()?,
            b'E' => {
                sink.flush()?;
                return Ok(len);
            }
            t => return Err(bad(format!("unknown frame {t:#04x}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    fn write_at(p: &Path, off: u64, data: &[u8]) {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.write_all_at(data, off).unwrap();
    }

    fn sparse(dir: &Path, len: u64) -> std::path::PathBuf {
        let p = dir.join("src.img");
        let f = File::create(&p).unwrap();
        f.set_len(len).unwrap();
        p
    }

    fn same(a: &Path, b: &Path) -> bool {
        std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
    }

    #[test]
    fn extents_and_allocation() {
        let d = tempfile::tempdir().unwrap();
        let src = sparse(d.path(), 64 * BLOCK);
        assert!(data_extents(&File::open(&src).unwrap()).unwrap().is_empty());
        write_at(&src, 3 * BLOCK + 10, b"hello");
        write_at(&src, 40 * BLOCK, &vec![7u8; 2 * BLOCK as usize]);
        let blocks = blocks_with_data(&File::open(&src).unwrap(), 64 * BLOCK).unwrap();
        assert_eq!(blocks, vec![3, 40, 41]);
    }

    #[test]
    fn rounds_send_only_changes_and_punch_holes() {
        let d = tempfile::tempdir().unwrap();
        let src = sparse(d.path(), 32 * BLOCK + 5000);
        write_at(&src, 0, b"first block");
        write_at(&src, 10 * BLOCK, &vec![1u8; BLOCK as usize]);
        write_at(&src, 32 * BLOCK + 100, b"tail");
        let dst = d.path().join("dst.img");
        let mut sink = FileSink::create(&dst).unwrap();
        let (m1, s1) = round(&src, &BlockMap::default(), &mut sink, &NoProgress).unwrap();
        assert_eq!((s1.scanned, s1.sent, s1.punched), (3, 3, 0));
        assert!(same(&src, &dst));
        // The copy stays sparse: 3 blocks' worth at most (the first and last mostly zeros).
        assert!(allocated(&dst).unwrap() <= BLOCK + 3 * PAGE as u64 * 2);

        // Nothing changed: nothing sent.
        let (m2, s2) = round(&src, &m1, &mut sink, &NoProgress).unwrap();
        assert_eq!((s2.sent, s2.punched), (0, 0));
        assert_eq!(m1, m2);

        // One block changed, one new, one became a hole, one shrank to fewer pages.
        write_at(&src, 10 * BLOCK + 4096, b"changed");
        write_at(&src, 20 * BLOCK, b"new");
        punch(
            &std::fs::OpenOptions::new().write(true).open(&src).unwrap(),
            0,
            BLOCK,
        )
        .unwrap();
        let (_, s3) = round(&src, &m2, &mut sink, &NoProgress).unwrap();
        assert_eq!((s3.sent, s3.punched), (2, 1));
        assert!(same(&src, &dst));
    }

    #[test]
    fn a_changed_block_with_fewer_pages_leaves_no_old_data() {
        let d = tempfile::tempdir().unwrap();
        let src = sparse(d.path(), 4 * BLOCK);
        write_at(&src, BLOCK, &vec![9u8; BLOCK as usize]);
        let dst = d.path().join("dst.img");
        let mut sink = FileSink::create(&dst).unwrap();
        let (m1, _) = round(&src, &BlockMap::default(), &mut sink, &NoProgress).unwrap();
        // Zeros written over most of the block (allocated zeros in the source).
        write_at(&src, BLOCK, &vec![0u8; BLOCK as usize - 8]);
        let (_, s) = round(&src, &m1, &mut sink, &NoProgress).unwrap();
        assert_eq!(s.sent, 1);
        assert!(same(&src, &dst));
        assert!(allocated(&dst).unwrap() <= 2 * PAGE as u64);
    }

    #[test]
    fn the_image_may_grow_between_rounds() {
        let d = tempfile::tempdir().unwrap();
        let src = sparse(d.path(), 2 * BLOCK);
        write_at(&src, 0, b"a");
        let dst = d.path().join("dst.img");
        let mut sink = FileSink::create(&dst).unwrap();
        let (m1, _) = round(&src, &BlockMap::default(), &mut sink, &NoProgress).unwrap();
        File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_len(8 * BLOCK)
            .unwrap();
        write_at(&src, 7 * BLOCK + 1, b"z");
        round(&src, &m1, &mut sink, &NoProgress).unwrap();
        assert!(same(&src, &dst));
    }

    #[test]
    fn clone_file_is_sparse_and_exact() {
        let d = tempfile::tempdir().unwrap();
        let src = sparse(d.path(), 100 * BLOCK);
        write_at(&src, 5 * BLOCK, &vec![3u8; 3 * BLOCK as usize]);
        write_at(&src, 99 * BLOCK + 7, b"end");
        let dst = d.path().join("copy.img");
        clone_file(&src, &dst, &NoProgress).unwrap();
        assert!(same(&src, &dst));
        assert!(allocated(&dst).unwrap() <= allocated(&src).unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dst).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // An existing destination is refused, never overwritten.
        assert!(clone_file(&src, &dst, &NoProgress).is_err());
    }

    #[test]
    fn a_symlinked_source_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = sparse(d.path(), BLOCK);
        let link = d.path().join("link.img");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(clone_file(&link, &d.path().join("x.img"), &NoProgress).is_err());
        let mut sink = FileSink::create(&d.path().join("y.img")).unwrap();
        assert!(round(&link, &BlockMap::default(), &mut sink, &NoProgress).is_err());
    }

    #[test]
    fn a_stream_carries_rounds_exactly_and_refuses_garbage() {
        let d = tempfile::tempdir().unwrap();
        let src = sparse(d.path(), 8 * BLOCK + 100);
        write_at(&src, 2 * BLOCK + 5, b"two");
        write_at(&src, 8 * BLOCK + 1, b"tail");
        let mut wire = StreamSink::new(Vec::new());
        let (m1, _) = round(&src, &BlockMap::default(), &mut wire, &NoProgress).unwrap();
        write_at(&src, 5 * BLOCK, b"five");
        punch(
            &std::fs::OpenOptions::new().write(true).open(&src).unwrap(),
            2 * BLOCK,
            BLOCK,
        )
        .unwrap();
        round(&src, &m1, &mut wire, &NoProgress).unwrap();
        let bytes = wire.finish().unwrap();
        let dst = d.path().join("dst.img");
        let mut sink = FileSink::create(&dst).unwrap();
        let len = apply_stream(&mut &bytes[..], &mut sink, 1 << 40, &NoProgress).unwrap();
        assert_eq!(len, 8 * BLOCK + 100);
        assert!(same(&src, &dst));
        // A stream cut short, a block past the end, an image too big: refused.
        for bad in [
            bytes[..bytes.len() - 1].to_vec(),
            {
                let mut w = StreamSink::new(Vec::new());
                w.set_len(BLOCK).unwrap();
                w.write_block(3, b"x", true).unwrap();
                w.finish().unwrap()
            },
            {
                let mut w = StreamSink::new(Vec::new());
                w.set_len(1 << 41).unwrap();
                w.finish().unwrap()
            },
            b"Zjunk".to_vec(),
        ] {
            let mut sink = FileSink::create(&d.path().join(format!("x{}.img", bad.len()))).unwrap();
            assert!(apply_stream(&mut &bad[..], &mut sink, 1 << 40, &NoProgress).is_err());
        }
    }

    #[test]
    fn a_guarded_copy_stops_when_its_check_fails() {
        let d = tempfile::tempdir().unwrap();
        let src = sparse(d.path(), 40 * BLOCK);
        for i in 0..40 {
            write_at(&src, i * BLOCK, b"data");
        }
        let calls = std::cell::Cell::new(0u32);
        let check = || -> Result<()> {
            calls.set(calls.get() + 1);
            if calls.get() > 2 {
                return Err(StorageError::io(
                    "the node filesystem",
                    std::io::Error::other("under its reserve"),
                ));
            }
            Ok(())
        };
        let mut file = FileSink::create(&d.path().join("dst.img")).unwrap();
        let mut g = GuardedSink::new(&mut file, 16, &check);
        let e = round(&src, &BlockMap::default(), &mut g, &NoProgress).unwrap_err();
        assert!(e.to_string().contains("reserve"), "{e}");
        // Checked before blocks 0, 16 and 32: the third check stopped it.
        assert_eq!(calls.get(), 3);
    }
}
