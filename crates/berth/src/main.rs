//! `berth`: manage system containers on this node (like vzctl, without a daemon).

/// `println!` that returns the write error (`?`) instead of panicking: a reader that went
/// away (`berth list | head -1`) ends the command quietly (see [`broken_pipe`]).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($t)*)?;
    }};
}
/// `print!` in the same way as [`outln!`].
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout();
        write!(o, $($t)*)?;
        o.flush()?;
    }};
}

mod cmd_backup;
mod cmd_backup_schedule;
mod cmd_check;
mod cmd_inside;
mod cmd_migrate;
mod cmd_procs;
mod cmd_remote;
mod cmd_sample;
mod cmd_service;
mod cmd_user;
mod net_args;
mod output;
mod progress;
mod res_args;
mod scrub;

mod cmd_agent;
mod cmd_meta;
mod hints;
mod list_args;

use anyhow::Result;
use berth_api::{ExecRequest, Node, NodeSettings, SetRequest, Stdio};
use berth_core::ops::{CloneOptions, CreateOptions, StopOptions, TemplateSource};
use berth_core::paths::DEFAULT_ROOT;
use berth_core::resources::SetMode;
use berth_core::{CtId, CtRef, NodeRoot};
use berth_node::LocalNode;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: OS-level virtualization for Linux (system containers)"
)]
pub(crate) struct Cli {
    /// Node root directory
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Run the command on this remote node (`berth remote add`) instead of this machine
    #[arg(long, global = true, env = "BERTH_REMOTE", value_name = "NAME")]
    remote: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum Format {
    #[default]
    Table,
    Json,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
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
        /// Virtual disk size, `hard` or `soft:hard`, e.g. 2G (default 10G)
        #[arg(long)]
        diskspace: Option<String>,
        /// Virtual disk filesystem: `ext4` (exact inode count) or `xfs` (grows online with
        /// CAP_SYS_ADMIN alone; inode limit in whole percent of the disk; 300M at least);
        /// default: the node's (`node set --default-fstype`), ext4
        #[arg(long)]
        fstype: Option<String>,
        /// Virtual disk type: `expanding` (sparse, the default) or `fixed` (preallocated:
        /// never meets a full node filesystem; counts fully as allocated)
        #[arg(long)]
        disktype: Option<String>,
        /// Run without a user namespace: container root is host root (not recommended)
        #[arg(long)]
        privileged: bool,
        #[command(flatten)]
        res: res_args::ResourceArgs,
        /// Start from a configuration sample's limits (`basic`, `light`, `unlimited`, one of
        /// `berth config-sample list`, or a TOML file); the flags given override them
        #[arg(long)]
        config: Option<String>,
        /// PID 1: `berth` (Berth's supervisor), `template` (the template's init) or `auto`
        /// (Berth's supervisor on templates without a service manager, e.g. busybox)
        #[arg(long, default_value = "auto")]
        init: String,
    },
    /// Copy a container under a new CTID: its disk copied sparsely (a running one is frozen
    /// only for the last pass), a new ID range, MACs and addresses (docs/clone.md)
    Clone {
        /// The container to copy (CTID or name)
        ct: String,
        /// The clone's CTID (default: the next free one); with --count, the first of them
        ctid: Option<String>,
        /// The clone's name; with --count, `{n}` in it is the clone's number (1…N)
        #[arg(long)]
        name: Option<String>,
        /// The clone's hostname (default: the source's); `{n}` as in --name
        #[arg(long)]
        hostname: Option<String>,
        /// Keep the source's MACs, addresses and port forwards (a stand-by copy: it starts
        /// only once the source has given them up)
        #[arg(long)]
        keep_network: bool,
        /// Make this many clones (the seed's group copy)
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Move containers to another node through its berthd (`berth remote add NAME …`):
    /// online (a running one's disk copied while it runs, stopped only for the last pass)
    /// or offline; it starts there with the same addresses and MACs
    Migrate(cmd_migrate::MigrateArgs),
    /// Backups into restic-format repositories: create, list, browse, restore, forget
    Backup {
        #[command(subcommand)]
        cmd: cmd_backup::BackupCmd,
    },
    /// Renumber a stopped container (vzmlocal): its directory, config and ID-range entry
    /// follow; disk, name, MACs and addresses stay
    Move {
        ct: String,
        /// The new CTID
        #[arg(long)]
        ctid: String,
    },
    /// Change a container's settings and limits (live on a running container where possible)
    Set {
        ct: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Start when the node boots
        #[arg(long, value_parser = ["yes", "no"])]
        onboot: Option<String>,
        /// Higher starts earlier at node boot
        #[arg(long)]
        bootorder: Option<u32>,
        /// Virtual disk size, `hard` or `soft:hard` (grows online; shrinking needs a stop)
        #[arg(long)]
        diskspace: Option<String>,
        /// `auto`: give the stopped container a fresh free host ID range from the host-wide
        /// registry (the fix for a range another container holds; its files need no chown)
        #[arg(long, value_parser = ["auto"])]
        idmap: Option<String>,
        #[command(flatten)]
        res: res_args::ResourceArgs,
        #[command(flatten)]
        net: net_args::NetSetArgs,
        /// For changes a running container cannot take live: `restart` it, or `ignore` (apply at next start)
        #[arg(long, value_enum)]
        setmode: Option<SetModeArg>,
        /// NAME:PASSWORD (vzctl's; shown in the process list while berth starts), or NAME
        /// alone to read the password from a prompt or stdin: sets the password of a user
        /// inside, creating the user if missing
        #[arg(long, value_name = "NAME[:PASSWORD]")]
        userpasswd: Option<String>,
        /// Action script for an event (premount, mount, start, stop, umount, destroy): a file
        /// of <root>/scripts/ or /etc/berth/scripts/, root's and not writable by others;
        /// `EVENT=` removes it. Repeatable
        #[arg(long, value_name = "EVENT=SCRIPT")]
        script: Vec<String>,
        /// Forward a host device (the same path inside, owned by the container's root):
        /// /dev/net/tun, /dev/fuse, /dev/ttyUSB0:r… Takes effect at the next start. Repeatable
        #[arg(long, value_name = "PATH[:rw|:r]")]
        device_add: Vec<String>,
        /// Stop forwarding a device (at the next start). Repeatable
        #[arg(long, value_name = "PATH")]
        device_del: Vec<String>,
        /// With --device-add: forward a block device the host itself uses (mounted, swap)
        #[arg(long, requires = "device_add")]
        force: bool,
        /// A capability on or off against the default set, or back to its default
        /// (vzctl's): net_admin:off, sys_nice:on… At the next start. Repeatable
        #[arg(long, value_name = "NAME:on|off|default")]
        capability: Vec<String>,
        /// Named bundles for common needs: tun (a VPN: /dev/net/tun), fuse (/dev/fuse).
        /// At the next start
        #[arg(long, value_name = "tun,fuse", value_delimiter = ',')]
        features: Vec<String>,
    },
    /// Resource usage against limits (all running containers when none is named)
    Stats {
        cts: Vec<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
        /// Refresh every --interval seconds until interrupted
        #[arg(short, long)]
        watch: bool,
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
    },
    /// Return unused virtual-disk blocks to the node (fstrim into the sparse image)
    Compact { ct: String },
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
        /// Columns, e.g. ctid,name,status,ip,cpu,ram,disk,numproc (see docs/resources.md)
        #[arg(short = 'o', long = "output", value_delimiter = ',')]
        columns: Vec<String>,
        #[arg(long, value_enum, default_value_t)]
        format: list_args::ListFormat,
        /// No header line (tables and CSV)
        #[arg(short = 'H', long = "no-header")]
        no_header: bool,
        /// Only containers of this OS template
        #[arg(long)]
        ostemplate: Option<String>,
        /// Only containers with an adapter on this network
        #[arg(long)]
        network: Option<String>,
        /// Filters KEY=VALUE: status, name, hostname, ostemplate, network, ip, ctid
        /// (`*` and `?` match any text / one character), e.g. `status=running name=web*`
        filters: Vec<String>,
    },
    /// Run a command in a running container (exit code passed through)
    Exec {
        ct: String,
        /// Give the command a pseudo-terminal (default: when stdin and stdout are terminals)
        #[arg(short = 't', long = "tty", conflicts_with = "no_tty")]
        tty: bool,
        /// Never a pseudo-terminal: the command gets this command's stdin/stdout/stderr
        #[arg(short = 'T', long = "no-tty")]
        no_tty: bool,
        /// Set an environment variable inside (KEY=VALUE; repeatable). Nothing else of the
        /// caller's environment crosses over
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Working directory inside the container (default /)
        #[arg(long, value_name = "DIR")]
        cwd: Option<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Open an interactive login shell in a running container
    Enter { ct: String },
    /// Attach to the container's console (/dev/console) from a terminal; otherwise print its log
    ///
    /// On a terminal, `berth console 101` attaches to the container's live console (its
    /// /dev/console, where init and a console getty talk); detach with Ctrl+a q (Ctrl+a
    /// Ctrl+a sends Ctrl+a). Without a terminal, or with --log / --follow, it prints the
    /// console log instead.
    Console {
        ct: String,
        /// Print the log and keep printing new output while the container runs (read-only)
        #[arg(short, long, conflicts_with = "attach")]
        follow: bool,
        /// Print the console log (the default when stdin or stdout is not a terminal)
        #[arg(long, conflicts_with = "attach")]
        log: bool,
        /// With --log/--follow: each line with the UTC time it began
        #[arg(short = 't', long, conflicts_with = "attach")]
        timestamps: bool,
        /// Attach even when stdin is not a terminal (input is sent as is; its end detaches)
        #[arg(long)]
        attach: bool,
        /// The detach key, pressed before `q`: ^a…^z or one character
        #[arg(long, value_name = "KEY", default_value = "^a")]
        escape: String,
    },
    /// Destroy a container and its private area
    Destroy {
        ct: String,
        /// Stop it first if it runs
        #[arg(long)]
        force: bool,
    },
    /// Processes of a container, read from the kernel (PID inside, host PID, user…)
    Ps {
        ct: String,
        /// Children under their parents
        #[arg(long)]
        tree: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Live view of every process on the node with its container (CT 0: the host)
    Top {
        /// cpu or mem
        #[arg(long, default_value = "cpu", value_parser = ["cpu", "mem"])]
        sort: String,
        /// Print one sample and exit
        #[arg(long)]
        once: bool,
        /// One sample as JSON
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Send a signal to a process of a container, by its PID inside the container
    Kill {
        ct: String,
        pid: i32,
        /// TERM, KILL, HUP, INT, USR1, … or a number
        #[arg(short, long, default_value = "TERM")]
        signal: String,
    },
    /// Which container a host process belongs to (0: the host)
    Which {
        host_pid: i32,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Services inside a container (systemd, OpenRC, init scripts or Berth's supervisor)
    Service {
        ct: String,
        #[command(subcommand)]
        cmd: cmd_service::ServiceCmd,
    },
    /// Version and build information
    Version {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Shell completion script (e.g. `berth completion bash > /etc/bash_completion.d/berth`)
    Completion { shell: clap_complete::Shell },
    /// Remote nodes for `--remote NAME` (stored in ~/.config/berth/remotes.toml)
    Remote {
        #[command(subcommand)]
        cmd: cmd_remote::RemoteCmd,
    },
    /// berthd's event log: what changed, when, by whom (the node's berthd, or --remote)
    Events {
        /// Only events since: 10m, 2h, 1d, or Unix seconds
        #[arg(long)]
        since: Option<String>,
        /// Only events of this type: container, template, network, node, operation, auth
        #[arg(long = "type")]
        kind: Option<String>,
        /// Keep printing new events (one JSON object per line with --format json)
        #[arg(short, long)]
        follow: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// berthd's long operations (create, template builds)
    Operation {
        #[command(subcommand)]
        cmd: cmd_agent::OperationCmd,
    },
    /// Configuration samples: named limit sets for `create --config`
    #[command(name = "config-sample")]
    ConfigSample {
        #[command(subcommand)]
        cmd: cmd_sample::SampleCmd,
    },
    /// Users inside a container (`user CT list|add|del|passwd`), or of the node's API
    /// (`user add|list|remove`)
    #[command(
        after_help = "Users inside a container: berth user CT list | add NAME [--uid N] [--groups a,b] [--shell S] [--home DIR] | del NAME | passwd NAME\n(CT is a CTID or a container name; see `berth user CT --help`.)\nUsers of the node's API (berthd): berth user add | list | remove."
    )]
    User {
        #[command(subcommand)]
        cmd: cmd_user::UserCmd,
    },
    /// Groups inside a container (its /etc/group)
    Group {
        ct: String,
        #[command(subcommand)]
        cmd: cmd_inside::GroupCmd,
    },
    /// Files inside a container: push, pull, ls, rm, edit (running or stopped)
    File {
        #[command(subcommand)]
        cmd: cmd_inside::FileCmd,
    },
    /// Tokens of the node's API (berthd)
    Token {
        #[command(subcommand)]
        cmd: cmd_user::TokenCmd,
    },
    #[command(name = "__monitor", hide = true)]
    Monitor { ctid: String },
    /// The helper that works inside a container (its request on stdin)
    #[command(name = "__inside", hide = true)]
    Inside,
    /// Writes the man pages into DIR (kept in man/ by a test)
    #[command(name = "__man", hide = true)]
    Man { dir: PathBuf },
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
        /// First remove the remains (links, nft tables, cgroups) of recorded node roots
        /// that no longer exist
        #[arg(long)]
        reclaim: bool,
    },
    /// Destroy the node: every container, network and host object of it, then the node root
    Destroy {
        /// The node root's path again, to confirm (nothing is asked interactively)
        #[arg(long, value_name = "NODE_ROOT")]
        confirm: Option<PathBuf>,
        /// Stop running containers instead of refusing
        #[arg(long)]
        force: bool,
    },
    /// Remove what a node root that no longer exists left on the host (links, nft tables,
    /// cgroups, loop devices, mounts); refused while a node root of that ID exists
    Reclaim { node_id: String },
    /// Start the containers marked --onboot yes (higher --bootorder first): what a node
    /// without berthd runs at boot (contrib/berth-boot.service)
    Boot {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The node's settings (node.toml): defaults for new containers, ID range start
    Config {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Report every inconsistency between the node root and the host, each with its fix;
    /// exit status 0 when clean, 1 when problems remain
    Check {
        /// Fix what is safe to fix (temporary files, interrupted operations, orphan mounts,
        /// loop devices, cgroups, links, missing bridges and rules, the ID registry)
        #[arg(long)]
        repair: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Node capacity (CPUs, memory, disk) and what its containers were promised
    Info {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The node's network adapters, their addresses and the virtual network using each
    Adapters {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Change node settings
    Set {
        /// Default startup type of a service in new containers: NAME=auto|manual|disabled
        /// (NAME=default removes it); repeatable
        #[arg(
            long = "service-default",
            required_unless_present_any = ["default_fstype", "disk_overcommit", "disk_reserve",
                "backup_default_repo", "backup_max_per_container"]
        )]
        service_default: Vec<String>,
        /// Virtual-disk filesystem of new containers created without --fstype: ext4 or xfs
        #[arg(long)]
        default_fstype: Option<String>,
        /// How many times the node filesystem's size the containers' --diskspace may add up
        /// to (e.g. 1.5); create and set --diskspace refuse beyond it (default 4)
        #[arg(long, allow_hyphen_values = true)]
        disk_overcommit: Option<String>,
        /// Free space kept on the node filesystem: below it, the containers writing most are
        /// frozen until space returns (`default`: 2% of the filesystem, 128M to 2G)
        #[arg(long, allow_hyphen_values = true)]
        disk_reserve: Option<String>,
        /// The backup repository used without --repo (as `backup repo default`)
        #[arg(long)]
        backup_default_repo: Option<String>,
        /// The most backups an owner may keep of each of his containers in a repository
        /// (the seed's Power Panel maximum; `none`: no limit)
        #[arg(long)]
        backup_max_per_container: Option<String>,
    },
    /// The host's own services and listening sockets, flagging what is not Berth's
    Services {
        /// Exit non-zero when the host runs services that are not Berth's (for monitoring)
        #[arg(long)]
        strict: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SetModeArg {
    Restart,
    Ignore,
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

/// The node the command talks to: this machine's, or the one of `--remote`.
fn open(root: &NodeRoot) -> Result<Box<dyn Node>> {
    if let Some(node) = cmd_remote::open_selected()? {
        return Ok(node);
    }
    let exe = std::env::current_exe()?;
    let node = LocalNode::open(root.clone(), exe)
        .map_err(berth_api::Error::from)?
        .with_connector(Box::new(|t| {
            Ok(Box::new(berth_client::RemoteNode::for_migration(t)?) as Box<dyn Node>)
        }));
    Ok(Box::new(node))
}

/// After a local `destroy` or `move`: the node's API owners follow container `from` to
/// `to`, or lose it (`None`: a later container of the same CTID is nobody's). berthd does
/// the same for its own calls; a node root without API users has nothing to change.
fn owners_follow(root: &NodeRoot, from: CtId, to: Option<CtId>) -> Result<()> {
    if cmd_remote::is_remote() || !root.path().join("api/users.toml").exists() {
        return Ok(());
    }
    let s = berth_auth::Store::open(root.path()).map_err(berth_api::Error::from)?;
    s.renumber_container(from.0, to.map(|t| t.0))
        .map_err(berth_api::Error::from)?;
    Ok(())
}

fn ct(s: &str) -> Result<CtRef> {
    Ok(CtRef::parse(s)?)
}

fn run(cli: Cli, remote_from_env: bool) -> Result<i32> {
    let root = NodeRoot::new(&cli.root);
    cmd_remote::select(&cli, remote_from_env)?;
    match cli.cmd {
        Cmd::Remote { cmd } => cmd_remote::run(cmd)?,
        Cmd::Node {
            cmd: NodeCmd::Adapters { format },
        } => {
            let node = open(&root)?;
            net_args::adapters(&*node, format == Format::Json)?;
        }
        Cmd::Network { cmd } => {
            let node = open(&root)?;
            net_args::network(&*node, cmd)?;
        }
        Cmd::Node {
            cmd: NodeCmd::Destroy { confirm, force },
        } => {
            let node = LocalNode::open(root.clone(), std::env::current_exe()?)
                .map_err(berth_api::Error::from)?;
            let me = std::fs::canonicalize(root.path())?;
            let confirmed = confirm
                .as_deref()
                .and_then(|c| std::fs::canonicalize(c).ok())
                .is_some_and(|c| c == me);
            if !confirmed {
                anyhow::bail!(
                    "node destroy removes every container, network and file of node root {0}: confirm with `berth --root {0} node destroy --confirm {0}`",
                    me.display()
                );
            }
            node.destroy_node(force).map_err(berth_api::Error::from)?;
            println!("node root {} destroyed", me.display());
        }
        Cmd::Node {
            cmd: NodeCmd::Reclaim { node_id },
        } => {
            berth_node::reclaim::remove(&node_id, None).map_err(berth_api::Error::from)?;
            println!("remains of node {node_id} removed");
        }
        Cmd::Node {
            cmd:
                NodeCmd::Init {
                    subnet,
                    no_network,
                    reclaim,
                },
        } => {
            let subnet = net_args::default_subnet(subnet.as_deref(), no_network)?;
            let (cfg, new, notes) = berth_node::init_node_reclaiming(&root, subnet, reclaim)
                .map_err(berth_api::Error::from)?;
            for n in notes {
                eprintln!("note: {n}");
            }
            if new {
                outln!(
                    "node initialised at {} (node id {})",
                    root.path().display(),
                    cfg.node_id
                );
            } else {
                outln!(
                    "node already initialised at {} (node id {})",
                    root.path().display(),
                    cfg.node_id
                );
            }
        }
        Cmd::Node {
            cmd: NodeCmd::Check { repair, format },
        } => {
            return cmd_check::run(&root, repair, format == Format::Json, || {
                LocalNode::open(root.clone(), std::env::current_exe()?)
                    .map_err(|e| berth_api::Error::from(e).into())
            });
        }
        Cmd::Node {
            cmd: NodeCmd::Info { format },
        } => {
            let node = open(&root)?;
            output::node_info(&node.node_info()?, format == Format::Json)?;
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
                    let m = node.template_create(&name, source, &progress::Bar::new())?;
                    outln!(
                        "template {} created ({})",
                        m.name,
                        m.os.as_deref().unwrap_or("unknown OS")
                    );
                }
                TemplateCmd::Import { name, tarball } => {
                    let m = node.template_create(
                        &name,
                        TemplateSource::Tarball(tarball),
                        &progress::Bar::new(),
                    )?;
                    outln!(
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
                    outln!("template {name} removed");
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
            fstype,
            disktype,
            privileged,
            res,
            config,
            init,
        } => {
            let init = berth_core::services::InitMode::parse(&init)?;
            let disktype = disktype
                .as_deref()
                .map(berth_core::DiskType::parse)
                .transpose()?;
            let fstype = fstype
                .as_deref()
                .map(berth_core::DiskFs::parse)
                .transpose()?;
            let ctid = ctid.as_deref().map(CtId::parse).transpose()?;
            let disk = res.to_set(diskspace.as_deref())?;
            let node = open(&root)?;
            let sample = config
                .as_deref()
                .map(|c| cmd_sample::resolve(&*node, c))
                .transpose()?
                .unwrap_or_default();
            let mut resources = sample.resources();
            disk.apply_resources(&mut resources);
            let info = node.create(
                CreateOptions {
                    ctid,
                    ostemplate,
                    name,
                    hostname,
                    description,
                    diskspace: disk.diskspace.or(sample.diskspace),
                    diskinodes: disk.diskinodes.or(sample.diskinodes),
                    fstype,
                    disktype,
                    privileged,
                    resources,
                    init,
                },
                &progress::Bar::new(),
            )?;
            let id = info.ctid;
            owners_follow(&root, id, None)?;
            if privileged {
                eprintln!("warning: container {id} is PRIVILEGED: its root is the node's root");
            }
            outln!("container {id} created");
        }
        Cmd::Clone {
            ct: c,
            ctid,
            name,
            hostname,
            keep_network,
            count,
        } => {
            let r = ct(&c)?;
            let first = ctid.as_deref().map(CtId::parse).transpose()?;
            let plan = clone_plan(first, name.as_deref(), hostname.as_deref(), count)?;
            let node = open(&root)?;
            for opts in plan {
                let opts = CloneOptions {
                    keep_network,
                    ..opts
                };
                let res = node.clone_ct(&r, opts, &progress::Bar::new())?;
                let id = res.info.ctid;
                match res.frozen_ms {
                    Some(ms) => {
                        outln!("container {id} cloned from {r} (the source was frozen for {ms} ms)")
                    }
                    None => outln!("container {id} cloned from {r}"),
                }
                for w in &res.warnings {
                    eprintln!("warning: {w}");
                }
            }
        }
        Cmd::Migrate(args) => cmd_migrate::run(&root, args)?,
        Cmd::Backup { cmd } => cmd_backup::run(&root, cmd)?,
        Cmd::Move { ct: c, ctid } => {
            let r = ct(&c)?;
            let to = CtId::parse(&ctid)?;
            let node = open(&root)?;
            let from = node.status(&r)?.ctid;
            let info = node.move_ct(&CtRef::Id(from), berth_core::ops::MoveOptions { ctid: to })?;
            owners_follow(&root, from, Some(info.ctid))?;
            outln!("container {r} is now {}", info.ctid);
        }
        Cmd::Start { ct: c } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            let res = node.start(&r)?;
            outln!("container {} started", res.info.ctid);
            if !res.service_defaults_applied.is_empty() {
                outln!(
                    "node service defaults applied: {}",
                    res.service_defaults_applied.join(", ")
                );
            }
            for w in &res.warnings {
                eprintln!("warning: {w}");
            }
        }
        Cmd::Stop {
            ct: c,
            timeout,
            kill,
        } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            node.stop(&r, StopOptions { timeout, kill })?;
            outln!("container {r} stopped");
        }
        Cmd::Restart {
            ct: c,
            timeout,
            kill,
        } => {
            let node = open(&root)?;
            let info = node.restart(&ct(&c)?, StopOptions { timeout, kill })?;
            outln!("container {} restarted", info.ctid);
        }
        Cmd::Status { ct: c, format } => {
            let node = open(&root)?;
            output::status(&node.status(&ct(&c)?)?, format == Format::Json)?;
        }
        Cmd::Suspend { ct: c } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            node.suspend(&r)?;
            outln!("container {r} suspended");
        }
        Cmd::Resume { ct: c } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            node.resume(&r)?;
            outln!("container {r} resumed");
        }
        Cmd::List {
            all,
            columns,
            format,
            no_header,
            ostemplate,
            network,
            filters,
        } => {
            let mut filters = list_args::parse_filters(&filters)?;
            if let Some(t) = ostemplate {
                filters.push(("ostemplate".into(), t));
            }
            if let Some(n) = network {
                filters.push(("network".into(), n));
            }
            // A filter on a status that `list` without -a hides lists all.
            let all = all
                || filters
                    .iter()
                    .any(|(k, v)| k == "status" && v != "running" && v != "suspended");
            let node = open(&root)?;
            let cts: Vec<_> = node
                .list(all)?
                .into_iter()
                .filter(|c| list_args::matches(c, &filters))
                .collect();
            let columns = if columns.is_empty()
                && format.is_tabular()
                && format != list_args::ListFormat::Table
            {
                list_args::DEFAULT_COLUMNS
                    .iter()
                    .map(|c| c.to_string())
                    .collect()
            } else {
                columns
            };
            if columns.is_empty() {
                match format {
                    list_args::ListFormat::Json => output::list(&cts, true, no_header)?,
                    list_args::ListFormat::Yaml => list_args::yaml(&cts)?,
                    _ => output::list(&cts, false, no_header)?,
                }
            } else {
                output::check_columns(&columns)?;
                let stats = if output::needs_stats(&columns) {
                    let refs: Vec<CtRef> = cts.iter().map(|c| CtRef::Id(c.ctid)).collect();
                    node.stats(&refs, default_sample_ms())?
                } else {
                    vec![]
                };
                list_args::columns(&cts, &stats, &columns, format, no_header)?;
            }
        }
        Cmd::Set {
            ct: c,
            name,
            hostname,
            description,
            onboot,
            bootorder,
            diskspace,
            idmap,
            res,
            net,
            setmode,
            userpasswd,
            script,
            mut device_add,
            device_del,
            force,
            capability,
            features,
        } => {
            for f in &features {
                match f.as_str() {
                    "tun" => device_add.push("/dev/net/tun".into()),
                    "fuse" => device_add.push("/dev/fuse".into()),
                    other => anyhow::bail!(
                        "invalid value {other:?} for --features: tun or fuse (nesting is not available yet)"
                    ),
                }
            }
            let mut caps = std::collections::BTreeMap::new();
            for c in &capability {
                let (n, v) = c.split_once(':').ok_or_else(|| {
                    anyhow::anyhow!("invalid value {c:?} for --capability: NAME:on|off|default")
                })?;
                caps.insert(n.to_string(), v.to_string());
            }
            let r = ct(&c)?;
            let mut opts = res.to_set(diskspace.as_deref())?;
            for s in &script {
                let (event, name) = s.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("invalid value {s:?} for --script: EVENT=SCRIPT")
                })?;
                opts.scripts.insert(event.to_string(), name.to_string());
            }
            opts.device_add = device_add;
            opts.device_del = device_del;
            opts.device_force = force;
            opts.capabilities = caps;
            opts.name = name;
            opts.hostname = hostname;
            opts.description = description;
            opts.onboot = onboot.map(|v| v == "yes");
            opts.bootorder = bootorder;
            opts.setmode = match setmode {
                None => SetMode::Live,
                Some(SetModeArg::Restart) => SetMode::Restart,
                Some(SetModeArg::Ignore) => SetMode::Ignore,
            };
            let req = SetRequest {
                options: opts,
                net: net.change()?,
                renew_idmap: idmap.is_some(),
            };
            if req.is_empty() && userpasswd.is_none() {
                anyhow::bail!("nothing to set: give at least one option (see `berth set --help`)");
            }
            let node = open(&root)?;
            if let Some(spec) = &userpasswd {
                cmd_inside::userpasswd(&*node, &r, spec)?;
                if req.is_empty() {
                    return Ok(0);
                }
            }
            let res = node.set(&r, req.clone())?;
            if let Some(m) = res.idmap {
                outln!(
                    "container {r}: host IDs {}-{}",
                    m.host_base,
                    m.host_base as u64 + m.size as u64 - 1
                );
            }
            if let Some(n) = &res.net {
                net_args::report(&r, &req.net, n)?;
            }
            if let Some(out) = &res.outcome {
                for n in &out.notes {
                    eprintln!("note: {n}");
                }
                if out.restarted {
                    outln!("container {r} updated and restarted");
                } else if out.pending_restart {
                    outln!("container {r} updated: saved, pending until its next start (`berth status {r}` shows what)");
                } else if out.applied_live {
                    outln!("container {r} updated (applied live)");
                } else if !out.notes.iter().any(|n| n == "nothing to change") {
                    outln!("container {r} updated");
                }
            }
        }
        Cmd::Stats {
            cts,
            format,
            watch,
            interval,
        } => {
            let refs = cts.iter().map(|c| ct(c)).collect::<Result<Vec<_>>>()?;
            let node = open(&root)?;
            if !(0.1..=3600.0).contains(&interval) {
                anyhow::bail!("--interval must be between 0.1 and 3600 seconds");
            }
            loop {
                let sample = if watch {
                    (interval * 1000.0) as u64
                } else {
                    default_sample_ms()
                };
                let st = node.stats(&refs, sample)?;
                if watch && format == Format::Table {
                    out!("\x1b[H\x1b[2J");
                }
                output::stats(&st, format == Format::Json)?;
                if !watch {
                    break;
                }
            }
        }
        Cmd::Compact { ct: c } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            let bytes = node.compact(&r)?;
            outln!(
                "container {r}: {} reclaimed ({bytes} bytes)",
                output::human(bytes)
            );
        }
        Cmd::Exec {
            ct: c,
            tty,
            no_tty,
            env,
            cwd,
            command,
        } => {
            let opts = berth_core::ops::ExecOptions {
                env,
                tty: (tty || no_tty).then_some(tty),
                cwd,
            };
            opts.validate()?;
            let node = open(&root)?;
            let req = ExecRequest { command, opts };
            return Ok(node.exec(&ct(&c)?, req, Stdio::Inherit)?);
        }
        Cmd::Enter { ct: c } => {
            let node = open(&root)?;
            return Ok(node.enter(&ct(&c)?, Stdio::Inherit)?);
        }
        Cmd::Console {
            ct: c,
            follow,
            log,
            timestamps,
            attach,
            escape,
        } => {
            let node = open(&root)?;
            // SAFETY: isatty on the standard descriptors.
            let terminal = unsafe { libc::isatty(0) == 1 && libc::isatty(1) == 1 };
            if attach || (terminal && !follow && !log && !timestamps) {
                let key = berth_api::node::parse_escape(&escape).ok_or_else(|| {
                    anyhow::anyhow!("invalid value {escape:?} for --escape: ^a…^z or one character")
                })?;
                let r = ct(&c)?;
                if terminal {
                    eprintln!(
                        "Attached to the console of {c} (detach: {} q)",
                        escape_name(key)
                    );
                }
                let end = node.console_attach(&r, Some(key), Stdio::Inherit)?;
                if terminal {
                    match end {
                        berth_api::ConsoleEnd::Detached => eprintln!("\r\nDetached."),
                        berth_api::ConsoleEnd::Stopped => eprintln!("\r\nThe container stopped."),
                    }
                }
            } else {
                let opts = berth_api::ConsoleLog { follow, timestamps };
                node.console(&ct(&c)?, opts, &mut std::io::stdout())?;
            }
        }
        Cmd::Destroy { ct: c, force } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            let id = node.status(&r)?.ctid;
            node.destroy(&CtRef::Id(id), force)?;
            owners_follow(&root, id, None)?;
            outln!("container {r} destroyed");
        }
        Cmd::Node {
            cmd:
                NodeCmd::Set {
                    service_default,
                    default_fstype,
                    disk_overcommit,
                    disk_reserve,
                    backup_default_repo,
                    backup_max_per_container,
                },
        } => {
            let backup_max = backup_max_per_container
                .as_deref()
                .map(|m| match m {
                    "none" => Ok(None),
                    _ => m.parse::<u32>().map(Some).map_err(|_| {
                        anyhow::anyhow!("--backup-max-per-container {m}: a number, or none")
                    }),
                })
                .transpose()?;
            let fstype = default_fstype
                .as_deref()
                .map(berth_core::DiskFs::parse)
                .transpose()?;
            let overcommit = disk_overcommit
                .as_deref()
                .map(berth_core::checked::parse_disk_overcommit)
                .transpose()?;
            let reserve = disk_reserve
                .as_deref()
                .map(|r| match r {
                    "default" => Ok(None),
                    _ => berth_core::Size::parse(r).map(Some),
                })
                .transpose()?;
            let parsed: Vec<(String, Option<berth_core::services::Startup>)> = service_default
                .iter()
                .map(|s| match s.split_once('=') {
                    Some((n, "default")) => Ok((n.to_string(), None)),
                    _ => berth_core::services::parse_service_default(s).map(|(n, t)| (n, Some(t))),
                })
                .collect::<Result<_, _>>()?;
            let node = open(&root)?;
            node.node_set(NodeSettings {
                service_defaults: parsed.clone(),
                default_fstype: fstype,
                disk_overcommit: overcommit,
                disk_reserve: reserve,
                backup_max_per_container: backup_max,
                backup_default_repo: backup_default_repo.clone(),
            })?;
            for (name, st) in parsed {
                match st {
                    Some(st) => outln!("new containers: service {name} startup {st}"),
                    None => {
                        outln!("new containers: service {name} startup as the template has it")
                    }
                }
            }
            if let Some(f) = fstype {
                outln!("new containers: {f} virtual disks");
            }
            if let Some(r) = overcommit {
                outln!("disk overcommit: containers may be promised {r} times the node filesystem");
            }
            match reserve {
                Some(Some(r)) => {
                    outln!("disk reserve: {r} kept free on the node filesystem");
                }
                Some(None) => {
                    outln!("disk reserve: the default (2% of the node filesystem, 128M to 2G)");
                }
                None => {}
            }
            if let Some(r) = backup_default_repo {
                outln!("backups: repository {r} is the default");
            }
            match backup_max {
                Some(Some(m)) => outln!("backups: owners may keep {m} of each container"),
                Some(None) => outln!("backups: no limit for owners"),
                None => {}
            }
        }
        Cmd::Node {
            cmd: NodeCmd::Services { strict, format },
        } => {
            let node = open(&root)?;
            let list = node.host_services()?;
            let others = cmd_procs::node_services(&list, format == Format::Json)?;
            if strict && others > 0 {
                return Ok(2);
            }
        }
        Cmd::Ps {
            ct: c,
            tree,
            format,
        } => {
            let node = open(&root)?;
            cmd_procs::ps(&*node, &ct(&c)?, tree, format == Format::Json)?;
        }
        Cmd::Top { sort, once, format } => {
            let node = open(&root)?;
            cmd_procs::top(
                &*node,
                sort == "mem",
                once || format == Format::Json,
                format == Format::Json,
            )?;
        }
        Cmd::Kill { ct: c, pid, signal } => {
            let node = open(&root)?;
            let r = ct(&c)?;
            let p = node.kill(&r, pid, &signal)?;
            outln!(
                "signal {} sent to process {} ({}) of container {r}",
                signal.to_ascii_uppercase().trim_start_matches("SIG"),
                p.pid,
                p.command
            );
        }
        Cmd::Which { host_pid, format } => {
            let node = open(&root)?;
            cmd_procs::which(&node.which(host_pid)?, format == Format::Json)?;
        }
        Cmd::Service { ct: c, cmd } => {
            let node = open(&root)?;
            cmd_service::run(&*node, &ct(&c)?, cmd)?;
        }
        Cmd::Version { format } => cmd_meta::version(format == Format::Json)?,
        Cmd::Completion { shell } => cmd_meta::completion(shell)?,
        Cmd::Man { dir } => cmd_meta::man(&dir)?,
        Cmd::Node {
            cmd: NodeCmd::Boot { format },
        } => {
            let node = open(&root)?;
            let done = node.node_boot()?;
            if format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                for b in &done {
                    match &b.error {
                        None if b.outcome == "running" => {
                            outln!("container {}: already running", b.ctid)
                        }
                        None => outln!("container {} started", b.ctid),
                        Some(e) => eprintln!(
                            "error: container {} did not start: {}",
                            b.ctid,
                            hints::render_api(e)
                        ),
                    }
                }
            }
            if done.iter().any(|b| b.error.is_some()) {
                return Ok(1);
            }
        }
        Cmd::Node {
            cmd: NodeCmd::Config { format },
        } => {
            let node = open(&root)?;
            output::node_config(&node.node_config()?, format == Format::Json)?;
        }
        Cmd::Events {
            since,
            kind,
            follow,
            format,
        } => cmd_agent::events(
            &root,
            since.as_deref(),
            kind.as_deref(),
            follow,
            format == Format::Json,
        )?,
        Cmd::Operation { cmd } => cmd_agent::operation(&root, cmd)?,
        Cmd::ConfigSample { cmd } => cmd_sample::run(&*open(&root)?, cmd)?,
        Cmd::User {
            cmd: cmd_user::UserCmd::Inside(args),
        } => {
            use clap::Parser as _;
            let cli = cmd_inside::CtUserCli::try_parse_from(
                std::iter::once("berth user".to_string()).chain(args),
            )
            .unwrap_or_else(|e| usage_error(e));
            let node = open(&root)?;
            cmd_inside::user(&*node, cli)?;
        }
        Cmd::User { cmd } => cmd_user::user(root.path(), cmd)?,
        Cmd::Group { ct: c, cmd } => {
            let node = open(&root)?;
            cmd_inside::group(&*node, &c, cmd)?;
        }
        Cmd::File { cmd } => {
            let node = open(&root)?;
            return cmd_inside::file(&*node, cmd);
        }
        Cmd::Inside => return Ok(berth_node::inside::helper_main(root.path())),
        Cmd::Token { cmd } => cmd_user::token(root.path(), cmd)?,
        Cmd::Monitor { ctid } => {
            let id = CtId::parse(&ctid)?;
            LocalNode::run_monitor(&root, id).map_err(berth_api::Error::from)?;
        }
    }
    Ok(0)
}

/// The sampling interval of `stats` without `--watch`.
fn default_sample_ms() -> u64 {
    berth_node::resources::default_sample().as_millis() as u64
}

fn main() {
    // One umask whatever the caller's (022): what Berth makes for containers (template trees,
    // directories tar or debootstrap create, the processes of init and `exec`) gets the usual
    // modes, and what must be root-only is created with explicit modes (0600/0700), which a
    // umask can narrow but never widen. A `berth` run under umask 000 makes no
    // world-writable file.
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(0o022) };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG");
    // Timestamps only when logging was asked for: they are what phase timings are read from.
    let timed = filter.is_ok();
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter.unwrap_or_else(|_| "warn,libcgroups=error,rustic_core=off".into()))
        .with_writer(std::io::stderr);
    if timed {
        fmt.init();
    } else {
        fmt.without_time().init();
    }
    let (cli, remote_from_env) = match cmd_remote::parse() {
        Ok(c) => c,
        Err(e) => usage_error(e),
    };
    scrub::userpasswd();
    match run(cli, remote_from_env) {
        Ok(code) => std::process::exit(code),
        // The reader of our output went away (`berth list | head -1`): what it wanted it
        // has; nothing to report.
        Err(e) if broken_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {}", hints::render(&e));
            std::process::exit(1);
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader is gone (EPIPE: Rust programs
/// ignore SIGPIPE, so the write fails instead of killing the process).
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let kind = c
            .downcast_ref::<std::io::Error>()
            .map(|io| io.kind())
            .or_else(|| {
                c.downcast_ref::<serde_json::Error>()
                    .and_then(|j| j.io_error_kind())
            });
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Help and version print as clap prints them; a usage error is one `error:` line (exit 2).
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("error: invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // `berth exec 101 ls /`: the command goes after `--` (clap's own tip names `--`).
    let exec = std::env::args()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "exec");
    if exec && e.kind() == ErrorKind::UnknownArgument {
        eprintln!(
            "error: {first}: the command to run goes after `--`, e.g. `berth exec 101 -- ls /`"
        );
        std::process::exit(2)
    }
    let tip = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tip: "))
        .map(|t| format!("; {t}"))
        .unwrap_or_default();
    eprintln!("error: {first}{tip} (see `berth --help`)");
    std::process::exit(2)
}

/// `Ctrl+a` for 1, the character itself otherwise.
fn escape_name(key: u8) -> String {
    if (1..=26).contains(&key) {
        format!("Ctrl+{}", (b'a' + key - 1) as char)
    } else {
        (key as char).to_string()
    }
}

/// The options of each clone of `berth clone … --count N`: consecutive CTIDs from `first`
/// (else the next free ones), `{n}` in the name and hostname replaced by 1…N. Several
/// clones need `{n}` in a name (names are unique on a node).
fn clone_plan(
    first: Option<CtId>,
    name: Option<&str>,
    hostname: Option<&str>,
    count: u32,
) -> anyhow::Result<Vec<CloneOptions>> {
    if count == 0 || count > 1000 {
        anyhow::bail!("--count must be 1 to 1000");
    }
    if count > 1 && name.is_some_and(|n| !n.contains("{n}")) {
        anyhow::bail!(
            "--name for several clones needs {{n}} in it (names are unique), e.g. 'web{{n}}'"
        );
    }
    let mut out = vec![];
    for n in 1..=count {
        let ctid = match first {
            Some(f) => Some(CtId(f.0.checked_add(n - 1).ok_or_else(|| {
                anyhow::anyhow!("CTID {} + {count} is out of range", f.0)
            })?)),
            None => None,
        };
        let fill = |t: &str| t.replace("{n}", &n.to_string());
        out.push(CloneOptions {
            ctid,
            name: name.map(fill),
            hostname: hostname.map(fill),
            keep_network: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod clone_plan_tests {
    use super::*;

    #[test]
    fn group_clones_number_names_and_ctids() {
        let p = clone_plan(Some(CtId(201)), Some("web{n}"), Some("web{n}.example"), 3).unwrap();
        let got: Vec<(u32, String, String)> = p
            .iter()
            .map(|o| {
                (
                    o.ctid.unwrap().0,
                    o.name.clone().unwrap(),
                    o.hostname.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (201, "web1".into(), "web1.example".into()),
                (202, "web2".into(), "web2.example".into()),
                (203, "web3".into(), "web3.example".into())
            ]
        );
        assert!(clone_plan(None, None, None, 2)
            .unwrap()
            .iter()
            .all(|o| o.ctid.is_none()));
        assert!(clone_plan(None, Some("web"), None, 2).is_err());
        assert!(clone_plan(None, None, None, 0).is_err());
        assert!(clone_plan(Some(CtId(u32::MAX)), None, None, 2).is_err());
    }
}
