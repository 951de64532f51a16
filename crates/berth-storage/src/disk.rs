//! The private virtual disk: a sparse ext4 image whose size is the container's disk quota.
//! It holds `upper/` and `work/` of the container's overlay, owned by container-native IDs.

use crate::{Result, StorageError};
use berth_core::Size;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Runs a command, turning a non-zero exit into an error carrying its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let name = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| StorageError::Command {
        cmd: name.clone(),
        msg: e.to_string(),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(StorageError::Command {
            cmd: name,
            msg: err.lines().last().unwrap_or("failed").to_string(),
        });
    }
    Ok(())
}

/// Creates a sparse image of `size` at `path` (which must not exist) with an empty ext4
/// filesystem holding `upper/` and `work/`. `staging` is an empty scratch directory.
/// Costs the same for any template: nothing of the template is copied.
pub fn create_image(path: &Path, size: Size, staging: &Path) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    f.set_len(size.0).map_err(|e| StorageError::io(path, e))?;
    drop(f);
    for d in ["upper", "work"] {
        let p = staging.join(d);
        fs::create_dir(&p).map_err(|e| StorageError::io(&p, e))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
            .map_err(|e| StorageError::io(&p, e))?;
    }
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-m",
            "0",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
            "-d",
        ])
        .arg(staging)
        .arg(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sparse_image_with_fs() {
        if Command::new("mkfs.ext4").arg("-V").output().is_err() {
            return; // e2fsprogs missing: covered by the integration suite
        }
        let d = tempfile::tempdir().unwrap();
        let st = d.path().join("st");
        fs::create_dir(&st).unwrap();
        let img = d.path().join("disk.img");
        create_image(&img, Size(1 << 30), &st).unwrap();
        let m = fs::metadata(&img).unwrap();
        assert_eq!(m.len(), 1 << 30);
        assert!(m.blocks() * 512 < 64 << 20, "image must be sparse");
        assert!(
            create_image(&img, Size(1 << 30), &st).is_err(),
            "never overwrites"
        );
    }
}
