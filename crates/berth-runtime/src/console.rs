//! The console log: everything the container's init writes to stdout/stderr, kept in
//! `containers/<ctid>/console.log` (rotated to `console.log.1`, so bounded to twice
//! [`CONSOLE_LOG_MAX`]), readable and followable with `berth console`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
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

/// Copies everything from `pipe` into the log at `path` until the pipe closes.
pub fn spawn_writer(pipe: OwnedFd, path: PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut src = File::from(pipe);
        // Root-only: init's output may carry anything the container prints.
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(p)
        };
        let Ok(mut out) = open(&path) else { return };
        let mut size = out.metadata().map(|m| m.len()).unwrap_or(0);
        let mut buf = [0u8; 8192];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if size + n as u64 > CONSOLE_LOG_MAX {
                let _ = fs::rename(&path, rotated(&path));
                match open(&path) {
                    Ok(f) => out = f,
                    Err(_) => break,
                }
                size = 0;
            }
            if out.write_all(&buf[..n]).is_err() {
                break;
            }
            size += n as u64;
        }
    })
}

/// Writes the log (older rotation first) to `out`; with `follow`, keeps printing what is
/// appended until `still_running` returns false.
pub fn print_log(
    path: &Path,
    out: &mut dyn Write,
    follow: bool,
    still_running: &dyn Fn() -> bool,
) -> std::io::Result<()> {
    if let Ok(mut f) = File::open(rotated(path)) {
        std::io::copy(&mut f, out)?;
    }
    let mut pos = 0u64;
    if let Ok(mut f) = File::open(path) {
        pos = std::io::copy(&mut f, out)?;
    }
    out.flush()?;
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
        }
        if len > pos {
            f.seek(SeekFrom::Start(pos))?;
            pos += std::io::copy(&mut f, out)?;
            out.flush()?;
        } else if !still_running() {
            return Ok(());
        }
    }
}
