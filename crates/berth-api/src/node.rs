//! The operations of a node, complete: everything the CLI, berthd's REST API and the web
//! console do goes through this trait, implemented locally (berth-node's `LocalNode`) and
//! over HTTPS (the remote client). Calls block; berthd runs them on blocking threads.
//!
//! Long operations take a [`Progress`] that receives phases and counts; interactive ones
//! (`exec`, `enter`, `console`) take the streams they talk to, so that neither the local
//! implementation nor the remote one is tied to the stdio of the process that calls.

use crate::config::{DiskFs, IdMap, TemplateManifest};
use crate::error::Result;
use crate::inside::{
    CtGroup, CtGroupAdd, CtPassword, CtUser, CtUserAdd, FileEntry, FilePush, FileSink,
};
use crate::net::{Adapter, NetChange, NetConfig, NetworkConfig, NetworkInfo, Traffic};
use crate::ops::{
    CloneOptions, ContainerInfo, ContainerStats, CreateOptions, ExecOptions, IncomingHeader,
    MigrateOptions, MigrateResult, MigrateTarget, MoveOptions, NodeInfo, SetOutcome, StopOptions,
    TemplateSource,
};
use crate::procs::{ProcInfo, WhichInfo};
use crate::resources::SetOptions;
use crate::services::{
    Action, AddService, HostService, InitMode, ServiceInfo, ServiceStatus, Startup,
};
use crate::validate::{CtId, CtRef};
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;

/// Receives progress of a long operation (an indicatif bar in a terminal, an operation's
/// state in berthd, nothing in tests).
pub trait Progress: Send + Sync {
    /// `done` of `total` units (bytes, files…); `total` is `None` when unknown.
    fn update(&self, done: u64, total: Option<u64>);
    /// A new phase or a notable line of output.
    fn message(&self, msg: &str);
    /// Files done so far, beside the units of [`Progress::update`] (a backup's bytes).
    fn files(&self, _done: u64) {}
    /// Whether the caller asked the operation to stop: a long call that can stop cleanly
    /// checks it between steps, undoes what it made and fails (the operation ends `cancelled`).
    fn cancelled(&self) -> bool {
        false
    }
    /// From now on the operation cannot be cancelled (a migration past its switch-over);
    /// `false` if a cancel came first, which the caller then honours.
    fn commit(&self) -> bool {
        true
    }
}

/// Discards progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: u64, _: Option<u64>) {}
    fn message(&self, _: &str) {}
}

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

/// What `console` prints of the console log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleLog {
    /// Keep printing what is appended while the container runs.
    #[serde(default)]
    pub follow: bool,
    /// Each line with the UTC time it began (RFC 3339).
    #[serde(default)]
    pub timestamps: bool,
}

/// How an attached console ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ConsoleEnd {
    /// The caller detached (its keys, its end of input, a signal); the console stays.
    Detached,
    /// The container stopped.
    Stopped,
}

/// Parses a detach key: `^a`…`^z` (or `ctrl-a`), or one character.
pub fn parse_escape(s: &str) -> Option<u8> {
    let l = s.to_ascii_lowercase();
    let letter = l
        .strip_prefix('^')
        .or_else(|| l.strip_prefix("ctrl-"))
        .or_else(|| l.strip_prefix("ctrl+"));
    match letter {
        Some(c) if c.len() == 1 && c.as_bytes()[0].is_ascii_lowercase() => {
            Some(c.as_bytes()[0] - b'a' + 1)
        }
        Some(_) => None,
        None if s.len() == 1 && s.is_ascii() => Some(s.as_bytes()[0]),
        None => None,
    }
}

/// The detach keys of an attached console: `key` then `q` detaches, `key` twice sends it
/// once, `key` then anything else sends both.
#[derive(Debug, Clone, Copy)]
pub struct EscapeFilter {
    key: Option<u8>,
    armed: bool,
}

impl EscapeFilter {
    /// None: no detach keys (everything passes).
    pub fn new(key: Option<u8>) -> EscapeFilter {
        EscapeFilter { key, armed: false }
    }

    /// Appends to `out` what of `input` goes to the console; true when the keys said detach
    /// (what came before them is in `out`, what came after is dropped).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(k) = self.key else {
            out.extend_from_slice(input);
            return false;
        };
        for &b in input {
            if std::mem::take(&mut self.armed) {
                match b {
                    b'q' | b'Q' => return true,
                    _ if b == k => out.push(k),
                    _ => out.extend_from_slice(&[k, b]),
                }
            } else if b == k {
                self.armed = true;
            } else {
                out.push(b);
            }
        }
        false
    }
}

