//! `berth-init ctl VERB [NAME]` and `berth-init logs NAME`: the supervisor's client, run
//! inside the container (by `berth service` through `berth exec`).

use crate::sys::{self, cvt};
use berth_init::proto::{self, LOG_DIR};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Exit code when the supervisor cannot be reached.
const NOT_RUNNING: i32 = 3;

fn connect() -> Result<OwnedFd, String> {
    let (addr, len) = sys::abstract_addr(proto::SOCKET_NAME);
    // SAFETY: a new socket, connected to a filled-in address.
    unsafe {
        let fd = cvt(libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))
        .map_err(|e| e.to_string())?;
        let fd = OwnedFd::from_raw_fd(fd);
        cvt(libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        ))
        .map_err(|_| "Berth's supervisor is not running in this container".to_string())?;
        Ok(fd)
    }
}

fn request(line: &str) -> Result<(bool, String), String> {
    // Right after the container starts, PID 1 may not listen yet: give it a moment when
    // PID 1 is the supervisor.
    let pid1_is_us = std::fs::read("/proc/1/cmdline")
        .map(|c| c.starts_with(b"/.berth/init"))
        .unwrap_or(false);
    let until = Instant::now() + Duration::from_secs(if pid1_is_us { 3 } else { 0 });
    let fd = loop {
        match connect() {
            Ok(fd) => break fd,
            Err(e) if Instant::now() >= until => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut f = std::fs::File::from(fd);
    f.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    f.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (head, body) = out.split_once('\n').unwrap_or((out.as_str(), ""));
    match head.strip_prefix("error: ") {
        Some(m) => Ok((false, m.to_string())),
        None if head == "ok" => Ok((true, body.to_string())),
        None => Err(format!("bad reply from the supervisor: {head:?}")),
    }
}

fn field(body: &str, key: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
        .to_string()
}

fn state(name: &str) -> Result<(String, String), String> {
    match request(&format!("status {name}"))? {
        (true, b) => Ok((field(&b, "state"), field(&b, "last_exit"))),
        (false, m) => Err(m),
    }
}

fn wait_stopped(name: &str) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let (st, _) = state(name)?;
        if st != "running" && st != "stopping" {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!("service {name} did not stop within 15 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After a start: a service that dies at once (bad command, unknown user) is an error.
fn check_started(name: &str) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(200));
    let (st, last) = state(name)?;
    match st.as_str() {
        "running" => Ok(()),
        _ => Err(format!(
            "service {name} did not stay up ({last}); see `berth service CT logs {name}`"
        )),
    }
}

fn run_inner(args: &[String]) -> Result<String, String> {
    let verb = args.first().map(String::as_str).unwrap_or("");
    let name = args.get(1).map(String::as_str).unwrap_or("");
    let simple = |line: String| -> Result<String, String> {
        match request(&line)? {
            (true, b) => Ok(b),
            (false, m) => Err(m),
        }
    };
    match verb {
        "list" | "ping" | "reload" => simple(verb.to_string()),
        "status" => simple(format!("status {name}")),
        "start" => {
            let b = simple(format!("start {name}"))?;
            if !b.starts_with("already") {
                check_started(name)?;
            }
            Ok(b)
        }
        "stop" => {
            let b = simple(format!("stop {name}"))?;
            wait_stopped(name)?;
            Ok(b)
        }
        "restart" => {
            simple(format!("stop {name}"))?;
            wait_stopped(name)?;
            let b = simple(format!("start {name}"))?;
            check_started(name)?;
            Ok(b)
        }
        _ => Err(format!("unknown request {verb:?}")),
    }
}

pub fn run(args: &[String]) -> i32 {
    match run_inner(args) {
        Ok(body) => {
            print!("{body}");
            0
        }
        Err(m) => {
            eprintln!("error: {m}");
            if m.contains("not running in this container") {
                NOT_RUNNING
            } else {
                1
            }
        }
    }
}

/// Prints `NAME.log.1` then `NAME.log`.
pub fn logs(args: &[String]) -> i32 {
    let name = args.first().map(String::as_str).unwrap_or("");
    if !proto::valid_name(name) {
        eprintln!("error: bad service name {name:?}");
        return 2;
    }
    let mut out = std::io::stdout().lock();
    let mut any = false;
    for p in [
        format!("{LOG_DIR}/{name}.log.1"),
        format!("{LOG_DIR}/{name}.log"),
    ] {
        if let Ok(data) = std::fs::read(&p) {
            any = true;
            let _ = out.write_all(&data);
        }
    }
    if !any {
        eprintln!("error: service {name} has no log yet");
        return 1;
    }
    0
}
