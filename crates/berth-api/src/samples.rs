//! Configuration samples (vzctl's `ve-basic.conf-sample`, Proxmox's and Incus' profiles in
//! spirit): a named set of limits a new container starts from. Three ship with Berth
//! (`basic`, `light`, `unlimited`); others are saved on a node (`ROOT/samples/NAME.toml`),
//! made by hand or from an existing container.
//!
//! A sample is data: a client resolves it and sends the whole `CreateOptions` (the CLI's
//! `create --config basic --ram 1G` takes the sample's limits and the flags over them; a web
//! form fills its fields from it), so `create` stays one request with every value visible.

use crate::error::InputError;
use crate::resources::{CpuMask, NodeCapacity, Resources, SoftHardCount, SoftHardSize};
use crate::validate::{validate_description, validate_name, Size};
use serde::{Deserialize, Serialize};

/// A named set of limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfigSample {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Shipped with Berth (cannot be changed or removed); otherwise saved on the node.
    #[serde(default)]
    pub builtin: bool,
    #[serde(default)]
    pub limits: SampleLimits,
}

/// A sample's limits: an absent one is the default of a new container (no limit, or the
/// default weight, count or disk size).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SampleLimits {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "written::disk"
    )]
    pub diskspace: Option<SoftHardSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diskinodes: Option<SoftHardCount>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "written::size"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub ram: Option<Size>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "written::size"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub swap: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuunits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpulimit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpumask: Option<CpuMask>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numproc: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ioprio: Option<u8>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "written::size"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u64>))]
    pub iolimit: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iopslimit: Option<u64>,
}

/// Sizes in a sample as the API writes them (bytes) or as a person does (`"512M"`, a disk
/// `"9G:10G"`).
mod written {
    use crate::resources::{SoftHard, SoftHardSize};
    use crate::validate::Size;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SizeW {
        Bytes(u64),
        Text(String),
    }

    fn parse(w: SizeW) -> Result<Size, String> {
        match w {
            SizeW::Bytes(b) => Ok(Size(b)),
            SizeW::Text(t) => Size::parse(&t).map_err(|e| e.to_string()),
        }
    }

    pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Size>, D::Error> {
        Option::<SizeW>::deserialize(d)?
            .map(parse)
            .transpose()
            .map_err(D::Error::custom)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum DiskW {
        Text(String),
        Struct(SoftHardSize),
    }

    pub fn disk<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SoftHardSize>, D::Error> {
        match Option::<DiskW>::deserialize(d)? {
            None => Ok(None),
            Some(DiskW::Struct(s)) => Ok(Some(s)),
            Some(DiskW::Text(t)) => SoftHard::parse(&t, "--diskspace", Size::parse)
                .map(|s| Some(s.into()))
                .map_err(|e| D::Error::custom(e.to_string())),
        }
    }
}

impl SampleLimits {
    /// The limits of a new container made from this sample.
    pub fn resources(&self) -> Resources {
        let d = Resources::default();
        Resources {
            ram: self.ram,
            swap: self.swap,
            cpuunits: self.cpuunits.unwrap_or(d.cpuunits),
            cpulimit: self.cpulimit,
            cpus: self.cpus,
            cpumask: self.cpumask.clone(),
            numproc: self.numproc.unwrap_or(d.numproc),
            ioprio: self.ioprio.unwrap_or(d.ioprio),
            iolimit: self.iolimit,
            iopslimit: self.iopslimit,
        }
    }

