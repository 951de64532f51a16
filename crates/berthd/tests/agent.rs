//! berthd's integration tests (root): each test its own node root, berthd and port.

mod common;

#[path = "agent/auth.rs"]
mod auth;
#[path = "agent/backup_node.rs"]
mod backup_node;
#[path = "agent/backups.rs"]
mod backups;
#[path = "agent/clone.rs"]
mod clone;
#[path = "agent/exec.rs"]
mod exec;
#[path = "agent/input.rs"]
mod input;
#[path = "agent/lifecycle.rs"]
mod lifecycle;
#[path = "agent/migrate.rs"]
mod migrate;
#[path = "agent/migrate_netns.rs"]
mod migrate_netns;
#[path = "agent/ops_events.rs"]
mod ops_events;
