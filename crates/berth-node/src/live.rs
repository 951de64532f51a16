//! Changes made inside a running container from the host, as the container's own root: a
//! forked child joins the container's user, mount (and UTS) namespaces, so that every path
//! resolves in the container's view and every write has the container's rights, never the
//! host's. The child is bounded in time: a container that makes it hang (a FUSE mount over
//! /etc) only makes the change fail.

use crate::{NodeError, Result};
use std::time::{Duration, Instant};

/// How long a joined child may take.
const LIMIT: Duration = Duration::from_secs(5);

/// What the child does inside.
pub(crate) struct Inside<'a> {
    /// Set the hostname (the UTS namespace is joined for it), and with it `/etc/hostname`
    /// and the hostname line of `/etc/hosts` (edited in place, see `berth_core::hosts`).
    pub hostname: Option<&'a str>,
    /// Files to write: path inside, content.
    pub files: Vec<(&'a str, Vec<u8>)>,
}

fn inval(msg: String) -> NodeError {
    NodeError::Invalid(msg)
}

/// Runs `what` inside the running container whose init is `init_pid`.
pub(crate) fn inside(init_pid: i32, userns: bool, what: &Inside) -> Result<()> {
    use nix::sched::{setns, CloneFlags};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    let open = |n: &str| {
        let p = format!("/proc/{init_pid}/ns/{n}");
        std::fs::File::open(&p).map_err(|e| berth_core::CoreError::io(p, e))
    };
    let user = if userns { Some(open("user")?) } else { None };
    let mnt = open("mnt")?;
    let uts = if what.hostname.is_some() {
        Some(open("uts")?)
    } else {
        None
    };
    // Non-dumpable like every process Berth runs near a container (this one never enters
    // the container's PID namespace, so nothing inside can see it at all).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // SAFETY: the child makes syscalls and writes files, then _exits (the CLI calls this
    // single-threaded; see docs/api.md for berthd).
    match unsafe { fork() }.map_err(|e| inval(format!("fork: {e}")))? {
        ForkResult::Child => {
            let ok = (|| -> std::result::Result<(), String> {
                // Host root may join the container's namespaces (it holds every capability
                // over their owner, the container's user namespace); once in that user
                // namespace, it is the container's root there, with the rights of no more.
                if let Some(u) = &uts {
                    setns(u, CloneFlags::CLONE_NEWUTS).map_err(|e| e.to_string())?;
                }
                if let Some(u) = &user {
                    setns(u, CloneFlags::CLONE_NEWUSER).map_err(|e| e.to_string())?;
                }
                setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(|e| e.to_string())?;
                nix::unistd::setgroups(&[]).map_err(|e| e.to_string())?;
                nix::unistd::setresgid(0.into(), 0.into(), 0.into()).map_err(|e| e.to_string())?;
                nix::unistd::setresuid(0.into(), 0.into(), 0.into()).map_err(|e| e.to_string())?;
                if let Some(h) = what.hostname {
                    nix::unistd::sethostname(h).map_err(|e| format!("sethostname: {e}"))?;
                }
                let root = std::path::Path::new("/");
                let hostname_file = what
                    .hostname
                    .map(|h| ("/etc/hostname", format!("{h}\n").into_bytes()));
                for (path, content) in what.files.iter().chain(hostname_file.iter()) {
                    let rel = path.trim_start_matches('/');
                    berth_storage::safefs::write_file_in(root, rel, content, 0o644, 0, 0)
                        .map_err(|e| format!("{path}: {e}"))?;
                }
                if let Some(h) = what.hostname {
                    let old = berth_storage::safefs::read_in_tree(root, "etc/hosts", 16 << 20)
                        .ok()
                        .map(|b| String::from_utf8_lossy(&b).into_owned());
                    let new = berth_core::hosts::with_hostname(old.as_deref(), h);
                    if old.as_deref() != Some(new.as_str()) {
                        berth_storage::safefs::write_file_in(
                            root,
                            "etc/hosts",
                            new.as_bytes(),
                            0o644,
                            0,
                            0,
                        )
                        .map_err(|e| format!("/etc/hosts: {e}"))?;
                    }
                }
                Ok(())
            })();
            if let Err(e) = &ok {
                eprintln!("error: inside the container: {e}");
            }
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(if ok.is_ok() { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            let deadline = Instant::now() + LIMIT;
            loop {
                match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Ok(WaitStatus::StillAlive) => {
                        let _ = nix::sys::signal::kill(child, nix::sys::signal::SIGKILL);
                        let _ = waitpid(child, None);
                        return Err(inval(format!(
                            "the change inside the container did not finish within {}s",
                            LIMIT.as_secs()
                        )));
                    }
                    Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
                    Err(nix::errno::Errno::EINTR) => continue,
                    _ => {
                        return Err(inval(
                            "the change inside the container failed (see above)".into(),
                        ))
                    }
                }
            }
        }
    }
}
