//! A container's private area as a rustic [`ReadSource`], read so that nothing the container
//! does can make the backup read a host path or wait forever (ADR 0016).
//!
//! rustic's own `LocalSource` walks by path and opens each file with `File::open`, which
//! follows a symlink: a running container that swaps a file for a link to `/etc/shadow`
//! between the walk and the read would get the host's file into its own backup. This walker
//! instead holds a descriptor of each directory it is in, looks every name up with
//! `fstatat(AT_SYMLINK_NOFOLLOW)` relative to it, descends with `openat(O_DIRECTORY |
//! O_NOFOLLOW)` and opens files with `openat(O_NOFOLLOW | O_NONBLOCK)` (a FIFO swapped in
//! cannot block the open), then checks that what it opened is the regular file it listed
//! (same device and inode). A name that changed meanwhile is skipped and counted in the
//! [`Report`]; in a frozen pass nothing can change, so the count is of real read errors.
//!
//! Ownership is stored container-native: read through an idmapped mount (a running
//! container's), host IDs of the container's range are shifted back to 0-based.

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{
    ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError, RusticResult,
};
use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A file of Berth's own put beside the tree (the container's `config.toml`).
#[derive(Debug, Clone)]
pub struct Extra {
    pub name: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// What a walk could not read (a name gone or changed under it, an I/O error).
#[derive(Debug, Default)]
pub struct Report {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
    files: AtomicU64,
}

impl Report {
    fn add(&self, what: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() < 10 {
            f.push(what);
        }
    }
    /// Regular files walked so far (a backup's progress in files).
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }
    /// How many entries were skipped.
    pub fn skipped(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    /// The first few of them, as messages.
    pub fn messages(&self) -> Vec<String> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Host IDs `base..base+count` are the container's 0-based IDs.
#[derive(Debug, Clone, Copy)]
pub struct IdShift {
    pub base: u32,
    pub count: u32,
}

impl IdShift {
    fn native(shift: Option<IdShift>, id: u32) -> u32 {
        match shift {
            Some(s) if id >= s.base && id - s.base < s.count => id - s.base,
            _ => id,
        }
    }
}

/// The private area of one container: `extras` then the tree at `dir`, stored under
/// `prefix` (e.g. `/ct/101/config.toml`, `/ct/101/upper/…`).
#[derive(Debug, Clone)]
pub struct CtSource {
    dir: PathBuf,
    prefix: PathBuf,
    tree_name: String,
    extras: Vec<Extra>,
    shift: Option<IdShift>,
    report: Arc<Report>,
    size_hint: Option<u64>,
}

impl CtSource {
    /// The bytes the backup will likely read (the disk's used space): its progress's total.
    pub fn with_size_hint(mut self, bytes: Option<u64>) -> CtSource {
        self.size_hint = bytes;
        self
    }

    /// `tree_name` must sort after every extra's name (entries go out in path order).
    pub fn new(
        dir: &Path,
        prefix: &Path,
        tree_name: &str,
        mut extras: Vec<Extra>,
        shift: Option<IdShift>,
    ) -> CtSource {
        extras.sort_by(|a, b| a.name.cmp(&b.name));
        debug_assert!(extras.iter().all(|e| e.name.as_str() < tree_name));
        CtSource {
            dir: dir.into(),
            prefix: prefix.into(),
            tree_name: tree_name.into(),
            extras,
            shift,
            report: Arc::default(),
            size_hint: None,
        }
    }
    pub fn report(&self) -> Arc<Report> {
        self.report.clone()
    }
}

/// How an entry's content is read.
#[derive(Debug)]
pub enum Opener {
    Bytes(Vec<u8>),
    File {
        dir: Arc<OwnedFd>,
        name: CString,
        dev: u64,
        ino: u64,
        shown: PathBuf,
        report: Arc<Report>,
    },
}

impl ReadSourceOpen for Opener {
    type Reader = Box<dyn Read + Send>;
    fn open(self) -> RusticResult<Self::Reader> {
        match self {
            Opener::Bytes(b) => Ok(Box::new(std::io::Cursor::new(b))),
            Opener::File {
                dir,
                name,
                dev,
                ino,
                shown,
                report,
            } => match open_regular(&dir, &name, dev, ino) {
                Ok(f) => Ok(Box::new(f)),
                Err(e) => {
                    report.add(format!("{}: {e}", shown.display()));
                    Err(
                        RusticError::with_source(ErrorKind::InputOutput, "cannot read `{path}`", e)
                            .attach_context("path", shown.display().to_string()),
                    )
                }
            },
        }
    }
}

fn stat_at(dir: &OwnedFd, name: &CString) -> std::io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstatat on an owned directory fd with a NUL-terminated name, into `st`.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fstatat succeeded and filled it.
    Ok(unsafe { st.assume_init() })
}

fn open_at(dir: &OwnedFd, name: &CString, flags: i32) -> std::io::Result<OwnedFd> {
    let base = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: openat relative to an owned directory fd; the result is checked.
    let mut fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), base | libc::O_NOATIME) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
        // SAFETY: as above, without O_NOATIME (not the file's owner).
        fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), base) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor openat just returned, owned from here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `name` in `dir` only if it is still the regular file `dev`/`ino` that was listed.
