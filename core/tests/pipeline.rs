//! End-to-end behaviour of the library: prepare, execute, verify, rerun.

use std::path::Path;

use tandem_core::executor::{self, ExecutorConfig, Task};
use tandem_core::names::{Stage, object_key};
use tandem_core::prepare::{PrepareOptions, prepare};
use tandem_core::stage::RunContext;
use tandem_core::verify::verify;
use tandem_core::workload;

fn opts(root: &Path, records: u64, k: u64) -> PrepareOptions {
    PrepareOptions {
        root: root.join("vol"),
        run_id: None,
        records,
        first_id: 1,
        ids_per_node: k,
        seed: 42,
        overwrite: false,
    }
}

fn bucket(root: &Path) -> std::sync::Arc<dyn tandem_core::store::ObjectStore> {
    tandem_core::store::open(&format!("file://{}", root.join("bucket").display())).unwrap()
}

/// Prepares and executes a run of `records` IDs, `k` per child.
fn executed_run(root: &Path, records: u64, k: u64) -> RunContext {
    let (layout, _) = prepare(&opts(root, records, k), bucket(root).as_ref()).unwrap();
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

#[test]
fn a_run_verifies_against_the_oracle_for_any_k() {
    for k in [1, 7, 40, 1000, 5000] {
        let dir = tempfile::tempdir().unwrap();
        let ctx = executed_run(dir.path(), 1000, k);
        let report = verify(&ctx.manifest, ctx.store.as_ref(), 2).unwrap();
        assert!(report.ok, "K={k}: {:?}", report.problems());
        // `python3 scripts/workload_oracle.py 1000`
        assert_eq!(report.checksum, 2_449_902_434);
        assert_eq!(report.rows, 1000);
    }
}

#[test]
fn verify_names_missing_and_duplicated_children() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = executed_run(dir.path(), 100, 10);
    let layout = ctx.layout.clone();
    let run = layout.run_id();
    // Lose child 3's result and duplicate child 5's into an extra key.
    ctx.store.delete(&object_key(run, 3)).unwrap();
    let five = ctx.store.get(&object_key(run, 5)).unwrap();
    ctx.store
        .put(&format!("{run}/results/extra.parquet"), five.clone())
        .unwrap();
    ctx.store.put(&object_key(run, 6), five).unwrap();
    let r = verify(&ctx.manifest, ctx.store.as_ref(), 2).unwrap();
    assert!(!r.ok);
    assert_eq!(r.missing_objects, vec![3]);
    assert_eq!(r.indices_with_missing_ids, vec![3, 6]);
    assert_eq!(r.missing_ids, 20);
    assert_eq!(r.duplicate_ids, 10);
    assert_eq!(r.indices_with_duplicate_ids, vec![5]);
    assert_eq!(r.unexpected_objects, vec![format!("{run}/results/extra.parquet")]);
    let text = r.problems().join("\n");
    assert!(text.contains("indices 3") && text.contains("duplicate"), "{text}");
}

#[test]
fn rerun_skips_finished_children_and_resumes_from_the_first_missing_stage() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = executed_run(dir.path(), 100, 10);
    let layout = ctx.layout.clone();
    assert!(executor::rerun_tasks(&ctx, 2).unwrap().is_empty());
    let run = layout.run_id();
    ctx.store.delete(&object_key(run, 2)).unwrap();
    ctx.store.delete(&object_key(run, 4)).unwrap();
    std::fs::remove_file(layout.stage_file(Stage::Process, 4)).unwrap();
    // A half-written stage-1 file for child 7 and a lost object.
    let p7 = layout.stage_file(Stage::Procure, 7);
    let b = std::fs::read(&p7).unwrap();
    std::fs::write(&p7, &b[..b.len() / 2]).unwrap();
    std::fs::remove_file(layout.stage_file(Stage::Process, 7)).unwrap();
    ctx.store.delete(&object_key(run, 7)).unwrap();
    let tasks = executor::rerun_tasks(&ctx, 2).unwrap();
    assert_eq!(
        tasks,
        vec![
            Task {
                index: 2,
                from: Stage::Egress
            },
            Task {
                index: 4,
                from: Stage::Process
            },
            Task {
                index: 7,
                from: Stage::Procure
            },
        ]
    );
    let ex = executor::execute(&ctx, &tasks, &ExecutorConfig::new(2, 1), &|_| {});
    assert!(ex.failures().is_empty());
    assert!(verify(&ctx.manifest, ctx.store.as_ref(), 2).unwrap().ok);
    assert!(executor::rerun_tasks(&ctx, 2).unwrap().is_empty());
}

