//! [`LocalNode`]: the node operations on this machine.

use crate::recover::{self, is_active, monitor_alive, release_runtime};
use crate::{crash_point, NodeError, Result};
use berth_core::config::{DiskConfig, NodeConfig, TemplateManifest};
use berth_core::idmap::next_free_ctid;
use berth_core::journal::{Journal, Operation};
use berth_core::lock::{self, LockGuard};
use berth_core::ops::{
    ContainerInfo, ContainerStats, CreateOptions, CtStatus, NodeInfo, SetOutcome, StopOptions,
    TemplateSource,
};
use berth_core::resources::SetOptions;
use berth_core::validate::{validate_hostname, validate_name};
use berth_core::{fsutil, ContainerConfig, CoreError, CtId, CtRef, NodeRoot};
use berth_runtime::exec::{ExecRequest, JoinTarget, TtyMode};
use berth_runtime::monitor::{load_container, RunPaths};
use berth_runtime::state::{now, process_starttime, RunState};
use berth_storage::progress::Progress;
use berth_storage::template;
use libcontainer::container::ContainerStatus;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often `stop` sends the stop signal again while the container's init lives.
const STOP_RESEND: Duration = Duration::from_secs(1);

/// The local node, opened on a node root.
pub struct LocalNode {
    root: NodeRoot,
    node: NodeConfig,
    /// Path of the `berth` binary, re-executed as the container monitor.
    monitor_exe: PathBuf,
    /// How this node reaches another node's berthd (migrations); set by the CLI and berthd.
    pub(crate) connector: Option<Box<Connector>>,
}

/// Opens another node's API from what a caller names it by (`berth remote`'s URL, pin and
/// token): the CLI and berthd give the HTTPS client; tests may give a local node.
pub type Connector = dyn Fn(&berth_core::ops::MigrateTarget) -> berth_api::Result<Box<dyn berth_api::Node>>
    + Send
    + Sync;

fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(NodeError::NotRoot);
    }
    Ok(())
}

