//! Berth networking on the node: virtual networks (Linux bridges), container adapters (veth
//! pairs, one end in the container), host-routed addresses (a venet-like veth with /32
//! routes), NAT and port forwards, anti-spoofing and isolation (nftables), bandwidth caps
//! (tc) and traffic counters.
//!
//! Every kernel object Berth creates carries its owner in its name or alias:
//! links have the alias `berth:<node_id>:…`, nftables tables are `berth_<node_id>`. Clean-up
//! finds them by that mark, so nothing of another node root or of the host is ever touched.

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
    #[error("no network adapter {0:?} on this node (see `berth node adapters`)")]
    NoSuchLink(String),
    #[error("network {0:?} not found (see `berth network list`)")]
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

pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// Writes a sysctl under /proc/sys (e.g. `net/ipv4/ip_forward`).
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    let p = format!("/proc/sys/{key}");
    std::fs::write(&p, value).map_err(|e| NetError::Sys(format!("write {p}"), e))
}
