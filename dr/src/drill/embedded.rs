//! The drill on the embedded store: regions are directories under the drill's
//! working directory, tables redb files, backups snapshot files, the replica a
//! replicator thread shipping the change log. Exact and fast: backups and restores
//! are instantaneous snapshots, so the margins are a few milliseconds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    BackupMethod, BackupMethodTag, BackupRef, Check, DrillBackend, Guarantees, Loss, Poll, Resource,
    TableRef, Waiter,
};
use crate::backup::{BackupKind, Backups, Pitr, last_scheduled_slot, run_schedule};
use crate::embedded::{EmbeddedTable, Region, now_us};
use crate::product::Product;
use crate::region::RegionName;
use crate::replica::Replicator;
use crate::store::{Error, ProductStore, Result};

/// Runs file work (loads, scans, snapshots, restores of up to millions of items) off
/// the runtime's threads, so that the drill stays responsive to a signal meanwhile.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::storage("the drill's file work", e))?
}

/// Items loaded per transaction.
const LOAD_SLICE: usize = 10_000;

/// The embedded backend of the drill, working in `dir`.
#[derive(Debug)]
pub struct EmbeddedBackend {
    dir: PathBuf,
    pitr_window_days: u32,
    regions: Mutex<HashMap<RegionName, Arc<Region>>>,
    pitr: Mutex<HashMap<TableRef, Pitr>>,
    replicators: Mutex<HashMap<TableRef, Replicator>>,
}

impl EmbeddedBackend {
    /// A backend whose regions live under `dir`, with a PITR window of
    /// `pitr_window_days`.
    pub fn new(dir: &Path, pitr_window_days: u32) -> Self {
        Self {
            dir: dir.to_path_buf(),
            pitr_window_days,
            regions: Mutex::new(HashMap::new()),
            pitr: Mutex::new(HashMap::new()),
            replicators: Mutex::new(HashMap::new()),
        }
    }

    fn region(&self, name: &RegionName) -> Result<Arc<Region>> {
        let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = regions.get(name) {
            return Ok(r.clone());
        }
        let r = Arc::new(Region::new(&self.dir, name.as_str())?);
        regions.insert(name.clone(), r.clone());
        Ok(r)
    }

    fn table(&self, t: &TableRef) -> Result<Arc<EmbeddedTable>> {
        self.region(&t.region)?.table(&t.name, false)
    }

    fn pitr_of(&self, t: &TableRef) -> Result<Pitr> {
        let pitr = self
            .pitr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(t)
            .cloned();
        pitr.ok_or_else(|| Error::InvalidInput(format!("{t} has no point-in-time recovery")))
    }

    fn backups(&self, region: &RegionName) -> Result<Backups> {
        Backups::new(self.region(region)?)
    }

    /// Stops the replicator feeding from `t`, if one runs.
    fn stop_replicator(&self, t: &TableRef) {
        let rep = self
            .replicators
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(t);
        if let Some(rep) = rep {
            rep.stop();
        }
    }
}

