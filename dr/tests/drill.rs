//! The drill's one driver on both backends: the embedded store for real (two servers
//! on loopback ports for the failover methods), and DynamoDB with AWS Backup, the
//! standby's switch and the deployed APIs through a fake account that behaves like
//! the services over time (tables CREATING for a while, a restorable window that
//! lags, backups CREATING then AVAILABLE, jobs that take minutes, a global table that
//! replicates each item on its own lag, a plan that backs up at 09:10 every day,
//! throttling), on tokio's paused clock so hours of waiting take no time.

use std::sync::Mutex;
use std::time::Duration;

use tandem_dr::drill::embedded::EmbeddedBackend;
use tandem_dr::drill::fake_aws::{FakeAws, Faults};
use tandem_dr::drill::{
    CheckKind, Cleanup, DrillOptions, DrillReport, Method, MethodResult, StandbyMode, Waiter, run,
};

/// Every call on `aws` is inside its component's IAM contract (the drill's, and the
/// deployed APIs' own as the product-api function's).
fn assert_calls_within_contract(aws: &FakeAws) {
    let calls = aws.calls();
    assert!(!calls.is_empty(), "no AWS call was made");
    let names = aws.stack_names();
    let bindings: Vec<(&str, &str)> = names.iter().map(|(k, v)| (*k, v.as_str())).collect();
    tandem_sdk::calls::contract::assert_within(&calls, &bindings);
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

/// A fake account whose standby suits `methods` (a warm standby with DNS when they
/// drill one, else a pilot light without).
fn account_for(methods: &[Method], faults: Faults) -> FakeAws {
    if methods.contains(&Method::WarmStandby) {
        FakeAws::deployed("us-east-2", "us-east-1", faults, StandbyMode::WarmStandby, true)
    } else {
        FakeAws::new("us-east-2", "us-east-1", faults)
    }
}

/// Runs the drill on `aws`; returns the report, the progress it said, and what it
/// left in the account.
async fn drill_on(aws: &FakeAws, opts: &DrillOptions) -> (DrillReport, Vec<String>, Vec<String>) {
    let backend = aws.backend();
    let said = Mutex::new(Vec::new());
    let say = |s: String| said.lock().unwrap().push(s);
    let report = run(&backend, opts, &Cleanup::new(), &say).await.unwrap();
    assert_calls_within_contract(aws);
    assert_eq!(
        aws.refused().by_waf,
        0,
        "the drill tripped the web ACL's rate rule"
    );
    (report, said.into_inner().unwrap(), aws.leftovers())
}

async fn fake_drill(faults: Faults, opts: &DrillOptions) -> (DrillReport, Vec<String>, Vec<String>) {
    drill_on(&account_for(&opts.methods, faults), opts).await
}

/// Runs one method on a fake account with `faults`; returns its result and what
/// was left in the account.
async fn drill_one(m: Method, products: usize, faults: Faults) -> (MethodResult, Vec<String>) {
    let mut opts = options(products);
    opts.methods = vec![m];
    let (report, _, left) = fake_drill(faults, &opts).await;
    (method(&report, m).clone(), left)
}

fn method(r: &DrillReport, m: Method) -> &MethodResult {
    r.methods.iter().find(|x| x.method == m).unwrap()
}

fn check(m: &MethodResult, kind: CheckKind) -> &tandem_dr::drill::Check {
    m.checks
        .get(kind)
        .unwrap_or_else(|| panic!("{:?} made no {kind:?} check: {:#?}", m.method, m.checks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_recovers_exactly_on_the_embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DrillOptions {
        rto_target: Duration::from_secs(60),
        answer_timeout: Duration::from_secs(30),
        ..options(500)
    };
    let backend = EmbeddedBackend::new(
        &dir.path().join("drill"),
        35,
        &opts.primary_region,
        &opts.recovery_region,
    );
    let report = run(&backend, &opts, &Cleanup::new(), &|_| {}).await.unwrap();
    for m in &report.methods {
        assert!(m.passed, "{:?}: {:#?}\n{:#?}", m.method, m.checks, m.steps);
    }
    assert!(report.passed && report.left_behind.is_empty());
    for m in [
        Method::Pitr,
        Method::Backup,
        Method::CrossRegion,
        Method::PilotLight,
        Method::WarmStandby,
    ] {
        assert!(
            method(&report, m).canaries_acknowledged > 0,
            "{m:?} wrote no canaries"
        );
    }
    // PITR restores to before the bad deploy: the canaries after it are lost.
    let pitr = method(&report, Method::Pitr);
    assert!(pitr.canaries_lost > 0 && pitr.rpo_ms > 0.0, "{pitr:?}");
    // The scheduled method restored the plan's own backup and compared it with the
    // table as it was then (the table has moved on since).
    assert!(check(method(&report, Method::Scheduled), CheckKind::PlanRecoveryPoint).ok);
    // Both failover methods went over and back.
    for m in [Method::PilotLight, Method::WarmStandby] {
        let r = method(&report, m);
        for kind in [
            CheckKind::StandbyAsDeployed,
            CheckKind::ReplicaConverged,
            CheckKind::FailedOver,
            CheckKind::WritesInRecovery,
            CheckKind::LastWriterWins,
        ] {
            assert!(check(r, kind).ok, "{m:?} {kind:?}");
        }
    }
    // The embedded plan's backup is an instant: nothing written about its start is
    // left out, and the verdict says nothing of items not judged.
    let scheduled = method(&report, Method::Scheduled);
    assert!(
        scheduled
            .steps
            .iter()
            .any(|s| s.what.contains("(0 written within")),
        "{:#?}",
        scheduled.steps
    );
    let items = check(scheduled, CheckKind::ItemsMatch);
    assert!(items.ok && !items.detail.contains("not judged"), "{items:?}");
    // Nothing is left in the regions.
    for region in ["us-east-2", "us-east-1"] {
        for sub in ["tables", "backups"] {
            let d = dir.path().join("drill").join(region).join(sub);
            let left: Vec<_> = std::fs::read_dir(&d).into_iter().flatten().flatten().collect();
            assert!(left.is_empty(), "{}: {left:?}", d.display());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn every_method_passes_on_a_fake_account_that_takes_its_time() {
    let mut opts = options(300);
    opts.methods = vec![
        Method::Pitr,
        Method::Backup,
        Method::Scheduled,
        Method::CrossRegion,
        Method::PilotLight,
    ];
    let (report, said, left) = fake_drill(Faults::default(), &opts).await;
    let mut warm = options(300);
    warm.methods = vec![Method::WarmStandby];
    let (warm_report, _, warm_left) = fake_drill(Faults::default(), &warm).await;
    for m in report.methods.iter().chain(&warm_report.methods) {
        assert!(m.passed, "{:?}: {:#?}\n{:#?}", m.method, m.checks, m.steps);
    }
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(warm_left.is_empty(), "left behind: {warm_left:?}");
    // The drill waited as a real account makes it wait, and said so.
    let pitr = method(&report, Method::Pitr);
    assert!(
        pitr.rto_ms >= 20.0 * 60_000.0,
        "a PITR restore takes 20 minutes here: {}",
        pitr.rto_ms
    );
    for waited in [
        "waiting for the restorable window to pass the restore point",
        "refused for now",
        "to become AVAILABLE: CREATING",
        "RUNNING",
    ] {
        assert!(said.iter().any(|s| s.contains(waited)), "{waited}: {said:#?}");
    }
    // The scheduled method restored a recovery point the plan made, checked its rule,
    // and reports its RPO as the point's age (up to a day), not canaries.
    let scheduled = method(&report, Method::Scheduled);
    for kind in [
        CheckKind::PlanRecoveryPoint,
        CheckKind::PlanSchedule,
        CheckKind::PlanRetention,
        CheckKind::PlanCopy,
    ] {
        assert!(check(scheduled, kind).ok, "{kind:?}");
    }
    assert!(
        check(scheduled, CheckKind::PlanRecoveryPoint)
            .detail
            .contains("plan-1")
    );
    assert!(scheduled.rpo_ms > 3_600_000.0 && scheduled.rpo_ms < 26.0 * 3_600_000.0);
    assert!(!scheduled.rpo_judged && scheduled.rpo_guarantee.contains("09:10"));
    // An item written ten seconds into the plan's backup is left out of the verdict.
    assert!(
        check(scheduled, CheckKind::ItemsMatch)
            .detail
            .contains("not judged")
    );
    // The backup methods' canary rules follow the service's minute, not an exact
    // snapshot: writes within 40 s after the request are in the fake's backups.
    let backup = method(&report, Method::Backup);
    assert_eq!((backup.missing, backup.extra, backup.different), (0, 0, 0));
    // The pilot light was off until the failover; the warm standby answered.
    assert!(
        check(method(&report, Method::PilotLight), CheckKind::StandbyAsDeployed)
            .detail
            .contains("answered nothing")
    );
    let warm = method(&warm_report, Method::WarmStandby);
    assert!(
        check(warm, CheckKind::FailedOver)
            .detail
            .contains("products.example.fake")
    );
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_delivers_out_of_order_passes_within_the_target_and_fails_beyond_it() {
    // Each write reaches the standby on its own lag of up to 3 s: out of order, but
    // within the 5 s target. An in-order check would call the gaps lost.
    let (m, left) = drill_one(
        Method::PilotLight,
        100,
        Faults {
            replica_lag: Some(Duration::from_secs(3)),
            ..Faults::default()
        },
    )
    .await;
    let m = &m;
    assert!(m.passed, "{:#?}", m.checks);
    assert!(left.is_empty(), "{left:?}");
    // Up to 30 s: writes older than the target are missing at the disaster.
    let (m, left) = drill_one(
        Method::PilotLight,
        100,
        Faults {
            replica_lag: Some(Duration::from_secs(30)),
            ..Faults::default()
        },
    )
    .await;
    let m = &m;
    assert!(!m.passed);
    let converged = check(m, CheckKind::ReplicaConverged);
    assert!(
        !converged.ok && converged.detail.contains("over 5.0 s before the disaster"),
        "{converged:?}"
    );
    let rpo = check(m, CheckKind::RpoWithinTarget);
    assert!(!rpo.ok && rpo.detail.contains("target 5.0 s"), "{rpo:?}");
    assert!(m.canaries_lost > 0);
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn a_plan_that_made_no_recovery_point_fails_naming_the_plan_and_the_vault() {
    let (m, left) = drill_one(
        Method::Scheduled,
        50,
        Faults {
            plan_makes_no_points: true,
            ..Faults::default()
        },
    )
    .await;
    let m = &m;
    assert!(!m.passed);
    let c = check(m, CheckKind::PlanRecoveryPoint);
    assert!(
        !c.ok && c.detail.contains("plan-1") && c.detail.contains("tandem-dr-primary"),
        "{c:?}"
    );
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn a_standby_that_is_switched_off_and_never_switched_on_fails() {
    let (m, _) = drill_one(
        Method::PilotLight,
        50,
        Faults {
            standby_stays_off: true,
            ..Faults::default()
        },
    )
    .await;
    let m = &m;
    assert!(!m.passed);
    let c = check(m, CheckKind::FailedOver);
    assert!(
        !c.ok && c.detail.contains("still switched off") && c.detail.contains("standby-api"),
        "{c:?}"
    );

    // A failover that did not happen still reports what the replica had lost by then.
    let (m, _) = drill_one(
        Method::PilotLight,
        50,
        Faults {
            standby_stays_off: true,
            replica_lag: Some(Duration::from_secs(30)),
            ..Faults::default()
        },
    )
    .await;
    assert!(!m.passed);
    assert!(
        m.canaries_acknowledged > 0 && m.canaries_lost > 0 && m.rpo_ms > 0.0,
        "{} acknowledged, {} lost, RPO {} ms",
        m.canaries_acknowledged,
        m.canaries_lost,
        m.rpo_ms
    );
}

#[tokio::test(start_paused = true)]
async fn a_failover_that_never_happened_fails() {
    let (m, left) = drill_one(
        Method::WarmStandby,
        50,
        Faults {
            dns_ignores_failover: true,
            ..Faults::default()
        },
    )
    .await;
    let m = &m;
    assert!(!m.passed);
    let c = check(m, CheckKind::FailedOver);
    assert!(!c.ok && c.detail.contains("from us-east-2"), "{c:?}");
    assert!(left.is_empty(), "{left:?}");
}

/// The switch alone, as `tandem dr failover` and `failback` drive it, on a pilot
/// light with DNS failover.
async fn failover_and_back(faults: Faults) -> (Vec<String>, tandem_dr::store::Result<Vec<String>>, FakeAws) {
    let aws = FakeAws::deployed("us-east-2", "us-east-1", faults, StandbyMode::PilotLight, true);
    let (clients, standby) = aws.switch();
    let cleanup = Cleanup::new();
    let said = Mutex::new(Vec::new());
    let say = |s: String| said.lock().unwrap().push(s);
    let wait = Waiter::standby_switch(&say, &cleanup);
    let over = tandem_dr::standby::failover(&clients, &standby, &wait)
        .await
        .unwrap();
    let back = tandem_dr::standby::failback(&clients, &standby, &wait).await;
    assert_calls_within_contract(&aws);
    (over, back, aws)
}

/// A planned failover inverts the passing check; the failback reverts it and waits
/// for clients to be sent back before the pilot light goes off again.
#[tokio::test(start_paused = true)]
async fn a_failback_switches_the_pilot_light_off_only_after_clients_are_sent_back() {
    let start = tokio::time::Instant::now();
    let (over, back, aws) = failover_and_back(Faults::default()).await;
    assert!(
        over.iter().any(|s| s.contains("inverted health check")),
        "{over:?}"
    );
    let back = back.unwrap();
    assert!(
        back.iter().any(|s| s.contains("switched the standby's function")),
        "{back:?}"
    );
    assert!(
        start.elapsed() >= tandem_dr::standby::CLIENTS_BACK,
        "{:?}",
        start.elapsed()
    );
    assert!(aws.leftovers().is_empty(), "{:?}", aws.leftovers());
}

/// Route 53 fails the primary's check by itself (its region is down): the failover
/// switches the pilot light on without inverting anything, and the failback keeps
/// the standby on, because clients still reach it, and says so.
#[tokio::test(start_paused = true)]
async fn a_failback_while_the_primary_is_down_keeps_the_standby_on() {
    let (over, back, aws) = failover_and_back(Faults {
        primary_unhealthy: true,
        ..Faults::default()
    })
    .await;
    assert!(over.iter().any(|s| s.contains("already fails")), "{over:?}");
    let e = back.unwrap_err().to_string();
    assert!(e.contains("stays on") && e.contains("standby-api"), "{e}");
    assert_eq!(aws.leftovers(), ["the standby's function switched on"]);
}

/// The deployed APIs refuse a fast client as AWS does: the usage plan answers 429
/// beyond its burst (sent again, every write lands once), and the web ACL blocks
/// more than 2,000 requests in five minutes; the drill's pace stays under both.
#[tokio::test(start_paused = true)]
async fn the_apis_limits_refuse_a_fast_client_and_the_drills_pace_passes() {
    use tandem_dr::drill::aws::{DEFAULT_API_RATE, api_pace};
    use tandem_dr::drill::client::{ApiClient, ApiEndpoint};
    use tandem_dr::drill::fake_aws::WAF_LIMIT;

    // An eighth of the key's rate: 160 ms at the default 50 a second, 1.6 s at 5.
    assert_eq!(api_pace(50), Duration::from_millis(160));
    assert_eq!(api_pace(5), Duration::from_millis(1600));
    let aws = FakeAws::new("us-east-2", "us-east-1", Faults::default());
    let ep = ApiEndpoint::new(
        "the primary's API",
        "https://api.us-east-2.fake/prod",
        Some(aws.api_key()),
    );
    // A burst of 150 adds at once: the bucket holds 100, the rest are throttled and
    // sent again until they land.
    let client = ApiClient::new(aws.api_transport(), Duration::from_secs(30));
    let mut adds = tokio::task::JoinSet::new();
    for i in 0..150 {
        let (client, ep) = (client.clone(), ep.clone());
        adds.spawn(async move { client.add(&ep, "Books", &format!("burst {i}")).await });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(r) = adds.join_next().await {
        ids.insert(r.unwrap().unwrap().id);
    }
    assert_eq!(ids.len(), 150);
    assert!(aws.refused().by_usage_plan >= 50, "{:?}", aws.refused());

    // Unpaced, the web ACL blocks what is past its limit (a health check each).
    let fast = FakeAws::new("us-east-2", "us-east-1", Faults::default());
    let fast_client = ApiClient::new(fast.api_transport(), Duration::from_secs(30));
    let health = ApiEndpoint::new("the primary's API", "https://api.us-east-2.fake/prod", None);
    let mut statuses = Vec::new();
    for _ in 0..WAF_LIMIT + 10 {
        statuses.push(
            fast_client
                .request(&health, axum::http::Method::GET, "/health", None)
                .await
                .unwrap()
                .status,
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(statuses[..WAF_LIMIT].iter().all(|s| s.is_success()));
    assert!(
        statuses[WAF_LIMIT..]
            .iter()
            .all(|s| *s == axum::http::StatusCode::FORBIDDEN)
    );

    // At the drill's pace, ten minutes of requests pass.
    let paced = FakeAws::new("us-east-2", "us-east-1", Faults::default());
    let paced_client =
        ApiClient::new(paced.api_transport(), Duration::from_secs(30)).paced(api_pace(DEFAULT_API_RATE));
    let n = (Duration::from_secs(600).as_millis() / api_pace(DEFAULT_API_RATE).as_millis()) as usize;
    for _ in 0..n {
        let s = paced_client
            .request(&health, axum::http::Method::GET, "/health", None)
            .await
            .unwrap()
            .status;
        assert!(s.is_success(), "{s}");
    }
    assert_eq!(paced.refused(), Default::default());
}

/// A failover method at its full seed (the seed, the canaries, the removal of both)
/// would take the key's whole usage plan unpaced and be throttled; at the drill's
/// pace it passes and the APIs refuse nothing, leaving the plan to the clients.
#[tokio::test(start_paused = true)]
async fn a_failover_drill_at_full_seed_is_never_throttled() {
    let aws = account_for(&[Method::WarmStandby], Faults::default());
    let mut opts = options(tandem_dr::drill::failover::FAILOVER_SEED_MAX);
    opts.methods = vec![Method::WarmStandby];
    let (report, _, left) = drill_on(&aws, &opts).await;
    assert!(method(&report, Method::WarmStandby).passed, "{report:#?}");
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(aws.refused(), Default::default());
}

/// The PITR window the drill is given is the one its scratch tables get
/// (RecoveryPeriodInDays), not DynamoDB's default.
#[tokio::test(start_paused = true)]
async fn the_scratch_tables_get_the_drills_pitr_window() {
    let aws = FakeAws::new("us-east-2", "us-east-1", Faults::default());
    let mut opts = options(20);
    opts.methods = vec![Method::Pitr];
    opts.pitr_window_days = 7;
    let backend = aws.backend().with_pitr_window(opts.pitr_window_days);
    let report = run(&backend, &opts, &Cleanup::new(), &|_| {}).await.unwrap();
    assert!(method(&report, Method::Pitr).passed, "{report:#?}");
    let periods = aws.pitr_periods();
    assert!(!periods.is_empty());
    assert!(periods.iter().all(|(_, d)| *d == Some(7)), "{periods:?}");
}

/// A copy that outlasts the drill's wait is not called removed: the drill fails,
/// and its report names the copy job still running, as the account shows it.
#[tokio::test(start_paused = true)]
async fn a_copy_still_running_when_the_wait_ends_is_reported_left_behind() {
    let aws = FakeAws::new(
        "us-east-2",
        "us-east-1",
        Faults {
            slow_jobs: Some(Duration::from_secs(2 * 3600)),
            ..Faults::default()
        },
    );
    let mut opts = options(20);
    opts.methods = vec![Method::CrossRegion];
    opts.wait_limit = Duration::from_secs(20 * 60);
    let backend = aws.backend();
    let report = run(&backend, &opts, &Cleanup::new(), &|_| {}).await.unwrap();
    assert!(!report.passed);
    let reported = report.left_behind.join("\n");
    let left = aws.leftovers();
    assert!(left.iter().any(|l| l.starts_with("copy job")), "{left:?}");
    for l in left.iter().filter(|l| l.starts_with("copy job")) {
        let id = l.split_whitespace().nth(2).unwrap();
        assert!(
            reported.contains(id) && reported.contains("still"),
            "{l} not reported: {reported}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried() {
    let faults = Faults {
        unprocessed_every: 3,
        ..Faults::default()
    };
    let mut opts = options(200);
    opts.methods = vec![Method::Backup, Method::Pitr];
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
    let mut opts = options(300);
    opts.methods = vec![
        Method::Pitr,
        Method::Backup,
        Method::Scheduled,
        Method::CrossRegion,
        Method::PilotLight,
    ];
    let (report, _, left) = fake_drill(faults, &opts).await;
    assert!(!report.passed);
    for (m, ids) in [
        (Method::Pitr, "seed-"),
        (Method::Backup, "seed-"),
        (Method::Scheduled, "product-"),
        (Method::CrossRegion, "seed-"),
    ] {
        let r = method(&report, m);
        assert!(!r.passed, "{m:?} passed a restore that lost items");
        assert_eq!(r.missing, 3, "{m:?}");
        let c = check(r, CheckKind::ItemsMatch);
        assert!(
            !c.ok && c.detail.contains("3 missing") && c.detail.contains(ids),
            "{c:?}"
        );
    }
    // The replica lost nothing.
    assert!(method(&report, Method::PilotLight).passed);
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
        let c = check(r, CheckKind::MethodCompleted);
        assert!(c.detail.contains("FAILED: Access denied"), "{c:?}");
    }
    assert!(
        method(&report, Method::Backup).passed,
        "on-demand restores do not use restore jobs"
    );
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn a_drill_of_the_other_standby_mode_is_refused_naming_both() {
    let aws = FakeAws::new("us-east-2", "us-east-1", Faults::default());
    let mut opts = options(10);
    opts.methods = vec![Method::WarmStandby];
    // Refused before any call is made.
    let report = run(&aws.backend(), &opts, &Cleanup::new(), &|_| {})
        .await
        .unwrap();
    assert!(aws.calls().is_empty(), "{:?}", aws.calls());
    let left = aws.leftovers();
    let c = check(method(&report, Method::WarmStandby), CheckKind::MethodCompleted);
    assert!(
        c.detail.contains("is a pilot-light, not a warm-standby")
            && c.detail.contains("tandem:standby=warm-standby"),
        "{c:?}"
    );
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_drill_still_cleans_up_everything_it_made() {
    // Interrupt each method at points along its own timeline (mid-create, mid-backup,
    // mid-restore, mid-copy, mid-failover: fractions of how long it takes whole): the
    // caller then releases the registry, as the CLI does on Ctrl-C or SIGTERM.
    let mut points = 0;
    for method in Method::ALL {
        let mut opts = options(50);
        opts.methods = vec![method];
        let whole = {
            let aws = account_for(&opts.methods, Faults::default());
            let started = tokio::time::Instant::now();
            run(&aws.backend(), &opts, &Cleanup::new(), &|_| {})
                .await
                .unwrap();
            started.elapsed()
        };
        for stop_at in [
            whole.min(Duration::from_secs(200)) / 10,
            whole / 4,
            whole / 2,
            whole * 9 / 10,
        ] {
            let aws = account_for(&opts.methods, Faults::default());
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

/// A game day: the drill on the deployed stack, its metrics published. A method that
/// fails (the plan made no recovery point) makes its own `Passed` and the drill's
/// `DrillPassed` 0, which the DR stack's alarm watches; each method's RTO and RPO go
/// with it, under the stack's name.
#[tokio::test(start_paused = true)]
async fn a_game_day_publishes_every_methods_verdict_rto_and_rpo() {
    use tandem_dr::drill::metrics::{self, NAMESPACE};
    use tandem_dr::drill::publish;

    let mut opts = options(50);
    opts.methods = vec![Method::Pitr, Method::Scheduled];
    let aws = account_for(
        &opts.methods,
        Faults {
            plan_makes_no_points: true,
            ..Faults::default()
        },
    );
    let (report, _, left) = drill_on(&aws, &opts).await;
    assert!(left.is_empty(), "{left:?}");
    assert!(method(&report, Method::Pitr).passed);
    assert!(!method(&report, Method::Scheduled).passed);

    let cw = aws.cloudwatch_client("us-east-2");
    publish::put(
        &cw,
        "DisasterRecoveryStack",
        &metrics::of_report(&report),
        aws.now_us(),
    )
    .await
    .unwrap();
    assert_calls_within_contract(&aws);
    let published = aws.published();
    let value = |name: &str, method: Option<&str>| -> f64 {
        let mut dims = vec![("Stack".to_string(), "DisasterRecoveryStack".to_string())];
        if let Some(m) = method {
            dims.push(("Method".to_string(), m.to_string()));
        }
        let found: Vec<f64> = published
            .iter()
            .filter(|p| p.namespace == NAMESPACE && p.name == name && p.dimensions == dims)
            .map(|p| p.value)
            .collect();
        assert_eq!(found.len(), 1, "{name} {method:?} in {published:#?}");
        found[0]
    };
    assert_eq!(value("DrillPassed", None), 0.0);
    assert_eq!(value("MethodsFailed", None), 1.0);
    assert_eq!(value("LeftBehind", None), 0.0);
    assert_eq!(value("Passed", Some("pitr")), 1.0);
    assert_eq!(value("Passed", Some("scheduled")), 0.0);
    let pitr = method(&report, Method::Pitr);
    assert_eq!(value("RtoSeconds", Some("pitr")), pitr.rto_ms / 1000.0);
    assert!(
        value("RtoSeconds", Some("pitr")) > 60.0,
        "a restore on the fake account takes minutes"
    );
    assert_eq!(value("RpoSeconds", Some("pitr")), pitr.rpo_ms / 1000.0);
    assert!(published.iter().all(|p| p.at_us == published[0].at_us));
    let seconds = published.iter().find(|p| p.name == "RtoSeconds").unwrap();
    assert_eq!(seconds.unit, "Seconds");
}

/// What CloudWatch refuses is refused: a value that is not a number is stopped before
/// the call, naming the metric; more datums than one request takes go in several.
#[tokio::test(start_paused = true)]
async fn publishing_refuses_what_cloudwatch_refuses_and_splits_what_it_cannot_take_at_once() {
    use tandem_dr::drill::metrics::{Metric, MetricName, Unit};
    use tandem_dr::drill::publish;

    let aws = FakeAws::new("us-east-2", "us-east-1", Faults::default());
    let cw = aws.cloudwatch_client("us-east-2");
    let m = |value| Metric {
        name: MetricName::RtoSeconds,
        method: Some(Method::Pitr),
        value,
        unit: Unit::Seconds,
    };
    let e = publish::put(&cw, "DisasterRecoveryStack", &[m(1.0), m(f64::NAN)], aws.now_us())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("RtoSeconds is NaN"), "{e}");
    assert!(
        aws.published().is_empty(),
        "nothing of a refused drill is published"
    );
    let e = publish::put(&cw, "", &[m(1.0)], aws.now_us()).await.unwrap_err();
    assert!(e.to_string().contains("stack's name"), "{e}");

    // CloudWatch's own refusals: a timestamp from before the drill's two weeks, a
    // blank dimension (an empty stack name is caught before the call).
    let e = publish::put(
        &cw,
        "DisasterRecoveryStack",
        &[m(1.0)],
        aws.now_us() - 15 * 24 * 3_600_000_000,
    )
    .await
    .unwrap_err();
    assert!(format!("{e:?}").contains("two weeks in the past"), "{e:?}");
    let e = publish::put(&cw, "  ", &[m(1.0)], aws.now_us())
        .await
        .unwrap_err();
    let said = format!("{e:?}");
    assert!(said.contains("the dimension") && said.contains("Stack"), "{said}");
    assert!(aws.published().is_empty());

    let requests = || {
        aws.calls()
            .iter()
            .filter(|c| c.operation == "PutMetricData")
            .count()
    };
    let before = requests();
    let many = vec![m(2.0); 2500];
    publish::put(&cw, "DisasterRecoveryStack", &many, aws.now_us())
        .await
        .unwrap();
    assert_eq!(aws.published().len(), 2500);
    assert_eq!(requests() - before, 3, "1,000 datums a request at most");
}

/// Every AWS Backup start call the drill makes carries its own idempotency token, named
/// after what it makes, and the fake account honours tokens as AWS Backup does
/// ("Retrying a successful request with the same idempotency token results in a success
/// message with no action taken", the API reference of StartBackupJob, StartCopyJob,
/// StartRestoreJob): the same start sent again (by the SDK after a lost answer, or by
/// the drill) starts nothing new, so the drill knows every job it made. (Without one
/// the SDK fills in a token per call, which covers its own retries only.)
#[tokio::test(start_paused = true)]
async fn every_start_call_carries_a_token_and_a_repeated_one_starts_nothing() {
    let mut opts = options(50);
    opts.methods = vec![Method::Scheduled, Method::CrossRegion];
    let aws = account_for(&opts.methods, Faults::default());
    let (report, _, left) = drill_on(&aws, &opts).await;
    assert!(report.passed, "{report:#?}");
    assert!(left.is_empty(), "{left:?}");
    let starts = aws.start_calls();
    let ops: Vec<&str> = starts.iter().map(|(op, _)| *op).collect();
    for op in ["StartBackupJob", "StartCopyJob", "StartRestoreJob"] {
        assert!(ops.contains(&op), "{op} never called: {ops:?}");
    }
    // The drill's own, named after what it makes (not the SDK's per-call fill-in).
    for (op, token) in &starts {
        assert!(
            token.as_deref().is_some_and(|t| t.contains("drill")),
            "{op} with token {token:?}"
        );
    }

    // The same copy twice: one job with a token, two without.
    let backup = aws.backup("us-east-2");
    let (_, copies_before, _) = aws.jobs_started();
    let point = backup
        .start_backup_job()
        .backup_vault_name(aws.setup().primary_vault.unwrap())
        .resource_arn(aws.table_arn())
        .iam_role_arn(aws.setup().role_arn.unwrap())
        .idempotency_token("test-backup")
        .send()
        .await
        .unwrap()
        .recovery_point_arn()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let copy = |token: Option<&'static str>| {
        backup
            .start_copy_job()
            .recovery_point_arn(&point)
            .source_backup_vault_name(aws.setup().primary_vault.unwrap())
            .destination_backup_vault_arn(aws.setup().recovery_vault_arn.unwrap())
            .iam_role_arn(aws.setup().role_arn.unwrap())
            .set_idempotency_token(token.map(str::to_string))
            .send()
    };
    let a = copy(Some("same"))
        .await
        .unwrap()
        .copy_job_id()
        .unwrap()
        .to_string();
    let b = copy(Some("same"))
        .await
        .unwrap()
        .copy_job_id()
        .unwrap()
        .to_string();
    assert_eq!(a, b);
    assert_eq!(aws.jobs_started().1, copies_before + 1);
    copy(Some("other")).await.unwrap();
    assert_eq!(
        aws.jobs_started().1,
        copies_before + 2,
        "another token, another job"
    );
}

/// The namespace the drill publishes to is the one the game day's role may publish to
/// (the contract's `cloudwatch:namespace` condition, which the calls' check cannot see).
#[test]
fn the_metrics_namespace_is_the_one_the_contract_allows() {
    let contract: serde_json::Value =
        serde_json::from_str(tandem_sdk::calls::contract::CONTRACT_JSON).unwrap();
    let calls = contract["components"]["tandem dr game day"]["calls"]
        .as_array()
        .unwrap();
    let put = calls
        .iter()
        .find(|e| {
            e["actions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "cloudwatch:PutMetricData")
        })
        .unwrap();
    assert_eq!(
        put["conditions"]["StringEquals"]["cloudwatch:namespace"],
        tandem_dr::drill::metrics::NAMESPACE
    );
}
