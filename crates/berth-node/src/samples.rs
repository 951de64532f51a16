//! Configuration samples saved on the node: `ROOT/samples/NAME.toml` (root-only, validated on
//! load like input), beside the ones shipped with Berth (`berth_api::samples::builtin`).

use crate::local::LocalNode;
use crate::{NodeError, Result};
use berth_api::samples::{builtin, ConfigSample};
use berth_api::validate::validate_name;
use berth_core::{fsutil, CoreError};
use std::path::PathBuf;

/// At most this many saved samples are listed (a directory filled by hand stays bounded).
const MAX_SAMPLES: usize = 1000;
/// Largest accepted sample file.
const MAX_FILE: u64 = 64 << 10;

impl LocalNode {
    fn samples_dir(&self) -> PathBuf {
        self.root().path().join("samples")
    }

    fn sample_path(&self, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        Ok(self.samples_dir().join(format!("{name}.toml")))
    }

    fn load_sample(&self, name: &str) -> Result<ConfigSample> {
        let path = self.sample_path(name)?;
        let bad = |reason: String| {
            NodeError::Core(CoreError::InvalidFile {
                path: path.clone(),
                reason,
                of: berth_core::error::FileOf::Sample(name.to_string()),
            })
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NodeError::NotFound(format!(
                    "configuration sample {name:?}"
                )))
            }
            Err(e) => return Err(CoreError::io(&path, e).into()),
        };
        if !meta.file_type().is_file() || meta.len() > MAX_FILE {
            return Err(bad("not a regular file of at most 64K".into()));
        }
        let s: ConfigSample = match fsutil::read_toml(&path) {
            Ok(s) => s,
            Err(CoreError::Parse { msg, .. }) => return Err(bad(format!("malformed: {msg}"))),
            Err(e) => return Err(e.into()),
        };
        if s.name != name || s.builtin {
            return Err(bad(format!(
                "it says name = {:?}{}, but it is the file of sample {name:?}",
                s.name,
                if s.builtin { ", builtin = true" } else { "" }
            )));
        }
        s.validate().map_err(|e| bad(e.to_string()))?;
        Ok(s)
    }

    pub fn sample_list(&self) -> Result<Vec<ConfigSample>> {
        let mut out = builtin();
        let dir = self.samples_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(CoreError::io(&dir, e).into()),
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                let stem = n.strip_suffix(".toml")?;
                validate_name(stem).ok()?;
                Some(stem.to_string())
            })
            .take(MAX_SAMPLES)
            .collect();
        names.sort();
        for n in names {
            if out.iter().any(|b| b.name == n) {
                continue;
            }
            match self.load_sample(&n) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(sample = %n, "configuration sample skipped: {e}"),
            }
        }
        Ok(out)
    }

    pub fn sample_info(&self, name: &str) -> Result<ConfigSample> {
        validate_name(name)?;
        if let Some(b) = builtin().into_iter().find(|b| b.name == name) {
            return Ok(b);
        }
        self.load_sample(name)
    }

    /// Saves (creates or replaces) a sample of this node.
    pub fn sample_save(&self, s: ConfigSample) -> Result<()> {
        s.validate()?;
        if s.builtin || builtin().iter().any(|b| b.name == s.name) {
            return Err(NodeError::Invalid(format!(
                "{:?} is a sample shipped with Berth: save yours under another name",
                s.name
            )));
        }
        let path = self.sample_path(&s.name)?;
        let dir = self.samples_dir();
        fsutil::create_dir_all(&dir)?;
        fsutil::ensure_mode(&dir, 0o700)?;
        fsutil::write_toml(&path, &s)?;
        Ok(())
    }

    pub fn sample_remove(&self, name: &str) -> Result<()> {
        if builtin().iter().any(|b| b.name == name) {
            return Err(NodeError::Invalid(format!(
                "{name:?} is a sample shipped with Berth and cannot be removed"
            )));
        }
        let path = self.sample_path(name)?;
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(NodeError::NotFound(format!(
                "configuration sample {name:?}"
            )));
        }
        fsutil::remove_file_if_exists(&path)?;
        Ok(())
    }
}
