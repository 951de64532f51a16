//! Berth networking on the node: virtual networks (Linux bridges), container adapters (veth
//! pairs, one end in the container), host-routed addresses (a venet-like veth with /32
//! routes), NAT and port forwards, anti-spoofing and isolation (nftables), bandwidth caps
//! (tc) and traffic counters.
//!
//! Every kernel object Berth creates carries its owner in its name or alias:
//! links have the alias `berth:<node_id>:…`, nftables tables are `berth_<node_id>`. Clean-up
//! finds them by that mark, so nothing of another node root or of the host is ever touched.

pub mod garp;
pub mod names;
pub mod netlink;
pub mod nft;
mod node;
pub mod tc;

pub use node::{
    net_objects, remove_node_objects, resolv_conf, Adapter, NetNode, NetOp, NetRemains,
    PendingFirewall, Traffic,
};

use std::path::PathBuf;

/// Errors of the network layer: one line each.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Core(#[from] berth_core::CoreError),
    #[error("netlink: {0}: {1}")]
    Netlink(String, String),
    #[error("{0}: {1}")]
    Sys(String, #[source] std::io::Error),
    #[error("{0}: {1}")]
    Tool(String, String),
    #[error("no network adapter {0:?} on this node")]
    NoSuchLink(String),
    #[error("network {0:?} not found")]
    UnknownNetwork(String),
    #[error("network {0:?} already exists")]
    NetworkExists(String),
    #[error("network {0:?} is used by container(s) {1}: remove their adapters first")]
    NetworkInUse(String, String),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {msg}")]
    State { path: PathBuf, msg: String },
}

impl NetError {
    /// The class of this error (one HTTP status each, see `berth_api::ErrorKind`).
    pub fn kind(&self) -> berth_core::ErrorKind {
        use berth_core::ErrorKind as K;
        match self {
            NetError::Core(e) => e.kind(),
            NetError::NoSuchLink(_) | NetError::UnknownNetwork(_) => K::NotFound,
            NetError::NetworkExists(_) => K::Conflict,
            NetError::NetworkInUse(..) => K::Precondition,
            NetError::Invalid(_) => K::Invalid,
            NetError::Netlink(..) | NetError::Sys(..) | NetError::Tool(..) => K::Internal,
            NetError::State { .. } => K::Internal,
        }
    }

    /// This error as the API reports it.
    pub fn to_api(&self) -> berth_core::ApiError {
        use berth_core::Cause;
        let e = berth_core::ApiError::new(self.kind(), self.to_string());
        match self {
            NetError::Core(c) => c.to_api(),
            NetError::NoSuchLink(n) => e.with_cause(Cause::AdapterNotFound { name: n.clone() }),
            NetError::UnknownNetwork(n) => e.with_cause(Cause::NetworkNotFound { name: n.clone() }),
            _ => e,
        }
    }
}

/// A validator's refusal (berth-api), through the model layer's error.
impl From<berth_core::InputError> for NetError {
    fn from(e: berth_core::InputError) -> Self {
        NetError::Core(e.into())
    }
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// Writes a sysctl under /proc/sys (e.g. `net/ipv4/ip_forward`).
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    let p = format!("/proc/sys/{key}");
    std::fs::write(&p, value).map_err(|e| NetError::Sys(format!("write {p}"), e))
}
