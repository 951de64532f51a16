//! `berth`: manage system containers on this node (like vzctl, without a daemon).

mod net_args;
mod output;
mod progress;

use anyhow::Result;
use berth_core::ops::{CreateOptions, NodeOps, StopOptions, TemplateSource};
use berth_core::paths::DEFAULT_ROOT;
use berth_core::{CtId, CtRef, NodeRoot, Size};
use berth_node::LocalNode;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: OS-level virtualization for Linux (system containers)"
)]
struct Cli {
    /// Node root directory
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = DEFAULT_ROOT)]
    root: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Node-level commands
    Node {
        #[command(subcommand)]
        cmd: NodeCmd,
    },
    /// OS templates
    Template {
        #[command(subcommand)]
        cmd: TemplateCmd,
    },
    /// Virtual networks (host-only or bridged, optional NAT)
    Network {
        #[command(subcommand)]
        cmd: net_args::NetworkCmd,
    },
    /// Change a container's settings (saved; network changes apply live)
    Set {
        ct: String,
        #[command(flatten)]
        net: net_args::NetSetArgs,
    },
    /// Create a container from an OS template
    Create {
        /// CTID (default: the next free one from 100)
        ctid: Option<String>,
        #[arg(long)]
        ostemplate: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Virtual disk size, e.g. 2G (default 10G)
        #[arg(long)]
        diskspace: Option<String>,
        /// Run without a user namespace: container root is host root (not recommended)
        #[arg(long)]
        privileged: bool,
    },
    /// Start a container
    Start { ct: String },
    /// Stop a container (clean shutdown, then kill after --timeout)
    Stop {
        ct: String,
        /// Seconds to wait for a clean shutdown
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Kill at once
        #[arg(long, alias = "fast")]
        kill: bool,
    },
    /// Stop and start a container
    Restart {
        ct: String,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[arg(long, alias = "fast")]
        kill: bool,
    },
    /// Show a container's status
    Status {
        ct: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Freeze all processes of a container
    Suspend { ct: String },
    /// Thaw a suspended container
    Resume { ct: String },
    /// List containers (running ones; -a for all)
    List {
        #[arg(short, long)]
        all: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Run a command in a running container (exit code passed through)
    Exec {
        ct: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Open an interactive login shell in a running container
    Enter { ct: String },
    /// Show the container's console output (init's stdout/stderr)
    Console {
        ct: String,
        /// Keep printing new output while the container runs
        #[arg(short, long)]
        follow: bool,
    },
    /// Destroy a container and its private area
    Destroy {
        ct: String,
        /// Stop it first if it runs
        #[arg(long)]
        force: bool,
    },
    #[command(name = "__monitor", hide = true)]
    Monitor { ctid: String },
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Prepare the node root (and its default network: host-only, NAT)
    Init {
        /// Subnet of the default network (default 10.213.0.0/24; `none`: no default network)
        #[arg(long, env = "BERTH_DEFAULT_SUBNET")]
        subnet: Option<String>,
        /// Create no default network
        #[arg(long)]
        no_network: bool,
    },
    /// The node's network adapters, their addresses and the virtual network using each
    Adapters {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Subcommand)]
enum TemplateCmd {
    /// Create a template: `busybox` (built from the host), or a Debian one with --debootstrap
    Create {
        name: String,
        /// Debian suite to debootstrap (e.g. bookworm)
        #[arg(long)]
        debootstrap: Option<String>,
        /// Debian mirror for --debootstrap (default: the node's apt mirror)
        #[arg(long, requires = "debootstrap")]
        mirror: Option<String>,
        /// Build the busybox template under another name
        #[arg(long, conflicts_with = "debootstrap")]
        busybox: bool,
    },
    /// Import a rootfs tarball (.tar, .tar.gz, .tar.xz, .tar.zst)
    Import { name: String, tarball: PathBuf },
    /// List templates
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a template
    Info {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove a template no container uses
    Remove { name: String },
}

fn open(root: &NodeRoot) -> Result<LocalNode> {
    let exe = std::env::current_exe()?;
    Ok(LocalNode::open(
        root.clone(),
        Arc::new(progress::Bar::new()),
        exe,
    )?)
}

fn ct(s: &str) -> Result<CtRef> {
    Ok(CtRef::parse(s)?)
}

fn run(cli: Cli) -> Result<i32> {
    let root = NodeRoot::new(&cli.root);
    match cli.cmd {
        Cmd::Node {
            cmd: NodeCmd::Adapters { format },
        } => {
            let node = open(&root)?;
            net_args::adapters(&node, format == Format::Json)?;
        }
        Cmd::Network { cmd } => {
            let node = open(&root)?;
            net_args::network(&node, cmd)?;
        }
        Cmd::Set { ct: c, net } => {
            let r = ct(&c)?;
            net.change()?;
            if net.is_empty() {
                anyhow::bail!("nothing to set: give at least one option (see `berth set --help`)");
            }
            let node = open(&root)?;
            net_args::apply(&node, &r, &net)?;
        }
        Cmd::Node {
            cmd: NodeCmd::Init { subnet, no_network },
        } => {
            let subnet = net_args::default_subnet(subnet.as_deref(), no_network)?;
            let (cfg, new) = berth_node::init_node(&root, subnet)?;
            if new {
                println!(
                    "node initialised at {} (node id {})",
                    root.path().display(),
                    cfg.node_id
                );
            } else {
                println!(
                    "node already initialised at {} (node id {})",
                    root.path().display(),
                    cfg.node_id
                );
            }
        }
        Cmd::Template { cmd } => {
            let node = open(&root)?;
            match cmd {
                TemplateCmd::Create {
                    name,
                    debootstrap,
                    mirror,
                    busybox,
                } => {
                    let source = match debootstrap {
                        Some(suite) => TemplateSource::Debootstrap { suite, mirror },
                        None if busybox || name == "busybox" => TemplateSource::Busybox,
                        None => anyhow::bail!(
                            "no built-in template {name:?}: use `--debootstrap SUITE`, `--busybox`, or `berth template import {name} FILE`"
                        ),
                    };
                    let m = node.template_create(&name, source)?;
                    println!(
                        "template {} created ({})",
                        m.name,
                        m.os.as_deref().unwrap_or("unknown OS")
                    );
                }
                TemplateCmd::Import { name, tarball } => {
                    let m = node.template_create(&name, TemplateSource::Tarball(tarball))?;
                    println!(
                        "template {} imported ({})",
                        m.name,
                        m.os.as_deref().unwrap_or("unknown OS")
                    );
                }
                TemplateCmd::List { format } => {
                    output::templates(&node.template_list()?, format == Format::Json)?
                }
                TemplateCmd::Info { name, format } => {
                    output::template(&node.template_info(&name)?, format == Format::Json)?
                }
                TemplateCmd::Remove { name } => {
                    node.template_remove(&name)?;
                    println!("template {name} removed");
                }
            }
        }
        Cmd::Create {
            ctid,
            ostemplate,
            name,
            hostname,
            description,
            diskspace,
            privileged,
        } => {
            let ctid = ctid.as_deref().map(CtId::parse).transpose()?;
            let diskspace = diskspace.as_deref().map(Size::parse).transpose()?;
            let node = open(&root)?;
            let id = node.create(CreateOptions {
                ctid,
                ostemplate,
                name,
                hostname,
                description,
                diskspace,
                privileged,
            })?;
            if privileged {
                eprintln!("warning: container {id} is PRIVILEGED: its root is the node's root");
            }
            println!("container {id} created");
        }
        Cmd::Start { ct: c } => {
            let node = open(&root)?;
            let info = node.start(&ct(&c)?)?;
            println!("container {} started", info.ctid);
        }
        Cmd::Stop {
            ct: c,
            timeout,
            kill,
        } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            node.stop(&r, StopOptions { timeout, kill })?;
            println!("container {r} stopped");
        }
        Cmd::Restart {
            ct: c,
            timeout,
            kill,
        } => {
            let node = open(&root)?;
            let info = node.restart(&ct(&c)?, StopOptions { timeout, kill })?;
            println!("container {} restarted", info.ctid);
        }
        Cmd::Status { ct: c, format } => {
            let node = open(&root)?;
            output::status(&node.status(&ct(&c)?)?, format == Format::Json)?;
        }
        Cmd::Suspend { ct: c } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            node.suspend(&r)?;
            println!("container {r} suspended");
        }
        Cmd::Resume { ct: c } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            node.resume(&r)?;
            println!("container {r} resumed");
        }
        Cmd::List { all, format } => {
            let node = open(&root)?;
            output::list(&node.list(all)?, format == Format::Json)?;
        }
        Cmd::Exec { ct: c, command } => {
            let node = open(&root)?;
            return Ok(node.exec(&ct(&c)?, &command)?);
        }
        Cmd::Enter { ct: c } => {
            let node = open(&root)?;
            return Ok(node.enter(&ct(&c)?)?);
        }
        Cmd::Console { ct: c, follow } => {
            let node = open(&root)?;
            node.console(&ct(&c)?, follow, &mut std::io::stdout())?;
        }
        Cmd::Destroy { ct: c, force } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            node.destroy(&r, force)?;
            println!("container {r} destroyed");
        }
        Cmd::Monitor { ctid } => {
            let id = CtId::parse(&ctid)?;
            LocalNode::run_monitor(&root, id)?;
        }
    }
    Ok(0)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "warn,libcgroups=error".into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
