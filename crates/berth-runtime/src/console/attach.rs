//! The live console: the monitor's console server and `berth console`'s client.
//!
//! Each boot, libcontainer opens a pseudo-terminal from the container's **own** devpts,
//! bind-mounts its slave on the container's `/dev/console` (init's stdin, stdout and
//! stderr) and hands the master to the monitor over `run/<ctid>/pty.sock`. The master never
//! enters the container. The monitor's console thread ([`Server`]) always reads it, so
//! whatever the container prints never waits on anyone: the output goes to the console log
//! and to the one attached client, if any.
//!
//! Clients connect to `run/<ctid>/console.sock` (root-only, like the rest of `run/`). The
//! protocol, all sizes big-endian:
//! - client → server, once: `BC1` + `a` + rows (u16) + columns (u16); the server answers
//!   `ok\n`, or `busy\n` when another client is attached, and closes;
//! - server → client: the console's output, as is;
//! - client → server: frames of a tag byte, a u16 length and the payload: `i` input for the
//!   console, `w` a new window size (rows u16, columns u16).
//!
//! Bounds: a client that falls [`CLIENT_BACKLOG`] behind is dropped (its terminal stopped
//! reading); input the console does not read is kept up to [`INPUT_BACKLOG`], then dropped;
//! a client that does not finish its greeting within [`HELLO_LIMIT`] is dropped.

use super::LogWriter;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Output kept for a slow client before it is dropped.
pub const CLIENT_BACKLOG: usize = 1 << 20;
/// Input kept for a console that does not read it.
pub const INPUT_BACKLOG: usize = 64 << 10;
/// Time a client has to send its greeting.
pub const HELLO_LIMIT: Duration = Duration::from_secs(2);
/// How long the server waits before looking again at a console nobody has open (no
/// process inside holds `/dev/console`: the master reports a hang-up until one does).
const HUNG_UP_RETRY: Duration = Duration::from_millis(100);

const HELLO: &[u8; 4] = b"BC1a";

/// After the end of a caller's input, the attachment lasts until the console has been
/// quiet this long (its answer to the last input is in), at most [`QUIET_MAX`].
pub const QUIET: Duration = Duration::from_secs(1);
pub const QUIET_MAX: Duration = Duration::from_secs(5);

/// The socket libcontainer hands the master to, in `run/<ctid>/`.
pub fn pty_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("pty.sock")
}

/// The socket `berth console` attaches to, in `run/<ctid>/`.
pub fn console_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("console.sock")
}

fn io_err(what: &str, e: std::io::Error) -> crate::RuntimeError {
    crate::RuntimeError::io(what, e)
}

/// Binds a root-only unix socket at `path` (replacing a stale one).
fn bind_private(path: &Path) -> crate::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    // SAFETY: umask is process-wide but the monitor is single-threaded here.
    let old = unsafe { libc::umask(0o177) };
    let l = UnixListener::bind(path);
    // SAFETY: restoring the umask.
    unsafe { libc::umask(old) };
    l.map_err(|e| io_err(&path.display().to_string(), e))
}

/// Listens for libcontainer's hand-over of one boot's console master.
pub struct PtyHandoff {
    listener: UnixListener,
    path: PathBuf,
}