/// The streams of an interactive command (`exec`, `enter`).
pub enum Stdio {
    /// The calling process's own stdin, stdout and stderr (the CLI).
    Inherit,
    /// These descriptors as the command's stdin, stdout and stderr (berthd's websocket
    /// relays, tests). With a pseudo-terminal (`tty`, or stdin and stdout terminals), they
    /// are a terminal the caller made: its size is followed (SIGWINCH) and relayed to the
    /// container's own pseudo-terminal, which never leaves the node's helper.
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

/// A command to run inside a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub command: Vec<String>,
    #[serde(flatten)]
    pub opts: ExecOptions,
}

/// What `set` changes besides names and limits: a fresh ID range, network changes. One
/// `set` applies all of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRequest {
    #[serde(default)]
    pub options: SetOptions,
    /// Adapters, addresses, DNS, forwards, rates (always live).
    #[serde(default)]
    pub net: NetChange,
    /// Give the stopped container a fresh free host ID range.
    #[serde(default)]
    pub renew_idmap: bool,
}

impl SetRequest {
    pub fn is_empty(&self) -> bool {
        self.options.is_empty() && self.net.is_empty() && !self.renew_idmap
    }
}

/// What a `set` did, in full.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetResult {
    /// The new ID range, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<IdMap>,
    /// The network configuration after the change, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetConfig>,
    /// Names and limits, when there were some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<SetOutcome>,
}

/// The node-wide settings `node set` changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// Default startup types of services in new containers: `(name, None)` removes one.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::service_defaults))]
    pub service_defaults: Vec<(String, Option<Startup>)>,
    /// Virtual-disk filesystem of new containers created without one.
    #[serde(default)]
    pub default_fstype: Option<DiskFs>,
    /// How many times the node filesystem's size the containers' disks may add up to.
    #[serde(default)]
    pub disk_overcommit: Option<f64>,
    /// Free space kept on the node filesystem; `Some(None)` (JSON `null`): the default.
    #[serde(
        default,
        deserialize_with = "crate::net::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub disk_reserve: Option<Option<crate::validate::Size>>,
    /// The most backups an owner may keep of each of his containers in a repository;
    /// `Some(None)` (JSON `null`): no limit.
    #[serde(
        default,
        deserialize_with = "crate::net::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub backup_max_per_container: Option<Option<u32>>,
    /// The repository backups go to without one named (as `backup repo default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_default_repo: Option<String>,
}

impl NodeSettings {
    pub fn is_empty(&self) -> bool {
        self.service_defaults.is_empty()
            && self.default_fstype.is_none()
            && self.disk_overcommit.is_none()
            && self.disk_reserve.is_none()
            && self.backup_max_per_container.is_none()
            && self.backup_default_repo.is_none()
    }
}

/// What `start` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartResult {
    pub info: ContainerInfo,
    /// Services whose node default startup type was applied (first start only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_defaults_applied: Vec<String>,
    /// What went wrong without failing the start (retried at the next start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What `clone` made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CloneResult {
    /// The clone.
    pub info: ContainerInfo,
    /// How long a running source was frozen for the last pass of the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_ms: Option<u64>,
    /// What of the source was not carried over (host-routed addresses, port forwards…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The node's settings (`node.toml`), as `node config` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeConfigInfo {
    pub node_id: String,
    /// Format version of the node root.
    pub version: u32,
    /// Unix time of `node init`.
    pub created: u64,
    /// First host UID handed to containers.
    pub idmap_start: u32,
    /// Disk size of containers created without `--diskspace`.
    pub default_diskspace: crate::validate::Size,
    /// Virtual-disk filesystem of containers created without `--fstype`.
    pub default_fstype: DiskFs,
    /// Default startup types of services in new containers.
    #[serde(default)]
    pub service_defaults: std::collections::BTreeMap<String, Startup>,
    /// Containers' disks may add up to this many times the node filesystem.
    #[serde(default)]
    pub disk_overcommit: f64,
    /// Free space the disk guard keeps on the node filesystem (absent: the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_reserve: Option<crate::validate::Size>,
    /// The most backups an owner may keep of each of his containers (absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_max_per_container: Option<u32>,
    /// The default backup repository (absent: none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_default_repo: Option<String>,
}

/// What `node boot` did with one `--onboot yes` container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BootEntry {
    pub ctid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootorder: Option<u32>,
    /// `started`, `running` (it already was) or `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::Error>,
}

/// `service list`: which service manager answered, and its services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceList {
    pub driver: String,
    pub services: Vec<ServiceInfo>,
}

