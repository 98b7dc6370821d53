//! The simulated account: DynamoDB tables (a global table among them), backups,
//! AWS Backup's vaults, jobs and plan, the standby's function, the DNS failover's
//! health check and the API key's secret, as plain state that moves with the
//! instant each call passes in. No SDK here: the rule files translate calls into
//! these methods and their answers (or [`Refusal`]s) back.
//!
//! What it reproduces, because the drill must handle it on a real account:
//! - tables are CREATING for 15 s; writes to a table that is not ACTIVE fail;
//!   DeleteTable is refused while a table is CREATING;
//! - enabling PITR is refused for the first minute after a table becomes active, the
//!   latest restorable time trails now by five minutes, and a restore point outside
//!   the window is refused;
//! - on-demand backups are CREATING for two minutes and hold the writes of up to 40
//!   seconds after the request (inside DynamoDB's documented minute);
//! - restores (point in time, from a backup, AWS Backup restore jobs) take 15 to 20
//!   minutes, backup jobs five, copy jobs ten; recovery points in use by a job cannot
//!   be deleted;
//! - the served table is a global table: a write in one region reaches the other
//!   after its own lag (each item on its own, so out of order), last writer wins;
//! - the backup plan makes a recovery point of the served table every day at 09:10
//!   UTC, holding the writes of up to 20 s after its start;
//! - throttling: every Nth batch write comes back with half its items unprocessed.

use std::collections::{BTreeMap, HashMap};

use crate::drill::StandbyMode;
use crate::product::Product;

pub(super) const ACCOUNT: &str = "123456789012";
pub(super) const SEC_US: u64 = 1_000_000;
pub(super) const MIN_US: u64 = 60 * SEC_US;
const DAY_US: u64 = 86_400 * SEC_US;

/// What to break.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Items every restore (of any kind) leaves out.
    pub restore_drops: usize,
    /// The longest a write to the served table takes to reach the other region
    /// (each write draws its own lag up to this, so they arrive out of order);
    /// `None`: 800 ms.
    pub replica_lag: Option<std::time::Duration>,
    /// Every Nth BatchWriteItem is throttled: half its items come back unprocessed,
    /// as DynamoDB answers a batch it cannot absorb (0: never).
    pub unprocessed_every: u32,
    /// AWS Backup restore jobs end FAILED.
    pub fail_restore_jobs: bool,
    /// The backup plan's schedule is broken: it makes no recovery point.
    pub plan_makes_no_points: bool,
    /// The standby's function accepts being switched on and stays off.
    pub standby_stays_off: bool,
    /// The DNS failover record keeps answering with the primary whatever its health
    /// check says.
    pub dns_ignores_failover: bool,
    /// AWS Backup copy and restore jobs take this long (`None`: 10 and 20 minutes).
    pub slow_jobs: Option<std::time::Duration>,
    /// The primary's API does not answer Route 53's checkers (its region is down):
    /// the health check fails by itself, and DNS answers with the standby unless the
    /// check is inverted.
    pub primary_unhealthy: bool,
}

/// An error the service answers, by its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error code (`ResourceNotFoundException`).
    pub code: &'static str,
    /// Its message.
    pub message: String,
}

pub(super) fn refuse<T>(code: &'static str, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        code,
        message: message.into(),
    })
}

/// One write to a table: when, which item, the item after it (`None`: deleted), and
/// the region it was made in.
#[derive(Debug, Clone)]
pub(super) struct Write {
    pub ts: u64,
    pub id: String,
    pub item: Option<Product>,
    pub origin: String,
}

#[derive(Debug, Clone)]
pub(super) struct Table {
    pub arn: String,
    pub ready_us: u64,
    pub log: Vec<Write>,
    pub pitr_since: Option<u64>,
    /// The other regions of a global table.
    pub replicas: Vec<String>,
    /// Where each item's writes are in `log`, so a read of a few items replays
    /// theirs only (the canaries' writes make the log long).
    by_id: HashMap<String, Vec<usize>>,
}

impl Table {
    fn new(
        arn: String,
        ready_us: u64,
        log: Vec<Write>,
        pitr_since: Option<u64>,
        replicas: Vec<String>,
    ) -> Self {
        let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, w) in log.iter().enumerate() {
            by_id.entry(w.id.clone()).or_default().push(i);
        }
        Self {
            arn,
            ready_us,
            log,
            pitr_since,
            replicas,
            by_id,
        }
    }

    fn push(&mut self, w: Write) {
        self.by_id.entry(w.id.clone()).or_default().push(self.log.len());
        self.log.push(w);
    }

    /// The writes of the items `ids`, in the log's order.
    fn writes_of(&self, ids: &[&str]) -> Vec<&Write> {
        let mut at: Vec<usize> = ids
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter_map(|id| self.by_id.get(*id))
            .flatten()
            .copied()
            .collect();
        at.sort_unstable();
        at.into_iter().map(|i| &self.log[i]).collect()
    }
}

