//! The local node: Berth's operations on this machine, as used by the `berth` CLI without a
//! daemon (like vzctl). Every operation on a container takes that container's lock; creation
//! also takes the node lock (ID allocation). Each command first finishes or rolls back what an
//! interrupted command left (see [`recover`]).

pub mod diskguard;
pub mod diskspace;
pub mod error;
pub mod hostsvc;
mod idreg;
mod inroot;
mod local;
pub mod net;
pub mod procs;
pub mod reclaim;
pub mod recover;
pub mod resources;
pub mod services;

pub use error::NodeError;
pub use local::{init_node, init_node_reclaiming, LocalNode};

pub type Result<T, E = NodeError> = std::result::Result<T, E>;

/// For crash tests: when `BERTH_CRASH_AT` names this point, the process kills itself with
/// SIGKILL here, exactly as an operator's `kill -9` or a power cut would interrupt it.
pub fn crash_point(name: &str) {
    if std::env::var("BERTH_CRASH_AT").as_deref() == Ok(name) {
        // SAFETY: raising SIGKILL on ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
