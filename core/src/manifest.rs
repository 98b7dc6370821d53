//! The run manifest: what prepare decided, read by every child, verify and rerun.
//!
//! Written last by prepare (to a temporary name, then renamed), so a run directory
//! with a manifest is a complete run; one without is a prepare that did not finish.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::layout::{RunId, RunLayout, list_runs};
use crate::names::manifest_key;
use crate::plan::PartitionPlan;
use crate::store::ObjectStore;
use crate::{Error, Result};

/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// A run's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version ([`FORMAT`]).
    pub format: u32,
    /// The run id.
    pub run_id: RunId,
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
        Self::parse(&bytes, &path.display().to_string(), layout.run_id())
    }

    /// Publishes the manifest in the run's bucket ([`manifest_key`]), where commands
    /// that cannot mount the volume read it.
    pub fn publish(&self, store: &dyn ObjectStore) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| {
            Error::corrupt(manifest_key(&self.run_id), format!("cannot encode manifest: {e}"))
        })?;
        store.put(&manifest_key(&self.run_id), json.into())
    }

    /// Reads run `run_id`'s manifest from its bucket, checked as [`Manifest::load`]
    /// checks the volume's.
    pub fn fetch(store: &dyn ObjectStore, run_id: &RunId) -> Result<Self> {
        let key = manifest_key(run_id);
        let bytes = store.get(&key).map_err(|e| {
            if e.is_not_found() {
                Error::NotFound {
                    what: format!("run {run_id:?}"),
                    location: format!(
                        "{}/{key} (no run of that id was prepared with this bucket)",
                        store.url()
                    ),
                }
            } else {
                e
            }
        })?;
        Self::parse(&bytes, &format!("{}/{key}", store.url()), run_id)
    }

    /// A manifest's bytes, read from `location`, checked: its format, that it is
    /// `run_id`'s, and that its plan is consistent.
    fn parse(bytes: &[u8], location: &str, run_id: &RunId) -> Result<Self> {
        let path = location;
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(path, format!("not a tandem manifest: {e}")))?;
        if m.format != FORMAT {
            return Err(Error::corrupt(
                path,
                format!(
                    "manifest format {} is not supported (this build reads {FORMAT})",
                    m.format
                ),
            ));
        }
        if m.run_id != *run_id {
            return Err(Error::corrupt(
                path,
                format!("manifest belongs to run {:?}, not {run_id:?}", m.run_id),
            ));
        }
        let plan = PartitionPlan::new(m.plan.records, m.plan.ids_per_node)
            .map_err(|e| Error::corrupt(path, e.to_string()))?;
        if plan != m.plan {
            return Err(Error::corrupt(
                path,
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
