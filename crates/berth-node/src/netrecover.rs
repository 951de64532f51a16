//! Recovery of interrupted network changes: a `set` of a running container's network
//! settings (`--netif_add`, `--ipadd`, …) killed half-way, and a `berth network create` or
//! `delete` killed half-way. Run by every command (see [`crate::recover`]).

use crate::Result;
use berth_core::{fsutil, lock, ContainerConfig, CtId, NodeRoot};
use berth_net::{NetNode, NetOp};
use berth_runtime::monitor::RunPaths;
use berth_runtime::state::RunState;

/// `run/<ctid>/net-old.toml`: the config a running container had when a `berth set` of its
/// network settings began; present from before the new config is written until the change
/// is live.
pub fn net_set_marker(root: &NodeRoot, id: CtId) -> std::path::PathBuf {
    root.ct_run_dir(id).join("net-old.toml")
}

/// Finishes a network `set` of a running container that was killed: its networking is set
/// up anew from `config.toml` (links, addresses, routes, rules, `/etc/resolv.conf`), since
/// a kill inside the live change may have left any part of it; if that fails, config and
/// networking go back to the old ones (from the marker). The caller holds the lock.
pub(crate) fn reconcile_net_set(root: &NodeRoot, node_id: &str, id: CtId) -> Result<()> {
    let marker = net_set_marker(root, id);
    if !marker.exists() {
        return Ok(());
    }
    let init = RunState::load(&RunPaths::new(root, id).state()).filter(|s| s.init_alive());
    if let (Some(st), true) = (init, crate::recover::is_active(root, id)) {
        let cfg: ContainerConfig = match fsutil::read_toml(&root.ct_config(id)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%id, "interrupted network `set`: {e}; networking left as it is");
                return fsutil::remove_file_if_exists(&marker).map_err(Into::into);
            }
        };
        tracing::info!(%id, "setting up the networking of an interrupted `set` anew");
        if let Err(e) = resetup(root, node_id, &cfg, st.init_pid) {
            tracing::warn!(%id, "interrupted network `set`: {e}; going back to the old settings");
            if let Ok(old) = fsutil::read_toml::<ContainerConfig>(&marker) {
                fsutil::write_toml(&root.ct_config(id), &old)?;
                let _ = resetup(root, node_id, &old, st.init_pid);
            }
        }
    }
    fsutil::remove_file_if_exists(&marker)?;
    Ok(())
}

/// Removes a running container's networking and sets it up from `cfg`.
fn resetup(root: &NodeRoot, node_id: &str, cfg: &ContainerConfig, pid: i32) -> Result<()> {
    let nn = NetNode::new(root, node_id);
    nn.teardown_ct(cfg.ctid.0)?;
    if cfg.net.is_empty() {
        return Ok(());
    }
    nn.setup_ct(cfg.ctid.0, &cfg.net, pid)?;
    if let Some(text) = berth_net::resolv_conf(&cfg.net, &nn.networks()?) {
        crate::net::write_resolv_live(pid, !cfg.privileged, &text)?;
    }
    Ok(())
}

/// Finishes or rolls back a `berth network create` / `delete` that was killed, under the
/// node lock (left for the next command if another holds it): a delete is completed; a
/// create whose file was written is completed (bridge and rules), one without is rolled
/// back (its bridge is an orphan).
pub(crate) fn recover_network_op(root: &NodeRoot, node_id: &str) -> Result<()> {
    let Some(op) = NetOp::pending(root) else {
        return Ok(());
    };
    let Some(_g) = lock::try_lock(&root.node_lock())? else {
        return Ok(());
    };
    if NetOp::pending(root).is_none() {
        return Ok(());
    }
    let nn = NetNode::new(root, node_id);
    tracing::info!(op = %op.op, network = %op.name, "finishing an interrupted network command");
    match op.op.as_str() {
        "delete" => nn.delete_network_journaled(&op.name)?,
        "create" => {
            if let Ok(cfg) = nn.network(&op.name) {
                nn.ensure_network(&cfg)?;
            }
            nn.remove_orphans(true)?;
            nn.apply_firewall()?;
        }
        _ => {
            nn.remove_orphans(true)?;
            nn.apply_firewall()?;
        }
    }
    NetOp::end(root)?;
    Ok(())
}
