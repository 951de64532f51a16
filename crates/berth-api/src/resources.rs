//! Resource limits of a container, with vzctl's names and meanings, and the parsing and
//! validation of what users type for them. Pure logic: the mapping to cgroups lives in
//! berth-runtime, the virtual disk in berth-storage.

use crate::error::InputError;
use crate::validate::Size;
type Result<T, E = InputError> = std::result::Result<T, E>;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Default relative CPU weight (vzctl `--cpuunits`).
pub const DEFAULT_CPUUNITS: u32 = 1000;
/// Range of `--cpuunits`.
pub const CPUUNITS_RANGE: (u32, u32) = (8, 500_000);
/// Default process limit of a new container: finite, so that a fork bomb never takes the node.
pub const DEFAULT_NUMPROC: u64 = 4096;
/// Default I/O priority (vzctl `--ioprio`).
pub const DEFAULT_IOPRIO: u8 = 4;

fn default_cpuunits() -> u32 {
    DEFAULT_CPUUNITS
}
fn default_numproc() -> u64 {
    DEFAULT_NUMPROC
}
fn default_ioprio() -> u8 {
    DEFAULT_IOPRIO
}
fn is_default_cpuunits(v: &u32) -> bool {
    *v == DEFAULT_CPUUNITS
}
fn is_default_numproc(v: &u64) -> bool {
    *v == DEFAULT_NUMPROC
}
fn is_default_ioprio(v: &u8) -> bool {
    *v == DEFAULT_IOPRIO
}

/// A set of CPU numbers, written like cpuset lists: `0-3,6`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CpuMask(Vec<u32>);

impl CpuMask {
    /// Parses `0-3,6` (sorted, deduplicated). CPU numbers are checked against the node later.
    pub fn parse(s: &str) -> Result<Self> {
        let err = |why: &str| InputError::InvalidValue(s.into(), "--cpumask", why.into());
        // Ranges first, CPUs last: `0-9999,0-9999,…` must not expand every part (a short
        // string would allocate gigabytes).
        let mut ranges = vec![];
        for part in s.split(',') {
            let part = part.trim();
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let num = |x: &str| -> Result<u32> {
                if x.is_empty() || !x.bytes().all(|c| c.is_ascii_digit()) || x.len() > 4 {
                    return Err(err("use CPU numbers and ranges such as 0-3,6"));
                }
                x.parse().map_err(|_| err("CPU number too large"))
            };
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(err("a range must go upwards (0-3, not 3-0)"));
            }
            ranges.push((a, b));
        }
        ranges.sort_unstable();
        let mut cpus: Vec<u32> = vec![];
        for (a, b) in ranges {
            let from = cpus.last().map_or(a, |l| a.max(l + 1));
            if from <= b {
                cpus.extend(from..=b);
            }
        }
        Ok(CpuMask(cpus))
    }

    pub fn from_cpus(mut cpus: Vec<u32>) -> Self {
        cpus.sort_unstable();
        cpus.dedup();
        CpuMask(cpus)
    }

    pub fn cpus(&self) -> &[u32] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for CpuMask {
    /// The compact cpuset form: `0-3,6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

impl TryFrom<String> for CpuMask {
    type Error = InputError;
    fn try_from(s: String) -> Result<Self> {
        CpuMask::parse(&s)
    }
}

impl From<CpuMask> for String {
    fn from(m: CpuMask) -> String {
        m.to_string()
    }
}

/// CPU, memory, process and I/O limits (the virtual disk's are in `DiskConfig`).
/// `None` and 0 mean "no limit" where the field says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Resources {
    /// Memory limit (`--ram`); none = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<Size>,
    /// Swap the container may use on top of `ram` (`--swap`); none = 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<Size>,
    /// Relative CPU weight, 8–500000 (`--cpuunits`).
    #[serde(
        default = "default_cpuunits",
        skip_serializing_if = "is_default_cpuunits"
    )]
    pub cpuunits: u32,
    /// CPU time cap in percent of one CPU (`--cpulimit`, 200 = two CPUs); none = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpulimit: Option<u32>,
    /// Number of CPUs the container may run on (`--cpus`); none = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Which CPUs the container may run on (`--cpumask`); none = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpumask: Option<CpuMask>,
    /// Process (and thread) limit (`--numproc`); 0 = unlimited.
    #[serde(
        default = "default_numproc",
        skip_serializing_if = "is_default_numproc"
    )]
    pub numproc: u64,
    /// I/O priority 0–7 (`--ioprio`), higher gets more disk time.
    #[serde(default = "default_ioprio", skip_serializing_if = "is_default_ioprio")]
    pub ioprio: u8,
    /// Virtual-disk throughput cap per direction, bytes per second (`--iolimit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iolimit: Option<Size>,
    /// Virtual-disk operations cap per direction, per second (`--iopslimit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iopslimit: Option<u64>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            ram: None,
            swap: None,
            cpuunits: DEFAULT_CPUUNITS,
            cpulimit: None,
            cpus: None,
            cpumask: None,
            numproc: DEFAULT_NUMPROC,
            ioprio: DEFAULT_IOPRIO,
            iolimit: None,
            iopslimit: None,
        }
    }
}

