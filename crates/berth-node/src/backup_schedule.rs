//! Backup schedules (docs/backups.md, "Schedules"): `backups/schedules.toml` holds them (root
//! only, like all of `backups/`), `backups/schedule-runs.json` the last run of each. berthd
//! runs them at their local times ([`due`]); `berth backup schedule run NAME` runs one now.
//!
//! A run backs up its containers, up to `parallel` at once, each tagged
//! `schedule:<name>`, then applies the schedule's retention to that container's backups of
//! the schedule only (a manual backup is never removed by a schedule), and prunes once at
//! the end when asked. A container that fails does not stop the others.

use crate::backup::{load_repos, validate_tag};
use crate::local::LocalNode;
use crate::{NodeError, Result};
use berth_api::backup::{
    BackupCreate, Schedule, ScheduleFailure, ScheduleInfo, ScheduleItem, ScheduleRun,
};
use berth_core::calendar::Calendar;
use berth_core::validate::validate_name;
use berth_core::{fsutil, lock, CtId, CtRef, NodeRoot};
use berth_storage::progress::Progress;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

/// At most this many schedules on a node.
pub const MAX_SCHEDULES: usize = 64;
/// At most this many containers at once in a run.
pub const MAX_PARALLEL: u32 = 8;

fn inval(m: impl Into<String>) -> NodeError {
    NodeError::Invalid(m.into())
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SchedulesFile {
    #[serde(default, rename = "schedule")]
    schedules: Vec<Schedule>,
}

/// The last run of each schedule, and the slot (epoch second) berthd last took for it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RunState {
    #[serde(default)]
    pub last_run: BTreeMap<String, ScheduleRun>,
    #[serde(default)]
    pub last_slot: BTreeMap<String, i64>,
    /// When each schedule was added: slots before it are not "missed".
    #[serde(default)]
    pub added: BTreeMap<String, i64>,
}

fn schedules_file(root: &NodeRoot) -> PathBuf {
    root.backups_dir().join("schedules.toml")
}

fn state_file(root: &NodeRoot) -> PathBuf {
    root.backups_dir().join("schedule-runs.json")
}

fn schedules_lock(root: &NodeRoot) -> PathBuf {
    root.locks_dir().join("backup-schedules.lock")
}

fn now() -> i64 {
    berth_runtime::state::now() as i64
}

/// Checks a schedule like input (also when read from disk); its calendar.
pub fn validate(s: &Schedule) -> Result<Calendar> {
    validate_name(&s.name).map_err(|m| inval(format!("schedule name: {m}")))?;
    if s.all != s.containers.is_empty() {
        return Err(inval(format!(
            "schedule {}: name its containers or `all` (one of the two)",
            s.name
        )));
    }
    if s.containers.len() > 4096 {
        return Err(inval("at most 4096 containers per schedule"));
    }
    for c in &s.containers {
        CtId::parse(&c.to_string()).map_err(|e| inval(format!("schedule {}: {e}", s.name)))?;
    }
    let cal =
        Calendar::parse(&s.at, &s.days).map_err(|m| inval(format!("schedule {}: {m}", s.name)))?;
    if let Some(r) = &s.repo {
        validate_name(r).map_err(|m| inval(format!("schedule {}: repo: {m}", s.name)))?;
    }
    for t in &s.tags {
        validate_tag(t)?;
    }
    if !(1..=MAX_PARALLEL).contains(&s.parallel) {
        return Err(inval(format!(
            "schedule {}: parallel must be 1 to {MAX_PARALLEL}",
            s.name
        )));
    }
    Ok(cal)
}

fn load(root: &NodeRoot) -> Result<Vec<Schedule>> {
    let p = schedules_file(root);
    if !p.exists() {
        return Ok(vec![]);
    }
    let f: SchedulesFile = fsutil::read_toml(&p)?;
    if f.schedules.len() > MAX_SCHEDULES {
        return Err(inval(format!(
            "{}: more than {MAX_SCHEDULES} schedules",
            p.display()
        )));
    }
    for s in &f.schedules {
        validate(s).map_err(|e| inval(format!("{}: {e}", p.display())))?;
    }
    Ok(f.schedules)
}

