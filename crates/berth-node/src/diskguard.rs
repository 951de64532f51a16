//! The node's disk guard: keeps a free-space reserve on the node filesystem by freezing
//! (cgroup freezer, as `berth suspend`) the running containers writing most when free space
//! falls under it, and thawing them when it is back above the reserve plus a hysteresis.
//!
//! There is no daemon: every container's monitor runs [`spawn`]'s thread, and the one that
//! holds a non-blocking flock on `run/diskguard.lock` acts; when its monitor exits, the lock
//! is free and another monitor's thread takes it within one poll. The writer is found by the
//! growth of each running container's disk image's allocated blocks (`st_blocks`, which on
//! ext4 includes delayed-allocation reservations) since the last poll: exactly what a
//! container takes from the node filesystem.
//!
//! A container the guard froze carries `run/<ctid>/disk-frozen` (why); one the admin
//! suspended has none and is left alone. `berth resume` of a guard-frozen container is the
//! admin's decision: the marker goes, and the guard freezes it again only if it writes fast
//! while space is still short.

use crate::diskspace::{fs_space, human, reserve_of};
use berth_core::{lock, CtId, NodeRoot, Size};
use libcontainer::container::ContainerStatus;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the guard samples free space and the images.
pub const POLL: Duration = Duration::from_millis(100);
/// Between the reserve and half of it, a container is frozen only if it took at least this
/// much in one poll (10 MiB/s): neighbours writing a few files keep working.
pub const BURST: u64 = Size::MIB;

/// Free space at which guard-frozen containers are thawed: the reserve and half of it again.
pub fn thaw_threshold(reserve: u64) -> u64 {
    reserve.saturating_add(reserve / 2)
}

/// How a running container stands, for the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtState {
    Running,
    /// Frozen by the guard (it has the marker).
    FrozenByGuard,
    /// Suspended by the admin: never touched.
    Suspended,
}

/// One running container at one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub id: CtId,
    /// Bytes its image took from the node filesystem since the last poll.
    pub growth: u64,
    pub state: CtState,
}

/// What to do at one poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Containers to freeze, the biggest writer first, with what each took in the poll.
    pub freeze: Vec<(CtId, u64)>,
    pub thaw: Vec<CtId>,
}

/// The pure decision: `free` now and at the previous poll, the reserve, the samples.
///
/// - At or above [`thaw_threshold`]: thaw every container the guard froze.
/// - Below the reserve (or about to be: free minus twice the last poll's fall): freeze
///   every running container that took at least [`BURST`] in the poll, biggest first; if
///   none did but together they took that much, the biggest writer.
/// - Below half the reserve: freeze every running container that took anything.
pub fn decide(free: u64, prev_free: Option<u64>, reserve: u64, samples: &[Sample]) -> Decision {
    let mut d = Decision::default();
    if free >= thaw_threshold(reserve) {
        d.thaw = samples
            .iter()
            .filter(|s| s.state == CtState::FrozenByGuard)
            .map(|s| s.id)
            .collect();
        return d;
    }
    let fall = prev_free.map_or(0, |p| p.saturating_sub(free));
    let projected = free.saturating_sub(fall.saturating_mul(2));
    if projected >= reserve {
        return d;
    }
    let mut writers: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.state == CtState::Running && s.growth > 0)
        .collect();
    writers.sort_by(|a, b| b.growth.cmp(&a.growth).then(a.id.0.cmp(&b.id.0)));
    let critical = free < reserve / 2;
    let mut chosen: Vec<&Sample> = writers
        .iter()
        .copied()
        .filter(|s| critical || s.growth >= BURST)
        .collect();
    // Spread writes: together the running containers took BURST, none alone. (What frozen
    // containers' dirty data still brings in makes free space fall too: it is no reason
    // to freeze a neighbour writing a little.)
    let running_total: u64 = writers.iter().map(|s| s.growth).sum();
    if chosen.is_empty() && running_total >= BURST {
        chosen.extend(writers.first().copied());
    }
    d.freeze = chosen.iter().map(|s| (s.id, s.growth)).collect();
    d
}