impl PtyHandoff {
    pub fn bind(run_dir: &Path) -> crate::Result<PtyHandoff> {
        let path = pty_socket(run_dir);
        Ok(PtyHandoff {
            listener: bind_private(&path)?,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The master, once the container's init has sent it (it does so while being created,
    /// before `build` returns; the wait is only a bound).
    pub fn take(self, limit: Duration) -> crate::Result<OwnedFd> {
        let _ = self.listener.set_nonblocking(true);
        let until = Instant::now() + limit;
        let conn = loop {
            match self.listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= until {
                        return Err(crate::RuntimeError::StartFailed(
                            "the container's init did not hand over its console".into(),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(io_err("console socket", e)),
            }
        };
        let _ = conn.set_nonblocking(false);
        let left = until.saturating_duration_since(Instant::now());
        let fd = crate::fdpass::recv_fd(conn.as_raw_fd(), left.max(Duration::from_millis(100)))
            .map_err(|e| io_err("console hand-over", e))?
            .ok_or_else(|| {
                crate::RuntimeError::StartFailed("the container's init sent no console".into())
            })?;
        check_master(&fd)?;
        let _ = std::fs::remove_file(&self.path);
        Ok(fd)
    }
}

/// The descriptor must be a pty master (ptmx, 5:2): not anything else a broken runtime
/// could have sent.
fn check_master(fd: &OwnedFd) -> crate::Result<()> {
    // SAFETY: fstat into a zeroed struct on a descriptor we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFCHR
        && libc::major(st.st_rdev) == 5
        && libc::minor(st.st_rdev) == 2;
    if ok {
        Ok(())
    } else {
        Err(crate::RuntimeError::StartFailed(
            "the console handed over is not a pseudo-terminal".into(),
        ))
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn set_winsize(fd: RawFd, rows: u16, cols: u16) {
    if rows == 0 || cols == 0 {
        return;
    }
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize on our descriptor.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

/// The monitor's console server: one thread for the monitor's life, across reboots.
pub struct Server {
    ctl: UnixStream,
    thread: std::thread::JoinHandle<()>,
}

impl Server {
    /// Starts the server: the log at `log`, clients on `run/<ctid>/console.sock`.
    pub fn spawn(log: PathBuf, run_dir: &Path) -> crate::Result<Server> {
        let listener = bind_private(&console_socket(run_dir))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| io_err("console socket", e))?;
        let (ctl, theirs) = UnixStream::pair().map_err(|e| io_err("socketpair", e))?;
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let mut s = State {
                    log: LogWriter::open(log),
                    listener,
                    ctl: theirs,
                    master: None,
                    hung_up: None,
                    client: None,
                    input: VecDeque::new(),
                };
                s.run();
            })
            .map_err(|e| io_err("console thread", e))?;
        Ok(Server { ctl, thread })
    }

    /// The console of a new boot (the previous one's master is closed).
    pub fn set_master(&self, master: OwnedFd) {
        let _ = crate::fdpass::send_fd(self.ctl.as_raw_fd(), master.as_raw_fd());
    }

    /// Ends the server: it reads what the last console still holds, then closes the client.
    /// Waits at most `limit`.
    pub fn finish(self, limit: Duration) {
        drop(self.ctl);
        let until = Instant::now() + limit;
        while !self.thread.is_finished() {
            if Instant::now() >= until {
                tracing::warn!("console server still busy after {limit:?}: not waited for");
                return;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let _ = self.thread.join();
    }
}

struct Client {
    sock: UnixStream,
    greeted: bool,
    since: Instant,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
}

struct State {
    log: LogWriter,
    listener: UnixListener,
    ctl: UnixStream,
    master: Option<OwnedFd>,
    /// The master reported a hang-up: not polled again before this.
    hung_up: Option<Instant>,
    client: Option<Client>,
    /// Input the console has not taken yet.
    input: VecDeque<u8>,
}

impl State {
    fn run(&mut self) {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let now = Instant::now();
            if self.hung_up.is_some_and(|t| now >= t) {
                self.hung_up = None;
            }
            let mut fds = vec![
                pfd(self.ctl.as_raw_fd(), libc::POLLIN),
                pfd(self.listener.as_raw_fd(), libc::POLLIN),
            ];
            let mi = self
                .master
                .as_ref()
                .filter(|_| self.hung_up.is_none())
                .map(|m| {
                    let mut ev = libc::POLLIN;
                    if !self.input.is_empty() {
                        ev |= libc::POLLOUT;
                    }
                    fds.push(pfd(m.as_raw_fd(), ev));
                    fds.len() - 1
                });
            let ci = self.client.as_ref().map(|c| {
                let mut ev = libc::POLLIN;
                if !c.out.is_empty() {
                    ev |= libc::POLLOUT;
                }
                fds.push(pfd(c.sock.as_raw_fd(), ev));
                fds.len() - 1
            });
            let timeout =
                if self.hung_up.is_some() || self.client.as_ref().is_some_and(|c| !c.greeted) {
                    50
                } else {
                    -1
                };
            // SAFETY: poll on descriptors we own.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if let Some(i) = mi {
                let re = fds[i].revents;
                if re & libc::POLLIN != 0 {
                    self.read_master(&mut buf);
                } else if re & (libc::POLLHUP | libc::POLLERR) != 0 {
                    // Nobody inside holds the console now: look again a little later.
                    self.hung_up = Some(Instant::now() + HUNG_UP_RETRY);
                }
                if re & libc::POLLOUT != 0 {
                    self.write_input();
                }
            }
            if let Some(i) = ci {
                let re = fds[i].revents;
                if re & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    self.read_client(&mut buf);
                }
                if re & libc::POLLOUT != 0 {
                    self.flush_client();
                }
            }
            if self
                .client
                .as_ref()
                .is_some_and(|c| !c.greeted && c.since.elapsed() > HELLO_LIMIT)
            {
                self.client = None;
            }
            if fds[1].revents != 0 {
                self.accept();
            }
            if fds[0].revents != 0 && !self.read_ctl() {
                // The monitor is done: what the console still holds, then the end.
                if let Some(m) = &self.master {
                    set_nonblocking(m.as_raw_fd());
                }
                while self.master.is_some() && self.read_master(&mut buf) {}
                if let Some(c) = &mut self.client {
                    let _ = c.sock.set_nonblocking(false);
                    let _ = c.sock.set_write_timeout(Some(Duration::from_millis(500)));
                    let (a, b) = c.out.as_slices();
                    let _ = c.sock.write_all(a).and_then(|()| c.sock.write_all(b));
                }
                return;
            }
        }
    }

    /// A new master from the monitor; false once the monitor has closed its end.
    fn read_ctl(&mut self) -> bool {
        match crate::fdpass::recv_fd(self.ctl.as_raw_fd(), Duration::from_millis(0)) {
            Ok(Some(m)) => {
                set_nonblocking(m.as_raw_fd());
                self.master = Some(m);
                self.hung_up = None;
                self.input.clear();
                true
            }
            Ok(None) => false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => true,
            Err(_) => false,
        }
    }

    /// One read of the console's output; false when nothing more is there now.
    fn read_master(&mut self, buf: &mut [u8]) -> bool {
        let Some(m) = &self.master else { return false };
        // SAFETY: read into our buffer from our descriptor.
        let n = unsafe { libc::read(m.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EIO) {
                self.hung_up = Some(Instant::now() + HUNG_UP_RETRY);
            }
            return false;
        }
        let data = &buf[..n as usize];
        self.log.write(data);
        if let Some(c) = self.client.as_mut().filter(|c| c.greeted) {
            if c.out.len() + data.len() > CLIENT_BACKLOG {
                // Its terminal stopped reading: the console does not wait for it.
                self.client = None;
            } else {
                c.out.extend(data);
                self.flush_client();
            }
        }
        true
    }

    fn write_input(&mut self) {
        let Some(m) = &self.master else {
            self.input.clear();
            return;
        };
        while !self.input.is_empty() {
            let (a, _) = self.input.as_slices();
            // SAFETY: write from our buffer to our descriptor.
            let n = unsafe { libc::write(m.as_raw_fd(), a.as_ptr().cast(), a.len()) };
            if n <= 0 {
                return;
            }
            self.input.drain(..n as usize);
        }
    }

    fn flush_client(&mut self) {
        let Some(c) = &mut self.client else { return };
        while !c.out.is_empty() {
            let (a, _) = c.out.as_slices();
            match c.sock.write(a) {
                Ok(0) => break,
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.client = None;
                    return;
                }
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((sock, _)) = self.listener.accept() {
            if self.client.is_some() {
                let _ = sock.set_write_timeout(Some(Duration::from_millis(100)));
                let _ = (&sock).write_all(b"busy\n");
                continue;
            }
            let _ = sock.set_nonblocking(true);
            self.client = Some(Client {
                sock,
                greeted: false,
                since: Instant::now(),
                inbuf: vec![],
                out: VecDeque::new(),
            });
        }
    }

    fn read_client(&mut self, buf: &mut [u8]) {
        let Some(c) = &mut self.client else { return };
        match c.sock.read(buf) {
            Ok(0) => {
                self.client = None;
                return;
            }
            Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(_) => {
                self.client = None;
                return;
            }
        }
        if !c.greeted {
            if c.inbuf.len() < 8 {
                return;
            }
            if &c.inbuf[..4] != HELLO {
                self.client = None;
                return;
            }
            let rows = u16::from_be_bytes([c.inbuf[4], c.inbuf[5]]);
            let cols = u16::from_be_bytes([c.inbuf[6], c.inbuf[7]]);
            c.inbuf.drain(..8);
            c.greeted = true;
            c.out.extend(b"ok\n");
            if let Some(m) = &self.master {
                set_winsize(m.as_raw_fd(), rows, cols);
            }
        }
        // Whole frames only.
        loop {
            let Some(c) = &mut self.client else { return };
            if c.inbuf.len() < 3 {
                break;
            }
            let len = u16::from_be_bytes([c.inbuf[1], c.inbuf[2]]) as usize;
            if c.inbuf.len() < 3 + len {
                break;
            }
            let tag = c.inbuf[0];
            let payload: Vec<u8> = c.inbuf[3..3 + len].to_vec();
            c.inbuf.drain(..3 + len);
            match tag {
                b'i' => {
                    let room = INPUT_BACKLOG.saturating_sub(self.input.len());
                    self.input.extend(&payload[..payload.len().min(room)]);
                    self.write_input();
                }
                b'w' if payload.len() == 4 => {
                    if let Some(m) = &self.master {
                        let rows = u16::from_be_bytes([payload[0], payload[1]]);
                        let cols = u16::from_be_bytes([payload[2], payload[3]]);
                        set_winsize(m.as_raw_fd(), rows, cols);
                    }
                }
                _ => {
                    self.client = None;
                    return;
                }
            }
        }
        self.flush_client();
    }
}

fn pfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Why an attached `berth console` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachEnd {
    /// The detach keys (or end of a non-terminal input, or a signal).
    Detached,
    /// The container stopped.
    Stopped,
}

/// Attach failures the caller words itself.
#[derive(Debug)]
pub enum AttachError {
    /// No console server (the container does not run).
    NotRunning,
    /// Another client is attached.
    Busy,
    Io(std::io::Error),
}

/// The caller's side of an attachment.
#[derive(Debug, Clone, Copy)]
pub struct AttachIo {
    /// Read for the console's input (a terminal is put in raw mode meanwhile).
    pub input: RawFd,
    /// The console's output goes here.
    pub output: RawFd,
    /// With a terminal input: this key then `q` detaches, twice sends it once.
    pub escape: Option<u8>,
    /// Take SIGWINCH (new size) and the ending signals from a signalfd: only for a CLI whose
    /// own terminal this is. Without, a terminal input's size is looked at every 250 ms.
    pub signals: bool,
}

impl AttachIo {
    /// This process's stdin and stdout.
    pub fn stdio(escape: Option<u8>) -> AttachIo {
        AttachIo {
            input: libc::STDIN_FILENO,
            output: libc::STDOUT_FILENO,
            escape,
            signals: true,
        }
    }
}

/// Attaches `io` to the console at `sock` until the detach keys, an ending signal, the end
/// of a non-terminal input, or the container's stop.
pub fn attach(sock: &Path, io: AttachIo) -> Result<AttachEnd, AttachError> {
    let mut s = match UnixStream::connect(sock) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(AttachError::NotRunning)
        }
        Err(e) => return Err(AttachError::Io(e)),
    };
    let (rows, cols) = winsize(io.input);
    let mut hello = HELLO.to_vec();
    hello.extend(rows.to_be_bytes());
    hello.extend(cols.to_be_bytes());
    // A server that refuses (busy) may have closed before reading: its answer is still there.
    let wrote = s.write_all(&hello);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answer = [0u8; 3];
    match s.read_exact(&mut answer) {
        Ok(()) if &answer == b"ok\n" => {}
        Ok(()) if &answer == b"bus" => return Err(AttachError::Busy),
        Ok(()) => return Err(AttachError::Io(std::io::Error::other("unexpected answer"))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(match wrote {
                Err(w) => AttachError::Io(w),
                Ok(()) => AttachError::NotRunning,
            })
        }
        Err(e) => return Err(AttachError::Io(e)),
    }
    let _ = s.set_read_timeout(None);
    // SAFETY: isatty on the caller's descriptor.
    let tty = unsafe { libc::isatty(io.input) } == 1;
    let sigs = if io.signals {
        Some(
            crate::exec::BlockedSignals::block()
                .map_err(|e| AttachError::Io(std::io::Error::other(e.to_string())))?,
        )
    } else {
        None
    };
    let raw = if tty { RawMode::enter(io.input) } else { None };
    let end = relay(&mut s, sigs.as_ref(), tty, io);
    drop(raw);
    drop(sigs);
    end
}

/// A terminal in raw mode for the guard's life.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: termios is plain data; tcgetattr/tcsetattr on the caller's descriptor.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the saved settings.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

fn winsize(fd: RawFd) -> (u16, u16) {
    // SAFETY: TIOCGWINSZ into a zeroed winsize.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
        (ws.ws_row, ws.ws_col)
    } else {
        (0, 0)
    }
}

fn frame(tag: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 3);
    v.push(tag);
    v.extend((data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn write_all_fd(fd: RawFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: write from our buffer to the caller's descriptor.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        data = &data[n as usize..];
    }
    true
}

fn size_frame(fd: RawFd) -> Vec<u8> {
    let (r, c) = winsize(fd);
    let mut p = r.to_be_bytes().to_vec();
    p.extend(c.to_be_bytes());
    frame(b'w', &p)
}

fn relay(
    s: &mut UnixStream,
    sigs: Option<&crate::exec::BlockedSignals>,
    tty: bool,
    io: AttachIo,
) -> Result<AttachEnd, AttachError> {
    let mut buf = [0u8; 8192];
    let mut keys = berth_api::EscapeFilter::new(io.escape.filter(|_| tty));
    let mut size = winsize(io.input);
    // After the end of the caller's input: when it ended, and the last output since.
    let mut ended: Option<(Instant, Instant)> = None;
    loop {
        if let Some((at, last)) = ended {
            let now = Instant::now();
            if now.duration_since(last) >= QUIET || now.duration_since(at) >= QUIET_MAX {
                return Ok(AttachEnd::Detached);
            }
        }
        let mut fds = vec![
            pfd(s.as_raw_fd(), libc::POLLIN),
            pfd(if ended.is_some() { -1 } else { io.input }, libc::POLLIN),
        ];
        if let Some(g) = sigs {
            fds.push(pfd(g.fd.as_raw_fd(), libc::POLLIN));
        }
        let timeout = if ended.is_some() {
            50
        } else if tty && sigs.is_none() {
            250
        } else {
            -1
        };
        // SAFETY: poll on valid descriptors.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(AttachError::Io(std::io::Error::last_os_error()));
        }
        if fds[0].revents != 0 {
            match s.read(&mut buf) {
                Ok(0) => return Ok(AttachEnd::Stopped),
                Ok(k) => {
                    if !write_all_fd(io.output, &buf[..k]) {
                        return Ok(AttachEnd::Detached);
                    }
                    if let Some((_, last)) = &mut ended {
                        *last = Instant::now();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(AttachEnd::Stopped),
            }
        }
        if let Some(g) = sigs.filter(|_| fds[2].revents != 0) {
            while let Some(sig) = g.take() {
                if sig == libc::SIGWINCH {
                    if s.write_all(&size_frame(io.input)).is_err() {
                        return Ok(AttachEnd::Stopped);
                    }
                } else if sig != libc::SIGCHLD {
                    // Any other signal ends the attachment (the console stays).
                    return Ok(AttachEnd::Detached);
                }
            }
        }
        if tty && sigs.is_none() {
            let now = winsize(io.input);
            if now != size {
                size = now;
                if s.write_all(&size_frame(io.input)).is_err() {
                    return Ok(AttachEnd::Stopped);
                }
            }
        }
        if fds[1].revents == 0 {
            continue;
        }
        // SAFETY: read from the caller's descriptor into our buffer.
        let k = unsafe { libc::read(io.input, buf.as_mut_ptr().cast(), buf.len()) };
        if k < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Ok(AttachEnd::Detached);
        }
        if k == 0 {
            // The end of the caller's input: detach once the console's answer is in (quiet
            // for QUIET, at most QUIET_MAX); the console itself stays.
            let now = Instant::now();
            ended = Some((now, now));
            continue;
        }
        let mut out = Vec::with_capacity(k as usize);
        let detach = keys.feed(&buf[..k as usize], &mut out);
        for chunk in out.chunks(u16::MAX as usize) {
            if s.write_all(&frame(b'i', chunk)).is_err() {
                return Ok(AttachEnd::Stopped);
            }
        }
        if detach {
            return Ok(AttachEnd::Detached);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(frame(b'i', b"ab"), b"i\x00\x02ab");
    }

    /// A real pty pair stands for the container's console: output reaches the log and the
    /// client, input and sizes reach the console, a second client is refused, and the end
    /// of the server closes the client.
    #[test]
    fn server_relays_a_pty() {
        let dir = tempdir();
        let log = dir.join("console.log");
        let srv = Server::spawn(log.clone(), &dir).unwrap();
        let pty = nix::pty::openpty(None, None).unwrap();
        srv.set_master(pty.master);
        let slave = std::fs::File::from(pty.slave);
        let mut c = UnixStream::connect(console_socket(&dir)).unwrap();
        let mut hello = HELLO.to_vec();
        hello.extend(24u16.to_be_bytes());
        hello.extend(80u16.to_be_bytes());
        c.write_all(&hello).unwrap();
        let mut ok = [0u8; 3];
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"ok\n");
        // a second client is refused
        let mut c2 = UnixStream::connect(console_socket(&dir)).unwrap();
        c2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut busy = String::new();
        let _ = c2.read_to_string(&mut busy);
        assert_eq!(busy, "busy\n");
        assert_eq!(winsize(slave.as_raw_fd()), (24, 80));
        // output
        (&slave).write_all(b"hello\n").unwrap();
        let mut got = vec![0u8; 7];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, b"hello\r\n");
        // input and a resize
        c.write_all(&frame(b'i', b"typed\n")).unwrap();
        c.write_all(&frame(b'w', &[0, 50, 0, 132])).unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&slave), &mut line).unwrap();
        assert_eq!(line, "typed\n");
        let until = Instant::now() + Duration::from_secs(5);
        while winsize(slave.as_raw_fd()) != (50, 132) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(winsize(slave.as_raw_fd()), (50, 132));
        srv.finish(Duration::from_secs(5));
        let mut rest = vec![];
        let _ = c.read_to_end(&mut rest);
        let text = std::fs::read_to_string(&log).unwrap();
        // what was typed is echoed by the terminal, so it is in the log too
        assert!(
            text.contains(" hello\n") && text.ends_with(" typed\n"),
            "{text:?}"
        );
        assert!(berth_core::timefmt::is_stamp(text.as_bytes()), "{text:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "berth-console-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