#[test]
fn a_retried_child_overwrites_its_outputs_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = prepare(&opts(dir.path(), 50, 10), bucket(dir.path()).as_ref()).unwrap();
    let ctx = RunContext::open(layout.root(), layout.run_id(), None).unwrap();
    for attempt in 1..=3 {
        for stage in Stage::ALL {
            let c = ctx.run_child(stage, 1, attempt).unwrap();
            assert_eq!(c.history.last().unwrap().attempt, attempt);
        }
    }
    ctx.check_output(Stage::Egress, 1).unwrap();
    let object = ctx.store.get(&object_key(layout.run_id(), 1)).unwrap();
    let c = tandem_core::exchange::read_completion("object", &object).unwrap();
    assert_eq!(c.history.len(), 3);
    assert_eq!(c.digest, workload::expected(11, 10, 42));
}

#[test]
fn a_stage_refuses_input_from_another_child_or_run() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = prepare(&opts(dir.path(), 50, 10), bucket(dir.path()).as_ref()).unwrap();
    let ctx = RunContext::open(layout.root(), layout.run_id(), None).unwrap();
    ctx.run_child(Stage::Procure, 0, 1).unwrap();
    ctx.run_child(Stage::Procure, 1, 1).unwrap();
    // Child 0's file where child 1's should be.
    std::fs::copy(
        layout.stage_file(Stage::Procure, 0),
        layout.stage_file(Stage::Procure, 1),
    )
    .unwrap();
    let err = ctx.run_child(Stage::Process, 1, 1).unwrap_err().to_string();
    assert!(err.contains("child 0") && err.contains("expected run"), "{err}");
    // Process before procure: a clear not-found naming the file.
    let err = ctx.run_child(Stage::Process, 4, 1).unwrap_err();
    assert!(
        err.is_not_found() && err.to_string().contains("00004.parquet"),
        "{err}"
    );
}

#[test]
fn prepare_refuses_bad_input_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 0, 40);
    assert!(
        prepare(&o, bucket(dir.path()).as_ref())
            .unwrap_err()
            .to_string()
            .contains("--records")
    );
    o.records = 10;
    o.first_id = u64::MAX - 3;
    assert!(
        prepare(&o, bucket(dir.path()).as_ref())
            .unwrap_err()
            .to_string()
            .contains("--first-id")
    );
    o.first_id = 1;
    o.run_id = Some("same".parse().unwrap());
    prepare(&o, bucket(dir.path()).as_ref()).unwrap();
    assert!(
        prepare(&o, bucket(dir.path()).as_ref())
            .unwrap_err()
            .to_string()
            .contains("already exists")
    );
    // A root under a regular file cannot be created.
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    o.root = dir.path().join("file").join("vol");
    o.run_id = None;
    assert!(
        prepare(&o, bucket(dir.path()).as_ref())
            .unwrap_err()
            .to_string()
            .contains("not writable")
    );
}

#[test]
fn unknown_run_lists_the_runs_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 10, 5);
    o.run_id = Some("known-run".parse().unwrap());
    prepare(&o, bucket(dir.path()).as_ref()).unwrap();
    let err = RunContext::open(&o.root, &"nope".parse().unwrap(), None).unwrap_err();
    assert!(err.is_not_found());
    let msg = err.to_string();
    assert!(msg.contains("\"nope\"") && msg.contains("known-run"), "{msg}");
}

