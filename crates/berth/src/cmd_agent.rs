//! `berth events` and `berth operation`: berthd's event log and long operations, from the
//! node's berthd (its unix socket) or the `--remote` one.

use crate::Format;
use anyhow::Result;
use berth_api::agent::{Event, Operation};
use berth_client::{Endpoint, RemoteNode};
use berth_core::NodeRoot;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum OperationCmd {
    /// Long operations (create, template builds): running ones and recent ones
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One operation: state, progress, result or error
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Cancel a running operation (its work is rolled back)
    Cancel { id: String },
}

/// berthd of `--remote`, else this node's berthd through its root-only socket.
fn agent(root: &NodeRoot) -> Result<RemoteNode> {
    if let Some(r) = crate::cmd_remote::selected_remote()? {
        return Ok(r);
    }
    let sock = root.run_dir().join("berthd.sock");
    if !sock.exists() {
        anyhow::bail!(
            "berthd does not run on node root {} (no {}): events and operations are berthd's; start it (`berthd --root {}`, or contrib/berthd.service)",
            root.path().display(),
            sock.display(),
            root.path().display()
        );
    }
    Ok(RemoteNode::new(Endpoint::Unix { path: sock }, None, None)
        .map_err(berth_api::Error::from)?)
}

fn time(ms: u64) -> String {
    berth_core::timefmt::utc_seconds(ms)
}

fn print_event(e: &Event, json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string(e)?);
    } else {
        let details = if e.details.is_null() {
            String::new()
        } else {
            format!("  {}", e.details)
        };
        outln!(
            "{}  {:<10} {:<16} {:<22} {}{}",
            time(e.time_ms),
            e.kind,
            e.action,
            crate::output::printable(&e.object),
            crate::output::printable(&e.user),
            crate::output::printable(&details)
        );
    }
    Ok(())
}

/// `berth events [--since 10m] [--type T] [--follow] [--format json]`.
pub fn events(
    root: &NodeRoot,
    since: Option<&str>,
    kind: Option<&str>,
    follow: bool,
    json: bool,
) -> Result<()> {
    let a = agent(root)?;
    if !follow {
        let list = a.events(since, kind)?;
        if json {
            outln!("{}", serde_json::to_string_pretty(&list)?);
        } else {
            for e in &list {
                print_event(e, false)?;
            }
        }
        return Ok(());
    }
    // One JSON object per line while following (a stream, not a document).
    let mut failed = None;
    a.events_follow(since, kind, &mut |e| match print_event(&e, json) {
        Ok(()) => true,
        Err(err) => {
            failed = Some(err);
            false
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn print_op(o: &Operation) -> Result<()> {
    let progress = match o.progress.total {
        Some(t) if t > 0 => format!("{} {}/{}", o.progress.phase, o.progress.done, t),
        _ if !o.progress.phase.is_empty() => o.progress.phase.clone(),
        _ => "-".into(),
    };
    outln!(
        "{:<36} {:<18} {:<22} {:<10} {:<12} {}",
        o.id,
        o.kind,
        crate::output::printable(&o.object),
        format!("{:?}", o.state).to_lowercase(),
        crate::output::printable(&o.user),
        crate::output::printable(&progress)
    );
    Ok(())
}

/// `berth operation list|show|cancel`.
pub fn operation(root: &NodeRoot, cmd: OperationCmd) -> Result<()> {
    let a = agent(root)?;
    match cmd {
        OperationCmd::List { format } => {
            let ops = a.operations()?;
            if format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&ops)?);
            } else {
                outln!(
                    "{:<36} {:<18} {:<22} {:<10} {:<12} PROGRESS",
                    "ID",
                    "KIND",
                    "OBJECT",
                    "STATE",
                    "USER"
                );
                for o in &ops {
                    print_op(o)?;
                }
            }
        }
        OperationCmd::Show { id, format } => {
            let o = a.operation_info(&id)?;
            if format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&o)?);
            } else {
                print_op(&o)?;
                if let Some(e) = &o.error {
                    outln!("error: {}", crate::hints::render_api(e));
                }
                if let Some(r) = &o.result {
                    outln!("result: {r}");
                }
            }
        }
        OperationCmd::Cancel { id } => {
            let o = a.operation_cancel(&id)?;
            outln!(
                "operation {} {}",
                o.id,
                match o.state {
                    berth_api::agent::OperationState::Running => "is being cancelled",
                    berth_api::agent::OperationState::Cancelled => "cancelled",
                    _ => "had already ended",
                }
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_time() {
        assert_eq!(super::time(0), "1970-01-01 00:00:00");
        assert_eq!(super::time(1_764_633_600_000), "2025-12-02 00:00:00");
        assert_eq!(
            super::time(951_782_400_000 + 3_661_000),
            "2000-02-29 01:01:01"
        );
    }
}
