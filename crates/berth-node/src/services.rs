//! Services inside containers, through one interface with a driver per init system, chosen
//! per running container: Berth's own supervisor (`/.berth/init ctl`), systemd
//! (`systemctl`), OpenRC (`rc-service`, `rc-update`, `rc-status`) and SysV/busybox init
//! scripts (`/etc/init.d`). Every driver acts by running the init system's own tools inside
//! the container (`berth exec`-style), so what Berth reports is what the container's init
//! knows. Services of Berth's supervisor are declared in the container config
//! (`[service.NAME]`), so `add`, `remove` and startup changes work on a stopped container
//! too.

use crate::inroot;
use crate::{LocalNode, NodeError, Result};
use berth_core::services::{validate_service_name, InitMode, ServiceDef, Startup};
pub use berth_core::services::{Action, AddService, ServiceInfo, ServiceStatus};
use berth_core::{fsutil, ContainerConfig, CtId, CtRef};
use berth_runtime::exec::Captured;

/// Runs a command inside the container and captures its output.
pub trait Runner {
    fn run(&self, args: &[&str]) -> Result<Captured>;
    /// Whether a path exists inside the container (resolved inside its root).
    fn exists(&self, path: &str) -> bool;
    /// A small file inside the container, if it exists.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The error of a failed command: its last stderr (or stdout) line.
fn failure(what: &str, c: &Captured) -> NodeError {
    let msg = text(&c.stderr);
    let line = msg
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("error: ").to_string())
        .or_else(|| {
            text(&c.stdout)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| format!("exit status {}", c.code));
    NodeError::Invalid(format!("{what}: {line}"))
}

fn unknown(name: &str) -> NodeError {
    NodeError::Invalid(format!("unknown service {name:?}"))
}

/// An init system's service manager.
pub trait Driver {
    fn name(&self) -> &'static str;
    fn list(&self) -> Result<Vec<ServiceInfo>>;
    fn status(&self, name: &str) -> Result<ServiceStatus>;
    fn action(&self, name: &str, a: Action) -> Result<()>;
    fn set_startup(&self, name: &str, s: Startup) -> Result<()>;
    fn logs(&self, name: &str) -> Result<Vec<u8>>;
}

// ---------------------------------------------------------------- Berth's supervisor

/// Berth's supervisor: `/.berth/init ctl …` inside the container.
pub struct SupervisorDriver<'a> {
    pub run: &'a dyn Runner,
}

impl SupervisorDriver<'_> {
    fn ctl(&self, args: &[&str]) -> Result<String> {
        let mut v = vec![berth_runtime::supervisor::INIT_PATH, "ctl"];
        v.extend_from_slice(args);
        let c = self.run.run(&v)?;
        if c.code != 0 {
            // The supervisor's messages name the service already: pass them on as they are.
            let err = text(&c.stderr);
            let line = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().trim_start_matches("error: ").to_string())
                .unwrap_or_else(|| format!("{} failed (exit status {})", v.join(" "), c.code));
            return Err(NodeError::Invalid(line));
        }
        Ok(text(&c.stdout))
    }
}

fn parse_supervisor_list(out: &str) -> Vec<ServiceInfo> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 4).then(|| ServiceInfo {
                name: f[0].into(),
                state: f[1].into(),
                startup: f[2].into(),
                pid: f[3].parse().ok(),
            })
        })
        .collect()
}

impl Driver for SupervisorDriver<'_> {
    fn name(&self) -> &'static str {
        "berth"
    }
    fn list(&self) -> Result<Vec<ServiceInfo>> {
        Ok(parse_supervisor_list(&self.ctl(&["list"])?))
    }
    fn status(&self, name: &str) -> Result<ServiceStatus> {
        let out = self.ctl(&["status", name])?;
        let kv: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let get = |k: &str| {
            kv.iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Ok(ServiceStatus {
            driver: "berth".into(),
            info: ServiceInfo {
                name: name.into(),
                state: get("state"),
                startup: get("startup"),
                pid: get("pid").parse().ok(),
            },
            details: kv
                .iter()
                .filter(|(k, _)| !["name", "state", "startup", "pid"].contains(&k.as_str()))
                .cloned()
                .collect(),
        })
    }
    fn action(&self, name: &str, a: Action) -> Result<()> {
        self.ctl(&[a.as_str(), name]).map(|_| ())
    }
    fn set_startup(&self, name: &str, _s: Startup) -> Result<()> {
        // Declared services are changed in the container config (LocalNode::
        // service_set_startup); anything else is not a service of the supervisor.
        Err(unknown(name))
    }
    fn logs(&self, name: &str) -> Result<Vec<u8>> {
        self.ctl(&["status", name])?; // unknown service: that error
        let c = self
            .run
            .run(&[berth_runtime::supervisor::INIT_PATH, "logs", name])?;
        if c.code != 0 {
            return Err(failure("", &c).strip_empty_prefix());
        }
        Ok(c.stdout)
    }
}

trait StripEmptyPrefix {
    fn strip_empty_prefix(self) -> Self;
}

impl StripEmptyPrefix for NodeError {
    /// `failure("", …)` gives `: message`.
    fn strip_empty_prefix(self) -> Self {
        match self {
            NodeError::Invalid(m) if m.starts_with(": ") => NodeError::Invalid(m[2..].to_string()),
            e => e,
        }
    }
}

// ---------------------------------------------------------------- systemd

