//! `berth migrate CT… NODE`: one container or a group to another node's berthd, driven
//! here or (with `--remote`) by the source's berthd (docs/clone.md).

use crate::{ct, open, owners_follow, progress};
use anyhow::Result;
use berth_api::{CtRef, Node};
use berth_core::{CtId, NodeRoot};

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The containers (CTIDs or names), then the target node (a remote of `berth remote list`)
    #[arg(required = true, num_args = 2.., value_name = "CT… NODE")]
    args: Vec<String>,
    /// `online` (default for a running container): its disk copied while it runs, stopped
    /// only for the last round; `offline`: stopped first
    #[arg(long, value_parser = ["offline", "online"])]
    mode: Option<String>,
    /// The CTID on the target (default: the same; one container only)
    #[arg(long)]
    ctid: Option<String>,
    /// Keep the source here, stopped, instead of destroying it
    #[arg(long)]
    keep_source: bool,
    /// Cap each disk stream, bytes per second with K/M/G (e.g. 50M)
    #[arg(long, value_name = "RATE")]
    bandwidth: Option<String>,
    /// Adapters on network FROM here join network TO on the target (repeatable)
    #[arg(long = "network-map", value_name = "FROM=TO")]
    network_map: Vec<String>,
    /// Migrations of a group at once
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    parallel: u32,
}

pub fn run(root: &NodeRoot, a: MigrateArgs) -> Result<()> {
    let MigrateArgs {
        mut args,
        mode,
        ctid,
        keep_source,
        bandwidth,
        network_map,
        parallel,
    } = a;
    let target_name = args.pop().expect("clap: at least two");
    let cts = args.iter().map(|a| ct(a)).collect::<Result<Vec<_>>>()?;
    if ctid.is_some() && cts.len() > 1 {
        anyhow::bail!("--ctid names one container's CTID on the target: give one container");
    }
    let opts = berth_core::ops::MigrateOptions {
        ctid: ctid.as_deref().map(CtId::parse).transpose()?,
        keep_source,
        online: mode.as_deref() != Some("offline"),
        bandwidth: bandwidth
            .as_deref()
            .map(|b| {
                berth_core::Size::parse(b)
                    .map(|s| s.0)
                    .map_err(|e| anyhow::anyhow!("--bandwidth {b}: {e}"))
            })
            .transpose()?,
        network_map: network_map
            .iter()
            .map(|m| {
                m.split_once('=')
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("--network-map {m}: give FROM=TO"))
            })
            .collect::<Result<_>>()?,
    };
    let remotes = berth_client::Remotes::load(
        &berth_client::config::config_dir().map_err(berth_api::Error::from)?,
    )
    .map_err(berth_api::Error::from)?;
    let target = berth_client::RemoteNode::migration_target(&remotes, &target_name)
        .map_err(berth_api::Error::from)?;
    let node = open(root)?;
    let multi = indicatif::MultiProgress::new();
    let failed = migrate_group(node.as_ref(), &cts, &target, &opts, parallel, &multi, root);
    if failed > 0 {
        anyhow::bail!("{failed} of {} migration(s) failed", cts.len());
    }
    Ok(())
}

/// Migrates `cts` to `target`, `parallel` at once; prints each outcome; the failures.
fn migrate_group(
    node: &dyn Node,
    cts: &[CtRef],
    target: &berth_api::MigrateTarget,
    opts: &berth_core::ops::MigrateOptions,
    parallel: u32,
    multi: &indicatif::MultiProgress,
    root: &NodeRoot,
) -> usize {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let one = |r: &CtRef| -> Result<()> {
        let from = node.status(r)?.ctid;
        let res = {
            let bar = if cts.len() > 1 {
                progress::Bar::in_group(multi, &from.to_string())
            } else {
                progress::Bar::new()
            };
            node.migrate_ct(&CtRef::Id(from), target.clone(), opts.clone(), &bar)?
        };
        if !opts.keep_source {
            owners_follow(root, from, None)?;
        }
        let down = res
            .downtime_ms
            .map(|ms| format!("; down {ms} ms"))
            .unwrap_or_default();
        outln!(
            "container {from} migrated to {} as {} ({}; {} pass(es), {:.1} MiB sent{down})",
            target.name,
            res.info.ctid,
            res.info.status,
            res.rounds,
            res.bytes_sent as f64 / 1048576.0
        );
        Ok(())
    };
    std::thread::scope(|s| {
        for _ in 0..parallel.min(cts.len() as u32) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(r) = cts.get(i) else { break };
                if let Err(e) = one(r) {
                    failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = multi.println(format!("error: container {r}: {e:#}"));
                    if multi.is_hidden() {
                        eprintln!("error: container {r}: {e:#}");
                    }
                }
            });
        }
    });
    failed.into_inner()
}
