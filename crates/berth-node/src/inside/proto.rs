//! Between [`super::LocalNode`]'s calls and the `berth __inside` helper: one request frame
//! on the helper's stdin (with a password, if any: never in its argv or environment), then
//! a push's data as frames (an empty one ends it; a stream that ends without it is an
//! interrupted transfer, and nothing is written). A pull answers on stdout: a frame with the
//! file's entry, then its bytes. The answer of every operation is the last line of the
//! helper's stderr, the JSON of an [`Answer`].

use berth_api::inside::{CtGroupAdd, CtPassword, CtUserAdd, FilePush};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// Largest frame (a push's chunk, a request).
pub(crate) const MAX_FRAME: usize = 1 << 20;

/// What the helper does inside.
#[derive(Serialize, Deserialize)]
pub(crate) enum Op {
    UserList,
    UserAdd(CtUserAdd),
    /// `busy`: (UID inside, PID inside) of the container's processes.
    UserDel {
        name: String,
        busy: Vec<(u32, i32)>,
    },
    Passwd {
        name: String,
        req: CtPassword,
    },
    GroupList,
    GroupAdd(CtGroupAdd),
    GroupDel {
        name: String,
    },
    Stat {
        path: String,
    },
    List {
        path: String,
    },
    Pull {
        path: String,
    },
    Push(FilePush),
    Remove {
        path: String,
    },
    /// A directory (made, or an existing one's owner and mode set).
    Mkdir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A symbolic link (replacing a file or link of that name).
    Symlink {
        path: String,
        target: String,
        uid: u32,
        gid: u32,
    },
}

/// A running container's init, as the caller saw it (the helper checks it is still that
/// process before it joins it).
#[derive(Serialize, Deserialize, Clone, Copy)]
pub(crate) struct Running {
    pub init_pid: i32,
    pub init_starttime: u64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Request {
    pub ctid: u32,
    /// `None`: stopped (the caller holds its lock; the helper mounts its root).
    pub running: Option<Running>,
    pub op: Op,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum Answer {
    Ok(serde_json::Value),
    Err(berth_api::Error),
}

pub(crate) fn write_frame(w: &mut dyn Write, data: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(data.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(data)?;
    w.flush()
}

/// One frame; `None` at a clean end of the stream (before a length).
pub(crate) fn read_frame(r: &mut dyn Read, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let mut b = vec![];
        write_frame(&mut b, b"abc").unwrap();
        write_frame(&mut b, b"").unwrap();
        let mut r = &b[..];
        assert_eq!(read_frame(&mut r, 10).unwrap().unwrap(), b"abc");
        assert_eq!(read_frame(&mut r, 10).unwrap().unwrap(), b"");
        assert!(read_frame(&mut r, 10).unwrap().is_none());
        let mut r = &b[..2];
        assert!(read_frame(&mut r, 10).is_err());
        let mut r = &b[..];
        assert!(read_frame(&mut r, 2).is_err());
    }
}
