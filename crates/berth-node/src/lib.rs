//! The local node: Berth's operations on this machine, as used by the `berth` CLI without a
//! daemon (like vzctl). Every operation on a container takes that container's lock; creation
//! also takes the node lock (ID allocation). Each command first finishes or rolls back what an
//! interrupted command left (see [`recover`]).

mod api;
pub mod backup;
mod backup_files;
mod backup_restore;
pub mod backup_schedule;
pub mod backup_store;
pub mod check;
mod check_host;
mod check_repair;
mod clone;
mod devices;
pub mod diskguard;
pub mod diskspace;
pub mod error;
pub mod hostsvc;
mod idreg;
mod inroot;
pub mod inside;
mod live;
mod local;
mod migrate;
pub mod net;
pub mod netrecover;
pub mod pending;
pub mod procs;
pub mod reclaim;
pub mod recover;
mod renumber;
pub mod resources;
mod samples;
pub mod services;
mod setreq;

pub use error::NodeError;
pub use local::{init_node, init_node_reclaiming, Connector, LocalNode};

pub type Result<T, E = NodeError> = std::result::Result<T, E>;

pub use berth_core::crash::{crash_point, CRASH_POINTS};

#[cfg(test)]
mod crash_tests {
    /// Every call of `crash_point` with a literal in the workspace's sources names a point of
    /// [`super::CRASH_POINTS`], and every point there is called somewhere, once.
    #[test]
    fn crash_points_list_matches_the_sources() {
        fn walk(d: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![];
        for c in std::fs::read_dir(&crates).unwrap().flatten() {
            let src = c.path().join("src");
            if src.is_dir() {
                walk(&src, &mut files);
            }
        }
        let needle = concat!("crash_point", "(\"");
        let mut found: Vec<String> = vec![];
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            for (i, _) in text.match_indices(needle) {
                let rest = &text[i + needle.len()..];
                let end = rest.find('"').unwrap();
                found.push(rest[..end].to_string());
            }
        }
        for p in &found {
            assert!(
                super::CRASH_POINTS.contains(&p.as_str()),
                "{p} is not in CRASH_POINTS"
            );
        }
        for p in super::CRASH_POINTS {
            let n = found.iter().filter(|f| f == p).count();
            assert_eq!(n, 1, "crash point {p} is called {n} times in the sources");
        }
    }
}
