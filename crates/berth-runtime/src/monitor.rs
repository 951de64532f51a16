//! The per-container monitor: a small synchronous process (the `berth` binary re-executed in
//! a hidden mode) that prepares storage, creates the container through libcontainer, stays
//! its parent, reaps it, publishes `run/<ctid>/state.json`, restarts it on `reboot` from
//! inside, and tears everything down on `poweroff`/`halt` or `berth stop`.
//!
//! A reboot(2) in a child PID namespace kills its init with SIGHUP (restart) or SIGINT
//! (power off/halt): that is how the monitor tells the two apart.

use crate::state::{now, process_starttime, RunState};
use crate::{cgdeleg, console, spec, supervisor, Result, RuntimeError};
use berth_core::crash::crash_point;
use berth_core::{fsutil, ContainerConfig, CtId, NodeRoot, TemplateManifest};
use berth_storage::rootfs::{self, InjectedFile};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Files in `run/<ctid>/`.
pub struct RunPaths {
    pub dir: PathBuf,
}

impl RunPaths {
    pub fn new(root: &NodeRoot, id: CtId) -> Self {
        RunPaths {
            dir: root.ct_run_dir(id),
        }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// Present while `berth stop` is stopping the container: a SIGHUP exit then does not restart.
    pub fn stopping(&self) -> PathBuf {
        self.dir.join("stopping")
    }
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    pub fn root_path(&self) -> PathBuf {
        self.dir.join("root")
    }
}

/// What the monitor needs to know.
pub struct MonitorArgs {
    pub root: NodeRoot,
    pub node_id: String,
    pub cfg: ContainerConfig,
    pub template: TemplateManifest,
    /// Files written into the container besides `/etc/hostname` (e.g. `/etc/resolv.conf`).
    pub extra_files: Vec<InjectedFile>,
    /// Called around each boot (networking).
    pub hooks: Option<Box<dyn BootHooks>>,
}

/// Work done for each boot of the container outside the runtime:
/// - `prepare` runs before the runtime creates the container, with this boot's configuration
///   (read anew for each boot, so that a reboot from inside sees what `berth set` changed);
///   work that needs no namespace may start there in a helper process, never a thread
///   (ADR 0008);
/// - `before_start` runs once the container's namespaces exist and before its init is
///   started (its network namespace can be given adapters);
/// - `after_stop` runs when init has exited (idempotent);
/// - `finish` runs when the monitor is about to exit, to wait for anything `after_stop`
///   left running; it says whether everything was released (if not, the monitor leaves
///   `run/<ctid>/` for the next command's recovery).
pub trait BootHooks: Send + Sync {
    fn prepare(&self, _cfg: &ContainerConfig) -> std::result::Result<(), String> {
        Ok(())
    }
    fn before_start(&self, init_pid: i32) -> std::result::Result<(), String>;
    fn after_stop(&self);
    fn finish(&self) -> bool {
        true
    }
}

/// Restores default signal dispositions in the container's init just before it execs (the
/// monitor, a Rust program, ignores SIGPIPE, and ignored signals survive exec), then runs
/// libcontainer's default workload executor.
#[derive(Clone)]
struct InitExecutor {
    /// The init's end of a socketpair to the monitor: the sysinfo filter's listener goes
    /// there (crate::sysinfo). Close-on-exec.
    sysinfo: Option<std::os::fd::RawFd>,
}

/// Resets every catchable signal to its default disposition (only async-signal-safe calls).
pub fn reset_signal_dispositions() {
    for n in 1..=libc::SIGRTMAX() {
        if n == libc::SIGKILL || n == libc::SIGSTOP {
            continue;
        }
        // The raw syscall: glibc refuses its two internal real-time signals, which a parent
        // may still have left ignored.
        #[repr(C)]
        struct KernelSigaction {
            handler: usize,
            flags: u64,
            restorer: usize,
            mask: u64,
        }
        let act = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: restoring SIG_DFL is always sound; the struct matches the kernel's layout.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                n,
                &act as *const KernelSigaction,
                0usize,
                8usize,
            )
        };
    }
    // SAFETY: an empty signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

