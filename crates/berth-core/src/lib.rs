//! Berth's model: the node root layout, container and template configuration,
//! input validation, per-container locking, atomic state files and the
//! crash-recovery journal. Pure logic and plain files: no kernel touch-points
//! beyond `flock`, so everything here is unit-tested without root.

pub mod calendar;
pub mod checked;
pub mod config;
pub mod crash;
pub mod error;
pub mod fsutil;
pub mod hosts;
pub mod idmap;
pub mod idregistry;
pub mod journal;
pub mod lock;
pub mod paths;
pub mod pidfd;
pub mod timefmt;

// The wire types live in berth-api; their modules keep their old paths here.
pub use berth_api::{net, ops, procs, resources, services, validate};
pub use berth_api::{Cause, Error as ApiError, ErrorKind, InputError};
/// Progress of long operations (berth-api's trait).
pub mod progress {
    pub use berth_api::node::{NoProgress, Progress};
}
pub use config::{ContainerConfig, DiskFs, DiskType, NodeConfig, TemplateManifest};
pub use error::CoreError;
pub use paths::NodeRoot;
pub use resources::Resources;
pub use validate::{CtId, CtRef, Size};

/// Result alias for this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
