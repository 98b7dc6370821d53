//! The disaster-recovery drill: for each recovery method, seed a table, keep a writer
//! writing timestamped canaries, declare a disaster, recover, and verify item by
//! item, measuring RTO (disaster to the first correct answer from the recovered API)
//! and RPO (the span of acknowledged writes lost, from the canaries).
//!
//! A method passes only when the recovered data equals what it must equal, compared
//! by content hash over all items; the drill never reports a pass it did not verify.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde::Serialize;
use tower::ServiceExt;

use crate::api::{ApiState, router};
use crate::backup::{BackupKind, Backups, Pitr, run_schedule};
use crate::embedded::{EmbeddedTable, Region, now_us};
use crate::product::Product;
use crate::replica::Replicator;
use crate::store::{Error, ProductStore, Result};

/// A recovery method the drill exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Point-in-time restore to just before a bad deploy.
    Pitr,
    /// Restore from an on-demand backup.
    Backup,
    /// Restore from the scheduled backup (existence, interval, retention checked).
    Scheduled,
    /// Restore the backup copied to the recovery region.
    CrossRegion,
    /// Start the API in the recovery region on the replica.
    PilotLight,
    /// Switch clients to the API already running in the recovery region.
    WarmStandby,
}

impl Method {
    /// Every method, in drill order.
    pub const ALL: [Method; 6] = [
        Method::Pitr,
        Method::Backup,
        Method::Scheduled,
        Method::CrossRegion,
        Method::PilotLight,
        Method::WarmStandby,
    ];

    /// The method's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Pitr => "pitr",
            Method::Backup => "backup",
            Method::Scheduled => "scheduled",
            Method::CrossRegion => "cross-region",
            Method::PilotLight => "pilot-light",
            Method::WarmStandby => "warm-standby",
        }
    }

    /// Parses a method name, naming the accepted ones on error.
    pub fn parse(s: &str) -> Result<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            Error::InvalidInput(format!(
                "unknown method {s:?}: expected {}",
                Method::ALL.map(Method::name).join(", ")
            ))
        })
    }
}

/// What to drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Where the drill's regions live (removed at the end).
    pub dir: PathBuf,
    /// The primary region's name.
    pub primary_region: String,
    /// The recovery region's name.
    pub recovery_region: String,
    /// Products to seed.
    pub products: usize,
    /// Methods to run.
    pub methods: Vec<Method>,
    /// RTO target, reported against.
    pub rto_target: Duration,
    /// RPO target, reported against.
    pub rpo_target: Duration,
    /// PITR window in days (1..=35).
    pub pitr_window_days: u32,
    /// How long to wait for a correct answer from the recovered API before the
    /// method fails.
    pub answer_timeout: Duration,
}

/// A timestamped step of a method, for the report's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Milliseconds since the method started.
    pub at_ms: f64,
    /// What happened.
    pub what: String,
}

/// How one method did.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    /// The method.
    pub method: Method,
    /// True only when the recovered data matched, item by item, and every check held.
    pub passed: bool,
    /// Disaster to the first correct answer from the recovered API, in ms.
    pub rto_ms: f64,
    /// Span of acknowledged writes lost, in ms.
    pub rpo_ms: f64,
    /// Whether RTO and RPO met their targets.
    pub within_targets: bool,
    /// Items the recovered table must hold.
    pub expected_items: usize,
    /// Expected items absent from the recovered table.
    pub missing: usize,
    /// Recovered items that should not be there.
    pub extra: usize,
    /// Items present in both with different content.
    pub different: usize,
    /// Canaries acknowledged before the disaster.
    pub canaries_acknowledged: usize,
    /// Of those, lost in the recovery.
    pub canaries_lost: usize,
    /// Checks and findings.
    pub notes: Vec<String>,
    /// The method's timeline.
    pub steps: Vec<Step>,
}

/// The whole drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// `embedded`.
    pub backend: String,
    /// Primary region.
    pub primary_region: String,
    /// Recovery region.
    pub recovery_region: String,
    /// Products seeded per method.
    pub products: usize,
    /// RTO target, ms.
    pub rto_target_ms: f64,
    /// RPO target, ms.
    pub rpo_target_ms: f64,
    /// Per method.
    pub methods: Vec<MethodResult>,
    /// Every method passed.
    pub passed: bool,
}

