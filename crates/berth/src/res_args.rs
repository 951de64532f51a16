//! Resource flags shared by `create` and `set` (vzctl names), parsed into `SetOptions`.

use anyhow::Result;
use berth_core::resources::{
    parse_count, parse_count_limit, parse_size_limit, CpuMask, SetOptions, SoftHard, SoftHardCount,
    SoftHardSize,
};
use berth_core::Size;
use clap::Args;

#[derive(Args, Debug, Default, Clone)]
pub struct ResourceArgs {
    /// Memory limit, e.g. 512M (`unlimited` removes it)
    #[arg(long)]
    pub ram: Option<String>,
    /// Swap on top of --ram, e.g. 256M (0 = none)
    #[arg(long)]
    pub swap: Option<String>,
    /// Relative CPU weight, 8-500000 (default 1000)
    #[arg(long)]
    pub cpuunits: Option<String>,
    /// CPU cap in percent of one CPU: 50 = half a CPU, 200 = two CPUs (0 = none)
    #[arg(long)]
    pub cpulimit: Option<String>,
    /// Number of CPUs the container runs on and sees (0 = all)
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPUs the container may run on, e.g. 0-1,3 (`all` removes the mask)
    #[arg(long)]
    pub cpumask: Option<String>,
    /// Process and thread limit (default 4096; `unlimited` removes it)
    #[arg(long)]
    pub numproc: Option<String>,
    /// I/O priority 0-7 (default 4; higher gets more disk time)
    #[arg(long)]
    pub ioprio: Option<String>,
    /// Virtual-disk throughput cap per direction, e.g. 20M (per second; 0 = none)
    #[arg(long)]
    pub iolimit: Option<String>,
    /// Virtual-disk operations per second cap per direction (0 = none)
    #[arg(long)]
    pub iopslimit: Option<String>,
    /// Inode count of the virtual disk, `hard` or `soft:hard`
    #[arg(long)]
    pub diskinodes: Option<String>,
}

fn num<T: std::str::FromStr>(s: &str, what: &'static str) -> Result<T> {
    let t = s.trim();
    if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("invalid value {s:?} for {what}: use a whole number");
    }
    t.parse()
        .map_err(|_| anyhow::anyhow!("invalid value {s:?} for {what}: out of range"))
}

impl ResourceArgs {
    /// The resource part of a `set` (or of a `create`, applied to the defaults).
    pub fn to_set(&self, diskspace: Option<&str>) -> Result<SetOptions> {
        let mut o = SetOptions::default();
        if let Some(v) = &self.ram {
            o.ram = Some(parse_size_limit(v)?);
        }
        if let Some(v) = &self.swap {
            o.swap = Some(parse_size_limit(v)?);
        }
        if let Some(v) = &self.cpuunits {
            o.cpuunits = Some(num(v, "--cpuunits")?);
        }
        if let Some(v) = &self.cpulimit {
            o.cpulimit = Some(Some(num(v.trim_end_matches('%'), "--cpulimit")?));
        }
        if let Some(v) = &self.cpus {
            o.cpus = Some(Some(num(v, "--cpus")?));
        }
        if let Some(v) = &self.cpumask {
            o.cpumask = Some(match v.trim() {
                "all" => None,
                m => Some(CpuMask::parse(m)?),
            });
        }
        if let Some(v) = &self.numproc {
            let n = parse_count_limit(v, "--numproc")?;
            // 0 is "no limit" for --cpulimit, --iolimit and --iopslimit, but a process limit
            // of 0 reads as "no process at all": refuse
            // it rather than guess.
            if n.is_none() && v.trim() != "unlimited" {
                return Err(berth_core::InputError::InvalidValue(
                    v.clone(),
                    "--numproc",
                    "a container needs at least one process (its init): give a limit of 1 or more, or `unlimited`".into(),
                )
                .into());
            }
            o.numproc = Some(n);
        }
        if let Some(v) = &self.ioprio {
            o.ioprio = Some(num(v, "--ioprio")?);
        }
        if let Some(v) = &self.iolimit {
            o.iolimit = Some(parse_size_limit(v)?);
        }
        if let Some(v) = &self.iopslimit {
            o.iopslimit = Some(parse_count_limit(v, "--iopslimit")?);
        }
        if let Some(v) = &self.diskinodes {
            let sh: SoftHardCount =
                SoftHard::parse(v, "--diskinodes", |s| parse_count(s, "--diskinodes"))?.into();
            o.diskinodes = Some(sh);
        }
        if let Some(v) = diskspace {
            let sh: SoftHardSize = SoftHard::parse(v, "--diskspace", Size::parse)?.into();
            o.diskspace = Some(sh);
        }
        Ok(o)
    }
}
