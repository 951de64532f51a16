//! The supervisor as the container's PID 1: reaps every orphan, optionally runs the
//! template's boot script (busybox's `/etc/init.d/rcS`), starts `auto` services in `after`
//! order, restarts crashed ones with back-off, copies each service's output into a bounded
//! log, answers `berth-init ctl`, and shuts down on the stop signals busybox init uses
//! (SIGUSR1 halt, SIGUSR2 poweroff, SIGTERM reboot) plus SIGPWR and SIGRTMIN+4 (poweroff)
//! and SIGINT (ctrl-alt-del: reboot). Shutdown ends with reboot(2), which the kernel turns
//! into SIGINT (poweroff) or SIGHUP (reboot) for the monitor.

use crate::sys::{self, cstr, cvt};
use berth_init::proto::{self, Restart, ServiceSpec, Startup, LOG_DIR, LOG_MAX};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

/// Grace period between SIGTERM and SIGKILL when stopping a service.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// A service that ran this long has its back-off reset.
const STABLE_AFTER: Duration = Duration::from_secs(10);
const BACKOFF_FIRST_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 30_000;
/// How long orphans stay unreaped once the container refuses forks (see [`Brake`]); it
/// doubles, up to `BRAKE_MAX`, while forks go on being refused right after each brake.
const BRAKE: Duration = Duration::from_millis(500);
const BRAKE_MAX: Duration = Duration::from_secs(4);
/// A brake that starts this long after the last one ended starts again from `BRAKE`.
const BRAKE_RESET: Duration = Duration::from_secs(10);

struct Svc {
    spec: ServiceSpec,
    pid: Option<i32>,
    /// Asked to stop (or removed): the exit is not a crash.
    stopping: Option<Instant>,
    started: Option<Instant>,
    next_start: Option<Instant>,
    backoff_step: u32,
    restarts: u32,
    last_exit: Option<String>,
    failed: bool,
    removed: bool,
}

impl Svc {
    fn new(spec: ServiceSpec) -> Svc {
        Svc {
            spec,
            pid: None,
            stopping: None,
            started: None,
            next_start: None,
            backoff_step: 0,
            restarts: 0,
            last_exit: None,
            failed: false,
            removed: false,
        }
    }
    fn state(&self) -> &'static str {
        match (self.pid, self.stopping, self.next_start) {
            (Some(_), Some(_), _) => "stopping",
            (Some(_), None, _) => "running",
            (None, _, Some(_)) => "restarting",
            (None, _, None) if self.failed => "failed",
            _ => "stopped",
        }
    }
}

/// A service's output pipe and its log file.
struct Output {
    fd: OwnedFd,
    name: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Booting,
    Running,
    Stopping { reboot: bool, since: Instant },
    RcStop { reboot: bool, since: Instant },
}

struct Sup {
    svcs: Vec<Svc>,
    outputs: Vec<Output>,
    phase: Phase,
    rc_pid: Option<i32>,
    rc_stop: Option<String>,
    brake: Brake,
}

/// The fork-bomb brake. When the container's pids controller has refused a fork since the
/// last look (it is at `--numproc`), orphans that exit are left as zombies for [`BRAKE`]
/// instead of being reaped at once: their PIDs stay taken, so a runaway fork tree whose
/// members exit when a fork fails (a shell bomb) burns out instead of being handed freed
/// PIDs to fork again at full speed, which keeps every CPU busy in the kernel and slows the
/// neighbours. Services and the boot script are still reaped (and restarted) as usual; once
/// the brake has run out every zombie is reaped, so a container that keeps hitting its limit
/// still gets its PIDs back every few seconds. A container below its limit never brakes.
struct Brake {
    /// The `max` count of the container's `pids.events` when last read.
    refused: Option<u64>,
    until: Option<Instant>,
    /// The length of the last brake, and when it ended.
    len: Duration,
    ended: Option<Instant>,
}

impl Brake {
    fn new() -> Brake {
        Brake {
            refused: refused_forks(),
            until: None,
            len: BRAKE,
            ended: None,
        }
    }

