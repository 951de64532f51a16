//! The terminal side of `enter` and `exec -t`: a new pseudo-terminal for the process in the
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
    let mut to_pty =
        std::fs::File::from(master.try_clone().map_err(|e| RuntimeError::io("dup", e))?);
    // stdin -> pty; this thread ends with the process (it may stay blocked on stdin until
    // then). It inherits the blocked signals, so they reach the signalfd below.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => {
                    // Piped input ended: end of file for the reader on the pty as well.
                    if !interactive {
                        let _ = to_pty.write_all(&[4]);
                    }
                    break;
                }
                Ok(n) => {
                    if to_pty.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    });
    relay(master.as_raw_fd(), &j, &sigs);
    drop(raw);
    drop(sigs);
    Ok(exec::wait_exit_of(&j))
}

/// Copies the pty's output to stdout until the joined process exits, resizing the pty on
/// SIGWINCH and passing the other signals on.
fn relay(master: RawFd, j: &exec::Joined, sigs: &BlockedSignals) {
    let mut stdout = std::io::stdout();
    let mut buf = [0u8; 8192];
    let mut fds = [
        libc::pollfd {
            fd: master,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: j.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sigs.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: poll on valid descriptors (a negative fd is skipped by the kernel).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[2].revents != 0 {
            while let Some(s) = sigs.take() {
                if s == libc::SIGWINCH {
                    copy_winsize(libc::STDIN_FILENO, master);
                } else {
                    j.signal(s);
                }
            }
        }
        if fds[0].revents != 0 && !copy_out(master, &mut buf, &mut stdout) {
            // Every slave is closed (EIO): only the process's exit is left to wait for.
            fds[0].fd = -1;
        }
        if fds[1].revents != 0 {
            // The process has exited: print what it left in the pty, without waiting for
            // background processes that may still hold the slave.
            // SAFETY: fcntl on our descriptor.
            unsafe { libc::fcntl(master, libc::F_SETFL, libc::O_NONBLOCK) };
            while fds[0].fd >= 0 && copy_out(master, &mut buf, &mut stdout) {}
            return;
        }
    }
}

/// One read from the master to stdout; false once nothing more can come (EIO, EAGAIN).
fn copy_out(master: RawFd, buf: &mut [u8], out: &mut std::io::Stdout) -> bool {
    // SAFETY: read into our buffer from a descriptor we hold.
    let n = unsafe { libc::read(master, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
    }
    let _ = out.write_all(&buf[..n as usize]);
    let _ = out.flush();
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