#[async_trait]
impl DrillBackend for EmbeddedBackend {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            // Snapshots are exact: a few milliseconds keep the clocks honest.
            backup_fuzz: Duration::from_millis(5),
            pitr_margin: Duration::from_millis(5),
            canary_interval: Duration::from_millis(1),
            canary_run: Duration::from_millis(100),
            poll: Duration::from_millis(5),
            max_poll: Duration::from_millis(50),
        }
    }

    fn now_us(&self) -> u64 {
        now_us()
    }

    async fn create_table(&self, t: &TableRef, pitr: bool, _wait: &Waiter<'_>) -> Result<()> {
        self.region(&t.region)?.create_table(&t.name)?;
        if pitr {
            self.pitr
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(t.clone(), Pitr::new(self.pitr_window_days, now_us())?);
        }
        Ok(())
    }

    fn store(&self, t: &TableRef) -> Result<Arc<dyn ProductStore>> {
        Ok(self.table(t)?)
    }

    async fn load(&self, t: &TableRef, items: &[Product]) -> Result<()> {
        // In slices: a drill that is stopped stops loading after the current one.
        for slice in items.chunks(LOAD_SLICE) {
            let table = self.table(t)?;
            let slice = slice.to_vec();
            blocking(move || table.load(&slice)).await?;
        }
        Ok(())
    }

    async fn scan(&self, t: &TableRef) -> Result<Vec<Product>> {
        let table = self.table(t)?;
        blocking(move || table.snapshot()).await
    }

    async fn latest_restorable_us(&self, t: &TableRef) -> Result<u64> {
        let pitr = self.pitr_of(t)?;
        Ok(pitr.latest_restorable(now_us()))
    }

    async fn restore_to_time(
        &self,
        t: &TableRef,
        at_us: u64,
        target: &TableRef,
        _wait: &Waiter<'_>,
    ) -> Result<()> {
        let pitr = self.pitr_of(t)?;
        let region = self.region(&target.region)?;
        let table = self.table(t)?;
        let name = target.name.clone();
        blocking(move || pitr.restore(&region, &table, at_us, &name, now_us()).map(|_| ())).await
    }

    async fn backup(&self, t: &TableRef, how: BackupMethod, wait: &Waiter<'_>) -> Result<BackupRef> {
        let kind = match how {
            BackupMethod::OnDemand => BackupKind::OnDemand,
            BackupMethod::Plan => BackupKind::Scheduled,
        };
        let table = self.table(t)?;
        let backups = self.backups(&t.region)?;
        let info = blocking(move || backups.create(&table, kind, now_us(), 30)).await?;
        let b = BackupRef {
            region: t.region.clone(),
            id: info.backup_id,
            method: match how {
                BackupMethod::OnDemand => BackupMethodTag::OnDemand,
                BackupMethod::Plan => BackupMethodTag::Plan,
            },
            vault: None,
        };
        wait.cleanup.add(Resource::Backup(b.clone()));
        Ok(b)
    }

    async fn copy_backup(&self, b: &BackupRef, region: &RegionName, wait: &Waiter<'_>) -> Result<BackupRef> {
        let copy = BackupRef {
            region: region.clone(),
            id: b.id.clone(),
            method: b.method,
            vault: None,
        };
        wait.cleanup.add(Resource::Backup(copy.clone()));
        let (from, to, id) = (self.backups(&b.region)?, self.backups(region)?, b.id.clone());
        blocking(move || from.copy_to(&id, &to).map(|_| ())).await?;
        Ok(copy)
    }

    async fn restore_backup(&self, b: &BackupRef, target: &TableRef, _wait: &Waiter<'_>) -> Result<()> {
        let (backups, id, name) = (self.backups(&b.region)?, b.id.clone(), target.name.clone());
        blocking(move || backups.restore(&id, &name).map(|_| ())).await
    }

    async fn add_replica(&self, t: &TableRef, region: &RegionName, wait: &Waiter<'_>) -> Result<TableRef> {
        let replica = TableRef::new(region, &t.name);
        wait.cleanup.add(Resource::Replica {
            table: t.clone(),
            region: region.clone(),
        });
        let primary = self.table(t)?;
        let copy = self.region(region)?.create_table(&t.name)?;
        let rep = Replicator::start(primary.clone(), copy, Duration::from_millis(20));
        self.replicators
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(t.clone(), rep);
        // A standby in steady state: the seed has been shipped.
        wait.until("the replica to catch up", || async {
            let reps = self.replicators.lock().unwrap_or_else(|e| e.into_inner());
            let lag = match reps.get(t) {
                Some(r) => r.lag_us(&primary)?,
                None => return Err(Error::NotFound(format!("replicator of {t}"))),
            };
            Ok(match lag {
                0 => Poll::Ready(()),
                // A replica that has applied nothing is "behind" since the epoch.
                l if l > 3_600_000_000 => Poll::Pending("nothing applied yet".into()),
                l => Poll::Pending(format!("{} behind", super::human(Duration::from_micros(l)))),
            })
        })
        .await?;
        Ok(replica)
    }

    async fn lose(&self, t: &TableRef, loss: Loss) -> Result<()> {
        // The region is gone: nothing more reaches the replica.
        self.stop_replicator(t);
        if loss == Loss::Table {
            self.region(&t.region)?.delete_table(&t.name)?;
        }
        Ok(())
    }

    async fn plan_checks(&self, t: &TableRef, wait: &Waiter<'_>) -> Result<Vec<Check>> {
        let backups = self.backups(&t.region)?;
        let table = self.table(t)?;
        let now = now_us();
        // A scheduled backup from 31 days ago, which the 30-day retention must remove.
        let old = backups.create(&table, BackupKind::Scheduled, now - 31 * 86_400_000_000, 30)?;
        wait.cleanup.add(Resource::Backup(BackupRef {
            region: t.region.clone(),
            id: old.backup_id.clone(),
            method: BackupMethodTag::Plan,
            vault: None,
        }));
        let (taken, expired) = run_schedule(&backups, &table, now, 30)?;
        if let Some(b) = &taken {
            wait.cleanup.add(Resource::Backup(BackupRef {
                region: t.region.clone(),
                id: b.backup_id.clone(),
                method: BackupMethodTag::Plan,
                vault: None,
            }));
        }
        let latest = backups
            .list(Some(&t.name))?
            .into_iter()
            .rfind(|b| b.backup_type == BackupKind::Scheduled);
        let slot = last_scheduled_slot(now);
        let mut checks = Vec::new();
        match latest {
            Some(info) => {
                checks.push(Check::new(
                    "scheduled backup complete",
                    backups.verify(&info.backup_id).is_ok(),
                    format!("{} holds {} items", info.backup_id, info.item_count),
                ));
                checks.push(Check::new(
                    "taken in its daily interval",
                    info.created_at_us >= slot && info.created_at_us <= now,
                    "cron(10 9 * * ? *): the latest scheduled backup is from the latest 09:10 UTC slot",
                ));
            }
            None => checks.push(Check::new(
                "scheduled backup complete",
                false,
                "no scheduled backup exists",
            )),
        }
        let retention =
            expired.iter().any(|b| b.backup_id == old.backup_id) && backups.describe(&old.backup_id).is_err();
        checks.push(Check::new(
            "30-day retention enforced",
            retention,
            if retention {
                "a 31-day-old scheduled backup was expired"
            } else {
                "a 31-day-old scheduled backup was not expired"
            },
        ));
        Ok(checks)
    }

    async fn remove(&self, r: &Resource, _wait: &Waiter<'_>) -> Result<()> {
        let gone = |e: Error| match e {
            Error::NotFound(_) => Ok(()),
            other => Err(other),
        };
        match r {
            Resource::Table(t) => {
                self.stop_replicator(t);
                self.pitr.lock().unwrap_or_else(|e| e.into_inner()).remove(t);
                self.region(&t.region)?.delete_table(&t.name).or_else(gone)
            }
            Resource::Replica { table, region } => {
                self.stop_replicator(table);
                self.region(region)?.delete_table(&table.name).or_else(gone)
            }
            Resource::Backup(b) => self.backups(&b.region)?.delete(&b.id).map(|_| ()).or_else(gone),
            // Copies are instantaneous here: there is never a job left running.
            Resource::CopyJob { .. } => Ok(()),
        }
    }
}
