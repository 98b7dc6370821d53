//! Corruption on purpose: every byte of every file a small run reads, flipped, must
//! be caught by verify (for a result) or by the stage that reads it, and repaired by
//! rerun, with verify and rerun agreeing on every case; nothing may panic. Results
//! that verify passes are also read back by pyarrow (an independent reader) and
//! compared with the truth.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tandem_core::executor::{self, ExecutorConfig, Task};
use tandem_core::names::{Stage, object_key};
use tandem_core::prepare::{PrepareOptions, prepare};
use tandem_core::stage::RunContext;
use tandem_core::store::ObjectStore;
use tandem_core::verify::verify;

fn run(dir: &Path, records: u64, k: u64, first_id: u64) -> RunContext {
    let store: Arc<dyn ObjectStore> =
        tandem_core::store::open(&format!("file://{}", dir.join("bucket").display())).unwrap();
    let opts = PrepareOptions {
        root: dir.join("vol"),
        run_id: None,
        records,
        first_id,
        ids_per_node: k,
        seed: 42,
        overwrite: false,
    };
    let (layout, _) = prepare(&opts, store.as_ref()).unwrap();
    let ctx = RunContext::open(layout.root(), layout.run_id(), None).unwrap();
    let ex = executor::execute(
        &ctx,
        &executor::all_tasks(ctx.manifest.plan.array_size),
        &ExecutorConfig::new(2, 1),
        &|_| {},
    );
    assert!(ex.failures().is_empty(), "{:?}", ex.failures());
    ctx
}

/// The local path of child `index`'s result object.
fn object_path(dir: &Path, ctx: &RunContext, index: u32) -> PathBuf {
    dir.join("bucket").join(object_key(ctx.layout.run_id(), index))
}

fn rerun(ctx: &RunContext) -> Vec<Task> {
    let tasks = executor::rerun_tasks(ctx, 2).unwrap();
    let ex = executor::execute(ctx, &tasks, &ExecutorConfig::new(2, 1), &|_| {});
    assert!(ex.failures().is_empty(), "rerun failed: {:?}", ex.failures());
    tasks
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Procure,
    Process,
    Result,
}

#[test]
fn every_flipped_byte_of_every_file_is_caught_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = run(dir.path(), 20, 20, 1);
    let mut cases = 0;
    for target in [Target::Procure, Target::Process, Target::Result] {
        let path = match target {
            Target::Procure => ctx.layout.stage_file(Stage::Procure, 0),
            Target::Process => ctx.layout.stage_file(Stage::Process, 0),
            Target::Result => object_path(dir.path(), &ctx, 0),
        };
        let mut pos = 0;
        loop {
            // Files are rewritten by each repair (new timings), so flip the current one.
            let good = std::fs::read(&path).unwrap();
            if pos >= good.len() {
                break;
            }
            let mut bytes = good.clone();
            bytes[pos] ^= [0x01, 0x80, 0xff][pos % 3];
            std::fs::write(&path, &bytes).unwrap();
            cases += 1;
            let what = format!("{target:?} byte {pos} of {}", bytes.len());

            let v = verify(&ctx.manifest, ctx.store.as_ref(), 2).unwrap();
            let tasks = executor::rerun_tasks(&ctx, 2).unwrap();
            match target {
                Target::Result => {
                    // verify refuses it, rerun redoes exactly that child's egress.
                    assert!(!v.ok, "{what}: verify passed a corrupt result");
                    assert_eq!(v.unreadable_objects.len(), 1, "{what}: {:?}", v.problems());
                    assert_eq!(
                        tasks,
                        vec![Task {
                            index: 0,
                            from: Stage::Egress
                        }],
                        "{what}"
                    );
                }
                Target::Procure | Target::Process => {
                    // The result is intact: verify passes and rerun has nothing to do.
                    assert!(v.ok, "{what}: {:?}", v.problems());
                    assert!(tasks.is_empty(), "{what}: {tasks:?}");
                    // The stage that reads the file refuses it.
                    let reader = if target == Target::Procure {
                        Stage::Process
                    } else {
                        Stage::Egress
                    };
                    let err = ctx.run_child(reader, 0, 2).unwrap_err().to_string();
                    assert!(err.contains(&path.display().to_string()), "{what}: {err}");
                    // Lose the result as well: rerun resumes from the newest stage
                    // output that still verifies (a corrupt procure file does not matter
                    // while the process file is good; a corrupt process file is redone).
                    ctx.store.delete(&object_key(ctx.layout.run_id(), 0)).unwrap();
                    let from = if target == Target::Procure {
                        Stage::Egress
                    } else {
                        Stage::Process
                    };
                    let tasks = executor::rerun_tasks(&ctx, 2).unwrap();
                    assert_eq!(tasks, vec![Task { index: 0, from }], "{what}");
                }
            }
            rerun(&ctx);
            let v = verify(&ctx.manifest, ctx.store.as_ref(), 2).unwrap();
            assert!(v.ok, "{what}: not repaired: {:?}", v.problems());
            // A corrupt procure file behind a good process file is not needed by any
            // rerun, so nothing rewrites it: put it back for the next case.
            if std::fs::read(&path).unwrap() == bytes {
                assert_eq!(target, Target::Procure, "{what}: rerun left the corrupt file");
                std::fs::write(&path, &good).unwrap();
            }
            pos += 1;
        }
    }
    assert!(cases > 3000, "only {cases} cases");
}