#[derive(Debug, Clone)]
pub(super) struct Backup {
    pub table_arn: String,
    pub region: String,
    pub requested_us: u64,
    pub available_us: u64,
}

#[derive(Debug, Clone)]
pub(super) struct RecoveryPoint {
    pub region: String,
    pub vault: String,
    /// The table it was taken of, and the instant it holds.
    pub source_arn: String,
    pub as_of_us: u64,
    pub created_us: u64,
    pub completed_us: u64,
    /// Made by the plan (not the drill's to delete).
    pub by_plan: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Job {
    pub region: String,
    pub started_us: u64,
    pub done_us: u64,
    pub failed: bool,
    /// Backup job: its recovery point; copy job: the destination point made at the
    /// end.
    pub output: String,
    pub source: String,
    /// Restore: the target table name; copy: the destination region.
    pub target: String,
    /// What the job makes at its end has been made.
    pub settled: bool,
}

impl Job {
    /// A job started in `region` at `now` that takes `takes_us`, reading `source`
    /// and making `output` (or, for a restore or a copy, making it in `target`).
    pub fn new(
        region: &str,
        now: u64,
        takes_us: u64,
        source: String,
        output: String,
        target: String,
    ) -> Self {
        Self {
            region: region.to_string(),
            started_us: now,
            done_us: now + takes_us,
            failed: false,
            output,
            source,
            target,
            settled: false,
        }
    }
}

/// The deployment's names in the account.
#[derive(Debug, Clone)]
pub(super) struct Names {
    pub primary: String,
    pub recovery: String,
    pub table: String,
    pub primary_vault: String,
    pub recovery_vault: String,
    pub plan: String,
    pub role_arn: String,
    pub function: String,
    pub health_check: String,
    pub secret: String,
}

/// The account's state.
#[derive(Debug)]
pub(super) struct Account {
    pub names: Names,
    pub faults: Faults,
    pub tables: HashMap<(String, String), Table>,
    /// Logs of deleted tables, by ARN (backups still read them).
    pub graveyard: HashMap<String, Vec<Write>>,
    pub backups: HashMap<String, Backup>,
    /// The SYSTEM backups DynamoDB made of tables deleted with point-in-time
    /// recovery on, by table: "When you delete a table that has point-in-time
    /// recovery enabled, DynamoDB automatically creates a backup snapshot called a
    /// system backup and retains it for 35 days" (the DynamoDB developer guide).
    pub system_backups: Vec<String>,
    /// The recovery period each table's PITR was switched on with, by table name
    /// (`None`: not sent, DynamoDB's 35 days).
    pub pitr_periods: Vec<(String, Option<i32>)>,
    pub points: HashMap<String, RecoveryPoint>,
    pub backup_jobs: HashMap<String, Job>,
    pub copy_jobs: HashMap<String, Job>,
    pub restore_jobs: HashMap<String, Job>,
    /// Reserved concurrency per function name (`None`: unreserved, it runs).
    pub functions: HashMap<String, Option<i32>>,
    /// Health check id to whether it is inverted.
    pub health_checks: HashMap<String, bool>,
    /// (region, name) to value.
    pub secrets: HashMap<(String, String), String>,
    pub mode: StandbyMode,
    /// When the served table was created (its history starts there).
    pub born_us: u64,
    /// AWS Backup's idempotency tokens: (operation, region, token) to the job the
    /// first call with it started.
    pub idempotent: HashMap<(&'static str, String, String), String>,
    /// Every AWS Backup start call: the operation and its idempotency token.
    pub start_calls: Vec<(&'static str, Option<String>)>,
    requests: u64,
    next_id: u64,
}

/// A stable draw in `0..=max` for a write (the same write always draws the same).
fn draw(id: &str, ts: u64, max: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ ts;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 29;
    h.wrapping_mul(0xbf58_476d_1ce4_e5b9) % (max + 1)
}

/// The jobs of `jobs` whose end has come and whose output is not made yet, marked
/// made.
fn due(jobs: &mut HashMap<String, Job>, now: u64) -> Vec<Job> {
    jobs.values_mut()
        .filter(|j| now >= j.done_us && !j.failed && !j.settled)
        .map(|j| {
            j.settled = true;
            j.clone()
        })
        .collect()
}

/// The daily 09:10 UTC slots in `(after, until]`.
fn slots(after: u64, until: u64) -> impl Iterator<Item = u64> {
    let slot_of_day = (9 * 3600 + 10 * 60) * SEC_US;
    let first_day = after - after % DAY_US;
    (0..)
        .map(move |d| first_day + d * DAY_US + slot_of_day)
        .skip_while(move |s| *s <= after)
        .take_while(move |s| *s <= until)
}

impl Account {
    /// A new account whose deployment (the served global table with its history,
    /// plan, standby function, health check, API key) exists at `now`.
    pub fn new(names: Names, faults: Faults, mode: StandbyMode, now: u64) -> Self {
        let mut a = Self {
            faults,
            tables: HashMap::new(),
            graveyard: HashMap::new(),
            backups: HashMap::new(),
            system_backups: Vec::new(),
            pitr_periods: Vec::new(),
            points: HashMap::new(),
            backup_jobs: HashMap::new(),
            copy_jobs: HashMap::new(),
            restore_jobs: HashMap::new(),
            functions: HashMap::from([(
                names.function.clone(),
                (mode == StandbyMode::PilotLight).then_some(0),
            )]),
            health_checks: HashMap::from([(names.health_check.clone(), false)]),
            secrets: [&names.primary, &names.recovery]
                .into_iter()
                .map(|r| {
                    (
                        (r.clone(), names.secret.clone()),
                        "fake-api-key-0123456789abcdef".to_string(),
                    )
                })
                .collect(),
            mode,
            born_us: now - 3 * DAY_US,
            idempotent: HashMap::new(),
            start_calls: Vec::new(),
            requests: 0,
            next_id: 0,
            names,
        };
        a.seed_served_table(now);
        a
    }

    /// The served table and three days of history: 200 products, one updated every
    /// two hours, and one written ten seconds after each 09:10 backup started.
    fn seed_served_table(&mut self, now: u64) {
        let (primary, born) = (self.names.primary.clone(), self.born_us);
        let product = |i: u64, title: &str, ts: u64| Product {
            product_id: format!("product-{i:04}"),
            product_category: ["Books", "Audio", "Games", "Home"][(i % 4) as usize].into(),
            product_title: title.into(),
            sum_rating: (i % 50) as i64,
            count_rating: (i % 7) as i64,
            updated_at_us: ts,
        };
        let mut log: Vec<Write> = (0..200)
            .map(|i| Write {
                ts: born,
                id: format!("product-{i:04}"),
                item: Some(product(i, &format!("product {i}"), born)),
                origin: primary.clone(),
            })
            .collect();
        let mut t = born + 2 * 3600 * SEC_US;
        let mut k = 0;
        while t < now {
            log.push(Write {
                ts: t,
                id: format!("product-{k:04}"),
                item: Some(product(k, &format!("product {k}, revised at {t}"), t)),
                origin: primary.clone(),
            });
            k = (k + 7) % 200;
            t += 2 * 3600 * SEC_US;
        }
        for slot in slots(born, now) {
            let ts = slot + 10 * SEC_US;
            let i = 100 + slot / DAY_US % 50;
            log.push(Write {
                ts,
                id: format!("product-{i:04}"),
                item: Some(product(i, "written while the backup ran", ts)),
                origin: primary.clone(),
            });
        }
        log.sort_by_key(|w| w.ts);
        let (name, recovery) = (self.names.table.clone(), self.names.recovery.clone());
        self.tables.insert(
            (primary.clone(), name.clone()),
            Table::new(
                Self::table_arn(&primary, &name),
                born,
                log,
                Some(born),
                vec![recovery],
            ),
        );
    }

    pub fn table_arn(region: &str, name: &str) -> String {
        format!("arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}")
    }

    pub fn vault_arn(region: &str, name: &str) -> String {
        format!("arn:aws:backup:{region}:{ACCOUNT}:backup-vault:{name}")
    }

    /// The job an earlier `operation` call with `token` started in `region`: AWS
    /// Backup answers a retry "with the same idempotency token" with "a success
    /// message with no action taken" (StartBackupJob, StartCopyJob, StartRestoreJob
    /// in the AWS Backup API reference). A call without a token starts a new job.
    pub fn started_before(
        &mut self,
        operation: &'static str,
        region: &str,
        token: Option<&str>,
    ) -> Option<String> {
        self.start_calls.push((operation, token.map(str::to_string)));
        let token = token?;
        self.idempotent
            .get(&(operation, region.to_string(), token.to_string()))
            .cloned()
    }

    /// Remembers that `operation` with `token` started `job`.
    pub fn started(&mut self, operation: &'static str, region: &str, token: Option<&str>, job: &str) {
        if let Some(t) = token {
            self.idempotent
                .insert((operation, region.to_string(), t.to_string()), job.to_string());
        }
    }

    pub fn next_id(&mut self) -> String {
        self.next_id += 1;
        format!("{:012x}", self.next_id)
    }

    /// Whether this batch write is one the table throttles (its every Nth).
    pub fn throttled(&mut self) -> bool {
        self.requests += 1;
        self.faults.unprocessed_every > 0
            && self
                .requests
                .is_multiple_of(u64::from(self.faults.unprocessed_every))
    }

    fn lag_max_us(&self) -> u64 {
        self.faults.replica_lag.map_or(800_000, |d| d.as_micros() as u64)
    }

    /// The key of the table `name` seen from `region`: its own, or the global table
    /// it is a replica of.
    fn locate(&self, region: &str, name: &str) -> Option<(String, String)> {
        let own = (region.to_string(), name.to_string());
        if self.tables.contains_key(&own) {
            return Some(own);
        }
        self.tables
            .iter()
            .find(|((_, n), t)| n == name && t.replicas.iter().any(|r| r == region))
            .map(|(k, _)| k.clone())
    }

    /// The items of `log` as `region` sees them at `at`: its own writes at once, the
    /// other region's after each write's lag; last writer wins.
    fn state(&self, log: &[Write], region: &str, at: u64) -> BTreeMap<String, Product> {
        self.replay(log.iter(), region, at)
    }

    /// [`Account::state`] of `writes` (a log, or the part of it some items' writes are).
    fn replay<'a>(
        &self,
        writes: impl Iterator<Item = &'a Write>,
        region: &str,
        at: u64,
    ) -> BTreeMap<String, Product> {
        let lag_max = self.lag_max_us();
        let mut visible: Vec<&Write> = writes
            .filter(|w| {
                let arrives = if w.origin == region {
                    w.ts
                } else {
                    w.ts + draw(&w.id, w.ts, lag_max)
                };
                arrives <= at
            })
            .collect();
        visible.sort_by_key(|w| w.ts);
        let mut items = BTreeMap::new();
        for w in visible {
            match &w.item {
                Some(p) => items.insert(w.id.clone(), p.clone()),
                None => items.remove(&w.id),
            };
        }
        items
    }

    /// The items a read in `region` of `name` sees at `now`; `None` when no active
    /// table answers there.
    pub fn view(&self, region: &str, name: &str, now: u64) -> Option<BTreeMap<String, Product>> {
        let key = self.locate(region, name)?;
        let t = &self.tables[&key];
        (now >= t.ready_us).then(|| self.state(&t.log, region, now))
    }

    /// [`Account::view`] of the items `ids` only: what a read of those keys sees.
    pub fn view_of(
        &self,
        region: &str,
        name: &str,
        ids: &[&str],
        now: u64,
    ) -> Option<BTreeMap<String, Product>> {
        let key = self.locate(region, name)?;
        let t = &self.tables[&key];
        (now >= t.ready_us).then(|| self.replay(t.writes_of(ids).into_iter(), region, now))
    }

    /// Appends a write made in `region` to the table `name`.
    pub fn write(
        &mut self,
        region: &str,
        name: &str,
        id: &str,
        item: Option<Product>,
        now: u64,
    ) -> Result<(), Refusal> {
        let Some(key) = self.locate(region, name) else {
            return refuse("ResourceNotFoundException", "Requested resource not found");
        };
        let t = self.tables.get_mut(&key).expect("located");
        if now < t.ready_us {
            return refuse("ResourceNotFoundException", "Requested resource not found");
        }
        t.push(Write {
            ts: now,
            id: id.to_string(),
            item,
            origin: region.to_string(),
        });
        Ok(())
    }

    pub fn status(&self, region: &str, name: &str, now: u64) -> Option<&'static str> {
        let key = self.locate(region, name)?;
        Some(if now < self.tables[&key].ready_us {
            "CREATING"
        } else {
            "ACTIVE"
        })
    }

