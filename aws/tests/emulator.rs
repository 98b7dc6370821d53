//! Wire behaviour against the local AWS emulator (moto_server, started by
//! `scripts/emulator.sh`). A plain `cargo test` skips these (they are `#[ignore]`d
//! with the reason); `scripts/test.sh` runs them with `--include-ignored` under the
//! emulator. What moto cannot show (failed or stuck Batch children, throttling,
//! denied credentials) is tested with aws-smithy-mocks in `src/`.

use tandem_aws::fixtures::{batch_setup, bucket};
use tandem_aws::{Aws, batch, open_store, s3};
use tandem_core::executor::{self, ExecutorConfig};
use tandem_core::names::{PerStage, Stage};
use tandem_core::prepare::{PrepareOptions, prepare};
use tandem_core::stage::RunContext;
use tandem_core::store::{ObjectStore, suite};
use tandem_core::verify::verify;

fn aws() -> Aws {
    tandem_aws::fixtures::emulator()
}

#[test]
#[ignore = "needs the emulator: scripts/emulator.sh cargo test -p tandem-aws -- --include-ignored"]
fn s3_store_behaves_like_an_object_store() {
    let aws = aws();
    let url = bucket(&aws, "tandem-suite");
    let store = s3::S3Store::open(&aws, &format!("{url}/some/prefix")).unwrap();
    suite::put_get_list_overwrite_delete(&store);
    suite::concurrent_writers_each_land_whole(&store);
    // 1,100 objects list over two pages. The large object stays under the multipart
    // threshold: moto answers CompleteMultipartUpload with a root element the SDK
    // rejects (CompleteMultipartUploadResponse instead of ...Result), so multipart is
    // tested against aws-smithy-mocks in src/s3.rs.
    suite::many_and_large_objects(&store, 1100, 12 << 20);
    assert_eq!(store.url(), "s3://tandem-suite/some/prefix");
}

#[test]
#[ignore = "needs the emulator: scripts/emulator.sh cargo test -p tandem-aws -- --include-ignored"]
fn a_run_egresses_to_s3_and_verifies_exactly() {
    let aws = aws();
    let url = format!("{}/runs", bucket(&aws, "tandem-egress"));
    let dir = tempfile::tempdir().unwrap();
    let opts = PrepareOptions {
        root: dir.path().join("vol"),
        run_id: None,
        records: 1000,
        first_id: 1,
        ids_per_node: 40,
        seed: 42,
        overwrite: false,
    };
    let (layout, _) = prepare(&opts, open_store(&url).unwrap().as_ref()).unwrap();
    let ctx = RunContext::open_with(layout.root(), layout.run_id(), None, &open_store).unwrap();
    let ex = executor::execute(
        &ctx,
        &executor::all_tasks(25),
        &ExecutorConfig::new(4, 1),
        &|_| {},
    );
    assert!(ex.failures().is_empty(), "{:?}", ex.failures());
    let v = verify(&ctx.manifest, ctx.store.as_ref(), 4).unwrap();
    assert!(v.ok, "{:?}", v.problems());
    // `python3 scripts/workload_oracle.py 1000`
    assert_eq!(v.checksum, 2_449_902_434);
    // Objects are PREFIX/RUN_ID/results/IIIII.parquet, read back through S3.
    let keys = ctx.store.list(&format!("{}/results/", layout.run_id())).unwrap();
    assert_eq!(keys.len(), 25);
    assert_eq!(keys[7].key, format!("{}/results/00007.parquet", layout.run_id()));
    assert!(ctx.check_output(Stage::Egress, 7).is_ok());
    // Losing an object is found by verify and mended by rerun.
    ctx.store.delete(&keys[7].key).unwrap();
    assert_eq!(
        verify(&ctx.manifest, ctx.store.as_ref(), 4)
            .unwrap()
            .missing_objects,
        vec![7]
    );
    let tasks = executor::rerun_tasks(&ctx, 4).unwrap();
    assert_eq!(tasks.len(), 1);
    executor::execute(&ctx, &tasks, &ExecutorConfig::new(2, 1), &|_| {});
    assert!(verify(&ctx.manifest, ctx.store.as_ref(), 4).unwrap().ok);
}

#[test]
#[ignore = "needs the emulator: scripts/emulator.sh cargo test -p tandem-aws -- --include-ignored"]
fn a_missing_bucket_is_named_and_nothing_is_written() {
    let aws = aws();
    let err = s3::S3Store::open(&aws, "s3://no-such-bucket-here")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bucket \"no-such-bucket-here\" does not exist"),
        "{err}"
    );
    let err = open_store("s3://Bad_Name").err().unwrap().to_string();
    assert!(err.contains("is not valid"), "{err}");
}

