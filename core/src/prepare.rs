//! Prepare: what the original init lambda did, with one file for all children.
//!
//! Creates the run directory, writes the ID file and then the manifest (the
//! manifest last: a run with a manifest is complete). No per-child directories or
//! files: children find their IDs by arithmetic on the plan.

use std::path::{Path, PathBuf};

use crate::layout::{RunId, RunLayout};
use crate::manifest::{FORMAT, Manifest};
use crate::names::{Stage, run_prefix};
use crate::plan::PartitionPlan;
use crate::store::{ObjectStore, ObjectStoreExt};
use crate::{Error, Result};

/// What to prepare.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The shared volume.
    pub root: PathBuf,
    /// A run id to use instead of a generated one.
    pub run_id: Option<RunId>,
    /// `N`.
    pub records: u64,
    /// First ID of the range.
    pub first_id: u64,
    /// `K`.
    pub ids_per_node: u64,
    /// Workload seed.
    pub seed: u64,
    /// Replace a run of the same id: its directory on the volume and its results in
    /// the bucket. Without it, either is refused.
    pub overwrite: bool,
}

/// Prepares a run whose results go to `store` and returns its layout and manifest.
///
/// A run id is refused when the volume already holds a run of that id, and also
/// when the bucket already holds results under it (a shared bucket, another machine's
/// run): those objects would otherwise be taken for this run's. `overwrite` removes
/// both first.
pub fn prepare(opts: &PrepareOptions, store: &dyn ObjectStore) -> Result<(RunLayout, Manifest)> {
    let plan = PartitionPlan::new(opts.records, opts.ids_per_node)?;
    if opts.first_id.checked_add(opts.records - 1).is_none() {
        return Err(Error::InvalidInput(format!(
            "--first-id {} with --records {} runs past the largest ID ({})",
            opts.first_id,
            opts.records,
            u64::MAX
        )));
    }
    let run_id = opts.run_id.clone().unwrap_or_else(RunId::generate);
    std::fs::create_dir_all(&opts.root).map_err(|e| root_error(&opts.root, e))?;
    let layout = RunLayout::new(&opts.root, &run_id);
    // Anything under the run's prefix (results, or the records published next to
    // them) means another run of this id used this bucket.
    let prefix = run_prefix(&run_id);
    let stale = store.list(&prefix)?;
    if !stale.is_empty() {
        if !opts.overwrite {
            let results = crate::names::results_prefix(&run_id);
            let n = stale.iter().filter(|o| o.key.starts_with(&results)).count();
            let manifest = stale.iter().any(|o| o.key == crate::names::manifest_key(&run_id));
            let others = stale.len() - n - usize::from(manifest);
            let mut held = format!("{n} result objects");
            if manifest {
                held.push_str(", its manifest");
            }
            if others > 0 {
                held.push_str(&format!(", {others} other objects"));
            }
            return Err(Error::InvalidInput(format!(
                "run {run_id:?} already exists in the bucket ({held} under {}/{prefix}): \
                 choose another --run-id, or pass --overwrite to delete them",
                store.url()
            )));
        }
        store.delete_prefix(&prefix)?;
    }
    if opts.overwrite {
        match std::fs::remove_dir_all(layout.dir()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", layout.dir(), e)),
        }
    }
    match std::fs::create_dir(layout.dir()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::InvalidInput(format!(
                "run {run_id:?} already exists at {}: choose another --run-id, or pass --overwrite to replace it",
                layout.dir().display()
            )));
        }
        Err(e) => return Err(root_error(&opts.root, e)),
    }
    let manifest = Manifest {
        format: FORMAT,
        run_id: run_id.clone(),
        created_at: crate::time::rfc3339_micros(crate::time::now_micros()),
        first_id: opts.first_id,
        seed: opts.seed,
        plan,
        id_file: "ids.arrow".into(),
        bucket: store.url(),
    };
    // The volume's manifest is written last (a run directory with one is complete);
    // the bucket's copy after it, for the commands that cannot mount the volume.
    let result = crate::ids::write_range(&layout.ids(), opts.first_id, opts.records)
        .and_then(|()| manifest.write(&layout))
        .and_then(|()| manifest.publish(store));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(layout.dir());
        let _ = store.delete(&crate::names::manifest_key(&run_id));
        return Err(e);
    }
    Ok((layout, manifest))
}

fn root_error(root: &Path, e: std::io::Error) -> Error {
    Error::InvalidInput(format!("--root {} is not writable: {e}", root.display()))
}

/// Removes a run's intermediate stage files (procure and process), keeping the
/// manifest, the ID file and the results.
pub fn remove_stage_files(layout: &RunLayout) -> Result<()> {
    for stage in [Stage::Procure, Stage::Process] {
        let dir = layout.stage_dir(stage);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &dir, e)),
        }
    }
    Ok(())
}

/// Removes everything a run made: its directory on the volume, its results and the
/// records published next to them.
pub fn remove_run(layout: &RunLayout, store: &dyn ObjectStore) -> Result<()> {
    store.delete_prefix(&run_prefix(layout.run_id()))?;
    match std::fs::remove_dir_all(layout.dir()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", layout.dir(), e)),
    }
}
