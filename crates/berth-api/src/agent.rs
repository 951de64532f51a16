//! Wire types of the node agent (berthd): operations, events, users and tokens, and the REST
//! route table that the server and its clients share.

use crate::error::Error;
use serde::{Deserialize, Serialize};

/// The version prefix of every REST route.
pub const API_PREFIX: &str = "/api/v1";

/// State of a long operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    Running,
    Succeeded,
    Failed,
    /// Cancelled by a user; its work was rolled back.
    Cancelled,
}

/// How far a long operation is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperationProgress {
    /// What it is doing now (`unpacking`, `copying`, …).
    #[serde(default)]
    pub phase: String,
    /// Units (bytes, files) done, and the total when known.
    #[serde(default)]
    pub done: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Files done so far, when the units are something else (a backup's bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

/// A long operation (create, template create or import, later backups, restores,
/// migrations): `202 Accepted` + `Location: /api/v1/operations/ID` at once, then polled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Operation {
    pub id: String,
    /// `container.create`, `template.create`, …
    pub kind: String,
    /// The object it acts on (`container/101`, `template/debian12`).
    pub object: String,
    pub user: String,
    pub state: OperationState,
    pub progress: OperationProgress,
    /// Unix time, seconds.
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<u64>,
    /// What the operation returned (the created container's info…), once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
    /// Whether `DELETE /operations/ID` can cancel it now.
    #[serde(default)]
    pub cancellable: bool,
}

/// One entry of the node's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Increasing from 1 in a node root (resumes after restarts).
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time_ms: u64,
    /// `container`, `template`, `network`, `node`, `operation`, `auth`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `created`, `started`, `stopped`, `oom_kill`, `crashed`, `config_changed`,
    /// `destroyed`, `login`, `login_failed`, `finished`, …
    pub action: String,
    /// `container/101`, `user/alice`, `operation/ID`.
    pub object: String,
    /// Who did it (`root` for the local CLI, the API user, `berthd` for its own acts).
    pub user: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// What a user of the API may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Everything read-only.
    Auditor,
    /// Only the listed containers (the seed's Power Panel user); any other answers 404.
    Owner,
    /// A client node's access to its backup store on this node (the seed's backup node):
    /// only `/backup-store/{its own name}/…`, the restic REST protocol; nothing else.
    Backup,
}

/// A backup user's limits on its store (`user add --role backup`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StoreLimits {
    /// Nothing stored can be deleted or overwritten through the API (lock files aside): a
    /// client node that is taken over cannot destroy its backups. Retention (forget,
    /// prune) then needs an administrator of this node.
    #[serde(default)]
    pub append_only: bool,
    /// The most bytes the store may hold (absent: bounded only by the node's free space).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<u64>,
}

/// One file of a store as `GET /backup-store/{store}/{type}/` lists it (restic REST v2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreFile {
    /// 64 hex digits.
    pub name: String,
    pub size: u64,
}

/// `GET /backup-store`: the caller's store on this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreInfo {
    /// The store's name (its user's); its repository is at `/backup-store/{store}/`.
    pub store: String,
    pub limits: StoreLimits,
    /// Bytes it holds now.
    pub used: u64,
    /// Whether it holds a repository yet (its `config`).
    pub initialised: bool,
}

/// A user of the API as listed (never with the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    pub name: String,
    pub role: Role,
    /// CTIDs an owner may act on (empty for other roles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<u32>,
    pub created: u64,
    /// An owner's container quota (clones of his own count against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_containers: Option<u32>,
    /// A backup user's store limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreLimits>,
}

/// `user add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserAdd {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub containers: Vec<u32>,
    /// Absent: the user logs in with tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// An owner's container quota (absent: he makes none of his own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_containers: Option<u32>,
    /// A backup user's store limits (only for role `backup`; absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreLimits>,
}

/// An API token as listed (its secret is shown once, at creation, and stored hashed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub name: String,
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// `token create`: the new token's secret, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewToken {
    pub info: TokenInfo,
    pub secret: String,
}