fn open_regular(dir: &OwnedFd, name: &CString, dev: u64, ino: u64) -> std::io::Result<File> {
    let fd = open_at(dir, name, libc::O_RDONLY | libc::O_NONBLOCK)?;
    let f = File::from(fd);
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    if !m.file_type().is_file() || m.dev() != dev || m.ino() != ino {
        return Err(std::io::Error::other(
            "changed while it was being backed up",
        ));
    }
    Ok(f)
}

fn fstat(fd: &OwnedFd) -> std::io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat of an owned fd into `st`.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded.
    Ok(unsafe { st.assume_init() })
}

/// The names in a directory, sorted bytewise (the order rustic's trees need).
fn names(dir: &OwnedFd) -> std::io::Result<Vec<OsString>> {
    // SAFETY: dup of an owned fd; the copy is given to fdopendir below (or closed).
    let copy = unsafe { libc::dup(dir.as_raw_fd()) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fdopendir takes ownership of `copy`.
    let d = unsafe { libc::fdopendir(copy) };
    if d.is_null() {
        let e = std::io::Error::last_os_error();
        // SAFETY: fdopendir failed and did not take it.
        unsafe { libc::close(copy) };
        return Err(e);
    }
    // SAFETY: reading from a directory stream we own; rewind in case the fd was read.
    unsafe { libc::rewinddir(d) };
    let mut out = vec![];
    loop {
        // SAFETY: readdir on our stream; errno tells an error from the end.
        unsafe { *libc::__errno_location() = 0 };
        let e = unsafe { libc::readdir(d) };
        if e.is_null() {
            let err = std::io::Error::last_os_error();
            // SAFETY: closing our stream (and with it `copy`).
            unsafe { libc::closedir(d) };
            if err.raw_os_error().unwrap_or(0) != 0 {
                return Err(err);
            }
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry.
        let n = unsafe { std::ffi::CStr::from_ptr((*e).d_name.as_ptr()) };
        let b = n.to_bytes();
        if b != b"." && b != b".." {
            out.push(OsStr::from_bytes(b).to_os_string());
        }
    }
    out.sort();
    Ok(out)
}

fn ts(sec: i64, nsec: i64) -> Option<rustic_core::jiff::Timestamp> {
    rustic_core::jiff::Timestamp::new(sec, nsec as i32).ok()
}

/// Go's `fs.FileMode` bits, which restic stores (rustic's mapper, restated).
pub fn go_mode(mode: u32) -> u32 {
    let mut m = mode & 0o777;
    m |= match mode & libc::S_IFMT {
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFDIR => 1 << 31,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        libc::S_IFIFO => 1 << 25,
        _ => 0,
    };
    if mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

/// The extended attributes of `name` in `dir`, the link itself for a symlink (through the
/// directory's descriptor: the lookup cannot leave it).
fn xattrs(dir: &OwnedFd, name: &OsStr) -> Vec<(String, Vec<u8>)> {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(name);
    let mut out = vec![];
    if let Ok(list) = xattr::list(&p) {
        for a in list {
            if let (Some(n), Ok(Some(v))) = (a.to_str(), xattr::get(&p, &a)) {
                out.push((n.to_string(), v));
            }
        }
    }
    out.sort();
    out
}

fn meta(st: &libc::stat, shift: Option<IdShift>, xa: Vec<(String, Vec<u8>)>) -> Metadata {
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let is_reg = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    let mut m = Metadata {
        mode: Some(go_mode(st.st_mode)),
        mtime: ts(st.st_mtime, st.st_mtime_nsec),
        atime: ts(st.st_atime, st.st_atime_nsec),
        ctime: ts(st.st_ctime, st.st_ctime_nsec),
        uid: Some(IdShift::native(shift, st.st_uid)),
        gid: Some(IdShift::native(shift, st.st_gid)),
        user: None,
        group: None,
        inode: st.st_ino,
        device_id: st.st_dev,
        size: if is_reg { st.st_size as u64 } else { 0 },
        links: if is_dir { 0 } else { st.st_nlink },
        ..Default::default()
    };
    if !xa.is_empty() {
        use base64::Engine;
        let list: Vec<serde_json::Value> = xa
            .into_iter()
            .map(|(n, v)| {
                serde_json::json!({
                    "name": n,
                    "value": base64::engine::general_purpose::STANDARD.encode(v),
                })
            })
            .collect();
        // rustic_core does not export its xattr type; it is built from restic's JSON form.
        if let Ok(v) = serde_json::from_value(serde_json::Value::Array(list)) {
            m.extended_attributes = v;
        }
    }
    m
}

struct Frame {
    dir: Arc<OwnedFd>,
    path: PathBuf,
    names: Vec<OsString>,
    idx: usize,
}

/// The walk, depth first in path order.
pub struct Walker {
    src: CtSource,
    extras: VecDeque<Extra>,
    root_pending: bool,
    stack: Vec<Frame>,
}

impl ReadSource for CtSource {
    type Open = Opener;
    type Iter = Walker;
    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(self.size_hint)
    }
    fn entries(&self) -> Walker {
        Walker {
            src: self.clone(),
            extras: self.extras.clone().into(),
            root_pending: true,
            stack: vec![],
        }
    }
}

type Entry = ReadSourceEntry<Opener>;

impl Walker {
    fn note_skip(&self, path: &Path, e: impl std::fmt::Display) {
        self.src.report.add(format!("{}: {e}", path.display()));
    }

    fn open_root(&mut self) -> RusticResult<Option<Entry>> {
        let shown = self.src.prefix.join(&self.src.tree_name);
        let c = CString::new(self.src.dir.as_os_str().as_bytes())
            .map_err(|e| RusticError::with_source(ErrorKind::InvalidInput, "bad source path", e))?;
        let io = |e: std::io::Error| {
            RusticError::with_source(ErrorKind::InputOutput, "cannot open `{path}`", e)
                .attach_context("path", self.src.dir.display().to_string())
        };
        // SAFETY: open of a NUL-terminated path; the result is checked.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        // SAFETY: a descriptor open just returned.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = fstat(&fd).map_err(io)?;
        let ns = names(&fd).map_err(io)?;
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        p.push(".");
        let xa = xattrs_of_path(&p);
        let node = Node::new_node(
            OsStr::new(&self.src.tree_name),
            NodeType::Dir,
            meta(&st, self.src.shift, xa),
        );
        self.stack.push(Frame {
            dir: Arc::new(fd),
            path: shown.clone(),
            names: ns,
            idx: 0,
        });
        Ok(Some(Entry {
            path: shown,
            node,
            open: None,
        }))
    }

    fn next_in_tree(&mut self) -> Option<Entry> {
        loop {
            let top = self.stack.last_mut()?;
            if top.idx >= top.names.len() {
                self.stack.pop();
                continue;
            }
            let name = top.names[top.idx].clone();
            top.idx += 1;
            let dir = top.dir.clone();
            let path = top.path.join(&name);
            let Ok(c) = CString::new(name.as_bytes()) else {
                continue;
            };
            let st = match stat_at(&dir, &c) {
                Ok(st) => st,
                Err(e) => {
                    self.note_skip(&path, e);
                    continue;
                }
            };
            let xa = xattrs(&dir, &name);
            let fmt = st.st_mode & libc::S_IFMT;
            let m = meta(&st, self.src.shift, xa);
            let (node_type, open) = match fmt {
                libc::S_IFDIR => {
                    let sub = match open_at(&dir, &c, libc::O_RDONLY | libc::O_DIRECTORY) {
                        Ok(fd) => fd,
                        Err(e) => {
                            self.note_skip(&path, e);
                            continue;
                        }
                    };
                    match fstat(&sub) {
                        Ok(s2) if s2.st_ino == st.st_ino && s2.st_dev == st.st_dev => {}
                        _ => {
                            self.note_skip(&path, "changed while it was being backed up");
                            continue;
                        }
                    }
                    let ns = match names(&sub) {
                        Ok(n) => n,
                        Err(e) => {
                            self.note_skip(&path, e);
                            continue;
                        }
                    };
                    self.stack.push(Frame {
                        dir: Arc::new(sub),
                        path: path.clone(),
                        names: ns,
                        idx: 0,
                    });
                    (NodeType::Dir, None)
                }
                libc::S_IFREG => (
                    {
                        self.src.report.files.fetch_add(1, Ordering::Relaxed);
                        NodeType::File
                    },
                    Some(Opener::File {
                        dir,
                        name: c,
                        dev: st.st_dev,
                        ino: st.st_ino,
                        shown: path.clone(),
                        report: self.src.report.clone(),
                    }),
                ),
                libc::S_IFLNK => match readlink_at(&dir, &c) {
                    Ok(t) => (NodeType::from_link(Path::new(OsStr::from_bytes(&t))), None),
                    Err(e) => {
                        self.note_skip(&path, e);
                        continue;
                    }
                },
                libc::S_IFCHR => (NodeType::Chardev { device: st.st_rdev }, None),
                libc::S_IFBLK => (NodeType::Dev { device: st.st_rdev }, None),
                libc::S_IFIFO => (NodeType::Fifo, None),
                libc::S_IFSOCK => (NodeType::Socket, None),
                _ => continue,
            };
            return Some(Entry {
                path,
                node: Node::new_node(&name, node_type, m),
                open,
            });
        }
    }
}

fn xattrs_of_path(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    if let Ok(list) = xattr::list(p) {
        for a in list {
            if let (Some(n), Ok(Some(v))) = (a.to_str(), xattr::get(p, &a)) {
                out.push((n.to_string(), v));
            }
        }
    }
    out.sort();
    out
}

fn readlink_at(dir: &OwnedFd, name: &CString) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: readlinkat into a buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

impl Iterator for Walker {
    type Item = RusticResult<Entry>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(x) = self.extras.pop_front() {
            let meta = Metadata {
                mode: Some(go_mode(libc::S_IFREG | x.mode)),
                mtime: Some(rustic_core::jiff::Timestamp::now()),
                uid: Some(0),
                gid: Some(0),
                size: x.content.len() as u64,
                links: 1,
                ..Default::default()
            };
            return Some(Ok(Entry {
                path: self.src.prefix.join(&x.name),
                node: Node::new_node(OsStr::new(&x.name), NodeType::File, meta),
                open: Some(Opener::Bytes(x.content)),
            }));
        }
        if self.root_pending {
            self.root_pending = false;
            return self.open_root().transpose();
        }
        self.next_in_tree().map(Ok)
    }
}
