//! Gratuitous ARP: a container that starts announces its addresses on each bridged or
//! host-only adapter, so that switches (their forwarding tables) and neighbours (their ARP
//! caches) learn at once where it now is — after a migration to another node above all,
//! where it arrives with the same MAC and addresses behind another port.
//!
//! A raw `AF_PACKET` socket opened inside the container's network namespace (by the
//! thread of [`crate::netlink::in_netns`] that configures it), bound to the adapter: one
//! broadcast ARP request per address whose sender and target address are that address
//! (RFC 5227's announcement). Nothing is read from the container's side.

use crate::{NetError, Result};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETH_P_ARP: u16 = 0x0806;

/// The Ethernet frame of an ARP announcement of `ip` by `mac`.
pub fn announcement(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // Ethernet, IPv4, 6- and 4-byte addresses, request.
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    // Target hardware address zero, target protocol address the same address.
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// When announcements are sent again after the first (as QEMU's announce rounds and
/// keepalived do): one frame lost while a bridge port on the way comes up would leave a
/// switch sending the moved address to its old port until a neighbour asks again (tens of
/// seconds).
const REPEATS_MS: [u64; 4] = [100, 300, 1000, 2000];

/// Sends one announcement of each of `ips` on the adapter `ifindex` (MAC `mac`) of the
/// calling thread's network namespace, then again at [`REPEATS_MS`] from a thread of this
/// process (the socket stays in that namespace; a process that ends sooner sends fewer).
pub fn announce(ifindex: u32, mac: [u8; 6], ips: &[Ipv4Addr]) -> Result<()> {
    let sock = packet_socket()?;
    send_all(&sock, ifindex, mac, ips)?;
    let ips = ips.to_vec();
    let _ = std::thread::Builder::new()
        .name("garp".into())
        .spawn(move || {
            let mut at = 0;
            for ms in REPEATS_MS {
                std::thread::sleep(std::time::Duration::from_millis(ms - at));
                at = ms;
                if send_all(&sock, ifindex, mac, &ips).is_err() {
                    break;
                }
            }
        });
    Ok(())
}

fn packet_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket call; the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            ETH_P_ARP.to_be() as i32,
        )
    };
    if fd < 0 {
        return Err(NetError::Sys(
            "socket(AF_PACKET)".into(),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn send_all(sock: &OwnedFd, ifindex: u32, mac: [u8; 6], ips: &[Ipv4Addr]) -> Result<()> {
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    for ip in ips {
        let f = announcement(mac, *ip);
        // SAFETY: the frame and the address outlive the call; lengths are theirs.
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(NetError::Sys(
                format!("send an ARP announcement of {ip}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_names_the_address_twice_and_asks_nobody() {
        let mac = [2, 0, 0, 0, 0, 7];
        let f = announcement(mac, Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[8, 6]);
        assert_eq!(&f[20..22], &[0, 1], "a request");
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[10, 1, 2, 3]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[10, 1, 2, 3]);
    }
}