impl Executor for InitExecutor {
    fn exec(&self, spec: &Spec) -> std::result::Result<(), ExecutorError> {
        if let Some(sock) = self.sysinfo {
            // Last before the payload, after the container's own filter: the init and all it
            // starts ask the monitor for sysinfo. Failing, the kernel's sysinfo stays.
            if let Ok(listener) = crate::sysinfo::load_filter() {
                let _ = crate::fdpass::send_fd(sock, listener);
                // SAFETY: the listener is ours; the monitor has its copy.
                unsafe { libc::close(listener) };
            }
        }
        // libcontainer made the console init's controlling terminal. Released: a ^C typed
        // on the console must not signal init (berth-init and busybox init take SIGINT as
        // ctrl-alt-del), and a getty on the console takes it as its own. The kernel sends
        // the session's SIGHUP to init itself: ignored for that moment.
        // SAFETY: signal and ioctl with plain arguments on our own stdin.
        unsafe {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::ioctl(0, libc::TIOCNOTTY);
        }
        reset_signal_dispositions();
        libcontainer::workload::default::get_executor().exec(spec)
    }
    fn validate(&self, spec: &Spec) -> std::result::Result<(), ExecutorValidationError> {
        libcontainer::workload::default::get_executor().validate(spec)
    }
}

/// Files Berth writes into the container's upper layer before each boot.
fn injected_files(cfg: &ContainerConfig, extra: &[InjectedFile]) -> Vec<InjectedFile> {
    let host = cfg.effective_hostname();
    let mut v = vec![InjectedFile {
        path: "etc/hostname",
        content: format!("{host}\n").into_bytes(),
        mode: 0o644,
    }];
    v.extend(extra.iter().map(|f| InjectedFile {
        path: f.path,
        content: f.content.clone(),
        mode: f.mode,
    }));
    v
}

fn builder(root: &NodeRoot, id: &str) -> Result<ContainerBuilder> {
    Ok(
        ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(root.runtime_state_dir())?,
    )
}

/// Loads libcontainer's view of a container, if it has one.
pub fn load_container(root: &NodeRoot, runtime_id: &str) -> Option<Container> {
    let dir = root.runtime_state_dir().join(runtime_id);
    if !dir.exists() {
        return None;
    }
    Container::load(dir).ok()
}

/// Removes the root-cgroup write caps of a container's disk (cgroup v1; see
/// [`crate::resources::set_writeback_limit`]).
pub fn clear_writeback_limits(root: &NodeRoot, id: CtId) {
    for dev in berth_storage::loopdev::find_by_backing(&root.ct_disk(id)) {
        if let Some(d) = berth_storage::loopdev::dev_numbers(&dev) {
            let _ = crate::resources::set_writeback_limit(d, None, None);
            let _ = berth_storage::loopdev::limit_dirty(d.0, d.1, None);
        }
    }
}

/// Removes libcontainer's state and cgroup of a container that is no longer running.
pub fn delete_runtime(root: &NodeRoot, runtime_id: &str) {
    if let Some(mut c) = load_container(root, runtime_id) {
        if let Err(e) = c.delete(true) {
            tracing::warn!(%runtime_id, "runtime delete: {e}");
        }
    }
    let _ = fs::remove_dir_all(root.runtime_state_dir().join(runtime_id));
    remove_cgroups(runtime_id);
}

/// Removes the container's cgroup directories in every hierarchy (v1 controllers, the
/// `name=systemd` one with whatever the container created below it, v2 unified), retrying
/// while the last processes finish exiting (an exiting task keeps `rmdir` at EBUSY).
pub fn remove_cgroups(runtime_id: &str) {
    let mut dirs = vec![];
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let d = e.path().join(runtime_id);
            if d.is_dir() {
                dirs.push(d);
            }
        }
    }
    let v2 = PathBuf::from("/sys/fs/cgroup").join(runtime_id);
    if v2.is_dir() {
        dirs.push(v2);
    }
    for d in dirs {
        cgdeleg::remove_tree(&d);
    }
}