/// Every operation of a node. Object safe: the CLI holds a `Box<dyn Node>`.
pub trait Node: Send + Sync {
    // --- templates
    fn template_create(
        &self,
        name: &str,
        source: TemplateSource,
        progress: &dyn Progress,
    ) -> Result<TemplateManifest>;
    fn template_list(&self) -> Result<Vec<TemplateManifest>>;
    fn template_info(&self, name: &str) -> Result<TemplateManifest>;
    /// Receives template `name` as a tar stream of its files (what a migration's source
    /// sends a target that lacks it); kept only if their content hash is `hash`.
    fn receive_template(
        &self,
        name: &str,
        hash: &str,
        input: &mut dyn std::io::Read,
    ) -> Result<TemplateManifest>;
    fn template_remove(&self, name: &str) -> Result<()>;

    // --- containers
    fn create(&self, opts: CreateOptions, progress: &dyn Progress) -> Result<ContainerInfo>;
    /// Starts the container, then applies the node's service defaults captured at create
    /// (first start only).
    fn start(&self, ct: &CtRef) -> Result<StartResult>;
    fn stop(&self, ct: &CtRef, opts: StopOptions) -> Result<()>;
    fn restart(&self, ct: &CtRef, opts: StopOptions) -> Result<ContainerInfo>;
    fn suspend(&self, ct: &CtRef) -> Result<()>;
    fn resume(&self, ct: &CtRef) -> Result<()>;
    fn destroy(&self, ct: &CtRef, force: bool) -> Result<()>;
    /// A copy of the container under a new CTID: its disk copied sparsely (a running
    /// source is frozen only for the last pass), its config with a new ID range, MACs and
    /// addresses (docs/clone.md).
    fn clone_ct(
        &self,
        ct: &CtRef,
        opts: CloneOptions,
        progress: &dyn Progress,
    ) -> Result<CloneResult>;
    /// Receives a container migrated from another node: `header`, then its disk as block
    /// frames from `input` (`berth_storage::blockcopy::apply_stream`). Nothing is left of it
    /// unless the stream ends whole. `None` for `check_only`.
    fn receive_ct(
        &self,
        header: IncomingHeader,
        input: &mut dyn std::io::Read,
        progress: &dyn Progress,
    ) -> Result<Option<ContainerInfo>>;
    /// Migrates a container to another node's berthd (`target`), offline or online; the
    /// source is destroyed once the target runs it (kept stopped with `keep_source`).
    /// Before the switch-over, a failure or a cancel leaves the source as it was and the
    /// target clean (docs/migrate.md).
    fn migrate_ct(
        &self,
        ct: &CtRef,
        target: MigrateTarget,
        opts: MigrateOptions,
        progress: &dyn Progress,
    ) -> Result<MigrateResult>;
    /// Renumbers a stopped container (`move --ctid`); its info under the new CTID.
    fn move_ct(&self, ct: &CtRef, opts: MoveOptions) -> Result<ContainerInfo>;
    fn status(&self, ct: &CtRef) -> Result<ContainerInfo>;
    /// Running and suspended containers; with `all`, stopped and broken ones too.
    fn list(&self, all: bool) -> Result<Vec<ContainerInfo>>;
    /// Names, limits, ID range and network in one call; live where the kernel allows.
    fn set(&self, ct: &CtRef, req: SetRequest) -> Result<SetResult>;
    /// Usage against limits; CPU percent is sampled over `sample_ms` (all running
    /// containers when `cts` is empty).
    fn stats(&self, cts: &[CtRef], sample_ms: u64) -> Result<Vec<ContainerStats>>;
    /// Returns unused virtual-disk blocks to the node; the bytes reclaimed.
    fn compact(&self, ct: &CtRef) -> Result<u64>;
    /// Runs a command inside; its exit code.
    fn exec(&self, ct: &CtRef, req: ExecRequest, stdio: Stdio) -> Result<i32>;
    /// An interactive login shell inside; its exit code.
    fn enter(&self, ct: &CtRef, stdio: Stdio) -> Result<i32>;
    /// The console log (init's output); with `follow`, until the container stops.
    fn console(&self, ct: &CtRef, log: ConsoleLog, out: &mut dyn std::io::Write) -> Result<()>;
    /// Attaches to the container's live console (its `/dev/console`) until the caller
    /// detaches (`escape` then `q`, when the input is a terminal; None: no detach keys) or
    /// the container stops. One caller at a time: a second is refused (Conflict).
    fn console_attach(&self, ct: &CtRef, escape: Option<u8>, stdio: Stdio) -> Result<ConsoleEnd>;
    /// Network traffic since start (none when stopped or without adapters).
    fn traffic(&self, ct: &CtRef) -> Result<Option<Traffic>>;

