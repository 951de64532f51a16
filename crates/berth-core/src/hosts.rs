//! The container's own name in its `/etc/hosts`: one line Berth manages (marked), the rest
//! of the file as the container has it.

/// The marker of the line Berth manages.
pub const MARK: &str = "# berth: the container's hostname";

/// `existing` (the container's /etc/hosts, if any) with its hostname line for `hostname`:
/// earlier lines of Berth's are replaced; a file without a localhost entry gets one.
pub fn with_hostname(existing: Option<&str>, hostname: &str) -> String {
    let mut out = String::new();
    let text = existing.unwrap_or("");
    let mut has_localhost = false;
    for l in text.lines() {
        if l.trim_end().ends_with(MARK) {
            continue;
        }
        let fields: Vec<&str> = l
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if fields.len() >= 2 && fields[1..].contains(&"localhost") {
            has_localhost = true;
        }
        out.push_str(l);
        out.push('\n');
    }
    if !has_localhost {
        out = format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{out}");
    }
    let short = hostname.split('.').next().unwrap_or(hostname);
    let names = if short != hostname {
        format!("{hostname} {short}")
    } else {
        hostname.to_string()
    };
    out.push_str(&format!("127.0.1.1\t{names}\t{MARK}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_replaces_and_keeps_the_rest() {
        let a = with_hostname(None, "web1");
        assert!(a.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(a.ends_with(&format!("127.0.1.1\tweb1\t{MARK}\n")));
        let b = with_hostname(Some(&a), "web2.example.com");
        assert!(!b.contains("web1"), "{b}");
        assert!(b.contains("127.0.1.1\tweb2.example.com web2\t"));
        assert_eq!(b.matches("localhost\n").count(), 1, "{b}");
        let own = "127.0.0.1 localhost\n10.0.0.5 db # mine\n";
        let c = with_hostname(Some(own), "x");
        assert!(c.starts_with(own), "{c}");
        assert_eq!(c.lines().count(), 3);
    }
}