    fn engage(&mut self, now: Instant) {
        let again = self
            .ended
            .is_some_and(|e| now.saturating_duration_since(e) < BRAKE_RESET);
        self.len = if again {
            (self.len * 2).min(BRAKE_MAX)
        } else {
            BRAKE
        };
        self.until = Some(now + self.len);
    }

    fn release(&mut self, now: Instant) {
        self.until = None;
        self.ended = Some(now);
        // Look afresh from here.
        let _ = self.refusing();
    }

    /// Whether forks were refused since the last call.
    fn refusing(&mut self) -> bool {
        let now = refused_forks();
        let more = matches!((self.refused, now), (Some(a), Some(b)) if b > a);
        self.refused = now;
        more
    }
}

/// Forks the container's pids controller refused so far, from its `pids.events`, as the
/// container sees its own cgroup (v1 `pids` hierarchy, or v2).
fn refused_forks() -> Option<u64> {
    [
        "/sys/fs/cgroup/pids/pids.events",
        "/sys/fs/cgroup/pids.events",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|t| parse_refused(&t))
}

fn parse_refused(events: &str) -> Option<u64> {
    events.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == "max").then(|| v.trim().parse().ok())?
    })
}

fn say(msg: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "berth-init: {msg}");
    let _ = o.flush();
}

fn load_specs() -> Vec<ServiceSpec> {
    let mut v = match std::fs::read_to_string(proto::SERVICES_FILE) {
        Ok(t) => proto::parse(&t).unwrap_or_else(|e| {
            say(&format!("{}: {e}; no services", proto::SERVICES_FILE));
            vec![]
        }),
        Err(_) => vec![],
    };
    if let Some(g) = CONSOLE_GETTY.get().and_then(|g| g.as_ref()) {
        if !v.iter().any(|s| s.name == g.name) {
            v.push(g.clone());
        }
    }
    v
}

const CONSOLE_GETTY_NAME: &str = "console-getty";
/// How long after boot the console getty first starts (see `Sup::start_auto`).
const CONSOLE_GETTY_GRACE: Duration = Duration::from_secs(1);
/// The login prompt on `/dev/console` (`--getty PROGRAM`), a service like the declared ones
/// (restarted after each logout); a declared service of the same name replaces it.
static CONSOLE_GETTY: std::sync::OnceLock<Option<ServiceSpec>> = std::sync::OnceLock::new();

/// The console getty's service, when `program` exists and init's stdin is a terminal (the
/// container's console).
fn console_getty(program: Option<&str>) -> Option<ServiceSpec> {
    let p = program?;
    // SAFETY: isatty on our stdin.
    if unsafe { libc::isatty(0) } != 1 || !std::path::Path::new(p).exists() {
        return None;
    }
    Some(ServiceSpec {
        name: CONSOLE_GETTY_NAME.into(),
        // busybox getty: keep the speed, local line, the console, TERM=linux
        command: vec![
            p.into(),
            "-L".into(),
            "0".into(),
            "console".into(),
            "linux".into(),
        ],
        user: "root".into(),
        startup: proto::Startup::Auto,
        restart: proto::Restart::Always,
        after: vec![],
    })
}

fn log_path(name: &str) -> String {
    format!("{LOG_DIR}/{name}.log")
}

/// Appends `data` to the service's log, rotating it to `.log.1` past [`LOG_MAX`].
fn append_log(name: &str, data: &[u8]) {
    let p = log_path(name);
    let size = std::fs::symlink_metadata(&p).map(|m| m.len()).unwrap_or(0);
    if size > 0 && size + data.len() as u64 > LOG_MAX {
        let _ = std::fs::rename(&p, format!("{p}.1"));
    }
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p);
    if let Ok(mut f) = f {
        let _ = f.write_all(data);
    }
}

fn log_event(name: &str, msg: &str) {
    append_log(name, format!("[berth-init] {msg}\n").as_bytes());
}

fn base_env() -> Vec<String> {
    vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "container=berth".into(),
    ]
}

impl Sup {
    fn find(&self, name: &str) -> Option<usize> {
        self.svcs
            .iter()
            .position(|s| s.spec.name == name && !s.removed)
    }