/// What the node offers, against which limits are checked.
#[derive(Debug, Clone, Copy)]
pub struct NodeCapacity {
    pub cpus: u32,
    pub memory: u64,
}

impl Resources {
    /// Checks the limits against each other and against the node.
    pub fn validate(&self, node: &NodeCapacity) -> Result<()> {
        let bad = |v: String, what: &'static str, why: String| {
            Err(InputError::InvalidValue(v, what, why))
        };
        let (lo, hi) = CPUUNITS_RANGE;
        if !(lo..=hi).contains(&self.cpuunits) {
            return bad(
                self.cpuunits.to_string(),
                "--cpuunits",
                format!("must be between {lo} and {hi}"),
            );
        }
        if let Some(l) = self.cpulimit {
            if l > 100 * node.cpus {
                return bad(
                    l.to_string(),
                    "--cpulimit",
                    format!(
                        "the node has {} CPUs: at most {} (0 = no limit)",
                        node.cpus,
                        100 * node.cpus
                    ),
                );
            }
        }
        if let Some(n) = self.cpus {
            if n == 0 || n > node.cpus {
                return bad(
                    n.to_string(),
                    "--cpus",
                    format!("the node has {} CPUs", node.cpus),
                );
            }
        }
        if let Some(m) = &self.cpumask {
            if let Some(c) = m.cpus().iter().find(|c| **c >= node.cpus) {
                return bad(
                    m.to_string(),
                    "--cpumask",
                    format!(
                        "CPU {c} does not exist: the node has CPUs 0-{}",
                        node.cpus - 1
                    ),
                );
            }
            if let Some(n) = self.cpus {
                if n as usize > m.len() {
                    return bad(
                        n.to_string(),
                        "--cpus",
                        format!("the CPU mask {m} has only {} CPUs", m.len()),
                    );
                }
            }
        }
        if let Some(r) = self.ram {
            if r.0 < 16 * Size::MIB {
                return bad(r.to_string(), "--ram", "the minimum is 16M".into());
            }
        }
        if self.swap.is_some_and(|s| s.0 > 0) && self.ram.is_none() {
            return bad(
                self.swap.unwrap().to_string(),
                "--swap",
                "a swap limit needs a memory limit".into(),
            );
        }
        if self.ioprio > 7 {
            return bad(self.ioprio.to_string(), "--ioprio", "must be 0-7".into());
        }
        let _ = node.memory;
        Ok(())
    }

    /// The CPUs the container may use: `--cpumask` (or all), narrowed to `--cpus` of them.
    /// The narrowing starts at a CPU chosen by CTID, so that containers spread over the node.
    pub fn effective_cpus(&self, node_cpus: u32, ctid: u32) -> Option<CpuMask> {
        if self.cpus.is_none() && self.cpumask.is_none() {
            return None;
        }
        let all: Vec<u32> = match &self.cpumask {
            Some(m) => m.cpus().to_vec(),
            None => (0..node_cpus).collect(),
        };
        let n = self
            .cpus
            .map(|n| n as usize)
            .unwrap_or(all.len())
            .min(all.len());
        if n == 0 {
            return None;
        }
        let start = ctid as usize % all.len();
        let picked = (0..n).map(|i| all[(start + i) % all.len()]).collect();
        Some(CpuMask::from_cpus(picked))
    }
}

/// A limit written `soft:hard` or just `hard` (vzctl's barrier:limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftHard<T> {
    pub soft: Option<T>,
    pub hard: T,
}

