//! `berth __inside`: the helper process that does one operation inside a container. It is
//! a fresh single-threaded process (so the fork below is safe even when the caller is
//! berthd), dies with its caller (`PR_SET_PDEATHSIG`), and is not dumpable.
//!
//! - Running container: a forked child joins the user and mount namespaces of its init
//!   (`setns` on a pidfd checked against the init's start time), becomes the container's
//!   root and works on `/`.
//! - Stopped container (the caller holds its lock): the helper mounts its disk and layers
//!   as a start does ([`berth_storage::rootfs::prepare_access`]); a forked child joins a
//!   user namespace of the container's ID map, makes a mount namespace of its own there,
//!   mounts the container's overlay, `chroot`s into it and works on `/`; then the helper
//!   unmounts everything.
//!
//! The child never enters the container's PID namespace (nothing inside can see it), and
//! resolves every path with `openat2(RESOLVE_IN_ROOT)` on top ([`super::child`]).

use super::child::{self, Ctx};
use super::proto::{read_frame, Answer, Request, Running, MAX_FRAME};
use berth_api::{Error, ErrorKind};
use berth_core::{ContainerConfig, CtId, NodeRoot};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The helper's main: reads the request on stdin, writes its answer as the last line of
/// stderr; exit status 0 when it could answer.
pub fn helper_main(root: &Path) -> i32 {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    // SAFETY: fd 0 is stdin; read unbuffered, exactly the request's bytes (the data of a
    // push that follows is read by the child).
    let mut stdin = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    let answer = match read_frame(&mut *stdin, MAX_FRAME) {
        Ok(Some(b)) => match serde_json::from_slice::<Request>(&b) {
            Ok(req) => match serve(root, req) {
                Ok(v) => Answer::Ok(v),
                Err(e) => Answer::Err(e),
            },
            Err(e) => Answer::Err(Error::internal(format!("bad request to the helper: {e}"))),
        },
        _ => Answer::Err(Error::internal("no request on the helper's stdin")),
    };
    let line = serde_json::to_string(&answer).unwrap_or_else(|_| "{}".into());
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n{line}");
    0
}

fn fail(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what}: {e}"))
}

fn serve(root: &Path, req: Request) -> Result<serde_json::Value, Error> {
    let nroot = NodeRoot::new(root);
    let id = CtId(req.ctid);
    let cfg = ContainerConfig::load(&nroot, id).map_err(|e| e.to_api())?;
    let userns = !cfg.privileged && cfg.idmap.is_some();
    let id_limit = cfg
        .idmap
        .filter(|_| userns)
        .map(|m| m.size)
        .unwrap_or(berth_api::inside::ID_LIMIT)
        .min(berth_api::inside::ID_LIMIT);
    match req.running {
        Some(r) => {
            let pid = r.init_pid;
            let pidfd = open_init(r, id)?;
            // Whether to join a user namespace is read off the running init (after its
            // pidfd pinned it), not the config: if the two ever disagreed, the child must
            // not stay host root in the container's tree.
            let userns = init_in_other_userns(pid).unwrap_or(userns);
            in_child(id_limit, || join_running(&pidfd, userns), req.op)
        }
        None => {
            let prep =
                berth_storage::rootfs::prepare_access(&nroot, &cfg).map_err(|e| e.to_api())?;
            let target = nroot.ct_run_dir(id).join("access");
            let res = (|| {
                berth_core::fsutil::create_dir_mode(&target, 0o755).map_err(|e| e.to_api())?;
                let ns = match (userns, cfg.idmap) {
                    (true, Some(map)) => {
                        Some(berth_storage::userns::userns_fd(&map).map_err(|e| e.to_api())?)
                    }
                    _ => None,
                };
                let mut opts = prep.overlay_options();
                if userns {
                    opts.push("userxattr".into());
                }
                let opts = opts.join(",");
                in_child(
                    id_limit,
                    || mount_stopped(ns.as_ref(), &target, &opts),
                    req.op,
                )
            })();
            let down = berth_storage::rootfs::teardown(&nroot, id);
            let _ = std::fs::remove_dir(&target);
            let v = res?;
            down.map_err(|e| e.to_api())?;
            Ok(v)
        }
    }
}

