//! Crash recovery: run at the start of every command. An interrupted create is rolled back
//! unless its config was committed; an interrupted destroy is completed; runtime leftovers of
//! a container whose monitor and init are both gone (mounts, loop devices, cgroups, state)
//! are removed. Containers locked by a running command are left alone.

use crate::Result;
use berth_core::journal::{Journal, Operation};
use berth_core::{fsutil, lock, ContainerConfig, CtId, NodeRoot};
use berth_runtime::state::{process_starttime, RunState};

/// `run/<ctid>/monitor.pid`: "<pid> <starttime>" of the container's monitor.
/// Until `start` has written that file, the monitor lock says: the monitor holds it for
/// life. Once the file names a process, that process says, not the lock: the container's
/// processes made by the runtime inherit the lock's descriptor until their init execs, and
/// outlive a monitor killed before that (they are what recovery then kills).
pub fn monitor_alive(root: &NodeRoot, id: CtId) -> bool {
    let run_dir = root.ct_run_dir(id);
    let Ok(t) = std::fs::read_to_string(run_dir.join("monitor.pid")) else {
        return berth_core::lock::is_locked(&root.monitor_lock(id));
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

/// `run/<ctid>/set-old.toml`: the config a running container had when a `berth set` began
/// changing it; present from before the new config is written until its limits are live.
pub fn set_marker(root: &NodeRoot, id: CtId) -> std::path::PathBuf {
    root.ct_run_dir(id).join("set-old.toml")
}

/// Finishes a `berth set` on a running container that was killed between writing the new
/// config and applying it: the live limits are brought to the config; if the kernel refuses
/// them, config and limits go back to the old ones (from the marker). Either way, live
/// limits and `config.toml` agree afterwards.
fn reconcile_set(root: &NodeRoot, node_id: &str, id: CtId) -> Result<()> {
    let marker = set_marker(root, id);
    if !marker.exists() {
        return Ok(());
    }
    if is_active(root, id) {
        // A config.toml no one can read must not stop every command of the node: its
        // limits stay as they are (the next start reports the config).
        let cfg: ContainerConfig = match fsutil::read_toml(&root.ct_config(id)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%id, "interrupted `set`: {e}; live limits left as they are");
                return fsutil::remove_file_if_exists(&marker).map_err(Into::into);
            }
        };
        tracing::info!(%id, "applying the limits of an interrupted `set`");
        if let Err(e) = crate::resources::apply_live_config(root, node_id, &cfg) {
            tracing::warn!(%id, "interrupted `set`: {e}; going back to the old limits");
            if let Ok(old) = fsutil::read_toml::<ContainerConfig>(&marker) {
                let _ = crate::resources::apply_live_config(root, node_id, &old);
                fsutil::write_toml(&root.ct_config(id), &old)?;
            }
        }
    }
    fsutil::remove_file_if_exists(&marker)?;
    Ok(())
}

/// Removes what writers killed half-way left of their temporary files (`.NAME.tmp.PID` of a
/// dead PID) in the node root, the container's directory and its `run/<ctid>/`.
fn remove_stale_temps(root: &NodeRoot, id: CtId) {
    for d in [root.ct_dir(id), root.ct_run_dir(id)] {
        let n = fsutil::remove_stale_temps(&d);
        if n > 0 {
            tracing::info!(%id, n, "removed temporary files of interrupted writes");
        }
    }
}

/// Recovers one container; the caller holds its lock.
pub fn recover_ct(root: &NodeRoot, node_id: &str, id: CtId) -> Result<()> {
    remove_stale_temps(root, id);
    let dir = root.ct_dir(id);
    if let Some(j) = Journal::read(&root.ct_journal(id))? {
        let committed = root.ct_config(id).exists();
        match (j.op, committed) {
            (Operation::Create, true) => {
                tracing::info!(%id, "completing interrupted create");
                Journal::end(&root.ct_journal(id))?;
            }
            (Operation::Move, _) => crate::renumber::recover_move(root, node_id, id, &j)?,
            (Operation::Create, false) | (Operation::Destroy, _) | (Operation::Clone, _) => {
                tracing::info!(%id, op = ?j.op, "cleaning up interrupted operation");
                release_runtime(root, node_id, id)?;
                berth_storage::rootfs::release_disk(root, id)?;
                // The ID range before the directory (see `LocalNode::destroy`).
                crate::idreg::free(root, node_id, id);
                remove_ct_dir(root, id)?;
                return Ok(());
            }
        }
    } else if dir.exists() && !root.ct_config(id).exists() {
        // An empty shell left after a destroy's last step.
        crate::idreg::free(root, node_id, id);
        remove_ct_dir(root, id)?;
        return Ok(());
    }
    // The source of a clone killed while it held it frozen.
    let _ = crate::clone::thaw_after_clone(root, node_id, id);
    if root.ct_run_dir(id).exists() && !is_active(root, id) {
        tracing::info!(%id, "removing runtime leftovers of a stopped container");
        release_runtime(root, node_id, id)?;
    }
    // A `stop` killed before the container went: the caller holds the lock, so no stop is
    // under way, and a marker left would turn the container's next reboot from inside into
    // a stop.
    let stopping = berth_runtime::monitor::RunPaths::new(root, id).stopping();
    if stopping.exists() && is_active(root, id) {
        tracing::info!(%id, "removing the marker of an interrupted stop");
        fsutil::remove_file_if_exists(&stopping)?;
    }
    reconcile_set(root, node_id, id)?;
    crate::netrecover::reconcile_net_set(root, node_id, id)?;
    Ok(())
}

