//! Users, groups, passwords and files inside a container, running or stopped, changed from
//! the host in the container's own view (issue 20; `docs/users-and-files.md`).
//!
//! Every operation runs in a helper process, `berth __inside` ([`helper`]), so that the
//! fork into the container never happens in a multi-threaded caller (berthd): the caller
//! resolves the container, holds its lock while a stopped one's root is mounted, sends the
//! request (and a push's data) on the helper's stdin and reads the answer (and a pull's
//! data), killing the helper's process group when it makes no progress for
//! [`STALL_LIMIT`] (a FUSE mount inside that never answers).

mod accounts;
mod child;
mod hash;
mod helper;
mod proto;

pub use hash::verify as verify_password;
pub use helper::helper_main;

use crate::{LocalNode, NodeError};
use berth_api::inside::{
    validate_account_name, validate_password, validate_path, CtGroup, CtGroupAdd, CtPassword,
    CtUser, CtUserAdd, FileEntry, FilePush, FileSink,
};
use berth_api::{CtRef, Error, ErrorKind, Result};
use berth_core::ops::CtStatus;
use proto::{read_frame, write_frame, Answer, Op, Request, Running, MAX_FRAME};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Child, ChildStderr, ChildStdin, Command, Stdio};
use std::time::Duration;

/// How long the helper may make no progress (no byte taken or given, no answer).
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

fn api<T>(r: crate::Result<T>) -> Result<T> {
    r.map_err(|e: NodeError| e.to_api())
}

fn stalled() -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "the operation inside the container made no progress for {}s and was stopped",
            STALL_LIMIT.as_secs()
        ),
    )
}

/// Waits until `fd` is ready for `events`, at most [`STALL_LIMIT`].
fn wait_ready(fd: &impl AsFd, events: nix::poll::PollFlags) -> Result<()> {
    use nix::poll::{poll, PollFd, PollTimeout};
    let ms = STALL_LIMIT.as_millis().min(i32::MAX as u128) as i32;
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), events)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return Err(stalled()),
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::internal(format!("poll: {e}"))),
        }
    }
}

/// A pipe to the helper, written with a bound on each wait.
struct TimedWriter(ChildStdin);

impl Write for TimedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        wait_ready(&self.0, nix::poll::PollFlags::POLLOUT)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, e.message))?;
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A pipe from the helper, read with a bound on each wait.
struct TimedReader<R: Read + AsFd>(R);

impl<R: Read + AsFd> Read for TimedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        wait_ready(&self.0, nix::poll::PollFlags::POLLIN)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, e.message))?;
        self.0.read(buf)
    }
}