/// Runs the monitor. `ready` receives `ok <pid>` once the container runs, or `error: …`.
/// Returns when the container has stopped for good and everything is cleaned up.
pub fn run(args: MonitorArgs, mut ready: Option<fs::File>) -> Result<()> {
    // Become the reaper of everything libcontainer forks, so init is our child to wait for.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let id = args.cfg.ctid;
    let runtime_id = crate::runtime_id(&args.node_id, id);
    let paths = RunPaths::new(&args.root, id);
    let mut boots = 0u32;
    let result = (|| -> Result<()> {
        args.root.create_ct_run_dir(id, args.cfg.host_root_id())?;
        // root/ is the overlay's mount point, looked up with the container's credentials.
        fsutil::create_dir_mode(&paths.root_path(), 0o755)?;
        fsutil::create_dir_mode(&paths.bundle(), 0o700)?;
        // The console (crate::console::attach): its log and `berth console`, across boots.
        let console = console::attach::Server::spawn(args.root.ct_console_log(id), &paths.dir)?;
        let res = boot_loop(&args, &runtime_id, &paths, &console, &mut boots, &mut ready);
        if res.is_err() {
            // A boot that failed half-way may have left the container's processes alive:
            // kill them before the console's end.
            delete_runtime(&args.root, &runtime_id);
        }
        console.finish(CONSOLE_DRAIN);
        res
    })();
    if let Err(e) = &result {
        if let Some(mut r) = ready.take() {
            let _ = writeln!(r, "error: {e}");
        }
    }
    // Three independent clean-ups, each waiting mostly on the kernel (cgroup removal, the
    // virtual disk's final journal commit and flush, nft's and netlink's RCU grace periods):
    // run them side by side.
    let clean = std::thread::scope(|s| {
        s.spawn(|| {
            delete_runtime(&args.root, &runtime_id);
            crash_point("stop:monitor-after-runtime");
            tracing::debug!("runtime deleted");
        });
        let net = s.spawn(|| {
            let ok = args.hooks.as_ref().is_none_or(|h| {
                // boot_loop releases the network after each boot; only a boot that failed
                // half-way leaves it to here.
                if result.is_err() {
                    h.after_stop();
                }
                h.finish()
            });
            tracing::debug!("network released");
            ok
        });
        clear_writeback_limits(&args.root, id);
        let r = rootfs::teardown(&args.root, id);
        if let Err(e) = &r {
            tracing::warn!("rootfs teardown: {e}");
        }
        tracing::debug!("rootfs released");
        net.join().unwrap_or(false) && r.is_ok()
    });
    // Without run/<ctid>/, `berth stop` knows the clean-up is complete and does not repeat
    // it; after a failed teardown it stays, and the next command finishes the work.
    crash_point("stop:monitor-after-rootfs");
    if boots > 0 {
        let _ = crate::hooks::run(&args.root, &args.cfg, "umount", &[]);
    }
    if clean {
        remove_run_dir(&paths);
    } else {
        let _ = fs::remove_file(paths.dir.join("monitor.pid"));
    }
    result
}

