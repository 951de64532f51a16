//! On-disk configuration: `node.toml`, `containers/<ctid>/config.toml`,
//! `templates/<name>/template.toml`. These files are the source of truth.

use crate::resources::Resources;
use crate::validate::{CtId, Size};
pub use berth_api::config::{DiskFs, DiskType, IdMap, TemplateKind, TemplateManifest};
use serde::{Deserialize, Serialize};

/// Default virtual-disk size of a new container (expanding sparse image).
pub const DEFAULT_DISKSPACE: Size = Size(10 * Size::GIB);
/// Number of user and group IDs each unprivileged container owns.
pub const IDMAP_SIZE: u32 = 65536;

/// `node.toml`: written once by `berth node init`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeConfig {
    /// Random identifier of this node root, used to name host-global objects (cgroups,
    /// runtime IDs) so that several node roots on one machine never collide.
    pub node_id: String,
    /// Format version of the node root.
    pub version: u32,
    /// Unix time of `node init`.
    pub created: u64,
    /// First host UID handed to containers; each container gets [`IDMAP_SIZE`] IDs from here on.
    #[serde(default = "default_idmap_start")]
    pub idmap_start: u32,
    /// Disk size given to containers created without `--diskspace`.
    #[serde(default = "default_diskspace")]
    pub default_diskspace: Size,
    /// Filesystem of new containers' virtual disks when `create` gives no `--fstype`
    /// (`berth node set --default-fstype`).
    #[serde(default, skip_serializing_if = "DiskFs::is_default")]
    pub default_fstype: DiskFs,
    /// Default startup type per service name for new containers
    /// (`berth node set --service-default NAME=TYPE`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub service_defaults: std::collections::BTreeMap<String, crate::services::Startup>,
    /// How many times the size of the node filesystem holding the node root its containers'
    /// disks may add up to (`berth node set --disk-overcommit`): `create` and
    /// `set --diskspace` refuse beyond it. Absent in older files: [`DEFAULT_DISK_OVERCOMMIT`].
    #[serde(default = "default_disk_overcommit")]
    pub disk_overcommit: f64,
    /// Free space the disk guard keeps on the node filesystem (`berth node set
    /// --disk-reserve`): below it, the container writing most is frozen. Absent: the default
    /// of [`default_disk_reserve`], which depends on the filesystem's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_reserve: Option<Size>,
    /// The most backups a container's owner may keep of it in a repository (`berth node set
    /// --backup-max-per-container`, the seed's Power Panel maximum); absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_max_per_container: Option<u32>,
}

/// Default `disk_overcommit`: the sum of the containers' `--diskspace` may reach 4 times
/// the node filesystem's size (expanding disks are sparse; the disk guard is the back-stop).
pub const DEFAULT_DISK_OVERCOMMIT: f64 = 4.0;

fn default_disk_overcommit() -> f64 {
    DEFAULT_DISK_OVERCOMMIT
}

/// The default free-space reserve of a node filesystem of `total` bytes: 2% of it, at least
/// 128 MiB and at most 2 GiB (see docs/reliability.md, "A full node filesystem").
pub fn default_disk_reserve(total: u64) -> Size {
    Size((total / 50).clamp(128 * Size::MIB, 2 * Size::GIB))
}

fn default_idmap_start() -> u32 {
    // Skip 100000..165535, which Debian's /etc/subuid hands to the first login user.
    165_536
}
fn default_diskspace() -> Size {
    DEFAULT_DISKSPACE
}

impl NodeConfig {
    pub fn new(node_id: String, created: u64) -> Self {
        NodeConfig {
            node_id,
            version: 1,
            created,
            idmap_start: default_idmap_start(),
            default_diskspace: DEFAULT_DISKSPACE,
            default_fstype: DiskFs::Ext4,
            service_defaults: Default::default(),
            disk_overcommit: DEFAULT_DISK_OVERCOMMIT,
            disk_reserve: None,
            backup_max_per_container: None,
        }
    }
}

