//! Tables for people, JSON (stable field names) for scripts.

use berth_core::config::TemplateManifest;
use berth_core::ops::ContainerInfo;
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

pub fn list(cts: &[ContainerInfo], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(&cts);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>10}  {:<16} {:<10} {:<14} {:<24} {:>8}",
        "CTID", "NAME", "STATUS", "OSTEMPLATE", "HOSTNAME", "UPTIME"
    )?;
    for c in cts {
        writeln!(
            out,
            "{:>10}  {:<16} {:<10} {:<14} {:<24} {:>8}{}",
            c.ctid,
            c.name.as_deref().unwrap_or("-"),
            c.status,
            c.ostemplate,
            c.hostname,
            uptime(c.uptime),
            if c.privileged { "  PRIVILEGED!" } else { "" }
        )?;
    }
    Ok(())
}

pub fn status(c: &ContainerInfo, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(c);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ctid:        {}", c.ctid)?;
    writeln!(out, "name:        {}", c.name.as_deref().unwrap_or("-"))?;
    writeln!(out, "status:      {}", c.status)?;
    writeln!(out, "ostemplate:  {}", c.ostemplate)?;
    writeln!(out, "hostname:    {}", c.hostname)?;
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
    writeln!(out, "diskspace:   {}", c.diskspace)?;
    if let Some(d) = &c.description {
        writeln!(out, "description: {d}")?;
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