/// `run/<ctid>/disk-frozen`: present while the guard holds the container frozen.
pub fn marker(root: &NodeRoot, id: CtId) -> PathBuf {
    root.ct_run_dir(id).join("disk-frozen")
}

/// The node's log of disk-guard events: `<node root>/diskguard.log`.
pub fn node_log(root: &NodeRoot) -> PathBuf {
    root.path().join("diskguard.log")
}

fn guard_lock(root: &NodeRoot) -> PathBuf {
    root.run_dir().join("diskguard.lock")
}

/// `run/diskguard.holder`: the PID of the monitor that last took the guard.
pub fn holder_file(root: &NodeRoot) -> PathBuf {
    root.run_dir().join("diskguard.holder")
}

/// Containers of the node the guard holds frozen now.
pub fn frozen_containers(root: &NodeRoot) -> Vec<CtId> {
    root.list_ct_dirs()
        .unwrap_or_default()
        .into_iter()
        .filter(|id| {
            marker(root, *id).exists() && status(root, *id) == Some(ContainerStatus::Paused)
        })
        .collect()
}

fn runtime_id(root: &NodeRoot, id: CtId) -> Option<String> {
    let node = root.load_node_config().ok()?;
    Some(berth_runtime::runtime_id(&node.node_id, id))
}

fn status(root: &NodeRoot, id: CtId) -> Option<ContainerStatus> {
    let rid = runtime_id(root, id)?;
    berth_runtime::monitor::load_container(root, &rid).map(|c| c.status())
}

/// Whether the container's cgroup is frozen (v1 `freezer.state`, v2 `cgroup.freeze`): what
/// `berth suspend` and the guard set; None if it has no freezer cgroup (not running).
fn frozen(runtime_id: &str) -> Option<bool> {
    let v1 = PathBuf::from("/sys/fs/cgroup/freezer")
        .join(runtime_id)
        .join("freezer.state");
    if let Ok(t) = std::fs::read_to_string(v1) {
        return Some(t.trim() != "THAWED");
    }
    let v2 = PathBuf::from("/sys/fs/cgroup")
        .join(runtime_id)
        .join("cgroup.freeze");
    std::fs::read_to_string(v2).ok().map(|t| t.trim() == "1")
}

/// Starts the guard's thread in this (monitor) process. It only reads files of the node
/// root and sysfs/cgroupfs, so nothing a container writes can make it touch another path.
pub fn spawn(root: NodeRoot) {
    let r = std::thread::Builder::new()
        .name("disk-guard".into())
        .spawn(move || run(root));
    if let Err(e) = r {
        tracing::warn!("disk guard not started: {e}");
    }
}

fn run(root: NodeRoot) {
    let mut held: Option<lock::LockGuard> = None;
    let mut g = Guard::default();
    loop {
        std::thread::sleep(POLL);
        if held.is_none() {
            match lock::try_lock(&guard_lock(&root)) {
                Ok(Some(l)) => {
                    tracing::info!(
                        pid = std::process::id(),
                        "disk guard: this monitor guards the node filesystem"
                    );
                    // For the operator (and tests): which monitor acts. The lock says who
                    // really holds it; this file may name a monitor that has since exited.
                    let _ = berth_core::fsutil::write_runtime_file(
                        &holder_file(&root),
                        format!("{}\n", std::process::id()).as_bytes(),
                        0o600,
                    );
                    held = Some(l);
                }
                _ => continue,
            }
        }
        g.tick(&root);
    }
}

#[derive(Default)]
struct Guard {
    blocks: HashMap<CtId, u64>,
    prev_free: Option<u64>,
    /// The reserve and node ID, and when node.toml was read.
    node: Option<(u64, String, Instant)>,
    last_error: Option<Instant>,
}