/// How long the monitor waits, once the container is dead, for the console server to read
/// what the console still holds and hand it to an attached client. Nothing the container
/// left may keep the monitor, its locks and the container's resources longer (issue 14,
/// finding 3).
const CONSOLE_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// How long libcontainer's init may take to hand over the console's master (it does while
/// `build` runs; this only bounds a broken runtime).
const CONSOLE_HANDOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// Removes `run/<ctid>/` with `monitor.pid` last: until that file goes, `berth` sees this
/// monitor as active and waits, so a new `start` can never have its fresh files deleted by
/// an old monitor still cleaning up.
fn remove_run_dir(paths: &RunPaths) {
    let pidfile = paths.dir.join("monitor.pid");
    if let Ok(rd) = fs::read_dir(&paths.dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p == pidfile {
                continue;
            }
            let _ = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
    let _ = fs::remove_file(&pidfile);
    // Fails (harmlessly) if a new start already uses the directory.
    let _ = fs::remove_dir(&paths.dir);
}

fn boot_loop(
    args: &MonitorArgs,
    runtime_id: &str,
    paths: &RunPaths,
    console: &console::attach::Server,
    boots: &mut u32,
    ready: &mut Option<fs::File>,
) -> Result<()> {
    crate::hooks::run(&args.root, &args.cfg, "premount", &[]).map_err(RuntimeError::StartFailed)?;
    let prepared = rootfs::prepare(
        &args.root,
        &args.cfg,
        &injected_files(&args.cfg, &args.extra_files),
    )?;
    tracing::debug!("rootfs prepared");
    crate::hooks::run(&args.root, &args.cfg, "mount", &[]).map_err(RuntimeError::StartFailed)?;
    let supervised = supervisor::uses_supervisor(&args.cfg, &args.template);
    let init = if supervised {
        supervisor::prepare(&args.root, &args.cfg, &args.template)?
    } else {
        args.template.init.clone()
    };
    tracing::debug!("init prepared");
    let host = crate::resources::HostInfo::detect();
    // The loop device's counters outlive this container's use of it: keep where they started.
    if let Some(c) = prepared
        .disk_dev
        .and_then(|(ma, mi)| berth_storage::loopdev::io_counters_of(ma, mi))
    {
        fsutil::write_runtime_file(&paths.dir.join("io_base"), c.to_line().as_bytes(), 0o600)?;
    }
    // Bound what the container can have in flight towards the node filesystem (the disk
    // guard's reserve covers it once the container is frozen).
    if let Some((ma, mi)) = prepared.disk_dev {
        let limit = berth_storage::loopdev::DIRTY_LIMIT;
        if let Err(e) = berth_storage::loopdev::limit_dirty(ma, mi, Some(limit)) {
            tracing::warn!("virtual disk's dirty-data limit not set: {e}");
        }
    }
    // sysinfo(2) answered with the container's values (crate::sysinfo), for every boot.
    let init_start = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sock = paths.dir.join("seccomp.sock");
    let listener = match crate::sysinfo::bind(&sock) {
        Ok(Some(l)) => crate::sysinfo::serve(
            l,
            crate::sysinfo::Source {
                runtime_id: runtime_id.to_string(),
                init_start: init_start.clone(),
                loads: Default::default(),
            },
        )
        .map(|()| sock.display().to_string())
        .map_err(|e| tracing::warn!("sysinfo server not started: {e}"))
        .ok(),
        Ok(None) => {
            tracing::warn!("run directory path too long for a socket: sysinfo shows the host's");
            None
        }
        Err(e) => {
            tracing::warn!("sysinfo listener not bound: {e}");
            None
        }
    };
    // The host's LXCFS (docs/inside.md): started or restarted for each boot that needs it.
    let lxcfs = crate::lxcfs::Lxcfs::from_env();
    let mut lxcfs_warned = false;
    loop {
        let lxcfs_mount = lxcfs.as_ref().and_then(|l| match l.ensure() {
            Ok(e) => {
                if e.restarted {
                    tracing::warn!(pid = e.pid, "lxcfs was not running: restarted");
                }
                // Containers whose binds were of a dead instance (restarted here or by a
                // service manager) got the new one's.
                let (ok, failed) = e.reattached;
                if ok + failed > 0 {
                    tracing::warn!(
                        pid = e.pid,
                        "lxcfs views re-attached in {ok} running containers ({failed} failed)"
                    );
                }
                Some((l.mount.clone(), e.pid))
            }
            Err(e) => {
                if !lxcfs_warned {
                    tracing::warn!(
                        "no lxcfs views (/proc/meminfo, /proc/cpuinfo… show the host's): {e}"
                    );
                    lxcfs_warned = true;
                }
                None
            }
        });
        // Limits may have been changed with `berth set` since the last boot: read them anew.
        // Validated like every read (a hand-edited file that fails keeps the last good one).
        let cfg = match ContainerConfig::load(&args.root, args.cfg.ctid) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("config not reloaded, booting with the previous one: {e}");
                args.cfg.clone()
            }
        };
        let input = spec::SpecInput {
            cfg: &cfg,
            runtime_id,
            root_path: &paths.root_path().display().to_string(),
            rootfs: &prepared,
            init: &init,
            host,
            seccomp_listener: listener.as_deref(),
        };
        let mut spec = spec::build_spec(&input)?;
        if supervised {
            supervisor::add_mount(&mut spec, &args.root, args.cfg.ctid)?;
        }
        if let Some(dev) = prepared.disk_dev {
            crate::resources::apply_writeback_limit(&cfg, dev)?;
        }
        spec.save(paths.bundle().join("config.json"))
            .map_err(|e| RuntimeError::Spec(e.to_string()))?;
        crash_point("start:monitor-after-spec");
        tracing::debug!("spec written");
        if let Some(h) = &args.hooks {
            h.prepare(&cfg).map_err(RuntimeError::StartFailed)?;
        }
        delete_runtime(&args.root, runtime_id);
        // libcontainer's init opens the console from the container's devpts and sends its
        // master here (crate::console::attach).
        let handoff = console::attach::PtyHandoff::bind(&paths.dir)?;
        // Init must start inside the container's own name=systemd cgroup, so that its
        // cgroup namespace is rooted there: the monitor stands in it while libcontainer forks.
        let named = named_cgroup(&cfg, runtime_id)?;
        let own = named
            .as_ref()
            .and_then(|d| cgdeleg::own_systemd_cgroup(d.parent()?));
        if let Some(d) = &named {
            cgdeleg::attach(d, 0)?;
        }
        crash_point("start:monitor-after-cgroup");
        // Bounds the runtime's create and the network's join: whatever makes them wait
        // (nothing known; the container's files are opened O_PATH) must not hold the
        // node's network lock forever.
        let watchdog = Watchdog::arm(START_LIMIT, {
            let rid = runtime_id.to_string();
            move || kill_cgroup(&rid)
        });
        // Init's executor hands its sysinfo listener back on this pair (crate::sysinfo).
        let sysinfo_pair = listener.as_ref().and_then(|_| {
            nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .ok()
        });
        // The overlay's layers are named relative to run/<ctid>/ (spec.rs): its options,
        // shown in the container's mountinfo, hold no host path (ADR 0011). The runtime's
        // processes inherit this working directory while they mount it.
        let cwd = std::env::current_dir().ok();
        if paths.dir.is_absolute() {
            std::env::set_current_dir(&paths.dir).map_err(|e| RuntimeError::io(&paths.dir, e))?;
        }
        let built = builder(&args.root, runtime_id)?
            .with_console_socket(Some(handoff.path()))
            .with_executor(InitExecutor {
                sysinfo: sysinfo_pair.as_ref().map(|(_, i)| i.as_raw_fd()),
            })
            .as_init(paths.bundle())
            .with_systemd(false)
            .build();
        let _ = std::env::set_current_dir(cwd.unwrap_or_else(|| PathBuf::from("/")));
        if let Some(o) = &own {
            cgdeleg::attach(o, 0)?;
        }
        let mut container = built?;
        let pid = container
            .pid()
            .ok_or_else(|| RuntimeError::StartFailed("no init pid".into()))?;
        console.set_master(handoff.take(CONSOLE_HANDOFF)?);
        tracing::debug!("container created");
        init_start.store(
            process_starttime(pid.as_raw()).unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        crash_point("start:monitor-after-create");
        if let Some(h) = &args.hooks {
            h.before_start(pid.as_raw())
                .map_err(RuntimeError::StartFailed)?;
        }
        tracing::debug!("hooks done");
        let plan = crate::views::Plan {
            lxcfs: lxcfs_mount.as_ref().map(|(m, _)| m.as_path()),
            devices: true,
            forwarded: &cfg.devices,
            owner: cfg.host_root_id().unwrap_or(0),
        };
        match crate::views::apply(pid.as_raw(), &plan) {
            Ok(n) if n > 0 => {
                if let (Some(l), Some((_, lx_pid))) = (&lxcfs, &lxcfs_mount) {
                    l.register(pid.as_raw(), *lx_pid);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("container views not set up: {e}"),
        }
        tracing::debug!("views done");
        if !watchdog.disarm() {
            return Err(RuntimeError::StartFailed(format!(
                "the container was not created within {} s",
                START_LIMIT.as_secs()
            )));
        }
        container.start()?;
        if let (Some((mine, theirs)), Some(path)) = (sysinfo_pair, &listener) {
            drop(theirs);
            match crate::fdpass::recv_fd(mine.as_raw_fd(), std::time::Duration::from_secs(5)) {
                Ok(Some(l)) => {
                    if let Err(e) = crate::sysinfo::hand_over(Path::new(path), l.as_raw_fd()) {
                        tracing::warn!("sysinfo listener of init not served: {e}");
                    }
                }
                Ok(None) => {
                    tracing::warn!("init loaded no sysinfo filter: sysinfo shows the host's")
                }
                Err(e) => tracing::warn!("sysinfo listener of init not received: {e}"),
            }
        }
        // A failing start script aborts the start (the error path kills the container).
        if *boots == 0 {
            crate::hooks::run(
                &args.root,
                &cfg,
                "start",
                &[("BERTH_INIT_PID", pid.as_raw().to_string())],
            )
            .map_err(RuntimeError::StartFailed)?;
        }
        *boots += 1;
        let state = RunState {
            monitor_pid: std::process::id() as i32,
            init_pid: pid.as_raw(),
            init_starttime: process_starttime(pid.as_raw()).unwrap_or(0),
            started: now(),
            boots: *boots,
        };
        state.save(&paths.state())?;
        crash_point("start:monitor-after-state");
        if let Some(mut r) = ready.take() {
            let _ = writeln!(r, "ok {}", pid.as_raw());
        }
        tracing::info!(pid = pid.as_raw(), boot = *boots, "container running");
        let status = wait_for(pid);
        tracing::info!(?status, "container init exited");
        if let Some(l) = &lxcfs {
            l.unregister(pid.as_raw());
        }
        crash_point("stop:monitor-after-init-exit");
        reap_orphans();
        tracing::debug!("orphans reaped");
        if let Some(h) = &args.hooks {
            h.after_stop();
        }
        tracing::debug!("hooks after stop done");
        crash_point("stop:monitor-after-net");
        let _ = fs::remove_file(paths.state());
        let reboot = matches!(status, WaitStatus::Signaled(_, Signal::SIGHUP, _));
        if !reboot || paths.stopping().exists() {
            record_last_stop(args, &status, paths.stopping().exists());
            let _ = crate::hooks::run(&args.root, &cfg, "stop", &[]);
            return Ok(());
        }
        tracing::info!("reboot requested from inside the container: restarting");
    }
}

/// Why the container's last run ended, in `containers/<ctid>/last-stop` (JSON, root-only):
/// `requested` (`berth stop`, `destroy`, berthd), `poweroff` (poweroff/halt from inside) or
/// `exited` (its init ended by itself or was killed: a crash), for whoever watches the node
/// (berthd's events).
fn record_last_stop(args: &MonitorArgs, status: &WaitStatus, requested: bool) {
    let reason = if requested {
        "requested"
    } else if matches!(status, WaitStatus::Signaled(_, Signal::SIGINT, _)) {
        "poweroff"
    } else {
        "exited"
    };
    let v = serde_json::json!({
        "reason": reason,
        "status": format!("{status:?}"),
        "time": crate::state::now(),
    });
    let path = args.root.ct_dir(args.cfg.ctid).join("last-stop");
    if let Err(e) = fsutil::write_runtime_file(&path, v.to_string().as_bytes(), 0o600) {
        tracing::warn!("recording why the container stopped: {e}");
    }
}

/// How long a boot may take from the runtime's create to the end of the network hooks.
const START_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `on_expire` on a thread of its own if it is not disarmed within `limit`.
struct Watchdog {
    tx: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn arm(limit: std::time::Duration, on_expire: impl FnOnce() + Send + 'static) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || match rx.recv_timeout(limit) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!("start took longer than {limit:?}: killing the container");
                on_expire();
                true
            }
            _ => false,
        });
        Watchdog { tx, thread }
    }

    /// Stops the watchdog; false if it had already fired.
    fn disarm(self) -> bool {
        let _ = self.tx.send(());
        !self.thread.join().unwrap_or(true)
    }
}

