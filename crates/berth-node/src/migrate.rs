//! Offline migration between nodes (issue 18, first slice; docs/clone.md, ADR 0018).
//!
//! The source (`berth migrate`, run on the source node) stops a running container, asks
//! the target to check that it can take it, then streams the header and the disk's block
//! frames (`blockcopy::StreamSink`) to the target's [`Node::receive_ct`] — berthd's
//! `POST /migrations/incoming` through `RemoteNode`, or another local node. The target
//! writes them into a new container directory under the journal `clone` (rolled back whole
//! unless the stream ends whole), then starts it if the source ran. Only then is the source
//! destroyed (or kept, stopped, with `--keep-source`). A failure before that leaves the
//! target clean and starts the source again if it ran.

use crate::local::LocalNode;
use crate::recover::{is_active, remove_ct_dir, remove_ct_locks};
use crate::{NodeError, Result};
use berth_api::Node;
use berth_core::config::ContainerConfig;
use berth_core::journal::{Journal, Operation};
use berth_core::ops::{
    ContainerInfo, IncomingHeader, MigrateOptions, MigrateResult, MigrateTarget, StopOptions,
};
use berth_core::{fsutil, lock, CoreError, CtId, CtRef};
use berth_storage::blockcopy::{self, BlockMap, FileSink, StreamSink};
use berth_storage::progress::{NoProgress, Progress};
use std::io::Write;

/// `containers/<ctid>/migrating.toml`: a migration of this container is under way from
/// here; what recovery needs if the `berth migrate` doing it is killed.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Migrating {
    /// It ran when the migration began.
    was_running: bool,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    /// The end of the disk was not sent, so the target has not taken it (a target takes a
    /// container only at the end of its stream): recovery starts the source again if it ran.
    Sending,
    /// The end was sent and the target may have started its copy: recovery leaves the
    /// source stopped (never two running copies).
    Ending,
}

pub(crate) fn marker(root: &berth_core::NodeRoot, id: CtId) -> std::path::PathBuf {
    root.ct_dir(id).join("migrating.toml")
}