fn save(root: &NodeRoot, s: Vec<Schedule>) -> Result<()> {
    std::fs::create_dir_all(root.backups_dir())
        .map_err(|e| berth_core::CoreError::io(root.backups_dir(), e))?;
    Ok(fsutil::write_toml(
        &schedules_file(root),
        &SchedulesFile { schedules: s },
    )?)
}

/// The run state as a record to show: a damaged file shows as empty.
pub fn load_state(root: &NodeRoot) -> RunState {
    load_state_checked(root).unwrap_or_else(|e| {
        tracing::warn!("{e}");
        RunState::default()
    })
}

/// The run state; absent: empty. A file there that cannot be read is an error: the
/// scheduler then runs nothing (failing closed: taking it as empty would start every
/// schedule at once) until it is repaired or removed.
pub fn load_state_checked(root: &NodeRoot) -> Result<RunState> {
    let p = state_file(root);
    match std::fs::read(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RunState::default()),
        Err(e) => Err(berth_core::CoreError::io(&p, e).into()),
        Ok(b) if b.len() >= 16 << 20 => Err(inval(format!(
            "{}: larger than 16 MiB: remove it (the schedules' last runs are forgotten)",
            p.display()
        ))),
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            inval(format!(
                "{}: {e}: repair or remove it (the schedules' last runs are forgotten)",
                p.display()
            ))
        }),
    }
}

fn save_state(root: &NodeRoot, st: &RunState) -> Result<()> {
    let b = serde_json::to_vec_pretty(st).map_err(|e| inval(e.to_string()))?;
    Ok(fsutil::atomic_write(&state_file(root), &b, 0o600)?)
}

/// Changes the run state under the schedules' lock (written only when it changed).
fn with_state<T>(root: &NodeRoot, f: impl FnOnce(&mut RunState) -> T) -> Result<T> {
    let _l = lock::lock(&schedules_lock(root))?;
    let mut st = load_state_checked(root)?;
    let before = serde_json::to_vec(&st).unwrap_or_default();
    let r = f(&mut st);
    if serde_json::to_vec(&st).unwrap_or_default() != before {
        save_state(root, &st)?;
    }
    Ok(r)
}

/// The schedules with a slot due at `now` that was not taken yet: each is taken (recorded)
/// now, so that one slot starts one run even if berthd restarts meanwhile. A slot missed
/// while berthd was down runs once when it comes back (as anacron does); older missed slots
/// do not pile up.
pub fn due(root: &NodeRoot, now: i64) -> Result<Vec<String>> {
    let schedules = {
        let _l = lock::lock(&schedules_lock(root))?;
        load(root)?
    };
    with_state(root, |st| {
        let mut out = vec![];
        for s in &schedules {
            let Ok(cal) = Calendar::parse(&s.at, &s.days) else {
                continue;
            };
            let Some(slot) = cal.last_at_or_before(now) else {
                continue;
            };
            let added = st.added.get(&s.name).copied().unwrap_or(0);
            let taken = st.last_slot.get(&s.name).copied().unwrap_or(i64::MIN);
            if slot > taken && slot >= added {
                st.last_slot.insert(s.name.clone(), slot);
                out.push(s.name.clone());
            }
        }
        out
    })
}

impl LocalNode {
    /// The node's backup schedules, with their next and last runs.
    pub fn backup_schedules(&self) -> Result<Vec<ScheduleInfo>> {
        let root = self.root();
        let list = load(root)?;
        let st = load_state(root);
        let t = now();
        Ok(list
            .into_iter()
            .map(|s| {
                let next_run = Calendar::parse(&s.at, &s.days)
                    .ok()
                    .and_then(|c| c.next_after(t));
                let last_run = st.last_run.get(&s.name).cloned();
                ScheduleInfo {
                    schedule: s,
                    next_run,
                    last_run,
                }
            })
            .collect())
    }

