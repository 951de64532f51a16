//! Tables for people, JSON (stable field names) for scripts.

use berth_core::config::TemplateManifest;
use berth_core::ops::{ContainerInfo, ContainerStats, NodeInfo};
use berth_core::Size;
use std::io::Write;

fn uptime(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        Some(s) if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        Some(s) => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// The addresses of a container for a table cell: `-` without any.
fn ips(c: &ContainerInfo) -> String {
    if c.ip.is_empty() {
        "-".into()
    } else {
        c.ip.join(",")
    }
}

pub fn list(cts: &[ContainerInfo], as_json: bool, no_header: bool) -> anyhow::Result<()> {
    if as_json {
        return json(&cts);
    }
    let mut out = std::io::stdout().lock();
    // The REASON column appears when a container is broken.
    let broken = cts.iter().any(|c| c.reason.is_some());
    let ipw = cts.iter().map(|c| ips(c).len()).max().unwrap_or(0).max(15);
    if !no_header {
        let head = format!(
            "{:>10}  {:<16} {:<10} {:<14} {:<24} {:>8}  {:<ipw$}{}",
            "CTID",
            "NAME",
            "STATUS",
            "OSTEMPLATE",
            "HOSTNAME",
            "UPTIME",
            "IP",
            if broken { "  REASON" } else { "" }
        );
        writeln!(out, "{}", head.trim_end())?;
    }
    for c in cts {
        let line = format!(
            "{:>10}  {:<16} {:<10} {:<14} {:<24} {:>8}  {:<ipw$}{}{}",
            c.ctid,
            printable(c.name.as_deref().unwrap_or("-")),
            c.status,
            printable(&c.ostemplate),
            printable(&c.hostname),
            uptime(c.uptime),
            ips(c),
            match &c.reason {
                Some(r) => format!("  {r}"),
                None => String::new(),
            },
            if c.privileged { "  PRIVILEGED!" } else { "" }
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `s` with its control characters escaped (`\n`, `\u{1b}`), for a table: a hand-edited
/// config.toml must not write terminal escape sequences or line breaks into our output.
/// JSON escapes them by itself.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

pub fn status(c: &ContainerInfo, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(c);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ctid:        {}", c.ctid)?;
    writeln!(
        out,
        "name:        {}",
        printable(c.name.as_deref().unwrap_or("-"))
    )?;
    writeln!(out, "status:      {}", c.status)?;
    if let Some(r) = &c.reason {
        writeln!(out, "reason:      {}", printable(r))?;
        return Ok(());
    }
    writeln!(out, "ostemplate:  {}", printable(&c.ostemplate))?;
    writeln!(out, "hostname:    {}", printable(&c.hostname))?;
    writeln!(out, "uptime:      {}", uptime(c.uptime))?;
    writeln!(
        out,
        "init pid:    {}",
        c.init_pid.map(|p| p.to_string()).unwrap_or("-".into())
    )?;
    match c.uid_base {
        Some(b) => writeln!(
            out,
            "user ids:    {}-{} on the host (unprivileged)",
            b,
            b as u64 + 65535
        )?,
        None => writeln!(out, "user ids:    PRIVILEGED (container root is host root)")?,
    }
    match c.disktype {
        berth_core::DiskType::Expanding => {
            writeln!(out, "diskspace:   {} ({})", c.diskspace, c.fstype)?
        }
        berth_core::DiskType::Fixed => {
            writeln!(out, "diskspace:   {} ({}, fixed)", c.diskspace, c.fstype)?
        }
    }
    writeln!(out, "ip:          {}", ips(c))?;
    if !c.networks.is_empty() {
        writeln!(out, "networks:    {}", c.networks.join(", "))?;
    }
    if let Some(d) = &c.description {
        writeln!(out, "description: {}", printable(d))?;
    }
    for p in &c.pending {
        writeln!(out, "pending:     {} (at the next start)", printable(p))?;
    }
    Ok(())
}

pub fn templates(ts: &[TemplateManifest], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(&ts);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<20} {:<4} {:>8}  {:<34} SOURCE",
        "NAME", "KIND", "SIZE", "OS"
    )?;
    for t in ts {
        writeln!(
            out,
            "{:<20} {:<4} {:>8}  {:<34} {}",
            t.name,
            format!("{:?}", t.kind).to_lowercase(),
            Size(t.size.max(1)).to_string(),
            t.os.as_deref().unwrap_or("-"),
            t.source
        )?;
    }
    Ok(())
}

pub fn template(t: &TemplateManifest, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(t);
    }
    berth_storage::template::describe(t, &mut std::io::stdout().lock())?;
    Ok(())
}

/// Bytes in binary units with one decimal: 1.5G, 300.0M, 12K.
pub fn human(b: u64) -> String {
    let units = [
        ("T", 1u64 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ];
    for (u, m) in units {
        if b >= m {
            return format!("{:.1}{u}", b as f64 / m as f64);
        }
    }
    format!("{b}B")
}

fn used_of(used: Option<u64>, limit: Option<u64>, fmt: fn(u64) -> String) -> String {
    let u = used.map(fmt).unwrap_or_else(|| "-".into());
    let l = limit.map(fmt).unwrap_or_else(|| "unlimited".into());
    format!("{u}/{l}")
}

fn plain(n: u64) -> String {
    n.to_string()
}

fn pct(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
}

pub fn stats(st: &[ContainerStats], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(&st);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>8} {:<12} {:<10} {:>7} {:>19} {:>15} {:>4} {:>13} {:>19} {:>17} {:>21} {:>21}",
        "CTID",
        "NAME",
        "STATUS",
        "CPU",
        "MEMORY",
        "SWAP",
        "OOM",
        "PROCS",
        "DISK",
        "INODES",
        "IO R/W",
        "NET IN/OUT"
    )?;
    for s in st {
        let io = match (s.io_read_bytes, s.io_write_bytes) {
            (Some(r), Some(w)) => format!("{}/{}", human(r), human(w)),
            _ => "-".into(),
        };
        let net = match (s.net_rx_bytes, s.net_tx_bytes) {
            (Some(r), Some(w)) => format!("{}/{}", human(r), human(w)),
            _ => "-".into(),
        };
        writeln!(
            out,
            "{:>8} {:<12} {:<10} {:>7} {:>19} {:>15} {:>4} {:>13} {:>19} {:>17} {:>21} {:>21}",
            s.ctid,
            printable(s.name.as_deref().unwrap_or("-")),
            s.status.map(|x| x.to_string()).unwrap_or_default(),
            pct(s.cpu_percent),
            used_of(s.memory_used, s.memory_limit, human),
            used_of(s.swap_used, s.swap_limit, human),
            s.oom_kills.map(|n| n.to_string()).unwrap_or("-".into()),
            used_of(s.processes, s.numproc, plain),
            used_of(s.disk_used, Some(s.disk_limit), human),
            used_of(s.inodes_used, s.inodes_limit, plain),
            io,
            net,
        )?;
        for w in &s.warnings {
            writeln!(out, "{:>8} warning: {w}", "")?;
        }
    }
    Ok(())
}

