//! `berth backup schedule …`: schedules berthd runs (docs/backups.md, "Schedules").

use crate::cmd_backup::{ctid, KeepArgs};
use crate::{progress, Format};
use anyhow::Result;
use berth_api::backup::Schedule;
use berth_api::Node;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ScheduleCmd {
    /// Add a schedule: `add nightly --containers all --at 02:00 --keep-daily 7`
    Add {
        name: String,
        /// `all`, or CTIDs and names separated by commas
        #[arg(long, required = true, value_delimiter = ',')]
        containers: Vec<String>,
        /// Local time of day, HH:MM (repeatable, or separated by commas)
        #[arg(long, required = true, value_delimiter = ',')]
        at: Vec<String>,
        /// Only on these days: mon,tue,wed,thu,fri,sat,sun (default: every day)
        #[arg(long, value_delimiter = ',')]
        days: Vec<String>,
        #[arg(long)]
        repo: Option<String>,
        /// `live` (default), `suspend` or `stop`
        #[arg(long, default_value = "live")]
        mode: String,
        /// A tag for each snapshot (repeatable; `schedule:NAME` is always added)
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Containers backed up at once (1 to 8)
        #[arg(long, default_value_t = 2)]
        parallel: u32,
        /// Store the containers' templates too (once per repository)
        #[arg(long)]
        with_templates: bool,
        #[command(flatten)]
        keep: KeepArgs,
        /// After the retention, free the data no backup uses any more
        #[arg(long)]
        prune: bool,
    },
    /// List the schedules, their next and last runs
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove a schedule (its backups stay)
    Remove { name: String },
    /// Run a schedule now
    Run {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub(crate) fn run(node: &dyn Node, cmd: ScheduleCmd, out: &mut dyn std::io::Write) -> Result<()> {
    use berth_core::calendar::local_stamp;
    match cmd {
        ScheduleCmd::Add {
            name,
            containers,
            at,
            days,
            repo,
            mode,
            tags,
            parallel,
            with_templates,
            keep,
            prune,
        } => {
            let all = containers.iter().any(|c| c == "all");
            if all && containers.len() > 1 {
                anyhow::bail!("--containers: `all` or a list, not both");
            }
            let cts = if all {
                vec![]
            } else {
                containers
                    .iter()
                    .map(|c| ctid(node, c).map(|i| i.0))
                    .collect::<Result<Vec<_>>>()?
            };
            let keep = keep.keep();
            if prune && keep.is_empty() {
                anyhow::bail!("--prune needs a retention policy (--keep-daily N, …)");
            }
            let s = Schedule {
                name,
                all,
                containers: cts,
                at,
                days,
                repo,
                mode: mode.parse()?,
                keep,
                prune,
                tags,
                parallel,
                with_templates,
            };
            let i = node.backup_schedule_add(s)?;
            let when = berth_core::calendar::Calendar::parse(&i.schedule.at, &i.schedule.days)
                .map(|c| c.to_string())
                .unwrap_or_default();
            writeln!(
                out,
                "backup schedule {} added: {when} (local time); next run {}",
                i.schedule.name,
                i.next_run.map(local_stamp).unwrap_or_else(|| "-".into())
            )?;
            writeln!(
                out,
                "berthd runs it: without berthd running on this node, nothing happens at those times"
            )?;
        }
        ScheduleCmd::List { format } => {
            let list = node.backup_schedules()?;
            if format == Format::Json {
                serde_json::to_writer_pretty(&mut *out, &list)?;
                writeln!(out)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<14} {:<24} {:<14} {:<10} {:<17} {:<17} LAST RESULT",
                "NAME", "WHEN (LOCAL)", "CONTAINERS", "REPO", "NEXT RUN", "LAST RUN"
            )?;
            for i in &list {
                let s = &i.schedule;
                let when = berth_core::calendar::Calendar::parse(&s.at, &s.days)
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                let cts = if s.all {
                    "all".to_string()
                } else {
                    s.containers
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let (last, res) = match &i.last_run {
                    Some(r) => (
                        local_stamp(r.started),
                        if r.ok() {
                            format!("ok ({} backed up)", r.backed_up.len())
                        } else {
                            format!("{} failed, {} backed up", r.failed.len(), r.backed_up.len())
                        },
                    ),
                    None => ("-".into(), "-".into()),
                };
                writeln!(
                    out,
                    "{:<14} {:<24} {:<14} {:<10} {:<17} {:<17} {res}",
                    s.name,
                    when,
                    cts,
                    s.repo.as_deref().unwrap_or("(default)"),
                    i.next_run.map(local_stamp).unwrap_or_else(|| "-".into()),
                    last
                )?;
            }
        }
        ScheduleCmd::Remove { name } => {
            node.backup_schedule_remove(&name)?;
            writeln!(out, "backup schedule {name} removed (its backups stay)")?;
        }
        ScheduleCmd::Run { name, format } => {
            let bar = progress::Bar::new();
            let r = node.backup_schedule_run(&name, &bar)?;
            drop(bar);
            if format == Format::Json {
                serde_json::to_writer_pretty(&mut *out, &r)?;
                writeln!(out)?;
            } else {
                for i in &r.backed_up {
                    for w in &i.warnings {
                        eprintln!("warning: container {}: {w}", i.ctid);
                    }
                    writeln!(
                        out,
                        "container {} backed up: snapshot {} in {}{}",
                        i.ctid,
                        &i.snapshot[..8.min(i.snapshot.len())],
                        i.repo,
                        if i.forgotten > 0 {
                            format!(" ({} old backups removed)", i.forgotten)
                        } else {
                            String::new()
                        }
                    )?;
                }
            }
            if !r.ok() {
                let what: Vec<String> = r
                    .failed
                    .iter()
                    .map(|f| {
                        if f.ctid == 0 {
                            f.error.clone()
                        } else {
                            format!("container {}: {}", f.ctid, f.error)
                        }
                    })
                    .collect();
                anyhow::bail!(
                    "backup schedule {name}: {} of {} failed: {}",
                    r.failed.len(),
                    r.failed.len() + r.backed_up.len(),
                    what.join("; ")
                );
            }
        }
    }
    Ok(())
}