impl DrillReport {
    /// The report of `methods` run on `backend` with `opts`; passed only when there
    /// is at least one method and every one passed.
    pub fn new(backend: &str, opts: &DrillOptions, methods: Vec<MethodResult>) -> Self {
        let passed = !methods.is_empty() && methods.iter().all(|m| m.passed);
        Self {
            backend: backend.into(),
            primary_region: opts.primary_region.clone(),
            recovery_region: opts.recovery_region.clone(),
            products: opts.products,
            rto_target_ms: opts.rto_target.as_secs_f64() * 1e3,
            rpo_target_ms: opts.rpo_target.as_secs_f64() * 1e3,
            methods,
            passed,
        }
    }
}

impl DrillOptions {
    /// Refuses options no backend can drill with, naming the value.
    pub fn check(&self) -> Result<()> {
        if self.products == 0 {
            return Err(Error::InvalidInput("--products must be at least 1, got 0".into()));
        }
        crate::backup::check_pitr_window(self.pitr_window_days)?;
        Ok(())
    }
}

/// Item-by-item comparison by content hash: (missing, extra, different).
pub fn compare(expected: &[Product], actual: &[Product]) -> (usize, usize, usize) {
    let want: HashMap<&str, u64> = expected
        .iter()
        .map(|p| (p.product_id.as_str(), p.content_hash()))
        .collect();
    let have: HashMap<&str, u64> = actual
        .iter()
        .map(|p| (p.product_id.as_str(), p.content_hash()))
        .collect();
    let missing = want.keys().filter(|k| !have.contains_key(*k)).count();
    let extra = have.keys().filter(|k| !want.contains_key(*k)).count();
    let different = want
        .iter()
        .filter(|(k, h)| have.get(*k).is_some_and(|x| x != *h))
        .count();
    (missing, extra, different)
}

