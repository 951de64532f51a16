//! Usage history of a node's containers: a round-robin store in SQLite at
//! `<node root>/metrics.db` (mode 0600).
//!
//! Four tiers, like an RRD: 10 s steps for 1 h, 1 min for 2 days, 30 min for 30 days and 6 h
//! for 1 year. Each sample is folded into one row per tier (the row of the step it falls in);
//! a row keeps, per metric, the sum and the count of the samples (so the average) and the
//! maximum. A row's slot is `(time / step) % rows`, so a tier never holds more than its
//! `rows` rows per container: [`ROWS_PER_CONTAINER`] (6140) in all, which SQLite stores in
//! under [`BYTES_PER_CONTAINER`] (1 MiB, measured by a unit test over a simulated year).
//!
//! Times are given by the caller (seconds since the epoch), so a test can write a year fast.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode};

/// One tier: rows of `step` seconds, `rows` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub step: u64,
    pub rows: u64,
}

impl Tier {
    /// The time this tier covers, in seconds.
    pub fn span(&self) -> u64 {
        self.step * self.rows
    }
}

/// The tiers, finest first.
pub const TIERS: [Tier; 4] = [
    Tier {
        step: 10,
        rows: 360,
    }, // 1 h
    Tier {
        step: 60,
        rows: 2880,
    }, // 2 days
    Tier {
        step: 1800,
        rows: 1440,
    }, // 30 days
    Tier {
        step: 21600,
        rows: 1460,
    }, // 1 year (365 days)
];

/// Rows one container can have in all tiers together.
pub const ROWS_PER_CONTAINER: u64 = 360 + 2880 + 1440 + 1460;
/// What one container's full history takes on disk at most (tables and index), in bytes.
pub const BYTES_PER_CONTAINER: u64 = 1 << 20;

/// The metrics kept, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// CPU use in percent of one CPU.
    Cpu,
    /// Memory used, bytes.
    Ram,
    /// Disk used, bytes.
    Disk,
    /// Network bytes per second into the container.
    NetRx,
    /// Network bytes per second out of the container.
    NetTx,
}

pub const METRICS: [Metric; 5] = [
    Metric::Cpu,
    Metric::Ram,
    Metric::Disk,
    Metric::NetRx,
    Metric::NetTx,
];

impl Metric {
    fn column(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Ram => "ram",
            Metric::Disk => "disk",
            Metric::NetRx => "rx",
            Metric::NetTx => "tx",
        }
    }
}

/// One sample of a container; a metric that could not be read is None.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub values: [Option<f64>; 5],
}

impl Sample {
    pub fn get(&self, m: Metric) -> Option<f64> {
        self.values[m as usize]
    }
    pub fn set(&mut self, m: Metric, v: Option<f64>) {
        self.values[m as usize] = v.filter(|v| v.is_finite());
    }
}

/// Average and maximum of one metric over a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub avg: f64,
    pub max: f64,
}

/// One step of history: its start (seconds since the epoch) and the metrics seen in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub time: u64,
    pub points: [Option<Point>; 5],
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("metrics store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, MetricsError>;

/// The history store of one node.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// The store's file in a node root.
pub fn db_path(node_root: &Path) -> PathBuf {
    node_root.join("metrics.db")
}

fn schema() -> String {
    let mut cols = String::new();
    for m in METRICS {
        let c = m.column();
        cols.push_str(&format!(
            ", {c}_sum REAL, {c}_n INTEGER NOT NULL DEFAULT 0, {c}_max REAL"
        ));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS rows (ctid INTEGER NOT NULL, tier INTEGER NOT NULL, \
         slot INTEGER NOT NULL, start INTEGER NOT NULL{cols}, \
         PRIMARY KEY (ctid, tier, slot)) WITHOUT ROWID;"
    )
}

fn upsert_sql() -> String {
    let mut names = vec![];
    let mut vals = vec![];
    let mut sets = vec![];
    for (i, m) in METRICS.iter().enumerate() {
        let c = m.column();
        let p = 5 + i; // ?5.. are the values
        names.push(format!("{c}_sum, {c}_n, {c}_max"));
        vals.push(format!("?{p}, (?{p} IS NOT NULL), ?{p}"));
        // Same step: fold in; the slot's old step (a lap ago): replace.
        sets.push(format!(
            "{c}_sum = CASE WHEN start = excluded.start THEN \
               CASE WHEN excluded.{c}_sum IS NULL THEN {c}_sum \
                    ELSE coalesce({c}_sum, 0) + excluded.{c}_sum END \
             ELSE excluded.{c}_sum END, \
             {c}_n = CASE WHEN start = excluded.start THEN {c}_n + excluded.{c}_n \
             ELSE excluded.{c}_n END, \
             {c}_max = CASE WHEN start = excluded.start THEN \
               CASE WHEN {c}_max IS NULL OR excluded.{c}_max > {c}_max THEN \
                 coalesce(excluded.{c}_max, {c}_max) ELSE {c}_max END \
             ELSE excluded.{c}_max END"
        ));
    }
    format!(
        "INSERT INTO rows (ctid, tier, slot, start, {}) VALUES (?1, ?2, ?3, ?4, {}) \
         ON CONFLICT (ctid, tier, slot) DO UPDATE SET {}, \
         start = excluded.start",
        names.join(", "),
        vals.join(", "),
        sets.join(", ")
    )
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase)
    )
}