    // --- processes
    fn ps(&self, ct: &CtRef) -> Result<Vec<ProcInfo>>;
    /// Every process on the node, CPU sampled over `sample_ms`.
    fn top(&self, sample_ms: u64) -> Result<Vec<ProcInfo>>;
    /// Sends a signal (`TERM`, `9`, `RTMIN+4`…) to a process by its PID inside.
    fn kill(&self, ct: &CtRef, pid: i32, signal: &str) -> Result<ProcInfo>;
    /// Which container a host process belongs to.
    fn which(&self, host_pid: i32) -> Result<WhichInfo>;

    // --- services inside a container
    fn service_list(&self, ct: &CtRef) -> Result<ServiceList>;
    fn service_status(&self, ct: &CtRef, name: &str) -> Result<ServiceStatus>;
    fn service_action(&self, ct: &CtRef, name: &str, action: Action) -> Result<()>;
    fn service_logs(&self, ct: &CtRef, name: &str) -> Result<Vec<u8>>;
    /// Declares a service for Berth's supervisor; its startup type.
    fn service_add(&self, ct: &CtRef, name: &str, add: AddService) -> Result<Startup>;
    fn service_remove(&self, ct: &CtRef, name: &str) -> Result<()>;
    fn service_set_startup(&self, ct: &CtRef, name: &str, startup: Startup) -> Result<()>;
    /// The container's PID 1 mode.
    fn init_mode(&self, ct: &CtRef) -> Result<InitMode>;

    // --- users, groups and files inside a container (running or stopped), in its own view
    /// Its users (`/etc/passwd`, `/etc/shadow`, `/etc/group`).
    fn ct_user_list(&self, ct: &CtRef) -> Result<Vec<CtUser>>;
    fn ct_user_add(&self, ct: &CtRef, add: CtUserAdd) -> Result<CtUser>;
    /// Refused while processes of the user run.
    fn ct_user_del(&self, ct: &CtRef, name: &str) -> Result<()>;
    /// Sets a user's password (hashed by the node with the container's scheme); with
    /// `create`, a missing user is created first.
    fn ct_user_passwd(&self, ct: &CtRef, name: &str, req: CtPassword) -> Result<CtUser>;
    fn ct_group_list(&self, ct: &CtRef) -> Result<Vec<CtGroup>>;
    fn ct_group_add(&self, ct: &CtRef, add: CtGroupAdd) -> Result<CtGroup>;
    /// Refused while it is a user's primary group.
    fn ct_group_del(&self, ct: &CtRef, name: &str) -> Result<()>;
    /// What `path` is (a final symlink is not followed).
    fn file_stat(&self, ct: &CtRef, path: &str) -> Result<FileEntry>;
    /// A directory's entries (sorted by name), or the one entry of anything else.
    fn file_list(&self, ct: &CtRef, path: &str) -> Result<Vec<FileEntry>>;
    /// Streams a regular file out of the container into `sink` (its entry first).
    fn file_pull(&self, ct: &CtRef, path: &str, sink: &mut dyn FileSink) -> Result<FileEntry>;
    /// Streams `input` into a file of the container: written beside it and renamed over it
    /// when complete (a failure leaves the old file, or nothing).
    fn file_push(
        &self,
        ct: &CtRef,
        req: FilePush,
        input: &mut dyn std::io::Read,
    ) -> Result<FileEntry>;
    /// Removes a file, symlink or empty directory.
    fn file_remove(&self, ct: &CtRef, path: &str) -> Result<()>;

    // --- networks
    fn network_create(&self, cfg: NetworkConfig) -> Result<()>;
    fn network_list(&self) -> Result<Vec<NetworkInfo>>;
    fn network_info(&self, name: &str) -> Result<NetworkInfo>;
    fn network_delete(&self, name: &str) -> Result<()>;

    // --- node
    fn node_info(&self) -> Result<NodeInfo>;
    fn node_adapters(&self) -> Result<Vec<Adapter>>;
    fn node_set(&self, settings: NodeSettings) -> Result<()>;
    /// The node's settings.
    fn node_config(&self) -> Result<NodeConfigInfo>;
    /// Starts the containers marked `--onboot yes` that are not running: higher
    /// `--bootorder` first, those without one last, then by CTID. A failure does not stop
    /// the others.
    fn node_boot(&self) -> Result<Vec<BootEntry>>;
    fn host_services(&self) -> Result<Vec<HostService>>;