    pub fn table(&self, region: &str, name: &str) -> Option<&Table> {
        self.locate(region, name).map(|k| &self.tables[&k])
    }

    /// A new table in `region` holding `items`, ACTIVE at `ready_us`.
    pub fn make_table(&mut self, region: &str, name: &str, items: BTreeMap<String, Product>, ready_us: u64) {
        let log = items
            .into_iter()
            .map(|(id, p)| Write {
                ts: p.updated_at_us.min(ready_us),
                id,
                item: Some(p),
                origin: region.to_string(),
            })
            .collect();
        self.tables.insert(
            (region.to_string(), name.to_string()),
            Table::new(Self::table_arn(region, name), ready_us, log, None, Vec::new()),
        );
    }

    pub fn create_table(&mut self, region: &str, name: &str, now: u64) -> Result<(), Refusal> {
        if self.locate(region, name).is_some() {
            return refuse("ResourceInUseException", format!("Table already exists: {name}"));
        }
        self.make_table(region, name, BTreeMap::new(), now + 15 * SEC_US);
        Ok(())
    }

    pub fn delete_table(&mut self, region: &str, name: &str, now: u64) -> Result<(), Refusal> {
        let key = (region.to_string(), name.to_string());
        let Some(t) = self.tables.get(&key) else {
            return refuse(
                "ResourceNotFoundException",
                format!("Requested resource not found: Table: {name} not found"),
            );
        };
        if name == self.names.table {
            return refuse(
                "AccessDeniedException",
                format!("the drill may not delete the served table {name}"),
            );
        }
        if now < t.ready_us {
            return refuse(
                "ResourceInUseException",
                format!("Attempt to change a resource which is still in use: Table is being created: {name}"),
            );
        }
        if let Some(t) = self.tables.remove(&key) {
            if t.pitr_since.is_some() {
                self.system_backups.push(format!("{name} in {region}"));
            }
            self.graveyard.insert(t.arn, t.log);
        }
        Ok(())
    }

