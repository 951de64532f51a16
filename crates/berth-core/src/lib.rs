//! Berth's model: the node root layout, container and template configuration,
//! input validation, per-container locking, atomic state files and the
//! crash-recovery journal. Pure logic and plain files: no kernel touch-points
//! beyond `flock`, so everything here is unit-tested without root.

pub mod checked;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod idmap;
pub mod idregistry;
pub mod journal;
pub mod lock;
pub mod net;
pub mod ops;
pub mod paths;
pub mod pidfd;
pub mod resources;
pub mod services;
pub mod validate;

pub use config::{ContainerConfig, DiskFs, DiskType, NodeConfig, TemplateManifest};
pub use error::CoreError;
pub use paths::NodeRoot;
pub use resources::Resources;
pub use validate::{CtId, CtRef, Size};

/// Result alias for this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
