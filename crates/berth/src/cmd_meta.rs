//! Commands about the tool itself: `version`, `completion SHELL`, and the hidden `__man DIR`
//! that writes the man pages (`man/`, kept current by a test).

use anyhow::Result;
use clap::CommandFactory;

/// `berth version`.
pub fn version(as_json: bool) -> Result<()> {
    let v = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("BERTH_COMMIT"),
        "target": env!("BERTH_TARGET"),
        "profile": env!("BERTH_PROFILE"),
        "api": berth_api::agent::API_PREFIX,
    });
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        outln!(
            "berth {} (commit {}, {} {}, API {})",
            env!("CARGO_PKG_VERSION"),
            env!("BERTH_COMMIT"),
            env!("BERTH_TARGET"),
            env!("BERTH_PROFILE"),
            berth_api::agent::API_PREFIX
        );
    }
    Ok(())
}

/// `berth completion SHELL`: the completion script on stdout.
pub fn completion(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = without_hidden(crate::Cli::command());
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "berth", &mut out);
    use std::io::Write as _;
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// The command tree without its hidden subcommands (`__monitor`, `__man`): completion
/// generators list every subcommand, hidden or not.
fn without_hidden(cmd: clap::Command) -> clap::Command {
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .map(without_hidden)
        .collect();
    // clap cannot remove a subcommand: a new command with the same name, texts and
    // arguments gets the copies without the hidden ones.
    let mut out = clap::Command::new(cmd.get_name().to_string())
        .about(cmd.get_about().cloned().unwrap_or_default())
        .subcommand_required(cmd.is_subcommand_required_set())
        .args(cmd.get_arguments().cloned())
        .subcommands(subs);
    if let Some(v) = cmd.get_version() {
        out = out.version(v.to_string());
    }
    if cmd.is_disable_help_subcommand_set() {
        out = out.disable_help_subcommand(true);
    }
    out
}

/// Writes `berth.1` and one page per subcommand (`berth-node-init.1`…) into `dir`.
pub fn man(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = crate::Cli::command();
    write_pages(&cmd, "berth", dir)
}

fn write_pages(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> Result<()> {
    let page = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.1")), buf)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
