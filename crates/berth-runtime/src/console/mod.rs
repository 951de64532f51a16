//! The console log: everything the container's init writes to stdout/stderr, kept in
//! `containers/<ctid>/console.log` (rotated to `console.log.1`, so bounded to twice
//! [`CONSOLE_LOG_MAX`]), readable and followable with `berth console --log`/`--follow`;
//! and the live console itself (`attach`): a pseudo-terminal of the container's own devpts
//! on its `/dev/console`, whose master the monitor holds.

pub mod attach;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Size at which the console log rotates.
pub const CONSOLE_LOG_MAX: u64 = 512 * 1024;

fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// The console log's writer: each line starts with the time it began (an RFC 3339 stamp
/// and a space, see [`print_log`]), a terminal's `\r\n` is kept as `\n`, and the file
/// rotates to `.1` past [`CONSOLE_LOG_MAX`]. Writes that fail are dropped: the container's
/// console never waits on the log.
pub struct LogWriter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    line_start: bool,
    /// A `\r` ended the last chunk: kept unless the next byte is `\n`.
    cr: bool,
}

fn open_log(p: &Path) -> std::io::Result<File> {
    // Root-only: init's output may carry anything the container prints.
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
}

impl LogWriter {
    pub fn open(path: PathBuf) -> LogWriter {
        let file = open_log(&path).ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        LogWriter {
            path,
            file,
            size,
            line_start: true,
            cr: false,
        }
    }

    /// Appends what the console printed.
    pub fn write(&mut self, data: &[u8]) {
        let mut out = Vec::with_capacity(data.len() + 64);
        let mut stamp = || berth_core::timefmt::rfc3339_millis(berth_core::timefmt::now_ms());
        for (i, &b) in data.iter().enumerate() {
            if std::mem::take(&mut self.cr) && b != b'\n' {
                self.put(&mut out, b'\r', &mut stamp);
            }
            if b == b'\r' {
                if i + 1 < data.len() {
                    if data[i + 1] != b'\n' {
                        self.put(&mut out, b, &mut stamp);
                    }
                } else {
                    self.cr = true;
                }
                continue;
            }
            self.put(&mut out, b, &mut stamp);
        }
        self.append(&out);
    }

    fn put(&mut self, out: &mut Vec<u8>, b: u8, stamp: &mut impl FnMut() -> String) {
        if self.line_start {
            out.extend_from_slice(stamp().as_bytes());
            out.push(b' ');
        }
        out.push(b);
        self.line_start = b == b'\n';
    }

    fn append(&mut self, buf: &[u8]) {
        if buf.is_empty() {
            return;
        }
        if self.size + buf.len() as u64 > CONSOLE_LOG_MAX {
            let _ = fs::rename(&self.path, rotated(&self.path));
            self.file = open_log(&self.path).ok();
            self.size = 0;
        }
        if let Some(f) = &mut self.file {
            if f.write_all(buf).is_ok() {
                self.size += buf.len() as u64;
            }
        }
    }
}

/// Appends one line of Berth's own (`berth: …`) to a container's console log, stamped like
/// the console's lines.
pub fn append_line(path: &Path, text: &str) {
    if let Ok(mut f) = open_log(path) {
        let stamp = berth_core::timefmt::rfc3339_millis(berth_core::timefmt::now_ms());
        let _ = f.write_all(format!("{stamp} {text}\n").as_bytes());
    }
}

/// Copies log text to `out`, removing each line's stamp unless `timestamps`; lines without
/// one (written by an older Berth) pass unchanged.
struct Unstamp<'a> {
    out: &'a mut dyn Write,
    timestamps: bool,
    /// At a line's start: its first bytes, until they tell whether a stamp is there.
    head: Option<Vec<u8>>,
}

const STAMP_LEN: usize = 25;

impl Unstamp<'_> {
    fn feed(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        if self.timestamps {
            return self.out.write_all(data);
        }
        while !data.is_empty() {
            if let Some(h) = &mut self.head {
                let want = STAMP_LEN - h.len();
                let nl = data.iter().position(|&b| b == b'\n');
                let take = nl.map(|p| p + 1).unwrap_or(data.len()).min(want);
                h.extend_from_slice(&data[..take]);
                data = &data[take..];
                let line_ended = h.last() == Some(&b'\n');
                if h.len() == STAMP_LEN || line_ended {
                    let h = self.head.take().unwrap_or_default();
                    if !(h.len() == STAMP_LEN
                        && berth_core::timefmt::is_stamp(&h)
                        && h[STAMP_LEN - 1] == b' ')
                    {
                        self.out.write_all(&h)?;
                    }
                    if line_ended {
                        self.head = Some(vec![]);
                    }
                }
                continue;
            }
            match data.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    self.out.write_all(&data[..=p])?;
                    data = &data[p + 1..];
                    self.head = Some(vec![]);
                }
                None => {
                    self.out.write_all(data)?;
                    data = &[];
                }
            }
        }
        Ok(())
    }

    fn copy(&mut self, f: &mut File) -> std::io::Result<u64> {
        let mut buf = [0u8; 8192];
        let mut n = 0u64;
        loop {
            match f.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => {
                    self.feed(&buf[..k])?;
                    n += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Writes the log (older rotation first) to `out`; with `follow`, keeps printing what is
/// appended until `still_running` returns false.
pub fn print_log(
    path: &Path,
    out: &mut dyn Write,
    follow: bool,
    timestamps: bool,
    still_running: &dyn Fn() -> bool,
) -> std::io::Result<()> {
    let mut u = Unstamp {
        out,
        timestamps,
        head: Some(vec![]),
    };
    if let Ok(mut f) = File::open(rotated(path)) {
        u.copy(&mut f)?;
        // The current file starts a line of its own.
        if u.head.as_ref().is_none_or(|h| !h.is_empty()) {
            if let Some(h) = u.head.take() {
                u.out.write_all(&h)?;
            }
            u.head = Some(vec![]);
        }
    }
    let mut pos = 0u64;
    if let Ok(mut f) = File::open(path) {
        pos = u.copy(&mut f)?;
    }
    u.out.flush()?;
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let Ok(mut f) = File::open(path) else {
            if !still_running() {
                return Ok(());
            }
            continue;
        };
        let len = f.metadata()?.len();
        if len < pos {
            pos = 0; // rotated
            u.head = Some(vec![]);
        }
        if len > pos {
            f.seek(SeekFrom::Start(pos))?;
            pos += u.copy(&mut f)?;
            u.out.flush()?;
        } else if !still_running() {
            return Ok(());
        }
    }
}
