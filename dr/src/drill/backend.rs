//! What the drill needs from a store and its services ([`DrillBackend`]), and the
//! names it passes around: tables, backups, recovery points, the plan.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::check::Check;
use super::cleanup::Resource;
use super::failover::{Deployment, StandbyMode};
use super::wait::Waiter;
pub use crate::backup::BackupKind;
use crate::product::Product;
use crate::region::RegionName;
use crate::store::{ProductStore, Result};

/// What a backend promises about its backups and restores, and the pace of the
/// drill on it. The canary rules are derived from these, not from what one run
/// happened to show.
#[derive(Debug, Clone, Copy)]
pub struct Guarantees {
    /// A backup may include writes made up to this long before or after it was
    /// requested (DynamoDB: about a minute); the writer is quiet for this long on
    /// both sides of the request, and a plan's backup is compared with the table
    /// leaving out the items written this close to its start.
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

/// A table in a region.
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

/// A backup or recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackupRef {
    /// The region holding it.
    pub region: RegionName,
    /// Its id (an ARN on AWS).
    pub id: String,
    /// On demand, or a recovery point of the plan (`Scheduled`: in the plan's vault,
    /// through AWS Backup with the plan's role).
    pub kind: BackupKind,
    /// The backup vault holding it (recovery points).
    pub vault: Option<String>,
}

/// A recovery point the plan made, and when its backup started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPoint {
    /// The point.
    pub backup: BackupRef,
    /// When the backup that made it started, µs since the epoch.
    pub created_us: u64,
}

/// The table a backup plan protects, and the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSource {
    /// The table the plan backs up (on AWS the served table itself, which the drill
    /// only reads and restores from: it is never written or deleted).
    pub table: TableRef,
    /// The plan, as the report names it (its id on AWS).
    pub plan: String,
    /// The vault its recovery points go to.
    pub vault: String,
    /// How often it backs up, as its rule says (`cron(10 9 * * ? *)`).
    pub schedule: String,
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
    async fn backup(&self, t: &TableRef, kind: BackupKind, wait: &Waiter<'_>) -> Result<BackupRef>;
    /// Copies `b` to `region` and waits until the copy can be restored there.
    async fn copy_backup(&self, b: &BackupRef, region: &RegionName, wait: &Waiter<'_>) -> Result<BackupRef>;
    /// Restores `b` into the new table `target`; waits. A restore lands in the backup's
    /// region (DynamoDB, AWS Backup and the embedded store alike), so the driver names
    /// `target` there: a cross-region recovery first copies the backup.
    async fn restore_backup(&self, b: &BackupRef, target: &TableRef, wait: &Waiter<'_>) -> Result<()>;
    /// The disaster of the restore methods: the table is deleted.
    async fn delete_table(&self, t: &TableRef) -> Result<()>;
    /// The table the backup plan protects, made ready when the backend keeps its
    /// own (the embedded store seeds `seed` into it and runs its plan once); on AWS
    /// the deployed table and plan, untouched.
    async fn plan_source(&self, seed: &[Product], wait: &Waiter<'_>) -> Result<PlanSource>;
    /// The recovery points the plan made of `source` since `since_us`, completed,
    /// newest first.
    async fn plan_recovery_points(&self, source: &PlanSource, since_us: u64) -> Result<Vec<RecoveryPoint>>;
    /// The plan's rule against what the deployment promises (schedule, retention,
    /// copy).
    async fn plan_checks(&self, source: &PlanSource, wait: &Waiter<'_>) -> Result<Vec<Check>>;
    /// The two-region deployment the failover methods drill, with its standby as
    /// `mode` wants it: the embedded backend builds one (two servers over two
    /// regions, replicating both ways); on AWS it is the deployed stacks, whose
    /// standby must be deployed as `mode`.
    async fn deployment(&self, mode: StandbyMode, wait: &Waiter<'_>) -> Result<Arc<dyn Deployment>>;
    /// Removes what the drill made, waiting (and retrying) while it is busy; a
    /// resource that is already gone is not an error.
    async fn remove(&self, r: &Resource, wait: &Waiter<'_>) -> Result<()>;
}
