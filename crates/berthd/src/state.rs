//! What every request shares.

use crate::authn::{Caller, RateLimiter, Sessions};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::events::EventLog;
use crate::ops::Ops;
use crate::policy::{self, Need};
use berth_api::{CtId, CtRef, Error, Node};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct AppState {
    pub node: Arc<dyn Node>,
    pub root: PathBuf,
    pub cfg: Config,
    pub auth: berth_auth::Store,
    pub sessions: Sessions,
    pub limiter: RateLimiter,
    pub ops: Arc<Ops>,
    pub events: Arc<EventLog>,
    /// Containers berthd was asked to stop (stop, restart, destroy…), and when: a container
    /// that stops without one is reported `crashed`.
    pub stop_requests: Mutex<HashMap<u32, Instant>>,
    /// Owners' clones under way, by owner: counted against their quota before the copy.
    pub clone_slots: Arc<Mutex<HashMap<String, u32>>>,
    /// The container list between requests (crate::listcache).
    pub list_cache: crate::listcache::ListCache,
    /// Interactive sessions (exec websockets) and followed consoles, which hold blocking
    /// threads for as long as they last: bounded, so that they cannot starve the other calls.
    pub sessions_exec: Arc<tokio::sync::Semaphore>,
    pub sessions_console: Arc<tokio::sync::Semaphore>,
}

/// Exec sessions at once (three blocking threads each).
pub const MAX_EXEC_SESSIONS: usize = 8;
/// Followed consoles at once (one blocking thread each).
pub const MAX_CONSOLE_FOLLOWS: usize = 8;

/// A permit of a bounded kind of session, or `503 unavailable`.
pub fn permit(
    sem: &Arc<tokio::sync::Semaphore>,
    what: &str,
) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    sem.clone().try_acquire_owned().map_err(|_| {
        ApiError(Error::new(
            berth_api::ErrorKind::Unavailable,
            format!("too many {what} at once on this node: try again later"),
        ))
    })
}

impl AppState {
    /// Runs a blocking `Node` call on a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Node) -> berth_api::Result<T> + Send + 'static,
    {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || f(&*node))
            .await
            .map_err(|e| ApiError(Error::internal(format!("request task failed: {e}"))))?
            .map_err(ApiError)
    }

    /// Parses a `{ct}` of a path, and checks the caller may `need` it. For an owner the
    /// reference is resolved to its ID first (a name is checked like an ID), and any
    /// container not his answers exactly as a missing one.
    pub async fn ct(&self, caller: &Caller, raw: &str, need: fn(CtId) -> Need) -> ApiResult<CtRef> {
        let r = CtRef::parse(raw)?;
        let id = match &r {
            CtRef::Id(id) => *id,
            CtRef::Name(_) if caller.role == berth_api::agent::Role::Owner => {
                let rr = r.clone();
                match self.call(move |n| n.status(&rr)).await {
                    Ok(info) => info.ctid,
                    Err(ApiError(e)) if e.kind == berth_api::ErrorKind::NotFound => {
                        return Err(policy::hidden(&r))
                    }
                    Err(e) => return Err(e),
                }
            }
            CtRef::Name(_) => {
                // Admins and auditors: the node resolves the name itself.
                policy::allow(caller, need(CtId(0)))?;
                return Ok(r);
            }
        };
        match policy::allow(caller, need(id)) {
            Err(ApiError(e)) if e.kind == berth_api::ErrorKind::NotFound => Err(policy::hidden(&r)),
            other => other.map(|_| {
                if caller.role == berth_api::agent::Role::Owner {
                    CtRef::Id(id)
                } else {
                    r
                }
            }),
        }
    }

    pub fn note_stop(&self, r: &CtRef) {
        if let CtRef::Id(id) = r {
            self.note_stop_id(id.0);
        }
    }

    pub fn note_stop_id(&self, id: u32) {
        let mut m = self.stop_requests.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, t| t.elapsed().as_secs() < 600);
        m.insert(id, Instant::now());
    }
}