/// A writer that keeps adding canaries to a table and records the acknowledged ones.
pub(crate) struct Canaries {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, u64)>>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Canaries {
    pub(crate) fn start(table: Arc<dyn ProductStore>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a, pz) = (stop.clone(), acked.clone(), paused.clone());
        let handle = tokio::spawn(async move {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                if pz.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                n += 1;
                let p = Product {
                    product_id: format!("canary-{n:08}"),
                    product_category: "canary".into(),
                    product_title: format!("canary {n}"),
                    sum_rating: 0,
                    count_rating: 0,
                    updated_at_us: now_us(),
                };
                if table.create(&p).await.is_ok() {
                    a.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((p.product_id, p.updated_at_us));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        Self {
            stop,
            paused,
            acked,
            handle: Some(handle),
        }
    }

    /// Holds the writer (an in-flight write finishes first) or lets it go on.
    pub(crate) async fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
        if paused {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the writer (the region is gone: no more writes are acknowledged).
    pub(crate) async fn stop(mut self) -> Vec<(String, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        std::mem::take(&mut *self.acked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// RPO from canaries: the span from the newest surviving acknowledged canary to the
/// newest lost one (0 when none was lost). Returns (rpo µs, lost).
pub(crate) fn rpo(acked: &[(String, u64)], recovered: &[Product]) -> (u64, usize) {
    let present: std::collections::HashSet<&str> = recovered.iter().map(|p| p.product_id.as_str()).collect();
    let lost: Vec<u64> = acked
        .iter()
        .filter(|(id, _)| !present.contains(id.as_str()))
        .map(|(_, t)| *t)
        .collect();
    let Some(newest_lost) = lost.iter().copied().max() else {
        return (0, 0);
    };
    let oldest_lost = lost.iter().copied().min().unwrap_or(newest_lost);
    let newest_surviving_before = acked
        .iter()
        .filter(|(id, t)| present.contains(id.as_str()) && *t < oldest_lost)
        .map(|(_, t)| *t)
        .max();
    let start = newest_surviving_before
        .or_else(|| acked.first().map(|(_, t)| *t))
        .unwrap_or(oldest_lost);
    (newest_lost.saturating_sub(start), lost.len())
}

/// The PITR method's "bad deploy": deletes every 40th seeded item of `before` and
/// corrupts as many others. Returns how many items it damaged.
pub(crate) async fn bad_deploy(store: &dyn ProductStore, before: &[Product]) -> Result<usize> {
    let victims: Vec<&Product> = before
        .iter()
        .filter(|p| p.product_id.starts_with("seed-"))
        .step_by(20)
        .collect();
    for (i, v) in victims.iter().enumerate() {
        if i % 2 == 0 {
            store.delete(&v.product_id).await?;
        } else {
            store
                .update(&v.product_id, "corrupted", "corrupted", now_us())
                .await?;
        }
    }
    Ok(victims.len())
}

/// Asks the API for a product and checks the answer equals `expected`.
async fn correct_answer(state: &ApiState, expected: &Product) -> bool {
    let req = Request::builder()
        .uri(format!("/getProduct?product_id={}", expected.product_id))
        .body(Body::empty())
        .unwrap_or_default();
    // The router's error type is Infallible: every request gets a response.
    let Ok(resp) = router(state.clone()).oneshot(req).await;
    if resp.status() != StatusCode::OK {
        return false;
    }
    let Ok(bytes) = axum::body::to_bytes(resp.into_body(), 1 << 20).await else {
        return false;
    };
    serde_json::from_slice::<Product>(&bytes).is_ok_and(|p| p == *expected)
}

pub(crate) struct Run {
    pub(crate) started: Instant,
    pub(crate) steps: Vec<Step>,
    pub(crate) notes: Vec<String>,
}

impl Run {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            steps: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn step(&mut self, what: impl Into<String>) {
        self.steps.push(Step {
            at_ms: self.started.elapsed().as_secs_f64() * 1e3,
            what: what.into(),
        });
    }
}

async fn seed(table: &EmbeddedTable, n: usize) -> Result<()> {
    table.load(&seed_items(n))
}

/// The seeded products: `seed-0000000` onwards.
pub(crate) fn seed_items(n: usize) -> Vec<Product> {
    let now = now_us();
    (0..n)
        .map(|i| Product {
            product_id: format!("seed-{i:07}"),
            product_category: ["Books", "Audio", "Games", "Home"][i % 4].into(),
            product_title: format!("product {i}"),
            sum_rating: (i % 50) as i64,
            count_rating: (i % 7) as i64,
            updated_at_us: now,
        })
        .collect()
}

/// Runs the drill.
pub async fn run(opts: &DrillOptions) -> Result<DrillReport> {
    opts.check()?;
    let mut methods = Vec::new();
    for &m in &opts.methods {
        let dir = opts.dir.join(m.name());
        let result = run_method(m, opts, &dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        methods.push(result?);
    }
    let _ = std::fs::remove_dir_all(&opts.dir);
    Ok(DrillReport::new("embedded", opts, methods))
}

async fn run_method(method: Method, opts: &DrillOptions, dir: &std::path::Path) -> Result<MethodResult> {
    let mut run = Run::new();
    let primary_region = Arc::new(Region::new(dir, &opts.primary_region)?);
    let recovery_region = Arc::new(Region::new(dir, &opts.recovery_region)?);
    let primary = primary_region.create_table("Product")?;
    let pitr = Pitr::new(opts.pitr_window_days, now_us())?;
    seed(&primary, opts.products).await?;
    run.step(format!(
        "seeded {} products in {}",
        opts.products, opts.primary_region
    ));
    let replica = recovery_region.create_table("Product")?;
    let replicator = matches!(method, Method::PilotLight | Method::WarmStandby)
        .then(|| Replicator::start(primary.clone(), replica.clone(), Duration::from_millis(20)));
    if let Some(rep) = &replicator {
        run.step(format!("replicator to {} started", opts.recovery_region));
        // A standby in steady state: wait until the seed has been shipped.
        let deadline = Instant::now() + Duration::from_secs(120);
        while rep.lag_us(&primary)? > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        run.step(format!("replica caught up (lag {} µs)", rep.lag_us(&primary)?));
    }
    let warm_api = (method == Method::WarmStandby).then(|| ApiState {
        store: replica.clone(),
        backups: None,
        api_key: None,
    });
    let canaries = Canaries::start(primary.clone() as Arc<dyn ProductStore>);
    run.step("canary writer started");
    tokio::time::sleep(Duration::from_millis(150)).await;

    // What the recovered table must equal, the disaster instant, and the recovery.
    let (mut expected, disaster, recovered_table, api): (
        Vec<Product>,
        Instant,
        Arc<EmbeddedTable>,
        ApiState,
    );
    let acked;
    // The item the recovered API is asked for; seeded items are never touched by the
    // canaries (the bad deploy of the PITR method deletes this one).
    let probe = primary.get("seed-0000000").await?;
    // For the replica methods the truth is computed after the RTO is measured, so
    // that verification work is not counted as recovery time.
    let mut replicated_until: Option<u64> = None;
    match method {
        Method::Pitr => {
            let (before, as_of) = primary.snapshot_with_ts()?;
            run.step(format!("snapshot of the good state ({} items)", before.len()));
            // The bad deploy: deletes and corrupts seeded items.
            let damaged = bad_deploy(primary.as_ref(), &before).await?;
            run.step(format!("bad deploy deleted and corrupted {damaged} items"));
            disaster = Instant::now();
            run.step("disaster declared");
            acked = canaries.stop().await;
            let t = pitr.restore(&primary_region, &primary, as_of, "Product-pitr", now_us())?;
            run.step("restored to just before the bad deploy into Product-pitr");
            expected = before;
            recovered_table = t;
        }
        Method::Backup | Method::CrossRegion => {
            let backups = Backups::new(primary_region.clone())?;
            let info = backups.create(&primary, BackupKind::OnDemand, now_us(), 30)?;
            run.step(format!(
                "on-demand backup {} ({} items)",
                info.backup_id, info.item_count
            ));
            // Independent of the backup file: the table's own log at the backup instant.
            expected = primary.state_at(info.as_of_us)?;
            let target_backups = if method == Method::CrossRegion {
                let rb = Backups::new(recovery_region.clone())?;
                backups.copy_to(&info.backup_id, &rb)?;
                run.step(format!("backup copied to {}", opts.recovery_region));
                rb
            } else {
                backups
            };
            tokio::time::sleep(Duration::from_millis(100)).await;
            disaster = Instant::now();
            run.step(if method == Method::CrossRegion {
                "primary region lost"
            } else {
                "table lost"
            });
            acked = canaries.stop().await;
            // The table (and, cross-region, the primary's copy of it) is gone.
            primary_region.delete_table("Product")?;
            let (region, name) = if method == Method::CrossRegion {
                (&recovery_region, "Product-from-backup")
            } else {
                (&primary_region, "Product-restored")
            };
            let t = target_backups.restore(&info.backup_id, name)?;
            run.step(format!("restored backup into {name} in {}", region.name()));
            recovered_table = t;
        }
        Method::Scheduled => {
            let backups = Backups::new(primary_region.clone())?;
            let now = now_us();
            // A scheduled backup from 31 days ago, which retention must remove.
            let old = backups.create(&primary, BackupKind::Scheduled, now - 31 * 86_400_000_000, 30)?;
            let (taken, expired) = run_schedule(&backups, &primary, now, 30)?;
            let info = match taken {
                Some(b) => b,
                None => backups
                    .list(Some("Product"))?
                    .into_iter()
                    .rfind(|b| b.backup_type == BackupKind::Scheduled)
                    .ok_or_else(|| Error::NotFound("scheduled backup".into()))?,
            };
            let slot = crate::backup::last_scheduled_slot(now);
            let in_interval = info.created_at_us >= slot && info.created_at_us <= now;
            let retention_ok = expired.iter().any(|b| b.backup_id == old.backup_id)
                && backups.describe(&old.backup_id).is_err();
            let complete = backups.verify(&info.backup_id).is_ok();
            run.notes.push(format!(
                "scheduled backup {} exists and is complete: {complete}",
                info.backup_id
            ));
            run.notes.push(format!(
                "taken within its daily interval (cron(10 9 * * ? *)): {in_interval}"
            ));
            run.notes.push(format!(
                "30-day retention enforced (31-day-old backup expired): {retention_ok}"
            ));
            if !(in_interval && retention_ok && complete) {
                run.notes.push("schedule check FAILED".into());
            }
            run.step(format!("scheduled backup {} checked", info.backup_id));
            expected = primary.state_at(info.as_of_us)?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            disaster = Instant::now();
            run.step("table lost");
            acked = canaries.stop().await;
            recovered_table = backups.restore(&info.backup_id, "Product-from-scheduled")?;
            run.step("restored the scheduled backup into Product-from-scheduled");
        }
        Method::PilotLight | Method::WarmStandby => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            disaster = Instant::now();
            run.step("primary region lost");
            acked = canaries.stop().await;
            let position = replicator.map(Replicator::stop).unwrap_or_default();
            run.step(format!("replication stopped at change {}", position.seq));
            replicated_until = Some(position.ts_us);
            expected = Vec::new();
            recovered_table = replica.clone();
        }
    }
    api = match warm_api {
        Some(a) => a,
        None => ApiState {
            store: recovered_table.clone(),
            backups: None,
            api_key: None,
        },
    };
    if method == Method::PilotLight {
        run.step(format!("API started in {} on the replica", opts.recovery_region));
    } else if method == Method::WarmStandby {
        run.step(format!(
            "clients switched to the API already running in {}",
            opts.recovery_region
        ));
    }
    let (rto, answered) = measure_rto(&mut run, &api, probe.as_ref(), disaster, opts.answer_timeout).await;
    if let Some(ts) = replicated_until {
        // The replica must equal the primary as of the last change it received (the
        // drill reads the lost primary's log once, to know the truth).
        expected = primary.state_at(ts)?;
        primary_region.delete_table("Product")?;
    }
    let actual = recovered_table.snapshot()?;
    Ok(verdict(
        method, opts, run, rto, answered, &expected, &actual, &acked,
    ))
}

/// RTO: from `disaster` until the recovered API answers correctly for `probe`
/// (polled, backing off from 5 ms to 250 ms, for up to `timeout`). Returns the RTO
/// and whether it answered.
pub(crate) async fn measure_rto(
    run: &mut Run,
    api: &ApiState,
    probe: Option<&Product>,
    disaster: Instant,
    timeout: Duration,
) -> (Duration, bool) {
    let mut answered = false;
    if let Some(probe) = probe {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        while Instant::now() < deadline {
            if correct_answer(api, probe).await {
                answered = true;
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }
    let rto = disaster.elapsed();
    run.step(if answered {
        "first correct answer from the recovered API".to_string()
    } else {
        format!("no correct answer within {:.0} s", timeout.as_secs_f64())
    });
    (rto, answered)
}

/// Compares, measures RPO and decides: a pass needs a correct answer, no missing,
/// extra or different item, and no failed check in the notes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn verdict(
    method: Method,
    opts: &DrillOptions,
    mut run: Run,
    rto: Duration,
    answered: bool,
    expected: &[Product],
    actual: &[Product],
    acked: &[(String, u64)],
) -> MethodResult {
    let (missing, extra, different) = compare(expected, actual);
    let (rpo_us, lost) = rpo(acked, actual);
    run.step(format!(
        "verified {} items: {missing} missing, {extra} extra, {different} different",
        expected.len()
    ));
    let checks_ok = !run.notes.iter().any(|n| n.contains("FAILED"));
    let passed =
        answered && missing == 0 && extra == 0 && different == 0 && checks_ok && !expected.is_empty();
    MethodResult {
        method,
        passed,
        rto_ms: rto.as_secs_f64() * 1e3,
        rpo_ms: rpo_us as f64 / 1e3,
        within_targets: rto <= opts.rto_target && Duration::from_micros(rpo_us) <= opts.rpo_target,
        expected_items: expected.len(),
        missing,
        extra,
        different,
        canaries_acknowledged: acked.len(),
        canaries_lost: lost,
        notes: run.notes,
        steps: run.steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, title: &str) -> Product {
        Product {
            product_id: id.into(),
            product_category: "c".into(),
            product_title: title.into(),
            sum_rating: 0,
            count_rating: 0,
            updated_at_us: 1,
        }
    }

    #[test]
    fn compare_counts_missing_extra_and_different() {
        let want = [p("a", "1"), p("b", "2"), p("c", "3")];
        let have = [p("a", "1"), p("b", "X"), p("d", "4")];
        assert_eq!(compare(&want, &have), (1, 1, 1));
        assert_eq!(compare(&want, &want), (0, 0, 0));
    }

    #[test]
    fn rpo_is_the_span_of_lost_acknowledged_writes() {
        let acked = vec![
            ("c1".to_string(), 100),
            ("c2".to_string(), 200),
            ("c3".to_string(), 300),
            ("c4".to_string(), 450),
        ];
        let recovered = [p("c1", ""), p("c2", "")];
        assert_eq!(rpo(&acked, &recovered), (250, 2));
        let all = [p("c1", ""), p("c2", ""), p("c3", ""), p("c4", "")];
        assert_eq!(rpo(&acked, &all), (0, 0));
    }

    #[test]
    fn methods_parse_by_name() {
        assert_eq!(Method::parse("pilot-light").unwrap(), Method::PilotLight);
        assert!(
            Method::parse("magic")
                .unwrap_err()
                .to_string()
                .contains("pitr, backup")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_method_recovers_exactly_on_the_embedded_backend() {
        let dir = tempfile::tempdir().unwrap();
        let opts = DrillOptions {
            dir: dir.path().join("drill"),
            primary_region: "us-east-2".into(),
            recovery_region: "us-east-1".into(),
            products: 500,
            methods: Method::ALL.to_vec(),
            rto_target: Duration::from_secs(60),
            rpo_target: Duration::from_secs(60),
            pitr_window_days: 35,
            answer_timeout: Duration::from_secs(30),
        };
        let report = run(&opts).await.unwrap();
        for m in &report.methods {
            assert!(m.passed, "{:?}: {m:?}", m.method);
            assert!(m.rto_ms > 0.0);
            assert!(m.canaries_acknowledged > 0, "{:?} wrote no canaries", m.method);
        }
        assert!(report.passed);
        // PITR restores to before the bad deploy: the canaries after it are lost.
        let pitr = &report.methods[0];
        assert!(pitr.canaries_lost > 0 && pitr.rpo_ms > 0.0, "{pitr:?}");
        assert!(!opts.dir.exists(), "the drill left its regions behind");
    }
}