/// Reads result objects with pyarrow and compares every row with the workload's
/// formulas (`scripts/read_results.py`). `TANDEM_PYTHON` names a Python with pyarrow;
/// `scripts/test.sh` provides one.
fn pyarrow_check(files: &[(u32, PathBuf)], first_id: u64, k: u64) {
    let python = std::env::var("TANDEM_PYTHON")
        .expect("TANDEM_PYTHON must name a python with pyarrow (scripts/test.sh sets it)");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/read_results.py");
    let mut cmd = std::process::Command::new(python);
    cmd.arg(script).args([
        "--seed",
        "42",
        "--first-id",
        &first_id.to_string(),
        "--ids-per-node",
        &k.to_string(),
    ]);
    for (index, path) in files {
        cmd.arg(format!("{index}={}", path.display()));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "pyarrow disagrees:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("{} files ok", files.len())), "{said}");
}

#[test]
#[ignore = "needs pyarrow: scripts/test.sh runs it with TANDEM_PYTHON"]
fn every_result_verify_passes_reads_back_as_the_truth_in_pyarrow() {
    let dir = tempfile::tempdir().unwrap();
    let keep = tempfile::tempdir().unwrap();
    // Whole results of two runs, one ending at the largest ID.
    let mut passed = Vec::new();
    for (n, (records, k, first)) in [(1000u64, 40u64, 1u64), (99, 10, u64::MAX - 98)]
        .into_iter()
        .enumerate()
    {
        let sub = dir.path().join(n.to_string());
        let ctx = run(&sub, records, k, first);
        let files: Vec<(u32, PathBuf)> = (0..ctx.manifest.plan.array_size)
            .map(|i| (i, object_path(&sub, &ctx, i)))
            .collect();
        pyarrow_check(&files, first, k);
        if n == 0 {
            passed = files;
        }
    }
    // Every single-byte flip of one result: whatever verify passes (it should pass
    // none) must read back as the truth in pyarrow too.
    let ctx = run(&dir.path().join("flips"), 40, 40, 1);
    let path = object_path(&dir.path().join("flips"), &ctx, 0);
    let pristine = std::fs::read(&path).unwrap();
    let mut verified = Vec::new();
    for pos in 0..pristine.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = pristine.clone();
            b[pos] ^= mask;
            std::fs::write(&path, &b).unwrap();
            if verify(&ctx.manifest, ctx.store.as_ref(), 1).unwrap().ok {
                let copy = keep.path().join(format!("{pos}-{mask}.parquet"));
                std::fs::write(&copy, &b).unwrap();
                verified.push((0, copy));
            }
        }
    }
    std::fs::write(&path, &pristine).unwrap();
    verified.push((0, path));
    pyarrow_check(&verified, 1, 40);
    assert!(!passed.is_empty());
}