/// systemd: `systemctl` and `journalctl` inside the container.
pub struct SystemdDriver<'a> {
    pub run: &'a dyn Runner,
}

fn unit(name: &str) -> String {
    if name.contains('.') && (name.ends_with(".service") || name.ends_with(".socket")) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

fn short(unit: &str) -> &str {
    unit.strip_suffix(".service").unwrap_or(unit)
}

/// systemd's `UnitFileState` as a startup type.
pub fn systemd_startup(unit_file_state: &str) -> &'static str {
    match unit_file_state {
        "enabled" | "enabled-runtime" | "linked" | "linked-runtime" | "alias" => "auto",
        "masked" | "masked-runtime" => "disabled",
        _ => "manual", // disabled, static, indirect, generated, transient
    }
}

/// systemd's `ActiveState` as a state.
pub fn systemd_state(active: &str) -> &'static str {
    match active {
        "active" | "reloading" => "running",
        "inactive" => "stopped",
        "failed" => "failed",
        "activating" => "starting",
        "deactivating" => "stopping",
        _ => "unknown",
    }
}

/// Parses `systemctl show -p …` output (blocks separated by blank lines).
pub fn parse_systemctl_show(out: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = vec![];
    let mut cur = vec![];
    for l in out.lines() {
        if l.trim().is_empty() {
            if !cur.is_empty() {
                blocks.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            cur.push((k.to_string(), v.to_string()));
        }
    }
    if !cur.is_empty() {
        blocks.push(cur);
    }
    blocks
}

fn kv<'a>(b: &'a [(String, String)], k: &str) -> &'a str {
    b.iter()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Service unit names from `systemctl list-unit-files --type=service --no-legend` and
/// `systemctl list-units --type=service --all --no-legend --plain` (first column; template
/// units `foo@.service` left out).
pub fn parse_systemd_unit_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|u| u.trim_start_matches('●').trim())
        .filter(|u| u.ends_with(".service") && !u.contains("@."))
        .map(String::from)
        .collect()
}

fn systemd_info(b: &[(String, String)]) -> ServiceInfo {
    ServiceInfo {
        name: short(kv(b, "Id")).to_string(),
        state: systemd_state(kv(b, "ActiveState")).into(),
        startup: systemd_startup(kv(b, "UnitFileState")).into(),
        pid: kv(b, "MainPID").parse().ok().filter(|p| *p > 0),
    }
}

impl SystemdDriver<'_> {
    fn systemctl(&self, args: &[&str]) -> Result<Captured> {
        let mut v = vec!["systemctl", "--no-pager"];
        v.extend_from_slice(args);
        self.run.run(&v)
    }
    fn show(&self, units: &[String]) -> Result<Vec<Vec<(String, String)>>> {
        let mut args = vec![
            "show",
            "-p",
            "Id,Description,LoadState,ActiveState,SubState,UnitFileState,MainPID,ExecMainStartTimestamp,NRestarts",
        ];
        args.extend(units.iter().map(String::as_str));
        let c = self.systemctl(&args)?;
        if c.code != 0 {
            return Err(failure("systemctl show", &c));
        }
        Ok(parse_systemctl_show(&text(&c.stdout)))
    }
    fn known(&self, name: &str) -> Result<Vec<(String, String)>> {
        let b = self
            .show(&[unit(name)])?
            .into_iter()
            .next()
            .unwrap_or_default();
        if kv(&b, "LoadState") == "not-found" || b.is_empty() {
            return Err(unknown(name));
        }
        Ok(b)
    }
}

impl Driver for SystemdDriver<'_> {
    fn name(&self) -> &'static str {
        "systemd"
    }
    fn list(&self) -> Result<Vec<ServiceInfo>> {
        let files = self.systemctl(&["list-unit-files", "--type=service", "--no-legend"])?;
        let units = self.systemctl(&[
            "list-units",
            "--type=service",
            "--all",
            "--no-legend",
            "--plain",
        ])?;
        if files.code != 0 {
            return Err(failure("systemctl list-unit-files", &files));
        }
        let mut names = parse_systemd_unit_names(&text(&files.stdout));
        names.extend(parse_systemd_unit_names(&text(&units.stdout)));
        names.sort();
        names.dedup();
        if names.is_empty() {
            return Ok(vec![]);
        }
        let mut v: Vec<ServiceInfo> = self
            .show(&names)?
            .iter()
            .filter(|b| kv(b, "LoadState") != "not-found")
            .map(|b| systemd_info(b))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }
    fn status(&self, name: &str) -> Result<ServiceStatus> {
        let b = self.known(name)?;
        Ok(ServiceStatus {
            driver: "systemd".into(),
            info: systemd_info(&b),
            details: b
                .iter()
                .filter(|(k, _)| {
                    [
                        "Description",
                        "SubState",
                        "ExecMainStartTimestamp",
                        "NRestarts",
                    ]
                    .contains(&k.as_str())
                })
                .cloned()
                .collect(),
        })
    }
    fn action(&self, name: &str, a: Action) -> Result<()> {
        let b = self.known(name)?;
        if a != Action::Stop && systemd_startup(kv(&b, "UnitFileState")) == "disabled" {
            return Err(NodeError::Invalid(format!("service {name} is disabled")));
        }
        let c = self.systemctl(&[a.as_str(), &unit(name)])?;
        if c.code != 0 {
            return Err(failure(&format!("systemctl {} {name}", a.as_str()), &c));
        }
        Ok(())
    }
    fn set_startup(&self, name: &str, s: Startup) -> Result<()> {
        self.known(name)?;
        let u = unit(name);
        let steps: Vec<Vec<&str>> = match s {
            Startup::Auto => vec![vec!["unmask", &u], vec!["enable", &u]],
            Startup::Manual => vec![vec!["unmask", &u], vec!["disable", &u]],
            Startup::Disabled => vec![vec!["disable", &u], vec!["mask", &u]],
        };
        for args in steps {
            let c = self.systemctl(&args)?;
            if c.code != 0 {
                return Err(failure(&format!("systemctl {}", args.join(" ")), &c));
            }
        }
        Ok(())
    }
    fn logs(&self, name: &str) -> Result<Vec<u8>> {
        self.known(name)?;
        let c = self.run.run(&[
            "journalctl",
            "--no-pager",
            "-o",
            "short-iso",
            "-n",
            "1000",
            "-u",
            &unit(name),
        ])?;
        if c.code != 0 {
            return Err(failure("journalctl", &c));
        }
        Ok(c.stdout)
    }
}

