//! The wire parts of the node root's files: what a container's disk and ID range are, and
//! what a template is. The files themselves (`config.toml`, `node.toml`) are berth-core's.

use crate::error::InputError;
use serde::{Deserialize, Serialize};

/// The user-namespace mapping of an unprivileged container: container IDs 0..size map to
/// host IDs host_base..host_base+size (UIDs and GIDs alike).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdMap {
    pub host_base: u32,
    pub size: u32,
}

impl IdMap {
    pub fn contains_host_id(&self, id: u32) -> bool {
        id >= self.host_base && (id - self.host_base) < self.size
    }
    pub fn overlaps(&self, other: &IdMap) -> bool {
        let (a0, a1) = (
            self.host_base as u64,
            self.host_base as u64 + self.size as u64,
        );
        let (b0, b1) = (
            other.host_base as u64,
            other.host_base as u64 + other.size as u64,
        );
        a0 < b1 && b0 < a1
    }
}

/// The filesystem of a container's virtual disk (`create --fstype`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DiskFs {
    /// Exact inode count; grows online only with CAP_SYS_RESOURCE; shrinks offline.
    #[default]
    Ext4,
    /// Grows online (and changes its inode limit online) with CAP_SYS_ADMIN alone; the inode
    /// limit is a whole percentage of the disk (`imaxpct`); cannot shrink; 300M at least.
    Xfs,
}

impl DiskFs {
    pub fn parse(s: &str) -> Result<DiskFs, InputError> {
        match s {
            "ext4" => Ok(DiskFs::Ext4),
            "xfs" => Ok(DiskFs::Xfs),
            _ => Err(InputError::InvalidValue(
                s.into(),
                "--fstype",
                "expected ext4 or xfs".into(),
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFs::Ext4 => "ext4",
            DiskFs::Xfs => "xfs",
        }
    }
    pub fn is_default(&self) -> bool {
        *self == DiskFs::Ext4
    }
}

impl std::fmt::Display for DiskFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a container's virtual disk image holds its blocks (`create --disktype`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DiskType {
    /// A sparse image: the node's disk is used as the container writes (overcommit possible).
    #[default]
    Expanding,
    /// Preallocated with fallocate(2): the whole size is the node's at once, so the container
    /// never meets a full node filesystem.
    Fixed,
}

impl DiskType {
    pub fn parse(s: &str) -> Result<DiskType, InputError> {
        match s {
            "expanding" => Ok(DiskType::Expanding),
            "fixed" => Ok(DiskType::Fixed),
            _ => Err(InputError::InvalidValue(
                s.into(),
                "--disktype",
                "expected expanding or fixed".into(),
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DiskType::Expanding => "expanding",
            DiskType::Fixed => "fixed",
        }
    }
    pub fn is_default(&self) -> bool {
        *self == DiskType::Expanding
    }
}

impl std::fmt::Display for DiskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a template was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TemplateKind {
    Os,
    App,
}

/// `templates/<name>/template.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateManifest {
    pub name: String,
    pub kind: TemplateKind,
    /// Where it came from: `busybox`, `tarball:<file>`, `debootstrap:<suite>`.
    pub source: String,
    /// Unix time of creation.
    pub created: u64,
    /// Command run as the container's PID 1.
    pub init: Vec<String>,
    /// Signal sent to PID 1 for a clean shutdown (busybox init: SIGUSR2, systemd: SIGRTMIN+4).
    pub stop_signal: String,
    /// `PRETTY_NAME` from the template's os-release, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Apparent size of the files, in bytes.
    #[serde(default)]
    pub size: u64,
    /// The content hash of its files (`blake3:` and 64 hex digits; the same files give the
    /// same hash on any node). Absent in manifests older than it: computed at first need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl DiskFs {
    /// Most inodes a filesystem of `size` can have: ext4 one per 1 KiB (its densest ratio);
    /// XFS with `imaxpct=100`, whole 64-inode chunks of mkfs.xfs's 4 KiB blocks and 512-byte
    /// inodes (`berth_storage::xfs::max_icount`).
    pub fn max_inodes(self, size: crate::validate::Size) -> u64 {
        match self {
            DiskFs::Ext4 => (size.0 / 1024).min(u32::MAX as u64),
            DiskFs::Xfs => {
                let (block, per_block, chunk) = (4096u64, 4096u64 / 512, 64u64);
                let chunk_blocks = (chunk / per_block).max(1);
                size.0 / block / chunk_blocks * chunk_blocks * per_block
            }
        }
    }
}
