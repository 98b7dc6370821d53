//! Backups and point-in-time restore for the embedded store, with DynamoDB's rules:
//! a restore always creates a new table; PITR keeps a window of 1 to 35 days and
//! restores to any instant inside it; on-demand backups live until deleted; scheduled
//! backups (the original plan: daily at `cron(10 9 * * ? *)`, kept 30 days) expire;
//! a backup can be copied to another region.
//!
//! A backup is a redb file holding one consistent snapshot of the table (a read
//! transaction: writers go on meanwhile) plus a JSON description written last, so a
//! backup without its description is incomplete and never listed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::embedded::{EmbeddedTable, Region};
use crate::product::Product;
use crate::store::{Error, Result};

/// On-demand or scheduled: how every backup in tandem was taken (the embedded
/// store's backups, DynamoDB's on-demand backups, AWS Backup's recovery points).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BackupKind {
    /// Taken on request; kept until deleted.
    OnDemand,
    /// Taken by the schedule (on AWS: a recovery point in the backup plan's vault);
    /// expires after the retention.
    Scheduled,
}

/// A backup's description (field names after DynamoDB's `BackupDetails`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BackupInfo {
    /// Id, unique in the region.
    pub backup_id: String,
    /// Table it was taken from.
    pub table_name: String,
    /// Region holding the backup.
    pub region: String,
    /// On-demand or scheduled.
    pub backup_type: BackupKind,
    /// AVAILABLE once complete.
    pub backup_status: String,
    /// When it was taken, µs since the epoch.
    pub created_at_us: u64,
    /// The newest change the snapshot includes (the backup equals the table's
    /// state at this instant).
    pub as_of_us: u64,
    /// Items in the snapshot.
    pub item_count: u64,
    /// Size of the backup file.
    pub size_bytes: u64,
    /// When a scheduled backup expires.
    pub expires_at_us: Option<u64>,
    /// For a copy: the region it was copied from.
    pub copied_from: Option<String>,
}

/// Days of point-in-time recovery, 1..=35 (DynamoDB's range).
pub fn check_pitr_window(days: u32) -> Result<u32> {
    if (1..=35).contains(&days) {
        Ok(days)
    } else {
        Err(Error::InvalidInput(format!(
            "PITR window of {days} days is out of range: use 1 to 35"
        )))
    }
}

const DAY_US: u64 = 86_400 * 1_000_000;

/// Backups of the tables of one region.
#[derive(Debug, Clone)]
pub struct Backups {
    region: Arc<Region>,
}

impl Backups {
    /// The backups of `region` (in `REGION_DIR/backups/`).
    pub fn new(region: Arc<Region>) -> Result<Self> {
        let dir = region.dir().join("backups");
        std::fs::create_dir_all(&dir).map_err(|e| Error::storage(format!("create {}", dir.display()), e))?;
        Ok(Self { region })
    }

    /// Where the region's backups are (its "vault").
    pub fn dir(&self) -> PathBuf {
        self.region.dir().join("backups")
    }

