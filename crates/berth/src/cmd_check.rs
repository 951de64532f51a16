//! `berth node check [--repair]`: prints the report of `berth_node::check`.

use berth_core::NodeRoot;
use berth_node::check::{check, Report};
use berth_node::LocalNode;
use std::io::Write;

/// Runs the check (and the repair); returns the exit status: 0 when nothing is left to
/// fix, 1 when problems remain.
pub fn run(
    root: &NodeRoot,
    repair: bool,
    json: bool,
    open: impl FnOnce() -> anyhow::Result<LocalNode>,
) -> anyhow::Result<i32> {
    // Checked before the node is opened: opening runs the recovery, which would hide what
    // it repairs from the report.
    let mut report = check(root)?;
    if repair && !report.problems.is_empty() {
        report = open()?.repair(report)?;
    }
    print(&report, repair, json)?;
    Ok(if report.remaining() == 0 { 0 } else { 1 })
}

fn print(r: &Report, repair: bool, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, r)?;
        writeln!(out)?;
        return Ok(());
    }
    if r.problems.is_empty() {
        writeln!(out, "node root {}: no problem found", r.node_root.display())?;
        return Ok(());
    }
    for p in &r.problems {
        let kind = serde_json::to_value(p.kind)?;
        let state = match (repair, p.repaired, p.repairable) {
            (true, true, _) => "repaired",
            (true, false, _) => "needs a human",
            (false, _, true) => "repairable",
            (false, _, false) => "needs a human",
        };
        writeln!(
            out,
            "{}: {}: {} [{state}]",
            kind.as_str().unwrap_or("problem"),
            crate::output::printable(&p.object),
            crate::output::printable(&p.detail)
        )?;
        if !p.repaired {
            writeln!(out, "  fix: {}", crate::output::printable(&p.fix))?;
        }
    }
    let left = r.remaining();
    if repair {
        writeln!(
            out,
            "{} problem(s) found, {} repaired, {left} left",
            r.problems.len(),
            r.problems.len() - left
        )?;
    } else {
        writeln!(out, "{left} problem(s) found")?;
    }
    Ok(())
}
