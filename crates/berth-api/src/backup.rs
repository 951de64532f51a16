//! Backups' wire types (docs/backups.md): repositories, snapshots, and the requests of
//! `backup create|list|ls|restore|restore-files|forget|verify`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The node's repositories (`backups/repos.toml`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Repos {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, rename = "repo")]
    pub repos: Vec<RepoEntry>,
}

/// One repository: a directory or a store on a backup node, and where its password is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepoEntry {
    pub name: String,
    /// The directory (empty for a repository on a backup node).
    #[serde(default, skip_serializing_if = "is_empty_path")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub path: PathBuf,
    /// The password file given at `repo add`; absent: `backups/keys/<name>.key`, made then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub password_file: Option<PathBuf>,
    /// A repository held by another node's berthd (its token in `backups/keys/<name>.token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<RepoNode>,
}

fn is_empty_path(p: &std::path::Path) -> bool {
    p.as_os_str().is_empty()
}

/// Where a repository on a backup node is: its berthd and the store there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RepoNode {
    /// `https://HOST:PORT` of the backup node's berthd.
    pub url: String,
    /// The SHA-256 of its certificate (hex), the only one trusted.
    pub fingerprint: String,
    /// The store's name there (its backup user's).
    pub store: String,
    /// The store keeps everything (as its node said at `repo add`): a live backup's first
    /// pass stays in it (tagged `berth:partial`, never listed), and forget is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append_only: bool,
}

/// `repo add --node`: a backup node and the backup user's token there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RepoNodeAdd {
    pub url: String,
    pub fingerprint: String,
    /// A token of a user with role `backup` on that node (kept root-only on this one).
    pub token: String,
}

/// `backup repo add`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepoAdd {
    pub name: String,
    /// An absolute path on the node (empty with `node`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub password_file: Option<PathBuf>,
    /// A store on a backup node instead of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<RepoNodeAdd>,
}

/// What `repo add` did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepoAdded {
    pub repo: RepoEntry,
    /// Notes for the user (a key made, an existing repository opened).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// How a running container is kept consistent while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    /// Read while it runs, then frozen for a second pass of what changed.
    #[default]
    Live,
    /// Frozen for the whole read.
    Suspend,
    /// Stopped, read, started again.
    Stop,
}

impl std::str::FromStr for BackupMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "live" => Ok(BackupMode::Live),
            "suspend" => Ok(BackupMode::Suspend),
            "stop" => Ok(BackupMode::Stop),
            _ => Err(crate::Error::invalid(format!(
                "--mode {s:?}: live, suspend or stop"
            ))),
        }
    }
}

impl std::fmt::Display for BackupMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackupMode::Live => "live",
            BackupMode::Suspend => "suspend",
            BackupMode::Stop => "stop",
        })
    }
}

/// `backup create`'s options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupCreate {
    /// The repository (default: the node's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default)]
    pub mode: BackupMode,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Read every file again instead of trusting the last backup's metadata.
    #[serde(default)]
    pub full: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Store the container's templates too (once per content hash in a repository), so
    /// that it restores on a node without them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_templates: bool,
    /// Refused (`412`) when the container already has this many backups in the repository,
    /// made since it was created and not by a schedule (checked under the container's lock,
    /// so concurrent backups cannot pass it together). berthd sets it for an owner to the
    /// node's maximum per container, whatever he sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<u32>,
}

/// One snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    /// Full id (64 hex digits); the first 8 are restic's short form.
    pub id: String,
    /// Seconds since the epoch.
    pub time: i64,
    pub hostname: String,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Files and bytes in the snapshot.
    pub files: u64,
    pub bytes: u64,
    /// Bytes the backup added to the repository (after deduplication and compression).
    pub added: u64,
    /// Files the backup read (new or changed since its parent).
    pub files_read: u64,
}

impl Snapshot {
    pub fn short(&self) -> &str {
        &self.id[..8.min(self.id.len())]
    }
}

/// What a backup did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupResult {
    pub ctid: u32,
    pub repo: String,
    pub snapshot: Snapshot,
    /// How long the container was frozen (or stopped), if it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_ms: Option<u64>,
    pub mode: BackupMode,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// With `with_templates`: each template as `NAME blake3:…` and whether this backup
    /// stored it or the repository held it already.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<String>,
}

/// A snapshot of a repository, with the container it holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupEntry {
    pub repo: String,
    pub ctid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub snapshot: Snapshot,
}

/// `backup list`'s filter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BackupFilter {
    pub repo: Option<String>,
    pub ctid: Option<u32>,
    /// Only snapshots at or after this time (seconds since the epoch).
    pub since: Option<i64>,
    pub hostname: Option<String>,
    pub tag: Option<String>,
    /// Only backups of the containers that hold their CTIDs now (made since each was
    /// created; none of a CTID no container holds). berthd sets it for owners.
    pub current_only: bool,
}