    /// Removes what backups interrupted mid-write left: a data file without its
    /// description (the description is written last, atomically) and half-written
    /// descriptions. Only files untouched for `min_age` go, so a backup being taken
    /// by another process right now is left alone. Returns the files removed.
    pub fn sweep(&self, min_age: std::time::Duration) -> Result<Vec<PathBuf>> {
        let dir = self.dir();
        let entries =
            std::fs::read_dir(&dir).map_err(|e| Error::storage(format!("list {}", dir.display()), e))?;
        let mut removed = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let orphan = if let Some(id) = name.strip_suffix(".redb") {
                !dir.join(format!("{id}.json")).exists()
            } else {
                name.ends_with(".json.tmp")
            };
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if orphan && old {
                std::fs::remove_file(&p).map_err(|e| Error::storage(format!("remove {}", p.display()), e))?;
                removed.push(p);
            }
        }
        removed.sort();
        Ok(removed)
    }

    fn paths(&self, id: &str) -> Result<(PathBuf, PathBuf)> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::InvalidInput(format!("backup id {id:?} is not valid")));
        }
        Ok((
            self.dir().join(format!("{id}.redb")),
            self.dir().join(format!("{id}.json")),
        ))
    }

    /// Takes a backup of `table` at `now_us`; a scheduled backup expires after
    /// `retention_days`.
    pub fn create(
        &self,
        table: &EmbeddedTable,
        kind: BackupKind,
        now_us: u64,
        retention_days: u32,
    ) -> Result<BackupInfo> {
        let id = format!("{}-{:016x}", table.table_name_str(), crate::embedded::unique());
        let (data, meta) = self.paths(&id)?;
        let (items, as_of_us) = table.snapshot_with_ts()?;
        write_items(&data, &items)?;
        let info = BackupInfo {
            backup_id: id,
            table_name: table.table_name_str().to_string(),
            region: self.region.name().to_string(),
            backup_type: kind,
            backup_status: "AVAILABLE".into(),
            created_at_us: now_us,
            as_of_us,
            item_count: items.len() as u64,
            size_bytes: std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0),
            expires_at_us: (kind == BackupKind::Scheduled)
                .then(|| now_us + u64::from(retention_days) * DAY_US),
            copied_from: None,
        };
        write_meta(&meta, &info)?;
        Ok(info)
    }

    /// Every complete backup, oldest first (of `table` only, when given).
    pub fn list(&self, table: Option<&str>) -> Result<Vec<BackupInfo>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(self.dir()).map_err(|e| Error::storage("list backups", e))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let info: BackupInfo = read_meta(&p)?;
                if table.is_none_or(|t| t == info.table_name) {
                    out.push(info);
                }
            }
        }
        out.sort_by_key(|b| (b.created_at_us, b.backup_id.clone()));
        Ok(out)
    }

    /// One backup's description.
    pub fn describe(&self, id: &str) -> Result<BackupInfo> {
        let (_, meta) = self.paths(id)?;
        if !meta.exists() {
            return Err(Error::NotFound(format!(
                "backup {id} in region {}",
                self.region.name()
            )));
        }
        read_meta(&meta)
    }

    /// Deletes a backup.
    pub fn delete(&self, id: &str) -> Result<BackupInfo> {
        let info = self.describe(id)?;
        let (data, meta) = self.paths(id)?;
        std::fs::remove_file(&meta).map_err(|e| Error::storage(format!("delete {}", meta.display()), e))?;
        let _ = std::fs::remove_file(&data);
        Ok(info)
    }

    /// Checks that a backup is complete: its file holds as many items as described.
    pub fn verify(&self, id: &str) -> Result<BackupInfo> {
        let info = self.describe(id)?;
        let items = self.items(id)?;
        if items.len() as u64 != info.item_count {
            return Err(Error::storage(
                format!("backup {id}"),
                format!(
                    "holds {} items but was described with {}",
                    items.len(),
                    info.item_count
                ),
            ));
        }
        Ok(info)
    }

    fn items(&self, id: &str) -> Result<Vec<Product>> {
        let (data, _) = self.paths(id)?;
        EmbeddedTable::open_file(&format!("backup {id}"), &data)?.snapshot()
    }

    /// Restores a backup into a new table `target` of this region.
    pub fn restore(&self, id: &str, target: &str) -> Result<Arc<EmbeddedTable>> {
        let items = self.items(id)?;
        let table = self.region.create_table(target)?;
        table.load(&items)?;
        Ok(table)
    }

    /// Copies a backup to another region's backups (same id, `copied_from` set).
    pub fn copy_to(&self, id: &str, other: &Backups) -> Result<BackupInfo> {
        let mut info = self.describe(id)?;
        let (src, _) = self.paths(id)?;
        let (dst, dst_meta) = other.paths(id)?;
        std::fs::copy(&src, &dst)
            .map_err(|e| Error::storage(format!("copy {} to {}", src.display(), dst.display()), e))?;
        info.copied_from = Some(self.region.name().to_string());
        info.region = other.region.name().to_string();
        write_meta(&dst_meta, &info)?;
        Ok(info)
    }

    /// Deletes the scheduled backups whose retention has passed at `now_us`.
    pub fn expire(&self, now_us: u64) -> Result<Vec<BackupInfo>> {
        let mut gone = Vec::new();
        for b in self.list(None)? {
            if b.expires_at_us.is_some_and(|e| e <= now_us) {
                gone.push(self.delete(&b.backup_id)?);
            }
        }
        Ok(gone)
    }
}

fn write_items(path: &Path, items: &[Product]) -> Result<()> {
    let t = EmbeddedTable::open_file("backup", path)?;
    t.load(items)
}

fn write_meta(path: &Path, info: &BackupInfo) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec_pretty(info).map_err(|e| Error::storage("encode backup description", e))?;
    std::fs::write(&tmp, body).map_err(|e| Error::storage(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::storage(format!("rename {}", tmp.display()), e))
}

