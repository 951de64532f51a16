//! `berth node check`: reads the whole node root and the host's state and reports every
//! inconsistency between them, each with the command that fixes it. Read-only: unlike every
//! other command it runs no recovery first (what recovery would fix is reported as such).
//! `--repair` ([`crate::check_repair`]) fixes what is safe to fix.
//!
//! What is read: `node.toml`, every container's files (through the checked loaders), its
//! runtime state against the host (monitor, init, cgroups, mounts, loop device, links and
//! rules), the node root's own files (temporary files, journals, markers, locks, template
//! staging), the host's objects of this node (mounts below the node root, loop devices
//! backed by its files, cgroups, links and nft rules of its node ID) and the host-wide ID
//! registry's entries of this node root. Nothing inside a container's disk or rootfs is
//! read: only directories Berth alone writes are listed, and never followed through a
//! symlink.

use crate::check_host::Host;
use crate::recover::{is_active, monitor_alive, set_marker};
use crate::{NodeError, Result};
use berth_core::idregistry::Registry;
use berth_core::{fsutil, lock, ContainerConfig, CtId, NodeRoot};
use berth_runtime::monitor::RunPaths;
use berth_runtime::state::RunState;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// `node.toml` is refused by its loader.
    InvalidNodeConfig,
    /// A container's `config.toml` is refused by its loader (the container is `broken`).
    InvalidConfig,
    /// A network's file is refused by its loader.
    InvalidNetworkConfig,
    /// A container directory without `config.toml` and without a journal.
    IncompleteContainer,
    /// The journal of an interrupted operation (create, destroy, network command).
    LeftoverJournal,
    /// The marker of an interrupted `set` (limits or network settings).
    InterruptedSet,
    /// A temporary file of an atomic write whose writer is gone, or a template's staging
    /// directory of a command that is gone.
    StrayTempFile,
    /// Lock files of a container that no longer exists.
    LeftoverLock,
    /// A running container's init runs without its monitor.
    MonitorDead,
    /// A running container lacks a host object it needs (cgroup, mount, loop device, link,
    /// firewall rule), or its live networking is not its config's.
    RuntimeMismatch,
    /// `run/<ctid>/` of a container that is not running.
    RuntimeLeftover,
    /// A mount below the node root that no running container owns.
    OrphanMount,
    /// A loop device backed by a file of the node root that no running container uses.
    OrphanLoop,
    /// A cgroup of this node's container that is not running.
    OrphanCgroup,
    /// A link of this node that no running container or network owns.
    OrphanLink,
    /// A network whose bridge is missing.
    BridgeMissing,
    /// A network (or running container) whose nft rules are missing.
    FirewallMissing,
    /// nft tables of this node while it has no network and no running container with one.
    FirewallExtra,
    /// An ID-registry entry of this node root that names no container.
    RegistryOrphan,
    /// A container whose ID range is not registered to it.
    RegistryMissing,
    /// The containers' disks add up to more than the node's overcommit limit allows (node
    /// files edited by hand, the ratio lowered, or the node filesystem shrunk).
    DiskOvercommit,
    /// The node filesystem's free space is under the reserve: the disk guard freezes the
    /// biggest writer of a running container.
    DiskLow,
}

/// One inconsistency.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// What it is about: `container 101`, a path, a link or a network.
    pub object: String,
    /// What is wrong, in one line.
    pub detail: String,
    /// The command that fixes it.
    pub fix: String,
    /// Whether `node check --repair` fixes it (else it needs a human).
    pub repairable: bool,
    /// Whether `--repair` fixed it.
    pub repaired: bool,
    #[serde(skip)]
    pub(crate) action: Action,
}

/// How `--repair` fixes a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Needs a human.
    None,
    /// The recovery every command runs (journals, markers, leftovers, locks).
    Recover,
    RemoveTemp(PathBuf),
    Unmount(PathBuf),
    DetachLoop(PathBuf),
    RemoveCgroup(PathBuf),
    DeleteCtLinks(u32),
    RemoveOrphanBridges,
    EnsureNetwork(String),
    ApplyFirewall,
    /// Puts a container's host link back on its network's bridge: (link, bridge).
    AttachPort(String, String),
    FreeRegistry(CtId),
    Register(CtId),
}

