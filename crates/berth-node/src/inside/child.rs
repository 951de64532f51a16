//! What the joined child does, as the container's root in the container's view (its user
//! and mount namespaces, or a chroot into its overlay when it is stopped): every path is
//! resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` against `/`, so even a
//! symlink the container planted ends inside the container, and every file is opened
//! non-blocking and checked to be what is expected before it is read.

use super::accounts::{today, Accounts, LoginDefs, NewUser};
use super::hash;
use super::proto::{read_frame, write_frame, Op};
use berth_api::inside::{clean_path, CtPassword, CtUserAdd, FileEntry, FileKind, FilePush};
use berth_api::{Error, ErrorKind};
use berth_storage::safefs::{open_beneath, open_beneath_mode};
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Largest account file or login.defs read (an /etc/passwd is far smaller).
const MAX_ACCOUNT_FILE: u64 = 2 << 20;
/// Most entries `file ls` lists.
const MAX_ENTRIES: usize = 100_000;
/// Copy buffer of pushes and pulls.
const BUF: usize = 128 * 1024;
/// How long the account files' lock is waited for (lckpwdf's 15 s).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

pub(super) struct Ctx {
    /// `/` of the container.
    pub root: OwnedFd,
    /// IDs the container has (0..limit).
    pub id_limit: u32,
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    let kind = match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => ErrorKind::NotFound,
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            return Error::new(
                ErrorKind::Precondition,
                format!("{what}: no space left on the container's disk"),
            )
        }
        Some(libc::EXDEV) | Some(libc::ELOOP) => {
            return Error::invalid(format!(
                "{what}: refused (a symbolic link that cannot be followed safely)"
            ))
        }
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => ErrorKind::Precondition,
        Some(libc::EISDIR) | Some(libc::EINVAL) | Some(libc::ENAMETOOLONG) => ErrorKind::Invalid,
        Some(libc::EEXIST) | Some(libc::ENOTEMPTY) => ErrorKind::Conflict,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("{what}: {e}"))
}

fn sys_err(what: &str, e: nix::Error) -> Error {
    io_err(what, std::io::Error::from(e))
}

/// The directory and the last component of an absolute, validated path.
fn split(path: &str) -> (String, String) {
    let p = clean_path(path);
    match p.rsplit_once('/') {
        Some(("", n)) => ("/".into(), n.into()),
        Some((d, n)) => (d.into(), n.into()),
        None => ("/".into(), p),
    }
}

fn kind_of(st: &FileStat) -> FileKind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => FileKind::Dir,
        libc::S_IFLNK => FileKind::Symlink,
        libc::S_IFIFO => FileKind::Fifo,
        libc::S_IFSOCK => FileKind::Socket,
        libc::S_IFCHR => FileKind::Char,
        libc::S_IFBLK => FileKind::Block,
        _ => FileKind::File,
    }
}

fn entry(path: &str, st: &FileStat, target: Option<String>) -> FileEntry {
    FileEntry {
        path: clean_path(path),
        kind: kind_of(st),
        size: st.st_size.max(0) as u64,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime,
        target,
    }
}

fn readlink_at(dir: &impl AsRawFd, name: &str) -> Option<String> {
    nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name)
        .ok()
        .map(|t| t.to_string_lossy().into_owned())
}

impl Ctx {
    fn open(&self, path: &str, flags: i32) -> Result<OwnedFd, Error> {
        open_beneath(&self.root, path, flags).map_err(|e| io_err(path, e))
    }

    /// The directory holding `path`, and its last component.
    fn parent(&self, path: &str) -> Result<(OwnedFd, String), Error> {
        let (dir, name) = split(path);
        let fd = self.open(&dir, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK)?;
        Ok((fd, name))
    }