/// SIGKILLs every process in the container's cgroup (pids hierarchy, else the unified one):
/// the runtime's create then fails and the boot unwinds.
fn kill_cgroup(runtime_id: &str) {
    for dir in [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ] {
        let procs = PathBuf::from(dir).join(runtime_id).join("cgroup.procs");
        if let Ok(t) = fs::read_to_string(&procs) {
            for pid in t.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            return;
        }
    }
}

/// Creates the container's cgroup in the `name=systemd` hierarchy, owned by its root.
fn named_cgroup(cfg: &ContainerConfig, runtime_id: &str) -> Result<Option<PathBuf>> {
    let root_id = match (cfg.privileged, cfg.idmap) {
        (false, Some(m)) => m.host_base,
        _ => 0,
    };
    cgdeleg::create_systemd(runtime_id, root_id, root_id)
}

/// Reaps what the dead PID namespace leaves us: when init dies the kernel kills every other
/// process of the container and, as subreaper, we inherit them. Unreaped, they would pin the
/// container's cgroups. Bounded, in case something unkillable lingers.
fn reap_orphans() {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < until {
        match waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Err(nix::errno::Errno::ECHILD) => return,
            Ok(WaitStatus::StillAlive) => std::thread::sleep(std::time::Duration::from_millis(1)),
            _ => {}
        }
    }
}

