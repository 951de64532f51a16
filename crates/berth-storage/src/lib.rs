//! Berth storage: the node's read-only OS templates, each container's private virtual disk
//! (a sparse ext4 or XFS image on a loop device), idmapped mounts that present both to the
//! container's user namespace, and the clean-up that leaves no mount or loop device behind.
//!
//! The overlay itself is mounted by the runtime *inside* the container's user and mount
//! namespaces (see docs/storage.md); this crate prepares its layers.

pub mod blockcopy;
pub mod disk;
pub mod error;
pub mod loopdev;
pub mod mounts;
pub mod progress;
pub mod rootfs;
pub mod safefs;
pub mod template;
pub mod template_hash;
pub mod userns;
pub mod xfs;

pub use error::StorageError;
pub use progress::Progress;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
