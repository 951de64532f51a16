//! The wire types of container, template and node operations (the trait is [`crate::Node`]).

use crate::resources::{Resources, SoftHardCount, SoftHardSize};
use crate::validate::{CtId, Size};
use serde::{Deserialize, Serialize};

/// Runtime status of a container. Serialised lowercase: a stable interface for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CtStatus {
    Running,
    Stopped,
    Suspended,
    /// Its `config.toml` is refused (malformed, invalid, or another container's): nothing
    /// but `destroy` acts on it; `reason` says why.
    Broken,
}

impl std::fmt::Display for CtStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            CtStatus::Running => "running",
            CtStatus::Stopped => "stopped",
            CtStatus::Suspended => "suspended",
            CtStatus::Broken => "broken",
        })
    }
}

/// One container as `list` and `status` report it. Field names are a stable interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerInfo {
    pub ctid: CtId,
    pub name: Option<String>,
    pub status: CtStatus,
    pub ostemplate: String,
    pub hostname: String,
    pub privileged: bool,
    /// Seconds since the container (last) booted; absent when stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<u64>,
    /// Host PID of the container's init; absent when stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_pid: Option<i32>,
    /// First host UID of the container's ID range; absent for privileged containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid_base: Option<u32>,
    pub diskspace: Size,
    /// The virtual disk's filesystem (`create --fstype`).
    #[serde(default)]
    pub fstype: crate::config::DiskFs,
    /// Expanding (sparse) or fixed (preallocated) virtual disk (`create --disktype`).
    #[serde(default)]
    pub disktype: crate::config::DiskType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Start at node boot.
    #[serde(default)]
    pub onboot: bool,
    /// CPU, memory, process and I/O limits (vzctl names).
    #[serde(default)]
    pub resources: Resources,
    /// Its IPv4 addresses (adapters' first, then host-routed ones), without prefix length.
    #[serde(default)]
    pub ip: Vec<String>,
    /// The virtual networks its adapters are on.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Higher starts earlier at node boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootorder: Option<u32>,
    /// Settings saved but not yet in effect: they wait for the next start (`set
    /// --setmode ignore`, or changes a running container cannot take live).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// Why the container is `broken` (absent otherwise). A broken container's other fields
    /// but `ctid`, `uptime` and `init_pid` are placeholders: its config is not believed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Options of `create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateOptions {
    pub ctid: Option<CtId>,
    pub ostemplate: String,
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub description: Option<String>,
    /// Virtual disk size (`soft:hard`; default: the node's default).
    pub diskspace: Option<SoftHardSize>,
    /// Inode count of the virtual disk (`soft:hard`; default: mkfs's, one per 16K).
    pub diskinodes: Option<SoftHardCount>,
    /// The virtual disk's filesystem (default: the node's `default_fstype`, ext4).
    #[serde(default)]
    pub fstype: Option<crate::DiskFs>,
    /// Expanding (default) or fixed (preallocated) virtual disk.
    #[serde(default)]
    pub disktype: Option<crate::DiskType>,
    pub privileged: bool,
    /// CPU, memory, process and I/O limits.
    pub resources: Resources,
    /// The container's PID 1: Berth's supervisor, the template's init, or auto (issue 5).
    #[serde(default)]
    pub init: crate::services::InitMode,
}

/// Options of `clone` (docs/clone.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CloneOptions {
    /// The clone's CTID (default: the lowest free one).
    #[serde(default)]
    pub ctid: Option<CtId>,
    /// The clone's name (default: none; names are unique on a node).
    #[serde(default)]
    pub name: Option<String>,
    /// The clone's hostname (default: the source's).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Keep the source's MACs, addresses and port forwards: the clone then starts only
    /// once the source has given them up (a stand-by copy). By default each adapter gets a
    /// new MAC and the next free address of its network, and host-routed addresses and
    /// port forwards are dropped.
    #[serde(default)]
    pub keep_network: bool,
}