/// Columns of `list -o`.
pub const COLUMNS: &[&str] = &[
    "ctid",
    "name",
    "status",
    "ostemplate",
    "hostname",
    "ip",
    "networks",
    "pending",
    "bootorder",
    "uptime",
    "privileged",
    "description",
    "cpu",
    "cpulimit",
    "cpuunits",
    "cpus",
    "ram",
    "swap",
    "numproc",
    "disk",
    "diskspace",
    "fstype",
    "disktype",
    "inodes",
    "ioprio",
    "iolimit",
    "iopslimit",
    "onboot",
    "reason",
];

pub fn check_columns(cols: &[String]) -> anyhow::Result<()> {
    for c in cols {
        if !COLUMNS.contains(&c.as_str()) {
            anyhow::bail!("unknown column {c:?}: use {}", COLUMNS.join(","));
        }
    }
    Ok(())
}

pub fn needs_stats(cols: &[String]) -> bool {
    cols.iter().any(|c| {
        matches!(
            c.as_str(),
            "cpu" | "ram" | "swap" | "numproc" | "disk" | "inodes"
        )
    })
}

fn column(col: &str, c: &ContainerInfo, s: Option<&ContainerStats>) -> (String, serde_json::Value) {
    use serde_json::json;
    let text_json = |t: String, j: serde_json::Value| (t, j);
    match col {
        "ctid" => text_json(c.ctid.to_string(), json!(c.ctid)),
        "name" => text_json(
            printable(c.name.as_deref().unwrap_or("-")).into_owned(),
            json!(c.name),
        ),
        "status" => text_json(c.status.to_string(), json!(c.status)),
        "ostemplate" => text_json(printable(&c.ostemplate).into_owned(), json!(c.ostemplate)),
        "hostname" => text_json(printable(&c.hostname).into_owned(), json!(c.hostname)),
        "uptime" => text_json(uptime(c.uptime), json!(c.uptime)),
        "ip" => text_json(ips(c), json!(c.ip)),
        "networks" => text_json(
            if c.networks.is_empty() {
                "-".into()
            } else {
                c.networks.join(",")
            },
            json!(c.networks),
        ),
        "pending" => text_json(
            if c.pending.is_empty() {
                "-".into()
            } else {
                printable(&c.pending.join("; ")).into_owned()
            },
            json!(c.pending),
        ),
        "bootorder" => text_json(
            c.bootorder.map(|b| b.to_string()).unwrap_or("-".into()),
            json!(c.bootorder),
        ),
        "reason" => text_json(c.reason.clone().unwrap_or("-".into()), json!(c.reason)),
        "privileged" => text_json(
            if c.privileged { "PRIVILEGED!" } else { "no" }.into(),
            json!(c.privileged),
        ),
        "description" => text_json(
            printable(c.description.as_deref().unwrap_or("-")).into_owned(),
            json!(c.description),
        ),
        "cpu" => {
            let p = s.and_then(|s| s.cpu_percent);
            text_json(pct(p), json!(p))
        }
        "ram" => {
            let (u, l) = (
                s.and_then(|s| s.memory_used),
                s.and_then(|s| s.memory_limit),
            );
            text_json(used_of(u, l, human), json!({"used": u, "limit": l}))
        }
        "swap" => {
            let (u, l) = (s.and_then(|s| s.swap_used), s.and_then(|s| s.swap_limit));
            text_json(used_of(u, l, human), json!({"used": u, "limit": l}))
        }
        "numproc" => {
            let (u, l) = (s.and_then(|s| s.processes), s.and_then(|s| s.numproc));
            text_json(used_of(u, l, plain), json!({"used": u, "limit": l}))
        }
        "disk" => {
            let (u, l) = (s.and_then(|s| s.disk_used), s.map(|s| s.disk_limit));
            text_json(used_of(u, l, human), json!({"used": u, "limit": l}))
        }
        "inodes" => {
            let (u, l) = (
                s.and_then(|s| s.inodes_used),
                s.and_then(|s| s.inodes_limit),
            );
            text_json(used_of(u, l, plain), json!({"used": u, "limit": l}))
        }
        "diskspace" => text_json(c.diskspace.to_string(), json!(c.diskspace.0)),
        "fstype" => text_json(c.fstype.to_string(), json!(c.fstype)),
        "disktype" => text_json(c.disktype.to_string(), json!(c.disktype)),
        "cpulimit" => {
            let v = c.resources.cpulimit;
            text_json(v.map(|v| format!("{v}%")).unwrap_or("-".into()), json!(v))
        }
        "cpuunits" => text_json(
            c.resources.cpuunits.to_string(),
            json!(c.resources.cpuunits),
        ),
        "cpus" => {
            let v = s.and_then(|s| s.cpuset.clone());
            text_json(v.clone().unwrap_or("all".into()), json!(v))
        }
        "ioprio" => text_json(c.resources.ioprio.to_string(), json!(c.resources.ioprio)),
        "iolimit" => {
            let v = c.resources.iolimit;
            text_json(
                v.map(|v| format!("{v}/s")).unwrap_or("-".into()),
                json!(v.map(|v| v.0)),
            )
        }
        "iopslimit" => {
            let v = c.resources.iopslimit;
            text_json(v.map(|v| v.to_string()).unwrap_or("-".into()), json!(v))
        }
        _ => text_json(if c.onboot { "yes" } else { "no" }.into(), json!(c.onboot)),
    }
}

