//! Bandwidth shaping with the `tc` command (see docs/adr/0006-network-netlink-nftables-tc.md).
//!
//! On the node's end of a container's veth:
//! - inbound (towards the container) is the veth's egress: a TBF qdisc at the `in` rate;
//! - outbound (from the container) arrives on the veth's ingress: a u32 match-all filter
//!   redirects it (mirred) to the container's own IFB device, whose egress has a TBF qdisc at
//!   the `out` rate. Policing would drop bursts and make TCP collapse; shaping queues them.
//!
//! The container cannot undo any of this: it lives on the node's side of the veth.

use crate::{NetError, Result};
use std::process::Command;

fn tc(args: &[&str]) -> Result<()> {
    let out = Command::new("tc")
        .args(args)
        .output()
        .map_err(|e| NetError::Tool("tc".into(), e.to_string()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(NetError::Tool(
            "tc".into(),
            format!("tc {}: {}", args.join(" "), err.trim()),
        ));
    }
    Ok(())
}

/// TBF parameters for `kbit` per second: a burst of about 20 ms (at least 64 KiB, so that a
/// GSO super-packet fits) and up to 100 ms of queue.
fn tbf_args(kbit: u64) -> (String, String) {
    let bytes_per_s = kbit * 1000 / 8;
    let burst = (bytes_per_s / 50).max(64 * 1024);
    (format!("{kbit}kbit"), format!("{burst}"))
}

fn tbf(dev: &str, kbit: u64) -> Result<()> {
    let (rate, burst) = tbf_args(kbit);
    tc(&[
        "qdisc", "replace", "dev", dev, "root", "tbf", "rate", &rate, "burst", &burst, "latency",
        "100ms",
    ])
}

/// Caps traffic to the container (`in_kbit`) on `host_if` and from it (`out_kbit`) through
/// `ifb`, an IFB device the caller created and brought up.
pub fn shape(host_if: &str, ifb: &str, in_kbit: u64, out_kbit: u64) -> Result<()> {
    tbf(host_if, in_kbit)?;
    tbf(ifb, out_kbit)?;
    // (Re)install the ingress redirect.
    let _ = tc(&["qdisc", "del", "dev", host_if, "ingress"]);
    tc(&["qdisc", "add", "dev", host_if, "handle", "ffff:", "ingress"])?;
    tc(&[
        "filter", "add", "dev", host_if, "parent", "ffff:", "protocol", "all", "u32", "match",
        "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb,
    ])
}

/// Removes the shaping from `host_if` (the IFB device is deleted by the caller).
pub fn unshape(host_if: &str) {
    let _ = tc(&["qdisc", "del", "dev", host_if, "root"]);
    let _ = tc(&["qdisc", "del", "dev", host_if, "ingress"]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn tbf_burst_fits_gso() {
        let (r, b) = super::tbf_args(10_000);
        assert_eq!(r, "10000kbit");
        assert_eq!(b, "65536");
        let (_, b) = super::tbf_args(10_000_000);
        assert_eq!(b, "25000000");
    }
}