    fn spawn_service(&mut self, i: usize) -> Result<i32, String> {
        let spec = self.svcs[i].spec.clone();
        let name = spec.name.clone();
        self.svcs[i].next_start = None;
        let user = match sys::lookup_user(&spec.user) {
            Ok(u) => u,
            Err(e) => {
                log_event(&name, &format!("cannot start: {e}"));
                self.svcs[i].failed = true;
                self.svcs[i].last_exit = Some(e.clone());
                return Err(e);
            }
        };
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })
            .map_err(|e| e.to_string())?;
        // SAFETY: fresh descriptors we own.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut env = base_env();
        env.push(format!("HOME={}", user.home));
        env.push(format!("USER={}", spec.user));
        env.push(format!("LOGNAME={}", spec.user));
        let s = sys::SpawnSpec {
            argv: spec.command.iter().map(|a| cstr(a)).collect(),
            envp: env.iter().map(|a| cstr(a)).collect(),
            uid: user.uid,
            gid: user.gid,
            cwd: cstr(if user.home.is_empty() {
                "/"
            } else {
                &user.home
            }),
            out: Some(w.as_raw_fd()),
            setsid: true,
        };
        let pid = sys::spawn(&s).map_err(|e| e.to_string())?;
        drop(w);
        // SAFETY: F_SETFL on our descriptor.
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        self.outputs.push(Output {
            fd: r,
            name: name.clone(),
        });
        let sv = &mut self.svcs[i];
        sv.pid = Some(pid);
        sv.started = Some(Instant::now());
        sv.stopping = None;
        sv.failed = false;
        log_event(
            &name,
            &format!("started {:?} as pid {pid}", spec.command.join(" ")),
        );
        Ok(pid)
    }

    fn stop_service(&mut self, i: usize) {
        let sv = &mut self.svcs[i];
        sv.next_start = None;
        if let Some(pid) = sv.pid {
            if sv.stopping.is_none() {
                sv.stopping = Some(Instant::now());
                // SAFETY: signalling the service's process group and process.
                unsafe {
                    libc::kill(-pid, libc::SIGTERM);
                    libc::kill(pid, libc::SIGTERM);
                }
                log_event(&sv.spec.name.clone(), &format!("stopping pid {pid}"));
            }
        }
    }

    fn child_exited(&mut self, pid: i32, status: libc::c_int) {
        if self.rc_pid == Some(pid) {
            self.rc_pid = None;
            match self.phase {
                Phase::Booting => {
                    self.phase = Phase::Running;
                    self.start_auto();
                }
                Phase::RcStop { reboot, .. } => self.finish(reboot),
                _ => {}
            }
            return;
        }
        let Some(i) = self.svcs.iter().position(|s| s.pid == Some(pid)) else {
            return; // an orphan: reaped, nothing else to do
        };
        let how = sys::describe_status(status);
        let shutting_down = matches!(self.phase, Phase::Stopping { .. } | Phase::RcStop { .. });
        let sv = &mut self.svcs[i];
        let name = sv.spec.name.clone();
        sv.pid = None;
        sv.last_exit = Some(how.clone());
        let ran = sv.started.map(|t| t.elapsed()).unwrap_or_default();
        if sv.stopping.take().is_some() || shutting_down || sv.removed {
            sv.failed = false;
            log_event(&name, &format!("stopped ({how})"));
            return;
        }
        let clean = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        let again = match sv.spec.restart {
            Restart::Always => true,
            Restart::OnFailure => !clean,
            Restart::No => false,
        };
        if !again {
            sv.failed = !clean;
            log_event(&name, &format!("exited ({how})"));
            return;
        }
        if ran >= STABLE_AFTER {
            sv.backoff_step = 0;
        }
        let delay = (BACKOFF_FIRST_MS << sv.backoff_step.min(10)).min(BACKOFF_MAX_MS);
        sv.backoff_step += 1;
        sv.restarts += 1;
        sv.failed = !clean;
        sv.next_start = Some(Instant::now() + Duration::from_millis(delay));
        log_event(&name, &format!("exited ({how}); restarting in {delay} ms"));
    }

    fn start_auto(&mut self) {
        let specs: Vec<ServiceSpec> = self.svcs.iter().map(|s| s.spec.clone()).collect();
        for i in proto::start_order(&specs) {
            let sv = &self.svcs[i];
            if sv.spec.startup == Startup::Auto && sv.pid.is_none() && !sv.removed {
                let name = sv.spec.name.clone();
                if name == CONSOLE_GETTY_NAME && sv.restarts == 0 && sv.next_start.is_none() {
                    // getty flushes the terminal's queues (tcflush TCIOFLUSH) as it opens
                    // it: on a pty that discards what the console's reader (the monitor)
                    // has not read yet, i.e. the end of the boot output on a loaded node.
                    // A second's grace lets the reader drain it first.
                    self.svcs[i].next_start = Some(Instant::now() + CONSOLE_GETTY_GRACE);
                    continue;
                }
                match self.spawn_service(i) {
                    Ok(pid) => say(&format!("started {name} (pid {pid})")),
                    Err(e) => say(&format!("cannot start {name}: {e}")),
                }
            }
        }
    }

    fn reload(&mut self) -> String {
        let specs = load_specs();
        let mut added = 0;
        for spec in &specs {
            match self.find(&spec.name) {
                Some(i) => self.svcs[i].spec = spec.clone(),
                None => {
                    self.svcs.push(Svc::new(spec.clone()));
                    added += 1;
                }
            }
        }
        let mut removed = 0;
        for i in 0..self.svcs.len() {
            if !self.svcs[i].removed && !specs.iter().any(|s| s.name == self.svcs[i].spec.name) {
                self.svcs[i].removed = true;
                self.stop_service(i);
                removed += 1;
            }
        }
        self.svcs.retain(|s| !(s.removed && s.pid.is_none()));
        format!("{added} added, {removed} removed")
    }

    fn shutdown(&mut self, reboot: bool) {
        if !matches!(self.phase, Phase::Booting | Phase::Running) {
            return;
        }
        say(if reboot { "rebooting" } else { "powering off" });
        self.phase = Phase::Stopping {
            reboot,
            since: Instant::now(),
        };
        for i in 0..self.svcs.len() {
            self.stop_service(i);
        }
        if let Some(pid) = self.rc_pid.take() {
            // SAFETY: signalling our boot script's group.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        self.after_services_stopped();
    }

    /// Once no service runs: the template's stop script, then the end.
    fn after_services_stopped(&mut self) {
        let Phase::Stopping { reboot, .. } = self.phase else {
            return;
        };
        if self.svcs.iter().any(|s| s.pid.is_some()) {
            return;
        }
        match self.rc_stop.clone() {
            Some(script) if std::path::Path::new(&script).exists() => {
                self.phase = Phase::RcStop {
                    reboot,
                    since: Instant::now(),
                };
                match run_script(&script) {
                    Ok(pid) => self.rc_pid = Some(pid),
                    Err(_) => self.finish(reboot),
                }
            }
            _ => self.finish(reboot),
        }
    }

    /// Ends every remaining process and the container.
    fn finish(&mut self, reboot: bool) -> ! {
        // SAFETY: signalling every other process of our PID namespace, reaping, rebooting.
        unsafe {
            libc::kill(-1, libc::SIGTERM);
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                let mut st = 0;
                let r = libc::waitpid(-1, &mut st, libc::WNOHANG);
                if r < 0 {
                    break; // ECHILD: nobody left
                }
                if r == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            libc::kill(-1, libc::SIGKILL);
            libc::sync();
            let cmd = if reboot {
                libc::RB_AUTOBOOT
            } else {
                libc::RB_POWER_OFF
            };
            libc::reboot(cmd);
            // reboot(2) refused (no CAP_SYS_BOOT): a plain exit stops the container.
            libc::_exit(0)
        }
    }

    fn timers(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut due = vec![];
        for (i, sv) in self.svcs.iter().enumerate() {
            if let Some(t) = sv.next_start {
                if t <= now {
                    due.push(i);
                } else {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
            if let (Some(pid), Some(since)) = (sv.pid, sv.stopping) {
                let t = since + STOP_GRACE;
                if t <= now {
                    // SAFETY: killing the service's group after its grace period.
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                        libc::kill(pid, libc::SIGKILL);
                    }
                } else {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        if matches!(self.phase, Phase::Running) {
            for i in due {
                let name = self.svcs[i].spec.name.clone();
                if let Err(e) = self.spawn_service(i) {
                    say(&format!("cannot restart {name}: {e}"));
                }
            }
        }
        if let Some(t) = self.brake.until {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        match self.phase {
            Phase::Stopping { since, .. } => {
                let t = since + STOP_GRACE + Duration::from_secs(2);
                if now >= t {
                    // Unkillable services (D state): go on regardless.
                    for sv in &mut self.svcs {
                        sv.pid = None;
                    }
                    self.after_services_stopped();
                } else {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
            Phase::RcStop { reboot, since } => {
                let t = since + STOP_GRACE;
                if now >= t {
                    self.finish(reboot);
                }
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            _ => {}
        }
        next
    }

    fn handle_request(&mut self, line: &str) -> String {
        let mut it = line.split_whitespace();
        let verb = it.next().unwrap_or("");
        let name = it.next().unwrap_or("");
        let need = |s: &Sup| -> Result<usize, String> {
            if name.is_empty() {
                return Err("error: a service name is needed".into());
            }
            s.find(name)
                .ok_or_else(|| format!("error: unknown service {name:?}"))
        };
        match verb {
            "ping" => "ok\n".into(),
            "list" => {
                let mut o = String::from("ok\n");
                for s in self.svcs.iter().filter(|s| !s.removed) {
                    o.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\n",
                        s.spec.name,
                        s.state(),
                        s.spec.startup.as_str(),
                        s.pid.map(|p| p.to_string()).unwrap_or("-".into()),
                        s.restarts
                    ));
                }
                o
            }
            "status" => match need(self) {
                Err(e) => e + "\n",
                Ok(i) => {
                    let s = &self.svcs[i];
                    format!(
                        "ok\nname={}\nstate={}\nstartup={}\npid={}\nrestarts={}\nlast_exit={}\nuser={}\nrestart={}\nafter={}\ncommand={}\n",
                        s.spec.name,
                        s.state(),
                        s.spec.startup.as_str(),
                        s.pid.map(|p| p.to_string()).unwrap_or("-".into()),
                        s.restarts,
                        s.last_exit.as_deref().unwrap_or("-"),
                        s.spec.user,
                        s.spec.restart.as_str(),
                        s.spec.after.join(","),
                        s.spec.command.join(" ")
                    )
                }
            },
            "start" => match need(self) {
                Err(e) => e + "\n",
                Ok(i) => {
                    if !matches!(self.phase, Phase::Running | Phase::Booting) {
                        return "error: the container is shutting down\n".into();
                    }
                    if self.svcs[i].spec.startup == Startup::Disabled {
                        return format!("error: service {name} is disabled\n");
                    }
                    if let Some(pid) = self.svcs[i].pid {
                        if self.svcs[i].stopping.is_none() {
                            return format!("ok\nalready running (pid {pid})\n");
                        }
                        return format!("error: service {name} is still stopping\n");
                    }
                    self.svcs[i].backoff_step = 0;
                    match self.spawn_service(i) {
                        Ok(pid) => format!("ok\nstarted (pid {pid})\n"),
                        Err(e) => format!("error: cannot start {name}: {e}\n"),
                    }
                }
            },
            "stop" => match need(self) {
                Err(e) => e + "\n",
                Ok(i) => {
                    let was = self.svcs[i].pid;
                    self.stop_service(i);
                    self.svcs[i].failed = false;
                    match was {
                        Some(pid) => format!("ok\nstopping (pid {pid})\n"),
                        None => "ok\nnot running\n".into(),
                    }
                }
            },
            "reload" => format!("ok\n{}\n", self.reload()),
            _ => format!("error: unknown request {verb:?}\n"),
        }
    }
}

fn run_script(path: &str) -> std::io::Result<i32> {
    let env: Vec<String> = base_env()
        .into_iter()
        .chain(["HOME=/".to_string(), "TERM=linux".to_string()])
        .collect();
    sys::spawn(&sys::SpawnSpec {
        argv: vec![cstr(path)],
        envp: env.iter().map(|a| cstr(a)).collect(),
        uid: 0,
        gid: 0,
        cwd: cstr("/"),
        out: None,
        setsid: true,
    })
}

fn signalfd() -> std::io::Result<(OwnedFd, libc::sigset_t)> {
    // SAFETY: building and installing a signal mask; signalfd returns a new descriptor.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGCHLD,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGPWR,
            libc::SIGQUIT,
            libc::SIGRTMIN() + 4,
        ] {
            libc::sigaddset(&mut set, s);
        }
        cvt(libc::sigprocmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        let fd = cvt(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?;
        Ok((OwnedFd::from_raw_fd(fd), set))
    }
}

fn listen() -> std::io::Result<OwnedFd> {
    let (addr, len) = sys::abstract_addr(proto::SOCKET_NAME);
    // SAFETY: socket setup with a filled-in address.
    unsafe {
        let fd = cvt(libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        ))?;
        let fd = OwnedFd::from_raw_fd(fd);
        cvt(libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        ))?;
        cvt(libc::listen(fd.as_raw_fd(), 16))?;
        Ok(fd)
    }
}

/// Serves one control connection: root only, one request line, one reply.
fn serve(sup: &mut Sup, listener: &OwnedFd) {
    // SAFETY: accepting on our listening socket; the new descriptor is ours.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    // SAFETY: fd was just returned by accept4.
    let conn = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: plain socket options and credentials on our descriptor.
    let uid = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let mut cred: libc::ucred = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        if libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        ) != 0
        {
            return;
        }
        cred.uid
    };
    let mut f = File::from(conn);
    if uid != 0 {
        let _ = f.write_all(b"error: only root may control services\n");
        return;
    }
    let mut buf = Vec::new();
    let mut b = [0u8; 512];
    while buf.len() < 4096 && !buf.contains(&b'\n') {
        match f.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let reply = sup.handle_request(line.lines().next().unwrap_or(""));
    let _ = f.write_all(reply.as_bytes());
}

fn drain_output(sup: &mut Sup, idx: usize) -> bool {
    let mut buf = [0u8; 16384];
    loop {
        // SAFETY: reading into a local buffer from our non-blocking pipe.
        let n = unsafe {
            libc::read(
                sup.outputs[idx].fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n > 0 {
            append_log(&sup.outputs[idx].name, &buf[..n as usize]);
            continue;
        }
        // 0: EOF (every writer gone); <0: EAGAIN (nothing more for now) or an error.
        return n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN);
    }
}

/// Runs as PID 1; returns only on a setup failure.
pub fn run(args: &[String]) -> i32 {
    let mut rc = None;
    let mut rc_stop = None;
    let mut getty = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rc" => rc = it.next().cloned(),
            "--rc-stop" => rc_stop = it.next().cloned(),
            "--getty" => getty = it.next().cloned(),
            _ => {}
        }
    }
    let _ = CONSOLE_GETTY.set(console_getty(getty.as_deref()));
    let (sfd, _set) = match signalfd() {
        Ok(x) => x,
        Err(e) => {
            say(&format!("signalfd: {e}"));
            return 1;
        }
    };
    let listener = match listen() {
        Ok(l) => Some(l),
        Err(e) => {
            say(&format!(
                "control socket: {e} (services cannot be controlled)"
            ));
            None
        }
    };
    let _ = std::fs::create_dir_all(LOG_DIR);
    let mut sup = Sup {
        svcs: load_specs().into_iter().map(Svc::new).collect(),
        outputs: vec![],
        phase: Phase::Booting,
        rc_pid: None,
        rc_stop,
        brake: Brake::new(),
    };
    say(&format!(
        "Berth supervisor started, {} service(s)",
        sup.svcs.len()
    ));
    match rc.filter(|p| std::path::Path::new(p).exists()) {
        Some(script) => match run_script(&script) {
            Ok(pid) => sup.rc_pid = Some(pid),
            Err(e) => {
                say(&format!("{script}: {e}"));
                sup.phase = Phase::Running;
                sup.start_auto();
            }
        },
        None => {
            sup.phase = Phase::Running;
            sup.start_auto();
        }
    }
    loop {
        let next = sup.timers();
        let timeout = next
            .map(|t| {
                t.saturating_duration_since(Instant::now())
                    .as_millis()
                    .clamp(1, 60_000) as i32
            })
            .unwrap_or(-1);
        let mut pfds = vec![libc::pollfd {
            fd: sfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(l) = &listener {
            pfds.push(libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let first_out = pfds.len();
        for o in &sup.outputs {
            pfds.push(libc::pollfd {
                fd: o.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: polling our own descriptors.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            continue; // EINTR
        }
        // Output first, so that a service's last words land before its exit is logged.
        let mut closed = vec![];
        for (k, p) in pfds[first_out..].iter().enumerate() {
            if p.revents != 0 && drain_output(&mut sup, k) {
                closed.push(k);
            }
        }
        for k in closed.into_iter().rev() {
            sup.outputs.remove(k);
        }
        if pfds[0].revents != 0 {
            handle_signals(&mut sup, &sfd);
        } else if sup.brake.until.is_some_and(|t| Instant::now() >= t) {
            reap(&mut sup);
        }
        if let Some(l) = listener.as_ref().filter(|_| pfds[1].revents != 0) {
            serve(&mut sup, l);
        }
    }
}

fn handle_signals(sup: &mut Sup, sfd: &OwnedFd) {
    loop {
        // SAFETY: signalfd_siginfo is plain data; reading from our non-blocking signalfd.
        let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let n = unsafe {
            libc::read(
                sfd.as_raw_fd(),
                (&mut si as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            )
        };
        if n <= 0 {
            break;
        }
        let sig = si.ssi_signo as i32;
        match sig {
            libc::SIGCHLD => {} // reaped once below, however many arrived
            libc::SIGTERM | libc::SIGINT => sup.shutdown(true),
            libc::SIGHUP => {
                let r = sup.reload();
                say(&format!("reloaded services: {r}"));
            }
            _ => sup.shutdown(false), // SIGUSR1 (halt), SIGUSR2, SIGPWR, SIGQUIT, SIGRTMIN+4
        }
    }
    reap(sup);
}

fn reap(sup: &mut Sup) {
    let now = Instant::now();
    let shutting_down = matches!(sup.phase, Phase::Stopping { .. } | Phase::RcStop { .. });
    let braking = match sup.brake.until {
        Some(t) if now < t && !shutting_down => true,
        Some(_) => {
            // The brake ran out: reap everything.
            sup.brake.release(now);
            false
        }
        None => {
            let engage = !shutting_down && sup.brake.refusing();
            if engage {
                sup.brake.engage(now);
            }
            engage
        }
    };
    if braking {
        // Our own children only: the boot script and the services.
        let own: Vec<i32> = sup
            .rc_pid
            .into_iter()
            .chain(sup.svcs.iter().filter_map(|s| s.pid))
            .collect();
        for p in own {
            let mut st = 0;
            // SAFETY: waitpid on one child, non-blocking.
            if unsafe { libc::waitpid(p, &mut st, libc::WNOHANG) } == p {
                sup.child_exited(p, st);
            }
        }
    } else {
        loop {
            let mut st = 0;
            // SAFETY: waitpid on any child, non-blocking.
            let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            sup.child_exited(pid, st);
        }
    }
    sup.svcs.retain(|s| !(s.removed && s.pid.is_none()));
    if matches!(sup.phase, Phase::Stopping { .. }) {
        sup.after_services_stopped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brake_doubles_while_refusals_continue_and_resets_later() {
        let mut b = Brake {
            refused: None,
            until: None,
            len: BRAKE,
            ended: None,
        };
        let t0 = Instant::now();
        b.engage(t0);
        assert_eq!(b.until, Some(t0 + BRAKE));
        let mut t = t0;
        for want in [1000, 2000, 4000, 4000] {
            t += b.len;
            b.release(t);
            b.engage(t);
            assert_eq!(b.len, Duration::from_millis(want));
        }
        t += b.len;
        b.release(t);
        b.engage(t + BRAKE_RESET);
        assert_eq!(b.len, BRAKE);
    }

    #[test]
    fn refused_forks_from_pids_events() {
        assert_eq!(parse_refused("max 42\n"), Some(42));
        assert_eq!(parse_refused("max 0"), Some(0));
        assert_eq!(parse_refused("other 1\nmax 7\n"), Some(7));
        assert_eq!(parse_refused(""), None);
        assert_eq!(parse_refused("max x"), None);
    }
}
