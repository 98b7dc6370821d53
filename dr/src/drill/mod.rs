//! The disaster-recovery drill: one driver, every backend.
//!
//! For each recovery method the drill creates a scratch table, seeds it, keeps a
//! writer adding timestamped canaries, declares a disaster, recovers, and verifies the
//! recovered table item by item, measuring RTO (disaster to the first correct answer
//! from the recovered API) and RPO (the span of acknowledged canary writes lost).
//!
//! The algorithm lives here once. What differs between the embedded store and
//! DynamoDB with AWS Backup (how a table is made, backed up, restored or replicated,
//! and how long that takes) is behind [`DrillBackend`]: [`embedded::EmbeddedBackend`]
//! and, with the `dynamodb` feature, [`aws::AwsBackend`]. The canary rules follow
//! what each backend guarantees ([`Guarantees`]): around a restore point or a backup
//! request the writer is held quiet for the service's documented margin, so the
//! verdict never depends on clock skew or on which side of a fuzzy boundary a write
//! fell.
//!
//! A method passes only when every [`Check`] holds (the recovered API answered, the
//! items match, RTO and RPO within their targets, the backend's own checks); the drill
//! never reports a pass it did not verify. Every resource a method creates is
//! registered with a [`Cleanup`] before it exists and removed on every exit path:
//! success, an error, or (through the caller's signal handling) an interruption.

#[cfg(feature = "dynamodb")]
pub mod aws;
pub mod embedded;
#[cfg(feature = "fake-aws")]
pub mod fake_aws;
pub mod report;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde::Serialize;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::api::{ApiState, router};
use crate::product::Product;
use crate::region::RegionName;
use crate::store::{Error, ProductStore, Result};

/// A recovery method the drill exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Point-in-time restore to just before a bad deploy.
    Pitr,
    /// Restore from an on-demand backup.
    Backup,
    /// Restore from the scheduled backup (the plan's rule, checked).
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

    /// Whether the method recovers from a replica (its RPO is replication lag, judged
    /// against the RPO target) rather than from a backup (its RPO is the time since
    /// the backup, a property of the schedule).
    pub fn uses_replica(self) -> bool {
        matches!(self, Method::PilotLight | Method::WarmStandby)
    }
}

/// What to drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The primary region.
    pub primary_region: RegionName,
    /// The recovery region (replica, copied backups).
    pub recovery_region: RegionName,
    /// Products to seed.
    pub products: usize,
    /// Methods to run.
    pub methods: Vec<Method>,
    /// Every method's RTO must be within this.
    pub rto_target: Duration,
    /// The replica methods' RPO must be within this.
    pub rpo_target: Duration,
    /// PITR window in days (1..=35).
    pub pitr_window_days: u32,
    /// How long to wait for a correct answer from the recovered API.
    pub answer_timeout: Duration,
    /// How long any one wait (a restore, a backup, a replica, a deletion) may take.
    pub wait_limit: Duration,
}

impl DrillOptions {
    /// Refuses options no backend can drill with, naming the value.
    pub fn check(&self) -> Result<()> {
        if self.products == 0 {
            return Err(Error::InvalidInput("--products must be at least 1, got 0".into()));
        }
        if self.primary_region == self.recovery_region {
            return Err(Error::InvalidInput(format!(
                "the recovery region {} is also the primary region: the recovery region must be another one",
                self.recovery_region
            )));
        }
        if self.methods.is_empty() {
            return Err(Error::InvalidInput("no method to drill".into()));
        }
        crate::backup::check_pitr_window(self.pitr_window_days)?;
        Ok(())
    }
}

/// One check of a method, typed: what was checked, whether it held, and the detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// The finding (numbers, names, the difference).
    pub detail: String,
}

impl Check {
    /// A check named `name`.
    pub fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
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
    /// True only when every check held.
    pub passed: bool,
    /// Disaster to the first correct answer from the recovered API, in ms.
    pub rto_ms: f64,
    /// Span of acknowledged writes lost, in ms.
    pub rpo_ms: f64,
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
    /// Every check, passed or not.
    pub checks: Vec<Check>,
    /// The method's timeline.
    pub steps: Vec<Step>,
}

