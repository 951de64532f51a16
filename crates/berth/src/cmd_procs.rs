//! `berth ps`, `top`, `kill`, `which` and `node services`: processes of containers and of the
//! host, read from the kernel.

use berth_api::procs::{ProcInfo, WhichInfo};
use berth_api::services::HostService;
use berth_api::Node;
use berth_core::CtRef;
use std::io::Write;

fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn mem(bytes: u64) -> String {
    let k = bytes / 1024;
    if k < 10 * 1024 {
        format!("{k}K")
    } else if k < 10 * 1024 * 1024 {
        format!("{}M", k / 1024)
    } else {
        format!("{}G", k / 1024 / 1024)
    }
}

/// Local time as `HH:MM` today, else `Mon DD`.
fn start_time(unix: u64) -> String {
    // SAFETY: localtime_r on local data.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let mut now_tm: libc::tm = std::mem::zeroed();
        let t = unix as libc::time_t;
        let now = libc::time(std::ptr::null_mut());
        libc::localtime_r(&t, &mut tm);
        libc::localtime_r(&now, &mut now_tm);
        if tm.tm_yday == now_tm.tm_yday && tm.tm_year == now_tm.tm_year {
            format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
        } else {
            const M: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            format!("{} {:02}", M[tm.tm_mon.clamp(0, 11) as usize], tm.tm_mday)
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// Orders processes as a tree (children under their parent) with their depth.
fn tree_order(procs: &[ProcInfo]) -> Vec<(usize, &ProcInfo)> {
    let pids: std::collections::HashSet<i32> = procs.iter().map(|p| p.pid).collect();
    let mut out = vec![];
    fn walk<'a>(
        p: &'a ProcInfo,
        depth: usize,
        all: &'a [ProcInfo],
        out: &mut Vec<(usize, &'a ProcInfo)>,
    ) {
        out.push((depth, p));
        for c in all.iter().filter(|c| c.ppid == p.pid && c.pid != p.pid) {
            walk(c, depth + 1, all, out);
        }
    }
    for root in procs.iter().filter(|p| !pids.contains(&p.ppid)) {
        walk(root, 0, procs, &mut out);
    }
    out
}

pub fn ps(node: &dyn Node, ct: &CtRef, tree: bool, as_json: bool) -> anyhow::Result<()> {
    let mut procs = node.ps(ct)?;
    procs.sort_by_key(|p| p.pid);
    if as_json {
        return json(&procs);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>7} {:>8} {:<10} {:>5} {:>7} {:>6} {:<1}  COMMAND",
        "PID", "HOST-PID", "USER", "%CPU", "RSS", "START", "S"
    )?;
    let rows: Vec<(usize, &ProcInfo)> = if tree {
        tree_order(&procs)
    } else {
        procs.iter().map(|p| (0, p)).collect()
    };
    for (depth, p) in rows {
        let prefix = if depth == 0 {
            String::new()
        } else {
            format!("{}\\_ ", "  ".repeat(depth - 1))
        };
        writeln!(
            out,
            "{:>7} {:>8} {:<10} {:>5.1} {:>7} {:>6} {:<1}  {}{}",
            p.pid,
            p.host_pid,
            truncate(&p.user, 10),
            p.cpu,
            mem(p.rss),
            start_time(p.start),
            p.state,
            prefix,
            truncate(&p.command, 120)
        )?;
    }
    Ok(())
}

pub fn top(node: &dyn Node, by_mem: bool, once: bool, as_json: bool) -> anyhow::Result<()> {
    let rows = terminal_rows().saturating_sub(4).max(10);
    loop {
        let mut procs = node.top(if once { 500 } else { 2000 })?;
        if by_mem {
            procs.sort_by_key(|p| std::cmp::Reverse(p.rss));
        } else {
            procs.sort_by(|a, b| b.cpu.total_cmp(&a.cpu).then(b.rss.cmp(&a.rss)));
        }
        if as_json {
            return json(&procs);
        }
        let mut out = std::io::stdout().lock();
        if !once {
            write!(out, "\x1b[H\x1b[2J")?;
        }
        let cts: std::collections::BTreeSet<u32> =
            procs.iter().map(|p| p.ctid).filter(|c| *c != 0).collect();
        writeln!(
            out,
            "berth top: {} processes, {} container(s) with processes; sorted by {}",
            procs.len(),
            cts.len(),
            if by_mem { "memory" } else { "CPU" }
        )?;
        writeln!(
            out,
            "{:>6} {:>7} {:>8} {:<10} {:>5} {:>7} {:<1}  COMMAND",
            "CTID", "PID", "HOST-PID", "USER", "%CPU", "RSS", "S"
        )?;
        let n = if once { procs.len() } else { rows };
        for p in procs.iter().take(n) {
            writeln!(
                out,
                "{:>6} {:>7} {:>8} {:<10} {:>5.1} {:>7} {:<1}  {}",
                p.ctid,
                p.pid,
                p.host_pid,
                truncate(&p.user, 10),
                p.cpu,
                mem(p.rss),
                p.state,
                truncate(&p.command, 100)
            )?;
        }
        out.flush()?;
        if once {
            return Ok(());
        }
    }
}

fn terminal_rows() -> usize {
    // SAFETY: TIOCGWINSZ fills a plain struct.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0 {
            return ws.ws_row as usize;
        }
    }
    40
}

pub fn which(w: &WhichInfo, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(w);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>8} {:>6} {:<16} {:>7}  COMMAND",
        "HOST-PID", "CTID", "NAME", "PID"
    )?;
    writeln!(
        out,
        "{:>8} {:>6} {:<16} {:>7}  {}",
        w.host_pid,
        w.ctid,
        w.name
            .as_deref()
            .unwrap_or(if w.ctid == 0 { "(host)" } else { "-" }),
        w.pid,
        truncate(&w.command, 100)
    )?;
    Ok(())
}

/// Prints the host's services; returns how many are neither Berth's nor the host's init.
pub fn node_services(list: &[HostService], as_json: bool) -> anyhow::Result<usize> {
    let others = list.iter().filter(|s| s.kind == "other").count();
    if as_json {
        json(&list)?;
        return Ok(others);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>7} {:<10} {:<6} {:<28} COMMAND",
        "PID", "USER", "KIND", "LISTENS"
    )?;
    for s in list {
        writeln!(
            out,
            "{:>7} {:<10} {:<6} {:<28} {}",
            s.pid,
            truncate(&s.user, 10),
            s.kind,
            truncate(
                &if s.listens.is_empty() {
                    "-".into()
                } else {
                    s.listens.join(",")
                },
                28
            ),
            truncate(&s.command, 80)
        )?;
    }
    writeln!(out)?;
    if others == 0 {
        writeln!(out, "the host runs only Berth and its init")?;
    } else {
        writeln!(
            out,
            "{others} host process(es) are not part of Berth (KIND other): services would be safer inside a container, where a break-in damages only that container"
        )?;
    }
    Ok(others)
}