impl Guard {
    fn tick(&mut self, root: &NodeRoot) {
        let space = match fs_space(root.path()) {
            Ok(s) => s,
            Err(e) => return self.error(&e.to_string()),
        };
        // node.toml is read once a second (`node set --disk-reserve` takes effect then).
        let (reserve, node_id) = match &self.node {
            Some((r, id, at)) if at.elapsed() < Duration::from_secs(1) => (*r, id.clone()),
            _ => match root.load_node_config() {
                Ok(n) => {
                    let r = reserve_of(&n, space.total);
                    self.node = Some((r, n.node_id.clone(), Instant::now()));
                    (r, n.node_id)
                }
                Err(e) => return self.error(&e.to_string()),
            },
        };
        // With room to spare, only containers the guard froze need their state read (to
        // thaw them); the rest costs two stats each per poll.
        let short = space.free < thaw_threshold(reserve).saturating_mul(2);
        let samples = self.sample(root, &node_id, short);
        let d = decide(space.free, self.prev_free, reserve, &samples);
        self.prev_free = Some(space.free);
        for (id, growth) in d.freeze {
            let why = format!(
                "the node filesystem of {} has {} free, under the disk reserve {} (--disk-reserve), and container {id} wrote most ({} in the last {} ms); it resumes by itself above {} free, or with `berth resume {id}` once space is freed",
                root.path().display(),
                human(space.free),
                human(reserve),
                human(growth),
                POLL.as_millis(),
                human(thaw_threshold(reserve))
            );
            if freeze(root, id, &why) {
                log_event(
                    root,
                    id,
                    &format!("container {id} frozen by the disk guard: {why}"),
                );
            }
        }
        for id in d.thaw {
            if thaw(root, id) {
                log_event(
                    root,
                    id,
                    &format!(
                        "container {id} thawed by the disk guard: the node filesystem has {} free again (reserve {})",
                        human(space.free),
                        human(reserve)
                    ),
                );
            }
        }
    }

    fn sample(&mut self, root: &NodeRoot, node_id: &str, short: bool) -> Vec<Sample> {
        use std::os::unix::fs::MetadataExt;
        let mut out = vec![];
        let mut seen = HashMap::new();
        for id in root.list_ct_dirs().unwrap_or_default() {
            if !root.ct_run_dir(id).join("state.json").exists() {
                continue;
            }
            let Ok(m) = std::fs::metadata(root.ct_disk(id)) else {
                continue;
            };
            let blocks = m.blocks() * 512;
            let growth = self
                .blocks
                .get(&id)
                .map_or(0, |b| blocks.saturating_sub(*b));
            seen.insert(id, blocks);
            if root.ct_run_dir(id).join("stopping").exists() {
                continue;
            }
            let marked = marker(root, id).exists();
            if !marked && !short {
                out.push(Sample {
                    id,
                    growth,
                    state: CtState::Running,
                });
                continue;
            }
            let rid = berth_runtime::runtime_id(node_id, id);
            let state = match (marked, frozen(&rid)) {
                (true, Some(true)) => CtState::FrozenByGuard,
                (true, _) => {
                    // Resumed by the admin (or it stopped): the guard lets go.
                    let _ = std::fs::remove_file(marker(root, id));
                    log_event(root, id, &format!("container {id} was resumed by the admin while the disk guard held it frozen"));
                    CtState::Running
                }
                (false, Some(true)) => CtState::Suspended,
                (false, Some(false)) => CtState::Running,
                (false, None) => continue,
            };
            out.push(Sample { id, growth, state });
        }
        self.blocks = seen;
        out
    }

    /// Errors are logged at most every 10 s (the guard keeps polling).
    fn error(&mut self, msg: &str) {
        if self
            .last_error
            .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
        {
            tracing::warn!("disk guard: {msg}");
            self.last_error = Some(Instant::now());
        }
    }
}

