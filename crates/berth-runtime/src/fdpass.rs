//! Passing one descriptor over a unix socket (SCM_RIGHTS), without allocating on the sending
//! side: it runs in forked children.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Room for one descriptor's control message (CMSG_SPACE(sizeof(int)) is 24 on 64-bit).
const CMSG_BUF: usize = 32;

#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_BUF]);

/// Sends `fd` with a one-byte message.
pub fn send_fd(sock: RawFd, fd: RawFd) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf = CmsgBuf([0; CMSG_BUF]);
    // SAFETY: msghdr and cmsg are filled in place within `buf`, which is large enough for
    // one descriptor; sendmsg reads them.
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.0.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        loop {
            if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Receives one descriptor sent by [`send_fd`], waiting at most `timeout`. `None` if the
/// peer closed the socket without sending one (it failed and said why on stderr).
pub fn recv_fd(sock: RawFd, timeout: Duration) -> std::io::Result<Option<OwnedFd>> {
    let mut p = libc::pollfd {
        fd: sock,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: poll on one valid descriptor.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer from the container",
        ));
    }
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf = CmsgBuf([0; CMSG_BUF]);
    // SAFETY: recvmsg fills `buf`; the header is walked with the CMSG macros within it.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.0.as_mut_ptr().cast();
        msg.msg_controllen = CMSG_BUF;
        let r = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        let mut got = None;
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
                if got.is_none() {
                    got = Some(OwnedFd::from_raw_fd(fd));
                } else {
                    libc::close(fd);
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn passes_a_descriptor() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send_fd(a.as_raw_fd(), w.as_raw_fd()).unwrap();
        drop(w);
        let got = recv_fd(b.as_raw_fd(), Duration::from_secs(1))
            .unwrap()
            .unwrap();
        std::fs::File::from(got).write_all(b"x").unwrap();
        let mut s = String::new();
        std::fs::File::from(r).read_to_string(&mut s).unwrap();
        assert_eq!(s, "x");
        drop(a);
        assert!(recv_fd(b.as_raw_fd(), Duration::from_secs(1))
            .unwrap()
            .is_none());
    }
}