/// Options of `move` (docs/clone.md, "Renumbering").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MoveOptions {
    /// The container's new CTID (it must be stopped).
    pub ctid: CtId,
}

/// What a node receiving a migrated container is told first (`POST /migrations/incoming`,
/// a length-prefixed JSON frame before the disk's block frames; docs/clone.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IncomingHeader {
    /// The container's `config.toml` on the source, as text; validated like a file.
    pub config: String,
    /// The CTID on this node (default: the source's).
    #[serde(default)]
    pub ctid: Option<CtId>,
    /// Bytes of data in the source's disk (the room this node must have).
    pub allocated: u64,
    /// Start it once its disk is whole.
    #[serde(default)]
    pub start: bool,
    /// Only check that it could come (template, networks, CTID, name, addresses, room):
    /// nothing is made and no frames follow.
    #[serde(default)]
    pub check_only: bool,
    /// The source node's name (for the target's events and log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The templates the container lies on, with their content hashes (`blake3:…`): the
    /// target's of the same name must have the same content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateRef>,
}

/// A template by name and content hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub name: String,
    pub hash: String,
}

impl IncomingHeader {
    /// Its frame, first in the body: `H`, the JSON's length (u32, big-endian), the JSON.
    pub fn frame(&self) -> Vec<u8> {
        let j = serde_json::to_vec(self).expect("a header serialises");
        let mut v = vec![b'H'];
        v.extend((j.len() as u32).to_be_bytes());
        v.extend(j);
        v
    }

    /// Reads [`Self::frame`] (at most 1 MiB of JSON); why not, as one line.
    pub fn read_frame(input: &mut dyn std::io::Read) -> Result<Self, String> {
        let mut h = [0u8; 5];
        input
            .read_exact(&mut h)
            .map_err(|e| format!("no migration header: {e}"))?;
        if h[0] != b'H' {
            return Err("the body does not start with a migration header".into());
        }
        let n = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        if n > 1 << 20 {
            return Err(format!("a migration header of {n} bytes"));
        }
        let mut j = vec![0u8; n];
        input
            .read_exact(&mut j)
            .map_err(|e| format!("a cut migration header: {e}"))?;
        serde_json::from_slice(&j).map_err(|e| format!("the migration header: {e}"))
    }
}

/// Options of `migrate` (offline: a running container is stopped, copied, started on the
/// target; online: its disk copied while it runs, then frozen for the last pass).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MigrateOptions {
    /// The CTID on the target (default: the same).
    #[serde(default)]
    pub ctid: Option<CtId>,
    /// Keep the source, stopped, instead of destroying it.
    #[serde(default)]
    pub keep_source: bool,
    /// Copy a running container's disk while it runs, stopping it only for the last round
    /// (else it is stopped first).
    #[serde(default)]
    pub online: bool,
    /// A cap on the disk stream, bytes per second (`--bandwidth 50M`; none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
    /// Adapters on network KEY here join network VALUE on the target (`--network-map`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub network_map: std::collections::BTreeMap<String, String>,
}

/// The node a container migrates to, as the caller's `berth remote` names it: the source
/// connects to it with these for this migration only (never stored, never logged).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MigrateTarget {
    /// `https://HOST:PORT` of the target's berthd.
    pub url: String,
    /// SHA-256 of the target's certificate, 64 hex digits (pinned as by `berth remote`).
    pub fingerprint: String,
    /// An admin token on the target.
    pub token: String,
    /// The target's name, for messages and events (`node2`).
    #[serde(default)]
    pub name: String,
}

impl std::fmt::Debug for MigrateTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateTarget")
            .field("url", &self.url)
            .field("fingerprint", &self.fingerprint)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `POST /containers/{ct}/migrate`: where to, and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    pub target: MigrateTarget,
    #[serde(default)]
    pub options: MigrateOptions,
}

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrateResult {
    /// The container on the target.
    pub info: ContainerInfo,
    /// Passes over the disk (live passes and the last one).
    pub rounds: u32,
    /// Bytes of the disk stream (compressed blocks and frames).
    pub bytes_sent: u64,
    /// From the source's freeze (online) or stop (offline) to the target's start; `None`
    /// for a container that was not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    /// The source was kept, stopped (`keep_source`).
    #[serde(default)]
    pub source_kept: bool,
}

