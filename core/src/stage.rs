//! One child of one stage: the unit AWS Batch runs (`tandem worker`) and the local
//! executor schedules. Both call [`RunContext::run_child`], so what is tested
//! locally is exactly what runs in Batch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::exchange::{self, Completion, StageTiming};
use crate::ids::IdFile;
use crate::layout::{RunId, RunLayout};
use crate::manifest::Manifest;
use crate::names::{Stage, object_key};
use crate::store::{self, ObjectStore};
use crate::workload;
use crate::{Error, Result};

/// Everything a child needs: the run's layout and manifest, the mapped ID file and
/// the object store. Opened once per process and shared by all children in it.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Paths of the run on the shared volume.
    pub layout: RunLayout,
    /// The run's parameters.
    pub manifest: Manifest,
    /// The mapped ID file.
    pub ids: IdFile,
    /// Where egress writes.
    pub store: Arc<dyn ObjectStore>,
}

/// A run as the commands that read it see it: its manifest and its bucket, and the
/// run directory when this machine mounts the volume. Verify and report need nothing
/// else, so an operator who cannot mount the volume reads the run from its bucket
/// (the manifest prepare published there).
#[derive(Debug, Clone)]
pub struct RunView {
    /// The run's parameters.
    pub manifest: Manifest,
    /// Where its results are.
    pub store: Arc<dyn ObjectStore>,
    /// The run on the volume, when this machine has it.
    pub layout: Option<RunLayout>,
}

impl RunView {
    /// The view of a run opened on the volume.
    pub fn from_context(ctx: &RunContext) -> Self {
        Self {
            manifest: ctx.manifest.clone(),
            store: ctx.store.clone(),
            layout: Some(ctx.layout.clone()),
        }
    }

    /// Run `run_id` read from its bucket alone.
    pub fn from_bucket(store: Arc<dyn ObjectStore>, run_id: &RunId) -> Result<Self> {
        let manifest = Manifest::fetch(store.as_ref(), run_id)?;
        Ok(Self {
            manifest,
            store,
            layout: None,
        })
    }
}

impl RunContext {
    /// Opens run `run_id` under `root`: reads the manifest, maps the ID file and
    /// opens the bucket (`bucket` overrides the one recorded at prepare) with
    /// [`store::open`], which knows `file://` only.
    pub fn open(root: &Path, run_id: &RunId, bucket: Option<&str>) -> Result<Self> {
        Self::open_with(root, run_id, bucket, &store::open)
    }

    /// [`RunContext::open`] with the function that opens a bucket URL, for backends
    /// outside this crate (`s3://` in tandem-aws).
    pub fn open_with(
        root: &Path,
        run_id: &RunId,
        bucket: Option<&str>,
        open_store: &dyn Fn(&str) -> Result<Arc<dyn ObjectStore>>,
    ) -> Result<Self> {
        let layout = RunLayout::new(root, run_id);
        let manifest = Manifest::load(&layout)?;
        let ids = IdFile::open(&layout.dir().join(&manifest.id_file))?;
        if ids.len() != manifest.plan.records {
            return Err(Error::corrupt(
                ids.path().display(),
                format!(
                    "holds {} IDs but the manifest says {} records (truncated or from another run)",
                    ids.len(),
                    manifest.plan.records
                ),
            ));
        }
        let store = open_store(bucket.unwrap_or(&manifest.bucket))?;
        Ok(Self {
            layout,
            manifest,
            ids,
            store,
        })
    }

