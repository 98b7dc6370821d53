//! The CLI against the local AWS emulator: egress to S3, submit and watch on Batch.
//! Ignored by a plain `cargo test`; `scripts/test.sh` runs them under
//! `scripts/emulator.sh` with `--include-ignored`.

use std::process::{Command, Output};

use serde::Deserialize;
use tandem_aws::fixtures;

/// Runs `tandem ARGS` in `dir` with every AWS call it makes recorded
/// (`TANDEM_AWS_CALL_LOG`), and fails the test if one is outside the command's IAM
/// contract (`iam/contract.json`).
fn tandem(dir: &std::path::Path, args: &[&str]) -> Output {
    let log = dir.join(format!("aws-calls-{}.jsonl", args[0]));
    let _ = std::fs::remove_file(&log);
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env_remove("TANDEM_BUCKET")
        .env("TANDEM_ROOT", dir.join("vol"))
        .env(tandem_aws::calls::CALL_LOG_ENV, &log)
        .current_dir(dir)
        .output()
        .unwrap();
    tandem_aws::calls::contract::assert_log_within(&log, &[]);
    out
}

/// The calls the last `tandem SUBCOMMAND` in `dir` made.
fn recorded(dir: &std::path::Path, subcommand: &str) -> Vec<tandem_aws::calls::Call> {
    tandem_aws::calls::read_log(&dir.join(format!("aws-calls-{subcommand}.jsonl"))).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `tandem prepare ARGS --bucket URL`; returns the run id.
fn prepare(dir: &std::path::Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["prepare"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--bucket", url]);
    let out = tandem(dir, &all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[derive(Deserialize)]
struct Loadtest {
    ok: bool,
    run_id: String,
    bucket: String,
    verify: Verify,
}

#[derive(Deserialize)]
struct Verify {
    ok: bool,
    checksum: u64,
    missing_objects: Vec<u32>,
}

#[derive(Deserialize)]
struct Submitted {
    run_id: String,
    array_size: u32,
    jobs: Vec<Job>,
}

#[derive(Deserialize)]
struct Job {
    stage: String,
    job_id: String,
}

#[derive(Deserialize)]
struct Watched {
    finished: bool,
    succeeded: bool,
    timed_out: bool,
    failed_indices: [Vec<u32>; 3],
}

#[test]
#[ignore = "needs the emulator"]
fn loadtest_egresses_to_s3_and_verify_reads_it_back() {
    let aws = fixtures::emulator();
    let url = format!("{}/team/a", fixtures::bucket(&aws, "tandem-cli-egress"));
    let dir = tempfile::tempdir().unwrap();
    let out = tandem(
        dir.path(),
        &[
            "loadtest",
            "--records",
            "1000",
            "--bucket",
            &url,
            "--keep",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lt: Loadtest = serde_json::from_slice(&out.stdout).unwrap();
    assert!(lt.ok && lt.verify.ok);
    assert_eq!(lt.verify.checksum, 2_449_902_434);
    assert_eq!(lt.bucket, "s3://tandem-cli-egress/team/a");
    let calls = recorded(dir.path(), "loadtest");
    tandem_aws::calls::contract::assert_within(
        &calls,
        &[
            ("ResultsBucket", "tandem-cli-egress"),
            ("ResultsPrefix", "team/a"),
        ],
    );
    assert!(
        calls.iter().any(|c| c.operation == "PutObject") && calls.iter().any(|c| c.operation == "GetObject")
    );
    // verify reads back from S3 (the manifest recorded the bucket)
    let out = tandem(dir.path(), &["verify", "--run", &lt.run_id, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // so does the report, for the timings in every result's completion record
    let html = dir.path().join("report.html");
    let out = tandem(
        dir.path(),
        &["report", "--run", &lt.run_id, "-o", html.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = recorded(dir.path(), "report");
    assert!(calls.iter().any(|c| c.operation == "GetObject"), "{calls:?}");
    tandem_aws::calls::contract::assert_within(
        &calls,
        &[
            ("ResultsBucket", "tandem-cli-egress"),
            ("ResultsPrefix", "team/a"),
        ],
    );
    // a lost object is named, and rerun puts it back
    let store = tandem_aws::open_store(&url).unwrap();
    store
        .delete(&format!("{}/results/00011.parquet", lt.run_id))
        .unwrap();
    let out = tandem(dir.path(), &["verify", "--run", &lt.run_id, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Verify = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.missing_objects, vec![11]);
    let out = tandem(dir.path(), &["rerun", "--run", &lt.run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        tandem(dir.path(), &["verify", "--run", &lt.run_id])
            .status
            .success()
    );
}

#[test]
#[ignore = "needs the emulator"]
fn the_s3_only_endpoint_variable_is_honoured() {
    let aws = fixtures::emulator();
    let url = fixtures::bucket(&aws, "tandem-s3-only-endpoint");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["loadtest", "--records", "100", "--bucket", &url, "--json"])
        .env_remove("TANDEM_BUCKET")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ENDPOINT_URL_S3", &endpoint)
        .env("TANDEM_ROOT", dir.path().join("vol"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lt: Loadtest = serde_json::from_slice(&out.stdout).unwrap();
    assert!(lt.ok && lt.verify.ok);
}

#[test]
#[ignore = "needs the emulator"]
fn a_run_id_whose_results_already_exist_in_the_bucket_is_refused() {
    let aws = fixtures::emulator();
    let url = fixtures::bucket(&aws, "tandem-shared-bucket");
    // Two machines (two volumes) share one bucket and pick the same run id.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let args = [
        "loadtest",
        "--records",
        "100",
        "--run-id",
        "nightly",
        "--bucket",
        &url,
        "--keep",
    ];
    let out = tandem(a.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tandem(b.path(), &args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("run \"nightly\" already exists in the bucket (3 result objects, its manifest")
            && stderr(&out).contains("--overwrite"),
        "{}",
        stderr(&out)
    );
    let mut with_overwrite = args.to_vec();
    with_overwrite.extend(["--overwrite", "--seed", "7"]);
    let out = tandem(b.path(), &with_overwrite);
    assert!(out.status.success(), "{}", stderr(&out));
    // Machine A's run now meets the other seed's objects: verify and rerun agree
    // that every child is wrong, and rerun puts A's results back.
    let out = tandem(a.path(), &["verify", "--run", "nightly", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let out = tandem(a.path(), &["rerun", "--run", "nightly", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rerun: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rerun["children_rerun"], 3);
    assert!(tandem(a.path(), &["verify", "--run", "nightly"]).status.success());
}

/// The game day's reports: `--report-to s3://` checks the bucket before the drill
/// (HeadBucket) and puts the HTML and JSON under drills/STACK/TIME/, every call inside
/// the game day's contract (s3:ListBucket on the bucket, s3:PutObject under drills/);
/// a bucket that does not exist stops it before any drilling.
#[test]
#[ignore = "needs the emulator"]
fn a_drill_keeps_its_reports_in_s3_within_the_game_days_contract() {
    let aws = fixtures::emulator();
    let url = format!("{}/drills", fixtures::bucket(&aws, "tandem-cli-gameday"));
    let dir = tempfile::tempdir().unwrap();
    let out = tandem(
        dir.path(),
        &[
            "dr-drill",
            "--products",
            "50",
            "--methods",
            "pitr",
            "--report-to",
            &url,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = tandem_aws::calls::contract::assert_log_within(
        &dir.path().join("aws-calls-dr-drill.jsonl"),
        &[("GameDayReports", "tandem-cli-gameday")],
    );
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(ops, ["HeadBucket", "PutObject", "PutObject"], "{calls:?}");
    assert!(calls.iter().all(|c| c.component == "tandem dr game day"));
    assert!(stderr(&out).contains("kept the report at s3://tandem-cli-gameday/drills/embedded/"));

    let out = tandem(
        dir.path(),
        &["dr-drill", "--report-to", "s3://tandem-nowhere/drills"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--report-to"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("pitr"), "it drilled: {}", stderr(&out));
}

#[test]
#[ignore = "needs the emulator"]
fn a_bucket_that_does_not_exist_fails_before_any_work() {
    let _aws = fixtures::emulator();
    let dir = tempfile::tempdir().unwrap();
    let out = tandem(
        dir.path(),
        &["loadtest", "--records", "100", "--bucket", "s3://tandem-nowhere"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bucket \"tandem-nowhere\" does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("vol").exists(),
        "a run was prepared for a bucket that does not exist"
    );
}

#[test]
#[ignore = "needs the emulator"]
fn submit_then_watch_a_run_on_batch() {
    let aws = fixtures::emulator();
    fixtures::batch_setup(&aws, "tandem-cli");
    let url = fixtures::bucket(&aws, "tandem-cli-batch");
    let dir = tempfile::tempdir().unwrap();
    let run_id = prepare(dir.path(), &url, &["--records", "400000"]);
    let submit = |run: &str| {
        tandem(
            dir.path(),
            &[
                "submit",
                "--run",
                run,
                "--queue",
                "tandem-cli-queue",
                "--job-definition",
                "tandem-cli-worker",
                "--container-root",
                "/mnt/efs",
            ],
        )
    };
    let out = submit(&run_id);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: Submitted = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((s.run_id.as_str(), s.array_size), (run_id.as_str(), 10_000));
    let stages: Vec<&str> = s.jobs.iter().map(|j| j.stage.as_str()).collect();
    assert_eq!(stages, ["procure", "process", "egress"]);
    // moto marks every job SUCCEEDED without running anything: watch says so.
    let out = tandem(
        dir.path(),
        &[
            "watch",
            "--run",
            &run_id,
            "--interval",
            "100ms",
            "--timeout",
            "20s",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let w: Watched = serde_json::from_slice(&out.stdout).unwrap();
    assert!(w.finished && w.succeeded && !w.timed_out);
    assert!(w.failed_indices.iter().all(Vec::is_empty));
    let ids: Vec<&str> = s.jobs.iter().map(|j| j.job_id.as_str()).collect();
    let out = tandem(
        dir.path(),
        &["watch", "--jobs", &ids.join(","), "--interval", "100ms"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // --costs describes every child (100 to a call, within watch's contract) and prices
    // the run; moto keeps no child jobs and no attempts, so nothing was billed.
    let small = prepare(dir.path(), &url, &["--records", "160"]);
    let out = submit(&small);
    assert!(out.status.success(), "{}", stderr(&out));
    let watch_costs = |region: &str| {
        tandem(
            dir.path(),
            &[
                "watch",
                "--run",
                &small,
                "--interval",
                "100ms",
                "--timeout",
                "20s",
                "--costs",
                "--price-region",
                region,
                "--json",
            ],
        )
    };
    let out = watch_costs("us-east-2");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages = v["costs"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3, "{v}");
    assert!(stages.iter().all(|s| s["billed_s"] == 0.0), "{v}");
    assert!(v["costs"]["costs"]["s3"].as_f64().unwrap() > 0.0, "{v}");
    // Costs that cannot be had (a region the price table lacks) are said; the watch's
    // own report and verdict stand.
    let out = watch_costs("eu-west-9");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["finished"] == true && v.get("costs").is_none(), "{v}");
    assert!(
        stderr(&out).contains("no region \"eu-west-9\""),
        "{}",
        stderr(&out)
    );
    let out = watch_costs("us-east-2");
    assert!(out.status.success(), "{}", stderr(&out));
    let describes = recorded(dir.path(), "watch")
        .iter()
        .filter(|c| c.operation == "DescribeJobs")
        .count();
    assert!(describes >= 3, "{describes}");
}

#[test]
#[ignore = "needs the emulator"]
fn submit_refuses_a_missing_queue_and_watch_an_unsubmitted_run() {
    let aws = fixtures::emulator();
    let url = fixtures::bucket(&aws, "tandem-cli-missing");
    let dir = tempfile::tempdir().unwrap();
    let run_id = prepare(dir.path(), &url, &["--records", "100", "--ids-per-node", "10"]);
    let out = tandem(
        dir.path(),
        &[
            "submit",
            "--run",
            &run_id,
            "--queue",
            "no-queue",
            "--job-definition",
            "d",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no-queue"), "{}", stderr(&out));
    let out = tandem(dir.path(), &["watch", "--run", &run_id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("was it submitted"), "{}", stderr(&out));
    let out = tandem(
        dir.path(),
        &[
            "submit",
            "--run",
            &run_id,
            "--queue",
            "a,b",
            "--job-definition",
            "d",
        ],
    );
    // clap refuses it before anything runs, naming the flag and the value.
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("'a,b' for '--queue")
            && stderr(&out).contains("three as procure,process,egress"),
        "{}",
        stderr(&out)
    );
}

#[derive(Deserialize)]
struct RerunOnAws {
    indices: Vec<u32>,
    index_map: Option<String>,
    jobs: Vec<Job>,
}

#[test]
#[ignore = "needs the emulator"]
fn rerun_on_aws_submits_a_compact_array_that_maps_back_to_the_lost_children() {
    let aws = fixtures::emulator();
    fixtures::batch_setup(&aws, "tandem-rerun");
    let url = fixtures::bucket(&aws, "tandem-cli-rerun");
    let dir = tempfile::tempdir().unwrap();
    let out = tandem(
        dir.path(),
        &[
            "loadtest",
            "--records",
            "1000",
            "--bucket",
            &url,
            "--keep",
            "--json",
        ],
    );
    let lt: Loadtest = serde_json::from_slice(&out.stdout).unwrap();
    let store = tandem_aws::open_store(&url).unwrap();
    for i in [3, 11] {
        store
            .delete(&format!("{}/results/{i:05}.parquet", lt.run_id))
            .unwrap();
    }
    let rerun = |extra: &[&str]| {
        let mut args = vec![
            "rerun",
            "--run",
            &lt.run_id,
            "--on",
            "aws",
            "--queue",
            "tandem-rerun-queue",
            "--job-definition",
            "tandem-rerun-worker",
        ];
        args.extend_from_slice(extra);
        tandem(dir.path(), &args)
    };
    let out = rerun(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: RerunOnAws = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r.indices, vec![3, 11]);
    assert_eq!(r.jobs.len(), 3);
    let map = r.index_map.unwrap();
    // moto runs no container: run the two array children of each stage as Batch would,
    // recording the worker's calls for its IAM contract (the job role).
    let worker_log = dir.path().join("aws-calls-worker-children.jsonl");
    for array_index in ["0", "1"] {
        for stage in ["procure", "process", "egress"] {
            let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
                .args(["worker", "--stage", stage, "--run", &lt.run_id])
                .env("TANDEM_ROOT", dir.path().join("vol"))
                .env("AWS_BATCH_JOB_ARRAY_INDEX", array_index)
                .env("TANDEM_INDEX_MAP", &map)
                .env(tandem_aws::calls::CALL_LOG_ENV, &worker_log)
                .output()
                .unwrap();
            assert!(out.status.success(), "{stage} {array_index}: {}", stderr(&out));
            // The stage files of children 3 and 11 survived: only egress had work to do.
            if stage != "egress" {
                assert!(
                    stderr(&out).contains("already complete; skipped"),
                    "{}",
                    stderr(&out)
                );
            }
        }
    }
    let worker = tandem_aws::calls::contract::assert_log_within(
        &worker_log,
        &[
            ("ResultsBucket", "tandem-cli-rerun"),
            ("ResultsPrefix", &lt.run_id),
        ],
    );
    assert!(
        worker
            .iter()
            .any(|c| c.component == "tandem worker" && c.operation == "PutObject"),
        "the worker's egress was not recorded: {worker:?}"
    );
    assert!(
        tandem(dir.path(), &["verify", "--run", &lt.run_id])
            .status
            .success()
    );
    tandem_aws::calls::contract::assert_within(
        &recorded(dir.path(), "verify"),
        &[
            ("ResultsBucket", "tandem-cli-rerun"),
            ("ResultsPrefix", &lt.run_id),
        ],
    );
    // Nothing left: no jobs submitted.
    let out = rerun(&[]);
    let r: RerunOnAws = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r.indices.is_empty() && r.jobs.is_empty());
}

#[test]
#[ignore = "needs the emulator"]
fn submit_and_watch_take_the_queues_and_definition_from_the_stack_outputs() {
    let aws = fixtures::emulator();
    fixtures::batch_setup(&aws, "tandem-stack");
    let url = fixtures::bucket(&aws, "tandem-stack-results");
    fixtures::stack(
        &aws,
        "TestPipelineStack",
        &[
            ("ProcureQueue", "tandem-stack-queue"),
            ("ProcessQueue", "tandem-stack-queue"),
            ("EgressQueue", "tandem-stack-queue"),
            ("JobDefinition", "tandem-stack-worker"),
            ("BucketUrl", &url),
            (
                "StateMachineArn",
                "arn:aws:states:us-east-1:123456789012:stateMachine:none",
            ),
            ("VolumePath", "/mnt/efs"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let run_id = prepare(dir.path(), &url, &["--records", "100"]);
    let out = tandem(
        dir.path(),
        &["submit", "--run", &run_id, "--stack", "TestPipelineStack"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s: Submitted = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s.jobs.len(), 3);
    // The containers get the stack's volume path, not this machine's --root.
    let batch = aws_sdk_batch::Client::new(aws.config());
    let job = aws
        .block_on(batch.describe_jobs().jobs(&s.jobs[0].job_id).send())
        .unwrap();
    let env = job.jobs()[0].container().unwrap().environment();
    assert!(
        env.iter()
            .any(|kv| kv.name() == Some("TANDEM_ROOT") && kv.value() == Some("/mnt/efs")),
        "{env:?}"
    );
    // A run the state machine started has no record: watch finds its jobs by name.
    std::fs::remove_file(dir.path().join("vol").join(&run_id).join("batch-jobs.json")).unwrap();
    let out = tandem(
        dir.path(),
        &[
            "watch",
            "--run",
            &run_id,
            "--stack",
            "TestPipelineStack",
            "--interval",
            "100ms",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let w: Watched = serde_json::from_slice(&out.stdout).unwrap();
    assert!(w.finished && w.succeeded);
    // A stack that is not there is named.
    let out = tandem(
        dir.path(),
        &["submit", "--run", &run_id, "--stack", "NoSuchStack"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("stack \"NoSuchStack\" not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[ignore = "needs the emulator"]
fn start_runs_the_stacks_state_machine_with_the_workload() {
    let aws = fixtures::emulator();
    let arn = fixtures::state_machine(&aws, "tandem-run");
    fixtures::stack(
        &aws,
        "TestStartStack",
        &[
            ("ProcureQueue", "q"),
            ("ProcessQueue", "q"),
            ("EgressQueue", "q"),
            ("JobDefinition", "d"),
            ("BucketUrl", "s3://b/runs"),
            ("StateMachineArn", &arn),
            ("VolumePath", "/mnt/efs"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = tandem(
        dir.path(),
        &[
            "start",
            "--stack",
            "TestStartStack",
            "--records",
            "1000",
            "--ids-per-node",
            "10",
            "--no-wait",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let started: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let execution = started["execution_arn"].as_str().unwrap().to_string();
    assert!(execution.contains(":execution:tandem-run:"), "{execution}");
    // The execution got the workload as its input.
    let sfn = aws_sdk_sfn::Client::new(aws.config());
    let d = aws
        .block_on(sfn.describe_execution().execution_arn(&execution).send())
        .unwrap();
    let input: serde_json::Value = serde_json::from_str(d.input().unwrap()).unwrap();
    assert_eq!(input, serde_json::json!({"records": 1000, "ids_per_node": 10}));
    // A workload over the array limit is refused before anything starts.
    let out = tandem(
        dir.path(),
        &[
            "start",
            "--stack",
            "TestStartStack",
            "--records",
            "1000000",
            "--ids-per-node",
            "10",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--ids-per-node 100"), "{}", stderr(&out));
}

/// `tandem COMMAND` as an operator runs it: no volume at all (`--root` names a
/// directory that does not exist and must still not exist afterwards).
fn operator(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    let nowhere = dir.join("no-volume");
    all.extend(["--root", nowhere.to_str().unwrap()]);
    let out = tandem(dir, &all);
    assert!(!nowhere.exists(), "tandem {} made {}", args[0], nowhere.display());
    out
}

#[test]
#[ignore = "needs the emulator"]
fn an_operator_watches_verifies_reports_and_reruns_from_the_stack_without_the_volume() {
    let aws = fixtures::emulator();
    fixtures::batch_setup(&aws, "tandem-op");
    let bucket = fixtures::bucket(&aws, "tandem-cli-operator");
    let url = format!("{bucket}/runs");
    let machine = fixtures::state_machine(&aws, "tandem-op-run");
    fixtures::stack(
        &aws,
        "TestOperatorStack",
        &[
            ("ProcureQueue", "tandem-op-queue"),
            ("ProcessQueue", "tandem-op-queue"),
            ("EgressQueue", "tandem-op-queue"),
            ("JobDefinition", "tandem-op-worker"),
            ("BucketUrl", &url),
            ("StateMachineArn", &machine),
            ("VolumePath", "/mnt/efs"),
        ],
    );
    // The deployment's side, on its volume: a run egressed to the stack's bucket and
    // its stages submitted (moto runs no container: loadtest did the work).
    let deployment = tempfile::tempdir().unwrap();
    let out = tandem(
        deployment.path(),
        &[
            "loadtest",
            "--records",
            "1000",
            "--bucket",
            &url,
            "--keep",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lt: Loadtest = serde_json::from_slice(&out.stdout).unwrap();
    let run = lt.run_id.as_str();
    let out = tandem(
        deployment.path(),
        &["submit", "--run", run, "--stack", "TestOperatorStack"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let submitted: Submitted = serde_json::from_slice(&out.stdout).unwrap();

    // The operator's side: only the stack's name.
    let op = tempfile::tempdir().unwrap();
    let stack = ["--stack", "TestOperatorStack"];
    let with =
        |cmd: &[&str]| -> Vec<String> { cmd.iter().chain(stack.iter()).map(|s| s.to_string()).collect() };
    let run_op = |cmd: &[&str]| {
        let args = with(cmd);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        operator(op.path(), &refs)
    };
    let out = run_op(&["verify", "--run", run, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Verify = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.ok && v.checksum == 2_449_902_434);
    let html = op.path().join("report.html");
    let out = run_op(&["report", "--run", run, "-o", html.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&html).unwrap().contains(run));
    // With --costs: the run's jobs found in the stack's queues, described and priced
    // (moto keeps no attempts: nothing billed), within the operator's contract.
    let out = run_op(&[
        "report",
        "--run",
        run,
        "-o",
        html.to_str().unwrap(),
        "--json",
        "--costs",
        "--price-region",
        "us-east-2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["costs"]["stages"].as_array().unwrap().len(), 3, "{r}");
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .contains("What the run cost on AWS")
    );
    // The jobs come from the record submit published in the bucket.
    let out = run_op(&["watch", "--run", run, "--json", "--interval", "50ms"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let w: Watched = serde_json::from_slice(&out.stdout).unwrap();
    assert!(w.finished && w.succeeded);
    let record: serde_json::Value = serde_json::from_slice(
        &tandem_aws::open_store(&url)
            .unwrap()
            .get(&format!("{run}/batch-jobs.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["submissions"][0]["jobs"][0]["job_id"],
        submitted.jobs[0].job_id.as_str()
    );

    // A lost result: verify names it; the repair runs inside the deployment.
    tandem_aws::open_store(&url)
        .unwrap()
        .delete(&format!("{run}/results/00003.parquet"))
        .unwrap();
    let out = run_op(&["verify", "--run", run, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Verify = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.missing_objects, vec![3]);
    let out = run_op(&["rerun", "--run", run, "--no-wait", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let started: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let execution = started["execution_arn"].as_str().unwrap().to_string();
    let sfn = aws_sdk_sfn::Client::new(aws.config());
    let d = aws
        .block_on(sfn.describe_execution().execution_arn(&execution).send())
        .unwrap();
    let input: serde_json::Value = serde_json::from_str(d.input().unwrap()).unwrap();
    assert_eq!(input, serde_json::json!({ "rerun": run }));
    assert!(
        recorded(op.path(), "rerun")
            .iter()
            .any(|c| c.component == "tandem rerun --stack"),
        "the rerun did not go through the state machine"
    );
    // A run that is in neither place is an error naming where it looked.
    let out = run_op(&["verify", "--run", "no-such-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no-such-run") && stderr(&out).contains("tandem-cli-operator"),
        "{}",
        stderr(&out)
    );
}