/// A pidfd of the container's init, checked to be the process the caller saw.
fn open_init(r: Running, id: CtId) -> Result<OwnedFd, Error> {
    let gone = || {
        Error::new(
            ErrorKind::Precondition,
            format!("container {id} stopped meanwhile"),
        )
    };
    let fd = berth_core::pidfd::open(r.init_pid).map_err(|_| gone())?;
    if berth_runtime::state::process_starttime(r.init_pid) != Some(r.init_starttime) {
        return Err(gone());
    }
    Ok(fd)
}

/// Whether `pid` lives in another user namespace than this process.
fn init_in_other_userns(pid: i32) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/user")).ok()?;
    let ours = std::fs::metadata("/proc/self/ns/user").ok()?;
    Some((theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()))
}

fn errno(what: &str) -> impl Fn(nix::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// In the child: the container's user and mount namespaces, as its root.
fn join_running(pidfd: &OwnedFd, userns: bool) -> Result<(), String> {
    use nix::sched::{setns, CloneFlags};
    let mut flags = CloneFlags::CLONE_NEWNS;
    if userns {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    setns(pidfd, flags).map_err(errno("joining the container"))?;
    become_root()?;
    nix::unistd::chdir("/").map_err(errno("chdir /"))
}

fn become_root() -> Result<(), String> {
    nix::unistd::setgroups(&[]).map_err(errno("setgroups"))?;
    nix::unistd::setresgid(0.into(), 0.into(), 0.into()).map_err(errno("setresgid"))?;
    nix::unistd::setresuid(0.into(), 0.into(), 0.into()).map_err(errno("setresuid"))
}

/// In the child: a user namespace of the container's map, a mount namespace of its own,
/// the container's overlay mounted there, and a chroot into it.
fn mount_stopped(ns: Option<&OwnedFd>, target: &Path, opts: &str) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{setns, unshare, CloneFlags};
    if let Some(ns) = ns {
        setns(ns, CloneFlags::CLONE_NEWUSER).map_err(errno("joining the user namespace"))?;
        become_root()?;
    }
    unshare(CloneFlags::CLONE_NEWNS).map_err(errno("unshare"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(errno("making mounts private"))?;
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts),
    )
    .map_err(errno("mounting the container's root"))?;
    nix::unistd::chroot(target).map_err(errno("chroot"))?;
    nix::unistd::chdir("/").map_err(errno("chdir /"))
}

/// Forks a child that enters the container with `enter`, then runs `op` there; its answer.
/// The child keeps stdin and stdout (a push's data, a pull's answer); this process lets go
/// of both at once, so that the caller sees their ends when the child's work ends.
fn in_child(
    id_limit: u32,
    enter: impl FnOnce() -> Result<(), String>,
    op: super::proto::Op,
) -> Result<serde_json::Value, Error> {
    use nix::sys::wait::waitpid;
    use nix::unistd::{fork, ForkResult};
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail("pipe", e))?;
    // SAFETY: this helper is single-threaded; the child runs this crate's code and exits.
    match unsafe { fork() }.map_err(|e| fail("fork", e))? {
        ForkResult::Child => {
            drop(rd);
            // Dies with the helper (killed at its stall limit, or with berthd): a child blocked
            // on a FUSE mount of the container must not outlive it and pin its namespace.
            // SAFETY: prctl with constant arguments; getppid cannot fail.
            unsafe {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                if libc::getppid() == 1 {
                    libc::_exit(1);
                }
            }
            let res = enter()
                .map_err(|e| Error::internal(format!("entering the container: {e}")))
                .and_then(|_| {
                    let root = std::fs::File::open("/").map_err(|e| fail("opening /", e))?;
                    let ctx = Ctx {
                        root: OwnedFd::from(root),
                        id_limit,
                    };
                    child::run(&ctx, op)
                });
            let a = match res {
                Ok(v) => Answer::Ok(v),
                Err(e) => Answer::Err(e),
            };
            let mut w = std::fs::File::from(wr);
            let _ = w.write_all(serde_json::to_string(&a).unwrap_or_default().as_bytes());
            drop(w);
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                // SAFETY: dup2 onto this process's own stdin and stdout.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                }
            }
            let mut out = vec![];
            let _ = std::fs::File::from(rd)
                .take(256 << 20)
                .read_to_end(&mut out);
            let status = loop {
                match waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    s => break s,
                }
            };
            match serde_json::from_slice::<Answer>(&out) {
                Ok(Answer::Ok(v)) => Ok(v),
                Ok(Answer::Err(e)) => Err(e),
                Err(_) => Err(Error::internal(format!(
                    "the helper inside the container ended without an answer ({status:?})"
                ))),
            }
        }
    }
}