impl Store {
    /// Opens (or creates) `<node_root>/metrics.db`. A file that is not a sound database is
    /// moved aside (`metrics.db.corrupt-<secs>`) with a warning and a new one created.
    pub fn open(node_root: &Path) -> Result<Store> {
        let path = db_path(node_root);
        match Self::open_at(&path) {
            Ok(s) => Ok(s),
            Err(MetricsError::Sqlite { source, .. }) if is_corrupt(&source) => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let aside = path.with_file_name(format!("metrics.db.corrupt-{secs}"));
                tracing::warn!(
                    "metrics store {} is corrupt ({source}); moved to {} and started anew",
                    path.display(),
                    aside.display()
                );
                fs::rename(&path, &aside).map_err(|e| MetricsError::Io {
                    path: path.clone(),
                    source: e,
                })?;
                for ext in ["-journal", "-wal", "-shm"] {
                    let _ = fs::remove_file(format!("{}{ext}", path.display()));
                }
                Self::open_at(&path)
            }
            Err(e) => Err(e),
        }
    }

    fn open_at(path: &Path) -> Result<Store> {
        let io = |e| MetricsError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        // Created 0600 before SQLite sees it; SQLite gives its journal the same mode.
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
        let sq = |e| MetricsError::Sqlite {
            path: path.to_path_buf(),
            source: e,
        };
        let conn = Connection::open(path).map_err(sq)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sq)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sq)?;
        if check != "ok" {
            return Err(sq(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(check),
            )));
        }
        conn.execute_batch(&schema()).map_err(sq)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn sq(&self, e: rusqlite::Error) -> MetricsError {
        MetricsError::Sqlite {
            path: self.path.clone(),
            source: e,
        }
    }

    /// Folds one sample per container, taken at `time` (seconds since the epoch), into every
    /// tier, in one transaction.
    pub fn record(&mut self, time: u64, samples: &[(u32, Sample)]) -> Result<()> {
        let sql = upsert_sql();
        let tx = self.conn.transaction().map_err(|e| MetricsError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        {
            let mut st = tx.prepare_cached(&sql).map_err(|e| MetricsError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
            for (ctid, s) in samples {
                for (ti, t) in TIERS.iter().enumerate() {
                    let step = time / t.step;
                    let v = s.values;
                    st.execute(params![
                        ctid,
                        ti as i64,
                        (step % t.rows) as i64,
                        (step * t.step) as i64,
                        v[0],
                        v[1],
                        v[2],
                        v[3],
                        v[4]
                    ])
                    .map_err(|e| MetricsError::Sqlite {
                        path: self.path.clone(),
                        source: e,
                    })?;
                }
            }
        }
        tx.commit().map_err(|e| self.sq(e))
    }

    /// Deletes all history of a container.
    pub fn forget(&self, ctid: u32) -> Result<()> {
        self.conn
            .execute("DELETE FROM rows WHERE ctid = ?1", params![ctid])
            .map(|_| ())
            .map_err(|e| self.sq(e))
    }

    /// Rows of a container in one tier: the last `range` seconds before `now`, oldest first.
    pub fn rows(&self, ctid: u32, tier: usize, now: u64, range: u64) -> Result<Vec<Row>> {
        let t = TIERS[tier.min(TIERS.len() - 1)];
        let from = now.saturating_sub(range.min(t.span())) / t.step * t.step;
        let mut cols = String::new();
        for m in METRICS {
            let c = m.column();
            cols.push_str(&format!(", {c}_sum, {c}_n, {c}_max"));
        }
        let sql = format!(
            "SELECT start{cols} FROM rows WHERE ctid = ?1 AND tier = ?2 AND start >= ?3 \
             AND start <= ?4 ORDER BY start"
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.sq(e))?;
        let rows = st
            .query_map(params![ctid, tier as i64, from as i64, now as i64], |r| {
                let mut points = [None; 5];
                for (i, p) in points.iter_mut().enumerate() {
                    let sum: Option<f64> = r.get(1 + i * 3)?;
                    let n: i64 = r.get(2 + i * 3)?;
                    let max: Option<f64> = r.get(3 + i * 3)?;
                    if let (Some(sum), Some(max), true) = (sum, max, n > 0) {
                        *p = Some(Point {
                            avg: sum / n as f64,
                            max,
                        });
                    }
                }
                Ok(Row {
                    time: r.get::<_, i64>(0)? as u64,
                    points,
                })
            })
            .map_err(|e| self.sq(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.sq(e))
    }

    /// Rows of all tiers for a container (for tests and accounting).
    pub fn row_count(&self, ctid: u32) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM rows WHERE ctid = ?1",
                params![ctid],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.sq(e))
    }

    /// Bytes the database file takes (pages in use).
    pub fn used_bytes(&self) -> Result<u64> {
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(|e| self.sq(e))?;
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .map_err(|e| self.sq(e))?;
        let size: i64 = self
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|e| self.sq(e))?;
        Ok(((pages - free) * size) as u64)
    }
}

/// The finest tier that covers `range` seconds (the coarsest when none does).
pub fn tier_for(range: u64) -> usize {
    TIERS
        .iter()
        .position(|t| t.span() >= range)
        .unwrap_or(TIERS.len() - 1)
}

#[cfg(test)]
mod tests;
