//! The node root's files as they are read: every `config.toml`, `node.toml`,
//! `networks/<name>.toml` and `template.toml` passes the validators CLI input passes
//! (`validate.rs`, `net.rs` parsing, `resources.rs`, `services.rs`, the ID registry's range
//! check) and says the identity of the place it was read from. A hand-edited or copied file
//! is refused with what is wrong and what to do, never acted upon (issue 15).
//!
//! There is one loader per kind of file here; every reader of the node root goes through it.

use crate::config::{DiskConfig, IdMap, NodeConfig, TemplateManifest, IDMAP_SIZE};
use crate::net::NetworkConfig;
use crate::resources::NodeCapacity;
use crate::validate::{validate_description, validate_hostname, validate_name, CtId};
use crate::{fsutil, ContainerConfig, CoreError, DiskFs, NodeRoot, Result, Size};
use std::path::Path;

/// Smallest virtual disk.
pub const MIN_DISKSPACE: u64 = 16 * Size::MIB;
/// Fewest inodes a virtual disk may have.
pub const MIN_DISKINODES: u64 = 1024;
/// mkfs.xfs refuses smaller filesystems (xfsprogs 5.19 and later).
pub const XFS_MIN_SIZE: u64 = 300 * Size::MIB;

/// A limit checked against no particular node: what does not depend on the hardware. The
/// limits that do (`--cpus`, `--cpumask`, `--cpulimit` against the node's CPUs) are checked
/// again against the node when the container starts.
pub const ANY_NODE: NodeCapacity = NodeCapacity {
    cpus: 8192,
    memory: u64::MAX,
};

/// A value of a setting refused (named by its option, which the API reports without the
/// dashes and the CLI with them).
fn bad(value: impl std::fmt::Display, opt: &'static str, why: impl Into<String>) -> CoreError {
    berth_api::InputError::InvalidValue(value.to_string(), opt, why.into()).into()
}

/// A validator's refusal of one field, prefixed with the file's key.
fn field(key: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::Invalid(format!("{key}: {e}"))
}