/// Options of `exec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecOptions {
    /// `KEY=VALUE` pairs added to (or replacing in) the container's default environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// `Some(true)`: a pseudo-terminal; `Some(false)`: none; `None`: a pseudo-terminal when
    /// the caller's stdin and stdout are terminals.
    #[serde(default)]
    pub tty: Option<bool>,
    /// Working directory inside the container (default `/`).
    #[serde(default)]
    pub cwd: Option<String>,
}

impl ExecOptions {
    /// Refuses environment entries that are not `KEY=VALUE` with a shell-style key, and a
    /// working directory that is not an absolute path.
    pub fn validate(&self) -> Result<(), crate::InputError> {
        let bad = |v: &str, what: &'static str, why: &str| {
            crate::InputError::InvalidValue(v.to_string(), what, why.to_string())
        };
        for kv in &self.env {
            let Some((k, _)) = kv.split_once('=') else {
                return Err(bad(kv, "--env", "expected KEY=VALUE"));
            };
            let ok_key = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok_key {
                return Err(bad(
                    kv,
                    "--env",
                    "the name must be letters, digits and _, not starting with a digit",
                ));
            }
            if kv.contains('\0') {
                return Err(bad(kv, "--env", "NUL bytes are not allowed"));
            }
        }
        if let Some(d) = &self.cwd {
            if !d.starts_with('/') || d.contains('\0') {
                return Err(bad(
                    d,
                    "--cwd",
                    "an absolute path inside the container is needed",
                ));
            }
        }
        Ok(())
    }
}

/// Options of `stop`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StopOptions {
    /// Seconds to wait for a clean shutdown before killing.
    pub timeout: u64,
    /// Kill at once, without asking init to shut down.
    pub kill: bool,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions {
            timeout: 60,
            kill: false,
        }
    }
}

/// Where a template comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TemplateSource {
    /// The embedded default, built from the host's static busybox.
    Busybox,
    /// A rootfs tarball on the node (over the REST API, by its absolute path).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    Tarball(std::path::PathBuf),
    /// debootstrap of a Debian suite, optionally from a given mirror.
    Debootstrap {
        suite: String,
        mirror: Option<String>,
    },
}

/// What `set` did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetOutcome {
    /// Applied to the running container at once.
    pub applied_live: bool,
    /// The container was restarted (`--setmode restart`).
    pub restarted: bool,
    /// Saved only: takes effect at the next start (`--setmode ignore`).
    pub pending_restart: bool,
    /// Notes for the user (e.g. overcommit).
    pub notes: Vec<String>,
}

/// A container's resource usage against its limits, as `berth stats` shows it. Field names are
/// a stable interface. Usage fields are absent when they cannot be read (e.g. stopped).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerStats {
    pub ctid: CtId,
    pub name: Option<String>,
    pub status: Option<CtStatus>,
    /// CPU use over the sampling interval, in percent of one CPU (200 = two CPUs busy).
    pub cpu_percent: Option<f64>,
    /// CPU time used since start, in seconds.
    pub cpu_seconds: Option<f64>,
    /// `--cpulimit` in percent of one CPU; absent = unlimited.
    pub cpulimit: Option<u32>,
    /// CPUs the container may run on (cpuset list); absent = all.
    pub cpuset: Option<String>,
    pub memory_used: Option<u64>,
    /// Absent = unlimited.
    pub memory_limit: Option<u64>,
    pub swap_used: Option<u64>,
    pub swap_limit: Option<u64>,
    /// Processes killed by the out-of-memory killer inside the container since start.
    pub oom_kills: Option<u64>,
    pub processes: Option<u64>,
    /// Absent = unlimited.
    pub numproc: Option<u64>,
    pub disk_used: Option<u64>,
    pub disk_limit: u64,
    pub disk_soft: Option<u64>,
    pub inodes_used: Option<u64>,
    pub inodes_limit: Option<u64>,
    pub inodes_soft: Option<u64>,
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    pub io_read_ops: Option<u64>,
    pub io_write_ops: Option<u64>,
    /// Network traffic into the container since start (all its adapters).
    pub net_rx_bytes: Option<u64>,
    pub net_rx_packets: Option<u64>,
    /// Network traffic out of the container since start.
    pub net_tx_bytes: Option<u64>,
    pub net_tx_packets: Option<u64>,
    /// Limits exceeded or nearly exhausted (soft limits, OOM kills, process limit).
    pub warnings: Vec<String>,
}