/// What `node check` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub node_root: PathBuf,
    pub node_id: Option<String>,
    pub problems: Vec<Problem>,
}

impl Report {
    /// Problems not repaired.
    pub fn remaining(&self) -> usize {
        self.problems.iter().filter(|p| !p.repaired).count()
    }
}

pub(crate) struct Checker<'a> {
    pub(crate) root: &'a NodeRoot,
    pub(crate) canon: PathBuf,
    pub(crate) node_id: String,
    pub(crate) host: Host,
    pub(crate) out: Vec<Problem>,
}

impl Checker<'_> {
    /// What the containers were promised against the node filesystem, and its free space
    /// against the reserve.
    fn disk_space(&mut self, node: &berth_core::NodeConfig, ids: &[CtId]) {
        let Ok(space) = crate::diskspace::fs_space(self.root.path()) else {
            return;
        };
        let promised: u64 = ids
            .iter()
            .filter_map(|id| berth_core::ContainerConfig::load(self.root, *id).ok())
            .map(|c| c.disk.size.0)
            .sum();
        let limit = crate::diskspace::promise_limit(space.total, node.disk_overcommit);
        if promised > limit {
            let need = promised as f64 / space.total.max(1) as f64;
            self.push(
                ProblemKind::DiskOvercommit,
                quote(self.root.path()),
                format!(
                    "the containers' disks add up to {} on a node filesystem of {}, above the limit {} (ratio {})",
                    crate::diskspace::human(promised),
                    crate::diskspace::human(space.total),
                    crate::diskspace::human(limit),
                    node.disk_overcommit
                ),
                format!(
                    "{} (or shrink or destroy containers)",
                    self.berth(&format!("node set --disk-overcommit {:.2}", (need * 100.0).ceil() / 100.0))
                ),
                Action::None,
            );
        }
        let reserve = crate::diskspace::reserve_of(node, space.total);
        if space.free < reserve {
            self.push(
                ProblemKind::DiskLow,
                quote(self.root.path()),
                format!(
                    "{} free on the node filesystem, under the reserve of {}",
                    crate::diskspace::human(space.free),
                    crate::diskspace::human(reserve)
                ),
                "free space on the node filesystem (`berth compact CT` returns unused blocks of expanding disks)".into(),
                Action::None,
            );
        }
    }
}

pub(crate) fn quote(p: &Path) -> String {
    p.display().to_string()
}

