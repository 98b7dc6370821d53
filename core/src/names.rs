//! The names everything else is built from: the three stages, a value per stage,
//! and the object keys of a run's results.
//!
//! These sit below every other module (layout, exchange, manifest, stage all import
//! them; they import nothing of the crate but its error), so no module needs another
//! just to say "process" or to find a child's result.

use std::fmt;
use std::ops::{Index, IndexMut};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The three stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Stage 1: generate the child's records from its IDs.
    Procure,
    /// Stage 2: compute `total_cents`.
    Process,
    /// Stage 3: put the child's result in the object store.
    Egress,
}

impl Stage {
    /// All stages, in order.
    pub const ALL: [Stage; 3] = [Stage::Procure, Stage::Process, Stage::Egress];

    /// The stage's name as used on the command line, on disk and in job names.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Procure => "procure",
            Stage::Process => "process",
            Stage::Egress => "egress",
        }
    }

    /// 0, 1, 2.
    pub fn position(self) -> usize {
        self as usize
    }

    /// The stage after this one.
    pub fn next(self) -> Option<Stage> {
        Stage::ALL.get(self.position() + 1).copied()
    }

    /// The stage before this one.
    pub fn prev(self) -> Option<Stage> {
        self.position().checked_sub(1).map(|p| Stage::ALL[p])
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Stage::ALL.into_iter().find(|st| st.name() == s).ok_or_else(|| {
            Error::InvalidInput(format!(
                "unknown stage {s:?}: expected procure, process or egress"
            ))
        })
    }
}

/// One value per stage, indexed by [`Stage`]. Serializes as a three-element array
/// in stage order (`[procure, process, egress]`), the shape the JSON outputs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PerStage<T>(pub [T; 3]);

impl<T> PerStage<T> {
    /// Builds the values from a function of the stage.
    pub fn from_fn(mut f: impl FnMut(Stage) -> T) -> Self {
        PerStage(Stage::ALL.map(&mut f))
    }

    /// `(stage, &value)` in stage order.
    pub fn iter(&self) -> impl Iterator<Item = (Stage, &T)> {
        Stage::ALL.into_iter().zip(self.0.iter())
    }

    /// `(stage, &mut value)` in stage order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Stage, &mut T)> {
        Stage::ALL.into_iter().zip(self.0.iter_mut())
    }

    /// The values in stage order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }

    /// Applies `f` to each value.
    pub fn map<U>(self, mut f: impl FnMut(Stage, T) -> U) -> PerStage<U> {
        let mut stages = Stage::ALL.into_iter();
        PerStage(self.0.map(|v| f(stages.next().unwrap_or(Stage::Egress), v)))
    }
}

impl PerStage<String> {
    /// Three non-empty values separated by commas, as procure,process,egress (spaces
    /// around them ignored).
    pub fn parse_three(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        match parts.as_slice() {
            [a, b, c] if ![a, b, c].iter().any(|p| p.is_empty()) => {
                Some(PerStage([a.to_string(), b.to_string(), c.to_string()]))
            }
            _ => None,
        }
    }
}

impl<T: Clone> PerStage<T> {
    /// The same value for every stage.
    pub fn splat(v: T) -> Self {
        PerStage([v.clone(), v.clone(), v])
    }
}

impl<T> Index<Stage> for PerStage<T> {
    type Output = T;
    fn index(&self, s: Stage) -> &T {
        &self.0[s.position()]
    }
}

impl<T> IndexMut<Stage> for PerStage<T> {
    fn index_mut(&mut self, s: Stage) -> &mut T {
        &mut self.0[s.position()]
    }
}

/// The object key of child `index`'s result: `RUN_ID/results/IIIII.parquet`.
pub fn object_key(run_id: &str, index: u32) -> String {
    format!("{run_id}/results/{index:05}.parquet")
}

/// The key prefix holding a run's results.
pub fn results_prefix(run_id: &str) -> String {
    format!("{run_id}/results/")
}

/// The key prefix of everything a run keeps in the bucket: its results and the small
/// records published next to them, so commands that cannot mount the volume (an
/// operator's, through `--stack`) can read the run.
pub fn run_prefix(run_id: &str) -> String {
    format!("{run_id}/")
}

/// The run's manifest, published by prepare: `RUN_ID/manifest.json`.
pub fn manifest_key(run_id: &str) -> String {
    format!("{run_id}/manifest.json")
}

/// The full list of the run's failed children, published by watch.
pub fn failed_list_key(run_id: &str) -> String {
    format!("{run_id}/failed-children.json")
}

/// The run's Batch job record (its submission and every rerun's), published by
/// submit and rerun.
pub fn jobs_key(run_id: &str) -> String {
    format!("{run_id}/batch-jobs.json")
}

/// A rerun's index map (`file` as [`crate::index_map::write`] names it).
pub fn index_map_key(run_id: &str, file: &str) -> String {
    format!("{run_id}/{file}")
}

/// The child index an object key under `results_prefix(run_id)` names, if it is one
/// of the keys [`object_key`] makes.
pub fn index_of_key(run_id: &str, key: &str) -> Option<u32> {
    let index = key
        .strip_prefix(&results_prefix(run_id))?
        .strip_suffix(".parquet")?
        .parse::<u32>()
        .ok()?;
    (object_key(run_id, index) == key).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_and_order() {
        assert_eq!("process".parse::<Stage>().unwrap(), Stage::Process);
        assert!(
            "Process"
                .parse::<Stage>()
                .unwrap_err()
                .to_string()
                .contains("procure, process")
        );
        assert_eq!(Stage::Procure.next(), Some(Stage::Process));
        assert_eq!(Stage::Egress.next(), None);
        assert_eq!(Stage::Procure.prev(), None);
        assert_eq!(Stage::Egress.prev(), Some(Stage::Process));
    }

    #[test]
    fn per_stage_indexes_and_serializes_as_an_array() {
        let mut p = PerStage::from_fn(|s| s.position() * 10);
        p[Stage::Egress] += 1;
        assert_eq!(p[Stage::Egress], 21);
        assert_eq!(serde_json::to_string(&p).unwrap(), "[0,10,21]");
        let names: Vec<String> = p.map(|s, v| format!("{s}={v}")).0.to_vec();
        assert_eq!(names, ["procure=0", "process=10", "egress=21"]);
    }

    #[test]
    fn keys_round_trip_to_indices() {
        assert_eq!(object_key("r", 7), "r/results/00007.parquet");
        assert_eq!(index_of_key("r", "r/results/00007.parquet"), Some(7));
        assert_eq!(index_of_key("r", "r/results/7.parquet"), None);
        assert_eq!(index_of_key("r", "r/results/00007.parquet.bak"), None);
        assert_eq!(index_of_key("r", "s/results/00007.parquet"), None);
    }
}
