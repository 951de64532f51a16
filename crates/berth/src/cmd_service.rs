//! `berth service CT …`: services inside a container, whatever its init.

use anyhow::Result;
use berth_api::services::{Action, AddService, ServiceInfo};
use berth_api::Node;
use berth_core::services::{RestartPolicy, Startup};
use berth_core::CtRef;
use clap::Subcommand;
use std::io::Write;

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// NAME STATE STARTUP PID of every service
    List {
        #[arg(long, value_enum, default_value_t)]
        format: crate::Format,
    },
    /// Start a service
    Start { name: String },
    /// Stop a service
    Stop { name: String },
    /// Stop and start a service
    Restart { name: String },
    /// State, startup type, PID and details of a service
    Status {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: crate::Format,
    },
    /// Startup type auto: started at boot
    Enable { name: String },
    /// Startup type disabled: never started
    Disable { name: String },
    /// Change a service's settings
    Set {
        name: String,
        /// auto, manual or disabled
        #[arg(long)]
        startup: String,
    },
    /// Declare a service run by Berth's supervisor: `add NAME [--user U] -- CMD [ARGS…]`
    Add {
        name: String,
        /// User inside the container (default root)
        #[arg(long)]
        user: Option<String>,
        /// auto (default, or the node's default for this name), manual or disabled
        #[arg(long)]
        startup: Option<String>,
        /// on-failure (default), always or no
        #[arg(long)]
        restart: Option<String>,
        /// Services to start before this one at boot (comma-separated)
        #[arg(long, value_delimiter = ',')]
        after: Vec<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Stop and forget a service declared with `add`
    Remove { name: String },
    /// A service's output (Berth's supervisor; systemd's journal)
    Logs { name: String },
}

fn table(driver: &str, list: &[ServiceInfo]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<32} {:<10} {:<9} {:>7}",
        "NAME", "STATE", "STARTUP", "PID"
    )?;
    for s in list {
        writeln!(
            out,
            "{:<32} {:<10} {:<9} {:>7}",
            s.name,
            s.state,
            s.startup,
            s.pid.map(|p| p.to_string()).unwrap_or("-".into())
        )?;
    }
    if list.is_empty() {
        writeln!(out, "(no services; init: {driver})")?;
    }
    Ok(())
}

pub fn run(node: &dyn Node, ct: &CtRef, cmd: ServiceCmd) -> Result<()> {
    match cmd {
        ServiceCmd::List { format } => {
            let berth_api::ServiceList {
                driver,
                services: list,
            } = node.service_list(ct)?;
            if format == crate::Format::Json {
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else {
                table(&driver, &list)?;
            }
        }
        ServiceCmd::Start { name } => {
            node.service_action(ct, &name, Action::Start)?;
            outln!("service {name} started in container {ct}");
        }
        ServiceCmd::Stop { name } => {
            node.service_action(ct, &name, Action::Stop)?;
            outln!("service {name} stopped in container {ct}");
        }
        ServiceCmd::Restart { name } => {
            node.service_action(ct, &name, Action::Restart)?;
            outln!("service {name} restarted in container {ct}");
        }
        ServiceCmd::Status { name, format } => {
            let st = node.service_status(ct, &name)?;
            if format == crate::Format::Json {
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &st)?;
                writeln!(out)?;
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(out, "name:     {}", st.info.name)?;
                writeln!(out, "state:    {}", st.info.state)?;
                writeln!(out, "startup:  {}", st.info.startup)?;
                writeln!(
                    out,
                    "pid:      {}",
                    st.info.pid.map(|p| p.to_string()).unwrap_or("-".into())
                )?;
                writeln!(out, "driver:   {}", st.driver)?;
                for (k, v) in &st.details {
                    writeln!(out, "{:<9} {}", format!("{k}:"), v)?;
                }
            }
        }
        ServiceCmd::Enable { name } => {
            node.service_set_startup(ct, &name, Startup::Auto)?;
            outln!("service {name} in container {ct}: startup auto");
        }
        ServiceCmd::Disable { name } => {
            node.service_set_startup(ct, &name, Startup::Disabled)?;
            outln!("service {name} in container {ct}: startup disabled");
        }
        ServiceCmd::Set { name, startup } => {
            let s = Startup::parse(&startup)?;
            node.service_set_startup(ct, &name, s)?;
            outln!("service {name} in container {ct}: startup {s}");
        }
        ServiceCmd::Add {
            name,
            user,
            startup,
            restart,
            after,
            command,
        } => {
            let add = AddService {
                command,
                user,
                startup: startup.as_deref().map(Startup::parse).transpose()?,
                restart: restart.as_deref().map(RestartPolicy::parse).transpose()?,
                after,
            };
            let s = node.service_add(ct, &name, add)?;
            outln!("service {name} added to container {ct} (startup {s})");
        }
        ServiceCmd::Remove { name } => {
            node.service_remove(ct, &name)?;
            outln!("service {name} removed from container {ct}");
        }
        ServiceCmd::Logs { name } => {
            let data = node.service_logs(ct, &name)?;
            std::io::stdout().lock().write_all(&data)?;
        }
    }
    Ok(())
}