/// The cells of `list -o COLS`: per container, its text cells (and the container).
pub fn column_texts<'a>(
    cts: &'a [ContainerInfo],
    stats: &[ContainerStats],
    cols: &[String],
) -> Vec<(Vec<String>, &'a ContainerInfo)> {
    cts.iter()
        .map(|c| {
            let s = stats.iter().find(|s| s.ctid == c.ctid);
            (cols.iter().map(|col| column(col, c, s).0).collect(), c)
        })
        .collect()
}

/// The JSON objects of `list -o COLS --format json|yaml`.
pub fn column_values(
    cts: &[ContainerInfo],
    stats: &[ContainerStats],
    cols: &[String],
) -> Vec<serde_json::Value> {
    cts.iter()
        .map(|c| {
            let s = stats.iter().find(|s| s.ctid == c.ctid);
            let m: serde_json::Map<String, serde_json::Value> = cols
                .iter()
                .map(|col| (col.clone(), column(col, c, s).1))
                .collect();
            serde_json::Value::Object(m)
        })
        .collect()
}

pub fn list_columns(
    cts: &[ContainerInfo],
    stats: &[ContainerStats],
    cols: &[String],
    as_json: bool,
    no_header: bool,
) -> anyhow::Result<()> {
    if as_json {
        return json(&column_values(cts, stats, cols));
    }
    let rows: Vec<Vec<String>> = column_texts(cts, stats, cols)
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let mut widths: Vec<usize> = cols.iter().map(|c| c.len()).collect();
    for r in &rows {
        for (i, t) in r.iter().enumerate() {
            widths[i] = widths[i].max(t.len());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    if !no_header {
        let head: Vec<String> = cols.iter().map(|c| c.to_uppercase()).collect();
        writeln!(out, "{}", line(head.iter().map(|s| s.as_str()).collect()))?;
    }
    for r in &rows {
        writeln!(out, "{}", line(r.iter().map(|t| t.as_str()).collect()))?;
    }
    Ok(())
}

pub fn node_info(n: &NodeInfo, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(n);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "node id:      {}", n.node_id)?;
    writeln!(out, "root:         {}", n.root)?;
    if let Some(f) = &n.api_fingerprint {
        writeln!(
            out,
            "API cert:     SHA-256 {f} (berthd; `berth remote add … --fingerprint` pins it)"
        )?;
    }
    writeln!(out, "kernel:       {} (cgroup {})", n.kernel, n.cgroup)?;
    writeln!(out, "cpus:         {}", n.cpus)?;
    writeln!(
        out,
        "memory:       {} (swap {})",
        human(n.memory),
        human(n.swap)
    )?;
    writeln!(
        out,
        "disk:         {} free of {}",
        human(n.disk_free),
        human(n.disk_total)
    )?;
    writeln!(
        out,
        "containers:   {} ({} running)",
        n.containers, n.running
    )?;
    writeln!(out, "promised:")?;
    writeln!(
        out,
        "  memory      {} ({} without a limit)",
        human(n.promised_ram),
        n.unlimited_ram
    )?;
    writeln!(
        out,
        "  cpu         {}% of {}%",
        n.promised_cpu_percent,
        100 * n.cpus
    )?;
    writeln!(
        out,
        "  disk        {} of at most {} ({} allocated; --disk-overcommit {})",
        human(n.promised_disk),
        human(n.disk_promise_limit),
        human(n.allocated_disk),
        n.disk_overcommit
    )?;
    writeln!(
        out,
        "disk reserve: {} (the disk guard freezes the biggest writers below it)",
        human(n.disk_reserve)
    )?;
    if !n.disk_frozen.is_empty() {
        let ids: Vec<String> = n.disk_frozen.iter().map(|i| i.to_string()).collect();
        writeln!(out, "disk frozen:  {}", ids.join(", "))?;
    }
    if let Some(l) = &n.lxcfs {
        let state = if !l.installed {
            "not installed (containers see the host's /proc/meminfo, cpuinfo…)".to_string()
        } else if l.running {
            format!(
                "running, pid {} ({} containers)",
                l.pid.unwrap_or(0),
                l.containers
            )
        } else if l.stale {
            "not running, stale mount (the next container start restarts it)".to_string()
        } else {
            "not running (the next container start starts it)".to_string()
        };
        writeln!(out, "lxcfs:        {state} at {}", l.mount)?;
    }
    for w in &n.warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

/// `node config`.
pub fn node_config(c: &berth_api::NodeConfigInfo, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(c);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "node id:            {}", c.node_id)?;
    writeln!(out, "format version:     {}", c.version)?;
    writeln!(out, "initialised:        {} (Unix time)", c.created)?;
    writeln!(out, "default diskspace:  {}", c.default_diskspace)?;
    writeln!(out, "default fstype:     {}", c.default_fstype)?;
    writeln!(out, "ID ranges from:     {}", c.idmap_start)?;
    writeln!(out, "disk overcommit:    {}", c.disk_overcommit)?;
    match c.disk_reserve {
        Some(r) => writeln!(out, "disk reserve:       {r}")?,
        None => writeln!(
            out,
            "disk reserve:       default (2% of the node filesystem, 128M to 2G)"
        )?,
    }
    writeln!(
        out,
        "backup repository:  {}",
        c.backup_default_repo
            .as_deref()
            .unwrap_or("- (the first backup makes `local`)")
    )?;
    match c.backup_max_per_container {
        Some(m) => writeln!(out, "owners' backups:    at most {m} per container")?,
        None => writeln!(out, "owners' backups:    no limit")?,
    }
    if c.service_defaults.is_empty() {
        writeln!(out, "service defaults:   -")?;
    }
    for (name, st) in &c.service_defaults {
        writeln!(out, "service default:    {name}={st}")?;
    }
    Ok(())
}