/// Server → client binary frames of the exec websocket: the first byte says the stream.
pub const EXEC_STDOUT: u8 = 1;
/// See [`EXEC_STDOUT`].
pub const EXEC_STDERR: u8 = 2;

/// The REST routes (under [`API_PREFIX`]) and the operation of [`crate::Node`] each serves.
/// `{ct}` is a CTID or name, validated like CLI input. Bodies and answers are the JSON of
/// the named wire types; every error is an [`crate::ErrorBody`] with the kind's status.
///
/// Authentication: `Authorization: Bearer TOKEN` (over the unix socket, the peer's
/// credentials instead).
///
/// The exec websocket (`GET /containers/{ct}/exec`), frame by frame:
/// - A request the node refuses before running anything (no such container, not running,
///   not allowed) is answered without the upgrade: the error's status and `ErrorBody`.
/// - client → server, first: a text frame, the JSON [`crate::ExecRequest`]; `tty` is always
///   set by the client (its own stdin and stdout decide); an empty `command` is `enter`
///   (a login shell).
/// - client → server, then: binary frames = stdin bytes, an empty binary frame = end of
///   stdin; text frames `{"resize": {"rows": R, "cols": C}}` (with a tty, at the start and
///   on each SIGWINCH).
/// - server → client: binary frames whose first byte is [`EXEC_STDOUT`] or [`EXEC_STDERR`]
///   and the rest that stream's bytes (with a tty everything is stdout); last a text frame
///   `{"exit": N}` (the command's exit code, 128+signal when killed), or `{"error":
///   Error}` when it could not be run after the upgrade.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/containers?all=BOOL", "list -> [ContainerInfo]"),
    ("POST", "/containers", "create(CreateOptions) -> 202 Operation (result ContainerInfo)"),
    ("GET", "/containers/{ct}", "status -> ContainerInfo"),
    ("PATCH", "/containers/{ct}", "set(SetRequest) -> SetResult"),
    ("DELETE", "/containers/{ct}?force=BOOL", "destroy -> 204"),
    ("POST", "/containers/{ct}/start", "start -> StartResult"),
    ("POST", "/containers/{ct}/stop", "stop(StopOptions) -> 204"),
    ("POST", "/containers/{ct}/restart", "restart(StopOptions) -> ContainerInfo"),
    ("POST", "/containers/{ct}/suspend", "suspend -> 204"),
    ("POST", "/containers/{ct}/resume", "resume -> 204"),
    ("POST", "/containers/{ct}/compact", "compact -> {\"reclaimed\": u64}"),
    ("POST", "/containers/{ct}/clone", "clone(CloneOptions) -> 202 Operation (result CloneResult)"),
    ("POST", "/containers/{ct}/backups", "backup_create(BackupCreate) -> 202 Operation (result BackupResult; admin)"),
    ("GET", "/backups?ct=N&repo=R&since=SECS&hostname=H&tag=T", "backup_list -> [BackupEntry] (admin, auditor)"),
    ("GET", "/backups/repos", "backup_repos -> Repos (admin, auditor)"),
    ("POST", "/backups/repos", "backup_repo_add(RepoAdd) -> RepoAdded (admin)"),
    ("DELETE", "/backups/repos/{name}", "backup_repo_remove -> 204 (admin)"),
    ("PUT", "/backups/repos/{name}/default", "backup_repo_default -> 204 (admin)"),
    ("POST", "/backups/verify", "backup_verify(VerifyRequest) -> 202 Operation (result VerifyResult; admin)"),
    ("GET", "/backups/schedules", "backup_schedules -> [ScheduleInfo] (admin, auditor)"),
    ("POST", "/backups/schedules", "backup_schedule_add(Schedule) -> ScheduleInfo (admin)"),
    ("DELETE", "/backups/schedules/{name}", "backup_schedule_remove -> 204 (admin)"),
    ("POST", "/backups/schedules/{name}/run", "backup_schedule_run -> 202 Operation (result ScheduleRun; admin)"),
    ("GET", "/backups/{ct}/files?path=P&recursive=BOOL&repo=R&snapshot=S", "backup_ls -> BackupListing (admin, auditor)"),
    ("POST", "/backups/{ct}/restore", "backup_restore(BackupRestore) -> 202 Operation (result RestoreResult; admin)"),
    ("POST", "/backups/{ct}/restore-files", "backup_restore_files(RestoreFiles) -> 202 Operation (result FilesRestored; admin)"),
    ("POST", "/backups/{ct}/forget", "backup_forget(ForgetRequest) -> 202 Operation (result ForgetResult; admin)"),
    ("POST", "/containers/{ct}/migrate", "migrate_ct(MigrateRequest) -> 202 Operation (result MigrateResult; admin; cancellable until the switch-over)"),
    ("POST", "/containers/{ct}/move", "move(MoveOptions) -> ContainerInfo (admin)"),
    ("GET", "/backup-store", "store_info -> StoreInfo (backup users: their own store)"),
    ("POST", "/backup-store/{store}/?create=true", "store_create -> 200 (the restic rest protocol v2 from here on: makes the store's repository; admin or the store's backup user)"),
    ("GET", "/backup-store/{store}/config", "store_config -> application/octet-stream (head: its size)"),
    ("POST", "/backup-store/{store}/config", "store_config_write(application/octet-stream) -> 200 (with its length; once in an append-only store)"),
    ("GET", "/backup-store/{store}/{type}/", "store_list -> [StoreFile] (type: data, keys, locks, snapshots or index; names only without accept: application/vnd.x.restic.rest.v2)"),
    ("GET", "/backup-store/{store}/{type}/{name}", "store_read -> application/octet-stream (a part with range: bytes=a-b; head: its size)"),
    ("POST", "/backup-store/{store}/{type}/{name}", "store_write(application/octet-stream) -> 200 (with its length; the name is the content's sha-256; 403 past an append-only store's rules, 413 past its quota or the node's reserve)"),
    ("DELETE", "/backup-store/{store}/{type}/{name}", "store_remove -> 200 (an append-only store: locks only)"),
    ("POST", "/migrations/templates/{name}?hash=H", "receive_template(application/octet-stream) -> TemplateManifest (admin; the body: a tar of the template's files, kept only if their content hash is H)"),
    ("POST", "/migrations/incoming", "receive_ct(application/octet-stream) -> ContainerInfo | null (admin; the body: an IncomingHeader frame, then the disk's block frames)"),
    ("GET", "/containers/{ct}/traffic", "traffic -> Traffic | null"),
    ("GET", "/containers/{ct}/console?follow=BOOL&timestamps=BOOL", "console -> text/plain (streamed)"),
    ("GET", "/containers/{ct}/console/attach", "console_attach: websocket; binary frames both ways (input; the console's output), text {\"resize\":TtySize}, last text {\"end\":ConsoleEnd} or {\"error\":Error}; closing detaches; a second caller gets {\"error\"} with kind conflict"),
    ("GET", "/containers/{ct}/exec", "exec: websocket; first text frame ExecRequest, then binary stdin/stdout (an empty binary frame closes stdin), text {\"resize\":TtySize}, last text {\"exit\":i32} or {\"error\":Error}"),
    ("GET", "/containers/{ct}/processes", "ps -> [ProcInfo]"),
    ("POST", "/containers/{ct}/processes/{pid}/signal", "kill({\"signal\": S}) -> ProcInfo"),
    ("GET", "/containers/{ct}/services", "service_list -> ServiceList"),
    ("GET", "/containers/{ct}/services/{name}", "service_status -> ServiceStatus"),
    ("PUT", "/containers/{ct}/services/{name}", "service_add(AddService) -> {\"startup\": Startup}"),
    ("DELETE", "/containers/{ct}/services/{name}", "service_remove -> 204"),
    ("POST", "/containers/{ct}/services/{name}/{action}", "service_action(start|stop|restart) -> 204"),
    ("PUT", "/containers/{ct}/services/{name}/startup", "service_set_startup({\"startup\": S}) -> 204"),
    ("GET", "/containers/{ct}/services/{name}/logs", "service_logs -> application/octet-stream"),
    ("GET", "/containers/{ct}/init", "init_mode -> {\"init\": InitMode}"),
    ("GET", "/containers/{ct}/users", "ct_user_list -> [CtUser]"),
    ("POST", "/containers/{ct}/users", "ct_user_add(CtUserAdd) -> CtUser"),
    ("DELETE", "/containers/{ct}/users/{name}", "ct_user_del -> 204"),
    ("PUT", "/containers/{ct}/users/{name}/password", "ct_user_passwd(CtPassword) -> CtUser (the password in the body only)"),
    ("GET", "/containers/{ct}/groups", "ct_group_list -> [CtGroup]"),
    ("POST", "/containers/{ct}/groups", "ct_group_add(CtGroupAdd) -> CtGroup"),
    ("DELETE", "/containers/{ct}/groups/{name}", "ct_group_del -> 204"),
    ("GET", "/containers/{ct}/files?path=PATH", "file_list -> [FileEntry]"),
    ("GET", "/containers/{ct}/files/stat?path=PATH", "file_stat -> FileEntry"),
    ("DELETE", "/containers/{ct}/files?path=PATH", "file_remove -> 204"),
    ("GET", "/containers/{ct}/files/content?path=PATH", "file_pull -> application/octet-stream (its FileEntry in the x-berth-file header as percent-encoded JSON)"),
    ("PUT", "/containers/{ct}/files/content?path=PATH&mode=OCTAL&uid=N&gid=N", "file_push(application/octet-stream) -> FileEntry"),
    ("GET", "/stats?ct=CT&ct=CT&sample_ms=N", "stats -> [ContainerStats]"),
    ("GET", "/processes?sample_ms=N", "top -> [ProcInfo]"),
    ("GET", "/processes/{host_pid}", "which -> WhichInfo"),
    ("GET", "/templates", "template_list -> [TemplateManifest]"),
    ("POST", "/templates", "template_create({\"name\", \"source\": TemplateSource}) -> 202 Operation"),
    ("GET", "/templates/{name}", "template_info -> TemplateManifest"),
    ("DELETE", "/templates/{name}", "template_remove -> 204"),
    ("GET", "/networks", "network_list -> [NetworkInfo]"),
    ("POST", "/networks", "network_create(NetworkConfig) -> 201"),
    ("GET", "/networks/{name}", "network_info -> NetworkInfo"),
    ("DELETE", "/networks/{name}", "network_delete -> 204"),
    ("GET", "/node", "node_info -> NodeInfo"),
    ("PATCH", "/node", "node_set(NodeSettings) -> 204"),
    ("GET", "/node/config", "node_config -> NodeConfigInfo"),
    ("POST", "/node/boot", "node_boot -> [BootEntry]"),
    ("GET", "/node/adapters", "node_adapters -> [Adapter]"),
    ("GET", "/node/services", "host_services -> [HostService]"),
    ("GET", "/samples", "sample_list -> [ConfigSample]"),
    ("GET", "/samples/{name}", "sample_info -> ConfigSample"),
    ("PUT", "/samples/{name}", "sample_save(ConfigSample) -> 204"),
    ("DELETE", "/samples/{name}", "sample_remove -> 204"),
    ("GET", "/operations", "-> [Operation]"),
    ("GET", "/operations/{id}", "-> Operation"),
    ("DELETE", "/operations/{id}", "cancel -> Operation"),
    ("GET", "/events?since=SECONDS&type=T&follow=BOOL", "-> [Event] | text/event-stream"),
    ("GET", "/users", "-> [UserInfo] (admin)"),
    ("POST", "/users", "UserAdd -> UserInfo (admin)"),
    ("DELETE", "/users/{name}", "-> 204 (admin)"),
    ("GET", "/tokens", "-> [TokenInfo] (own; admin: all)"),
    ("POST", "/tokens", "{\"name\", \"user\"?, \"expires_s\"?} -> NewToken"),
    ("DELETE", "/tokens/{id}", "-> 204"),
    ("POST", "/login", "{\"user\", \"password\"} -> session cookie + {\"csrf\": T}"),
    ("POST", "/logout", "-> 204"),
    ("GET", "/openapi.json", "the OpenAPI document"),
];
