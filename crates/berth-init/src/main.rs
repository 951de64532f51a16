//! `berth-init`: Berth's supervisor, bind-mounted read-only into containers at `/.berth/init`.
//!
//! - `berth-init boot [--rc SCRIPT] [--rc-stop SCRIPT] [--getty PROGRAM]`: run as the container's PID 1.
//! - `berth-init ctl list|status|start|stop|restart|reload [NAME]`: talk to PID 1 (run by
//!   `berth service` through `berth exec`).
//! - `berth-init logs NAME`: print a service's log.
//!
//! Linked statically: busybox templates carry no libc (docs/adr/0007-static-supervisor.md).

mod ctl;
mod supervisor;
mod sys;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rest = args.get(2..).unwrap_or(&[]);
    let code = match args.get(1).map(String::as_str) {
        Some("boot") => supervisor::run(rest),
        Some("ctl") => ctl::run(rest),
        Some("logs") => ctl::logs(rest),
        _ => {
            eprintln!("usage: berth-init boot [--rc SCRIPT] [--rc-stop SCRIPT] [--getty PROGRAM] | ctl VERB [NAME] | logs NAME");
            2
        }
    };
    std::process::exit(code);
}