/// Reaps children until `pid` exits; returns its status.
fn wait_for(pid: Pid) -> WaitStatus {
    loop {
        match waitpid(None, None) {
            Ok(st @ (WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _))) if p == pid => {
                return st
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECHILD) => return WaitStatus::Exited(pid, 0),
            Err(_) => return WaitStatus::Exited(pid, 255),
        }
    }
}

/// Loads what the monitor needs from the node root.
pub fn load_args(root: &NodeRoot, id: CtId) -> Result<MonitorArgs> {
    let node = root.load_node_config()?;
    let cfg = ContainerConfig::load(root, id)?;
    let template = berth_storage::template::load(root, &cfg.ostemplate)?;
    Ok(MonitorArgs {
        root: root.clone(),
        node_id: node.node_id,
        cfg,
        template,
        extra_files: vec![],
        hooks: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn watchdog_fires_only_when_not_disarmed() {
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let w = Watchdog::arm(Duration::from_secs(5), move || {
            f.store(true, Ordering::SeqCst)
        });
        assert!(w.disarm());
        assert!(!fired.load(Ordering::SeqCst));
        let f = fired.clone();
        let w = Watchdog::arm(Duration::from_millis(10), move || {
            f.store(true, Ordering::SeqCst)
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(!w.disarm());
        assert!(fired.load(Ordering::SeqCst));
    }
}
