//! The run manifest: what prepare decided, read by every child, verify and rerun.
//!
//! Written last by prepare (to a temporary name, then renamed), so a run directory
//! with a manifest is a complete run; one without is a prepare that did not finish.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::layout::{RunLayout, list_runs};
use crate::plan::PartitionPlan;
use crate::{Error, Result};

/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// A run's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version ([`FORMAT`]).
    pub format: u32,
    /// The run id.
    pub run_id: String,
    /// When prepare ran (RFC 3339, UTC).
    pub created_at: String,
    /// First ID of the range.
    pub first_id: u64,
    /// Workload seed.
    pub seed: u64,
    /// The partition plan (records, ids per node, array size).
    #[serde(flatten)]
    pub plan: PartitionPlan,
    /// The ID file, relative to the run directory.
    pub id_file: String,
    /// Where egress puts results, as chosen at prepare (`file://...` or `s3://...`);
    /// a worker's `--bucket` overrides it.
    pub bucket: String,
}

impl Manifest {
    /// Writes the manifest atomically into the run directory.
    pub fn write(&self, layout: &RunLayout) -> Result<()> {
        let path = layout.manifest();
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::corrupt(path.display(), format!("cannot encode manifest: {e}")))?;
        crate::store::write_file(&tmp, &json)?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
        Ok(())
    }

    /// Reads the manifest of `layout`'s run; an unknown run is `NotFound` naming the
    /// root and the newest runs it does hold.
    pub fn load(layout: &RunLayout) -> Result<Self> {
        let path = layout.manifest();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(unknown_run(layout.root(), layout.run_id()));
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(path.display(), format!("not a tandem manifest: {e}")))?;
        if m.format != FORMAT {
            return Err(Error::corrupt(
                path.display(),
                format!(
                    "manifest format {} is not supported (this build reads {FORMAT})",
                    m.format
                ),
            ));
        }
        if m.run_id != layout.run_id() {
            return Err(Error::corrupt(
                path.display(),
                format!(
                    "manifest belongs to run {:?}, not {:?}",
                    m.run_id,
                    layout.run_id()
                ),
            ));
        }
        let plan = PartitionPlan::new(m.plan.records, m.plan.ids_per_node)
            .map_err(|e| Error::corrupt(path.display(), e.to_string()))?;
        if plan != m.plan {
            return Err(Error::corrupt(
                path.display(),
                format!(
                    "array_size {} does not match records {} / ids_per_node {}",
                    m.plan.array_size, m.plan.records, m.plan.ids_per_node
                ),
            ));
        }
        Ok(m)
    }
}

fn unknown_run(root: &Path, run_id: &str) -> Error {
    let runs = list_runs(root);
    let hint = if runs.is_empty() {
        format!("no runs under {}", root.display())
    } else {
        let shown: Vec<&str> = runs.iter().take(5).map(String::as_str).collect();
        format!("newest runs under {}: {}", root.display(), shown.join(", "))
    };
    Error::NotFound {
        what: format!("run {run_id:?}"),
        location: format!("{} ({hint})", root.join(run_id).join("manifest.json").display()),
    }
}