/// Whether a container directory holds a temporary file of a writer that is gone.
fn has_stale_temps(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            e.file_name()
                .to_str()
                .and_then(fsutil::temp_file_pid)
                .is_some_and(fsutil::pid_gone)
        })
    })
}

/// Removes the lock files of a container that no longer exists; `ct_lock` is its held
/// container lock. The monitor lock goes first, and only if nobody holds it; then the
/// container lock, unlinked while held ([`lock::LockGuard::remove`]): a concurrent
/// `create` of the same CTID waiting on it then locks a fresh file, never the same one as
/// someone else.
pub fn remove_ct_locks(root: &NodeRoot, id: CtId, ct_lock: lock::LockGuard) {
    if let Ok(Some(m)) = lock::try_lock(&root.monitor_lock(id)) {
        let _ = m.remove();
    }
    let _ = ct_lock.remove();
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

/// Recovers every container not locked by a running command; the containers that carry
/// a migration's marker (for [`crate::LocalNode`]'s `recover_migrations`, which needs a
/// node to start them: found in the same pass).
pub fn recover_node(root: &NodeRoot, node_id: &str) -> Result<Vec<CtId>> {
    berth_storage::template::clean_stale_staging(root);
    fsutil::remove_stale_temps(root.path());
    fsutil::remove_stale_temps(&root.networks_dir());
    // run/: files of monitors (the disk guard's holder file) that a kill may interrupt.
    fsutil::remove_stale_temps(&root.run_dir());
    crate::backup_files::remove_stale_staging(root);
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
    remove_orphan_locks(root, &ids)?;
    crate::netrecover::recover_network_op(root, node_id)?;
    let mut migrating = vec![];
    for id in ids {
        if crate::migrate::marker(root, id).exists() {
            migrating.push(id);
        }
        let needs = root.ct_journal(id).exists()
            || (root.ct_dir(id).exists() && !root.ct_config(id).exists())
            || (root.ct_run_dir(id).exists() && !is_active(root, id))
            || set_marker(root, id).exists()
            || has_stale_temps(&root.ct_dir(id))
            || has_stale_temps(&root.ct_run_dir(id));
        let needs = needs
            || crate::clone::frozen_marker(root, id).exists()
            || crate::netrecover::net_set_marker(root, id).exists();
        if !needs {
            continue;
        }
        if let Some(g) = lock::try_lock(&root.ct_lock(id))? {
            recover_ct(root, node_id, id)?;
            if !root.ct_dir(id).exists() {
                remove_ct_locks(root, id, g);
            }
        }
    }
    Ok(migrating)
}

/// Removes the lock files of containers that no longer exist (a destroy killed after its
/// directory went), each under its own lock: a `create` holds the lock of its CTID before
/// the directory exists, so a create in progress is never touched.
fn remove_orphan_locks(root: &NodeRoot, ids: &[CtId]) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(root.locks_dir()) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let Some(id) = e
            .file_name()
            .to_str()
            .and_then(|n| {
                n.strip_suffix(".lock")
                    .or_else(|| n.strip_suffix(".monitor"))
            })
            .and_then(|n| CtId::parse(n).ok())
        else {
            continue;
        };
        if ids.contains(&id) || root.ct_dir(id).exists() || root.ct_run_dir(id).exists() {
            continue;
        }
        if let Some(g) = lock::try_lock(&root.ct_lock(id))? {
            if !root.ct_dir(id).exists() && !root.ct_run_dir(id).exists() {
                tracing::info!(%id, "removing the lock files of a destroyed container");
                remove_ct_locks(root, id, g);
            }
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
