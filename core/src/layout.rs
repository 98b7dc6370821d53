//! Where a run lives on the shared volume.
//!
//! ```text
//! ROOT/RUN_ID/manifest.json           the run's parameters (written last by prepare)
//! ROOT/RUN_ID/ids.arrow               every ID of the run, one UInt64 column
//! ROOT/RUN_ID/procure/SS/IIIII.parquet stage-1 output of child IIIII
//! ROOT/RUN_ID/process/SS/IIIII.parquet stage-2 output of child IIIII
//! ```
//!
//! `SS` is the child index modulo [`SHARDS`]. Creating a file locks its directory,
//! and a directory with thousands of entries makes every create slower; spreading
//! neighbouring children (which run at the same time) over 64 directories keeps
//! concurrent creates from queueing on one directory lock. Shard directories are
//! made on first use, so prepare creates no per-child directories or files.

use std::path::{Path, PathBuf};

use crate::names::Stage;
use crate::{Error, Result};

/// Shard directories per stage.
pub const SHARDS: u32 = 64;

/// Checks a run id: 1..=128 characters of `[A-Za-z0-9._-]`, not starting with `.`
/// (it becomes a directory name and an S3 key prefix).
pub fn check_run_id(run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 128
        && !run_id.starts_with('.')
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "run id {run_id:?} is not valid: use 1 to 128 characters of A-Z a-z 0-9 . _ - \
             (not starting with a dot)"
        )))
    }
}

/// A new run id: a sortable UTC stamp and a random suffix,
/// e.g. `20261128T024105Z-3fa91c`.
pub fn new_run_id() -> String {
    let now = crate::time::now_micros();
    let salt = crate::workload::splitmix64(
        now ^ (u64::from(std::process::id()) << 32) ^ (&now as *const u64 as u64),
    );
    format!("{}-{:06x}", crate::time::compact_stamp(now), salt & 0xff_ffff)
}

/// Paths of one run under the shared-volume root.
#[derive(Debug, Clone)]
pub struct RunLayout {
    root: PathBuf,
    run_id: String,
    dir: PathBuf,
}

impl RunLayout {
    /// The layout of `run_id` under `root` (nothing is touched on disk).
    pub fn new(root: &Path, run_id: &str) -> Result<Self> {
        check_run_id(run_id)?;
        Ok(Self {
            root: root.to_path_buf(),
            run_id: run_id.to_string(),
            dir: root.join(run_id),
        })
    }

    /// The shared-volume root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }

    /// The ID file.
    pub fn ids(&self) -> PathBuf {
        self.dir.join("ids.arrow")
    }

    /// The directory holding a stage's shard directories.
    pub fn stage_dir(&self, stage: Stage) -> PathBuf {
        self.dir.join(stage.name())
    }

    /// The output file of child `index` of an on-volume stage (procure, process).
    pub fn stage_file(&self, stage: Stage, index: u32) -> PathBuf {
        let mut p = self.stage_dir(stage);
        p.push(format!("{:02}", index % SHARDS));
        p.push(format!("{index:05}.parquet"));
        p
    }
}

/// Runs under `root`, newest first (run ids start with a sortable stamp), for
/// "did you mean" messages. Only directories holding a manifest count.
pub fn list_runs(root: &Path) -> Vec<String> {
    let mut runs: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("manifest.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    runs.sort_unstable_by(|a, b| b.cmp(a));
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_checked() {
        assert!(check_run_id("20261128T024105Z-3fa91c").is_ok());
        for bad in ["", ".hidden", "a/b", "../x", "sp ace", &"x".repeat(129)] {
            let err = check_run_id(bad).unwrap_err().to_string();
            assert!(err.contains("not valid"), "{bad:?}: {err}");
        }
        check_run_id(&new_run_id()).unwrap();
    }

    #[test]
    fn stage_files_are_sharded_by_index() {
        let l = RunLayout::new(Path::new("/vol"), "r1").unwrap();
        assert_eq!(
            l.stage_file(Stage::Procure, 65),
            Path::new("/vol/r1/procure/01/00065.parquet")
        );
        assert_eq!(
            l.stage_file(Stage::Process, 9999),
            Path::new("/vol/r1/process/15/09999.parquet")
        );
    }
}