impl<T: PartialOrd + Copy + fmt::Display> SoftHard<T> {
    /// Parses `hard` or `soft:hard` with `parse` for each side; soft must not exceed hard.
    pub fn parse(s: &str, what: &'static str, parse: impl Fn(&str) -> Result<T>) -> Result<Self> {
        match s.split_once(':') {
            None => Ok(SoftHard {
                soft: None,
                hard: parse(s)?,
            }),
            Some((a, b)) => {
                let (soft, hard) = (parse(a)?, parse(b)?);
                if soft > hard {
                    return Err(InputError::InvalidValue(
                        s.into(),
                        what,
                        format!("the soft limit {soft} is above the hard limit {hard}"),
                    ));
                }
                Ok(SoftHard {
                    soft: Some(soft),
                    hard,
                })
            }
        }
    }
}

/// Parses a plain count (inodes, IOPS, processes): digits only, with an optional K/M suffix
/// meaning thousands/millions.
pub fn parse_count(s: &str, what: &'static str) -> Result<u64> {
    let err = || {
        InputError::InvalidValue(
            s.into(),
            what,
            "use a whole number (optionally with k or m: 200k)".into(),
        )
    };
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.strip_suffix('k') {
        Some(n) => (n, 1_000),
        None => match t.strip_suffix('m') {
            Some(n) => (n, 1_000_000),
            None => (t.as_str(), 1),
        },
    };
    if num.is_empty() || num.len() > 15 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    // At most i64::MAX: counts are stored in TOML configs, whose integers are i64.
    num.parse::<u64>()
        .ok()
        .and_then(|v| v.checked_mul(mult))
        .filter(|v| *v <= i64::MAX as u64)
        .ok_or_else(err)
}

/// Parses a size limit that may also be `unlimited` (or `0`): `None` means no limit.
pub fn parse_size_limit(s: &str) -> Result<Option<Size>> {
    match s.trim() {
        "unlimited" | "0" => Ok(None),
        v => Size::parse(v).map(Some),
    }
}

/// Parses a count limit that may also be `unlimited` (or `0`): `None` means no limit.
pub fn parse_count_limit(s: &str, what: &'static str) -> Result<Option<u64>> {
    match s.trim() {
        "unlimited" => Ok(None),
        v => parse_count(v, what).map(|n| (n > 0).then_some(n)),
    }
}

/// How `set` applies a change to a running container (vzctl `--setmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SetMode {
    /// Apply live; refuse (changing nothing) what only a restart can apply.
    #[default]
    Live,
    /// Restart the container when a change needs it.
    Restart,
    /// Save the change; it takes effect at the next start.
    Ignore,
}

/// The changes `set` makes. Absent fields are left as they are; a limit given as JSON
/// `null` (`Some(None)`) is removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetOptions {
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub description: Option<String>,
    pub onboot: Option<bool>,
    pub bootorder: Option<u32>,
    /// `Some(None)` removes the limit.
    #[serde(
        default,
        deserialize_with = "crate::net::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub ram: Option<Option<Size>>,
    #[serde(
        default,
        deserialize_with = "crate::net::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub swap: Option<Option<Size>>,
    pub cpuunits: Option<u32>,
    /// `Some(None)` removes the limit.
    #[serde(
        default,
        deserialize_with = "crate::net::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpulimit: Option<Option<u32>>,
    #[serde(
        default,
        deserialize_with = "crate::net::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpus: Option<Option<u32>>,
    #[serde(
        default,
        deserialize_with = "crate::net::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpumask: Option<Option<CpuMask>>,
    #[serde(
        default,
        deserialize_with = "crate::net::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub numproc: Option<Option<u64>>,
    pub ioprio: Option<u8>,
    #[serde(
        default,
        deserialize_with = "crate::net::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub iolimit: Option<Option<Size>>,
    #[serde(
        default,
        deserialize_with = "crate::net::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub iopslimit: Option<Option<u64>>,
    pub diskspace: Option<SoftHardSize>,
    pub diskinodes: Option<SoftHardCount>,
    /// Action scripts: event → script name (`""` removes the event's script).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub scripts: std::collections::BTreeMap<String, String>,
    /// Host devices to forward: `PATH[:rw|:r]` (`/dev/net/tun`, `/dev/fuse:rw`…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_add: Vec<String>,
    /// Forwarded devices to remove, by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_del: Vec<String>,
    /// Forward a block device even though the host uses it (mounted, swap, a holder).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub device_force: bool,
    /// Capabilities: name (`net_admin`) → `on`, `off` or `default`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub capabilities: std::collections::BTreeMap<String, String>,
    pub setmode: SetMode,
}

