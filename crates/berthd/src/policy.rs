//! Roles, enforced here and nowhere else: every handler names what it needs as a [`Need`]
//! and calls [`allow`] before it acts.
//!
//! - admin: everything.
//! - auditor: reads only (GET), node-wide ones included; no exec or console input.
//! - owner: only his containers — any other answers `404 not_found` exactly as a missing
//!   one; `list` and `stats` show only his; container create, destroy and `set` (his limits),
//!   node, template and network changes are forbidden (403), and so are node-wide reads
//!   (processes, host services, node info, networks, metrics). He backs up his containers
//!   (up to the node's maximum per container), lists, browses and forgets their backups
//!   and restores them in place (files only: the container keeps its current limits).

use crate::authn::Caller;
use crate::error::{forbidden, ApiError, ApiResult};
use axum::http::Method;
use berth_api::agent::Role;
use berth_api::{CtId, CtRef, Error};

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read a container (status, stats, ps, console, services, traffic).
    CtRead(CtId),
    /// Act on a container (start, stop, kill, services, exec).
    CtAct(CtId),
    /// Change what the container is (destroy, set, compact).
    CtAdmin(CtId),
    /// Back up a container, restore it in place, forget its backups (owners: their own,
    /// within the node's maximum per container).
    CtBackup(CtId),
    /// Create a container.
    CtCreate,
    /// Read templates.
    TemplateRead,
    /// Read node-level objects (node info, adapters, networks).
    NodeRead,
    /// Node-wide reads of every container's processes and the host (processes, host
    /// services, metrics).
    NodeWide,
    /// Change the node, its templates or networks.
    NodeWrite,
    /// Manage users and other users' tokens.
    UserAdmin,
    /// Manage one's own tokens.
    OwnTokens,
    /// Read an operation started by `user`.
    OpRead { user_is_caller: bool },
    /// Cancel an operation started by `user`.
    OpCancel { user_is_caller: bool },
    /// Read the event log.
    Events,
    /// Use a backup store (the restic REST protocol): `own` when it is the caller's.
    Store { own: bool },
}

fn deny(what: &str) -> ApiError {
    forbidden(format!("your role may not {what}"))
}

/// The one check of a caller's role against a need.
pub fn allow(c: &Caller, need: Need) -> ApiResult<()> {
    use Need::*;
    match c.role {
        Role::Admin => Ok(()),
        // A client node's key to its store, and nothing else.
        Role::Backup => match need {
            // Not even its own tokens: a client node taken over must not mint ones that
            // outlive the revocation of the stolen one.
            Store { own: true } => Ok(()),
            Store { own: false } => Err(ApiError(Error::not_found("backup store not found"))),
            _ => Err(deny("do anything but use its backup store")),
        },
        Role::Auditor => match need {
            Store { .. } => Err(deny("use a backup store")),
            CtRead(_) | TemplateRead | NodeRead | NodeWide | Events | OpRead { .. } => Ok(()),
            OwnTokens => Err(deny("manage tokens (auditors are read-only)")),
            _ => Err(deny("change anything (auditors are read-only)")),
        },
        Role::Owner => match need {
            CtRead(id) | CtAct(id) | CtAdmin(id) | CtBackup(id)
                if !c.containers.contains(&id.0) =>
            {
                Err(hidden(&CtRef::Id(id)))
            }
            CtRead(_) | CtAct(_) | CtBackup(_) | TemplateRead | Events | OwnTokens => Ok(()),
            CtAdmin(_) => Err(deny("destroy, compact or change the limits of a container")),
            OpRead { user_is_caller } | OpCancel { user_is_caller } => {
                if user_is_caller {
                    Ok(())
                } else {
                    Err(ApiError(Error::not_found("operation not found")))
                }
            }
            CtCreate => Err(deny("create containers")),
            NodeRead | NodeWide => Err(deny("read node-wide information")),
            NodeWrite => Err(deny("change the node, its templates or networks")),
            UserAdmin => Err(deny("manage users")),
            Store { .. } => Err(deny("use a backup store")),
        },
    }
}

/// The answer to an owner asking for a container that is not his: the node's own answer
/// for a container that does not exist.
pub fn hidden(r: &CtRef) -> ApiError {
    ApiError(Error::not_found(format!("container {r} not found")))
}

/// Whether the caller may see this container at all (for filtering lists and events).
pub fn sees(c: &Caller, id: u32) -> bool {
    match c.role {
        Role::Admin | Role::Auditor => true,
        Role::Owner => c.containers.contains(&id),
        Role::Backup => false,
    }
}

