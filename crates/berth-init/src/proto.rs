//! The service definition file and the control protocol.
//!
//! `/.berth/services` (written by the host, read-only inside the container):
//!
//! ```text
//! # berth services v1
//! [web]
//! command=httpd\t-f\t-p\t8080
//! user=www-data
//! startup=auto
//! restart=on-failure
//! after=db,cache
//! ```
//!
//! Command arguments are separated by TAB; `\\`, `\t`, `\n` escape backslash, TAB and newline.
//!
//! Control: the client connects to the abstract unix socket [`SOCKET_NAME`] in the
//! container's network namespace, writes one request line (`VERB [NAME]`) and reads the reply
//! until EOF: a first line `ok` or `error: MESSAGE`, then the body.

/// Abstract socket name (without the leading NUL) the supervisor listens on.
pub const SOCKET_NAME: &str = "berth-init.ctl";
/// Where the host's definitions appear inside the container.
pub const SERVICES_FILE: &str = "/.berth/services";
/// Directory of the per-service logs inside the container.
pub const LOG_DIR: &str = "/var/log/berth";
/// A service log is rotated (to `NAME.log.1`) when it would grow past this size.
pub const LOG_MAX: u64 = 256 * 1024;

/// When a service starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// At boot.
    Auto,
    /// Only on request.
    Manual,
    /// Never (start is refused).
    Disabled,
}

impl Startup {
    pub fn as_str(self) -> &'static str {
        match self {
            Startup::Auto => "auto",
            Startup::Manual => "manual",
            Startup::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Option<Startup> {
        match s {
            "auto" => Some(Startup::Auto),
            "manual" => Some(Startup::Manual),
            "disabled" => Some(Startup::Disabled),
            _ => None,
        }
    }
}

/// What happens when a service's process ends without being asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always start it again (with back-off).
    Always,
    /// Start it again unless it exited with status 0.
    OnFailure,
    /// Leave it stopped (or failed).
    No,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Always => "always",
            Restart::OnFailure => "on-failure",
            Restart::No => "no",
        }
    }
    pub fn parse(s: &str) -> Option<Restart> {
        match s {
            "always" => Some(Restart::Always),
            "on-failure" => Some(Restart::OnFailure),
            "no" => Some(Restart::No),
            _ => None,
        }
    }
}

/// One service as the supervisor runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub command: Vec<String>,
    pub user: String,
    pub startup: Startup,
    pub restart: Restart,
    pub after: Vec<String>,
}

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\t' => o.push_str("\\t"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

fn unescape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('t') => o.push('\t'),
                Some('n') => o.push('\n'),
                Some(x) => o.push(x),
                None => o.push('\\'),
            }
        } else {
            o.push(c);
        }
    }
    o
}

/// Whether `name` is acceptable as a service name (also a file name in [`LOG_DIR`]).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// Renders the services file.
pub fn render(services: &[ServiceSpec]) -> String {
    let mut o = String::from("# berth services v1 (written by the host; do not edit)\n");
    for s in services {
        o.push_str(&format!("[{}]\n", s.name));
        let cmd: Vec<String> = s.command.iter().map(|a| escape(a)).collect();
        o.push_str(&format!("command={}\n", cmd.join("\t")));
        o.push_str(&format!("user={}\n", escape(&s.user)));
        o.push_str(&format!("startup={}\n", s.startup.as_str()));
        o.push_str(&format!("restart={}\n", s.restart.as_str()));
        o.push_str(&format!("after={}\n", s.after.join(",")));
    }
    o
}

/// Parses the services file; errors name the line.
pub fn parse(text: &str) -> Result<Vec<ServiceSpec>, String> {
    let mut out: Vec<ServiceSpec> = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |m: &str| format!("line {}: {m}", i + 1);
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if !valid_name(name) {
                return Err(bad("bad service name"));
            }
            out.push(ServiceSpec {
                name: name.into(),
                command: vec![],
                user: "root".into(),
                startup: Startup::Auto,
                restart: Restart::OnFailure,
                after: vec![],
            });
            continue;
        }
        let cur = out
            .last_mut()
            .ok_or_else(|| bad("key outside a [service]"))?;
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad("expected key=value"))?;
        match k {
            "command" => cur.command = v.split('\t').map(unescape).collect(),
            "user" => cur.user = unescape(v),
            "startup" => cur.startup = Startup::parse(v).ok_or_else(|| bad("bad startup"))?,
            "restart" => cur.restart = Restart::parse(v).ok_or_else(|| bad("bad restart"))?,
            "after" => {
                cur.after = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            _ => {} // unknown keys: newer host, older supervisor
        }
    }
    for s in &out {
        if s.command.is_empty() || s.command[0].is_empty() {
            return Err(format!("service {}: empty command", s.name));
        }
    }
    Ok(out)
}

/// Start order: every service after those it names in `after` (names not in the list are
/// ignored); ties in declaration order. Services in a cycle come last, in declaration order.
pub fn start_order(services: &[ServiceSpec]) -> Vec<usize> {
    let (mut order, cyclic) = order_and_cyclic(services);
    order.extend(cyclic);
    order
}

/// Names of services in an `after` cycle, or waiting on one (empty if none).
pub fn cycle_members(services: &[ServiceSpec]) -> Vec<String> {
    order_and_cyclic(services)
        .1
        .into_iter()
        .map(|i| services[i].name.clone())
        .collect()
}

fn order_and_cyclic(services: &[ServiceSpec]) -> (Vec<usize>, Vec<usize>) {
    let n = services.len();
    let idx = |name: &str| services.iter().position(|s| s.name == name);
    let mut done = vec![false; n];
    let mut order = vec![];
    loop {
        let mut progressed = false;
        for i in 0..n {
            if done[i] {
                continue;
            }
            let ready = services[i]
                .after
                .iter()
                .all(|a| idx(a).is_none_or(|j| done[j] || j == i));
            if ready {
                done[i] = true;
                order.push(i);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    let cyclic = (0..n).filter(|i| !done[*i]).collect();
    (order, cyclic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, after: &[&str]) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            command: vec!["/bin/x".into(), "a b\tc\\d".into()],
            user: "root".into(),
            startup: Startup::Auto,
            restart: Restart::Always,
            after: after.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn roundtrip() {
        let s = vec![svc("web", &["db"]), svc("db", &[])];
        let text = render(&s);
        assert_eq!(parse(&text).unwrap(), s);
        assert!(parse("command=x\n").is_err());
        assert!(parse("[a/b]\n").is_err());
        assert!(parse("[a]\nuser=root\n").is_err());
    }

    #[test]
    fn order_and_cycles() {
        let s = vec![
            svc("web", &["db", "cache"]),
            svc("db", &[]),
            svc("cache", &["db"]),
        ];
        let names: Vec<&str> = start_order(&s)
            .iter()
            .map(|&i| s[i].name.as_str())
            .collect();
        assert_eq!(names, ["db", "cache", "web"]);
        assert!(cycle_members(&s).is_empty());
        let c = vec![svc("a", &["b"]), svc("b", &["a"]), svc("c", &["zzz"])];
        let names: Vec<&str> = start_order(&c)
            .iter()
            .map(|&i| c[i].name.as_str())
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
        assert_eq!(cycle_members(&c), ["a", "b"]);
    }

    #[test]
    fn names() {
        assert!(valid_name("sshd") && valid_name("getty@tty1") && valid_name("a.b-c_d"));
        for b in ["", ".x", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_name(b), "{b}");
        }
    }
}
