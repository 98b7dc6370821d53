//! The drill's one driver on both backends: the embedded store for real, and DynamoDB
//! with AWS Backup through a fake account that behaves like the services over time
//! (tables CREATING for a while, a restorable window that lags, backups CREATING then
//! AVAILABLE, jobs that take minutes, a replica that takes a while, throttling), on
//! tokio's paused clock so hours of waiting take no time.

use std::sync::Mutex;
use std::time::Duration;

use tandem_dr::drill::embedded::EmbeddedBackend;
use tandem_dr::drill::fake_aws::{FakeAws, Faults};
use tandem_dr::drill::{Cleanup, DrillOptions, DrillReport, Method, Waiter, run};

/// The fake account's names for what the DR stack deploys (FakeAws::setup).
const STACK: [(&str, &str); 6] = [
    ("Region", "us-east-2"),
    ("RecoveryRegion", "us-east-1"),
    ("PrimaryVault", "tandem-dr-primary"),
    ("RecoveryVault", "tandem-dr-recovery"),
    ("BackupPlan", "plan-1"),
    ("BackupRole", "tandem-dr-backup"),
];

/// Every call the drill made on `aws` is inside `tandem dr-drill`'s IAM contract.
fn assert_calls_within_contract(aws: &FakeAws) {
    let calls = aws.calls();
    assert!(!calls.is_empty(), "the drill made no AWS call");
    tandem_sdk::calls::contract::assert_within(&calls, &STACK);
}

fn options(products: usize) -> DrillOptions {
    DrillOptions {
        primary_region: "us-east-2".parse().unwrap(),
        recovery_region: "us-east-1".parse().unwrap(),
        products,
        methods: Method::ALL.to_vec(),
        rto_target: Duration::from_secs(2 * 3600),
        rpo_target: Duration::from_secs(5),
        pitr_window_days: 35,
        answer_timeout: Duration::from_secs(300),
        wait_limit: Duration::from_secs(3 * 3600),
    }
}

/// Runs the drill on a fake account; returns the report, the progress it said, and
/// what it left in the account.
async fn fake_drill(faults: Faults, opts: &DrillOptions) -> (DrillReport, Vec<String>, Vec<String>) {
    let aws = FakeAws::new("us-east-2", "us-east-1", faults);
    let backend = aws.backend();
    let said = Mutex::new(Vec::new());
    let say = |s: String| said.lock().unwrap().push(s);
    let cleanup = Cleanup::new();
    let report = run(&backend, opts, &cleanup, &say).await.unwrap();
    assert_calls_within_contract(&aws);
    (report, said.into_inner().unwrap(), aws.leftovers())
}