    /// Adds a schedule (its name new; its repository and containers known now).
    pub fn backup_schedule_add(&self, s: Schedule) -> Result<ScheduleInfo> {
        let root = self.root();
        let cal = validate(&s)?;
        if let Some(r) = &s.repo {
            if !load_repos(root)?.repos.iter().any(|e| &e.name == r) {
                return Err(NodeError::NotFound(format!("backup repository {r:?}")));
            }
        }
        for c in &s.containers {
            if !root.ct_config(CtId(*c)).exists() {
                return Err(NodeError::NotFound(format!("container {c}")));
            }
        }
        {
            let _l = lock::lock(&schedules_lock(root))?;
            let mut list = load(root)?;
            if list.iter().any(|x| x.name == s.name) {
                return Err(inval(format!(
                    "backup schedule {:?} exists: remove it first",
                    s.name
                )));
            }
            if list.len() >= MAX_SCHEDULES {
                return Err(inval(format!("at most {MAX_SCHEDULES} schedules")));
            }
            list.push(s.clone());
            save(root, list)?;
            let mut st = load_state(root);
            st.added.insert(s.name.clone(), now());
            st.last_slot.remove(&s.name);
            st.last_run.remove(&s.name);
            save_state(root, &st)?;
        }
        tracing::info!(name = %s.name, when = %cal, "backup schedule added");
        Ok(ScheduleInfo {
            next_run: cal.next_after(now()),
            schedule: s,
            last_run: None,
        })
    }

    /// Removes a schedule (its backups stay).
    pub fn backup_schedule_remove(&self, name: &str) -> Result<()> {
        validate_name(name).map_err(|m| inval(format!("schedule name: {m}")))?;
        let root = self.root();
        let _l = lock::lock(&schedules_lock(root))?;
        let mut list = load(root)?;
        let n = list.len();
        list.retain(|s| s.name != name);
        if list.len() == n {
            return Err(NodeError::NotFound(format!("backup schedule {name:?}")));
        }
        save(root, list)?;
        let mut st = load_state(root);
        st.added.remove(name);
        st.last_slot.remove(name);
        st.last_run.remove(name);
        save_state(root, &st)
    }

