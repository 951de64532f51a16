//! `berthd [--root DIR] [--config FILE] [--listen ADDR:PORT]`: Berth's node agent.

use clap::Parser;

fn main() {
    // As the CLI: what Berth makes for containers (templates built in-process) gets the
    // usual modes, root-only files get explicit ones.
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(0o022) };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "info,libcgroups=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = berthd::config::Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(128)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthd: error: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(berthd::run(args)) {
        eprintln!("berthd: error: {e}");
        std::process::exit(1);
    }
    // Blocking calls still running (a followed console) do not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(0);
}