/// Whether the caller may see an event about `object` (`container/101`, …) done by `user`.
pub fn sees_event(c: &Caller, object: &str, user: &str) -> bool {
    match c.role {
        Role::Admin | Role::Auditor => return true,
        Role::Backup => return false,
        Role::Owner => {}
    }
    if let Some(id) = object
        .strip_prefix("container/")
        .and_then(|s| s.parse::<u32>().ok())
    {
        return c.containers.contains(&id);
    }
    user == c.name
}

/// The gate by method, before any handler: auditors only read. (Login and logout are
/// not changes of the node.)
pub fn method_gate(c: &Caller, m: &Method, path: &str) -> ApiResult<()> {
    let read = matches!(*m, Method::GET | Method::HEAD);
    if c.role == Role::Auditor && !read && path != "/api/v1/logout" {
        return Err(deny("change anything (auditors are read-only)"));
    }
    // A backup user reaches its store, whatever a handler would allow.
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if c.role == Role::Backup && !under("/api/v1/backup-store") && path != "/api/v1/logout" {
        return Err(deny("do anything but use its backup store"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: Role, cts: &[u32]) -> Caller {
        Caller {
            name: "u".into(),
            role,
            containers: cts.to_vec(),
        }
    }

    #[test]
    fn table() {
        let admin = who(Role::Admin, &[]);
        let aud = who(Role::Auditor, &[]);
        let bob = who(Role::Owner, &[101, 102]);
        let st = |r: ApiResult<()>| r.err().map(|e| e.0.kind.http_status()).unwrap_or(200);
        for need in [
            Need::CtAct(CtId(103)),
            Need::NodeWrite,
            Need::UserAdmin,
            Need::CtCreate,
        ] {
            assert_eq!(st(allow(&admin, need)), 200);
        }
        assert_eq!(st(allow(&aud, Need::CtRead(CtId(103)))), 200);
        assert_eq!(st(allow(&aud, Need::CtAct(CtId(103)))), 403);
        assert_eq!(st(allow(&aud, Need::NodeWide)), 200);
        assert_eq!(st(allow(&bob, Need::CtAct(CtId(101)))), 200);
        assert_eq!(st(allow(&bob, Need::CtRead(CtId(103)))), 404);
        assert_eq!(st(allow(&bob, Need::CtAct(CtId(103)))), 404);
        assert_eq!(st(allow(&bob, Need::CtAdmin(CtId(103)))), 404);
        assert_eq!(st(allow(&bob, Need::CtAdmin(CtId(101)))), 403);
        assert_eq!(st(allow(&bob, Need::NodeWide)), 403);
        assert_eq!(st(allow(&bob, Need::NodeWrite)), 403);
        assert_eq!(st(allow(&bob, Need::TemplateRead)), 200);
        assert_eq!(st(allow(&bob, Need::CtBackup(CtId(101)))), 200);
        assert_eq!(st(allow(&bob, Need::CtBackup(CtId(103)))), 404);
        assert_eq!(st(allow(&aud, Need::CtBackup(CtId(101)))), 403);
        assert_eq!(st(allow(&admin, Need::CtBackup(CtId(103)))), 200);
        assert_eq!(
            st(allow(
                &bob,
                Need::OpRead {
                    user_is_caller: false
                }
            )),
            404
        );
        assert!(method_gate(&aud, &Method::POST, "/api/v1/containers").is_err());
        assert!(method_gate(&aud, &Method::GET, "/api/v1/containers").is_ok());
        let bk = who(Role::Backup, &[]);
        assert_eq!(st(allow(&bk, Need::Store { own: true })), 200);
        assert_eq!(st(allow(&bk, Need::Store { own: false })), 404);
        for need in [
            Need::CtRead(CtId(101)),
            Need::NodeRead,
            Need::Events,
            Need::TemplateRead,
        ] {
            assert_eq!(st(allow(&bk, need)), 403);
        }
        assert_eq!(st(allow(&bob, Need::Store { own: true })), 403);
        assert_eq!(st(allow(&aud, Need::Store { own: true })), 403);
        assert!(!sees(&bk, 101));
        assert!(method_gate(&bk, &Method::GET, "/api/v1/containers").is_err());
        assert!(method_gate(&bk, &Method::GET, "/api/v1/backup-storex").is_err());
        assert!(method_gate(&bk, &Method::POST, "/api/v1/backup-store/u/data/ab").is_ok());
        assert!(method_gate(&bk, &Method::GET, "/metrics").is_err());
        assert!(sees_event(&bob, "container/101", "x"));
        assert!(!sees_event(&bob, "container/103", "u"));
    }
}