    /// Point-in-time recovery switched off: the table keeps no continuous backup.
    pub fn disable_pitr(&mut self, region: &str, name: &str) -> Result<(), Refusal> {
        let Some(t) = self.tables.get_mut(&(region.to_string(), name.to_string())) else {
            return refuse("TableNotFoundException", format!("Table not found: {name}"));
        };
        t.pitr_since = None;
        Ok(())
    }

    pub fn enable_pitr(&mut self, region: &str, name: &str, now: u64) -> Result<(), Refusal> {
        let Some(t) = self.tables.get_mut(&(region.to_string(), name.to_string())) else {
            return refuse("TableNotFoundException", format!("Table not found: {name}"));
        };
        if now < t.ready_us + MIN_US {
            return refuse(
                "ContinuousBackupsUnavailableException",
                "Backups are being enabled for the table: Please retry later",
            );
        }
        t.pitr_since.get_or_insert(now);
        Ok(())
    }

    /// The restorable window of `name` at `now`: (earliest, latest).
    pub fn pitr_window(&self, region: &str, name: &str, now: u64) -> Result<Option<(u64, u64)>, Refusal> {
        let Some(t) = self.tables.get(&(region.to_string(), name.to_string())) else {
            return refuse("TableNotFoundException", format!("Table not found: {name}"));
        };
        Ok(t.pitr_since
            .map(|since| (since, since.max(now.saturating_sub(5 * MIN_US)))))
    }