impl MethodResult {
    /// The checks that failed.
    pub fn failed_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

/// The whole drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// `embedded` or `dynamodb`.
    pub backend: String,
    /// Primary region.
    pub primary_region: String,
    /// Recovery region.
    pub recovery_region: String,
    /// Products seeded per method.
    pub products: usize,
    /// RTO target, ms.
    pub rto_target_ms: f64,
    /// RPO target (replica methods), ms.
    pub rpo_target_ms: f64,
    /// Per method.
    pub methods: Vec<MethodResult>,
    /// Resources the drill could not remove (empty when it cleaned up).
    pub left_behind: Vec<String>,
    /// Every method passed and nothing was left behind.
    pub passed: bool,
}

impl DrillReport {
    /// The report of `methods` run on `backend` with `opts`.
    pub fn new(
        backend: &str,
        opts: &DrillOptions,
        methods: Vec<MethodResult>,
        left_behind: Vec<String>,
    ) -> Self {
        let passed = !methods.is_empty() && methods.iter().all(|m| m.passed) && left_behind.is_empty();
        Self {
            backend: backend.into(),
            primary_region: opts.primary_region.to_string(),
            recovery_region: opts.recovery_region.to_string(),
            products: opts.products,
            rto_target_ms: opts.rto_target.as_secs_f64() * 1e3,
            rpo_target_ms: opts.rpo_target.as_secs_f64() * 1e3,
            methods,
            left_behind,
            passed,
        }
    }
}

/// What a backend promises about its backups and restores, and the pace of the
/// drill on it. The canary rules are derived from these, not from what one run
/// happened to show.
#[derive(Debug, Clone, Copy)]
pub struct Guarantees {
    /// A backup may include writes made up to this long before or after it was
    /// requested (DynamoDB: about a minute); the writer is quiet for this long on
    /// both sides of the request.
    pub backup_fuzz: Duration,
    /// The writer is quiet this long on both sides of a PITR restore point, so clock
    /// skew between this machine and the service cannot move a write across it.
    pub pitr_margin: Duration,
    /// Interval between canary writes.
    pub canary_interval: Duration,
    /// How long canaries are written before a disaster (and after a backup).
    pub canary_run: Duration,
    /// First interval between polls of a wait; it doubles up to `max_poll`.
    pub poll: Duration,
    /// Longest interval between polls.
    pub max_poll: Duration,
}

/// A table the drill made or recovered, in a region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// The region.
    pub region: RegionName,
    /// The table's name.
    pub name: String,
}

impl TableRef {
    /// Table `name` in `region`.
    pub fn new(region: &RegionName, name: &str) -> Self {
        Self {
            region: region.clone(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "table {} in {}", self.name, self.region)
    }
}

/// How a backup is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupMethod {
    /// An on-demand backup of the table (DynamoDB's CreateBackup).
    OnDemand,
    /// A backup as the backup plan's daily rule takes it (an AWS Backup job into the
    /// plan's vault, with the plan's role): what the scheduled and cross-region
    /// methods restore.
    Plan,
}

/// A backup or recovery point the drill made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackupRef {
    /// The region holding it.
    pub region: RegionName,
    /// Its id (an ARN on AWS).
    pub id: String,
    /// On-demand or through the plan.
    pub method: BackupMethodTag,
    /// The backup vault holding it (AWS Backup recovery points).
    pub vault: Option<String>,
}

/// [`BackupMethod`] as part of a [`BackupRef`] (hashable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupMethodTag {
    /// On-demand.
    OnDemand,
    /// An AWS Backup recovery point.
    Plan,
}