// ---------------------------------------------------------------- OpenRC

/// OpenRC: `rc-service`, `rc-update`, `rc-status` inside the container.
pub struct OpenRcDriver<'a> {
    pub run: &'a dyn Runner,
}

/// Parses `rc-status --all --nocolor`: ` name   [  started  ]` lines → (name, state).
pub fn parse_rc_status(out: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![];
    for l in out.lines() {
        if !l.starts_with(' ') {
            continue; // "Runlevel: default" headers
        }
        let Some((name, rest)) = l.trim().split_once(char::is_whitespace) else {
            continue;
        };
        let st = rest
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim()
            .to_string();
        let state = match st.as_str() {
            "started" => "running",
            "stopped" => "stopped",
            "crashed" => "failed",
            "starting" => "starting",
            "stopping" => "stopping",
            _ => "unknown",
        };
        if !v.iter().any(|(n, _)| n == name) {
            v.push((name.to_string(), state.to_string()));
        }
    }
    v
}

/// Parses `rc-update show -v`: ` name | boot default` → (name, in some runlevel).
pub fn parse_rc_update(out: &str) -> Vec<(String, bool)> {
    out.lines()
        .filter_map(|l| {
            let (n, lv) = l.split_once('|')?;
            Some((n.trim().to_string(), !lv.trim().is_empty()))
        })
        .filter(|(n, _)| !n.is_empty())
        .collect()
}

impl OpenRcDriver<'_> {
    fn startups(&self) -> Result<Vec<(String, bool)>> {
        let c = self.run.run(&["rc-update", "show", "-v"])?;
        if c.code != 0 {
            return Err(failure("rc-update show", &c));
        }
        Ok(parse_rc_update(&text(&c.stdout)))
    }
    fn known(&self, name: &str) -> Result<()> {
        if self.startups()?.iter().any(|(n, _)| n == name) {
            Ok(())
        } else {
            Err(unknown(name))
        }
    }
}

impl Driver for OpenRcDriver<'_> {
    fn name(&self) -> &'static str {
        "openrc"
    }
    fn list(&self) -> Result<Vec<ServiceInfo>> {
        let st = self.run.run(&["rc-status", "--all", "--nocolor"])?;
        let states = parse_rc_status(&text(&st.stdout));
        Ok(self
            .startups()?
            .into_iter()
            .map(|(name, auto)| ServiceInfo {
                state: states
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_else(|| "stopped".into()),
                startup: if auto { "auto" } else { "manual" }.into(),
                pid: None,
                name,
            })
            .collect())
    }
    fn status(&self, name: &str) -> Result<ServiceStatus> {
        let info = self
            .list()?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| unknown(name))?;
        Ok(ServiceStatus {
            driver: "openrc".into(),
            info,
            details: vec![],
        })
    }
    fn action(&self, name: &str, a: Action) -> Result<()> {
        self.known(name)?;
        let c = self.run.run(&["rc-service", name, a.as_str()])?;
        if c.code != 0 {
            return Err(failure(&format!("rc-service {name} {}", a.as_str()), &c));
        }
        Ok(())
    }
    fn set_startup(&self, name: &str, s: Startup) -> Result<()> {
        self.known(name)?;
        // OpenRC cannot forbid a manual start: `disabled` takes it out of every runlevel.
        let args: Vec<&str> = match s {
            Startup::Auto => vec!["rc-update", "add", name, "default"],
            Startup::Manual | Startup::Disabled => vec!["rc-update", "del", name],
        };
        let c = self.run.run(&args)?;
        if c.code != 0 && !(s != Startup::Auto && text(&c.stderr).contains("not in")) {
            return Err(failure(&args.join(" "), &c));
        }
        Ok(())
    }
    fn logs(&self, name: &str) -> Result<Vec<u8>> {
        self.known(name)?;
        Err(NodeError::Invalid(format!(
            "OpenRC keeps no per-service log: see the service's own logs under /var/log in the container ({name})"
        )))
    }
}

// ---------------------------------------------------------------- SysV / busybox init scripts

/// SysV and busybox init scripts in `/etc/init.d`. Startup: busybox's rcS runs executable
/// `S??NAME` scripts at boot; Debian-style systems have `S??NAME` links in `/etc/rc2.d`…
/// A script without its execute bit is `disabled` (neither rcS nor `service start` runs it).
pub struct SysvDriver<'a> {
    pub run: &'a dyn Runner,
    /// Script file names in /etc/init.d and whether each is executable.
    pub scripts: Vec<(String, bool)>,
    /// `S??NAME` entries of /etc/rc2.d … /etc/rc5.d (Debian style).
    pub rc_links: Vec<String>,
}

