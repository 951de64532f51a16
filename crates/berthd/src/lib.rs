//! berthd, Berth's node agent: the REST API of [`berth_api::Node`] over a root-only unix
//! socket and HTTPS, with users and roles, long operations, an event log, and metrics.
//! Containers never depend on it: their monitors own them.

pub mod audit;
pub mod authn;
pub mod config;
pub mod error;
pub mod events;
pub mod listcache;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod policy;
pub mod routes;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod tls;
pub mod watch;

#[cfg(test)]
mod fuzz_tests;

use crate::config::Args;
use crate::error::DaemonError;
use base64::Engine as _;
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) fn hex(b: &[u8]) -> String {
    berth_auth::hex(b)
}

pub(crate) fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The `berth` binary: configured, or beside this executable.
fn berth_exe(cfg: &config::Config) -> Result<PathBuf, DaemonError> {
    let p = match &cfg.berth_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| DaemonError::io("/proc/self/exe", e))?
            .with_file_name("berth"),
    };
    if !p.is_file() {
        return Err(DaemonError::Config(format!(
            "the berth binary {} does not exist: give --berth-exe PATH",
            p.display()
        )));
    }
    Ok(p)
}

/// How this node's migrations reach their targets: berthd's HTTPS API, pinned.
fn connect_target(t: &berth_api::MigrateTarget) -> berth_api::Result<Box<dyn berth_api::Node>> {
    Ok(Box::new(berth_client::RemoteNode::for_migration(t)?))
}

/// Runs berthd until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), DaemonError> {
    let cfg = args.config()?;
    let root = std::path::absolute(&args.root).map_err(|e| DaemonError::io(&args.root, e))?;
    let exe = berth_exe(&cfg)?;
    let node_root = berth_core::NodeRoot::new(&root);
    let r2 = node_root.clone();
    // Opening the node runs its recovery: what interrupted commands (and a killed berthd's
    // operations) left half-done is finished or rolled back here.
    let node = tokio::task::spawn_blocking(move || {
        // A write into a backup store that a kill cut short left its temporary file.
        berth_node::backup_store::Store::sweep(&r2);
        berth_node::LocalNode::open(r2, exe).map(|n| n.with_connector(Box::new(connect_target)))
    })
    .await
    .map_err(|e| DaemonError::Config(e.to_string()))?
    .map_err(|e| DaemonError::Api(e.to_api()))?;
    let auth = berth_auth::Store::open(&root).map_err(|e| DaemonError::Api(e.into()))?;
    let api_dir = auth.dir().to_path_buf();
    berth_core::fsutil::ensure_mode(&api_dir, 0o700)
        .map_err(|e| DaemonError::Config(e.to_string()))?;
    let events = Arc::new(events::EventLog::open(&api_dir, cfg.event_log_max_bytes));
    let ops = Arc::new(ops::Ops::open(&api_dir, events.clone()));
    let listen = cfg.listen_addr().map_err(DaemonError::Config)?;
    let tls = match listen {
        Some(addr) if !cfg.plain_http => {
            let cert = tls::load_or_create(&api_dir, &[addr.ip().to_string()])?;
            println!(
                "berthd: node certificate {} SHA-256 fingerprint {}",
                cert.cert_path.display(),
                cert.fingerprint
            );
            Some(tokio_rustls::TlsAcceptor::from(cert.config))
        }
        _ => None,
    };
    let st = Arc::new(state::AppState {
        node: Arc::new(node),
        root: root.clone(),
        cfg: cfg.clone(),
        auth,
        sessions: Default::default(),
        limiter: authn::RateLimiter::new(cfg.auth_failures_per_minute),
        ops,
        events: events.clone(),
        stop_requests: Default::default(),
        clone_slots: Default::default(),
        list_cache: Default::default(),
        sessions_exec: Arc::new(tokio::sync::Semaphore::new(state::MAX_EXEC_SESSIONS)),
        sessions_console: Arc::new(tokio::sync::Semaphore::new(state::MAX_CONSOLE_FOLLOWS)),
    });
    let app = routes::router(st.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let sock = node_root.run_dir().join("berthd.sock");
    if cfg.unix_socket {
        let l = server::bind_unix(&sock)?;
        println!("berthd: unix socket {}", sock.display());
        tasks.spawn(server::serve_unix(l, app.clone()));
    }
    if let Some(addr) = listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| DaemonError::io(addr.to_string(), e))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("berthd: listening on {scheme}://{addr}");
        tasks.spawn(server::serve_tcp(l, tls, app.clone()));
    }
    events.emit(
        "node",
        "berthd_started",
        "node",
        "berthd",
        serde_json::json!({"pid": std::process::id(), "listen": cfg.listen}),
    );
    tasks.spawn(watch::run(st.clone()));
    tasks.spawn(scheduler::run(st.clone()));
    // The first start since the host booted starts the `--onboot yes` containers (as `berth
    // node boot` does on a node without berthd); a restart of berthd does not.
    if first_start_since_boot(&api_dir) {
        let st2 = st.clone();
        tokio::spawn(async move {
            match st2.call(|n| n.node_boot()).await {
                Ok(done) => st2.events.emit(
                    "node",
                    "boot",
                    "node",
                    "berthd",
                    serde_json::json!({ "containers": done }),
                ),
                Err(e) => tracing::warn!("node boot: {}", e.0.message),
            }
        });
    }
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| DaemonError::io("signal", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| DaemonError::io("signal", e))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = tasks.join_next() => {}
    }
    events.emit(
        "node",
        "berthd_stopped",
        "node",
        "berthd",
        serde_json::Value::Null,
    );
    if cfg.unix_socket {
        let _ = std::fs::remove_file(&sock);
    }
    Ok(())
}

/// Whether this is berthd's first start since the host booted (the kernel's boot ID differs
/// from the one recorded at the last start; recorded now).
fn first_start_since_boot(api_dir: &std::path::Path) -> bool {
    let Ok(id) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
        return false;
    };
    let id = id.trim().to_string();
    let path = api_dir.join("boot_id");
    let last = std::fs::read_to_string(&path).unwrap_or_default();
    if last.trim() == id {
        return false;
    }
    if let Err(e) =
        berth_core::fsutil::write_runtime_file(&path, format!("{id}\n").as_bytes(), 0o600)
    {
        tracing::warn!("recording the boot ID: {e}");
    }
    true
}