/// The node's capacity and what its containers were promised (`berth node info`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeInfo {
    pub node_id: String,
    pub root: String,
    /// SHA-256 of berthd's node certificate (64 hex digits), what `berth remote add`
    /// pins; absent until berthd first started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_fingerprint: Option<String>,
    pub kernel: String,
    pub cgroup: String,
    pub cpus: u32,
    pub memory: u64,
    pub swap: u64,
    pub disk_total: u64,
    pub disk_free: u64,
    pub containers: u32,
    pub running: u32,
    /// Sum of `--ram` of containers with a memory limit.
    pub promised_ram: u64,
    /// Containers without a memory limit.
    pub unlimited_ram: u32,
    /// Sum of `--cpulimit` (percent of one CPU); containers without a limit count their CPUs.
    pub promised_cpu_percent: u64,
    /// Sum of `--diskspace` (sparse images grow up to it).
    pub promised_disk: u64,
    /// Disk actually allocated by all virtual disks.
    pub allocated_disk: u64,
    /// `--disk-overcommit`: `promised_disk` may reach this many times `disk_total`.
    #[serde(default)]
    pub disk_overcommit: f64,
    /// What `promised_disk` may reach (`disk_total` × `disk_overcommit`): `create` and
    /// `set --diskspace` refuse beyond it.
    #[serde(default)]
    pub disk_promise_limit: u64,
    /// Free space the disk guard keeps (`--disk-reserve`, or the default for this size).
    #[serde(default)]
    pub disk_reserve: u64,
    /// Containers the disk guard froze because the node filesystem is short of space.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disk_frozen: Vec<CtId>,
    /// The host's LXCFS instance that gives containers their `/proc` views (absent when
    /// disabled with `BERTH_LXCFS=off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lxcfs: Option<LxcfsInfo>,
    pub warnings: Vec<String>,
}

/// State of the host's LXCFS (docs/inside.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LxcfsInfo {
    /// Installed on this node.
    pub installed: bool,
    /// Its process runs and its mount answers.
    pub running: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub mount: String,
    /// Its mount is left from a dead instance (reads give ENOTCONN); the next container
    /// start restarts it.
    #[serde(default)]
    pub stale: bool,
    /// Running containers whose views it serves.
    #[serde(default)]
    pub containers: u32,
}

#[cfg(test)]
mod incoming_tests {
    use super::IncomingHeader;

    #[test]
    fn the_header_frame_round_trips_and_bad_ones_are_refused() {
        let h = IncomingHeader {
            config: "ctid = 101\n".into(),
            allocated: 7,
            start: true,
            ..Default::default()
        };
        let f = h.frame();
        assert_eq!(IncomingHeader::read_frame(&mut &f[..]).unwrap(), h);
        assert!(IncomingHeader::read_frame(&mut &f[..f.len() - 1]).is_err());
        assert!(IncomingHeader::read_frame(&mut &b"X\0\0\0\x02{}"[..]).is_err());
        assert!(IncomingHeader::read_frame(&mut &b"H\xff\xff\xff\xff"[..]).is_err());
    }
}
