//! The node's operations as one trait, with the wire types they exchange. The CLI calls a
//! local implementation (berth-node); the API server and its HTTP client implement the same
//! trait later, so CLI, API and web console cannot drift apart.

use crate::config::TemplateManifest;
use crate::validate::{CtId, CtRef, Size};
use serde::{Deserialize, Serialize};

/// Runtime status of a container. Serialised lowercase: a stable interface for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtStatus {
    Running,
    Stopped,
    Suspended,
}

impl std::fmt::Display for CtStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            CtStatus::Running => "running",
            CtStatus::Stopped => "stopped",
            CtStatus::Suspended => "suspended",
        })
    }
}

/// One container as `list` and `status` report it. Field names are a stable interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerInfo {
    pub ctid: CtId,
    pub name: Option<String>,
    pub status: CtStatus,
    pub ostemplate: String,
    pub hostname: String,
    pub privileged: bool,
    /// Seconds since the container (last) booted; absent when stopped.
    pub uptime: Option<u64>,
    /// Host PID of the container's init; absent when stopped.
    pub init_pid: Option<i32>,
    /// First host UID of the container's ID range; absent for privileged containers.
    pub uid_base: Option<u32>,
    pub diskspace: Size,
    pub description: Option<String>,
}

/// Options of `create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateOptions {
    pub ctid: Option<CtId>,
    pub ostemplate: String,
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub description: Option<String>,
    pub diskspace: Option<Size>,
    pub privileged: bool,
    /// The container's PID 1: Berth's supervisor, the template's init, or auto (issue 5).
    #[serde(default)]
    pub init: crate::services::InitMode,
}

/// Options of `stop`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
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
pub enum TemplateSource {
    /// The embedded default, built from the host's static busybox.
    Busybox,
    /// A rootfs tarball on the node.
    Tarball(std::path::PathBuf),
    /// debootstrap of a Debian suite, optionally from a given mirror.
    Debootstrap {
        suite: String,
        mirror: Option<String>,
    },
}

/// The operations of a node. Errors are the implementation's own error type.
pub trait NodeOps {
    type Error: std::error::Error;

    fn template_create(
        &self,
        name: &str,
        source: TemplateSource,
    ) -> Result<TemplateManifest, Self::Error>;
    fn template_list(&self) -> Result<Vec<TemplateManifest>, Self::Error>;
    fn template_info(&self, name: &str) -> Result<TemplateManifest, Self::Error>;
    fn template_remove(&self, name: &str) -> Result<(), Self::Error>;

    fn create(&self, opts: CreateOptions) -> Result<CtId, Self::Error>;
    fn start(&self, ct: &CtRef) -> Result<ContainerInfo, Self::Error>;
    fn stop(&self, ct: &CtRef, opts: StopOptions) -> Result<(), Self::Error>;
    fn restart(&self, ct: &CtRef, opts: StopOptions) -> Result<ContainerInfo, Self::Error>;
    fn status(&self, ct: &CtRef) -> Result<ContainerInfo, Self::Error>;
    fn suspend(&self, ct: &CtRef) -> Result<(), Self::Error>;
    fn resume(&self, ct: &CtRef) -> Result<(), Self::Error>;
    fn list(&self, all: bool) -> Result<Vec<ContainerInfo>, Self::Error>;
    fn destroy(&self, ct: &CtRef, force: bool) -> Result<(), Self::Error>;
}