    /// Runs schedule `name` now (berthd at its times, or `schedule run`); records the run.
    pub fn backup_schedule_run(&self, name: &str, p: &dyn Progress) -> Result<ScheduleRun> {
        validate_name(name).map_err(|m| inval(format!("schedule name: {m}")))?;
        let root = self.root();
        let s = {
            let _l = lock::lock(&schedules_lock(root))?;
            load(root)?
                .into_iter()
                .find(|s| s.name == name)
                .ok_or_else(|| NodeError::NotFound(format!("backup schedule {name:?}")))?
        };
        let started = now();
        let ids: Vec<CtId> = if s.all {
            root.list_ct_dirs()?
                .into_iter()
                .filter(|id| root.ct_config(*id).exists())
                .collect()
        } else {
            s.containers.iter().map(|c| CtId(*c)).collect()
        };
        let total = ids.len() as u64;
        p.message(&format!(
            "backup schedule {name}: {total} container(s), {} at once",
            s.parallel
        ));
        let tag = format!("{}{name}", berth_api::backup::SCHEDULE_TAG);
        let o = BackupCreate {
            repo: s.repo.clone(),
            mode: s.mode,
            tags: s.tags.clone(),
            full: false,
            description: None,
            with_templates: s.with_templates,
            at_most: None,
        };
        let queue = Mutex::new(ids.into_iter().collect::<VecDeque<_>>());
        let done = Mutex::new((Vec::<ScheduleItem>::new(), Vec::<ScheduleFailure>::new()));
        let workers = s.parallel.min(total.max(1) as u32);
        std::thread::scope(|sc| {
            for _ in 0..workers {
                sc.spawn(|| loop {
                    if p.cancelled() {
                        return;
                    }
                    let Some(id) = queue.lock().map(|mut q| q.pop_front()).ok().flatten() else {
                        return;
                    };
                    let res = self.one(id, &o, &tag, &s);
                    let mut d = done.lock().unwrap_or_else(|e| e.into_inner());
                    match res {
                        Ok(item) => {
                            p.message(&format!(
                                "container {id}: snapshot {}",
                                &item.snapshot[..8.min(item.snapshot.len())]
                            ));
                            d.0.push(item);
                        }
                        Err(e) => {
                            p.message(&format!("container {id}: failed: {e}"));
                            d.1.push(ScheduleFailure {
                                ctid: id.0,
                                error: e.to_string(),
                            });
                        }
                    }
                    p.update((d.0.len() + d.1.len()) as u64, Some(total));
                });
            }
        });
        let (mut backed_up, mut failed) = done.into_inner().unwrap_or_else(|e| e.into_inner());
        if p.cancelled() {
            for id in queue.into_inner().unwrap_or_default() {
                failed.push(ScheduleFailure {
                    ctid: id.0,
                    error: "not backed up: the run was cancelled".into(),
                });
            }
        }
        backed_up.sort_by_key(|i| i.ctid);
        failed.sort_by_key(|f| f.ctid);
        if s.prune && !backed_up.is_empty() && !s.keep.is_empty() {
            p.message("pruning unused data");
            let mut repos: Vec<&str> = backed_up.iter().map(|i| i.repo.as_str()).collect();
            repos.dedup();
            for r in repos {
                if let Err(e) = self.backup_prune(r) {
                    failed.push(ScheduleFailure {
                        ctid: 0,
                        error: format!("pruning repository {r}: {e}"),
                    });
                }
            }
        }
        let run = ScheduleRun {
            schedule: name.into(),
            started,
            finished: now(),
            backed_up,
            failed,
        };
        // The record keeps at most 200 entries of each list (the run's answer has them all).
        let mut rec = run.clone();
        rec.backed_up.truncate(200);
        rec.failed.truncate(200);
        for i in &mut rec.backed_up {
            i.warnings.truncate(3);
        }
        if let Err(e) = with_state(root, |st| {
            st.last_run.insert(name.into(), rec);
        }) {
            tracing::warn!(schedule = name, "the run is not recorded: {e}");
        }
        if p.cancelled() {
            return Err(NodeError::Cancelled(format!(
                "backup schedule {name}: cancelled after {} container(s); their backups stay",
                run.backed_up.len()
            )));
        }
        tracing::info!(
            schedule = name,
            ok = run.backed_up.len(),
            failed = run.failed.len(),
            "backup schedule ran"
        );
        Ok(run)
    }

    fn one(&self, id: CtId, o: &BackupCreate, tag: &str, s: &Schedule) -> Result<ScheduleItem> {
        let r = self.backup_create_tagged(
            &CtRef::Id(id),
            o,
            &[tag.to_string()],
            &berth_core::progress::NoProgress,
        )?;
        let mut forgotten = 0;
        let mut warnings = r.warnings.clone();
        if !s.keep.is_empty() {
            let req = berth_api::backup::ForgetRequest {
                repo: Some(r.repo.clone()),
                keep: s.keep.clone(),
                tag: Some(tag.to_string()),
                ..Default::default()
            };
            match self.backup_forget(id, &req) {
                Ok((_, gone, _)) => forgotten = gone.len(),
                Err(e) => warnings.push(format!("retention: {e}")),
            }
        }
        Ok(ScheduleItem {
            ctid: id.0,
            repo: r.repo,
            snapshot: r.snapshot.id,
            forgotten,
            warnings,
        })
    }
}