    /// The IDs child `index` owns, borrowed from the mapped ID file, checked against
    /// the manifest's range (O(K), so every child checks exactly what it uses).
    pub fn child_ids(&self, index: u32) -> Result<std::borrow::Cow<'_, [u64]>> {
        let range = self.manifest.plan.slice(index)?;
        self.ids.check_range(self.manifest.first_id, range.clone())?;
        self.ids.ids(range)
    }

    /// Checks the whole ID file against the manifest's range. Commands that act on
    /// a whole run (verify, rerun, report) call it before any work; a Batch child
    /// checks only its own slice ([`RunContext::child_ids`]) and never reads the
    /// rest of a file that may be 80 MB on EFS.
    pub fn check_id_file(&self) -> Result<()> {
        self.ids.check_all(self.manifest.first_id)
    }

    /// Runs `stage` for child `index` (attempt is 1-based) and returns what it wrote
    /// in its completion record.
    pub fn run_child(&self, stage: Stage, index: u32, attempt: u32) -> Result<Completion> {
        // An index past the array is a bad argument, whatever the stage reads first.
        self.manifest.plan.slice(index)?;
        let start_us = crate::time::now_micros();
        let run_id = self.layout.run_id();
        let timing = |now| StageTiming {
            stage,
            attempt,
            start_us,
            end_us: now,
        };
        match stage {
            Stage::Procure => {
                let ids = self.child_ids(index)?;
                let (batch, digest) = workload::procure(&ids, self.manifest.seed);
                let mut completion = Completion {
                    run_id: run_id.to_string(),
                    index,
                    stage,
                    digest,
                    history: vec![timing(start_us)],
                };
                let bytes = exchange::encode(&batch, &mut completion)?;
                write_in_place(&self.layout.stage_file(stage, index), &bytes)?;
                Ok(completion)
            }
            Stage::Process => {
                let input = self.read_stage_file(Stage::Procure, index)?;
                let (batch, digest) = workload::process(&input.batch)?;
                let mut history = input.completion.history;
                history.push(timing(start_us));
                let mut completion = Completion {
                    run_id: run_id.to_string(),
                    index,
                    stage,
                    digest,
                    history,
                };
                let bytes = exchange::encode(&batch, &mut completion)?;
                write_in_place(&self.layout.stage_file(stage, index), &bytes)?;
                Ok(completion)
            }
            Stage::Egress => {
                // Egress copies the process file's bytes: it checks the footer (a
                // complete file, this child's record, this child's IDs) and leaves the
                // rows untouched; verify decodes every row of every object.
                let path = self.layout.stage_file(Stage::Process, index);
                let what = path.display().to_string();
                let bytes = read_file(&path)?;
                let footer = exchange::read_footer(&what, &bytes)?;
                self.check_completion(&footer.completion, Stage::Process, index, &what)?;
                let mut history = footer.completion.history.clone();
                history.push(timing(crate::time::now_micros()));
                let completion = Completion {
                    run_id: run_id.to_string(),
                    index,
                    stage,
                    digest: footer.completion.digest,
                    history,
                };
                let object = exchange::restamp(&what, &bytes, &footer, &completion)?;
                self.store.put(&object_key(run_id, index), Bytes::from(object))?;
                Ok(completion)
            }
        }
    }

    /// Reads and checks the output of `stage` (procure or process) for `index`.
    fn read_stage_file(&self, stage: Stage, index: u32) -> Result<exchange::Decoded> {
        let path = self.layout.stage_file(stage, index);
        let bytes = read_file(&path)?;
        self.check_decoded(stage, index, &path.display().to_string(), bytes)
    }

    /// Decodes a child's file and checks that it is the complete output of `stage`
    /// for `index` of this run, holding exactly the child's IDs.
    fn check_decoded(&self, stage: Stage, index: u32, what: &str, bytes: Bytes) -> Result<exchange::Decoded> {
        // An egressed object holds the process rows under the egress record.
        let schema = if stage == Stage::Procure {
            workload::procure_schema()
        } else {
            workload::process_schema()
        };
        let decoded = exchange::decode(what, bytes, &schema)?;
        self.check_completion(&decoded.completion, stage, index, what)?;
        Ok(decoded)
    }

    /// Checks that a completion record is `stage`'s for child `index` of this run and
    /// covers exactly the child's IDs (count and id sum).
    fn check_completion(&self, c: &Completion, stage: Stage, index: u32, what: &str) -> Result<()> {
        c.check_identity(what, self.layout.run_id(), index, stage)?;
        let ids = self.child_ids(index)?;
        let rows = ids.len() as u64;
        let id_sum = ids.iter().fold(0u64, |a, v| a.wrapping_add(*v));
        if c.digest.rows != rows || c.digest.id_sum != id_sum {
            return Err(Error::corrupt(
                what,
                format!(
                    "holds {} rows (id sum {}) but child {index} owns {rows} IDs (id sum {id_sum})",
                    c.digest.rows, c.digest.id_sum
                ),
            ));
        }
        Ok(())
    }

    /// Checks whether child `index` has a complete, verified output of `stage`. Used
    /// by rerun to skip finished work.
    ///
    /// For procure and process: the stage file decodes, is this child's of this run,
    /// and holds the child's IDs. For egress: the object in the store passes exactly
    /// the check [`crate::verify`] applies to it (every row against the workload), so
    /// rerun never calls complete what verify would not pass, such as a stale object
    /// of another run that reused this run id.
    pub fn check_output(&self, stage: Stage, index: u32) -> Result<()> {
        match stage {
            Stage::Procure | Stage::Process => self.read_stage_file(stage, index).map(|_| ()),
            Stage::Egress => {
                let key = object_key(self.layout.run_id(), index);
                let bytes = self.store.get(&key)?;
                crate::verify::check_result(&self.manifest, index, bytes)
                    .map_err(|why| Error::corrupt(format!("{}/{key}", self.store.url()), why))
            }
        }
    }
}