const NOT_SERVICES: &[&str] = &[
    "rcS",
    "rcK",
    "README",
    "skeleton",
    "functions",
    ".depend.boot",
    ".depend.start",
    ".depend.stop",
    ".legacy-bootordering",
];

/// Service name of an init script file: `S50web` → `web`.
pub fn sysv_name(file: &str) -> &str {
    let b = file.as_bytes();
    if b.len() > 3
        && (b[0] == b'S' || b[0] == b'K')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
    {
        &file[3..]
    } else {
        file
    }
}

impl SysvDriver<'_> {
    fn entries(&self) -> Vec<(String, String, bool)> {
        // (name, file, executable)
        let mut v: Vec<(String, String, bool)> = self
            .scripts
            .iter()
            .filter(|(f, _)| !NOT_SERVICES.contains(&f.as_str()) && !f.starts_with('.'))
            .map(|(f, x)| (sysv_name(f).to_string(), f.clone(), *x))
            .collect();
        v.sort();
        v
    }
    fn find(&self, name: &str) -> Result<(String, bool)> {
        self.entries()
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, f, x)| (f, x))
            .ok_or_else(|| unknown(name))
    }
    fn startup(&self, name: &str, file: &str, exec: bool) -> &'static str {
        if !exec {
            "disabled"
        } else if file != name
            || self
                .rc_links
                .iter()
                .any(|l| sysv_name(l) == name && l.starts_with('S'))
        {
            "auto"
        } else {
            "manual"
        }
    }
    fn pid(&self, name: &str) -> Option<i32> {
        ["/run", "/var/run"].iter().find_map(|d| {
            self.run
                .read(&format!("{d}/{name}.pid"))
                .and_then(|b| text(&b).trim().parse().ok())
        })
    }
    fn state(&self, name: &str, file: &str, exec: bool) -> Result<String> {
        if !exec {
            return Ok("stopped".into());
        }
        let c = self.run.run(&[&format!("/etc/init.d/{file}"), "status"])?;
        // LSB: 0 running, 1 dead with a pid file left, 2 dead with a lock file left, 3 not
        // running, 4 unknown. Scripts without a `status` action often exit 1 with a usage
        // line, so 1 and 2 count as failed only when a pid file is really there.
        Ok(match c.code {
            0 => "running",
            1 | 2 if self.pid(name).is_some() => "failed",
            1..=3 => "stopped",
            _ => "unknown",
        }
        .to_string())
    }
}

impl Driver for SysvDriver<'_> {
    fn name(&self) -> &'static str {
        "sysv"
    }
    fn list(&self) -> Result<Vec<ServiceInfo>> {
        self.entries()
            .into_iter()
            .map(|(name, file, x)| {
                let state = self.state(&name, &file, x)?;
                Ok(ServiceInfo {
                    startup: self.startup(&name, &file, x).into(),
                    pid: if state == "running" {
                        self.pid(&name)
                    } else {
                        None
                    },
                    state,
                    name,
                })
            })
            .collect()
    }
    fn status(&self, name: &str) -> Result<ServiceStatus> {
        let (file, x) = self.find(name)?;
        let state = self.state(name, &file, x)?;
        Ok(ServiceStatus {
            driver: "sysv".into(),
            info: ServiceInfo {
                name: name.into(),
                startup: self.startup(name, &file, x).into(),
                pid: if state == "running" {
                    self.pid(name)
                } else {
                    None
                },
                state,
            },
            details: vec![("script".into(), format!("/etc/init.d/{file}"))],
        })
    }
    fn action(&self, name: &str, a: Action) -> Result<()> {
        let (file, x) = self.find(name)?;
        if !x {
            if a == Action::Stop {
                return Ok(());
            }
            return Err(NodeError::Invalid(format!("service {name} is disabled")));
        }
        let c = self
            .run
            .run(&[&format!("/etc/init.d/{file}"), a.as_str()])?;
        if c.code != 0 {
            return Err(failure(&format!("/etc/init.d/{file} {}", a.as_str()), &c));
        }
        Ok(())
    }
    fn set_startup(&self, name: &str, s: Startup) -> Result<()> {
        let (file, _) = self.find(name)?;
        let path = format!("/etc/init.d/{file}");
        let debian = self.run.exists("/usr/sbin/update-rc.d");
        let mut cmds: Vec<Vec<String>> = vec![];
        let mode = if s == Startup::Disabled { "-x" } else { "+x" };
        cmds.push(vec!["chmod".into(), mode.into(), path.clone()]);
        if debian {
            if s != Startup::Disabled {
                let verb = if s == Startup::Auto {
                    "enable"
                } else {
                    "disable"
                };
                if s == Startup::Auto {
                    cmds.push(vec!["update-rc.d".into(), name.into(), "defaults".into()]);
                }
                cmds.push(vec!["update-rc.d".into(), name.into(), verb.into()]);
            }
        } else {
            // busybox rcS style: S50NAME runs at boot, NAME does not.
            let want = match s {
                Startup::Auto if file == name => Some(format!("/etc/init.d/S50{name}")),
                Startup::Manual if file != name => Some(format!("/etc/init.d/{name}")),
                _ => None,
            };
            if let Some(to) = want {
                cmds.push(vec!["mv".into(), path.clone(), to.clone()]);
                if s == Startup::Auto {
                    cmds[0][2] = to; // chmod after the rename
                    cmds.swap(0, 1);
                }
            }
        }
        for cmd in cmds {
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let c = self.run.run(&args)?;
            if c.code != 0 {
                return Err(failure(&cmd.join(" "), &c));
            }
        }
        Ok(())
    }
    fn logs(&self, name: &str) -> Result<Vec<u8>> {
        self.find(name)?;
        Err(NodeError::Invalid(format!(
            "init scripts keep no log Berth can read: see the service's own logs under /var/log in the container ({name})"
        )))
    }
}

