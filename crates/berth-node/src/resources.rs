//! `set`, `stats`, `compact` and `node info`: changing a container's limits (live where the
//! kernel allows), reading its usage, and the node's capacity against what was promised.

use crate::local::LocalNode;
use crate::recover::is_active;
use crate::{crash_point, NodeError, Result};
use berth_core::ops::{ContainerStats, CtStatus, NodeInfo, SetOutcome, StopOptions};
use berth_core::resources::{SetMode, SetOptions};
use berth_core::validate::{validate_hostname, validate_name};
use berth_core::{fsutil, ContainerConfig, CtId, CtRef, DiskFs, DiskType, NodeRoot, Size};
use berth_runtime::resources::{self as rres, CgroupSample, HostInfo};
use berth_storage::{disk, loopdev, rootfs, xfs};
use std::time::Duration;

pub use berth_core::checked::{MIN_DISKINODES, MIN_DISKSPACE};

/// Checks a one-line description (the validator config files are checked with too).
pub(crate) fn validate_description(d: &str) -> Result<()> {
    Ok(berth_core::validate::validate_description(d)?)
}

/// Checks the virtual disk's size and inode count (the validator config files are checked
/// with too).
pub(crate) fn validate_disk(cfg: &berth_core::config::DiskConfig) -> Result<()> {
    Ok(cfg.validate()?)
}

/// Whether an ext4 inode count made by `mkfs -N want` matches `want` (mkfs rounds up to fill
/// whole inode-table blocks in every block group).
fn inodes_match(actual: u64, want: u64) -> bool {
    actual >= want && actual <= want + want / 50 + 8192
}

fn xfs_cannot_shrink(id: CtId) -> NodeError {
    NodeError::Invalid(format!(
        "container {id}'s virtual disk is XFS, which cannot shrink: XFS grows only"
    ))
}

/// Applies a running container's limits from `cfg` to the kernel: its cgroups and the
/// root-cgroup write caps of its disk (cgroup v1).
pub(crate) fn apply_live_config(
    root: &NodeRoot,
    node_id: &str,
    cfg: &ContainerConfig,
) -> Result<()> {
    let rid = berth_runtime::runtime_id(node_id, cfg.ctid);
    let dev_nums = rootfs::disk_device(root, cfg.ctid)
        .as_deref()
        .and_then(loopdev::dev_numbers);
    let live = rres::linux_resources(cfg, &HostInfo::detect(), dev_nums, true)?;
    rres::apply_live(&rid, &live)?;
    if let Some(d) = dev_nums {
        rres::apply_writeback_limit(cfg, d)?;
    }
    Ok(())
}

/// Whether [`LocalNode::set_locked`] only checks or also applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetStage {
    Check,
    Apply,
}

impl LocalNode {
    /// Brings a stopped container's virtual disk to the size and inode count of its config
    /// (after `set --setmode ignore|restart`, or a crash half-way through a resize).
    pub(crate) fn reconcile_disk(&self, cfg: &ContainerConfig) -> Result<()> {
        self.reconcile_disk_size(cfg)?;
        if cfg.disk.disktype == DiskType::Fixed {
            // Whatever left holes (a resize2fs zeroing new inode tables, a rebuild, a
            // crash before the preallocation): allocate them.
            disk::preallocate(&self.root().ct_disk(cfg.ctid))?;
        }
        Ok(())
    }

    fn reconcile_disk_size(&self, cfg: &ContainerConfig) -> Result<()> {
        let image = self.root().ct_disk(cfg.ctid);
        if cfg.disk.fstype == DiskFs::Xfs {
            return self.reconcile_xfs(cfg);
        }
        disk::abort_rebuild(&image);
        if let Some(want) = cfg.disk.inodes {
            let u = disk::usage_image(&image)?;
            if !inodes_match(u.total_inodes, want) {
                tracing::info!(ctid = %cfg.ctid, want, have = u.total_inodes, "rebuilding the virtual disk for a new inode count");
                rootfs::with_raw_mount(self.root(), cfg.ctid, DiskFs::Ext4, |mnt, _| {
                    disk::rebuild_with_inodes(&image, mnt, cfg.disk.size, want)
                })
                .inspect_err(|_| disk::abort_rebuild(&image))?;
                crash_point("set:before-commit-rebuild");
                disk::commit_rebuild(&image)?;
                return Ok(());
            }
        }
        let len = std::fs::metadata(&image)
            .map_err(|e| berth_core::CoreError::io(&image, e))?
            .len();
        if len != cfg.disk.size.0 {
            disk::resize_offline(&image, cfg.disk.size)?;
        }
        Ok(())
    }