/// Something the drill made and must remove.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A table (with its replicas, which go first).
    Table(TableRef),
    /// A replica of `table` in `region`.
    Replica {
        /// The replicated table.
        table: TableRef,
        /// The replica's region.
        region: RegionName,
    },
    /// A backup or recovery point.
    Backup(BackupRef),
    /// A copy job still running (started in `region`): removing it waits for the job
    /// and deletes the recovery point it made.
    CopyJob {
        /// The region the job runs in (the source's).
        region: RegionName,
        /// The job.
        job_id: String,
    },
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Table(t) => write!(f, "{t}"),
            Resource::Replica { table, region } => write!(f, "replica of {} in {region}", table.name),
            Resource::Backup(b) => write!(f, "backup {} in {}", b.id, b.region),
            Resource::CopyJob { region, job_id } => write!(f, "copy job {job_id} in {region}"),
        }
    }
}

/// Everything the drill made that still exists, in the order it was made. Shared
/// with the caller, so that when a drill is interrupted (its future dropped) the
/// caller can still remove what it made.
#[derive(Debug, Clone, Default)]
pub struct Cleanup {
    made: Arc<Mutex<Vec<Resource>>>,
}

impl Cleanup {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `r` (before it is created, so an interruption mid-creation still
    /// removes it; removing something that never came to be is not an error).
    pub fn add(&self, r: Resource) {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if !made.contains(&r) {
            made.push(r);
        }
    }

    /// Drops `r` from the registry (it has become something else that is
    /// registered, such as a finished copy job's recovery point).
    pub fn forget(&self, r: &Resource) {
        self.made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|x| x != r);
    }

    /// What is registered.
    pub fn pending(&self) -> Vec<Resource> {
        self.made.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Removes everything registered, newest first (restored tables before the
    /// backups they came from, replicas before their tables). Returns what could not
    /// be removed, with the reason; what was removed leaves the registry.
    pub async fn release(&self, backend: &dyn DrillBackend, wait: &Waiter<'_>) -> Vec<String> {
        let mut failed = Vec::new();
        loop {
            let next = {
                let made = self.made.lock().unwrap_or_else(|e| e.into_inner());
                made.iter()
                    .rev()
                    .find(|r| !failed.iter().any(|(f, _): &(Resource, String)| f == *r))
                    .cloned()
            };
            let Some(r) = next else { break };
            (wait.say)(format!("cleaning up: {r}"));
            match backend.remove(&r, wait).await {
                Ok(()) => self
                    .made
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|x| x != &r),
                Err(e) => failed.push((r, e.to_string())),
            }
        }
        failed.into_iter().map(|(r, e)| format!("{r}: {e}")).collect()
    }
}

/// Progress for people (stderr in the CLI).
pub type Say<'a> = &'a (dyn Fn(String) + Send + Sync);

/// How waits are done: a limit, polling intervals, progress, and the cleanup
/// registry the backends register what they create with.
pub struct Waiter<'a> {
    /// The longest any one wait may take.
    pub limit: Duration,
    /// First interval between polls.
    pub poll: Duration,
    /// Longest interval between polls.
    pub max_poll: Duration,
    /// Where progress goes.
    pub say: Say<'a>,
    /// Where created resources are registered.
    pub cleanup: &'a Cleanup,
}

impl<'a> Waiter<'a> {
    /// Waits as `backend` needs (its polling intervals) within `opts.wait_limit`.
    pub fn new(backend: &dyn DrillBackend, opts: &DrillOptions, say: Say<'a>, cleanup: &'a Cleanup) -> Self {
        let g = backend.guarantees();
        Self {
            limit: opts.wait_limit,
            poll: g.poll,
            max_poll: g.max_poll,
            say,
            cleanup,
        }
    }