    /// A faulty restore: `restore_drops` products left out, the first ones of a
    /// backup, the last ones of a point-in-time restore (so the two never hide
    /// each other's loss).
    fn drop_items(&self, mut items: BTreeMap<String, Product>, from_end: bool) -> BTreeMap<String, Product> {
        let products: Vec<String> = items
            .keys()
            .filter(|k| k.starts_with(crate::drill::verdict::SEED_PREFIX) || k.starts_with("product-"))
            .cloned()
            .collect();
        let n = self.faults.restore_drops.min(products.len());
        let victims = if from_end {
            &products[products.len() - n..]
        } else {
            &products[..n]
        };
        for v in victims {
            items.remove(v);
        }
        items
    }

    /// The log of the table `arn`, deleted or not.
    fn log_of(&self, arn: &str) -> (Vec<Write>, String) {
        self.tables
            .iter()
            .find(|(_, t)| t.arn == arn)
            .map(|((r, _), t)| (t.log.clone(), r.clone()))
            .or_else(|| {
                self.graveyard
                    .get(arn)
                    .map(|l| (l.clone(), arn.split(':').nth(3).unwrap_or_default().to_string()))
            })
            .unwrap_or_default()
    }

    pub fn restore_to_time(
        &mut self,
        region: &str,
        source: &str,
        target: &str,
        at: u64,
        now: u64,
    ) -> Result<(), Refusal> {
        let Some(t) = self.tables.get(&(region.to_string(), source.to_string())) else {
            return refuse("TableNotFoundException", format!("Table not found: {source}"));
        };
        let Some(since) = t.pitr_since else {
            return refuse(
                "PointInTimeRecoveryUnavailableException",
                "Point in time recovery is not enabled",
            );
        };
        let latest = since.max(now.saturating_sub(5 * MIN_US));
        if at < since || at > latest {
            return refuse(
                "InvalidRestoreTimeException",
                format!("Restore time {at} is outside the restorable window {since}..{latest}"),
            );
        }
        if self.locate(region, target).is_some() {
            return refuse(
                "TableAlreadyExistsException",
                format!("Table already exists: {target}"),
            );
        }
        let items = self.drop_items(self.state(&t.log, region, at), true);
        self.make_table(region, target, items, now + 20 * MIN_US);
        Ok(())
    }

    pub fn create_backup(&mut self, region: &str, name: &str, now: u64) -> Result<String, Refusal> {
        let id = self.next_id();
        let Some(t) = self.tables.get(&(region.to_string(), name.to_string())) else {
            return refuse("TableNotFoundException", format!("Table not found: {name}"));
        };
        let arn = format!("{}/backup/{id}", t.arn);
        let table_arn = t.arn.clone();
        self.backups.insert(
            arn.clone(),
            Backup {
                table_arn,
                region: region.to_string(),
                requested_us: now,
                available_us: now + 2 * MIN_US,
            },
        );
        Ok(arn)
    }

