//! Long operations: started at once (`202` + `Location`), run on a blocking thread with a
//! [`Progress`] that updates them, kept in memory and journalled to
//! `ROOT/api/operations.jsonl` (one JSON [`Operation`] per state change; the last line of
//! an ID wins).
//!
//! Cancellation: the `Node` calls cannot be interrupted (their `Progress` cannot ask them to
//! stop), so a cancel request is taken at once and honoured when the call returns: what it
//! made is rolled back (the half-made template removed, the created container destroyed)
//! and the operation ends `cancelled`. Until then it stays `running`, phase `cancelling`.

use crate::events::EventLog;
use berth_api::agent::{Operation, OperationProgress, OperationState};
use berth_api::{Error, Progress};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Finished operations kept (memory and journal).
const KEEP: usize = 1000;
/// Operations running at once.
pub const MAX_RUNNING: usize = 16;

pub struct Ops {
    journal: PathBuf,
    inner: Mutex<Inner>,
    events: Arc<EventLog>,
}

#[derive(Default)]
struct Inner {
    ops: HashMap<String, Entry>,
    order: VecDeque<String>,
}

struct Entry {
    op: Operation,
    cancel: Arc<AtomicBool>,
}

/// A rollback of what a cancelled operation made, given its result.
pub type Rollback = Box<dyn FnOnce(&serde_json::Value) -> Result<(), Error> + Send>;

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ops {
    /// Opens the journal; operations a killed berthd left `running` are marked failed,
    /// reported as events, and the journal is compacted.
    pub fn open(api_dir: &std::path::Path, events: Arc<EventLog>) -> Ops {
        let journal = api_dir.join("operations.jsonl");
        let mut inner = Inner::default();
        if let Ok(f) = std::fs::File::open(&journal) {
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                if line.len() > 256 << 10 {
                    continue;
                }
                let Ok(op) = serde_json::from_str::<Operation>(&line) else {
                    continue;
                };
                if !inner.ops.contains_key(&op.id) {
                    inner.order.push_back(op.id.clone());
                }
                inner.ops.insert(
                    op.id.clone(),
                    Entry {
                        op,
                        cancel: Arc::default(),
                    },
                );
            }
        }
        let ops = Ops {
            journal,
            inner: Mutex::new(inner),
            events,
        };
        ops.reconcile();
        ops
    }

    fn reconcile(&self) {
        let mut g = lock(&self.inner);
        let mut failed = vec![];
        for e in g.ops.values_mut() {
            if e.op.state == OperationState::Running {
                e.op.state = OperationState::Failed;
                e.op.finished = Some(berth_auth::now());
                e.op.cancellable = false;
                // The node's own recovery (run when berthd opened it) removed what the
                // interrupted call left half-made: a container without a committed config,
                // a template's staging directory.
                e.op.error = Some(Error::internal(
                    "berthd stopped while the operation ran; its half-done work was rolled back by the node's recovery",
                ));
                failed.push(e.op.clone());
            }
        }
        while g.order.len() > KEEP {
            if let Some(id) = g.order.pop_front() {
                g.ops.remove(&id);
            }
        }
        let mut text = Vec::new();
        for id in &g.order {
            if let Some(e) = g.ops.get(id) {
                if let Ok(mut l) = serde_json::to_vec(&e.op) {
                    l.push(b'\n');
                    text.extend(l);
                }
            }
        }
        drop(g);
        if let Err(e) = berth_core::fsutil::atomic_write(&self.journal, &text, 0o600) {
            tracing::warn!(error = %e, "operations journal not compacted");
        }
        for op in failed {
            self.events.emit(
                "operation",
                "failed",
                format!("operation/{}", op.id),
                "berthd",
                serde_json::json!({"kind": op.kind, "object": op.object, "reason": "interrupted by a berthd restart"}),
            );
        }
    }

    fn journal(&self, op: &Operation) {
        let res = (|| -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.journal)?;
            let mut l = serde_json::to_vec(op).map_err(std::io::Error::other)?;
            l.push(b'\n');
            f.write_all(&l)?;
            f.sync_data()
        })();
        if let Err(e) = res {
            tracing::warn!(error = %e, "operations journal not written");
        }
    }

    pub fn get(&self, id: &str) -> Option<Operation> {
        lock(&self.inner).ops.get(id).map(|e| e.op.clone())
    }

    /// Every operation, oldest first.
    pub fn list(&self) -> Vec<Operation> {
        let g = lock(&self.inner);
        g.order
            .iter()
            .filter_map(|id| g.ops.get(id).map(|e| e.op.clone()))
            .collect()
    }

    /// Starts `work` on a blocking thread; the operation as started.
    pub fn start<F>(
        self: &Arc<Self>,
        kind: &str,
        object: String,
        user: &str,
        work: F,
        rollback: Rollback,
    ) -> Result<Operation, Error>
    where
        F: FnOnce(&dyn Progress) -> Result<serde_json::Value, Error> + Send + 'static,
    {
        let id = crate::hex(&berth_auth::random_bytes::<12>().map_err(Error::from)?);
        let op = Operation {
            id: id.clone(),
            kind: kind.into(),
            object,
            user: user.into(),
            state: OperationState::Running,
            progress: OperationProgress::default(),
            created: berth_auth::now(),
            finished: None,
            result: None,
            error: None,
            cancellable: true,
        };
        let cancel = Arc::new(AtomicBool::new(false));
        {
            let mut g = lock(&self.inner);
            let running = g
                .ops
                .values()
                .filter(|e| e.op.state == OperationState::Running)
                .count();
            if running >= MAX_RUNNING {
                return Err(Error::new(
                    berth_api::ErrorKind::TooManyRequests,
                    format!("{running} operations are running: try again when one ends"),
                ));
            }
            g.order.push_back(id.clone());
            g.ops.insert(
                id.clone(),
                Entry {
                    op: op.clone(),
                    cancel: cancel.clone(),
                },
            );
            while g.order.len() > KEEP {
                let Some(old) = g.order.iter().position(|i| {
                    g.ops
                        .get(i)
                        .is_some_and(|e| e.op.state != OperationState::Running)
                }) else {
                    break;
                };
                if let Some(i) = g.order.remove(old) {
                    g.ops.remove(&i);
                }
            }
        }
        self.journal(&op);
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let progress = OpProgress {
                ops: me.clone(),
                id: id.clone(),
            };
            let res = work(&progress);
            me.finish(&id, res, &cancel, rollback);
        });
        Ok(op)
    }

    fn finish(
        &self,
        id: &str,
        res: Result<serde_json::Value, Error>,
        cancel: &AtomicBool,
        rollback: Rollback,
    ) {
        let cancelled = cancel.load(Ordering::SeqCst);
        let (state, result, error) = match res {
            Ok(v) if cancelled => match rollback(&v) {
                Ok(()) => (OperationState::Cancelled, None, None),
                Err(e) => (
                    OperationState::Failed,
                    Some(v),
                    Some(Error::new(
                        e.kind,
                        format!("cancelled, but its rollback failed: {}", e.message),
                    )),
                ),
            },
            // A cancelled call that failed made nothing (the node rolls its own failures back).
            Err(_) if cancelled => (OperationState::Cancelled, None, None),
            Ok(v) => (OperationState::Succeeded, Some(v), None),
            Err(e) => (OperationState::Failed, None, Some(e)),
        };
        let op = {
            let mut g = lock(&self.inner);
            let Some(e) = g.ops.get_mut(id) else { return };
            e.op.state = state;
            // A create without a CTID names its container once it has one.
            if e.op.object == "container" {
                if let Some(id) = result.as_ref().and_then(|v| v.get("ctid")) {
                    e.op.object = format!("container/{id}");
                }
            }
            e.op.result = result;
            e.op.error = error;
            e.op.finished = Some(berth_auth::now());
            e.op.cancellable = false;
            e.op.clone()
        };
        self.journal(&op);
        self.events.emit(
            "operation",
            "finished",
            format!("operation/{}", op.id),
            &op.user,
            serde_json::json!({"kind": op.kind, "object": op.object, "state": op.state,
                "error": op.error.as_ref().map(|e| e.message.clone())}),
        );
    }

    /// Asks a running operation to stop; the operation as it is now.
    pub fn cancel(&self, id: &str) -> Result<Operation, Error> {
        let op = {
            let mut g = lock(&self.inner);
            let e = g
                .ops
                .get_mut(id)
                .ok_or_else(|| Error::not_found(format!("operation {id} not found")))?;
            if e.op.state != OperationState::Running || !e.op.cancellable {
                return Err(Error::new(
                    berth_api::ErrorKind::Precondition,
                    format!("operation {id} is {:?}: nothing to cancel", e.op.state).to_lowercase(),
                ));
            }
            e.cancel.store(true, Ordering::SeqCst);
            e.op.cancellable = false;
            e.op.progress.phase = "cancelling".into();
            e.op.clone()
        };
        self.journal(&op);
        Ok(op)
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut OperationProgress)) {
        let mut g = lock(&self.inner);
        if let Some(e) = g.ops.get_mut(id) {
            if e.cancel.load(Ordering::SeqCst) {
                return;
            }
            f(&mut e.op.progress);
        }
    }
}

/// The [`Progress`] of one operation.
struct OpProgress {
    ops: Arc<Ops>,
    id: String,
}

impl Progress for OpProgress {
    fn update(&self, done: u64, total: Option<u64>) {
        self.ops.update(&self.id, |p| {
            p.done = done;
            p.total = total;
        });
    }
    fn message(&self, msg: &str) {
        let m: String = msg.chars().filter(|c| !c.is_control()).take(200).collect();
        self.ops.update(&self.id, |p| p.phase = m);
    }
    fn files(&self, done: u64) {
        self.ops.update(&self.id, |p| p.files = Some(done));
    }
    fn cancelled(&self) -> bool {
        let g = lock(&self.ops.inner);
        g.ops
            .get(&self.id)
            .is_some_and(|e| e.cancel.load(Ordering::SeqCst))
    }
    fn commit(&self) -> bool {
        let op = {
            let mut g = lock(&self.ops.inner);
            let Some(e) = g.ops.get_mut(&self.id) else {
                return true;
            };
            if e.cancel.load(Ordering::SeqCst) {
                return false;
            }
            e.op.cancellable = false;
            e.op.clone()
        };
        self.ops.journal(&op);
        true
    }
}
