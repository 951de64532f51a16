//! Services declared in a container's config (`[service.NAME]`), how a container's init is
//! chosen, and the node's default startup types. Berth's supervisor runs these services; the
//! wire format it reads lives in `berth_init::proto`.

use crate::error::InputError;
type Result<T, E = InputError> = std::result::Result<T, E>;
use berth_init::proto;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// When a service starts (the seed's "startup type").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Startup {
    /// At container boot.
    #[default]
    Auto,
    /// Only when started by hand.
    Manual,
    /// Never; `start` is refused.
    Disabled,
}

impl Startup {
    pub fn parse(s: &str) -> Result<Startup> {
        proto::Startup::parse(s).map(Startup::from).ok_or_else(|| {
            InputError::BadService(format!("startup type {s:?}: use auto, manual or disabled"))
        })
    }
    pub fn as_str(self) -> &'static str {
        proto::Startup::from(self).as_str()
    }
}

impl From<proto::Startup> for Startup {
    fn from(s: proto::Startup) -> Self {
        match s {
            proto::Startup::Auto => Startup::Auto,
            proto::Startup::Manual => Startup::Manual,
            proto::Startup::Disabled => Startup::Disabled,
        }
    }
}

impl From<Startup> for proto::Startup {
    fn from(s: Startup) -> Self {
        match s {
            Startup::Auto => proto::Startup::Auto,
            Startup::Manual => proto::Startup::Manual,
            Startup::Disabled => proto::Startup::Disabled,
        }
    }
}

impl std::fmt::Display for Startup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What the supervisor does when a service's process ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    /// Restart unless it exited with status 0.
    #[default]
    OnFailure,
    No,
}

impl RestartPolicy {
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        match s {
            "always" => Ok(RestartPolicy::Always),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            "no" => Ok(RestartPolicy::No),
            _ => Err(InputError::BadService(format!(
                "restart policy {s:?}: use always, on-failure or no"
            ))),
        }
    }
}

/// Which program is the container's PID 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum InitMode {
    /// Berth's supervisor for templates without a service manager (busybox), else the
    /// template's own init.
    #[default]
    Auto,
    /// Berth's supervisor (`/.berth/init`).
    Berth,
    /// The template's init (`/sbin/init`).
    Template,
}

impl InitMode {
    pub fn parse(s: &str) -> Result<InitMode> {
        match s {
            "auto" => Ok(InitMode::Auto),
            "berth" => Ok(InitMode::Berth),
            "template" => Ok(InitMode::Template),
            _ => Err(InputError::BadService(format!(
                "init {s:?}: use auto, berth or template"
            ))),
        }
    }
    fn is_auto(&self) -> bool {
        *self == InitMode::Auto
    }
}

/// `[service.NAME]` in a container's config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceDef {
    /// Program and arguments (a program without `/` is looked up in PATH).
    pub command: Vec<String>,
    /// User inside the container (default root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default)]
    pub startup: Startup,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Services started before this one at boot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

/// The process and service part of a container's config (flattened into `config.toml`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ServiceSettings {
    #[serde(default, skip_serializing_if = "InitMode::is_auto")]
    pub init: InitMode,
    #[serde(
        default,
        rename = "service",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub services: BTreeMap<String, ServiceDef>,
    /// The node's default startup types captured at create, applied through the container's
    /// own service manager on its first start, then cleared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_service_defaults: BTreeMap<String, Startup>,
}

/// Checks a service name (also used as a log file name inside the container).
pub fn validate_service_name(name: &str) -> Result<()> {
    if proto::valid_name(name) {
        Ok(())
    } else {
        Err(InputError::BadService(format!(
            "bad service name {name:?}: 1-64 of letters, digits, '-', '_', '.', '@', not starting with '.' or '-'"
        )))
    }
}