impl Checker<'_> {
    pub(crate) fn push(
        &mut self,
        kind: ProblemKind,
        object: String,
        detail: String,
        fix: String,
        a: Action,
    ) {
        let repairable = a != Action::None;
        self.out.push(Problem {
            kind,
            object,
            detail,
            fix,
            repairable,
            repaired: false,
            action: a,
        });
    }

    pub(crate) fn berth(&self, args: &str) -> String {
        format!("berth --root {} {args}", self.canon.display())
    }

    pub(crate) fn repair_cmd(&self) -> String {
        self.berth("node check --repair")
    }

    /// Temporary files of dead writers in one of Berth's own directories (not followed
    /// through symlinks; a symlink is never taken for a temporary file).
    fn temps_in(&mut self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(fsutil::temp_file_pid) else {
                continue;
            };
            if fsutil::pid_gone(pid) && e.file_type().is_ok_and(|t| t.is_file()) {
                let p = e.path();
                self.push(
                    ProblemKind::StrayTempFile,
                    quote(&p),
                    format!("temporary file of an interrupted write (PID {pid} is gone)"),
                    self.repair_cmd(),
                    Action::RemoveTemp(p),
                );
            }
        }
    }

    fn node_files(&mut self) {
        let root = self.root.path().to_path_buf();
        self.temps_in(&root);
        self.temps_in(&self.root.networks_dir());
        self.temps_in(&self.root.run_dir());
        if let Ok(rd) = std::fs::read_dir(self.root.templates_dir()) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let Some(rest) = n.strip_prefix(".staging-") else {
                    continue;
                };
                let pid = rest.rsplit('-').next().and_then(|p| p.parse::<i32>().ok());
                if pid.is_none_or(fsutil::pid_gone) {
                    self.push(
                        ProblemKind::StrayTempFile,
                        quote(&e.path()),
                        "staging directory of an interrupted template command".into(),
                        self.repair_cmd(),
                        Action::Recover,
                    );
                }
            }
        }
        if let Some(op) = berth_net::NetOp::pending(self.root) {
            if !lock::is_locked(&self.root.node_lock()) {
                self.push(
                    ProblemKind::LeftoverJournal,
                    format!("network {}", op.name),
                    format!("`berth network {}` was interrupted", op.op),
                    self.repair_cmd(),
                    Action::Recover,
                );
            }
        }
    }

    /// Lock files of containers that no longer exist.
    fn locks(&mut self, ids: &[CtId]) {
        let Ok(rd) = std::fs::read_dir(self.root.locks_dir()) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(id) = n
                .strip_suffix(".lock")
                .or_else(|| n.strip_suffix(".monitor"))
                .and_then(|s| CtId::parse(s).ok())
            else {
                continue;
            };
            if ids.contains(&id) || self.root.ct_run_dir(id).exists() {
                continue;
            }
            if lock::is_locked(&e.path()) {
                continue; // a create in progress
            }
            self.push(
                ProblemKind::LeftoverLock,
                quote(&e.path()),
                format!("lock file of container {id}, which no longer exists"),
                self.repair_cmd(),
                Action::Recover,
            );
        }
    }

    fn container(&mut self, id: CtId) {
        if lock::is_locked(&self.root.ct_lock(id)) {
            return; // a command is working on it
        }
        let obj = format!("container {id}");
        let dir = self.root.ct_dir(id);
        let run = self.root.ct_run_dir(id);
        self.temps_in(&dir);
        self.temps_in(&run);
        let journal = self.root.ct_journal(id);
        let has_config = self.root.ct_config(id).exists();
        if journal.exists() {
            let op = berth_core::journal::Journal::read(&journal)
                .ok()
                .flatten()
                .map(|j| format!("{:?}", j.op).to_lowercase())
                .unwrap_or_else(|| "an operation".into());
            self.push(
                ProblemKind::LeftoverJournal,
                obj.clone(),
                format!("its {op} was interrupted ({})", quote(&journal)),
                self.repair_cmd(),
                Action::Recover,
            );
        } else if dir.exists() && !has_config {
            self.push(
                ProblemKind::IncompleteContainer,
                obj.clone(),
                format!("{} has no config.toml (a destroy's leftover)", quote(&dir)),
                self.repair_cmd(),
                Action::Recover,
            );
        }
        for m in [
            set_marker(self.root, id),
            crate::netrecover::net_set_marker(self.root, id),
        ] {
            if m.exists() {
                self.push(
                    ProblemKind::InterruptedSet,
                    obj.clone(),
                    format!("a `berth set` was interrupted ({})", quote(&m)),
                    self.repair_cmd(),
                    Action::Recover,
                );
            }
        }
        let cfg = if has_config {
            match ContainerConfig::load(self.root, id) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.push(
                        ProblemKind::InvalidConfig,
                        obj.clone(),
                        e.to_string(),
                        format!(
                            "correct {} or remove the container with `{}`",
                            quote(&self.root.ct_config(id)),
                            self.berth(&format!("destroy {id} --force"))
                        ),
                        Action::None,
                    );
                    None
                }
            }
        } else {
            None
        };
        let active = is_active(self.root, id);
        let init = RunState::load(&RunPaths::new(self.root, id).state()).filter(|s| s.init_alive());
        if let Some(st) = &init {
            if !monitor_alive(self.root, id) {
                self.push(
                    ProblemKind::MonitorDead,
                    obj.clone(),
                    format!(
                        "its init (host PID {}) runs without its monitor: nothing reaps it, logs its console or cleans up when it stops",
                        st.init_pid
                    ),
                    self.berth(&format!("restart {id}")),
                    Action::None,
                );
            }
            if let Some(cfg) = &cfg {
                self.running(cfg);
            }
        } else if !active {
            self.stopped(id);
        }
        if let Some(cfg) = &cfg {
            self.registered(cfg);
        }
    }

    /// A running container has its cgroups, mounts, loop device, links and rules.
    fn running(&mut self, cfg: &ContainerConfig) {
        let id = cfg.ctid;
        let obj = format!("container {id}");
        let restart = self.berth(&format!("restart {id}"));
        let mut missing = vec![];
        if !self.host.cgroups.contains_key(&id.0) {
            missing.push("its cgroups".to_string());
        }
        let run = self.root.ct_run_dir(id);
        if !self.host.mounts.iter().any(|m| m.starts_with(&run)) {
            missing.push("its mounts".into());
        }
        if berth_storage::loopdev::find_by_backing(&self.root.ct_disk(id)).is_empty() {
            missing.push("its disk's loop device".into());
        }
        let links: Vec<(String, String)> = self
            .host
            .ct_links(&self.node_id, id.0)
            .into_iter()
            .cloned()
            .collect();
        for n in &cfg.net.netifs {
            let alias = berth_net::names::alias_ct(&self.node_id, id.0, &n.name);
            match links.iter().find(|(_, a)| *a == alias) {
                None => missing.push(format!("the link of adapter {}", n.name)),
                Some((name, _)) => {
                    if n.ipfilter && !self.host.ruleset.contains(&format!("\"{name}\"")) {
                        missing.push(format!("the firewall rules of adapter {}", n.name));
                    }
                    let br = berth_net::names::bridge(&self.node_id, &n.network);
                    let net = Path::new("/sys/class/net");
                    let master = std::fs::read_link(net.join(name).join("master"))
                        .ok()
                        .and_then(|m| m.file_name().map(|f| f.to_string_lossy().into_owned()));
                    // A missing bridge is reported with its network.
                    if net.join(&br).exists() && master.as_deref() != Some(br.as_str()) {
                        let (name, br) = (name.clone(), br.clone());
                        self.push(
                            ProblemKind::RuntimeMismatch,
                            format!("link {name}"),
                            format!(
                                "adapter {} of container {id} is not a port of its network {}'s bridge {br}",
                                n.name, n.network
                            ),
                            self.repair_cmd(),
                            Action::AttachPort(name, br),
                        );
                    }
                }
            }
        }
        let nn = berth_net::NetNode::new(self.root, &self.node_id);
        if let Some(applied) = nn.applied(id.0) {
            if applied != cfg.net {
                self.push(
                    ProblemKind::RuntimeMismatch,
                    obj.clone(),
                    "its live networking is not that of its config.toml".into(),
                    restart.clone(),
                    Action::None,
                );
            }
        }
        if !missing.is_empty() {
            self.push(
                ProblemKind::RuntimeMismatch,
                obj,
                format!("it runs, but {} missing", missing.join(", ") + " are"),
                restart,
                Action::None,
            );
        }
    }

    /// A container that is not running has nothing on the host.
    fn stopped(&mut self, id: CtId) {
        let obj = format!("container {id}");
        let run = self.root.ct_run_dir(id);
        if run.exists() {
            self.push(
                ProblemKind::RuntimeLeftover,
                obj.clone(),
                format!("it is not running, but {} is left", quote(&run)),
                self.repair_cmd(),
                Action::Recover,
            );
        }
        for d in self.host.cgroups.get(&id.0).cloned().unwrap_or_default() {
            self.push(
                ProblemKind::OrphanCgroup,
                quote(&d),
                format!("cgroup of container {id}, which is not running"),
                self.repair_cmd(),
                Action::RemoveCgroup(d),
            );
        }
        let links: Vec<String> = self
            .host
            .ct_links(&self.node_id, id.0)
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        for l in links {
            self.push(
                ProblemKind::OrphanLink,
                format!("link {l}"),
                format!("link of container {id}, which is not running"),
                self.repair_cmd(),
                Action::DeleteCtLinks(id.0),
            );
        }
    }

    /// The container's ID range is registered to it.
    fn registered(&mut self, cfg: &ContainerConfig) {
        let Some(r) = crate::idreg::range_of(cfg) else {
            return;
        };
        let Ok(owner) = crate::idreg::owner(self.root, &self.node_id, cfg.ctid) else {
            return;
        };
        let have = Registry::host()
            .open_existing()
            .ok()
            .flatten()
            .and_then(|s| s.range_of(&owner));
        if have != Some(r) {
            self.push(
                ProblemKind::RegistryMissing,
                format!("container {}", cfg.ctid),
                format!(
                    "its host IDs {}+{} are not registered to it in the host-wide ID registry",
                    r.host_base, r.size
                ),
                self.repair_cmd(),
                Action::Register(cfg.ctid),
            );
        }
    }

    /// Entries of this node root in the registry that name no container.
    fn registry(&mut self) {
        let reg = Registry::host();
        let Ok(Some(s)) = reg.open_existing() else {
            return;
        };
        let orphans: Vec<CtId> = s
            .entries()
            .iter()
            .filter(|e| e.owner.node_id == self.node_id && e.owner.root == self.canon)
            .map(|e| e.owner.ctid)
            .filter(|id| !self.root.ct_dir(*id).exists())
            .collect();
        drop(s);
        for id in orphans {
            self.push(
                ProblemKind::RegistryOrphan,
                format!("ID range of container {id}"),
                format!("the host-wide ID registry holds a range for container {id}, which does not exist"),
                self.repair_cmd(),
                Action::FreeRegistry(id),
            );
        }
    }
}