#[test]
fn a_truncated_id_file_is_refused_when_a_child_opens_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = prepare(&opts(dir.path(), 1000, 10), bucket(dir.path()).as_ref()).unwrap();
    let b = std::fs::read(layout.ids()).unwrap();
    std::fs::write(layout.ids(), &b[..b.len() - 20]).unwrap();
    let err = RunContext::open(layout.root(), layout.run_id(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ids.arrow"), "{err}");
}

/// A store that refuses to read one object (a denied request, or one that failed after
/// its retries), as a remote backend would.
#[derive(Debug)]
struct Refusing {
    inner: std::sync::Arc<dyn tandem_core::store::ObjectStore>,
    key: String,
}

impl tandem_core::store::ObjectStore for Refusing {
    fn put(&self, key: &str, data: bytes::Bytes) -> tandem_core::Result<()> {
        self.inner.put(key, data)
    }
    fn get(&self, key: &str) -> tandem_core::Result<bytes::Bytes> {
        if key == self.key {
            return Err(tandem_core::Error::Backend {
                op: "get",
                location: format!("s3://bucket/{key}"),
                message: "AccessDenied: Access Denied".into(),
            });
        }
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> tandem_core::Result<Vec<tandem_core::store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> tandem_core::Result<()> {
        self.inner.delete(key)
    }
    fn url(&self) -> String {
        "s3://bucket".into()
    }
}

#[test]
fn a_result_that_cannot_be_read_is_an_error_never_a_lost_child() {
    // A missing s3:GetObject (or a throttled bucket) must not make rerun resubmit every
    // child, nor verify blame the result: both stop, naming the object.
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = executed_run(dir.path(), 100, 10);
    let key = object_key(ctx.layout.run_id(), 3);
    ctx.store = std::sync::Arc::new(Refusing {
        inner: ctx.store.clone(),
        key: key.clone(),
    });
    let err = executor::rerun_tasks(&ctx, 2).unwrap_err().to_string();
    assert!(err.contains(&key) && err.contains("AccessDenied"), "{err}");
    let err = verify(&ctx.manifest, ctx.store.as_ref(), 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&key) && err.contains("AccessDenied"), "{err}");
}

#[test]
fn two_swapped_result_objects_fail_verify_naming_both_children() {
    // Same rows, same checksum, no ID missing or duplicated: only the check that
    // every ID is in its own child's object sees it.
    let dir = tempfile::tempdir().unwrap();
    let ctx = executed_run(dir.path(), 100, 10);
    let run = ctx.layout.run_id();
    let (a, b) = (object_key(run, 2), object_key(run, 5));
    let (ba, bb) = (ctx.store.get(&a).unwrap(), ctx.store.get(&b).unwrap());
    ctx.store.put(&a, bb).unwrap();
    ctx.store.put(&b, ba).unwrap();
    let v = verify(&ctx.manifest, ctx.store.as_ref(), 2).unwrap();
    assert!(!v.ok, "{v:?}");
    assert_eq!(v.indices_with_misplaced_ids, vec![2, 5]);
    assert_eq!((v.misplaced_ids, v.duplicate_ids, v.missing_ids), (20, 0, 0));
    assert_eq!((v.rows, v.checksum), (v.expected_rows, v.expected_checksum));
    assert!(
        v.problems().iter().any(|p| p.contains("indices 2, 5")),
        "{:?}",
        v.problems()
    );
    // Rerun's check of each object agrees: both are lost.
    let lost: Vec<u32> = executor::rerun_tasks(&ctx, 2)
        .unwrap()
        .iter()
        .map(|t| t.index)
        .collect();
    assert_eq!(lost, vec![2, 5]);
}
