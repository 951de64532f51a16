//! The relays of `enter`, `exec -t` and of `exec` from a terminal without a pty. With a pty: a new pseudo-terminal for the process in the
//! container, whose master never leaves the CLI. The caller's terminal is put in raw mode
//! and relayed both ways; its size is copied at start and again on every SIGWINCH; the other
//! signals the CLI receives are passed on. The container only ever holds the slave of a
//! terminal of its own, so it cannot reach the caller's terminal (TIOCSTI, TIOCLINUX,
//! changing its settings).

use crate::exec::{self, BlockedSignals, ExecRequest, JoinTarget};
use crate::{Result, RuntimeError};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};

/// How long the joining child may take to open the container's pty.
const PTY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the request on a new pseudo-terminal relayed to this process's stdin and stdout;
/// returns its exit code once the process has exited.
pub(crate) fn run(t: &JoinTarget, req: &ExecRequest) -> Result<i32> {
    let (here, there) =
        std::os::unix::net::UnixStream::pair().map_err(|e| RuntimeError::io("socketpair", e))?;
    let sigs = BlockedSignals::block()?;
    let j = exec::spawn_on_pty(t, req, there.as_raw_fd())?;
    drop(there);
    // The joining child opens the pty once it is confined; a container that makes that
    // open hang (a FUSE mount on its /dev/pts) only makes this command fail.
    let master = match crate::fdpass::recv_fd(here.as_raw_fd(), PTY_WAIT) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(exec::wait_exit_of(&j)),
        Err(e) => {
            j.signal(libc::SIGKILL);
            let _ = exec::wait_exit_of(&j);
            return Err(RuntimeError::io("a terminal in the container", e));
        }
    };
    drop(here);
    copy_winsize(libc::STDIN_FILENO, master.as_raw_fd());
    // SAFETY: isatty on stdin.
    let interactive = unsafe { libc::isatty(libc::STDIN_FILENO) } == 1;
    let raw = interactive.then(RawMode::enter).flatten();
    let to_pty = std::fs::File::from(master.try_clone().map_err(|e| RuntimeError::io("dup", e))?);
    // Piped input ended: end of file for the reader on the pty as well.
    pump_stdin(to_pty, (!interactive).then_some(4));
    let mut out = [(master.as_raw_fd(), Sink::Stdout)];
    relay(&mut out, &j, &sigs, Some(master.as_raw_fd()));
    drop(raw);
    drop(sigs);
    Ok(exec::wait_exit_of(&j))
}

/// `exec` without a pty when one of the caller's streams is a terminal: the command gets
/// pipes, relayed here, and never a descriptor of the caller's terminal (with one, a
/// process the command leaves behind could read what the operator types next or change the
/// terminal's settings after `berth exec` returned).
pub(crate) fn run_piped(t: &JoinTarget, req: &ExecRequest) -> Result<i32> {
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| RuntimeError::sys("pipe", e))
    };
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let sigs = BlockedSignals::block()?;
    let j = exec::spawn_with_fds(
        t,
        req,
        [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
    )?;
    drop((in_r, out_w, err_w));
    pump_stdin(std::fs::File::from(in_w), None);
    let mut outs = [
        (out_r.as_raw_fd(), Sink::Stdout),
        (err_r.as_raw_fd(), Sink::Stderr),
    ];
    relay(&mut outs, &j, &sigs, None);
    drop(sigs);
    Ok(exec::wait_exit_of(&j))
}

/// Copies this process's stdin into `to` on a thread of its own, which ends at end of
/// input (writing `eof` first, if given) or with the process (it may stay blocked on
/// stdin until then). It inherits the blocked signals, so they reach the signalfd.
fn pump_stdin(mut to: std::fs::File, eof: Option<u8>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => {
                    if let Some(c) = eof {
                        let _ = to.write_all(&[c]);
                    }
                    break;
                }
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    });
}

/// Where a relayed stream goes.
#[derive(Clone, Copy)]
pub(crate) enum Sink {
    Stdout,
    Stderr,
}

/// Copies the process's output streams (`outs`: source descriptor, sink) until the joined
/// process exits, passing signals on; with a pty master (`winch`), SIGWINCH resizes it.
pub(crate) fn relay(
    outs: &mut [(RawFd, Sink)],
    j: &exec::Joined,
    sigs: &BlockedSignals,
    winch: Option<RawFd>,
) {
    let mut buf = [0u8; 8192];
    let ev = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // outputs first, then the process, then the signals
    let mut fds: Vec<libc::pollfd> = outs.iter().map(|(fd, _)| ev(*fd)).collect();
    fds.push(ev(j.pidfd.as_raw_fd()));
    fds.push(ev(sigs.fd.as_raw_fd()));
    let (n_out, proc_i, sig_i) = (outs.len(), outs.len(), outs.len() + 1);
    loop {
        // SAFETY: poll on valid descriptors (a negative fd is skipped by the kernel).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[sig_i].revents != 0 {
            while let Some(s) = sigs.take() {
                match winch {
                    Some(m) if s == libc::SIGWINCH => copy_winsize(libc::STDIN_FILENO, m),
                    _ => j.signal(s),
                }
            }
        }
        for i in 0..n_out {
            if fds[i].revents != 0 && !copy_out(fds[i].fd, &mut buf, outs[i].1) {
                // Closed (EOF, or EIO once every slave is closed): only the process's exit
                // is left to wait for.
                fds[i].fd = -1;
            }
        }
        if fds[proc_i].revents != 0 {
            // The process has exited: print what it left, without waiting for background
            // processes that may still hold the other end.
            for i in (0..n_out).filter(|&i| fds[i].fd >= 0) {
                // SAFETY: fcntl on our descriptor.
                unsafe { libc::fcntl(fds[i].fd, libc::F_SETFL, libc::O_NONBLOCK) };
                while copy_out(fds[i].fd, &mut buf, outs[i].1) {}
            }
            return;
        }
    }
}

/// One read from `fd` to the sink; false once nothing more can come (EOF, EIO, EAGAIN).
fn copy_out(fd: RawFd, buf: &mut [u8], sink: Sink) -> bool {
    // SAFETY: read into our buffer from a descriptor we hold.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
    }
    let data = &buf[..n as usize];
    match sink {
        Sink::Stdout => {
            let mut o = std::io::stdout();
            let _ = o.write_all(data);
            let _ = o.flush();
        }
        Sink::Stderr => {
            let _ = std::io::stderr().write_all(data);
        }
    }
    true
}

/// Puts the local terminal in raw mode for the lifetime of the guard.
struct RawMode {
    fd: std::io::Stdin,
    saved: Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        let fd = std::io::stdin();
        let saved = termios::tcgetattr(fd.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data; ioctls on descriptors we hold.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}