/// The container's private virtual disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DiskConfig {
    /// Size of the sparse image: the container's disk quota (the hard limit).
    pub size: Size,
    /// Its filesystem (fixed at create).
    #[serde(default, skip_serializing_if = "DiskFs::is_default")]
    pub fstype: DiskFs,
    /// Expanding (sparse) or fixed (preallocated) image (`create --disktype`).
    #[serde(default, skip_serializing_if = "DiskType::is_default")]
    pub disktype: DiskType,
    /// Soft limit (`--diskspace soft:hard`): above it, `stats` and alerts warn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft: Option<Size>,
    /// Inode count of the filesystem (`--diskinodes`, the hard limit); none = mkfs's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    /// Soft inode limit: above it, `stats` and alerts warn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_soft: Option<u64>,
}

impl DiskConfig {
    pub fn new(size: Size) -> Self {
        DiskConfig {
            size,
            fstype: DiskFs::Ext4,
            disktype: DiskType::Expanding,
            soft: None,
            inodes: None,
            inodes_soft: None,
        }
    }
}

/// `containers/<ctid>/config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerConfig {
    pub ctid: CtId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// OS template (bottom read-only layer).
    pub ostemplate: String,
    /// Application templates stacked above the OS template, top-most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_templates: Vec<String>,
    /// `true` runs without a user namespace: container root is host root. Opt-in only.
    #[serde(default)]
    pub privileged: bool,
    /// ID mapping; absent for privileged containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<IdMap>,
    pub disk: DiskConfig,
    /// CPU, memory, process and I/O limits.
    #[serde(default)]
    pub resources: Resources,
    /// Start when the node boots (vzctl `--onboot`).
    #[serde(default)]
    pub onboot: bool,
    /// Higher starts earlier (vzctl `--bootorder`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootorder: Option<u32>,
    /// Unix time of creation.
    pub created: u64,
    /// Network adapters, addresses, DNS, forwards and rates (see `berth_core::net`).
    #[serde(default, skip_serializing_if = "crate::net::NetConfig::is_default")]
    pub net: crate::net::NetConfig,
    /// Init mode, `[service.NAME]` tables and pending default startup types (issue 5).
    #[serde(flatten)]
    pub procs: crate::services::ServiceSettings,
    /// Action scripts: event (`premount`, `mount`, `start`, `stop`, `umount`, `destroy`) →
    /// script (a file of `<root>/scripts/` or `/etc/berth/scripts/`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub scripts: std::collections::BTreeMap<String, String>,
    /// Host devices forwarded into the container (`berth set --device-add`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRule>,
    /// Capabilities on or off against the default set (`net_admin = false`), vzctl's
    /// `--capability`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub capabilities: std::collections::BTreeMap<String, bool>,
}

/// A host device node forwarded into a container: the same path inside, owned by the
/// container's root, mode 0600 (`rw`) or 0400 (`r`), opened as the device cgroup allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRule {
    /// `/dev/…`, the same on the host and inside.
    pub path: String,
    /// `c` (character) or `b` (block).
    pub kind: String,
    pub major: u32,
    pub minor: u32,
    /// `rw` or `r`.
    pub access: String,
}

impl DeviceRule {
    /// Checks a rule as read from a file.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let rel = self.path.strip_prefix("/dev/").unwrap_or("");
        if rel.is_empty()
            || self.path.len() > 128
            || rel
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
            || !self
                .path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+:".contains(&b))
        {
            return Err(format!("device path {:?}: a path under /dev/", self.path));
        }
        if rel.split('/').count() > 3 {
            return Err(format!(
                "device path {:?}: at most 3 levels under /dev",
                self.path
            ));
        }
        if !matches!(self.kind.as_str(), "c" | "b") {
            return Err(format!("device kind {:?}: c or b", self.kind));
        }
        if !matches!(self.access.as_str(), "rw" | "r") {
            return Err(format!("device access {:?}: rw or r", self.access));
        }
        Ok(())
    }
}

