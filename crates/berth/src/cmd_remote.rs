//! `berth remote …` (the remotes of the invoking user) and `berth --remote NAME …` (every
//! other command, run on that node through its API instead of on this machine).

use crate::{Cli, Cmd, Format, NodeCmd};
use anyhow::Result;
use berth_api::Node;
use berth_client::{config, ClientError, Endpoint, Fingerprint, Remote, RemoteNode, Remotes};
use clap::Subcommand;
use std::io::BufRead;
use std::sync::OnceLock;

#[derive(Subcommand)]
pub enum RemoteCmd {
    /// Add a remote node: https://HOST:PORT (its certificate pinned), or unix:///PATH
    /// (berthd's socket on this machine). Without --fingerprint the certificate is read at
    /// first contact and trusted from then on, as ssh does
    Add {
        name: String,
        url: String,
        /// API token (`berth token create` on the node); BERTH_TOKEN overrides it
        #[arg(long, conflicts_with = "token_stdin")]
        token: Option<String>,
        /// Read the token from the first line of stdin
        #[arg(long)]
        token_stdin: bool,
        /// SHA-256 of the node's certificate (64 hex digits, shown by `berth node info`
        /// on the node)
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// List the remotes
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a remote (never its token)
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Forget a remote
    Remove { name: String },
}

static SELECTED: OnceLock<String> = OnceLock::new();

/// The command line, and whether `--remote` came from BERTH_REMOTE.
pub fn parse() -> Result<(Cli, bool), clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let m = Cli::command().try_get_matches()?;
    let from_env = m.value_source("remote") == Some(clap::parser::ValueSource::EnvVariable);
    Ok((Cli::from_arg_matches(&m)?, from_env))
}

/// Commands that act on this machine only (never through `--remote`).
fn local_only(cmd: &Cmd) -> Option<&'static str> {
    match cmd {
        Cmd::Node {
            cmd: NodeCmd::Init { .. },
        } => Some("node init"),
        Cmd::Node {
            cmd: NodeCmd::Destroy { .. },
        } => Some("node destroy"),
        Cmd::Node {
            cmd: NodeCmd::Reclaim { .. },
        } => Some("node reclaim"),
        Cmd::Node {
            cmd: NodeCmd::Check { .. },
        } => Some("node check"),
        Cmd::Man { .. } => Some("__man"),
        Cmd::User {
            cmd: crate::cmd_user::UserCmd::Inside(_),
        } => None,
        Cmd::User { .. } => Some("user"),
        Cmd::Inside => Some("__inside"),
        Cmd::Token { .. } => Some("token"),
        Cmd::Monitor { .. } => Some("__monitor"),
        Cmd::Remote { .. } => Some("remote"),
        _ => None,
    }
}

/// Makes [`open_selected`] answer the remote of `--remote`, or refuses it for a command
/// that acts on this machine only.
pub fn select(cli: &Cli, remote_from_env: bool) -> Result<()> {
    match (&cli.remote, local_only(&cli.cmd)) {
        // BERTH_REMOTE in the environment does not keep one from managing the remotes.
        (Some(_), Some("remote")) if remote_from_env => {}
        (Some(_), Some(what)) => anyhow::bail!(
            "`berth {what}` acts on this machine only: drop --remote (or unset BERTH_REMOTE)"
        ),
        (Some(name), None) => {
            config::validate_name(name).map_err(berth_api::Error::from)?;
            let _ = SELECTED.set(name.clone());
        }
        (None, _) => {}
    }
    Ok(())
}

/// The remote of `--remote NAME` as a client of berthd, when one was given.
pub fn selected_remote() -> Result<Option<RemoteNode>> {
    match SELECTED.get() {
        Some(name) => Ok(Some(open_remote(name).map_err(berth_api::Error::from)?)),
        None => Ok(None),
    }
}

/// Whether `--remote NAME` was given.
pub fn is_remote() -> bool {
    SELECTED.get().is_some()
}

/// The node of `--remote NAME`, when one was given.
pub fn open_selected() -> Result<Option<Box<dyn Node>>> {
    Ok(selected_remote()?.map(|n| Box::new(n) as Box<dyn Node>))
}

pub(crate) fn open_remote(name: &str) -> Result<RemoteNode, ClientError> {
    let remotes = Remotes::load(&config::config_dir()?)?;
    let token = std::env::var("BERTH_TOKEN").ok().filter(|t| !t.is_empty());
    tracing::debug!(remote = name, "opening remote node");
    RemoteNode::from_remote(remotes.get(name)?, token)
}