/// Freezes container `id` under its lock (skipped this poll if a command holds it).
fn freeze(root: &NodeRoot, id: CtId, why: &str) -> bool {
    let Ok(Some(_g)) = lock::try_lock(&root.ct_lock(id)) else {
        return false;
    };
    let Some(rid) = runtime_id(root, id) else {
        return false;
    };
    let Some(mut c) = berth_runtime::monitor::load_container(root, &rid) else {
        return false;
    };
    if c.status() != ContainerStatus::Running {
        return false;
    }
    // The marker first: a crash between the two leaves a marker on a running container,
    // which the next poll drops.
    if let Err(e) = berth_core::fsutil::write_runtime_file(
        &marker(root, id),
        format!("{why}\n").as_bytes(),
        0o600,
    ) {
        tracing::warn!(ctid = %id, "disk guard: {e}");
        return false;
    }
    match c.pause() {
        Ok(()) => true,
        Err(e) => {
            let _ = std::fs::remove_file(marker(root, id));
            tracing::warn!(ctid = %id, "disk guard: cannot freeze: {e}");
            false
        }
    }
}

fn thaw(root: &NodeRoot, id: CtId) -> bool {
    let Ok(Some(_g)) = lock::try_lock(&root.ct_lock(id)) else {
        return false;
    };
    let Some(rid) = runtime_id(root, id) else {
        return false;
    };
    let Some(mut c) = berth_runtime::monitor::load_container(root, &rid) else {
        return false;
    };
    if c.status() == ContainerStatus::Paused {
        if let Err(e) = c.resume() {
            tracing::warn!(ctid = %id, "disk guard: cannot thaw: {e}");
            return false;
        }
    }
    let _ = std::fs::remove_file(marker(root, id));
    true
}

/// Before `berth stop` thaws a container the guard froze while space is still short: its
/// processes are SIGKILLed while frozen, so that they die on thaw instead of writing on
/// during a clean shutdown (and filling the node). Returns whether it did.
pub fn kill_before_thaw(root: &NodeRoot, id: CtId, runtime_id: &str) -> bool {
    if !marker(root, id).exists() {
        return false;
    }
    let short = match (fs_space(root.path()), root.load_node_config()) {
        (Ok(s), Ok(n)) => s.free < thaw_threshold(reserve_of(&n, s.total)),
        _ => true,
    };
    let _ = std::fs::remove_file(marker(root, id));
    if !short {
        return false;
    }
    kill_frozen(runtime_id);
    let line = format!("container {id} stopped with SIGKILL: the disk guard held it frozen and the node filesystem is still short of space");
    tracing::info!(ctid = %id, "disk guard: {line}");
    log_files(root, id, &line);
    true
}

/// SIGKILLs every process of a frozen container's cgroup (v1 freezer, else v2): they die
/// at the thaw, doing nothing more.
pub(crate) fn kill_frozen(runtime_id: &str) {
    let procs = PathBuf::from("/sys/fs/cgroup/freezer")
        .join(runtime_id)
        .join("cgroup.procs");
    let alt = PathBuf::from("/sys/fs/cgroup")
        .join(runtime_id)
        .join("cgroup.procs");
    let text = std::fs::read_to_string(&procs)
        .or_else(|_| std::fs::read_to_string(&alt))
        .unwrap_or_default();
    for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// One event: the monitor's log (tracing), the container's console log, the node's log.
fn log_event(root: &NodeRoot, id: CtId, line: &str) {
    tracing::warn!(ctid = %id, "disk guard: {line}");
    log_files(root, id, line);
}

/// The container's console log and the node's log.
fn log_files(root: &NodeRoot, id: CtId, line: &str) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    berth_runtime::console::append_line(
        &root.ct_console_log(id),
        &format!("berth: disk guard: {line}"),
    );
    append(&node_log(root), &format!("{stamp} {line}\n"));
}