/// Serialisable `soft:hard` disk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SoftHardSize {
    pub soft: Option<Size>,
    pub hard: Size,
}

/// Serialisable `soft:hard` inode count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SoftHardCount {
    pub soft: Option<u64>,
    pub hard: u64,
}

impl From<SoftHard<Size>> for SoftHardSize {
    fn from(v: SoftHard<Size>) -> Self {
        SoftHardSize {
            soft: v.soft,
            hard: v.hard,
        }
    }
}

impl From<SoftHard<u64>> for SoftHardCount {
    fn from(v: SoftHard<u64>) -> Self {
        SoftHardCount {
            soft: v.soft,
            hard: v.hard,
        }
    }
}

impl SetOptions {
    /// Applies the resource fields to `r`.
    pub fn apply_resources(&self, r: &mut Resources) {
        if let Some(v) = self.ram {
            r.ram = v;
        }
        if let Some(v) = self.swap {
            r.swap = v;
        }
        if let Some(v) = self.cpuunits {
            r.cpuunits = v;
        }
        if let Some(v) = self.cpulimit {
            r.cpulimit = v.filter(|l| *l > 0);
        }
        if let Some(v) = self.cpus {
            r.cpus = v.filter(|n| *n > 0);
        }
        if let Some(v) = &self.cpumask {
            r.cpumask = v.clone();
        }
        if let Some(v) = self.numproc {
            r.numproc = v.unwrap_or(0);
        }
        if let Some(v) = self.ioprio {
            r.ioprio = v;
        }
        if let Some(v) = self.iolimit {
            r.iolimit = v;
        }
        if let Some(v) = self.iopslimit {
            r.iopslimit = v.filter(|n| *n > 0);
        }
    }

    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        // Not through JSON: `Some(None)` (`--ram unlimited`) is a change, but serialises as
        // null like an absent field.
        *self
            == SetOptions {
                setmode: self.setmode,
                ..Default::default()
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: NodeCapacity = NodeCapacity {
        cpus: 4,
        memory: 8 << 30,
    };

    /// A removed limit survives the wire (the remote CLI's `set --ram unlimited`); an absent
    /// one stays unchanged.
    #[test]
    fn set_options_tell_removed_from_unchanged() {
        let o = SetOptions {
            ram: Some(None),
            cpulimit: Some(None),
            numproc: Some(Some(100)),
            ..Default::default()
        };
        let j = serde_json::to_value(&o).unwrap();
        assert!(j["ram"].is_null() && j.get("ram").is_some(), "{j}");
        assert!(j.get("swap").is_none(), "{j}");
        let back: SetOptions = serde_json::from_value(j).unwrap();
        assert_eq!(back, o);
        let back: SetOptions = serde_json::from_str(r#"{"setmode":"live"}"#).unwrap();
        assert_eq!(back.ram, None);
    }

    #[test]
    fn cpumask_of_many_ranges_is_not_expanded_part_by_part() {
        // found by fuzzing: every part was expanded before deduplication, so 7 bytes
        // (`0-9999,`) cost 40 KB and a 1 MB string gigabytes
        let s = vec!["0-9999"; 20_000].join(",");
        let m = CpuMask::parse(&s).unwrap();
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.to_string(), "0-9999");
        let m = CpuMask::parse("5-9,0-3,2-6,8").unwrap();
        assert_eq!(m.cpus(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(CpuMask::parse("9,0").unwrap().cpus(), &[0, 9]);
    }

    #[test]
    fn counts_fit_a_toml_integer() {
        // 10^13 millions passed (above i64::MAX) and could not be written to config.toml
        assert!(parse_count("10000000000000m", "--diskinodes").is_err());
        assert_eq!(
            parse_count("9000000000000m", "--diskinodes").unwrap(),
            9 * 10u64.pow(18)
        );
    }

    #[test]
    fn cpumasks() {
        assert_eq!(CpuMask::parse("0-3,6").unwrap().cpus(), &[0, 1, 2, 3, 6]);
        assert_eq!(CpuMask::parse("3,1,1-2").unwrap().to_string(), "1-3");
        assert_eq!(CpuMask::parse("0,2,4-5").unwrap().to_string(), "0,2,4-5");
        for bad in ["", "a", "3-1", "1,,2", "-1", "1-", "99999"] {
            assert!(CpuMask::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn soft_hard() {
        let p = |s| SoftHard::parse(s, "--diskspace", Size::parse);
        assert_eq!(
            p("1G:2G").unwrap(),
            SoftHard {
                soft: Some(Size(1 << 30)),
                hard: Size(2 << 30)
            }
        );
        assert_eq!(p("2G").unwrap().soft, None);
        assert!(p("3G:2G").is_err());
        assert!(p("2:3").is_err(), "sizes need units");
        let c = SoftHard::parse("90000:100k", "--diskinodes", |s| {
            parse_count(s, "--diskinodes")
        })
        .unwrap();
        assert_eq!((c.soft, c.hard), (Some(90000), 100_000));
    }

    #[test]
    fn counts_and_limits() {
        assert_eq!(parse_count("512", "x").unwrap(), 512);
        assert_eq!(parse_count("200k", "x").unwrap(), 200_000);
        for bad in ["", "1.5", "-1", "abc", "1G", "99999999999999999999"] {
            assert!(parse_count(bad, "x").is_err(), "{bad}");
        }
        assert_eq!(parse_size_limit("unlimited").unwrap(), None);
        assert_eq!(parse_size_limit("256M").unwrap(), Some(Size(256 << 20)));
        assert!(parse_size_limit("256").is_err());
        assert_eq!(parse_count_limit("0", "x").unwrap(), None);
    }

    #[test]
    fn validation() {
        let ok = Resources::default();
        ok.validate(&NODE).unwrap();
        let bad = [
            Resources {
                cpuunits: 7,
                ..ok.clone()
            },
            Resources {
                cpulimit: Some(401),
                ..ok.clone()
            },
            Resources {
                cpus: Some(5),
                ..ok.clone()
            },
            Resources {
                cpumask: Some(CpuMask::parse("4").unwrap()),
                ..ok.clone()
            },
            Resources {
                cpus: Some(3),
                cpumask: Some(CpuMask::parse("0-1").unwrap()),
                ..ok.clone()
            },
            Resources {
                swap: Some(Size(1 << 30)),
                ..ok.clone()
            },
            Resources {
                ram: Some(Size(1 << 20)),
                ..ok.clone()
            },
            Resources {
                ioprio: 8,
                ..ok.clone()
            },
        ];
        for r in bad {
            assert!(r.validate(&NODE).is_err(), "{r:?}");
        }
    }

    #[test]
    fn effective_cpus_spread_and_respect_mask() {
        let r = Resources {
            cpus: Some(2),
            ..Default::default()
        };
        assert_eq!(r.effective_cpus(4, 100).unwrap().to_string(), "0-1");
        assert_eq!(r.effective_cpus(4, 101).unwrap().to_string(), "1-2");
        assert_eq!(r.effective_cpus(4, 103).unwrap().to_string(), "0,3");
        let m = Resources {
            cpus: Some(1),
            cpumask: Some(CpuMask::parse("2-3").unwrap()),
            ..Default::default()
        };
        assert!(["2", "3"].contains(&m.effective_cpus(4, 7).unwrap().to_string().as_str()));
        assert_eq!(Resources::default().effective_cpus(4, 1), None);
    }

    #[test]
    fn set_options() {
        let mut r = Resources::default();
        let s = SetOptions {
            ram: Some(Some(Size(512 << 20))),
            cpulimit: Some(Some(0)),
            numproc: Some(None),
            ..Default::default()
        };
        assert!(!s.is_empty());
        assert!(SetOptions::default().is_empty());
        // Removing a limit alone is a change (`set --numproc unlimited`).
        let only_unlimited = SetOptions {
            numproc: Some(None),
            setmode: SetMode::Restart,
            ..Default::default()
        };
        assert!(!only_unlimited.is_empty());
        s.apply_resources(&mut r);
        assert_eq!(r.ram, Some(Size(512 << 20)));
        assert_eq!(r.cpulimit, None);
        assert_eq!(r.numproc, 0);
    }

    #[test]
    fn serde_defaults() {
        let r: Resources = toml::from_str("").unwrap();
        assert_eq!(r, Resources::default());
        let s = toml::to_string(&Resources::default()).unwrap();
        assert_eq!(s.trim(), "");
    }
}