fn spec(name: &str, array_size: u32) -> batch::SubmitSpec {
    batch::SubmitSpec {
        run_id: "20261128T000000Z-abc123".parse().unwrap(),
        array_size,
        queues: PerStage::splat(format!("{name}-queue")),
        job_definitions: PerStage::splat(format!("{name}-worker")),
        root: "/mnt/efs".into(),
        bucket: "s3://results/x".into(),
        attempts: Some(3),
        extra_env: vec![],
        name_suffix: String::new(),
    }
}

#[test]
#[ignore = "needs the emulator: scripts/emulator.sh cargo test -p tandem-aws -- --include-ignored"]
fn submit_sends_array_jobs_chained_n_to_n_and_watch_sees_them_finish() {
    let aws = aws();
    let client = batch_setup(&aws, "tandem-submit");
    let jobs = aws
        .block_on(batch::submit(&client, &spec("tandem-submit", 10_000)))
        .unwrap();
    assert_eq!(jobs.len(), 3);
    let ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    // What the service recorded: array size, N_TO_N on the previous stage, the environment.
    let described = aws
        .block_on(client.describe_jobs().set_jobs(Some(ids.clone())).send())
        .unwrap();
    for (i, job) in jobs.iter().enumerate() {
        let d = described
            .jobs()
            .iter()
            .find(|d| d.job_id() == Some(job.job_id.as_str()))
            .unwrap();
        assert_eq!(
            d.array_properties().and_then(|a| a.size()),
            Some(10_000),
            "stage {i}"
        );
        assert_eq!(
            d.job_name(),
            Some(batch::job_name("20261128T000000Z-abc123", Stage::ALL[i], "").as_str())
        );
        let deps = d.depends_on();
        if i == 0 {
            assert!(deps.is_empty());
        } else {
            assert_eq!(deps.len(), 1);
            assert_eq!(deps[0].job_id(), Some(ids[i - 1].as_str()));
            assert_eq!(deps[0].r#type().map(|t| t.as_str()), Some("N_TO_N"));
        }
        let env: Vec<(String, String)> = d
            .container()
            .map(|c| {
                c.environment()
                    .iter()
                    .map(|kv| (kv.name().unwrap_or("").into(), kv.value().unwrap_or("").into()))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            env.contains(&("TANDEM_STAGE".into(), Stage::ALL[i].name().into())),
            "{env:?}"
        );
        assert!(
            env.contains(&("TANDEM_ROOT".into(), "/mnt/efs".into())),
            "{env:?}"
        );
    }
    // moto runs no container and marks every job SUCCEEDED: watch must see exactly that.
    let pairs: Vec<(Stage, String)> = jobs.iter().map(|j| (j.stage, j.job_id.clone())).collect();
    let opts = batch::WatchOptions {
        interval: std::time::Duration::from_millis(50),
        max_interval: std::time::Duration::from_millis(200),
        stall_timeout: Some(std::time::Duration::from_secs(20)),
    };
    let polled = aws
        .block_on(batch::watch(&client, &pairs, opts, |_| {}))
        .unwrap()
        .unwrap();
    assert!(polled.report.finished && polled.report.succeeded, "{polled:?}");
    assert!(polled.failed.is_empty());
}

#[test]
#[ignore = "needs the emulator: scripts/emulator.sh cargo test -p tandem-aws -- --include-ignored"]
fn a_one_child_run_is_submitted_as_plain_jobs() {
    let aws = aws();
    let client = batch_setup(&aws, "tandem-plain");
    let jobs = aws
        .block_on(batch::submit(&client, &spec("tandem-plain", 1)))
        .unwrap();
    let ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    let described = aws
        .block_on(client.describe_jobs().set_jobs(Some(ids.clone())).send())
        .unwrap();
    for d in described.jobs() {
        assert!(d.array_properties().and_then(|a| a.size()).is_none(), "{d:?}");
    }
}

#[test]
#[ignore = "needs the emulator: scripts/emulator.sh cargo test -p tandem-aws -- --include-ignored"]
fn submitting_to_a_missing_queue_fails_and_names_it() {
    let aws = aws();
    let client = batch_setup(&aws, "tandem-missing");
    let mut s = spec("tandem-missing", 5);
    s.queues[Stage::Process] = "no-such-queue".into();
    let err = aws.block_on(batch::submit(&client, &s)).unwrap_err().to_string();
    assert!(err.contains("no-such-queue") && err.contains("process"), "{err}");
    assert!(err.contains("terminated"), "{err}");
}
