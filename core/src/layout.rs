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

/// A run id, checked once where it enters (a flag, an event, a manifest, an object
/// key): 1..=128 characters of `[A-Za-z0-9._-]`, not starting with `.`, since it
/// becomes a directory name, an S3 key prefix and part of Batch job names.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

/// Quoted, as a string is: messages say `run "nightly"`.
impl std::fmt::Debug for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl RunId {
    /// A new run id: a sortable UTC stamp and a random suffix,
    /// e.g. `20261128T024105Z-3fa91c`.
    pub fn generate() -> Self {
        let now = crate::time::now_micros();
        let salt = crate::workload::splitmix64(
            now ^ (u64::from(std::process::id()) << 32) ^ (&now as *const u64 as u64),
        );
        Self(format!(
            "{}-{:06x}",
            crate::time::compact_stamp(now),
            salt & 0xff_ffff
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for RunId {
    type Err = Error;

    fn from_str(run_id: &str) -> Result<Self> {
        let ok = !run_id.is_empty()
            && run_id.len() <= 128
            && !run_id.starts_with('.')
            && run_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(run_id.to_string()))
        } else {
            Err(Error::InvalidInput(format!(
                "run id {run_id:?} is not valid: use 1 to 128 characters of A-Z a-z 0-9 . _ - \
                 (not starting with a dot)"
            )))
        }
    }
}

impl TryFrom<String> for RunId {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<RunId> for String {
    fn from(r: RunId) -> String {
        r.0
    }
}

impl std::ops::Deref for RunId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for RunId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<Path> for RunId {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for RunId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for RunId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for RunId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// Paths of one run under the shared-volume root.
#[derive(Debug, Clone)]
pub struct RunLayout {
    root: PathBuf,
    run_id: RunId,
    dir: PathBuf,
}

impl RunLayout {
    /// The layout of `run_id` under `root` (nothing is touched on disk).
    pub fn new(root: &Path, run_id: &RunId) -> Self {
        Self {
            root: root.to_path_buf(),
            run_id: run_id.clone(),
            dir: root.join(run_id.as_str()),
        }
    }

    /// The shared-volume root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run id.
    pub fn run_id(&self) -> &RunId {
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
    fn run_ids_are_checked_where_they_enter() {
        assert!("20261128T024105Z-3fa91c".parse::<RunId>().is_ok());
        for bad in ["", ".hidden", "a/b", "../x", "sp ace", &"x".repeat(129)] {
            let err = bad.parse::<RunId>().unwrap_err().to_string();
            assert!(err.contains("not valid"), "{bad:?}: {err}");
            // A manifest or an event holding one is refused when it is read.
            let json = serde_json::to_string(bad).unwrap();
            assert!(serde_json::from_str::<RunId>(&json).is_err(), "{bad:?}");
        }
        let r = RunId::generate();
        assert_eq!(r.as_str().parse::<RunId>().unwrap(), r);
        assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
    }

    #[test]
    fn stage_files_are_sharded_by_index() {
        let l = RunLayout::new(Path::new("/vol"), &"r1".parse().unwrap());
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
