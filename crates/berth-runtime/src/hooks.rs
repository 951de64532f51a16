//! Action scripts (vzctl's `CTID.mount`/`.start`/`.stop`…, the seed's "Using Custom Action
//! Scripts"): host scripts run as root at points of a container's life, with the container's
//! facts in the environment. See docs/action-scripts.md.
//!
//! - Events, in order: `premount` (before the disk is mounted), `mount` (the root is ready,
//!   init not started), `start` (init runs), `stop` (init exited for good, before the disk
//!   is released), `umount` (everything released), `destroy` (the container is gone).
//! - Node-wide scripts are `<root>/scripts/all.<event>`; a container's own are named in its
//!   config (`berth set 101 --script start=fw.sh`). The node-wide one runs first.
//! - A script must live in `<root>/scripts/` or `/etc/berth/scripts/`, be a regular file
//!   owned by root, executable, and neither it nor its directory writable by group or
//!   others: naming a script (which the API lets an administrator do) never runs a program
//!   that host root did not put there for this purpose.
//! - A failing (non-zero, killed or timed out) `premount`, `mount` or `start` script aborts
//!   the start; the others are logged. Each runs at most [`SCRIPT_TIMEOUT`] (its process
//!   group is then killed). Its output, bounded, goes to the container's console log.

use berth_core::{ContainerConfig, NodeRoot};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The events, in the order they happen.
pub const EVENTS: [&str; 6] = ["premount", "mount", "start", "stop", "umount", "destroy"];

/// Events whose failing script aborts the start.
pub fn aborts(event: &str) -> bool {
    matches!(event, "premount" | "mount" | "start")
}

/// How long one script may run.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Output of a script kept for the console log.
const OUTPUT_MAX: usize = 16 << 10;

/// The system-wide directory of action scripts (besides `<root>/scripts/`).
pub const SYSTEM_DIR: &str = "/etc/berth/scripts";

/// Where a script named `name` (a bare file name, or an absolute path in one of the two
/// directories) is, or why it cannot be used.
pub fn resolve(root: &NodeRoot, name: &str) -> Result<PathBuf, String> {
    let p = if name.contains('/') {
        PathBuf::from(name)
    } else {
        root.path().join("scripts").join(name)
    };
    let dirs = [root.path().join("scripts"), PathBuf::from(SYSTEM_DIR)];
    let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
    if !p.is_absolute() || name.split('/').any(|c| c == ".." || c == ".") || !dirs.contains(&parent)
    {
        return Err(format!(
            "script {name:?}: must be a file of {} or {SYSTEM_DIR}",
            dirs[0].display()
        ));
    }
    check_file(&p)?;
    Ok(p)
}

fn check_file(p: &Path) -> Result<(), String> {
    let bad = |why: &str| Err(format!("script {}: {why}", p.display()));
    let dir = p.parent().unwrap_or(Path::new("/"));
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0 => {}
        Ok(_) => return bad("its directory must be root's and not writable by group or others"),
        Err(e) => return bad(&e.to_string()),
    }
    match std::fs::symlink_metadata(p) {
        Ok(m) if !m.file_type().is_file() => bad("not a regular file"),
        Ok(m) if m.uid() != 0 => bad("not owned by root"),
        Ok(m) if m.permissions().mode() & 0o022 != 0 => bad("writable by group or others"),
        Ok(m) if m.permissions().mode() & 0o100 == 0 => bad("not executable"),
        Ok(_) => Ok(()),
        Err(e) => bad(&e.to_string()),
    }
}

/// The scripts of `event` for this container: the node-wide one, then its own.
fn scripts_of(root: &NodeRoot, cfg: &ContainerConfig, event: &str) -> Vec<Result<PathBuf, String>> {
    let mut v = vec![];
    let all = root.path().join("scripts").join(format!("all.{event}"));
    if all.exists() {
        v.push(check_file(&all).map(|()| all));
    }
    if let Some(name) = cfg.scripts.get(event) {
        v.push(resolve(root, name));
    }
    v
}

/// The environment a script gets: vzctl's names and Berth's.
fn env_of(
    root: &NodeRoot,
    cfg: &ContainerConfig,
    event: &str,
    extra: &[(&str, String)],
) -> Vec<(String, String)> {
    let id = cfg.ctid.0.to_string();
    let ips: Vec<String> = cfg
        .net
        .netifs
        .iter()
        .flat_map(|n| n.addrs.iter().map(|c| c.to_string()))
        .map(|c| c.split('/').next().unwrap_or("").to_string())
        .chain(cfg.net.ipaddrs.iter().map(|a| a.to_string()))
        .collect();
    let mut v = vec![
        ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("BERTH_EVENT".into(), event.into()),
        ("BERTH_CTID".into(), id.clone()),
        ("VEID".into(), id.clone()),
        ("CTID".into(), id),
        ("BERTH_ROOT".into(), root.path().display().to_string()),
        ("BERTH_HOSTNAME".into(), cfg.effective_hostname()),
        ("BERTH_OSTEMPLATE".into(), cfg.ostemplate.clone()),
        ("BERTH_IP".into(), ips.join(" ")),
        (
            "BERTH_DISK".into(),
            root.ct_disk(cfg.ctid).display().to_string(),
        ),
    ];
    if let Some(n) = &cfg.name {
        v.push(("BERTH_NAME".into(), n.clone()));
    }
    v.extend(extra.iter().map(|(k, val)| (k.to_string(), val.clone())));
    v
}

/// Runs the scripts of `event`; the first failure's message (with the end of its output).
/// Each script's output goes to the container's console log.
pub fn run(
    root: &NodeRoot,
    cfg: &ContainerConfig,
    event: &str,
    extra: &[(&str, String)],
) -> Result<(), String> {
    let mut first_err = None;
    for s in scripts_of(root, cfg, event) {
        let r = s.and_then(|p| run_one(root, cfg, event, &p, extra));
        if let Err(e) = r {
            tracing::warn!(ctid = cfg.ctid.0, event, "{e}");
            crate::console::append_line(
                &root.ct_console_log(cfg.ctid),
                &format!("berth: {event} script: {e}"),
            );
            if aborts(event) {
                return Err(e);
            }
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn run_one(
    root: &NodeRoot,
    cfg: &ContainerConfig,
    event: &str,
    path: &Path,
    extra: &[(&str, String)],
) -> Result<(), String> {
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .envs(env_of(root, cfg, event, extra))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Output on threads of their own (bounded), so a chatty script never blocks on a pipe.
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut kept = vec![];
            if let Some(mut r) = r {
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let room = OUTPUT_MAX.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            kept
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let until = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= until => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    };
    // Whatever it left behind in its group goes too (it would hold the pipes).
    // SAFETY: signalling the script's own process group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    if status.is_none() {
        let _ = child.wait();
    }
    let mut text = out.join().unwrap_or_default();
    text.extend(err.join().unwrap_or_default());
    let log = root.ct_console_log(cfg.ctid);
    let text = String::from_utf8_lossy(&text).into_owned();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        crate::console::append_line(&log, &format!("berth: {event} script: {l}"));
    }
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let tail = if last.is_empty() {
        String::new()
    } else {
        format!(": {last}")
    };
    match status {
        None => Err(format!(
            "{event} script {} did not end within {} s{tail}",
            path.display(),
            SCRIPT_TIMEOUT.as_secs()
        )),
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!(
            "{event} script {} failed ({s}){tail}",
            path.display()
        )),
    }
}