impl ContainerConfig {
    /// A container of template `ostemplate` on `disk`, everything else at its default:
    /// unnamed, unprivileged without an id range yet, no limits, no network, created at 0.
    pub fn new(ctid: CtId, ostemplate: &str, disk: DiskConfig) -> ContainerConfig {
        ContainerConfig {
            ctid,
            name: None,
            hostname: None,
            description: None,
            ostemplate: ostemplate.into(),
            app_templates: vec![],
            privileged: false,
            idmap: None,
            disk,
            resources: Default::default(),
            onboot: false,
            bootorder: None,
            created: 0,
            net: Default::default(),
            procs: Default::default(),
            scripts: Default::default(),
            devices: vec![],
            capabilities: Default::default(),
        }
    }

    /// The hostname the container gets: the configured one, else its name, else `ct<ctid>`.
    pub fn effective_hostname(&self) -> String {
        self.hostname
            .clone()
            .or_else(|| self.name.clone())
            .unwrap_or_else(|| format!("ct{}", self.ctid))
    }

    /// Host UID/GID of the container's root: `host_base` of its ID range, or `None` for a
    /// privileged container (its root is host root).
    pub fn host_root_id(&self) -> Option<u32> {
        self.idmap.filter(|_| !self.privileged).map(|m| m.host_base)
    }

    /// Read-only layers, top-most first, ending with the OS template.
    pub fn layers(&self) -> Vec<String> {
        let mut l = self.app_templates.clone();
        l.push(self.ostemplate.clone());
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ContainerConfig {
        ContainerConfig {
            ctid: CtId(101),
            name: Some("web1".into()),
            hostname: None,
            description: None,
            ostemplate: "busybox".into(),
            app_templates: vec!["nginx".into()],
            privileged: false,
            idmap: Some(IdMap {
                host_base: 165536,
                size: IDMAP_SIZE,
            }),
            disk: DiskConfig::new(DEFAULT_DISKSPACE),
            resources: Default::default(),
            onboot: false,
            bootorder: None,
            created: 1,
            net: Default::default(),
            procs: Default::default(),
            scripts: Default::default(),
            devices: vec![],
            capabilities: Default::default(),
        }
    }

    #[test]
    fn roundtrip_and_defaults() {
        let c = sample();
        let text = toml::to_string_pretty(&c).unwrap();
        assert!(text.contains("size = 10737418240"));
        let back: ContainerConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.effective_hostname(), "web1");
        assert_eq!(c.layers(), vec!["nginx".to_string(), "busybox".to_string()]);
    }

    #[test]
    fn services_roundtrip() {
        use crate::services::{InitMode, ServiceDef, Startup};
        let mut c = sample();
        c.procs.init = InitMode::Berth;
        c.procs.services.insert(
            "web".into(),
            ServiceDef {
                command: vec!["httpd".into(), "-f".into()],
                user: Some("www".into()),
                startup: Startup::Manual,
                restart: Default::default(),
                after: vec![],
            },
        );
        let text = toml::to_string_pretty(&c).unwrap();
        assert!(text.contains("[service.web]"), "{text}");
        let back: ContainerConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        // a config without any of it still loads
        let plain = toml::to_string_pretty(&sample()).unwrap();
        assert!(!plain.contains("init"));
        assert_eq!(toml::from_str::<ContainerConfig>(&plain).unwrap(), sample());
    }

    #[test]
    fn idmap_overlap() {
        let a = IdMap {
            host_base: 100,
            size: 10,
        };
        assert!(a.overlaps(&IdMap {
            host_base: 109,
            size: 10
        }));
        assert!(!a.overlaps(&IdMap {
            host_base: 110,
            size: 10
        }));
        assert!(a.contains_host_id(109) && !a.contains_host_id(110));
    }
}
