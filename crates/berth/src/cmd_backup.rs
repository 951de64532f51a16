//! `berth backup …`: containers into restic-format repositories (docs/backups.md), through
//! the `Node` trait: on the node itself or, with `--remote`, through its berthd (paths are
//! then the node's: repositories, password files, `restore-files --to`).

use crate::output::human;
use crate::{open, progress, Format};
use anyhow::Result;
use berth_api::backup::{
    BackupCreate, BackupFilter, BackupMode, BackupRestore, BackupResult, ForgetRequest, Keep,
    RepoAdd, RestoreFiles, VerifyRequest,
};
use berth_api::Node;
use berth_core::timefmt::utc_seconds;
use berth_core::{CtId, CtRef, NodeRoot};
use clap::Subcommand;
use std::io::Write as _;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum BackupCmd {
    /// Repositories: a directory holding a restic repository, and its password
    Repo {
        #[command(subcommand)]
        cmd: RepoCmd,
    },
    /// Back up containers: a running one stays up (`live`: frozen only while what changed
    /// during a first pass is read again)
    Create {
        /// CTIDs or names
        #[arg(required_unless_present = "all")]
        cts: Vec<String>,
        /// Every container of the node
        #[arg(long, conflicts_with = "cts")]
        all: bool,
        #[arg(long)]
        repo: Option<String>,
        /// `live` (default), `suspend` (frozen for the whole read) or `stop` (stopped, then
        /// started again)
        #[arg(long, default_value = "live")]
        mode: String,
        /// A tag for the snapshot (repeatable)
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Read every file again (default: files unchanged since the last backup, by size,
        /// times and inode, are taken from it)
        #[arg(long)]
        full: bool,
        #[arg(long)]
        description: Option<String>,
        /// Store the containers' templates too (once per repository, by content hash), so
        /// that a backup restores on a node that lacks them
        #[arg(long)]
        with_templates: bool,
        /// Containers of a group backed up at once
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
        parallel: u32,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List backups, oldest first
    List {
        /// Only this container's (CTID or name)
        ct: Option<String>,
        #[arg(long)]
        repo: Option<String>,
        /// Only those made since: `7d`, `24h`, `30m`, seconds
        #[arg(long)]
        since: Option<String>,
        /// Only those of containers with this hostname
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Browse a backup's files: `ls CT [SNAPSHOT] [PATH]` (the latest, `/` by default)
    Ls {
        ct: String,
        #[arg(num_args = 0..=2, value_name = "SNAPSHOT PATH")]
        rest: Vec<String>,
        #[arg(long)]
        repo: Option<String>,
        /// Everything below PATH
        #[arg(short = 'R', long)]
        recursive: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Restore a whole container: to its CTID when free (`--force`: replacing it, stopped),
    /// or as a new container (`--as`: new ID range, MACs and addresses)
    Restore {
        ct: String,
        snapshot: Option<String>,
        #[arg(long)]
        repo: Option<String>,
        #[arg(long = "as", value_name = "CTID")]
        as_ctid: Option<String>,
        #[arg(long)]
        force: bool,
        /// With --force: only the files; the container keeps its current config (limits,
        /// network, name, services)
        #[arg(long, requires = "force")]
        keep_config: bool,
        /// With --as: the backup's MACs and addresses instead of new ones
        #[arg(long, requires = "as_ctid")]
        keep_network: bool,
    },
    /// Restore files of a backup into a new host directory (root-only, owners and modes
    /// as in the container): `restore-files CT [SNAPSHOT] PATH… --to DIR`, or back into a
    /// container at the same paths: `--to-container CT`
    RestoreFiles {
        ct: String,
        #[arg(required = true, value_name = "[SNAPSHOT] PATH")]
        rest: Vec<String>,
        #[arg(
            long,
            required_unless_present = "to_container",
            conflicts_with = "to_container"
        )]
        to: Option<PathBuf>,
        /// The container to write them into (CTID or name), running or stopped
        #[arg(long, value_name = "CT")]
        to_container: Option<String>,
        #[arg(long)]
        repo: Option<String>,
    },
    /// Remove a container's old backups by a retention policy (its latest always stays)
    Forget {
        ct: String,
        #[arg(long)]
        repo: Option<String>,
        /// Only the backups with this tag (e.g. `schedule:nightly`)
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        keep: KeepArgs,
        /// Free the data no backup uses any more
        #[arg(long)]
        prune: bool,
    },
    /// Schedules berthd runs at local times of day: backups of all or some containers,
    /// then the schedule's retention
    Schedule {
        #[command(subcommand)]
        cmd: crate::cmd_backup_schedule::ScheduleCmd,
    },
    /// Check a repository's structure, and with --read-data-subset that share of its data
    Verify {
        #[arg(long)]
        repo: Option<String>,
        /// `10%`, or `100%` for all of it
        #[arg(long, value_name = "PERCENT")]
        read_data_subset: Option<String>,
    },
}

/// A retention policy (restic's `--keep-*`).
#[derive(clap::Args, Clone, Default)]
pub(crate) struct KeepArgs {
    #[arg(long)]
    keep_last: Option<u32>,
    #[arg(long)]
    keep_hourly: Option<u32>,
    #[arg(long)]
    keep_daily: Option<u32>,
    #[arg(long)]
    keep_weekly: Option<u32>,
    #[arg(long)]
    keep_monthly: Option<u32>,
    #[arg(long)]
    keep_yearly: Option<u32>,
}

impl KeepArgs {
    pub(crate) fn keep(&self) -> Keep {
        Keep {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum RepoCmd {
    /// Add a repository: a directory, or with --node a store on a backup node (a new one
    /// is initialised; an existing one opened). Without --password-file a random key is
    /// made under the node root: keep a copy
    Add {
        name: String,
        #[arg(required_unless_present = "node", conflicts_with = "node")]
        dir: Option<PathBuf>,
        /// A backup node, by its name in `berth remote` (its token: a user of role backup
        /// there); the repository is that user's store
        #[arg(long, value_name = "REMOTE")]
        node: Option<String>,
        /// A root-only file whose first line is the password
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List the repositories
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Forget a repository (its files stay)
    Remove { name: String },
    /// The repository used without --repo
    Default { name: String },
}

/// A repository's place as shown: its directory, or its store on a backup node.
fn where_is(r: &berth_api::backup::RepoEntry) -> String {
    match &r.node {
        Some(n) => format!("{}/backup-store/{}", n.url, n.store),
        None => r.path.display().to_string(),
    }
}

pub(crate) fn ctid(node: &dyn Node, s: &str) -> Result<CtId> {
    match CtId::parse(s) {
        Ok(id) => Ok(id),
        Err(_) => Ok(node.status(&CtRef::parse(s)?)?.ctid),
    }
}

fn is_snap(s: &str) -> bool {
    !s.starts_with('/')
}

pub(crate) fn run(root: &NodeRoot, cmd: BackupCmd) -> Result<()> {
    let node = open(root)?;
    let node = &*node;
    let mut out = std::io::stdout().lock();
    match cmd {
        BackupCmd::Repo { cmd } => match cmd {
            RepoCmd::Add {
                name,
                dir,
                node: backup_node,
                password_file,
            } => {
                let node_add = backup_node
                    .map(|n| -> Result<berth_api::backup::RepoNodeAdd> {
                        let remotes = berth_client::Remotes::load(
                            &berth_client::config::config_dir().map_err(berth_api::Error::from)?,
                        )
                        .map_err(berth_api::Error::from)?;
                        let t = berth_client::RemoteNode::migration_target(&remotes, &n)
                            .map_err(berth_api::Error::from)?;
                        Ok(berth_api::backup::RepoNodeAdd {
                            url: t.url,
                            fingerprint: t.fingerprint,
                            token: t.token,
                        })
                    })
                    .transpose()?;
                let r = node.backup_repo_add(RepoAdd {
                    name,
                    path: dir.unwrap_or_default(),
                    password_file,
                    node: node_add,
                })?;
                for n in r.notes {
                    eprintln!("note: {n}");
                }
                writeln!(
                    out,
                    "backup repository {} added at {}",
                    r.repo.name,
                    where_is(&r.repo)
                )?;
            }
            RepoCmd::List { format } => {
                let repos = node.backup_repos()?;
                if format == Format::Json {
                    serde_json::to_writer_pretty(&mut out, &repos)?;
                    writeln!(out)?;
                } else {
                    writeln!(
                        out,
                        "{:<16} {:<8} {:<40} PASSWORD",
                        "NAME", "DEFAULT", "PATH"
                    )?;
                    for r in &repos.repos {
                        let def = if repos.default.as_deref() == Some(&r.name) {
                            "yes"
                        } else {
                            ""
                        };
                        let pw = r
                            .password_file
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "(node key)".into());
                        writeln!(out, "{:<16} {:<8} {:<40} {pw}", r.name, def, where_is(r))?;
                    }
                }
            }
            RepoCmd::Remove { name } => {
                node.backup_repo_remove(&name)?;
                writeln!(out, "backup repository {name} forgotten (its files stay)")?;
            }
            RepoCmd::Default { name } => {
                node.backup_repo_default(&name)?;
                writeln!(out, "backup repository {name} is the default")?;
            }
        },
        BackupCmd::Create {
            cts,
            all,
            repo,
            mode,
            tags,
            full,
            description,
            with_templates,
            parallel,
            format,
        } => {
            let mode: BackupMode = mode.parse()?;
            let ids: Vec<CtId> = if all {
                node.list(true)?.iter().map(|c| c.ctid).collect()
            } else {
                cts.iter().map(|c| ctid(node, c)).collect::<Result<_>>()?
            };
            let o = BackupCreate {
                repo,
                mode,
                tags,
                full,
                description,
                with_templates,
                at_most: None,
            };
            let single = ids.len() == 1;
            // A group: `parallel` at once, a bar each; the outcomes printed in the given order.
            let multi = indicatif::MultiProgress::new();
            let next = std::sync::atomic::AtomicUsize::new(0);
            let done: std::sync::Mutex<Vec<Option<berth_api::Result<BackupResult>>>> =
                std::sync::Mutex::new(ids.iter().map(|_| None).collect());
            std::thread::scope(|sc| {
                for _ in 0..parallel.min(ids.len() as u32) {
                    sc.spawn(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(id) = ids.get(i) else { break };
                        let bar = if single {
                            progress::Bar::new()
                        } else {
                            progress::Bar::in_group(&multi, &id.to_string())
                        }
                        .bytes();
                        let r = node.backup_create(&CtRef::Id(*id), o.clone(), &bar);
                        drop(bar);
                        done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    });
                }
            });
            let _ = multi.clear();
            let mut results = vec![];
            let mut failed = vec![];
            let done = done.into_inner().unwrap_or_else(|e| e.into_inner());
            for (id, r) in ids.iter().zip(done) {
                let Some(r) = r else { continue };
                match r {
                    Ok(r) => {
                        for w in &r.warnings {
                            eprintln!("warning: container {id}: {w}");
                        }
                        if format == Format::Table {
                            let paused = r
                                .paused_ms
                                .map(|m| {
                                    format!(
                                        ", {} {m} ms",
                                        if r.mode == BackupMode::Stop {
                                            "stopped"
                                        } else {
                                            "frozen"
                                        }
                                    )
                                })
                                .unwrap_or_default();
                            writeln!(
                                out,
                                "container {id} backed up: snapshot {} in {} ({} files, {}, {} added{paused})",
                                r.snapshot.short(),
                                r.repo,
                                r.snapshot.files,
                                human(r.snapshot.bytes),
                                human(r.snapshot.added),
                            )?;
                            for t in &r.templates {
                                writeln!(out, "  template {t}")?;
                            }
                        }
                        results.push(r);
                    }
                    Err(x) if single => return Err(x.into()),
                    Err(x) => {
                        eprintln!("error: container {id}: {x}");
                        failed.push(*id);
                    }
                }
            }
            if format == Format::Json {
                serde_json::to_writer_pretty(&mut out, &results)?;
                writeln!(out)?;
            }
            if !failed.is_empty() {
                let l: Vec<String> = failed.iter().map(|i| i.to_string()).collect();
                anyhow::bail!("the backup of {} failed", l.join(", "));
            }
        }
        BackupCmd::List {
            ct,
            repo,
            since,
            hostname,
            tag,
            format,
        } => {
            let since = since
                .map(|s| {
                    if s == "0" {
                        return Ok(0);
                    }
                    berth_auth::parse_duration(&s)
                        .map(|d| berth_core::timefmt::now_ms() as i64 / 1000 - d as i64)
                        .map_err(|m| anyhow::anyhow!("--since {s}: {m}"))
                })
                .transpose()?;
            let f = BackupFilter {
                repo,
                ctid: ct.map(|c| ctid(node, &c)).transpose()?.map(|c| c.0),
                since,
                hostname,
                tag,
                current_only: false,
            };
            let list = node.backup_list(f)?;
            if format == Format::Json {
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<9} {:<6} {:<20} {:<10} {:<20} {:>8} {:>9}  TAGS",
                    "SNAPSHOT", "CTID", "TIME (UTC)", "REPO", "HOSTNAME", "FILES", "SIZE"
                )?;
                for b in &list {
                    let tags: Vec<&str> = b
                        .snapshot
                        .tags
                        .iter()
                        .map(String::as_str)
                        .filter(|t| *t != "berth" && !t.starts_with("ct:"))
                        .collect();
                    writeln!(
                        out,
                        "{:<9} {:<6} {:<20} {:<10} {:<20} {:>8} {:>9}  {}",
                        b.snapshot.short(),
                        b.ctid,
                        utc_seconds(b.snapshot.time.max(0) as u64 * 1000),
                        b.repo,
                        b.snapshot.hostname,
                        b.snapshot.files,
                        human(b.snapshot.bytes),
                        tags.join(",")
                    )?;
                }
            }
        }
        BackupCmd::Ls {
            ct,
            rest,
            repo,
            recursive,
            format,
        } => {
            let id = CtId::parse(&ct)?;
            let (snap, path) = match rest.as_slice() {
                [] => (None, "/".to_string()),
                [a] if is_snap(a) => (Some(a.clone()), "/".into()),
                [a] => (None, a.clone()),
                [a, b] => (Some(a.clone()), b.clone()),
                _ => unreachable!("clap: at most two"),
            };
            let l = node.backup_ls(id, repo, snap, &path, recursive, false)?;
            let (s, list) = (l.snapshot, l.entries);
            if format == Format::Json {
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "snapshot {} of container {id}, {}",
                    s.short(),
                    utc_seconds(s.time.max(0) as u64 * 1000)
                )?;
                for x in &list {
                    let t = x
                        .target
                        .as_deref()
                        .map(|t| format!(" -> {t}"))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "{:<8} {:04o} {:>6}:{:<6} {:>9} {}{t}",
                        x.kind,
                        x.mode,
                        x.uid,
                        x.gid,
                        human(x.size),
                        x.path
                    )?;
                }
            }
        }
        BackupCmd::Restore {
            ct,
            snapshot,
            repo,
            as_ctid,
            force,
            keep_config,
            keep_network,
        } => {
            let id = CtId::parse(&ct)?;
            let o = BackupRestore {
                repo,
                snapshot,
                as_ctid: as_ctid
                    .as_deref()
                    .map(CtId::parse)
                    .transpose()?
                    .map(|c| c.0),
                force,
                keep_config,
                keep_network,
                current_only: false,
            };
            let bar = progress::Bar::new().bytes();
            let r = node.backup_restore(id, o, &bar)?;
            drop(bar);
            let (to, s) = (r.ctid, r.snapshot);
            for n in r.notes {
                eprintln!("note: {n}");
            }
            writeln!(out, "container {to} restored from snapshot {} of container {id} (stopped: `berth start {to}`)", s.short())?;
        }
        BackupCmd::RestoreFiles {
            ct,
            rest,
            to,
            to_container,
            repo,
        } => {
            let id = CtId::parse(&ct)?;
            // A relative path is this directory's here; over --remote it must be the node's.
            let to = match to {
                Some(to) if !to.is_absolute() && !crate::cmd_remote::is_remote() => {
                    Some(std::env::current_dir()?.join(to))
                }
                t => t,
            };
            let to_container = to_container
                .map(|c| ctid(node, &c).map(|i| i.0))
                .transpose()?;
            let (snap, paths) = match rest.split_first() {
                Some((a, tail)) if is_snap(a) => (Some(a.clone()), tail.to_vec()),
                _ => (None, rest.clone()),
            };
            let r = node.backup_restore_files(
                id,
                RestoreFiles {
                    repo,
                    snapshot: snap,
                    paths,
                    to: to.clone(),
                    to_container,
                    current_only: false,
                },
            )?;
            let (s, files, bytes) = (r.snapshot, r.files, r.bytes);
            let into = match (&to, to_container) {
                (Some(t), _) => t.display().to_string(),
                (None, Some(c)) => format!("container {c}"),
                _ => String::new(),
            };
            writeln!(
                out,
                "{files} files ({}) of snapshot {} restored into {into}",
                human(bytes),
                s.short(),
            )?;
            if r.skipped > 0 {
                eprintln!(
                    "note: {} entries not written (devices, FIFOs, marks of deleted files)",
                    r.skipped
                );
            }
        }
        BackupCmd::Forget {
            ct,
            repo,
            tag,
            keep,
            prune,
        } => {
            let id = CtId::parse(&ct)?;
            let keep = keep.keep();
            if keep.is_empty() {
                anyhow::bail!("give a policy: --keep-last N, --keep-daily N, …");
            }
            let r = node.backup_forget(
                id,
                ForgetRequest {
                    repo,
                    tag,
                    keep,
                    prune,
                    current_only: false,
                    manual_only: false,
                },
            )?;
            let (kept, gone, freed) = (r.kept, r.removed, r.freed);
            writeln!(
                out,
                "container {id}: {} backups kept, {} removed",
                kept.len(),
                gone.len()
            )?;
            if prune {
                writeln!(out, "pruned: {} freed", human(freed))?;
            }
        }
        BackupCmd::Verify {
            repo,
            read_data_subset,
        } => {
            let pct = read_data_subset
                .map(|s| {
                    s.trim_end_matches('%')
                        .parse::<f64>()
                        .ok()
                        .filter(|p| *p > 0.0 && *p <= 100.0)
                        .ok_or_else(|| {
                            anyhow::anyhow!("--read-data-subset {s}: a percentage, 1% to 100%")
                        })
                })
                .transpose()?;
            let name = node
                .backup_verify(VerifyRequest {
                    repo,
                    read_data: pct,
                })?
                .repo;
            writeln!(out, "backup repository {name}: no errors found")?;
        }
        BackupCmd::Schedule { cmd } => crate::cmd_backup_schedule::run(node, cmd, &mut out)?,
    }
    Ok(())
}