fn api<T>(r: Result<T, ClientError>) -> Result<T> {
    Ok(r.map_err(berth_api::Error::from)?)
}

fn token_of(token: Option<String>, token_stdin: bool) -> Result<Option<String>> {
    if !token_stdin {
        return Ok(token);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let t = line.trim().to_string();
    if t.is_empty() {
        anyhow::bail!("--token-stdin: stdin gave no token");
    }
    Ok(Some(t))
}

pub fn run(cmd: RemoteCmd) -> Result<()> {
    let dir = api(config::config_dir())?;
    let mut remotes = api(Remotes::load(&dir))?;
    match cmd {
        RemoteCmd::Add {
            name,
            url,
            token,
            token_stdin,
            fingerprint,
        } => {
            api(config::validate_name(&name))?;
            if remotes.remotes.contains_key(&name) {
                return Err(berth_api::Error::from(ClientError::RemoteExists(name)).into());
            }
            let ep = api(Endpoint::parse(&url))?;
            let token = token_of(token, token_stdin)?;
            if let Some(t) = &token {
                api(config::validate_token(t))?;
            }
            let mut remote = Remote {
                url: ep.to_string(),
                fingerprint: None,
                token,
            };
            let mut tofu = false;
            match (&ep, fingerprint) {
                (Endpoint::Unix { .. }, Some(_)) => {
                    anyhow::bail!("a unix socket remote has no certificate: drop --fingerprint")
                }
                (Endpoint::Unix { .. }, None) => {}
                (Endpoint::Https { .. }, Some(f)) => {
                    let fp = Fingerprint::parse(&f).ok_or_else(|| {
                        berth_api::Error::invalid(format!(
                            "invalid value {f:?} for --fingerprint: give the SHA-256 as 64 hex digits"
                        ))
                    })?;
                    remote.fingerprint = Some(fp.to_string());
                }
                (Endpoint::Https { .. }, None) => {
                    let fp = api(berth_client::probe_fingerprint(&ep))?;
                    outln!("certificate SHA-256 fingerprint: {fp}");
                    remote.fingerprint = Some(fp.to_string());
                    tofu = true;
                }
            }
            api(remote.validate(&name))?;
            if tofu || matches!(ep, Endpoint::Unix { .. }) {
                // First contact: the node answers with this pin and token, or nothing is
                // stored.
                let env = std::env::var("BERTH_TOKEN").ok().filter(|t| !t.is_empty());
                let node = api(RemoteNode::from_remote(&remote, env))?;
                node.node_info()?;
            }
            remotes.remotes.insert(name.clone(), remote);
            api(remotes.save(&dir))?;
            if tofu {
                outln!(
                    "remote {name} added ({ep}); its certificate was trusted on first use: compare the fingerprint with `berth node info` on the node"
                );
            } else {
                outln!("remote {name} added ({ep})");
            }
        }
        RemoteCmd::List { format } => {
            let rows: Vec<_> = remotes.remotes.iter().map(|(n, r)| row(n, r)).collect();
            if format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let w = rows.iter().map(|r| r.url.len()).max().unwrap_or(3).max(3);
                let nw = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
                outln!("{:nw$}  {:w$}  {:16}  TOKEN", "NAME", "URL", "FINGERPRINT");
                for r in rows {
                    let fp = r
                        .fingerprint
                        .as_deref()
                        .map(|f| format!("{}…", &f[..f.len().min(15)]))
                        .unwrap_or_else(|| "-".into());
                    let tok = if r.token { "stored" } else { "-" };
                    outln!("{:nw$}  {:w$}  {fp:16}  {tok}", r.name, r.url);
                }
            }
        }
        RemoteCmd::Show { name, format } => {
            let r = row(&name, api(remotes.get(&name))?);
            if format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                outln!("name:        {}", r.name);
                outln!("url:         {}", r.url);
                outln!(
                    "fingerprint: {}",
                    r.fingerprint.as_deref().unwrap_or("- (unix socket)")
                );
                outln!("token:       {}", if r.token { "stored" } else { "none" });
            }
        }
        RemoteCmd::Remove { name } => {
            api(remotes.get(&name))?;
            remotes.remotes.remove(&name);
            api(remotes.save(&dir))?;
            outln!("remote {name} removed");
        }
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Row {
    name: String,
    url: String,
    fingerprint: Option<String>,
    /// Whether a token is stored (never the token).
    token: bool,
}

fn row(name: &str, r: &Remote) -> Row {
    Row {
        name: name.to_string(),
        url: r.url.clone(),
        fingerprint: r.fingerprint.clone(),
        token: r.token.is_some(),
    }
}