impl ServiceSettings {
    /// Checks every service: names, commands, `after` references, cycles.
    pub fn validate(&self) -> Result<()> {
        for (name, d) in &self.services {
            validate_service_name(name)?;
            if d.command.is_empty() || d.command[0].is_empty() {
                return Err(InputError::BadService(format!(
                    "service {name}: empty command"
                )));
            }
            if d.command.iter().any(|a| a.contains('\0')) {
                return Err(InputError::BadService(format!(
                    "service {name}: NUL in command"
                )));
            }
            if let Some(u) = &d.user {
                if u.is_empty() || u.contains(['\0', '\n', ':']) {
                    return Err(InputError::BadService(format!(
                        "service {name}: bad user {u:?}"
                    )));
                }
            }
            for a in &d.after {
                if a == name {
                    return Err(InputError::BadService(format!(
                        "service {name} cannot start after itself"
                    )));
                }
                if !self.services.contains_key(a) {
                    return Err(InputError::BadService(format!(
                        "service {name}: `after` names unknown service {a:?}"
                    )));
                }
            }
        }
        let cyc = proto::cycle_members(&self.specs());
        if !cyc.is_empty() {
            return Err(InputError::BadService(format!(
                "services {} are in an `after` cycle",
                cyc.join(", ")
            )));
        }
        Ok(())
    }

    /// The services as the supervisor reads them.
    pub fn specs(&self) -> Vec<proto::ServiceSpec> {
        self.services
            .iter()
            .map(|(name, d)| proto::ServiceSpec {
                name: name.clone(),
                command: d.command.clone(),
                user: d.user.clone().unwrap_or_else(|| "root".into()),
                startup: d.startup.into(),
                restart: match d.restart {
                    RestartPolicy::Always => proto::Restart::Always,
                    RestartPolicy::OnFailure => proto::Restart::OnFailure,
                    RestartPolicy::No => proto::Restart::No,
                },
                after: d.after.clone(),
            })
            .collect()
    }
}

/// Parses `NAME=auto|manual|disabled` (`berth node set --service-default`).
pub fn parse_service_default(s: &str) -> Result<(String, Startup)> {
    let (name, st) = s.split_once('=').ok_or_else(|| {
        InputError::BadService(format!("{s:?}: expected NAME=auto|manual|disabled"))
    })?;
    validate_service_name(name)?;
    Ok((name.to_string(), Startup::parse(st)?))
}

/// One service as `service list` reports it. Field names are a stable interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceInfo {
    pub name: String,
    /// `running`, `stopped`, `failed`, `restarting`, `starting`, `stopping` or `unknown`.
    pub state: String,
    /// `auto`, `manual` or `disabled`.
    pub startup: String,
    /// Main PID inside the container, when known.
    pub pid: Option<i32>,
}

/// `service status`: the summary and what the init system says besides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceStatus {
    /// Which driver answered: `berth`, `systemd`, `openrc` or `sysv`.
    pub driver: String,
    #[serde(flatten)]
    pub info: ServiceInfo,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::details))]
    pub details: Vec<(String, String)>,
}

/// start / stop / restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Start,
    Stop,
    Restart,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }
}

/// What `service add` declares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddService {
    pub command: Vec<String>,
    pub user: Option<String>,
    pub startup: Option<Startup>,
    pub restart: Option<RestartPolicy>,
    pub after: Vec<String>,
}

/// One host process worth a look. Field names are a stable interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostService {
    pub pid: i32,
    pub user: String,
    pub command: String,
    /// Listening sockets, e.g. `tcp 0.0.0.0:22`, `udp6 [::]:53`.
    pub listens: Vec<String>,
    /// `berth` (Berth's own), `init` (the host's PID 1) or `other`.
    pub kind: String,
    /// What to do about it.
    pub note: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(cmd: &str, after: &[&str]) -> ServiceDef {
        ServiceDef {
            command: vec![cmd.into()],
            user: None,
            startup: Startup::Auto,
            restart: RestartPolicy::OnFailure,
            after: after.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn validation() {
        let mut s = ServiceSettings::default();
        s.services.insert("web".into(), def("httpd", &["db"]));
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown service"));
        s.services.insert("db".into(), def("db", &[]));
        s.validate().unwrap();
        s.services.insert("db".into(), def("db", &["web"]));
        assert!(s.validate().unwrap_err().to_string().contains("cycle"));
        s.services.insert("db".into(), def("", &[]));
        assert!(s.validate().is_err());
        assert!(validate_service_name("a/b").is_err());
    }

    #[test]
    fn defaults_parse() {
        assert_eq!(
            parse_service_default("sshd=disabled").unwrap(),
            ("sshd".into(), Startup::Disabled)
        );
        assert!(parse_service_default("sshd").is_err());
        assert!(parse_service_default("sshd=off").is_err());
        assert!(Startup::parse("sometimes").is_err());
    }
}