    fn stat(&self, path: &str) -> Result<FileEntry, Error> {
        if clean_path(path) == "/" {
            let st = fstat(self.root.as_raw_fd()).map_err(|e| sys_err(path, e))?;
            return Ok(entry("/", &st, None));
        }
        let (dir, name) = self.parent(path)?;
        let st = fstatat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| sys_err(path, e))?;
        let target = (kind_of(&st) == FileKind::Symlink)
            .then(|| readlink_at(&dir, &name))
            .flatten();
        Ok(entry(path, &st, target))
    }

    fn list(&self, path: &str) -> Result<Vec<FileEntry>, Error> {
        let me = self.stat(path)?;
        if me.kind != FileKind::Dir && me.kind != FileKind::Symlink {
            return Ok(vec![me]);
        }
        // A directory, or a symlink to one inside the container (`ls /var/log` follows it).
        let fd = match self.open(path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK) {
            Ok(fd) => fd,
            Err(_) if me.kind == FileKind::Symlink => return Ok(vec![me]),
            Err(e) => return Err(e),
        };
        let dup = fd.try_clone().map_err(|e| io_err(path, e))?;
        let mut d = nix::dir::Dir::from_fd(dup.as_raw_fd()).map_err(|e| sys_err(path, e))?;
        std::mem::forget(dup); // owned by `d` now
        let base = clean_path(path);
        let mut out = vec![];
        for e in d.iter() {
            let e = e.map_err(|e| sys_err(path, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            if out.len() >= MAX_ENTRIES {
                return Err(Error::new(
                    ErrorKind::Precondition,
                    format!("{path}: more than {MAX_ENTRIES} entries"),
                ));
            }
            let st = match fstatat(
                Some(fd.as_raw_fd()),
                name.as_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                Err(_) => continue, // removed meanwhile
            };
            let target = (kind_of(&st) == FileKind::Symlink)
                .then(|| readlink_at(&fd, &name))
                .flatten();
            let p = if base == "/" {
                format!("/{name}")
            } else {
                format!("{base}/{name}")
            };
            out.push(entry(&p, &st, target));
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Opens a regular file for reading (never blocking on a FIFO or device).
    fn open_regular(&self, path: &str) -> Result<(std::fs::File, FileStat), Error> {
        let fd = self.open(path, libc::O_RDONLY | libc::O_NONBLOCK)?;
        let st = fstat(fd.as_raw_fd()).map_err(|e| sys_err(path, e))?;
        if kind_of(&st) != FileKind::File {
            return Err(Error::invalid(format!(
                "{path} is not a regular file (a {})",
                match kind_of(&st) {
                    FileKind::Dir => "directory",
                    FileKind::Fifo => "FIFO",
                    FileKind::Socket => "socket",
                    FileKind::Char => "character device",
                    FileKind::Block => "block device",
                    _ => "special file",
                }
            )));
        }
        Ok((std::fs::File::from(fd), st))
    }

    /// Writes the entry, then the file's bytes (as many as its size said), to stdout.
    fn pull(&self, path: &str) -> Result<FileEntry, Error> {
        let (f, st) = self.open_regular(path)?;
        let e = entry(path, &st, None);
        // SAFETY: fd 1 is this process's stdout (the helper's pipe to the caller).
        let mut out = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
        let head = serde_json::to_vec(&e).map_err(|x| Error::internal(x.to_string()))?;
        write_frame(&mut *out, &head).map_err(|x| io_err("sending the file", x))?;
        let mut left = e.size;
        let mut buf = vec![0u8; BUF];
        let mut f = f;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = match f.read(&mut buf[..want]) {
                Ok(0) => break, // shrunk meanwhile: the caller sees fewer bytes than announced
                Ok(n) => n,
                Err(x) if x.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(x) => return Err(io_err(path, x)),
            };
            out.write_all(&buf[..n])
                .map_err(|x| io_err("sending the file", x))?;
            left -= n as u64;
        }
        if left > 0 {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("{path} shrank while it was read"),
            ));
        }
        Ok(e)
    }

    fn check_id(&self, v: u32, what: &str) -> Result<(), Error> {
        if v >= self.id_limit {
            return Err(Error::invalid(format!(
                "{what} {v} is outside the container's IDs (0 to {})",
                self.id_limit - 1
            )));
        }
        Ok(())
    }

    /// Reads framed data from stdin into a new file beside `req.path`, then renames it over.
    fn push(&self, req: &FilePush) -> Result<FileEntry, Error> {
        let path = req.path.as_str();
        let (dir, name) = self.parent(path)?;
        let old = fstatat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok();
        let old_file = old.filter(|s| kind_of(s) == FileKind::File);
        if old.as_ref().is_some_and(|s| kind_of(s) == FileKind::Dir) {
            return Err(Error::invalid(format!(
                "{path} is a directory: name the file to write in it"
            )));
        }
        let mode = req
            .mode
            .or(old_file.map(|s| s.st_mode & 0o7777))
            .unwrap_or(0o644);
        let uid = req.uid.or(old_file.map(|s| s.st_uid)).unwrap_or(0);
        let gid = req.gid.or(old_file.map(|s| s.st_gid)).unwrap_or(0);
        self.check_id(uid, "UID")?;
        self.check_id(gid, "GID")?;
        let (tmp, f) = create_temp(&dir, &name, 0o600).map_err(|e| io_err(path, e))?;
        let res = (|| -> Result<FileEntry, Error> {
            let mut f = f;
            nix::unistd::fchown(
                f.as_raw_fd(),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(|e| sys_err(path, e))?;
            // SAFETY: fd 0 is this process's stdin (the helper's pipe from the caller).
            let mut input = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
            loop {
                match read_frame(&mut *input, super::proto::MAX_FRAME) {
                    Ok(Some(chunk)) if chunk.is_empty() => break,
                    Ok(Some(chunk)) => f.write_all(&chunk).map_err(|e| io_err(path, e))?,
                    Ok(None) => {
                        return Err(Error::new(
                            ErrorKind::Internal,
                            format!("{path}: the transfer was interrupted (nothing written)"),
                        ))
                    }
                    Err(e) => return Err(io_err("receiving the file", e)),
                }
            }
            f.sync_all().map_err(|e| io_err(path, e))?;
            // After chown, which clears setuid and setgid bits.
            nix::sys::stat::fchmod(f.as_raw_fd(), Mode::from_bits_truncate(mode))
                .map_err(|e| sys_err(path, e))?;
            nix::fcntl::renameat(
                Some(dir.as_raw_fd()),
                tmp.as_str(),
                Some(dir.as_raw_fd()),
                name.as_str(),
            )
            .map_err(|e| sys_err(path, e))?;
            let _ = nix::unistd::fsync(dir.as_raw_fd());
            let st = fstat(f.as_raw_fd()).map_err(|e| sys_err(path, e))?;
            Ok(entry(path, &st, None))
        })();
        if res.is_err() {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        res
    }

    /// Makes directory `path` (its parent must exist) or takes the existing one; then its
    /// owner and mode. Never follows a symlink at `path`.
    fn mkdir(&self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<FileEntry, Error> {
        if clean_path(path) == "/" {
            return Err(Error::invalid("cannot make the root directory"));
        }
        self.check_id(uid, "UID")?;
        self.check_id(gid, "GID")?;
        let (dir, name) = self.parent(path)?;
        match fstatat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if kind_of(&st) == FileKind::Dir => {}
            Ok(_) => {
                return Err(Error::invalid(format!(
                    "{path} exists and is not a directory"
                )))
            }
            Err(nix::errno::Errno::ENOENT) => {
                nix::sys::stat::mkdirat(
                    Some(dir.as_raw_fd()),
                    name.as_str(),
                    Mode::from_bits_truncate(0o700),
                )
                .map_err(|e| sys_err(path, e))?;
            }
            Err(e) => return Err(sys_err(path, e)),
        }
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_NONBLOCK
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys_err(path, e))?;
        // SAFETY: openat just returned this descriptor; owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        nix::unistd::fchown(
            fd.as_raw_fd(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| sys_err(path, e))?;
        nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode & 0o7777))
            .map_err(|e| sys_err(path, e))?;
        let st = fstat(fd.as_raw_fd()).map_err(|e| sys_err(path, e))?;
        Ok(entry(path, &st, None))
    }

    /// Makes symlink `path` → `target` (a name beside it, renamed over a file or link of
    /// that name; a directory there is refused).
    fn symlink(&self, path: &str, target: &str, uid: u32, gid: u32) -> Result<FileEntry, Error> {
        if clean_path(path) == "/" || target.is_empty() || target.contains('\0') {
            return Err(Error::invalid(format!("{path}: not a symlink to make")));
        }
        self.check_id(uid, "UID")?;
        self.check_id(gid, "GID")?;
        let (dir, name) = self.parent(path)?;
        if let Ok(st) = fstatat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            if kind_of(&st) == FileKind::Dir {
                return Err(Error::invalid(format!(
                    "{path} is a directory: it is not replaced by a link"
                )));
            }
        }
        let mut r = [0u8; 6];
        getrandom::getrandom(&mut r).map_err(|e| Error::internal(e.to_string()))?;
        let tag: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let base: String = name.chars().take(200).collect();
        let tmp = format!(".{base}.berth-{tag}");
        nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), tmp.as_str())
            .map_err(|e| sys_err(path, e))?;
        let res = (|| -> Result<(), Error> {
            // The owner set through a descriptor of the link just made (O_PATH, checked to be
            // a symlink): a name the container swaps meanwhile re-owns nothing else.
            let fd = nix::fcntl::openat(
                Some(dir.as_raw_fd()),
                tmp.as_str(),
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_NOFOLLOW
                    | nix::fcntl::OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| sys_err(path, e))?;
            // SAFETY: openat just returned this descriptor; owned here.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let st = fstat(fd.as_raw_fd()).map_err(|e| sys_err(path, e))?;
            if kind_of(&st) != FileKind::Symlink {
                return Err(Error::invalid(format!(
                    "{path}: the link being made was replaced"
                )));
            }
            nix::unistd::fchownat(
                Some(fd.as_raw_fd()),
                "",
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
                AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| sys_err(path, e))?;
            nix::fcntl::renameat(
                Some(dir.as_raw_fd()),
                tmp.as_str(),
                Some(dir.as_raw_fd()),
                name.as_str(),
            )
            .map_err(|e| sys_err(path, e))
        })();
        if let Err(e) = res {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            return Err(e);
        }
        self.stat(path)
    }

    fn remove(&self, path: &str) -> Result<(), Error> {
        if clean_path(path) == "/" {
            return Err(Error::invalid("cannot remove the root directory"));
        }
        let (dir, name) = self.parent(path)?;
        let st = fstatat(
            Some(dir.as_raw_fd()),
            name.as_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| sys_err(path, e))?;
        let flag = if kind_of(&st) == FileKind::Dir {
            nix::unistd::UnlinkatFlags::RemoveDir
        } else {
            nix::unistd::UnlinkatFlags::NoRemoveDir
        };
        nix::unistd::unlinkat(Some(dir.as_raw_fd()), name.as_str(), flag).map_err(|e| {
            if e == nix::errno::Errno::ENOTEMPTY || e == nix::errno::Errno::EEXIST {
                Error::new(
                    ErrorKind::Precondition,
                    format!("{path} is a directory that is not empty"),
                )
            } else {
                sys_err(path, e)
            }
        })
    }

    /// A small regular file of the container (`None` when it does not exist).
    fn read_small(&self, path: &str) -> Result<Option<(String, FileStat)>, Error> {
        match self.open_regular(path) {
            Ok((f, st)) => {
                let mut buf = vec![];
                f.take(MAX_ACCOUNT_FILE + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| io_err(path, e))?;
                if buf.len() as u64 > MAX_ACCOUNT_FILE {
                    return Err(Error::invalid(format!("{path} is larger than 2 MiB")));
                }
                Ok(Some((String::from_utf8_lossy(&buf).into_owned(), st)))
            }
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Creates `.NAME.berth-RANDOM` in `dir` (`O_EXCL`, never following anything).
fn create_temp(dir: &OwnedFd, name: &str, mode: u32) -> std::io::Result<(String, std::fs::File)> {
    let base: String = name.chars().take(200).collect();
    for _ in 0..16 {
        let mut r = [0u8; 6];
        getrandom::getrandom(&mut r).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tag: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = format!(".{base}.berth-{tag}");
        match nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            nix::fcntl::OFlag::O_CREAT
                | nix::fcntl::OFlag::O_EXCL
                | nix::fcntl::OFlag::O_WRONLY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        ) {
            // SAFETY: a new descriptor we own.
            Ok(fd) => {
                return Ok((
                    tmp,
                    std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }),
                ))
            }
            Err(nix::errno::Errno::EEXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
}

/// The account files, read under the container's `/etc/.pwd.lock` (lckpwdf's convention:
/// an fcntl write lock), and written back atomically.
struct AccountFiles<'a> {
    ctx: &'a Ctx,
    etc: OwnedFd,
    _lock: std::fs::File,
    defs: LoginDefs,
    db: Accounts,
    /// Mode, owner of each file as read.
    meta: Vec<(&'static str, Option<FileStat>)>,
}

const FILES: [&str; 4] = ["passwd", "shadow", "group", "gshadow"];

fn lock_file(ctx: &Ctx) -> Result<std::fs::File, Error> {
    let fd = open_beneath_mode(
        &ctx.root,
        "/etc/.pwd.lock",
        libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0o600,
    )
    .map_err(|e| io_err("/etc/.pwd.lock", e))?;
    let f = std::fs::File::from(fd);
    let st = fstat(f.as_raw_fd()).map_err(|e| sys_err("/etc/.pwd.lock", e))?;
    if kind_of(&st) != FileKind::File {
        return Err(Error::invalid("/etc/.pwd.lock is not a regular file"));
    }
    let until = std::time::Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: a zeroed flock is a valid argument; the fields are set below.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as i16;
        fl.l_whence = libc::SEEK_SET as i16;
        // SAFETY: fcntl F_SETLK with a valid descriptor and flock.
        if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
            return Ok(f);
        }
        if std::time::Instant::now() >= until {
            return Err(Error::new(
                ErrorKind::Conflict,
                "the container's account files are locked (/etc/.pwd.lock): another passwd, useradd or vipw runs inside; try again",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

impl<'a> AccountFiles<'a> {
    fn open(ctx: &'a Ctx) -> Result<Self, Error> {
        let etc = ctx.open(
            "/etc",
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK,
        )?;
        let lock = lock_file(ctx)?;
        let mut texts: Vec<Option<String>> = vec![];
        let mut meta = vec![];
        for f in FILES {
            let r = ctx.read_small(&format!("/etc/{f}"))?;
            meta.push((f, r.as_ref().map(|(_, st)| *st)));
            texts.push(r.map(|(t, _)| t));
        }
        let (Some(passwd), Some(group)) = (&texts[0], &texts[2]) else {
            return Err(Error::new(
                ErrorKind::Precondition,
                "the container has no /etc/passwd or /etc/group",
            ));
        };
        let defs = ctx
            .read_small("/etc/login.defs")?
            .map(|(t, _)| LoginDefs::parse(&t))
            .unwrap_or_default();
        let db = Accounts::parse(passwd, texts[1].as_deref(), group, texts[3].as_deref());
        Ok(AccountFiles {
            ctx,
            etc,
            _lock: lock,
            defs,
            db,
            meta,
        })
    }

    /// Writes the files that changed: each into a temporary file beside it (mode and owner
    /// of the old one), synced; then all renamed over the old ones.
    fn commit(&self, before: &Accounts) -> Result<(), Error> {
        let new = [
            Some(self.db.passwd.render()),
            self.db.shadow.as_ref().map(|t| t.render()),
            Some(self.db.group.render()),
            self.db.gshadow.as_ref().map(|t| t.render()),
        ];
        let old = [
            Some(before.passwd.render()),
            before.shadow.as_ref().map(|t| t.render()),
            Some(before.group.render()),
            before.gshadow.as_ref().map(|t| t.render()),
        ];
        let mut temps: Vec<(String, &str)> = vec![];
        let res = (|| -> Result<(), Error> {
            for (i, name) in FILES.iter().enumerate() {
                let (Some(text), true) = (&new[i], new[i] != old[i]) else {
                    continue;
                };
                let st = self.meta[i].1;
                let (mode, uid, gid) = st
                    .map(|s| (s.st_mode & 0o7777, s.st_uid, s.st_gid))
                    .unwrap_or((0o644, 0, 0));
                let (tmp, mut f) = create_temp(&self.etc, name, 0o600)
                    .map_err(|e| io_err(&format!("/etc/{name}"), e))?;
                temps.push((tmp, name));
                let what = format!("/etc/{name}");
                nix::unistd::fchown(
                    f.as_raw_fd(),
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                )
                .map_err(|e| sys_err(&what, e))?;
                nix::sys::stat::fchmod(f.as_raw_fd(), Mode::from_bits_truncate(mode))
                    .map_err(|e| sys_err(&what, e))?;
                f.write_all(text.as_bytes()).map_err(|e| io_err(&what, e))?;
                f.sync_all().map_err(|e| io_err(&what, e))?;
            }
            for (tmp, name) in &temps {
                nix::fcntl::renameat(
                    Some(self.etc.as_raw_fd()),
                    tmp.as_str(),
                    Some(self.etc.as_raw_fd()),
                    *name,
                )
                .map_err(|e| sys_err(&format!("/etc/{name}"), e))?;
            }
            let _ = nix::unistd::fsync(self.etc.as_raw_fd());
            Ok(())
        })();
        if res.is_err() {
            for (tmp, _) in &temps {
                let _ = nix::unistd::unlinkat(
                    Some(self.etc.as_raw_fd()),
                    tmp.as_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
            }
        }
        res
    }

    fn exists(&self, path: &str) -> bool {
        self.ctx.open(path, libc::O_PATH).is_ok()
    }

    fn new_user(&self, add: &CtUserAdd) -> Result<NewUser, Error> {
        let hash = match &add.password {
            Some(p) => Some(hash::hash(p, &self.defs)?),
            None => None,
        };
        let shell = add.shell.clone().unwrap_or_else(|| {
            if self.exists("/bin/bash") {
                "/bin/bash".into()
            } else {
                "/bin/sh".into()
            }
        });
        Ok(NewUser {
            name: add.name.clone(),
            uid: add.uid,
            gid: add.gid,
            groups: add.groups.clone(),
            gecos: add.gecos.clone().unwrap_or_default(),
            home: add
                .home
                .as_deref()
                .map(clean_path)
                .unwrap_or_else(|| format!("/home/{}", add.name)),
            shell,
            hash,
        })
    }

    /// Creates a new user's home directory (0700, the user's) when it does not exist.
    fn make_home(&self, home: &str, uid: u32, gid: u32) -> Result<(), Error> {
        if home == "/" || self.exists(home) {
            return Ok(());
        }
        self.ctx.mkdir(home, 0o700, uid, gid).map(|_| ())
    }
}

fn json<T: serde::Serialize>(v: T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::internal(e.to_string()))
}

/// Runs one operation inside; its answer as JSON.
pub(super) fn run(ctx: &Ctx, op: Op) -> Result<serde_json::Value, Error> {
    match op {
        Op::UserList => {
            let a = AccountFiles::open(ctx)?;
            json(a.db.users())
        }
        Op::GroupList => {
            let a = AccountFiles::open(ctx)?;
            json(a.db.groups())
        }
        Op::UserAdd(add) => {
            let mut a = AccountFiles::open(ctx)?;
            let before = a.db.clone();
            let n = a.new_user(&add)?;
            let u = a.db.add_user(&n, &a.defs, ctx.id_limit, &today())?;
            a.commit(&before)?;
            if !add.no_create_home {
                a.make_home(&n.home, u.uid, u.gid)?;
            }
            json(u)
        }
        Op::UserDel { name, busy } => {
            let mut a = AccountFiles::open(ctx)?;
            let before = a.db.clone();
            let u = a
                .db
                .user(&name)
                .ok_or_else(|| Error::not_found(format!("no user {name:?} in the container")))?;
            let pids: Vec<String> = busy
                .iter()
                .filter(|(uid, _)| *uid == u.uid)
                .map(|(_, p)| p.to_string())
                .collect();
            if !pids.is_empty() {
                return Err(Error::new(
                    ErrorKind::Precondition,
                    format!(
                        "user {name:?} (UID {}) has running processes (PIDs {} inside): stop them first",
                        u.uid,
                        pids.join(", ")
                    ),
                ));
            }
            a.db.del_user(&name)?;
            a.commit(&before)?;
            json(())
        }
        Op::Passwd { name, req } => {
            let CtPassword { password, create } = req;
            let mut a = AccountFiles::open(ctx)?;
            let before = a.db.clone();
            let hash = hash::hash(&password, &a.defs)?;
            let missing = a.db.user(&name).is_none();
            let u = if missing && create {
                let add = CtUserAdd {
                    name: name.clone(),
                    ..Default::default()
                };
                let mut n = a.new_user(&add)?;
                n.hash = Some(hash);
                let u = a.db.add_user(&n, &a.defs, ctx.id_limit, &today())?;
                a.commit(&before)?;
                a.make_home(&n.home, u.uid, u.gid)?;
                u
            } else {
                let u = a.db.set_hash(&name, &hash, &today())?;
                a.commit(&before)?;
                u
            };
            json(u)
        }
        Op::GroupAdd(add) => {
            let mut a = AccountFiles::open(ctx)?;
            let before = a.db.clone();
            a.db.add_group(&add.name, add.gid, &a.defs, ctx.id_limit)?;
            a.commit(&before)?;
            json(a.db.group_entry(&add.name))
        }
        Op::GroupDel { name } => {
            let mut a = AccountFiles::open(ctx)?;
            let before = a.db.clone();
            a.db.del_group(&name)?;
            a.commit(&before)?;
            json(())
        }
        Op::Stat { path } => json(ctx.stat(&path)?),
        Op::List { path } => json(ctx.list(&path)?),
        Op::Pull { path } => json(ctx.pull(&path)?),
        Op::Push(req) => json(ctx.push(&req)?),
        Op::Remove { path } => json(ctx.remove(&path)?),
        Op::Mkdir {
            path,
            mode,
            uid,
            gid,
        } => json(ctx.mkdir(&path, mode, uid, gid)?),
        Op::Symlink {
            path,
            target,
            uid,
            gid,
        } => json(ctx.symlink(&path, &target, uid, gid)?),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_paths() {
        assert_eq!(super::split("/etc/hosts"), ("/etc".into(), "hosts".into()));
        assert_eq!(super::split("/x"), ("/".into(), "x".into()));
        assert_eq!(super::split("/srv//a/"), ("/srv".into(), "a".into()));
    }
}
