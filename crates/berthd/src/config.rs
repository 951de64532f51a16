//! berthd's command line and configuration file (TOML, unknown keys refused).

use crate::error::DaemonError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The default HTTPS address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";

/// The configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The address of the HTTPS listener (`--listen` overrides it); `""`: none.
    pub listen: String,
    /// Serve plain HTTP instead of HTTPS on `listen`: refused unless it is a loopback address.
    pub plain_http: bool,
    /// Serve the root-only unix socket `ROOT/run/berthd.sock`.
    pub unix_socket: bool,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Lifetime of a login session in seconds.
    pub session_ttl_s: u64,
    /// Failed logins or bad tokens per source address and minute before 429.
    pub auth_failures_per_minute: u32,
    /// Size at which `events.jsonl` is rotated (two old files are kept).
    pub event_log_max_bytes: u64,
    /// How often the container list is polled for state changes, in milliseconds.
    pub poll_interval_ms: u64,
    /// The `berth` binary (run as container monitor); default: beside berthd.
    pub berth_exe: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.into(),
            plain_http: false,
            unix_socket: true,
            body_limit: 1 << 20,
            session_ttl_s: 12 * 3600,
            auth_failures_per_minute: 5,
            event_log_max_bytes: 10 << 20,
            poll_interval_ms: 1000,
            berth_exe: None,
        }
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, DaemonError> {
        let meta = std::fs::metadata(path).map_err(|e| DaemonError::io(path, e))?;
        if meta.len() > 1 << 20 {
            return Err(DaemonError::Config(format!(
                "{}: larger than 1 MiB",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| DaemonError::io(path, e))?;
        Self::parse(&text).map_err(|e| DaemonError::Config(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.message().replace('\n', " "))?;
        c.check()?;
        Ok(c)
    }

    /// Refuses values outside sane bounds, and plain HTTP off loopback.
    pub fn check(&self) -> Result<(), String> {
        if !(1024..=(64 << 20)).contains(&self.body_limit) {
            return Err("body_limit must be between 1024 and 67108864 bytes".into());
        }
        if !(60..=30 * 86400).contains(&self.session_ttl_s) {
            return Err("session_ttl_s must be between 60 and 2592000".into());
        }
        if !(1..=1000).contains(&self.auth_failures_per_minute) {
            return Err("auth_failures_per_minute must be between 1 and 1000".into());
        }
        if !((64 << 10)..=(1 << 30)).contains(&self.event_log_max_bytes) {
            return Err("event_log_max_bytes must be between 65536 and 1073741824".into());
        }
        if !(100..=60_000).contains(&self.poll_interval_ms) {
            return Err("poll_interval_ms must be between 100 and 60000".into());
        }
        if let Some(addr) = self.listen_addr()? {
            if self.plain_http && !addr.ip().is_loopback() {
                return Err(format!(
                    "plain_http is only allowed on a loopback address, not {addr}"
                ));
            }
        } else if self.plain_http {
            return Err("plain_http needs a listen address".into());
        }
        if self.listen.is_empty() && !self.unix_socket {
            return Err("neither a listen address nor the unix socket: nothing to serve".into());
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen
            .parse()
            .map(Some)
            .map_err(|_| format!("invalid listen address {:?}: use IP:PORT", self.listen))
    }
}

#[derive(Debug, clap::Parser)]
#[command(
    name = "berthd",
    version,
    about = "Berth's node agent: the REST API of this node"
)]
pub struct Args {
    /// Node root directory
    #[arg(long, env = "BERTH_ROOT", default_value = berth_core::paths::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Configuration file (TOML); default: ROOT/api/berthd.toml when it exists
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// HTTPS address (IP:PORT), overriding the configuration
    #[arg(long)]
    pub listen: Option<String>,
    /// The `berth` binary run as container monitor (default: beside berthd)
    #[arg(long)]
    pub berth_exe: Option<PathBuf>,
}

impl Args {
    /// The configuration in force: the file's (or the defaults), then the flags.
    pub fn config(&self) -> Result<Config, DaemonError> {
        let default_file = self.root.join("api/berthd.toml");
        let mut cfg = match &self.config {
            Some(p) => Config::load(p)?,
            None if default_file.exists() => Config::load(&default_file)?,
            None => Config::default(),
        };
        if let Some(l) = &self.listen {
            cfg.listen = l.clone();
        }
        if let Some(b) = &self.berth_exe {
            cfg.berth_exe = Some(b.clone());
        }
        cfg.check().map_err(DaemonError::Config)?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let c = Config::parse("listen = \"127.0.0.1:9000\"\nbody_limit = 4096\n").unwrap();
        assert_eq!(c.body_limit, 4096);
        assert!(Config::parse("lisen = \"x\"").is_err());
        assert!(Config::parse("listen = \"nonsense\"").is_err());
        assert!(Config::parse("listen = \"0.0.0.0:80\"\nplain_http = true").is_err());
        assert!(Config::parse("listen = \"127.0.0.1:8080\"\nplain_http = true").is_ok());
        assert!(Config::parse("body_limit = 1").is_err());
        assert!(Config::parse("body_limit = \"1M\"").is_err());
    }
}