    /// Polls `check` until it returns `Some`, backing off from `poll` to `max_poll`,
    /// saying what it waits for when the state it reports changes (and at least every
    /// few minutes), and failing after `limit` with what it last saw.
    pub async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Poll<T>>>,
    {
        let start = Instant::now();
        let mut pause = self.poll;
        let mut last = String::new();
        let mut last_said = start;
        loop {
            match check().await? {
                Poll::Ready(v) => {
                    if start.elapsed() >= Duration::from_secs(1) {
                        (self.say)(format!("{what}: done after {}", human(start.elapsed())));
                    }
                    return Ok(v);
                }
                Poll::Pending(state) => {
                    if state != last || last_said.elapsed() >= Duration::from_secs(300) {
                        (self.say)(format!(
                            "waiting for {what}: {state} ({} so far)",
                            human(start.elapsed())
                        ));
                        last_said = Instant::now();
                        last = state;
                    }
                }
            }
            if start.elapsed() >= self.limit {
                return Err(Error::storage(
                    format!("waiting for {what}"),
                    format!("not done within {} (last seen: {last})", human(self.limit)),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.max_poll);
        }
    }
}

/// One look at something being waited for.
#[derive(Debug)]
pub enum Poll<T> {
    /// Done, with its value.
    Ready(T),
    /// Not yet: what it is doing (e.g. `CREATING`).
    Pending(String),
}

/// `3 min 20 s`, `850 ms`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else if s >= 1 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// How a table stops being available in a disaster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The table is lost (deleted).
    Table,
    /// The table's region is lost: replication from it stops.
    Region,
}

/// What the drill needs from a store. Every method that creates something registers
/// it with `wait.cleanup` before it exists; every wait goes through `wait`.
#[async_trait]
pub trait DrillBackend: Send + Sync + std::fmt::Debug {
    /// `embedded` or `dynamodb`.
    fn name(&self) -> &'static str;
    /// What the backend promises (see [`Guarantees`]).
    fn guarantees(&self) -> Guarantees;
    /// The backend's clock, µs since the epoch (the service's idea of now).
    fn now_us(&self) -> u64;
    /// Creates table `t` (PITR on when `pitr`) and waits until it takes writes.
    async fn create_table(&self, t: &TableRef, pitr: bool, wait: &Waiter<'_>) -> Result<()>;
    /// The table as a product store.
    fn store(&self, t: &TableRef) -> Result<Arc<dyn ProductStore>>;
    /// Writes `items` into `t`.
    async fn load(&self, t: &TableRef, items: &[Product]) -> Result<()>;
    /// Every item of `t` (a consistent read).
    async fn scan(&self, t: &TableRef) -> Result<Vec<Product>>;
    /// The latest instant `t` can be restored to (µs since the epoch).
    async fn latest_restorable_us(&self, t: &TableRef) -> Result<u64>;
    /// Restores `t` as it was at `at_us` into the new table `target`; waits.
    async fn restore_to_time(
        &self,
        t: &TableRef,
        at_us: u64,
        target: &TableRef,
        wait: &Waiter<'_>,
    ) -> Result<()>;
    /// Backs `t` up and waits until the backup can be restored.
    async fn backup(&self, t: &TableRef, how: BackupMethod, wait: &Waiter<'_>) -> Result<BackupRef>;
    /// Copies `b` to `region` and waits until the copy can be restored there.
    async fn copy_backup(&self, b: &BackupRef, region: &RegionName, wait: &Waiter<'_>) -> Result<BackupRef>;
    /// Restores `b` into the new table `target`; waits. A restore lands in the backup's
    /// region (DynamoDB, AWS Backup and the embedded store alike), so the driver names
    /// `target` there: a cross-region recovery first copies the backup.
    async fn restore_backup(&self, b: &BackupRef, target: &TableRef, wait: &Waiter<'_>) -> Result<()>;
    /// Adds a replica of `t` in `region`, waits until it is active and has caught up,
    /// and returns it.
    async fn add_replica(&self, t: &TableRef, region: &RegionName, wait: &Waiter<'_>) -> Result<TableRef>;
    /// The disaster.
    async fn lose(&self, t: &TableRef, loss: Loss) -> Result<()>;
    /// The scheduled method's checks of the backup plan (schedule, retention, copy).
    async fn plan_checks(&self, t: &TableRef, wait: &Waiter<'_>) -> Result<Vec<Check>>;
    /// Removes what the drill made, waiting (and retrying) while it is busy; a
    /// resource that is already gone is not an error.
    async fn remove(&self, r: &Resource, wait: &Waiter<'_>) -> Result<()>;
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

/// The first few ids that differ, for the check's detail.
fn differing_ids(expected: &[Product], actual: &[Product]) -> String {
    let want: HashMap<&str, &Product> = expected.iter().map(|p| (p.product_id.as_str(), p)).collect();
    let have: HashMap<&str, &Product> = actual.iter().map(|p| (p.product_id.as_str(), p)).collect();
    let mut out: Vec<String> = Vec::new();
    let mut ids: Vec<&str> = want
        .keys()
        .chain(have.keys())
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    ids.sort_unstable();
    for id in ids {
        match (want.get(id), have.get(id)) {
            (Some(_), None) => out.push(format!("{id} missing")),
            (None, Some(_)) => out.push(format!("{id} extra")),
            (Some(a), Some(b)) if a.content_hash() != b.content_hash() => out.push(format!("{id} different")),
            _ => continue,
        }
        if out.len() == 5 {
            break;
        }
    }
    out.join(", ")
}

/// A writer that keeps adding canaries to a table and records the acknowledged ones.
struct Canaries {
    stop: Arc<AtomicBool>,
    gate: Arc<tokio::sync::Mutex<()>>,
    acked: Arc<Mutex<Vec<(String, u64)>>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Canaries {
    fn start(
        table: Arc<dyn ProductStore>,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
        interval: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, g, a) = (stop.clone(), gate.clone(), acked.clone());
        let handle = tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                {
                    // Held for the whole write: pause() waits for an in-flight write.
                    let _write = g.lock().await;
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    n += 1;
                    let p = Product {
                        product_id: format!("canary-{n:08}"),
                        product_category: "canary".into(),
                        product_title: format!("canary {n}"),
                        sum_rating: 0,
                        count_rating: 0,
                        updated_at_us: clock(),
                    };
                    if table.create(&p).await.is_ok() {
                        a.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((p.product_id, p.updated_at_us));
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
        Self {
            stop,
            gate,
            acked,
            handle: Some(handle),
        }
    }

    /// Holds the writer: no canary is written (none is in flight) until the guard
    /// is dropped.
    async fn pause(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.gate.clone().lock_owned().await
    }

    /// Stops the writer and returns the acknowledged canaries.
    async fn stop(mut self) -> Vec<(String, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        std::mem::take(&mut *self.acked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Canaries {
    fn drop(&mut self) {
        // An interrupted method: stop writing into a table that is being removed.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// RPO from canaries: the span from the newest surviving acknowledged canary before
/// the first lost one to the newest lost one (0 when none was lost). Returns
/// (rpo µs, lost).
pub(crate) fn rpo(acked: &[(String, u64)], recovered: &[Product]) -> (u64, usize) {
    let present: HashSet<&str> = recovered.iter().map(|p| p.product_id.as_str()).collect();
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
async fn bad_deploy(store: &dyn ProductStore, before: &[Product], now_us: u64) -> Result<usize> {
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
                .update(&v.product_id, "corrupted", "corrupted", now_us)
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

/// The seeded products: `seed-0000000` onwards, stamped `now_us`.
pub fn seed_items(n: usize, now_us: u64) -> Vec<Product> {
    (0..n)
        .map(|i| Product {
            product_id: format!("seed-{i:07}"),
            product_category: ["Books", "Audio", "Games", "Home"][i % 4].into(),
            product_title: format!("product {i}"),
            sum_rating: (i % 50) as i64,
            count_rating: (i % 7) as i64,
            updated_at_us: now_us,
        })
        .collect()
}

/// A method in progress: its clock, steps and checks.
struct Run {
    started: Instant,
    steps: Vec<Step>,
    checks: Vec<Check>,
}

impl Run {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            steps: Vec::new(),
            checks: Vec::new(),
        }
    }

    fn step(&mut self, what: impl Into<String>) {
        self.steps.push(Step {
            at_ms: self.started.elapsed().as_secs_f64() * 1e3,
            what: what.into(),
        });
    }
}

/// Runs the drill: each method in turn, each cleaned up whatever happens to it.
/// `cleanup` is shared with the caller (see [`Cleanup`]); `say` gets progress.
pub async fn run(
    backend: &dyn DrillBackend,
    opts: &DrillOptions,
    cleanup: &Cleanup,
    say: Say<'_>,
) -> Result<DrillReport> {
    opts.check()?;
    let wait = Waiter::new(backend, opts, say, cleanup);
    let mut methods = Vec::new();
    let mut left_behind = Vec::new();
    for &m in &opts.methods {
        say(format!("method {}: starting", m.name()));
        let mut run = Run::new();
        let outcome = run_method(backend, m, opts, &wait, &mut run).await;
        let result = match outcome {
            Ok(r) => r,
            Err(e) => {
                run.step(format!("stopped: {e}"));
                run.checks
                    .push(Check::new("method completed", false, e.to_string()));
                failed_result(m, run)
            }
        };
        let mut result = result;
        let leftovers = cleanup.release(backend, &wait).await;
        if !leftovers.is_empty() {
            result.checks.push(Check::new(
                "cleaned up",
                false,
                format!("could not remove: {}", leftovers.join("; ")),
            ));
            result.passed = false;
            left_behind.extend(leftovers);
        }
        say(format!(
            "method {}: {}",
            m.name(),
            if result.passed { "PASS" } else { "FAIL" }
        ));
        methods.push(result);
    }
    Ok(DrillReport::new(backend.name(), opts, methods, left_behind))
}

fn failed_result(method: Method, run: Run) -> MethodResult {
    MethodResult {
        method,
        passed: false,
        rto_ms: 0.0,
        rpo_ms: 0.0,
        expected_items: 0,
        missing: 0,
        extra: 0,
        different: 0,
        canaries_acknowledged: 0,
        canaries_lost: 0,
        checks: run.checks,
        steps: run.steps,
    }
}

/// What a recovery produced: the table to serve and judge, and the truth.
struct Recovery {
    /// The recovered table.
    table: TableRef,
    /// Items it must hold.
    expected: Vec<Product>,
    /// Its items, when they were read at the disaster (replica methods); otherwise
    /// read after the RTO is measured.
    actual: Option<Vec<Product>>,
    disaster: Instant,
    acked: Vec<(String, u64)>,
    /// The API already serving before the disaster (warm standby).
    standing_api: Option<ApiState>,
}

async fn run_method(
    b: &dyn DrillBackend,
    m: Method,
    o: &DrillOptions,
    w: &Waiter<'_>,
    run: &mut Run,
) -> Result<MethodResult> {
    let g = b.guarantees();
    let name = format!("Product-drill-{}-{:x}", m.name(), crate::embedded::unique());
    let primary = TableRef::new(&o.primary_region, &name);
    w.cleanup.add(Resource::Table(primary.clone()));
    b.create_table(&primary, m == Method::Pitr, w).await?;
    let seed = seed_items(o.products, b.now_us());
    b.load(&primary, &seed).await?;
    run.step(format!("seeded {} products into {primary}", o.products));
    let probe = seed[0].clone();
    let clock: Arc<dyn Fn() -> u64 + Send + Sync> = {
        let now = b.now_us();
        let start = Instant::now();
        // The canaries' timestamps follow the backend's clock.
        Arc::new(move || now + start.elapsed().as_micros() as u64)
    };
    let store = b.store(&primary)?;

    let rec = match m {
        Method::Pitr => {
            let canaries = Canaries::start(store.clone(), clock.clone(), g.canary_interval);
            run.step("canary writer started");
            tokio::time::sleep(g.canary_run).await;
            let quiet = canaries.pause().await;
            tokio::time::sleep(g.pitr_margin).await;
            let restore_at = clock();
            tokio::time::sleep(g.pitr_margin).await;
            // No write since the margin before the restore point: this is the table
            // as it was at that instant.
            let truth = b.scan(&primary).await?;
            drop(quiet);
            run.step(format!(
                "restore point chosen with the writer quiet {} on both sides ({} items)",
                human(g.pitr_margin),
                truth.len()
            ));
            tokio::time::sleep(g.canary_run / 2).await;
            let damaged = bad_deploy(store.as_ref(), &truth, clock()).await?;
            run.step(format!("bad deploy deleted and corrupted {damaged} items"));
            tokio::time::sleep(g.canary_run / 2).await;
            let disaster = Instant::now();
            run.step("disaster declared");
            let acked = canaries.stop().await;
            let need = restore_at + g.pitr_margin.as_micros() as u64;
            w.until("the restorable window to pass the restore point", || async {
                let latest = b.latest_restorable_us(&primary).await?;
                Ok(if latest >= need {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!(
                        "latest restorable time is {} behind it",
                        human(Duration::from_micros(need - latest))
                    ))
                })
            })
            .await?;
            let target = TableRef::new(&o.primary_region, &format!("{name}-pitr"));
            w.cleanup.add(Resource::Table(target.clone()));
            b.restore_to_time(&primary, restore_at, &target, w).await?;
            run.step(format!("restored to the restore point into {target}"));
            Recovery {
                table: target,
                expected: truth,
                actual: None,
                disaster,
                acked,
                standing_api: None,
            }
        }
        Method::Backup | Method::Scheduled | Method::CrossRegion => {
            let how = if m == Method::Backup {
                BackupMethod::OnDemand
            } else {
                BackupMethod::Plan
            };
            let canaries = Canaries::start(store.clone(), clock.clone(), g.canary_interval);
            run.step("canary writer started");
            tokio::time::sleep(g.canary_run).await;
            // A backup may hold writes from around its request: none happen then.
            let quiet = canaries.pause().await;
            tokio::time::sleep(g.backup_fuzz).await;
            let backup = b.backup(&primary, how, w).await?;
            tokio::time::sleep(g.backup_fuzz).await;
            let truth = b.scan(&primary).await?;
            drop(quiet);
            run.step(format!(
                "{} backup {} ({} items; writer quiet {} on both sides of the request)",
                if how == BackupMethod::OnDemand {
                    "on-demand"
                } else {
                    "plan"
                },
                backup.id,
                truth.len(),
                human(g.backup_fuzz)
            ));
            if m == Method::Scheduled {
                let checks = b.plan_checks(&primary, w).await?;
                run.step(format!("backup plan checked ({} checks)", checks.len()));
                run.checks.extend(checks);
            }
            let source = if m == Method::CrossRegion {
                let copy = b.copy_backup(&backup, &o.recovery_region, w).await?;
                run.step(format!("backup copied to {} as {}", o.recovery_region, copy.id));
                copy
            } else {
                backup
            };
            tokio::time::sleep(g.canary_run).await;
            let disaster = Instant::now();
            run.step(if m == Method::CrossRegion {
                "primary region lost"
            } else {
                "table lost"
            });
            let acked = canaries.stop().await;
            b.lose(&primary, Loss::Table).await?;
            let target = TableRef::new(&source.region, &format!("{name}-restored"));
            w.cleanup.add(Resource::Table(target.clone()));
            b.restore_backup(&source, &target, w).await?;
            run.step(format!("restored the backup into {target}"));
            Recovery {
                table: target,
                expected: truth,
                actual: None,
                disaster,
                acked,
                standing_api: None,
            }
        }
        Method::PilotLight | Method::WarmStandby => {
            let replica = b.add_replica(&primary, &o.recovery_region, w).await?;
            run.step(format!("replica in {} active and caught up", o.recovery_region));
            let standing_api = (m == Method::WarmStandby).then(|| ApiState {
                store: b.store(&replica).unwrap_or_else(|_| store.clone()),
                backups: None,
                api_key: None,
            });
            let canaries = Canaries::start(store.clone(), clock.clone(), g.canary_interval);
            run.step("canary writer started");
            tokio::time::sleep(g.canary_run).await;
            let disaster = Instant::now();
            run.step("primary region lost");
            let acked = canaries.stop().await;
            // What the replica holds at the disaster is what survives it.
            let actual = b.scan(&replica).await?;
            let primary_final = b.scan(&primary).await?;
            b.lose(&primary, Loss::Region).await?;
            // The truth: the primary's last state, less the canaries the replica had
            // not received yet (that is the RPO, judged against its target).
            let newest = actual
                .iter()
                .filter(|p| p.product_category == "canary")
                .map(|p| p.updated_at_us)
                .max();
            let expected = primary_final
                .into_iter()
                .filter(|p| p.product_category != "canary" || newest.is_some_and(|n| p.updated_at_us <= n))
                .collect();
            Recovery {
                table: replica,
                expected,
                actual: Some(actual),
                disaster,
                acked,
                standing_api,
            }
        }
    };

    let api = match rec.standing_api {
        Some(a) => {
            run.step(format!(
                "clients switched to the API already running in {}",
                o.recovery_region
            ));
            a
        }
        None => {
            if m == Method::PilotLight {
                run.step(format!("API started in {} on the replica", o.recovery_region));
            }
            ApiState {
                store: b.store(&rec.table)?,
                backups: None,
                api_key: None,
            }
        }
    };
    // RTO: disaster to the first correct answer, polled.
    let mut answered = false;
    let deadline = Instant::now() + o.answer_timeout;
    let mut pause = Duration::from_millis(5);
    while Instant::now() < deadline {
        if correct_answer(&api, &probe).await {
            answered = true;
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
    let rto = rec.disaster.elapsed();
    run.step(if answered {
        "first correct answer from the recovered API".to_string()
    } else {
        format!("no correct answer within {}", human(o.answer_timeout))
    });
    let actual = match rec.actual {
        Some(a) => a,
        None => b.scan(&rec.table).await?,
    };
    let (missing, extra, different) = compare(&rec.expected, &actual);
    let (rpo_us, lost) = rpo(&rec.acked, &actual);
    let rpo_d = Duration::from_micros(rpo_us);
    run.step(format!(
        "verified {} items: {missing} missing, {extra} extra, {different} different",
        rec.expected.len()
    ));
    run.checks.push(Check::new(
        "recovered API answers",
        answered,
        if answered {
            format!(
                "GET /getProduct answered correctly {} after the disaster",
                human(rto)
            )
        } else {
            format!("no correct answer within {}", human(o.answer_timeout))
        },
    ));
    run.checks.push(Check::new(
        "items match",
        !rec.expected.is_empty() && missing + extra + different == 0,
        if missing + extra + different == 0 {
            format!("{} items, all equal", rec.expected.len())
        } else {
            format!(
                "{missing} missing, {extra} extra, {different} different of {} expected (e.g. {})",
                rec.expected.len(),
                differing_ids(&rec.expected, &actual)
            )
        },
    ));
    run.checks.push(Check::new(
        "RTO within target",
        rto <= o.rto_target,
        format!("{} (target {})", human(rto), human(o.rto_target)),
    ));
    if m.uses_replica() {
        run.checks.push(Check::new(
            "RPO within target",
            rpo_d <= o.rpo_target,
            format!(
                "{} of acknowledged writes lost, {lost} canaries (target {})",
                human(rpo_d),
                human(o.rpo_target)
            ),
        ));
    }
    let passed = run.checks.iter().all(|c| c.ok);
    Ok(MethodResult {
        method: m,
        passed,
        rto_ms: rto.as_secs_f64() * 1e3,
        rpo_ms: rpo_us as f64 / 1e3,
        expected_items: rec.expected.len(),
        missing,
        extra,
        different,
        canaries_acknowledged: rec.acked.len(),
        canaries_lost: lost,
        checks: std::mem::take(&mut run.checks),
        steps: std::mem::take(&mut run.steps),
    })
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
        assert_eq!(differing_ids(&want, &have), "b different, c missing, d extra");
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
}