fn read_meta(path: &Path) -> Result<BackupInfo> {
    let bytes = std::fs::read(path).map_err(|e| Error::storage(format!("read {}", path.display()), e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::storage(format!("decode {}", path.display()), e))
}

/// Point-in-time recovery of one table: the window and restores inside it.
#[derive(Debug, Clone)]
pub struct Pitr {
    /// Window in days (1..=35).
    pub window_days: u32,
    /// When PITR was enabled on the table, µs since the epoch.
    pub enabled_at_us: u64,
}

impl Pitr {
    /// PITR enabled at `enabled_at_us` with a window of `window_days`.
    pub fn new(window_days: u32, enabled_at_us: u64) -> Result<Self> {
        Ok(Self {
            window_days: check_pitr_window(window_days)?,
            enabled_at_us,
        })
    }

    /// Earliest restorable instant at `now_us`.
    pub fn earliest_restorable(&self, now_us: u64) -> u64 {
        self.enabled_at_us
            .max(now_us.saturating_sub(u64::from(self.window_days) * DAY_US))
    }

    /// Latest restorable instant at `now_us` (everything committed so far).
    pub fn latest_restorable(&self, now_us: u64) -> u64 {
        now_us
    }

    /// Restores `table` as it was at `at_us` into the new table `target`.
    pub fn restore(
        &self,
        region: &Region,
        table: &EmbeddedTable,
        at_us: u64,
        target: &str,
        now_us: u64,
    ) -> Result<Arc<EmbeddedTable>> {
        let (lo, hi) = (self.earliest_restorable(now_us), self.latest_restorable(now_us));
        if at_us < lo || at_us > hi {
            return Err(Error::InvalidInput(format!(
                "restore time {at_us} µs is outside the restorable window {lo}..={hi} µs"
            )));
        }
        let items = table.state_at(at_us)?;
        let restored = region.create_table(target)?;
        restored.load(&items)?;
        Ok(restored)
    }
}

/// The daily schedule `cron(10 9 * * ? *)`: the most recent 09:10 UTC at or before `now_us`.
pub fn last_scheduled_slot(now_us: u64) -> u64 {
    let slot_of_day = (9 * 3600 + 10 * 60) * 1_000_000u64;
    let day_start = now_us - now_us % DAY_US;
    if now_us >= day_start + slot_of_day {
        day_start + slot_of_day
    } else {
        day_start + slot_of_day - DAY_US
    }
}

/// Runs the schedule at `now_us`: takes today's scheduled backup if it is due and
/// missing, and expires those past retention. Returns the backup taken, if any, and
/// the expired ones.
pub fn run_schedule(
    backups: &Backups,
    table: &EmbeddedTable,
    now_us: u64,
    retention_days: u32,
) -> Result<(Option<BackupInfo>, Vec<BackupInfo>)> {
    let slot = last_scheduled_slot(now_us);
    let have = backups
        .list(Some(table.table_name_str()))?
        .into_iter()
        .any(|b| b.backup_type == BackupKind::Scheduled && b.created_at_us >= slot);
    let taken = if have {
        None
    } else {
        Some(backups.create(table, BackupKind::Scheduled, now_us, retention_days)?)
    };
    let expired = backups.expire(now_us)?;
    Ok((taken, expired))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ProductStore;
    use std::time::Duration;

    fn item(id: &str, ts: u64) -> Product {
        Product {
            product_id: id.into(),
            product_category: "Home".into(),
            product_title: format!("t{ts}"),
            sum_rating: 0,
            count_rating: 0,
            updated_at_us: ts,
        }
    }

    #[tokio::test]
    async fn backup_restore_copy_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let east = Arc::new(Region::new(dir.path(), "us-east-2").unwrap());
        let west = Arc::new(Region::new(dir.path(), "us-east-1").unwrap());
        let t = east.create_table("Product").unwrap();
        for i in 0..50 {
            t.create(&item(&format!("p{i:02}"), 100 + i)).await.unwrap();
        }
        let b = Backups::new(east.clone()).unwrap();
        let info = b.create(&t, BackupKind::OnDemand, 1_000, 30).unwrap();
        assert_eq!((info.item_count, info.expires_at_us), (50, None));
        t.delete("p00").await.unwrap();
        let restored = b.restore(&info.backup_id, "Product-restored").unwrap();
        assert_eq!(restored.snapshot().unwrap().len(), 50);
        assert!(matches!(
            b.restore(&info.backup_id, "Product-restored"),
            Err(Error::AlreadyExists(_))
        ));
        assert_eq!(b.verify(&info.backup_id).unwrap().item_count, 50);
        let wb = Backups::new(west.clone()).unwrap();
        let copy = b.copy_to(&info.backup_id, &wb).unwrap();
        assert_eq!(
            (copy.region.as_str(), copy.copied_from.as_deref()),
            ("us-east-1", Some("us-east-2"))
        );
        assert_eq!(
            wb.restore(&info.backup_id, "Product")
                .unwrap()
                .snapshot()
                .unwrap()
                .len(),
            50
        );
        assert_eq!(b.list(Some("Product")).unwrap().len(), 1);
        b.delete(&info.backup_id).unwrap();
        assert!(matches!(b.describe(&info.backup_id), Err(Error::NotFound(_))));
    }

    #[tokio::test]
    async fn sweep_removes_what_interrupted_backups_left_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let east = Arc::new(Region::new(dir.path(), "us-east-2").unwrap());
        let t = east.create_table("Product").unwrap();
        t.create(&item("p1", 1)).await.unwrap();
        let b = Backups::new(east.clone()).unwrap();
        let kept = b.create(&t, BackupKind::OnDemand, 1_000, 30).unwrap();
        let backups = dir.path().join("us-east-2/backups");
        // Killed after the data, before the description; killed mid-description.
        std::fs::write(backups.join("Product-00000000000000aa.redb"), b"half").unwrap();
        std::fs::write(backups.join("Product-00000000000000bb.json.tmp"), b"{").unwrap();
        // Fresh files may be another process's backup in progress: left alone.
        assert!(b.sweep(Duration::from_secs(60)).unwrap().is_empty());
        let removed = b.sweep(Duration::ZERO).unwrap();
        let names: Vec<_> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Product-00000000000000aa.redb",
                "Product-00000000000000bb.json.tmp"
            ]
        );
        assert_eq!(b.list(None).unwrap(), vec![kept.clone()]);
        assert_eq!(b.verify(&kept.backup_id).unwrap().item_count, 1);
    }

    #[tokio::test]
    async fn pitr_restores_inside_the_window_only() {
        let dir = tempfile::tempdir().unwrap();
        let r = Region::new(dir.path(), "r").unwrap();
        let t = r.create_table("Product").unwrap();
        t.create(&item("a", 1_000)).await.unwrap();
        t.create(&item("b", 2_000)).await.unwrap();
        let p = Pitr::new(35, 500).unwrap();
        let restored = p.restore(&r, &t, 1_500, "Product-1500", 3_000).unwrap();
        assert_eq!(restored.snapshot().unwrap().len(), 1);
        let err = p.restore(&r, &t, 100, "x-early", 3_000).unwrap_err().to_string();
        assert!(err.contains("outside the restorable window"), "{err}");
        assert!(Pitr::new(36, 0).is_err() && Pitr::new(0, 0).is_err());
        let now = 40 * DAY_US;
        assert_eq!(p.earliest_restorable(now), 5 * DAY_US);
    }

    #[tokio::test]
    async fn the_schedule_takes_one_backup_a_day_and_expires_after_retention() {
        let dir = tempfile::tempdir().unwrap();
        let r = Arc::new(Region::new(dir.path(), "r").unwrap());
        let t = r.create_table("Product").unwrap();
        t.create(&item("a", 1)).await.unwrap();
        let b = Backups::new(r.clone()).unwrap();
        let day0 = 20_000 * DAY_US; // a midnight
        let at_0911 = day0 + (9 * 3600 + 11 * 60) * 1_000_000;
        assert_eq!(
            last_scheduled_slot(at_0911),
            day0 + (9 * 3600 + 10 * 60) * 1_000_000
        );
        let (taken, _) = run_schedule(&b, &t, at_0911, 30).unwrap();
        assert!(taken.is_some());
        let (again, _) = run_schedule(&b, &t, at_0911 + 3_600_000_000, 30).unwrap();
        assert!(again.is_none(), "one scheduled backup per day");
        // 31 days later: a new one is taken and the first has expired.
        let (taken, expired) = run_schedule(&b, &t, at_0911 + 31 * DAY_US, 30).unwrap();
        assert!(taken.is_some());
        assert_eq!(expired.len(), 1);
        assert_eq!(b.list(None).unwrap().len(), 1);
    }
}

/// `POST /createBackup` on the embedded store: an on-demand backup of the API's table.
#[derive(Debug)]
pub struct EmbeddedBackupCreator {
    /// Where backups go.
    pub backups: Backups,
    /// The API's table.
    pub table: Arc<EmbeddedTable>,
}

#[async_trait::async_trait]
impl crate::api::BackupCreator for EmbeddedBackupCreator {
    async fn create_backup(&self) -> Result<serde_json::Value> {
        let info = self
            .backups
            .create(&self.table, BackupKind::OnDemand, crate::embedded::now_us(), 0)?;
        serde_json::to_value(info).map_err(|e| Error::storage("encode backup description", e))
    }
}
