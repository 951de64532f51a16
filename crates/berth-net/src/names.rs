//! Names and ownership marks of Berth's kernel objects. Interface names are at most 15
//! characters and unique per node root: a prefix and ten hex digits of a hash of the node ID
//! and the object. The alias (`ifalias`) records the owner in full.

use berth_core::net::fnv64;

fn h(parts: &[&str]) -> String {
    format!(
        "{:010x}",
        fnv64(parts.join("/").as_bytes()) & 0xff_ffff_ffff
    )
}

/// The bridge of network `net`.
pub fn bridge(node_id: &str, net: &str) -> String {
    format!("bb{}", h(&[node_id, "net", net]))
}
/// The node's end of a container adapter (`ifname` = `venet0` for host-routed addresses).
pub fn host_veth(node_id: &str, ctid: u32, ifname: &str) -> String {
    format!("bv{}", h(&[node_id, &ctid.to_string(), ifname]))
}
/// The IFB device shaping a container adapter's outbound traffic.
pub fn ifb(node_id: &str, ctid: u32, ifname: &str) -> String {
    format!("bi{}", h(&[node_id, &ctid.to_string(), ifname]))
}

pub fn alias_net(node_id: &str, net: &str) -> String {
    format!("berth:{node_id}:net:{net}")
}
pub fn alias_ct(node_id: &str, ctid: u32, ifname: &str) -> String {
    format!("berth:{node_id}:{ctid}:{ifname}")
}
pub fn alias_ifb(node_id: &str, ctid: u32, ifname: &str) -> String {
    format!("berth:{node_id}:{ctid}:{ifname}:ifb")
}
/// Prefix of every alias of a container's links.
pub fn alias_ct_prefix(node_id: &str, ctid: u32) -> String {
    format!("berth:{node_id}:{ctid}:")
}
/// Prefix of every alias of this node root's links.
pub fn alias_node_prefix(node_id: &str) -> String {
    format!("berth:{node_id}:")
}

/// Name of the host-routed adapter inside the container.
pub const VENET: &str = "venet0";
/// The node's address on every host-routed veth: the container's gateway.
pub const VENET_GW: std::net::Ipv4Addr = berth_core::net::ROUTED_GATEWAY;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_fit_and_differ() {
        let a = host_veth("ab12cd34", 101, "eth0");
        assert!(a.len() <= 15);
        assert_ne!(a, host_veth("ab12cd35", 101, "eth0"));
        assert_ne!(a, host_veth("ab12cd34", 102, "eth0"));
        assert_ne!(a, host_veth("ab12cd34", 101, "eth1"));
        assert!(bridge("x", "lan0").len() <= 15);
        assert!(alias_ct("n", 101, "eth0").starts_with(&alias_ct_prefix("n", 101)));
        assert!(!alias_ct("n", 1011, "eth0").starts_with(&alias_ct_prefix("n", 101)));
    }
}
