//! Berth runtime: turns a container config into an OCI runtime spec, runs it through youki's
//! `libcontainer`, and supervises it with a per-container monitor process. Also exec/enter
//! (processes joining a running container) and the state file the monitor publishes.

pub mod cgdeleg;
pub mod console;
pub mod error;
pub mod exec;
mod fdpass;
pub mod hooks;
pub mod lxcfs;
pub mod monitor;
mod pty;
pub mod resources;
pub mod spec;
pub mod state;
pub mod supervisor;
pub mod sysinfo;
pub mod views;

pub use error::RuntimeError;

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// The name of a container in host-global namespaces (OCI runtime ID, cgroup): unique per
/// node root, so that two node roots on one machine (tests) never collide.
pub fn runtime_id(node_id: &str, ctid: berth_core::CtId) -> String {
    format!("berth-{node_id}-{ctid}")
}
