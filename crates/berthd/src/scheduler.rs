//! Runs the node's backup schedules at their local times (docs/backups.md, "Schedules"):
//! every few seconds berthd asks the node which schedules have a slot due and not yet
//! taken ([`berth_node::backup_schedule::due`], which records the slot it hands out), and
//! starts a `backup.schedule` operation for each. A schedule whose previous run still runs
//! skips the slot (an event says so) instead of stacking runs.

use crate::state::AppState;
use berth_api::agent::Operation;
use berth_api::Error;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How often berthd looks for due schedules.
pub const TICK: Duration = Duration::from_secs(5);

/// The user operations and events of scheduled runs name.
pub const USER: &str = "berthd (schedule)";

fn running() -> &'static Mutex<HashSet<String>> {
    static R: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn now() -> i64 {
    berth_auth::now() as i64
}

/// Until the process ends.
pub async fn run(st: Arc<AppState>) {
    let mut iv = tokio::time::interval(TICK);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        let root = berth_core::NodeRoot::new(&st.root);
        let due =
            tokio::task::spawn_blocking(move || berth_node::backup_schedule::due(&root, now()))
                .await;
        let names = match due {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!("backup schedules: {e}");
                continue;
            }
            Err(e) => {
                tracing::warn!("backup schedules: {e}");
                continue;
            }
        };
        for name in names {
            match start_run(&st, &name, USER) {
                Ok(op) => tracing::info!(schedule = %name, op = %op.id, "backup schedule started"),
                Err(e) => {
                    tracing::warn!(schedule = %name, "backup schedule not started: {}", e.message);
                    st.events.emit(
                        "backup",
                        "schedule skipped",
                        format!("backup-schedule/{name}"),
                        USER,
                        serde_json::json!({"reason": e.message}),
                    );
                }
            }
        }
    }
}

/// Starts a run of schedule `name` as an operation (refused while one runs).
pub fn start_run(st: &Arc<AppState>, name: &str, user: &str) -> Result<Operation, Error> {
    {
        let mut r = running().lock().unwrap_or_else(|e| e.into_inner());
        if !r.insert(name.to_string()) {
            return Err(Error::new(
                berth_api::ErrorKind::Conflict,
                format!("backup schedule {name:?} is running: its run goes on"),
            ));
        }
    }
    let node = st.node.clone();
    let events = st.events.clone();
    let (n2, u2) = (name.to_string(), user.to_string());
    let res = st.ops.start(
        "backup.schedule",
        format!("backup-schedule/{name}"),
        user,
        move |p| {
            // Off the running set however the run ends (a panic too).
            struct Done(String);
            impl Drop for Done {
                fn drop(&mut self) {
                    running()
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&self.0);
                }
            }
            let _done = Done(n2.clone());
            let r = node.backup_schedule_run(&n2, p);
            let run = match r {
                Ok(run) => run,
                Err(e) => {
                    events.emit(
                        "backup",
                        "schedule failed",
                        format!("backup-schedule/{n2}"),
                        &u2,
                        serde_json::json!({"error": e.message}),
                    );
                    return Err(e);
                }
            };
            for f in &run.failed {
                events.emit(
                    "backup",
                    "failed",
                    format!("container/{}", f.ctid),
                    &u2,
                    serde_json::json!({"schedule": n2, "error": f.error}),
                );
            }
            events.emit(
                "backup",
                "schedule ran",
                format!("backup-schedule/{n2}"),
                &u2,
                serde_json::json!({"backed_up": run.backed_up.len(), "failed": run.failed.len(),
                    "seconds": run.finished - run.started}),
            );
            serde_json::to_value(run).map_err(|e| Error::internal(e.to_string()))
        },
        Box::new(|_| {
            Err(Error::internal(
                "the backups a run made stay: remove them with `berth backup forget`",
            ))
        }),
    );
    if res.is_err() {
        running()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
    res
}