impl DiskConfig {
    /// Checks the virtual disk's size, soft limits and inode count (`--diskspace`,
    /// `--diskinodes`, `--fstype`).
    pub fn validate(&self) -> Result<()> {
        if self.size.0 < MIN_DISKSPACE {
            return Err(bad(
                self.size,
                "--diskspace",
                "too small: the minimum is 16M",
            ));
        }
        if self.fstype == DiskFs::Xfs && self.size.0 < XFS_MIN_SIZE {
            return Err(bad(
                self.size,
                "--diskspace",
                "too small for XFS: the minimum is 300M",
            ));
        }
        if let Some(n) = self.inodes {
            let max = self.fstype.max_inodes(self.size);
            if n < MIN_DISKINODES || n > max {
                return Err(bad(
                    n,
                    "--diskinodes",
                    format!(
                        "a {} disk holds {MIN_DISKINODES} to {max} inodes",
                        self.size
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Largest `disk_overcommit` accepted: beyond it the check means nothing.
pub const MAX_DISK_OVERCOMMIT: f64 = 1000.0;
/// Smallest `disk_reserve` accepted.
pub const MIN_DISK_RESERVE: u64 = 16 * Size::MIB;

/// Checks a node's disk overcommit ratio (`node set --disk-overcommit`): a finite number
/// above 0 (1 = no overcommit, below 1 keeps part of the filesystem unpromised).
pub fn validate_disk_overcommit(r: f64) -> Result<()> {
    if !r.is_finite() || r <= 0.0 || r > MAX_DISK_OVERCOMMIT {
        return Err(bad(
            r,
            "--disk-overcommit",
            format!("a ratio above 0 and at most {MAX_DISK_OVERCOMMIT} (e.g. 1.5: containers may be promised 1.5 times the node filesystem)"),
        ));
    }
    Ok(())
}

/// Parses `--disk-overcommit`: a plain decimal number (no `inf`, `nan` or exponent).
pub fn parse_disk_overcommit(s: &str) -> Result<f64> {
    let plain = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|b| *b == b'.').count() <= 1;
    let r = s.parse::<f64>().ok().filter(|_| plain).ok_or_else(|| {
        CoreError::from(berth_api::InputError::InvalidValue(
            s.into(),
            "--disk-overcommit",
            "expected a ratio above 0, e.g. 1.5".into(),
        ))
    })?;
    validate_disk_overcommit(r)?;
    Ok(r)
}

/// Checks a node's free-space reserve (`node set --disk-reserve`).
pub fn validate_disk_reserve(r: Size) -> Result<()> {
    if r.0 < MIN_DISK_RESERVE {
        return Err(bad(
            r,
            "--disk-reserve",
            "too small: the disk guard needs at least 16M to freeze a writer before the node filesystem fills",
        ));
    }
    Ok(())
}

/// Checks a container's ID range: the registry's rules (above the host's own users, not
/// reaching `(uid_t)-1`) and the size Berth gives every container.
pub fn validate_idmap(m: &IdMap) -> Result<()> {
    crate::idregistry::validate_range(m).map_err(CoreError::Invalid)?;
    if m.size != IDMAP_SIZE {
        return Err(CoreError::Invalid(format!(
            "an ID range of {} IDs: every container has {IDMAP_SIZE}",
            m.size
        )));
    }
    Ok(())
}

impl ContainerConfig {
    /// Checks every field with the validators CLI input goes through.
    pub fn validate(&self) -> Result<()> {
        if let Some(n) = &self.name {
            validate_name(n).map_err(|e| field("name", e))?;
        }
        if self.devices.len() > 32 {
            return Err(CoreError::Invalid("devices: at most 32".into()));
        }
        for d in &self.devices {
            d.validate().map_err(CoreError::Invalid)?;
        }
        if let Some(h) = &self.hostname {
            validate_hostname(h).map_err(|e| field("hostname", e))?;
        }
        if let Some(d) = &self.description {
            validate_description(d).map_err(|e| field("description", e))?;
        }
        validate_name(&self.ostemplate).map_err(|e| field("ostemplate", e))?;
        for t in &self.app_templates {
            validate_name(t).map_err(|e| field("app_templates", e))?;
        }
        match (self.privileged, &self.idmap) {
            (false, None) => {
                return Err(CoreError::Invalid(
                    "idmap: an unprivileged container needs its ID range ([idmap] host_base, size)"
                        .into(),
                ))
            }
            (_, Some(m)) => validate_idmap(m).map_err(|e| field("idmap", e))?,
            (true, None) => {}
        }
        self.disk.validate().map_err(|e| field("disk", e))?;
        self.resources
            .validate(&ANY_NODE)
            .map_err(|e| field("resources", e))?;
        self.net.validate().map_err(|e| field("net", e))?;
        self.procs.validate().map_err(|e| field("service", e))?;
        Ok(())
    }

    /// Reads `containers/<id>/config.toml`: parsed, validated, and the config of container
    /// `id` (its `ctid` is `id`). A missing file is [`CoreError::ContainerNotFound`]; any
    /// other refusal is [`CoreError::InvalidFile`] saying what to do.
    pub fn load(root: &NodeRoot, id: CtId) -> Result<ContainerConfig> {
        let path = root.ct_config(id);
        let bad = |reason: String| CoreError::InvalidFile {
            path: path.clone(),
            reason,
            of: crate::error::FileOf::Container(id.0),
        };
        let cfg: ContainerConfig = match fsutil::read_toml(&path) {
            Ok(c) => c,
            Err(CoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(CoreError::ContainerNotFound(id.to_string()))
            }
            Err(CoreError::Parse { msg, .. }) => return Err(bad(format!("malformed: {msg}"))),
            Err(e) => return Err(e),
        };
        if cfg.ctid != id {
            return Err(bad(format!(
                "it says ctid = {}, but it is the config of container {id} (copied from another container?)",
                cfg.ctid
            )));
        }
        cfg.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }
}

/// A node ID as `berth node init` makes them (8 hex digits; the registry accepts 1 to 64
/// letters and digits): it names cgroups, nft tables and link aliases.
pub fn validate_node_id(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CoreError::Invalid(format!(
            "node_id {s:?}: 1 to 64 letters and digits"
        )));
    }
    Ok(())
}

impl NodeConfig {
    /// Checks `node.toml`'s fields.
    pub fn validate(&self) -> Result<()> {
        validate_node_id(&self.node_id)?;
        if self.version != 1 {
            return Err(CoreError::Invalid(format!(
                "version {}: this Berth knows node roots of version 1",
                self.version
            )));
        }
        validate_idmap(&IdMap {
            host_base: self.idmap_start,
            size: IDMAP_SIZE,
        })
        .map_err(|e| field("idmap_start", e))?;
        DiskConfig {
            fstype: self.default_fstype,
            ..DiskConfig::new(self.default_diskspace)
        }
        .validate()
        .map_err(|e| field("default_diskspace", e))?;
        for name in self.service_defaults.keys() {
            crate::services::validate_service_name(name)
                .map_err(|e| field("service_defaults", e))?;
        }
        validate_disk_overcommit(self.disk_overcommit).map_err(|e| field("disk_overcommit", e))?;
        if let Some(r) = self.disk_reserve {
            validate_disk_reserve(r).map_err(|e| field("disk_reserve", e))?;
        }
        if let Some(m) = self.backup_max_per_container {
            if !(1..=10_000).contains(&m) {
                return Err(field(
                    "backup_max_per_container",
                    CoreError::Invalid(format!("{m}: 1 to 10000")),
                ));
            }
        }
        Ok(())
    }

    /// Reads and validates `node.toml` at `path`.
    pub fn load(path: &Path) -> Result<NodeConfig> {
        let bad = |reason: String| CoreError::InvalidFile {
            path: path.into(),
            reason,
            of: crate::error::FileOf::Node,
        };
        let cfg: NodeConfig = match fsutil::read_toml(path) {
            Ok(c) => c,
            Err(CoreError::Parse { msg, .. }) => return Err(bad(format!("malformed: {msg}"))),
            Err(e) => return Err(e),
        };
        cfg.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }
}

/// Reads and validates `networks/<name>.toml` at `path`: its `name` is `name`.
pub fn load_network(path: &Path, name: &str) -> Result<NetworkConfig> {
    let bad = |reason: String| CoreError::InvalidFile {
        path: path.into(),
        reason,
        of: crate::error::FileOf::Network(name.to_string()),
    };
    let cfg: NetworkConfig = match fsutil::read_toml(path) {
        Ok(c) => c,
        Err(CoreError::Parse { msg, .. }) => return Err(bad(format!("malformed: {msg}"))),
        Err(e) => return Err(e),
    };
    if cfg.name != name {
        return Err(bad(format!(
            "it says name = {:?}, but it is the file of network {name:?}",
            cfg.name
        )));
    }
    cfg.validate().map_err(|e| bad(e.to_string()))?;
    for ns in &cfg.nameservers {
        if ns.is_unspecified() || ns.is_multicast() || ns.is_broadcast() {
            return Err(bad(format!("nameservers: {ns} is not a unicast address")));
        }
    }
    Ok(cfg)
}

/// Text a manifest shows on the operator's terminal: one line, no control characters.
fn printable(key: &str, s: &str) -> Result<()> {
    if s.len() > 4096 || s.chars().any(|c| c.is_control()) {
        return Err(CoreError::Invalid(format!(
            "{key}: must be one line of at most 4096 bytes without control characters"
        )));
    }
    Ok(())
}

/// The checks of a template manifest read from disk.
pub trait CheckedManifest: Sized {
    /// Checks a manifest found in `templates/<name>/`.
    fn validate(&self, name: &str) -> Result<()>;
    /// Reads and validates `templates/<name>/template.toml` at `path`.
    fn load(path: &Path, name: &str) -> Result<Self>;
}

impl CheckedManifest for TemplateManifest {
    fn validate(&self, name: &str) -> Result<()> {
        validate_name(&self.name).map_err(|e| field("name", e))?;
        if self.name != name {
            return Err(CoreError::Invalid(format!(
                "it says name = {:?}, but it is the manifest of template {name:?}",
                self.name
            )));
        }
        if self.init.is_empty()
            || self.init[0].is_empty()
            || self.init.iter().any(|a| a.contains('\0'))
        {
            return Err(CoreError::Invalid(
                "init: a command (a non-empty list of arguments without NUL)".into(),
            ));
        }
        if let Some(h) = &self.hash {
            let ok = h
                .strip_prefix("blake3:")
                .is_some_and(|x| x.len() == 64 && x.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                return Err(field("hash", "blake3: and 64 hex digits".to_string()));
            }
        }
        let sig = self.stop_signal.as_str();
        if sig.is_empty()
            || sig.len() > 16
            || !sig
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-')
        {
            return Err(CoreError::Invalid(format!(
                "stop_signal {sig:?}: a signal name or number (SIGTERM, SIGRTMIN+3, 15)"
            )));
        }
        printable("source", &self.source)?;
        if let Some(os) = &self.os {
            printable("os", os)?;
        }
        Ok(())
    }

    fn load(path: &Path, name: &str) -> Result<TemplateManifest> {
        let bad = |reason: String| CoreError::InvalidFile {
            path: path.into(),
            reason,
            of: crate::error::FileOf::Template(name.to_string()),
        };
        let m: TemplateManifest = match fsutil::read_toml(path) {
            Ok(m) => m,
            Err(CoreError::Parse { msg, .. }) => return Err(bad(format!("malformed: {msg}"))),
            Err(e) => return Err(e),
        };
        m.validate(name).map_err(|e| bad(e.to_string()))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DiskConfig;

    fn root_with(text: &str, id: u32) -> (tempfile::TempDir, NodeRoot) {
        let d = tempfile::tempdir().unwrap();
        let root = NodeRoot::new(d.path());
        std::fs::create_dir_all(root.ct_dir(CtId(id))).unwrap();
        std::fs::write(root.ct_config(CtId(id)), text).unwrap();
        (d, root)
    }

    fn sample(id: u32) -> ContainerConfig {
        ContainerConfig {
            idmap: Some(IdMap {
                host_base: 165536,
                size: IDMAP_SIZE,
            }),
            ..ContainerConfig::new(CtId(id), "busybox", DiskConfig::new(Size(Size::GIB)))
        }
    }

    #[test]
    fn identity_and_fields() {
        let text = toml::to_string_pretty(&sample(101)).unwrap();
        let (_d, root) = root_with(&text, 101);
        assert_eq!(
            ContainerConfig::load(&root, CtId(101)).unwrap(),
            sample(101)
        );
        let (_d, root) = root_with(&text, 151);
        let e = ContainerConfig::load(&root, CtId(151))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ctid = 101") && e.contains("or remove the container"),
            "{e}"
        );
        for (bad, needle) in [
            (
                ContainerConfig {
                    name: Some("../../x".into()),
                    ..sample(1)
                },
                "name",
            ),
            (
                ContainerConfig {
                    hostname: Some("a/b".into()),
                    ..sample(1)
                },
                "hostname",
            ),
            (
                ContainerConfig {
                    idmap: Some(IdMap {
                        host_base: 0,
                        size: IDMAP_SIZE,
                    }),
                    ..sample(1)
                },
                "below",
            ),
            (
                ContainerConfig {
                    idmap: None,
                    ..sample(1)
                },
                "idmap",
            ),
            (
                ContainerConfig {
                    ostemplate: "../t".into(),
                    ..sample(1)
                },
                "ostemplate",
            ),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let (_d, root) = root_with("ctid = 1\n", 2);
        let e = ContainerConfig::load(&root, CtId(2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("malformed"), "{e}");
    }

    #[test]
    fn net_section() {
        use crate::net::{NetConfig, ROUTED_GATEWAY};
        let routed = NetConfig {
            ipaddrs: vec!["10.9.0.9".parse().unwrap()],
            gateway: Some(ROUTED_GATEWAY),
            ..Default::default()
        };
        routed.validate().unwrap();
        let twice = NetConfig {
            ipaddrs: vec!["10.9.0.9".parse().unwrap(), "10.9.0.9".parse().unwrap()],
            ..Default::default()
        };
        assert!(twice.validate().is_err());
        let nowhere = NetConfig {
            gateway: Some("10.1.1.1".parse().unwrap()),
            ..Default::default()
        };
        assert!(nowhere.validate().is_err());
    }

    #[test]
    fn xfs_bound_and_node_config() {
        assert_eq!(DiskFs::Xfs.max_inodes(Size(400 * Size::MIB)), 819_200);
        let mut n = NodeConfig::new("ab12cd34".into(), 0);
        n.validate().unwrap();
        n.node_id = "../x".into();
        assert!(n.validate().is_err());
    }

    #[test]
    fn disk_overcommit_and_reserve() {
        for good in ["1.5", "4", "0.25", "1000"] {
            assert!(parse_disk_overcommit(good).is_ok(), "{good}");
        }
        for bad in [
            "0", "0.0", "-1", "", "abc", "nan", "inf", "1e3", "1.2.3", "1001",
        ] {
            let e = parse_disk_overcommit(bad).unwrap_err().to_string();
            assert!(
                e.contains("--disk-overcommit") && !e.contains('\n'),
                "{bad}: {e}"
            );
        }
        assert!(validate_disk_reserve(Size(Size::MIB)).is_err());
        assert!(validate_disk_reserve(Size(64 * Size::MIB)).is_ok());
        // node.toml of before the settings: the defaults; bad values refused on load
        let mut n = NodeConfig::new("ab12cd34".into(), 0);
        let text = toml::to_string(&n).unwrap();
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("disk_"))
            .map(|l| format!("{l}\n"))
            .collect();
        let back: NodeConfig = toml::from_str(&old).unwrap();
        assert_eq!(back.disk_overcommit, crate::config::DEFAULT_DISK_OVERCOMMIT);
        assert_eq!(back.disk_reserve, None);
        n.disk_overcommit = -1.0;
        assert!(n
            .validate()
            .unwrap_err()
            .to_string()
            .contains("disk_overcommit"));
        n.disk_overcommit = 2.0;
        n.disk_reserve = Some(Size(4096));
        assert!(n
            .validate()
            .unwrap_err()
            .to_string()
            .contains("disk_reserve"));
    }
}
