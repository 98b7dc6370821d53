//! Drives the built `tandem` binary and decodes its `--json` output into typed
//! structs, as users' scripts and state machines do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

/// `python3 scripts/workload_oracle.py 1000`
const ORACLE_1000: u64 = 2_449_902_434;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("vol")
    }
    fn bucket(&self) -> String {
        format!("file://{}", self.dir.path().join("bucket").display())
    }
    /// Runs tandem with `--root` and `--bucket` pointing into the temp dir.
    fn tandem(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
        cmd.args(args)
            .env_remove("TANDEM_ROOT")
            .env_remove("TANDEM_BUCKET")
            .env_remove("TANDEM_RUN_ID")
            .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
            .env_remove("AWS_BATCH_JOB_ATTEMPT")
            .env_remove("TANDEM_API_KEY")
            .env("TANDEM_ROOT", self.root())
            .env("TANDEM_BUCKET", self.bucket())
            .current_dir(self.dir.path());
        cmd.output().unwrap()
    }
    fn prepare(&self, records: &str, k: &str) -> Prepared {
        let out = self.tandem(&["prepare", "--records", records, "--ids-per-node", k]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[derive(Debug, Deserialize)]
struct Prepared {
    run_id: String,
    array_size: u32,
    step_fn_id: String,
    total_nodes: u32,
    run_dir: String,
}

#[derive(Debug, Deserialize)]
struct Loadtest {
    ok: bool,
    run_id: String,
    array_size: u32,
    kept: bool,
    stages: Vec<Stats>,
    execution: Execution,
    verify: Verify,
}

#[derive(Debug, Deserialize)]
struct Stats {
    stage: String,
    children: usize,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Deserialize)]
struct Execution {
    succeeded: [usize; 3],
    failed: [usize; 3],
    dependency_failed: [usize; 3],
    retries: u32,
    failures: Vec<Failure>,
}

#[derive(Debug, Deserialize)]
struct Failure {
    index: u32,
    stage: String,
    error: String,
}

#[derive(Debug, Deserialize)]
struct Verify {
    ok: bool,
    rows: u64,
    checksum: u64,
    expected_checksum: u64,
    missing_objects: Vec<u32>,
    indices_with_missing_ids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct Rerun {
    ok: bool,
    children_rerun: usize,
    from_stage: [usize; 3],
    skipped: u32,
}

fn loadtest(env: &Env, extra: &[&str]) -> (Output, Loadtest) {
    let mut args = vec!["loadtest", "--records", "1000", "--json"];
    args.extend_from_slice(extra);
    let out = env.tandem(&args);
    let lt: Loadtest = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} / {}", String::from_utf8_lossy(&out.stdout), stderr(&out)));
    (out, lt)
}

#[test]
fn loadtest_verifies_against_the_oracle_and_cleans_up() {
    let env = Env::new();
    let (out, lt) = loadtest(&env, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(lt.ok && lt.verify.ok);
    assert_eq!(lt.array_size, 25);
    assert_eq!(lt.verify.rows, 1000);
    assert_eq!(lt.verify.checksum, ORACLE_1000);
    assert_eq!(lt.verify.expected_checksum, ORACLE_1000);
    assert_eq!(lt.execution.succeeded, [25, 25, 25]);
    let names: Vec<&str> = lt.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["procure", "process", "egress"]);
    assert!(lt.stages.iter().all(|s| s.children == 25 && s.p99_ms >= s.p50_ms));
    assert!(!lt.kept);
    assert!(!env.root().join(&lt.run_id).exists(), "run directory left behind");
}

#[test]
fn loadtest_prints_a_summary_table_for_people() {
    let env = Env::new();
    let out = env.tandem(&["loadtest", "--records", "500", "--ids-per-node", "7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "72 children",
        "procure",
        "process",
        "egress",
        "p95 ms",
        "verified run",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn prepare_prints_the_run_with_the_original_field_names() {
    let env = Env::new();
    let p = env.prepare("400000", "40");
    assert_eq!(p.array_size, 10_000);
    assert_eq!(p.total_nodes, 10_000);
    assert_eq!(p.step_fn_id, p.run_id);
    // One ID file and a manifest; no per-child files or directories.
    let mut entries: Vec<String> = std::fs::read_dir(&p.run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(entries, ["ids.arrow", "manifest.json"]);
}

#[test]
fn workers_run_children_from_the_batch_environment_and_verify_names_the_rest() {
    let env = Env::new();
    let p = env.prepare("100", "10");
    for index in ["0", "1", "2"] {
        for stage in ["procure", "process", "egress"] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
            let out = cmd
                .args(["worker", "--stage", stage, "--run", &p.run_id])
                .env("TANDEM_ROOT", env.root())
                .env("AWS_BATCH_JOB_ARRAY_INDEX", index)
                .env("AWS_BATCH_JOB_ATTEMPT", "2")
                .output()
                .unwrap();
            assert!(out.status.success(), "{stage} {index}: {}", stderr(&out));
        }
    }
    let out = env.tandem(&["verify", "--run", &p.run_id, "--json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let v: Verify = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!v.ok);
    assert_eq!(v.missing_objects, (3..10).collect::<Vec<u32>>());
    assert_eq!(v.indices_with_missing_ids, (3..10).collect::<Vec<u32>>());
    assert_eq!(v.rows, 30);
    let out = env.tandem(&["verify", "--run", &p.run_id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("7 children have no result object: indices 3, 4"),
        "{text}"
    );
}

#[test]
fn worker_without_an_index_on_an_array_run_says_how_to_give_one() {
    let env = Env::new();
    let p = env.prepare("100", "10");
    let out = env.tandem(&["worker", "--stage", "procure", "--run", &p.run_id]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("AWS_BATCH_JOB_ARRAY_INDEX"),
        "{}",
        stderr(&out)
    );
    // A one-child run (a plain Batch job) needs no index.
    let one = env.prepare("5", "10");
    let out = env.tandem(&["worker", "--stage", "procure", "--run", &one.run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_child_that_fails_for_good_fails_the_run_and_rerun_finishes_it() {
    let env = Env::new();
    let (out, lt) = loadtest(&env, &["--inject-failure", "process:7", "--attempts", "2"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(!lt.ok && lt.kept);
    assert_eq!(lt.execution.failed, [0, 1, 0]);
    assert_eq!(lt.execution.dependency_failed, [0, 0, 1]);
    assert_eq!(lt.execution.succeeded, [25, 24, 24]);
    assert_eq!(lt.execution.retries, 1);
    assert_eq!(lt.execution.failures.len(), 1);
    let f = &lt.execution.failures[0];
    assert_eq!((f.index, f.stage.as_str()), (7, "process"));
    assert!(f.error.contains("injected"), "{}", f.error);
    assert!(stderr(&out).contains(&format!(
        "tandem rerun --root {} --run {}",
        env.root().display(),
        lt.run_id
    )));
    assert_eq!(lt.verify.missing_objects, vec![7]);

    let out = env.tandem(&["rerun", "--run", &lt.run_id, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Rerun = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r.ok);
    assert_eq!((r.children_rerun, r.skipped), (1, 24));
    assert_eq!(r.from_stage, [0, 1, 0], "rerun must resume child 7 at process");
    let out = env.tandem(&["verify", "--run", &lt.run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing left to do.
    let out = env.tandem(&["rerun", "--run", &lt.run_id, "--json"]);
    let r: Rerun = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r.children_rerun, 0);
}

#[test]
fn a_retried_child_succeeds_within_its_attempts() {
    let env = Env::new();
    let (out, lt) = loadtest(&env, &["--inject-failure", "egress:3:2", "--attempts", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(lt.ok);
    assert_eq!(lt.execution.retries, 2);
    assert_eq!(lt.verify.checksum, ORACLE_1000);
}

#[test]
fn report_writes_a_self_contained_html_file() {
    let env = Env::new();
    let (out, lt) = loadtest(&env, &["--keep"]);
    assert!(out.status.success());
    let html = env.dir.path().join("r.html");
    let out = env.tandem(&["report", "--run", &lt.run_id, "-o", html.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.contains("<svg") && text.contains(&lt.run_id));
    assert!(!text.contains("<script") && !text.contains("http"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("25 of 25 children have timings"));
}

#[test]
fn verify_catches_a_tampered_object() {
    let env = Env::new();
    let (_, lt) = loadtest(&env, &["--keep"]);
    let obj = Path::new(&env.dir.path().join("bucket"))
        .join(&lt.run_id)
        .join("results/00004.parquet");
    let other = obj.with_file_name("00005.parquet");
    std::fs::copy(&other, &obj).unwrap();
    let out = env.tandem(&["verify", "--run", &lt.run_id, "--json"]);
    assert_eq!(code(&out), 1);
    let v: Verify = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.indices_with_missing_ids, vec![4]);
    assert_ne!(v.checksum, ORACLE_1000);
}

#[test]
fn bad_input_is_refused_with_the_value_named() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["loadtest", "--records", "0"],
            "--records must be at least 1, got 0",
        ),
        (
            &["loadtest", "--ids-per-node", "0"],
            "--ids-per-node must be at least 1",
        ),
        (
            &["loadtest", "--records", "400001"],
            "use --ids-per-node 41 or more",
        ),
        (
            &["loadtest", "--records", "18446744073709551615"],
            "more than tandem accepts",
        ),
        (
            &["loadtest", "--attempts", "11"],
            "invalid value '11' for '--attempts <N>': 11 is not in 1..=10",
        ),
        (
            &["loadtest", "--workers", "0"],
            "invalid value '0' for '--workers <N>': 0 is not in 1..=1024",
        ),
        (
            &["loadtest", "--stage-concurrency", "1,2"],
            "invalid value '1,2' for '--stage-concurrency <A,B,C>'",
        ),
        (
            &["verify", "--run", "x", "--threads", "0"],
            "invalid value '0' for '--threads <N>': 0 is not in 1..=256",
        ),
        (
            &["loadtest", "--bucket", "file:relative"],
            "bucket \"file:relative\" starts like a URL",
        ),
        (
            &["loadtest", "--bucket", "s3://"],
            "bucket name \"\" in \"s3://\" is not valid",
        ),
        (
            &["loadtest", "--inject-failure", "bake:1"],
            "unknown stage \"bake\"",
        ),
        (
            &["loadtest", "--records", "10", "--inject-failure", "procure:5"],
            "the run has 1 children",
        ),
        (&["loadtest", "--bucket", "gs://b"], "gs://"),
        (
            &["worker", "--stage", "bake", "--run", "x"],
            "unknown stage \"bake\"",
        ),
        (
            &[
                "worker",
                "--stage",
                "procure",
                "--run",
                "no-such-run",
                "--index",
                "0",
            ],
            "run \"no-such-run\" not found",
        ),
        (&["verify", "--run", "../etc"], "run id \"../etc\" is not valid"),
        (
            &["loadtest", "--records", "abc"],
            "invalid value 'abc' for '--records",
        ),
    ];
    for (args, needle) in cases {
        let out = env.tandem(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: expected {needle:?} in {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{args:?} panicked");
    }
}

#[test]
fn an_unwritable_root_is_named() {
    let env = Env::new();
    std::fs::write(env.dir.path().join("f"), b"x").unwrap();
    let out = env.tandem(&["loadtest", "--records", "10", "--root", "f/vol"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--root f/vol is not writable"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_truncated_id_file_fails_the_worker_with_its_path() {
    let env = Env::new();
    let p = env.prepare("100", "10");
    let ids = Path::new(&p.run_dir).join("ids.arrow");
    let b = std::fs::read(&ids).unwrap();
    std::fs::write(&ids, &b[..b.len() / 2]).unwrap();
    let out = env.tandem(&["worker", "--stage", "procure", "--run", &p.run_id, "--index", "1"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("ids.arrow"), "{}", stderr(&out));
}

#[test]
fn a_foreign_parquet_file_is_refused_by_the_next_stage() {
    let env = Env::new();
    let p = env.prepare("100", "10");
    let out = env.tandem(&["worker", "--stage", "procure", "--run", &p.run_id, "--index", "2"]);
    assert!(out.status.success());
    // Stage-1 output where stage-2 output should be: wrong schema for egress.
    let src = Path::new(&p.run_dir).join("procure/02/00002.parquet");
    let dst = Path::new(&p.run_dir).join("process/02/00002.parquet");
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(&src, &dst).unwrap();
    let out = env.tandem(&["worker", "--stage", "egress", "--run", &p.run_id, "--index", "2"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("00002.parquet"), "{}", stderr(&out));
    // Garbage where a stage file should be.
    std::fs::write(&src, b"not parquet at all").unwrap();
    let out = env.tandem(&["worker", "--stage", "process", "--run", &p.run_id, "--index", "2"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("not a complete Parquet file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_lists_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for c in ["loadtest", "prepare", "worker", "verify", "rerun", "report"] {
        assert!(text.contains(c), "{c} missing from --help");
    }
}

#[derive(Debug, Deserialize)]
struct Drill {
    passed: bool,
    backend: String,
    methods: Vec<DrillMethod>,
}

#[derive(Debug, Deserialize)]
struct DrillMethod {
    method: String,
    passed: bool,
    rto_ms: f64,
    missing: usize,
    extra: usize,
    different: usize,
}

#[test]
fn dr_drill_runs_every_method_and_writes_its_report() {
    let env = Env::new();
    let report = env.dir.path().join("drill.html");
    let out = env.tandem(&[
        "dr-drill",
        "--region",
        "us-east-1",
        "--products",
        "300",
        "--json",
        "--dir",
        env.dir.path().to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--report-to",
        &format!("file://{}", env.dir.path().join("reports").display()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let d: Drill = serde_json::from_slice(&out.stdout).unwrap();
    assert!(d.passed);
    assert_eq!(d.backend, "embedded");
    let names: Vec<&str> = d.methods.iter().map(|m| m.method.as_str()).collect();
    assert_eq!(
        names,
        [
            "pitr",
            "backup",
            "scheduled",
            "cross-region",
            "pilot-light",
            "warm-standby"
        ]
    );
    for m in &d.methods {
        assert!(
            m.passed && m.rto_ms > 0.0 && m.missing + m.extra + m.different == 0,
            "{m:?}"
        );
    }
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<svg") && html.contains("pilot-light") && !html.contains("<script"));
    // --report-to kept both reports under embedded/TIME/.
    let kept: Vec<std::path::PathBuf> = std::fs::read_dir(env.dir.path().join("reports/embedded"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let stamp = kept[0].file_name().unwrap().to_str().unwrap().to_string();
    // A run id's shape: the stamp and a random suffix (YYYYMMDDTHHMMSSZ-xxxxxx).
    assert!(
        stamp.parse::<tandem_core::layout::RunId>().is_ok() && stamp.len() == 23,
        "{stamp}"
    );
    assert_eq!(
        std::fs::read_to_string(kept[0].join("report.html")).unwrap(),
        html
    );
    let json: Drill = serde_json::from_slice(&std::fs::read(kept[0].join("report.json")).unwrap()).unwrap();
    assert!(json.passed && json.methods.len() == 6);
    assert!(
        !env.dir.path().join("tandem-dr-drill").exists(),
        "the drill left its regions behind"
    );
}

#[test]
fn a_drill_stopped_by_sigterm_removes_what_it_made_and_exits_143() {
    use std::io::BufRead;
    let env = Env::new();
    let work = env.dir.path().join("work");
    // What a drill killed with SIGKILL left: removed, with a message, before starting.
    let stale = work.join("tandem-dr-drill/us-east-2/tables");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("Product-drill-pitr-1.redb"), b"half a table").unwrap();
    let reports = env.dir.path().join("reports");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["dr-drill", "--products", "300000", "--dir"])
        .arg(&work)
        .arg("--report-to")
        .arg(format!("file://{}", reports.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.contains("method pitr: starting");
        said.push(line);
        if started {
            break;
        }
    }
    assert!(
        said.iter()
            .any(|l| l.contains("left by a drill that did not finish")),
        "{said:?}"
    );
    // A second drill in the same directory is refused while the first runs.
    let second = env.tandem(&["dr-drill", "--products", "10", "--dir", work.to_str().unwrap()]);
    assert_eq!(code(&second), 2, "{}", stderr(&second));
    assert!(
        stderr(&second).contains("another drill is running in"),
        "{}",
        stderr(&second)
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM: stopping the drill")),
        "{rest:?}"
    );
    assert!(!rest.iter().any(|l| l.contains("left behind")), "{rest:?}");
    assert!(
        !work.join("tandem-dr-drill").exists(),
        "the stopped drill left its regions behind"
    );
    // What stopped it is kept where its report would have gone.
    let kept: Vec<_> = std::fs::read_dir(reports.join("embedded"))
        .unwrap()
        .map(|e| e.unwrap().path().join("error.json"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let error = std::fs::read_to_string(&kept[0]).unwrap();
    assert!(error.contains("SIGTERM"), "{error}");
}

#[test]
fn dr_drill_and_api_serve_refuse_bad_input() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["dr-drill", "--methods", "pitr,magic"],
            "unknown method \"magic\"",
        ),
        (&["dr-drill", "--region", "us-east-2"], "must be another one"),
        (
            &[
                "dr-drill",
                "--region",
                "us-east-1",
                "--stack",
                "DisasterRecoveryStack",
            ],
            "--stack is for --backend dynamodb",
        ),
        (
            &["dr-drill", "--backend", "dynamodb", "--dir", "x"],
            "--dir is for --backend embedded",
        ),
        (&["dr-drill", "--region", "Not A Region"], "Not A Region"),
        (
            &["dr-drill", "--publish-metrics"],
            "--publish-metrics is for a deployed stack",
        ),
        (
            &["dr-drill", "--backend", "dynamodb", "--publish-metrics"],
            "use it with --backend dynamodb --stack NAME",
        ),
        (&["dr-drill", "--report-to", "ftp://reports"], "ftp://"),
        (&["dr-drill", "--products", "0"], "--products 0 is out of range"),
        (
            &["dr-drill", "--pitr-window-days", "36"],
            "out of range: use 1 to 35",
        ),
        (
            &["api", "serve", "--addr", "0.0.0.0:0"],
            "refusing to serve on 0.0.0.0:0 without an API key",
        ),
    ];
    for (args, needle) in cases {
        let out = env.tandem(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

/// One HTTP/1.1 request over a plain socket; returns (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str, key: Option<&str>) -> (u16, String) {
    try_http(addr, method, path, body, key).unwrap()
}

/// One HTTP/1.1 request that may fail (the server may be gone): (status, body).
fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    key: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr)?;
    let key = key.map(|k| format!("x-api-key: {k}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{key}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes())?;
    let mut resp = String::new();
    conn.read_to_string(&mut resp)?;
    let status = resp
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {resp:?}")))?;
    Ok((status, resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string()))
}

/// A `tandem api serve` on a free loopback port, killed when dropped (a failing
/// test must not leave it running).
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Server {
    fn start(data: &Path, extra: &[&str]) -> Server {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["api", "serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .arg("--data-dir")
            .arg(data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server { child, addr }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn api_serve_answers_over_http_and_keeps_its_data() {
    let env = Env::new();
    let data = env.dir.path().join("dr");
    let mut server = Server::start(&data, &["--api-key", "k1"]);
    let addr = server.addr.clone();
    let (s, body) = http(
        &addr,
        "POST",
        "/addProduct",
        r#"{"product_category":"Books","product_title":"Dune"}"#,
        Some("k1"),
    );
    assert_eq!(s, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["product_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(http(&addr, "POST", "/addProduct", "{}", None).0, 401);
    let (s, body) = http(&addr, "POST", "/createBackup", "", Some("k1"));
    assert_eq!(s, 201, "{body}");
    assert!(body.contains("AVAILABLE"), "{body}");
    // Killed outright...
    server.kill();
    // ...a restarted server serves the same table.
    let mut server = Server::start(&data, &["--api-key", "k1"]);
    let addr = server.addr.clone();
    let (s, body) = http(&addr, "GET", &format!("/getProduct?product_id={id}"), "", None);
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("Dune"));
    // SIGTERM stops it cleanly.
    let term = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn every_acknowledged_write_survives_a_kill_9_under_load() {
    use std::sync::{Arc, Mutex};
    let env = Env::new();
    let data = env.dir.path().join("dr");
    let mut server = Server::start(&data, &[]);
    // 16 writers, each POSTing until the server is gone; what was acknowledged
    // (a 201 with its id) is recorded with the title it wrote.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (addr, acked) = (server.addr.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let title = format!("w{w}-{i}");
                    let body = format!(r#"{{"product_category":"Crash","product_title":"{title}"}}"#);
                    match try_http(&addr, "POST", "/addProduct", &body, None) {
                        Ok((201, b)) => {
                            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
                            let id = v["product_id"].as_str().unwrap().to_string();
                            acked.lock().unwrap().push((id, title));
                        }
                        Ok((s, b)) => panic!("a write was refused: {s} {b}"),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 300 {
        assert!(
            !writers.iter().all(|w| w.is_finished()),
            "the writers stopped early"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.kill();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let server = Server::start(&data, &[]);
    for (id, title) in &acked {
        let (s, body) = http(
            &server.addr,
            "GET",
            &format!("/getProduct?product_id={id}"),
            "",
            None,
        );
        assert_eq!(s, 200, "acknowledged write {id} ({title}) was lost: {body}");
        assert!(body.contains(title.as_str()), "{id}: {body}");
    }
}

#[test]
fn a_closed_stdout_exits_0_and_a_closed_stderr_does_not_panic() {
    let env = Env::new();
    let (_, lt) = loadtest(&env, &["--keep"]);
    for (stdout_closed, args) in [
        (true, vec!["verify", "--run", lt.run_id.as_str(), "--json"]),
        (true, vec!["verify", "--run", lt.run_id.as_str()]),
        (false, vec!["verify", "--run", "no-such-run"]),
        (false, vec!["rerun", "--run", lt.run_id.as_str()]),
    ] {
        // A pipe whose reading end is gone: every write to it fails with EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
        cmd.args(&args)
            .env("TANDEM_ROOT", env.root())
            .env("TANDEM_BUCKET", env.bucket())
            .current_dir(env.dir.path());
        if stdout_closed {
            cmd.stdout(writer);
        } else {
            cmd.stderr(writer);
        }
        let out = cmd.output().unwrap();
        let text = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(!text.contains("panicked"), "{args:?}: {text}");
        let want = if args[2] == "no-such-run" { 2 } else { 0 };
        assert_eq!(code(&out), want, "{args:?}: {text}");
    }
}

#[test]
fn a_run_id_whose_results_exist_in_the_bucket_is_refused_unless_overwritten() {
    let env = Env::new();
    let (out, _) = loadtest(&env, &["--run-id", "nightly", "--keep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Another volume (another machine), the same bucket.
    let other = env.dir.path().join("vol2");
    let args = [
        "prepare",
        "--records",
        "1000",
        "--run-id",
        "nightly",
        "--root",
        other.to_str().unwrap(),
    ];
    let out = env.tandem(&args);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out)
            .contains("run \"nightly\" already exists in the bucket (25 result objects, its manifest"),
        "{}",
        stderr(&out)
    );
    assert!(
        !other.join("nightly").exists(),
        "a refused prepare left its run behind"
    );
    let mut again = args.to_vec();
    again.push("--overwrite");
    let out = env.tandem(&again);
    assert!(out.status.success(), "{}", stderr(&out));
    // The first run's results are gone: its verify says so, by child.
    let out = env.tandem(&["verify", "--run", "nightly", "--json"]);
    let v: Verify = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.missing_objects.len(), 25);
}

#[test]
fn a_foreign_or_altered_id_file_stops_every_command_before_it_runs() {
    let env = Env::new();
    let (_, lt) = loadtest(&env, &["--keep"]);
    // Another run with the same count but other IDs.
    let out = env.tandem(&[
        "prepare",
        "--records",
        "1000",
        "--first-id",
        "5001",
        "--run-id",
        "other",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids = env.root().join(&lt.run_id).join("ids.arrow");
    std::fs::copy(env.root().join("other/ids.arrow"), &ids).unwrap();
    let before = std::fs::read(
        env.dir
            .path()
            .join("bucket")
            .join(&lt.run_id)
            .join("results/00000.parquet"),
    )
    .unwrap();
    for args in [
        vec!["verify", "--run", lt.run_id.as_str()],
        vec!["rerun", "--run", lt.run_id.as_str()],
        vec![
            "worker",
            "--run",
            lt.run_id.as_str(),
            "--stage",
            "procure",
            "--index",
            "3",
        ],
    ] {
        let out = env.tandem(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("ids.arrow: does not hold this run's IDs: position"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let after = std::fs::read(
        env.dir
            .path()
            .join("bucket")
            .join(&lt.run_id)
            .join("results/00000.parquet"),
    )
    .unwrap();
    assert_eq!(before, after, "a result was rewritten from a foreign ID file");
}

#[test]
fn verify_names_children_with_wrong_values_and_unreadable_objects() {
    let env = Env::new();
    let (_, lt) = loadtest(&env, &["--keep"]);
    // A result of another seed where child 2's should be: the same IDs, other values.
    let out = env.tandem(&[
        "loadtest",
        "--records",
        "1000",
        "--seed",
        "7",
        "--run-id",
        "seven",
        "--keep",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let results = env.dir.path().join("bucket");
    std::fs::copy(
        results.join("seven/results/00002.parquet"),
        results.join(&lt.run_id).join("results/00002.parquet"),
    )
    .unwrap();
    // A directory where child 9's object should be.
    let nine = results.join(&lt.run_id).join("results/00009.parquet");
    std::fs::remove_file(&nine).unwrap();
    std::fs::create_dir(&nine).unwrap();
    let out = env.tandem(&["verify", "--run", &lt.run_id, "--json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["indices_with_wrong_values"], serde_json::json!([2]));
    assert_eq!(v["wrong_values"], 40);
    assert_eq!(v["unreadable_objects"][0][0], 9);
    assert!(
        v["unreadable_objects"][0][1]
            .as_str()
            .unwrap()
            .contains("Is a directory"),
        "{v}"
    );
    // rerun agrees: child 2 is redone (its object is a stale one, not complete).
    std::fs::remove_dir(&nine).unwrap();
    let out = env.tandem(&["rerun", "--run", &lt.run_id, "--json"]);
    let r: Rerun = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((r.children_rerun, r.from_stage), (2, [0, 0, 2]));
    assert!(env.tandem(&["verify", "--run", &lt.run_id]).status.success());
}

/// A drill that cannot run still keeps what stopped it (`error.json`) where the game
/// day's reports go, and exits 2: here its regions are the same one.
#[test]
fn a_drill_that_cannot_run_keeps_its_error_with_the_reports() {
    let env = Env::new();
    let reports = env.dir.path().join("reports");
    let out = env.tandem(&[
        "dr-drill",
        "--region",
        "us-east-2",
        "--report-to",
        &format!("file://{}", reports.display()),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let kept: Vec<std::path::PathBuf> = std::fs::read_dir(reports.join("embedded"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let error: serde_json::Value =
        serde_json::from_slice(&std::fs::read(kept[0].join("error.json")).unwrap()).unwrap();
    assert_eq!(error["passed"], false);
    assert!(
        error["error"].as_str().unwrap().contains("must be another one"),
        "{error}"
    );
    assert!(!kept[0].join("report.json").exists());
}

/// `tandem plan`: the model's answer with its inputs, the cheapest K within a target,
/// and the inputs it refuses, each named.
#[test]
fn plan_estimates_a_run_and_finds_the_cheapest_split_within_a_target() {
    let env = Env::new();
    let out = env.tandem(&["plan", "--records", "400000", "--ids-per-node", "40", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["estimate"]["children"], 10_000);
    assert_eq!(v["estimate"]["container_starts"], 30_000);
    assert_eq!(v["estimate"]["billed_s_per_task"], 60.0);
    // 30,000 tasks billed a minute each at 0.25 vCPU and 0.5 GB.
    let compute = v["estimate"]["costs"]["compute"].as_f64().unwrap();
    assert!((compute - 6.17125).abs() < 1e-6, "{compute}");
    assert_eq!(v["inputs"]["platform"]["startup_s"], 40.0);
    assert_eq!(v["inputs"]["prices"]["fargate_vcpu_hour"], 0.04048);

    let out = env.tandem(&["plan", "--within", "30m", "--work-ms-per-id", "10", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let k = v["cheapest"]["ids_per_node"].as_u64().unwrap();
    assert!(v["cheapest"]["estimate"]["wall_s"].as_f64().unwrap() <= 1800.0);
    assert!(k > 40 && k < 400_000, "{k}");
    let text = env.tandem(&["plan", "--within", "10s"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("no IDs per child finishes in time"));

    let prices = env.dir.path().join("prices.json");
    std::fs::write(
        &prices,
        r#"{"as_of": "x", "regions": {"us-east-2": {"fargate_vcpu_hour": "cheap"}}}"#,
    )
    .unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["plan", "--ids-per-node", "10"],
            "40000 children, over AWS Batch's 10000: use --ids-per-node 40",
        ),
        (&["plan", "--region", "eu-west-9"], "no region \"eu-west-9\""),
        (&["plan", "--records", "0"], "both must be at least 1"),
        (&["plan", "--startup=-1"], "--startup -1 is out of range"),
        (&["plan", "--max-vcpus", "0"], "--max-vcpus 0"),
        (&["plan", "--prices", prices.to_str().unwrap()], "price table"),
        (
            &["plan", "--prices", "/nonexistent/prices.json"],
            "reading --prices",
        ),
    ];
    for (args, needle) in cases {
        let out = env.tandem(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}