fn set_nonblocking(fd: &impl AsRawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// The data that goes with an operation.
enum Data<'a> {
    None,
    In(&'a mut dyn Read),
    Out(&'a mut dyn FileSink),
}

/// A running helper; killed with its process group when dropped unfinished.
struct Helper {
    child: Child,
    done: bool,
}

impl Drop for Helper {
    fn drop(&mut self) {
        if !self.done {
            // SAFETY: the helper leads a process group of its own (its forked child in it).
            unsafe { libc::killpg(self.child.id() as i32, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

fn timed_out(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
}

/// The answer on the helper's stderr (its last line).
fn read_answer(err: ChildStderr) -> Result<serde_json::Value> {
    set_nonblocking(&err);
    let mut buf = vec![];
    TimedReader(err)
        .take(64 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| {
            if timed_out(&e) {
                stalled()
            } else {
                Error::internal(format!("reading the helper's answer: {e}"))
            }
        })?;
    let text = String::from_utf8_lossy(&buf);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    match serde_json::from_str::<Answer>(last) {
        Ok(Answer::Ok(v)) => Ok(v),
        Ok(Answer::Err(e)) => Err(e),
        Err(_) => Err(Error::internal(format!(
            "the helper ended without an answer: {}",
            text.trim().chars().take(500).collect::<String>()
        ))),
    }
}

impl LocalNode {
    /// Runs `op` inside the container `ct` through the helper.
    fn inside(&self, ct: &CtRef, op: Op, data: Data) -> Result<serde_json::Value> {
        let id = api(self.resolve(ct))?;
        // Processes by UID, for `user del` (read before the lock: `ps` takes it itself).
        let op = match op {
            Op::UserDel { name, .. } => {
                let busy = match api(self.current_status_of(ct)) {
                    Ok(CtStatus::Running | CtStatus::Suspended) => api(self.ps(ct))?
                        .into_iter()
                        .map(|p| (p.uid, p.pid))
                        .collect(),
                    _ => vec![],
                };
                Op::UserDel { name, busy }
            }
            op => op,
        };
        let guard = api(self.lock_ct(id))?;
        let running = match self.current_status(id) {
            CtStatus::Running | CtStatus::Suspended => {
                let st = self
                    .run_state(id)
                    .ok_or_else(|| NodeError::NotRunning(id.0).to_api())?;
                Some(Running {
                    init_pid: st.init_pid,
                    init_starttime: st.init_starttime,
                })
            }
            _ => None,
        };
        // A running container's lock is not needed while the helper works (it joins the
        // init it was given, or refuses); a stopped one's is kept while its root is mounted.
        let guard = if running.is_some() {
            drop(guard);
            None
        } else {
            Some(guard)
        };
        let req = Request {
            ctid: id.0,
            running,
            op,
        };
        let res = self.run_inside_helper(&req, data);
        if res
            .as_ref()
            .is_err_and(|e| e.message.contains("made no progress"))
            && guard.is_some()
        {
            // The helper was killed before it could unmount the stopped container's root.
            let _ = berth_storage::rootfs::teardown(self.root(), id);
        }
        drop(guard);
        res
    }

    fn current_status_of(&self, ct: &CtRef) -> crate::Result<CtStatus> {
        let id = self.resolve(ct)?;
        Ok(self.current_status(id))
    }

    fn run_inside_helper(&self, req: &Request, data: Data) -> Result<serde_json::Value> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(self.monitor_exe());
        cmd.arg("--root")
            .arg(self.root().path())
            .arg("__inside")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("BERTH_LOG", "off")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::internal(format!("{}: {e}", self.monitor_exe().display())))?;
        let mut h = Helper { child, done: false };
        let stdin = h.child.stdin.take().expect("piped");
        let stdout = h.child.stdout.take().expect("piped");
        let stderr = h.child.stderr.take().expect("piped");
        set_nonblocking(&stdin);
        let mut w = TimedWriter(stdin);
        let body = serde_json::to_vec(req).map_err(|e| Error::internal(e.to_string()))?;
        let sent = write_frame(&mut w, &body);
        let io_fault = |what: &str, e: std::io::Error| {
            if timed_out(&e) {
                stalled()
            } else {
                Error::internal(format!("{what}: {e}"))
            }
        };
        let mut early: Option<Error> = None;
        match data {
            Data::None => drop(w),
            Data::In(input) => {
                // The helper may refuse before it takes any data (EPIPE): its answer says why.
                if sent.is_ok() {
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut ok = true;
                    loop {
                        let n = match input.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => {
                                // Nothing is written: the helper sees no end frame, removes
                                // what it had written and answers.
                                early = Some(Error::new(
                                    ErrorKind::Invalid,
                                    format!("reading the data to write: {e}"),
                                ));
                                ok = false;
                                break;
                            }
                        };
                        if let Err(e) = write_frame(&mut w, &buf[..n]) {
                            if timed_out(&e) {
                                return Err(stalled());
                            }
                            ok = false;
                            break;
                        }
                    }
                    if ok {
                        if let Err(e) = write_frame(&mut w, &[]) {
                            if timed_out(&e) {
                                return Err(stalled());
                            }
                        }
                    }
                }
                drop(w);
            }
            Data::Out(sink) => {
                drop(w);
                set_nonblocking(&stdout);
                let mut r = TimedReader(stdout);
                match read_frame(&mut r, MAX_FRAME) {
                    Ok(Some(head)) => {
                        let entry: FileEntry = serde_json::from_slice(&head)
                            .map_err(|e| Error::internal(format!("the helper's entry: {e}")))?;
                        sink.begin(&entry)
                            .map_err(|e| io_fault("writing the file", e))?;
                        let mut buf = vec![0u8; 256 * 1024];
                        loop {
                            let n = match r.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => n,
                                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                                Err(e) => return Err(io_fault("reading the file", e)),
                            };
                            if let Err(e) = sink.write(&buf[..n]) {
                                early = Some(io_fault("writing the file", e));
                                break;
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) if timed_out(&e) => return Err(stalled()),
                    Err(_) => {}
                }
                if let Some(e) = early.take() {
                    return Err(e);
                }
            }
        }
        let ans = read_answer(stderr);
        if let Some(e) = early {
            let _ = h.child.wait();
            h.done = true;
            return Err(e);
        }
        if ans
            .as_ref()
            .is_err_and(|e| e.message.contains("made no progress"))
        {
            return ans;
        }
        let _ = h.child.wait();
        h.done = true;
        ans
    }

    /// The container's users.
    pub fn ct_user_list(&self, ct: &CtRef) -> Result<Vec<CtUser>> {
        decode(self.inside(ct, Op::UserList, Data::None)?)
    }

    pub fn ct_user_add(&self, ct: &CtRef, add: CtUserAdd) -> Result<CtUser> {
        add.validate().map_err(Error::from)?;
        decode(self.inside(ct, Op::UserAdd(add), Data::None)?)
    }

    pub fn ct_user_del(&self, ct: &CtRef, name: &str) -> Result<()> {
        validate_account_name(name).map_err(Error::from)?;
        let op = Op::UserDel {
            name: name.into(),
            busy: vec![],
        };
        self.inside(ct, op, Data::None).map(|_| ())
    }

    pub fn ct_user_passwd(&self, ct: &CtRef, name: &str, req: CtPassword) -> Result<CtUser> {
        validate_account_name(name).map_err(Error::from)?;
        validate_password(&req.password).map_err(Error::from)?;
        let op = Op::Passwd {
            name: name.into(),
            req,
        };
        decode(self.inside(ct, op, Data::None)?)
    }

    pub fn ct_group_list(&self, ct: &CtRef) -> Result<Vec<CtGroup>> {
        decode(self.inside(ct, Op::GroupList, Data::None)?)
    }

    pub fn ct_group_add(&self, ct: &CtRef, add: CtGroupAdd) -> Result<CtGroup> {
        add.validate().map_err(Error::from)?;
        decode(self.inside(ct, Op::GroupAdd(add), Data::None)?)
    }

    pub fn ct_group_del(&self, ct: &CtRef, name: &str) -> Result<()> {
        validate_account_name(name).map_err(Error::from)?;
        let op = Op::GroupDel { name: name.into() };
        self.inside(ct, op, Data::None).map(|_| ())
    }

    pub fn file_stat(&self, ct: &CtRef, path: &str) -> Result<FileEntry> {
        validate_path(path).map_err(Error::from)?;
        decode(self.inside(ct, Op::Stat { path: path.into() }, Data::None)?)
    }

    pub fn file_list(&self, ct: &CtRef, path: &str) -> Result<Vec<FileEntry>> {
        validate_path(path).map_err(Error::from)?;
        decode(self.inside(ct, Op::List { path: path.into() }, Data::None)?)
    }

    pub fn file_pull(&self, ct: &CtRef, path: &str, sink: &mut dyn FileSink) -> Result<FileEntry> {
        validate_path(path).map_err(Error::from)?;
        decode(self.inside(ct, Op::Pull { path: path.into() }, Data::Out(sink))?)
    }

    pub fn file_push(&self, ct: &CtRef, req: FilePush, input: &mut dyn Read) -> Result<FileEntry> {
        req.validate().map_err(Error::from)?;
        decode(self.inside(ct, Op::Push(req), Data::In(input))?)
    }

    /// Makes directory `path` inside (or takes the existing one), then sets its owner and
    /// mode (container IDs).
    pub fn dir_make(
        &self,
        ct: &CtRef,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<FileEntry> {
        validate_path(path).map_err(Error::from)?;
        let op = Op::Mkdir {
            path: path.into(),
            mode,
            uid,
            gid,
        };
        decode(self.inside(ct, op, Data::None)?)
    }

    /// Makes symlink `path` → `target` inside (over a file or link of that name).
    pub fn symlink_make(
        &self,
        ct: &CtRef,
        path: &str,
        target: &str,
        uid: u32,
        gid: u32,
    ) -> Result<FileEntry> {
        validate_path(path).map_err(Error::from)?;
        if target.is_empty() || target.len() > 4095 || target.contains('\0') {
            return Err(Error::invalid(format!(
                "{path}: a link target of 1 to 4095 bytes"
            )));
        }
        let op = Op::Symlink {
            path: path.into(),
            target: target.into(),
            uid,
            gid,
        };
        decode(self.inside(ct, op, Data::None)?)
    }

    pub fn file_remove(&self, ct: &CtRef, path: &str) -> Result<()> {
        validate_path(path).map_err(Error::from)?;
        self.inside(ct, Op::Remove { path: path.into() }, Data::None)
            .map(|_| ())
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::internal(format!("the helper's answer: {e}")))
}