impl LocalNode {
    /// The target's side: checks, then (unless `check_only`) the container from the stream.
    pub fn receive_ct(
        &self,
        h: IncomingHeader,
        input: &mut dyn std::io::Read,
        p: &dyn Progress,
    ) -> Result<Option<CtId>> {
        let mut cfg: ContainerConfig = toml::from_str(&h.config)
            .map_err(|e| NodeError::Invalid(format!("the migrated config: {}", e.message())))?;
        cfg.validate()
            .map_err(|e| NodeError::Invalid(format!("the migrated config: {e}")))?;
        let id = h.ctid.unwrap_or(cfg.ctid);
        CtId::parse(&id.to_string())?;
        cfg.ctid = id;
        cfg.idmap = None;
        let node_guard = lock::lock(&self.root().node_lock())?;
        berth_storage::template::load(self.root(), &cfg.ostemplate)?;
        // The same templates by content: the container's files lie over them.
        for t in &h.templates {
            if !berth_storage::template_hash::is_hash(&t.hash) {
                return Err(NodeError::Invalid(format!(
                    "template {}: {:?} is not a content hash",
                    t.name, t.hash
                )));
            }
            let here = berth_storage::template::ensure_hash(self.root(), &t.name)?;
            if here != t.hash {
                return Err(NodeError::Precondition(format!(
                    "template {} here is not the source's ({here} here, {} there): the container's files would lie over other files; make the templates the same first",
                    t.name, t.hash
                )));
            }
        }
        if self.root().ct_dir(id).exists() {
            return Err(CoreError::CtIdInUse(id.0).into());
        }
        let nn = self.net();
        for n in &cfg.net.netifs {
            let net = nn.network(&n.network)?;
            if let Some(s) = net.subnet {
                if let Some(a) = n.addrs.iter().find(|a| !s.contains(a.addr)) {
                    return Err(NodeError::Invalid(format!(
                        "address {a} of adapter {} is outside network {}'s subnet {s} here",
                        n.name, net.name
                    )));
                }
            }
        }
        // Names, addresses and MACs no other container of this node holds.
        self.check_conflicts(&cfg)?;
        self.check_disk_promise(None, &cfg.disk, 0)?;
        // At least 1: 0 asks the check "is free space above the reserve" only.
        self.check_clone_space(id, h.allocated.max(1), &cfg)?;
        if h.check_only {
            return Ok(None);
        }
        let ct_guard = lock::lock(&self.root().ct_lock(id))?;
        let dir = self.root().ct_dir(id);
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CoreError::CtIdInUse(id.0),
            _ => CoreError::io(&dir, e),
        })?;
        fsutil::ensure_mode(&dir, 0o700)?;
        let mut idmap_taken = false;
        let res = (|| -> Result<()> {
            // Rolled back whole by recovery until the disk is in (as a clone).
            Journal::begin(&self.root().ct_journal(id), Operation::Clone)?;
            if !cfg.privileged {
                let configs = self.configs()?;
                cfg.idmap = Some(self.allocate_idmap(id, &configs)?);
                idmap_taken = true;
            }
            fsutil::write_toml(&self.root().ct_config(id), &cfg)?;
            drop(node_guard);
            p.message("receiving the virtual disk");
            let disk = self.root().ct_disk(id);
            let mut file = FileSink::create(&disk)?;
            let refused: std::cell::RefCell<Option<NodeError>> = Default::default();
            let check = self.space_check(id, &cfg, &refused, p);
            let mut sink = blockcopy::GuardedSink::new(&mut file, 256, &check);
            blockcopy::apply_stream(input, &mut sink, cfg.disk.size.0, p)
                .map_err(|e| refused.take().unwrap_or_else(|| e.into()))?;
            if cfg.disk.disktype == berth_core::DiskType::Fixed {
                crate::clone::preallocate(&disk)?;
            }
            Journal::end(&self.root().ct_journal(id))?;
            Ok(())
        })();
        if let Err(e) = res {
            let _ = berth_storage::rootfs::release_disk(self.root(), id);
            if idmap_taken {
                crate::idreg::free(self.root(), &self.node_config().node_id, id);
            }
            let _ = remove_ct_dir(self.root(), id);
            remove_ct_locks(self.root(), id, ct_guard);
            return Err(e);
        }
        if h.start {
            if let Err(e) = self.start_locked(id) {
                // Not two stopped copies: the source starts again.
                let _ = self.destroy_locked(id, ct_guard, true);
                return Err(e);
            }
        }
        Ok(Some(id))
    }

    /// Sends template `name` to `target` as a tar of its files (GNU tar: numeric owners,
    /// xattrs), which it keeps only with content hash `hash`.
    fn send_template(&self, target: &dyn Node, name: &str, hash: &str) -> Result<()> {
        let rootfs = self.root().template_dir(name)?.join("rootfs");
        let mut child = std::process::Command::new("tar")
            .arg("-c")
            .args(berth_storage::template::TAR_KEEP)
            .args(["-f", "-", "-C"])
            .arg(&rootfs)
            .arg(".")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| CoreError::io("tar", e))?;
        let mut out = child.stdout.take().expect("piped");
        let sent = target.receive_template(name, hash, &mut out);
        drop(out);
        let status = child.wait().map_err(|e| CoreError::io("tar", e))?;
        sent.map_err(remote)?;
        if !status.success() {
            return Err(NodeError::Invalid(format!(
                "tar of template {name} failed ({status})"
            )));
        }
        tracing::info!(template = name, "template sent to the migration's target");
        Ok(())
    }

    /// The source's side of a migration to `target`.
    pub fn migrate_out(
        &self,
        r: &CtRef,
        target: &dyn Node,
        opts: MigrateOptions,
        p: &dyn Progress,
    ) -> Result<MigrateResult> {
        let (node_guard, id, guard) = self.lock_node_and_ct(r)?;
        drop(node_guard);
        let cfg = self.load_config(id)?;
        let disk = self.root().ct_disk(id);
        let mut header = IncomingHeader {
            config: outgoing_config(
                std::fs::read_to_string(self.root().ct_config(id))
                    .map_err(|e| CoreError::io(self.root().ct_config(id), e))?,
                &cfg,
                &opts.network_map,
            )?,
            ctid: opts.ctid,
            allocated: blockcopy::allocated(&disk)?,
            start: is_active(self.root(), id),
            check_only: true,
            source: Some(self.node_config().node_id.clone()),
            templates: std::iter::once(&cfg.ostemplate)
                .chain(cfg.app_templates.iter())
                .map(|t| {
                    berth_storage::template::ensure_hash(self.root(), t).map(|hash| {
                        berth_api::ops::TemplateRef {
                            name: t.clone(),
                            hash,
                        }
                    })
                })
                .collect::<std::result::Result<_, _>>()?,
        };
        // A template the target lacks goes first (the check then finds it).
        for t in &header.templates {
            match target.template_info(&t.name) {
                Ok(_) => {}
                Err(e) if e.kind == berth_api::ErrorKind::NotFound => {
                    p.message(&format!("sending template {}", t.name));
                    self.send_template(target, &t.name, &t.hash)?;
                }
                Err(e) => return Err(remote(e)),
            }
        }
        p.message("checking the target");
        target
            .receive_ct(header.clone(), &mut std::io::empty(), &NoProgress)
            .map_err(remote)?;
        if p.cancelled() {
            return Err(NodeError::Cancelled(format!(
                "the migration of container {id}"
            )));
        }
        header.check_only = false;
        let was_running = header.start;
        let online = was_running && opts.online;
        let mark = |phase: Phase| {
            fsutil::write_toml(&marker(self.root(), id), &Migrating { was_running, phase })
        };
        mark(Phase::Sending)?;
        let mut stats = SendStats::default();
        if was_running && !online {
            p.message(&format!("stopping container {id}"));
            stats.down_since = Some(std::time::Instant::now());
            if let Err(e) = self.stop_locked(id, &cfg, StopOptions::default()) {
                let _ = fsutil::remove_file_if_exists(&marker(self.root(), id));
                return Err(e);
            }
        }
        crate::crash_point("migrate:after-stop");
        let live = online.then_some(&cfg);
        let sent = self.send_disk(
            id,
            live,
            target,
            header,
            opts.bandwidth,
            &mut stats,
            p,
            &|| {
                // The point of no return: from here the target may run it.
                if !p.commit() {
                    return Err(NodeError::Cancelled(format!(
                        "the migration of container {id}"
                    )));
                }
                mark(Phase::Ending)?;
                crate::crash_point("migrate:before-end");
                Ok(())
            },
        );
        let info = match sent {
            Ok(info) => info,
            Err(e) => {
                if was_running && !is_active(self.root(), id) {
                    p.message(&format!("starting container {id} again here"));
                    if let Err(e2) = self.start_locked(id) {
                        tracing::warn!(%id, "the source did not start again after a failed migration: {e2}");
                    }
                }
                let _ = fsutil::remove_file_if_exists(&marker(self.root(), id));
                return Err(e);
            }
        };
        let downtime_ms = stats
            .down_since
            .filter(|_| was_running)
            .map(|t| t.elapsed().as_millis() as u64);
        if opts.keep_source {
            fsutil::remove_file_if_exists(&marker(self.root(), id))?;
            drop(guard);
        } else {
            p.message(&format!("destroying container {id} here"));
            self.destroy_locked(id, guard, true)?;
        }
        Ok(MigrateResult {
            info,
            rounds: stats.rounds,
            bytes_sent: stats.bytes,
            downtime_ms,
            source_kept: opts.keep_source,
        })
    }

    /// A migration to the berthd that `target` names, through the node's connector.
    pub fn migrate_to(
        &self,
        r: &CtRef,
        target: &MigrateTarget,
        opts: MigrateOptions,
        p: &dyn Progress,
    ) -> Result<MigrateResult> {
        let connect = self.connector.as_ref().ok_or_else(|| {
            NodeError::Invalid("this node cannot reach other nodes (no connector)".into())
        })?;
        let t = connect(target).map_err(remote)?;
        self.migrate_out(r, t.as_ref(), opts, p)
    }

    /// Streams the header and the disk to `target`: one round of a stopped source; rounds
    /// of a running one (`online`: its config), then its freeze, the last round and its stop.
    #[allow(clippy::too_many_arguments)]
    fn send_disk(
        &self,
        id: CtId,
        online: Option<&ContainerConfig>,
        target: &dyn Node,
        header: IncomingHeader,
        bandwidth: Option<u64>,
        stats: &mut SendStats,
        p: &dyn Progress,
        before_end: &(dyn Fn() -> Result<()> + Sync),
    ) -> Result<ContainerInfo> {
        let disk = self.root().ct_disk(id);
        let (mut rd, wr) =
            std::os::unix::net::UnixStream::pair().map_err(|e| CoreError::io("socketpair", e))?;
        std::thread::scope(|s| {
            let h = header.clone();
            let receiver = s.spawn(move || target.receive_ct(h, &mut rd, &NoProgress));
            let sent = (|| -> Result<u64> {
                let cap = if bandwidth.is_some() {
                    64 << 10
                } else {
                    1 << 20
                };
                let mut w = std::io::BufWriter::with_capacity(cap, Throttle::new(&wr, bandwidth));
                p.message("sending the virtual disk");
                let mut sink = StreamSink::new(&mut w);
                if let Some(cfg) = online {
                    self.online_rounds(id, cfg, &disk, &mut sink, stats, p)?;
                } else {
                    blockcopy::round(&disk, &BlockMap::default(), &mut sink, p)?;
                    stats.rounds = 1;
                }
                before_end()?;
                let n = sink.sent;
                sink.finish()?;
                w.flush()
                    .map_err(|e| CoreError::io("the block stream", e))?;
                Ok(n)
            })();
            let _ = wr.shutdown(std::net::Shutdown::Write);
            if let Ok(n) = &sent {
                stats.bytes = *n;
                p.message("the target is starting its copy");
            }
            let got = receiver
                .join()
                .map_err(|_| NodeError::Invalid("the receiving side panicked".into()))?;
            match (sent, got) {
                (_, Err(e)) => Err(remote(e)),
                (Err(e), Ok(_)) => Err(e),
                (Ok(n), Ok(Some(info))) => {
                    tracing::info!(%id, bytes = n, target = %info.ctid, "migrated");
                    Ok(info)
                }
                (Ok(_), Ok(None)) => Err(NodeError::Invalid(
                    "the target answered a check to a transfer".into(),
                )),
            }
        })
    }
}

