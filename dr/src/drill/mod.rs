//! The disaster-recovery drill: one driver, every backend.
//!
//! Each method declares a disaster, recovers, and verifies the recovery item by item,
//! measuring RTO (disaster to the first correct answer from the recovered API) and
//! RPO (the acknowledged writes lost). Three families:
//! - [`restore`]: point in time (`pitr`), a backup (`backup`), the plan's own newest
//!   recovery point (`scheduled`), a backup copied to the recovery region
//!   (`cross-region`), each into a new table;
//! - [`failover`]: the standby region (`pilot-light`, `warm-standby`): a deployment
//!   in two regions, replicated both ways, failed over and back.
//!
//! The algorithm lives here once. What differs between the embedded store and
//! DynamoDB with AWS Backup (how a table is made, backed up, restored or replicated,
//! how a deployment fails over, how long that takes) is behind [`DrillBackend`] and
//! [`Deployment`]: [`embedded::EmbeddedBackend`] and, with the `drill-aws` feature,
//! [`aws::AwsBackend`]. The canary rules follow what each backend guarantees
//! ([`Guarantees`]): around a restore point or a backup request the writer is held
//! quiet for the service's documented margin, so the verdict never depends on clock
//! skew or on which side of a fuzzy boundary a write fell.
//!
//! A method passes only when every [`Check`] it made holds; the drill never reports
//! a pass it did not verify. Every resource a method creates is registered with a
//! [`Cleanup`] before it exists and removed on every exit path: success, an error,
//! or (through the caller's signal handling) an interruption.

#[cfg(feature = "drill-aws")]
pub mod aws;
pub mod backend;
pub mod canaries;
pub mod check;
pub mod cleanup;
pub mod client;
pub mod embedded;
pub mod failover;
#[cfg(feature = "fake-aws")]
pub mod fake_aws;
pub mod metrics;
#[cfg(feature = "drill-aws")]
pub mod publish;
pub mod report;
pub mod restore;
pub mod verdict;
pub mod wait;

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

pub use backend::{BackupKind, BackupRef, DrillBackend, Guarantees, PlanSource, RecoveryPoint, TableRef};
pub use canaries::Clock;
pub use check::{Check, CheckKind, Checks};
pub use cleanup::{Cleanup, Resource};
pub use client::{ApiClient, ApiEndpoint};
pub use failover::{Deployment, StandbyMode};
pub use verdict::Diff;
pub use wait::{Backoff, Poll, Say, Waiter, human};

use crate::region::RegionName;
use crate::store::{Error, Result};

/// A recovery method the drill exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Point-in-time restore to just before a bad deploy.
    Pitr,
    /// Restore from an on-demand backup.
    Backup,
    /// Restore the newest recovery point the backup plan made.
    Scheduled,
    /// Restore a recovery point copied to the recovery region.
    CrossRegion,
    /// Fail over to the standby region's API, switched on by the failover.
    PilotLight,
    /// Fail over to the standby region's API, already running.
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

    /// The standby mode a failover method drills (`None` for the restore methods).
    pub fn standby(self) -> Option<StandbyMode> {
        match self {
            Method::PilotLight => Some(StandbyMode::PilotLight),
            Method::WarmStandby => Some(StandbyMode::WarmStandby),
            _ => None,
        }
    }

    /// What the method's RPO is, by design (the measured one is beside it in the
    /// report): a property of the schedule for the backup methods, of replication
    /// for the replica methods.
    pub fn rpo_guarantee(self, opts: &DrillOptions) -> String {
        match self {
            Method::Pitr => format!(
                "to the second within the last {} days (the latest restorable time trails now by about 5 minutes)",
                opts.pitr_window_days
            ),
            Method::Backup => "everything written since the last on-demand backup (taken when someone asks)".into(),
            Method::Scheduled => {
                "up to a day plus the backup's duration: the plan backs up daily at 09:10 UTC".into()
            }
            Method::CrossRegion => {
                "up to a day plus the copy's duration: the plan copies each daily backup to the recovery region".into()
            }
            Method::PilotLight | Method::WarmStandby => format!(
                "replication lag (typically under a second for DynamoDB global tables); judged against the target {}",
                human(opts.rpo_target)
            ),
        }
    }
}

/// What to drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The primary region.
    pub primary_region: RegionName,
    /// The recovery region (replica, copied backups, the standby).
    pub recovery_region: RegionName,
    /// Products to seed (the failover methods seed at most
    /// [`failover::FAILOVER_SEED_MAX`]).
    pub products: usize,
    /// Methods to run.
    pub methods: Vec<Method>,
    /// Every method's RTO must be within this.
    pub rto_target: Duration,
    /// The replica methods' RPO must be within this; every write older than this at
    /// the disaster must have reached the replica.
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
    /// What was lost, as measured: the span of acknowledged writes lost (the age of
    /// the recovery point for `scheduled`), in ms.
    pub rpo_ms: f64,
    /// What the method's RPO is by design (see [`Method::rpo_guarantee`]).
    pub rpo_guarantee: String,
    /// Whether the measured RPO is judged against the RPO target (replica methods).
    pub rpo_judged: bool,
    /// Items the recovery must hold.
    pub expected_items: usize,
    /// Expected items absent from the recovery.
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
    pub checks: Checks,
    /// The method's timeline.
    pub steps: Vec<Step>,
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
}