fn method(r: &DrillReport, m: Method) -> &tandem_dr::drill::MethodResult {
    r.methods.iter().find(|x| x.method == m).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_recovers_exactly_on_the_embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::new(&dir.path().join("drill"), 35);
    let mut opts = options(500);
    opts.rto_target = Duration::from_secs(60);
    opts.answer_timeout = Duration::from_secs(30);
    let report = run(&backend, &opts, &Cleanup::new(), &|_| {}).await.unwrap();
    for m in &report.methods {
        assert!(m.passed, "{:?}: {:#?}", m.method, m.checks);
        assert!(m.canaries_acknowledged > 0, "{:?} wrote no canaries", m.method);
    }
    assert!(report.passed && report.left_behind.is_empty());
    // PITR restores to before the bad deploy: the canaries after it are lost.
    let pitr = method(&report, Method::Pitr);
    assert!(pitr.canaries_lost > 0 && pitr.rpo_ms > 0.0, "{pitr:?}");
    // Nothing is left in the regions.
    for region in ["us-east-2", "us-east-1"] {
        let tables = dir.path().join("drill").join(region).join("tables");
        let left: Vec<_> = std::fs::read_dir(&tables).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
        let backups = dir.path().join("drill").join(region).join("backups");
        let left: Vec<_> = std::fs::read_dir(&backups)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_method_passes_on_a_fake_account_that_takes_its_time() {
    let opts = options(300);
    let (report, said, left) = fake_drill(Faults::default(), &opts).await;
    for m in &report.methods {
        assert!(m.passed, "{:?}: {:#?}\n{:#?}", m.method, m.checks, m.steps);
    }
    assert!(report.passed);
    assert!(left.is_empty(), "left behind: {left:?}");
    // The drill waited as a real account makes it wait, and said so.
    let pitr = method(&report, Method::Pitr);
    assert!(
        pitr.rto_ms >= 20.0 * 60_000.0,
        "a PITR restore takes 20 minutes here: {}",
        pitr.rto_ms
    );
    assert!(
        said.iter()
            .any(|s| s.contains("waiting for the restorable window to pass the restore point")),
        "{said:#?}"
    );
    assert!(
        said.iter().any(|s| s.contains("refused for now")),
        "PITR right after CreateTable must be retried: {said:#?}"
    );
    assert!(
        said.iter()
            .any(|s| s.contains("to become AVAILABLE") && s.contains("CREATING")),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|s| s.contains("restore job") && s.contains("RUNNING")),
        "{said:#?}"
    );
    let scheduled = method(&report, Method::Scheduled);
    for c in [
        "daily at 09:10 UTC",
        "30-day retention",
        "copied to the recovery region",
    ] {
        assert!(
            scheduled.checks.iter().any(|x| x.name == c && x.ok),
            "{c}: {:#?}",
            scheduled.checks
        );
    }
    // The backup methods' canary rules follow the service's minute, not an exact
    // snapshot: writes within 40 s after the request are in the fake's backups.
    let backup = method(&report, Method::Backup);
    assert_eq!((backup.missing, backup.extra, backup.different), (0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried() {
    let faults = Faults {
        unprocessed_every: 3,
        ..Faults::default()
    };
    let mut opts = options(200);
    opts.methods = vec![Method::Backup, Method::PilotLight];
    let (report, _, left) = fake_drill(faults, &opts).await;
    assert!(report.passed, "{:#?}", report.methods);
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn a_restore_that_drops_items_fails_with_the_difference() {
    let faults = Faults {
        restore_drops: 3,
        ..Faults::default()
    };
    let opts = options(300);
    let (report, _, left) = fake_drill(faults, &opts).await;
    assert!(!report.passed);
    for m in [
        Method::Pitr,
        Method::Backup,
        Method::Scheduled,
        Method::CrossRegion,
    ] {
        let r = method(&report, m);
        assert!(!r.passed, "{m:?} passed a restore that lost items");
        assert_eq!(r.missing, 3, "{m:?}");
        let check = r.checks.iter().find(|c| c.name == "items match").unwrap();
        assert!(
            !check.ok && check.detail.contains("3 missing") && check.detail.contains("seed-"),
            "{check:?}"
        );
    }
    // The replicas lost nothing.
    assert!(method(&report, Method::PilotLight).passed);
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn a_replica_lagging_past_its_rpo_target_fails() {
    let faults = Faults {
        replica_lag: Duration::from_secs(30),
        ..Faults::default()
    };
    let mut opts = options(100);
    opts.methods = vec![Method::PilotLight, Method::WarmStandby];
    let (report, _, left) = fake_drill(faults, &opts).await;
    for m in &report.methods {
        assert!(!m.passed, "{:?}", m.method);
        let rpo = m.checks.iter().find(|c| c.name == "RPO within target").unwrap();
        assert!(!rpo.ok && rpo.detail.contains("target 5.0 s"), "{rpo:?}");
        // The data the replica held is right; only the loss is too large.
        assert!(m.checks.iter().find(|c| c.name == "items match").unwrap().ok);
        assert!(m.canaries_lost > 0);
    }
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_restore_job_fails_the_method_and_leaves_nothing() {
    let faults = Faults {
        fail_restore_jobs: true,
        ..Faults::default()
    };
    let mut opts = options(100);
    opts.methods = vec![Method::Scheduled, Method::CrossRegion, Method::Backup];
    let (report, _, left) = fake_drill(faults, &opts).await;
    for m in [Method::Scheduled, Method::CrossRegion] {
        let r = method(&report, m);
        assert!(!r.passed);
        let c = r.checks.iter().find(|c| c.name == "method completed").unwrap();
        assert!(c.detail.contains("FAILED: Access denied"), "{c:?}");
    }
    assert!(
        method(&report, Method::Backup).passed,
        "on-demand restores do not use restore jobs"
    );
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_drill_still_cleans_up_everything_it_made() {
    // Interrupt each method at points along its own timeline (mid-create, mid-backup,
    // mid-restore, mid-copy, mid-replica: fractions of how long it takes whole): the
    // caller then releases the registry, as the CLI does on Ctrl-C or SIGTERM.
    let mut points = 0;
    for method in Method::ALL {
        let mut opts = options(50);
        opts.methods = vec![method];
        let whole = {
            let aws = FakeAws::new("us-east-2", "us-east-1", Faults::default());
            let started = tokio::time::Instant::now();
            run(&aws.backend(), &opts, &Cleanup::new(), &|_| {})
                .await
                .unwrap();
            started.elapsed()
        };
        for stop_at in [Duration::from_secs(20), whole / 4, whole / 2, whole * 9 / 10] {
            let aws = FakeAws::new("us-east-2", "us-east-1", Faults::default());
            let backend = aws.backend();
            let cleanup = Cleanup::new();
            let interrupted = tokio::time::timeout(stop_at, run(&backend, &opts, &cleanup, &|_| {})).await;
            // The case happened: the drill was stopped mid-way, holding resources.
            assert!(
                interrupted.is_err(),
                "{method:?} finished within {stop_at:?} of {whole:?}: not an interruption"
            );
            let held = cleanup.pending();
            assert!(!held.is_empty(), "{method:?} at {stop_at:?} had made nothing");
            points += 1;
            let wait = Waiter {
                limit: Duration::from_secs(3600),
                poll: Duration::from_secs(5),
                max_poll: Duration::from_secs(60),
                say: &|_| {},
                cleanup: &cleanup,
            };
            let failed = cleanup.release(&backend, &wait).await;
            assert!(failed.is_empty(), "{method:?} at {stop_at:?}: {failed:?}");
            assert_calls_within_contract(&aws);
            // Jobs the drill could not stop have finished, as a later sweep would see them.
            let left = aws.leftovers();
            assert!(
                left.is_empty(),
                "{method:?} interrupted after {stop_at:?} of {whole:?} holding {held:?}: left {left:?}"
            );
        }
    }
    assert_eq!(points, 4 * Method::ALL.len());
}
