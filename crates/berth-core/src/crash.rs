//! Crash injection for tests: every step of a multi-step operation after which a kill
//! leaves a different state on disk or on the host is a named crash point. When the
//! environment variable `BERTH_CRASH_AT` names a point, the process reaching it kills
//! itself with SIGKILL there, exactly as an operator's `kill -9` or a power cut would
//! interrupt it. With `BERTH_CRASH_LOG` naming a file, the point's name is appended to it
//! first, so that a test knows the point was reached also in a process it does not wait
//! for (the container's monitor). `crates/berth/tests/crash_points.rs` walks every point.

/// Every crash point, by operation. A unit test of `berth-node` checks that this list and
/// the calls of [`crash_point`] in the sources name the same points.
pub const CRASH_POINTS: &[&str] = &[
    // create (CLI)
    "create:after-journal",
    "create:after-idmap",
    "create:after-disk",
    "create:after-config",
    // start (CLI)
    "start:after-run-dir",
    "start:after-monitor-spawn",
    "start:after-ready",
    // start (the container's monitor)
    "start:monitor-after-loop",
    "start:monitor-after-disk-mount",
    "start:monitor-after-private-mount",
    "start:monitor-after-layers",
    "start:monitor-after-spec",
    "start:monitor-after-net-record",
    "start:monitor-after-cgroup",
    "start:monitor-after-create",
    "start:monitor-after-links",
    "start:monitor-after-firewall",
    "start:monitor-after-state",
    // stop (CLI)
    "stop:after-marker",
    "stop:after-signal",
    "stop:after-gone",
    // stop (the container's monitor)
    "stop:monitor-after-init-exit",
    "stop:monitor-after-net",
    "stop:monitor-after-runtime",
    "stop:monitor-after-rootfs",
    // set: limits and names of a running container, disk of a stopped one
    "set:after-marker",
    "set:after-config",
    "set:after-live",
    "set:stopped-after-resize",
    "set:before-commit-rebuild",
    // set: network settings of a running container (`--netif_add`, `--ipadd`, …)
    "netset:after-marker",
    "netset:after-config",
    "netset:update-after-del",
    "netset:update-after-record",
    "netset:update-after-add",
    "netset:after-live",
    // `berth network create` / `delete`
    "network:create-after-journal",
    "network:create-after-bridge",
    "network:create-after-file",
    "network:create-after-firewall",
    "network:delete-after-journal",
    "network:delete-after-links",
    "network:delete-after-file",
    "network:delete-after-firewall",
    // `berth template create` / `import`
    "template:after-staging",
    "template:after-populate",
    "template:after-extract",
    "template:after-manifest",
    // clone
    "clone:after-journal",
    "clone:after-config",
    "clone:after-live-round",
    "clone:after-freeze",
    "clone:after-disk",
    // backup create (live: between the passes, frozen) and backup restore
    "backup:after-first-pass",
    "backup:after-freeze",
    "restore:after-disk",
    // move --ctid (renumber)
    "move:after-journal",
    "move:after-rename",
    "move:after-registry",
    "move:after-config",
    // `berth migrate` on the source (walked by berthd's tests/agent/migrate.rs: it needs a
    // target berthd)
    "migrate:after-stop",
    "migrate:before-end",
    // destroy
    "destroy:after-stop",
    "destroy:after-journal",
    "destroy:after-runtime",
    "destroy:after-idreg",
    "destroy:after-dir",
];

/// Kills the process with SIGKILL here when `BERTH_CRASH_AT` names `name` (tests only;
/// without the variable this is one environment lookup).
pub fn crash_point(name: &str) {
    debug_assert!(CRASH_POINTS.contains(&name), "unknown crash point {name}");
    if std::env::var("BERTH_CRASH_AT").as_deref() != Ok(name) {
        return;
    }
    if let Some(log) = std::env::var_os("BERTH_CRASH_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{name}");
            let _ = f.sync_all();
        }
    }
    // SAFETY: raising SIGKILL on ourselves.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}