/// What one method works with.
pub(crate) struct Ctx<'a> {
    pub backend: &'a dyn DrillBackend,
    pub opts: &'a DrillOptions,
    pub wait: &'a Waiter<'a>,
    pub method: Method,
    /// Names what the method makes: `Product-drill-METHOD-ID`.
    id: u64,
}

impl Ctx<'_> {
    /// The method's scratch table (and the prefix of what else it names).
    pub fn table_name(&self) -> String {
        format!("Product-drill-{}-{:x}", self.method.name(), self.id)
    }

    /// The backend's clock, as a function.
    pub fn clock(&self) -> Clock {
        let start_us = self.backend.now_us();
        let start = Instant::now();
        // Follows the backend's clock from here (the fake account's is virtual).
        std::sync::Arc::new(move || start_us + start.elapsed().as_micros() as u64)
    }
}

/// What a method measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measured {
    pub rto: Duration,
    pub rpo_us: u64,
    pub expected_items: usize,
    pub diff: Diff,
    pub canaries_acknowledged: usize,
    pub canaries_lost: usize,
}

/// A method in progress: its clock, steps and checks.
pub(crate) struct Run {
    started: Instant,
    pub steps: Vec<Step>,
    pub checks: Checks,
}

impl Run {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            steps: Vec::new(),
            checks: Checks::default(),
        }
    }

    /// Adds a step to the timeline.
    pub fn step(&mut self, what: impl Into<String>) {
        self.steps.push(Step {
            at_ms: self.started.elapsed().as_secs_f64() * 1e3,
            what: what.into(),
        });
    }

    fn result(self, method: Method, opts: &DrillOptions, m: Measured) -> MethodResult {
        MethodResult {
            method,
            passed: self.checks.all_held(),
            rto_ms: m.rto.as_secs_f64() * 1e3,
            rpo_ms: m.rpo_us as f64 / 1e3,
            rpo_guarantee: method.rpo_guarantee(opts),
            rpo_judged: method.standby().is_some(),
            expected_items: m.expected_items,
            missing: m.diff.missing,
            extra: m.diff.extra,
            different: m.diff.different,
            canaries_acknowledged: m.canaries_acknowledged,
            canaries_lost: m.canaries_lost,
            checks: self.checks,
            steps: self.steps,
        }
    }
}

async fn run_method(ctx: &Ctx<'_>, run: &mut Run) -> Result<Measured> {
    match ctx.method {
        Method::Pitr => restore::point_in_time(ctx, run).await,
        Method::Backup | Method::CrossRegion => restore::backup_and_copy(ctx, run).await,
        Method::Scheduled => restore::scheduled(ctx, run).await,
        Method::PilotLight => failover::replica_failover(ctx, run, StandbyMode::PilotLight).await,
        Method::WarmStandby => failover::replica_failover(ctx, run, StandbyMode::WarmStandby).await,
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
    for &method in &opts.methods {
        say(format!("method {}: starting", method.name()));
        let ctx = Ctx {
            backend,
            opts,
            wait: &wait,
            method,
            id: crate::embedded::unique(),
        };
        let mut run = Run::new();
        let measured = match run_method(&ctx, &mut run).await {
            Ok(m) => m,
            Err(e) => {
                run.step(format!("stopped: {e}"));
                run.checks.push(CheckKind::MethodCompleted, false, e.to_string());
                Measured::default()
            }
        };
        let mut result = run.result(method, opts, measured);
        let leftovers = cleanup.release(backend, &wait).await;
        if !leftovers.is_empty() {
            result.checks.push(
                CheckKind::CleanedUp,
                false,
                format!("could not remove: {}", leftovers.join("; ")),
            );
            result.passed = false;
            left_behind.extend(leftovers);
        }
        say(format!(
            "method {}: {}",
            method.name(),
            if result.passed { "PASS" } else { "FAIL" }
        ));
        methods.push(result);
    }
    Ok(DrillReport::new(backend.name(), opts, methods, left_behind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_by_name() {
        assert_eq!(Method::parse("pilot-light").unwrap(), Method::PilotLight);
        assert!(
            Method::parse("magic")
                .unwrap_err()
                .to_string()
                .contains("pitr, backup")
        );
        assert_eq!(Method::WarmStandby.standby(), Some(StandbyMode::WarmStandby));
        assert_eq!(Method::Scheduled.standby(), None);
    }
}