    /// [`Self::reconcile_disk`] for XFS: grows the filesystem to the image's configured size
    /// and sets its inode limit, mounted (XFS grows only mounted). The superblock, not the
    /// file's length, says what is done, so a crash between the two is completed here.
    fn reconcile_xfs(&self, cfg: &ContainerConfig) -> Result<()> {
        let image = self.root().ct_disk(cfg.ctid);
        let sb = xfs::read_superblock(&image)?;
        let mut want_blocks = cfg.disk.size.0 / sb.block_size;
        if want_blocks < sb.data_blocks {
            // `set` refuses to shrink XFS; this is a grow that completed before a crash kept
            // the new size out of config.toml. The disk stays as it is.
            tracing::warn!(ctid = %cfg.ctid, configured = %cfg.disk.size, blocks = sb.data_blocks, "the XFS virtual disk is larger than configured and cannot shrink: keeping it");
            want_blocks = sb.data_blocks;
        }
        let want_pct = match cfg.disk.inodes {
            Some(n) => xfs::pct_for(want_blocks, sb.inodes_per_block, n).ok_or_else(|| {
                NodeError::from(berth_core::InputError::InvalidValue(
                    n.to_string(),
                    "--diskinodes",
                    format!("does not fit a {} XFS disk", cfg.disk.size),
                ))
            })?,
            None => sb.imax_pct,
        };
        if want_blocks == sb.data_blocks && want_pct == sb.imax_pct {
            return Ok(());
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .map_err(|e| berth_core::CoreError::io(&image, e))?;
        if f.metadata().map(|m| m.len()).unwrap_or(0) < cfg.disk.size.0 {
            f.set_len(cfg.disk.size.0)
                .map_err(|e| berth_core::CoreError::io(&image, e))?;
        }
        drop(f);
        tracing::info!(ctid = %cfg.ctid, blocks = want_blocks, imaxpct = want_pct, "growing the XFS virtual disk");
        rootfs::with_raw_mount(self.root(), cfg.ctid, DiskFs::Xfs, |mnt, _| {
            xfs::grow(mnt, cfg.disk.size, cfg.disk.inodes)
        })?;
        Ok(())
    }

    /// `node set --default-fstype`: the virtual-disk filesystem of new containers.
    pub fn set_default_fstype(&self, fstype: DiskFs) -> Result<()> {
        self.edit_node_config(|node| node.default_fstype = fstype)
    }

    pub(crate) fn set_impl(&self, r: &CtRef, opts: SetOptions) -> Result<SetOutcome> {
        // The node lock before the container's (the order of every other holder of both),
        // never held while waiting for the container's.
        if opts.diskspace.is_some() {
            let (_node, id, _g) = self.lock_node_and_ct(r)?;
            return self.set_locked(id, opts, SetStage::Apply);
        }
        let id = self.resolve(r)?;
        let _g = self.lock_ct(id)?;
        self.set_locked(id, opts, SetStage::Apply)
    }

    /// `set` of settings and limits, with the container's lock held (and the node's when
    /// `diskspace` is given). [`SetStage::Check`] runs every check and changes nothing.
    pub(crate) fn set_locked(
        &self,
        id: CtId,
        opts: SetOptions,
        stage: SetStage,
    ) -> Result<SetOutcome> {
        let old = self.load_config(id)?;
        let mut new = old.clone();
        if let Some(n) = &opts.name {
            if n.is_empty() {
                new.name = None;
            } else {
                validate_name(n)?;
                self.check_name_free(n, Some(id))?;
                new.name = Some(n.clone());
            }
        }
        if let Some(h) = &opts.hostname {
            validate_hostname(h)?;
            new.hostname = Some(h.clone());
        }
        if let Some(d) = &opts.description {
            validate_description(d)?;
            new.description = (!d.is_empty()).then(|| d.clone());
        }
        for (event, script) in &opts.scripts {
            if !berth_runtime::hooks::EVENTS.contains(&event.as_str()) {
                return Err(NodeError::Invalid(format!(
                    "unknown script event {event:?}: one of {}",
                    berth_runtime::hooks::EVENTS.join(", ")
                )));
            }
            if script.is_empty() {
                new.scripts.remove(event);
            } else {
                berth_runtime::hooks::resolve(self.root(), script).map_err(NodeError::Invalid)?;
                new.scripts.insert(event.clone(), script.clone());
            }
        }
        for path in &opts.device_del {
            let before = new.devices.len();
            new.devices.retain(|d| d.path != *path);
            if new.devices.len() == before {
                return Err(NodeError::Invalid(format!(
                    "container {id} has no forwarded device {path}"
                )));
            }
        }
        for spec in &opts.device_add {
            let rule = crate::devices::parse_add(spec, opts.device_force)?;
            new.devices.retain(|d| d.path != rule.path);
            new.devices.push(rule);
        }
        for (name, state) in &opts.capabilities {
            let full = berth_runtime::spec::capability_name(name).ok_or_else(|| {
                NodeError::Invalid(format!(
                    "unknown capability {name:?} (e.g. net_admin, sys_time)"
                ))
            })?;
            let key = full.trim_start_matches("CAP_").to_ascii_lowercase();
            match state.as_str() {
                "on" => {
                    if !new.privileged
                        && berth_runtime::spec::HOST_ONLY_CAPABILITIES.contains(&full.as_str())
                    {
                        return Err(NodeError::Invalid(format!(
                            "{key} acts only in the host's user namespace: container {id} is unprivileged and could not use it (a --privileged container can)"
                        )));
                    }
                    new.capabilities.insert(key, true);
                }
                "off" => {
                    new.capabilities.insert(key, false);
                }
                "default" => {
                    new.capabilities.remove(&key);
                }
                s => {
                    return Err(NodeError::Invalid(format!(
                        "capability {name}: {s:?} is not on, off or default"
                    )))
                }
            }
        }
        new.validate().map_err(NodeError::Core)?;
        if let Some(v) = opts.onboot {
            new.onboot = v;
        }
        if let Some(v) = opts.bootorder {
            new.bootorder = Some(v);
        }
        opts.apply_resources(&mut new.resources);
        new.resources.validate(&rres::node_capacity())?;
        if let Some(d) = opts.diskspace {
            new.disk.size = d.hard;
            new.disk.soft = d.soft;
        }
        if let Some(i) = opts.diskinodes {
            new.disk.inodes = Some(i.hard);
            new.disk.inodes_soft = i.soft;
        }
        validate_disk(&new.disk)?;
        let mut out = SetOutcome::default();
        if new == old {
            out.notes.push("nothing to change".into());
            return Ok(out);
        }
        let cfg_path = self.root().ct_config(id);
        if new.disk.fstype == DiskFs::Xfs && new.disk.size < old.disk.size {
            return Err(xfs_cannot_shrink(id));
        }
        let fixed_growth = if new.disk.disktype == DiskType::Fixed {
            new.disk.size.0.saturating_sub(old.disk.size.0)
        } else {
            0
        };
        if new.disk.size > old.disk.size {
            self.check_disk_promise(Some(id), &new.disk, fixed_growth)?;
        }
        if !is_active(self.root(), id) {
            if stage == SetStage::Check {
                return Ok(out);
            }
            // Stopped: resize or rebuild the disk now, so that errors show here.
            let disk_changed = new.disk.size != old.disk.size || new.disk.inodes != old.disk.inodes;
            if fixed_growth > 0 {
                disk::reserve_growth(&self.root().ct_disk(id), new.disk.size)?;
            }
            if disk_changed {
                self.reconcile_disk(&new)?;
                crash_point("set:stopped-after-resize");
            }
            fsutil::write_toml(&cfg_path, &new)?;
            return Ok(out);
        }
        // Running (or suspended).
        let mut restart_reasons = vec![];
        let fstype = new.disk.fstype;
        let grow = new.disk.size > old.disk.size;
        let xfs_inodes = fstype == DiskFs::Xfs && new.disk.inodes != old.disk.inodes;
        if new.disk.inodes != old.disk.inodes && fstype == DiskFs::Ext4 {
            restart_reasons.push(
                "an ext4 disk's inode count is fixed when it is made: the disk is rebuilt at start"
                    .to_string(),
            );
        }
        if new.disk.size < old.disk.size {
            restart_reasons.push("a mounted ext4 disk cannot shrink".to_string());
        }
        if (grow || xfs_inodes) && !disk::can_resize_online(fstype) {
            restart_reasons.push(match fstype {
                DiskFs::Ext4 => "growing a mounted ext4 disk needs CAP_SYS_RESOURCE, which this node's capability bounding set lacks (XFS disks grow online with CAP_SYS_ADMIN)".to_string(),
                DiskFs::Xfs => "growing a mounted XFS disk needs CAP_SYS_ADMIN, which this node's capability bounding set lacks".to_string(),
            });
        }
        if new.devices != old.devices {
            restart_reasons.push("forwarded devices change at the next start".to_string());
        }
        if new.capabilities != old.capabilities {
            restart_reasons.push("capabilities change at the next start".to_string());
        }
        if !restart_reasons.is_empty() && opts.setmode == SetMode::Live {
            return Err(NodeError::NeedsRestart(id.0, restart_reasons));
        }
        let rid = berth_runtime::runtime_id(&self.node_config().node_id, id);
        let host = HostInfo::detect();
        let dev = rootfs::disk_device(self.root(), id);
        let dev_nums = dev.as_deref().and_then(loopdev::dev_numbers);
        let live = rres::linux_resources(&new, &host, dev_nums, true)?;
        if stage == SetStage::Check {
            return Ok(out);
        }
        // The config first, then the kernel: a kill in between leaves the new config and the
        // marker `run/<ctid>/set-old.toml` (the old config), from which the next command
        // brings the live limits to the config, or, if the kernel refuses them, both back
        // to the old ones (recover::reconcile_set). Never live limits the config lacks.
        if fixed_growth > 0 {
            // The new part's blocks first: ENOSPC here changes nothing.
            disk::reserve_growth(&self.root().ct_disk(id), new.disk.size)?;
        }
        let marker = crate::recover::set_marker(self.root(), id);
        fsutil::write_toml(&marker, &old)?;
        crash_point("set:after-marker");
        fsutil::write_toml(&cfg_path, &new)?;
        crash_point("set:after-config");
        let applied = (|| -> Result<()> {
            if new.resources != old.resources {
                rres::apply_live(&rid, &live)?;
            }
            if let Some(d) = dev_nums {
                rres::apply_writeback_limit(&new, d)?;
            }
            crash_point("set:after-live");
            if (grow || xfs_inodes) && restart_reasons.is_empty() {
                let dev = dev.clone().ok_or(NodeError::NotRunning(id.0))?;
                let mounted = rootfs::mounted_disk_dir(self.root(), id);
                if grow {
                    disk::grow_online(
                        &self.root().ct_disk(id),
                        &dev,
                        &mounted,
                        fstype,
                        new.disk.size,
                        new.disk.inodes,
                    )?;
                } else {
                    xfs::grow(&mounted, new.disk.size, new.disk.inodes)?;
                }
                if fixed_growth > 0 {
                    disk::preallocate(&self.root().ct_disk(id))?;
                }
            }
            Ok(())
        })();
        if let Err(e) = applied {
            // Put back what may have been half-applied, then the old config.
            let _ = apply_live_config(self.root(), &self.node_config().node_id, &old);
            fsutil::write_toml(&cfg_path, &old)?;
            fsutil::remove_file_if_exists(&marker)?;
            return Err(e);
        }
        fsutil::remove_file_if_exists(&marker)?;
        out.applied_live = true;
        let host = new.effective_hostname();
        if host != old.effective_hostname() {
            if let Some(st) = self.run_state(id) {
                // The config holds it already: at worst the next boot applies it.
                let live = crate::live::inside(
                    st.init_pid,
                    !new.privileged,
                    &crate::live::Inside {
                        hostname: Some(&host),
                        files: vec![],
                    },
                );
                if let Err(e) = live {
                    out.notes.push(format!(
                        "hostname {host} saved but not set inside ({e}); the next start sets it"
                    ));
                }
            }
        }
        if !restart_reasons.is_empty() {
            match opts.setmode {
                SetMode::Restart => {
                    self.restart_locked(id, &new, StopOptions::default())?;
                    out.restarted = true;
                }
                _ => {
                    crate::pending::add_pending(self.root(), id, &restart_reasons)?;
                    out.pending_restart = true;
                    out.notes.push(format!(
                        "saved; takes effect at the next start ({})",
                        restart_reasons.join("; ")
                    ));
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn stats_impl(
        &self,
        refs: &[CtRef],
        sample: Duration,
    ) -> Result<Vec<ContainerStats>> {
        let cfgs: Vec<ContainerConfig> = if refs.is_empty() {
            self.configs()?
                .into_iter()
                .filter(|c| is_active(self.root(), c.ctid))
                .collect()
        } else {
            refs.iter()
                .map(|r| self.resolve(r).and_then(|id| self.load_config(id)))
                .collect::<Result<_>>()?
        };
        let rid = |id: CtId| berth_runtime::runtime_id(&self.node_config().node_id, id);
        let first: Vec<Option<CgroupSample>> = cfgs
            .iter()
            .map(|c| {
                is_active(self.root(), c.ctid)
                    .then(|| rres::sample(&rid(c.ctid)).ok())
                    .flatten()
            })
            .collect();
        if first.iter().any(|s| s.is_some()) && !sample.is_zero() {
            std::thread::sleep(sample);
        }
        let host = HostInfo::detect();
        let mut out = vec![];
        for (cfg, s1) in cfgs.iter().zip(first) {
            out.push(self.one_stats(cfg, s1, &rid(cfg.ctid), &host));
        }
        Ok(out)
    }

    fn one_stats(
        &self,
        cfg: &ContainerConfig,
        s1: Option<CgroupSample>,
        rid: &str,
        host: &HostInfo,
    ) -> ContainerStats {
        let id = cfg.ctid;
        let r = &cfg.resources;
        let status = self.current_status(id);
        let mut st = ContainerStats {
            ctid: id,
            name: cfg.name.clone(),
            status: Some(status),
            cpulimit: r.cpulimit,
            cpuset: r.effective_cpus(host.cpus, id.0).map(|m| m.to_string()),
            memory_limit: r.ram.map(|s| s.0),
            swap_limit: r.ram.map(|_| r.swap.map(|s| s.0).unwrap_or(0)),
            numproc: (r.numproc > 0).then_some(r.numproc),
            disk_limit: cfg.disk.size.0,
            disk_soft: cfg.disk.soft.map(|s| s.0),
            inodes_soft: cfg.disk.inodes_soft,
            ..Default::default()
        };
        let running = status != CtStatus::Stopped;
        if running {
            if let Ok(s2) = rres::sample(rid) {
                if let (Some(a), Some(t1), Some(t2)) =
                    (&s1, s1.as_ref().and_then(|s| s.taken), s2.taken)
                {
                    let dt = t2.duration_since(t1).as_nanos() as f64;
                    if dt > 0.0 {
                        let pct = s2.cpu_ns.saturating_sub(a.cpu_ns) as f64 / dt * 100.0;
                        st.cpu_percent = Some((pct * 10.0).round() / 10.0);
                    }
                }
                st.cpu_seconds = Some(s2.cpu_ns as f64 / 1e9);
                st.memory_used = Some(s2.memory_used);
                st.swap_used = s2.swap_used;
                st.processes = Some(s2.processes);
                st.oom_kills = Some(s2.oom_kills);
            }
            if let Ok(u) = disk::usage_mounted(&rootfs::mounted_disk_dir(self.root(), id)) {
                st.disk_used = Some(u.used_bytes);
                st.inodes_used = Some(u.used_inodes);
                st.inodes_limit = Some(u.total_inodes);
            }
            let base = std::fs::read_to_string(self.root().ct_run_dir(id).join("io_base"))
                .ok()
                .and_then(|l| loopdev::IoCounters::from_line(&l))
                .unwrap_or_default();
            if let Some(c) = rootfs::disk_device(self.root(), id)
                .as_deref()
                .and_then(loopdev::io_counters)
                .map(|c| c.since(&base))
            {
                st.io_read_bytes = Some(c.read_bytes);
                st.io_write_bytes = Some(c.write_bytes);
                st.io_read_ops = Some(c.read_ops);
                st.io_write_ops = Some(c.write_ops);
            }
            if let Ok(Some(t)) = self.traffic(&CtRef::Id(id)) {
                st.net_rx_bytes = Some(t.rx_bytes);
                st.net_rx_packets = Some(t.rx_packets);
                st.net_tx_bytes = Some(t.tx_bytes);
                st.net_tx_packets = Some(t.tx_packets);
            }
        } else if let Ok(u) = disk::usage_image(&self.root().ct_disk(id)) {
            st.disk_used = Some(u.used_bytes);
            st.inodes_used = Some(u.used_inodes);
            st.inodes_limit = Some(u.total_inodes);
        }
        st.warnings = warnings(&st);
        st
    }

    pub(crate) fn compact_impl(&self, r: &CtRef) -> Result<u64> {
        let id = self.resolve(r)?;
        let _g = self.lock_ct(id)?;
        let cfg = self.load_config(id)?;
        if cfg.disk.disktype == DiskType::Fixed {
            return Err(NodeError::Invalid(format!(
                "container {id} has a fixed (preallocated) disk: its blocks stay the node's so that it never meets a full node filesystem, and compact would give them back; nothing done"
            )));
        }
        let fstype = cfg.disk.fstype;
        let image = self.root().ct_disk(id);
        let before = disk::allocated(&image);
        if is_active(self.root(), id) {
            disk::trim(&rootfs::mounted_disk_dir(self.root(), id))?;
        } else {
            rootfs::with_raw_mount(self.root(), id, fstype, |mnt, _| disk::trim(mnt))?;
        }
        Ok(before.saturating_sub(disk::allocated(&image)))
    }

    pub(crate) fn node_info_impl(&self) -> Result<NodeInfo> {
        let cap = rres::node_capacity();
        let cfgs = self.configs()?;
        let mut info = NodeInfo {
            node_id: self.node_config().node_id.clone(),
            root: self.root().path().display().to_string(),
            api_fingerprint: berth_storage::safefs::read_in_tree(
                self.root().path(),
                "api/cert.sha256",
                256,
            )
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_ascii_lowercase())
            .filter(|f| f.len() == 64 && f.bytes().all(|c| c.is_ascii_hexdigit())),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            cgroup: cgroup_mode(),
            cpus: cap.cpus,
            memory: cap.memory,
            swap: rres::meminfo("SwapTotal").unwrap_or(0),
            containers: cfgs.len() as u32,
            ..Default::default()
        };
        info.lxcfs = berth_runtime::lxcfs::Lxcfs::from_env().map(|l| {
            let st = l.status();
            berth_core::ops::LxcfsInfo {
                installed: berth_runtime::lxcfs::find_lxcfs().is_some(),
                running: st.running,
                pid: st.pid,
                mount: st.mount.display().to_string(),
                stale: st.stale_mount,
                containers: l.attached().len() as u32,
            }
        });
        if let Ok(u) = nix::sys::statvfs::statvfs(self.root().path()) {
            info.disk_total = u.blocks() * u.fragment_size();
            info.disk_free = u.blocks_available() * u.fragment_size();
        }
        for c in &cfgs {
            if is_active(self.root(), c.ctid) {
                info.running += 1;
            }
            match c.resources.ram {
                Some(r) => info.promised_ram += r.0,
                None => info.unlimited_ram += 1,
            }
            let cpus = c
                .resources
                .effective_cpus(cap.cpus, c.ctid.0)
                .map(|m| m.len() as u64)
                .unwrap_or(cap.cpus as u64);
            info.promised_cpu_percent += c
                .resources
                .cpulimit
                .map(|l| l as u64)
                .unwrap_or(100 * cpus)
                .min(100 * cpus);
            info.promised_disk += c.disk.size.0;
            info.allocated_disk += disk::allocated(&self.root().ct_disk(c.ctid));
        }
        let gib = |b: u64| format!("{:.1}G", b as f64 / Size::GIB as f64);
        if info.promised_ram > info.memory {
            info.warnings.push(format!(
                "memory is overcommitted: containers were promised {} of the node's {}",
                gib(info.promised_ram),
                gib(info.memory)
            ));
        }
        if info.unlimited_ram > 0 {
            info.warnings.push(format!(
                "{} container(s) have no memory limit (ram): each may use all of the node's memory",
                info.unlimited_ram
            ));
        }
        if info.promised_cpu_percent > 100 * info.cpus as u64 {
            info.warnings.push(format!(
                "CPU is overcommitted: containers may use {}% against the node's {}% ({} CPUs); their CPU units (cpuunits) decide who gets what under contention",
                info.promised_cpu_percent,
                100 * info.cpus,
                info.cpus
            ));
        }
        if info.promised_disk > info.disk_total {
            info.warnings.push(format!(
                "disk is overcommitted: virtual disks may grow to {} on {} (they are sparse: {} allocated now)",
                gib(info.promised_disk),
                gib(info.disk_total),
                gib(info.allocated_disk)
            ));
        }
        self.add_disk_info(&mut info);
        Ok(info)
    }
}

/// "v1", "v2" or "hybrid".
fn cgroup_mode() -> String {
    let v2_root = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let unified = std::path::Path::new("/sys/fs/cgroup/unified").is_dir();
    match (v2_root, unified) {
        (true, _) => "v2",
        (false, true) => "v1 (hybrid)",
        _ => "v1",
    }
    .into()
}

/// Soft limits passed, OOM kills, limits nearly reached.
fn warnings(st: &ContainerStats) -> Vec<String> {
    let mut w = vec![];
    if let (Some(used), Some(soft)) = (st.disk_used, st.disk_soft) {
        if used > soft {
            w.push(format!(
                "disk use {} is above the soft limit {}",
                Size(used),
                Size(soft)
            ));
        }
    }
    if let (Some(used), Some(soft)) = (st.inodes_used, st.inodes_soft) {
        if used > soft {
            w.push(format!("{used} inodes used: above the soft limit {soft}"));
        }
    }
    if let Some(n) = st.oom_kills.filter(|n| *n > 0) {
        w.push(format!("{n} process(es) killed for lack of memory (ram)"));
    }
    if let (Some(p), Some(l)) = (st.processes, st.numproc) {
        if p * 10 >= l * 9 {
            w.push(format!("{p} processes: near the limit {l} (numproc)"));
        }
    }
    w
}

/// A pause for the sampling of CPU use.
pub fn default_sample() -> Duration {
    Duration::from_millis(250)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_rounding() {
        assert!(inodes_match(100_096, 100_000));
        assert!(!inodes_match(99_000, 100_000));
        assert!(!inodes_match(65_536, 200_000));
        assert!(!inodes_match(400_000, 200_000));
    }

    #[test]
    fn stats_warnings() {
        let st = ContainerStats {
            disk_used: Some(3 << 30),
            disk_soft: Some(2 << 30),
            oom_kills: Some(2),
            processes: Some(95),
            numproc: Some(100),
            ..Default::default()
        };
        let w = warnings(&st);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(warnings(&ContainerStats::default()).is_empty());
    }
}