/// What the sending side measured.
#[derive(Default)]
struct SendStats {
    rounds: u32,
    bytes: u64,
    /// When the container stopped answering: its stop (offline) or freeze (online).
    down_since: Option<std::time::Instant>,
}

/// The config sent: the source's text (`cfg`, as loaded from it), with adapters moved to
/// other networks by the map (keys no adapter uses are left: a group's map serves all its
/// containers; a network the target lacks is its check's refusal).
fn outgoing_config(
    text: String,
    cfg: &ContainerConfig,
    map: &std::collections::BTreeMap<String, String>,
) -> Result<String> {
    if !cfg.net.netifs.iter().any(|n| map.contains_key(&n.network)) {
        return Ok(text);
    }
    let mut cfg = cfg.clone();
    for n in cfg.net.netifs.iter_mut() {
        if let Some(to) = map.get(&n.network) {
            n.network = to.clone();
        }
    }
    cfg.validate()
        .map_err(|e| NodeError::Invalid(format!("--network-map: {e}")))?;
    toml::to_string(&cfg).map_err(|e| NodeError::Invalid(format!("the config: {e}")))
}

/// A writer held to `rate` bytes per second on average (none: as fast as it goes).
struct Throttle<W> {
    out: W,
    rate: Option<u64>,
    t0: std::time::Instant,
    written: u64,
}