/// An entry of a backup's tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupFile {
    /// Path below the listed directory.
    pub path: String,
    /// `file`, `dir`, `symlink`, `chardev`, `blockdev`, `fifo`, `socket`.
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `backup ls`: the snapshot and its entries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupListing {
    pub snapshot: Snapshot,
    pub entries: Vec<BackupFile>,
}

/// `backup restore`'s options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupRestore {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// The snapshot (full id or a unique prefix); the container's latest by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Restore as a new container (new ID range, MACs and addresses, like a clone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_ctid: Option<u32>,
    /// Only backups of the container that holds the CTID now (made since it was created):
    /// not a former container's of the same CTID. berthd sets it for owners.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub current_only: bool,
    /// Replace the existing, stopped container of the same CTID.
    #[serde(default)]
    pub force: bool,
    /// With `as_ctid`: keep the backup's MACs and addresses (the original is gone) instead of
    /// new ones from the network's pool.
    #[serde(default)]
    pub keep_network: bool,
    /// With `force`: restore only the files; the container keeps its current config
    /// (limits, network, name, services). Always so for an owner's restore.
    #[serde(default)]
    pub keep_config: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreResult {
    /// The restored container (stopped).
    pub ctid: u32,
    pub snapshot: Snapshot,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// `backup restore-files`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreFiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Paths inside the container.
    pub paths: Vec<String>,
    /// A new or empty directory on the node, made root-only (administrators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub to: Option<PathBuf>,
    /// Or back into this container, at the same paths (written in its own view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_container: Option<u32>,
    /// Only backups of the container that holds the CTID now (made since it was created):
    /// not a former container's of the same CTID. berthd sets it for owners.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub current_only: bool,
}

/// What `restore-files` did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FilesRestored {
    pub snapshot: Snapshot,
    pub files: u64,
    pub bytes: u64,
    /// Entries not written into a container: devices, FIFOs, sockets, and the marks of
    /// files deleted before the backup.
    #[serde(default)]
    pub skipped: u64,
}

/// A retention policy (restic's `--keep-*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Keep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
}

impl Keep {
    pub fn is_empty(&self) -> bool {
        self == &Keep::default()
    }
}

/// `backup forget`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgetRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Leave the backups of schedules (tagged `schedule:…`) alone. berthd sets it for owners.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual_only: bool,
    /// Only the backups carrying this tag (e.g. `schedule:nightly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Only backups of the container that holds the CTID now (made since it was created):
    /// not a former container's of the same CTID. berthd sets it for owners.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub current_only: bool,
    pub keep: Keep,
    /// Free the data no snapshot uses any more.
    #[serde(default)]
    pub prune: bool,
}

/// What `forget` did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgetResult {
    pub kept: Vec<String>,
    pub removed: Vec<String>,
    /// Bytes pruning freed (0 without `prune`).
    pub freed: u64,
}

/// `backup verify`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Also read and verify this share of the data, in percent (100: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_data: Option<f64>,
}

/// What `verify` checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyResult {
    pub repo: String,
    pub read_data: Option<f64>,
}

/// The tag a schedule's backups carry: `schedule:<name>`.
pub const SCHEDULE_TAG: &str = "schedule:";

/// Whether a snapshot with these tags was made by a schedule.
pub fn by_schedule(tags: &[String]) -> bool {
    tags.iter().any(|t| t.starts_with(SCHEDULE_TAG))
}

/// A backup schedule (`berth backup schedule add`), run by berthd at its local times.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    pub name: String,
    /// Every container of the node at each run (`--containers all`).
    #[serde(default)]
    pub all: bool,
    /// Or these CTIDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<u32>,
    /// Local times of day, `HH:MM`.
    pub at: Vec<String>,
    /// `mon`…`sun`; empty: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// The repository (default: the node's default at each run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default)]
    pub mode: BackupMode,
    /// Retention applied after each run to the container's backups of this schedule.
    #[serde(default, skip_serializing_if = "Keep::is_empty")]
    pub keep: Keep,
    /// Free unused data after the retention (`forget --prune`).
    #[serde(default)]
    pub prune: bool,
    /// More tags on each snapshot (besides `schedule:<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Containers backed up at once (1–8; default 2).
    #[serde(default = "default_parallel")]
    pub parallel: u32,
    /// Store the containers' templates too (`backup create --with-templates`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_templates: bool,
}

fn default_parallel() -> u32 {
    2
}

/// A schedule with when it runs next and how its last run went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleInfo {
    pub schedule: Schedule,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<ScheduleRun>,
}

/// One run of a schedule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleRun {
    pub schedule: String,
    /// Seconds since the epoch.
    pub started: i64,
    pub finished: i64,
    pub backed_up: Vec<ScheduleItem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<ScheduleFailure>,
}

impl ScheduleRun {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// A container a run backed up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleItem {
    pub ctid: u32,
    pub repo: String,
    /// The new snapshot's id.
    pub snapshot: String,
    /// Snapshots the retention removed.
    #[serde(default)]
    pub forgotten: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A container a run could not back up, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleFailure {
    pub ctid: u32,
    pub error: String,
}