/// Reads a whole file; a missing file is `NotFound` naming it.
fn read_file(path: &Path) -> Result<Bytes> {
    match crate::store::read_whole(path) {
        Ok(b) => Ok(Bytes::from(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound {
            what: "stage output".into(),
            location: path.display().to_string(),
        }),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Writes `bytes` to `path`, truncating what was there, creating the shard
/// directory on first use. One create per output: the Parquet footer, written last,
/// is the completion marker (see [`exchange`]), so no temporary name is needed.
fn write_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    let open = |p: &Path| std::fs::File::create(p);
    let mut f = match open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
            open(path).map_err(|e| Error::io("create", path, e))?
        }
        Err(e) => return Err(Error::io("create", path, e)),
    };
    f.write_all(bytes).map_err(|e| Error::io("write", path, e))?;
    store::close_file(f, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::{PrepareOptions, prepare};

    #[test]
    fn a_write_that_fails_at_close_fails_the_child_that_wrote_it() {
        // NFS (EFS) may report a write error only at close: the child that wrote the
        // file fails with it, instead of the next stage being blamed.
        let dir = tempfile::tempdir().unwrap();
        let bucket = store::open(&format!("file://{}", dir.path().join("bucket").display())).unwrap();
        let opts = PrepareOptions {
            root: dir.path().join("vol"),
            run_id: None,
            records: 100,
            first_id: 1,
            ids_per_node: 10,
            seed: 42,
            overwrite: false,
        };
        let (layout, _) = prepare(&opts, bucket.as_ref()).unwrap();
        let ctx = RunContext::open(layout.root(), layout.run_id(), None).unwrap();
        store::FAIL_NEXT_CLOSE.with(|f| f.set(Some(libc::EIO)));
        let err = ctx.run_child(Stage::Procure, 3, 1).unwrap_err();
        let text = crate::error::chain(&err);
        assert!(
            text.contains("close") && text.contains("00003.parquet") && text.contains("Input/output error"),
            "{text}"
        );
        // Without the fault the same child succeeds, and the next stage takes its file.
        ctx.run_child(Stage::Procure, 3, 2).unwrap();
        ctx.run_child(Stage::Process, 3, 1).unwrap();
    }

    /// A stage file self-consistent and stamped for this run, child and stage, with
    /// as many rows as the child owns but other IDs (the run id reused for a run
    /// prepared from another first ID) is not the child's output: the id sum alone
    /// tells it apart, for rerun and for the next stage.
    #[test]
    fn a_file_with_the_childs_row_count_but_other_ids_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = |root: &str, first_id: u64| {
            let bucket = store::open(&format!(
                "file://{}",
                dir.path().join(root).join("bucket").display()
            ))
            .unwrap();
            let opts = PrepareOptions {
                root: dir.path().join(root).join("vol"),
                run_id: Some("reused".parse().unwrap()),
                records: 100,
                first_id,
                ids_per_node: 10,
                seed: 42,
                overwrite: false,
            };
            let (layout, _) = prepare(&opts, bucket.as_ref()).unwrap();
            RunContext::open(layout.root(), layout.run_id(), None).unwrap()
        };
        let (old, new) = (run("old", 1), run("new", 1001));
        old.run_child(Stage::Procure, 3, 1).unwrap();
        new.run_child(Stage::Procure, 3, 1).unwrap();
        new.check_output(Stage::Procure, 3).unwrap();
        std::fs::copy(
            old.layout.stage_file(Stage::Procure, 3),
            new.layout.stage_file(Stage::Procure, 3),
        )
        .unwrap();
        for err in [
            new.check_output(Stage::Procure, 3).unwrap_err(),
            new.run_child(Stage::Process, 3, 1).unwrap_err(),
        ] {
            let text = crate::error::chain(&err);
            assert!(
                text.contains("holds 10 rows (id sum 355) but child 3 owns 10 IDs (id sum 10355)"),
                "{text}"
            );
        }
    }

    #[test]
    fn close_reports_the_error_the_file_system_gives() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = std::fs::File::create(&path).unwrap();
        // SAFETY (test): closes the descriptor behind the File's back, so the File's
        // own close gets EBADF, an error as the kernel reports it.
        unsafe { libc::close(f.as_raw_fd()) };
        let err = store::close_file(f, &path).unwrap_err();
        assert!(crate::error::chain(&err).contains("Bad file descriptor"), "{err}");
    }
}