    pub fn delete_backup(&mut self, arn: &str, now: u64) -> Result<(), Refusal> {
        match self.backups.get(arn) {
            None => refuse("BackupNotFoundException", format!("Backup not found: {arn}")),
            Some(b) if now < b.available_us => refuse("BackupInUseException", "Backup is being created"),
            Some(_) => {
                self.backups.remove(arn);
                Ok(())
            }
        }
    }

    pub fn restore_backup(&mut self, region: &str, arn: &str, target: &str, now: u64) -> Result<(), Refusal> {
        let Some(b) = self.backups.get(arn).cloned() else {
            return refuse("BackupNotFoundException", format!("Backup not found: {arn}"));
        };
        if b.region != region {
            return refuse(
                "BackupNotFoundException",
                format!("Backup not found in {region}: {arn}"),
            );
        }
        if now < b.available_us {
            return refuse("BackupInUseException", "Backup is being created");
        }
        if self.locate(region, target).is_some() {
            return refuse(
                "TableAlreadyExistsException",
                format!("Table already exists: {target}"),
            );
        }
        let (log, source_region) = self.log_of(&b.table_arn);
        // A backup holds the writes of up to 40 s after its request.
        let items = self.drop_items(
            self.state(&log, &source_region, b.requested_us + 40 * SEC_US),
            false,
        );
        self.make_table(region, target, items, now + 15 * MIN_US);
        Ok(())
    }

    /// The plan's recovery points up to `now` (made on its schedule, kept 30 days).
    pub fn run_plan(&mut self, now: u64) {
        if self.faults.plan_makes_no_points {
            return;
        }
        let source_arn = Self::table_arn(&self.names.primary, &self.names.table);
        for slot in slots(self.born_us, now) {
            if slot + 30 * DAY_US < now {
                continue;
            }
            let arn = format!(
                "arn:aws:backup:{}:{ACCOUNT}:recovery-point:plan-{}",
                self.names.primary,
                slot / SEC_US
            );
            self.points.entry(arn).or_insert_with(|| RecoveryPoint {
                region: self.names.primary.clone(),
                vault: self.names.primary_vault.clone(),
                source_arn: source_arn.clone(),
                as_of_us: slot + 20 * SEC_US,
                created_us: slot,
                completed_us: slot + 5 * MIN_US,
                by_plan: true,
            });
        }
    }

    /// Finishes jobs whose time has come: a copy makes its destination point, a
    /// restore makes its table.
    pub fn settle(&mut self, now: u64) {
        let copies = due(&mut self.copy_jobs, now);
        for j in copies {
            if let Some(src) = self.points.get(&j.source).cloned() {
                self.points.insert(
                    j.output.clone(),
                    RecoveryPoint {
                        region: j.target.clone(),
                        vault: self.names.recovery_vault.clone(),
                        completed_us: j.done_us,
                        by_plan: false,
                        ..src
                    },
                );
            }
        }
        let restores = due(&mut self.restore_jobs, now);
        for j in restores {
            let Some(p) = self.points.get(&j.source).cloned() else {
                continue;
            };
            let (log, source_region) = self.log_of(&p.source_arn);
            let items = self.drop_items(self.state(&log, &source_region, p.as_of_us), false);
            self.make_table(&j.region, &j.target, items, j.done_us);
        }
    }

    /// Whether `point` is being read or made by a job at `now`.
    pub fn point_busy(&self, point: &str, now: u64) -> bool {
        self.copy_jobs
            .values()
            .chain(self.restore_jobs.values())
            .any(|j| j.source == point && now < j.done_us)
            || self
                .backup_jobs
                .values()
                .any(|j| j.output == point && now < j.done_us)
    }

    /// Whether the standby's function runs (its reserved concurrency is not 0).
    pub fn standby_runs(&self) -> bool {
        self.functions.get(&self.names.function) != Some(&Some(0))
    }

    /// Whether clients' DNS answers with the standby.
    pub fn dns_on_standby(&self) -> bool {
        let inverted = self.health_checks.get(&self.names.health_check) == Some(&true);
        !self.faults.dns_ignores_failover && (inverted != self.faults.primary_unhealthy)
    }