    // --- configuration samples (crate::samples)
    /// The samples shipped with Berth, then the node's own, by name.
    fn sample_list(&self) -> Result<Vec<crate::samples::ConfigSample>>;
    fn sample_info(&self, name: &str) -> Result<crate::samples::ConfigSample>;
    /// Creates or replaces one of the node's samples (not a shipped one).
    fn sample_save(&self, sample: crate::samples::ConfigSample) -> Result<()>;
    fn sample_remove(&self, name: &str) -> Result<()>;

    // --- backups (crate::backup, docs/backups.md)
    /// The node's backup repositories.
    fn backup_repos(&self) -> Result<crate::backup::Repos>;
    /// Adds (and initialises, when empty) a repository.
    fn backup_repo_add(&self, req: crate::backup::RepoAdd) -> Result<crate::backup::RepoAdded>;
    /// Forgets a repository (its files stay).
    fn backup_repo_remove(&self, name: &str) -> Result<()>;
    /// Makes a repository the default.
    fn backup_repo_default(&self, name: &str) -> Result<()>;
    /// Backs up one container. Progress: phases as messages.
    fn backup_create(
        &self,
        ct: &CtRef,
        req: crate::backup::BackupCreate,
        progress: &dyn Progress,
    ) -> Result<crate::backup::BackupResult>;
    /// Snapshots of the node's repositories, oldest first.
    fn backup_list(
        &self,
        filter: crate::backup::BackupFilter,
    ) -> Result<Vec<crate::backup::BackupEntry>>;
    /// Lists `path` (inside the container) of a backup of container `ctid`.
    fn backup_ls(
        &self,
        ctid: CtId,
        repo: Option<String>,
        snapshot: Option<String>,
        path: &str,
        recursive: bool,
        current_only: bool,
    ) -> Result<crate::backup::BackupListing>;
    /// Restores container `ctid` from a backup (stopped afterwards).
    fn backup_restore(
        &self,
        ctid: CtId,
        req: crate::backup::BackupRestore,
        progress: &dyn Progress,
    ) -> Result<crate::backup::RestoreResult>;
    /// Restores files of a backup into a new root-only directory of the node.
    fn backup_restore_files(
        &self,
        ctid: CtId,
        req: crate::backup::RestoreFiles,
    ) -> Result<crate::backup::FilesRestored>;
    /// Applies a retention policy to a container's backups.
    fn backup_forget(
        &self,
        ctid: CtId,
        req: crate::backup::ForgetRequest,
    ) -> Result<crate::backup::ForgetResult>;
    /// Checks a repository.
    fn backup_verify(
        &self,
        req: crate::backup::VerifyRequest,
    ) -> Result<crate::backup::VerifyResult>;

    /// The node's backup schedules, with their next and last runs.
    fn backup_schedules(&self) -> Result<Vec<crate::backup::ScheduleInfo>>;
    /// Adds a backup schedule (berthd runs it at its times).
    fn backup_schedule_add(
        &self,
        schedule: crate::backup::Schedule,
    ) -> Result<crate::backup::ScheduleInfo>;
    /// Removes a backup schedule (its backups stay).
    fn backup_schedule_remove(&self, name: &str) -> Result<()>;
    /// Runs a backup schedule now. Progress: containers done of all, a line each.
    fn backup_schedule_run(
        &self,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<crate::backup::ScheduleRun>;

    /// Applies a network change alone (kept for `set` callers that have only that).
    fn set_network(&self, ct: &CtRef, change: NetChange) -> Result<NetConfig> {
        let r = self.set(
            ct,
            SetRequest {
                net: change,
                ..Default::default()
            },
        )?;
        r.net
            .ok_or_else(|| crate::Error::internal("set returned no network configuration"))
    }
}

#[cfg(test)]
mod console_key_tests {
    use super::parse_escape;

    #[test]
    fn escape_keys() {
        assert_eq!(parse_escape("^a"), Some(1));
        assert_eq!(parse_escape("ctrl-b"), Some(2));
        assert_eq!(parse_escape("^]"), None);
        assert_eq!(parse_escape("~"), Some(b'~'));
        assert_eq!(parse_escape("ab"), None);
    }

    #[test]
    fn escape_filter() {
        let mut f = super::EscapeFilter::new(Some(1));
        let mut out = vec![];
        assert!(!f.feed(b"ab\x01\x01c\x01", &mut out));
        assert_eq!(out, b"ab\x01c");
        out.clear();
        assert!(!f.feed(b"x", &mut out));
        assert_eq!(out, b"\x01x");
        out.clear();
        assert!(f.feed(b"ls\x01qrest", &mut out));
        assert_eq!(out, b"ls");
        let mut none = super::EscapeFilter::new(None);
        out.clear();
        assert!(!none.feed(b"\x01q", &mut out));
        assert_eq!(out, b"\x01q");
    }
}