// ---------------------------------------------------------------- the node's side

/// Runs commands in a running container through `LocalNode::join`.
struct CtRunner<'a> {
    node: &'a LocalNode,
    id: CtId,
    st: berth_runtime::state::RunState,
}

impl Runner for CtRunner<'_> {
    fn run(&self, args: &[&str]) -> Result<Captured> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env = berth_runtime::spec::default_env();
        let mut out = Captured::default();
        self.node.join(self.id, &self.st, |t| {
            out = berth_runtime::exec::exec_capture(t, &args, &env)?;
            Ok(0)
        })?;
        if out.code == 127 && text(&out.stderr).contains("joining the container") {
            return Err(NodeError::Invalid(text(&out.stderr).trim().to_string()));
        }
        Ok(out)
    }
    fn exists(&self, path: &str) -> bool {
        inroot::exists_in_root(self.st.init_pid, path)
    }
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        inroot::read_in_root(self.st.init_pid, path).ok()
    }
}

fn list_dir_in_root(pid: i32, rel: &str) -> Vec<(String, bool)> {
    let Ok(fd) = inroot::open_in_root(pid, rel, libc::O_RDONLY | libc::O_DIRECTORY) else {
        return vec![];
    };
    let dir = std::fs::File::from(fd);
    let p = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&dir));
    let mut v = vec![];
    if let Ok(rd) = std::fs::read_dir(&p) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Executable: follow the entry inside the root (rc2.d links point at ../init.d).
            let x = inroot::open_in_root(pid, &format!("{rel}/{name}"), libc::O_PATH)
                .ok()
                .and_then(|fd| std::fs::File::from(fd).metadata().ok())
                .map(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.is_file() && m.permissions().mode() & 0o111 != 0
                })
                .unwrap_or(false);
            v.push((name, x));
        }
    }
    v.sort();
    v
}

/// Which driver a running container needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    Supervisor,
    Systemd,
    OpenRc,
    Sysv,
}

fn detect(init_pid: i32) -> Option<DriverKind> {
    let cmdline = std::fs::read(format!("/proc/{init_pid}/cmdline")).unwrap_or_default();
    if cmdline.starts_with(berth_runtime::supervisor::INIT_PATH.as_bytes()) {
        return Some(DriverKind::Supervisor);
    }
    let comm = std::fs::read_to_string(format!("/proc/{init_pid}/comm")).unwrap_or_default();
    if comm.trim() == "systemd" {
        return Some(DriverKind::Systemd);
    }
    if [
        "/sbin/openrc",
        "/sbin/openrc-run",
        "/usr/sbin/openrc",
        "/usr/sbin/openrc-run",
    ]
    .iter()
    .any(|p| inroot::exists_in_root(init_pid, p))
    {
        return Some(DriverKind::OpenRc);
    }
    if inroot::exists_in_root(init_pid, "/etc/init.d") {
        return Some(DriverKind::Sysv);
    }
    None
}

fn with_driver<T>(
    runner: &CtRunner,
    kind: DriverKind,
    f: impl FnOnce(&dyn Driver) -> Result<T>,
) -> Result<T> {
    match kind {
        DriverKind::Supervisor => f(&SupervisorDriver { run: runner }),
        DriverKind::Systemd => f(&SystemdDriver { run: runner }),
        DriverKind::OpenRc => f(&OpenRcDriver { run: runner }),
        DriverKind::Sysv => {
            let pid = runner.st.init_pid;
            let mut rc_links = vec![];
            for lv in ["/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d"] {
                rc_links.extend(list_dir_in_root(pid, lv).into_iter().map(|(n, _)| n));
            }
            f(&SysvDriver {
                run: runner,
                scripts: list_dir_in_root(pid, "/etc/init.d"),
                rc_links,
            })
        }
    }
}

