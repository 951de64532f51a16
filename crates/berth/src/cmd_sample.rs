//! `berth config-sample …` and `create --config`: named limit sets (berth_api::samples).
//! The CLI resolves a sample and sends the whole create request, flags over the sample.

use crate::Format;
use anyhow::{Context, Result};
use berth_api::samples::{ConfigSample, SampleLimits};
use berth_api::{CtRef, Node};
use clap::Subcommand;
use std::io::Write as _;

#[derive(Subcommand)]
pub(crate) enum SampleCmd {
    /// List the samples: shipped with Berth (basic, light, unlimited) and this node's
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a sample's limits
    Show {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Save a container's limits (and disk size) as a sample of this node
    Create {
        name: String,
        /// The container to take the limits from
        #[arg(long)]
        from: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Remove a sample of this node
    Remove { name: String },
}

/// The limits of `create --config VALUE`: a file when VALUE names one (a `/` or `.toml` in
/// it; read here, so that it works against a remote node too), else a sample of the node.
pub(crate) fn resolve(node: &dyn Node, value: &str) -> Result<SampleLimits> {
    if value.contains('/') || value.ends_with(".toml") {
        let meta = std::fs::metadata(value).with_context(|| format!("sample file {value}"))?;
        if !meta.is_file() || meta.len() > 64 << 10 {
            anyhow::bail!("sample file {value}: not a regular file of at most 64K");
        }
        let text =
            std::fs::read_to_string(value).with_context(|| format!("sample file {value}"))?;
        // A file holds the limits alone, or a whole sample as `config-sample show` writes it.
        let bad = |e: toml::de::Error| {
            anyhow::anyhow!(
                "sample file {value}: {}",
                e.message().lines().next().unwrap_or("malformed")
            )
        };
        let whole = text
            .lines()
            .any(|l| l.trim_start().starts_with("[limits]") || l.trim_start().starts_with("name"));
        let limits = if whole {
            toml::from_str::<ConfigSample>(&text).map_err(bad)?.limits
        } else {
            toml::from_str::<SampleLimits>(&text).map_err(bad)?
        };
        let check = ConfigSample {
            name: "file".into(),
            description: String::new(),
            builtin: false,
            limits,
        };
        check.validate().map_err(berth_api::Error::from)?;
        return Ok(check.limits);
    }
    Ok(node.sample_info(value)?.limits)
}

fn opt<T: std::fmt::Display>(v: &Option<T>, none: &str) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| none.into())
}

fn describe(l: &SampleLimits) -> Vec<(&'static str, String)> {
    let r = l.resources();
    vec![
        (
            "diskspace",
            match &l.diskspace {
                Some(d) => match d.soft {
                    Some(s) => format!("{s}:{}", d.hard),
                    None => d.hard.to_string(),
                },
                None => "the node's default".into(),
            },
        ),
        (
            "diskinodes",
            match &l.diskinodes {
                Some(d) => d.hard.to_string(),
                None => "mkfs's default".into(),
            },
        ),
        ("ram", opt(&r.ram, "unlimited")),
        ("swap", opt(&r.swap, "unlimited")),
        ("cpuunits", r.cpuunits.to_string()),
        (
            "cpulimit",
            opt(&r.cpulimit.map(|c| format!("{c}%")), "unlimited"),
        ),
        ("cpus", opt(&r.cpus, "all")),
        ("cpumask", opt(&r.cpumask, "all")),
        ("numproc", r.numproc.to_string()),
        ("ioprio", r.ioprio.to_string()),
        (
            "iolimit",
            opt(&r.iolimit.map(|s| format!("{s}/s")), "unlimited"),
        ),
        ("iopslimit", opt(&r.iopslimit, "unlimited")),
    ]
}

pub(crate) fn run(node: &dyn Node, cmd: SampleCmd) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        SampleCmd::List { format } => {
            let all = node.sample_list()?;
            if format == Format::Json {
                writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
                return Ok(());
            }
            writeln!(out, "{:<20} {:<8} DESCRIPTION", "NAME", "ORIGIN")?;
            for s in all {
                let origin = if s.builtin { "berth" } else { "node" };
                writeln!(
                    out,
                    "{:<20} {:<8} {}",
                    s.name,
                    origin,
                    crate::output::printable(&s.description)
                )?;
            }
        }
        SampleCmd::Show { name, format } => {
            let s = node.sample_info(&name)?;
            if format == Format::Json {
                writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?;
                return Ok(());
            }
            writeln!(out, "name:        {}", s.name)?;
            if !s.description.is_empty() {
                writeln!(
                    out,
                    "description: {}",
                    crate::output::printable(&s.description)
                )?;
            }
            for (k, v) in describe(&s.limits) {
                writeln!(out, "{:<12} {v}", format!("{k}:"))?;
            }
        }
        SampleCmd::Create {
            name,
            from,
            description,
        } => {
            let info = node.status(&CtRef::parse(&from)?)?;
            let sample = ConfigSample {
                name: name.clone(),
                description,
                builtin: false,
                limits: SampleLimits::of(
                    &info.resources,
                    berth_api::resources::SoftHardSize {
                        soft: None,
                        hard: info.diskspace,
                    },
                    None,
                ),
            };
            node.sample_save(sample)?;
            writeln!(
                out,
                "configuration sample {name} saved from container {}",
                info.ctid
            )?;
        }
        SampleCmd::Remove { name } => {
            node.sample_remove(&name)?;
            writeln!(out, "configuration sample {name} removed")?;
        }
    }
    Ok(())
}