    /// What the drill left: tables, backups, recovery points, unfinished jobs, items
    /// in the served table, the switch not as deployed.
    pub fn leftovers(&self, now: u64) -> Vec<String> {
        let mut out: Vec<String> = self
            .tables
            .keys()
            .filter(|(_, n)| *n != self.names.table)
            .map(|(r, n)| format!("table {n} in {r}"))
            .chain(self.backups.keys().map(|b| format!("backup {b}")))
            .chain(
                self.system_backups
                    .iter()
                    .map(|t| format!("SYSTEM backup of {t} (kept 35 days)")),
            )
            .chain(
                self.points
                    .iter()
                    .filter(|(_, p)| !p.by_plan)
                    .map(|(k, _)| format!("recovery point {k}")),
            )
            .collect();
        for (kind, jobs) in [
            ("backup", &self.backup_jobs),
            ("copy", &self.copy_jobs),
            ("restore", &self.restore_jobs),
        ] {
            for (id, j) in jobs {
                if j.done_us > now {
                    out.push(format!("{kind} job {id} still running"));
                }
            }
        }
        if let Some(items) = self.view(&self.names.primary, &self.names.table, now) {
            for p in items.values() {
                if p.product_title.contains("Product-drill-") {
                    out.push(format!(
                        "item {} ({}) in the served table",
                        p.product_id, p.product_title
                    ));
                }
            }
        }
        if self.standby_runs() != (self.mode == StandbyMode::WarmStandby) {
            out.push(format!(
                "the standby's function switched {}",
                if self.standby_runs() { "on" } else { "off" }
            ));
        }
        if self.health_checks.values().any(|inverted| *inverted) {
            out.push("the primary's health check left inverted".into());
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000 * SEC_US;

    fn names() -> Names {
        Names {
            primary: "us-east-2".into(),
            recovery: "us-east-1".into(),
            table: "Served".into(),
            primary_vault: "pv".into(),
            recovery_vault: "rv".into(),
            plan: "plan-1".into(),
            role_arn: "arn:aws:iam::1:role/r".into(),
            function: "standby-fn".into(),
            health_check: "hc-1".into(),
            secret: "key".into(),
        }
    }

    fn account(faults: Faults) -> Account {
        Account::new(names(), faults, StandbyMode::PilotLight, NOW)
    }

    fn product(id: &str, ts: u64) -> Product {
        Product {
            product_id: id.into(),
            product_category: "c".into(),
            product_title: "t".into(),
            sum_rating: 0,
            count_rating: 0,
            updated_at_us: ts,
        }
    }

    #[test]
    fn a_new_table_is_creating_then_takes_writes_and_enables_pitr_after_a_minute() {
        let mut a = account(Faults::default());
        a.create_table("us-east-2", "T", NOW).unwrap();
        assert_eq!(a.status("us-east-2", "T", NOW), Some("CREATING"));
        assert!(
            a.write("us-east-2", "T", "x", Some(product("x", NOW)), NOW)
                .is_err()
        );
        assert_eq!(
            a.delete_table("us-east-2", "T", NOW).unwrap_err().code,
            "ResourceInUseException"
        );
        let ready = NOW + 15 * SEC_US;
        a.write("us-east-2", "T", "x", Some(product("x", ready)), ready)
            .unwrap();
        assert_eq!(
            a.enable_pitr("us-east-2", "T", ready).unwrap_err().code,
            "ContinuousBackupsUnavailableException"
        );
        a.enable_pitr("us-east-2", "T", ready + MIN_US).unwrap();
        let (lo, hi) = a
            .pitr_window("us-east-2", "T", ready + 10 * MIN_US)
            .unwrap()
            .unwrap();
        assert_eq!((lo, hi), (ready + MIN_US, ready + 5 * MIN_US));
        assert!(
            a.restore_to_time("us-east-2", "T", "U", hi + 1, ready + 10 * MIN_US)
                .is_err()
        );
    }

    #[test]
    fn the_served_table_replicates_each_write_on_its_own_lag_last_writer_wins() {
        let mut a = account(Faults {
            replica_lag: Some(std::time::Duration::from_secs(10)),
            ..Faults::default()
        });
        let t = NOW;
        for i in 0..50 {
            a.write(
                "us-east-2",
                "Served",
                &format!("c{i:02}"),
                Some(product(&format!("c{i:02}"), t + i)),
                t + i,
            )
            .unwrap();
        }
        // At once in the region written, later and out of order in the other.
        assert_eq!(
            a.view("us-east-2", "Served", t + 50)
                .unwrap()
                .keys()
                .filter(|k| k.starts_with('c'))
                .count(),
            50
        );
        let seen = |at: u64| -> Vec<bool> {
            let v = a.view("us-east-1", "Served", at).unwrap();
            (0..50).map(|i| v.contains_key(&format!("c{i:02}"))).collect()
        };
        let partial = seen(t + 5 * SEC_US);
        assert!(
            partial.iter().any(|x| *x) && partial.iter().any(|x| !*x),
            "{partial:?}"
        );
        let first_missing = partial.iter().position(|x| !*x).unwrap();
        assert!(
            partial[first_missing..].iter().any(|x| *x),
            "arrives out of order: a later write is there while an earlier one is not"
        );
        assert!(seen(t + 11 * SEC_US).iter().all(|x| *x));
        // Written on both sides: the later write wins in both regions.
        a.write(
            "us-east-1",
            "Served",
            "c00",
            Some(product("c00", t + 100 * SEC_US)),
            t + 100 * SEC_US,
        )
        .unwrap();
        a.write(
            "us-east-2",
            "Served",
            "c00",
            Some(product("c00", t + 101 * SEC_US)),
            t + 101 * SEC_US,
        )
        .unwrap();
        for r in ["us-east-1", "us-east-2"] {
            let v = a.view(r, "Served", t + 200 * SEC_US).unwrap();
            assert_eq!(v["c00"].updated_at_us, t + 101 * SEC_US, "{r}");
        }
        // A read of a few keys sees of them what the whole table's view sees.
        a.write("us-east-2", "Served", "c01", None, t + 102 * SEC_US)
            .unwrap();
        let keys = ["c00", "c01", "c07", "c31", "absent"];
        for r in ["us-east-1", "us-east-2"] {
            for at in [
                t + 3 * SEC_US,
                t + 7 * SEC_US,
                t + 100 * SEC_US,
                t + 103 * SEC_US,
                t + 200 * SEC_US,
            ] {
                let whole = a.view(r, "Served", at).unwrap();
                let want: BTreeMap<String, Product> = whole
                    .into_iter()
                    .filter(|(k, _)| keys.contains(&k.as_str()))
                    .collect();
                assert_eq!(a.view_of(r, "Served", &keys, at).unwrap(), want, "{r} at {at}");
            }
        }
        assert_eq!(
            a.delete_table("us-east-2", "Served", t).unwrap_err().code,
            "AccessDeniedException"
        );
    }

    #[test]
    fn the_plan_makes_a_point_every_day_at_09_10_unless_broken() {
        let mut a = account(Faults::default());
        a.run_plan(NOW);
        let mut created: Vec<u64> = a.points.values().map(|p| p.created_us).collect();
        created.sort();
        assert_eq!(created.len(), 3, "three days of history");
        for c in &created {
            assert_eq!(c % DAY_US, (9 * 3600 + 600) * SEC_US);
        }
        // A point holds the write made ten seconds into its backup.
        let newest = a.points.values().max_by_key(|p| p.created_us).unwrap().clone();
        let (log, region) = a.log_of(&newest.source_arn);
        let items = a.state(&log, &region, newest.as_of_us);
        assert!(
            items
                .values()
                .any(|p| p.updated_at_us == newest.created_us + 10 * SEC_US)
        );
        let mut broken = account(Faults {
            plan_makes_no_points: true,
            ..Faults::default()
        });
        broken.run_plan(NOW);
        assert!(broken.points.is_empty());
    }

    #[test]
    fn jobs_settle_when_their_time_comes_and_hold_their_points() {
        let mut a = account(Faults::default());
        a.run_plan(NOW);
        let point = a.points.keys().next().unwrap().clone();
        a.restore_jobs.insert(
            "r1".into(),
            Job::new(
                "us-east-2",
                NOW,
                20 * MIN_US,
                point.clone(),
                String::new(),
                "Restored".into(),
            ),
        );
        assert!(a.point_busy(&point, NOW + MIN_US));
        a.settle(NOW + MIN_US);
        assert!(a.table("us-east-2", "Restored").is_none());
        a.settle(NOW + 20 * MIN_US);
        assert_eq!(
            a.view("us-east-2", "Restored", NOW + 20 * MIN_US).unwrap().len(),
            200
        );
        assert!(!a.point_busy(&point, NOW + 20 * MIN_US));
    }

    #[test]
    fn a_table_deleted_with_pitr_on_leaves_a_system_backup() {
        let mut a = account(Faults::default());
        for name in ["On", "Off"] {
            a.create_table("us-east-2", name, NOW).unwrap();
            a.enable_pitr("us-east-2", name, NOW + 2 * MIN_US).unwrap();
        }
        a.disable_pitr("us-east-2", "Off").unwrap();
        a.delete_table("us-east-2", "On", NOW + 3 * MIN_US).unwrap();
        a.delete_table("us-east-2", "Off", NOW + 3 * MIN_US).unwrap();
        assert_eq!(
            a.leftovers(NOW + 3 * MIN_US),
            ["SYSTEM backup of On in us-east-2 (kept 35 days)"]
        );
    }

    #[test]
    fn leftovers_name_what_the_drill_must_undo() {
        let mut a = account(Faults::default());
        assert!(a.leftovers(NOW).is_empty(), "{:?}", a.leftovers(NOW));
        a.functions.insert("standby-fn".into(), None);
        a.health_checks.insert("hc-1".into(), true);
        let mut p = product("x", NOW);
        p.product_title = "Product-drill-pilot-light-1 canary 1".into();
        a.write("us-east-2", "Served", "x", Some(p), NOW).unwrap();
        let left = a.leftovers(NOW);
        assert_eq!(left.len(), 3, "{left:?}");
    }
}