impl LocalNode {
    fn runner(&self, id: CtId) -> Result<CtRunner<'_>> {
        let st = {
            let _g = self.lock_ct(id)?;
            self.require_running(id)?
        };
        Ok(CtRunner { node: self, id, st })
    }

    fn driver_for(&self, id: CtId) -> Result<(CtRunner<'_>, DriverKind)> {
        let r = self.runner(id)?;
        // A boot with Berth's supervisor publishes `run/<ctid>/berth/`. Right after `start`
        // returns, init may not have exec'd the supervisor yet (its cmdline is still the
        // runtime's): wait for that instead of taking the template's init scripts for the
        // service manager.
        if berth_runtime::supervisor::host_dir(self.root(), id).is_dir() {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while detect(r.st.init_pid) != Some(DriverKind::Supervisor)
                && std::time::Instant::now() < until
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Ok((r, DriverKind::Supervisor));
        }
        let kind = detect(r.st.init_pid).ok_or_else(|| {
            NodeError::Invalid(format!(
                "container {id} has no service manager Berth knows (systemd, OpenRC, /etc/init.d, Berth's supervisor)"
            ))
        })?;
        Ok((r, kind))
    }

    /// The driver of a running container and its services.
    pub fn service_list(&self, r: &CtRef) -> Result<(String, Vec<ServiceInfo>)> {
        let id = self.resolve(r)?;
        let (runner, kind) = self.driver_for(id)?;
        with_driver(&runner, kind, |d| Ok((d.name().to_string(), d.list()?)))
    }

    pub fn service_status(&self, r: &CtRef, name: &str) -> Result<ServiceStatus> {
        let id = self.resolve(r)?;
        let (runner, kind) = self.driver_for(id)?;
        with_driver(&runner, kind, |d| d.status(name))
    }

    pub fn service_action(&self, r: &CtRef, name: &str, a: Action) -> Result<()> {
        let id = self.resolve(r)?;
        let (runner, kind) = self.driver_for(id)?;
        with_driver(&runner, kind, |d| d.action(name, a))
    }

    pub fn service_logs(&self, r: &CtRef, name: &str) -> Result<Vec<u8>> {
        let id = self.resolve(r)?;
        let (runner, kind) = self.driver_for(id)?;
        with_driver(&runner, kind, |d| d.logs(name))
    }

    /// Whether the container runs (or, stopped, would run) Berth's supervisor.
    fn supervised(&self, cfg: &ContainerConfig) -> Result<bool> {
        if let Some(st) = self.run_state(cfg.ctid) {
            let cmdline =
                std::fs::read(format!("/proc/{}/cmdline", st.init_pid)).unwrap_or_default();
            if cmdline.starts_with(berth_runtime::supervisor::INIT_PATH.as_bytes()) {
                return Ok(true);
            }
        }
        let t = berth_storage::template::load(self.root(), &cfg.ostemplate)?;
        Ok(berth_runtime::supervisor::uses_supervisor(cfg, &t))
    }

    /// Changes the config of a container's supervisor services under its lock, then (if it
    /// runs) publishes them to its supervisor.
    fn edit_services(
        &self,
        id: CtId,
        f: impl FnOnce(&mut ContainerConfig) -> Result<()>,
    ) -> Result<()> {
        let running = {
            let _g = self.lock_ct(id)?;
            let mut cfg = self.load_config(id)?;
            if !self.supervised(&cfg)? {
                return Err(NodeError::TemplateInit(id.0));
            }
            f(&mut cfg)?;
            cfg.procs.validate()?;
            fsutil::write_toml(&self.root().ct_config(id), &cfg)?;
            let running = self.run_state(id).is_some();
            if running && self.root().ct_run_dir(id).join("berth").is_dir() {
                berth_runtime::supervisor::write_services(self.root(), &cfg)?;
            }
            running
        };
        if running {
            let r = self.runner(id)?;
            SupervisorDriver { run: &r }.ctl(&["reload"])?;
        }
        Ok(())
    }

    /// `service add NAME -- CMD…`: declares a service of Berth's supervisor.
    pub fn service_add(&self, r: &CtRef, name: &str, add: AddService) -> Result<Startup> {
        validate_service_name(name)?;
        if add.command.is_empty() {
            return Err(NodeError::Invalid(
                "service add needs a command: berth service CT add NAME -- CMD [ARGS…]".into(),
            ));
        }
        let id = self.resolve(r)?;
        let startup = add
            .startup
            .or_else(|| self.node_config().service_defaults.get(name).copied())
            .unwrap_or_default();
        self.edit_services(id, |cfg| {
            if cfg.procs.services.contains_key(name) {
                return Err(NodeError::Invalid(format!(
                    "service {name} already exists in container {id}"
                )));
            }
            cfg.procs.services.insert(
                name.to_string(),
                ServiceDef {
                    command: add.command,
                    user: add.user,
                    startup,
                    restart: add.restart.unwrap_or_default(),
                    after: add.after,
                },
            );
            Ok(())
        })?;
        Ok(startup)
    }

    /// `service remove NAME`: stops it (if running) and forgets it.
    pub fn service_remove(&self, r: &CtRef, name: &str) -> Result<()> {
        let id = self.resolve(r)?;
        self.edit_services(id, |cfg| {
            if cfg.procs.services.remove(name).is_none() {
                return Err(unknown(name));
            }
            if let Some((other, _)) = cfg
                .procs
                .services
                .iter()
                .find(|(_, d)| d.after.iter().any(|a| a == name))
            {
                return Err(NodeError::Invalid(format!(
                    "service {other} starts after {name}: change it first"
                )));
            }
            Ok(())
        })
    }

    /// `service enable|disable|set --startup`.
    pub fn service_set_startup(&self, r: &CtRef, name: &str, s: Startup) -> Result<()> {
        let id = self.resolve(r)?;
        let cfg = self.load_config(id)?;
        let declared = cfg.procs.services.contains_key(name);
        if declared || (self.run_state(id).is_none() && self.supervised(&cfg)?) {
            return self.edit_services(id, |cfg| {
                let d = cfg
                    .procs
                    .services
                    .get_mut(name)
                    .ok_or_else(|| unknown(name))?;
                d.startup = s;
                Ok(())
            });
        }
        let (runner, kind) = self.driver_for(id)?;
        with_driver(&runner, kind, |d| d.set_startup(name, s))
    }

    /// `node set --service-default NAME=TYPE`: the startup type new containers give a service.
    pub fn set_service_default(&self, name: &str, s: Option<Startup>) -> Result<()> {
        validate_service_name(name)?;
        self.edit_node_config(|node| match s {
            Some(s) => {
                node.service_defaults.insert(name.to_string(), s);
            }
            None => {
                node.service_defaults.remove(name);
            }
        })
    }

    /// On a container's first start: the node's default startup types captured at create,
    /// applied through its service manager (services it does not have are skipped), then
    /// cleared. Failures are logged, not fatal: the container runs.
    pub fn apply_pending_service_defaults(&self, r: &CtRef) -> Result<Vec<String>> {
        let id = self.resolve(r)?;
        let cfg = self.load_config(id)?;
        if cfg.procs.pending_service_defaults.is_empty() {
            return Ok(vec![]);
        }
        let mut applied = vec![];
        if !self.supervised(&cfg)? {
            let (runner, kind) = self.driver_for(id)?;
            with_driver(&runner, kind, |d| {
                let names: Vec<String> = d.list()?.into_iter().map(|s| s.name).collect();
                for (name, s) in &cfg.procs.pending_service_defaults {
                    if !names.contains(name) {
                        continue;
                    }
                    match d.set_startup(name, *s) {
                        Ok(()) => {
                            if *s == Startup::Disabled {
                                let _ = d.action(name, Action::Stop);
                            }
                            applied.push(format!("{name}={s}"));
                        }
                        Err(e) => tracing::warn!(%id, %name, "default startup not applied: {e}"),
                    }
                }
                Ok(())
            })?;
        }
        let _g = self.lock_ct(id)?;
        let mut cfg = self.load_config(id)?;
        cfg.procs.pending_service_defaults.clear();
        fsutil::write_toml(&self.root().ct_config(id), &cfg)?;
        Ok(applied)
    }

    /// The container's init mode as configured.
    pub fn init_mode(&self, r: &CtRef) -> Result<InitMode> {
        let id = self.resolve(r)?;
        Ok(self.load_config(id)?.procs.init)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// Replays recorded outputs; records the commands it was asked to run.
    #[derive(Default)]
    struct Fake {
        outputs: HashMap<String, (i32, &'static str)>,
        calls: RefCell<Vec<String>>,
        files: HashMap<String, &'static str>,
    }

    impl Fake {
        fn on(mut self, cmd: &str, code: i32, out: &'static str) -> Self {
            self.outputs.insert(cmd.to_string(), (code, out));
            self
        }
    }

    impl Runner for Fake {
        fn run(&self, args: &[&str]) -> Result<Captured> {
            let cmd = args.join(" ");
            self.calls.borrow_mut().push(cmd.clone());
            let (code, out) = self
                .outputs
                .iter()
                .find(|(k, _)| cmd.starts_with(k.as_str()))
                .map(|(_, v)| *v)
                .unwrap_or((0, ""));
            Ok(Captured {
                code,
                stdout: if code == 0 {
                    out.as_bytes().to_vec()
                } else {
                    vec![]
                },
                stderr: if code != 0 {
                    out.as_bytes().to_vec()
                } else {
                    vec![]
                },
            })
        }
        fn exists(&self, path: &str) -> bool {
            self.files.contains_key(path)
        }
        fn read(&self, path: &str) -> Option<Vec<u8>> {
            self.files.get(path).map(|s| s.as_bytes().to_vec())
        }
    }

    // Recorded on Debian 12 (systemd 252) in a container.
    const LIST_UNIT_FILES: &str = "\
cron.service                           enabled         enabled
dbus.service                           static          -
getty@.service                         enabled         enabled
ssh.service                            masked          enabled
systemd-networkd.service               disabled        enabled
";
    const LIST_UNITS: &str = "\
cron.service                      loaded    active   running Regular background program processing daemon
dbus.service                      loaded    active   running D-Bus System Message Bus
systemd-journald.service          loaded    active   running Journal Service
";
    const SHOW_ALL: &str = "\
Id=cron.service
Description=Regular background program processing daemon
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
MainPID=94
ExecMainStartTimestamp=Fri 2026-11-20 10:00:00 UTC
NRestarts=0

Id=dbus.service
Description=D-Bus System Message Bus
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=static
MainPID=95
ExecMainStartTimestamp=Fri 2026-11-20 10:00:00 UTC
NRestarts=0

Id=ssh.service
Description=ssh.service
LoadState=masked
ActiveState=inactive
SubState=dead
UnitFileState=masked
MainPID=0
ExecMainStartTimestamp=
NRestarts=0

Id=systemd-journald.service
Description=Journal Service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=static
MainPID=40
ExecMainStartTimestamp=Fri 2026-11-20 10:00:00 UTC
NRestarts=0

Id=systemd-networkd.service
Description=Network Configuration
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=disabled
MainPID=0
ExecMainStartTimestamp=
NRestarts=2
";
    const SHOW_MISSING: &str = "\
Id=nope.service
Description=nope.service
LoadState=not-found
ActiveState=inactive
SubState=dead
UnitFileState=
MainPID=0
ExecMainStartTimestamp=
NRestarts=0
";

    #[test]
    fn systemd_list_from_recorded_outputs() {
        let f = Fake::default()
            .on("systemctl --no-pager list-unit-files", 0, LIST_UNIT_FILES)
            .on("systemctl --no-pager list-units", 0, LIST_UNITS)
            .on("systemctl --no-pager show", 0, SHOW_ALL);
        let d = SystemdDriver { run: &f };
        let l = d.list().unwrap();
        let names: Vec<&str> = l.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cron",
                "dbus",
                "ssh",
                "systemd-journald",
                "systemd-networkd"
            ]
        );
        assert_eq!(
            l[0],
            ServiceInfo {
                name: "cron".into(),
                state: "running".into(),
                startup: "auto".into(),
                pid: Some(94)
            }
        );
        assert_eq!(
            (l[2].state.as_str(), l[2].startup.as_str(), l[2].pid),
            ("stopped", "disabled", None)
        );
        assert_eq!(
            (l[4].state.as_str(), l[4].startup.as_str()),
            ("failed", "manual")
        );
        // one `show` for all units, template units left out
        let calls = f.calls.borrow();
        let show = calls.iter().find(|c| c.contains(" show ")).unwrap();
        assert!(show.ends_with("cron.service dbus.service ssh.service systemd-journald.service systemd-networkd.service"), "{show}");
        assert!(!show.contains("getty@"));
    }

    #[test]
    fn systemd_actions_and_errors() {
        let f = Fake::default().on("systemctl --no-pager show", 0, SHOW_MISSING);
        let d = SystemdDriver { run: &f };
        let e = d.action("nope", Action::Start).unwrap_err().to_string();
        assert_eq!(e, "unknown service \"nope\"");
        let f = Fake::default()
            .on("systemctl --no-pager show", 0, SHOW_ALL)
            .on(
                "systemctl --no-pager restart",
                1,
                "Job for cron.service failed because the control process exited with error code.\n",
            );
        let d = SystemdDriver { run: &f };
        d.set_startup("cron", Startup::Disabled).unwrap();
        d.action("cron", Action::Stop).unwrap();
        let e = d.action("cron", Action::Restart).unwrap_err().to_string();
        assert!(
            e.starts_with("systemctl restart cron: Job for cron.service failed"),
            "{e}"
        );
        let calls = f.calls.borrow().join("\n");
        assert!(
            calls.contains(
                "systemctl --no-pager disable cron.service\nsystemctl --no-pager mask cron.service"
            ),
            "{calls}"
        );
        assert!(calls.contains("systemctl --no-pager stop cron.service"));
        let st = d.status("cron").unwrap();
        assert_eq!(st.info.pid, Some(94));
        assert!(st
            .details
            .iter()
            .any(|(k, v)| k == "Description" && v.starts_with("Regular")));
    }

    #[test]
    fn openrc_parsing() {
        let status = "Runlevel: default\n sshd                 [  started  ]\n crond   [  stopped  ]\nDynamic Runlevel: manual\n nginx     [  crashed  ]\n";
        assert_eq!(
            parse_rc_status(status),
            vec![
                ("sshd".to_string(), "running".to_string()),
                ("crond".to_string(), "stopped".to_string()),
                ("nginx".to_string(), "failed".to_string())
            ]
        );
        let upd = "             crond |      default\n             nginx |\n              sshd | boot default\n";
        assert_eq!(
            parse_rc_update(upd),
            vec![
                ("crond".into(), true),
                ("nginx".into(), false),
                ("sshd".into(), true)
            ]
        );
        let f = Fake::default()
            .on("rc-status", 0, status)
            .on("rc-update show", 0, upd);
        let d = OpenRcDriver { run: &f };
        let l = d.list().unwrap();
        assert_eq!(l[1].name, "nginx");
        assert_eq!(
            (l[1].state.as_str(), l[1].startup.as_str()),
            ("failed", "manual")
        );
        assert!(d
            .action("httpd", Action::Start)
            .unwrap_err()
            .to_string()
            .contains("unknown service"));
    }

    #[test]
    fn sysv_busybox_style() {
        let f = Fake::default().on("/etc/init.d/S50web status", 0, "").on(
            "/etc/init.d/cron status",
            3,
            "",
        );
        let d = SysvDriver {
            run: &f,
            scripts: vec![
                ("S50web".into(), true),
                ("cron".into(), true),
                ("old".into(), false),
                ("rcS".into(), true),
                ("rcK".into(), true),
            ],
            rc_links: vec![],
        };
        let l = d.list().unwrap();
        let v: Vec<(&str, &str, &str)> = l
            .iter()
            .map(|s| (s.name.as_str(), s.state.as_str(), s.startup.as_str()))
            .collect();
        assert_eq!(
            v,
            [
                ("cron", "stopped", "manual"),
                ("old", "stopped", "disabled"),
                ("web", "running", "auto")
            ]
        );
        assert!(d
            .action("old", Action::Start)
            .unwrap_err()
            .to_string()
            .contains("disabled"));
        d.set_startup("cron", Startup::Auto).unwrap();
        d.set_startup("web", Startup::Disabled).unwrap();
        let calls = f.calls.borrow().join("\n");
        assert!(
            calls.contains("mv /etc/init.d/cron /etc/init.d/S50cron\nchmod +x /etc/init.d/S50cron"),
            "{calls}"
        );
        assert!(calls.contains("chmod -x /etc/init.d/S50web"), "{calls}");
        assert_eq!(sysv_name("K20x"), "x");
        assert_eq!(sysv_name("S5"), "S5");
    }

    #[test]
    fn supervisor_list_parsing() {
        let l = parse_supervisor_list("web\trunning\tauto\t12\t0\ndb\tstopped\tmanual\t-\t3\n");
        assert_eq!(l[0].pid, Some(12));
        assert_eq!((l[1].state.as_str(), l[1].pid), ("stopped", None));
    }
}
