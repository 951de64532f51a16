//! The live console (`berth console`) under a real pseudo-terminal made by the test: the
//! busybox template's login prompt on /dev/console, a login with a password set through
//! `set --userpasswd`, `tty` inside, a resize seen by `stty size`, ^C that does not reach
//! init, the detach keys, a second caller refused, the stop seen by an attached caller, and
//! the console log with and without timestamps.

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `berth console CT` on the slave of a new pty (its controlling terminal); the master is ours.
struct Attached {
    child: Child,
    master: std::fs::File,
    seen: Vec<u8>,
}

fn set_size(fd: &impl AsRawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

fn attach(node: &Node, ct: &str) -> Attached {
    let pty = nix::pty::openpty(None, None).unwrap();
    set_size(&pty.master, 24, 80);
    let slave: OwnedFd = pty.slave;
    let mut cmd = node.cmd(&["console", ct]);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid and TIOCSCTTY between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let master = std::fs::File::from(pty.master);
    // SAFETY: fcntl on our descriptor.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    Attached {
        child,
        master,
        seen: vec![],
    }
}

impl Attached {
    fn send(&mut self, s: &[u8]) {
        self.master.write_all(s).unwrap();
    }

    /// Reads until `needle` appears after `from`; returns the text seen since `from`.
    fn expect(&mut self, from: usize, needle: &str, limit: Duration) -> String {
        let until = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            let text =
                String::from_utf8_lossy(&self.seen[from.min(self.seen.len())..]).into_owned();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > until {
                panic!("{needle:?} not seen within {limit:?}; seen: {text:?}");
            }
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => self.seen.extend_from_slice(&buf[..n]),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn mark(&self) -> usize {
        self.seen.len()
    }

    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                while let Ok(n) = self.master.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    self.seen.extend_from_slice(&buf[..n]);
                }
                return s;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!(
                    "berth console did not end within {limit:?}; seen: {:?}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
            if let Ok(n) = self.master.read(&mut buf) {
                self.seen.extend_from_slice(&buf[..n]);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_password(node: &Node, ct: &str, user: &str, pw: &str) {
    let mut c = node
        .cmd(&["set", ct, "--userpasswd", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{pw}\n").as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

const T: Duration = Duration::from_secs(20);

#[test]
fn console_login_resize_detach_and_log() {
    let node = Node::new("console");
    let ct = "1601";
    node.ok(&[
        "create",
        ct,
        "--ostemplate",
        "busybox",
        "--hostname",
        "con1",
    ]);
    set_password(&node, ct, "root", "c0nsole-Pw");
    node.ok(&["start", ct]);

    let mut a = attach(&node, ct);
    a.expect(0, "detach: Ctrl+a q", T);
    // The getty prints its prompt again on an empty line.
    a.send(b"\r");
    a.expect(0, "login:", T);
    let m = a.mark();
    a.send(b"root\r");
    a.expect(m, "assword:", T);
    a.send(b"c0nsole-Pw\r");
    let m = a.mark();
    a.send(b"tty; echo MARK-$((6*7))\r");
    let out = a.expect(m, "MARK-42", T);
    assert!(out.contains("/dev/console"), "{out:?}");

    // A resize of the operator's terminal reaches the console.
    set_size(&a.master, 33, 101);
    std::thread::sleep(Duration::from_millis(300));
    let m = a.mark();
    a.send(b"stty size\r");
    a.expect(m, "33 101", T);

    // ^C goes to the shell's foreground job, not to init.
    let m = a.mark();
    a.send(b"sleep 30\r");
    std::thread::sleep(Duration::from_millis(300));
    a.send(b"\x03");
    a.send(b"echo after-$((1+1))\r");
    a.expect(m, "after-2", T);
    assert_eq!(node.status(ct)["status"], "running");

    // One caller at a time.
    let second = node
        .cmd(&["console", ct, "--attach"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("console of container 1601 is in use"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // The detach keys end `berth console`; the console and its shell stay.
    a.send(b"\x01q");
    let st = a.wait(T);
    assert!(st.success(), "{st:?}");
    assert!(String::from_utf8_lossy(&a.seen).contains("Detached."));

    // Again: the same shell (logged in), then the container's stop ends the attachment.
    let mut b = attach(&node, ct);
    b.expect(0, "detach", T);
    let m = b.mark();
    b.send(b"echo again-$((2+3))\r");
    b.expect(m, "again-5", T);
    node.ok(&["stop", ct]);
    let st = b.wait(T);
    assert!(st.success(), "{st:?}");
    assert!(
        String::from_utf8_lossy(&b.seen).contains("The container stopped."),
        "{:?}",
        String::from_utf8_lossy(&b.seen)
    );
    drop(b);

    // The log: the session as lines, no terminal carriage returns; stamps on demand.
    let log = node.ok(&["console", ct, "--log"]);
    // The terminal's "\r\n" is kept as "\n" (a shell's lone "\r" stays).
    assert!(log.contains("\nMARK-42\n"), "{log:?}");
    assert!(log.contains("berth: con1 booted"), "{log}");
    let stamped = node.ok(&["console", ct, "--log", "--timestamps"]);
    let first = stamped.lines().next().unwrap();
    assert!(
        first.len() > 25 && first.as_bytes()[10] == b'T' && first[..25].ends_with("Z "),
        "{first}"
    );
    assert_eq!(stamped.lines().count(), log.lines().count());
    // The password typed at the prompt is not echoed, so not in the log.
    assert!(!log.contains("c0nsole-Pw"), "{log}");
    node.ok(&["destroy", ct]);
}

#[test]
fn console_refusals() {
    let node = Node::new("console-bad");
    node.ok(&["create", "1602", "--ostemplate", "busybox"]);
    // Not running: one line, non-zero.
    let o = node
        .cmd(&["console", "1602", "--attach"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("container 1602 is not running"), "{err}");
    node.fails(
        &["console", "1602", "--attach", "--escape", "^]"],
        "--escape",
    );
    node.fails(
        &["console", "1602", "--follow", "--attach"],
        "cannot be used with",
    );
    // The log of a container that never ran is empty, not an error.
    assert_eq!(node.ok(&["console", "1602", "--log"]), "");
    node.ok(&["destroy", "1602"]);
}
