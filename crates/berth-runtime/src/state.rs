//! `run/<ctid>/state.json`: what the monitor publishes about the running container.

use crate::{Result, RuntimeError};
use berth_core::fsutil::write_runtime_file;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunState {
    pub monitor_pid: i32,
    pub init_pid: i32,
    /// Start time of the init process in clock ticks since boot (guards against PID reuse).
    pub init_starttime: u64,
    /// Unix time the container (last) booted.
    pub started: u64,
    /// Boots since start (1 + reboots from inside).
    pub boots: u32,
}

impl RunState {
    pub fn load(path: &Path) -> Option<RunState> {
        let t = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&t).ok()
    }
    pub fn save(&self, path: &Path) -> Result<()> {
        let s = serde_json::to_vec(self).map_err(|e| RuntimeError::Spec(e.to_string()))?;
        Ok(write_runtime_file(path, &s, 0o600)?)
    }
    /// Whether the recorded init process still exists (same PID *and* same start time).
    pub fn init_alive(&self) -> bool {
        process_starttime(self.init_pid) == Some(self.init_starttime)
    }
    pub fn monitor_alive(&self) -> bool {
        process_starttime(self.monitor_pid).is_some() && !is_zombie(self.monitor_pid)
    }
}

/// Field 22 of /proc/<pid>/stat: start time in clock ticks since boot.
pub fn process_starttime(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether process `pid` would act on signal `sig` now: it has a handler for it, or blocks it
/// (signalfd, as Berth's supervisor and systemd do). The init of a PID namespace drops every
/// signal it leaves at its default disposition, so a stop signal sent before init has
/// installed its handlers is lost, not deferred. `forked_from` is the process the init was
/// forked from (the monitor): until the init's executable differs from it, the init has not
/// exec'd yet, and whatever it blocks then is reset by the exec.
pub fn signal_receptive(pid: i32, sig: i32, forked_from: Option<i32>) -> bool {
    if let Some(parent) = forked_from {
        use std::os::unix::fs::MetadataExt;
        let exe = |p: i32| std::fs::metadata(format!("/proc/{p}/exe")).ok();
        if let (Some(a), Some(b)) = (exe(pid), exe(parent)) {
            if a.dev() == b.dev() && a.ino() == b.ino() {
                return false;
            }
        }
    }
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .is_some_and(|s| status_has_signal(&s, sig))
}

/// Whether a `/proc/<pid>/status` text shows `sig` caught (`SigCgt`) or blocked (`SigBlk`).
fn status_has_signal(status: &str, sig: i32) -> bool {
    if !(1..=64).contains(&sig) {
        return false;
    }
    let bit = 1u64 << (sig - 1);
    status.lines().any(|l| {
        l.strip_prefix("SigCgt:")
            .or_else(|| l.strip_prefix("SigBlk:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|m| m & bit != 0)
    })
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_starttime_is_readable() {
        let me = std::process::id() as i32;
        assert!(process_starttime(me).is_some());
        assert!(process_starttime(0).is_none());
    }

    #[test]
    fn signal_masks_from_status() {
        // SIGUSR2 (12) blocked, SIGCHLD (17) caught: a supervisor on signalfd.
        let st = "Name:\tinit\nSigBlk:\t0000000000000800\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000010000\n";
        assert!(status_has_signal(st, libc::SIGUSR2));
        assert!(status_has_signal(st, libc::SIGCHLD));
        assert!(!status_has_signal(st, libc::SIGTERM));
        assert!(!status_has_signal(st, 0));
        assert!(!status_has_signal("SigBlk:\tzz\n", libc::SIGUSR2));
        // A fresh `sleep` neither blocks nor catches SIGUSR2 (the test process itself may:
        // other tests run in it at the same time).
        let mut c = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = c.id() as i32;
        // Until it has exec'd, /proc shows the test binary's dispositions.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|e| !e.to_string_lossy().contains("sleep"))
            && std::time::Instant::now() < until
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let receptive = signal_receptive(pid, libc::SIGUSR2, None);
        let _ = c.kill();
        let _ = c.wait();
        assert!(!receptive);
    }
}
