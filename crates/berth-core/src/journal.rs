//! The journal of a multi-step container operation. Written before the first step and removed
//! after the last, it tells the next command what an interrupted operation (crash, kill -9)
//! was doing, so that it can be rolled back (create) or completed (destroy).

use crate::fsutil;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Creating: rolled back unless `config.toml` was committed.
    Create,
    /// Destroying: always completed.
    Destroy,
    /// Cloning into this directory: always rolled back (the config is written early, to
    /// hold the clone's name and addresses; the disk is whole only at the journal's end).
    Clone,
    /// Renumbering (`move --ctid`) from `from` to `to`: rolled back while the directory
    /// is still the old one, completed once it is the new one.
    Move,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    pub op: Operation,
    /// PID of the process that started the operation (informational).
    pub pid: u32,
    /// A move's old CTID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// A move's new CTID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
}

impl Journal {
    pub fn begin(path: &Path, op: Operation) -> Result<()> {
        fsutil::write_toml(
            path,
            &Journal {
                op,
                pid: std::process::id(),
                from: None,
                to: None,
            },
        )
    }
    /// The journal of a move from CTID `from` to `to`.
    pub fn begin_move(path: &Path, from: u32, to: u32) -> Result<()> {
        fsutil::write_toml(
            path,
            &Journal {
                op: Operation::Move,
                pid: std::process::id(),
                from: Some(from),
                to: Some(to),
            },
        )
    }
    pub fn read(path: &Path) -> Result<Option<Journal>> {
        if !path.exists() {
            return Ok(None);
        }
        // A torn or garbled journal still means "an operation was in progress": treat it as
        // a create so that recovery rolls back rather than trusting half-written state.
        Ok(Some(fsutil::read_toml(path).unwrap_or(Journal {
            op: Operation::Create,
            pid: 0,
            from: None,
            to: None,
        })))
    }
    pub fn end(path: &Path) -> Result<()> {
        fsutil::remove_file_if_exists(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_read_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("op.toml");
        assert_eq!(Journal::read(&p).unwrap(), None);
        Journal::begin(&p, Operation::Destroy).unwrap();
        assert_eq!(Journal::read(&p).unwrap().unwrap().op, Operation::Destroy);
        std::fs::write(&p, "garbage = [").unwrap();
        assert_eq!(Journal::read(&p).unwrap().unwrap().op, Operation::Create);
        Journal::end(&p).unwrap();
        assert_eq!(Journal::read(&p).unwrap(), None);
    }
}