    /// The sample that gives a container's limits (defaults left out).
    pub fn of(r: &Resources, diskspace: SoftHardSize, diskinodes: Option<SoftHardCount>) -> Self {
        let d = Resources::default();
        SampleLimits {
            diskspace: Some(diskspace),
            diskinodes,
            ram: r.ram,
            swap: r.swap,
            cpuunits: (r.cpuunits != d.cpuunits).then_some(r.cpuunits),
            cpulimit: r.cpulimit,
            cpus: r.cpus,
            cpumask: r.cpumask.clone(),
            numproc: (r.numproc != d.numproc).then_some(r.numproc),
            ioprio: (r.ioprio != d.ioprio).then_some(r.ioprio),
            iolimit: r.iolimit,
            iopslimit: r.iopslimit,
        }
    }
}

impl ConfigSample {
    /// Checks the name, the description and that the limits are values `create` takes
    /// (checked against the node's hardware when a container is made from it).
    pub fn validate(&self) -> Result<(), InputError> {
        validate_name(&self.name)?;
        validate_description(&self.description)?;
        let r = self.limits.resources();
        // The values alone: the node's hardware is checked when a container is made.
        r.validate(&NodeCapacity {
            cpus: 8192,
            memory: u64::MAX,
        })?;
        if let Some(d) = &self.limits.diskspace {
            if d.soft.is_some_and(|s| s > d.hard) {
                return Err(InputError::InvalidValue(
                    format!("{}:{}", d.soft.unwrap_or(d.hard), d.hard),
                    "--diskspace",
                    "the soft limit is above the hard one".into(),
                ));
            }
        }
        Ok(())
    }
}

fn gib(n: u64) -> Size {
    Size(n << 30)
}
fn mib(n: u64) -> Size {
    Size(n << 20)
}

/// The samples shipped with Berth.
pub fn builtin() -> Vec<ConfigSample> {
    vec![
        ConfigSample {
            name: "basic".into(),
            description: "a small server: 10G disk, 512M RAM + 512M swap, 400 processes".into(),
            builtin: true,
            limits: SampleLimits {
                diskspace: Some(SoftHardSize {
                    soft: Some(mib(9 * 1024)),
                    hard: gib(10),
                }),
                ram: Some(mib(512)),
                swap: Some(mib(512)),
                numproc: Some(400),
                ..Default::default()
            },
        },
        ConfigSample {
            name: "light".into(),
            description: "a light service: 2G disk, 256M RAM, 128 processes, half a CPU's weight"
                .into(),
            builtin: true,
            limits: SampleLimits {
                diskspace: Some(SoftHardSize {
                    soft: None,
                    hard: gib(2),
                }),
                ram: Some(mib(256)),
                swap: Some(Size(0)),
                cpuunits: Some(500),
                numproc: Some(128),
                ..Default::default()
            },
        },
        ConfigSample {
            name: "unlimited".into(),
            description: "no limits but the default disk: the container may use the whole node"
                .into(),
            builtin: true,
            limits: SampleLimits::default(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_round_trip() {
        for s in builtin() {
            s.validate().unwrap();
            let t = toml::to_string(&s).unwrap();
            assert_eq!(toml::from_str::<ConfigSample>(&t).unwrap(), s, "{t}");
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<ConfigSample>(&j).unwrap(), s);
        }
        let light = &builtin()[1];
        assert_eq!(light.limits.resources().ram, Some(Size(256 << 20)));
        assert_eq!(light.limits.resources().cpuunits, 500);
        // a container's limits back to a sample and to the same limits
        let r = light.limits.resources();
        let back = SampleLimits::of(&r, light.limits.diskspace.unwrap(), None);
        assert_eq!(back.resources(), r);
    }

    #[test]
    fn samples_written_by_hand() {
        let l: SampleLimits =
            toml::from_str("ram = \"512M\"\nswap = 0\ndiskspace = \"9G:10G\"\nnumproc = 50")
                .unwrap();
        assert_eq!(l.ram, Some(Size(512 << 20)));
        assert_eq!(l.swap, Some(Size(0)));
        assert_eq!(l.diskspace.unwrap().soft, Some(Size(9 << 30)));
        assert!(toml::from_str::<SampleLimits>("ram = \"12X\"").is_err());
    }

    #[test]
    fn bad_samples_are_refused() {
        assert!(toml::from_str::<ConfigSample>("name = \"x\"\nlimits = { rma = \"1G\" }").is_err());
        let mut s = builtin()[0].clone();
        s.name = "../x".into();
        assert!(s.validate().is_err());
        let mut s = builtin()[0].clone();
        s.limits.ram = Some(Size(1));
        assert!(s.validate().is_err());
    }
}