fn random_id() -> String {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Initialises a node root (idempotent). Returns the node config and whether it was new.
/// A new node also gets the default network (host-only, NAT) on `default_subnet`, unless
/// it is `None`; a subnet that clashes with the node's routes is refused before anything
/// is written.
pub fn init_node(
    root: &NodeRoot,
    default_subnet: Option<berth_core::net::Ipv4Cidr>,
) -> Result<(NodeConfig, bool)> {
    let (cfg, new, _) = init_node_reclaiming(root, default_subnet, false)?;
    Ok((cfg, new))
}

/// [`init_node`] that also deals with the remains of node roots that no longer exist
/// (`rm -rf` of one): with `reclaim`, those of recorded node roots are removed first;
/// without, a default subnet they hold is refused with the command that removes them.
/// Returns, besides, notes on remains left in place.
pub fn init_node_reclaiming(
    root: &NodeRoot,
    default_subnet: Option<berth_core::net::Ipv4Cidr>,
    reclaim: bool,
) -> Result<(NodeConfig, bool, Vec<String>)> {
    require_root()?;
    root.create_layout()?;
    let _g = lock::lock(&root.node_lock())?;
    if root.node_toml().exists() {
        return Ok((root.load_node_config()?, false, vec![]));
    }
    let cfg = NodeConfig::new(random_id(), now());
    let mut remains = crate::reclaim::find(None)?;
    // Recorded node roots that are gone and left nothing: no longer worth a line.
    let reg = berth_core::idregistry::Registry::host();
    let done: Vec<String> = reg
        .node_roots()
        .into_iter()
        .filter(|(id, r)| {
            !berth_core::idregistry::node_root_is_live(r, id)
                && !remains.iter().any(|x| &x.node_id == id)
        })
        .map(|(id, _)| id)
        .collect();
    if let Err(e) = reg.forget_node_roots(&done) {
        tracing::warn!("host's list of node roots not pruned: {e}");
    }
    if reclaim {
        for r in remains.iter().filter(|r| r.root.is_some()) {
            crate::reclaim::remove(&r.node_id, r.root.as_deref())?;
        }
        remains.retain(|r| r.root.is_none());
    }
    if let Some(s) = default_subnet {
        let nn = berth_net::NetNode::new(root, &cfg.node_id);
        if let Some(clash) = nn.route_clash(s)? {
            let dev = clash.rsplit(' ').next().unwrap_or_default();
            if let Some(r) = remains.iter().find(|r| r.links.iter().any(|l| l == dev)) {
                let how = match &r.root {
                    Some(_) => format!(
                        "remove them with `berth node init --reclaim` (or `berth node reclaim {}`)",
                        r.node_id
                    ),
                    None => format!(
                        "if no node root of node {0} exists any more, remove them with `berth node reclaim {0}`",
                        r.node_id
                    ),
                };
                return Err(NodeError::Remains(format!(
                    "the default network's subnet {s} is held by the remains of {}: {how}",
                    r.describe()
                )));
            }
        }
        crate::net::check_default_network(root, &cfg.node_id, s)?;
    }
    let notes = remains
        .iter()
        .filter(|r| r.root.is_some())
        .map(|r| {
            format!(
                "{} are left on this host: `berth node reclaim {}` removes them",
                r.describe(),
                r.node_id
            )
        })
        .collect();
    fsutil::write_toml(&root.node_toml(), &cfg)?;
    record_node_root(root, &cfg.node_id);
    if let Some(s) = default_subnet {
        if let Err(e) = crate::net::create_default_network(root, &cfg.node_id, s) {
            let _ = fsutil::remove_file_if_exists(&root.node_toml());
            let _ = berth_core::idregistry::Registry::host().set_node_root(&cfg.node_id, None);
            return Err(e);
        }
    }
    write_default_agent_config(root)?;
    Ok((cfg, true, notes))
}

/// The default configuration of berthd (`api/berthd.toml`, root-only): HTTPS on loopback
/// and the unix socket; the node certificate beside it.
fn write_default_agent_config(root: &NodeRoot) -> Result<()> {
    let dir = root.path().join("api");
    fsutil::create_dir_all(&dir)?;
    fsutil::ensure_mode(&dir, 0o700)?;
    // The API's node certificate, so that `node info` shows the fingerprint to pin before
    // berthd first runs (kept when present: clients have pinned it).
    berth_auth::cert::ensure(&dir, &[])?;
    let path = dir.join("berthd.toml");
    if path.exists() {
        return Ok(());
    }
    let text =
        "# berthd's configuration (written by `berth node init`; docs/api.md lists every key).\n\
# HTTPS address: on loopback until you choose the node's own address. The node certificate\n\
# (api/cert.pem) and its SHA-256 fingerprint (api/cert.sha256, shown by `berth node info`)\n\
# were made by `berth node init`.\n\
listen = \"127.0.0.1:8470\"\n\
# The root-only socket run/berthd.sock (the local CLI's `berth events`, `berth operation`).\n\
unix_socket = true\n";
    Ok(fsutil::write_runtime_file(&path, text.as_bytes(), 0o600)?)
}

/// Records the node root in the host-wide file of node roots (best effort: an unrecorded
/// root's remains are only removed by `berth node reclaim NODE_ID`, never found alone).
fn record_node_root(root: &NodeRoot, node_id: &str) {
    let reg = berth_core::idregistry::Registry::host();
    let Ok(canon) = std::fs::canonicalize(root.path()) else {
        return;
    };
    if reg
        .node_roots()
        .iter()
        .any(|(id, r)| id == node_id && *r == canon)
    {
        return;
    }
    if let Err(e) = reg.set_node_root(node_id, Some(&canon)) {
        tracing::warn!("node root not recorded in the host's list: {e}");
    }
}

impl LocalNode {
    /// Opens an initialised node root and recovers what interrupted commands left.
    pub fn open(root: NodeRoot, monitor_exe: PathBuf) -> Result<Self> {
        require_root()?;
        let node = root.load_node_config()?;
        recover::secure_node(&root)?;
        let migrating = recover::recover_node(&root, &node.node_id)?;
        // Node roots made before the host-wide list are recorded at their next command.
        record_node_root(&root, &node.node_id);
        let n = LocalNode {
            root,
            node,
            monitor_exe,
            connector: None,
        };
        n.recover_migrations(&migrating);
        Ok(n)
    }

    /// With a way to reach other nodes (migrations).
    pub fn with_connector(mut self, c: Box<Connector>) -> Self {
        self.connector = Some(c);
        self
    }

    /// The `berth` binary, run as monitor and as the helper of `exec`/`enter` for callers
    /// that pass descriptors.
    pub fn monitor_exe(&self) -> &std::path::Path {
        &self.monitor_exe
    }

    pub fn root(&self) -> &NodeRoot {
        &self.root
    }

    pub fn node_config(&self) -> &NodeConfig {
        &self.node
    }

    /// Changes `node.toml` under the node lock (read afresh there, written atomically).
    pub(crate) fn edit_node_config(&self, f: impl FnOnce(&mut NodeConfig)) -> Result<()> {
        let _g = lock::lock(&self.root.node_lock())?;
        let mut node = self.root.load_node_config()?;
        f(&mut node);
        fsutil::write_toml(&self.root.node_toml(), &node)?;
        Ok(())
    }

    pub(crate) fn runtime_id(&self, id: CtId) -> String {
        berth_runtime::runtime_id(&self.node.node_id, id)
    }

    /// The config of container `id`, parsed, validated and checked to be its own
    /// ([`ContainerConfig::load`], the one loader of config files).
    pub(crate) fn load_config(&self, id: CtId) -> Result<ContainerConfig> {
        Ok(ContainerConfig::load(&self.root, id)?)
    }

    /// Every container with a committed config: its config, or why the file is refused
    /// (a `broken` container).
    pub fn entries(&self) -> Result<Vec<(CtId, std::result::Result<ContainerConfig, CoreError>)>> {
        let mut out = vec![];
        for id in self.root.list_ct_dirs()? {
            if !self.root.ct_config(id).exists() {
                continue;
            }
            match ContainerConfig::load(&self.root, id) {
                // Destroyed meanwhile.
                Err(CoreError::ContainerNotFound(_)) => {}
                r => out.push((id, r)),
            }
        }
        Ok(out)
    }

    /// The configs of the containers that are not broken.
    pub fn configs(&self) -> Result<Vec<ContainerConfig>> {
        let mut out = vec![];
        for (id, r) in self.entries()? {
            match r {
                Ok(c) => out.push(c),
                Err(e) => tracing::debug!(%id, "broken container left out: {e}"),
            }
        }
        Ok(out)
    }

    /// Resolves a CTID or name to a CTID of an existing container. A name two containers
    /// carry (hand-edited files) is refused: the CTID says which.
    pub fn resolve(&self, r: &CtRef) -> Result<CtId> {
        match r {
            CtRef::Id(id) => {
                if self.root.ct_config(*id).exists() {
                    Ok(*id)
                } else {
                    Err(CoreError::ContainerNotFound(id.to_string()).into())
                }
            }
            CtRef::Name(n) => {
                let ids: Vec<CtId> = self
                    .configs()?
                    .into_iter()
                    .filter(|c| c.name.as_deref() == Some(n))
                    .map(|c| c.ctid)
                    .collect();
                match ids.as_slice() {
                    [] => Err(CoreError::ContainerNotFound(n.clone()).into()),
                    [id] => Ok(*id),
                    _ => Err(NodeError::AmbiguousName(
                        n.clone(),
                        ids.iter().map(|i| i.0).collect(),
                    )),
                }
            }
        }
    }

    pub(crate) fn lock_ct(&self, id: CtId) -> Result<LockGuard> {
        let g = lock::lock(&self.root.ct_lock(id))?;
        recover::recover_ct(&self.root, &self.node.node_id, id)?;
        if !self.root.ct_dir(id).exists() {
            // Destroyed while we waited: its lock file goes (again) with it.
            recover::remove_ct_locks(&self.root, id, g);
            return Err(CoreError::ContainerNotFound(id.to_string()).into());
        }
        Ok(g)
    }

    /// The node lock and container `r`'s lock, in that order (the order of every command
    /// that takes both), without holding the node lock while the container's is busy: a
    /// long command on the container (a clone copying its disk) must not hold up every
    /// command that needs the node lock. Recovery of the container has run.
    pub(crate) fn lock_node_and_ct(&self, r: &CtRef) -> Result<(LockGuard, CtId, LockGuard)> {
        loop {
            let node = lock::lock(&self.root.node_lock())?;
            let id = self.resolve(r)?;
            if let Some(g) = lock::try_lock(&self.root.ct_lock(id))? {
                recover::recover_ct(&self.root, &self.node.node_id, id)?;
                if !self.root.ct_dir(id).exists() {
                    recover::remove_ct_locks(&self.root, id, g);
                    return Err(CoreError::ContainerNotFound(id.to_string()).into());
                }
                return Ok((node, id, g));
            }
            drop(node);
            // Wait for the container's lock alone, then try both again.
            drop(lock::lock(&self.root.ct_lock(id))?);
        }
    }

    pub(crate) fn run_state(&self, id: CtId) -> Option<RunState> {
        RunState::load(&RunPaths::new(&self.root, id).state()).filter(|s| s.init_alive())
    }

    pub(crate) fn current_status(&self, id: CtId) -> CtStatus {
        if self.run_state(id).is_none() {
            return CtStatus::Stopped;
        }
        match load_container(&self.root, &self.runtime_id(id)).map(|c| c.status()) {
            Some(ContainerStatus::Paused) => CtStatus::Suspended,
            _ => CtStatus::Running,
        }
    }

    fn info(&self, cfg: &ContainerConfig) -> ContainerInfo {
        let status = self.current_status(cfg.ctid);
        let st = self.run_state(cfg.ctid);
        ContainerInfo {
            ctid: cfg.ctid,
            name: cfg.name.clone(),
            status,
            ostemplate: cfg.ostemplate.clone(),
            hostname: cfg.effective_hostname(),
            privileged: cfg.privileged,
            uptime: st.as_ref().map(|s| now().saturating_sub(s.started)),
            init_pid: st.as_ref().map(|s| s.init_pid),
            uid_base: cfg.idmap.filter(|_| !cfg.privileged).map(|m| m.host_base),
            diskspace: cfg.disk.size,
            fstype: cfg.disk.fstype,
            disktype: cfg.disk.disktype,
            description: cfg.description.clone(),
            onboot: cfg.onboot,
            resources: cfg.resources.clone(),
            ip: cfg
                .net
                .netifs
                .iter()
                .flat_map(|n| n.addrs.iter().map(|a| a.addr.to_string()))
                .chain(cfg.net.ipaddrs.iter().map(|a| a.to_string()))
                .collect(),
            networks: cfg.net.netifs.iter().map(|n| n.network.clone()).collect(),
            bootorder: cfg.bootorder,
            pending: if status == CtStatus::Stopped {
                vec![]
            } else {
                crate::pending::pending_settings(&self.root, cfg.ctid)
            },
            reason: None,
        }
    }

    /// What `list` and `status` say of a container whose config is refused: its CTID (its
    /// directory's), `broken`, why, and whether something of it still runs.
    fn broken_info(&self, id: CtId, e: &CoreError) -> ContainerInfo {
        let st = self.run_state(id);
        let mut reason = e.to_string();
        if let Some(s) = &st {
            reason.push_str(&format!(
                " (its init, host PID {}, still runs: a forced destroy stops it)",
                s.init_pid
            ));
        }
        ContainerInfo {
            ctid: id,
            name: None,
            status: CtStatus::Broken,
            ostemplate: "-".into(),
            hostname: "-".into(),
            privileged: false,
            uptime: st.as_ref().map(|s| now().saturating_sub(s.started)),
            init_pid: st.as_ref().map(|s| s.init_pid),
            uid_base: None,
            diskspace: berth_core::Size(0),
            fstype: Default::default(),
            disktype: Default::default(),
            description: None,
            onboot: false,
            resources: Default::default(),
            ip: vec![],
            networks: vec![],
            bootorder: None,
            pending: vec![],
            reason: Some(reason),
        }
    }

    /// Refuses to start a container whose config, valid on its own, clashes with another
    /// container's (hand-edited or copied files): the same name, an address, a MAC or host
    /// IDs. Also checks the limits that depend on the node's hardware.
    pub(crate) fn check_conflicts(&self, cfg: &ContainerConfig) -> Result<()> {
        let id = cfg.ctid;
        let conflict =
            |other: CtId, what: String, field: &'static str, value: String| NodeError::Conflict {
                ctid: id.0,
                other: other.0,
                what,
                field,
                value,
                adapter: None,
            };
        for o in self.configs()?.iter().filter(|o| o.ctid != id) {
            if let (Some(a), Some(b)) = (&cfg.name, &o.name) {
                if a == b {
                    return Err(conflict(o.ctid, format!("name {a:?}"), "name", a.clone()));
                }
            }
            let theirs = o.net.all_addrs();
            if let Some(a) = cfg.net.all_addrs().into_iter().find(|a| theirs.contains(a)) {
                return Err(conflict(
                    o.ctid,
                    format!("address {a}"),
                    "ip",
                    a.to_string(),
                ));
            }
            for n in &cfg.net.netifs {
                if o.net.netifs.iter().any(|x| x.mac == n.mac) {
                    return Err(NodeError::Conflict {
                        ctid: id.0,
                        other: o.ctid.0,
                        what: format!("MAC {} (adapter {})", n.mac, n.name),
                        field: "mac",
                        value: n.mac.to_string(),
                        adapter: Some(Box::new((n.name.to_string(), n.network.to_string()))),
                    });
                }
            }
            if let (Some(a), Some(b)) = (crate::idreg::range_of(cfg), crate::idreg::range_of(o)) {
                if a.overlaps(&b) {
                    return Err(conflict(
                        o.ctid,
                        format!(
                            "host ID range {}-{}",
                            a.host_base,
                            a.host_base as u64 + a.size as u64 - 1
                        ),
                        "idmap",
                        format!("{}", a.host_base),
                    ));
                }
            }
        }
        cfg.resources
            .validate(&berth_runtime::resources::node_capacity())?;
        Ok(())
    }

    pub(crate) fn require_running(&self, id: CtId) -> Result<RunState> {
        match self.current_status(id) {
            // current_status never says broken (a config is loaded before).
            CtStatus::Stopped | CtStatus::Broken => Err(NodeError::NotRunning(id.0)),
            CtStatus::Suspended => Err(NodeError::Suspended(id.0)),
            CtStatus::Running => self.run_state(id).ok_or(NodeError::NotRunning(id.0)),
        }
    }

    pub(crate) fn start_locked(&self, id: CtId) -> Result<ContainerInfo> {
        let cfg = self.load_config(id)?;
        if self.run_state(id).is_none() {
            // A monitor may still be cleaning up after a poweroff from inside: let it finish.
            let until = Instant::now() + Duration::from_secs(10);
            while is_active(&self.root, id) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            recover::recover_ct(&self.root, &self.node.node_id, id)?;
        }
        if is_active(&self.root, id) {
            return Err(NodeError::AlreadyRunning(id.0));
        }
        // Nothing of it is another container's (names, addresses, MACs, IDs), and its host
        // IDs are registered to it, overlapping no other container's on the host.
        self.check_conflicts(&cfg)?;
        self.check_idmap(&cfg)?;
        template::load(&self.root, &cfg.ostemplate)?;
        self.root.secure_ct_dir(id)?;
        self.reconcile_disk(&cfg)?;
        let run = self.root.create_ct_run_dir(id, cfg.host_root_id())?;
        crash_point("start:after-run-dir");
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| CoreError::io("pipe", e.into()))?;
        let log_path = self.root.ct_dir(id).join("monitor.log");
        let log = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&log_path)
                .map_err(|e| CoreError::io(&log_path, e))?
        };
        // The monitor holds this lock for its whole life; a monitor of an earlier run may still
        // be finishing its clean-up.
        let mon_lock = {
            let path = self.root.monitor_lock(id);
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(g) = lock::try_lock(&path)? {
                    break g;
                }
                if Instant::now() >= until {
                    return Err(NodeError::StartFailed(
                        id.0,
                        "the monitor of its previous run is still cleaning up".into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        let lock_raw = mon_lock.file().as_raw_fd();
        let wr_raw = wr.as_raw_fd();
        let mut cmd = Command::new(&self.monitor_exe);
        cmd.arg("__monitor")
            .arg(id.to_string())
            .env("BERTH_ROOT", self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::dup2(wr_raw, 3) < 0 || libc::dup2(lock_raw, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| NodeError::StartFailed(id.0, format!("spawning monitor: {e}")))?;
        drop(wr);
        drop(mon_lock);
        crash_point("start:after-monitor-spawn");
        let pid = child.id() as i32;
        let st = process_starttime(pid).unwrap_or(0);
        fsutil::write_runtime_file(
            &run.join("monitor.pid"),
            format!("{pid} {st}\n").as_bytes(),
            0o600,
        )?;
        let mut child = child;
        let line = read_ready(rd, &mut child);
        let line = line.trim();
        if line.starts_with("ok") {
            crash_point("start:after-ready");
            return Ok(self.info(&cfg));
        }
        // The monitor failed; wait for it so that its clean-up is done before we report.
        let _ = child.wait();
        let _ = release_runtime(&self.root, &self.node.node_id, id);
        let msg = match line.strip_prefix("error: ") {
            // NodeError::StartFailed says "did not start" already.
            Some(m) => m
                .strip_prefix("container did not start: ")
                .unwrap_or(m)
                .to_string(),
            None => {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                log.lines()
                    .last()
                    .unwrap_or("monitor exited without a word")
                    .to_string()
            }
        };
        Err(NodeError::StartFailed(id.0, msg))
    }

    pub(crate) fn stop_locked(
        &self,
        id: CtId,
        cfg: &ContainerConfig,
        opts: StopOptions,
    ) -> Result<()> {
        if !is_active(&self.root, id) {
            return Err(NodeError::NotRunning(id.0));
        }
        let paths = RunPaths::new(&self.root, id);
        fsutil::write_runtime_file(&paths.stopping(), b"", 0o600)?;
        crash_point("stop:after-marker");
        let rid = self.runtime_id(id);
        let state = RunState::load(&paths.state());
        // A suspended container cannot act on signals: thaw it first.
        if let Some(mut c) = load_container(&self.root, &rid) {
            if c.status() == ContainerStatus::Paused {
                crate::diskguard::kill_before_thaw(&self.root, id, &rid);
                let _ = c.resume();
            }
        }
        let monitor = std::fs::read_to_string(paths.dir.join("monitor.pid"))
            .ok()
            .and_then(|t| {
                let mut it = t.split_whitespace();
                Some((
                    it.next()?.parse::<i32>().ok()?,
                    it.next()?.parse::<u64>().ok()?,
                ))
            });
        let monitor_gone = || monitor.is_none_or(|(p, st)| process_starttime(p) != Some(st));
        // The monitor removes run/<ctid>/ once its clean-up is complete (and then only
        // reaps its helper processes); if it died, wait for the process to be gone.
        let gone = || !paths.dir.exists() || (!is_active(&self.root, id) && monitor_gone());
        let wait = |secs: u64| {
            let until = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < until {
                if gone() {
                    return true;
                }
                // The monitor cleans up within a few ms of init's death: poll finely.
                std::thread::sleep(Duration::from_millis(2));
            }
            gone()
        };
        let mut stopped = false;
        if !opts.kill && state.as_ref().is_some_and(|s| s.init_alive()) {
            let tmpl = template::load(&self.root, &cfg.ostemplate).ok();
            let sig = tmpl
                .map(|t| t.stop_signal)
                .and_then(|s| berth_runtime::exec::parse_signal(&s).ok())
                .unwrap_or(libc::SIGTERM);
            stopped =
                self.signal_until_gone(&paths, sig, monitor.map(|m| m.0), opts.timeout, &gone);
        }
        if !stopped {
            match state.as_ref().filter(|s| s.init_alive()) {
                // Killing the PID namespace's init makes the kernel kill every process in it.
                // SAFETY: as above.
                Some(s) => unsafe {
                    libc::kill(s.init_pid, libc::SIGKILL);
                },
                // No init to kill: let the runtime kill whatever is left in the cgroup.
                None => {
                    if let Some(mut c) = load_container(&self.root, &rid) {
                        let _ = c.kill(
                            libcontainer::signal::Signal::try_from(libc::SIGKILL).expect("SIGKILL"),
                            true,
                        );
                    }
                }
            }
            stopped = wait(10);
        }
        crash_point("stop:after-gone");
        if !stopped {
            // The monitor is gone or stuck; init is dead or unkillable.
            if RunState::load(&paths.state()).is_some_and(|s| s.init_alive()) {
                return Err(NodeError::StopFailed(id.0, opts.timeout));
            }
        }
        // The monitor cleans up after itself and removes run/<ctid>/ when it is done; if it
        // died or its clean-up failed, do its work.
        if !monitor_alive(&self.root, id) && paths.dir.exists() {
            release_runtime(&self.root, &self.node.node_id, id)?;
        }
        Ok(())
    }

    /// Sends the stop signal `sig` to the container's init until the container is `gone`, for
    /// up to `timeout` seconds; says whether it is gone. The init of a PID namespace drops a
    /// signal it has no handler for yet, so a stop right after a start could be lost (issue
    /// 15): the signal is sent again as soon as init has its handlers (it blocks or catches
    /// `sig`), and every [`STOP_RESEND`] while init lives. The init is read from
    /// `state.json` at each round, so a reboot from inside does not leave us signalling a
    /// dead PID. Every init Berth knows takes a repeated stop signal as one: Berth's
    /// supervisor and busybox init ignore it once shutting down, systemd merges the repeated
    /// `poweroff.target` job.
    fn signal_until_gone(
        &self,
        paths: &RunPaths,
        sig: i32,
        monitor_pid: Option<i32>,
        timeout: u64,
        gone: &dyn Fn() -> bool,
    ) -> bool {
        let until = Instant::now() + Duration::from_secs(timeout);
        // (init PID, start time) last signalled, when, and whether it was receptive then.
        let mut last: Option<((i32, u64), Instant, bool)> = None;
        loop {
            if gone() {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return gone();
            }
            if let Some(s) = RunState::load(&paths.state()).filter(|s| s.init_alive()) {
                let key = (s.init_pid, s.init_starttime);
                let send = match last {
                    Some((k, at, receptive)) if k == key => {
                        now.duration_since(at) >= STOP_RESEND
                            || (!receptive
                                && berth_runtime::state::signal_receptive(
                                    s.init_pid,
                                    sig,
                                    monitor_pid,
                                ))
                    }
                    _ => true,
                };
                if send {
                    let receptive =
                        berth_runtime::state::signal_receptive(s.init_pid, sig, monitor_pid);
                    // SAFETY: sending a signal to a PID we verified by its start time.
                    unsafe { libc::kill(s.init_pid, sig) };
                    crash_point("stop:after-signal");
                    tracing::debug!(pid = s.init_pid, sig, receptive, "stop signal sent");
                    last = Some((key, now, receptive));
                }
            }
            // The monitor cleans up within a few ms of init's death: poll finely.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Runs a command inside a running container; returns its exit code. `env` adds
    /// `KEY=VALUE` pairs to the container's default environment (nothing of the caller's
    /// own environment crosses over but `TERM` with a terminal); `tty` chooses whether the
    /// command gets a pseudo-terminal.
    pub fn exec(
        &self,
        r: &CtRef,
        args: &[String],
        opts: &berth_core::ops::ExecOptions,
    ) -> Result<i32> {
        let id = self.resolve(r)?;
        let st = {
            let _g = self.lock_ct(id)?;
            self.require_running(id)?
        };
        if args.is_empty() {
            return Err(NodeError::Invalid(
                "exec needs a command: berth exec CT -- CMD [ARGS…]".into(),
            ));
        }
        let tty = match opts.tty {
            Some(true) => TtyMode::Always,
            Some(false) => TtyMode::Never,
            None => TtyMode::Auto,
        };
        let mut env = berth_runtime::spec::default_env();
        if tty.wants_pty() {
            caller_term(&mut env);
        }
        for kv in &opts.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        let req = ExecRequest {
            args: args.to_vec(),
            env,
            cwd: opts.cwd.clone(),
        };
        self.join(id, &st, |t| berth_runtime::exec::exec(t, &req, tty))
    }

    /// Runs `f` with what a process needs to join the running container `id`.
    pub(crate) fn join(
        &self,
        id: CtId,
        st: &RunState,
        f: impl FnOnce(&JoinTarget) -> berth_runtime::Result<i32>,
    ) -> Result<i32> {
        let cfg = self.load_config(id)?;
        let rid = self.runtime_id(id);
        let spec_path = RunPaths::new(&self.root, id).bundle().join("config.json");
        Ok(f(&JoinTarget {
            init_pid: st.init_pid,
            runtime_id: &rid,
            spec_path: &spec_path,
            userns: !cfg.privileged,
        })?)
    }

    /// Opens an interactive login shell inside a running container.
    pub fn enter(&self, r: &CtRef) -> Result<i32> {
        let id = self.resolve(r)?;
        let st = {
            let _g = self.lock_ct(id)?;
            self.require_running(id)?
        };
        // Resolved inside the container's root: a symlink it planted (/bin -> /somewhere)
        // must not make the host look up a host path.
        let shell = if crate::inroot::exists_in_root(st.init_pid, "/bin/bash") {
            "/bin/bash"
        } else {
            "/bin/sh"
        };
        let args = vec![shell.to_string(), "-l".to_string()];
        let mut env = berth_runtime::spec::default_env();
        caller_term(&mut env);
        self.join(id, &st, |t| berth_runtime::exec::enter(t, &args, &env))
    }

    /// Prints the console log; with `follow`, keeps printing while the container runs.
    pub fn console(
        &self,
        r: &CtRef,
        log: berth_api::ConsoleLog,
        out: &mut dyn std::io::Write,
    ) -> Result<()> {
        let id = self.resolve(r)?;
        let path = self.root.ct_console_log(id);
        let running = || is_active(&self.root, id);
        berth_runtime::console::print_log(&path, out, log.follow, log.timestamps, &running)
            .map_err(|e| CoreError::io(&path, e))?;
        Ok(())
    }

    /// Attaches this process's terminal to the container's live console (see
    /// `berth_runtime::console::attach`) until the detach keys or the container's stop.
    pub fn console_attach(
        &self,
        r: &CtRef,
        io: berth_runtime::console::attach::AttachIo,
    ) -> Result<berth_api::ConsoleEnd> {
        use berth_runtime::console::attach::{self, AttachEnd, AttachError};
        let id = self.resolve(r)?;
        {
            let _g = self.lock_ct(id)?;
            self.require_running(id)?;
        }
        let sock = attach::console_socket(&self.root.ct_run_dir(id));
        match attach::attach(&sock, io) {
            Ok(AttachEnd::Detached) => Ok(berth_api::ConsoleEnd::Detached),
            Ok(AttachEnd::Stopped) => Ok(berth_api::ConsoleEnd::Stopped),
            Err(AttachError::NotRunning) => Err(NodeError::NotRunning(id.0)),
            Err(AttachError::Busy) => Err(NodeError::ConsoleBusy(id.0)),
            Err(AttachError::Io(e)) => Err(CoreError::io(&sock, e).into()),
        }
    }

    /// The monitor entry point (`berth __monitor CTID`): runs until the container stops.
    pub fn run_monitor(root: &NodeRoot, id: CtId) -> Result<()> {
        let ready = {
            // SAFETY: fd 3 was set up by the starting command (dup2 before exec).
            let fd = unsafe { libc::fcntl(3, libc::F_GETFD) };
            (fd >= 0).then(|| {
                // SAFETY: fd 3 is ours and open.
                unsafe {
                    libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
                    <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(3)
                }
            })
        };
        // fd 4 holds the monitor lock (see start): keep it open for life, out of children.
        // SAFETY: setting FD_CLOEXEC on a descriptor number; harmless if it is not open.
        unsafe { libc::fcntl(4, libc::F_SETFD, libc::FD_CLOEXEC) };
        tracing::debug!(ctid = id.0, "monitor started");
        // monitor.pid at once (the starting CLI writes the same): from here on the monitor
        // is alive by its PID, not by the lock that the runtime's processes inherit, even if
        // the CLI was killed before writing it (see recover::monitor_alive).
        let me = std::process::id() as i32;
        let st = process_starttime(me).unwrap_or(0);
        fsutil::write_runtime_file(
            &root.ct_run_dir(id).join("monitor.pid"),
            format!("{me} {st}\n").as_bytes(),
            0o600,
        )?;
        let mut args = berth_runtime::monitor::load_args(root, id)?;
        crate::diskguard::spawn(root.clone());
        crate::net::monitor_net(&mut args)?;
        let r = berth_runtime::monitor::run(args, ready);
        // The clean-up is done (or left to the next command): let a new start in at once,
        // then reap the nft processes that are still exiting after their commits.
        // SAFETY: closing fd 4, the lock descriptor, which nothing else uses.
        unsafe { libc::close(4) };
        berth_net::nft::wait_lingering();
        r?;
        Ok(())
    }

    pub(crate) fn restart_locked(
        &self,
        id: CtId,
        cfg: &ContainerConfig,
        opts: StopOptions,
    ) -> Result<ContainerInfo> {
        match self.stop_locked(id, cfg, opts) {
            Ok(()) | Err(NodeError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        self.start_locked(id)
    }

    /// `berth node destroy`: destroys every container (refused while one runs, unless
    /// `force`), deletes the networks, removes whatever else of the node is on the host
    /// (links, nft tables, cgroups, loop devices, mounts), frees its ID ranges, forgets it
    /// in the host's list of node roots, and removes the node root directory.
    pub fn destroy_node(&self, force: bool) -> Result<()> {
        let root = std::fs::canonicalize(self.root.path())
            .map_err(|e| CoreError::io(self.root.path(), e))?;
        let node_id = self.node.node_id.clone();
        let _node = lock::lock(&self.root.node_lock())?;
        let ids = self.root.list_ct_dirs()?;
        let running: Vec<String> = ids
            .iter()
            .filter(|id| is_active(&self.root, **id))
            .map(|id| id.to_string())
            .collect();
        if !running.is_empty() && !force {
            return Err(NodeError::NodeBusy(
                root.display().to_string(),
                running.join(", "),
            ));
        }
        for id in ids {
            if self.root.ct_config(id).exists() {
                self.destroy(&CtRef::Id(id), true)?;
            } else {
                let _g = self.lock_ct(id)?;
            }
        }
        let nn = self.net();
        if let Ok(rd) = std::fs::read_dir(self.root.networks_dir()) {
            for e in rd.flatten() {
                let p = e.path();
                let Some(name) = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".toml"))
                    .filter(|n| !n.starts_with('.'))
                else {
                    continue;
                };
                nn.delete_network(name)?;
            }
        }
        crate::reclaim::remove_unchecked(&node_id, Some(&root))?;
        let left = berth_storage::mounts::mounts_under(&root);
        if let Some(m) = left.first() {
            return Err(NodeError::Invalid(format!(
                "{} is still mounted: node root {} is kept; unmount it and run `berth node destroy` again",
                m.display(),
                root.display()
            )));
        }
        berth_core::idregistry::Registry::host().set_node_root(&node_id, None)?;
        fsutil::remove_dir_all_if_exists(&root)?;
        Ok(())
    }

    pub(crate) fn check_name_free(&self, name: &str, except: Option<CtId>) -> Result<()> {
        validate_name(name)?;
        if let Some(c) = self
            .configs()?
            .iter()
            .find(|c| c.name.as_deref() == Some(name) && Some(c.ctid) != except)
        {
            return Err(CoreError::NameInUse(name.into(), c.ctid.0).into());
        }
        Ok(())
    }
}

/// The operations of the `Node` trait (crate::api), with this crate's error.
impl LocalNode {
    pub fn template_create(
        &self,
        name: &str,
        source: TemplateSource,
        p: &dyn Progress,
    ) -> Result<TemplateManifest> {
        validate_name(name)?;
        let _g = lock::lock(&self.root.node_lock())?;
        Ok(match source {
            TemplateSource::Busybox => template::create_busybox(&self.root, name, p)?,
            TemplateSource::Tarball(path) => template::import_tarball(&self.root, name, &path, p)?,
            TemplateSource::Debootstrap { suite, mirror } => {
                template::debootstrap(&self.root, name, &suite, mirror.as_deref(), p)?
            }
        })
    }

    /// [`berth_api::Node::receive_template`]: the stream into a root-only staging
    /// directory (refused past the node's free space above its reserve), imported as a
    /// tarball, kept only with the content hash `hash`.
    pub fn receive_template(
        &self,
        name: &str,
        hash: &str,
        input: &mut dyn std::io::Read,
    ) -> Result<TemplateManifest> {
        use std::io::Read;
        validate_name(name)?;
        if !berth_storage::template_hash::is_hash(hash) {
            return Err(NodeError::Invalid(format!(
                "{hash:?} is not a content hash"
            )));
        }
        // The node lock only around the import: a slow stream must not hold up the node.
        if let Ok(m) = template::load(&self.root, name) {
            let have = template::ensure_hash(&self.root, name)?;
            if have != hash {
                return Err(NodeError::Precondition(format!(
                    "template {name} here is another ({have}, not {hash})"
                )));
            }
            return Ok(TemplateManifest {
                hash: Some(have),
                ..m
            });
        }
        let staging = self
            .root
            .templates_dir()
            .join(format!(".staging-recv-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        fsutil::create_dir_mode(&staging, 0o700)?;
        struct Rm(std::path::PathBuf);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let _rm = Rm(staging.clone());
        let tar = staging.join("template.tar");
        let space = crate::diskspace::fs_space(self.root.path())?;
        let reserve = crate::diskspace::reserve_of(self.node_config(), space.total);
        // The archive, then its extraction: twice its size.
        let room = space.free.saturating_sub(reserve) / 2;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tar)
            .map_err(|e| CoreError::io(&tar, e))?;
        // One byte past the room tells that it would not fit.
        let got = std::io::copy(&mut input.take(room + 1), &mut f).map_err(|e| {
            NodeError::Invalid(format!("template {name}: the stream broke off: {e}"))
        })?;
        if got > room {
            return Err(NodeError::NoSpace(format!(
                "template {name}: more than the {room} bytes this node has room for"
            )));
        }
        drop(f);
        let _g = lock::lock(&self.root.node_lock())?;
        let m = template::import_tarball(&self.root, name, &tar, &berth_api::NoProgress)?;
        if m.hash.as_deref() != Some(hash) {
            let _ = template::remove(&self.root, name);
            return Err(NodeError::Invalid(format!(
                "template {name} came with content hash {}, not {hash}: not kept",
                m.hash.as_deref().unwrap_or("-")
            )));
        }
        tracing::info!(template = name, %hash, bytes = got, "template received");
        Ok(m)
    }

    pub fn template_list(&self) -> Result<Vec<TemplateManifest>> {
        Ok(template::list(&self.root)?)
    }

    pub fn template_info(&self, name: &str) -> Result<TemplateManifest> {
        Ok(template::load(&self.root, name)?)
    }

    pub fn template_remove(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let _g = lock::lock(&self.root.node_lock())?;
        let users: Vec<String> = self
            .configs()?
            .iter()
            .filter(|c| c.layers().iter().any(|l| l == name))
            .map(|c| c.ctid.to_string())
            .collect();
        if !users.is_empty() {
            return Err(NodeError::TemplateInUse(name.into(), users.join(", ")));
        }
        Ok(template::remove(&self.root, name)?)
    }

    pub fn create(&self, opts: CreateOptions) -> Result<CtId> {
        self.create_with(opts, &berth_storage::progress::NoProgress)
    }

    /// [`Self::create`], reporting its phases (and the disk's preallocation for a fixed one)
    /// to `p`.
    pub fn create_with(&self, opts: CreateOptions, p: &dyn Progress) -> Result<CtId> {
        // Validate everything before touching the disk.
        validate_name(&opts.ostemplate)
            .map_err(|_| CoreError::TemplateNotFound(opts.ostemplate.clone()))?;
        if let Some(h) = &opts.hostname {
            validate_hostname(h)?;
        }
        if let Some(n) = &opts.name {
            validate_name(n)?;
        }
        if let Some(d) = &opts.description {
            crate::resources::validate_description(d)?;
        }
        let disk = DiskConfig {
            size: opts
                .diskspace
                .map(|d| d.hard)
                .unwrap_or(self.node.default_diskspace),
            fstype: opts.fstype.unwrap_or(self.node.default_fstype),
            disktype: opts.disktype.unwrap_or_default(),
            soft: opts.diskspace.and_then(|d| d.soft),
            inodes: opts.diskinodes.map(|d| d.hard),
            inodes_soft: opts.diskinodes.and_then(|d| d.soft),
        };
        crate::resources::validate_disk(&disk)?;
        opts.resources
            .validate(&berth_runtime::resources::node_capacity())?;
        let _node = lock::lock(&self.root.node_lock())?;
        template::load(&self.root, &opts.ostemplate)?;
        let configs = self.configs()?;
        if let Some(n) = &opts.name {
            self.check_name_free(n, None)?;
        }
        let fixed = disk.disktype == berth_core::DiskType::Fixed;
        self.check_disk_promise(None, &disk, if fixed { disk.size.0 } else { 0 })?;
        let id = match opts.ctid {
            Some(id) => {
                if self.root.ct_dir(id).exists() {
                    return Err(CoreError::CtIdInUse(id.0).into());
                }
                id
            }
            None => {
                let used = self.root.list_ct_dirs()?;
                next_free_ctid(&used)?
            }
        };
        // The ID range is allocated from the host-wide registry once the container's
        // directory and journal exist (see below), so that a crash leaves an entry that the
        // rollback frees or that is stale (its directory gone) and reclaimed.
        let mut cfg = ContainerConfig {
            name: opts.name.clone(),
            hostname: opts.hostname.clone(),
            description: opts.description.clone(),
            privileged: opts.privileged,
            idmap: None,
            resources: opts.resources.clone(),
            created: now(),
            net: self.net_for_new(id, &configs)?,
            procs: berth_core::services::ServiceSettings {
                init: opts.init,
                pending_service_defaults: self.node.service_defaults.clone(),
                ..Default::default()
            },
            ..ContainerConfig::new(id, &opts.ostemplate, disk)
        };
        let dir = self.root.ct_dir(id);
        // The container's lock before its directory: a directory without config.toml is
        // what recovery removes as a destroy's leftover when it can take the lock, so the
        // lock must be ours from the directory's first moment (a destroy of the same CTID
        // finishing, or any command's recovery, would otherwise remove it under us).
        let ct_guard = lock::lock(&self.root.ct_lock(id))?;
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CoreError::CtIdInUse(id.0),
            _ => CoreError::io(&dir, e),
        })?;
        // Root-only: the disk image, config and logs are the container's.
        fsutil::ensure_mode(&dir, 0o700)?;
        let res = (|| -> Result<()> {
            Journal::begin(&self.root.ct_journal(id), Operation::Create)?;
            crash_point("create:after-journal");
            if !cfg.privileged {
                p.message("allocating the ID range");
                cfg.idmap = Some(self.allocate_idmap(id, &configs)?);
                crash_point("create:after-idmap");
            }
            p.message(&format!(
                "making the {} virtual disk ({})",
                cfg.disk.size, cfg.disk.fstype
            ));
            p.update(0, Some(3));
            berth_storage::rootfs::create_disk(&self.root, &cfg)?;
            crash_point("create:after-disk");
            p.update(2, Some(3));
            p.message("writing the configuration");
            fsutil::write_toml(&self.root.ct_config(id), &cfg)?;
            p.update(3, Some(3));
            crash_point("create:after-config");
            Journal::end(&self.root.ct_journal(id))?;
            Ok(())
        })();
        if let Err(e) = res {
            let _ = recover::remove_ct_dir(&self.root, id);
            if cfg.idmap.is_some() {
                crate::idreg::free(&self.root, &self.node.node_id, id);
            }
            recover::remove_ct_locks(&self.root, id, ct_guard);
            return Err(e);
        }
        Ok(id)
    }

    pub fn start(&self, r: &CtRef) -> Result<ContainerInfo> {
        let id = self.resolve(r)?;
        let _g = self.lock_ct(id)?;
        self.start_locked(id)
    }

    pub fn stop(&self, r: &CtRef, opts: StopOptions) -> Result<()> {
        let id = self.resolve(r)?;
        let _g = self.lock_ct(id)?;
        let cfg = self.load_config(id)?;
        self.stop_locked(id, &cfg, opts)
    }

    pub fn restart(&self, r: &CtRef, opts: StopOptions) -> Result<ContainerInfo> {
        let id = self.resolve(r)?;
        let _g = self.lock_ct(id)?;
        let cfg = self.load_config(id)?;
        self.restart_locked(id, &cfg, opts)
    }

    pub fn set(&self, r: &CtRef, opts: SetOptions) -> Result<SetOutcome> {
        self.set_impl(r, opts)
    }

    pub fn stats(&self, cts: &[CtRef], sample: Duration) -> Result<Vec<ContainerStats>> {
        self.stats_impl(cts, sample)
    }

    pub fn compact(&self, r: &CtRef) -> Result<u64> {
        self.compact_impl(r)
    }

    pub fn node_info(&self) -> Result<NodeInfo> {
        self.node_info_impl()
    }

    pub fn status(&self, r: &CtRef) -> Result<ContainerInfo> {
        let id = self.resolve(r)?;
        match ContainerConfig::load(&self.root, id) {
            Ok(cfg) => Ok(self.info(&cfg)),
            Err(e @ CoreError::ContainerNotFound(_)) => Err(e.into()),
            Err(e) => Ok(self.broken_info(id, &e)),
        }
    }

    pub fn suspend(&self, r: &CtRef) -> Result<()> {
        let id = self.resolve(r)?;
        let _g = self.lock_ct(id)?;
        self.require_running(id)?;
        let mut c =
            load_container(&self.root, &self.runtime_id(id)).ok_or(NodeError::NotRunning(id.0))?;
        c.pause().map_err(berth_runtime::RuntimeError::from)?;
        Ok(())
    }

    pub fn resume(&self, r: &CtRef) -> Result<()> {
        let id = self.resolve(r)?;
        let _g = self.lock_ct(id)?;
        match self.current_status(id) {
            CtStatus::Suspended => {}
            CtStatus::Running => return Err(NodeError::NotSuspended(id.0)),
            CtStatus::Stopped | CtStatus::Broken => return Err(NodeError::NotRunning(id.0)),
        }
        let mut c =
            load_container(&self.root, &self.runtime_id(id)).ok_or(NodeError::NotRunning(id.0))?;
        c.resume().map_err(berth_runtime::RuntimeError::from)?;
        Ok(())
    }

    pub fn list(&self, all: bool) -> Result<Vec<ContainerInfo>> {
        Ok(self
            .entries()?
            .iter()
            .map(|(id, r)| match r {
                Ok(c) => self.info(c),
                Err(e) => self.broken_info(*id, e),
            })
            .filter(|i| all || i.status != CtStatus::Stopped)
            .collect())
    }

    pub fn destroy(&self, r: &CtRef, force: bool) -> Result<()> {
        let id = self.resolve(r)?;
        let guard = self.lock_ct(id)?;
        self.destroy_locked(id, guard, force)
    }

    /// [`Self::destroy`] of container `id`, whose lock `guard` the caller holds.
    pub(crate) fn destroy_locked(&self, id: CtId, guard: LockGuard, force: bool) -> Result<()> {
        // A broken container is destroyed too (so that the operator can clean up): by its
        // directory's CTID, never by what its file says.
        let cfg = match self.load_config(id) {
            Ok(c) => c,
            Err(NodeError::Core(e @ CoreError::ContainerNotFound(_))) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(%id, "destroying a broken container: {e}");
                ContainerConfig::new(id, "-", DiskConfig::new(berth_core::Size(0)))
            }
        };
        if is_active(&self.root, id) {
            if !force {
                return Err(NodeError::IsRunning(id.0));
            }
            self.stop_locked(
                id,
                &cfg,
                StopOptions {
                    timeout: 0,
                    kill: true,
                },
            )?;
            crash_point("destroy:after-stop");
        }
        Journal::begin(&self.root.ct_journal(id), Operation::Destroy)?;
        crash_point("destroy:after-journal");
        release_runtime(&self.root, &self.node.node_id, id)?;
        berth_storage::rootfs::release_disk(&self.root, id)?;
        crash_point("destroy:after-runtime");
        // The ID range before the directory: once the directory (and its journal) is gone,
        // nothing would tell a later command whose entry it was.
        crate::idreg::free(&self.root, &self.node.node_id, id);
        crash_point("destroy:after-idreg");
        recover::remove_ct_dir(&self.root, id)?;
        crash_point("destroy:after-dir");
        recover::remove_ct_locks(&self.root, id, guard);
        // Logged only: the container is gone whatever the script says.
        let _ = berth_runtime::hooks::run(&self.root, &cfg, "destroy", &[]);
        Ok(())
    }
}

/// The monitor's word on the start (`ok PID` or `error: …`), or nothing if it died first.
/// The pipe's end alone cannot say so: the container's processes made by the runtime hold
/// a copy of the monitor's end until their init execs, and a monitor killed before it
/// let init exec leaves them waiting for ever (then its clean-up here kills them).
fn read_ready(rd: std::os::fd::OwnedFd, child: &mut std::process::Child) -> String {
    let mut line = String::new();
    let mut pfd = libc::pollfd {
        fd: rd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one pollfd of a descriptor we own.
        let n = unsafe { libc::poll(&mut pfd, 1, 50) };
        if n > 0 {
            let _ = BufReader::new(std::fs::File::from(rd)).read_line(&mut line);
            return line;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            // SAFETY: as above, without waiting: what it wrote before dying is there.
            if unsafe { libc::poll(&mut pfd, 1, 0) } > 0 {
                let _ = BufReader::new(std::fs::File::from(rd)).read_line(&mut line);
            }
            return line;
        }
    }
}

/// The caller's `TERM`, for a process on a pseudo-terminal relayed to the caller's terminal.
fn caller_term(env: &mut Vec<String>) {
    if let Ok(t) = std::env::var("TERM") {
        env.retain(|e| !e.starts_with("TERM="));
        env.push(format!("TERM={t}"));
    }
}