/// Checks the node root `root` and the host; changes nothing.
pub fn check(root: &NodeRoot) -> Result<Report> {
    if !nix::unistd::geteuid().is_root() {
        return Err(NodeError::NotRoot);
    }
    let canon = std::fs::canonicalize(root.path())
        .map_err(|e| berth_core::CoreError::io(root.path(), e))?;
    let node = match root.load_node_config() {
        Ok(n) => n,
        Err(e) => {
            return Ok(Report {
                node_root: canon,
                node_id: None,
                problems: vec![Problem {
                    kind: ProblemKind::InvalidNodeConfig,
                    object: quote(&root.node_toml()),
                    detail: e.to_string(),
                    fix: format!("correct {}", quote(&root.node_toml())),
                    repairable: false,
                    repaired: false,
                    action: Action::None,
                }],
            })
        }
    };
    let host = Host::read(&canon, &node.node_id)?;
    let mut c = Checker {
        root,
        canon: canon.clone(),
        node_id: node.node_id.clone(),
        host,
        out: vec![],
    };
    c.node_files();
    let ids = root.list_ct_dirs()?;
    // Containers known only by their run directory (a destroy's leftover).
    let mut all = ids.clone();
    if let Ok(rd) = std::fs::read_dir(root.run_dir()) {
        for e in rd.flatten() {
            if let Some(id) = e.file_name().to_str().and_then(|s| CtId::parse(s).ok()) {
                if !all.contains(&id) {
                    all.push(id);
                }
            }
        }
    }
    for id in &all {
        c.container(*id);
    }
    c.locks(&ids);
    c.registry();
    c.storage();
    c.networks();
    c.disk_space(&node, &ids);
    let mut problems = c.out;
    problems.sort_by(|a, b| (a.kind, &a.object).cmp(&(b.kind, &b.object)));
    problems.dedup_by(|a, b| a.kind == b.kind && a.object == b.object && a.detail == b.detail);
    Ok(Report {
        node_root: canon,
        node_id: Some(node.node_id),
        problems,
    })
}
