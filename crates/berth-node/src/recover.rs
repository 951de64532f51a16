//! Crash recovery: run at the start of every command. An interrupted create is rolled back
//! unless its config was committed; an interrupted destroy is completed; runtime leftovers of
//! a container whose monitor and init are both gone (mounts, loop devices, cgroups, state)
//! are removed. Containers locked by a running command are left alone.

use crate::Result;
use berth_core::journal::{Journal, Operation};
use berth_core::{fsutil, lock, CtId, NodeRoot};
use berth_runtime::state::{process_starttime, RunState};

/// `run/<ctid>/monitor.pid`: "<pid> <starttime>" of the container's monitor.
pub fn monitor_alive(root: &NodeRoot, id: CtId) -> bool {
    if berth_core::lock::is_locked(&root.monitor_lock(id)) {
        return true;
    }
    let run_dir = root.ct_run_dir(id);
    let Ok(t) = std::fs::read_to_string(run_dir.join("monitor.pid")) else {
        return false;
    };
    let mut it = t.split_whitespace();
    let (Some(pid), Some(st)) = (
        it.next().and_then(|p| p.parse::<i32>().ok()),
        it.next().and_then(|s| s.parse::<u64>().ok()),
    ) else {
        return false;
    };
    process_starttime(pid) == Some(st)
}

/// Removes the runtime leftovers of a container that is not running (idempotent).
pub fn release_runtime(root: &NodeRoot, node_id: &str, id: CtId) -> Result<()> {
    let rid = berth_runtime::runtime_id(node_id, id);
    berth_runtime::monitor::delete_runtime(root, &rid);
    berth_runtime::monitor::clear_writeback_limits(root, id);
    berth_net::NetNode::new(root, node_id).teardown_ct(id.0)?;
    berth_storage::rootfs::teardown(root, id)?;
    fsutil::remove_dir_all_if_exists(&root.ct_run_dir(id))?;
    Ok(())
}

/// True if something of the container still runs: its monitor or its init.
pub fn is_active(root: &NodeRoot, id: CtId) -> bool {
    let run = root.ct_run_dir(id);
    if !run.exists() {
        return false;
    }
    if monitor_alive(root, id) {
        return true;
    }
    RunState::load(&run.join("state.json")).is_some_and(|s| s.init_alive())
}

/// Recovers one container; the caller holds its lock.
pub fn recover_ct(root: &NodeRoot, node_id: &str, id: CtId) -> Result<()> {
    let dir = root.ct_dir(id);
    if let Some(j) = Journal::read(&root.ct_journal(id))? {
        let committed = root.ct_config(id).exists();
        match (j.op, committed) {
            (Operation::Create, true) => {
                tracing::info!(%id, "completing interrupted create");
                Journal::end(&root.ct_journal(id))?;
            }
            (Operation::Create, false) | (Operation::Destroy, _) => {
                tracing::info!(%id, op = ?j.op, "cleaning up interrupted operation");
                release_runtime(root, node_id, id)?;
                berth_storage::rootfs::release_disk(root, id)?;
                remove_ct_dir(root, id)?;
                crate::idreg::free(root, node_id, id);
                return Ok(());
            }
        }
    } else if dir.exists() && !root.ct_config(id).exists() {
        // An empty shell left after a destroy's last step.
        remove_ct_dir(root, id)?;
        crate::idreg::free(root, node_id, id);
        return Ok(());
    }
    if root.ct_run_dir(id).exists() && !is_active(root, id) {
        tracing::info!(%id, "removing runtime leftovers of a stopped container");
        release_runtime(root, node_id, id)?;
    }
    Ok(())
}

/// Removes a container directory: config first (so it leaves the list at once), journal last.
pub fn remove_ct_dir(root: &NodeRoot, id: CtId) -> Result<()> {
    fsutil::remove_file_if_exists(&root.ct_config(id))?;
    let dir = root.ct_dir(id);
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.path() == root.ct_journal(id) {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                fsutil::remove_dir_all_if_exists(&p)?;
            } else {
                fsutil::remove_file_if_exists(&p)?;
            }
        }
    }
    Journal::end(&root.ct_journal(id))?;
    fsutil::remove_dir_all_if_exists(&dir)?;
    Ok(())
}

/// Recovers every container not locked by a running command.
pub fn recover_node(root: &NodeRoot, node_id: &str) -> Result<()> {
    berth_storage::template::clean_stale_staging(root);
    let mut ids = root.list_ct_dirs()?;
    if let Ok(rd) = std::fs::read_dir(root.run_dir()) {
        for e in rd.flatten() {
            if let Some(id) = e.file_name().to_str().and_then(|s| CtId::parse(s).ok()) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    for id in ids {
        let needs = root.ct_journal(id).exists()
            || (root.ct_dir(id).exists() && !root.ct_config(id).exists())
            || (root.ct_run_dir(id).exists() && !is_active(root, id));
        if !needs {
            continue;
        }
        if let Some(_g) = lock::try_lock(&root.ct_lock(id))? {
            recover_ct(root, node_id, id)?;
        }
    }
    Ok(())
}

/// Gives the node root's files their modes (docs/storage.md, "Permissions"), so that a node
/// root made by an older Berth (0644 disk images and configs, 0755 directories,
/// world-traversable `run/<ctid>/`) is closed at the next command without a manual chmod.
/// Cheap: a `stat` per file, a `chmod` only where a mode differs.
pub fn secure_node(root: &NodeRoot) -> Result<()> {
    root.create_layout()?;
    root.secure_templates()?;
    for id in root.list_ct_dirs()? {
        root.secure_ct_dir(id)?;
        if root.ct_run_dir(id).is_dir() {
            if let Ok(cfg) = berth_core::ContainerConfig::load(root, id) {
                root.secure_ct_run_dir(id, cfg.host_root_id())?;
            }
        }
    }
    Ok(())
}