impl<W> Throttle<W> {
    fn new(out: W, rate: Option<u64>) -> Self {
        Throttle {
            out,
            rate: rate.filter(|r| *r > 0),
            t0: std::time::Instant::now(),
            written: 0,
        }
    }
}

impl<W: std::io::Write> std::io::Write for Throttle<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        if let Some(rate) = self.rate {
            self.written += n as u64;
            let due = std::time::Duration::from_secs_f64(self.written as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.t0.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl LocalNode {
    /// What killed `berth migrate`s left on their sources (at open, each of `ids` — those
    /// with a marker, found by `recover_node` — not locked by a running command): a source whose disk's end was not sent is started
    /// again if it ran; one whose end was sent stays stopped (the target may run it), with a
    /// warning in the log. Errors are logged: the command that opened the node goes on.
    pub(crate) fn recover_migrations(&self, ids: &[CtId]) {
        for &id in ids {
            let m = marker(self.root(), id);
            let Ok(Some(_g)) = lock::try_lock(&self.root().ct_lock(id)) else {
                continue;
            };
            let st: Option<Migrating> = fsutil::read_toml(&m).ok();
            match st {
                Some(s)
                    if s.phase == Phase::Sending
                        && s.was_running
                        && !is_active(self.root(), id) =>
                {
                    tracing::warn!(%id, "a migration from here was interrupted before the target took it: starting the container again");
                    if let Err(e) = self.start_locked(id) {
                        tracing::warn!(%id, "it did not start: {e}");
                    }
                }
                Some(s) if s.phase == Phase::Ending => {
                    tracing::warn!(%id, "a migration from here was interrupted after its end was sent: the container stays stopped here; check the target before starting it");
                }
                _ => {}
            }
            let _ = fsutil::remove_file_if_exists(&m);
        }
    }

    /// Online: rounds while the source runs, then freeze (cgroup and filesystem), the last
    /// round, and the source killed while frozen (its processes die at the thaw); stopped
    /// on return, whatever happened.
    fn online_rounds(
        &self,
        id: CtId,
        cfg: &ContainerConfig,
        disk: &std::path::Path,
        sink: &mut dyn blockcopy::BlockSink,
        stats: &mut SendStats,
        p: &dyn Progress,
    ) -> Result<()> {
        let mut map = BlockMap::default();
        let mut last = u64::MAX;
        for n in 1..=crate::clone::MAX_LIVE_ROUNDS {
            p.message(&format!("pass {n} over the disk, the container running"));
            let t = std::time::Instant::now();
            let (m, st) = self.guarded_round(id, cfg, disk, &map, sink, p)?;
            stats.rounds = n;
            map = m;
            let secs = t.elapsed().as_secs_f64().max(1e-3);
            p.message(&format!(
                "pass {n}: {} changed blocks ({:.1} MiB) in {secs:.2} s, {:.1} MiB/s; a pass as big would stop the container for about {} ms",
                st.sent,
                st.bytes as f64 / 1048576.0,
                st.bytes as f64 / secs / 1048576.0,
                (secs * 1000.0) as u64
            ));
            if st.sent <= crate::clone::SMALL_DELTA || st.sent >= last {
                break;
            }
            last = st.sent;
        }
        if p.cancelled() {
            return Err(NodeError::Cancelled(format!(
                "the migration of container {id}"
            )));
        }
        p.message("last pass, the container frozen");
        let t0 = std::time::Instant::now();
        stats.down_since = Some(t0);
        self.freeze_for_clone(id)?;
        let res = (|| -> Result<()> {
            crate::clone::sync_mounted_disk(self.root(), id, true)?;
            self.guarded_round(id, cfg, disk, &map, sink, p)?;
            stats.rounds += 1;
            Ok(())
        })();
        if res.is_err() {
            // It runs on as it was.
            crate::clone::thaw_after_clone(self.root(), &self.node_config().node_id, id);
            return res;
        }
        // Killed while frozen: nothing it does after the last round is lost, since it does
        // nothing more.
        crate::diskguard::kill_frozen(&self.runtime_id(id));
        let thawed = crate::clone::thaw_after_clone(self.root(), &self.node_config().node_id, id);
        let stopped = self.stop_locked(
            id,
            cfg,
            StopOptions {
                timeout: 0,
                kill: true,
            },
        );
        tracing::info!(%id, frozen_ms = t0.elapsed().as_millis() as u64, thawed, "source stopped for the switch-over");
        stopped
    }
}

/// The target's refusal or failure, its kind kept.
fn remote(e: berth_api::Error) -> NodeError {
    NodeError::Target(Box::new(e))
}