fn append(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match f {
        Ok(mut f) => {
            let _ = f.write_all(text.as_bytes());
        }
        Err(e) => tracing::warn!("disk guard: {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const M: u64 = Size::MIB;

    fn s(id: u32, growth: u64, state: CtState) -> Sample {
        Sample {
            id: CtId(id),
            growth,
            state,
        }
    }

    #[test]
    fn plenty_of_space_freezes_nothing() {
        let d = decide(
            1000 * M,
            Some(1010 * M),
            100 * M,
            &[s(1, 50 * M, CtState::Running)],
        );
        assert_eq!(d, Decision::default());
    }

    #[test]
    fn under_the_reserve_the_biggest_writer_goes_first() {
        let d = decide(
            90 * M,
            Some(120 * M),
            100 * M,
            &[
                s(1, 2 * M, CtState::Running),
                s(2, 25 * M, CtState::Running),
                s(3, 100 * 1024, CtState::Running),
            ],
        );
        assert_eq!(d.freeze, vec![(CtId(2), 25 * M), (CtId(1), 2 * M)]);
        assert!(d.thaw.is_empty());
    }

    #[test]
    fn a_neighbour_writing_little_keeps_working_above_half_the_reserve() {
        let d = decide(
            80 * M,
            Some(80 * M),
            100 * M,
            &[
                s(1, 200 * 1024, CtState::Running),
                s(2, 0, CtState::FrozenByGuard),
            ],
        );
        assert!(d.freeze.is_empty() && d.thaw.is_empty(), "{d:?}");
        // below half the reserve, any writer is frozen
        let d = decide(
            40 * M,
            Some(40 * M),
            100 * M,
            &[s(1, 4096, CtState::Running)],
        );
        assert_eq!(d.freeze, vec![(CtId(1), 4096)]);
    }

    #[test]
    fn a_fast_fall_acts_before_the_reserve_is_reached() {
        // 130M free, falling 20M a poll: projected 90M < 100M
        let d = decide(
            130 * M,
            Some(150 * M),
            100 * M,
            &[s(7, 20 * M, CtState::Running)],
        );
        assert_eq!(d.freeze, vec![(CtId(7), 20 * M)]);
    }

    #[test]
    fn admin_suspended_and_idle_containers_are_left_alone() {
        let d = decide(
            10 * M,
            Some(20 * M),
            100 * M,
            &[s(1, 0, CtState::Running), s(2, 50 * M, CtState::Suspended)],
        );
        assert!(d.freeze.is_empty(), "{d:?}");
    }

    #[test]
    fn thaw_only_above_the_hysteresis() {
        let frozen = [s(1, 0, CtState::FrozenByGuard), s(2, 0, CtState::Suspended)];
        assert!(decide(120 * M, Some(60 * M), 100 * M, &frozen)
            .thaw
            .is_empty());
        assert_eq!(
            decide(150 * M, Some(60 * M), 100 * M, &frozen).thaw,
            vec![CtId(1)]
        );
    }

    #[test]
    fn a_frozen_writers_late_data_does_not_freeze_a_neighbour() {
        // The frozen writer's dirty data lands (free falls 6M), the neighbour writes 40K.
        let d = decide(
            90 * M,
            Some(96 * M),
            100 * M,
            &[
                s(1, 6 * M, CtState::FrozenByGuard),
                s(2, 40 * 1024, CtState::Running),
            ],
        );
        assert!(d.freeze.is_empty(), "{d:?}");
    }

    #[test]
    fn spread_writes_still_freeze_the_biggest() {
        // no single container took BURST, but free fell by 3M: the biggest goes
        let d = decide(
            90 * M,
            Some(93 * M),
            100 * M,
            &[
                s(1, 700 * 1024, CtState::Running),
                s(2, 900 * 1024, CtState::Running),
            ],
        );
        assert_eq!(d.freeze, vec![(CtId(2), 900 * 1024)]);
    }
}
